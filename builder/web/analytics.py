"""Readership analytics for the newsroom (issue 26): JSON and CSV over ``builder.analytics``.

``GET /api/v1/analytics/{site | publications/<slug> | editions/<id> | pages/<id> | overlays/<id>}[.csv]``
``?from=YYYY-MM-DD&to=YYYY-MM-DD`` (Asia/Ho_Chi_Minh days, inclusive; default the last 30 days), and
``GET /api/v1/analytics/pages/<id>/heatmap?cell_mm=10``. Token auth (or the session cookie) like the rest of the
API. Admins and editors read every publication and the site; a designer reads the publications they are a member
of (``builder.members``; an editor adds them on the publication's page): any other id answers 404 as an id that
does not exist would, and the site 403. The print desk is refused (403).
"""
from __future__ import annotations

import datetime as dt

from flask import Blueprint, Response, jsonify, request

from .. import analytics as an
from .. import members
from .. import services as svc
from ..models import Edition, Overlay, Page
from ..errors import Forbidden, InvalidField, NotFound
from .common import actor, db, lang, login_required, settings

analytics_bp = Blueprint("analytics", __name__, url_prefix="/api/v1/analytics")
READERS = members.READ_ALL  # every publication and the site
MEMBER_READERS = members.MEMBER_ROLES  # their member publications only
DEFAULT_DAYS = 30


def _today() -> dt.date:
    from viewer_api.eventstore import date_of_day, vn_day
    import time

    return date_of_day(vn_day(int(time.time() * 1000)))


def _date(name: str, default: dt.date) -> dt.date:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = dt.date.fromisoformat(raw)
    except ValueError:
        raise InvalidField(name, "a date YYYY-MM-DD") from None
    if not dt.date(2020, 1, 1) <= value <= dt.date(2100, 1, 1):
        raise InvalidField(name, "a date between 2020-01-01 and 2100-01-01")
    return value


def _range() -> tuple[dt.date, dt.date]:
    last = _date("to", _today())
    first = _date("from", last - dt.timedelta(days=DEFAULT_DAYS - 1))
    if last < first or (last - first).days + 1 > an.MAX_RANGE_DAYS:
        raise InvalidField("to", "on or after 'from', at most {days} days after it", days=an.MAX_RANGE_DAYS)
    return first, last


def _reader():
    svc.require_role(actor(), (*READERS, *MEMBER_READERS))
    return an.open_reader(settings(), db())


def require_readable(scope: an.Scope, ident) -> None:
    """A designer reads their member publications only: another publication's id (or anything inside it) is a
    404 exactly like an id that does not exist (``ident`` as asked), the whole site a 403."""
    readable = members.readable_publications(db(), actor())
    if readable is None:
        return
    if scope.level == "site":
        raise Forbidden(actor().role)
    if scope.publication_id not in readable:
        raise NotFound(scope.level, str(ident)[:40])


def _names(scope: an.Scope) -> dict:
    """Titles of the scope's children for the CSV (pages: "Trang 3 — title"; overlays: kind and name)."""
    names = {}
    if scope.level == "edition":
        for p in db().get(Edition, scope.edition_id).pages:
            names[("page", p.id)] = f"{'Trang' if lang() == 'vi' else 'Page'} {p.number}" + (f" — {p.title}" if p.title else "")
    elif scope.level == "page":
        for o in db().get(Page, scope.page_id).overlays:
            names[("overlay", o.id)] = f"{o.kind}" + (f" — {o.name}" if o.name else "")
    return names


def _answer(scope_of, kw: dict, csv: bool):
    reader = _reader()  # the role first: the print desk learns nothing, not even which ids exist
    scope = scope_of(**kw)
    require_readable(scope, next(iter(kw.values()), ""))
    first, last = _range()
    try:
        dash = an.dashboard(reader, scope, first, last)  # report, children, days: the raw part read once
        rep, rows, series = dash.report, dash.children, dash.days
    except an.AnalyticsError as exc:
        raise exc from None  # an InvalidField (400)
    if csv:
        body = an.report_csv(rep, rows, series, lang(), _names(scope))
        name = f"bao-nhung-{scope.level}-{max(scope.key())}-{first.isoformat()}-{last.isoformat()}.csv"
        return Response(body, mimetype="text/csv", headers={"Content-Disposition": f'attachment; filename="{name}"'})
    return jsonify({"report": rep.to_dict(), "children": [r.__dict__ for r in rows],
                    "days": [d.__dict__ for d in series]})


def _route(rule: str, endpoint: str):
    """The JSON view at ``rule`` and the CSV at ``rule`` + ".csv"."""
    def register(scope_of):
        def json_view(**kw):
            return _answer(scope_of, kw, csv=False)

        def csv_view(**kw):
            return _answer(scope_of, kw, csv=True)

        analytics_bp.add_url_rule(rule, endpoint, login_required(json_view), methods=["GET"])
        analytics_bp.add_url_rule(rule + ".csv", endpoint + "_csv", login_required(csv_view), methods=["GET"])
        return scope_of
    return register


