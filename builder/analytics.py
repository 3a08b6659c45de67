"""Readership analytics, the newsroom's side (issue 26): daily rollups of the raw events and the query layer the
dashboard, the JSON API and the CSV export are built on. No Flask here.

Reading: every function takes an :class:`EventsReader` (the events store's engine and the newsroom's map of
edition → publication), a :class:`Scope` and an inclusive range of Asia/Ho_Chi_Minh days, and reads the daily
aggregates (``event_daily``) for the days already rolled up and the raw ``events`` for the others, through the
same aggregate SQL, so a number is the same before and after its day is rolled up.

Public functions (the dashboard's contract)::

    reader = open_reader(settings, db)                      # EventsReader
    report(reader, Scope(edition_id=12), first, last)       -> Report      (.to_dict() for JSON)
    breakdown(reader, Scope(edition_id=12), first, last)    -> list[BreakdownRow]   children of the scope:
        publications of the site, editions of a publication, pages of an edition, overlays of a page; by sessions
    heatmap(reader, page_id, first, last, width_mm, height_mm, cell_mm=10) -> HeatMap  aim points in a mm grid
    daily_series(reader, scope, first, last)                -> list[DayRow]  sessions / readers / recognized a day
    report_csv(report, rows, series, lang="vi")             -> bytes   UTF-8 with BOM (Excel shows the diacritics)
    rollup(reader, today)                                   -> RollupResult   (CLI ``baonhung analytics rollup``)

Units: times in ms, days as ``datetime.date`` (Asia/Ho_Chi_Minh), page positions in mm from the top-left, y down.
Unique readers of a range are the sum of each day's unique readers: the salt changes daily, so one reader on two
days counts twice (by design, as in Plausible). A scope's sessions are the distinct sessions with an event in it.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import asdict, dataclass, field
from typing import Mapping

from sqlalchemy import and_, delete, func, insert, literal, select, text
from sqlalchemy.engine import Engine

from viewer_api import eventstore as es

from .errors import InvalidField, render_part

# ------------------------------------------------------------------------------------------------ metrics
METRICS = {"events": 1, "sum_n": 2, "sessions": 3, "visitors": 4, "funnel": 5, "device": 6, "entry": 7, "hour": 8,
           "ttr": 9, "heat": 10}
T = es.EVENT_TYPES
FUNNEL_STEPS = (  # (name, event types that put a session on the step)
    ("opened", (T["opened"],)),
    ("camera", (T["camera_started"],)),
    ("recognized", (T["recognized"],)),
    ("engaged", (T["overlay_activated"], T["media_progress"], T["model_interaction"], T["panorama_entered"],
                 T["link_opened"], T["reaction"])),
)
GAVE_UP_KEY = len(FUNNEL_STEPS) + 1  # funnel metric key of the sessions that gave up (not a step of the funnel)
SUMMED_TYPES = (T["recognized"], T["dwell"], T["recognition_given_up"], T["dropped"],
                T["refused"])  # their n (ms, count) summed
# Time-to-recognition histogram: upper bounds (ms) of its buckets; the last bucket is everything above 30 s.
TTR_BOUNDS_MS = (250, 500, 750, 1000, 1500, 2000, 3000, 5000, 8000, 13000, 20000, 30000)
HEAT_CELL_MM = 5  # rollups keep aim points in 5 mm cells; a heat-map's cell is a multiple of it
HEAT_ROW = 1000  # heat key = (x_mm // 5) + (y_mm // 5) * 1000 (pages are at most 2000 mm: 400 cells a side)
ROLLUP_CHUNK_DAYS = 31  # days aggregated by one pass of each query (a month of raw events at most per pass)
FINAL_AFTER_DAYS = 8  # a day gets no more events 7 days (the ingest's max age) after it ends: then it is final
MAX_RANGE_DAYS = 3660  # a query covers at most ten years
LEVELS = ("site", "publication", "edition", "page", "overlay")


@dataclass(frozen=True)
class Scope:
    """What a number is about. All zero: the whole site. Ids are the newsroom's (published ones)."""

    publication_id: int = 0
    edition_id: int = 0
    page_id: int = 0
    overlay_id: int = 0

    @property
    def level(self) -> str:
        if self.overlay_id:
            return "overlay"
        if self.page_id:
            return "page"
        if self.edition_id:
            return "edition"
        return "publication" if self.publication_id else "site"

    def key(self) -> tuple[int, int, int, int]:
        return self.publication_id, self.edition_id, self.page_id, self.overlay_id


CHILD_LEVEL = {"site": "publication", "publication": "edition", "edition": "page", "page": "overlay"}


class AnalyticsError(InvalidField, ValueError):
    """A query the layer cannot answer (a range too long, a cell size not a multiple of 5 mm): an invalid field
    (``field`` names the parameter, ``reason`` is an English template in the catalog)."""

    def __str__(self) -> str:
        return f"{self.field}: {render_part(self.values['reason'], self.values, 'en')}"


@dataclass
class EventsReader:
    """The events store as the newsroom reads it: ``engine`` (full rights) and ``editions`` (edition id →
    publication id, from the newsroom database)."""

    engine: Engine
    editions: Mapping[int, int]


def open_reader(settings, db) -> EventsReader:
    """A reader on the configured events store (its tables created if missing), with the newsroom's editions."""
    from .models import Edition

    engine = _engine_for(settings)
    editions = {eid: pid for eid, pid in db.execute(select(Edition.id, Edition.publication_id)).all()}
    return EventsReader(engine, editions)


_engines: dict[str, Engine] = {}


def _engine_for(settings) -> Engine:
    url = settings.events_url or es.default_events_url(settings.data_dir)
    engine = _engines.get(url)
    if engine is None:
        engine = _engines[url] = es.make_events_engine(url)
        es.create_schema(engine)
    return engine


# ------------------------------------------------------------------------------------------------ aggregate SQL
def _mapping_cte(editions: Mapping[int, int]) -> str:
    pairs = ", ".join(f"({int(e)}, {int(p)})" for e, p in sorted(editions.items())) or "(0, 0)"
    return f"WITH m(edition_id, publication_id) AS (VALUES {pairs}) "


