"""Premium overlays (issue 27): teasers, splitting a page into its free and premium parts, and signed URLs.
No Flask here.

A premium overlay is published twice, apart:
  * in the page's **free** bundles as its *teaser*, a plain ``image`` / ``video`` / ``audio`` overlay with the premium
    overlay's id and box (``extras.overlay`` gains ``access: "premium"``, ``teaser`` and ``premium_kind``), so a
    reader without the right sees what the teaser shows and nothing else;
  * in the page's **premium part**, a bundle pair built from the premium overlays only (same node conventions),
    whose blobs are reachable only through :func:`sign_url` URLs (``viewer_api.premium``).

Teasers per kind (the first is the default, docs/PREMIUM.md): ``clip`` = the first N seconds of the video/audio
(ffmpeg, re-encoded, never more than half of the media); ``poster`` = the overlay's poster image (or the video's
first frame / the animation's first frame / the audio button); ``blur`` = a blurred still: of a 3D model rendered in
software (orthographic 3/4 view from above, Lambert-shaded base colours, painter's algorithm — no GPU), of an image
or a panorama a blurred downscale. Teaser images carry no lock: the viewer draws the badge.

Signed URL: ``/pub/p/<sha>.<ext>?exp=<unix s>&sig=<base64url HMAC-SHA256(key, "<sha>.<ext>\\n<exp>\\n<binding>")>``,
``binding`` = SHA-256 hex of the reader's cookie token; checked by :func:`check_signature` without any database.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageSequence

from builder.bundle import (FFMPEG_TIMEOUT_S, BundleBuildError, BundleOptions, OverlaySpec, PageSpec,
                            audio_placeholder, extract_video_frame, guess_mime, load_model)
from builder.procs import FFMPEG_MEMORY_MB, limited
# signed URLs live apart, so the public app checks them without this module's bundle and image code
from builder.premium_urls import PREMIUM_URL_PREFIX, SIGNATURE_SKEW_S, check_signature, sign_url, url_signature  # noqa: F401

# Teasers a kind may have; the first is its default (docs/PREMIUM.md "Data"). A link cannot be premium.
TEASERS_BY_KIND: dict[str, tuple[str, ...]] = {
    "video": ("clip", "poster"), "audio": ("clip", "poster"), "model3d": ("blur", "poster"),
    "panorama360": ("blur", "poster"), "animated_image": ("poster", "blur"), "image": ("blur", "poster"),
}
# Kinds whose "poster" teaser needs an uploaded poster (they have no first frame to fall back on); without one the
# kind's default is used, so a publish never fails over a teaser.
POSTER_REQUIRED = ("model3d", "image")
DEFAULT_TEASER_SECONDS = 5
TEASER_SECONDS_MIN, TEASER_SECONDS_MAX = 1, 30
CLIP_MAX_FRACTION = 0.5   # a clip never shows more than half of its media: a 4 s video with a 5 s teaser stays premium
CLIP_AUDIO_BITRATE = "128k"
FFPROBE_TIMEOUT_S = 30

BLUR_OUTPUT_PX = 512          # long side of a blurred still (the quad texture; poster_max_px caps again)
BLUR_SMALL_PX = 24            # images/panoramas are first shrunk to this: only colour fields survive
BLUR_RADIUS_FRACTION = 0.035  # Gaussian radius / long side: the silhouette and colours read, no detail does
RENDER_PX = 256               # software render of a model, long side, before the blur (detail is blurred away)
RENDER_MAX_TRIANGLES = 150_000  # a heavier model is drawn from a seeded sample of its triangles (blurred anyway)
RENDER_MARGIN = 0.08          # of the image on each side
VIEW_ELEVATION_DEG = 50.0     # a phone held over a page on a table looks down at 40-60°
VIEW_AZIMUTH_DEG = 30.0       # from the reader's side (+Z, the page's bottom edge), a little to the right
LIGHT_DIRECTION = (-0.4, 0.8, 0.45)  # toward the light: above, from the upper left as photos are lit
AMBIENT = 0.35                # the share of light every face gets, so faces turned away stay their colour
FALLBACK_RGB = (190, 190, 190)  # a mesh without any colour information



# ------------------------------------------------------------------------------------------------ rules
@dataclass(frozen=True)
class PremiumRule:
    """How one premium overlay is teased: ``teaser`` (an entry of TEASERS_BY_KIND[kind]) and ``seconds`` (clip)."""

    teaser: str
    seconds: int = DEFAULT_TEASER_SECONDS


def effective_teaser(kind: str, teaser: str | None, has_poster: bool) -> str | None:
    """The teaser a premium overlay of ``kind`` gets: the designer's choice when the kind allows it (``poster`` of a
    model or image only with an uploaded poster), else the kind's default. None for a link (never premium)."""
    allowed = TEASERS_BY_KIND.get(kind)
    if not allowed:
        return None
    if teaser in allowed and not (teaser == "poster" and kind in POSTER_REQUIRED and not has_poster):
        return teaser
    return allowed[0]


