"""Premium overlays in the readership dashboard and its JSON / CSV (issues 26 and 27): teasers, lock taps and
redemptions after a lock tap equal a hand-computed fixture, in Vietnamese and English."""
from __future__ import annotations

import csv
import datetime as dt
import io
import re

import pytest

from tests.web.test_analytics_dashboard import hbar_values, signed_in, site  # noqa: F401 - the fixture
from tests.conftest import auth
from viewer_api import eventstore as es

DAY = dt.date(2026, 6, 2)  # a day of its own: the dashboard fixture's sessions are today's
RANGE = f"from={DAY.isoformat()}&to={DAY.isoformat()}"


@pytest.fixture(scope="module")
def premium_site(site):  # noqa: F811
    """Rows as the ingest writes them for the fixture page's link and audio overlays treated as premium ones:
    session 1 sees both teasers, taps the audio's lock twice and redeems; session 2 sees the audio's teaser and
    taps the link's lock; session 3 redeems without a lock tap. Hand-computed: impressions 3, lock taps 3
    (tap rate 100 %), redeemed after a lock tap 1 (1 of 3 taps: 33,3 %), redeemed in all 2 (site only)."""
    from builder import analytics as an

    engine = an._engine_for(site["app"].extensions["baonhung"].settings)
    t0 = es.day_start_ms(es.day_of_date(DAY)) + 10 * es.HOUR_MS
    e, p, link, audio = site["edition"], site["page"], site["link"], site["audio"]
    T = es.EVENT_TYPES

    def row(dt_ms, typ, session, overlay=None, k=None):
        return es.EventRow(t0 + dt_ms, T[typ], e if overlay else None, p if overlay else None, overlay,
                           900 + session, session, 0, k)

    es.EventWriter(engine).append([
        row(0, "premium_impression", 1, link), row(0, "premium_impression", 1, audio),
        row(1000, "premium_lock_tap", 1, audio), row(2000, "premium_lock_tap", 1, audio),
        row(9000, "premium_redeemed", 1, audio, k=1),
        row(60_000, "premium_impression", 2, audio), row(61_000, "premium_lock_tap", 2, link),
        row(120_000, "premium_redeemed", 3, k=0),
    ])
    return site


def test_the_edition_dashboard_shows_the_premium_numbers(premium_site):
    client = signed_in(premium_site, "bientap@toasoan.vn")
    page = client.get(f"/analytics/editions/{premium_site['edition']}?{RANGE}").get_data(as_text=True)
    assert hbar_values(page, "premium") == [("Lượt xem thử", "3"), ("Lượt chạm ổ khóa", "3 · 100%"),
                                            ("Đổi mã sau khi chạm khóa", "1 · 33,3%")]
    row = re.search(rf'<tr data-child="{premium_site["page"]}">(.*?)</tr>', page, re.S).group(1)
    assert re.search(r'data-col="premium">3 / 3 / 1<', row)
    en = client.get(f"/analytics/pages/{premium_site['page']}?{RANGE}&lang=en").get_data(as_text=True)
    assert hbar_values(en, "premium") == [("Teasers shown", "3"), ("Lock taps", "3 · 100%"),
                                          ("Codes redeemed after a lock tap", "1 · 33.3%")]
    overlays = {int(i): n for i, n in re.findall(r'<tr data-child="(\d+)">.*?data-col="premium">([^<]*)<', en, re.S)}
    assert overlays == {premium_site["link"]: "1 / 1 / 0", premium_site["audio"]: "2 / 2 / 1"}
    site_page = client.get(f"/analytics?{RANGE}&lang=vi").get_data(as_text=True)
    assert "Tất cả mã đã đổi trong trình xem, dù có chạm khóa hay không: 2." in site_page


def test_a_range_without_premium_events_shows_zeros_and_no_premium_column(premium_site):
    client = signed_in(premium_site, "bientap@toasoan.vn")
    page = client.get(f"/analytics/editions/{premium_site['edition']}?from=2021-01-01&to=2021-01-02")
    html = page.get_data(as_text=True)
    assert hbar_values(html, "premium")[0] == ("Lượt xem thử", "0") and 'data-col="premium"' not in html


def test_the_json_api_and_the_csv_carry_the_premium_numbers(premium_site):
    client = premium_site["app"].test_client()
    token = premium_site["token"]
    r = client.get(f"/api/v1/analytics/pages/{premium_site['page']}?{RANGE}", headers=auth(token))
    body = r.get_json()
    assert body["report"]["premium"] == {"impressions": 3, "lock_taps": 3, "redeemed_after_lock_tap": 1,
                                         "redeemed": 1, "lock_tap_rate": 1.0, "redemption_rate": 0.3333}
    assert {c["id"]: (c["premium_impressions"], c["premium_lock_taps"], c["premium_redeemed"])
            for c in body["children"]} == {premium_site["link"]: (1, 1, 0), premium_site["audio"]: (2, 2, 1)}
    site_report = client.get(f"/api/v1/analytics/site?{RANGE}", headers=auth(token)).get_json()["report"]
    assert site_report["premium"]["redeemed"] == 2 and site_report["premium"]["redeemed_after_lock_tap"] == 1
    r = client.get(f"/api/v1/analytics/editions/{premium_site['edition']}.csv?{RANGE}", headers=auth(token))
    table = list(csv.DictReader(io.StringIO(r.data.decode("utf-8-sig"))))
    assert [(t["Lượt xem thử (trả phí)"], t["Chạm ổ khóa"], t["Đổi mã sau khi chạm khóa"]) for t in table[:2]] == [
        ("3", "3", "1"), ("3", "3", "1")]
