"""Page bundle packaging: one GLB per page (page plane + one node per overlay) with its media beside it.

Pipeline (glTF-Transform style — load → small steps → write, each step testable alone)::

    SceneDocument()                      empty glTF document: JSON tree + one binary buffer
      add_page_plane(page)               the page quad, textured with a small preview, hidden by default
      add_overlay(spec) per overlay      one node per overlay, via OVERLAY_BUILDERS[kind]
    write_glb → <workdir>/page-<id>.raw.glb           validated (0 errors) or BundleBuildError
    compress_full / compress_lite → .full.glb / .lite.glb   (builder.compress; decoded and validated again)
    size budgets → BundleWarning("over_budget", ...) naming the biggest contributors

Scene conventions (what the viewer relies on; see builder/frame.py for the page frame)
  * Scene root nodes: the page node first, then one node per overlay in the page's overlay order.
    Overlays are siblings of the page node, never its children, so hiding the page hides nothing else.
  * Page node: ``name "page"``, identity transform, ``extras = {"role": "page", "page_id", "width_mm", "height_mm",
    "visible": false}``.
  * **Visibility convention**: core glTF has no visibility flag, so a node whose ``extras.visible`` is
    ``false`` is hidden by default; the viewer sets ``object.visible = object.userData.visible !== false``
    after loading (three.js copies ``extras`` to ``userData``). The editor preview and debugging views
    may show it. Only the page node uses it today.
  * Overlay node: ``name "overlay/<id>"`` (three.js rewrites names, e.g. ``overlay12`` — key on extras),
    translation = box centre at ``elevation_mm``, rotation about +Y (clockwise on the page), uniform scale
    = ``OverlaySpec.scale``; ``extras.overlay = {"id", "kind", "src", "mime", "loop", "muted", "autoplay",
    "chroma_key", "width_mm", "height_mm", "rotation_deg", "elevation_mm", ...}`` plus kind-specific keys
    (``url`` for links, ``projection`` for 360° media, ``poster`` = true when the quad shows a poster).
  * Meshes never sit on the page or overlay node itself but on a child (``page-plane``, ``quad/<id>``):
    meshopt compression (KHR_mesh_quantization) rewrites the transform of a node holding a mesh, and the
    overlay node's transform must stay exactly the editor placement.
  * Quads (video, animated image, image, 360°, link, audio) lie on the paper, box-sized, face +Y, unlit material
    with the poster/image as base colour texture (audio: a play button, :func:`audio_placeholder`). 3D models
    hang under a child node ``fit/<id>`` that scales the model to fit the box footprint and stands it on the paper
    (``options["fit"] = "contain"`` default, or ``"none"`` for the model's own metres). The model's whole
    default scene is grafted there (skeleton roots included), so skinned meshes follow the placement even
    though glTF ignores a skinned mesh node's own parents (the validator's NODE_SKINNED_MESH_NON_ROOT
    warning is expected and harmless here).
  * The scene's ``extras.baonhung`` records the bundle format version, page id/number and size.
  * ``src`` is a file name relative to the GLB: ``<sha256>.<ext>`` of the media file. A publisher storing
    media content-addressed under the same directory as the GLB (``/pub/a/<sha256>.<ext>``) resolves it
    without rewriting; any other layout rewrites ``src`` through :attr:`PageBundle.media`.
"""
from __future__ import annotations

import copy
import hashlib
import io
import math
import mimetypes
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image, ImageDraw, ImageSequence

from builder import frame
from builder.gltf import (Document, GlbDocument, GraftError, load_gltf_json, model_bounds, read_glb,
                          scene_to_glb, write_glb)
from builder.storage import sha256_file
from builder.importers.limits import MB
from builder.procs import FFMPEG_MEMORY_MB, limited


REPO_ROOT = Path(__file__).resolve().parents[1]
STOCK_DIR = REPO_ROOT / "assets" / "3d"

PREVIEW_MAX_PX = 512        # page preview texture: enough to recognise the page in the editor, ~30-60 KB JPEG
POSTER_MAX_PX = 1024        # poster/image textures before compression (compression caps again: 2048 full, 1024 lite)
JPEG_QUALITY = 85           # posters/previews: visually clean, a fraction of PNG size
ANIMATED_FPS_MAX = 30       # transcoded animated images: GIF delays below 33 ms are rare and browsers clamp them
ANIMATED_MIN_FRAME_MS = 20  # browsers treat GIF delays under 20 ms as 100 ms; we clamp to 20 ms instead
VALIDATION_MESSAGES_SHOWN = 5
FFMPEG_TIMEOUT_S = 180

MIME_BY_EXT = {
    ".mp4": "video/mp4", ".m4v": "video/mp4", ".webm": "video/webm", ".mov": "video/quicktime",
    ".mp3": "audio/mpeg", ".m4a": "audio/mp4", ".aac": "audio/aac", ".ogg": "audio/ogg", ".oga": "audio/ogg",
    ".opus": "audio/ogg", ".wav": "audio/wav", ".flac": "audio/flac",
    ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp",
    ".gif": "image/gif", ".apng": "image/apng", ".avif": "image/avif",
    ".glb": "model/gltf-binary", ".gltf": "model/gltf+json",
}
EXT_BY_MIME = {
    "video/mp4": "mp4", "video/webm": "webm", "video/quicktime": "mov",
    "audio/mpeg": "mp3", "audio/mp4": "m4a", "audio/aac": "aac", "audio/ogg": "ogg", "audio/wav": "wav",
    "audio/x-wav": "wav", "audio/flac": "flac",
    "image/jpeg": "jpg", "image/png": "png", "image/webp": "webp", "image/gif": "gif", "image/apng": "png",
    "image/avif": "avif",
}
STREAMED_MIME_PREFIXES = ("video/", "audio/")  # streamed with HTTP Range: not counted in size budgets

