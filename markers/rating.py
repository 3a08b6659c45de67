"""Pre-print quality rating of a page as a marker (0-5 stars with reasons, like Vuforia's) and a feature heat-map.

The rating looks at what recognition and tracking need: enough ORB features, spread over the page (a reader may
photograph only part of it), corners strong enough to survive a phone photo (faint print), and few repeated patterns
(features that look alike in several places confuse matching). Thresholds are in units a designer can act on.
``make bench-rating`` measures how well the stars predict recognition.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from .features import as_gray, detect_orb, resize_long_side

RATING_LONG_SIDE = 1024  # the page is rated at the resolution of the middle catalog scale
RATING_FEATURES = 1500
GRID_COLS, GRID_ROWS = 6, 8  # coverage grid over the page (portrait pages)
MIN_CELL_FEATURES = 6  # a cell is "covered" with at least this many features
GOOD_FEATURES = 1000  # at or above: full marks for feature count
FEW_FEATURES = 300  # below: recognition from a distance becomes unreliable
GOOD_COVERAGE = 0.8  # share of covered grid cells for full marks
POOR_COVERAGE = 0.5
# A phone photo keeps only the page's strong corners: its features compete with the desk behind the page, noise and
# JPEG, and faint ones lose. Generated pages printed with a quarter of the ink have 12-30 such corners and 39 % of
# their photos recognized; newspaper, photo-rich and soft (blurred) pages have 149-3,660 and 91-98 %. Set on pages
# of seeds 900,000+ (bench_rating.py --seed0); local contrast, the factor before, rated those faded pages 2-3 stars
# and the photo-rich ones 4, and warned of low contrast on the soft pages.
STRONG_LONG_SIDE = 512  # px: the page about as large as in a photo
STRONG_FAST_THRESHOLD = 60  # grey levels (0-255): FAST's intensity step for a corner that survives a phone photo
GOOD_STRONG = 150  # strong corners for full marks; the factor falls to STRONG_FLOOR with none
STRONG_FLOOR = 0.2
FEW_STRONG = 75  # below: the low-contrast warning
REPEAT_HAMMING = 24  # two features this close in descriptor space but far apart on the page are "repeats"
REPEAT_MIN_DIST_FRAC = 0.05  # ... at least 5% of the page's long side apart
HIGH_REPEATS = 0.25  # share of repeated features that costs a star
MIN_RESOLUTION_PX = 1000  # long side of the uploaded page image below which detail is lost

_TEXT = {
    "few_features": {
        "vi": "Trang có ít điểm đặc trưng ({count}); nên thêm ảnh hoặc hình có chi tiết rõ nét.",
        "en": "The page has few features ({count}); add photos or detailed graphics.",
    },
    "good_features": {
        "vi": "Trang có nhiều điểm đặc trưng ({count}).",
        "en": "The page has many features ({count}).",
    },
    "uneven_coverage": {
        "vi": "Điểm đặc trưng phân bố không đều: chỉ {percent}% diện tích trang có chi tiết; vùng thiếu chi tiết: "
              "{regions_vi}. Chụp một phần trang ở vùng đó sẽ khó nhận diện.",
        "en": "Features are unevenly spread: only {percent}% of the page has detail; weak regions: {regions_en}. "
              "A photo of only that part of the page will be hard to recognize.",
    },
    "good_coverage": {
        "vi": "Điểm đặc trưng phủ đều {percent}% diện tích trang.",
        "en": "Features evenly cover {percent}% of the page.",
    },
    "low_contrast": {
        "vi": "Độ tương phản thấp ({contrast}); hãy tăng độ tương phản của ảnh và chữ.",
        "en": "Low contrast ({contrast}); increase the contrast of images and text.",
    },
    "no_features": {
        "vi": "Trang gần như không có điểm đặc trưng ({count}); điện thoại sẽ không nhận diện được trang này.",
        "en": "The page has almost no features ({count}); phones will not recognize it.",
    },
    "repeated_patterns": {
        "vi": "{percent}% điểm đặc trưng lặp lại ở nhiều chỗ (họa tiết, chữ giống nhau); dễ gây nhầm lẫn.",
        "en": "{percent}% of the features repeat in several places (patterns, identical text); they cause confusion.",
    },
    "low_resolution": {
        "vi": "Ảnh trang có độ phân giải thấp ({long_side} px); hãy tải lên bản ít nhất {minimum} px.",
        "en": "The page image has a low resolution ({long_side} px); upload at least {minimum} px.",
    },
}


_REGION_VI = {
    "top": "phía trên", "bottom": "phía dưới", "left": "bên trái", "right": "bên phải",
    "top left": "góc trên bên trái", "top right": "góc trên bên phải", "bottom left": "góc dưới bên trái",
    "bottom right": "góc dưới bên phải", "centre": "ở giữa", "top centre": "giữa phía trên",
    "bottom centre": "giữa phía dưới", "middle left": "giữa bên trái", "middle right": "giữa bên phải",
}
NO_FEATURES = 20  # below: the page is essentially blank
WEAK_REGION_COVERAGE = 0.3  # a page half / ninth with fewer covered cells than this is named as weak
HEATMAP_LONG_SIDE = 800


def weak_regions(covered: np.ndarray) -> list[str]:
    """Names of poorly covered regions from a (rows, cols) bool grid of covered cells: whole halves first
    ("right", "top", ...), otherwise ninths ("top left", "centre", ...)."""
    rows, cols = covered.shape
    halves = {"top": covered[: rows // 2], "bottom": covered[rows - rows // 2:],
              "left": covered[:, : cols // 2], "right": covered[:, cols - cols // 2:]}
    names = [n for n, part in halves.items() if part.mean() < WEAK_REGION_COVERAGE]
    if names:
        return names
    rname = ("top", "middle", "bottom")
    cname = ("left", "centre", "right")
    out = []
    for i in range(3):
        for j in range(3):
            part = covered[i * rows // 3:(i + 1) * rows // 3, j * cols // 3:(j + 1) * cols // 3]
            if part.size and part.mean() < WEAK_REGION_COVERAGE:
                name = {("middle", "centre"): "centre"}.get((rname[i], cname[j]), f"{rname[i]} {cname[j]}")
                out.append(name)
    return out


@dataclass(frozen=True)
class Reason:
    """One finding of the rating. code: stable identifier; severity: "info" | "warning" | "error";
    values: numbers the texts interpolate (and an editor may show)."""
    code: str
    severity: str
    values: dict = field(default_factory=dict)

    def text(self, lang: str = "vi") -> str:
        """Human text in Vietnamese ("vi", default) or English ("en")."""
        texts = _TEXT[self.code]
        values = dict(self.values)
        if "regions" in values:
            values["regions_vi"] = ", ".join(_REGION_VI.get(r, r) for r in values["regions"])
            values["regions_en"] = ", ".join(values["regions"])
        return texts.get(lang, texts["vi"]).format(**values)


@dataclass(frozen=True)
class PageRating:
    """stars: 0..5; score: 0..1 (stars = round(5 * score)); reasons: findings, most severe first."""
    stars: int
    score: float
    reasons: tuple[Reason, ...]


def _page_features(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    g, _ = resize_long_side(gray, RATING_LONG_SIDE)
    xy, desc, _ = detect_orb(g, RATING_FEATURES, oversample=2, fast_threshold=20)
    return g, xy, desc


def _repeat_share(xy: np.ndarray, desc: np.ndarray, long_side: float) -> float:
    """Share of features with a near-identical descriptor elsewhere on the page (repeated patterns)."""
    if len(desc) < 2:
        return 0.0
    bits = np.unpackbits(desc, axis=1).astype(np.float32)
    # Hamming distance via dot products: d = a.(1-b) + (1-a).b
    d = bits @ (1 - bits).T + (1 - bits) @ bits.T
    far = np.linalg.norm(xy[:, None, :] - xy[None, :, :], axis=2) > REPEAT_MIN_DIST_FRAC * long_side
    rep = ((d <= REPEAT_HAMMING) & far).any(axis=1)
    return float(rep.mean())


def _strong_corners(gray: np.ndarray) -> int:
    """FAST corners of the page at STRONG_LONG_SIDE px with an intensity step of STRONG_FAST_THRESHOLD."""
    g, _ = resize_long_side(gray, STRONG_LONG_SIDE)
    return len(cv2.FastFeatureDetector_create(STRONG_FAST_THRESHOLD).detect(g))


def _local_contrast(g: np.ndarray) -> float:
    f = g.astype(np.float32)
    mu = cv2.blur(f, (15, 15))
    var = cv2.blur(f * f, (15, 15)) - mu * mu
    return float(np.sqrt(np.maximum(var, 0)).mean())


def rate_page(image: np.ndarray, width_mm: float, height_mm: float) -> PageRating:
    """Rate a page as a marker: 0-5 stars, a score in [0, 1] and the reasons. image: BGR/grey uint8."""
    gray = as_gray(image)
    g, xy, desc = _page_features(gray)
    h, w = g.shape
    count = len(xy)
    cols, rows = (GRID_COLS, GRID_ROWS) if height_mm >= width_mm else (GRID_ROWS, GRID_COLS)
    cell = (np.minimum((xy[:, 1] * rows / h).astype(int), rows - 1) * cols
            + np.minimum((xy[:, 0] * cols / w).astype(int), cols - 1)) if count else np.zeros(0, int)
    per_cell = np.bincount(cell, minlength=rows * cols)
    coverage = float((per_cell >= MIN_CELL_FEATURES).mean())
    strong = _strong_corners(gray)
    repeats = _repeat_share(xy, desc, max(h, w))

    s_count = float(np.clip(count / GOOD_FEATURES, 0, 1))
    s_cover = float(np.clip(coverage / GOOD_COVERAGE, 0, 1))
    s_strong = float(np.clip(strong / GOOD_STRONG, 0, 1))
    s_repeat = float(np.clip(1 - repeats / (2 * HIGH_REPEATS), 0, 1))
    score = (s_count * (0.45 + 0.55 * s_cover) * (STRONG_FLOOR + (1 - STRONG_FLOOR) * s_strong)
             * (0.3 + 0.7 * s_repeat))

    reasons: list[Reason] = []
    if max(gray.shape) < MIN_RESOLUTION_PX:
        reasons.append(Reason("low_resolution", "warning", {"long_side": int(max(gray.shape)),
                                                            "minimum": MIN_RESOLUTION_PX}))
        score *= 0.8
    if count < NO_FEATURES:
        reasons.append(Reason("no_features", "error", {"count": count}))
    elif count < FEW_FEATURES:
        reasons.append(Reason("few_features", "error", {"count": count}))
    elif strong >= FEW_STRONG:  # a faint page has its features too, but its low-contrast warning is what counts
        reasons.append(Reason("good_features", "info", {"count": count}))
    regions = weak_regions((per_cell >= MIN_CELL_FEATURES).reshape(rows, cols))
    if count >= NO_FEATURES and (coverage < POOR_COVERAGE or regions):
        reasons.append(Reason("uneven_coverage", "warning" if coverage > 0.2 else "error",
                              {"percent": round(100 * coverage), "regions": regions}))
    elif count >= NO_FEATURES:  # a blank page's "no features" says it all
        reasons.append(Reason("good_coverage", "info", {"percent": round(100 * coverage)}))
    if strong < FEW_STRONG and count >= NO_FEATURES:
        reasons.append(Reason("low_contrast", "warning", {"contrast": round(_local_contrast(g), 1)}))
    if repeats > HIGH_REPEATS:
        reasons.append(Reason("repeated_patterns", "warning", {"percent": round(100 * repeats)}))
    order = {"error": 0, "warning": 1, "info": 2}
    reasons.sort(key=lambda r: order[r.severity])
    score = float(np.clip(score, 0, 1))
    return PageRating(int(round(5 * score)), score, tuple(reasons))


def feature_heatmap_png(image: np.ndarray) -> bytes:
    """PNG of the page with its feature density overlaid (JET: blue where there are no features, red where they
    are dense). Same aspect ratio as the page, long side HEATMAP_LONG_SIDE px."""
    gray = as_gray(image)
    g, xy, _ = _page_features(gray)
    h, w = g.shape
    density = np.zeros((h, w), np.float32)
    if len(xy):
        xi = np.clip(xy[:, 0].astype(int), 0, w - 1)
        yi = np.clip(xy[:, 1].astype(int), 0, h - 1)
        np.add.at(density, (yi, xi), 1.0)
    density = cv2.GaussianBlur(density, (0, 0), max(h, w) / 40)
    if density.max() > 0:
        density /= density.max()
    heat = cv2.applyColorMap((density * 255).astype(np.uint8), cv2.COLORMAP_JET)
    base = cv2.cvtColor(g, cv2.COLOR_GRAY2BGR)
    out = cv2.addWeighted(base, 0.55, heat, 0.45, 0)
    for x, y in xy.astype(int):
        cv2.circle(out, (int(x), int(y)), 2, (255, 255, 255), -1, cv2.LINE_AA)
    out, _ = resize_long_side(out, HEATMAP_LONG_SIDE)
    ok, buf = cv2.imencode(".png", out)
    return buf.tobytes()
