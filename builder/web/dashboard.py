"""The readership dashboard (issue 26): what the printed pages earned, read by the newsroom in HTML.

``GET /analytics`` (the site), ``/analytics/publications/<slug>``, ``/analytics/editions/<id>``,
``/analytics/pages/<id>`` (with the attention heat-map over the page image), ``/analytics/overlays/<id>``;
``?days=7|30|90`` (the last days up to today) or ``?from=YYYY-MM-DD&to=YYYY-MM-DD`` (Asia/Ho_Chi_Minh days,
inclusive; default the last 30), ``?cell_mm=`` for the heat-map. Thin: parse, call ``builder.analytics``, name the
ids, render ``templates/analytics.html`` (charts from ``builder.charts``, server-rendered SVG).

Who reads it, as the JSON API (``builder/web/analytics.py``): admins and editors everything; a designer the
publications they are a member of (``builder.members``; ``/analytics`` lists them), any other id a 404 as if it did
not exist; the print desk gets a 403 page telling whom to ask.
"""
from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field

from flask import Blueprint, g, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from .. import analytics as an
from .. import charts
from .. import members
from .. import services as svc
from ..models import Edition, Overlay, Page, Publication
from ..errors import InvalidField
from .analytics import MEMBER_READERS, READERS, _range, _today, require_readable
from .common import actor, db, lang, login_required, settings
from .ui import kind_label

dashboard_bp = Blueprint("readership", __name__, url_prefix="/analytics")
QUICK_DAYS = (7, 30, 90)  # the quick picks
HEAT_CELLS_MM = (5, 10, 20)  # heat-map grids offered: 5 mm shows a headline, 20 mm a page region
DEFAULT_CELL_MM = 10
TOP_PAGES = 10


@dashboard_bp.app_context_processor
def _nav():
    user = g.get("user")
    return {"can_read_analytics": user is not None and user.role in (*READERS, *MEMBER_READERS)}


# ------------------------------------------------------------------------------------------------ parsing
def _days_range() -> tuple[dt.date, dt.date, int | None]:
    """The range asked for: ``days`` (the last N days up to today) wins over ``from``/``to``. Returns the first
    and last day and N when the range is one of the quick picks' shape (ending today)."""
    raw = request.args.get("days")
    if raw:
        if not raw.isdigit() or not 1 <= int(raw) <= an.MAX_RANGE_DAYS:
            raise InvalidField("days", "a whole number of days from 1 to {hi}", hi=an.MAX_RANGE_DAYS)
        last = _today()
        return last - dt.timedelta(days=int(raw) - 1), last, int(raw)
    first, last = _range()
    n = (last - first).days + 1
    return first, last, n if last == _today() else None


def _cell_mm() -> int:
    raw = request.args.get("cell_mm", str(DEFAULT_CELL_MM))
    if not raw.isdigit() or int(raw) not in HEAT_CELLS_MM:
        raise InvalidField("cell_mm", "one of {choices}", choices=", ".join(map(str, HEAT_CELLS_MM)))
    return int(raw)


def _guard():
    """Editors, admins and designers (these for their member publications, checked per view); the print desk gets
    a page saying whom to ask, not a bare 403."""
    if g.user.role not in (*READERS, *MEMBER_READERS):
        return render_template("analytics_refused.html"), 403
    return None


# ------------------------------------------------------------------------------------------------ names
def edition_label(e: Edition) -> str:
    return _("No. %(number)s · %(date)s", number=e.number, date=charts.Numbers(lang()).date(e.date))


def page_label(p: Page) -> str:
    return _("Page %(number)s", number=p.number) + (f" — {p.title}" if p.title else "")


def overlay_label(o: Overlay) -> str:
    return kind_label(o.kind) + (f" — {o.name}" if o.name else "")


@dataclass
class Named:
    """A child row of the table: its numbers, its name and where it drills down to."""

    row: an.BreakdownRow
    name: str
    url: str | None
    context: str = ""  # where it is, for top pages across editions ("Báo Yên Bái · Số 3")


def _zero(level: str, ident: int) -> an.BreakdownRow:
    return an.BreakdownRow(level, ident, *([0] * 12))


