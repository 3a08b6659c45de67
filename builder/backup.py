"""``baonhung backup FILE`` / ``baonhung restore FILE``: the whole product state in one archive, consistent while the
server runs and publishes. No Flask here.

What is consistent with what:
- the database is copied as one snapshot (SQLite's online backup API; ``pg_dump`` for PostgreSQL, itself one
  transaction), and the published catalog, its version key and the recognition index with it (files under
  ``<data>/published``, or the bucket's objects on S3: ``viewer_api.published``), all while holding the publish
  lock, so no
  publish or unpublish falls between them;
- the asset store (local disk or S3, through its interface) is copied after that: blobs are immutable and written
  before the rows that name them, so every blob the snapshot refers to is there (blobs uploaded later come along
  unreferenced, which is harmless).

The archive (tar, gzip level 1: most blobs are compressed media already) holds ``BACKUP.json`` (format, time,
database kind, migration revision, counts), ``database.sqlite3`` or ``database.pgdump``, ``store/…`` and
``published/…`` (a blob as ``store/ab/cd/<sha256>`` whichever store it came from; it is restored into the
configured store, so a backup of a local store restores onto S3 and back). Restoring refuses a data directory or
database that already holds content, unless forced;
extraction accepts only regular files under those names (no links, no absolute or ``..`` paths).
"""
from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from pathlib import Path

from viewer_api.published import CATALOG_FILE as PUBLISHED_CATALOG, VERSION_FILE as PUBLISHED_VERSION

from .config import Settings
from .procs import limited
from .storage import SHA256_RE, StorageError, sha256_file, store_from_settings

FORMAT = 1
DUMP_TIMEOUT_S = 3600


class BackupError(RuntimeError):
    """A backup or restore that cannot be done; the message says why (nothing was changed by a refused restore)."""


def _sqlite_path(url: str) -> Path | None:
    return Path(url[len("sqlite:///"):]) if url.startswith("sqlite:///") else None


def _pg_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _revision(url: str) -> str | None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except Exception:  # noqa: BLE001 - an empty database has no revision
        return None
    finally:
        engine.dispose()


def backup(settings: Settings, dest: Path) -> dict:
    """Write the archive to ``dest`` (atomically: a failed backup leaves no file). Returns BACKUP.json's content."""
    from .publish import _published_store, publish_lock

    dest = Path(dest)
    store = store_from_settings(settings)
    published = _published_store(settings, store)  # files under <data>/published, or objects in the bucket (S3)
    with tempfile.TemporaryDirectory(prefix="baonhung-backup-", dir=dest.parent) as tmp:
        work = Path(tmp)
        (work / "published").mkdir()
        with publish_lock(settings, published.dir):  # across machines on PostgreSQL (advisory lock)
            sqlite = _sqlite_path(settings.database_url)
            if sqlite is not None:
                if not sqlite.is_file():
                    raise BackupError(f"no database at {sqlite}")
                db_name = "database.sqlite3"
                src, dst = sqlite3.connect(sqlite), sqlite3.connect(work / db_name)
                try:
                    src.backup(dst)  # a consistent copy while others read and write
                finally:
                    dst.close()
                    src.close()
            else:
                db_name = "database.pgdump"
                _run(["pg_dump", "--format=custom", "--no-owner", f"--file={work / db_name}",
                      _pg_url(settings.database_url)], "pg_dump")
            revision = _revision(settings.database_url)
            kept = []
            for name in published.index_names() + [PUBLISHED_CATALOG, PUBLISHED_VERSION]:
                content = published.files.read(name)
                if content is not None:
                    (work / "published" / name).write_bytes(content)
                    kept.append(name)
        info = {"format": FORMAT, "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                "database": "sqlite" if db_name.endswith("sqlite3") else "postgresql", "revision": revision,
                "published": kept, "blobs": 0}
        partial = dest.with_name(dest.name + ".part")
        with tarfile.open(partial, "w:gz", compresslevel=1) as tar:
            tar.add(work / db_name, arcname=db_name)
            for name in kept:
                tar.add(work / "published" / name, arcname=f"published/{name}")
            for key in sorted(store.list()):
                member = tarfile.TarInfo(f"store/{key[:2]}/{key[2:4]}/{key}")
                try:
                    member.size, member.mtime = store.size(key), int(store.modified(key))
                    with store.open(key) as fh:
                        tar.addfile(member, fh)
                except StorageError:  # deleted meanwhile (garbage collection): an unreferenced blob, not needed
                    continue
                info["blobs"] += 1
            blob = json.dumps(info, indent=2).encode()
            member = tarfile.TarInfo("BACKUP.json")
            member.size = len(blob)
            import io

            tar.addfile(member, io.BytesIO(blob))
        os.replace(partial, dest)
    return info


def _run(cmd: list[str], what: str) -> None:
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=DUMP_TIMEOUT_S, check=False, preexec_fn=limited(None))
    except FileNotFoundError:
        raise BackupError(f"{what} not found (install the PostgreSQL client: apt-get install postgresql-client)") from None
    except subprocess.TimeoutExpired:
        raise BackupError(f"{what} took more than {DUMP_TIMEOUT_S} s") from None
    if proc.returncode != 0:
        raise BackupError(f"{what} failed: {proc.stderr.decode('utf-8', 'replace').strip()[:500]}")


