"""Verification of one candidate page: the photo's features matched exactly against all the page's features
(``page_correspondences``), then a homography found by PROSAC and refitted by least squares (``verify``)."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import faiss
import numpy as np

from ..workers import one_faiss_thread
from .geometry import page_corners_mm, project, quad_ok
from .params import RecognitionParams


@dataclass(frozen=True)
class PageCorrespondences:
    """Exact matches of every query feature against one candidate page's own features (all of them, not only
    the indexed subset): q_idx (M,) query feature, f_idx (M,) page feature, ratio (M,) distance to the nearest /
    to the nearest at another point of the page (lower: more distinctive)."""
    q_idx: np.ndarray
    f_idx: np.ndarray
    ratio: np.ndarray


def page_correspondences(q_desc: np.ndarray, page_desc: np.ndarray, page_mm: np.ndarray, p: RecognitionParams
                         ) -> PageCorrespondences:
    """Nearest page feature of each query feature within p.max_hamming (FAISS exact search, a few ms per page).

    The ratio test compares with the nearest feature at another *point* of the page: the same point is stored at
    several catalog scales with near-identical descriptors, which must not make it ambiguous."""
    k = min(p.page_knn, len(page_desc))
    flat = faiss.IndexBinaryFlat(page_desc.shape[1] * 8)
    flat.add(np.ascontiguousarray(page_desc))
    # One OpenMP thread: a page is too small a search to share (1,500 x 830 features: 1.9 ms on one thread, 2.0 on
    # two), and pages are verified two at a time already. Interleaved A/B, tuning photos at 10,000 pages: non-catalog
    # photos mean 102.5 -> 92.7 ms, p95 137 -> 122; at 1,000 pages photos of catalog pages p50 37.6 -> 34.7 ms.
    with one_faiss_thread():
        dist, nn = flat.search(np.ascontiguousarray(q_desc), k)
    d1, f1 = dist[:, 0], nn[:, 0]
    d2 = np.full(len(q_desc), 256, np.int64)
    if k > 1:
        far = np.linalg.norm(page_mm[np.clip(nn[:, 1:], 0, None)] - page_mm[f1][:, None, :], axis=2) > p.same_point_mm
        far &= nn[:, 1:] >= 0
        has = far.any(axis=1)
        d2 = np.where(has, dist[np.arange(len(dist)), 1 + far.argmax(axis=1)], 256)
    ok = (f1 >= 0) & (d1 <= p.max_hamming)
    q_idx = np.nonzero(ok)[0]
    return PageCorrespondences(q_idx, f1[ok].astype(np.int64), (d1 / np.maximum(d2, 1))[ok])


@dataclass(frozen=True)
class Verified:
    """Outcome of verifying one candidate: H (3,3) page mm -> working px, inlier query-feature indices."""
    slot: int
    homography: np.ndarray
    inlier_q: np.ndarray
    distinct: int
    inlier_pts: np.ndarray  # (M, 2) photo px of the inliers (in the frame of the query that was verified)
    # The correspondences of the final least-squares fit: (K, 2) page mm and (K, 2) photo px (p.refine_px inliers).
    fit_mm: np.ndarray
    fit_px: np.ndarray


def verify(slot: int, q_xy: np.ndarray, page_mm: np.ndarray, q_idx: np.ndarray, quality: np.ndarray,
           width_mm: float, height_mm: float, size: tuple[int, int], p: RecognitionParams) -> Verified | None:
    """Homography page mm -> photo px for one candidate, in two stages:

    1. PROSAC (USAC) over all correspondences sorted by ``quality`` (within-page ratio, lower is better): it
       draws its samples from the most distinctive matches first, so a few hundred iterations find the model
       even when only ~10 % of the nearest-neighbour matches are right;
    2. guided re-collection over *all* correspondences (shared regions such as the masthead count for geometry),
       then least squares on the inliers at p.ransac_px and p.refine_px (corner accuracy).
    q_idx/page_mm: query features with a match on this page and the matched page positions; quality (aligned
    with q_idx): within-page ratio, the sort key of stage 1; inliers below p.distinct_ratio count as
    ``Verified.distinct``. Returns None when no plausible homography with p.min_hint_inliers exists (acceptance
    needs p.min_inliers)."""
    if len(q_idx) < p.min_hint_inliers:
        return None
    order = np.argsort(quality, kind="stable")
    q_idx, page_mm, quality = q_idx[order], page_mm[order], quality[order]
    src = page_mm.astype(np.float64)
    dst = q_xy[q_idx].astype(np.float64)
    h, mask = cv2.findHomography(src, dst, cv2.USAC_PROSAC, p.ransac_px, maxIters=p.usac_iters_all, confidence=0.995)
    if h is None or mask is None or int(mask.sum()) < p.min_hint_inliers:
        return None
    for thr in (p.ransac_px, p.refine_px):  # re-collect inliers with the model, then least squares on them
        err = np.linalg.norm(project(h, src) - dst, axis=1)
        fit = err < thr
        if fit.sum() < p.min_hint_inliers:
            return None
        h2, _ = cv2.findHomography(src[fit], dst[fit], 0)
        if h2 is None:
            return None
        h = h2
    err = np.linalg.norm(project(h, src) - dst, axis=1)
    inl = err < p.ransac_px
    corners = project(h, page_corners_mm(width_mm, height_mm))
    if int(inl.sum()) < p.min_hint_inliers or not quad_ok(corners, size):
        return None
    inlier_q = np.unique(q_idx[inl])
    # One inlier per photo location (a photo feature can match a point stored at two catalog scales).
    _, first = np.unique(np.round(q_xy[inlier_q] / p.dedup_px).astype(np.int64), axis=0, return_index=True)
    inlier_q = inlier_q[np.sort(first)]
    if len(inlier_q) < p.min_hint_inliers:
        return None
    is_distinct = np.zeros(len(q_xy), bool)
    is_distinct[q_idx[quality < p.distinct_ratio]] = True
    return Verified(slot, h, inlier_q, int(is_distinct[inlier_q].sum()), q_xy[inlier_q], src[fit], dst[fit])
