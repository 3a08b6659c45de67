"""The public app on its own (issue 28): ``create_public_app(settings=None, test_config=None)``, served by
``baonhung serve-public`` — as many copies as readers need, beside or without the newsroom app.

It needs the published catalog (``published.py``) and the asset store; the analytics events store (its own
connection, ``events_api.py``) when events are posted; and, for reader accounts and premium parts (issue 27), a
database used only for the reader tables (``readerdb.py``: ``BAONHUNG_READERS_DATABASE_URL``, default DATABASE_URL,
``none`` for none). Without that database the app still serves everything free, and the reader endpoints answer 503
``readers_unavailable``.

At start-up it writes nothing — no migration, no index upgrade, no translation catalog compiled, no directory or
database file made (an SQLite readers database that does not exist counts as none) — and it imports nothing of the
authoring side (builder.web, builder.services, builder.publish, builder.bundle, builder.importers, builder.app);
tests/web/test_public_app.py checks both. ``baonhung serve`` still serves everything in one process: the authoring
app registers the same blueprints through ``viewer_api.register_public``.

Follows Flask's tutorial: the ``settings`` given, else the environment (``Settings.from_env``) when there is no
``test_config``, else the defaults (``Settings.defaults()``); then ``test_config`` (`PUBLIC_KEYS` and Flask keys
such as ``TESTING``), which is read, never changed; any other key is a ConfigError.
"""
from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flask import Flask, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from builder.config import ConfigError, Settings
from builder.errors import AppError, BadRequest, NotFound, ServerFault, verbatim
from builder.http_errors import status_for
from builder.storage import AssetStore, store_from_settings

from . import register_public
from .published import PublishedStore

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import sessionmaker as SessionMaker

ROOT = Path(__file__).resolve().parent.parent
LANGS = ("vi", "en")
MAX_URL_CHARS = 4096  # as the newsroom app: a longer request URL is a 414 (gunicorn itself stops at 8,190)
MAX_REQUEST_MB = 16  # the public side's largest body is a recognize photo (8 MB) and its form overhead
# Keys of a test mapping that are ours, not Flask's: what each sets.
PUBLIC_KEYS = {
    "DATA_DIR": "Settings.data_dir; also the default SQLite database under it",
    "DATABASE_URL": "Settings.database_url",
    "READERS_DATABASE_URL": "Settings.readers_database_url (empty: none)",
}


@dataclass
class PublicState:
    """``app.extensions["baonhung"]`` of the public app: what its blueprints read. ``builder.app.BaoNhung`` (the
    one-process app) carries the same fields and the newsroom's besides."""

    settings: Settings
    store: AssetStore
    published: PublishedStore
    engine: Engine | None  # the readers database's engine, or None (reader endpoints answer 503)
    sessionmaker: SessionMaker | None
    csrf_exempt_blueprints: set[str] = field(default_factory=set)


def readers_database_url(settings: Settings) -> str | None:
    """The reader tables' database for a public process: ``readers_database_url``, else ``database_url``; None
    for ``none``, and for an SQLite file that does not exist (a public process never creates a database)."""
    url = settings.readers_database_url or settings.database_url
    if not url or url.lower() == "none":
        return None
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///"):].split("?", 1)[0]
        if not path or path == ":memory:" or not Path(path).is_file():
            return None
    return url


def public_settings(settings: Settings | None, test_config: Mapping[str, Any] | None) -> Settings:
    """The settings given, else the environment (no test mapping) or the defaults; then the test mapping's
    `PUBLIC_KEYS`. ConfigError for a key that is neither ours nor Flask's."""
    if settings is None:
        settings = Settings.from_env() if test_config is None else Settings.defaults()
    test_config = test_config or {}
    unknown = sorted(k for k in test_config if k not in PUBLIC_KEYS and k not in Flask.default_config)
    if unknown:
        raise ConfigError(f"create_public_app: unknown configuration key(s) {', '.join(unknown)}; ours are "
                          f"{', '.join(PUBLIC_KEYS)}, the rest must be Flask settings")
    settings = settings.with_test_config(test_config)
    if "READERS_DATABASE_URL" in test_config:
        settings = replace(settings, readers_database_url=test_config["READERS_DATABASE_URL"] or "none")
    return settings


