"""Authoring domain operations: every write checks the actor's role, validates, and is audited.

No Flask here: views parse input, call these functions with explicit arguments, and serialize.
A failed write leaves no row and no new file behind: uploads are fully checked in memory before the
store is touched, and a blob this call created is deleted again if the database commit fails.
"""
from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from markers.deeplink import new_code

from . import auth
from .importers import PAGE_PRESETS, UploadLimits, inspect_upload
from .models import (ACCESS_LEVELS, OVERLAY_KINDS, ROLES, TEASER_KINDS, ApiToken, Edition, EditionStatus,
                     Overlay, Page, Publication, User, utcnow)
from .premium import (DEFAULT_TEASER_SECONDS, POSTER_REQUIRED, TEASER_SECONDS_MAX, TEASER_SECONDS_MIN,
                      TEASERS_BY_KIND)
from .errors import AppError, Conflict, InvalidField, MissingField, NotFound
from .storage import AssetStore, sha256_bytes

STOCK_DIR = Path(__file__).resolve().parent.parent / "assets" / "3d"

# Who may do what. Reading authoring data needs any role; writing needs one of these.
CONTENT_WRITERS = ("admin", "editor", "designer")
PUBLISHERS = ("admin", "editor")
SHEET_MAKERS = ("admin", "editor", "print_desk")
ADMINS = ("admin",)

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,78}[a-z0-9])?$")
CHROMA_RE = re.compile(r"^#[0-9a-fA-F]{6}$")
MAX_PAGE_MM = 2000.0  # a broadsheet spread is ~ 800 mm; anything past 2 m is a typing error
MAX_ELEVATION_MM = 1000.0


# Who acts, the role check and the audit entry: in builder.actors (the public app's reader side uses them without
# the authoring services).
from .actors import SYSTEM, Actor, audit, require_role  # noqa: E402,F401


# ----------------------------------------------------------------------------------------- users

def create_user(db: Session, actor: Actor, email: str, role: str, password: str | None = None,
                name: str = "") -> tuple[User, str | None]:
    """Create an account; returns it and the generated password when none was given."""
    require_role(actor, ADMINS)
    email = (email or "").strip().lower()
    if not re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", email):
        raise InvalidField("email", "not an email address")
    if role not in ROLES:
        raise InvalidField("role", "one of {choices}", choices=", ".join(ROLES))
    if db.scalar(select(User).where(func.lower(User.email) == email)):
        raise Conflict("a user {email} already exists", email=email)
    generated = None
    if not password:
        password = generated = auth.generate_password()
    user = User(email=email, role=role, name=name, password_hash=auth.hash_password(password))
    db.add(user)
    db.flush()
    audit(db, actor, "user.create", "user", user.id, email=email, role=role)
    db.commit()
    return user, generated


def set_user_active(db: Session, actor: Actor, user_id: int, active: bool) -> User:
    require_role(actor, ADMINS)
    user = get_or_404(db, User, user_id, "user")
    user.active = active
    audit(db, actor, "user.activate" if active else "user.deactivate", "user", user.id)
    db.commit()
    return user


MAX_TOKEN_DAYS = 3650


def issue_token(db: Session, actor: Actor, user: User, name="", expires_days=None) -> tuple[ApiToken, str]:
    """A new API token of ``user``; ``expires_days``: None/""/0 for none, else a whole number 1-MAX_TOKEN_DAYS
    (given as a number or its text)."""
    if actor.user_id != user.id:
        require_role(actor, ADMINS)
    if not isinstance(name, str):
        raise InvalidField("name", "text")
    if expires_days in (None, "", 0):
        expires_days = None
    else:
        try:
            if isinstance(expires_days, bool) or float(expires_days) != int(float(expires_days)):
                raise ValueError
            expires_days = int(float(expires_days))
        except (TypeError, ValueError, OverflowError):
            expires_days = -1
        if not 1 <= expires_days <= MAX_TOKEN_DAYS:
            raise InvalidField("expires_days", "a whole number of days from 1 to {hi}", hi=MAX_TOKEN_DAYS)
    row, secret = auth.issue_token(db, user, name, expires_days)
    audit(db, actor, "token.create", "token", row.id, user=user.email, prefix=row.prefix)
    db.commit()
    return row, secret


def revoke_token(db: Session, actor: Actor, token_id: int) -> ApiToken:
    row = get_or_404(db, ApiToken, token_id, "token")
    if row.user_id != actor.user_id:
        require_role(actor, ADMINS)
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        audit(db, actor, "token.revoke", "token", row.id, prefix=row.prefix)
        db.commit()
    return row


