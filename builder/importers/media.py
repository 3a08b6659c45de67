"""Video and audio (PyAV): streams, codecs, duration, a poster frame."""
from __future__ import annotations

import io
from typing import Any

from builder.errors import InvalidAssetError
from builder.importers.common import InspectedAsset, _check_pixels, _corrupt, _png_bytes
from builder.importers.image import _panorama_warnings
from builder.importers.limits import UploadLimits
from builder.importers.sniff import FORMATS, _accepted_labels


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


def inspect_video(kind: str, fmt: str, data: bytes, filename: str, limits: UploadLimits) -> InspectedAsset:
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


def inspect_audio(fmt: str, data: bytes, filename: str, limits: UploadLimits) -> InspectedAsset:
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

