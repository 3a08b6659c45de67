"""Pose refinement, the final look at an accepted page: the photo rectified with the accepted homography, matched
against the page again, and the homography refitted (corner accuracy; p.final_look_*)."""
from __future__ import annotations

import cv2
import numpy as np

from .geometry import long_side, page_corners_mm, project, quad_ok
from .looks import rectify
from .params import RecognitionParams
from .photo import QueryFeatures
from .verification import Verified, page_correspondences


def refine_homography(q: QueryFeatures, v: Verified, page_desc: np.ndarray, page_mm: np.ndarray,
                      width_mm: float, height_mm: float, p: RecognitionParams) -> np.ndarray | None:
    """The final look (FINAL_LOOK_*) at the accepted hypothesis ``v`` (verified on ``q``): its homography page mm
    -> working px refitted on its own fit correspondences plus the matches found in the photo rectified with it,
    or None when that look does not confirm it well enough (the caller keeps ``v.homography``).
    page_desc/page_mm: all the page's features and their positions."""
    h = v.homography
    rect = rectify(q, h, width_mm, height_mm, p, upscale=p.final_look_upscale, features=p.final_look_features,
                   max_side=p.final_look_max_side)
    if rect is None:
        return None
    rq, to_rect = rect
    c = page_correspondences(rq.descriptors, page_desc, page_mm, p)
    src = page_mm[c.f_idx].astype(np.float64)
    dst = project(np.linalg.inv(to_rect), rq.xy[c.q_idx])  # measured in the rectified look, in working px
    refined = h
    for thr in p.final_look_px:
        inl = np.linalg.norm(project(refined, src) - dst, axis=1) < thr
        if inl.sum() < p.final_look_min_inliers:
            return None
        refined, _ = cv2.findHomography(np.vstack([src[inl], v.fit_mm]), np.vstack([dst[inl], v.fit_px]), 0)
        if refined is None:
            return None
    refined = refined / refined[2, 2]
    corners_mm = page_corners_mm(width_mm, height_mm)
    before, after = project(h, corners_mm), project(refined, corners_mm)
    shift = float(np.linalg.norm(after - before, axis=1).max())
    if not quad_ok(after, q.size) or shift > p.final_look_max_shift * long_side(before):
        return None
    return refined
