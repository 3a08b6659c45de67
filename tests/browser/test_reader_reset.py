"""The reader's password-reset page (issue 27) in real headless Chromium against a real server: the link comes from
a real SMTP server (aiosmtpd on loopback); the page's script runs under its CSP (no inline script, no console error
or CSP violation), refuses two different passwords, sets the new one with the CSRF header and takes the token out of
the address bar. Screenshot: ``test-artifacts/reader-reset-done.png`` (a phone's 390×844)."""
from __future__ import annotations

import re
import threading
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.browser.conftest import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS

pytestmark = pytest.mark.browser

OLD, NEW = "mat-khau-ban-doc-1", "mat-khau-moi-that-dai"


def test_a_reader_sets_a_new_password_from_the_mailed_link(tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed")
    from playwright.sync_api import sync_playwright
    from werkzeug.serving import make_server

    from builder.config import Settings
    from tests.conftest import make_app
    from tests.web.smtp_server import smtp_server

    with smtp_server() as (inbox, port):
        settings = replace(Settings.from_env({"BAONHUNG_DATA_DIR": str(tmp_path / "d")}), smtp_host="127.0.0.1",
                           smtp_port=port, smtp_tls="none")
        app = make_app(tmp_path / "d", SETTINGS=settings)
        client = app.test_client()
        client.get("/api/v1/reader/me")
        csrf = {"X-CSRF-Token": client.get_cookie("baonhung_reader_csrf").value}
        assert client.post("/api/v1/reader/signup?lang=en", json={"email": "ban.doc@example.vn", "password": OLD},
                           headers=csrf).status_code == 201
        assert client.post("/api/v1/reader/password-reset", json={"email": "ban.doc@example.vn"},
                           headers=csrf).status_code == 202
        [(_, _, message)] = inbox.wait_for(1)
    link = urlsplit(re.search(r"(http://\S+/reader/reset\?\S+)", message.get_content()).group(1))

    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    problems: list[str] = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            try:
                page = browser.new_page(viewport={"width": 390, "height": 844})
                page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
                page.on("pageerror", lambda e: problems.append(str(e)))
                page.goto(f"http://127.0.0.1:{httpd.server_port}{link.path}?{link.query}")
                page.wait_for_function("() => !location.search.includes('token=')")  # the script ran
                assert page.locator("h1").inner_text() == "Choose a new password"
                page.fill("#password", NEW)
                page.fill("#again", NEW + "x")
                page.click("button[type=submit]")
                assert page.locator("#outcome").inner_text() == "The two passwords differ."
                page.fill("#again", NEW)
                page.click("button[type=submit]")
                page.wait_for_selector("#outcome[data-kind=done]")
                assert "Sign in again" in page.locator("#outcome").inner_text()
                assert page.locator("#back").is_visible() and not page.locator("#reset-form").is_visible()
                ARTIFACTS.mkdir(exist_ok=True)
                page.screenshot(path=str(ARTIFACTS / "reader-reset-done.png"))
            finally:
                browser.close()
    finally:
        httpd.shutdown()
        thread.join(timeout=10)
    assert problems == []
    assert client.post("/api/v1/reader/signin", json={"email": "ban.doc@example.vn", "password": NEW},
                       headers=csrf).status_code == 200
