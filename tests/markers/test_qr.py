"""Single QR exports (SVG, PDF, PNG): decoded back by an independent decoder, vector, K-only, print rules."""
import base64
import io
import math
import re
import subprocess
import xml.etree.ElementTree as ET
import zlib

import cairosvg
import cv2
import numpy as np
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
import pytest
import zxingcpp
from PIL import Image, ImageDraw

from markers.qr import (
    LOGO_MAX_AREA_SHARE,
    MIN_SIZE_MM,
    PT_PER_MM,
    make_symbol,
    qr_layout,
    qr_pdf,
    qr_png,
    qr_print_checks,
    qr_svg,
)

URL = "https://baonhung.vn/v/K7MX4QZ"
DPI = 300
EXPORTS = {"svg": qr_svg, "pdf": qr_pdf, "png": qr_png}


# ------------------------------------------------------------------------------------------------ helpers
def rasterize(kind: str, data: bytes) -> np.ndarray:
    """Grey uint8 raster at 300 dpi: SVG via cairosvg, PDF via pypdfium2, PNG as is."""
    if kind == "svg":
        image = Image.open(io.BytesIO(cairosvg.svg2png(bytestring=data, dpi=DPI, background_color="white")))
    elif kind == "pdf":
        page = pdfium.PdfDocument(data)[0]
        image = page.render(scale=DPI / 72).to_pil()
    else:
        image = Image.open(io.BytesIO(data))
    return np.asarray(image.convert("L"))


def pdftoppm(pdf: bytes, tmp_path) -> list[np.ndarray]:
    """Rasterize every page with poppler at 300 dpi (grey)."""
    src = tmp_path / "in.pdf"
    src.write_bytes(pdf)
    subprocess.run(["pdftoppm", "-r", str(DPI), "-gray", "-png", str(src), str(tmp_path / "page")], check=True)
    return [np.asarray(Image.open(p).convert("L")) for p in sorted(tmp_path.glob("page*.png"))]


def decode(gray: np.ndarray) -> list[str]:
    return [b.text for b in zxingcpp.read_barcodes(gray) if b.format == zxingcpp.BarcodeFormat.QRCode]


def perspective_and_blur(gray: np.ndarray, tilt_deg=15.0, sigma=1.2) -> np.ndarray:
    """The raster as a phone sees a print tilted ``tilt_deg`` about its vertical axis (pinhole camera at
    1.5 × the image size), then Gaussian-blurred with ``sigma`` px."""
    pad = gray.shape[0] // 4
    gray = cv2.copyMakeBorder(gray, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=255)
    h, w = gray.shape
    f = 1.5 * max(w, h)
    t = math.radians(tilt_deg)
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    dst = []
    for x, y in src:
        X, Y = x - w / 2, y - h / 2
        Xr, Zr = X * math.cos(t), X * math.sin(t)  # rotate the paper about its vertical centre line
        dst.append([w / 2 + f * Xr / (f + Zr), h / 2 + f * Y / (f + Zr)])
    H = cv2.getPerspectiveTransform(src, np.float32(dst))
    warped = cv2.warpPerspective(gray, H, (w, h), flags=cv2.INTER_LINEAR, borderValue=255)
    return cv2.GaussianBlur(warped, (0, 0), sigma)


def pdf_content(pdf: bytes) -> str:
    """Concatenated content streams of a reportlab PDF (filters ASCII85 + Flate undone)."""
    out = []
    for header, raw in re.findall(rb"<<(.*?)>>\s*stream\r?\n(.*?)\s*endstream", pdf, re.S):
        if b"ASCII85Decode" in header:
            raw = base64.a85decode(raw.strip(), adobe=True)
        if b"FlateDecode" in header:
            raw = zlib.decompress(raw)
        out.append(raw.decode("latin-1"))
    assert out, "no content stream found"
    return "\n".join(out)


