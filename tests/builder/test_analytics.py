"""The analytics query layer and its rollups (issue 26): numbers equal a hand-computed fixture, and equal again
after their day is rolled up and its raw events deleted."""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from builder import analytics as an
from viewer_api import eventstore as es

DAY = dt.date(2026, 12, 1)
EDITIONS = {10: 1, 11: 1, 20: 2}  # edition -> publication
T = es.EVENT_TYPES
PHONE = es.pack_ctx(1, es.OS_FAMILIES["android"], es.BROWSER_FAMILIES["chrome"], es.ENTRIES["qr"])
TABLET = es.pack_ctx(2, es.OS_FAMILIES["ipados"], es.BROWSER_FAMILIES["safari"], es.ENTRIES["archive"])


def at(hour: int, minute: int = 0, day: dt.date = DAY) -> int:
    """Epoch ms of a Vietnamese wall-clock time."""
    return int(dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=ZoneInfo("Asia/Ho_Chi_Minh"))
               .timestamp() * 1000)


def fixture_rows(day: dt.date = DAY) -> list[es.EventRow]:
    R = es.EventRow
    a = dict(visitor=111, session=1, ctx=PHONE)  # session A, reader 111, QR, phone
    b = dict(visitor=222, session=2, ctx=TABLET)  # session B, reader 222, archive, tablet
    c = dict(visitor=111, session=3, ctx=PHONE)  # session C: reader 111 again, edition 11 of the same publication
    d = dict(visitor=333, session=4, ctx=PHONE)  # session D: publication 2
    return [
        R(at(9, 0, day), T["opened"], 10, None, None, **a),
        R(at(9, 1, day), T["camera_started"], 10, None, None, **a),
        R(at(9, 2, day), T["recognized"], 10, 100, None, **a, k=es.RECOGNITION_STAGES["server"] * 2 + 1, n=800),
        R(at(9, 3, day), T["dwell"], 10, 100, None, **a, n=5000),
        R(at(9, 3, day), T["overlay_shown"], 10, 100, 1000, **a, k=es.OVERLAY_KIND_CODES["link"]),
        R(at(9, 4, day), T["link_opened"], 10, 100, 1000, **a),
        R(at(9, 4, day), T["aim"], 10, 100, None, **a, x_mm=12, y_mm=7),
        R(at(9, 5, day), T["aim"], 10, 100, None, **a, x_mm=13, y_mm=8),
        R(at(9, 10, day), T["camera_started"], None, None, None, **b),
        R(at(9, 11, day), T["recognized"], 10, 101, None, **b, k=es.RECOGNITION_STAGES["server"] * 2, n=2500),
        R(at(9, 12, day), T["media_progress"], 10, 101, 1001, **b, k=25),
        R(at(9, 13, day), T["media_progress"], 10, 101, 1001, **b, k=100),
        R(at(9, 14, day), T["reaction"], 10, 101, 1001, **b, k=es.REACTIONS["useful"]),
        R(at(14, 0, day), T["recognized"], 11, 110, None, **c, k=es.RECOGNITION_STAGES["redetect"] * 2 + 1, n=400),
        R(at(14, 1, day), T["recognition_given_up"], 11, None, None, **c, n=9000),
        R(at(20, 0, day), T["recognized"], 20, 200, None, **d, k=2, n=1200),
        R(at(20, 0, day), T["dropped"], None, None, None, 0, 4, PHONE, es.DROP_REASONS["unknown_page"], 3),
    ]


@pytest.fixture
def reader(tmp_path):
    engine = es.make_events_engine(f"sqlite:///{tmp_path / 'events.sqlite3'}")
    es.create_schema(engine)
    es.EventWriter(engine).append(fixture_rows())
    yield an.EventsReader(engine, EDITIONS)
    engine.dispose()


def test_vietnamese_days_and_hours_agree_with_zoneinfo():
    for ms in (at(0, 0), at(23, 59), at(6, 59), at(7, 0)):
        local = dt.datetime.fromtimestamp(ms / 1000, ZoneInfo("Asia/Ho_Chi_Minh"))
        assert es.date_of_day(es.vn_day(ms)) == local.date()
    assert es.day_start_ms(es.day_of_date(DAY)) == at(0, 0)