def teaser_seconds(value) -> int:
    """``teaser_seconds`` clamped to its range (NULL: the default)."""
    if value is None:
        return DEFAULT_TEASER_SECONDS
    return max(TEASER_SECONDS_MIN, min(TEASER_SECONDS_MAX, int(value)))


# ------------------------------------------------------------------------------------------------ media
def media_duration_s(path: Path, ffprobe: str = "ffprobe") -> float | None:
    """Duration of a video/audio file in seconds (ffprobe), or None when the container does not say."""
    try:
        proc = subprocess.run([ffprobe, "-v", "error", "-show_entries", "format=duration", "-of", "json", str(path)],
                              capture_output=True, timeout=FFPROBE_TIMEOUT_S, check=False,
                              preexec_fn=limited(FFMPEG_MEMORY_MB))
    except subprocess.TimeoutExpired as exc:
        raise BundleBuildError(f"reading the duration of {path.name} took more than {FFPROBE_TIMEOUT_S} s") from exc
    try:
        value = float(json.loads(proc.stdout or b"{}").get("format", {}).get("duration"))
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and value > 0 else None


def clip_media(src: Path, dst: Path, seconds: float, *, audio_only: bool, ffmpeg: str = "ffmpeg") -> Path:
    """The first ``seconds`` of ``src`` re-encoded (cut exactly, not on a keyframe): H.264/AAC MP4 (``dst`` .mp4),
    or AAC in MP4 (.m4a) when ``audio_only``. Faststart, so a phone plays it while it downloads."""
    cmd = [ffmpeg, "-v", "error", "-y", "-i", str(src), "-t", f"{seconds:.3f}"]
    if audio_only:
        cmd += ["-vn", "-map", "0:a:0", "-c:a", "aac", "-b:a", CLIP_AUDIO_BITRATE]
    else:
        cmd += ["-map", "0:v:0", "-map", "0:a:0?", "-c:v", "libx264", "-preset", "veryfast", "-crf", "23",
                "-pix_fmt", "yuv420p", "-vf", "scale=trunc(iw/2)*2:trunc(ih/2)*2", "-c:a", "aac",
                "-b:a", CLIP_AUDIO_BITRATE]
    cmd += ["-movflags", "+faststart", "-f", "mp4", str(dst)]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=FFMPEG_TIMEOUT_S, check=False,
                              preexec_fn=limited(FFMPEG_MEMORY_MB))
    except subprocess.TimeoutExpired as exc:
        raise BundleBuildError(f"cutting the teaser of {src.name} took more than {FFMPEG_TIMEOUT_S} s") from exc
    if proc.returncode != 0 or not dst.is_file() or dst.stat().st_size == 0:
        raise BundleBuildError(f"ffmpeg could not cut the teaser of {src.name}",
                               messages=[proc.stderr.decode("utf-8", "replace").strip()[:300]])
    return dst


