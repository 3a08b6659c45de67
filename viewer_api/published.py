"""The published catalog: the one file that says what readers can see.

``$BAONHUNG_DATA_DIR/published/catalog.json`` maps published editions, pages and deep-link codes to
the SHA-256 of their manifests in the asset store, and names the recognition index file. Publishing
writes a new catalog next to it and renames it over the old one, so the public side switches from one
published state to the next atomically; it never reads the authoring database.

Catalog format (``CATALOG_VERSION`` 1)::

    {"version": 1, "updated_at": "...Z",
     "editions": {"12": {"manifest": sha, "code": "K7MQ2XA", "publication": "bao-yen-bai", "version": 3}},
     "pages":    {"40": {"manifest": sha, "marker": sha, "edition_id": 12, "code": "..."}},
     "codes":    {"K7MQ2XA": {"edition_id": 12, "page_id": null}},
     "edition_artifacts": {"12": [sha, ...]},   # every blob a published edition references (servable)
     "gzip":     {sha: sha_of_its_gzip_copy},   # pre-compressed copies of JSON/GLB/marker blobs
     "premium_pages": {"40": {"part": sha, "publication_id": 3, "edition_id": 12,   # issue 27: premium parts
                              "edition_date": "2026-12-07"}},
     "premium_artifacts": {"12": [sha, ...]},   # their blobs: served only by signed URL (/pub/p/), never /pub/a/
     "publication_policies": {"3": {"premium_free_after_days": 7}},  # premium parts free N days after the date
     "index":    "index-<sha256>.bnx" | null}
"""
from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

CATALOG_VERSION = 1
VIETNAM = dt.timezone(dt.timedelta(hours=7))  # Asia/Ho_Chi_Minh: no daylight saving
EMPTY_CATALOG = {"version": CATALOG_VERSION, "updated_at": None, "editions": {}, "pages": {}, "codes": {}, "index": None}


class CatalogError(RuntimeError):
    pass


@dataclass(frozen=True)
class CodeTarget:
    edition_id: int
    page_id: int | None


