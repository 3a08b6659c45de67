"""Who may see premium overlays (issue 27): entitlements, subscription codes and the signed entitlements API.

No Flask here. An entitlement is a reader's right to one publication's premium overlays (``publication_id`` None:
every publication) from ``starts_at`` until ``expires_at`` (None: no end) unless revoked. Rights come three ways,
each one audited (``entitlement.grant`` / ``entitlement.revoke`` in ``audit_log``):

- a subscription code printed in a subscriber copy (``redeem_code``; source ``code``);
- the newsroom's payment or subscription system through the HMAC-signed API (``verify_signed_request`` +
  ``apply_api_request``; source ``api``, audited as ``api:entitlements``);
- an editor or administrator by hand (``grant`` / ``revoke``; source ``admin``).

Codes: 12 symbols of a 32-symbol alphabet without look-alikes (no 0/O, 1/I), grouped ``XXXX-XXXX-XXXX``: 60 bits.
A code is derived from (batch id, serial) with ``Settings.derived_key("subscription-codes")``, so only its SHA-256
is stored and the batch can be exported again (CSV, print-ready PDF) whenever needed.

Times are naive UTC ``datetime`` (as in the models).
"""
from __future__ import annotations

import csv
import datetime as dt
import hashlib
import hmac
import io
import re
import secrets
import time
import unicodedata
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from . import auth
from .models import (ApiNonce, CodeBatch, CodeRedemption, Entitlement, Publication, Reader, SubscriptionCode,
                     utcnow)
from .errors import N_, AppError, BadRequest, Conflict, InvalidField, MissingField, NotFound
from .actors import Actor, audit, require_role

# ------------------------------------------------------------------------------------------------ constants
SOURCES = ("code", "api", "admin")
GRANTERS = ("admin", "editor", "api")  # staff roles that manage readers' rights, and the signed API's actor
MAX_GRANT_DAYS = 3660        # ten years: a hand grant or an API grant longer than that is a typing error
MAX_BATCH_CODES = 10_000     # one print run of subscriber copies; its PDF is 1,000 A4 pages
MAX_CODE_DAYS = 3660         # what one redemption grants, at most ten years
MAX_REDEMPTIONS = 1000       # a code shared by an institution (a library, a school) has at most this many readers
MAX_REDEEM_AHEAD = dt.timedelta(days=5 * 365 + 2)  # a batch is redeemable at most five years ahead (leap days)
MAX_BATCH_NAME = 200         # CodeBatch.name
MAX_REFERENCE = 100          # Entitlement.source_ref
MAX_EXTERNAL_ID = 100        # Reader.external_id
VN_TZ = ZoneInfo("Asia/Ho_Chi_Minh")  # a batch "redeemable until" a date means until the end of that Vietnamese day

CODE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # 32 symbols: digits and letters without 0, O, 1, I
CODE_SYMBOLS = 12            # 12 × 5 bits = 60 bits; with ≤ 10^4 codes per batch a guess hits one in ~10^14
CODE_GROUP = 4               # XXXX-XXXX-XXXX: three groups a reader types without losing their place
CODE_PURPOSE = "subscription-codes"
_SEPARATORS = re.compile(r"[\s\-‐-―−_.·]+")  # spaces, every dash, dots a reader may type between groups

# The signed entitlements API (docs/PREMIUM.md).
API_ACTOR_EMAIL = "api:entitlements"
SIGNATURE_WINDOW_S = 300     # a request's timestamp may differ from the server clock by this much (clock skew)
NONCE_KEEP_S = 2 * SIGNATURE_WINDOW_S  # older nonces cannot be replayed (their timestamp is stale): pruned
NONCE_RE = re.compile(r"^[A-Za-z0-9_\-]{16,64}$")
SIGNATURE_PREFIX = "sha256="
MAX_API_BODY = 16 * 1024     # a grant or revoke is a few hundred bytes
HEADER_TIMESTAMP = "X-BaoNhung-Timestamp"
HEADER_NONCE = "X-BaoNhung-Nonce"
HEADER_SIGNATURE = "X-BaoNhung-Signature"
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def reader_actor(reader: Reader, address: str = "") -> Actor:
    """The audit log's "who" for a reader acting on their own account (no staff user)."""
    return Actor(None, f"reader:{reader.id}", "reader", address)


def api_actor(address: str = "") -> Actor:
    return Actor(None, API_ACTOR_EMAIL, "api", address)


def iso(value: dt.datetime | None) -> str | None:
    """A naive UTC datetime as ISO 8601 with "Z" (None stays None)."""
    return None if value is None else value.replace(microsecond=0).isoformat() + "Z"


