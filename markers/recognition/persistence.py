"""The index file: MAGIC(4) | version u16 | header length u32 | header JSON | page coords (uint16) | page descriptors
| background distances of the indexed features (uint8) | faiss bytes | crc32; sections after the header are each
preceded by their byte length (u64). A file of another version is refused with IndexFormatError (its pages' markers
rebuild it: builder/publish.py upgrade_index)."""
from __future__ import annotations

import json
import os
import struct
import tempfile
import zlib
from pathlib import Path

import faiss
import numpy as np

from ..errors import IndexFormatError
from ..features import DESCRIPTOR_BYTES
from .catalog import INDEXED_FEATURES, Catalog, PageEntry, per_list_ready

INDEX_MAGIC = b"BNIX"
INDEX_VERSION = 5  # 2: per-page descriptors kept beside FAISS (two-stage search); 3: background distances;
# 4: built from version-2 markers (keypoint convention), so an index of older markers is rebuilt; 5: an IVF index has
# one always-empty inverted list more than centroids (search_ivf)


def save(cat: Catalog, path: str | os.PathLike) -> None:
    """Write ``cat`` atomically (temp file in the same directory, fsync, rename); the caller holds its read lock."""
    path = Path(path)
    pages = [p for p in cat._slots if p is not None]
    header = json.dumps({
        "pages": [{"page_id": p.page_id, "slot": p.slot, "width_mm": p.width_mm, "height_mm": p.height_mm,
                   "n": len(p.coords), "scopes": list(p.scopes)} for p in pages],
        "n_slots": len(cat._slots), "trained_size": cat._trained_size,
    }).encode()
    coords = b"".join(np.ascontiguousarray(p.coords, "<u2").tobytes() for p in pages)
    descs = b"".join(np.ascontiguousarray(p.descriptors, np.uint8).tobytes() for p in pages)
    back = b"".join(cat._background[p.slot, :min(len(p.coords), INDEXED_FEATURES)].tobytes() for p in pages)
    fbytes = faiss.serialize_index_binary(cat._index).tobytes()
    body = b"".join([INDEX_MAGIC, struct.pack("<HI", INDEX_VERSION, len(header)), header,
                     struct.pack("<Q", len(coords)), coords, struct.pack("<Q", len(descs)), descs,
                     struct.pack("<Q", len(back)), back, struct.pack("<Q", len(fbytes)), fbytes])
    body += struct.pack("<I", zlib.crc32(body))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def stored_version(path: str | os.PathLike) -> int:
    """Format version of an index file (any version), so a caller can rebuild one written by an older
    library from its page markers. IndexFormatError if it is not an index file."""
    with open(path, "rb") as fh:
        head = fh.read(10)
    if len(head) < 10 or head[:4] != INDEX_MAGIC:
        raise IndexFormatError(f"{path}: not a recognition index (first bytes {head[:4]!r}, "
                               f"expected {INDEX_MAGIC!r})")
    return struct.unpack_from("<H", head, 4)[0]


def stored_scopes(path: str | os.PathLike) -> dict[str, tuple[str, ...]]:
    """page id -> scopes recorded in an index file of any version (its header is the same in every
    version): what a rebuild from the page markers needs besides the markers."""
    data = Path(path).read_bytes()
    if len(data) < 10 or data[:4] != INDEX_MAGIC:
        raise IndexFormatError(f"{path}: not a recognition index")
    (hlen,) = struct.unpack_from("<I", data, 6)
    try:
        header = json.loads(data[10:10 + hlen])
        return {str(p["page_id"]): tuple(p["scopes"]) for p in header["pages"]}
    except (ValueError, KeyError, TypeError) as exc:
        raise IndexFormatError(f"{path}: corrupted recognition index header: {exc}") from exc


def load_into(cat: Catalog, path: str | os.PathLike) -> None:
    """Fill the empty catalog ``cat`` from an index file written by ``save``. IndexFormatError: not an index,
    wrong version, truncated/corrupt."""
    data = Path(path).read_bytes()
    if len(data) < 10 or data[:4] != INDEX_MAGIC:
        raise IndexFormatError(f"{path}: not a recognition index (first bytes {data[:4]!r}, "
                               f"expected {INDEX_MAGIC!r})")
    version, hlen = struct.unpack_from("<HI", data, 4)
    if version != INDEX_VERSION:
        raise IndexFormatError(f"{path}: unsupported recognition index version {version} (this library reads "
                               f"version {INDEX_VERSION}); rebuild the index from the page markers")
    if len(data) < 10 + hlen + 8 + 8 + 4:
        raise IndexFormatError(f"{path}: truncated recognition index ({len(data)} bytes)")
    if zlib.crc32(data[:-4]) != struct.unpack("<I", data[-4:])[0]:
        raise IndexFormatError(f"{path}: truncated or corrupted recognition index (checksum mismatch, "
                               f"{len(data)} bytes)")
    try:
        header = json.loads(data[10:10 + hlen])
        off = 10 + hlen
        (clen,) = struct.unpack_from("<Q", data, off)
        off += 8
        coords = np.frombuffer(data, "<u2", count=clen // 2, offset=off)
        off += clen
        (dlen,) = struct.unpack_from("<Q", data, off)
        off += 8
        descs = np.frombuffer(data, np.uint8, count=dlen, offset=off).reshape(-1, DESCRIPTOR_BYTES)
        off += dlen
        (blen,) = struct.unpack_from("<Q", data, off)
        off += 8
        back = np.frombuffer(data, np.uint8, count=blen, offset=off)
        off += blen
        (flen,) = struct.unpack_from("<Q", data, off)
        off += 8
        index = faiss.deserialize_index_binary(np.frombuffer(data, np.uint8, count=flen, offset=off).copy())
    except (ValueError, KeyError, struct.error, RuntimeError) as exc:
        raise IndexFormatError(f"{path}: corrupted recognition index: {exc}") from exc
    if isinstance(index, faiss.IndexBinaryIVF):
        index.nprobe = cat.params.ivf_nprobe
        try:
            per_list_ready(index)
        except IndexFormatError as exc:
            raise IndexFormatError(f"{path}: {exc}") from exc
    cat._index = index
    cat._trained_size = int(header["trained_size"])
    cat._slots = [None] * int(header["n_slots"])
    cat._background = np.zeros((len(cat._slots), INDEXED_FEATURES), np.uint8)
    pos = bpos = 0
    for rec in header["pages"]:
        n = int(rec["n"])
        page = PageEntry(rec["page_id"], int(rec["slot"]), float(rec["width_mm"]), float(rec["height_mm"]),
                     coords[pos:pos + 2 * n].reshape(n, 2).astype(np.uint16),
                     descs[pos // 2:pos // 2 + n].copy(), tuple(rec["scopes"]))
        pos += 2 * n
        k = min(n, INDEXED_FEATURES)
        if bpos + k > len(back):
            raise IndexFormatError(f"{path}: corrupted recognition index: background distances too short")
        cat._background[page.slot, :k] = back[bpos:bpos + k]
        bpos += k
        cat._slots[page.slot] = page
        cat._pages[page.page_id] = page
    cat._free = [i for i, p in enumerate(cat._slots) if p is None]
