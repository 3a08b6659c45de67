"""Print-desk downloads: edition QR sheets, marker test sheets and single QR exports (thin over markers.sheets/qr).

Deep links are stable from the moment a page or edition exists (its code never changes), so the print desk
can prepare sheets before the edition is published; the link starts working when it is.
"""
from __future__ import annotations

from flask import Blueprint, Response, request

from markers.deeplink import deep_link_url, phones_cannot_reach
from markers.qr import LOGO_MAX_BYTES, LOGO_MAX_PIXELS, MAX_SIZE_MM, MIN_SIZE_MM, QR_FORMATS
from markers.sheets import SHEET_ECC, SHEET_QR_MM, EditionSheet, SheetPage, edition_sheet_pdf, marker_test_sheet_pdf

from .. import services as svc
from ..models import Edition, Page
from ..errors import AppError, BadRequest, InvalidField, verbatim
from .common import actor, db, lang, login_required, settings, store

sheets_bp = Blueprint("sheets", __name__, url_prefix="/api/v1")

DEFAULT_QR_MM = 20.0


def base_url() -> str:
    return settings().base_url or request.host_url.rstrip("/")


def unreachable_notice(language: str) -> str:
    """The warning printed on sheets (and shown on the print desk page) while deep links point at an address no
    reader's phone can open: the default 127.0.0.1 when BAONHUNG_BASE_URL is not set, or a private one."""
    url = base_url()
    if not phones_cannot_reach(url):
        return ""
    if language == "en":
        return f"NOT FOR PRINT: the QR codes open {url}, which readers' phones cannot reach. Set BAONHUNG_BASE_URL."
    return f"KHÔNG IN: mã QR mở {url}, điện thoại bạn đọc không vào được. Hãy đặt BAONHUNG_BASE_URL."


def _bad(exc: Exception):
    return BadRequest(verbatim(str(exc)))


def _download(data: bytes, mime: str, filename: str) -> Response:
    response = Response(data, mimetype=mime)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "private, no-store"
    return response


def _reason_warnings(rating: dict | None, language: str) -> tuple:
    reasons = (rating or {}).get("reasons", [])
    return tuple((r["severity"], r.get(language) or r.get("en", r["code"])) for r in reasons
                 if r.get("severity") in ("warning", "error"))


SHEET_MAX_QR_MM = 100.0  # the print desk's largest choice; a card still fits on A4 (two to a page)


def _sheet_qr_options(values) -> tuple[float, str]:
    """?size_mm= (15-100, default the sheet's 22) and ?ecc= (L, M, Q, H; default M) of an edition sheet."""
    try:
        size_mm = float(values.get("size_mm", SHEET_QR_MM))
    except ValueError:
        size_mm = float("nan")
    if not MIN_SIZE_MM <= size_mm <= SHEET_MAX_QR_MM:
        raise InvalidField("size_mm", "a number of millimetres from {lo} to {hi}", lo=f"{MIN_SIZE_MM:g}",
                           hi=f"{SHEET_MAX_QR_MM:g}")
    ecc = str(values.get("ecc", SHEET_ECC)).upper()
    if ecc not in ("L", "M", "Q", "H"):
        raise InvalidField("ecc", "L, M, Q or H")
    return size_mm, ecc


