"""Bundle benchmark: build page bundles from generated inputs, then fetch them through the running server.

Inputs (seeded, generated into bench/out/inputs):
  mesh-200k   one model3d overlay: a 200k-triangle textured mesh with a 2048 px texture
  animated    one model3d overlay: a skinned tube with 8 bones and a 4 s animation (8 channels)
  page-10     a page with 10 mixed overlays (2 models, 2 videos, audio, GIF + WebP animations, image, 360°, link)

Per case: input bytes, output bytes (raw / full / lite GLB, media), build seconds (including compression and
Khronos validation of every output after decoding), and the time to first byte and full download of the full
GLB through a real HTTP server on 127.0.0.1 (the product's Flask app, /pub/a/<sha256>.glb, gzip, immutable
Cache-Control), median of ``--repeat`` fetches. Ends with one ``RESULT key=value …`` line.

    .venv/bin/python bench/bench_bundle.py [--repeat 7] [--cases mesh-200k,animated,page-10]
"""
from __future__ import annotations

import argparse
import gzip
import http.client
import json
import logging
import math
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pygltflib
import trimesh
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from builder.bundle import BundleOptions, OverlaySpec, PageSpec, build_page_bundle  # noqa: E402
from builder.compress import decode_glb  # noqa: E402
from builder.glb import GlbDocument, read_glb, write_glb  # noqa: E402

OUT = REPO / "bench" / "out"
SEED = 20261126
PAGE_W, PAGE_H = 330.0, 480.0
GRID_N = 318  # 2 * 317² = 200,978 triangles
SLOW_LINK_BPS = 5_000_000  # a middling 4G / good 3G link: what the "lite" variant is for


# ------------------------------------------------------------------------------------------------ inputs
def page_image(path: Path, rng) -> Path:
    """A newspaper-like page: grey columns of 'text' lines, a few photos, a masthead."""
    w, h = 1240, 1804
    im = Image.new("RGB", (w, h), (250, 248, 240))
    d = ImageDraw.Draw(im)
    d.rectangle((40, 40, w - 40, 170), fill=(20, 20, 20))
    for col in range(3):
        x0 = 40 + col * 390
        for y in range(200, h - 40, 18):
            d.line((x0, y, x0 + 360 * float(rng.uniform(0.6, 1.0)), y), fill=(60, 60, 60), width=6)
    for _ in range(4):
        x, y = int(rng.integers(40, w - 440)), int(rng.integers(200, h - 340))
        photo = rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)
        im.paste(Image.fromarray(photo).resize((400, 300), Image.BICUBIC), (x, y))
    im.save(path, quality=90)
    return path


def smooth_texture(px: int, rng) -> Image.Image:
    """A photo-like texture: smooth colour fields plus fine grain (noise alone would be unrealistically big)."""
    base = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
    im = Image.fromarray(base).resize((px, px), Image.BICUBIC)
    grain = rng.normal(0, 10, (px, px, 3))
    arr = np.clip(np.asarray(im, dtype=np.float64) + grain, 0, 255).astype(np.uint8)
    return Image.fromarray(arr)


def heavy_mesh_glb(path: Path, rng) -> Path:
    """A 200k-triangle wavy sheet (0.2 m square) with UVs and a 2048 px texture."""
    u = np.linspace(0, 1, GRID_N)
    uu, vv = np.meshgrid(u, u)
    x, z = (uu - 0.5) * 0.2, (vv - 0.5) * 0.2
    y = 0.01 * np.sin(uu * 25) * np.cos(vv * 19) + 0.005 * rng.standard_normal(uu.shape) * 0.1
    vertices = np.c_[x.ravel(), y.ravel(), z.ravel()]
    idx = np.arange(GRID_N * GRID_N).reshape(GRID_N, GRID_N)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel(), idx[:-1, 1:].ravel()
    faces = np.r_[np.c_[a, b, c], np.c_[a, c, d]]
    mesh = trimesh.Trimesh(vertices, faces, process=False)
    mesh.visual = trimesh.visual.TextureVisuals(uv=np.c_[uu.ravel(), vv.ravel()], image=smooth_texture(2048, rng))
    scene = trimesh.Scene(mesh)
    path.write_bytes(scene.export(file_type="glb"))
    return path


