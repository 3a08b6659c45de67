"""The readership events store (issue 26): its tables, its integer codes, the daily salt, and the append path.

A store of its own, separate from the newsroom database: an SQLite file in the data directory by default
(``<data>/analytics/events.sqlite3``), PostgreSQL by ``BAONHUNG_EVENTS_URL``. The public side only appends to the
``events`` table (in PostgreSQL as a role that may INSERT into it and nothing else, see :func:`ingest_role_sql`); the
newsroom side rolls raw events up into ``event_daily`` and reads both (``builder.analytics``). No Flask here.

One raw event is one compact row (no IP address, no User-Agent, no session id in clear)::

    t          BIGINT    event time, ms since the Unix epoch (UTC), as the viewer recorded it
    type       SMALLINT  EVENT_TYPES code
    edition_id INTEGER   published edition, NULL when the viewer knew none yet (archive entry before a page)
    page_id    INTEGER   published page, or NULL
    overlay_id INTEGER   published overlay, or NULL
    visitor    INTEGER   32-bit keyed hash of (daily salt, address, User-Agent, publication): unique readers per day
    session    INTEGER   32-bit keyed hash of (daily salt, the viewer's in-memory session id): sessions
    ctx        SMALLINT  device class, OS family, browser family and entry, packed by :func:`pack_ctx`
    k          SMALLINT  the type's category (stage+scope, quartile, overlay kind, gesture, mode, reaction, reason)
    n          INTEGER   the type's quantity (ms to recognition, dwell ms, ms before giving up, dropped count)
    x_mm, y_mm SMALLINT  aim events: the frame centre on the page, whole millimetres from its top-left (y down)
"""
from __future__ import annotations

import atexit
import collections
import datetime as dt
import hashlib
import operator
import os
import secrets
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from sqlalchemy import (BigInteger, Column, Index, Integer, MetaData, PrimaryKeyConstraint, SmallInteger, Table,
                        create_engine, event)
from sqlalchemy.engine import Engine

# ------------------------------------------------------------------------------------------------ time (Vietnam)
# Asia/Ho_Chi_Minh has been UTC+7 without daylight saving since 1975, so a reader's day and hour are integer
# arithmetic on the epoch milliseconds, the same in Python and in SQL (tests check it against zoneinfo).
VN_OFFSET_MS = 7 * 3600 * 1000
DAY_MS = 86_400_000
HOUR_MS = 3_600_000


def vn_day(t_ms: int) -> int:
    """Day number (days since 1970-01-01) of an epoch-ms instant, in Asia/Ho_Chi_Minh."""
    return (t_ms + VN_OFFSET_MS) // DAY_MS


def day_of_date(d: dt.date) -> int:
    return (d - dt.date(1970, 1, 1)).days


def date_of_day(day: int) -> dt.date:
    return dt.date(1970, 1, 1) + dt.timedelta(days=day)


def day_start_ms(day: int) -> int:
    """Epoch ms of 00:00 Asia/Ho_Chi_Minh on ``day``."""
    return day * DAY_MS - VN_OFFSET_MS


def sql_day(col: str = "t") -> str:
    """SQL for vn_day() of an epoch-ms column (integer division in SQLite and PostgreSQL; t is positive)."""
    return f"(({col} + {VN_OFFSET_MS}) / {DAY_MS})"


def sql_hour(col: str = "t") -> str:
    return f"((({col} + {VN_OFFSET_MS}) / {HOUR_MS}) % 24)"