# ------------------------------------------------------------------------------------------------ entitlements
def _live(at: dt.datetime):
    return and_(Entitlement.revoked_at.is_(None), Entitlement.starts_at <= at,
                or_(Entitlement.expires_at.is_(None), Entitlement.expires_at > at))


def is_entitled(db: Session, reader_id: int, publication_id: int | None, at: dt.datetime | None = None) -> bool:
    """True when the reader (active) holds a live entitlement to ``publication_id`` or to every publication."""
    at = at or utcnow()
    pubs = [Entitlement.publication_id.is_(None)]
    if publication_id is not None:
        pubs.append(Entitlement.publication_id == publication_id)
    found = db.scalar(select(Entitlement.id).join(Reader, Reader.id == Entitlement.reader_id)
                      .where(Entitlement.reader_id == reader_id, Reader.active.is_(True), _live(at), or_(*pubs))
                      .limit(1))
    return found is not None


def live_entitlements(db: Session, reader_id: int, at: dt.datetime | None = None) -> list[Entitlement]:
    """The reader's entitlements in force at ``at`` (and those starting later), soonest end last."""
    at = at or utcnow()
    rows = db.scalars(select(Entitlement).where(
        Entitlement.reader_id == reader_id, Entitlement.revoked_at.is_(None),
        or_(Entitlement.expires_at.is_(None), Entitlement.expires_at > at)).order_by(Entitlement.id)).all()
    return list(rows)


def describe(db: Session, entitlement: Entitlement) -> dict:
    """``{"publication": slug or None, "starts_at", "expires_at"}`` (ISO 8601 UTC; None: every publication / no
    end), the shape of the reader API and the signed API."""
    slug = None
    if entitlement.publication_id is not None:
        slug = db.scalar(select(Publication.slug).where(Publication.id == entitlement.publication_id))
    return {"publication": slug, "starts_at": iso(entitlement.starts_at), "expires_at": iso(entitlement.expires_at)}


WHOLE_NUMBER_OF = {"days": N_("a whole number of days from {lo} to {hi}"),
                   "codes": N_("a whole number of codes from {lo} to {hi}"),
                   "readers": N_("a whole number of readers from {lo} to {hi}")}


def _whole(value, field: str, lo: int, hi: int, unit: str) -> int:
    """``unit``: 'days', 'codes' or 'readers' (each its own message in the catalog)."""
    if isinstance(value, bool):
        value = None
    try:
        number = int(value)
        if isinstance(value, float) and value != number:
            raise ValueError
        if isinstance(value, str):
            number = int(value.strip())
    except (TypeError, ValueError, OverflowError):
        number = None
    if number is None or not lo <= number <= hi:
        raise InvalidField(field, WHOLE_NUMBER_OF[unit], lo=lo, hi=f"{hi:,}")
    return number


def _publication(db: Session, publication_id: int | None) -> Publication | None:
    if publication_id is None:
        return None
    pub = db.get(Publication, publication_id)
    if pub is None:
        raise NotFound("publication", publication_id)
    return pub


def _grant(db: Session, actor: Actor, reader: Reader, pub: Publication | None, days: int | None, source: str,
           source_ref: str, starts_at: dt.datetime | None = None, **detail) -> Entitlement:
    """Add the entitlement and its audit entry (no commit)."""
    now = utcnow()
    starts_at = starts_at or now
    ent = Entitlement(reader_id=reader.id, publication_id=pub.id if pub else None, source=source,
                      source_ref=source_ref[:MAX_REFERENCE], starts_at=starts_at,
                      expires_at=starts_at + dt.timedelta(days=days) if days else None,
                      created_by_id=actor.user_id, created_at=now)
    db.add(ent)
    db.flush()
    audit(db, actor, "entitlement.grant", "reader", reader.id, entitlement=ent.id, reader=reader.email,
          publication=pub.slug if pub else None, days=days, source=source, reference=ent.source_ref,
          expires_at=iso(ent.expires_at), **detail)
    return ent


