"""The asset store on an S3-compatible object store (AWS, the Viettel / VNG / FPT clouds, OpenStack Swift's s3api,
MinIO, Ceph RGW), through boto3. Selected by ``BAONHUNG_STORAGE=s3`` (see :func:`builder.storage.store_options`).

One object per blob, named ``<prefix><sha256>`` (default prefix ``blobs/``: the bucket may hold other things beside
it). Writes: a PUT is atomic per object (a reader sees no object or the whole object), and the key is the
content's digest, so a second writer of the same blob writes the same bytes; a blob already there is not sent
again (one HEAD first). Reads stream: :meth:`S3Store.open` gives a seekable stream whose reads are (ranged)
GetObjects, so serving a byte range of a video reads only that range from the bucket.

Path-style addressing (``endpoint/bucket/key``) because Swift and most private clouds have no wildcard DNS for
virtual-hosted buckets; request checksums only where the API requires them, because the newer default (CRC32
trailers in aws-chunked uploads) is not understood by every S3-compatible server.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import io
import shutil
import tempfile
import threading
from pathlib import Path
from typing import BinaryIO, Iterator

from .storage import COPY_CHUNK, NAME_RE, SHA256_RE, AssetStore, StorageError, check_key, sha256_bytes, sha256_file

CONNECT_TIMEOUT_S = 5  # a bucket on the same network answers in milliseconds; fail fast when it is down
READ_TIMEOUT_S = 60  # a slow first byte of a large object on a busy store
MAX_POOL = 32  # connections per process: gunicorn threads + a publish's writes
RETRIES = 3  # botocore's "standard" retry mode: throttling and 5xx, with backoff
LIST_PAGE = 1000  # keys per ListObjectsV2 answer (S3's own maximum)
SIZE_CACHE_MAX = 100_000  # (size, mtime) of blobs seen, per process: blobs are immutable, a HEAD per hit is waste
# Named objects (the published catalog, its version key, the recognition index) live under <prefix>published/: apart
# from the blobs (whose names are exactly 64 hex digits after the prefix, so list() never takes one for a blob), and
# apart per prefix, so two deployments sharing a bucket under two prefixes keep two published states.
NAMED_DIR = "published/"


class _S3Reader(io.RawIOBase):
    """A seekable read-only stream over one object: each read after a seek issues one GetObject with
    ``Range: bytes=<position>-`` (the first read with none when at 0), and streams it."""

    def __init__(self, store: "S3Store", key: str, size: int, body=None):
        super().__init__()
        self._store, self._key, self._size = store, key, size
        self._body = body  # an open GetObject body positioned at self._pos, or None
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        pos = base + offset
        if pos < 0:
            raise ValueError(f"negative seek position {pos}")
        if pos != self._pos:
            self._drop_body()
            self._pos = pos
        return pos

    def _drop_body(self) -> None:
        if self._body is not None:
            self._body.close()
            self._body = None

    def _ensure_body(self) -> None:
        if self._body is None:
            self._body = self._store._get_body(self._key, self._pos)

    def readinto(self, buffer) -> int:
        if self._pos >= self._size:
            return 0
        self._ensure_body()
        data = self._body.read(min(len(buffer), self._size - self._pos))
        n = len(data)
        buffer[:n] = data
        self._pos += n
        return n

    def readall(self) -> bytes:
        if self._pos >= self._size:
            return b""
        self._ensure_body()
        data = self._body.read()
        self._pos += len(data)
        return data

    def close(self) -> None:
        self._drop_body()
        super().close()


class S3Store(AssetStore):
    """Blobs as objects in one bucket of an S3-compatible service, and the published state as named objects."""

    NAMED_OBJECTS = True

    def __init__(self, endpoint: str, bucket: str, region: str = "us-east-1", access_key: str = "",
                 secret_key: str = "", prefix: str = "blobs/"):
        import boto3
        from botocore.config import Config

        if not bucket:
            raise StorageError("the S3 store needs a bucket (BAONHUNG_S3_BUCKET)")
        self.bucket = bucket
        self.prefix = prefix
        config = Config(
            region_name=region or "us-east-1", signature_version="s3v4", s3={"addressing_style": "path"},
            connect_timeout=CONNECT_TIMEOUT_S, read_timeout=READ_TIMEOUT_S, max_pool_connections=MAX_POOL,
            retries={"mode": "standard", "max_attempts": RETRIES},
            request_checksum_calculation="when_required", response_checksum_validation="when_required")
        self.client = boto3.session.Session().client(
            "s3", endpoint_url=endpoint or None, aws_access_key_id=access_key or None,
            aws_secret_access_key=secret_key or None, config=config)
        self._stat: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()

    # -- helpers ----------------------------------------------------------------------------------------------
    def _name(self, key: str) -> str:
        return self.prefix + check_key(key)

    @staticmethod
    def _is_missing(exc) -> bool:
        from botocore.exceptions import ClientError

        return isinstance(exc, ClientError) and (
            exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound")
            or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404)

    def _call(self, key: str | None, what: str, fn, **kwargs):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(Bucket=self.bucket, **kwargs)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "NoSuchBucket":  # a 404 too, but not a missing blob
                raise StorageError(f"S3 {what} failed: the bucket {self.bucket} does not exist", key) from exc
            if self._is_missing(exc):
                raise StorageError(f"no blob {key}", key) from exc
            raise StorageError(f"S3 {what} failed: {exc}", key) from exc
        except BotoCoreError as exc:
            raise StorageError(f"S3 {what} failed: {exc}", key) from exc

    def _remember(self, key: str, size: int, mtime: float) -> None:
        with self._lock:
            if len(self._stat) >= SIZE_CACHE_MAX:
                self._stat.clear()
            self._stat[key] = (size, mtime)

    def _head(self, key: str, fresh: bool = False) -> tuple[int, float]:
        cached = None if fresh else self._stat.get(key)
        if cached is not None:
            return cached
        head = self._call(key, "HeadObject", self.client.head_object, Key=self._name(key))
        stat = (int(head["ContentLength"]), head["LastModified"].timestamp())
        self._remember(key, *stat)
        return stat

    def _get_body(self, key: str, start: int = 0):
        ranged = {"Range": f"bytes={start}-"} if start else {}
        return self._call(key, "GetObject", self.client.get_object, Key=self._name(key), **ranged)["Body"]

    def create_bucket(self) -> None:
        """Create the bucket when it does not exist yet (deployment and tests; the app never calls it)."""
        from botocore.exceptions import ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError:
            try:
                self._call(None, "CreateBucket", self.client.create_bucket)
            except StorageError as exc:  # another process created it between the two calls
                code = getattr(exc.__cause__, "response", {}).get("Error", {}).get("Code")
                if code != "BucketAlreadyOwnedByYou":
                    raise

    # -- the interface ----------------------------------------------------------------------------------------
    def _stored(self, key: str) -> bool:
        """Whether the bucket holds the blob now (never from the cache: another process may have deleted it)."""
        try:
            self._head(key, fresh=True)
        except StorageError as exc:
            if self._is_missing(exc.__cause__):
                return False
            raise
        return True

    def put_bytes(self, data: bytes) -> str:
        key = sha256_bytes(data)
        if not self._stored(key):
            self._call(key, "PutObject", self.client.put_object, Key=self._name(key), Body=data,
                       ContentLength=len(data))
        return key

    def put_file(self, path: Path) -> str:
        key = sha256_file(path)
        if not self._stored(key):
            with open(path, "rb") as fh:
                self._call(key, "PutObject", self.client.put_object, Key=self._name(key), Body=fh,
                           ContentLength=Path(path).stat().st_size)
        return key

    def open(self, key: str) -> BinaryIO:
        response = self._call(key, "GetObject", self.client.get_object, Key=self._name(key))
        self._remember(key, int(response["ContentLength"]), response["LastModified"].timestamp())
        return _S3Reader(self, key, int(response["ContentLength"]), response["Body"])

    def read(self, key: str) -> bytes:
        body = self._get_body(key)
        try:
            return body.read()
        finally:
            body.close()

    def exists(self, key: str) -> bool:
        if not SHA256_RE.match(key or ""):
            return False
        try:
            self._head(key)
        except StorageError as exc:
            if self._is_missing(exc.__cause__):
                return False
            raise
        return True

    def size(self, key: str) -> int:
        return self._head(key)[0]

    def modified(self, key: str) -> float:
        return self._head(key)[1]

    def delete(self, key: str) -> None:
        self._call(key, "DeleteObject", self.client.delete_object, Key=self._name(key))
        with self._lock:
            self._stat.pop(key, None)

    def list(self) -> Iterator[str]:
        from botocore.exceptions import BotoCoreError, ClientError

        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix, PaginationConfig={"PageSize": LIST_PAGE})
        try:
            for page in pages:
                for obj in page.get("Contents", []):
                    key = obj["Key"][len(self.prefix):]
                    if SHA256_RE.match(key):
                        modified = obj["LastModified"]
                        self._remember(key, int(obj["Size"]), modified.timestamp()
                                       if isinstance(modified, dt.datetime) else 0.0)
                        yield key
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"S3 ListObjectsV2 failed: {exc}") from exc

    @contextlib.contextmanager
    def local_copy(self, key: str) -> Iterator[Path]:
        with tempfile.TemporaryDirectory(prefix="baonhung-s3-") as tmp:
            path = Path(tmp) / key
            body = self._get_body(key)
            try:
                with open(path, "wb") as out:
                    shutil.copyfileobj(body, out, COPY_CHUNK)
            finally:
                body.close()
            yield path

    def send(self, key: str, mime: str, *, etag: str | None = None, cache_control: str | None = None,
             conditional: bool = True):
        from .storage import BlobSend

        size = self.size(key)  # one HEAD (then cached); the body is fetched only when the response is sent
        return BlobSend(key=key, size=size, mime=mime, etag=etag or key, cache_control=cache_control,
                        conditional=conditional, open=lambda: _S3Reader(self, key, size))

    # -- named objects (the published state: viewer_api.published.BucketFiles) ------------------------------------
    def _named(self, name: str) -> str:
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise StorageError(f"not an object name: {name!r}")
        return self.prefix + NAMED_DIR + name

    def put_named(self, name: str, data: bytes) -> None:
        """One PUT: a reader gets the old object or the new one, never a mix."""
        self._call(None, "PutObject", self.client.put_object, Key=self._named(name), Body=data,
                   ContentLength=len(data))

    def put_named_file(self, name: str, path: Path) -> None:
        with open(path, "rb") as fh:
            self._call(None, "PutObject", self.client.put_object, Key=self._named(name), Body=fh,
                       ContentLength=Path(path).stat().st_size)

    def read_named(self, name: str) -> bytes | None:
        try:
            body = self._call(None, "GetObject", self.client.get_object, Key=self._named(name))["Body"]
        except StorageError as exc:
            if self._is_missing(exc.__cause__):
                return None
            raise
        try:
            return body.read()
        finally:
            body.close()

    def fetch_named(self, name: str, path: Path) -> None:
        body = self._call(None, "GetObject", self.client.get_object, Key=self._named(name))["Body"]
        try:
            with open(path, "wb") as out:
                shutil.copyfileobj(body, out, COPY_CHUNK)
        finally:
            body.close()

    def delete_named(self, name: str) -> None:
        self._call(None, "DeleteObject", self.client.delete_object, Key=self._named(name))

    def list_named(self) -> list[str]:
        from botocore.exceptions import BotoCoreError, ClientError

        start = self.prefix + NAMED_DIR
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=start, PaginationConfig={"PageSize": LIST_PAGE})
        try:
            return [obj["Key"][len(start):] for page in pages for obj in page.get("Contents", [])
                    if NAME_RE.match(obj["Key"][len(start):])]
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"S3 ListObjectsV2 failed: {exc}") from exc
