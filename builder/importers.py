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
"""
from __future__ import annotations

import base64
import binascii
import contextlib
import io
import json
import math
import os
import struct
import tempfile
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from builder.errors import InvalidAssetError
from builder.gltf_validator import ValidationReport, validate_gltf
from builder.safezip import extract_zip

MB = 1_000_000  # limits are decimal megabytes, as file managers show them

KINDS = ("page", "model3d", "video", "audio", "animated_image", "image", "panorama360")

# ---------------------------------------------------------------------------------------------------------------
# Limits


# Overlay-kind spellings accepted for the limit variables (BAONHUNG_MAX_MODEL3D_MB = BAONHUNG_MAX_MODEL_MB).
_KIND_ALIASES = {"MODEL": "MODEL3D", "ANIMATED": "ANIMATED_IMAGE"}


@dataclass(frozen=True)
class UploadLimits:
    """Upload limits; bytes unless named otherwise. ``from_env`` reads ``BAONHUNG_MAX_<NAME>_MB`` variables."""

    max_page_bytes: int = 40 * MB  # JPEG/PNG page scans
    max_pdf_bytes: int = 80 * MB
    max_model_bytes: int = 50 * MB
    max_video_bytes: int = 200 * MB
    max_audio_bytes: int = 30 * MB
    max_image_bytes: int = 20 * MB
    max_animated_bytes: int = 30 * MB
    # Pillow bomb guard: 80 MP is more than a 300 dpi A1 scan (70 MP); anything larger is a mistake or an attack.
    max_image_pixels: int = 80_000_000
    # Animated images: frames, and all frames' pixels together (each one is decoded to check it).
    max_animation_frames: int = 3000
    max_animation_pixels: int = 1_500_000_000
    # Zip uploads (OBJ + MTL + textures): entries, bytes once inflated, and per-entry compression ratio.
    zip_max_files: int = 500
    zip_max_total_bytes: int = 300 * MB
    zip_max_ratio: float = 100.0
    # 3D models: triangles drawn (every mesh instance counted). A phone shows 50k per primitive comfortably (the
    # lite bundle simplifies to that); a 2 M-face OBJ cost +590 MB and held a server thread for 22+ minutes.
    max_model_triangles: int = 500_000

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "UploadLimits":
        """Limits from environment variables, defaults for the rest.

        ``BAONHUNG_MAX_{PAGE,PDF,MODEL,VIDEO,AUDIO,IMAGE,ANIMATED}_MB``, ``BAONHUNG_MAX_ZIP_TOTAL_MB`` (megabytes,
        decimals allowed), ``BAONHUNG_MAX_IMAGE_MEGAPIXELS``, ``BAONHUNG_MAX_ANIMATION_FRAMES``,
        ``BAONHUNG_MAX_ZIP_FILES``, ``BAONHUNG_MAX_ZIP_RATIO``; ``BAONHUNG_MAX_MODEL3D_MB`` and
        ``BAONHUNG_MAX_ANIMATED_IMAGE_MB`` are accepted as the kinds' spellings of MODEL and ANIMATED. A malformed or non-positive value raises
        ``ValueError`` naming the variable (a configuration error should stop the service at start).
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}

        def number(var: str) -> float | None:
            raw = env.get(var)
            if raw is None or raw.strip() == "":
                return None
            try:
                val = float(raw)
            except ValueError:
                raise ValueError(f"{var}={raw!r} is not a number") from None
            if not math.isfinite(val) or val <= 0:
                raise ValueError(f"{var}={raw!r} must be a positive number")
            return val

        for f in fields(cls):
            if f.name.startswith("max_") and f.name.endswith("_bytes"):
                short = f.name[4:-6].upper()
                # the short name wins over the overlay-kind alias (MODEL3D, ANIMATED_IMAGE)
                for var in (f"BAONHUNG_MAX_{short}_MB", f"BAONHUNG_MAX_{_KIND_ALIASES.get(short, short)}_MB"):
                    val = number(var)
                    if val is not None:
                        values[f.name] = int(val * MB)
                        break
        for var, name, conv in (
            ("BAONHUNG_MAX_ZIP_TOTAL_MB", "zip_max_total_bytes", lambda v: int(v * MB)),
            ("BAONHUNG_MAX_IMAGE_MEGAPIXELS", "max_image_pixels", lambda v: int(v * 1_000_000)),
            ("BAONHUNG_MAX_ANIMATION_FRAMES", "max_animation_frames", int),
            ("BAONHUNG_MAX_ZIP_FILES", "zip_max_files", int),
            ("BAONHUNG_MAX_ZIP_RATIO", "zip_max_ratio", float),
            ("BAONHUNG_MAX_MODEL_TRIANGLES", "max_model_triangles", int),
        ):
            val = number(var)
            if val is not None:
                values[name] = conv(val)
        return cls(**values)


# ---------------------------------------------------------------------------------------------------------------
# Result


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


# ---------------------------------------------------------------------------------------------------------------
# Content sniffing: a registry of (format name, test on the first bytes), checked in order.


@dataclass(frozen=True)
class FormatInfo:
    label: str  # for messages
    mime: str
    ext: str
    size_field: str  # which UploadLimits field bounds it


FORMATS: dict[str, FormatInfo] = {
    "jpeg": FormatInfo("JPEG", "image/jpeg", "jpg", "max_image_bytes"),
    "png": FormatInfo("PNG", "image/png", "png", "max_image_bytes"),
    "gif": FormatInfo("GIF", "image/gif", "gif", "max_animated_bytes"),
    "webp": FormatInfo("WebP", "image/webp", "webp", "max_image_bytes"),
    "pdf": FormatInfo("PDF", "application/pdf", "pdf", "max_pdf_bytes"),
    "glb": FormatInfo("GLB", "model/gltf-binary", "glb", "max_model_bytes"),
    "gltf": FormatInfo("glTF", "model/gltf+json", "gltf", "max_model_bytes"),
    "zip": FormatInfo("ZIP", "application/zip", "zip", "max_model_bytes"),
    "stl": FormatInfo("STL", "model/stl", "stl", "max_model_bytes"),
    "ply": FormatInfo("PLY", "application/ply", "ply", "max_model_bytes"),
    "obj": FormatInfo("OBJ", "model/obj", "obj", "max_model_bytes"),
    "dae": FormatInfo("COLLADA (DAE)", "model/vnd.collada+xml", "dae", "max_model_bytes"),
    "mp4": FormatInfo("MP4", "video/mp4", "mp4", "max_video_bytes"),
    "m4a": FormatInfo("M4A", "audio/mp4", "m4a", "max_audio_bytes"),
    "mov": FormatInfo("QuickTime (MOV)", "video/quicktime", "mov", "max_video_bytes"),
    "webm": FormatInfo("WebM", "video/webm", "webm", "max_video_bytes"),
    "matroska": FormatInfo("Matroska (MKV)", "video/x-matroska", "mkv", "max_video_bytes"),
    "ogg": FormatInfo("Ogg", "audio/ogg", "ogg", "max_audio_bytes"),
    "wav": FormatInfo("WAV", "audio/wav", "wav", "max_audio_bytes"),
    "mp3": FormatInfo("MP3", "audio/mpeg", "mp3", "max_audio_bytes"),
    "aac": FormatInfo("AAC", "audio/aac", "aac", "max_audio_bytes"),
    "text": FormatInfo("text", "text/plain", "txt", "max_image_bytes"),
    "unknown": FormatInfo("unknown", "application/octet-stream", "bin", "max_image_bytes"),
}

# What each overlay kind accepts (format names of FORMATS).
KIND_FORMATS: dict[str, tuple[str, ...]] = {
    "page": ("jpeg", "png", "pdf"),
    "model3d": ("glb", "gltf", "zip", "stl", "ply", "obj", "dae"),
    "video": ("mp4", "webm"),
    "audio": ("mp3", "aac", "m4a", "ogg", "wav", "mp4"),  # an MP4 holding only audio counts as M4A
    "animated_image": ("gif", "webp", "png"),
    "image": ("jpeg", "png", "webp"),
    "panorama360": ("jpeg", "png", "webp", "mp4", "webm"),
}