# CROSS JOIN keeps SQLite's join order: the events' time range first (its index), then the edition map (an automatic
# index); with a plain JOIN it looped over the editions and scanned the range once for each (60x slower at 60).
_JOIN, _ON = "CROSS JOIN m", "m.edition_id = e.edition_id"
_LEVEL_SQL = {  # selected columns (publication, edition, page, overlay), join, condition
    "site": ("0, 0, 0, 0", "", "1 = 1"),
    "publication": ("m.publication_id, 0, 0, 0", _JOIN, _ON),
    "edition": ("m.publication_id, e.edition_id, 0, 0", _JOIN, _ON),
    "page": ("m.publication_id, e.edition_id, e.page_id, 0", _JOIN, f"{_ON} AND e.page_id IS NOT NULL"),
    "overlay": ("m.publication_id, e.edition_id, e.page_id, e.overlay_id", _JOIN, f"{_ON} AND e.overlay_id IS NOT NULL"),
}


def _ttr_bucket_sql() -> str:
    whens = " ".join(f"WHEN e.n <= {b} THEN {i}" for i, b in enumerate(TTR_BOUNDS_MS))
    return f"CASE {whens} ELSE {len(TTR_BOUNDS_MS)} END"


def _arms(level: str, wanted: set[int]) -> list[tuple[str, str | None, list[str], str]]:
    """The aggregates that make the ``wanted`` metrics at ``level``: (name, key SQL, aggregate SQLs, extra
    condition), over rows aliased e."""
    M = METRICS
    summed = ", ".join(str(x) for x in SUMMED_TYPES)
    steps = [f"COUNT(DISTINCT CASE WHEN e.type IN ({', '.join(map(str, types))}) THEN e.session END)"
             for _name, types in (*FUNNEL_STEPS, ("gave_up", (T["recognition_given_up"],)))]
    readers = f"e.type < {es.SERVER_TYPES_FROM}"  # not the server's dropped / refused rows
    arms: list[tuple[str, str | None, list[str], str]] = []
    if wanted & {M["events"], M["sum_n"]}:  # counts and sums of n by type and category, in one pass
        arms.append(("n", "e.type * 1000 + COALESCE(e.k, 0)",
                     ["COUNT(*)", f"SUM(CASE WHEN e.type IN ({summed}) THEN e.n END)"], ""))
    if wanted & {M["sessions"], M["visitors"], M["funnel"]}:  # the funnel's steps only when asked for: each step
        # is a COUNT(DISTINCT) of its own (a temporary b-tree of sessions), the costliest aggregates of the raw part
        arms.append(("readers", None, ["COUNT(DISTINCT e.session)", "COUNT(DISTINCT e.visitor)",
                                       *(steps if M["funnel"] in wanted else [])], readers))
    # who and when, down to pages (per overlay they would multiply the rows for little: an overlay's readers are
    # its page's)
    for metric, key_sql in ((("device", f"e.ctx & {es.DEVICE_MASK}"), ("entry", "e.ctx / 1024"),
                             ("hour", es.sql_hour("e.t"))) if level != "overlay" else ()):
        if M[metric] in wanted:
            arms.append((metric, key_sql, ["COUNT(DISTINCT e.session)"], readers))
    if M["ttr"] in wanted:
        arms.append(("ttr", _ttr_bucket_sql(), ["COUNT(*)"], f"e.type = {T['recognized']}"))
    if level == "page" and M["heat"] in wanted:
        arms.append(("heat", f"(e.x_mm / {HEAT_CELL_MM}) + (e.y_mm / {HEAT_CELL_MM}) * {HEAT_ROW}", ["COUNT(*)"],
                     f"e.type = {T['aim']}"))
    return arms


def _arm_rows(name: str, g: tuple, d: int, key: int, values: tuple, wanted: set[int]) -> list[tuple]:
    """The aggregate rows ``(publication, edition, page, overlay, metric, day, key, n)`` of one result of an arm."""
    M = METRICS
    out: list[tuple] = []
    if name == "n":
        if M["events"] in wanted:
            out.append((*g, M["events"], d, key, values[0]))
        if M["sum_n"] in wanted and key // 1000 in SUMMED_TYPES and values[1] is not None:
            out.append((*g, M["sum_n"], d, key, values[1]))
    elif name == "readers":
        if M["sessions"] in wanted:
            out.append((*g, M["sessions"], d, 0, values[0]))
        if M["visitors"] in wanted:
            out.append((*g, M["visitors"], d, 0, values[1]))
        if M["funnel"] in wanted:
            out += [(*g, M["funnel"], d, step, n) for step, n in enumerate(values[2:2 + len(FUNNEL_STEPS) + 1],
                                                                             start=1) if n]
    else:
        out.append((*g, M[name], d, key, values[0]))
    return out


def _wanted(metrics: tuple[int, ...] | None) -> set[int]:
    return set(metrics) if metrics else set(METRICS.values())


def _aggregate(conn, editions: Mapping[int, int], level: str, t0: int, t1: int, where: str = "1 = 1",
               params: dict | None = None, metrics: tuple[int, ...] | None = None,
               single_scan: bool = False) -> list[tuple]:
    """Aggregate rows ``(publication, edition, page, overlay, metric, day, key, n)`` of the raw events with
    t0 <= t < t1 at one level, restricted by ``where`` (SQL on alias e). The rollup stores exactly these.

    ``metrics``: only these (METRICS codes): a reader asking for a few runs only the aggregates that make them.
    ``single_scan``: one statement reading the events once (:func:`_aggregate_levels`) instead of one query, hence
    one read of the rows, per aggregate. For the query layer's raw part (an edition's day: the rows are scattered
    among the day's other editions, so reading them is most of the cost); the rollup keeps separate queries (a
    month of every edition is too many rows to materialize)."""
    if single_scan:
        return _aggregate_levels(conn, editions, ((level, metrics),), t0, t1, where, params)[level]
    cols, join, cond = _LEVEL_SQL[level]
    day = es.sql_day("e.t")
    wanted = _wanted(metrics)
    arms = _arms(level, wanted)
    if not arms:
        return []
    p = {"t0": t0, "t1": t1, **(params or {})}
    cte = _mapping_cte(editions) if join else ""
    rows_where = f"e.t >= :t0 AND e.t < :t1 AND {cond} AND ({where})"
    out: list[tuple] = []
    grouped = ", ".join(c for c in cols.split(", ") if c != "0")  # a literal integer in GROUP BY is a position
    for name, key_sql, aggs, extra in arms:
        group = f"GROUP BY {grouped + ', ' if grouped else ''}{day}{', ' + key_sql if key_sql else ''}"
        sql = (f"{cte}SELECT {cols}, {day}, {key_sql or 0}, {', '.join(aggs)} FROM events e {join} "
               f"WHERE {rows_where}{' AND ' + extra if extra else ''} {group}")
        for r in conn.execute(text(sql), p).all():
            out += _arm_rows(name, tuple(r[:4]), r[4], r[5], tuple(r[6:]), wanted)
    return [tuple(int(v) for v in r) for r in out]


