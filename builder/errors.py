"""The one error system: typed errors with a registered code and the offending values; messages in the Babel catalog.

Every error a user can see is an :class:`AppError` (or a subclass) naming an entry of :data:`ERRORS`, the registry:
registry name -> :class:`ErrorDef` (the code sent on the wire and the **English** message template, which is the
Babel msgid; the Vietnamese is in ``builder/translations/vi/LC_MESSAGES/messages.po``). No HTTP status here and no
Flask: the web layers map a registry name to a status (``builder/http_errors.py``) and render the message in the
request's language; a CLI or a worker renders it with :meth:`AppError.message` in a given language.

Adding an error: one line in ERRORS (name, English template), its status in ``builder.http_errors.STATUS``, its
Vietnamese in messages.po (``tests/web/test_errors.py`` fails until all three exist).

Templates are ``str.format`` templates. Some values are rendered per language before filling:
``what`` (a thing's name, msgctxt "what"; ``{What}`` capitalised), ``field`` -> ``{field_label}`` (msgctxt "field"),
``status`` -> ``{status_name}`` (msgctxt "edition status"), ``kind`` -> ``{kind_name}`` (msgctxt "overlay kind"),
upload errors' ``kind``/``detected``/``accepted`` (msgctxt "upload"), and an entry's ``nested`` values (an
invalid field's ``reason``, a conflict's ``detail``), which are themselves English templates in the catalog. A
missing value renders as ``?``: a message can never turn an expected 4xx into a 500.
"""
from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_LANG = "vi"


def N_(template: str) -> str:
    """Marks an English message template for the catalog (rendered later, in the reader's language)."""
    return template


@dataclass(frozen=True)
class ErrorDef:
    code: str                      # the ``error`` field of the JSON body (a few entries share one)
    template: str                  # English message template = Babel msgid
    group: str = ""                # "upload": an overlay import error (InvalidAssetError), see error_codes()
    nested: tuple[str, ...] = ()   # values that are themselves message templates


def _e(code: str, template: str, **kw) -> ErrorDef:
    return ErrorDef(code, template, **kw)


def _upload(code: str, template: str) -> ErrorDef:
    return ErrorDef(code, template, group="upload")


