"""The product on the S3 store (BAONHUNG_STORAGE=s3) against the local Swift: uploads, the app's publish path
(the job, run inside the request in test apps), the public endpoints serving the artifacts from the bucket with
Range and ETag, and garbage collection deleting from the bucket. Skips without BAONHUNG_TEST_S3_URL (make test
sets it)."""
from __future__ import annotations

import io
import subprocess
import time
import uuid

import pytest

from builder.storage import sha256_bytes
from tests.builder.test_storage import s3_options, s3_store
from tests.conftest import auth, make_app, png_bytes, test_database, upload
from tests.web.test_api import PLACEMENT, make_edition, make_page, make_publication

pytestmark = pytest.mark.xdist_group("s3_publish")


def _s3_app(data_dir):
    """The authoring app with its asset store in the bucket (under a prefix of its own)."""
    from builder.config import Settings

    prefix = f"app-{uuid.uuid4().hex[:12]}/"
    options = s3_options(prefix)
    s3_store(prefix)  # the bucket exists
    settings = Settings(data_dir=data_dir, database_url="", secret_key="s3-test-secret",
                        storage_backend="s3", s3_endpoint=options["endpoint"], s3_bucket=options["bucket"],
                        s3_region=options["region"], s3_access_key=options["access_key"],
                        s3_secret_key=options["secret_key"], s3_prefix=prefix)
    return make_app(data_dir, SETTINGS=settings)


@pytest.fixture
def app(tmp_path):
    return _s3_app(tmp_path / "data")


@pytest.fixture(scope="module")
def clip() -> bytes:
    return subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=160x90:rate=10:duration=1",
                           "-pix_fmt", "yuv420p", "-c:v", "libx264", "-f", "mp4", "-movflags",
                           "frag_keyframe+empty_moov", "pipe:1"], check=True, capture_output=True).stdout


def _publish(client, tokens: dict, clip: bytes) -> dict:
    """An edition of one page (synth seed 21) with a video overlay, published (the job runs inside the request)."""
    designer, editor = tokens["designer"], tokens["editor"]
    make_publication(client, designer)
    edition = make_edition(client, designer)
    page = make_page(client, designer, edition["id"], png_bytes(seed=21))
    r = client.post(f"/api/v1/pages/{page['id']}/overlays", headers=auth(designer),
                    content_type="multipart/form-data", data={"kind": "video", "file": upload(clip, "v.mp4"),
                                                              **PLACEMENT})
    assert r.status_code == 201, r.get_json()
    assert client.post(f"/api/v1/editions/{edition['id']}/submit", headers=auth(designer)).status_code == 200
    r = client.post(f"/api/v1/editions/{edition['id']}/publish", headers=auth(editor))
    assert r.status_code == 202 and r.get_json()["status"] == "done", r.get_json()
    return {"edition": edition, "page": page, "clip": clip}


@pytest.fixture
def published(app, client, users, clip):
    """For a test that changes the published state or the store (garbage collection, unpublish)."""
    return _publish(client, users.tokens, clip)


@pytest.fixture(scope="module")
def site(tmp_path_factory, clip):
    """One app on the bucket with one published edition, for the tests that only read what publishing wrote (a
    publish is seconds of work: made once for them, not once each)."""
    from tests.conftest import user_with_token

    app = _s3_app(tmp_path_factory.mktemp("s3-site") / "data")
    tokens = {role: user_with_token(app, f"{role}@example.vn", role) for role in ("designer", "editor")}
    return {"app": app, "client": app.test_client(), "published": _publish(app.test_client(), tokens, clip)}


def test_publishing_on_s3_writes_every_artifact_to_the_bucket_and_none_to_disk(site):
    app, published = site["app"], site["published"]
    store = app.extensions["baonhung"].store
    assert type(store).__name__ == "S3Store"
    local = app.extensions["baonhung"].settings.data_dir / "store"
    assert not local.exists() or not any(p.is_file() for p in local.rglob("*"))
    in_bucket = set(store.list())
    assert sha256_bytes(png_bytes(seed=21)) in in_bucket
    catalog = app.extensions["baonhung"].published.catalog()
    entry = catalog["pages"][str(published["page"]["id"])]
    assert entry["manifest"] in in_bucket and entry["marker"] in in_bucket


