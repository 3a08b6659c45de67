"""nginx in front of the public side (issue 28): ``BAONHUNG_ACCEL_REDIRECT`` hands a checked artifact to nginx
(X-Accel-Redirect), and Debian's nginx with deploy/nginx-baonhung.conf.template in front of a real
``baonhung serve-public`` sends it with the headers the app sends, answers Range and If-None-Match, and proxies
recognize. The nginx test is skipped when nginx is not installed (``make deps-system`` installs it)."""
from __future__ import annotations

import http.client
import os
import subprocess
import sys
import time
from dataclasses import replace

import pytest

from builder.config import ConfigError, Settings
from tests.conftest import REPO
from tests.web.test_public import _photo_of, published  # noqa: F401 - the fixture: a published edition
from tests.web.test_serve import READY_POLL_S, _free_port

sys.path.insert(0, str(REPO / "deploy"))
import nginx_conf  # noqa: E402

SAME_HEADERS = ("Content-Type", "ETag", "Cache-Control", "Vary", "Access-Control-Allow-Origin",
                "Access-Control-Expose-Headers", "Cross-Origin-Resource-Policy", "X-Content-Type-Options",
                "Content-Encoding", "Referrer-Policy", "X-Frame-Options", "Permissions-Policy")


def _public_client(app, accel: str = ""):
    """A test client of the public app on the newsroom's data directory (the headers a public process sends)."""
    from viewer_api.app import create_public_app

    settings = replace(app.extensions["baonhung"].settings, readers_database_url="none", accel_redirect=accel)
    return create_public_app(settings, {"TESTING": True}).test_client()


def _artifacts(client, published) -> dict:
    page = client.get(f"/pub/pages/{published['page']['id']}/manifest.json").get_json()
    return {"video": page["media"][0]["url"], "marker": page["marker_url"], "lite": page["bundles"]["lite"]["url"]}


def test_accel_redirect_is_an_internal_location_or_nothing():
    assert Settings.from_env({}).accel_redirect == ""
    assert Settings.from_env({"BAONHUNG_ACCEL_REDIRECT": "/_store/"}).accel_redirect == "/_store/"
    for bad in ("_store", "/_store", "/../", "http://x/", "/a b/"):
        with pytest.raises(ConfigError):
            Settings.from_env({"BAONHUNG_ACCEL_REDIRECT": bad})


def test_with_accel_redirect_the_app_checks_the_artifact_and_names_its_file(app, published):
    client = _public_client(app)
    urls = _artifacts(client, published)
    plain = client.get(urls["video"])
    client = _public_client(app, nginx_conf.ACCEL_PREFIX)
    r = client.get(urls["video"])
    sha = urls["video"].rsplit("/", 1)[1].split(".")[0]
    assert r.status_code == 200 and r.data == b""
    assert r.headers["X-Accel-Redirect"] == f"/_store/{sha[:2]}/{sha[2:4]}/{sha}"
    for name in SAME_HEADERS:
        assert r.headers.get(name) == plain.headers.get(name), name
    # If-None-Match is answered by the app: nothing to send
    r = client.get(urls["video"], headers={"If-None-Match": f'"{sha}"'})
    assert r.status_code == 304 and "X-Accel-Redirect" not in r.headers and r.headers["ETag"] == f'"{sha}"'
    # the gzip copy of a compressible artifact is named, with its own ETag and Content-Encoding
    r = client.get(urls["marker"], headers={"Accept-Encoding": "gzip"})
    assert r.headers["Content-Encoding"] == "gzip" and r.headers["ETag"].endswith('-gz"')
    assert r.headers["X-Accel-Redirect"].startswith("/_store/") and sha not in r.headers["X-Accel-Redirect"]
    # every check stays with the app: another extension, an unknown blob
    assert client.get(urls["video"].replace(".mp4", ".json")).status_code == 404
    assert client.get(f"/pub/a/{'0' * 64}.mp4").status_code == 404
    # manifests (their content changes on publish) are sent by the app
    assert "X-Accel-Redirect" not in client.get(f"/pub/pages/{published['page']['id']}/manifest.json").headers