@_route("/site", "site")
def _site_scope():
    return an.Scope()


@_route("/publications/<slug>", "publication")
def _publication_scope(slug):
    return an.Scope(publication_id=svc.publication_by_slug(db(), slug).id)


@_route("/editions/<edition_id>", "edition")
def _edition_scope(edition_id):
    e = svc.get_or_404(db(), Edition, edition_id, "edition")
    return an.Scope(e.publication_id, e.id)


@_route("/pages/<page_id>", "page")
def _page_scope(page_id):
    p = svc.get_or_404(db(), Page, page_id, "page")
    return an.Scope(p.edition.publication_id, p.edition_id, p.id)


@_route("/overlays/<overlay_id>", "overlay")
def _overlay_scope(overlay_id):
    o = svc.get_or_404(db(), Overlay, overlay_id, "overlay")
    return an.Scope(o.page.edition.publication_id, o.page.edition_id, o.page_id, o.id)


@analytics_bp.get("/pages/<page_id>/heatmap")
@login_required
def page_heatmap(page_id):
    reader = _reader()
    page = svc.get_or_404(db(), Page, page_id, "page")
    require_readable(an.Scope(page.edition.publication_id, page.edition_id, page.id), page_id)
    first, last = _range()
    raw = request.args.get("cell_mm", "10")
    if not raw.isdigit() or not 5 <= int(raw) <= 100 or int(raw) % an.HEAT_CELL_MM:
        raise InvalidField("cell_mm", "a multiple of 5 between 5 and 100")
    h = an.heatmap(reader, page.id, first, last, page.width_mm, page.height_mm, int(raw))
    return jsonify({**h.to_dict(), "first": first.isoformat(), "last": last.isoformat()})


# ------------------------------------------------------------------------------------------------ OpenAPI
def openapi_paths() -> dict:
    """This blueprint's paths for the OpenAPI document (merged by builder/web/openapi.py)."""
    err = {"$ref": "#/components/schemas/Error"}
    rng = [{"name": "from", "in": "query", "schema": {"type": "string", "format": "date"},
            "description": "first day (Asia/Ho_Chi_Minh), default 29 days before 'to'"},
           {"name": "to", "in": "query", "schema": {"type": "string", "format": "date"},
            "description": "last day, inclusive (default today); at most 3660 days after 'from'"}]

    def op(summary: str, params=(), csv=False, extra=()):
        content = ({"text/csv": {"schema": {"type": "string"}}} if csv
                   else {"application/json": {"schema": {"type": "object"}}})
        return {"get": {
            "summary": summary,
            "description": "Roles: admin, editor; a designer for the publications they are a member of (others: 404, "
                           "the site: 403).", "security": [{"bearer": []}],
            "parameters": [{"name": p, "in": "path", "required": True, "schema": {"type": "string"}} for p in params]
            + rng + list(extra),
            "responses": {"200": {"description": "OK", "content": content},
                          **{c: {"description": d, "content": {"application/json": {"schema": err}}}
                             for c, d in (("400", "bad date range or parameter"), ("401", "no or bad token"),
                                          ("403", "role not allowed"), ("404", "not found"))}}}}

    paths = {}
    for path, what, params in (("/site", "the whole site", ()), ("/publications/{slug}", "a publication", ("slug",)),
                               ("/editions/{edition_id}", "an edition", ("edition_id",)),
                               ("/pages/{page_id}", "a page", ("page_id",)),
                               ("/overlays/{overlay_id}", "an overlay", ("overlay_id",))):
        paths[f"/api/v1/analytics{path}"] = op(f"Readership of {what}: report, its parts, days (issue 26)", params)
        paths[f"/api/v1/analytics{path}.csv"] = op(f"Readership of {what} as CSV (UTF-8 with BOM)", params, csv=True)
    paths["/api/v1/analytics/pages/{page_id}/heatmap"] = op(
        "Where readers aimed on a page: counts in a grid of page millimetres", ("page_id",),
        extra=[{"name": "cell_mm", "in": "query", "schema": {"type": "integer", "minimum": 5, "maximum": 100,
                                                            "multipleOf": 5}}])
    paths["/api/v1/events"] = {"post": {
        "summary": "Readership events from the phone viewer (public; body: viewer_api/schemas/events.schema.json)",
        "security": [],
        "requestBody": {"content": {"application/json": {"schema": {"type": "object"}},
                                    "text/plain": {"schema": {"type": "string"}}}},
        "responses": {"204": {"description": "taken (X-Events-Stored, X-Events-Dropped)"},
                      "400": {"description": "not JSON, not the schema, over 100 events"},
                      "413": {"description": "body over 64 KB"},
                      "422": {"description": "no event names a published page; nothing stored"},
                      "429": {"description": "rate exceeded (Retry-After)"},
                      "503": {"description": "the events writer's queue is full; nothing stored (Retry-After)"}}}}
    return paths