def animated_glb(path: Path, bones: int = 8, seconds: float = 4.0, fps: int = 30, rings: int = 48,
                 sides: int = 24) -> Path:
    """A skinned tube: ``bones`` joints in a chain, each swaying with its own rotation channel."""
    height = 0.2
    ring_y = np.linspace(0, height, rings)
    ang = np.linspace(0, 2 * np.pi, sides, endpoint=False)
    positions = np.array([[0.02 * math.cos(t), y, 0.02 * math.sin(t)] for y in ring_y for t in ang], np.float32)
    seg = height / bones
    joints = np.zeros((len(positions), 4), np.uint8)
    weights = np.zeros((len(positions), 4), np.float32)
    for i, (_, y, _) in enumerate(positions):
        j = min(int(y / seg), bones - 1)
        f = (y - j * seg) / seg
        k = min(j + 1, bones - 1)
        if k != j and f > 0:
            joints[i, :2], weights[i, :2] = (j, k), (1 - f, f)
        else:  # a joint listed with zero weight is a validator warning: list only the one that counts
            joints[i, 0], weights[i, 0] = j, 1.0
    faces = []
    for r in range(rings - 1):
        for s in range(sides):
            a, b = r * sides + s, r * sides + (s + 1) % sides
            c, d = a + sides, b + sides
            faces += [a, c, b, b, c, d]
    indices = np.array(faces, np.uint16)
    ibm = np.stack([np.eye(4, dtype=np.float32) for _ in range(bones)])
    for j in range(bones):
        ibm[j, 1, 3] = -j * seg
    ibm = np.ascontiguousarray(ibm.transpose(0, 2, 1))
    times = np.arange(0, seconds, 1 / fps, dtype=np.float32)
    blob, views, accessors = bytearray(), [], []

    def add(arr, type_, comp, target=None, bounds=False):
        while len(blob) % 4:
            blob.append(0)
        views.append(pygltflib.BufferView(buffer=0, byteOffset=len(blob), byteLength=arr.nbytes, target=target))
        blob.extend(arr.tobytes())
        kw = {}
        if bounds:
            flat = arr.reshape(arr.shape[0], -1)
            kw = {"min": flat.min(0).tolist(), "max": flat.max(0).tolist()}
        accessors.append(pygltflib.Accessor(bufferView=len(views) - 1, componentType=comp, count=arr.shape[0],
                                            type=type_, **kw))
        return len(accessors) - 1

    prim = pygltflib.Primitive(attributes=pygltflib.Attributes(
        POSITION=add(positions, "VEC3", 5126, 34962, True), JOINTS_0=add(joints, "VEC4", 5121, 34962),
        WEIGHTS_0=add(weights, "VEC4", 5126, 34962)), indices=add(indices, "SCALAR", 5123, 34963), material=0)
    a_ibm = add(ibm, "MAT4", 5126)
    a_time = add(times, "SCALAR", 5126, bounds=True)
    nodes = [pygltflib.Node(name="tube", mesh=0, skin=0)]
    samplers, channels = [], []
    for j in range(bones):
        nodes.append(pygltflib.Node(name=f"bone{j}", translation=[0, 0 if j == 0 else seg, 0],
                                    children=[j + 2] if j + 1 < bones else []))
        angle = 0.25 * np.sin(2 * np.pi * times / seconds * 2 + j * 0.6)
        rot = np.c_[np.zeros_like(angle), np.zeros_like(angle), np.sin(angle / 2), np.cos(angle / 2)]
        samplers.append(pygltflib.AnimationSampler(input=a_time, output=add(rot.astype(np.float32), "VEC4", 5126)))
        channels.append(pygltflib.AnimationChannel(sampler=j, target=pygltflib.AnimationChannelTarget(
            node=j + 1, path="rotation")))
    gltf = pygltflib.GLTF2(
        scene=0, scenes=[pygltflib.Scene(nodes=[0, 1])], nodes=nodes,
        meshes=[pygltflib.Mesh(primitives=[prim])],
        materials=[pygltflib.Material(pbrMetallicRoughness=pygltflib.PbrMetallicRoughness(
            baseColorFactor=[0.2, 0.6, 0.9, 1]))],
        skins=[pygltflib.Skin(joints=list(range(1, bones + 1)), inverseBindMatrices=a_ibm, skeleton=1)],
        animations=[pygltflib.Animation(name="sway", samplers=samplers, channels=channels)],
        buffers=[pygltflib.Buffer(byteLength=len(blob))], bufferViews=views, accessors=accessors)
    path.write_bytes(write_glb(GlbDocument(json.loads(gltf.to_json()), bytes(blob))))
    return path


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)


