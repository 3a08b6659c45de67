"""3D models: GLB, glTF, OBJ/STL/PLY/DAE (and zips of them) checked, converted to GLB, described and validated.

The GLB container, bounds and conversions are the glTF layer's (:mod:`builder.gltf`); this module decides what an
upload may be: external files, texture sizes, triangle limits, the Khronos validator's verdict, the facts in meta.
"""
from __future__ import annotations

import binascii
import io
import json
import math
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from builder.errors import InvalidAssetError
from builder.gltf import (GENERATOR, data_uri_bytes, default_scene_roots, directory_reader, external_uris,
                          pack_gltf_to_glb, read_glb, scene_geometry, scene_to_glb)
from builder.gltf_validator import ValidationReport, validate_gltf
from builder.importers.common import _PIL_ERRORS, InspectedAsset, _check_pixels, _corrupt
from builder.importers.limits import UploadLimits
from builder.importers.sniff import FORMATS, _accepted_labels, sniff_format
from builder.safezip import extract_zip

__all__ = ["GENERATOR", "gltf_model_meta", "inspect_model"]

# Mesh extensions whose meshes the validator cannot see into.
DRACO_EXT = "KHR_draco_mesh_compression"
MESHOPT_EXTS = ("EXT_meshopt_compression", "KHR_meshopt_compression")
# A converted model more than this many metres across was probably modelled in millimetres.
HUGE_MODEL_M = 10.0


def gltf_model_meta(doc: Mapping[str, Any]) -> dict[str, Any]:
    """Facts about a glTF document, read from its JSON only (works for Draco/meshopt files too).

    triangles : drawn triangles of the default scene (each mesh instance counted), bounds_m : [[min xyz],
    [max xyz]] in scene metres (from accessor min/max through node transforms, normalized accessors dequantized;
    ``None`` without geometry), animations, meshes, materials, textures, has_draco, has_meshopt, has_skins,
    extensions.
    """
    triangles, box = scene_geometry(doc, default_scene_roots(doc))
    used = list(doc.get("extensionsUsed", []))
    bounds = None if box is None else [[round(float(v), 6) for v in box[0]], [round(float(v), 6) for v in box[1]]]
    return {
        "triangles": int(triangles),
        "bounds_m": bounds,
        "size_m": None if bounds is None else [round(b - a, 6) for a, b in zip(*bounds)],
        "animations": len(doc.get("animations", [])),
        "meshes": len(doc.get("meshes", [])),
        "materials": len(doc.get("materials", [])),
        "textures": len(doc.get("textures", [])),
        "has_skins": bool(doc.get("skins")),
        "has_draco": DRACO_EXT in used,
        "has_meshopt": any(e in used for e in MESHOPT_EXTS),
        "extensions": used,
    }


def _check_triangles(count: int, filename: str, limits: UploadLimits) -> None:
    if count > limits.max_model_triangles:
        raise InvalidAssetError("model_too_many_triangles", {"filename": filename, "triangles": f"{count:,}",
                                                             "limit": f"{limits.max_model_triangles:,}"})


def _validated_meta(data: bytes, doc: Mapping[str, Any], filename: str, source: str,
                    limits: UploadLimits) -> dict[str, Any]:
    try:  # counted from the accessors before the validator reads every byte
        triangles = gltf_model_meta(doc)["triangles"]
    except (KeyError, IndexError, TypeError, ValueError):
        triangles = 0  # a broken document: the validator says what is wrong with it
    _check_triangles(triangles, filename, limits)
    report: ValidationReport = validate_gltf(data)
    if not report.ok:
        raise InvalidAssetError("gltf_invalid", {
            "filename": filename, "errors": report.errors,
            "details": "; ".join(report.first_messages(3)),
            "messages": report.first_messages(10),
        })
    try:
        meta = gltf_model_meta(doc)
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise _corrupt(filename, exc) from exc
    _check_triangles(meta["triangles"], filename, limits)
    if not meta["meshes"]:
        raise InvalidAssetError("model_empty", {"filename": filename})
    meta["source_format"] = source
    meta["validator"] = {"errors": report.errors, "warnings": report.warnings, "infos": report.infos}
    meta["warnings"] = []
    if report.warnings:
        meta["warnings"].append({"code": "gltf_validator_warnings", "values": {
            "count": report.warnings, "first": report.first_messages(3, "warning")[:3]}})
    if meta["size_m"] and max(meta["size_m"]) > HUGE_MODEL_M:
        meta["warnings"].append({"code": "model_very_large", "values": {"size_m": meta["size_m"]}})
    # glTF's default material is white and fully metallic: lit only by what it reflects, plain grey metal at best
    if any("material" not in prim for mesh in doc.get("meshes", []) for prim in mesh.get("primitives", [])):
        meta["warnings"].append({"code": "model_no_material", "values": {"filename": filename}})
    return meta


