"""Issue 24 in real headless Chromium: a video box in its file's shape with a lock on its proportions, deleting an
overlay (asked first, said after, gone from the URL), saving without console errors, and the review round trip (the
editor's buttons in line, the designer's dashboard showing the comment). Screenshots in test-artifacts/."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.browser.conftest import (ARTIFACTS, PASSWORD, VIEWPORT, app_on, log_in, page_png,  # noqa: F401
                                    tiny_mp4, wait_saved, wait_until)

pytestmark = pytest.mark.browser


def clip_4x3(path: Path) -> Path:
    import shutil
    import subprocess

    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed")
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=160x120:duration=1",
                    "-pix_fmt", "yuv420p", str(path)], check=True, timeout=60)
    return path


def box_mm(page, px_per_mm: float) -> tuple[float, float]:
    b = page.locator(".ovl.kind-video").evaluate("el => [el.offsetWidth, el.offsetHeight]")
    return b[0] / px_per_mm, b[1] / px_per_mm


def drag(page, locator, dx, dy):
    b = locator.bounding_box()
    cx, cy = b["x"] + b["width"] / 2, b["y"] + b["height"] / 2
    page.mouse.move(cx, cy)
    page.mouse.down()
    page.mouse.move(cx + dx, cy + dy, steps=8)
    page.mouse.up()


def test_a_video_box_keeps_its_files_shape_and_an_overlay_is_deleted_with_care(server, browser, tmp_path):
    from builder import services as svc

    base = server["url"]
    app = app_on(server)
    state = app.extensions["baonhung"]
    db = state.sessionmaker()
    pub = svc.create_publication(db, svc.SYSTEM, {"name": "Báo Hình Dạng", "slug": "bao-hinh-dang"})
    edition = svc.create_edition(db, svc.SYSTEM, pub, {"date": "2026-11-28", "number": 12, "title": "Thử"})
    page_row = svc.add_page(db, state.store, state.limits, svc.SYSTEM, edition, page_png(), "trang.png",
                            {"preset": "A3"})
    page_id = page_row.id
    db.close()
    mp4 = clip_4x3(tmp_path / "four-three.mp4")
    errors: list[str] = []
    dialogs: list[str] = []

    context = browser.new_context(viewport=VIEWPORT, locale="vi-VN")
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    log_in(page, base, "designer@toasoan.vn")
    page.goto(f"{base}/pages/{page_id}/editor")
    page.wait_for_selector("#editor[data-ready=yes]")
    page.locator("#add-kind").select_option("video")
    page.locator("#add-file").set_input_files(str(mp4))
    page.locator("#add-overlay input[name=name]").fill("Phỏng vấn")
    page.locator("#add-submit").click()
    page.wait_for_selector("#editor[data-ready=yes] .ovl.kind-video.selected")
    px_per_mm = page.evaluate("document.getElementById('stage').clientWidth") / 297.0

    # The new box has the file's 4:3 shape, and the lock says so.
    w, h = float(page.locator("#f-width_mm").input_value()), float(page.locator("#f-height_mm").input_value())
    assert h / w == pytest.approx(0.75, rel=0.01)
    lock = page.locator("#aspect-lock")
    assert lock.is_visible() and lock.get_attribute("aria-pressed") == "true" and "4:3" in lock.inner_text()

    # Resizing by the corner keeps it, even when the pointer moves mostly sideways ...
    saves = page.locator("#editor").get_attribute("data-saved")
    drag(page, page.locator(".ovl.kind-video .h-resize"), 80, 5)
    wait_saved(page, saves)
    w2, h2 = float(page.locator("#f-width_mm").input_value()), float(page.locator("#f-height_mm").input_value())
    assert w2 > w + 10 and h2 / w2 == pytest.approx(0.75, rel=0.01)
    assert box_mm(page, px_per_mm)[1] / box_mm(page, px_per_mm)[0] == pytest.approx(0.75, rel=0.02)
    # ... and so does typing a width.
    saves = page.locator("#editor").get_attribute("data-saved")
    page.locator("#f-width_mm").fill("120")
    page.locator("#f-width_mm").dispatch_event("change")
    wait_saved(page, saves)
    assert float(page.locator("#f-height_mm").input_value()) == 90
    overlay_id = int(page.locator(".ovl.kind-video").get_attribute("data-id"))
    saved = page.request.get(f"{base}/api/v1/overlays/{overlay_id}").json()
    assert (saved["width_mm"], saved["height_mm"]) == (120, 90)
    page.locator("#placement-card").screenshot(path=str(ARTIFACTS / "editor-aspect-locked.png"))

    # Unlocked, the designer may stretch it.
    lock.click()
    assert lock.get_attribute("aria-pressed") == "false"
    saves = page.locator("#editor").get_attribute("data-saved")
    drag(page, page.locator(".ovl.kind-video .h-resize"), 0, 60)
    wait_saved(page, saves)
    w3, h3 = float(page.locator("#f-width_mm").input_value()), float(page.locator("#f-height_mm").input_value())
    assert h3 / w3 > 0.8
    page.screenshot(path=str(ARTIFACTS / "editor-aspect-unlocked.png"))

    # Saving a video (no 3D scale field shown) logs no "invalid form control ... not focusable".
    saves = page.locator("#editor").get_attribute("data-saved")
    page.locator("#save-overlay").click()
    wait_saved(page, saves)

    # Deleting asks first, naming the overlay; "cancel" keeps it.
    def answer(dialog, accept):
        dialogs.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    page.once("dialog", lambda d: answer(d, False))
    page.locator("#delete-overlay").click()
    wait_until(page, "() => true")
    assert dialogs and "Phỏng vấn" in dialogs[-1] and page.locator(".ovl.kind-video").count() == 1
    page.once("dialog", lambda d: answer(d, True))
    page.locator("#delete-overlay").click()
    page.wait_for_selector(".ovl.kind-video", state="detached")
    assert page.request.get(f"{base}/api/v1/overlays/{overlay_id}").status == 404
    notice = page.locator("#save-state")
    assert notice.is_visible() and "Đã xóa lớp phủ “Video · Phỏng vấn”" in notice.inner_text()
    assert "selected=" not in page.url  # a reload must not look for the deleted overlay
    page.locator("#placement-card").screenshot(path=str(ARTIFACTS / "editor-deleted.png"))

    # A stale link to a deleted overlay is cleaned from the address bar too.
    page.goto(f"{base}/pages/{page_id}/editor?selected={overlay_id}")
    page.wait_for_selector("#editor[data-ready=yes]")
    assert "selected=" not in page.url

    context.close()
    assert not errors, errors


def test_the_review_buttons_line_up_and_the_designer_sees_the_comment(server, browser):
    from builder import services as svc

    base = server["url"]
    app = app_on(server)
    state = app.extensions["baonhung"]
    db = state.sessionmaker()
    pub = svc.create_publication(db, svc.SYSTEM, {"name": "Báo Duyệt", "slug": "bao-duyet"})
    edition = svc.create_edition(db, svc.SYSTEM, pub, {"date": "2026-11-29", "number": 13, "title": "Duyệt"})
    svc.add_page(db, state.store, state.limits, svc.SYSTEM, edition, page_png(), "trang.png", {"preset": "A3"})
    svc.submit_for_review(db, svc.SYSTEM, edition)
    edition_id = edition.id
    db.close()
    errors: list[str] = []

    context = browser.new_context(viewport=VIEWPORT, locale="vi-VN")
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    log_in(page, base, "editor@toasoan.vn")
    page.goto(f"{base}/editions/{edition_id}")
    publish = page.locator("#publish").bounding_box()
    send_back = page.locator("form.sendback button[type=submit]").bounding_box()
    comment = page.locator("form.sendback input[name=comment]").bounding_box()
    assert send_back["height"] == pytest.approx(publish["height"], abs=1)  # same size and on one line
    assert send_back["y"] == pytest.approx(publish["y"], abs=1)
    assert comment["y"] + comment["height"] == pytest.approx(send_back["y"] + send_back["height"], abs=1)
    page.locator(".actions-card").screenshot(path=str(ARTIFACTS / "review-card.png"))
    page.set_viewport_size({"width": 390, "height": 844})  # a phone: still tidy when wrapped
    page.locator(".actions-card").screenshot(path=str(ARTIFACTS / "review-card-phone.png"))
    page.set_viewport_size(VIEWPORT)

    page.locator("form.sendback input[name=comment]").fill("Trang 1: thay ảnh bị mờ")
    page.locator("form.sendback button[type=submit]").click()
    page.wait_for_selector("#edition-status[data-status=draft]")
    page.locator("form[action='/logout'] button").click()
    page.wait_for_url(re.compile(r"/login"))

    log_in(page, base, "designer@toasoan.vn")
    sent_back = page.locator("#sent-back")
    assert sent_back.is_visible() and "Trang 1: thay ảnh bị mờ" in sent_back.inner_text()
    assert sent_back.locator(f"a[href='/editions/{edition_id}']").is_visible()
    page.screenshot(path=str(ARTIFACTS / "dashboard-sent-back.png"))
    context.close()
    assert not errors, errors
