"""Page features: multi-scale ORB extraction, the versioned ``PageMarker`` format, and the browser tracker JSON.

A page is trained once at publish time. ORB's own pyramid (8 levels x 1.2) spans only ~3.6x in scale, while a
reader may hold the phone at 15 cm (page 1000+ px tall in the photo) or 1 m (150 px): candidates come from several
rescaled copies of the page (``CATALOG_SCALES``), and the marker keeps those that simulated phone views of the page
re-find most often (``repeatability``), spread evenly over the page, most repeatable first.

Coordinates: keypoints are stored in page millimetres (origin top-left, x right, y down). For a page image of
W x H px of a page of w x h mm, ``mm = px * w / W`` (the inverse of ``px = mm * W / w`` in docs/ARCHITECTURE.md).
"""
from __future__ import annotations

import base64
import json
import struct
import zlib
from concurrent.futures import Future
from dataclasses import dataclass

import cv2
import numpy as np

from .errors import InvalidImageError, MarkerFormatError
from .pixels import EDGE_TO_INDEX, to_edge
from .workers import Workers, one_faiss_thread, result_or_run

MARKER_MAGIC = b"BNMK"
MARKER_VERSION = 2  # 2: keypoints in page mm of pixel centres, corrected for the ORB pyramid level
DESCRIPTOR_BYTES = 32  # ORB: 256-bit binary descriptors

# Candidate features come from several rescaled copies of the page: (long side px, candidates, ORB pyramid
# levels). Seven scales ~1.4x apart, each with the full 8-level pyramid (3.6x), so every query page size from
# ~100 px to ~2000 px tall meets candidates near its own scale.
CATALOG_SCALES: tuple[tuple[int, int, int], ...] = (
    (1100, 700, 8), (800, 600, 8), (580, 500, 8), (420, 400, 8), (300, 300, 8), (220, 220, 8), (160, 140, 8))
# Of the ~2,900 candidates, the marker keeps MARKER_FEATURES: those that matched most often in SELECT_VIEWS
# simulated phone views of the page (random distance, tilt up to 55 deg, blur, noise, JPEG), minus a penalty for
# attracting wrong matches, spread over the page, most repeatable first. The total is set by the index memory
# budget (<= 40 KB/page). Tuning photos (seeds 500,000+) at 1,000 pages: 83 % top-1 for the best 830 of five
# fixed scales by ORB response, 89 % selected this way.
MARKER_FEATURES = 830
# Training detects features on its rescaled page images and simulated views on this many threads (OpenCV's ORB
# and FAISS release the GIL; the views themselves are drawn in order from one seeded generator, so the marker is
# the same as on one thread).
TRAIN_THREADS = 2
_TRAIN_POOL = Workers(TRAIN_THREADS, "train-page")
SELECT_VIEWS = 12
SELECT_VIEW_FEATURES = 800
SELECT_MATCH_PX = 3.0  # a candidate is re-found in a view when its match lies within this of its true position
SELECT_FALSE_PENALTY = 0.3  # per wrong match a candidate attracted (at Hamming <= 50)
# ORB pyramid used everywhere (catalog, queries, browser): 8 levels of 1.2 = opencv/opencv.js defaults.
ORB_LEVELS = 8
ORB_SCALE_FACTOR = 1.2
ORB_EDGE = 19  # smaller than the 31 px default so features reach closer to the page border
ORB_FAST_THRESHOLD = 12  # lower than the default 20: printed pages photographed in dim light have low contrast
DETECT_OVERSAMPLE = 3  # detect 3x the wanted count, then keep the strongest per grid cell (even coverage)
SPREAD_GRID = 8  # cells per side for spreading features over the image
# Browser tracker: ~500 ORB features at a scale a 640x480 video frame sees the page (opencv.js ORB defaults).
BROWSER_LONG_SIDE = 640
BROWSER_FEATURES = 500
MAX_TRAIN_SIDE = 6000  # refuse absurd inputs instead of running out of memory