class _SandboxResolver:
    """trimesh resolver that only reads files below ``root`` (an MTL naming ``../../etc/passwd`` gets nothing)."""

    def __init__(self, root: Path):
        self.parent = str(root)
        self._read = directory_reader(root)

    def get(self, name: str) -> bytes:
        return self._read(name.replace("\\", "/"))

    def get_base(self) -> bytes:
        raise KeyError("base")

    def write(self, name, data):  # trimesh's Resolver interface; never used when loading
        raise PermissionError(name)

    def namespaced(self, namespace):
        return _SandboxResolver(Path(self.parent) / namespace)

    def keys(self):
        return []


def _check_obj(data: bytes, filename: str, limits: UploadLimits) -> None:
    """Strict OBJ syntax check (trimesh silently drops what it cannot read): numbers parse, faces refer to
    existing vertices. Raises ``corrupt_file`` with the line number, ``model_too_many_triangles`` before parsing
    on."""
    counts = {"v": 0, "vt": 0, "vn": 0}
    faces = triangles = 0
    text = data.decode("utf-8", "replace")
    for lineno, line in enumerate(text.splitlines(), 1):
        tok = line.split("#", 1)[0].split()
        if not tok:
            continue
        key, args = tok[0], tok[1:]
        try:
            if key in counts:
                need = {"v": 3, "vt": 1, "vn": 3}[key]
                if len(args) < need or not all(math.isfinite(float(a)) for a in args):
                    raise ValueError(f"{key} needs {need} numbers")
                counts[key] += 1
            elif key == "f":
                if len(args) < 3:
                    raise ValueError("a face needs 3 vertices")
                for ref in args:
                    for part, which in zip(ref.split("/"), ("v", "vt", "vn")):
                        if part == "":
                            continue
                        i = int(part)
                        n = counts[which]
                        if i == 0 or i > n or i < -n:
                            raise ValueError(f"face refers to {which} {i}, only {n} defined")
                faces += 1
                triangles += len(args) - 2
                if triangles > limits.max_model_triangles:
                    _check_triangles(triangles, filename, limits)
        except ValueError as exc:
            raise _corrupt(filename, f"OBJ line {lineno}: {exc}") from exc
    if counts["v"] == 0 or faces == 0:
        raise InvalidAssetError("model_empty", {"filename": filename})


_PLY_TYPE_BYTES = {"char": 1, "uchar": 1, "int8": 1, "uint8": 1, "short": 2, "ushort": 2, "int16": 2,
                   "uint16": 2, "int": 4, "uint": 4, "int32": 4, "uint32": 4, "float": 4, "float32": 4,
                   "double": 8, "float64": 8}


def _check_ply_header(data: bytes, filename: str, limits: UploadLimits) -> None:
    """Refuse a PLY whose header declares more elements than its bytes could hold (a memory bomb for numpy), or
    more faces than the triangle limit (each face is at least one triangle)."""
    end = data.find(b"end_header")
    if end < 0:
        raise _corrupt(filename, "PLY without end_header")
    declared = 0
    for line in data[:end].decode("latin-1").splitlines():
        tok = line.split()
        if len(tok) == 3 and tok[0] == "element":
            try:
                declared += int(tok[2])
            except ValueError:
                raise _corrupt(filename, f"PLY element count {tok[2]!r}") from None
            if tok[1] == "face":
                _check_triangles(int(tok[2]), filename, limits)
    if declared > len(data) - end:
        raise _corrupt(filename, f"PLY declares {declared} elements in {len(data) - end} bytes")


def _check_dae(data: bytes, filename: str) -> None:
    """COLLADA is XML: refuse DTDs and entities (external-entity reads, entity-expansion bombs) before parsing."""
    head = data[:65536].upper()
    if b"<!DOCTYPE" in head or b"<!ENTITY" in data.upper():
        raise _corrupt(filename, "COLLADA with a DTD or entities is not accepted")


# A model converted from a format without colours (STL, a plain PLY or OBJ) gets a light grey matte material: the
# designer could not have given it one, so it is not warned about (issue 24: every STL warned "no material").
CONVERTED_BASE_COLOR = (200, 200, 200, 255)


