"""Premium overlays in the phone viewer (issue 27), a reader's walk in real Chromium: the real app publishes a page
with a free video and a premium video, and a batch of subscription codes is made; the camera is a y4m clip of the
printed page (tests/browser/clip.py).

A signed-out reader sees the premium video's teaser with a lock while the free video plays; taps the lock, signs up
in the reader sheet over the running camera, redeems a printed code; the premium video plays on the paper (without
reloading the page). Opened again as a subscriber, the premium video follows the first free overlay (the extra
time is printed). Signed out: the premium video is gone, the lock is back, and no premium byte is in CacheStorage
nor servable from the HTTP cache. Signed in again, then revoked: the open viewer takes the premium video off.

Beside the walk: the renderer's parts alone (GPU resources and media released), and the renewal of the part's URLs.
Not marked realtime: the camera shows a still page, nothing is timed against the clip.
"""
from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.browser import clip as clipmod
from tests.browser.fixture_app import STATE_JS, launch_chromium, serve_in_thread, wait_state

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("viewer-browser")]

READER_EMAIL = "ban-doc@example.org"
READER_PASSWORD = "mat-khau-du-dai-2026"
# Page mm (the demo page, 297 x 420): the two videos side by side where the clip's camera sees them.
FREE_BOX = {"x_mm": 30, "y_mm": 150, "width_mm": 120, "height_mm": 68}
PREMIUM_BOX = {"x_mm": 160, "y_mm": 150, "width_mm": 110, "height_mm": 62}
BUS_JS = "async () => (await import('/v/static/events.js')).log.map((e) => ({name: e.name, detail: e.detail}))"
PREMIUM_JS = "() => JSON.parse(JSON.stringify(window.__baonhung.premium))"
# Every CacheStorage entry the page can see (the service worker's caches are the origin's).
CACHED_URLS_JS = """async () => { const out = [];
  for (const name of await caches.keys()) for (const req of await (await caches.open(name)).keys()) out.push(req.url);
  return out; }"""
# The premium video element of an overlay: its src and position; and a failure of it (as a network error would).
PREMIUM_VIDEO_SRC_JS = """(id) => {
  const o = window.__baonhung.debug.renderer.overlays.find((x) => x.id === id && x.premium);
  const el = o.controller.element;
  return { src: el.src, currentTime: el.currentTime, duration: el.duration }; }"""
FAIL_PREMIUM_VIDEO_JS = """(id) => {
  const o = window.__baonhung.debug.renderer.overlays.find((x) => x.id === id && x.premium);
  const el = o.controller.element, before = { src: el.src, currentTime: el.currentTime };
  el.dispatchEvent(new Event('error'));
  return before; }"""
# Entries as an older worker might have left them (a premium blob, a reader answer); and the purge asked of the worker.
PLANT_JS = """async () => {
  await (await caches.open('baonhung-pub-v1')).put('/pub/p/' + 'ab'.repeat(32) + '.mp4', new Response('premium'));
  const shell = (await caches.keys()).find((n) => n.startsWith('baonhung-shell-'));
  await (await caches.open(shell)).put('/api/v1/reader/me', new Response('{}'));
  return 2; }"""
SW_PURGE_JS = """() => new Promise((resolve) => {
  const channel = new MessageChannel();
  channel.port1.onmessage = (e) => resolve(e.data);
  setTimeout(() => resolve(null), 5000);  // a worker that does not answer
  navigator.serviceWorker.controller.postMessage({ type: 'purge-private' }, [channel.port2]); })"""