@sheets_bp.get("/editions/<edition_id>/sheet.pdf")
@login_required
def edition_sheet(edition_id):
    """The edition's QR sheet. A published edition is printed as published (its frozen snapshot), so the codes
    lead readers to what they will see; a draft edition is printed from its current pages for proofing."""
    svc.require_role(actor(), svc.SHEET_MAKERS)
    edition = svc.get_or_404(db(), Edition, edition_id, "edition")
    language = request.args.get("lang") or lang()
    if edition.published_version is not None:
        pages = [(p["number"], p["image_sha"], p["code"], p.get("rating"), p.get("title", ""))
                 for p in edition.published_version.snapshot["pages"]]
    else:
        pages = [(p.number, p.image_sha, p.code, p.rating, p.title) for p in edition.pages]
    if not pages:
        raise AppError("empty_edition")
    size_mm, ecc = _sheet_qr_options(request.args)
    sheet = EditionSheet(
        publication=edition.publication.name, edition_number=edition.number, edition_date=edition.date,
        qr_size_mm=size_mm, ecc=ecc, notice=unreachable_notice(language),
        pages=tuple(SheetPage(number=number, thumbnail=store().read(image_sha), url=deep_link_url(base_url(), code),
                              code=code, stars=(rating or {}).get("stars"),
                              warnings=_reason_warnings(rating, language), label=title or "")
                    for number, image_sha, code, rating, title in pages))
    try:
        pdf = edition_sheet_pdf(sheet, paper=request.args.get("paper", "A4"), lang=language)
    except ValueError as exc:
        raise _bad(exc) from exc
    return _download(pdf, "application/pdf", f"{edition.publication.slug}-so-{edition.number}-qr.pdf")


@sheets_bp.get("/pages/<page_id>/marker-sheet.pdf")
@login_required
def marker_sheet(page_id):
    svc.require_role(actor(), svc.SHEET_MAKERS + ("designer",))
    page = svc.get_or_404(db(), Page, page_id, "page")
    language = request.args.get("lang") or lang()
    try:
        pdf = marker_test_sheet_pdf(store().read(page.image_sha), page.width_mm, page.height_mm,
                                    (page.rating or {}).get("stars"), _reason_warnings(page.rating, language),
                                    deep_link_url(base_url(), page.code), paper=request.args.get("paper", "A4"),
                                    lang=language, title=f"{page.edition.publication.name} · {page.number}")
    except ValueError as exc:
        raise _bad(exc) from exc
    return _download(pdf, "application/pdf", f"trang-{page.number}-thu-marker.pdf")


@sheets_bp.route("/pages/<page_id>/qr.<fmt>", methods=["GET", "POST"])
@login_required
def page_qr(page_id, fmt):
    """GET with ?size_mm=&ecc=&badge=; POST the same as form fields plus an optional ``logo`` PNG file."""
    svc.require_role(actor(), svc.SHEET_MAKERS)
    page = svc.get_or_404(db(), Page, page_id, "page")
    if fmt not in QR_FORMATS:
        raise InvalidField("format", "svg, pdf or png")
    values = request.values
    try:
        size_mm = float(values.get("size_mm", DEFAULT_QR_MM))
    except ValueError:
        size_mm = float("nan")
    if not MIN_SIZE_MM <= size_mm <= MAX_SIZE_MM:  # NaN too: every numeric parameter has a range (issue 25)
        raise InvalidField("size_mm", "a number of millimetres from {lo} to {hi}", lo=f"{MIN_SIZE_MM:g}",
                           hi=f"{MAX_SIZE_MM:g}")
    ecc = values.get("ecc", "M").upper()
    badge = values.get("badge", "0") in ("1", "true", "on")
    logo = None
    if request.method == "POST" and request.files.get("logo"):
        logo = request.files["logo"].read(LOGO_MAX_BYTES + 1)
        if len(logo) > LOGO_MAX_BYTES:
            raise InvalidField("logo", "a PNG of at most {limit_mb} MB and {limit_px} pixels",
                               limit_mb=LOGO_MAX_BYTES // 2 ** 20, limit_px=f"{LOGO_MAX_PIXELS:,}")
    url = deep_link_url(base_url(), page.code)
    language = values.get("lang") or lang()
    try:
        data = QR_FORMATS[fmt].export(url, size_mm, ecc, logo, badge=badge, lang=language)
    except ValueError as exc:
        raise _bad(exc) from exc
    return _download(data, QR_FORMATS[fmt].media_type, f"qr-{page.code}-{size_mm:g}mm.{fmt}")