# ------------------------------------------------------------------------------------- helpers

MAX_ID = 2 ** 31 - 1  # the id columns are INTEGER: 32-bit on PostgreSQL, which refuses a larger number (a 500)


def get_or_404(db: Session, model, ident, what: str):
    try:
        ident = int(ident)
    except (TypeError, ValueError):
        raise NotFound(what, str(ident)[:40]) from None
    if not 1 <= ident <= MAX_ID:
        raise NotFound(what, str(ident)[:40])
    obj = db.get(model, ident)
    if obj is None:
        raise NotFound(what, ident)
    return obj


def publication_by_slug(db: Session, slug: str) -> Publication:
    pub = db.scalar(select(Publication).where(Publication.slug == slug))
    if pub is None:
        raise NotFound("publication", slug)
    return pub


def _text(values: dict, key: str, required: bool = True, max_len: int = 300) -> str | None:
    value = values.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise MissingField(key)
        return None
    if not isinstance(value, str):
        raise InvalidField(key, "must be text")
    value = value.strip()
    if len(value) > max_len:
        raise InvalidField(key, "at most {limit} characters", limit=max_len)
    return value


def _number(values: dict, key: str, required: bool = True, lo: float | None = None, hi: float | None = None,
            integer: bool = False, default=None):
    raw = values.get(key)
    if raw is None or raw == "":
        if required:
            raise MissingField(key)
        return default
    try:
        value = int(raw) if integer else float(raw)
    except (TypeError, ValueError):
        raise InvalidField(key, "must be a number") from None
    if isinstance(value, float) and not np.isfinite(value):
        raise InvalidField(key, "must be a finite number")
    if lo is not None and value < lo or hi is not None and value > hi:
        raise InvalidField(key, "must be between {lo} and {hi}", lo=lo, hi=hi)
    return value


def _bool(values: dict, key: str, default: bool) -> bool:
    raw = values.get(key)
    if raw is None or raw == "":
        return default
    if isinstance(raw, bool):
        return raw
    if str(raw).lower() in ("1", "true", "yes", "on"):
        return True
    if str(raw).lower() in ("0", "false", "no", "off"):
        return False
    raise InvalidField(key, "must be true or false")


def _unique_code(db: Session) -> str:
    for _ in range(20):
        code = new_code()
        taken = db.scalar(select(Edition.id).where(Edition.code == code)) or db.scalar(
            select(Page.id).where(Page.code == code))
        if not taken:
            return code
    raise RuntimeError("could not draw a free deep-link code in 20 tries")  # collisions are ~n/30^7 per draw; 20 in a row won't happen


def _require_editable(edition: Edition) -> None:
    if edition.status == EditionStatus.in_review.value:
        raise AppError("locked_for_review")


class _NewBlobs:
    """Blobs put in the store during one operation; removed again if the operation fails."""

    def __init__(self, store: AssetStore):
        self.store = store
        self.created: list[str] = []

    def put(self, data: bytes) -> str:
        key = sha256_bytes(data)
        existed = self.store.exists(key)
        self.store.put_bytes(data)
        if not existed:
            self.created.append(key)
        return key

    def rollback(self) -> None:
        for key in self.created:
            self.store.delete(key)
        self.created.clear()


# -------------------------------------------------------------------------------- publications

def create_publication(db: Session, actor: Actor, values: dict) -> Publication:
    require_role(actor, CONTENT_WRITERS)
    name = _text(values, "name", max_len=200)
    slug = _text(values, "slug", max_len=80).lower()
    if not SLUG_RE.match(slug):
        raise InvalidField("slug", "lowercase letters, digits and hyphens")
    if db.scalar(select(Publication.id).where(Publication.slug == slug)):
        raise Conflict("the slug {slug} is taken", slug=slug)
    pub = Publication(name=name, slug=slug)
    db.add(pub)
    db.flush()
    audit(db, actor, "publication.create", "publication", pub.id, name=name, slug=slug)
    db.commit()
    return pub


def update_publication(db: Session, actor: Actor, pub: Publication, values: dict) -> Publication:
    require_role(actor, CONTENT_WRITERS)
    if "name" in values:
        pub.name = _text(values, "name", max_len=200)
    audit(db, actor, "publication.update", "publication", pub.id, fields=sorted(values))
    db.commit()
    return pub


