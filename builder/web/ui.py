"""HTML authoring UI (session login + CSRF). Thin: parse the form, call builder.services, render.

Who sees what (the domain re-checks every write; these checks only decide which pages render):
- any signed-in role reads publications, editions and the page preview;
- admin / editor / designer (``services.CONTENT_WRITERS``) edit: create, upload, place overlays, submit;
- admin / editor (``services.PUBLISHERS``) send back, publish, unpublish;
- admin / editor / print_desk (``services.SHEET_MAKERS``) use the print desk page;
- admin manages users and reads the audit log; every user manages their own API tokens.
"""
from __future__ import annotations

import base64
import hashlib
import json
from functools import wraps

from flask import (Blueprint, current_app, flash, g, redirect, render_template, request, session, url_for)
from flask_babel import gettext as _
from sqlalchemy import select

from .. import accounts, auth
from .. import services as svc
from ..importers import PAGE_PRESETS, KIND_FORMATS, accept_attribute
from ..models import (OVERLAY_KINDS, ROLES, ApiToken, AuditEntry, Edition, Page, Publication,
                      PublishedVersion, PublishFailure, User)
from ..premium import POSTER_REQUIRED, TEASERS_BY_KIND
from ..errors import AppError, BadRequest, Forbidden, MissingField
from ..services import Actor, audit
from .common import CSP_DEFAULT, actor, client_address, db, lang, login_required, safe_next, settings, store
from .serialize import page_json

ui_bp = Blueprint("ui", __name__)

# Default box of a new overlay: centred on the page, this share of the page width, and this height/width ratio
# per kind (a link is a button, a sound a square tap target); a video or image takes its file's ratio, and the
# video's 16:9 only applies when its file's size is unknown.
NEW_OVERLAY_WIDTH_SHARE = 0.3
NEW_OVERLAY_ASPECT = {"model3d": 1.0, "video": 9 / 16, "audio": 1.0, "animated_image": 1.0, "image": 0.75,
                      "panorama360": 0.5, "link": 0.3}
QR_SIZES_MM = (15, 20, 25, 30, 40)
QR_ECC = ("L", "M", "Q", "H")
PAPERS = ("A4", "A3")
AUDIT_PAGE_SIZE = 200
PAGE_SIZE_CHOICE = "page_size_choice"  # session key: the page size the designer last uploaded with


def roles_required(allowed):
    """Render the view only for these roles; others get the 403 page (domain checks still apply)."""

    def decorator(view):
        @wraps(view)
        @login_required
        def wrapped(*args, **kwargs):
            if g.user.role not in allowed:
                raise Forbidden(g.user.role)
            return view(*args, **kwargs)

        return wrapped

    return decorator


@ui_bp.app_context_processor
def _roles():
    user = g.get("user")
    role = user.role if user is not None else None
    return {
        "can_write": role in svc.CONTENT_WRITERS,
        "can_publish": role in svc.PUBLISHERS,
        "can_print": role in svc.SHEET_MAKERS,
        "is_admin": role in svc.ADMINS,
        "role_label": role_label,
        "status_label": status_label,
        "marker_sheet_url": _marker_sheet_url,
        "page_size_label": page_size_label,
        "published_page_label": published_page_label,
        "test_sheet_paper": _test_sheet_paper,
    }


def page_size_label(width_mm: float, height_mm: float) -> str:
    """A page size as a designer reads it: "210 × 297 mm (A4)", or "250.5 × 350 mm" for a size of its own."""
    text = f"{round(width_mm, 1):g} × {round(height_mm, 1):g} mm"
    name = svc.standard_size_name(width_mm, height_mm)
    return f"{text} ({name})" if name else text


def published_page_label(entry: dict) -> str:
    """A published page as the newsroom names it ("Số 2 · Trang 1"); its id only for ratings made before numbers
    were recorded."""
    if entry.get("edition_number") and entry.get("page_number"):
        return _("No. %(edition)s · Page %(page)s", edition=entry["edition_number"], page=entry["page_number"])
    return _("published page #%(page)s", page=entry.get("page_id"))


def role_label(role: str) -> str:
    return {"admin": _("Administrator"), "editor": _("Editor"), "designer": _("Designer"),
            "print_desk": _("Print desk")}.get(role, role)