def test_the_public_endpoints_serve_artifacts_from_the_bucket_with_range_and_etag(site):
    client, published = site["client"], site["published"]
    r = client.get(f"/pub/editions/{published['edition']['id']}/manifest.json")
    assert r.status_code == 200 and r.headers["Cache-Control"] == "public, no-cache" and r.headers["ETag"]
    assert client.get(f"/pub/editions/{published['edition']['id']}/manifest.json",
                      headers={"If-None-Match": r.headers["ETag"]}).status_code == 304
    manifest = client.get(f"/pub/pages/{published['page']['id']}/manifest.json").get_json()
    glb_url = manifest["bundles"]["full"]["url"] if "bundles" in manifest else manifest["bundle_full"]["url"]
    r = client.get(glb_url)
    assert r.status_code == 200 and r.data[:4] == b"glTF" and "immutable" in r.headers["Cache-Control"]
    sha = glb_url.rsplit("/", 1)[-1].split(".")[0]
    assert sha256_bytes(r.data) == sha and r.headers["ETag"] == f'"{sha}"'
    assert client.get(glb_url, headers={"If-None-Match": f'"{sha}"'}).status_code == 304
    video = next(m for m in manifest["media"] if m["mime"] == "video/mp4")
    whole = client.get(video["url"]).data
    assert sha256_bytes(whole) == video["sha256"]
    r = client.get(video["url"], headers={"Range": "bytes=100-299"})
    assert r.status_code == 206 and r.data == whole[100:300]
    assert r.headers["Content-Range"] == f"bytes 100-299/{len(whole)}"
    assert client.get(video["url"].replace(".mp4", ".json")).status_code == 404  # its own type only
    unpublished = sha256_bytes(b"a draft nobody published")
    client.application.extensions["baonhung"].store.put_bytes(b"a draft nobody published")
    assert client.get(f"/pub/a/{unpublished}.bin").status_code == 404


def test_garbage_collection_deletes_from_the_bucket_only_what_nothing_refers_to(app, client, published):
    from builder.gc import collect_garbage

    state = app.extensions["baonhung"]
    orphan = state.store.put_bytes(b"an upload whose row was never committed")
    before = set(state.store.list())
    db = state.sessionmaker()
    try:
        assert collect_garbage(db, state.store, state.published.catalog()) == []  # a day's grace: too young
        time.sleep(1.1)  # S3's Last-Modified has whole seconds (Swift rounds up): let the orphan be older than now
        assert collect_garbage(db, state.store, state.published.catalog(), min_age_s=0) == [orphan]
    finally:
        db.close()
    assert set(state.store.list()) == before - {orphan} and not state.store.exists(orphan)
    manifest = client.get(f"/pub/pages/{published['page']['id']}/manifest.json").get_json()
    assert client.get(manifest["marker_url"]).status_code == 200  # the published edition still serves


def test_backup_of_an_s3_store_restores_onto_local_disk_and_onto_another_bucket_prefix(site, tmp_path):
    import tarfile
    from dataclasses import replace

    from sqlalchemy import create_engine, inspect

    from builder.backup import BackupError, backup, restore
    from builder.storage import LocalDiskStore, store_from_settings

    app, published = site["app"], site["published"]
    settings = app.extensions["baonhung"].settings
    in_bucket = set(app.extensions["baonhung"].store.list())
    archive = tmp_path / "b.tar.gz"
    assert backup(settings, archive)["blobs"] == len(in_bucket)
    page_id = published["page"]["id"]
    targets = {
        "local": replace(settings, storage_backend="local", data_dir=tmp_path / "on-disk",
                         database_url=test_database(tmp_path / "on-disk", migrated=False)),
        "s3": replace(settings, s3_prefix=f"restored-{uuid.uuid4().hex[:8]}/", data_dir=tmp_path / "on-s3",
                      database_url=test_database(tmp_path / "on-s3", migrated=False)),
    }
    for name, target in targets.items():
        restore(target, archive)
        again = make_app(target.data_dir, SETTINGS=target)
        assert set(again.extensions["baonhung"].store.list()) == in_bucket, name
        assert isinstance(again.extensions["baonhung"].store, LocalDiskStore) == (name == "local")
        manifest = again.test_client().get(f"/pub/pages/{page_id}/manifest.json").get_json()
        r = again.test_client().get(manifest["bundles"]["full"]["url"], headers={"Range": "bytes=0-3"})
        assert r.status_code == 206 and r.data == b"glTF", name
    with pytest.raises(BackupError, match="already holds content"):  # the bucket prefix holds blobs now
        restore(replace(targets["s3"], data_dir=tmp_path / "empty", database_url=test_database(tmp_path / "e", migrated=False)),
                archive)
    damaged = tmp_path / "damaged.tar.gz"  # a blob whose bytes are not its name's: refused before any change
    with tarfile.open(archive) as src, tarfile.open(damaged, "w:gz") as out:
        for member in src.getmembers():
            data = src.extractfile(member).read()
            if member.name.startswith("store/") and data[:4] == b"glTF":
                data = b"glTF" + data[4:][::-1]
            member.size = len(data)
            out.addfile(member, io.BytesIO(data))
    fresh = replace(targets["s3"], s3_prefix=f"damaged-{uuid.uuid4().hex[:8]}/", data_dir=tmp_path / "fresh",
                    database_url=test_database(tmp_path / "fresh", migrated=False))
    with pytest.raises(BackupError, match="damaged archive"):
        restore(fresh, damaged)
    engine = create_engine(fresh.database_url)  # the run's engine: nothing was written into the database
    try:
        assert inspect(engine).get_table_names() == []
    finally:
        engine.dispose()
    assert list(store_from_settings(fresh).list()) == []


