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
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    editions: Mapped[list["Edition"]] = relationship(
        back_populates="publication", cascade="all, delete-orphan", order_by="Edition.date.desc()"
    )


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
