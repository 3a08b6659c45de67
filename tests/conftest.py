"""Shared fixtures: an app on a temporary data directory (SQLite + local store), users of every role with
API tokens, and helpers to prove that a refused request left no row and no file behind."""
from __future__ import annotations

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
    from builder.app import create_app
    from builder.bundle import BundleOptions
    from builder.db import upgrade

    database_url = database_url or f"sqlite:///{data_dir / 'baonhung.sqlite3'}"
    upgrade(database_url)
    config["DATABASE_URL"] = database_url
    # Tests build bundles without gltf-transform compression unless they ask for it (seconds per page);
    # compression has its own tests in tests/builder.
    config.setdefault("BUNDLE_OPTIONS", BundleOptions(compress=False))
    return create_app({"DATA_DIR": data_dir, "TESTING": True, **config})


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


@pytest.fixture
def users(app) -> Users:
    tokens, ids = {}, {}
    for role in ("admin", "editor", "designer", "print_desk"):
        tokens[role] = user_with_token(app, f"{role}@example.vn", role)
        ids[role] = _user_id(app, f"{role}@example.vn")
    return Users(tokens, ids)


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


def png_bytes(w=1240, h=1754, seed=3) -> bytes:
    """A newspaper-like page (markers.synth) as PNG."""
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
    """A PostgreSQL database of this test module and pytest worker alone, made empty (BAONHUNG_TEST_POSTGRES_URL
    names the server; make test starts one). Modules that shared one database dropped each other's tables when two
    workers ran them at once ("relation events does not exist", "tuple concurrently deleted")."""
    import re

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    base = os.environ.get("BAONHUNG_TEST_POSTGRES_URL")
    if not base:
        pytest.skip("BAONHUNG_TEST_POSTGRES_URL not set (make test sets it)")
    module = re.sub(r"\W", "_", request.module.__name__.rsplit(".", 1)[-1])
    name = f"bn_{module}_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"[:63]
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    _drop_database(admin, name)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(base).set(database=name).render_as_string(hide_password=False)
    _drop_database(admin, name)
    admin.dispose()


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
