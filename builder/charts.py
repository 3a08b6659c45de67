"""Server-rendered charts and number formats of the readership dashboard (issue 26). No Flask, no JavaScript.

Why SVG from the server rather than a chart library in the browser: the numbers are already on the server, the
newsroom pages run under a CSP without inline scripts or styles, nothing has to be pinned, audited and served from
node_modules, and a chart is there in the first paint on any phone, printable and readable without JavaScript.

Geometry is written in percentages of the chart box (no viewBox), so a chart stretches to any width while its text
keeps its pixel size: legible at 390 px as at 1440 px. Every bar and heat-map cell carries a ``<title>`` with its
exact value (a tooltip, and what a screen reader says). Colours and sizes are SVG presentation attributes, which
the CSP's ``style-src 'self'`` allows (a ``style=`` attribute it would refuse).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Sequence

from babel.dates import format_date
from babel.numbers import format_decimal, format_percent
from markupsafe import Markup, escape

# ------------------------------------------------------------------------------------------------ numbers
PERCENT_FORMAT = "#,##0.#%"  # one decimal at most: 66,7 % says enough, 66,6667 % pretends
DATE_FORMAT = {"vi": "dd/MM/yyyy", "en": "d MMM yyyy"}  # Vietnamese newsrooms write 01/12/2026
DASH = "—"  # a rate with nothing to divide by


@dataclass(frozen=True)
class Numbers:
    """Numbers as the reader's language writes them: vi 1.234.567 and 12,5 %, en 1,234,567 and 12.5 %."""

    lang: str = "vi"

    def int(self, n: int | float | None) -> str:
        return DASH if n is None else format_decimal(n, locale=self.lang)

    def dec(self, x: float | None, digits: int = 1) -> str:
        return DASH if x is None else format_decimal(round(x, digits), format="#,##0." + "#" * digits,
                                                     locale=self.lang)

    def pct(self, ratio: float | None) -> str:
        return DASH if ratio is None else format_percent(ratio, format=PERCENT_FORMAT, locale=self.lang)

    def share(self, part: int, whole: int) -> str:
        """``part`` of ``whole`` as a percentage (— when the whole is 0)."""
        return self.pct(part / whole if whole else None)

    def seconds(self, ms: int | float | None) -> str:
        """A short time: "0,8 s", "12,5 s" (time to recognition and other waits)."""
        return DASH if ms is None else f"{self.dec(ms / 1000)} s"

    def duration(self, ms: int | float | None) -> str:
        """A long time: "45 s", "12 ph 05 s" / "12 min 05 s", "3 giờ 07 ph" / "3 h 07 min"."""
        if ms is None:
            return DASH
        s = int(round(ms / 1000))
        minute, hour = ("ph", "giờ") if self.lang == "vi" else ("min", "h")
        if s < 60:
            return f"{s} s"
        if s < 3600:
            return f"{s // 60} {minute} {s % 60:02d} s"
        return f"{self.int(s // 3600)} {hour} {(s % 3600) // 60:02d} {minute}"

    def date(self, d: dt.date | str) -> str:
        d = dt.date.fromisoformat(d) if isinstance(d, str) else d
        return format_date(d, DATE_FORMAT.get(self.lang, DATE_FORMAT["en"]), locale=self.lang)


# ------------------------------------------------------------------------------------------------ bars
def share_pct(value: float, largest: float) -> float:
    """A bar's length in % of its track: 0 for 0, at least MIN_BAR_PCT for anything above 0 (a single reader must
    be seen beside a thousand)."""
    if value <= 0 or largest <= 0:
        return 0.0
    return round(max(MIN_BAR_PCT, 100.0 * value / largest), 2)


MIN_BAR_PCT = 0.8


@dataclass(frozen=True)
class Column:
    value: float
    label: str  # under the column ("" to leave it out when columns are dense)
    title: str  # the tooltip: what it is and its exact value


COLUMN_GAP = 0.22  # share of a column's slot left empty between columns
AXIS_PX = 22  # room under the columns for their labels
TOP_PX = 18  # room above the tallest column for its value


