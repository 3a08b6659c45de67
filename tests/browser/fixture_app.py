"""A self-contained published page for the viewer tests, independent of the authoring side.

Serves the real ``viewer_bp`` plus the public routes the viewer reads, backed by fixture files built here:
a synthetic newspaper page, its browser marker (``markers.browser_marker`` when the marker engine is installed,
else the same JSON shape made with cv2 ORB), a GLB bundle with overlay nodes carrying ``extras.overlay``, a
green-screen MP4, and a ``/api/v1/recognize`` that answers like the real one (ORB + RANSAC on the fixture page).
Used when the real app (``builder.app.create_app``) or its demo content is not available.
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
import shutil
import struct
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from flask import Flask, abort, jsonify, request, send_file

from tests.browser.clip import make_page
from viewer_api.viewer import viewer_bp

PAGE_ID, EDITION_ID, CODE = "p1", "e1", "TEST7"
SECOND_PAGE_ID = "p2"  # another page of the edition (same overlays), for switching pages
PAGE_SEEDS = {PAGE_ID: 1, SECOND_PAGE_ID: 2}
WIDTH_MM, HEIGHT_MM = 210.0, 297.0
# Overlays in page mm (top-left origin, y down), as the editor stores them.
OVERLAYS = [
    {"id": "v1", "kind": "video", "x_mm": 118.0, "y_mm": 48.0, "width_mm": 80.0, "height_mm": 60.0,
     "src": "greenscreen.mp4", "chroma_key": {"color": "#00ff00"}},
    {"id": "i1", "kind": "image", "x_mm": 20.0, "y_mm": 200.0, "width_mm": 70.0, "height_mm": 50.0},
    {"id": "l1", "kind": "link", "x_mm": 120.0, "y_mm": 250.0, "width_mm": 60.0, "height_mm": 20.0,
     "url": "https://example.org/"},
    {"id": "pano1", "kind": "panorama360", "x_mm": 20.0, "y_mm": 120.0, "width_mm": 40.0, "height_mm": 40.0,
     "src": "pano.jpg"},
]
# Overlays whose footprint is not a fixed rectangle on the paper (animated 3D model) or that draw nothing (audio):
# in the bundle, not in the registration measurements.
EXTRA_OVERLAYS = [
    {"id": "m1", "kind": "model3d", "x_mm": 150.0, "y_mm": 160.0, "width_mm": 30.0, "height_mm": 30.0},
    {"id": "a1", "kind": "audio", "x_mm": 70.0, "y_mm": 120.0, "width_mm": 30.0, "height_mm": 20.0, "src": "chime.wav"},
]
REF_FEATURES = 1500  # reference ORB features for the mock recognizer / fallback marker
MARKER_LONG_SIDE = 1000  # px of the page image the browser marker is computed at


def overlay_corners_mm(ov: dict) -> np.ndarray:
    x, y, w, h = ov["x_mm"], ov["y_mm"], ov["width_mm"], ov["height_mm"]
    return np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], np.float64)


# ---------- browser marker ----------

def orb_marker(page: np.ndarray, width_mm: float, height_mm: float, n: int = 800) -> dict:
    """Browser-marker JSON (same shape as markers.browser_marker) from cv2 ORB on the page image."""
    s = MARKER_LONG_SIDE / max(page.shape[:2])
    img = cv2.resize(cv2.cvtColor(page, cv2.COLOR_BGR2GRAY), None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    orb = cv2.ORB_create(n)
    kps, desc = orb.detectAndCompute(img, None)
    h, w = img.shape
    kmm = [[k.pt[0] * width_mm / w, k.pt[1] * height_mm / h] for k in kps]
    return {"version": 1, "width_mm": width_mm, "height_mm": height_mm, "image_px": [w, h],
            "keypoints_mm": kmm, "descriptors_b64": base64.b64encode(desc.tobytes()).decode()}


def browser_marker_for(page: np.ndarray, page_id: str) -> dict:
    try:
        import markers  # the real marker engine

        m = markers.train_page(page, WIDTH_MM, HEIGHT_MM, page_id)
        return markers.browser_marker(m)
    except (ImportError, AttributeError):
        return orb_marker(page, WIDTH_MM, HEIGHT_MM)


class MockRecognizer:
    """ORB + ratio test + RANSAC against one fixture page: answers like POST /api/v1/recognize."""

    def __init__(self, page: np.ndarray):
        g = cv2.cvtColor(page, cv2.COLOR_BGR2GRAY)
        self.scale = 1000 / max(g.shape)
        g = cv2.resize(g, None, fx=self.scale, fy=self.scale, interpolation=cv2.INTER_AREA)
        self.orb = cv2.ORB_create(REF_FEATURES)
        kps, self.desc = self.orb.detectAndCompute(g, None)
        h, w = g.shape
        self.pts_mm = np.float32([[k.pt[0] * WIDTH_MM / w, k.pt[1] * HEIGHT_MM / h] for k in kps])
        self.matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
        self.query_orb = cv2.ORB_create(2000)

    def recognize(self, photo_bgr: np.ndarray) -> np.ndarray | None:
        g = cv2.cvtColor(photo_bgr, cv2.COLOR_BGR2GRAY)
        kps, desc = self.query_orb.detectAndCompute(g, None)
        if desc is None or len(kps) < 15:
            return None
        pairs = self.matcher.knnMatch(desc, self.desc, k=2)
        good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < 0.8 * p[1].distance]
        if len(good) < 15:
            return None
        src = np.float32([self.pts_mm[m.trainIdx] for m in good])
        dst = np.float32([kps[m.queryIdx].pt for m in good])
        H, mask = cv2.findHomography(src, dst, cv2.USAC_MAGSAC, 3.0)
        if H is None or int(mask.sum()) < 15:
            return None
        self.last_inliers = int(mask.sum())
        return H / H[2, 2]


# ---------- GLB bundle ----------

def _quad(ov: dict, y_m: float = 0.001):
    """Positions (4, 3) in the glTF page frame (metres, XZ plane), UVs, indices: X=(x-w/2)/1000, Z=(y-h/2)/1000."""
    c = overlay_corners_mm(ov)
    pos = np.array([[(x - WIDTH_MM / 2) / 1000, y_m, (y - HEIGHT_MM / 2) / 1000] for x, y in c], np.float32)
    uv = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float32)  # glTF UV origin at the texture's top-left
    idx = np.array([0, 3, 2, 0, 2, 1], np.uint16)  # counter-clockwise seen from +Y
    return pos, uv, idx


def build_glb(overlays: list[dict], page_png: bytes | None = None) -> bytes:
    """Minimal GLB: one node per overlay (extras.overlay), plus the hidden page plane (extras.page_plane)."""
    blobs, views, accessors, meshes, nodes, materials = [], [], [], [], [], []
    images, textures, animations, roots = [], [], [], []

    def add_view(data: bytes, target: int | None = None) -> int:
        offset = sum(len(b) for b in blobs)
        pad = (-len(data)) % 4
        blobs.append(data + b"\0" * pad)
        view = {"buffer": 0, "byteOffset": offset, "byteLength": len(data)}
        if target:
            view["target"] = target
        views.append(view)
        return len(views) - 1

    def add_accessor(arr: np.ndarray, ctype: int, typ: str, target: int, minmax: bool = False) -> int:
        acc = {"bufferView": add_view(arr.tobytes(), target), "componentType": ctype, "count": int(arr.shape[0]),
               "type": typ}
        if minmax:
            acc["min"] = arr.min(axis=0).tolist()
            acc["max"] = arr.max(axis=0).tolist()
        accessors.append(acc)
        return len(accessors) - 1

    def add_quad(ov: dict, material: int, y_m: float, extras: dict, name: str) -> None:
        pos, uv, idx = _quad(ov, y_m)
        prim = {"attributes": {"POSITION": add_accessor(pos, 5126, "VEC3", 34962, True),
                               "TEXCOORD_0": add_accessor(uv, 5126, "VEC2", 34962)},
                "indices": add_accessor(idx, 5123, "SCALAR", 34963), "material": material}
        meshes.append({"primitives": [prim]})
        nodes.append({"name": name, "mesh": len(meshes) - 1, "extras": extras})
        roots.append(len(nodes) - 1)

    def add_spinning_model(ov: dict, material: int, extras: dict, name: str) -> None:
        """Overlay node at the box centre, child quad standing up, spun about +Y by a 2 s looping animation."""
        half_w, half_h = ov["width_mm"] / 2000, ov["height_mm"] / 2000
        pos = np.array([[-half_w, 2 * half_h, 0], [half_w, 2 * half_h, 0], [half_w, 0, 0], [-half_w, 0, 0]], np.float32)
        uv = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float32)
        idx = np.array([0, 3, 2, 0, 2, 1], np.uint16)
        prim = {"attributes": {"POSITION": add_accessor(pos, 5126, "VEC3", 34962, True),
                               "TEXCOORD_0": add_accessor(uv, 5126, "VEC2", 34962)},
                "indices": add_accessor(idx, 5123, "SCALAR", 34963), "material": material}
        meshes.append({"primitives": [prim]})
        nodes.append({"name": f"{name}/mesh", "mesh": len(meshes) - 1})
        child = len(nodes) - 1
        cx = (ov["x_mm"] + half_w * 1000 - WIDTH_MM / 2) / 1000
        cz = (ov["y_mm"] + half_h * 1000 - HEIGHT_MM / 2) / 1000
        nodes.append({"name": name, "translation": [cx, 0, cz], "children": [child], "extras": extras})
        roots.append(len(nodes) - 1)
        times = np.array([0, 1, 2], np.float32).reshape(-1, 1)
        quats = np.array([[0, 0, 0, 1], [0, 1, 0, 0], [0, 0, 0, -1]], np.float32)  # 0°, 180°, 360° about +Y
        t_acc = add_accessor(times, 5126, "SCALAR", 0, True)
        q_acc = add_accessor(quats, 5126, "VEC4", 0)
        animations.append({"name": f"spin-{ov['id']}", "samplers": [{"input": t_acc, "output": q_acc,
                                                                      "interpolation": "LINEAR"}],
                           "channels": [{"sampler": 0, "target": {"node": child, "path": "rotation"}}]})

    colors = {"video": [0.1, 0.8, 0.2, 1], "image": [0.9, 0.3, 0.1, 1], "link": [0.1, 0.3, 0.9, 1],
              "panorama360": [0.9, 0.8, 0.1, 1]}
    for ov in overlays + EXTRA_OVERLAYS:
        materials.append({"pbrMetallicRoughness": {"baseColorFactor": colors.get(ov["kind"], [1, 1, 1, 1]),
                                                   "metallicFactor": 0}, "doubleSided": True})
        spec = {k: v for k, v in ov.items() if k not in ("x_mm", "y_mm", "width_mm", "height_mm")}
        spec.update({"mime": {"video": "video/mp4", "audio": "audio/wav"}.get(ov["kind"]),
                     "loop": ov["kind"] != "audio", "muted": ov["kind"] != "audio", "autoplay": ov["kind"] != "audio"})
        if ov["kind"] == "model3d":
            add_spinning_model(ov, len(materials) - 1, {"overlay": spec}, f"overlay/{ov['id']}")
        else:
            add_quad(ov, len(materials) - 1, 0.0, {"overlay": spec}, f"overlay/{ov['id']}")
    page_mat = {"pbrMetallicRoughness": {"baseColorFactor": [1, 1, 1, 1], "metallicFactor": 0}}
    if page_png:
        images.append({"bufferView": add_view(page_png), "mimeType": "image/png"})
        textures.append({"source": 0})
        page_mat["pbrMetallicRoughness"]["baseColorTexture"] = {"index": 0}
    materials.append(page_mat)
    add_quad({"x_mm": 0, "y_mm": 0, "width_mm": WIDTH_MM, "height_mm": HEIGHT_MM}, len(materials) - 1, -0.0005,
             {"page_plane": True}, "page")  # just under the overlays (no z-fighting in the 3D view)
    binary = b"".join(blobs)
    doc = {"asset": {"version": "2.0", "generator": "baonhung tests"}, "scene": 0,
           "scenes": [{"nodes": roots}], "nodes": nodes, "meshes": meshes,
           "materials": materials, "accessors": accessors, "bufferViews": views,
           "buffers": [{"byteLength": len(binary)}]}
    if images:
        doc["images"], doc["textures"] = images, textures
    if animations:
        doc["animations"] = animations
    js = json.dumps(doc).encode()
    js += b" " * ((-len(js)) % 4)
    total = 12 + 8 + len(js) + 8 + len(binary)
    return (struct.pack("<4sII", b"glTF", 2, total) + struct.pack("<I4s", len(js), b"JSON") + js
            + struct.pack("<I4s", len(binary), b"BIN\0") + binary)


def greenscreen_mp4(path: Path, seconds: float = 3.0, fps: int = 30) -> None:
    """H.264 clip: a moving white/red disc in front of a pure green screen (exercises the chroma-key shader)."""
    import av

    with av.open(str(path), "w", options={"movflags": "faststart"}) as out:
        st = out.add_stream("libx264", rate=fps)
        st.width, st.height, st.pix_fmt = 320, 240, "yuv420p"
        for i in range(int(seconds * fps)):
            img = np.zeros((240, 320, 3), np.uint8)
            img[:] = (0, 255, 0)
            cx = int(160 + 100 * np.sin(2 * np.pi * i / (seconds * fps)))
            cv2.circle(img, (cx, 120), 60, (40, 40, 230), -1)
            cv2.putText(img, str(i), (cx - 25, 135), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (255, 255, 255), 3)
            frame = av.VideoFrame.from_ndarray(img, format="bgr24")
            for pkt in st.encode(frame):
                out.mux(pkt)
        for pkt in st.encode():
            out.mux(pkt)


def chime_wav(seconds: float = 1.5, rate: int = 22050) -> bytes:
    """A decaying 660 Hz tone, 16-bit mono WAV."""
    import wave

    t = np.arange(int(seconds * rate)) / rate
    pcm = (12000 * np.exp(-3 * t) * np.sin(2 * np.pi * 660 * t)).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


def equirect_panorama(width: int = 1024) -> np.ndarray:
    """A 2:1 equirectangular test panorama: sky/ground gradient, coloured pillars every 45° of longitude."""
    h = width // 2
    img = np.zeros((h, width, 3), np.uint8)
    img[: h // 2] = (235, 190, 120)
    img[h // 2:] = (60, 110, 70)
    for k in range(8):
        x = k * width // 8
        color = tuple(int(c) for c in np.random.default_rng(k).integers(40, 255, 3))
        cv2.rectangle(img, (x + 20, h // 4), (x + 60, 3 * h // 4), color, -1)
        cv2.putText(img, f"{k * 45}", (x + 10, h // 4 - 10), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (20, 20, 20), 2)
    return img


@dataclass
class Fixture:
    root: Path
    page: np.ndarray  # the first page (PAGE_ID)
    files: dict  # name -> (public name, path)
    pages: dict  # page id -> page image (BGR)


_built: list[Fixture] = []  # the first fixture built in this process (build_fixture is deterministic)


def build_fixture(root: Path) -> Fixture:
    """The fixture's files in ``root``. Built once per process (train the markers, encode the clip: seconds), then
    copied: the same pages, markers and bundle (deterministic) and the same encoding of the clip, under the same
    public names."""
    root.mkdir(parents=True, exist_ok=True)
    if _built and all(path.exists() for _, path in _built[0].files.values()):
        first = _built[0]
        for name in list(first.files) + ["page.png"]:
            shutil.copyfile(first.root / name, root / name)
        pages = {pid: img.copy() for pid, img in first.pages.items()}
        return Fixture(root, pages[PAGE_ID], {name: (pub, root / name) for name, (pub, _) in first.files.items()},
                       pages)
    fixture = _build_fixture(root)
    _built[:] = [fixture]
    return fixture


def _build_fixture(root: Path) -> Fixture:
    pages = {pid: make_page(seed=seed, title="BAO NHUNG" if seed == 1 else "TIN SANG") for pid, seed in PAGE_SEEDS.items()}
    page = pages[PAGE_ID]
    files = {}
    for pid, img in pages.items():
        (root / f"marker-{pid}.json").write_text(json.dumps(browser_marker_for(img, pid)))
    small = cv2.resize(page, (620, 877), interpolation=cv2.INTER_AREA)
    png = cv2.imencode(".png", small)[1].tobytes()
    (root / "page.glb").write_bytes(build_glb(OVERLAYS, png))
    greenscreen_mp4(root / "greenscreen.mp4")
    cv2.imwrite(str(root / "pano.jpg"), equirect_panorama())
    (root / "chime.wav").write_bytes(chime_wav())
    for name in [f"marker-{pid}.json" for pid in pages] + ["page.glb", "greenscreen.mp4", "pano.jpg", "chime.wav"]:
        data = (root / name).read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        ext = name.rsplit(".", 1)[1]
        files[name] = (f"{digest}.{ext}", root / name)
    cv2.imwrite(str(root / "page.png"), page)
    return Fixture(root, page, files, pages)


class FixturePublished:
    def resolve_code(self, code: str):
        if code.upper() == CODE:
            return {"edition_id": EDITION_ID, "page_id": PAGE_ID}
        return None


def create_fixture_app(fixture: Fixture) -> Flask:
    app = Flask(__name__)
    app.register_blueprint(viewer_bp)
    app.config["REQUEST_LOG"] = []  # paths the server was asked for (tests: what reached the network)

    @app.before_request
    def log_request():
        app.config["REQUEST_LOG"].append(request.path)
    app.extensions["published_store"] = FixturePublished()
    recognizers = {pid: MockRecognizer(img) for pid, img in fixture.pages.items()}
    by_public = {pub: path for pub, path in fixture.files.values()}
    url = {name: f"/pub/a/{pub}" for name, (pub, _) in fixture.files.items()}

    @app.get("/pub/a/<name>")
    def artifact(name):
        if name not in by_public:
            abort(404)
        resp = send_file(by_public[name], conditional=True, max_age=31536000)
        resp.headers["Cache-Control"] = "public, max-age=31536000, immutable"
        return resp

    @app.get("/pub/pages/<page_id>/manifest.json")
    def page_manifest(page_id):
        if page_id not in fixture.pages:
            abort(404)
        glb = fixture.files["page.glb"][1]
        # builder/schemas/manifest.schema.json's fields (media names are the GLB's plain src names here, not hashes)
        return jsonify({
            "schema_version": 1, "page_id": page_id, "edition_id": EDITION_ID,
            "number": list(fixture.pages).index(page_id) + 1,
            "width_mm": WIDTH_MM, "height_mm": HEIGHT_MM,
            "bundles": {"full": {"url": url["page.glb"], "bytes": glb.stat().st_size},
                        "lite": {"url": url["page.glb"], "bytes": glb.stat().st_size}},
            "media": [{"name": "greenscreen.mp4", "url": url["greenscreen.mp4"], "mime": "video/mp4"},
                      {"name": "pano.jpg", "url": url["pano.jpg"], "mime": "image/jpeg"},
                      {"name": "chime.wav", "url": url["chime.wav"], "mime": "audio/wav"}],
            "marker_url": url[f"marker-{page_id}.json"], "published_at": "2026-11-26T00:00:00Z"})

    @app.get(f"/pub/editions/{EDITION_ID}/manifest.json")
    def edition_manifest():
        return jsonify({"schema_version": 1, "edition_id": EDITION_ID, "title": "Số thử nghiệm",
                        "pages": [{"page_id": pid, "number": i + 1, "manifest_url": f"/pub/pages/{pid}/manifest.json"}
                                  for i, pid in enumerate(fixture.pages)]})

    app.config["EVENT_BATCHES"] = []  # readership batches the viewer sent (analytics.js): parsed JSON bodies

    @app.post("/api/v1/events")
    def events():
        """Like the real endpoint for the viewer: 204 (the fixture's ids are not published ids; nothing is stored)."""
        app.config["EVENT_BATCHES"].append(json.loads(request.get_data() or b"null"))
        return "", 204

    @app.post("/api/v1/recognize")
    def recognize():
        data = request.files["image"].read() if "image" in request.files else request.get_data()
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            return jsonify({"error": "bad_image", "message": "not an image"}), 400
        best, H = None, None
        for pid, rec in recognizers.items():
            h = rec.recognize(img)
            if h is not None and (best is None or rec.last_inliers > recognizers[best].last_inliers):
                best, H = pid, h
        if H is None:
            return jsonify({"match": None})
        corners = cv2.perspectiveTransform(
            np.float64([[0, 0], [WIDTH_MM, 0], [WIDTH_MM, HEIGHT_MM], [0, HEIGHT_MM]]).reshape(-1, 1, 2), H)
        return jsonify({"match": {"page_id": best, "edition_id": EDITION_ID,
                                  "corners": corners.reshape(-1, 2).tolist(), "homography": H.tolist(),
                                  "manifest_url": f"/pub/pages/{best}/manifest.json"}})

    return app


def serve_in_thread(app: Flask, port: int = 0):
    """Start a threaded werkzeug server; returns (server, base_url). Call server.shutdown() to stop."""
    import threading

    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", port, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}"


if __name__ == "__main__":  # manual try-out: python -m tests.browser.fixture_app
    fx = build_fixture(Path("/tmp/baonhung-fixture"))
    create_fixture_app(fx).run(port=8765, threaded=True)


# ---------- headless Chromium with a fake camera ----------

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]

