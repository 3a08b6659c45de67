"""Publishing: freeze an edition into immutable published artifacts, then switch what readers see.

One sequence (each step before 3 only adds things nothing names yet; 3 and 4 are the switch):
1. artifacts: snapshot the edition's pages and overlays; per page train its marker data (``markers``), build its
   bundle (GLB full + lite + media, ``builder.bundle``), write its page manifest (a page with premium overlays gets
   its free bundle with their teasers and a premium part stored apart, ``builder.premium``, issue 27); the edition
   manifest; gzip copies of JSON/GLB — immutable, content-addressed blobs in the asset store;
2. index: the next recognition index (this edition's pages replaced) under a new content name
   (``index-<sha256>.bnx``), not named by any catalog yet;
3. catalog: the database rows are added (PublishedVersion, the edition's pointer, the audit entry) but not committed;
   the journal (``.publishing-<edition>.json`` and the previous catalog's bytes beside it) records the switch about
   to happen; then the published catalog is replaced atomically (``viewer_api.published``: readers switch here);
4. database: one commit. If it fails, the previous catalog's bytes are put back (compensation), so readers and
   records agree again.
A failure at any step leaves the previous version serving, the database as it was (rolled back), the new index
file removed, and the failure recorded for the editor (``PublishFailure``, audit entry, the job's error). A process
killed between 3 and 4 leaves its journal: the next start (:func:`sweep_after_crash`) puts the previous catalog
back unless the commit had happened. Unpublishing and a premium-policy change follow the same sequence, one at a
time across the deployment (:func:`publish_lock`: a PostgreSQL advisory lock, or the file lock on SQLite). No Flask
here.
"""
from __future__ import annotations

import dataclasses
import fcntl
import gzip
import hashlib
import io
import json
import logging
import secrets
import subprocess
import tempfile
from contextlib import ExitStack, contextmanager
from typing import Callable
from pathlib import Path

import cv2
import numpy as np
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from markers import INDEX_VERSION, MARKER_VERSION, PageMarker, RecognitionIndex, browser_marker, train_page

from . import premium
from .bundle import BundleBuildError, BundleOptions, OverlaySpec, PageBundle, PageSpec, build_page_bundle
from .config import Settings
from .manifest import edition_manifest, page_manifest
from .models import AuditEntry, Edition, EditionStatus, Page, PublishedVersion, PublishFailure, utcnow
from .errors import ValidatorUnavailableError
from .errors import AppError, PublishFailed, ServerFault, verbatim
from .services import PUBLISHERS, Actor, audit, require_role
from .storage import AssetStore, StorageError, sha256_file
# the catalog's format and its pure edits: the contract module both sides import
from viewer_api.published import next_catalog as _next_catalog, set_policy as _set_policy

log = logging.getLogger(__name__)
# Failures of the server rather than of the edition's content: a 500 with an incident id, not the 422 that tells the
# editor what in the content to fix.
SERVER_FAULTS = (OSError, MemoryError, subprocess.TimeoutExpired, ValidatorUnavailableError, StorageError, DBAPIError)

GZIP_MIN_BYTES = 1024  # below this gzip's header costs more than it saves
GZIP_EXTS = ("glb", "json", "bin")
# Page lists (the viewer's no-camera "pick a page") show a page 7 rem (~112 CSS px) wide: 320 px covers a phone's
# 2-3x screen, ~15-30 KB as JPEG instead of the 1-1.4 MB page image.
THUMBNAIL_WIDTH_PX = 320
THUMBNAIL_JPEG_QUALITY = 80
# A publish's progress report: (pages_done, pages_total), called page by page (builder.jobs records it).
Progress = Callable[[int, int], None]


def _published_store(settings: Settings, store: AssetStore | None = None):
    """The published state of ``settings``' deployment: files under ``<data>/published``, or objects in the asset
    store's bucket when it holds named objects (S3). The journal stays in the local directory (the lock: see
    :func:`publish_lock`)."""
    from viewer_api.published import PublishedStore

    if store is None and settings.storage_backend != "local":
        from .storage import store_from_settings

        store = store_from_settings(settings)
    return PublishedStore(settings.data_dir, store=store)


