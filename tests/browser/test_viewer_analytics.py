"""Readership analytics of the phone viewer (issue 26) in real Chromium: the viewer's events reach the page report of
builder/analytics.py; nothing is sent when the browser asks not to be tracked; a batch that could not be sent
(offline, or a 429) is sent later with its original times; the events store keeps no address and no User-Agent; the
reader notice at 390 x 844.

The real app (builder.app.create_app) with the demo edition (builder.demo.seed_demo: video, 3D pin, audio, animated
image, link on one published page); the camera is a y4m clip of that page (tests/browser/clip.py).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.browser import clip as clipmod
from tests.browser.fixture_app import STATE_JS, launch_chromium, serve_in_thread, wait_state

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
PHONE = {"width": 390, "height": 844}

pytestmark = [pytest.mark.browser, pytest.mark.realtime, pytest.mark.xdist_group("viewer-browser")]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from builder.bundle import BundleOptions
    from tests.conftest import make_app
    from builder.demo import DEMO_PAGE_MM, demo_page_png, seed_demo
    from builder.models import Page

    data = tmp_path_factory.mktemp("viewer-analytics")
    app = make_app(data, BUNDLE_OPTIONS=BundleOptions())  # bundles as the product builds them (compressed)
    state = app.extensions["baonhung"]
    db = state.sessionmaker()
    try:
        result = seed_demo(db, state.settings, password="analytics-test-password")
        page = db.get(Page, result.page_id)
        overlays = {o.id: o.kind for o in page.overlays}
    finally:
        db.close()
    posts = EventPosts(app)
    server, base = serve_in_thread(app)
    img = cv2.imdecode(np.frombuffer(demo_page_png(), np.uint8), cv2.IMREAD_COLOR)
    w_mm, h_mm = DEMO_PAGE_MM
    y4m = clipmod.make_clip(img, w_mm, h_mm, seconds_page=5.0, seconds_blank=0.5).write(data / "demo.y4m")
    yield {"app": app, "posts": posts, "base": base, "code": result.edition_code, "page_id": result.page_id,
           "edition_id": result.edition_id, "overlays": overlays, "size_mm": DEMO_PAGE_MM, "y4m": y4m, "data": data}
    server.shutdown()


def events_engine(demo):
    from viewer_api.events_api import EventsState

    app = demo["app"]
    with app.app_context():
        ev = app.extensions.get("baonhung_events") or EventsState(app.extensions["baonhung"])
        app.extensions["baonhung_events"] = ev
        return ev.engine


def stored_rows(demo) -> list:
    from sqlalchemy import select

    from viewer_api import eventstore as es

    with events_engine(demo).connect() as conn:
        return conn.execute(select(es.events)).all()


class EventPosts:
    """Every POST /api/v1/events that reached the server (a WSGI wrapper round the app: keepalive fetches and beacons
    are not all seen by Playwright's request events): seconds since `reset`, the fetch mode ("cors": fetch,
    "no-cors": sendBeacon), the parsed body and the answer's status. `refuse_next(retry_after)` answers the next
    batch 429 with that Retry-After instead of passing it on."""

    def __init__(self, app):
        self.inner = app.wsgi_app
        app.wsgi_app = self
        self.reset()

    def reset(self):
        self.t0 = time.monotonic()
        self.posts = []
        self.refuse = None

    def refuse_next(self, retry_after: int):
        self.refuse = retry_after

    def __call__(self, environ, start_response):
        import io

        if environ.get("PATH_INFO") != "/api/v1/events" or environ.get("REQUEST_METHOD") != "POST":
            return self.inner(environ, start_response)
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)
        post = {"at": time.monotonic() - self.t0, "mode": environ.get("HTTP_SEC_FETCH_MODE"),
                "body": json.loads(body or b"null"), "status": None}
        self.posts.append(post)
        if self.refuse is not None:
            retry, self.refuse = self.refuse, None
            post["status"] = 429
            start_response("429 Too Many Requests", [("Retry-After", str(retry)), ("Content-Type", "application/json")])
            return [b'{"error": "rate_limited", "message": "wait"}']

        def recording_start(status, headers, exc_info=None):
            post["status"] = int(status.split()[0])
            return start_response(status, headers, exc_info)
        return self.inner(environ, recording_start)

    def events(self) -> list[dict]:
        return [e for p in self.posts for e in p["body"]["events"]]


def open_viewer(browser, demo, *, viewport=None, init_js: str | None = None, mobile=False):
    context = browser.new_context(viewport=viewport or {"width": 640, "height": 480}, is_mobile=mobile,
                                  has_touch=mobile)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)
    if init_js:
        page.add_init_script(init_js)
    page.add_init_script(clipmod.PROBE_JS)
    return context, page, errors


def overlay_centre(state: dict, kind: str):
    ov = next((o for o in state["overlays"] if o["kind"] == kind and o.get("corners")), None)
    if ov is None:
        return None
    c = np.array(ov["corners"]).mean(axis=0)
    return float(c[0]), float(c[1])


def tap_overlay(page, kind: str, tries: int = 12) -> None:
    """Tap an overlay of `kind` where it is drawn now (the clip moves: read its place, tap, check, again)."""
    for _ in range(tries):
        st = page.evaluate(STATE_JS)
        c = overlay_centre(st, kind) if st["overlaysVisible"] else None
        if c and 5 < c[0] < 635 and 5 < c[1] < 475:
            page.mouse.click(*c)
            if page.evaluate(f"() => (window.__baonhung.lastActivated || {{}}).kind === '{kind}'"):
                return
        time.sleep(0.3)
    raise AssertionError(f"could not tap the {kind} overlay")


def today():
    from viewer_api import eventstore as es

    return es.date_of_day(es.vn_day(int(time.time() * 1000)))


def page_report(demo):
    from builder import analytics as an

    state = demo["app"].extensions["baonhung"]
    db = state.sessionmaker()
    try:
        reader = an.open_reader(state.settings, db)
        return an.report(reader, an.Scope(page_id=demo["page_id"]), today(), today())
    finally:
        db.close()


def wait_until(pred, timeout_s: float, what: str):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        if pred():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what() if callable(what) else what}")


LOST_HIDE_MS = 350  # main.js: target:lost comes this long after the last frame that showed the page


def followed_ms(bus_log: list, left_at: float) -> float:
    """Time the viewer followed the page by its own bus: each target:found until the next target:lost (less the
    LOST_HIDE_MS it waited before saying so), the last one until the reader left (`left_at`, same clock)."""
    total, since = 0.0, None
    for name, at in bus_log:
        if name == "target:found" and since is None:
            since = at
        elif name == "target:lost" and since is not None:
            total += max(0.0, at - LOST_HIDE_MS - since)
            since = None
    if since is not None:
        total += left_at - since
    return total


# ---------- one reading session, end to end ----------

@pytest.fixture(scope="module")
def session(demo):
    from playwright.sync_api import sync_playwright

    out = {}
    with sync_playwright() as pw:
        browser = launch_chromium(pw, clip=demo["y4m"])
        try:
            context, page, errors = open_viewer(browser, demo)
            posts = demo["posts"]
            posts.reset()
            opened_links = []
            context.route("https://baoyenbai.com.vn/**", lambda route: (opened_links.append(route.request.url),
                                                                         route.fulfill(body="<p>bài</p>")))
            page.goto(f"{demo['base']}/v/{demo['code']}?process=640&nosw=1")
            page.click("#start")
            wait_state(page, "s.overlaysVisible && s.media.some(m => m.kind === 'video')", 40)
            wait_state(page, "s.analytics && s.analytics.active", 20)
            # the video (6 s) past its first quartile: it plays while the page is in view
            wait_state(page, "s.media.some(m => m.kind === 'video' && m.currentTime > 2.0)", 30)
            with context.expect_page(timeout=10000) as popup:
                tap_overlay(page, "link")
            popup.value.close()
            page.wait_for_selector("#reaction", state="visible", timeout=5000)
            page.click("#reaction button[data-value='useful']")
            out["thanks"] = page.inner_text("#reaction")
            # the periodic batch (every ~15 s), sent with fetch
            wait_until(lambda: any(p["mode"] == "cors" for p in posts.posts), 25,
                       lambda: f"a periodic batch ({[(p['mode'], round(p['at'], 1)) for p in posts.posts]})")
            time.sleep(1.0)
                    # the viewer's own record of when it followed the page (events.js keeps found / lost with their times)
            out["bus_log"] = page.evaluate("""async () => (await import('/v/static/events.js')).log
                .filter(e => e.name === 'target:found' || e.name === 'target:lost').map(e => [e.name, e.at])""")
            out["user_agent"] = page.evaluate("() => navigator.userAgent")
            n_before = len(posts.posts)
            page.goto("about:blank")  # the reader leaves: pagehide sends the rest with a beacon
            wait_until(lambda: len(posts.posts) > n_before, 10, "the page-hide beacon")
            time.sleep(1.0)
            out["errors"] = errors
            out["posts"] = posts
            out["opened_links"] = opened_links
            context.close()
        finally:
            browser.close()
    wait_until(lambda: any(r.type for r in stored_rows(demo)), 10, "stored events")
    out["report"] = page_report(demo)
    return out


def test_a_viewer_session_sends_its_events_in_the_schemas_shape(session, demo):
    from viewer_api.ingest import _validator

    posts = session["posts"]
    assert not session["errors"], session["errors"]
    validator = _validator()
    for p in posts.posts:
        assert not list(validator.iter_errors(p["body"])), p["body"]
        assert p["status"] == 204, p
    assert len({p["body"]["session"] for p in posts.posts}) == 1
    assert {p["body"]["entry"] for p in posts.posts} == {"qr"}
    events = posts.events()
    page = demo["page_id"]
    by_type = {}
    for e in events:
        by_type.setdefault(e["type"], []).append(e)
    assert by_type["opened"] == [{"type": "opened", "t": by_type["opened"][0]["t"], "edition": demo["edition_id"]}]
    assert len(by_type["camera_started"]) == 1
    [rec] = by_type["recognized"]
    assert rec["page"] == page and rec["stage"] == "server" and rec["scoped"] is True
    assert 0 < rec["ms"] < 30000
    assert rec["t"] - rec["ms"] == pytest.approx(by_type["camera_started"][0]["t"], abs=2)
    shown = {e["overlay"] for e in by_type["overlay_shown"]}
    assert shown == set(demo["overlays"]), "each overlay of the page is reported shown, once"
    assert len(by_type["overlay_shown"]) == len(shown)
    link = next(i for i, k in demo["overlays"].items() if k == "link")
    video = next(i for i, k in demo["overlays"].items() if k == "video")
    assert [e["overlay"] for e in by_type["link_opened"]] == [link] and session["opened_links"]
    assert any(e["overlay"] == link for e in by_type["overlay_activated"])
    assert {(e["overlay"], e["quartile"]) for e in by_type["media_progress"]} >= {(video, 25)}
    assert [e["value"] for e in by_type["reaction"]] == ["useful"]
    assert session["thanks"] in ("Cảm ơn bạn!",)
    # aim points: at most one a second, on the page
    aims = by_type["aim"]
    w_mm, h_mm = demo["size_mm"]
    assert len(aims) >= 3
    assert all(0 <= a["x_mm"] <= w_mm and 0 <= a["y_mm"] <= h_mm for a in aims)
    assert all(b["t"] - a["t"] >= 1000 for a, b in zip(aims, aims[1:]))
    # sent every ~15 s with fetch, and the rest with a beacon when the page was left
    assert posts.posts[0]["mode"] == "cors" and posts.posts[-1]["mode"] == "no-cors"
    assert any(e["type"] == "dwell" for e in posts.posts[-1]["body"]["events"])


def test_the_sessions_events_reach_the_page_report(session, demo):
    rep = session["report"]
    events = session["posts"].events()
    sent_dwell = sum(e["ms"] for e in events if e["type"] == "dwell")
    assert rep.sessions == 1 and rep.unique_readers == 1
    assert rep.recognized == 1 and rep.recognized_scoped == 1 and rep.recognized_by_stage["server"] == 1
    assert sum(rep.recognized_by_stage.values()) == 1
    assert rep.dwell_ms == sent_dwell
    # the dwell the viewer reported is the time it followed the page, until the reader left (the last dwell's time)
    left_at = max(e["t"] for e in events if e["type"] == "dwell")
    followed = followed_ms(session["bus_log"], left_at)
    assert followed > 10000
    assert abs(sent_dwell - followed) <= 0.1 * followed + 500, (sent_dwell, followed)
    assert rep.overlays_shown == len(demo["overlays"])
    assert rep.links_opened == 1 and rep.links_shown == 1 and rep.link_click_through == 1.0
    assert rep.media_quartiles.get("25", 0) >= 1
    assert rep.reactions.get("useful") == 1
    assert rep.events.get("aim", 0) == sum(1 for e in events if e["type"] == "aim")
    assert rep.entry.get("qr") == 1


def test_the_events_store_holds_no_address_and_no_user_agent_after_the_browser_session(session, demo):
    from sqlalchemy import create_engine, inspect, text

    from viewer_api import eventstore as es

    ua = session["user_agent"]
    sid = session["posts"].posts[0]["body"]["session"]
    needles = ["127.0.0.1", ua, "HeadlessChrome", sid]
    url = es.default_events_url(demo["data"])
    engine = create_engine(url)
    rows = 0
    try:
        with engine.connect() as conn:
            for table in inspect(engine).get_table_names():
                for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                    rows += 1
                    flat = " ".join(str(v) for v in row)
                    assert not any(n in flat for n in needles), (table, row)
    finally:
        engine.dispose()
    assert rows > 10
    raw = b"".join(p.read_bytes() for p in (demo["data"] / "analytics").glob("events.sqlite3*"))
    assert not any(n.encode() in raw for n in needles)


# ---------- Do Not Track / Global Privacy Control ----------

@pytest.mark.parametrize("signal", ["doNotTrack", "globalPrivacyControl"])
def test_with_dnt_or_gpc_the_viewer_sends_nothing_and_says_so(demo, signal):
    from playwright.sync_api import sync_playwright

    value = '"1"' if signal == "doNotTrack" else "true"
    init = f"Object.defineProperty(Navigator.prototype, '{signal}', {{get: () => {value}}});"
    before = len(stored_rows(demo))
    with sync_playwright() as pw:
        browser = launch_chromium(pw, clip=demo["y4m"])
        try:
            context, page, errors = open_viewer(browser, demo, init_js=init)
            posts = demo["posts"]
            posts.reset()
            page.goto(f"{demo['base']}/v/{demo['code']}?process=640&nosw=1")
            # events an earlier page load kept on the device before the reader opted out: dropped, never sent
            page.evaluate(KEEP_ONE_EVENT_JS)
            page.click("#privacy-link")
            state_line = page.inner_text("#privacy-state")
            page.click("#privacy-close")
            page.click("#start")
            wait_state(page, "s.overlaysVisible && s.analytics && s.analytics.active === false", 40)
            tap_overlay(page, "video")
            assert page.is_hidden("#reaction"), "no reaction control when nothing would be sent"
            page.evaluate("() => window.__baonhung.analytics.flush()")
            time.sleep(1.0)
            kept = page.evaluate(PENDING_KEYS_JS)
            page.goto("about:blank")
            time.sleep(1.5)
            assert not errors, errors
        finally:
            browser.close()
    assert "đã tắt" in state_line
    assert posts.posts == []
    assert kept == []
    assert len(stored_rows(demo)) == before


# ---------- offline, and told to wait ----------

PENDING_KEYS_JS = "() => Object.keys(localStorage).filter((k) => k.startsWith('baonhung.analytics.pending.'))"
KEEP_ONE_EVENT_JS = """() => localStorage.setItem('baonhung.analytics.pending.earlier', JSON.stringify(
    {v: 1, groups: [{entry: 'qr', events: [{type: 'opened', t: Date.now() - 60000}]}]}))"""


def test_events_kept_offline_survive_a_reload_and_are_sent_with_their_original_times_without_the_session_id(demo):
    """Offline, the unsent events go to localStorage (no session id in it); the page is closed while still offline;
    back online, the next page load sends them with their original times, as a session of their own under a new
    random id, then forgets them."""
    from playwright.sync_api import sync_playwright

    posts = demo["posts"]
    url = f"{demo['base']}/v/{demo['code']}?process=640&nosw=1"
    with sync_playwright() as pw:
        browser = launch_chromium(pw, clip=demo["y4m"])
        try:
            context, page, errors = open_viewer(browser, demo)
            posts.reset()
            page.goto(url)
            wait_state(page, "s.analytics && s.analytics.active", 40)  # loaded at 8 s at the latest
            page.evaluate("() => window.__baonhung.analytics.flush()")
            wait_until(lambda: posts.posts and posts.posts[-1]["status"] == 204, 10, "the first batch")
            first_session = posts.posts[0]["body"]["session"]
            n_online = len(posts.posts)
            context.set_offline(True)
            page.wait_for_function("() => navigator.onLine === false", timeout=5000)
            emitted = page.evaluate("""async (pageId) => {
                const ev = await import('/v/static/events.js');
                ev.emit('fallback:used', { mode: 'no_camera_3d', pageId });
                await new Promise((r) => setTimeout(r, 30));
                ev.emit('fallback:used', { mode: 'photo_upload' });
                return ev.log.filter((e) => e.name === 'fallback:used').map((e) => e.at); }""", demo["page_id"])
            page.evaluate("() => window.__baonhung.analytics.flush()")
            stored = page.evaluate("""() => Object.keys(localStorage).filter((k) => k.startsWith('baonhung.analytics.pending.'))
                                          .map((k) => localStorage.getItem(k))""")
            # the page goes while offline (a reload offline fails without unloading it; about:blank loads offline)
            page.goto("about:blank")
            time.sleep(0.5)
            n_offline = len(posts.posts)
            context.set_offline(False)
            posts_before_reopen = len(posts.posts)
            page.goto(url)
            wait_until(lambda: any(e["type"] == "fallback_used" for p in posts.posts[posts_before_reopen:]
                                   for e in p["body"]["events"]), 30,
                       lambda: f"the kept events, sent by the next page load: {n_online} {n_offline} {stored} "
                               f"{[(p['at'], p['status'], p['mode'], p['body']['session'], [e['type'] for e in p['body']['events']]) for p in posts.posts]}")
            late = next(p for p in posts.posts[posts_before_reopen:]
                        if any(e["type"] == "fallback_used" for e in p["body"]["events"]))
            wait_until(lambda: late["status"] is not None, 10, "the answer")
            # the page forgets the kept batch once its answer is in (a moment after the server recorded the post)
            deadline = time.monotonic() + 10
            while (left := page.evaluate(PENDING_KEYS_JS)) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not errors, errors
        finally:
            browser.close()
    assert n_offline == n_online, "nothing is sent while the browser is offline"
    assert len(stored) == 1 and '"fallback_used"' in stored[0]
    assert first_session not in stored[0] and '"session"' not in stored[0]
    kept = [e for e in late["body"]["events"] if e["type"] == "fallback_used"]
    assert sorted(e["t"] for e in kept) == sorted(emitted[-2:])  # the original times
    assert {e.get("mode") for e in kept} == {"no_camera_3d", "photo_upload"}
    assert late["status"] == 204 and late["body"]["entry"] == "qr"
    assert late["body"]["session"] != first_session  # a new random id: the stored copy had none
    sessions = {p["body"]["session"] for p in posts.posts[posts_before_reopen:]}
    assert len(sessions) == 2, "the reopened page load's own events travel under its own session id"
    assert left == []  # sent: forgotten
    wait_until(lambda: {e["t"] for e in kept} <= {r._mapping["t"] for r in stored_rows(demo)}, 10,
               "the kept events stored with their original times")


def test_the_kept_queue_is_bounded_and_drops_its_oldest_events_first(demo):
    """PendingStore + Reporter.persist alone: 700 events kept (past the 500 bound) keep the newest 500; a 200 KB cap
    is held by dropping the oldest; a new page load takes every kept copy back (removing it), leaves out unreadable
    ones and events older than the server's 7 days."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            page = browser.new_page()
            page.goto(f"{demo['base']}/v/?nosw=1")
            got = page.evaluate("""async () => {
                const m = await import('/v/static/analytics.js');
                localStorage.clear();
                const now = Date.now();
                const r = new m.Reporter({ config: {}, entry: "archive", openedAt: now, store: new m.PendingStore() });
                r.queue.length = 0;
                for (let i = 0; i < 700; i++) r.add({ type: "aim", t: now + i, page: 3, x_mm: 1, y_mm: 2 });
                r.persist();
                const keys = Object.keys(localStorage).filter((k) => k.startsWith(m.PENDING_PREFIX));
                const doc = JSON.parse(localStorage.getItem(keys[0]));
                const out = { keys: keys.length, kept: doc.groups[0].events.length, first: doc.groups[0].events[0].t - now,
                              dropped: r.dropped, queued: r.pending(), bytes: localStorage.getItem(keys[0]).length };
                // big events: the byte cap bites before the count (a new page load would take the first copy)
                localStorage.clear();
                const big = new m.Reporter({ config: {}, entry: "qr", openedAt: now, store: new m.PendingStore() });
                big.queue.length = 0;
                for (let i = 0; i < 400; i++) big.add({ type: "opened", t: now + i, pad: "x".repeat(1000) });
                big.persist();
                out.bigBytes = localStorage.getItem(big.store.key).length;
                out.bigFirst = big.queue[0].t - now;
                out.bigDropped = big.dropped;
                // a new page load takes both copies back (and removes them); too old events are dropped
                localStorage.setItem(m.PENDING_PREFIX + "old", JSON.stringify({ v: 1, groups: [{ entry: "qr",
                    events: [{ type: "opened", t: now - 8 * 86400000 }, { type: "opened", t: now - 1000 }] }] }));
                localStorage.setItem(m.PENDING_PREFIX + "junk", "{not json");
                const next = new m.Reporter({ config: {}, entry: "qr", openedAt: now, store: new m.PendingStore() });
                out.older = next.older.map((g) => [g.entry, g.events.length, typeof g.session]);
                out.nextDropped = next.dropped;
                out.keysAfter = Object.keys(localStorage).filter((k) => k.startsWith(m.PENDING_PREFIX)).length;
                localStorage.clear();
                return out; }""")
        finally:
            browser.close()
    assert (got["keys"], got["kept"], got["first"], got["dropped"], got["queued"]) == (1, 500, 200, 200, 500)
    assert got["bytes"] <= 200_000
    assert got["bigBytes"] <= 200_000 and got["bigFirst"] > 0 and got["bigDropped"] == got["bigFirst"]
    # oldest first: the kept copy from 1 s ago, then the big ones (the 8-day-old event dropped)
    assert [o[:2] for o in got["older"]] == [["qr", 1], ["qr", 400 - got["bigDropped"]]]
    assert all(o[2] == "string" for o in got["older"])
    assert got["nextDropped"] == 1
    assert got["keysAfter"] == 1  # only the new page load's own copy of what it took