# Size limit by kind when it differs from the format's own (a page scan, an animation).
_KIND_SIZE_FIELD: dict[tuple[str, str], str] = {
    ("page", "jpeg"): "max_page_bytes",
    ("page", "png"): "max_page_bytes",
    ("animated_image", "webp"): "max_animated_bytes",
    ("animated_image", "png"): "max_animated_bytes",
    ("audio", "mp4"): "max_audio_bytes",
}

_MP4_AUDIO_BRANDS = {b"M4A ", b"M4B ", b"M4P ", b"F4A "}


def _is_mp3(d: bytes) -> bool:
    if d[:3] == b"ID3":
        return True
    return len(d) >= 2 and d[0] == 0xFF and (d[1] & 0xE0) == 0xE0 and ((d[1] >> 1) & 0x3) != 0


def _is_adts(d: bytes) -> bool:
    return len(d) >= 2 and d[0] == 0xFF and (d[1] & 0xF6) == 0xF0


def _is_binary_stl(d: bytes) -> bool:
    if len(d) < 84:
        return False
    (n,) = struct.unpack_from("<I", d, 80)
    return n > 0 and len(d) == 84 + 50 * n


def _text_head(d: bytes, n: int = 65536) -> str | None:
    head = d[:n]
    if b"\x00" in head:
        return None
    try:
        return head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start >= len(head) - 4:  # a multi-byte character cut by the slice
            return head[: exc.start].decode("utf-8", "replace")
        return head.decode("latin-1")


# Statement keywords of Wavefront OBJ (geometry, grouping, display and free-form ones).
_OBJ_KEYS = {"v", "vt", "vn", "vp", "f", "l", "p", "o", "g", "s", "mg", "usemtl", "mtllib", "usemap", "maplib",
             "lod", "bevel", "c_interp", "d_interp", "shadow_obj", "trace_obj", "ctech", "stech", "cstype", "deg",
             "bmat", "step", "curv", "curv2", "surf", "parm", "trim", "hole", "scrv", "sp", "end", "con", "call",
             "csh"}
# A text file is OBJ when at least this share of its statements are OBJ keywords (tolerates exporter quirks).
OBJ_KEYWORD_SHARE = 0.95


def _looks_obj(d: bytes) -> bool:
    text = _text_head(d)
    if text is None:
        return False
    known = total = 0
    has_vertex = False
    for line in text.splitlines()[:5000]:
        tok = line.strip().split(None, 1)
        if not tok or tok[0].startswith("#"):
            continue
        total += 1
        known += tok[0] in _OBJ_KEYS
        has_vertex = has_vertex or tok[0] == "v"
    return has_vertex and known >= OBJ_KEYWORD_SHARE * total


def _looks_gltf_json(d: bytes) -> bool:
    head = d[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"{") and b'"asset"' in d[:1_000_000]


def _iso_bmff(d: bytes) -> str | None:
    if d[4:8] != b"ftyp":
        return None
    brand = d[8:12]
    if brand in _MP4_AUDIO_BRANDS:
        return "m4a"
    if brand == b"qt  ":
        return "mov"
    return "mp4"


def _ebml(d: bytes) -> str | None:
    if d[:4] != b"\x1a\x45\xdf\xa3":
        return None
    return "webm" if b"webm" in d[:64] else "matroska"


_SNIFFERS: tuple[tuple[str, Callable[[bytes], bool | str | None]], ...] = (
    ("png", lambda d: d[:8] == b"\x89PNG\r\n\x1a\n"),
    ("jpeg", lambda d: d[:3] == b"\xff\xd8\xff"),
    ("gif", lambda d: d[:6] in (b"GIF87a", b"GIF89a")),
    ("webp", lambda d: d[:4] == b"RIFF" and d[8:12] == b"WEBP"),
    ("wav", lambda d: d[:4] == b"RIFF" and d[8:12] == b"WAVE"),
    ("pdf", lambda d: d[:1024].find(b"%PDF-") >= 0),
    ("glb", lambda d: d[:4] == b"glTF"),
    ("zip", lambda d: d[:4] in (b"PK\x03\x04", b"PK\x05\x06")),
    ("iso", _iso_bmff),
    ("ebml", _ebml),
    ("ogg", lambda d: d[:4] == b"OggS"),
    ("ply", lambda d: d[:4] in (b"ply\n", b"ply\r")),
    ("stl", _is_binary_stl),
    ("aac", _is_adts),
    ("mp3", _is_mp3),
    ("gltf", _looks_gltf_json),
    ("dae", lambda d: b"<COLLADA" in d[:4096]),
    ("stl", lambda d: d[:4096].lstrip().lower().startswith(b"solid") and b"facet" in d[:65536]),
    ("obj", _looks_obj),
)


def sniff_format(data: bytes) -> str:
    """The format name (a key of :data:`FORMATS`) that ``data`` starts like; ``text`` or ``unknown`` otherwise.

    This is only the first gate: every accepted format is then parsed for real.
    """
    for name, test in _SNIFFERS:
        hit = test(data)
        if hit:
            return hit if isinstance(hit, str) else name
    return "text" if _text_head(data, 4096) is not None and data.strip() else "unknown"


# ---------------------------------------------------------------------------------------------------------------
# Helpers


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


def _open_image(data: bytes, fmt: str, filename: str, limits: UploadLimits) -> Image.Image:
    """Open with Pillow restricted to ``fmt``; the bomb guard runs before any pixel is decoded."""
    pil_format = {"jpeg": "JPEG", "png": "PNG", "gif": "GIF", "webp": "WEBP"}[fmt]
    try:
        img = Image.open(io.BytesIO(data), formats=[pil_format])
    except Image.DecompressionBombError as exc:
        raise InvalidAssetError(
            "image_too_large", {"filename": filename, "width": "?", "height": "?",
                                "limit_mp": limits.max_image_pixels / 1e6}
        ) from exc
    except _PIL_ERRORS as exc:
        raise _corrupt(filename, exc) from exc
    _check_pixels(img.width, img.height, limits, filename)
    return img


def _load_image(img: Image.Image, filename: str) -> None:
    """Decode every pixel (catches truncated and damaged files)."""
    with _pillow_errors(filename, img):
        img.load()


@contextlib.contextmanager
def _pillow_errors(filename: str, img: Image.Image | None = None):
    """Map what Pillow raises while reading frames: a frame declaring a huge size → ``image_too_large``,
    anything from damaged bytes → ``corrupt_file``."""
    try:
        yield
    except Image.DecompressionBombError as exc:
        raise InvalidAssetError("image_too_large", {
            "filename": filename, "width": getattr(img, "width", "?"), "height": getattr(img, "height", "?"),
            "limit_mp": "?"}) from exc
    except _PIL_ERRORS as exc:
        raise _corrupt(filename, exc) from exc


def _frame_count(img: Image.Image, filename: str) -> int:
    """Frames of a possibly animated image (1 for a still); reading the frame headers can fail on damage."""
    with _pillow_errors(filename, img):
        return int(getattr(img, "n_frames", 1)) if getattr(img, "is_animated", False) else 1


# Re-encoding quality when a phone photo must be turned upright (JPEG): visually lossless.
UPRIGHT_JPEG_QUALITY = 95


