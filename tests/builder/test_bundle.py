"""Page bundles: scene layout, overlay extras, placement round trip, grafted animations, media, validation."""
from __future__ import annotations

import hashlib
import io
import json
import math
import struct
import subprocess
from pathlib import Path

import av
import numpy as np
import pygltflib
import pytest
import trimesh
from PIL import Image

from builder import frame
from builder.bundle import (AUDIO_CONTROL_RGB, BundleBuildError, BundleOptions, OverlaySpec, PageSpec,
                            build_page_bundle, overlay_nodes)
from builder.compress import decode_glb
from builder.glb import GlbDocument, read_glb, write_glb
from builder.gltf_validator import validate_gltf

PAGE_W, PAGE_H = 280.0, 400.0
REPO = Path(__file__).resolve().parents[2]
# module-scoped builds are shared: keep this module on one xdist worker (make test uses --dist loadgroup)
pytestmark = pytest.mark.xdist_group("bundle")


# ----------------------------------------------------------------------------------------------- inputs
def make_page_image(path: Path, seed: int = 3) -> Path:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, (int(PAGE_H * 2), int(PAGE_W * 2), 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def make_animated_skinned_glb(path: Path) -> Path:
    """A two-bone skinned quad with a 2-channel animation, written with pygltflib (our GLB writer pads it)."""
    positions = np.array([[-0.5, 0, 0], [0.5, 0, 0], [0.5, 2, 0], [-0.5, 2, 0]], np.float32)
    joints = np.array([[0, 0, 0, 0], [0, 0, 0, 0], [1, 0, 0, 0], [1, 0, 0, 0]], np.uint8)
    weights = np.array([[1, 0, 0, 0]] * 4, np.float32)
    indices = np.array([0, 1, 2, 0, 2, 3], np.uint16)
    ibm = np.stack([np.eye(4), np.eye(4)]).astype(np.float32)
    ibm[1, 1, 3] = -1.0  # joint 1 sits at y = 1: its inverse bind moves y by −1
    ibm = np.ascontiguousarray(ibm.transpose(0, 2, 1))  # column-major
    times = np.array([0.0, 0.5, 1.0], np.float32)
    rotations = np.array([[0, 0, 0, 1], [0, 0, math.sin(0.4), math.cos(0.4)], [0, 0, 0, 1]], np.float32)
    translations = np.array([[0, 0, 0], [0, 0.2, 0], [0, 0, 0]], np.float32)
    blobs, views, accessors = bytearray(), [], []

    def add(arr, type_, comp, target=None, bounds=False):
        while len(blobs) % 4:
            blobs.append(0)
        views.append(pygltflib.BufferView(buffer=0, byteOffset=len(blobs), byteLength=arr.nbytes, target=target))
        blobs.extend(arr.tobytes())
        kw = {}
        if bounds:
            flat = arr.reshape(arr.shape[0], -1)
            kw = {"min": flat.min(0).tolist(), "max": flat.max(0).tolist()}
        accessors.append(pygltflib.Accessor(bufferView=len(views) - 1, componentType=comp, count=arr.shape[0],
                                            type=type_, **kw))
        return len(accessors) - 1

    a_pos = add(positions, "VEC3", 5126, 34962, bounds=True)
    a_joint = add(joints, "VEC4", 5121, 34962)
    a_weight = add(weights, "VEC4", 5126, 34962)
    a_idx = add(indices, "SCALAR", 5123, 34963)
    a_ibm = add(ibm, "MAT4", 5126)
    a_time = add(times, "SCALAR", 5126, bounds=True)
    a_rot = add(rotations, "VEC4", 5126)
    a_tr = add(translations, "VEC3", 5126)
    gltf = pygltflib.GLTF2(
        scene=0,
        scenes=[pygltflib.Scene(nodes=[0, 1])],
        nodes=[pygltflib.Node(name="skinned", mesh=0, skin=0),
               pygltflib.Node(name="bone_root", children=[2]),
               pygltflib.Node(name="bone_tip", translation=[0, 1, 0])],
        meshes=[pygltflib.Mesh(primitives=[pygltflib.Primitive(
            attributes=pygltflib.Attributes(POSITION=a_pos, JOINTS_0=a_joint, WEIGHTS_0=a_weight),
            indices=a_idx, material=0)])],
        materials=[pygltflib.Material(name="skin", pbrMetallicRoughness=pygltflib.PbrMetallicRoughness(
            baseColorFactor=[0.9, 0.3, 0.2, 1.0]))],
        skins=[pygltflib.Skin(joints=[1, 2], inverseBindMatrices=a_ibm, skeleton=1)],
        animations=[pygltflib.Animation(name="wave", samplers=[
            pygltflib.AnimationSampler(input=a_time, output=a_rot),
            pygltflib.AnimationSampler(input=a_time, output=a_tr)], channels=[
            pygltflib.AnimationChannel(sampler=0, target=pygltflib.AnimationChannelTarget(node=2, path="rotation")),
            pygltflib.AnimationChannel(sampler=1, target=pygltflib.AnimationChannelTarget(node=1,
                                                                                          path="translation"))])],
        buffers=[pygltflib.Buffer(byteLength=len(blobs))],
        bufferViews=views,
        accessors=accessors,
    )
    path.write_bytes(write_glb(GlbDocument(json.loads(gltf.to_json()), bytes(blobs))))
    return path


def make_video(path: Path, seconds: float = 1.0) -> Path:
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=10",
                    "-t", str(seconds), "-pix_fmt", "yuv420p", "-c:v", "libx264", str(path)], check=True)
    return path


