"""builder.accounts without Flask: changing one's own password and an administrator's reset."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from builder import accounts, auth
from builder import services as svc
from builder.models import AuditEntry
from builder.errors import Forbidden, InvalidField, MissingField

OLD = "mat-khau-cu-dai-1"
NEW = "mat-khau-moi-dai-2"


@pytest.fixture()
def db(tmp_path):
    from builder.db import make_engine, make_sessionmaker

    from tests.conftest import test_database

    url = test_database(tmp_path)  # migrated, on the engine this run tests
    session = make_sessionmaker(make_engine(url))()
    yield session
    session.close()


def make(db, email, role="designer"):
    user, _ = svc.create_user(db, svc.SYSTEM, email, role, OLD)
    return user


def test_a_user_changes_their_password_and_old_sessions_stop_matching(db):
    user = make(db, "a@toasoan.vn")
    before = accounts.session_version(user)
    accounts.change_own_password(db, svc.Actor.of(user, "10.0.0.1"), user, OLD, NEW, NEW)
    assert auth.verify_password(user, NEW) and not auth.verify_password(user, OLD)
    assert accounts.session_version(user) != before  # other sessions carry the old version: they end
    entry = db.scalars(select(AuditEntry).where(AuditEntry.action == "user.password_change")).one()
    assert entry.user_id == user.id and entry.target_id == str(user.id) and entry.address == "10.0.0.1"
    assert NEW not in str(entry.detail) and OLD not in str(entry.detail)


@pytest.mark.parametrize("current,new,repeated,error", [
    ("wrong-password-1", NEW, NEW, InvalidField),          # current password wrong
    (OLD, NEW, NEW + "x", InvalidField),                   # typed twice differently
    (OLD, "short", "short", InvalidField),                 # below auth.MIN_PASSWORD_LENGTH
    (OLD, OLD, OLD, InvalidField),                         # unchanged
    ("", NEW, NEW, MissingField),
    (OLD, "", "", MissingField),
])
def test_a_refused_change_keeps_the_old_password_and_writes_no_audit(db, current, new, repeated, error):
    user = make(db, "b@toasoan.vn")
    hash_before = user.password_hash
    with pytest.raises(error):
        accounts.change_own_password(db, svc.Actor.of(user), user, current, new, repeated)
    db.rollback()
    assert db.get(type(user), user.id).password_hash == hash_before
    assert db.scalars(select(AuditEntry).where(AuditEntry.action == "user.password_change")).all() == []


def test_the_minimum_length_is_the_one_from_auth(db):
    user = make(db, "c@toasoan.vn")
    exact = "x" * auth.MIN_PASSWORD_LENGTH
    with pytest.raises(InvalidField):
        accounts.change_own_password(db, svc.Actor.of(user), user, OLD, exact[:-1], exact[:-1])
    accounts.change_own_password(db, svc.Actor.of(user), user, OLD, exact, exact)
    assert auth.verify_password(user, exact)


def test_only_an_admin_resets_someone_elses_password(db):
    admin = make(db, "admin@toasoan.vn", "admin")
    editor = make(db, "editor@toasoan.vn", "editor")
    target = make(db, "d@toasoan.vn")
    with pytest.raises(Forbidden):
        accounts.reset_password(db, svc.Actor.of(editor), target.id)
    with pytest.raises(Forbidden):  # nor change it through the self-service path
        accounts.change_own_password(db, svc.Actor.of(editor), target, OLD, NEW, NEW)
    user, password = accounts.reset_password(db, svc.Actor.of(admin), target.id)
    assert user.id == target.id and len(password) >= auth.MIN_PASSWORD_LENGTH
    assert auth.verify_password(user, password) and not auth.verify_password(user, OLD)
    entry = db.scalars(select(AuditEntry).where(AuditEntry.action == "user.password_reset")).one()
    assert entry.user_id == admin.id and entry.target_id == str(target.id) and password not in str(entry.detail)
