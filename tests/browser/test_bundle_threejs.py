"""A built page bundle loads in real headless Chromium with three.js GLTFLoader + MeshoptDecoder, and the
overlay objects carry their extras (keyed by id, since three.js rewrites node names) at the editor placement."""
from __future__ import annotations

import functools
import os
import subprocess
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image

from builder import frame
from builder.bundle import BundleOptions, OverlaySpec, PageSpec, build_page_bundle

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("bundle_browser")]

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PAGE_W, PAGE_H = 300.0, 420.0

PAGE_HTML = """<!doctype html>
<html><head><meta charset="utf-8">
<script type="importmap">
{"imports": {"three": "/three/build/three.module.js", "three/addons/": "/three/examples/jsm/"}}
</script></head>
<body>
<script type="module">
import * as THREE from 'three';
import { GLTFLoader } from 'three/addons/loaders/GLTFLoader.js';
import { MeshoptDecoder } from 'three/addons/libs/meshopt_decoder.module.js';
const params = new URLSearchParams(location.search);
const loader = new GLTFLoader().setMeshoptDecoder(MeshoptDecoder);
loader.load(params.get('glb'), (gltf) => {
  const overlays = {};
  const pos = new THREE.Vector3(), quat = new THREE.Quaternion(), scl = new THREE.Vector3();
  gltf.scene.updateMatrixWorld(true);
  let page = null;
  gltf.scene.traverse((o) => {
    o.visible = o.userData.visible !== false;   // the bundle's visibility convention
    if (o.userData.role === 'page') page = { name: o.name, visible: o.visible, extras: o.userData };
    if (o.userData.overlay) {
      o.matrixWorld.decompose(pos, quat, scl);
      let meshes = 0;
      o.traverse((c) => { if (c.isMesh) meshes += 1; });
      overlays[o.userData.overlay.id] = { name: o.name, extras: o.userData.overlay,
        position: pos.toArray(), quaternion: quat.toArray(), meshes };
    }
  });
  let rendered = false;
  try {
    const renderer = new THREE.WebGLRenderer();
    renderer.setSize(320, 240);
    const camera = new THREE.PerspectiveCamera(50, 4 / 3, 0.01, 10);
    camera.position.set(0, 0.6, 0.01); camera.lookAt(0, 0, 0);
    renderer.render(gltf.scene, camera);
    rendered = true;
  } catch (e) { rendered = String(e); }
  window.__result = { ok: true, overlays, page, animations: gltf.animations.map(a => a.tracks.length), rendered };
}, undefined, (err) => { window.__result = { ok: false, error: String(err && err.message || err) }; });
</script></body></html>
"""


class _QuietHandler(SimpleHTTPRequestHandler):
    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, ".js": "text/javascript",
                      ".glb": "model/gltf-binary"}

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def served_bundle(tmp_path_factory):
    root = tmp_path_factory.mktemp("site")
    rng = np.random.default_rng(21)
    inputs = tmp_path_factory.mktemp("inputs")
    Image.fromarray(rng.integers(0, 255, (420, 300, 3), dtype=np.uint8)).save(inputs / "page.png")
    trimesh.creation.box((0.1, 0.1, 0.1)).export(inputs / "box.glb")
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=96x64:rate=5", "-t", "1",
                    "-pix_fmt", "yuv420p", str(inputs / "clip.mp4")], check=True)
    overlays = (
        OverlaySpec("model-1", "model3d", 30, 40, 60, 60, rotation_deg=20, elevation_mm=10,
                    asset_path=inputs / "box.glb"),
        OverlaySpec("video-2", "video", 150, 60, 96, 64, rotation_deg=-35, asset_path=inputs / "clip.mp4",
                    asset_mime="video/mp4", options={"autoplay": True, "muted": True}),
        OverlaySpec("audio-3", "audio", 40, 300, 20, 20, asset_path=inputs / "clip.mp4", asset_mime="audio/mp4"),
        OverlaySpec("link-4", "link", 200, 330, 40, 30, rotation_deg=90, url="https://baonhung.example/x"),
    )
    page = PageSpec("pg", 1, PAGE_W, PAGE_H, inputs / "page.png", overlays)
    bundle = build_page_bundle(page, BundleOptions(), root / "bundle")
    (root / "three").symlink_to(REPO / "node_modules" / "three")
    (root / "index.html").write_text(PAGE_HTML)
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield {"base": f"http://127.0.0.1:{server.server_address[1]}", "page": page, "bundle": bundle,
               "glb": "/bundle/" + bundle.glb_full.name}
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def loaded(served_bundle):
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian chromium not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            tab = browser.new_page()
            errors = []
            tab.on("pageerror", lambda e: errors.append(str(e)))
            tab.goto(f"{served_bundle['base']}/index.html?glb={served_bundle['glb']}")
            tab.wait_for_function("window.__result !== undefined", timeout=30_000)
            result = tab.evaluate("window.__result")
        finally:
            browser.close()
    assert not errors, errors
    return result


def test_gltfloader_with_meshopt_decoder_loads_the_compressed_bundle(loaded):
    assert loaded["ok"], loaded.get("error")
    assert loaded["rendered"] is True


def test_overlay_objects_carry_their_extras_keyed_by_id(loaded, served_bundle):
    page = served_bundle["page"]
    assert sorted(loaded["overlays"]) == sorted(o.id for o in page.overlays)
    media = {m.overlay_id: m.name for m in served_bundle["bundle"].media}
    for spec in page.overlays:
        extras = loaded["overlays"][spec.id]["extras"]
        assert extras["id"] == spec.id and extras["kind"] == spec.kind
        assert extras["src"] == media.get(spec.id)
    assert loaded["overlays"]["video-2"]["extras"]["autoplay"] is True
    assert loaded["overlays"]["link-4"]["extras"]["url"] == "https://baonhung.example/x"
    # three.js rewrote the node names ("overlay/model-1" is not a valid three.js name): extras are the key
    assert loaded["overlays"]["model-1"]["name"] != "overlay/model-1"


def test_overlay_objects_sit_at_the_editor_placement_in_three_js(loaded, served_bundle):
    for spec in served_bundle["page"].overlays:
        got = loaded["overlays"][spec.id]
        placement = frame.node_transform_to_placement(got["position"], got["quaternion"], spec.width_mm,
                                                      spec.height_mm, PAGE_W, PAGE_H)
        assert placement.x_mm == pytest.approx(spec.x_mm, abs=0.1)
        assert placement.y_mm == pytest.approx(spec.y_mm, abs=0.1)
        assert placement.elevation_mm == pytest.approx(spec.elevation_mm, abs=0.1)
        assert placement.rotation_deg == pytest.approx(spec.rotation_deg, abs=0.01)


def test_page_plane_is_hidden_and_media_overlays_have_geometry(loaded):
    assert loaded["page"]["visible"] is False and loaded["page"]["extras"]["role"] == "page"
    assert loaded["overlays"]["audio-3"]["meshes"] == 1  # its play button (issue 24: it was an empty node)
    assert loaded["overlays"]["video-2"]["meshes"] == 1 and loaded["overlays"]["model-1"]["meshes"] >= 1
