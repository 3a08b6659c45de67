"""Flask application factory: authoring UI + JSON API + the public viewer side, in one process.

``create_app(test_config=None)`` follows Flask's tutorial: defaults from the environment
(`Settings.from_env`), then the test mapping passed in (tests never read files or the environment).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from flask import Flask
from flask_babel import Babel

from .config import Settings
from .db import make_engine, make_sessionmaker
from .i18n import compile_catalogs
from .bundle import BundleOptions
from .importers import UploadLimits
from .storage import AssetStore, store_from_settings

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class BaoNhung:
    """Per-app state, reachable as ``app.extensions['baonhung']``."""

    settings: Settings
    engine: object
    sessionmaker: object
    store: AssetStore
    limits: UploadLimits
    bundle_options: object  # builder.bundle.BundleOptions used when publishing
    published: object  # viewer_api.published.PublishedStore
    csrf_exempt_blueprints: set = field(default_factory=set)
    jobs: object = None  # builder.jobs.JobQueue: publish / unpublish jobs (issue 28)


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


def create_app(test_config: dict | None = None) -> Flask:
    test_config = dict(test_config or {})
    limits = test_config.pop("UPLOAD_LIMITS", None)
    bundle_options = test_config.pop("BUNDLE_OPTIONS", None)
    settings = test_config.pop("SETTINGS", None) or Settings.from_env()
    if "DATA_DIR" in test_config:
        data_dir = Path(test_config.pop("DATA_DIR"))
        settings = replace(settings, data_dir=data_dir,
                           database_url=test_config.pop("DATABASE_URL", f"sqlite:///{data_dir / 'baonhung.sqlite3'}"))
    settings.data_dir.mkdir(parents=True, exist_ok=True)

    app = Flask(__name__, template_folder=str(ROOT / "templates"), static_folder=str(ROOT / "builder" / "static"),
                static_url_path="/static")
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=settings.max_request_mb * 1024 * 1024,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.env == "production",
        SESSION_COOKIE_NAME="baonhung_session",
        PERMANENT_SESSION_LIFETIME=12 * 3600,  # a working day on the desk
        WTF_CSRF_CHECK_DEFAULT=False,  # checked in common.csrf_check, skipping Bearer-token API calls
        WTF_CSRF_TIME_LIMIT=12 * 3600,
        BABEL_DEFAULT_LOCALE="vi",
        BABEL_TRANSLATION_DIRECTORIES=str(compile_catalogs(settings.data_dir / "i18n")),
        JSON_SORT_KEYS=False,
    )
    app.config.update(test_config)
    if settings.trusted_proxies > 0:
        # the client's address and scheme as the trusted proxies report them (rate limits, audit, Secure cookies)
        from werkzeug.middleware.proxy_fix import ProxyFix

        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n)

    engine = make_engine(settings.database_url)
    store = store_from_settings(settings)
    from viewer_api.published import PublishedStore

    state = BaoNhung(settings=settings, engine=engine, sessionmaker=make_sessionmaker(engine), store=store,
                     limits=limits or UploadLimits.from_env(settings.extra),
                     bundle_options=bundle_options or BundleOptions(), published=PublishedStore(settings.data_dir))
    app.extensions["baonhung"] = state
    from .jobs import JobQueue

    # JOBS_IMMEDIATE (tests: on unless a test asks for the real queue): a job runs inside the request that queues it
    state.jobs = JobQueue.create(state, immediate=bool(app.config.get("JOBS_IMMEDIATE", app.config.get("TESTING"))))
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
