"""Safe extraction of uploaded zip files (OBJ + MTL + textures and the like).

Refused, with a typed :class:`~builder.errors.InvalidAssetError` and nothing left behind in ``dest_dir``:
path traversal (``../``), absolute or drive paths, symbolic links, encrypted entries, duplicate names, too many
entries, too many bytes in total and abnormal compression ratios (zip bombs). Sizes are checked twice: first the
sizes the archive *declares*, then the bytes actually produced while inflating, since a crafted archive can lie
in its headers.

Extraction goes to a private staging directory inside ``dest_dir``; only when every entry has been written are
the files moved into place, so a refusal at any point removes the staging directory and leaves ``dest_dir`` as it
was.
"""
from __future__ import annotations

import bz2  # noqa: F401  (zipfile's bzip2 reader raises OSError from it)
import io
import lzma
import os
import shutil
import stat
import tempfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Protocol

from builder.errors import InvalidAssetError

# Read entries in 1 MiB pieces: small enough to stop a bomb early, large enough to be quick.
CHUNK_BYTES = 1 << 20
# Entries smaller than this are not judged by their compression ratio: tiny text files (an MTL of repeated
# lines) legitimately compress 200:1, and they cannot hurt anyone.
RATIO_MIN_BYTES = 1 << 20


# What reading a damaged entry can raise: bad CRC or headers, truncated or invalid compressed data (zlib, bzip2
# raises OSError, lzma), an unknown compression method. Disk errors while *writing* are not caught.
_READ_ERRORS = (zipfile.BadZipFile, EOFError, NotImplementedError, RuntimeError, ValueError, zlib.error,
                lzma.LZMAError, OSError)


class ZipLimits(Protocol):
    zip_max_files: int
    zip_max_total_bytes: int
    zip_max_ratio: float


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f}"


def safe_member_path(name: str) -> PurePosixPath:
    """The relative path of a zip entry, or :class:`InvalidAssetError` ``zip_unsafe_path``.

    Backslashes count as separators (archives made on Windows); absolute paths, drive letters, ``..`` parts,
    NUL and control characters are refused.
    """
    norm = name.replace("\\", "/")
    bad = (
        not norm.strip("/")
        or norm.startswith("/")
        or (len(norm) >= 2 and norm[1] == ":")
        or any(ord(c) < 32 for c in norm)
    )
    parts = [p for p in norm.split("/") if p not in ("", ".")]
    if bad or any(p == ".." for p in parts) or not parts:
        raise InvalidAssetError("zip_unsafe_path", {"name": name})
    return PurePosixPath(*parts)


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    mode = info.external_attr >> 16
    return stat.S_ISLNK(mode)


def _check_declared(infos: list[zipfile.ZipInfo], limits: ZipLimits) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    """Every check that the central directory alone allows, before a single byte is inflated."""
    if len(infos) > limits.zip_max_files:
        raise InvalidAssetError("zip_too_many_files", {"count": len(infos), "limit": limits.zip_max_files})
    seen: set[str] = set()
    planned: list[tuple[zipfile.ZipInfo, PurePosixPath]] = []
    total = 0
    for info in infos:
        rel = safe_member_path(info.filename)
        if _is_symlink(info):
            raise InvalidAssetError("zip_symlink", {"name": info.filename})
        if info.flag_bits & 0x1:
            raise InvalidAssetError("zip_encrypted", {"name": info.filename})
        key = str(rel).lower()  # case-insensitive file systems would merge these
        if key in seen:
            raise InvalidAssetError("zip_unsafe_path", {"name": info.filename})
        seen.add(key)
        total += info.file_size
        if total > limits.zip_max_total_bytes:
            raise InvalidAssetError(
                "zip_too_large", {"size_mb": _mb(total), "limit_mb": _mb(limits.zip_max_total_bytes)}
            )
        if info.file_size >= RATIO_MIN_BYTES:
            ratio = info.file_size / max(info.compress_size, 1)
            if ratio > limits.zip_max_ratio:
                raise InvalidAssetError(
                    "zip_bomb", {"name": info.filename, "ratio": round(ratio), "limit": limits.zip_max_ratio}
                )
        planned.append((info, rel))
    # Refuse a file that is also used as a directory ("a" and "a/b"): extraction would fail half-way.
    files = {str(rel).lower() for info, rel in planned if not info.is_dir()}
    for info, rel in planned:
        for parent in rel.parents:
            if str(parent) != "." and str(parent).lower() in files:
                raise InvalidAssetError("zip_unsafe_path", {"name": info.filename})
    return planned


def _inflate(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, budget: int, limits: ZipLimits) -> int:
    """Write one entry, counting real bytes; returns the bytes written."""
    written = 0

    def corrupt(exc: BaseException) -> InvalidAssetError:
        return InvalidAssetError("corrupt_file", {"filename": info.filename, "detail": str(exc)[:300]})

    try:
        src = zf.open(info)
    except _READ_ERRORS as exc:
        raise corrupt(exc) from exc
    with src, open(target, "xb") as dst:
        while True:
            try:
                chunk = src.read(CHUNK_BYTES)
            except _READ_ERRORS as exc:
                raise corrupt(exc) from exc
            if not chunk:
                break
            written += len(chunk)
            if written > info.file_size:  # the header lied about the size
                raise InvalidAssetError(
                    "zip_bomb", {"name": info.filename, "ratio": round(written / max(info.compress_size, 1)),
                                 "limit": limits.zip_max_ratio}
                )
            if written > budget:
                raise InvalidAssetError(
                    "zip_too_large",
                    {"size_mb": _mb(limits.zip_max_total_bytes - budget + written),
                     "limit_mb": _mb(limits.zip_max_total_bytes)},
                )
            dst.write(chunk)
    return written


def extract_zip(data: bytes, dest_dir: str | os.PathLike, limits: ZipLimits) -> list[Path]:
    """Extract the zip in ``data`` into ``dest_dir`` (created if missing) and return the files written.

    Returns absolute paths of regular files, sorted. Raises :class:`InvalidAssetError` (codes ``corrupt_file``,
    ``zip_unsafe_path``, ``zip_symlink``, ``zip_encrypted``, ``zip_too_many_files``, ``zip_too_large``,
    ``zip_bomb``); on any refusal ``dest_dir`` is left exactly as it was.
    """
    dest = Path(dest_dir).resolve()
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, ValueError, OSError, EOFError) as exc:
        raise InvalidAssetError("corrupt_file", {"filename": "zip", "detail": str(exc)}) from exc
    with zf:
        planned = _check_declared(zf.infolist(), limits)
        for _, rel in planned:
            top = dest / rel.parts[0]
            if top.exists() or top.is_symlink():
                raise InvalidAssetError("zip_unsafe_path", {"name": str(rel)})
        created_dest = not dest.exists()
        dest.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".safezip-", dir=dest))
        try:
            budget = limits.zip_max_total_bytes
            for info, rel in planned:
                target = staging.joinpath(*rel.parts)
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                budget -= _inflate(zf, info, target, budget, limits)
            moved = []
            for entry in sorted(staging.iterdir()):
                final = dest / entry.name
                entry.rename(final)
                moved.append(final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            if created_dest:
                shutil.rmtree(dest, ignore_errors=True)
            raise
        staging.rmdir()
    return sorted(p for top in moved for p in ([top] if top.is_file() else top.rglob("*")) if p.is_file())
