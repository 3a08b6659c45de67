"""Reader accounts (issue 27): the reader API's sign-up, sign-in (throttled), sign-out, cookie and CSRF, password
reset through a real SMTP server, and the wall between readers and the newsroom's authoring side."""
from __future__ import annotations

import datetime as dt
import hashlib
import re
import time
from dataclasses import replace
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import func, select

from builder.config import Settings
from builder.models import Entitlement, PasswordReset, Publication, Reader, ReaderLoginAttempt, ReaderSession, utcnow
from tests.conftest import make_app
from tests.web.smtp_server import free_port, smtp_server

PASSWORD = "mat-khau-ban-doc-1"
NEW_PASSWORD = "mat-khau-moi-that-dai"
CSRF = "X-CSRF-Token"


def reader_app(tmp_path, **changes):
    settings = replace(Settings.from_env({"BAONHUNG_DATA_DIR": str(tmp_path / "data")}), **changes)
    return make_app(tmp_path / "data", SETTINGS=settings)


@pytest.fixture
def app(tmp_path):
    return reader_app(tmp_path)


def browser(app, base_url: str = "http://localhost"):
    """A test client that has loaded /me once (so it holds the CSRF cookie) and posts JSON with the header."""
    client = app.test_client()
    client.environ_base["base_url"] = base_url
    assert client.get("/api/v1/reader/me", base_url=base_url).status_code == 200
    return client


def csrf_of(client) -> str:
    return client.get_cookie("baonhung_reader_csrf").value


def post(client, path: str, body=None, headers=None, **kw):
    headers = {CSRF: csrf_of(client), **(headers or {})}
    return client.post(path, json=body, headers=headers, **kw)


def signed_up(app, email: str = "ban.doc@example.vn", password: str = PASSWORD, lang: str = "vi"):
    client = browser(app)
    response = post(client, f"/api/v1/reader/signup?lang={lang}", {"email": email, "password": password})
    assert response.status_code == 201, response.get_json()
    return client


def me(client) -> dict:
    return client.get("/api/v1/reader/me").get_json()


def db_of(app):
    return app.extensions["baonhung"].sessionmaker()


def count(app, model) -> int:
    db = db_of(app)
    try:
        return db.scalar(select(func.count()).select_from(model))
    finally:
        db.close()


def set_cookie_header(response, name: str) -> str:
    return next(h for h in response.headers.getlist("Set-Cookie") if h.startswith(name + "="))


def database_dump(app) -> str:
    from tests.conftest import database_dump as dump

    return dump(app.extensions["baonhung"].settings.database_url)


# ------------------------------------------------------------------------------------------ sign-up, in, out

def test_sign_up_signs_the_reader_in_with_a_normalised_email(app):
    client = browser(app)
    assert me(client) == {"signed_in": False}
    response = post(client, "/api/v1/reader/signup", {"email": "  Ban.Doc@Example.VN ", "password": PASSWORD})
    assert response.status_code == 201
    assert response.get_json() == {"signed_in": True, "email": "ban.doc@example.vn", "entitlements": []}
    assert response.headers["Cache-Control"] == "no-store"
    assert me(client) == {"signed_in": True, "email": "ban.doc@example.vn", "entitlements": []}
    assert client.get("/api/v1/reader/me").headers["Cache-Control"] == "no-store"


def test_the_session_cookie_is_httponly_lax_and_lasts_thirty_days(app):
    client = browser(app)
    csrf_header = set_cookie_header(app.test_client().get("/api/v1/reader/me"), "baonhung_reader_csrf")
    assert "SameSite=Strict" in csrf_header and "HttpOnly" not in csrf_header and "Path=/" in csrf_header
    response = post(client, "/api/v1/reader/signup", {"email": "a@example.vn", "password": PASSWORD})
    header = set_cookie_header(response, "baonhung_reader")
    assert "HttpOnly" in header and "SameSite=Lax" in header and "Path=/" in header
    assert f"Max-Age={30 * 24 * 3600}" in header
    assert "Secure" not in header  # plain HTTP in development: a Secure cookie would never come back