# State of the viewer the tests read (window.__baonhung), trimmed to what they assert on.
STATE_JS = """() => { const s = window.__baonhung; if (!s) return null;
  return {state: s.state, pageId: s.pageId, editionId: s.editionId, corners: s.corners, overlaysVisible: s.overlaysVisible,
          overlays: s.overlays, media: s.media, focal: s.focal, error: s.error, cvReady: s.cvReady,
          fallbackReason: s.fallbackReason || null, offlineReady: !!s.offlineReady, nframes: s.frames.length}; }"""
FRAMES_JS = "() => window.__baonhung.frames"
METRICS_JS = """() => { const m = window.__baonhung.metrics; return {tapAt: m.tapAt, firstFrameAt: m.firstFrameAt, firstMatchAt: m.firstMatchAt,
  firstOverlayAt: m.firstOverlayAt, trackMs: m.trackMs, redetectMs: m.redetectMs, recognizeMs: m.recognizeMs,
  frameTimes: m.frameTimes, bundleBytes: m.bundleBytes}; }"""


def launch_chromium(pw, clip: Path | None = None, deny_camera: bool = False, extra_args: tuple = ()):
    """Debian Chromium (never a downloaded one). clip: y4m played as the camera; deny_camera: camera refused."""
    args = list(CHROMIUM_ARGS) + list(extra_args)
    if clip is not None:
        args += ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                 f"--use-file-for-fake-video-capture={clip}"]
    if deny_camera:
        args += ["--use-fake-device-for-media-stream", "--deny-permission-prompts"]
    return pw.chromium.launch(executable_path=CHROMIUM, args=args)