# The registry. Name -> (wire code, English template). Statuses: builder/http_errors.py. Vietnamese: messages.po.
ERRORS: dict[str, ErrorDef] = {
    # ----- authoring service (services, accounts, members, publishing)
    "not_found": _e("not_found", "{What} not found."),
    "forbidden": _e("forbidden", "Your role ({role}) is not allowed to do this."),
    "unauthorized": _e("unauthorized", "Log in or send a valid API token."),
    "invalid_credentials": _e("invalid_credentials", "Wrong email or password."),
    "login_throttled": _e("login_throttled", "Too many failed logins. Try again in {seconds} seconds."),
    "missing_field": _e("missing_field", "Missing required field: {field_label}."),
    "invalid_field": _e("invalid_field", "Invalid value for {field_label}: {reason}", nested=("reason",)),
    "conflict": _e("conflict", "{detail}", nested=("detail",)),
    "locked_for_review": _e("locked_for_review",
                            "The edition is in review and cannot be edited. An editor must send it back first."),
    "no_changes": _e("no_changes", "Nothing has changed since version {version} was published: there is nothing new "
                                   "to review or publish."),
    "wrong_status": _e("wrong_status", "Not possible while the edition is '{status_name}'."),
    "empty_edition": _e("empty_edition", "The edition has no AR page to publish."),
    "server_error": _e("server_error", "A fault on the server, not in your content. Incident {incident}: the "
                                       "administrator can look it up in the server log."),
    "publish_failed": _e("publish_failed", "Publishing failed; the previous version keeps serving readers: {detail}"),
    "bundle_check_failed": _e("bundle_check_failed", "This page cannot be packaged for readers yet: {detail}"),
    "csrf": _e("csrf", "The form session expired or the CSRF token is missing. Reload the page and try again."),
    "request_too_large": _e("request_too_large", "The upload is too large (at most {limit_mb} MB)."),
    "rate_limited": _e("rate_limited", "Too many requests. Try again in a few seconds."),
    "bad_request": _e("bad_request", "Bad request: {detail}", nested=("detail",)),
    # issue 27: an overlay's access level and teaser (builder/premium.py TEASERS_BY_KIND)
    "access_not_for_links": _e("access_not_for_links", "A link overlay cannot be premium: links are always free "
                                                       "(access must be free)."),
    "teaser_not_for_kind": _e("teaser_not_for_kind",
                              "A {kind_name} overlay cannot show the teaser '{teaser}'. Choose one of: {allowed}."),
    "teaser_needs_poster": _e("teaser_needs_poster", "The poster teaser needs a poster image, and this {kind_name} "
                                                     "overlay has none. Choose '{default}' or leave the default."),
    # issue 27: subscription codes and the signed entitlements API (builder/entitlements.py)
    "bad_code": _e("bad_code", "That is not a code: a code has 12 letters and digits, as XXXX-XXXX-XXXX (no O, I, 0 "
                               "or 1)."),
    "code_unknown": _e("code_unknown", "There is no such code. Check each character against the printed copy."),
    "code_expired": _e("code_expired", "This code has expired or is no longer valid."),
    "code_used_up": _e("code_used_up", "This code has been redeemed as many times as it allows."),
    "code_already_redeemed": _e("code_already_redeemed", "You have already redeemed this code."),
    "signature_missing": _e("signature_missing", "Unsigned request: the X-BaoNhung-Timestamp, X-BaoNhung-Nonce and "
                                                 "X-BaoNhung-Signature headers are required."),
    "signature_invalid": _e("signature_invalid", "Invalid signature (HMAC-SHA256 of the timestamp, nonce and body "
                                                 "with the API's secret)."),
    "timestamp_stale": _e("timestamp_stale", "The request is stale or its clock differs from the server's by more "
                                             "than 300 seconds."),
    "nonce_replayed": _e("nonce_replayed", "This nonce was already used: every request needs a new one."),
    "entitlements_api_off": _e("entitlements_api_off", "The entitlements API is off: the administrator must set "
                                                       "BAONHUNG_ENTITLEMENTS_SECRET."),
    # issue 27: reader accounts (builder/readers.py, viewer_api/readers_api.py)
    "email_taken": _e("email_taken", "This email already has a reader account. Sign in, or use 'Forgot password'."),
    "sign_in_required": _e("sign_in_required", "Sign in to your reader account first."),
    "reset_token_invalid": _e("reset_token_invalid", "The password-reset link is wrong or was already used. Ask for "
                                                     "a new one."),
    "reset_token_expired": _e("reset_token_expired", "The password-reset link has expired. Ask for a new one."),
    "body_too_large": _e("body_too_large", "The request body is too large (at most {limit_kb} KB)."),
    # issue 27: the premium part and its signed URLs (viewer_api/premium.py)
    "not_entitled": _e("not_entitled", "This content is for subscribers. Redeem the code printed in your copy or "
                                       "subscribe."),
    "premium_not_found": _e("premium_not_found", "This page has no (or no longer has) content for subscribers."),
    "premium_link_invalid": _e("premium_link_invalid", "The subscriber content link is invalid or has expired. Open "
                                                       "the page again for a new link."),
    # issue 28: a public process without (or cut off from) the readers database still serves free content
    "readers_unavailable": _e("readers_unavailable", "Reader accounts are unavailable for the moment. Free content "
                                                     "still works; try again in a few minutes."),
    # issue 28: publishing as a background job (builder/jobs.py)
    "job_active": _e("job_active", "Job #{job_id} of this edition (publish / unpublish) is queued or running. Wait "
                                   "for it to finish, then try again."),
    "job_interrupted": _e("job_interrupted", "The publish was interrupted {attempts} times (the worker stopped "
                                             "mid-way); the previous version keeps serving readers. Publish again."),
    # ----- gunicorn's own refusals, before any header is read (builder/serve_worker.py: the status is gunicorn's)
    "http_malformed": _e("bad_request", "Malformed HTTP request."),
    "http_refused": _e("forbidden", "Request refused."),
    "uri_too_long": _e("uri_too_long", "The request address is too long (at most 8190 bytes)."),
    "headers_too_large": _e("headers_too_large", "The request headers are too large."),
    "not_implemented": _e("not_implemented", "The server does not support this transfer coding."),
    "http_server_fault": _e("server_error", "A fault on the server."),
    # ----- public side: recognition (viewer_api/public.py)
    "photo_too_large": _e("too_large", "The image is too large (at most {limit_mb} MB)."),
    "bad_tilted": _e("bad_tilted", "The tilted parameter must be 0 or 1."),
    "too_many_pixels": _e("too_many_pixels", "The image has too many pixels (at most 24 million decoded)."),
    "not_an_image": _e("not_an_image", "The body is not a JPEG or PNG image."),
    # ----- public side: readership events (viewer_api/ingest.py, events_api.py)
    "events_too_large": _e("too_large", "The event batch is too large (at most {limit_kb} KB)."),
    "invalid_json": _e("invalid_json", "The body is not valid JSON (UTF-8)."),
    "too_many_events": _e("too_many_events", "At most {limit} events per batch."),
    "invalid_events": _e("invalid_events", "The event batch does not match the schema."),
    "invalid_events_at": _e("invalid_events", "The event batch does not match the schema at '{where}': {reason}"),
    "unknown_ids": _e("unknown_ids", "No event names a published edition, page or overlay; nothing was stored."),
    "busy": _e("busy", "The server is busy writing events. Send them again in a few seconds."),
    # ----- overlay import (builder/importers/, builder/safezip.py): InvalidAssetError, see error_codes()
    "unknown_kind": _upload("unknown_kind", "Overlay kind “{kind}” is not supported."),
    "empty_file": _upload("empty_file", "File “{filename}” is empty."),
    "pdf_page_out_of_range": _upload("pdf_page_out_of_range",
                                     "The PDF has only {page_count} page(s); there is no page {page_number}."),
    "page_too_small": _upload("page_too_small", "Page image “{filename}” is too small ({width}×{height} px); its "
                                                "short side needs at least {min_px} px for readers' phones to "
                                                "recognize it."),
    "too_large": _upload("too_large", "File “{filename}” is too large ({size_mb} MB); the limit for this kind is "
                                      "{limit_mb} MB."),
    "image_too_large": _upload("image_too_large", "Image “{filename}” has too many pixels ({width}×{height}); the "
                                                  "maximum is {limit_mp} megapixels."),
    "zip_too_many_files": _upload("zip_too_many_files", "The zip holds {count} files; the maximum is {limit}."),
    "zip_too_large": _upload("zip_too_large", "The zip expands to {size_mb} MB; the maximum is {limit_mb} MB."),
    "zip_bomb": _upload("zip_bomb", "The zip was refused as abnormally compressed (“{name}”, ratio {ratio}:1, "
                                    "maximum {limit}:1)."),
    "unsupported_type": _upload("unsupported_type", "File “{filename}” is {detected}; kind “{kind}” accepts only: "
                                                    "{accepted}."),
    "corrupt_file": _upload("corrupt_file", "File “{filename}” is corrupt or unreadable ({detail})."),
    "not_animated": _upload("not_animated", "Image “{filename}” has a single frame; upload an animated image (GIF, "
                                            "animated WebP or APNG) or choose the “image” kind."),
    "gltf_invalid": _upload("gltf_invalid", "Model “{filename}” fails the glTF Validator ({errors} errors): {details}"),
    "gltf_external_resources": _upload("gltf_external_resources", "glTF file “{filename}” refers to an external file "
                                                                  "({uri}); upload a GLB, a glTF with embedded data, "
                                                                  "or a zip."),
    "model_too_many_triangles": _upload("model_too_many_triangles", "Model “{filename}” has {triangles} triangles, "
                                                                    "over the limit of {limit}. Reduce its polygons "
                                                                    "(e.g. Blender's Decimate) and upload it again."),
    "model_empty": _upload("model_empty", "Model “{filename}” has no geometry to show."),
    "zip_unsafe_path": _upload("zip_unsafe_path", "The zip contains an unsafe path: “{name}”."),
    "zip_symlink": _upload("zip_symlink", "The zip contains a symbolic link: “{name}”."),
    "zip_encrypted": _upload("zip_encrypted", "The zip is password-protected (“{name}”); upload an unencrypted one."),
    "zip_no_model": _upload("zip_no_model", "The zip holds no 3D model (it needs one OBJ, STL, PLY, DAE, GLB or glTF "
                                            "file)."),
    "zip_multiple_models": _upload("zip_multiple_models", "The zip holds several models ({names}); put exactly one "
                                                          "model in each zip."),
    "pdf_encrypted": _upload("pdf_encrypted", "PDF “{filename}” is password-protected."),
    # our side cannot check the file right now (never silently accepted)
    "validator_unavailable": _upload("validator_unavailable",
                                     "The glTF Validator could not be run to check the model ({detail})."),
}