def test_the_cookies_are_secure_over_https_and_in_production(tmp_path):
    app = reader_app(tmp_path / "dev")
    client = browser(app, base_url="https://localhost")
    response = post(client, "/api/v1/reader/signup", {"email": "a@example.vn", "password": PASSWORD},
                    base_url="https://localhost")
    assert "Secure" in set_cookie_header(response, "baonhung_reader")
    prod = reader_app(tmp_path / "prod", env="production", secret_key="s" * 64)
    response = prod.test_client().get("/api/v1/reader/me")
    assert "Secure" in set_cookie_header(response, "baonhung_reader_csrf")


def test_passwords_are_argon2id_and_no_secret_is_stored_in_plaintext(app):
    client = signed_up(app)
    secret = client.get_cookie("baonhung_reader").value
    db = db_of(app)
    try:
        reader = db.scalar(select(Reader))
        assert reader.password_hash.startswith("$argon2id$")
        rows = db.scalars(select(ReaderSession)).all()
        assert [r.token_hash for r in rows] == [hashlib.sha256(secret.encode()).hexdigest()]
    finally:
        db.close()
    dump = database_dump(app)
    assert PASSWORD not in dump and secret not in dump and "ban.doc@example.vn" in dump


def test_sign_up_refuses_bad_input_and_stores_nothing(app):
    client = browser(app)
    cases = [
        ({"email": "not-an-address", "password": PASSWORD}, 400, "invalid_field"),
        ({"email": "a@b", "password": PASSWORD}, 400, "invalid_field"),
        ({"email": "a b@example.vn", "password": PASSWORD}, 400, "invalid_field"),
        ({"email": "x" * 250 + "@example.vn", "password": PASSWORD}, 400, "invalid_field"),
        ({"email": "a@example.vn", "password": "ngan"}, 400, "invalid_field"),
        ({"email": "a@example.vn", "password": "x" * 257}, 400, "invalid_field"),
        ({"email": "a@example.vn", "password": 12345678901}, 400, "invalid_field"),
        ({"email": ["a@example.vn"], "password": PASSWORD}, 400, "invalid_field"),
        ({"password": PASSWORD}, 400, "missing_field"),
        ({"email": "a@example.vn", "password": ""}, 400, "missing_field"),
    ]
    for body, status, code in cases:
        response = post(client, "/api/v1/reader/signup", body)
        assert (response.status_code, response.get_json()["error"]) == (status, code), body
    response = client.post("/api/v1/reader/signup", data="email=a@example.vn", headers={CSRF: csrf_of(client)},
                           content_type="application/x-www-form-urlencoded")
    assert (response.status_code, response.get_json()["error"]) == (400, "bad_request")
    for raw in ("[1, 2", "[" * 16_000, '"a@example.vn"', b"\xff\xfe"):
        response = client.post("/api/v1/reader/signup", data=raw, headers={CSRF: csrf_of(client)},
                               content_type="application/json")
        assert (response.status_code, response.get_json()["error"]) == (400, "bad_request"), raw[:10]
    assert count(app, Reader) == 0 and count(app, ReaderSession) == 0
    assert client.get_cookie("baonhung_reader") is None