def test_batches_kept_offline_or_refused_with_429_are_sent_later_with_their_original_times(demo):
    from playwright.sync_api import sync_playwright

    posts = demo["posts"]
    with sync_playwright() as pw:
        browser = launch_chromium(pw, clip=demo["y4m"])
        try:
            context, page, errors = open_viewer(browser, demo)
            posts.reset()
            page.goto(f"{demo['base']}/v/{demo['code']}?process=640&nosw=1")
            page.click("#start")
            wait_state(page, "s.overlaysVisible && s.analytics && s.analytics.active", 40)
            page.evaluate("() => window.__baonhung.analytics.flush()")
            wait_until(lambda: posts.posts and posts.posts[-1]["status"] == 204, 10, "the first batch")
            # offline: aim points (1 a second while the page is followed) pile up with the time they were taken
            n_online = len(posts.posts)
            context.set_offline(True)
            t_off = page.evaluate("() => Date.now()")
            time.sleep(3.5)
            page.evaluate("() => window.__baonhung.analytics.flush()")
            queued = page.evaluate("() => window.__baonhung.analytics.queued()")
            n_offline = len(posts.posts)
            t_on = page.evaluate("() => Date.now()")
            context.set_offline(False)  # the browser's "online" event sends them
            wait_until(lambda: len(posts.posts) > n_offline and posts.posts[n_offline]["status"], 10,
                       "the batch kept offline")
            late = posts.posts[n_offline]
            # the server says to wait 3 s: nothing is sent before, then the same events are
            time.sleep(1.2)
            posts.refuse_next(3)
            page.evaluate("() => window.__baonhung.analytics.flush()")
            wait_until(lambda: posts.posts[-1]["status"] == 429, 5, "the refused batch")
            n_refused = len(posts.posts)
            refused = posts.posts[-1]
            time.sleep(1.0)
            page.evaluate("() => window.__baonhung.analytics.flush()")  # too early: nothing goes
            time.sleep(1.0)
            too_early = len(posts.posts) - n_refused
            time.sleep(1.5)
            page.evaluate("() => window.__baonhung.analytics.flush()")
            wait_until(lambda: len(posts.posts) > n_refused and posts.posts[n_refused]["status"], 5,
                       "the batch sent after Retry-After")
            resent = posts.posts[n_refused]
            assert not errors, errors
        finally:
            browser.close()
    assert queued >= 3 and n_offline == n_online, "nothing is sent while the browser is offline"
    offline_aims = [e for e in late["body"]["events"] if e["type"] == "aim" and t_off <= e["t"] < t_on]
    assert len(offline_aims) >= 2, late["body"]["events"]
    assert late["status"] == 204
    # stored with the time they were taken, not the time they were sent (the store may commit a moment after the 204)
    wait_until(lambda: {e["t"] for e in offline_aims} <= {r._mapping["t"] for r in stored_rows(demo)}, 10,
               lambda: f"the offline aim points stored with their times: {[e['t'] for e in offline_aims]}")
    assert too_early == 0
    assert resent["status"] == 204 and resent["at"] - refused["at"] >= 3.0
    assert resent["body"]["events"][:len(refused["body"]["events"])] == refused["body"]["events"]
    assert resent["body"]["session"] == refused["body"]["session"] == late["body"]["session"]