def make_audio(path: Path) -> Path:
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "sine=frequency=440", "-t", "0.5",
                    str(path)], check=True)
    return path


def make_animation_frames(n: int = 6, size=(64, 48)) -> list[Image.Image]:
    rng = np.random.default_rng(5)
    frames = []
    for i in range(n):
        im = Image.new("RGBA", size, (0, 0, 0, 0))
        im.paste((int(rng.integers(0, 255)), 40 * i % 255, 200, 255), (i * 8, 0, i * 8 + 16, size[1]))
        frames.append(im)
    return frames


def make_animated_image(path: Path, fmt: str) -> Path:
    frames = make_animation_frames()
    if fmt == "GIF":
        frames = [f.convert("RGB") for f in frames]
    frames[0].save(path, format=fmt, save_all=True, append_images=frames[1:], duration=80, loop=0)
    return path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("inputs")
    box = trimesh.creation.box((0.10, 0.05, 0.06))
    box.apply_translation((0.3, 0.2, -0.1))  # off-centre on purpose: "contain" fit must recentre it
    box.export(d / "box.glb")
    return {
        "page": make_page_image(d / "page.png"),
        "box": d / "box.glb",
        "animated": make_animated_skinned_glb(d / "animated.glb"),
        "video": make_video(d / "clip.mp4"),
        "audio": make_audio(d / "sound.m4a"),
        "gif": make_animated_image(d / "anim.gif", "GIF"),
        "poster": make_page_image(d / "poster.jpg", seed=9),
    }


def mixed_overlays(inputs) -> tuple[OverlaySpec, ...]:
    return (
        OverlaySpec("m1", "model3d", 20, 30, 60, 40, rotation_deg=30, elevation_mm=5, asset_path=inputs["box"],
                    asset_mime="model/gltf-binary"),
        OverlaySpec("m2", "model3d", 120, 30, 50, 50, rotation_deg=-90, asset_path=inputs["animated"]),
        OverlaySpec("v1", "video", 30, 120, 80, 45, rotation_deg=12.5, asset_path=inputs["video"],
                    asset_mime="video/mp4", options={"loop": True, "chroma_key": "#00ff00"}),
        OverlaySpec("a1", "audio", 200, 120, 20, 20, asset_path=inputs["audio"], asset_mime="audio/mp4"),
        OverlaySpec("g1", "animated_image", 150, 200, 64, 48, rotation_deg=180, elevation_mm=2,
                    asset_path=inputs["gif"]),
        OverlaySpec("i1", "image", 20, 250, 50, 70, asset_path=inputs["poster"]),
        OverlaySpec("p1", "panorama360", 100, 300, 60, 30, asset_path=inputs["poster"], asset_mime="image/jpeg"),
        OverlaySpec("l1", "link", 200, 330, 30, 30, rotation_deg=45, url="https://baonhung.example/a"),
    )


@pytest.fixture(scope="module")
def page(inputs) -> PageSpec:
    return PageSpec("page-7", 7, PAGE_W, PAGE_H, inputs["page"], mixed_overlays(inputs))