# a level's columns over the single scan's rows (alias e of the materialized s), and its extra condition
_SCAN_LEVEL = {
    "site": ("0, 0, 0, 0", ""),
    "publication": ("e.pub, 0, 0, 0", ""),
    "edition": ("e.pub, e.edition_id, 0, 0", ""),
    "page": ("e.pub, e.edition_id, e.page_id, 0", "e.page_id IS NOT NULL"),
    "overlay": ("e.pub, e.edition_id, e.page_id, e.overlay_id", "e.overlay_id IS NOT NULL"),
}


def _arm_select(i: int, level: str, arm: tuple, width: int, day: str) -> str:
    """One arm of :func:`_aggregate_levels`' UNION ALL: the ``level``'s aggregates of ``arm`` over the CTE ``s``,
    tagged ``i`` and padded with NULLs to ``width`` values."""
    _name, key_sql, aggs, extra = arm
    cols, level_cond = _SCAN_LEVEL[level]
    conds = " AND ".join(c for c in (level_cond, extra) if c)
    grouped = ", ".join(c for c in cols.split(", ") if c != "0")
    values = ", ".join([*aggs, *["NULL"] * (width - len(aggs))])
    return (f"SELECT {i}, {cols}, {day}, {key_sql or 0}, {values} FROM s e "
            f"{'WHERE ' + conds if conds else ''} GROUP BY {grouped + ', ' if grouped else ''}{day}"
            f"{', ' + key_sql if key_sql else ''}")


def _aggregate_levels(conn, editions: Mapping[int, int], wants, t0: int, t1: int, where: str = "1 = 1",
                      params: dict | None = None) -> dict[str, list[tuple]]:
    """:func:`_aggregate` of several levels, ``wants`` = ((level, metrics), ...), in one statement that reads the
    events once: a MATERIALIZED CTE of the range's rows, then every level's aggregates over it with UNION ALL (the
    dashboard's report and its children from one read of today's events). The site level keeps events of no known
    edition, the others only events of the newsroom's editions (as :func:`_aggregate`): the site does not go with
    another level."""
    levels = [lv for lv, _m in wants]
    if "site" in levels and len(levels) > 1:
        raise ValueError("the site level is aggregated alone (its rows include events of no edition)")
    join = "site" not in levels
    day = es.sql_day("e.t")
    plan = []  # (level, wanted, arm)
    for level, metrics in wants:
        wanted = _wanted(metrics)
        plan += [(level, wanted, arm) for arm in _arms(level, wanted)]
    out: dict[str, list[tuple]] = {lv: [] for lv in levels}
    if not plan:
        return out
    p = {"t0": t0, "t1": t1, **(params or {})}
    width = max(len(arm[2]) for _lv, _w, arm in plan)
    rows_sql = (f"SELECT {'m.publication_id' if join else '0'} AS pub, e.edition_id, e.page_id, e.overlay_id, e.t, "
                f"e.type, e.k, e.n, e.session, e.visitor, e.ctx, e.x_mm, e.y_mm FROM events e "
                f"{_JOIN if join else ''} WHERE e.t >= :t0 AND e.t < :t1 AND {_ON if join else '1 = 1'} AND ({where})")
    selects = [_arm_select(i, level, arm, width, day) for i, (level, _wanted_set, arm) in enumerate(plan)]
    cte = _mapping_cte(editions).rstrip() + "," if join else "WITH"
    for r in conn.execute(text(f"{cte} s AS MATERIALIZED ({rows_sql}) " + " UNION ALL ".join(selects)), p).all():
        level, wanted, (name, *_rest) = plan[r[0]]
        out[level] += [tuple(int(v) for v in row)
                       for row in _arm_rows(name, tuple(r[1:5]), r[5], r[6], tuple(r[7:]), wanted)]
    return out


# ------------------------------------------------------------------------------------------------ rollup
@dataclass(frozen=True)
class RollupResult:
    days_rolled: int  # days (re)computed into event_daily
    rows_written: int
    raw_deleted: int  # raw events older than the retention, removed after their day was final


