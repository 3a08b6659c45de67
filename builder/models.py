"""Domain model (SQLAlchemy 2, typed mappings). No Flask here.

Units: every placement is in page millimetres, origin at the page's top-left, y down
(see docs/ARCHITECTURE.md). Files are referenced by the SHA-256 key of the asset store.
"""
from __future__ import annotations

import datetime as dt
import enum
from typing import Any, Optional

from sqlalchemy import JSON, Boolean, Date, DateTime, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


# Ids are never reused (issue 24: the audit log showed "overlay.delete #12", then "overlay.create #12" for another
# overlay). PostgreSQL's sequences never reuse; SQLite does unless a table is AUTOINCREMENT (migration 0004).
NO_REUSE = {"sqlite_autoincrement": True}


class Base(DeclarativeBase):
    __table_args__ = NO_REUSE


class Role(str, enum.Enum):
    admin = "admin"
    editor = "editor"
    designer = "designer"
    print_desk = "print_desk"


ROLES = tuple(r.value for r in Role)


class EditionStatus(str, enum.Enum):
    draft = "draft"  # designers edit
    in_review = "in_review"  # waiting for an editor; designers cannot edit until sent back


OVERLAY_KINDS = ("model3d", "video", "audio", "animated_image", "image", "panorama360", "link")
# Issue 27: who may see an overlay. A premium overlay shows its teaser to everyone and the real thing to entitled
# readers only; its bytes are published apart from free ones (builder.premium).
ACCESS_LEVELS = ("free", "premium")
# What a reader without the right sees in place of a premium overlay: its poster (or the first frame), the first
# ``teaser_seconds`` of its video, or a blurred still of its 3D model. None = the kind's default.
TEASER_KINDS = ("poster", "clip", "blur")


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True, index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(20))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    language: Mapped[str] = mapped_column(String(5), default="vi")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    tokens: Mapped[list["ApiToken"]] = relationship(back_populates="user", cascade="all, delete-orphan")


class UserSession(Base):
    """A signed-in browser session. The cookie carries the secret; only its SHA-256 is stored, so a session can be
    ended on the server (logout, and what a password change or deactivation ends) whatever cookie was copied."""

    __tablename__ = "user_sessions"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    address: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    revoked_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime, nullable=True)


