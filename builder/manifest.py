"""Published manifests (per page and per edition): what the phone viewer reads first.

Both are plain dicts validated against ``builder/schemas/manifest.schema.json`` (JSON Schema 2020-12) before
they are returned, so a manifest that the viewer could misread is never published. ``schema_version`` is
bumped only on incompatible changes.

URLs come from a ``url_for(sha256, ext)`` callable; the default, :func:`content_url`, gives the viewer side's
content-addressed path ``/pub/a/<sha256>.<ext>``. Media ``name`` values equal the ``src`` in the GLB's
``extras.overlay``; with the default layout a ``src`` resolved relative to the GLB URL *is* the media URL.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable

import jsonschema

from builder.bundle import STREAMED_MIME_PREFIXES, PageBundle, PageSpec
from builder.storage import sha256_file

SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "manifest.schema.json"
SCHEMA_VERSION = 1
GLB_MIME = "model/gltf-binary"

UrlFor = Callable[[str, str], str]
ONE_OF_BRANCH = {"edition": 0, "page": 1}  # order of the schema's top-level oneOf


class ManifestError(ValueError):
    """A manifest does not match the published schema; ``errors`` lists "path: message" strings."""

    def __init__(self, errors: list[str]):
        super().__init__("invalid manifest: " + "; ".join(errors[:5]))
        self.errors = errors


@dataclass(frozen=True)
class ArtifactRef:
    url: str
    sha256: str
    bytes: int
    mime: str

    def to_dict(self) -> dict:
        return {"url": self.url, "sha256": self.sha256, "bytes": self.bytes, "mime": self.mime}


def content_url(sha256: str, ext: str) -> str:
    """The viewer side's immutable content-addressed URL for a blob."""
    return f"/pub/a/{sha256}.{ext.lstrip('.')}"


def page_manifest_url(page_id: str) -> str:
    return f"/pub/pages/{page_id}/manifest.json"


def file_ref(path: Path, mime: str, url_for: UrlFor = content_url) -> ArtifactRef:
    """An artifact reference for a local file: its SHA-256, size and URL."""
    path = Path(path)
    sha = sha256_file(path)
    return ArtifactRef(url=url_for(sha, path.suffix.lstrip(".") or "bin"), sha256=sha, bytes=path.stat().st_size,
                       mime=mime)


