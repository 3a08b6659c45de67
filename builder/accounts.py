"""Account self-service: a user changes their own password, an administrator resets someone else's. No Flask here.

Sessions remember the tail of the password hash (``session["pwv"]``, checked on every request in
``builder.web.common.load_user``), so writing a new hash ends every other session of that user. The caller keeps
its own session alive by storing :func:`session_version` of the new hash.
"""
from __future__ import annotations

import hmac

from sqlalchemy.orm import Session

from . import auth
from .models import User
from .errors import InvalidField, MissingField
from .services import ADMINS, Actor, audit, get_or_404, require_role

SESSION_VERSION_CHARS = 16


def session_version(user: User) -> str:
    """What a session stores to stay valid until the password changes."""
    return user.password_hash[-SESSION_VERSION_CHARS:]


def change_own_password(db: Session, actor: Actor, user: User, current: str, new: str, repeated: str) -> None:
    """Check the current password and set a new one (typed twice, at least ``auth.MIN_PASSWORD_LENGTH``)."""
    if actor.user_id != user.id:
        require_role(actor, ADMINS)  # only for oneself; admins use reset_password for others
    if not current:
        raise MissingField("current_password")
    if not new:
        raise MissingField("new_password")
    if not auth.verify_password(user, current):
        raise InvalidField("current_password", "the current password is wrong")
    if not hmac.compare_digest(new.encode(), (repeated or "").encode()):
        raise InvalidField("new_password", "the two new passwords differ")
    if new == current:
        raise InvalidField("new_password", "the new password is the same as the current one")
    if len(new) < auth.MIN_PASSWORD_LENGTH:
        raise InvalidField("new_password", "at least {limit} characters", limit=auth.MIN_PASSWORD_LENGTH)
    user.password_hash = auth.hash_password(new)
    audit(db, actor, "user.password_change", "user", user.id)
    db.commit()


def reset_password(db: Session, actor: Actor, user_id: int) -> tuple[User, str]:
    """An administrator gives a user a new generated password (returned once, to be passed on safely)."""
    require_role(actor, ADMINS)
    user = get_or_404(db, User, user_id, "user")
    password = auth.generate_password()
    user.password_hash = auth.hash_password(password)
    audit(db, actor, "user.password_reset", "user", user.id, email=user.email)
    db.commit()
    return user, password
