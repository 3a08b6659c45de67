"""Issue 27, newsroom side: an overlay's access level (free / premium) and its teaser, through the API and the
editor's add form — per-kind rules (docs/PREMIUM.md), refusals that change nothing, serialization, audit."""
from __future__ import annotations

import io
import json
import re
from html import unescape as html_unescape

import pytest
from PIL import Image

from tests.conftest import auth, state_snapshot, upload
# test_api's app, users and page: its page built once per test process, then restored (restored_fixtures)
from tests.web.test_api import app, make_edition, make_page, make_publication, page, page_png, tiny_mp4, users  # noqa: F401

BOX = {"x_mm": 20, "y_mm": 30, "width_mm": 100, "height_mm": 60}
LINK = {"kind": "link", "url": "https://baoyenbai.com.vn/bai-viet", **BOX}
MODEL = {"kind": "model3d", "stock": "arrow", **BOX}


def _overlay(client, token, page, body, files=None):
    url = f"/api/v1/pages/{page['id']}/overlays"
    if files:
        data = {**{k: str(v) for k, v in body.items()}, **files}
        return client.post(url, data=data, content_type="multipart/form-data", headers=auth(token))
    return client.post(url, json=body, headers=auth(token))


def _get(client, token, overlay_id):
    return client.get(f"/api/v1/overlays/{overlay_id}", headers=auth(token)).get_json()


def _png(w=64, h=48) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (w, h), (200, 30, 40)).save(out, "PNG")
    return out.getvalue()


def test_a_new_overlay_is_free_and_shows_its_kinds_default_teaser(client, users, page):
    token = users.tokens["designer"]
    r = _overlay(client, token, page, MODEL)
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert (body["access"], body["teaser"], body["teasers"], body["teaser_seconds"]) == ("free", "blur",
                                                                                         ["blur", "poster"], 5)
    link = _overlay(client, token, page, LINK).get_json()
    assert (link["access"], link["teaser"], link["teasers"]) == ("free", None, [])


def test_a_premium_video_is_created_with_its_clip_and_seconds(client, users, page, tiny_mp4):  # noqa: F811
    token = users.tokens["designer"]
    r = _overlay(client, token, page, {"kind": "video", "access": "premium", "teaser_seconds": 12, **BOX},
                 files={"file": upload(tiny_mp4, "clip.mp4")})
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert (body["access"], body["teaser"], body["teasers"], body["teaser_seconds"]) == ("premium", "clip",
                                                                                         ["clip", "poster"], 12)
    assert _get(client, token, body["id"]) == body
    # a video's poster teaser is its own poster frame: allowed without any upload
    r = client.patch(f"/api/v1/overlays/{body['id']}", json={"teaser": "poster"}, headers=auth(token))
    assert r.status_code == 200 and r.get_json()["teaser"] == "poster"
    # null goes back to the kind's default
    r = client.patch(f"/api/v1/overlays/{body['id']}", json={"teaser": None}, headers=auth(token))
    assert r.status_code == 200 and r.get_json()["teaser"] == "clip"


def test_patch_turns_an_overlay_premium_and_free_again_and_the_audit_log_says_so(client, users, page):
    token = users.tokens["designer"]
    oid = _overlay(client, token, page, MODEL).get_json()["id"]
    r = client.patch(f"/api/v1/overlays/{oid}", json={"access": "premium"}, headers=auth(token))
    assert r.status_code == 200 and r.get_json()["access"] == "premium" and r.get_json()["teaser"] == "blur"
    assert _get(client, token, oid)["access"] == "premium"
    # placement edits keep the access level
    r = client.patch(f"/api/v1/overlays/{oid}", json={"x_mm": 40}, headers=auth(token))
    assert r.get_json()["access"] == "premium" and r.get_json()["x_mm"] == 40
    r = client.patch(f"/api/v1/overlays/{oid}", json={"access": "free"}, headers=auth(token))
    assert r.status_code == 200 and r.get_json()["access"] == "free"

    log = client.get("/api/v1/audit?limit=20", headers=auth(users.tokens["admin"])).get_json()["entries"][::-1]
    entries = [e for e in log if e["target"] == f"overlay:{oid}"]
    assert entries[0]["action"] == "overlay.create" and entries[0]["detail"]["access"] == "free"
    updates = [e["detail"] for e in entries if e["action"] == "overlay.update"]
    assert [d.get("access") for d in updates] == [["free", "premium"], None, ["premium", "free"]]
    assert all(e["user"] == "designer@example.vn" for e in entries)


