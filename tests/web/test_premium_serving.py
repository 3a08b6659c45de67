"""Premium overlays (issue 27), serving side: the free side holds teasers only, the premium part goes to entitled
readers only, its bytes only through signed URLs — and every way around that we could think of is refused with a
403/404 that carries zero premium bytes.

Bypasses tried here: a guessed content address (/pub/a/<premium sha>), an expired URL, a forged signature, another
reader's URL, no cookie, a tampered expiry, a tampered sha or extension, the free manifest and bundles (no premium
bytes or shas in them), an unpublished edition's premium media, a revoked entitlement (part refused at once, issued
URLs die at expiry), a signed-out session, a deactivated reader's open session, Range requests with a valid and an
invalid URL, a valid signature over a blob that is not premium (a draft upload, a free artifact), and the old part's
URLs after a republish."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from sqlalchemy import event, select

from builder.glb import read_glb
from builder.models import Entitlement, Overlay, Reader, ReaderSession, utcnow
from tests.conftest import auth, make_app, png_bytes, upload, user_with_token
from tests.web.test_api import PLACEMENT, make_edition, make_page, make_publication

pytestmark = pytest.mark.xdist_group("premium_serving")
REPO = Path(__file__).resolve().parents[2]
TEASER_SECONDS = 3
VIDEO_SECONDS = 10


def _video(hz: int = 440) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/v.mp4"
        subprocess.run(
            ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", f"testsrc2=size=160x90:rate=25:duration={VIDEO_SECONDS}",
             "-f", "lavfi", "-i", f"sine=frequency={hz}:duration={VIDEO_SECONDS}", "-c:a", "aac", "-pix_fmt",
             "yuv420p", "-c:v", "libx264", "-shortest", "-movflags", "+faststart", path], check=True,
            capture_output=True)
        with open(path, "rb") as fh:
            return fh.read()


def _publish_edition(app, client, tokens, number: int, seed: int) -> dict:
    """An edition with one page: a free link, a premium video (clip teaser, 3 s) and a premium stock model (blur)."""
    designer, editor = tokens["designer"], tokens["editor"]
    edition = make_edition(client, designer, number=number)
    page = make_page(client, designer, edition["id"], png_bytes(seed=seed))
    ids = {}
    for kind, data in (("link", {"url": "https://example.org"}),
                       ("video", {"file": upload(_video(400 + number * 40), "v.mp4")}),
                       ("model3d", {"stock": "pin"})):
        r = client.post(f"/api/v1/pages/{page['id']}/overlays", headers=auth(designer),
                        content_type="multipart/form-data", data={"kind": kind, **data, **PLACEMENT})
        assert r.status_code == 201, r.get_json()
        ids[kind] = r.get_json()["id"]
    db = app.extensions["baonhung"].sessionmaker()
    try:  # set directly: the overlay API's access field has its own tests
        for kind in ("video", "model3d"):
            overlay = db.get(Overlay, ids[kind])
            overlay.access, overlay.teaser_seconds = "premium", TEASER_SECONDS
        db.commit()
    finally:
        db.close()
    assert client.post(f"/api/v1/editions/{edition['id']}/submit", headers=auth(designer)).status_code == 200
    r = client.post(f"/api/v1/editions/{edition['id']}/publish", headers=auth(editor))
    assert r.status_code == 202 and r.get_json()["status"] == "done", r.get_json()
    return {"edition": edition, "page": page, "ids": ids}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    app = make_app(tmp_path_factory.mktemp("premium") / "data")
    client = app.test_client()
    tokens = {role: user_with_token(app, f"{role}@example.vn", role) for role in ("designer", "editor")}
    publication = make_publication(client, tokens["designer"])
    published = _publish_edition(app, client, tokens, 1, 21)
    state = app.extensions["baonhung"]
    catalog = state.published.catalog()
    premium_shas = {sha for shas in catalog["premium_artifacts"].values() for sha in shas}
    blobs = {sha: state.store.read(sha) for sha in premium_shas}
    # what only the premium overlays are made of: the premium media whole, and the model's geometry (a premium
    # bundle also carries the page plane and its preview, which are free content and in the free bundle too)
    model = read_glb((REPO / "assets" / "3d" / "pin.glb").read_bytes())
    premium_only = [data for data in blobs.values() if not data.startswith(b"glTF")] + [model.bin]
    premium_glb = next(data for data in blobs.values() if data.startswith(b"glTF"))
    assert all(_windows(model.bin)[i] in premium_glb for i in range(3))  # the check below can fail
    return {"app": app, "client": client, "tokens": tokens, "publication": publication, **published,
            "premium_shas": premium_shas, "premium_bytes": blobs, "premium_only": premium_only}


def _windows(data: bytes) -> list[bytes]:
    return [data[start:start + 48] for start in (0, len(data) // 2, max(0, len(data) - 48))]


def _db(app):
    return app.extensions["baonhung"].sessionmaker()


def reader(app, email: str, entitled: bool = True) -> tuple[int, str]:
    """A reader with a live session (and an entitlement to every publication): (reader id, cookie token)."""
    token = secrets.token_urlsafe(32)
    db = _db(app)
    try:
        row = Reader(email=email, password_hash="not-used-here")
        db.add(row)
        db.flush()
        db.add(ReaderSession(reader_id=row.id, token_hash=hashlib.sha256(token.encode()).hexdigest()))
        if entitled:
            db.add(Entitlement(reader_id=row.id, publication_id=None, source="admin",
                               expires_at=utcnow() + dt.timedelta(days=30)))
        db.commit()
        return row.id, token
    finally:
        db.close()


def browser(app, token: str | None = None):
    client = app.test_client()
    if token:
        client.set_cookie("baonhung_reader", token)
    return client


def part_of(site, client) -> dict:
    r = client.get(f"/api/v1/reader/pages/{site['page']['id']}/premium")
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def video_url(part) -> str:
    return next(m["url"] for m in part["media"] if m["mime"].startswith("video/"))


def assert_no_premium_bytes(site, body: bytes) -> None:
    """No premium sha in ``body``, and no 48-byte window (start, middle, end) of what only premium overlays are made
    of: the premium media, the model's geometry."""
    for sha in site["premium_shas"]:
        assert sha.encode() not in body, sha
    for data in site["premium_only"]:
        for window in _windows(data):
            assert window not in body


