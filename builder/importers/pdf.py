"""PDF pages rendered with pypdfium2 at their TrimBox."""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass

from builder.errors import InvalidAssetError
from builder.importers.common import _corrupt, _png_bytes
from builder.importers.limits import UploadLimits


# Renders below this resolution track poorly on phones (issue 2 asks for ≥150 dpi).
MIN_PDF_DPI = 150
MM_PER_PT = 25.4 / 72.0

# pdfium is not thread-safe; web servers may inspect two uploads at once.
_PDFIUM_LOCK = threading.Lock()


@dataclass(frozen=True)
class RenderedPdfPage:
    """One rendered PDF page: PNG bytes, its pixel size, the page's size in mm (from the PDF), dpi used."""

    png: bytes
    width_px: int
    height_px: int
    width_mm: float
    height_mm: float
    dpi: float
    page_index: int
    page_count: int


def _trim_crop(page) -> tuple[float, float, float, float]:
    """Points to cut from the displayed (left, bottom, right, top) so only the TrimBox — the finished page —
    is rendered: print PDFs carry bleed and crop marks outside it. Zero when there is no TrimBox."""
    cl, cb, cr, ct = page.get_cropbox()
    tl, tb, tr, tt = page.get_trimbox()  # falls back to the CropBox
    tl, tb, tr, tt = max(tl, cl), max(tb, cb), min(tr, cr), min(tt, ct)
    if tr - tl < 1 or tt - tb < 1:
        return (0.0, 0.0, 0.0, 0.0)
    left, bottom, right, top = tl - cl, tb - cb, cr - tr, ct - tt  # in the page's own (unrotated) frame
    # /Rotate turns the page clockwise for display: which unrotated side ends up on each displayed side.
    return {
        0: (left, bottom, right, top),
        90: (bottom, right, top, left),
        180: (right, top, left, bottom),
        270: (top, left, bottom, right),
    }.get(page.get_rotation() % 360, (left, bottom, right, top))


def render_pdf_page(data: bytes, page_index: int = 0, dpi: float = MIN_PDF_DPI, *,
                    max_pixels: int = UploadLimits.max_image_pixels, filename: str = "pdf") -> RenderedPdfPage:
    """Render page ``page_index`` (0-based) of a PDF at ``dpi`` (at least 150) to PNG with pypdfium2.

    Only the TrimBox (the finished page, without bleed and crop marks) is rendered and measured when the PDF
    has one; otherwise the CropBox. Sizes are as displayed (after the page's /Rotate).

    Raises InvalidAssetError: ``corrupt_file``, ``pdf_encrypted``, ``pdf_page_out_of_range``,
    ``image_too_large`` (the render would exceed ``max_pixels``).
    """
    import pypdfium2 as pdfium

    dpi = max(float(dpi), MIN_PDF_DPI)
    with _PDFIUM_LOCK:
        try:
            doc = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as exc:
            if "password" in str(exc).lower():
                raise InvalidAssetError("pdf_encrypted", {"filename": filename}) from exc
            raise _corrupt(filename, exc) from exc
        try:
            count = len(doc)
            if count == 0:
                raise _corrupt(filename, "no pages")
            if not 0 <= page_index < count:
                raise InvalidAssetError("pdf_page_out_of_range",
                                        {"page_count": count, "page_number": page_index + 1})
            try:
                page = doc[page_index]
                crop = _trim_crop(page)
                w_pt, h_pt = page.get_size()  # as displayed: pdfium already swaps for /Rotate 90 or 270
            except pdfium.PdfiumError as exc:
                raise _corrupt(filename, exc) from exc
            w_pt, h_pt = w_pt - crop[0] - crop[2], h_pt - crop[1] - crop[3]
            if not (math.isfinite(w_pt) and math.isfinite(h_pt)) or w_pt < 1 or h_pt < 1:
                raise _corrupt(filename, f"page size {w_pt:g} × {h_pt:g} pt")
            w_px, h_px = round(w_pt / 72 * dpi), round(h_pt / 72 * dpi)
            if w_px * h_px > max_pixels:
                raise InvalidAssetError("image_too_large", {"filename": filename, "width": w_px, "height": h_px,
                                                            "limit_mp": max_pixels / 1e6})
            try:
                img = page.render(scale=dpi / 72, crop=crop, may_draw_forms=True).to_pil()
            except pdfium.PdfiumError as exc:
                raise _corrupt(filename, exc) from exc
        finally:
            doc.close()
    if img.mode not in ("RGB", "L"):
        img = img.convert("RGB")
    return RenderedPdfPage(
        png=_png_bytes(img), width_px=img.width, height_px=img.height,
        width_mm=round(w_pt * MM_PER_PT, 2), height_mm=round(h_pt * MM_PER_PT, 2),
        dpi=dpi, page_index=page_index, page_count=count,
    )

