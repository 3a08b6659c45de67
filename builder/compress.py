"""Bundle compression steps, each a small function over GLB files (load → transform → write).

* :func:`compress_full` — ``gltf-transform optimize``: meshopt geometry/animation, WebP textures ≤ 2048 px.
* :func:`compress_lite` — meshes above a triangle budget simplified with meshoptimizer (Python, keeps UVs,
  normals, skin weights: only the index buffer changes), then the same optimize with textures ≤ 1024 px.
* :func:`decode_glb` — the inverse for checking: meshopt/Draco buffers decoded to plain accessors, so the
  Khronos validator (which cannot look inside them) checks the real geometry.

The optimize flags keep the scene as we built it. Its defaults were seen to flatten the graph, join meshes,
instance, palette materials, simplify and prune — the last removed empty overlay nodes (audio) with their
extras. ``KEEP_SCENE_FLAGS`` switches all of those off; every node, name, extra and animation survives
(tests/builder/test_compress.py checks it).
"""
from __future__ import annotations

import copy
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from builder.config import NodeTools, node_tools
from builder.glb import GlbDocument, read_glb, write_glb
from builder.procs import limited, node_args

REPO_ROOT = Path(__file__).resolve().parents[1]
# the repository's copy (make deps-node); BAONHUNG_NODE_MODULES moves it: node_tools() (builder/config.py)
GLTF_TRANSFORM_CLI = NodeTools().gltf_transform_cli
TIMEOUT_S = 180  # a 200k-triangle model with 2048 px textures takes ~8 s (models are capped at 500k triangles)

FULL_TEXTURE_MAX_PX = 2048
LITE_TEXTURE_MAX_PX = 1024
LITE_TRIANGLE_BUDGET = 50_000   # per primitive: a phone on 3G draws 50k triangles fine; 200k-tri scans do not
LITE_SIMPLIFY_ERROR = 0.02      # meshoptimizer relative error (2 % of the mesh extent) — acceptable for "lite"

KEEP_SCENE_FLAGS = (
    "--flatten", "false", "--join", "false", "--instance", "false", "--palette", "false",
    "--simplify", "false", "--prune", "false",
)

GL_UNSIGNED_BYTE, GL_UNSIGNED_SHORT, GL_UNSIGNED_INT, GL_FLOAT = 5121, 5123, 5125, 5126
_DTYPES = {GL_UNSIGNED_BYTE: np.uint8, GL_UNSIGNED_SHORT: np.uint16, GL_UNSIGNED_INT: np.uint32,
           GL_FLOAT: np.float32, 5120: np.int8, 5122: np.int16}
_WIDTH = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}

DECODE_SCRIPT = r"""
import { NodeIO } from '@gltf-transform/core';
import { ALL_EXTENSIONS } from '@gltf-transform/extensions';
import { MeshoptDecoder } from 'meshoptimizer';
import draco3d from 'draco3dgltf';
await MeshoptDecoder.ready;
const io = new NodeIO().registerExtensions(ALL_EXTENSIONS).registerDependencies({
  'meshopt.decoder': MeshoptDecoder, 'draco3d.decoder': await draco3d.createDecoderModule() });
const chunks = [];
for await (const c of process.stdin) chunks.push(c);
const doc = await io.readBinary(new Uint8Array(Buffer.concat(chunks)));
for (const ext of doc.getRoot().listExtensionsUsed()) {
  const name = ext.extensionName;
  if (name === 'EXT_meshopt_compression' || name === 'KHR_draco_mesh_compression') ext.dispose();
}
process.stdout.write(Buffer.from(await io.writeBinary(doc)));
"""


class CompressionError(RuntimeError):
    """gltf-transform / node failed; carries the command's last output lines."""

    def __init__(self, message: str, output: str = ""):
        super().__init__(message + (f": {output}" if output else ""))
        self.output = output


def _node() -> str:
    node = node_tools().node_binary()  # BAONHUNG_NODE, else node on PATH
    if not node:
        raise CompressionError("node not found on PATH")
    return node


def _run(cmd: list[str], data: bytes | None = None) -> bytes:
    try:
        proc = subprocess.run(cmd, input=data, capture_output=True, timeout=TIMEOUT_S, check=False,
                              cwd=str(REPO_ROOT), preexec_fn=limited(None))
    except subprocess.TimeoutExpired as exc:
        raise CompressionError(f"{Path(cmd[1]).name if len(cmd) > 1 else cmd[0]} timed out") from exc
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).decode("utf-8", "replace").strip().splitlines()[-5:]
        raise CompressionError(f"command failed ({proc.returncode})", " | ".join(tail))
    return proc.stdout


def optimize(src: Path, dst: Path, *, texture_max_px: int) -> Path:
    """``gltf-transform optimize`` with meshopt + WebP ≤ ``texture_max_px``, keeping every node/name/extra."""
    cli = node_tools().gltf_transform_cli
    if not cli.is_file():
        raise CompressionError(f"missing {cli} (run make deps-node)")
    _run([_node(), *node_args(), str(cli), "optimize", str(src), str(dst), "--compress", "meshopt",
          "--texture-compress", "webp", "--texture-size", str(int(texture_max_px)), *KEEP_SCENE_FLAGS])
    return dst