def test_a_reader_who_leaves_before_any_overlay_is_still_counted(demo):
    """analytics.js loads after the first overlay (or at 8 s): a reader who opened the viewer and switched away at
    once left no trace, so the funnel's "opened" undercounted early leavers. Hiding the page loads it at once and it
    reports what the bus logged with a beacon."""
    from playwright.sync_api import sync_playwright

    posts = demo["posts"]
    with sync_playwright() as pw:
        browser = launch_chromium(pw, clip=demo["y4m"])
        try:
            context, page, errors = open_viewer(browser, demo)
            posts.reset()
            page.goto(f"{demo['base']}/v/{demo['code']}?process=640&nosw=1")
            page.wait_for_timeout(1000)
            assert page.evaluate("() => !(window.__baonhung && window.__baonhung.analytics)"), "not loaded yet"
            hidden_at = time.monotonic() - posts.t0
            page.evaluate("""() => { Object.defineProperty(document, 'visibilityState', {value: 'hidden',
                                                                                         configurable: true});
                                     document.dispatchEvent(new Event('visibilitychange')); }""")
            wait_until(lambda: posts.posts and posts.posts[0]["status"], 5, "the leaving reader's batch")
            assert not errors, errors
        finally:
            browser.close()
    first = posts.posts[0]
    assert first["at"] - hidden_at < 4.0 and first["mode"] == "no-cors", first  # a beacon, soon after hiding
    assert first["status"] == 204
    assert [e["type"] for e in first["body"]["events"]][:1] == ["opened"] and first["body"]["entry"] == "qr"


