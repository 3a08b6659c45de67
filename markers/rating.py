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
LOW_RESOLUTION_FACTOR = 0.8  # a low-resolution upload loses a fifth of its score (detail below the scan's pixels)
# A look-alike of a published page (share of this page's features that one map places on it, from
# RecognitionIndex.confusable_with): pages sharing only a masthead or an ad measured 0.08-0.10 and are told so
# without losing stars; near-duplicates (the same page re-exported, a quarter or half of it changed) measured
# 0.43-1.0 and a page with three quarters changed 0.19. At LOOKALIKE_DUPLICATE_SHARE and above the page keeps only
# LOOKALIKE_FLOOR of its score (a phone would show the published page's overlays); in between it falls linearly.
LOOKALIKE_FREE_SHARE = 0.12
LOOKALIKE_DUPLICATE_SHARE = 0.40
LOOKALIKE_FLOOR = 0.2

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
    "fewer_features": {
        "vi": "Trang có {count} điểm đặc trưng; từ {good} điểm mới đạt điểm tối đa. Thêm ảnh hoặc hình có chi tiết rõ nét.",
        "en": "The page has {count} features; full marks take {good}. Add photos or detailed graphics.",
    },
    "partial_coverage": {
        "vi": "Điểm đặc trưng phủ {percent}% diện tích trang; từ {good}% mới đạt điểm tối đa. Thêm chi tiết vào vùng trống.",
        "en": "Features cover {percent}% of the page; full marks take {good}%. Add detail to the empty areas.",
    },
    "some_low_contrast": {
        "vi": "Trang có {strong} góc nét đậm mà ảnh chụp điện thoại giữ được; từ {good} mới đạt điểm tối đa. "
              "Tăng độ tương phản của ảnh và chữ.",
        "en": "The page has {strong} strong corners that survive a phone photo; full marks take {good}. "
              "Increase the contrast of images and text.",
    },
    "some_repeats": {
        "vi": "{percent}% điểm đặc trưng lặp lại ở nhiều chỗ (họa tiết, chữ giống nhau); dễ gây nhầm lẫn.",
        "en": "{percent}% of the features repeat in several places (patterns, identical text); they cause confusion.",
    },
    "confusable": {
        "vi": "Trang có phần giống trang đã xuất bản {page_vi} ({percent}% điểm đặc trưng, vùng {w}×{h} mm tại "
              "{x},{y} mm — có thể là măng-sét hoặc quảng cáo chung). Nội dung riêng của trang phải đủ nhiều để "
              "không bị nhầm.",
        "en": "Part of this page matches published page {page_en} ({percent}% of its features, a {w}×{h} mm area at "
              "{x},{y} mm — likely a shared masthead or ad). The page's own content must be enough to tell them "
              "apart.",
    },
    "near_duplicate": {
        "vi": "Trang gần như trùng với trang đã xuất bản {page_vi} ({percent}% điểm đặc trưng giống nhau): điện "
              "thoại sẽ nhận nhầm thành trang đó. Hãy thay đổi nội dung trang hoặc gỡ trang cũ.",
        "en": "The page is nearly the same as published page {page_en} ({percent}% of its features match): phones "
              "will take it for that page. Change the page's content or unpublish the old one.",
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
_STARS_LOST = {
    "vi": lambda n: f" Mất {n} sao.",
    "en": lambda n: f" Costs {n} star{'s' if n > 1 else ''}.",
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
        if "edition_number" in values:
            values["page_vi"] = f"Số {values['edition_number']} · Trang {values['page_number']}"
            values["page_en"] = f"No. {values['edition_number']} · page {values['page_number']}"
        lang = lang if lang in texts else "vi"
        text = texts[lang].format(**values)
        lost = int(values.get("stars_lost") or 0)
        return text + _STARS_LOST[lang](lost) if lost else text


@dataclass(frozen=True)
class LookAlike:
    """A published page this one could be mistaken for (``RecognitionIndex.confusable_with``).
    share: fraction of this page's features one map places on it (0..1); edition_number / page_number: how the
    newsroom names it ("Số 2 · Trang 1"); region_mm: (x, y, w, h) of the shared area on this page, in page mm."""
    share: float
    edition_number: int
    page_number: int
    region_mm: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)


def lookalike_factor(share: float) -> float:
    """Score multiplier for sharing ``share`` of the features with a published page: 1 up to
    LOOKALIKE_FREE_SHARE, LOOKALIKE_FLOOR from LOOKALIKE_DUPLICATE_SHARE, linear between."""
    t = (share - LOOKALIKE_FREE_SHARE) / (LOOKALIKE_DUPLICATE_SHARE - LOOKALIKE_FREE_SHARE)
    return float(1 - (1 - LOOKALIKE_FLOOR) * np.clip(t, 0, 1))


def apportion_lost_stars(lost: int, factors: dict[str, float]) -> dict[str, int]:
    """Split ``lost`` stars among the score's factors (name -> multiplier in (0, 1]) by their share of the score's
    loss: the score is their product, so each factor's share is its -log (largest remainder, ties by name order).
    A factor of 0 takes every lost star. Returns name -> stars (summing to ``lost`` when any factor is below 1)."""
    out = {k: 0 for k in factors}
    if lost <= 0:
        return out
    zero = [k for k, f in factors.items() if f <= 0]
    if zero:
        out[zero[0]] = lost
        return out
    weights = {k: -np.log(min(f, 1.0)) for k, f in factors.items()}
    total = sum(weights.values())
    if total <= 0:
        return out
    exact = {k: lost * w / total for k, w in weights.items()}
    for k, v in exact.items():
        out[k] = int(np.floor(v))
    rest = lost - sum(out.values())
    for k in sorted(exact, key=lambda k: exact[k] - out[k], reverse=True)[:rest]:
        out[k] += 1
    return out


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


def rate_page(image: np.ndarray, width_mm: float, height_mm: float,
              lookalike: LookAlike | None = None) -> PageRating:
    """Rate a page as a marker: 0-5 stars, a score in [0, 1] and the reasons. image: BGR/grey uint8.

    The score is a product of factors (feature count, coverage, strong corners, repeats, resolution and, with
    ``lookalike``, the published page it resembles most). Every star lost is named: the lost stars are split among
    the factors (``apportion_lost_stars``) and each factor that lost any has a warning or error reason whose
    ``values["stars_lost"]`` says how many (and whose text says so); the reasons' stars_lost sum to 5 - stars.
    """
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
    factors = {  # name -> multiplier of the score
        "features": s_count,
        "coverage": 0.45 + 0.55 * s_cover,
        "contrast": STRONG_FLOOR + (1 - STRONG_FLOOR) * s_strong,
        "repeats": 0.3 + 0.7 * s_repeat,
        "resolution": LOW_RESOLUTION_FACTOR if max(gray.shape) < MIN_RESOLUTION_PX else 1.0,
        "lookalike": lookalike_factor(lookalike.share) if lookalike is not None else 1.0,
    }
    score = float(np.clip(np.prod(list(factors.values())), 0, 1))
    stars = int(round(5 * score))
    lost = apportion_lost_stars(5 - stars, factors)

    regions = weak_regions((per_cell >= MIN_CELL_FEATURES).reshape(rows, cols))
    found = [*_resolution_findings(factors, gray.shape),
             *_feature_findings(count, strong, lost),
             *_coverage_findings(count, coverage, regions, lost),
             *_contrast_findings(count, strong, g, lost),
             *_repeat_findings(repeats, lost),
             *_lookalike_findings(lookalike)]
    reasons = _with_stars_lost(found, lost)
    return PageRating(stars, score, tuple(reasons))


# Each factor's findings as (factor, reason): the factor's own finding, or its milder form when it lost a star
# without crossing the threshold of its warning (a page must not show only praise beside a missing star); a factor
# None for praise.
Finding = tuple[str | None, Reason]


def _resolution_findings(factors: dict[str, float], shape: tuple[int, ...]) -> list[Finding]:
    if factors["resolution"] < 1:
        return [("resolution", Reason("low_resolution", "warning", {"long_side": int(max(shape)),
                                                                   "minimum": MIN_RESOLUTION_PX}))]
    return []


def _feature_findings(count: int, strong: int, lost: dict[str, int]) -> list[Finding]:
    if count < NO_FEATURES:
        return [("features", Reason("no_features", "error", {"count": count}))]
    if count < FEW_FEATURES:
        return [("features", Reason("few_features", "error", {"count": count}))]
    if lost["features"]:
        return [("features", Reason("fewer_features", "warning", {"count": count, "good": GOOD_FEATURES}))]
    if strong >= FEW_STRONG:  # a faint page has its features too, but its low-contrast warning is what counts
        return [(None, Reason("good_features", "info", {"count": count}))]
    return []


def _coverage_findings(count: int, coverage: float, regions: list, lost: dict[str, int]) -> list[Finding]:
    if count < NO_FEATURES:  # a blank page's "no features" says it all
        return []
    if coverage < POOR_COVERAGE or regions:
        return [("coverage", Reason("uneven_coverage", "warning" if coverage > 0.2 else "error",
                                    {"percent": round(100 * coverage), "regions": regions}))]
    if lost["coverage"]:
        return [("coverage", Reason("partial_coverage", "warning", {"percent": round(100 * coverage),
                                                                    "good": round(100 * GOOD_COVERAGE)}))]
    return [(None, Reason("good_coverage", "info", {"percent": round(100 * coverage)}))]


def _contrast_findings(count: int, strong: int, g: np.ndarray, lost: dict[str, int]) -> list[Finding]:
    if strong < FEW_STRONG and count >= NO_FEATURES:
        return [("contrast", Reason("low_contrast", "warning", {"contrast": round(_local_contrast(g), 1)}))]
    if lost["contrast"]:
        return [("contrast", Reason("some_low_contrast", "warning", {"strong": strong, "good": GOOD_STRONG}))]
    return []


def _repeat_findings(repeats: float, lost: dict[str, int]) -> list[Finding]:
    if repeats > HIGH_REPEATS:
        return [("repeats", Reason("repeated_patterns", "warning", {"percent": round(100 * repeats)}))]
    if lost["repeats"]:
        return [("repeats", Reason("some_repeats", "warning", {"percent": round(100 * repeats)}))]
    return []


def _lookalike_findings(lookalike: LookAlike | None) -> list[Finding]:
    if lookalike is None:
        return []
    x, y, rw, rh = lookalike.region_mm
    values = {"percent": round(100 * lookalike.share), "edition_number": lookalike.edition_number,
              "page_number": lookalike.page_number, "x": round(x), "y": round(y), "w": round(rw), "h": round(rh)}
    if lookalike.share >= LOOKALIKE_DUPLICATE_SHARE:
        return [("lookalike", Reason("near_duplicate", "error", values))]
    return [("lookalike", Reason("confusable", "warning", values))]


def _with_stars_lost(found: list[Finding], lost: dict[str, int]) -> list[Reason]:
    """The reasons, each factor's with ``values["stars_lost"]``, errors first and the costliest first."""
    named = {f for f, _ in found if f is not None}
    for name, n in lost.items():  # a factor that lost a star without a finding (cannot happen by the rules above)
        if n and name not in named:
            raise AssertionError(f"factor {name} lost {n} stars without a reason")
    reasons = []
    for name, r in found:
        if name is not None and lost.get(name):
            r = Reason(r.code, r.severity, {**r.values, "stars_lost": lost[name]})
        reasons.append(r)
    order = {"error": 0, "warning": 1, "info": 2}
    reasons.sort(key=lambda r: (order[r.severity], -int(r.values.get("stars_lost", 0))))
    return reasons


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