def refused(site, response, status: int) -> None:
    assert response.status_code == status, (response.status_code, response.data[:200])
    assert_no_premium_bytes(site, response.data)


def _with_sig(url: str, **change) -> str:
    path, query = url.split("?", 1)
    args = dict(kv.split("=", 1) for kv in query.split("&"))
    args.update(change)
    return path + "?" + "&".join(f"{k}={v}" for k, v in args.items())


# ----------------------------------------------------------------------------------------------- free side
def test_the_manifest_lists_premium_overlays_with_their_teaser_and_names_the_part(site):
    manifest = site["client"].get(f"/pub/pages/{site['page']['id']}/manifest.json").get_json()
    by_id = {o["id"]: o for o in manifest["overlays"]}
    ids = site["ids"]
    assert by_id[str(ids["link"])]["access"] == "free" and "teaser" not in by_id[str(ids["link"])]
    assert by_id[str(ids["video"])] | {} == {"id": str(ids["video"]), "kind": "video", "name": by_id[str(ids["video"])]["name"],
                                            "access": "premium", "teaser": "clip"}
    assert by_id[str(ids["model3d"])]["teaser"] == "blur"
    assert manifest["premium"] == {"overlays": [str(ids["video"]), str(ids["model3d"])],
                                   "url": f"/api/v1/reader/pages/{site['page']['id']}/premium"}


def test_the_free_manifests_and_bundles_hold_no_premium_bytes_or_shas(site):
    """Tampering with the manifest gets nothing: nothing in the free side names or holds a premium blob."""
    client = site["client"]
    manifest_response = client.get(f"/pub/pages/{site['page']['id']}/manifest.json")
    edition_response = client.get(f"/pub/editions/{site['edition']['id']}/manifest.json")
    manifest = manifest_response.get_json()
    assert_no_premium_bytes(site, manifest_response.data)
    assert_no_premium_bytes(site, edition_response.data)
    urls = [manifest["bundles"]["full"]["url"], manifest["bundles"]["lite"]["url"], manifest["marker_url"],
            manifest["preview_url"], manifest["thumbnail_url"]] + [m["url"] for m in manifest["media"]]
    for url in urls:
        r = client.get(url)
        assert r.status_code == 200, url
        assert_no_premium_bytes(site, r.data)
    state = site["app"].extensions["baonhung"]
    free = {sha for shas in state.published.catalog()["edition_artifacts"].values() for sha in shas}
    assert site["premium_shas"] and not free & site["premium_shas"]


