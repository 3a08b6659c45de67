"""Marker quality rating: stars order pages as a phone would find them, reasons name what to fix."""
import cv2
import numpy as np

from markers import feature_heatmap_png, rate_page
from markers.synth import blank_page, generate_page, photo_rich_page


def test_blank_page_rates_below_photo_rich_page():
    blank = rate_page(blank_page(), 297, 420)
    rich = rate_page(photo_rich_page(2), 297, 420)
    assert blank.stars == 0 and rich.stars >= 4
    assert [r.code for r in blank.reasons][0] == "no_features" and blank.reasons[0].severity == "error"


def test_repeated_pattern_page_is_marked_down_with_a_reason():
    tile = generate_page(5)[100:300, 100:300]
    tiled = np.tile(tile, (9, 6, 1))[:1754, :1240]
    rating = rate_page(tiled, 297, 420)
    assert rating.stars <= 2 < rate_page(generate_page(5), 297, 420).stars
    assert any(r.code == "repetitive" for r in rating.reasons)


def test_half_empty_page_names_the_weak_regions_in_both_languages():
    page = generate_page(9).copy()
    page[:, 620:] = 255  # right half blank
    rating = rate_page(page, 297, 420)
    reason = next(r for r in rating.reasons if r.code == "uneven_coverage")
    assert "right" in reason.values["regions"][0] or "right" in reason.values["regions"][-1]
    assert "phải" in reason.text("vi") and "right" in reason.text("en")


def test_rating_does_not_depend_on_scan_resolution():
    page = generate_page(4)
    small = cv2.resize(page, (620, 877), interpolation=cv2.INTER_AREA)
    assert abs(rate_page(page, 297, 420).stars - rate_page(small, 297, 420).stars) <= 1


def test_heatmap_is_a_png_hot_where_features_are():
    page = generate_page(9).copy()
    page[:, 620:] = 255
    png = feature_heatmap_png(page)
    img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and max(img.shape) == 800
    left, right = img[:, : img.shape[1] // 2], img[:, img.shape[1] // 2 + 20:]
    # JET: warm (red over blue) where dense, cold (blue over red) where empty
    def warmth(region):
        return region[:, :, 2].astype(float).mean() - region[:, :, 0].astype(float).mean()

    assert warmth(left) > warmth(right) + 20