def rollup(reader: EventsReader, today: dt.date, retention_days: int = 90, first: dt.date | None = None) -> RollupResult:
    """Roll the raw events of every completed day up into ``event_daily`` (replacing that day's rows), then delete
    raw events older than ``retention_days`` whose day is final.

    A day is recomputed on every run until it is final (FINAL_AFTER_DAYS after it: the ingest accepts events up to
    7 days old), so late events from an offline queue are counted; a final day is never touched again. ``first``:
    the earliest day to consider (default: the earliest raw event)."""
    if not 8 <= retention_days <= 36500:
        raise AnalyticsError("retention_days", "must be between 8 and 36500")
    today_n = es.day_of_date(today)
    engine = reader.engine
    with engine.connect() as conn:
        t_min = conn.execute(select(es.events.c.t).order_by(es.events.c.t).limit(1)).scalar()
        final_days = set(conn.execute(select(es.rolled_days.c.day).where(es.rolled_days.c.final == 1)).scalars())
    start = es.day_of_date(first) if first else (es.vn_day(t_min) if t_min is not None else today_n)
    days_rolled = rows_written = 0
    pending = [day for day in range(start, today_n) if day not in final_days]
    for span_start, span_end in (_spans(pending) if pending else ()):
        for chunk_start in range(span_start, span_end + 1, ROLLUP_CHUNK_DAYS):
            chunk_end = min(chunk_start + ROLLUP_CHUNK_DAYS - 1, span_end)
            rows = []
            with engine.connect() as conn:  # one pass per query over the chunk's days (grouped by day)
                for level in LEVELS:
                    rows += _aggregate(conn, reader.editions, level, es.day_start_ms(chunk_start),
                                       es.day_start_ms(chunk_end + 1))
            with engine.begin() as conn:
                days = list(range(chunk_start, chunk_end + 1))
                conn.execute(delete(es.event_daily).where(es.event_daily.c.day.in_(days)))
                if rows:
                    conn.execute(insert(es.event_daily), [dict(zip(_DAILY_COLS, r)) for r in rows])
                conn.execute(delete(es.rolled_days).where(es.rolled_days.c.day.in_(days)))
                conn.execute(insert(es.rolled_days),
                             [{"day": d, "final": 1 if d <= today_n - FINAL_AFTER_DAYS else 0} for d in days])
            days_rolled += len(days)
            rows_written += len(rows)
    cutoff_day = today_n - retention_days
    with engine.begin() as conn:
        final_days = set(conn.execute(select(es.rolled_days.c.day).where(es.rolled_days.c.final == 1)).scalars())
        deletable = [d for d in final_days if d < cutoff_day]
        raw_deleted = 0
        if deletable:
            upto = es.day_start_ms(min(max(deletable) + 1, cutoff_day))
            # only days that are final and rolled up: the raw events of any other day stay
            first_missing = next((d for d in range(start, cutoff_day) if d not in final_days), None)
            if first_missing is not None:
                upto = min(upto, es.day_start_ms(first_missing))
            raw_deleted = conn.execute(delete(es.events).where(es.events.c.t < upto)).rowcount or 0
    return RollupResult(days_rolled, rows_written, raw_deleted)


_DAILY_COLS = ("publication_id", "edition_id", "page_id", "overlay_id", "metric", "day", "key", "n")


# ------------------------------------------------------------------------------------------------ reading
def _check_range(first: dt.date, last: dt.date) -> tuple[int, int]:
    if last < first:
        raise AnalyticsError("to", "must not be before 'from'")
    if (last - first).days + 1 > MAX_RANGE_DAYS:
        raise AnalyticsError("to", "a range covers at most {days} days", days=MAX_RANGE_DAYS)
    return es.day_of_date(first), es.day_of_date(last)


def _scope_filter(scope: Scope, editions: Mapping[int, int]) -> tuple[str, dict]:
    """SQL (alias e) keeping the raw events of ``scope`` (children included)."""
    parts, params = [], {}
    if scope.publication_id and not scope.edition_id:
        ids = [e for e, p in sorted(editions.items()) if p == scope.publication_id] or [0]
        parts.append(f"e.edition_id IN ({', '.join(str(int(i)) for i in ids)})")
    for col, value in (("edition_id", scope.edition_id), ("page_id", scope.page_id), ("overlay_id", scope.overlay_id)):
        if value:
            parts.append(f"e.{col} = :{col}")
            params[col] = value
    return " AND ".join(parts) or "1 = 1", params


def _rows(reader: EventsReader, scope: Scope, level: str, first_day: int, last_day: int,
          metrics: tuple[int, ...] | None = None, by_day: bool = True, memo: dict | None = None) -> list[tuple]:
    """Aggregate rows of ``level`` inside ``scope`` (the scope's own level, or its children's) for the days, from
    the rollups where a day is rolled up and from the raw events otherwise. ``by_day`` False: the rolled-up days
    come summed in SQL, one row per (ids, metric, key) with ``first_day`` as its day (for callers that add the days
    up anyway: 30 days of a busy edition are ~30x fewer rows to fetch and fold). ``memo``: raw aggregates already
    read by this caller (:func:`dashboard`: the days' series takes the report's raw part instead of reading it
    again); a raw part computed for all metrics, or for more than asked, serves a later call of the same level,
    span and filter."""
    with reader.engine.connect() as conn:
        rolled = _rolled_days(conn, first_day, last_day)
        d = es.event_daily.c
        ids = (d.publication_id, d.edition_id, d.page_id, d.overlay_id, d.metric)
        if by_day:
            q = select(*ids, d.day, d.key, d.n)
        else:
            q = select(*ids, literal(first_day), d.key, func.sum(d.n)).group_by(*ids, d.key)
        q = q.where(d.day >= first_day, d.day <= last_day, *_level_conditions(d, scope, level))
        if metrics:
            q = q.where(d.metric.in_(metrics))
        out = [tuple(int(v) for v in r) for r in conn.execute(q).all()] if rolled else []
        for t0, t1, span_where, params in _raw_spans(conn, reader, scope, first_day, last_day, rolled):
            key = (level, t0, t1, span_where, tuple(sorted(params.items())))
            known = memo.get(key) if memo is not None else None
            if known is not None and (known[0] is None or (metrics and set(metrics) <= known[0])):
                raw = [r for r in known[1] if not metrics or r[4] in metrics]
            else:
                raw = _aggregate(conn, reader.editions, level, t0, t1, span_where, params, metrics, single_scan=True)
                if memo is not None:
                    memo[key] = (set(metrics) if metrics else None, raw)
            out += [r for r in raw if _in_scope(r, scope, level)]
    return out


def _rolled_days(conn, first_day: int, last_day: int) -> set[int]:
    return set(conn.execute(select(es.rolled_days.c.day).where(
        and_(es.rolled_days.c.day >= first_day, es.rolled_days.c.day <= last_day))).scalars())


def _raw_spans(conn, reader: EventsReader, scope: Scope, first_day: int, last_day: int, rolled: set[int]):
    """(t0, t1, where, params) of each run of days not rolled up: the raw events to read for ``scope``."""
    raw_days = [day for day in range(first_day, last_day + 1) if day not in rolled]
    if not raw_days:
        return
    where, params = _scope_filter(scope, reader.editions)
    for start, end in _spans(raw_days):
        t0, t1 = es.day_start_ms(start), es.day_start_ms(end + 1)
        span_where = where
        if scope.page_id and not scope.edition_id:
            # a page's events all carry its edition (the ingest writes the page's own): with it the read takes
            # the (edition_id, t) index instead of every event of the days (heatmap's scope)
            edition_id = conn.execute(text("SELECT edition_id FROM events WHERE t >= :t0 AND t < :t1 AND "
                                           "page_id = :page_id LIMIT 1"),
                                      {"t0": t0, "t1": t1, "page_id": scope.page_id}).scalar()
            if edition_id is None:
                continue  # no raw event of the page in the span
            span_where = f"{where} AND e.edition_id = {int(edition_id)}"
        yield t0, t1, span_where, params