def as_gray(image: np.ndarray) -> np.ndarray:
    """(h, w) uint8 grey image from a BGR/BGRA/grey uint8 array; raises InvalidImageError otherwise."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise InvalidImageError(f"expected a uint8 numpy image, got {type(image).__name__} "
                                f"{getattr(image, 'dtype', '')}")
    if image.ndim == 2:
        gray = image
    elif image.ndim == 3 and image.shape[2] == 3:
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    elif image.ndim == 3 and image.shape[2] == 4:
        gray = cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    elif image.ndim == 3 and image.shape[2] == 1:
        gray = image[:, :, 0]
    else:
        raise InvalidImageError(f"unsupported image shape {image.shape}")
    if min(gray.shape) < 32:
        raise InvalidImageError(f"image too small: {gray.shape[1]}x{gray.shape[0]} px")
    return np.ascontiguousarray(gray)


def resize_long_side(gray: np.ndarray, long_side: int) -> tuple[np.ndarray, float]:
    """Rescale so the longer side is ``long_side`` px; returns (image, factor new/old). INTER_AREA when shrinking."""
    h, w = gray.shape[:2]
    f = long_side / max(h, w)
    if abs(f - 1.0) < 1e-3:
        return gray, 1.0
    size = (max(1, round(w * f)), max(1, round(h * f)))
    return cv2.resize(gray, size, interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR), f


def spread_select(xy: np.ndarray, response: np.ndarray, size: tuple[int, int], n: int,
                  grid: int = SPREAD_GRID) -> np.ndarray:
    """Indices of at most ``n`` keypoints, taken round-robin from grid cells in order of response, so features
    cover the whole image instead of piling up on the most textured region. xy: (N, 2) px; size: (w, h)."""
    if len(xy) <= n:
        return np.argsort(-response, kind="stable")
    w, h = size
    cell = (np.minimum((xy[:, 1] * grid / h).astype(np.int64), grid - 1) * grid
            + np.minimum((xy[:, 0] * grid / w).astype(np.int64), grid - 1))
    order = np.lexsort((-response, cell))  # by cell, strongest first within a cell
    cell_sorted = cell[order]
    start = np.searchsorted(cell_sorted, cell_sorted, side="left")
    rank = np.arange(len(order)) - start
    pick = order[np.lexsort((-response[order], rank))][:n]
    return pick


def detect_orb(gray: np.ndarray, n: int, oversample: int = DETECT_OVERSAMPLE,
               fast_threshold: int = ORB_FAST_THRESHOLD, nlevels: int = ORB_LEVELS, grid: int = SPREAD_GRID,
               workers: Workers | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ORB keypoints spread over ``gray`` (``spread_select`` on a ``grid`` x ``grid`` raster): (xy (N,2) float32
    px, descriptors (N,32) uint8, octave (N,) uint8).

    xy are pixel-index coordinates of ``gray`` (pixel centres at integers, as cv2.warpPerspective and
    cv2.findHomography use them). OpenCV's ORB reports a keypoint found at pyramid level l as its level position
    times 1.2^l, which puts it 0.5 (1.2^l - 1) px too close to the origin (level pixel centres sit at
    (i + 0.5) 1.2^l - 0.5, markers.pixels): corrected here. workers: the pyramid's upper levels are detected there meanwhile
    (``orb_levels``; the same features)."""
    pt, octave, resp, desc = orb_levels(gray, n * oversample, fast_threshold, nlevels, workers)
    if len(pt) == 0:
        return np.zeros((0, 2), np.float32), np.zeros((0, DESCRIPTOR_BYTES), np.uint8), np.zeros(0, np.uint8)
    level_scale = ORB_SCALE_FACTOR ** octave.astype(np.float32)
    xy = pt + 0.5 * (level_scale - 1)[:, None]
    pick = spread_select(xy, resp, (gray.shape[1], gray.shape[0]), n, grid)
    return xy[pick], desc[pick], octave[pick]


