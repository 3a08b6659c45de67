"""Print-desk sheets: the edition QR sheet and the marker test sheet, as vector PDFs laid out in millimetres.

Layout coordinates in this module are *top-down* millimetres from the paper's top-left corner (like the editor);
``_Sheet.y`` converts them once to reportlab's bottom-up points: ``y_pt = (paper_h_mm - y_mm) * 72 / 25.4``.

The caller passes plain values (rating stars, translated warnings): this module does not import the rating
module. All sheet text is Vietnamese first with English alongside (``lang="en"`` swaps the order).
"""
from __future__ import annotations

import datetime as dt
import io
import math
from dataclasses import dataclass

from PIL import Image
from reportlab.lib.pagesizes import A0, A1, A2, A3, A4, landscape
from reportlab.lib.utils import ImageReader, simpleSplit
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfgen import canvas as rl_canvas  # noqa: F401  (type of _Sheet.canvas)

from .qr import (
    FONT_BOLD,
    FONT_MONO,
    FONT_REGULAR,
    MIN_QUIET_ZONE_MODULES,
    PT_PER_MM,
    QR_FORMATS,
    PrintCheck,
    QrLayout,
    _check_lang,
    draw_badge_caption,
    draw_qr,
    new_pdf_canvas,
    qr_layout,
    qr_pdf,
    qr_png,
    qr_print_checks,
    qr_svg,
)

__all__ = [
    "EditionSheet", "SheetPage", "edition_sheet_pdf", "marker_test_sheet_pdf", "marker_sheet_layout", "PAPER_SIZES_MM",
    "TEST_SHEET_PAPERS",
    # re-exported so the web layer can import every print-desk function from one module
    "qr_svg", "qr_pdf", "qr_png", "qr_print_checks", "PrintCheck", "QR_FORMATS",
]

# reportlab's sizes are in points; keep mm for layout. A4 = 210 × 297 mm = 595.28 × 841.89 pt.
PAPER_SIZES_PT = {"A4": A4, "A3": A3}
PAPER_SIZES_MM = {name: (w / PT_PER_MM, h / PT_PER_MM) for name, (w, h) in PAPER_SIZES_PT.items()}
# A marker test sheet must show the page at its real size (a phone recognizes the printed page at the distance and
# size readers will hold it): it takes the smallest of these, from the one asked for, that holds the page at 1:1
# with its header, QR footer and crop marks (an A4 page needs A3). Print shops and plotters have A2-A0.
TEST_SHEET_PAPERS_PT = {"A4": A4, "A3": A3, "A2": A2, "A1": A1, "A0": A0}
TEST_SHEET_PAPERS = tuple(TEST_SHEET_PAPERS_PT)
MARGIN_MM = 12.0            # inside the non-printable border of office printers (≈ 5 mm) with room to spare
HEADER_MM = 22.0
FOOTER_MM = 16.0
CARD_H_MM = 56.0            # 4 pages per A4, 6 rows per A3
CARD_MIN_W_MM = 130.0       # narrower and the warning column becomes unreadable: A4 gets 1 column, A3 gets 2
CARD_GAP_MM = 7.0
THUMB_W_MM = 38.0
SHEET_QR_MM = 22.0          # symbol size on the sheet: comfortably above the 15 mm minimum
SHEET_ECC = "M"             # no logo on the sheet; M keeps the module size large
THUMB_MAX_PX = 800          # thumbnails are ≤ 38 mm wide: 800 px is > 500 dpi, plenty for a proof
THUMB_JPEG_QUALITY = 85
PAGE_IMAGE_MAX_DPI = 300    # test-sheet page images above this add size, not detail
PAGE_IMAGE_JPEG_QUALITY = 92
CROP_MARK_OFFSET_MM = 3.0   # gap between the trim corner and the mark, so marks never print inside the trim
CROP_MARK_LEN_MM = 5.0
CROP_MARK_WIDTH_PT = 0.25   # conventional hairline for crop marks
MAX_STARS = 5
GREY = (0, 0, 0, 0.55)      # CMYK: text of secondary importance, still K only
RULE = (0, 0, 0, 0.25)

SEVERITY_ALIASES = {"critical": "error", "high": "error", "warn": "warning", "medium": "warning",
                    "low": "info", "hint": "info"}
