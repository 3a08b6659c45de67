"""Reader accounts (issue 27): sign-up, throttled sign-in, sessions and password-reset tokens. No Flask here.

Readers are another kind of account from newsroom staff (``builder.auth``): another table, another cookie, no role;
nothing of the authoring UI or API accepts them. Passwords are hashed with the staff hasher (Argon2id); session and
reset tokens are 256-bit random secrets of which only the SHA-256 is stored (``auth.token_digest``).
"""
from __future__ import annotations

import datetime as dt
import re
import secrets

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from . import auth
from .auth import MIN_PASSWORD_LENGTH, token_digest
from .models import PasswordReset, Reader, ReaderLoginAttempt, ReaderSession, utcnow
from .errors import AppError, InvalidField

MAX_EMAIL_LENGTH = 254  # RFC 5321's limit on a forward path
MAX_PASSWORD_LENGTH = 256  # a pass phrase fits; a megabyte "password" would only cost Argon2 time
SESSION_DAYS = 30  # the reader cookie's life (docs/PREMIUM.md); a session older than this signs no one in
RESET_TTL = dt.timedelta(hours=1)  # an emailed reset link's life
MAX_RESETS_PER_HOUR = 3  # reset mails per reader per hour: enough for a lost mail, no mail bombing of an inbox
TOKEN_BYTES = 32
LANGS = ("vi", "en")
# One "@", no spaces or control characters, a dotted domain: the address is checked for real by the mail it gets.
_EMAIL_RE = re.compile(r"^[^@\s\x00-\x1f\x7f]{1,64}@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f.]+$")


def normalise_email(email) -> str:
    """The address as stored and compared: trimmed, lower case. InvalidField when it is not an address."""
    if not isinstance(email, str):
        raise InvalidField("email", "must be an email address")
    value = email.strip().lower()
    if len(value) > MAX_EMAIL_LENGTH or not _EMAIL_RE.match(value) or ".." in value.split("@")[1]:
        raise InvalidField("email", "must be an email address")
    return value


def check_password_policy(password, field: str = "password") -> str:
    """The staff rule (at least ``auth.MIN_PASSWORD_LENGTH`` characters) and an upper bound."""
    if not isinstance(password, str):
        raise InvalidField(field, "must be text")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidField(field, "at least {limit} characters", limit=MIN_PASSWORD_LENGTH)
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidField(field, "at most {limit} characters", limit=MAX_PASSWORD_LENGTH)
    return password


