"""The reader's first scan on a phone-class browser (issue 23): Chromium throttled like Lighthouse's mobile profile
(CPU 4x slower, 1.6 Mbit/s down, 750 kbit/s up, 150 ms round trip), the link opened with an empty cache, "Bật camera"
tapped as soon as it shows, then the same link re-opened warm (service worker installed).

The bounds here are generous (3x the issue's goals of 6 s cold and 3 s warm to the first overlay); `make
bench-viewer` holds the real targets. What must never happen at all: a tap the viewer ignores, the recognize request
waiting behind the tracker's download, a warm re-open downloading the tracker again.
"""
from __future__ import annotations

import flask
import pytest

from tests.browser import clip as clipmod
from tests.browser.fixture_app import CODE, build_fixture, create_fixture_app, serve_in_thread
from tests.browser.phone import PhoneProfile, phone_scan

GOAL_COLD_S, GOAL_WARM_S = 6.0, 3.0
SLACK = 3.0

pytestmark = [pytest.mark.browser, pytest.mark.realtime, pytest.mark.xdist_group("viewer-browser")]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("phone")
    fixture = build_fixture(root / "fixture")
    app = create_fixture_app(fixture)
    statuses = []  # (status, path) of every answer
    app.after_request(lambda r: (statuses.append((r.status_code, flask.request.path)), r)[1])
    server, base = serve_in_thread(app)
    clip = clipmod.make_clip(fixture.page, seconds_page=6.0, seconds_blank=0.0)
    y4m = clip.write(root / "phone.y4m")
    log = app.config["REQUEST_LOG"]
    try:
        cold, warm = phone_scan(base, CODE, y4m, PhoneProfile(), track_s=1.0, warm_wait_s=60.0, warm_track_s=0.5,
                                on_warm=lambda: log.clear())
    finally:
        server.shutdown()
    return {"cold": cold, "warm": warm, "warm_log": list(log),
            "log_404": [path for code, path in statuses if code == 404]}


def test_first_overlay_on_a_phone_profile_cold_and_warm(runs):
    cold, warm = runs["cold"], runs["warm"]
    print(f"phone profile: first overlay cold {cold.first_overlay_s:.2f} s, warm {warm.first_overlay_s:.2f} s, "
          f"{cold.bytes_before_overlay / 1e6:.2f} MB before it, first recognize answer {cold.first_recognize_s:.2f} s")
    assert not cold.errors and not warm.errors, (cold.errors, warm.errors)
    assert cold.first_overlay_s <= SLACK * GOAL_COLD_S
    assert warm.first_overlay_s <= SLACK * GOAL_WARM_S
    assert cold.first_mode == "server", "the first overlay comes from the server's answer, before the tracker"


def test_the_first_tap_always_works(runs):
    assert runs["cold"].lost_taps == 0 and runs["warm"].lost_taps == 0


def test_no_request_of_the_scans_is_a_404(runs):
    """Issue 24: the browser asked for /favicon.ico on every load (a 404)."""
    assert not runs["log_404"], runs["log_404"]


def test_recognize_is_not_queued_behind_the_tracker_download(runs):
    cold = runs["cold"]
    tracker_sent = [t for t, url in cold.sent if "/v/vendor/opencv/" in url]
    recognize_sent = [t for t, url in cold.sent if "/api/v1/recognize" in url]
    assert recognize_sent and cold.first_recognize_s is not None
    assert tracker_sent, "the tracker should load after the first overlay"
    assert min(tracker_sent) >= cold.first_overlay_s - 0.05, (min(tracker_sent), cold.first_overlay_s)
    assert cold.first_recognize_s < min(tracker_sent)
    assert cold.tracker_ready_s is not None and cold.tracker_ready_s > cold.first_overlay_s


def test_the_service_worker_serves_the_tracker_on_a_warm_reopen(runs):
    warm = runs["warm"]
    assert warm.tracker_ready_s is not None, "the warm re-open should have loaded its tracker"
    reached = [p for p in runs["warm_log"] if p.startswith("/v/vendor/opencv/")]
    assert not reached, f"the tracker came from the network on a warm re-open: {reached}"
    served = {url: how for url, how in warm.sources.items() if "/v/vendor/opencv/" in url}
    assert served and set(served.values()) == {"service-worker"}, served