def test_an_email_has_one_account_whatever_its_case(app):
    signed_up(app, "ban.doc@example.vn")
    client = browser(app)
    response = post(client, "/api/v1/reader/signup", {"email": "BAN.DOC@example.vn", "password": PASSWORD + "x"})
    assert response.status_code == 409
    assert response.get_json() == {"error": "email_taken",
                                   "message": "Email này đã có tài khoản bạn đọc. Hãy đăng nhập, hoặc dùng "
                                              "«Quên mật khẩu»."}
    english = post(client, "/api/v1/reader/signup", {"email": "ban.doc@example.vn", "password": PASSWORD},
                   headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert english.get_json()["message"].startswith("This email already has a reader account")
    assert count(app, Reader) == 1


def test_sign_in_wrong_password_is_401_and_right_one_signs_in(app):
    signed_up(app)
    client = browser(app)
    for password in ("sai-mat-khau-roi", ""):
        response = post(client, "/api/v1/reader/signin", {"email": "ban.doc@example.vn", "password": password})
        assert response.status_code == (401 if password else 400)
    response = post(client, "/api/v1/reader/signin?lang=en", {"email": "nobody@example.vn", "password": PASSWORD})
    assert response.get_json() == {"error": "invalid_credentials", "message": "Wrong email or password."}
    assert me(client) == {"signed_in": False}
    response = post(client, "/api/v1/reader/signin", {"email": "Ban.Doc@Example.vn", "password": PASSWORD})
    assert response.status_code == 200 and response.get_json()["email"] == "ban.doc@example.vn"
    assert me(client)["signed_in"] is True


def test_sign_out_ends_the_session_on_the_server(app):
    client = signed_up(app)
    secret = client.get_cookie("baonhung_reader").value
    response = post(client, "/api/v1/reader/signout")
    assert response.status_code == 204
    assert "Max-Age=0" in set_cookie_header(response, "baonhung_reader")
    assert me(client) == {"signed_in": False}
    thief = browser(app)
    thief.set_cookie("baonhung_reader", secret)
    assert "Max-Age=0" in set_cookie_header(thief.get("/api/v1/reader/me"), "baonhung_reader")  # a dead cookie is
    # forgotten
    thief.set_cookie("baonhung_reader", secret)  # a copy of the cookie taken before sign-out
    assert me(thief) == {"signed_in": False}
    db = db_of(app)
    try:
        assert db.scalar(select(ReaderSession)).revoked_at is not None
    finally:
        db.close()


def test_signing_in_again_ends_the_browsers_previous_session(app):
    client = signed_up(app)
    first = client.get_cookie("baonhung_reader").value
    assert post(client, "/api/v1/reader/signin", {"email": "ban.doc@example.vn", "password": PASSWORD}).status_code == 200
    assert client.get_cookie("baonhung_reader").value != first
    other = browser(app)
    other.set_cookie("baonhung_reader", first)
    assert me(other) == {"signed_in": False}


def test_sign_in_is_throttled_then_unlocked_after_the_lock_time(tmp_path):
    app = reader_app(tmp_path, login_max_failures=3, login_lock_seconds=2, login_max_address_failures=50)
    signed_up(app)
    client = browser(app)
    wrong = {"email": "ban.doc@example.vn", "password": "sai-mat-khau-roi"}
    assert [post(client, "/api/v1/reader/signin", wrong).status_code for _ in range(3)] == [401, 401, 401]
    locked = post(client, "/api/v1/reader/signin?lang=en", {"email": "ban.doc@example.vn", "password": PASSWORD})
    assert locked.status_code == 429 and locked.get_json()["error"] == "login_throttled"
    assert 1 <= int(locked.headers["Retry-After"]) <= 3
    assert "Try again in" in locked.get_json()["message"]
    assert me(client) == {"signed_in": False}  # the right password does not get through a lock
    time.sleep(int(locked.headers["Retry-After"]) + 0.1)
    response = post(client, "/api/v1/reader/signin", {"email": "ban.doc@example.vn", "password": PASSWORD})
    assert response.status_code == 200 and me(client)["signed_in"] is True
    db = db_of(app)
    try:  # a correct sign-in clears the pair's counter
        assert db.scalar(select(func.count()).select_from(ReaderLoginAttempt)) == 0
    finally:
        db.close()


def test_one_address_guessing_many_emails_is_throttled(tmp_path):
    app = reader_app(tmp_path, login_max_failures=5, login_lock_seconds=60, login_max_address_failures=4)
    signed_up(app)
    client = browser(app)
    statuses = [post(client, "/api/v1/reader/signin", {"email": f"khach{i}@example.vn", "password": PASSWORD})
                .status_code for i in range(4)]
    assert statuses == [401] * 4
    response = post(client, "/api/v1/reader/signin", {"email": "ban.doc@example.vn", "password": PASSWORD})
    assert response.status_code == 429 and "Retry-After" in response.headers


# ------------------------------------------------------------------------------------------ CSRF, limits

def test_posts_without_a_matching_csrf_token_or_from_another_origin_are_refused_and_change_nothing(app):
    victim = signed_up(app)
    token = csrf_of(victim)
    body = {"email": "moi@example.vn", "password": PASSWORD}
    refused = [
        victim.post("/api/v1/reader/signup", json=body),  # no header
        victim.post("/api/v1/reader/signup", json=body, headers={CSRF: token[:-1] + "x"}),  # mismatched
        victim.post("/api/v1/reader/signup", json=body, headers={CSRF: ""}),
        victim.post("/api/v1/reader/signup", json=body, headers={CSRF: token, "Origin": "https://evil.example"}),
        victim.post("/api/v1/reader/signup", json=body, headers={CSRF: token, "Origin": "null"}),
        victim.post("/api/v1/reader/signout", headers={"Origin": "https://evil.example"}),
        victim.post("/api/v1/reader/signout", headers={CSRF: token, "Origin": "http://localhost.evil.example"}),
    ]
    no_cookie = app.test_client()
    refused.append(no_cookie.post("/api/v1/reader/signup", json=body, headers={CSRF: token}))
    for response in refused:
        assert response.status_code == 403
        assert response.get_json()["error"] == "csrf"
    assert count(app, Reader) == 1
    assert me(victim)["signed_in"] is True  # the forged sign-outs ended nothing
    response = victim.post("/api/v1/reader/signup", json=body, headers={CSRF: token, "Origin": "http://localhost"})
    assert response.status_code == 201  # this server's own origin


def test_the_reset_request_needs_csrf_too_and_mails_nothing_without_it(app):
    signed_up(app)
    client = browser(app)
    assert client.post("/api/v1/reader/password-reset", json={"email": "ban.doc@example.vn"}).status_code == 403
    assert count(app, PasswordReset) == 0


def test_a_body_over_16_kb_is_413_and_not_parsed(app):
    client = browser(app)
    response = post(client, "/api/v1/reader/signup", {"email": "a@example.vn", "password": "x" * 17_000})
    assert response.status_code == 413 and response.get_json()["error"] == "body_too_large"
    assert "16 KB" in response.get_json()["message"]
    assert count(app, Reader) == 0


def test_reader_posts_are_rate_limited_per_address_with_retry_after(app):
    client = browser(app)
    statuses = [post(client, "/api/v1/reader/signout").status_code for _ in range(61)]
    assert statuses[:60] == [204] * 60 and statuses[60] == 429
    response = post(client, "/api/v1/reader/signout")
    assert response.status_code == 429 and response.get_json()["error"] == "rate_limited"
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    other = app.test_client()  # another address has its own count
    other.environ_base["REMOTE_ADDR"] = "10.0.0.2"
    other.get("/api/v1/reader/me")
    assert post(other, "/api/v1/reader/signout").status_code == 204


# ------------------------------------------------------------------------------------------ readers vs newsroom

def staff_login(app, email: str, password: str):
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    response = client.post("/login", data={"email": email, "password": password, "csrf_token": token})
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    return client


def test_a_reader_cookie_reaches_nothing_of_the_newsroom(app):
    from builder import services as svc

    db = db_of(app)
    try:  # a newsroom admin with the reader's very email and password
        svc.create_user(db, svc.SYSTEM, "ban.doc@example.vn", "admin", PASSWORD)
        db.commit()
    finally:
        db.close()
    reader = signed_up(app)
    assert me(reader)["signed_in"] is True
    for path in ("/", "/publications", "/admin/users", "/account/tokens", "/admin/audit", "/print", "/analytics",
                 "/pages/1/editor"):
        response = reader.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"], path
    for path in ("/api/v1/publications", "/api/v1/editions/1", "/api/v1/analytics/site"):
        response = reader.get(path)
        assert response.status_code == 401 and response.get_json()["error"] == "unauthorized", path
    response = reader.post("/api/v1/publications", json={"name": "Báo lậu", "slug": "bao-lau"},
                           headers={CSRF: csrf_of(reader)})
    assert response.status_code == 401
    assert count(app, Publication) == 0
    # the reader secret as a Bearer token is no API token either
    secret = reader.get_cookie("baonhung_reader").value
    assert app.test_client().get("/api/v1/publications",
                                 headers={"Authorization": f"Bearer {secret}"}).status_code == 401


def test_a_staff_session_is_not_a_reader_session(app):
    from builder import services as svc

    db = db_of(app)
    try:
        svc.create_user(db, svc.SYSTEM, "bien.tap@example.vn", "editor", PASSWORD)
        db.commit()
    finally:
        db.close()
    staff = staff_login(app, "bien.tap@example.vn", PASSWORD)
    assert staff.get("/publications").status_code == 200
    assert staff.get("/api/v1/reader/me").get_json() == {"signed_in": False}
    with staff.session_transaction() as session:
        staff_secret = session["sid"]
    forged = browser(app)
    forged.set_cookie("baonhung_reader", staff_secret)  # the staff session's own secret, as a reader cookie
    assert me(forged) == {"signed_in": False}
    forged.set_cookie("baonhung_reader", staff.get_cookie("baonhung_session").value)
    assert me(forged) == {"signed_in": False}
    response = post(browser(app), "/api/v1/reader/signin", {"email": "bien.tap@example.vn", "password": PASSWORD})
    assert response.status_code == 401  # a staff account does not sign in as a reader


# ------------------------------------------------------------------------------------------ helpers for premium.py

def test_session_binding_is_the_cookies_sha256_and_current_reader_reads_the_session(app):
    from builder.web.common import db
    from viewer_api.readers_api import current_reader, session_binding

    client = signed_up(app)
    secret = client.get_cookie("baonhung_reader").value
    with app.test_request_context("/api/v1/reader/me", headers={"Cookie": f"baonhung_reader={secret}"}):
        assert session_binding() == hashlib.sha256(secret.encode()).hexdigest()
        assert current_reader(db()).email == "ban.doc@example.vn"
    with app.test_request_context("/api/v1/reader/me", headers={"Cookie": "baonhung_reader=guessed-token"}):
        assert session_binding() == hashlib.sha256(b"guessed-token").hexdigest()  # bound, and worth nothing
        assert current_reader(db()) is None
    with app.test_request_context("/api/v1/reader/me"):
        assert session_binding() is None and current_reader(db()) is None


def test_me_lists_the_live_and_coming_entitlements_only(app):
    client = signed_up(app)
    now = utcnow()
    later = (now + dt.timedelta(days=30)).replace(microsecond=0)
    db = db_of(app)
    try:
        reader = db.scalar(select(Reader))
        pub = Publication(name="Báo Sáng", slug="bao-sang")
        db.add(pub)
        db.flush()
        until = (now + dt.timedelta(days=30)).replace(microsecond=0)
        db.add_all([
            Entitlement(reader_id=reader.id, publication_id=pub.id, source="admin", expires_at=until),
            Entitlement(reader_id=reader.id, publication_id=None, source="api", expires_at=None),
            Entitlement(reader_id=reader.id, publication_id=pub.id, source="code",
                        expires_at=now - dt.timedelta(days=1)),  # expired
            Entitlement(reader_id=reader.id, publication_id=pub.id, source="code", revoked_at=now),  # revoked
            Entitlement(reader_id=reader.id, publication_id=pub.id, source="code", starts_at=later,
                        expires_at=later + dt.timedelta(days=30)),  # a renewal, from when the first one ends
        ])
        db.commit()
    finally:
        db.close()
    z = lambda t: t.isoformat() + "Z"  # noqa: E731
    assert [{k: e[k] for k in ("publication", "expires_at")} for e in me(client)["entitlements"]] == [
        {"publication": "bao-sang", "expires_at": z(until)},
        {"publication": None, "expires_at": None},
        {"publication": "bao-sang", "expires_at": z(later + dt.timedelta(days=30))},
    ]
    assert me(client)["entitlements"][2]["starts_at"] == z(later)


# ------------------------------------------------------------------------------------------ password reset

def reset_link(message) -> str:
    return re.search(r"(http://\S+/reader/reset\?\S+)", message.get_content()).group(1)


def test_password_reset_through_a_real_smtp_server(tmp_path):
    with smtp_server() as (inbox, port):
        app = reader_app(tmp_path, smtp_host="127.0.0.1", smtp_port=port, smtp_tls="none",
                         mail_from="Báo Nhúng <no-reply@bao.example.vn>")
        phone = signed_up(app, lang="en")
        laptop = browser(app)
        assert post(laptop, "/api/v1/reader/signin",
                    {"email": "ban.doc@example.vn", "password": PASSWORD}).status_code == 200
        stranger = browser(app)
        response = post(stranger, "/api/v1/reader/password-reset", {"email": " Ban.Doc@example.vn"})
        assert response.status_code == 202 and response.headers["Cache-Control"] == "no-store"
        [(sender, rcpts, message)] = inbox.wait_for(1)
    assert rcpts == ["ban.doc@example.vn"] and message["Subject"] == "Reset your Báo Nhúng password"
    link = reset_link(message)
    parts = urlsplit(link)
    assert parts.path == "/reader/reset" and parse_qs(parts.query)["lang"] == ["en"]
    token = parse_qs(parts.query)["token"][0]
    assert len(token) >= 43 and token not in database_dump(app)

    page = stranger.get(f"{parts.path}?{parts.query}")
    assert page.status_code == 200 and page.headers["Referrer-Policy"] == "no-referrer"
    html = page.get_data(as_text=True)
    assert "Choose a new password" in html and f'value="{token}"' in html
    assert "/v/static/reader_reset.js" in html and "<script>" not in html  # no inline script (CSP)
    assert "script-src 'self';" in page.headers["Content-Security-Policy"]
    assert stranger.get("/v/static/reader_reset.js").status_code == 200

    response = post(stranger, "/api/v1/reader/password-reset/confirm", {"token": token, "password": NEW_PASSWORD})
    assert response.status_code == 204
    assert me(phone) == {"signed_in": False} and me(laptop) == {"signed_in": False}  # every session ended
    assert post(stranger, "/api/v1/reader/signin",
                {"email": "ban.doc@example.vn", "password": PASSWORD}).status_code == 401
    again = post(stranger, "/api/v1/reader/password-reset/confirm?lang=en", {"token": token, "password": PASSWORD})
    assert again.status_code == 400 and again.get_json()["error"] == "reset_token_invalid"  # single use
    assert stranger.get(f"{parts.path}?{parts.query}").status_code == 400
    assert post(stranger, "/api/v1/reader/signin",
                {"email": "ban.doc@example.vn", "password": NEW_PASSWORD}).status_code == 200
    assert NEW_PASSWORD not in database_dump(app)


def test_an_unknown_email_is_also_202_and_gets_no_mail(tmp_path):
    with smtp_server() as (inbox, port):
        app = reader_app(tmp_path, smtp_host="127.0.0.1", smtp_port=port, smtp_tls="none")
        signed_up(app)
        client = browser(app)
        unknown = post(client, "/api/v1/reader/password-reset", {"email": "khong.co@example.vn"})
        assert unknown.status_code == 202 and unknown.get_json() == {}
        known = post(client, "/api/v1/reader/password-reset", {"email": "ban.doc@example.vn"})
        assert known.status_code == 202 and known.get_json() == {}
        inbox.wait_for(1)
        time.sleep(0.3)  # the one sender thread sends in order: a mail for the unknown address would be first
        assert [rcpts for _, rcpts, _ in inbox.messages] == [["ban.doc@example.vn"]]
        assert inbox.messages[0][2]["Subject"] == "Đặt lại mật khẩu Báo Nhúng"  # signed up in Vietnamese
    assert count(app, PasswordReset) == 1


def test_reset_requests_for_one_email_are_limited_alike_for_known_and_unknown_addresses(app):
    signed_up(app)
    client = browser(app)
    for email in ("ban.doc@example.vn", "khong.co@example.vn"):
        statuses = [post(client, "/api/v1/reader/password-reset", {"email": email}).status_code for _ in range(3)]
        assert statuses == [202, 202, 429], email
    assert count(app, PasswordReset) == 2


def test_an_expired_reset_token_is_refused_and_changes_nothing(app):
    from builder import readers

    signed_up(app)
    db = db_of(app)
    try:
        _reader, token = readers.start_password_reset(db, "ban.doc@example.vn", now=utcnow() - dt.timedelta(hours=2))
        old_hash = db.scalar(select(Reader.password_hash))
    finally:
        db.close()
    client = browser(app)
    page = client.get(f"/reader/reset?token={token}")
    assert page.status_code == 410 and "đã hết hạn" in page.get_data(as_text=True)
    assert f'value="{token}"' not in page.get_data(as_text=True)
    response = post(client, "/api/v1/reader/password-reset/confirm", {"token": token, "password": NEW_PASSWORD})
    assert response.status_code == 410 and response.get_json()["error"] == "reset_token_expired"
    db = db_of(app)
    try:
        assert db.scalar(select(Reader.password_hash)) == old_hash
        assert db.scalar(select(PasswordReset.used_at)) is None
    finally:
        db.close()
    for bad in ("x" * 43, "x" * 500):
        response = post(client, "/api/v1/reader/password-reset/confirm", {"token": bad, "password": NEW_PASSWORD})
        assert response.status_code == 400 and response.get_json()["error"] == "reset_token_invalid"
    assert client.get("/reader/reset?token=nonsense&lang=en").status_code == 400


def test_a_weak_new_password_keeps_the_reset_token_usable(app):
    from builder import readers

    signed_up(app)
    db = db_of(app)
    try:
        _reader, token = readers.start_password_reset(db, "ban.doc@example.vn")
    finally:
        db.close()
    client = browser(app)
    response = post(client, "/api/v1/reader/password-reset/confirm", {"token": token, "password": "ngan"})
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_field"
    response = post(client, "/api/v1/reader/password-reset/confirm", {"token": token, "password": NEW_PASSWORD})
    assert response.status_code == 204


def test_without_smtp_the_reset_mail_lands_in_the_outbox(app, tmp_path):
    signed_up(app)
    client = browser(app)
    assert post(client, "/api/v1/reader/password-reset", {"email": "ban.doc@example.vn"}).status_code == 202
    outbox = tmp_path / "data" / "outbox"
    deadline = time.monotonic() + 10
    while not list(outbox.glob("*.eml")) and time.monotonic() < deadline:
        time.sleep(0.05)
    [eml] = list(outbox.glob("*.eml"))
    assert "/reader/reset?token=" in eml.read_bytes().decode("ascii").replace("=\n", "").replace("=3D", "=")
    assert not list(outbox.glob(".*"))  # no partial file left


def test_a_failing_mail_server_still_answers_202_and_logs(tmp_path, caplog):
    import logging

    app = reader_app(tmp_path, smtp_host="127.0.0.1", smtp_port=free_port(), smtp_tls="none")
    signed_up(app)
    client = browser(app)
    with caplog.at_level(logging.ERROR, logger="baonhung.mail"):
        response = post(client, "/api/v1/reader/password-reset", {"email": "ban.doc@example.vn"})
        assert response.status_code == 202
        deadline = time.monotonic() + 15
        while not any("not sent" in r.getMessage() for r in caplog.records) and time.monotonic() < deadline:
            time.sleep(0.05)
    assert any("not sent" in r.getMessage() and r.name == "baonhung.mail" for r in caplog.records)


def test_the_reset_page_speaks_vietnamese_by_default_and_english_on_request(app):
    from builder import readers

    signed_up(app)
    db = db_of(app)
    try:
        _reader, token = readers.start_password_reset(db, "ban.doc@example.vn")
    finally:
        db.close()
    client = app.test_client()
    vi = client.get(f"/reader/reset?token={token}")
    assert "Đặt mật khẩu mới" in vi.get_data(as_text=True) and '<html lang="vi">' in vi.get_data(as_text=True)
    assert client.get_cookie("baonhung_reader_csrf") is not None  # the form's script needs it
    assert client.get_cookie("baonhung_session") is None  # nothing of the staff session on a reader page
    en = client.get(f"/reader/reset?token={token}", headers={"Accept-Language": "en"})
    assert "Choose a new password" in en.get_data(as_text=True)


# ------------------------------------------------------------------------------------------ redeeming a code

def code_batch(app, count=2, max_redemptions=1, days=30, slug="bao-sang"):
    """A publication and a batch of codes for it, made by an editor: (publication id, batch id, [codes])."""
    from builder import entitlements
    from builder import services as svc
    from builder.services import Actor

    db = db_of(app)
    try:
        pub = db.scalar(select(Publication).where(Publication.slug == slug))
        if pub is None:
            pub = Publication(name="Báo Sáng", slug=slug)
            db.add(pub)
            db.commit()
        editor, _ = svc.create_user(db, svc.SYSTEM, f"editor{count}{max_redemptions}@toasoan.vn", "editor", PASSWORD)
        db.commit()
        batch, codes = entitlements.create_batch(db, Actor.of(editor, ""), pub.id, count, days, max_redemptions,
                                                 (dt.date.today() + dt.timedelta(days=60)).isoformat(), "thử",
                                                 settings=app.extensions["baonhung"].settings)
        return pub.id, batch.id, [code for _serial, code in codes]
    finally:
        db.close()


def test_a_signed_in_reader_redeems_a_printed_code_once(app):
    _pub, _batch, codes = code_batch(app)
    client = signed_up(app)
    typed = codes[0].lower().replace("-", " ")  # as a reader types it off the paper
    response = post(client, "/api/v1/reader/redeem", {"code": typed})
    assert response.status_code == 200, response.get_json()
    entitlement = response.get_json()["entitlement"]
    assert entitlement["publication"] == "bao-sang"
    expires = dt.datetime.fromisoformat(entitlement["expires_at"].removesuffix("Z"))
    assert abs((expires - utcnow()) - dt.timedelta(days=30)) < dt.timedelta(minutes=1)
    assert response.headers["Cache-Control"] == "no-store"
    assert [e["publication"] for e in me(client)["entitlements"]] == ["bao-sang"]
    again = post(client, "/api/v1/reader/redeem?lang=en", {"code": codes[0]})
    assert again.status_code == 409 and again.get_json() == {
        "error": "code_already_redeemed", "message": "You have already redeemed this code."}
    other = signed_up(app, "ban.khac@example.vn")
    used_up = post(other, "/api/v1/reader/redeem", {"code": codes[0]})
    assert used_up.status_code == 409 and used_up.get_json()["error"] == "code_used_up"
    assert me(other)["entitlements"] == []


def test_redeeming_is_refused_without_a_reader_or_a_real_code_and_grants_nothing(app):
    from builder.models import CodeBatch, CodeRedemption

    _pub, batch_id, codes = code_batch(app)
    anonymous = browser(app)
    response = post(anonymous, "/api/v1/reader/redeem", {"code": codes[0]})
    assert response.status_code == 401 and response.get_json()["error"] == "sign_in_required"
    client = signed_up(app)
    refused = {
        "ABCD": (400, "bad_code"),
        "2345-6789-ABCD": (404, "code_unknown"),  # well formed, not printed (2 codes of 2^60)
        "x" * 65: (400, "invalid_field"),
    }
    for code, (status, error) in refused.items():
        response = post(client, "/api/v1/reader/redeem", {"code": code})
        assert (response.status_code, response.get_json()["error"]) == (status, error), code
    assert client.post("/api/v1/reader/redeem", json={"code": codes[0]}).status_code == 403  # no CSRF header
    db = db_of(app)
    try:
        db.get(CodeBatch, batch_id).redeem_until = utcnow() - dt.timedelta(seconds=1)  # its last day is past
        db.commit()
    finally:
        db.close()
    expired = post(client, "/api/v1/reader/redeem", {"code": codes[1]})
    assert expired.status_code == 410 and expired.get_json()["error"] == "code_expired"
    assert count(app, CodeRedemption) == 0 and count(app, Entitlement) == 0
    assert me(client)["entitlements"] == []


def test_code_guessing_is_rate_limited_per_session(app):
    code_batch(app)
    client = signed_up(app)
    statuses = [post(client, "/api/v1/reader/redeem", {"code": f"2345-6789-AB{c}{c}"}).status_code
                for c in "CDEFGHJKLMN"]
    assert statuses[:10] == [404] * 10 and statuses[10] == 429


# ------------------------------------------------------------------------------------------ the domain's own limits

def test_a_session_older_than_thirty_days_signs_no_one_in(app):
    from builder import readers

    client = signed_up(app)
    secret = client.get_cookie("baonhung_reader").value
    db = db_of(app)
    try:
        assert readers.session_reader(db, secret).email == "ban.doc@example.vn"
        day_29 = utcnow() + dt.timedelta(days=29)
        day_31 = utcnow() + dt.timedelta(days=31)
        assert readers.session_reader(db, secret, now=day_29) is not None
        assert readers.session_reader(db, secret, now=day_31) is None
        db.scalar(select(Reader)).active = False  # a reader the newsroom switched off
        db.commit()
        assert readers.session_reader(db, secret) is None
    finally:
        db.close()
    assert me(client) == {"signed_in": False}


def test_a_reader_gets_at_most_three_reset_links_an_hour(app):
    from builder import readers

    signed_up(app)
    db = db_of(app)
    try:
        now = utcnow()
        issued = [readers.start_password_reset(db, "ban.doc@example.vn", now=now) for _ in range(4)]
        assert [x is not None for x in issued] == [True, True, True, False]
        assert readers.start_password_reset(db, "ban.doc@example.vn", now=now + dt.timedelta(minutes=61))
        tokens = [x[1] for x in issued[:3]]
        readers.confirm_password_reset(db, tokens[0], NEW_PASSWORD, now=now)
        for other in tokens[1:]:  # setting a password uses up the reader's other open links
            assert readers.reset_token_status(db, other, now=now) == "invalid"
    finally:
        db.close()
