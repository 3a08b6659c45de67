"""The index file, laid out so that several processes on one machine share its big arrays (issue 28 item 4):

    MAGIC(4) | version u16 | header length u32 | header JSON | zero padding | sections | crc32 u32

The header names each section's (offset from the first section, byte length); every section starts at a multiple of
ALIGN bytes from the start of the file: ``coords`` (every page's feature positions, uint16 pairs, pages in header
order), ``descriptors`` (every page's ORB descriptors, uint8 rows of DESCRIPTOR_BYTES), ``background`` (the
indexed features' background distances, uint8 (n_slots, INDEXED_FEATURES)) and ``faiss`` (FAISS's own
serialization). ``load_into`` maps the file (copy-on-write) instead of reading it: pages' arrays are views of the
mapping and FAISS reads its codes in place (``faiss.ZeroCopyIOReader``), so the page cache holds one copy for every
process that loads the same file. The first add or remove copies the FAISS index into the process (``Catalog``
owns it from then on). A file of another version is refused with IndexFormatError (its pages' markers rebuild it:
builder/publish.py upgrade_index).
"""
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
INDEX_VERSION = 6  # 2: per-page descriptors kept beside FAISS (two-stage search); 3: background distances;
# 4: built from version-2 markers (keypoint convention), so an index of older markers is rebuilt; 5: an IVF index has
# one always-empty inverted list more than centroids (search_ivf); 6: aligned sections named in the header, mapped
# by load (shared by processes), background distances stored by slot
ALIGN = 4096  # one memory page: a section's first page holds nothing of the section before
SECTIONS = ("coords", "descriptors", "background", "faiss")
_HEAD = 10  # magic, version, header length


