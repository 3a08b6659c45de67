"""Compression steps: meshopt + WebP keep the scene; lite caps textures and simplifies; decode for validation."""
from __future__ import annotations

import io
import subprocess
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image

from builder import compress
from builder.bundle import BundleOptions, OverlaySpec, PageSpec, build_page_bundle, overlay_nodes
from builder.glb import GlbDocument, read_glb, write_glb
from builder.gltf_validator import validate_gltf

REPO = Path(__file__).resolve().parents[2]
# module-scoped builds are shared: keep this module on one xdist worker (make test uses --dist loadgroup)
pytestmark = pytest.mark.xdist_group("compress")


def textured_sphere_glb(path: Path, subdivisions: int, texture_px: int, seed: int = 1) -> Path:
    """An icosphere with UVs and a noisy texture of ``texture_px`` square, plus an empty node with extras."""
    rng = np.random.default_rng(seed)
    mesh = trimesh.creation.icosphere(subdivisions=subdivisions, radius=0.1)
    v = mesh.vertices / np.linalg.norm(mesh.vertices, axis=1, keepdims=True)
    uv = np.c_[0.5 + np.arctan2(v[:, 2], v[:, 0]) / (2 * np.pi), 0.5 - np.arcsin(v[:, 1]) / np.pi]
    texture = Image.fromarray(rng.integers(0, 255, (texture_px, texture_px, 3), dtype=np.uint8))
    mesh.visual = trimesh.visual.TextureVisuals(uv=uv, image=texture)
    doc = read_glb(trimesh.Scene(mesh).export(file_type="glb"))
    doc.json["nodes"].append({"name": "overlay/empty", "extras": {"overlay": {"id": "empty", "kind": "audio"}}})
    doc.json["scenes"][0]["nodes"].append(len(doc.json["nodes"]) - 1)
    path.write_bytes(write_glb(doc))
    return path