def _prefetch_raw(reader: EventsReader, scope: Scope, first_day: int, last_day: int, wants, memo: dict) -> None:
    """The raw part of several levels of ``scope`` (``wants`` = ((level, metrics), ...)) read in one scan per span
    into ``memo``, where :func:`_rows` finds it."""
    with reader.engine.connect() as conn:
        rolled = _rolled_days(conn, first_day, last_day)
        for t0, t1, span_where, params in _raw_spans(conn, reader, scope, first_day, last_day, rolled):
            by_level = _aggregate_levels(conn, reader.editions, wants, t0, t1, span_where, params)
            for level, metrics in wants:
                memo[(level, t0, t1, span_where, tuple(sorted(params.items())))] = (
                    set(metrics) if metrics else None, by_level[level])


def _level_conditions(d, scope: Scope, level: str) -> list:
    """event_daily rows of ``level`` within ``scope``."""
    depth = LEVELS.index(level)
    cols = (d.publication_id, d.edition_id, d.page_id, d.overlay_id)
    wanted = scope.key()
    conds = []
    for i, col in enumerate(cols):
        if i < depth:  # a column fixed by the level: equal to the scope's value when it names one, else non-zero
            conds.append(col == wanted[i] if wanted[i] else col != 0)
        else:
            conds.append(col == 0)
    return conds


def _in_scope(row: tuple, scope: Scope, level: str) -> bool:
    depth = LEVELS.index(level)
    return all(not scope.key()[i] or row[i] == scope.key()[i] for i in range(depth))


def _spans(days: list[int]):
    start = prev = days[0]
    for day in days[1:]:
        if day != prev + 1:
            yield start, prev
            start = day
        prev = day
    yield start, prev


# ------------------------------------------------------------------------------------------------ report
@dataclass
class Report:
    """The numbers of one scope over a range of days (see the module docstring for their definitions)."""

    scope: dict
    first: str
    last: str
    sessions: int = 0
    unique_readers: int = 0
    events: dict = field(default_factory=dict)  # event type name -> count
    camera: dict = field(default_factory=dict)  # started / denied / unavailable
    recognized: int = 0
    recognition_success_rate: float | None = None  # sessions that recognized / (those + sessions that gave up)
    recognized_by_stage: dict = field(default_factory=dict)  # stage -> count
    recognized_scoped: int = 0  # found in the QR's edition
    recognized_archive: int = 0  # found in the whole archive
    ttr_histogram: list = field(default_factory=list)  # [{"le_ms": bound or None, "n": count}]
    ttr_mean_ms: float | None = None
    ttr_median_ms: int | None = None  # upper bound of the bucket holding the median
    ttr_p90_ms: int | None = None
    given_up: int = 0
    dwell_ms: int = 0  # time on paper, summed
    dwell_per_session_ms: float | None = None
    overlays_shown: int = 0
    overlay_activations: int = 0
    media_quartiles: dict = field(default_factory=dict)  # "25" / "50" / "75" / "100" -> plays reaching it
    media_completion_rate: float | None = None  # reached 100 % / reached 25 %
    links_shown: int = 0
    links_opened: int = 0
    link_click_through: float | None = None  # link_opened / link overlays shown
    model_interactions: int = 0
    panoramas_entered: int = 0
    fallbacks: dict = field(default_factory=dict)  # photo_upload / no_camera_3d
    reactions: dict = field(default_factory=dict)  # useful / not_useful
    devices: list = field(default_factory=list)  # [{"device_class", "os", "browser", "sessions"}], by sessions
    device_classes: dict = field(default_factory=dict)  # phone / tablet / desktop / unknown -> sessions
    entry: dict = field(default_factory=dict)  # qr / archive / offline / unknown -> sessions
    hours: list = field(default_factory=list)  # 24 session counts, Asia/Ho_Chi_Minh hours
    funnel: list = field(default_factory=list)  # [{"step", "sessions"}]
    dropped: dict = field(default_factory=dict)  # reason -> events the ingest dropped (site scope only)
    refused: dict = field(default_factory=dict)  # reason -> whole batches the endpoint refused (site scope only)
    # premium overlays (issue 27): teasers shown, locks tapped, codes redeemed after a lock tap in the same session
    # (attributed to the overlay tapped last), their rates; "redeemed" also counts redemptions without a lock tap
    # (named by no page: in the site's report only)
    premium: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


_NAMES = {
    "stage": {v: k for k, v in es.RECOGNITION_STAGES.items()},
    "class": {0: "unknown", **{v: k for k, v in es.DEVICE_CLASSES.items()}},
    "os": {0: "other", **{v: k for k, v in es.OS_FAMILIES.items()}},
    "browser": {0: "other", **{v: k for k, v in es.BROWSER_FAMILIES.items()}},
    "entry": {0: "unknown", **{v: k for k, v in es.ENTRIES.items()}},
    "drop": {v: k for k, v in es.DROP_REASONS.items()},
    "refused": {v: k for k, v in es.REFUSED_REASONS.items()},
}


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def _quantile_bound(hist: list[int], q: float) -> int | None:
    total = sum(hist)
    if not total:
        return None
    acc = 0
    for i, n in enumerate(hist):
        acc += n
        if acc >= q * total:
            return TTR_BOUNDS_MS[i] if i < len(TTR_BOUNDS_MS) else None
    return None


def _count(acc: dict, name: str, k: int | None, metric: str = "events") -> int:
    """Events of type ``name`` (of category ``k``, or all categories) in folded ``acc``; metric "sum_n": their n."""
    m, code = METRICS[metric], T[name] * 1000
    if k is not None:
        return acc.get((m, code + k), 0)
    return sum(n for (mm, key), n in acc.items() if mm == m and code <= key < code + 1000)