# What a designer calls each field (issue 24: messages said "Giá trị không hợp lệ cho url"); the field's own name
# follows in brackets for API clients. English labels (msgctxt "field"); a field without a label is shown by its name.
FIELD_LABELS = {
    "url": "the link address", "kind": "the overlay kind", "name": "the name", "slug": "the address name",
    "title": "the title", "date": "the date", "number": "the number", "email": "the email", "role": "the role",
    "image": "the page file", "file": "the file", "x_mm": "the x position", "y_mm": "the y position",
    "width_mm": "the width", "height_mm": "the height", "rotation_deg": "the rotation",
    "elevation_mm": "the elevation", "scale": "the scale", "preset": "the paper size", "pdf_page": "the PDF page",
    "size_mm": "the QR size", "ecc": "the error correction level", "logo": "the logo", "stock": "the stock model",
    "comment": "the comment", "current_password": "the current password", "new_password": "the new password",
    "password": "the password", "expires_days": "the days of validity", "limit": "the number of lines",
    "format": "the format", "paper": "the paper", "autoplay": "autoplay", "loop": "loop", "muted": "muted",
    "count": "the number of codes", "days": "the days", "max_redemptions": "the readers per code",
    "redeem_until": "the last day", "publication": "the publication", "external_id": "the external id",
    "reference": "the reference", "action": "the action", "access": "the access level", "teaser": "the teaser",
    "teaser_seconds": "the teaser's length in seconds", "premium_free_after_days": "days until free",
}
# Overlay kinds as a message names them (issue 27: "Lớp phủ mô hình 3D không dùng được ..."), msgctxt "overlay kind".
KIND_NAMES = {
    "model3d": "3D model", "video": "video", "audio": "audio", "animated_image": "animated image", "image": "image",
    "panorama360": "360° panorama", "link": "link",
}
# Words importers put into an upload error's kind/detected/accepted values, msgctxt "upload".
UPLOAD_WORDS = {
    "text": "text", "unknown": "an unknown format", "(audio only)": "(audio only)", "(video)": "(video)",
    "(no audio)": "(no audio)", "(animated)": "(animated)", "page": "page", "model3d": "3D model", "video": "video",
    "audio": "audio", "animated_image": "animated image", "image": "image", "panorama360": "360° image/video",
}
UPLOAD_KEYS = ("kind", "detected", "accepted")
# Things a NotFound names (msgctxt "what"; the English is the name itself).
WHAT_NAMES = ("publication", "edition", "page", "overlay", "user", "token", "code", "asset", "reader", "code_batch",
              "member", "job")