def columns_svg(columns: Sequence[Column], *, height_px: int = 150, label: str = "", top_text: str = "",
                css_class: str = "chart-cols") -> Markup:
    """A column chart: one column per item, heights relative to the largest, labels under the columns, the
    largest value written above the chart (``top_text``). ``label``: the chart's accessible name."""
    n = max(len(columns), 1)
    largest = max((c.value for c in columns), default=0)
    plot_h = height_px - AXIS_PX - TOP_PX
    slot = 100.0 / n
    parts = [f'<svg class="{escape(css_class)}" width="100%" height="{height_px}" role="img" '
             f'aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">',
             f'<line class="axis" x1="0" x2="100%" y1="{TOP_PX + plot_h}" y2="{TOP_PX + plot_h}"/>']
    if top_text and largest > 0:
        parts.append(f'<line class="grid" x1="0" x2="100%" y1="{TOP_PX}" y2="{TOP_PX}"/>'
                     f'<text class="max" x="0" y="{TOP_PX - 5}">{escape(top_text)}</text>')
    for i, c in enumerate(columns):
        h = plot_h * share_pct(c.value, largest) / 100.0
        x = i * slot + slot * COLUMN_GAP / 2
        w = slot * (1 - COLUMN_GAP)
        parts.append(f'<rect class="col" x="{x:.3f}%" width="{w:.3f}%" y="{TOP_PX + plot_h - h:.1f}" '
                     f'height="{h:.1f}"><title>{escape(c.title)}</title></rect>')
        if c.label:
            parts.append(f'<text class="tick" x="{i * slot + slot / 2:.3f}%" y="{height_px - 6}" '
                         f'text-anchor="middle">{escape(c.label)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


# ------------------------------------------------------------------------------------------------ heat-map
# ColorBrewer YlOrRd: light yellow for few aim points, dark red for the most; readable over a greyed page and by
# the common colour-vision deficiencies (it is a lightness ramp, not a red-green one).
HEAT_RAMP = ((255, 237, 160), (254, 178, 76), (240, 59, 32), (128, 0, 38))
HEAT_MIN_OPACITY = 0.45  # the faintest cell still shows over the page; the hottest hides the print under it
HEAT_MAX_OPACITY = 0.85


def heat_colour(v: float) -> str:
    """The ramp's colour at ``v`` in [0, 1] (linear between its stops), as #rrggbb."""
    v = min(max(v, 0.0), 1.0) * (len(HEAT_RAMP) - 1)
    i = min(int(v), len(HEAT_RAMP) - 2)
    f = v - i
    a, b = HEAT_RAMP[i], HEAT_RAMP[i + 1]
    return "#" + "".join(f"{round(a[k] + (b[k] - a[k]) * f):02x}" for k in range(3))


def heat_opacity(v: float) -> float:
    return round(HEAT_MIN_OPACITY + (HEAT_MAX_OPACITY - HEAT_MIN_OPACITY) * min(max(v, 0.0), 1.0), 3)


def heatmap_svg(cells: Sequence[Sequence[int]], cell_mm: float, width_mm: float, height_mm: float,
                image_url: str | None, *, label: str = "", cell_title=lambda row, col, n: str(n),
                boxes: Sequence[tuple] = ()) -> Markup:
    """The page image with the aim counts drawn over it: ``cells[row][col]`` (row 0 at the top), a cell covering
    x in [col·cell_mm, (col+1)·cell_mm) and y likewise, in page mm — the SVG's own units (viewBox = the page in mm,
    y down, as the heat-map and the page image both are), so the cells fall where readers aimed whatever the size it
    is shown at. Empty cells are not drawn; a cell's colour and opacity grow linearly with its count. ``boxes``:
    overlays outlined over it, ``(x_mm, y_mm, width_mm, height_mm, rotation_deg, name)`` (top-left of the unrotated
    box, turned clockwise about its centre, as the editor stores them)."""
    largest = max((max(r) for r in cells if r), default=0)
    parts = [f'<svg class="heatmap" viewBox="0 0 {width_mm:g} {height_mm:g}" role="img" aria-label="{escape(label)}" '
             f'preserveAspectRatio="xMidYMid meet" xmlns="http://www.w3.org/2000/svg">',
             f'<rect class="heat-paper" x="0" y="0" width="{width_mm:g}" height="{height_mm:g}"/>']
    if image_url:
        parts.append(f'<image class="heat-page" href="{escape(image_url)}" x="0" y="0" width="{width_mm:g}" '
                     f'height="{height_mm:g}" preserveAspectRatio="none"/>')
    for r, row in enumerate(cells):
        for c, n in enumerate(row):
            if n <= 0:
                continue
            v = n / largest
            w = min(cell_mm, width_mm - c * cell_mm)  # the last column and row stop at the page's edge
            h = min(cell_mm, height_mm - r * cell_mm)
            parts.append(f'<rect class="heat-cell" data-row="{r}" data-col="{c}" data-n="{n}" x="{c * cell_mm:g}" '
                         f'y="{r * cell_mm:g}" width="{w:g}" height="{h:g}" fill="{heat_colour(v)}" '
                         f'fill-opacity="{heat_opacity(v)}"><title>{escape(cell_title(r, c, n))}</title></rect>')
    for x, y, w, h, rot, name in boxes:
        turn = f' transform="rotate({rot:g} {x + w / 2:g} {y + h / 2:g})"' if rot else ""
        parts.append(f'<rect class="heat-box" x="{x:g}" y="{y:g}" width="{w:g}" height="{h:g}"{turn}>'
                     f'<title>{escape(name)}</title></rect>')
    parts.append("</svg>")
    return Markup("".join(parts))


def heat_legend_svg(largest: int, low_text: str, high_text: str) -> Markup:
    """A strip of the ramp from 1 to ``largest`` aim points, labelled at both ends."""
    stops = "".join(f'<stop offset="{i / (len(HEAT_RAMP) - 1):.3f}" stop-color="{heat_colour(i / (len(HEAT_RAMP) - 1))}"/>'
                    for i in range(len(HEAT_RAMP)))
    return Markup(
        '<svg class="heat-legend" width="100%" height="34" role="img" aria-hidden="true" '
        'xmlns="http://www.w3.org/2000/svg"><defs><linearGradient id="heat-ramp">' + stops + '</linearGradient></defs>'
        '<rect x="0" y="0" width="100%" height="12" fill="url(#heat-ramp)"/>'
        f'<text class="tick" x="0" y="30">{escape(low_text)}</text>'
        f'<text class="tick" x="100%" y="30" text-anchor="end">{escape(high_text)}</text></svg>')
