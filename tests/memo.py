"""Per-process memos of the marker engine's deterministic, pure page analyses, for the web and builder tests.

Hundreds of those tests upload the same generated page images (``png_bytes(seed=…)``) and publish them; rating a
page (features, repeatability under simulated views, a heat map) and training its marker cost ~0.3-0.5 s each and
give the same result for the same pixels and arguments every time (markers/features.py: "Deterministic: the
simulated views are seeded from the page pixels"). ``memoize_page_analysis(monkeypatch)`` makes the product call
them through a memo keyed by a hash of the pixels and every argument: the first call in a test process computes for
real, a repeated one returns a deep copy of that result. The engine's own tests (tests/markers) call the functions
themselves, unmemoized; a test that monkeypatches the engine's internals must not use this.
"""
from __future__ import annotations

import copy
import functools
import hashlib

import numpy as np

_MEMO: dict = {}  # key -> the first real result
_MEMOIZED: dict = {}  # function name -> its memoized wrapper (made once, so every test patches in the same one)


def _key(name: str, image: np.ndarray, args: tuple, kwargs: dict) -> tuple:
    pixels = np.ascontiguousarray(image)
    digest = hashlib.blake2b(pixels.data, digest_size=16).hexdigest()
    return name, digest, pixels.shape, str(pixels.dtype), repr(args), repr(sorted(kwargs.items()))


def _memoized(fn):
    @functools.wraps(fn)
    def wrapper(image, *args, **kwargs):
        key = _key(fn.__qualname__, image, args, kwargs)
        if key not in _MEMO:
            _MEMO[key] = fn(image, *args, **kwargs)
        return copy.deepcopy(_MEMO[key])

    return wrapper


def memoize_page_analysis(monkeypatch) -> None:
    """For the current test: markers.train_page / rate_page / feature_heatmap_png, as the product calls them
    (builder.services imports them at call time from ``markers``; builder.publish holds train_page), memoized."""
    import markers
    from builder import publish

    originals = {name: getattr(markers.features if name == "train_page" else markers.rating, name)
                 for name in ("train_page", "rate_page", "feature_heatmap_png")}
    memos = {name: _MEMOIZED.setdefault(name, _memoized(fn)) for name, fn in originals.items()}
    for name, memo in memos.items():
        monkeypatch.setattr(markers, name, memo)
    monkeypatch.setattr(publish, "train_page", memos["train_page"])

