"""Print-ready QR symbols: vector SVG and PDF, 300 dpi PNG, print checks and the "Scan for AR" badge.

Sizes are physical. ``size_mm`` is the width of the symbol itself (finder pattern edge to finder pattern edge);
the quiet zone of ``border_modules`` modules is added around it, so an export is
``size_mm * (modules + 2 * border) / modules`` wide. This is the size a designer places in the layout and the
size print rules talk about ("at least 15 mm").

Colour: the modules are pure black, K only — ``#000000`` in SVG, CMYK (0, 0, 0, 1) in PDF, value 0 in PNG —
so they print in a single ink without registration fringes. The background (quiet zone included) is white.
"""
from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import numpy as np
import segno
from segno import consts as segno_consts
from PIL import Image, ImageDraw, ImageFont
from reportlab.lib.utils import ImageReader
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen import canvas as rl_canvas

from .pixels import to_edge

ECC_LEVELS = ("L", "M", "Q", "H")
# Share of codewords each level can restore (ISO/IEC 18004).
ECC_RECOVERY = {"L": 0.07, "M": 0.15, "Q": 0.25, "H": 0.30}
# Largest logo, as a share of the symbol area, allowed per level. A centred square hits data *and* parity
# codewords and partly damages the codewords on its edge, so we keep well under the recovery share to leave
# margin for real damage (ink spread, a fold, a blurry phone camera). Levels not listed refuse a logo.
LOGO_MAX_AREA_SHARE = {"Q": 0.08, "H": 0.12}
# Share of each Reed-Solomon block's correction a logo may use; the rest stays for ink spread, folds, blur.
LOGO_ERROR_BUDGET = 0.6
MIN_LOGO_MODULES = 5           # a smaller square shows nothing recognisable
MIN_SIZE_MM = 15.0             # issue 6: smaller symbols are unreliable with mid-range phone cameras on newsprint
MAX_SIZE_MM = 200.0            # a poster's QR; larger is no print use, and 1,000 mm cost 2.5 GB (issue 25)
LOGO_MAX_BYTES = 2 * 1024 * 1024
LOGO_MAX_PIXELS = 2048 * 2048  # checked from the PNG header before decoding: a 190 KB PNG can be 13,000² px
PNG_MAX_PIXELS = 40_000_000    # the PNG export's whole canvas (symbol + caption band)
MIN_MODULE_MM = 0.4            # below this newsprint dot gain fills modules in; warn (not refuse)
MIN_QUIET_ZONE_MODULES = 4     # ISO/IEC 18004 quiet zone for QR
MM_PER_INCH = 25.4
PT_PER_MM = 72.0 / MM_PER_INCH
MIN_DPI, MAX_DPI = 72, 2400

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")  # fonts-dejavu-core: covers Vietnamese diacritics
FONT_REGULAR = "DejaVuSans"
FONT_BOLD = "DejaVuSans-Bold"
FONT_MONO = "DejaVuSansMono"  # URLs and codes: fixed width keeps look-alike-free codes easy to read
BADGE_LINES = {"vi": ("Quét để xem AR", "Scan for AR"), "en": ("Scan for AR", "Quét để xem AR")}
BADGE_MAX_FONT_PT = 11.0       # caption is a label, not a headline
BADGE_LINE_GAP = 1.2           # line height / font size

WARNING_TEXTS = {
    "size_below_minimum": {
        "vi": "Mã QR nhỏ hơn {min_size:g} mm — điện thoại khó quét.",
        "en": "QR code smaller than {min_size:g} mm — hard for phones to scan.",
    },
    "module_too_small": {
        "vi": "Mô-đun {module_mm:.2f} mm < {min_module:g} mm — mực loang có thể lấp mô-đun; phóng to mã hoặc rút ngắn liên kết.",
        "en": "Module {module_mm:.2f} mm < {min_module:g} mm — ink spread may fill modules; enlarge the code or shorten the link.",
    },
    "quiet_zone_too_small": {
        "vi": "Vùng trống {quiet} mô-đun < {min_quiet} mô-đun — giữ lề trắng quanh mã.",
        "en": "Quiet zone {quiet} modules < {min_quiet} modules — keep a white margin around the code.",
    },
}