def test_the_free_bundle_holds_the_teasers_a_clip_and_a_blurred_still_not_the_model(site):
    client = site["client"]
    manifest = client.get(f"/pub/pages/{site['page']['id']}/manifest.json").get_json()
    doc = read_glb(client.get(manifest["bundles"]["full"]["url"]).data)
    from builder.bundle import overlay_nodes

    nodes = overlay_nodes(doc.json)
    video, model = str(site["ids"]["video"]), str(site["ids"]["model3d"])
    assert nodes[video]["extras"]["overlay"]["teaser"] == "clip"
    assert nodes[model]["extras"]["overlay"]["kind"] == "image"
    assert nodes[model]["extras"]["overlay"]["premium_kind"] == "model3d"
    assert not any(str(n.get("name", "")).startswith("fit/") for n in doc.json["nodes"])
    assert all(doc.json["accessors"][p["attributes"]["POSITION"]]["count"] == 4
               for m in doc.json["meshes"] for p in m["primitives"])  # quads only: no mesh of the model
    clip = next(m for m in manifest["media"] if m["overlay_id"] == video)
    data = client.get(clip["url"]).data
    probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "json", "-"],
                           input=data, check=True, capture_output=True).stdout
    assert float(json.loads(probe)["format"]["duration"]) == pytest.approx(TEASER_SECONDS, abs=0.15)


@pytest.mark.parametrize("ext", ["glb", "mp4", "m4a", "json", "bin", "png", "jpg"])
def test_a_guessed_content_address_of_a_premium_blob_is_404(site, ext):
    for sha in site["premium_shas"]:
        refused(site, site["client"].get(f"/pub/a/{sha}.{ext}"), 404)
        refused(site, site["client"].get(f"/pub/a/{sha}.{ext}", headers={"Range": "bytes=0-99"}), 404)


# ----------------------------------------------------------------------------------------------- the part
def test_an_entitled_reader_gets_the_part_with_urls_signed_for_the_session(site):
    _, token = reader(site["app"], "doc.gia@example.vn")
    client = browser(site["app"], token)
    r = client.get(f"/api/v1/reader/pages/{site['page']['id']}/premium")
    assert r.status_code == 200
    assert r.headers["Cache-Control"] == "private, no-store" and "Access-Control-Allow-Origin" not in r.headers
    part = r.get_json()
    assert part["overlays"] == [str(site["ids"]["video"]), str(site["ids"]["model3d"])]
    assert 0 < part["expires_in"] <= 300
    urls = [b["url"] for b in part["bundles"].values()] + [m["url"] for m in part["media"]]
    assert all(u.startswith("/pub/p/") and "exp=" in u and "sig=" in u for u in urls)
    for entry in list(part["bundles"].values()) + part["media"]:
        got = client.get(entry["url"])
        assert got.status_code == 200, got.get_json()
        assert got.data == site["premium_bytes"][entry["sha256"]]
        assert got.headers["Cache-Control"] == "private, no-store"
        assert "Access-Control-Allow-Origin" not in got.headers
        assert got.headers["Cross-Origin-Resource-Policy"] == "same-origin"
    from builder.bundle import overlay_nodes

    nodes = overlay_nodes(read_glb(client.get(part["bundles"]["full"]["url"]).data).json)
    assert nodes[str(site["ids"]["model3d"])]["extras"]["overlay"]["kind"] == "model3d"
    assert set(nodes) == {str(site["ids"]["video"]), str(site["ids"]["model3d"])}