def status_label(edition: Edition) -> str:
    if edition.status == "in_review":
        return _("In review")
    if svc.unchanged_since_published(edition):
        return _("Published, no changes since")
    return _("Draft")


@ui_bp.app_template_global("upload_accept")
def upload_accept(kind: str) -> str:
    """A file picker's accept for an upload kind, from the table the server checks uploads against."""
    return accept_attribute(kind)


def kind_label(kind: str) -> str:
    return {"model3d": _("3D model"), "video": _("Video"), "audio": _("Audio"), "animated_image": _("Animated image"),
            "image": _("Image"), "panorama360": _("360° panorama"), "link": _("Link")}.get(kind, kind)


def _limits():
    return current_app.extensions["baonhung"].limits


def _form() -> dict:
    return {k: v for k, v in request.form.items() if k != "csrf_token"}


# ------------------------------------------------------------------------------------------ session

@ui_bp.route("/login", methods=["GET", "POST"])
def login():
    if request.method == "POST":
        s = settings()
        user = auth.check_login(db(), request.form.get("email", ""), request.form.get("password", ""),
                                client_address(), s.login_max_failures, s.login_lock_seconds,
                                s.login_max_address_failures)
        if user is None:
            raise AppError("invalid_credentials")
        chosen_lang = session.get("lang")
        session.clear()
        session["uid"] = user.id
        session["sid"] = auth.open_session(db(), user, client_address())  # ended on the server by logout
        session["pwv"] = user.password_hash[-16:]  # a password change ends other sessions
        session["lang"] = request.form.get("lang") or chosen_lang or user.language
        session.permanent = True
        audit(db(), Actor.of(user, client_address()), "user.login", "user", user.id)
        db().commit()
        return redirect(safe_next(request.args.get("next")))
    return render_template("login.html")


@ui_bp.post("/logout")
def logout():
    """Ends the session on the server too: a copy of the cookie taken before no longer signs anyone in."""
    chosen_lang = session.get("lang")
    if auth.close_session(db(), session.get("sid")) and g.get("user") is not None:
        audit(db(), Actor.of(g.user, client_address()), "user.logout", "user", g.user.id)
    db().commit()
    session.clear()
    if chosen_lang:
        session["lang"] = chosen_lang
    return redirect(url_for("ui.login"))


@ui_bp.get("/")
@login_required
def dashboard():
    pubs = db().scalars(select(Publication).order_by(Publication.name)).all()
    review = db().scalars(select(Edition).where(Edition.status == "in_review").order_by(Edition.date.desc())).all()
    recent = db().scalars(select(Edition).order_by(Edition.updated_at.desc()).limit(8)).all()
    # Drafts an editor sent back keep the comment until they are submitted again: the designers' to-do list.
    sent_back = db().scalars(select(Edition).where(Edition.status == "draft", Edition.review_comment != "")
                             .order_by(Edition.updated_at.desc())).all() if g.user.role in svc.CONTENT_WRITERS else []
    return render_template("dashboard.html", publications=pubs, in_review=review, recent=recent, sent_back=sent_back)


# ----------------------------------------------------------------------------- publications, editions

@ui_bp.get("/publications")
@login_required
def publications():
    pubs = db().scalars(select(Publication).order_by(Publication.name)).all()
    return render_template("publications.html", publications=pubs)


@ui_bp.post("/publications")
@roles_required(svc.CONTENT_WRITERS)
def create_publication():
    pub = svc.create_publication(db(), actor(), _form())
    flash(_("Publication created."), "ok")
    return redirect(url_for("ui.publication", slug=pub.slug))


@ui_bp.get("/publications/<slug>")
@login_required
def publication(slug):
    from .. import members

    pub = svc.publication_by_slug(db(), slug)
    manage = g.user.role in members.MEMBER_MANAGERS
    return render_template("publication.html", pub=pub, can_manage_members=manage,
                           members=members.members(db(), pub) if manage else [],
                           member_candidates=members.candidates(db(), pub) if manage else [])


@ui_bp.post("/publications/<slug>/members")
@roles_required(("admin", "editor"))
def add_publication_member(slug):
    """Make a designer a member of the publication: they read its readership numbers (issue 26)."""
    from .. import members

    pub = svc.publication_by_slug(db(), slug)
    members.add_member(db(), actor(), pub, request.form.get("user_id"))
    flash(_("Designer added to the publication."), "ok")
    return redirect(url_for("ui.publication", slug=pub.slug) + "#members")


