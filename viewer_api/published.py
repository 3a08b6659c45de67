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

This module is the contract both sides import: the format (above), the reader (``PublishedStore``), the writer
(``PublishedStore.write_catalog``) and the pure edits publishing makes to a catalog (``next_catalog``,
``set_policy``). It imports nothing of the authoring side.

**Version key** (``catalog.version`` beside the catalog): the SHA-256 of the catalog's bytes, written after the
catalog is renamed into place. A public process checks it at most every ``CATALOG_POLL_S`` seconds (not on every
request) and reads the catalog again when it changed, so replicas switch to a new publish without a restart.
Without a version key (a data directory written before it existed) the catalog file's stat() stands in for it.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
import hashlib
import threading
import time
from dataclasses import dataclass
from pathlib import Path

CATALOG_VERSION = 1
CATALOG_FILE = "catalog.json"
VERSION_FILE = "catalog.version"  # the version key replicas poll: SHA-256 hex of the catalog's bytes
# How long a process trusts the catalog it read before looking at the version key again: a new publish reaches
# every replica within this (plus a read), and a busy replica makes at most 2 stat/read calls a second, not one
# per request.
CATALOG_POLL_S = 0.5
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

    def __init__(self, data_dir: Path, create: bool = True, poll_s: float = CATALOG_POLL_S, clock=time.monotonic):
        """``create=False`` (the public app): never make the directory; a data dir with nothing published serves
        an empty catalog."""
        self.dir = Path(data_dir) / "published"
        if create:
            self.dir.mkdir(parents=True, exist_ok=True)
        self.catalog_path = self.dir / CATALOG_FILE
        self.version_path = self.dir / VERSION_FILE
        self.poll_s = poll_s
        self._clock = clock
        self._checked_at: float | None = None
        self._seen_writes = -1
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
        """The current catalog. The version key is looked at once per ``poll_s`` (and at once after a write made
        in this process); in between, the catalog read last is answered."""
        now = self._clock()
        writes = _local_writes.get(self.dir, 0)
        if self._checked_at is not None and now - self._checked_at < self.poll_s and writes == self._seen_writes:
            return self._catalog
        stamp = self.version()
        if stamp != self._stamp:
            with self._lock:
                if stamp != self._stamp:
                    self._catalog = self._read() if stamp else dict(EMPTY_CATALOG)
                    self._stamp = stamp
        self._checked_at = now
        self._seen_writes = writes
        return self._catalog

    def version(self) -> str | None:
        """The version key of the published state: the catalog's SHA-256 from ``catalog.version``, else (a data
        directory written before the key existed, or a catalog written by hand) the catalog file's stat, else
        None when nothing is published."""
        try:
            st = self.catalog_path.stat()
        except FileNotFoundError:
            return None
        try:
            key = self.version_path.read_text(encoding="ascii").strip()
            vst = self.version_path.stat()
        except (FileNotFoundError, UnicodeDecodeError):
            key, vst = "", None
        if key and vst is not None and vst.st_mtime_ns >= st.st_mtime_ns:
            return key
        return f"stat:{st.st_mtime_ns}:{st.st_size}:{st.st_ino}"  # the key is older than the catalog: hand-written

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
        """Atomically replace the catalog (temporary file, fsync, rename), then its version key. Called by the
        publisher only."""
        catalog = dict(catalog, version=CATALOG_VERSION)
        data = json.dumps(catalog, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        self.dir.mkdir(parents=True, exist_ok=True)
        _write_atomically(self.dir, self.catalog_path, data)
        _write_atomically(self.dir, self.version_path, hashlib.sha256(data).hexdigest().encode("ascii"))
        with _writes_lock:  # readers in this process see it at once, not after their poll interval
            _local_writes[self.dir] = _local_writes.get(self.dir, 0) + 1


_local_writes: dict[Path, int] = {}  # catalog writes made by this process, per published directory
_writes_lock = threading.Lock()


def _write_atomically(directory: Path, target: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ------------------------------------------------------------------------------------------ editing a catalog
# Pure functions over catalog dicts (no I/O): what publishing, unpublishing and a policy change make of a catalog.

def _utc_stamp() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None).isoformat() + "Z"


def next_catalog(current: dict, edition_id: int, publication: str, code: str, version: int | None,
                 entries: dict | None, artifacts, index_name: str | None) -> dict:
    """The catalog with one edition replaced (``entries``) or removed (``entries is None``), its premium part
    (``premium_pages``, ``premium_artifacts``) with it. ``artifacts``: the publish's blobs (``.keys``, a set of
    SHA-256, and ``.gzip``, SHA-256 -> SHA-256 of its gzip copy), or None when removing."""
    cat = json.loads(json.dumps(current))  # deep copy
    old_pages = [pid for pid, e in cat["pages"].items() if int(e["edition_id"]) == edition_id]
    for pid in old_pages:
        cat["pages"].pop(pid)
    premium_pages = cat.setdefault("premium_pages", {})
    for pid in [pid for pid, e in premium_pages.items() if int(e["edition_id"]) == edition_id]:
        premium_pages.pop(pid)
    premium_per_edition = cat.setdefault("premium_artifacts", {})
    premium_per_edition.pop(str(edition_id), None)
    cat["codes"] = {c: t for c, t in cat["codes"].items() if int(t["edition_id"]) != edition_id}
    cat["editions"].pop(str(edition_id), None)
    if entries is not None:
        cat["editions"][str(edition_id)] = {"manifest": entries["edition"], "code": code,
                                            "publication": publication, "version": version}
        cat["codes"][code] = {"edition_id": edition_id, "page_id": None}
        for pid, entry in entries["pages"].items():
            cat["pages"][pid] = entry
            cat["codes"][entry["code"]] = {"edition_id": edition_id, "page_id": int(pid)}
        premium_pages.update(entries.get("premium_pages", {}))
        if entries.get("premium_artifacts"):
            premium_per_edition[str(edition_id)] = list(entries["premium_artifacts"])
    # The servable blobs are those listed for a published edition (PublishedStore.published_blobs derives the set).
    per_edition = cat.setdefault("edition_artifacts", {})
    gz = cat.setdefault("gzip", {})
    if entries is None:
        per_edition.pop(str(edition_id), None)
    else:
        per_edition[str(edition_id)] = sorted(artifacts.keys)
        gz.update(artifacts.gzip)
    live = {key for keys in per_edition.values() for key in keys}
    cat["gzip"] = {k: v for k, v in gz.items() if k in live}
    cat["index"] = index_name
    cat["updated_at"] = _utc_stamp()
    return cat


def set_policy(catalog: dict, publication) -> None:
    """The publication's premium policy in the catalog (the public side reads nothing else). ``publication``: an
    object with ``id`` and ``premium_free_after_days`` (builder.models.Publication)."""
    policies = catalog.setdefault("publication_policies", {})
    if publication.premium_free_after_days:
        policies[str(publication.id)] = {"premium_free_after_days": int(publication.premium_free_after_days)}
    else:
        policies.pop(str(publication.id), None)
