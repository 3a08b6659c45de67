"""Passwords (Argon2id), login throttling and API tokens. No Flask here.

Tokens are 256-bit random secrets shown once; only their SHA-256 is stored (a fast hash is right for
high-entropy secrets — Argon2 is for low-entropy passwords).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from .models import ApiToken, LoginAttempt, User, UserSession, utcnow
from .errors import InvalidField, LoginThrottled

PASSWORD_HASHER = PasswordHasher()  # argon2-cffi defaults: Argon2id, RFC 9106 low-memory profile
# Callers use ``auth.PASSWORD_HASHER`` at call time, so a test session can put cheap parameters here (tests/conftest.py).
TOKEN_PREFIX = "bn_"
MIN_PASSWORD_LENGTH = 10  # NIST SP 800-63B asks for at least 8; newsrooms share machines, so a bit more


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidField("password", "at least {limit} characters", limit=MIN_PASSWORD_LENGTH)
    return PASSWORD_HASHER.hash(password)


def verify_password(user: User, password: str) -> bool:
    try:
        return PASSWORD_HASHER.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def generate_password() -> str:
    return secrets.token_urlsafe(12)


def check_throttle(db: Session, attempts, email: str, address: str, max_failures: int, lock_seconds: int,
                   max_address_failures: int) -> None:
    """Raise LoginThrottled when the failed sign-ins of (email, address) over the last ``lock_seconds`` reached
    ``max_failures``, or those of the address for any emails reached ``max_address_failures``: the lock lasts until
    the oldest counted failure ages out. ``attempts``: the model of failures (``LoginAttempt`` for staff,
    ``ReaderLoginAttempt`` for readers), with ``email``, ``address`` and ``at``."""
    since = utcnow() - dt.timedelta(seconds=lock_seconds)
    for where, limit in (((attempts.email == email, attempts.address == address), max_failures),
                         ((attempts.address == address,), max_address_failures)):
        recent = db.scalars(select(attempts.at).where(*where, attempts.at >= since)
                            .order_by(attempts.at.desc()).limit(limit)).all()
        if len(recent) >= limit:
            wait = int((recent[-1] + dt.timedelta(seconds=lock_seconds) - utcnow()).total_seconds()) + 1
            raise LoginThrottled(max(wait, 1))


def check_login(db: Session, email: str, password: str, address: str, max_failures: int,
                lock_seconds: int, max_address_failures: int = 20) -> User | None:
    """Return the user for a correct active login, None for a wrong one; raise LoginThrottled when locked.

    Failures are counted per (email, address) over the last ``lock_seconds``; at ``max_failures`` the pair
    is locked until the oldest counted failure ages out. A correct password clears the counter. Failures from one
    address for any emails are counted too: at ``max_address_failures`` the address is locked the same way (30 wrong
    passwords for 30 emails were never throttled, each costing an Argon2 hash).
    """
    email = (email or "").strip().lower()
    check_throttle(db, LoginAttempt, email, address, max_failures, lock_seconds, max_address_failures)
    user = db.scalar(select(User).where(func.lower(User.email) == email))
    if user is not None and user.active and verify_password(user, password):
        db.execute(delete(LoginAttempt).where(LoginAttempt.email == email, LoginAttempt.address == address))
        if PASSWORD_HASHER.check_needs_rehash(user.password_hash):
            user.password_hash = PASSWORD_HASHER.hash(password)
        db.commit()
        return user
    if user is None:
        PASSWORD_HASHER.hash(password or "x")  # spend the same time: no user enumeration by timing
    db.add(LoginAttempt(email=email, address=address))
    db.commit()
    return None


def token_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def issue_token(db: Session, user: User, name: str = "", expires_days: int | None = None) -> tuple[ApiToken, str]:
    """Create a token; returns the row and the secret (shown once, never stored)."""
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(user_id=user.id, name=name[:100], prefix=secret[:10], token_hash=token_digest(secret),
                   expires_at=(utcnow() + dt.timedelta(days=expires_days)) if expires_days else None)
    db.add(row)
    db.flush()
    return row, secret


def user_for_token(db: Session, secret: str) -> User | None:
    """The active user owning a valid (not revoked, not expired) token, or None."""
    if not secret or not secret.startswith(TOKEN_PREFIX):
        return None
    row = db.scalar(select(ApiToken).where(ApiToken.token_hash == token_digest(secret)))
    now = utcnow()
    if row is None or row.revoked_at is not None or (row.expires_at is not None and row.expires_at <= now):
        return None
    if not row.user.active:
        return None
    row.last_used_at = now
    db.commit()
    return row.user


def open_session(db: Session, user: User, address: str) -> str:
    """A new server-side session for ``user``; returns the secret the session cookie carries (stored hashed)."""
    secret = secrets.token_urlsafe(32)
    db.add(UserSession(user_id=user.id, token_hash=token_digest(secret), address=(address or "")[:64]))
    db.flush()
    return secret


def session_user(db: Session, user_id, secret: str | None) -> User | None:
    """The active user of a live (not revoked) session, or None."""
    if not secret or not isinstance(secret, str):
        return None
    row = db.scalar(select(UserSession).where(UserSession.token_hash == token_digest(secret)))
    if row is None or row.revoked_at is not None or row.user_id != user_id:
        return None
    user = db.get(User, row.user_id)
    return user if user is not None and user.active else None


def close_session(db: Session, secret: str | None) -> bool:
    """End a session on the server (its cookie, copied or not, no longer signs anyone in). True if one was open."""
    if not secret or not isinstance(secret, str):
        return False
    row = db.scalar(select(UserSession).where(UserSession.token_hash == token_digest(secret),
                                              UserSession.revoked_at.is_(None)))
    if row is None:
        return False
    row.revoked_at = utcnow()
    return True


def close_other_sessions(db: Session, user: User, keep_secret: str | None = None) -> int:
    """End every session of ``user`` but the one of ``keep_secret``; returns how many were ended."""
    keep = token_digest(keep_secret) if keep_secret else None
    rows = db.scalars(select(UserSession).where(UserSession.user_id == user.id, UserSession.revoked_at.is_(None))).all()
    now = utcnow()
    ended = 0
    for row in rows:
        if row.token_hash != keep:
            row.revoked_at = now
            ended += 1
    return ended


def revoke_tokens(db: Session, user: User) -> int:
    """Revoke every live API token of ``user``; returns how many."""
    now = utcnow()
    rows = db.scalars(select(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))).all()
    for row in rows:
        row.revoked_at = now
    return len(rows)
