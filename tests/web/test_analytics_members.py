"""Designers read the readership of their own publications (issue 26): editors and admins make designers members
of a publication on its page (CSRF form, audited); the JSON API and the dashboard then answer a designer for their
member publications only — any other id is a 404 exactly like an id that does not exist, the whole site a 403 —
while editors and admins read everything and the print desk stays refused."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from tests.conftest import auth, user_with_token
from tests.web.test_analytics_dashboard import signed_in
from tests.web.test_api import make_edition, make_publication
from tests.web.test_events import a_session, batch, post, site  # noqa: F401 - the module's published site

OTHER = "bao-khac"


@pytest.fixture(scope="module")
def newsroom(site):  # noqa: F811
    s = site
    for email, role in (("tk@toasoan.vn", "designer"), ("tk2@toasoan.vn", "designer"), ("in@toasoan.vn", "print_desk"),
                        ("qt@toasoan.vn", "admin")):
        s[email] = user_with_token(s["app"], email, role)
    make_publication(s["client"], s["token"], slug=OTHER)
    s["other_edition"] = make_edition(s["client"], s["token"], slug=OTHER)["id"]
    assert post(s, batch(s, *a_session(s))).status_code == 204
    return s


def _ids(s):
    from builder.models import Publication, User

    db = s["app"].extensions["baonhung"].sessionmaker()
    try:
        users = {u.email: u.id for u in db.scalars(select(User))}
        pubs = {p.slug: p.id for p in db.scalars(select(Publication))}
    finally:
        db.close()
    return users, pubs


def _members_and_audit(s, slug="bao-yen-bai"):
    from builder.models import AuditEntry, PublicationMember, User

    _users, pubs = _ids(s)
    db = s["app"].extensions["baonhung"].sessionmaker()
    try:
        members = sorted(db.scalars(select(User.email).join(PublicationMember, PublicationMember.user_id == User.id)
                                    .where(PublicationMember.publication_id == pubs[slug])))
        audit = [(a.action, a.user_email, a.detail.get("email")) for a in db.scalars(
            select(AuditEntry).where(AuditEntry.action.like("publication.member%")).order_by(AuditEntry.id))]
    finally:
        db.close()
    return members, audit


def _csrf(client, slug="bao-yen-bai"):
    page = client.get(f"/publications/{slug}").get_data(as_text=True)
    return page, re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)


def _add(client, csrf, user_id, slug="bao-yen-bai"):
    return client.post(f"/publications/{slug}/members", data={"csrf_token": csrf, "user_id": str(user_id)})


def _remove(client, csrf, user_id, slug="bao-yen-bai"):
    return client.post(f"/publications/{slug}/members/{user_id}/remove", data={"csrf_token": csrf})


def _api(s, path, who):
    return s["client"].get(f"/api/v1/analytics{path}", headers=auth(s[who] if who in s else who))


def test_the_api_gives_a_designer_their_member_publications_only(newsroom):
    s = newsroom
    users, _pubs = _ids(s)
    mine = ["/publications/bao-yen-bai", f"/editions/{s['edition']}", f"/pages/{s['page']}",
            f"/overlays/{s['overlay']}", f"/pages/{s['page']}/heatmap", f"/editions/{s['edition']}.csv"]
    # not a member yet: the publication's ids answer as if they did not exist
    for path in mine:
        r = _api(s, path, "tk@toasoan.vn")
        assert r.status_code == 404 and r.get_json()["error"] == "not_found", path
    unknown = _api(s, "/editions/999999", "tk@toasoan.vn")
    assert unknown.get_json() == _api(s, f"/editions/{s['edition']}", "tk@toasoan.vn").get_json()  # nothing told apart
    # made a member by an editor on the publication's page
    editor = signed_in(s, "ed@example.vn")
    _page, csrf = _csrf(editor)
    assert _add(editor, csrf, users["tk@toasoan.vn"]).status_code == 302
    for path in mine:
        assert _api(s, path, "tk@toasoan.vn").status_code == 200, path
    rep = _api(s, f"/editions/{s['edition']}", "tk@toasoan.vn").get_json()["report"]
    assert rep["sessions"] == 1 and rep["links_opened"] == 1
    # still not the other publication, nor the whole site; another designer still nothing
    assert _api(s, f"/editions/{s['other_edition']}", "tk@toasoan.vn").status_code == 404
    assert _api(s, f"/publications/{OTHER}.csv", "tk@toasoan.vn").status_code == 404
    assert _api(s, "/site", "tk@toasoan.vn").status_code == 403
    assert _api(s, f"/editions/{s['edition']}", "tk2@toasoan.vn").status_code == 404
    # editors and admins read everything; the print desk nothing, not even whether an id exists
    for who in ("token", "qt@toasoan.vn"):
        assert _api(s, "/site", who).status_code == 200 and _api(s, f"/editions/{s['other_edition']}", who).status_code == 200
    for path in ("/site", f"/editions/{s['edition']}", "/editions/999999"):
        r = _api(s, path, "in@toasoan.vn")
        assert r.status_code == 403 and r.get_json()["error"] == "forbidden"
    # removed: back to 404
    assert _remove(editor, csrf, users["tk@toasoan.vn"]).status_code == 302
    assert _api(s, f"/editions/{s['edition']}", "tk@toasoan.vn").status_code == 404


def test_the_dashboard_lists_a_designers_publications_and_refuses_the_others(newsroom):
    s = newsroom
    users, pubs = _ids(s)
    designer = signed_in(s, "tk2@toasoan.vn")
    mine = designer.get("/analytics")
    assert mine.status_code == 200 and 'id="my-publications"' in mine.get_data(as_text=True)
    assert "chưa là thành viên của ấn phẩm nào" in mine.get_data(as_text=True)
    assert designer.get(f"/analytics/editions/{s['edition']}").status_code == 404
    admin = signed_in(s, "qt@toasoan.vn")
    _page, csrf = _csrf(admin, OTHER)
    assert _add(admin, csrf, users["tk2@toasoan.vn"], OTHER).status_code == 302
    listing = designer.get("/analytics").get_data(as_text=True)
    assert re.findall(r'data-publication="(\d+)"', listing) == [str(pubs[OTHER])]
    assert designer.get(f"/analytics/publications/{OTHER}").status_code == 200
    assert designer.get(f"/analytics/editions/{s['other_edition']}").status_code == 200
    for path in ("/analytics/publications/bao-yen-bai", f"/analytics/editions/{s['edition']}",
                 f"/analytics/pages/{s['page']}", f"/analytics/overlays/{s['overlay']}", "/analytics/editions/999999"):
        assert designer.get(path).status_code == 404, path
    nav = designer.get("/").get_data(as_text=True)
    assert 'href="/analytics"' in nav
    printer = signed_in(s, "in@toasoan.vn")
    r = printer.get("/analytics")
    assert r.status_code == 403 and "Hãy nhờ biên tập viên xuất tệp CSV" in r.get_data(as_text=True)
    assert 'href="/analytics"' not in printer.get("/").get_data(as_text=True)


def test_editors_and_admins_add_and_remove_designers_audited_and_nobody_else_can(newsroom):
    s = newsroom
    users, _pubs = _ids(s)
    before, audit_before = _members_and_audit(s)
    editor = signed_in(s, "ed@example.vn")
    page, csrf = _csrf(editor)
    assert 'id="members"' in page and f'<option value="{users["tk2@toasoan.vn"]}"' in page
    assert f'<option value="{users["in@toasoan.vn"]}"' not in page  # only designers are offered
    assert _add(editor, csrf, users["tk2@toasoan.vn"]).status_code == 302
    page = editor.get("/publications/bao-yen-bai").get_data(as_text=True)
    assert f'data-member="{users["tk2@toasoan.vn"]}"' in page and "tk2@toasoan.vn" in page
    # refusals change nothing: a second add (409), a non-designer (400), an unknown user (404), no CSRF (400),
    # a designer or the print desk managing members (403; they see no members section either)
    assert _add(editor, csrf, users["tk2@toasoan.vn"]).status_code == 409
    assert _add(editor, csrf, users["in@toasoan.vn"]).status_code == 400
    assert _add(editor, csrf, 987654).status_code == 404
    assert _add(editor, csrf, "abc").status_code == 400
    assert editor.post("/publications/bao-yen-bai/members", data={"user_id": users["tk@toasoan.vn"]}).status_code == 400
    assert _remove(editor, csrf, users["tk@toasoan.vn"]).status_code == 404  # not a member
    for email in ("tk@toasoan.vn", "in@toasoan.vn"):
        other = signed_in(s, email)
        other_page, other_csrf = _csrf(other)
        assert 'id="members"' not in other_page
        assert _add(other, other_csrf, users["tk@toasoan.vn"]).status_code == 403
        assert _remove(other, other_csrf, users["tk2@toasoan.vn"]).status_code == 403
    members, audit = _members_and_audit(s)
    assert members == sorted({*before, "tk2@toasoan.vn"})
    assert audit[len(audit_before):] == [("publication.member_add", "ed@example.vn", "tk2@toasoan.vn")]
    assert _remove(editor, csrf, users["tk2@toasoan.vn"]).status_code == 302
    members, audit = _members_and_audit(s)
    assert members == before
    assert audit[-1] == ("publication.member_remove", "ed@example.vn", "tk2@toasoan.vn")
    vi = editor.get("/publications/bao-yen-bai").get_data(as_text=True)
    assert "Nhà thiết kế của ấn phẩm này" in vi
    assert "Designers of this publication" in editor.get("/publications/bao-yen-bai?lang=en").get_data(as_text=True)