class FontNotFoundError(RuntimeError):
    """The DejaVu fonts needed for Vietnamese text are not installed. ``path`` is the missing file."""

    def __init__(self, path: Path):
        super().__init__(f"font not found: {path} (install fonts-dejavu-core)")
        self.path = path


def register_fonts() -> tuple[str, str, str]:
    """Register DejaVu Sans (regular, bold) and DejaVu Sans Mono with reportlab once; return their names."""
    for name in (FONT_REGULAR, FONT_BOLD, FONT_MONO):
        if name in pdfmetrics.getRegisteredFontNames():
            continue
        path = FONT_DIR / f"{name}.ttf"
        if not path.is_file():
            raise FontNotFoundError(path)
        pdfmetrics.registerFont(TTFont(name, str(path)))
    return FONT_REGULAR, FONT_BOLD, FONT_MONO


def _check_lang(lang: str) -> str:
    if lang not in BADGE_LINES:
        raise ValueError(f"lang must be one of {sorted(BADGE_LINES)}, got {lang!r}")
    return lang


# --------------------------------------------------------------------------------------------- symbol + checks
@dataclass(frozen=True, eq=False)
class QrSymbol:
    """An encoded QR code. ``dark`` : (modules, modules) bool, row 0 at the top, no quiet zone;
    ``data_modules`` : same shape, True where a module carries codeword bits (not a function pattern)."""

    data: str
    ecc: str
    version: int
    dark: np.ndarray
    data_modules: np.ndarray

    @property
    def modules(self) -> int:
        return int(self.dark.shape[0])


def make_symbol(data: str, ecc: str = "M") -> QrSymbol:
    """Encode ``data`` at exactly level ``ecc`` (no silent boost, so checks and logo rules hold)."""
    if not isinstance(data, str) or not data:
        raise ValueError(f"QR data must be a non-empty string, got {data!r}")
    level = str(ecc).upper()
    if level not in ECC_LEVELS:
        raise ValueError(f"ecc must be one of {ECC_LEVELS}, got {ecc!r}")
    try:
        qr = segno.make_qr(data, error=level, boost_error=False)
    except segno.DataOverflowError as exc:
        raise ValueError(f"data too long for a QR code at ecc {level}: {len(data)} characters") from exc
    dark = np.array([[bool(v) for v in row] for row in qr.matrix], dtype=bool)
    version = int(qr.version)
    return QrSymbol(data=data, ecc=level, version=version, dark=dark, data_modules=~_function_patterns(version))


def _function_patterns(version: int) -> np.ndarray:
    """(n, n) bool: modules that carry no codeword bits (ISO/IEC 18004 6.3): finder patterns with separators and
    format information (the three 9 × 9 corners, 8 wide on the far sides), timing row/column 6, alignment
    patterns, version information (version 7 and up)."""
    n = 17 + 4 * version
    fixed = np.zeros((n, n), dtype=bool)
    fixed[:9, :9] = True
    fixed[:9, n - 8:] = True
    fixed[n - 8:, :9] = True  # includes the dark module at (n - 8, 8)
    fixed[6, :] = True
    fixed[:, 6] = True
    if version >= 2:
        centres = segno_consts.ALIGNMENT_POS[version - 2]
        last = centres[-1]
        for r in centres:
            for c in centres:
                if (r, c) in ((6, 6), (6, last), (last, 6)):
                    continue  # would sit on a finder pattern
                fixed[r - 2:r + 3, c - 2:c + 3] = True
    if version >= 7:
        fixed[:6, n - 11:n - 8] = True
        fixed[n - 11:n - 8, :6] = True
    return fixed


# ISO/IEC 18004 table 9: misdecode-protection codewords, which do not count toward error correction.
_MISDECODE_PROTECTION = {(1, "L"): 3, (1, "M"): 2, (1, "Q"): 1, (1, "H"): 1, (2, "L"): 2, (3, "L"): 1}