def _upright(data: bytes, img: Image.Image, fmt: str, filename: str) -> tuple[bytes, Image.Image, int]:
    """Apply an EXIF orientation tag to the pixels (phone photos are stored sideways with a tag).

    OpenCV applies the tag when decoding and three.js textures do not; storing upright pixels without the tag makes
    every consumer see the same image. Returns (data, image, orientation applied or 0); untouched when upright.
    """
    from PIL import ImageOps

    try:
        orientation = int(img.getexif().get(0x0112) or 1)
    except _PIL_ERRORS:
        orientation = 1  # unreadable EXIF: keep the pixels as stored
    if orientation not in range(2, 9):
        return data, img, 0
    buf = io.BytesIO()
    keep = {k: img.info[k] for k in ("icc_profile", "dpi") if img.info.get(k)}
    with _pillow_errors(filename, img):
        turned = ImageOps.exif_transpose(img)
        if fmt == "jpeg":
            turned.save(buf, format="JPEG", quality=UPRIGHT_JPEG_QUALITY, subsampling=0, **keep)
        else:
            turned.save(buf, format={"png": "PNG", "webp": "WEBP"}[fmt],
                        **({"lossless": True} if fmt == "webp" else {}), **keep)
    return buf.getvalue(), turned, orientation


def _image_meta(img: Image.Image) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "width": img.width,
        "height": img.height,
        "mode": img.mode,
        "has_alpha": img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info,
    }
    dpi = img.info.get("dpi")
    if dpi and dpi[0]:
        meta["dpi"] = round(float(dpi[0]), 2)
    return meta


# ---------------------------------------------------------------------------------------------------------------
# Pages


PAGE_PRESETS: dict[str, tuple[float, float]] = {
    "A4": (210.0, 297.0),
    "A3": (297.0, 420.0),
    "berliner": (315.0, 470.0),
    "tabloid": (280.0, 430.0),
}
# No printed page is smaller than a business card or bigger than a 2 m poster.
PAGE_MM_MIN, PAGE_MM_MAX = 50.0, 2000.0
# Renders below this resolution track poorly on phones (issue 2 asks for ≥150 dpi).
MIN_PDF_DPI = 150
MM_PER_PT = 25.4 / 72.0

# pdfium is not thread-safe; web servers may inspect two uploads at once.
_PDFIUM_LOCK = threading.Lock()


@dataclass(frozen=True)
class RenderedPdfPage:
    """One rendered PDF page: PNG bytes, its pixel size, the page's size in mm (from the PDF), dpi used."""

    png: bytes
    width_px: int
    height_px: int
    width_mm: float
    height_mm: float
    dpi: float
    page_index: int
    page_count: int


def _trim_crop(page) -> tuple[float, float, float, float]:
    """Points to cut from the displayed (left, bottom, right, top) so only the TrimBox — the finished page —
    is rendered: print PDFs carry bleed and crop marks outside it. Zero when there is no TrimBox."""
    cl, cb, cr, ct = page.get_cropbox()
    tl, tb, tr, tt = page.get_trimbox()  # falls back to the CropBox
    tl, tb, tr, tt = max(tl, cl), max(tb, cb), min(tr, cr), min(tt, ct)
    if tr - tl < 1 or tt - tb < 1:
        return (0.0, 0.0, 0.0, 0.0)
    left, bottom, right, top = tl - cl, tb - cb, cr - tr, ct - tt  # in the page's own (unrotated) frame
    # /Rotate turns the page clockwise for display: which unrotated side ends up on each displayed side.
    return {
        0: (left, bottom, right, top),
        90: (bottom, right, top, left),
        180: (right, top, left, bottom),
        270: (top, left, bottom, right),
    }.get(page.get_rotation() % 360, (left, bottom, right, top))


def render_pdf_page(data: bytes, page_index: int = 0, dpi: float = MIN_PDF_DPI, *,
                    max_pixels: int = UploadLimits.max_image_pixels, filename: str = "pdf") -> RenderedPdfPage:
    """Render page ``page_index`` (0-based) of a PDF at ``dpi`` (at least 150) to PNG with pypdfium2.

    Only the TrimBox (the finished page, without bleed and crop marks) is rendered and measured when the PDF
    has one; otherwise the CropBox. Sizes are as displayed (after the page's /Rotate).

    Raises InvalidAssetError: ``corrupt_file``, ``pdf_encrypted``, ``pdf_page_out_of_range``,
    ``image_too_large`` (the render would exceed ``max_pixels``).
    """
    import pypdfium2 as pdfium

    dpi = max(float(dpi), MIN_PDF_DPI)
    with _PDFIUM_LOCK:
        try:
            doc = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as exc:
            if "password" in str(exc).lower():
                raise InvalidAssetError("pdf_encrypted", {"filename": filename}) from exc
            raise _corrupt(filename, exc) from exc
        try:
            count = len(doc)
            if count == 0:
                raise _corrupt(filename, "no pages")
            if not 0 <= page_index < count:
                raise InvalidAssetError("pdf_page_out_of_range",
                                        {"page_count": count, "page_number": page_index + 1})
            try:
                page = doc[page_index]
                crop = _trim_crop(page)
                w_pt, h_pt = page.get_size()  # as displayed: pdfium already swaps for /Rotate 90 or 270
            except pdfium.PdfiumError as exc:
                raise _corrupt(filename, exc) from exc
            w_pt, h_pt = w_pt - crop[0] - crop[2], h_pt - crop[1] - crop[3]
            if not (math.isfinite(w_pt) and math.isfinite(h_pt)) or w_pt < 1 or h_pt < 1:
                raise _corrupt(filename, f"page size {w_pt:g} × {h_pt:g} pt")
            w_px, h_px = round(w_pt / 72 * dpi), round(h_pt / 72 * dpi)
            if w_px * h_px > max_pixels:
                raise InvalidAssetError("image_too_large", {"filename": filename, "width": w_px, "height": h_px,
                                                            "limit_mp": max_pixels / 1e6})
            try:
                img = page.render(scale=dpi / 72, crop=crop, may_draw_forms=True).to_pil()
            except pdfium.PdfiumError as exc:
                raise _corrupt(filename, exc) from exc
        finally:
            doc.close()
    if img.mode not in ("RGB", "L"):
        img = img.convert("RGB")
    return RenderedPdfPage(
        png=_png_bytes(img), width_px=img.width, height_px=img.height,
        width_mm=round(w_pt * MM_PER_PT, 2), height_mm=round(h_pt * MM_PER_PT, 2),
        dpi=dpi, page_index=page_index, page_count=count,
    )


def page_size_mm(preset_or_values: str | tuple[float, float] | Mapping[str, Any] | None,
                 meta: Mapping[str, Any] | None = None) -> tuple[float, float]:
    """The page's physical (width_mm, height_mm).

    preset_or_values : a key of :data:`PAGE_PRESETS` (case-insensitive; turned landscape when the page image is
    wider than tall), a ``(width_mm, height_mm)`` pair, a mapping with ``width_mm``/``height_mm``, or ``None`` to
    take the size read from the PDF (``meta["width_mm"]``, ``meta["height_mm"]``).
    Raises InvalidAssetError ``invalid_page_size`` when nothing usable is given or a value is out of 50–2000 mm.
    """
    meta = meta or {}
    if isinstance(preset_or_values, str) and preset_or_values.strip():
        key = {k.lower(): k for k in PAGE_PRESETS}.get(preset_or_values.strip().lower())
        if key is None:
            raise InvalidAssetError("invalid_page_size",
                                    {"detail": f"unknown preset {preset_or_values!r} ({', '.join(PAGE_PRESETS)})"})
        w, h = PAGE_PRESETS[key]
        if meta.get("width_px", 0) > meta.get("height_px", 0):
            w, h = h, w
    elif isinstance(preset_or_values, Mapping):
        w, h = preset_or_values.get("width_mm"), preset_or_values.get("height_mm")
    elif isinstance(preset_or_values, (tuple, list)) and len(preset_or_values) == 2:
        w, h = preset_or_values
    elif preset_or_values is None or preset_or_values == "":
        w, h = meta.get("width_mm"), meta.get("height_mm")
        if w is None or h is None:
            raise InvalidAssetError("invalid_page_size", {"detail": "no size given and none in the file"})
    else:
        raise InvalidAssetError("invalid_page_size", {"detail": repr(preset_or_values)[:80]})
    try:
        w, h = float(w), float(h)
    except (TypeError, ValueError):
        raise InvalidAssetError("invalid_page_size", {"detail": f"{w!r} × {h!r}"}) from None
    for v in (w, h):
        if not (math.isfinite(v) and PAGE_MM_MIN <= v <= PAGE_MM_MAX):
            raise InvalidAssetError("invalid_page_size",
                                    {"detail": f"{v:g} mm outside {PAGE_MM_MIN:g}–{PAGE_MM_MAX:g} mm"})
    return w, h


