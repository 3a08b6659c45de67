"""The newsroom's side of entitlements (issue 27): the HMAC-signed entitlements API of the payment system (a valid
signature grants and revokes; a bad, missing, stale or replayed one is a 401 and changes nothing) and the admin
screens /readers and /codes (editors and admins; CSRF on every form; every write audited)."""
from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import threading
import time

import pytest
from sqlalchemy import func, select

from builder import entitlements as ent
from builder.config import Settings
from builder.models import (ApiNonce, AuditEntry, CodeBatch, Entitlement, Publication, Reader, SubscriptionCode,
                            User, utcnow)
from tests.conftest import make_app

SECRET = "s3cret-of-the-payment-system-0123456789abcdef"


@pytest.fixture
def app(tmp_path):
    return make_app(tmp_path / "data", SETTINGS=Settings.from_env({"BAONHUNG_ENTITLEMENTS_SECRET": SECRET}))


@pytest.fixture
def db(app):
    session = app.extensions["baonhung"].sessionmaker()
    yield session
    session.close()


@pytest.fixture
def pub(db):
    p = Publication(name="Báo Yên Bái", slug="bao-yen-bai")
    db.add(p)
    db.commit()
    return p


def table_counts(db) -> dict:
    db.expire_all()
    return {m.__tablename__: db.scalar(select(func.count()).select_from(m))
            for m in (Reader, Entitlement, AuditEntry, ApiNonce, CodeBatch, SubscriptionCode)}


def post_signed(client, payload, secret=SECRET, timestamp=None, nonce=None, headers=None, body=None):
    body = json.dumps(payload).encode() if body is None else body
    signed = ent.sign_request(secret, body, timestamp, nonce)
    signed.update(headers or {})
    return client.post("/api/v1/entitlements", data=body, headers={"Content-Type": "application/json",
                                                                   **{k: v for k, v in signed.items() if v is not None}})


# ------------------------------------------------------------------------------------------------ signed API
def test_a_signed_grant_to_an_unknown_email_creates_the_reader_and_is_audited(client, db, pub):
    response = post_signed(client, {"action": "grant", "email": "Ban-Doc@Example.vn", "external_id": "KH-1",
                                    "publication": "bao-yen-bai", "days": 30, "reference": "order 88213"})
    assert response.status_code == 200, response.get_json()
    answer = response.get_json()
    assert answer["reader"]["email"] == "ban-doc@example.vn" and answer["reader"]["created"] is True
    assert answer["entitlement"]["publication"] == "bao-yen-bai" and answer["entitlement"]["expires_at"].endswith("Z")
    reader = db.scalar(select(Reader).where(Reader.email == "ban-doc@example.vn"))
    assert reader.external_id == "KH-1" and ent.is_entitled(db, reader.id, pub.id)
    row = db.scalar(select(Entitlement))
    assert (row.source, row.source_ref) == ("api", "order 88213")
    audits = db.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
    assert [(a.action, a.user_email) for a in audits] == [("reader.create", "api:entitlements"),
                                                          ("entitlement.grant", "api:entitlements")]
    assert audits[1].detail["reference"] == "order 88213"


def test_a_grant_by_external_id_reaches_the_known_reader_and_revoke_ends_it(client, db, pub):
    post_signed(client, {"action": "grant", "email": "lan@example.vn", "external_id": "KH-7", "days": None})
    reader = db.scalar(select(Reader))
    assert ent.is_entitled(db, reader.id, pub.id)  # publication omitted: every publication, no end
    again = post_signed(client, {"action": "grant", "external_id": "KH-7", "publication": "bao-yen-bai", "days": 5})
    assert again.get_json()["reader"] == {"id": reader.id, "email": "lan@example.vn", "external_id": "KH-7",
                                          "created": False}
    revoked = post_signed(client, {"action": "revoke", "external_id": "KH-7", "publication": None})
    assert revoked.status_code == 200 and revoked.get_json()["revoked"] == 2
    db.expire_all()
    assert not ent.is_entitled(db, reader.id, pub.id)
    assert db.scalar(select(AuditEntry.detail).where(AuditEntry.action == "entitlement.revoke"))["revoked"] == 2


