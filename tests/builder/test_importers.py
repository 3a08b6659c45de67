"""Overlay import: every accepted format of every kind, and each bad input, with fixtures generated in code."""
from __future__ import annotations

import base64
import io
import json
import shutil
import struct
import subprocess
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image

from builder.errors import InvalidAssetError, error_codes
from builder.importers import (
    KIND_FORMATS,
    KINDS,
    InspectedAsset,
    UploadLimits,
    inspect_upload,
    GENERATOR,
    read_glb,
    render_pdf_page,
    sniff_format,
    write_glb,
)
from builder.stock import build_stock_glb

LIMITS = UploadLimits()
RNG_SEED = 20261126


# ------------------------------------------------------------------------------------------------ fixture makers

def image_bytes(fmt: str, size=(64, 32), mode="RGB", **save) -> bytes:
    rng = np.random.default_rng(RNG_SEED)
    arr = rng.integers(0, 255, (size[1], size[0], len(mode)), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr, mode).save(buf, format=fmt, **save)
    return buf.getvalue()


def animation_bytes(fmt: str, frames=4, ms=80, loop=0) -> bytes:
    imgs = [Image.new("RGB", (40, 30), (60 * i % 256, 40, 200 - 40 * i)) for i in range(frames)]
    buf = io.BytesIO()
    imgs[0].save(buf, format=fmt, save_all=True, append_images=imgs[1:], duration=ms, loop=loop)
    return buf.getvalue()


