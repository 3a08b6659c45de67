"""Marker quality rating: stars order pages as a phone would find them, reasons name what to fix."""
import cv2
import numpy as np

from markers import feature_heatmap_png, rate_page
from markers.synth import blank_page, generate_page, photo_rich_page


def test_blank_page_rates_below_photo_rich_page():
    blank = rate_page(blank_page(), 297, 420)
    rich = rate_page(photo_rich_page(2), 297, 420)
    assert blank.stars == 0 and rich.stars >= 4
    assert any(r.severity == "error" for r in blank.reasons)
    assert all(r.text("vi") and r.text("en") for r in blank.reasons)
    assert not any(r.severity == "info" for r in blank.reasons)  # not "features evenly cover 0 % of the page"


def test_repeated_pattern_page_is_marked_down_with_a_reason():
    tile = generate_page(5)[100:300, 100:300]
    tiled = np.tile(tile, (9, 6, 1))[:1754, :1240]
    rating = rate_page(tiled, 297, 420)
    assert rating.score < rate_page(generate_page(5), 297, 420).score
    assert any("repeat" in r.code and r.severity in ("warning", "error") for r in rating.reasons)


def test_rating_does_not_depend_on_scan_resolution():
    page = generate_page(4)
    small = cv2.resize(page, (620, 877), interpolation=cv2.INTER_AREA)
    assert abs(rate_page(page, 297, 420).stars - rate_page(small, 297, 420).stars) <= 1


def test_heatmap_is_a_png_of_the_page():
    png = feature_heatmap_png(generate_page(9))
    img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and img is not None and img.shape[0] > img.shape[1] > 100


def _faded(page: np.ndarray) -> np.ndarray:
    """The page printed with a quarter of the ink."""
    return (255 - (255 - page.astype(np.float32)) * 0.25).astype(np.uint8)


def test_faint_print_is_marked_down_with_a_contrast_warning():
    # Its ORB features are as many as the crisp page's, but a phone photo keeps few of them (bench_rating: faded pages
    # 31-39 % of photos recognized against 92-97 %).
    page = generate_page(21)
    crisp, faint = rate_page(page, 297, 420), rate_page(_faded(page), 297, 420)
    assert crisp.stars >= 4 and faint.stars <= 2
    assert any(r.code == "low_contrast" and r.severity == "warning" for r in faint.reasons)
    assert not any(r.code == "low_contrast" for r in crisp.reasons)
    assert not any(r.code == "good_features" for r in faint.reasons)  # not "many features" beside its 1-2 stars
    # ... and below a page printed only in its top quarter (59-66 % recognized: photos of its top are found).
    sparse = page.copy()
    sparse[page.shape[0] // 4:] = (240, 246, 248)
    assert faint.stars < rate_page(sparse, 297, 420).stars


def test_a_soft_scan_keeps_its_stars():
    # Blur removes fine detail but keeps strong corners: such pages were recognized as often as crisp ones.
    page = generate_page(22)
    soft = rate_page(cv2.GaussianBlur(page, (0, 0), 4.0), 297, 420)
    assert soft.stars >= 4 and not any(r.code == "low_contrast" for r in soft.reasons)
