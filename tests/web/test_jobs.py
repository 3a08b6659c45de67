"""Publishing as a job (issue 28): queued and answered at once, run by a real consumer (a thread of this process or a
`baonhung worker` process), followed page by page; one job per edition at a time; a worker killed mid-publish leaves
the previous version serving, and the job is run once more by the next worker (or failed after its second
interruption, with its error shown to the editor)."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.conftest import auth, make_app, png_bytes, test_database
from tests.web.test_api import make_edition, make_page, make_publication

ROOT = Path(__file__).resolve().parents[2]
JOB_TIMEOUT_S = 240  # `baonhung serve` compresses bundles with gltf-transform: seconds per page on 2 shared cores


@pytest.fixture
def app(tmp_path):
    """The newsroom app with the real queue (SQLite under <data>/queue): a job waits for a consumer."""
    return make_app(tmp_path / "d", JOBS_IMMEDIATE=False)


def _edition_in_review(client, users, pages: int, seed0: int = 40) -> dict:
    designer = users.tokens["designer"]
    make_publication(client, designer)
    edition = make_edition(client, designer)
    for i in range(pages):
        make_page(client, designer, edition["id"], png_bytes(620, 877, seed=seed0 + i))
    assert client.post(f"/api/v1/editions/{edition['id']}/submit", headers=auth(designer)).status_code == 200
    return edition


def _wait(client, token, job_id, until, timeout_s=JOB_TIMEOUT_S, seen=None) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        job = client.get(f"/api/v1/jobs/{job_id}", headers=auth(token, "en")).get_json()
        if seen is not None:
            seen.append((job["status"], job["pages_done"]))
        if until(job):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.05)


def test_a_publish_runs_through_the_queue_page_by_page_and_one_job_per_edition_at_a_time(app, client, users):
    from builder.jobs import start_consumer_thread

    editor = users.tokens["editor"]
    edition = _edition_in_review(client, users, pages=3)
    r = client.post(f"/api/v1/editions/{edition['id']}/publish", headers=auth(editor, "en"))
    assert r.status_code == 202, r.get_json()
    job = r.get_json()
    assert job["status"] == "queued" and job["kind"] == "publish" and job["edition_id"] == edition["id"]
    assert (job["pages_done"], job["pages_total"], job["error"], job["version"]) == (0, 3, None, None)
    assert r.headers["Location"].endswith(f"/api/v1/jobs/{job['id']}")
    # no consumer yet: the job waits, and a second publish (or an unpublish) of the edition is refused naming it
    second = client.post(f"/api/v1/editions/{edition['id']}/publish", headers=auth(editor, "en"))
    assert second.status_code == 409 and second.get_json()["error"] == "job_active"
    assert f"#{job['id']}" in second.get_json()["message"]
    vi = client.post(f"/api/v1/editions/{edition['id']}/publish", headers=auth(editor, "vi")).get_json()["message"]
    assert f"việc #{job['id']}" in vi
    assert client.get(f"/pub/editions/{edition['id']}/manifest.json").status_code == 404
    # roles: a designer may follow the job (as the edition), not publish
    assert client.get(f"/api/v1/jobs/{job['id']}", headers=auth(users.tokens["designer"])).status_code == 200
    assert client.post(f"/api/v1/editions/{edition['id']}/publish",
                       headers=auth(users.tokens["designer"])).status_code == 403
    assert client.get("/api/v1/jobs/999999", headers=auth(editor)).status_code == 404
    assert client.get("/api/v1/jobs/abc", headers=auth(editor)).status_code in (400, 404)

    stop = start_consumer_thread(app.extensions["baonhung"].jobs)
    try:
        seen = []
        done = _wait(client, editor, job["id"], lambda j: j["status"] in ("done", "failed"), seen=seen)
        assert done["status"] == "done", done
        assert done["version"] == 1 and done["pages_done"] == done["pages_total"] == 3 and done["attempts"] == 1
        pages_seen = [p for _, p in seen]
        assert pages_seen == sorted(pages_seen)  # progress only moves forward
        manifest = client.get(f"/pub/editions/{edition['id']}/manifest.json").get_json()
        assert len(manifest["pages"]) == 3
        body = client.get(f"/api/v1/editions/{edition['id']}", headers=auth(editor)).get_json()
        assert body["published"] is True and body["published_version"] == 1

        # unpublish is a job too
        r = client.post(f"/api/v1/editions/{edition['id']}/unpublish", headers=auth(editor))
        assert r.status_code == 202 and r.get_json()["kind"] == "unpublish"
        gone = _wait(client, editor, r.get_json()["id"], lambda j: j["status"] in ("done", "failed"))
        assert gone["status"] == "done" and gone["pages_total"] == 0
        assert client.get(f"/pub/editions/{edition['id']}/manifest.json").status_code == 404
    finally:
        stop.set()


def test_a_job_that_fails_in_the_worker_shows_its_error_in_the_askers_language(app, client, users, monkeypatch):
    from builder.jobs import start_consumer_thread
    import builder.publish as publish_mod
    from builder.bundle import BundleBuildError

    editor = users.tokens["editor"]
    edition = _edition_in_review(client, users, pages=1)

    def broken(*_a, **_k):
        raise BundleBuildError("overlay 7: model could not be packaged")

    monkeypatch.setattr(publish_mod, "build_page_bundle", broken)
    job = client.post(f"/api/v1/editions/{edition['id']}/publish", headers=auth(editor)).get_json()
    stop = start_consumer_thread(app.extensions["baonhung"].jobs)
    try:
        failed = _wait(client, editor, job["id"], lambda j: j["status"] in ("done", "failed"))
    finally:
        stop.set()
    assert failed["status"] == "failed" and failed["error"]["error"] == "publish_failed"
    assert "could not be packaged" in failed["error"]["message"] and "previous version" in failed["error"]["message"]
    vi = client.get(f"/api/v1/jobs/{job['id']}", headers=auth(editor, "vi")).get_json()["error"]["message"]
    assert "phiên bản cũ vẫn đang phục vụ" in vi
    # the job is over: the edition may be published again (no 409)
    again = client.post(f"/api/v1/editions/{edition['id']}/publish", headers=auth(editor))
    assert again.status_code == 202 and again.get_json()["id"] != job["id"]


def _stop(worker: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL if the worker has not ended within 30 s."""
    worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(timeout=30)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()