def page_object_counts(pdf: bytes, index=0) -> dict[str, int]:
    page = pdfium.PdfDocument(pdf)[index]
    counts = {"path": 0, "image": 0, "text": 0}
    for obj in page.get_objects():
        kind = {pdfium_c.FPDF_PAGEOBJ_PATH: "path", pdfium_c.FPDF_PAGEOBJ_IMAGE: "image",
                pdfium_c.FPDF_PAGEOBJ_TEXT: "text"}.get(obj.type)
        if kind:
            counts[kind] += 1
    return counts


def make_logo(seed=3) -> bytes:
    rng = np.random.default_rng(seed)
    image = Image.new("RGBA", (240, 240), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.ellipse((8, 8, 232, 232), fill=tuple(int(v) for v in rng.integers(0, 200, 3)) + (255,))
    draw.rectangle((80, 60, 160, 180), fill=(255, 255, 255, 255))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


# ----------------------------------------------------------------------------------------------- decoding
@pytest.mark.parametrize("kind", sorted(EXPORTS))
@pytest.mark.parametrize("size_mm,ecc", [(MIN_SIZE_MM, "L"), (MIN_SIZE_MM, "M"), (30, "H")])
def test_export_decodes_to_the_deep_link_at_300_dpi(kind, size_mm, ecc):
    assert decode(rasterize(kind, EXPORTS[kind](URL, size_mm, ecc))) == [URL]


@pytest.mark.parametrize("kind", sorted(EXPORTS))
@pytest.mark.parametrize("ecc", ["L", "M"])
def test_minimum_size_export_survives_blur_and_15_degree_perspective(kind, ecc):
    gray = rasterize(kind, EXPORTS[kind](URL, MIN_SIZE_MM, ecc))
    degraded = perspective_and_blur(gray)
    assert not np.array_equal(degraded.shape, gray.shape)  # the warp really happened (padded canvas)
    assert decode(degraded) == [URL]


def test_pdf_rasterized_by_poppler_decodes(tmp_path):
    pages = pdftoppm(qr_pdf(URL, MIN_SIZE_MM, "M"), tmp_path)
    assert len(pages) == 1
    assert decode(pages[0]) == [URL]
    assert decode(perspective_and_blur(pages[0])) == [URL]


# --------------------------------------------------------------------------------------- vector, K only
def test_pdf_draws_modules_as_k_only_vector_paths_without_images():
    layout = qr_layout(URL, 20, "M")
    pdf = qr_pdf(URL, 20, "M")
    counts = page_object_counts(pdf)
    assert counts["image"] == 0
    assert counts["path"] >= 1
    content = pdf_content(pdf)
    runs = list(layout.runs())
    assert content.count(" re") == len(runs) + 1  # one rectangle per run of dark modules + white background
    assert re.search(r"\bf\*?\b", content)  # filled, not stroked
    assert "0 0 0 1 k" in content  # CMYK pure K for the modules
    assert " rg" not in content and " g\n" not in content  # no RGB or grey fills sneaking in


def test_pdf_page_is_the_symbol_with_its_quiet_zone():
    for size_mm in (15, 20, 42.5):
        check = qr_print_checks(URL, size_mm, "M")
        width, height = pdfium.PdfDocument(qr_pdf(URL, size_mm, "M"))[0].get_size()
        assert width == pytest.approx(check.total_mm * PT_PER_MM, abs=0.01)
        assert height == pytest.approx(width, abs=0.01)
        assert check.total_mm == pytest.approx(size_mm * (check.modules + 8) / check.modules)


def test_svg_is_one_black_path_sized_in_millimetres():
    svg = qr_svg(URL, 20, "M")
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    check = qr_print_checks(URL, 20, "M")
    assert root.get("width") == f"{check.total_mm:.4f}".rstrip("0").rstrip(".") + "mm"
    assert root.get("viewBox") == f"0 0 {check.modules + 8} {check.modules + 8}"
    paths = root.findall(f"{ns}path")
    assert len(paths) == 1 and paths[0].get("fill") == "#000000"
    assert paths[0].get("d").count("z") == len(list(qr_layout(URL, 20, "M").runs()))
    assert root.findall(f"{ns}image") == []
    fills = set(re.findall(rb'fill="([^"]+)"', svg))
    assert fills == {b"#000000", b"#ffffff"}


def test_png_has_300_dpi_pixel_size_metadata_and_only_pure_black_modules():
    size_mm = 20
    png = qr_png(URL, size_mm, "M")
    image = Image.open(io.BytesIO(png))
    check = qr_print_checks(URL, size_mm, "M")
    expected_px = round(check.total_mm / 25.4 * DPI)
    assert image.size == (expected_px, expected_px)
    assert image.info["dpi"] == pytest.approx((DPI, DPI), abs=0.01)
    pixels = np.asarray(image.convert("L"))
    assert set(np.unique(pixels)) == {0, 255}
    # sample every module centre: black exactly where the symbol has a dark module
    n = check.modules + 8
    centres = ((np.arange(n) + 0.5) * expected_px / n).astype(int)
    sampled = pixels[np.ix_(centres, centres)] == 0
    expected = np.zeros((n, n), bool)
    expected[4:-4, 4:-4] = make_symbol(URL, "M").dark
    assert np.array_equal(sampled, expected)


def test_png_pixel_size_follows_dpi():
    small = Image.open(io.BytesIO(qr_png(URL, 20, "M", dpi=300)))
    large = Image.open(io.BytesIO(qr_png(URL, 20, "M", dpi=600)))
    assert abs(large.size[0] - 2 * small.size[0]) <= 1
    with pytest.raises(ValueError):
        qr_png(URL, 20, "M", dpi=10)


def test_exports_are_byte_for_byte_reproducible():
    for export in EXPORTS.values():
        assert export(URL, 20, "Q") == export(URL, 20, "Q")


# ------------------------------------------------------------------------------------------- print rules
@pytest.mark.parametrize("kind", sorted(EXPORTS))
def test_exports_refuse_sizes_under_15_mm(kind):
    with pytest.raises(ValueError, match="15 mm"):
        EXPORTS[kind](URL, 14.9, "M")
    assert EXPORTS[kind](URL, 15, "M")


@pytest.mark.parametrize("kind", sorted(EXPORTS))
def test_exports_refuse_sizes_over_200_mm_at_once(kind):
    """Issue 25: 1,000 mm took 11 s and 2.5 GB as a PNG, 10,000 mm asked for 169 GiB."""
    for size in (200.1, 1000, 10000, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="200 mm"):
            EXPORTS[kind](URL, size, "M")


@pytest.mark.parametrize("kind", sorted(EXPORTS))
def test_exports_refuse_a_quiet_zone_under_4_modules(kind):
    with pytest.raises(ValueError, match="quiet zone"):
        EXPORTS[kind](URL, 20, "M", None, 3)


def test_exports_refuse_unknown_ecc_and_empty_data():
    with pytest.raises(ValueError):
        qr_svg(URL, 20, "X")
    with pytest.raises(ValueError):
        qr_pdf("", 20, "M")


def test_print_checks_pass_a_short_link_at_minimum_size():
    check = qr_print_checks(URL, 15, "M")
    assert check.warnings == () and check.ok
    assert check.module_mm == pytest.approx(15 / check.modules)
    assert check.module_mm >= 0.4
    assert check.quiet_zone_modules == 4


def test_print_checks_warn_on_small_modules_and_short_quiet_zone():
    long_link = "https://baonhung.vn/v/K7MX4QZ?utm_source=print&utm_medium=qr&utm_campaign=" + "x" * 60
    check = qr_print_checks(long_link, 15, "H", border_modules=2)
    assert check.module_mm < 0.4
    assert set(check.warnings) == {"module_too_small", "quiet_zone_too_small"}
    vi, en = check.messages("vi"), check.messages("en")
    assert any("Mô-đun" in m and "0.4" in m for m in vi)
    assert any("Module" in m for m in en) and any("Quiet zone 2 modules" in m for m in en)
    assert "size_below_minimum" in qr_print_checks(URL, 12, "M").warnings


def test_print_check_summary_reports_module_size_and_quiet_zone():
    check = qr_print_checks(URL, 20, "M")
    assert f"mô-đun {check.module_mm:.2f} mm" in check.summary("vi")
    assert "vùng trống 4 mô-đun" in check.summary("vi")
    assert "quiet zone 4 modules" in check.summary("en")


# ---------------------------------------------------------------------------------------------------- logo
@pytest.mark.parametrize("kind", sorted(EXPORTS))
@pytest.mark.parametrize("ecc", ["L", "M"])
def test_logo_is_refused_at_low_error_correction(kind, ecc):
    with pytest.raises(ValueError, match="Q or H"):
        EXPORTS[kind](URL, 20, ecc, make_logo())


def test_logo_larger_than_the_level_tolerates_is_refused():
    with pytest.raises(ValueError, match="tolerates"):
        qr_svg(URL, 20, "Q", make_logo(), logo_share=LOGO_MAX_AREA_SHARE["H"])
    with pytest.raises(ValueError, match="tolerates"):
        qr_pdf(URL, 20, "H", make_logo(), logo_share=0.3)


def test_logo_must_be_a_png():
    with pytest.raises(ValueError, match="PNG|image"):
        qr_png(URL, 20, "H", b"not an image")


@pytest.mark.parametrize("kind", sorted(EXPORTS))
def test_logo_at_h_is_placed_and_still_decodes_at_minimum_size(kind):
    data = EXPORTS[kind](URL, MIN_SIZE_MM, "H", make_logo())
    gray = rasterize(kind, data)
    plain = rasterize(kind, EXPORTS[kind](URL, MIN_SIZE_MM, "H"))
    assert gray.shape == plain.shape and not np.array_equal(gray, plain)  # the logo is really there
    assert decode(gray) == [URL]
    assert decode(perspective_and_blur(gray)) == [URL]


def test_logo_at_q_decodes():
    assert decode(rasterize("pdf", qr_pdf(URL, 20, "Q", make_logo()))) == [URL]


# --------------------------------------------------------------------------------------------------- badge
def test_badge_pdf_carries_the_bilingual_caption_below_a_decodable_code():
    pdf = qr_pdf(URL, 20, "M", badge=True)
    page = pdfium.PdfDocument(pdf)[0]
    width, height = page.get_size()
    assert height > width
    text = page.get_textpage().get_text_range()
    assert "Quét để xem AR" in text and "Scan for AR" in text
    assert decode(rasterize("pdf", pdf)) == [URL]


@pytest.mark.parametrize("kind", ["svg", "png"])
def test_badge_svg_and_png_decode_and_are_taller_than_the_code(kind):
    plain = rasterize(kind, EXPORTS[kind](URL, 20, "M"))
    badge_data = EXPORTS[kind](URL, 20, "M", badge=True, lang="en")
    badge = rasterize(kind, badge_data)
    assert badge.shape[1] == plain.shape[1] and badge.shape[0] > plain.shape[0] * 1.1
    assert (badge[plain.shape[0]:] < 128).any()  # caption ink under the code
    assert decode(badge) == [URL]
    if kind == "svg":
        assert "Scan for AR".encode() in badge_data and "Quét để xem AR".encode() in badge_data


def test_format_registry_serves_each_export_with_its_media_type():
    from markers.qr import QR_FORMATS

    assert set(QR_FORMATS) == {"svg", "pdf", "png"}
    magic = {"svg": b"<?xml", "pdf": b"%PDF-", "png": b"\x89PNG"}
    for name, fmt in QR_FORMATS.items():
        data = fmt.export(URL, 20, "M")
        assert data.startswith(magic[name]) and fmt.extension == name
        assert decode(rasterize(name, data)) == [URL]
    assert QR_FORMATS["svg"].media_type == "image/svg+xml" and QR_FORMATS["pdf"].media_type == "application/pdf"


# ---------------------------------------------------------------------------------- codeword map (logo rule)
@pytest.mark.parametrize("version,ecc", [(1, "L"), (2, "H"), (7, "Q"), (13, "H"), (27, "M"), (40, "L")])
def test_codeword_map_matches_segno_placement(version, ecc):
    """Oracle: segno's own placement routine fed with numbered bits."""
    import segno
    import segno.encoder as enc

    from markers.qr import QrSymbol, _function_patterns, codeword_map

    qr = segno.make_qr("BAO", error=ecc, version=version, boost_error=False)
    dark = np.array([[bool(v) for v in row] for row in qr.matrix])
    symbol = QrSymbol("BAO", ecc, version, dark, ~_function_patterns(version))
    cmap = codeword_map(symbol)
    n = symbol.modules
    matrix = enc.make_matrix(n, n)
    enc.add_finder_patterns(matrix, n, n)
    enc.add_alignment_patterns(matrix, n, n)
    matrix = [list(row) for row in matrix]
    enc.add_codewords(matrix, list(range(1000, 1000 + int(symbol.data_modules.sum()))), version)
    reference = np.array([[(v - 1000) // 8 if v >= 1000 else -1 for v in row] for row in matrix])
    reference[reference >= len(cmap.block)] = -1
    assert np.array_equal(reference, cmap.codeword)


@pytest.mark.parametrize("data,ecc", [(URL, "H"), (URL + "?ref=" + "a" * 120, "H"), (URL + "?r=" + "b" * 60, "Q")])
def test_each_block_corrects_exactly_what_the_codeword_map_says(data, ecc):
    """Oracle: zxing-cpp. Destroy ``correctable`` whole codewords in every block: decodes; one more in one
    block: fails. Proves the module -> codeword -> block map the logo rule relies on."""
    from markers.qr import codeword_map

    symbol = make_symbol(data, ecc)
    cmap = codeword_map(symbol)
    rng = np.random.default_rng(11)

    def damaged(extra_block=None):
        dark = symbol.dark.copy()
        for block, capacity in enumerate(cmap.correctable):
            members = [i for i, b in enumerate(cmap.block) if b == block]
            for cw in rng.choice(members, capacity + (block == extra_block), replace=False):
                dark[cmap.codeword == cw] ^= True
        raster = np.full((symbol.modules + 8,) * 2, 255, np.uint8)
        raster[4:-4, 4:-4] = np.where(dark, 0, 255)
        return cv2.resize(raster, None, fx=8, fy=8, interpolation=cv2.INTER_NEAREST)

    assert decode(damaged()) == [data]
    assert decode(damaged(extra_block=len(cmap.correctable) // 2)) == []


def test_default_logo_shrinks_until_every_block_keeps_margin_and_decodes():
    from markers.qr import LOGO_ERROR_BUDGET, codeword_map

    data = URL + "?ref=" + "a" * 126  # version 13-H: a 12 % square would overload some blocks
    layout = qr_layout(data, 30, "H", make_logo())
    first, stop = layout.logo_box
    covered = np.zeros_like(layout.dark)
    covered[first:stop, first:stop] = True
    cmap = codeword_map(layout.symbol)
    errors = cmap.errors_per_block(covered)
    assert all(e <= int(LOGO_ERROR_BUDGET * c) for e, c in zip(errors, cmap.correctable))
    assert (stop - first) ** 2 < LOGO_MAX_AREA_SHARE["H"] * layout.symbol.modules ** 2
    gray = rasterize("png", qr_png(data, 30, "H", make_logo()))
    assert decode(perspective_and_blur(gray)) == [data]
    with pytest.raises(ValueError, match="block"):
        qr_layout(data, 30, "H", make_logo(), logo_share=LOGO_MAX_AREA_SHARE["H"])