@pytest.mark.parametrize("case", ["bad_signature", "other_secret", "tampered_body", "stale", "future",
                                  "no_signature", "no_nonce", "no_timestamp", "short_nonce", "garbage_timestamp"])
def test_a_badly_signed_request_is_401_and_changes_nothing(client, db, pub, case):
    payload = {"action": "grant", "email": "lan@example.vn", "publication": "bao-yen-bai", "days": 30}
    body = json.dumps(payload).encode()
    before = table_counts(db)
    kw: dict = {}
    if case == "bad_signature":
        kw["headers"] = {ent.HEADER_SIGNATURE: "sha256=" + "0" * 64}
    elif case == "other_secret":
        kw["secret"] = "another-secret-another-secret-another-secret"
    elif case == "tampered_body":
        signed = ent.sign_request(SECRET, body)
        response = client.post("/api/v1/entitlements", data=body.replace(b"30", b"3000"),
                               headers={"Content-Type": "application/json", **signed})
    elif case == "stale":
        kw["timestamp"] = int(time.time()) - 301
    elif case == "future":
        kw["timestamp"] = int(time.time()) + 301
    elif case == "no_signature":
        kw["headers"] = {ent.HEADER_SIGNATURE: None}
    elif case == "no_nonce":
        kw["headers"] = {ent.HEADER_NONCE: None}
    elif case == "no_timestamp":
        kw["headers"] = {ent.HEADER_TIMESTAMP: None}
    elif case == "short_nonce":
        kw["nonce"] = "abc"
    elif case == "garbage_timestamp":
        kw["timestamp"] = "yesterday"
    if case != "tampered_body":
        response = post_signed(client, payload, body=body, **kw)
    assert response.status_code == 401
    expected = {"stale": "timestamp_stale", "future": "timestamp_stale", "no_signature": "signature_missing",
                "no_nonce": "signature_missing", "no_timestamp": "signature_missing"}.get(case, "signature_invalid")
    assert response.get_json()["error"] == expected
    assert table_counts(db) == before


def test_a_replayed_request_is_401_and_changes_nothing(client, db, pub):
    payload = {"action": "grant", "email": "lan@example.vn", "publication": "bao-yen-bai", "days": 30}
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", **ent.sign_request(SECRET, body)}
    assert client.post("/api/v1/entitlements", data=body, headers=headers).status_code == 200
    before = table_counts(db)
    replay = client.post("/api/v1/entitlements", data=body, headers=headers, environ_base={"REMOTE_ADDR": "10.9.9.9"})
    assert replay.status_code == 401 and replay.get_json()["error"] == "nonce_replayed"
    assert "nonce" in replay.get_json()["message"].lower()
    assert table_counts(db) == before


def test_old_nonces_are_pruned(client, db, pub):
    db.add(ApiNonce(key_id="k", nonce="x" * 20, at=utcnow() - dt.timedelta(seconds=ent.NONCE_KEEP_S + 5)))
    db.add(ApiNonce(key_id="k", nonce="y" * 20, at=utcnow() - dt.timedelta(seconds=60)))
    db.commit()
    assert post_signed(client, {"action": "grant", "email": "lan@example.vn"}).status_code == 200
    db.expire_all()
    kept = db.scalars(select(ApiNonce.nonce)).all()
    assert "x" * 20 not in kept and "y" * 20 in kept and len(kept) == 2  # the old one gone, the recent and the new