def delete_publication(db: Session, actor: Actor, pub: Publication) -> None:
    require_role(actor, PUBLISHERS)
    if any(e.published_version_id for e in pub.editions):
        raise Conflict("unpublish its editions first")
    audit(db, actor, "publication.delete", "publication", pub.id, slug=pub.slug)
    db.delete(pub)
    db.commit()


# ------------------------------------------------------------------------------------ editions

def _edition_fields(values: dict, edition: Edition | None) -> dict:
    out = {}
    if edition is None or "date" in values:
        raw = _text(values, "date", max_len=10)
        try:
            out["date"] = dt.date.fromisoformat(raw)
        except ValueError:
            raise InvalidField("date", "use YYYY-MM-DD") from None
    if edition is None or "number" in values:
        out["number"] = _number(values, "number", lo=1, hi=10**7, integer=True)
    if edition is None or "title" in values:
        out["title"] = _text(values, "title", required=False) or ""
    return out


def create_edition(db: Session, actor: Actor, pub: Publication, values: dict) -> Edition:
    require_role(actor, CONTENT_WRITERS)
    fields = _edition_fields(values, None)
    if db.scalar(select(Edition.id).where(Edition.publication_id == pub.id, Edition.number == fields["number"])):
        raise Conflict("edition number {number} exists", number=fields["number"])
    edition = Edition(publication_id=pub.id, code=_unique_code(db), **fields)
    db.add(edition)
    db.flush()
    audit(db, actor, "edition.create", "edition", edition.id, publication=pub.slug, number=edition.number)
    db.commit()
    return edition


def update_edition(db: Session, actor: Actor, edition: Edition, values: dict) -> Edition:
    require_role(actor, CONTENT_WRITERS)
    _require_editable(edition)
    fields = _edition_fields(values, edition)
    if "number" in fields and fields["number"] != edition.number and db.scalar(
            select(Edition.id).where(Edition.publication_id == edition.publication_id,
                                     Edition.number == fields["number"])):
        raise Conflict("edition number {number} exists", number=fields["number"])
    for key, value in fields.items():
        setattr(edition, key, value)
    audit(db, actor, "edition.update", "edition", edition.id, fields=sorted(fields))
    db.commit()
    return edition


def delete_edition(db: Session, actor: Actor, edition: Edition) -> None:
    require_role(actor, CONTENT_WRITERS)
    if edition.published_version_id:
        raise Conflict("unpublish the edition first")
    _require_editable(edition)
    audit(db, actor, "edition.delete", "edition", edition.id, number=edition.number)
    db.delete(edition)
    db.commit()


def unchanged_since_published(edition: Edition) -> bool:
    """True when the edition is exactly what its published version froze (nothing to review or publish again)."""
    from .publish import snapshot_edition

    version = edition.published_version
    return version is not None and snapshot_edition(edition) == version.snapshot


def submit_for_review(db: Session, actor: Actor, edition: Edition) -> Edition:
    require_role(actor, CONTENT_WRITERS)
    if edition.status != EditionStatus.draft.value:
        raise AppError("wrong_status", status=edition.status)
    if not edition.pages:
        raise AppError("empty_edition")
    if unchanged_since_published(edition):
        raise AppError("no_changes", version=edition.published_version.version)
    edition.status = EditionStatus.in_review.value
    edition.review_comment = ""
    audit(db, actor, "edition.submit", "edition", edition.id)
    db.commit()
    return edition


def send_back(db: Session, actor: Actor, edition: Edition, comment: str) -> Edition:
    require_role(actor, PUBLISHERS)
    if edition.status != EditionStatus.in_review.value:
        raise AppError("wrong_status", status=edition.status)
    comment = (comment or "").strip()
    if not comment:
        raise MissingField("comment")
    edition.status = EditionStatus.draft.value
    edition.review_comment = comment[:4000]
    audit(db, actor, "edition.send_back", "edition", edition.id, comment=comment[:500])
    db.commit()
    return edition


# --------------------------------------------------------------------------------------- pages

# Sizes a page is snapped to when an image's dpi or a PDF's box comes within SNAP_TOLERANCE of one of them (a 150 dpi
# A4 scan is 1240 x 1754 px = 209.97 x 296.99 mm; a PDF exported from InDesign says 209.97 x 297.01 mm).
STANDARD_PAGE_SIZES: dict[str, tuple[float, float]] = {"A5": (148.0, 210.0), **PAGE_PRESETS, "A2": (420.0, 594.0)}
SNAP_TOLERANCE = 0.01
# 72 and 96 dpi are the defaults screens, cameras and screenshot tools write, not a print resolution: an image at
# those would be sized as a poster. Below this the designer's chosen size is used instead.
MIN_PRINT_DPI = 100.0