# A page image's short side: below this, too few features survive for recognition (a 1x1 PNG reached the marker
# trainer and failed there as a server error, issue 25's fuzzing); a 150 dpi A6 is ~620 px.
PAGE_MIN_SIDE_PX = 200


def _check_page_side(width: int, height: int, filename: str) -> None:
    if min(width, height) < PAGE_MIN_SIDE_PX:
        raise InvalidAssetError("page_too_small", {"filename": filename, "width": width, "height": height,
                                                   "min_px": PAGE_MIN_SIDE_PX})


def _inspect_page(fmt: str, data: bytes, filename: str, limits: UploadLimits, page_index: int,
                  dpi: float) -> InspectedAsset:
    if fmt == "pdf":
        r = render_pdf_page(data, page_index, dpi, max_pixels=limits.max_image_pixels, filename=filename)
        _check_page_side(r.width_px, r.height_px, filename)
        meta = {"source": "pdf", "width_px": r.width_px, "height_px": r.height_px, "dpi": r.dpi,
                "width_mm": r.width_mm, "height_mm": r.height_mm, "page_index": r.page_index,
                "page_count": r.page_count}
        return InspectedAsset("image/png", "png", r.png, meta, {"source_pdf": (data, "application/pdf")})
    img = _open_image(data, fmt, filename, limits)
    _check_page_side(img.width, img.height, filename)
    _load_image(img, filename)
    data, img, turned = _upright(data, img, fmt, filename)
    m = _image_meta(img)
    meta = {"source": fmt, "width_px": m["width"], "height_px": m["height"]}
    if "dpi" in m:
        meta["dpi"] = m["dpi"]
    if turned:
        meta["exif_orientation_applied"] = turned
    return InspectedAsset(FORMATS[fmt].mime, FORMATS[fmt].ext, data, meta, {})


# ---------------------------------------------------------------------------------------------------------------
# Still and animated images


# Panoramas: equirectangular means width = 2 × height; allow 1 % for cropping/rounding.
EQUIRECT_TOLERANCE = 0.01


def _panorama_warnings(width: int, height: int) -> list[dict]:
    if height and abs(width / height - 2.0) <= 2.0 * EQUIRECT_TOLERANCE:
        return []
    return [{"code": "not_equirectangular", "values": {"width": width, "height": height,
                                                        "ratio": round(width / max(height, 1), 3)}}]


def _inspect_image(kind: str, fmt: str, data: bytes, filename: str, limits: UploadLimits) -> InspectedAsset:
    img = _open_image(data, fmt, filename, limits)
    _load_image(img, filename)
    frames = _frame_count(img, filename)
    turned = 0
    if frames == 1:
        data, img, turned = _upright(data, img, fmt, filename)
    meta = _image_meta(img)
    if turned:
        meta["exif_orientation_applied"] = turned
    if frames > 1:
        meta["animated_frames"] = frames
    if kind == "panorama360":
        warnings = _panorama_warnings(img.width, img.height)
        meta["equirectangular"] = not warnings
        meta["warnings"] = warnings
    return InspectedAsset(FORMATS[fmt].mime, FORMATS[fmt].ext, data, meta, {})


# GIF frames of ≤10 ms play at 100 ms in every browser.
GIF_MIN_FRAME_MS, GIF_DEFAULT_FRAME_MS = 10, 100


def _inspect_animated(fmt: str, data: bytes, filename: str, limits: UploadLimits) -> InspectedAsset:
    img = _open_image(data, fmt, filename, limits)
    frames = _frame_count(img, filename)
    if frames < 2:
        _load_image(img, filename)  # a corrupt single frame is "corrupt", not "not animated"
        raise InvalidAssetError("not_animated", {"filename": filename})
    if frames > limits.max_animation_frames or frames * img.width * img.height > limits.max_animation_pixels:
        raise InvalidAssetError("image_too_large", {"filename": filename, "width": img.width,
                                                    "height": f"{img.height} × {frames}",
                                                    "limit_mp": limits.max_animation_pixels / 1e6})
    total_ms = 0.0
    with _pillow_errors(filename, img):
        for i in range(frames):
            img.seek(i)
            img.load()
            ms = float(img.info.get("duration") or 0)
            if fmt == "gif" and ms <= GIF_MIN_FRAME_MS:
                ms = GIF_DEFAULT_FRAME_MS
            total_ms += ms
        img.seek(0)
    loop_count = img.info.get("loop")  # 0 = forever; absent = play once (GIF)
    meta = {
        "width": img.width, "height": img.height, "frames": frames,
        "duration_s": round(total_ms / 1000.0, 3),
        "loop": loop_count == 0,
        "loop_count": None if loop_count is None else int(loop_count),
        "format": fmt if fmt != "png" else "apng",
    }
    return InspectedAsset(FORMATS[fmt].mime, "png" if fmt == "png" else FORMATS[fmt].ext, data, meta, {})


# ---------------------------------------------------------------------------------------------------------------
# Video and audio (PyAV)

# Poster frame time: "about one second in" so fade-ins from black are skipped; the first frame for short clips.
POSTER_AT_S = 1.0
# Codecs that phone browsers decode in a <video> / <audio> element; others are accepted with a warning.
WEB_VIDEO_CODECS = {"h264", "hevc", "vp8", "vp9", "av1"}
WEB_AUDIO_CODECS = {"mp3", "mp3float", "aac", "opus", "vorbis", "flac"}


def _av_open(data: bytes, filename: str):
    import av

    try:
        return av.open(io.BytesIO(data), mode="r")
    except (av.FFmpegError, ValueError, OSError, EOFError) as exc:
        raise _corrupt(filename, exc) from exc


def _av_duration(container, stream) -> float | None:
    if container.duration:
        return round(container.duration / 1_000_000, 3)
    if stream is not None and stream.duration and stream.time_base:
        return round(float(stream.duration * stream.time_base), 3)
    return None


def _is_attached_picture(stream) -> bool:
    import av.stream

    try:
        return bool(stream.disposition & av.stream.Disposition.attached_pic)
    except (AttributeError, TypeError):
        return False


def _first_frame(container, stream, at_s: float):
    """The first decoded frame at or after ``at_s`` (seconds), or the last one before the end."""
    import av

    if at_s > 0:
        try:
            container.seek(int(at_s * 1_000_000), backward=True, any_frame=False)
        except av.FFmpegError:
            container.seek(0)
    last = None
    for frame in container.decode(stream):
        last = frame
        if frame.time is None or frame.time >= at_s - 1e-3 or at_s == 0:
            return frame
    return last


