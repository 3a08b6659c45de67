"""Typed errors of the overlay import layer, with their user-facing messages (vi default, en).

The web layer maps any :class:`BaoNhungError` to one HTTP error shape::

    return jsonify(err.to_dict(lang)), err.http_status   # {"error": code, "message": text}

No Flask here: messages are plain ``str.format`` templates filled from ``values``. A missing value renders as
``?`` instead of raising, so a message can never turn an expected 4xx into a 500.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

DEFAULT_LANG = "vi"
SUPPORTED_LANGS = ("vi", "en")

# code -> (HTTP status, Vietnamese template, English template)
_CATALOG: dict[str, tuple[int, str, str]] = {
    # 400: the request itself is wrong
    "unknown_kind": (
        400,
        "Loại lớp phủ “{kind}” không được hỗ trợ.",
        "Overlay kind “{kind}” is not supported.",
    ),
    "empty_file": (
        400,
        "Tệp “{filename}” trống.",
        "File “{filename}” is empty.",
    ),
    "pdf_page_out_of_range": (
        400,
        "Tệp PDF chỉ có {page_count} trang; không có trang số {page_number}.",
        "The PDF has only {page_count} page(s); there is no page {page_number}.",
    ),
    "invalid_page_size": (
        400,
        "Kích thước trang không hợp lệ: {detail}.",
        "Invalid page size: {detail}.",
    ),
    "page_too_small": (
        400,
        "Ảnh trang “{filename}” quá nhỏ ({width}×{height} điểm ảnh); cạnh ngắn cần ít nhất {min_px} điểm ảnh "
        "để bạn đọc quét được.",
        "Page image “{filename}” is too small ({width}×{height} px); its short side needs at least {min_px} px "
        "for readers' phones to recognize it.",
    ),
    # 413: too big
    "too_large": (
        413,
        "Tệp “{filename}” quá lớn ({size_mb} MB); giới hạn cho loại này là {limit_mb} MB.",
        "File “{filename}” is too large ({size_mb} MB); the limit for this kind is {limit_mb} MB.",
    ),
    "image_too_large": (
        413,
        "Ảnh “{filename}” có quá nhiều điểm ảnh ({width}×{height}); tối đa {limit_mp} megapixel.",
        "Image “{filename}” has too many pixels ({width}×{height}); the maximum is {limit_mp} megapixels.",
    ),
    "zip_too_many_files": (
        413,
        "Tệp zip chứa {count} tệp; tối đa {limit} tệp.",
        "The zip holds {count} files; the maximum is {limit}.",
    ),
    "zip_too_large": (
        413,
        "Tệp zip khi giải nén lớn {size_mb} MB; tối đa {limit_mb} MB.",
        "The zip expands to {size_mb} MB; the maximum is {limit_mb} MB.",
    ),
    "zip_bomb": (
        413,
        "Tệp zip bị từ chối vì nén bất thường (“{name}”, tỉ lệ {ratio}:1, tối đa {limit}:1).",
        "The zip was refused as abnormally compressed (“{name}”, ratio {ratio}:1, maximum {limit}:1).",
    ),
    # 415: not a type we accept for this kind
    "unsupported_type": (
        415,
        "Tệp “{filename}” là {detected}; loại “{kind}” chỉ nhận: {accepted}.",
        "File “{filename}” is {detected}; kind “{kind}” accepts only: {accepted}.",
    ),
    # 422: the right type, but unusable content
    "corrupt_file": (
        422,
        "Tệp “{filename}” bị hỏng hoặc không đọc được ({detail}).",
        "File “{filename}” is corrupt or unreadable ({detail}).",
    ),
    "not_animated": (
        422,
        "Ảnh “{filename}” chỉ có một khung hình; hãy tải ảnh động (GIF, WebP động hoặc APNG) "
        "hoặc chọn loại “ảnh”.",
        "Image “{filename}” has a single frame; upload an animated image (GIF, animated WebP or APNG) "
        "or choose the “image” kind.",
    ),
    "gltf_invalid": (
        422,
        "Mô hình “{filename}” không hợp lệ theo glTF Validator ({errors} lỗi): {details}",
        "Model “{filename}” fails the glTF Validator ({errors} errors): {details}",
    ),
    "gltf_external_resources": (
        422,
        "Tệp glTF “{filename}” tham chiếu tệp bên ngoài ({uri}); hãy tải lên GLB, glTF nhúng dữ liệu, "
        "hoặc một tệp zip.",
        "glTF file “{filename}” refers to an external file ({uri}); upload a GLB, a glTF with embedded "
        "data, or a zip.",
    ),
    "model_too_many_triangles": (
        422,
        "Mô hình “{filename}” có {triangles} tam giác, quá giới hạn {limit}. Hãy giảm số đa giác (ví dụ bằng "
        "Decimate trong Blender) rồi tải lên lại.",
        "Model “{filename}” has {triangles} triangles, over the limit of {limit}. Reduce its polygons (e.g. "
        "Blender's Decimate) and upload it again.",
    ),
    "model_empty": (
        422,
        "Mô hình “{filename}” không có hình khối nào để hiển thị.",
        "Model “{filename}” has no geometry to show.",
    ),
    "zip_unsafe_path": (
        422,
        "Tệp zip chứa đường dẫn không an toàn: “{name}”.",
        "The zip contains an unsafe path: “{name}”.",
    ),
    "zip_symlink": (
        422,
        "Tệp zip chứa liên kết tượng trưng (symlink): “{name}”.",
        "The zip contains a symbolic link: “{name}”.",
    ),
    "zip_encrypted": (
        422,
        "Tệp zip được mã hoá bằng mật khẩu (“{name}”); hãy tải tệp không mã hoá.",
        "The zip is password-protected (“{name}”); upload an unencrypted one.",
    ),
    "zip_no_model": (
        422,
        "Tệp zip không chứa mô hình 3D nào (cần một tệp OBJ, STL, PLY, DAE, GLB hoặc glTF).",
        "The zip holds no 3D model (it needs one OBJ, STL, PLY, DAE, GLB or glTF file).",
    ),
    "zip_multiple_models": (
        422,
        "Tệp zip chứa nhiều mô hình ({names}); hãy để đúng một mô hình mỗi tệp zip.",
        "The zip holds several models ({names}); put exactly one model in each zip.",
    ),
    "pdf_encrypted": (
        422,
        "Tệp PDF “{filename}” được bảo vệ bằng mật khẩu.",
        "PDF “{filename}” is password-protected.",
    ),
    # 503: our side cannot check the file right now (never silently accepted)
    "validator_unavailable": (
        503,
        "Không chạy được glTF Validator để kiểm tra mô hình ({detail}).",
        "The glTF Validator could not be run to check the model ({detail}).",
    ),
}


# Words that code puts into values (format and kind names), shown in the reader's language.
_VALUE_WORDS: dict[str, tuple[str, str]] = {
    "text": ("văn bản", "text"),
    "unknown": ("định dạng không rõ", "an unknown format"),
    "(audio only)": ("(chỉ có âm thanh)", "(audio only)"),
    "(video)": ("(có hình)", "(video)"),
    "(no audio)": ("(không có âm thanh)", "(no audio)"),
    "(animated)": ("(động)", "(animated)"),
    "page": ("trang báo", "page"),
    "model3d": ("mô hình 3D", "3D model"),
    "video": ("video", "video"),
    "audio": ("âm thanh", "audio"),
    "animated_image": ("ảnh động", "animated image"),
    "image": ("ảnh", "image"),
    "panorama360": ("ảnh/video 360°", "360° image/video"),
}
# Only these values are translated; file names and numbers are shown as given.
_TRANSLATED_KEYS = ("kind", "detected", "accepted")


def _localize(values: Mapping[str, Any], lang: str) -> dict[str, Any]:
    col = 1 if lang == "en" else 0
    out = dict(values)
    for key in _TRANSLATED_KEYS:
        val = out.get(key)
        if isinstance(val, str):
            if val in _VALUE_WORDS:
                out[key] = _VALUE_WORDS[val][col]
            else:
                for word, labels in _VALUE_WORDS.items():
                    if word.startswith("(") and word in val:
                        val = out[key] = val.replace(word, labels[col])
    return out


class _Blank(dict):
    def __missing__(self, key: str) -> str:
        return "?"


def _render(template: str, values: Mapping[str, Any]) -> str:
    return template.format_map(_Blank({k: v for k, v in values.items()}))


class BaoNhungError(Exception):
    """Base of the project's typed errors: a stable ``code``, the offending ``values`` and an HTTP status."""

    def __init__(self, code: str, values: Mapping[str, Any] | None = None):
        if code not in _CATALOG:
            raise ValueError(f"unknown error code {code!r}")
        self.code = code
        self.values: dict[str, Any] = dict(values or {})
        super().__init__(f"{code}: {self.message('en')}")

    @property
    def http_status(self) -> int:
        return _CATALOG[self.code][0]

    def message(self, lang: str = DEFAULT_LANG) -> str:
        """The message in ``lang`` ('vi' default, 'en'; a regional tag such as 'en-GB' is accepted)."""
        _, vi, en = _CATALOG[self.code]
        primary = (lang or DEFAULT_LANG).split("-")[0].split("_")[0].lower()
        lang = "en" if primary == "en" else "vi"
        return _render(en if lang == "en" else vi, _localize(self.values, lang))

    def to_dict(self, lang: str = DEFAULT_LANG) -> dict[str, str]:
        """``{"error": code, "message": text}`` — the API's one error shape."""
        return {"error": self.code, "message": self.message(lang)}


class InvalidAssetError(BaoNhungError):
    """An uploaded file was refused (HTTP 400, 413, 415 or 422)."""


class ValidatorUnavailableError(BaoNhungError):
    """The glTF validator (node + npm ``gltf-validator``) could not run: HTTP 503, never a silent pass."""

    def __init__(self, detail: str):
        super().__init__("validator_unavailable", {"detail": detail})


def error_codes() -> tuple[str, ...]:
    """Every error code, for documentation and tests."""
    return tuple(_CATALOG)
