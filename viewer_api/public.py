"""Public endpoints: immutable content-addressed artifacts, manifests, and ``POST /api/v1/recognize``."""
from __future__ import annotations

from flask import Blueprint, Response, abort, current_app, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.http import is_resource_modified
from werkzeug.wsgi import wrap_file

from builder.errors import AppError
from builder.http_errors import status_for
from builder.storage import BlobSend, StorageError

public_bp = Blueprint("public", __name__)

IMMUTABLE = "public, max-age=31536000, immutable"
RECOGNIZE_MAX_BYTES = 8 * 1024 * 1024  # a 12 MP phone JPEG is 3–6 MB; the viewer sends ~640 px frames
FORM_OVERHEAD = 64 * 1024  # multipart boundaries and headers around the image
EXT_MIME = {
    "glb": "model/gltf-binary", "json": "application/json", "png": "image/png", "jpg": "image/jpeg",
    "webp": "image/webp", "mp4": "video/mp4", "webm": "video/webm", "mp3": "audio/mpeg", "m4a": "audio/mp4",
    "aac": "audio/aac", "ogg": "audio/ogg", "wav": "audio/wav", "bin": "application/octet-stream",
    "gif": "image/gif",
}
COMPRESSIBLE = {"glb", "json", "bin"}
# What each blob is, from its first bytes: it is served only under the extensions of that kind (a JPEG is never
# application/json). A blob with no signature (a glTF buffer, JSON) is "bin" or "json".
_SIGNATURES = (
    (0, b"glTF", "glb"), (0, b"\x89PNG\r\n\x1a\n", "png"), (0, b"\xff\xd8\xff", "jpg"), (0, b"GIF8", "gif"),
    (8, b"WEBP", "webp"), (8, b"WAVE", "wav"), (4, b"ftyp", "mp4"), (0, b"\x1a\x45\xdf\xa3", "webm"),
    (0, b"OggS", "ogg"), (0, b"ID3", "mp3"),
)
_EXTENSIONS_OF = {"glb": {"glb"}, "png": {"png"}, "jpg": {"jpg"}, "gif": {"gif"}, "webp": {"webp"}, "wav": {"wav"},
                  "mp4": {"mp4", "m4a"}, "webm": {"webm"}, "ogg": {"ogg"}, "mp3": {"mp3"},
                  "mpeg-audio": {"mp3", "aac"}, None: {"bin", "json"}}
_kind_cache: dict[str, str | None] = {}


def _state():
    return current_app.extensions["baonhung"]


def _limits(state):
    """The app's recognize limits (one per app: counters in its configured storage)."""
    limits = current_app.extensions.get("baonhung_recognize_limits")
    if limits is None:
        from .ratelimit import RecognizeLimits

        s = state.settings
        limits = RecognizeLimits(s.ratelimit_storage, s.recognize_rate_per_minute, s.recognize_session_rate_per_minute)
        current_app.extensions["baonhung_recognize_limits"] = limits
    return limits


def _cors(response):
    response.headers["Access-Control-Allow-Origin"] = "*"  # public, read-only, no credentials
    response.headers["Access-Control-Expose-Headers"] = "ETag, Content-Length, Content-Range, Accept-Ranges, Retry-After"
    response.headers["Cross-Origin-Resource-Policy"] = "cross-origin"
    return response


def send_blob(blob: BlobSend) -> Response:
    """The response for a store's :class:`BlobSend` (``AssetStore.send``): the stream with its length, ETag and
    Cache-Control, and when conditional werkzeug's If-None-Match (304) and Range (206, 416) handling. The stream is
    opened only when the body is sent (a 304 reads nothing from the store)."""
    stream = _LazyStream(blob.open)
    response = Response(wrap_file(request.environ, stream), mimetype=blob.mime, direct_passthrough=True)
    response.content_length = blob.size
    response.set_etag(blob.etag)
    if blob.cache_control is not None:
        response.headers["Cache-Control"] = blob.cache_control
    if blob.conditional:
        response = response.make_conditional(request, accept_ranges=True, complete_length=blob.size)
        if response.status_code in (304, 412):
            stream.close()
    return response


