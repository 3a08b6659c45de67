"""Edition QR sheet and marker test sheet: every QR decodes to its deep link, vector, right paper, readable."""
import datetime as dt
import random
import subprocess

import cv2
import numpy as np
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
import pytest
import zxingcpp
from PIL import Image

from markers.deeplink import deep_link_url, new_code
from markers.qr import PT_PER_MM
from markers.sheets import (
    CROP_MARK_LEN_MM,
    CROP_MARK_OFFSET_MM,
    EditionSheet,
    SheetPage,
    edition_sheet_pdf,
    marker_sheet_layout,
    marker_test_sheet_pdf,
)

DPI = 300
PAPER_PT = {"A4": (595.28, 841.89), "A3": (841.89, 1190.55)}
WARNINGS = [
    [],
    [("warning", "Vùng trên cùng ít chi tiết — thêm ảnh hoặc chữ để camera bắt được trang.")],
    [("error", "Trang quá giống trang 3 — dễ nhận nhầm."), ("info", "Ảnh trang độ phân giải thấp (96 dpi).")],
]
SECTIONS = ["Thời sự", "Kinh tế", "Văn hoá", "Thể thao", "Giáo dục", "Đời sống", ""]


def page_image(seed: int, width=420, height=594, fmt=".png") -> bytes:
    """A seeded, newspaper-like page: masthead bar, coloured blocks, text-like strokes."""
    rng = np.random.default_rng(seed)
    img = np.full((height, width, 3), 248, np.uint8)
    cv2.rectangle(img, (15, 15), (width - 15, height // 10), (25, 25, 25), -1)
    for _ in range(30):
        x, y = int(rng.integers(15, width - 80)), int(rng.integers(height // 8, height - 40))
        color = tuple(int(v) for v in rng.integers(0, 255, 3))
        cv2.rectangle(img, (x, y), (x + int(rng.integers(20, 80)), y + int(rng.integers(8, 50))), color, -1)
    for row in range(height // 8, height - 20, 9):
        cv2.line(img, (15, row), (int(rng.integers(width // 3, width - 15)), row), (90, 90, 90), 1)
    ok, buf = cv2.imencode(fmt, img)
    assert ok
    return buf.tobytes()


def make_sheet(count: int, seed: int = 12) -> EditionSheet:
    rng = random.Random(seed)
    pages = []
    for number in range(1, count + 1):
        code = new_code(rng=rng)
        pages.append(SheetPage(
            number=number,
            thumbnail=page_image(seed + number, fmt=".png" if number % 2 else ".jpg"),
            url=deep_link_url("https://baonhung.vn", code),
            code=code,
            stars=[None, 5, 4, 3, 2, 1, 0][number % 7],
            warnings=WARNINGS[number % 3],
            label=SECTIONS[number % 7],
        ))
    return EditionSheet(publication="Báo Yên Bái", edition_number=123, edition_date=dt.date(2026, 11, 26),
                        pages=pages)


def render(pdf: bytes) -> list[np.ndarray]:
    doc = pdfium.PdfDocument(pdf)
    return [np.asarray(page.render(scale=DPI / 72, grayscale=True).to_pil().convert("L")) for page in doc]


def pdftoppm(pdf: bytes, tmp_path) -> list[np.ndarray]:
    src = tmp_path / "sheet.pdf"
    src.write_bytes(pdf)
    subprocess.run(["pdftoppm", "-r", str(DPI), "-gray", "-png", str(src), str(tmp_path / "p")], check=True)
    return [np.asarray(Image.open(p).convert("L")) for p in sorted(tmp_path.glob("p-*.png"))]


def decode(gray: np.ndarray) -> list[str]:
    return sorted(b.text for b in zxingcpp.read_barcodes(gray) if b.format == zxingcpp.BarcodeFormat.QRCode)


def objects(pdf: bytes, index: int, kind: int):
    return [obj for obj in pdfium.PdfDocument(pdf)[index].get_objects() if obj.type == kind]


def page_text(pdf: bytes, index: int = 0) -> str:
    return pdfium.PdfDocument(pdf)[index].get_textpage().get_text_range()


@pytest.fixture(scope="module")
def sheet6():
    return make_sheet(6)


@pytest.fixture(scope="module")
def a4_pdf(sheet6):
    return edition_sheet_pdf(sheet6, "A4")


# ------------------------------------------------------------------------------------------ edition sheet
@pytest.mark.parametrize("paper", ["A4", "A3"])
def test_edition_sheet_pages_are_the_asked_paper_in_points(sheet6, paper):
    doc = pdfium.PdfDocument(edition_sheet_pdf(sheet6, paper))
    for page in doc:
        assert page.get_size() == pytest.approx(PAPER_PT[paper], abs=0.01)


def test_every_qr_on_the_a4_sheet_decodes_to_its_page_deep_link(sheet6, a4_pdf, tmp_path, artifacts_dir):
    rasters = pdftoppm(a4_pdf, tmp_path)  # poppler: independent of the renderer used elsewhere
    assert len(rasters) == 2  # 4 cards per A4 page: 6 pages paginate onto 2 sheet pages
    urls = [p.url for p in sheet6.pages]
    assert decode(rasters[0]) == sorted(urls[:4])
    assert decode(rasters[1]) == sorted(urls[4:])
    Image.fromarray(rasters[0]).save(artifacts_dir / "edition_sheet_A4_page1.png", dpi=(DPI, DPI))


def test_every_qr_on_the_a3_sheet_decodes_to_its_page_deep_link(sheet6, artifacts_dir):
    pdf = edition_sheet_pdf(sheet6, "A3", lang="en")
    rasters = render(pdf)
    assert len(rasters) == 1  # A3 holds 2 columns × 6 rows
    assert decode(rasters[0]) == sorted(p.url for p in sheet6.pages)
    Image.fromarray(rasters[0]).save(artifacts_dir / "edition_sheet_A3_en.png", dpi=(DPI, DPI))


def test_edition_sheet_qr_codes_are_vector_paths_and_only_thumbnails_are_images(a4_pdf):
    for index, cards in ((0, 4), (1, 2)):
        assert len(objects(a4_pdf, index, pdfium_c.FPDF_PAGEOBJ_IMAGE)) == cards
        paths = objects(a4_pdf, index, pdfium_c.FPDF_PAGEOBJ_PATH)
        # each QR is one large square path (with many subpaths) of about its printed size
        qr_paths = []
        for obj in paths:
            left, bottom, right, top = obj.get_bounds()
            if abs((right - left) - (top - bottom)) < 1 and 20 * PT_PER_MM < right - left < 25 * PT_PER_MM:
                qr_paths.append(obj)
        assert len(qr_paths) == cards


def test_edition_sheet_text_has_badge_url_code_rating_warnings_and_print_check(sheet6, a4_pdf):
    text = page_text(a4_pdf, 0)
    assert "Báo Yên Bái" in text and "Số 123 · 26/11/2026" in text and "Trang 1/2" in text
    assert text.count("Quét để xem AR") == 4 and text.count("Scan for AR") == 4
    for page in sheet6.pages[:4]:
        assert page.url in text and page.code in text
    assert "Vùng trên cùng ít chi tiết" in text and "CẢNH BÁO" in text
    assert "LỖI" in text and "LƯU Ý" in text
    assert "5/5" in text and "4/5" in text and "2/5" in text and "chưa đánh giá" not in text
    assert "vùng trống 4 mô-đun" in text and "mô-đun 0." in text
    assert "In ở 100 %" in text
    assert "Trang 2/2" in page_text(a4_pdf, 1)


def test_edition_sheet_in_english_leads_with_english(sheet6):
    text = page_text(edition_sheet_pdf(sheet6, "A4", lang="en"), 0)
    assert "Issue 123" in text and "Page 1/2" in text
    assert "Print check / Kiểm tra in" in text and "quiet zone 4 modules" in text
    assert "WARNING" in text


def test_edition_sheet_warns_on_the_sheet_when_modules_are_too_small():
    sheet = make_sheet(1)
    long_page = SheetPage(number=1, thumbnail=sheet.pages[0].thumbnail, code="ABCDEFG",
                          url="https://baonhung.vn/v/ABCDEFG?utm_source=print&utm_campaign=" + "x" * 90)
    pdf = edition_sheet_pdf(EditionSheet("Báo Yên Bái", 5, "Thứ năm", [long_page], qr_size_mm=15, ecc="H"))
    text = page_text(pdf)
    assert "Mô-đun" in text and "< 0.4 mm" in text
    assert decode(render(pdf)[0]) == [long_page.url]


def test_many_pages_paginate_with_page_numbers():
    pdf = edition_sheet_pdf(make_sheet(13), "A4")
    doc = pdfium.PdfDocument(pdf)
    assert len(doc) == 4
    assert "Trang 4/4" in page_text(pdf, 3)
    assert "chưa đánh giá" in page_text(pdf, 1)  # page 7 has no rating yet
    assert len(objects(pdf, 3, pdfium_c.FPDF_PAGEOBJ_IMAGE)) == 1


def test_edition_sheet_is_reproducible(sheet6, a4_pdf):
    assert edition_sheet_pdf(sheet6, "A4") == a4_pdf


@pytest.mark.parametrize("change,match", [
    (dict(stars=6), "stars"),
    (dict(stars=True), "stars"),
    (dict(warnings=[("panic", "x")]), "severity"),
    (dict(number=0), "page number"),
    (dict(url=""), "url"),
])
def test_sheet_page_refuses_invalid_values(change, match):
    values = dict(number=1, thumbnail=page_image(1), url="https://baonhung.vn/v/ABCDEFG", code="ABCDEFG")
    values.update(change)
    with pytest.raises(ValueError, match=match):
        SheetPage(**values)


def test_edition_sheet_refuses_bad_paper_thumbnail_and_size(sheet6):
    with pytest.raises(ValueError, match="paper"):
        edition_sheet_pdf(sheet6, "Letter")
    with pytest.raises(ValueError, match="lang"):
        edition_sheet_pdf(sheet6, "A4", lang="fr")
    bad = SheetPage(number=1, thumbnail=b"GIF89a nope", url="https://baonhung.vn/v/ABCDEFG", code="ABCDEFG")
    with pytest.raises(ValueError, match="thumbnail of page 1"):
        edition_sheet_pdf(EditionSheet("B", 1, None, [bad]))
    with pytest.raises(ValueError, match="15 mm"):
        edition_sheet_pdf(EditionSheet("B", 1, None, sheet6.pages, qr_size_mm=12))
    with pytest.raises(ValueError, match="at least one"):
        EditionSheet("B", 1, None, [])


# -------------------------------------------------------------------------------------- marker test sheet
TEST_URL = "https://baonhung.vn/v/HPM4N2Z"


def image_rect_mm(pdf: bytes) -> tuple[float, float, float, float]:
    (image,) = objects(pdf, 0, pdfium_c.FPDF_PAGEOBJ_IMAGE)
    left, bottom, right, top = image.get_bounds()
    return left / PT_PER_MM, bottom / PT_PER_MM, right / PT_PER_MM, top / PT_PER_MM


def test_small_page_prints_at_actual_size_with_crop_marks_and_decodable_qr():
    pdf = marker_test_sheet_pdf(page_image(5, 700, 980), 100, 140, 4, WARNINGS[2], TEST_URL, paper="A4")
    assert pdfium.PdfDocument(pdf)[0].get_size() == pytest.approx(PAPER_PT["A4"], abs=0.01)
    left, bottom, right, top = image_rect_mm(pdf)
    assert right - left == pytest.approx(100, abs=0.05) and top - bottom == pytest.approx(140, abs=0.05)
    # crop marks: short hairlines outside each trim corner, none inside the trim box
    marks = []
    for obj in objects(pdf, 0, pdfium_c.FPDF_PAGEOBJ_PATH):
        x0, b, r, t = (v / PT_PER_MM for v in obj.get_bounds())
        long_side = max(r - x0, t - b)
        if CROP_MARK_LEN_MM - 0.5 < long_side < CROP_MARK_LEN_MM + 0.5 and min(r - x0, t - b) < 0.5:
            marks.append((x0, b, r, t))
    assert len(marks) == 8
    for x0, b, r, t in marks:
        outside = r <= left - CROP_MARK_OFFSET_MM + 0.3 or x0 >= right + CROP_MARK_OFFSET_MM - 0.3 \
            or t <= bottom - CROP_MARK_OFFSET_MM + 0.3 or b >= top + CROP_MARK_OFFSET_MM - 0.3
        assert outside
    text = page_text(pdf)
    assert "Tờ in thử marker" in text and "Tỉ lệ 100 %" in text and "4/5" in text
    assert "Trang quá giống trang 3" in text and TEST_URL in text and "Quét để xem AR" in text
    assert decode(render(pdf)[0]) == [TEST_URL]


def test_an_a4_page_is_tested_at_actual_size_on_a3_paper(tmp_path, artifacts_dir):
    """Issue 24: the test sheet of an A4 page asked for on A4 shrank it to 64 %, so it did not test the real size."""
    pdf = marker_test_sheet_pdf(page_image(6, 1240, 1754, ".jpg"), 210, 297, 3, [], TEST_URL, paper="A4")
    assert pdfium.PdfDocument(pdf)[0].get_size() == pytest.approx(PAPER_PT["A3"], abs=0.01)
    left, bottom, right, top = image_rect_mm(pdf)
    assert right - left == pytest.approx(210, abs=0.05) and top - bottom == pytest.approx(297, abs=0.05)
    assert left > 0 and bottom > 0 and right < 297 and top < 420
    text = page_text(pdf)
    assert "Tỉ lệ 100 %" in text and "khổ A3" in text and "Thu nhỏ" not in text
    (raster,) = pdftoppm(pdf, tmp_path)
    assert raster.shape == (round(420 / 25.4 * DPI), round(297 / 25.4 * DPI))  # poppler agrees on the paper
    assert decode(raster) == [TEST_URL]
    Image.fromarray(raster).save(artifacts_dir / "marker_test_sheet_A4_page.png", dpi=(DPI, DPI))


@pytest.mark.parametrize("size_mm, paper, expected", [
    ((100, 140), "A4", "A4"), ((210, 297), "A4", "A3"), ((210, 297), "A3", "A3"), ((280, 400), "A4", "A2"),
    ((420, 297), "A4", "A2"), ((297, 420), "A3", "A2")])
def test_the_test_sheet_takes_the_smallest_paper_holding_the_page_at_actual_size(size_mm, paper, expected):
    layout = marker_sheet_layout(*size_mm, paper)
    assert layout.paper == expected and layout.scale == 1.0
    assert min(layout.area_mm) >= min(size_mm) and max(layout.area_mm) >= max(size_mm)


def test_a_page_larger_than_a0_is_scaled_to_fit_and_the_scale_is_printed():
    pdf = marker_test_sheet_pdf(page_image(6, 1120, 1568, ".jpg"), 1000, 1400, None, [], TEST_URL, paper="A4")
    left, bottom, right, top = image_rect_mm(pdf)
    scale = (right - left) / 1000
    assert scale < 1 and (top - bottom) / 1400 == pytest.approx(scale, rel=1e-3)
    assert left > 0 and bottom > 0 and right < 841 and top < 1189
    text = page_text(pdf)
    assert f"Thu nhỏ còn {scale * 100:.0f} %" in text and "A0" in text and "chưa đánh giá" in text


def test_landscape_page_gets_landscape_paper():
    pdf = marker_test_sheet_pdf(page_image(7, 800, 436), 330, 180, 2, [], TEST_URL, paper="A3", lang="en")
    assert pdfium.PdfDocument(pdf)[0].get_size() == pytest.approx(PAPER_PT["A3"][::-1], abs=0.01)
    assert "Marker test sheet" in page_text(pdf)
    assert decode(render(pdf)[0]) == [TEST_URL]


def test_marker_test_sheet_refuses_bad_input():
    with pytest.raises(ValueError, match="stars"):
        marker_test_sheet_pdf(page_image(1), 100, 140, 9, [], TEST_URL)
    with pytest.raises(ValueError, match="page size"):
        marker_test_sheet_pdf(page_image(1), 0, 140, 3, [], TEST_URL)
    with pytest.raises(ValueError, match="url"):
        marker_test_sheet_pdf(page_image(1), 100, 140, 3, [], "")
    with pytest.raises(ValueError, match="page image"):
        marker_test_sheet_pdf(b"\x00" * 10, 100, 140, 3, [], TEST_URL)


def tilted_and_blurred(gray: np.ndarray, tilt_deg=15.0, sigma=1.2) -> np.ndarray:
    """The page as a phone sees it tilted ``tilt_deg`` about its vertical axis, then Gaussian-blurred."""
    h, w = gray.shape
    f = 1.5 * max(w, h)
    t = np.radians(tilt_deg)
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    X, Y = src[:, 0] - w / 2, src[:, 1] - h / 2
    depth = f + X * np.sin(t)
    dst = np.stack([w / 2 + f * X * np.cos(t) / depth, h / 2 + f * Y / depth], axis=1).astype(np.float32)
    warped = cv2.warpPerspective(gray, cv2.getPerspectiveTransform(src, dst), (w, h), borderValue=255)
    return cv2.GaussianBlur(warped, (0, 0), sigma)


def test_minimum_size_qr_codes_on_a_sheet_survive_blur_and_15_degree_perspective():
    sheet = make_sheet(4, seed=40)
    small = EditionSheet(sheet.publication, sheet.edition_number, sheet.edition_date, sheet.pages, qr_size_mm=15)
    (raster,) = render(edition_sheet_pdf(small, "A4"))
    assert decode(tilted_and_blurred(raster)) == sorted(p.url for p in sheet.pages)


def test_over_long_header_text_is_shrunk_or_cut_not_spilled(sheet6):
    long_name = "Báo Yên Bái — Chuyên đề Văn hoá, Du lịch và Đời sống vùng cao Tây Bắc " * 3
    sheet = EditionSheet(long_name, 7, "Thứ năm", sheet6.pages[:1])
    pdf = edition_sheet_pdf(sheet, "A4")
    width_pt = PAPER_PT["A4"][0]
    for obj in objects(pdf, 0, pdfium_c.FPDF_PAGEOBJ_TEXT):
        left, _, right, _ = obj.get_bounds()
        assert left >= 11.9 * PT_PER_MM - 0.5 and right <= width_pt - 11.9 * PT_PER_MM + 0.5
    assert "…" in page_text(pdf)


def overlapping_texts(pdf: bytes, index: int = 0, tolerance_pt: float = 0.4) -> list[tuple[str, str]]:
    """Pairs of text objects on a page whose boxes overlap by more than ``tolerance_pt`` both ways."""
    page = pdfium.PdfDocument(pdf)[index]
    textpage = page.get_textpage()
    boxes = []
    for obj in page.get_objects():
        if obj.type == pdfium_c.FPDF_PAGEOBJ_TEXT:
            left, bottom, right, top = obj.get_bounds()
            boxes.append((left, bottom, right, top, textpage.get_text_bounded(left, bottom, right, top)))
    clashes = []
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            dx = min(a[2], b[2]) - max(a[0], b[0])
            dy = min(a[3], b[3]) - max(a[1], b[1])
            if dx > tolerance_pt and dy > tolerance_pt:
                clashes.append((a[4], b[4]))
    return clashes


@pytest.mark.parametrize("paper,lang", [("A4", "vi"), ("A3", "en")])
def test_no_text_on_the_edition_sheet_overlaps_other_text(paper, lang):
    pdf = edition_sheet_pdf(make_sheet(13), paper, lang=lang)
    for index in range(len(pdfium.PdfDocument(pdf))):
        assert overlapping_texts(pdf, index) == []


@pytest.mark.parametrize("stars", [None, 5])
def test_no_text_on_the_marker_test_sheet_overlaps_other_text(stars):
    pdf = marker_test_sheet_pdf(page_image(5), 280, 400, stars, WARNINGS[2] * 3, TEST_URL, title="Trang 3 · Văn hoá")
    assert overlapping_texts(pdf) == []