# Is the URL answered from the HTTP cache alone? (only-if-cached needs mode same-origin; a miss rejects or is 504)
HTTP_CACHED_JS = """async (url) => { try {
    const r = await fetch(url, { cache: 'only-if-cached', mode: 'same-origin', credentials: 'same-origin' });
    return r.ok ? r.status : 0;
  } catch (err) { return 0; } }"""


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    from sqlalchemy import select

    from builder import services as svc
    from builder.bundle import BundleOptions
    from tests.conftest import make_app
    from builder.demo import DEMO_PAGE_MM, demo_page_png, demo_video_mp4
    from builder.entitlements import batch_codes, create_batch
    from builder.importers import UploadLimits
    from builder.models import Overlay
    from builder.publish import publish_edition
    from builder.storage import make_store

    t0 = time.monotonic()
    data = tmp_path_factory.mktemp("viewer-premium")
    app = make_app(data, BUNDLE_OPTIONS=BundleOptions())  # bundles as the product builds them (compressed)
    state = app.extensions["baonhung"]
    settings = state.settings
    db = state.sessionmaker()
    try:
        store = make_store(settings.storage_backend, root=settings.data_dir / "store")
        limits = UploadLimits.from_env(settings.extra)
        actor = svc.SYSTEM
        pub = svc.create_publication(db, actor, {"name": "Báo Thử", "slug": "bao-thu"})
        edition = svc.create_edition(db, actor, pub, {"date": "2026-12-07", "number": 1, "title": "Số thử premium"})
        page = svc.add_page(db, store, limits, actor, edition, demo_page_png(), "trang-1.png",
                            {"number": 1, "width_mm": DEMO_PAGE_MM[0], "height_mm": DEMO_PAGE_MM[1]})
        free = svc.add_overlay(db, store, limits, actor, page,
                               {"kind": "video", "name": "Miễn phí", **FREE_BOX, "autoplay": True, "loop": True,
                                "muted": True}, demo_video_mp4(4), "mien-phi.mp4")
        premium = svc.add_overlay(db, store, limits, actor, page,
                                  {"kind": "video", "name": "Dành cho bạn đọc", **PREMIUM_BOX, "autoplay": True,
                                   "loop": True, "muted": True}, demo_video_mp4(6), "premium.mp4")
        free_id, premium_id = str(free.id), str(premium.id)
        db.get(Overlay, premium.id).access = "premium"  # the teaser is the kind's default: the first seconds
        db.commit()
        svc.submit_for_review(db, actor, edition)
        publish_edition(db, store, settings, actor, edition)
        batch, codes = create_batch(db, actor, pub.id, 3, 30, 1, edition_redeem_until(), "walk", settings=settings)
        assert batch_codes(settings, batch) == codes  # the printed sheet's codes are the ones made
        code, page_id = edition.code, page.id
        assert db.scalar(select(Overlay.access).where(Overlay.id == premium.id)) == "premium"
    finally:
        db.close()
    server, base = serve_in_thread(app)
    img = cv2.imdecode(np.frombuffer(demo_page_png(), np.uint8), cv2.IMREAD_COLOR)
    y4m = clipmod.make_clip(img, *DEMO_PAGE_MM, seconds_page=2.0, seconds_blank=0.0, still=True).write(data / "page.y4m")
    yield {"app": app, "base": base, "code": code, "page_id": page_id, "free_id": free_id, "premium_id": premium_id,
           "codes": [c for _, c in codes], "y4m": y4m, "publish_s": time.monotonic() - t0}
    server.shutdown()


def revoke_reader(app, email: str) -> None:
    from sqlalchemy import select

    from builder import services as svc
    from builder.entitlements import revoke
    from builder.models import Reader

    db = app.extensions["baonhung"].sessionmaker()
    try:
        assert revoke(db, svc.SYSTEM, db.scalar(select(Reader).where(Reader.email == email)), None) == 1
    finally:
        db.close()


def edition_redeem_until():
    import datetime as dt

    return dt.date.today() + dt.timedelta(days=30)


def media_of(page, overlay_id: str, premium: bool):
    st = page.evaluate(STATE_JS)
    return next((m for m in st["media"] if m["id"] == overlay_id and m["premium"] == premium), None)


def advances(page, overlay_id: str, premium: bool, seconds: float = 1.0) -> float:
    """How far the overlay's video played in `seconds` (modulo its length: it loops)."""
    before = media_of(page, overlay_id, premium)
    time.sleep(seconds)
    after = media_of(page, overlay_id, premium)
    return (after["currentTime"] - before["currentTime"]) % (after["duration"] or 1e9)


