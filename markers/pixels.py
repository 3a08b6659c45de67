"""Pixel-index coordinates, converted in one place.

OpenCV (cv2.resize, cv2.warpPerspective, cv2.findHomography, ORB keypoints) puts pixel *centres* at integers:
pixel i covers [i - 0.5, i + 0.5) — "index coordinates". Resizing an image by s scales its pixel *edges*
(edge 0 stays 0, edge W becomes s W), so a point is scaled in "edge coordinates", where pixel i covers [i, i + 1):

    edge = index + 0.5        index = edge - 0.5
    a point resized by s:     index' = (index + 0.5) s - 0.5
    a point to page mm:       mm = (index + 0.5) * (page mm / image px)

Dropping the 0.5 shifts every point by half a pixel per halving of the scale (tests/markers/test_pixels.py).
"""
from __future__ import annotations

import numpy as np

# The same two shifts as 3 x 3 homographies (x, y, 1): EDGE_TO_INDEX @ H @ INDEX_TO_EDGE is H in index coordinates.
INDEX_TO_EDGE = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])
EDGE_TO_INDEX = np.array([[1.0, 0.0, -0.5], [0.0, 1.0, -0.5], [0.0, 0.0, 1.0]])


def to_edge(xy: np.ndarray) -> np.ndarray:
    """Index coordinates (pixel centres at integers) -> edge coordinates (pixel i spans [i, i + 1)); dtype kept."""
    return xy + 0.5


def to_index(xy: np.ndarray) -> np.ndarray:
    """Edge coordinates -> index coordinates; dtype kept."""
    return xy - 0.5