def png_with_header(width: int, height: int) -> bytes:
    """A tiny PNG whose IHDR declares ``width`` × ``height`` (the pixel data is a few bytes)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def pdf_bytes() -> bytes:
    from reportlab.lib.pagesizes import A3, A4
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=A4)
    c.setFont("Helvetica", 24)
    c.drawString(72, 700, "Trang 1")
    c.showPage()
    c.setPageSize(A3)
    c.drawString(72, 1000, "Page 2")
    c.showPage()
    c.save()
    return buf.getvalue()


def box_mesh() -> trimesh.Trimesh:
    return trimesh.creation.box(extents=(0.1, 0.2, 0.3))


def mesh_bytes(file_type: str) -> bytes:
    out = box_mesh().export(file_type=file_type)
    return out.encode() if isinstance(out, str) else out


def obj_zip_bytes(extra: dict[str, bytes] | None = None) -> bytes:
    """A textured quad: model.obj + model.mtl + tex/red.png, zipped as a designer would."""
    obj = (b"mtllib model.mtl\n"
           b"v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\n"
           b"vt 0 0\nvt 1 0\nvt 1 1\nvt 0 1\n"
           b"usemtl paper\nf 1/1 2/2 3/3\nf 1/1 3/3 4/4\n")
    mtl = b"newmtl paper\nKd 1 1 1\nmap_Kd tex/red.png\n"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("model/model.obj", obj)
        zf.writestr("model/model.mtl", mtl)
        zf.writestr("model/tex/red.png", image_bytes("PNG", (16, 16)))
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return buf.getvalue()


def gltf_embedded_bytes() -> bytes:
    doc, binary = read_glb(build_stock_glb("arrow"))
    doc["buffers"][0]["uri"] = "data:application/octet-stream;base64," + base64.b64encode(binary).decode()
    return json.dumps(doc).encode()


def invalid_glb_bytes() -> bytes:
    """A well-formed GLB container whose accessor max disagrees with the data (a validator error)."""
    doc, binary = read_glb(build_stock_glb("arrow"))
    pos = doc["meshes"][0]["primitives"][0]["attributes"]["POSITION"]
    doc["accessors"][pos]["max"] = [9.0, 9.0, 9.0]
    return write_glb(doc, binary)


def ffmpeg(out: Path, *args: str) -> bytes:
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args, str(out)]
    subprocess.run(cmd, check=True, timeout=60)
    return out.read_bytes()


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, bytes]:
    if not shutil.which("ffmpeg"):
        pytest.skip("ffmpeg missing")
    d = tmp_path_factory.mktemp("media")
    video = ["-f", "lavfi", "-i", "testsrc=size=128x64:rate=10:duration=2"]
    tone = ["-f", "lavfi", "-i", "sine=frequency=440:duration=1.5"]
    return {
        "mp4": ffmpeg(d / "v.mp4", *video, *tone, "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac",
                      "-shortest"),
        "webm": ffmpeg(d / "v.webm", "-f", "lavfi", "-i", "testsrc=size=96x64:rate=10:duration=0.5",
                       "-c:v", "libvpx", "-b:v", "200k"),
        "mp3": ffmpeg(d / "a.mp3", *tone, "-c:a", "libmp3lame", "-b:a", "64k"),
        "m4a": ffmpeg(d / "a.m4a", *tone, "-c:a", "aac", "-b:a", "64k"),
        "ogg": ffmpeg(d / "a.ogg", *tone, "-c:a", "libopus", "-b:a", "32k"),
        "wav": ffmpeg(d / "a.wav", *tone, "-c:a", "pcm_s16le"),
        "aac": ffmpeg(d / "a.aac", *tone, "-c:a", "aac", "-b:a", "64k"),
        "mp4_audio_only": ffmpeg(d / "ao.mp4", *tone, "-c:a", "aac", "-f", "mp4"),
    }


def refused(kind, data, filename="upload", limits=LIMITS, **kw) -> InvalidAssetError:
    with pytest.raises(InvalidAssetError) as info:
        inspect_upload(kind, data, filename, limits, **kw)
    return info.value


# ------------------------------------------------------------------------------------------------ errors, limits

def test_error_messages_are_vietnamese_by_default_and_english_on_request():
    err = InvalidAssetError("too_large", {"filename": "a.mp4", "size_mb": "250.0", "limit_mb": "200"})
    assert "quá lớn" in err.message() and "a.mp4" in err.message()
    assert "too large" in err.message("en-GB")
    assert err.to_dict("en") == {"error": "too_large", "message": err.message("en")}
    assert err.http_status == 413


def test_every_error_code_maps_to_a_client_status_and_both_languages():
    for code in error_codes():
        err = InvalidAssetError(code, {})
        assert err.http_status in (400, 413, 415, 422, 503)
        assert err.message("vi") != err.message("en")  # a missing value renders as "?", never raises


def test_limits_from_env_reads_megabytes_and_refuses_nonsense():
    limits = UploadLimits.from_env({"BAONHUNG_MAX_VIDEO_MB": "2.5", "BAONHUNG_MAX_ZIP_FILES": "7",
                                    "BAONHUNG_MAX_IMAGE_MEGAPIXELS": "10"})
    assert limits.max_video_bytes == 2_500_000
    assert limits.zip_max_files == 7 and limits.max_image_pixels == 10_000_000
    assert limits.max_audio_bytes == UploadLimits().max_audio_bytes
    assert UploadLimits.from_env({"BAONHUNG_MAX_MODEL3D_MB": "3"}).max_model_bytes == 3_000_000
    with pytest.raises(ValueError, match="BAONHUNG_MAX_PDF_MB"):
        UploadLimits.from_env({"BAONHUNG_MAX_PDF_MB": "lots"})


def test_unknown_kind_and_empty_file_are_refused_with_400():
    assert refused("hologram", b"x").code == "unknown_kind"
    err = refused("image", b"")
    assert (err.code, err.http_status) == ("empty_file", 400)


def test_every_kind_has_accepted_formats():
    assert set(KINDS) == set(KIND_FORMATS)


# ------------------------------------------------------------------------------------------------ page

@pytest.mark.parametrize("fmt, pil", [("png", "PNG"), ("jpeg", "JPEG")])
def test_page_image_reports_pixels_and_dpi(fmt, pil):
    data = image_bytes(pil, (240, 340), dpi=(300, 300))
    asset = inspect_upload("page", data, "trang1.bin", LIMITS)
    assert (asset.mime, asset.data) == (f"image/{fmt}", data)
    assert asset.meta["width_px"] == 240 and asset.meta["height_px"] == 340
    assert asset.meta["dpi"] == pytest.approx(300, abs=0.5)


@pytest.mark.parametrize("size", [(1, 1), (199, 2000), (2000, 150)])
def test_a_page_image_too_small_to_recognize_is_refused_with_its_size(size):
    """Issue 25's fuzzing: a 1x1 PNG page reached the marker trainer and failed there as a server error."""
    with pytest.raises(InvalidAssetError) as exc:
        inspect_upload("page", image_bytes("PNG", size), "nho.png", LIMITS)
    err = exc.value
    assert (err.code, err.http_status) == ("page_too_small", 400)
    assert f"{size[0]}×{size[1]}" in err.message("vi") and "200 px" in err.message("en")


def test_pdf_page_is_rendered_at_150_dpi_with_size_from_the_pdf():
    pdf = pdf_bytes()
    asset = inspect_upload("page", pdf, "bao.pdf", LIMITS, page_index=1)
    assert asset.mime == "image/png" and asset.data[:8] == b"\x89PNG\r\n\x1a\n"
    assert (asset.meta["width_mm"], asset.meta["height_mm"]) == pytest.approx((297, 420), abs=0.5)
    assert asset.meta["page_count"] == 2 and asset.meta["dpi"] >= 150
    with Image.open(io.BytesIO(asset.data)) as img:
        assert img.width == pytest.approx(297 / 25.4 * 150, abs=1)
    assert asset.derived["source_pdf"] == (pdf, "application/pdf")


