"""The newsroom's side of reader entitlements (issue 27). Thin: parse, call ``builder.entitlements``, render.

- ``readers_admin_bp`` (HTML, session + CSRF; roles admin and editor, others get a page saying why):
  ``/readers`` find a reader by email or external id; ``/readers/<id>`` their entitlements and redemptions, grant
  and revoke by hand; ``/codes`` code batches with their redemption counts, create a batch, download its CSV and
  PDF, revoke a batch. Every write is audited by the domain (exports too: the file holds live codes).
- ``entitlements_api_bp``: ``POST /api/v1/entitlements``, the newsroom payment system's HMAC-signed API
  (docs/PREMIUM.md). It carries no cookie, so it is exempt from the session CSRF check (builder/app.py); the
  signature, timestamp window and nonce are its protection.
"""
from __future__ import annotations

import datetime as dt
import json
from functools import wraps

from flask import Blueprint, Response, flash, g, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from .. import entitlements as ent
from ..errors import BadRequest
from ..http_errors import Refusal
from ..models import CodeBatch, Publication, Reader, utcnow
from ..services import audit, get_or_404
from .common import actor, client_address, db, login_required, settings

readers_admin_bp = Blueprint("readers_admin", __name__)
entitlements_api_bp = Blueprint("entitlements_api", __name__)
MANAGERS = ("admin", "editor")
DEFAULT_BATCH_DAYS = 90  # the create form's "redeemable until" default: a quarter's subscriber copies


@readers_admin_bp.app_context_processor
def _nav():
    user = g.get("user")
    return {"can_manage_readers": user is not None and user.role in MANAGERS}


def managers_only(view):
    """Signed in (login_required), then editors and admins only: anyone else gets a page saying why, not a bare
    403."""
    @login_required
    @wraps(view)
    def guarded(*args, **kwargs):
        if g.user.role not in MANAGERS:
            return render_template("readers_refused.html"), 403
        return view(*args, **kwargs)

    return guarded


def _publications() -> list[Publication]:
    return list(db().scalars(select(Publication).order_by(Publication.name)))


def _publication_id(raw: str | None) -> int | None:
    """A form's publication: "" = every publication, else an existing publication's id (404 otherwise)."""
    if not raw:
        return None
    return get_or_404(db(), Publication, raw, "publication").id


def _optional_days(raw: str | None) -> int | None:
    """A form's days: "" = no end."""
    raw = (raw or "").strip()
    return None if raw == "" else raw


# ------------------------------------------------------------------------------------------------ readers
@readers_admin_bp.get("/readers")
@managers_only
def readers():
    query = request.args.get("q", "").strip()
    found = ent.find_readers(db(), query) if query else []
    if len(found) == 1 and found[0].external_id == query:
        return redirect(url_for("readers_admin.reader", reader_id=found[0].id))
    return render_template("readers.html", query=query, found=found)


@readers_admin_bp.get("/readers/<reader_id>")
@managers_only
def reader(reader_id):
    row = get_or_404(db(), Reader, reader_id, "reader")
    entitlements, redemptions = ent.reader_history(db(), row)
    pubs = _publications()
    names = {p.id: p.name for p in pubs}
    now = utcnow()
    return render_template("reader_detail.html", reader=row, entitlements=entitlements, redemptions=redemptions,
                           publications=pubs, names=names, now=now, max_days=ent.MAX_GRANT_DAYS)


@readers_admin_bp.post("/readers/<reader_id>/grant")
@managers_only
def grant(reader_id):
    row = get_or_404(db(), Reader, reader_id, "reader")
    ent.grant(db(), actor(), row, _publication_id(request.form.get("publication")),
              _optional_days(request.form.get("days")), "admin", request.form.get("reference", "").strip())
    flash(_("Access granted to %(email)s.", email=row.email), "ok")
    return redirect(url_for("readers_admin.reader", reader_id=row.id))


@readers_admin_bp.post("/readers/<reader_id>/revoke")
@managers_only
def revoke(reader_id):
    row = get_or_404(db(), Reader, reader_id, "reader")
    n = ent.revoke(db(), actor(), row, _publication_id(request.form.get("publication")))
    flash(_("%(n)s entitlement(s) of %(email)s revoked.", n=n, email=row.email), "ok")
    return redirect(url_for("readers_admin.reader", reader_id=row.id))


# ------------------------------------------------------------------------------------------------ codes
@readers_admin_bp.get("/codes")
@managers_only
def codes():
    return render_template("codes.html", batches=ent.batch_summaries(db()), publications=_publications(),
                           limits={"count": ent.MAX_BATCH_CODES, "days": ent.MAX_CODE_DAYS,
                                   "max_redemptions": ent.MAX_REDEMPTIONS},
                           default_until=(utcnow() + dt.timedelta(days=DEFAULT_BATCH_DAYS)).date().isoformat(),
                           now=utcnow())


@readers_admin_bp.post("/codes")
@managers_only
def create_batch():
    form = request.form
    batch, created = ent.create_batch(db(), actor(), _publication_id(form.get("publication")), form.get("count"),
                                      form.get("days"), form.get("max_redemptions"), form.get("redeem_until", ""),
                                      form.get("name", ""), settings=settings())
    flash(_("Batch #%(id)s created with %(n)s codes. Download its CSV or PDF for the print shop.",
            id=batch.id, n=len(created)), "ok")
    return redirect(url_for("readers_admin.codes", _anchor=f"batch-{batch.id}"))


