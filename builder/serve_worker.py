"""The gunicorn worker `baonhung serve` runs: gunicorn's threaded worker, whose own refusals (a request line past
8,190 bytes, too many or too large headers, a malformed request) answer in the product's one error shape
``{"error": code, "message": text}`` instead of gunicorn's HTML page (issue 25: a too-long URL got an HTML 414).

gunicorn refuses these before any header is read, so the language cannot be chosen: the message carries both, the
Vietnamese first.
"""
from __future__ import annotations

import json

from gunicorn import util
from gunicorn.workers.gthread import ThreadWorker

from .errors import AppError

# status gunicorn chose -> the registered error (builder/errors.py ERRORS) it is answered with; any other status
# falls back to http_malformed / http_server_fault
REFUSALS = {400: "http_malformed", 403: "http_refused", 414: "uri_too_long", 417: "http_malformed",
            431: "headers_too_large", 501: "not_implemented"}


def refusal_bytes(status: int, reason: str) -> bytes:
    """The whole HTTP response (status line, headers, JSON body) for one of gunicorn's own refusals."""
    err = AppError(REFUSALS.get(status, "http_server_fault" if status >= 500 else "http_malformed"))
    body = json.dumps({"error": err.code, "message": f"{err.message('vi')} / {err.message('en')}"},
                      ensure_ascii=False).encode("utf-8")
    head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode("latin-1") + body


def _write_json_error(sock, status_int, reason, mesg):  # gunicorn.util.write_error's signature; mesg is not shown
    util.write_nonblock(sock, refusal_bytes(int(status_int), reason))


class JsonErrorWorker(ThreadWorker):
    def init_process(self):
        # gunicorn's handle_error writes through the module function util.write_error; this worker process
        # answers with the JSON shape instead (set once, before any thread serves).
        util.write_error = _write_json_error
        super().init_process()
