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
import threading
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


MAX_LOCAL_KEYS = 200_000  # counters one minute may hold (~25 MB); a new key past it is refused until the next minute


class LocalLimits:
    """The same limits (per address, per viewer session, per minute) counted in this process without the `limits`
    library's memory storage, whose expiry timer rescans every counter up to 100 times a second: with one counter
    per viewer page load that was ~10 % of the server's CPU under the event bench (py-spy). For ``memory://`` only;
    Redis keeps :class:`RecognizeLimits`.

    Two fixed one-minute windows, the previous one weighed by how much of it still lies within the last 60 s (the
    usual sliding-window estimate): O(1) per request, the old window dropped whole at each minute. Memory is bounded:
    past MAX_LOCAL_KEYS counters in a window a new address or session is refused (429) until the next minute."""

    def __init__(self, per_address: int, per_session: int, max_keys: int = MAX_LOCAL_KEYS, clock=time.monotonic):
        self.per_address, self.per_session, self.max_keys, self.clock = per_address, per_session, max_keys, clock
        self._lock = threading.Lock()
        self._minute = int(clock() // 60)
        self._current: dict[tuple[str, str], int] = {}
        self._previous: dict[tuple[str, str], int] = {}

    def check(self, address: str, session: str | None) -> Verdict:
        now = self.clock()
        minute = int(now // 60)
        keys = [(("addr", address or "-"), self.per_address)]
        if session and SESSION_RE.match(session):
            keys.insert(0, (("session", session), self.per_session))
        with self._lock:
            if minute != self._minute:
                self._previous = self._current if minute == self._minute + 1 else {}
                self._current, self._minute = {}, minute
            weight = 1.0 - (now / 60 - minute)  # share of the previous window still within the last 60 s
            for key, limit in keys:
                count = self._current.get(key, 0)
                if count == 0 and len(self._current) >= self.max_keys:
                    return Verdict(False, max(1, math.ceil((minute + 1) * 60 - now)))
                if count + self._previous.get(key, 0) * weight + 1 > limit:
                    return Verdict(False, max(1, math.ceil((minute + 1) * 60 - now)))
            for key, _limit in keys:
                self._current[key] = self._current.get(key, 0) + 1
        return Verdict(True)


def events_limits(storage_uri: str, per_address: int, per_session: int):
    """The events endpoint's limits: counted in the process for ``memory://``, else in the shared storage."""
    if storage_uri.startswith("memory://"):
        return LocalLimits(per_address, per_session)
    return RecognizeLimits(storage_uri, per_address, per_session, namespace="events")