SEVERITY_RANK = {"error": 0, "warning": 1, "info": 2}

TEXTS = {
    "sheet_title": ("Bảng mã QR trang AR", "AR page QR sheet"),
    "edition": ("Số", "Issue"),
    "page": ("Trang", "Page"),
    "of": ("/", "of"),
    "code": ("Mã", "Code"),
    "rating": ("Chất lượng marker", "Marker quality"),
    "not_rated": ("chưa đánh giá", "not rated"),
    "no_warnings": ("Không có cảnh báo", "No warnings"),
    "more_warnings": ("… và {n} cảnh báo khác", "… and {n} more warnings"),
    "print_100": ("In ở 100 %, không co giãn", "Print at 100 %, no scaling"),
    "print_check": ("Kiểm tra in", "Print check"),
    "error": ("LỖI", "ERROR"),
    "warning": ("CẢNH BÁO", "WARNING"),
    "info": ("LƯU Ý", "NOTE"),
    "test_title": ("Tờ in thử marker", "Marker test sheet"),
    "scale_full": ("Tỉ lệ 100 % — kích thước thật {w:g} × {h:g} mm — in trên khổ {paper}, không co giãn",
                   "Scale 100 % — actual size {w:g} × {h:g} mm — print on {paper}, no scaling"),
    "scale_reduced": ("Thu nhỏ còn {p:.0f} % để vừa khổ {paper} (trang thật {w:g} × {h:g} mm)",
                      "Reduced to {p:.0f} % to fit {paper} (real page {w:g} × {h:g} mm)"),
    "test_steps": ("In tờ này, đặt phẳng, mở liên kết bằng điện thoại rồi hướng camera vào ảnh trang.",
                   "Print this sheet, lay it flat, open the link on a phone and point the camera at the page."),
    "generated": ("Tạo bởi Báo Nhúng", "Made with Báo Nhúng"),
}


def _t(key: str, lang: str) -> str:
    """Text in ``lang`` only."""
    vi, en = TEXTS[key]
    return vi if lang == "vi" else en


def _tt(key: str, lang: str, **values) -> str:
    """Both languages, ``lang`` first: "Trang / Page"."""
    vi, en = (text.format(**values) for text in TEXTS[key])
    return f"{vi} / {en}" if lang == "vi" else f"{en} / {vi}"


def _normalize_severity(severity: str) -> str:
    key = str(severity).strip().lower()
    key = SEVERITY_ALIASES.get(key, key)
    if key not in SEVERITY_RANK:
        raise ValueError(f"warning severity must be one of {sorted(SEVERITY_RANK)}, got {severity!r}")
    return key


def _normalize_warnings(warnings) -> tuple[tuple[str, str], ...]:
    """((severity, text), ...) with canonical severities, most severe first (stable within a severity)."""
    items = []
    for item in warnings or ():
        severity, text = item
        items.append((_normalize_severity(severity), str(text)))
    return tuple(sorted(items, key=lambda pair: SEVERITY_RANK[pair[0]]))


def _check_stars(stars) -> int | None:
    if stars is None:
        return None
    if isinstance(stars, bool) or not isinstance(stars, int) or not 0 <= stars <= MAX_STARS:
        raise ValueError(f"stars must be an integer 0..{MAX_STARS} or None, got {stars!r}")
    return stars


def _read_image(data: bytes, what: str) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except Exception as exc:  # PIL raises many types on bad input; one clear error for the caller
        raise ValueError(f"{what} is not a readable PNG/JPEG image: {exc}") from exc
    if image.format not in ("PNG", "JPEG"):
        raise ValueError(f"{what} must be PNG or JPEG, got {image.format}")
    if image.mode in ("RGBA", "LA", "P"):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return image.convert("RGB")


def _jpeg_reader(image: Image.Image, max_px: int, quality: int) -> ImageReader:
    """Downscale to ``max_px`` on the long side and wrap as JPEG so reportlab embeds it DCT-compressed."""
    if max(image.size) > max_px:
        image = image.copy()
        image.thumbnail((max_px, max_px), Image.LANCZOS)
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    return ImageReader(buf)


