"""JSON API v1 (Bearer token, or the session cookie + CSRF header for the editor's own calls).

Views parse input, call ``builder.services`` and serialize. Errors: ``{"error": code, "message": text}``.
"""
from __future__ import annotations

from flask import Blueprint, abort, current_app, g, jsonify, request, url_for

from .. import services as svc
from ..models import AuditEntry, Edition, Overlay, Page, Publication
from ..errors import BadRequest, InvalidField, MissingField
from ..publish import check_page_bundle
from .common import actor, db, lang, login_required, settings, store
from .openapi import openapi_document
from .serialize import edition_json, overlay_json, page_json, publication_json

api_bp = Blueprint("api", __name__, url_prefix="/api/v1")


def _limits():
    from flask import current_app

    return current_app.extensions["baonhung"].limits


def _body() -> dict:
    if request.mimetype == "application/json":
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            raise BadRequest("the body must be a JSON object")
        return data
    return request.form.to_dict()


def _created(payload: dict, location: str):
    response = jsonify(payload)
    response.status_code = 201
    response.headers["Location"] = location
    return response


def _upload(field: str):
    storage = request.files.get(field)
    if storage is None or not storage.filename and not storage.mimetype:
        return None, ""
    return storage.read(), storage.filename or ""


@api_bp.get("/openapi.json")
def openapi():
    return jsonify(openapi_document())


# ----------------------------------------------------------------------------------- publications

@api_bp.get("/publications")
@login_required
def list_publications():
    from sqlalchemy import select

    pubs = db().scalars(select(Publication).order_by(Publication.name)).all()
    return jsonify({"publications": [publication_json(p) for p in pubs]})


@api_bp.post("/publications")
@login_required
def create_publication():
    pub = svc.create_publication(db(), actor(), _body())
    return _created(publication_json(pub), url_for("api.get_publication", slug=pub.slug))


@api_bp.get("/publications/<slug>")
@login_required
def get_publication(slug):
    pub = svc.publication_by_slug(db(), slug)
    return jsonify(publication_json(pub, editions=True))


@api_bp.patch("/publications/<slug>")
@login_required
def patch_publication(slug):
    body = _body()
    pub = svc.publication_by_slug(db(), slug)
    if "premium_free_after_days" in body:  # editors and admins: what readers get free (issue 27)
        from ..publish import set_premium_free_after

        set_premium_free_after(db(), settings(), actor(), pub, body.pop("premium_free_after_days"))
    if body:
        pub = svc.update_publication(db(), actor(), pub, body)
    return jsonify(publication_json(pub))


@api_bp.delete("/publications/<slug>")
@login_required
def delete_publication(slug):
    svc.delete_publication(db(), actor(), svc.publication_by_slug(db(), slug))
    return "", 204


# --------------------------------------------------------------------------------------- editions

@api_bp.post("/publications/<slug>/editions")
@login_required
def create_edition(slug):
    edition = svc.create_edition(db(), actor(), svc.publication_by_slug(db(), slug), _body())
    return _created(edition_json(edition), url_for("api.get_edition", edition_id=edition.id))


@api_bp.get("/publications/<slug>/editions")
@login_required
def list_editions(slug):
    pub = svc.publication_by_slug(db(), slug)
    return jsonify({"editions": [edition_json(e) for e in pub.editions]})


@api_bp.get("/editions/<edition_id>")
@login_required
def get_edition(edition_id):
    return jsonify(edition_json(svc.get_or_404(db(), Edition, edition_id, "edition"), pages=True))


@api_bp.patch("/editions/<edition_id>")
@login_required
def patch_edition(edition_id):
    edition = svc.update_edition(db(), actor(), svc.get_or_404(db(), Edition, edition_id, "edition"), _body())
    return jsonify(edition_json(edition))


@api_bp.delete("/editions/<edition_id>")
@login_required
def delete_edition(edition_id):
    svc.delete_edition(db(), actor(), svc.get_or_404(db(), Edition, edition_id, "edition"))
    return "", 204


@api_bp.post("/editions/<edition_id>/submit")
@login_required
def submit_edition(edition_id):
    edition = svc.submit_for_review(db(), actor(), svc.get_or_404(db(), Edition, edition_id, "edition"))
    return jsonify(edition_json(edition))


@api_bp.post("/editions/<edition_id>/send-back")
@login_required
def send_back_edition(edition_id):
    edition = svc.send_back(db(), actor(), svc.get_or_404(db(), Edition, edition_id, "edition"),
                            _body().get("comment", ""))
    return jsonify(edition_json(edition))


@api_bp.post("/editions/<edition_id>/publish")
@login_required
def publish(edition_id):
    """Queue the edition's publish (checked at once: role, status) and answer 202 with the job to poll."""
    return _job_accepted(_submit(edition_id, "publish"))


@api_bp.post("/editions/<edition_id>/unpublish")
@login_required
def unpublish(edition_id):
    return _job_accepted(_submit(edition_id, "unpublish"))


def _submit(edition_id, kind: str):
    from ..jobs import submit_job

    edition = svc.get_or_404(db(), Edition, edition_id, "edition")
    return submit_job(db(), current_app.extensions["baonhung"].jobs, actor(), edition, kind)


def _job_accepted(job):
    from ..jobs import job_json

    response = jsonify(job_json(job, lang()))
    response.status_code = 202
    response.headers["Location"] = url_for("api.get_job", job_id=job.id)
    return response


@api_bp.get("/jobs/<job_id>")
@login_required
def get_job(job_id):
    """A publish / unpublish job: its status and progress page by page (the editor's page polls it)."""
    from ..jobs import job_json
    from ..models import Job

    return jsonify(job_json(svc.get_or_404(db(), Job, job_id, "job"), lang()))


