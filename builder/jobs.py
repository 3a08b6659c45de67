"""Publishing as a background job (issue 28): the editor's request queues a job and is answered at once; a worker
runs ``builder.publish.publish_edition`` (or ``unpublish_edition``) and records its progress page by page.

The queue is huey's: one task, one code path, on the storage ``BAONHUNG_QUEUE_URL`` names — SQLite under
``<data>/queue/`` by default, Redis (``redis://``) or PostgreSQL (``postgresql://``) for several machines. A queue
message carries only a job id; the job's state lives in the ``jobs`` table (``builder.models.Job``), which the
newsroom app reads for the editor's progress bar and which makes a run idempotent: a worker claims a job by moving
it from ``queued`` to ``running`` in one UPDATE, so a message delivered twice runs once.

A worker killed mid-publish (SIGKILL, power loss) leaves its job ``running`` with a dead owner; the next worker's
start-up (:func:`recover_interrupted`) queues it again once (``MAX_ATTEMPTS``) or marks it failed with the error the
editor sees. Publishing itself guarantees the previous version kept serving (``builder.publish``). No Flask here.
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
import socket
import threading
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .models import Edition, Job, User, utcnow
from .errors import AppError, ServerFault
from .services import Actor

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 2  # a job interrupted by a dead worker is run once more, then marked failed
# A running job whose worker is on another machine (its pid cannot be checked from here) is taken for dead when its
# heartbeat (written after every page) is older than this: no page takes 10 minutes (external tools are limited).
STALE_HEARTBEAT_S = 600
TASK_NAME = "baonhung.run_job"
# The in-process consumer's polling of the SQLite queue: 0.1 s after work, backing off to 1 s when idle (an
# editor waits at most a second for the job to start; an idle server reads the queue once a second).
POLL_MIN_S = 0.1
POLL_MAX_S = 1.0
POLL_BACKOFF = 1.15


class JobConflict(AppError):
    """Another publish or unpublish of the edition is queued or running (answered 409)."""

    def __init__(self, job: Job):
        super().__init__("job_active", job_id=job.id, kind=job.kind, status=job.status)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def make_huey(queue_url: str, data_dir: Path, immediate: bool = False):
    """The huey instance for ``queue_url`` (see the module docstring); ``immediate``: tasks run inside enqueue
    (tests that want a publish finished when the response is sent)."""
    from huey import PostgresHuey, RedisHuey, SqliteHuey

    options = {"results": False, "immediate": immediate, "utc": True}
    if queue_url.startswith(("redis://", "rediss://")):
        return RedisHuey("baonhung", url=queue_url, **options)
    if queue_url.startswith("postgresql"):
        return PostgresHuey("baonhung", dsn=queue_url.replace("postgresql+psycopg://", "postgresql://", 1),
                            **options)
    directory = Path(data_dir) / "queue"
    directory.mkdir(parents=True, exist_ok=True)
    return SqliteHuey("baonhung", filename=str(directory / "huey.db"), **options)


@dataclass
class JobQueue:
    """The queue of one app or worker. ``state`` has ``settings``, ``sessionmaker``, ``store`` and
    ``bundle_options`` (``builder.app.BaoNhung``)."""

    state: object
    huey: object

    def enqueue(self, job_id: int) -> None:
        self.huey.enqueue(self._task.s(int(job_id)))

    @classmethod
    def create(cls, state, immediate: bool = False) -> "JobQueue":
        queue = cls(state, make_huey(state.settings.queue_url, state.settings.data_dir, immediate))

        def run_job_task(job_id):
            run_job(state, job_id)

        queue._task = queue.huey.task(name=TASK_NAME)(run_job_task)
        return queue


# ------------------------------------------------------------------------------------------------- the newsroom side

def active_job(db: Session, edition_id: int) -> Job | None:
    return db.scalar(select(Job).where(Job.edition_id == edition_id, Job.active.is_(True)))


def submit_job(db: Session, queue: JobQueue, actor: Actor, edition: Edition, kind: str) -> Job:
    """Check at once what the job would refuse (role, status: the same 4xx as publishing inside the request did),
    then record the job and queue it. A second job of the edition while one is queued or running: JobConflict."""
    from .publish import check_publishable, check_unpublishable

    if kind == "publish":
        check_publishable(actor, edition)
    elif kind == "unpublish":
        check_unpublishable(actor, edition)
    else:
        raise ValueError(f"unknown job kind {kind!r}")
    running = active_job(db, edition.id)
    if running is not None:
        raise JobConflict(running)
    job = Job(kind=kind, edition_id=edition.id, user_id=actor.user_id, address=actor.address[:64],
              status="queued", active=True, pages_total=len(edition.pages) if kind == "publish" else 0)
    db.add(job)
    try:
        db.commit()
    except IntegrityError:  # another request's job got in between the look and the insert
        db.rollback()
        running = active_job(db, edition.id)
        if running is None:
            raise
        raise JobConflict(running) from None
    try:
        queue.enqueue(job.id)
    except Exception as exc:  # the queue's storage is unreachable: the job would wait forever
        incident = secrets.token_hex(4)
        log.exception("queueing job %s failed [incident %s]", job.id, incident)
        _finish(db, job.id, "failed", error={"code": "server_error", "values": {"incident": incident}})
        raise ServerFault(incident) from exc
    db.expire_all()  # an immediate queue has run the job in a session of its own
    return db.get(Job, job.id)


def job_json(job: Job, lang: str = "vi") -> dict:
    error = None
    if job.error:
        err = AppError(job.error["code"], **(job.error.get("values") or {}))  # "code": the registry name
        error = {"error": err.code, "message": err.message(lang)}
    return {"id": job.id, "kind": job.kind, "edition_id": job.edition_id, "status": job.status,
            "pages_done": job.pages_done, "pages_total": job.pages_total, "error": error, "version": job.version,
            "attempts": job.attempts, "created_at": _iso(job.created_at), "started_at": _iso(job.started_at),
            "finished_at": _iso(job.finished_at)}


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() + "Z" if value is not None else None


# --------------------------------------------------------------------------------------------------- the worker side

def _finish(db: Session, job_id: int, status: str, error: dict | None = None, version: int | None = None) -> None:
    db.execute(update(Job).where(Job.id == job_id).values(status=status, active=None, error=error, version=version,
                                                          finished_at=utcnow()))
    db.commit()


def _claim(db: Session, job_id: int) -> bool:
    """queued -> running in one statement: of two deliveries of one message, one runs it."""
    now = utcnow()
    claimed = db.execute(update(Job).where(Job.id == job_id, Job.status == "queued")
                         .values(status="running", attempts=Job.attempts + 1, started_at=now, heartbeat_at=now,
                                 worker=worker_name(), pages_done=0)).rowcount
    db.commit()
    return claimed == 1


def run_job(state, job_id: int) -> str | None:
    """Run one queued job to its end (done or failed). Returns its final status (None: not ours to run — deleted
    with its edition, or claimed by another worker)."""
    from .publish import publish_edition, unpublish_edition

    db = state.sessionmaker()
    progress_db = state.sessionmaker()
    try:
        if not _claim(db, job_id):
            return None
        job = db.get(Job, job_id)
        edition = db.get(Edition, job.edition_id)
        user = db.get(User, job.user_id) if job.user_id is not None else None
        if user is None or edition is None:  # the account was deleted while the job waited
            _finish(db, job_id, "failed", error={"code": "not_found", "values": {"what": "user"}})
            return "failed"
        actor = Actor(user.id, user.email, user.role, job.address)

        def progress(done: int, total: int) -> None:
            progress_db.execute(update(Job).where(Job.id == job_id)
                                .values(pages_done=done, pages_total=total, heartbeat_at=utcnow()))
            progress_db.commit()

        try:
            if job.kind == "publish":
                version = publish_edition(db, state.store, state.settings, actor, edition, state.bundle_options,
                                          progress=progress).version
            else:
                unpublish_edition(db, state.store, state.settings, actor, edition)
                version = None
        except AppError as err:  # refused or failed: recorded by publishing; the editor sees its message
            db.rollback()
            _finish(db, job_id, "failed", error={"code": err.name, "values": _plain(err.values)})
            return "failed"
        except Exception:  # noqa: BLE001 - not one of publishing's typed errors (the database went away, ...)
            db.rollback()
            incident = secrets.token_hex(4)
            log.exception("job %s failed [incident %s]", job_id, incident)
            _finish(db, job_id, "failed", error={"code": "server_error", "values": {"incident": incident}})
            return "failed"
        _finish(db, job_id, "done", version=version)
        return "done"
    finally:
        progress_db.close()
        db.close()


def _plain(values: dict) -> dict:
    """An error's values as JSON holds them (the message is rendered again when the job is read)."""
    return {k: v if isinstance(v, (str, int, float, bool, type(None))) or _is_part(v) else str(v)
            for k, v in values.items()}