def _fold(rows: list[tuple]) -> dict:
    """(metric, key) -> n summed over days and rows."""
    acc: dict = {}
    for r in rows:
        acc[(r[4], r[6])] = acc.get((r[4], r[6]), 0) + r[7]
    return acc


def report(reader: EventsReader, scope: Scope, first: dt.date, last: dt.date, _memo: dict | None = None) -> Report:
    """All the numbers of ``scope`` for the days ``first``..``last`` (inclusive, Asia/Ho_Chi_Minh)."""
    d0, d1 = _check_range(first, last)
    acc = _fold(_rows(reader, scope, scope.level, d0, d1, by_day=False, memo=_memo))
    M = METRICS

    def ev(name: str, k: int | None = None, metric: str = "events") -> int:
        return _count(acc, name, k, metric)

    rep = Report(scope=asdict(scope), first=first.isoformat(), last=last.isoformat())
    rep.sessions = acc.get((M["sessions"], 0), 0)
    rep.unique_readers = acc.get((M["visitors"], 0), 0)
    rep.events = {name: ev(name) for name in T if T[name] < es.SERVER_TYPES_FROM}
    rep.camera = {"started": ev("camera_started"), "denied": ev("camera_denied"),
                  "unavailable": ev("camera_unavailable")}
    rep.recognized = ev("recognized")
    funnel = {i: acc.get((M["funnel"], i), 0) for i in range(1, GAVE_UP_KEY + 1)}
    rep.recognition_success_rate = _ratio(funnel[3], funnel[3] + funnel[GAVE_UP_KEY])
    rep.recognized_by_stage = {name: ev("recognized", code * 2) + ev("recognized", code * 2 + 1)
                               for name, code in es.RECOGNITION_STAGES.items()}
    rep.recognized_scoped = sum(ev("recognized", c * 2 + 1) for c in es.RECOGNITION_STAGES.values())
    rep.recognized_archive = sum(ev("recognized", c * 2) for c in es.RECOGNITION_STAGES.values())
    hist = [acc.get((M["ttr"], i), 0) for i in range(len(TTR_BOUNDS_MS) + 1)]
    rep.ttr_histogram = [{"le_ms": TTR_BOUNDS_MS[i] if i < len(TTR_BOUNDS_MS) else None, "n": n}
                         for i, n in enumerate(hist)]
    rep.ttr_mean_ms = round(ev("recognized", metric="sum_n") / rep.recognized, 1) if rep.recognized else None
    rep.ttr_median_ms = _quantile_bound(hist, 0.5)
    rep.ttr_p90_ms = _quantile_bound(hist, 0.9)
    rep.given_up = ev("recognition_given_up")
    rep.dwell_ms = ev("dwell", metric="sum_n")
    rep.dwell_per_session_ms = round(rep.dwell_ms / rep.sessions, 1) if rep.sessions else None
    rep.overlays_shown = ev("overlay_shown")
    rep.overlay_activations = ev("overlay_activated")
    rep.media_quartiles = {str(q): ev("media_progress", q) for q in es.QUARTILES}
    rep.media_completion_rate = _ratio(rep.media_quartiles["100"], rep.media_quartiles["25"])
    rep.links_shown = ev("overlay_shown", es.OVERLAY_KIND_CODES["link"])
    rep.links_opened = ev("link_opened")
    rep.link_click_through = _ratio(rep.links_opened, rep.links_shown)
    rep.model_interactions = ev("model_interaction")
    rep.panoramas_entered = ev("panorama_entered")
    rep.fallbacks = {name: ev("fallback_used", code) for name, code in es.FALLBACK_MODES.items()}
    rep.reactions = {name: ev("reaction", code) for name, code in es.REACTIONS.items()}
    devices = []
    classes: dict = {}
    for (m, key), n in acc.items():
        if m == M["device"]:
            cls, os_, br, _entry = es.unpack_ctx(key)
            devices.append({"device_class": _NAMES["class"][cls], "os": _NAMES["os"].get(os_, "other"),
                            "browser": _NAMES["browser"].get(br, "other"), "sessions": n})
            classes[_NAMES["class"][cls]] = classes.get(_NAMES["class"][cls], 0) + n
    rep.devices = sorted(devices, key=lambda x: (-x["sessions"], x["device_class"], x["os"], x["browser"]))
    rep.device_classes = {name: classes.get(name, 0) for name in ("phone", "tablet", "desktop", "unknown")}
    rep.entry = {name: acc.get((M["entry"], code), 0) for code, name in _NAMES["entry"].items()}
    rep.hours = [acc.get((M["hour"], h), 0) for h in range(24)]
    rep.funnel = [{"step": name, "sessions": funnel[i]} for i, (name, _t) in enumerate(FUNNEL_STEPS, start=1)]
    rep.dropped = ({name: ev("dropped", code, "sum_n") for code, name in _NAMES["drop"].items()}
                   if scope.level == "site" else {})
    rep.refused = ({name: ev("refused", code, "sum_n") for code, name in _NAMES["refused"].items()}
                   if scope.level == "site" else {})
    impressions, taps = ev("premium_impression"), ev("premium_lock_tap")
    after_tap = ev("premium_redeemed", 1)
    rep.premium = {"impressions": impressions, "lock_taps": taps, "redeemed_after_lock_tap": after_tap,
                   "redeemed": ev("premium_redeemed"), "lock_tap_rate": _ratio(taps, impressions),
                   "redemption_rate": _ratio(after_tap, taps)}
    return rep


@dataclass(frozen=True)
class BreakdownRow:
    """One child of a scope (a publication, edition, page or overlay) over the range."""

    level: str
    id: int
    sessions: int
    unique_readers: int
    recognized: int
    dwell_ms: int
    overlays_shown: int
    overlay_activations: int
    links_opened: int
    media_25: int
    media_100: int
    useful: int
    not_useful: int
    aim_points: int
    premium_impressions: int = 0
    premium_lock_taps: int = 0
    premium_redeemed: int = 0  # after a lock tap of this child's premium overlay, in the same session