@pytest.mark.parametrize("lang, words", [
    ("vi", ["quyền xem (access)", "free, premium"]),
    ("en", ["the access level (access)", "must be one of: free, premium"]),
])
def test_an_unknown_access_level_is_a_400_that_changes_nothing(app, client, users, page, lang, words):
    token = users.tokens["designer"]
    oid = _overlay(client, token, page, MODEL).get_json()["id"]
    before, snapshot = _get(client, token, oid), state_snapshot(app)
    for send in (lambda: client.patch(f"/api/v1/overlays/{oid}", json={"access": "vip"}, headers=auth(token, lang)),
                 lambda: client.patch(f"/api/v1/overlays/{oid}", json={"access": None}, headers=auth(token, lang)),
                 lambda: client.patch(f"/api/v1/overlays/{oid}", json={"access": 1}, headers=auth(token, lang)),
                 lambda: client.post(f"/api/v1/pages/{page['id']}/overlays", json={**MODEL, "access": "vip"},
                                     headers=auth(token, lang)),
                 lambda: client.post(f"/api/v1/pages/{page['id']}/overlays", data={**{k: str(v) for k, v in MODEL.items()},
                                     "access": "Premium"}, content_type="multipart/form-data",
                                     headers=auth(token, lang))):
        r = send()
        assert r.status_code == 400 and r.get_json()["error"] == "invalid_field", r.get_json()
        assert all(w in r.get_json()["message"] for w in words), r.get_json()["message"]
    assert _get(client, token, oid) == before and state_snapshot(app) == snapshot


def test_a_link_cannot_be_premium(app, client, users, page):
    token = users.tokens["designer"]
    snapshot = state_snapshot(app)
    r = client.post(f"/api/v1/pages/{page['id']}/overlays", json={**LINK, "access": "premium"},
                    headers=auth(token, "vi"))
    assert r.status_code == 400 and r.get_json()["error"] == "access_not_for_links"
    assert "liên kết luôn miễn phí" in r.get_json()["message"]
    assert state_snapshot(app) == snapshot
    oid = _overlay(client, token, page, LINK).get_json()["id"]
    before = _get(client, token, oid)
    r = client.patch(f"/api/v1/overlays/{oid}", json={"access": "premium", "x_mm": 60}, headers=auth(token, "en"))
    assert r.status_code == 400 and r.get_json() == {
        "error": "access_not_for_links",
        "message": "A link overlay cannot be premium: links are always free (access must be free)."}
    assert _get(client, token, oid) == before
    r = client.patch(f"/api/v1/overlays/{oid}", json={"teaser": "poster"}, headers=auth(token, "en"))
    assert r.status_code == 400 and r.get_json()["error"] == "teaser_not_for_kind"


def test_a_teaser_the_kind_does_not_allow_is_refused_naming_the_allowed_ones(client, users, page):
    token = users.tokens["designer"]
    oid = _overlay(client, token, page, {**MODEL, "access": "premium"}).get_json()["id"]
    before = _get(client, token, oid)
    r = client.patch(f"/api/v1/overlays/{oid}", json={"teaser": "clip", "x_mm": 50}, headers=auth(token, "en"))
    assert r.status_code == 400 and r.get_json()["error"] == "teaser_not_for_kind"
    assert r.get_json()["message"] == "A 3D model overlay cannot show the teaser 'clip'. Choose one of: blur, poster."
    vi = client.patch(f"/api/v1/overlays/{oid}", json={"teaser": "clip"}, headers=auth(token, "vi")).get_json()
    assert vi["message"] == "Lớp phủ mô hình 3D không dùng được phần xem thử «clip». Chọn một trong: blur, poster."
    r = client.patch(f"/api/v1/overlays/{oid}", json={"teaser": "teaser"}, headers=auth(token, "en"))
    assert r.status_code == 400 and "must be one of: poster, clip, blur, null" in r.get_json()["message"]
    assert _get(client, token, oid) == before


