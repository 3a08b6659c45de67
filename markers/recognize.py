"""Recognition stages used by ``RecognitionIndex.recognize``: photo decoding, query features, candidate voting with
a ratio test against the nearest *other* page, and geometric verification/acceptance of one candidate.

Why each stage (numbers from RESEARCH.md and bench/bench_recognition.py):
- voting with a plain distance threshold lets printed text elsewhere in the photo pile votes onto text-heavy pages;
  requiring the nearest neighbour to beat the nearest neighbour *from a different page* by ``RATIO`` removes that,
  and it automatically silences features shared by many pages (mastheads, repeated ads) without a stop list;
- the best candidates are verified by USAC homographies seeded with the stricter (0.8) matches; a weak but
  plausible homography rectifies the photo for a second search, and simulated tilted views give a third;
- acceptance is decided by USAC homography verification, then by the evidence that is *exclusive* to the best
  page (inliers not shared with the runner-up's inliers) and by how much of the visible page the inliers explain,
  which rejects a non-catalog page sharing only a masthead or an ad with catalog pages.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageOps

from .errors import InvalidImageError
from .features import as_gray, detect_orb, resize_long_side

QUERY_MAX_SIDE = 1280  # larger photos are shrunk first: a page at 1280 px still has 4x margin over the catalog
QUERY_FEATURES = 1500  # features per photo: recall on small pages vs. search time (bench)
QUERY_FAST_THRESHOLD = 10  # phone photos are blurred/compressed: a lower FAST threshold keeps small pages alive
KNN = 20  # neighbours per query feature: deep enough to keep true correspondences among 1,000s of pages
MAX_HAMMING = 64  # of 256 bits; beyond this ORB matches are mostly chance
# d(best) < RATIO * d(nearest from another page), Lowe's test across pages. With 1,000 pages 0.8 starved true
# pages of votes: tuning photos (seeds 500,000+) 64 % top-1 at (0.8, k=10), 79 % at (0.95, 10), 80 % at
# (0.95, 20), with 0 of 60 false positives each (acceptance, not voting, rejects look-alikes).
RATIO = 0.95
STRICT_RATIO = 0.8  # matches this distinctive seed the homography first (a high inlier ratio for USAC)
MIN_VOTES = 5  # a candidate needs this many distinctive matches to be verified
MAX_CANDIDATES = 8  # at most this many pages are verified per photo
RANSAC_PX = 5.0  # USAC inlier threshold in photo px (photos at <= 1280 px)
REFINE_PX = 3.0  # tighter threshold of the least-squares refinement (corner accuracy)
USAC_ITERS = 500
USAC_ITERS_ALL = 2000  # fallback on all correspondences: low inlier ratio
MIN_SEED = 7  # distinctive inliers needed to seed the model in stage 1
MIN_INLIERS = 12  # below this a homography from ORB matches is not trustworthy
MIN_HINT_INLIERS = 8  # a weaker homography is still good enough to rectify the photo for a second pass
RECTIFY_CANDIDATES = 2  # weak hypotheses tried in the rectified second pass
RECTIFY_UPSCALE = 1.5  # rectified page long side = 1.5 x its apparent size in the photo ...
RECTIFY_MIN_SIDE, RECTIFY_MAX_SIDE = 320, 1100  # ... within the span of the catalog scales
RECTIFY_FEATURES = 1000
TILT_SIMULATION = True  # third pass with simulated tilts when nothing else matched
TILT_COMPRESSION = 0.55  # ~ cos(57 deg): undoes the foreshortening of a page tilted ~45-60 deg
TILT_DIRECTIONS_DEG = (0.0, 60.0, 120.0)
DEDUP_PX = 3.0  # inliers closer than this in the photo count once
TILT_FEATURES = 600  # per simulated view: the three views together cost about one main-pass search
MARGIN = 1.5  # exclusive inliers of the best page >= MARGIN x the runner-up's (RESEARCH.md: 1.5 kept FPs near 0)
MIN_DISTINCT = 8  # distinctive inliers (passed the cross-page ratio test) for the first acceptance path
MIN_COVERAGE = 0.55  # textured page cells holding an inlier (cell_coverage); masthead+footer-only agreement < 0.5
MIN_INLIERS_ALONE = 40  # second path: this many inliers even if few are distinctive (strong tilt) ...
MIN_COVERAGE_ALONE = 0.7  # ... with a higher coverage
TWO_PAGES_MAX_SHARED = 0.2  # two verified pages sharing < 20 % of inliers are two pages in view, not rivals


@dataclass(frozen=True, eq=False)
class PageMatch:
    """A recognized page. homography : (3, 3) float64, page mm -> photo px; corners : (4, 2) float64 photo px of
    the page corners (tl, tr, br, bl); inliers : geometric inliers; score : confidence in (0, 1]."""
    page_id: str
    homography: np.ndarray
    corners: np.ndarray
    inliers: int
    score: float


def decode_photo(data: bytes) -> np.ndarray:
    """Decode a JPEG/PNG/WebP photo to a (h, w, 3) uint8 BGR array, honouring its EXIF orientation.

    Raises InvalidImageError for anything that is not a decodable image."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            im = ImageOps.exif_transpose(im)
            rgb = np.asarray(im.convert("RGB"))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise InvalidImageError(f"not a decodable image ({len(data)} bytes): {exc}") from exc
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)


