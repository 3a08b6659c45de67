"""The reader API (issue 27): accounts of readers, not of the newsroom. JSON under ``/api/v1/reader/``, and the
password-reset page ``GET /reader/reset``. The domain is ``builder.readers``; this layer parses, checks the cookie,
CSRF and rate limits, calls it and serializes.

- Cookie ``baonhung_reader``: the session secret (only its SHA-256 is stored), HttpOnly, SameSite=Lax, Path=/,
  Secure over HTTPS or in production, 30 days. Staff logins (``builder.web.common.load_user``) never read it, and
  the reader side never reads the staff session.
- CSRF (double submit): every POST needs the cookie ``baonhung_reader_csrf`` (random, readable by the page's script,
  SameSite=Strict; set by ``GET /api/v1/reader/me`` and the reset page) equal to the header ``X-CSRF-Token``, and a
  present ``Origin`` must be this server's (its host URL as the request sees it, or BAONHUNG_BASE_URL's origin:
  behind a TLS proxy set BAONHUNG_TRUSTED_PROXIES or BAONHUNG_BASE_URL); else 403 ``csrf``. Bodies are JSON objects
  of at most MAX_BODY_BYTES.
- ``current_reader(db)`` (a DB read) and ``session_binding()`` (no DB read) serve ``viewer_api/premium.py``.
- Errors: ``{"error": code, "message": text}`` in ``?lang=`` or Accept-Language (vi default); 429 with Retry-After.
  Every answer is ``Cache-Control: no-store``.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from urllib.parse import urlencode, urlsplit

from flask import Blueprint, current_app, g, jsonify, request, url_for
from werkzeug.exceptions import RequestEntityTooLarge

from builder import entitlements, readers
from builder.mail import MailSender, compose
from builder.models import Reader
from builder.errors import AppError, BadRequest, InvalidField, LoginThrottled, MissingField
from builder.http_errors import Refusal, error_of, status_for

from .public import request_lang
from .readerdb import UNAVAILABLE_ERRORS, db, unavailable

readers_bp = Blueprint("readers", __name__)

READER_COOKIE = "baonhung_reader"
CSRF_COOKIE = "baonhung_reader_csrf"
CSRF_HEADER = "X-CSRF-Token"
COOKIE_MAX_AGE_S = readers.SESSION_DAYS * 24 * 3600
MAX_BODY_BYTES = 16 * 1024  # an email, a password and a token fit many times over
# Requests per minute (per client address, and per second key: the email of a reset, the session of a redeem).
# Sign-in guessing is throttled by builder.readers.sign_in itself; these bound the cost of everything else.
RATE_LIMITS = {
    "post": (60, 60),  # every reader POST, per address (a school's NAT shares it)
    "reset": (10, 2),  # reset mails per address, per email
    "redeem": (30, 10),  # code tries per address, per signed-in session (guessing printed codes)
}


class RateLimited(AppError):
    def __init__(self, retry_after_s: int):
        super().__init__("rate_limited", retry_after=retry_after_s)


# ------------------------------------------------------------------------------------------ helpers for premium.py

def _cookie_secret() -> str | None:
    value = request.cookies.get(READER_COOKIE)
    return value if value and len(value) <= 128 else None


def session_binding() -> str | None:
    """SHA-256 hex of this request's reader cookie (what ``reader_sessions.token_hash`` holds), or None without one.
    No database read: the signed premium URLs are bound to it."""
    secret = _cookie_secret()
    return hashlib.sha256(secret.encode()).hexdigest() if secret else None


def current_reader(session) -> Reader | None:
    """The signed-in reader of this request (live session, active reader), or None. Reads the database once per
    request."""
    if "reader_checked" not in g:
        g.reader_checked = True
        g.reader = readers.session_reader(session, _cookie_secret())
    return g.reader


# ------------------------------------------------------------------------------------------ plumbing

def _settings():
    return current_app.extensions["baonhung"].settings


def _secure() -> bool:
    return request.is_secure or _settings().env == "production"


def _json_error(err: AppError | Refusal):
    """``{"error": code, "message": text}`` in the request's language, with the status builder/http_errors.py maps
    the error to (or the Refusal's)."""
    status = status_for(err)
    err = error_of(err)
    response = jsonify(err.to_dict(request_lang()))
    response.status_code = status
    retry = err.values.get("retry_after") or (err.values.get("seconds") if isinstance(err, LoginThrottled) else None)
    if retry:
        response.headers["Retry-After"] = str(int(retry))
    return response


@readers_bp.errorhandler(AppError)
@readers_bp.errorhandler(Refusal)
def _app_error(err):
    return _json_error(err)


def _database_unavailable(err):
    return _json_error(unavailable(err))


for _error_class in UNAVAILABLE_ERRORS:  # no readers database, or it cannot be reached: 503, never a 500
    readers_bp.register_error_handler(_error_class, _database_unavailable)


@readers_bp.errorhandler(RequestEntityTooLarge)
def _too_large(_err):
    response = _json_error(AppError("body_too_large", limit_kb=MAX_BODY_BYTES // 1024))
    response.headers["Connection"] = "close"  # the rest of the body is not read
    return response


@readers_bp.after_request
def _no_store(response):
    response.headers["Cache-Control"] = "no-store"
    response.headers["Vary"] = "Cookie, Accept-Language"
    return response


def _limiter(name: str):
    limiters = current_app.extensions.setdefault("baonhung_reader_limits", {})
    if name not in limiters:
        from .ratelimit import LocalLimits, RecognizeLimits

        per_address, per_key = RATE_LIMITS[name]
        uri = _settings().ratelimit_storage
        limiters[name] = (LocalLimits(per_address, per_key) if uri.startswith("memory://")
                          else RecognizeLimits(uri, per_address, per_key, namespace=f"reader-{name}"))
    return limiters[name]


def _rate_limit(name: str, key: str | None = None) -> None:
    """Count one request against limit ``name`` (per address and per ``key``); RateLimited (429) when over it."""
    hashed = hashlib.sha256(key.encode()).hexdigest()[:32] if key else None  # the limiter's key syntax, no PII
    verdict = _limiter(name).check(request.remote_addr or "", hashed)
    if not verdict.allowed:
        raise RateLimited(verdict.retry_after_s)


def _own_origins() -> set[str]:
    origins = {request.host_url.rstrip("/").lower()}
    base = _settings().base_url
    if base:
        parts = urlsplit(base)
        origins.add(f"{parts.scheme}://{parts.netloc}".lower())
    return origins


@readers_bp.before_request
def _checks():
    """Every POST: the rate limit, then CSRF (double-submit cookie and header, a foreign Origin refused)."""
    if request.method != "POST":
        return None
    _rate_limit("post")
    cookie = request.cookies.get(CSRF_COOKIE, "")
    header = request.headers.get(CSRF_HEADER, "")
    origin = request.headers.get("Origin")
    if (not cookie or not header or len(cookie) > 128
            or not hmac.compare_digest(cookie.encode(), header.encode())
            or (origin is not None and origin.rstrip("/").lower() not in _own_origins())):
        raise Refusal(AppError("csrf"), 403)  # the forms' CSRF error is a 400; a reader call without it is 403
    return None


def _body(*fields: str) -> dict:
    """The request's JSON object (at most MAX_BODY_BYTES), with ``fields`` present as strings."""
    if (request.content_length or 0) > MAX_BODY_BYTES:
        raise RequestEntityTooLarge()
    request.max_content_length = MAX_BODY_BYTES  # a body without a length is refused once it passes the cap
    raw = request.stream.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise RequestEntityTooLarge()
    try:
        body = json.loads(raw.decode("utf-8")) if raw else None
    except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: "[[[[…" nested past the parser
        body = None
    if request.mimetype != "application/json" or not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    for name in fields:
        if name not in body or body[name] in (None, ""):
            raise MissingField(name)
        if not isinstance(body[name], str):
            raise InvalidField(name, "must be text")
    return body


def _cookie_args(max_age: int | None) -> dict:
    return {"max_age": max_age, "path": "/", "secure": _secure()}


def _set_session(response, secret: str):
    response.set_cookie(READER_COOKIE, secret, httponly=True, samesite="Lax", **_cookie_args(COOKIE_MAX_AGE_S))


def _clear_session(response):
    response.delete_cookie(READER_COOKIE, path="/", secure=_secure(), httponly=True, samesite="Lax")


def _ensure_csrf_cookie(response):
    """The CSRF cookie, made when the browser has none (its value is what the page's script sends back)."""
    if not request.cookies.get(CSRF_COOKIE):
        response.set_cookie(CSRF_COOKIE, secrets.token_urlsafe(32), httponly=False, samesite="Strict",
                            **_cookie_args(COOKIE_MAX_AGE_S))
    return response


def _me(reader: Reader | None) -> dict:
    if reader is None:
        return {"signed_in": False}
    rows = entitlements.live_entitlements(db(), reader.id)  # in force, and renewals that start later
    return {"signed_in": True, "email": reader.email,
            "entitlements": [entitlements.describe(db(), row) for row in rows]}


def _signed_in_response(reader: Reader, status: int):
    """Open a session for ``reader`` (ending the one this browser had) and answer ``/me`` with its cookie."""
    readers.close_session(db(), _cookie_secret())
    secret = readers.open_session(db(), reader)
    response = jsonify(_me(reader))
    response.status_code = status
    _set_session(response, secret)
    return _ensure_csrf_cookie(response)


def _base_url() -> str:
    base = _settings().base_url
    if not base and _settings().env == "production":
        # the Host header names the link's server: without BAONHUNG_BASE_URL a forged Host could aim it elsewhere
        current_app.logger.warning("BAONHUNG_BASE_URL is not set: the password-reset link uses the request's host")
    return (base or request.host_url).rstrip("/")


def _mail_sender() -> MailSender:
    sender = current_app.extensions.get("baonhung_mail")
    if sender is None:
        sender = current_app.extensions["baonhung_mail"] = MailSender(_settings())
    return sender


# ------------------------------------------------------------------------------------------ endpoints

@readers_bp.get("/api/v1/reader/me")
def me():
    reader = current_reader(db())
    response = jsonify(_me(reader))
    if reader is None and _cookie_secret():
        _clear_session(response)  # its session ended (signed out elsewhere, password reset): forget the cookie
    return _ensure_csrf_cookie(response)


@readers_bp.post("/api/v1/reader/signup")
def signup():
    body = _body("email", "password")
    reader = readers.sign_up(db(), body["email"], body["password"], language=request_lang())
    return _signed_in_response(reader, 201)


@readers_bp.post("/api/v1/reader/signin")
def signin():
    body = _body("email", "password")
    s = _settings()
    reader = readers.sign_in(db(), body["email"], body["password"], request.remote_addr or "",
                             s.login_max_failures, s.login_lock_seconds, s.login_max_address_failures)
    if reader is None:
        raise AppError("invalid_credentials")
    return _signed_in_response(reader, 200)


@readers_bp.post("/api/v1/reader/signout")
def signout():
    readers.close_session(db(), _cookie_secret())
    response = current_app.response_class(status=204)
    _clear_session(response)
    return response


@readers_bp.post("/api/v1/reader/password-reset")
def password_reset():
    """202 whatever the address (no account enumeration); an account's reader is mailed a link valid one hour."""
    body = _body("email")
    email = readers.normalise_email(body["email"])
    _rate_limit("reset", email)
    started = readers.start_password_reset(db(), email)
    if started is not None:
        reader, token = started
        link = f"{_base_url()}/reader/reset?" + urlencode({"token": token, "lang": reader.language})
        message = compose(_settings(), reader.email, "password_reset", reader.language, email=reader.email,
                          link=link, minutes=int(readers.RESET_TTL.total_seconds() // 60))
        _mail_sender().submit(message)  # sent off the request: same time with or without an account
    response = jsonify({})
    response.status_code = 202
    return response


@readers_bp.post("/api/v1/reader/password-reset/confirm")
def password_reset_confirm():
    body = _body("token", "password")
    readers.confirm_password_reset(db(), body["token"], body["password"])
    response = current_app.response_class(status=204)
    _clear_session(response)  # every session of the reader ended, this browser's too if it was theirs
    return response


@readers_bp.post("/api/v1/reader/redeem")
def redeem():
    """A printed subscription code for the signed-in reader: 200 ``{"entitlement": {"publication", "starts_at",
    "expires_at"}}``; the errors are those of ``builder.entitlements.redeem_code`` (400 bad_code, 404 code_unknown,
    410 code_expired, 409 code_used_up / code_already_redeemed)."""
    body = _body("code")
    reader = current_reader(db())
    if reader is None:
        raise AppError("sign_in_required")
    _rate_limit("redeem", session_binding())
    if len(body["code"]) > 64:
        raise InvalidField("code", "at most {limit} characters", limit=64)
    entitlement = entitlements.redeem_code(db(), reader, body["code"], request.remote_addr or "")
    return jsonify({"entitlement": entitlements.describe(db(), entitlement)})


# ------------------------------------------------------------------------------------------ the reset page

RESET_PAGE_TEXT = {
    "vi": {
        "title": "Đặt mật khẩu mới", "password": "Mật khẩu mới", "again": "Nhập lại mật khẩu mới",
        "submit": "Đặt mật khẩu", "hint": f"Ít nhất {readers.MIN_PASSWORD_LENGTH} ký tự.",
        "mismatch": "Hai mật khẩu không khớp.", "done": "Đã đặt mật khẩu mới. Hãy đăng nhập lại trong trình xem báo.",
        "failed": "Không đặt được mật khẩu. Hãy thử lại.", "back": "Mở trình xem báo",
        "invalid": "Liên kết không đúng hoặc đã được dùng. Hãy yêu cầu một liên kết mới trong trình xem báo.",
        "expired": "Liên kết đã hết hạn. Hãy yêu cầu một liên kết mới trong trình xem báo.",
        "noscript": "Trang này cần JavaScript để đặt mật khẩu.", "other": "English",
    },
    "en": {
        "title": "Choose a new password", "password": "New password", "again": "New password again",
        "submit": "Set the password", "hint": f"At least {readers.MIN_PASSWORD_LENGTH} characters.",
        "mismatch": "The two passwords differ.", "done": "Your new password is set. Sign in again in the viewer.",
        "failed": "The password could not be set. Try again.", "back": "Open the viewer",
        "invalid": "The link is wrong or was already used. Ask for a new one in the viewer.",
        "expired": "The link has expired. Ask for a new one in the viewer.",
        "noscript": "This page needs JavaScript to set the password.", "other": "Tiếng Việt",
    },
}


@readers_bp.get("/reader/reset")
def reset_page():
    """The page the reset mail links to: a new-password form (reader_reset.js posts it), or why the link is dead."""
    lang = request_lang()
    token = request.args.get("token", "")
    status = readers.reset_token_status(db(), token)
    nonce = secrets.token_urlsafe(16)
    # rendered without the app's context processors: nothing of the staff session (its language) on a reader page
    body = current_app.jinja_env.get_template("viewer/reader_reset.html").render( lang=lang, t=RESET_PAGE_TEXT[lang], token=token if status == "ok" else "",
        status=status, nonce=nonce, min_length=readers.MIN_PASSWORD_LENGTH, max_length=readers.MAX_PASSWORD_LENGTH,
        script=url_for("viewer.static", filename="reader_reset.js"),
        favicon=url_for("viewer.static", filename="favicon.svg"),
        confirm_url=url_for("readers.password_reset_confirm", lang=lang), viewer_url=url_for("viewer.index"),
        other_url="?" + urlencode({"token": token, "lang": "en" if lang == "vi" else "vi"}))
    response = current_app.response_class(body, status=200 if status == "ok" else 410 if status == "expired" else 400,
                                          mimetype="text/html")
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; script-src 'self'; style-src 'nonce-" + nonce + "'; connect-src 'self'; "
        "img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
    response.headers["Referrer-Policy"] = "no-referrer"  # the token is in this page's address
    return _ensure_csrf_cookie(response)
