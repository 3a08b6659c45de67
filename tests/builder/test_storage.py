"""The asset store's behaviour, the same suite on both backends: local disk and S3 against a real S3-compatible
server (OpenStack Swift with s3api, started by scripts/test-swift.sh; ``make test`` sets BAONHUNG_TEST_S3_URL, and
the S3 cases skip without it). No mock library anywhere."""
from __future__ import annotations

import os
import re
import time
import uuid
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from flask import Flask

from builder.storage import AssetStore, LocalDiskStore, StorageError, sha256_bytes

ROOT = Path(__file__).resolve().parents[2]
S3_TEST_BUCKET = "baonhung-test"


def s3_options(prefix: str) -> dict:
    """S3Store options for the test server named by BAONHUNG_TEST_S3_URL (http://ACCESS:SECRET@host:port/), with
    objects under ``prefix`` so tests never see each other's blobs; skips when the variable is not set."""
    url = os.environ.get("BAONHUNG_TEST_S3_URL")
    if not url:
        pytest.skip("BAONHUNG_TEST_S3_URL not set (make test starts Swift: scripts/test-swift.sh)")
    parts = urlsplit(url)
    return {"endpoint": f"{parts.scheme}://{parts.hostname}:{parts.port}", "bucket": S3_TEST_BUCKET,
            "region": "us-east-1", "access_key": unquote(parts.username or ""),
            "secret_key": unquote(parts.password or ""), "prefix": prefix}


def s3_store(prefix: str | None = None):
    from builder.storage_s3 import S3Store

    store = S3Store(**s3_options(prefix or f"t-{uuid.uuid4().hex[:12]}/"))
    store.create_bucket()
    return store


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path) -> AssetStore:
    if request.param == "local":
        return LocalDiskStore(tmp_path / "store")
    return s3_store()


PAYLOAD = bytes(range(256)) * 40  # 10 240 bytes, every byte value, so a wrong offset shows


def test_put_read_exists_size_and_the_key_is_the_content_digest(store, tmp_path):
    key = store.put_bytes(PAYLOAD)
    assert key == sha256_bytes(PAYLOAD)
    assert store.exists(key) and store.size(key) == len(PAYLOAD) and store.read(key) == PAYLOAD
    src = tmp_path / "clip.bin"
    src.write_bytes(PAYLOAD[::-1])
    key2 = store.put_file(src)
    assert key2 == sha256_bytes(PAYLOAD[::-1]) and store.read(key2) == PAYLOAD[::-1]
    assert abs(store.modified(key) - time.time()) < 120  # the server's clock, on loopback


def test_a_second_write_of_the_same_blob_is_harmless(store):
    assert store.put_bytes(b"same bytes") == store.put_bytes(b"same bytes")
    assert sorted(store.list()) == [sha256_bytes(b"same bytes")]


def test_open_gives_a_seekable_stream(store):
    key = store.put_bytes(PAYLOAD)
    with store.open(key) as fh:
        assert fh.read(10) == PAYLOAD[:10]
        fh.seek(5000)
        assert fh.tell() == 5000 and fh.read(7) == PAYLOAD[5000:5007]
        fh.seek(-3, os.SEEK_END)
        assert fh.read() == PAYLOAD[-3:]
        fh.seek(0)
        assert fh.read() == PAYLOAD


def test_missing_and_malformed_keys(store):
    missing = sha256_bytes(b"never stored")
    assert not store.exists(missing) and not store.exists("../../etc/passwd") and not store.exists("")
    for call in (store.read, store.size, store.open, store.modified):
        with pytest.raises(StorageError):
            call(missing)
    with pytest.raises(StorageError):
        store.read("../" + "a" * 61)
    with pytest.raises(StorageError):
        store.send(missing, "image/png")
    store.delete(missing)  # deleting what is not there is not an error


def test_delete_and_list(store):
    keys = {store.put_bytes(f"blob {i}".encode()) for i in range(5)}
    assert set(store.list()) == keys
    gone = sorted(keys)[0]
    store.delete(gone)
    assert not store.exists(gone) and set(store.list()) == keys - {gone}


def test_list_pages_through_more_keys_than_one_answer_holds(store, monkeypatch):
    if isinstance(store, LocalDiskStore):
        pytest.skip("paging is an S3 matter")
    import builder.storage_s3

    monkeypatch.setattr(builder.storage_s3, "LIST_PAGE", 7)  # as 1000 (S3's maximum) with 143x fewer uploads
    keys = {store.put_bytes(f"blob {i}".encode()) for i in range(23)}
    assert set(store.list()) == keys


