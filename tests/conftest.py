"""Shared fixtures: an app on a temporary data directory (local store) and a migrated database of the engine the run
tests (SQLite, or PostgreSQL with ``--db postgresql``), users of every role with API tokens, and helpers to prove that
a refused request left no row and no file behind."""
from __future__ import annotations

import functools
import io
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
SHARED = Path(os.environ.get("BAONHUNG_SHARED_DIR", REPO.parent / "shared"))
ARTIFACTS = REPO / "test-artifacts"



def _cheap_password_hashes() -> None:
    """Argon2id with the cheapest parameters in this test process (~1 ms a hash instead of ~0.3 s; the suite hashes
    hundreds of passwords). Still Argon2id; servers started as subprocesses keep the production parameters, and a hash
    made here is verified there (the parameters travel in the hash)."""
    from argon2 import PasswordHasher

    from builder import auth

    auth.PASSWORD_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


_cheap_password_hashes()


# --- The database engine a run tests: SQLite (the default) or PostgreSQL (``--db postgresql``; make test runs the
# database-touching tests a second time that way). Migrations run once per pytest process into a template; every
# test's database is a copy of it (a file copy on SQLite, CREATE DATABASE ... TEMPLATE on PostgreSQL), ~0.6 s saved
# a test. PostgreSQL databases are named bn_t_<pid>_<n> so concurrent runs on one server never meet, and are dropped
# at the end of the test (module, session) that made them.
ENGINES = ("sqlite", "postgresql")
ENGINE = os.environ.get("BAONHUNG_TEST_DB", "sqlite")  # pytest_configure sets it from --db
# tests whose code (or fixtures' code) names one of these touch the database: the PostgreSQL run selects them
DB_WORDS = ("make_app(", "database_env(", "create_app(", "test_database(", "upgrade(", "pg_url", "make_engine(")
_SQLITE_TEMPLATE: list[Path] = []
_PG: dict = {"admin": None, "template": None, "counter": 0}
_PG_BY_DIR: dict[str, str] = {}  # data dir -> its database's URL (a second make_app on the same data finds it)
_PG_ENGINES: dict[str, list] = {}  # URL -> engines opened on it (disposed before the drop)
_PG_CREATED: list[str] = []  # URLs in order of creation


def pytest_addoption(parser):
    parser.addoption("--db", choices=ENGINES, default=None,
                     help="database engine of make_app/test_database (default sqlite, or $BAONHUNG_TEST_DB); with "
                          "postgresql only the tests that touch the database are collected")


def pytest_configure(config):
    global ENGINE
    ENGINE = config.getoption("--db") or ENGINE
    if ENGINE not in ENGINES:
        raise pytest.UsageError(f"BAONHUNG_TEST_DB must be one of {ENGINES}, not {ENGINE!r}")
    os.environ["BAONHUNG_TEST_DB"] = ENGINE  # pytest-xdist workers and helper processes see the same


_SOURCES: dict = {}


def _source(obj) -> str:
    import inspect

    if obj not in _SOURCES:
        try:
            _SOURCES[obj] = inspect.getsource(obj)
        except (OSError, TypeError):
            _SOURCES[obj] = ""
    return _SOURCES[obj]


def _db_helpers(module) -> tuple[str, ...]:
    """Calls of the module's own functions that reach the database (``name(``)."""
    import inspect

    if module not in _SOURCES:
        _SOURCES[module] = tuple(
            name + "(" for name, obj in vars(module).items()
            if inspect.isfunction(obj) and obj.__module__ == module.__name__ and any(w in _source(obj) for w in DB_WORDS))
    return _SOURCES[module]


def _touches_database(item) -> bool:
    """Whether the test, one of its fixtures or one of its module's helpers it calls opens a database."""
    module = getattr(item, "module", None)
    words = DB_WORDS + (_db_helpers(module) if module is not None else ())
    texts = [_source(getattr(item, "function", None))]
    info = getattr(item, "_fixtureinfo", None)
    for defs in info.name2fixturedefs.values() if info is not None else ():
        texts += [_source(d.func) for d in defs if not d.func.__module__.startswith("_pytest")]
    return any(w in t for t in texts for w in words)


