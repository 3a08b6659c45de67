"""Entitlements and subscription codes (issue 27, builder/entitlements.py): codes are single use per reader and
limited to max_redemptions readers, expire, die with their batch, forgive how they are typed, survive an export
round trip (CSV, PDF), and every grant and revoke is audited."""
from __future__ import annotations

import csv
import datetime as dt
import io
import re

import pytest
from sqlalchemy import event, func, select, update

from builder.http_errors import status_for
from builder import entitlements as ent
from builder import services as svc
from builder.models import (AuditEntry, CodeBatch, CodeRedemption, Entitlement, Publication, Reader,
                            SubscriptionCode, utcnow)
from builder.errors import AppError, Forbidden, InvalidField, NotFound

EDITOR = svc.Actor(1, "editor@example.vn", "editor", "127.0.0.1")  # the app's first user (fixture ``state``)


@pytest.fixture
def state(app):
    session = app.extensions["baonhung"].sessionmaker()
    try:
        user, _ = svc.create_user(session, svc.SYSTEM, EDITOR.email, "editor", "mat-khau-that-dai-1")
        assert user.id == EDITOR.user_id
    finally:
        session.close()
    return app.extensions["baonhung"]


@pytest.fixture
def db(state):
    session = state.sessionmaker()
    yield session
    session.close()


@pytest.fixture
def pub(db):
    p = Publication(name="Báo Yên Bái — Thời sự", slug="bao-yen-bai")
    db.add(p)
    db.commit()
    return p


def make_reader(db, email: str) -> Reader:
    r = Reader(email=email, password_hash="x")
    db.add(r)
    db.commit()
    return r


def future(days: int = 30) -> dt.date:
    return (utcnow() + dt.timedelta(days=days)).date()


def batch_of(db, state, pub, count=3, days=30, max_redemptions=1, name="Tháng 12"):
    return ent.create_batch(db, EDITOR, pub.id if pub else None, count, days, max_redemptions, future(), name,
                            settings=state.settings)


def counts(db) -> dict:
    return {m.__tablename__: db.scalar(select(func.count()).select_from(m))
            for m in (Entitlement, CodeRedemption, CodeBatch, SubscriptionCode, AuditEntry, Reader)}


# ------------------------------------------------------------------------------------------------ format
def test_codes_are_three_groups_of_four_unambiguous_symbols_carrying_60_bits(db, state, pub):
    _batch, codes = batch_of(db, state, pub, count=200)
    assert len(set(c for _s, c in codes)) == 200
    for _serial, code in codes:
        assert re.fullmatch(r"[2-9A-HJ-NP-Z]{4}-[2-9A-HJ-NP-Z]{4}-[2-9A-HJ-NP-Z]{4}", code)
        assert not set(code) & set("0O1I")
    assert len(ent.CODE_ALPHABET) == 32 and len(set(ent.CODE_ALPHABET)) == 32
    assert ent.CODE_SYMBOLS * 5 >= 60


def test_only_the_sha256_of_a_code_is_stored_and_export_derives_the_same_codes(db, state, pub):
    batch, codes = batch_of(db, state, pub, count=5)
    stored = db.scalars(select(SubscriptionCode.code_hash).where(SubscriptionCode.batch_id == batch.id)
                        .order_by(SubscriptionCode.serial)).all()
    assert stored == [ent.code_hash(c) for _s, c in codes]
    assert ent.batch_codes(state.settings, batch) == codes
    from tests.conftest import database_dump

    url = state.settings.database_url
    raw = (state.settings.data_dir / "baonhung.sqlite3").read_bytes() if url.startswith("sqlite") \
        else database_dump(url).encode()  # PostgreSQL: every row
    assert not any(c.encode() in raw for _s, c in codes)


def test_a_code_is_normalised_on_input():
    assert ent.normalise_code(" abcd efgh-jkmn ") == "ABCD-EFGH-JKMN"
    assert ent.normalise_code("ABCD–EFGH—JKMN") == "ABCD-EFGH-JKMN"  # en and em dashes
    assert ent.normalise_code("ＡＢＣＤ－ＥＦＧＨ－ＪＫＭＮ") == "ABCD-EFGH-JKMN"  # full-width keyboard
    assert ent.normalise_code("abcdefghjkmn") == "ABCD-EFGH-JKMN"
    for bad in ("ABCD-EFGH-JKM0", "ABCD-EFGH-JKMI", "ABCD-EFGH-JKM", "ABCD-EFGH-JKMNP", "", None, 12, "x" * 500):
        assert ent.normalise_code(bad) is None, bad