@pytest.mark.parametrize("payload,status,error,lang_words", [
    ({"action": "give", "email": "lan@example.vn"}, 400, "invalid_field", "thao tác"),
    ({"action": "grant"}, 400, "missing_field", "email"),
    ({"action": "grant", "email": "not-an-email"}, 400, "invalid_field", "email"),
    ({"action": "grant", "email": "lan@example.vn", "days": 0}, 400, "invalid_field", "số ngày"),
    ({"action": "grant", "email": "lan@example.vn", "days": "30"}, 400, "invalid_field", "số ngày"),
    ({"action": "grant", "email": "lan@example.vn", "price": 5}, 400, "invalid_field", "price"),
    ({"action": "grant", "email": "lan@example.vn", "publication": "no-such"}, 404, "not_found", "ấn phẩm"),
    ({"action": "revoke", "external_id": "KH-404"}, 404, "not_found", "bạn đọc"),
    ({"action": "revoke", "email": "nobody@example.vn"}, 404, "not_found", "bạn đọc"),
    (["grant"], 400, "bad_request", "JSON"),
])
def test_bad_json_fields_are_4xx_in_the_usual_shape_and_change_nothing(client, db, pub, payload, status, error,
                                                                        lang_words):
    before = table_counts(db)
    response = post_signed(client, payload)
    assert response.status_code == status, response.get_json()
    assert response.get_json()["error"] == error and lang_words in response.get_json()["message"]
    after = table_counts(db)
    assert after.pop("api_nonces") == before.pop("api_nonces") + 1  # the nonce is spent: a replay stays a replay
    assert after == before


def test_a_body_that_is_not_json_or_too_large_is_refused(client, db, pub):
    not_json = post_signed(client, None, body=b"action=grant")
    assert not_json.status_code == 400 and not_json.get_json()["error"] == "bad_request"
    big = json.dumps({"action": "grant", "email": "lan@example.vn", "reference": "x" * (ent.MAX_API_BODY + 1)})
    before = table_counts(db)
    too_large = post_signed(client, None, body=big.encode())
    assert too_large.status_code == 413 and too_large.get_json()["error"] == "bad_request"
    assert table_counts(db) == before


def test_the_api_is_off_without_a_secret(tmp_path):
    app = make_app(tmp_path / "off")
    response = post_signed(app.test_client(), {"action": "grant", "email": "lan@example.vn"}, secret="x" * 40)
    assert response.status_code == 404 and response.get_json()["error"] == "entitlements_api_off"
    assert "BAONHUNG_ENTITLEMENTS_SECRET" in response.get_json()["message"]


def test_the_openapi_document_states_the_signed_api(client):
    from openapi_spec_validator import validate

    doc = client.get("/api/v1/openapi.json").get_json()
    validate(doc)
    op = doc["paths"]["/api/v1/entitlements"]["post"]
    assert {p["name"] for p in op["parameters"]} == {ent.HEADER_TIMESTAMP, ent.HEADER_NONCE, ent.HEADER_SIGNATURE}
    assert op["requestBody"]["content"]["application/json"]["example"]["action"] == "grant"
    assert "401" in op["responses"] and op["security"] == []


def test_the_example_script_grants_through_a_real_http_server(app, db, pub, monkeypatch):
    from werkzeug.serving import make_server

    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "entitlements_example", Path(__file__).resolve().parents[2] / "scripts" / "entitlements_example.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("BAONHUNG_ENTITLEMENTS_SECRET", SECRET)
        base = f"http://127.0.0.1:{server.server_port}"
        assert example.main([base, "grant", "lan@example.vn", "--publication", "bao-yen-bai", "--days", "30",
                             "--reference", "order 1"]) == 0
        reader = db.scalar(select(Reader).where(Reader.email == "lan@example.vn"))
        assert ent.is_entitled(db, reader.id, pub.id)
        assert example.main([base, "revoke", "lan@example.vn"]) == 0
        db.expire_all()
        assert not ent.is_entitled(db, reader.id, pub.id)
        monkeypatch.setenv("BAONHUNG_ENTITLEMENTS_SECRET", "wrong-" * 8)
        assert example.main([base, "grant", "lan@example.vn"]) == 1
    finally:
        server.shutdown()