def test_render_pdf_page_raises_dpi_to_150_and_refuses_missing_page():
    r = render_pdf_page(pdf_bytes(), 0, dpi=72)
    assert r.dpi == 150 and (r.width_mm, r.height_mm) == pytest.approx((210, 297), abs=0.5)
    err = refused("page", pdf_bytes(), page_index=5)
    assert (err.code, err.values["page_count"]) == ("pdf_page_out_of_range", 2)


def test_rotated_pdf_page_reports_its_displayed_size():
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(pdf_bytes())
    doc[0].set_rotation(90)
    buf = io.BytesIO()
    doc.save(buf)
    r = render_pdf_page(buf.getvalue(), 0)
    assert (r.width_mm, r.height_mm) == pytest.approx((297, 210), abs=0.5)
    assert r.width_px > r.height_px


@pytest.mark.parametrize("rotation", [0, 90])
def test_print_pdf_is_cut_to_its_trim_box_without_bleed_or_marks(rotation):
    import pypdfium2 as pdfium
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=(300, 400))  # points; black bleed everywhere, white finished page inside
    c.setFillGray(0)
    c.rect(0, 0, 300, 400, fill=1, stroke=0)
    c.setFillGray(1)
    c.rect(10, 20, 260, 340, fill=1, stroke=0)
    c.showPage()
    c.save()
    doc = pdfium.PdfDocument(buf.getvalue())
    doc[0].set_trimbox(10, 20, 270, 360)  # unequal margins: a wrong side mapping would leave black
    doc[0].set_rotation(rotation)
    out = io.BytesIO()
    doc.save(out)
    asset = inspect_upload("page", out.getvalue(), "print.pdf", LIMITS)
    size = (260 * 25.4 / 72, 340 * 25.4 / 72)
    assert (asset.meta["width_mm"], asset.meta["height_mm"]) == pytest.approx(size[::-1] if rotation else size, abs=0.1)
    with Image.open(io.BytesIO(asset.data)) as img:
        grey = np.asarray(img.convert("L"))
    edges = np.concatenate([grey[1], grey[-2], grey[:, 1], grey[:, -2]])
    assert edges.min() > 200, "bleed (black) left in the page image"


def test_pdf_too_big_to_render_is_refused_as_image_too_large():
    err = refused("page", pdf_bytes(), limits=UploadLimits(max_image_pixels=1_000_000))
    assert err.code == "image_too_large"


# ------------------------------------------------------------------------------------------------ images

