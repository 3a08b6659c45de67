"""POST /api/v1/events (issue 26): what the viewer reports is stored compactly, without an IP address or a
User-Agent; malformed, oversized and unknown-id batches are refused and store nothing; bots and DNT/GPC readers are
ignored; the daily salt is destroyed; the public side is rate-limited."""
from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import replace

import pytest
from sqlalchemy import create_engine, inspect, select, text

from builder.http_errors import status_for
from tests.conftest import auth, make_app, png_bytes, test_database, user_with_token
from tests.web.test_api import make_edition, make_page, make_publication
from viewer_api import eventstore as es

PHONE_UA = ("Mozilla/5.0 (Linux; Android 14; SM-A546E) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/131.0.0.0 Mobile Safari/537.36")
ADDRESS = "203.0.113.77"
PLACEMENT = {"x_mm": "20", "y_mm": "30", "width_mm": "60", "height_mm": "40"}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """One app with a published edition: a page with a link overlay (published once for the module)."""
    from builder.config import Settings

    data = tmp_path_factory.mktemp("events") / "d"
    settings = replace(Settings.from_env({"BAONHUNG_DATA_DIR": str(data)}), events_rate_per_minute=10_000,
                       events_session_rate_per_minute=10_000)
    app = make_app(data, SETTINGS=settings)
    client = app.test_client()
    token = user_with_token(app, "ed@example.vn", "editor")
    make_publication(client, token)
    edition = make_edition(client, token)
    page = make_page(client, token, edition["id"], png_bytes(620, 877, seed=21))
    r = client.post(f"/api/v1/pages/{page['id']}/overlays", headers=auth(token), content_type="multipart/form-data",
                    data={"kind": "link", "url": "https://example.org", **PLACEMENT})
    assert r.status_code == 201, r.get_json()
    overlay = r.get_json()
    client.post(f"/api/v1/editions/{edition['id']}/submit", headers=auth(token))
    assert client.post(f"/api/v1/editions/{edition['id']}/publish", headers=auth(token)).status_code == 202
    yield {"app": app, "client": client, "edition": edition["id"], "page": page["id"], "overlay": overlay["id"],
           "token": token, "data": data}


@pytest.fixture
def s(site):
    with _engine(site).begin() as conn:
        conn.execute(es.events.delete())
    return site


def _engine(site):
    from viewer_api.events_api import EventsState

    app = site["app"]
    with app.app_context():
        ev = app.extensions.get("baonhung_events") or EventsState(app.extensions["baonhung"])
        app.extensions["baonhung_events"] = ev
        return ev.engine


def now_ms() -> int:
    return int(time.time() * 1000)


def batch(site, *events, session="sess-abcdef12", entry="qr") -> dict:
    return {"v": 1, "session": session, "entry": entry, "events": list(events)}


def a_session(site) -> list[dict]:
    p, o, e, t = site["page"], site["overlay"], site["edition"], now_ms() - 60_000
    return [{"type": "opened", "t": t, "edition": e}, {"type": "camera_started", "t": t + 100, "edition": e},
            {"type": "recognized", "t": t + 900, "page": p, "ms": 800, "stage": "server", "scoped": True},
            {"type": "overlay_shown", "t": t + 1000, "page": p, "overlay": o},
            {"type": "aim", "t": t + 1500, "page": p, "x_mm": 40.6, "y_mm": 55.2},
            {"type": "link_opened", "t": t + 4000, "page": p, "overlay": o},
            {"type": "reaction", "t": t + 4500, "page": p, "overlay": o, "value": "useful"},
            {"type": "dwell", "t": t + 15000, "page": p, "ms": 14000}]


def post(site, body, ua=PHONE_UA, address=ADDRESS, headers=None, raw: bytes | None = None, content_type="text/plain"):
    return site["client"].post("/api/v1/events", data=raw if raw is not None else json.dumps(body),
                                content_type=content_type, headers={"User-Agent": ua, **(headers or {})},
                                environ_base={"REMOTE_ADDR": address})


def stored(site) -> list:
    """The rows stored, but the server's once-a-minute count of refused batches (tests/web/test_events_refused.py)."""
    with _engine(site).connect() as conn:
        return conn.execute(select(es.events).where(es.events.c.type != es.EVENT_TYPES["refused"])).all()


