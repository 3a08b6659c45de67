"""A publication's premium overlays become free for everyone N days after an edition's date (issue 27: "today's
paper for subscribers, the archive free"). The policy lives in the catalog, so it applies to published editions at
once; before the day the part still needs an entitlement, after it anyone gets URLs bound to no session, and those
URLs stop working if the policy is taken back."""
from __future__ import annotations

import datetime as dt
import re

import pytest

import viewer_api.premium as premium_api
from builder.models import AuditEntry
from tests.conftest import auth
from tests.web.test_premium_serving import browser, reader, site, video_url  # noqa: F401 - the fixture

pytestmark = pytest.mark.xdist_group("premium_policy")
EDITION_DATE = dt.date(2026, 11, 26)  # tests/web/test_api.make_edition
DAYS = 30
# midnight in Viet Nam (UTC+7) of the edition's date + DAYS
FREE_FROM = dt.datetime.combine(EDITION_DATE + dt.timedelta(days=DAYS), dt.time(),
                                tzinfo=dt.timezone(dt.timedelta(hours=7))).timestamp()


def _policy(site, days, role="editor"):
    slug = site["publication"]["slug"]
    return site["client"].patch(f"/api/v1/publications/{slug}", json={"premium_free_after_days": days},
                                headers=auth(site["tokens"][role]))


def _part(site, client):
    return client.get(f"/api/v1/reader/pages/{site['page']['id']}/premium")


def test_only_editors_and_admins_set_the_policy_within_its_range(site):
    assert _policy(site, 7, role="designer").status_code == 403
    for bad in (0, 3651, -1, "seven", 2.5):
        r = _policy(site, bad)
        assert r.status_code == 400, (bad, r.get_json())
        assert r.get_json()["message"]
    assert site["app"].extensions["baonhung"].published.catalog().get("publication_policies", {}) == {}
    r = _policy(site, DAYS)
    assert r.status_code == 200 and r.get_json()["premium_free_after_days"] == DAYS
    db = site["app"].extensions["baonhung"].sessionmaker()
    try:
        entry = db.query(AuditEntry).filter_by(action="publication.premium_policy").order_by(AuditEntry.id.desc()).first()
        assert entry.detail["premium_free_after_days"] == [None, DAYS]
    finally:
        db.close()
    policies = site["app"].extensions["baonhung"].published.catalog()["publication_policies"]
    assert list(policies.values()) == [{"premium_free_after_days": DAYS}]


def test_before_the_day_the_part_needs_an_entitlement_after_it_anyone_gets_it(site, monkeypatch):
    assert _policy(site, DAYS).status_code == 200
    anonymous = browser(site["app"])
    monkeypatch.setattr(premium_api, "_now", lambda: FREE_FROM - 1)
    assert _part(site, anonymous).status_code == 401
    _, token = reader(site["app"], "before-the-day@example.vn", entitled=False)
    assert _part(site, browser(site["app"], token)).status_code == 403

    monkeypatch.setattr(premium_api, "_now", lambda: FREE_FROM + 1)
    r = _part(site, anonymous)
    assert r.status_code == 200, r.get_json()
    part = r.get_json()
    assert part["free"] is True
    url = video_url(part)
    assert "access=free" in url
    media = anonymous.get(url)
    assert media.status_code == 200 and media.data == site["premium_bytes"][url.split("/pub/p/")[1].split(".")[0]]
    # a signed-in reader without an entitlement also gets it, and its free URL works with their cookie too
    assert _part(site, browser(site["app"], token)).status_code == 200
    assert browser(site["app"], token).get(url).status_code == 200
    # the free URL is signed as such: dropping the flag (a session binding is checked instead) is refused
    assert anonymous.get(url.replace("&access=free", "")).status_code == 403


def test_a_session_bound_url_cannot_be_turned_into_a_free_one(site, monkeypatch):
    assert _policy(site, None).status_code == 200
    _, token = reader(site["app"], "subscriber-policy@example.vn")
    part = _part(site, browser(site["app"], token)).get_json()
    url = video_url(part)
    assert part["free"] is False and "access=free" not in url
    r = browser(site["app"]).get(url + "&access=free")
    assert r.status_code == 403 and not r.data.startswith(b"\x00\x00\x00")


def test_taking_the_policy_back_ends_the_free_urls_at_once(site, monkeypatch):
    assert _policy(site, DAYS).status_code == 200
    monkeypatch.setattr(premium_api, "_now", lambda: FREE_FROM + 60)
    anonymous = browser(site["app"])
    url = video_url(_part(site, anonymous).get_json())
    assert anonymous.get(url).status_code == 200
    r = _policy(site, None)
    assert r.status_code == 200 and r.get_json()["premium_free_after_days"] is None
    assert "publication_policies" not in site["app"].extensions["baonhung"].published.catalog() or \
        site["app"].extensions["baonhung"].published.catalog()["publication_policies"] == {}
    refused = anonymous.get(url)
    assert refused.status_code == 403 and refused.get_json()["error"] == "premium_link_invalid"
    assert _part(site, anonymous).status_code == 401


def test_the_publication_page_sets_the_policy_through_its_form(site):
    """The editor's form (CSRF) on the publication page; empty means never."""
    client = site["app"].test_client()
    token = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/login").get_data(as_text=True)).group(1)
    r = client.post("/login", data={"email": "editor@example.vn", "password": "correct horse battery",
                                    "csrf_token": token})
    assert r.status_code == 302
    slug = site["publication"]["slug"]
    page = client.get(f"/publications/{slug}")
    assert b'name="premium_free_after_days"' in page.data
    assert client.post(f"/publications/{slug}/premium-policy", data={"premium_free_after_days": "9"}).status_code == 400
    token = page.data.split(b'name="csrf_token" value="')[1].split(b'"')[0].decode()
    r = client.post(f"/publications/{slug}/premium-policy",
                    data={"premium_free_after_days": "9", "csrf_token": token})
    assert r.status_code == 302
    assert client.get(f"/api/v1/publications/{slug}").get_json()["premium_free_after_days"] == 9
    r = client.post(f"/publications/{slug}/premium-policy", data={"premium_free_after_days": "", "csrf_token": token})
    assert r.status_code == 302
    assert client.get(f"/api/v1/publications/{slug}").get_json()["premium_free_after_days"] is None