@ui_bp.post("/publications/<slug>/members/<user_id>/remove")
@roles_required(("admin", "editor"))
def remove_publication_member(slug, user_id):
    from .. import members

    pub = svc.publication_by_slug(db(), slug)
    members.remove_member(db(), actor(), pub, user_id)
    flash(_("Designer removed from the publication."), "ok")
    return redirect(url_for("ui.publication", slug=pub.slug) + "#members")


@ui_bp.post("/publications/<slug>/edit")
@roles_required(svc.CONTENT_WRITERS)
def update_publication(slug):
    pub = svc.update_publication(db(), actor(), svc.publication_by_slug(db(), slug), {"name": request.form.get("name")})
    flash(_("Publication saved."), "ok")
    return redirect(url_for("ui.publication", slug=pub.slug))


@ui_bp.post("/publications/<slug>/premium-policy")
@roles_required(svc.PUBLISHERS)
def publication_premium_policy(slug):
    """When an edition's premium overlays become free for everyone (issue 27): empty = never."""
    from ..publish import set_premium_free_after

    pub = svc.publication_by_slug(db(), slug)
    set_premium_free_after(db(), settings(), actor(), pub, request.form.get("premium_free_after_days") or None)
    flash(_("Premium policy saved."), "ok")
    return redirect(url_for("ui.publication", slug=pub.slug) + "#premium")


@ui_bp.post("/publications/<slug>/editions")
@roles_required(svc.CONTENT_WRITERS)
def create_edition(slug):
    edition = svc.create_edition(db(), actor(), svc.publication_by_slug(db(), slug), _form())
    flash(_("Edition created."), "ok")
    return redirect(url_for("ui.edition", edition_id=edition.id))


def _edition(edition_id) -> Edition:
    return svc.get_or_404(db(), Edition, edition_id, "edition")


def _shown_job(ed: Edition) -> dict | None:
    """The job the edition page follows: the edition's queued or running one, else the one named by ``?job=``
    (the page the publish form leads to, or reloads when the job ends) — as the API answers it."""
    from ..jobs import active_job, job_json
    from ..models import Job

    job = active_job(db(), ed.id)
    named = request.args.get("job", "")
    if job is None and named.isdigit() and len(named) <= 18:
        job = db().get(Job, int(named))
        if job is not None and job.edition_id != ed.id:
            job = None
    return job_json(job, lang()) if job is not None else None


@ui_bp.get("/editions/<edition_id>")
@login_required
def edition(edition_id):
    ed = _edition(edition_id)
    versions = db().scalars(select(PublishedVersion).where(PublishedVersion.edition_id == ed.id)
                            .order_by(PublishedVersion.version.desc())).all()
    failures = db().scalars(select(PublishFailure).where(PublishFailure.edition_id == ed.id)
                            .order_by(PublishFailure.at.desc()).limit(10)).all()
    users = {u.id: u.email for u in db().scalars(select(User)).all()}
    return render_template("edition.html", edition=ed, versions=versions, failures=failures, users=users,
                           presets=PAGE_PRESETS, unchanged=svc.unchanged_since_published(ed), job=_shown_job(ed),
                           size_choice=session.get(PAGE_SIZE_CHOICE) or {"preset": ""})


@ui_bp.post("/editions/<edition_id>/pages")
@roles_required(svc.CONTENT_WRITERS)
def upload_page(edition_id):
    ed = _edition(edition_id)
    upload = request.files.get("image")
    data = upload.read() if upload is not None and upload.filename else None
    if not data:
        raise MissingField("image")
    values = _form()
    choice = {"preset": values.get("preset") or ""}
    if values.get("preset") == "custom":
        values.pop("preset")
        choice.update(width_mm=values.get("width_mm"), height_mm=values.get("height_mm"))
    else:
        values.pop("width_mm", None)
        values.pop("height_mm", None)
    published = current_app.extensions["baonhung"].published
    page = svc.add_page(db(), store(), _limits(), actor(), ed, data, upload.filename, values,
                        published.index(), published.catalog()["pages"])
    session[PAGE_SIZE_CHOICE] = choice  # the next upload form starts from it
    flash(_("Page %(number)s uploaded.", number=page.number), "ok")
    return redirect(url_for("ui.edition", edition_id=ed.id) + f"#page-{page.id}")


