"""A glTF 2.0 document under construction (JSON tree + one binary buffer), and grafting one document into another.

Grafting appends every part of a source document to this one, so each index the source's JSON holds must be
shifted by the length of the array it points into. Which field points into which array is one table,
:data:`REFERENCES` (core glTF plus the extensions the product meets: KHR_materials_* textures,
KHR_texture_transform (no indices of its own), texture source extensions (EXT_texture_webp, KHR_texture_basisu),
KHR_draco_mesh_compression, KHR_materials_variants, KHR_lights_punctual, EXT_mesh_gpu_instancing,
KHR_animation_pointer). A new extension that holds an index is one more row.

Why a table and not gltf-transform's ``mergeDocuments``: grafting runs in process for every model of every page
(no node process and file round trip per model), it keeps the bundle's bytes exactly as before (same node order,
names, extras, 8-byte aligned data: the bench's sizes did not move), and the validator still checks every output;
gltf-transform stays what it is here, the compression step (builder/compress.py).
"""
from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from typing import Any

import numpy as np

from builder.gltf.container import GlbDocument, write_glb

BIN_ALIGN = 8  # grafted binary data starts on 8 bytes (≥ every component size; 4 is required)
GL_FLOAT, GL_UNSIGNED_SHORT, GL_UNSIGNED_INT = 5126, 5123, 5125

# Arrays an index can point into: top-level glTF arrays, and arrays held by root extensions.
ROOT_ARRAYS = ("accessors", "animations", "bufferViews", "cameras", "images", "materials", "meshes", "nodes",
               "samplers", "skins", "textures")
EXTENSION_ARRAYS = {"lights": ("KHR_lights_punctual", "lights"), "variants": ("KHR_materials_variants", "variants")}

# (top-level array, path inside each item, array the value indexes). Path steps: a key; "*" = every item of a list
# or every value of a dict; "**Texture" = every key ending in "Texture" at any depth (textureInfo objects).
REFERENCES: tuple[tuple[str, str, str], ...] = (
    ("accessors", "bufferView", "bufferViews"),
    ("accessors", "sparse.indices.bufferView", "bufferViews"),
    ("accessors", "sparse.values.bufferView", "bufferViews"),
    ("images", "bufferView", "bufferViews"),
    ("textures", "sampler", "samplers"),
    ("textures", "source", "images"),
    ("textures", "extensions.*.source", "images"),
    ("materials", "**Texture.index", "textures"),
    ("meshes", "primitives.*.attributes.*", "accessors"),
    ("meshes", "primitives.*.indices", "accessors"),
    ("meshes", "primitives.*.material", "materials"),
    ("meshes", "primitives.*.targets.*.*", "accessors"),
    ("meshes", "primitives.*.extensions.KHR_draco_mesh_compression.bufferView", "bufferViews"),
    ("meshes", "primitives.*.extensions.KHR_materials_variants.mappings.*.material", "materials"),
    ("meshes", "primitives.*.extensions.KHR_materials_variants.mappings.*.variants.*", "variants"),
    ("nodes", "children.*", "nodes"),
    ("nodes", "mesh", "meshes"),
    ("nodes", "skin", "skins"),
    ("nodes", "camera", "cameras"),
    ("nodes", "extensions.KHR_lights_punctual.light", "lights"),
    ("nodes", "extensions.EXT_mesh_gpu_instancing.attributes.*", "accessors"),
    ("skins", "inverseBindMatrices", "accessors"),
    ("skins", "skeleton", "nodes"),
    ("skins", "joints.*", "nodes"),
    ("animations", "samplers.*.input", "accessors"),
    ("animations", "samplers.*.output", "accessors"),
    ("animations", "channels.*.target.node", "nodes"),
)
# KHR_animation_pointer targets are JSON pointers: the index inside the string is shifted.
_POINTER_RE = re.compile(r"^/(nodes|materials|meshes|cameras|textures)/(\d+)(/.*)?$")


class GraftError(ValueError):
    """A source document that cannot be grafted as it is (external data, meshopt not decoded)."""