def grant(db: Session, actor: Actor, reader: Reader, publication_id: int | None, days: int | None, source: str,
          source_ref: str = "") -> Entitlement:
    """Give ``reader`` the premium overlays of ``publication_id`` (None: every publication) from now for ``days``
    (1-MAX_GRANT_DAYS; None: no end). Roles admin, editor and the signed API. Audited, committed."""
    require_role(actor, GRANTERS)
    if source not in SOURCES:
        raise InvalidField("source", "one of {choices}", choices=", ".join(SOURCES))
    if days is not None:
        days = _whole(days, "days", 1, MAX_GRANT_DAYS, "days")
    if not isinstance(source_ref, str) or len(source_ref) > MAX_REFERENCE:
        raise InvalidField("reference", "text of at most {limit} characters", limit=MAX_REFERENCE)
    pub = _publication(db, publication_id)
    ent = _grant(db, actor, reader, pub, days, source, source_ref)
    db.commit()
    return ent


def revoke(db: Session, actor: Actor, reader: Reader, publication_id: int | None) -> int:
    """End the reader's entitlements now: those to ``publication_id``, or every one of them when it is None (an
    entitlement to every publication is ended only by None). Returns how many were in force or to come. Audited
    (even when there was none), committed."""
    require_role(actor, GRANTERS)
    pub = _publication(db, publication_id)
    now = utcnow()
    conditions = [Entitlement.reader_id == reader.id, Entitlement.revoked_at.is_(None),
                  or_(Entitlement.expires_at.is_(None), Entitlement.expires_at > now)]
    if pub is not None:
        conditions.append(Entitlement.publication_id == pub.id)
    ids = list(db.scalars(select(Entitlement.id).where(*conditions)))
    if ids:
        db.execute(update(Entitlement).where(Entitlement.id.in_(ids)).values(revoked_at=now))
    audit(db, actor, "entitlement.revoke", "reader", reader.id, reader=reader.email,
          publication=pub.slug if pub else None, revoked=len(ids), entitlements=ids)
    db.commit()
    return len(ids)


# ------------------------------------------------------------------------------------------------ codes
def derive_code(key: bytes, batch_id: int, serial: int) -> str:
    """The printed code of (batch, serial): HMAC-SHA256(key, "<batch_id>|<serial>"), its first 60 bits in
    CODE_ALPHABET, grouped XXXX-XXXX-XXXX."""
    digest = hmac.new(key, f"{batch_id}|{serial}".encode(), hashlib.sha256).digest()
    bits = int.from_bytes(digest[:8], "big") >> (64 - 5 * CODE_SYMBOLS)
    symbols = "".join(CODE_ALPHABET[(bits >> (5 * (CODE_SYMBOLS - 1 - i))) & 31] for i in range(CODE_SYMBOLS))
    return "-".join(symbols[i:i + CODE_GROUP] for i in range(0, CODE_SYMBOLS, CODE_GROUP))


def normalise_code(raw) -> str | None:
    """What a reader typed as the canonical XXXX-XXXX-XXXX, or None when it cannot be a code: case, spaces, every
    kind of dash and full-width characters (NFKC) are forgiven; a symbol outside the alphabet is not guessed."""
    if not isinstance(raw, str) or len(raw) > 100:
        return None
    text = _SEPARATORS.sub("", unicodedata.normalize("NFKC", raw)).upper()
    if len(text) != CODE_SYMBOLS or any(ch not in CODE_ALPHABET for ch in text):
        return None
    return "-".join(text[i:i + CODE_GROUP] for i in range(0, CODE_SYMBOLS, CODE_GROUP))


def code_hash(normalised: str) -> str:
    return hashlib.sha256(normalised.encode()).hexdigest()


def _redeem_until(value) -> dt.datetime:
    """A batch's last moment as naive UTC: a date means the end of that day in Vietnam; an aware datetime is
    converted; a naive one is taken as UTC. Must be in the future and at most MAX_REDEEM_AHEAD away."""
    if isinstance(value, str):
        try:
            value = dt.date.fromisoformat(value.strip()) if len(value.strip()) == 10 else \
                dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise InvalidField("redeem_until", "a date (YYYY-MM-DD)") from None
    if isinstance(value, dt.datetime):
        until = value.astimezone(dt.timezone.utc).replace(tzinfo=None) if value.tzinfo else value
    elif isinstance(value, dt.date):
        end = dt.datetime.combine(value, dt.time(23, 59, 59), tzinfo=VN_TZ)
        until = end.astimezone(dt.timezone.utc).replace(tzinfo=None)
    else:
        raise InvalidField("redeem_until", "a date (YYYY-MM-DD)")
    now = utcnow()
    if until <= now:
        raise InvalidField("redeem_until", "a date in the future")
    if until > now + MAX_REDEEM_AHEAD:
        raise InvalidField("redeem_until", "at most five years from today")
    return until


