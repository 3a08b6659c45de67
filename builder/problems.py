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
    # issue 27: an overlay's access level and teaser (builder/premium.py TEASERS_BY_KIND)
    "access_not_for_links": {
        "vi": "Lớp phủ liên kết không thể dành cho bạn đọc đăng ký: liên kết luôn miễn phí (access phải là free).",
        "en": "A link overlay cannot be premium: links are always free (access must be free).",
    },
    "teaser_not_for_kind": {
        "vi": "Lớp phủ {kind_vi} không dùng được phần xem thử «{teaser}». Chọn một trong: {allowed}.",
        "en": "A {kind_en} overlay cannot show the teaser '{teaser}'. Choose one of: {allowed}.",
    },
    "teaser_needs_poster": {
        "vi": "Phần xem thử «poster» cần ảnh bìa, nhưng lớp phủ {kind_vi} này chưa có ảnh bìa. Hãy chọn «{default}» "
              "hoặc để mặc định.",
        "en": "The poster teaser needs a poster image, and this {kind_en} overlay has none. Choose '{default}' or "
              "leave the default.",
    },
    # issue 27: subscription codes and the signed entitlements API (builder/entitlements.py)
    "bad_code": {
        "vi": "Mã không đúng dạng: mã gồm 12 ký tự chữ và số, dạng XXXX-XXXX-XXXX (không có chữ O, I và số 0, 1).",
        "en": "That is not a code: a code has 12 letters and digits, as XXXX-XXXX-XXXX (no O, I, 0 or 1).",
    },
    "code_unknown": {
        "vi": "Không có mã này. Hãy kiểm tra lại từng ký tự trên tờ báo.",
        "en": "There is no such code. Check each character against the printed copy.",
    },
    "code_expired": {
        "vi": "Mã này đã hết hạn hoặc không còn hiệu lực.",
        "en": "This code has expired or is no longer valid.",
    },
    "code_used_up": {
        "vi": "Mã này đã được dùng hết số lần cho phép.",
        "en": "This code has been redeemed as many times as it allows.",
    },
    "code_already_redeemed": {
        "vi": "Bạn đã dùng mã này rồi.",
        "en": "You have already redeemed this code.",
    },
    "signature_missing": {
        "vi": "Thiếu chữ ký: cần các tiêu đề X-BaoNhung-Timestamp, X-BaoNhung-Nonce và X-BaoNhung-Signature.",
        "en": "Unsigned request: the X-BaoNhung-Timestamp, X-BaoNhung-Nonce and X-BaoNhung-Signature headers are "
              "required.",
    },
    "signature_invalid": {
        "vi": "Chữ ký không hợp lệ (HMAC-SHA256 của timestamp, nonce và nội dung với khoá bí mật của API).",
        "en": "Invalid signature (HMAC-SHA256 of the timestamp, nonce and body with the API's secret).",
    },
    "timestamp_stale": {
        "vi": "Yêu cầu quá cũ hoặc đồng hồ lệch quá 300 giây so với máy chủ.",
        "en": "The request is stale or its clock differs from the server's by more than 300 seconds.",
    },
    "nonce_replayed": {
        "vi": "Nonce này đã được dùng: mỗi yêu cầu cần một nonce mới.",
        "en": "This nonce was already used: every request needs a new one.",
    },
    "entitlements_api_off": {
        "vi": "API quyền đọc chưa bật: quản trị viên cần đặt BAONHUNG_ENTITLEMENTS_SECRET.",
        "en": "The entitlements API is off: the administrator must set BAONHUNG_ENTITLEMENTS_SECRET.",
    },
    # issue 27: reader accounts (builder/readers.py, viewer_api/readers_api.py)
    "email_taken": {
        "vi": "Email này đã có tài khoản bạn đọc. Hãy đăng nhập, hoặc dùng «Quên mật khẩu».",
        "en": "This email already has a reader account. Sign in, or use 'Forgot password'.",
    },
    "sign_in_required": {
        "vi": "Cần đăng nhập tài khoản bạn đọc.",
        "en": "Sign in to your reader account first.",
    },
    "reset_token_invalid": {
        "vi": "Liên kết đặt lại mật khẩu không đúng hoặc đã được dùng. Hãy yêu cầu một liên kết mới.",
        "en": "The password-reset link is wrong or was already used. Ask for a new one.",
    },
    "reset_token_expired": {
        "vi": "Liên kết đặt lại mật khẩu đã hết hạn. Hãy yêu cầu một liên kết mới.",
        "en": "The password-reset link has expired. Ask for a new one.",
    },
    "body_too_large": {
        "vi": "Nội dung yêu cầu quá lớn (tối đa {limit_kb} KB).",
        "en": "The request body is too large (at most {limit_kb} KB).",
    },
    # issue 27: the premium part and its signed URLs (viewer_api/premium.py)
    "not_entitled": {
        "vi": "Nội dung này dành cho bạn đọc đăng ký. Hãy nhập mã đăng ký in trên báo hoặc đăng ký gói đọc.",
        "en": "This content is for subscribers. Redeem the code printed in your copy or subscribe.",
    },
    "premium_not_found": {
        "vi": "Trang này không có (hoặc không còn) nội dung dành cho bạn đọc đăng ký.",
        "en": "This page has no (or no longer has) content for subscribers.",
    },
    "premium_link_invalid": {
        "vi": "Liên kết nội dung đăng ký không hợp lệ hoặc đã hết hạn. Hãy mở lại trang để lấy liên kết mới.",
        "en": "The subscriber content link is invalid or has expired. Open the page again for a new link.",
    },
    # issue 28: a public process without (or cut off from) the readers database still serves free content
    "readers_unavailable": {
        "vi": "Tài khoản bạn đọc tạm thời không dùng được. Nội dung miễn phí vẫn xem được; hãy thử lại sau ít phút.",
        "en": "Reader accounts are unavailable for the moment. Free content still works; try again in a few minutes.",
    },
    # issue 28: publishing as a background job (builder/jobs.py)
    "job_active": {
        "vi": "Số báo đang có việc #{job_id} chờ hoặc đang chạy (xuất bản / gỡ xuất bản). Hãy đợi việc đó xong rồi "
              "thử lại.",
        "en": "Job #{job_id} of this edition (publish / unpublish) is queued or running. Wait for it to finish, "
              "then try again.",
    },
    "job_interrupted": {
        "vi": "Việc xuất bản bị gián đoạn {attempts} lần (máy chủ xử lý dừng giữa chừng); phiên bản cũ vẫn đang phục "
              "vụ bạn đọc. Hãy xuất bản lại.",
        "en": "The publish was interrupted {attempts} times (the worker stopped mid-way); the previous version keeps "
              "serving readers. Publish again.",
    },
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
    "count": ("số mã", "the number of codes"), "days": ("số ngày", "the days"),
    "max_redemptions": ("số bạn đọc mỗi mã", "the readers per code"), "redeem_until": ("hạn nhập mã", "the last day"),
    "publication": ("ấn phẩm", "the publication"), "external_id": ("mã khách hàng", "the external id"),
    "reference": ("tham chiếu", "the reference"), "action": ("thao tác", "the action"),
    "access": ("quyền xem", "the access level"), "teaser": ("phần xem thử", "the teaser"),
    "teaser_seconds": ("số giây xem thử", "the teaser's length in seconds"),
    "premium_free_after_days": ("số ngày đến khi miễn phí", "days until free"),
}
# Overlay kinds as a message names them (issue 27: "Lớp phủ mô hình 3D không dùng được ...").
KIND_NAMES = {
    "model3d": ("mô hình 3D", "3D model"), "video": ("video", "video"), "audio": ("âm thanh", "audio"),
    "animated_image": ("ảnh động", "animated image"), "image": ("ảnh", "image"),
    "panorama360": ("ảnh toàn cảnh 360°", "360° panorama"), "link": ("liên kết", "link"),
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
    "reader": "bạn đọc",
    "code_batch": "lô mã",
    "member": "thành viên",
    "job": "việc xuất bản",
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
        if "kind" in values:
            kind_vi, kind_en = KIND_NAMES.get(str(values["kind"]), (values["kind"], values["kind"]))
            values.setdefault("kind_vi", kind_vi)
            values.setdefault("kind_en", kind_en)
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
