"""analytics.top_pages (issue 26, the dashboard's "top pages"): the pages of a whole publication or of the site in
one read, the same numbers as an edition's breakdown, before and after the rollup."""
from __future__ import annotations

import datetime as dt

import pytest

from builder import analytics as an
from tests.builder.test_analytics import DAY, reader  # noqa: F401  (the hand-computed fixture's store)


def test_top_pages_of_an_edition_are_its_breakdown(reader):  # noqa: F811
    scope = an.Scope(1, 10)
    assert an.top_pages(reader, scope, DAY, DAY) == an.breakdown(reader, scope, DAY, DAY)


def test_top_pages_span_the_editions_of_a_publication_and_the_site(reader):  # noqa: F811
    pub = an.top_pages(reader, an.Scope(1), DAY, DAY)
    assert [(r.level, r.id, r.sessions) for r in pub] == [("page", 100, 1), ("page", 101, 1), ("page", 110, 1)]
    assert (pub[0].dwell_ms, pub[0].links_opened, pub[0].aim_points) == (5000, 1, 2)
    assert (pub[1].media_25, pub[1].media_100, pub[1].useful) == (1, 1, 1)
    site = an.top_pages(reader, an.Scope(), DAY, DAY, limit=2)
    assert [r.id for r in site] == [100, 101]
    assert [r.id for r in an.top_pages(reader, an.Scope(), DAY, DAY)] == [100, 101, 110, 200]


def test_top_pages_are_the_same_after_the_rollup(reader):  # noqa: F811
    before = an.top_pages(reader, an.Scope(), DAY, DAY)
    an.rollup(reader, DAY + dt.timedelta(days=400), retention_days=8)
    assert an.top_pages(reader, an.Scope(), DAY, DAY) == before


@pytest.mark.parametrize("scope, limit", [(an.Scope(1, 10, 100), 10), (an.Scope(1, 10, 100, 1000), 10),
                                          (an.Scope(), 0), (an.Scope(), 101)])
def test_top_pages_refuse_a_page_scope_and_a_limit_out_of_range(reader, scope, limit):  # noqa: F811
    with pytest.raises(an.AnalyticsError):
        an.top_pages(reader, scope, DAY, DAY, limit)