# ------------------------------------------------------------------------------------------------ admin screens
def signed_in(app, db, role: str):
    from builder import auth as auth_mod
    from builder import services as svc

    user = db.scalar(select(User).where(User.role == role))
    if user is None:
        user, _ = svc.create_user(db, svc.SYSTEM, f"{role}@toasoan.vn", role, "mat-khau-that-dai-1")
    client = app.test_client()
    secret = auth_mod.open_session(db, user, "127.0.0.1")
    db.commit()
    with client.session_transaction() as sess:
        sess["uid"], sess["sid"], sess["pwv"] = user.id, secret, user.password_hash[-16:]
    return client


def csrf_of(client, path: str = "/readers") -> str:
    return re.search(r'name="csrf-token" content="([^"]+)"', client.get(path).get_data(as_text=True)).group(1)


@pytest.fixture
def reader(db):
    r = Reader(email="lan@example.vn", external_id="KH-42", password_hash="x")
    db.add(r)
    db.commit()
    return r


def test_an_editor_finds_a_reader_grants_and_revokes_by_hand_and_both_are_audited(app, db, pub, reader):
    client = signed_in(app, db, "editor")
    found = client.get("/readers?q=LAN@").get_data(as_text=True)
    assert "lan@example.vn" in found and f"/readers/{reader.id}" in found
    by_external = client.get("/readers?q=KH-42")
    assert by_external.status_code == 302 and by_external.headers["Location"].endswith(f"/readers/{reader.id}")
    token = csrf_of(client, f"/readers/{reader.id}")
    granted = client.post(f"/readers/{reader.id}/grant", data={"publication": str(pub.id), "days": "14",
                                                               "reference": "khiếu nại 2231", "csrf_token": token},
                          follow_redirects=True)
    assert granted.status_code == 200 and "lan@example.vn" in granted.get_data(as_text=True)
    assert ent.is_entitled(db, reader.id, pub.id)
    page = client.get(f"/readers/{reader.id}?lang=en").get_data(as_text=True)
    assert "Báo Yên Bái" in page and "khiếu nại 2231" in page and "In force" in page
    revoked = client.post(f"/readers/{reader.id}/revoke", data={"publication": "", "csrf_token": token})
    assert revoked.status_code == 302
    db.expire_all()
    assert not ent.is_entitled(db, reader.id, pub.id)
    audits = db.scalars(select(AuditEntry).where(AuditEntry.action.like("entitlement.%")).order_by(AuditEntry.id)).all()
    assert [(a.action, a.user_email, a.address) for a in audits] == [
        ("entitlement.grant", "editor@toasoan.vn", "127.0.0.1"), ("entitlement.revoke", "editor@toasoan.vn", "127.0.0.1")]
    assert audits[0].detail["days"] == 14 and audits[0].detail["source"] == "admin"


def test_a_hand_grant_with_bad_days_is_refused_in_vietnamese_and_writes_nothing(app, db, pub, reader):
    client = signed_in(app, db, "admin")
    token = csrf_of(client)
    before = table_counts(db)
    response = client.post(f"/readers/{reader.id}/grant", data={"publication": str(pub.id), "days": "99999",
                                                                "csrf_token": token},
                           headers={"Referer": f"http://localhost/readers/{reader.id}"}, follow_redirects=True)
    assert "số ngày" in response.get_data(as_text=True)
    assert table_counts(db) == before


@pytest.mark.parametrize("role", ["designer", "print_desk"])
def test_other_roles_get_a_page_saying_why(app, db, pub, reader, role):
    client = signed_in(app, db, role)
    for path in ("/readers", f"/readers/{reader.id}", "/codes"):
        response = client.get(path + "?lang=en")
        assert response.status_code == 403
        assert "editors and administrators" in response.get_data(as_text=True)
    vi = client.get("/readers?lang=vi").get_data(as_text=True)
    assert "biên tập viên" in vi
    token = csrf_of(client, "/")
    before = table_counts(db)
    assert client.post(f"/readers/{reader.id}/grant", data={"days": "5", "csrf_token": token}).status_code == 403
    assert client.post("/codes", data={"count": "5", "days": "5", "max_redemptions": "1",
                                       "redeem_until": "2099-01-01", "csrf_token": token}).status_code == 403
    assert table_counts(db) == before
    assert "/readers" not in client.get("/").get_data(as_text=True)