# ------------------------------------------------------------------------------------------------ redeeming
def test_a_code_redeems_once_per_reader_and_is_used_up_by_its_max_readers(db, state, pub):
    _batch, codes = batch_of(db, state, pub, count=1, days=30)
    code = codes[0][1]
    lan, minh = make_reader(db, "lan@example.vn"), make_reader(db, "minh@example.vn")
    assert not ent.is_entitled(db, lan.id, pub.id)
    given = ent.redeem_code(db, lan, code.lower().replace("-", " "), "10.0.0.1")
    assert given.source == "code" and given.publication_id == pub.id
    assert dt.timedelta(days=29, hours=23) < given.expires_at - utcnow() <= dt.timedelta(days=30)
    assert ent.is_entitled(db, lan.id, pub.id)
    before = counts(db)
    with pytest.raises(AppError) as again:
        ent.redeem_code(db, lan, code)
    assert (again.value.code, status_for(again.value)) == ("code_already_redeemed", 409)
    with pytest.raises(AppError) as other:
        ent.redeem_code(db, minh, code)
    assert (other.value.code, status_for(other.value)) == ("code_used_up", 409)
    assert counts(db) == before and not ent.is_entitled(db, minh.id, pub.id)
    entry = db.scalars(select(AuditEntry).where(AuditEntry.action == "entitlement.grant")).one()
    assert entry.user_email == f"reader:{lan.id}" and entry.user_id is None and entry.address == "10.0.0.1"
    assert entry.detail["source"] == "code" and entry.detail["publication"] == "bao-yen-bai"


def test_max_redemptions_counts_distinct_readers(db, state, pub):
    _batch, codes = batch_of(db, state, pub, count=1, max_redemptions=3)
    readers = [make_reader(db, f"r{i}@example.vn") for i in range(4)]
    for r in readers[:3]:
        ent.redeem_code(db, r, codes[0][1])
    with pytest.raises(AppError) as refused:
        ent.redeem_code(db, readers[3], codes[0][1])
    assert refused.value.code == "code_used_up"
    assert db.scalar(select(SubscriptionCode.redemptions)) == 3
    assert db.scalar(select(func.count()).select_from(CodeRedemption)) == 3


def test_two_readers_racing_for_the_last_redemption_cannot_both_have_it(db, state, pub):
    """The other reader takes the last redemption between our checks and our UPDATE: the conditional UPDATE
    (redemptions < max) refuses us, and nothing of ours is written."""
    _batch, codes = batch_of(db, state, pub, count=1, max_redemptions=1)
    lan, minh = make_reader(db, "lan@example.vn"), make_reader(db, "minh@example.vn")
    engine = state.engine
    raced = []

    def competitor(_conn, _cursor, statement, *_args):
        if statement.startswith("UPDATE subscription_codes") and not raced:
            raced.append(True)
            other = state.sessionmaker()
            try:
                ent.redeem_code(other, minh, codes[0][1])
            finally:
                other.close()

    event.listen(engine, "before_cursor_execute", competitor)
    try:
        with pytest.raises(AppError) as lost:
            ent.redeem_code(db, lan, codes[0][1])
    finally:
        event.remove(engine, "before_cursor_execute", competitor)
    assert raced and lost.value.code == "code_used_up"
    assert db.scalar(select(SubscriptionCode.redemptions)) == 1
    assert db.scalars(select(CodeRedemption.reader_id)).all() == [minh.id]
    assert ent.is_entitled(db, minh.id, pub.id) and not ent.is_entitled(db, lan.id, pub.id)


def test_a_code_past_its_batch_date_is_expired(db, state, pub):
    batch, codes = batch_of(db, state, pub, count=1)
    db.execute(update(CodeBatch).where(CodeBatch.id == batch.id).values(redeem_until=utcnow() - dt.timedelta(seconds=1)))
    db.commit()
    reader = make_reader(db, "lan@example.vn")
    with pytest.raises(AppError) as refused:
        ent.redeem_code(db, reader, codes[0][1])
    assert (refused.value.code, status_for(refused.value)) == ("code_expired", 410)
    assert db.scalar(select(func.count()).select_from(Entitlement)) == 0