@pytest.fixture(scope="module")
def raw_bundle(page, tmp_path_factory):
    return build_page_bundle(page, BundleOptions(compress=False), tmp_path_factory.mktemp("raw"))


@pytest.fixture(scope="module")
def compressed_bundle(page, tmp_path_factory):
    return build_page_bundle(page, BundleOptions(), tmp_path_factory.mktemp("compressed"))


def gltf_json(path: Path) -> dict:
    return read_glb(path.read_bytes()).json


def world_matrices(doc: dict) -> dict[int, np.ndarray]:
    from builder.gltf import node_matrix as _node_matrix

    out = {}
    stack = [(r, np.eye(4)) for r in doc["scenes"][doc.get("scene", 0)]["nodes"]]
    while stack:
        i, parent = stack.pop()
        out[i] = parent @ _node_matrix(doc["nodes"][i])
        stack.extend((c, out[i]) for c in doc["nodes"][i].get("children", []))
    return out


def read_positions(glb: GlbDocument, accessor: int) -> np.ndarray:
    from builder.compress import _read_accessor

    return _read_accessor(glb, accessor).astype(np.float64)


def editor_corners(spec: OverlaySpec) -> np.ndarray:
    """Box corners on the page computed in editor terms only: centre + clockwise rotation in y-down mm."""
    cx, cy = spec.x_mm + spec.width_mm / 2, spec.y_mm + spec.height_mm / 2
    t = math.radians(spec.rotation_deg)
    out = []
    for dx, dy in ((-1, -1), (-1, 1), (1, 1), (1, -1)):  # tl, bl, br, tr as in frame.quad_corners_m
        ox, oy = dx * spec.width_mm / 2, dy * spec.height_mm / 2
        out.append((cx + ox * math.cos(t) - oy * math.sin(t), cy + ox * math.sin(t) + oy * math.cos(t)))
    return np.array(out)


# ----------------------------------------------------------------------------------------------- tests
def test_bundle_passes_khronos_validator_with_zero_errors(raw_bundle):
    report = validate_gltf(raw_bundle.glb_raw.read_bytes())
    assert report.errors == 0, report.first_messages(5)


def test_compressed_bundles_pass_validator_after_decoding(compressed_bundle):
    for path in (compressed_bundle.glb_full, compressed_bundle.glb_lite):
        doc = gltf_json(path)
        assert "EXT_meshopt_compression" in doc["extensionsUsed"]
        decoded = decode_glb(path.read_bytes())
        assert "EXT_meshopt_compression" not in read_glb(decoded).json.get("extensionsUsed", [])
        report = validate_gltf(decoded)
        assert report.errors == 0, report.first_messages(5)


def test_every_overlay_has_one_node_keyed_by_id_in_extras(page, raw_bundle, compressed_bundle):
    for path in (raw_bundle.glb_raw, compressed_bundle.glb_full, compressed_bundle.glb_lite):
        nodes = overlay_nodes(gltf_json(path))
        assert sorted(nodes) == sorted(o.id for o in page.overlays)
        for spec in page.overlays:
            extras = nodes[spec.id]["extras"]["overlay"]
            assert extras["kind"] == spec.kind
            for key in ("id", "kind", "src", "mime", "loop", "muted", "autoplay", "chroma_key"):
                assert key in extras, (spec.id, key)
            assert nodes[spec.id]["name"] == f"overlay/{spec.id}"


def test_overlay_nodes_sit_exactly_where_the_editor_placed_them(page, raw_bundle, compressed_bundle):
    for path in (raw_bundle.glb_raw, compressed_bundle.glb_full, compressed_bundle.glb_lite):
        nodes = overlay_nodes(gltf_json(path))
        for spec in page.overlays:
            node = nodes[spec.id]
            back = frame.node_transform_to_placement(node["translation"], node.get("rotation", (0, 0, 0, 1)),
                                                     spec.width_mm, spec.height_mm, PAGE_W, PAGE_H)
            assert back.x_mm == pytest.approx(spec.x_mm, abs=0.1), spec.id
            assert back.y_mm == pytest.approx(spec.y_mm, abs=0.1), spec.id
            assert back.elevation_mm == pytest.approx(spec.elevation_mm, abs=0.1), spec.id
            dr = (back.rotation_deg - spec.rotation_deg + 180) % 360 - 180
            assert abs(dr) < 0.01, spec.id


