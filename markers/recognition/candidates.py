"""The candidate stage: which catalog pages are worth verifying, from the k nearest indexed features of each photo
feature (one index search).

- Soft votes (``soft_votes``): each photo feature shares one vote among the pages whose neighbour is about as close
  as its nearest, so features shared by many pages (mastheads, repeated ads, common glyphs) count little without a
  stop list; at 10,000 pages a hard ratio test left the right page 0-6 votes (tuning photos, seeds 500,000+).
- The layout check (``layout_consistent``): votes still drown a page small or tilted in the photo (5-12 hits among
  10,000 pages' random ones); the pages with the most hits are also checked for hits that one affine map of the
  page explains, and such pages are verified first (``rank_candidates``).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .params import RecognitionParams
from .photo import QueryFeatures


@dataclass(frozen=True)
class Votes:
    """Soft votes of the photo's features. score : (max slot + 1,) float per page slot; slots/tied : (nq, k)
    neighbour page slots that vote (-1: none) and which of them share the feature's vote; share : (nq,) 1 / pages
    sharing; near : (nq, k) neighbour page slots within p.max_hamming and the scope, *before* the background test
    (-1: none): the layout check's hits (geometry rejects chance hits itself, and the true hits of a tilted page
    are often no closer than the background)."""
    score: np.ndarray
    slots: np.ndarray
    tied: np.ndarray
    share: np.ndarray
    near: np.ndarray

    def weights(self, slot: int) -> np.ndarray:
        """(nq,) the vote each photo feature gave page ``slot``: 1 if only that page has a neighbour about as
        close as the nearest, 1/n if n pages share it, 0 if its nearest neighbours are on other pages."""
        return (self.tied & (self.slots == slot)).any(axis=1) * self.share


def soft_votes(dist: np.ndarray, ids: np.ndarray, feature_bits: int, p: RecognitionParams,
               allowed: np.ndarray | None = None, background: np.ndarray | None = None) -> Votes:
    """Candidate scores per page slot from the k-NN search of the photo's features.

    Each query feature shares one vote among the pages whose neighbour is nearly as close as its nearest
    (d <= d1 / p.soft_ratio, within p.max_hamming): a feature shared by many pages (masthead, repeated ad, common
    glyph) spreads its vote thin. A hard cross-page ratio test (one vote or none) left the right page 0-6 votes
    at 10,000 pages, often fewer than a random page (tuning photos). ids encode ``slot << feature_bits |
    feature``; ``allowed`` (sorted slot array) restricts the votes to a scope. ``background`` (slots x indexed
    features, uint8): each catalog feature's distance to generic photo content (markers.background); a neighbour
    no closer than that is no evidence for its page and is dropped."""
    ids = ids.astype(np.int64)
    near = np.where((ids >= 0) & (dist <= p.max_hamming), ids >> feature_bits, -1)
    if allowed is not None:
        near = np.where(np.isin(near, allowed), near, -1)
    slots = near
    if background is not None and background.size:
        feat = ids & ((1 << feature_bits) - 1)
        inside = (near >= 0) & (near < background.shape[0]) & (feat < background.shape[1])
        closer = dist < background[np.where(inside, near, 0), np.where(inside, feat, 0)]
        slots = np.where(inside & closer, near, -1)
    dist = np.where(slots >= 0, dist, 10_000)
    n = int(slots.max()) + 1 if slots.size else 0
    tied = (slots >= 0) & (dist * p.soft_ratio <= dist.min(axis=1, keepdims=True))
    if n <= 0:
        return Votes(np.zeros(0), slots, tied, np.zeros(len(slots)), near)
    rows, cols = np.nonzero(tied)
    pairs = np.unique(rows.astype(np.int64) * n + slots[rows, cols])
    prow, pslot = pairs // n, pairs % n
    per_row = np.bincount(prow, minlength=len(slots))
    share = 1.0 / np.maximum(per_row, 1)
    return Votes(np.bincount(pslot, weights=share[prow], minlength=n), slots, tied, share, near)


# Layout check of the candidate stage. At 10,000 pages a page small or tilted in the photo gets 5-12 of the
# photo's k-NN hits, nearly all geometrically right, while random pages get 10-20 scattered ones; soft votes
# ranked such pages 3rd-1800th (tuning photos, seeds 500,000+). The pages with the most hits are checked for
# hits that one affine map of the page explains (a small page is nearly affine in the photo); on 100 tuning
# photos at 10,000 pages this put the right page first for 5 of the 13 the votes missed.


def nearest_hits(votes: Votes, dist: np.ndarray, ids: np.ndarray, feature_bits: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(query feature, page slot, page feature) of each photo feature's nearest neighbour on each page among
    its k-NN, sorted by slot and, within a page, closest first (the layout check reads a page's first
    p.layout_max_hits); the neighbours within p.max_hamming and the scope (``votes.near``)."""
    slots = votes.near
    r, c = np.nonzero(slots >= 0)
    s = slots[r, c].astype(np.int64)
    f = ids[r, c].astype(np.int64) & ((1 << feature_bits) - 1)
    d = dist[r, c].astype(np.int64)
    nq, k = max(len(dist), 1), max(dist.shape[1], 1)
    dmax = int(d.max()) + 1 if len(d) else 1
    # One argsort of a packed key (page, photo feature, distance, column) instead of a lexsort: all unique, so
    # the order is that of a stable sort by (page, feature, distance); the first of each (page, feature) stays.
    o = np.argsort(((s * nq + r) * dmax + d) * k + c)
    r, s, f, d = r[o], s[o], f[o], d[o]
    key = s * nq + r
    keep = np.r_[True, key[1:] != key[:-1]] if len(key) else np.zeros(0, bool)
    r, s, f, d = r[keep], s[keep], f[keep], d[keep]
    o = np.argsort((s * dmax + d) * nq + r)  # by page, closest first, then photo feature
    return r[o], s[o], f[o]


