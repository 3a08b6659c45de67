"""Phone web viewer: the page shell, its pinned vendor libraries and its service worker.

Routes (blueprint ``viewer_bp``, mounted at ``/v``):

- ``GET /v/``            viewer scanning against the whole published archive
- ``GET /v/<code>``      viewer opened from a printed QR code: scoped to that edition (and page)
                         unknown / unpublished code -> friendly bilingual 404 page (HTML, never a trace)
- ``GET /v/vendor/<p>``  ONLY the whitelisted files of ``node_modules`` (three.js module build, the glTF
                         addons we use, the Draco decoder) and of ``viewer_api/vendor`` (our opencv.js build with
                         only what the tracker calls, scripts/build-opencv-js.sh), gzip-encoded when accepted
- ``GET /v/sw.js``       service worker (scope ``/v/``): caches the shell and every bundle it loaded
- ``GET /v/static/<f>``  the viewer's own ES modules and CSS

The blueprint only reads what was published (through ``PublishedStore.resolve_code``); it never
touches drafts or authoring data.
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import json
import mimetypes
import secrets
import threading
from pathlib import Path

from flask import Blueprint, Response, abort, current_app, render_template, request, url_for

from markers.deeplink import MAX_CODE_LENGTH  # deep-link codes are ~7 characters; anything much longer is noise

REPO_ROOT = Path(__file__).resolve().parent.parent
NODE_MODULES = REPO_ROOT / "node_modules"
OWN_VENDOR = Path(__file__).resolve().parent / "vendor"  # built here, committed (see vendor/opencv/BUILD-INFO.json)
STATIC_DIR = Path(__file__).resolve().parent / "static" / "viewer"

# Public vendor path -> file under node_modules. Nothing else in node_modules is reachable.
VENDOR_FILES: dict[str, str] = {
    "three/three.module.min.js": "three/build/three.module.min.js",
    "three/addons/loaders/GLTFLoader.js": "three/examples/jsm/loaders/GLTFLoader.js",
    "three/addons/loaders/DRACOLoader.js": "three/examples/jsm/loaders/DRACOLoader.js",
    "three/addons/utils/BufferGeometryUtils.js": "three/examples/jsm/utils/BufferGeometryUtils.js",
    "three/addons/controls/OrbitControls.js": "three/examples/jsm/controls/OrbitControls.js",
    # image-based light for lit 3D models (renderer.js); imported with the renderer, after the first frame
    "three/addons/environments/RoomEnvironment.js": "three/examples/jsm/environments/RoomEnvironment.js",
    "three/addons/libs/meshopt_decoder.module.js": "three/examples/jsm/libs/meshopt_decoder.module.js",
    "three/addons/libs/draco/gltf/draco_decoder.js": "three/examples/jsm/libs/draco/gltf/draco_decoder.js",
    "three/addons/libs/draco/gltf/draco_decoder.wasm": "three/examples/jsm/libs/draco/gltf/draco_decoder.wasm",
    "three/addons/libs/draco/gltf/draco_wasm_wrapper.js": "three/examples/jsm/libs/draco/gltf/draco_wasm_wrapper.js",
    # opencv.js 4.10 built with only the tracker's functions, its WebAssembly in a file of its own (cvload.js)
    "opencv/opencv.js": OWN_VENDOR / "opencv" / "opencv.js",
    "opencv/opencv.wasm": OWN_VENDOR / "opencv" / "opencv.wasm",
}
# Packages whose version goes into the vendor URLs (?v=…), so those URLs can be cached as immutable; our own
# builds are versioned by the hash of their outputs (BUILD-INFO.json).
VENDOR_PACKAGES = {"three": "three"}
OWN_BUILDS = {"opencv": OWN_VENDOR / "opencv" / "BUILD-INFO.json"}
# Files worth gzip-encoding (text; the Draco .wasm is already dense but still shrinks ~15%).
GZIP_MIN_BYTES = 1024
GZIP_LEVEL = 6  # level 9 is several times slower for <2% smaller output
IMMUTABLE = "public, max-age=31536000, immutable"
# getUserMedia constraints of the viewer (camera.js, and the page's boot script on the reader's tap): the rear camera
CAMERA_CONSTRAINTS = {"audio": False,
                      "video": {"facingMode": {"ideal": "environment"}, "width": {"ideal": 1280}, "height": {"ideal": 720}}}
# The viewer's modules main.js imports statically (preloaded with it, so they arrive in one wave, not three) and the
# renderer's, imported as soon as main.js runs, while the camera starts. opencv.js is not among them: the tracker
# is loaded after the first overlay (main.js, cvload.js).
FIRST_MODULES = ("events.js", "camera.js", "recognition.js", "tracker.js", "pose.js", "cvload.js", "ui.js",
                 "manifest.js", "renderer.js", "media.js")
FIRST_VENDOR = ("three/three.module.min.js", "three/addons/loaders/GLTFLoader.js", "three/addons/loaders/DRACOLoader.js",
                "three/addons/libs/meshopt_decoder.module.js", "three/addons/utils/BufferGeometryUtils.js",
                "three/addons/controls/OrbitControls.js", "three/addons/environments/RoomEnvironment.js")

viewer_bp = Blueprint(
    "viewer",
    __name__,
    url_prefix="/v",
    static_folder="static/viewer",
    static_url_path="/static",
    template_folder=str(REPO_ROOT / "templates"),
)

_gzip_cache: dict[str, tuple[bytes, bytes, str]] = {}  # vendor path -> (raw, gzipped, etag)
_gzip_lock = threading.Lock()


class ViewerConfigError(RuntimeError):
    """The app was started without what the viewer needs (e.g. node_modules not installed)."""


@functools.lru_cache(maxsize=None)
def vendor_version(package_key: str) -> str:
    """Pinned version of a vendored npm package, read from its package.json (e.g. ``"0.170.0"``), or of one of our
    own builds: the hashes of its outputs as BUILD-INFO.json records them."""
    try:
        if package_key in OWN_BUILDS:
            info = json.loads(OWN_BUILDS[package_key].read_text(encoding="utf-8"))
            joined = "".join(out["sha256"] for _, out in sorted(info["outputs"].items()))
            return hashlib.sha256(joined.encode()).hexdigest()[:12]
        pkg = NODE_MODULES / VENDOR_PACKAGES[package_key] / "package.json"
        return json.loads(pkg.read_text(encoding="utf-8"))["version"]
    except (OSError, ValueError, KeyError):
        return "0"


def vendor_url(path: str) -> str:
    """URL of a whitelisted vendor file, versioned so browsers may cache it forever."""
    if path not in VENDOR_FILES:
        raise KeyError(path)
    version = vendor_version(path.split("/", 1)[0])
    return url_for("viewer.vendor", path=path) + f"?v={version}"


def import_map() -> dict:
    """The import map of the viewer page: bare specifiers -> our own pinned copies (no CDN)."""
    three_v = vendor_version("three")
    base = url_for("viewer.vendor", path="three/")
    return {
        "imports": {
            "three": url_for("viewer.vendor", path="three/three.module.min.js") + f"?v={three_v}",
            "three/addons/": base + "addons/",
        }
    }


def opencv_spec() -> dict:
    """Where the viewer's tracker library is: ``{"js": url, "wasm": url | None}`` (cvload.js)."""
    return {"js": vendor_url("opencv/opencv.js"), "wasm": vendor_url("opencv/opencv.wasm")}