def create_batch(db: Session, actor: Actor, publication_id: int | None, count, days, max_redemptions,
                 redeem_until, name: str = "", *, settings) -> tuple[CodeBatch, list[tuple[int, str]]]:
    """A batch of ``count`` codes (1-10,000), each redeemable by ``max_redemptions`` readers (1-1,000) until
    ``redeem_until`` (a date or datetime, future, ≤ 5 years), each redemption granting ``days`` (1-3,660) of
    ``publication_id`` (None: every publication). Roles admin and editor. Returns the batch and its
    [(serial, code)]; only the codes' SHA-256 is stored. ``settings``: for the derivation key."""
    require_role(actor, ("admin", "editor"))
    count = _whole(count, "count", 1, MAX_BATCH_CODES, "codes")
    days = _whole(days, "days", 1, MAX_CODE_DAYS, "days")
    max_redemptions = _whole(max_redemptions, "max_redemptions", 1, MAX_REDEMPTIONS, "readers")
    until = _redeem_until(redeem_until)
    name = "" if name is None else name
    if not isinstance(name, str) or len(name.strip()) > MAX_BATCH_NAME:
        raise InvalidField("name", "text of at most {limit} characters", limit=MAX_BATCH_NAME)
    pub = _publication(db, publication_id)
    batch = CodeBatch(publication_id=pub.id if pub else None, name=name.strip(), count=count, days=days,
                      max_redemptions=max_redemptions, redeem_until=until, created_by_id=actor.user_id)
    db.add(batch)
    db.flush()
    key = settings.derived_key(CODE_PURPOSE)
    codes = [(serial, derive_code(key, batch.id, serial)) for serial in range(1, count + 1)]
    db.execute(insert(SubscriptionCode), [{"batch_id": batch.id, "serial": serial, "code_hash": code_hash(code),
                                           "redemptions": 0} for serial, code in codes])
    audit(db, actor, "code_batch.create", "code_batch", batch.id, name=batch.name,
          publication=pub.slug if pub else None, count=count, days=days, max_redemptions=max_redemptions,
          redeem_until=iso(until))
    db.commit()
    return batch, codes


def revoke_batch(db: Session, actor: Actor, batch: CodeBatch) -> CodeBatch:
    """Its codes no longer redeem (410 ``code_expired``); entitlements already granted by them stay (revoke those
    per reader). Roles admin and editor. Audited, committed; revoking twice changes nothing."""
    require_role(actor, ("admin", "editor"))
    if batch.revoked_at is None:
        batch.revoked_at = utcnow()
        audit(db, actor, "code_batch.revoke", "code_batch", batch.id, name=batch.name)
        db.commit()
    return batch


def batch_codes(settings, batch: CodeBatch) -> list[tuple[int, str]]:
    """[(serial, code)] of the batch, derived again."""
    key = settings.derived_key(CODE_PURPOSE)
    return [(serial, derive_code(key, batch.id, serial)) for serial in range(1, batch.count + 1)]


def _publication_name(db: Session, batch: CodeBatch) -> str:
    if batch.publication_id is None:
        return "Tất cả ấn phẩm / All publications"
    pub = db.get(Publication, batch.publication_id)
    return pub.name if pub else f"#{batch.publication_id}"


def _cell(text: str) -> str:
    """A spreadsheet opens "=..." as a formula: text cells starting so get a leading apostrophe."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


CSV_COLUMNS = ("serial", "code", "publication", "redeem_until", "days", "max_redemptions")


def batch_csv(db: Session, settings, batch: CodeBatch) -> bytes:
    """The batch as CSV for the print shop's mail merge: UTF-8 with a BOM (Excel reads Vietnamese right), one row
    per code: CSV_COLUMNS; redeem_until in ISO 8601 UTC."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    name = _cell(_publication_name(db, batch))
    for serial, code in batch_codes(settings, batch):
        writer.writerow((serial, code, name, iso(batch.redeem_until), batch.days, batch.max_redemptions))
    return buf.getvalue().encode("utf-8-sig")


# The print sheet: A4, 2 × 5 cut-out cards of 95 × 55.4 mm inside a 10 mm margin (office printers' non-printable
# border is ≈ 5 mm); the cards touch, so one cut along each dashed line separates two of them.
SHEET_W_MM, SHEET_H_MM = 210.0, 297.0
SHEET_MARGIN_MM = 10.0
CARD_COLS, CARD_ROWS = 2, 5
CARD_PAD_MM = 5.0
CODE_PT = 17.0               # 12 symbols + 2 dashes of DejaVu Sans Mono at 17 pt ≈ 84 mm: fits the 85 mm inside
INSTRUCTIONS = ("Mở trình xem, chạm vào ổ khoá, chọn Nhập mã.", "Open the viewer, tap the lock, choose Enter code.")


