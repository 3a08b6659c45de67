"""JSON API: every endpoint, every role rule, and each bad input (clear 4xx, nothing left behind)."""
from __future__ import annotations

import datetime as dt
import io
import json
import re
import struct
import subprocess
import zipfile
import zlib

import pytest

from tests.conftest import auth, make_users, png_bytes, restored_fixtures, state_snapshot, upload


@pytest.fixture(scope="module")
def tiny_mp4(tmp_path_factory) -> bytes:
    out = tmp_path_factory.mktemp("media") / "clip.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=160x90:rate=10:duration=1",
                    "-pix_fmt", "yuv420p", "-c:v", "libx264", str(out)], check=True)
    return out.read_bytes()


@pytest.fixture(scope="module")
def page_png() -> bytes:
    return png_bytes(620, 877, seed=11)


def make_publication(client, token, slug="bao-yen-bai"):
    r = client.post("/api/v1/publications", json={"name": "Báo Yên Bái", "slug": slug}, headers=auth(token))
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def make_edition(client, token, slug="bao-yen-bai", number=1):
    r = client.post(f"/api/v1/publications/{slug}/editions",
                    json={"date": "2026-11-26", "number": number, "title": "Số thử"}, headers=auth(token))
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def make_page(client, token, edition_id, png, number=None):
    data = {"image": upload(png, "trang.png"), "width_mm": "297", "height_mm": "420"}
    if number:
        data["number"] = str(number)
    r = client.post(f"/api/v1/editions/{edition_id}/pages", data=data, headers=auth(token),
                    content_type="multipart/form-data")
    assert r.status_code == 201, r.get_json()
    return r.get_json()


PLACEMENT = {"x_mm": "20", "y_mm": "30", "width_mm": "100", "height_mm": "60", "rotation_deg": "15",
             "elevation_mm": "5"}


def _make_page(app) -> dict:
    """Users of every role, a publication, an edition and one page (620 x 877 px, seed 11) of it."""
    users, client = make_users(app), app.test_client()
    make_publication(client, users.tokens["designer"])
    edition = make_edition(client, users.tokens["designer"])
    return {"users": users, "page": make_page(client, users.tokens["designer"], edition["id"], png_bytes(620, 877, seed=11))}


app, users = restored_fixtures("page", _make_page)


@pytest.fixture
def page(app, request):
    """A page of an edition of a publication, as the designer uploaded it (built once, then restored)."""
    return request.node.restored["page"]


# ---------------------------------------------------------------------------------------------- auth

def test_requests_without_token_are_refused_with_401(client, users):
    r = client.post("/api/v1/publications", json={"name": "X", "slug": "x"})
    assert r.status_code == 401
    assert r.get_json()["error"] == "unauthorized"


def test_error_message_follows_accept_language(client, users):
    vi = client.post("/api/v1/publications", json={"slug": "x"}, headers=auth(users.tokens["designer"]))
    en = client.post("/api/v1/publications", json={"slug": "x"}, headers=auth(users.tokens["designer"], "en"))
    assert vi.status_code == en.status_code == 400
    assert vi.get_json()["error"] == en.get_json()["error"] == "missing_field"
    assert "Thiếu" in vi.get_json()["message"] and "Missing" in en.get_json()["message"]


def test_revoked_token_stops_working(client, users):
    token = users.tokens["designer"]
    r = client.post("/api/v1/tokens", json={"name": "second"}, headers=auth(token))
    assert r.status_code == 201
    second = r.get_json()
    assert client.get("/api/v1/publications", headers=auth(second["token"])).status_code == 200
    assert client.delete(f"/api/v1/tokens/{second['id']}", headers=auth(token)).status_code == 204
    assert client.get("/api/v1/publications", headers=auth(second["token"])).status_code == 401


def test_expired_token_is_refused(app, client, users):
    from builder.models import ApiToken

    r = client.post("/api/v1/tokens", json={"name": "short", "expires_days": 1}, headers=auth(users.tokens["editor"]))
    secret, token_id = r.get_json()["token"], r.get_json()["id"]
    db = app.extensions["baonhung"].sessionmaker()
    row = db.get(ApiToken, token_id)
    row.expires_at = dt.datetime(2000, 1, 1)
    db.commit()
    db.close()
    assert client.get("/api/v1/publications", headers=auth(secret)).status_code == 401


def test_tokens_are_stored_hashed(app, users):
    from sqlalchemy import select

    from builder.models import ApiToken

    db = app.extensions["baonhung"].sessionmaker()
    hashes = db.scalars(select(ApiToken.token_hash)).all()
    db.close()
    assert users.tokens["admin"] not in hashes and all(len(h) == 64 for h in hashes)


