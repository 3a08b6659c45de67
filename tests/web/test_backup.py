"""baonhung backup / restore (issues 25, 28): the whole state in one archive, taken while the server runs and
publishes, restored into an empty data directory (and database) where readers find the same pages. On SQLite, and on
PostgreSQL in make test's PostgreSQL run (pg_dump / pg_restore)."""
from __future__ import annotations

import tarfile
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from builder.backup import BackupError, backup, restore
from tests.conftest import auth, make_app, png_bytes, test_database, upload  # noqa: F401
from tests.web.test_api import make_edition, make_page, make_publication
from tests.web.test_public import _photo_of, published  # noqa: F401 - the fixture


def _settings(app, data_dir: Path | None = None):
    """The app's settings, or the same on another data directory and its empty database (this run's engine)."""
    s = app.extensions["baonhung"].settings
    if data_dir is None:
        return s
    return replace(s, data_dir=data_dir, database_url=test_database(data_dir, migrated=False))


def _tables(url: str) -> list[str]:
    from sqlalchemy import create_engine, inspect

    engine = create_engine(url)
    try:
        return inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_backup_and_restore_round_trip_with_readers_finding_the_same_page(app, client, users, published, tmp_path,
                                                                          db_engine):
    archive = tmp_path / "b.tar.gz"
    info = backup(_settings(app), archive)
    assert info["database"] == db_engine and info["blobs"] > 5 and "catalog.json" in info["published"]
    with tarfile.open(archive) as tar:
        assert {"database.sqlite3": "sqlite", "database.pgdump": "postgresql"}[
            next(n for n in tar.getnames() if n.startswith("database."))] == db_engine
    target = tmp_path / "restored"
    restore(_settings(app, target), archive)
    again = make_app(target).test_client()
    photo, _ = _photo_of(21)
    match = again.post("/api/v1/recognize", data=photo, content_type="image/jpeg").get_json()["match"]
    assert match and match["page_id"] == published["page"]["id"]
    manifest = again.get(f"/pub/pages/{published['page']['id']}/manifest.json").get_json()
    assert again.get(manifest["bundles"]["full"]["url"]).status_code == 200
    token = users.tokens["editor"]  # accounts and their tokens come back too
    body = again.get(f"/api/v1/editions/{published['edition']['id']}", headers=auth(token)).get_json()
    assert body["published_version"] == 1


def test_restore_refuses_a_data_directory_with_content_and_odd_archives(app, client, users, published, tmp_path):
    archive = tmp_path / "b.tar.gz"
    backup(_settings(app), archive)
    with pytest.raises(BackupError, match="already holds content"):
        restore(_settings(app), archive)
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        tar.add(archive, arcname="../../etc/cron.d/x")
    empty = _settings(app, tmp_path / "empty")
    with pytest.raises(BackupError, match="refusing"):
        restore(empty, evil)
    assert not (tmp_path / "empty" / "baonhung.sqlite3").exists()
    assert empty.database_url.startswith("sqlite") or _tables(empty.database_url) == []  # PostgreSQL: still empty
    with pytest.raises(BackupError, match="not a backup"):
        (tmp_path / "junk.tar.gz").write_bytes(b"not a tar")
        restore(_settings(app, tmp_path / "empty2"), tmp_path / "junk.tar.gz")


def test_a_backup_taken_while_an_edition_publishes_is_consistent(app, client, users, tmp_path, db_engine):
    """Whichever side of the publish the backup falls on, its catalog names only blobs it holds and its database
    agrees with its catalog."""
    import json
    import sqlite3
    import subprocess

    from sqlalchemy import create_engine, text

    designer, editor = users.tokens["designer"], users.tokens["editor"]
    make_publication(client, designer)
    edition = make_edition(client, designer)
    for seed in (31, 32):
        make_page(client, designer, edition["id"], png_bytes(seed=seed))
    client.post(f"/api/v1/editions/{edition['id']}/submit", headers=auth(designer))
    publishing = threading.Thread(target=lambda: app.test_client().post(
        f"/api/v1/editions/{edition['id']}/publish", headers=auth(editor)))
    publishing.start()
    archive = tmp_path / "during.tar.gz"
    backup(_settings(app), archive)
    publishing.join()
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        catalog = json.loads(tar.extractfile("published/catalog.json").read()) if "published/catalog.json" in names \
            else {"edition_artifacts": {}, "index": None}
        tar.extract("database.sqlite3" if db_engine == "sqlite" else "database.pgdump", tmp_path, filter="data")
    blobs = {n.rsplit("/", 1)[1] for n in names if n.startswith("store/")}
    referenced = {sha for shas in catalog.get("edition_artifacts", {}).values() for sha in shas}
    assert referenced <= blobs
    if catalog.get("index"):
        assert f"published/{catalog['index']}" in names
    if db_engine == "sqlite":
        versions = sqlite3.connect(tmp_path / "database.sqlite3").execute(
            "SELECT count(*) FROM published_versions").fetchone()[0]
    else:  # the dump, restored into an empty database of its own
        url = test_database(tmp_path / "check", migrated=False)
        subprocess.run(["pg_restore", "--no-owner", f"--dbname={url.replace('+psycopg', '')}",
                        str(tmp_path / "database.pgdump")], check=True, capture_output=True, timeout=120)
        engine = create_engine(url)
        with engine.connect() as conn:
            versions = conn.execute(text("SELECT count(*) FROM published_versions")).scalar()
        engine.dispose()
    assert versions == (1 if str(edition["id"]) in catalog.get("editions", {}) else 0)
