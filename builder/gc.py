"""Garbage collection of the asset store: blobs nothing refers to any more (what a killed publish wrote before its
catalog switch, a deleted page's image, …). No Flask here.

Conservative by construction, since deleting a blob that is still needed loses a reader's content:
- "referred to" is any 64-hex-digit string anywhere in the database's pages, overlays and published versions
  (snapshots included), in the published catalog, and inside every manifest those name (edition manifests list
  their pages' bundles and media), so a new kind of reference is covered without a change here;
- a blob younger than ``min_age_s`` (a day by default) is never deleted: an upload writes its blob before the row that
  names it is committed, and a publish writes its artifacts before the catalog switch;
- if any part of the reference scan fails, nothing is deleted.
"""
from __future__ import annotations

import json
import re
import time

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import Overlay, Page, PublishedVersion
from .storage import AssetStore, StorageError

HEX64 = re.compile(r"\b[0-9a-f]{64}\b")
MIN_AGE_S = 24 * 3600


def _shas_in(value) -> set[str]:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return set(HEX64.findall(text or ""))


def referenced_blobs(db: Session, store: AssetStore, catalog: dict) -> set[str]:
    refs: set[str] = set()
    for page in db.scalars(select(Page)):
        refs |= _shas_in([page.image_sha, page.source_sha, page.heatmap_sha, page.rating])
    for overlay in db.scalars(select(Overlay)):
        refs |= _shas_in([overlay.asset_sha, overlay.poster_sha, overlay.asset_meta, overlay.options])
    manifests: set[str] = set()
    for version in db.scalars(select(PublishedVersion)):
        refs |= _shas_in([version.manifest_sha, version.snapshot])
        manifests.add(version.manifest_sha)
    refs |= _shas_in(catalog)
    manifests |= {e.get("manifest") for e in list(catalog.get("editions", {}).values())
                  + list(catalog.get("pages", {}).values()) if isinstance(e, dict) and e.get("manifest")}
    for sha in manifests:  # the manifests name their bundles, media and markers
        if store.exists(sha):
            refs |= _shas_in(store.read(sha).decode("utf-8", "replace"))
    return refs


def collect_garbage(db: Session, store: AssetStore, catalog: dict, min_age_s: float = MIN_AGE_S,
                    dry_run: bool = False) -> list[str]:
    """Delete (or with ``dry_run`` only list) the blobs older than ``min_age_s`` that nothing refers to."""
    try:
        refs = referenced_blobs(db, store, catalog)
    except Exception:  # noqa: BLE001 - an incomplete reference set must never lead to a deletion
        return []
    cutoff = time.time() - min_age_s
    garbage = []
    for key in list(store.list()):
        if key in refs:
            continue
        try:
            if store.modified(key) > cutoff:
                continue
        except StorageError:  # gone meanwhile, or the store did not answer: nothing to delete
            continue
        garbage.append(key)
        if not dry_run:
            store.delete(key)
    return garbage
