"""The glTF layer (builder/gltf): grafting whole models with textures, skins, animations, morph targets and
normalized (quantized) accessors into one document; every output passes the Khronos validator and every index the
reference table names still points at the same content."""
from __future__ import annotations

import io
import json
import math
import struct

import numpy as np
import pytest
from PIL import Image

from builder.bundle import BundleOptions, OverlaySpec, PageSpec, build_page_bundle, overlay_nodes
from builder.gltf import (REFERENCES, Document, GlbDocument, GlbFormatError, GraftError, model_bounds, read_glb,
                          scene_geometry, write_glb)
from builder.gltf.document import _slots
from builder.gltf_validator import validate_gltf
from builder.importers import gltf_model_meta

FLOAT, UBYTE, SHORT, USHORT = 5126, 5121, 5122, 5123
ARRAY, ELEMENT = 34962, 34963


class ModelWriter:
    """A small glTF writer for test models: one buffer, 4-byte aligned views."""

    def __init__(self):
        self.json: dict = {"asset": {"version": "2.0"}, "scene": 0, "scenes": [{"nodes": []}], "bufferViews": [],
                           "accessors": []}
        self.bin = bytearray()

    def view(self, data: bytes, target: int | None = None, stride: int | None = None) -> int:
        self.bin += b"\x00" * (-len(self.bin) % 4)
        view = {"buffer": 0, "byteOffset": len(self.bin), "byteLength": len(data)}
        if target:
            view["target"] = target
        if stride:
            view["byteStride"] = stride
        self.bin += data
        self.json["bufferViews"].append(view)
        return len(self.json["bufferViews"]) - 1

    def accessor(self, arr: np.ndarray, type_: str, comp: int, target: int | None = None, bounds: bool = False
                 ) -> int:
        acc = {"bufferView": self.view(np.ascontiguousarray(arr).tobytes(), target), "componentType": comp,
               "count": int(arr.shape[0]), "type": type_}
        if bounds:
            flat = arr.reshape(arr.shape[0], -1)
            acc["min"], acc["max"] = flat.min(0).tolist(), flat.max(0).tolist()
        self.json["accessors"].append(acc)
        return len(self.json["accessors"]) - 1

    def add(self, key: str, item: dict) -> int:
        self.json.setdefault(key, []).append(item)
        return len(self.json[key]) - 1

    def quad(self, material: int | None = None, uv: bool = False, size: float = 1.0) -> dict:
        pos = np.array([[0, 0, 0], [size, 0, 0], [size, size, 0], [0, size, 0]], np.float32)
        prim = {"attributes": {"POSITION": self.accessor(pos, "VEC3", FLOAT, ARRAY, bounds=True),
                               "NORMAL": self.accessor(np.tile(np.float32([0, 0, 1]), (4, 1)), "VEC3", FLOAT,
                                                       ARRAY)},
                "indices": self.accessor(np.array([0, 1, 2, 0, 2, 3], np.uint16), "SCALAR", USHORT, ELEMENT)}
        if uv:
            prim["attributes"]["TEXCOORD_0"] = self.accessor(np.float32([[0, 1], [1, 1], [1, 0], [0, 0]]), "VEC2",
                                                             FLOAT, ARRAY)
        if material is not None:
            prim["material"] = material
        return prim

    def use(self, *names: str, required: bool = False) -> None:
        for name in names:
            self.json.setdefault("extensionsUsed", []).append(name)
            if required:
                self.json.setdefault("extensionsRequired", []).append(name)

    def doc(self) -> GlbDocument:
        self.json["buffers"] = [{"byteLength": len(self.bin)}]
        return read_glb(write_glb(GlbDocument(self.json, bytes(self.bin))))


def png(colour) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(buf, "PNG")
    return buf.getvalue()