GL_ARRAY_BUFFER, GL_ELEMENT_ARRAY_BUFFER = 34962, 34963
GL_LINEAR, GL_LINEAR_MIPMAP_LINEAR, GL_CLAMP_TO_EDGE = 9729, 9987, 33071


# --------------------------------------------------------------------------------------------- records
@dataclass(frozen=True)
class OverlaySpec:
    """One overlay as placed in the editor (page millimetres, see builder/frame.py)."""

    id: str
    kind: str
    x_mm: float
    y_mm: float
    width_mm: float
    height_mm: float
    rotation_deg: float = 0.0
    elevation_mm: float = 0.0
    scale: float = 1.0
    options: dict = field(default_factory=dict)
    asset_path: Path | None = None
    asset_mime: str | None = None
    poster_path: Path | None = None
    stock: str | None = None
    url: str | None = None


@dataclass(frozen=True)
class PageSpec:
    id: str
    number: int
    width_mm: float
    height_mm: float
    image_path: Path
    overlays: tuple[OverlaySpec, ...] = ()


@dataclass(frozen=True)
class BundleOptions:
    """Tunables of one build. Defaults are the production values."""

    preview_max_px: int = PREVIEW_MAX_PX
    poster_max_px: int = POSTER_MAX_PX
    compress: bool = True                 # False: glb_full/glb_lite are the raw GLB (tests, editor preview)
    full_texture_max_px: int = 2048
    lite_texture_max_px: int = 1024
    lite_triangle_budget: int = 50_000    # per primitive; above it the lite variant is simplified
    budget_full_bytes: int = 8 * MB       # GLB + non-streamed media; video/audio excluded
    budget_lite_bytes: int = 2 * MB
    validate: bool = True                 # validate model inputs and every output GLB (decoded) with Khronos
    validator: Callable[[bytes], Any] | None = None  # default: builder.gltf_validator.validate_gltf
    stock_dir: Path = STOCK_DIR
    ffmpeg: str = "ffmpeg"


@dataclass(frozen=True)
class MediaFile:
    """A file that sits beside the GLB; ``name`` is the ``src`` the GLB refers to (``<sha256>.<ext>``)."""

    name: str
    path: Path
    sha256: str
    mime: str
    bytes: int
    overlay_id: str

    @property
    def streamed(self) -> bool:
        return self.mime.startswith(STREAMED_MIME_PREFIXES)


@dataclass(frozen=True)
class BundleWarning:
    code: str            # "over_budget" | "animated_image_single_frame" | ...
    message: str         # English, for logs and the editor
    values: dict = field(default_factory=dict)


@dataclass(frozen=True)
class PageBundle:
    glb_full: Path
    glb_lite: Path
    media: tuple[MediaFile, ...]
    warnings: tuple[BundleWarning, ...] = ()
    glb_raw: Path | None = None                       # uncompressed GLB (editor preview, debugging)
    contributors: tuple[tuple[str, int], ...] = ()    # (label, raw bytes in the GLB) biggest first


class BundleBuildError(Exception):
    """A page bundle could not be built. Carries what failed and the validator's first messages (English: publishing
    hands them to the editor inside a ``publish_failed`` error, builder/publish.py)."""

    def __init__(self, message: str, *, page_id: str | None = None, overlay_id: str | None = None,
                 messages: tuple[str, ...] | list[str] = (), code: str = "bundle_build_failed"):
        self.code = code
        self.detail = message
        self.page_id = page_id
        self.overlay_id = overlay_id
        self.messages = tuple(messages)
        self.values = {"page_id": page_id, "overlay_id": overlay_id, "messages": list(self.messages),
                       "detail": message}
        detail = message + ("" if not self.messages else ": " + "; ".join(self.messages))
        super().__init__(detail)

    def message(self, lang: str = "vi") -> str:
        return str(self)

    def to_dict(self, lang: str = "vi") -> dict[str, str]:
        return {"error": self.code, "message": self.message(lang)}


# --------------------------------------------------------------------------------------------- document
class SceneDocument(Document):
    """The page's glTF document: :class:`builder.gltf.Document` plus images, textures, unlit materials and quads.

    Grafting whole models (:meth:`graft`) is the glTF layer's table-driven graft (builder/gltf/document.py).
    """

    def __init__(self):
        super().__init__(generator="baonhung builder.bundle")

    def add_image(self, data: bytes, mime: str, name: str | None = None) -> int:
        image = {"bufferView": self.add_buffer_view(data), "mimeType": mime}
        if name:
            image["name"] = name
        return self._append("images", image)

    def add_texture(self, image: int) -> int:
        if "samplers" not in self.json:
            self.json["samplers"] = [{"magFilter": GL_LINEAR, "minFilter": GL_LINEAR_MIPMAP_LINEAR,
                                      "wrapS": GL_CLAMP_TO_EDGE, "wrapT": GL_CLAMP_TO_EDGE}]
        return self._append("textures", {"sampler": 0, "source": image})

    def add_unlit_material(self, name: str, texture: int | None, blend: bool = False,
                           color: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)) -> int:
        self._use_extension("KHR_materials_unlit")
        pbr: dict = {"baseColorFactor": list(color), "metallicFactor": 0.0, "roughnessFactor": 1.0}
        if texture is not None:
            pbr["baseColorTexture"] = {"index": texture}
        material = {"name": name, "pbrMetallicRoughness": pbr, "extensions": {"KHR_materials_unlit": {}}}
        if blend:
            material["alphaMode"] = "BLEND"
        return self._append("materials", material)

    def add_quad_mesh(self, name: str, width_mm: float, height_mm: float, material: int) -> int:
        """A box-sized quad in the node's local XZ plane facing +Y, UVs with the image upright on the page."""
        positions = np.array(frame.quad_corners_m(width_mm, height_mm), dtype=np.float32)
        normals = np.tile(np.array([0.0, 1.0, 0.0], dtype=np.float32), (4, 1))
        uvs = np.array(frame.QUAD_UVS, dtype=np.float32)
        indices = np.array(frame.QUAD_INDICES, dtype=np.uint16)
        primitive = {
            "attributes": {
                "POSITION": self.add_accessor(positions, "VEC3", GL_ARRAY_BUFFER, with_bounds=True),
                "NORMAL": self.add_accessor(normals, "VEC3", GL_ARRAY_BUFFER),
                "TEXCOORD_0": self.add_accessor(uvs, "VEC2", GL_ARRAY_BUFFER),
            },
            "indices": self.add_accessor(indices, "SCALAR", GL_ELEMENT_ARRAY_BUFFER),
            "material": material,
        }
        return self._append("meshes", {"name": name, "primitives": [primitive]})

    def graft(self, source: GlbDocument, parent: int) -> list[int]:
        """Graft a whole model under ``parent`` (see :meth:`builder.gltf.Document.graft`); a model that cannot be
        grafted is a :class:`BundleBuildError`."""
        try:
            return super().graft(source, parent)
        except GraftError as exc:
            raise BundleBuildError(str(exc)) from exc