class _LazyStream:
    """A file-like object that opens the store's stream on first use (seek, read)."""

    def __init__(self, opener):
        self._opener, self._fh = opener, None

    def _file(self):
        if self._fh is None:
            self._fh = self._opener()
        return self._fh

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._file().seek(offset, whence)

    def tell(self) -> int:
        return self._file().tell() if self._fh is not None else 0

    def read(self, size: int = -1) -> bytes:
        return self._file().read(size)

    def fileno(self) -> int:
        """The file's descriptor (a local blob), so gunicorn sends a whole blob with sendfile(); an S3 stream has
        none (io.UnsupportedOperation) and is copied through."""
        return self._file().fileno()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()


def accel_blob(prefix: str, name: str, mime: str, etag: str, cache_control: str) -> Response:
    """The answer for a blob nginx sends itself (``BAONHUNG_ACCEL_REDIRECT``): every header as :func:`send_blob`
    gives it and an empty body with ``X-Accel-Redirect: <prefix><name>``; nginx's internal location sends the file
    (sendfile, Range, no Python worker held for a long download). If-None-Match is answered here (304, nothing
    redirected); Range is left to nginx, which has the file's length."""
    response = Response(status=200, mimetype=mime)
    response.set_etag(etag)
    response.headers["Cache-Control"] = cache_control
    if not is_resource_modified(request.environ, etag=etag):
        response.status_code = 304
        return response
    response.headers["X-Accel-Redirect"] = prefix + name
    response.headers["Accept-Ranges"] = "bytes"
    return response


def _send_blob(sha: str, mime: str, compressible: bool, cache_control: str, accel: bool = False):
    """Send a published blob: its gzip copy when the client accepts gzip (and asks no byte range), else the blob
    itself with Range/ETag support. ``accel``: by nginx's X-Accel-Redirect when configured and the store has files
    nginx can read (the local store; S3 blobs are streamed through as before)."""
    state = _state()
    gz = state.published.gzip_copy(sha) if compressible else None
    prefix = state.settings.accel_redirect if accel else ""
    try:
        if gz and "gzip" in request.headers.get("Accept-Encoding", "") and "Range" not in request.headers:
            key, etag, encoding = gz, f"{sha}-gz", "gzip"
        else:
            key, etag, encoding = sha, sha, None
        name = state.store.served_name(key) if prefix else None
        if name is not None:
            if not state.store.exists(key):
                raise StorageError(f"no blob {key}", key)
            response = accel_blob(prefix, name, mime, etag, cache_control)
        else:
            response = send_blob(state.store.send(key, mime, etag=etag, cache_control=cache_control))
        if encoding:
            response.headers["Content-Encoding"] = encoding
    except StorageError:
        abort(404)
    response.headers["Vary"] = "Accept-Encoding"
    return _cors(response)


def _blob_kind(store, sha: str) -> str | None:
    """The kind of a blob by its signature (cached: blobs are immutable)."""
    if sha not in _kind_cache:
        with store.open(sha) as fh:
            head = fh.read(16)
        kind = next((k for offset, magic, k in _SIGNATURES if head[offset:offset + len(magic)] == magic), None)
        if kind is None and len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
            kind = "mpeg-audio"  # an MP3 or AAC frame sync
        if len(_kind_cache) > 100_000:
            _kind_cache.clear()
        _kind_cache[sha] = kind
    return _kind_cache[sha]


@public_bp.get("/pub/a/<sha>.<ext>")
def artifact(sha: str, ext: str):
    """A published blob, under its own type only. 404 for anything not in the published catalog (drafts share the
    store) and for an extension that is not the blob's."""
    state = _state()
    if ext not in EXT_MIME or not state.published.is_published_blob(sha) or not state.store.exists(sha):
        abort(404)
    if ext not in _EXTENSIONS_OF[_blob_kind(state.store, sha)]:
        abort(404)
    return _send_blob(sha, EXT_MIME[ext], ext in COMPRESSIBLE, IMMUTABLE, accel=True)


def _manifest_response(sha: str | None):
    if sha is None:
        abort(404)
    # the name is stable, the content changes on publish: revalidate every time (ETag makes that cheap)
    return _send_blob(sha, "application/json", True, "public, no-cache")


