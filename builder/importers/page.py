"""Newspaper pages: a JPEG/PNG scan or one page of a PDF, and the page size presets (services.resolve_page_size)."""
from __future__ import annotations

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

