"""Premium benchmark (issue 27): what the signed-URL check costs, and what premium overlays add to a publish.

Measures, on a throw-away data directory (bench/out/premium):
  check      the pure signed-URL check (builder.premium.check_signature: HMAC-SHA256 + expiry), µs per call
  sign       signing one URL (what the part endpoint does per bundle and medium), µs per call
  /pub/p     a full signed request through the product's Flask app (test client, no network): cookie → binding,
             check, catalog premium set, send_file of a 1 KB Range of the premium video; µs per request
  /pub/a     the same 1 KB Range of a free published blob (the teaser clip), for comparison: the difference is
             what the premium path adds
  part       GET /api/v1/reader/pages/<id>/premium (reader session and entitlement read from the database, URLs
             signed), ms per request
  first      the subscriber's extra wait before the first premium overlay, server side: the part request plus the
             premium GLB (lite, the phone's first choice on a slow link) through the app, and that GLB's transfer at
             SLOW_LINK_BPS; the viewer's parse and render are bench-viewer's
  publish    publishing the same page (a link, a 10 s video, a stock 3D model) with every overlay free, and with the
             video and the model premium (teaser clip + blurred still + a second bundle pair), seconds, production
             bundle options (gltf-transform compression and Khronos validation), median of --repeat
  browser    the subscriber's real extra wait, in Debian Chromium (Playwright, the fake camera playing a y4m clip of
             the printed page): the page of tests/browser/test_viewer_premium.py (a free and a premium video) served
             by the real app on loopback, a reader with an entitlement and a live session cookie; each run a fresh
             browser context (empty cache), "Bật camera" at once; the viewer's own marks (performance.now()):
             first free overlay → premium part answered → part attached → premium video playing, ms after the
             first free overlay (negative: before it). On a desktop profile (640 x 480, unthrottled) and on the
             phone-class profile of bench-viewer (tests/browser/phone.py: CPU 4x slower, 1.6 Mbit/s down, 150 ms
             RTT, 412 x 823), --browser-runs each; median, min, max

Ends with one ``RESULT key=value …`` line.

    .venv/bin/python bench/bench_premium.py [--checks 200000] [--requests 2000] [--repeat 3] [--browser-runs 3]
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import logging
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from builder.premium import check_signature, sign_url  # noqa: E402

OUT = REPO / "bench" / "out" / "premium"
VIDEO_SECONDS = 10
RANGE = "bytes=0-1023"
SLOW_LINK_BPS = 5_000_000  # a middling 4G / good 3G link, as bench_bundle


def per_call_us(fn, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def video_bytes(hz: int) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "v.mp4"
        subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i",
                        f"testsrc2=size=640x360:rate=25:duration={VIDEO_SECONDS}", "-f", "lavfi", "-i",
                        f"sine=frequency={hz}:duration={VIDEO_SECONDS}", "-c:a", "aac", "-pix_fmt", "yuv420p",
                        "-c:v", "libx264", "-shortest", "-movflags", "+faststart", str(path)],
                       check=True, capture_output=True)
        return path.read_bytes()


def page_png(seed: int) -> bytes:
    import cv2

    from markers.synth import generate_page

    ok, buf = cv2.imencode(".png", generate_page(seed))
    assert ok
    return buf.tobytes()


class Site:
    """The product's app on a fresh data directory, with an editor and a designer."""

    def __init__(self, data_dir: Path):
        from builder import services as svc
        from builder.app import create_app
        from builder.db import upgrade

        url = f"sqlite:///{data_dir / 'baonhung.sqlite3'}"
        upgrade(url)
        self.app = create_app({"DATA_DIR": data_dir, "TESTING": True, "DATABASE_URL": url})
        self.client = self.app.test_client()
        self.tokens = {}
        db = self.app.extensions["baonhung"].sessionmaker()
        try:
            for role in ("designer", "editor"):
                user, _ = svc.create_user(db, svc.SYSTEM, f"{role}@bench.vn", role, "mat-khau-bench-dai-1")
                _, self.tokens[role] = svc.issue_token(db, svc.SYSTEM, user, "bench")
        finally:
            db.close()
        self._post("/api/v1/publications", json={"name": "Báo Bench", "slug": "bao-bench"})
        self.number = 0

    def _post(self, path, role="designer", **kw):
        r = self.client.post(path, headers={"Authorization": f"Bearer {self.tokens[role]}"}, **kw)
        assert r.status_code in (200, 201, 202), (path, r.get_json())
        return r.get_json()

    def publish_page(self, premium: bool, seed: int, hz: int) -> tuple[float, dict]:
        """A new edition with one page (link, video, stock model); returns (publish seconds, page)."""
        import io

        from builder.models import Overlay

        self.number += 1
        edition = self._post("/api/v1/publications/bao-bench/editions",
                             json={"date": "2026-12-07", "number": self.number, "title": "Bench"})
        page = self._post(f"/api/v1/editions/{edition['id']}/pages", content_type="multipart/form-data",
                          data={"image": (io.BytesIO(page_png(seed)), "p.png"), "width_mm": "297", "height_mm": "420"})
        box = {"x_mm": "20", "y_mm": "30", "width_mm": "100", "height_mm": "60"}
        ids = []
        for kind, data in (("link", {"url": "https://example.org"}),
                           ("video", {"file": (io.BytesIO(video_bytes(hz)), "v.mp4")}), ("model3d", {"stock": "pin"})):
            ids.append(self._post(f"/api/v1/pages/{page['id']}/overlays", content_type="multipart/form-data",
                                  data={"kind": kind, **data, **box})["id"])
        if premium:
            db = self.app.extensions["baonhung"].sessionmaker()
            try:
                for overlay_id in ids[1:]:
                    db.get(Overlay, overlay_id).access = "premium"
                db.commit()
            finally:
                db.close()
        self._post(f"/api/v1/editions/{edition['id']}/submit")
        start = time.perf_counter()
        job = self._post(f"/api/v1/editions/{edition['id']}/publish", role="editor")
        # the bench's app runs a publish job inside the request (JOBS_IMMEDIATE, as the tests): timed whole
        assert job["status"] == "done", job
        return time.perf_counter() - start, page

    def reader_client(self):
        from builder.models import Entitlement, Reader, ReaderSession, utcnow

        token = secrets.token_urlsafe(32)
        db = self.app.extensions["baonhung"].sessionmaker()
        try:
            row = Reader(email=f"{secrets.token_hex(4)}@bench.vn", password_hash="-")
            db.add(row)
            db.flush()
            db.add(ReaderSession(reader_id=row.id, token_hash=hashlib.sha256(token.encode()).hexdigest()))
            db.add(Entitlement(reader_id=row.id, publication_id=None, source="admin",
                               expires_at=utcnow() + dt.timedelta(days=1)))
            db.commit()
        finally:
            db.close()
        client = self.app.test_client()
        client.set_cookie("baonhung_reader", token)
        return client


