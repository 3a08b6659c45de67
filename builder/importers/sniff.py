"""Content sniffing and the format registry: what each upload kind accepts, decided by magic bytes.

A registry of (format name, test on the first bytes), checked in order (:data:`_SNIFFERS`); :data:`FORMATS` and
:data:`KIND_FORMATS` are the one table the server checks uploads against and the file picker offers."""
from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from builder.importers.limits import UploadLimits


KINDS = ("page", "model3d", "video", "audio", "animated_image", "image", "panorama360")


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