def standard_size_name(width_mm: float, height_mm: float) -> str | None:
    """Name of the standard size (either orientation) within SNAP_TOLERANCE of width x height mm, else None."""
    for name, (w, h) in STANDARD_PAGE_SIZES.items():
        for a, b in ((w, h), (h, w)):
            if abs(width_mm - a) <= SNAP_TOLERANCE * a and abs(height_mm - b) <= SNAP_TOLERANCE * b:
                return name
    return None


def snap_page_size(width_mm: float, height_mm: float) -> tuple[float, float]:
    """The standard size (in the page's orientation) when within SNAP_TOLERANCE, else rounded to 0.1 mm."""
    name = standard_size_name(width_mm, height_mm)
    if name is None:
        return round(float(width_mm), 1), round(float(height_mm), 1)
    w, h = STANDARD_PAGE_SIZES[name]
    return (float(w), float(h)) if (width_mm <= height_mm) == (w <= h) else (float(h), float(w))


def page_size_from_file(meta: dict) -> tuple[float, float] | None:
    """Physical size a page file states itself, snapped (``snap_page_size``): a PDF's page box, or an image's pixel
    size at its dpi (from MIN_PRINT_DPI on); None when it states none."""
    if meta.get("source") == "pdf" and meta.get("width_mm") and meta.get("height_mm"):
        return snap_page_size(float(meta["width_mm"]), float(meta["height_mm"]))
    dpi = float(meta.get("dpi") or 0)
    if dpi >= MIN_PRINT_DPI and meta.get("width_px") and meta.get("height_px"):
        return snap_page_size(meta["width_px"] / dpi * 25.4, meta["height_px"] / dpi * 25.4)
    return None


def resolve_page_size(values: dict, meta: dict) -> tuple[float, float]:
    """Physical page size in mm: typed values win, then a preset, then the size the file states (a PDF's page box,
    an image's dpi; ``page_size_from_file``)."""
    width = _number(values, "width_mm", required=False, lo=20, hi=MAX_PAGE_MM)
    height = _number(values, "height_mm", required=False, lo=20, hi=MAX_PAGE_MM)
    preset = (values.get("preset") or "").strip()
    if width and height:
        return float(width), float(height)
    if preset:
        key = {k.lower(): k for k in PAGE_PRESETS}.get(preset.lower())
        if key is None:
            raise InvalidField("preset", "one of {choices}", choices=", ".join(PAGE_PRESETS))
        w, h = PAGE_PRESETS[key]
        return float(w), float(h)
    stated = page_size_from_file(meta)
    if stated is not None:
        return stated
    if meta.get("width_px"):  # an image without a print resolution
        raise InvalidField("preset", "this image does not say its print size (it has no resolution in dpi): "
                                     "choose a page size")
    raise MissingField("width_mm")


def add_page(db: Session, store: AssetStore, limits: UploadLimits, actor: Actor, edition: Edition,
             data: bytes, filename: str, values: dict, published_index=None, published_pages: dict | None = None
             ) -> Page:
    """Check the upload by content, store the page image (PDF rendered at ≥150 dpi), rate it, add the row.

    published_index : the recognition index of what readers can scan now (``markers.RecognitionIndex``) or None;
    when given, the rating also lists the published pages this one could be mistaken for.
    published_pages : page id -> {"edition_id", ...} from the published catalog, to name those pages.
    """
    require_role(actor, CONTENT_WRITERS)
    _require_editable(edition)
    if data is None:
        raise MissingField("image")
    pdf_page = _number(values, "pdf_page", required=False, lo=1, hi=10000, integer=True, default=1)
    asset = inspect_upload("page", data, filename or "page", limits, page_index=pdf_page - 1)
    width_mm, height_mm = resolve_page_size(values, asset.meta)
    number = _number(values, "number", required=False, lo=1, hi=1000, integer=True)
    if number is None:
        number = 1 + max((p.number for p in edition.pages), default=0)
    if any(p.number == number for p in edition.pages):
        raise Conflict("page {number} exists in this edition", number=number)
    rating, heatmap_png = rate_page_image(asset.data, width_mm, height_mm, published_index, published_pages,
                                          name_page=lambda page_id: published_page_numbers(db, page_id))
    blobs = _NewBlobs(store)
    try:
        image_sha = blobs.put(asset.data)
        source_sha = blobs.put(data) if asset.meta.get("source") == "pdf" else None
        heatmap_sha = blobs.put(heatmap_png)
        page = Page(number=number, title=_text(values, "title", required=False) or "",
                    width_mm=width_mm, height_mm=height_mm, image_sha=image_sha, image_mime=asset.mime,
                    image_width_px=int(asset.meta["width_px"]), image_height_px=int(asset.meta["height_px"]),
                    source_sha=source_sha, code=_unique_code(db), rating=rating, heatmap_sha=heatmap_sha)
        edition.pages.append(page)  # keeps the loaded collection in step with the database
        db.flush()
        audit(db, actor, "page.create", "page", page.id, edition=edition.id, number=number, image=image_sha)
        db.commit()
    except BaseException:  # no row and no new file survive a failure
        db.rollback()
        blobs.rollback()
        raise
    return page