def _request(port: int, path: str, method="GET", body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


@pytest.mark.skipif(nginx_conf.nginx_binary() is None, reason="nginx is not installed (apt-get install nginx)")
def test_nginx_in_front_sends_artifacts_with_the_apps_headers_and_proxies_recognize(app, published, tmp_path):
    client = _public_client(app)  # what a public process sends without nginx
    data_dir = app.extensions["baonhung"].settings.data_dir
    port, nginx_port = _free_port(), _free_port()
    env = {"PATH": "/usr/bin:/bin", "BAONHUNG_DATA_DIR": str(data_dir), "BAONHUNG_READERS_DATABASE_URL": "none",
           "HOME": os.environ.get("HOME", "/tmp"), "BAONHUNG_ACCEL_REDIRECT": nginx_conf.ACCEL_PREFIX,
           "BAONHUNG_TRUSTED_PROXIES": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "builder.cli", "serve-public", "--port", str(port),
                             "--workers", "1", "--threads", "2"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    nginx = None
    try:
        nginx = nginx_conf.Nginx(tmp_path / "nginx", nginx_port, [f"127.0.0.1:{port}"], data_dir / "store")
        deadline = time.monotonic() + 60
        while True:
            try:
                if _request(nginx_port, "/pub/editions/1/manifest.json")[0] != 502:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "serve-public did not start"
            time.sleep(READY_POLL_S)
        urls = _artifacts(client, published)
        for url, headers in ((urls["video"], {}), (urls["lite"], {"Accept-Encoding": "gzip"}),
                             (urls["marker"], {"Accept-Encoding": "gzip"}), (urls["marker"], {})):
            expected = client.get(url, headers=headers)
            status, got, body = _request(nginx_port, url, headers=headers)
            assert status == 200 and body == expected.data, url
            assert int(got["content-length"]) == len(expected.data)
            for name in SAME_HEADERS:
                assert got.get(name.lower()) == expected.headers.get(name), (url, name, got, dict(expected.headers))
            assert "x-accel-redirect" not in got
        # Range and If-None-Match through nginx
        whole = client.get(urls["video"]).data
        status, got, body = _request(nginx_port, urls["video"], headers={"Range": "bytes=10-109"})
        assert status == 206 and body == whole[10:110] and got["content-range"] == f"bytes 10-109/{len(whole)}"
        assert got["etag"] == client.get(urls["video"]).headers["ETag"]
        status, got, body = _request(nginx_port, urls["video"], headers={"If-None-Match": got["etag"]})
        assert status == 304 and body == b""
        # the store itself is not reachable from outside, and the app's 404 stays its JSON
        sha = urls["video"].rsplit("/", 1)[1].split(".")[0]
        assert _request(nginx_port, f"/_store/{sha[:2]}/{sha[2:4]}/{sha}")[0] == 404
        status, got, body = _request(nginx_port, f"/pub/a/{'0' * 64}.mp4")
        assert status == 404 and b'"error"' in body
        # recognize is proxied
        photo, _ = _photo_of(21)
        status, _, body = _request(nginx_port, "/api/v1/recognize", "POST", photo, {"Content-Type": "image/jpeg"})
        assert status == 200 and f'"page_id":{published["page"]["id"]}'.encode() in body.replace(b" ", b"")
    finally:
        if nginx is not None:
            nginx.stop()
        proc.terminate()
        proc.communicate(timeout=30)


def test_without_an_events_upstream_events_go_with_everything_else():
    def directives(text):
        return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))

    text = directives(nginx_conf.render(REPO, "127.0.0.1:1", ["127.0.0.1:2"], REPO))
    assert "baonhung_events" not in text and "/api/v1/events" not in text and "@@" not in text
    text = nginx_conf.render(REPO, "127.0.0.1:1", ["127.0.0.1:2"], REPO, events=["127.0.0.1:3", "127.0.0.1:4"])
    assert "location = /api/v1/events" in text and "server 127.0.0.1:3;\n        server 127.0.0.1:4;" in text


def _serve_public(data_dir, port: int) -> subprocess.Popen:
    env = {"PATH": "/usr/bin:/bin", "BAONHUNG_DATA_DIR": str(data_dir), "BAONHUNG_READERS_DATABASE_URL": "none",
           "HOME": os.environ.get("HOME", "/tmp"), "BAONHUNG_TRUSTED_PROXIES": "1"}
    return subprocess.Popen([sys.executable, "-m", "builder.cli", "serve-public", "--port", str(port),
                             "--workers", "1", "--threads", "2"], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.skipif(nginx_conf.nginx_binary() is None, reason="nginx is not installed (apt-get install nginx)")
def test_nginx_sends_readership_events_to_a_public_process_of_their_own(app, published, tmp_path):
    """Issue 26/28: with an events upstream, POST /api/v1/events reaches that serve-public process and nothing else
    does: while it runs the app answers the events (its JSON refusal of an empty batch); once it is stopped, events
    get nginx's 502 while the other process goes on serving manifests and recognize."""
    data_dir = app.extensions["baonhung"].settings.data_dir
    port, events_port, nginx_port = _free_port(), _free_port(), _free_port()
    main, events = _serve_public(data_dir, port), _serve_public(data_dir, events_port)
    nginx = None
    manifest = f"/pub/editions/{published['edition']['id']}/manifest.json"
    try:
        nginx = nginx_conf.Nginx(tmp_path / "nginx", nginx_port, [f"127.0.0.1:{port}"], data_dir / "store",
                                 events=[f"127.0.0.1:{events_port}"])
        deadline = time.monotonic() + 90
        while True:
            try:
                up = _request(nginx_port, manifest)[0] == 200 and \
                    _request(nginx_port, "/api/v1/events", "POST", b"{}", {"Content-Type": "text/plain"})[0] != 502
            except OSError:
                up = False
            if up:
                break
            assert time.monotonic() < deadline, "serve-public did not start"
            time.sleep(READY_POLL_S)
        status, _, body = _request(nginx_port, "/api/v1/events", "POST", b"{}", {"Content-Type": "text/plain"})
        assert 400 <= status < 500 and b'"error"' in body, (status, body)
        events.terminate()
        events.wait(timeout=30)
        status, _, body = _request(nginx_port, "/api/v1/events", "POST", b"{}", {"Content-Type": "text/plain"})
        assert status == 502 and b'"error"' not in body  # nginx's own page: the events process is the only one
        assert _request(nginx_port, manifest)[0] == 200
        photo, _ = _photo_of(21)
        status, _, body = _request(nginx_port, "/api/v1/recognize", "POST", photo, {"Content-Type": "image/jpeg"})
        assert status == 200 and f'"page_id":{published["page"]["id"]}'.encode() in body.replace(b" ", b"")
    finally:
        if nginx is not None:
            nginx.stop()
        for proc in (main, events):
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=30)