def test_a_revoked_batchs_codes_no_longer_redeem_and_the_revocation_is_audited(db, state, pub):
    batch, codes = batch_of(db, state, pub, count=2)
    reader = make_reader(db, "lan@example.vn")
    ent.redeem_code(db, reader, codes[0][1])
    ent.revoke_batch(db, EDITOR, batch)
    with pytest.raises(AppError) as refused:
        ent.redeem_code(db, make_reader(db, "minh@example.vn"), codes[1][1])
    assert (refused.value.code, status_for(refused.value)) == ("code_expired", 410)
    assert ent.is_entitled(db, reader.id, pub.id)  # what was granted stays
    assert db.scalar(select(AuditEntry.target_id).where(AuditEntry.action == "code_batch.revoke")) == str(batch.id)


def test_unknown_and_malformed_codes(db, state, pub):
    batch_of(db, state, pub, count=1)
    reader = make_reader(db, "lan@example.vn")
    with pytest.raises(AppError) as unknown:
        ent.redeem_code(db, reader, "ABCD-EFGH-JKMN")
    assert (unknown.value.code, status_for(unknown.value)) == ("code_unknown", 404)
    with pytest.raises(AppError) as bad:
        ent.redeem_code(db, reader, "ABCD-0000")
    assert (bad.value.code, status_for(bad.value)) == ("bad_code", 400)
    assert "XXXX-XXXX-XXXX" in bad.value.message("vi") and "XXXX-XXXX-XXXX" in bad.value.message("en")


def test_redeeming_early_extends_the_current_entitlement_instead_of_overlapping_it(db, state, pub):
    _batch, codes = batch_of(db, state, pub, count=2, days=10)
    reader = make_reader(db, "lan@example.vn")
    first = ent.redeem_code(db, reader, codes[0][1])
    second = ent.redeem_code(db, reader, codes[1][1])
    assert second.starts_at == first.expires_at
    assert second.expires_at - first.starts_at == dt.timedelta(days=20)


def test_a_batch_for_every_publication_entitles_to_each(db, state, pub):
    other = Publication(name="Tạp chí", slug="tap-chi")
    db.add(other)
    db.commit()
    _batch, codes = batch_of(db, state, None, count=1)
    reader = make_reader(db, "lan@example.vn")
    ent.redeem_code(db, reader, codes[0][1])
    assert ent.is_entitled(db, reader.id, pub.id) and ent.is_entitled(db, reader.id, other.id)


# ------------------------------------------------------------------------------------------------ batches
@pytest.mark.parametrize("field,kw", [
    ("count", {"count": 0}), ("count", {"count": 10_001}), ("count", {"count": 2.5}), ("count", {"count": "x"}),
    ("days", {"days": 0}), ("days", {"days": 3661}),
    ("max_redemptions", {"max_redemptions": 0}), ("max_redemptions", {"max_redemptions": 1001}),
    ("redeem_until", {"redeem_until": dt.date(2020, 1, 1)}),
    ("redeem_until", {"redeem_until": (utcnow() + dt.timedelta(days=5 * 366 + 5)).date()}),
    ("redeem_until", {"redeem_until": "not a date"}),
    ("name", {"name": "x" * 201}),
])
def test_batch_ranges_are_enforced_with_clear_errors_and_nothing_written(db, state, pub, field, kw):
    args = {"count": 10, "days": 30, "max_redemptions": 1, "redeem_until": future(), "name": "Lô"} | kw
    before = counts(db)
    with pytest.raises(InvalidField) as refused:
        ent.create_batch(db, EDITOR, pub.id, settings=state.settings, **args)
    assert refused.value.values["field"] == field and status_for(refused.value) == 400
    assert refused.value.message("vi") != refused.value.message("en")
    assert counts(db) == before


