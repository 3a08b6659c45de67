"""The readership dashboard in real headless Chromium (issue 26), against a real server: an editor logs in and
opens a page's dashboard at a laptop's size and at a phone's (390×844). No console error, the heat-map drawn over
the page image and visible, the charts on screen. Screenshots: ``test-artifacts/analytics-{desktop,phone}.png``
and ``analytics-edition-phone.png``."""
from __future__ import annotations

import io
import json
import random
import threading
import time
from dataclasses import replace

import pytest

from tests.browser.conftest import (ARTIFACTS, PASSWORD, log_in, page_png)
from tests.conftest import auth, user_with_token

pytestmark = pytest.mark.browser

PHONE_UA = ("Mozilla/5.0 (Linux; Android 14; SM-A546E) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/131.0.0.0 Mobile Safari/537.36")
PAGE_MM = (297.0, 420.0)
HOT_SPOTS_MM = ((150, 70, 25), (180, 950 / 1680 * 420, 30), (90, 1400 / 1680 * 420, 20))  # (x, y, spread): the
# masthead and the two photo blocks of page_png() — where readers of a real page would aim


def aim_sessions(ids: dict, sessions: int = 24, seed: int = 5) -> list[dict]:
    """Viewer sessions reading the page: recognized, aim points scattered around the hot spots, dwell, taps."""
    rnd = random.Random(seed)
    t0 = int(time.time() * 1000) - 20 * 60_000
    out = []
    for s in range(sessions):
        t = t0 + s * 20_000
        p, e = ids["page"], ids["edition"]
        events = [{"type": "opened", "t": t, "edition": e}, {"type": "camera_started", "t": t + 100, "edition": e},
                  {"type": "recognized", "t": t + 300 + rnd.randint(200, 4000), "page": p,
                   "ms": rnd.randint(200, 4000), "stage": "server", "scoped": True},
                  {"type": "overlay_shown", "t": t + 5000, "page": p, "overlay": ids["link"]}]
        for i in range(30):
            x, y, spread = rnd.choice(HOT_SPOTS_MM)
            events.append({"type": "aim", "t": t + 5000 + i * 400, "page": p,
                           "x_mm": min(max(rnd.gauss(x, spread), 0), PAGE_MM[0] - 0.1),
                           "y_mm": min(max(rnd.gauss(y, spread), 0), PAGE_MM[1] - 0.1)})
        if s % 3 == 0:
            events.append({"type": "link_opened", "t": t + 17_000, "page": p, "overlay": ids["link"]})
        events.append({"type": "dwell", "t": t + 18_000, "page": p, "ms": 12_000 + rnd.randint(0, 9000)})
        out.append({"v": 1, "session": f"sess-browser-{s:04d}", "entry": "qr" if s % 4 else "archive",
                    "events": events})
    return out


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from werkzeug.serving import make_server

    from builder import services as svc
    from builder.config import Settings
    from tests.conftest import make_app

    data = tmp_path_factory.mktemp("analytics-ui") / "d"
    settings = replace(Settings.from_env({"BAONHUNG_DATA_DIR": str(data)}), events_rate_per_minute=10_000,
                       events_session_rate_per_minute=10_000)
    app = make_app(data, SETTINGS=settings)
    session = app.extensions["baonhung"].sessionmaker()
    svc.create_user(session, svc.SYSTEM, "editor@toasoan.vn", "editor", PASSWORD)
    session.close()
    token = user_with_token(app, "api@toasoan.vn", "editor")
    client = app.test_client()
    client.post("/api/v1/publications", json={"name": "Báo Yên Bái", "slug": "bao-yen-bai"}, headers=auth(token))
    edition = client.post("/api/v1/publications/bao-yen-bai/editions", json={"date": "2026-11-26", "number": 3},
                          headers=auth(token)).get_json()["id"]
    r = client.post(f"/api/v1/editions/{edition}/pages", headers=auth(token), content_type="multipart/form-data",
                    data={"image": (io.BytesIO(page_png()), "trang.png"), "title": "Thời sự",
                          "width_mm": str(PAGE_MM[0]), "height_mm": str(PAGE_MM[1])})
    assert r.status_code == 201, r.get_json()
    page = r.get_json()["id"]
    r = client.post(f"/api/v1/pages/{page}/overlays", headers=auth(token), content_type="multipart/form-data",
                    data={"kind": "link", "url": "https://example.org", "name": "Đọc tiếp", "x_mm": "190",
                          "y_mm": "300", "width_mm": "80", "height_mm": "30"})
    link = r.get_json()["id"]
    client.post(f"/api/v1/editions/{edition}/submit", headers=auth(token))
    assert client.post(f"/api/v1/editions/{edition}/publish", headers=auth(token)).status_code == 202
    ids = {"edition": edition, "page": page, "link": link}
    for i, body in enumerate(aim_sessions(ids)):
        r = client.post("/api/v1/events", data=json.dumps(body), content_type="text/plain",
                        headers={"User-Agent": PHONE_UA}, environ_base={"REMOTE_ADDR": f"203.0.113.{i + 1}"})
        assert r.status_code == 204, r.get_data()
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield {"url": f"http://127.0.0.1:{httpd.server_port}", **ids}
    httpd.shutdown()
    thread.join(timeout=10)


