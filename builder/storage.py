"""Asset store: files addressed by their SHA-256, behind one interface.

Modelled on CTFd's uploaders: one small interface, a local-disk and an S3 implementation, chosen by a config key
from a registry (:data:`STORE_BACKENDS`; :func:`store_from_settings` builds the configured one).

The interface (:class:`AssetStore`) is all a caller gets: ``put_bytes``/``put_file`` (return the key),
``open`` (a binary stream), ``read``, ``exists``, ``size``, ``modified``, ``delete``, ``list`` (every key),
``local_copy`` (a file path for a library that needs one, as a context manager) and ``send`` (a
:class:`BlobSend` a web layer turns into a response with Range, ETag and 304; see ``viewer_api/public.py``
``send_blob``). No caller outside this module (and :mod:`builder.storage_s3`) touches a blob's path.

Layout of the local store (``root`` = ``$BAONHUNG_DATA_DIR/store``)::

    root/ab/cd/abcd…ef      one file per blob, named by its lowercase hex SHA-256

Writes are atomic: the bytes go to a temporary file in the same directory, are flushed and
fsync'ed, then renamed over the final name. A reader therefore sees either no file or the whole
file, never a half-written one; an interrupted write leaves at most a ``.tmp-*`` file that
:meth:`LocalDiskStore.sweep_temporaries` removes. (An S3 PUT is atomic per object, and a key is the
content's digest, so two writers of one blob write the same bytes.)
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
COPY_CHUNK = 1 << 20  # 1 MiB: large enough for throughput, small enough to bound memory per request


class StorageError(Exception):
    """A blob could not be stored or read (bad key, missing blob, I/O failure)."""

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(COPY_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_key(key: str) -> str:
    """``key`` when it is a lowercase hex SHA-256; StorageError otherwise (never a path outside the store)."""
    if not isinstance(key, str) or not SHA256_RE.match(key):
        raise StorageError(f"not a SHA-256 key: {key!r}", key if isinstance(key, str) else None)
    return key


@dataclass(frozen=True)
class BlobSend:
    """What a web layer needs to answer a GET for one blob, with no web framework in it.

    ``open()`` gives a seekable binary stream of the whole blob (``size`` bytes); a Range request seeks it and reads
    only the range (on S3 that is one ranged GetObject, issued on the first read — a 304 reads nothing).
    ``etag`` is the strong validator (the key, or the key and a suffix), ``cache_control`` the header value or
    None, ``conditional`` whether If-None-Match / Range are honoured."""

    key: str
    size: int
    mime: str
    etag: str
    cache_control: str | None
    conditional: bool
    open: Callable[[], BinaryIO]


NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")  # a named object: a plain file name, no path


class AssetStore:
    """Interface every store implements. Keys are lowercase hex SHA-256 digests of the content.

    A store with ``NAMED_OBJECTS`` (S3) also holds a few mutable objects by name beside the blobs — the published
    catalog, its version key and the recognition index (``viewer_api.published.BucketFiles``): ``put_named``,
    ``put_named_file``, ``read_named`` (None when missing), ``fetch_named`` (into a local file), ``delete_named``,
    ``list_named``. The local store has none: the published state is files under ``<data>/published``."""

    NAMED_OBJECTS = False

    def put_bytes(self, data: bytes) -> str:
        raise NotImplementedError

    def put_file(self, path: Path) -> str:
        raise NotImplementedError

    def open(self, key: str) -> BinaryIO:
        """The blob as a readable, seekable binary stream (close it, or use it in ``with``)."""
        raise NotImplementedError

    def read(self, key: str) -> bytes:
        with self.open(key) as fh:
            return fh.read()

    def exists(self, key: str) -> bool:
        raise NotImplementedError

    def size(self, key: str) -> int:
        raise NotImplementedError

    def modified(self, key: str) -> float:
        """When the blob was written (seconds since the epoch): garbage collection spares young blobs."""
        raise NotImplementedError

    def delete(self, key: str) -> None:
        raise NotImplementedError

    def list(self) -> Iterator[str]:
        """Every key in the store, in no particular order."""
        raise NotImplementedError

    def local_copy(self, key: str) -> contextlib.AbstractContextManager[Path]:
        """A context manager giving a file path holding the blob, for a library that needs a path (OpenCV, ffmpeg,
        trimesh). The file must not be written to; it is valid only inside the ``with``."""
        raise NotImplementedError

    def send(self, key: str, mime: str, *, etag: str | None = None, cache_control: str | None = None,
             conditional: bool = True) -> BlobSend:
        """A :class:`BlobSend` for the blob; StorageError when there is no such blob."""
        return BlobSend(key=key, size=self.size(key), mime=mime, etag=etag or key, cache_control=cache_control,
                        conditional=conditional, open=lambda: self.open(key))

    def put_named(self, name: str, data: bytes) -> None:
        raise NotImplementedError

    def put_named_file(self, name: str, path: Path) -> None:
        raise NotImplementedError

    def read_named(self, name: str) -> bytes | None:
        raise NotImplementedError

    def fetch_named(self, name: str, path: Path) -> None:
        raise NotImplementedError

    def delete_named(self, name: str) -> None:
        raise NotImplementedError

    def list_named(self) -> list[str]:
        raise NotImplementedError

    def sweep_temporaries(self) -> int:
        """Remove leftovers of interrupted writes; returns how many were removed (none where writes are atomic)."""
        return 0

    def served_name(self, key: str) -> str | None:
        """The blob's name relative to a directory a web server can send files from (nginx's X-Accel-Redirect), or
        None when the store has none (S3)."""
        return None


class LocalDiskStore(AssetStore):
    """Blobs in a directory tree on local disk (the embedded default)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        check_key(key)
        return self.root / key[:2] / key[2:4] / key

    def _atomic_write(self, key: str, write) -> str:
        final = self._path(key)
        if final.exists():
            return key
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=final.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                write(fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, final)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return key

    def put_bytes(self, data: bytes) -> str:
        return self._atomic_write(sha256_bytes(data), lambda fh: fh.write(data))

    def put_file(self, path: Path) -> str:
        key = sha256_file(path)

        def copy(fh):
            with open(path, "rb") as src:
                for chunk in iter(lambda: src.read(COPY_CHUNK), b""):
                    fh.write(chunk)

        return self._atomic_write(key, copy)

    def open(self, key: str) -> BinaryIO:
        try:
            return open(self._path(key), "rb")
        except FileNotFoundError as exc:
            raise StorageError(f"no blob {key}", key) from exc

    def exists(self, key: str) -> bool:
        try:
            return self._path(key).is_file()
        except StorageError:
            return False

    def size(self, key: str) -> int:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError as exc:
            raise StorageError(f"no blob {key}", key) from exc

    def modified(self, key: str) -> float:
        try:
            return self._path(key).stat().st_mtime
        except FileNotFoundError as exc:
            raise StorageError(f"no blob {key}", key) from exc

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def list(self) -> Iterator[str]:
        for p in self.root.glob("*/*/*"):
            if SHA256_RE.match(p.name):
                yield p.name

    def served_name(self, key: str) -> str:
        check_key(key)
        return f"{key[:2]}/{key[2:4]}/{key}"  # the layout above, under root

    @contextlib.contextmanager
    def local_copy(self, key: str) -> Iterator[Path]:
        path = self._path(key)
        if not path.is_file():
            raise StorageError(f"no blob {key}", key)
        yield path  # the blob itself: no copy on local disk

    def sweep_temporaries(self) -> int:
        removed = 0
        for p in self.root.glob("*/*/.tmp-*"):
            p.unlink(missing_ok=True)
            removed += 1
        return removed


