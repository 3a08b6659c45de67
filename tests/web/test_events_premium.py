"""Premium events in POST /api/v1/events (issues 26 and 27): teasers, lock taps and redemptions are stored when they
name a premium overlay of a published page (the manifest's "access"), dropped and counted otherwise."""
from __future__ import annotations

import hashlib
import json
import time

import pytest

from builder.http_errors import status_for
from tests.web.test_events import batch, now_ms, post, s, site, stored  # noqa: F401 - fixtures
from viewer_api import eventstore as es
from viewer_api.ingest import BatchError, Client, PublishedLookup, ingest_batch, parse_batch

PHONE_UA = ("Mozilla/5.0 (Linux; Android 14; SM-A546E) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/131.0.0.0 Mobile Safari/537.36")


class FakePublished:
    """The published catalog of one edition (7) with one page (70): overlays 701 (premium video), 702 (free video)."""

    def __init__(self, manifest_sha: str):
        self._catalog = {"editions": {"7": {"publication": "bao-yen-bai"}},
                         "pages": {"70": {"edition_id": 7, "manifest": manifest_sha}}}

    def catalog(self):
        return self._catalog

    def page_entry(self, page_id):
        return self._catalog["pages"].get(str(page_id))


class FakeStore:
    def __init__(self, root):
        self.root = root

    def read(self, sha):  # the one call the ingest makes of the asset store (a published manifest)
        return (self.root / sha).read_bytes()


class ListWriter:
    def __init__(self):
        self.rows = []

    def append(self, rows):
        self.rows += rows


@pytest.fixture
def lookup(tmp_path):
    manifest = json.dumps({"width_mm": 297, "height_mm": 420, "overlays": [
        {"id": 701, "kind": "video", "access": "premium", "teaser": "clip"},
        {"id": 702, "kind": "video", "access": "free"}]}).encode()
    sha = hashlib.sha256(manifest).hexdigest()
    (tmp_path / sha).write_bytes(manifest)
    return PublishedLookup(FakePublished(sha), FakeStore(tmp_path))


def _ingest(lookup, tmp_path, *events):
    writer = ListWriter()
    body = json.dumps({"v": 1, "session": "sess-premium1", "entry": "qr", "events": list(events)}).encode()
    result = ingest_batch(parse_batch(body), Client("198.51.100.4", PHONE_UA), lookup,
                          es.SaltStore(tmp_path / "salts"), writer, int(time.time() * 1000))
    return result, writer.rows


def test_the_manifest_says_which_overlays_are_premium(lookup):
    assert lookup.page(70).premium == frozenset({701})


def test_premium_events_of_a_premium_overlay_are_stored_with_the_redemption_after_a_lock_tap(lookup, tmp_path):
    t = now_ms() - 10_000
    result, rows = _ingest(lookup, tmp_path,
                           {"type": "premium_impression", "t": t, "page": 70, "overlay": 701},
                           {"type": "premium_lock_tap", "t": t + 1000, "page": 70, "overlay": 701},
                           {"type": "premium_redeemed", "t": t + 5000, "page": 70, "overlay": 701},
                           {"type": "premium_redeemed", "t": t + 6000})
    assert result.stored == 4 and result.dropped == {}
    assert [(es.TYPE_NAMES[r.type], r.edition_id, r.page_id, r.overlay_id, r.k) for r in rows] == [
        ("premium_impression", 7, 70, 701, None), ("premium_lock_tap", 7, 70, 701, None),
        ("premium_redeemed", 7, 70, 701, 1), ("premium_redeemed", None, None, None, 0)]


def test_premium_events_of_a_free_or_unknown_overlay_are_dropped_and_counted(lookup, tmp_path):
    t = now_ms() - 10_000
    result, rows = _ingest(lookup, tmp_path,
                           {"type": "premium_impression", "t": t, "page": 70, "overlay": 702},
                           {"type": "premium_lock_tap", "t": t, "page": 70, "overlay": 999},
                           {"type": "premium_redeemed", "t": t, "page": 70, "overlay": 702},
                           {"type": "premium_impression", "t": t, "page": 70, "overlay": 701})
    assert result.stored == 1 and result.dropped == {"not_premium": 2, "unknown_overlay": 1}
    dropped = {r.k: r.n for r in rows if r.type == es.EVENT_TYPES["dropped"]}
    assert dropped == {es.DROP_REASONS["not_premium"]: 2, es.DROP_REASONS["unknown_overlay"]: 1}
    with pytest.raises(BatchError) as exc:  # nothing but premium events of a free overlay: refused whole
        _ingest(lookup, tmp_path, {"type": "premium_lock_tap", "t": t, "page": 70, "overlay": 702})
    assert status_for(exc.value) == 422


