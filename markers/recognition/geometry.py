"""Geometry shared by the stages: page corners, projecting points with a homography, plausible page quads.

Coordinates: photo px are pixel-index coordinates (OpenCV's: the centre of the top-left pixel is (0, 0)); page mm have
their origin at the page's top-left corner, x right, y down."""
from __future__ import annotations

import cv2
import numpy as np


def page_corners_mm(width_mm: float, height_mm: float) -> np.ndarray:
    """Page corners (tl, tr, br, bl) in page mm: (4, 2) float64."""
    return np.array([[0, 0], [width_mm, 0], [width_mm, height_mm], [0, height_mm]], np.float64)


def project(h: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Apply homography ``h`` to (N, 2) points."""
    return cv2.perspectiveTransform(pts.reshape(-1, 1, 2).astype(np.float64), h).reshape(-1, 2)


def quad_ok(corners: np.ndarray, size: tuple[int, int]) -> bool:
    """Plausible projection of a page: convex, not tiny, corners not absurdly far outside the frame."""
    if not np.all(np.isfinite(corners)):
        return False
    if not cv2.isContourConvex(corners.astype(np.float32).reshape(-1, 1, 2)):
        return False
    w, h = size
    if np.abs(corners).max() > 20 * max(w, h):
        return False
    x, y = corners[:, 0], corners[:, 1]
    signed = 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))
    # Same orientation as the page (tl, tr, br, bl): a printed page is never seen mirrored.
    return signed >= 24 * 24


def inside_convex(poly: np.ndarray, pts: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(N,) bool: points inside the convex polygon ``poly`` (clipped to the w x h frame), by rasterizing it."""
    w, h = size
    mask = np.zeros((h, w), np.uint8)
    poly = np.clip(poly, -4 * max(w, h), 4 * max(w, h))
    cv2.fillConvexPoly(mask, np.round(poly * 4).astype(np.int32), 1, lineType=cv2.LINE_8, shift=2)
    xi = np.clip(pts[:, 0].astype(np.int64), 0, w - 1)
    yi = np.clip(pts[:, 1].astype(np.int64), 0, h - 1)
    return mask[yi, xi].astype(bool)


def long_side(corners: np.ndarray) -> float:
    """Longest side of a projected page (tl, tr, br, bl) in px."""
    return float(max(np.linalg.norm(corners[3] - corners[0]), np.linalg.norm(corners[2] - corners[1]),
                     np.linalg.norm(corners[1] - corners[0]), np.linalg.norm(corners[2] - corners[3])))