def textured_model() -> GlbDocument:
    """Two textures on two samplers, one image each; base colour with KHR_texture_transform, an emissive texture
    and a KHR_materials_clearcoat texture (a texture index inside an extension)."""
    w = ModelWriter()
    images = [w.add("images", {"bufferView": w.view(png(c)), "mimeType": "image/png"}) for c in ((200, 0, 0),
                                                                                               (0, 0, 200))]
    samplers = [w.add("samplers", {"magFilter": 9729}), w.add("samplers", {"wrapS": 33071, "wrapT": 33071})]
    textures = [w.add("textures", {"sampler": samplers[i], "source": images[i]}) for i in range(2)]
    material = w.add("materials", {
        "pbrMetallicRoughness": {"baseColorTexture": {"index": textures[0], "extensions": {
            "KHR_texture_transform": {"offset": [0.5, 0.0], "scale": [0.5, 1.0]}}}},
        "emissiveTexture": {"index": textures[1]}, "emissiveFactor": [1.0, 1.0, 1.0],
        "extensions": {"KHR_materials_clearcoat": {"clearcoatFactor": 1.0,
                                                   "clearcoatTexture": {"index": textures[1]}}}})
    w.use("KHR_texture_transform", "KHR_materials_clearcoat")
    mesh = w.add("meshes", {"primitives": [w.quad(material, uv=True)]})
    w.json["scenes"][0]["nodes"].append(w.add("nodes", {"name": "textured", "mesh": mesh}))
    return w.doc()


def skinned_animated_model() -> GlbDocument:
    """A two-joint skinned quad (joints under their own root) with a translation + rotation animation."""
    w = ModelWriter()
    prim = w.quad(w.add("materials", {"pbrMetallicRoughness": {"baseColorFactor": [0.2, 0.8, 0.2, 1.0]}}))
    prim["attributes"]["JOINTS_0"] = w.accessor(np.array([[0, 0, 0, 0], [0, 0, 0, 0], [1, 0, 0, 0], [1, 0, 0, 0]],
                                                         np.uint8), "VEC4", UBYTE, ARRAY)
    prim["attributes"]["WEIGHTS_0"] = w.accessor(np.float32([[1, 0, 0, 0]] * 4), "VEC4", FLOAT, ARRAY)
    ibm = np.stack([np.eye(4), np.eye(4)]).astype(np.float32)
    ibm[1, 1, 3] = -1.0
    ibm = np.ascontiguousarray(ibm.transpose(0, 2, 1))
    mesh = w.add("meshes", {"primitives": [prim]})
    skinned = w.add("nodes", {"name": "skinned", "mesh": mesh, "skin": 0})
    tip = w.add("nodes", {"name": "tip", "translation": [0, 1, 0]})
    root = w.add("nodes", {"name": "root", "children": [tip]})
    w.add("skins", {"joints": [root, tip], "skeleton": root,
                    "inverseBindMatrices": w.accessor(ibm, "MAT4", FLOAT)})
    times = w.accessor(np.float32([0, 0.5, 1.0]), "SCALAR", FLOAT, bounds=True)
    rot = w.accessor(np.float32([[0, 0, 0, 1], [0, 0, math.sin(0.4), math.cos(0.4)], [0, 0, 0, 1]]), "VEC4", FLOAT)
    move = w.accessor(np.float32([[0, 0, 0], [0, 0.2, 0], [0, 0, 0]]), "VEC3", FLOAT)
    w.add("animations", {"name": "wave", "samplers": [{"input": times, "output": rot},
                                                      {"input": times, "output": move}],
                         "channels": [{"sampler": 0, "target": {"node": tip, "path": "rotation"}},
                                      {"sampler": 1, "target": {"node": root, "path": "translation"}}]})
    w.json["scenes"][0]["nodes"] += [skinned, root]
    return w.doc()


