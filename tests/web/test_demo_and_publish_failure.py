"""The demo a newcomer sees after `make run`, and publishing that fails without touching what readers see."""
import cv2
import numpy as np

from tests.conftest import auth, make_app, png_bytes
from tests.web.test_api import PLACEMENT, make_edition, make_page, make_publication


def test_demo_seeds_a_published_page_that_a_phone_photo_recognizes(tmp_path):
    from builder.config import Settings
    from builder.demo import DEMO_PAGE_MM, demo_page_png, seed_demo
    from markers.synth import synth_photo

    app = make_app(tmp_path / "d")
    state = app.extensions["baonhung"]
    settings = Settings.from_env({"BAONHUNG_DATA_DIR": str(tmp_path / "d")})
    db = state.sessionmaker()
    first = seed_demo(db, settings)
    again = seed_demo(db, settings)  # idempotent: same login, nothing duplicated
    db.close()
    assert again.password == first.password and again.edition_id == first.edition_id
    client = app.test_client()
    manifest = client.get(f"/pub/editions/{first.edition_id}/manifest.json").get_json()
    assert len(manifest["pages"]) == 1
    page_manifest = client.get(manifest["pages"][0]["manifest_url"]).get_json()
    kinds = {o["kind"] for o in page_manifest["overlays"]}
    assert {"video", "model3d", "audio", "animated_image", "link"} <= kinds
    page = cv2.imdecode(np.frombuffer(demo_page_png(), np.uint8), cv2.IMREAD_COLOR)
    shot = synth_photo(page, *DEMO_PAGE_MM, seed=1)  # a reader holding the page at arm's length
    ok, jpg = cv2.imencode(".jpg", shot.image)
    match = client.post("/api/v1/recognize", data=jpg.tobytes(), content_type="image/jpeg").get_json()["match"]
    assert match and match["page_id"] == first.page_id
    assert client.get(f"/v/{first.edition_code}").status_code == 200
    r = client.post("/login", data={"email": "admin@baonhung.local", "password": first.password})
    assert r.status_code == 400  # without the form's CSRF token even the right password is refused


def test_failed_publish_keeps_the_previous_version_and_records_why(client, users, app, monkeypatch):
    designer, editor = users.tokens["designer"], users.tokens["editor"]
    make_publication(client, designer)
    edition = make_edition(client, designer)
    page = make_page(client, designer, edition["id"], png_bytes(620, 877, seed=12))
    client.post(f"/api/v1/editions/{edition['id']}/submit", headers=auth(designer))
    assert client.post(f"/api/v1/editions/{edition['id']}/publish", headers=auth(editor)).status_code == 200
    published = client.get(f"/pub/pages/{page['id']}/manifest.json").get_json()
    catalog_before = (app.extensions["baonhung"].published.catalog_path).read_bytes()

    client.post(f"/api/v1/pages/{page['id']}/overlays", headers=auth(designer), content_type="multipart/form-data",
                data={"kind": "link", "url": "https://example.org", **PLACEMENT})
    client.post(f"/api/v1/editions/{edition['id']}/submit", headers=auth(designer))

    import builder.publish as publish_mod
    from builder.bundle import BundleBuildError

    def broken(*_a, **_k):
        raise BundleBuildError("overlay 7: model could not be packaged")

    monkeypatch.setattr(publish_mod, "build_page_bundle", broken)
    r = client.post(f"/api/v1/editions/{edition['id']}/publish", headers=auth(editor, "en"))
    assert r.status_code == 422 and r.get_json()["error"] == "publish_failed"
    assert "previous version keeps serving" in r.get_json()["message"]
    assert client.get(f"/pub/pages/{page['id']}/manifest.json").get_json() == published
    assert app.extensions["baonhung"].published.catalog_path.read_bytes() == catalog_before
    from sqlalchemy import select

    from builder.models import PublishFailure

    db = app.extensions["baonhung"].sessionmaker()
    failures = db.scalars(select(PublishFailure)).all()
    db.close()
    assert len(failures) == 1 and "could not be packaged" in failures[0].error
    body = client.get(f"/api/v1/editions/{edition['id']}", headers=auth(editor)).get_json()
    assert body["published_version"] == 1 and body["status"] == "in_review"