# ---------- pieces checked alone, in the browser ----------

def test_the_frame_centre_maps_to_page_mm_through_the_inverse_homography(demo):
    """analytics.js frameCentreOnPage against OpenCV: a page seen in perspective, its frame centre taken back."""
    from playwright.sync_api import sync_playwright

    w, h = 640, 480
    page_mm = np.float32([[0, 0], [297, 0], [297, 420], [0, 420]])
    quad_px = np.float32([[150, 40], [520, 90], [560, 450], [90, 430]])
    H = cv2.getPerspectiveTransform(page_mm, quad_px)
    want = cv2.perspectiveTransform(np.float64([[[(w - 1) / 2, (h - 1) / 2]]]), np.linalg.inv(H))[0, 0]
    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            page = browser.new_page()
            page.goto(f"{demo['base']}/v/?nosw=1")
            got = page.evaluate("""async ([H, w, h]) => {
                const m = await import('/v/static/analytics.js');
                return [m.frameCentreOnPage(H, w, h), m.frameCentreOnPage([1, 2, 3, 2, 4, 6, 0, 0, 0], w, h),
                        [m.publishedId(12), m.publishedId("40"), m.publishedId("p1"), m.publishedId(0)]]; }""",
                                [H.ravel().tolist(), w, h])
        finally:
            browser.close()
    assert np.allclose(got[0], want, atol=1e-6)
    assert got[1] is None  # a singular homography gives no point
    assert got[2] == [12, 40, None, None]