def test_forms_without_the_csrf_token_are_refused(app, db, pub, reader):
    client = signed_in(app, db, "editor")
    before = table_counts(db)
    response = client.post(f"/readers/{reader.id}/grant", data={"publication": str(pub.id), "days": "5"})
    assert response.status_code == 400 and "CSRF" in response.get_data(as_text=True)
    assert client.post("/codes", data={"publication": str(pub.id), "count": "5", "days": "5",
                                       "max_redemptions": "1", "redeem_until": "2099-01-01"}).status_code == 400
    assert table_counts(db) == before


def test_anonymous_visitors_are_sent_to_the_login_page(client):
    for path in ("/readers", "/codes"):
        response = client.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_an_editor_makes_a_batch_downloads_it_and_revokes_it(app, db, pub):
    client = signed_in(app, db, "editor")
    token = csrf_of(client, "/codes")
    until = (utcnow() + dt.timedelta(days=60)).date().isoformat()
    created = client.post("/codes", data={"name": "Tháng 12", "publication": str(pub.id), "count": "12",
                                          "days": "31", "max_redemptions": "1", "redeem_until": until,
                                          "csrf_token": token}, follow_redirects=True)
    html = created.get_data(as_text=True)
    assert created.status_code == 200 and "Tháng 12" in html
    batch = db.scalar(select(CodeBatch))
    assert batch.count == 12 and batch.days == 31
    data = client.get(f"/codes/{batch.id}.csv")
    assert data.status_code == 200 and data.headers["Cache-Control"] == "no-store, private"
    rows = list(csv.DictReader(io.StringIO(data.get_data().decode("utf-8-sig"))))
    assert len(rows) == 12 and rows[0]["publication"] == "Báo Yên Bái"
    pdf = client.get(f"/codes/{batch.id}.pdf")
    assert pdf.status_code == 200 and pdf.get_data().startswith(b"%PDF") and pdf.mimetype == "application/pdf"
    reader = Reader(email="lan@example.vn", password_hash="x")
    db.add(reader)
    db.commit()
    ent.redeem_code(db, reader, rows[0]["code"])
    listing = client.get("/codes").get_data(as_text=True)
    assert 'data-redeemed="1"' in listing
    assert client.post(f"/codes/{batch.id}/revoke", data={"csrf_token": token}).status_code == 302
    other = Reader(email="minh@example.vn", password_hash="x")
    db.add(other)
    db.commit()
    with pytest.raises(ent.CodeError) as refused:
        ent.redeem_code(db, other, rows[1]["code"])
    assert refused.value.code == "code_expired"
    actions = db.scalars(select(AuditEntry.action).where(AuditEntry.action.like("code_batch.%"))
                         .order_by(AuditEntry.id)).all()
    assert actions == ["code_batch.create", "code_batch.export", "code_batch.export", "code_batch.revoke"]


def test_a_batch_out_of_range_is_refused_with_the_reason(app, db, pub):
    client = signed_in(app, db, "editor")
    token = csrf_of(client, "/codes")
    response = client.post("/codes?lang=en", data={"publication": str(pub.id), "count": "20000", "days": "30",
                                                   "max_redemptions": "1", "redeem_until": "2099-01-01",
                                                   "csrf_token": token},
                           headers={"Referer": "http://localhost/codes"}, follow_redirects=True)
    assert "10,000" in response.get_data(as_text=True)
    assert db.scalar(select(func.count()).select_from(CodeBatch)) == 0
