"""Asset store: files addressed by their SHA-256, behind one interface.

Modelled on CTFd's uploaders: one small interface, a local-disk implementation, chosen by a
config key from a registry (S3 comes later and only has to implement the same methods).

Layout of the local store (``root`` = ``$BAONHUNG_DATA_DIR/store``)::

    root/ab/cd/abcd…ef      one file per blob, named by its lowercase hex SHA-256

Writes are atomic: the bytes go to a temporary file in the same directory, are flushed and
fsync'ed, then renamed over the final name. A reader therefore sees either no file or the whole
file, never a half-written one; an interrupted write leaves at most a ``.tmp-*`` file that
:meth:`LocalDiskStore.sweep_temporaries` removes.
"""
from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterator

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


class AssetStore:
    """Interface every store implements. Keys are lowercase hex SHA-256 digests."""

    def put_bytes(self, data: bytes) -> str:
        raise NotImplementedError

    def put_file(self, path: Path) -> str:
        raise NotImplementedError

    def open(self, key: str) -> BinaryIO:
        raise NotImplementedError

    def read(self, key: str) -> bytes:
        with self.open(key) as fh:
            return fh.read()

    def exists(self, key: str) -> bool:
        raise NotImplementedError

    def size(self, key: str) -> int:
        raise NotImplementedError

    def delete(self, key: str) -> None:
        raise NotImplementedError

    def keys(self) -> Iterator[str]:
        raise NotImplementedError


class LocalDiskStore(AssetStore):
    """Blobs in a directory tree on local disk (the embedded default)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        """Filesystem path of a blob (local store only; used to stream files with Range support)."""
        if not SHA256_RE.match(key or ""):
            raise StorageError(f"not a SHA-256 key: {key!r}", key)
        return self.root / key[:2] / key[2:4] / key

    def _atomic_write(self, key: str, write) -> str:
        final = self.path(key)
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
            return open(self.path(key), "rb")
        except FileNotFoundError as exc:
            raise StorageError(f"no blob {key}", key) from exc

    def exists(self, key: str) -> bool:
        try:
            return self.path(key).is_file()
        except StorageError:
            return False

    def size(self, key: str) -> int:
        try:
            return self.path(key).stat().st_size
        except FileNotFoundError as exc:
            raise StorageError(f"no blob {key}", key) from exc

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def keys(self) -> Iterator[str]:
        for p in self.root.glob("*/*/*"):
            if SHA256_RE.match(p.name):
                yield p.name

    def sweep_temporaries(self) -> int:
        """Remove leftovers of interrupted writes; returns how many were removed."""
        removed = 0
        for p in self.root.glob("*/*/.tmp-*"):
            p.unlink(missing_ok=True)
            removed += 1
        return removed


STORE_BACKENDS = {"local": LocalDiskStore}


def make_store(backend: str, **options) -> AssetStore:
    """Build the configured store; ``backend`` is a key of :data:`STORE_BACKENDS`."""
    try:
        cls = STORE_BACKENDS[backend]
    except KeyError:
        raise StorageError(f"unknown storage backend {backend!r}; known: {sorted(STORE_BACKENDS)}") from None
    return cls(**options)
