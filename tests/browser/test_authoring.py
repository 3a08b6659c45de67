"""The authoring UI in real headless Chromium, against a real server (werkzeug in a thread, temp data dir).

One story, as the newsroom lives it: a designer logs in, creates a publication and an edition, uploads a page,
adds a video overlay, drags it into place with the mouse (the mm fields and the saved API values follow),
submits for review and logs out; an editor logs in and publishes. A screenshot of the editor is saved to
``test-artifacts/editor.png``.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from PIL import Image

from tests.browser.conftest import (ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, PASSWORD, VIEWPORT, app_on,  # noqa: F401
                                    log_in, page_png, tiny_mp4, wait_saved, wait_until)

pytestmark = pytest.mark.browser

PAGE_MM = (297.0, 420.0)  # A3
DRAG_PX = (120, 90)  # how far the test drags the video box, in CSS pixels
STOCK_GLB = Path(__file__).resolve().parents[2] / "assets" / "3d" / "arrow.glb"


def test_designer_places_a_video_and_editor_publishes(server, browser, tmp_path):
    base = server["url"]
    png = tmp_path / "trang-1.png"
    png.write_bytes(page_png())
    mp4 = tiny_mp4(tmp_path / "clip.mp4")
    errors: list[str] = []

    context = browser.new_context(viewport=VIEWPORT, locale="vi-VN")
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)

    # --- designer: publication, edition, page --------------------------------------------------------
    log_in(page, base, "designer@toasoan.vn")
    assert page.locator("html").get_attribute("lang") == "vi"
    page.locator(".mainnav a[href='/publications']").click()
    page.wait_for_url(re.compile(r"/publications$"))
    from playwright.sync_api import expect

    page.wait_for_load_state("load")  # forms.js (a deferred module) listens before we type, even on a busy CI box
    page.locator("input[name=name]").fill("Báo Yên Bái")
    expect(page.locator("input[name=slug]")).to_have_value("bao-yen-bai")  # proposed from the name
    page.locator("#new button[type=submit]").click()
    page.wait_for_url(re.compile(r"/publications/bao-yen-bai$"))

    page.locator("input[name=date]").fill("2026-11-26")
    page.locator("input[name=number]").fill("4521")
    page.locator("input[name=title]").fill("Số sáng thứ Năm")
    page.locator("form[action$='/editions'] button[type=submit]").click()
    page.wait_for_url(re.compile(r"/editions/\d+$"))
    edition_url = page.url
    edition_id = int(edition_url.rsplit("/", 1)[1])

    page.locator("#upload-form input[name=image]").set_input_files(str(png))
    page.locator("#preset").select_option("A3")
    page.locator("#upload-form button[type=submit]").click()
    page.wait_for_selector(".page-card")
    assert page.locator(".page-card .stars").count() == 1  # the marker rating is shown right after upload

    # --- editor: add a video, drag it -----------------------------------------------------------------
    page.locator(".page-card a.button[href$='/editor']").click()
    page.wait_for_selector("#editor[data-ready=yes]")
    page.locator("#add-kind").select_option("video")
    page.locator("#add-file").set_input_files(str(mp4))
    page.locator("#add-overlay input[name=name]").fill("Phóng sự")
    page.locator("#add-submit").click()
    page.wait_for_selector("#editor[data-ready=yes] .ovl.kind-video.selected")

    x0 = float(page.locator("#f-x_mm").input_value())
    y0 = float(page.locator("#f-y_mm").input_value())
    w0 = float(page.locator("#f-width_mm").input_value())
    # A new overlay sits in the page centre.
    assert x0 + w0 / 2 == pytest.approx(PAGE_MM[0] / 2, abs=0.2)
    px_per_mm = page.evaluate("document.getElementById('stage').clientWidth") / PAGE_MM[0]

    box = page.locator(".ovl.kind-video").bounding_box()
    start = (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(start[0] + DRAG_PX[0], start[1] + DRAG_PX[1], steps=12)
    page.mouse.up()
    page.wait_for_selector("#editor[data-saved]")

    x1 = float(page.locator("#f-x_mm").input_value())
    y1 = float(page.locator("#f-y_mm").input_value())
    assert x1 - x0 == pytest.approx(DRAG_PX[0] / px_per_mm, abs=0.3)
    assert y1 - y0 == pytest.approx(DRAG_PX[1] / px_per_mm, abs=0.3)

    overlay_id = int(page.locator(".ovl.kind-video").get_attribute("data-id"))
    saved = page.request.get(f"{base}/api/v1/overlays/{overlay_id}").json()
    assert saved["x_mm"] == pytest.approx(x1, abs=0.05)
    assert saved["y_mm"] == pytest.approx(y1, abs=0.05)
    assert saved["kind"] == "video" and saved["poster_url"]

    # The corner handle resizes (top-left corner stays put when unrotated) ...
    def drag(locator, dx, dy):
        b = locator.bounding_box()
        cx, cy = b["x"] + b["width"] / 2, b["y"] + b["height"] / 2
        page.mouse.move(cx, cy)
        page.mouse.down()
        page.mouse.move(cx + dx, cy + dy, steps=8)
        page.mouse.up()

    saves = page.locator("#editor").get_attribute("data-saved")
    w1, h1 = float(page.locator("#f-width_mm").input_value()), float(page.locator("#f-height_mm").input_value())
    drag(page.locator(".ovl.kind-video .h-resize"), 60, 30)
    wait_saved(page, saves)
    assert float(page.locator("#f-width_mm").input_value()) - w1 == pytest.approx(60 / px_per_mm, abs=0.3)
    # the box keeps the 16:9 shape of its file while its proportions are locked (issue 24)
    assert float(page.locator("#f-height_mm").input_value()) - h1 == pytest.approx(60 / px_per_mm * 9 / 16, abs=0.3)
    assert float(page.locator("#f-x_mm").input_value()) == pytest.approx(x1, abs=0.15)
    # ... and the round handle rotates: dragged to the right of the centre is a quarter turn clockwise.
    saves = page.locator("#editor").get_attribute("data-saved")
    vb = page.locator(".ovl.kind-video").bounding_box()
    hb = page.locator(".ovl.kind-video .h-rotate").bounding_box()
    centre = (vb["x"] + vb["width"] / 2, vb["y"] + vb["height"] / 2)
    page.mouse.move(hb["x"] + hb["width"] / 2, hb["y"] + hb["height"] / 2)
    page.mouse.down()
    page.mouse.move(centre[0] + 150, centre[1], steps=10)
    page.mouse.up()
    wait_saved(page, saves)
    assert float(page.locator("#f-rotation_deg").input_value()) == pytest.approx(90, abs=1.5)
    assert page.request.get(f"{base}/api/v1/overlays/{overlay_id}").json()["rotation_deg"] == pytest.approx(90, abs=1.5)

    # Typing in a field moves the box too (both ways in sync), and is saved.
    page.locator("#f-rotation_deg").fill("12")
    page.locator("#f-rotation_deg").dispatch_event("change")
    wait_until(page, "(id) => fetch(`/api/v1/overlays/${id}`).then(r => r.json()).then(o => o.rotation_deg === 12)",
               overlay_id)
    transform = page.locator(".ovl.kind-video").evaluate("el => el.style.transform")
    assert transform == "rotate(12deg)"

    # A box dragged off the page is refused by the server: the reason is shown and the box goes back.
    before = page.request.get(f"{base}/api/v1/overlays/{overlay_id}").json()
    off_page_mm = before["x_mm"] + before["width_mm"] / 2 + 40  # the centre ends 40 mm left of the page
    drag(page.locator(".ovl.kind-video"), -off_page_mm * px_per_mm, 0)
    page.wait_for_selector("#editor[data-refused]")
    assert "tâm của lớp phủ phải nằm trên trang" in page.locator("#save-state").inner_text()
    assert float(page.locator("#f-x_mm").input_value()) == pytest.approx(before["x_mm"], abs=0.05)
    assert page.request.get(f"{base}/api/v1/overlays/{overlay_id}").json()["x_mm"] == before["x_mm"]

    # A stock 3D model: previewed with three.js served from our own server through the import map.
    page.locator("#add-kind").select_option("model3d")
    page.locator("#add-file").set_input_files(str(STOCK_GLB))  # previewed before it is uploaded
    page.wait_for_selector("#preview3d[data-shown='new'] canvas")
    page.locator("#add-overlay input[name=source][value=stock]").check()
    page.locator("#add-overlay select[name=stock]").select_option("pin")
    page.locator("#add-submit").click()
    page.wait_for_selector("#editor[data-ready=yes] .ovl.kind-model3d.selected")
    model_id = page.locator(".ovl.kind-model3d").get_attribute("data-id")
    page.wait_for_selector(f"#preview3d[data-shown='{model_id}'] canvas")
    assert page.request.get(f"{base}/api/v1/overlays/{model_id}").json()["stock"] == "pin"  # not the file
    assert page.locator(".ovl").count() == 2

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "editor.png"), full_page=True)

    # Size check: the page is packed as publishing would, then sizes against the budgets (in Vietnamese).
    page.locator("#size-check").click()
    page.wait_for_selector("#size-report[data-state=done]", timeout=120_000)
    full = page.locator("#size-report .size-meter[data-variant=full]").inner_text()
    assert "Gói đầy đủ" in full and re.search(r"(\d+\.\d|< 0\.1) MB / 8\.0 MB", full), full
    assert page.locator("#size-report .size-contributors li").count() >= 1
    assert not page.locator("#size-progress").is_visible() and page.locator("#size-check").is_enabled()
    page.locator("#size-card").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "editor-size.png"))

    # Over budget (answer stubbed: a real one needs megabytes of media) is highlighted; a refusal is explained.
    over = {"full_bytes": 6_100_000, "lite_bytes": 3_150_000, "streamed_media_bytes": 0, "other_media_bytes": 0,
            "budget_full_bytes": 8_000_000, "budget_lite_bytes": 2_000_000,
            "contributors": [{"label": f"overlay {model_id} (model3d)", "bytes": 2_900_000}],
            "warnings": [{"code": "over_budget", "message": "lite over", "variant": "lite", "bytes": 3_150_000,
                          "budget": 2_000_000, "biggest": []}]}
    page.route("**/bundle-check", lambda route: route.fulfill(json=over))
    page.locator("#size-check").click()
    page.wait_for_selector("#size-report[data-over=yes]")
    assert page.locator(".size-meter.over").count() == 1
    assert "3.1 MB / 2.0 MB" in page.locator(".size-meter.over[data-variant=lite]").inner_text()
    assert page.locator(".size-warnings li.over").inner_text() == "Gói nhẹ nặng 3.1 MB, vượt hạn mức 2.0 MB."
    assert page.locator(".size-contributors .c-label").inner_text() == "Mô hình 3D"  # the overlay, by name
    page.screenshot(path=str(ARTIFACTS / "editor-size-over.png"))
    page.unroute("**/bundle-check")
    page.route("**/bundle-check", lambda route: route.fulfill(
        status=422, json={"error": "bundle_failed", "message": "Không đóng gói được trang"}))
    page.locator("#size-check").click()
    page.wait_for_selector("#size-report[data-state=failed]")
    assert "Không đóng gói được trang" in page.locator("#size-state").inner_text()
    page.unroute("**/bundle-check")

    # A panorama that is not 2:1 is accepted with a warning, shown with it in the overlay list.
    pano = tmp_path / "pano.png"
    Image.new("RGB", (300, 200), (90, 140, 200)).save(pano)
    page.locator("#add-kind").select_option("panorama360")
    page.locator("#add-file").set_input_files(str(pano))
    page.locator("#add-submit").click()
    page.wait_for_selector("#editor[data-ready=yes] .ovl.kind-panorama360.selected")
    warning = page.locator("#overlay-list .ovl-warnings li[data-code=not_equirectangular]")
    assert warning.inner_text().startswith("Ảnh toàn cảnh không theo tỉ lệ 2:1 (300×200 px)")
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#delete-overlay").click()
    page.wait_for_selector(".ovl.kind-panorama360", state="detached")

    # Green screen on: the option is saved from the side panel.
    page.locator("#overlay-list button", has_text="Phóng sự").click()
    saves = page.locator("#editor").get_attribute("data-saved")
    page.locator("#f-use_chroma").check()
    wait_saved(page, saves)
    assert page.request.get(f"{base}/api/v1/overlays/{overlay_id}").json()["options"]["chroma_key"] == "#00ff00"
    saves = page.locator("#editor").get_attribute("data-saved")
    page.locator("#f-name").fill("Phóng sự lũ")
    page.locator("#f-name").dispatch_event("change")
    wait_saved(page, saves)
    assert page.locator(".ovl.kind-video .ovl-label").inner_text().endswith("Phóng sự lũ")  # the box follows

    # Preview mode: no handles, no side panels; the video shows its poster, and plays keyed on a tap.
    page.locator("#preview-toggle").click()
    assert not page.locator(".ovl.kind-video .h-resize").is_visible()
    assert not page.locator("#placement-card").is_visible()
    assert page.locator(".ovl.kind-video img.ovl-media").is_visible()
    page.locator(".ovl.kind-video").click()
    # testsrc2 has a pure green bar: some pixels of the keyed frame are transparent, most are not.
    wait_until(page, """() => {
        const c = document.querySelector('.ovl.kind-video canvas');
        if (!c || !c.width) return false;
        const a = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let clear = 0;
        for (let i = 3; i < a.length; i += 4) if (a[i] < 128) clear++;
        const share = clear / (a.length / 4);
        return share > 0.03 && share < 0.5;
    }""")

    page.locator("#heatmap-toggle").click()
    assert page.locator("#stage img.heatmap").is_visible()

    # A page that shares an area with a published page (its rating says which, in page mm): outlined on demand.
    page_id = int(re.search(r"/pages/(\d+)/", page.url).group(1))
    from builder.models import Page

    with server["app"].extensions["baonhung"].sessionmaker() as db:  # SQLite or PostgreSQL, as the run tests
        row = db.get(Page, page_id)
        rating = json.loads(json.dumps(row.rating))
        rating["confusable"] = [{"page_id": 90, "edition_id": 9, "score": 0.2, "region_mm": [0, 0, 50, 50]},
                                {"page_id": 91, "edition_id": 9, "score": 0.64, "region_mm": [20, 20, 257, 55]}]
        row.rating = rating
        db.commit()
    page.goto(f"{base}/pages/{page_id}/editor?shared=1")  # as linked from the edition page: already shown
    page.wait_for_selector("#editor[data-ready=yes]")
    assert page.locator("#confusable-toggle").get_attribute("aria-pressed") == "true"
    region = page.locator("#stage .confusable-region")
    assert region.is_visible() and "#91 (64%)" in region.inner_text()  # the most similar page
    stage_box, box = page.locator("#stage").bounding_box(), region.bounding_box()
    assert (box["x"] - stage_box["x"]) / px_per_mm == pytest.approx(20, abs=0.5)
    assert box["width"] / px_per_mm == pytest.approx(257, abs=0.5)
    page.screenshot(path=str(ARTIFACTS / "editor-shared-area.png"))
    page.locator("#confusable-toggle").click()
    assert not region.is_visible()

    # Back to editing: delete the 3D model (after confirming).
    page.locator("button.seg[data-mode=edit]").click()
    page.locator(".ovl.kind-model3d").click()
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#delete-overlay").click()
    page.wait_for_selector(".ovl.kind-model3d", state="detached")
    assert page.request.get(f"{base}/api/v1/overlays/{model_id}").status == 404

    # --- submit, log out -------------------------------------------------------------------------------
    page.goto(edition_url)
    page.locator("#submit-review").click()
    page.wait_for_selector("#edition-status[data-status=in_review]")
    page.locator("form[action='/logout'] button").click()
    page.wait_for_url(re.compile(r"/login"))

    # --- editor publishes --------------------------------------------------------------------------------
    log_in(page, base, "editor@toasoan.vn")
    page.goto(edition_url)
    page.locator("#publish").click()
    page.wait_for_selector("#job")  # answered at once: the job's card, its progress polled by job.js
    assert page.locator("#publish").count() == 0  # no second publish while the job runs
    page.wait_for_selector("#edition-status[data-published=yes], .flash.error, #job[data-status=failed]",
                           timeout=90_000)
    assert page.locator(".flash.error, #job[data-status=failed]").count() == 0, page.locator("#job").inner_text()
    assert "Đã xuất bản thành phiên bản 1." in page.locator("#job-text").inner_text()
    edition = page.request.get(f"{base}/api/v1/editions/{edition_id}").json()
    assert edition["published"] is True and edition["published_version"] == 1

    context.close()
    expected = ("status of 400", "status of 422")  # the refused off-page drag and the stubbed size check, on purpose
    assert not [e for e in errors if not any(x in e for x in expected)], errors


def test_print_desk_downloads_the_edition_sheet_and_a_qr_code(server, browser, tmp_path):
    from builder import services as svc
    from builder.publish import publish_edition

    app = app_on(server)
    if not any(rule.rule.endswith("/sheet.pdf") for rule in app.url_map.iter_rules()):
        pytest.skip("the print desk API (sheet.pdf, qr.*) is not there yet")
    state = app.extensions["baonhung"]
    db = state.sessionmaker()
    svc.create_user(db, svc.SYSTEM, "in@toasoan.vn", "print_desk", PASSWORD)
    pub = svc.create_publication(db, svc.SYSTEM, {"name": "Báo In Thử", "slug": "bao-in-thu"})
    edition = svc.create_edition(db, svc.SYSTEM, pub, {"date": "2026-11-27", "number": 7, "title": "In thử"})
    page_row = svc.add_page(db, state.store, state.limits, svc.SYSTEM, edition, page_png(), "trang.png",
                            {"preset": "A3"})
    svc.submit_for_review(db, svc.SYSTEM, edition)
    publish_edition(db, state.store, state.settings, svc.SYSTEM, edition)
    edition_id, page_id = edition.id, page_row.id
    db.close()

    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(30_000)
    log_in(page, server["url"], "in@toasoan.vn")
    page.locator(".mainnav a[href='/print']").click()
    page.locator("#print-options select[name=paper]").select_option("A3")
    page.locator("#print-options input[name=size_mm]").fill("18")
    page.locator("#print-options button[type=submit]").click()
    page.wait_for_url(re.compile(r"paper=A3"))

    with page.expect_download() as sheet:
        # the sheet carries the QR size and level picked above (issue 24)
        page.locator(f"#edition-{edition_id} a[href='/api/v1/editions/{edition_id}/sheet.pdf"
                     f"?paper=A3&size_mm=18&ecc=M']").click()
    sheet_path = tmp_path / "sheet.pdf"
    sheet.value.save_as(sheet_path)
    assert sheet_path.read_bytes().startswith(b"%PDF")

    with page.expect_download() as qr:
        page.locator(f"a[href^='/api/v1/pages/{page_id}/qr.svg?size_mm=18&ecc=M']").click()
    qr_path = tmp_path / "qr.svg"
    qr.value.save_as(qr_path)
    assert b"<svg" in qr_path.read_bytes()[:500]

    with page.expect_download() as test_sheet:
        page.locator(f"a[href='/api/v1/pages/{page_id}/marker-sheet.pdf?paper=A3']").click()
    test_sheet_path = tmp_path / "test-sheet.pdf"
    test_sheet.value.save_as(test_sheet_path)
    assert test_sheet_path.read_bytes().startswith(b"%PDF")
    context.close()