def _s3_store(**options) -> AssetStore:
    from .storage_s3 import S3Store  # boto3 is imported only when S3 is configured

    return S3Store(**options)


STORE_BACKENDS: dict[str, Callable[..., AssetStore]] = {"local": LocalDiskStore, "s3": _s3_store}


def make_store(backend: str, **options) -> AssetStore:
    """Build the configured store; ``backend`` is a key of :data:`STORE_BACKENDS`."""
    try:
        factory = STORE_BACKENDS[backend]
    except KeyError:
        raise StorageError(f"unknown storage backend {backend!r}; known: {sorted(STORE_BACKENDS)}") from None
    return factory(**options)


def store_options(settings) -> dict:
    """The options of the configured backend, from :class:`builder.config.Settings`."""
    if settings.storage_backend == "s3":
        return {"endpoint": settings.s3_endpoint, "bucket": settings.s3_bucket, "region": settings.s3_region,
                "access_key": settings.s3_access_key, "secret_key": settings.s3_secret_key,
                "prefix": settings.s3_prefix}
    return {"root": settings.data_dir / "store"}


def store_from_settings(settings) -> AssetStore:
    """The asset store ``settings`` configure (``BAONHUNG_STORAGE``: local disk under the data directory, or S3)."""
    return make_store(settings.storage_backend, **store_options(settings))