@ui_bp.post("/editions/<edition_id>/edit")
@roles_required(svc.CONTENT_WRITERS)
def update_edition(edition_id):
    ed = svc.update_edition(db(), actor(), _edition(edition_id), _form())
    flash(_("Edition saved."), "ok")
    return redirect(url_for("ui.edition", edition_id=ed.id))


@ui_bp.post("/editions/<edition_id>/delete")
@roles_required(svc.CONTENT_WRITERS)
def delete_edition(edition_id):
    ed = _edition(edition_id)
    slug = ed.publication.slug
    svc.delete_edition(db(), actor(), ed)
    flash(_("Edition deleted."), "ok")
    return redirect(url_for("ui.publication", slug=slug))


@ui_bp.post("/pages/<page_id>/edit")
@roles_required(svc.CONTENT_WRITERS)
def update_page(page_id):
    values = _form()
    if values.get("preset") == "custom" or not values.get("preset"):
        values.pop("preset", None)
    else:
        values.pop("width_mm", None)
        values.pop("height_mm", None)
    page = svc.update_page(db(), actor(), _page(page_id), values)
    flash(_("Page %(number)s saved.", number=page.number), "ok")
    return redirect(url_for("ui.edition", edition_id=page.edition_id) + f"#page-{page.id}")


@ui_bp.post("/editions/<edition_id>/submit")
@roles_required(svc.CONTENT_WRITERS)
def submit_edition(edition_id):
    ed = svc.submit_for_review(db(), actor(), _edition(edition_id))
    flash(_("Submitted for review."), "ok")
    return redirect(url_for("ui.edition", edition_id=ed.id))


@ui_bp.post("/editions/<edition_id>/send-back")
@roles_required(svc.PUBLISHERS)
def send_back_edition(edition_id):
    ed = svc.send_back(db(), actor(), _edition(edition_id), request.form.get("comment", ""))
    flash(_("Sent back to the designers."), "ok")
    return redirect(url_for("ui.edition", edition_id=ed.id))


@ui_bp.post("/editions/<edition_id>/publish")
@roles_required(svc.PUBLISHERS)
def publish_edition(edition_id):
    return _submit_job(edition_id, "publish")


@ui_bp.post("/editions/<edition_id>/unpublish")
@roles_required(svc.PUBLISHERS)
def unpublish_edition(edition_id):
    return _submit_job(edition_id, "unpublish")


def _submit_job(edition_id, kind: str):
    """Queue a publish / unpublish job (refusals at once, as before) and show the edition page, which follows the
    job's progress page by page. A job already finished (a queue that runs jobs at once) is reported right away."""
    from ..jobs import job_json, submit_job

    ed = _edition(edition_id)
    job = submit_job(db(), current_app.extensions["baonhung"].jobs, actor(), ed, kind)
    if job.status == "done":
        flash(_("Published as version %(version)s.", version=job.version) if kind == "publish"
              else _("Unpublished. Readers no longer see this edition."), "ok")
    elif job.status == "failed":  # a failed publish is also listed with the edition's publish failures
        flash(job_json(job, lang())["error"]["message"], "error")
    return redirect(url_for("ui.edition", edition_id=ed.id, job=job.id))


@ui_bp.post("/pages/<page_id>/delete")
@roles_required(svc.CONTENT_WRITERS)
def delete_page(page_id):
    page = svc.get_or_404(db(), Page, page_id, "page")
    edition_id = page.edition_id
    svc.delete_page(db(), actor(), page)
    flash(_("Page deleted."), "ok")
    return redirect(url_for("ui.edition", edition_id=edition_id))


# ------------------------------------------------------------------------------ editor and preview

def _page(page_id) -> Page:
    return svc.get_or_404(db(), Page, page_id, "page")


@ui_bp.get("/pages/<page_id>/editor")
@roles_required(svc.CONTENT_WRITERS)
def page_editor(page_id):
    return _render_editor(_page(page_id), preview_only=False)