@pytest.mark.parametrize("pil, mime", [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp")])
def test_still_image_formats_are_accepted(pil, mime):
    asset = inspect_upload("image", image_bytes(pil, (50, 20)), "x.gif", LIMITS)
    assert asset.mime == mime and (asset.meta["width"], asset.meta["height"]) == (50, 20)


@pytest.mark.parametrize("kind", ["page", "image"])
def test_sideways_phone_photo_is_stored_upright_without_its_orientation_tag(kind):
    img = Image.new("RGB", (300, 200), "white")  # a page's short side is at least 200 px
    img.paste((255, 0, 0), (0, 0, 50, 50))  # red mark at the stored top-left
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif, quality=95)
    asset = inspect_upload(kind, buf.getvalue(), "phone.jpg", LIMITS)
    with Image.open(io.BytesIO(asset.data)) as out:
        assert out.size == (200, 300) and out.getexif().get(0x0112, 1) == 1
        r, g, b = out.convert("RGB").getpixel((175, 20))  # the mark is now at the top-right
        assert r > 200 and g < 80
    assert asset.meta["exif_orientation_applied"] == 6
    assert (asset.meta.get("width_px") or asset.meta.get("width")) == 200


def test_panorama_flags_a_picture_that_is_not_two_to_one():
    ok = inspect_upload("panorama360", image_bytes("JPEG", (200, 100)), "p.jpg", LIMITS)
    assert ok.meta["equirectangular"] and ok.meta["warnings"] == []
    odd = inspect_upload("panorama360", image_bytes("PNG", (160, 100)), "p.png", LIMITS)
    assert not odd.meta["equirectangular"] and odd.meta["warnings"][0]["code"] == "not_equirectangular"


@pytest.mark.parametrize("pil, mime, fmt", [("GIF", "image/gif", "gif"), ("WEBP", "image/webp", "webp"),
                                            ("PNG", "image/png", "apng")])
def test_animated_images_report_frames_duration_and_loop(pil, mime, fmt):
    asset = inspect_upload("animated_image", animation_bytes(pil, frames=4, ms=80), "a", LIMITS)
    assert asset.mime == mime and asset.meta["format"] == fmt
    assert asset.meta["frames"] == 4 and asset.meta["duration_s"] == pytest.approx(0.32, abs=0.01)
    assert asset.meta["loop"] is True and (asset.meta["width"], asset.meta["height"]) == (40, 30)


@pytest.mark.parametrize("pil", ["GIF", "PNG", "WEBP"])
def test_still_image_uploaded_as_animation_is_refused_clearly(pil):
    err = refused("animated_image", image_bytes(pil, (20, 20)), "still.gif")
    assert err.code == "not_animated" and err.http_status == 422
    assert "ảnh động" in err.message("vi") and "animated" in err.message("en")


def test_gif_is_not_a_still_image_kind():
    assert refused("image", animation_bytes("GIF"), "a.png").code == "unsupported_type"


def test_decompression_bomb_header_is_refused_before_decoding():
    err = refused("image", png_with_header(100_000, 100_000), "bomb.png")
    assert (err.code, err.http_status) == ("image_too_large", 413)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_image_over_the_configured_pixel_limit_is_refused():
    err = refused("page", png_with_header(12_000, 8_000), "big.png")  # 96 MP > 80 MP, under Pillow's own guard
    assert err.code == "image_too_large" and err.values["width"] == 12_000


def test_truncated_png_is_corrupt():
    data = image_bytes("PNG", (64, 64))
    assert refused("image", data[: len(data) // 2], "half.png").code == "corrupt_file"


# ------------------------------------------------------------------------------------------------ wrong type, size

def test_png_named_mp4_is_refused_as_video():
    err = refused("video", image_bytes("PNG"), "clip.mp4")
    assert (err.code, err.http_status) == ("unsupported_type", 415)
    assert err.values["detected"] == "PNG" and "MP4" in err.message("en")


def test_text_named_glb_is_refused_as_model():
    err = refused("model3d", b"hello, this is not a model\n" * 3, "model.glb")
    assert err.code == "unsupported_type" and err.values["detected"] == "text"
    assert "văn bản" in err.message("vi") and "mô hình 3D" in err.message("vi")


def test_file_over_the_kind_limit_is_refused_with_413():
    limits = UploadLimits(max_image_bytes=1000)
    err = refused("image", image_bytes("PNG", (64, 64)), "big.png", limits=limits)
    assert (err.code, err.http_status, err.values["limit"]) == ("too_large", 413, 1000)


def test_sniffing_ignores_the_name_and_reads_the_bytes():
    assert sniff_format(image_bytes("JPEG")) == "jpeg"
    assert sniff_format(build_stock_glb("pin")) == "glb"
    assert sniff_format(mesh_bytes("stl")) == "stl"
    assert sniff_format(mesh_bytes("stl_ascii")) == "stl"
    assert sniff_format(b"\x00\x01garbage") == "unknown"


# ------------------------------------------------------------------------------------------------ 3D models

def test_glb_passes_through_untouched_with_meta():
    data = build_stock_glb("arrow")
    asset = inspect_upload("model3d", data, "arrow.png", LIMITS)
    assert asset.data == data and asset.mime == "model/gltf-binary" and asset.ext == "glb"
    assert asset.meta["triangles"] > 0 and asset.meta["animations"] == 0
    assert asset.meta["bounds_m"][0][1] == pytest.approx(0.0, abs=1e-6)
    assert asset.meta["has_draco"] is False and asset.meta["has_meshopt"] is False


def test_glb_with_validator_warnings_is_accepted_and_the_warnings_are_shown():
    doc, binary = read_glb(build_stock_glb("arrow"))
    doc["materials"][0]["alphaCutoff"] = 0.5  # only meaningful with alphaMode MASK: a validator warning
    asset = inspect_upload("model3d", write_glb(doc, binary), "w.glb", LIMITS)
    warning = next(w for w in asset.meta["warnings"] if w["code"] == "gltf_validator_warnings")
    assert warning["values"]["count"] >= 1 and "ALPHA_CUTOFF" in warning["values"]["first"][0]


def test_a_model_without_a_material_is_accepted_with_a_warning_naming_the_file():
    """Issue 24: such a model renders as glTF's default material, white and fully metallic (nearly black without an
    environment to reflect); the designer is told at upload."""
    doc, binary = read_glb(build_stock_glb("arrow"))
    del doc["materials"]
    for mesh in doc["meshes"]:
        for prim in mesh["primitives"]:
            prim.pop("material", None)
    asset = inspect_upload("model3d", write_glb(doc, binary), "mui-ten.glb", LIMITS)
    assert {"code": "model_no_material", "values": {"filename": "mui-ten.glb"}} in asset.meta["warnings"]


def test_a_model_with_its_materials_gets_no_material_warning():
    asset = inspect_upload("model3d", build_stock_glb("arrow"), "arrow.glb", LIMITS)
    assert "model_no_material" not in {w["code"] for w in asset.meta["warnings"]}


def test_embedded_gltf_passes_through_untouched():
    data = gltf_embedded_bytes()
    asset = inspect_upload("model3d", data, "m.gltf", LIMITS)
    assert asset.data == data and asset.mime == "model/gltf+json"


def test_gltf_with_external_file_is_refused():
    doc, _ = read_glb(build_stock_glb("arrow"))
    doc["buffers"][0]["uri"] = "arrow.bin"
    err = refused("model3d", json.dumps(doc).encode(), "m.gltf")
    assert err.code == "gltf_external_resources" and err.values["uri"] == "arrow.bin"


def test_glb_pointing_at_a_texture_beside_it_is_refused():
    doc, binary = read_glb(build_stock_glb("arrow"))
    doc["images"] = [{"uri": "texture.png"}]
    err = refused("model3d", write_glb(doc, binary), "m.glb")
    assert err.code == "gltf_external_resources" and err.values["uri"] == "texture.png"


@pytest.mark.parametrize("file_type", ["stl", "stl_ascii", "ply", "obj", "dae"])
def test_mesh_formats_are_converted_to_a_clean_glb(file_type):
    asset = inspect_upload("model3d", mesh_bytes(file_type), "box.bin", LIMITS)
    assert asset.mime == "model/gltf-binary" and asset.data[:4] == b"glTF"
    assert asset.meta["triangles"] == 12
    assert asset.meta["size_m"] == pytest.approx([0.1, 0.2, 0.3], abs=1e-6)
    doc, _ = read_glb(asset.data)
    assert "extras" not in json.dumps(doc) and doc["asset"]["generator"] == GENERATOR
    assert asset.meta["validator"]["errors"] == 0


def test_collada_with_a_doctype_is_refused_before_parsing():
    dae = mesh_bytes("dae").replace(b"<COLLADA", b'<!DOCTYPE c [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n<COLLADA', 1)
    err = refused("model3d", dae, "x.dae")
    assert err.code == "corrupt_file" and "DTD" in err.values["detail"]


def test_obj_zip_with_mtl_and_texture_becomes_a_textured_glb():
    asset = inspect_upload("model3d", obj_zip_bytes(), "quad.zip", LIMITS)
    assert asset.meta["source_format"] == "zip/obj" and asset.meta["triangles"] == 2
    doc, _ = read_glb(asset.data)
    assert len(doc.get("images", [])) == 1 and asset.meta["textures"] == 1


def test_gltf_zip_with_side_files_is_packed_into_one_glb():
    doc, binary = read_glb(build_stock_glb("info"))
    doc["buffers"][0]["uri"] = "info%20data.bin"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("info.gltf", json.dumps(doc))
        zf.writestr("info data.bin", binary)
    asset = inspect_upload("model3d", buf.getvalue(), "info.zip", LIMITS)
    assert asset.data[:4] == b"glTF" and asset.meta["source_format"] == "zip/gltf"
    assert asset.meta["triangles"] == inspect_upload("model3d", build_stock_glb("info"), "i", LIMITS).meta["triangles"]


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_texture_declaring_too_many_pixels_is_refused_in_a_glb_and_in_a_zip():
    doc, binary = read_glb(build_stock_glb("arrow"))
    huge = png_with_header(12_000, 8_000)  # 96 MP header, a few bytes of data
    doc["bufferViews"].append({"buffer": 0, "byteOffset": len(binary), "byteLength": len(huge)})
    doc["images"] = [{"bufferView": len(doc["bufferViews"]) - 1, "mimeType": "image/png", "name": "giant"}]
    binary += huge
    doc["buffers"][0]["byteLength"] = len(binary)
    err = refused("model3d", write_glb(doc, binary), "tex.glb")
    assert err.code == "image_too_large" and "giant" in err.values["filename"]
    zipped = obj_zip_bytes({"model/tex/huge.png": huge})
    err = refused("model3d", zipped, "tex.zip")
    assert err.code == "image_too_large" and "huge.png" in err.values["filename"]


def test_zip_with_two_models_or_none_is_refused():
    two = obj_zip_bytes({"other.stl": mesh_bytes("stl")})
    assert refused("model3d", two, "two.zip").code == "zip_multiple_models"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("readme.txt", "no model")
    assert refused("model3d", buf.getvalue(), "none.zip").code == "zip_no_model"


def test_zip_with_parent_path_is_refused_at_upload():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("../evil.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    assert refused("model3d", buf.getvalue(), "evil.zip").code == "zip_unsafe_path"


def test_zip_with_a_symlink_or_a_bomb_is_refused_at_upload():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("model.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
        link = zipfile.ZipInfo("tex.png")
        link.external_attr = (0o120777) << 16  # S_IFLNK
        zf.writestr(link, "/etc/passwd")
    assert refused("model3d", buf.getvalue(), "link.zip").code == "zip_symlink"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("model.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
        zf.writestr("padding.bin", b"\0" * 30_000_000)
    err = refused("model3d", buf.getvalue(), "bomb.zip")
    assert (err.code, err.http_status) == ("zip_bomb", 413)


@pytest.mark.parametrize("obj, why", [
    (b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 9\n", "face refers"),
    (b"v 0 0 zero\nv 1 0 0\nv 0 1 0\nf 1 2 3\n", "line 1"),
])
def test_malformed_obj_is_corrupt_with_the_line(obj, why):
    err = refused("model3d", obj, "bad.obj")
    assert err.code == "corrupt_file" and why in err.values["detail"]


def test_obj_without_faces_is_an_empty_model():
    assert refused("model3d", b"v 0 0 0\nv 1 0 0\n", "points.obj").code == "model_empty"


@pytest.mark.parametrize("wrap", ["gltf", "glb"])
def test_absurdly_nested_gltf_json_is_corrupt_not_a_crash(wrap):
    deep = b'{"asset":' + b"[" * 100_000 + b"]" * 100_000 + b"}"  # json.loads hits RecursionError
    data = deep
    if wrap == "glb":  # the same JSON as a GLB's JSON chunk
        body = deep + b" " * (-len(deep) % 4)
        data = struct.pack("<III", 0x46546C67, 2, 20 + len(body)) + struct.pack("<II", len(body), 0x4E4F534A) + body
    assert refused("model3d", data, "deep").code == "corrupt_file"


def test_truncated_glb_is_corrupt():
    data = build_stock_glb("pin")
    err = refused("model3d", data[:-100], "cut.glb")
    assert err.code == "corrupt_file" and "says" in err.values["detail"]


def test_glb_failing_validation_is_refused_with_the_validators_messages():
    err = refused("model3d", invalid_glb_bytes(), "bad.glb")
    assert (err.code, err.http_status) == ("gltf_invalid", 422)
    assert err.values["errors"] >= 1 and "ACCESSOR_MAX_MISMATCH" in err.message("en")
    assert err.values["messages"] and all(isinstance(m, str) for m in err.values["messages"])


def _grid_obj(n: int) -> bytes:
    """An OBJ of an n x n vertex grid: 2 (n-1)² triangles."""
    lines = [f"v {i % n} {i // n} 0" for i in range(n * n)]
    for y in range(n - 1):
        for x in range(n - 1):
            a = y * n + x + 1
            lines.append(f"f {a} {a + 1} {a + n}")
            lines.append(f"f {a + 1} {a + n + 1} {a + n}")
    return ("\n".join(lines) + "\n").encode()


def test_a_model_over_the_triangle_limit_is_refused_before_it_is_converted(monkeypatch):
    """Issue 25: a 16 MB OBJ of 2 M faces was accepted (+590 MB) and its bundle work ran for 22+ minutes."""
    import time

    import builder.importers.model as importers  # the model inspector looks these names up in its module

    limits = UploadLimits(max_model_triangles=1000)
    monkeypatch.setattr(importers, "_trimesh_to_glb", lambda *a, **k: pytest.fail("converted before the check"))
    err = refused("model3d", _grid_obj(40), "dense.obj", limits)  # 3,042 triangles
    assert (err.code, err.http_status) == ("model_too_many_triangles", 422)
    assert "1,000" in err.message("en") and "tam giác" in err.message("vi")
    ply = b"ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nelement face 5000\nend_header\n" + b"0" * 9000
    assert refused("model3d", ply, "dense.ply", limits).code == "model_too_many_triangles"
    stl = b"\0" * 80 + (5000).to_bytes(4, "little") + b"\0" * (50 * 5000)
    assert refused("model3d", stl, "dense.stl", limits).code == "model_too_many_triangles"
    t0 = time.monotonic()
    big = _grid_obj(720)  # 1.03 M triangles (~30 MB) at the default limit of 500,000
    assert refused("model3d", big, "scan.obj").code == "model_too_many_triangles"
    assert time.monotonic() - t0 < 30


def test_a_glb_over_the_triangle_limit_is_refused_before_validation(monkeypatch):
    import builder.importers.model as importers  # the model inspector looks these names up in its module

    monkeypatch.setattr(importers, "validate_gltf", lambda *a, **k: pytest.fail("validated before the check"))
    glb = build_stock_glb("pin")
    err = refused("model3d", glb, "pin.glb", UploadLimits(max_model_triangles=10))
    assert err.code == "model_too_many_triangles"


def test_the_triangle_limit_is_configurable():
    assert UploadLimits.from_env({"BAONHUNG_MAX_MODEL_TRIANGLES": "200000"}).max_model_triangles == 200_000
    with pytest.raises(ValueError, match="BAONHUNG_MAX_MODEL_TRIANGLES"):
        UploadLimits.from_env({"BAONHUNG_MAX_MODEL_TRIANGLES": "-1"})


def test_ply_declaring_more_elements_than_bytes_is_corrupt():
    ply = b"ply\nformat binary_little_endian 1.0\nelement vertex 900000000\nproperty float x\nend_header\n\0\0"
    assert refused("model3d", ply, "bomb.ply").code == "corrupt_file"


# ------------------------------------------------------------------------------------------------ video, audio

def test_mp4_video_gives_duration_size_audio_flag_and_a_poster_about_one_second_in(media):
    asset = inspect_upload("video", media["mp4"], "clip.png", LIMITS)
    m = asset.meta
    assert asset.mime == "video/mp4" and asset.data == media["mp4"]
    assert m["duration_s"] == pytest.approx(2.0, abs=0.2) and (m["width"], m["height"]) == (128, 64)
    assert m["has_audio"] is True and m["codec"] == "h264"
    assert m["poster_time_s"] == pytest.approx(1.0, abs=0.15)
    poster, mime = asset.derived["poster"]
    assert mime == "image/png"
    with Image.open(io.BytesIO(poster)) as img:
        assert img.size == (128, 64)


def test_short_webm_gets_its_first_frame_as_poster(media):
    asset = inspect_upload("video", media["webm"], "clip.webm", LIMITS)
    assert asset.mime == "video/webm" and asset.meta["has_audio"] is False
    assert asset.meta["poster_time_s"] == pytest.approx(0.0, abs=0.01) and asset.meta["codec"] == "vp8"


def test_audio_only_mp4_is_not_a_video_but_is_audio(media):
    assert refused("video", media["mp4_audio_only"], "x.mp4").code == "unsupported_type"
    asset = inspect_upload("audio", media["mp4_audio_only"], "x.mp4", LIMITS)
    assert asset.mime == "audio/mp4" and asset.ext == "m4a"


@pytest.mark.parametrize("name, mime, codec", [
    ("mp3", "audio/mpeg", "mp3"), ("m4a", "audio/mp4", "aac"), ("ogg", "audio/ogg", "opus"),
    ("wav", "audio/wav", "pcm_s16le"), ("aac", "audio/aac", "aac"),
])
def test_audio_formats_report_duration_and_codec(media, name, mime, codec):
    asset = inspect_upload("audio", media[name], "sound.mp4", LIMITS)
    assert asset.mime == mime and asset.meta["codec"].startswith(codec)
    assert asset.meta["duration_s"] == pytest.approx(1.5, abs=0.15) and asset.meta["warnings"] == []


def test_video_uploaded_as_audio_is_refused(media):
    assert refused("audio", media["mp4"], "song.mp3").code == "unsupported_type"


def test_panorama_video_is_accepted_and_checked_for_two_to_one(media):
    asset = inspect_upload("panorama360", media["mp4"], "360.mp4", LIMITS)
    assert asset.meta["equirectangular"] is True and "poster" in asset.derived


def test_video_frame_over_the_pixel_limit_is_refused_before_decoding(media):
    err = refused("video", media["mp4"], "big.mp4", limits=UploadLimits(max_image_pixels=5000))
    assert err.code == "image_too_large" and (err.values["width"], err.values["height"]) == (128, 64)


def test_truncated_mp4_is_corrupt(media):
    data = media["mp4"][:200]
    assert refused("video", data, "cut.mp4").code == "corrupt_file"


def test_inspected_asset_is_frozen():
    asset = inspect_upload("image", image_bytes("PNG"), "x", LIMITS)
    assert isinstance(asset, InspectedAsset)
    with pytest.raises(AttributeError):
        asset.mime = "text/html"


def test_compressed_glbs_from_gltf_transform_are_accepted_with_their_flags_and_true_bounds(tmp_path):
    cli = Path(__file__).resolve().parents[2] / "node_modules" / ".bin" / "gltf-transform"
    src = tmp_path / "pin.glb"
    src.write_bytes(build_stock_glb("pin"))
    expected = inspect_upload("model3d", src.read_bytes(), "pin.glb", LIMITS).meta["bounds_m"]
    for command, flag in (("meshopt", "has_meshopt"), ("draco", "has_draco")):
        out = tmp_path / f"pin_{command}.glb"
        subprocess.run([str(cli), command, str(src), str(out)], check=True, capture_output=True, timeout=120)
        meta = inspect_upload("model3d", out.read_bytes(), out.name, LIMITS).meta
        assert meta[flag] is True
        assert np.allclose(meta["bounds_m"], expected, atol=5e-4)  # quantized positions are dequantized


def test_obj_with_unusual_statements_is_still_recognized():
    obj = b"# exported\nmtllib x.mtl\no thing\nv 0 0 0\nv 1 0 0\nv 0 1 0\nvn 0 0 1\ns off\nusemtl m\nf 1//1 2//1 3//1\n"
    assert sniff_format(obj) == "obj"
    assert sniff_format(b"hello world\nthis is a letter\nv 1 2 3\n") == "text"


def _mutations(data: bytes, count: int, seed: int):
    """Seeded damaged copies of ``data``: flipped bytes, truncations and inserted junk (headers kept)."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        b = bytearray(data)
        if i % 3 == 0:
            for pos in rng.integers(16, len(b), size=int(rng.integers(1, 8))):
                b[pos] = int(rng.integers(0, 256))
        elif i % 3 == 1:
            b = b[: int(rng.integers(8, len(b)))]
        else:
            pos = int(rng.integers(16, len(b)))
            b[pos:pos] = rng.integers(0, 256, size=int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
        yield bytes(b)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_damaged_files_give_typed_errors_never_crashes(media):
    # A fuzz pass (150 mutations per format) once found struct.error, IndexError, zlib.error, PdfiumError,
    # NotImplementedError and AttributeError escaping as 500s; this seeded sample keeps them out.
    samples = [
        ("image", image_bytes("PNG", (24, 24)), 24), ("image", image_bytes("JPEG", (24, 24)), 24),
        ("image", image_bytes("WEBP", (24, 24)), 24), ("animated_image", animation_bytes("GIF"), 30),
        ("animated_image", animation_bytes("WEBP"), 24), ("animated_image", animation_bytes("PNG"), 24),
        ("page", pdf_bytes(), 24), ("model3d", obj_zip_bytes(), 12), ("model3d", mesh_bytes("ply"), 3),
        ("video", media["mp4"], 24), ("video", media["webm"], 24), ("audio", media["mp3"], 6),
        ("audio", media["ogg"], 6),
    ]
    outcomes = {"accepted": 0, "refused": 0}
    for seed, (kind, data, count) in enumerate(samples):
        for damaged in _mutations(data, count, seed):
            try:
                inspect_upload(kind, damaged, "damaged", LIMITS)
                outcomes["accepted"] += 1
            except InvalidAssetError as err:
                assert err.http_status in (400, 413, 415, 422)
                outcomes["refused"] += 1
    assert outcomes["refused"] > 30  # the mutations really damage files


@pytest.mark.parametrize("fmt", ["stl", "ply", "obj"])
def test_a_colourless_mesh_file_is_converted_with_a_matte_material_and_no_warning(fmt):
    """STL has no materials at all: converted as is it drew as glTF's white metal and every STL upload warned about
    a material the designer could not have given it. It gets a light grey matte one instead."""
    data = trimesh.creation.box(extents=(0.1, 0.1, 0.1)).export(file_type=fmt)
    asset = inspect_upload("model3d", data if isinstance(data, bytes) else data.encode(), f"hop.{fmt}", LIMITS)
    assert "model_no_material" not in {w["code"] for w in asset.meta["warnings"]}
    doc, _ = read_glb(asset.data)
    prims = [p for mesh in doc["meshes"] for p in mesh["primitives"]]
    assert prims and all("material" in p for p in prims)
    pbr = doc["materials"][prims[0]["material"]]["pbrMetallicRoughness"]
    assert pbr.get("metallicFactor", 1.0) == 0.0 and pbr["baseColorFactor"][:3] == pytest.approx([200 / 255] * 3, abs=0.01)
