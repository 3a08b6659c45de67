"""Batches refused whole by POST /api/v1/events (issue 26) are counted by reason — malformed, too large, naming
nothing published, rate-limited, bots — written as "refused" rows at most once a minute, and shown with the dropped
events in the site's report and dashboard; readers who opted out are not counted; nothing of a refused batch is kept."""
from __future__ import annotations

import json
from dataclasses import replace

from sqlalchemy import select

from tests.conftest import make_app, user_with_token
from tests.web.test_analytics_dashboard import hbar_values, signed_in
from tests.web.test_events import PHONE_UA, _engine, a_session, batch, now_ms, post, site  # noqa: F401
from viewer_api import eventstore as es


def refused_rows(s):
    with _engine(s).connect() as conn:
        return conn.execute(select(es.events).where(es.events.c.type == es.EVENT_TYPES["refused"])).all()


def test_refused_batches_are_counted_by_reason_and_written_once_a_minute(site):  # noqa: F811
    s = site
    with _engine(s).begin() as conn:
        conn.execute(es.events.delete())
    ev = s["app"].extensions["baonhung_events"]
    ev.write_refusals(now_ms(), force=True)  # whatever earlier tests left
    with _engine(s).begin() as conn:
        conn.execute(es.events.delete())
    p, o = s["page"], s["overlay"]
    assert post(s, None, raw=b"{not json").status_code == 400
    assert post(s, {"v": 1, "session": "x", "entry": "qr", "events": []}).status_code == 400
    assert post(s, None, raw=b"x" * (64 * 1024 + 1)).status_code == 413
    assert post(s, batch(s, {"type": "overlay_shown", "t": now_ms(), "page": 999999, "overlay": o})).status_code == 422
    assert post(s, batch(s, *a_session(s)), ua="curl/8.5.0").status_code == 204  # a bot: answered, not stored
    assert post(s, batch(s, *a_session(s)), headers={"DNT": "1"}).status_code == 204  # opted out: not even counted
    assert post(s, batch(s, {"type": "link_opened", "t": now_ms(), "page": p, "overlay": o})).status_code == 204
    assert refused_rows(s) == []  # under a minute since the last write: still in the process
    ev.write_refusals(now_ms(), force=True)
    rows = refused_rows(s)
    names = {v: k for k, v in es.REFUSED_REASONS.items()}
    assert {names[r.k]: r.n for r in rows} == {"invalid": 2, "too_large": 1, "unknown_ids": 1, "bot": 1}
    assert all((r.edition_id, r.page_id, r.overlay_id, r.visitor, r.session, r.ctx) == (None, None, None, 0, 0, 0)
               for r in rows)
    ev.write_refusals(now_ms(), force=True)
    assert len(refused_rows(s)) == len(rows)  # counted once


def test_rate_limited_batches_are_counted_and_the_site_dashboard_shows_refused_and_dropped(tmp_path):
    from builder.config import Settings
    from tests.web.test_api import make_edition, make_page, make_publication
    from tests.conftest import auth, png_bytes

    data = tmp_path / "d"
    settings = replace(Settings.from_env({"BAONHUNG_DATA_DIR": str(data)}), events_rate_per_minute=3,
                       events_session_rate_per_minute=1000)
    app = make_app(data, SETTINGS=settings)
    client = app.test_client()
    token = user_with_token(app, "bientap@toasoan.vn", "editor")
    make_publication(client, token)
    edition = make_edition(client, token)
    page = make_page(client, token, edition["id"], png_bytes(620, 877, seed=21))
    client.post(f"/api/v1/editions/{edition['id']}/submit", headers=auth(token))
    assert client.post(f"/api/v1/editions/{edition['id']}/publish", headers=auth(token)).status_code == 202
    s = {"app": app, "client": client, "page": page["id"], "edition": edition["id"], "data": data}
    good = {"v": 1, "session": "sess-ratelim1", "entry": "qr",
            "events": [{"type": "dwell", "t": now_ms(), "page": page["id"], "ms": 1000},
                       {"type": "dwell", "t": now_ms(), "page": 424242, "ms": 1000}]}  # one dropped: unknown page
    statuses = [client.post("/api/v1/events", data=json.dumps(good), content_type="text/plain",
                            headers={"User-Agent": PHONE_UA}, environ_base={"REMOTE_ADDR": "198.51.100.7"}).status_code
                for _ in range(5)]
    assert statuses == [204, 204, 204, 429, 429]
    app.extensions["baonhung_events"].write_refusals(now_ms(), force=True)
    app.extensions["baonhung_events"].writer.flush()
    names = {v: k for k, v in es.REFUSED_REASONS.items()}
    assert {names[r.k]: r.n for r in refused_rows(s)} == {"rate_limited": 2}
    user_with_token(app, "qt@toasoan.vn", "admin")
    html = signed_in({"app": app}, "qt@toasoan.vn").get("/analytics?days=1").get_data(as_text=True)
    assert ("Gửi quá nhiều (giới hạn tần suất)", "2") in hbar_values(html, "refused")
    assert ("Trang không có hoặc chưa xuất bản", "3") in hbar_values(html, "dropped")
    rep = client.get("/api/v1/analytics/site?lang=en", headers=auth(token)).get_json()["report"]
    assert rep["refused"]["rate_limited"] == 2 and rep["dropped"]["unknown_page"] == 3
    assert rep["sessions"] == 1  # the server's rows are no session
    edition_rep = client.get(f"/api/v1/analytics/editions/{edition['id']}", headers=auth(token)).get_json()["report"]
    assert edition_rep["refused"] == {} and "refused" not in edition_rep["events"]