def test_only_editors_and_admins_make_batches_and_an_unknown_publication_is_404(db, state, pub):
    designer = svc.Actor(3, "designer@example.vn", "designer")
    with pytest.raises(Forbidden):
        ent.create_batch(db, designer, pub.id, 1, 30, 1, future(), settings=state.settings)
    with pytest.raises(NotFound):
        ent.create_batch(db, EDITOR, 999, 1, 30, 1, future(), settings=state.settings)
    assert db.scalar(select(func.count()).select_from(CodeBatch)) == 0


def test_batch_creation_is_audited_and_summaries_count_redemptions(db, state, pub):
    batch, codes = batch_of(db, state, pub, count=3, max_redemptions=2)
    for i in range(3):
        ent.redeem_code(db, make_reader(db, f"r{i}@example.vn"), codes[0][1] if i < 2 else codes[1][1])
    entry = db.scalars(select(AuditEntry).where(AuditEntry.action == "code_batch.create")).one()
    assert entry.user_email == "editor@example.vn" and entry.detail["count"] == 3
    summary = ent.batch_summaries(db)[0]
    assert (summary.batch.id, summary.codes_redeemed, summary.redemptions) == (batch.id, 2, 3)
    assert summary.publication.slug == "bao-yen-bai"


def test_csv_round_trip_bom_vietnamese_name_and_the_codes_redeem(db, state, pub):
    batch, codes = batch_of(db, state, pub, count=4, days=45, max_redemptions=2)
    data = ent.batch_csv(db, state.settings, batch)
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    assert list(rows[0]) == list(ent.CSV_COLUMNS)
    assert [(int(r["serial"]), r["code"]) for r in rows] == codes
    assert {r["publication"] for r in rows} == {"Báo Yên Bái — Thời sự"}
    assert {(r["days"], r["max_redemptions"]) for r in rows} == {("45", "2")}
    assert rows[0]["redeem_until"] == ent.iso(batch.redeem_until)
    reader = make_reader(db, "lan@example.vn")
    for r in rows:
        ent.redeem_code(db, reader, r["code"])
    assert db.scalar(select(func.count()).select_from(CodeRedemption)) == 4


def test_csv_cells_never_start_a_formula(db, state):
    p = Publication(name="=HYPERLINK(\"http://x\")", slug="x")
    db.add(p)
    db.commit()
    batch, _codes = batch_of(db, state, p, count=1)
    row = list(csv.DictReader(io.StringIO(ent.batch_csv(db, state.settings, batch).decode("utf-8-sig"))))[0]
    assert row["publication"].startswith("'=")


def test_the_pdf_sheet_is_a_valid_pdf_with_every_code_and_the_instructions(db, state, pub):
    import pypdfium2 as pdfium

    batch, codes = batch_of(db, state, pub, count=23)
    data = ent.batch_pdf(db, state.settings, batch)
    pdf = pdfium.PdfDocument(data)
    try:
        assert len(pdf) == 3  # 10 cards per A4 page
        width, height = pdf[0].get_size()
        assert (round(width / 72 * 25.4), round(height / 72 * 25.4)) == (210, 297)
        text = "".join(pdf[i].get_textpage().get_text_range() for i in range(len(pdf)))
    finally:
        pdf.close()
    for _serial, code in codes:
        assert code in text
    assert "Báo Yên Bái — Thời sự" in text
    assert "Mở trình xem, chạm vào ổ khoá, chọn Nhập mã." in text and "tap the lock" in text


# ------------------------------------------------------------------------------------------------ grants
def test_is_entitled_follows_publication_dates_revocation_and_the_readers_state(db, pub):
    other = Publication(name="Tạp chí", slug="tap-chi")
    db.add(other)
    db.commit()
    reader = make_reader(db, "lan@example.vn")
    given = ent.grant(db, EDITOR, reader, pub.id, 7, "admin", "phone call")
    assert ent.is_entitled(db, reader.id, pub.id) and not ent.is_entitled(db, reader.id, other.id)
    assert not ent.is_entitled(db, reader.id, pub.id, at=given.expires_at)
    assert not ent.is_entitled(db, reader.id, pub.id, at=given.starts_at - dt.timedelta(seconds=1))
    reader.active = False
    db.commit()
    assert not ent.is_entitled(db, reader.id, pub.id)
    reader.active = True
    db.commit()
    assert ent.revoke(db, EDITOR, reader, pub.id) == 1
    assert not ent.is_entitled(db, reader.id, pub.id)
    actions = db.scalars(select(AuditEntry.action).where(AuditEntry.action != "user.create")
                         .order_by(AuditEntry.id)).all()
    assert actions == ["entitlement.grant", "entitlement.revoke"]


