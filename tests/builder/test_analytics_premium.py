"""Premium overlays in the readership numbers (issues 26 and 27): teasers shown, lock taps and codes redeemed after a
lock tap in the same session, per site / publication / edition / page / overlay, equal a hand-computed fixture before
and after the rollup, and travel in the CSV."""
from __future__ import annotations

import csv
import datetime as dt
import io

import pytest

from builder import analytics as an
from tests.builder.test_analytics import DAY, EDITIONS, PHONE, at
from viewer_api import eventstore as es

T = es.EVENT_TYPES


def premium_rows() -> list[es.EventRow]:
    """Edition 10 (publication 1): page 100 with premium overlays 1005 and 1006, page 101 with 1010; edition 20
    (publication 2): page 200 with 2005. The redeemed event names the overlay whose lock was tapped last (k = 1)."""
    R = es.EventRow

    def s(n):
        return dict(visitor=100 + n, session=n, ctx=PHONE)

    imp, tap, red = T["premium_impression"], T["premium_lock_tap"], T["premium_redeemed"]
    return [
        # session 1: two teasers on page 100, the lock of 1005 tapped twice, then a code redeemed
        R(at(8, 0), imp, 10, 100, 1005, **s(1)), R(at(8, 0), imp, 10, 100, 1006, **s(1)),
        R(at(8, 1), tap, 10, 100, 1005, **s(1)), R(at(8, 2), tap, 10, 100, 1005, **s(1)),
        R(at(8, 5), red, 10, 100, 1005, **s(1), k=1),
        # session 2: a teaser of 1005, the lock of 1006 tapped, nothing redeemed
        R(at(9, 0), imp, 10, 100, 1005, **s(2)), R(at(9, 1), tap, 10, 100, 1006, **s(2)),
        # session 3: page 101, teaser, tap, redeemed
        R(at(10, 0), imp, 10, 101, 1010, **s(3)), R(at(10, 1), tap, 10, 101, 1010, **s(3)),
        R(at(10, 3), red, 10, 101, 1010, **s(3), k=1),
        # session 4: a code redeemed without any lock tap (no page: the site's number only)
        R(at(11, 0), red, None, None, None, **s(4), k=0),
        # session 5: publication 2, a teaser only
        R(at(12, 0), imp, 20, 200, 2005, **s(5)),
    ]


@pytest.fixture
def reader(tmp_path):
    engine = es.make_events_engine(f"sqlite:///{tmp_path / 'events.sqlite3'}")
    es.create_schema(engine)
    es.EventWriter(engine).append(premium_rows())
    yield an.EventsReader(engine, EDITIONS)
    engine.dispose()


def _premium(reader, scope):
    return an.report(reader, scope, DAY, DAY).premium


def _numbers(reader):
    return {
        "site": _premium(reader, an.Scope()),
        "pub1": _premium(reader, an.Scope(publication_id=1)),
        "pub2": _premium(reader, an.Scope(publication_id=2)),
        "edition10": _premium(reader, an.Scope(1, 10)),
        "page100": _premium(reader, an.Scope(1, 10, 100)),
        "overlay1006": _premium(reader, an.Scope(1, 10, 100, 1006)),
        "pages": [(r.id, r.premium_impressions, r.premium_lock_taps, r.premium_redeemed)
                  for r in an.breakdown(reader, an.Scope(1, 10), DAY, DAY)],
        "overlays": sorted((r.id, r.premium_impressions, r.premium_lock_taps, r.premium_redeemed)
                           for r in an.breakdown(reader, an.Scope(1, 10, 100), DAY, DAY)),
        "top": [(r.id, r.premium_impressions) for r in an.top_pages(reader, an.Scope(), DAY, DAY)],
    }


EXPECTED = {
    "site": {"impressions": 5, "lock_taps": 4, "redeemed_after_lock_tap": 2, "redeemed": 3,
             "lock_tap_rate": 0.8, "redemption_rate": 0.5},
    "pub1": {"impressions": 4, "lock_taps": 4, "redeemed_after_lock_tap": 2, "redeemed": 2,
             "lock_tap_rate": 1.0, "redemption_rate": 0.5},
    "pub2": {"impressions": 1, "lock_taps": 0, "redeemed_after_lock_tap": 0, "redeemed": 0,
             "lock_tap_rate": 0.0, "redemption_rate": None},
    "edition10": {"impressions": 4, "lock_taps": 4, "redeemed_after_lock_tap": 2, "redeemed": 2,
                  "lock_tap_rate": 1.0, "redemption_rate": 0.5},
    "page100": {"impressions": 3, "lock_taps": 3, "redeemed_after_lock_tap": 1, "redeemed": 1,
                "lock_tap_rate": 1.0, "redemption_rate": 0.3333},
    "overlay1006": {"impressions": 1, "lock_taps": 1, "redeemed_after_lock_tap": 0, "redeemed": 0,
                    "lock_tap_rate": 1.0, "redemption_rate": 0.0},
    # sessions: page 100 had 2, page 101 had 1
    "pages": [(100, 3, 3, 1), (101, 1, 1, 1)],
    "overlays": [(1005, 2, 2, 1), (1006, 1, 1, 0)],
    "top": [(100, 3), (101, 1), (200, 1)],
}


def test_premium_numbers_equal_the_hand_computed_fixture(reader):
    assert _numbers(reader) == EXPECTED


def test_premium_numbers_are_the_same_after_the_rollup_and_without_the_raw_events(reader):
    an.rollup(reader, DAY + dt.timedelta(days=10), retention_days=90)
    assert _numbers(reader) == EXPECTED
    result = an.rollup(reader, DAY + dt.timedelta(days=10), retention_days=8)
    assert result.raw_deleted == len(premium_rows())
    assert _numbers(reader) == EXPECTED


@pytest.mark.parametrize("lang, heads", [("vi", ("Lượt xem thử (trả phí)", "Chạm ổ khóa", "Đổi mã sau khi chạm khóa")),
                                         ("en", ("Premium teasers shown", "Lock taps", "Redeemed after a lock tap"))])
def test_the_csv_carries_the_premium_columns(reader, lang, heads):
    scope = an.Scope(1, 10, 100)
    data = an.report_csv(an.report(reader, scope, DAY, DAY), an.breakdown(reader, scope, DAY, DAY),
                         an.daily_series(reader, scope, DAY, DAY), lang)
    table = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    assert [tuple(int(r[h]) for h in heads) for r in table[:3]] == [(3, 3, 1), (2, 2, 1), (1, 1, 0)]