def _is_part(value) -> bool:
    """A message part built with builder.errors.msg (a dict of plain values and parts): kept, so the stored error
    renders in either language when the job is read."""
    return (isinstance(value, dict) and isinstance(value.get("msg"), str)
            and all(isinstance(v, (str, int, float, bool, type(None))) or _is_part(v)
                    for v in (value.get("values") or {}).values()))


def _owner_dead(job: Job, now: dt.datetime) -> bool:
    host, _, pid = (job.worker or "").rpartition(":")
    if host == socket.gethostname() and pid.isdigit():
        if int(pid) == os.getpid():
            return False  # this process runs it (a consumer thread beside this one)
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False  # alive, under another user
        return False
    beat = job.heartbeat_at or job.started_at or job.created_at
    return (now - beat).total_seconds() > STALE_HEARTBEAT_S


def recover_interrupted(state, queue: JobQueue) -> dict:
    """At a worker's start: a running job whose worker died is queued again (its next attempt) or, after
    MAX_ATTEMPTS, marked failed with the interruption as its error (``builder.publish.sweep_after_crash`` has
    recorded the interrupted publish for the editor's failure list); queued jobs are queued again (a message lost
    with a killed worker; a duplicate is claimed once). Returns the counts."""
    db = state.sessionmaker()
    done = {"requeued": 0, "failed": 0, "queued": 0}
    now = utcnow()
    try:
        for job in db.scalars(select(Job).where(Job.status == "running")).all():
            if not _owner_dead(job, now):
                continue
            if job.attempts < MAX_ATTEMPTS:
                moved = db.execute(update(Job).where(Job.id == job.id, Job.status == "running",
                                                     Job.worker == job.worker)
                                   .values(status="queued", worker="")).rowcount
                db.commit()
                if moved:
                    queue.enqueue(job.id)
                    done["requeued"] += 1
            else:
                _finish(db, job.id, "failed", error={"code": "job_interrupted",
                                                     "values": {"attempts": job.attempts}})
                done["failed"] += 1
        for job_id in db.scalars(select(Job.id).where(Job.status == "queued")).all():
            queue.enqueue(job_id)
            done["queued"] += 1
    finally:
        db.close()
    return done