def _open_image(path: Path) -> Image.Image:
    with Image.open(path) as im:
        im.load()
        return im.copy()


def _first_frame(path: Path) -> Image.Image:
    with Image.open(path) as im:
        return next(iter(ImageSequence.Iterator(im))).convert("RGBA").copy()


def _box_size(width_mm: float, height_mm: float, long_px: int) -> tuple[int, int]:
    aspect = max(width_mm, 1e-3) / max(height_mm, 1e-3)
    if aspect >= 1:
        return long_px, max(8, round(long_px / aspect))
    return max(8, round(long_px * aspect)), long_px


def blur_image(image: Image.Image, width_mm: float, height_mm: float) -> Image.Image:
    """A blurred downscale of a picture in the box's aspect: shrunk to BLUR_SMALL_PX (only colour fields survive),
    enlarged again and blurred. RGB."""
    small = image.convert("RGB").copy()
    small.thumbnail((BLUR_SMALL_PX, BLUR_SMALL_PX), Image.BILINEAR)
    size = _box_size(width_mm, height_mm, BLUR_OUTPUT_PX)
    out = small.resize(size, Image.BICUBIC)
    return out.filter(ImageFilter.GaussianBlur(BLUR_RADIUS_FRACTION * max(size)))


# ------------------------------------------------------------------------------------------------ model render
def _view_basis(elevation_deg: float = VIEW_ELEVATION_DEG, azimuth_deg: float = VIEW_AZIMUTH_DEG) -> np.ndarray:
    """(3, 3) rows = screen right, screen up, toward the camera, in the bundle frame (metres, +Y out of the paper,
    +Z toward the page's bottom edge where the reader sits). Azimuth 0, elevation 0 looks along -Z."""
    e, a = math.radians(elevation_deg), math.radians(azimuth_deg)
    toward = np.array([math.sin(a) * math.cos(e), math.sin(e), math.cos(a) * math.cos(e)])
    right = np.cross([0.0, 1.0, 0.0], toward)
    right /= np.linalg.norm(right)
    up = np.cross(toward, right)
    return np.stack([right, up, toward])


def _mesh_colours(mesh) -> np.ndarray:
    """(F, 3) base colour per face in 0..1: face/vertex colours, or the texture sampled at the UVs times the
    material's base colour factor, or the factor alone; FALLBACK_RGB when the mesh says nothing."""
    faces = len(mesh.faces)
    visual = mesh.visual
    try:
        if visual.kind == "texture":
            material = getattr(visual, "material", None)
            if getattr(visual, "uv", None) is not None and getattr(material, "baseColorTexture", None) is not None:
                colours = visual.to_color().vertex_colors[:, :3].astype(np.float64) / 255.0
                return colours[mesh.faces].mean(axis=1)
            factor = getattr(material, "baseColorFactor", None)
            if factor is None:
                factor = getattr(material, "main_color", None)
            if factor is not None:
                rgb = np.asarray(factor, dtype=np.float64)[:3]
                rgb = rgb / 255.0 if rgb.max() > 1.0 else rgb
                return np.tile(rgb, (faces, 1))
        elif visual.kind in ("face", "vertex"):
            return visual.face_colors[:, :3].astype(np.float64) / 255.0
    except (AttributeError, ValueError, IndexError):
        pass  # an odd material: the model is still drawn, in grey
    return np.tile(np.array(FALLBACK_RGB, dtype=np.float64) / 255.0, (faces, 1))