def _name_rows(rows: list[an.BreakdownRow], level: str, keep_all: list | None, kw: dict) -> list[Named]:
    """Names and drill-down links of ``rows`` (children of one level), read in one query; ``keep_all``: every
    child object of the scope, so those without a reader are listed too (a page nobody scanned is news)."""
    ids = [r.id for r in rows]
    model = {"publication": Publication, "edition": Edition, "page": Page, "overlay": Overlay}[level]
    objects = {o.id: o for o in (keep_all if keep_all is not None else
                                 db().scalars(select(model).where(model.id.in_(ids or [0]))).all())}
    by_id = {r.id: r for r in rows}
    order = [r.id for r in rows] + [i for i in objects if i not in by_id]
    out = []
    for i in order:
        o = objects.get(i)
        row = by_id.get(i) or _zero(level, i)
        if o is None:  # deleted since: its numbers stay, under its id
            out.append(Named(row, f"#{i}", None))
        elif level == "publication":
            out.append(Named(row, o.name, url_for("readership.publication", slug=o.slug, **kw)))
        elif level == "edition":
            out.append(Named(row, edition_label(o), url_for("readership.edition", edition_id=o.id, **kw)))
        elif level == "page":
            out.append(Named(row, page_label(o), url_for("readership.page", page_id=o.id, **kw),
                             f"{o.edition.publication.name} · {edition_label(o.edition)}"))
        else:
            out.append(Named(row, overlay_label(o), url_for("readership.overlay", overlay_id=o.id, **kw)))
    return out


# ------------------------------------------------------------------------------------------------ the view
@dataclass
class Level:
    """What one dashboard page is about."""

    scope: an.Scope
    title: str
    endpoint: str  # this view, for the range links
    view_args: dict
    api_endpoint: str  # the JSON API's view, whose ".csv" twin is the export
    crumbs: list = field(default_factory=list)  # [(label, url)] above the title
    page: Page | None = None
    children: list | None = None  # every child object (edition: pages, page: overlays), zeros included


def _render(level: Level):
    refused = _guard()
    if refused:
        return refused
    first, last, days = _days_range()
    cell_mm = _cell_mm() if level.scope.level == "page" else DEFAULT_CELL_MM
    reader = an.open_reader(settings(), db())
    scope = level.scope
    started = time.perf_counter()
    try:
        dash = an.dashboard(reader, scope, first, last)  # report, children, days: the raw part read once
        rep, rows, series = dash.report, dash.children, dash.days
        top = an.top_pages(reader, scope, first, last, TOP_PAGES) if scope.level in ("site", "publication") else []
        heat = (an.heatmap(reader, level.page.id, first, last, level.page.width_mm, level.page.height_mm, cell_mm)
                if level.page is not None else None)
    except an.AnalyticsError as exc:
        raise exc from None  # an InvalidField (400)
    query_ms = (time.perf_counter() - started) * 1000
    kw = {"from": first.isoformat(), "to": last.isoformat()}
    child_level = an.CHILD_LEVEL.get(scope.level)
    named = _name_rows(rows, child_level, level.children, kw) if child_level else []
    named_top = _name_rows(top, "page", None, kw) if top else []
    csv_args = {**level.view_args, **kw, "lang": lang()}
    return render_template(
        "analytics.html", level=level, rep=rep, children=named, child_level=child_level, top_pages=named_top,
        series=series, heat=heat, heat_svg=_heat_svg(level.page, heat) if heat is not None else None, cell_mm=cell_mm, cells_mm=HEAT_CELLS_MM, first=first, last=last, days=days,
        quick_days=QUICK_DAYS, range_args=kw, query_ms=query_ms, fmt=charts.Numbers(lang()), charts=charts,
        csv_url=url_for(f"analytics.{level.api_endpoint}_csv", **csv_args),
        json_url=url_for(f"analytics.{level.api_endpoint}", **level.view_args, **kw),
        child_csv=lambda n: _child_csv(child_level, n, kw),
        level_url=lambda **extra: url_for(level.endpoint, **level.view_args, **extra),
        has_data=bool(rep.sessions or any(rep.events.values())),
        has_premium=bool(rep.premium["impressions"] or rep.premium["lock_taps"] or rep.premium["redeemed"]))


def _heat_svg(p: Page, heat: an.HeatMap):
    """The heat-map over the page image, overlays outlined, each cell titled with where it is and its count."""
    fmt = charts.Numbers(lang())
    c = heat.cell_mm

    def title(row: int, col: int, n: int) -> str:
        return _("x %(x0)s–%(x1)s mm, y %(y0)s–%(y1)s mm: %(n)s aim points", x0=col * c, x1=(col + 1) * c,
                 y0=row * c, y1=(row + 1) * c, n=fmt.int(n))

    boxes = [(o.x_mm, o.y_mm, o.width_mm, o.height_mm, o.rotation_deg, overlay_label(o)) for o in p.overlays]
    return charts.heatmap_svg(heat.cells, c, heat.width_mm, heat.height_mm,
                              url_for("api.get_asset", sha=p.image_sha, type=p.image_mime),
                              label=_("Where readers aimed their phones on %(page)s", page=page_label(p)),
                              cell_title=title, boxes=boxes)


