"""The HTML authoring UI with the Flask test client: each page renders for its roles and refuses the others,
forms work with a CSRF token and fail without one, the editor's CSP and vendor route are tight, and every
interface string has its Vietnamese translation."""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import html as htmllib
import io
import json
import posixpath
import re
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import func, select

from builder import services as svc
from builder.models import (ApiToken, AuditEntry, Edition, Overlay, Page, Publication, PublishedVersion,
                            PublishFailure, User)

ROLES = ("admin", "editor", "designer", "print_desk")
ROOT = Path(__file__).resolve().parents[2]
PAGE_MM = (297.0, 420.0)


def png_bytes(size=(594, 840), colour=(240, 238, 230)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def ui_app(tmp_path_factory):
    from tests.conftest import make_app

    app = make_app(tmp_path_factory.mktemp("ui"))
    db = app.extensions["baonhung"].sessionmaker()
    for role in ROLES:
        svc.create_user(db, svc.SYSTEM, f"{role}@toasoan.vn", role, "mat-khau-that-dai-1")
    db.close()
    return app


@pytest.fixture()
def db(ui_app):
    session = ui_app.extensions["baonhung"].sessionmaker()
    yield session
    session.close()


def user_of(db, role: str) -> User:
    return db.scalar(select(User).where(User.email == f"{role}@toasoan.vn"))


def client_as(app, db, role: str | None):
    """A test client signed in as ``role`` (session set directly: Argon2 logins are tested once, below)."""
    client = app.test_client()
    if role is not None:
        user = user_of(db, role)
        sign_in(client, db, user)
    return client


def sign_in(client, db, user):
    """Set a live server-side session for ``user`` in ``client``'s cookie, as a login does."""
    from builder import auth

    secret = auth.open_session(db, user, "127.0.0.1")
    db.commit()
    with client.session_transaction() as sess:
        sess["uid"], sess["sid"], sess["pwv"] = user.id, secret, user.password_hash[-16:]


def csrf_of(client, path: str = "/") -> str:
    html = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)


_counter = iter(range(1000, 100000))


@pytest.fixture()
def content(ui_app, db):
    """A publication, a draft edition and a page with one overlay, made without the marker engine
    (the page row is written directly; uploading through the form is tested on its own)."""
    n = next(_counter)
    pub = svc.create_publication(db, svc.SYSTEM, {"name": f"Báo Thử {n}", "slug": f"bao-thu-{n}"})
    edition = svc.create_edition(db, svc.SYSTEM, pub, {"date": "2026-11-26", "number": n, "title": "Số thử"})
    store = ui_app.extensions["baonhung"].store
    image_sha = store.put_bytes(png_bytes())
    page = Page(edition_id=edition.id, number=1, width_mm=PAGE_MM[0], height_mm=PAGE_MM[1], image_sha=image_sha,
                image_mime="image/png", image_width_px=594, image_height_px=840, code=f"T{n}",
                rating={"stars": 2, "score": 0.4, "reasons": [
                    {"code": "blank", "severity": "warning", "vi": "Trang có nhiều vùng trống", "en": "Much blank space"}]})
    db.add(page)
    db.commit()
    overlay = svc.add_overlay(db, store, ui_app.extensions["baonhung"].limits, svc.SYSTEM, page,
                              {"kind": "link", "url": "https://baoyenbai.com.vn/", "label": "Đọc thêm",
                               "x_mm": 100, "y_mm": 100, "width_mm": 60, "height_mm": 20})
    return {"pub": pub, "edition": edition, "page": page, "overlay": overlay}


# ------------------------------------------------------------------------------------------- access

def page_paths(content, db) -> dict[str, tuple[str, ...]]:
    """Each page and the roles that may open it."""
    e, p = content["edition"], content["page"]
    return {
        "/": ROLES,
        "/publications": ROLES,
        f"/publications/{content['pub'].slug}": ROLES,
        f"/editions/{e.id}": ROLES,
        f"/pages/{p.id}/preview": ROLES,
        f"/pages/{p.id}/editor": svc.CONTENT_WRITERS,
        "/print": svc.SHEET_MAKERS,
        "/admin/users": svc.ADMINS,
        "/admin/audit": svc.ADMINS,
        f"/users/{user_of(db, 'designer').id}/tokens": ("admin", "designer"),
        "/account/password": ROLES,
    }


@pytest.mark.parametrize("role", ROLES)
def test_each_page_renders_for_its_roles_and_refuses_the_others(ui_app, db, content, role):
    client = client_as(ui_app, db, role)
    for path, allowed in page_paths(content, db).items():
        response = client.get(path)
        if role in allowed:
            assert response.status_code == 200, (role, path)
            assert "text/html" in response.content_type
        else:
            assert response.status_code == 403, (role, path)
            assert "không được phép" in response.get_data(as_text=True)  # the refusal, in Vietnamese


def test_anonymous_visitors_are_sent_to_the_login_page(ui_app, db, content):
    client = client_as(ui_app, db, None)
    for path in page_paths(content, db):
        response = client.get(path)
        assert response.status_code == 302, path
        assert "/login?next=" in response.headers["Location"]


def test_navigation_shows_only_what_the_role_may_use(ui_app, db, content):
    html = {role: client_as(ui_app, db, role).get("/").get_data(as_text=True) for role in ROLES}
    assert 'href="/admin/users"' in html["admin"] and 'href="/admin/audit"' in html["admin"]
    for role in ("editor", "designer", "print_desk"):
        assert 'href="/admin/users"' not in html[role]
    assert 'href="/print"' in html["print_desk"] and 'href="/print"' in html["editor"]
    assert 'href="/print"' not in html["designer"]


def test_edition_buttons_follow_role_and_status(ui_app, db, content):
    path = f"/editions/{content['edition'].id}"
    designer = client_as(ui_app, db, "designer").get(path).get_data(as_text=True)
    assert 'id="submit-review"' in designer and 'id="publish"' not in designer and 'id="upload-form"' in designer
    printer = client_as(ui_app, db, "print_desk").get(path).get_data(as_text=True)
    assert 'id="submit-review"' not in printer and 'id="upload-form"' not in printer
    svc.submit_for_review(db, svc.SYSTEM, content["edition"])
    editor = client_as(ui_app, db, "editor").get(path).get_data(as_text=True)
    assert 'id="publish"' in editor and 'name="comment"' in editor and 'id="upload-form"' not in editor