def _model_triangles(path: Path, declared_mime: str | None) -> tuple[np.ndarray, np.ndarray]:
    """All triangles of a model's default scene in its own frame: ((T, 3, 3) vertices in metres, (T, 3) colours)."""
    import trimesh

    from builder.glb import write_glb

    doc = load_model(path, declared_mime)
    raw = write_glb(doc)
    if set(doc.json.get("extensionsUsed", [])) & {"EXT_meshopt_compression", "KHR_draco_mesh_compression"}:
        from builder.compress import decode_glb

        raw = decode_glb(raw)
    scene = trimesh.load(io.BytesIO(raw), file_type="glb", force="scene")
    tris, colours = [], []
    for node in scene.graph.nodes_geometry:
        transform, geometry = scene.graph[node]
        mesh = scene.geometry.get(geometry)
        if mesh is None or not hasattr(mesh, "faces") or len(mesh.faces) == 0:
            continue
        vertices = trimesh.transform_points(np.asarray(mesh.vertices, dtype=np.float64), transform)
        tris.append(vertices[np.asarray(mesh.faces)])
        colours.append(_mesh_colours(mesh))
    if not tris:
        raise BundleBuildError(f"the model {path.name} has no triangles to draw a teaser of")
    return np.concatenate(tris), np.concatenate(colours)


def render_model_still(triangles: np.ndarray, colours: np.ndarray, size: tuple[int, int],
                       seed: int = 0) -> Image.Image:
    """Draw triangles (T, 3, 3) with face colours (T, 3) in 0..1 as seen from the 3/4 view above, fitted into
    ``size`` (RGBA, transparent background): orthographic projection on :func:`_view_basis`, far faces first
    (painter's algorithm), Lambert shading with AMBIENT, both sides lit alike (windings vary in the wild)."""
    if len(triangles) > RENDER_MAX_TRIANGLES:
        keep = np.sort(np.random.default_rng(seed).choice(len(triangles), RENDER_MAX_TRIANGLES, replace=False))
        triangles, colours = triangles[keep], colours[keep]
    basis = _view_basis()
    view = triangles @ basis.T  # (T, 3, 3): x right, y up, z toward the camera
    normals = np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0])
    lengths = np.linalg.norm(normals, axis=1)
    normals = normals / np.where(lengths > 0, lengths, 1.0)[:, None]
    light = np.asarray(LIGHT_DIRECTION, dtype=np.float64)
    light /= np.linalg.norm(light)
    shade = AMBIENT + (1.0 - AMBIENT) * np.abs(normals @ light)
    rgb = np.clip(colours * shade[:, None] * 255.0, 0, 255).astype(np.uint8)

    w, h = size
    lo, hi = view[:, :, :2].reshape(-1, 2).min(axis=0), view[:, :, :2].reshape(-1, 2).max(axis=0)
    extent = np.maximum(hi - lo, 1e-9)
    scale = min(w * (1 - 2 * RENDER_MARGIN) / extent[0], h * (1 - 2 * RENDER_MARGIN) / extent[1])
    centre = (lo + hi) / 2.0
    px = np.empty(view.shape[:2] + (2,))
    px[..., 0] = w / 2.0 + (view[..., 0] - centre[0]) * scale
    px[..., 1] = h / 2.0 - (view[..., 1] - centre[1]) * scale  # image rows grow downward
    order = np.argsort(view[:, :, 2].mean(axis=1))  # far (small z) first
    image = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    for i in order:
        points = [tuple(p) for p in px[i]]
        colour = tuple(int(c) for c in rgb[i]) + (255,)
        draw.polygon(points, fill=colour, outline=colour)
    return image


def blurred_model_still(path: Path, declared_mime: str | None, width_mm: float, height_mm: float) -> Image.Image:
    """The ``blur`` teaser of a 3D model: rendered in software, heavily blurred (premultiplied, so the transparent
    background leaves no dark fringe), in the overlay box's aspect. RGBA, no lock drawn."""
    triangles, colours = _model_triangles(path, declared_mime)
    still = render_model_still(triangles, colours, _box_size(width_mm, height_mm, RENDER_PX))
    blurred = still.convert("RGBa").filter(ImageFilter.GaussianBlur(BLUR_RADIUS_FRACTION * RENDER_PX)).convert("RGBA")
    return blurred.resize(_box_size(width_mm, height_mm, BLUR_OUTPUT_PX), Image.BICUBIC)