def test_local_copy_is_a_readable_file_gone_after_use_on_s3(store):
    key = store.put_bytes(PAYLOAD)
    with store.local_copy(key) as path:
        assert Path(path).read_bytes() == PAYLOAD
    if isinstance(store, LocalDiskStore):
        assert path.exists()  # the blob itself, not a copy
    else:
        assert not path.exists()  # a temporary file, removed
    with pytest.raises(StorageError):
        with store.local_copy(sha256_bytes(b"never stored")):
            pass


def _web(store) -> Flask:
    """A one-route app serving ``store.send`` through the public side's helper, as the real endpoints do."""
    from viewer_api.public import send_blob

    app = Flask("store_send_test")

    @app.get("/b/<key>")
    def blob(key):
        return send_blob(store.send(key, "video/mp4", etag=f"{key}-x", cache_control="public, max-age=60"))

    return app


def test_send_answers_whole_ranged_conditional_and_unsatisfiable_requests(store):
    key = store.put_bytes(PAYLOAD)
    client = _web(store).test_client()
    r = client.get(f"/b/{key}")
    assert r.status_code == 200 and r.data == PAYLOAD and r.headers["Content-Length"] == str(len(PAYLOAD))
    assert r.headers["ETag"] == f'"{key}-x"' and r.headers["Accept-Ranges"] == "bytes"
    assert r.headers["Cache-Control"] == "public, max-age=60" and r.mimetype == "video/mp4"
    r = client.get(f"/b/{key}", headers={"Range": "bytes=1000-1999"})
    assert r.status_code == 206 and r.data == PAYLOAD[1000:2000]
    assert r.headers["Content-Range"] == f"bytes 1000-1999/{len(PAYLOAD)}" and r.headers["Content-Length"] == "1000"
    r = client.get(f"/b/{key}", headers={"Range": "bytes=-100"})
    assert r.status_code == 206 and r.data == PAYLOAD[-100:]
    r = client.get(f"/b/{key}", headers={"Range": "bytes=10000-"})
    assert r.status_code == 206 and r.data == PAYLOAD[10000:]
    r = client.get(f"/b/{key}", headers={"If-None-Match": f'"{key}-x"'})
    assert r.status_code == 304 and r.data == b""
    r = client.get(f"/b/{key}", headers={"Range": f"bytes={len(PAYLOAD) + 5}-"})
    assert r.status_code == 416


def test_a_304_reads_nothing_from_the_store(store):
    key = store.put_bytes(PAYLOAD)
    opened = []
    real_send = store.send

    def counting_send(k, mime, **kw):
        blob = real_send(k, mime, **kw)
        from dataclasses import replace

        return replace(blob, open=lambda: opened.append(k) or blob.open())

    store.send = counting_send
    client = _web(store).test_client()
    assert client.get(f"/b/{key}", headers={"If-None-Match": f'"{key}-x"'}).status_code == 304
    assert opened == []
    assert client.get(f"/b/{key}").data == PAYLOAD and opened == [key]


def test_sweep_removes_half_written_files_on_disk_and_has_none_on_s3(store):
    key = store.put_bytes(PAYLOAD)
    if isinstance(store, LocalDiskStore):
        leftover = store.root / key[:2] / key[2:4] / ".tmp-killed"
        leftover.write_bytes(b"half")
        assert store.sweep_temporaries() == 1 and not leftover.exists()
    else:
        assert store.sweep_temporaries() == 0
    assert list(store.list()) == [key]


def test_no_caller_outside_the_store_touches_a_blob_path():
    """The store's interface has no path(); no product code calls .path( on anything (a local path leaking out of
    the store is what kept S3 out)."""
    assert not hasattr(AssetStore, "path") and not hasattr(LocalDiskStore, "path")
    offenders = []
    for package in ("builder", "viewer_api", "markers", "bench", "scripts"):
        for source in (ROOT / package).rglob("*.py"):
            for n, line in enumerate(source.read_text(encoding="utf-8").splitlines(), 1):
                if re.search(r"\.path\(", line) and "os.path(" not in line:
                    offenders.append(f"{source.relative_to(ROOT)}:{n}: {line.strip()}")
    assert offenders == []