def module_preloads() -> list[str]:
    """``<link rel=modulepreload>`` targets of the viewer page: its first modules and three.js's."""
    urls = [url_for("viewer.static", filename=name) for name in FIRST_MODULES]
    for path in FIRST_VENDOR:
        # three.js by its versioned URL (the import map's); addons as the "three/addons/" prefix resolves them
        urls.append(vendor_url(path) if path == "three/three.module.min.js" else url_for("viewer.vendor", path=path))
    return urls


def _shell_version() -> str:
    """Hash of the viewer's own static files: names the service worker cache, changes on deploy."""
    digest = hashlib.sha256()
    for f in sorted(STATIC_DIR.glob("*")):
        if f.is_file():
            digest.update(f.name.encode())
            digest.update(f.read_bytes())
    return digest.hexdigest()[:12]


def shell_urls() -> list[str]:
    """Everything the viewer needs before its first camera frame (precached by the service worker)."""
    urls = [url_for("viewer.index")]
    urls += [
        url_for("viewer.static", filename=f.name)
        for f in sorted(STATIC_DIR.glob("*"))
        if f.is_file() and f.name != "sw.js"
    ]
    for p in VENDOR_FILES:
        if p.startswith("three/addons/libs/draco/"):
            continue  # Draco decoders are fetched only for Draco-compressed bundles (ours use meshopt)
        # addons are requested through the import map's "three/addons/" prefix, i.e. without ?v=
        urls.append(url_for("viewer.vendor", path=p) if p.startswith("three/addons/") else vendor_url(p))
    return urls


def _published_store():
    """The app's ``PublishedStore``: ``app.extensions["baonhung"].published`` (builder.app.create_app), or a
    stand-in registered as ``app.extensions["published_store"]`` (tests). None when the app has neither."""
    state = current_app.extensions.get("baonhung")
    if state is not None and getattr(state, "published", None) is not None:
        return state.published
    return current_app.extensions.get("published_store")


def resolve_code(code: str) -> dict | None:
    """Deep-link code -> ``{"edition_id", "page_id"|None}`` or None (unknown or unpublished).

    The store normalises the code itself (look-alike characters, case)."""
    store = _published_store()
    if store is None or len(code) > MAX_CODE_LENGTH:
        return None
    target = store.resolve_code(code)
    if target is None:
        return None
    if isinstance(target, dict):
        return {"edition_id": target.get("edition_id"), "page_id": target.get("page_id")}
    return {"edition_id": target.edition_id, "page_id": target.page_id}