def open_viewer(browser, published, errors: list, private_urls: list):
    context = browser.new_context(viewport={"width": 640, "height": 480})
    page = context.new_page()
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)
    page.on("request", lambda r: private_urls.append(r.url)
            if "/pub/p/" in r.url or "/api/v1/reader/pages/" in r.url else None)
    page.goto(f"{published['base']}/v/{published['code']}")
    page.click("#start")
    return context, page


def test_a_reader_unlocks_a_premium_video_and_signing_out_leaves_nothing(published):
    from playwright.sync_api import sync_playwright

    free_id, premium_id = published["free_id"], published["premium_id"]
    errors, private_urls = [], []
    t_start = time.monotonic()
    print(f"published in {published['publish_s']:.1f} s")
    with sync_playwright() as pw:
        browser = launch_chromium(pw, clip=published["y4m"])
        try:
            context, page = open_viewer(browser, published, errors, private_urls)
            # --- signed out: the free video plays, the premium one shows its teaser under a lock ---------------
            wait_state(page, f"s.overlaysVisible && s.premium.state === 'locked' && s.premium.badges.some("
                             f"b => b.id === '{premium_id}' && b.visible)", 40)
            assert advances(page, free_id, premium=False) > 0.3
            assert media_of(page, premium_id, premium=True) is None  # no premium media without the right
            teaser = media_of(page, premium_id, premium=False)
            assert teaser is not None and not teaser["hidden"], "the teaser of the premium video is on the paper"
            assert page.locator(f".lock-badge[data-overlay-id='{premium_id}']").inner_text() == "Dành cho bạn đọc đăng ký"
            assert not [u for u in private_urls if "/pub/p/" in u], "no premium byte is asked for when signed out"

            # --- the lock opens the reader sheet over the camera; sign up; redeem the printed code -----------------
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "viewer-premium-locked.png"))
            page.locator(f".lock-badge[data-overlay-id='{premium_id}']").click()
            page.wait_for_selector("#reader-sheet:not([hidden])")
            frames_before = page.evaluate("() => window.__baonhung.frames.length")
            page.click("#reader-tab-signup")
            page.fill("#reader-email", READER_EMAIL)
            page.fill("#reader-password", "ngan")  # too short: the API's own message, in Vietnamese
            page.click("#reader-auth-submit")
            page.wait_for_selector("#reader-error:not([hidden])")
            assert "ký tự" in page.inner_text("#reader-error")
            page.click("#lang")  # in English: the sheet, the lock and the API's messages
            page.click("#reader-auth-submit")
            page.wait_for_function("document.querySelector('#reader-error').textContent.includes('characters')")
            assert page.inner_text("#reader-auth-submit") == "Sign up"
            assert page.locator(f".lock-badge[data-overlay-id='{premium_id}']").inner_text() == "For subscribers"
            page.click("#lang")
            # forgot password: the same answer whatever the address (no account enumeration), shown in the sheet
            page.click("#reader-forgot")
            page.fill("#reader-forgot-email", "chua-co@example.org")
            page.click("#reader-forgot-submit")
            page.wait_for_selector("#reader-notice:not([hidden])")
            assert "liên kết" in page.inner_text("#reader-notice")
            page.click("#reader-forgot-back")
            page.fill("#reader-password", READER_PASSWORD)
            page.click("#reader-auth-submit")
            page.wait_for_selector("#reader-account:not([hidden])")
            page.screenshot(path=str(ARTIFACTS / "viewer-premium-sheet.png"))
            assert page.inner_text("#reader-who-email") == READER_EMAIL
            page.fill("#reader-code", "KHONG-CO-MA-NAY")
            page.click("#reader-redeem-submit")
            page.wait_for_selector("#reader-error:not([hidden])")
            page.fill("#reader-code", published["codes"][0])
            page.click("#reader-redeem-submit")
            wait_state(page, "s.premium.state === 'entitled'", 20)
            assert page.evaluate("() => window.__baonhung.frames.length") > frames_before + 10, \
                "the camera kept running under the sheet"
            page.wait_for_selector("#reader-sheet", state="hidden")
            wait_state(page, f"s.media.some(m => m.id === '{premium_id}' && m.premium && m.currentTime > 0)", 20)
            assert advances(page, premium_id, premium=True) > 0.3, "the premium video plays on the paper"
            assert media_of(page, premium_id, premium=False)["hidden"], "its teaser is hidden"
            page.screenshot(path=str(ARTIFACTS / "viewer-premium-entitled.png"))
            assert not page.evaluate("() => window.__baonhung.premium.badges.some(b => b.visible)")
            # a premium media element that fails (a signed URL expiring mid-stream) gets a fresh URL and goes on
            # from where it was: the part is asked for again, the element keeps its position
            failed = page.evaluate(FAIL_PREMIUM_VIDEO_JS, premium_id)
            wait_state(page, "s.premium.part.recoveries === 1 && s.premium.part.renewals === 1", 10)
            wait_state(page, f"s.media.some(m => m.id === '{premium_id}' && m.premium && !m.paused)", 10)
            after = page.evaluate(PREMIUM_VIDEO_SRC_JS, premium_id)
            assert after["src"] != failed["src"] and "sig=" in after["src"], "a newly signed URL"
            # went on from there (modulo the loop: it may have wrapped meanwhile), not from the start
            assert (after["currentTime"] - failed["currentTime"]) % after["duration"] < 1.5, (failed, after)
            names = [e["name"] for e in page.evaluate(BUS_JS)]
            assert names.count("premium:teaser_shown") == 1 and "premium:lock_tap" in names
            assert names.index("premium:lock_tap") < names.index("premium:redeemed")
            signed = [u for u in private_urls if "/pub/p/" in u]
            assert signed and all("sig=" in u and "exp=" in u for u in signed)

            # --- a subscriber opens the viewer again: the premium video follows the first free overlay -------------
            page.reload()
            page.click("#start")
            wait_state(page, "s.premium.metrics && s.premium.metrics.playingAt !== null && s.metrics.firstOverlayAt !== null", 30)
            m = page.evaluate("() => ({first: window.__baonhung.metrics.firstOverlayAt, "
                              "premium: window.__baonhung.premium.metrics})")
            extra_ms = m["premium"]["playingAt"] - m["first"]
            rel = {k: round(v - m["first"]) for k, v in m["premium"].items() if v is not None}
            print(f"extra time to the first premium overlay (first free overlay -> premium video playing): "
                  f"{extra_ms:.0f} ms; steps after the first free overlay (ms): {rel}; part bundle "
                  f"{page.evaluate('() => window.__baonhung.premium.part.bundleBytes')} bytes")
            assert advances(page, premium_id, premium=True) > 0.3, (page.evaluate(STATE_JS), page.evaluate(PREMIUM_JS))

            # --- the service worker runs and has cached this visit's free artifacts, none of the premium ones -------
            wait_state(page, "s.offlineReady", 20)
            cached = page.evaluate(CACHED_URLS_JS)
            assert any("/pub/a/" in u for u in cached), "the service worker cached the free artifacts"
            assert not [u for u in cached if "/pub/p/" in u or "/api/v1/reader/" in u], "premium bytes never cached"
            # told to purge, it deletes any such entry (one an older worker may have left) and says how many
            assert page.evaluate(PLANT_JS) == 2
            assert page.evaluate(SW_PURGE_JS) == {"type": "purged", "removed": 2}
            assert not [u for u in page.evaluate(CACHED_URLS_JS) if "/pub/p/" in u or "/api/v1/reader/" in u]
            page.evaluate(PLANT_JS)  # and the sign-out purges them too

            # --- sign out: the premium video is gone and nothing of it is kept ---------------------------------
            page.click("#reader-open")
            page.wait_for_selector("#reader-account:not([hidden])")
            page.click("#reader-signout")
            wait_state(page, "s.premium.state === 'locked' && !s.premium.reader.signed_in", 10)
            assert media_of(page, premium_id, premium=True) is None
            assert not media_of(page, premium_id, premium=False)["hidden"], "the teaser is back"
            wait_state(page, f"s.premium.badges.some(b => b.id === '{premium_id}' && b.visible)", 10)
            cached = page.evaluate(CACHED_URLS_JS)
            assert any("/pub/a/" in u for u in cached), "the free artifacts stay cached"
            assert not [u for u in cached if "/pub/p/" in u or "/api/v1/reader/" in u]
            for url in set(private_urls):
                assert page.evaluate(HTTP_CACHED_JS, url) == 0, f"{url} is servable from the HTTP cache"
            assert page.evaluate("() => window.__baonhung.premium.part") is None

            # --- signing in again (the sheet's other mode) brings the premium video back, as the camera runs --------
            assert page.locator("#reader-sheet").get_attribute("data-view") == "auth"  # the sheet stayed open
            page.click("#reader-tab-signin")
            page.fill("#reader-email", READER_EMAIL)
            page.fill("#reader-password", READER_PASSWORD)
            page.click("#reader-auth-submit")
            wait_state(page, f"s.premium.state === 'entitled' && s.media.some(m => m.id === '{premium_id}' && m.premium)", 20)

            # --- the newsroom revokes the entitlement: the next renewal of the part (here: on a media error) is
            # refused, and the open viewer takes the premium video off and shows the lock again
            revoke_reader(published["app"], READER_EMAIL)
            time.sleep(1.1)  # past the freshness of the last part (a fresher one is retried as it is)
            page.evaluate(FAIL_PREMIUM_VIDEO_JS, premium_id)
            wait_state(page, "s.premium.state === 'locked' && s.premium.part === null", 10)
            assert media_of(page, premium_id, premium=True) is None
            context.close()
        finally:
            browser.close()
    assert not errors, errors
    print(f"premium walk: {time.monotonic() - t_start:.1f} s")