# ------------------------------------------------------------------------------------------------ teasers
@dataclass(frozen=True)
class TeaserContext:
    workdir: Path
    options: BundleOptions


def _model_path(spec: OverlaySpec, ctx: TeaserContext) -> tuple[Path, str | None]:
    if spec.stock:
        return Path(ctx.options.stock_dir) / f"{spec.stock}.glb", None
    if spec.asset_path is None or not Path(spec.asset_path).is_file():
        raise BundleBuildError(f"overlay {spec.id} ({spec.kind}) has no asset file", overlay_id=spec.id)
    return Path(spec.asset_path), spec.asset_mime


def _source_picture(spec: OverlaySpec, ctx: TeaserContext) -> Image.Image:
    """The picture a poster/blur teaser starts from when the overlay has no poster: a video's first frame, an
    animation's first frame, an image or panorama itself, the audio button."""
    if spec.kind == "audio":
        return audio_placeholder(spec.width_mm, spec.height_mm)
    if spec.asset_path is None or not Path(spec.asset_path).is_file():
        raise BundleBuildError(f"overlay {spec.id} ({spec.kind}) has no asset file", overlay_id=spec.id)
    path = Path(spec.asset_path)
    if guess_mime(path, spec.asset_mime).startswith("video/"):
        return extract_video_frame(path, ctx.options.ffmpeg)
    if spec.kind == "animated_image":
        return _first_frame(path)
    return _open_image(path)


def _marks(spec: OverlaySpec, teaser: str) -> dict:
    """What the teaser node's ``extras.overlay`` says beside the usual keys (the viewer's lock badge keys on them)."""
    return {"access": "premium", "teaser": teaser, "premium_kind": spec.kind}


def _as_image(spec: OverlaySpec, image: Image.Image, teaser: str, ctx: TeaserContext) -> OverlaySpec:
    path = ctx.workdir / f"teaser-{hashlib.sha1(spec.id.encode()).hexdigest()[:12]}.png"
    image.save(path, "PNG", optimize=True)
    return dataclasses.replace(spec, kind="image", asset_path=path, asset_mime="image/png", poster_path=None,
                               stock=None, url=None, options=_marks(spec, teaser),
                               scale=1.0 if spec.kind == "model3d" else spec.scale)


def _ffprobe_beside(ffmpeg: str) -> str:
    """ffprobe of the same installation as the configured ffmpeg."""
    path = Path(ffmpeg)
    return str(path.with_name("ffprobe")) if path.parent != Path(".") else "ffprobe"


def _clip_teaser(spec: OverlaySpec, rule: PremiumRule, ctx: TeaserContext) -> OverlaySpec:
    if spec.asset_path is None or not Path(spec.asset_path).is_file():
        raise BundleBuildError(f"overlay {spec.id} ({spec.kind}) has no asset file", overlay_id=spec.id)
    src = Path(spec.asset_path)
    seconds = float(teaser_seconds(rule.seconds))
    duration = media_duration_s(src, _ffprobe_beside(ctx.options.ffmpeg))
    if duration is not None:
        seconds = min(seconds, duration * CLIP_MAX_FRACTION)
    audio_only = spec.kind == "audio"
    stem = f"clip-{hashlib.sha1(spec.id.encode()).hexdigest()[:12]}"
    dst = clip_media(src, ctx.workdir / f"{stem}.{'m4a' if audio_only else 'mp4'}", seconds,
                     audio_only=audio_only, ffmpeg=ctx.options.ffmpeg)
    return dataclasses.replace(spec, asset_path=dst, asset_mime="audio/mp4" if audio_only else "video/mp4",
                               stock=None, url=None, options={**(spec.options or {}), **_marks(spec, "clip")})


def _poster_teaser(spec: OverlaySpec, rule: PremiumRule, ctx: TeaserContext) -> OverlaySpec:
    image = _open_image(Path(spec.poster_path)) if spec.poster_path else _source_picture(spec, ctx)
    return _as_image(spec, image, "poster", ctx)


