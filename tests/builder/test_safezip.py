"""Safe zip extraction: good archives extract, hostile ones are refused and leave nothing behind."""
from __future__ import annotations

import io
import stat
import struct
import zipfile
from pathlib import Path

import pytest

from builder.http_errors import status_for
from builder.errors import InvalidAssetError
from builder.importers import UploadLimits
from builder.safezip import extract_zip, safe_member_path

LIMITS = UploadLimits()


def make_zip(entries: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def refuse(data: bytes, dest: Path, limits=LIMITS) -> InvalidAssetError:
    before = sorted(dest.rglob("*")) if dest.exists() else None
    with pytest.raises(InvalidAssetError) as info:
        extract_zip(data, dest, limits)
    after = sorted(dest.rglob("*")) if dest.exists() else None
    assert after == before, "a refused zip left files behind"
    return info.value


def test_good_zip_extracts_files_in_subfolders(tmp_path):
    files = extract_zip(make_zip({"m/model.obj": b"v 0 0 0\n", "m/tex/a.png": b"png", "readme.txt": b"hi"}),
                        tmp_path / "out", LIMITS)
    assert [p.relative_to(tmp_path / "out").as_posix() for p in files] == ["m/model.obj", "m/tex/a.png", "readme.txt"]
    assert (tmp_path / "out/m/tex/a.png").read_bytes() == b"png"
    assert not list((tmp_path / "out").glob(".safezip-*"))  # the staging folder is gone


@pytest.mark.parametrize("name", ["../evil.txt", "a/../../evil.txt", "..\\evil.txt", "/etc/evil", "C:/evil.txt",
                                  "a/\x01b"])
def test_unsafe_paths_are_refused(tmp_path, name):
    assert refuse(make_zip({"ok.txt": b"1", name: b"x"}), tmp_path / "out").code == "zip_unsafe_path"
    assert not (tmp_path / "evil.txt").exists()


def test_unsafe_path_is_refused_when_dest_already_has_files(tmp_path):
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    err = refuse(make_zip({"fine.txt": b"1", "../../x": b"2"}), dest)
    assert err.code == "zip_unsafe_path" and (dest / "keep.txt").read_text() == "mine"


def test_symlink_entry_is_refused(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("model.obj", b"v 0 0 0\n")
        link = zipfile.ZipInfo("texture.png")
        link.create_system = 3
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
    err = refuse(buf.getvalue(), tmp_path / "out")
    assert err.code == "zip_symlink" and err.values["name"] == "texture.png"


def test_too_many_files_is_refused(tmp_path):
    data = make_zip({f"f{i}.txt": b"x" for i in range(6)})
    err = refuse(data, tmp_path / "out", UploadLimits(zip_max_files=5))
    assert (err.code, status_for(err)) == ("zip_too_many_files", 413)


def test_declared_total_over_the_limit_is_refused(tmp_path):
    data = make_zip({"a.bin": b"a" * 3000, "b.bin": b"b" * 3000}, zipfile.ZIP_STORED)
    assert refuse(data, tmp_path / "out", UploadLimits(zip_max_total_bytes=5000)).code == "zip_too_large"


def test_zip_bomb_ratio_is_refused_before_inflating(tmp_path):
    data = make_zip({"bomb.bin": b"\0" * 20_000_000})  # 20 MB of zeros deflate to ~20 KB (≈1000:1)
    assert len(data) < 100_000
    err = refuse(data, tmp_path / "out")
    assert (err.code, status_for(err)) == ("zip_bomb", 413)


def _lie_about_size(data: bytes, name: bytes, declared: int) -> bytes:
    """Patch the uncompressed size of entry ``name`` in both the local header and the central directory."""
    out = bytearray(data)
    local = out.find(b"PK\x03\x04")
    while local >= 0:
        name_len = struct.unpack_from("<H", out, local + 26)[0]
        if out[local + 30: local + 30 + name_len] == name:
            struct.pack_into("<I", out, local + 22, declared)
        local = out.find(b"PK\x03\x04", local + 4)
    central = out.find(b"PK\x01\x02")
    while central >= 0:
        name_len = struct.unpack_from("<H", out, central + 28)[0]
        if out[central + 46: central + 46 + name_len] == name:
            struct.pack_into("<I", out, central + 24, declared)
        central = out.find(b"PK\x01\x02", central + 4)
    return bytes(out)


def test_entry_larger_than_its_declared_size_is_refused(tmp_path):
    # Declared sizes pass every check (2 × 1000 bytes ≤ 2500, ratio < 100) but the real payload is 600 KB.
    # Inflation stops at the declared size, so the entry's CRC cannot match: refused, nothing written.
    payload = bytes((i * 7919) % 251 for i in range(300_000))  # poorly compressible
    data = make_zip({"a.bin": payload, "b.bin": payload})
    data = _lie_about_size(_lie_about_size(data, b"a.bin", 1000), b"b.bin", 1000)
    err = refuse(data, tmp_path / "out", UploadLimits(zip_max_total_bytes=2500))
    assert err.code == "corrupt_file" and "CRC" in err.values["detail"]
    assert not (tmp_path / "out").exists()


def test_encrypted_entry_is_refused(tmp_path):
    data = bytearray(make_zip({"secret.txt": b"x" * 100}))
    for sig, off in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):  # set the "encrypted" flag bit
        pos = data.find(sig)
        struct.pack_into("<H", data, pos + off, struct.unpack_from("<H", data, pos + off)[0] | 1)
    assert refuse(bytes(data), tmp_path / "out").code == "zip_encrypted"


def test_duplicate_and_file_as_folder_names_are_refused(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("a.txt", b"1")
        zf.writestr("A.TXT", b"2")
    assert refuse(buf.getvalue(), tmp_path / "o1").code == "zip_unsafe_path"
    assert refuse(make_zip({"a": b"1", "a/b": b"2"}), tmp_path / "o2").code == "zip_unsafe_path"


def test_corrupt_zip_and_bad_crc_are_corrupt(tmp_path):
    assert refuse(b"PK\x03\x04 definitely not a zip", tmp_path / "o1").code == "corrupt_file"
    data = bytearray(make_zip({"a.txt": b"hello world" * 10}, zipfile.ZIP_STORED))
    data[data.find(b"hello")] ^= 0xFF  # flip a stored byte: CRC mismatch while reading
    assert refuse(bytes(data), tmp_path / "o2").code == "corrupt_file"


def test_existing_name_in_dest_is_not_overwritten(tmp_path):
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "model.obj").write_text("old")
    assert refuse(make_zip({"model.obj": b"new"}), dest).code == "zip_unsafe_path"
    assert (dest / "model.obj").read_text() == "old"


def test_safe_member_path_normalizes_dots_and_backslashes():
    assert safe_member_path("./a\\b/./c.txt").as_posix() == "a/b/c.txt"


def test_inflate_counts_real_bytes_even_if_the_zip_reader_trusted_the_header(tmp_path):
    # Defence in depth: if a zip reader ever produced more bytes than declared, extraction stops at once.
    from builder import safezip

    class LyingReader:
        def open(self, info):
            return io.BytesIO(b"x" * (3 * safezip.CHUNK_BYTES))

    info = zipfile.ZipInfo("big.bin")
    info.file_size, info.compress_size = 1000, 10
    with pytest.raises(InvalidAssetError) as err:
        safezip._inflate(LyingReader(), info, tmp_path / "big.bin", budget=10_000_000, limits=LIMITS)
    assert err.value.code == "zip_bomb"
    info.file_size = 10 * safezip.CHUNK_BYTES  # honest-looking header, but over the remaining total budget
    with pytest.raises(InvalidAssetError) as err:
        safezip._inflate(LyingReader(), info, tmp_path / "big2.bin", budget=safezip.CHUNK_BYTES, limits=LIMITS)
    assert err.value.code == "zip_too_large"
