"""Recognition: photo -> the catalog page in it (``RecognitionIndex.recognize``), one module per stage.

    params        RecognitionParams: every tunable, one frozen record passed to each stage
    photo         decode_photo, query_features: the photo and its ORB features
    looks         other looks at the photo: enlarged, paper region, un-tilted, rectified
    catalog       Catalog: the pages' features in FAISS, add/remove, scopes, shared features
    candidates    soft votes and the layout check: which pages to verify
    verification  exact matching against one page and its homography
    acceptance    whether the best verified page is the one in the photo; two pages in view
    refinement    the final look at an accepted page (corner accuracy)
    pipeline      the stages in order (Pipeline)
    index         RecognitionIndex (Catalog + recognize + confusability + file format)
    persistence   the index file format
"""
from .catalog import FEATURE_BITS, INDEXED_FEATURES, Catalog
from .geometry import page_corners_mm, project
from .index import Confusion, RecognitionIndex
from .params import DEFAULT_PARAMS, RecognitionParams
from .persistence import INDEX_VERSION
from .photo import Photo, QueryFeatures, decode_photo, query_features
from .pipeline import PageMatch

__all__ = [
    "DEFAULT_PARAMS", "FEATURE_BITS", "INDEXED_FEATURES", "INDEX_VERSION", "Catalog", "Confusion", "PageMatch", "Photo",
    "QueryFeatures", "RecognitionIndex", "RecognitionParams", "decode_photo", "page_corners_mm", "project",
    "query_features",
]