@pytest.mark.parametrize("name, viewport, mobile", [("desktop", {"width": 1440, "height": 1000}, False),
                                                    ("phone", {"width": 390, "height": 844}, True)])
def test_the_page_dashboard_shows_its_heatmap_without_console_errors(server, browser, name, viewport, mobile):
    errors: list[str] = []
    context = browser.new_context(viewport=viewport, locale="vi-VN", is_mobile=mobile, has_touch=mobile,
                                  device_scale_factor=2 if mobile else 1)
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type in ("error", "warning") else None)
    failed: list[str] = []
    page.on("response", lambda resp: failed.append(f"{resp.status} {resp.url}") if resp.status >= 400 else None)
    try:
        log_in(page, server["url"], "editor@toasoan.vn")
        page.get_by_role("link", name="Bạn đọc").first.click()  # the newsroom navigation's link
        page.wait_for_url("**/analytics")
        page.goto(f"{server['url']}/analytics/pages/{server['page']}?days=7")
        page.wait_for_load_state("networkidle")
        assert page.locator('[data-metric="sessions"]').inner_text() == "24"
        heat = page.locator("svg.heatmap")
        heat.scroll_into_view_if_needed()
        box = heat.bounding_box()
        assert box and box["width"] >= (300 if mobile else 500) and box["height"] > box["width"]  # portrait page
        assert box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"] + 1  # fits, no sideways scroll
        cells = page.locator("rect.heat-cell")
        assert cells.count() > 20
        assert cells.first.is_visible()
        # the page image under it arrived and was decoded (its SVG <image> has a box of the page's shape)
        image_ok = page.evaluate("""async () => {
            const img = document.querySelector('svg.heatmap image.heat-page');
            const r = await fetch(img.getAttribute('href'));
            const b = await createImageBitmap(await r.blob());
            return [r.status, b.width > 500];
        }""")
        assert image_ok == [200, True]
        assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"] + 1
        page.screenshot(path=str(ARTIFACTS / f"analytics-{name}.png"), full_page=True)
        if mobile:
            page.goto(f"{server['url']}/analytics/editions/{server['edition']}?days=7")
            page.wait_for_load_state("networkidle")
            assert page.locator("svg.chart-cols").count() >= 3 and page.locator("ul.hbars.funnel li").count() == 4
            assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"] + 1
            page.screenshot(path=str(ARTIFACTS / "analytics-edition-phone.png"), full_page=True)
        assert not errors, errors
        assert not failed, failed
    finally:
        context.close()
