"""Typed errors of the marker engine. Each carries the offending value in its message."""
from __future__ import annotations


class MarkerError(Exception):
    """Base class of marker-engine errors."""


class MarkerFormatError(MarkerError, ValueError):
    """Serialized marker data is not a marker, has an unsupported version, or is truncated/corrupted."""


class IndexFormatError(MarkerError, ValueError):
    """A recognition-index file is not an index, has an unsupported version, or is truncated/corrupted."""


class InvalidImageError(MarkerError, ValueError):
    """An input image cannot be used (not decodable, wrong dtype/shape, too small)."""


class ImageTooLargeError(InvalidImageError):
    """An input image has more pixels than the step given it may decode (checked from its header, before decoding)."""
