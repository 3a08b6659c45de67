"""Newspaper pages: a JPEG/PNG scan or one page of a PDF, and the page's physical size."""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from builder.errors import InvalidAssetError
from builder.importers.common import InspectedAsset
from builder.importers.image import _image_meta, _load_image, _open_image, _upright
from builder.importers.limits import UploadLimits
from builder.importers.pdf import render_pdf_page
from builder.importers.sniff import FORMATS


PAGE_PRESETS: dict[str, tuple[float, float]] = {
    "A4": (210.0, 297.0),
    "A3": (297.0, 420.0),
    "berliner": (315.0, 470.0),
    "tabloid": (280.0, 430.0),
}
# No printed page is smaller than a business card or bigger than a 2 m poster.
PAGE_MM_MIN, PAGE_MM_MAX = 50.0, 2000.0


def page_size_mm(preset_or_values: str | tuple[float, float] | Mapping[str, Any] | None,
                 meta: Mapping[str, Any] | None = None) -> tuple[float, float]:
    """The page's physical (width_mm, height_mm).

    preset_or_values : a key of :data:`PAGE_PRESETS` (case-insensitive; turned landscape when the page image is
    wider than tall), a ``(width_mm, height_mm)`` pair, a mapping with ``width_mm``/``height_mm``, or ``None`` to
    take the size read from the PDF (``meta["width_mm"]``, ``meta["height_mm"]``).
    Raises InvalidAssetError ``invalid_page_size`` when nothing usable is given or a value is out of 50–2000 mm.
    """
    meta = meta or {}
    if isinstance(preset_or_values, str) and preset_or_values.strip():
        key = {k.lower(): k for k in PAGE_PRESETS}.get(preset_or_values.strip().lower())
        if key is None:
            raise InvalidAssetError("invalid_page_size",
                                    {"detail": f"unknown preset {preset_or_values!r} ({', '.join(PAGE_PRESETS)})"})


        w, h = PAGE_PRESETS[key]
        if meta.get("width_px", 0) > meta.get("height_px", 0):
            w, h = h, w
    elif isinstance(preset_or_values, Mapping):
        w, h = preset_or_values.get("width_mm"), preset_or_values.get("height_mm")
    elif isinstance(preset_or_values, (tuple, list)) and len(preset_or_values) == 2:
        w, h = preset_or_values
    elif preset_or_values is None or preset_or_values == "":
        w, h = meta.get("width_mm"), meta.get("height_mm")
        if w is None or h is None:
            raise InvalidAssetError("invalid_page_size", {"detail": "no size given and none in the file"})
    else:
        raise InvalidAssetError("invalid_page_size", {"detail": repr(preset_or_values)[:80]})
    try:
        w, h = float(w), float(h)
    except (TypeError, ValueError):
        raise InvalidAssetError("invalid_page_size", {"detail": f"{w!r} × {h!r}"}) from None
    for v in (w, h):
        if not (math.isfinite(v) and PAGE_MM_MIN <= v <= PAGE_MM_MAX):
            raise InvalidAssetError("invalid_page_size",
                                    {"detail": f"{v:g} mm outside {PAGE_MM_MIN:g}–{PAGE_MM_MAX:g} mm"})
    return w, h


# A page image's short side: below this, too few features survive for recognition (a 1x1 PNG reached the marker
# trainer and failed there as a server error, issue 25's fuzzing); a 150 dpi A6 is ~620 px.
PAGE_MIN_SIDE_PX = 200


def _check_page_side(width: int, height: int, filename: str) -> None:
    if min(width, height) < PAGE_MIN_SIDE_PX:
        raise InvalidAssetError("page_too_small", {"filename": filename, "width": width, "height": height,
                                                   "min_px": PAGE_MIN_SIDE_PX})


def inspect_page(fmt: str, data: bytes, filename: str, limits: UploadLimits, page_index: int,
                  dpi: float) -> InspectedAsset:
    if fmt == "pdf":
        r = render_pdf_page(data, page_index, dpi, max_pixels=limits.max_image_pixels, filename=filename)
        _check_page_side(r.width_px, r.height_px, filename)
        meta = {"source": "pdf", "width_px": r.width_px, "height_px": r.height_px, "dpi": r.dpi,
                "width_mm": r.width_mm, "height_mm": r.height_mm, "page_index": r.page_index,
                "page_count": r.page_count}
        return InspectedAsset("image/png", "png", r.png, meta, {"source_pdf": (data, "application/pdf")})
    img = _open_image(data, fmt, filename, limits)
    _check_page_side(img.width, img.height, filename)
    _load_image(img, filename)
    data, img, turned = _upright(data, img, fmt, filename)
    m = _image_meta(img)
    meta = {"source": fmt, "width_px": m["width"], "height_px": m["height"]}
    if "dpi" in m:
        meta["dpi"] = m["dpi"]
    if turned:
        meta["exif_orientation_applied"] = turned
    return InspectedAsset(FORMATS[fmt].mime, FORMATS[fmt].ext, data, meta, {})

