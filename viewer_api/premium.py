"""The premium part of published pages (issue 27): handed out to entitled readers only, its bytes served only by
short-lived signed URLs. Contract: docs/PREMIUM.md "Serving the premium part".

- ``GET /api/v1/reader/pages/<page_id>/premium``: 404 ``premium_not_found`` (page not published, or no premium part),
  401 ``sign_in_required``, 403 ``not_entitled`` (read from the database on every call, so a revocation stops new
  parts at once); 200 the part document (``builder.publish``) with a ``url`` signed for this reader session on each
  bundle and media entry, ``expires_at`` and ``expires_in`` (seconds, for a phone whose clock is off). ``Cache-Control: no-store, private``.
- ``GET /pub/p/<sha>.<ext>?exp=&sig=``: checked **without a database read** (``builder.premium.check_signature``:
  HMAC over name, expiry and the SHA-256 of the reader cookie; expiry in the future and within the TTL), then the
  blob must be in the published catalog's premium set. 403 ``premium_link_invalid`` for a bad, expired or foreign
  URL, 404 for a blob that is not premium and published — a JSON error either way, never a premium byte. Range
  requests work (``AssetStore.send`` through ``public.send_blob``). ``Cache-Control: private, no-store``; no CORS headers, and
  ``Cross-Origin-Resource-Policy: same-origin``: no other site may embed the bytes.
- A publication may make its premium overlays free N days after an edition's date (``premium_free_after_days``, in
  the catalog's ``publication_policies``): from then on the part goes to anyone, with URLs bound to no session
  (``&access=free``), which the media path accepts only for blobs of an edition that is free by now.
"""
from __future__ import annotations

import json
import re
import time

from flask import Blueprint, current_app, jsonify, request

from builder.premium_urls import check_signature, sign_url
from builder.errors import AppError
from builder.http_errors import status_for
from builder.storage import StorageError

from .public import EXT_MIME, request_lang, send_blob
from .readerdb import UNAVAILABLE_ERRORS, db, unavailable
from .readers_api import current_reader, session_binding

premium_bp = Blueprint("premium", __name__)

NO_STORE = "private, no-store"
HEX64 = re.compile(r"[0-9a-f]{64}")
# Premium media keep the extension of their upload: the public side's types plus the few it never serves.
PREMIUM_EXT_MIME = {**EXT_MIME, "mov": "video/quicktime", "flac": "audio/flac", "avif": "image/avif"}
PART_CACHE_MAX = 1024  # part documents are immutable and ~1 KB: keep the last few hundred pages' in memory

_now = time.time  # the clock of URL expiry (tests move it)
# The binding of URLs handed out while a part is free for everyone (a session binding is 64 hex digits: never this).
PUBLIC_BINDING = "free-for-everyone"


def _state():
    return current_app.extensions["baonhung"]


def _key() -> bytes:
    key = current_app.extensions.get("baonhung_premium_url_key")
    if key is None:
        key = current_app.extensions["baonhung_premium_url_key"] = _state().settings.derived_key("premium-url")
    return key


@premium_bp.errorhandler(AppError)
def _app_error(err: AppError):
    response = jsonify(err.to_dict(request_lang()))
    response.status_code = status_for(err)
    return response


def _database_unavailable(err):
    return _app_error(unavailable(err))


for _error_class in UNAVAILABLE_ERRORS:  # no readers database, or it cannot be reached: 503, never a 500
    premium_bp.register_error_handler(_error_class, _database_unavailable)


@premium_bp.after_request
def _private(response):
    response.headers["Cache-Control"] = NO_STORE
    response.headers["Vary"] = "Cookie, Accept-Language"
    response.headers["Cross-Origin-Resource-Policy"] = "same-origin"
    response.headers.pop("Access-Control-Allow-Origin", None)
    return response


def _part(sha: str) -> dict:
    cache = current_app.extensions.setdefault("baonhung_premium_parts", {})
    if sha not in cache:
        if len(cache) >= PART_CACHE_MAX:
            cache.clear()
        cache[sha] = json.loads(_state().store.read(sha))
    return cache[sha]


@premium_bp.get("/api/v1/reader/pages/<int:page_id>/premium")
def premium_part(page_id: int):
    from builder.entitlements import is_entitled

    state = _state()
    entry = state.published.premium_page(page_id)
    if entry is None:
        raise AppError("premium_not_found")
    now = _now()
    if state.published.premium_is_free(entry, now):
        # the publication's premium overlays are free this many days after the edition's date: anyone, signed in or
        # not, gets URLs bound to no session (the media path checks that the blob's edition is free by now)
        binding, suffix = PUBLIC_BINDING, "&access=free"
    else:
        session = db()
        reader = current_reader(session)
        binding, suffix = session_binding(), ""
        if reader is None or binding is None:
            raise AppError("sign_in_required")
        if not is_entitled(session, reader.id, entry.get("publication_id")):
            raise AppError("not_entitled")
    part = _part(entry["part"])
    ttl = state.settings.premium_url_ttl_s
    exp = int(now) + ttl
    key = _key()
    doc = {
        "page_id": part["page_id"],
        "overlays": list(part["overlays"]),
        "bundles": {variant: {**b, "url": sign_url(key, b["sha256"], b["ext"], exp, binding) + suffix}
                    for variant, b in part["bundles"].items()},
        "media": [{**m, "url": sign_url(key, m["sha256"], m["ext"], exp, binding) + suffix} for m in part["media"]],
        "expires_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(exp)),
        "expires_in": ttl,
        "free": bool(suffix),
    }
    return jsonify(doc)


@premium_bp.get("/pub/p/<sha>.<ext>")
def premium_blob(sha: str, ext: str):
    """A premium blob by signed URL. No database read on this path: the signature, the clock and the catalog."""
    state = _state()
    now = _now()
    public = request.args.get("access") == "free"
    if not check_signature(_key(), f"{sha}.{ext}", request.args.get("exp"), request.args.get("sig"),
                           PUBLIC_BINDING if public else session_binding(), now, state.settings.premium_url_ttl_s):
        raise AppError("premium_link_invalid")
    if public and not state.published.premium_blob_is_free(sha, now):
        raise AppError("premium_link_invalid")  # the policy was changed back since
    if ext not in PREMIUM_EXT_MIME or not HEX64.fullmatch(sha) or not state.published.is_premium_blob(sha):
        raise AppError("premium_not_found")
    try:
        blob = state.store.send(sha, PREMIUM_EXT_MIME[ext], etag=sha, cache_control=NO_STORE)
    except StorageError:
        raise AppError("premium_not_found") from None
    return send_blob(blob)
