"""The public side's database session: used ONLY for the reader tables of issue 27 (readers, reader_sessions,
reader_login_attempts, password_resets, entitlements, code_batches, subscription_codes, code_redemptions) — plus,
on a code's redemption, a read of its publication (``publications``) and the reader's own audit entry
(``audit_log``), as ``builder.entitlements.redeem_code`` does. Nothing else of the newsroom's tables.

The public app's connection is ``BAONHUNG_READERS_DATABASE_URL`` (default: DATABASE_URL; ``none``: no reader
database). Without one, or when it cannot be reached, the reader and premium endpoints answer 503
``readers_unavailable`` in the usual ``{"error", "message"}`` shape (vi/en) — free published content keeps being
served. In the one-process app (``baonhung serve``) the session is the authoring app's (the same ``g.db``).
"""
from __future__ import annotations

from flask import current_app, g
from sqlalchemy.exc import InterfaceError, OperationalError

from builder.errors import AppError

# SQLAlchemy errors meaning "the database is not there": connection refused or lost, a timeout, SQLite's missing
# file or table. Not IntegrityError and the like: those are the request's, answered by the endpoints themselves.
UNAVAILABLE_ERRORS = (OperationalError, InterfaceError)


class ReadersUnavailable(AppError):
    """No readers database, or it cannot be reached (answered 503, builder/http_errors.py)."""

    def __init__(self):
        super().__init__("readers_unavailable")


def db():
    """This request's session on the readers database (closed at the request's end); ReadersUnavailable (503)
    when the app has none."""
    if "db" not in g:
        maker = current_app.extensions["baonhung"].sessionmaker
        if maker is None:
            raise ReadersUnavailable()
        g.db = maker()
    return g.db


def close_db(_exc=None) -> None:
    session = g.pop("db", None)
    if session is not None:
        session.close()


def unavailable(err) -> ReadersUnavailable:
    """The 503 an unreachable database becomes (its cause logged, never shown to the reader)."""
    current_app.logger.warning("readers database unavailable: %s", str(err).splitlines()[0][:200])
    return ReadersUnavailable()