# ----------------------------------------------------------------------------------------------- data model
@dataclass(frozen=True)
class SheetPage:
    """One AR page on the edition sheet.

    ``thumbnail``: PNG/JPEG bytes; ``url``: the deep link encoded in the QR (``…/v/<code>``); ``stars``: marker
    rating 0..5 or None when not rated; ``warnings``: ((severity, text), ...) with severity error|warning|info
    and text already translated for the reader.
    """

    number: int
    thumbnail: bytes
    url: str
    code: str
    stars: int | None = None
    warnings: tuple[tuple[str, str], ...] = ()
    label: str = ""  # optional section name, e.g. "Thời sự"

    def __post_init__(self):
        if not isinstance(self.number, int) or self.number < 1:
            raise ValueError(f"page number must be a positive integer, got {self.number!r}")
        if not self.url:
            raise ValueError(f"page {self.number}: url is empty")
        _check_stars(self.stars)
        object.__setattr__(self, "warnings", _normalize_warnings(self.warnings))


@dataclass(frozen=True)
class EditionSheet:
    """Title data and pages of one edition sheet. ``edition_date`` prints as dd/mm/yyyy when a date."""

    publication: str
    edition_number: int | str
    edition_date: dt.date | str | None
    pages: tuple[SheetPage, ...]
    qr_size_mm: float = SHEET_QR_MM
    ecc: str = SHEET_ECC
    notice: str = ""  # a warning printed across the header in red (e.g. QR codes no phone can open)

    def __post_init__(self):
        object.__setattr__(self, "pages", tuple(self.pages))
        if not self.pages:
            raise ValueError("an edition sheet needs at least one AR page")

    def date_text(self) -> str:
        if isinstance(self.edition_date, dt.date):
            return self.edition_date.strftime("%d/%m/%Y")
        return str(self.edition_date or "")


