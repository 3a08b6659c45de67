"""Issue 28: the publish lock holds across machines. On PostgreSQL a session-level advisory lock serializes publishes
of every worker sharing the database (the per-machine file lock is taken out of play here, as between two machines
with no shared directory); on SQLite (one machine) the file lock does. Both engines: two publishes at once both end in
the catalog; a held lock makes a publish wait, then proceed; a lock not taken within the bound fails the job with
its error recorded, and the previous version keeps serving."""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager

import pytest

from tests.conftest import auth, make_app, png_bytes
from tests.web.test_api import PLACEMENT, make_edition, make_page, make_publication


@pytest.fixture
def app(tmp_path):
    return make_app(tmp_path / "data")


def _catalog(app) -> dict:
    return app.extensions["baonhung"].published.read_catalog()


def _ready_edition(client, designer, number: int, seed: int) -> int:
    edition = make_edition(client, designer, number=number)
    make_page(client, designer, edition["id"], png_bytes(620, 877, seed=seed))
    assert client.post(f"/api/v1/editions/{edition['id']}/submit", headers=auth(designer)).status_code == 200
    return edition["id"]


def _publish(app, token, edition_id, out: dict) -> None:
    r = app.test_client().post(f"/api/v1/editions/{edition_id}/publish", headers=auth(token, "en"))
    out[edition_id] = (r.status_code, r.get_json())


@contextmanager
def _held_elsewhere(app):
    """The publish lock held by "another machine": on PostgreSQL the advisory lock alone, from a connection of an
    engine of its own (no file lock); on SQLite the file lock (one machine by construction)."""
    import builder.publish as publish_mod

    engine = app.extensions["baonhung"].engine
    if engine.dialect.name != "postgresql":
        with publish_mod._publish_lock(app.extensions["baonhung"].published.dir) as held:
            assert held
            yield
        return
    from sqlalchemy import text

    from builder.db import make_engine

    other = make_engine(engine.url.render_as_string(hide_password=False))
    try:
        with other.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": publish_mod.PUBLISH_LOCK_KEY})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": publish_mod.PUBLISH_LOCK_KEY})
                conn.commit()
    finally:
        other.dispose()


def _no_file_lock_on_postgresql(app, monkeypatch) -> None:
    """Two workers on two machines share no lock file: on PostgreSQL only the database can serialize them."""
    import builder.publish as publish_mod

    if app.extensions["baonhung"].engine.dialect.name != "postgresql":
        return

    @contextmanager
    def no_file_lock(*_a, **_k):
        yield True

    monkeypatch.setattr(publish_mod, "_publish_lock", no_file_lock)


def test_two_publishes_started_at_once_both_end_in_the_catalog(app, users, monkeypatch):
    import builder.publish as publish_mod

    client = app.test_client()
    designer, editor = users.tokens["designer"], users.tokens["editor"]
    make_publication(client, designer)
    ids = [_ready_edition(client, designer, 1, 21), _ready_edition(client, designer, 2, 22)]
    _no_file_lock_on_postgresql(app, monkeypatch)
    # widen the read-modify-write window of the catalog (read, new index, switch) so that two unserialized publishes
    # would both read the same catalog; record when each was inside it
    inside, real_write_index = [], publish_mod._write_index

    def slow_write_index(*a, **k):
        start = time.monotonic()
        time.sleep(1.5)
        try:
            return real_write_index(*a, **k)
        finally:
            inside.append((start, time.monotonic()))

    monkeypatch.setattr(publish_mod, "_write_index", slow_write_index)
    out: dict = {}
    threads = [threading.Thread(target=_publish, args=(app, editor, eid, out)) for eid in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads)
    for eid in ids:
        status, job = out[eid]
        assert status == 202 and job["status"] == "done", job
    assert sorted(_catalog(app)["editions"]) == sorted(str(i) for i in ids)
    (_, a_end), (b_start, _) = sorted(inside)
    assert b_start >= a_end  # one after the other, never both inside


