"""Overlay import: check every uploaded file by its content and extract what the product needs. No Flask.

Entry point::

    asset = inspect_upload(kind, data, filename, limits)   # -> InspectedAsset, or InvalidAssetError

The type is decided by content — magic bytes (:func:`sniff_format`) followed by a real parse with the library
that will use the file (Pillow, PyAV, pypdfium2, trimesh, the Khronos glTF validator) — never by ``filename``,
which only appears in messages. What each kind accepts is one table, :data:`KIND_FORMATS`.

``InspectedAsset.data`` is the canonical file to store: the upload itself, except that OBJ/STL/PLY/DAE (and zips
of them) become a GLB converted with trimesh, a zipped glTF with side files becomes one GLB, a PDF page becomes the
PNG rendering of the chosen page at its TrimBox (the PDF is kept in ``derived["source_pdf"]``), and a sideways phone
photo (EXIF orientation) is turned upright.

Units: sizes in bytes, durations in seconds, model bounds in metres (as stored in the file; glTF is metres, Y up),
page sizes in millimetres.

One module per kind behind one registry (:data:`INSPECTORS`, kind → inspector)::

    limits   UploadLimits (defaults, or BAONHUNG_MAX_* variables)
    sniff    FORMATS / KIND_FORMATS (what each kind accepts), sniff_format, accept_attribute, size_limit
    common   InspectedAsset and the error helpers every inspector shares
    page     page scans and PDF pages (pdf: rendering with pypdfium2), PAGE_PRESETS
    image    still and animated images (Pillow)
    media    video and audio (PyAV)
    model    3D models (GLB/glTF/OBJ/STL/PLY/DAE/zip), on the glTF layer builder.gltf
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from builder.errors import InvalidAssetError
from builder.gltf import GlbDocument, clean_converted_glb, pack_gltf_to_glb, read_glb, write_glb
from builder.importers.common import InspectedAsset, _too_large
from builder.importers.image import EQUIRECT_TOLERANCE, GIF_DEFAULT_FRAME_MS, GIF_MIN_FRAME_MS, inspect_animated, \
    inspect_image
from builder.importers.limits import MB, UploadLimits
from builder.importers.media import POSTER_AT_S, WEB_AUDIO_CODECS, WEB_VIDEO_CODECS, inspect_audio, inspect_video
from builder.importers.model import (CONVERTED_BASE_COLOR, DRACO_EXT, GENERATOR, HUGE_MODEL_M, MESHOPT_EXTS,
                                     gltf_model_meta, inspect_model)
from builder.importers.page import PAGE_MIN_SIDE_PX, PAGE_PRESETS, inspect_page
from builder.importers.pdf import MIN_PDF_DPI, MM_PER_PT, RenderedPdfPage, render_pdf_page
from builder.importers.sniff import (FORMATS, KIND_FORMATS, KINDS, OBJ_KEYWORD_SHARE, FormatInfo, _accepted_labels,
                                     accept_attribute,
                                     size_limit, sniff_format)

__all__ = [
    "CONVERTED_BASE_COLOR", "DRACO_EXT", "EQUIRECT_TOLERANCE", "FORMATS", "GENERATOR", "GIF_DEFAULT_FRAME_MS",
    "GIF_MIN_FRAME_MS", "HUGE_MODEL_M", "INSPECTORS", "KINDS", "KIND_FORMATS", "MB", "MESHOPT_EXTS", "MIN_PDF_DPI",
    "MM_PER_PT", "OBJ_KEYWORD_SHARE", "PAGE_MIN_SIDE_PX", "PAGE_PRESETS",
    "POSTER_AT_S", "WEB_AUDIO_CODECS", "WEB_VIDEO_CODECS", "FormatInfo", "GlbDocument", "InspectedAsset",
    "RenderedPdfPage", "UploadLimits", "accept_attribute", "clean_converted_glb", "gltf_model_meta",
    "inspect_upload", "pack_gltf_to_glb", "read_glb", "render_pdf_page", "size_limit",
    "sniff_format", "write_glb",
]


@dataclass(frozen=True)
class _Upload:
    """One upload on its way to its kind's inspector: the sniffed format and the checked size are known."""

    kind: str
    fmt: str
    data: bytes
    filename: str
    limits: UploadLimits
    page_index: int
    dpi: float


