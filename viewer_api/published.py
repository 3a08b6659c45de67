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

**Where the published state lives** (issue 28): with the local store, files under ``<data>/published/``
(:class:`LocalFiles`); with a store that holds named objects (S3, ``AssetStore.NAMED_OBJECTS``), objects in the bucket
beside the blobs (:class:`BucketFiles`: ``<prefix>published/catalog.json``, ``catalog.version``, ``index-<sha>.bnx``),
so public processes on machines with no shared disk poll the version object, fetch the new catalog, and fetch the
index into a local cache file (``<data>/cache/published/``, checked against the SHA-256 in its name) to load it.
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


class LocalFiles:
    """The published state as files in one directory (``<data>/published``): the local store's default."""

    def __init__(self, directory: Path):
        self.dir = directory

    def read(self, name: str) -> bytes | None:
        try:
            return (self.dir / name).read_bytes()
        except FileNotFoundError:
            return None

    def write(self, name: str, data: bytes) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        _write_atomically(self.dir, self.dir / name, data)

    def delete(self, name: str) -> None:
        (self.dir / name).unlink(missing_ok=True)

    def index_names(self) -> list[str]:
        return sorted(p.name for p in self.dir.glob("index-*.bnx"))

    def put_index(self, path: Path, name: str) -> None:
        """``path``: a finished index file on the same file system (publishing saves it in this directory first)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        os.replace(path, self.dir / name)

    def index_file(self, name: str) -> Path:
        return self.dir / name

    def version(self) -> str | None:
        """The catalog's version key; without one, or one older than the catalog (a hand-written catalog, a data
        directory written before the key existed), the catalog file's stat; None when nothing is published."""
        try:
            st = (self.dir / CATALOG_FILE).stat()
        except FileNotFoundError:
            return None
        try:
            key = (self.dir / VERSION_FILE).read_text(encoding="ascii").strip()
            vst = (self.dir / VERSION_FILE).stat()
        except (FileNotFoundError, UnicodeDecodeError):
            key, vst = "", None
        if key and vst is not None and vst.st_mtime_ns >= st.st_mtime_ns:
            return key
        return f"stat:{st.st_mtime_ns}:{st.st_size}:{st.st_ino}"


# A cached index file nothing names any more is removed once this old: another worker process of the machine may
# still be loading it (a load takes well under a minute even for a large index).
INDEX_CACHE_KEEP_S = 600


class BucketFiles:
    """The published state as named objects in the asset store's bucket (``store``: an S3Store), so that machines
    share it without a shared disk. The index is fetched into ``cache_dir`` (made on the first fetch only) and
    checked against the SHA-256 its name carries before it is used."""

    def __init__(self, store, cache_dir: Path):
        self.store = store
        self.cache_dir = cache_dir

    def read(self, name: str) -> bytes | None:
        return self.store.read_named(name)

    def write(self, name: str, data: bytes) -> None:
        self.store.put_named(name, data)

    def delete(self, name: str) -> None:
        self.store.delete_named(name)

    def index_names(self) -> list[str]:
        return sorted(n for n in self.store.list_named() if n.startswith("index-") and n.endswith(".bnx"))

    def put_index(self, path: Path, name: str) -> None:
        self.store.put_named_file(name, path)
        Path(path).unlink(missing_ok=True)

    def index_file(self, name: str) -> Path:
        target = self.cache_dir / name
        if target.is_file():
            return target
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".fetch-", dir=self.cache_dir)
        os.close(fd)
        try:
            self.store.fetch_named(name, Path(tmp))
            digest = _sha256_file(Path(tmp))
            if f"index-{digest}.bnx" != name:
                raise CatalogError(f"the index object {name} holds other bytes (SHA-256 {digest})")
            os.replace(tmp, target)
        finally:
            Path(tmp).unlink(missing_ok=True)
        self._drop_old_cache(keep=name)
        return target

    def _drop_old_cache(self, keep: str) -> None:
        cutoff = time.time() - INDEX_CACHE_KEEP_S
        for path in self.cache_dir.glob("*"):
            try:
                if path.name != keep and path.stat().st_mtime < cutoff:
                    path.unlink(missing_ok=True)
            except OSError:
                continue

    def version(self) -> str | None:
        """One GET of the version object (64 bytes) per poll; only without one, a look at the catalog object."""
        data = self.read(VERSION_FILE)
        if data:
            return data.decode("ascii", "replace").strip()
        return "unversioned" if self.read(CATALOG_FILE) is not None else None  # between a catalog and its key


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def published_files(data_dir: Path, store=None):
    """Where the published state lives for ``store``: in its bucket when it holds named objects, else files under
    ``<data_dir>/published``."""
    if store is not None and getattr(store, "NAMED_OBJECTS", False):
        return BucketFiles(store, Path(data_dir) / "cache" / "published")
    return LocalFiles(Path(data_dir) / "published")