def test_settings_choose_and_check_the_s3_store(tmp_path):
    from builder.config import ConfigError, Settings
    from builder.storage import store_from_settings

    base = {"BAONHUNG_DATA_DIR": str(tmp_path)}
    assert isinstance(store_from_settings(Settings.from_env(base)), LocalDiskStore)
    s3 = {**base, "BAONHUNG_STORAGE": "s3", "BAONHUNG_S3_ENDPOINT": "http://127.0.0.1:9/",
          "BAONHUNG_S3_BUCKET": "bao-nhung", "BAONHUNG_S3_REGION": "ap-southeast-1",
          "BAONHUNG_S3_ACCESS_KEY": "ak", "BAONHUNG_S3_SECRET_KEY": "sk"}
    settings = Settings.from_env(s3)
    assert (settings.s3_endpoint, settings.s3_bucket, settings.s3_region, settings.s3_prefix) == (
        "http://127.0.0.1:9", "bao-nhung", "ap-southeast-1", "blobs/")
    built = store_from_settings(settings)
    assert type(built).__name__ == "S3Store" and built.bucket == "bao-nhung"
    for bad, name in (({"BAONHUNG_STORAGE": "ftp"}, "BAONHUNG_STORAGE"),
                      ({"BAONHUNG_S3_BUCKET": ""}, "BAONHUNG_S3_BUCKET"),
                      ({"BAONHUNG_S3_BUCKET": "Bad_Bucket"}, "BAONHUNG_S3_BUCKET"),
                      ({"BAONHUNG_S3_ENDPOINT": "ftp://host"}, "BAONHUNG_S3_ENDPOINT"),
                      ({"BAONHUNG_S3_ENDPOINT": "http://host/path"}, "BAONHUNG_S3_ENDPOINT"),
                      ({"BAONHUNG_S3_REGION": "Viet Nam"}, "BAONHUNG_S3_REGION"),
                      ({"BAONHUNG_S3_PREFIX": "../x/"}, "BAONHUNG_S3_PREFIX"),
                      ({"BAONHUNG_S3_SECRET_KEY": ""}, "BAONHUNG_S3_ACCESS_KEY")):
        with pytest.raises(ConfigError, match=name):
            Settings.from_env({**s3, **bad})


def test_an_unreachable_s3_server_is_a_storage_error_not_a_hang(tmp_path):
    from builder.storage_s3 import S3Store

    dead = S3Store(endpoint="http://127.0.0.1:9", bucket="bao-nhung", access_key="ak", secret_key="sk")
    started = time.monotonic()
    with pytest.raises(StorageError):
        dead.put_bytes(b"x")
    with pytest.raises(StorageError):
        list(dead.list())
    assert time.monotonic() - started < 60


def test_a_blob_deleted_by_another_process_is_written_again(store):
    """A writer must not trust what it saw earlier: garbage collection in another process may have deleted the blob
    since (on S3 this process caches sizes; a put asks the bucket afresh)."""
    key = store.put_bytes(PAYLOAD)
    assert store.exists(key)
    other = LocalDiskStore(store.root) if isinstance(store, LocalDiskStore) else s3_store(store.prefix)
    other.delete(key)
    assert store.put_bytes(PAYLOAD) == key
    assert other.read(key) == PAYLOAD


GUNICORN_APP = '''
import json, os
from flask import Flask
from builder.storage import make_store
from viewer_api.public import send_blob

store = make_store(os.environ["T_BACKEND"], **json.loads(os.environ["T_OPTIONS"]))
app = Flask("t")

@app.get("/b/<key>")
def blob(key):
    return send_blob(store.send(key, "video/mp4", etag=key, cache_control="public, max-age=60"))
'''


def test_a_real_gunicorn_sends_whole_and_ranged_blobs(store, tmp_path):
    """What the test client does not exercise: gunicorn's file wrapper (sendfile() for a local blob) and the S3
    stream through a real socket."""
    import http.client
    import json
    import socket
    import subprocess
    import sys

    key = store.put_bytes(PAYLOAD * 50)  # 512 000 bytes: several socket writes
    (tmp_path / "tapp.py").write_text(GUNICORN_APP)
    if isinstance(store, LocalDiskStore):
        backend, options = "local", {"root": str(store.root)}
    else:
        backend, options = "s3", s3_options(store.prefix)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "T_BACKEND": backend, "T_OPTIONS": json.dumps(options), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "--chdir", str(tmp_path), "-b", f"127.0.0.1:{port}",
                             "-w", "1", "tapp:app"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                conn.request("GET", f"/b/{key}")
                r = conn.getresponse()
                break
            except ConnectionRefusedError:
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.2)
        assert r.status == 200 and r.read() == PAYLOAD * 50
        conn.request("GET", f"/b/{key}", headers={"Range": "bytes=300000-300099"})
        r = conn.getresponse()
        assert r.status == 206 and r.read() == (PAYLOAD * 50)[300000:300100]
        conn.request("GET", f"/b/{key}", headers={"If-None-Match": f'"{key}"'})
        r = conn.getresponse()
        assert r.status == 304 and r.read() == b""
        conn.close()
    finally:
        proc.terminate()
        proc.wait(10)