def test_media_quartiles_are_reported_once_per_play_and_again_after_a_loop(demo):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            page = browser.new_page()
            page.goto(f"{demo['base']}/v/?nosw=1")
            got = page.evaluate("""async () => {
                const media = await import('/v/static/media.js');
                const events = await import('/v/static/events.js');
                const heard = [];
                events.on('media:quartile', (d) => heard.push(d.quartile));
                const el = new EventTarget();
                el.duration = 8; el.currentTime = 0;
                media.watchQuartiles(el, {id: '7', kind: 'video'}, '3');
                const at = (t) => { el.currentTime = t; el.dispatchEvent(new Event('timeupdate')); };
                el.dispatchEvent(new Event('play'));
                for (const t of [0.2, 1.9, 2.1, 2.3, 4.4, 6.1, 6.5, 7.8]) at(t);   // 25 50 75 100 (near the end)
                const first = heard.splice(0);
                for (const t of [0.1, 2.2]) at(t);                                  // looped: a new play
                const second = heard.splice(0);
                at(7.0); at(0.3);                                                   // wrap without the last update
                const wrap = heard.splice(0);
                return {first, second, wrap}; }""")
        finally:
            browser.close()
    assert got["first"] == [25, 50, 75, 100]
    assert got["second"] == [25]
    assert got["wrap"] == [50, 75, 100]


