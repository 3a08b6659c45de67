"""The photo: decoding (size limits, EXIF orientation, JPEG DCT scaling), and its ORB features (``query_features``),
the first stage of recognition."""
from __future__ import annotations

import io
import threading
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageOps

from ..errors import ImageTooLargeError, InvalidImageError
from ..features import as_gray, detect_orb, resize_long_side
from ..workers import Workers
from .params import DEFAULT_PARAMS, RecognitionParams

QUERY_MAX_SIDE = 1280  # larger photos are shrunk first: a page at 1280 px still has 4x margin over the catalog


@dataclass(frozen=True)
class Photo:
    """A photo decoded for recognition (``decode_photo``): gray (h, w) uint8, upright (EXIF orientation applied),
    perhaps smaller than the photo itself; scale: its px per photo px, in pixel-index coordinates
    (gray + 0.5 = scale x (photo + 0.5), markers.pixels); color: its colour in the same px (decoded when first asked
    for), None for a grey photo."""
    gray: np.ndarray
    scale: float
    color: PhotoColor | None = None


class PhotoColor:
    """A photo's colour, (h, w, 3) uint8 BGR, given or decoded from the photo's bytes on the first call, then kept.
    Decoded as decode_photo decoded the grey (same draft size, same orientation), so in the same px. Most photos are
    recognized without it (only the closer look's paper region needs it): a 4000 x 3000 JPEG turned by its EXIF
    orientation takes ~10 ms in decode_photo, its colour ~16 ms more."""

    def __init__(self, image: np.ndarray | None = None, data: bytes | None = None,
                 draft: tuple[int, int] | None = None) -> None:
        self._image, self._data, self._draft = image, data, draft
        self._lock = threading.Lock()

    def __call__(self) -> np.ndarray | None:
        with self._lock:
            if self._image is None and self._data is not None:
                try:
                    with Image.open(io.BytesIO(self._data)) as im:
                        if self._draft is not None:
                            im.draft("RGB", self._draft)
                        rgb = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
                    # OpenCV's order (a reversed-stride copy costs ~10x more)
                    self._image = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
                except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
                    pass  # decoded as grey already: without its colour the closer look only enlarges it
                self._data = None
            return self._image


# Pixels a photo may have (from its header, before anything is decoded): a JPEG is decoded at up to 1/8 of its size,
# so it may be large (a 200 MP phone mode still decodes to ~3 MP); what is decoded in full (PNG, WebP, a small JPEG)
# may not be more than a 24 MP camera's. A 190 KB PNG of 13,000 x 13,000 px cost +605 MB before this (issue 25).
PHOTO_MAX_PIXELS = 200_000_000
PHOTO_MAX_DECODED_PIXELS = 24_000_000


def decode_photo(data: bytes, long_side: int = QUERY_MAX_SIDE) -> Photo:
    """Decode a JPEG/PNG/WebP photo for recognition, grey and upright (EXIF orientation honoured); its colour, which
    the closer look finds the paper by (``paper_box``), is decoded only if asked for (``PhotoColor``).

    A JPEG at least twice ``long_side`` is decoded at 1/2, 1/4 or 1/8 of its size by libjpeg's DCT scaling
    (Pillow's draft mode), never below ``long_side`` (recognition shrinks a photo to QUERY_MAX_SIDE anyway), and
    only its luma: a 4000 x 3000 phone-like JPEG (1.9 MB) takes 22 ms here instead of 117-129 ms. An output pixel
    is the mean of a k x k block, so the pixel-index convention holds with scale 1/k. Raises InvalidImageError for
    anything that is not a decodable image, ImageTooLargeError (before decoding) for one of more than
    PHOTO_MAX_PIXELS, or of more than PHOTO_MAX_DECODED_PIXELS once a JPEG's reduction is counted."""
    draft = None
    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
            if w * h > PHOTO_MAX_PIXELS:
                raise ImageTooLargeError(f"{w} x {h} px is more than {PHOTO_MAX_PIXELS:,} pixels")
            colour = im.mode not in ("1", "L", "LA", "I", "I;16", "F")
            if max(w, h) >= 2 * long_side:
                f = long_side / max(w, h)
                draft = (max(1, int(np.ceil(w * f))), max(1, int(np.ceil(h * f))))
                im.draft("L", draft)
            if im.size[0] * im.size[1] > PHOTO_MAX_DECODED_PIXELS:
                raise ImageTooLargeError(f"{w} x {h} px would be decoded at {im.size[0]} x {im.size[1]}, more than "
                                         f"{PHOTO_MAX_DECODED_PIXELS:,} pixels")
            k = 2 ** round(np.log2(w / im.size[0]))  # libjpeg's scale: output = ceil(w / k)
            gray = np.asarray(ImageOps.exif_transpose(im).convert("L"))
    except ImageTooLargeError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise InvalidImageError(f"not a decodable image ({len(data)} bytes): {exc}") from exc
    return Photo(as_gray(gray), 1.0 / k, PhotoColor(data=data, draft=draft) if colour else None)


@dataclass(frozen=True)
class QueryFeatures:
    """Features of one photo. xy : (N, 2) float32 px in the *working* image; scale : working px per original px;
    gray : the working image (kept for the rectified second pass)."""
    xy: np.ndarray
    descriptors: np.ndarray
    size: tuple[int, int]  # working image (w, h)
    scale: float
    gray: np.ndarray | None = None
    # the photo's colour, None for a grey one (no paper region); larger than the working image when the photo was
    # shrunk to it (paper_features resizes it only if the closer look is needed)
    color: PhotoColor | None = None


# The photo's ORB pyramid is detected on two threads (features.orb_levels: the same features, 9.1 -> 6.5 ms for
# 3,000 candidates in 40 tuning photos): this thread and this worker.
_PHOTO_ORB = Workers(1, "photo-orb")


def photo_orb(gray: np.ndarray, n: int, p: RecognitionParams) -> tuple[np.ndarray, np.ndarray]:
    """(xy, descriptors) of ``n`` ORB features of a photo (or a look at it) with the photo settings: low FAST
    threshold, p.query_spread_grid raster."""
    xy, desc, _ = detect_orb(gray, n, oversample=2, fast_threshold=p.query_fast_threshold, grid=p.query_spread_grid,
                             workers=_PHOTO_ORB)
    return xy, desc


def query_features(image: np.ndarray | bytes | Photo, p: RecognitionParams = DEFAULT_PARAMS,
                   n: int | None = None) -> QueryFeatures:
    """ORB features of a photo: np.ndarray BGR/grey, encoded JPEG/PNG bytes, or a ``decode_photo`` result.
    QueryFeatures.scale maps the photo's own px to the working image's."""
    if isinstance(image, (bytes, bytearray, memoryview)):
        image = decode_photo(bytes(image))
    if isinstance(image, Photo):
        gray, scale, color = image.gray, image.scale, image.color
    else:
        gray, scale = as_gray(image), 1.0
        color = PhotoColor(image[:, :, :3]) if image.ndim == 3 and image.shape[2] in (3, 4) else None
    if max(gray.shape) > QUERY_MAX_SIDE:
        gray, f = resize_long_side(gray, QUERY_MAX_SIDE)
        scale *= f

    xy, desc = photo_orb(gray, p.query_features if n is None else n, p)
    return QueryFeatures(xy, desc, (gray.shape[1], gray.shape[0]), scale, gray, color)