def _breakdown_row(level: str, ident: int, acc: dict) -> BreakdownRow:
    """One child's row from its folded (metric, key) -> n."""
    M = METRICS

    def ev(name, k=None, metric="events"):
        return _count(acc, name, k, metric)

    return BreakdownRow(level, ident, acc.get((M["sessions"], 0), 0), acc.get((M["visitors"], 0), 0),
                        ev("recognized"), ev("dwell", metric="sum_n"), ev("overlay_shown"), ev("overlay_activated"),
                        ev("link_opened"), ev("media_progress", 25), ev("media_progress", 100), ev("reaction", 1),
                        ev("reaction", 0), ev("aim"), ev("premium_impression"), ev("premium_lock_tap"),
                        ev("premium_redeemed", 1))


BREAKDOWN_METRICS = (METRICS["events"], METRICS["sum_n"], METRICS["sessions"], METRICS["visitors"])


def breakdown(reader: EventsReader, scope: Scope, first: dt.date, last: dt.date,
              _memo: dict | None = None) -> list[BreakdownRow]:
    """The children of ``scope`` (publications of the site, editions of a publication, pages of an edition,
    overlays of a page), most sessions first: the dashboard's top pages and per-overlay table."""
    if scope.level == "overlay":
        raise AnalyticsError("scope", "an overlay has no parts to break down")
    d0, d1 = _check_range(first, last)
    level = CHILD_LEVEL[scope.level]
    depth = LEVELS.index(level) - 1
    per: dict[int, dict] = {}
    # a row needs only counts, sums, sessions and readers: not the aim cells, funnel, devices and hours
    for r in _rows(reader, scope, level, d0, d1, BREAKDOWN_METRICS, by_day=False, memo=_memo):
        child = r[depth]
        acc = per.setdefault(child, {})
        acc[(r[4], r[6])] = acc.get((r[4], r[6]), 0) + r[7]
    out = []
    for child, acc in per.items():
        out.append(_breakdown_row(level, child, acc))
    return sorted(out, key=lambda r: (-r.sessions, r.id))


@dataclass(frozen=True)
class DayRow:
    date: str
    sessions: int
    unique_readers: int
    recognized: int


def daily_series(reader: EventsReader, scope: Scope, first: dt.date, last: dt.date,
                 _memo: dict | None = None) -> list[DayRow]:
    """Sessions, unique readers and recognized pages per day (every day of the range, zeros included)."""
    d0, d1 = _check_range(first, last)
    M = METRICS
    per: dict[int, dict] = {d: {} for d in range(d0, d1 + 1)}
    for r in _rows(reader, scope, scope.level, d0, d1, (M["sessions"], M["visitors"], M["events"]), memo=_memo):
        acc = per[r[5]]
        if r[4] == M["events"]:
            if T["recognized"] * 1000 <= r[6] < T["recognized"] * 1000 + 1000:
                acc["recognized"] = acc.get("recognized", 0) + r[7]
        else:
            acc[r[4]] = acc.get(r[4], 0) + r[7]
    return [DayRow(es.date_of_day(d).isoformat(), a.get(M["sessions"], 0), a.get(M["visitors"], 0),
                   a.get("recognized", 0)) for d, a in per.items()]


@dataclass(frozen=True)
class Dashboard:
    """A scope's dashboard: its report, its children (none for an overlay) and its days."""

    report: Report
    children: list[BreakdownRow]
    days: list[DayRow]


def dashboard(reader: EventsReader, scope: Scope, first: dt.date, last: dt.date) -> Dashboard:
    """:func:`report`, :func:`breakdown` (not for an overlay) and :func:`daily_series` of one scope, the raw part
    (the days not rolled up yet) read once for all three (the site's once for the report and the days, once for
    its publications): the same numbers as the three calls, one scan of today's events instead of three."""
    memo: dict = {}
    d0, d1 = _check_range(first, last)
    if scope.level not in ("site", "overlay"):
        _prefetch_raw(reader, scope, d0, d1, ((scope.level, None), (CHILD_LEVEL[scope.level], BREAKDOWN_METRICS)),
                      memo)
    rep = report(reader, scope, first, last, _memo=memo)
    children = breakdown(reader, scope, first, last, _memo=memo) if scope.level != "overlay" else []
    return Dashboard(rep, children, daily_series(reader, scope, first, last, _memo=memo))


@dataclass(frozen=True)
class HeatMap:
    """Aim points of a page counted in a grid: ``cells[row][col]``, row 0 at the page's top, col 0 at its left;
    cell (r, c) covers x in [c * cell_mm, (c + 1) * cell_mm) mm and y in [r * cell_mm, (r + 1) * cell_mm) mm."""

    page_id: int
    cell_mm: int
    width_mm: float
    height_mm: float
    cells: list
    total: int
    max: int

    def to_dict(self) -> dict:
        return asdict(self)