def test_quad_corners_land_on_the_rotated_editor_box(page, raw_bundle):
    glb = read_glb(raw_bundle.glb_raw.read_bytes())
    doc = glb.json
    world = world_matrices(doc)
    ids = overlay_nodes(doc)
    index_of = {id(n): i for i, n in enumerate(doc["nodes"])}
    checked = 0
    for spec in page.overlays:
        node_i = index_of[id(ids[spec.id])]
        for child in doc["nodes"][node_i].get("children", []):
            mesh = doc["nodes"][child].get("mesh")
            if mesh is None or not doc["nodes"][child]["name"].startswith("quad/"):
                continue
            pos = read_positions(glb, doc["meshes"][mesh]["primitives"][0]["attributes"]["POSITION"])
            pts = (world[child] @ np.c_[pos, np.ones(len(pos))].T).T[:, :3]
            on_page = np.array([frame.gltf_point_to_page(p, PAGE_W, PAGE_H) for p in pts])
            np.testing.assert_allclose(on_page[:, :2], editor_corners(spec), atol=0.1, err_msg=spec.id)
            np.testing.assert_allclose(on_page[:, 2], spec.elevation_mm, atol=0.1)
            checked += 1
    assert checked == 6  # video, animated image, image, 360°, link, audio (its sound control, issue 24)


def test_animations_and_skins_of_a_grafted_model_survive_packaging(inputs, raw_bundle, compressed_bundle):
    source = gltf_json(inputs["animated"])
    channels_before = sum(len(a["channels"]) for a in source["animations"])
    for path in (raw_bundle.glb_raw, compressed_bundle.glb_full, compressed_bundle.glb_lite):
        doc = read_glb(decode_glb(path.read_bytes())).json if path != raw_bundle.glb_raw else gltf_json(path)
        assert sum(len(a["channels"]) for a in doc.get("animations", [])) == channels_before
        assert len(doc.get("skins", [])) == 1
        names = {doc["nodes"][c["target"]["node"]].get("name") for a in doc["animations"] for c in a["channels"]}
        assert names == {"bone_root", "bone_tip"}
        assert {doc["nodes"][j]["name"] for j in doc["skins"][0]["joints"]} == {"bone_root", "bone_tip"}
    extras = overlay_nodes(gltf_json(raw_bundle.glb_raw))["m2"]["extras"]["overlay"]
    assert extras["animations"] == 1 and extras["autoplay"] is True


def test_model_is_fitted_into_its_box_and_stands_on_the_paper(page, raw_bundle):
    from builder.gltf import model_bounds

    doc = gltf_json(raw_bundle.glb_raw)
    node = overlay_nodes(doc)["m1"]
    fit_index = node["children"][0]
    lo, hi = model_bounds(doc, [fit_index])  # in the overlay node's frame
    spec = page.overlays[0]
    assert lo[1] == pytest.approx(0.0, abs=1e-6)
    assert (hi[0] + lo[0], hi[2] + lo[2]) == pytest.approx((0.0, 0.0), abs=1e-6)  # centred on the box
    assert hi[0] - lo[0] <= frame.mm_to_m(spec.width_mm) + 1e-6
    assert hi[2] - lo[2] <= frame.mm_to_m(spec.height_mm) + 1e-6
    assert max((hi[0] - lo[0]) / frame.mm_to_m(spec.width_mm), (hi[2] - lo[2]) / frame.mm_to_m(spec.height_mm)) \
        == pytest.approx(1.0)


def textured_lit_model(path: Path) -> Path:
    """A textured sphere plus a punctual light and a clearcoat texture: references beyond the core arrays."""
    rng = np.random.default_rng(8)
    mesh = trimesh.creation.icosphere(subdivisions=2, radius=0.05)
    uv = rng.uniform(0, 1, (len(mesh.vertices), 2))
    mesh.visual = trimesh.visual.TextureVisuals(
        uv=uv, image=Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)))
    doc = read_glb(trimesh.Scene(mesh).export(file_type="glb"))
    j = doc.json
    j.setdefault("extensionsUsed", []).extend(["KHR_lights_punctual", "KHR_materials_clearcoat"])
    j["extensions"] = {"KHR_lights_punctual": {"lights": [{"type": "point", "intensity": 2.0}]}}
    j["nodes"].append({"name": "lamp", "translation": [0, 0.1, 0], "extensions": {"KHR_lights_punctual": {"light": 0}}})
    j["scenes"][0]["nodes"].append(len(j["nodes"]) - 1)
    j["materials"][0]["extensions"] = {"KHR_materials_clearcoat": {"clearcoatFactor": 1.0,
                                                                   "clearcoatTexture": {"index": 0}}}
    path.write_bytes(write_glb(doc))
    return path