@ui_bp.get("/pages/<page_id>/preview")
@login_required
def page_preview(page_id):
    return _render_editor(_page(page_id), preview_only=True)


def _render_editor(page: Page, preview_only: bool):
    import_map_json = json.dumps(_import_map(), separators=(",", ":"))
    # The import map is the page's only inline script; CSP allows exactly it by hash (no 'unsafe-inline').
    digest = base64.b64encode(hashlib.sha256(import_map_json.encode()).digest()).decode()
    # WebAssembly runs the meshopt decoder; blob: lets the 3D preview read a GLB chosen but not yet uploaded.
    g.csp = (CSP_DEFAULT.replace("script-src 'self'", f"script-src 'self' 'sha256-{digest}' 'wasm-unsafe-eval'")
             .replace("connect-src 'self'", "connect-src 'self' blob:"))
    pages = page.edition.pages
    at = pages.index(page)
    neighbours = (pages[at - 1] if at > 0 else None, pages[at + 1] if at + 1 < len(pages) else None)
    return render_template("editor.html", page=page, edition=page.edition, page_data=page_json(page, overlays=True),
                           prev_page=neighbours[0], next_page=neighbours[1],
                           kinds=[(k, kind_label(k)) for k in OVERLAY_KINDS], stock=svc.STOCK_NAMES,
                           js_strings=_editor_strings(), import_map_json=import_map_json,
                           preview_only=preview_only, locked=preview_only or page.edition.status != "draft",
                           upload_accept={k: accept_attribute(k) for k in KIND_FORMATS if k != "page"})


def default_box(kind: str, page: Page) -> dict:
    """A new overlay's size in page mm: NEW_OVERLAY_WIDTH_SHARE of the page width; the kind's aspect, except for
    kinds shown as their file (video, images), whose height the service takes from the file's shape. The service
    centres it on the page."""
    width = round(page.width_mm * NEW_OVERLAY_WIDTH_SHARE, 1)
    if kind in svc.MEDIA_SHAPED_KINDS:
        return {"width_mm": width}
    return {"width_mm": width, "height_mm": round(width * NEW_OVERLAY_ASPECT.get(kind, 1.0), 1)}


@ui_bp.post("/pages/<page_id>/overlays")
@roles_required(svc.CONTENT_WRITERS)
def add_overlay(page_id):
    page = _page(page_id)
    values = _form()
    for key, value in default_box(values.get("kind", ""), page).items():
        if not values.get(key):
            values[key] = value
    for key in ("autoplay", "loop", "muted"):  # unchecked boxes are absent from a form post
        if values.get("kind") in ("video", "audio", "animated_image") and key in svc.OPTION_DEFAULTS.get(
                values.get("kind"), {}):
            values[key] = "true" if values.get(key) else "false"
    if values.get("kind") == "video" and not values.get("use_chroma"):
        values["chroma_key"] = ""
    values.pop("use_chroma", None)
    from_stock = values.pop("source", "upload") == "stock"
    if not from_stock:
        values.pop("stock", None)
    upload = request.files.get("file")
    data = upload.read() if upload is not None and upload.filename and not from_stock else None
    overlay = svc.add_overlay(db(), store(), _limits(), actor(), page, values, data,
                              upload.filename if upload is not None else "", centre=True,
                              default_aspect=NEW_OVERLAY_ASPECT.get(values.get("kind", ""), 1.0))
    flash(_("Overlay added: %(kind)s.", kind=kind_label(overlay.kind)), "ok")
    return redirect(url_for("ui.page_editor", page_id=page.id, selected=overlay.id))


def _import_map() -> dict:
    """The editor's 3D preview loads three.js from the viewer's one vendor route (/v/vendor/, one whitelist)."""
    from viewer_api.viewer import import_map

    return import_map()


