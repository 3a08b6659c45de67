"""What the browser tests share: Debian's Chromium through Playwright, the authoring server (the real app in a
thread, on a temporary data dir and this run's database engine, with the real job queue consumed as ``baonhung serve``
does), its two accounts and the log-in, and the waits the editor's tests use. Modules with a server of their own
(another app, another seed) define their own ``server`` fixture, which takes precedence."""
from __future__ import annotations

import io
import re
import shutil
import subprocess
import threading
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from tests.conftest import make_app

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PASSWORD = "correct horse battery 7"
VIEWPORT = {"width": 1440, "height": 1000}


def page_png() -> bytes:
    """A newspaper-like page: masthead, columns of 'text' lines and two photo blocks (seeded, deterministic)."""
    import random

    rnd = random.Random(2)
    w, h = 1188, 1680  # A3 at ~100 dpi
    img = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(img)
    d.rectangle([40, 40, w - 40, 170], fill=(20, 20, 20))
    d.text((60, 70), "BAO YEN BAI", fill="white")
    for col in range(3):
        x0 = 40 + col * (w - 80) // 3
        for row in range(60):
            y = 200 + row * 24
            d.line([x0 + 10, y, x0 + 10 + rnd.randint(180, 340), y], fill=(60, 60, 60), width=6)
    for box in ([80, 700, 560, 1100], [620, 1200, 1140, 1600]):
        d.rectangle(box, fill=tuple(rnd.randint(40, 200) for _ in range(3)))
        for _ in range(40):
            cx, cy = rnd.randint(box[0], box[2]), rnd.randint(box[1], box[3])
            d.ellipse([cx - 18, cy - 18, cx + 18, cy + 18], fill=tuple(rnd.randint(0, 255) for _ in range(3)))
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


def tiny_mp4(path: Path) -> Path:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        pytest.skip("ffmpeg is not installed")
    subprocess.run([ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=160x90:duration=1",
                    "-pix_fmt", "yuv420p", str(path)], check=True, timeout=60)
    return path


def serve_app(app):
    """``app`` served by werkzeug in a thread on a free loopback port: (base URL, stop())."""
    from werkzeug.serving import make_server

    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()

    def stop():
        httpd.shutdown()
        thread.join(timeout=10)

    return f"http://127.0.0.1:{httpd.server_port}", stop


def app_on(server: dict):
    """Another app on the live server's data directory and database (tests seed content through it)."""
    from builder.bundle import BundleOptions

    return make_app(server["dir"], BUNDLE_OPTIONS=BundleOptions())


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from builder import services as svc
    from builder.bundle import BundleOptions
    from builder.jobs import start_consumer_thread

    data_dir = tmp_path_factory.mktemp("authoring-ui")
    # the real job queue, consumed by a thread as `baonhung serve` does: the editor's page follows the publish job;
    # bundles as the product builds them (compressed)
    app = make_app(data_dir, JOBS_IMMEDIATE=False, BUNDLE_OPTIONS=BundleOptions())
    stop_jobs = start_consumer_thread(app.extensions["baonhung"].jobs)
    session = app.extensions["baonhung"].sessionmaker()
    svc.create_user(session, svc.SYSTEM, "designer@toasoan.vn", "designer", PASSWORD)
    svc.create_user(session, svc.SYSTEM, "editor@toasoan.vn", "editor", PASSWORD)
    session.close()
    url, stop = serve_app(app)
    yield {"url": url, "dir": data_dir, "app": app}
    stop()
    stop_jobs.set()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def wait_until(page, expression: str, arg=None, timeout_s: float = 20.0) -> None:
    """Poll a JS predicate with page.evaluate (wait_for_function evaluates strings, which our CSP forbids)."""
    import time

    deadline = time.monotonic() + timeout_s
    while not page.evaluate(expression, arg):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {expression}")
        page.wait_for_timeout(100)


def wait_saved(page, before: str | None) -> None:
    """Wait for the editor's next completed save (``data-saved`` changes from ``before``, None if unset)."""
    wait_until(page, "(prev) => (document.getElementById('editor').dataset.saved ?? null) !== prev", before)


def log_in(page, base: str, email: str, password: str = PASSWORD) -> None:
    page.goto(base + "/login")
    page.get_by_label(re.compile("Email")).fill(email)
    page.get_by_label(re.compile("Mật khẩu|Password")).fill(password)
    page.locator("form button[type=submit]").click()
    page.wait_for_url(re.compile(r"/$"))