# ------------------------------------------------------------------------------------------ drawing helpers
@dataclass
class _Sheet:
    """A reportlab canvas addressed in top-down millimetres on one paper size."""

    canvas: rl_canvas.Canvas
    width_mm: float
    height_mm: float
    lang: str

    def x(self, x_mm: float) -> float:
        return x_mm * PT_PER_MM

    def y(self, y_mm: float) -> float:
        return (self.height_mm - y_mm) * PT_PER_MM

    def text(self, x_mm, y_mm, text, font=FONT_REGULAR, size=9.0, color=(0, 0, 0, 1), align="left"):
        """Draw ``text`` with its baseline at top-down ``y_mm``."""
        c = self.canvas
        c.setFont(font, size)
        c.setFillColorCMYK(*color)
        draw = {"left": c.drawString, "right": c.drawRightString, "center": c.drawCentredString}[align]
        draw(self.x(x_mm), self.y(y_mm), text)

    def fit_text(self, x_mm, y_mm, width_mm, text, font=FONT_REGULAR, size=9.0, min_size=5.5, **kw):
        """Like ``text`` but shrinks the font (down to ``min_size``) so ``text`` fits ``width_mm``; text still
        too wide at ``min_size`` is cut with "…" so it never runs into its neighbour."""
        limit = width_mm * PT_PER_MM
        natural = pdfmetrics.stringWidth(text, font, size)
        if natural > limit:
            size = max(min_size, size * limit / natural)
            while len(text) > 1 and pdfmetrics.stringWidth(text, font, size) > limit:
                text = text[:-2] + "…"
        self.text(x_mm, y_mm, text, font=font, size=size, **kw)
        return size

    def rule(self, x0_mm, y0_mm, x1_mm, y1_mm, color=RULE, width_pt=0.5):
        c = self.canvas
        c.setStrokeColorCMYK(*color)
        c.setLineWidth(width_pt)
        c.line(self.x(x0_mm), self.y(y0_mm), self.x(x1_mm), self.y(y1_mm))

    def frame(self, x_mm, y_mm, w_mm, h_mm, color=RULE, width_pt=0.5):
        c = self.canvas
        c.setStrokeColorCMYK(*color)
        c.setLineWidth(width_pt)
        c.rect(self.x(x_mm), self.y(y_mm + h_mm), w_mm * PT_PER_MM, h_mm * PT_PER_MM, stroke=1, fill=0)

    def image_fit(self, reader: ImageReader, x_mm, y_mm, w_mm, h_mm, border=True) -> tuple[float, float, float, float]:
        """Draw ``reader`` as large as fits the box, centred, aspect kept; return its (x, y, w, h) in mm."""
        iw, ih = reader.getSize()
        scale = min(w_mm / iw, h_mm / ih)
        dw, dh = iw * scale, ih * scale
        dx, dy = x_mm + (w_mm - dw) / 2, y_mm + (h_mm - dh) / 2
        self.canvas.drawImage(reader, self.x(dx), self.y(dy + dh), dw * PT_PER_MM, dh * PT_PER_MM)
        if border:
            self.frame(dx, dy, dw, dh, width_pt=0.3)
        return dx, dy, dw, dh

    def qr(self, layout: QrLayout, x_mm, y_mm, badge=True) -> float:
        """QR (quiet zone's top-left at x, y) with the badge caption under it; returns the block height."""
        total = layout.total_mm
        draw_qr(self.canvas, layout, x_mm, self.height_mm - y_mm - total)
        band = 0.0
        if badge:
            band = draw_badge_caption(self.canvas, x_mm, self.height_mm - y_mm - total, total, self.lang)
        return total + band

    def stars(self, x_mm, y_mm, stars: int | None, size_mm=3.6) -> float:
        """Five vector stars, ``stars`` of them filled, top-left at (x, y); returns the row width."""
        c = self.canvas
        gap = size_mm * 0.25
        for i in range(MAX_STARS):
            cx, cy = x_mm + i * (size_mm + gap) + size_mm / 2, y_mm + size_mm / 2
            path = c.beginPath()
            for k in range(10):  # alternate outer and inner vertices, first one pointing up
                radius = size_mm / 2 if k % 2 == 0 else size_mm / 2 * 0.42
                angle = math.pi / 2 + k * math.pi / 5
                px, py = cx + radius * math.cos(angle), cy - radius * math.sin(angle)
                (path.moveTo if k == 0 else path.lineTo)(self.x(px), self.y(py))
            path.close()
            filled = stars is not None and i < stars
            c.setFillColorCMYK(0, 0, 0, 1)
            c.setStrokeColorCMYK(0, 0, 0, 1 if stars is not None else 0.4)
            c.setLineWidth(0.5)
            c.drawPath(path, stroke=1, fill=1 if filled else 0)
        return MAX_STARS * (size_mm + gap) - gap

    def warnings(self, x_mm, y_mm, width_mm, bottom_mm, warnings, size=7.5) -> float:
        """Wrapped warning lines with a bold severity tag, from baseline ``y_mm`` down to ``bottom_mm``;
        lines that do not fit are summarised as "… and N more". Returns the next free baseline."""
        line_mm = size * 1.3 / PT_PER_MM
        if not warnings:
            self.text(x_mm, y_mm, _tt("no_warnings", self.lang), size=size, color=GREY)
            return y_mm + line_mm
        # one tag column for all severities so the warning texts line up
        tag_w = max(pdfmetrics.stringWidth(_t(sev, self.lang) + "  ", FONT_BOLD, size)
                    for sev in SEVERITY_RANK) / PT_PER_MM
        for index, (severity, text) in enumerate(warnings):
            tag = _t(severity, self.lang)
            lines = simpleSplit(text, FONT_REGULAR, size, (width_mm - tag_w) * PT_PER_MM) or [""]
            remaining = len(warnings) - index
            # keep one line free for the "and N more" note unless this is the last warning
            needed = len(lines) * line_mm + (0 if remaining == 1 else line_mm)
            if y_mm + needed - line_mm > bottom_mm:
                self.text(x_mm, y_mm, TEXTS["more_warnings"][0 if self.lang == "vi" else 1].format(n=remaining),
                          size=size, color=GREY)
                return y_mm + line_mm
            self.text(x_mm, y_mm, tag, font=FONT_BOLD, size=size)
            for line in lines:
                self.text(x_mm + tag_w, y_mm, line, size=size)
                y_mm += line_mm
        return y_mm


def _paper_mm(paper: str, orientation: str = "portrait", sizes: dict = PAPER_SIZES_PT) -> tuple[float, float]:
    if paper not in sizes:
        raise ValueError(f"paper must be one of {sorted(sizes)}, got {paper!r}")
    size = sizes[paper] if orientation == "portrait" else landscape(sizes[paper])
    return size[0] / PT_PER_MM, size[1] / PT_PER_MM


