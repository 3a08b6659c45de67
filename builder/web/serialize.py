"""JSON shapes of the authoring API (one place, shared by the API and the editor page)."""
from __future__ import annotations

from flask import url_for

from ..models import Edition, Overlay, Page, Publication
from ..premium import TEASERS_BY_KIND, effective_teaser


def _asset_url(sha: str | None, mime: str | None = None) -> str | None:
    if not sha:
        return None
    return url_for("api.get_asset", sha=sha, type=mime) if mime else url_for("api.get_asset", sha=sha)


def publication_json(pub: Publication, editions: bool = False) -> dict:
    out = {"id": pub.id, "name": pub.name, "slug": pub.slug, "created_at": pub.created_at.isoformat() + "Z",
           "premium_free_after_days": pub.premium_free_after_days}
    if editions:
        out["editions"] = [edition_json(e) for e in pub.editions]
    return out


def edition_json(edition: Edition, pages: bool = False) -> dict:
    version = edition.published_version
    out = {
        "id": edition.id,
        "publication": edition.publication.slug,
        "date": edition.date.isoformat(),
        "number": edition.number,
        "title": edition.title,
        "status": edition.status,
        "review_comment": edition.review_comment,
        "code": edition.code,
        "published": version is not None,
        "published_version": version.version if version else None,
        "published_at": (version.published_at.isoformat() + "Z") if version else None,
        "page_count": len(edition.pages),
    }
    if pages:
        out["pages"] = [page_json(p) for p in edition.pages]
    return out


def page_json(page: Page, overlays: bool = False) -> dict:
    out = {
        "id": page.id,
        "edition_id": page.edition_id,
        "number": page.number,
        "title": page.title,
        "width_mm": page.width_mm,
        "height_mm": page.height_mm,
        "image": {"sha256": page.image_sha, "mime": page.image_mime, "width_px": page.image_width_px,
                  "height_px": page.image_height_px, "url": _asset_url(page.image_sha, page.image_mime)},
        "code": page.code,
        "rating": page.rating,
        "heatmap_url": _asset_url(page.heatmap_sha, "image/png"),
    }
    if overlays:
        out["overlays"] = [overlay_json(o) for o in page.overlays]
    return out


def overlay_json(o: Overlay) -> dict:
    return {
        "id": o.id,
        "page_id": o.page_id,
        "kind": o.kind,
        "name": o.name,
        "x_mm": o.x_mm,
        "y_mm": o.y_mm,
        "width_mm": o.width_mm,
        "height_mm": o.height_mm,
        "rotation_deg": o.rotation_deg,
        "elevation_mm": o.elevation_mm,
        "scale": o.scale,
        "options": o.options or {},
        "asset": {"sha256": o.asset_sha, "mime": o.asset_mime, "meta": o.asset_meta or {},
                  "url": _asset_url(o.asset_sha, o.asset_mime)} if o.asset_sha else None,
        "poster_url": _asset_url(o.poster_sha, "image/png"),
        "stock": o.stock,
        "url": o.url,
        # issue 27: "teaser" is the one shown when premium (the kind's default unless the designer chose), "teasers"
        # those the kind allows (default first); a link has none
        "access": o.access or "free",
        "teaser": effective_teaser(o.kind, o.teaser, o.poster_sha is not None),
        "teasers": list(TEASERS_BY_KIND.get(o.kind, ())),
        "teaser_seconds": o.teaser_seconds,
    }