def pytest_collection_modifyitems(config, items):
    if ENGINE != "postgresql":
        return
    kept, dropped = [], []
    for item in items:
        (kept if _touches_database(item) else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
    if not os.environ.get("BAONHUNG_TEST_POSTGRES_URL"):
        if os.environ.get("CI"):
            raise pytest.UsageError("--db postgresql in CI needs BAONHUNG_TEST_POSTGRES_URL (make test sets it)")
        reason = ("PostgreSQL variant: BAONHUNG_TEST_POSTGRES_URL is not set (make test starts a local server and sets "
                  "it; or run scripts/test-postgres.sh)")
        for item in items:
            item.add_marker(pytest.mark.skip(reason=reason))


def _sqlite_template() -> Path:
    if not _SQLITE_TEMPLATE:
        import atexit
        import shutil
        import tempfile

        from builder.db import upgrade

        folder = Path(tempfile.mkdtemp(prefix="baonhung-test-template-"))
        atexit.register(shutil.rmtree, folder, True)
        path = folder / "template.sqlite3"
        upgrade(f"sqlite:///{path}")  # alembic's connection is closed again (NullPool): the file is whole
        _SQLITE_TEMPLATE.append(path)
    return _SQLITE_TEMPLATE[0]


def _pg_admin():
    if _PG["admin"] is None:
        from sqlalchemy import create_engine

        base = os.environ.get("BAONHUNG_TEST_POSTGRES_URL")
        if not base:
            pytest.skip("PostgreSQL: BAONHUNG_TEST_POSTGRES_URL is not set (make test starts a local server and sets "
                        "it; or run scripts/test-postgres.sh)")
        _PG["base"] = base
        _PG["admin"] = create_engine(base, isolation_level="AUTOCOMMIT", pool_size=1)
        _drop_leftovers(_PG["admin"])
    return _PG["admin"]


def _drop_leftovers(admin) -> None:
    """Databases of earlier test processes that are gone (killed before their teardown)."""
    from sqlalchemy import text

    with admin.connect() as conn:
        names = conn.execute(text("SELECT datname FROM pg_database WHERE datname LIKE 'bn\\_t\\_%' "
                                  "OR datname LIKE 'bn\\_tpl\\_%'")).scalars().all()
    for name in names:
        pid = name.split("_")[2]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            _drop_database(admin, name)


def _pg_url_of(name: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(_PG["base"]).set(database=name).render_as_string(hide_password=False)


_SPARE: dict = {}  # template -> (name, Future): the next database from that template, made while a test runs


def _pg_make(name: str, template: str) -> None:
    from sqlalchemy import text

    with _pg_admin().connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))


def _pg_next_name() -> str:
    _PG["counter"] += 1
    return f"bn_t_{os.getpid()}_{_PG['counter']}"


def _pg_create(migrated: bool, template: str | None = None) -> str:
    """A new database, a copy of ``template`` (default: the migrated template, or an empty one). A copy of a
    template takes 0.15-0.3 s; the next copy of the same template is made on a thread while the test runs, so a test
    mostly finds its database ready."""
    from concurrent.futures import ThreadPoolExecutor

    from sqlalchemy import text

    admin = _pg_admin()
    if migrated and _PG["template"] is None:
        from builder.db import upgrade

        name = f"bn_tpl_{os.getpid()}"
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        upgrade(_pg_url_of(name))  # alembic's connection is closed again (NullPool): nobody is in the template
        _PG["template"] = name
    template = template or (_PG["template"] if migrated else "template0")
    spare = _SPARE.pop(template, None)
    if spare is not None:
        name = spare[0]
        spare[1].result()
    else:
        name = _pg_next_name()
        _pg_make(name, template)
    if template != "template0":
        if "ahead" not in _PG:
            _PG["ahead"] = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pg-ahead")
        following = _pg_next_name()
        _SPARE[template] = (following, _PG["ahead"].submit(_pg_make, following, template))
    url = _pg_url_of(name)
    _PG_ENGINES[url] = []
    _PG_CREATED.append(url)
    return url