class PublishedStore:
    """Read side of the published state; reloads the catalog (and index) when the file changes."""

    def __init__(self, data_dir: Path):
        self.dir = Path(data_dir) / "published"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.catalog_path = self.dir / "catalog.json"
        self._lock = threading.Lock()
        self._stamp = None
        self._catalog = dict(EMPTY_CATALOG)
        self._index = None
        self._index_name = None
        self._blobs_for: tuple[dict, frozenset] | None = None
        self._premium_for: tuple[dict, frozenset] | None = None
        self._free_for: tuple[dict, dict] | None = None

    # -------------------------------------------------------------------------------- reading
    def catalog(self) -> dict:
        try:
            st = self.catalog_path.stat()
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            stamp = None
        if stamp != self._stamp:
            with self._lock:
                if stamp != self._stamp:
                    self._catalog = self._read() if stamp else dict(EMPTY_CATALOG)
                    self._stamp = stamp
        return self._catalog

    def _read(self) -> dict:
        with open(self.catalog_path, encoding="utf-8") as fh:
            data = json.load(fh)
        if data.get("version") != CATALOG_VERSION:
            raise CatalogError(f"catalog version {data.get('version')!r}, expected {CATALOG_VERSION}")
        return data

    def edition_manifest_sha(self, edition_id) -> str | None:
        entry = self.catalog()["editions"].get(str(edition_id))
        return entry["manifest"] if entry else None

    def page_manifest_sha(self, page_id) -> str | None:
        entry = self.catalog()["pages"].get(str(page_id))
        return entry["manifest"] if entry else None

    def page_entry(self, page_id) -> dict | None:
        return self.catalog()["pages"].get(str(page_id))

    def resolve_code(self, code: str) -> CodeTarget | None:
        from markers.deeplink import normalize_code

        try:
            code = normalize_code(code)
        except ValueError:
            return None
        entry = self.catalog()["codes"].get(code)
        if entry is None:
            return None
        return CodeTarget(int(entry["edition_id"]), int(entry["page_id"]) if entry.get("page_id") else None)

    def is_published_blob(self, sha: str) -> bool:
        """True when ``sha`` belongs to a published edition (drafts share the store and must never be served)."""
        return sha in self.published_blobs()

    def published_blobs(self) -> frozenset:
        """Union of the catalog's per-edition artifact lists, computed once per catalog."""
        cat = self.catalog()
        cached = self._blobs_for
        if cached is None or cached[0] is not cat:
            blobs = frozenset(k for keys in cat.get("edition_artifacts", {}).values() for k in keys)
            cached = self._blobs_for = (cat, blobs)
        return cached[1]

    def premium_blobs(self) -> frozenset:
        """Union of the catalog's premium artifact lists (the blobs a signed URL may name), once per catalog."""
        cat = self.catalog()
        cached = self._premium_for
        if cached is None or cached[0] is not cat:
            blobs = frozenset(k for keys in cat.get("premium_artifacts", {}).values() for k in keys)
            cached = self._premium_for = (cat, blobs)
        return cached[1]

    def is_premium_blob(self, sha: str) -> bool:
        """True when ``sha`` belongs to the premium part of a published page."""
        return sha in self.premium_blobs()

    def premium_free_from(self, entry: dict) -> float | None:
        """When a premium part becomes free for everyone (epoch seconds: midnight in Viet Nam of the edition's date
        plus the publication's ``premium_free_after_days``), or None."""
        policy = self.catalog().get("publication_policies", {}).get(str(entry.get("publication_id")))
        days = policy.get("premium_free_after_days") if policy else None
        if not days or not entry.get("edition_date"):
            return None
        day = dt.date.fromisoformat(entry["edition_date"]) + dt.timedelta(days=int(days))
        return dt.datetime(day.year, day.month, day.day, tzinfo=VIETNAM).timestamp()

    def premium_is_free(self, entry: dict, now: float) -> bool:
        free_from = self.premium_free_from(entry)
        return free_from is not None and now >= free_from

    def premium_blob_is_free(self, sha: str, now: float) -> bool:
        """True when a premium blob belongs to an edition whose premium part is free by now."""
        cat = self.catalog()
        cached = self._free_for
        if cached is None or cached[0] is not cat:
            by_edition = {}
            for entry in cat.get("premium_pages", {}).values():
                by_edition.setdefault(str(entry["edition_id"]), entry)
            earliest: dict[str, float] = {}
            for edition_id, blobs in cat.get("premium_artifacts", {}).items():
                entry = by_edition.get(str(edition_id))
                free_from = self.premium_free_from(entry) if entry else None
                if free_from is None:
                    continue
                for blob in blobs:
                    earliest[blob] = min(free_from, earliest.get(blob, free_from))
            cached = self._free_for = (cat, earliest)
        free_from = cached[1].get(sha)
        return free_from is not None and now >= free_from

    def premium_page(self, page_id) -> dict | None:
        """``{"part": sha, "publication_id", "edition_id"}`` of a published page's premium part, or None."""
        return self.catalog().get("premium_pages", {}).get(str(page_id))

    def gzip_copy(self, sha: str) -> str | None:
        """SHA-256 of the pre-compressed copy of a published blob, if publishing made one."""
        return self.catalog().get("gzip", {}).get(sha)

    def index(self):
        """The recognition index of the current catalog (loaded once per catalog change), or None."""
        name = self.catalog().get("index")
        if name != self._index_name:
            with self._lock:
                if name != self._index_name:
                    if name is None:
                        self._index = None
                    else:
                        from markers import RecognitionIndex

                        self._index = RecognitionIndex.load(self.dir / name)
                    self._index_name = name
        return self._index

    # -------------------------------------------------------------------------------- writing
    def write_catalog(self, catalog: dict) -> None:
        """Atomically replace the catalog (temporary file, fsync, rename). Called by the publisher only."""
        catalog = dict(catalog, version=CATALOG_VERSION)
        fd, tmp = tempfile.mkstemp(prefix=".catalog-", dir=self.dir)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(catalog, fh, ensure_ascii=False, separators=(",", ":"))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.catalog_path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