def test_a_held_lock_makes_a_publish_wait_then_proceed(app, users, monkeypatch):
    client = app.test_client()
    designer, editor = users.tokens["designer"], users.tokens["editor"]
    make_publication(client, designer)
    eid = _ready_edition(client, designer, 1, 23)
    _no_file_lock_on_postgresql(app, monkeypatch)
    out: dict = {}
    with _held_elsewhere(app):
        worker = threading.Thread(target=_publish, args=(app, editor, eid, out))
        worker.start()
        worker.join(timeout=3)
        assert worker.is_alive() and not out  # waiting for the lock
        assert str(eid) not in _catalog(app)["editions"]
    worker.join(timeout=300)
    status, job = out[eid]
    assert status == 202 and job["status"] == "done" and job["version"] == 1, job
    assert str(eid) in _catalog(app)["editions"]


def test_a_lock_not_taken_within_the_bound_fails_the_job_and_the_previous_version_serves(app, users, monkeypatch):
    import builder.publish as publish_mod
    from sqlalchemy import select

    from builder.models import PublishFailure

    client = app.test_client()
    designer, editor = users.tokens["designer"], users.tokens["editor"]
    make_publication(client, designer)
    eid = _ready_edition(client, designer, 1, 24)
    r = client.post(f"/api/v1/editions/{eid}/publish", headers=auth(editor))
    assert r.status_code == 202 and r.get_json()["status"] == "done"
    before = _catalog(app)
    page_id = int(next(iter(before["pages"])))
    client.post(f"/api/v1/pages/{page_id}/overlays", headers=auth(designer), content_type="multipart/form-data",
                data={"kind": "link", "url": "https://example.org", **PLACEMENT})
    assert client.post(f"/api/v1/editions/{eid}/submit", headers=auth(designer)).status_code == 200
    _no_file_lock_on_postgresql(app, monkeypatch)
    monkeypatch.setattr(publish_mod, "PUBLISH_LOCK_WAIT_S", 1.0)
    with _held_elsewhere(app):
        started = time.monotonic()
        r = client.post(f"/api/v1/editions/{eid}/publish", headers=auth(editor, "en"))
        waited = time.monotonic() - started
    job = r.get_json()
    assert r.status_code == 202 and job["status"] == "failed", job
    assert job["error"]["error"] == "server_error" and "Incident" in job["error"]["message"]
    assert 1.0 <= waited < 60
    db = app.extensions["baonhung"].sessionmaker()
    try:
        failure = db.scalars(select(PublishFailure)).one()
    finally:
        db.close()
    assert "PublishLockTimeout" in failure.error and "held the publish lock" in failure.error
    assert _catalog(app) == before  # version 1 still serving
    body = client.get(f"/api/v1/editions/{eid}", headers=auth(editor)).get_json()
    assert body["published_version"] == 1 and body["status"] == "in_review"
    # the lock released, the same edition publishes
    r = client.post(f"/api/v1/editions/{eid}/publish", headers=auth(editor))
    assert r.status_code == 202 and r.get_json()["status"] == "done" and r.get_json()["version"] == 2


def test_the_crash_sweep_skips_while_a_publish_holds_the_lock_and_runs_after(app, monkeypatch):
    from builder.publish import sweep_after_crash

    state = app.extensions["baonhung"]
    _no_file_lock_on_postgresql(app, monkeypatch)
    leftover = state.published.dir / ".index-leftover.tmp"
    leftover.write_bytes(b"x")
    db = state.sessionmaker()
    try:
        with _held_elsewhere(app):
            assert sweep_after_crash(db, state.settings, state.store)["index_tmp"] == 0
            assert leftover.exists()
        assert sweep_after_crash(db, state.settings, state.store)["index_tmp"] == 1
        assert not leftover.exists()
    finally:
        db.close()