def morph_model() -> GlbDocument:
    """A quad with one morph target (POSITION + NORMAL deltas), default weights and a weights animation."""
    w = ModelWriter()
    prim = w.quad(w.add("materials", {}))
    delta = np.float32([[0, 0, 0], [0, 0, 0], [0, 0.5, 0.2], [0, 0.5, 0.2]])
    prim["targets"] = [{"POSITION": w.accessor(delta, "VEC3", FLOAT, ARRAY, bounds=True),
                        "NORMAL": w.accessor(np.zeros((4, 3), np.float32), "VEC3", FLOAT, ARRAY)}]
    mesh = w.add("meshes", {"primitives": [prim], "weights": [0.0]})
    node = w.add("nodes", {"name": "morph", "mesh": mesh})
    times = w.accessor(np.float32([0, 1.0]), "SCALAR", FLOAT, bounds=True)
    weights = w.accessor(np.float32([0.0, 1.0]), "SCALAR", FLOAT)
    w.add("animations", {"samplers": [{"input": times, "output": weights}],
                         "channels": [{"sampler": 0, "target": {"node": node, "path": "weights"}}]})
    w.json["scenes"][0]["nodes"].append(node)
    return w.doc()


def quantized_model(extent_m: float = 0.4) -> GlbDocument:
    """KHR_mesh_quantization: POSITION as normalized SHORT (stride 8), the node scale turns [-1, 1] into metres."""
    w = ModelWriter()
    pos = np.array([[-32767, 0, -32767, 0], [32767, 0, -32767, 0], [32767, 16384, 32767, 0],
                    [-32767, 16384, 32767, 0]], np.int16)
    w.json["accessors"].append({"bufferView": w.view(pos.tobytes(), ARRAY, stride=8), "componentType": SHORT,
                                "normalized": True, "count": 4, "type": "VEC3",
                                "min": [-32767, 0, -32767], "max": [32767, 16384, 32767]})
    idx = w.accessor(np.array([0, 1, 2, 0, 2, 3], np.uint16), "SCALAR", USHORT, ELEMENT)
    mesh = w.add("meshes", {"primitives": [{"attributes": {"POSITION": 0}, "indices": idx,
                                            "material": w.add("materials", {})}]})
    half = extent_m / 2
    w.json["scenes"][0]["nodes"].append(w.add("nodes", {"name": "quantized", "mesh": mesh, "scale": [half] * 3}))
    w.use("KHR_mesh_quantization", required=True)
    return w.doc()


MODELS = {"textured": textured_model, "skinned": skinned_animated_model, "morph": morph_model,
          "quantized": quantized_model}


def base_document() -> Document:
    """A target that already holds one of everything an index can point into, so every offset is non-zero."""
    doc = Document()
    holder = doc.add_node({"name": "holder"})
    doc.graft(textured_model(), holder)
    doc.graft(skinned_animated_model(), holder)
    doc.graft(morph_model(), holder)
    doc.json.setdefault("cameras", []).append({"type": "perspective", "perspective": {"yfov": 0.8, "znear": 0.01}})
    return doc


def _accessor_bytes(json_doc: dict, binary: bytes, index: int) -> bytes:
    acc = json_doc["accessors"][index]
    view = json_doc["bufferViews"][acc["bufferView"]]
    start = view.get("byteOffset", 0) + acc.get("byteOffset", 0)
    return bytes(binary[start:start + view["byteLength"]])


@pytest.mark.parametrize("name", sorted(MODELS))
def test_graft_shifts_every_reference_and_the_result_validates(name):
    target = base_document()
    parent = target.add_node({"name": f"fit/{name}"})
    before = {key: len(target.json.get(key, [])) for key in
              ("accessors", "bufferViews", "images", "samplers", "textures", "materials", "meshes", "nodes",
               "skins", "animations", "cameras")}
    assert all(before[k] > 0 for k in before if k not in ("cameras",))
    source = MODELS[name]()
    roots = target.graft(source, parent)

    glb = target.to_glb()
    report = validate_gltf(glb)
    assert report.errors == 0, report.first_messages(5)
    out = read_glb(glb)
    # each reference named in the table holds the source's value plus the length its array had before the graft
    checked = 0
    for array, path, kind in REFERENCES:
        if kind not in before:
            continue
        for i, item in enumerate(source.json.get(array, [])):
            grafted = out.json[array][before[array] + i]
            src_values = [c[k] for c, k in _slots(item, path.split("."))]
            out_values = [c[k] for c, k in _slots(grafted, path.split("."))]
            assert out_values == [v + before[kind] for v in src_values], (array, path)
            checked += len(src_values)
    assert checked >= 6
    # the bytes behind every grafted accessor are the source's
    for i in range(len(source.json["accessors"])):
        assert _accessor_bytes(out.json, out.bin, before["accessors"] + i) == \
            _accessor_bytes(source.json, source.bin, i)
    assert out.json["nodes"][parent]["children"] == roots
    assert roots == [r + before["nodes"] for r in source.json["scenes"][0]["nodes"]]
    for ext in source.json.get("extensionsUsed", []):
        assert ext in out.json["extensionsUsed"]
    for ext in source.json.get("extensionsRequired", []):
        assert ext in out.json["extensionsRequired"]