def test_a_viewer_session_is_stored_as_compact_rows_and_answered_204(s):
    r = post(s, batch(s, *a_session(s)), content_type="application/json")
    assert r.status_code == 204 and r.headers["X-Events-Stored"] == "8" and r.headers["X-Events-Dropped"] == "0"
    rows = stored(s)
    assert len(rows) == 8
    by_type = {es.TYPE_NAMES[row.type]: row for row in rows}
    assert by_type["recognized"].n == 800 and by_type["recognized"].k == es.RECOGNITION_STAGES["server"] * 2 + 1
    assert by_type["overlay_shown"].k == es.OVERLAY_KIND_CODES["link"]  # the kind comes from the published manifest
    assert (by_type["aim"].x_mm, by_type["aim"].y_mm) == (40, 55)
    assert by_type["opened"].edition_id == s["edition"] and by_type["dwell"].page_id == s["page"]
    cls, os_, browser, entry = es.unpack_ctx(rows[0].ctx)
    assert (cls, os_, browser, entry) == (es.DEVICE_CLASSES["phone"], es.OS_FAMILIES["android"],
                                          es.BROWSER_FAMILIES["chrome"], es.ENTRIES["qr"])
    assert len({row.session for row in rows}) == 1 and len({row.visitor for row in rows}) == 1


def test_no_table_of_either_database_holds_the_address_or_the_user_agent(s):
    assert post(s, batch(s, *a_session(s))).status_code == 204
    needles = [ADDRESS, PHONE_UA, "SM-A546E", "sess-abcdef12"]
    events_url = es.default_events_url(s["data"])
    newsroom_url = test_database(s["data"])  # SQLite or PostgreSQL, as the run tests
    for url in (events_url, newsroom_url):
        engine = create_engine(url)
        with engine.connect() as conn:
            for table in inspect(engine).get_table_names():
                for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                    flat = " ".join(str(v) for v in row)
                    assert not any(n in flat for n in needles), (url, table, row)
        engine.dispose()
    raw = (s["data"] / "analytics" / "events.sqlite3").read_bytes()
    wal = s["data"] / "analytics" / "events.sqlite3-wal"
    raw += wal.read_bytes() if wal.exists() else b""
    assert not any(n.encode() in raw for n in needles)


@pytest.mark.parametrize("body, code", [
    (b"{not json", "invalid_json"),
    (json.dumps({"v": 1, "session": "short", "entry": "qr", "events": [{"type": "opened", "t": 1}]}).encode(),
     "invalid_events"),
    (json.dumps({"v": 1, "session": "sess-abcdef12", "entry": "qr",
                 "events": [{"type": "recognized", "t": 1800000000000, "page": 1}]}).encode(), "invalid_events"),
    (json.dumps({"v": 1, "session": "sess-abcdef12", "entry": "qr",
                 "events": [{"type": "opened", "t": 1800000000000, "ip": "1.2.3.4"}]}).encode(), "invalid_events"),
    (json.dumps({"v": 1, "session": "sess-abcdef12", "entry": "qr",
                 "events": [{"type": "dwell", "t": 1800000000000, "page": 1, "ms": -5}]}).encode(), "invalid_events"),
])
def test_a_malformed_batch_is_a_400_in_the_error_shape_and_stores_nothing(s, body, code):
    r = post(s, None, raw=body, headers={"Accept-Language": "en"})
    assert r.status_code == 400 and r.get_json()["error"] == code and r.get_json()["message"]
    assert stored(s) == []