def test_the_editor_previews_a_draft_upload_from_the_bucket(client, users):
    designer = users.tokens["designer"]
    make_publication(client, designer)
    edition = make_edition(client, designer)
    png = png_bytes(620, 877, seed=11)
    page = make_page(client, designer, edition["id"], png)
    url = page["image"]["url"]
    r = client.get(url, headers=auth(designer))
    assert r.status_code == 200 and r.data == png and r.mimetype == "image/png"
    assert r.headers["ETag"] == f'"{sha256_bytes(png)}"' and r.headers["Cache-Control"] == "private, max-age=3600"
    r = client.get(url, headers={**auth(designer), "Range": "bytes=0-7"})
    assert r.status_code == 206 and r.data == b"\x89PNG\r\n\x1a\n"
    assert client.get(url).status_code == 401  # drafts are never public
    missing = sha256_bytes(b"never uploaded")
    assert client.get(f"/api/v1/assets/{missing}", headers=auth(designer)).status_code == 404
    r = client.get("/api/v1/assets/not-a-sha", headers=auth(designer))
    assert r.status_code == 404 and r.get_json()["error"] == "not_found"


def test_the_public_app_alone_serves_an_edition_from_the_bucket_with_no_newsroom_database(site, tmp_path):
    app, published = site["app"], site["published"]
    from dataclasses import replace

    from tests.web.test_public import _photo_of
    from viewer_api.app import create_public_app

    settings = replace(app.extensions["baonhung"].settings,
                       database_url="postgresql+psycopg://nobody:none@127.0.0.1:9/absent",  # nothing listens there
                       readers_database_url="none")
    public = create_public_app(settings, {"TESTING": True})
    assert type(public.extensions["baonhung"].store).__name__ == "S3Store"
    client = public.test_client()
    page_id = published["page"]["id"]
    manifest = client.get(f"/pub/pages/{page_id}/manifest.json").get_json()
    url = manifest["bundles"]["lite"]["url"]
    whole = client.get(url)
    assert whole.status_code == 200 and whole.data[:4] == b"glTF"
    r = client.get(url, headers={"Range": "bytes=4-11"})
    assert r.status_code == 206 and r.data == whole.data[4:12]
    assert client.get(url, headers={"If-None-Match": whole.headers["ETag"]}).status_code == 304
    photo, _ = _photo_of(21)
    match = client.post("/api/v1/recognize", data=photo, content_type="image/jpeg").get_json()["match"]
    assert match and match["page_id"] == page_id


def test_the_published_state_lives_in_the_bucket_and_a_public_app_elsewhere_serves_and_recognizes_from_it(
        app, client, users, published, tmp_path):
    """Issue 28: on S3 the catalog, its version key and the recognition index are objects in the bucket (under the
    prefix), not files of the newsroom's data directory, so a public process on another machine — an empty data
    directory of its own, no database — serves the page, recognizes a photo of it (the index fetched into its local
    cache), and follows an unpublish by polling the version object."""
    import hashlib
    import json
    from dataclasses import replace

    from tests.web.test_public import _photo_of
    from viewer_api.app import create_public_app, warm_up
    from viewer_api.published import CATALOG_POLL_S

    state = app.extensions["baonhung"]
    store = state.store
    data = store.read_named("catalog.json")
    assert store.read_named("catalog.version").decode() == hashlib.sha256(data).hexdigest()
    catalog = json.loads(data)
    assert catalog["index"] and catalog["index"] in store.list_named()
    on_disk = state.settings.data_dir / "published"
    assert not (on_disk / "catalog.json").exists() and not list(on_disk.glob("index-*.bnx"))

    elsewhere = tmp_path / "public-machine"
    elsewhere.mkdir()
    settings = replace(state.settings, data_dir=elsewhere, database_url="", readers_database_url="none")
    public = create_public_app(settings, {"TESTING": True})
    warm_up(public)  # fetches the index once into the cache, before a fork
    reader = public.test_client()
    edition_id, page_id = published["edition"]["id"], published["page"]["id"]
    manifest = reader.get(f"/pub/pages/{page_id}/manifest.json")
    assert manifest.status_code == 200
    assert manifest.get_json() == client.get(f"/pub/pages/{page_id}/manifest.json").get_json()
    assert reader.get(manifest.get_json()["bundles"]["full"]["url"]).status_code == 200
    photo, _ = _photo_of(21)
    match = reader.post("/api/v1/recognize", data=photo, content_type="image/jpeg").get_json()["match"]
    assert match["page_id"] == page_id and match["edition_id"] == edition_id
    assert sorted(p.name for p in (elsewhere / "cache" / "published").iterdir()) == [catalog["index"]]

    r = client.post(f"/api/v1/editions/{edition_id}/unpublish", headers=auth(users.tokens["editor"]))
    assert r.status_code == 202 and r.get_json()["status"] == "done", r.get_json()
    time.sleep(CATALOG_POLL_S + 0.1)
    assert reader.get(f"/pub/pages/{page_id}/manifest.json").status_code == 404
    assert reader.post("/api/v1/recognize", data=photo, content_type="image/jpeg").get_json() == {"match": None}
    assert json.loads(store.read_named("catalog.json"))["index"] is None