def content_security_policy(nonce: str) -> str:
    """CSP of the viewer pages. opencv.js (Emscripten + embind) compiles WebAssembly and builds its bindings with
    ``new Function``, hence 'wasm-unsafe-eval' and 'unsafe-eval'; inline scripts (the import map) need the nonce.
    Draco decodes in blob: workers; uploaded photos are shown from blob: URLs; GLTFLoader fetches the textures
    embedded in a GLB through blob: (and data:) URLs, hence connect-src blob: data:."""
    return (
        "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
        f"style-src 'self' 'nonce-{nonce}'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval' 'unsafe-eval'; "
        "connect-src 'self' blob: data:; worker-src 'self' blob:; object-src 'none'; base-uri 'self'; form-action 'self'; "
        "frame-ancestors 'none'"
    )


def _html(body: str, nonce: str, status: int = 200) -> Response:
    resp = Response(body, status=status, mimetype="text/html")
    resp.headers["Content-Security-Policy"] = content_security_policy(nonce)
    resp.headers["Cache-Control"] = "no-cache"
    return resp


def _render_viewer(target: dict | None, code: str | None) -> Response:
    edition_id = target.get("edition_id") if target else None
    page_id = target.get("page_id") if target else None
    config = {
        "code": code,
        "editionId": edition_id,
        "pageId": page_id,
        "scope": f"edition:{edition_id}" if edition_id else None,
        "editionManifestUrl": f"/pub/editions/{edition_id}/manifest.json" if edition_id else None,
        "recognizeUrl": "/api/v1/recognize",
        "swUrl": url_for("viewer.service_worker"),
        "opencv": opencv_spec(),
        "camera": CAMERA_CONSTRAINTS,
        "dracoPath": url_for("viewer.vendor", path="three/addons/libs/draco/gltf/"),
        "staticBase": url_for("viewer.static", filename=""),
    }
    nonce = secrets.token_urlsafe(16)
    body = render_template(
        "viewer/viewer.html",
        config=config,
        import_map=import_map(),
        nonce=nonce,
        main_js=url_for("viewer.static", filename="main.js"),
        module_preloads=module_preloads(),
        css=url_for("viewer.static", filename="viewer.css"),
    )
    return _html(body, nonce)


@viewer_bp.get("/")
def index():
    return _render_viewer(None, None)


@viewer_bp.get("/<code>")
def by_code(code: str):
    target = resolve_code(code)
    if target is None:
        nonce = secrets.token_urlsafe(16)
        body = render_template("viewer/not_found.html", code=code[:MAX_CODE_LENGTH], home=url_for("viewer.index"),
                               nonce=nonce)
        return _html(body, nonce, status=404)
    return _render_viewer(target, code)


def _vendor_entry(path: str) -> tuple[bytes, bytes, str]:
    with _gzip_lock:
        if path not in _gzip_cache:
            file = NODE_MODULES / VENDOR_FILES[path]  # an absolute path (our own build) stays as it is
            try:
                raw = file.read_bytes()
            except OSError as exc:
                raise ViewerConfigError(f"vendor file missing (run make deps-node): {file}") from exc
            packed = gzip.compress(raw, GZIP_LEVEL) if len(raw) >= GZIP_MIN_BYTES else b""
            _gzip_cache[path] = (raw, packed, hashlib.sha256(raw).hexdigest()[:16])
        return _gzip_cache[path]


@viewer_bp.get("/vendor/<path:path>")
def vendor(path: str):
    if path not in VENDOR_FILES:
        abort(404)
    raw, packed, etag = _vendor_entry(path)
    mime = mimetypes.guess_type(path)[0] or "application/octet-stream"
    if path.endswith(".js"):
        mime = "text/javascript; charset=utf-8"  # opencv.js 5.x breaks unless served as UTF-8
    elif path.endswith(".wasm"):
        mime = "application/wasm"  # WebAssembly.instantiateStreaming requires it
    if request.if_none_match and etag in request.if_none_match:
        resp = Response(status=304)
    elif packed and "gzip" in request.accept_encodings:
        resp = Response(packed, mimetype=mime)
        resp.headers["Content-Encoding"] = "gzip"
    else:
        resp = Response(raw, mimetype=mime)
    resp.headers["Vary"] = "Accept-Encoding"
    resp.set_etag(etag)
    resp.headers["Cache-Control"] = IMMUTABLE if request.args.get("v") else "public, max-age=3600"
    return resp


@viewer_bp.get("/sw.js")
def service_worker():
    source = (STATIC_DIR / "sw.js").read_text(encoding="utf-8")
    body = source.replace("__CACHE_VERSION__", _shell_version()).replace("__SHELL_URLS__", json.dumps(shell_urls()))
    resp = Response(body, mimetype="text/javascript; charset=utf-8")
    resp.headers["Cache-Control"] = "no-cache"
    resp.headers["Service-Worker-Allowed"] = "/v/"
    return resp