# ---------- the renderer's parts, alone (the fixture app's page bundle stands for a premium part) ----------

PART_JS = """async ({ glbUrl, videoUrl }) => {
  const { PageRenderer } = await import('/v/static/renderer.js');
  const { attachOverlay } = await import('/v/static/media.js');
  const canvas = document.createElement('canvas');
  canvas.width = 640; canvas.height = 480;
  document.body.appendChild(canvas);
  const r = new PageRenderer(canvas);
  r.setViewport(640, 480);
  const frames = (n) => new Promise((res) => { const f = () => (n-- <= 0 ? res() : requestAnimationFrame(f)); f(); });
  const memory = () => ({ ...r.renderer.info.memory });
  // a video's texture is uploaded once the video has a frame: wait for it, then draw
  const videoIn = (o) => new Promise((res) => { const el = o.controller.element;
    if (el.readyState >= 2) res(); else el.addEventListener('loadeddata', res, { once: true }); });
  await r.loadBundle(glbUrl);
  r.attachControllers((o) => attachOverlay(o, { pageId: 'p1', resolve: () => videoUrl, offerUnmute() {} }));
  r.enterView3d(210, 297);
  await videoIn(r.overlays.find((o) => o.id === 'v1'));
  r.requestRender();
  await frames(3);
  const base = memory(), freeIds = r.overlays.map((o) => o.id);
  const part = await r.loadPart(await (await fetch(glbUrl)).arrayBuffer());
  r.attachControllers((o) => attachOverlay(o, { pageId: 'p1', resolve: () => videoUrl, offerUnmute() {} }), part.overlays);
  r.setHidden(['v1', 'i1'], true);
  await videoIn(part.overlays.find((o) => o.id === 'v1'));
  r.requestRender();
  await frames(3);
  const loaded = memory();
  const video = part.overlays.find((o) => o.id === 'v1').controller.element;
  const teaser = r.overlays.find((o) => o.id === 'v1' && !o.premium);
  const measured = r.overlayCorners().filter((o) => o.id === 'v1').map((o) => !!o.premium);
  const during = { partOverlays: part.overlays.map((o) => o.id), premiumFlags: part.overlays.every((o) => o.premium),
                   overlays: r.overlays.length, teaserVisible: teaser.object.visible, teaserHidden: teaser.hidden,
                   measured, videoSrc: video.getAttribute('src') };
  r.setVisible(false); r.setVisible(true);  // a page lost and found again must not play a hidden teaser
  during.teaserPausedAfterShow = teaser.controller.element.paused;
  const removed = r.removePart(part), again = r.removePart(part);
  r.setHidden(['v1', 'i1'], false);
  r.requestRender();
  await frames(3);
  return { base, loaded, after: memory(), during, removed, again, freeIds, overlaysAfter: r.overlays.map((o) => o.id),
           videoAfter: { src: video.getAttribute('src'), paused: video.paused, networkState: video.networkState },
           teaserVisibleAfter: teaser.object.visible };
}"""