def test_the_compiled_schema_check_agrees_with_the_reference_validator():
    """The batch is checked by jsonschema-rs (fast) and explained by jsonschema (a refusal names the field); both
    must say the same of good and bad batches, and an integer past 64 bits is refused, not a 500."""
    from viewer_api.ingest import BatchError, _validator, _valid_fast, parse_batch

    t = now_ms()
    good = {"v": 1, "session": "sess-abcdef12", "entry": "qr",
            "events": [{"type": "recognized", "t": t, "page": 3, "ms": 800, "stage": "server", "scoped": True},
                       {"type": "aim", "t": t, "page": 3, "x_mm": 10.5, "y_mm": 20},
                       {"type": "media_progress", "t": t, "page": 3, "overlay": 9, "quartile": 75}]}
    bad = [{**good, "v": 2}, {**good, "entry": "web"}, {**good, "session": "x"}, {**good, "events": []},
           {**good, "extra": 1}, {**good, "events": [{"type": "aim", "t": t, "page": 3, "x_mm": 10}]},
           {**good, "events": [{"type": "media_progress", "t": t, "page": 3, "overlay": 9, "quartile": 30}]},
           {**good, "events": [{"type": "opened", "t": 10 ** 30}]}, [], "batch"]
    assert _valid_fast(good) and not list(_validator().iter_errors(good))
    assert parse_batch(json.dumps(good).encode()) == good
    for body in bad:
        assert not _valid_fast(body) and list(_validator().iter_errors(body)), body
        with pytest.raises(BatchError) as exc:
            parse_batch(json.dumps(body).encode())
        assert status_for(exc.value) == 400 and exc.value.code == "invalid_events"
    # Python's "$" matches before a final newline, Rust's does not: refused either way, with a message
    with pytest.raises(BatchError):
        parse_batch(json.dumps({**good, "session": "sess-abcdef12\n"}).encode())


def test_errors_are_vietnamese_by_default(s):
    r = post(s, None, raw=b"[]")
    assert r.status_code == 400 and "lược đồ" in r.get_json()["message"]


def test_a_batch_of_more_than_100_events_is_a_400_and_a_body_over_64_kb_a_413(s):
    many = [{"type": "opened", "t": now_ms()}] * 101
    r = post(s, batch(s, *many))
    assert r.status_code == 400 and r.get_json()["error"] == "too_many_events"
    big = json.dumps(batch(s, {"type": "opened", "t": now_ms()})).encode() + b" " * (64 * 1024)
    r = post(s, None, raw=big)
    assert r.status_code == 413 and r.get_json()["error"] == "too_large"
    assert stored(s) == []


def test_a_batch_naming_only_unpublished_ids_is_a_422_and_stores_nothing(s):
    r = post(s, batch(s, {"type": "recognized", "t": now_ms(), "page": 99999, "ms": 5, "stage": "server",
                          "scoped": False},
                      {"type": "link_opened", "t": now_ms(), "page": s["page"], "overlay": 424242}))
    assert r.status_code == 422 and r.get_json()["error"] == "unknown_ids"
    assert stored(s) == []


def test_unknown_stale_and_wrong_kind_events_are_dropped_and_counted_beside_good_ones(s):
    p, o = s["page"], s["overlay"]
    r = post(s, batch(s, {"type": "opened", "t": now_ms(), "edition": s["edition"]},
                      {"type": "opened", "t": now_ms(), "edition": 777777},
                      {"type": "media_progress", "t": now_ms(), "page": p, "overlay": o, "quartile": 25},
                      {"type": "opened", "t": now_ms() - 8 * 86_400_000},
                      {"type": "opened", "t": now_ms() + 3_600_000},
                      {"type": "aim", "t": now_ms(), "page": p, "x_mm": 1999, "y_mm": 10}))
    assert r.status_code == 204 and r.headers["X-Events-Stored"] == "1" and r.headers["X-Events-Dropped"] == "5"
    dropped = {row.k: row.n
               for row in stored(s) if row.type == es.EVENT_TYPES["dropped"]}
    R = es.DROP_REASONS
    assert dropped == {R["unknown_edition"]: 1, R["wrong_kind"]: 1, R["stale"]: 1, R["future"]: 1,
                       R["outside_page"]: 1}


@pytest.mark.parametrize("ua, headers", [
    ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", {}),
    ("curl/8.5.0", {}),
    ("", {}),
    (PHONE_UA, {"DNT": "1"}),
    (PHONE_UA, {"Sec-GPC": "1"}),
])
def test_bots_and_readers_who_opted_out_are_answered_204_and_not_stored(s, ua, headers):
    r = post(s, batch(s, *a_session(s)), ua=ua, headers=headers)
    assert r.status_code == 204 and r.headers["X-Events-Stored"] == "0"
    assert stored(s) == []


