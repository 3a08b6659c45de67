"""The editor's edition page follows a publish job (issue 28, builder/static/job.js): queued, then page by page as
the worker reports, then the page reloads on the result. The job's progress is set in its row between two polls, so
each step is seen; the publish itself is a real one (builder.jobs.run_job)."""
from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, PASSWORD, log_in, wait_until
from tests.conftest import auth, make_app, png_bytes


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The newsroom app with the real queue and no consumer: the test plays the worker."""
    from werkzeug.serving import make_server

    from builder import services as svc
    from builder.bundle import BundleOptions

    data_dir = tmp_path_factory.mktemp("job-progress")
    app = make_app(data_dir, JOBS_IMMEDIATE=False, BUNDLE_OPTIONS=BundleOptions(compress=False))
    session = app.extensions["baonhung"].sessionmaker()
    svc.create_user(session, svc.SYSTEM, "editor@toasoan.vn", "editor", PASSWORD)
    session.close()
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield {"url": f"http://127.0.0.1:{httpd.server_port}", "app": app}
    httpd.shutdown()
    thread.join(timeout=10)


def test_the_edition_page_shows_the_job_queued_then_page_by_page_then_its_result(server):
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed")
    from playwright.sync_api import sync_playwright
    from sqlalchemy import update

    from builder.jobs import run_job
    from builder.models import Job
    from tests.conftest import user_with_token
    from tests.web.test_api import make_edition, make_page, make_publication

    app, base = server["app"], server["url"]
    state = app.extensions["baonhung"]
    client = app.test_client()
    designer = user_with_token(app, "designer@toasoan.vn", "designer")
    editor = user_with_token(app, "editor2@toasoan.vn", "editor")
    make_publication(client, designer)
    edition = make_edition(client, designer)
    for seed in (81, 82):
        make_page(client, designer, edition["id"], png_bytes(620, 877, seed=seed))
    client.post(f"/api/v1/editions/{edition['id']}/submit", headers=auth(designer))
    job = client.post(f"/api/v1/editions/{edition['id']}/publish", headers=auth(editor)).get_json()
    assert job["status"] == "queued"

    def set_progress(**values):
        db = state.sessionmaker()
        try:
            db.execute(update(Job).where(Job.id == job["id"]).values(**values))
            db.commit()
        finally:
            db.close()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page()
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        log_in(page, base, "editor@toasoan.vn")
        page.goto(f"{base}/editions/{edition['id']}")
        assert "Đang xếp hàng" in page.locator("#job-text").inner_text()
        assert page.locator("#publish").count() == 0

        set_progress(status="running", pages_done=1, pages_total=2)  # as the worker reports after page 1
        wait_until(page, "() => document.getElementById('job-text').textContent.includes('1 / 2')")
        assert page.locator("#job-progress").evaluate("(bar) => [bar.value, bar.max]") == [1, 2]
        assert page.locator("#job").get_attribute("data-status") == "running"

        set_progress(status="queued", pages_done=0, worker="")  # back in the queue: the real run claims it
        assert run_job(state, job["id"]) == "done"
        page.wait_for_selector("#edition-status[data-published=yes]", timeout=30_000)  # reloaded on the result
        assert "Đã xuất bản thành phiên bản 1." in page.locator("#job-text").inner_text()
        assert page.locator("#job").get_attribute("data-status") == "done"
        assert page.locator("#job-progress").evaluate("(bar) => [bar.value, bar.max]") == [2, 2]
        browser.close()
    assert not errors, errors