def test_the_login_form_signs_in_and_the_language_follows_the_choice(ui_app, db):
    client = client_as(ui_app, db, None)
    page = client.get("/login").get_data(as_text=True)
    assert "Đăng nhập" in page and '<html lang="vi">' in page
    token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    response = client.post("/login", data={"email": "designer@toasoan.vn", "password": "mat-khau-that-dai-1",
                                           "csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"] == "/"
    home = client.get("/").get_data(as_text=True)
    assert "Tổng quan" in home and "Họa sĩ" in home
    english = client.get("/?lang=en").get_data(as_text=True)
    assert "Overview" in english and "Designer" in english and '<html lang="en">' in english


def test_one_language_rule_the_browser_language_is_not_a_choice(ui_app, db):
    """Issue 24: the login page followed an English browser, then turned Vietnamese after login. Now: an explicit
    choice (?lang=) wins and stays, then the stored one, then Vietnamese — before and after signing in alike."""
    english_browser = {"Accept-Language": "en-US,en;q=0.9"}
    client = client_as(ui_app, db, None)
    page = client.get("/login", headers=english_browser).get_data(as_text=True)
    assert '<html lang="vi">' in page
    page = client.get("/login?lang=en", headers=english_browser).get_data(as_text=True)
    assert '<html lang="en">' in page
    token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
    client.post("/login", data={"email": "designer@toasoan.vn", "password": "mat-khau-that-dai-1", "csrf_token": token},
                headers=english_browser)
    assert '<html lang="en">' in client.get("/", headers=english_browser).get_data(as_text=True)  # the choice stays


def test_the_language_toggle_keeps_the_pages_other_query_parameters(ui_app, db):
    """The dashboard's date range was lost on switching language: the toggle linked to a bare ?lang=."""
    client = client_as(ui_app, db, "editor")
    page = client.get("/?from=2026-12-01&to=2026-12-07&lang=vi").get_data(as_text=True)
    hrefs = {lang: href.replace("&amp;", "&") for href, lang in re.findall(r'<a href="([^"]+)" lang="(vi|en)"', page)}
    assert hrefs["en"] == "?from=2026-12-01&to=2026-12-07&lang=en"
    assert hrefs["vi"] == "?from=2026-12-01&to=2026-12-07&lang=vi"


def test_a_wrong_password_is_refused_with_a_message(ui_app, db):
    client = client_as(ui_app, db, None)
    token = csrf_of(client, "/login")
    response = client.post("/login", data={"email": "editor@toasoan.vn", "password": "sai", "csrf_token": token},
                           headers={"Referer": "http://localhost/login"}, follow_redirects=True)
    assert "Email hoặc mật khẩu không đúng." in response.get_data(as_text=True)
    with client.session_transaction() as sess:
        assert "uid" not in sess


# --------------------------------------------------------------------------------------------- CSRF

def test_forms_are_refused_without_a_csrf_token_and_leave_no_row(ui_app, db):
    client = client_as(ui_app, db, "designer")
    before = db.scalar(select(func.count(Publication.id)))
    response = client.post("/publications", data={"name": "Không token", "slug": "khong-token"})
    assert response.status_code in (302, 400)
    follow = client.get(response.headers["Location"]) if response.status_code == 302 else response
    assert "CSRF" in follow.get_data(as_text=True)
    db.expire_all()
    assert db.scalar(select(func.count(Publication.id))) == before
    response = client.post("/publications", data={"name": "Token sai", "slug": "token-sai", "csrf_token": "x" * 40})
    db.expire_all()
    assert db.scalar(select(Publication).where(Publication.slug == "token-sai")) is None


def test_editor_fetch_calls_need_the_csrf_header(ui_app, db, content):
    client = client_as(ui_app, db, "designer")
    url = f"/api/v1/overlays/{content['overlay'].id}"
    refused = client.patch(url, json={"x_mm": 50})
    assert refused.status_code == 400 and refused.get_json()["error"] == "csrf"
    token = csrf_of(client, f"/pages/{content['page'].id}/editor")
    accepted = client.patch(url, json={"x_mm": 50, "rotation_deg": 15}, headers={"X-CSRFToken": token})
    assert accepted.status_code == 200
    assert accepted.get_json()["x_mm"] == 50 and accepted.get_json()["rotation_deg"] == 15


# -------------------------------------------------------------------------------------------- forms

def test_designer_creates_a_publication_and_an_edition_with_the_forms(ui_app, db):
    client = client_as(ui_app, db, "designer")
    token = csrf_of(client)
    response = client.post("/publications", data={"name": "Báo Yên Bái", "slug": "bao-yen-bai-ui",
                                                  "csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"] == "/publications/bao-yen-bai-ui"
    response = client.post("/publications/bao-yen-bai-ui/editions",
                           data={"date": "2026-11-26", "number": "4521", "title": "Sáng thứ Năm", "csrf_token": token})
    assert response.status_code == 302
    edition = db.scalar(select(Edition).where(Edition.number == 4521))
    assert edition.title == "Sáng thứ Năm" and edition.date == dt.date(2026, 11, 26)
    assert response.headers["Location"] == f"/editions/{edition.id}"
    page = client.get("/publications/bao-yen-bai-ui").get_data(as_text=True)
    assert "Sáng thứ Năm" in page and "Bản nháp" in page


def test_a_bad_form_value_comes_back_as_a_message(ui_app, db):
    client = client_as(ui_app, db, "designer")
    token = csrf_of(client, "/publications")
    response = client.post("/publications", data={"name": "X", "slug": "Có Dấu", "csrf_token": token},
                           headers={"Referer": "http://localhost/publications"}, follow_redirects=True)
    assert response.request.path == "/publications"
    # a designer's word for the field first, its name after it (issue 24: the message said "cho slug")
    assert "Giá trị không hợp lệ cho đường dẫn (slug)" in response.get_data(as_text=True)


def test_print_desk_cannot_create_a_publication(ui_app, db):
    client = client_as(ui_app, db, "print_desk")
    token = csrf_of(client)
    response = client.post("/publications", data={"name": "In", "slug": "bo-phan-in", "csrf_token": token})
    assert response.status_code == 403
    assert db.scalar(select(Publication).where(Publication.slug == "bo-phan-in")) is None


def test_uploading_a_page_with_a_size_preset_rates_it(ui_app, db, content):
    client = client_as(ui_app, db, "designer")
    edition = content["edition"]
    token = csrf_of(client, f"/editions/{edition.id}")
    image = Image.new("RGB", (1188, 1680), "white")
    from PIL import ImageDraw

    draw = ImageDraw.Draw(image)
    for i in range(40):
        draw.rectangle([30 + (i * 97) % 1100, 40 + (i * 211) % 1560, 90 + (i * 97) % 1100, 100 + (i * 211) % 1560],
                       fill=((i * 50) % 255, (i * 80) % 255, (i * 30) % 255))
    buf = io.BytesIO()
    image.save(buf, "PNG")
    response = client.post(f"/editions/{edition.id}/pages", content_type="multipart/form-data", data={
        "csrf_token": token, "preset": "tabloid", "width_mm": "999", "number": "2",
        "image": (io.BytesIO(buf.getvalue()), "trang-2.png")})
    assert response.status_code == 302, response.get_data(as_text=True)
    page = db.scalar(select(Page).where(Page.edition_id == edition.id, Page.number == 2))
    assert (page.width_mm, page.height_mm) == (280.0, 430.0)  # the preset wins over a stray typed value
    assert page.rating is not None and 0 <= page.rating["stars"] <= 5
    html = client.get(f"/editions/{edition.id}").get_data(as_text=True)
    assert "Trang 2" in html and 'class="stars"' in html


def test_a_new_overlay_lands_in_the_page_centre(ui_app, db, content):
    client = client_as(ui_app, db, "designer")
    page = content["page"]
    token = csrf_of(client, f"/pages/{page.id}/editor")
    response = client.post(f"/pages/{page.id}/overlays", data={
        "csrf_token": token, "kind": "model3d", "source": "stock", "stock": "pin", "name": "Ghim"})
    assert response.status_code == 302
    overlay = db.scalar(select(Overlay).where(Overlay.page_id == page.id, Overlay.kind == "model3d"))
    assert response.headers["Location"] == f"/pages/{page.id}/editor?selected={overlay.id}"
    assert overlay.stock == "pin"
    assert overlay.x_mm + overlay.width_mm / 2 == pytest.approx(PAGE_MM[0] / 2, abs=0.1)
    assert overlay.y_mm + overlay.height_mm / 2 == pytest.approx(PAGE_MM[1] / 2, abs=0.1)


def test_video_options_from_the_add_form(ui_app, db, content, tmp_path):
    import shutil
    import subprocess

    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed")
    clip = tmp_path / "clip.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=160x90:duration=1",
                    "-pix_fmt", "yuv420p", str(clip)], check=True, timeout=60)
    client = client_as(ui_app, db, "designer")
    page = content["page"]
    token = csrf_of(client, f"/pages/{page.id}/editor")
    response = client.post(f"/pages/{page.id}/overlays", content_type="multipart/form-data", data={
        "csrf_token": token, "kind": "video", "autoplay": "on", "use_chroma": "on", "chroma_key": "#00FF00",
        "file": (io.BytesIO(clip.read_bytes()), "clip.mp4")})  # loop and muted unchecked: absent from the post
    assert response.status_code == 302
    overlay = db.scalar(select(Overlay).where(Overlay.page_id == page.id, Overlay.kind == "video"))
    assert overlay.options == {"autoplay": True, "loop": False, "muted": False, "chroma_key": "#00ff00"}
    assert overlay.poster_sha and overlay.height_mm == pytest.approx(overlay.width_mm * 9 / 16, abs=0.1)