def _editor_strings() -> dict:
    """Texts the editor script shows, translated on the server (the script has no catalog of its own)."""
    return {
        "saving": _("Saving…"), "saved": _("Saved."), "save_failed": _("Could not save: %(reason)s", reason="{reason}"),
        "deleted": _("Overlay “%(name)s” deleted.", name="{name}"),
        "confirm_delete": _("Delete the overlay “%(name)s”? This cannot be undone.", name="{name}"),
        "no_selection": _("Select an overlay on the page or in the list to edit it."),
        "preview3d_failed": _("The 3D preview could not load: %(reason)s", reason="{reason}"),
        "kinds": {k: kind_label(k) for k in OVERLAY_KINDS},
        "play": _("Tap to play"), "open_link": _("Open link"), "panorama": _("Tap to enter 360°"),
        "size": _size_strings(), "warnings": _warning_strings(),
        "confusable_label": _("Like %(page)s (%(score)s%%)", page="{page}", score="{score}"),
        "published_page": _("No. %(edition)s · Page %(page)s", edition="{edition}", page="{page}"),
        "published_page_id": _("published page #%(page)s", page="{page}"),
        "aspect_locked": _("File proportions kept (%(ratio)s)", ratio="{ratio}"),
        "aspect_unlocked": _("Free proportions (file %(ratio)s)", ratio="{ratio}"),
        "premium": _premium_strings(),
    }


def _premium_strings() -> dict:
    """Issue 27: an overlay's access level and teaser in the editor; with the rules the service checks
    (builder/premium.py TEASERS_BY_KIND, POSTER_REQUIRED), so the form offers only what it accepts."""
    seconds = "{seconds}"
    return {
        "kind_teasers": {k: list(v) for k, v in TEASERS_BY_KIND.items()},
        "poster_upload_kinds": list(POSTER_REQUIRED),
        "badge": _("For subscribers"),
        "names": {"clip": _("First seconds"), "poster": _("Poster"), "blur": _("Blurred still")},
        "default": _("%(teaser)s (default)", teaser="{teaser}"),
        "needs_poster": _("%(teaser)s (needs a poster image)", teaser="{teaser}"),
        # what a reader without a subscription sees, by "kind.teaser"
        "explain": {
            "video.clip": _("Readers without a subscription see the first %(seconds)s s of the video, then the lock.",
                            seconds=seconds),
            "video.poster": _("Readers without a subscription see the video's poster frame with a lock."),
            "audio.clip": _("Readers without a subscription hear the first %(seconds)s s, then the lock.",
                            seconds=seconds),
            "audio.poster": _("Readers without a subscription see the play button with a lock, and hear nothing."),
            "model3d.blur": _("Readers without a subscription see a blurred still of the model with a lock."),
            "model3d.poster": _("Readers without a subscription see the poster image with a lock."),
            "panorama360.blur": _("Readers without a subscription see a blurred still of the panorama with a lock."),
            "panorama360.poster": _("Readers without a subscription see the panorama's poster with a lock."),
            "animated_image.poster": _("Readers without a subscription see the first frame, still, with a lock."),
            "animated_image.blur": _("Readers without a subscription see a blurred still with a lock."),
            "image.blur": _("Readers without a subscription see a blurred copy of the image with a lock."),
            "image.poster": _("Readers without a subscription see the poster image with a lock."),
        },
    }


def _size_strings() -> dict:
    """The bundle size report (POST /api/v1/pages/<id>/bundle-check)."""
    return {
        "checking": _("Packing the page as publishing would… this can take a few seconds."),
        "failed": _("Could not check the size: %(reason)s", reason="{reason}"),
        "done": _("Checked at %(time)s.", time="{time}"),
        "full": _("Full bundle"), "lite": _("Light bundle (slow connections)"),
        "of_budget": _("%(size)s MB of %(budget)s MB", size="{size}", budget="{budget}"),
        "over": _("over budget"), "within": _("Within both budgets."),
        "over_any": _("Over budget: readers on slow connections will wait too long. "
                      "Make the biggest contributors smaller."),
        "streamed": _("Video and sound streamed while playing (outside the budget): %(size)s MB", size="{size}"),
        "other_media": _("Other media downloaded with the page: %(size)s MB", size="{size}"),
        "contributors": _("Biggest contributors"), "page_preview": _("Page preview image"),
        "warnings": _("Warnings"),
    }