# ---------- the reader notice on a phone ----------

def test_the_reader_notice_is_small_and_readable_on_a_390_px_phone_in_both_languages(demo):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = launch_chromium(pw, clip=demo["y4m"])
        try:
            context, page, errors = open_viewer(browser, demo, viewport=PHONE, mobile=True)
            page.goto(f"{demo['base']}/v/{demo['code']}?nosw=1")
            link = page.locator("#privacy-link")
            assert link.inner_text() == "Thống kê ẩn danh"
            page.screenshot(path=str(ARTIFACTS / "viewer-notice-start-390.png"))
            lb, lang = link.bounding_box(), page.locator("#lang").bounding_box()
            assert lb["x"] + lb["width"] <= PHONE["width"] and lb["y"] >= lang["y"] + lang["height"]
            assert lb["height"] < 32, "a small link, not a banner"
            page.tap("#privacy-link")
            panel = page.locator("#privacy-panel")
            text = panel.inner_text()
            assert "Không ai bị nhận diện" in text and "Do Not Track" in text and "Global Privacy Control" in text
            assert "đang đếm ẩn danh" in text
            pb = panel.bounding_box()
            assert pb["x"] >= 0 and pb["x"] + pb["width"] <= PHONE["width"] and pb["y"] >= 0
            assert pb["y"] + pb["height"] <= PHONE["height"], pb
            assert page.evaluate("() => document.getElementById('privacy-panel').scrollWidth "
                                 "<= document.getElementById('privacy-panel').clientWidth")
            page.screenshot(path=str(ARTIFACTS / "viewer-notice-vi-390.png"))
            page.tap("#lang")
            text_en = panel.inner_text()
            assert "No one is identified" in text_en and "Do Not Track" in text_en
            page.screenshot(path=str(ARTIFACTS / "viewer-notice-en-390.png"))
            page.tap("#privacy-close")
            assert page.is_hidden("#privacy-panel")
            assert link.inner_text() == "Anonymous statistics"
            # over the camera view, with the page's overlays and the reaction control of a tapped overlay
            page.tap("#start")
            wait_state(page, "s.overlaysVisible && s.analytics && s.analytics.active", 40)
            for _ in range(12):
                st = page.evaluate(STATE_JS)
                c = overlay_centre(st, "video") if st["overlaysVisible"] else None
                if c:
                    scale = page.evaluate("() => document.getElementById('gl').getBoundingClientRect().width / "
                                          "document.getElementById('gl').width * (window.devicePixelRatio || 1)")
                    box = page.locator("#gl").bounding_box()
                    x, y = box["x"] + c[0] * scale, box["y"] + c[1] * scale
                    if 0 < x < PHONE["width"] and 0 < y < PHONE["height"]:
                        page.touchscreen.tap(x, y)
                        if page.is_visible("#reaction"):
                            break
                time.sleep(0.3)
            assert page.is_visible("#reaction")
            rb = page.locator("#reaction").bounding_box()
            assert rb["x"] >= 0 and rb["x"] + rb["width"] <= PHONE["width"] and rb["height"] < 56
            page.screenshot(path=str(ARTIFACTS / "viewer-notice-camera-390.png"))
            assert not errors, errors
        finally:
            browser.close()