def test_the_signed_url_is_checked_without_a_database_read(site):
    _, token = reader(site["app"], "khong.db@example.vn")
    client = browser(site["app"], token)
    url = video_url(part_of(site, client))
    statements = []
    engine = site["app"].extensions["baonhung"].engine
    listener = lambda *args, **kw: statements.append(args[2])  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        assert client.get(url).status_code == 200
        assert client.get(_with_sig(url, sig="A" * 43)).status_code == 403
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    assert statements == []


def test_without_a_cookie_the_part_is_401_and_a_signed_url_403(site):
    _, token = reader(site["app"], "co.cookie@example.vn")
    url = video_url(part_of(site, browser(site["app"], token)))
    anonymous = browser(site["app"])
    r = anonymous.get(f"/api/v1/reader/pages/{site['page']['id']}/premium?lang=en")
    refused(site, r, 401)
    assert r.get_json()["error"] == "sign_in_required"
    refused(site, anonymous.get(url), 403)
    refused(site, anonymous.get(url, headers={"Range": "bytes=0-99"}), 403)


def test_another_readers_signed_url_is_403_even_for_an_entitled_reader(site):
    _, alice = reader(site["app"], "alice@example.vn")
    _, bob = reader(site["app"], "bob@example.vn")
    url = video_url(part_of(site, browser(site["app"], alice)))
    r = browser(site["app"], bob).get(url)
    refused(site, r, 403)
    assert r.get_json()["error"] == "premium_link_invalid"


def test_a_reader_without_the_right_gets_403_in_the_readers_language(site):
    _, token = reader(site["app"], "chua.dang.ky@example.vn", entitled=False)
    client = browser(site["app"], token)
    r = client.get(f"/api/v1/reader/pages/{site['page']['id']}/premium")
    refused(site, r, 403)
    assert r.get_json()["error"] == "not_entitled" and "đăng ký" in r.get_json()["message"]
    r = client.get(f"/api/v1/reader/pages/{site['page']['id']}/premium", headers={"Accept-Language": "en"})
    assert r.get_json()["message"].startswith("This content is for subscribers")


def test_an_entitlement_to_another_publication_does_not_open_this_one(site):
    from builder.models import Publication

    reader_id, token = reader(site["app"], "bao.khac@example.vn", entitled=False)
    db = _db(site["app"])
    try:
        other = Publication(name="Báo khác", slug="bao-khac")
        db.add(other)
        db.flush()
        db.add(Entitlement(reader_id=reader_id, publication_id=other.id, source="admin"))
        db.commit()
    finally:
        db.close()
    refused(site, browser(site["app"], token).get(f"/api/v1/reader/pages/{site['page']['id']}/premium"), 403)


def test_expired_forged_and_tampered_urls_are_403(site, monkeypatch):
    import viewer_api.premium as premium_api

    _, token = reader(site["app"], "thu.sua@example.vn")
    client = browser(site["app"], token)
    part = part_of(site, client)
    url = video_url(part)
    exp = int(url.split("exp=")[1].split("&")[0])
    sig = url.split("sig=")[1]
    other_sha = part["bundles"]["full"]["sha256"]
    video_sha = url.split("/pub/p/")[1].split(".")[0]
    attempts = {
        "forged signature": _with_sig(url, sig=sig[:-2] + ("AA" if sig[-2:] != "AA" else "BB")),
        "no signature": url.split("&sig=")[0],
        "tampered exp": _with_sig(url, exp=str(exp + 60)),
        "far exp": _with_sig(url, exp=str(exp + 86400)),
        "tampered sha": url.replace(video_sha, other_sha),
        "tampered ext": url.replace(".mp4?", ".m4a?"),
        "garbage exp": _with_sig(url, exp="abc"),
    }
    for what, bad in attempts.items():
        r = client.get(bad)
        refused(site, r, 403)
        assert r.get_json()["error"] == "premium_link_invalid", what
    assert client.get(url).status_code == 200
    monkeypatch.setattr(premium_api, "_now", lambda: exp + 1)
    refused(site, client.get(url), 403)


