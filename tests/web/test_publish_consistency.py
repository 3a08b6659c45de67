"""Publishing and unpublishing as one sequence (issue 29 item 6): artifacts -> index -> catalog switch -> database
commit. A failure injected at each step leaves the previous version serving (the public side answers the old
manifests), the records true (edition, versions, the job's error, the failure list) and no half files (no journal,
no temporary or unnamed index file)."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from tests.conftest import auth, png_bytes
from tests.web.test_api import PLACEMENT, make_edition, make_page, make_publication

ROOT = Path(__file__).resolve().parents[2]


def _published_then_changed(client, users) -> dict:
    """An edition published once (version 1), then changed and sent for review again; what readers see now."""
    designer, editor = users.tokens["designer"], users.tokens["editor"]
    make_publication(client, designer)
    edition = make_edition(client, designer)
    page = make_page(client, designer, edition["id"], png_bytes(620, 877, seed=31))
    client.post(f"/api/v1/editions/{edition['id']}/submit", headers=auth(designer))
    job = client.post(f"/api/v1/editions/{edition['id']}/publish", headers=auth(editor)).get_json()
    assert job["status"] == "done", job
    client.post(f"/api/v1/pages/{page['id']}/overlays", headers=auth(designer), content_type="multipart/form-data",
                data={"kind": "link", "url": "https://example.org/v2", **PLACEMENT})
    assert client.post(f"/api/v1/editions/{edition['id']}/submit", headers=auth(designer)).status_code == 200
    return {"edition": edition, "page": page, **_seen(client, edition["id"], page["id"])}


def _seen(client, edition_id, page_id) -> dict:
    return {"edition_manifest": client.get(f"/pub/editions/{edition_id}/manifest.json").get_json(),
            "page_manifest": client.get(f"/pub/pages/{page_id}/manifest.json").get_json()}


def _files(published_dir: Path) -> dict:
    return {p.name: p.read_bytes() for p in published_dir.iterdir() if p.is_file() and p.name != ".publish.lock"}


def _records(app, edition_id) -> dict:
    from builder.models import Edition, PublishedVersion, PublishFailure

    db = app.extensions["baonhung"].sessionmaker()
    try:
        edition = db.get(Edition, edition_id)
        return {"status": edition.status, "published_version": edition.published_version.version
                if edition.published_version else None,
                "versions": db.scalar(select(func.count()).select_from(PublishedVersion)
                                      .where(PublishedVersion.edition_id == edition_id)),
                "unpublished_at": [v.unpublished_at for v in db.scalars(select(PublishedVersion))],
                "failures": [f.error for f in db.scalars(select(PublishFailure)
                                                          .where(PublishFailure.edition_id == edition_id))]}
    finally:
        db.close()


def _assert_nothing_changed(app, client, before: dict, files_before: dict, records_before: dict, job: dict,
                            error: str) -> None:
    state = app.extensions["baonhung"]
    assert job["status"] == "failed" and job["error"]["error"] == error, job
    assert job["error"]["message"]
    edition_id, page_id = before["edition"]["id"], before["page"]["id"]
    assert _seen(client, edition_id, page_id) == {k: before[k] for k in ("edition_manifest", "page_manifest")}
    assert _files(state.published.dir) == files_before  # catalog, version key, index: byte for byte; no leftovers
    records = _records(app, edition_id)
    assert len(records["failures"]) == len(records_before["failures"]) + 1
    assert {k: v for k, v in records.items() if k != "failures"} == \
        {k: v for k, v in records_before.items() if k != "failures"}


def _fail_on(name_wanted: str, exc: Exception):
    """LocalFiles.write failing once, for one file name: the catalog (nothing replaced yet) or its version key
    (written after the catalog: the catalog is already replaced when it fails)."""
    from viewer_api import published as pub

    real, armed = pub.LocalFiles.write, [True]

    def write(self, name, data):
        if name == name_wanted and armed[0]:
            armed[0] = False
            raise exc
        return real(self, name, data)

    return write


STEPS = ["artifact", "index", "catalog", "version_key", "commit"]


@pytest.mark.parametrize("step", STEPS)
def test_a_publish_failing_at_any_step_leaves_the_previous_version_serving_and_the_records_true(
        step, app, client, users, monkeypatch):
    from builder.storage import StorageError
    from markers import RecognitionIndex
    from viewer_api import published as pub

    state = app.extensions["baonhung"]
    before = _published_then_changed(client, users)
    files_before, records_before = _files(state.published.dir), _records(app, before["edition"]["id"])
    assert records_before["published_version"] == 1 and records_before["status"] == "in_review"
    if step == "artifact":  # the store fails after a few blobs of the new version were written
        real_put, calls = state.store.put_bytes, [0]

        def put_bytes(data):
            calls[0] += 1
            if calls[0] == 3:
                raise StorageError("S3 PutObject failed: 503 Slow Down")
            return real_put(data)

        monkeypatch.setattr(state.store, "put_bytes", put_bytes)
    elif step == "index":
        def save(self, path):
            Path(path).write_bytes(b"half an index")
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(RecognitionIndex, "save", save)
    elif step == "catalog":
        monkeypatch.setattr(pub.LocalFiles, "write", _fail_on(pub.CATALOG_FILE, OSError(28, "No space left")))
    elif step == "version_key":  # the catalog was replaced, its version key could not be: the switch is undone
        monkeypatch.setattr(pub.LocalFiles, "write", _fail_on(pub.VERSION_FILE, OSError(5, "I/O error")))
    elif step == "commit":  # the catalog was switched; the database refuses the commit: the switch is undone
        from sqlalchemy.orm import Session

        real_write, real_commit, armed = pub.PublishedStore.write_catalog_bytes, Session.commit, [False]

        def write_catalog_bytes(self, data):
            real_write(self, data)
            armed[0] = armed[0] is False  # the switch arms it; the undo's write does not re-arm it

        def commit(self):
            if armed[0] is True:
                armed[0] = None
                raise OperationalError("COMMIT", {}, Exception("database is locked"))
            return real_commit(self)

        monkeypatch.setattr(pub.PublishedStore, "write_catalog_bytes", write_catalog_bytes)
        monkeypatch.setattr(Session, "commit", commit)
    editor = users.tokens["editor"]
    job = client.post(f"/api/v1/editions/{before['edition']['id']}/publish", headers=auth(editor, "en")).get_json()
    _assert_nothing_changed(app, client, before, files_before, records_before, job, "server_error")
    monkeypatch.undo()
    # and the edition publishes once the fault is gone
    job = client.post(f"/api/v1/editions/{before['edition']['id']}/publish", headers=auth(editor, "en")).get_json()
    assert job["status"] == "done" and job["version"] == 2, job
    assert len(client.get(f"/pub/pages/{before['page']['id']}/manifest.json").get_json()["overlays"]) == 1
    assert not [n for n in os.listdir(state.published.dir) if n.startswith((".publishing-", ".index-"))]


@pytest.mark.parametrize("step", ["catalog", "commit"])
def test_an_unpublish_failing_keeps_the_edition_published_and_says_so(step, app, client, users, monkeypatch):
    from viewer_api import published as pub

    state = app.extensions["baonhung"]
    before = _published_then_changed(client, users)
    files_before, records_before = _files(state.published.dir), _records(app, before["edition"]["id"])
    if step == "catalog":
        monkeypatch.setattr(pub.LocalFiles, "write", _fail_on(pub.CATALOG_FILE, OSError(13, "Permission denied")))
    else:
        from sqlalchemy.orm import Session

        real_write, real_commit, armed = pub.PublishedStore.write_catalog_bytes, Session.commit, [False]

        def write_catalog_bytes(self, data):
            real_write(self, data)
            armed[0] = armed[0] is False

        def commit(self):
            if armed[0] is True:
                armed[0] = None
                raise OperationalError("COMMIT", {}, Exception("server closed the connection"))
            return real_commit(self)

        monkeypatch.setattr(pub.PublishedStore, "write_catalog_bytes", write_catalog_bytes)
        monkeypatch.setattr(Session, "commit", commit)
    editor = users.tokens["editor"]
    job = client.post(f"/api/v1/editions/{before['edition']['id']}/unpublish", headers=auth(editor, "en")).get_json()
    _assert_nothing_changed(app, client, before, files_before, records_before, job, "server_error")
    assert "unpublish" in _records(app, before["edition"]["id"])["failures"][-1]
    monkeypatch.undo()
    job = client.post(f"/api/v1/editions/{before['edition']['id']}/unpublish", headers=auth(editor, "en")).get_json()
    assert job["status"] == "done", job
    assert client.get(f"/pub/pages/{before['page']['id']}/manifest.json").status_code == 404


# `baonhung worker` killed at one point; its bundles built as every test app builds them (tests/conftest.make_app:
# uncompressed; gltf-transform compression has its own tests in tests/builder)
KILL_AT_COMMIT = """
import os, signal, sys
from sqlalchemy.orm import Session
import builder.app
from builder.bundle import BundleOptions
from viewer_api import published as pub
real_create_app = builder.app.create_app
def create_app(config=None):
    return real_create_app({**(config or {}), "BUNDLE_OPTIONS": BundleOptions(compress=False)})