def _orb(gray: np.ndarray, n: int, fast_threshold: int, nlevels: int
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """OpenCV's ORB as the product uses it: (pt (N,2) float32 as ORB reports it, octave (N,) uint8, response (N,)
    float32, descriptors (N,32) uint8), in ORB's order (by pyramid level)."""
    orb = cv2.ORB_create(nfeatures=n, scaleFactor=ORB_SCALE_FACTOR, nlevels=nlevels, edgeThreshold=ORB_EDGE,
                         patchSize=31, fastThreshold=fast_threshold)
    kps, desc = orb.detectAndCompute(gray, None)
    if desc is None or not kps:
        return (np.zeros((0, 2), np.float32), np.zeros(0, np.uint8), np.zeros(0, np.float32),
                np.zeros((0, DESCRIPTOR_BYTES), np.uint8))
    return (np.array([k.pt for k in kps], np.float32), np.array([k.octave for k in kps], np.uint8),
            np.array([k.response for k in kps], np.float32), desc)


# Pyramid levels [0, ORB_SPLIT_LEVEL) on the calling thread, the rest on a worker: about equal work (1.69 vs 1.58
# level-0 areas); 3,000 candidates in 40 tuning photos: 9.1 -> 6.5 ms.
ORB_SPLIT_LEVEL = 2


def _orb_scale(level: np.ndarray | int) -> np.ndarray:
    """OpenCV ORB's scale of a pyramid level: float(pow(double(float scaleFactor), level))."""
    return (float(np.float32(ORB_SCALE_FACTOR)) ** np.asarray(level, np.float64)).astype(np.float32)


def _orb_level_budgets(n: int, nlevels: int) -> list[int]:
    """Features ORB keeps per pyramid level (OpenCV's rule, in its single-precision arithmetic)."""
    factor = np.float32(1.0 / float(np.float32(ORB_SCALE_FACTOR)))
    per = np.float32(np.float32(n) * (np.float32(1) - factor)
                     / (np.float32(1) - np.float32(float(factor) ** nlevels)))
    budgets = []
    for _ in range(nlevels - 1):
        budgets.append(int(np.rint(per)))
        per = np.float32(per * factor)
    return budgets + [max(n - sum(budgets), 0)]


def _orb_level_sizes(w: int, h: int, nlevels: int) -> list[tuple[int, int]]:
    """Pyramid level sizes as OpenCV's ORB computes them: round(size x float(1 / scale))."""
    out = []
    for level in range(nlevels):
        inv = np.float32(np.float32(1) / _orb_scale(level))
        out.append((int(np.rint(np.float32(w) * inv)), int(np.rint(np.float32(h) * inv))))
    return out


def orb_levels(gray: np.ndarray, n: int, fast_threshold: int, nlevels: int, workers: Workers | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``_orb`` on two threads when ``workers`` is given: ORB keeps a fixed number of features per pyramid level
    and treats the levels independently, so each level is detected on its own (one-level ORB on the level image,
    resized level by level as ORB builds its pyramid), levels below ORB_SPLIT_LEVEL here and the others on the
    worker. The result is the one-thread result, element for element (test). A worker job still queued behind
    other callers' jobs is taken back and done here (``result_or_run``)."""
    if workers is None or nlevels <= ORB_SPLIT_LEVEL:
        return _orb(gray, n, fast_threshold, nlevels)
    budgets = _orb_level_budgets(n, nlevels)
    sizes = _orb_level_sizes(gray.shape[1], gray.shape[0], nlevels)

    def levels(first: int, stop: int, image: np.ndarray | None
               ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        out = []
        for level in range(first, stop):
            if image is None:  # the worker's first level: from the image, level by level
                image = gray
                for size in sizes[1:level + 1]:
                    image = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR_EXACT)
            elif level > 0:
                image = cv2.resize(image, sizes[level], interpolation=cv2.INTER_LINEAR_EXACT)
            pt, _, resp, desc = _orb(image, budgets[level], fast_threshold, 1)
            # Full-image coordinates the way ORB scales them: integer level position x _orb_scale(level).
            out.append(((pt * _orb_scale(level)).astype(np.float32), np.full(len(pt), level, np.uint8), resp, desc))
        return out

    job = workers.submit(levels, ORB_SPLIT_LEVEL, nlevels, None)
    low = levels(0, ORB_SPLIT_LEVEL, gray)
    parts = low + result_or_run(job, levels, ORB_SPLIT_LEVEL, nlevels, None)
    return tuple(np.concatenate(a) for a in zip(*parts))  # type: ignore[return-value]


@dataclass(frozen=True, eq=False)
class PageMarker:
    """Trained marker data of one page.

    keypoints_mm : (N, 2) float32 page mm; descriptors : (N, 32) uint8 ORB; scale_index : (N,) uint8, which
    CATALOG_SCALES entry produced each feature; features are ordered most repeatable first. browser_* : the
    ~500-feature tracking set for the phone viewer.
    image_px : (w, h) of the trained page image.
    """
    page_id: str
    width_mm: float
    height_mm: float
    image_px: tuple[int, int]
    keypoints_mm: np.ndarray
    descriptors: np.ndarray
    scale_index: np.ndarray
    browser_keypoints_mm: np.ndarray
    browser_descriptors: np.ndarray
    browser_image_px: tuple[int, int]

    def __len__(self) -> int:
        return len(self.keypoints_mm)

    # Layout: MAGIC(4) | version u16 | header length u32 | header JSON | arrays (raw, little endian) | crc32 u32.
    def to_bytes(self) -> bytes:
        """Versioned binary form (``MARKER_VERSION``), with a CRC32 so truncation or corruption is detected."""
        header = json.dumps({
            "page_id": self.page_id, "width_mm": self.width_mm, "height_mm": self.height_mm,
            "image_px": list(self.image_px), "n": len(self.keypoints_mm),
            "browser_n": len(self.browser_keypoints_mm), "browser_image_px": list(self.browser_image_px),
        }).encode()
        body = b"".join([
            MARKER_MAGIC, struct.pack("<HI", MARKER_VERSION, len(header)), header,
            np.ascontiguousarray(self.keypoints_mm, "<f4").tobytes(),
            np.ascontiguousarray(self.descriptors, np.uint8).tobytes(),
            np.ascontiguousarray(self.scale_index, np.uint8).tobytes(),
            np.ascontiguousarray(self.browser_keypoints_mm, "<f4").tobytes(),
            np.ascontiguousarray(self.browser_descriptors, np.uint8).tobytes(),
        ])
        return body + struct.pack("<I", zlib.crc32(body))

    @staticmethod
    def stored_version(data: bytes) -> int:
        """Format version of serialized marker data (any version), so a caller can retrain a page whose marker an
        older library wrote. MarkerFormatError if it is not a page marker."""
        data = bytes(data[:6])
        if len(data) < 6 or data[:4] != MARKER_MAGIC:
            raise MarkerFormatError(f"not a page marker (first bytes {data[:4]!r}, expected {MARKER_MAGIC!r})")
        return struct.unpack_from("<H", data, 4)[0]

    @classmethod
    def from_bytes(cls, data: bytes) -> "PageMarker":
        """Inverse of ``to_bytes``; raises MarkerFormatError (not a marker / unsupported version / truncated)."""
        data = bytes(data)
        if len(data) < 14 or data[:4] != MARKER_MAGIC:
            raise MarkerFormatError(f"not a page marker (first bytes {data[:4]!r}, expected {MARKER_MAGIC!r})")
        version, hlen = struct.unpack_from("<HI", data, 4)
        if version != MARKER_VERSION:
            raise MarkerFormatError(f"unsupported page marker version {version} (this library reads version "
                                    f"{MARKER_VERSION}); retrain the page")
        if len(data) < 10 + hlen + 4:
            raise MarkerFormatError(f"truncated page marker: {len(data)} bytes, header alone needs {10 + hlen}")
        body, (crc,) = data[:-4], struct.unpack("<I", data[-4:])
        try:
            header = json.loads(data[10:10 + hlen])
            n, bn = int(header["n"]), int(header["browser_n"])
        except (ValueError, KeyError, TypeError) as exc:
            raise MarkerFormatError(f"corrupted page marker header: {exc}") from exc
        expected = 10 + hlen + n * (8 + DESCRIPTOR_BYTES + 1) + bn * (8 + DESCRIPTOR_BYTES) + 4
        if len(data) != expected:
            raise MarkerFormatError(f"truncated or corrupted page marker: {len(data)} bytes, expected {expected}")
        if zlib.crc32(body) != crc:
            raise MarkerFormatError("corrupted page marker: checksum mismatch")
        off = 10 + hlen

        def take(count: int, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
            nonlocal off
            nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
            arr = np.frombuffer(data, dtype, count=count, offset=off).reshape(shape).copy()
            off += nbytes
            return arr

        kp = take(n * 2, "<f4", (n, 2)).astype(np.float32)
        desc = take(n * DESCRIPTOR_BYTES, "u1", (n, DESCRIPTOR_BYTES))
        scale = take(n, "u1", (n,))
        bkp = take(bn * 2, "<f4", (bn, 2)).astype(np.float32)
        bdesc = take(bn * DESCRIPTOR_BYTES, "u1", (bn, DESCRIPTOR_BYTES))
        return cls(str(header["page_id"]), float(header["width_mm"]), float(header["height_mm"]),
                   tuple(header["image_px"]), kp, desc, scale, bkp, bdesc, tuple(header["browser_image_px"]))


def _check_page_size(width_mm: float, height_mm: float) -> None:
    if not (width_mm > 0 and height_mm > 0 and np.isfinite(width_mm) and np.isfinite(height_mm)):
        raise InvalidImageError(f"page size must be positive millimetres, got {width_mm} x {height_mm}")


def page_scales(gray: np.ndarray) -> list[np.ndarray]:
    """The page rescaled to each CATALOG_SCALES long side."""
    return [resize_long_side(gray, long_side)[0] for long_side, _, _ in CATALOG_SCALES]


def _detect_scale(g: np.ndarray, spec: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    _, n, levels = spec
    xy, d, _ = detect_orb(g, n, nlevels=levels)
    return xy, d


def candidate_features(pyramid: list[np.ndarray], detected: list[tuple[np.ndarray, np.ndarray]], width_mm: float,
                       height_mm: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Multi-scale candidates from the features ``detected`` at each scale of ``pyramid`` (``page_scales``):
    (keypoints_mm (N,2) float32, descriptors (N,32) uint8, scale_index (N,) uint8)."""
    kps, descs, idx = [], [], []
    for i, (g, (xy, d)) in enumerate(zip(pyramid, detected)):
        # pixel index -> mm at this scale: pixel i spans [i, i + 1) px in edge coordinates, mm = edge * w_mm / W_px
        kps.append(to_edge(xy) * np.array([width_mm / g.shape[1], height_mm / g.shape[0]], np.float32))
        descs.append(d)
        idx.append(np.full(len(xy), i, np.uint8))
    return np.concatenate(kps), np.concatenate(descs), np.concatenate(idx)


def simulated_view(pyramid: list[np.ndarray], width_mm: float, height_mm: float, rng: np.random.Generator
                   ) -> tuple[_ViewRecipe, np.ndarray]:
    """A random phone-like view of the page: (its recipe, to render with render_view; homography page mm -> view
    px). Page 150-1000 px tall (log-uniform), tilt up to 55 deg about a random axis, roll, blur, noise, JPEG
    40-80."""
    tall = float(np.exp(rng.uniform(np.log(150), np.log(1000))))
    tilt, axis = np.radians(rng.uniform(0, 55)), rng.uniform(0, 2 * np.pi)
    roll = np.radians(rng.normal(0, 12))
    # Source: the smallest rescaled page still taller than the view needs (no aliasing, little work).
    fits = [g for g in pyramid if g.shape[0] >= 1.2 * tall]
    src = min(fits, key=lambda g: g.shape[0]) if fits else max(pyramid, key=lambda g: g.shape[0])
    sh, sw = src.shape
    s = tall / sh
    flat = (np.array([[0, 0], [sw, 0], [sw, sh], [0, sh]], np.float64) - [sw / 2, sh / 2]) * s
    a = np.array([np.cos(axis), np.sin(axis), 0.0])
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    rot = np.eye(3) + np.sin(tilt) * k + (1 - np.cos(tilt)) * k @ k  # Rodrigues: tilt about the in-plane axis
    focal = 900.0
    pts = np.c_[flat, np.zeros(4)] @ rot.T
    pts[:, 2] += focal
    proj = pts[:, :2] / pts[:, 2:] * focal
    proj = proj @ np.array([[np.cos(roll), -np.sin(roll)], [np.sin(roll), np.cos(roll)]]).T
    proj -= proj.min(axis=0) - 20
    size = np.ceil(proj.max(axis=0) + 20).astype(int)
    src_px = flat / s + [sw / 2, sh / 2]
    h = cv2.getPerspectiveTransform(src_px.astype(np.float32), proj.astype(np.float32))
    # Every random draw is made here, in order; the rendering (render_view) can then run on another thread.
    border = int(rng.integers(40, 200))
    blur = float(rng.uniform(0.3, 1.5))
    noise = rng.normal(0, rng.uniform(1, 5), (int(size[1]), int(size[0])))
    quality = int(rng.integers(40, 80))
    # page mm -> source pixel edges (mm * px/mm) -> source pixel index (markers.pixels) -> view px
    to_index = EDGE_TO_INDEX @ np.diag([sw / width_mm, sh / height_mm, 1.0])
    return _ViewRecipe(src, h, border, blur, noise, quality), h @ to_index


@dataclass(frozen=True, eq=False)
class _ViewRecipe:
    """A simulated view's source image, warp and random draws (simulated_view), to be rendered by render_view."""
    src: np.ndarray
    warp: np.ndarray
    border: int
    blur: float
    noise: np.ndarray  # (h, w) float64, the view's size
    quality: int


def render_view(recipe: _ViewRecipe) -> np.ndarray:
    """The grey view of a recipe: warped, blurred, noisy, JPEG-compressed."""
    size = (recipe.noise.shape[1], recipe.noise.shape[0])
    view = cv2.warpPerspective(recipe.src, recipe.warp, size, flags=cv2.INTER_LINEAR, borderValue=recipe.border)
    view = cv2.GaussianBlur(view, (0, 0), recipe.blur)
    noisy = recipe.noise + view
    view = np.clip(noisy, 0, 255, out=noisy).astype(np.uint8)
    _, buf = cv2.imencode(".jpg", view, [cv2.IMWRITE_JPEG_QUALITY, recipe.quality])
    return cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)


def _detect_view(recipe: _ViewRecipe) -> tuple[np.ndarray, np.ndarray]:
    xy, d, _ = detect_orb(render_view(recipe), SELECT_VIEW_FEATURES, oversample=2, fast_threshold=10)
    return xy, d


def draw_views(pyramid: list[np.ndarray], width_mm: float, height_mm: float, seed: int, views: int = SELECT_VIEWS
               ) -> list[tuple[Future, _ViewRecipe, np.ndarray]]:
    """``views`` simulated views drawn in order on this thread from one seeded generator, each rendered and
    detected on the training pool meanwhile: [(job -> (xy, descriptors) of the view, its recipe, homography page mm
    -> view px)]."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(views):
        recipe, h = simulated_view(pyramid, width_mm, height_mm, rng)
        out.append((_TRAIN_POOL.submit(_detect_view, recipe), recipe, h))
    return out


def repeatability(kp_mm: np.ndarray, desc: np.ndarray, views: list[tuple[Future, _ViewRecipe, np.ndarray]]
                  ) -> np.ndarray:
    """(N,) score per candidate: times it was the correct nearest neighbour of a feature of a simulated view
    (``draw_views``), minus SELECT_FALSE_PENALTY per wrong match it attracted."""
    import faiss  # the index's matcher (exact Hamming search); imported here to keep this module light

    hits = np.zeros(len(kp_mm))
    flat = faiss.IndexBinaryFlat(DESCRIPTOR_BYTES * 8)
    flat.add(np.ascontiguousarray(desc))
    for job, recipe, h in views:
        xy, d = result_or_run(job, _detect_view, recipe)  # a view still queued is rendered and detected here
        if len(d) == 0:
            continue
        with one_faiss_thread():  # a small search: a second thread only costs
            dist, nn = flat.search(np.ascontiguousarray(d), 1)
        dist, nn = dist[:, 0], nn[:, 0]
        pred = cv2.perspectiveTransform(kp_mm[nn].reshape(-1, 1, 2).astype(np.float64), h).reshape(-1, 2)
        right = (np.linalg.norm(pred - xy, axis=1) < SELECT_MATCH_PX) & (dist <= 64)
        np.add.at(hits, nn[right], 1.0)
        np.add.at(hits, nn[~right & (dist <= 50)], -SELECT_FALSE_PENALTY)
    return hits


def train_page(image: np.ndarray, width_mm: float, height_mm: float, page_id: str) -> PageMarker:
    """Train the marker of one page. image: BGR or grey uint8, the whole page edge to edge; sizes in mm.
    Deterministic: the simulated views are seeded from the page pixels."""
    _check_page_size(width_mm, height_mm)
    gray = as_gray(image)
    if max(gray.shape) > MAX_TRAIN_SIDE:
        gray, _ = resize_long_side(gray, MAX_TRAIN_SIDE)
    # The page's scales, its browser features and its simulated views (drawn on this thread, in order) are detected
    # at once on the training pool; the views are matched against the candidates once those are known. Jobs still
    # queued behind another training's are taken back and done here.
    pyramid = page_scales(gray)
    seed = zlib.crc32(pyramid[-1].tobytes())
    detecting = [(_TRAIN_POOL.submit(_detect_scale, g, spec), g, spec) for g, spec in zip(pyramid, CATALOG_SCALES)]
    browser = _TRAIN_POOL.submit(_browser_features, gray)
    views = draw_views(pyramid, width_mm, height_mm, seed)
    detected = [result_or_run(job, _detect_scale, g, spec) for job, g, spec in detecting]
    kp, desc, scale = candidate_features(pyramid, detected, width_mm, height_mm)
    score = repeatability(kp, desc, views) if len(kp) else np.zeros(0)
    # Most repeatable first, spread over the page: the index searches a prefix of every marker.
    # Ties (e.g. never re-found) go to the strongest candidates of every scale alike.
    rank = np.zeros(len(kp))
    for i in np.unique(scale):
        sel = np.nonzero(scale == i)[0]
        rank[sel] = np.arange(len(sel)) / len(sel)
    keep = spread_select(kp, score + 1e-3 * (1 - rank), (width_mm, height_mm), MARKER_FEATURES)
    kp, desc, scale = kp[keep], desc[keep], scale[keep]
    bg_size, bxy, bdesc = result_or_run(browser, _browser_features, gray)
    bkp = bxy * np.array([width_mm / bg_size[0], height_mm / bg_size[1]], np.float32)
    return PageMarker(str(page_id), float(width_mm), float(height_mm), (gray.shape[1], gray.shape[0]),
                      kp, desc, scale, bkp.astype(np.float32), bdesc, bg_size)


def _browser_features(gray: np.ndarray) -> tuple[tuple[int, int], np.ndarray, np.ndarray]:
    """The browser tracker's features: ((w, h) of the page at BROWSER_LONG_SIDE, xy px, descriptors)."""
    bg, _ = resize_long_side(gray, BROWSER_LONG_SIDE)
    bxy, bdesc, _ = detect_orb(bg, BROWSER_FEATURES, oversample=2, fast_threshold=20)
    return (bg.shape[1], bg.shape[0]), bxy, bdesc


def browser_marker(marker: PageMarker) -> dict:
    """JSON-able tracking data for the phone viewer (opencv.js ORB re-detects and matches against it):
    ``{"version": 1, "width_mm", "height_mm", "image_px": [w, h], "keypoints_mm": [[x, y], ...],
    "descriptors_b64": base64 of N x 32 ORB bytes}``. image_px is the size of the image the features were
    detected in (long side BROWSER_LONG_SIDE), so ``px = mm * image_px[0] / width_mm``."""
    return {
        "version": 1,
        "width_mm": marker.width_mm,
        "height_mm": marker.height_mm,
        "image_px": [int(marker.browser_image_px[0]), int(marker.browser_image_px[1])],
        "keypoints_mm": [[round(float(x), 3), round(float(y), 3)] for x, y in marker.browser_keypoints_mm],
        "descriptors_b64": base64.b64encode(np.ascontiguousarray(marker.browser_descriptors).tobytes()).decode(),
    }
