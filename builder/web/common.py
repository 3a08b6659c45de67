"""Thin web plumbing shared by the authoring blueprints: database session per request, the current user
(session cookie or Bearer token), CSRF, language, one error shape, security headers."""
from __future__ import annotations

import secrets
from functools import wraps
from urllib.parse import urlparse

from flask import (current_app, flash, g, jsonify, redirect, render_template, request, session, url_for)
from flask_babel import get_locale
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from ..auth import session_user, user_for_token
from ..errors import AppError, BadRequest, Conflict, NotFound, ServerFault, Unauthorized, verbatim
from ..http_errors import Refusal, error_of, status_for
from ..services import Actor

csrf = CSRFProtect()
LANGS = ("vi", "en")


def db():
    if "db" not in g:
        g.db = current_app.extensions["baonhung"].sessionmaker()
    return g.db


def store():
    return current_app.extensions["baonhung"].store


def settings():
    return current_app.extensions["baonhung"].settings


def lang() -> str:
    return str(get_locale() or "vi")[:2]


def select_locale() -> str:
    """One rule for every page: an explicit choice (?lang=, remembered in the session) wins, then the stored choice
    (the session's, else the signed-in user's), then Vietnamese. The browser's language is not a choice: it made
    the login page English and the pages after it Vietnamese. Only the JSON API also reads Accept-Language, as
    API clients say their language that way."""
    asked = request.args.get("lang")
    if asked in LANGS:
        session["lang"] = asked
        return asked
    if request.path.startswith("/api/") and request.accept_languages:
        best = request.accept_languages.best_match(LANGS)
        if best:
            return best
    if session.get("lang") in LANGS:
        return session["lang"]
    user = g.get("user")
    if user is not None and getattr(user, "language", None) in LANGS:
        return user.language
    return "vi"


def client_address() -> str:
    return request.remote_addr or ""


def wants_json() -> bool:
    if request.path.startswith("/api/"):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def load_user() -> None:
    """Set g.user from a Bearer token (API) or the session cookie (UI); g.via_token tells which."""
    g.user = None
    g.via_token = False
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        g.via_token = True
        g.user = user_for_token(db(), header[len("Bearer "):].strip())
        return
    uid = session.get("uid")
    if uid:
        # the session must be live on the server (logout ends it) and the password unchanged since it began
        user = session_user(db(), uid, session.get("sid"))
        if user is not None and session.get("pwv") == user.password_hash[-16:]:
            g.user = user
        else:
            session.clear()


MAX_URL_CHARS = 4096  # a longer request URL is a 414 in the one error shape (gunicorn itself stops at 8,190)


def refuse_long_urls():
    uri = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or request.full_path
    if len(uri) > MAX_URL_CHARS:
        return error_response(BadRequest("the address is longer than {limit} characters", limit=MAX_URL_CHARS), 414)
    return None


def csrf_check() -> None:
    """CSRF on every unsafe request authenticated by the session cookie (forms and the editor's fetch calls).
    Token-authenticated API calls carry no ambient credentials, so CSRF does not apply to them."""
    if request.method in ("GET", "HEAD", "OPTIONS") or g.get("via_token"):
        return
    if g.get("user") is None and request.path.startswith("/api/"):
        return  # no ambient credentials to abuse; the view answers 401
    if request.blueprint in current_app.extensions["baonhung"].csrf_exempt_blueprints:
        return
    csrf.protect()


def actor() -> Actor:
    if g.get("user") is None:
        raise Unauthorized()
    return Actor.of(g.user, client_address())


def login_required(view):
    @wraps(view)
    def wrapped(*args, **kwargs):
        if g.get("user") is None:
            if wants_json():
                raise Unauthorized()
            return redirect(url_for("ui.login", next=request.full_path))
        return view(*args, **kwargs)

    return wrapped


def safe_next(target: str | None) -> str:
    """Only same-site relative redirects after login (no open redirect)."""
    if not target:
        return url_for("ui.dashboard")
    parsed = urlparse(target)
    if parsed.scheme or parsed.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("ui.dashboard")
    return target


def error_response(err: AppError, status: int | None = None):
    """The one error answer: JSON ``{"error": code, "message": text}`` for API clients, else a flashed message back
    on the form (a refused POST) or the error page; the message in the request's language, the status the web
    layer maps the error to (``builder.http_errors``) unless given."""
    status = status_for(err) if status is None else status
    message = err.message(lang())
    if wants_json():
        return jsonify({"error": err.code, "message": message}), status
    if request.method == "POST" and status < 500:
        flash(message, "error")
        back = request.referrer
        if back and urlparse(back).netloc == request.host:
            return redirect(back)
    return render_template("error.html", message=message, status=status), status


def register_error_handlers(app) -> None:
    @app.errorhandler(AppError)
    def _app_error(err):
        return error_response(err)

    @app.errorhandler(Refusal)
    def _refusal(err):
        return error_response(error_of(err), status_for(err))

    @app.errorhandler(CSRFError)
    def _csrf_error(_err):
        return error_response(AppError("csrf"))

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(_err):
        limit = (app.config.get("MAX_CONTENT_LENGTH") or 0) // (1024 * 1024)
        return error_response(AppError("request_too_large", limit_mb=limit))

    from sqlalchemy.exc import IntegrityError

    @app.errorhandler(IntegrityError)
    def _integrity(_err):
        # two requests raced for a unique value (a slug, an edition or page number): the database kept the first
        db().rollback()
        return error_response(Conflict("another request has just taken that value; reload and try again"))

    @app.errorhandler(Exception)
    def _unhandled(err):
        if isinstance(err, HTTPException):
            return _http(err)
        incident = secrets.token_hex(4)
        current_app.logger.exception("unhandled %s on %s %s [incident %s]", type(err).__name__, request.method,
                                     request.path, incident)
        return error_response(ServerFault(incident))

    @app.errorhandler(HTTPException)
    def _http(err):
        if err.code == 404:
            return error_response(NotFound("page"))
        return error_response(BadRequest(verbatim(err.description or err.name)), err.code or 400)


CSP_DEFAULT = (
    "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
    "style-src 'self'; script-src 'self'; connect-src 'self'; worker-src 'self' blob:; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)


def security_headers(response):
    response.headers.setdefault("Content-Security-Policy", g.get("csp") or CSP_DEFAULT)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Permissions-Policy", "camera=(self), microphone=(), gyroscope=(self), accelerometer=(self)")
    if request.is_secure:
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    if g.get("user") is not None and not request.path.startswith(("/pub/", "/v/vendor/")):
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def close_db(_exc=None) -> None:
    session_ = g.pop("db", None)
    if session_ is not None:
        session_.close()


def lang_switch_url(code: str) -> str:
    """This page again in language ``code``, keeping its other query parameters (a dashboard's date range was lost
    when the toggle linked to a bare ``?lang=``)."""
    from urllib.parse import urlencode

    args = [(k, v) for k, v in request.args.items(multi=True) if k != "lang"] + [("lang", code)]
    return "?" + urlencode(args)
