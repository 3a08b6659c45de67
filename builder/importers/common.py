"""What every kind's inspector shares: the result type and the error helpers."""
from __future__ import annotations

import io
import struct
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from builder.errors import InvalidAssetError
from builder.importers.limits import MB, UploadLimits


@dataclass(frozen=True)
class InspectedAsset:
    """A checked upload.

    mime, ext : of ``data`` (ext without dot). data : the canonical file to store. meta : facts for the product
    (see each kind). derived : extra files to store, ``name -> (bytes, mime)`` (``poster``, ``source_pdf``).
    """

    mime: str
    ext: str
    data: bytes
    meta: dict = field(default_factory=dict)
    derived: dict[str, tuple[bytes, str]] = field(default_factory=dict)



# What Pillow raises on damaged files besides its documented OSError: its parsers index and unpack raw bytes.
_PIL_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, KeyError, TypeError,
               ZeroDivisionError)


def _corrupt(filename: str, detail: Any) -> InvalidAssetError:
    return InvalidAssetError("corrupt_file", {"filename": filename, "detail": str(detail)[:300]})


def _png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def _check_pixels(width: int, height: int, limits: UploadLimits, filename: str) -> None:
    if width * height > limits.max_image_pixels:
        raise InvalidAssetError(
            "image_too_large",
            {"filename": filename, "width": width, "height": height, "limit_mp": limits.max_image_pixels / 1e6},
        )



def _too_large(filename: str, size: int, limit: int) -> InvalidAssetError:
    return InvalidAssetError("too_large", {"filename": filename, "size_mb": f"{size / MB:.1f}",
                                           "limit_mb": f"{limit / MB:g}", "size": size, "limit": limit})