@contextmanager
def _publish_lock(directory: Path, blocking: bool = True):
    """One publish/unpublish at a time per data directory (they rewrite the catalog and the index). Not blocking:
    yields False at once when another process holds it."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".publish.lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# Across machines (several workers sharing an S3 bucket and a PostgreSQL database) the file lock above serializes
# nothing: a session-level advisory lock of this key, on a connection of its own held for the whole sequence, does.
PUBLISH_LOCK_KEY = int.from_bytes(hashlib.sha256(b"baonhung.publish").digest()[:8], "big", signed=True)
PUBLISH_LOCK_WAIT_S = 1800.0  # a waiting publish gives up after this (a 48-page edition with video takes minutes)
PUBLISH_LOCK_POLL_S = 0.25


class PublishLockTimeout(TimeoutError):
    """Another publish, unpublish or policy change held the publish lock longer than the wait allows."""


@contextmanager
def publish_lock(db, directory: Path, blocking: bool = True, wait_s: float | None = None):
    """One publish/unpublish/policy change at a time across the deployment. ``db``: a Session, an Engine or the
    Settings (an engine is made for the call). PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock``
    polled) on a dedicated connection held until the end — a killed process's connection ends and the server
    releases it — then the file lock of ``directory`` (``builder.backup`` on the same machine takes only that one).
    SQLite (one machine by construction): the file lock alone. Waits up to ``wait_s`` in all (default
    :data:`PUBLISH_LOCK_WAIT_S`), then raises :class:`PublishLockTimeout`. Not blocking: yields False at once when
    another process holds it."""
    import time

    from sqlalchemy import text

    bound = PUBLISH_LOCK_WAIT_S if wait_s is None else wait_s
    deadline = time.monotonic() + bound

    def timed_out(what: str) -> bool:
        if time.monotonic() >= deadline:
            raise PublishLockTimeout(f"another publish held the publish lock ({what}) for more than {bound:g} s")
        time.sleep(PUBLISH_LOCK_POLL_S)
        return True

    @contextmanager
    def file_lock():
        while True:
            with _publish_lock(directory, blocking=False) as held:
                if held or not blocking:
                    yield held
                    return
            timed_out(f"{directory / '.publish.lock'}")

    made = None
    if isinstance(db, Settings):
        from .db import make_engine

        engine = made = make_engine(db.database_url)
    else:
        engine = db.get_bind() if isinstance(db, Session) else db
    try:
        if engine.dialect.name != "postgresql":
            with file_lock() as held:
                yield held
            return
        conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")  # no transaction left idle
        try:
            while not conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": PUBLISH_LOCK_KEY}).scalar():
                if not blocking:
                    yield False
                    return
                timed_out(f"PostgreSQL advisory lock {PUBLISH_LOCK_KEY}")
            try:
                with file_lock() as held:
                    yield held
            finally:
                try:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": PUBLISH_LOCK_KEY})
                except Exception:  # noqa: BLE001 - a connection that cannot unlock is dropped: the server unlocks
                    log.exception("releasing the publish lock failed; closing its connection")
                    conn.invalidate()
        finally:
            conn.close()
    finally:
        if made is not None:
            made.dispose()


# Temporary directories of bundle work carry this prefix, so a sweep can tell ours from anything else in /tmp.
TEMP_PREFIX = "baonhung-"
# The ones the sweep removes when stale: what the product makes in the system temp directory and a kill -9 can leave
# (bundle work, S3 staging, model archives, the lite variant). Only these: "baonhung-" alone also named the state
# of other programs (a test server's directory, another process's work) that a start-up sweep deleted.
SWEPT_TEMP_PREFIXES = (f"{TEMP_PREFIX}bundle-", f"{TEMP_PREFIX}s3-", f"{TEMP_PREFIX}zip-", f"{TEMP_PREFIX}lite-")
STALE_TEMP_S = 3600  # no bundle step runs this long (each external process is limited to minutes)


def _publishing_mark(directory: Path, edition_id) -> Path:
    """The journal of a running publish/unpublish of the edition; left behind only by a process that was killed."""
    return directory / f".publishing-{int(edition_id)}.json"


def _previous_catalog_file(mark: Path) -> Path:
    """The catalog's bytes before the switch, kept while the switch is not committed (the journal's undo)."""
    return mark.with_suffix(".previous")


class _Journal:
    """The mark of one publish/unpublish (``kind``), written when it starts and removed when it ends, however it
    ends — unless a switch could not be undone, or the process dies. :meth:`switching` records, before the catalog
    is replaced, what undoing it takes: the previous catalog's bytes (or their absence) and the version key of the
    catalog about to be written."""

    def __init__(self, directory: Path, edition_id, actor: Actor, started_at: str, kind: str):
        self.mark = _publishing_mark(directory, edition_id)
        self.info = {"edition_id": int(edition_id), "user_id": actor.user_id, "started_at": started_at, "kind": kind}
        self.keep = False

    def __enter__(self) -> "_Journal":
        self._write()
        return self

    def _write(self) -> None:
        tmp = self.mark.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.info), encoding="utf-8")
        tmp.replace(self.mark)

    def switching(self, previous: bytes | None, switched_to: str, version: int | None) -> None:
        previous_file = _previous_catalog_file(self.mark)
        if previous is not None:
            previous_file.write_bytes(previous)
        else:
            previous_file.unlink(missing_ok=True)
        self.info.update(switched_to=switched_to, version=version, previous=previous is not None)
        self._write()

    def __exit__(self, *exc) -> None:
        if not self.keep:
            self.mark.unlink(missing_ok=True)
            _previous_catalog_file(self.mark).unlink(missing_ok=True)


def _switch_and_commit(db: Session, published, journal: _Journal | None, catalog: dict, previous: bytes | None,
                       version: int | None) -> None:
    """Steps 3-4: the catalog switch, then the commit of what ``db`` holds. On any failure (the write, the commit,
    an interrupt) the previous catalog is put back before the error goes on; when even that fails, the journal is
    kept for :func:`sweep_after_crash` to finish the undo."""
    from viewer_api.published import catalog_bytes

    data = catalog_bytes(catalog)
    if journal is not None:
        journal.switching(previous, hashlib.sha256(data).hexdigest(), version)
    try:
        published.write_catalog_bytes(data)
        db.commit()
    except BaseException:
        try:
            db.rollback()
            published.write_catalog_bytes(previous)
        except Exception:  # noqa: BLE001 - the original error is the one to report; the journal keeps the undo
            log.exception("putting the previous catalog back failed; the next sweep will")
            if journal is not None:
                journal.keep = True
        raise


def sweep_after_crash(db: Session, settings: Settings, store: AssetStore) -> dict:
    """Clean what an interrupted publish (kill -9, power loss) left, when no publish is running: a catalog switch
    whose commit did not happen (the previous catalog is put back), temporary and unnamed index files, the store's
    half-written files, our stale temporary directories; and record each interrupted publish or unpublish (a failure
    the editor sees, and an audit entry). Called at start-up and on a schedule. Returns the counts."""
    import shutil
    import time

    from .gc import collect_garbage

    published = _published_store(settings, store)
    done = {"index_tmp": 0, "store_tmp": 0, "temp_dirs": 0, "interrupted": 0, "unreferenced_blobs": 0,
            "switch_undone": 0, "unnamed_indexes": 0}
    with publish_lock(db, published.dir, blocking=False) as held:
        if not held:
            return done  # a publish is running: its files are not leftovers
        for mark in sorted(published.dir.glob(".publishing-*.json")):
            _recover_journal(db, published, mark, done)
        try:
            catalog = published.read_catalog()
        except (OSError, ValueError, StorageError):
            catalog = None  # unreadable: no blob is collected on a guess
        if catalog is not None:
            done["unreferenced_blobs"] = len(collect_garbage(db, store, catalog))
            done["unnamed_indexes"] = _sweep_indexes(published, keep=catalog.get("index"))
        for tmp in published.dir.glob(".index-*.tmp"):
            tmp.unlink(missing_ok=True)
            done["index_tmp"] += 1
    done["store_tmp"] = store.sweep_temporaries()
    cutoff = time.time() - STALE_TEMP_S
    for path in Path(tempfile.gettempdir()).glob(f"{TEMP_PREFIX}*"):
        try:
            if path.name.startswith(SWEPT_TEMP_PREFIXES) and path.is_dir() and path.stat().st_mtime < cutoff:
                shutil.rmtree(path, ignore_errors=True)
                done["temp_dirs"] += 1
        except OSError:
            continue
    return done


def _recover_journal(db: Session, published, mark: Path, done: dict) -> None:
    """One interrupted publish/unpublish: undo its catalog switch unless its commit happened, record it, and remove
    its journal."""
    try:
        info = json.loads(mark.read_text(encoding="utf-8"))
        edition = db.get(Edition, int(info["edition_id"]))
    except (ValueError, KeyError, TypeError, OSError):
        edition, info = None, {}
    kind = info.get("kind", "publish")
    committed = False
    if edition is not None and info.get("switched_to"):
        if kind == "unpublish":
            committed = edition.published_version_id is None
        else:
            committed = edition.published_version is not None and edition.published_version.version == info["version"]
        if not committed and published.version() == info["switched_to"]:
            previous = _previous_catalog_file(mark)
            published.write_catalog_bytes(previous.read_bytes() if info.get("previous") else None)
            done["switch_undone"] += 1
    if edition is not None and not committed:
        verb = "unpublish" if kind == "unpublish" else "publish"
        detail = f"interrupted: the server stopped during this {verb} (started {info.get('started_at')})"
        db.add(PublishFailure(edition_id=edition.id, user_id=info.get("user_id"), error=detail))
        db.add(AuditEntry(user_id=None, user_email="system", action=f"edition.{verb}_interrupted",
                          target_type="edition", target_id=str(edition.id), address="",
                          detail={"started_at": info.get("started_at"), "user_id": info.get("user_id"),
                                  "switch_undone": bool(info.get("switched_to"))}))
        db.commit()
        done["interrupted"] += 1
    _previous_catalog_file(mark).unlink(missing_ok=True)
    mark.unlink(missing_ok=True)


def snapshot_page(p: Page) -> dict:
    """One page and its overlays exactly as they are now (the unit that gets frozen). ``teaser`` is the one a premium
    overlay gets (the kind's default when the designer chose none or one the overlay cannot have,
    :func:`builder.premium.effective_teaser`)."""
    return {
        "id": p.id, "number": p.number, "title": p.title, "width_mm": p.width_mm, "height_mm": p.height_mm,
        "image_sha": p.image_sha, "image_mime": p.image_mime, "code": p.code, "rating": p.rating,
        "overlays": [{
            "id": o.id, "kind": o.kind, "name": o.name, "x_mm": o.x_mm, "y_mm": o.y_mm, "width_mm": o.width_mm,
            "height_mm": o.height_mm, "rotation_deg": o.rotation_deg, "elevation_mm": o.elevation_mm,
            "scale": o.scale, "options": o.options or {}, "asset_sha": o.asset_sha, "asset_mime": o.asset_mime,
            "poster_sha": o.poster_sha, "stock": o.stock, "url": o.url, "access": o.access or "free",
            "teaser": premium.effective_teaser(o.kind, o.teaser, o.poster_sha is not None),
            "teaser_seconds": premium.teaser_seconds(o.teaser_seconds),
        } for o in p.overlays],
    }


def snapshot_edition(edition: Edition) -> dict:
    """The frozen content of an edition, as published (also stored on the PublishedVersion row)."""
    return {
        "edition": {"id": edition.id, "publication": edition.publication.slug, "publication_id": edition.publication_id,
                    "publication_name": edition.publication.name,
                    "date": edition.date.isoformat(), "number": edition.number, "title": edition.title,
                    "code": edition.code},
        "pages": [snapshot_page(p) for p in edition.pages],
    }


def page_thumbnail(image: bytes, width_px: int = THUMBNAIL_WIDTH_PX) -> bytes:
    """A small JPEG of a page image (bytes of a stored JPEG or PNG page), ``width_px`` wide (never enlarged),
    flattened on white. JPEG pages are decoded at a reduced size (libjpeg's DCT scaling) to begin with."""
    from PIL import Image

    with Image.open(io.BytesIO(image)) as im:
        im.draft("RGB", (width_px * 2, width_px * 4))  # JPEG only: decode at 1/2..1/8 when that is still ≥ 2x
        im.load()
        if im.mode in ("RGBA", "LA", "P"):
            im = im.convert("RGBA")
            flat = Image.new("RGB", im.size, "white")
            flat.paste(im, mask=im.getchannel("A"))
            im = flat
        else:
            im = im.convert("RGB")
        if im.width > width_px:
            im = im.resize((width_px, max(1, round(im.height * width_px / im.width))), Image.LANCZOS)
        out = io.BytesIO()
        im.save(out, "JPEG", quality=THUMBNAIL_JPEG_QUALITY, optimize=True, progressive=True)
    return out.getvalue()


class _Artifacts:
    """Blobs written for one publish; they are immutable and content-addressed, so a failed publish
    leaves only unreferenced blobs behind (never a half-written file)."""

    def __init__(self, store: AssetStore):
        self.store = store
        self.keys: set[str] = set()
        self.gzip: dict[str, str] = {}

    def put(self, data: bytes, ext: str) -> str:
        key = self.store.put_bytes(data)
        self.keys.add(key)
        if ext in GZIP_EXTS and len(data) >= GZIP_MIN_BYTES:
            packed = gzip.compress(data, compresslevel=9, mtime=0)
            if len(packed) < len(data):
                self.gzip[key] = self.store.put_bytes(packed)
        return key

    def put_file(self, path: Path, ext: str) -> str:
        if ext in GZIP_EXTS:
            return self.put(path.read_bytes(), ext)
        key = self.store.put_file(path)
        self.keys.add(key)
        return key

    def add_existing(self, key: str) -> str:
        self.keys.add(key)
        return key


# OverlaySpec's fields a snapshot holds under the same name and type (the rest: the id as text, the options copied,
# the asset and poster as local files of their blobs)
_SPEC_COPIED = tuple(f.name for f in dataclasses.fields(OverlaySpec)
                     if f.name not in ("id", "options", "asset_path", "poster_path"))


def _page_spec(page: dict, store: AssetStore, copies: ExitStack) -> PageSpec:
    """The page as the bundle builder takes it; its files are the store's local copies, valid while ``copies`` is
    open."""
    def path(key):
        return copies.enter_context(store.local_copy(key)) if key else None

    overlays = tuple(
        OverlaySpec(**{name: o[name] for name in _SPEC_COPIED}, id=str(o["id"]), options=dict(o["options"]),
                    asset_path=path(o["asset_sha"]), poster_path=path(o["poster_sha"]))
        for o in page["overlays"])
    return PageSpec(id=str(page["id"]), number=page["number"], width_mm=page["width_mm"],
                    height_mm=page["height_mm"], image_path=path(page["image_sha"]), overlays=overlays)


def _ext_of(name: str) -> str:
    return name.rsplit(".", 1)[-1].lower() if "." in name else "bin"


def _store_premium_part(page_id, split: premium.PageSplit, bundle: PageBundle, store: AssetStore) -> tuple[str, list]:
    """The premium part of a page in the store, apart from the free artifacts (never in ``edition_artifacts``, so
    ``/pub/a/`` cannot serve it): its bundle pair, its media and the part document. Returns (part document's sha,
    the shas of the bundles and media — the premium set ``/pub/p/`` may serve)."""
    bundles = {}
    for variant, path in (("full", bundle.glb_full), ("lite", bundle.glb_lite)):
        bundles[variant] = {"sha256": store.put_file(path), "bytes": path.stat().st_size, "ext": "glb"}
    media = [{"name": m.name, "sha256": store.put_file(m.path), "ext": _ext_of(m.name), "mime": m.mime,
              "bytes": m.bytes, "overlay_id": m.overlay_id, "streamed": m.streamed} for m in bundle.media]
    doc = {"page_id": str(page_id), "bundles": bundles, "media": media, "overlays": list(split.premium_ids)}
    part_sha = store.put_bytes(json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode())
    return part_sha, sorted({b["sha256"] for b in bundles.values()} | {m["sha256"] for m in media})


def build_edition_artifacts(snapshot: dict, store: AssetStore, published_at: str,
                            options: BundleOptions = BundleOptions(),
                            progress: Progress | None = None) -> tuple[dict, _Artifacts, dict]:
    """Steps 2–3: markers, bundles and manifests for every page. Returns (catalog entries, artifacts, markers).
    ``progress(pages_done, pages_total)`` is called before the first page and after each page (a job's progress).

    A page with premium overlays (``builder.premium``) gets its free bundles from the free spec (teasers in place
    of the premium overlays) and a premium part stored apart: ``entries["premium_pages"]`` (page id → part) and
    ``entries["premium_artifacts"]`` (its blobs) are never added to ``artifacts``."""
    artifacts = _Artifacts(store)
    ed = snapshot["edition"]
    page_entries: dict[str, dict] = {}
    premium_pages: dict[str, dict] = {}
    premium_blobs: set[str] = set()
    markers = {}
    page_manifests = []
    if progress is not None:
        progress(0, len(snapshot["pages"]))
    for page in snapshot["pages"]:
        marker = _train_stored_page(store, page["image_sha"], page["width_mm"], page["height_mm"], page["id"])
        markers[page["id"]] = marker
        marker_sha = artifacts.put(marker.to_bytes(), "bin")
        browser_sha = artifacts.put(json.dumps(browser_marker(marker), separators=(",", ":")).encode(), "json")
        preview_sha = artifacts.add_existing(page["image_sha"])
        thumbnail_sha = artifacts.put(page_thumbnail(store.read(page["image_sha"])), "jpg")
        with tempfile.TemporaryDirectory(prefix=f"{TEMP_PREFIX}bundle-") as work, ExitStack() as copies:
            split = premium.split_page(_page_spec(page, store, copies), premium.rules_of(page), Path(work) / "teasers",
                                       options)
            if split.premium is not None:
                part_bundle = build_page_bundle(split.premium, options, Path(work) / "premium")
                part_sha, part_blobs = _store_premium_part(page["id"], split, part_bundle, store)
                premium_pages[str(page["id"])] = {"part": part_sha, "publication_id": ed.get("publication_id"),
                                                  "edition_id": ed["id"], "edition_date": ed["date"]}
                premium_blobs.update(part_blobs)
            bundle = build_page_bundle(split.free, options, Path(work) / "free")
            full_sha = artifacts.put_file(bundle.glb_full, "glb")
            lite_sha = artifacts.put_file(bundle.glb_lite, "glb")
            media = []
            for m in bundle.media:
                sha = artifacts.put_file(m.path, _ext_of(m.name))
                media.append({"name": m.name, "sha256": sha, "url": f"/pub/a/{sha}.{_ext_of(m.name)}",
                              "mime": m.mime, "bytes": m.bytes, "overlay_id": m.overlay_id})
            sizes = {"full": bundle.glb_full.stat().st_size, "lite": bundle.glb_lite.stat().st_size}
            warnings = [{"code": w.code, "message": w.message, **w.values} for w in bundle.warnings]
        manifest = page_manifest(
            page_id=page["id"], edition_id=ed["id"], number=page["number"], title=page["title"],
            width_mm=page["width_mm"], height_mm=page["height_mm"],
            bundle_full={"url": f"/pub/a/{full_sha}.glb", "sha256": full_sha, "bytes": sizes["full"]},
            bundle_lite={"url": f"/pub/a/{lite_sha}.glb", "sha256": lite_sha, "bytes": sizes["lite"]},
            media=media, marker_url=f"/pub/a/{browser_sha}.json",
            preview_url=f"/pub/a/{preview_sha}.{'png' if page['image_mime'] == 'image/png' else 'jpg'}",
            thumbnail_url=f"/pub/a/{thumbnail_sha}.jpg",
            code=page["code"], published_at=published_at, warnings=warnings,
            overlays=[_manifest_overlay(o) for o in page["overlays"]],
            premium={"overlays": list(split.premium_ids), "url": f"/api/v1/reader/pages/{page['id']}/premium"}
            if split.premium is not None else None)
        manifest_sha = artifacts.put(json.dumps(manifest, ensure_ascii=False, separators=(",", ":")).encode(), "json")
        page_manifests.append(manifest)
        page_entries[str(page["id"])] = {"manifest": manifest_sha, "marker": marker_sha, "image": page["image_sha"],
                                         "browser_marker": browser_sha, "edition_id": ed["id"], "code": page["code"]}
        if progress is not None:
            progress(len(page_entries), len(snapshot["pages"]))
    edition_doc = edition_manifest(edition=ed, pages=page_manifests, published_at=published_at)
    edition_sha = artifacts.put(json.dumps(edition_doc, ensure_ascii=False, separators=(",", ":")).encode(), "json")
    # a blob both free and premium (the same file on a free overlay too) stays in both sets: /pub/a/ serves it as
    # free content, and the part's signed URLs keep working
    entries = {"edition": edition_sha, "pages": page_entries, "premium_pages": premium_pages,
               "premium_artifacts": sorted(premium_blobs)}
    return entries, artifacts, markers


def _manifest_overlay(o: dict) -> dict:
    """An overlay as the page manifest lists it: a premium one with its teaser."""
    entry = {"id": o["id"], "kind": o["kind"], "name": o["name"], "access": o.get("access", "free")}
    if entry["access"] == "premium":
        entry["teaser"] = o.get("teaser") or premium.effective_teaser(o["kind"], None, False)
    return entry


def check_page_bundle(page: Page, store: AssetStore, settings: Settings,
                      options: BundleOptions = BundleOptions()) -> dict:
    """Build a draft page's bundle exactly as publishing would (nothing is stored) and report its sizes against
    the budgets, with warnings naming the biggest contributors — what a designer needs before sending for review.
    Raises AppError("bundle_check_failed") when the page cannot be packaged (the reason, never a server path)."""
    with tempfile.TemporaryDirectory(prefix=f"{TEMP_PREFIX}bundle-check-") as work, ExitStack() as copies:
        try:
            bundle = build_page_bundle(_page_spec(snapshot_page(page), store, copies), options, Path(work))
        except BundleBuildError as exc:
            raise AppError("bundle_check_failed", detail=verbatim(_without_paths(str(exc), settings))) from exc
        streamed = sum(m.bytes for m in bundle.media if m.streamed)
        inline_media = sum(m.bytes for m in bundle.media if not m.streamed)
        return {
            "page_id": page.id,
            "full_bytes": bundle.glb_full.stat().st_size,
            "lite_bytes": bundle.glb_lite.stat().st_size,
            "streamed_media_bytes": streamed,
            "other_media_bytes": inline_media,
            "budget_full_bytes": options.budget_full_bytes,
            "budget_lite_bytes": options.budget_lite_bytes,
            "contributors": [{"label": label, "bytes": size} for label, size in bundle.contributors[:5]],
            "warnings": [{"code": w.code, "message": w.message, **w.values} for w in bundle.warnings],
        }


PREMIUM_FREE_AFTER_MAX_DAYS = 3650


def set_premium_free_after(db: Session, settings: Settings, actor: Actor, publication, days) -> None:
    """Make an edition's premium overlays free for everyone ``days`` after its date (None: never), for the
    publication's published editions at once: the catalog carries the policy, so nothing is republished."""
    from .services import _number

    require_role(actor, PUBLISHERS)
    value = _number({"premium_free_after_days": days}, "premium_free_after_days", required=False, lo=1,
                    hi=PREMIUM_FREE_AFTER_MAX_DAYS, integer=True)
    before = publication.premium_free_after_days
    published = _published_store(settings)
    with publish_lock(db, published.dir):
        publication.premium_free_after_days = value
        audit(db, actor, "publication.premium_policy", "publication", publication.id,
              premium_free_after_days=[before, value])
        previous = published.current_bytes()
        current = published.read_catalog()
        catalog = json.loads(json.dumps(current))
        _set_policy(catalog, publication)
        if catalog == current:
            db.commit()
            return
        catalog["updated_at"] = utcnow().isoformat() + "Z"
        # the catalog first, then the commit; a failed commit puts the previous catalog back
        _switch_and_commit(db, published, None, catalog, previous, None)


def _train_stored_page(store: AssetStore, image_key: str, width_mm: float, height_mm: float, page_id) -> PageMarker:
    """The marker of a page whose image is in the asset store."""
    image = cv2.imdecode(np.frombuffer(store.read(image_key), np.uint8), cv2.IMREAD_COLOR)
    return train_page(image, width_mm, height_mm, str(page_id))


def _published_marker(pid: str, entry: dict, store: AssetStore) -> PageMarker:
    """A published page's marker. One an older library version trained (another marker format or keypoint
    convention) is trained again from the page image, stored, and ``entry["marker"]`` updated (the caller writes
    the catalog)."""
    data = store.read(entry["marker"])
    if PageMarker.stored_version(data) == MARKER_VERSION:
        return PageMarker.from_bytes(data)
    manifest = json.loads(store.read(entry["manifest"]))
    image_key = entry.get("image") or _legacy_image_key(manifest)
    marker = _train_stored_page(store, image_key, manifest["width_mm"], manifest["height_mm"], pid)
    entry["marker"] = store.put_bytes(marker.to_bytes())
    return marker


def _legacy_image_key(manifest: dict) -> str:
    """The page image of a catalog entry written before entries named it (``image``): the blob of the manifest's
    ``preview_url``, ``/pub/a/<sha256>.<ext>`` (publishing names the page image there)."""
    return manifest["preview_url"].rsplit("/", 1)[-1].split(".", 1)[0]


def _current_index(published, current: dict, store: AssetStore) -> RecognitionIndex:
    """The published recognition index; one written by an older library version is rebuilt from the published
    pages' markers (kept in the asset store; markers of an older version are trained again) with the scopes its
    header recorded."""
    if not current.get("index"):
        return RecognitionIndex()
    path = published.index_file(current["index"])
    if RecognitionIndex.stored_version(path) == INDEX_VERSION:
        return RecognitionIndex.load(path)
    scopes = RecognitionIndex.stored_scopes(path)
    index = RecognitionIndex()
    for pid, entry in current["pages"].items():
        index.add(_published_marker(str(pid), entry, store),
                  scopes=scopes.get(str(pid), (f"edition:{entry['edition_id']}",)))
    return index


def upgrade_index(settings: Settings, store: AssetStore) -> bool:
    """At start-up: rebuild a published index written by an older library version (readers would otherwise get
    no recognition until the next publish). Returns True when it rebuilt one."""
    published = _published_store(settings, store)
    current = published.read_catalog()
    name = current.get("index")
    if not name or name not in published.index_names():
        return False
    if RecognitionIndex.stored_version(published.index_file(name)) == INDEX_VERSION:
        return False
    with publish_lock(settings, published.dir):
        previous = published.current_bytes()
        current = published.read_catalog()  # another worker may have upgraded it meanwhile
        if RecognitionIndex.stored_version(published.index_file(current["index"])) == INDEX_VERSION:
            return False
        index = _current_index(published, current, store)
        index_name = _save_index(published, index, "upgrade")
        try:
            published.write_catalog(dict(current, index=index_name))
        except BaseException:
            published.write_catalog_bytes(previous)
            raise
        _sweep_indexes(published, keep=index_name)
    return True


def _save_index(published, index: RecognitionIndex, tag: str) -> str | None:
    """Step 2: the index under its content name in the published state (not named by a catalog yet)."""
    if len(index) == 0:
        return None
    tmp = published.dir / f".index-{tag}.tmp"
    try:
        index.save(tmp)
        name = f"index-{sha256_file(tmp)}.bnx"
        published.put_index(tmp, name)
    finally:
        tmp.unlink(missing_ok=True)
    return name


def _write_index(published, current: dict, edition_id: int, new_markers: dict,
                 scopes: tuple, store: AssetStore) -> str | None:
    """Step 2: load the current index, replace this edition's pages, save under a new content name."""
    index = _current_index(published, current, store)
    for pid, entry in current["pages"].items():
        if int(entry["edition_id"]) == edition_id:
            index.remove(str(pid))
    for pid, marker in new_markers.items():
        index.add(marker, scopes=scopes)
    return _save_index(published, index, str(edition_id))


def check_publishable(actor: Actor, edition: Edition) -> dict:
    """What a publish refuses at once (role, status, no pages, nothing new); returns the edition's snapshot."""
    require_role(actor, PUBLISHERS)
    if edition.status != EditionStatus.in_review.value:
        raise AppError("wrong_status", status=edition.status)
    if not edition.pages:
        raise AppError("empty_edition")
    snapshot = snapshot_edition(edition)
    if edition.published_version is not None and snapshot == edition.published_version.snapshot:
        # resubmitted with no change: an identical version would only be noise in the history
        raise AppError("no_changes", version=edition.published_version.version)
    return snapshot


def check_unpublishable(actor: Actor, edition: Edition) -> None:
    """What an unpublish refuses at once (role, nothing published)."""
    require_role(actor, PUBLISHERS)
    if edition.published_version_id is None:
        raise AppError("wrong_status", status=edition.status)


def publish_edition(db: Session, store: AssetStore, settings: Settings, actor: Actor, edition: Edition,
                    options: BundleOptions = BundleOptions(), progress: Progress | None = None) -> PublishedVersion:
    """Publish ``edition`` (steps 1-4 above). ``progress(pages_done, pages_total)``: see build_edition_artifacts."""
    snapshot = check_publishable(actor, edition)
    published = _published_store(settings, store)
    published_at = utcnow().isoformat() + "Z"
    try:
        with publish_lock(db, published.dir), \
                _Journal(published.dir, edition.id, actor, published_at, "publish") as journal:
            # another editor's publish may have run while this one waited for the lock: look again
            db.refresh(edition)
            if edition.status != EditionStatus.in_review.value:
                raise AppError("wrong_status", status=edition.status)
            entries, artifacts, markers_ = build_edition_artifacts(snapshot, store, published_at, options, progress)
            previous = published.current_bytes()
            current = published.read_catalog()
            scopes = (f"edition:{edition.id}", f"publication:{edition.publication.slug}")
            index_name = _write_index(published, current, edition.id, markers_, scopes, store)
            try:
                version = _add_version(db, actor, edition, snapshot, entries["edition"])
                catalog = _next_catalog(current, edition.id, edition.publication.slug, edition.code,
                                        version.version, entries, artifacts, index_name)
                _set_policy(catalog, edition.publication)
                _switch_and_commit(db, published, journal, catalog, previous, version.version)
            except BaseException:
                _drop_unnamed_index(published, index_name, current)
                raise
            _sweep_after_switch(published, index_name, current)
            return version
    except AppError:
        raise
    except Exception as exc:  # any failure: previous version keeps serving; the editor sees why
        raise _record_failure(db, settings, actor, edition, exc, "publish") from exc


def _add_version(db: Session, actor: Actor, edition: Edition, snapshot: dict, manifest_sha: str) -> PublishedVersion:
    """The rows of a publish (the version, the edition's pointer, the audit entry), flushed, not committed."""
    version_no = 1 + (db.scalar(select(func.max(PublishedVersion.version))
                                .where(PublishedVersion.edition_id == edition.id)) or 0)
    version = PublishedVersion(edition_id=edition.id, version=version_no, snapshot=snapshot,
                               manifest_sha=manifest_sha, published_by_id=actor.user_id)
    db.add(version)
    db.flush()
    edition.published_version_id = version.id
    edition.status = EditionStatus.draft.value  # later edits make a new draft; readers keep this version
    audit(db, actor, "edition.publish", "edition", edition.id, version=version_no,
          manifest=manifest_sha, pages=len(snapshot["pages"]))
    db.flush()
    return version


def _record_failure(db: Session, settings: Settings, actor: Actor, edition: Edition, exc: Exception,
                    verb: str) -> AppError:
    """Roll back, record the failure for the editor and the admins, and return the error to raise: a server fault
    (an incident id; every unpublish failure is one) or what in the content failed (never a server path)."""
    db.rollback()
    incident = secrets.token_hex(4)
    detail = f"{type(exc).__name__}: {exc}"[:2000]
    log.error("%sing edition %s failed [incident %s]", verb, edition.id, incident, exc_info=exc)
    # the full detail (paths included) for the newsroom's admins; the editor's message never holds a path
    prefix = "" if verb == "publish" else f"{verb}: "
    db.add(PublishFailure(edition_id=edition.id, user_id=actor.user_id, error=f"[{incident}] {prefix}{detail}"))
    audit(db, actor, f"edition.{verb}_failed", "edition", edition.id, error=detail[:500], incident=incident)
    db.commit()
    if verb != "publish" or isinstance(exc, SERVER_FAULTS):
        return ServerFault(incident)
    return PublishFailed(_without_paths(detail, settings))


def _without_paths(text: str, settings: Settings) -> str:
    """A message for the editor: the server's own directories replaced by "…"."""
    for root in sorted({str(settings.data_dir), tempfile.gettempdir(), str(Path(__file__).resolve().parents[1])},
                       key=len, reverse=True):
        text = text.replace(root, "…")
    return text


def unpublish_edition(db: Session, store: AssetStore, settings: Settings, actor: Actor, edition: Edition) -> None:
    """Withdraw the published edition: the same sequence as publishing (an index without its pages, the catalog
    switch, the commit; the previous catalog put back when the commit fails)."""
    check_unpublishable(actor, edition)
    published = _published_store(settings, store)
    try:
        with publish_lock(db, published.dir), \
                _Journal(published.dir, edition.id, actor, utcnow().isoformat() + "Z", "unpublish") as journal:
            db.refresh(edition)
            check_unpublishable(actor, edition)  # another unpublish may have run while this one waited
            previous = published.current_bytes()
            current = published.read_catalog()
            index_name = _write_index(published, current, edition.id, {}, (), store)
            try:
                version = edition.published_version
                version.unpublished_at = utcnow()
                edition.published_version_id = None
                audit(db, actor, "edition.unpublish", "edition", edition.id, version=version.version)
                db.flush()
                catalog = _next_catalog(current, edition.id, edition.publication.slug, edition.code,
                                        None, None, None, index_name)
                _switch_and_commit(db, published, journal, catalog, previous, None)
            except BaseException:
                _drop_unnamed_index(published, index_name, current)
                raise
            _sweep_after_switch(published, index_name, current)
    except AppError:
        raise
    except Exception as exc:  # the edition stays published, as the records say
        raise _record_failure(db, settings, actor, edition, exc, "unpublish") from exc


def _drop_unnamed_index(published, index_name: str | None, current: dict) -> None:
    """A failed publish's new index file: removed, unless it is the one the catalog names (an unchanged index)."""
    if index_name and index_name != current.get("index"):
        try:
            published.delete_index(index_name)
        except (OSError, StorageError):
            log.exception("removing the unnamed index %s failed; the next sweep will", index_name)


def _sweep_after_switch(published, index_name: str | None, current: dict) -> None:
    """After a committed switch: old index files go; a failure here is only logged (the publish is done and
    recorded; the next sweep removes what is left)."""
    try:
        _sweep_indexes(published, keep=index_name, also=current.get("index"))
    except (OSError, StorageError):
        log.exception("removing old index files failed; the next sweep will")


def _sweep_indexes(published, keep: str | None, also: str | None = None) -> int:
    """Remove the index files no catalog names. On an object store the index just replaced (``also``) stays until
    the next switch: a replica that read the previous catalog a moment ago may still be fetching it. (On local disk a
    server that still has the old file open keeps its handle.) Returns how many were removed."""
    kept = {keep} | ({also} if published.in_bucket and also else set())
    removed = 0
    for name in published.index_names():
        if name not in kept:
            published.delete_index(name)
            removed += 1
    return removed