@dataclass(frozen=True)
class QueryFeatures:
    """Features of one photo. xy : (N, 2) float32 px in the *working* image; scale : working px per original px;
    gray : the working image (kept for the rectified second pass)."""
    xy: np.ndarray
    descriptors: np.ndarray
    size: tuple[int, int]  # working image (w, h)
    scale: float
    gray: np.ndarray | None = None


def query_features(image: np.ndarray | bytes, n: int = QUERY_FEATURES) -> QueryFeatures:
    """ORB features of a photo (np.ndarray BGR/grey, or encoded JPEG/PNG bytes)."""
    if isinstance(image, (bytes, bytearray, memoryview)):
        image = decode_photo(bytes(image))
    gray = as_gray(image)
    scale = 1.0
    if max(gray.shape) > QUERY_MAX_SIDE:
        gray, scale = resize_long_side(gray, QUERY_MAX_SIDE)

    xy, desc, _ = detect_orb(gray, n, oversample=2, fast_threshold=QUERY_FAST_THRESHOLD)
    return QueryFeatures(xy, desc, (gray.shape[1], gray.shape[0]), scale, gray)


def tilted_views(q: QueryFeatures) -> QueryFeatures:
    """Features of the photo compressed by TILT_COMPRESSION along each of TILT_DIRECTIONS_DEG, mapped back to
    working px and merged into one query (one search): a page foreshortened by a strong tilt looks frontal again
    in the view compressed perpendicular to its tilt axis."""
    assert q.gray is not None
    h, w = q.gray.shape
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64)
    xys, descs = [], []
    for deg in TILT_DIRECTIONS_DEG:
        a = np.radians(deg)
        rot = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
        lin = rot.T @ np.diag([TILT_COMPRESSION, 1.0]) @ rot  # compress along direction `deg`
        moved = corners @ lin.T
        offset = -moved.min(axis=0)
        size = np.ceil(moved.max(axis=0) + offset).astype(int)
        affine = np.hstack([lin, offset[:, None]])
        view = cv2.warpAffine(q.gray, affine, (int(size[0]), int(size[1])), flags=cv2.INTER_AREA,
                              borderMode=cv2.BORDER_REPLICATE)
        xy, desc, _ = detect_orb(view, TILT_FEATURES, oversample=2, fast_threshold=QUERY_FAST_THRESHOLD)
        back = (xy - offset) @ np.linalg.inv(lin).T
        xys.append(back.astype(np.float32))
        descs.append(desc)
    return QueryFeatures(np.concatenate(xys), np.concatenate(descs), q.size, q.scale, None)