# --------------------------------------------------------------------------------------------- inputs
def guess_mime(path: Path, declared: str | None = None) -> str:
    if declared:
        return declared
    return MIME_BY_EXT.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"


MESH_TYPES_BY_MIME = {"model/obj": "obj", "text/plain": "obj", "model/stl": "stl", "application/sla": "stl",
                      "model/x-ply": "ply", "application/ply": "ply", "model/vnd.collada+xml": "dae"}


def model_format(path: Path, declared_mime: str | None = None) -> str:
    """'glb' | 'gltf' | 'obj' | 'stl' | 'ply' | 'dae' — by content first (store paths have no extension)."""
    with open(path, "rb") as fh:
        head = fh.read(512)
    if head[:4] == b"glTF":
        return "glb"
    if declared_mime in MESH_TYPES_BY_MIME:
        return MESH_TYPES_BY_MIME[declared_mime]
    if declared_mime == "model/gltf+json" or head.lstrip()[:1] == b"{":
        return "gltf"
    if head.startswith(b"ply"):
        return "ply"
    suffix = path.suffix.lower().lstrip(".")
    if suffix in ("obj", "stl", "ply", "dae"):
        return suffix
    if re.search(rb"^\s*(v|vn|vt|f|o|g|mtllib|usemtl)\s", head, re.M):
        return "obj"
    if b"<COLLADA" in head:
        return "dae"
    return "stl"  # ASCII ("solid ...") or binary STL; trimesh reports anything else as unreadable


def load_model(path: Path, declared_mime: str | None = None) -> GlbDocument:
    """A 3D model file → :class:`GlbDocument` with all data in buffer 0.

    GLB: read as is. glTF (JSON, embedded data or side files beside it): packed into one GLB by the glTF layer
    (:func:`builder.gltf.load_gltf_json`). OBJ/STL/PLY/DAE: converted by trimesh (its leftover metadata stripped).
    """
    fmt = model_format(path, declared_mime)
    if fmt == "glb":
        return read_glb(path.read_bytes())
    if fmt == "gltf":
        return read_glb(load_gltf_json(path))
    return read_glb(convert_mesh_to_glb(path, fmt))


def convert_mesh_to_glb(path: Path, file_type: str | None = None) -> bytes:
    """OBJ/STL/PLY/DAE → GLB bytes via trimesh, without trimesh's metadata in extras."""
    import trimesh

    scene = trimesh.load(str(path), file_type=file_type or path.suffix.lstrip(".").lower() or None, force="scene")
    return scene_to_glb(scene, generator="baonhung builder.bundle (trimesh)")


def _validator(options: BundleOptions) -> Callable[[bytes], Any]:
    if options.validator is not None:
        return options.validator
    from builder.gltf_validator import validate_gltf

    return validate_gltf


def _first_messages(report: Any, n: int = VALIDATION_MESSAGES_SHOWN) -> list[str]:
    if hasattr(report, "first_messages"):
        return list(report.first_messages(n))
    out = []
    for m in getattr(report, "messages", [])[:n]:
        out.append(f"{m.get('code')}: {m.get('message')}" if isinstance(m, dict) else str(m))
    return out


def check_gltf(data: bytes, options: BundleOptions, *, what: str, page_id: str | None = None,
               overlay_id: str | None = None) -> None:
    """Raise :class:`BundleBuildError` with the validator's first messages unless ``data`` has 0 errors."""
    if not options.validate:
        return
    report = _validator(options)(data)
    if report.errors:
        raise BundleBuildError(f"{what} fails the glTF validator ({report.errors} errors)", page_id=page_id,
                               overlay_id=overlay_id, messages=_first_messages(report))


# --------------------------------------------------------------------------------------------- images/media
def encode_texture(image: Image.Image, max_px: int) -> tuple[bytes, str, bool]:
    """Downscale to ``max_px`` on the long side → (bytes, mime, has_alpha); JPEG unless alpha is used."""
    image = image.copy()
    image.thumbnail((max_px, max_px), Image.LANCZOS)
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    if has_alpha:
        rgba = image.convert("RGBA")
        if rgba.getextrema()[3][0] < 255:
            buf = io.BytesIO()
            rgba.save(buf, "PNG", optimize=True)
            return buf.getvalue(), "image/png", True
    buf = io.BytesIO()
    image.convert("RGB").save(buf, "JPEG", quality=JPEG_QUALITY, optimize=True)
    return buf.getvalue(), "image/jpeg", False