def test_submit_and_send_back_with_a_comment(ui_app, db, content):
    edition = content["edition"]
    designer = client_as(ui_app, db, "designer")
    token = csrf_of(designer)
    assert designer.post(f"/editions/{edition.id}/submit", data={"csrf_token": token}).status_code == 302
    db.refresh(edition)
    assert edition.status == "in_review"
    assert designer.post(f"/editions/{edition.id}/publish", data={"csrf_token": token}).status_code == 403
    editor = client_as(ui_app, db, "editor")
    token = csrf_of(editor)
    response = editor.post(f"/editions/{edition.id}/send-back",
                           data={"csrf_token": token, "comment": "Video trang 1 che mất tít, dời xuống."})
    assert response.status_code == 302
    db.refresh(edition)
    assert edition.status == "draft"
    html = designer.get(f"/editions/{edition.id}").get_data(as_text=True)
    assert "Video trang 1 che mất tít, dời xuống." in html


def test_publish_failures_and_versions_are_shown_to_the_editor(ui_app, db, content):
    edition = content["edition"]
    db.add(PublishFailure(edition_id=edition.id, error="BundleBuildError: video codec hevc not supported"))
    version = PublishedVersion(edition_id=edition.id, version=1, snapshot={"pages": [{}]}, manifest_sha="0" * 64)
    db.add(version)
    db.flush()
    edition.published_version_id = version.id
    db.commit()
    editor = client_as(ui_app, db, "editor").get(f"/editions/{edition.id}").get_data(as_text=True)
    assert "BundleBuildError: video codec hevc not supported" in editor
    assert "Đang phục vụ bạn đọc" in editor and 'id="unpublish"' in editor
    designer = client_as(ui_app, db, "designer").get(f"/editions/{edition.id}").get_data(as_text=True)
    assert "hevc" not in designer and 'id="unpublish"' not in designer