def _warning_strings() -> dict:
    """Upload facts (builder/importers/) and bundle warnings (builder/bundle.py) by code; {name} are values."""
    return {
        "not_equirectangular": _("Not a 2:1 panorama (%(width)s×%(height)s px): it will look stretched in 360°.",
                                 width="{width}", height="{height}"),
        "codec_not_web_playable": _("The %(codec)s codec may not play in phone browsers: convert to H.264 MP4 "
                                    "(video) or AAC/MP3 (sound).", codec="{codec}"),
        "gltf_validator_warnings": _("The glTF validator reported %(count)s warnings.", count="{count}"),
        "model_very_large": _("Very large model (%(size)s m across): check its units, or lower its scale.",
                              size="{size}"),
        "model_no_material": _("%(filename)s has no material: it will look like plain grey metal. Give it a material "
                               "in your 3D software and export it again.", filename="{filename}"),
        "animated_image_single_frame": _("%(file)s has a single frame: it will not move.", file="{file}"),
        "over_budget_full": _("The full bundle is %(size)s MB, over its %(budget)s MB budget.",
                              size="{size}", budget="{budget}"),
        "over_budget_lite": _("The light bundle is %(size)s MB, over its %(budget)s MB budget.",
                              size="{size}", budget="{budget}"),
    }


# --------------------------------------------------------------------------------------------- admin

@ui_bp.get("/admin/users")
@roles_required(svc.ADMINS)
def users():
    rows = db().scalars(select(User).order_by(User.email)).all()
    return render_template("users.html", users=rows, roles=[(r, role_label(r)) for r in ROLES])


@ui_bp.post("/admin/users")
@roles_required(svc.ADMINS)
def create_user():
    form = _form()
    user, generated = svc.create_user(db(), actor(), form.get("email", ""), form.get("role", ""),
                                      form.get("password") or None, form.get("name", ""))
    rows = db().scalars(select(User).order_by(User.email)).all()
    # The generated password is shown in this response only (never stored in the session cookie).
    return render_template("users.html", users=rows, roles=[(r, role_label(r)) for r in ROLES],
                           new_user=user, new_password=generated), 201


@ui_bp.post("/admin/users/<user_id>/active")
@roles_required(svc.ADMINS)
def set_user_active(user_id):
    active = request.form.get("active") == "1"
    if int(user_id) == g.user.id and not active:
        raise BadRequest("you cannot deactivate your own account")
    user = svc.set_user_active(db(), actor(), user_id, active)
    flash(_("%(email)s activated.", email=user.email) if active else _("%(email)s deactivated.", email=user.email),
          "ok")
    return redirect(url_for("ui.users"))


@ui_bp.post("/admin/users/<user_id>/password")
@roles_required(svc.ADMINS)
def reset_user_password(user_id):
    user, password = accounts.reset_password(db(), actor(), user_id)
    if user.id == g.user.id:
        session["pwv"] = accounts.session_version(user)  # resetting one's own: stay signed in here
    rows = db().scalars(select(User).order_by(User.email)).all()
    # Like a new account's: shown in this response only, never stored in the session cookie.
    return render_template("users.html", users=rows, roles=[(r, role_label(r)) for r in ROLES],
                           reset_user=user, new_password=password)


@ui_bp.route("/account/password", methods=["GET", "POST"])
@login_required
def change_password():
    """Every signed-in user changes their own password; their other sessions end, this one stays."""
    if request.method == "POST":
        form = request.form
        accounts.change_own_password(db(), actor(), g.user, form.get("current_password", ""),
                                     form.get("new_password", ""), form.get("new_password_again", ""))
        session["pwv"] = accounts.session_version(g.user)
        auth.close_other_sessions(db(), g.user, keep_secret=session.get("sid"))
        revoked = auth.revoke_tokens(db(), g.user) if form.get("revoke_tokens") else 0
        if revoked:
            audit(db(), actor(), "token.revoke_all", "user", g.user.id, count=revoked)
        db().commit()
        flash(_("Password changed. You are signed out everywhere else."), "ok")
        if revoked:
            flash(_("%(count)s API tokens revoked.", count=revoked), "ok")
        return redirect(url_for("ui.change_password"))
    return render_template("password.html", min_length=auth.MIN_PASSWORD_LENGTH)


@ui_bp.get("/admin/audit")
@roles_required(svc.ADMINS)
def audit_log():
    q = select(AuditEntry).order_by(AuditEntry.id.desc())
    who = request.args.get("user", "").strip()
    action = request.args.get("action", "").strip()
    if who:
        q = q.where(AuditEntry.user_email.contains(who.lower()))
    if action:
        q = q.where(AuditEntry.action.startswith(action))
    before = request.args.get("before", type=int)
    if before:
        q = q.where(AuditEntry.id < before)
    rows = db().scalars(q.limit(AUDIT_PAGE_SIZE)).all()
    return render_template("audit.html", entries=rows, who=who, action=action,
                           next_before=rows[-1].id if len(rows) == AUDIT_PAGE_SIZE else None)