def animated_image(path: Path, fmt: str, rng, frames: int = 24, size=(240, 160)) -> Path:
    ims = []
    for i in range(frames):
        im = Image.new("RGB", size, (255, 255, 255))
        d = ImageDraw.Draw(im)
        cx = int(size[0] * (0.5 + 0.4 * math.sin(2 * math.pi * i / frames)))
        d.ellipse((cx - 20, 60, cx + 20, 100), fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
        ims.append(im)
    ims[0].save(path, format=fmt, save_all=True, append_images=ims[1:], duration=60, loop=0)
    return path


def make_inputs(d: Path) -> dict[str, Path]:
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    files = {"page": page_image(d / "page.jpg", rng), "heavy": heavy_mesh_glb(d / "mesh200k.glb", rng),
             "animated": animated_glb(d / "animated.glb")}
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25", "-t", "5", "-pix_fmt", "yuv420p", "-c:v",
           "libx264", "-movflags", "+faststart", str(d / "video1.mp4"))
    ffmpeg("-f", "lavfi", "-i", "mandelbrot=size=480x270:rate=25", "-t", "4", "-pix_fmt", "yuv420p", "-c:v",
           "libx264", "-movflags", "+faststart", str(d / "video2.mp4"))
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=523:duration=6", "-c:a", "aac", "-b:a", "96k", str(d / "audio.m4a"))
    files.update(video1=d / "video1.mp4", video2=d / "video2.mp4", audio=d / "audio.m4a",
                 gif=animated_image(d / "anim.gif", "GIF", rng), webp=animated_image(d / "anim.webp", "WEBP", rng))
    smooth_texture(1600, rng).save(d / "photo.jpg", quality=88)
    pano = smooth_texture(1024, rng).resize((2048, 1024))
    pano.save(d / "pano.jpg", quality=85)
    files.update(photo=d / "photo.jpg", pano=d / "pano.jpg")
    return files


def cases(f: dict[str, Path]) -> dict[str, tuple[PageSpec, list[Path]]]:
    one = lambda pid, spec: PageSpec(pid, 1, PAGE_W, PAGE_H, f["page"], (spec,))  # noqa: E731
    mixed = (
        OverlaySpec("m-arrow", "model3d", 20, 200, 30, 30, stock="arrow"),
        OverlaySpec("m-anim", "model3d", 60, 200, 50, 50, rotation_deg=15, asset_path=f["animated"]),
        OverlaySpec("v-1", "video", 20, 20, 128, 72, asset_path=f["video1"], asset_mime="video/mp4",
                    options={"autoplay": True, "muted": True, "loop": True}),
        OverlaySpec("v-2", "video", 170, 20, 96, 54, rotation_deg=-5, asset_path=f["video2"], asset_mime="video/mp4",
                    options={"chroma_key": "#00ff00"}),
        OverlaySpec("a-1", "audio", 290, 20, 20, 20, asset_path=f["audio"], asset_mime="audio/mp4"),
        OverlaySpec("g-1", "animated_image", 130, 200, 60, 40, asset_path=f["gif"]),
        OverlaySpec("g-2", "animated_image", 200, 200, 60, 40, rotation_deg=8, asset_path=f["webp"]),
        OverlaySpec("i-1", "image", 20, 300, 120, 120, asset_path=f["photo"]),
        OverlaySpec("p-1", "panorama360", 160, 300, 100, 50, asset_path=f["pano"], asset_mime="image/jpeg"),
        OverlaySpec("l-1", "link", 270, 420, 40, 30, url="https://baonhung.example/doc-them"),
    )
    inputs_mixed = [f[k] for k in ("page", "animated", "video1", "video2", "audio", "gif", "webp", "photo", "pano")]
    inputs_mixed.append(REPO / "assets" / "3d" / "arrow.glb")
    return {
        "mesh-200k": (one("mesh-200k", OverlaySpec("m", "model3d", 100, 150, 120, 120, asset_path=f["heavy"])),
                      [f["page"], f["heavy"]]),
        "animated": (one("animated", OverlaySpec("m", "model3d", 100, 150, 60, 60, asset_path=f["animated"])),
                     [f["page"], f["animated"]]),
        "page-10": (PageSpec("page-10", 1, PAGE_W, PAGE_H, f["page"], mixed), inputs_mixed),
    }


# ------------------------------------------------------------------------------------------------ serving
IMMUTABLE = "public, max-age=31536000, immutable"