def iso_utc(moment: datetime) -> str:
    """Aware datetime → ``YYYY-MM-DDTHH:MM:SSZ`` (naive datetimes are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


@lru_cache(maxsize=1)
def load_schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def _schema_validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(load_schema())


def validate_manifest(manifest: dict) -> dict:
    """Return ``manifest`` unchanged if it matches the schema, else raise :class:`ManifestError`."""
    errors = sorted(_schema_validator().iter_errors(manifest), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        details = []
        branch = ONE_OF_BRANCH.get(manifest.get("type")) if isinstance(manifest, dict) else None
        for error in errors:
            # a oneOf failure hides the useful part in its context: keep the branch named by "type"
            leaves = [e for e in error.context or () if e.relative_schema_path and
                      e.relative_schema_path[0] == branch] or [error]
            for leaf in leaves[:5]:
                path = "/".join(str(p) for p in leaf.absolute_path) or "(root)"
                details.append(f"{path}: {leaf.message}")
        raise ManifestError(details)
    return manifest


def _id(value) -> str:
    return str(value)


def _bundle_ref(ref: dict) -> dict:
    return {"url": ref["url"], "sha256": ref["sha256"], "bytes": int(ref["bytes"]),
            "mime": ref.get("mime", GLB_MIME)}


def _timestamp(value: datetime | str) -> str:
    """A datetime or ISO-8601 string → ``YYYY-MM-DDTHH:MM:SSZ``; an unparseable string is left for the schema."""
    if isinstance(value, datetime):
        return iso_utc(value)
    try:
        return iso_utc(datetime.fromisoformat(str(value).replace("Z", "+00:00")))
    except ValueError:
        return str(value)


def page_manifest(*, page_id, number: int, width_mm: float, height_mm: float, bundle_full: dict,
                  bundle_lite: dict, media: Iterable[dict], marker_url: str, published_at: datetime | str,
                  edition_id=None, title: str | None = None, code: str | None = None,
                  preview_url: str | None = None, thumbnail_url: str | None = None, overlays: Iterable[dict] = (),
                  warnings: Iterable[dict] = (), premium: dict | None = None) -> dict:
    """Manifest of one published page (validated against the schema before it is returned).

    bundle_full / bundle_lite : ``{"url", "sha256", "bytes"[, "mime"]}`` of the stored GLBs.
    media : ``{"name", "url", "sha256", "bytes", "mime", "overlay_id"}`` per :class:`builder.bundle.MediaFile`
        (``name`` = the ``src`` in the GLB); ``streamed`` is derived from the MIME type.
    preview_url : the full page image; thumbnail_url : a small copy of it for page lists (the viewer's no-camera list).
    overlays : ``{"id", "kind"[, "name", "access", "teaser"]}`` (``access`` "free" by default; a premium overlay
        names its ``teaser``, which is what the free bundle holds in its place); warnings : ``{"code", "message",
        ...}`` (build warnings, shown to the designer). Ids are written as strings, the same strings as
        ``extras.overlay.id`` in the GLB.
    premium : ``{"overlays": [ids], "url": "/api/v1/reader/pages/<id>/premium"}`` when the page has a premium part
        (issue 27, builder.premium), else None.
    """
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "type": "page",
        "page_id": _id(page_id),
        "edition_id": None if edition_id is None else _id(edition_id),
        "number": int(number),
        "title": title,
        "code": code,
        "width_mm": float(width_mm),
        "height_mm": float(height_mm),
        "published_at": _timestamp(published_at),
        "bundles": {"full": _bundle_ref(bundle_full), "lite": _bundle_ref(bundle_lite)},
        "media": [{
            "name": m["name"], "url": m["url"], "sha256": m["sha256"], "bytes": int(m["bytes"]), "mime": m["mime"],
            "overlay_id": _id(m["overlay_id"]), "streamed": str(m["mime"]).startswith(STREAMED_MIME_PREFIXES),
        } for m in media],
        "marker_url": marker_url,
        "preview_url": preview_url,
        "thumbnail_url": thumbnail_url,
        "overlays": [_overlay_entry(o) for o in overlays],
        "warnings": [dict(w) for w in warnings],
        "premium": None if premium is None else {"overlays": [_id(i) for i in premium["overlays"]],
                                                 "url": premium["url"]},
    }
    return validate_manifest(manifest)


def _overlay_entry(o: dict) -> dict:
    entry = {"id": _id(o["id"]), "kind": o["kind"], "name": o.get("name"), "access": o.get("access", "free")}
    if entry["access"] == "premium":
        entry["teaser"] = o.get("teaser")
    return entry


def page_manifest_for_bundle(page: PageSpec, bundle: PageBundle, *, marker_url: str,
                             published_at: datetime | str, url_for: UrlFor = content_url, **extra) -> dict:
    """:func:`page_manifest` for a freshly built bundle whose files are (or will be) stored content-addressed."""
    full, lite = file_ref(bundle.glb_full, GLB_MIME, url_for), file_ref(bundle.glb_lite, GLB_MIME, url_for)
    media = [{"name": m.name, "url": url_for(m.sha256, m.name.rsplit(".", 1)[-1]), "sha256": m.sha256,
              "bytes": m.bytes, "mime": m.mime, "overlay_id": m.overlay_id} for m in bundle.media]
    warnings = [{"code": w.code, "message": w.message} for w in bundle.warnings]
    return page_manifest(page_id=page.id, number=page.number, width_mm=page.width_mm, height_mm=page.height_mm,
                         bundle_full=full.to_dict(), bundle_lite=lite.to_dict(), media=media, marker_url=marker_url,
                         published_at=published_at, overlays=[{"id": o.id, "kind": o.kind} for o in page.overlays],
                         warnings=warnings, **extra)


def edition_manifest(*, edition: dict, pages: Iterable[dict], published_at: datetime | str,
                     manifest_url_for: Callable[[str], str] = page_manifest_url) -> dict:
    """Manifest of an edition; ``edition`` = ``{"id", "title"[, "publication", "publication_name", "date",
    "number", "code"]}``, ``pages`` = the page manifests (one entry each, in page-number order)."""
    entries = []
    for page in sorted(pages, key=lambda p: (p["number"], p["page_id"])):
        entries.append({
            "page_id": page["page_id"], "number": page["number"], "title": page.get("title"),
            "code": page.get("code"), "width_mm": page["width_mm"], "height_mm": page["height_mm"],
            "manifest_url": manifest_url_for(page["page_id"]), "bundles": page["bundles"],
            "marker_url": page["marker_url"], "preview_url": page.get("preview_url"),
            "thumbnail_url": page.get("thumbnail_url"),
        })
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "type": "edition",
        "edition_id": _id(edition["id"]),
        "title": edition.get("title"),
        "publication": edition.get("publication"),
        "publication_name": edition.get("publication_name"),
        "date": edition.get("date"),
        "number": edition.get("number"),
        "code": edition.get("code"),
        "published_at": _timestamp(published_at),
        "pages": entries,
    }
    return validate_manifest(manifest)
