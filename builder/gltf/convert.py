"""Conversions into glTF: trimesh scenes (OBJ/STL/PLY/DAE) → GLB, and glTF JSON with side files → one GLB.

Used by upload checks (builder.importers) and packaging (builder.bundle, builder.stock) alike.
"""
from __future__ import annotations

import base64
import json
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from builder.gltf.container import GlbDocument, read_glb, write_glb
from builder.gltf.document import strip_extras

GENERATOR = "Báo Nhúng builder (trimesh)"
GL_ARRAY_BUFFER, GL_ELEMENT_ARRAY_BUFFER = 34962, 34963
PACK_ALIGN = 8  # each buffer and image packed into the BIN chunk starts on 8 bytes


def _set_buffer_view_targets(doc: dict) -> None:
    """Give vertex/index bufferViews their ``target`` (the validator hints about it)."""
    views = doc.get("bufferViews", [])
    accessors = doc.get("accessors", [])
    for mesh in doc.get("meshes", []):
        for prim in mesh.get("primitives", []):
            pairs = [(a, GL_ARRAY_BUFFER) for a in prim.get("attributes", {}).values()]
            if "indices" in prim:
                pairs.append((prim["indices"], GL_ELEMENT_ARRAY_BUFFER))
            for acc_index, target in pairs:
                bv = accessors[acc_index].get("bufferView")
                if bv is not None and "target" not in views[bv]:
                    views[bv]["target"] = target


def clean_converted_glb(glb: bytes, generator: str = GENERATOR) -> bytes:
    """Tidy a GLB that trimesh wrote: drop every ``extras`` (trimesh's leftover metadata), set our generator,
    and give vertex/index bufferViews their ``target``."""
    doc = read_glb(glb)
    strip_extras(doc.json)
    doc.json["asset"] = {"version": "2.0", "generator": generator}
    _set_buffer_view_targets(doc.json)
    return write_glb(doc)


def scene_to_glb(scene: Any, generator: str = GENERATOR) -> bytes:
    """A trimesh Scene → clean GLB bytes (normals included, no trimesh metadata anywhere)."""
    scene.metadata.clear()
    for geom in scene.geometry.values():
        geom.metadata.clear()
    return clean_converted_glb(scene.export(file_type="glb", include_normals=True), generator)


def data_uri_bytes(uri: str) -> bytes:
    """The bytes of a ``data:`` URI (base64 or percent-encoded)."""
    header, _, payload = uri.partition(",")
    if ";base64" in header:
        return base64.b64decode(payload, validate=False)
    return urllib.parse.unquote_to_bytes(payload)


def external_uris(doc: dict) -> list[str]:
    """URIs of buffers and images that are files beside the glTF (not ``data:``)."""
    return [item["uri"] for key in ("buffers", "images") for item in doc.get(key, [])
            if isinstance(item, dict) and "uri" in item and not str(item["uri"]).startswith("data:")]


def directory_reader(root: Path) -> Callable[[str], bytes]:
    """A URI reader for :func:`pack_gltf_to_glb`: ``data:`` URIs, and files below ``root`` only (``KeyError`` for
    anything else, e.g. ``../../etc/passwd`` or a missing file)."""
    root = root.resolve()

    def read(uri: str) -> bytes:
        if uri.startswith("data:"):
            return data_uri_bytes(uri)
        path = (root / urllib.parse.unquote(uri)).resolve()
        if root not in path.parents or not path.is_file():
            raise KeyError(uri)
        return path.read_bytes()

    return read


def load_gltf_json(path: Path) -> bytes:
    """A glTF JSON file (embedded data, or side files beside it) → one self-contained GLB."""
    doc = json.loads(path.read_bytes().decode("utf-8-sig"))
    if not isinstance(doc, dict):
        raise ValueError("glTF JSON is not an object")
    return pack_gltf_to_glb(doc, directory_reader(path.parent))


def image_mime(raw: bytes, default: str = "image/png") -> str:
    if raw[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if raw[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if raw[:4] == b"RIFF" and raw[8:12] == b"WEBP":
        return "image/webp"
    return default


def pack_gltf_to_glb(doc: dict, read_uri: Callable[[str], bytes]) -> bytes:
    """A self-contained GLB from a glTF JSON whose buffers and images are URIs read by ``read_uri``.

    All buffers become the one BIN chunk (8-byte aligned, bufferView offsets shifted); images become
    bufferViews with their mime type. ``read_uri`` raises ``KeyError`` for a URI it refuses.
    """
    doc = json.loads(json.dumps(doc))  # private copy
    blob = bytearray()
    offsets = []
    for buf in doc.get("buffers", []):
        if "uri" not in buf:
            raise ValueError("a buffer has no uri")
        raw = read_uri(buf["uri"])
        if len(raw) < buf.get("byteLength", 0):
            raise ValueError(f"buffer {buf['uri'][:60]!r} is shorter than its byteLength")
        blob += b"\x00" * (-len(blob) % PACK_ALIGN)
        offsets.append(len(blob))
        blob += raw[: buf.get("byteLength", len(raw))]
    views = doc.setdefault("bufferViews", [])
    for bv in views:
        bv["byteOffset"] = bv.get("byteOffset", 0) + offsets[bv["buffer"]]
        bv["buffer"] = 0
    for img in doc.get("images", []):
        if "uri" not in img:
            continue
        raw = read_uri(img.pop("uri"))
        blob += b"\x00" * (-len(blob) % PACK_ALIGN)
        views.append({"buffer": 0, "byteOffset": len(blob), "byteLength": len(raw)})
        blob += raw
        img["bufferView"] = len(views) - 1
        img["mimeType"] = image_mime(raw, img.get("mimeType", "image/png"))
    if not views:
        doc.pop("bufferViews")
    blob += b"\x00" * (-len(blob) % 4)
    doc["buffers"] = [{"byteLength": len(blob)}] if blob else []
    if not doc["buffers"]:
        doc.pop("buffers")
    return write_glb(GlbDocument(doc, bytes(blob)))