@dataclass(frozen=True, eq=False)
class CodewordMap:
    """Where each codeword of a symbol lies and how many errors its Reed-Solomon block can correct.

    ``codeword`` : (modules, modules) int, index in the final (interleaved) codeword sequence of the codeword
    a data module belongs to, -1 for function patterns and remainder bits; ``block`` : block of each codeword
    in that sequence; ``correctable`` : errors each block can correct.
    """

    codeword: np.ndarray
    block: tuple[int, ...]
    correctable: tuple[int, ...]

    def errors_per_block(self, damaged: np.ndarray) -> tuple[int, ...]:
        """Codewords per block touched by the (modules, modules) bool mask ``damaged`` (worst case: every
        touched codeword is wrong)."""
        hit = np.unique(self.codeword[damaged & (self.codeword >= 0)])
        counts = [0] * len(self.correctable)
        for index in hit:
            counts[self.block[index]] += 1
        return tuple(counts)


def codeword_map(symbol: QrSymbol) -> CodewordMap:
    """Map modules to codewords following ISO/IEC 18004 7.6 (block interleaving) and 7.7.3 (placement: two-module
    columns from the right, alternately upwards and downwards, skipping the vertical timing column 6)."""
    n = symbol.modules
    codeword = np.full((n, n), -1, dtype=np.int32)
    bit = 0
    for right in range(n - 1, 0, -2):
        if right <= 6:
            right -= 1  # the column pair left of the timing pattern shifts by one
        upwards = ((right & 2) == 0) ^ (right < 6)  # direction flips for the pairs left of the timing column
        for vertical in range(n):
            row = n - 1 - vertical if upwards else vertical
            for col in (right, right - 1):
                if symbol.data_modules[row, col]:
                    codeword[row, col] = bit // 8
                    bit += 1
    blocks = [(info.num_total, info.num_data) for info in
              segno_consts.ECC[symbol.version][segno_consts.ERROR_MAPPING[symbol.ecc]]
              for _ in range(info.num_blocks)]
    total = sum(t for t, _ in blocks)
    codeword[codeword >= total] = -1  # remainder bits belong to no codeword
    order = []  # block of each codeword in the interleaved sequence: data codewords, then EC codewords
    for i in range(max(d for _, d in blocks)):
        order.extend(b for b, (_, d) in enumerate(blocks) if i < d)
    for i in range(max(t - d for t, d in blocks)):
        order.extend(b for b, (t, d) in enumerate(blocks) if i < t - d)
    p = _MISDECODE_PROTECTION.get((symbol.version, symbol.ecc), 0)
    correctable = tuple((t - d - p) // 2 for t, d in blocks)
    return CodewordMap(codeword=codeword, block=tuple(order), correctable=correctable)


@dataclass(frozen=True)
class PrintCheck:
    """Print constraints of one symbol at one physical size.

    ``size_mm``: symbol width without quiet zone; ``total_mm``: with it; ``warnings``: codes from
    ``WARNING_TEXTS`` (empty when fit for print). ``messages(lang)`` gives the translated texts.
    """

    data: str
    ecc: str
    version: int
    modules: int
    size_mm: float
    module_mm: float
    quiet_zone_modules: int
    total_mm: float
    warnings: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.warnings

    def messages(self, lang: str = "vi") -> tuple[str, ...]:
        lang = _check_lang(lang)
        values = dict(min_size=MIN_SIZE_MM, module_mm=self.module_mm, min_module=MIN_MODULE_MM,
                      quiet=self.quiet_zone_modules, min_quiet=MIN_QUIET_ZONE_MODULES)
        return tuple(WARNING_TEXTS[code][lang].format(**values) for code in self.warnings)

    def summary(self, lang: str = "vi") -> str:
        """One line for a sheet: size, module size, quiet zone, ecc."""
        if _check_lang(lang) == "vi":
            return (f"QR {self.size_mm:g} mm · mô-đun {self.module_mm:.2f} mm · vùng trống "
                    f"{self.quiet_zone_modules} mô-đun · sửa lỗi {self.ecc}")
        return (f"QR {self.size_mm:g} mm · module {self.module_mm:.2f} mm · quiet zone "
                f"{self.quiet_zone_modules} modules · ECC {self.ecc}")


def _checks_for(symbol: QrSymbol, size_mm: float, border_modules: int) -> PrintCheck:
    module_mm = size_mm / symbol.modules
    warnings = []
    if size_mm < MIN_SIZE_MM:
        warnings.append("size_below_minimum")
    if module_mm < MIN_MODULE_MM:
        warnings.append("module_too_small")
    if border_modules < MIN_QUIET_ZONE_MODULES:
        warnings.append("quiet_zone_too_small")
    return PrintCheck(data=symbol.data, ecc=symbol.ecc, version=symbol.version, modules=symbol.modules,
                      size_mm=float(size_mm), module_mm=module_mm, quiet_zone_modules=int(border_modules),
                      total_mm=module_mm * (symbol.modules + 2 * border_modules), warnings=tuple(warnings))


def qr_print_checks(data: str, size_mm: float, ecc: str = "M",
                    border_modules: int = MIN_QUIET_ZONE_MODULES) -> PrintCheck:
    """Check ``data`` encoded at ``ecc`` and printed ``size_mm`` wide (without quiet zone). Never raises on
    small sizes — it reports them; exports refuse what the checks call unprintable."""
    if not size_mm > 0:
        raise ValueError(f"size_mm must be positive, got {size_mm!r}")
    if border_modules < 0:
        raise ValueError(f"border_modules must be >= 0, got {border_modules!r}")
    return _checks_for(make_symbol(data, ecc), float(size_mm), int(border_modules))


# ------------------------------------------------------------------------------------------------ layout
@dataclass(frozen=True)
class QrLayout:
    """Everything needed to draw one symbol: modules with the logo area knocked out, physical module size.

    ``logo_box``: (first, last+1) module index of the square cleared for the logo, on both axes, or None.
    """

    symbol: QrSymbol
    dark: np.ndarray
    module_mm: float
    border: int
    logo: Image.Image | None
    logo_box: tuple[int, int] | None
    check: PrintCheck

    @property
    def total_modules(self) -> int:
        return self.symbol.modules + 2 * self.border

    @property
    def total_mm(self) -> float:
        return self.total_modules * self.module_mm

    def runs(self):
        """Horizontal runs of dark modules as (row, col, length), row 0 at the top, in symbol modules."""
        for row in range(self.dark.shape[0]):
            line = np.concatenate(([False], self.dark[row], [False])).astype(np.int8)
            edges = np.flatnonzero(np.diff(line))
            for start, stop in zip(edges[::2], edges[1::2]):
                yield row, int(start), int(stop - start)


def _load_logo(logo_png: bytes) -> Image.Image:
    if len(logo_png) > LOGO_MAX_BYTES:
        raise ValueError(f"logo is larger than {LOGO_MAX_BYTES // (1024 * 1024)} MB")
    try:
        image = Image.open(io.BytesIO(logo_png))  # reads the header only
    except Exception as exc:  # PIL raises many types for bad input; re-raise as one clear error
        raise ValueError(f"logo is not a readable image: {exc}") from exc
    if image.format != "PNG":
        raise ValueError(f"logo must be a PNG, got {image.format}")
    if image.width * image.height > LOGO_MAX_PIXELS:
        raise ValueError(f"logo is {image.width} x {image.height} px; at most {LOGO_MAX_PIXELS:,} pixels "
                         f"(e.g. 2048 x 2048)")
    try:
        image.load()
    except Exception as exc:  # noqa: BLE001 - as above
        raise ValueError(f"logo is not a readable image: {exc}") from exc
    rgba = image.convert("RGBA")
    flat = Image.new("RGB", rgba.size, (255, 255, 255))  # flatten onto white: no transparency in print files
    flat.paste(rgba, mask=rgba.getchannel("A"))
    return flat


def qr_layout(data: str, size_mm: float, ecc: str = "M", logo_png: bytes | None = None,
              border_modules: int = MIN_QUIET_ZONE_MODULES, logo_share: float | None = None) -> QrLayout:
    """Validate export parameters and lay the symbol out. Raises ValueError with the reason on:
    size under ``MIN_SIZE_MM``, quiet zone under ``MIN_QUIET_ZONE_MODULES``, a logo at a level without
    margin (L, M), covering more than ``LOGO_MAX_AREA_SHARE`` of the symbol, or hiding more codewords of any
    error-correction block than ``LOGO_ERROR_BUDGET`` of its capacity.

    ``logo_share``: logo square area / symbol area. Default: the largest square up to the level's
    ``LOGO_MAX_AREA_SHARE`` that keeps within the block budget (it shrinks to fit); an explicit share that
    does not fit is refused rather than silently shrunk.
    """
    if not isinstance(size_mm, (int, float)) or not math.isfinite(size_mm) or not MIN_SIZE_MM <= size_mm <= MAX_SIZE_MM:
        raise ValueError(f"QR size must be at least {MIN_SIZE_MM:g} mm and at most {MAX_SIZE_MM:g} mm, got {size_mm!r}")
    if not isinstance(border_modules, int) or border_modules < MIN_QUIET_ZONE_MODULES:
        raise ValueError(f"quiet zone must be at least {MIN_QUIET_ZONE_MODULES} modules, got {border_modules!r}")
    symbol = make_symbol(data, ecc)
    dark = symbol.dark.copy()
    logo = logo_box = None
    if logo_png is None:
        if logo_share is not None:
            raise ValueError("logo_share given without a logo")
    else:
        max_share = LOGO_MAX_AREA_SHARE.get(symbol.ecc)
        if max_share is None:
            raise ValueError(
                f"a logo needs error correction Q or H; ecc {symbol.ecc} restores only "
                f"{ECC_RECOVERY[symbol.ecc]:.0%} of the code and has no margin for a covered centre")
        share = max_share if logo_share is None else float(logo_share)
        if not 0 < share <= max_share:
            raise ValueError(f"logo covering {share:.0%} of the code is more than ecc {symbol.ecc} tolerates "
                             f"(at most {max_share:.0%}); use a smaller logo or ecc H")
        logo_box = _logo_box(symbol, share, shrink_to_fit=logo_share is None)
        first, stop = logo_box
        dark[first:stop, first:stop] = False
        logo = _load_logo(logo_png)
    check = _checks_for(symbol, float(size_mm), border_modules)
    return QrLayout(symbol=symbol, dark=dark, module_mm=float(size_mm) / symbol.modules, border=border_modules,
                    logo=logo, logo_box=logo_box, check=check)


def _logo_box(symbol: QrSymbol, share: float, shrink_to_fit: bool) -> tuple[int, int]:
    """Centred square (first, stop) module range for a logo of ``share`` of the symbol area such that, in every
    Reed-Solomon block, the codewords it covers use at most ``LOGO_ERROR_BUDGET`` of the block's correction.
    Area alone is not enough: interleaving spreads a centred square unevenly over the blocks. With
    ``shrink_to_fit`` the square shrinks until it fits; otherwise a square that does not fit is refused."""
    n = symbol.modules
    side = int(math.floor(math.sqrt(share) * n))
    side -= (side - n) % 2  # same parity as n, so the square sits exactly in the centre
    cmap = codeword_map(symbol)
    budget = [int(LOGO_ERROR_BUDGET * c) for c in cmap.correctable]
    while side >= MIN_LOGO_MODULES:
        first = (n - side) // 2
        covered = np.zeros((n, n), dtype=bool)
        covered[first:first + side, first:first + side] = True
        errors = cmap.errors_per_block(covered)
        worst = max(range(len(errors)), key=lambda b: errors[b] / max(budget[b], 1))
        if all(e <= b for e, b in zip(errors, budget)):
            return first, first + side
        if not shrink_to_fit:
            raise ValueError(
                f"a logo covering {share:.0%} of this code hides {errors[worst]} codewords of error-correction "
                f"block {worst + 1}, which can spare only {budget[worst]}; use a smaller logo or ecc H")
        side -= 2
    raise ValueError(f"no logo of at least {MIN_LOGO_MODULES} modules fits ecc {symbol.ecc} for this code; "
                     f"use ecc H or shorter data")


def _logo_rect(layout: QrLayout) -> tuple[float, float, float, float]:
    """Logo image rect (x, y, w, h) in modules from the quiet-zone top-left, aspect kept, half-module padding."""
    first, stop = layout.logo_box
    inner = (stop - first) - 1.0
    w, h = layout.logo.size
    scale = inner / max(w, h)
    lw, lh = w * scale, h * scale
    cx = cy = layout.border + (first + stop) / 2.0
    return cx - lw / 2, cy - lh / 2, lw, lh


# --------------------------------------------------------------------------------------------------- badge
def _badge_font_pt(width_pt: float, lang: str) -> float:
    """Largest caption size (≤ BADGE_MAX_FONT_PT) whose longest line fits ``width_pt`` with a 5 % margin."""
    register_fonts()
    widest = max(pdfmetrics.stringWidth(line, FONT_BOLD, 1.0) for line in BADGE_LINES[lang])
    return min(BADGE_MAX_FONT_PT, 0.9 * width_pt / widest)


def _badge_band_mm(total_mm: float, lang: str) -> tuple[float, float]:
    """(font size pt, caption band height mm) under a symbol ``total_mm`` wide."""
    font_pt = _badge_font_pt(total_mm * PT_PER_MM, lang)
    band_pt = font_pt * BADGE_LINE_GAP * len(BADGE_LINES[lang]) + font_pt * 0.6
    return font_pt, band_pt / PT_PER_MM


# ---------------------------------------------------------------------------------------------------- PDF
def new_pdf_canvas(buf, width_mm: float, height_mm: float, title: str, lang: str = "vi") -> rl_canvas.Canvas:
    """A reportlab canvas for print files: page in mm, reproducible bytes (``invariant``), colours forced to
    CMYK (reportlab raises on an RGB fill), DejaVu as the initial font so no non-embedded Helvetica is
    referenced, document language set for accessibility."""
    register_fonts()
    canvas = rl_canvas.Canvas(buf, pagesize=(width_mm * PT_PER_MM, height_mm * PT_PER_MM), invariant=1,
                              enforceColorSpace="cmyk", initialFontName=FONT_REGULAR,
                              lang="vi-VN" if lang == "vi" else "en")
    canvas.setTitle(title)
    canvas.setAuthor("Báo Nhúng")
    canvas.setCreator("Báo Nhúng print desk")
    return canvas


def draw_qr(canvas, layout: QrLayout, x_mm: float, y_mm: float) -> None:
    """Draw ``layout`` on a reportlab canvas: quiet zone's bottom-left corner at (x_mm, y_mm) in PDF
    coordinates (mm, origin bottom-left, y up). Modules become one vector path of rectangles (``re`` … ``f``)
    filled with CMYK (0, 0, 0, 1); the quiet zone is painted white so the code survives coloured backgrounds."""
    m = layout.module_mm * PT_PER_MM
    x0, y0 = x_mm * PT_PER_MM, y_mm * PT_PER_MM
    total = layout.total_modules * m
    top = y0 + total - layout.border * m  # PDF y of the symbol's top edge
    canvas.saveState()
    canvas.setFillColorCMYK(0, 0, 0, 0)
    canvas.rect(x0, y0, total, total, stroke=0, fill=1)
    canvas.setFillColorCMYK(0, 0, 0, 1)
    path = canvas.beginPath()
    for row, col, length in layout.runs():
        # matrix row r (down) spans PDF y from top-(r+1)m to top-rm
        path.rect(x0 + (layout.border + col) * m, top - (row + 1) * m, length * m, m)
    canvas.drawPath(path, stroke=0, fill=1)
    if layout.logo is not None:
        lx, ly, lw, lh = _logo_rect(layout)
        canvas.drawImage(ImageReader(layout.logo), x0 + lx * m, y0 + total - (ly + lh) * m, lw * m, lh * m)
    canvas.restoreState()


def draw_badge_caption(canvas, x_mm: float, y_mm: float, width_mm: float, lang: str = "vi") -> float:
    """Draw the "Quét để xem AR / Scan for AR" caption centred in a band of ``width_mm`` whose top edge is at
    ``y_mm`` (PDF coordinates). Returns the band height in mm."""
    lang = _check_lang(lang)
    font_pt, band_mm = _badge_band_mm(width_mm, lang)
    register_fonts()
    canvas.saveState()
    canvas.setFillColorCMYK(0, 0, 0, 1)
    cx = (x_mm + width_mm / 2) * PT_PER_MM
    baseline = y_mm * PT_PER_MM - font_pt * 1.05
    for i, line in enumerate(BADGE_LINES[lang]):
        canvas.setFont(FONT_BOLD if i == 0 else FONT_REGULAR, font_pt)
        canvas.drawCentredString(cx, baseline - i * font_pt * BADGE_LINE_GAP, line)
    canvas.restoreState()
    return band_mm


def qr_pdf(data: str, size_mm: float, ecc: str = "M", logo_png: bytes | None = None,
           border_modules: int = MIN_QUIET_ZONE_MODULES, *, badge: bool = False, lang: str = "vi",
           logo_share: float | None = None) -> bytes:
    """One-page vector PDF of the symbol. Page = symbol + quiet zone (+ caption band when ``badge``)."""
    layout = qr_layout(data, size_mm, ecc, logo_png, border_modules, logo_share)
    total = layout.total_mm
    band = _badge_band_mm(total, _check_lang(lang))[1] if badge else 0.0
    buf = io.BytesIO()
    canvas = new_pdf_canvas(buf, total, total + band, f"QR {data}", lang)
    if badge:
        canvas.setFillColorCMYK(0, 0, 0, 0)
        canvas.rect(0, 0, total * PT_PER_MM, band * PT_PER_MM, stroke=0, fill=1)
        draw_badge_caption(canvas, 0, band, total, lang)
    draw_qr(canvas, layout, 0, band)
    canvas.showPage()
    canvas.save()
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------------- SVG
def _fmt(value: float) -> str:
    return f"{value:.4f}".rstrip("0").rstrip(".")


def qr_svg(data: str, size_mm: float, ecc: str = "M", logo_png: bytes | None = None,
           border_modules: int = MIN_QUIET_ZONE_MODULES, *, badge: bool = False, lang: str = "vi",
           logo_share: float | None = None) -> bytes:
    """SVG of the symbol: ``width``/``height`` in mm, user units = modules (viewBox origin at the quiet zone's
    top-left), one ``<path>`` filled #000000 for all modules. The logo, if any, is an embedded PNG ``<image>``;
    the badge caption is live ``<text>`` in DejaVu Sans."""
    layout = qr_layout(data, size_mm, ecc, logo_png, border_modules, logo_share)
    lang = _check_lang(lang)
    n_total = layout.total_modules
    font_pt, band_mm = _badge_band_mm(layout.total_mm, lang) if badge else (0.0, 0.0)
    band = band_mm / layout.module_mm  # in modules
    b = layout.border
    d = "".join(f"M{b + col} {b + row}h{length}v1h-{length}z" for row, col, length in layout.runs())
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" version="1.1" '
        f'width="{_fmt(layout.total_mm)}mm" height="{_fmt(layout.total_mm + band_mm)}mm" '
        f'viewBox="0 0 {n_total} {_fmt(n_total + band)}">',
        f"<title>{escape(data)}</title>",
        f'<rect x="0" y="0" width="{n_total}" height="{_fmt(n_total + band)}" fill="#ffffff"/>',
        f'<path fill="#000000" shape-rendering="crispEdges" d="{d}"/>',
    ]
    if layout.logo is not None:
        lx, ly, lw, lh = _logo_rect(layout)
        buf = io.BytesIO()
        layout.logo.save(buf, format="PNG")
        href = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
        parts.append(f'<image x="{_fmt(lx)}" y="{_fmt(ly)}" width="{_fmt(lw)}" height="{_fmt(lh)}" '
                     f'preserveAspectRatio="xMidYMid meet" xlink:href={quoteattr(href)} href={quoteattr(href)}/>')
    if badge:
        size = font_pt / PT_PER_MM / layout.module_mm  # font size in modules
        for i, line in enumerate(BADGE_LINES[lang]):
            y = n_total + size * 1.05 + i * size * BADGE_LINE_GAP
            weight = "bold" if i == 0 else "normal"
            parts.append(f'<text x="{_fmt(n_total / 2)}" y="{_fmt(y)}" font-family="DejaVu Sans, Arial, sans-serif" '
                         f'font-size="{_fmt(size)}" font-weight="{weight}" text-anchor="middle" '
                         f'fill="#000000">{escape(line)}</text>')
    parts.append("</svg>")
    return ("\n".join(parts) + "\n").encode("utf-8")