def _trimesh_to_glb(load: Callable[[], Any], filename: str) -> bytes:
    """Load with trimesh and export a clean GLB; refuse empty or unparsable models."""
    import trimesh

    try:
        loaded = load()
    except InvalidAssetError:
        raise
    except Exception as exc:  # trimesh raises anything from ValueError to IndexError on bad input
        raise _corrupt(filename, f"{type(exc).__name__}: {exc}") from exc
    scene = loaded if isinstance(loaded, trimesh.Scene) else trimesh.Scene(loaded)
    meshes = [g for g in scene.geometry.values() if isinstance(g, trimesh.Trimesh) and len(g.faces)]
    if not meshes:
        raise InvalidAssetError("model_empty", {"filename": filename})
    for g in meshes:
        if not np.isfinite(g.vertices).all():
            raise _corrupt(filename, "vertex coordinates are not finite numbers")
    for name in [n for n, g in scene.geometry.items() if not (isinstance(g, trimesh.Trimesh) and len(g.faces))]:
        scene.delete_geometry(name)  # points and lines: nothing to draw in AR
    for g in meshes:
        if g.visual.kind is None:  # STL, plain PLY/OBJ: no colour at all, which glTF would draw as white metal
            g.visual = trimesh.visual.TextureVisuals(material=trimesh.visual.material.PBRMaterial(
                name="baonhung-matte", baseColorFactor=CONVERTED_BASE_COLOR, metallicFactor=0.0,
                roughnessFactor=0.8))
    try:
        return scene_to_glb(scene, GENERATOR)
    except Exception as exc:
        raise _corrupt(filename, f"export: {type(exc).__name__}: {exc}") from exc


_TRIMESH_TYPES = {"stl": "stl", "ply": "ply", "obj": "obj", "dae": "dae"}
_ZIP_MODEL_SUFFIXES = {".obj": "obj", ".stl": "stl", ".ply": "ply", ".dae": "dae", ".glb": "glb", ".gltf": "gltf"}


def _stl_triangles(data: bytes) -> int:
    """Triangles of an STL: a binary one says its count in its header, an ASCII one has a "facet" per triangle."""
    if data[:5].lower() == b"solid" and b"facet" in data[:4096]:
        return data.count(b"facet normal")
    return int.from_bytes(data[80:84], "little") if len(data) >= 84 else 0


def _convert_mesh_file(fmt: str, data: bytes, filename: str, limits: UploadLimits, resolver: Any = None) -> bytes:
    import trimesh

    if fmt == "obj":
        _check_obj(data, filename, limits)
    if fmt == "ply":
        _check_ply_header(data, filename, limits)
    if fmt == "stl":
        _check_triangles(_stl_triangles(data), filename, limits)
    if fmt == "dae":
        _check_dae(data, filename)
    return _trimesh_to_glb(
        lambda: trimesh.load(io.BytesIO(data), file_type=_TRIMESH_TYPES[fmt], resolver=resolver,
                             force="scene", process=False),
        filename,
    )


def _check_texture_pixels(images: Iterable[tuple[str, bytes]], limits: UploadLimits, filename: str) -> None:
    """Refuse textures whose header declares more pixels than allowed (only headers are read).

    A 20k × 20k PNG is a few kilobytes inside a model and gigabytes once the bundle step or the phone decodes it.
    Unreadable images are left to the validator, which reports them.
    """
    for name, raw in images:
        if sniff_format(raw) not in ("png", "jpeg", "webp", "gif"):
            continue
        try:
            with Image.open(io.BytesIO(raw)) as img:
                width, height = img.size
        except Image.DecompressionBombError as exc:
            raise InvalidAssetError("image_too_large", {"filename": f"{filename}:{name}", "width": "?",
                                                        "height": "?", "limit_mp": limits.max_image_pixels / 1e6}
                                    ) from exc
        except _PIL_ERRORS:
            continue
        _check_pixels(width, height, limits, f"{filename}:{name}")


def _gltf_images(doc: Mapping[str, Any], binary: bytes) -> list[tuple[str, bytes]]:
    """(name, bytes) of the images held inside a glTF: GLB bufferViews and data URIs."""
    out = []
    views = doc.get("bufferViews", [])
    for i, img in enumerate(doc.get("images", [])):
        if not isinstance(img, dict):
            continue
        name = str(img.get("name") or f"image {i}")
        try:
            if "bufferView" in img:
                bv = views[img["bufferView"]]
                start = int(bv.get("byteOffset", 0))
                out.append((name, binary[start:start + int(bv["byteLength"])]))
            elif str(img.get("uri", "")).startswith("data:"):
                out.append((name, data_uri_bytes(img["uri"])))
        except (IndexError, KeyError, TypeError, ValueError, binascii.Error):
            continue  # a broken reference: the validator reports it
    return out