def test_a_range_request_with_a_valid_url_gets_exactly_those_bytes_and_with_an_invalid_one_nothing(site):
    _, token = reader(site["app"], "tua.video@example.vn")
    client = browser(site["app"], token)
    url = video_url(part_of(site, client))
    sha = url.split("/pub/p/")[1].split(".")[0]
    data = site["premium_bytes"][sha]
    r = client.get(url, headers={"Range": "bytes=100-1123"})
    assert r.status_code == 206 and r.data == data[100:1124]
    assert r.headers["Content-Range"] == f"bytes 100-1123/{len(data)}"
    assert r.headers["Cache-Control"] == "private, no-store"
    tail = client.get(url, headers={"Range": f"bytes={len(data) - 10}-"})
    assert tail.status_code == 206 and tail.data == data[-10:]
    refused(site, client.get(_with_sig(url, sig="x" * 43), headers={"Range": "bytes=100-1123"}), 403)


def test_a_valid_signature_over_a_blob_that_is_not_premium_is_404(site):
    """The signing key alone does not open the store: a draft upload or a free artifact is not in the premium set."""
    from builder.premium import sign_url

    app = site["app"]
    _, token = reader(app, "khoa@example.vn")
    client = browser(app, token)
    state = app.extensions["baonhung"]
    key = state.settings.derived_key("premium-url")
    binding = hashlib.sha256(token.encode()).hexdigest()
    manifest = client.get(f"/pub/pages/{site['page']['id']}/manifest.json").get_json()
    free_glb = manifest["bundles"]["full"]["sha256"]
    draft = state.store.put_bytes(b"a draft upload nobody published")
    for sha, ext in ((free_glb, "glb"), (draft, "bin"), ("0" * 64, "mp4")):
        r = client.get(sign_url(key, sha, ext, int(time.time()) + 60, binding))
        assert r.status_code == 404, (sha, r.status_code)
        assert r.get_json()["error"] == "premium_not_found"


def test_a_page_without_a_premium_part_and_an_unknown_page_are_404(site):
    _, token = reader(site["app"], "trang.khac@example.vn")
    client = browser(site["app"], token)
    assert client.get("/api/v1/reader/pages/999999/premium").status_code == 404


# ----------------------------------------------------------------------------------------------- revocation
def test_a_revoked_entitlement_stops_new_parts_at_once_and_issued_urls_at_expiry(site, monkeypatch):
    import viewer_api.premium as premium_api

    reader_id, token = reader(site["app"], "huy.quyen@example.vn")
    client = browser(site["app"], token)
    url = video_url(part_of(site, client))
    exp = int(url.split("exp=")[1].split("&")[0])
    db = _db(site["app"])
    try:
        for row in db.scalars(select(Entitlement).where(Entitlement.reader_id == reader_id)):
            row.revoked_at = utcnow()
        db.commit()
    finally:
        db.close()
    r = client.get(f"/api/v1/reader/pages/{site['page']['id']}/premium")
    refused(site, r, 403)
    assert r.get_json()["error"] == "not_entitled"
    assert client.get(url).status_code == 200  # an issued URL lives out its TTL (no database on the media path)
    assert exp - time.time() <= site["app"].extensions["baonhung"].settings.premium_url_ttl_s + 1
    monkeypatch.setattr(premium_api, "_now", lambda: exp)
    refused(site, client.get(url), 403)


def test_after_sign_out_the_part_and_the_urls_are_refused(site, monkeypatch):
    import viewer_api.premium as premium_api

    _, token = reader(site["app"], "dang.xuat@example.vn")
    client = browser(site["app"], token)
    url = video_url(part_of(site, client))
    client.get("/api/v1/reader/me")  # the CSRF cookie
    csrf = client.get_cookie("baonhung_reader_csrf").value
    assert client.post("/api/v1/reader/signout", headers={"X-CSRF-Token": csrf}).status_code == 204
    assert client.get_cookie("baonhung_reader") is None
    refused(site, client.get(url), 403)
    refused(site, client.get(f"/api/v1/reader/pages/{site['page']['id']}/premium"), 401)
    kept = browser(site["app"], token)  # someone kept the old cookie: its session is over
    refused(site, kept.get(f"/api/v1/reader/pages/{site['page']['id']}/premium"), 401)
    monkeypatch.setattr(premium_api, "_now", lambda: int(url.split("exp=")[1].split("&")[0]))
    refused(site, kept.get(url), 403)