@public_bp.get("/pub/editions/<int:edition_id>/manifest.json")
def edition_manifest(edition_id: int):
    return _manifest_response(_state().published.edition_manifest_sha(edition_id))


@public_bp.get("/pub/pages/<int:page_id>/manifest.json")
def page_manifest(page_id: int):
    return _manifest_response(_state().published.page_manifest_sha(page_id))


def _too_large():
    response, status = error_response(AppError("photo_too_large", limit_mb=RECOGNIZE_MAX_BYTES // 2**20))
    response.headers["Connection"] = "close"  # the rest of the body is not read: this connection cannot be reused
    return response, status


LANGS = ("vi", "en")


def request_lang() -> str:
    """The public side's language: ``?lang=`` (the reader pages' toggle), else Accept-Language (the viewer's scripts
    say theirs), else Vietnamese."""
    asked = request.args.get("lang")
    if asked in LANGS:
        return asked
    return (request.accept_languages.best_match(LANGS) if request.accept_languages else None) or "vi"


def error_response(err: AppError, status: int | None = None):
    """``({"error": code, "message": text}, status)`` with CORS: the message in the request's language, the status
    the web layer maps the error to (builder/http_errors.py) unless given."""
    return _cors(jsonify(err.to_dict(request_lang()))), status_for(err) if status is None else status


@public_bp.post("/api/v1/recognize")
def recognize():
    state = _state()
    verdict = _limits(state).check(request.remote_addr or "", request.headers.get("X-Viewer-Session"))
    if not verdict.allowed:
        response, status = error_response(AppError("rate_limited"))
        response.headers["Retry-After"] = str(verdict.retry_after_s)
        response.headers["Connection"] = "close"  # its body is not read: the connection cannot carry another request
        return response, status
    if (request.content_length or 0) > RECOGNIZE_MAX_BYTES + FORM_OVERHEAD:
        return _too_large()
    # A body without a length (chunked) is read through a stream limited to this request's cap: refused once it
    # passes it, never buffered whole first (a 200 MB chunked body cost +409 MB before the 413, issue 25).
    request.max_content_length = RECOGNIZE_MAX_BYTES + FORM_OVERHEAD
    try:
        if request.mimetype == "multipart/form-data":
            upload = request.files.get("image")
            data = upload.read(RECOGNIZE_MAX_BYTES + 1) if upload is not None else b""
        else:
            data = request.stream.read(RECOGNIZE_MAX_BYTES + 1)
    except RequestEntityTooLarge:
        return _too_large()
    if len(data) > RECOGNIZE_MAX_BYTES:
        return _too_large()
    tilted = request.values.get("tilted", "0")
    if tilted not in ("0", "1"):
        return error_response(AppError("bad_tilted"))
    from markers import decode_photo
    from markers.errors import ImageTooLargeError, MarkerError

    try:
        image = decode_photo(data)  # grey, upright; a large JPEG is decoded at a fraction of its size
    except ImageTooLargeError:
        return error_response(AppError("too_many_pixels"))
    except (MarkerError, ValueError):
        return error_response(AppError("not_an_image"))
    index = state.published.index()
    if index is None or len(index) == 0:
        return _cors(jsonify({"match": None}))
    scope = request.values.get("scope") or None
    # tilted=1: also the tilted look (slower when nothing is found); the viewer asks for it now and then
    match = index.recognize(image, scope=scope, tilted=tilted == "1")
    if match is None:
        return _cors(jsonify({"match": None}))
    entry = state.published.page_entry(match.page_id)
    if entry is None:  # index and catalog are switched together; this guards a reload in between
        return _cors(jsonify({"match": None}))
    return _cors(jsonify({"match": {
        "page_id": int(match.page_id),
        "edition_id": int(entry["edition_id"]),
        "corners": [[round(float(x), 2), round(float(y), 2)] for x, y in match.corners],
        "homography": [[float(v) for v in row] for row in match.homography],
        "inliers": int(match.inliers),
        "score": round(float(match.score), 4),
        "manifest_url": f"/pub/pages/{int(match.page_id)}/manifest.json",
        "marker_url": f"/pub/a/{entry['browser_marker']}.json" if entry.get("browser_marker") else None,
    }}))