def decode_glb(data: bytes) -> bytes:
    """GLB bytes with meshopt/Draco buffers → GLB bytes with plain accessors (for validation, grafting)."""
    return _run([_node(), *node_args(), "--input-type=module", "-e", DECODE_SCRIPT], data)


def _read_accessor(doc: GlbDocument, index: int) -> np.ndarray:
    acc = doc.json["accessors"][index]
    if "sparse" in acc or "bufferView" not in acc:
        raise ValueError("sparse or empty accessor")
    view = doc.json["bufferViews"][acc["bufferView"]]
    dtype = np.dtype(_DTYPES[acc["componentType"]])
    width = _WIDTH[acc["type"]]
    offset = view.get("byteOffset", 0) + acc.get("byteOffset", 0)
    stride = view.get("byteStride") or dtype.itemsize * width
    raw = np.frombuffer(doc.bin, dtype=np.uint8, count=(acc["count"] - 1) * stride + dtype.itemsize * width,
                        offset=offset) if acc["count"] else np.zeros(0, np.uint8)
    rows = np.lib.stride_tricks.as_strided(raw, shape=(acc["count"], dtype.itemsize * width), strides=(stride, 1))
    return np.ascontiguousarray(rows).view(dtype).reshape(acc["count"], width)


def simplify_document(doc: GlbDocument, triangle_budget: int = LITE_TRIANGLE_BUDGET,
                      target_error: float = LITE_SIMPLIFY_ERROR) -> tuple[GlbDocument, list[tuple[int, int, int]]]:
    """Simplify every indexed triangle primitive above ``triangle_budget`` with meshoptimizer.

    Only the index accessor is replaced in place (new data appended to the buffer), so UVs, normals, skin
    weights and morph targets stay valid. Returns the new document and ``(mesh index, triangles before,
    after)`` per change.
    """
    import meshoptimizer

    doc = GlbDocument(copy.deepcopy(doc.json), bytes(doc.bin))
    out = bytearray(doc.bin)
    changes: list[tuple[int, int, int]] = []
    done: dict[tuple[int, int], int] = {}
    for mesh_index, mesh in enumerate(doc.json.get("meshes", [])):
        for prim in mesh.get("primitives", []):
            if prim.get("mode", 4) != 4 or "indices" not in prim or "POSITION" not in prim.get("attributes", {}):
                continue
            if prim.get("extensions"):  # Draco etc.: decoded upstream, never simplified blind
                continue
            key = (prim["indices"], prim["attributes"]["POSITION"])
            if key in done:
                prim["indices"] = done[key]
                continue
            tri_count = doc.json["accessors"][prim["indices"]]["count"] // 3
            if tri_count <= triangle_budget:
                continue
            indices = _read_accessor(doc, prim["indices"]).reshape(-1).astype(np.uint32)
            positions = _read_accessor(doc, prim["attributes"]["POSITION"]).astype(np.float32)
            dest = np.zeros_like(indices)
            count = meshoptimizer.simplify(dest, indices, positions, target_index_count=triangle_budget * 3,
                                           target_error=target_error)
            new = dest[:count]
            dtype, component = ((np.uint16, GL_UNSIGNED_SHORT) if positions.shape[0] < 65536
                                else (np.uint32, GL_UNSIGNED_INT))
            data = new.astype(dtype).tobytes()
            out += b"\x00" * ((-len(out)) % 4)
            views = doc.json["bufferViews"]
            views.append({"buffer": 0, "byteOffset": len(out), "byteLength": len(data), "target": 34963})
            out += data
            # in place: with --prune false an orphaned accessor would be written out, wasting the bytes
            doc.json["accessors"][prim["indices"]] = {"bufferView": len(views) - 1, "componentType": component,
                                                      "count": int(count), "type": "SCALAR"}
            done[key] = prim["indices"]
            changes.append((mesh_index, tri_count, int(count) // 3))
    doc.bin = bytes(out)
    return doc, changes


def compress_full(src: Path, dst: Path, *, texture_max_px: int = FULL_TEXTURE_MAX_PX) -> Path:
    """Full variant: meshopt + WebP ≤ ``texture_max_px``."""
    return optimize(Path(src), Path(dst), texture_max_px=texture_max_px)


def compress_lite(src: Path, dst: Path, *, texture_max_px: int = LITE_TEXTURE_MAX_PX,
                  triangle_budget: int = LITE_TRIANGLE_BUDGET) -> Path:
    """Lite variant: simplify primitives above ``triangle_budget``, then meshopt + WebP ≤ ``texture_max_px``.

    The old index data stays in the simplified buffer unreferenced; optimize re-lays the buffer from accessors.
    """
    doc, changes = simplify_document(read_glb(Path(src).read_bytes()), triangle_budget)
    if not changes:
        return optimize(Path(src), Path(dst), texture_max_px=texture_max_px)
    with tempfile.TemporaryDirectory(prefix="baonhung-lite-") as tmp:
        simplified = Path(tmp) / "simplified.glb"
        simplified.write_bytes(write_glb(doc))
        return optimize(simplified, Path(dst), texture_max_px=texture_max_px)