def test_print_desk_page_links_sheets_and_qr_exports_with_the_chosen_options(ui_app, db, content):
    from builder.publish import snapshot_edition

    edition, page = content["edition"], content["page"]
    version = PublishedVersion(edition_id=edition.id, version=1, snapshot=snapshot_edition(edition),
                               manifest_sha="0" * 64)
    db.add(version)
    db.flush()
    edition.published_version_id = version.id
    db.commit()
    html = client_as(ui_app, db, "print_desk").get("/print?size_mm=25&ecc=Q&paper=A3").get_data(as_text=True)
    assert f'href="/api/v1/editions/{edition.id}/sheet.pdf?paper=A3&amp;size_mm=25&amp;ecc=Q"' in html
    for fmt in ("svg", "pdf", "png"):
        assert f'href="/api/v1/pages/{page.id}/qr.{fmt}?size_mm=25&amp;ecc=Q"' in html
    assert f'href="/api/v1/pages/{page.id}/marker-sheet.pdf?paper=A3"' in html
    draft_only = Page(edition_id=edition.id, number=2, width_mm=210, height_mm=297, image_sha=page.image_sha,
                      image_mime="image/png", image_width_px=594, image_height_px=840, code=f"D{page.id}")
    db.add(draft_only)
    db.commit()
    html = client_as(ui_app, db, "print_desk").get("/print").get_data(as_text=True)
    assert f"/api/v1/pages/{draft_only.id}/qr." not in html  # only what readers get has a QR code
    clamped = client_as(ui_app, db, "print_desk").get("/print?size_mm=5&ecc=Z").get_data(as_text=True)
    assert f"/api/v1/pages/{page.id}/qr.svg?size_mm=15&amp;ecc=M" in clamped  # 15 mm minimum, ECC M default


# -------------------------------------------------------------------------------------- admin pages

def test_admin_creates_a_user_sees_the_generated_password_once_and_deactivates_them(ui_app, db):
    admin = client_as(ui_app, db, "admin")
    token = csrf_of(admin)
    response = admin.post("/admin/users", data={"csrf_token": token, "email": "Hoa.Si2@toasoan.vn",
                                                "role": "designer", "name": "Họa sĩ 2"})
    assert response.status_code == 201
    shown = re.search(r'id="new-password">([^<]+)<', response.get_data(as_text=True)).group(1)
    user = db.scalar(select(User).where(User.email == "hoa.si2@toasoan.vn"))
    from builder import auth

    assert auth.check_login(db, "hoa.si2@toasoan.vn", shown, "198.51.100.1", 5, 300).id == user.id
    assert shown not in admin.get("/admin/users").get_data(as_text=True)
    response = admin.post(f"/admin/users/{user.id}/active", data={"csrf_token": token, "active": "0"})
    assert response.status_code == 302
    db.refresh(user)
    assert user.active is False
    assert db.scalar(select(AuditEntry).where(AuditEntry.action == "user.deactivate",
                                              AuditEntry.target_id == str(user.id))) is not None


def test_an_admin_cannot_lock_themselves_out(ui_app, db):
    admin = client_as(ui_app, db, "admin")
    me = user_of(db, "admin")
    admin.post(f"/admin/users/{me.id}/active", data={"csrf_token": csrf_of(admin), "active": "0"})
    db.refresh(me)
    assert me.active is True