def _verify(reader: Reader, password: str) -> bool:
    from argon2.exceptions import InvalidHashError, VerificationError

    try:
        return auth.PASSWORD_HASHER.verify(reader.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def sign_up(db: Session, email, password, language: str = "vi") -> Reader:
    """A new active reader (committed). 400 ``invalid_field``; 409 ``email_taken`` when the address has an account."""
    email = normalise_email(email)
    check_password_policy(password)
    if db.scalar(select(Reader.id).where(Reader.email == email)) is not None:
        raise AppError("email_taken")
    reader = Reader(email=email, password_hash=auth.PASSWORD_HASHER.hash(password),
                    language=language if language in LANGS else "vi")
    db.add(reader)
    try:
        db.commit()
    except IntegrityError:  # another request signed the same address up in between
        db.rollback()
        raise AppError("email_taken") from None
    return reader


def sign_in(db: Session, email, password, address: str, max_failures: int, lock_seconds: int,
            max_address_failures: int) -> Reader | None:
    """The reader for a correct active sign-in, None for a wrong one; raise LoginThrottled (429) when locked.

    Throttled as staff logins are (``auth.check_login``, the same settings): failures per (email, address) and per
    address over the last ``lock_seconds``; at the limit the pair (or the address) is locked until its oldest counted
    failure ages out. A correct password clears the pair's counter. Commits.
    """
    email = (email or "").strip().lower() if isinstance(email, str) else ""
    email = email[:MAX_EMAIL_LENGTH]
    address = (address or "")[:64]
    auth.check_throttle(db, ReaderLoginAttempt, email, address, max_failures, lock_seconds, max_address_failures)
    password = password if isinstance(password, str) and len(password) <= MAX_PASSWORD_LENGTH else None
    reader = db.scalar(select(Reader).where(Reader.email == email)) if email else None
    if reader is not None and reader.active and password is not None:
        if _verify(reader, password):
            db.execute(delete(ReaderLoginAttempt).where(ReaderLoginAttempt.email == email,
                                                        ReaderLoginAttempt.address == address))
            if auth.PASSWORD_HASHER.check_needs_rehash(reader.password_hash):
                reader.password_hash = auth.PASSWORD_HASHER.hash(password)
            db.commit()
            return reader
    else:
        auth.PASSWORD_HASHER.hash("x")  # spend the same time: no account enumeration by timing
    db.add(ReaderLoginAttempt(email=email, address=address))
    db.commit()
    return None


def open_session(db: Session, reader: Reader) -> str:
    """A new session of ``reader`` (committed); returns the secret the cookie carries (only its SHA-256 is stored)."""
    secret = secrets.token_urlsafe(TOKEN_BYTES)
    db.add(ReaderSession(reader_id=reader.id, token_hash=token_digest(secret)))
    db.commit()
    return secret


def session_reader(db: Session, secret, now: dt.datetime | None = None) -> Reader | None:
    """The active reader of a live session (not revoked, younger than SESSION_DAYS), or None."""
    if not secret or not isinstance(secret, str) or len(secret) > 128:
        return None
    row = db.scalar(select(ReaderSession).where(ReaderSession.token_hash == token_digest(secret)))
    now = now or utcnow()
    if row is None or row.revoked_at is not None or row.created_at <= now - dt.timedelta(days=SESSION_DAYS):
        return None
    reader = db.get(Reader, row.reader_id)
    return reader if reader is not None and reader.active else None


def close_session(db: Session, secret) -> bool:
    """End the session of ``secret`` on the server (a copy of its cookie no longer signs in); committed. True if one
    was open."""
    if not secret or not isinstance(secret, str) or len(secret) > 128:
        return False
    row = db.scalar(select(ReaderSession).where(ReaderSession.token_hash == token_digest(secret),
                                                ReaderSession.revoked_at.is_(None)))
    if row is None:
        return False
    row.revoked_at = utcnow()
    db.commit()
    return True


def close_all_sessions(db: Session, reader_id: int) -> int:
    """End every live session of a reader (not committed); returns how many."""
    now = utcnow()
    rows = db.scalars(select(ReaderSession).where(ReaderSession.reader_id == reader_id,
                                                  ReaderSession.revoked_at.is_(None))).all()
    for row in rows:
        row.revoked_at = now
    return len(rows)


def start_password_reset(db: Session, email, now: dt.datetime | None = None) -> tuple[Reader, str] | None:
    """A reset token for the active reader of ``email`` (committed): (reader, token to mail). None when there is no
    such reader or it already had MAX_RESETS_PER_HOUR links this hour — the caller answers the same either way (no
    account enumeration). The token is valid RESET_TTL and once."""
    try:
        email = normalise_email(email)
    except InvalidField:
        return None
    reader = db.scalar(select(Reader).where(Reader.email == email))
    if reader is None or not reader.active:
        return None
    now = now or utcnow()
    recent = db.scalar(select(func.count()).select_from(PasswordReset).where(
        PasswordReset.reader_id == reader.id, PasswordReset.created_at > now - dt.timedelta(hours=1)))
    if recent >= MAX_RESETS_PER_HOUR:
        return None
    token = secrets.token_urlsafe(TOKEN_BYTES)
    db.add(PasswordReset(reader_id=reader.id, token_hash=token_digest(token), created_at=now,
                         expires_at=now + RESET_TTL))
    db.commit()
    return reader, token


def reset_token_status(db: Session, token, now: dt.datetime | None = None) -> str:
    """What a reset link's token is worth now: "ok", "expired" or "invalid" (unknown, used, or its reader gone).
    Reads only."""
    if not isinstance(token, str) or not token or len(token) > 128:
        return "invalid"
    row = db.scalar(select(PasswordReset).where(PasswordReset.token_hash == token_digest(token)))
    if row is None or row.used_at is not None:
        return "invalid"
    if row.expires_at <= (now or utcnow()):
        return "expired"
    reader = db.get(Reader, row.reader_id)
    return "ok" if reader is not None and reader.active else "invalid"


def confirm_password_reset(db: Session, token, password, now: dt.datetime | None = None) -> Reader:
    """Set a new password with a reset token (committed): the token and every other open link of the reader are used
    up, every session of the reader ends. 400 ``invalid_field`` (password), 400 ``reset_token_invalid`` (unknown or
    used), 410 ``reset_token_expired``. A refused request changes nothing."""
    check_password_policy(password)
    if not isinstance(token, str) or not token or len(token) > 128:
        raise AppError("reset_token_invalid")
    row = db.scalar(select(PasswordReset).where(PasswordReset.token_hash == token_digest(token)))
    now = now or utcnow()
    if row is None or row.used_at is not None:
        raise AppError("reset_token_invalid")
    if row.expires_at <= now:
        raise AppError("reset_token_expired")
    reader = db.get(Reader, row.reader_id)
    if reader is None or not reader.active:
        raise AppError("reset_token_invalid")
    reader.password_hash = auth.PASSWORD_HASHER.hash(password)
    for other in db.scalars(select(PasswordReset).where(PasswordReset.reader_id == reader.id,
                                                        PasswordReset.used_at.is_(None))).all():
        other.used_at = now
    close_all_sessions(db, reader.id)
    db.execute(delete(ReaderLoginAttempt).where(ReaderLoginAttempt.email == reader.email))
    db.commit()
    return reader