def test_database(data_dir: Path, migrated: bool = True) -> str:
    """The URL of ``data_dir``'s database on this run's engine, made the first time it is asked for: migrated to the
    head revision (a copy of the template) or, with ``migrated=False``, empty (for a command that migrates itself).
    On SQLite it is ``data_dir/baonhung.sqlite3``, the product's default; asked again, the same database."""
    data_dir = Path(data_dir)
    if ENGINE == "sqlite":
        path = data_dir / "baonhung.sqlite3"
        url = f"sqlite:///{path}"
        if path.exists():
            from builder.db import upgrade

            upgrade(url)
        elif migrated:
            import shutil

            data_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(_sqlite_template(), path)
        return url
    key = str(data_dir.resolve())
    if key not in _PG_BY_DIR:
        _PG_BY_DIR[key] = _pg_create(migrated)
    return _PG_BY_DIR[key]


test_database.__test__ = False  # a helper, not a test


def database_env(data_dir: Path, migrated: bool = False) -> dict:
    """Environment for a ``baonhung`` subprocess on ``data_dir``: on PostgreSQL runs, DATABASE_URL of its database
    (empty unless ``migrated``: the command migrates it itself); on SQLite, nothing (the default file)."""
    if ENGINE == "sqlite":
        return {}
    return {"DATABASE_URL": test_database(data_dir, migrated=migrated)}


def database_dump(url: str) -> str:
    """Every row of the database as text (SQLite: its SQL dump; PostgreSQL: pg_dump --data-only), to assert that no
    secret is stored in the clear."""
    if url.startswith("sqlite:///"):
        import sqlite3

        con = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:
            return "\n".join(con.iterdump())
        finally:
            con.close()
    import subprocess

    return subprocess.run(["pg_dump", "--data-only", "--no-owner", url.replace("postgresql+psycopg://", "postgresql://")],
                          check=True, capture_output=True, text=True, timeout=120).stdout


def _drop_made_since(mark: int) -> None:
    while len(_PG_CREATED) > mark:
        url = _PG_CREATED.pop()
        for engine in _PG_ENGINES.pop(url, []):
            engine.dispose()
        for key in [k for k, v in _PG_BY_DIR.items() if v == url]:
            del _PG_BY_DIR[key]
        _drop_database(_PG["admin"], url.rsplit("/", 1)[1].split("?")[0])


@pytest.fixture(autouse=True, scope="session")
def _pg_session_databases():
    mark = len(_PG_CREATED)
    yield
    if _PG["admin"] is not None:
        _drop_made_since(mark)
        for name, made in _SPARE.values():
            if made.exception() is None:
                _drop_database(_PG["admin"], name)
        _SPARE.clear()
        if _PG["template"]:
            _drop_database(_PG["admin"], _PG["template"])
        for _folder, template, _result in _SNAPSHOTS.values():
            if template:
                _drop_database(_PG["admin"], template)
        _PG["admin"].dispose()


@pytest.fixture(autouse=True, scope="module")
def _pg_module_databases():
    mark = len(_PG_CREATED)
    yield
    _drop_made_since(mark)


@pytest.fixture(autouse=True)
def _pg_test_databases():
    mark = len(_PG_CREATED)
    yield
    _drop_made_since(mark)


@pytest.fixture
def db_engine() -> str:
    """'sqlite' or 'postgresql': the engine this run tests."""
    return ENGINE


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = SHARED / "data"
    if not path.is_dir():
        pytest.fail(f"shared data not found at {path} (set BAONHUNG_SHARED_DIR)")
    return path


