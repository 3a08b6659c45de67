"""The events store's group-commit writer (issue 26): many batches per transaction, a bounded queue whose overflow
is a 503 with Retry-After (nothing stored), a 204 after the commit by default — written by the request that finds
no transaction in progress (leader-based, no writer thread), a failed transaction a 503 for every batch in it with
nothing of them stored — and with ack "queued" what is queued written when the writer closes, also when the
process just exits."""
from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.web.test_events import PHONE_UA, _engine, batch, post, site  # noqa: F401  (the module's published site)
from viewer_api import eventstore as es

REPO = Path(__file__).resolve().parents[2]


def rows(n: int, t: int = 1_800_000_000_000) -> list[es.EventRow]:
    return [es.EventRow(t + i, es.EVENT_TYPES["opened"], 1, None, None, 7, 8, 1) for i in range(n)]


def count(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(es.events)).scalar()


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "events.sqlite3"
    engine = es.make_events_engine(f"sqlite:///{path}")
    es.create_schema(engine)
    yield engine, path
    engine.dispose()


class Blocked:
    """Another connection holding SQLite's write lock: the writer's transaction waits (busy timeout) until
    release()."""

    def __init__(self, path: Path):
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("BEGIN IMMEDIATE")

    def release(self):
        self.conn.execute("ROLLBACK")
        self.conn.close()


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_batches_waiting_for_a_busy_store_go_in_one_transaction_and_each_append_returns_after_its_commit(store):
    engine, path = store
    writer = es.GroupCommitWriter(engine)  # ack="committed"
    lock = Blocked(path)
    returned = []
    threads = [threading.Thread(target=lambda i=i: (writer.append(rows(20, 1_800_000_000_000 + i * 100)),
                                                    returned.append(i))) for i in range(8)]
    threads[0].start()
    wait_for(lambda: writer.transactions == 0 and writer.queued_events == 0 and writer._busy)  # in the blocked one
    for t in threads[1:]:
        t.start()
    wait_for(lambda: writer.queued_events == 7 * 20)  # seven batches queued behind it
    assert returned == [] and count(engine) == 0  # nobody was answered before the commit
    lock.release()
    for t in threads:
        t.join(10)
    assert sorted(returned) == list(range(8)) and count(engine) == 160
    assert writer.transactions == 2  # the first batch alone, then the seven that waited, together
    assert writer.close()


def test_a_full_queue_refuses_the_batch_whole_and_memory_stays_bounded(store):
    engine, path = store
    writer = es.GroupCommitWriter(engine, ack="queued", max_queued_events=100, max_transaction_events=50)
    lock = Blocked(path)
    writer.append(rows(20))
    wait_for(lambda: writer.queued_events == 0)  # taken by the writer, which waits for the lock
    for _ in range(5):
        writer.append(rows(20))
    assert writer.queued_events == 100
    with pytest.raises(es.WriterFull) as exc:
        writer.append(rows(1))
    assert exc.value.retry_after_s >= 1 and writer.queued_events == 100
    lock.release()
    assert writer.flush(10) and count(engine) == 120  # everything accepted, nothing of the refused batch
    assert writer.transactions == 4  # 20, then 100 queued events in lots of at most 50 rows (40, 40, 20)
    assert writer.close()


def test_close_writes_what_is_queued_and_later_appends_are_refused(store):
    engine, path = store
    writer = es.GroupCommitWriter(engine, ack="queued")
    lock = Blocked(path)
    for i in range(3):
        writer.append(rows(20, 1_800_000_000_000 + i * 100))
    threading.Timer(0.3, lock.release).start()
    assert writer.close(10) and count(engine) == 60
    with pytest.raises(es.WriterFull):
        writer.append(rows(1))


def test_events_queued_when_the_process_exits_are_written_before_it_ends(store):
    engine, path = store
    script = f"""
import sqlite3, sys, threading
sys.path.insert(0, {str(REPO)!r})
from viewer_api import eventstore as es
engine = es.make_events_engine("sqlite:///{path}")
lock = sqlite3.connect({str(path)!r}, isolation_level=None, check_same_thread=False)
lock.execute("BEGIN IMMEDIATE")
writer = es.GroupCommitWriter(engine, ack="queued")
for i in range(5):
    writer.append([es.EventRow(1_800_000_000_000 + i * 100 + j, 1, 1, None, None, 7, 8, 1) for j in range(20)])
threading.Timer(0.5, lambda: (lock.execute("ROLLBACK"), lock.close())).start()
# the script ends here, without close(): the interpreter's exit flushes the queue
"""
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    assert count(engine) == 100