def test_a_token_is_shown_once_works_on_the_api_and_can_be_revoked(ui_app, db):
    designer = client_as(ui_app, db, "designer")
    me = user_of(db, "designer")
    token = csrf_of(designer)
    response = designer.post(f"/users/{me.id}/tokens", data={"csrf_token": token, "name": "plug-in dàn trang"})
    assert response.status_code == 201
    secret = re.search(r'id="new-token">([^<]+)<', response.get_data(as_text=True)).group(1)
    row = db.scalar(select(ApiToken).where(ApiToken.user_id == me.id).order_by(ApiToken.id.desc()))
    assert row.token_hash != secret and secret not in designer.get(f"/users/{me.id}/tokens").get_data(as_text=True)
    api = ui_app.test_client()
    assert api.get("/api/v1/publications", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    assert designer.post(f"/tokens/{row.id}/revoke", data={"csrf_token": token}).status_code == 302
    assert api.get("/api/v1/publications", headers={"Authorization": f"Bearer {secret}"}).status_code == 401


def test_another_users_tokens_are_admin_business(ui_app, db):
    editor_id = user_of(db, "editor").id
    designer = client_as(ui_app, db, "designer")
    assert designer.post(f"/users/{editor_id}/tokens", data={"csrf_token": csrf_of(designer)}).status_code == 403
    admin = client_as(ui_app, db, "admin")
    response = admin.post(f"/users/{editor_id}/tokens", data={"csrf_token": csrf_of(admin), "expires_days": "30"})
    assert response.status_code == 201 and 'id="new-token"' in response.get_data(as_text=True)


def test_the_audit_log_shows_who_what_when_and_from_where(ui_app, db, content):
    client = client_as(ui_app, db, "designer")
    token = csrf_of(client)
    client.post("/publications", data={"name": "Báo Kiểm Toán", "slug": "bao-kiem-toan", "csrf_token": token},
                environ_base={"REMOTE_ADDR": "203.0.113.7"})
    html = client_as(ui_app, db, "admin").get("/admin/audit?action=publication.create").get_data(as_text=True)
    row = re.search(r"<tr><td class=\"nowrap\">[^<]+</td><td>designer@toasoan.vn</td><td><code>publication.create</code>"
                    r".*?203\.0\.113\.7.*?bao-kiem-toan", html, re.S)
    assert row is not None


# ------------------------------------------------------------------------------- editor, CSP, vendor

def test_editor_page_carries_its_data_and_allows_only_its_import_map(ui_app, db, content):
    response = client_as(ui_app, db, "designer").get(f"/pages/{content['page'].id}/editor")
    html = response.get_data(as_text=True)
    inline = re.findall(r"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", html, re.S)
    assert len(inline) == 1  # the import map, nothing else
    digest = base64.b64encode(hashlib.sha256(inline[0].encode()).digest()).decode()
    csp = response.headers["Content-Security-Policy"]
    script_src = re.search(r"script-src ([^;]+);", csp).group(1).split()
    # Our modules, the import map by its hash, WebAssembly for the meshopt decoder; no inline code, no eval.
    assert sorted(script_src) == sorted(["'self'", f"'sha256-{digest}'", "'wasm-unsafe-eval'"])
    data = json.loads(htmllib.unescape(re.search(r"data-page='([^']*)'", html).group(1)))
    assert data["width_mm"] == PAGE_MM[0] and [o["id"] for o in data["overlays"]] == [content["overlay"].id]
    assert data["overlays"][0]["url"] == "https://baoyenbai.com.vn/"


def test_no_page_uses_inline_styles_or_inline_scripts(ui_app, db, content):
    client = client_as(ui_app, db, "admin")
    for path in page_paths(content, db):
        html = client.get(path).get_data(as_text=True)
        assert not re.search(r"\sstyle=", html), path
        assert not re.search(r"\son[a-z]+=", html), path  # no inline event handlers
        scripts = re.findall(r"<script(?![^>]*\bsrc=)([^>]*)>", html)
        assert all('type="importmap"' in s for s in scripts), path


def test_the_editor_loads_three_from_the_viewers_one_whitelisted_vendor_route(ui_app):
    """One vendor route (/v/vendor/, viewer_api.viewer.VENDOR_FILES) serves the editor's 3D preview and the viewer."""
    import json as _json

    from viewer_api.viewer import VENDOR_FILES

    client = ui_app.test_client()
    with ui_app.test_request_context():
        from builder.web.ui import _import_map

        imports = _import_map()["imports"]
    assert imports["three"].startswith("/v/vendor/three/") and imports["three/addons/"] == "/v/vendor/three/addons/"
    for spec in ("loaders/GLTFLoader.js", "controls/OrbitControls.js", "libs/meshopt_decoder.module.js",
                 "environments/RoomEnvironment.js", "utils/BufferGeometryUtils.js"):  # what preview3d.js imports
        assert f"three/addons/{spec}" in VENDOR_FILES, spec
        response = client.get(f"/v/vendor/three/addons/{spec}")
        assert response.status_code == 200 and response.mimetype == "text/javascript", spec
    assert client.get(imports["three"]).status_code == 200
    for path in ("three/package.json", "three/build/../package.json", "three/src/Three.js", "../pyproject.toml",
                 "@gltf-transform/cli/package.json"):
        assert client.get(f"/v/vendor/{path}").status_code == 404, path
    assert client.get("/static/vendor/three/build/three.module.js").status_code == 404  # the old second route is gone
    assert _json.dumps(imports)  # serializable into the page's import map


def test_the_editor_script_imports_resolve_through_the_import_map(ui_app, db, content):
    """Every bare import in our modules is mapped, and the relative import inside GLTFLoader is whitelisted."""
    html = client_as(ui_app, db, "designer").get(f"/pages/{content['page'].id}/editor").get_data(as_text=True)
    mapping = json.loads(re.search(r'<script type="importmap">(.*?)</script>', html, re.S).group(1))["imports"]
    for module in ("editor.js", "preview3d.js", "forms.js"):
        source = (ROOT / "builder" / "static" / module).read_text(encoding="utf-8")
        for spec in re.findall(r"""from\s+['"]([^'"]+)['"]""", source):
            mapped = spec in mapping or any(k.endswith("/") and spec.startswith(k) for k in mapping)
            assert spec.startswith("./") or mapped, (module, spec)
    from viewer_api.viewer import VENDOR_FILES

    for public, file in VENDOR_FILES.items():  # relative imports inside vendored files stay inside the whitelist
        if not isinstance(file, str) or not file.endswith(".js"):
            continue  # our own opencv.js build, the Draco WebAssembly
        source = (ROOT / "node_modules" / file).read_text(encoding="utf-8")
        for spec in re.findall(r"""from\s+['"](\.[^'"]+)['"]""", source):
            assert posixpath.normpath(posixpath.join(posixpath.dirname(public), spec)) in VENDOR_FILES, (public, spec)
    client = ui_app.test_client()
    for url in mapping.values():
        if not url.endswith("/"):
            assert client.get(url).status_code == 200, url


# ------------------------------------------------------------------------------------- translations

def _ui_msgids() -> list[str]:
    from babel.messages.extract import extract_python
    from jinja2.ext import babel_extract

    ids: list[str] = []
    for template in sorted((ROOT / "templates").glob("*.html")):
        with open(template, "rb") as fh:
            for _line, _func, msg, _comments in babel_extract(fh, ("_", "gettext"), [], {}):
                ids.append(msg if isinstance(msg, str) else msg[0])
    with open(ROOT / "builder" / "web" / "ui.py", "rb") as fh:
        for _line, _func, msg, _comments in extract_python(fh, ["_", "gettext"], [], {}):
            ids.append(msg if isinstance(msg, str) else msg[0])
    return [i for i in ids if i]


def test_every_msgid_has_a_vietnamese_translation():
    from builder.i18n import untranslated

    assert untranslated("vi") == []


def test_every_interface_string_is_in_the_catalog():
    from babel.messages.pofile import read_po

    with open(ROOT / "builder/translations/vi/LC_MESSAGES/messages.po", "rb") as fh:
        catalog = {m.id for m in read_po(fh, locale="vi") if m.id}
    used = _ui_msgids()
    assert len(used) > 150
    assert sorted(set(used) - catalog) == []


def test_vietnamese_translations_keep_their_placeholders():
    from babel.messages.pofile import read_po

    with open(ROOT / "builder/translations/vi/LC_MESSAGES/messages.po", "rb") as fh:
        for message in read_po(fh, locale="vi"):
            if message.id:
                assert sorted(re.findall(r"%\(\w+\)s", message.id)) == sorted(re.findall(r"%\(\w+\)s", message.string)), message.id


def test_catalog_strings_carry_no_markup():
    """Jinja marks translated strings safe under autoescape, so a '<' in a catalog string would become a tag."""
    from babel.messages.pofile import read_po

    with open(ROOT / "builder/translations/vi/LC_MESSAGES/messages.po", "rb") as fh:
        for message in read_po(fh, locale="vi"):
            if message.id:
                assert not re.search(r"[<>&]", message.id + message.string), message.id


def test_designer_corrects_an_edition_and_a_page_with_the_edit_forms(ui_app, db, content):
    edition, page = content["edition"], content["page"]
    client = client_as(ui_app, db, "designer")
    token = csrf_of(client, f"/editions/{edition.id}")
    response = client.post(f"/editions/{edition.id}/edit", data={
        "csrf_token": token, "date": "2026-11-27", "number": str(edition.number), "title": "Số đã sửa"})
    assert response.status_code == 302
    response = client.post(f"/pages/{page.id}/edit", data={
        "csrf_token": token, "number": "3", "title": "Trang nhất", "width_mm": "280", "height_mm": "430"})
    assert response.status_code == 302 and response.headers["Location"].endswith(f"#page-{page.id}")
    db.refresh(edition)
    db.refresh(page)
    assert (edition.date, edition.title) == (dt.date(2026, 11, 27), "Số đã sửa")
    assert (page.number, page.title, page.width_mm, page.height_mm) == (3, "Trang nhất", 280.0, 430.0)
    printer = client_as(ui_app, db, "print_desk")
    assert printer.post(f"/pages/{page.id}/edit", data={"csrf_token": csrf_of(printer), "title": "x"}).status_code == 403


def test_user_text_is_escaped_everywhere_it_is_shown(ui_app, db):
    pub = svc.create_publication(db, svc.SYSTEM, {"name": "<script>alert(1)</script>", "slug": "bao-xss"})
    edition = svc.create_edition(db, svc.SYSTEM, pub, {"date": "2026-11-26", "number": 99, "title": '"><img src=x>'})
    client = client_as(ui_app, db, "admin")
    for path in ("/", "/publications", "/publications/bao-xss", f"/editions/{edition.id}", "/admin/audit"):
        html = client.get(path).get_data(as_text=True)
        assert "<script>alert(1)" not in html and '"><img src=x>' not in html, path


def test_the_login_form_is_throttled_after_repeated_failures(ui_app, db):
    client = client_as(ui_app, db, None)
    token = csrf_of(client, "/login")
    form = {"email": "print_desk@toasoan.vn", "password": "sai-mat-khau", "csrf_token": token}
    address = {"REMOTE_ADDR": "192.0.2.44"}
    limit = ui_app.extensions["baonhung"].settings.login_max_failures
    for _ in range(limit):
        client.post("/login", data=form, environ_base=address)
    form["password"] = "mat-khau-that-dai-1"  # even the right password waits now
    response = client.post("/login", data=form, environ_base=address,
                           headers={"Referer": "http://localhost/login"}, follow_redirects=True)
    assert "Đăng nhập sai quá nhiều lần" in response.get_data(as_text=True)
    with client.session_transaction() as sess:
        assert "uid" not in sess


def test_one_address_guessing_many_emails_is_throttled_too(ui_app, db):
    """Issue 25: 30 wrong passwords for 30 emails from one address were never throttled (each one Argon2 hash)."""
    from builder import auth
    from builder.errors import LoginThrottled

    limit = ui_app.extensions["baonhung"].settings.login_max_address_failures
    for i in range(limit):
        assert auth.check_login(db, f"khong-co-{i}@toasoan.vn", "sai", "203.0.113.9", 5, 300, limit) is None
    with pytest.raises(LoginThrottled):
        auth.check_login(db, "designer@toasoan.vn", "mat-khau-that-dai-1", "203.0.113.9", 5, 300, limit)
    # another address is not held back, and neither is the account itself
    assert auth.check_login(db, "designer@toasoan.vn", "mat-khau-that-dai-1", "203.0.113.10", 5, 300, limit)


def test_a_publication_is_renamed_and_an_unpublished_edition_deleted(ui_app, db, content):
    pub, edition = content["pub"], content["edition"]
    edition_id, page_id = edition.id, content["page"].id
    client = client_as(ui_app, db, "designer")
    token = csrf_of(client)
    assert client.post(f"/publications/{pub.slug}/edit", data={"csrf_token": token, "name": "Báo Mới Tên"}).status_code == 302
    db.refresh(pub)
    assert pub.name == "Báo Mới Tên"
    response = client.post(f"/editions/{edition_id}/delete", data={"csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"] == f"/publications/{pub.slug}"
    db.expunge_all()
    assert db.get(Edition, edition_id) is None and db.get(Page, page_id) is None


def test_the_editor_links_the_neighbouring_pages(ui_app, db, content):
    first = content["page"]
    second = Page(edition_id=first.edition_id, number=2, width_mm=210, height_mm=297, image_sha=first.image_sha,
                  image_mime="image/png", image_width_px=594, image_height_px=840, code=f"N{first.id}")
    db.add(second)
    db.commit()
    client = client_as(ui_app, db, "designer")
    html = client.get(f"/pages/{first.id}/editor").get_data(as_text=True)
    assert f'href="/pages/{second.id}/editor" rel="next"' in html and 'rel="prev"' not in html
    html = client.get(f"/pages/{second.id}/preview").get_data(as_text=True)
    assert f'href="/pages/{first.id}/preview" rel="prev"' in html and 'rel="next"' not in html


# ------------------------------------------------------------------------------------ passwords

def _new_account(db, role="designer", password="mat-khau-that-dai-1") -> User:
    user, _ = svc.create_user(db, svc.SYSTEM, f"tk{next(_counter)}@toasoan.vn", role, password)
    return user


def _signed_in(app, user):
    client = app.test_client()
    db = app.extensions["baonhung"].sessionmaker()
    try:
        sign_in(client, db, db.get(User, user.id))
    finally:
        db.close()
    return client


def test_a_user_changes_their_password_and_only_this_session_survives(ui_app, db):
    from builder import auth

    user = _new_account(db)
    here, elsewhere = _signed_in(ui_app, user), _signed_in(ui_app, user)
    page = here.get("/account/password").get_data(as_text=True)
    assert "Đổi mật khẩu" in page and 'autocomplete="current-password"' in page
    response = here.post("/account/password", data={
        "csrf_token": csrf_of(here), "current_password": "mat-khau-that-dai-1",
        "new_password": "mat-khau-moi-rat-dai-2", "new_password_again": "mat-khau-moi-rat-dai-2"},
        follow_redirects=True)
    assert response.status_code == 200 and "Đã đổi mật khẩu" in response.get_data(as_text=True)
    assert here.get("/").status_code == 200  # this session stays
    assert "/login" in elsewhere.get("/").headers["Location"]  # the other one has ended
    db.expire_all()
    assert auth.verify_password(db.get(User, user.id), "mat-khau-moi-rat-dai-2")
    entry = db.scalars(select(AuditEntry).where(AuditEntry.action == "user.password_change",
                                                AuditEntry.target_id == str(user.id))).one()
    assert entry.user_id == user.id


def test_logout_ends_the_session_on_the_server_even_for_a_copied_cookie(ui_app, db):
    """Issue 25: a cookie saved before POST /logout still worked afterwards (and could create an API token)."""
    user = _new_account(db)
    client = _signed_in(ui_app, user)
    copy = ui_app.test_client()
    client.get("/")  # the server's own Set-Cookie, as a browser stores it
    cookie = next(c for c in client._cookies.values() if c.key == ui_app.config["SESSION_COOKIE_NAME"])
    copy.set_cookie(cookie.key, cookie.value, domain=cookie.domain)
    assert copy.get("/").status_code == 200  # the copy works while the session is live
    response = client.post("/logout", data={"csrf_token": csrf_of(client)})
    assert response.status_code == 302
    assert "/login" in copy.get("/").headers["Location"]
    assert copy.post("/api/v1/publications", json={"name": "X", "slug": "x"}).status_code == 401
    entry = db.scalars(select(AuditEntry).where(AuditEntry.action == "user.logout",
                                                AuditEntry.target_id == str(user.id))).one()
    assert entry.user_id == user.id


def test_a_password_change_can_revoke_the_users_api_tokens(ui_app, db):
    from builder import auth

    user = _new_account(db)
    _, secret = auth.issue_token(db, user, "ci")
    db.commit()
    api = ui_app.test_client()
    assert api.get("/api/v1/publications", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    here = _signed_in(ui_app, user)
    response = here.post("/account/password", data={
        "csrf_token": csrf_of(here), "current_password": "mat-khau-that-dai-1", "new_password": "mat-khau-moi-rat-dai-2",
        "new_password_again": "mat-khau-moi-rat-dai-2", "revoke_tokens": "1"}, follow_redirects=True)
    assert "Đã thu hồi 1 mã truy cập API" in response.get_data(as_text=True)
    assert api.get("/api/v1/publications", headers={"Authorization": f"Bearer {secret}"}).status_code == 401
    assert here.get("/").status_code == 200


@pytest.mark.parametrize("current,new,again,message", [
    ("sai-mat-khau-roi", "mat-khau-moi-rat-dai-2", "mat-khau-moi-rat-dai-2", "mật khẩu hiện tại không đúng"),
    ("mat-khau-that-dai-1", "mat-khau-moi-rat-dai-2", "mat-khau-moi-khac-3", "không khớp"),
    ("mat-khau-that-dai-1", "ngan", "ngan", "cần ít nhất 10 ký tự"),
])
def test_a_refused_password_change_says_why_and_changes_nothing(ui_app, db, current, new, again, message):
    user = _new_account(db)
    client = _signed_in(ui_app, user)
    response = client.post("/account/password", data={
        "csrf_token": csrf_of(client), "current_password": current, "new_password": new, "new_password_again": again},
        headers={"Referer": "http://localhost/account/password"}, follow_redirects=True)
    assert message in htmllib.unescape(response.get_data(as_text=True))
    db.expire_all()
    assert db.get(User, user.id).password_hash == user.password_hash
    assert client.get("/").status_code == 200
    assert client.post("/account/password", data={"current_password": current}).status_code == 400  # CSRF


def test_an_admin_resets_a_password_shown_once_and_the_users_sessions_end(ui_app, db):
    from builder import auth

    target = _new_account(db)
    theirs = _signed_in(ui_app, target)
    admin = client_as(ui_app, db, "admin")
    users_page = admin.get("/admin/users").get_data(as_text=True)
    assert f'action="/admin/users/{target.id}/password"' in users_page and "Đặt lại mật khẩu" in users_page
    response = admin.post(f"/admin/users/{target.id}/password", data={"csrf_token": csrf_of(admin)})
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    password = re.search(r'id="new-password">([^<]+)<', html).group(1)
    db.expire_all()
    assert auth.verify_password(db.get(User, target.id), password)
    assert "/login" in theirs.get("/").headers["Location"]
    assert password not in admin.get("/admin/users").get_data(as_text=True)  # shown once
    entry = db.scalars(select(AuditEntry).where(AuditEntry.action == "user.password_reset",
                                                AuditEntry.target_id == str(target.id))).one()
    assert entry.user_email == "admin@toasoan.vn" and password not in json.dumps(entry.detail)
    for role in ("editor", "designer", "print_desk"):
        client = client_as(ui_app, db, role)
        assert client.post(f"/admin/users/{target.id}/password",
                           data={"csrf_token": csrf_of(client)}).status_code == 403


# ------------------------------------------------------------- size check, upload warnings, look-alike pages

def test_the_editor_has_the_size_check_and_its_texts(ui_app, db, content):
    html = client_as(ui_app, db, "designer").get(f"/pages/{content['page'].id}/editor").get_data(as_text=True)
    assert 'id="size-check"' in html and "Kiểm tra dung lượng" in html and 'id="size-report"' in html
    strings = json.loads(htmllib.unescape(re.search(r"data-strings='([^']*)'", html).group(1)))
    assert strings["size"]["full"] == "Gói đầy đủ" and "{size}" in strings["size"]["of_budget"]
    assert "{budget}" in strings["warnings"]["over_budget_lite"]
    assert 'id="confusable-toggle"' not in html  # this page resembles no published page


def test_every_warning_code_has_an_editor_text():
    """The codes builder/importers/ and builder/bundle.py emit are the ones the editor translates."""
    from builder.web.ui import _warning_strings

    source = "\n".join(p.read_text(encoding="utf-8") for p in sorted((ROOT / "builder/importers").glob("*.py")))
    codes = set(re.findall(r'\{"code": "(\w+)"', source))
    codes |= set(re.findall(r'BundleWarning\(\s*"(\w+)"', (ROOT / "builder/bundle.py").read_text(encoding="utf-8")))
    assert {"not_equirectangular", "model_very_large", "codec_not_web_playable", "over_budget"} <= codes
    with ui_app_context():
        texts = _warning_strings()
    codes.discard("over_budget")  # one text per variant
    assert sorted(codes - set(texts)) == []
    assert {"over_budget_full", "over_budget_lite"} <= set(texts)


def ui_app_context():
    from flask import Flask
    from flask_babel import Babel

    app = Flask(__name__)
    Babel(app)
    return app.test_request_context()


def test_upload_warnings_reach_the_editor_with_the_overlay(ui_app, db, content):
    overlay = db.get(Overlay, content["overlay"].id)
    overlay.asset_sha = content["page"].image_sha
    overlay.asset_mime = "image/png"
    overlay.asset_meta = {"width": 3000, "height": 2000, "warnings": [
        {"code": "not_equirectangular", "values": {"width": 3000, "height": 2000, "ratio": 1.5}}]}
    db.commit()
    html = client_as(ui_app, db, "designer").get(f"/pages/{content['page'].id}/editor").get_data(as_text=True)
    data = json.loads(htmllib.unescape(re.search(r"data-page='([^']*)'", html).group(1)))
    assert data["overlays"][0]["asset"]["meta"]["warnings"][0]["code"] == "not_equirectangular"
    strings = json.loads(htmllib.unescape(re.search(r"data-strings='([^']*)'", html).group(1)))
    assert strings["warnings"]["not_equirectangular"].startswith("Ảnh toàn cảnh không theo tỉ lệ 2:1")


def test_a_look_alike_page_shows_its_reason_a_link_and_the_editor_toggle(ui_app, db, content):
    page = db.get(Page, content["page"].id)
    page.rating = {**page.rating, "reasons": page.rating["reasons"] + [
        {"code": "confusable", "severity": "warning", "vi": "Trang có phần giống trang đã xuất bản #77",
         "en": "Part of this page matches published page #77"}],
        "confusable": [{"page_id": 12, "edition_id": 3, "score": 0.31, "region_mm": [10, 10, 100, 40]},
                       {"page_id": 77, "edition_id": 9, "edition_number": 5, "page_number": 4, "score": 0.62,
                        "region_mm": [20, 15, 257, 60]}]}
    db.commit()
    client = client_as(ui_app, db, "designer")
    edition = client.get(f"/editions/{content['edition'].id}").get_data(as_text=True)
    assert 'class="sev-warning">Trang có phần giống trang đã xuất bản #77' in edition
    # named as the newsroom names it (issue 24), not by its internal id
    assert 'href="/pages/77/preview"' in edition and "So sánh với Số 5 · Trang 4" in edition
    assert f'href="/pages/{page.id}/editor?shared=1"' in edition
    editor = client.get(f"/pages/{page.id}/editor").get_data(as_text=True)
    assert 'id="confusable-toggle"' in editor and "Vùng giống nhau" in editor
    strings = json.loads(htmllib.unescape(re.search(r"data-strings='([^']*)'", editor).group(1)))
    assert strings["confusable_label"] == "Giống {page} ({score}%)"
    assert strings["published_page"] == "Số {edition} · Trang {page}"
    # a rating made before pages were named still links, by id
    page.rating = {**page.rating, "confusable": [{"page_id": 77, "edition_id": 9, "score": 0.62,
                                                  "region_mm": [20, 15, 257, 60]}]}
    db.commit()
    assert "So sánh với trang đã xuất bản #77" in client.get(f"/editions/{content['edition'].id}").get_data(as_text=True)


def test_an_admin_resetting_their_own_password_stays_signed_in_here(ui_app, db):
    admin = _new_account(db, "admin")
    here, elsewhere = _signed_in(ui_app, admin), _signed_in(ui_app, admin)
    assert here.post(f"/admin/users/{admin.id}/password", data={"csrf_token": csrf_of(here)}).status_code == 200
    assert here.get("/admin/users").status_code == 200
    assert "/login" in elsewhere.get("/").headers["Location"]


def test_file_pickers_offer_what_the_server_takes(ui_app, db, content):
    """Issue 24: the 3D picker offered .glb,.gltf,.zip,.stl,.ply though the server takes .obj and .dae too. The
    pickers now come from the server's own table of accepted formats."""
    import html as html_mod
    import json

    from builder.importers import FORMATS, KIND_FORMATS

    client = client_as(ui_app, db, "designer")
    editor = client.get(f"/pages/{content['page'].id}/editor").get_data(as_text=True)
    accept = json.loads(html_mod.unescape(re.search(r'data-accept="([^"]+)"', editor).group(1)))
    for kind, formats in KIND_FORMATS.items():
        if kind == "page":
            continue
        for f in formats:
            assert f".{FORMATS[f].ext}" in accept[kind].split(","), (kind, f)
    assert ".obj" in accept["model3d"] and ".dae" in accept["model3d"]
    edition = client.get(f"/editions/{content['edition'].id}").get_data(as_text=True)
    page_accept = re.search(r'name="image" accept="([^"]+)"', edition).group(1)
    assert {".jpg", ".jpeg", ".png", ".pdf"} <= set(page_accept.split(","))


def test_a_published_edition_without_changes_says_so_and_offers_no_resubmit(ui_app, db, content):
    from builder import publish as publish_mod

    edition = content["edition"]
    svc.submit_for_review(db, svc.SYSTEM, edition)
    publish_mod.publish_edition(db, ui_app.extensions["baonhung"].store, ui_app.extensions["baonhung"].settings,
                                svc.SYSTEM, edition, ui_app.extensions["baonhung"].bundle_options)
    html = client_as(ui_app, db, "designer").get(f"/editions/{edition.id}").get_data(as_text=True)
    assert "Đã xuất bản, chưa có thay đổi" in html and 'id="submit-review"' not in html