# ------------------------------------------------------------------------------------------------ codes
# Integer codes are stored, names travel on the wire. Codes are never reused or renumbered (rows keep them forever).
EVENT_TYPES = {
    "opened": 1, "camera_started": 2, "camera_denied": 3, "camera_unavailable": 4, "recognized": 5, "dwell": 6,
    "overlay_shown": 7, "overlay_activated": 8, "media_progress": 9, "model_interaction": 10,
    "panorama_entered": 11, "link_opened": 12, "fallback_used": 13, "recognition_given_up": 14, "reaction": 15,
    "aim": 16,
    # premium overlays (issue 27): a teaser drawn (once per overlay and session), its lock tapped, a code redeemed
    # (k = 1 when after a lock tap of the same session, whose page and overlay it then names; 0 otherwise)
    "premium_impression": 17, "premium_lock_tap": 18, "premium_redeemed": 19,
    "dropped": 100,
    "refused": 101,  # written by the server: whole batches it refused (nothing of them stored), k = REFUSED_REASONS,
                     # n = batches since the last such row; no ids, visitor and session 0 (site report only)  # written by the server: events of an accepted batch it dropped, k = DROP_REASONS, n = count
}
TYPE_NAMES = {v: k for k, v in EVENT_TYPES.items()}
RECOGNITION_STAGES = {"server": 1, "redetect": 2, "offline": 3, "photo": 4}  # recognized.k = stage * 2 + scoped
GESTURES = {"rotate": 1, "zoom": 2, "tap": 3, "move": 4}
FALLBACK_MODES = {"photo_upload": 1, "no_camera_3d": 2}
REACTIONS = {"not_useful": 0, "useful": 1}
QUARTILES = (25, 50, 75, 100)  # media_progress.k is the quartile itself
OVERLAY_KIND_CODES = {"model3d": 1, "video": 2, "audio": 3, "animated_image": 4, "image": 5, "panorama360": 6,
                      "link": 7}
DROP_REASONS = {"unknown_edition": 1, "unknown_page": 2, "unknown_overlay": 3, "wrong_kind": 4, "stale": 5,
                "future": 6, "outside_page": 7, "not_premium": 8}
# Why a whole batch was refused (POST /api/v1/events): counted in the process, written as "refused" rows. Readers
# who opted out (DNT / GPC) are not counted at all.
REFUSED_REASONS = {"invalid": 1, "too_large": 2, "unknown_ids": 3, "rate_limited": 4, "busy": 5, "bot": 6}
SERVER_TYPES_FROM = 100  # types from here on are the server's own rows (dropped, refused), no reader's event
ENTRIES = {"qr": 1, "archive": 2, "offline": 3}  # 0: not said
DEVICE_CLASSES = {"phone": 1, "tablet": 2, "desktop": 3}  # 0: unknown
OS_FAMILIES = {"android": 1, "ios": 2, "ipados": 3, "windows": 4, "macos": 5, "linux": 6, "chromeos": 7}  # 0 other
BROWSER_FAMILIES = {"chrome": 1, "safari": 2, "firefox": 3, "samsung": 4, "edge": 5, "opera": 6, "coccoc": 7,
                    "zalo": 8, "facebook": 9, "webview": 10, "uc": 11, "miui": 12}  # 0 other


def pack_ctx(device_class: int, os_family: int, browser: int, entry: int) -> int:
    """Session context in one SMALLINT: bits 0-1 device class, 2-5 OS family, 6-9 browser family, 10-11 entry."""
    for value, top, name in ((device_class, 3, "device class"), (os_family, 15, "OS family"),
                             (browser, 15, "browser family"), (entry, 3, "entry")):
        if not 0 <= value <= top:
            raise ValueError(f"{name} code {value} outside 0..{top}")
    return device_class | os_family << 2 | browser << 6 | entry << 10


def unpack_ctx(ctx: int) -> tuple[int, int, int, int]:
    """(device class, OS family, browser family, entry) of a packed ctx."""
    return ctx & 3, (ctx >> 2) & 15, (ctx >> 6) & 15, (ctx >> 10) & 3


DEVICE_MASK = (1 << 10) - 1  # ctx & DEVICE_MASK: the device part (class, OS, browser) without the entry

