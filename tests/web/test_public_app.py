"""The public app on its own (issue 28): ``viewer_api.app.create_public_app`` and ``baonhung serve-public`` serve a
published edition with no newsroom database, write nothing at start-up, import no authoring code, and pick up a new
publish without a restart."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

from tests.conftest import REPO, auth, png_bytes
from tests.web.test_api import PLACEMENT, make_edition, make_page
from tests.web.test_premium_serving import site  # noqa: F401 - the fixture: an edition with premium overlays
from tests.web.test_public import _photo_of, published  # noqa: F401 - the fixture: a published edition
from tests.web.test_serve import READY_POLL_S, _free_port

AUTHORING_MODULES = ("builder.web", "builder.services", "builder.publish", "builder.bundle", "builder.importers",
                     "builder.app", "builder.premium", "builder.jobs", "flask_babel", "flask_wtf")


def _tree(directory: Path) -> dict:
    """Every file and directory under ``directory``: its size and modification time (what a write changes)."""
    return {str(p.relative_to(directory)): (p.is_dir(), p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(directory.rglob("*"))}


def _public_app(app, **config):
    from viewer_api.app import create_public_app

    settings = app.extensions["baonhung"].settings
    return create_public_app(replace(settings, readers_database_url=config.pop("readers", "none")),
                             {"TESTING": True, **config})


def _csrf_post(client, path, body, lang="vi"):
    client.set_cookie("baonhung_reader_csrf", "t" * 32)
    return client.post(path, json=body, headers={"X-CSRF-Token": "t" * 32, "Accept-Language": lang})


def test_the_public_app_alone_serves_a_published_edition_and_writes_nothing_at_start_up(app, published):
    from viewer_api.app import warm_up

    data_dir = app.extensions["baonhung"].settings.data_dir
    before = _tree(data_dir)
    public = _public_app(app)
    warm_up(public)  # what serve-public does before forking: the catalog and the index, read
    assert _tree(data_dir) == before
    assert public.extensions["baonhung"].sessionmaker is None  # no database at all
    client = public.test_client()

    edition_id, page_id = published["edition"]["id"], published["page"]["id"]
    r = client.get(f"/pub/editions/{edition_id}/manifest.json")
    assert r.status_code == 200 and r.get_json()["pages"][0]["page_id"] == str(page_id)
    manifest = client.get(f"/pub/pages/{page_id}/manifest.json").get_json()
    url = manifest["bundles"]["full"]["url"]
    whole = client.get(url)
    assert whole.status_code == 200 and whole.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    part = client.get(url, headers={"Range": "bytes=4-15"})
    assert part.status_code == 206 and part.data == whole.data[4:16]
    assert part.headers["Content-Range"] == f"bytes 4-15/{len(whole.data)}"

    photo, _ = _photo_of(21)
    match = client.post("/api/v1/recognize", data=photo, content_type="image/jpeg").get_json()["match"]
    assert match["page_id"] == page_id and match["edition_id"] == edition_id

    assert client.get("/v/").status_code == 200
    code = app.extensions["baonhung"].published.catalog()["editions"][str(edition_id)]["code"]
    viewer = client.get(f"/v/{code}")
    assert viewer.status_code == 200 and f'"editionId": {edition_id}' in viewer.get_data(as_text=True)
    assert client.get("/v/NOPE999").status_code == 404

    # reader accounts need their database: 503 in the usual shape, vi by default, en when asked — never a 500
    r = client.get("/api/v1/reader/me")
    assert r.status_code == 503 and r.get_json() == {
        "error": "readers_unavailable",
        "message": "Tài khoản bạn đọc tạm thời không dùng được. Nội dung miễn phí vẫn xem được; hãy thử lại sau ít phút."}
    r = _csrf_post(client, "/api/v1/reader/signin", {"email": "a@b.vn", "password": "x" * 12}, lang="en")
    assert r.status_code == 503 and r.get_json()["message"].startswith("Reader accounts are unavailable")
    assert client.get(f"/api/v1/reader/pages/{page_id}/premium").status_code == 404  # no premium part: no DB asked
    assert client.get("/no/such/path").get_json()["error"] == "not_found"
    assert _tree(data_dir) == before  # serving free published content wrote nothing either


def test_the_public_app_keeps_reader_accounts_in_the_readers_database(app, published):
    """With the readers database (here the one-machine default: the newsroom's SQLite file), reader accounts work."""
    public = _public_app(app, readers=app.extensions["baonhung"].settings.database_url)
    client = public.test_client()
    assert client.get("/api/v1/reader/me").get_json() == {"signed_in": False}
    r = _csrf_post(client, "/api/v1/reader/signup", {"email": "Ban.Doc@Example.vn", "password": "mat khau dai du"})
    assert r.status_code == 201 and r.get_json()["email"] == "ban.doc@example.vn"
    assert client.get("/api/v1/reader/me").get_json()["signed_in"] is True


def test_a_readers_database_that_cannot_be_reached_is_a_503_not_a_500(app, published):
    port = _free_port()  # nothing listens there
    public = _public_app(app, readers=f"postgresql+psycopg://nobody:x@127.0.0.1:{port}/none?connect_timeout=2")
    client = public.test_client()
    r = _csrf_post(client, "/api/v1/reader/signin", {"email": "a@b.vn", "password": "x" * 12}, lang="en")
    assert r.status_code == 503 and r.get_json()["error"] == "readers_unavailable"
    assert r.get_json()["message"].startswith("Reader accounts are unavailable")
    client.set_cookie("baonhung_reader", "s" * 43)  # a signed-in reader's cookie: /me reads the database
    r = client.get("/api/v1/reader/me")
    assert r.status_code == 503 and r.get_json()["message"].startswith("Tài khoản bạn đọc tạm thời")
    photo, _ = _photo_of(21)
    assert client.post("/api/v1/recognize", data=photo, content_type="image/jpeg").get_json()["match"]


def test_an_sqlite_readers_database_that_does_not_exist_is_not_created(tmp_path):
    from builder.config import Settings
    from viewer_api.app import create_public_app

    data_dir = tmp_path / "data"
    (data_dir / "store").mkdir(parents=True)
    before = _tree(data_dir)
    public = create_public_app(Settings(data_dir=data_dir, database_url=f"sqlite:///{data_dir / 'db.sqlite3'}",
                                        secret_key="s" * 32), {"TESTING": True})
    client = public.test_client()
    assert client.get("/api/v1/reader/me").status_code == 503
    photo, _ = _photo_of(21)
    assert client.post("/api/v1/recognize", data=photo, content_type="image/jpeg").get_json() == {"match": None}
    assert client.get("/pub/pages/1/manifest.json").status_code == 404
    assert _tree(data_dir) == before  # no database file, no published/ directory


def test_the_public_app_imports_no_authoring_code(tmp_path):
    """In a fresh interpreter: the public app made, its index loaded, a request served — and not one module of
    the newsroom side imported."""
    script = (
        "import json, sys\n"
        "from viewer_api.app import create_public_app, warm_up\n"
        "app = create_public_app()\n"
        "warm_up(app)\n"
        "c = app.test_client()\n"
        "assert c.get('/v/').status_code == 200\n"
        "assert c.get('/api/v1/reader/me').status_code == 503\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "BAONHUNG_DATA_DIR": str(tmp_path / "data"), "BAONHUNG_READERS_DATABASE_URL": "none"}
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    modules = json.loads(out.stdout.splitlines()[-1])
    assert "viewer_api.readers_api" in modules and "viewer_api.premium" in modules  # the reader side is there
    assert [m for m in modules if any(m == a or m.startswith(a + ".") for a in AUTHORING_MODULES)] == []


def test_the_catalog_version_is_polled_at_most_every_half_second():
    """A replica (another process: here a store whose writes this process did not make) answers the catalog it
    read until its poll interval has passed, then the new one; a catalog written by hand (no version key) too."""
    import tempfile

    from viewer_api import published as pub

    with tempfile.TemporaryDirectory() as tmp:
        now = [100.0]
        store = pub.PublishedStore(Path(tmp), clock=lambda: now[0])
        assert store.catalog()["editions"] == {} and store.version() is None

        def other_process_writes(catalog):
            data = json.dumps(dict(catalog, version=pub.CATALOG_VERSION)).encode()
            pub._write_atomically(store.dir, store.catalog_path, data)
            pub._write_atomically(store.dir, store.version_path, pub.hashlib.sha256(data).hexdigest().encode())

        other_process_writes(dict(pub.EMPTY_CATALOG, editions={"7": {"manifest": "a" * 64}}))
        now[0] += pub.CATALOG_POLL_S / 2
        assert store.catalog()["editions"] == {}  # within the interval: not even looked at
        now[0] += pub.CATALOG_POLL_S
        assert store.edition_manifest_sha(7) == "a" * 64
        assert len(store.version()) == 64  # the version key, not a stat

        time.sleep(0.01)  # a newer mtime than the version key's
        store.catalog_path.write_text(json.dumps(dict(pub.EMPTY_CATALOG, editions={"8": {"manifest": "b" * 64}})))
        now[0] += pub.CATALOG_POLL_S
        assert store.edition_manifest_sha(8) == "b" * 64 and store.version().startswith("stat:")

        writer = pub.PublishedStore(Path(tmp))  # a write made in this process is seen at once
        writer.write_catalog(dict(pub.EMPTY_CATALOG, editions={"9": {"manifest": "c" * 64}}))
        assert store.edition_manifest_sha(9) == "c" * 64


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return 0


def _publish_second_edition(client, users) -> int:
    designer, editor = users.tokens["designer"], users.tokens["editor"]
    edition = make_edition(client, designer, number=2)
    page = make_page(client, designer, edition["id"], png_bytes(seed=22))
    client.post(f"/api/v1/pages/{page['id']}/overlays", headers=auth(designer), content_type="multipart/form-data",
                data={"kind": "link", "url": "https://example.org/2", **PLACEMENT})
    client.post(f"/api/v1/editions/{edition['id']}/submit", headers=auth(designer))
    r = client.post(f"/api/v1/editions/{edition['id']}/publish", headers=auth(editor))
    assert r.status_code in (200, 202), r.get_json()
    return edition["id"]


def test_serve_public_replicas_pick_up_a_new_publish_within_two_seconds(app, client, users, published):
    """Two `baonhung serve-public` processes (two gunicorn workers each) on the newsroom's data directory, no
    database: a publish made after they started is served by every worker within 2 s, without a restart."""
    data_dir = app.extensions["baonhung"].settings.data_dir
    env = {"PATH": "/usr/bin:/bin", "BAONHUNG_DATA_DIR": str(data_dir), "BAONHUNG_READERS_DATABASE_URL": "none",
           "HOME": os.environ.get("HOME", "/tmp")}
    ports = [_free_port(), _free_port()]
    procs = [subprocess.Popen([sys.executable, "-m", "builder.cli", "serve-public", "--port", str(port),
                               "--workers", "2", "--threads", "2"], cwd=REPO, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for port in ports]
    try:
        first = published["edition"]["id"]
        for port in ports:
            deadline = time.monotonic() + 60
            while _get(f"http://127.0.0.1:{port}/pub/editions/{first}/manifest.json") != 200:
                assert time.monotonic() < deadline, "serve-public did not start"
                time.sleep(READY_POLL_S)
        second = _publish_second_edition(client, users)
        deadline = time.monotonic() + 60
        while app.extensions["baonhung"].published.edition_manifest_sha(second) is None:  # a queued publish
            assert time.monotonic() < deadline
            time.sleep(0.1)
        published_at = time.monotonic()
        urls = [f"http://127.0.0.1:{port}/pub/editions/{second}/manifest.json" for port in ports]
        while not all(all(_get(u) == 200 for _ in range(6)) for u in urls):  # 6 requests each: both workers, likely
            assert time.monotonic() - published_at < 2.0, [(u, _get(u)) for u in urls]
            time.sleep(0.05)
        assert time.monotonic() - published_at < 2.0
    finally:
        for proc in procs:
            proc.terminate()
        outputs = [proc.communicate(timeout=30)[0] for proc in procs]
    assert all("Báo Nhúng public side serving on" in out for out in outputs), outputs


def test_premium_parts_on_the_public_app_with_and_without_the_readers_database(site):
    """A reader's premium part from a public process (the readers database given): its signed URLs play there and on
    the newsroom app alike (one secret key). Without the database the part is a 503, while a URL signed before
    still plays: a signed URL is checked with no database read."""
    from tests.web.test_premium_serving import browser, reader, video_url

    app = site["app"]
    _, token = reader(app, "thue.bao@example.vn")
    with_db = browser(_public_app(app, readers=app.extensions["baonhung"].settings.database_url), token)
    r = with_db.get(f"/api/v1/reader/pages/{site['page']['id']}/premium")
    assert r.status_code == 200, r.get_json()
    url = video_url(r.get_json())
    played = with_db.get(url)
    assert played.status_code == 200 and played.data in site["premium_bytes"].values()
    assert browser(app, token).get(url).data == played.data  # the newsroom app accepts the replica's URL

    without_db = browser(_public_app(app), token)
    r = without_db.get(f"/api/v1/reader/pages/{site['page']['id']}/premium", headers={"Accept-Language": "en"})
    assert r.status_code == 503 and r.get_json()["error"] == "readers_unavailable"
    assert r.headers["Cache-Control"] == "private, no-store"
    assert without_db.get(url).data == played.data