def test_graft_keeps_animation_targets_on_the_grafted_joints():
    target = base_document()
    n_before = len(target.json["nodes"])
    source = skinned_animated_model()
    target.graft(source, target.add_node({"name": "fit"}))
    out = read_glb(target.to_glb()).json
    anim = out["animations"][-1]
    names = [out["nodes"][c["target"]["node"]]["name"] for c in anim["channels"]]
    assert names == ["tip", "root"]
    skin = out["skins"][-1]
    assert [out["nodes"][j]["name"] for j in skin["joints"]] == ["root", "tip"]
    assert out["nodes"][skin["skeleton"]]["name"] == "root" and skin["skeleton"] > n_before


def test_graft_of_material_textures_follows_texture_to_image_and_sampler():
    target = base_document()
    target.graft(textured_model(), target.add_node({"name": "fit"}))
    out = read_glb(target.to_glb())
    material = out.json["materials"][-1]
    emissive = out.json["textures"][material["emissiveTexture"]["index"]]
    clearcoat = material["extensions"]["KHR_materials_clearcoat"]["clearcoatTexture"]["index"]
    assert clearcoat == material["emissiveTexture"]["index"]
    assert out.json["samplers"][emissive["sampler"]] == {"wrapS": 33071, "wrapT": 33071}
    view = out.json["bufferViews"][out.json["images"][emissive["source"]]["bufferView"]]
    pixels = Image.open(io.BytesIO(out.bin[view["byteOffset"]:view["byteOffset"] + view["byteLength"]]))
    assert pixels.getpixel((0, 0)) == (0, 0, 200)
    base = material["pbrMetallicRoughness"]["baseColorTexture"]
    assert base["extensions"]["KHR_texture_transform"] == {"offset": [0.5, 0.0], "scale": [0.5, 1.0]}


def test_normalized_positions_are_dequantized_for_bounds_and_upload_facts():
    model = quantized_model(extent_m=0.4)
    assert validate_gltf(write_glb(GlbDocument(json.loads(json.dumps(model.json)), model.bin))).errors == 0
    lo, hi = model_bounds(model.json, [0])
    assert lo.tolist() == pytest.approx([-0.2, 0.0, -0.2], abs=1e-6)
    assert hi.tolist() == pytest.approx([0.2, 0.1, 0.2], abs=1e-4)
    meta = gltf_model_meta(model.json)
    assert meta["size_m"] == pytest.approx([0.4, 0.1, 0.4], abs=1e-4) and meta["triangles"] == 2
    assert scene_geometry(model.json, [0])[0] == 2


def test_a_quantized_model_is_fitted_to_its_box_in_a_bundle(tmp_path):
    """Bounds read raw integers as metres would make this model 65 km wide and shrink it to a speck."""
    model = quantized_model(extent_m=0.4)
    path = tmp_path / "q.glb"
    path.write_bytes(write_glb(GlbDocument(json.loads(json.dumps(model.json)), model.bin)))
    page_image = tmp_path / "page.png"
    Image.new("RGB", (400, 560), (240, 240, 230)).save(page_image)
    spec = OverlaySpec("q", "model3d", 50, 50, 80, 80, asset_path=path)
    bundle = build_page_bundle(PageSpec("p", 1, 200.0, 280.0, page_image, (spec,)), BundleOptions(compress=False),
                               tmp_path / "out")  # validated inside
    doc = read_glb(bundle.glb_raw.read_bytes()).json
    fit = overlay_nodes(doc)["q"]["children"][0]
    lo, hi = model_bounds(doc, [fit])
    assert hi[0] - lo[0] == pytest.approx(0.080, abs=1e-6)  # the box is 80 mm wide
    assert lo[1] == pytest.approx(0.0, abs=1e-6)