# ------------------------------------------------------------------------------------------------ tables
metadata = MetaData()
events = Table(
    "events", metadata,
    Column("t", BigInteger, nullable=False),
    Column("type", SmallInteger, nullable=False),
    Column("edition_id", Integer),
    Column("page_id", Integer),
    Column("overlay_id", Integer),
    Column("visitor", Integer, nullable=False),
    Column("session", Integer, nullable=False),
    Column("ctx", SmallInteger, nullable=False),
    Column("k", SmallInteger),
    Column("n", Integer),
    Column("x_mm", SmallInteger),
    Column("y_mm", SmallInteger),
    Index("ix_events_t", "t"),  # rollups read a time range of every edition
    # the dashboard's raw part (today, not rolled up yet) of one edition / page: its rows only, not the whole day's
    Index("ix_events_edition_t", "edition_id", "t"),
)
# Daily aggregates, kept forever. One row per (publication, edition, page, overlay, metric, day, key); 0 in an id
# column means "all of the level above" (publication 0 = the whole site). See builder.analytics for the metrics.
event_daily = Table(
    "event_daily", metadata,
    Column("publication_id", Integer, nullable=False),
    Column("edition_id", Integer, nullable=False),
    Column("page_id", Integer, nullable=False),
    Column("overlay_id", Integer, nullable=False),
    Column("metric", SmallInteger, nullable=False),
    Column("day", Integer, nullable=False),
    Column("key", Integer, nullable=False),
    Column("n", BigInteger, nullable=False),
    PrimaryKeyConstraint("publication_id", "edition_id", "page_id", "overlay_id", "metric", "day", "key",
                         name="pk_event_daily"),
    # a page's rows without its edition (heatmap(page_id)): the primary key cannot serve "publication <> 0"
    Index("ix_event_daily_page", "page_id", "metric", "day"),
)
# The days whose raw events have been rolled up (a day with no event is rolled up too: its absence is an answer).
rolled_days = Table(
    "event_rolled_days", metadata,
    Column("day", Integer, primary_key=True, autoincrement=False),
    Column("final", SmallInteger, nullable=False),  # 1 once no event can arrive for the day any more
)


def default_events_url(data_dir: Path) -> str:
    return f"sqlite:///{Path(data_dir) / 'analytics' / 'events.sqlite3'}"


def make_events_engine(url: str) -> Engine:
    """An engine on the events store. SQLite: WAL (the newsroom reads while the public side appends) and
    synchronous=NORMAL (a commit is not fsynced; a power cut may lose the last moments of events, never the file)."""
    if url.startswith("sqlite"):
        if url.startswith("sqlite:///"):
            Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def create_schema(engine: Engine) -> None:
    """Create the events store's tables and indexes (idempotent: an index added since a store was made is created
    then). Run by the newsroom side with the owner's URL."""
    metadata.create_all(engine)
    for index in (*events.indexes, *event_daily.indexes):
        index.create(engine, checkfirst=True)


INGEST_ROLE = "baonhung_ingest"


def ingest_role_sql(role: str = INGEST_ROLE, password: str = "", owner: str | None = None) -> list[str]:
    """PostgreSQL statements making ``role`` a login that can INSERT into ``events`` and nothing else (no SELECT,
    UPDATE, DELETE, TRUNCATE; nothing on the other tables; no CREATE in the schema). Run them as the store's owner.
    ``password`` empty: a role without a password (peer or certificate authentication)."""
    import re

    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", role):
        raise ValueError(f"role name {role!r}: lower-case letters, digits and _ only")
    quoted_pw = "'" + password.replace("'", "''") + "'"
    stmts = [
        f"DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN "
        f"CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT; END IF; END $$",
        f"ALTER ROLE {role} LOGIN NOINHERIT" + (f" PASSWORD {quoted_pw}" if password else ""),
        f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {role}",
        f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {role}",
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
        f"GRANT USAGE ON SCHEMA public TO {role}",
        f"GRANT INSERT ON events TO {role}",
    ]
    return stmts


