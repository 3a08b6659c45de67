"""Alembic: an empty database upgrades to head, matches the models, and downgrades back to empty — on SQLite
(the embedded default) and on PostgreSQL (make test's `--db postgresql` run; it starts a local server and sets
BAONHUNG_TEST_POSTGRES_URL)."""
import os

import pytest
from sqlalchemy import MetaData, create_engine, inspect

from builder.db import downgrade, upgrade
from builder.models import Base

PG_URL = os.environ.get("BAONHUNG_TEST_POSTGRES_URL")


@pytest.fixture
def empty_db(request, tmp_path, db_engine):
    """An empty database of the engine this run tests (make test's second run is the PostgreSQL one)."""
    if db_engine == "sqlite":
        yield f"sqlite:///{tmp_path / 'm.sqlite3'}"
        return
    if not PG_URL:
        pytest.skip("BAONHUNG_TEST_POSTGRES_URL not set (make test sets it)")
    url = request.getfixturevalue("pg_url")  # this module's own database (tests/conftest.py)
    engine = create_engine(url)
    meta = MetaData()
    meta.reflect(engine)  # start from an empty database: drop whatever an earlier test left
    meta.drop_all(engine)
    engine.dispose()
    yield url


@pytest.mark.xdist_group("postgres")
def test_upgrade_to_head_and_downgrade_to_base(empty_db):
    upgrade(empty_db)
    engine = create_engine(empty_db)
    tables = set(inspect(engine).get_table_names())
    assert set(Base.metadata.tables) <= tables and "alembic_version" in tables
    downgrade(empty_db, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()


@pytest.mark.xdist_group("postgres")
def test_head_schema_matches_the_models(empty_db):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    upgrade(empty_db)
    engine = create_engine(empty_db)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == []


@pytest.mark.xdist_group("postgres")
def test_authoring_and_publishing_work_on_postgresql(empty_db, tmp_path):
    if not empty_db.startswith("postgresql"):
        pytest.skip("the SQLite path is covered by every other test")
    from tests.conftest import make_app, png_bytes, user_with_token
    from tests.web.test_api import make_edition, make_page, make_publication

    app = make_app(tmp_path / "d", database_url=empty_db)
    token = user_with_token(app, "ed@example.vn", "editor")
    client = app.test_client()
    make_publication(client, token)
    edition = make_edition(client, token)
    make_page(client, token, edition["id"], png_bytes(620, 877, seed=4))
    headers = {"Authorization": f"Bearer {token}"}
    assert client.post(f"/api/v1/editions/{edition['id']}/submit", headers=headers).status_code == 200
    assert client.post(f"/api/v1/editions/{edition['id']}/publish", headers=headers).status_code == 202
    assert client.get(f"/pub/editions/{edition['id']}/manifest.json").status_code == 200
    app.extensions["baonhung"].engine.dispose()


@pytest.mark.xdist_group("postgres")
def test_pages_sharing_a_number_are_renumbered_when_the_constraint_comes(empty_db):
    """Migration 0003: pages the upload race numbered alike keep the lowest id at the number, the others move up."""
    from sqlalchemy import text

    upgrade(empty_db, "0002")
    engine = create_engine(empty_db)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO publications (id, name, slug, created_at) VALUES (1, 'B', 'b', '2026-12-01')"))
        conn.execute(text("INSERT INTO editions (id, publication_id, number, date, title, status, code, review_comment,"
                          " created_at, updated_at) VALUES (1, 1, 1, '2026-12-01', '', 'draft', 'AAAAAAA', '',"
                          " '2026-12-01', '2026-12-01')"))
        for page_id, number in ((1, 70), (2, 70), (3, 71), (4, 70)):
            conn.execute(text("INSERT INTO pages (id, edition_id, number, title, width_mm, height_mm, image_sha,"
                              " image_mime, image_width_px, image_height_px, code, rating, created_at, updated_at)"
                              " VALUES (:id, 1, :n, '', 297, 420, 'x', 'image/png', 10, 10, :code, '{}',"
                              " '2026-12-01', '2026-12-01')"), {"id": page_id, "n": number, "code": f"P{page_id}"})
    upgrade(empty_db)
    with engine.connect() as conn:
        numbers = dict(conn.execute(text("SELECT id, number FROM pages ORDER BY id")).fetchall())
    engine.dispose()
    assert numbers == {1: 70, 2: 72, 3: 71, 4: 73}


def test_migration_0003_keeps_every_overlay_of_the_pages_it_rebuilds(tmp_path):
    """SQLite rebuilds the pages table to add the constraint: the overlays that reference its rows must survive
    (migrations run with foreign keys off, so the rebuild's DROP TABLE cascades nowhere); PostgreSQL alters it."""
    from sqlalchemy import text

    from tests.conftest import admin_token, auth, make_app, png_bytes
    from tests.web.test_api import make_edition, make_page, make_publication

    data = tmp_path / "d"
    app = make_app(data)
    _, token = admin_token(app)
    client = app.test_client()
    make_publication(client, token)
    edition = make_edition(client, token)
    page = make_page(client, token, edition["id"], png_bytes(620, 877, seed=61))
    r = client.post(f"/api/v1/pages/{page['id']}/overlays", headers=auth(token),
                    json={"kind": "link", "url": "https://example.org", "x_mm": 5, "y_mm": 5, "width_mm": 20,
                          "height_mm": 20})
    assert r.status_code == 201
    app.extensions["baonhung"].engine.dispose()
    url = app.extensions["baonhung"].settings.database_url  # SQLite or PostgreSQL, as the run tests
    downgrade(url, "0002")
    upgrade(url)
    engine = create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM overlays")).scalar() == 1
        assert conn.execute(text("SELECT count(*) FROM pages")).scalar() == 1
    engine.dispose()
