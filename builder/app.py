"""Flask application factory: authoring UI + JSON API + the public viewer side, in one process.

``create_app(test_config=None)`` follows Flask's tutorial, in one place (`app_config`): Flask's and our defaults,
then either the environment (``Settings.from_env``, when no test mapping is given: the serving process) or the
test mapping (tests never read files or the environment). The test mapping is read, never changed; a key it holds
that is neither ours (`APP_KEYS`) nor a Flask setting is a ConfigError.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flask import Flask
from flask_babel import Babel
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker as SessionMaker

from viewer_api.published import PublishedStore

from .config import ConfigError, Settings, install_node_tools
from .db import make_engine, make_sessionmaker
from .i18n import compile_catalogs
from .bundle import BundleOptions
from .importers import UploadLimits
from .storage import AssetStore, store_from_settings

if TYPE_CHECKING:
    from .jobs import JobQueue

ROOT = Path(__file__).resolve().parent.parent

# Keys of a test mapping that are ours, not Flask's: what each sets.
APP_KEYS = {
    "SETTINGS": "a whole Settings (default: Settings.defaults(), or the environment when there is no test mapping)",
    "DATA_DIR": "Settings.data_dir; also the default SQLite database under it",
    "DATABASE_URL": "Settings.database_url",
    "UPLOAD_LIMITS": "an UploadLimits (default: from the settings' BAONHUNG_MAX_* variables)",
    "BUNDLE_OPTIONS": "a BundleOptions used when publishing (default: BundleOptions())",
    "JOBS_IMMEDIATE": "a publish job runs inside the request that queues it (default: TESTING)",
}

EXTENSION_KEYS = {"BABEL_TRANSLATION_DIRECTORIES", "WTF_CSRF_ENABLED"}  # Flask extensions' settings a test may set


@dataclass
class BaoNhung:
    """Per-app state, reachable as ``app.extensions['baonhung']``."""

    settings: Settings
    engine: Engine
    sessionmaker: SessionMaker
    store: AssetStore
    limits: UploadLimits
    bundle_options: BundleOptions  # used when publishing
    published: PublishedStore  # the published catalog and recognition index
    csrf_exempt_blueprints: set[str] = field(default_factory=set)
    jobs: JobQueue | None = None  # publish / unpublish jobs (issue 28); set by create_app right after the state


@dataclass(frozen=True)
class AppConfig:
    """What ``create_app`` builds an app from: the settings, our objects and the Flask configuration."""

    settings: Settings
    limits: UploadLimits
    bundle_options: BundleOptions
    jobs_immediate: bool
    flask: dict[str, Any]


def flask_defaults(settings: Settings) -> dict[str, Any]:
    """Flask's configuration derived from the settings (before the test mapping's Flask keys)."""
    return {
        "SECRET_KEY": settings.secret_key,
        "MAX_CONTENT_LENGTH": settings.max_request_mb * 1024 * 1024,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": settings.env == "production",
        "SESSION_COOKIE_NAME": "baonhung_session",
        "PERMANENT_SESSION_LIFETIME": 12 * 3600,  # a working day on the desk
        "WTF_CSRF_CHECK_DEFAULT": False,  # checked in common.csrf_check, skipping Bearer-token API calls
        "WTF_CSRF_TIME_LIMIT": 12 * 3600,
        "BABEL_DEFAULT_LOCALE": "vi",
        "JSON_SORT_KEYS": False,
    }


def app_config(test_config: Mapping[str, Any] | None = None) -> AppConfig:
    """Defaults, then the environment (no test mapping) or the test mapping; ConfigError for an unknown key or a
    malformed variable. ``test_config`` is not changed."""
    test_config = dict(test_config) if test_config is not None else None  # a copy: the caller's stays as it was
    if test_config is None:
        settings = Settings.from_env()
        test_config = {}
    else:
        known = APP_KEYS.keys() | Flask.default_config.keys() | flask_defaults(Settings.defaults()).keys() \
            | EXTENSION_KEYS
        unknown = sorted(set(test_config) - known)
        if unknown:
            raise ConfigError(f"create_app: unknown configuration key(s) {', '.join(unknown)}; ours are "
                              f"{', '.join(APP_KEYS)}, the rest must be Flask settings")
        settings = test_config.get("SETTINGS") or Settings.defaults()
        if not isinstance(settings, Settings):
            raise ConfigError(f"create_app: SETTINGS must be a Settings, not {type(settings).__name__}")
        settings = settings.with_test_config(test_config)
    limits = test_config.get("UPLOAD_LIMITS")
    if limits is None:
        try:
            limits = UploadLimits.from_env(settings.extra)
        except ValueError as exc:  # Settings.from_env checked the numbers; this names a value UploadLimits refused
            raise ConfigError(str(exc)) from None
    flask = flask_defaults(settings)
    flask.update({k: v for k, v in test_config.items() if k not in APP_KEYS})
    immediate = test_config.get("JOBS_IMMEDIATE", flask.get("TESTING", False))
    return AppConfig(settings=settings, limits=limits, jobs_immediate=bool(immediate), flask=flask,
                     bundle_options=test_config.get("BUNDLE_OPTIONS") or BundleOptions())


SWEEP_EVERY_S = 3600


def sweep_leftovers(state: "BaoNhung") -> dict:
    """What an interrupted publish left (builder.publish.sweep_after_crash), with a session of its own."""
    from .publish import sweep_after_crash

    db = state.sessionmaker()
    try:
        return sweep_after_crash(db, state.settings, state.store)
    finally:
        db.close()


def start_sweeper(app: Flask, every_s: float = SWEEP_EVERY_S):
    """A daemon thread sweeping leftovers on a schedule (the serving process calls this once)."""
    import threading

    state = app.extensions["baonhung"]
    stop = threading.Event()

    def loop():
        while not stop.wait(every_s):
            try:
                swept = sweep_leftovers(state)
                if any(swept.values()):
                    app.logger.warning("cleaned up leftovers: %s", swept)
            except Exception:  # noqa: BLE001 - a failed sweep must not end the schedule
                app.logger.exception("sweeping leftovers failed")

    threading.Thread(target=loop, name="baonhung-sweeper", daemon=True).start()
    return stop


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    config = app_config(test_config)
    settings = config.settings
    install_node_tools(settings.node_tools)  # where compress.py and gltf_validator.py find node
    settings.data_dir.mkdir(parents=True, exist_ok=True)

    app = Flask(__name__, template_folder=str(ROOT / "templates"), static_folder=str(ROOT / "builder" / "static"),
                static_url_path="/static")
    app.config.update(config.flask)
    if "BABEL_TRANSLATION_DIRECTORIES" not in app.config:  # a test may point at catalogs compiled once
        app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(compile_catalogs(settings.data_dir / "i18n"))
    if settings.trusted_proxies > 0:
        # the client's address and scheme as the trusted proxies report them (rate limits, audit, Secure cookies)
        from werkzeug.middleware.proxy_fix import ProxyFix

        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n)

    engine = make_engine(settings.database_url)
    store = store_from_settings(settings)
    state = BaoNhung(settings=settings, engine=engine, sessionmaker=make_sessionmaker(engine), store=store,
                     limits=config.limits, bundle_options=config.bundle_options,
                     published=PublishedStore(settings.data_dir, store=store))
    app.extensions["baonhung"] = state
    from .jobs import JobQueue

    # a job runs inside the request that queues it when JOBS_IMMEDIATE (tests: on unless a test asks for the queue)
    state.jobs = JobQueue.create(state, immediate=config.jobs_immediate)
    from .publish import upgrade_index

    if upgrade_index(settings, store):
        app.logger.warning("recognition index rebuilt from the page markers (written by an older version)")
    swept = sweep_leftovers(state)
    if any(swept.values()):
        app.logger.warning("cleaned up after an interrupted run: %s", swept)

    from .web import common

    Babel(app, locale_selector=common.select_locale)
    common.csrf.init_app(app)
    app.before_request(common.refuse_long_urls)
    app.before_request(common.load_user)
    app.before_request(common.csrf_check)
    app.after_request(common.security_headers)
    app.teardown_appcontext(common.close_db)
    common.register_error_handlers(app)

    from .web.api import api_bp
    from .web.sheets import sheets_bp
    from .web.ui import ui_bp

    from .web.validation import check_request_against_openapi

    app.before_request(check_request_against_openapi)  # the authoring API's requests, against the OpenAPI document
    app.register_blueprint(api_bp)
    app.register_blueprint(sheets_bp)
    app.register_blueprint(ui_bp)
    from .web.analytics import analytics_bp  # readership analytics, JSON and CSV (issue 26)

    app.register_blueprint(analytics_bp)
    from .web.dashboard import dashboard_bp  # the newsroom's readership dashboard over it (issue 26)

    app.register_blueprint(dashboard_bp)
    from .web.readers_admin import entitlements_api_bp, readers_admin_bp  # reader entitlements (issue 27)

    app.register_blueprint(readers_admin_bp)
    app.register_blueprint(entitlements_api_bp)
    state.csrf_exempt_blueprints.add(entitlements_api_bp.name)  # HMAC-signed, no cookie: the signature is its guard

    from viewer_api import register_public

    register_public(app, state)

    @app.context_processor
    def _inject():
        from flask import g

        return {"current_user": g.get("user"), "lang": common.lang(), "lang_switch_url": common.lang_switch_url}

    return app