def test_graft_refuses_external_data_and_undecoded_meshopt():
    target = Document()
    parent = target.add_node({"name": "p"})
    model = textured_model()
    external = GlbDocument(json.loads(json.dumps(model.json)), model.bin)
    external.json["images"][0] = {"uri": "texture.png"}
    with pytest.raises(GraftError, match="external"):
        target.graft(external, parent)
    packed = GlbDocument(json.loads(json.dumps(model.json)), model.bin)
    packed.json["extensionsUsed"] = ["EXT_meshopt_compression"]
    with pytest.raises(GraftError, match="meshopt"):
        target.graft(packed, parent)


def test_one_container_reader_one_error_type():
    glb = write_glb(textured_model())
    doc, binary = read_glb(glb)  # unpacks as (json, bin) for the upload checks
    assert doc["asset"]["version"] == "2.0" and len(binary) == doc["buffers"][0]["byteLength"]
    for bad, words in ((glb[:10], "too short"), (b"glTX" + glb[4:], "not a GLB"), (glb + b"\x00" * 4, "header says"),
                       (glb[:8] + struct.pack("<I", len(glb) - 4) + glb[12:-4], "past the end")):
        with pytest.raises(GlbFormatError, match=words):
            read_glb(bad)
    assert issubclass(GlbFormatError, ValueError)


def test_gltf_json_models_embedded_or_with_side_files_are_packed_and_grafted(tmp_path):
    """A glTF upload is stored as JSON (data URIs) under a name without extension; a hand-placed one may keep its
    buffer beside it. Both become one GLB through the glTF layer, are grafted and validate; a side file outside the
    model's folder is refused."""
    import base64

    model = skinned_animated_model()
    embedded = json.loads(json.dumps(model.json))
    embedded["buffers"][0]["uri"] = "data:application/octet-stream;base64," + base64.b64encode(model.bin).decode()
    stored = tmp_path / "store" / "3f9a"
    stored.parent.mkdir()
    stored.write_text(json.dumps(embedded))
    side = json.loads(json.dumps(model.json))
    side["buffers"][0]["uri"] = "skin%20data.bin"
    (tmp_path / "skin data.bin").write_bytes(model.bin)
    (tmp_path / "skin.gltf").write_text(json.dumps(side))
    page_image = tmp_path / "page.png"
    Image.new("RGB", (400, 560), (240, 240, 230)).save(page_image)
    specs = (OverlaySpec("e", "model3d", 40, 40, 50, 50, asset_path=stored, asset_mime="model/gltf+json"),
             OverlaySpec("s", "model3d", 120, 40, 50, 50, asset_path=tmp_path / "skin.gltf"))
    bundle = build_page_bundle(PageSpec("p", 1, 200.0, 280.0, page_image, specs), BundleOptions(compress=False),
                               tmp_path / "out")  # every model and the output validated inside
    doc = read_glb(bundle.glb_raw.read_bytes()).json
    assert len(doc["skins"]) == 2 and len(doc["animations"]) == 2
    assert {overlay_nodes(doc)[k]["extras"]["overlay"]["animations"] for k in ("e", "s")} == {1}
    escaping = json.loads(json.dumps(side))
    escaping["buffers"][0]["uri"] = "../skin%20data.bin"
    (tmp_path / "inner").mkdir()
    (tmp_path / "inner" / "bad.gltf").write_text(json.dumps(escaping))
    from builder.bundle import BundleBuildError

    with pytest.raises(BundleBuildError) as info:
        build_page_bundle(PageSpec("p", 1, 200.0, 280.0, page_image, (
            OverlaySpec("b", "model3d", 40, 40, 50, 50, asset_path=tmp_path / "inner" / "bad.gltf"),)),
            BundleOptions(compress=False), tmp_path / "out2")
    assert info.value.overlay_id == "b" and "KeyError" in info.value.messages[0]