class PublishedStore:
    """Read side of the published state; reloads the catalog (and index) when its version key changes."""

    def __init__(self, data_dir: Path, create: bool = True, poll_s: float = CATALOG_POLL_S, clock=time.monotonic,
                 store=None):
        """``create=False`` (the public app): never make the directory; a data dir with nothing published serves
        an empty catalog. ``store``: the asset store; one with named objects (S3) holds the published state too."""
        self.dir = Path(data_dir) / "published"  # local: the state itself; S3: the publisher's lock and marks
        self.files = published_files(data_dir, store)
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

    @property
    def in_bucket(self) -> bool:
        return isinstance(self.files, BucketFiles)

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
                    data = self.current_bytes() if stamp else None
                    self._catalog = self._parse(data) if data is not None else dict(EMPTY_CATALOG)
                    # a version key read just before a newer catalog (or, on an object store, a catalog read
                    # older than its key): look again at the next poll rather than keep a mismatched pair
                    self._stamp = stamp if data is None or len(stamp) != 64 \
                        or hashlib.sha256(data).hexdigest() == stamp else None
        self._checked_at = now
        self._seen_writes = writes
        return self._catalog

    def version(self) -> str | None:
        """The version key of the published state: the catalog's SHA-256 (``catalog.version``), else a stand-in
        (see :meth:`LocalFiles.version`), else None when nothing is published."""
        return self.files.version()

    def current_bytes(self) -> bytes | None:
        """The catalog's bytes as stored now (no cache): what publishing switches from, and restores on failure."""
        return self.files.read(CATALOG_FILE)

    def read_catalog(self) -> dict:
        """The catalog as stored now (no cache), for publishing to edit."""
        data = self.current_bytes()
        return self._parse(data) if data is not None else json.loads(json.dumps(EMPTY_CATALOG))

    @staticmethod
    def _parse(raw: bytes) -> dict:
        data = json.loads(raw.decode("utf-8"))
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

                        self._index = RecognitionIndex.load(self.files.index_file(name))
                    self._index_name = name
        return self._index

    # -------------------------------------------------------------------------------- writing
    def write_catalog(self, catalog: dict) -> bytes:
        """Atomically replace the catalog (local: temporary file, fsync, rename; S3: one PUT), then its version key.
        Called by the publisher only. Returns the bytes written."""
        data = catalog_bytes(catalog)
        self.write_catalog_bytes(data)
        return data

    def write_catalog_bytes(self, data: bytes | None) -> None:
        """The catalog exactly as ``data`` (a catalog read before: publishing's compensation puts it back), or, for
        None, no catalog at all (nothing was published before): the version key goes first, so no reader takes
        the catalog's absence for a state of its own before the key says so."""
        if data is None:
            self.files.delete(VERSION_FILE)
            self.files.delete(CATALOG_FILE)
        else:
            self.files.write(CATALOG_FILE, data)
            self.files.write(VERSION_FILE, hashlib.sha256(data).hexdigest().encode("ascii"))
        with _writes_lock:  # readers in this process see it at once, not after their poll interval
            _local_writes[self.dir] = _local_writes.get(self.dir, 0) + 1

    # -------------------------------------------------------------------------------- the index (publisher side)
    def put_index(self, path: Path, name: str) -> None:
        """A finished index file under its content name (``index-<sha256>.bnx``); served once a catalog names it."""
        self.files.put_index(path, name)

    def index_file(self, name: str) -> Path:
        """A local file holding the index ``name`` (S3: fetched into the cache)."""
        return self.files.index_file(name)

    def index_names(self) -> list[str]:
        return self.files.index_names()

    def delete_index(self, name: str) -> None:
        self.files.delete(name)


def catalog_bytes(catalog: dict) -> bytes:
    """The catalog as it is stored (its SHA-256 is the version key)."""
    return json.dumps(dict(catalog, version=CATALOG_VERSION), ensure_ascii=False, separators=(",", ":")).encode("utf-8")


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
