"""Typed errors of the authoring service, each with a code, an HTTP status and a message in vi and en.

The web layer maps every error that has ``code``, ``http_status`` and ``message(lang)`` (these and
``builder.errors.InvalidAssetError``) to one shape: ``{"error": code, "message": text}``.
"""
from __future__ import annotations

MESSAGES: dict[str, dict[str, str]] = {
    "not_found": {"vi": "Không tìm thấy {what}.", "en": "{what_en} not found."},
    "forbidden": {
        "vi": "Vai trò của bạn ({role}) không được phép làm việc này.",
        "en": "Your role ({role}) is not allowed to do this.",
    },
    "unauthorized": {"vi": "Cần đăng nhập hoặc mã truy cập API hợp lệ.", "en": "Log in or send a valid API token."},
    "invalid_credentials": {"vi": "Email hoặc mật khẩu không đúng.", "en": "Wrong email or password."},
    "login_throttled": {
        "vi": "Đăng nhập sai quá nhiều lần. Hãy thử lại sau {seconds} giây.",
        "en": "Too many failed logins. Try again in {seconds} seconds.",
    },
    "missing_field": {"vi": "Thiếu trường bắt buộc: {field_vi}.", "en": "Missing required field: {field_en}."},
    "invalid_field": {"vi": "Giá trị không hợp lệ cho {field_vi}: {reason_vi}", "en": "Invalid value for {field_en}: {reason}"},
    "conflict": {"vi": "{detail_vi}", "en": "{detail}"},
    "locked_for_review": {
        "vi": "Số báo đang chờ duyệt nên không sửa được. Biên tập viên cần trả lại trước.",
        "en": "The edition is in review and cannot be edited. An editor must send it back first.",
    },
    "no_changes": {
        "vi": "Số báo chưa thay đổi gì kể từ khi xuất bản phiên bản {version}: không có gì mới để duyệt hay xuất bản.",
        "en": "Nothing has changed since version {version} was published: there is nothing new to review or publish.",
    },
    "wrong_status": {
        "vi": "Không thể làm việc này khi số báo ở trạng thái «{status_vi}».",
        "en": "Not possible while the edition is '{status}'.",
    },
    "empty_edition": {
        "vi": "Số báo chưa có trang AR nào để xuất bản.",
        "en": "The edition has no AR page to publish.",
    },
    "server_error": {
        "vi": "Lỗi phía máy chủ, không phải do nội dung của bạn. Mã sự cố: {incident} — quản trị viên tra được "
              "trong nhật ký máy chủ.",
        "en": "A fault on the server, not in your content. Incident {incident}: the administrator can look it up "
              "in the server log.",
    },
    "publish_failed": {
        "vi": "Xuất bản thất bại, phiên bản cũ vẫn đang phục vụ bạn đọc: {detail}",
        "en": "Publishing failed; the previous version keeps serving readers: {detail}",
    },
    "csrf": {
        "vi": "Phiên biểu mẫu đã hết hạn hoặc thiếu mã CSRF. Hãy tải lại trang và thử lại.",
        "en": "The form session expired or the CSRF token is missing. Reload the page and try again.",
    },
    "request_too_large": {
        "vi": "Tệp tải lên quá lớn (tối đa {limit_mb} MB).",
        "en": "The upload is too large (at most {limit_mb} MB).",
    },
    "rate_limited": {
        "vi": "Quá nhiều yêu cầu. Hãy thử lại sau ít giây.",
        "en": "Too many requests. Try again in a few seconds.",
    },
    "bad_request": {"vi": "Yêu cầu không hợp lệ: {detail_vi}", "en": "Bad request: {detail}"},
}