# ----------------------------------------------------------------------------------------------- unpublish, gc
def test_an_unpublished_editions_premium_media_is_gone_even_with_a_url_signed_before(site):
    app, client = site["app"], site["client"]
    second = _publish_edition(app, client, site["tokens"], 2, 22)
    _, token = reader(app, "go.xuat.ban@example.vn")
    reader_client = browser(app, token)
    r = reader_client.get(f"/api/v1/reader/pages/{second['page']['id']}/premium")
    assert r.status_code == 200
    part = r.get_json()
    urls = [b["url"] for b in part["bundles"].values()] + [m["url"] for m in part["media"]]
    assert all(reader_client.get(u).status_code == 200 for u in urls)
    state = app.extensions["baonhung"]
    blobs = {u.split("/pub/p/")[1].split(".")[0]: state.store.read(u.split("/pub/p/")[1].split(".")[0]) for u in urls}
    r = client.post(f"/api/v1/editions/{second['edition']['id']}/unpublish", headers=auth(site["tokens"]["editor"]))
    assert r.status_code == 202 and r.get_json()["status"] == "done", r.get_json()
    assert str(second["page"]["id"]) not in state.published.catalog()["premium_pages"]
    assert reader_client.get(f"/api/v1/reader/pages/{second['page']['id']}/premium").status_code == 404
    for u in urls:
        r = reader_client.get(u)
        assert r.status_code == 404
        for data in blobs.values():
            assert data[:48] not in r.data and data[len(data) // 2:len(data) // 2 + 48] not in r.data
    # the first edition's premium part is untouched
    assert reader_client.get(f"/api/v1/reader/pages/{site['page']['id']}/premium").status_code == 200


def test_garbage_collection_keeps_the_published_premium_blobs(site):
    from builder.gc import collect_garbage

    state = site["app"].extensions["baonhung"]
    db = _db(site["app"])
    try:
        garbage = collect_garbage(db, state.store, state.published.catalog(), min_age_s=0, dry_run=True)
    finally:
        db.close()
    part = state.published.premium_page(site["page"]["id"])["part"]
    assert not (set(garbage) & (site["premium_shas"] | {part}))


def test_a_republish_replaces_the_premium_part(site):
    """The video made free and the edition published again: the part lists the model only, the video is a free
    artifact now (served by /pub/a/, no longer by a signed URL), the old part's bundles are gone."""
    app, client = site["app"], site["client"]
    third = _publish_edition(app, client, site["tokens"], 3, 23)
    _, token = reader(app, "xuat.ban.lai@example.vn")
    reader_client = browser(app, token)
    before = part_of({"page": third["page"]}, reader_client)
    old_video = video_url(before)
    db = _db(app)
    try:
        db.get(Overlay, third["ids"]["video"]).access = "free"
        db.commit()
    finally:
        db.close()
    designer, editor = site["tokens"]["designer"], site["tokens"]["editor"]
    assert client.post(f"/api/v1/editions/{third['edition']['id']}/submit", headers=auth(designer)).status_code == 200
    assert client.post(f"/api/v1/editions/{third['edition']['id']}/publish", headers=auth(editor)).status_code == 202
    after = part_of({"page": third["page"]}, reader_client)
    assert after["overlays"] == [str(third["ids"]["model3d"])] and after["media"] == []
    assert reader_client.get(old_video).status_code == 404
    assert reader_client.get(before["bundles"]["full"]["url"]).status_code == 404
    video_sha = old_video.split("/pub/p/")[1].split(".")[0]
    assert client.get(f"/pub/a/{video_sha}.mp4").status_code == 200
    manifest = client.get(f"/pub/pages/{third['page']['id']}/manifest.json").get_json()
    assert manifest["premium"]["overlays"] == [str(third["ids"]["model3d"])]


def test_a_deactivated_readers_open_session_gets_no_part(site):
    reader_id, token = reader(site["app"], "bi.khoa@example.vn")
    client = browser(site["app"], token)
    part_of(site, client)
    db = _db(site["app"])
    try:
        db.get(Reader, reader_id).active = False
        db.commit()
    finally:
        db.close()
    refused(site, client.get(f"/api/v1/reader/pages/{site['page']['id']}/premium"), 401)