def extract_video_frame(path: Path, ffmpeg: str = "ffmpeg") -> Image.Image:
    """First decodable frame of a video (poster when the designer gave none)."""
    try:
        proc = subprocess.run([ffmpeg, "-v", "error", "-i", str(path), "-frames:v", "1", "-f", "image2pipe",
                               "-vcodec", "png", "-"], capture_output=True, timeout=FFMPEG_TIMEOUT_S, check=False,
                              preexec_fn=limited(FFMPEG_MEMORY_MB))
    except subprocess.TimeoutExpired as exc:
        raise BundleBuildError(f"reading a frame of {path.name} took more than {FFMPEG_TIMEOUT_S} s") from exc
    if proc.returncode != 0 or not proc.stdout:
        raise BundleBuildError(f"cannot read a frame of {path.name}",
                               messages=[proc.stderr.decode("utf-8", "replace").strip()[:300]])
    image = Image.open(io.BytesIO(proc.stdout))
    image.load()
    return image


def _parse_color(value: Any, default=(255, 255, 255)) -> tuple[int, int, int]:
    if isinstance(value, str) and re.fullmatch(r"#?[0-9a-fA-F]{6}", value):
        v = value.lstrip("#")
        return int(v[0:2], 16), int(v[2:4], 16), int(v[4:6], 16)
    if isinstance(value, (list, tuple)) and len(value) >= 3:
        return tuple(int(c) for c in value[:3])  # type: ignore[return-value]
    return default


def _animation_durations(src: Path) -> list[int]:
    """Per-frame delays in ms (clamped like browsers do), read without keeping any frame in memory."""
    durations = []
    with Image.open(src) as im:
        for f in ImageSequence.Iterator(im):
            f.load()  # Pillow's WebP decoder fills info["duration"] only once the frame is loaded
            durations.append(max(int(f.info.get("duration") or 100), ANIMATED_MIN_FRAME_MS))
    return durations