CONFUSABLE_WARN_SCORE = 0.05  # share of the page's features shared with a published page worth telling the designer


def published_page_numbers(db: Session, page_id: int) -> tuple[int, int] | None:
    """(edition number, page number) of a published page as readers know it ("Số 2 · Trang 1"): from the edition's
    published version, or its current rows when that version no longer lists it; None for an unknown page."""
    page = db.get(Page, int(page_id))
    if page is None:
        return None
    version = page.edition.published_version
    snapshot = version.snapshot if version is not None else None
    if snapshot:
        for entry in snapshot.get("pages", []):
            if int(entry["id"]) == page.id:
                return int(snapshot["edition"]["number"]), int(entry["number"])
    return int(page.edition.number), int(page.number)


def rate_page_image(image_bytes: bytes, width_mm: float, height_mm: float, published_index=None,
                    published_pages: dict | None = None, name_page=None) -> tuple[dict, bytes]:
    """Marker quality of a page image: the rating as a JSON-able dict (both languages) and a heat-map PNG.

    With ``published_index``, ``rating["confusable"]`` lists published pages sharing content with this one (same
    masthead, ad or template): {page_id, edition_id, edition_number, page_number, score, region_mm [x, y, w, h] on
    this page}, most similar first; the closest one from CONFUSABLE_WARN_SCORE on is named in a reason (by
    ``name_page(page_id) -> (edition number, page number)``) and costs stars as a near-duplicate
    (``markers.rating.lookalike_factor``). Each reason: {code, severity, stars_lost, vi, en}.
    """
    import cv2

    from markers import feature_heatmap_png, rate_page, train_page
    from markers.rating import LookAlike

    image = cv2.imdecode(np.frombuffer(image_bytes, np.uint8), cv2.IMREAD_COLOR)
    confusable = []
    if published_index is not None and len(published_index):
        marker = train_page(image, width_mm, height_mm, "draft")
        for c in published_index.confusable_with(marker, top=5):
            entry = (published_pages or {}).get(str(c.page_id), {})
            numbers = name_page(int(c.page_id)) if name_page is not None else None
            confusable.append({"page_id": int(c.page_id), "edition_id": entry.get("edition_id"),
                               "edition_number": numbers[0] if numbers else None,
                               "page_number": numbers[1] if numbers else None,
                               "score": round(float(c.score), 4),
                               "region_mm": [round(float(v), 1) for v in c.region]})
    worst = next((c for c in confusable if c["score"] >= CONFUSABLE_WARN_SCORE), None)
    lookalike = None
    if worst is not None:
        lookalike = LookAlike(worst["score"], worst["edition_number"] or 0, worst["page_number"] or 0,
                              tuple(worst["region_mm"]))
    rating = rate_page(image, width_mm, height_mm, lookalike)
    reasons = [{"code": r.code, "severity": r.severity, "stars_lost": int(r.values.get("stars_lost", 0)),
                "vi": r.text("vi"), "en": r.text("en")} for r in rating.reasons]
    return {"stars": int(rating.stars), "score": round(float(rating.score), 3), "reasons": reasons,
            "confusable": confusable}, feature_heatmap_png(image)


