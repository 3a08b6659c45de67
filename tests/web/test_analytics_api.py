"""/api/v1/analytics (issue 26): the newsroom reads what the viewer reported, as JSON and as CSV, by role."""
from __future__ import annotations

import csv
import io
import json

import pytest

from tests.conftest import auth
from tests.web.test_events import a_session, batch, post, site  # noqa: F401  (the module's published site)
from viewer_api import eventstore as es


@pytest.fixture
def reported(site):  # noqa: F811
    from tests.web.test_events import _engine

    with _engine(site).begin() as conn:
        conn.execute(es.events.delete())
    assert post(site, batch(site, *a_session(site))).status_code == 204
    assert post(site, batch(site, *a_session(site), session="other-session-2", entry="archive"),
                address="198.51.100.9").status_code == 204
    return site


def test_an_edition_report_counts_the_viewer_sessions_that_reached_it(reported):
    s = reported
    r = s["client"].get(f"/api/v1/analytics/editions/{s['edition']}", headers=auth(s["token"]))
    assert r.status_code == 200, r.get_json()
    rep = r.get_json()["report"]
    assert (rep["sessions"], rep["unique_readers"], rep["recognized"], rep["links_opened"]) == (2, 2, 2, 2)
    assert rep["link_click_through"] == 1.0 and rep["dwell_ms"] == 28000 and rep["entry"]["archive"] == 1
    assert rep["funnel"][-1] == {"step": "engaged", "sessions": 2}
    children = r.get_json()["children"]
    assert [(c["level"], c["id"], c["sessions"]) for c in children] == [("page", s["page"], 2)]
    h = s["client"].get(f"/api/v1/analytics/pages/{s['page']}/heatmap?cell_mm=10", headers=auth(s["token"]))
    assert h.status_code == 200 and h.get_json()["cells"][5][4] == 2  # (40.6, 55.2) mm, twice


def test_the_csv_export_is_utf8_with_a_bom_and_vietnamese_headers(reported):
    s = reported
    r = s["client"].get(f"/api/v1/analytics/editions/{s['edition']}.csv", headers=auth(s["token"]))
    assert r.status_code == 200 and r.mimetype == "text/csv" and r.data.startswith(b"\xef\xbb\xbf")
    table = list(csv.reader(io.StringIO(r.data.decode("utf-8-sig"))))
    assert table[0][:3] == ["Mục", "Mã", "Phiên"] and table[1][:3] == ["Số báo", str(s["edition"]), "2"]
    assert table[2][0] == "Trang" and table[2][-1].startswith("Trang ")
    en = s["client"].get(f"/api/v1/analytics/editions/{s['edition']}.csv", headers=auth(s["token"], "en"))
    assert en.data.decode("utf-8-sig").startswith("Level,Id,Sessions")


def test_the_print_desk_is_refused_a_designer_without_membership_told_nothing_and_anonymous_asked_to_log_in(reported):
    from tests.conftest import user_with_token

    s = reported
    token = user_with_token(s["app"], "print_desk1@analytics.vn", "print_desk")
    r = s["client"].get(f"/api/v1/analytics/editions/{s['edition']}", headers=auth(token))
    assert r.status_code == 403 and r.get_json()["error"] == "forbidden"
    token = user_with_token(s["app"], "designer0@analytics.vn", "designer")  # a member of no publication
    r = s["client"].get(f"/api/v1/analytics/editions/{s['edition']}", headers=auth(token))
    assert r.status_code == 404 and r.get_json()["error"] == "not_found"
    assert s["client"].get("/api/v1/analytics/site", headers=auth(token)).status_code == 403
    assert s["client"].get("/api/v1/analytics/site").status_code == 401


@pytest.mark.parametrize("query", ["from=2026-13-01", "from=yesterday", "from=2026-12-05&to=2026-12-01",
                                   "from=1900-01-01", "from=2020-01-01&to=2099-12-31"])
def test_a_bad_date_range_is_a_400_never_a_500(reported, query):
    s = reported
    r = s["client"].get(f"/api/v1/analytics/site?{query}", headers=auth(s["token"], "en"))
    assert r.status_code == 400 and r.get_json()["error"] == "invalid_field"


@pytest.mark.parametrize("cell", ["7", "0", "500", "x", "-5"])
def test_a_bad_heatmap_cell_is_a_400(reported, cell):
    s = reported
    r = s["client"].get(f"/api/v1/analytics/pages/{s['page']}/heatmap?cell_mm={cell}", headers=auth(s["token"]))
    assert r.status_code == 400


def test_unknown_ids_are_404(reported):
    s = reported
    for path in ("/api/v1/analytics/editions/999999", "/api/v1/analytics/pages/abc.csv",
                 "/api/v1/analytics/publications/khong-co", "/api/v1/analytics/overlays/99999999999999999999999"):
        assert s["client"].get(path, headers=auth(s["token"])).status_code == 404, path


def test_the_openapi_document_lists_the_analytics_paths_and_the_events_endpoint(reported):
    doc = reported["client"].get("/api/v1/openapi.json").get_json()
    assert "/api/v1/analytics/editions/{edition_id}.csv" in doc["paths"] and "/api/v1/events" in doc["paths"]
    from openapi_spec_validator import validate

    validate(json.loads(json.dumps(doc)))
