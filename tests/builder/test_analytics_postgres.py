"""The events store on PostgreSQL (issue 26): the public side's role can INSERT into events and nothing else, and
the query layer and rollups give the same numbers there as on SQLite. Needs BAONHUNG_TEST_POSTGRES_URL (make test
starts a local server and sets it)."""
from __future__ import annotations

import datetime as dt
import os

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ProgrammingError

from builder import analytics as an
from tests.builder.test_analytics import DAY, EDITIONS, fixture_rows
from viewer_api import eventstore as es

PG_URL = os.environ.get("BAONHUNG_TEST_POSTGRES_URL")
# roles are the server's, not a database's: one per pytest worker
ROLE, PASSWORD = f"baonhung_ingest_test_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}", "ingest-only-pw"
pytestmark = [pytest.mark.xdist_group("postgres"),
              pytest.mark.skipif(not PG_URL, reason="BAONHUNG_TEST_POSTGRES_URL not set (make test sets it)")]


@pytest.fixture
def pg(pg_url):
    owner = create_engine(pg_url)
    es.metadata.drop_all(owner)
    es.create_schema(owner)
    with owner.begin() as conn:
        for stmt in es.ingest_role_sql(ROLE, PASSWORD):
            conn.execute(text(stmt))
    ingest = create_engine(make_url(pg_url).set(username=ROLE, password=PASSWORD))
    yield owner, ingest
    ingest.dispose()
    es.metadata.drop_all(owner)
    with owner.begin() as conn:
        conn.execute(text(f"REVOKE ALL ON SCHEMA public FROM {ROLE}"))
        conn.execute(text(f"DROP ROLE {ROLE}"))
    owner.dispose()


@pytest.mark.parametrize("statement", [
    "SELECT count(*) FROM events",
    "SELECT t FROM events WHERE session = 1",
    "UPDATE events SET n = 0",
    "DELETE FROM events",
    "TRUNCATE events",
    "SELECT count(*) FROM event_daily",
    "INSERT INTO event_daily VALUES (0, 0, 0, 0, 1, 1, 1, 1)",
    "SELECT count(*) FROM event_rolled_days",
    "CREATE TABLE sneaky (x int)",
])
def test_the_ingest_role_can_append_events_and_do_nothing_else(pg, statement):
    owner, ingest = pg
    es.EventWriter(ingest).append(fixture_rows()[:3])  # appending works
    with owner.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM events")).scalar() == 3
    with pytest.raises(ProgrammingError, match="permission denied|must be owner"):
        with ingest.begin() as conn:
            conn.execute(text(statement))
    with owner.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM events")).scalar() == 3


def test_reports_and_rollups_on_postgresql_equal_the_hand_computed_fixture(pg):
    owner, ingest = pg
    es.EventWriter(ingest).append(fixture_rows())
    reader = an.EventsReader(owner, EDITIONS)
    before = an.report(reader, an.Scope(edition_id=10), DAY, DAY)
    assert (before.sessions, before.unique_readers, before.recognized, before.ttr_median_ms) == (2, 2, 2, 1000)
    assert an.report(reader, an.Scope(publication_id=1), DAY, DAY).unique_readers == 2
    for scope in (an.Scope(1, 10), an.Scope(1), an.Scope()):  # one scan of the raw part, the same numbers
        dash = an.dashboard(reader, scope, DAY, DAY)
        assert (dash.report, dash.children, dash.days) == (an.report(reader, scope, DAY, DAY),
                                                           an.breakdown(reader, scope, DAY, DAY),
                                                           an.daily_series(reader, scope, DAY, DAY))
    assert [r.id for r in an.dashboard(reader, an.Scope(1, 10), DAY, DAY).children] == [100, 101]
    an.rollup(reader, DAY + dt.timedelta(days=10), retention_days=8)
    with owner.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM events")).scalar() == 0
    assert an.report(reader, an.Scope(edition_id=10), DAY, DAY) == before
    assert an.heatmap(reader, 100, DAY, DAY, 297, 420, 10).cells[0][1] == 2