STEPS = (("partAt", "premium part answered"), ("attachedAt", "premium part attached"),
         ("playingAt", "premium video playing"))
SUBSCRIBER_JS = ("() => ({first: window.__baonhung.metrics.firstOverlayAt, "
                 "premium: JSON.parse(JSON.stringify(window.__baonhung.premium.metrics))})")


class _Dirs:
    """What the page fixture of tests/browser/test_viewer_premium.py asks of pytest's tmp_path_factory."""

    def __init__(self, root: Path):
        self.root = root

    def mktemp(self, name: str) -> Path:
        path = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.root))
        return path


def subscriber_runs(runs: int, timeout_s: float = 120.0) -> dict[str, list[dict]]:
    """Per profile ("desktop", "phone"), one dict per run: ms of each step after the first free overlay."""
    from playwright.sync_api import sync_playwright

    from tests.browser.fixture_app import launch_chromium, wait_state
    from tests.browser.phone import PhoneProfile, _throttle
    from tests.browser.test_viewer_premium import published
    from tests.web.test_premium_serving import reader

    root = OUT / "browser"
    root.mkdir(parents=True, exist_ok=True)
    fixture = published.__wrapped__(_Dirs(root))  # the test's page: a free and a premium video, published
    site = next(fixture)
    try:
        _, token = reader(site["app"], f"{secrets.token_hex(4)}@bench.vn")
        phone = PhoneProfile()
        profiles = {"desktop": ({"viewport": {"width": 640, "height": 480}}, None),
                    "phone": ({"viewport": {"width": phone.width, "height": phone.height},
                               "device_scale_factor": phone.dpr, "is_mobile": True, "has_touch": True}, phone)}
        out: dict[str, list[dict]] = {name: [] for name in profiles}
        with sync_playwright() as pw:
            browser = launch_chromium(pw, clip=site["y4m"])
            try:
                for name, (options, throttle) in profiles.items():
                    for _ in range(runs):
                        context = browser.new_context(**options)
                        try:
                            context.add_cookies([{"name": "baonhung_reader", "value": token, "url": site["base"]}])
                            page = context.new_page()
                            if throttle is not None:
                                _throttle(context.new_cdp_session(page), throttle)
                            page.goto(f"{site['base']}/v/{site['code']}")
                            if throttle is not None:
                                page.tap("#start", timeout=timeout_s * 1000)
                            else:
                                page.click("#start", timeout=timeout_s * 1000)
                            wait_state(page, "s.metrics.firstOverlayAt !== null && s.premium && s.premium.metrics "
                                             "&& s.premium.metrics.playingAt !== null", timeout_s)
                            m = page.evaluate(SUBSCRIBER_JS)
                            assert page.evaluate("() => window.__baonhung.premium.state") == "entitled"
                            out[name].append({k: m["premium"][k] - m["first"] for k, _ in STEPS})
                        finally:
                            context.close()
            finally:
                browser.close()
        return out
    finally:
        fixture.close()  # the fixture's own teardown: its server stops


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):>7.0f} {min(values):>7.0f} {max(values):>7.0f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checks", type=int, default=200_000, help="pure checks and signings timed")
    ap.add_argument("--requests", type=int, default=2000, help="requests through the Flask app per path")
    ap.add_argument("--repeat", type=int, default=3, help="publishes per variant (median)")
    ap.add_argument("--browser-runs", type=int, default=3,
                    help="subscriber runs in Chromium per profile (desktop, phone); 0: none")
    args = ap.parse_args()
    logging.disable(logging.WARNING)

    key, sha, binding = secrets.token_bytes(32), secrets.token_hex(32), hashlib.sha256(b"cookie").hexdigest()
    now = time.time()
    url = sign_url(key, sha, "mp4", int(now) + 300, binding)
    exp, sig = url.split("exp=")[1].split("&")[0], url.split("sig=")[1]
    assert check_signature(key, f"{sha}.mp4", exp, sig, binding, now, 300)
    check_us = per_call_us(lambda: check_signature(key, f"{sha}.mp4", exp, sig, binding, now, 300), args.checks)
    bad_us = per_call_us(lambda: check_signature(key, f"{sha}.mp4", exp, "A" * 43, binding, now, 300), args.checks)
    sign_us = per_call_us(lambda: sign_url(key, sha, "mp4", int(now) + 300, binding), args.checks)

    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    site = Site(OUT / "data")
    free_s, premium_s = [], []
    page = None
    for i in range(args.repeat):
        seconds, _ = site.publish_page(False, 30 + i, 300 + 10 * i)
        free_s.append(seconds)
        seconds, page = site.publish_page(True, 60 + i, 600 + 10 * i)
        premium_s.append(seconds)

    reader = site.reader_client()
    part_path = f"/api/v1/reader/pages/{page['id']}/premium"
    part = reader.get(part_path).get_json()
    premium_url = next(m["url"] for m in part["media"] if m["mime"].startswith("video/"))
    manifest = site.client.get(f"/pub/pages/{page['id']}/manifest.json").get_json()
    free_url = next(m["url"] for m in manifest["media"] if m["mime"].startswith("video/"))
    for target in (premium_url, free_url):
        r = reader.get(target, headers={"Range": RANGE})
        assert r.status_code == 206 and len(r.data) == 1024, (target, r.status_code)
    n = args.requests
    pub_p_us = per_call_us(lambda: reader.get(premium_url, headers={"Range": RANGE}).close(), n)
    pub_a_us = per_call_us(lambda: reader.get(free_url, headers={"Range": RANGE}).close(), n)
    forged = premium_url.rsplit("sig=", 1)[0] + "sig=" + "A" * 43
    pub_p_bad_us = per_call_us(lambda: reader.get(forged).close(), n)
    part_ms = per_call_us(lambda: reader.get(part_path).close(), max(50, n // 10)) / 1000
    lite_url = reader.get(part_path).get_json()["bundles"]["lite"]["url"]
    lite_bytes = len(reader.get(lite_url).data)
    lite_ms = per_call_us(lambda: reader.get(lite_url).close(), max(50, n // 10)) / 1000
    first_ms = part_ms + lite_ms + lite_bytes * 8 / SLOW_LINK_BPS * 1000

    print(f"# signed-URL check: {args.checks:,} calls; Flask test client (no network): {n:,} requests each, "
          f"{RANGE}; publish: median of {args.repeat}")
    print(f"{'what':<38} {'cost':>12}")
    rows = [("check (valid), pure", f"{check_us:.2f} µs"), ("check (forged), pure", f"{bad_us:.2f} µs"),
            ("sign one URL", f"{sign_us:.2f} µs"), ("GET /pub/p (signed, Range)", f"{pub_p_us:.0f} µs"),
            ("GET /pub/a (free, Range)", f"{pub_a_us:.0f} µs"), ("GET /pub/p (forged) → 403", f"{pub_p_bad_us:.0f} µs"),
            ("GET part (DB + signing)", f"{part_ms:.2f} ms"),
            (f"GET premium lite GLB ({lite_bytes / 1000:.0f} KB)", f"{lite_ms:.2f} ms"),
            (f"extra to 1st premium, {SLOW_LINK_BPS // 1_000_000} Mbit/s", f"{first_ms:.0f} ms"),
            ("publish, all free", f"{statistics.median(free_s):.2f} s"),
            ("publish, video + model premium", f"{statistics.median(premium_s):.2f} s")]
    for what, cost in rows:
        print(f"{what:<38} {cost:>12}")
    browser_keys = ""
    if args.browser_runs > 0:
        runs = subscriber_runs(args.browser_runs)
        print(f"# subscriber in Chromium, {args.browser_runs} runs per profile, fresh context each; ms after the "
              f"first free overlay (negative: before it); phone: CPU 4x, 1.6 Mbit/s down, 150 ms RTT")
        print(f"{'profile':<8} {'step':<24} {'median':>7} {'min':>7} {'max':>7}")
        for name, rows_ in runs.items():
            for key, label in STEPS:
                print(f"{name:<8} {label:<24} {spread([r[key] for r in rows_])}")
            browser_keys += (f" premium_extra_ms_{name}={statistics.median(r['playingAt'] for r in rows_):.0f}"
                             f" premium_extra_ms_{name}_max={max(r['playingAt'] for r in rows_):.0f}"
                             f" premium_attached_ms_{name}={statistics.median(r['attachedAt'] for r in rows_):.0f}")
    print(f"RESULT check_us={check_us:.2f} check_forged_us={bad_us:.2f} sign_us={sign_us:.2f} "
          f"pub_p_us={pub_p_us:.0f} pub_a_us={pub_a_us:.0f} pub_p_extra_us={pub_p_us - pub_a_us:.0f} "
          f"pub_p_forged_us={pub_p_bad_us:.0f} part_ms={part_ms:.2f} premium_lite_bytes={lite_bytes} "
          f"first_premium_extra_ms={first_ms:.0f} publish_free_s={statistics.median(free_s):.2f} "
          f"publish_premium_s={statistics.median(premium_s):.2f} "
          f"publish_extra_s={statistics.median(premium_s) - statistics.median(free_s):.2f}{browser_keys}")


if __name__ == "__main__":
    main()
