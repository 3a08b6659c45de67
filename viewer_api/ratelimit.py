"""Rate limits of the public side, on the `limits` library (the one Flask-Limiter is built on): counters in memory
by default, in Redis (``redis://host:6379``) when several processes or machines must share them.

``POST /api/v1/recognize`` is limited per client address and, when the viewer says which page load it is
(``X-Viewer-Session``, a random id per load, never stored elsewhere), per viewer session as well: behind one
address (a school's NAT, a reverse proxy without BAONHUNG_TRUSTED_PROXIES) many readers share the address limit,
while one viewer cannot take it all. The address is the client's as the trusted proxies report it (ProxyFix in
builder.app). A refused request is told when to try again (Retry-After).
"""
from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass

from limits import RateLimitItemPerMinute
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

SESSION_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after_s: int = 0


class RecognizeLimits:
    def __init__(self, storage_uri: str, per_address: int, per_session: int, namespace: str = "recognize"):
        self.limiter = MovingWindowRateLimiter(storage_from_string(storage_uri))
        self.namespace = namespace  # counters of another endpoint (events) live under their own name
        self.per_address = RateLimitItemPerMinute(per_address)
        self.per_session = RateLimitItemPerMinute(per_session)

    def check(self, address: str, session: str | None) -> Verdict:
        """Count one request; refused when its session or its address is over its limit (the session first, so
        one greedy viewer does not use up its address's share)."""
        checks = [(self.per_address, f"{self.namespace}:addr", address or "-")]
        if session and SESSION_RE.match(session):
            checks.insert(0, (self.per_session, f"{self.namespace}:session", session))
        for item, *key in checks:
            if not self.limiter.test(item, *key):
                reset = self.limiter.get_window_stats(item, *key).reset_time
                return Verdict(False, max(1, math.ceil(reset - time.time())))
        for item, *key in checks:
            self.limiter.hit(item, *key)
        return Verdict(True)
