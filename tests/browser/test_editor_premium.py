"""Issue 27 in real headless Chromium: a designer makes a 3D model premium in the editor — the lock shows on the canvas
and in the 3D preview, the teaser choice explains what readers without a subscription see — and a reload keeps it.
Screenshots in test-artifacts/editor-premium*.png."""
from __future__ import annotations

import pytest

from tests.browser.conftest import (ARTIFACTS, VIEWPORT, app_on, log_in, page_png, tiny_mp4, wait_saved,  # noqa: F401
                                    wait_until)

pytestmark = pytest.mark.browser
# Pixels of the 3D preview in the lock's colour (app.css --premium, #8a5a00), give or take antialiasing.
LOCK_PIXELS_JS = """(() => {
  const gl = document.querySelector('#preview3d canvas');
  const c = Object.assign(document.createElement('canvas'), {width: gl.width, height: gl.height});
  const ctx = c.getContext('2d');
  ctx.drawImage(gl, 0, 0);
  const px = ctx.getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 0; i < px.length; i += 4) {
    if (Math.abs(px[i] - 138) < 20 && Math.abs(px[i + 1] - 90) < 20 && px[i + 2] < 30) n++;
  }
  return n;
})()"""


def test_a_designer_makes_an_overlay_premium_and_the_lock_stays_after_a_reload(server, browser, tmp_path):
    from builder import services as svc

    base = server["url"]
    app = app_on(server)
    state = app.extensions["baonhung"]
    db = state.sessionmaker()
    pub = svc.create_publication(db, svc.SYSTEM, {"name": "Báo Trả Phí", "slug": "bao-tra-phi"})
    edition = svc.create_edition(db, svc.SYSTEM, pub, {"date": "2026-12-07", "number": 27, "title": "Trả phí"})
    page_row = svc.add_page(db, state.store, state.limits, svc.SYSTEM, edition, page_png(), "trang.png",
                            {"preset": "A3"})
    model = svc.add_overlay(db, state.store, state.limits, svc.SYSTEM, page_row,
                            {"kind": "model3d", "stock": "pin", "name": "Ghim", "x_mm": 100, "y_mm": 150,
                             "width_mm": 80, "height_mm": 80})
    video = svc.add_overlay(db, state.store, state.limits, svc.SYSTEM, page_row,
                            {"kind": "video", "x_mm": 150, "y_mm": 300, "width_mm": 80},
                            tiny_mp4(tmp_path / "clip.mp4").read_bytes(), "clip.mp4")
    page_id, model_id, video_id = page_row.id, model.id, video.id
    db.close()
    errors: list[str] = []

    context = browser.new_context(viewport=VIEWPORT, locale="vi-VN")
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    log_in(page, base, "designer@toasoan.vn")
    page.goto(f"{base}/pages/{page_id}/editor?selected={model_id}")
    page.wait_for_selector("#editor[data-ready=yes]")
    box = page.locator(f".ovl[data-id='{model_id}']")
    assert box.locator(".ovl-lock").count() == 0 and page.locator("#f-access-free").is_checked()
    assert page.locator("#f-teaser").is_hidden()  # a free overlay has no teaser to choose

    # "Dành cho bạn đọc đăng ký": the lock is on the box, the teaser is the model's default (a blurred still) and
    # one line says what readers without a subscription see.
    saves = page.locator("#editor").get_attribute("data-saved")
    page.get_by_role("radio", name="Dành cho bạn đọc đăng ký").check()
    wait_saved(page, saves)
    lock = box.locator(".ovl-lock")
    assert lock.is_visible() and lock.inner_text() == "Dành cho bạn đọc đăng ký"
    teaser = page.locator("#f-teaser")
    assert teaser.is_visible() and teaser.input_value() == "blur"
    assert teaser.locator("option[value=poster]").is_disabled()  # a stock model has no poster to show
    assert page.locator("#teaser-hint").inner_text() == "Bạn đọc chưa đăng ký thấy ảnh mờ của mô hình kèm ổ khóa."
    assert page.locator("#f-teaser_seconds").is_hidden()  # seconds are for a clip only
    page.wait_for_selector(f"#preview3d[data-shown='{model_id}'][data-locked=yes] canvas")
    wait_until(page, LOCK_PIXELS_JS + " > 200")  # the lock label is drawn in the 3D preview, in its colour
    saved = page.request.get(f"{base}/api/v1/overlays/{model_id}").json()
    assert (saved["access"], saved["teaser"]) == ("premium", "blur")
    page.screenshot(path=str(ARTIFACTS / "editor-premium.png"))
    page.locator("#access-fields").screenshot(path=str(ARTIFACTS / "editor-premium-access.png"))
    page.locator("#preview3d-card").screenshot(path=str(ARTIFACTS / "editor-premium-3d.png"))

    # A reload keeps it: the lock on the canvas, the choice in the form, the mark in the list.
    page.reload()
    page.wait_for_selector("#editor[data-ready=yes]")
    assert page.locator(f".ovl[data-id='{model_id}'] .ovl-lock").is_visible()
    assert page.locator("#f-access-premium").is_checked()
    assert page.locator("#overlay-list .lock-mark").count() == 1

    # A premium video: its clip's length is asked for and explained; its poster frame needs no seconds.
    page.locator(f".ovl[data-id='{video_id}']").click()
    saves = page.locator("#editor").get_attribute("data-saved")
    page.get_by_role("radio", name="Dành cho bạn đọc đăng ký").check()
    wait_saved(page, saves)
    assert teaser.input_value() == "clip" and page.locator("#f-teaser_seconds").input_value() == "5"
    saves = page.locator("#editor").get_attribute("data-saved")
    page.locator("#f-teaser_seconds").fill("8")
    page.locator("#f-teaser_seconds").dispatch_event("change")
    wait_saved(page, saves)
    assert page.locator("#teaser-hint").inner_text() == "Bạn đọc chưa đăng ký xem 8 giây đầu của video, rồi thấy ổ khóa."
    saves = page.locator("#editor").get_attribute("data-saved")
    teaser.select_option("poster")
    wait_saved(page, saves)
    assert page.locator("#f-teaser_seconds").is_hidden()
    saved = page.request.get(f"{base}/api/v1/overlays/{video_id}").json()
    assert (saved["access"], saved["teaser"], saved["teaser_seconds"]) == ("premium", "poster", 8)
    page.locator(f".ovl[data-id='{model_id}']").click()

    # Free again: the lock goes, and stays gone (in the 3D preview too).
    saves = page.locator("#editor").get_attribute("data-saved")
    page.get_by_role("radio", name="Miễn phí").check()
    wait_saved(page, saves)
    page.wait_for_selector(f"#preview3d[data-shown='{model_id}'][data-locked=no] canvas")
    wait_until(page, LOCK_PIXELS_JS + " < 20")
    page.reload()
    page.wait_for_selector("#editor[data-ready=yes]")
    assert page.locator(f".ovl[data-id='{model_id}'] .ovl-lock").count() == 0
    assert page.locator(f".ovl[data-id='{video_id}'] .ovl-lock").is_visible()
    assert page.request.get(f"{base}/api/v1/overlays/{model_id}").json()["access"] == "free"
    context.close()
    assert not errors, errors