builder.app.create_app = create_app
real_write, real_commit, armed = pub.PublishedStore.write_catalog_bytes, Session.commit, [False]
def write_catalog_bytes(self, data):
    real_write(self, data)
    armed[0] = True
def commit(self):
    if armed[0]:
        os.kill(os.getpid(), signal.SIGKILL)  # the catalog is switched, the database commit has not happened
    return real_commit(self)
pub.PublishedStore.write_catalog_bytes = write_catalog_bytes
Session.commit = commit
from builder.cli import main
sys.exit(main(["worker"]))
"""


def test_a_worker_killed_between_the_switch_and_the_commit_is_undone_by_the_next_start(app, client, users):
    """The one window where readers and records disagree: a worker SIGKILLed right after the catalog switch, before
    the commit. The next start puts the previous catalog back (the journal holds its bytes), records the interrupted
    publish, and the job runs again to its end."""
    from builder.app import sweep_leftovers
    from builder.jobs import JobQueue, recover_interrupted, run_job, submit_job
    from builder.models import Edition, Job, User
    from builder.services import Actor

    state = app.extensions["baonhung"]
    before = _published_then_changed(client, users)
    edition_id = before["edition"]["id"]
    files_before = _files(state.published.dir)
    queue = JobQueue.create(state, immediate=False)  # the real queue under <data>/queue: the worker consumes it
    db = state.sessionmaker()
    try:
        editor = db.get(User, users.ids["editor"])
        job_id = submit_job(db, queue, Actor(editor.id, editor.email, editor.role, "127.0.0.1"),
                            db.get(Edition, edition_id), "publish").id
    finally:
        db.close()
    env = dict(os.environ, BAONHUNG_DATA_DIR=str(state.settings.data_dir), DATABASE_URL=state.settings.database_url,
               BAONHUNG_ENV="development", PYTHONPATH=str(ROOT))
    env.pop("BAONHUNG_QUEUE_URL", None)
    worker = subprocess.run([sys.executable, "-c", KILL_AT_COMMIT], cwd=ROOT, env=env, timeout=240,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert worker.returncode == -signal.SIGKILL, worker.stderr.decode()[-2000:]
    # the window: the new catalog is in place, the records still say version 1, the journal says how to undo it
    assert _files(state.published.dir)["catalog.json"] != files_before["catalog.json"]
    assert _records(app, edition_id)["published_version"] == 1
    journal = json.loads((state.published.dir / f".publishing-{edition_id}.json").read_text())
    assert journal["kind"] == "publish" and journal["version"] == 2 and journal["previous"] is True

    swept = sweep_leftovers(state)  # what the next start of serve or worker does first
    assert swept["switch_undone"] == 1 and swept["interrupted"] == 1, swept
    assert _files(state.published.dir) == files_before
    assert _seen(client, edition_id, before["page"]["id"]) == \
        {k: before[k] for k in ("edition_manifest", "page_manifest")}
    records = _records(app, edition_id)
    assert records["published_version"] == 1 and records["versions"] == 1 and records["status"] == "in_review"
    assert "interrupted" in records["failures"][-1]

    assert recover_interrupted(state, queue)["requeued"] == 1  # its worker is dead: run once more
    assert run_job(state, job_id) == "done"
    db = state.sessionmaker()
    try:
        job = db.get(Job, job_id)
        assert (job.status, job.version, job.attempts) == ("done", 2, 2)
    finally:
        db.close()
    assert _records(app, edition_id)["published_version"] == 2
    assert len(client.get(f"/pub/pages/{before['page']['id']}/manifest.json").get_json()["overlays"]) == 1