# `baonhung worker` (builder.cli.main) in a process of its own, building bundles as every test app does
# (tests/conftest.make_app: BundleOptions(compress=False); gltf-transform compression, seconds per page on 2 shared
# cores, has its own tests in tests/builder, and test_baonhung_serve_runs_the_queued_jobs_itself publishes with the
# production options). Nothing else differs from the command: its start-up sweep, its huey consumer, its signals.
UNCOMPRESSED_WORKER = """
import sys
import builder.app
from builder.bundle import BundleOptions
real_create_app = builder.app.create_app
def create_app(config=None):
    return real_create_app({**(config or {}), "BUNDLE_OPTIONS": BundleOptions(compress=False)})
builder.app.create_app = create_app
from builder.cli import main
sys.exit(main(["worker"]))
"""


def _worker_process(env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", UNCOMPRESSED_WORKER], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _worker(data_dir: Path) -> subprocess.Popen:
    env = dict(os.environ, BAONHUNG_DATA_DIR=str(data_dir), DATABASE_URL=test_database(data_dir),
               BAONHUNG_ENV="development", PYTHONPATH=str(ROOT))
    env.pop("BAONHUNG_QUEUE_URL", None)
    return _worker_process(env)


def test_a_worker_killed_mid_publish_leaves_the_previous_version_serving_and_the_next_worker_runs_the_job_again(
        app, client, users, tmp_path):
    from builder.models import PublishFailure

    state = app.extensions["baonhung"]
    data_dir = state.settings.data_dir
    designer, editor = users.tokens["designer"], users.tokens["editor"]
    edition = _edition_in_review(client, users, pages=1)
    worker = _worker(data_dir)
    try:
        job = client.post(f"/api/v1/editions/{edition['id']}/publish", headers=auth(editor)).get_json()
        v1 = _wait(client, editor, job["id"], lambda j: j["status"] in ("done", "failed"))
        assert v1["status"] == "done" and v1["version"] == 1, v1
        for i in range(4):  # version 2: five pages, so the worker can be killed between two of them
            make_page(client, designer, edition["id"], png_bytes(620, 877, seed=60 + i))
        assert client.post(f"/api/v1/editions/{edition['id']}/submit", headers=auth(designer)).status_code == 200
        catalog_before = state.published.catalog_path.read_bytes()
        manifest_before = client.get(f"/pub/editions/{edition['id']}/manifest.json").get_json()
        job = client.post(f"/api/v1/editions/{edition['id']}/publish", headers=auth(editor)).get_json()
        running = _wait(client, editor, job["id"], lambda j: j["status"] != "queued" and j["pages_done"] >= 1)
        assert running["status"] == "running" and running["pages_done"] < 5, running
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    # the previous version keeps serving, and nothing of the killed publish is in the catalog
    assert state.published.catalog_path.read_bytes() == catalog_before
    assert client.get(f"/pub/editions/{edition['id']}/manifest.json").get_json() == manifest_before
    assert len(manifest_before["pages"]) == 1
    assert client.get(f"/api/v1/jobs/{job['id']}", headers=auth(editor)).get_json()["status"] == "running"

    worker = _worker(data_dir)  # its start records the interrupted publish and runs the job once more
    try:
        done = _wait(client, editor, job["id"], lambda j: j["status"] in ("done", "failed"))
    finally:
        _stop(worker)
    assert done["status"] == "done" and done["attempts"] == 2 and done["version"] == 2, done
    manifest = client.get(f"/pub/editions/{edition['id']}/manifest.json").get_json()
    assert len(manifest["pages"]) == 5
    catalog = json.loads(state.published.catalog_path.read_text())
    assert catalog["editions"][str(edition["id"])]["version"] == 2
    db = state.sessionmaker()
    try:
        failures = db.scalars(select(PublishFailure).where(PublishFailure.edition_id == edition["id"])).all()
    finally:
        db.close()
    assert any("interrupted" in f.error for f in failures)  # the start-up sweep's record, for the editor's list


def test_a_job_interrupted_twice_is_failed_with_its_error_and_a_live_workers_job_is_left_alone(app, client, users):
    from builder.jobs import MAX_ATTEMPTS, recover_interrupted, worker_name
    from builder.models import Job

    state = app.extensions["baonhung"]
    editor = users.tokens["editor"]
    edition = _edition_in_review(client, users, pages=1)
    job = client.post(f"/api/v1/editions/{edition['id']}/publish", headers=auth(editor)).get_json()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that no longer runs
    import socket

    db = state.sessionmaker()
    try:
        row = db.get(Job, job["id"])
        row.status, row.attempts, row.worker = "running", MAX_ATTEMPTS, f"{socket.gethostname()}:{dead.pid}"
        db.commit()
        assert recover_interrupted(state, state.jobs)["failed"] == 1
        failed = client.get(f"/api/v1/jobs/{job['id']}", headers=auth(editor, "en")).get_json()
        assert failed["status"] == "failed" and failed["error"]["error"] == "job_interrupted"
        assert "interrupted 2 times" in failed["error"]["message"] and "previous version" in failed["error"]["message"]
        # a running job of a live worker (this very process) is not touched
        job2 = client.post(f"/api/v1/editions/{edition['id']}/publish", headers=auth(editor)).get_json()
        row = db.get(Job, job2["id"])
        db.refresh(row)
        row.status, row.attempts, row.worker = "running", 1, worker_name()
        db.commit()
        assert recover_interrupted(state, state.jobs) == {"requeued": 0, "failed": 0, "queued": 0}
        db.refresh(row)
        assert row.status == "running"
    finally:
        db.close()


def test_the_edition_page_follows_the_job_and_hides_publish_while_it_runs(app, client, users):
    from builder.jobs import run_job
    from builder.models import User
    from tests.web.test_ui import sign_in

    edition = _edition_in_review(client, users, pages=1)
    state = app.extensions["baonhung"]
    db = state.sessionmaker()
    ui = app.test_client()
    try:
        sign_in(ui, db, db.scalar(select(User).where(User.id == users.ids["editor"])))
    finally:
        db.close()
    html = ui.get(f"/editions/{edition['id']}").get_data(as_text=True)
    token = html.split('name="csrf-token" content="')[1].split('"')[0]
    assert 'id="publish"' in html and 'id="job"' not in html
    r = ui.post(f"/editions/{edition['id']}/publish", data={"csrf_token": token})
    assert r.status_code == 302 and "job=" in r.headers["Location"]
    job_id = int(r.headers["Location"].rsplit("job=", 1)[1])
    html = ui.get(r.headers["Location"]).get_data(as_text=True)
    assert 'id="job"' in html and 'data-status="queued"' in html and "job.js" in html
    assert 'id="publish"' not in html  # no second publish while this one waits
    stale = ui.post(f"/editions/{edition['id']}/publish", data={"csrf_token": token})  # from a tab opened before
    assert stale.status_code == 409 and f"việc #{job_id}" in stale.get_data(as_text=True)
    assert f"/api/v1/jobs/{job_id}" in html
    # the page's own polls: the editor's session reads the job
    assert ui.get(f"/api/v1/jobs/{job_id}").get_json()["status"] == "queued"
    assert run_job(state, job_id) == "done"
    html = ui.get(f"/editions/{edition['id']}?job={job_id}").get_data(as_text=True)
    assert 'data-status="done"' in html and 'data-published="yes"' in html
    assert "Đã xuất bản thành phiên bản 1." in html and "Việc xuất bản #" in html
    en = ui.get(f"/editions/{edition['id']}?job={job_id}&lang=en").get_data(as_text=True)
    assert "Published as version 1." in en and f"Publish job #{job_id}" in en


def test_baonhung_serve_runs_the_queued_jobs_itself(app, client, users):
    """The one-machine default stays one command: `baonhung serve` consumes the queue in a thread of its own."""
    from tests.web.test_serve import _free_port

    data_dir = app.extensions["baonhung"].settings.data_dir
    editor = users.tokens["editor"]
    edition = _edition_in_review(client, users, pages=1)
    job = client.post(f"/api/v1/editions/{edition['id']}/publish", headers=auth(editor)).get_json()
    assert job["status"] == "queued"
    port = _free_port()
    env = dict(os.environ, BAONHUNG_DATA_DIR=str(data_dir), DATABASE_URL=test_database(data_dir))
    env.pop("BAONHUNG_QUEUE_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "builder.cli", "serve", "--port", str(port), "--threads", "2"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        done = _wait(client, editor, job["id"], lambda j: j["status"] in ("done", "failed"))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert done["status"] == "done" and done["version"] == 1, done
    assert client.get(f"/pub/editions/{edition['id']}/manifest.json").status_code == 200


def test_on_postgresql_the_queue_and_the_jobs_live_in_the_database_with_no_other_code_path(tmp_path, pg_url):
    """The same task and consumer on huey's PostgreSQL storage (BAONHUNG_QUEUE_URL=postgresql://…), the jobs table
    and its one-active-job-per-edition constraint on PostgreSQL."""
    from builder.config import Settings
    from builder.jobs import start_consumer_thread
    from builder.models import Job
    from tests.conftest import Users, user_with_token, _user_id

    settings = Settings.from_env({"BAONHUNG_DATA_DIR": str(tmp_path / "pg"), "BAONHUNG_QUEUE_URL": pg_url})
    app = make_app(tmp_path / "pg", pg_url, SETTINGS=settings, JOBS_IMMEDIATE=False)
    assert type(app.extensions["baonhung"].jobs.huey).__name__ == "PostgresHuey"
    client = app.test_client()
    tokens = {role: user_with_token(app, f"{role}@toasoan.vn", role) for role in ("designer", "editor")}
    users = Users(tokens=tokens, ids={role: _user_id(app, f"{role}@toasoan.vn") for role in tokens})
    edition = _edition_in_review(client, users, pages=2)
    editor = tokens["editor"]
    job = client.post(f"/api/v1/editions/{edition['id']}/publish", headers=auth(editor)).get_json()
    assert job["status"] == "queued"
    assert client.post(f"/api/v1/editions/{edition['id']}/publish", headers=auth(editor)).status_code == 409
    db = app.extensions["baonhung"].sessionmaker()
    try:  # the database itself refuses a second active job (what a race between two requests would reach)
        from sqlalchemy.exc import IntegrityError

        db.add(Job(kind="publish", edition_id=edition["id"], status="queued", active=True))
        with pytest.raises(IntegrityError):
            db.commit()
        db.rollback()
    finally:
        db.close()
    stop = start_consumer_thread(app.extensions["baonhung"].jobs)
    try:
        done = _wait(client, editor, job["id"], lambda j: j["status"] in ("done", "failed"))
    finally:
        stop.set()
    assert done["status"] == "done" and done["version"] == 1 and done["pages_done"] == 2, done
    assert len(client.get(f"/pub/editions/{edition['id']}/manifest.json").get_json()["pages"]) == 2
    app.extensions["baonhung"].engine.dispose()


@pytest.mark.skipif(not os.environ.get("BAONHUNG_TEST_REDIS_URL"),
                    reason="no Redis: scripts/test-redis.sh starts Debian's redis-server and prints the URL for "
                           "BAONHUNG_TEST_REDIS_URL")
def test_on_redis_the_queue_carries_the_job_from_the_newsroom_app_to_a_worker_process(tmp_path):
    """The same task and consumer on huey's Redis storage (BAONHUNG_QUEUE_URL=redis://…, the production engine named
    in docs/DEPLOY.md): the newsroom app queues in Redis, a `baonhung worker` process of its own takes the message
    and publishes, progress and result through the jobs table."""
    from builder.config import Settings
    from tests.conftest import Users, _user_id, user_with_token

    redis_url = os.environ["BAONHUNG_TEST_REDIS_URL"]
    data_dir = tmp_path / "redis"
    settings = Settings.from_env({"BAONHUNG_DATA_DIR": str(data_dir), "BAONHUNG_QUEUE_URL": redis_url})
    app = make_app(data_dir, SETTINGS=settings, JOBS_IMMEDIATE=False)
    huey = app.extensions["baonhung"].jobs.huey
    assert type(huey).__name__ == "RedisHuey"
    huey.flush()  # a queue of this test's own (an earlier run's messages gone)
    client = app.test_client()
    tokens = {role: user_with_token(app, f"{role}@toasoan.vn", role) for role in ("designer", "editor")}
    users = Users(tokens=tokens, ids={role: _user_id(app, f"{role}@toasoan.vn") for role in tokens})
    edition = _edition_in_review(client, users, pages=2)
    editor = tokens["editor"]
    job = client.post(f"/api/v1/editions/{edition['id']}/publish", headers=auth(editor)).get_json()
    assert job["status"] == "queued" and huey.pending_count() == 1  # the message is in Redis, nothing runs it yet
    env = dict(os.environ, BAONHUNG_DATA_DIR=str(data_dir), BAONHUNG_ENV="development", BAONHUNG_QUEUE_URL=redis_url,
               DATABASE_URL=app.extensions["baonhung"].settings.database_url, PYTHONPATH=str(ROOT))
    worker = _worker_process(env)
    try:
        done = _wait(client, editor, job["id"], lambda j: j["status"] in ("done", "failed"))
    finally:
        _stop(worker)
    assert done["status"] == "done" and done["version"] == 1 and done["pages_done"] == 2, done
    assert huey.pending_count() == 0
    assert len(client.get(f"/pub/editions/{edition['id']}/manifest.json").get_json()["pages"]) == 2