# ------------------------------------------------------------------------------------------- edition sheet
def _edition_header(s: _Sheet, sheet: EditionSheet, page_index: int, page_count: int) -> None:
    lang, left, right = s.lang, MARGIN_MM, s.width_mm - MARGIN_MM
    s.fit_text(left, MARGIN_MM + 6.5, (right - left) * 0.6, sheet.publication, font=FONT_BOLD, size=17)
    edition = f"{_t('edition', 'vi')} {sheet.edition_number}" if lang == "vi" \
        else f"{_t('edition', 'en')} {sheet.edition_number}"
    sub = " · ".join(part for part in (edition, sheet.date_text()) if part)
    s.text(left, MARGIN_MM + 13, sub, size=10.5)
    s.text(right, MARGIN_MM + 6, _t("sheet_title", lang), font=FONT_BOLD, size=11, align="right")
    other = "en" if lang == "vi" else "vi"
    s.text(right, MARGIN_MM + 11, _t("sheet_title", other), size=9, color=GREY, align="right")
    page_word = f"{_t('page', lang)} {page_index + 1}/{page_count}"
    s.text(right, MARGIN_MM + 16, page_word, size=9, align="right")
    s.rule(left, MARGIN_MM + HEADER_MM - 3, right, MARGIN_MM + HEADER_MM - 3, color=(0, 0, 0, 1), width_pt=1.0)
    if sheet.notice:
        # under the date, left of the sheet title's column; CMYK red: seen on any proof
        s.fit_text(left, MARGIN_MM + 18, right - left - 28, sheet.notice, font=FONT_BOLD, size=8.5,
                   color=(0, 1, 1, 0))


def _edition_footer(s: _Sheet, checks: list[PrintCheck]) -> None:
    """Three footer rows: print check of the smallest-module QR; its verdict and "print at 100 %"; credit."""
    lang, left, right = s.lang, MARGIN_MM, s.width_mm - MARGIN_MM
    top = s.height_mm - MARGIN_MM - FOOTER_MM + 2
    s.rule(left, top, right, top, color=RULE)
    smallest = min(checks, key=lambda check: check.module_mm)
    s.fit_text(left, top + 4.0, right - left, f"{_tt('print_check', lang)}: {smallest.summary(lang)}", size=7.5)
    print_100 = _tt("print_100", lang)
    verdict_w = right - left - pdfmetrics.stringWidth(print_100, FONT_BOLD, 7.5) / PT_PER_MM - 6
    messages = [m for check in checks for m in check.messages(lang)]
    if messages:
        s.fit_text(left, top + 8.0, verdict_w, messages[0], font=FONT_BOLD, size=7.5)
    else:
        verdict = ("Mô-đun ≥ 0.4 mm, vùng trống ≥ 4 mô-đun: đạt" if lang == "vi"
                   else "Module ≥ 0.4 mm, quiet zone ≥ 4 modules: OK")
        s.fit_text(left, top + 8.0, verdict_w, verdict, size=7.5, color=GREY)
    s.text(right, top + 8.0, print_100, font=FONT_BOLD, size=7.5, align="right")
    s.text(right, top + 11.8, _t("generated", lang), size=7, color=GREY, align="right")


