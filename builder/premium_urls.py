"""Signed URLs of premium blobs (issue 27): their signature and its check. Pure — no database, no file, no Flask —
so the public app checks a premium URL without importing the authoring side (builder.premium re-exports these).
Contract: docs/PREMIUM.md "Serving the premium part".
"""
from __future__ import annotations

import base64
import hashlib
import hmac

PREMIUM_URL_PREFIX = "/pub/p/"
SIGNATURE_SKEW_S = 30  # clocks of two app servers may differ by this much; an exp beyond now + ttl + skew is forged


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def url_signature(key: bytes, name: str, exp: int, binding: str) -> str:
    """base64url HMAC-SHA256 of ``"<sha>.<ext>\\n<exp>\\n<binding>"`` (``name`` = ``<sha>.<ext>``)."""
    return _b64(hmac.new(key, f"{name}\n{int(exp)}\n{binding}".encode("ascii"), hashlib.sha256).digest())


def sign_url(key: bytes, sha: str, ext: str, exp: int, binding: str) -> str:
    """The signed path of a premium blob for one reader session until ``exp`` (unix seconds)."""
    name = f"{sha}.{ext}"
    return f"{PREMIUM_URL_PREFIX}{name}?exp={int(exp)}&sig={url_signature(key, name, exp, binding)}"


def check_signature(key: bytes, name: str, exp: str | None, sig: str | None, binding: str | None, now: float,
                    ttl_s: int) -> bool:
    """True when ``sig`` signs (``name``, ``exp``, ``binding``), ``exp`` is in the future and not beyond
    now + ttl + SIGNATURE_SKEW_S. Pure: no database, no file. Constant-time comparison."""
    if not binding or not sig or not exp or len(exp) > 12 or not exp.isdigit() or len(sig) > 64:
        return False
    expires = int(exp)
    if not (now < expires <= now + ttl_s + SIGNATURE_SKEW_S):
        return False
    try:
        name.encode("ascii")
        sig.encode("ascii")
    except UnicodeEncodeError:
        return False
    return hmac.compare_digest(url_signature(key, name, expires, binding), sig)