def _align(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def save(cat: Catalog, path: str | os.PathLike) -> None:
    """Write ``cat`` atomically (temp file in the same directory, fsync, rename); the caller holds its read lock."""
    path = Path(path)
    pages = [p for p in cat._slots if p is not None]
    background = np.zeros((len(cat._slots), INDEXED_FEATURES), np.uint8)
    background[:min(len(cat._slots), len(cat._background))] = cat._background[:len(cat._slots)]
    blobs = {
        "coords": b"".join(np.ascontiguousarray(p.coords, "<u2").tobytes() for p in pages),
        "descriptors": b"".join(np.ascontiguousarray(p.descriptors, np.uint8).tobytes() for p in pages),
        "background": background.tobytes(),
        "faiss": faiss.serialize_index_binary(cat._index).tobytes(),
    }
    offsets, at = {}, 0
    for name in SECTIONS:
        offsets[name] = [at, len(blobs[name])]
        at = _align(at + len(blobs[name]))
    header = json.dumps({
        "pages": [{"page_id": p.page_id, "slot": p.slot, "width_mm": p.width_mm, "height_mm": p.height_mm,
                   "n": len(p.coords), "scopes": list(p.scopes)} for p in pages],
        "n_slots": len(cat._slots), "trained_size": cat._trained_size, "sections": offsets,
    }).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            crc = 0
            start = _align(_HEAD + len(header))
            for part in _parts(header, blobs, offsets, start):
                crc = zlib.crc32(part, crc)
                f.write(part)
            f.write(struct.pack("<I", crc))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _parts(header: bytes, blobs: dict[str, bytes], offsets: dict[str, list[int]], start: int):
    """The file's bytes before its checksum, in order (header, padding, each section and its padding)."""
    yield INDEX_MAGIC + struct.pack("<HI", INDEX_VERSION, len(header)) + header
    written = _HEAD + len(header)
    for name in SECTIONS:
        at = start + offsets[name][0]
        yield bytes(at - written)
        yield blobs[name]
        written = at + len(blobs[name])


def _read_header(path: str | os.PathLike) -> tuple[int, dict | None, int]:
    """(version, header JSON or None if it does not parse, header length) of an index file of any version."""
    with open(path, "rb") as fh:
        head = fh.read(_HEAD)
        if len(head) < _HEAD or head[:4] != INDEX_MAGIC:
            raise IndexFormatError(f"{path}: not a recognition index (first bytes {head[:4]!r}, "
                                   f"expected {INDEX_MAGIC!r})")
        version, hlen = struct.unpack_from("<HI", head, 4)
        raw = fh.read(hlen)
    try:
        header = json.loads(raw) if len(raw) == hlen else None
    except ValueError:
        header = None
    return version, header if isinstance(header, dict) else None, hlen


def stored_version(path: str | os.PathLike) -> int:
    """Format version of an index file (any version), so a caller can rebuild one written by an older
    library from its page markers. IndexFormatError if it is not an index file."""
    return _read_header(path)[0]


def stored_scopes(path: str | os.PathLike) -> dict[str, tuple[str, ...]]:
    """page id -> scopes recorded in an index file of any version (its header is the same in every
    version): what a rebuild from the page markers needs besides the markers."""
    _, header, _ = _read_header(path)
    try:
        return {str(p["page_id"]): tuple(p["scopes"]) for p in header["pages"]}
    except (KeyError, TypeError) as exc:
        raise IndexFormatError(f"{path}: corrupted recognition index header: {exc}") from exc


def _file_bytes(path: str | os.PathLike, hlen: int, mapped: bool) -> np.ndarray:
    """The whole file, mapped copy-on-write (writes stay in this process) or read into memory, its checksum
    verified."""
    size = os.path.getsize(path)
    if size < _HEAD + hlen + 4:
        raise IndexFormatError(f"{path}: truncated recognition index ({size} bytes)")
    data = np.memmap(path, np.uint8, mode="c") if mapped else np.fromfile(path, np.uint8)
    crc, step = 0, 1 << 24
    for at in range(0, size - 4, step):
        crc = zlib.crc32(data[at:min(at + step, size - 4)], crc)
    if crc != struct.unpack("<I", data[size - 4:].tobytes())[0]:
        raise IndexFormatError(f"{path}: truncated or corrupted recognition index (checksum mismatch, {size} bytes)")
    return data


def _section(data: np.ndarray, header: dict, name: str, start: int) -> np.ndarray:
    off, length = (int(v) for v in header["sections"][name])
    if off < 0 or length < 0 or start + off + length > len(data) - 4:
        raise ValueError(f"section {name} ({off}, {length}) outside the file")
    return data[start + off:start + off + length]


def load_into(cat: Catalog, path: str | os.PathLike, mapped: bool = True) -> None:
    """Fill the empty catalog ``cat`` from an index file written by ``save``, its arrays mapped (module docstring;
    mapped=False: read into this process's memory instead). IndexFormatError: not an index, wrong version,
    truncated/corrupt."""
    version, header, hlen = _read_header(path)
    if version != INDEX_VERSION:
        raise IndexFormatError(f"{path}: unsupported recognition index version {version} (this library reads "
                               f"version {INDEX_VERSION}); rebuild the index from the page markers")
    data = _file_bytes(path, hlen, mapped)
    if header is None:
        raise IndexFormatError(f"{path}: corrupted recognition index header")
    start = _align(_HEAD + hlen)
    try:
        coords = _section(data, header, "coords", start).view("<u2").reshape(-1, 2)
        descs = _section(data, header, "descriptors", start).reshape(-1, DESCRIPTOR_BYTES)
        n_slots = int(header["n_slots"])
        background = _section(data, header, "background", start).reshape(n_slots, INDEXED_FEATURES)
        fbytes = _section(data, header, "faiss", start)
        index = faiss.read_index_binary(faiss.ZeroCopyIOReader(faiss.swig_ptr(fbytes), len(fbytes)), 0)
        pages = [(rec, int(rec["n"])) for rec in header["pages"]]
        trained_size = int(header["trained_size"])
    except (ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise IndexFormatError(f"{path}: corrupted recognition index: {exc}") from exc
    if sum(n for _, n in pages) != len(coords) or len(coords) != len(descs):
        raise IndexFormatError(f"{path}: corrupted recognition index: {len(coords)} positions, {len(descs)} "
                               f"descriptors for {sum(n for _, n in pages)} features")
    if isinstance(index, faiss.IndexBinaryIVF):
        index.nprobe = cat.params.ivf_nprobe
        try:
            per_list_ready(index)
        except IndexFormatError as exc:
            raise IndexFormatError(f"{path}: {exc}") from exc
    cat._mapping = data  # FAISS reads its codes from it: kept as long as the index that views them
    cat._index, cat._index_mapped = index, True
    cat._trained_size = trained_size
    cat._slots = [None] * n_slots
    cat._background = background
    pos = 0
    try:
        for rec, n in pages:
            page = PageEntry(rec["page_id"], int(rec["slot"]), float(rec["width_mm"]), float(rec["height_mm"]),
                             coords[pos:pos + n], descs[pos:pos + n], tuple(rec["scopes"]))
            pos += n
            cat._slots[page.slot] = page
            cat._pages[page.page_id] = page
    except (IndexError, KeyError, ValueError, TypeError) as exc:
        raise IndexFormatError(f"{path}: corrupted recognition index page record: {exc}") from exc
    cat._free = [i for i, p in enumerate(cat._slots) if p is None]
