"""GLB container read/write (glTF 2.0 binary), with the padding the spec requires.

Layout: a 12-byte header (magic ``glTF``, version 2, total length), a JSON chunk, then an optional BIN
chunk. Every chunk starts on a 4-byte boundary: the JSON chunk is padded with spaces (0x20), the BIN chunk
with zeros. ``buffers[0].byteLength`` is the unpadded length of the binary data (the chunk may be up to 3
bytes longer). pygltflib's ``save_binary`` leaves the BIN chunk unpadded, which corrupts meshopt files —
so we write the container here and use pygltflib only for the glTF model.
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass

GLB_MAGIC = b"glTF"
GLB_VERSION = 2
CHUNK_JSON = 0x4E4F534A  # "JSON" little-endian
CHUNK_BIN = 0x004E4942   # "BIN\0" little-endian
HEADER = struct.Struct("<4sII")
CHUNK_HEADER = struct.Struct("<II")


class GlbFormatError(ValueError):
    """Bytes that are not a well-formed GLB container."""

    def __init__(self, message: str, value=None):
        super().__init__(message)
        self.value = value


@dataclass
class GlbDocument:
    """A glTF JSON tree (plain dicts/lists) plus the bytes of buffer 0 (the BIN chunk)."""

    json: dict
    bin: bytes = b""


def pad4(length: int) -> int:
    """Bytes of padding that bring ``length`` to a multiple of 4."""
    return (-length) % 4


def read_glb(data: bytes) -> GlbDocument:
    """Parse GLB bytes → :class:`GlbDocument` (JSON dict, BIN bytes trimmed to ``buffers[0].byteLength``)."""
    if len(data) < HEADER.size + CHUNK_HEADER.size:
        raise GlbFormatError(f"too short for a GLB: {len(data)} bytes", len(data))
    magic, version, length = HEADER.unpack_from(data, 0)
    if magic != GLB_MAGIC:
        raise GlbFormatError(f"not a GLB (magic {magic!r})", magic)
    if version != GLB_VERSION:
        raise GlbFormatError(f"unsupported GLB version {version}", version)
    if length > len(data):
        raise GlbFormatError(f"truncated GLB: header says {length} bytes, got {len(data)}", length)
    offset = HEADER.size
    doc_json = None
    bin_chunk = b""
    while offset + CHUNK_HEADER.size <= length:
        chunk_len, chunk_type = CHUNK_HEADER.unpack_from(data, offset)
        offset += CHUNK_HEADER.size
        chunk = data[offset:offset + chunk_len]
        if len(chunk) != chunk_len:
            raise GlbFormatError("truncated GLB chunk", chunk_len)
        if chunk_type == CHUNK_JSON and doc_json is None:
            doc_json = json.loads(chunk.decode("utf-8"))
        elif chunk_type == CHUNK_BIN and not bin_chunk:
            bin_chunk = bytes(chunk)
        offset += chunk_len + pad4(chunk_len)
    if doc_json is None:
        raise GlbFormatError("GLB without a JSON chunk")
    buffers = doc_json.get("buffers") or []
    if buffers and "uri" not in buffers[0]:
        bin_chunk = bin_chunk[: buffers[0].get("byteLength", len(bin_chunk))]
    return GlbDocument(doc_json, bin_chunk)


def write_glb(doc: GlbDocument) -> bytes:
    """Serialize → GLB bytes; sets ``buffers[0].byteLength`` to the BIN length and pads both chunks."""
    doc_json = doc.json
    bin_data = bytes(doc.bin)
    if bin_data:
        buffers = doc_json.setdefault("buffers", [])
        if not buffers:
            buffers.append({})
        buffers[0].pop("uri", None)
        buffers[0]["byteLength"] = len(bin_data)
    json_bytes = json.dumps(doc_json, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    json_bytes += b" " * pad4(len(json_bytes))
    parts = [CHUNK_HEADER.pack(len(json_bytes), CHUNK_JSON), json_bytes]
    if bin_data:
        padded = bin_data + b"\x00" * pad4(len(bin_data))
        parts += [CHUNK_HEADER.pack(len(padded), CHUNK_BIN), padded]
    body = b"".join(parts)
    return HEADER.pack(GLB_MAGIC, GLB_VERSION, HEADER.size + len(body)) + body