def _token_owner(user_id) -> User:
    user = svc.get_or_404(db(), User, user_id, "user")
    if user.id != g.user.id and g.user.role not in svc.ADMINS:
        raise Forbidden(g.user.role)
    return user


@ui_bp.get("/users/<user_id>/tokens")
@login_required
def tokens(user_id):
    user = _token_owner(user_id)
    return render_template("tokens.html", owner=user, tokens=_tokens_of(user))


def _tokens_of(user: User) -> list[ApiToken]:
    return db().scalars(select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id.desc())).all()


@ui_bp.post("/users/<user_id>/tokens")
@login_required
def create_token(user_id):
    user = _token_owner(user_id)
    row, secret = svc.issue_token(db(), actor(), user, request.form.get("name", "").strip()[:100],
                                  request.form.get("expires_days"))
    # Shown once, in this response only: only its hash is stored.
    return render_template("tokens.html", owner=user, tokens=_tokens_of(user), new_token=secret, new_row=row), 201


@ui_bp.post("/tokens/<token_id>/revoke")
@login_required
def revoke_token(token_id):
    row = svc.revoke_token(db(), actor(), token_id)
    flash(_("Token %(prefix)s… revoked.", prefix=row.prefix), "ok")
    return redirect(url_for("ui.tokens", user_id=row.user_id))


@ui_bp.get("/account/tokens")
@login_required
def my_tokens():
    return redirect(url_for("ui.tokens", user_id=g.user.id))


# ---------------------------------------------------------------------------------------- print desk

@ui_bp.get("/print")
@roles_required(svc.SHEET_MAKERS)
def print_desk():
    size = request.args.get("size_mm", type=float) or 20
    size = min(max(size, 15.0), 100.0)  # 15 mm is the smallest QR that scans reliably off newsprint
    ecc = request.args.get("ecc", "M").upper()
    ecc = ecc if ecc in QR_ECC else "M"
    paper = request.args.get("paper", "A4")
    paper = paper if paper in PAPERS else "A4"
    editions = db().scalars(select(Edition).where(Edition.published_version_id.is_not(None))
                            .order_by(Edition.date.desc(), Edition.number.desc())).all()
    from .sheets import unreachable_notice

    return render_template("print_desk.html", editions=editions, size_mm=size, ecc=ecc, paper=paper,
                           unreachable=unreachable_notice(lang()),
                           sizes=QR_SIZES_MM, eccs=QR_ECC, papers=PAPERS,
                           qr_url=_qr_url, sheet_url=_sheet_url)


def _fmt_size(size: float) -> str:
    return f"{size:g}"


def _qr_url(page_id: int, fmt: str, size_mm: float, ecc: str) -> str:
    return f"/api/v1/pages/{page_id}/qr.{fmt}?size_mm={_fmt_size(size_mm)}&ecc={ecc}"


def _sheet_url(edition_id: int, paper: str, size_mm: float = 22.0, ecc: str = "M") -> str:
    """The edition sheet with the QR size and error correction the print desk picked."""
    return f"/api/v1/editions/{edition_id}/sheet.pdf?paper={paper}&size_mm={_fmt_size(size_mm)}&ecc={ecc}"


def _test_sheet_paper(width_mm: float | None, height_mm: float | None, paper: str = "A4") -> str:
    """The paper a page's marker test sheet prints on at 100 %, from ``paper`` up (an A4 page needs A3); ``paper``
    itself for a page of unknown size (a published snapshot that did not record it)."""
    from markers.sheets import marker_sheet_layout

    if not width_mm or not height_mm:
        return paper
    return marker_sheet_layout(width_mm, height_mm, paper).paper


def _marker_sheet_url(page_id: int, paper: str) -> str:
    """The page with crop marks and its rating, to print and try with a phone before going to press."""
    return f"/api/v1/pages/{page_id}/marker-sheet.pdf?paper={paper}"