# ------------------------------------------------------------------------------------------ pages

@api_bp.post("/editions/<edition_id>/pages")
@login_required
def create_page(edition_id):
    edition = svc.get_or_404(db(), Edition, edition_id, "edition")
    data, filename = _upload("image")
    if data is None:
        data, filename = _upload("file")
    if data is None:
        svc.require_role(actor(), svc.CONTENT_WRITERS)
        raise MissingField("image")
    published = current_app.extensions["baonhung"].published
    page = svc.add_page(db(), store(), _limits(), actor(), edition, data, filename, request.form.to_dict(),
                        published.index(), published.catalog()["pages"])
    return _created(page_json(page, overlays=True), url_for("api.get_page", page_id=page.id))


@api_bp.get("/editions/<edition_id>/pages")
@login_required
def list_pages(edition_id):
    edition = svc.get_or_404(db(), Edition, edition_id, "edition")
    return jsonify({"pages": [page_json(p) for p in edition.pages]})


@api_bp.get("/pages/<page_id>")
@login_required
def get_page(page_id):
    return jsonify(page_json(svc.get_or_404(db(), Page, page_id, "page"), overlays=True))


@api_bp.patch("/pages/<page_id>")
@login_required
def patch_page(page_id):
    page = svc.update_page(db(), actor(), svc.get_or_404(db(), Page, page_id, "page"), _body())
    return jsonify(page_json(page, overlays=True))


@api_bp.delete("/pages/<page_id>")
@login_required
def delete_page(page_id):
    svc.delete_page(db(), actor(), svc.get_or_404(db(), Page, page_id, "page"))
    return "", 204


@api_bp.post("/pages/<page_id>/bundle-check")
@login_required
def bundle_check(page_id):
    """Package the draft page as publishing would and report sizes, budgets and warnings (nothing is stored)."""
    from flask import current_app

    svc.require_role(actor(), svc.CONTENT_WRITERS)
    page = svc.get_or_404(db(), Page, page_id, "page")
    options = current_app.extensions["baonhung"].bundle_options
    if request.args.get("compress", "1") == "1":
        from dataclasses import replace

        options = replace(options, compress=True)
    return jsonify(check_page_bundle(page, store(), current_app.extensions["baonhung"].settings, options))


# --------------------------------------------------------------------------------------- overlays

@api_bp.post("/pages/<page_id>/overlays")
@login_required
def create_overlay(page_id):
    page = svc.get_or_404(db(), Page, page_id, "page")
    data, filename = _upload("file")
    overlay = svc.add_overlay(db(), store(), _limits(), actor(), page, _body(), data, filename)
    return _created(overlay_json(overlay), url_for("api.get_overlay", overlay_id=overlay.id))


@api_bp.get("/pages/<page_id>/overlays")
@login_required
def list_overlays(page_id):
    page = svc.get_or_404(db(), Page, page_id, "page")
    return jsonify({"overlays": [overlay_json(o) for o in page.overlays]})


@api_bp.get("/overlays/<overlay_id>")
@login_required
def get_overlay(overlay_id):
    return jsonify(overlay_json(svc.get_or_404(db(), Overlay, overlay_id, "overlay")))


@api_bp.patch("/overlays/<overlay_id>")
@login_required
def patch_overlay(overlay_id):
    overlay = svc.update_overlay(db(), actor(), svc.get_or_404(db(), Overlay, overlay_id, "overlay"), _body())
    return jsonify(overlay_json(overlay))


@api_bp.delete("/overlays/<overlay_id>")
@login_required
def delete_overlay(overlay_id):
    svc.delete_overlay(db(), actor(), svc.get_or_404(db(), Overlay, overlay_id, "overlay"))
    return "", 204


# ------------------------------------------------------------------------- draft assets (private)

@api_bp.get("/assets/<sha>")
@login_required
def get_asset(sha):
    """A stored upload, for the editor's previews of drafts (authenticated; the public side never serves drafts)."""
    from viewer_api.public import send_blob

    from ..storage import StorageError

    mime = request.args.get("type") if request.args.get("type") in _PREVIEW_TYPES else "application/octet-stream"
    try:
        blob = store().send(sha, mime, etag=sha, cache_control="private, max-age=3600")
    except StorageError:
        abort(404)
    return send_blob(blob)


_PREVIEW_TYPES = {"image/png", "image/jpeg", "image/webp", "image/gif", "image/apng", "video/mp4", "video/webm",
                  "audio/mpeg", "audio/mp4", "audio/ogg", "audio/wav", "model/gltf-binary"}


# ----------------------------------------------------------------------------------- tokens, audit

@api_bp.post("/tokens")
@login_required
def create_token():
    body = _body()
    row, secret = svc.issue_token(db(), actor(), g.user, body.get("name", ""), body.get("expires_days"))
    return _created({"id": row.id, "token": secret, "prefix": row.prefix}, url_for("api.create_token"))


@api_bp.delete("/tokens/<token_id>")
@login_required
def revoke_token(token_id):
    svc.revoke_token(db(), actor(), token_id)
    return "", 204


@api_bp.get("/audit")
@login_required
def audit_log():
    from sqlalchemy import select

    svc.require_role(actor(), svc.ADMINS)
    raw = request.args.get("limit", "200")
    if not (raw.isdigit() and 1 <= int(raw) <= 1000):
        raise InvalidField("limit", "a whole number from {lo} to {hi}", lo=1, hi=1000)
    limit = int(raw)
    rows = db().scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)).all()
    return jsonify({"entries": [
        {"id": r.id, "at": r.at.isoformat() + "Z", "user": r.user_email, "action": r.action,
         "target": f"{r.target_type}:{r.target_id}", "address": r.address, "detail": r.detail}
        for r in rows]})