# Edition statuses (msgctxt "edition status"; the English is the status itself).
STATUS_NAMES = ("draft", "in_review", "published")


def normalize_lang(lang: str | None) -> str:
    """'en', 'en-GB', 'en_US' -> 'en'; anything else -> 'vi' (the default)."""
    primary = (lang or DEFAULT_LANG).split("-")[0].split("_")[0].lower()
    return "en" if primary == "en" else DEFAULT_LANG


class _Blank(dict):
    def __missing__(self, key: str) -> str:
        return "?"


def _fill(template: str, values: Mapping[str, Any]) -> str:
    try:
        return template.format_map(_Blank(values))
    except (ValueError, IndexError, AttributeError, TypeError):  # a malformed template never becomes a 500
        return template


def verbatim(text: str) -> str:
    """Text that is not a template (an exception's words, a validator's message) as a nested value: braces kept."""
    return str(text).replace("{", "{{").replace("}", "}}")


def render(name: str, values: Mapping[str, Any], translations) -> str:
    """The message of registry entry ``name`` with ``values``, through ``translations`` (a gettext translations
    object with ``gettext``/``pgettext``: babel's ``Translations`` for Vietnamese, ``NullTranslations`` for English)."""
    entry = ERRORS[name]
    t = translations
    out: dict[str, Any] = dict(values)
    if "what" in values:
        out["what"] = t.pgettext("what", str(values["what"]))
        out["What"] = str(out["what"]).capitalize()
    if "field" in values:
        field = str(values["field"])
        shown = t.pgettext("field", FIELD_LABELS[field]) if field in FIELD_LABELS else field
        out["field_label"] = f"{shown} ({field})" if shown != field else field
    if "status" in values:
        out["status_name"] = t.pgettext("edition status", str(values["status"]))
    if entry.group == "upload":
        for key in UPLOAD_KEYS:
            value = values.get(key)
            if not isinstance(value, str):
                continue
            if value in UPLOAD_WORDS:
                out[key] = t.pgettext("upload", UPLOAD_WORDS[value])
            else:
                for word, english in UPLOAD_WORDS.items():
                    if word.startswith("(") and word in value:
                        value = out[key] = value.replace(word, t.pgettext("upload", english))
    elif "kind" in values:
        kind = str(values["kind"])
        out["kind_name"] = t.pgettext("overlay kind", KIND_NAMES[kind]) if kind in KIND_NAMES else kind
    for key in entry.nested:
        if isinstance(values.get(key), (str, dict)):
            out[key] = _render_part(values[key], t, out)
    return _fill(t.gettext(entry.template), out)