def test_the_same_model_grafted_twice_keeps_every_reference_consistent(tmp_path, inputs):
    model = textured_lit_model(tmp_path / "lit.glb")
    specs = (OverlaySpec("a", "model3d", 10, 10, 40, 40, asset_path=model),
             OverlaySpec("b", "model3d", 100, 10, 40, 40, rotation_deg=45, asset_path=model))
    bundle = build_page_bundle(PageSpec("p", 1, PAGE_W, PAGE_H, inputs["page"], specs),
                               BundleOptions(compress=False), tmp_path / "out")
    report = validate_gltf(bundle.glb_raw.read_bytes())
    assert report.errors == 0 and report.warnings == 0, report.first_messages(5, "warning")
    doc = gltf_json(bundle.glb_raw)
    assert len(doc["extensions"]["KHR_lights_punctual"]["lights"]) == 2
    lamps = [n for n in doc["nodes"] if n.get("name") == "lamp"]
    assert [n["extensions"]["KHR_lights_punctual"]["light"] for n in lamps] == [0, 1]
    grafted = [m for m in doc["materials"] if "KHR_materials_clearcoat" in m.get("extensions", {})]
    tex = [m["pbrMetallicRoughness"]["baseColorTexture"]["index"] for m in grafted]
    coat = [m["extensions"]["KHR_materials_clearcoat"]["clearcoatTexture"]["index"] for m in grafted]
    assert tex == coat and tex[0] != tex[1]
    # each copy brings its own image: grafts never share data (dedup is left to gltf-transform)
    images = [doc["images"][doc["textures"][t]["source"]] for t in tex]
    assert images[0]["bufferView"] != images[1]["bufferView"]


def test_page_without_overlays_is_just_the_hidden_page(tmp_path, inputs):
    bundle = build_page_bundle(PageSpec("empty", 2, PAGE_W, PAGE_H, inputs["page"], ()),
                               BundleOptions(compress=False), tmp_path)
    doc = gltf_json(bundle.glb_raw)
    assert len(doc["scenes"][0]["nodes"]) == 1 and bundle.media == ()


def test_model_with_fit_none_keeps_its_own_metres(tmp_path, inputs):
    spec = OverlaySpec("n", "model3d", 10, 10, 40, 40, asset_path=inputs["box"], options={"fit": "none"})
    bundle = build_page_bundle(PageSpec("p", 1, PAGE_W, PAGE_H, inputs["page"], (spec,)),
                               BundleOptions(compress=False, validate=False), tmp_path)
    doc = gltf_json(bundle.glb_raw)
    fit = doc["nodes"][overlay_nodes(doc)["n"]["children"][0]]
    assert fit["name"] == "fit/n" and "scale" not in fit and "translation" not in fit
    assert overlay_nodes(doc)["n"]["extras"]["overlay"]["fit"] == "none"


def test_page_plane_is_hidden_by_default_and_textured_with_a_small_preview(raw_bundle):
    glb = read_glb(raw_bundle.glb_raw.read_bytes())
    doc = glb.json
    root = doc["nodes"][doc["scenes"][0]["nodes"][0]]
    assert root["name"] == "page" and root["extras"]["visible"] is False
    assert root["extras"]["width_mm"] == PAGE_W and "translation" not in root
    plane = doc["nodes"][root["children"][0]]
    material = doc["materials"][doc["meshes"][plane["mesh"]]["primitives"][0]["material"]]
    image = doc["images"][doc["textures"][material["pbrMetallicRoughness"]["baseColorTexture"]["index"]]["source"]]
    view = doc["bufferViews"][image["bufferView"]]
    from io import BytesIO
    preview = Image.open(BytesIO(glb.bin[view["byteOffset"]:view["byteOffset"] + view["byteLength"]]))
    assert max(preview.size) == 512
    # overlays are siblings of the page, so hiding the page hides no overlay
    assert all(doc["nodes"][i]["name"] != "page" for i in root.get("children", []))
    assert len(doc["scenes"][0]["nodes"]) == 1 + 8