def wait_state(page, predicate_js: str, timeout_s: float = 20.0, poll_s: float = 0.1):
    """Poll window.__baonhung until predicate_js (a JS expression over `s`) holds; returns the state or raises."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        ok = page.evaluate(f"() => {{ const s = window.__baonhung; return !!(s && ({predicate_js})); }}")
        if ok:
            return page.evaluate(STATE_JS)
        time.sleep(poll_s)
    raise TimeoutError(f"viewer never reached `{predicate_js}`; last state: {page.evaluate(STATE_JS)}")


def overlay_errors(frames: list[dict], ground_truth: dict, overlays_mm: dict[str, np.ndarray]) -> np.ndarray:
    """Per-corner distances (px) between the overlays the viewer drew and where they truly are, over the
    frames it reported with a probe (clip frame index) of a frame where the page is in view."""
    errs = []
    for rec in frames:
        probe = rec.get("probe")
        if probe is None or probe < 0 or probe >= len(ground_truth["frames"]) or not rec.get("overlays"):
            continue
        gt = ground_truth["frames"][probe]
        if gt is None:
            continue
        H = np.array(gt["homography"])
        for ov in rec["overlays"]:
            if ov.get("corners") is None or ov["id"] not in overlays_mm:
                continue
            truth = cv2.perspectiveTransform(overlays_mm[ov["id"]].reshape(-1, 1, 2), H).reshape(-1, 2)
            errs.extend(np.linalg.norm(np.array(ov["corners"]) - truth, axis=1).tolist())
    return np.array(errs)