def affine_consistency(pq: np.ndarray, pm: np.ndarray, counts: np.ndarray, p: RecognitionParams, seed: int = 0
                       ) -> np.ndarray:
    """Most hits one plausible affine map page mm -> photo px explains, per page.

    pq/pm : (P, n, 2) photo px / page mm of each page's hits (padded), counts : (P,) hits per page. Hypotheses
    from p.layout_samples random triplets per page (seeded: deterministic), all pages at once; a hypothesis must
    keep the page's orientation (not mirrored), a scale of 0.15-8 px per mm and an anisotropy below 3 (tilt
    <= ~70 deg)."""
    n_pages, n, _ = pq.shape
    if n_pages == 0 or n < 3:
        return np.zeros(n_pages, np.int64)
    pq, pm = pq.astype(np.float32), pm.astype(np.float32)
    rng = np.random.default_rng(seed)
    pick = (rng.random((n_pages, p.layout_samples, 3)) * counts[:, None, None]).astype(np.int64)
    rows = np.arange(n_pages)[:, None, None]
    src, dst = pm[rows, pick], pq[rows, pick]  # (P, S, 3, 2)
    s0, d0 = src[:, :, 0], dst[:, :, 0]
    sv = np.stack([src[:, :, 1] - s0, src[:, :, 2] - s0], axis=-1)  # columns: two edges of the triplet
    dv = np.stack([dst[:, :, 1] - d0, dst[:, :, 2] - d0], axis=-1)
    det = sv[..., 0, 0] * sv[..., 1, 1] - sv[..., 0, 1] * sv[..., 1, 0]
    ok = np.abs(det) > 4.0  # the triplet spans > 4 mm^2 of the page
    safe = np.where(ok, det, 1.0)
    inv = np.stack([np.stack([sv[..., 1, 1], -sv[..., 0, 1]], -1),
                    np.stack([-sv[..., 1, 0], sv[..., 0, 0]], -1)], -2) / safe[..., None, None]
    a = dv @ inv  # (P, S, 2, 2): photo px per page mm
    adet = a[..., 0, 0] * a[..., 1, 1] - a[..., 0, 1] * a[..., 1, 0]
    fro = (a ** 2).sum(axis=(-1, -2))
    root = np.sqrt(np.maximum(fro ** 2 - 4 * adet ** 2, 0))
    s_max, s_min = np.sqrt((fro + root) / 2), np.sqrt(np.maximum(fro - root, 0) / 2)
    ok &= (adet > 0) & (s_min > 0.15) & (s_max < 8.0) & (s_max < 3.0 * s_min)
    t = d0 - (a @ s0[..., None])[..., 0]  # (P, S, 2)
    mx, my = pm[:, None, :, 0], pm[:, None, :, 1]  # (P, 1, n)
    ex = a[..., 0, 0, None] * mx + a[..., 0, 1, None] * my + t[..., 0, None] - pq[:, None, :, 0]
    ey = a[..., 1, 0, None] * mx + a[..., 1, 1, None] * my + t[..., 1, None] - pq[:, None, :, 1]
    err2 = ex * ex + ey * ey  # (P, S, n)
    valid = np.arange(n)[None, None, :] < counts[:, None, None]
    inl = ((err2 < p.layout_px ** 2) & valid).sum(-1)
    return np.where(ok, inl, 0).max(axis=1)


