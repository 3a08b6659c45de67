"""The print desk in real headless Chromium: log in, open the print desk, download the edition sheet; every QR on
it (rasterized at 300 dpi by pdftoppm, decoded by zxing-cpp) is the page's deep link, and that link opens the
viewer on the right edition while an unknown code gets a friendly bilingual 404."""
from __future__ import annotations

import subprocess
import threading

import cv2
import pytest

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
PASSWORD = "correct horse battery 9"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from werkzeug.serving import make_server

    from builder import services as svc
    from builder.config import Settings
    from builder.demo import seed_demo
    from tests.conftest import make_app

    data_dir = tmp_path_factory.mktemp("print-desk")
    app = make_app(data_dir)
    db = app.extensions["baonhung"].sessionmaker()
    svc.create_user(db, svc.SYSTEM, "in@toasoan.vn", "print_desk", PASSWORD)
    demo = seed_demo(db, Settings.from_env({"BAONHUNG_DATA_DIR": str(data_dir)}))
    db.close()
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}", demo
    httpd.shutdown()


def test_print_desk_downloads_an_edition_sheet_whose_qr_opens_the_edition(server, tmp_path, artifacts_dir):
    from playwright.sync_api import sync_playwright

    import zxingcpp

    base, demo = server
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(accept_downloads=True)
        page.goto(f"{base}/login")
        page.fill("input[name=email]", "in@toasoan.vn")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.goto(f"{base}/print")
        link = page.locator(f"#edition-{demo.edition_id} a[href*='/editions/'][href*='/sheet.pdf']")
        with page.expect_download() as info:
            link.click()
        pdf = tmp_path / "sheet.pdf"
        info.value.save_as(pdf)
        page.screenshot(path=str(artifacts_dir / "print_desk.png"), full_page=True)

        assert pdf.read_bytes()[:5] == b"%PDF-"
        subprocess.run(["pdftoppm", "-r", "300", "-png", "-f", "1", "-l", "1", "-singlefile", str(pdf),
                        str(tmp_path / "sheet")], check=True, timeout=120)
        raster = cv2.imread(str(tmp_path / "sheet.png"), cv2.IMREAD_GRAYSCALE)
        texts = {r.text for r in zxingcpp.read_barcodes(raster)}
        page_url = next(t for t in texts if t.endswith("/v/" + _page_code(base, demo)))
        assert page_url.startswith(base)

        viewer = browser.new_page()
        assert viewer.goto(page_url).status == 200
        missing = viewer.goto(f"{base}/v/ZZZZZZZ")
        assert missing.status == 404
        body = viewer.locator("body").inner_text()
        assert "Không tìm thấy" in body or "không tồn tại" in body.lower() or "not found" in body.lower()
        assert "Traceback" not in body
        browser.close()


def _page_code(base: str, demo) -> str:
    import json
    import urllib.request

    with urllib.request.urlopen(f"{base}/pub/pages/{demo.page_id}/manifest.json") as resp:
        return json.load(resp)["code"]