def _fit(canvas, text: str, font: str, size: float, width_pt: float, min_size: float = 5.5) -> tuple[str, float]:
    """``text`` and a font size ≤ ``size`` at which it fits ``width_pt`` (cut with "…" below ``min_size``)."""
    from reportlab.pdfbase.pdfmetrics import stringWidth

    natural = stringWidth(text, font, size)
    if natural > width_pt:
        size = max(min_size, size * width_pt / natural * 0.995)  # a hair under: at exactly the width, rounding cut it
        while len(text) > 1 and stringWidth(text, font, size) > width_pt:
            text = text[:-2] + "…"
    return text, size


def batch_pdf(db: Session, settings, batch: CodeBatch) -> bytes:
    """A print-ready A4 sheet of the batch: each code on a cut-out card with the publication's name, the reader's
    instructions in Vietnamese and English, the last day to redeem and what it gives. Vector text in DejaVu (the
    print desk's fonts, markers.qr): the codes stay selectable and searchable."""
    from markers.qr import FONT_BOLD, FONT_MONO, FONT_REGULAR, PT_PER_MM, new_pdf_canvas

    buf = io.BytesIO()
    pub_name = _publication_name(db, batch)
    title = f"{pub_name} — mã đăng ký / subscription codes #{batch.id}"
    canvas = new_pdf_canvas(buf, SHEET_W_MM, SHEET_H_MM, title, "vi")
    card_w = (SHEET_W_MM - 2 * SHEET_MARGIN_MM) / CARD_COLS
    card_h = (SHEET_H_MM - 2 * SHEET_MARGIN_MM) / CARD_ROWS
    until_vn = batch.redeem_until.replace(tzinfo=dt.timezone.utc).astimezone(VN_TZ).strftime("%d/%m/%Y")
    terms = (f"Nhập trước {until_vn} · {batch.days} ngày đọc · Redeem by {until_vn} · {batch.days} days")
    codes = batch_codes(settings, batch)
    per_page = CARD_COLS * CARD_ROWS
    pages = max(1, -(-len(codes) // per_page))
    grey, black = (0, 0, 0, 0.6), (0, 0, 0, 1)

    def text(x_mm, y_mm, value, font, size, color=black, align="left", width_mm=None):
        """Baseline at top-down ``y_mm``."""
        if width_mm is not None:
            value, size = _fit(canvas, value, font, size, width_mm * PT_PER_MM)
        canvas.setFont(font, size)
        canvas.setFillColorCMYK(*color)
        draw = {"left": canvas.drawString, "center": canvas.drawCentredString, "right": canvas.drawRightString}
        draw[align](x_mm * PT_PER_MM, (SHEET_H_MM - y_mm) * PT_PER_MM, value)

    for page in range(pages):
        chunk = codes[page * per_page:(page + 1) * per_page]
        text(SHEET_MARGIN_MM, SHEET_MARGIN_MM - 3.5,
             f"{batch.name or pub_name} · lô / batch #{batch.id} · {page + 1}/{pages}", FONT_REGULAR, 7, grey,
             width_mm=SHEET_W_MM - 2 * SHEET_MARGIN_MM)
        canvas.setStrokeColorCMYK(0, 0, 0, 0.45)
        canvas.setLineWidth(0.4)
        canvas.setDash(3, 2)  # cut lines
        rows = -(-len(chunk) // CARD_COLS)
        for r in range(rows + 1):
            y = (SHEET_H_MM - SHEET_MARGIN_MM - r * card_h) * PT_PER_MM
            canvas.line(SHEET_MARGIN_MM * PT_PER_MM, y, (SHEET_W_MM - SHEET_MARGIN_MM) * PT_PER_MM, y)
        for col in range(CARD_COLS + 1):
            x = (SHEET_MARGIN_MM + col * card_w) * PT_PER_MM
            canvas.line(x, (SHEET_H_MM - SHEET_MARGIN_MM) * PT_PER_MM, x,
                        (SHEET_H_MM - SHEET_MARGIN_MM - rows * card_h) * PT_PER_MM)
        canvas.setDash()
        for i, (serial, code) in enumerate(chunk):
            x0 = SHEET_MARGIN_MM + (i % CARD_COLS) * card_w + CARD_PAD_MM
            y0 = SHEET_MARGIN_MM + (i // CARD_COLS) * card_h + CARD_PAD_MM
            mid = x0 + card_w / 2 - CARD_PAD_MM
            width = card_w - 2 * CARD_PAD_MM
            text(x0, y0 + 4, pub_name, FONT_BOLD, 11, width_mm=width)
            text(x0, y0 + 9, "Mã dành cho bạn đọc đăng ký · Subscriber code", FONT_REGULAR, 7, grey, width_mm=width)
            text(mid, y0 + 22, code, FONT_MONO, CODE_PT, align="center", width_mm=width)
            text(x0, y0 + 31, INSTRUCTIONS[0], FONT_REGULAR, 8.5, width_mm=width)
            text(x0, y0 + 36, INSTRUCTIONS[1], FONT_REGULAR, 7.5, grey, width_mm=width)
            text(x0, y0 + 42, terms, FONT_REGULAR, 6.5, grey, width_mm=width - 10)
            text(x0 + width, y0 + 42, f"#{serial}", FONT_REGULAR, 6.5, grey, align="right")
        canvas.showPage()
    canvas.save()
    return buf.getvalue()


@dataclass
class BatchSummary:
    batch: CodeBatch
    publication: Publication | None
    codes_redeemed: int  # codes redeemed at least once
    redemptions: int     # all redemptions


def batch_summaries(db: Session, limit: int = 200) -> list[BatchSummary]:
    """The newest batches with their redemption counts (one query for the counts)."""
    batches = db.scalars(select(CodeBatch).order_by(CodeBatch.id.desc()).limit(limit)).all()
    ids = [b.id for b in batches] or [0]
    counts = {row[0]: (row[1] or 0, row[2] or 0) for row in db.execute(
        select(SubscriptionCode.batch_id, func.count().filter(SubscriptionCode.redemptions > 0),
               func.sum(SubscriptionCode.redemptions)).where(SubscriptionCode.batch_id.in_(ids))
        .group_by(SubscriptionCode.batch_id))}
    pubs = {p.id: p for p in db.scalars(select(Publication).where(
        Publication.id.in_([b.publication_id for b in batches if b.publication_id] or [0])))}
    return [BatchSummary(b, pubs.get(b.publication_id), *counts.get(b.id, (0, 0))) for b in batches]


# ------------------------------------------------------------------------------------------------ redeeming
class CodeError(AppError):
    """A code that does not redeem: bad_code, code_unknown, code_expired, code_used_up, code_already_redeemed."""

    CODES = ("bad_code", "code_unknown", "code_expired", "code_used_up", "code_already_redeemed")

    def __init__(self, code: str):
        if code not in self.CODES:
            raise ValueError(f"not a code refusal: {code!r}")
        super().__init__(code)


def redeem_code(db: Session, reader: Reader, code, address: str = "") -> Entitlement:
    """Redeem a printed code for ``reader``: an entitlement of the batch's publication for its days, starting when
    the reader's current one of the same publication ends (a subscriber renewing early loses no day). Raises
    CodeError. The redemption count rises by a conditional UPDATE (``redemptions < max``), so two readers racing
    for a code's last redemption cannot both have it. Audited as the reader; committed; nothing written on refusal."""
    normalised = normalise_code(code)
    if normalised is None:
        raise CodeError("bad_code")
    # populate_existing: the session keeps objects across commits (expire_on_commit off); a batch revoked since it
    # was loaded must be read as it is now
    found = db.execute(select(SubscriptionCode, CodeBatch).join(CodeBatch, CodeBatch.id == SubscriptionCode.batch_id)
                       .where(SubscriptionCode.code_hash == code_hash(normalised))
                       .execution_options(populate_existing=True)).first()
    if found is None:
        raise CodeError("code_unknown")
    row, batch = found
    now = utcnow()
    if batch.revoked_at is not None or batch.redeem_until <= now:
        raise CodeError("code_expired")
    if db.scalar(select(CodeRedemption.id).where(CodeRedemption.code_id == row.id,
                                                 CodeRedemption.reader_id == reader.id)) is not None:
        raise CodeError("code_already_redeemed")
    try:
        taken = db.execute(update(SubscriptionCode)
                           .where(SubscriptionCode.id == row.id, SubscriptionCode.redemptions < batch.max_redemptions)
                           .values(redemptions=SubscriptionCode.redemptions + 1)
                           .execution_options(synchronize_session=False))
        if taken.rowcount != 1:
            db.rollback()
            raise CodeError("code_used_up")
        db.add(CodeRedemption(code_id=row.id, reader_id=reader.id, at=now))
        db.flush()  # the (code, reader) unique constraint: the same reader redeeming twice at once
    except IntegrityError:
        db.rollback()
        raise CodeError("code_already_redeemed") from None
    pub = db.get(Publication, batch.publication_id) if batch.publication_id else None
    same_pub = (Entitlement.publication_id.is_(None) if pub is None else Entitlement.publication_id == pub.id)
    current_end = db.scalar(select(func.max(Entitlement.expires_at)).where(
        Entitlement.reader_id == reader.id, Entitlement.revoked_at.is_(None), same_pub,
        Entitlement.expires_at > now))
    ent = _grant(db, reader_actor(reader, address), reader, pub, batch.days, "code",
                 f"batch {batch.id} #{row.serial}", starts_at=max(now, current_end or now), batch=batch.id,
                 serial=row.serial)
    db.commit()
    return ent


# ------------------------------------------------------------------------------------------------ admin look-ups
MAX_FOUND = 50


def find_readers(db: Session, query: str) -> list[Reader]:
    """Readers whose email contains ``query`` (case-insensitive) or whose external id is exactly ``query``."""
    query = (query or "").strip()
    if not query:
        return []
    if len(query) > 254:
        raise InvalidField("q", "at most {limit} characters", limit=254)
    escaped = query.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return list(db.scalars(select(Reader).where(or_(
        func.lower(Reader.email).like(f"%{escaped}%", escape="\\"), Reader.external_id == query))
        .order_by(Reader.email).limit(MAX_FOUND)))


def reader_history(db: Session, reader: Reader) -> tuple[list[Entitlement], list[tuple[CodeRedemption, int, int]]]:
    """Every entitlement of the reader (newest first) and their redemptions as (redemption, batch id, serial)."""
    ents = list(db.scalars(select(Entitlement).where(Entitlement.reader_id == reader.id)
                           .order_by(Entitlement.id.desc())))
    redemptions = [(r, b, s) for r, b, s in db.execute(
        select(CodeRedemption, SubscriptionCode.batch_id, SubscriptionCode.serial)
        .join(SubscriptionCode, SubscriptionCode.id == CodeRedemption.code_id)
        .where(CodeRedemption.reader_id == reader.id).order_by(CodeRedemption.id.desc()))]
    return ents, redemptions


# ------------------------------------------------------------------------------------------------ signed API
class SignatureError(AppError):
    """A signed API request refused before anything is read or written (answered 401): signature_missing,
    signature_invalid, timestamp_stale, nonce_replayed."""


def signature_of(secret: str, timestamp: str, nonce: str, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256(secret, timestamp + "\\n" + nonce + "\\n" + body)>``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"\n" + nonce.encode() + b"\n" + body, hashlib.sha256)
    return SIGNATURE_PREFIX + mac.hexdigest()


def sign_request(secret: str, body: bytes, timestamp: int | None = None, nonce: str | None = None) -> dict:
    """The three headers of a signed request (what the payment system sends; tests and the example use it)."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    nonce = nonce or secrets.token_hex(16)
    return {HEADER_TIMESTAMP: ts, HEADER_NONCE: nonce, HEADER_SIGNATURE: signature_of(secret, ts, nonce, body)}


def _key_id(secret: str) -> str:
    """Nonces are kept per secret: a new secret starts a new nonce space."""
    return hashlib.sha256(b"nonce-key|" + secret.encode()).hexdigest()[:16]


def verify_signed_request(db: Session, secret: str, timestamp: str | None, nonce: str | None,
                          signature: str | None, body: bytes, now: float | None = None) -> None:
    """Check a signed request and remember its nonce (committed on its own: a replay of a request whose action
    then failed is still a replay). Raises SignatureError (401) — then nothing was written. Also prunes nonces
    older than NONCE_KEEP_S."""
    if not secret:
        raise AppError("entitlements_api_off")  # off: as if absent (answered 404, see builder/http_errors.py)
    if not timestamp or not nonce or not signature:
        raise SignatureError("signature_missing")
    now = time.time() if now is None else now
    if not NONCE_RE.match(nonce) or not re.fullmatch(r"\d{1,12}", timestamp):
        raise SignatureError("signature_invalid")
    expected = signature_of(secret, timestamp, nonce, body)
    if not hmac.compare_digest(expected.encode(), signature.strip().lower().encode()):
        raise SignatureError("signature_invalid")
    if abs(now - int(timestamp)) > SIGNATURE_WINDOW_S:
        raise SignatureError("timestamp_stale")
    seen_at = dt.datetime.fromtimestamp(now, dt.timezone.utc).replace(tzinfo=None)
    try:
        db.add(ApiNonce(key_id=_key_id(secret), nonce=nonce, at=seen_at))
        db.flush()
    except IntegrityError:
        db.rollback()
        raise SignatureError("nonce_replayed") from None
    db.execute(delete(ApiNonce).where(ApiNonce.at < seen_at - dt.timedelta(seconds=NONCE_KEEP_S)))
    db.commit()


API_FIELDS = {"action", "email", "external_id", "publication", "days", "reference"}


def _api_text(payload: dict, key: str, max_len: int) -> str | None:
    value = payload.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > max_len:
        raise InvalidField(key, "text of 1 to {limit} characters", limit=max_len)
    return value.strip()


def _api_reader(db: Session, payload: dict, create: bool) -> tuple[Reader, bool]:
    """The reader a request names, by external id first, then by email. With ``create`` an unknown email becomes
    a reader with an unusable random password (they set one with "forgot password"). Returns (reader, created)."""
    email = _api_text(payload, "email", 254)
    external_id = _api_text(payload, "external_id", MAX_EXTERNAL_ID)
    if email is None and external_id is None:
        raise MissingField("email")
    if email is not None:
        email = email.lower()
        if not EMAIL_RE.match(email):
            raise InvalidField("email", "not an email address")
    reader = None
    if external_id is not None:
        reader = db.scalar(select(Reader).where(Reader.external_id == external_id))
    if reader is None and email is not None:
        reader = db.scalar(select(Reader).where(func.lower(Reader.email) == email))
        if reader is not None and external_id is not None:
            if reader.external_id not in (None, external_id):
                raise Conflict("{email} has another external_id", email=email)
            reader.external_id = external_id
    if reader is not None:
        return reader, False
    if not create or email is None:
        raise NotFound("reader", external_id or email)
    reader = Reader(email=email, external_id=external_id,
                    password_hash=auth.hash_password(secrets.token_urlsafe(32)))
    db.add(reader)
    db.flush()
    return reader, True


def apply_api_request(db: Session, payload, address: str = "") -> dict:
    """Carry out a verified API request ``{"action": "grant"|"revoke", "email" | "external_id", "publication":
    slug | null, "days": n | null, "reference": "..."}``. Grant: to an unknown email creates the reader (see
    ``_api_reader``); answers ``{"reader": {...}, "entitlement": {...}}``. Revoke: ``{"reader", "revoked": n}``
    (publication null: every entitlement of the reader). Audited as ``api:entitlements``; committed."""
    if not isinstance(payload, dict):
        raise BadRequest("the body must be a JSON object")
    unknown = sorted(set(payload) - API_FIELDS)
    if unknown:
        raise InvalidField(unknown[0], "not a field of this request")
    action = payload.get("action")
    if action not in ("grant", "revoke"):
        raise InvalidField("action", "grant or revoke")
    slug = payload.get("publication")
    pub = None
    if slug is not None:
        if not isinstance(slug, str) or len(slug) > 80:
            raise InvalidField("publication", "a publication's slug or null")
        pub = db.scalar(select(Publication).where(Publication.slug == slug))
        if pub is None:
            raise NotFound("publication", slug)
    reference = payload.get("reference", "")
    if reference is None:
        reference = ""
    if not isinstance(reference, str) or len(reference) > MAX_REFERENCE:
        raise InvalidField("reference", "text of at most {limit} characters", limit=MAX_REFERENCE)
    actor = api_actor(address)
    try:
        if action == "grant":
            days = payload.get("days")
            if days is not None:
                if isinstance(days, bool) or not isinstance(days, int):
                    raise InvalidField("days", "a whole number of days from 1 to {hi} or null", hi=MAX_GRANT_DAYS)
                days = _whole(days, "days", 1, MAX_GRANT_DAYS, "days")
            reader, created = _api_reader(db, payload, create=True)
            if created:
                audit(db, actor, "reader.create", "reader", reader.id, email=reader.email,
                      external_id=reader.external_id)
            ent = grant(db, actor, reader, pub.id if pub else None, days, "api", reference.strip())
            return {"reader": _reader_json(reader, created), "entitlement": describe(db, ent)}
        reader, _created = _api_reader(db, payload, create=False)
        revoked = revoke(db, actor, reader, pub.id if pub else None)
        return {"reader": _reader_json(reader, False), "revoked": revoked}
    except AppError:
        db.rollback()
        raise


def _reader_json(reader: Reader, created: bool) -> dict:
    return {"id": reader.id, "email": reader.email, "external_id": reader.external_id, "created": created}
