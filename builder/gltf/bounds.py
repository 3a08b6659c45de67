"""Where a glTF document's geometry sits: node transforms, accessor ranges, scene walks, bounds, triangle counts.

Read from the JSON only (accessor ``min``/``max``), so it works for Draco/meshopt files too. Normalized integer
accessors (KHR_mesh_quantization) are read as the glTF spec says: their min/max divided by the type's maximum.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

MAX_DEPTH = 64            # deeper node hierarchies are refused (a cycle, or an attack)
MAX_VISITS = 1_000_000    # node visits of one walk (each instance counted)

# KHR_mesh_quantization: a normalized integer accessor's min/max are stored as integers; divide to get floats
# (signed types clamp at -1), as the glTF spec's "normalized" rule says.
NORMALIZED_DIVISOR = {5120: 127.0, 5121: 255.0, 5122: 32767.0, 5123: 65535.0}


def node_matrix(node: Mapping[str, Any]) -> np.ndarray:
    """The node's local 4×4 matrix: ``matrix`` (column-major), or T · R · S."""
    if "matrix" in node:
        return np.array(node["matrix"], dtype=np.float64).reshape(4, 4).T  # glTF is column-major
    t = np.array(node.get("translation", (0, 0, 0)), dtype=np.float64)
    x, y, z, w = node.get("rotation", (0, 0, 0, 1))
    r = np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])
    s = np.array(node.get("scale", (1, 1, 1)), dtype=np.float64)
    m = np.eye(4)
    m[:3, :3] = r * s  # R · diag(s)
    m[:3, 3] = t
    return m


def accessor_range(acc: Mapping[str, Any]) -> tuple[list[float], list[float]]:
    """(min xyz, max xyz) of a POSITION accessor as floats, dequantizing normalized integer types."""
    lo, hi = list(acc["min"][:3]), list(acc["max"][:3])
    div = NORMALIZED_DIVISOR.get(acc.get("componentType")) if acc.get("normalized") else None
    if div:
        lo, hi = ([max(v / div, -1.0) for v in vs] for vs in (lo, hi))
    return lo, hi


def default_scene_roots(doc: Mapping[str, Any]) -> list[int]:
    """Root nodes of the default scene; every node when the document has no scene; none for a bad index."""
    scenes = doc.get("scenes", [])
    if not scenes:
        return list(range(len(doc.get("nodes", []))))
    index = doc.get("scene", 0)
    return list(scenes[index].get("nodes", [])) if 0 <= index < len(scenes) else []


def walk_meshes(doc: Mapping[str, Any], roots: Sequence[int]) -> Iterator[tuple[np.ndarray, dict]]:
    """(world matrix, mesh dict) of every mesh instance under ``roots`` (matrices relative to the roots' parent).

    Raises ``ValueError`` for a hierarchy deeper than :data:`MAX_DEPTH`, cyclic, or naming a missing node.
    """
    nodes, meshes = doc.get("nodes", []), doc.get("meshes", [])
    stack = [(i, np.eye(4), 0) for i in roots]
    visited = 0
    while stack:
        index, parent, depth = stack.pop()
        visited += 1
        if depth > MAX_DEPTH or visited > MAX_VISITS or not 0 <= index < len(nodes):
            raise ValueError("node hierarchy too deep, cyclic or out of range")
        node = nodes[index]
        world = parent @ node_matrix(node)
        mesh_index = node.get("mesh")
        if mesh_index is not None and 0 <= mesh_index < len(meshes):
            yield world, meshes[mesh_index]
        stack.extend((c, world, depth + 1) for c in node.get("children", []))


def primitive_triangles(doc: Mapping[str, Any], prim: Mapping[str, Any]) -> int:
    """Triangles one primitive draws (triangles, strips and fans; 0 for points and lines)."""
    accessors = doc.get("accessors", [])
    attributes = prim.get("attributes", {})
    pos = accessors[attributes["POSITION"]] if "POSITION" in attributes else None
    count = accessors[prim["indices"]]["count"] if "indices" in prim else (pos or {}).get("count", 0)
    mode = prim.get("mode", 4)
    return count // 3 if mode == 4 else max(count - 2, 0) if mode in (5, 6) else 0


def _primitive_box(doc: Mapping[str, Any], prim: Mapping[str, Any], world: np.ndarray) -> np.ndarray | None:
    attributes = prim.get("attributes", {})
    if "POSITION" not in attributes:
        return None
    pos = doc.get("accessors", [])[attributes["POSITION"]]
    if "min" not in pos or "max" not in pos:
        return None
    pmin, pmax = accessor_range(pos)
    corners = np.array([[x, y, z, 1.0] for x in (pmin[0], pmax[0]) for y in (pmin[1], pmax[1])
                        for z in (pmin[2], pmax[2])])
    return (world @ corners.T).T[:, :3]


def scene_geometry(doc: Mapping[str, Any], roots: Sequence[int]
                   ) -> tuple[int, tuple[np.ndarray, np.ndarray] | None]:
    """(drawn triangles, axis-aligned bounds (min, max) or ``None``) of the meshes under ``roots``.

    Bind pose (skinning and morph targets ignored); every mesh instance counted.
    """
    triangles, lo, hi = 0, np.full(3, np.inf), np.full(3, -np.inf)
    for world, mesh in walk_meshes(doc, roots):
        for prim in mesh.get("primitives", []):
            triangles += primitive_triangles(doc, prim)
            pts = _primitive_box(doc, prim, world)
            if pts is not None:
                lo, hi = np.minimum(lo, pts.min(axis=0)), np.maximum(hi, pts.max(axis=0))
    return triangles, ((lo, hi) if np.isfinite(lo).all() else None)


def model_bounds(doc: Mapping[str, Any], roots: Sequence[int]) -> tuple[np.ndarray, np.ndarray] | None:
    """Axis-aligned bounds (min, max) in metres of the meshes under ``roots`` (bind pose, ignoring skinning)."""
    return scene_geometry(doc, roots)[1]