def start_consumer_thread(queue: JobQueue, logger=log) -> threading.Event:
    """Consume the queue in a daemon thread of this process (``baonhung serve``, the one-machine default) with
    huey's own worker loop. Set the returned event to stop it."""
    from huey.consumer import Worker

    stop = threading.Event()
    swept = recover_interrupted(queue.state, queue)
    if any(swept.values()):
        logger.warning("jobs after an interrupted run: %s", swept)
    worker = Worker(queue.huey, stop, default_delay=POLL_MIN_S, max_delay=POLL_MAX_S, backoff=POLL_BACKOFF)

    def loop():
        worker.initialize()
        while not stop.is_set():
            worker.loop()  # logs and survives a task's unhandled error and a queue read error

    threading.Thread(target=loop, name="baonhung-jobs", daemon=True).start()
    return stop


def run_consumer(queue: JobQueue, workers: int = 1, logger=log) -> None:
    """``baonhung worker``: huey's consumer (signal handling: SIGINT finishes the running job, SIGTERM stops)."""
    swept = recover_interrupted(queue.state, queue)
    if any(swept.values()):
        logger.warning("jobs after an interrupted run: %s", swept)
    consumer = queue.huey.create_consumer(workers=workers, worker_type="thread", periodic=False,
                                          initial_delay=POLL_MIN_S, max_delay=POLL_MAX_S, backoff=POLL_BACKOFF)
    consumer.run()