def _edition_card(s: _Sheet, page: SheetPage, layout: QrLayout, x: float, y: float, w: float) -> None:
    lang = s.lang
    inner_h = CARD_H_MM - 6.0
    top = y + 3.0
    thumb = _read_image(page.thumbnail, f"thumbnail of page {page.number}")
    s.image_fit(_jpeg_reader(thumb, THUMB_MAX_PX, THUMB_JPEG_QUALITY), x, top, THUMB_W_MM, inner_h)
    qr_x = x + THUMB_W_MM + 5.0
    s.qr(layout, qr_x, top)
    tx = qr_x + layout.total_mm + 5.0
    tw = x + w - tx
    ty = top + 4.2
    title = f"{_t('page', lang)} {page.number}" + (f" · {page.label}" if page.label else "")
    s.fit_text(tx, ty, tw, title, font=FONT_BOLD, size=12)
    s.fit_text(tx, ty + 5.2, tw, page.url, font=FONT_MONO, size=8.5)
    s.text(tx, ty + 9.6, f"{_tt('code', lang)}: ", size=8, color=GREY)
    code_x = tx + pdfmetrics.stringWidth(f"{_tt('code', lang)}: ", FONT_REGULAR, 8) / PT_PER_MM
    s.text(code_x, ty + 9.6, page.code, font=FONT_MONO, size=9)
    s.text(tx, ty + 15.0, f"{_tt('rating', lang)}:", size=8, color=GREY)
    label_w = pdfmetrics.stringWidth(f"{_tt('rating', lang)}: ", FONT_REGULAR, 8) / PT_PER_MM
    if label_w + 24 > tw:  # narrow column: stars on their own line
        star_x, star_y, ty_after = tx, ty + 16.2, ty + 24.5
    else:
        star_x, star_y, ty_after = tx + label_w + 1, ty + 12.3, ty + 20.5
    stars_w = s.stars(star_x, star_y, page.stars)
    if page.stars is None:
        s.text(star_x + stars_w + 2, star_y + 3.0, _t("not_rated", lang), size=7.5, color=GREY)
    else:
        s.text(star_x + stars_w + 2, star_y + 3.0, f"{page.stars}/{MAX_STARS}", font=FONT_BOLD, size=8)
    warnings = list(page.warnings)
    if layout.check.warnings:
        warnings = [("error", m) for m in layout.check.messages(lang)] + warnings
    s.warnings(tx, ty_after, tw, y + CARD_H_MM - 3.0, warnings)
    # print constraints of this card's QR, small, under the badge
    qr_bottom = top + layout.total_mm + 9.0
    module_line = f"{layout.module_mm:.2f} mm/mô-đun" if lang == "vi" else f"{layout.module_mm:.2f} mm/module"
    if qr_bottom + 2 < y + CARD_H_MM:
        s.text(qr_x + layout.total_mm / 2, min(qr_bottom + 2.5, y + CARD_H_MM - 1.5), module_line,
               size=6, color=GREY, align="center")