def heatmap(reader: EventsReader, page_id: int, first: dt.date, last: dt.date, width_mm: float, height_mm: float,
            cell_mm: int = 10) -> HeatMap:
    """Where readers aimed on a page: the frame centres of its aim events in a grid of ``cell_mm`` (a multiple of
    5 mm, 5–100) over the page (``width_mm`` × ``height_mm``, 1–2000 mm)."""
    if not (5 <= cell_mm <= 100 and cell_mm % HEAT_CELL_MM == 0):
        raise AnalyticsError("cell_mm", "must be a multiple of 5 between 5 and 100")
    if not (1 <= width_mm <= 2000 and 1 <= height_mm <= 2000):
        raise AnalyticsError("width_mm", "page sizes are 1-2000 mm")
    d0, d1 = _check_range(first, last)
    cols = int(-(-width_mm // cell_mm))
    rows_n = int(-(-height_mm // cell_mm))
    grid = [[0] * cols for _ in range(rows_n)]
    factor = cell_mm // HEAT_CELL_MM
    scope = Scope(page_id=page_id)
    total = 0
    for r in _rows(reader, scope, "page", d0, d1, (METRICS["heat"],), by_day=False):
        if r[2] != page_id:
            continue
        cx, cy = (r[6] % HEAT_ROW) // factor, (r[6] // HEAT_ROW) // factor
        if cy < rows_n and cx < cols:
            grid[cy][cx] += r[7]
            total += r[7]
    return HeatMap(page_id, cell_mm, width_mm, height_mm, grid, total, max((max(row) for row in grid), default=0))


# ------------------------------------------------------------------------------------------------ CSV
CSV_HEADERS = {
    "vi": ("Mục", "Mã", "Phiên", "Bạn đọc", "Nhận diện", "Thời gian trên trang (giây)", "Lớp phủ hiện",
           "Lượt chạm lớp phủ", "Mở liên kết", "Xem 25%", "Xem hết", "Hữu ích", "Không hữu ích", "Điểm ngắm",
           "Lượt xem thử (trả phí)", "Chạm ổ khóa", "Đổi mã sau khi chạm khóa"),
    "en": ("Level", "Id", "Sessions", "Readers", "Recognized", "Time on paper (s)", "Overlays shown",
           "Overlay taps", "Links opened", "Played 25%", "Played 100%", "Useful", "Not useful", "Aim points",
           "Premium teasers shown", "Lock taps", "Redeemed after a lock tap"),
}
LEVEL_NAMES = {"vi": {"site": "Toàn trang", "publication": "Ấn phẩm", "edition": "Số báo", "page": "Trang",
                      "overlay": "Lớp phủ"},
               "en": {"site": "Site", "publication": "Publication", "edition": "Edition", "page": "Page",
                      "overlay": "Overlay"}}


def report_csv(rep: Report, rows: list[BreakdownRow], series: list[DayRow], lang: str = "vi",
               names: Mapping[tuple[str, int], str] | None = None) -> bytes:
    """The report as CSV for Excel: UTF-8 with a BOM; the scope's totals, its children (``names`` gives each a
    title, e.g. a page's "Trang 3 — Thời sự"), then the days."""
    lang = lang if lang in CSV_HEADERS else "vi"
    names = names or {}
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    head = CSV_HEADERS[lang]
    w.writerow((*head, "Tên" if lang == "vi" else "Name"))
    scope_level = Scope(**rep.scope).level
    scope_id = max(rep.scope.values()) if scope_level != "site" else 0
    w.writerow((LEVEL_NAMES[lang][scope_level], scope_id, rep.sessions, rep.unique_readers, rep.recognized,
                round(rep.dwell_ms / 1000, 1), rep.overlays_shown, rep.overlay_activations, rep.links_opened,
                rep.media_quartiles.get("25", 0), rep.media_quartiles.get("100", 0), rep.reactions.get("useful", 0),
                rep.reactions.get("not_useful", 0), rep.events.get("aim", 0), rep.premium.get("impressions", 0),
                rep.premium.get("lock_taps", 0), rep.premium.get("redeemed_after_lock_tap", 0),
                names.get((scope_level, scope_id), "")))
    for r in rows:
        w.writerow((LEVEL_NAMES[lang][r.level], r.id, r.sessions, r.unique_readers, r.recognized,
                    round(r.dwell_ms / 1000, 1), r.overlays_shown, r.overlay_activations, r.links_opened, r.media_25,
                    r.media_100, r.useful, r.not_useful, r.aim_points, r.premium_impressions, r.premium_lock_taps,
                    r.premium_redeemed, names.get((r.level, r.id), "")))
    w.writerow(())
    w.writerow(("Ngày", "Phiên", "Bạn đọc", "Nhận diện") if lang == "vi" else ("Date", "Sessions", "Readers",
                                                                              "Recognized"))
    for d in series:
        w.writerow((d.date, d.sessions, d.unique_readers, d.recognized))
    return "\ufeff".encode("utf-8") + buf.getvalue().encode("utf-8")


# ------------------------------------------------------------------------------------------------ schedule
ROLLUP_EVERY_S = 3600  # hourly, like the publish sweeper: a day is rolled up within the hour after it ends


def rollup_configured(settings, db_session, today: dt.date | None = None) -> RollupResult:
    """The rollup of the configured events store, with the newsroom's editions (CLI and the server's schedule)."""
    from viewer_api.eventstore import date_of_day, vn_day
    import time

    reader = open_reader(settings, db_session)
    today = today or date_of_day(vn_day(int(time.time() * 1000)))
    return rollup(reader, today, settings.events_retention_days)


def start_rollup_schedule(settings, sessionmaker, log, every_s: float = ROLLUP_EVERY_S):
    """A daemon thread running the rollup now and then every ``every_s`` seconds (the serving process calls this
    once). Returns the Event that stops it."""
    import threading

    stop = threading.Event()

    def loop():
        while True:
            db_session = sessionmaker()
            try:
                result = rollup_configured(settings, db_session)
                if result.days_rolled or result.raw_deleted:
                    log.info("analytics rollup: %s", result)
            except Exception:  # noqa: BLE001 - a failed run must not end the schedule; the next one retries
                log.exception("analytics rollup failed")
            finally:
                db_session.close()
            if stop.wait(every_s):
                return

    threading.Thread(target=loop, name="baonhung-analytics-rollup", daemon=True).start()
    return stop


# ------------------------------------------------------------------------------------------------ top pages
def top_pages(reader: EventsReader, scope: Scope, first: dt.date, last: dt.date, limit: int = 10) -> list[BreakdownRow]:
    """The pages inside ``scope`` (the site, a publication or an edition) with the most sessions, as
    :class:`BreakdownRow` of level "page", at most ``limit`` (1–100). One read of the page-level rows for the whole
    scope, however many editions it holds (the dashboard's "top pages" of a publication or of the site)."""
    if scope.level in ("page", "overlay"):
        raise AnalyticsError("scope", "top pages are asked of the site, a publication or an edition")
    if not 1 <= limit <= 100:
        raise AnalyticsError("limit", "must be between 1 and 100")
    d0, d1 = _check_range(first, last)
    per: dict[int, dict] = {}
    M = METRICS
    # only what a row holds: the aim cells, funnel, devices and hours are most of a page's rows and not needed here
    for r in _rows(reader, scope, "page", d0, d1, (M["events"], M["sum_n"], M["sessions"], M["visitors"])):
        acc = per.setdefault(r[2], {})
        acc[(r[4], r[6])] = acc.get((r[4], r[6]), 0) + r[7]
    out = []
    for page_id, acc in per.items():
        out.append(_breakdown_row("page", page_id, acc))
    return sorted(out, key=lambda r: (-r.sessions, r.id))[:limit]