def test_cookie_session_writes_need_a_csrf_token(client, users):
    r = client.post("/login", data={"email": "designer@example.vn", "password": users.password})
    assert r.status_code == 400  # the login form itself is CSRF-protected
    # a logged-in session without the X-CSRFToken header cannot write through the API
    from builder.models import User

    app = client.application
    db = app.extensions["baonhung"].sessionmaker()
    from tests.web.test_ui import sign_in

    sign_in(client, db, db.get(User, users.ids["designer"]))
    db.close()
    before = state_snapshot(app)
    r = client.post("/api/v1/publications", json={"name": "Báo", "slug": "bao"})
    assert r.status_code == 400 and r.get_json()["error"] == "csrf"
    assert state_snapshot(app) == before


def test_login_is_throttled_after_repeated_failures(app, users):
    from builder import auth as auth_mod
    from builder.errors import LoginThrottled

    db = app.extensions["baonhung"].sessionmaker()
    for _ in range(5):
        assert auth_mod.check_login(db, "editor@example.vn", "wrong password!", "10.0.0.9", 5, 300) is None
    with pytest.raises(LoginThrottled):
        auth_mod.check_login(db, "editor@example.vn", users.password, "10.0.0.9", 5, 300)
    # another address is not locked out by this one
    assert auth_mod.check_login(db, "editor@example.vn", users.password, "10.0.0.10", 5, 300) is not None
    db.close()


def test_passwords_are_argon2id(app, users):
    from builder.models import User

    db = app.extensions["baonhung"].sessionmaker()
    assert db.get(User, users.ids["admin"]).password_hash.startswith("$argon2id$")
    db.close()


# -------------------------------------------------------------------------------------- publications

def test_publication_create_get_patch_delete(client, users):
    token = users.tokens["editor"]
    r = client.post("/api/v1/publications", json={"name": "Báo Yên Bái", "slug": "bao-yen-bai"}, headers=auth(token))
    assert r.status_code == 201 and r.headers["Location"].endswith("/api/v1/publications/bao-yen-bai")
    assert client.get("/api/v1/publications/bao-yen-bai", headers=auth(token)).get_json()["name"] == "Báo Yên Bái"
    r = client.patch("/api/v1/publications/bao-yen-bai", json={"name": "Tạp chí Văn nghệ"}, headers=auth(token))
    assert r.status_code == 200 and r.get_json()["name"] == "Tạp chí Văn nghệ"
    assert client.delete("/api/v1/publications/bao-yen-bai", headers=auth(token)).status_code == 204
    assert client.get("/api/v1/publications/bao-yen-bai", headers=auth(token)).status_code == 404


def test_duplicate_slug_conflicts_and_bad_slug_is_refused(client, users):
    token = users.tokens["designer"]
    make_publication(client, token)
    assert client.post("/api/v1/publications", json={"name": "B", "slug": "bao-yen-bai"},
                       headers=auth(token)).status_code == 409
    r = client.post("/api/v1/publications", json={"name": "B", "slug": "Báo Yên Bái"}, headers=auth(token))
    assert r.status_code == 400 and r.get_json()["error"] == "invalid_field"


@pytest.mark.parametrize("role", ["print_desk"])
def test_print_desk_cannot_write_content(client, users, role, app):
    before = state_snapshot(app)
    r = client.post("/api/v1/publications", json={"name": "B", "slug": "b"}, headers=auth(users.tokens[role]))
    assert r.status_code == 403 and r.get_json()["error"] == "forbidden"
    assert state_snapshot(app) == before


def test_designer_cannot_delete_a_publication(client, users):
    make_publication(client, users.tokens["designer"])
    assert client.delete("/api/v1/publications/bao-yen-bai", headers=auth(users.tokens["designer"])).status_code == 403


# ------------------------------------------------------------------------------------------ editions

def test_edition_create_returns_id_and_can_be_read_patched_deleted(client, users):
    token = users.tokens["designer"]
    make_publication(client, token)
    edition = make_edition(client, token)
    assert isinstance(edition["id"], int) and edition["status"] == "draft" and len(edition["code"]) >= 6
    r = client.patch(f"/api/v1/editions/{edition['id']}", json={"title": "Số Tết"}, headers=auth(token))
    assert r.get_json()["title"] == "Số Tết"
    assert client.get("/api/v1/publications/bao-yen-bai/editions", headers=auth(token)).get_json()["editions"][0][
        "id"] == edition["id"]
    assert client.delete(f"/api/v1/editions/{edition['id']}", headers=auth(token)).status_code == 204
    assert client.get(f"/api/v1/editions/{edition['id']}", headers=auth(token)).status_code == 404


@pytest.mark.parametrize("body,field", [({"number": 1}, "date"), ({"date": "26/11/2026", "number": 1}, "date"),
                                        ({"date": "2026-11-26"}, "number"),
                                        ({"date": "2026-11-26", "number": "abc"}, "number")])
def test_edition_bad_fields_are_400(client, users, body, field, app):
    make_publication(client, users.tokens["designer"])
    before = state_snapshot(app)
    r = client.post("/api/v1/publications/bao-yen-bai/editions", json=body, headers=auth(users.tokens["designer"], "en"))
    assert r.status_code == 400 and field in r.get_json()["message"]
    assert state_snapshot(app) == before


# --------------------------------------------------------------------------------------------- pages

