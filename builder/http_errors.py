"""The web layers' half of the error system: which HTTP status each registered error is answered with.

Domain code raises :class:`builder.errors.AppError` with a registry name and values, never a status; the authoring
app (``builder/web/common.py``) and the public app (``viewer_api``) answer it as ``{"error": code, "message": text}``
with ``status_for(err)``. A web view that must answer a registered error with another status (a body over a
limit is a ``bad_request`` answered 413) raises :class:`Refusal`. No Flask here, so the public app imports it
without the authoring side; only web layers import it.
"""
from __future__ import annotations

from .errors import ERRORS, AppError

# registry name -> HTTP status (tests/web/test_errors.py: every name in builder.errors.ERRORS has one)
STATUS: dict[str, int] = {
    # 400: the request itself is wrong
    "missing_field": 400, "invalid_field": 400, "bad_request": 400, "csrf": 400, "access_not_for_links": 400,
    "teaser_not_for_kind": 400, "teaser_needs_poster": 400, "bad_code": 400, "reset_token_invalid": 400,
    "bad_tilted": 400, "not_an_image": 400, "invalid_json": 400, "too_many_events": 400, "invalid_events": 400,
    "invalid_events_at": 400, "http_malformed": 400,
    "unknown_kind": 400, "empty_file": 400, "pdf_page_out_of_range": 400,
    "page_too_small": 400,
    # 401: who is asking is not known
    "unauthorized": 401, "invalid_credentials": 401, "sign_in_required": 401, "signature_missing": 401,
    "signature_invalid": 401, "timestamp_stale": 401, "nonce_replayed": 401,
    # 403: known, not allowed
    "forbidden": 403, "not_entitled": 403, "premium_link_invalid": 403, "http_refused": 403,
    # 404: not there (the entitlements API when off: as if absent, a 5xx would read as a fault)
    "not_found": 404, "code_unknown": 404, "premium_not_found": 404, "entitlements_api_off": 404,
    # 409: the state of things does not allow it
    "conflict": 409, "locked_for_review": 409, "no_changes": 409, "wrong_status": 409, "empty_edition": 409,
    "code_used_up": 409, "code_already_redeemed": 409, "email_taken": 409, "job_active": 409,
    # 410: it was there and is gone
    "code_expired": 410, "reset_token_expired": 410,
    # 413: too big
    "request_too_large": 413, "body_too_large": 413, "photo_too_large": 413, "events_too_large": 413, "too_many_pixels": 413,
    "too_large": 413, "image_too_large": 413, "zip_too_many_files": 413, "zip_too_large": 413, "zip_bomb": 413,
    # 414, 431: a request line or headers past gunicorn's limits (builder/serve_worker.py)
    "uri_too_long": 414, "headers_too_large": 431,
    # 415: not a type we accept for this kind
    "unsupported_type": 415,
    # 422: the right type, but unusable content (publishing: the edition's content could not be packaged)
    "corrupt_file": 422, "not_animated": 422, "gltf_invalid": 422, "gltf_external_resources": 422,
    "model_too_many_triangles": 422, "model_empty": 422, "zip_unsafe_path": 422, "zip_symlink": 422,
    "zip_encrypted": 422, "zip_no_model": 422, "zip_multiple_models": 422, "pdf_encrypted": 422,
    "publish_failed": 422, "bundle_check_failed": 422, "unknown_ids": 422,
    # 429: too often
    "login_throttled": 429, "rate_limited": 429,
    # 500: our fault (a job interrupted is only ever shown inside the job's record)
    "server_error": 500, "job_interrupted": 500, "http_server_fault": 500,
    # 501: a transfer coding gunicorn does not support
    "not_implemented": 501,
    # 503: a part of ours is not there right now (never a silent pass)
    "validator_unavailable": 503, "readers_unavailable": 503, "busy": 503,
}


class Refusal(Exception):
    """A web view's answer with a status other than its error's own: ``raise Refusal(BadRequest(...), 413)``."""

    def __init__(self, error: AppError, status: int):
        super().__init__(error.name)
        self.error = error
        self.status = status


def status_for(err: AppError | Refusal) -> int:
    if isinstance(err, Refusal):
        return err.status
    return STATUS[err.name]


def error_of(err: AppError | Refusal) -> AppError:
    return err.error if isinstance(err, Refusal) else err


def missing_statuses() -> list[str]:
    """Registered errors without a status (a test keeps this empty)."""
    return sorted(set(ERRORS) - set(STATUS))
