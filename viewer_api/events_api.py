"""``POST /api/v1/events``: the phone viewer's readership events (issue 26). No login, rate-limited per client,
answers 204 at once; the work is in ``ingest.py``. The body schema is ``schemas/events.schema.json``.

Answers: 204 (headers ``X-Events-Stored`` / ``X-Events-Dropped`` say what happened), 400 (not JSON, not the
schema, more than 100 events), 413 (body over 64 KB), 422 (no event names a published page; nothing stored),
429 with ``Retry-After``, 503 with ``Retry-After`` when the group-commit writer's queue is full or the batch's
transaction failed (nothing stored). Errors are ``{"error", "message"}`` in the Accept-Language (vi default, en).

Batches refused whole (400, 413, 422, 429, 503) and bots' batches are counted by reason in the process and written
as "refused" rows at most once a minute (``eventstore.RefusalCounter``): how many and why, nothing of the batch.
Readers who opted out (DNT / GPC) are not counted.
"""
from __future__ import annotations

import time

from flask import Blueprint, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from . import eventstore as es
from .ingest import MAX_BODY_BYTES, BatchError, Client, PublishedLookup, ingest_batch, parse_batch
from builder.errors import AppError

from .public import _cors, error_response

events_bp = Blueprint("events", __name__)


class EventsState:
    """The public side's handles on the events store: the append-only writer, the salt, the published lookup and
    the rate limits (one per app)."""

    def __init__(self, state):
        from .ratelimit import events_limits

        s = state.settings
        url = s.events_ingest_url or s.events_url or es.default_events_url(s.data_dir)
        self.engine = es.make_events_engine(url)
        if not s.events_ingest_url:
            es.create_schema(self.engine)  # one connection for both sides (the default): it owns the tables
        # group commit: many batches per transaction, written by the request that finds none in progress (ack
        # "committed") or by one writer thread ("queued"); a bounded queue (a full one is a 503)
        self.writer = es.GroupCommitWriter(self.engine, ack=s.events_ack, max_queued_events=s.events_queue_max,
                                           max_transaction_events=min(es.MAX_TRANSACTION_EVENTS, s.events_queue_max),
                                           log=current_app.logger)
        self.salts = es.SaltStore(s.data_dir / "analytics" / "salts")
        self.lookup = PublishedLookup(state.published, state.store)
        self.limits = events_limits(s.ratelimit_storage, s.events_rate_per_minute, s.events_session_rate_per_minute)
        self.refusals = es.RefusalCounter()

    def write_refusals(self, now_ms: int, force: bool = False) -> None:
        """The refused batches counted since the last write, as "refused" rows (at most once a minute)."""
        rows = self.refusals.take_due(now_ms, force)
        if not rows:
            return
        try:
            self.writer.append(rows)
        except es.WriterFull:  # the store is behind: counted again, written with a later request
            self.refusals.put_back(rows)


def events_state() -> EventsState:
    ev = current_app.extensions.get("baonhung_events")
    if ev is None:
        ev = current_app.extensions["baonhung_events"] = EventsState(current_app.extensions["baonhung"])
    return ev


def _opted_out() -> bool:
    return request.headers.get("DNT", "").strip() == "1" or request.headers.get("Sec-GPC", "").strip() == "1"


# BatchError codes -> the refusal reason counted in the "refused" rows (es.REFUSED_REASONS)
_REFUSAL_OF = {"too_large": "too_large", "invalid_json": "invalid", "invalid_events": "invalid",
               "too_many_events": "invalid", "unknown_ids": "unknown_ids"}


@events_bp.post("/api/v1/events")
def post_events():
    ev = events_state()
    response, refusal = _post_events(ev)
    if refusal:
        ev.refusals.count(refusal)
    ev.write_refusals(int(time.time() * 1000))
    return response


def _post_events(ev: EventsState):
    """The answer, and why the batch was refused whole (a REFUSED_REASONS name) or None."""
    if (request.content_length or 0) > MAX_BODY_BYTES:
        return _batch_error(BatchError("events_too_large", limit_kb=MAX_BODY_BYTES // 1024))
    request.max_content_length = MAX_BODY_BYTES  # a body without a length is refused once it passes the cap
    try:
        body = request.stream.read(MAX_BODY_BYTES + 1)
    except RequestEntityTooLarge:
        body = b"x" * (MAX_BODY_BYTES + 1)
    try:
        batch = parse_batch(body)
    except BatchError as exc:
        return _batch_error(exc)
    verdict = ev.limits.check(request.remote_addr or "", batch["session"])
    if not verdict.allowed:
        response, status = error_response(AppError("rate_limited"))
        response.headers["Retry-After"] = str(verdict.retry_after_s)
        return (response, status), "rate_limited"
    client = Client(request.remote_addr or "", request.headers.get("User-Agent", ""), _opted_out())
    try:
        result = ingest_batch(batch, client, ev.lookup, ev.salts, ev.writer, int(time.time() * 1000))
    except BatchError as exc:
        return _batch_error(exc)
    except es.WriterFull as exc:  # the store is behind (or the server is stopping): nothing stored, come back
        current_app.logger.warning("events refused: %s", exc)
        response, status = error_response(AppError("busy"))
        response.headers["Retry-After"] = str(exc.retry_after_s)
        return (response, status), "busy"
    response = _cors(current_app.response_class(status=204))
    response.headers["X-Events-Stored"] = str(result.stored)
    response.headers["X-Events-Dropped"] = str(result.dropped_total)
    response.headers["Access-Control-Expose-Headers"] += ", X-Events-Stored, X-Events-Dropped"
    return response, ("bot" if result.ignored == "bot" else None)


def _batch_error(exc: BatchError):
    response, status = error_response(exc)
    if status == 413:
        response.headers["Connection"] = "close"  # the rest of the body is not read
    return (response, status), _REFUSAL_OF.get(exc.code, "invalid")