@pytest.mark.parametrize("event", [
    {"type": "premium_impression", "page": 70},  # no overlay
    {"type": "premium_lock_tap", "overlay": 701},  # no page
    {"type": "premium_redeemed", "overlay": 701},  # an overlay without its page
    {"type": "premium_redeemed", "page": 70},  # a page without the overlay tapped
])
def test_the_schema_wants_page_and_overlay_of_premium_events(event):
    body = json.dumps({"v": 1, "session": "sess-premium1", "entry": "qr",
                       "events": [{**event, "t": 1800000000000}]}).encode()
    with pytest.raises(BatchError) as exc:
        parse_batch(body)
    assert exc.value.code == "invalid_events"


def test_a_premium_event_of_a_published_free_overlay_is_a_422_and_stores_nothing(s):  # noqa: F811
    r = post(s, batch(s, {"type": "premium_lock_tap", "t": now_ms(), "page": s["page"], "overlay": s["overlay"]}))
    assert r.status_code == 422 and r.get_json()["error"] == "unknown_ids"
    assert stored(s) == []
    r = post(s, batch(s, {"type": "premium_redeemed", "t": now_ms()},
                      {"type": "premium_impression", "t": now_ms(), "page": s["page"], "overlay": s["overlay"]}))
    assert r.status_code == 204 and r.headers["X-Events-Stored"] == "1" and r.headers["X-Events-Dropped"] == "1"
    rows = stored(s)
    assert sorted((es.TYPE_NAMES[row.type], row.k) for row in rows) == [
        ("dropped", es.DROP_REASONS["not_premium"]), ("premium_redeemed", 0)]


def test_a_published_premium_overlay_takes_its_events_end_to_end(tmp_path):
    """An overlay created premium through the API, published: the page manifest says so, and the public ingest
    stores its teaser, lock tap and redemption (nothing dropped)."""
    from dataclasses import replace

    from builder.config import Settings
    from tests.conftest import auth, make_app, png_bytes, user_with_token
    from tests.web.test_api import make_edition, make_page, make_publication

    data = tmp_path / "d"
    settings = replace(Settings.from_env({"BAONHUNG_DATA_DIR": str(data)}), events_rate_per_minute=10_000,
                       events_session_rate_per_minute=10_000)
    app = make_app(data, SETTINGS=settings)
    client = app.test_client()
    token = user_with_token(app, "ed@example.vn", "editor")
    make_publication(client, token)
    edition = make_edition(client, token)
    page = make_page(client, token, edition["id"], png_bytes(620, 877, seed=21))
    r = client.post(f"/api/v1/pages/{page['id']}/overlays", headers=auth(token), content_type="multipart/form-data",
                    data={"kind": "model3d", "stock": "pin", "access": "premium", "x_mm": "20", "y_mm": "30",
                          "width_mm": "60", "height_mm": "60"})
    assert r.status_code == 201, r.get_json()
    overlay = r.get_json()["id"]
    client.post(f"/api/v1/editions/{edition['id']}/submit", headers=auth(token))
    r = client.post(f"/api/v1/editions/{edition['id']}/publish", headers=auth(token))
    assert r.status_code == 202 and r.get_json()["status"] == "done", r.get_json()
    t = now_ms() - 5_000
    body = {"v": 1, "session": "sess-premium2", "entry": "qr", "events": [
        {"type": "premium_impression", "t": t, "page": page["id"], "overlay": overlay},
        {"type": "premium_lock_tap", "t": t + 1000, "page": page["id"], "overlay": overlay},
        {"type": "premium_redeemed", "t": t + 3000, "page": page["id"], "overlay": overlay}]}
    r = client.post("/api/v1/events", data=json.dumps(body), content_type="text/plain",
                    headers={"User-Agent": PHONE_UA}, environ_base={"REMOTE_ADDR": "203.0.113.5"})
    assert r.status_code == 204 and r.headers["X-Events-Stored"] == "3" and r.headers["X-Events-Dropped"] == "0"
    rep = client.get(f"/api/v1/analytics/overlays/{overlay}", headers=auth(token)).get_json()["report"]
    assert rep["premium"]["impressions"] == 1 and rep["premium"]["lock_taps"] == 1
    assert rep["premium"]["redeemed_after_lock_tap"] == 1