def test_a_poster_teaser_needs_a_poster_for_a_model_or_an_image(app, client, users, page):
    token = users.tokens["designer"]
    snapshot = state_snapshot(app)
    r = client.post(f"/api/v1/pages/{page['id']}/overlays", json={**MODEL, "access": "premium", "teaser": "poster"},
                    headers=auth(token, "en"))
    assert r.status_code == 400 and r.get_json()["error"] == "teaser_needs_poster"
    assert "this 3D model overlay has none. Choose 'blur'" in r.get_json()["message"]
    assert state_snapshot(app) == snapshot
    image = _overlay(client, token, page, {"kind": "image", "access": "premium", **BOX},
                     files={"file": upload(_png(), "anh.png")})
    assert image.status_code == 201, image.get_json()
    assert image.get_json()["teaser"] == "blur"
    r = client.patch(f"/api/v1/overlays/{image.get_json()['id']}", json={"teaser": "poster"}, headers=auth(token, "vi"))
    assert r.status_code == 400 and "chưa có ảnh bìa" in r.get_json()["message"]
    # an animated image's poster is its first frame: its default
    gif = io.BytesIO()
    frames = [Image.new("RGB", (32, 24), c) for c in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    r = _overlay(client, token, page, {"kind": "animated_image", "access": "premium", **BOX},
                 files={"file": upload(gif.getvalue(), "dong.gif")})
    assert r.status_code == 201 and r.get_json()["teaser"] == "poster", r.get_json()


@pytest.mark.parametrize("seconds", [0, 31, 2.5, "năm", True])
def test_teaser_seconds_are_a_whole_number_from_1_to_30(client, users, page, seconds):
    token = users.tokens["designer"]
    oid = _overlay(client, token, page, MODEL).get_json()["id"]
    r = client.patch(f"/api/v1/overlays/{oid}", json={"teaser_seconds": seconds}, headers=auth(token, "en"))
    assert r.status_code == 400 and r.get_json()["error"] == "invalid_field", r.get_json()
    assert "teaser_seconds" in r.get_json()["message"]
    assert _get(client, token, oid)["teaser_seconds"] == 5
    for ok in (1, 30):
        r = client.patch(f"/api/v1/overlays/{oid}", json={"teaser_seconds": ok}, headers=auth(token))
        assert r.status_code == 200 and r.get_json()["teaser_seconds"] == ok


def test_page_json_lists_each_overlays_access(client, users, page):
    token = users.tokens["designer"]
    free = _overlay(client, token, page, MODEL).get_json()["id"]
    paid = _overlay(client, token, page, {**MODEL, "access": "premium"}).get_json()["id"]
    got = client.get(f"/api/v1/pages/{page['id']}", headers=auth(token)).get_json()
    assert {o["id"]: o["access"] for o in got["overlays"]} == {free: "free", paid: "premium"}


def test_the_openapi_document_states_the_access_fields(client):
    doc = client.get("/api/v1/openapi.json").get_json()
    patch = doc["paths"]["/api/v1/overlays/{overlay_id}"]["patch"]["requestBody"]["content"]["application/json"]
    props = patch["schema"]["properties"]
    assert props["access"]["enum"] == ["free", "premium"]
    assert props["teaser"]["enum"] == ["poster", "clip", "blur", None]
    assert (props["teaser_seconds"]["minimum"], props["teaser_seconds"]["maximum"]) == (1, 30)
    post = doc["paths"]["/api/v1/pages/{page_id}/overlays"]["post"]["requestBody"]["content"]
    assert post["multipart/form-data"]["schema"]["properties"]["access"]["enum"] == ["free", "premium"]


def test_the_editors_add_form_makes_a_premium_overlay(app, client, users, page):
    from builder import auth as auth_mod
    from builder.models import Overlay, User

    db = app.extensions["baonhung"].sessionmaker()
    try:
        user = db.query(User).filter_by(email="designer@example.vn").one()
        secret = auth_mod.open_session(db, user, "127.0.0.1")
        db.commit()
        with client.session_transaction() as sess:
            sess["uid"], sess["sid"], sess["pwv"] = user.id, secret, user.password_hash[-16:]
    finally:
        db.close()
    html = client.get(f"/pages/{page['id']}/editor").get_data(as_text=True)
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)
    assert 'name="access"' in html and "Quyền xem" in html and "Dành cho bạn đọc đăng ký" in html
    english = client.get(f"/pages/{page['id']}/editor?lang=en").get_data(as_text=True)
    strings = json.loads(html_unescape(re.search(r"data-strings='([^']+)'", english).group(1)))["premium"]
    assert "Access" in english and strings["badge"] == "For subscribers"
    assert strings["kind_teasers"]["video"] == ["clip", "poster"] and strings["poster_upload_kinds"] == ["model3d", "image"]
    assert strings["explain"]["video.clip"] == ("Readers without a subscription see the first {seconds} s of the video, "
                                                "then the lock.")
    client.get(f"/pages/{page['id']}/editor?lang=vi")
    r = client.post(f"/pages/{page['id']}/overlays", data={
        "csrf_token": csrf, "kind": "model3d", "source": "stock", "stock": "pin", "access": "premium"})
    assert r.status_code == 302, r.get_data(as_text=True)[:500]
    r = client.post(f"/pages/{page['id']}/overlays", data={
        "csrf_token": csrf, "kind": "link", "url": "https://example.org", "access": "premium"},
        headers={"Accept": "application/json"})
    assert r.status_code == 400
    db = app.extensions["baonhung"].sessionmaker()
    try:
        rows = db.query(Overlay).filter_by(page_id=page["id"]).all()
        assert [(o.kind, o.access) for o in rows] == [("model3d", "premium")]
    finally:
        db.close()


def test_only_content_writers_change_access_and_not_while_the_edition_is_in_review(client, users, page):
    token = users.tokens["designer"]
    oid = _overlay(client, token, page, MODEL).get_json()["id"]
    r = client.patch(f"/api/v1/overlays/{oid}", json={"access": "premium"}, headers=auth(users.tokens["print_desk"]))
    assert r.status_code == 403 and _get(client, token, oid)["access"] == "free"
    assert client.post(f"/api/v1/editions/{page['edition_id']}/submit", headers=auth(token)).status_code == 200
    r = client.patch(f"/api/v1/overlays/{oid}", json={"access": "premium"}, headers=auth(token))
    assert r.status_code == 409 and r.get_json()["error"] == "locked_for_review"
    assert _get(client, token, oid)["access"] == "free"