def test_yesterdays_salt_is_gone_and_the_same_reader_on_two_days_counts_twice(tmp_path):
    from viewer_api.ingest import Client, ingest_batch

    class OnePage:
        def page(self, page_id):
            from viewer_api.ingest import PublishedPage
            return PublishedPage(page_id, 5, "bao", 297, 420, {}) if page_id == 50 else None

        def edition_publication(self, edition_id):
            return "bao" if edition_id == 5 else None

    engine = es.make_events_engine(f"sqlite:///{tmp_path / 'e.sqlite3'}")
    es.create_schema(engine)
    salts = es.SaltStore(tmp_path / "salts")
    writer = es.EventWriter(engine)
    client = Client("198.51.100.4", PHONE_UA)
    day1 = int(dt.datetime(2026, 12, 1, 10, tzinfo=dt.timezone.utc).timestamp() * 1000)
    day2 = day1 + 86_400_000
    for now in (day1, day1 + 3_600_000, day2):
        ingest_batch({"v": 1, "session": "same-session-id", "entry": "qr",
                      "events": [{"type": "recognized", "t": now - 1000, "page": 50, "ms": 900, "stage": "server",
                                  "scoped": True}]}, client, OnePage(), salts, writer, now)
        assert salts.days_kept() == [f"salt-{es.date_of_day(es.vn_day(now)).isoformat()}"]
    with engine.connect() as conn:
        visitors = [r.visitor for r in conn.execute(select(es.events).order_by(es.events.c.t))]
    assert visitors[0] == visitors[1] != visitors[2]  # same day: one reader; next day: a new hash
    from builder import analytics as an

    reader = an.EventsReader(engine, {5: 1})
    first, last = es.date_of_day(es.vn_day(day1)), es.date_of_day(es.vn_day(day2))
    assert an.report(reader, an.Scope(edition_id=5), first, last).unique_readers == 2
    engine.dispose()


def test_the_events_endpoint_is_rate_limited_per_client_with_retry_after(tmp_path):
    from builder.config import Settings

    settings = replace(Settings.from_env({"BAONHUNG_DATA_DIR": str(tmp_path / "d")}), events_rate_per_minute=2)
    client = make_app(tmp_path / "d", SETTINGS=settings).test_client()
    body = json.dumps({"v": 1, "session": "sess-abcdef12", "entry": "archive",
                       "events": [{"type": "opened", "t": now_ms()}]})
    codes = [client.post("/api/v1/events", data=body, content_type="text/plain", headers={"User-Agent": PHONE_UA},
                         environ_base={"REMOTE_ADDR": "10.9.9.9"}) for _ in range(3)]
    assert [r.status_code for r in codes] == [204, 204, 429]
    assert 1 <= int(codes[2].headers["Retry-After"]) <= 60 and codes[2].get_json()["error"] == "rate_limited"


def test_the_event_schema_file_is_valid_and_names_every_event_type():
    from viewer_api.ingest import SCHEMA_PATH, _validator

    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    _validator()
    names = set(schema["$defs"]["event"]["properties"]["type"]["enum"])
    assert names == {n for n, code in es.EVENT_TYPES.items() if code < es.SERVER_TYPES_FROM}  # not dropped, refused


def test_device_classes_of_common_phones_tablets_and_desktops():
    from viewer_api.ingest import classify_user_agent

    ipad = ("Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 "
            "Mobile/15E148 Safari/604.1")
    tab = ("Mozilla/5.0 (Linux; Android 13; SM-X200) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 "
           "Safari/537.36")
    coccoc = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) coc_coc_browser/120.0"
              " Chrome/120 Safari/537.36")
    assert classify_user_agent(PHONE_UA).device_class == es.DEVICE_CLASSES["phone"]
    d = classify_user_agent(ipad)
    assert (d.device_class, d.os_family, d.browser) == (es.DEVICE_CLASSES["tablet"], es.OS_FAMILIES["ipados"],
                                                        es.BROWSER_FAMILIES["safari"])
    assert classify_user_agent(tab).device_class == es.DEVICE_CLASSES["tablet"]
    d = classify_user_agent(coccoc)
    assert (d.device_class, d.browser) == (es.DEVICE_CLASSES["desktop"], es.BROWSER_FAMILIES["coccoc"])