def test_page_upload_creates_page_with_rating(client, users, page):
    assert isinstance(page["id"], int)
    assert page["width_mm"] == 297 and page["image"]["width_px"] == 620
    assert 0 <= page["rating"]["stars"] <= 5 and page["heatmap_url"]
    token = users.tokens["designer"]
    img = client.get(page["image"]["url"], headers=auth(token))
    assert img.status_code == 200 and img.data[:8] == b"\x89PNG\r\n\x1a\n"


def test_page_size_from_preset_and_from_pdf(client, users, page_png):
    token = users.tokens["designer"]
    make_publication(client, token)
    edition = make_edition(client, token)
    r = client.post(f"/api/v1/editions/{edition['id']}/pages", headers=auth(token), content_type="multipart/form-data",
                    data={"image": upload(page_png, "p.png"), "preset": "A4"})
    assert r.status_code == 201 and (r.get_json()["width_mm"], r.get_json()["height_mm"]) == (210, 297)
    from reportlab.lib.units import mm
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=(315 * mm, 470 * mm))
    c.setFont("Helvetica-Bold", 60)
    c.drawString(40, 1200, "BAO YEN BAI")
    c.rect(40, 300, 600, 700, fill=1)
    c.showPage()
    c.save()
    r = client.post(f"/api/v1/editions/{edition['id']}/pages", headers=auth(token), content_type="multipart/form-data",
                    data={"image": upload(buf.getvalue(), "page.pdf")})
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert abs(body["width_mm"] - 315) < 0.5 and abs(body["height_mm"] - 470) < 0.5
    assert body["image"]["mime"] == "image/png" and body["image"]["width_px"] >= 315 / 25.4 * 150 - 2