def _blur_teaser(spec: OverlaySpec, rule: PremiumRule, ctx: TeaserContext) -> OverlaySpec:
    if spec.kind == "model3d":
        path, mime = _model_path(spec, ctx)
        try:
            image = blurred_model_still(path, mime, spec.width_mm, spec.height_mm)
        except BundleBuildError:
            raise
        except Exception as exc:  # a parser error from trimesh: report which overlay and why
            raise BundleBuildError(f"cannot draw the teaser of overlay {spec.id}", overlay_id=spec.id,
                                   messages=[f"{type(exc).__name__}: {exc}"]) from exc
    else:
        image = blur_image(_source_picture(spec, ctx), spec.width_mm, spec.height_mm)
    return _as_image(spec, image, "blur", ctx)


TEASER_MAKERS: dict[str, Callable[[OverlaySpec, PremiumRule, TeaserContext], OverlaySpec]] = {
    "clip": _clip_teaser,
    "poster": _poster_teaser,
    "blur": _blur_teaser,
}


def make_teaser(spec: OverlaySpec, rule: PremiumRule, workdir: Path,
                options: BundleOptions = BundleOptions()) -> OverlaySpec:
    """The teaser overlay of a premium overlay (same id and box): an ``image``, ``video`` or ``audio`` spec whose
    files are written into ``workdir``."""
    teaser = effective_teaser(spec.kind, rule.teaser, spec.poster_path is not None)
    if teaser is None:
        raise BundleBuildError(f"overlay {spec.id} ({spec.kind}) cannot be premium", overlay_id=spec.id,
                               code="access_not_for_links")
    workdir.mkdir(parents=True, exist_ok=True)
    return TEASER_MAKERS[teaser](spec, dataclasses.replace(rule, teaser=teaser), TeaserContext(workdir, options))


@dataclass(frozen=True)
class PageSplit:
    """A page cut in two: ``free`` (free overlays, each premium one replaced by its teaser, in page order) and
    ``premium`` (the premium overlays only, real; None when the page has none)."""

    free: PageSpec
    premium: PageSpec | None
    premium_ids: tuple[str, ...] = ()


def split_page(page: PageSpec, rules: dict[str, PremiumRule], workdir: Path,
               options: BundleOptions = BundleOptions()) -> PageSplit:
    """Split ``page`` by ``rules`` (overlay id → rule, premium overlays only)."""
    if not rules:
        return PageSplit(free=page, premium=None)
    free, premium = [], []
    for spec in page.overlays:
        rule = rules.get(spec.id)
        if rule is None:
            free.append(spec)
            continue
        try:
            free.append(make_teaser(spec, rule, workdir, options))
        except BundleBuildError as exc:
            if exc.page_id is None:
                raise BundleBuildError(exc.detail, page_id=page.id, overlay_id=exc.overlay_id or spec.id,
                                       messages=exc.messages, code=exc.code) from exc
            raise
        premium.append(dataclasses.replace(spec, options={**(spec.options or {}), "access": "premium"}))
    if not premium:
        return PageSplit(free=page, premium=None)
    return PageSplit(free=dataclasses.replace(page, overlays=tuple(free)),
                     premium=dataclasses.replace(page, overlays=tuple(premium)),
                     premium_ids=tuple(s.id for s in premium))


def rules_of(page_snapshot: dict) -> dict[str, PremiumRule]:
    """The premium rules of a snapshotted page (``builder.publish.snapshot_page``)."""
    rules = {}
    for o in page_snapshot["overlays"]:
        if o.get("access", "free") == "premium" and TEASERS_BY_KIND.get(o["kind"]):
            rules[str(o["id"])] = PremiumRule(o.get("teaser") or TEASERS_BY_KIND[o["kind"]][0],
                                              teaser_seconds(o.get("teaser_seconds")))
    return rules