def test_media_files_sit_beside_the_glb_named_by_their_sha256(raw_bundle):
    nodes = overlay_nodes(gltf_json(raw_bundle.glb_raw))
    by_name = {m.name: m for m in raw_bundle.media}
    for overlay_id in ("v1", "a1", "g1", "p1"):
        src = nodes[overlay_id]["extras"]["overlay"]["src"]
        media = by_name[src]
        data = media.path.read_bytes()
        assert media.path.parent == raw_bundle.glb_raw.parent / "media"
        assert src == f"{hashlib.sha256(data).hexdigest()}.{src.rsplit('.', 1)[1]}"
        assert media.sha256 == hashlib.sha256(data).hexdigest() and media.bytes == len(data)
        assert media.overlay_id == overlay_id
    assert {m.mime for m in raw_bundle.media} == {"video/mp4", "audio/mp4", "image/jpeg"}
    for overlay_id in ("m1", "m2", "i1", "l1"):
        assert nodes[overlay_id]["extras"]["overlay"]["src"] is None


def test_video_keeps_designer_playback_options_and_gets_a_poster(raw_bundle):
    doc = gltf_json(raw_bundle.glb_raw)
    extras = overlay_nodes(doc)["v1"]["extras"]["overlay"]
    assert extras["loop"] is True and extras["chroma_key"] == "#00ff00" and extras["poster"] is True
    assert extras["mime"] == "video/mp4" and extras["src"].endswith(".mp4")