def msg(template: str, **values: Any) -> dict:
    """A message part built of parts, as a nested value: ``InvalidField("x", msg("must be {what}", what=msg("text")))``.
    A plain dict, so a job's stored error keeps it (JSON)."""
    return {"msg": template, "values": values}


def render_part(part: str | dict, values: Mapping[str, Any], lang: str | None = DEFAULT_LANG) -> str:
    """A nested message part (an English template or a :func:`msg`) rendered alone in ``lang``."""
    from .i18n import translations

    return _render_part(part, translations(normalize_lang(lang)), values)


def _render_part(part: str | dict, t, base: Mapping[str, Any]) -> str:
    if isinstance(part, dict) and isinstance(part.get("msg"), str):
        inner = {k: _render_part(v, t, {}) if isinstance(v, dict) else v for k, v in (part.get("values") or {}).items()}
        return _fill(t.gettext(part["msg"]), {**base, **inner})
    return _fill(t.gettext(str(part)), base)


class AppError(Exception):
    """Base of every error a user can see: a registry ``name`` (see ERRORS), its wire ``code`` and the offending
    ``values``. ``message(lang)`` renders it in 'vi' (default) or 'en'; the web layers choose the HTTP status."""

    def __init__(self, name: str, values: Mapping[str, Any] | None = None, /, **kw: Any):
        if name not in ERRORS:
            raise ValueError(f"unknown error {name!r} (register it in builder.errors.ERRORS)")
        self.name = name
        self.code = ERRORS[name].code
        self.values: dict[str, Any] = {**(values or {}), **kw}
        super().__init__(name)

    def message(self, lang: str | None = DEFAULT_LANG) -> str:
        """The message in ``lang`` ('vi' default, 'en'; a regional tag such as 'en-GB' is accepted)."""
        from .i18n import translations

        return render(self.name, self.values, translations(normalize_lang(lang)))

    def to_dict(self, lang: str | None = DEFAULT_LANG) -> dict[str, str]:
        """``{"error": code, "message": text}`` — the API's one error shape."""
        return {"error": self.code, "message": self.message(lang)}

    @property
    def http_status(self) -> int:
        """Compatibility for tests written before the status moved to the web layer (tests/builder/test_importers.py
        reads it): the status ``builder.http_errors`` maps this error to. Domain code never reads it."""
        from .http_errors import status_for

        return status_for(self)

    def __str__(self) -> str:
        return f"{self.code}: {self.message('en')}"