def transcode_animated_image(src: Path, dst: Path, *, background=(255, 255, 255), ffmpeg: str = "ffmpeg"
                             ) -> tuple[Image.Image, int]:
    """GIF / animated WebP / APNG → looping-ready, muted H.264 MP4 (yuv420p, faststart, even size).

    Frames are decoded with Pillow (ffmpeg 5 cannot decode animated WebP), composited onto ``background``
    (the chroma-key colour when the overlay is keyed, so transparency stays keyable) and streamed to ffmpeg one
    at a time at a constant frame rate; each source frame is held until its cumulative start time, so rounding
    never drifts. Returns (first frame as RGB image, frame count of the source).
    """
    durations = _animation_durations(src)
    if not durations:
        raise BundleBuildError(f"no frames in {src.name}")
    fps = max(1, round(1000 / max(min(durations), 1000 // ANIMATED_FPS_MAX)))
    with Image.open(src) as im:
        w, h = im.size
    colour = "".join(f"{c:02x}" for c in background)
    cmd = [ffmpeg, "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", str(fps),
           "-i", "-", "-an", "-vf", f"pad={w + w % 2}:{h + h % 2}:0:0:color=0x{colour}",
           "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p",
           "-movflags", "+faststart", str(dst)]
    first: Image.Image | None = None
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errors,
                                preexec_fn=limited(FFMPEG_MEMORY_MB))
        try:
            written, elapsed_ms = 0, 0
            with Image.open(src) as im:
                for frame_image, duration in zip(ImageSequence.Iterator(im), durations):
                    canvas = Image.new("RGBA", (w, h), (*background, 255))
                    canvas.alpha_composite(frame_image.convert("RGBA"))
                    rgb = canvas.convert("RGB")
                    first = first or rgb.copy()
                    elapsed_ms += duration
                    target = max(written + 1, round(elapsed_ms * fps / 1000))
                    proc.stdin.write(rgb.tobytes() * (target - written))
                    written = target
            proc.stdin.close()
            code = proc.wait(timeout=FFMPEG_TIMEOUT_S)
        except (BrokenPipeError, subprocess.TimeoutExpired):
            proc.kill()
            code = proc.wait()
        if code != 0:
            errors.seek(0)
            raise BundleBuildError(f"ffmpeg could not transcode {src.name}",
                                   messages=[errors.read().decode("utf-8", "replace").strip()[:300]])
    return first, len(durations)


def link_placeholder(width_mm: float, height_mm: float, px: int = 256) -> Image.Image:
    """A plain poster for links without one: blue panel with an arrow, in the box's aspect ratio."""
    aspect = max(width_mm, 1e-3) / max(height_mm, 1e-3)
    w, h = (px, max(8, round(px / aspect))) if aspect >= 1 else (max(8, round(px * aspect)), px)
    image = Image.new("RGB", (w, h), (21, 101, 192))
    draw = ImageDraw.Draw(image)
    s = min(w, h)
    cx, cy = w / 2, h / 2
    draw.line([(cx - s * 0.2, cy + s * 0.2), (cx + s * 0.2, cy - s * 0.2)], fill="white", width=max(2, s // 12))
    draw.line([(cx - s * 0.02, cy - s * 0.2), (cx + s * 0.2, cy - s * 0.2), (cx + s * 0.2, cy + s * 0.02)],
              fill="white", width=max(2, s // 12))
    return image


AUDIO_CONTROL_RGB = (232, 87, 46)  # the viewer's accent colour (viewer.css --accent): a button, not a picture
AUDIO_WIDE_ASPECT = 1.6           # wider boxes than this put the bar beside the button, narrower ones below it


def audio_control_layout(w: float, h: float) -> dict:
    """Where the parts of a sound control sit in a ``w`` × ``h`` px image: the round button (centre, radius) and
    the progress bar (x0, x1, y, thickness). The same layout as the viewer's live control (media.js)."""
    if w / h >= AUDIO_WIDE_ASPECT:
        r = h * 0.34
        return {"cx": h * 0.5, "cy": h * 0.5, "r": r, "bar": (h * 0.98, w - h * 0.3, h * 0.62, max(2.0, h * 0.09)),
                "speaker": (h * 0.98, h * 0.32, h * 0.16)}
    s = min(w, h)
    r = s * 0.3
    return {"cx": w / 2, "cy": h * 0.44, "r": r, "bar": (w * 0.14, w * 0.86, h * 0.86, max(2.0, s * 0.06)),
            "speaker": None}


def audio_placeholder(width_mm: float, height_mm: float, px: int = 512) -> Image.Image:
    """The sound control at rest, in the box's aspect ratio: accent panel, white round play button with an empty
    progress ring, an empty progress bar (and a speaker sign when the box is wide)."""
    aspect = max(width_mm, 1e-3) / max(height_mm, 1e-3)
    w, h = (px, max(16, round(px / aspect))) if aspect >= 1 else (max(16, round(px * aspect)), px)
    image = Image.new("RGB", (w, h), AUDIO_CONTROL_RGB)
    draw = ImageDraw.Draw(image)
    lay = audio_control_layout(w, h)
    cx, cy, r = lay["cx"], lay["cy"], lay["r"]
    ring = max(2, round(r * 0.14))
    draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=(246, 190, 170), width=ring)  # the empty ring
    inner = r - ring * 1.6
    draw.ellipse([cx - inner, cy - inner, cx + inner, cy + inner], fill="white")
    t = inner * 0.5  # play triangle, its centroid on the button's centre
    draw.polygon([(cx - t * 0.6, cy - t), (cx - t * 0.6, cy + t), (cx + t * 1.0, cy)], fill=AUDIO_CONTROL_RGB)
    x0, x1, y, thick = lay["bar"]
    draw.rounded_rectangle([x0, y - thick / 2, x1, y + thick / 2], radius=thick / 2, fill=(246, 190, 170))
    if lay["speaker"]:
        sx, sy, ss = lay["speaker"]
        draw.rectangle([sx, sy - ss * 0.3, sx + ss * 0.4, sy + ss * 0.3], fill="white")
        draw.polygon([(sx + ss * 0.4, sy - ss * 0.3), (sx + ss, sy - ss), (sx + ss, sy + ss),
                      (sx + ss * 0.4, sy + ss * 0.3)], fill="white")
        for k in (1.5, 2.2):
            draw.arc([sx + ss - ss * k * 0.5, sy - ss * k * 0.5, sx + ss + ss * k * 0.5, sy + ss * k * 0.5],
                     -45, 45, fill="white", width=max(2, round(ss * 0.18)))
    return image


# --------------------------------------------------------------------------------------------- build context
@dataclass
class _BuildContext:
    page: PageSpec
    options: BundleOptions
    doc: SceneDocument
    media_dir: Path
    tmp_dir: Path
    media: dict[str, MediaFile] = field(default_factory=dict)
    warnings: list[BundleWarning] = field(default_factory=list)
    contributions: dict[str, int] = field(default_factory=dict)   # label -> raw bytes
    contribution_ids: dict[str, str] = field(default_factory=dict)  # label -> overlay id

    def add_media(self, path: Path, mime: str, overlay_id: str) -> MediaFile:
        """Copy a media file beside the GLB as ``<sha256>.<ext>``; the same bytes are stored once."""
        sha = sha256_file(path)
        ext = EXT_BY_MIME.get(mime) or path.suffix.lstrip(".").lower() or "bin"
        name = f"{sha}.{ext}"
        if name not in self.media:
            target = self.media_dir / name
            if not target.exists():
                shutil.copyfile(path, target)
            self.media[name] = MediaFile(name=name, path=target, sha256=sha, mime=mime,
                                         bytes=target.stat().st_size, overlay_id=overlay_id)
        return self.media[name]

    def attach_mesh(self, node_index: int, mesh: int, name: str) -> int:
        """Meshes hang on a child node: compression (KHR_mesh_quantization) rewrites the transform of the node
        that holds a mesh, and the overlay node's transform must stay exactly the editor placement."""
        return self.doc.add_node({"name": name, "mesh": mesh}, parent=node_index)

    def textured_quad(self, spec: OverlaySpec, image: Image.Image, *, max_px: int | None = None) -> int:
        data, mime, alpha = encode_texture(image, max_px or self.options.poster_max_px)
        texture = self.doc.add_texture(self.doc.add_image(data, mime, name=f"poster/{spec.id}"))
        material = self.doc.add_unlit_material(f"overlay/{spec.id}", texture, blend=alpha)
        return self.doc.add_quad_mesh(f"overlay/{spec.id}", spec.width_mm, spec.height_mm, material)


def _overlay_extras(spec: OverlaySpec, **extra: Any) -> dict:
    o = spec.options or {}
    base = {
        "id": spec.id, "kind": spec.kind, "src": None, "mime": spec.asset_mime,
        "loop": bool(o.get("loop", False)), "muted": bool(o.get("muted", False)),
        "autoplay": bool(o.get("autoplay", False)), "chroma_key": o.get("chroma_key"),
        "width_mm": float(spec.width_mm), "height_mm": float(spec.height_mm),
        "rotation_deg": float(spec.rotation_deg), "elevation_mm": float(spec.elevation_mm),
        "scale": float(spec.scale),
    }
    for key, value in o.items():  # designer options ride along (tap action, chroma tolerance, volume, ...)
        base.setdefault(key, value)
    base.update(extra)
    return base


def _poster_image(spec: OverlaySpec, ctx: _BuildContext) -> Image.Image | None:
    if spec.poster_path:
        with Image.open(spec.poster_path) as im:
            im.load()
            return im.copy()
    return None


def _require_asset(spec: OverlaySpec) -> Path:
    if spec.asset_path is None or not Path(spec.asset_path).is_file():
        raise BundleBuildError(f"overlay {spec.id} ({spec.kind}) has no asset file", overlay_id=spec.id)
    return Path(spec.asset_path)


# One builder per overlay kind: (spec, ctx, node dict) -> None; fills node["mesh"] / children and extras.
def _build_model3d(spec: OverlaySpec, ctx: _BuildContext, node_index: int) -> None:
    if spec.stock:
        path = Path(ctx.options.stock_dir) / f"{spec.stock}.glb"
        if not path.is_file():
            raise BundleBuildError(f"unknown stock model {spec.stock!r}", overlay_id=spec.id)
    else:
        path = _require_asset(spec)
    try:
        model = load_model(path, None if spec.stock else spec.asset_mime)
    except BundleBuildError:
        raise
    except Exception as exc:  # a parser error from GLB/pygltflib/trimesh: report which overlay and why
        raise BundleBuildError(f"cannot read model of overlay {spec.id}", overlay_id=spec.id,
                               messages=[f"{type(exc).__name__}: {exc}"]) from exc
    raw = write_glb(GlbDocument(copy.deepcopy(model.json), model.bin))
    check_gltf(raw, ctx.options, what=f"model of overlay {spec.id} ({path.name})", page_id=ctx.page.id,
               overlay_id=spec.id)
    used = set(model.json.get("extensionsUsed", []))
    if used & {"EXT_meshopt_compression", "KHR_draco_mesh_compression"}:
        from builder.compress import decode_glb

        model = read_glb(decode_glb(raw))
    fit_index = ctx.doc.add_node({"name": f"fit/{spec.id}"}, parent=node_index)
    roots = ctx.doc.graft(model, fit_index)
    fit_mode = (spec.options or {}).get("fit", "contain")
    bounds = model_bounds(ctx.doc.json, roots)
    if fit_mode == "contain" and bounds is not None:
        lo, hi = bounds
        size = hi - lo
        factors = [frame.mm_to_m(spec.width_mm) / size[0] if size[0] > 1e-9 else math.inf,
                   frame.mm_to_m(spec.height_mm) / size[2] if size[2] > 1e-9 else math.inf]
        factor = min(factors)
        if math.isfinite(factor):
            centre = (lo + hi) / 2.0
            fit = ctx.doc.json["nodes"][fit_index]
            fit["scale"] = [factor] * 3
            fit["translation"] = [-centre[0] * factor, -lo[1] * factor, -centre[2] * factor]
    animations = len(model.json.get("animations", []))
    ctx.doc.json["nodes"][node_index]["extras"]["overlay"].update(
        src=None, mime="model/gltf-binary", animations=animations, model=path.name,
        autoplay=bool((spec.options or {}).get("autoplay", animations > 0)),
        loop=bool((spec.options or {}).get("loop", animations > 0)))


def _build_video(spec: OverlaySpec, ctx: _BuildContext, node_index: int) -> None:
    path = _require_asset(spec)
    mime = guess_mime(path, spec.asset_mime)
    media = ctx.add_media(path, mime, spec.id)
    poster = _poster_image(spec, ctx) or extract_video_frame(path, ctx.options.ffmpeg)
    ctx.attach_mesh(node_index, ctx.textured_quad(spec, poster), f"quad/{spec.id}")
    ctx.doc.json["nodes"][node_index]["extras"]["overlay"].update(src=media.name, mime=mime, poster=True)


def _build_audio(spec: OverlaySpec, ctx: _BuildContext, node_index: int) -> None:
    """A sound is heard, not seen: its quad shows a play button where the designer placed it (the designer's poster
    image, or :func:`audio_placeholder`). The viewer draws the live control (play/pause, progress) over it."""
    path = _require_asset(spec)
    mime = guess_mime(path, spec.asset_mime)
    media = ctx.add_media(path, mime, spec.id)
    poster = _poster_image(spec, ctx) or audio_placeholder(spec.width_mm, spec.height_mm)
    ctx.attach_mesh(node_index, ctx.textured_quad(spec, poster), f"quad/{spec.id}")
    ctx.doc.json["nodes"][node_index]["extras"]["overlay"].update(src=media.name, mime=mime, poster=True)


def _build_animated_image(spec: OverlaySpec, ctx: _BuildContext, node_index: int) -> None:
    path = _require_asset(spec)
    key = (spec.options or {}).get("chroma_key")
    background = _parse_color(key) if key else _parse_color((spec.options or {}).get("background"))
    mp4 = ctx.tmp_dir / f"anim-{hashlib.sha1(spec.id.encode()).hexdigest()[:12]}.mp4"
    first, frame_count = transcode_animated_image(path, mp4, background=background, ffmpeg=ctx.options.ffmpeg)
    if frame_count < 2:
        ctx.warnings.append(BundleWarning("animated_image_single_frame",
                                          f"overlay {spec.id}: {path.name} has a single frame",
                                          {"overlay_id": spec.id, "file": path.name}))
    media = ctx.add_media(mp4, "video/mp4", spec.id)
    poster = _poster_image(spec, ctx) or first
    ctx.attach_mesh(node_index, ctx.textured_quad(spec, poster), f"quad/{spec.id}")
    ctx.doc.json["nodes"][node_index]["extras"]["overlay"].update(
        src=media.name, mime="video/mp4", loop=True, muted=True, autoplay=True, poster=True,
        source_mime=guess_mime(path, spec.asset_mime))


def _build_image(spec: OverlaySpec, ctx: _BuildContext, node_index: int) -> None:
    path = _require_asset(spec)
    with Image.open(path) as im:
        im.load()
        image = im.copy()
    quad = ctx.textured_quad(spec, image, max_px=ctx.options.full_texture_max_px)
    ctx.attach_mesh(node_index, quad, f"quad/{spec.id}")
    ctx.doc.json["nodes"][node_index]["extras"]["overlay"].update(src=None, mime=guess_mime(path, spec.asset_mime),
                                                                  poster=False)


def _build_panorama360(spec: OverlaySpec, ctx: _BuildContext, node_index: int) -> None:
    path = _require_asset(spec)
    mime = guess_mime(path, spec.asset_mime)
    media = ctx.add_media(path, mime, spec.id)
    poster = _poster_image(spec, ctx)
    if poster is None:
        if mime.startswith("video/"):
            poster = extract_video_frame(path, ctx.options.ffmpeg)
        else:
            with Image.open(path) as im:
                im.load()
                poster = im.copy()
    ctx.attach_mesh(node_index, ctx.textured_quad(spec, poster), f"quad/{spec.id}")
    ctx.doc.json["nodes"][node_index]["extras"]["overlay"].update(
        src=media.name, mime=mime, poster=True,
        projection=(spec.options or {}).get("projection", "equirectangular"))


def _build_link(spec: OverlaySpec, ctx: _BuildContext, node_index: int) -> None:
    if not spec.url:
        raise BundleBuildError(f"link overlay {spec.id} has no url", overlay_id=spec.id)
    poster = _poster_image(spec, ctx)
    if poster is None and spec.asset_path and Path(spec.asset_path).is_file():
        with Image.open(spec.asset_path) as im:
            im.load()
            poster = im.copy()
    if poster is None:
        poster = link_placeholder(spec.width_mm, spec.height_mm)
    ctx.attach_mesh(node_index, ctx.textured_quad(spec, poster), f"quad/{spec.id}")
    ctx.doc.json["nodes"][node_index]["extras"]["overlay"].update(src=None, mime=None, url=spec.url, poster=True)


OVERLAY_BUILDERS: dict[str, Callable[[OverlaySpec, _BuildContext, int], None]] = {
    "model3d": _build_model3d,
    "video": _build_video,
    "audio": _build_audio,
    "animated_image": _build_animated_image,
    "image": _build_image,
    "panorama360": _build_panorama360,
    "link": _build_link,
}


# --------------------------------------------------------------------------------------------- steps
def add_page_plane(ctx: _BuildContext) -> int:
    """The page quad (page size, centre at origin) with a small preview texture; hidden via extras.visible."""
    page = ctx.page
    with Image.open(page.image_path) as im:
        im.load()
        data, mime, alpha = encode_texture(im, ctx.options.preview_max_px)
    texture = ctx.doc.add_texture(ctx.doc.add_image(data, mime, name="page-preview"))
    material = ctx.doc.add_unlit_material("page", texture, blend=alpha)
    mesh = ctx.doc.add_quad_mesh("page", page.width_mm, page.height_mm, material)
    index = ctx.doc.add_node({"name": "page", "extras": {
        "role": "page", "page_id": str(page.id), "width_mm": float(page.width_mm),
        "height_mm": float(page.height_mm), "visible": False}})
    ctx.attach_mesh(index, mesh, "page-plane")
    return index


def add_overlay(ctx: _BuildContext, spec: OverlaySpec) -> int:
    """One overlay node: transform from the editor placement, kind-specific content from OVERLAY_BUILDERS."""
    builder = OVERLAY_BUILDERS.get(spec.kind)
    if builder is None:
        raise BundleBuildError(f"unknown overlay kind {spec.kind!r}", page_id=ctx.page.id, overlay_id=spec.id)
    if not (spec.width_mm > 0 and spec.height_mm > 0 and spec.scale > 0):
        raise BundleBuildError(f"overlay {spec.id} needs a positive size and scale "
                               f"({spec.width_mm}×{spec.height_mm} mm, scale {spec.scale})",
                               page_id=ctx.page.id, overlay_id=spec.id)
    placement = frame.Placement(spec.x_mm, spec.y_mm, spec.width_mm, spec.height_mm, spec.rotation_deg,
                                spec.elevation_mm)
    translation, rotation = frame.placement_to_node_transform(placement, ctx.page.width_mm, ctx.page.height_mm)
    node = {"name": f"overlay/{spec.id}", "translation": [v + 0.0 for v in translation],
            "rotation": [v + 0.0 for v in rotation],  # + 0.0 turns -0.0 into 0.0
            "extras": {"overlay": _overlay_extras(spec)}}
    if spec.scale != 1.0:
        node["scale"] = [float(spec.scale)] * 3
    before = len(ctx.doc.bin)
    index = ctx.doc.add_node(node)
    try:
        builder(spec, ctx, index)
    except BundleBuildError as exc:
        if exc.overlay_id is None or exc.page_id is None:
            raise BundleBuildError(exc.detail, page_id=ctx.page.id, overlay_id=exc.overlay_id or spec.id,
                                   messages=exc.messages, code=exc.code) from exc
        raise
    media_bytes = sum(m.bytes for m in ctx.media.values() if m.overlay_id == spec.id and not m.streamed)
    label = f"overlay {spec.id} ({spec.kind})"
    ctx.contributions[label] = len(ctx.doc.bin) - before + media_bytes
    ctx.contribution_ids[label] = spec.id
    return index


def budget_warnings(variant: str, total: int, budget: int, contributions: dict[str, int], raw_total: int,
                    page_id: str, top: int = 3, overlay_ids: dict[str, str] | None = None) -> list[BundleWarning]:
    """Warn when ``total`` (GLB + non-streamed media) exceeds ``budget``; name the biggest contributors.

    Contributions are raw (uncompressed) bytes by label; each is shown scaled by the variant's compression
    ratio. ``overlay_ids`` maps a label to its overlay id so the editor can point at the overlay.
    """
    overlay_ids = overlay_ids or {}
    if total <= budget:
        return []
    ratio = total / raw_total if raw_total else 1.0
    biggest = sorted(contributions.items(), key=lambda kv: kv[1], reverse=True)[:top]
    named = ", ".join(f"{label} ≈{value * ratio / MB:.2f} MB" for label, value in biggest)
    return [BundleWarning(
        "over_budget",
        f"page {page_id}: {variant} bundle is {total / MB:.2f} MB, over the {budget / MB:.2f} MB budget; "
        f"biggest: {named}",
        {"page_id": page_id, "variant": variant, "bytes": total, "budget": budget,
         "biggest": [{"label": label, "overlay_id": overlay_ids.get(label), "approx_bytes": int(value * ratio)}
                     for label, value in biggest]})]


def _safe_name(value: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(value))[:80] or "page"


def build_page_bundle(page: PageSpec, options: BundleOptions = BundleOptions(), workdir: Path | None = None
                      ) -> PageBundle:
    """Build the page's bundle in ``workdir``: ``page-<id>.raw.glb``, ``.full.glb``, ``.lite.glb``, ``media/``.

    Raises :class:`BundleBuildError` (with the validator's first messages when that is the cause) on any
    overlay that cannot be packaged or an output that fails validation; nothing is published in that case.
    """
    if workdir is None:
        workdir = Path(tempfile.mkdtemp(prefix="baonhung-bundle-"))
    workdir = Path(workdir)
    media_dir, tmp_dir = workdir / "media", workdir / "tmp"
    media_dir.mkdir(parents=True, exist_ok=True)
    tmp_dir.mkdir(parents=True, exist_ok=True)
    ctx = _BuildContext(page=page, options=options, doc=SceneDocument(), media_dir=media_dir, tmp_dir=tmp_dir)
    ids = [o.id for o in page.overlays]
    if len(set(ids)) != len(ids):
        raise BundleBuildError("duplicate overlay ids", page_id=page.id, messages=sorted({i for i in ids
                                                                                          if ids.count(i) > 1}))
    ctx.doc.json["scenes"][0]["name"] = f"page/{page.id}"
    ctx.doc.json["scenes"][0]["extras"] = {"baonhung": {
        "format": 1, "page_id": str(page.id), "page_number": int(page.number),
        "width_mm": float(page.width_mm), "height_mm": float(page.height_mm),
        "frame": "metres, +Y out of the paper, page centre at origin, +X right, page top toward -Z"}}

    before = len(ctx.doc.bin)
    add_page_plane(ctx)
    ctx.contributions["page preview"] = len(ctx.doc.bin) - before
    for spec in page.overlays:
        add_overlay(ctx, spec)

    stem = f"page-{_safe_name(page.id)}"
    raw_bytes = ctx.doc.to_glb()
    raw_path = workdir / f"{stem}.raw.glb"
    raw_path.write_bytes(raw_bytes)
    check_gltf(raw_bytes, options, what=f"bundle of page {page.id}", page_id=page.id)

    if options.compress:
        from builder import compress

        try:
            # the two variants are independent node processes: run them side by side (2 cores)
            with ThreadPoolExecutor(max_workers=2) as pool:
                full_job = pool.submit(compress.compress_full, raw_path, workdir / f"{stem}.full.glb",
                                       texture_max_px=options.full_texture_max_px)
                lite_job = pool.submit(compress.compress_lite, raw_path, workdir / f"{stem}.lite.glb",
                                       texture_max_px=options.lite_texture_max_px,
                                       triangle_budget=options.lite_triangle_budget)
                full_path, lite_path = full_job.result(), lite_job.result()
                jobs = {variant: pool.submit(compress.decode_glb, path.read_bytes())
                        for variant, path in (("full", full_path), ("lite", lite_path)) if options.validate}
                decoded = {variant: job.result() for variant, job in jobs.items()}
        except compress.CompressionError as exc:
            raise BundleBuildError(f"compressing the bundle of page {page.id} failed", page_id=page.id,
                                   messages=[exc.output] if exc.output else [], code="bundle_compression_failed"
                                   ) from exc
        for variant, data in decoded.items():
            check_gltf(data, options, what=f"{variant} bundle of page {page.id} (decoded)", page_id=page.id)
    else:
        full_path = lite_path = raw_path

    media = tuple(ctx.media.values())
    still_media = sum(m.bytes for m in media if not m.streamed)
    raw_total = len(raw_bytes) + still_media
    warnings = list(ctx.warnings)
    warnings += budget_warnings("full", full_path.stat().st_size + still_media, options.budget_full_bytes,
                                ctx.contributions, raw_total, page.id, overlay_ids=ctx.contribution_ids)
    warnings += budget_warnings("lite", lite_path.stat().st_size + still_media, options.budget_lite_bytes,
                                ctx.contributions, raw_total, page.id, overlay_ids=ctx.contribution_ids)
    shutil.rmtree(tmp_dir, ignore_errors=True)
    contributors = tuple(sorted(ctx.contributions.items(), key=lambda kv: kv[1], reverse=True))
    return PageBundle(glb_full=full_path, glb_lite=lite_path, media=media, warnings=tuple(warnings),
                      glb_raw=raw_path, contributors=contributors)


def overlay_nodes(doc: dict) -> dict[str, dict]:
    """Overlay id → node dict of a bundle's glTF JSON (keyed on extras, as the viewer does)."""
    out = {}
    for node in doc.get("nodes", []):
        overlay = (node.get("extras") or {}).get("overlay")
        if isinstance(overlay, dict) and "id" in overlay:
            out[str(overlay["id"])] = node
    return out