def create_public_app(settings: Settings | None = None, test_config: Mapping[str, Any] | None = None) -> Flask:
    settings = public_settings(settings, test_config)
    app = Flask(__name__, template_folder=str(ROOT / "templates"), static_folder=None)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=MAX_REQUEST_MB * 1024 * 1024,
        JSON_SORT_KEYS=False,
    )
    app.config.update({k: v for k, v in (test_config or {}).items() if k not in PUBLIC_KEYS})
    if settings.trusted_proxies > 0:
        from werkzeug.middleware.proxy_fix import ProxyFix

        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n)

    engine = sessionmaker = None
    url = readers_database_url(settings)
    if url is not None:
        from builder.db import make_engine, make_sessionmaker  # connects on first use, not here

        engine = make_engine(url)
        sessionmaker = make_sessionmaker(engine)
    store = store_from_settings(settings)  # local disk or S3, as the newsroom app's
    state = PublicState(settings=settings, store=store,
                        published=PublishedStore(settings.data_dir, create=False, store=store),
                        engine=engine, sessionmaker=sessionmaker)
    app.extensions["baonhung"] = state

    from .readerdb import close_db

    app.before_request(_refuse_long_urls)
    app.after_request(_security_headers)
    app.teardown_appcontext(close_db)
    _register_error_handlers(app)
    register_public(app, state)
    return app


def warm_up(app: Flask) -> None:
    """Load the published catalog and its recognition index now (``serve-public`` calls it before gunicorn forks
    its workers, so they share the index's pages instead of each loading a copy). Reads only."""
    with app.app_context():
        app.extensions["baonhung"].published.index()


# ------------------------------------------------------------------------------------------ plumbing

def _lang() -> str:
    asked = request.args.get("lang")
    if asked in LANGS:
        return asked
    best = request.accept_languages.best_match(LANGS) if request.accept_languages else None
    return best or "vi"


def _error(err: AppError, status: int | None = None):
    """``{"error": code, "message": text}`` in the request's language; the status builder/http_errors.py maps the
    error to unless given."""
    status = status_for(err) if status is None else status
    response = jsonify(err.to_dict(_lang()))
    response.status_code = status
    return response


def _refuse_long_urls():
    uri = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or request.full_path
    if len(uri) > MAX_URL_CHARS:
        return _error(BadRequest("the address is longer than {limit} characters", limit=MAX_URL_CHARS), 414)
    return None


def _security_headers(response):
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Permissions-Policy",
                                "camera=(self), microphone=(), gyroscope=(self), accelerometer=(self)")
    if request.is_secure:
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    return response


def _register_error_handlers(app: Flask) -> None:
    """Everything the blueprints do not answer themselves, in the one JSON shape (the public side has no pages of
    errors: its callers are the viewer's scripts)."""

    @app.errorhandler(AppError)
    def _app_error(err):
        return _error(err)

    @app.errorhandler(HTTPException)
    def _http(err):
        if err.code == 404:
            return _error(NotFound("page"))
        if err.code == 413:
            return _error(AppError("request_too_large", limit_mb=MAX_REQUEST_MB))
        return _error(BadRequest(verbatim(err.description or err.name)), err.code or 400)

    @app.errorhandler(Exception)
    def _unhandled(err):
        if isinstance(err, HTTPException):
            return _http(err)
        incident = secrets.token_hex(4)
        current_app.logger.exception("unhandled %s on %s %s [incident %s]", type(err).__name__, request.method,
                                     request.path, incident)
        return _error(ServerFault(incident))