def test_an_unlimited_grant_to_every_publication_is_ended_by_revoking_all(db, pub):
    reader = make_reader(db, "lan@example.vn")
    ent.grant(db, EDITOR, reader, None, None, "admin")
    assert ent.is_entitled(db, reader.id, pub.id, at=utcnow() + dt.timedelta(days=20 * 365))
    assert ent.revoke(db, EDITOR, reader, pub.id) == 0  # a publication's revoke leaves the all-publications right
    assert ent.is_entitled(db, reader.id, pub.id)
    assert ent.revoke(db, EDITOR, reader, None) == 1
    assert not ent.is_entitled(db, reader.id, pub.id)


def test_grant_ranges_and_roles(db, pub):
    reader = make_reader(db, "lan@example.vn")
    for days in (0, 3661, "x", 1.5):
        with pytest.raises(InvalidField):
            ent.grant(db, EDITOR, reader, pub.id, days, "admin")
    with pytest.raises(InvalidField):
        ent.grant(db, EDITOR, reader, pub.id, 5, "gift")
    for role in ("designer", "print_desk", "reader"):
        with pytest.raises(Forbidden):
            ent.grant(db, svc.Actor(None, "x", role), reader, pub.id, 5, "admin")
        with pytest.raises(Forbidden):
            ent.revoke(db, svc.Actor(None, "x", role), reader, None)
    assert db.scalar(select(func.count()).select_from(Entitlement)) == 0
    assert db.scalar(select(func.count()).select_from(AuditEntry).where(AuditEntry.action != "user.create")) == 0


def test_a_long_publication_name_shrinks_to_fit_its_card_rather_than_being_cut(db, state):
    import pypdfium2 as pdfium

    p = Publication(name="Báo Yên Bái — Chuyên đề Văn hoá Tây Bắc cuối tuần", slug="chuyen-de")
    db.add(p)
    db.commit()
    batch, _codes = batch_of(db, state, p, count=1)
    pdf = pdfium.PdfDocument(ent.batch_pdf(db, state.settings, batch))
    try:
        text = pdf[0].get_textpage().get_text_range()
    finally:
        pdf.close()
    assert p.name in text and "…" not in text


def test_readers_racing_on_postgresql_never_exceed_max_redemptions(pg_url, tmp_path):
    """Twelve readers redeem one code allowing three at the same moment, each in its own session and thread: the
    conditional UPDATE lets exactly three through (PostgreSQL: real concurrent transactions)."""
    import threading

    from tests.conftest import make_app

    app = make_app(tmp_path / "pg", database_url=pg_url)
    state = app.extensions["baonhung"]
    db = state.sessionmaker()
    try:
        user, _ = svc.create_user(db, svc.SYSTEM, "editor@example.vn", "editor", "mat-khau-that-dai-1")
        p = Publication(name="Báo", slug="bao")
        db.add(p)
        db.commit()
        _batch, codes = ent.create_batch(db, svc.Actor.of(user), p.id, 1, 30, 3, future(), settings=state.settings)
        reader_ids = [make_reader(db, f"r{i}@example.vn").id for i in range(12)]
    finally:
        db.close()
    barrier = threading.Barrier(len(reader_ids))
    outcomes = []

    def redeem(reader_id):
        session = state.sessionmaker()
        try:
            reader = session.get(Reader, reader_id)
            barrier.wait()
            try:
                ent.redeem_code(session, reader, codes[0][1])
                outcomes.append("ok")
            except AppError as refused:
                outcomes.append(refused.code)
        finally:
            session.close()

    threads = [threading.Thread(target=redeem, args=(i,)) for i in reader_ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    db = state.sessionmaker()
    try:
        assert sorted(outcomes) == ["code_used_up"] * 9 + ["ok"] * 3
        assert db.scalar(select(SubscriptionCode.redemptions)) == 3
        assert db.scalar(select(func.count()).select_from(CodeRedemption)) == 3
        assert db.scalar(select(func.count()).select_from(Entitlement)) == 3
    finally:
        db.close()
        state.engine.dispose()