def _export(batch_id, fmt: str) -> Response:
    batch = get_or_404(db(), CodeBatch, batch_id, "code_batch")
    # the file holds live codes: who took a copy is in the audit log
    audit(db(), actor(), "code_batch.export", "code_batch", batch.id, format=fmt)
    db().commit()
    if fmt == "csv":
        body, mime = ent.batch_csv(db(), settings(), batch), "text/csv; charset=utf-8"
    else:
        body, mime = ent.batch_pdf(db(), settings(), batch), "application/pdf"
    return Response(body, mimetype=mime, headers={
        "Content-Disposition": f'attachment; filename="bao-nhung-codes-{batch.id}.{fmt}"',
        "Cache-Control": "no-store, private"})


@readers_admin_bp.get("/codes/<batch_id>.csv")
@managers_only
def batch_csv(batch_id):
    return _export(batch_id, "csv")


@readers_admin_bp.get("/codes/<batch_id>.pdf")
@managers_only
def batch_pdf(batch_id):
    return _export(batch_id, "pdf")


@readers_admin_bp.post("/codes/<batch_id>/revoke")
@managers_only
def revoke_batch(batch_id):
    batch = ent.revoke_batch(db(), actor(), get_or_404(db(), CodeBatch, batch_id, "code_batch"))
    flash(_("Batch #%(id)s revoked: its codes no longer redeem.", id=batch.id), "ok")
    return redirect(url_for("readers_admin.codes"))


# ------------------------------------------------------------------------------------------------ signed API
@entitlements_api_bp.post("/api/v1/entitlements")
def api_entitlements():
    """Grant or revoke for the newsroom's payment system; see docs/PREMIUM.md for the signature."""
    length = request.content_length
    if length is not None and length > ent.MAX_API_BODY:
        raise Refusal(BadRequest("the body is larger than {limit} bytes", limit=ent.MAX_API_BODY), 413)
    body = request.stream.read(ent.MAX_API_BODY + 1)  # a chunked body has no length: read no more than the limit
    if len(body) > ent.MAX_API_BODY:
        raise Refusal(BadRequest("the body is larger than {limit} bytes", limit=ent.MAX_API_BODY), 413)
    headers = request.headers
    ent.verify_signed_request(db(), settings().entitlements_secret, headers.get(ent.HEADER_TIMESTAMP),
                              headers.get(ent.HEADER_NONCE), headers.get(ent.HEADER_SIGNATURE), body)
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("the body is not JSON") from None
    return jsonify(ent.apply_api_request(db(), payload, client_address())), 200


def openapi_paths() -> dict:
    """This blueprint's path for the OpenAPI document (merged by builder/web/openapi.py)."""
    err = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    header = lambda name, schema, text: {"name": name, "in": "header", "required": True,  # noqa: E731
                                         "schema": schema, "description": text}
    example = {"action": "grant", "email": "ban-doc@example.vn", "external_id": "KH-20391",
               "publication": "bao-yen-bai", "days": 30, "reference": "order 88213"}
    return {"/api/v1/entitlements": {"post": {
        "summary": "Grant or revoke a reader's premium access (the newsroom's payment system; HMAC-signed)",
        "description": (
            "Not a bearer-token call: each request is signed with BAONHUNG_ENTITLEMENTS_SECRET. "
            "X-BaoNhung-Signature = 'sha256=' + hex HMAC-SHA256(secret, timestamp + '\\n' + nonce + '\\n' + raw "
            "body). The timestamp must be within 300 s of the server's clock; a nonce is accepted once. A grant to "
            "an unknown email creates the reader (they set a password with 'forgot password'); an unknown "
            "external_id alone is a 404. publication null: every publication (grant) or every entitlement of the "
            "reader (revoke). days null: no end. Answers 404 entitlements_api_off when no secret is configured. "
            "Example: scripts/entitlements_example.py; docs/PREMIUM.md."),
        "security": [],
        "parameters": [
            header(ent.HEADER_TIMESTAMP, {"type": "string", "pattern": "^[0-9]{1,12}$"}, "unix seconds, ±300 s"),
            header(ent.HEADER_NONCE, {"type": "string", "pattern": "^[A-Za-z0-9_-]{16,64}$"},
                   "16-64 characters, never used before"),
            header(ent.HEADER_SIGNATURE, {"type": "string", "pattern": "^sha256=[0-9a-f]{64}$"},
                   "sha256=<hex HMAC-SHA256(secret, timestamp \\n nonce \\n body)>")],
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"type": "object", "additionalProperties": False, "required": ["action"], "properties": {
                "action": {"type": "string", "enum": ["grant", "revoke"]},
                "email": {"type": "string", "maxLength": 254},
                "external_id": {"type": "string", "maxLength": ent.MAX_EXTERNAL_ID},
                "publication": {"type": ["string", "null"], "maxLength": 80, "description": "slug; null: all"},
                "days": {"type": ["integer", "null"], "minimum": 1, "maximum": ent.MAX_GRANT_DAYS},
                "reference": {"type": "string", "maxLength": ent.MAX_REFERENCE}}},
            "example": example}}},
        "responses": {
            "200": {"description": "grant: {reader: {id, email, external_id, created}, entitlement: {publication, "
                                   "starts_at, expires_at}}; revoke: {reader, revoked: n}",
                    "content": {"application/json": {"schema": {"type": "object"}}}},
            "400": {"description": "bad JSON or field", "content": err},
            "401": {"description": "signature_missing, signature_invalid, timestamp_stale or nonce_replayed; "
                                   "nothing changed", "content": err},
            "404": {"description": "unknown reader (revoke, external_id only) or publication; or the API is off",
                    "content": err},
            "409": {"description": "the email belongs to a reader with another external_id", "content": err},
            "413": {"description": f"body over {ent.MAX_API_BODY} bytes", "content": err}}}}}