def test_ctx_packs_and_unpacks_every_field():
    for fields in ((0, 0, 0, 0), (3, 15, 15, 3), (1, 2, 9, 1), (2, 7, 12, 2)):
        assert es.unpack_ctx(es.pack_ctx(*fields)) == fields
    with pytest.raises(ValueError):
        es.pack_ctx(4, 0, 0, 0)


def test_edition_report_equals_the_hand_computed_fixture(reader):
    rep = an.report(reader, an.Scope(edition_id=10), DAY, DAY)
    assert (rep.sessions, rep.unique_readers, rep.recognized) == (2, 2, 2)
    assert rep.recognized_scoped == 1 and rep.recognized_archive == 1
    assert rep.recognized_by_stage == {"server": 2, "redetect": 0, "offline": 0, "photo": 0}
    assert rep.ttr_mean_ms == 1650.0 and rep.ttr_median_ms == 1000 and rep.ttr_p90_ms == 3000
    assert [b["n"] for b in rep.ttr_histogram] == [0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]
    assert rep.dwell_ms == 5000 and rep.dwell_per_session_ms == 2500
    assert (rep.links_shown, rep.links_opened, rep.link_click_through) == (1, 1, 1.0)
    assert rep.media_quartiles == {"25": 1, "50": 0, "75": 0, "100": 1} and rep.media_completion_rate == 1.0
    assert rep.reactions == {"not_useful": 0, "useful": 1}
    assert rep.device_classes == {"phone": 1, "tablet": 1, "desktop": 0, "unknown": 0}
    assert {(d["os"], d["browser"]) for d in rep.devices} == {("android", "chrome"), ("ipados", "safari")}
    assert rep.entry == {"unknown": 0, "qr": 1, "archive": 1, "offline": 0}
    assert rep.hours[9] == 2 and sum(rep.hours) == 2
    assert rep.funnel == [{"step": "opened", "sessions": 1}, {"step": "camera", "sessions": 1},
                          {"step": "recognized", "sessions": 2}, {"step": "engaged", "sessions": 2}]
    assert rep.camera == {"started": 1, "denied": 0, "unavailable": 0}  # B's camera started before any edition
    assert rep.recognition_success_rate == 1.0
    assert rep.dropped == {}


def test_publication_counts_one_reader_once_across_its_editions_and_the_site_counts_everything(reader):
    pub = an.report(reader, an.Scope(publication_id=1), DAY, DAY)
    assert (pub.sessions, pub.unique_readers, pub.recognized, pub.given_up) == (3, 2, 3, 1)
    assert pub.recognition_success_rate == 0.75  # 3 sessions recognized, 1 gave up
    site = an.report(reader, an.Scope(), DAY, DAY)
    assert (site.sessions, site.unique_readers, site.recognized) == (4, 3, 4)
    assert site.camera["started"] == 2 and site.dropped["unknown_page"] == 3
    pub2 = an.report(reader, an.Scope(publication_id=2), DAY, DAY)
    assert (pub2.sessions, pub2.recognized) == (1, 1)


def test_breakdown_lists_pages_of_an_edition_and_overlays_of_a_page(reader):
    pages = an.breakdown(reader, an.Scope(edition_id=10), DAY, DAY)
    assert [(r.id, r.sessions, r.recognized, r.dwell_ms, r.links_opened, r.aim_points) for r in pages] == [
        (100, 1, 1, 5000, 1, 2), (101, 1, 1, 0, 0, 0)]
    overlays = an.breakdown(reader, an.Scope(edition_id=10, page_id=101), DAY, DAY)
    assert [(r.id, r.media_25, r.media_100, r.useful) for r in overlays] == [(1001, 1, 1, 1)]
    editions = an.breakdown(reader, an.Scope(publication_id=1), DAY, DAY)
    assert [(r.id, r.sessions) for r in editions] == [(10, 2), (11, 1)]