def test_audio_overlay_shows_a_play_button_on_its_box(raw_bundle, page):
    """Issue 24: an audio overlay was an empty node, nothing on the paper to see or tap."""
    glb = read_glb(raw_bundle.glb_raw.read_bytes())
    doc = glb.json
    node = overlay_nodes(doc)["a1"]
    assert node["extras"]["overlay"]["mime"] == "audio/mp4" and node["extras"]["overlay"]["poster"] is True
    assert "mesh" not in node  # the overlay node keeps the editor placement; its quad hangs on a child
    quad = doc["nodes"][node["children"][0]]
    assert quad["name"] == "quad/a1"
    prim = doc["meshes"][quad["mesh"]]["primitives"][0]
    positions = read_positions(glb, prim["attributes"]["POSITION"])
    spec = next(o for o in page.overlays if o.id == "a1")
    assert np.ptp(positions[:, 0]) * 1000 == pytest.approx(spec.width_mm, abs=1e-3)
    assert np.ptp(positions[:, 2]) * 1000 == pytest.approx(spec.height_mm, abs=1e-3)
    material = doc["materials"][prim["material"]]
    assert "KHR_materials_unlit" in material["extensions"]
    image = doc["images"][doc["textures"][material["pbrMetallicRoughness"]["baseColorTexture"]["index"]]["source"]]
    view = doc["bufferViews"][image["bufferView"]]
    button = np.asarray(Image.open(io.BytesIO(glb.bin[view["byteOffset"]:view["byteOffset"] + view["byteLength"]]))
                        .convert("RGB")).astype(int)
    accent = np.abs(button - np.array(AUDIO_CONTROL_RGB)).max(axis=2) < 24
    white = button.min(axis=2) > 230
    assert accent.mean() > 0.4 and white.mean() > 0.05, "an accent panel with a white play button"
    h, w = accent.shape
    assert white[h // 2 - h // 8: h // 2 + h // 8, w // 2 - w // 8: w // 2 + w // 8].mean() > 0.3  # button centred


def test_an_audio_poster_chosen_by_the_designer_is_its_button(tmp_path, inputs):
    spec = OverlaySpec("a2", "audio", 10, 10, 30, 30, asset_path=inputs["audio"], asset_mime="audio/mp4",
                       poster_path=inputs["poster"])
    bundle = build_page_bundle(PageSpec("pa", 1, PAGE_W, PAGE_H, inputs["page"], (spec,)),
                               BundleOptions(compress=False), tmp_path)
    doc = gltf_json(bundle.glb_raw)
    assert validate_gltf(bundle.glb_raw.read_bytes()).errors == 0
    quad = doc["nodes"][overlay_nodes(doc)["a2"]["children"][0]]
    assert [i["name"] for i in doc["images"]] == ["page-preview", "poster/a2"] and quad["name"] == "quad/a2"


def test_link_carries_its_url_and_a_placeholder_poster(raw_bundle):
    doc = gltf_json(raw_bundle.glb_raw)
    node = overlay_nodes(doc)["l1"]
    assert node["extras"]["overlay"]["url"] == "https://baonhung.example/a"
    assert doc["nodes"][node["children"][0]]["name"] == "quad/l1"


@pytest.mark.parametrize("fmt,suffix", [("GIF", "gif"), ("WEBP", "webp"), ("PNG", "png")])
def test_animated_images_become_looping_muted_mp4(tmp_path, inputs, fmt, suffix):
    source = make_animated_image(tmp_path / f"anim.{suffix}", fmt)
    spec = OverlaySpec("g", "animated_image", 10, 10, 64, 48, asset_path=source)
    bundle = build_page_bundle(PageSpec("p", 1, PAGE_W, PAGE_H, inputs["page"], (spec,)),
                               BundleOptions(compress=False), tmp_path / "out")
    extras = overlay_nodes(gltf_json(bundle.glb_raw))["g"]["extras"]["overlay"]
    assert (extras["loop"], extras["muted"], extras["autoplay"], extras["mime"]) == (True, True, True, "video/mp4")
    (media,) = bundle.media
    with av.open(str(media.path)) as container:
        assert not container.streams.audio
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        decoded = [f for f in container.decode(stream)]
        seconds = float(decoded[-1].pts * stream.time_base) + 1 / float(stream.average_rate)
    assert len(decoded) >= 6  # 6 source frames of 80 ms, none dropped
    assert seconds == pytest.approx(6 * 0.080, abs=0.04)  # the source's timing, not the encoder's
    assert not [w for w in bundle.warnings if w.code == "animated_image_single_frame"]


def test_model_failing_validation_is_refused_with_the_validators_first_messages(tmp_path, inputs):
    doc = read_glb(inputs["box"].read_bytes())
    doc.json["accessors"][0]["count"] = 10_000_000  # far beyond its bufferView
    bad = tmp_path / "bad.glb"
    bad.write_bytes(write_glb(doc))
    spec = OverlaySpec("bad", "model3d", 10, 10, 40, 40, asset_path=bad)
    with pytest.raises(BundleBuildError) as info:
        build_page_bundle(PageSpec("p", 1, PAGE_W, PAGE_H, inputs["page"], (spec,)), BundleOptions(compress=False),
                          tmp_path / "out")
    err = info.value
    assert err.overlay_id == "bad" and err.page_id == "p"
    assert err.messages and any("ACCESSOR" in m for m in err.messages), err.messages
    assert err.to_dict()["error"] == "bundle_build_failed"


def test_unknown_overlay_kind_is_a_typed_build_error(tmp_path, inputs):
    spec = OverlaySpec("x", "hologram", 10, 10, 40, 40)
    with pytest.raises(BundleBuildError, match="hologram"):
        build_page_bundle(PageSpec("p", 1, PAGE_W, PAGE_H, inputs["page"], (spec,)), BundleOptions(compress=False),
                          tmp_path)


def test_overlay_without_a_positive_size_is_refused(tmp_path, inputs):
    spec = OverlaySpec("z", "link", 10, 10, 0, 40, url="https://baonhung.example")
    with pytest.raises(BundleBuildError) as info:
        build_page_bundle(PageSpec("p", 1, PAGE_W, PAGE_H, inputs["page"], (spec,)), BundleOptions(compress=False),
                          tmp_path)
    assert info.value.overlay_id == "z"


def test_missing_asset_file_names_the_overlay(tmp_path, inputs):
    spec = OverlaySpec("v9", "video", 10, 10, 40, 40, asset_path=tmp_path / "gone.mp4")
    with pytest.raises(BundleBuildError) as info:
        build_page_bundle(PageSpec("p", 1, PAGE_W, PAGE_H, inputs["page"], (spec,)), BundleOptions(compress=False),
                          tmp_path)
    assert info.value.overlay_id == "v9"


def test_obj_model_from_store_path_without_extension_is_converted_without_trimesh_metadata(tmp_path, inputs):
    mesh = trimesh.creation.icosphere(subdivisions=1, radius=0.05)
    mesh.metadata["secret"] = "trimesh leftovers"
    stored = tmp_path / "ab12cd"  # asset store paths carry no extension
    stored.write_bytes(mesh.export(file_type="obj").encode())
    spec = OverlaySpec("o", "model3d", 10, 10, 40, 40, asset_path=stored, asset_mime="model/obj")
    bundle = build_page_bundle(PageSpec("p", 1, PAGE_W, PAGE_H, inputs["page"], (spec,)),
                               BundleOptions(compress=False), tmp_path / "out")
    doc = gltf_json(bundle.glb_raw)
    assert doc["meshes"], "no geometry grafted"
    text = json.dumps(doc)
    assert "trimesh leftovers" not in text
    assert sum(1 for n in doc["nodes"] if "extras" in n) == 2  # page + overlay only


@pytest.mark.parametrize("file_type", ["stl", "ply", "dae"])
def test_stl_ply_and_collada_models_from_the_store_are_sniffed_and_converted(tmp_path, inputs, file_type):
    mesh = trimesh.creation.cylinder(radius=0.03, height=0.08, sections=12)
    stored = tmp_path / f"blob-{file_type}"  # no extension, no declared MIME: detected from the bytes
    data = mesh.export(file_type=file_type)
    stored.write_bytes(data.encode() if isinstance(data, str) else data)
    spec = OverlaySpec("c", "model3d", 10, 10, 40, 40, asset_path=stored)
    bundle = build_page_bundle(PageSpec("p", 1, PAGE_W, PAGE_H, inputs["page"], (spec,)),
                               BundleOptions(compress=False), tmp_path / "out")  # validated inside
    doc = gltf_json(bundle.glb_raw)
    assert sum(doc["accessors"][p["indices"]]["count"] // 3 for m in doc["meshes"][1:] for p in m["primitives"]) \
        == len(mesh.faces)


def test_stock_model_is_grafted_from_assets(tmp_path, inputs):
    spec = OverlaySpec("s", "model3d", 10, 10, 30, 30, stock="arrow")
    bundle = build_page_bundle(PageSpec("p", 1, PAGE_W, PAGE_H, inputs["page"], (spec,)),
                               BundleOptions(compress=False), tmp_path)
    doc = gltf_json(bundle.glb_raw)
    stock = gltf_json(REPO / "assets" / "3d" / "arrow.glb")
    assert len(doc["meshes"]) == 1 + len(stock["meshes"])
    assert validate_gltf(bundle.glb_raw.read_bytes()).errors == 0


def test_size_budget_warning_names_the_biggest_contributor(tmp_path, inputs, page):
    spec = OverlaySpec("big", "image", 10, 10, 100, 100, asset_path=make_page_image(tmp_path / "noise.png", 4))
    options = BundleOptions(compress=False, budget_full_bytes=100_000, budget_lite_bytes=50_000)
    bundle = build_page_bundle(PageSpec("p", 1, PAGE_W, PAGE_H, inputs["page"], (spec,)), options, tmp_path)
    over = [w for w in bundle.warnings if w.code == "over_budget"]
    assert {w.values["variant"] for w in over} == {"full", "lite"}
    assert over[0].values["biggest"][0]["label"] == "overlay big (image)"
    assert over[0].values["biggest"][0]["overlay_id"] == "big"
    assert "overlay big (image)" in over[0].message
    assert bundle.contributors[0][0] == "overlay big (image)"


def test_bundle_within_budget_has_no_budget_warning(raw_bundle):
    assert not [w for w in raw_bundle.warnings if w.code == "over_budget"]


def test_glb_writer_pads_both_chunks_to_four_bytes():
    data = write_glb(GlbDocument({"asset": {"version": "2.0"}}, b"\x01\x02\x03\x04\x05"))
    json_len, _ = struct.unpack_from("<II", data, 12)
    assert json_len % 4 == 0
    bin_len, bin_type = struct.unpack_from("<II", data, 20 + json_len)
    assert bin_type == 0x004E4942 and bin_len == 8
    assert len(data) % 4 == 0 and struct.unpack_from("<I", data, 8)[0] == len(data)
    back = read_glb(data)
    assert back.bin == b"\x01\x02\x03\x04\x05" and back.json["buffers"][0]["byteLength"] == 5