def _inspect_video(kind: str, fmt: str, data: bytes, filename: str, limits: UploadLimits) -> InspectedAsset:
    import av

    container = _av_open(data, filename)
    try:
        videos = [s for s in container.streams.video if not _is_attached_picture(s)]
        if not videos:
            raise InvalidAssetError("unsupported_type", {
                "filename": filename, "detected": f"{FORMATS[fmt].label} (audio only)", "kind": kind,
                "accepted": _accepted_labels(kind)})
        stream = videos[0]
        if stream.codec_context is None:  # FFmpeg has no decoder for it (or the header is damaged)
            raise _corrupt(filename, "unknown video codec")
        has_audio = len(container.streams.audio) > 0
        codec = stream.codec_context.name
        width, height = stream.codec_context.width, stream.codec_context.height
        _check_pixels(width or 0, height or 0, limits, filename)  # before decoding a frame of that size
        duration = _av_duration(container, stream)
        try:
            frame = _first_frame(container, stream, POSTER_AT_S if (duration or 0) > POSTER_AT_S else 0.0)
        except (av.FFmpegError, ValueError, OSError, EOFError) as exc:
            raise _corrupt(filename, exc) from exc
        if frame is None:
            raise _corrupt(filename, "no decodable video frame")
        try:
            poster = frame.to_image()
        except (av.FFmpegError, ValueError, TypeError) as exc:
            raise _corrupt(filename, f"poster frame: {exc}") from exc
        fps = float(stream.average_rate) if stream.average_rate else None
    finally:
        container.close()
    width, height = width or poster.width, height or poster.height
    meta: dict[str, Any] = {
        "duration_s": duration, "width": width, "height": height, "has_audio": has_audio,
        "codec": codec, "fps": round(fps, 3) if fps else None,
        "poster_time_s": round(float(frame.time), 3) if frame.time is not None else 0.0,
    }
    warnings: list[dict] = []
    if codec not in WEB_VIDEO_CODECS:
        warnings.append({"code": "codec_not_web_playable", "values": {"codec": codec}})
    if kind == "panorama360":
        pano = _panorama_warnings(width, height)
        meta["equirectangular"] = not pano
        warnings += pano
    meta["warnings"] = warnings
    return InspectedAsset(FORMATS[fmt].mime, FORMATS[fmt].ext, data, meta,
                          {"poster": (_png_bytes(poster.convert("RGB")), "image/png")})


def _inspect_audio(fmt: str, data: bytes, filename: str, limits: UploadLimits) -> InspectedAsset:
    import av

    container = _av_open(data, filename)
    try:
        videos = [s for s in container.streams.video if not _is_attached_picture(s)]
        audios = list(container.streams.audio)
        if videos or not audios:
            detected = f"{FORMATS[fmt].label} ({'video' if videos else 'no audio'})"
            raise InvalidAssetError("unsupported_type", {"filename": filename, "detected": detected,
                                                         "kind": "audio", "accepted": _accepted_labels("audio")})
        stream = audios[0]
        if stream.codec_context is None:
            raise _corrupt(filename, "unknown audio codec")
        try:
            frame = next(container.decode(stream), None)
        except (av.FFmpegError, ValueError, OSError, EOFError) as exc:
            raise _corrupt(filename, exc) from exc
        if frame is None:
            raise _corrupt(filename, "no decodable audio frame")
        meta = {
            "duration_s": _av_duration(container, stream),
            "codec": stream.codec_context.name,
            "sample_rate": stream.codec_context.sample_rate,
            "channels": stream.codec_context.channels if hasattr(stream.codec_context, "channels")
            else stream.codec_context.layout.nb_channels,
        }
        codec = meta["codec"]
        meta["warnings"] = [] if codec in WEB_AUDIO_CODECS or codec.startswith("pcm_") else [
            {"code": "codec_not_web_playable", "values": {"codec": codec}}]
    finally:
        container.close()
    out = "m4a" if fmt == "mp4" else fmt
    return InspectedAsset(FORMATS[out].mime, FORMATS[out].ext, data, meta, {})


# ---------------------------------------------------------------------------------------------------------------
# 3D models: GLB container, glTF facts, trimesh conversion

GLB_MAGIC, GLB_JSON, GLB_BIN = 0x46546C67, 0x4E4F534A, 0x004E4942
GENERATOR = "Báo Nhúng builder (trimesh)"
# Mesh extensions whose meshes the validator cannot see into.
DRACO_EXT = "KHR_draco_mesh_compression"
MESHOPT_EXTS = ("EXT_meshopt_compression", "KHR_meshopt_compression")
# A converted model more than this many metres across was probably modelled in millimetres.
HUGE_MODEL_M = 10.0


def read_glb(data: bytes) -> tuple[dict, bytes]:
    """Split a GLB into (glTF JSON dict, BIN chunk bytes or b""); ``ValueError`` on a malformed container."""
    if len(data) < 20:
        raise ValueError("shorter than a GLB header")
    magic, version, length = struct.unpack_from("<III", data, 0)
    if magic != GLB_MAGIC:
        raise ValueError("not a GLB (bad magic)")
    if version != 2:
        raise ValueError(f"GLB version {version}, only 2 is supported")
    if length != len(data):
        raise ValueError(f"GLB header says {length} bytes, file has {len(data)}")
    offset, doc, binary = 12, None, b""
    while offset + 8 <= length:
        chunk_len, chunk_type = struct.unpack_from("<II", data, offset)
        start, end = offset + 8, offset + 8 + chunk_len
        if end > length:
            raise ValueError("GLB chunk runs past the end of the file")
        if chunk_type == GLB_JSON and doc is None:
            try:
                doc = json.loads(data[start:end].decode("utf-8"))
            except RecursionError:  # absurdly nested JSON
                raise ValueError("glTF JSON nested too deeply") from None
        elif chunk_type == GLB_BIN and not binary:
            binary = data[start:end]
        offset = end
    if not isinstance(doc, dict):
        raise ValueError("GLB has no JSON chunk")
    return doc, binary


def write_glb(doc: Mapping[str, Any], binary: bytes = b"") -> bytes:
    """A GLB container around ``doc`` and ``binary``, both chunks padded to 4 bytes (JSON with spaces, BIN with
    zeros) as the spec requires (pygltflib's ``save_binary`` does not pad the BIN chunk)."""
    js = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    js += b" " * (-len(js) % 4)
    out = [struct.pack("<II", len(js), GLB_JSON), js]
    if binary:
        binary = bytes(binary) + b"\x00" * (-len(binary) % 4)
        out += [struct.pack("<II", len(binary), GLB_BIN), binary]
    body = b"".join(out)
    return struct.pack("<III", GLB_MAGIC, 2, 12 + len(body)) + body


def _drop_extras(node: Any) -> None:
    if isinstance(node, dict):
        node.pop("extras", None)
        for v in node.values():
            _drop_extras(v)
    elif isinstance(node, list):
        for v in node:
            _drop_extras(v)


def clean_converted_glb(glb: bytes, generator: str = GENERATOR) -> bytes:
    """Tidy a GLB that trimesh wrote: drop every ``extras`` (trimesh's leftover metadata), set our generator,
    and give vertex/index bufferViews their ``target`` (the validator hints about it)."""
    doc, binary = read_glb(glb)
    _drop_extras(doc)
    doc["asset"] = {"version": "2.0", "generator": generator}
    views = doc.get("bufferViews", [])
    accessors = doc.get("accessors", [])
    for mesh in doc.get("meshes", []):
        for prim in mesh.get("primitives", []):
            pairs = [(a, 34962) for a in prim.get("attributes", {}).values()]
            if "indices" in prim:
                pairs.append((prim["indices"], 34963))
            for acc_index, target in pairs:
                bv = accessors[acc_index].get("bufferView")
                if bv is not None and "target" not in views[bv]:
                    views[bv]["target"] = target
    return write_glb(doc, binary)


# KHR_mesh_quantization: a normalized integer accessor's min/max are stored as integers; divide to get floats
# (signed types clamp at -1), as the glTF spec's "normalized" rule says.
_NORMALIZED_DIVISOR = {5120: 127.0, 5121: 255.0, 5122: 32767.0, 5123: 65535.0}


def _accessor_range(acc: Mapping[str, Any]) -> tuple[list[float], list[float]]:
    lo, hi = list(acc["min"][:3]), list(acc["max"][:3])
    div = _NORMALIZED_DIVISOR.get(acc.get("componentType")) if acc.get("normalized") else None
    if div:
        lo, hi = ([max(v / div, -1.0) for v in vs] for vs in (lo, hi))
    return lo, hi


def _node_matrix(node: Mapping[str, Any]) -> np.ndarray:
    if "matrix" in node:
        return np.array(node["matrix"], dtype=np.float64).reshape(4, 4).T  # glTF is column-major
    t = np.array(node.get("translation", (0, 0, 0)), dtype=np.float64)
    x, y, z, w = node.get("rotation", (0, 0, 0, 1))
    r = np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])
    s = np.array(node.get("scale", (1, 1, 1)), dtype=np.float64)
    m = np.eye(4)
    m[:3, :3] = r * s  # R · diag(s)
    m[:3, 3] = t
    return m


