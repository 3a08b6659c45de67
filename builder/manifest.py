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

from builder.bundle import PageBundle, PageSpec
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


def edition_manifest_url(edition_id: str) -> str:
    return f"/pub/editions/{edition_id}/manifest.json"


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


def validate_manifest(manifest: dict) -> dict:
    """Return ``manifest`` unchanged if it matches the schema, else raise :class:`ManifestError`."""
    validator = jsonschema.Draft202012Validator(load_schema())
    errors = sorted(validator.iter_errors(manifest), key=lambda e: list(e.absolute_path))
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


def page_manifest(page: PageSpec, bundle: PageBundle, *, marker_url: str, published_at: datetime,
                  edition_id: str | None = None, url_for: UrlFor = content_url, marker_sha256: str | None = None,
                  marker_bytes: int | None = None) -> dict:
    """Manifest of one published page: sizes, the two GLB variants, media beside them, marker data URL."""
    bundles = {
        "full": file_ref(bundle.glb_full, GLB_MIME, url_for).to_dict(),
        "lite": file_ref(bundle.glb_lite, GLB_MIME, url_for).to_dict(),
    }
    media = [{
        "name": m.name, "url": url_for(m.sha256, m.name.rsplit(".", 1)[-1]), "sha256": m.sha256,
        "bytes": m.bytes, "mime": m.mime, "overlay_id": str(m.overlay_id), "streamed": m.streamed,
    } for m in bundle.media]
    marker: dict = {"url": marker_url}
    if marker_sha256:
        marker["sha256"] = marker_sha256
    if marker_bytes is not None:
        marker["bytes"] = int(marker_bytes)
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "type": "page",
        "page_id": str(page.id),
        "edition_id": None if edition_id is None else str(edition_id),
        "number": int(page.number),
        "width_mm": float(page.width_mm),
        "height_mm": float(page.height_mm),
        "published_at": iso_utc(published_at),
        "bundles": bundles,
        "media": media,
        "marker": marker,
        "overlays": [{"id": str(o.id), "kind": o.kind} for o in page.overlays],
    }
    return validate_manifest(manifest)


def edition_manifest(edition_id: str, *, title: str, published_at: datetime, pages: Iterable[dict],
                     publication: str | None = None,
                     manifest_url_for: Callable[[str], str] = page_manifest_url) -> dict:
    """Manifest of an edition: one entry per page built from that page's manifest (``pages`` = page manifests)."""
    entries = []
    for page in sorted(pages, key=lambda p: (p["number"], p["page_id"])):
        entries.append({
            "page_id": page["page_id"], "number": page["number"], "width_mm": page["width_mm"],
            "height_mm": page["height_mm"], "manifest_url": manifest_url_for(page["page_id"]),
            "bundles": page["bundles"], "marker": page["marker"],
        })
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "type": "edition",
        "edition_id": str(edition_id),
        "title": str(title),
        "publication": publication,
        "published_at": iso_utc(published_at),
        "pages": entries,
    }
    return validate_manifest(manifest)