def rectify(q: QueryFeatures, h_mm_to_px: np.ndarray, width_mm: float, height_mm: float
            ) -> tuple[QueryFeatures, np.ndarray] | None:
    """The photo warped so the hypothesised page appears frontally, long side RECTIFY_LONG_SIDE-ish px.

    Returns (features of the rectified image, 3x3 working px -> rectified px) or None if the hypothesis is too
    degenerate to warp. Rectified px = mm * r (r px per mm), so a homography found there maps page mm -> rect px."""
    if q.gray is None:
        return None
    corners = project(h_mm_to_px, page_corners_mm(width_mm, height_mm))
    apparent = max(np.linalg.norm(corners[3] - corners[0]), np.linalg.norm(corners[2] - corners[1]),
                   np.linalg.norm(corners[1] - corners[0]), np.linalg.norm(corners[2] - corners[3]))
    long_side = float(np.clip(RECTIFY_UPSCALE * apparent, RECTIFY_MIN_SIDE, RECTIFY_MAX_SIDE))
    r = long_side / max(width_mm, height_mm)
    try:
        to_rect = np.diag([r, r, 1.0]) @ np.linalg.inv(h_mm_to_px)
    except np.linalg.LinAlgError:
        return None
    size = (max(32, int(round(width_mm * r))), max(32, int(round(height_mm * r))))
    rect = cv2.warpPerspective(q.gray, to_rect, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    xy, desc, _ = detect_orb(rect, RECTIFY_FEATURES, oversample=2, fast_threshold=QUERY_FAST_THRESHOLD)
    return QueryFeatures(xy, desc, size, 1.0, None), to_rect


@dataclass
class Votes:
    """Per-query-feature results of the k-NN search, grouped for voting and verification.

    slots : (nq, k) int64 page slot of each neighbour (-1 none); feat : (nq, k) int64 feature index in its page;
    dist : (nq, k) int32 Hamming distance; voter : (nq,) slot each feature voted for (-1: ambiguous/no match)."""
    slots: np.ndarray
    feat: np.ndarray
    dist: np.ndarray
    voter: np.ndarray
    strict_voter: np.ndarray  # as voter, with the stricter STRICT_RATIO: seeds geometry, counts as distinctive


def cast_votes(dist: np.ndarray, ids: np.ndarray, feature_bits: int, allowed: np.ndarray | None = None) -> Votes:
    """Ratio test against the nearest neighbour from a *different page*, then one vote per query feature.

    ids encode ``slot << feature_bits | feature``. ``allowed`` (sorted slot array) restricts the search to a
    scope: other neighbours are dropped before the ratio test."""
    ids = ids.astype(np.int64)
    valid = (ids >= 0) & (dist <= MAX_HAMMING)
    slots = np.where(ids >= 0, ids >> feature_bits, -1)
    if allowed is not None:
        valid &= np.isin(slots, allowed)
    slots = np.where(valid, slots, -1)
    feat = np.where(valid, ids & ((1 << feature_bits) - 1), -1)
    dist = np.where(valid, dist, 10_000).astype(np.int32)
    # Re-sort each row by distance (dropping invalid entries may leave holes).
    order = np.argsort(dist, axis=1, kind="stable")
    slots, feat, dist = (np.take_along_axis(a, order, 1) for a in (slots, feat, dist))
    first = slots[:, 0]
    other = (slots != first[:, None]) & (slots >= 0)
    has_other = other.any(axis=1)
    d2 = np.where(has_other, dist[np.arange(len(dist)), other.argmax(axis=1)], 256)
    d2 = np.minimum(d2, 256)  # no other page within k: compare against 'chance' distance
    ok = (first >= 0) & (dist[:, 0] < RATIO * d2)
    strict = (first >= 0) & (dist[:, 0] < STRICT_RATIO * d2)
    return Votes(slots, feat, dist, np.where(ok, first, -1), np.where(strict, first, -1))


def correspondences(votes: Votes, slot: int) -> tuple[np.ndarray, np.ndarray]:
    """For page ``slot``: (query feature index (M,), page feature index (M,)) using each query feature's nearest
    neighbour on that page (distinctive or not: shared regions still help geometry)."""
    hit = votes.slots == slot
    rows = np.nonzero(hit.any(axis=1))[0]
    cols = hit[rows].argmax(axis=1)
    return rows, votes.feat[rows, cols]


@dataclass(frozen=True)
class Verified:
    """Outcome of verifying one candidate: H (3,3) page mm -> working px, inlier query-feature indices."""
    slot: int
    homography: np.ndarray
    inlier_q: np.ndarray
    distinct: int


def _quad_ok(corners: np.ndarray, size: tuple[int, int]) -> bool:
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


def page_corners_mm(width_mm: float, height_mm: float) -> np.ndarray:
    """Page corners (tl, tr, br, bl) in page mm: (4, 2) float64."""
    return np.array([[0, 0], [width_mm, 0], [width_mm, height_mm], [0, height_mm]], np.float64)


def project(h: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Apply homography ``h`` to (N, 2) points."""
    return cv2.perspectiveTransform(pts.reshape(-1, 1, 2).astype(np.float64), h).reshape(-1, 2)


def verify(slot: int, q_xy: np.ndarray, page_mm: np.ndarray, q_idx: np.ndarray, voter: np.ndarray,
           width_mm: float, height_mm: float, size: tuple[int, int],
           loose_voter: np.ndarray | None = None) -> Verified | None:
    """Homography page mm -> photo px for one candidate, in two stages:

    1. USAC on the *distinctive* correspondences (those whose query feature voted for this page: a high inlier
       ratio, so few iterations suffice); with too few of them, USAC on all correspondences;
    2. guided re-collection over *all* correspondences (shared regions such as the masthead count for geometry),
       then least squares on the inliers at RANSAC_PX and REFINE_PX (corner accuracy).
    q_idx/page_mm: every query feature with a neighbour on this page and that neighbour's page position.
    voter: strict votes (seeds); loose_voter: RATIO votes (seeds when strict ones are few; distinctive count).
    Returns None when no plausible homography with MIN_HINT_INLIERS exists (acceptance needs MIN_INLIERS)."""
    if len(q_idx) < MIN_HINT_INLIERS:
        return None
    src = page_mm.astype(np.float64)
    dst = q_xy[q_idx].astype(np.float64)
    distinct = voter[q_idx] == slot
    if distinct.sum() < MIN_SEED and loose_voter is not None:
        distinct = loose_voter[q_idx] == slot
    h = None
    if distinct.sum() >= MIN_SEED:
        h, mask = cv2.findHomography(src[distinct], dst[distinct], cv2.USAC_DEFAULT, RANSAC_PX,
                                     maxIters=USAC_ITERS, confidence=0.995)
        if mask is None or int(mask.sum()) < MIN_SEED:
            h = None
    if h is None:
        h, mask = cv2.findHomography(src, dst, cv2.USAC_DEFAULT, RANSAC_PX, maxIters=USAC_ITERS_ALL,
                                     confidence=0.995)
        if h is None or mask is None or int(mask.sum()) < MIN_HINT_INLIERS:
            return None
    for thr in (RANSAC_PX, REFINE_PX):  # re-collect inliers with the model, then least squares on them
        err = np.linalg.norm(project(h, src) - dst, axis=1)
        inl = err < thr
        if inl.sum() < MIN_HINT_INLIERS:
            return None
        h2, _ = cv2.findHomography(src[inl], dst[inl], 0)
        if h2 is None:
            return None
        h = h2
    err = np.linalg.norm(project(h, src) - dst, axis=1)
    inl = err < RANSAC_PX
    corners = project(h, page_corners_mm(width_mm, height_mm))
    if int(inl.sum()) < MIN_HINT_INLIERS or not _quad_ok(corners, size):
        return None
    inlier_q = np.unique(q_idx[inl])
    # One inlier per photo location: simulated-tilt views detect the same point up to three times.
    _, first = np.unique(np.round(q_xy[inlier_q] / DEDUP_PX).astype(np.int64), axis=0, return_index=True)
    inlier_q = inlier_q[np.sort(first)]
    if len(inlier_q) < MIN_HINT_INLIERS:
        return None
    counted = voter if loose_voter is None else loose_voter
    return Verified(slot, h, inlier_q, int((counted[inlier_q] == slot).sum()))


def coverage(v: Verified, q_xy: np.ndarray, width_mm: float, height_mm: float, size: tuple[int, int]) -> float:
    """Share of the photo's features lying on the (visible) page that fall inside the convex hull of the inliers.

    A correct match explains the page everywhere the photo has texture; a page that only shares a masthead or an
    ad with the catalog page is explained in that one region only."""
    w, h = size
    quad = project(v.homography, page_corners_mm(width_mm, height_mm))
    on_page = _inside(quad, q_xy, size)
    n_page = int(on_page.sum())
    if n_page == 0:
        return 0.0
    hull = cv2.convexHull(q_xy[v.inlier_q].astype(np.float32)).reshape(-1, 2)
    return float(_inside(hull, q_xy[on_page], size).mean())


def _inside(poly: np.ndarray, pts: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(N,) bool: points inside the convex polygon ``poly`` (clipped to the w x h frame), by rasterizing it."""
    w, h = size
    mask = np.zeros((h, w), np.uint8)
    poly = np.clip(poly, -4 * max(w, h), 4 * max(w, h))
    cv2.fillConvexPoly(mask, np.round(poly * 4).astype(np.int32), 1, lineType=cv2.LINE_8, shift=2)
    xi = np.clip(pts[:, 0].astype(np.int64), 0, w - 1)
    yi = np.clip(pts[:, 1].astype(np.int64), 0, h - 1)
    return mask[yi, xi].astype(bool)


def accept(best: Verified, runner: Verified | None, cover: float) -> tuple[bool, float]:
    """Acceptance of the best verified page. Returns (accepted, score in [0, 1]).

    Evidence must be exclusive to the best page (inliers not also explained by the runner-up, >= MARGIN x the
    runner-up's own) and must cover the page's textured cells (``cell_coverage``). Two ways to be convincing:
    enough *distinctive* inliers (matches that passed the cross-page ratio test), or many inliers overall with a
    higher coverage (strong tilt makes ORB matches ambiguous, so few pass the ratio test)."""
    if runner is not None:
        shared = np.intersect1d(best.inlier_q, runner.inlier_q)
        excl_best = len(best.inlier_q) - len(shared)
        excl_runner = len(runner.inlier_q) - len(shared)
    else:
        excl_best, excl_runner = len(best.inlier_q), 0
    margin_ok = (len(best.inlier_q) >= MIN_INLIERS and excl_best >= MIN_INLIERS
                 and excl_best >= MARGIN * excl_runner)
    distinctive = best.distinct >= MIN_DISTINCT and cover >= MIN_COVERAGE
    abundant = len(best.inlier_q) >= MIN_INLIERS_ALONE and cover >= MIN_COVERAGE_ALONE
    ok = margin_ok and (distinctive or abundant)
    score = float(excl_best / (excl_best + excl_runner + MIN_INLIERS)) * min(1.0, cover)
    return ok, score


def area_coverage(v: Verified, page_mm: np.ndarray, width_mm: float, height_mm: float,
                  size: tuple[int, int]) -> float:
    """Area of the inliers' convex hull on the page (mm^2) / area of the page visible in the photo (mm^2).

    page_mm : (N,2) page positions of the inliers. The visible page is the frame rectangle mapped back onto the
    page by the inverse homography, clipped to the page."""
    w, h = size
    frame = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64)
    try:
        inv = np.linalg.inv(v.homography)
    except np.linalg.LinAlgError:
        return 0.0
    frame_mm = project(inv, frame).astype(np.float32)
    page = page_corners_mm(width_mm, height_mm).astype(np.float32)
    if not cv2.isContourConvex(frame_mm.reshape(-1, 1, 2)):
        visible = float(width_mm * height_mm)  # frame plane behind the camera: fall back to the whole page
    else:
        visible, _ = cv2.intersectConvexConvex(frame_mm, page)
    if visible <= 0:
        return 0.0
    hull = cv2.convexHull(page_mm.astype(np.float32))
    return float(cv2.contourArea(hull) / visible)


COVER_GRID = 4  # page divided into 4 x 4 cells for the coverage test
COVER_MIN_FEATURES = 4  # a cell counts as textured when it holds this many photo features (and COVER_MIN_SHARE)
COVER_MIN_SHARE = 0.015


def cell_coverage(v: Verified, q_xy: np.ndarray, width_mm: float, height_mm: float) -> float:
    """Share of the page's *textured* cells (photo features mapped onto the page by the inverse homography) that
    contain at least one inlier. A correct match has inliers wherever the photo shows texture; a non-catalog page
    sharing only a masthead or an ad has inliers in those cells only."""
    try:
        inv = np.linalg.inv(v.homography)
    except np.linalg.LinAlgError:
        return 0.0
    mm = project(inv, q_xy)
    g = COVER_GRID
    on = (mm[:, 0] >= 0) & (mm[:, 1] >= 0) & (mm[:, 0] < width_mm) & (mm[:, 1] < height_mm)
    if on.sum() == 0:
        return 0.0
    cell = (np.minimum((mm[:, 1] * g / height_mm).astype(np.int64), g - 1) * g
            + np.minimum((mm[:, 0] * g / width_mm).astype(np.int64), g - 1))
    feats = np.bincount(cell[on], minlength=g * g)
    inl = np.zeros(len(q_xy), bool)
    inl[v.inlier_q] = True
    hits = np.bincount(cell[on & inl], minlength=g * g)
    textured = feats >= max(COVER_MIN_FEATURES, COVER_MIN_SHARE * on.sum())
    if textured.sum() == 0:
        return 0.0
    return float((hits[textured] > 0).mean())