@pytest.fixture(scope="module")
def fixture_site(tmp_path_factory):
    """The fixture app's published page (tests/browser/fixture_app.py), served once for the tests of the viewer's
    parts alone (they only read it)."""
    from tests.browser.fixture_app import build_fixture, create_fixture_app

    fixture = build_fixture(tmp_path_factory.mktemp("fixture"))
    server, base = serve_in_thread(create_fixture_app(fixture))
    yield fixture, base
    server.shutdown()


def test_a_part_is_hung_on_the_page_and_taken_off_with_its_gpu_resources_and_media(fixture_site):
    """renderer.js loadPart / setHidden / removePart: the part's overlays join the page flagged premium; the hidden
    teaser is neither drawn, measured nor played; taken off, its media element lets go of its URL and the GPU holds
    as many geometries and textures as before it came."""
    from playwright.sync_api import sync_playwright

    from tests.browser.fixture_app import CODE

    fixture, base = fixture_site
    urls = {name: f"{base}/pub/a/{pub}" for name, (pub, _) in fixture.files.items()}
    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            page = browser.new_page()
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{base}/v/{CODE}?nosw=1")
            out = page.evaluate(PART_JS, {"glbUrl": urls["page.glb"], "videoUrl": urls["greenscreen.mp4"]})
        finally:
            browser.close()
    assert not errors, errors
    d = out["during"]
    assert d["premiumFlags"] and sorted(d["partOverlays"]) == sorted(out["freeIds"])
    assert d["overlays"] == 2 * len(out["freeIds"])
    assert not d["teaserVisible"] and d["teaserHidden"] and d["measured"] == [True], "only the premium v1 is measured"
    assert d["videoSrc"] and d["teaserPausedAfterShow"]
    assert out["loaded"]["geometries"] > out["base"]["geometries"], "the part was drawn"
    assert out["loaded"]["textures"] > out["base"]["textures"], "with its video"
    assert out["removed"] is True and out["again"] is False
    assert sorted(out["overlaysAfter"]) == sorted(out["freeIds"]) and out["teaserVisibleAfter"]
    assert out["after"]["geometries"] == out["base"]["geometries"]
    assert out["after"]["textures"] == out["base"]["textures"]
    assert out["videoAfter"]["src"] is None and out["videoAfter"]["paused"]