def make_app(data_dir: Path, database_url: str | None = None, **config):
    """The authoring app (the public side included) on ``data_dir`` and a migrated database of the engine this run
    tests (``--db``): a copy of the session's migrated template, or the database ``data_dir`` already has (a server
    starting again on the same data is brought to the head revision, as ``baonhung serve`` does)."""
    from builder.app import create_app
    from builder.bundle import BundleOptions

    if database_url is None:
        database_url = test_database(data_dir)
    else:  # a database the test made itself (an empty one, or one at an older revision)
        from builder.db import upgrade

        upgrade(database_url)
    config["DATABASE_URL"] = database_url
    # Tests build bundles without gltf-transform compression unless they ask for it (seconds per page);
    # compression has its own tests in tests/builder.
    config.setdefault("BUNDLE_OPTIONS", BundleOptions(compress=False))
    app = create_app({"DATA_DIR": data_dir, "TESTING": True, **config})
    if database_url in _PG_ENGINES:
        _PG_ENGINES[database_url].append(app.extensions["baonhung"].engine)
    return app


def admin_token(app, email: str = "admin@toasoan.vn") -> tuple[int, str]:
    """A new admin account in ``app`` and an API token of theirs: (user id, bearer secret)."""
    from builder import auth as auth_mod, services as svc

    db = app.extensions["baonhung"].sessionmaker()
    try:
        user, _ = svc.create_user(db, svc.SYSTEM, email, "admin", "mat-khau-that-dai-1")
        _, secret = auth_mod.issue_token(db, user, "test")
        db.commit()
        return user.id, secret
    finally:
        db.close()


_SNAPSHOTS: dict[str, tuple] = {}  # key -> (copy of the data directory, PostgreSQL template or None, build's result)


def restored_app(data_dir: Path, key: str, build):
    """``(app, result)``: an app on ``data_dir`` holding the state ``build(app)`` made, and what ``build`` returned.

    The first time a test process asks for ``key`` the state is built for real on a fresh app; a copy of the data
    directory (the SQLite file with it) and, on PostgreSQL, a template database of it are kept, and later tests get a
    copy of both (a file copy, CREATE DATABASE ... TEMPLATE) instead of building again: publishing a page is ~1 s,
    restoring it ~0.1 s. ``build`` must return plain data (ids, tokens), not objects bound to its app."""
    import copy
    import shutil
    import tempfile

    data_dir = Path(data_dir)
    if key not in _SNAPSHOTS:
        app = make_app(data_dir)
        result = build(app)
        url = app.extensions["baonhung"].settings.database_url
        for engine in [app.extensions["baonhung"].engine, *_PG_ENGINES.get(url, [])]:
            engine.dispose()  # SQLite: the WAL checkpointed into the file; PostgreSQL: nobody in the source
        folder = Path(tempfile.mkdtemp(prefix="baonhung-test-snapshot-")) / "data"
        shutil.copytree(data_dir, folder)
        template = None
        if ENGINE == "postgresql":
            from sqlalchemy import text

            template = f"bn_tpl_{os.getpid()}_s{len(_SNAPSHOTS)}"
            with _pg_admin().connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{template}" TEMPLATE "{url.rsplit("/", 1)[1].split("?")[0]}"'))
        _SNAPSHOTS[key] = (folder, template, copy.deepcopy(result))
        return app, result
    folder, template, result = _SNAPSHOTS[key]
    shutil.copytree(folder, data_dir)
    if template:
        _PG_BY_DIR[str(data_dir.resolve())] = _pg_create(True, template=template)
    return make_app(data_dir), copy.deepcopy(result)


def restored_fixtures(fixture: str, build) -> tuple:
    """A module's ``app`` and ``users`` fixtures for tests that ask for ``fixture``, a state ``build(app)`` makes:
    such a test gets an app holding it, built once per test process and then restored (``restored_app``), and its
    users; any other test gets a fresh app and new users. ``build`` returns {"users": Users, fixture: value};
    ``request.node.restored[fixture]`` gives the value to the module's ``fixture`` fixture.
    Use: ``app, users = restored_fixtures("page", _make_page)``."""

    @pytest.fixture
    def app(tmp_path, request):
        if fixture not in request.fixturenames:
            return make_app(tmp_path / "data")
        app, state = restored_app(tmp_path / "data", f"{request.module.__name__}.{fixture}", build)
        request.node.restored = state
        return app

    @pytest.fixture
    def users(app, request) -> Users:
        state = getattr(request.node, "restored", None)
        return state["users"] if state else make_users(app)

    return app, users