# ------------------------------------------------------------------------------------------------ daily salt
SALT_BYTES = 32


class SaltStore:
    """The day's random salt for reader and session hashes, one file per Asia/Ho_Chi_Minh day in ``directory``
    (shared by every process of the public side, as the published catalog is). Asking for a day deletes every
    other day's salt: yesterday's hashes cannot be recomputed, so a reader cannot be followed from day to day
    (Plausible's model). The salt never enters a database."""

    def __init__(self, directory: Path):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        self._lock = threading.Lock()
        self._current: tuple[int, bytes] | None = None

    def _path(self, day: int) -> Path:
        return self.dir / f"salt-{date_of_day(day).isoformat()}"

    def salt_for(self, day: int) -> bytes:
        current = self._current
        if current is not None and current[0] == day:
            return current[1]
        with self._lock:
            current = self._current
            if current is not None and current[0] == day:
                return current[1]
            salt = self._load_or_create(day)
            self._current = (day, salt)
            for other in self.dir.glob("salt-*"):
                if other.name != self._path(day).name:
                    other.unlink(missing_ok=True)
            return salt

    def _load_or_create(self, day: int) -> bytes:
        path = self._path(day)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first: use theirs
            for _ in range(50):
                data = path.read_bytes()
                if len(data) == SALT_BYTES:
                    return data
                threading.Event().wait(0.01)  # it is being written
            raise RuntimeError(f"salt file {path} is not {SALT_BYTES} bytes") from None
        salt = secrets.token_bytes(SALT_BYTES)
        with os.fdopen(fd, "wb") as fh:
            fh.write(salt)
        return salt

    def days_kept(self) -> list[str]:
        return sorted(p.name for p in self.dir.glob("salt-*"))


def keyed_hash32(salt: bytes, *parts: str) -> int:
    """A signed 32-bit BLAKE2b hash of ``parts`` keyed by ``salt`` (fits INTEGER in SQLite and PostgreSQL).
    32 bits: among 100,000 readers of one publication in a day ~1 pair collides (1 in 10^5 undercounted)."""
    h = hashlib.blake2b("\x1f".join(parts).encode("utf-8", "surrogatepass"), digest_size=4, key=salt[:64])
    return int.from_bytes(h.digest(), "big", signed=True)


# ------------------------------------------------------------------------------------------------ appending
@dataclass(frozen=True)
class EventRow:
    t: int
    type: int
    edition_id: int | None
    page_id: int | None
    overlay_id: int | None
    visitor: int
    session: int
    ctx: int
    k: int | None = None
    n: int | None = None
    x_mm: int | None = None
    y_mm: int | None = None


COLUMNS = ("t", "type", "edition_id", "page_id", "overlay_id", "visitor", "session", "ctx", "k", "n", "x_mm", "y_mm")


_row_values = operator.attrgetter(*COLUMNS)


# Rows per INSERT statement: one multi-row VALUES (12 parameters a row: 6,000, under SQLite's 32,766 and
# PostgreSQL's 65,535). One statement is one sqlite3_step, so one release of the GIL for the lot: executemany()
# steps (and releases and takes back the GIL) once per row, and each take-back waits for a CPU-bound thread
# (recognition) to hand the GIL over — up to the 5 ms switch interval a row.
INSERT_CHUNK_ROWS = 500


def _insert_sql(engine: Engine) -> str:
    """The driver's parameter mark: "?" for SQLite, "%s" for psycopg (the statements: :func:`_insert_statement`)."""
    marks = {"qmark": "?", "format": "%s", "pyformat": "%s"}
    if engine.dialect.paramstyle not in marks:
        raise ValueError(f"events store driver paramstyle {engine.dialect.paramstyle!r} is not supported")
    return marks[engine.dialect.paramstyle]


