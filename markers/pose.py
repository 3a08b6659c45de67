"""Camera pose of a recognized page from its homography or corners (solvePnP on the four page corners).

Object frame: page millimetres, origin at the page's top-left corner, x right, y down (docs/ARCHITECTURE.md),
z = x cross y, i.e. *into* the paper (away from the reader). ``rvec``/``tvec`` map object points (mm) into the
OpenCV camera frame (x right, y down, z forward), so ``tvec`` is in mm.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

DEFAULT_FOCAL_FACTOR = 1.0  # focal ~ frame width: a typical phone main camera (~53 deg horizontal field of view)
FOCAL_RANGE = (0.4, 4.0)  # estimated focal / frame width outside this is not believed


@dataclass(frozen=True, eq=False)
class Pose:
    """rvec (3,) and tvec (3,) float64 (mm): page mm -> camera; K (3, 3) float64 intrinsics used."""
    rvec: np.ndarray
    tvec: np.ndarray
    K: np.ndarray


def _corners(homography_or_corners: np.ndarray, width_mm: float, height_mm: float) -> np.ndarray:
    a = np.asarray(homography_or_corners, np.float64)
    page = np.array([[0, 0], [width_mm, 0], [width_mm, height_mm], [0, height_mm]], np.float64)
    if a.shape == (3, 3):
        return cv2.perspectiveTransform(page.reshape(-1, 1, 2), a).reshape(4, 2)
    if a.shape == (4, 2):
        return a
    raise ValueError(f"expected a (3, 3) homography or (4, 2) corners, got shape {a.shape}")


def estimate_focal(corners: np.ndarray, width_mm: float, height_mm: float,
                   frame_size: tuple[int, int]) -> float | None:
    """Focal length in px from a page-plane homography, principal point at the frame centre, square pixels
    (Zhang's constraints r1.r2 = 0 and |r1| = |r2|). None when the view is too frontal to tell."""
    w, h = frame_size
    page = np.array([[0, 0], [width_mm, 0], [width_mm, height_mm], [0, height_mm]], np.float64)
    c = corners - np.array([w / 2, h / 2])
    H = cv2.getPerspectiveTransform(page.astype(np.float32), c.astype(np.float32)).astype(np.float64)
    h1, h2 = H[:, 0], H[:, 1]
    estimates = []
    den = h1[2] * h2[2]
    if abs(den) > 1e-12:
        f2 = -(h1[0] * h2[0] + h1[1] * h2[1]) / den
        if f2 > 0:
            estimates.append(f2)
    den = h1[2] ** 2 - h2[2] ** 2
    if abs(den) > 1e-12:
        f2 = (h2[0] ** 2 + h2[1] ** 2 - h1[0] ** 2 - h1[1] ** 2) / den
        if f2 > 0:
            estimates.append(f2)
    good = [np.sqrt(f2) for f2 in estimates if FOCAL_RANGE[0] * w <= np.sqrt(f2) <= FOCAL_RANGE[1] * w]
    return float(np.median(good)) if good else None


def estimate_pose(homography_or_corners: np.ndarray, width_mm: float, height_mm: float,
                  frame_size: tuple[int, int], focal_px: float | None = None) -> Pose:
    """Pose of the page in the camera. homography_or_corners: (3,3) page mm -> frame px, or (4,2) corners
    tl,tr,br,bl in frame px; frame_size: (w, h) px; focal_px: None -> estimated from the homography (falls back
    to DEFAULT_FOCAL_FACTOR x frame width)."""
    corners = _corners(homography_or_corners, width_mm, height_mm)
    w, h = frame_size
    if focal_px is None:
        focal_px = estimate_focal(corners, width_mm, height_mm, frame_size) or DEFAULT_FOCAL_FACTOR * w
    K = np.array([[focal_px, 0, w / 2], [0, focal_px, h / 2], [0, 0, 1]], np.float64)
    obj = np.array([[0, 0, 0], [width_mm, 0, 0], [width_mm, height_mm, 0], [0, height_mm, 0]], np.float64)
    ok, rvec, tvec = cv2.solvePnP(obj, corners.astype(np.float64), K, None, flags=cv2.SOLVEPNP_IPPE)
    if not ok:
        raise ValueError("solvePnP failed for corners " + np.array2string(corners, precision=1))
    return Pose(rvec.reshape(3), tvec.reshape(3), K)
