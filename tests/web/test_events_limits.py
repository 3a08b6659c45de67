"""The events endpoint's in-process rate limits (viewer_api.ratelimit.LocalLimits, issue 26): per address and per
viewer session per minute, a sliding estimate over two fixed windows, bounded memory, Retry-After."""
from __future__ import annotations

from viewer_api.ratelimit import LocalLimits, events_limits


class Clock:
    def __init__(self, t: float = 6000.0):  # minute 100, 0 s into it
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_an_address_past_its_minute_is_refused_with_the_seconds_to_wait():
    clock = Clock()
    limits = LocalLimits(per_address=3, per_session=100, clock=clock)
    assert [limits.check("10.0.0.1", None).allowed for _ in range(4)] == [True, True, True, False]
    clock.t += 20
    refused = limits.check("10.0.0.1", None)
    assert not refused.allowed and refused.retry_after_s == 40
    assert limits.check("10.0.0.2", None).allowed  # another address has its own count


def test_a_session_is_limited_apart_from_its_address_and_a_refusal_counts_nothing():
    limits = LocalLimits(per_address=5, per_session=2, clock=Clock())
    assert [limits.check("10.0.0.1", "sess-aaaaaaaa").allowed for _ in range(3)] == [True, True, False]
    # the refused request was not counted against the address: three more from other sessions fit
    assert [limits.check("10.0.0.1", f"sess-{i}bbbbbbb").allowed for i in range(4)] == [True, True, True, False]
    assert limits.check("10.0.0.1", "not a session id!").allowed is False  # no session key: the address is full


def test_the_previous_minute_weighs_by_how_much_of_it_is_still_within_the_last_60_s():
    clock = Clock()
    limits = LocalLimits(per_address=10, per_session=100, clock=clock)
    assert all(limits.check("10.0.0.1", None).allowed for _ in range(10))
    clock.t += 60 + 15  # 15 s into the next minute: 3/4 of the 10 still count
    assert [limits.check("10.0.0.1", None).allowed for _ in range(4)] == [True, True, False, False]
    clock.t += 60  # a minute on: the first minute is gone, the 2 of the second weigh 3/4 (1.5)
    assert [limits.check("10.0.0.1", None).allowed for _ in range(10)] == [True] * 8 + [False] * 2
    clock.t += 600  # an idle gap longer than a minute drops both windows
    assert all(limits.check("10.0.0.1", None).allowed for _ in range(10))


def test_memory_is_bounded_new_keys_past_the_cap_wait_for_the_next_minute():
    clock = Clock()
    limits = LocalLimits(per_address=100, per_session=100, max_keys=50, clock=clock)
    assert all(limits.check(f"10.0.{i // 250}.{i % 250}", None).allowed for i in range(50))
    refused = limits.check("10.9.9.9", None)
    assert not refused.allowed and 1 <= refused.retry_after_s <= 60
    assert limits.check("10.0.0.7", None).allowed  # a known address goes on
    assert len(limits._current) == 50
    clock.t += 60
    assert limits.check("10.9.9.9", None).allowed


def test_memory_storage_counts_in_the_process_and_redis_in_the_shared_storage(monkeypatch):
    import viewer_api.ratelimit as rl

    assert isinstance(events_limits("memory://", 600, 30), LocalLimits)
    made = []
    monkeypatch.setattr(rl, "RecognizeLimits", lambda *a, **kw: made.append((a, kw)) or "shared")
    assert events_limits("redis://127.0.0.1:6390", 600, 30) == "shared"
    assert made == [(("redis://127.0.0.1:6390", 600, 30), {"namespace": "events"})]