def _slots(obj: Any, steps: list[str]) -> Iterator[tuple[Any, Any]]:
    """(container, key) of every value ``steps`` reaches in ``obj``; missing keys reach nothing."""
    if not steps:
        return
    step, rest = steps[0], steps[1:]
    if step == "*":
        keys = range(len(obj)) if isinstance(obj, list) else list(obj) if isinstance(obj, dict) else ()
    elif step.startswith("**"):
        yield from _deep_slots(obj, step[2:], rest)
        return
    else:
        keys = (step,) if isinstance(obj, dict) and step in obj else ()
    for key in keys:
        if rest:
            yield from _slots(obj[key], rest)
        else:
            yield obj, key


def _deep_slots(obj: Any, suffix: str, rest: list[str]) -> Iterator[tuple[Any, Any]]:
    """Slots under every dict key ending in ``suffix``, at any depth (core and KHR_materials_* textures)."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key.endswith(suffix) and isinstance(value, dict):
                yield from _slots(value, rest)
            yield from _deep_slots(value, suffix, rest)
    elif isinstance(obj, list):
        for value in obj:
            yield from _deep_slots(value, suffix, rest)


def shift_references(src: dict, offsets: dict[str, int]) -> None:
    """Add ``offsets[array]`` to every index in ``src`` that points into ``array`` (in place)."""
    for array, path, target in REFERENCES:
        delta = offsets.get(target, 0)
        if not delta:
            continue
        steps = path.split(".")
        for item in src.get(array, []):
            for container, key in _slots(item, steps):
                container[key] += delta
    for anim in src.get("animations", []):
        for channel in anim.get("channels", []):
            pointer = channel.get("target", {}).get("extensions", {}).get("KHR_animation_pointer")
            if pointer and "pointer" in pointer:
                pointer["pointer"] = _shift_pointer(pointer["pointer"], offsets)


def _shift_pointer(pointer: str, offsets: dict[str, int]) -> str:
    m = _POINTER_RE.match(pointer)
    if not m:
        return pointer
    return f"/{m.group(1)}/{int(m.group(2)) + offsets[m.group(1)]}{m.group(3) or ''}"


def source_roots(doc: dict) -> list[int]:
    """Roots of the default scene; without a scene, every node that is nobody's child."""
    scenes = doc.get("scenes") or []
    if scenes:
        return list(scenes[doc.get("scene", 0)].get("nodes", []))
    children = {c for n in doc.get("nodes", []) for c in n.get("children", [])}
    return [i for i in range(len(doc.get("nodes", []))) if i not in children]


def strip_extras(obj: Any) -> None:
    """Remove every ``extras`` (in place): converters' leftover metadata has no place in a published model."""
    if isinstance(obj, dict):
        obj.pop("extras", None)
        for value in obj.values():
            strip_extras(value)
    elif isinstance(obj, list):
        for value in obj:
            strip_extras(value)