def gltf_model_meta(doc: Mapping[str, Any]) -> dict[str, Any]:
    """Facts about a glTF document, read from its JSON only (works for Draco/meshopt files too).

    triangles : drawn triangles of the default scene (each mesh instance counted), bounds_m : [[min xyz],
    [max xyz]] in scene metres (from accessor min/max through node transforms; ``None`` without geometry),
    animations, meshes, materials, textures, has_draco, has_meshopt, has_skins, extensions.
    """
    accessors = doc.get("accessors", [])
    meshes = doc.get("meshes", [])
    nodes = doc.get("nodes", [])
    scenes = doc.get("scenes", [])
    scene_index = doc.get("scene", 0)
    roots = scenes[scene_index].get("nodes", []) if 0 <= scene_index < len(scenes) else []
    if not scenes:
        roots = list(range(len(nodes)))  # no scene: count every node once, as if all were roots
    triangles, lo, hi = 0, np.full(3, np.inf), np.full(3, -np.inf)
    stack = [(i, np.eye(4), 0) for i in roots]
    visited = 0
    while stack:
        index, parent, depth = stack.pop()
        visited += 1
        if depth > 64 or visited > 1_000_000 or not 0 <= index < len(nodes):
            raise ValueError("node hierarchy too deep, cyclic or out of range")
        node = nodes[index]
        world = parent @ _node_matrix(node)
        mesh_index = node.get("mesh")
        if mesh_index is not None and 0 <= mesh_index < len(meshes):
            for prim in meshes[mesh_index].get("primitives", []):
                pos = accessors[prim["attributes"]["POSITION"]] if "POSITION" in prim.get("attributes", {}) else None
                count = accessors[prim["indices"]]["count"] if "indices" in prim else (pos or {}).get("count", 0)
                mode = prim.get("mode", 4)
                triangles += count // 3 if mode == 4 else max(count - 2, 0) if mode in (5, 6) else 0
                if pos and "min" in pos and "max" in pos:
                    pmin, pmax = _accessor_range(pos)
                    corners = np.array([[x, y, z, 1.0] for x in (pmin[0], pmax[0]) for y in (pmin[1], pmax[1])
                                        for z in (pmin[2], pmax[2])])
                    pts = (world @ corners.T).T[:, :3]
                    lo, hi = np.minimum(lo, pts.min(0)), np.maximum(hi, pts.max(0))
        stack.extend((c, world, depth + 1) for c in node.get("children", []))
    used = list(doc.get("extensionsUsed", []))
    bounds = None if not np.isfinite(lo).all() else [[round(float(v), 6) for v in lo], [round(float(v), 6) for v in hi]]
    return {
        "triangles": int(triangles),
        "bounds_m": bounds,
        "size_m": None if bounds is None else [round(b - a, 6) for a, b in zip(*bounds)],
        "animations": len(doc.get("animations", [])),
        "meshes": len(meshes),
        "materials": len(doc.get("materials", [])),
        "textures": len(doc.get("textures", [])),
        "has_skins": bool(doc.get("skins")),
        "has_draco": DRACO_EXT in used,
        "has_meshopt": any(e in used for e in MESHOPT_EXTS),
        "extensions": used,
    }


def _check_triangles(count: int, filename: str, limits: UploadLimits) -> None:
    if count > limits.max_model_triangles:
        raise InvalidAssetError("model_too_many_triangles", {"filename": filename, "triangles": f"{count:,}",
                                                             "limit": f"{limits.max_model_triangles:,}"})


def _validated_meta(data: bytes, doc: Mapping[str, Any], filename: str, source: str,
                    limits: UploadLimits) -> dict[str, Any]:
    try:  # counted from the accessors before the validator reads every byte
        triangles = gltf_model_meta(doc)["triangles"]
    except (KeyError, IndexError, TypeError, ValueError):
        triangles = 0  # a broken document: the validator says what is wrong with it
    _check_triangles(triangles, filename, limits)
    report: ValidationReport = validate_gltf(data)
    if not report.ok:
        raise InvalidAssetError("gltf_invalid", {
            "filename": filename, "errors": report.errors,
            "details": "; ".join(report.first_messages(3)),
            "messages": report.first_messages(10),
        })
    try:
        meta = gltf_model_meta(doc)
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise _corrupt(filename, exc) from exc
    _check_triangles(meta["triangles"], filename, limits)
    if not meta["meshes"]:
        raise InvalidAssetError("model_empty", {"filename": filename})
    meta["source_format"] = source
    meta["validator"] = {"errors": report.errors, "warnings": report.warnings, "infos": report.infos}
    meta["warnings"] = []
    if report.warnings:
        meta["warnings"].append({"code": "gltf_validator_warnings", "values": {
            "count": report.warnings, "first": report.first_messages(3, "warning")[:3]}})
    if meta["size_m"] and max(meta["size_m"]) > HUGE_MODEL_M:
        meta["warnings"].append({"code": "model_very_large", "values": {"size_m": meta["size_m"]}})
    # glTF's default material is white and fully metallic: lit only by what it reflects, plain grey metal at best
    if any("material" not in prim for mesh in doc.get("meshes", []) for prim in mesh.get("primitives", [])):
        meta["warnings"].append({"code": "model_no_material", "values": {"filename": filename}})
    return meta


def _data_uri_bytes(uri: str) -> bytes:
    header, _, payload = uri.partition(",")
    if ";base64" in header:
        return base64.b64decode(payload, validate=False)
    return urllib.parse.unquote_to_bytes(payload)


def _external_uris(doc: Mapping[str, Any]) -> list[str]:
    return [item["uri"] for key in ("buffers", "images") for item in doc.get(key, [])
            if isinstance(item, dict) and "uri" in item and not str(item["uri"]).startswith("data:")]


def pack_gltf_to_glb(doc: dict, read_uri: Callable[[str], bytes]) -> bytes:
    """A self-contained GLB from a glTF JSON whose buffers and images are URIs read by ``read_uri``.

    All buffers become the one BIN chunk (8-byte aligned, bufferView offsets shifted); images become
    bufferViews with their mime type. ``read_uri`` raises ``KeyError`` for a URI it refuses.
    """
    doc = json.loads(json.dumps(doc))  # private copy
    blob = bytearray()
    offsets = []
    for buf in doc.get("buffers", []):
        if "uri" not in buf:
            raise ValueError("a buffer has no uri")
        raw = read_uri(buf["uri"])
        if len(raw) < buf.get("byteLength", 0):
            raise ValueError(f"buffer {buf['uri'][:60]!r} is shorter than its byteLength")
        blob += b"\x00" * (-len(blob) % 8)
        offsets.append(len(blob))
        blob += raw[: buf.get("byteLength", len(raw))]
    views = doc.setdefault("bufferViews", [])
    for bv in views:
        bv["byteOffset"] = bv.get("byteOffset", 0) + offsets[bv["buffer"]]
        bv["buffer"] = 0
    image_mimes = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
    for img in doc.get("images", []):
        if "uri" not in img:
            continue
        raw = read_uri(img.pop("uri"))
        blob += b"\x00" * (-len(blob) % 8)
        views.append({"buffer": 0, "byteOffset": len(blob), "byteLength": len(raw)})
        blob += raw
        img["bufferView"] = len(views) - 1
        img["mimeType"] = image_mimes.get(sniff_format(raw), img.get("mimeType", "image/png"))
    if not views:
        doc.pop("bufferViews")
    blob += b"\x00" * (-len(blob) % 4)
    doc["buffers"] = [{"byteLength": len(blob)}] if blob else []
    if not doc["buffers"]:
        doc.pop("buffers")
    return write_glb(doc, bytes(blob))


