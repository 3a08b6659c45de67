"""Báo Nhúng marker engine: train pages, rate them before print, recognize them from phone photos (no Flask).

Public API (docs/ARCHITECTURE.md):
    train_page, PageMarker, browser_marker            -- markers.features
    rate_page, PageRating, Reason, feature_heatmap_png -- markers.rating
    RecognitionIndex, Confusion                         -- markers.index
    PageMatch, Photo, decode_photo                      -- markers.recognize
    estimate_pose, Pose                                 -- markers.pose
    MarkerFormatError, IndexFormatError, InvalidImageError, MarkerError -- markers.errors
"""
from .errors import IndexFormatError, InvalidImageError, MarkerError, MarkerFormatError
from .features import MARKER_VERSION, PageMarker, browser_marker, train_page
from .index import INDEX_VERSION, Confusion, RecognitionIndex
from .pose import Pose, estimate_pose
from .rating import PageRating, Reason, feature_heatmap_png, rate_page
from .recognize import PageMatch, Photo, decode_photo

__all__ = [
    "INDEX_VERSION", "MARKER_VERSION", "Confusion", "IndexFormatError", "InvalidImageError", "MarkerError", "MarkerFormatError",
    "PageMarker", "PageMatch", "PageRating", "Photo", "Pose", "Reason", "RecognitionIndex", "browser_marker", "decode_photo",
    "estimate_pose", "feature_heatmap_png", "rate_page", "train_page",
]
