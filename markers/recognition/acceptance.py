"""Acceptance: whether the best verified page is the page in the photo (``accept``, ``accept_body``), and which of
two catalog pages in view the reader aims at (``aimed_first``, ``aimed_elsewhere``).

Acceptance needs the inliers to be exclusive to the best page (margin over the runner-up), to cover the page's
textured cells and to carry exclusive evidence in the votes (or cover nearly all of them, or lie in good number
away from what the page prints in common with other pages), which rejects a non-catalog page sharing only a
masthead or an ad with catalog pages. The thresholds and their measurements: RecognitionParams (acceptance)."""
from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from ..pixels import to_index
from .candidates import Votes
from .geometry import inside_convex, page_corners_mm, project
from .params import RecognitionParams
from .verification import Verified


def accept(best: Verified, runner: Verified | None, cover: float, exclusive: float, p: RecognitionParams,
           second_look: bool = False, closer: bool = False) -> tuple[bool, float]:
    """Acceptance of the best verified page. Returns (accepted, score in [0, 1]).

    The inliers must be exclusive to the best page (not also explained by the runner-up, >= p.margin x the
    runner-up's own, p.margin_partial x when they cover only part of the page or when this is a ``second_look``
    at a rejected hypothesis, the rectified pass) and cover the page's textured cells (``cell_coverage``); then
    either many inliers with some exclusive evidence in the index votes (``evidence``: shared regions spread
    their votes over every page that has them), or fewer inliers with more exclusive evidence over more of the
    page, or many inliers over nearly all of the page's textured cells, whatever the votes (a page found by its
    layout, rz.affine_consistency, often has little exclusive evidence). A page seen by the ``closer`` look
    needs more on top (CLOSER_*). A page rejected here may still be accepted on its body inliers (``accept_body``)."""
    excl_best, excl_runner = exclusive_inliers(best, runner)
    n = len(best.inlier_q)
    margin = p.margin if cover >= p.partial_coverage and not second_look else p.margin_partial
    margin_ok = n >= p.min_inliers and excl_best >= p.min_inliers and excl_best >= margin * excl_runner
    strong = ((n >= p.min_inliers_alone and exclusive >= p.min_exclusive_alone)
              or (n >= p.min_inliers_backed and exclusive >= p.min_exclusive and cover >= p.min_coverage_backed)
              or (n >= p.min_inliers_whole and cover >= p.min_coverage_whole and excl_best >= p.margin_whole * excl_runner))
    ok = margin_ok and cover >= p.min_coverage and strong
    if closer:
        ok = (ok and n >= p.closer_min_inliers and cover >= p.closer_min_coverage
              and excl_best >= p.closer_margin * excl_runner)
    score = float(excl_best / (excl_best + excl_runner + p.min_inliers)) * min(1.0, cover)
    return ok, score


def exclusive_inliers(best: Verified, runner: Verified | None) -> tuple[int, int]:
    """Inliers of the best page not shared with the runner-up's, and the runner-up's not shared with the best's."""
    if runner is None:
        return len(best.inlier_q), 0
    shared = len(np.intersect1d(best.inlier_q, runner.inlier_q))
    return len(best.inlier_q) - shared, len(runner.inlier_q) - shared


def body_may_decide(best: Verified, runner: Verified | None, cover: float, p: RecognitionParams) -> bool:
    """Whether a page rejected by ``accept`` could still be accepted on its body inliers (``accept_body``): the cheap
    conditions, checked before the page's shared features are looked up."""
    excl_best, excl_runner = exclusive_inliers(best, runner)
    return (len(best.inlier_q) >= p.body_min_inliers and cover >= p.body_min_coverage
            and excl_best >= p.body_margin * excl_runner)


def body_inliers(v: Verified, shared_mm: np.ndarray, p: RecognitionParams) -> int:
    """Inliers of ``v`` whose page position (through v's homography) lies farther than p.body_mm from every page
    feature the page shares with other pages (``shared_mm`` (M, 2) page mm)."""
    if len(v.inlier_pts) == 0:
        return 0
    try:
        mm = project(np.linalg.inv(v.homography), v.inlier_pts)
    except np.linalg.LinAlgError:
        return 0
    if len(shared_mm) == 0:
        return len(mm)
    d2 = ((mm[:, None, :] - shared_mm[None, :, :]) ** 2).sum(axis=2).min(axis=1)
    return int((d2 > p.body_mm ** 2).sum())


def accept_body(best: Verified, runner: Verified | None, cover: float, body: int, p: RecognitionParams) -> bool:
    """Acceptance of a page on its body inliers (BODY_*), whatever its votes."""
    return body_may_decide(best, runner, cover, p) and body >= p.body_min_inliers