def inspect_model(fmt: str, data: bytes, filename: str, limits: UploadLimits) -> InspectedAsset:
    if fmt == "glb":
        try:
            doc, binary = read_glb(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise _corrupt(filename, exc) from exc
        external = external_uris(doc)
        if external:  # e.g. textures left beside the GLB on the designer's disk
            raise InvalidAssetError("gltf_external_resources", {"filename": filename, "uri": external[0][:80]})
        _check_texture_pixels(_gltf_images(doc, binary), limits, filename)
        meta = _validated_meta(data, doc, filename, "glb", limits)
        return InspectedAsset("model/gltf-binary", "glb", data, meta, {})
    if fmt == "gltf":
        try:
            doc = json.loads(data.decode("utf-8-sig"))
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise _corrupt(filename, exc if not isinstance(exc, RecursionError) else "JSON nested too deeply") from exc
        if not isinstance(doc, dict):
            raise _corrupt(filename, "glTF JSON is not an object")
        external = external_uris(doc)
        if external:
            raise InvalidAssetError("gltf_external_resources", {"filename": filename, "uri": external[0][:80]})
        _check_texture_pixels(_gltf_images(doc, b""), limits, filename)
        meta = _validated_meta(data, doc, filename, "gltf", limits)
        return InspectedAsset("model/gltf+json", "gltf", data, meta, {})
    if fmt == "zip":
        return _inspect_model_zip(data, filename, limits)
    glb = _convert_mesh_file(fmt, data, filename, limits)
    meta = _validated_meta(glb, read_glb(glb).json, filename, fmt, limits)
    return InspectedAsset("model/gltf-binary", "glb", glb, meta, {})


def _inspect_model_zip(data: bytes, filename: str, limits: UploadLimits) -> InspectedAsset:
    with tempfile.TemporaryDirectory(prefix="baonhung-zip-") as tmp:
        root = Path(tmp) / "x"
        files = extract_zip(data, root, limits)
        _check_texture_pixels(((str(p.relative_to(root)), p.read_bytes()) for p in files
                               if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp", ".gif")), limits, filename)
        models = [p for p in files
                  if p.suffix.lower() in _ZIP_MODEL_SUFFIXES
                  and not any(part.startswith((".", "__MACOSX")) for part in p.relative_to(root).parts)]
        if not models:
            raise InvalidAssetError("zip_no_model", {"filename": filename})
        if len(models) > 1:
            raise InvalidAssetError("zip_multiple_models", {
                "filename": filename, "names": ", ".join(str(p.relative_to(root)) for p in models[:5])})
        path = models[0]
        inner_name = f"{filename}:{path.relative_to(root)}"
        raw = path.read_bytes()
        fmt = sniff_format(raw)
        expected = _ZIP_MODEL_SUFFIXES[path.suffix.lower()]
        if fmt != expected:
            raise InvalidAssetError("unsupported_type", {
                "filename": inner_name, "detected": FORMATS[fmt].label, "kind": "model3d",
                "accepted": _accepted_labels("model3d")})
        if fmt == "glb":
            asset = inspect_model("glb", raw, inner_name, limits)
            asset.meta["source_format"] = "zip/glb"
            return asset
        if fmt == "gltf":
            try:
                doc = json.loads(raw.decode("utf-8-sig"))
                glb = pack_gltf_to_glb(doc, directory_reader(path.parent))
            except KeyError as exc:
                raise InvalidAssetError("gltf_external_resources",
                                        {"filename": inner_name, "uri": str(exc.args[0])[:80]}) from exc
            except (ValueError, UnicodeDecodeError, TypeError, IndexError, binascii.Error, RecursionError) as exc:
                raise _corrupt(inner_name, exc) from exc
        else:
            glb = _convert_mesh_file(fmt, raw, inner_name, limits, resolver=_SandboxResolver(path.parent))
        meta = _validated_meta(glb, read_glb(glb).json, inner_name, f"zip/{fmt}", limits)
        return InspectedAsset("model/gltf-binary", "glb", glb, meta, {})