def edition_sheet_pdf(sheet: EditionSheet, paper: str = "A4", lang: str = "vi") -> bytes:
    """Vector PDF of the edition sheet on ``paper`` (A4 or A3, portrait).

    Per AR page a card: thumbnail, QR of ``page.url`` (vector, K only, ``sheet.qr_size_mm`` wide, 4-module quiet
    zone) with the "Quét để xem AR / Scan for AR" badge, the short URL and code, rating stars and warnings.
    A4 holds 4 cards per sheet page, A3 12 (2 columns); further pages continue on new sheet pages. Header:
    publication, edition, date, sheet page x/y; footer: print constraints (module size, quiet zone).
    Raises ValueError on bad paper/lang, unreadable thumbnails or a QR smaller than 15 mm.
    """
    lang = _check_lang(lang)
    width, height = _paper_mm(paper)
    usable_w = width - 2 * MARGIN_MM
    columns = max(1, int((usable_w + CARD_GAP_MM) // (CARD_MIN_W_MM + CARD_GAP_MM)))
    card_w = (usable_w - (columns - 1) * CARD_GAP_MM) / columns
    rows = int((height - 2 * MARGIN_MM - HEADER_MM - FOOTER_MM) // CARD_H_MM)
    per_page = rows * columns
    layouts = [qr_layout(p.url, sheet.qr_size_mm, sheet.ecc, None, MIN_QUIET_ZONE_MODULES) for p in sheet.pages]
    checks = [layout.check for layout in layouts]
    page_count = math.ceil(len(sheet.pages) / per_page)
    buf = io.BytesIO()
    title = f"{sheet.publication} — {_t('edition', lang)} {sheet.edition_number} — {_t('sheet_title', lang)}"
    canvas = new_pdf_canvas(buf, width, height, title, lang)
    s = _Sheet(canvas, width, height, lang)
    for page_index in range(page_count):
        _edition_header(s, sheet, page_index, page_count)
        chunk = range(page_index * per_page, min(len(sheet.pages), (page_index + 1) * per_page))
        for slot, i in enumerate(chunk):
            row, col = divmod(slot, columns)
            x = MARGIN_MM + col * (card_w + CARD_GAP_MM)
            y = MARGIN_MM + HEADER_MM + row * CARD_H_MM
            _edition_card(s, sheet.pages[i], layouts[i], x, y, card_w)
            if row < rows - 1 and i + columns < chunk.stop:
                s.rule(x, y + CARD_H_MM, x + card_w, y + CARD_H_MM)
        _edition_footer(s, checks)
        canvas.showPage()
    canvas.save()
    return buf.getvalue()


# --------------------------------------------------------------------------------------- marker test sheet
TEST_HEADER_MM = 20.0
TEST_FOOTER_MM = 44.0
TEST_QR_MM = 20.0
TEST_MARK_SPACE_MM = CROP_MARK_OFFSET_MM + CROP_MARK_LEN_MM + 1.0  # room the crop marks need around the image


def _crop_marks(s: _Sheet, x, y, w, h) -> None:
    """Corner crop marks around the trim box (x, y, w, h) in top-down mm: two hairlines per corner, each
    starting ``CROP_MARK_OFFSET_MM`` outside the trim and running ``CROP_MARK_LEN_MM`` outward."""
    o, length = CROP_MARK_OFFSET_MM, CROP_MARK_LEN_MM
    c = s.canvas
    c.setStrokeColorCMYK(0, 0, 0, 1)
    c.setLineWidth(CROP_MARK_WIDTH_PT)
    for cx, dx in ((x, -1), (x + w, 1)):
        for cy, dy in ((y, -1), (y + h, 1)):
            c.line(s.x(cx + dx * o), s.y(cy), s.x(cx + dx * (o + length)), s.y(cy))  # horizontal mark
            c.line(s.x(cx), s.y(cy + dy * o), s.x(cx), s.y(cy + dy * (o + length)))  # vertical mark


@dataclass(frozen=True)
class MarkerSheetLayout:
    """Where a marker test sheet puts the page: paper name and orientation, paper size and the image area (mm),
    and the scale the page is printed at (1.0 unless even the largest paper is too small)."""
    paper: str
    orientation: str
    scale: float
    paper_mm: tuple[float, float]
    area_mm: tuple[float, float]


def marker_sheet_layout(width_mm: float, height_mm: float, paper: str = "A4") -> MarkerSheetLayout:
    """The smallest paper of TEST_SHEET_PAPERS, from ``paper`` up, that holds a width x height mm page at 100 %
    (either orientation) with the sheet's margins, header, footer and crop marks; the largest one, scaled down to
    fit, when none does."""
    if paper not in TEST_SHEET_PAPERS_PT:
        raise ValueError(f"paper must be one of {list(TEST_SHEET_PAPERS)}, got {paper!r}")

    def fit(name, orientation):
        pw, ph = _paper_mm(name, orientation, TEST_SHEET_PAPERS_PT)
        avail_w = pw - 2 * MARGIN_MM - 2 * TEST_MARK_SPACE_MM
        avail_h = ph - 2 * MARGIN_MM - TEST_HEADER_MM - TEST_FOOTER_MM - 2 * TEST_MARK_SPACE_MM
        return MarkerSheetLayout(name, orientation, min(1.0, avail_w / width_mm, avail_h / height_mm), (pw, ph),
                               (avail_w, avail_h))

    candidates = TEST_SHEET_PAPERS[TEST_SHEET_PAPERS.index(paper):]
    best = None
    for name in candidates:
        best = max(fit(name, "portrait"), fit(name, "landscape"), key=lambda f: f.scale)
        if best.scale >= 1.0:
            break
    return best


def marker_test_sheet_pdf(page_image: bytes, width_mm: float, height_mm: float, stars: int | None,
                          warnings=(), url: str = "", paper: str = "A4", lang: str = "vi", *,
                          title: str = "") -> bytes:
    """Vector PDF to print and try with a phone before press: the page image at 100 % on the smallest paper from
    ``paper`` up that holds it (``marker_sheet_layout``; scaled down only beyond A0), the scale and paper printed on
    the sheet, with crop marks at the trim corners; the marker rating (``stars`` 0..5 or None) and ``warnings``
    ((severity, translated text), ...); and the QR of ``url`` with the AR badge.
    """
    lang = _check_lang(lang)
    stars = _check_stars(stars)
    warnings = _normalize_warnings(warnings)
    if not (isinstance(width_mm, (int, float)) and isinstance(height_mm, (int, float))
            and width_mm > 0 and height_mm > 0):
        raise ValueError(f"page size must be positive millimetres, got {width_mm!r} × {height_mm!r}")
    if not url:
        raise ValueError("url (the page's deep link) is required for the test QR")
    image = _read_image(page_image, "page image")
    layout = qr_layout(url, TEST_QR_MM, "M", None, MIN_QUIET_ZONE_MODULES)
    sheet = marker_sheet_layout(width_mm, height_mm, paper)
    scale, paper = sheet.scale, sheet.paper
    (pw, ph), (avail_w, avail_h) = sheet.paper_mm, sheet.area_mm
    buf = io.BytesIO()
    canvas = new_pdf_canvas(buf, pw, ph, f"{_t('test_title', lang)} — {title or url}", lang)
    s = _Sheet(canvas, pw, ph, lang)
    left, right = MARGIN_MM, pw - MARGIN_MM

    # header: title, page label and scale (one line per language), rating
    s.text(left, MARGIN_MM + 6, _tt("test_title", lang), font=FONT_BOLD, size=14)
    size = dict(w=round(width_mm, 1), h=round(height_mm, 1), p=scale * 100, paper=paper)
    key = "scale_full" if scale >= 1.0 else "scale_reduced"
    text_w = (right - left) - 62.0  # the rating block (stars + score) takes the right 62 mm
    for i, line_lang in enumerate((lang, "en" if lang == "vi" else "vi")):
        line = _t(key, line_lang).format(**size)
        if i == 0 and title:
            line = f"{title} · {line}"
        s.fit_text(left, MARGIN_MM + 11.5 + i * 4.0, text_w, line, size=8.5, color=(0, 0, 0, 1) if i == 0 else GREY)
    s.text(right, MARGIN_MM + 4.5, f"{_tt('rating', lang)}", size=8, color=GREY, align="right")
    score = f"{stars}/{MAX_STARS}" if stars is not None else _t("not_rated", lang)
    score_w = pdfmetrics.stringWidth(score, FONT_BOLD, 10) / PT_PER_MM
    star_w = MAX_STARS * 4.4 * 1.25 - 4.4 * 0.25  # see _Sheet.stars: size + 25 % gap per star
    s.stars(right - score_w - 2.5 - star_w, MARGIN_MM + 7.0, stars, size_mm=4.4)
    s.text(right, MARGIN_MM + 10.7, score, font=FONT_BOLD, size=10, align="right")
    s.rule(left, MARGIN_MM + TEST_HEADER_MM - 1.5, right, MARGIN_MM + TEST_HEADER_MM - 1.5,
           color=(0, 0, 0, 1), width_pt=1.0)

    # page image at ``scale``, centred in the image area, with crop marks
    w, h = width_mm * scale, height_mm * scale
    area_x = MARGIN_MM + TEST_MARK_SPACE_MM
    area_y = MARGIN_MM + TEST_HEADER_MM + TEST_MARK_SPACE_MM
    x, y = area_x + (avail_w - w) / 2, area_y + (avail_h - h) / 2
    max_px = max(1, int(round(max(w, h) / 25.4 * PAGE_IMAGE_MAX_DPI)))
    reader = _jpeg_reader(image, max_px, PAGE_IMAGE_JPEG_QUALITY)
    canvas.drawImage(reader, s.x(x), s.y(y + h), w * PT_PER_MM, h * PT_PER_MM)  # stretched to the trim box
    _crop_marks(s, x, y, w, h)

    # footer: QR + badge, link, steps, warnings
    foot = ph - MARGIN_MM - TEST_FOOTER_MM
    s.rule(left, foot, right, foot)
    s.qr(layout, left, foot + 2.0)
    tx = left + layout.total_mm + 6.0
    tw = right - tx
    s.fit_text(tx, foot + 6.0, tw, url, font=FONT_MONO, size=9)
    steps = simpleSplit(_t("test_steps", lang), FONT_REGULAR, 8, tw * PT_PER_MM)
    ty = foot + 10.5
    for line in steps[:2]:
        s.text(tx, ty, line, size=8, color=GREY)
        ty += 3.6
    ty += 1.2
    s.warnings(tx, ty, tw, ph - MARGIN_MM - 1.0, list(warnings))
    canvas.showPage()
    canvas.save()
    return buf.getvalue()