def test_premium_teasers_lock_taps_and_redemptions_are_reported_from_the_bus(demo):
    """premium.js (issue 27) emits premium:teaser_shown / premium:lock_tap {overlay_id} and premium:redeemed {}:
    a teaser once per overlay and session, every lock tap, and a redemption naming the lock tapped last (none
    before the first tap). The page is the one overlays:shown listed the overlay on."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            page = browser.new_page()
            page.goto(f"{demo['base']}/v/?nosw=1")
            got = page.evaluate("""async () => {
                const m = await import('/v/static/analytics.js');
                const r = new m.Reporter({ config: { editionId: 7 }, entry: "qr", openedAt: 1800000000000 });
                const at = 1800000001000;
                r.handle("premium:redeemed", { at });                                     // no lock tapped yet
                r.handle("overlays:shown", { at, pageId: "70", overlays: [{ id: 701, kind: "video" },
                                                                           { id: 702, kind: "model3d" }] });
                r.handle("premium:teaser_shown", { at: at + 1, overlay_id: 701 });
                r.handle("premium:teaser_shown", { at: at + 2, overlay_id: 701 });        // again: not reported
                r.handle("premium:teaser_shown", { at: at + 3, overlay_id: "702" });
                r.handle("premium:lock_tap", { at: at + 4, overlay_id: 701 });
                r.handle("premium:lock_tap", { at: at + 5, overlay_id: 702 });
                r.handle("premium:redeemed", { at: at + 6 });
                r.handle("premium:teaser_shown", { at: at + 7, overlay_id: "p1" });      // not a published id
                return r.queue.filter((e) => e.type.startsWith("premium_")); }""")
        finally:
            browser.close()
    t = 1800000001000
    assert got == [
        {"type": "premium_redeemed", "t": t},
        {"type": "premium_impression", "t": t + 1, "page": 70, "overlay": 701},
        {"type": "premium_impression", "t": t + 3, "page": 70, "overlay": 702},
        {"type": "premium_lock_tap", "t": t + 4, "page": 70, "overlay": 701},
        {"type": "premium_lock_tap", "t": t + 5, "page": 70, "overlay": 702},
        {"type": "premium_redeemed", "t": t + 6, "page": 70, "overlay": 702}]