def _safe_members(tar: tarfile.TarFile) -> list[tarfile.TarInfo]:
    allowed = ("BACKUP.json", "database.sqlite3", "database.pgdump")
    out = []
    for m in tar.getmembers():
        name = m.name
        parts = Path(name).parts
        if not m.isfile() or name.startswith("/") or ".." in parts:
            raise BackupError(f"refusing archive member {name!r} (not a plain file under a known name)")
        if name not in allowed and parts[0] not in ("store", "published"):
            raise BackupError(f"refusing archive member {name!r} (not part of a Báo Nhúng backup)")
        out.append(m)
    return out


def _has_content(settings: Settings) -> bool:
    if next(iter(store_from_settings(settings).list()), None) is not None:
        return True
    sqlite = _sqlite_path(settings.database_url)
    if sqlite is not None:
        return sqlite.is_file() and sqlite.stat().st_size > 0 and _revision(settings.database_url) is not None
    return _revision(settings.database_url) is not None


def _archive_info(tar: tarfile.TarFile, names: set, src: Path, kind: str) -> dict:
    """BACKUP.json of the archive, refused unless it is a backup of this format and of this database engine."""
    if "BACKUP.json" not in names:
        raise BackupError(f"{src} has no BACKUP.json: not a Báo Nhúng backup")
    info = json.loads(tar.extractfile("BACKUP.json").read())
    if info.get("format") != FORMAT:
        raise BackupError(f"backup format {info.get('format')!r} is not {FORMAT}")
    if info.get("database") != kind:
        raise BackupError(f"the backup holds a {info.get('database')} database; this server uses {kind}")
    return info


def _unpack_checked(tar: tarfile.TarFile, members: list, work: Path) -> list[Path]:
    """Every member into ``work``; the store's blobs (returned) checked against their names before anything is
    replaced: a damaged archive changes nothing."""
    for m in members:
        target = work / m.name
        target.parent.mkdir(parents=True, exist_ok=True)
        with tar.extractfile(m) as fh, open(target, "wb") as out:
            shutil.copyfileobj(fh, out)
    blobs = [p for p in sorted((work / "store").rglob("*")) if p.is_file()] if (work / "store").is_dir() else []
    for path in blobs:
        if not SHA256_RE.match(path.name) or sha256_file(path) != path.name:
            raise BackupError(f"archive member store/{path.relative_to(work / 'store').as_posix()} "
                              "does not hold the blob its name says (a damaged archive)")
    return blobs


def _restore_published(settings: Settings, store, work: Path, force: bool) -> None:
    """The published state (local files, or the bucket's objects on S3): the indexes first, then the catalog and
    its version key."""
    from .publish import _published_store

    published = _published_store(settings, store)
    if force:
        for name in published.index_names() + [PUBLISHED_VERSION, PUBLISHED_CATALOG]:
            published.files.delete(name)
    restored = {p.name: p for p in (work / "published").iterdir()} if (work / "published").is_dir() else {}
    for name, path in sorted(restored.items()):
        if name.startswith("index-"):
            published.put_index(path, name)
    for name in (PUBLISHED_CATALOG, PUBLISHED_VERSION):
        if name in restored:
            published.files.write(name, restored[name].read_bytes())


def restore(settings: Settings, src: Path, force: bool = False) -> dict:
    """Restore an archive into the configured data directory and database. Refuses (changing nothing) when they
    hold content and ``force`` is not given, or when the archive is not a backup of this format."""
    from .db import upgrade

    src = Path(src)
    try:
        tar = tarfile.open(src, "r:gz")
    except (OSError, tarfile.TarError) as exc:
        raise BackupError(f"{src} is not a backup archive: {exc}") from None
    with tar:
        members = _safe_members(tar)
        kind = "sqlite" if _sqlite_path(settings.database_url) else "postgresql"
        info = _archive_info(tar, {m.name for m in members}, src, kind)
        if _has_content(settings) and not force:
            raise BackupError("the data directory or database already holds content; restore into an empty one, "
                              "or pass --force to replace it")
        data = settings.data_dir
        data.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="baonhung-restore-", dir=data) as tmp:
            work = Path(tmp)
            blobs = _unpack_checked(tar, members, work)
            if kind == "sqlite":
                sqlite = _sqlite_path(settings.database_url)
                sqlite.parent.mkdir(parents=True, exist_ok=True)
                os.replace(work / "database.sqlite3", sqlite)
            else:
                _run(["pg_restore", "--clean", "--if-exists", "--no-owner", f"--dbname={_pg_url(settings.database_url)}",
                      str(work / "database.pgdump")], "pg_restore")
            store = store_from_settings(settings)
            for path in blobs:
                store.put_file(path)
            _restore_published(settings, store, work, force)
    upgrade(settings.database_url)  # a backup of an older version is brought to this one's schema
    return info
