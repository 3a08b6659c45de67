"""Upload limits (bytes unless named otherwise), from defaults or ``BAONHUNG_MAX_*`` variables."""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any


MB = 1_000_000  # limits are decimal megabytes, as file managers show them

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
    def from_env(cls, environ: Mapping[str, str]) -> "UploadLimits":
        """Limits from the ``BAONHUNG_MAX_*`` variables of ``environ`` (``Settings.extra``: builder/config.py is the one
        reader of the process environment), defaults for the rest.

        ``BAONHUNG_MAX_{PAGE,PDF,MODEL,VIDEO,AUDIO,IMAGE,ANIMATED}_MB``, ``BAONHUNG_MAX_ZIP_TOTAL_MB`` (megabytes,
        decimals allowed), ``BAONHUNG_MAX_IMAGE_MEGAPIXELS``, ``BAONHUNG_MAX_ANIMATION_FRAMES``,
        ``BAONHUNG_MAX_ZIP_FILES``, ``BAONHUNG_MAX_ZIP_RATIO``; ``BAONHUNG_MAX_MODEL3D_MB`` and
        ``BAONHUNG_MAX_ANIMATED_IMAGE_MB`` are accepted as the kinds' spellings of MODEL and ANIMATED. A malformed or non-positive value raises
        ``ValueError`` naming the variable (a configuration error should stop the service at start).
        """
        env = environ
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