def test_a_failed_transaction_is_raised_in_the_request_that_waits_for_it(store):
    engine, _path = store
    writer = es.GroupCommitWriter(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE events")
    with pytest.raises(es.WriterFull, match="no such table: events"):  # the endpoint's 503
        writer.append(rows(3))
    assert writer.close()


def test_the_endpoint_answers_503_with_retry_after_when_the_queue_is_full(site):  # noqa: F811
    from viewer_api.events_api import events_state

    app = site["app"]
    with app.app_context():
        ev = events_state()
    engine = _engine(site)
    with engine.begin() as conn:
        conn.execute(es.events.delete())
    previous = ev.writer
    ev.writer = es.GroupCommitWriter(engine, ack="queued", max_queued_events=100, max_transaction_events=100)
    lock = Blocked(site["data"] / "analytics" / "events.sqlite3")
    try:
        t = int(time.time() * 1000) - 1000
        twenty = [{"type": "recognized", "t": t, "page": site["page"], "ms": 900, "stage": "server", "scoped": True}] * 20
        codes = [post(site, batch(site, *twenty, session="sess-full-first")).status_code]
        wait_for(lambda: ev.writer.queued_events == 0 and ev.writer._busy)  # taken, waiting for the lock
        codes += [post(site, batch(site, *twenty, session=f"sess-full-{i:04d}")).status_code for i in range(7)]
        # the first batch is taken by the writer (blocked), five more fill the queue, then 503s
        assert codes == [204] * 6 + [503] * 2, codes
        r = post(site, batch(site, *twenty, session="sess-full-last"), headers={"Accept-Language": "en"})
        assert r.status_code == 503 and r.get_json()["error"] == "busy" and int(r.headers["Retry-After"]) >= 1
        vi = post(site, batch(site, *twenty, session="sess-full-vi"))
        assert "bận" in vi.get_json()["message"]
    finally:
        lock.release()
        assert ev.writer.close(10)
        ev.writer = previous
    assert count(engine) == 6 * 20  # every 204 stored, no 503 batch


# ------------------------------------------------------------------------------------------------ leader-based
class Statements:
    """The INSERTs the engine runs, with the thread that ran each and its rows (SQLAlchemy's before_cursor_execute)."""

    def __init__(self, engine):
        from sqlalchemy import event

        self.seen: list[tuple[int, int]] = []  # (thread id, rows)
        self.engine = engine

        @event.listens_for(engine, "before_cursor_execute")
        def _seen(conn, cursor, statement, parameters, context, executemany):
            if statement.startswith("INSERT INTO events"):
                n = len(parameters) if executemany else len(parameters) // len(es.COLUMNS)  # multi-row VALUES
                self.seen.append((threading.get_ident(), n))

        self._listener = _seen

    def remove(self):
        from sqlalchemy import event

        event.remove(self.engine, "before_cursor_execute", self._listener)


def test_an_idle_writer_commits_the_batch_in_the_requests_own_thread_with_no_writer_thread(store):
    engine, _path = store
    writer = es.GroupCommitWriter(engine)
    seen = Statements(engine)
    try:
        writer.append(rows(20))
        writer.append(rows(5, 1_800_000_100_000))
    finally:
        seen.remove()
    assert seen.seen == [(threading.get_ident(), 20), (threading.get_ident(), 5)]  # the caller led both
    assert writer.transactions == 2 and count(engine) == 25
    assert not any(t.name == "baonhung-events-writer" for t in threading.enumerate())
    assert writer.close()


def test_many_concurrent_appends_are_written_by_one_of_them_in_one_transaction(store):
    engine, path = store
    writer = es.GroupCommitWriter(engine)
    seen = Statements(engine)
    lock = Blocked(path)
    idents: dict[int, int] = {}
    done = []

    def post(i):
        idents[i] = threading.get_ident()
        writer.append(rows(20, 1_800_000_000_000 + i * 100))
        done.append(i)

    threads = [threading.Thread(target=post, args=(i,)) for i in range(13)]
    try:
        threads[0].start()
        wait_for(lambda: writer._busy and writer.queued_events == 0)  # the leader, inside its blocked transaction
        for t in threads[1:]:
            t.start()
        wait_for(lambda: writer.queued_events == 12 * 20)
        assert done == [] and count(engine) == 0
        lock.release()
        for t in threads:
            t.join(10)
    finally:
        seen.remove()
    assert sorted(done) == list(range(13)) and count(engine) == 13 * 20
    assert writer.transactions == 2
    assert [n for _, n in seen.seen] == [20, 12 * 20]  # the leader's own batch, then the twelve that waited, at once
    assert seen.seen[0][0] == idents[0]
    assert seen.seen[1][0] in {idents[i] for i in range(1, 13)}  # a follower led the second lot: no writer thread
    assert writer.close()


def test_a_failed_transaction_fails_every_batch_in_it_with_writer_full_and_stores_none_of_them(store):
    engine, path = store
    with engine.begin() as conn:  # a row with visitor -1 makes its transaction fail (after other rows went in)
        conn.exec_driver_sql("CREATE TRIGGER poison BEFORE INSERT ON events WHEN NEW.visitor = -1 "
                             "BEGIN SELECT RAISE(ABORT, 'poisoned row'); END")
    writer = es.GroupCommitWriter(engine)
    lock = Blocked(path)
    outcome: dict[int, str] = {}

    def post(i, batch_rows):
        try:
            writer.append(batch_rows)
            outcome[i] = "stored"
        except es.WriterFull as exc:
            outcome[i] = f"full: {exc}"

    poisoned = rows(20, 1_800_000_000_500)
    poisoned[15] = replace(poisoned[15], visitor=-1)
    threads = [threading.Thread(target=post, args=(0, rows(20)))]
    threads[0].start()
    wait_for(lambda: writer._busy and writer.queued_events == 0)
    threads += [threading.Thread(target=post, args=(i, rows(20, 1_800_000_000_000 + i * 100))) for i in (1, 2, 3)]
    threads.append(threading.Thread(target=post, args=(4, poisoned)))
    for t in threads[1:]:
        t.start()
    wait_for(lambda: writer.queued_events == 4 * 20)
    lock.release()
    for t in threads:
        t.join(10)
    assert outcome[0] == "stored"
    assert all(outcome[i].startswith("full:") and "poisoned row" in outcome[i] for i in (1, 2, 3, 4)), outcome
    assert count(engine) == 20  # the first batch only: nothing of the failed lot, not even its rows before the bad one
    writer.append(rows(3, 1_800_000_009_000))  # the writer goes on
    assert count(engine) == 23 and writer.transactions == 2
    assert writer.close()


def test_a_batch_still_queued_when_its_wait_ends_is_taken_out_and_never_written(store):
    engine, path = store
    writer = es.GroupCommitWriter(engine, commit_wait_s=0.3)
    lock = Blocked(path)
    first = threading.Thread(target=writer.append, args=(rows(20),))
    first.start()
    wait_for(lambda: writer._busy and writer.queued_events == 0)
    with pytest.raises(es.WriterFull, match="did not commit"):
        writer.append(rows(7, 1_800_000_000_900))
    assert writer.queued_events == 0
    lock.release()
    first.join(10)
    assert writer.flush(5) and count(engine) == 20  # the late batch was not written after its 503
    assert writer.close()


def test_the_endpoint_answers_503_when_the_commit_fails_and_stores_nothing(site):  # noqa: F811
    engine = _engine(site)
    with engine.begin() as conn:
        conn.execute(es.events.delete())
        conn.exec_driver_sql("CREATE TRIGGER refuse_all BEFORE INSERT ON events "
                             "BEGIN SELECT RAISE(ABORT, 'store refuses'); END")
    try:
        t = int(time.time() * 1000) - 1000
        ev = {"type": "recognized", "t": t, "page": site["page"], "ms": 900, "stage": "server", "scoped": True}
        r = post(site, batch(site, ev, ev, session="sess-commit-fails"), headers={"Accept-Language": "en"})
        assert r.status_code == 503 and r.get_json()["error"] == "busy" and int(r.headers["Retry-After"]) >= 1
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP TRIGGER refuse_all")
    assert count(engine) == 0


def test_a_lot_is_inserted_in_few_multi_row_statements_and_every_value_lands_in_its_column(store):
    engine, _path = store
    writer = es.GroupCommitWriter(engine)
    seen = Statements(engine)
    lot = [es.EventRow(1_800_000_000_000 + i, es.EVENT_TYPES["aim"], 3, 30 + i % 7, None if i % 2 else 300 + i,
                       -5 - i, 11 + i, 1 + i % 4, i % 5 or None, i * 10, i % 200, (i * 3) % 280) for i in range(1234)]
    try:
        writer.append(lot)
    finally:
        seen.remove()
    assert [n for _, n in seen.seen] == [500, 500, 234]  # INSERT_CHUNK_ROWS a statement, one transaction
    assert writer.transactions == 1
    with engine.connect() as conn:
        stored = [tuple(r) for r in conn.exec_driver_sql(f"SELECT {', '.join(es.COLUMNS)} FROM events ORDER BY t")]
    assert stored == [tuple(getattr(r, c) for c in es.COLUMNS) for r in lot]
    assert writer.close()