def update_page(db: Session, actor: Actor, page: Page, values: dict) -> Page:
    require_role(actor, CONTENT_WRITERS)
    _require_editable(page.edition)
    if "number" in values:
        number = _number(values, "number", lo=1, hi=1000, integer=True)
        if number != page.number and any(p.number == number for p in page.edition.pages):
            raise Conflict("page {number} exists in this edition", number=number)
        page.number = number
    if "title" in values:
        page.title = _text(values, "title", required=False) or ""
    if "width_mm" in values or "height_mm" in values or "preset" in values:
        merged = {"width_mm": page.width_mm, "height_mm": page.height_mm}
        if "preset" in values and values.get("preset"):
            merged = {"preset": values["preset"]}
        merged.update({k: values[k] for k in ("width_mm", "height_mm") if k in values})
        page.width_mm, page.height_mm = resolve_page_size(merged, {})
    audit(db, actor, "page.update", "page", page.id, fields=sorted(values))
    db.commit()
    return page


def delete_page(db: Session, actor: Actor, page: Page) -> None:
    require_role(actor, CONTENT_WRITERS)
    _require_editable(page.edition)
    audit(db, actor, "page.delete", "page", page.id, edition=page.edition_id, number=page.number)
    db.delete(page)
    db.commit()


# ------------------------------------------------------------------------------------ overlays

OPTION_DEFAULTS: dict[str, dict[str, Any]] = {
    "model3d": {"animate": True},
    "video": {"autoplay": True, "loop": True, "muted": True, "chroma_key": None},
    "audio": {"autoplay": False, "loop": False},
    "animated_image": {"loop": True},
    "image": {},
    "panorama360": {},
    "link": {"label": ""},
}
STOCK_NAMES = ("arrow", "pin", "info")


def _placement(values: dict, page: Page, current: Overlay | None) -> dict:
    def get(key, **kw):
        if current is not None and key not in values:
            return getattr(current, key)
        return _number(values, key, **kw)

    out = {
        "x_mm": get("x_mm", lo=-page.width_mm, hi=2 * page.width_mm),
        "y_mm": get("y_mm", lo=-page.height_mm, hi=2 * page.height_mm),
        "width_mm": get("width_mm", lo=1, hi=MAX_PAGE_MM),
        "height_mm": get("height_mm", lo=1, hi=MAX_PAGE_MM),
        "rotation_deg": get("rotation_deg", required=False, lo=-360, hi=360, default=0.0),
        "elevation_mm": get("elevation_mm", required=False, lo=0, hi=MAX_ELEVATION_MM, default=0.0),
        "scale": get("scale", required=False, lo=0.01, hi=100, default=1.0),
    }
    cx = out["x_mm"] + out["width_mm"] / 2
    cy = out["y_mm"] + out["height_mm"] / 2
    if not (0 <= cx <= page.width_mm and 0 <= cy <= page.height_mm):
        raise InvalidField("x_mm", "the overlay's centre must lie on the page")
    return out


def _options(kind: str, values: dict, current: dict | None) -> dict:
    opts = dict(OPTION_DEFAULTS[kind])
    if current:
        opts.update(current)
    for key, default in OPTION_DEFAULTS[kind].items():
        if key not in values:
            continue
        if key == "chroma_key":
            raw = values.get(key)
            if raw in (None, "", "none"):
                opts[key] = None
            elif isinstance(raw, str) and CHROMA_RE.match(raw):
                opts[key] = raw.lower()
            else:
                raise InvalidField(key, "a colour like #00ff00")
        elif key == "label":
            opts[key] = _text(values, key, required=False, max_len=80) or ""
        else:
            opts[key] = _bool(values, key, default)
    return opts


MAX_URL_LENGTH = 2000


def _check_url(raw) -> str:
    """An http(s) address of at most MAX_URL_LENGTH characters, without control characters; refused, never cut."""
    if raw is None or raw == "":
        raise MissingField("url")
    if not isinstance(raw, str):
        raise InvalidField("url", "an http(s) address (text)")
    url = raw.strip()
    if len(url) > MAX_URL_LENGTH:
        raise InvalidField("url", "at most {limit} characters", limit=MAX_URL_LENGTH)
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise InvalidField("url", "an address without control characters")
    try:
        parsed = urlparse(url)
        parsed.port  # noqa: B018 - raises ValueError on a port out of range
    except ValueError:
        raise InvalidField("url", "a well-formed http(s) address") from None
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise InvalidField("url", "an http(s) address")
    return url


# ----------------------------------------------------------------------- access and teasers (issue 27)