# ---------- renewal of the part's URLs (premium.js, the reader API answered by a stand-in) ----------

RENEWAL_JS = """async () => {
  const m = await import('/v/static/premium.js');
  const removed = [], hidden = [];
  const renderer = { canvas: document.getElementById('gl'), width: 640, height: 480, visible: true,
                     removePart: (p) => { removed.push(p); return true; },
                     setHidden: (ids, h) => hidden.push([ids, h]) };
  const ui = { lang: 'vi', t: (k) => k };
  const pv = new m.PremiumViewer({ renderer, ui, bind: () => null, state: {} });
  const asked = [];
  // the part endpoint: 200 with URLs good for 6.5 s (renewed at 80 %, 5.2 s), then 403 (the entitlement revoked)
  const answers = [{ ok: true, status: 200, data: { bundles: {}, media: [], expires_in: 6.5 } },
                   { ok: false, status: 403, data: { error: 'not_entitled' }, error: 'not_entitled' }];
  pv.api.part = async (url) => { asked.push([url, performance.now()]); return answers.shift(); };
  pv.page = { pageId: '9', premium: { overlays: ['5'], url: '/api/v1/reader/pages/9/premium' } };
  pv.S.overlays = ['5'];
  const part = { overlays: [] };
  pv.part = part;
  const t0 = performance.now();
  pv.takeDocument({ bundles: {}, media: [], expires_in: 6.5 });
  const wait = (ms) => new Promise((r) => setTimeout(r, ms));
  await wait(5600);
  const first = { asked: asked.map(([u, t]) => [u, Math.round(t - t0)]), renewals: pv.S.part.renewals,
                  expiresIn: Math.round(pv.S.part.expiresAt - Date.now()) };
  await wait(5600);
  return { first, asked: asked.map(([u, t]) => [u, Math.round(t - t0)]), removed: removed.length === 1 && removed[0] === part,
           hidden, state: pv.S.state, entitled: pv.S.entitled, partAfter: pv.S.part };
}"""