@dataclass
class Users:
    tokens: dict  # role -> bearer token
    ids: dict  # role -> user id
    password: str = "correct horse battery"


@pytest.fixture
def app(tmp_path):
    return make_app(tmp_path / "data")


@pytest.fixture
def client(app):
    return app.test_client()


def make_users(app) -> Users:
    """An account of every role with an API token."""
    tokens, ids = {}, {}
    for role in ("admin", "editor", "designer", "print_desk"):
        tokens[role] = user_with_token(app, f"{role}@example.vn", role)
        ids[role] = _user_id(app, f"{role}@example.vn")
    return Users(tokens, ids)


@pytest.fixture
def users(app) -> Users:
    return make_users(app)


def user_with_token(app, email: str, role: str, password: str = "correct horse battery") -> str:
    """Create an account through the domain layer and return a fresh API token for it."""
    from builder import services as svc

    db = app.extensions["baonhung"].sessionmaker()
    try:
        user, _ = svc.create_user(db, svc.SYSTEM, email, role, password)
        _row, secret = svc.issue_token(db, svc.SYSTEM, user, "tests")
        return secret
    finally:
        db.close()


def _user_id(app, email: str) -> int:
    from sqlalchemy import select

    from builder.models import User

    db = app.extensions["baonhung"].sessionmaker()
    try:
        return db.scalar(select(User.id).where(User.email == email))
    finally:
        db.close()


def auth(token: str, lang: str | None = None) -> dict:
    headers = {"Authorization": f"Bearer {token}"}
    if lang:
        headers["Accept-Language"] = lang
    return headers


def state_snapshot(app) -> tuple[dict, frozenset]:
    """Row count of every content table and the set of files in the store (to assert nothing changed)."""
    from sqlalchemy import func, select

    from builder.models import ApiToken, Edition, Overlay, Page, Publication, PublishedVersion, User

    state = app.extensions["baonhung"]
    db = state.sessionmaker()
    try:
        counts = {m.__tablename__: db.scalar(select(func.count()).select_from(m))
                  for m in (User, ApiToken, Publication, Edition, Page, Overlay, PublishedVersion)}
    finally:
        db.close()
    files = frozenset(str(p.relative_to(state.store.root)) for p in state.store.root.rglob("*") if p.is_file())
    return counts, files


@functools.lru_cache(maxsize=64)
def png_bytes(w=1240, h=1754, seed=3) -> bytes:
    """A newspaper-like page (markers.synth) as PNG (bytes are immutable: made once per process for each size and
    seed, ~0.1 s each)."""
    import cv2

    from markers.synth import generate_page

    page = generate_page(seed)
    if (page.shape[1], page.shape[0]) != (w, h):
        page = cv2.resize(page, (w, h), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".png", page)
    assert ok
    return buf.tobytes()


def upload(data: bytes, name: str):
    return (io.BytesIO(data), name)


@pytest.fixture(scope="module")
def pg_url(request):
    """An empty PostgreSQL database of this test module alone, on either run (BAONHUNG_TEST_POSTGRES_URL names the
    server; make test starts one). Named after the pytest process, so concurrent runs and workers never share one
    (modules that shared one database dropped each other's tables: "relation events does not exist")."""
    import re

    from sqlalchemy import text

    admin = _pg_admin()
    module = re.sub(r"\W", "_", request.module.__name__.rsplit(".", 1)[-1])
    name = f"bn_t_{os.getpid()}_m_{module}"[:63]
    _drop_database(admin, name)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield _pg_url_of(name)
    _drop_database(admin, name)


def _drop_database(admin, name: str, attempts: int = 10) -> None:
    """Drop a test database, ending its connections. An autovacuum worker in it (the job-queue test churns rows) can
    only be ended with pg_signal_backend (scripts/test-postgres.sh grants it); without it, wait for the worker."""
    import time

    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError, ProgrammingError

    for attempt in range(attempts):
        try:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            return
        except (ProgrammingError, OperationalError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.5)