@lru_cache(maxsize=64)
def _insert_statement(mark: str, n_rows: int) -> str:
    """The driver-level INSERT of ``n_rows`` rows as flat tuples (no per-row dict)."""
    row = "(" + ", ".join([mark] * len(COLUMNS)) + ")"
    return f"INSERT INTO events ({', '.join(COLUMNS)}) VALUES " + ", ".join([row] * n_rows)


def _insert_rows(engine: Engine, mark: str, rows: list[EventRow]) -> None:
    """``rows`` in one transaction, INSERT_CHUNK_ROWS a statement."""
    with engine.begin() as conn:
        for i in range(0, len(rows), INSERT_CHUNK_ROWS):
            chunk = rows[i:i + INSERT_CHUNK_ROWS]
            params = tuple(v for r in chunk for v in _row_values(r))
            conn.exec_driver_sql(_insert_statement(mark, len(chunk)), params)


class EventWriter:
    """Appends rows to ``events`` in one transaction per call: INSERT only, nothing read back (so the limited
    PostgreSQL role suffices)."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._sql = _insert_sql(engine)

    def append(self, rows: list[EventRow]) -> None:
        if rows:
            _insert_rows(self.engine, self._sql, rows)


class WriterFull(RuntimeError):
    """The group-commit writer's queue holds its limit (the store is slower than the readers, or it is closing):
    the batch is refused whole, nothing stored; ask again in ``retry_after_s`` (HTTP 503 + Retry-After)."""

    def __init__(self, reason: str, retry_after_s: int = 2):
        super().__init__(reason)
        self.retry_after_s = retry_after_s


class _Pending:
    __slots__ = ("rows", "finished", "error")

    def __init__(self, rows: list[EventRow]):
        self.rows = rows
        self.finished = False  # its transaction has committed or failed (set under the writer's lock)
        self.error: BaseException | None = None


# Group commit: limits of the queue (events waiting for their transaction; ~320 bytes each in memory, so ~16 MB at
# most) and of one transaction; how long a request waits for its commit before it is told to come back.
MAX_QUEUED_EVENTS = 50_000
MAX_TRANSACTION_EVENTS = 5_000
COMMIT_WAIT_S = 10.0
FLUSH_WAIT_S = 30.0  # close(): at most this long to write what is queued


class GroupCommitWriter:
    """Appends from many request threads in few transactions (group commit).

    A request's rows go into a bounded in-memory queue and are written with whatever else is queued (at most
    ``max_transaction_events`` rows) in one INSERT transaction: under load one commit carries many batches, when
    idle each batch is written at once. ``ack``:

    - ``"committed"`` (default), **leader-based**: the request that finds no transaction in progress is the leader:
      in its own thread it takes the queue (its own rows among them), inserts and commits; requests arriving
      meanwhile queue their rows and wait on a condition; when the leader is done the first waiting request whose
      rows are still queued leads the next lot. :meth:`append` returns once the transaction holding the rows has
      committed: a 204 means stored. An idle writer costs a request no thread hand-off at all (a writer thread cost
      two GIL hand-offs per post, each a wait beside CPU-bound recognition threads). A failed transaction is rolled
      back (nothing of it stored) and every batch in it gets :class:`WriterFull` (503). A request still queued after
      ``commit_wait_s`` takes its rows out of the queue (never written) and gets WriterFull; one whose rows are in
      the transaction being written when its time is up gets WriterFull too, and they may still be written (the
      viewer does not resend, so nothing is counted twice).
    - ``"queued"``: one writer thread writes the queue; :meth:`append` returns once the rows are queued. Faster to
      answer, but events answered 204 and not yet committed (at most the queue, ~a transaction's time under load)
      are lost if the process dies (kill -9, out of memory, power cut); a normal stop writes them (:meth:`close`,
      also at interpreter exit). A failed transaction is retried once, then its rows are dropped and counted in
      ``lost``.

    A full queue (``max_queued_events``) raises :class:`WriterFull`: never unbounded memory. INSERT only, like
    :class:`EventWriter`."""

    def __init__(self, engine: Engine, ack: str = "committed", max_queued_events: int = MAX_QUEUED_EVENTS,
                 max_transaction_events: int = MAX_TRANSACTION_EVENTS, commit_wait_s: float = COMMIT_WAIT_S,
                 log=None):
        if ack not in ("committed", "queued"):
            raise ValueError(f"ack {ack!r}: 'committed' or 'queued'")
        if not (1 <= max_transaction_events <= max_queued_events):
            raise ValueError("need 1 <= max_transaction_events <= max_queued_events")
        self.engine = engine
        self.ack = ack
        self.max_queued_events = max_queued_events
        self.max_transaction_events = max_transaction_events
        self.commit_wait_s = commit_wait_s
        self.log = log
        self._sql = _insert_sql(engine)
        self._cond = threading.Condition()
        self._queue: collections.deque[_Pending] = collections.deque()
        self._queued_events = 0
        self._busy = False  # a transaction is being written (by a leader, or by the "queued" writer thread)
        self._closing = False
        self._thread: threading.Thread | None = None  # "queued" only
        self.transactions = 0  # committed (for tests and the bench)
        self.lost = 0  # events of "queued" batches whose transaction failed twice

    @property
    def queued_events(self) -> int:
        return self._queued_events

    def append(self, rows: list[EventRow]) -> None:
        if not rows:
            return
        pending = _Pending(rows)
        with self._cond:
            if self._closing:
                raise WriterFull("the events writer is closing")
            if self._queued_events + len(rows) > self.max_queued_events:
                raise WriterFull(f"{self._queued_events} events wait to be written (limit {self.max_queued_events})")
            self._queue.append(pending)
            self._queued_events += len(rows)
            if self.ack == "queued":
                if self._thread is None:  # started by the first append: never in a process that forks afterwards
                    self._thread = threading.Thread(target=self._run, name="baonhung-events-writer", daemon=True)
                    self._thread.start()
                    atexit.register(self.close)
                self._cond.notify_all()
                return
            deadline = None
            while not pending.finished:
                if not self._busy:
                    self._lead()  # writes the queue's head (this batch among it, unless the queue is long)
                    continue
                if deadline is None:
                    deadline = time.monotonic() + self.commit_wait_s
                left = deadline - time.monotonic()
                if left <= 0:
                    if pending in self._queue:  # not taken: out of the queue, never written
                        self._queue.remove(pending)
                        self._queued_events -= len(rows)
                    raise WriterFull(f"the events store did not commit within {self.commit_wait_s:g} s")
                self._cond.wait(left)
        if pending.error is not None:
            raise WriterFull(f"the events store could not write the batch: {pending.error}") from pending.error

    def _take(self) -> list[_Pending]:
        """The queue's head up to a transaction's size (called holding the lock, with no transaction in progress)."""
        lot, n = [], 0
        while self._queue and (not lot or n + len(self._queue[0].rows) <= self.max_transaction_events):
            p = self._queue.popleft()
            lot.append(p)
            n += len(p.rows)
        self._queued_events -= n
        self._busy = True
        return lot

    def _write(self, lot: list[_Pending], attempts: int) -> BaseException | None:
        """One INSERT transaction of the lot's rows (called without the lock); the error, or None once committed."""
        rows = [r for p in lot for r in p.rows]
        error = None
        for attempt in range(attempts):
            try:
                _insert_rows(self.engine, self._sql, rows)
                return None
            except Exception as exc:  # noqa: BLE001 - told to the waiting requests, or logged and counted
                error = exc
                if attempt + 1 < attempts:
                    time.sleep(0.2)
        return error

    def _finish(self, lot: list[_Pending], error: BaseException | None) -> None:
        """Called holding the lock: the lot's outcome to its requests, and the next one may begin."""
        self._busy = False
        if error is None:
            self.transactions += 1
        elif self.ack == "queued":
            self.lost += sum(len(p.rows) for p in lot)
        for p in lot:
            p.error = error
            p.finished = True
        self._cond.notify_all()

    def _log_failure(self, lot: list[_Pending], error: BaseException | None) -> None:
        if error is not None and self.log is not None:
            self.log.error("events writer: a transaction of %d events failed: %s", sum(len(p.rows) for p in lot),
                           error)

    def _lead(self) -> None:
        """Write the queue's head in this thread (called holding the lock; the lock is released while writing)."""
        lot = self._take()
        error: BaseException | None = None
        self._cond.release()
        try:
            error = self._write(lot, attempts=1)
        except BaseException as exc:  # interrupted: the lot's requests must still be told, and the writer freed
            error = exc
            raise
        finally:
            self._cond.acquire()
            self._finish(lot, error)
            if error is not None:
                self._cond.release()
                try:
                    self._log_failure(lot, error)
                finally:
                    self._cond.acquire()

    def _run(self) -> None:
        """The "queued" writer thread: the queue, lot by lot, until closed and empty."""
        while True:
            with self._cond:
                while not self._queue:
                    if self._closing:
                        return
                    self._cond.wait()
                lot = self._take()
            error = self._write(lot, attempts=2)
            with self._cond:
                self._finish(lot, error)
            self._log_failure(lot, error)

    def flush(self, timeout: float = FLUSH_WAIT_S) -> bool:
        """Wait until everything appended so far is written (or failed); False when ``timeout`` passed first."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._busy:
                left = deadline - time.monotonic()
                if left <= 0 or (self.ack == "queued" and (self._thread is None or not self._thread.is_alive())):
                    return not (self._queue or self._busy)
                self._cond.wait(left)
        return True

    def close(self, timeout: float = FLUSH_WAIT_S) -> bool:
        """Write what is queued, then stop; later appends raise WriterFull. True when all was written. (With
        "committed" the waiting requests write the queue themselves; this waits for them.)"""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            atexit.unregister(self.close)
            return not (self._queue or self._busy)
        return self.flush(timeout)


# ------------------------------------------------------------------------------------------------ refused batches
REFUSED_EVERY_S = 60.0  # refused batches are written at most once a minute: a flood of refusals is a few rows


class RefusalCounter:
    """Whole batches refused by the endpoint, counted in the process by reason and written as one "refused" row per
    reason at most every ``every_s`` seconds (on a later request: :meth:`take_due`). Nothing of a refused batch is
    stored; only how many there were and why."""

    def __init__(self, every_s: float = REFUSED_EVERY_S, clock=time.monotonic):
        self.every_s = every_s
        self.clock = clock
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._last = clock()

    def count(self, reason: str) -> None:
        if reason not in REFUSED_REASONS:
            raise ValueError(f"unknown refusal reason {reason!r}")
        with self._lock:
            self._counts[reason] = self._counts.get(reason, 0) + 1

    def take_due(self, now_ms: int, force: bool = False) -> list[EventRow]:
        """The rows to write now (and the counts reset), or [] when the last write was under ``every_s`` ago."""
        with self._lock:
            if not self._counts or (not force and self.clock() - self._last < self.every_s):
                return []
            counts, self._counts, self._last = self._counts, {}, self.clock()
        return [EventRow(now_ms, EVENT_TYPES["refused"], None, None, None, 0, 0, 0, REFUSED_REASONS[r], n)
                for r, n in sorted(counts.items())]

    def put_back(self, rows: list[EventRow]) -> None:
        """Rows that could not be written (the writer is full): counted again for the next write."""
        names = {v: k for k, v in REFUSED_REASONS.items()}
        with self._lock:
            for r in rows:
                self._counts[names[r.k]] = self._counts.get(names[r.k], 0) + r.n