# What a reader without the right may see of a premium overlay of each kind (the kind's default first), and which
# kinds' poster teaser needs an uploaded poster: one table, builder.premium's, that publishing follows too.
def _access_fields(kind: str, values: dict, current: Overlay | None, has_poster: bool) -> dict:
    """access, teaser, teaser_seconds from ``values`` (absent: kept, or the defaults for a new overlay), checked
    against the kind: a link cannot be premium nor have a teaser; a teaser must be one of the kind's; a model's or
    an image's poster teaser needs its poster. Raises before anything is changed."""
    out = {"access": current.access if current is not None else "free",
           "teaser": current.teaser if current is not None else None,
           "teaser_seconds": current.teaser_seconds if current is not None else DEFAULT_TEASER_SECONDS}
    if "access" in values and values["access"] not in (None, ""):
        access = values["access"]
        if not isinstance(access, str) or access.strip() not in ACCESS_LEVELS:
            raise InvalidField("access", "one of {choices}", choices=", ".join(ACCESS_LEVELS))
        out["access"] = access.strip()
    if "teaser" in values:
        teaser = values["teaser"]
        if teaser in (None, ""):
            out["teaser"] = None
        elif not isinstance(teaser, str) or teaser.strip() not in TEASER_KINDS:
            raise InvalidField("teaser", "one of {choices}, or null for the kind's default", choices=", ".join(TEASER_KINDS))
        else:
            teaser = teaser.strip()
            allowed = TEASERS_BY_KIND.get(kind, ())
            if teaser not in allowed:
                raise AppError("teaser_not_for_kind", kind=kind, teaser=teaser,
                                   allowed=", ".join(allowed) or "-")
            if teaser == "poster" and kind in POSTER_REQUIRED and not has_poster:
                raise AppError("teaser_needs_poster", kind=kind, default=allowed[0])
            out["teaser"] = teaser
    if "teaser_seconds" in values and values["teaser_seconds"] not in (None, ""):
        raw = values["teaser_seconds"]
        lo, hi = TEASER_SECONDS_MIN, TEASER_SECONDS_MAX
        try:
            if isinstance(raw, bool) or float(raw) != int(float(raw)):
                raise ValueError
            seconds = int(float(raw))
        except (TypeError, ValueError, OverflowError):
            seconds = lo - 1
        if not lo <= seconds <= hi:
            raise InvalidField("teaser_seconds", "a whole number of seconds from {lo} to {hi}", lo=lo, hi=hi)
        out["teaser_seconds"] = seconds
    if kind == "link" and out["access"] == "premium":
        raise AppError("access_not_for_links")
    return out


# Kinds whose box shows the file itself on the paper: a new box takes the file's aspect ratio (pixel size from the
# upload checks), so a 4:3 video is not stretched to 16:9.
MEDIA_SHAPED_KINDS = ("video", "animated_image", "image")


def media_aspect(kind: str, meta: dict) -> float | None:
    """height / width of the file shown by an overlay of ``kind`` (upload facts ``meta``: width, height in px),
    or None when the kind is not shown as its file or the size is unknown."""
    if kind not in MEDIA_SHAPED_KINDS:
        return None
    w, h = meta.get("width"), meta.get("height")
    if not (isinstance(w, (int, float)) and isinstance(h, (int, float)) and w > 0 and h > 0):
        return None
    return float(h) / float(w)


def _box_from_file(values: dict, aspect: float | None, page: Page, centre: bool) -> dict:
    """Placement values completed from the file's shape: a missing height (or width) follows the other side at
    ``aspect``; with ``centre``, a missing x / y centres the box on the page."""
    values = dict(values)
    missing = lambda key: values.get(key) in (None, "")  # noqa: E731
    if aspect is not None:
        if missing("height_mm") and not missing("width_mm"):
            values["height_mm"] = round(_number(values, "width_mm", lo=1, hi=MAX_PAGE_MM) * aspect, 1)
        elif missing("width_mm") and not missing("height_mm"):
            values["width_mm"] = round(_number(values, "height_mm", lo=1, hi=MAX_PAGE_MM) / aspect, 1)
    if centre and not missing("width_mm") and not missing("height_mm"):
        if missing("x_mm"):
            values["x_mm"] = round((page.width_mm - _number(values, "width_mm", lo=1, hi=MAX_PAGE_MM)) / 2, 1)
        if missing("y_mm"):
            values["y_mm"] = round((page.height_mm - _number(values, "height_mm", lo=1, hi=MAX_PAGE_MM)) / 2, 1)
    return values