def layout_consistent(q: QueryFeatures, votes: Votes, dist: np.ndarray, ids: np.ndarray, pages: Sequence,
                      feature_bits: int, p: RecognitionParams) -> list[int]:
    """Pages among the p.layout_pool with the most k-NN hits whose hits one affine map explains
    (``affine_consistency``), most explained hits first. pages: the catalog's page records by slot (None: free);
    each has ``keypoints_mm(features)``."""
    rows, slots, feats = nearest_hits(votes, dist, ids, feature_bits)
    if len(slots) == 0:
        return []
    hits = np.bincount(slots)
    pool = np.argsort(-hits, kind="stable")[:p.layout_pool]
    pool = pool[hits[pool] >= p.layout_min]
    if len(pool) == 0:
        return []
    starts = np.searchsorted(slots, pool)
    counts = np.minimum(hits[pool], p.layout_max_hits)
    n = int(counts.max())
    pq = np.zeros((len(pool), n, 2))
    pm = np.zeros((len(pool), n, 2))
    for j, (slot, a, c) in enumerate(zip(pool, starts, counts)):
        page = pages[slot]
        if page is None:
            counts[j] = 0
            continue
        pm[j, :c] = page.keypoints_mm(feats[a:a + c])
        pq[j, :c] = q.xy[rows[a:a + c]]
    best = affine_consistency(pq, pm, counts, p)
    keep = np.nonzero(best >= p.layout_min)[0]
    keep = keep[np.argsort(-best[keep], kind="stable")]
    return [int(pool[j]) for j in keep]


def rank_candidates(q: QueryFeatures, dist: np.ndarray, ids: np.ndarray, pages: Sequence, background: np.ndarray,
                    allowed: np.ndarray | None, feature_bits: int, candidates: int, p: RecognitionParams,
                    no_layout: Callable[[], object] | None = None) -> tuple[list[int], Votes]:
    """(page slots to verify, in order: at most min(p.layout_candidates, candidates) whose hits fit one layout, then
    the best voted with p.min_score; at most ``candidates`` in all; the votes). dist/ids: the index search's (nq, k)
    neighbours; no_layout() is called when no page's hits fit one layout (the photo is then rarely recognized by
    this search)."""
    votes = soft_votes(dist, ids, feature_bits, p, allowed, background)
    order = np.argsort(-votes.score, kind="stable")[:candidates]
    voted = [int(s) for s in order if votes.score[s] >= p.min_score and pages[s] is not None]
    laid_out = layout_consistent(q, votes, dist, ids, pages, feature_bits, p)[:min(p.layout_candidates, candidates)]
    if not laid_out and no_layout is not None:
        no_layout()
    return (laid_out + [s for s in voted if s not in laid_out])[:candidates], votes
