"""Still and animated images (Pillow): bomb guard before decoding, every pixel decoded, EXIF upright."""
from __future__ import annotations

import contextlib
import io
from typing import Any

from PIL import Image

from builder.errors import InvalidAssetError
from builder.importers.common import _PIL_ERRORS, InspectedAsset, _check_pixels, _corrupt
from builder.importers.limits import UploadLimits
from builder.importers.sniff import FORMATS


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



# Panoramas: equirectangular means width = 2 × height; allow 1 % for cropping/rounding.
EQUIRECT_TOLERANCE = 0.01


def _panorama_warnings(width: int, height: int) -> list[dict]:
    if height and abs(width / height - 2.0) <= 2.0 * EQUIRECT_TOLERANCE:
        return []
    return [{"code": "not_equirectangular", "values": {"width": width, "height": height,
                                                        "ratio": round(width / max(height, 1), 3)}}]


def inspect_image(kind: str, fmt: str, data: bytes, filename: str, limits: UploadLimits) -> InspectedAsset:
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


def inspect_animated(fmt: str, data: bytes, filename: str, limits: UploadLimits) -> InspectedAsset:
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