def _safe_reader(root: Path) -> Callable[[str], bytes]:
    root = root.resolve()

    def read(uri: str) -> bytes:
        if uri.startswith("data:"):
            return _data_uri_bytes(uri)
        path = (root / urllib.parse.unquote(uri)).resolve()
        if root not in path.parents or not path.is_file():
            raise KeyError(uri)
        return path.read_bytes()

    return read


class _SandboxResolver:
    """trimesh resolver that only reads files below ``root`` (an MTL naming ``../../etc/passwd`` gets nothing)."""

    def __init__(self, root: Path):
        self.parent = str(root)
        self._read = _safe_reader(root)

    def get(self, name: str) -> bytes:
        return self._read(name.replace("\\", "/"))

    def get_base(self) -> bytes:
        raise KeyError("base")

    def write(self, name, data):  # trimesh's Resolver interface; never used when loading
        raise PermissionError(name)

    def namespaced(self, namespace):
        return _SandboxResolver(Path(self.parent) / namespace)

    def keys(self):
        return []


def _check_obj(data: bytes, filename: str, limits: UploadLimits) -> None:
    """Strict OBJ syntax check (trimesh silently drops what it cannot read): numbers parse, faces refer to
    existing vertices. Raises ``corrupt_file`` with the line number, ``model_too_many_triangles`` before parsing
    on."""
    counts = {"v": 0, "vt": 0, "vn": 0}
    faces = triangles = 0
    text = data.decode("utf-8", "replace")
    for lineno, line in enumerate(text.splitlines(), 1):
        tok = line.split("#", 1)[0].split()
        if not tok:
            continue
        key, args = tok[0], tok[1:]
        try:
            if key in counts:
                need = {"v": 3, "vt": 1, "vn": 3}[key]
                if len(args) < need or not all(math.isfinite(float(a)) for a in args):
                    raise ValueError(f"{key} needs {need} numbers")
                counts[key] += 1
            elif key == "f":
                if len(args) < 3:
                    raise ValueError("a face needs 3 vertices")
                for ref in args:
                    for part, which in zip(ref.split("/"), ("v", "vt", "vn")):
                        if part == "":
                            continue
                        i = int(part)
                        n = counts[which]
                        if i == 0 or i > n or i < -n:
                            raise ValueError(f"face refers to {which} {i}, only {n} defined")
                faces += 1
                triangles += len(args) - 2
                if triangles > limits.max_model_triangles:
                    _check_triangles(triangles, filename, limits)
        except ValueError as exc:
            raise _corrupt(filename, f"OBJ line {lineno}: {exc}") from exc
    if counts["v"] == 0 or faces == 0:
        raise InvalidAssetError("model_empty", {"filename": filename})


_PLY_TYPE_BYTES = {"char": 1, "uchar": 1, "int8": 1, "uint8": 1, "short": 2, "ushort": 2, "int16": 2,
                   "uint16": 2, "int": 4, "uint": 4, "int32": 4, "uint32": 4, "float": 4, "float32": 4,
                   "double": 8, "float64": 8}


def _check_ply_header(data: bytes, filename: str, limits: UploadLimits) -> None:
    """Refuse a PLY whose header declares more elements than its bytes could hold (a memory bomb for numpy), or
    more faces than the triangle limit (each face is at least one triangle)."""
    end = data.find(b"end_header")
    if end < 0:
        raise _corrupt(filename, "PLY without end_header")
    declared = 0
    for line in data[:end].decode("latin-1").splitlines():
        tok = line.split()
        if len(tok) == 3 and tok[0] == "element":
            try:
                declared += int(tok[2])
            except ValueError:
                raise _corrupt(filename, f"PLY element count {tok[2]!r}") from None
            if tok[1] == "face":
                _check_triangles(int(tok[2]), filename, limits)
    if declared > len(data) - end:
        raise _corrupt(filename, f"PLY declares {declared} elements in {len(data) - end} bytes")


def _check_dae(data: bytes, filename: str) -> None:
    """COLLADA is XML: refuse DTDs and entities (external-entity reads, entity-expansion bombs) before parsing."""
    head = data[:65536].upper()
    if b"<!DOCTYPE" in head or b"<!ENTITY" in data.upper():
        raise _corrupt(filename, "COLLADA with a DTD or entities is not accepted")
    try:
        import collada  # noqa: F401  (pycollada, trimesh's DAE reader)
    except ImportError as exc:
        raise InvalidAssetError("unsupported_type", {"filename": filename, "detected": "COLLADA (DAE)",
                                                     "kind": "model3d", "accepted": _accepted_labels("model3d")}) from exc


# A model converted from a format without colours (STL, a plain PLY or OBJ) gets a light grey matte material: the
# designer could not have given it one, so it is not warned about (issue 24: every STL warned "no material").
CONVERTED_BASE_COLOR = (200, 200, 200, 255)


def _trimesh_to_glb(load: Callable[[], Any], filename: str) -> bytes:
    """Load with trimesh and export a clean GLB; refuse empty or unparsable models."""
    import trimesh

    try:
        loaded = load()
    except InvalidAssetError:
        raise
    except Exception as exc:  # trimesh raises anything from ValueError to IndexError on bad input
        raise _corrupt(filename, f"{type(exc).__name__}: {exc}") from exc
    scene = loaded if isinstance(loaded, trimesh.Scene) else trimesh.Scene(loaded)
    meshes = [g for g in scene.geometry.values() if isinstance(g, trimesh.Trimesh) and len(g.faces)]
    if not meshes:
        raise InvalidAssetError("model_empty", {"filename": filename})
    for g in meshes:
        if not np.isfinite(g.vertices).all():
            raise _corrupt(filename, "vertex coordinates are not finite numbers")
    for name in [n for n, g in scene.geometry.items() if not (isinstance(g, trimesh.Trimesh) and len(g.faces))]:
        scene.delete_geometry(name)  # points and lines: nothing to draw in AR
    scene.metadata.clear()
    for g in meshes:
        if g.visual.kind is None:  # STL, plain PLY/OBJ: no colour at all, which glTF would draw as white metal
            g.visual = trimesh.visual.TextureVisuals(material=trimesh.visual.material.PBRMaterial(
                name="baonhung-matte", baseColorFactor=CONVERTED_BASE_COLOR, metallicFactor=0.0,
                roughnessFactor=0.8))
    try:
        glb = scene.export(file_type="glb", include_normals=True)
    except Exception as exc:
        raise _corrupt(filename, f"export: {type(exc).__name__}: {exc}") from exc
    return clean_converted_glb(glb)


_TRIMESH_TYPES = {"stl": "stl", "ply": "ply", "obj": "obj", "dae": "dae"}
_ZIP_MODEL_SUFFIXES = {".obj": "obj", ".stl": "stl", ".ply": "ply", ".dae": "dae", ".glb": "glb", ".gltf": "gltf"}


def _stl_triangles(data: bytes) -> int:
    """Triangles of an STL: a binary one says its count in its header, an ASCII one has a "facet" per triangle."""
    if data[:5].lower() == b"solid" and b"facet" in data[:4096]:
        return data.count(b"facet normal")
    return int.from_bytes(data[80:84], "little") if len(data) >= 84 else 0


def _convert_mesh_file(fmt: str, data: bytes, filename: str, limits: UploadLimits, resolver: Any = None) -> bytes:
    import trimesh

    if fmt == "obj":
        _check_obj(data, filename, limits)
    if fmt == "ply":
        _check_ply_header(data, filename, limits)
    if fmt == "stl":
        _check_triangles(_stl_triangles(data), filename, limits)
    if fmt == "dae":
        _check_dae(data, filename)
    return _trimesh_to_glb(
        lambda: trimesh.load(io.BytesIO(data), file_type=_TRIMESH_TYPES[fmt], resolver=resolver,
                             force="scene", process=False),
        filename,
    )