STATUS_VI = {"draft": "bản nháp", "in_review": "chờ duyệt", "published": "đã xuất bản"}
# What a designer calls each field (issue 24: messages said "Giá trị không hợp lệ cho url"); the field's own name
# follows in brackets for API clients. A field without a label is shown by its name.
FIELD_LABELS = {
    "url": ("địa chỉ liên kết", "the link address"), "kind": ("loại nội dung", "the overlay kind"),
    "name": ("tên", "the name"), "slug": ("đường dẫn", "the address name"), "title": ("tiêu đề", "the title"),
    "date": ("ngày", "the date"), "number": ("số", "the number"), "email": ("email", "the email"),
    "role": ("vai trò", "the role"), "image": ("tệp trang báo", "the page file"), "file": ("tệp", "the file"),
    "x_mm": ("vị trí ngang", "the x position"), "y_mm": ("vị trí dọc", "the y position"),
    "width_mm": ("chiều rộng", "the width"), "height_mm": ("chiều cao", "the height"),
    "rotation_deg": ("góc xoay", "the rotation"), "elevation_mm": ("độ nổi", "the elevation"),
    "scale": ("tỉ lệ", "the scale"), "preset": ("khổ giấy", "the paper size"), "pdf_page": ("trang PDF", "the PDF page"),
    "size_mm": ("cỡ mã QR", "the QR size"), "ecc": ("mức sửa lỗi", "the error correction level"),
    "logo": ("logo", "the logo"), "stock": ("mô hình có sẵn", "the stock model"), "comment": ("nhận xét", "the comment"),
    "current_password": ("mật khẩu hiện tại", "the current password"),
    "new_password": ("mật khẩu mới", "the new password"), "password": ("mật khẩu", "the password"),
    "expires_days": ("số ngày hiệu lực", "the days of validity"), "limit": ("số dòng", "the number of lines"),
    "format": ("định dạng", "the format"), "paper": ("khổ giấy in", "the paper"),
    "autoplay": ("tự phát", "autoplay"), "loop": ("lặp lại", "loop"), "muted": ("tắt tiếng", "muted"),
}
WHAT_VI = {
    "publication": "ấn phẩm",
    "edition": "số báo",
    "page": "trang",
    "overlay": "lớp phủ",
    "user": "người dùng",
    "token": "mã truy cập",
    "code": "mã liên kết",
    "asset": "tệp",
}


class _SafeDict(dict):
    def __missing__(self, key):  # a template never fails on a missing value
        return "{" + key + "}"


class ServiceError(Exception):
    http_status = 400

    def __init__(self, code: str, http_status: int | None = None, **values):
        super().__init__(code)
        self.code = code
        if http_status is not None:
            self.http_status = http_status
        self.values = values

    def message(self, lang: str = "vi") -> str:
        lang = "en" if lang == "en" else "vi"
        template = MESSAGES.get(self.code, {}).get(lang, self.code)
        values = _SafeDict(self.values)
        what = values.get("what", "")
        values.setdefault("what_en", str(what).capitalize())
        if what in WHAT_VI:
            values["what"] = WHAT_VI[what]
        values.setdefault("reason_vi", values.get("reason", ""))
        if "field" in values:
            field = str(values["field"])
            vi, en = FIELD_LABELS.get(field, (field, field))
            values.setdefault("field_vi", f"{vi} ({field})" if vi != field else field)
            values.setdefault("field_en", f"{en} ({field})" if en != field else field)
        values.setdefault("detail_vi", values.get("detail", ""))
        if "status" in values:
            values.setdefault("status_vi", STATUS_VI.get(values["status"], values["status"]))
        return template.format_map(values)

    def __str__(self) -> str:
        return f"{self.code}: {self.message('en')}"


class NotFound(ServiceError):
    http_status = 404

    def __init__(self, what: str, ident=None):
        super().__init__("not_found", what=what, ident=ident)


class Forbidden(ServiceError):
    http_status = 403

    def __init__(self, role: str):
        super().__init__("forbidden", role=role)


class Unauthorized(ServiceError):
    http_status = 401

    def __init__(self):
        super().__init__("unauthorized")


class InvalidField(ServiceError):
    http_status = 400

    def __init__(self, field: str, reason: str, reason_vi: str | None = None):
        super().__init__("invalid_field", field=field, reason=reason, reason_vi=reason_vi or reason)


class MissingField(ServiceError):
    http_status = 400

    def __init__(self, field: str):
        super().__init__("missing_field", field=field)


class Conflict(ServiceError):
    http_status = 409

    def __init__(self, detail: str, detail_vi: str):
        super().__init__("conflict", detail=detail, detail_vi=detail_vi)


class LoginThrottled(ServiceError):
    http_status = 429

    def __init__(self, seconds: int):
        super().__init__("login_throttled", seconds=seconds)


class ServerFault(ServiceError):
    """A fault of the server (disk, permissions, memory, a tool missing), not of the request: 500 with a generic
    message and the incident id under which the log holds the details (never a server path or a traceback)."""

    http_status = 500

    def __init__(self, incident: str):
        super().__init__("server_error", incident=incident)


class PublishFailed(ServiceError):
    http_status = 422  # the edition's content could not be packaged; the message says why

    def __init__(self, detail: str):
        super().__init__("publish_failed", detail=detail)


def error_payload(err, lang: str) -> dict:
    """The one API error shape, for ServiceError and builder.errors.BaoNhungError alike."""
    return {"error": err.code, "message": err.message(lang)}
