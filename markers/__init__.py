"""Báo Nhúng marker engine: train pages, rate them before print, recognize them from phone photos (no Flask).

Public API (docs/ARCHITECTURE.md):
    train_page, PageMarker, browser_marker            -- markers.features
    rate_page, PageRating, Reason, feature_heatmap_png -- markers.rating
    RecognitionIndex, Confusion, RecognitionParams      -- markers.recognition
    PageMatch, Photo, decode_photo                      -- markers.recognition
    estimate_pose, Pose                                 -- markers.pose
    MarkerFormatError, IndexFormatError, InvalidImageError, MarkerError -- markers.errors
"""
from .errors import IndexFormatError, InvalidImageError, MarkerError, MarkerFormatError
from .features import MARKER_VERSION, PageMarker, browser_marker, train_page
from .pose import Pose, estimate_pose
from .rating import PageRating, Reason, feature_heatmap_png, rate_page
from .recognition import INDEX_VERSION, Confusion, PageMatch, Photo, RecognitionIndex, RecognitionParams, decode_photo

__all__ = [
    "INDEX_VERSION", "MARKER_VERSION", "Confusion", "IndexFormatError", "InvalidImageError", "MarkerError", "MarkerFormatError",
    "PageMarker", "PageMatch", "PageRating", "Photo", "Pose", "Reason", "RecognitionIndex", "RecognitionParams", "browser_marker", "decode_photo",
    "estimate_pose", "feature_heatmap_png", "rate_page", "train_page",
]