def test_heatmap_counts_aim_points_in_page_millimetre_cells(reader):
    h10 = an.heatmap(reader, 100, DAY, DAY, width_mm=297, height_mm=420, cell_mm=10)
    assert (len(h10.cells), len(h10.cells[0])) == (42, 30)
    assert h10.cells[0][1] == 2 and h10.total == 2 and h10.max == 2
    h5 = an.heatmap(reader, 100, DAY, DAY, width_mm=297, height_mm=420, cell_mm=5)
    assert h5.cells[1][2] == 2 and h5.total == 2
    with pytest.raises(an.AnalyticsError):
        an.heatmap(reader, 100, DAY, DAY, width_mm=297, height_mm=420, cell_mm=7)


def _everything(reader):
    out = []
    for scope in (an.Scope(), an.Scope(publication_id=1), an.Scope(edition_id=10), an.Scope(edition_id=10, page_id=100),
                  an.Scope(edition_id=10, page_id=101, overlay_id=1001)):
        out.append(an.report(reader, scope, DAY - dt.timedelta(days=1), DAY + dt.timedelta(days=1)).to_dict())
        if scope.level != "overlay":
            out.append(an.breakdown(reader, scope, DAY, DAY))
        out.append(an.daily_series(reader, scope, DAY - dt.timedelta(days=1), DAY + dt.timedelta(days=1)))
    out.append(an.heatmap(reader, 100, DAY, DAY, 297, 420, 5).to_dict())
    return out


def test_rollups_equal_the_raw_counts_they_replace(reader):
    before = _everything(reader)
    today = DAY + dt.timedelta(days=10)
    result = an.rollup(reader, today, retention_days=90)
    assert result.days_rolled == 10 and result.raw_deleted == 0
    with reader.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(es.event_daily)).scalar() == result.rows_written > 0
    assert _everything(reader) == before
    # past the retention the raw events go; the numbers stay
    result = an.rollup(reader, today, retention_days=8)
    assert result.raw_deleted == len(fixture_rows())
    assert result.days_rolled == an.FINAL_AFTER_DAYS - 1  # the final days (the first 3) are not computed again
    with reader.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(es.events)).scalar() == 0
    assert _everything(reader) == before


def test_a_day_not_final_is_rolled_again_so_late_events_count(reader):
    today = DAY + dt.timedelta(days=2)
    an.rollup(reader, today)
    late = es.EventRow(at(10, 0), T["recognized"], 10, 100, None, 999, 9, PHONE, 2, 700)
    es.EventWriter(reader.engine).append([late])
    assert an.report(reader, an.Scope(edition_id=10), DAY, DAY).recognized == 2  # rolled up before it came
    an.rollup(reader, today)
    assert an.report(reader, an.Scope(edition_id=10), DAY, DAY).recognized == 3


def test_a_range_is_bounded_and_ordered(reader):
    with pytest.raises(an.AnalyticsError):
        an.report(reader, an.Scope(), DAY, DAY - dt.timedelta(days=1))
    with pytest.raises(an.AnalyticsError):
        an.report(reader, an.Scope(), DAY - dt.timedelta(days=4000), DAY)


def test_csv_has_a_bom_and_round_trips_vietnamese_text(reader):
    import csv
    import io

    rep = an.report(reader, an.Scope(edition_id=10), DAY, DAY)
    rows = an.breakdown(reader, an.Scope(edition_id=10), DAY, DAY)
    series = an.daily_series(reader, an.Scope(edition_id=10), DAY, DAY)
    data = an.report_csv(rep, rows, series, "vi", names={("page", 100): "Trang 1 — Thời sự Yên Bái"})
    assert data.startswith(b"\xef\xbb\xbf")
    table = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert table[0][0] == "Mục" and table[1][:3] == ["Số báo", "10", "2"]
    assert table[2][0] == "Trang" and table[2][-1] == "Trang 1 — Thời sự Yên Bái"


