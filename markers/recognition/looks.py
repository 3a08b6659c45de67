"""Other looks at the photo, each a ``QueryFeatures`` in the working image's px: enlarged (``magnified``), its paper
region at a middle catalog scale (``paper_features``; both together: ``closer_look``), un-tilted in one direction
(``untilted``), and warped so a hypothesised page appears frontally (``rectify``)."""
from __future__ import annotations

import cv2
import numpy as np

from ..pixels import to_edge, to_index
from .geometry import long_side, page_corners_mm, project
from .params import RecognitionParams
from .photo import QueryFeatures, photo_orb


def magnified(q: QueryFeatures, p: RecognitionParams) -> QueryFeatures:
    """Features of the working image enlarged p.magnify times, in working px: a page under ~250 px tall leaves ORB
    (31 px patches, FAST on a 7 px circle) too few usable corners at its own size."""
    assert q.gray is not None
    big = cv2.resize(q.gray, None, fx=p.magnify, fy=p.magnify, interpolation=cv2.INTER_CUBIC)
    xy, desc = photo_orb(big, p.magnified_features, p)
    return QueryFeatures(to_index(to_edge(xy) / p.magnify).astype(np.float32), desc, q.size, q.scale, q.gray, q.color)


def paper_box(color: np.ndarray, p: RecognitionParams) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) px (x1, y1 exclusive) of the paper in a BGR photo: the bounding box of its largest bright,
    nearly colourless region (PAPER_*), p.paper_margin of its long side wider on every side and clipped to the
    photo, or None when there is no such region."""
    hsv = cv2.cvtColor(color, cv2.COLOR_BGR2HSV)
    mask = ((hsv[:, :, 1] < p.paper_max_saturation) & (hsv[:, :, 2] > p.paper_min_value)).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((p.paper_close_px, p.paper_close_px), np.uint8))
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((p.paper_open_px, p.paper_open_px), np.uint8))
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask)
    x, y, w, h, area = stats[1:].T if n > 1 else np.zeros((5, 0), np.int64)
    ok = (area >= p.paper_min_area) & (area >= p.paper_min_fill * w * h)
    if not ok.any():
        return None
    j = int(np.argmax(np.where(ok, area, -1)))
    m = int(p.paper_margin * max(w[j], h[j]))
    rows, cols = mask.shape
    return (max(0, int(x[j]) - m), max(0, int(y[j]) - m), min(cols, int(x[j] + w[j]) + m),
            min(rows, int(y[j] + h[j]) + m))


def paper_features(q: QueryFeatures, p: RecognitionParams) -> tuple[np.ndarray, np.ndarray] | None:
    """(xy working px, descriptors) of p.paper_features features of the paper region (``paper_box``) resized to
    p.paper_long_side px, or None for a grey photo or one without such a region."""
    color = q.color() if q.color is not None else None
    if color is None or q.gray is None:
        return None
    if color.shape[:2] != q.gray.shape:
        color = cv2.resize(color, (q.gray.shape[1], q.gray.shape[0]), interpolation=cv2.INTER_AREA)
    box = paper_box(color, p)
    if box is None:
        return None
    x0, y0, x1, y1 = box
    s = p.paper_long_side / max(x1 - x0, y1 - y0)
    region = cv2.resize(q.gray[y0:y1, x0:x1], None, fx=s, fy=s,
                        interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    xy, desc = photo_orb(region, p.paper_features, p)
    # region px -> working px, pixel-index coordinates (markers.pixels): (region + 0.5) / s = (working - corner) + 0.5
    return (to_index(to_edge(xy) / s) + np.array([x0, y0], np.float32)).astype(np.float32), desc


def closer_look(q: QueryFeatures, p: RecognitionParams) -> QueryFeatures:
    """The closer look's features, in working px: the photo enlarged (``magnified``) and, in colour, the paper
    region at a middle catalog scale (``paper_features``), searched and verified together."""
    big = magnified(q, p)
    paper = paper_features(q, p)
    if paper is None or len(paper[0]) == 0:
        return big
    return QueryFeatures(np.vstack([big.xy, paper[0]]), np.vstack([big.descriptors, paper[1]]), q.size, q.scale,
                         q.gray, q.color)


def untilt_map(size: tuple[int, int], direction_deg: float, p: RecognitionParams
               ) -> tuple[np.ndarray, tuple[int, int]]:
    """The un-tilted copy of an image of ``size`` (w, h) along ``direction_deg`` (p.tilt, p.tilt_squeeze: stretched along
    it, shrunk across it, the area kept): (2 x 3 affine map image px -> copy px, pixel-index coordinates; the copy's
    size (w, h), the image's bounding box there)."""
    a = np.radians(direction_deg)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    lin = rot @ np.diag([p.tilt ** (1 - p.tilt_squeeze), p.tilt ** -p.tilt_squeeze]) @ rot.T
    w, h = size
    ends = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64) @ lin.T
    # Pixel edges map linearly (markers.pixels: index + 0.5), and the copy starts at the image's bounding box.
    shift = -ends.min(axis=0) + lin @ [0.5, 0.5] - 0.5
    extent = np.ceil(ends.max(axis=0) - ends.min(axis=0)).astype(int)
    return np.c_[lin, shift], (int(extent[0]), int(extent[1]))


def untilted(q: QueryFeatures, direction_deg: float, p: RecognitionParams) -> QueryFeatures:
    """p.tilt_features features of the working image's un-tilted copy along ``direction_deg`` (``untilt_map``),
    placed back in the working image's px."""
    assert q.gray is not None
    to_copy, size = untilt_map(q.size, direction_deg, p)
    copy = cv2.warpAffine(q.gray, to_copy, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    xy, desc = photo_orb(copy, p.tilt_features, p)
    back = cv2.invertAffineTransform(to_copy)
    return QueryFeatures((xy @ back[:, :2].T + back[:, 2]).astype(np.float32), desc, q.size, q.scale, q.gray,
                         q.color)


def rectify(q: QueryFeatures, h_mm_to_px: np.ndarray, width_mm: float, height_mm: float, p: RecognitionParams,
            upscale: float | None = None, features: int | None = None, max_side: float | None = None
            ) -> tuple[QueryFeatures, np.ndarray] | None:
    """The photo warped so the hypothesised page appears frontally, its long side ``upscale`` x its apparent
    size (within p.rectify_min_side..p.rectify_max_side px; by default p.rectify_upscale, p.rectify_features).

    Returns (features of the rectified image, 3x3 working px -> rectified px) or None if the hypothesis is too
    degenerate to warp. Rectified px = mm * r (r px per mm), so a homography found there maps page mm -> rect px."""
    upscale = p.rectify_upscale if upscale is None else upscale
    features = p.rectify_features if features is None else features
    max_side = p.rectify_max_side if max_side is None else max_side
    if q.gray is None:
        return None
    apparent = long_side(project(h_mm_to_px, page_corners_mm(width_mm, height_mm)))
    side = float(np.clip(upscale * apparent, p.rectify_min_side, max_side))
    r = side / max(width_mm, height_mm)
    try:
        to_rect = np.diag([r, r, 1.0]) @ np.linalg.inv(h_mm_to_px)
    except np.linalg.LinAlgError:
        return None
    size = (max(32, int(round(width_mm * r))), max(32, int(round(height_mm * r))))
    rect = cv2.warpPerspective(q.gray, to_rect, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    xy, desc = photo_orb(rect, features, p)
    return QueryFeatures(xy, desc, size, 1.0, None), to_rect