def test_the_part_is_renewed_at_80_percent_of_its_life_and_a_refused_renewal_takes_it_off(fixture_site):
    from playwright.sync_api import sync_playwright

    from tests.browser.fixture_app import CODE

    _, base = fixture_site
    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            page = browser.new_page()
            page.goto(f"{base}/v/{CODE}?nosw=1")
            out = page.evaluate(RENEWAL_JS)
        finally:
            browser.close()
    (url, at), = out["first"]["asked"]
    assert url == "/api/v1/reader/pages/9/premium" and 5100 <= at <= 5500, out  # 80 % of 6.5 s
    assert out["first"]["renewals"] == 1 and 5000 <= out["first"]["expiresIn"] <= 6600, out
    assert len(out["asked"]) == 2 and out["asked"][1][1] - at >= 5000, out  # the renewed part renewed again
    assert out["removed"] and out["hidden"] == [[["5"], False]], out  # refused: taken off, the teasers shown
    assert out["state"] == "locked" and not out["entitled"] and out["partAfter"] is None


def test_premium_overlays_free_for_everyone_after_the_publications_days_play_signed_out(published):
    """A publication whose premium overlays become free one day after the edition's date (2026-12-07: free from
    midnight in Viet Nam, 2026-12-07 17:00 UTC): a signed-out reader gets the premium video, no lock, no sheet."""
    from playwright.sync_api import sync_playwright

    from builder import services as svc
    from builder.models import Publication
    from builder.publish import set_premium_free_after

    app = published["app"]
    state = app.extensions["baonhung"]

    def policy(days):
        db = state.sessionmaker()
        try:
            set_premium_free_after(db, state.settings, svc.SYSTEM, db.query(Publication).one(), days)
        finally:
            db.close()

    premium_id, errors, private_urls = published["premium_id"], [], []
    policy(1)
    try:
        with sync_playwright() as pw:
            browser = launch_chromium(pw, clip=published["y4m"])
            try:
                context, page = open_viewer(browser, published, errors, private_urls)
                wait_state(page, "s.overlaysVisible && s.premium.state === 'entitled'", 40)
                wait_state(page, f"s.media.some(m => m.id === '{premium_id}' && m.premium && m.currentTime > 0)", 20)
                assert advances(page, premium_id, premium=True) > 0.3, "the premium video plays, signed out"
                assert not page.evaluate("() => window.__baonhung.premium.badges.some(b => b.visible)")
                assert page.evaluate("() => window.__baonhung.premium.reader.signed_in") is False
                assert any("access=free" in u for u in private_urls if "/pub/p/" in u)
                assert not errors, errors
                context.close()
            finally:
                browser.close()
    finally:
        policy(None)


def test_on_a_390_px_phone_the_lock_badge_stays_whole_on_the_screen(published):
    """The premium teaser sits near the page's right edge in the clip: its centred badge used to run off the screen."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = launch_chromium(pw, clip=published["y4m"])
        try:
            context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True,
                                          device_scale_factor=2)
            page = context.new_page()
            page.goto(f"{published['base']}/v/{published['code']}")
            page.click("#start")
            wait_state(page, "s.premium.state === 'locked' && s.premium.badges.some(b => b.visible)", 40)
            time.sleep(0.5)  # a few frames after it first showed
            box = page.locator(f".lock-badge[data-overlay-id='{published['premium_id']}']").bounding_box()
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "viewer-premium-390.png"))
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390, box
            assert box["y"] >= 0 and box["y"] + box["height"] <= 844, box
        finally:
            browser.close()