def test_the_cli_rolls_up_the_configured_store_and_prints_the_ingest_role_sql(tmp_path, monkeypatch, capsys):
    from builder.cli import main

    data = tmp_path / "var"
    monkeypatch.setenv("BAONHUNG_DATA_DIR", str(data))
    engine = es.make_events_engine(es.default_events_url(data))
    es.create_schema(engine)
    es.EventWriter(engine).append(fixture_rows())
    assert main(["analytics", "rollup", "--today", (DAY + dt.timedelta(days=2)).isoformat()]) == 0
    assert "rolled up 2 day(s)" in capsys.readouterr().out
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(es.rolled_days)).scalar() == 2
    assert main(["analytics", "rollup", "--today", "yesterday"]) == 2
    assert main(["analytics", "ingest-role", "--role", "bn_ingest"]) == 0
    sql = capsys.readouterr().out
    assert "GRANT INSERT ON events TO bn_ingest;" in sql and "SELECT" not in sql.split("GRANT", 1)[1]
    assert main(["analytics", "ingest-role", "--role", "Robert'); DROP TABLE events;--"]) == 2
    engine.dispose()


@pytest.mark.parametrize("level", an.LEVELS)
def test_one_scan_and_one_query_per_aggregate_give_the_same_rows(reader, level):
    """The query layer reads raw events once for every aggregate (a MATERIALIZED CTE); the rollup runs one query per
    aggregate. Both, every metric or a few, give the same rows."""
    t0, t1 = es.day_start_ms(es.day_of_date(DAY)), es.day_start_ms(es.day_of_date(DAY) + 1)
    M = an.METRICS
    with reader.engine.connect() as conn:
        for metrics in (None, (M["events"], M["sum_n"], M["sessions"], M["visitors"]), (M["heat"],), (M["funnel"],)):
            for where, params in (("1 = 1", {}), ("e.edition_id = :edition_id", {"edition_id": 10})):
                args = (conn, reader.editions, level, t0, t1, where, params, metrics)
                separate, single = an._aggregate(*args), an._aggregate(*args, single_scan=True)
                assert sorted(single) == sorted(separate), (level, metrics, where)
                if metrics:
                    assert {r[4] for r in separate} <= set(metrics)
        assert an._aggregate(conn, reader.editions, level, t0, t1)  # the fixture has rows at every level


def _raw_reads(engine):
    """Counts the statements that read raw events for the query layer (its single-scan aggregate)."""
    from sqlalchemy import event

    seen = []

    def listener(conn, cursor, statement, parameters, context, executemany):
        if "AS MATERIALIZED" in statement:
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", listener)
    return seen, lambda: event.remove(engine, "before_cursor_execute", listener)


@pytest.mark.parametrize("scope", [an.Scope(1, 10), an.Scope(1), an.Scope(), an.Scope(1, 10, 100),
                                   an.Scope(1, 10, 101, 1001)])
def test_the_dashboard_equals_its_three_calls_and_reads_the_raw_part_once_for_report_and_days(reader, scope):
    separate = (an.report(reader, scope, DAY, DAY).to_dict(),
                an.breakdown(reader, scope, DAY, DAY) if scope.level != "overlay" else [],
                an.daily_series(reader, scope, DAY, DAY))
    seen, stop = _raw_reads(reader.engine)
    try:
        dash = an.dashboard(reader, scope, DAY - dt.timedelta(days=1), DAY)  # a day before it: nothing, zeros
    finally:
        stop()
    assert (dash.report.to_dict()["sessions"], dash.children, dash.days[1:]) == (
        separate[0]["sessions"], separate[1], separate[2])
    same_range = an.dashboard(reader, scope, DAY, DAY)
    assert (same_range.report.to_dict(), same_range.children, same_range.days) == separate
    assert len(seen) == (2 if scope.level == "site" else 1)  # one scan for report, children and days (the site: two)


def test_a_breakdown_without_the_funnel_counts_no_funnel_step(reader):
    """Children's rows and the days' series need sessions and readers, not the funnel's five COUNT(DISTINCT)s."""
    seen, stop = _raw_reads(reader.engine)
    try:
        rows = an.breakdown(reader, an.Scope(1, 10), DAY, DAY)
    finally:
        stop()
    assert {r.id: r.sessions for r in rows} == {100: 1, 101: 1}
    assert len(seen) == 1 and "COUNT(DISTINCT e.session)" in seen[0] and "COUNT(DISTINCT CASE" not in seen[0]