def _child_csv(child_level: str, named: Named, kw: dict) -> str | None:
    """The CSV export of a child row (one level down), or None for an object deleted since."""
    if named.url is None:
        return None
    args = {**kw, "lang": lang()}
    if child_level == "publication":
        slug = db().get(Publication, named.row.id).slug
        return url_for("analytics.publication_csv", slug=slug, **args)
    return url_for(f"analytics.{child_level}_csv", **{f"{child_level}_id": named.row.id}, **args)


def _site_crumb() -> tuple[str, str]:
    label = _("Your publications") if g.user.role in MEMBER_READERS else _("All publications")
    return label, url_for("readership.site", **_keep_range())


def _keep_range() -> dict:
    return {k: request.args[k] for k in ("days", "from", "to") if request.args.get(k)}


@dashboard_bp.get("")
@login_required
def site():
    if (refused := _guard()) is not None:
        return refused
    readable = members.readable_publications(db(), actor())
    if readable is not None:  # a designer: not the whole site, the publications they are a member of
        pubs = db().scalars(select(Publication).where(Publication.id.in_(readable or [0]))
                            .order_by(Publication.name)).all()
        return render_template("analytics_mine.html", publications=pubs, range_args=_keep_range())
    return _render(Level(an.Scope(), _("All publications"), "readership.site", {}, "site"))


@dashboard_bp.get("/publications/<slug>")
@login_required
def publication(slug):
    if (refused := _guard()) is not None:
        return refused
    pub = svc.publication_by_slug(db(), slug)
    require_readable(an.Scope(pub.id), slug)
    return _render(Level(an.Scope(pub.id), pub.name, "readership.publication", {"slug": pub.slug}, "publication",
                         [_site_crumb()]))


@dashboard_bp.get("/editions/<edition_id>")
@login_required
def edition(edition_id):
    if (refused := _guard()) is not None:
        return refused
    e = svc.get_or_404(db(), Edition, edition_id, "edition")
    require_readable(an.Scope(e.publication_id, e.id), edition_id)
    crumbs = [_site_crumb(), (e.publication.name, url_for("readership.publication", slug=e.publication.slug,
                                                          **_keep_range()))]
    return _render(Level(an.Scope(e.publication_id, e.id), edition_label(e), "readership.edition",
                         {"edition_id": e.id}, "edition", crumbs, children=list(e.pages)))


@dashboard_bp.get("/pages/<page_id>")
@login_required
def page(page_id):
    if (refused := _guard()) is not None:
        return refused
    p = svc.get_or_404(db(), Page, page_id, "page")
    e = p.edition
    require_readable(an.Scope(e.publication_id, e.id, p.id), page_id)
    crumbs = [_site_crumb(), (e.publication.name, url_for("readership.publication", slug=e.publication.slug,
                                                          **_keep_range())),
              (edition_label(e), url_for("readership.edition", edition_id=e.id, **_keep_range()))]
    return _render(Level(an.Scope(e.publication_id, e.id, p.id), page_label(p), "readership.page",
                         {"page_id": p.id}, "page", crumbs, page=p, children=list(p.overlays)))


@dashboard_bp.get("/overlays/<overlay_id>")
@login_required
def overlay(overlay_id):
    if (refused := _guard()) is not None:
        return refused
    o = svc.get_or_404(db(), Overlay, overlay_id, "overlay")
    p, e = o.page, o.page.edition
    require_readable(an.Scope(e.publication_id, e.id, p.id, o.id), overlay_id)
    crumbs = [_site_crumb(), (e.publication.name, url_for("readership.publication", slug=e.publication.slug,
                                                          **_keep_range())),
              (edition_label(e), url_for("readership.edition", edition_id=e.id, **_keep_range())),
              (page_label(p), url_for("readership.page", page_id=p.id, **_keep_range()))]
    return _render(Level(an.Scope(e.publication_id, e.id, p.id, o.id), overlay_label(o), "readership.overlay",
                         {"overlay_id": o.id}, "overlay", crumbs))