# ----- the typed errors (each fixes a registry name and names its values)

class NotFound(AppError):
    def __init__(self, what: str, ident=None):
        super().__init__("not_found", what=what, ident=ident)


class Forbidden(AppError):
    def __init__(self, role: str):
        super().__init__("forbidden", role=role)


class Unauthorized(AppError):
    def __init__(self):
        super().__init__("unauthorized")


class InvalidField(AppError):
    """``reason`` is an English template (in the catalog) filled from ``values``: InvalidField("url", "at most
    {limit} characters", limit=2048); or a :func:`msg` built of parts."""

    def __init__(self, field: str, reason: str | dict, **values: Any):
        super().__init__("invalid_field", field=field, reason=reason, **values)

    @property
    def field(self) -> str:
        return self.values["field"]


class MissingField(AppError):
    def __init__(self, field: str):
        super().__init__("missing_field", field=field)


class Conflict(AppError):
    """``detail`` is an English template (in the catalog) filled from ``values``."""

    def __init__(self, detail: str, **values: Any):
        super().__init__("conflict", detail=detail, **values)


class BadRequest(AppError):
    """``detail`` is an English template (in the catalog), or ``verbatim(text)`` for words not ours."""

    def __init__(self, detail: str, **values: Any):
        super().__init__("bad_request", detail=detail, **values)


class LoginThrottled(AppError):
    def __init__(self, seconds: int):
        super().__init__("login_throttled", seconds=seconds)


class ServerFault(AppError):
    """A fault of the server (disk, permissions, memory, a tool missing), not of the request: a generic message and
    the incident id under which the log holds the details (never a server path or a traceback)."""

    def __init__(self, incident: str):
        super().__init__("server_error", incident=incident)


class PublishFailed(AppError):
    """The edition's content could not be packaged; ``detail`` (an exception's words, no path) says why."""

    def __init__(self, detail: str):
        super().__init__("publish_failed", detail=detail)


class InvalidAssetError(AppError):
    """An uploaded file was refused: InvalidAssetError(name, {value: ...}) with an "upload" registry entry."""


class ValidatorUnavailableError(AppError):
    """The glTF validator (node + npm ``gltf-validator``) could not run: never a silent pass."""

    def __init__(self, detail: str):
        super().__init__("validator_unavailable", {"detail": detail})


def error_codes() -> tuple[str, ...]:
    """The overlay import errors' codes (InvalidAssetError), for documentation and tests."""
    return tuple(name for name, entry in ERRORS.items() if entry.group == "upload")


def template_fields(template: str) -> set[str]:
    """The value names a template uses (for the catalog tests)."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}