# ---------------------------------------------------------------------------------------------------- PNG
def _mm_to_px(mm: float, dpi: int) -> int:
    return int(round(mm * dpi / MM_PER_INCH))


def qr_png(data: str, size_mm: float, ecc: str = "M", logo_png: bytes | None = None,
           border_modules: int = MIN_QUIET_ZONE_MODULES, *, dpi: int = 300, badge: bool = False,
           lang: str = "vi", logo_share: float | None = None) -> bytes:
    """PNG at ``dpi`` (pHYs set) of exactly round(total_mm · dpi / 25.4) pixels square (+ caption band).
    Without a logo the image is 8-bit grey holding only 0 (modules) and 255 — no anti-aliasing, so the black is
    pure K. Module edges are snapped to whole pixels (modules differ by at most one pixel)."""
    if not isinstance(dpi, int) or not MIN_DPI <= dpi <= MAX_DPI:
        raise ValueError(f"dpi must be an integer in {MIN_DPI}..{MAX_DPI}, got {dpi!r}")
    layout = qr_layout(data, size_mm, ecc, logo_png, border_modules, logo_share)  # checks the size range first
    lang = _check_lang(lang)
    px = _mm_to_px(layout.total_mm, dpi)
    if px * px * (1 + (1 if badge else 0)) > PNG_MAX_PIXELS:
        raise ValueError(f"a {size_mm:g} mm QR at {dpi} dpi is more than {PNG_MAX_PIXELS:,} pixels")
    n_total = layout.total_modules
    grid = np.zeros((n_total, n_total), dtype=bool)
    b = layout.border
    grid[b:b + layout.symbol.modules, b:b + layout.symbol.modules] = layout.dark
    # pixel i's centre (edge coordinate i + 0.5, markers.pixels) falls in module floor((i + 0.5) * n_total / px)
    idx = np.minimum((to_edge(np.arange(px)) * n_total / px).astype(int), n_total - 1)
    pixels = np.where(grid[idx][:, idx], 0, 255).astype(np.uint8)
    font_pt, band_mm = _badge_band_mm(layout.total_mm, lang) if badge else (0.0, 0.0)
    band_px = _mm_to_px(band_mm, dpi)
    image = Image.new("L", (px, px + band_px), 255)
    image.paste(Image.fromarray(pixels, mode="L"), (0, 0))
    if layout.logo is not None:
        lx, ly, lw, lh = _logo_rect(layout)
        scale = px / n_total
        size = (max(1, round(lw * scale)), max(1, round(lh * scale)))
        image = image.convert("RGB")
        image.paste(layout.logo.resize(size, Image.LANCZOS), (round(lx * scale), round(ly * scale)))
    if badge:
        register_fonts()
        draw = ImageDraw.Draw(image)
        draw.fontmode = "1"  # no anti-aliasing: caption stays pure black like the modules
        size_px = font_pt / 72.0 * dpi
        for i, line in enumerate(BADGE_LINES[lang]):
            font = ImageFont.truetype(str(FONT_DIR / f"{FONT_BOLD if i == 0 else FONT_REGULAR}.ttf"),
                                      max(1, round(size_px)))
            baseline = px + size_px * 1.05 + i * size_px * BADGE_LINE_GAP
            draw.text((px / 2, baseline), line, fill=0, font=font, anchor="ms")
    buf = io.BytesIO()
    image.save(buf, format="PNG", dpi=(dpi, dpi), optimize=True)
    return buf.getvalue()


@dataclass(frozen=True)
class QrFormat:
    """One export format: the function and the HTTP media type / file extension to serve it with."""

    export: object  # callable(data, size_mm, ecc="M", logo_png=None, border_modules=4, *, badge, lang, ...) -> bytes
    media_type: str
    extension: str


# Format registry for callers that take the format from a URL (``/qr.{svg,pdf,png}``).
QR_FORMATS = {
    "svg": QrFormat(qr_svg, "image/svg+xml", "svg"),
    "pdf": QrFormat(qr_pdf, "application/pdf", "pdf"),
    "png": QrFormat(qr_png, "image/png", "png"),
}