def _bomb_png() -> bytes:
    """A tiny PNG whose header declares 100,000 × 100,000 pixels."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("payload,name,status,code", [
    (b"hello, this is text not an image", "trang.png", 415, "unsupported_type"),
    (_bomb_png(), "bomb.png", 413, "image_too_large"),
])
def test_bad_page_uploads_leave_nothing(client, users, app, payload, name, status, code):
    token = users.tokens["designer"]
    make_publication(client, token)
    edition = make_edition(client, token)
    before = state_snapshot(app)
    r = client.post(f"/api/v1/editions/{edition['id']}/pages", headers=auth(token, "en"),
                    content_type="multipart/form-data", data={"image": upload(payload, name), "preset": "A3"})
    assert r.status_code == status and r.get_json()["error"] == code, r.get_json()
    assert r.get_json()["message"]
    assert state_snapshot(app) == before


def test_oversized_page_is_413_and_leaves_nothing(tmp_path, page_png):
    from builder.importers import UploadLimits
    from tests.conftest import make_app

    app = make_app(tmp_path / "d", UPLOAD_LIMITS=UploadLimits(max_page_bytes=10_000))
    from tests.conftest import user_with_token

    token = user_with_token(app, "d@example.vn", "designer")
    client = app.test_client()
    make_publication(client, token)
    edition = make_edition(client, token)
    before = state_snapshot(app)
    r = client.post(f"/api/v1/editions/{edition['id']}/pages", headers=auth(token), content_type="multipart/form-data",
                    data={"image": upload(page_png, "big.png"), "preset": "A3"})
    assert r.status_code == 413 and r.get_json()["error"] == "too_large"
    assert state_snapshot(app) == before


def test_page_without_image_is_400(client, users):
    token = users.tokens["designer"]
    make_publication(client, token)
    edition = make_edition(client, token)
    r = client.post(f"/api/v1/editions/{edition['id']}/pages", headers=auth(token), content_type="multipart/form-data",
                    data={"preset": "A3"})
    assert r.status_code == 400 and r.get_json()["error"] == "missing_field"


def test_page_patch_and_delete(client, users, page):
    token = users.tokens["designer"]
    r = client.patch(f"/api/v1/pages/{page['id']}", json={"title": "Trang nhất", "number": 2}, headers=auth(token))
    assert r.status_code == 200 and r.get_json()["number"] == 2
    assert client.delete(f"/api/v1/pages/{page['id']}", headers=auth(token)).status_code == 204
    assert client.get(f"/api/v1/pages/{page['id']}", headers=auth(token)).status_code == 404


# ------------------------------------------------------------------------------------------ overlays

def test_link_and_stock_overlays(client, users, page):
    token = users.tokens["designer"]
    r = client.post(f"/api/v1/pages/{page['id']}/overlays", headers=auth(token), content_type="multipart/form-data",
                    data={"kind": "link", "url": "https://baoyenbai.com.vn/bai-viet", "label": "Đọc thêm", **PLACEMENT})
    assert r.status_code == 201, r.get_json()
    link = r.get_json()
    assert link["url"].startswith("https://") and link["rotation_deg"] == 15 and link["options"]["label"] == "Đọc thêm"
    r = client.post(f"/api/v1/pages/{page['id']}/overlays", headers=auth(token), content_type="multipart/form-data",
                    data={"kind": "model3d", "stock": "arrow", **PLACEMENT})
    assert r.status_code == 201 and r.get_json()["asset"]["mime"] == "model/gltf-binary"


def test_video_overlay_reads_duration_and_poster(client, users, page, tiny_mp4):
    token = users.tokens["designer"]
    r = client.post(f"/api/v1/pages/{page['id']}/overlays", headers=auth(token), content_type="multipart/form-data",
                    data={"kind": "video", "file": upload(tiny_mp4, "clip.mp4"), "chroma_key": "#00ff00", **PLACEMENT})
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert abs(body["asset"]["meta"]["duration_s"] - 1.0) < 0.2 and body["asset"]["meta"]["width"] == 160
    assert body["poster_url"] and body["options"]["chroma_key"] == "#00ff00" and body["options"]["muted"] is True


def test_overlay_patch_moves_and_delete_removes(client, users, page):
    token = users.tokens["designer"]
    r = client.post(f"/api/v1/pages/{page['id']}/overlays", headers=auth(token), content_type="multipart/form-data",
                    data={"kind": "link", "url": "https://example.org", **PLACEMENT})
    oid = r.get_json()["id"]
    r = client.patch(f"/api/v1/overlays/{oid}", json={"x_mm": 50.5, "rotation_deg": -30}, headers=auth(token))
    assert r.status_code == 200 and r.get_json()["x_mm"] == 50.5 and r.get_json()["rotation_deg"] == -30
    assert client.get(f"/api/v1/pages/{page['id']}/overlays", headers=auth(token)).get_json()["overlays"][0]["x_mm"] == 50.5
    assert client.delete(f"/api/v1/overlays/{oid}", headers=auth(token)).status_code == 204
    assert client.get(f"/api/v1/overlays/{oid}", headers=auth(token)).status_code == 404


def _zip_with(entries: dict) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


@pytest.mark.parametrize("kind,payload,name,status", [
    ("model3d", _zip_with({"../../evil.obj": "v 0 0 0\n", "model.obj": "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n"}),
     "model.zip", None),
    ("model3d", b"glTF\x02\x00\x00\x00\x10\x00\x00\x00garbage!", "bad.glb", None),
    ("model3d", b"v 0 0 0\nv one two three\nf 1 2 9\n", "bad.obj", None),
    ("video", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "clip.mp4", 415),
    ("audio", b"not audio at all" * 10, "sound.mp3", 415),
    ("link", None, None, 400),
    ("hologram", None, None, 400),
])
def test_bad_overlay_inputs_are_4xx_and_leave_nothing(client, users, page, app, kind, payload, name, status):
    token = users.tokens["designer"]
    before = state_snapshot(app)
    data = {"kind": kind, **PLACEMENT}
    if payload is not None:
        data["file"] = upload(payload, name)
    r = client.post(f"/api/v1/pages/{page['id']}/overlays", headers=auth(token, "en"), content_type="multipart/form-data",
                    data=data)
    assert 400 <= r.status_code < 500, (r.status_code, r.get_json())
    if status:
        assert r.status_code == status
    body = r.get_json()
    assert body["error"] and body["message"]
    assert state_snapshot(app) == before


def test_overlay_missing_placement_is_400(client, users, page, app):
    before = state_snapshot(app)
    r = client.post(f"/api/v1/pages/{page['id']}/overlays", headers=auth(users.tokens["designer"]),
                    content_type="multipart/form-data", data={"kind": "link", "url": "https://example.org"})
    assert r.status_code == 400 and r.get_json()["error"] == "missing_field"
    assert state_snapshot(app) == before


def test_overlay_wrong_role_is_403(client, users, page, app):
    before = state_snapshot(app)
    r = client.post(f"/api/v1/pages/{page['id']}/overlays", headers=auth(users.tokens["print_desk"]),
                    content_type="multipart/form-data", data={"kind": "link", "url": "https://example.org", **PLACEMENT})
    assert r.status_code == 403
    assert state_snapshot(app) == before


# ------------------------------------------------------------------------------- review and publish

def _submit(client, token, edition_id):
    r = client.post(f"/api/v1/editions/{edition_id}/submit", headers=auth(token))
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def test_review_flow_send_back_with_comment(client, users, page):
    edition_id = page["edition_id"]
    _submit(client, users.tokens["designer"], edition_id)
    # in review: designers cannot edit; designers cannot publish
    r = client.patch(f"/api/v1/pages/{page['id']}", json={"title": "x"}, headers=auth(users.tokens["designer"]))
    assert r.status_code == 409 and r.get_json()["error"] == "locked_for_review"
    assert client.post(f"/api/v1/editions/{edition_id}/publish",
                       headers=auth(users.tokens["designer"])).status_code == 403
    assert client.post(f"/api/v1/editions/{edition_id}/send-back", json={},
                       headers=auth(users.tokens["editor"])).status_code == 400
    r = client.post(f"/api/v1/editions/{edition_id}/send-back", json={"comment": "Video lệch khỏi ảnh"},
                    headers=auth(users.tokens["editor"]))
    assert r.status_code == 200 and r.get_json()["status"] == "draft"
    assert r.get_json()["review_comment"] == "Video lệch khỏi ảnh"


def test_publish_freezes_a_version_readers_keep_until_next_publish(client, users, page, app):
    designer, editor = users.tokens["designer"], users.tokens["editor"]
    r = client.post(f"/api/v1/pages/{page['id']}/overlays", headers=auth(designer), content_type="multipart/form-data",
                    data={"kind": "link", "url": "https://example.org/1", **PLACEMENT})
    edition_id = page["edition_id"]
    # nothing public before publishing
    assert client.get(f"/pub/editions/{edition_id}/manifest.json").status_code == 404
    draft_image = page["image"]["sha256"]
    assert client.get(f"/pub/a/{draft_image}.png").status_code == 404
    _submit(client, designer, edition_id)
    r = client.post(f"/api/v1/editions/{edition_id}/publish", headers=auth(editor))
    assert r.status_code == 202, r.get_json()  # a job; the test app runs it before answering
    job = r.get_json()
    assert job["kind"] == "publish" and job["status"] == "done" and job["version"] == 1 and job["error"] is None
    assert job["pages_done"] == job["pages_total"] == 1 and r.headers["Location"].endswith(f"/api/v1/jobs/{job['id']}")
    body = client.get(f"/api/v1/editions/{edition_id}", headers=auth(editor)).get_json()
    assert body["published"] is True and body["published_version"] == 1
    manifest = client.get(f"/pub/editions/{edition_id}/manifest.json").get_json()
    assert manifest["pages"][0]["page_id"] == str(page["id"])
    page_manifest = client.get(f"/pub/pages/{page['id']}/manifest.json").get_json()
    glb = client.get(page_manifest["bundles"]["full"]["url"])
    assert glb.status_code == 200 and glb.data[:4] == b"glTF"
    assert "immutable" in glb.headers["Cache-Control"]
    # an edit after publishing makes a new draft; readers keep the published version
    client.patch(f"/api/v1/pages/{page['id']}", json={"title": "Đã sửa"}, headers=auth(designer))
    assert client.get(f"/pub/pages/{page['id']}/manifest.json").get_json() == page_manifest
    # audit: who published what
    entries = client.get("/api/v1/audit", headers=auth(users.tokens["admin"])).get_json()["entries"]
    publish = [e for e in entries if e["action"] == "edition.publish"]
    assert publish and publish[0]["user"] == "editor@example.vn" and publish[0]["detail"]["version"] == 1
    # unpublish: recorded, and readers get 404
    assert client.post(f"/api/v1/editions/{edition_id}/unpublish", headers=auth(editor)).status_code == 202
    assert client.get(f"/pub/pages/{page['id']}/manifest.json").status_code == 404
    assert client.get(page_manifest["bundles"]["full"]["url"]).status_code == 404
    entries = client.get("/api/v1/audit", headers=auth(users.tokens["admin"])).get_json()["entries"]
    assert any(e["action"] == "edition.unpublish" for e in entries)


def test_audit_log_is_admin_only(client, users):
    assert client.get("/api/v1/audit", headers=auth(users.tokens["editor"])).status_code == 403


def test_openapi_document_lists_the_stable_paths(client):
    doc = client.get("/api/v1/openapi.json").get_json()
    for path in ("/api/v1/publications", "/api/v1/publications/{slug}/editions", "/api/v1/editions/{edition_id}/pages",
                 "/api/v1/pages/{page_id}/overlays", "/api/v1/editions/{edition_id}/publish", "/api/v1/recognize"):
        assert path in doc["paths"]
    assert doc["openapi"].startswith("3.")
    from openapi_spec_validator import validate

    validate(doc)  # a valid OpenAPI 3.1 document, so generated clients work


def test_security_headers_are_set(client):
    r = client.get("/login")
    assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    cookie = r.headers.get("Set-Cookie", "")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_json_body_must_be_an_object(client, users):
    r = client.post("/api/v1/publications", data=json.dumps([1, 2]), content_type="application/json",
                    headers=auth(users.tokens["designer"]))
    assert r.status_code == 400 and r.get_json()["error"] == "bad_request"


def test_bundle_check_reports_sizes_budgets_and_biggest_contributors(app, client, users, page, tiny_mp4):
    from dataclasses import replace

    token = users.tokens["designer"]
    client.post(f"/api/v1/pages/{page['id']}/overlays", headers=auth(token), content_type="multipart/form-data",
                data={"kind": "video", "file": upload(tiny_mp4, "clip.mp4"), **PLACEMENT})
    client.post(f"/api/v1/pages/{page['id']}/overlays", headers=auth(token), content_type="multipart/form-data",
                data={"kind": "model3d", "stock": "pin", **PLACEMENT})
    state = app.extensions["baonhung"]
    state.bundle_options = replace(state.bundle_options, budget_full_bytes=20_000, budget_lite_bytes=10_000)
    before = state_snapshot(app)
    r = client.post(f"/api/v1/pages/{page['id']}/bundle-check?compress=0", headers=auth(token, "en"))
    assert r.status_code == 200, r.get_json()
    report = r.get_json()
    assert report["full_bytes"] > 20_000 and report["streamed_media_bytes"] > 0
    assert report["contributors"] and report["contributors"][0]["bytes"] >= report["contributors"][-1]["bytes"]
    assert any(w["code"] == "over_budget" for w in report["warnings"])
    assert state_snapshot(app) == before  # a check stores nothing
    assert client.post(f"/api/v1/pages/{page['id']}/bundle-check",
                       headers=auth(users.tokens["print_desk"])).status_code == 403


def test_bundle_check_of_a_page_that_cannot_be_packaged_is_a_422_naming_why_in_both_languages(app, client, users,
                                                                                                page, monkeypatch):
    """Content the packager refuses is the designer's to fix: a 422 with the reason, not a 500; no server path."""
    import builder.publish as publish_mod
    from builder.bundle import BundleBuildError

    token = users.tokens["designer"]
    client.post(f"/api/v1/pages/{page['id']}/overlays", headers=auth(token), content_type="multipart/form-data",
                data={"kind": "model3d", "stock": "pin", **PLACEMENT})
    where = str(app.extensions["baonhung"].settings.data_dir / "store" / "ab" / "cd")

    def broken(spec, options, work):
        raise BundleBuildError(f"overlay 7: model {where} could not be packaged", messages=["ACCESSOR_INVALID"])

    monkeypatch.setattr(publish_mod, "build_page_bundle", broken)
    before = state_snapshot(app)
    for lang, words in (("vi", "chưa đóng gói được"), ("en", "cannot be packaged for readers")):
        r = client.post(f"/api/v1/pages/{page['id']}/bundle-check?compress=0", headers=auth(token, lang))
        assert r.status_code == 422, r.get_json()
        body = r.get_json()
        assert body["error"] == "bundle_check_failed" and words in body["message"]
        assert "ACCESSOR_INVALID" in body["message"] and where not in body["message"]
    assert state_snapshot(app) == before