def add_overlay(db: Session, store: AssetStore, limits: UploadLimits, actor: Actor, page: Page, values: dict,
                data: bytes | None = None, filename: str = "", *, centre: bool = False,
                default_aspect: float | None = None) -> Overlay:
    """Add an overlay from an upload (``data``), a stock model (``values['stock']``) or a URL (links).

    The box is in page mm (x_mm, y_mm, width_mm, height_mm, ...). For a video, animated image or image given only
    its width (or height), the other side follows the file's aspect ratio (``default_aspect``, height / width, when
    the file's size is unknown or the kind has no file shape); ``centre`` centres a box given no x / y.
    """
    require_role(actor, CONTENT_WRITERS)
    _require_editable(page.edition)
    kind = values.get("kind") or ""
    if not isinstance(kind, str):
        raise InvalidField("kind", "one of {choices}", choices=", ".join(OVERLAY_KINDS))
    kind = kind.strip()
    if not kind:
        raise MissingField("kind")
    if kind not in OVERLAY_KINDS:
        raise InvalidField("kind", "one of {choices}", choices=", ".join(OVERLAY_KINDS))
    asset = None
    url = stock = None
    if kind == "link":
        url = _check_url(values.get("url"))
    elif kind == "model3d" and values.get("stock") and not data:
        stock = str(values["stock"])
        if stock not in STOCK_NAMES or not (STOCK_DIR / f"{stock}.glb").is_file():
            raise InvalidField("stock", "one of {choices}", choices=", ".join(STOCK_NAMES))
    else:
        if not data:
            raise MissingField("file")
        asset = inspect_upload(kind, data, filename or kind, limits)
    aspect = media_aspect(kind, asset.meta if asset is not None else {})
    values = _box_from_file(values, aspect if aspect is not None else default_aspect, page, centre)
    placement = _placement(values, page, None)
    options = _options(kind, values, None)
    access = _access_fields(kind, values, None, has_poster=bool(asset is not None and asset.derived.get("poster")))
    overlay = Overlay(kind=kind, name=_text(values, "name", required=False, max_len=200) or "",
                      options=options, asset_meta={}, **placement, **access)
    blobs = _NewBlobs(store)
    try:
        if url is not None:
            overlay.url = url
        elif stock is not None:
            overlay.stock = stock
            overlay.asset_sha = blobs.put((STOCK_DIR / f"{stock}.glb").read_bytes())
            overlay.asset_mime = "model/gltf-binary"
        else:
            overlay.asset_sha = blobs.put(asset.data)
            overlay.asset_mime = asset.mime
            overlay.asset_meta = _jsonable(asset.meta)
            poster = asset.derived.get("poster")
            if poster:
                overlay.poster_sha = blobs.put(poster[0])
        page.overlays.append(overlay)
        db.flush()
        audit(db, actor, "overlay.create", "overlay", overlay.id, page=page.id, kind=kind,
              asset=overlay.asset_sha, stock=overlay.stock, url=overlay.url, access=overlay.access,
              teaser=overlay.teaser, teaser_seconds=overlay.teaser_seconds)
        db.commit()
    except BaseException:  # no row and no new file survive a failure
        db.rollback()
        blobs.rollback()
        raise
    return overlay


def _jsonable(value):
    """Upload facts as plain JSON (numpy scalars to numbers, tuples to lists, nested dicts kept)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def update_overlay(db: Session, actor: Actor, overlay: Overlay, values: dict) -> Overlay:
    require_role(actor, CONTENT_WRITERS)
    _require_editable(overlay.page.edition)
    placement = _placement(values, overlay.page, overlay)
    options = _options(overlay.kind, values, overlay.options)
    access = _access_fields(overlay.kind, values, overlay, has_poster=bool(overlay.poster_sha))
    name = (_text(values, "name", required=False, max_len=200) or "") if "name" in values else overlay.name
    url = _check_url(values.get("url")) if overlay.kind == "link" and "url" in values else overlay.url
    changed_access = {key: [getattr(overlay, key), value] for key, value in access.items()
                      if getattr(overlay, key) != value}  # [before, after], for the audit log
    for key, value in {**placement, **access}.items():
        setattr(overlay, key, value)
    overlay.options = options
    overlay.name, overlay.url = name, url
    audit(db, actor, "overlay.update", "overlay", overlay.id, fields=sorted(values), **changed_access)
    db.commit()
    return overlay


def delete_overlay(db: Session, actor: Actor, overlay: Overlay) -> None:
    require_role(actor, CONTENT_WRITERS)
    _require_editable(overlay.page.edition)
    audit(db, actor, "overlay.delete", "overlay", overlay.id, page=overlay.page_id, kind=overlay.kind)
    db.delete(overlay)
    db.commit()