def cell_coverage(v: Verified, q_xy: np.ndarray, width_mm: float, height_mm: float, p: RecognitionParams) -> float:
    """Share of the page's *textured* cells (photo features mapped onto the page by the inverse homography) that
    contain at least one inlier. A correct match has inliers wherever the photo shows texture; a non-catalog page
    sharing only a masthead or an ad has inliers in those cells only."""
    try:
        inv = np.linalg.inv(v.homography)
    except np.linalg.LinAlgError:
        return 0.0
    mm = project(inv, q_xy)
    g = p.cover_grid
    on = (mm[:, 0] >= 0) & (mm[:, 1] >= 0) & (mm[:, 0] < width_mm) & (mm[:, 1] < height_mm)
    if on.sum() == 0:
        return 0.0
    cell = (np.minimum((mm[:, 1] * g / height_mm).astype(np.int64), g - 1) * g
            + np.minimum((mm[:, 0] * g / width_mm).astype(np.int64), g - 1))
    feats = np.bincount(cell[on], minlength=g * g)
    inl = np.zeros(len(q_xy), bool)
    inl[v.inlier_q] = True
    hits = np.bincount(cell[on & inl], minlength=g * g)
    textured = feats >= max(p.cover_min_features, p.cover_min_share * on.sum())
    if textured.sum() == 0:
        return 0.0
    return float((hits[textured] > 0).mean())


def evidence(points: np.ndarray, q_xy: np.ndarray, weights: np.ndarray, tol: float) -> float:
    """Exclusive evidence of inliers at ``points`` (working px): the sum of the votes that the photo features
    there gave the page in the index search. A masthead or an ad shared by many catalog pages spreads its votes
    over all of them, so a non-catalog page that shares only those earns little, however many inliers."""
    if len(points) == 0 or len(q_xy) == 0:
        return 0.0
    d = np.linalg.norm(points[:, None, :].astype(np.float32) - q_xy[None, :, :], axis=2)
    near = d.argmin(axis=1)
    hit = d[np.arange(len(points)), near] <= tol
    # each photo feature counts once
    return float(weights[np.unique(near[hit])].sum())


def aimed_first(verified: list[Verified], size: tuple[int, int], pages: Sequence, p: RecognitionParams
                ) -> list[Verified]:
    """Two catalog pages genuinely in one photo (strong, *disjoint* inlier sets, e.g. a page and a poster beside
    it): the reader aims at the one nearer the frame centre, so it goes first and the other is not its runner-up
    (they do not compete for the same photo features). pages: page records by slot (width_mm, height_mm)."""
    if len(verified) < 2:
        return verified
    a, b = verified[0], verified[1]
    shared = len(np.intersect1d(a.inlier_q, b.inlier_q))
    strong = all(len(v.inlier_q) >= p.min_inliers and v.distinct >= p.min_distinct for v in (a, b))
    if not strong or shared > p.two_pages_max_shared * min(len(a.inlier_q), len(b.inlier_q)):
        return verified
    centre = np.array([size[0] / 2, size[1] / 2])

    def off_centre(v: Verified) -> float:
        page = pages[v.slot]
        mid = project(v.homography, np.array([[page.width_mm / 2, page.height_mm / 2]]))[0]
        return float(np.linalg.norm(mid - centre))

    first, _ = sorted((a, b), key=off_centre)
    return [first] + verified[2:]


def aimed_elsewhere(q_xy: np.ndarray, size: tuple[int, int], v: Verified, page, rest: list[int], votes: Votes,
                    p: RecognitionParams) -> list[int]:
    """Of the candidates ``rest`` not verified yet, the one (if any) that may be the page the reader aims at rather
    than v's (``page``), accepted off the frame centre: p.layout_min or more of its index hits (votes.near) lie
    outside v's page, nearer the frame centre (median) than v's page is. A page accepted elsewhere is usually the
    only one in view, and such a candidate's hits are then few and scattered over the photo."""
    corners = project(v.homography, page_corners_mm(page.width_mm, page.height_mm))
    centre = to_index(np.array([size[0] / 2, size[1] / 2]))  # the frame's centre, pixel-index coordinates
    off = -cv2.pointPolygonTest(corners.astype(np.float32).reshape(-1, 1, 2), tuple(centre), True)
    if off <= 0 or not rest:
        return []
    outside = ~inside_convex(corners, q_xy, size)
    best, most = [], p.layout_min - 1
    for slot in rest:
        rows = np.nonzero((votes.near == slot).any(axis=1) & outside)[0]
        if len(rows) > most and np.median(np.linalg.norm(q_xy[rows] - centre, axis=1)) < off:
            best, most = [slot], len(rows)
    return best