def fallback_app(store, gz: dict[str, str]):
    """Used only while the product's app cannot start: the same headers on a minimal static route."""
    from flask import Flask, abort, request

    from viewer_api.public import send_blob

    app = Flask("bench_bundle_static")
    mimes = {"glb": "model/gltf-binary", "mp4": "video/mp4", "m4a": "audio/mp4", "jpg": "image/jpeg",
             "png": "image/png", "json": "application/json"}

    @app.get("/pub/a/<sha>.<ext>")
    def artifact(sha: str, ext: str):
        if ext not in mimes or not store.exists(sha):
            abort(404)
        if sha in gz and "gzip" in request.headers.get("Accept-Encoding", "") and "Range" not in request.headers:
            response = send_blob(store.send(gz[sha], mimes[ext], etag=f"{sha}-gz", cache_control=IMMUTABLE))
            response.headers["Content-Encoding"] = "gzip"
        else:
            response = send_blob(store.send(sha, mimes[ext], etag=sha, cache_control=IMMUTABLE))
        response.headers["Vary"] = "Accept-Encoding"
        return response

    return app


def start_server(data_dir: Path, files: list[Path]):
    """A real HTTP server on 127.0.0.1 serving ``files`` as published content-addressed artifacts (+ gzip copies).

    The product's app (builder.app.create_app → viewer_api /pub/a/<sha256>.<ext>) when it starts; otherwise a
    minimal Flask static route with the same headers. Returns (server, {path: sha}, description).
    """
    from werkzeug.serving import make_server

    from builder.storage import LocalDiskStore

    data_dir.mkdir(parents=True, exist_ok=True)
    store = LocalDiskStore(data_dir / "store")
    keys, gz = {}, {}
    for path in files:
        sha = store.put_file(path)
        keys[path] = sha
        if path.suffix in (".glb", ".json"):
            packed = gzip.compress(path.read_bytes(), compresslevel=9, mtime=0)
            if len(packed) < path.stat().st_size:
                gz[sha] = store.put_bytes(packed)
    try:
        from builder.app import create_app
        from viewer_api.published import EMPTY_CATALOG, PublishedStore

        app = create_app({"DATA_DIR": str(data_dir), "TESTING": True})
        # served blobs are those of a published edition (the catalog's edition_artifacts)
        catalog = dict(EMPTY_CATALOG, edition_artifacts={"1": sorted(keys.values())}, gzip=gz)
        PublishedStore(data_dir).write_catalog(catalog)
        what = "builder.app create_app (viewer_api /pub/a)"
    except Exception as exc:  # the app is being written in parallel; the bench must still measure serving
        app = fallback_app(store, gz)
        what = f"fallback Flask static route (create_app failed: {type(exc).__name__}: {str(exc)[:80]})"
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no per-request lines in the table output
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, keys, what