class Document:
    """A glTF 2.0 document under construction: the JSON tree and the bytes of its single buffer."""

    def __init__(self, generator: str = "baonhung builder.gltf"):
        self.json: dict = {
            "asset": {"version": "2.0", "generator": generator},
            "scene": 0,
            "scenes": [{"nodes": []}],
        }
        self.bin = bytearray()

    # -- low level
    def _append(self, key: str, item: dict) -> int:
        items = self.json.setdefault(key, [])
        items.append(item)
        return len(items) - 1

    def _use_extension(self, name: str, required: bool = False) -> None:
        used = self.json.setdefault("extensionsUsed", [])
        if name not in used:
            used.append(name)
        if required:
            req = self.json.setdefault("extensionsRequired", [])
            if name not in req:
                req.append(name)

    def _align_bin(self, alignment: int = BIN_ALIGN) -> int:
        self.bin += b"\x00" * ((-len(self.bin)) % alignment)
        return len(self.bin)

    def add_buffer_view(self, data: bytes, target: int | None = None) -> int:
        offset = self._align_bin()
        self.bin += data
        view = {"buffer": 0, "byteOffset": offset, "byteLength": len(data)}
        if target is not None:
            view["target"] = target
        return self._append("bufferViews", view)

    def add_accessor(self, array: np.ndarray, type_: str, target: int | None = None,
                     with_bounds: bool = False) -> int:
        array = np.ascontiguousarray(array)
        component = {np.dtype(np.float32): GL_FLOAT, np.dtype(np.uint16): GL_UNSIGNED_SHORT,
                     np.dtype(np.uint32): GL_UNSIGNED_INT}[array.dtype]
        count = array.shape[0]
        accessor = {"bufferView": self.add_buffer_view(array.tobytes(), target), "componentType": component,
                    "count": int(count), "type": type_}
        if with_bounds:
            flat = array.reshape(count, -1)
            accessor["min"] = [float(v) for v in flat.min(axis=0)]
            accessor["max"] = [float(v) for v in flat.max(axis=0)]
        return self._append("accessors", accessor)

    def add_node(self, node: dict, parent: int | None = None) -> int:
        index = self._append("nodes", node)
        if parent is None:
            self.json["scenes"][0]["nodes"].append(index)
        else:
            self.json["nodes"][parent].setdefault("children", []).append(index)
        return index

    def to_glb(self) -> bytes:
        doc = copy.deepcopy(self.json)
        if self.bin:
            doc["buffers"] = [{"byteLength": len(self.bin)}]
        for key in [k for k, v in doc.items() if isinstance(v, list) and not v]:
            del doc[key]  # the spec forbids empty top-level arrays
        return write_glb(GlbDocument(doc, bytes(self.bin)))

    # -- grafting a whole glTF document (models keep animations, skins, morph targets, lights, variants)
    def _offsets(self) -> dict[str, int]:
        offsets = {key: len(self.json.get(key, [])) for key in ROOT_ARRAYS}
        root_ext = self.json.get("extensions", {})
        for name, (ext, array) in EXTENSION_ARRAYS.items():
            offsets[name] = len(root_ext.get(ext, {}).get(array, []))
        return offsets

    def _merge_root(self, src: dict) -> None:
        for key in ROOT_ARRAYS:
            if src.get(key):
                self.json.setdefault(key, []).extend(src[key])
        arrays = {ext: array for ext, array in EXTENSION_ARRAYS.values()}
        for name, ext in src.get("extensions", {}).items():
            mine = self.json.setdefault("extensions", {})
            if name in arrays:
                mine.setdefault(name, {}).setdefault(arrays[name], []).extend(ext.get(arrays[name], []))
            else:
                mine.setdefault(name, ext)
        for name in src.get("extensionsUsed", []):
            self._use_extension(name, required=name in src.get("extensionsRequired", []))

    def graft(self, source: GlbDocument, parent: int) -> list[int]:
        """Append every part of ``source`` with all indices shifted, its default scene's roots under ``parent``.

        ``source`` must keep all binary data in buffer 0 (a GLB) and must not use EXT_meshopt_compression (decode
        first); :class:`GraftError` otherwise. Returns the new indices of the grafted roots.
        """
        src = copy.deepcopy(source.json)
        buffers = src.get("buffers") or []
        if len(buffers) > 1 or any("uri" in b for b in buffers):
            raise GraftError("model keeps binary data outside its GLB buffer")
        if "EXT_meshopt_compression" in src.get("extensionsUsed", []):
            raise GraftError("meshopt-compressed model must be decoded before grafting")
        external = [image["uri"] for image in src.get("images", []) if "uri" in image]
        if external:
            raise GraftError(f"model image refers to an external file {external[0][:60]!r}")
        base = self._align_bin()
        self.bin += source.bin
        offsets = self._offsets()
        for view in src.get("bufferViews", []):
            view["buffer"] = 0
            view["byteOffset"] = view.get("byteOffset", 0) + base
        shift_references(src, offsets)
        self._merge_root(src)
        new_roots = [r + offsets["nodes"] for r in source_roots(source.json)]
        self.json["nodes"][parent].setdefault("children", []).extend(new_roots)
        return new_roots