def _check_texture_pixels(images: Iterable[tuple[str, bytes]], limits: UploadLimits, filename: str) -> None:
    """Refuse textures whose header declares more pixels than allowed (only headers are read).

    A 20k × 20k PNG is a few kilobytes inside a model and gigabytes once the bundle step or the phone decodes it.
    Unreadable images are left to the validator, which reports them.
    """
    for name, raw in images:
        if sniff_format(raw) not in ("png", "jpeg", "webp", "gif"):
            continue
        try:
            with Image.open(io.BytesIO(raw)) as img:
                width, height = img.size
        except Image.DecompressionBombError as exc:
            raise InvalidAssetError("image_too_large", {"filename": f"{filename}:{name}", "width": "?",
                                                        "height": "?", "limit_mp": limits.max_image_pixels / 1e6}
                                    ) from exc
        except _PIL_ERRORS:
            continue
        _check_pixels(width, height, limits, f"{filename}:{name}")


def _gltf_images(doc: Mapping[str, Any], binary: bytes) -> list[tuple[str, bytes]]:
    """(name, bytes) of the images held inside a glTF: GLB bufferViews and data URIs."""
    out = []
    views = doc.get("bufferViews", [])
    for i, img in enumerate(doc.get("images", [])):
        if not isinstance(img, dict):
            continue
        name = str(img.get("name") or f"image {i}")
        try:
            if "bufferView" in img:
                bv = views[img["bufferView"]]
                start = int(bv.get("byteOffset", 0))
                out.append((name, binary[start:start + int(bv["byteLength"])]))
            elif str(img.get("uri", "")).startswith("data:"):
                out.append((name, _data_uri_bytes(img["uri"])))
        except (IndexError, KeyError, TypeError, ValueError, binascii.Error):
            continue  # a broken reference: the validator reports it
    return out


def _inspect_model(fmt: str, data: bytes, filename: str, limits: UploadLimits) -> InspectedAsset:
    if fmt == "glb":
        try:
            doc, binary = read_glb(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise _corrupt(filename, exc) from exc
        external = _external_uris(doc)
        if external:  # e.g. textures left beside the GLB on the designer's disk
            raise InvalidAssetError("gltf_external_resources", {"filename": filename, "uri": external[0][:80]})
        _check_texture_pixels(_gltf_images(doc, binary), limits, filename)
        meta = _validated_meta(data, doc, filename, "glb", limits)
        return InspectedAsset("model/gltf-binary", "glb", data, meta, {})
    if fmt == "gltf":
        try:
            doc = json.loads(data.decode("utf-8-sig"))
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise _corrupt(filename, exc if not isinstance(exc, RecursionError) else "JSON nested too deeply") from exc
        if not isinstance(doc, dict):
            raise _corrupt(filename, "glTF JSON is not an object")
        external = _external_uris(doc)
        if external:
            raise InvalidAssetError("gltf_external_resources", {"filename": filename, "uri": external[0][:80]})
        _check_texture_pixels(_gltf_images(doc, b""), limits, filename)
        meta = _validated_meta(data, doc, filename, "gltf", limits)
        return InspectedAsset("model/gltf+json", "gltf", data, meta, {})
    if fmt == "zip":
        return _inspect_model_zip(data, filename, limits)
    glb = _convert_mesh_file(fmt, data, filename, limits)
    meta = _validated_meta(glb, read_glb(glb)[0], filename, fmt, limits)
    return InspectedAsset("model/gltf-binary", "glb", glb, meta, {})


def _inspect_model_zip(data: bytes, filename: str, limits: UploadLimits) -> InspectedAsset:
    with tempfile.TemporaryDirectory(prefix="baonhung-zip-") as tmp:
        root = Path(tmp) / "x"
        files = extract_zip(data, root, limits)
        _check_texture_pixels(((str(p.relative_to(root)), p.read_bytes()) for p in files
                               if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp", ".gif")), limits, filename)
        models = [p for p in files
                  if p.suffix.lower() in _ZIP_MODEL_SUFFIXES
                  and not any(part.startswith((".", "__MACOSX")) for part in p.relative_to(root).parts)]
        if not models:
            raise InvalidAssetError("zip_no_model", {"filename": filename})
        if len(models) > 1:
            raise InvalidAssetError("zip_multiple_models", {
                "filename": filename, "names": ", ".join(str(p.relative_to(root)) for p in models[:5])})
        path = models[0]
        inner_name = f"{filename}:{path.relative_to(root)}"
        raw = path.read_bytes()
        fmt = sniff_format(raw)
        expected = _ZIP_MODEL_SUFFIXES[path.suffix.lower()]
        if fmt != expected:
            raise InvalidAssetError("unsupported_type", {
                "filename": inner_name, "detected": FORMATS[fmt].label, "kind": "model3d",
                "accepted": _accepted_labels("model3d")})
        if fmt == "glb":
            asset = _inspect_model("glb", raw, inner_name, limits)
            asset.meta["source_format"] = "zip/glb"
            return asset
        if fmt == "gltf":
            try:
                doc = json.loads(raw.decode("utf-8-sig"))
                glb = pack_gltf_to_glb(doc, _safe_reader(path.parent))
            except KeyError as exc:
                raise InvalidAssetError("gltf_external_resources",
                                        {"filename": inner_name, "uri": str(exc.args[0])[:80]}) from exc
            except (ValueError, UnicodeDecodeError, TypeError, IndexError, binascii.Error, RecursionError) as exc:
                raise _corrupt(inner_name, exc) from exc
        else:
            glb = _convert_mesh_file(fmt, raw, inner_name, limits, resolver=_SandboxResolver(path.parent))
        meta = _validated_meta(glb, read_glb(glb)[0], inner_name, f"zip/{fmt}", limits)
        return InspectedAsset("model/gltf-binary", "glb", glb, meta, {})


# ---------------------------------------------------------------------------------------------------------------
# Dispatcher


def accept_attribute(kind: str) -> str:
    """The file picker's ``accept`` for an upload kind, from the same table the server checks uploads against
    (extensions and media types): the picker offers exactly what the server takes."""
    exts, mimes = [], []
    for f in KIND_FORMATS[kind]:
        info = FORMATS[f]
        for ext in ({"jpeg": ("jpg", "jpeg")}.get(f, (info.ext,))):
            if f".{ext}" not in exts:
                exts.append(f".{ext}")
        if info.mime not in mimes:
            mimes.append(info.mime)
    return ",".join(exts + mimes)


def _accepted_labels(kind: str) -> str:
    labels = []
    for f in KIND_FORMATS[kind]:
        label = {"png": "PNG" if kind != "animated_image" else "APNG", "webp": "WebP" if kind != "animated_image"
                 else "WebP (animated)", "zip": "ZIP (OBJ + MTL + PNG/JPEG)", "dae": "DAE"}.get(f, FORMATS[f].label)
        if label not in labels and not (kind == "audio" and f == "mp4"):
            labels.append(label)
    return ", ".join(labels)


def size_limit(kind: str, fmt: str, limits: UploadLimits) -> int:
    """Byte limit for a file of format ``fmt`` uploaded as ``kind``."""
    return getattr(limits, _KIND_SIZE_FIELD.get((kind, fmt), FORMATS[fmt].size_field))


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
    if kind == "page":
        asset = _inspect_page(fmt, data, filename, limits, page_index, dpi)
    elif kind == "model3d":
        asset = _inspect_model(fmt, data, filename, limits)
    elif kind == "audio":
        asset = _inspect_audio(fmt, data, filename, limits)
    elif kind == "animated_image":
        asset = _inspect_animated(fmt, data, filename, limits)
    elif fmt in ("mp4", "webm"):  # video, or a 360° video
        asset = _inspect_video(kind, fmt, data, filename, limits)
    else:
        asset = _inspect_image(kind, fmt, data, filename, limits)
    asset.meta.setdefault("warnings", [])  # every kind: [{"code", "values"}] to show the designer
    return asset


def _too_large(filename: str, size: int, limit: int) -> InvalidAssetError:
    return InvalidAssetError("too_large", {"filename": filename, "size_mb": f"{size / MB:.1f}",
                                           "limit_mb": f"{limit / MB:g}", "size": size, "limit": limit})