def fetch(port: int, url: str, gzip_ok: bool = True, byte_range: str | None = None
          ) -> tuple[float, float, int, dict]:
    """(ttfb s, total s, bytes on the wire, headers + ":status") of one GET on a fresh connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Accept-Encoding": "gzip"} if gzip_ok else {}
    if byte_range:
        headers["Range"] = byte_range
    t0 = time.perf_counter()
    conn.request("GET", url, headers=headers)
    resp = conn.getresponse()
    first = resp.read(1)
    ttfb = time.perf_counter() - t0
    rest = resp.read()
    total = time.perf_counter() - t0
    hdrs = dict(resp.getheaders(), **{":status": resp.status})
    conn.close()
    if resp.status not in (200, 206):
        raise RuntimeError(f"GET {url} -> {resp.status}")
    return ttfb, total, len(first) + len(rest), hdrs


# ------------------------------------------------------------------------------------------------ main
def channel_count(doc: dict) -> int:
    return sum(len(a.get("channels", [])) for a in doc.get("animations", []))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--cases", default="mesh-200k,animated,page-10")
    args = ap.parse_args(argv)
    wanted = [c.strip() for c in args.cases.split(",") if c.strip()]

    OUT.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    files = make_inputs(OUT / "inputs")
    print(f"inputs generated in {time.perf_counter() - t:.1f} s → {OUT / 'inputs'}")
    all_cases = cases(files)
    rows = []
    for name in wanted:
        page, inputs = all_cases[name]
        work = OUT / "build" / name
        shutil.rmtree(work, ignore_errors=True)
        t = time.perf_counter()
        bundle = build_page_bundle(page, BundleOptions(), work)
        build_s = time.perf_counter() - t
        in_bytes = sum(p.stat().st_size for p in inputs)
        media_bytes = sum(m.bytes for m in bundle.media)
        full_doc = read_glb(decode_glb(bundle.glb_full.read_bytes())).json
        src_channels = sum(channel_count(read_glb(p.read_bytes()).json) for p in inputs if p.suffix == ".glb")
        rows.append({"case": name, "bundle": bundle, "in": in_bytes, "raw": bundle.glb_raw.stat().st_size,
                     "full": bundle.glb_full.stat().st_size, "lite": bundle.glb_lite.stat().st_size,
                     "media": media_bytes, "build_s": build_s, "channels": (src_channels, channel_count(full_doc)),
                     "warnings": [w.code for w in bundle.warnings]})

    data_dir = OUT / "server-data"
    shutil.rmtree(data_dir, ignore_errors=True)
    served = [p for r in rows
              for p in (r["bundle"].glb_full, r["bundle"].glb_lite, *(m.path for m in r["bundle"].media))]
    server, keys, served_by = start_server(data_dir, served)
    port = server.server_address[1]
    try:
        for r in rows:
            for variant in ("full", "lite"):
                path = getattr(r["bundle"], f"glb_{variant}")
                url = f"/pub/a/{keys[path]}.glb"
                fetch(port, url)  # warm-up (first request imports/opens files)
                samples = [fetch(port, url) for _ in range(args.repeat)]
                r[f"{variant}_ttfb_ms"] = statistics.median(s[0] for s in samples) * 1000
                r[f"{variant}_dl_ms"] = statistics.median(s[1] for s in samples) * 1000
                r[f"{variant}_wire"] = samples[0][2]
                r[f"{variant}_headers"] = samples[0][3]
            video = next((m for m in r["bundle"].media if m.mime.startswith("video/")), None)
            if video is not None:
                samples = [fetch(port, f"/pub/a/{keys[video.path]}.{video.name.rsplit('.', 1)[1]}", False)
                           for _ in range(args.repeat)]
                r["video_ttfb_ms"] = statistics.median(s[0] for s in samples) * 1000
                ranged = fetch(port, f"/pub/a/{keys[video.path]}.{video.name.rsplit('.', 1)[1]}", False,
                               "bytes=0-65535")
                r["video_range"] = (ranged[3][":status"], ranged[2], ranged[3].get("Content-Range"))
    finally:
        server.shutdown()

    mb = lambda n: f"{n / 1e6:.2f}"  # noqa: E731
    header = (f"{'case':<10} {'input MB':>9} {'raw MB':>7} {'full MB':>8} {'lite MB':>8} {'media MB':>9} "
              f"{'build s':>8} {'full gz MB':>10} {'TTFB ms':>8} {'full dl ms':>10} {'lite dl ms':>10} "
              f"{'@5Mbit full/lite s':>19} {'anim ch':>8}")
    print()
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['case']:<10} {mb(r['in']):>9} {mb(r['raw']):>7} {mb(r['full']):>8} {mb(r['lite']):>8} "
              f"{mb(r['media']):>9} {r['build_s']:>8.1f} {mb(r['full_wire']):>10} {r['full_ttfb_ms']:>8.1f} "
              f"{r['full_dl_ms']:>10.1f} {r['lite_dl_ms']:>10.1f} "
              f"{r['full_wire'] * 8 / SLOW_LINK_BPS:>9.2f}/{r['lite_wire'] * 8 / SLOW_LINK_BPS:<9.2f} "
              f"{r['channels'][0]:>3}→{r['channels'][1]:<4}")
    first = rows[0]
    h = first["full_headers"]
    print(f"\nTTFB/dl: median of {args.repeat} GETs over loopback (Accept-Encoding: gzip); @5Mbit = bytes on the "
          f"wire / 5 Mbit/s, an estimate for a phone link, not a measurement")
    print(f"served by {served_by}, werkzeug on 127.0.0.1:{port}; sample headers: "
          f"Cache-Control={h.get('Cache-Control')!r} Content-Encoding={h.get('Content-Encoding')!r} "
          f"ETag={h.get('ETag')!r}")
    for r in rows:
        if r["warnings"]:
            print(f"warnings {r['case']}: {', '.join(r['warnings'])}")
        if "video_ttfb_ms" in r:
            status, size, content_range = r["video_range"]
            print(f"{r['case']}: first video TTFB {r['video_ttfb_ms']:.1f} ms (no gzip, streamed file); "
                  f"Range bytes=0-65535 → {status}, {size} bytes, Content-Range {content_range}")

    kv = {}
    for r in rows:
        key = r["case"].replace("-", "")
        kv.update({f"{key}_in_bytes": r["in"], f"{key}_full_bytes": r["full"], f"{key}_lite_bytes": r["lite"],
                   f"{key}_build_s": round(r["build_s"], 2), f"{key}_ttfb_ms": round(r["full_ttfb_ms"], 1),
                   f"{key}_download_ms": round(r["full_dl_ms"], 1)})
    kv["animation_channels_kept"] = all(r["channels"][0] == r["channels"][1] for r in rows)
    print("RESULT " + " ".join(f"{k}={v}" for k, v in kv.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