class ApiToken(Base):
    """A bearer token for the JSON API. Only the SHA-256 of the secret is stored; it is shown once."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    prefix: Mapped[str] = mapped_column(String(12))  # first characters, to recognise a token in the UI
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime, nullable=True)
    last_used_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime, nullable=True)
    revoked_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime, nullable=True)
    user: Mapped[User] = relationship(back_populates="tokens")


class LoginAttempt(Base):
    """Failed logins per (email, address), for throttling. Rows are deleted on success."""

    __tablename__ = "login_attempts"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), index=True)
    address: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)


class Publication(Base):
    __tablename__ = "publications"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(80), unique=True, index=True)
    # Issue 27: an edition's premium overlays become free this many days after the edition's date (NULL: never).
    premium_free_after_days: Mapped[Optional[int]] = mapped_column(Integer, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    editions: Mapped[list["Edition"]] = relationship(
        back_populates="publication", cascade="all, delete-orphan", order_by="Edition.date.desc()"
    )


class PublicationMember(Base):
    """A designer's publication (issue 26: designers read the readership of their own publications only)."""

    __tablename__ = "publication_members"
    __table_args__ = (UniqueConstraint("publication_id", "user_id", name="uq_publication_member"), NO_REUSE)
    id: Mapped[int] = mapped_column(primary_key=True)
    publication_id: Mapped[int] = mapped_column(ForeignKey("publications.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Edition(Base):
    __tablename__ = "editions"
    __table_args__ = (UniqueConstraint("publication_id", "number", name="uq_edition_number"), NO_REUSE)
    id: Mapped[int] = mapped_column(primary_key=True)
    publication_id: Mapped[int] = mapped_column(ForeignKey("publications.id", ondelete="CASCADE"), index=True)
    date: Mapped[dt.date] = mapped_column(Date)
    number: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(300), default="")
    status: Mapped[str] = mapped_column(String(20), default=EditionStatus.draft.value)
    review_comment: Mapped[str] = mapped_column(Text, default="")
    code: Mapped[str] = mapped_column(String(16), unique=True, index=True)  # deep-link code (/v/<code>)
    # The published pointer: readers see this version until the next publish; NULL = not published.
    published_version_id: Mapped[Optional[int]] = mapped_column(
        ForeignKey("published_versions.id", use_alter=True, name="fk_edition_published_version"), nullable=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    publication: Mapped[Publication] = relationship(back_populates="editions")
    pages: Mapped[list["Page"]] = relationship(
        back_populates="edition", cascade="all, delete-orphan", order_by="Page.number"
    )
    published_version: Mapped[Optional["PublishedVersion"]] = relationship(
        foreign_keys=[published_version_id], post_update=True
    )


class Page(Base):
    __tablename__ = "pages"
    # two uploads racing for the same number: the database refuses the second (a 409), not two pages numbered 70
    __table_args__ = (UniqueConstraint("edition_id", "number", name="uq_page_number"), NO_REUSE)
    id: Mapped[int] = mapped_column(primary_key=True)
    edition_id: Mapped[int] = mapped_column(ForeignKey("editions.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(300), default="")
    width_mm: Mapped[float] = mapped_column(Float)
    height_mm: Mapped[float] = mapped_column(Float)
    image_sha: Mapped[str] = mapped_column(String(64))  # rendered page image (PNG/JPEG)
    image_mime: Mapped[str] = mapped_column(String(40))
    image_width_px: Mapped[int] = mapped_column(Integer)
    image_height_px: Mapped[int] = mapped_column(Integer)
    source_sha: Mapped[Optional[str]] = mapped_column(String(64), nullable=True)  # the PDF it came from
    code: Mapped[str] = mapped_column(String(16), unique=True, index=True)
    rating: Mapped[Optional[dict[str, Any]]] = mapped_column(JSON, nullable=True)  # marker quality (stars, reasons)
    heatmap_sha: Mapped[Optional[str]] = mapped_column(String(64), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    edition: Mapped[Edition] = relationship(back_populates="pages")
    overlays: Mapped[list["Overlay"]] = relationship(
        back_populates="page", cascade="all, delete-orphan", order_by="Overlay.id"
    )


class Overlay(Base):
    __tablename__ = "overlays"
    id: Mapped[int] = mapped_column(primary_key=True)
    page_id: Mapped[int] = mapped_column(ForeignKey("pages.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(200), default="")
    x_mm: Mapped[float] = mapped_column(Float)  # top-left of the unrotated box, page mm
    y_mm: Mapped[float] = mapped_column(Float)
    width_mm: Mapped[float] = mapped_column(Float)
    height_mm: Mapped[float] = mapped_column(Float)
    rotation_deg: Mapped[float] = mapped_column(Float, default=0.0)  # clockwise on the page, about the centre
    elevation_mm: Mapped[float] = mapped_column(Float, default=0.0)  # above the paper
    scale: Mapped[float] = mapped_column(Float, default=1.0)  # model3d: uniform scale on top of fitting the box
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # autoplay, loop, muted, chroma_key, …
    asset_sha: Mapped[Optional[str]] = mapped_column(String(64), nullable=True)
    asset_mime: Mapped[Optional[str]] = mapped_column(String(60), nullable=True)
    asset_meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # duration, size, triangles, …
    poster_sha: Mapped[Optional[str]] = mapped_column(String(64), nullable=True)
    stock: Mapped[Optional[str]] = mapped_column(String(40), nullable=True)
    url: Mapped[Optional[str]] = mapped_column(String(2000), nullable=True)
    access: Mapped[str] = mapped_column(String(10), default="free", server_default="free")
    teaser: Mapped[Optional[str]] = mapped_column(String(10), nullable=True)
    teaser_seconds: Mapped[int] = mapped_column(Integer, default=5, server_default="5")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    page: Mapped[Page] = relationship(back_populates="overlays")


class PublishedVersion(Base):
    """An immutable published state of an edition: the frozen snapshot and its manifest in the store."""

    __tablename__ = "published_versions"
    __table_args__ = (UniqueConstraint("edition_id", "version", name="uq_published_version"), NO_REUSE)
    id: Mapped[int] = mapped_column(primary_key=True)
    edition_id: Mapped[int] = mapped_column(ForeignKey("editions.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    published_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    published_by_id: Mapped[Optional[int]] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    snapshot: Mapped[dict[str, Any]] = mapped_column(JSON)  # pages and overlays exactly as published
    manifest_sha: Mapped[str] = mapped_column(String(64))
    unpublished_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime, nullable=True)


class PublishFailure(Base):
    """A publish that failed: the previous version kept serving; the editor sees why."""

    __tablename__ = "publish_failures"
    id: Mapped[int] = mapped_column(primary_key=True)
    edition_id: Mapped[int] = mapped_column(ForeignKey("editions.id", ondelete="CASCADE"), index=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    user_id: Mapped[Optional[int]] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    error: Mapped[str] = mapped_column(Text)


class AuditEntry(Base):
    """Every write: who, what, when, from where."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)
    user_id: Mapped[Optional[int]] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    user_email: Mapped[str] = mapped_column(String(254), default="")
    action: Mapped[str] = mapped_column(String(60), index=True)
    target_type: Mapped[str] = mapped_column(String(40), default="")
    target_id: Mapped[str] = mapped_column(String(40), default="")
    address: Mapped[str] = mapped_column(String(64), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


# ------------------------------------------------------------------------------------------------ readers (issue 27)
# Readers are a different kind of account from newsroom staff: another table, another cookie, and no role; nothing of
# the authoring UI or API accepts them.

class Reader(Base):
    __tablename__ = "readers"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True, index=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    external_id: Mapped[Optional[str]] = mapped_column(String(100), unique=True, nullable=True)  # the payment system's
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    language: Mapped[str] = mapped_column(String(5), default="vi")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class ReaderSession(Base):
    """A signed-in reader. The cookie carries the secret; only its SHA-256 is stored (as staff sessions)."""

    __tablename__ = "reader_sessions"
    id: Mapped[int] = mapped_column(primary_key=True)
    reader_id: Mapped[int] = mapped_column(ForeignKey("readers.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    revoked_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime, nullable=True)


class ReaderLoginAttempt(Base):
    """Failed reader sign-ins per (email, address), for throttling; deleted on success."""

    __tablename__ = "reader_login_attempts"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), index=True)
    address: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)


class PasswordReset(Base):
    """An emailed password-reset link: only the SHA-256 of its token is stored; single use, short-lived."""

    __tablename__ = "password_resets"
    id: Mapped[int] = mapped_column(primary_key=True)
    reader_id: Mapped[int] = mapped_column(ForeignKey("readers.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime)
    used_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime, nullable=True)


class Entitlement(Base):
    """A reader's right to a publication's premium overlays (publication_id NULL: every publication) from
    ``starts_at`` until ``expires_at`` (NULL: no end) unless revoked. source: "code" | "api" | "admin"."""

    __tablename__ = "entitlements"
    id: Mapped[int] = mapped_column(primary_key=True)
    reader_id: Mapped[int] = mapped_column(ForeignKey("readers.id", ondelete="CASCADE"), index=True)
    publication_id: Mapped[Optional[int]] = mapped_column(ForeignKey("publications.id", ondelete="CASCADE"),
                                                          nullable=True, index=True)
    source: Mapped[str] = mapped_column(String(10))
    source_ref: Mapped[str] = mapped_column(String(100), default="")  # code batch/serial, external reference
    starts_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime, nullable=True)
    revoked_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    created_by_id: Mapped[Optional[int]] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)


class CodeBatch(Base):
    """A batch of subscription codes for subscriber copies: ``count`` codes, each redeemable until
    ``redeem_until`` by at most ``max_redemptions`` readers, each redemption granting ``days`` of access."""

    __tablename__ = "code_batches"
    id: Mapped[int] = mapped_column(primary_key=True)
    publication_id: Mapped[Optional[int]] = mapped_column(ForeignKey("publications.id", ondelete="CASCADE"),
                                                          nullable=True, index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    count: Mapped[int] = mapped_column(Integer)
    days: Mapped[int] = mapped_column(Integer)
    max_redemptions: Mapped[int] = mapped_column(Integer, default=1)
    redeem_until: Mapped[dt.datetime] = mapped_column(DateTime)
    created_by_id: Mapped[Optional[int]] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    revoked_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime, nullable=True)
    codes: Mapped[list["SubscriptionCode"]] = relationship(back_populates="batch", cascade="all, delete-orphan",
                                                           order_by="SubscriptionCode.serial")


class SubscriptionCode(Base):
    """One printed code. Only its SHA-256 is stored; the code itself is derived again from the batch with a server key
    when the batch is exported (builder.premium)."""

    __tablename__ = "subscription_codes"
    __table_args__ = (UniqueConstraint("batch_id", "serial", name="uq_code_serial"), NO_REUSE)
    id: Mapped[int] = mapped_column(primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("code_batches.id", ondelete="CASCADE"), index=True)
    serial: Mapped[int] = mapped_column(Integer)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    redemptions: Mapped[int] = mapped_column(Integer, default=0)
    batch: Mapped[CodeBatch] = relationship(back_populates="codes")


class CodeRedemption(Base):
    __tablename__ = "code_redemptions"
    __table_args__ = (UniqueConstraint("code_id", "reader_id", name="uq_code_reader"), NO_REUSE)
    id: Mapped[int] = mapped_column(primary_key=True)
    code_id: Mapped[int] = mapped_column(ForeignKey("subscription_codes.id", ondelete="CASCADE"), index=True)
    reader_id: Mapped[int] = mapped_column(ForeignKey("readers.id", ondelete="CASCADE"), index=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class ApiNonce(Base):
    """Nonces of signed entitlement-API requests already seen (replay protection); kept past the time window."""

    __tablename__ = "api_nonces"
    __table_args__ = (UniqueConstraint("key_id", "nonce", name="uq_api_nonce"), NO_REUSE)
    id: Mapped[int] = mapped_column(primary_key=True)
    key_id: Mapped[str] = mapped_column(String(40))
    nonce: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)


# Issue 28: publishing (and unpublishing) runs as a background job (builder.jobs); the editor polls its row.
class Job(Base):
    """One publish or unpublish of an edition, queued by the editor and run by a worker. ``active`` is True while
    the job is queued or running and NULL after: the unique (edition_id, active) pair allows one active job per
    edition (NULLs never collide, on SQLite and PostgreSQL alike). ``error``: {"code", "values"} of the
    builder.errors.AppError that ended it ("code": its registry name; the message is rendered in the asker's
    language)."""

    __tablename__ = "jobs"
    __table_args__ = (UniqueConstraint("edition_id", "active", name="uq_job_active_edition"), NO_REUSE)
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))  # "publish" | "unpublish"
    edition_id: Mapped[int] = mapped_column(ForeignKey("editions.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[Optional[int]] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    address: Mapped[str] = mapped_column(String(64), default="")
    status: Mapped[str] = mapped_column(String(20), default="queued", index=True)  # queued|running|done|failed
    active: Mapped[Optional[bool]] = mapped_column(Boolean, default=True)
    pages_done: Mapped[int] = mapped_column(Integer, default=0)
    pages_total: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[Optional[dict]] = mapped_column(JSON)
    version: Mapped[Optional[int]] = mapped_column(Integer)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[str] = mapped_column(String(200), default="")  # host:pid of the worker running it
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime)
    heartbeat_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime)
    finished_at: Mapped[Optional[dt.datetime]] = mapped_column(DateTime)