def _image_or_video(u: _Upload) -> InspectedAsset:
    """Images and 360° panoramas may be a still or (360° only) a video: the sniffed format decides."""
    if u.fmt in ("mp4", "webm"):
        return inspect_video(u.kind, u.fmt, u.data, u.filename, u.limits)
    return inspect_image(u.kind, u.fmt, u.data, u.filename, u.limits)


# The registry: upload kind → its inspector (the kind's module). KIND_FORMATS says what each accepts.
INSPECTORS: dict[str, Callable[[_Upload], InspectedAsset]] = {
    "page": lambda u: inspect_page(u.fmt, u.data, u.filename, u.limits, u.page_index, u.dpi),
    "model3d": lambda u: inspect_model(u.fmt, u.data, u.filename, u.limits),
    "audio": lambda u: inspect_audio(u.fmt, u.data, u.filename, u.limits),
    "animated_image": lambda u: inspect_animated(u.fmt, u.data, u.filename, u.limits),
    "video": _image_or_video,
    "image": _image_or_video,
    "panorama360": _image_or_video,
}


def inspect_upload(kind: str, data: bytes, filename: str, limits: UploadLimits | None = None, *,
                   page_index: int = 0, dpi: float = MIN_PDF_DPI) -> InspectedAsset:
    """Check one upload for overlay ``kind`` by its content and extract its facts.

    kind : one of :data:`KINDS`. filename : for messages only. page_index, dpi : PDF pages only (0-based page,
    render resolution, at least 150 dpi).

    meta by kind — page: source, width_px, height_px, dpi?, and for PDFs width_mm, height_mm, page_index,
    page_count; model3d: triangles, bounds_m, size_m, animations, meshes, materials, textures, has_skins,
    has_draco, has_meshopt, extensions, source_format, validator, warnings; video: duration_s, width, height,
    has_audio, codec, fps, poster_time_s, warnings (+ ``derived["poster"]`` PNG); audio: duration_s, codec,
    sample_rate, channels; animated_image: width, height, frames, duration_s, loop, loop_count, format;
    image: width, height, mode, has_alpha, dpi?; panorama360: the image or video facts + equirectangular, warnings.

    Raises :class:`InvalidAssetError` (codes ``unknown_kind``, ``empty_file``, ``too_large``, ``unsupported_type``,
    ``image_too_large``, ``corrupt_file``, ``not_animated``, ``gltf_invalid``, ``gltf_external_resources``,
    ``model_empty``, ``zip_*``, ``pdf_*``) or :class:`~builder.errors.ValidatorUnavailableError`.
    """
    limits = limits or UploadLimits()
    if kind not in KIND_FORMATS:
        raise InvalidAssetError("unknown_kind", {"kind": kind})
    data = bytes(data)
    if not data:
        raise InvalidAssetError("empty_file", {"filename": filename})
    # Cheap first gate before any parsing: the largest limit any accepted format of this kind has.
    ceiling = max(size_limit(kind, f, limits) for f in KIND_FORMATS[kind])
    if len(data) > ceiling:
        raise _too_large(filename, len(data), ceiling)
    fmt = sniff_format(data)
    if fmt not in KIND_FORMATS[kind]:
        raise InvalidAssetError("unsupported_type", {"filename": filename, "detected": FORMATS[fmt].label,
                                                     "kind": kind, "accepted": _accepted_labels(kind)})
    limit = size_limit(kind, fmt, limits)
    if len(data) > limit:
        raise _too_large(filename, len(data), limit)
    asset = INSPECTORS[kind](_Upload(kind, fmt, data, filename, limits, page_index, dpi))
    asset.meta.setdefault("warnings", [])  # every kind: [{"code", "values"}] to show the designer
    return asset