def test_upload_warnings_reach_the_designer_as_structured_data(client, users, page):
    """A panorama that is not 2:1 is accepted with a warning the editor can show (not a stringified dict)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (800, 600), (30, 120, 200)).save(buf, "JPEG")
    r = client.post(f"/api/v1/pages/{page['id']}/overlays", headers=auth(users.tokens["designer"]),
                    content_type="multipart/form-data",
                    data={"kind": "panorama360", "file": upload(buf.getvalue(), "pano.jpg"), **PLACEMENT})
    assert r.status_code == 201, r.get_json()
    warnings = r.get_json()["asset"]["meta"]["warnings"]
    assert warnings and isinstance(warnings[0], dict) and warnings[0].get("code")


# ------------------------------------------------------------------------------------ bad values (issue 25)

_LINK = {"kind": "link", "x_mm": 10, "y_mm": 10, "width_mm": 20, "height_mm": 20}


@pytest.mark.parametrize("method, path, body, status", [
    ("POST", "/api/v1/pages/{page}/overlays", {**_LINK, "url": "http://[::1"}, 400),
    ("POST", "/api/v1/pages/{page}/overlays", {**_LINK, "url": "http://a:99999/"}, 400),
    ("POST", "/api/v1/pages/{page}/overlays", {**_LINK, "url": ["http://a/"]}, 400),
    ("POST", "/api/v1/pages/{page}/overlays", {**_LINK, "url": "http://a/\x00b"}, 400),
    ("POST", "/api/v1/pages/{page}/overlays", {**_LINK, "url": "http://a/" + "b" * 2000}, 400),
    ("POST", "/api/v1/pages/{page}/overlays", {**_LINK, "kind": 5, "url": "http://a/"}, 400),
    ("GET", "/api/v1/pages/12345678901234567890123456", None, 404),
    ("GET", "/api/v1/editions/-3", None, 404),
    ("DELETE", "/api/v1/overlays/99999999999999999999999", None, 404),
    ("POST", "/api/v1/tokens", {"expires_days": "abc"}, 400),
    ("POST", "/api/v1/tokens", {"expires_days": 1e9}, 400),
    ("POST", "/api/v1/tokens", {"expires_days": 2.5}, 400),
    ("POST", "/api/v1/tokens", {"name": 5}, 400),
    ("GET", "/api/v1/audit?limit=abc", None, 400),
    ("GET", "/api/v1/audit?limit=99999999999999999999", None, 400),
])
def test_bad_values_are_a_clear_4xx_never_a_500(client, users, page, method, path, body, status):
    """Each was a 500 for an outside tester (or, for the NUL byte and the 2,000+ characters, stored / cut silently).
    The app under test propagates exceptions, so a 500 here fails loudly."""
    token = users.tokens["admin"]
    r = client.open(path.format(page=page["id"]), method=method, json=body, headers=auth(token, "en"))
    assert r.status_code == status, r.get_json()
    message = r.get_json()["message"]
    assert message and "Traceback" not in message
    vi = client.open(path.format(page=page["id"]), method=method, json=body, headers=auth(token, "vi"))
    assert vi.get_json()["message"] != message or status == 404  # both languages


def test_a_link_of_2000_characters_is_kept_whole(client, users, page):
    url = "https://baoyenbai.com.vn/" + "a" * (2000 - len("https://baoyenbai.com.vn/"))
    r = client.post(f"/api/v1/pages/{page['id']}/overlays", json={**_LINK, "url": url}, headers=auth(users.tokens["admin"]))
    assert r.status_code == 201 and r.get_json()["url"] == url


# ------------------------------------------------------------------------------------ races (issue 25)

def _concurrently(app, calls):
    """Run the (method, path, kwargs) calls at once, each on its own thread and test client (the app's sessions are
    per request, as under the threaded server); their status codes and JSON bodies."""
    import threading

    results = [None] * len(calls)
    barrier = threading.Barrier(len(calls))

    def one(i, method, path, kwargs):
        client = app.test_client()
        barrier.wait()
        r = client.open(path, method=method, **kwargs)
        results[i] = (r.status_code, r.get_json(silent=True))

    threads = [threading.Thread(target=one, args=(i, *c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_concurrent_uploads_of_one_page_number_make_one_page(app, client, users, page_png):
    """4 concurrent uploads numbered 70 made 4 pages numbered 70; now one page, the others a 409."""
    token = users.tokens["designer"]
    make_publication(client, token)
    edition = make_edition(client, token)
    calls = [("POST", f"/api/v1/editions/{edition['id']}/pages",
              {"data": {"image": upload(page_png, "p.png"), "number": "70", "width_mm": "297", "height_mm": "420"},
               "content_type": "multipart/form-data", "headers": auth(token)}) for _ in range(4)]
    codes = sorted(code for code, _ in _concurrently(app, calls))
    assert codes == [201, 409, 409, 409], codes
    pages = client.get(f"/api/v1/editions/{edition['id']}", headers=auth(token)).get_json()
    assert pages["page_count"] == 1


def test_two_concurrent_publishes_after_one_submit_make_one_version(app, client, users, page_png):
    designer, editor = users.tokens["designer"], users.tokens["editor"]
    make_publication(client, designer)
    edition = make_edition(client, designer)
    make_page(client, designer, edition["id"], page_png)
    client.post(f"/api/v1/editions/{edition['id']}/submit", headers=auth(designer))
    calls = [("POST", f"/api/v1/editions/{edition['id']}/publish", {"headers": auth(editor)})] * 2
    codes = sorted(code for code, _ in _concurrently(app, calls))
    assert codes == [202, 409], codes
    body = client.get(f"/api/v1/editions/{edition['id']}", headers=auth(editor)).get_json()
    assert body["published_version"] == 1


def test_a_too_long_url_is_a_json_414(client, users):
    r = client.get("/api/v1/publications?x=" + "a" * 5000, headers=auth(users.tokens["editor"], "en"))
    assert r.status_code == 414 and r.get_json()["error"] == "bad_request" and "4096" in r.get_json()["message"]
    assert client.get("/api/v1/publications?x=" + "a" * 3000, headers=auth(users.tokens["editor"])).status_code == 200


def test_no_empty_version_after_a_publish_without_changes(client, users, page_png):
    """Issue 24: resubmitting and publishing with no change made a version identical to the previous one."""
    designer, editor = users.tokens["designer"], users.tokens["editor"]
    make_publication(client, designer)
    edition = make_edition(client, designer)
    page = make_page(client, designer, edition["id"], page_png)
    client.post(f"/api/v1/editions/{edition['id']}/submit", headers=auth(designer))
    assert client.post(f"/api/v1/editions/{edition['id']}/publish", headers=auth(editor)).status_code == 202
    r = client.post(f"/api/v1/editions/{edition['id']}/submit", headers=auth(designer, "en"))
    assert r.status_code == 409 and r.get_json()["error"] == "no_changes" and "version 1" in r.get_json()["message"]
    client.post(f"/api/v1/pages/{page['id']}/overlays", headers=auth(designer),
                json={"kind": "link", "url": "https://example.org", "x_mm": 10, "y_mm": 10, "width_mm": 30,
                      "height_mm": 20})
    assert client.post(f"/api/v1/editions/{edition['id']}/submit", headers=auth(designer)).status_code == 200
    assert client.post(f"/api/v1/editions/{edition['id']}/publish", headers=auth(editor)).status_code == 202
    body = client.get(f"/api/v1/editions/{edition['id']}", headers=auth(editor)).get_json()
    assert body["published_version"] == 2


def test_ids_are_never_reused(client, users, page):
    """Issue 24: deleting the newest overlay and adding one gave the new one the deleted one's id, so the audit log's
    "overlay.delete #12" and "overlay.create #12" spoke of two overlays."""
    token = users.tokens["designer"]
    body = {"kind": "link", "url": "https://example.org", "x_mm": 5, "y_mm": 5, "width_mm": 20, "height_mm": 20}
    first = client.post(f"/api/v1/pages/{page['id']}/overlays", headers=auth(token), json=body).get_json()["id"]
    assert client.delete(f"/api/v1/overlays/{first}", headers=auth(token)).status_code == 204
    second = client.post(f"/api/v1/pages/{page['id']}/overlays", headers=auth(token), json=body).get_json()["id"]
    assert second > first


def test_error_messages_name_fields_as_a_designer_does(client, users, page):
    """Issue 24: messages mixed in raw field names ("Giá trị không hợp lệ cho url: …")."""
    body = {"kind": "link", "url": "ftp://x", "x_mm": 5, "y_mm": 5, "width_mm": 20, "height_mm": 20}
    for lang, label in (("vi", "địa chỉ liên kết (url)"), ("en", "the link address (url)")):
        r = client.post(f"/api/v1/pages/{page['id']}/overlays", json=body, headers=auth(users.tokens["designer"], lang))
        assert r.status_code == 400 and label in r.get_json()["message"]


# ------------------------------------------------------------------- requests checked against the OpenAPI document

def test_every_api_route_is_in_the_openapi_document(app):
    """The document is the source of truth for inputs (builder/web/validation.py): a route missing from it would go
    unchecked, so every route of the authoring API must be in it, with each of its methods."""
    from builder.web.openapi import openapi_document

    doc = openapi_document()["paths"]
    missing = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint.split(".")[0] not in ("api", "sheets") or rule.endpoint == "api.openapi":
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            if method.lower() not in doc.get(path, {}):
                missing.append(f"{method} {path}")
    assert not missing, missing


@pytest.mark.parametrize("method, path, body, field_en, field_vi, reason_en", [
    # ranges the document states and the services never saw: the comment used to be cut at 4,000 characters
    ("POST", "/api/v1/editions/{edition}/send-back", {"comment": "x" * 4001}, "the comment (comment)",
     "nhận xét (comment)", "at most 4000 characters"),
    ("PATCH", "/api/v1/overlays/{overlay}", {"scale": 1000}, "the scale (scale)", "tỉ lệ (scale)",
     "a number from 0.01 to 100"),
    ("PATCH", "/api/v1/overlays/{overlay}", {"autoplay": "maybe"}, "for autoplay:", "tự phát (autoplay)",
     "true or false"),
    ("GET", "/api/v1/audit?limit=0", None, "the number of lines (limit)", "số dòng (limit)",
     "a whole number from 1 to 1000"),
    ("GET", "/api/v1/pages/{page}/qr.svg?ecc=X", None, "the error correction level (ecc)", "mức sửa lỗi (ecc)",
     "one of: L, M, Q, H"),
    ("GET", "/api/v1/pages/{page}/marker-sheet.pdf?paper=B5", None, "the paper (paper)", "khổ giấy in (paper)",
     "one of: A4"),
])
def test_requests_are_checked_against_the_openapi_document(client, users, page, method, path, body, field_en,
                                                           field_vi, reason_en):
    token = users.tokens["admin"]
    overlay = client.post(f"/api/v1/pages/{page['id']}/overlays", json={**_LINK, "url": "https://example.org"},
                          headers=auth(token)).get_json()
    url = path.format(page=page["id"], overlay=overlay["id"], edition=page["edition_id"])
    before = client.get(f"/api/v1/overlays/{overlay['id']}", headers=auth(token)).get_json()
    r = client.open(url, method=method, json=body, headers=auth(token, "en"))
    assert r.status_code == 400 and r.get_json()["error"] == "invalid_field", r.get_json()
    assert field_en in r.get_json()["message"] and reason_en in r.get_json()["message"]
    vi = client.open(url, method=method, json=body, headers=auth(token, "vi")).get_json()["message"]
    assert vi.startswith("Giá trị không hợp lệ cho") and field_vi in vi
    assert client.get(f"/api/v1/overlays/{overlay['id']}", headers=auth(token)).get_json() == before


def test_form_fields_are_checked_like_json_fields(client, users, page):
    """A multipart form's text fields are read as the document types them: "12" is a number, "abc" is refused."""
    token = users.tokens["designer"]
    form = {**{k: str(v) for k, v in _LINK.items()}, "url": "https://example.org", "width_mm": "abc"}
    r = client.post(f"/api/v1/pages/{page['id']}/overlays", data=form, content_type="multipart/form-data",
                    headers=auth(token, "en"))
    assert r.status_code == 400 and "the width (width_mm): must be a number of millimetres from 1 to 2000" in r.get_json()["message"]
    form["width_mm"] = "30"
    assert client.post(f"/api/v1/pages/{page['id']}/overlays", data=form, content_type="multipart/form-data",
                       headers=auth(token)).status_code == 201


def test_a_request_without_credentials_is_refused_before_its_body_is_judged(client, page):
    r = client.patch("/api/v1/overlays/1", json={"scale": "not a number"})
    assert r.status_code == 401