def triangles(doc: dict) -> int:
    return sum(doc["accessors"][p["indices"]]["count"] // 3 for m in doc["meshes"] for p in m["primitives"])


def texture_sizes(glb: GlbDocument) -> list[tuple[int, int]]:
    sizes = []
    for image in glb.json.get("images", []):
        view = glb.json["bufferViews"][image["bufferView"]]
        start = view.get("byteOffset", 0)
        sizes.append(Image.open(io.BytesIO(glb.bin[start:start + view["byteLength"]])).size)
    return sizes


@pytest.fixture(scope="module")
def heavy(tmp_path_factory) -> Path:
    # 20,480 triangles, 2,560 px texture: above both texture caps and the lite budget used below
    return textured_sphere_glb(tmp_path_factory.mktemp("heavy") / "heavy.glb", subdivisions=5, texture_px=2560)


def test_simplify_document_cuts_primitives_above_budget_and_keeps_attributes(heavy):
    doc = read_glb(heavy.read_bytes())
    before = triangles(doc.json)
    out, changes = compress.simplify_document(doc, triangle_budget=5_000)
    assert changes and changes[0][1] == before
    assert triangles(out.json) <= 5_000 < before
    prim = out.json["meshes"][0]["primitives"][0]
    assert {"POSITION", "TEXCOORD_0"} <= set(prim["attributes"])
    assert validate_gltf(write_glb(out)).errors == 0


def test_simplify_document_leaves_meshes_within_budget_alone(heavy):
    doc = read_glb(heavy.read_bytes())
    out, changes = compress.simplify_document(doc, triangle_budget=1_000_000)
    assert changes == [] and triangles(out.json) == triangles(doc.json)


def test_full_variant_is_meshopt_and_webp_capped_at_2048_keeping_nodes_and_extras(heavy, tmp_path):
    out = compress.compress_full(heavy, tmp_path / "full.glb")
    doc = read_glb(out.read_bytes())
    assert {"EXT_meshopt_compression", "EXT_texture_webp"} <= set(doc.json["extensionsUsed"])
    assert out.stat().st_size < heavy.stat().st_size
    decoded = read_glb(compress.decode_glb(out.read_bytes()))
    assert max(max(s) for s in texture_sizes(decoded)) == 2048
    assert triangles(decoded.json) == triangles(read_glb(heavy.read_bytes()).json)
    names = [n.get("name") for n in decoded.json["nodes"]]
    assert "overlay/empty" in names  # an empty node survives (default optimize would prune it)
    empty = decoded.json["nodes"][names.index("overlay/empty")]
    assert empty["extras"] == {"overlay": {"id": "empty", "kind": "audio"}}
    assert validate_gltf(compress.decode_glb(out.read_bytes())).errors == 0


def test_lite_variant_caps_textures_at_1024_and_simplifies_above_budget(heavy, tmp_path):
    out = compress.compress_lite(heavy, tmp_path / "lite.glb", triangle_budget=5_000)
    decoded = read_glb(compress.decode_glb(out.read_bytes()))
    assert max(max(s) for s in texture_sizes(decoded)) == 1024
    assert triangles(decoded.json) <= 5_000
    assert "TEXCOORD_0" in decoded.json["meshes"][0]["primitives"][0]["attributes"]
    assert "overlay/empty" in [n.get("name") for n in decoded.json["nodes"]]
    assert validate_gltf(write_glb(decoded)).errors == 0


def test_decode_removes_meshopt_so_the_validator_sees_plain_accessors(heavy, tmp_path):
    out = compress.compress_full(heavy, tmp_path / "full.glb", texture_max_px=256)
    raw_report = validate_gltf(out.read_bytes())
    assert any("EXT_meshopt_compression" in (m.get("message") or "") for m in raw_report.messages)
    decoded = compress.decode_glb(out.read_bytes())
    assert "EXT_meshopt_compression" not in read_glb(decoded).json.get("extensionsUsed", [])
    assert validate_gltf(decoded).errors == 0


def test_draco_compressed_designer_glb_still_packages(tmp_path):
    src = tmp_path / "plain.glb"
    trimesh.creation.icosphere(subdivisions=2, radius=0.05).export(src)
    draco = tmp_path / "draco.glb"
    subprocess.run(["node", str(compress.GLTF_TRANSFORM_CLI), "draco", str(src), str(draco)], check=True,
                   capture_output=True, cwd=REPO, timeout=300)
    assert "KHR_draco_mesh_compression" in read_glb(draco.read_bytes()).json["extensionsUsed"]
    Image.new("RGB", (40, 56), "white").save(tmp_path / "page.png")
    page = PageSpec("p", 1, 200, 280, tmp_path / "page.png",
                    (OverlaySpec("d", "model3d", 20, 20, 40, 40, asset_path=draco),))
    bundle = build_page_bundle(page, BundleOptions(compress=False), tmp_path / "out")  # validated inside
    doc = read_glb(bundle.glb_raw.read_bytes()).json
    assert "KHR_draco_mesh_compression" not in doc.get("extensionsUsed", [])
    assert triangles(doc) == 320 + 2  # the sphere and the (hidden) page plane
    assert "d" in overlay_nodes(doc)


def test_meshopt_compressed_designer_glb_is_decoded_before_grafting(tmp_path):
    src = tmp_path / "plain.glb"
    trimesh.creation.icosphere(subdivisions=2, radius=0.05).export(src)
    packed = compress.compress_full(src, tmp_path / "meshopt.glb")
    assert "EXT_meshopt_compression" in read_glb(packed.read_bytes()).json["extensionsUsed"]
    Image.new("RGB", (40, 56), "white").save(tmp_path / "page.png")
    page = PageSpec("p", 1, 200, 280, tmp_path / "page.png",
                    (OverlaySpec("m", "model3d", 20, 20, 40, 40, asset_path=packed),))
    bundle = build_page_bundle(page, BundleOptions(compress=False), tmp_path / "out")  # validated inside
    doc = read_glb(bundle.glb_raw.read_bytes()).json
    assert "EXT_meshopt_compression" not in doc.get("extensionsUsed", [])
    assert triangles(doc) == 320 + 2
