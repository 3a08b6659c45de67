"""GLB container read/write (glTF 2.0 binary), with the padding the spec requires. The one GLB reader and writer.

Layout: a 12-byte header (magic ``glTF``, version 2, total length), a JSON chunk, then an optional BIN chunk.
Every chunk starts on a 4-byte boundary: the JSON chunk is padded with spaces (0x20), the BIN chunk with zeros.
``buffers[0].byteLength`` is the unpadded length of the binary data (the chunk may be up to 3 bytes longer).
pygltflib's ``save_binary`` leaves the BIN chunk unpadded, which corrupts meshopt files — so the container is
written here and pygltflib is used only for glTF JSON.

Reading is strict (uploads come through here): the header's length must be the file's length, no chunk may run
past the end, the JSON chunk must hold an object. Every failure is a :class:`GlbFormatError` (a ``ValueError``).
"""
from __future__ import annotations

import json
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

GLB_MAGIC = b"glTF"
GLB_VERSION = 2
CHUNK_JSON = 0x4E4F534A  # "JSON" little-endian
CHUNK_BIN = 0x004E4942   # "BIN\0" little-endian
HEADER = struct.Struct("<4sII")
CHUNK_HEADER = struct.Struct("<II")


class GlbFormatError(ValueError):
    """Bytes that are not a well-formed GLB container. ``value`` is the offending value, when there is one."""

    def __init__(self, message: str, value: Any = None):
        super().__init__(message)
        self.value = value


@dataclass
class GlbDocument:
    """A glTF JSON tree (plain dicts/lists) plus the bytes of buffer 0 (the BIN chunk).

    It unpacks as ``(json, bin)``: ``doc, binary = read_glb(data)`` and ``read_glb(data).json`` both work.
    """

    json: dict
    bin: bytes = b""

    def __iter__(self) -> Iterator[Any]:
        return iter((self.json, self.bin))


def pad4(length: int) -> int:
    """Bytes of padding that bring ``length`` to a multiple of 4."""
    return (-length) % 4


def _parse_json_chunk(chunk: bytes) -> dict:
    try:
        doc = json.loads(chunk.decode("utf-8"))
    except RecursionError:  # absurdly nested JSON
        raise GlbFormatError("glTF JSON nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise GlbFormatError(f"GLB JSON chunk is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise GlbFormatError("GLB JSON chunk is not an object")
    return doc


def read_glb(data: bytes) -> GlbDocument:
    """Parse GLB bytes → :class:`GlbDocument` (JSON dict, BIN bytes trimmed to ``buffers[0].byteLength``)."""
    if len(data) < HEADER.size + CHUNK_HEADER.size:
        raise GlbFormatError(f"too short for a GLB: {len(data)} bytes", len(data))
    magic, version, length = HEADER.unpack_from(data, 0)
    if magic != GLB_MAGIC:
        raise GlbFormatError(f"not a GLB (magic {magic!r})", magic)
    if version != GLB_VERSION:
        raise GlbFormatError(f"GLB version {version}, only 2 is supported", version)
    if length != len(data):
        raise GlbFormatError(f"GLB header says {length} bytes, file has {len(data)}", length)
    offset = HEADER.size
    doc_json: dict | None = None
    bin_chunk = b""
    while offset + CHUNK_HEADER.size <= length:
        chunk_len, chunk_type = CHUNK_HEADER.unpack_from(data, offset)
        start, end = offset + CHUNK_HEADER.size, offset + CHUNK_HEADER.size + chunk_len
        if end > length:
            raise GlbFormatError("GLB chunk runs past the end of the file", chunk_len)
        if chunk_type == CHUNK_JSON and doc_json is None:
            doc_json = _parse_json_chunk(data[start:end])
        elif chunk_type == CHUNK_BIN and not bin_chunk:
            bin_chunk = bytes(data[start:end])
        offset = end + pad4(chunk_len)
    if doc_json is None:
        raise GlbFormatError("GLB has no JSON chunk")
    buffers = doc_json.get("buffers")
    first = buffers[0] if isinstance(buffers, list) and buffers and isinstance(buffers[0], dict) else {}
    byte_length = first.get("byteLength")
    if "uri" not in first and isinstance(byte_length, int) and 0 <= byte_length <= len(bin_chunk):
        bin_chunk = bin_chunk[:byte_length]
    return GlbDocument(doc_json, bin_chunk)


def write_glb(doc: GlbDocument | Mapping[str, Any], binary: bytes | None = None) -> bytes:
    """Serialize → GLB bytes: ``write_glb(GlbDocument)`` or ``write_glb(json_dict, binary)``.

    With binary data, ``buffers[0]`` becomes the GLB buffer (its ``uri`` dropped, ``byteLength`` = the data's
    length); both chunks are padded to 4 bytes.
    """
    if isinstance(doc, GlbDocument):
        doc_json, bin_data = doc.json, bytes(doc.bin if binary is None else binary)
    else:
        doc_json, bin_data = doc, bytes(binary or b"")
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
