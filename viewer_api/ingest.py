"""Readership events in: one batch checked against ``schemas/events.schema.json``, each event checked against what
is published, the reader reduced to two daily hashes and a coarse device class, the rows appended (issue 26).

No Flask here: ``events_api.py`` parses the request and calls :func:`ingest_batch`. The client's address and
User-Agent enter only :func:`ingest_batch` and leave only as a keyed hash and a device class.
"""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import jsonschema

from builder.errors import AppError

from . import eventstore as es

SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "events.schema.json"
MAX_BODY_BYTES = 64 * 1024  # 100 events of ~200 bytes of JSON each, with room; a larger body is a 413
MAX_EVENTS = 100  # per batch (the schema's maxItems): the viewer sends every ~15 s and on page hide
MAX_AGE_MS = 7 * es.DAY_MS  # an offline queue may hold events this long; older ones are dropped (and counted)
MAX_SKEW_MS = 5 * 60 * 1000  # a phone's clock may run this far ahead of the server's
MAX_UA_CHARS = 512  # longer User-Agents are parsed on their first 512 characters (the families are near the start)


class BatchError(AppError, ValueError):
    """A batch refused whole (nothing stored): a registered error (``events_too_large``, ``invalid_json``,
    ``too_many_events``, ``invalid_events``, ``invalid_events_at``, ``unknown_ids``) and ``detail`` for the refusal
    counts."""

    def __init__(self, name: str, detail: str = "", **values):
        super().__init__(name, **values)
        self.detail = detail


@lru_cache(maxsize=1)
def _schema() -> dict:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return schema


@lru_cache(maxsize=1)
def _validator() -> jsonschema.Draft202012Validator:
    """The pure-Python validator: only for a batch the compiled one refused, to name the first wrong field."""
    return jsonschema.Draft202012Validator(_schema())


@lru_cache(maxsize=1)
def _fast_validator():
    """The schema compiled by jsonschema-rs (Rust): ~0.1 ms for a batch of 20 where the Python validator takes
    ~11 ms (it was 85 % of an event post's time). It only says yes or no; a refusal is explained by the other."""
    import jsonschema_rs

    return jsonschema_rs.Draft202012Validator(_schema())


def _valid_fast(data) -> bool:
    try:
        return _fast_validator().is_valid(data)
    except (ValueError, OverflowError):  # a value the Rust side cannot represent (an integer past 64 bits)
        return False


def parse_batch(body: bytes) -> dict:
    """The batch as a dict, checked against the schema; BatchError (400) otherwise."""
    if len(body) > MAX_BODY_BYTES:
        raise BatchError("events_too_large", limit_kb=MAX_BODY_BYTES // 1024)
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise BatchError("invalid_json") from None
    if isinstance(data, dict) and isinstance(data.get("events"), list) and len(data["events"]) > MAX_EVENTS:
        raise BatchError("too_many_events", limit=MAX_EVENTS)
    if _valid_fast(data):
        return data
    error = next(iter(sorted(_validator().iter_errors(data), key=lambda e: list(e.absolute_path))), None)
    if error is None:  # the two disagree at an edge (Python's "$" also matches before a final newline): refused
        raise BatchError("invalid_events", detail="(batch)")
    where = "/".join(str(p) for p in error.absolute_path) or "(batch)"
    raise BatchError("invalid_events_at", detail=where, where=where, reason=error.message[:200])


# ------------------------------------------------------------------------------------------------ device class
# ua-parser families (uap-core regexes) to our coarse codes; anything else is "other" (0).
_OS_OF = {"Android": "android", "iOS": "ios", "Windows": "windows", "Mac OS X": "macos", "Linux": "linux",
          "Ubuntu": "linux", "Chrome OS": "chromeos", "Fedora": "linux"}
_BROWSER_OF = {"Chrome": "chrome", "Chrome Mobile": "chrome", "Chrome Mobile iOS": "chrome", "HeadlessChrome": "chrome",
               "Chromium": "chrome", "Safari": "safari", "Mobile Safari": "safari", "Mobile Safari UI/WKWebView": "webview",
               "Firefox": "firefox", "Firefox Mobile": "firefox", "Firefox iOS": "firefox",
               "Samsung Internet": "samsung", "Edge": "edge", "Edge Mobile": "edge", "Opera": "opera",
               "Opera Mobile": "opera", "Coc Coc": "coccoc", "Facebook": "facebook", "Chrome Mobile WebView": "webview",
               "UC Browser": "uc", "MiuiBrowser": "miui"}
# uap-core marks crawlers with device family "Spider"; these HTTP tools are not readers either. Headless Chromium
# is not dropped: it is how the product's own browser tests (and accessibility checkers) read pages.
BOT_BROWSER_FAMILIES = frozenset({"curl", "Wget", "Python Requests", "Python-urllib", "Go-http-client", "okhttp",
                                  "Apache-HttpClient", "Java", "libwww-perl", "PhantomJS", "aiohttp", "httpx",
                                  "node-fetch", "axios"})


@dataclass(frozen=True)
class Device:
    device_class: int
    os_family: int
    browser: int
    bot: bool


@lru_cache(maxsize=4096)
def classify_user_agent(user_agent: str) -> Device:
    """Coarse device class of a User-Agent (ua-parser, uap-core's regexes): phone / tablet / desktop, OS family,
    browser family, and whether it is an obvious bot. Phone vs tablet: an iPad, a device uap-core names a tablet,
    or Android without "Mobile" (Google's rule for its own browsers) is a tablet."""
    from ua_parser import parse

    ua = user_agent[:MAX_UA_CHARS]
    if not ua.strip():
        return Device(0, 0, 0, True)
    result = parse(ua)
    browser = result.user_agent.family if result.user_agent else "Other"
    os_name = result.os.family if result.os else "Other"
    device = result.device
    if (device is not None and device.family == "Spider") or browser in BOT_BROWSER_FAMILIES:
        return Device(0, 0, 0, True)
    brand = (device.brand or "") if device else ""
    family = (device.family or "") if device else ""
    if "iPad" in ua or family == "iPad" or "Tablet" in brand or "tablet" in family.lower():
        device_class = "tablet"
    elif os_name == "Android":
        device_class = "phone" if "Mobile" in ua else "tablet"
    elif os_name in ("iOS",) or "Mobi" in ua:
        device_class = "phone"
    elif os_name in ("Windows", "Mac OS X", "Linux", "Ubuntu", "Chrome OS", "Fedora"):
        device_class = "desktop"
    else:
        device_class = None
    os_key = _OS_OF.get(os_name)
    if os_key == "ios" and device_class == "tablet":
        os_key = "ipados"
    browser_key = "zalo" if "Zalo" in ua else _BROWSER_OF.get(browser)
    return Device(es.DEVICE_CLASSES.get(device_class, 0), es.OS_FAMILIES.get(os_key, 0),
                  es.BROWSER_FAMILIES.get(browser_key, 0), False)


# ------------------------------------------------------------------------------------------------ published ids
@dataclass(frozen=True)
class PublishedPage:
    page_id: int
    edition_id: int
    publication: str  # the publication's slug (from the catalog)
    width_mm: float
    height_mm: float
    overlays: dict  # overlay id -> kind
    premium: frozenset = frozenset()  # ids of the overlays the manifest marks "access": "premium" (issue 27)


class PublishedLookup:
    """What the viewer may name: published editions, pages and their overlays, from the published catalog and the
    page manifests (read from the store once per manifest, which is immutable)."""

    def __init__(self, published, store):
        self.published = published
        self.store = store
        self._pages: dict[str, PublishedPage] = {}  # manifest sha -> page
        self._lock = threading.Lock()

    def edition_publication(self, edition_id: int) -> str | None:
        entry = self.published.catalog()["editions"].get(str(edition_id))
        return entry.get("publication", "") if entry else None

    def page(self, page_id: int) -> PublishedPage | None:
        entry = self.published.page_entry(page_id)
        if entry is None:
            return None
        sha = entry["manifest"]
        cached = self._pages.get(sha)
        if cached is None:
            manifest = json.loads(self.store.read(sha))
            edition_id = int(entry["edition_id"])
            cached = PublishedPage(int(page_id), edition_id, self.edition_publication(edition_id) or "",
                                   float(manifest.get("width_mm") or 0), float(manifest.get("height_mm") or 0),
                                   {int(o["id"]): o["kind"] for o in manifest.get("overlays", [])
                                    if str(o.get("id", "")).isdigit()},
                                   frozenset(int(o["id"]) for o in manifest.get("overlays", [])
                                             if str(o.get("id", "")).isdigit() and o.get("access") == "premium"))
            with self._lock:
                if len(self._pages) > 50_000:
                    self._pages.clear()
                self._pages[sha] = cached
        return cached


# ------------------------------------------------------------------------------------------------ ingest
@dataclass(frozen=True)
class Client:
    """Who sent the batch, as the request says it. Used for the hashes and the device class, then forgotten."""

    address: str
    user_agent: str
    opted_out: bool = False  # DNT: 1 or Sec-GPC: 1


@dataclass
class IngestResult:
    stored: int = 0
    dropped: dict = field(default_factory=dict)  # reason -> count
    ignored: str = ""  # "bot" | "opted_out" when the whole batch was ignored (204, nothing stored)

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())


# Which overlay kinds each overlay event may name (a quartile of a 3D model is a viewer bug, not a reading).
KINDS_FOR = {"media_progress": {"video", "audio"}, "model_interaction": {"model3d"},
             "panorama_entered": {"panorama360"}, "link_opened": {"link"}}
UNKNOWN_ID_REASONS = ("unknown_edition", "unknown_page", "unknown_overlay")
# Events only a premium overlay can have (its teaser, its lock); on a free one they are a viewer bug or a forgery.
PREMIUM_TYPES = frozenset({"premium_impression", "premium_lock_tap", "premium_redeemed"})


def _category_and_quantity(ev: dict, kind: str | None) -> tuple[int | None, int | None]:
    typ = ev["type"]
    if typ == "recognized":
        return es.RECOGNITION_STAGES[ev["stage"]] * 2 + int(ev["scoped"]), ev["ms"]
    if typ in ("dwell", "recognition_given_up"):
        return None, ev["ms"]
    if typ == "overlay_shown":
        return es.OVERLAY_KIND_CODES.get(kind or "", 0), None
    if typ == "media_progress":
        return ev["quartile"], None
    if typ == "model_interaction":
        return es.GESTURES[ev["gesture"]], None
    if typ == "fallback_used":
        return es.FALLBACK_MODES[ev["mode"]], None
    if typ == "reaction":
        return es.REACTIONS[ev["value"]], None
    if typ == "premium_redeemed":
        return int("overlay" in ev), None  # 1: after a lock tap of this session (the overlay it names)
    return None, None


def _overlay_of(ev: dict, page: PublishedPage, overlay_id: int) -> tuple[str | None, str | None]:
    """(the overlay's kind, the reason to drop the event or None) for an event naming an overlay of ``page``."""
    kind = page.overlays.get(overlay_id)
    if kind is None:
        return None, "unknown_overlay"
    if ev["type"] in KINDS_FOR and kind not in KINDS_FOR[ev["type"]]:
        return kind, "wrong_kind"
    if ev["type"] in PREMIUM_TYPES and overlay_id not in page.premium:
        return kind, "not_premium"
    return kind, None


def ingest_batch(batch: dict, client: Client, lookup: PublishedLookup, salts: es.SaltStore, writer,
                 now_ms: int) -> IngestResult:
    """Check each event of a schema-valid ``batch`` against what is published and append the ones that pass.

    Dropped (and counted in one ``dropped`` row per reason when anything is stored): events older than 7 days or
    more than 5 minutes in the future, naming an edition / page / overlay that is not published (or not on that
    page), an overlay of the wrong kind for the event, a premium event of an overlay the page does not mark premium, an
    aim point off the page. A batch in which nothing passes
    because it names unknown ids is refused whole: BatchError 422, nothing stored. Bots and readers who opted out
    (DNT / GPC) get ``ignored`` and nothing is stored. ``writer``: an :class:`~viewer_api.eventstore.EventWriter` or
    a :class:`~viewer_api.eventstore.GroupCommitWriter` (whose WriterFull passes through: nothing stored)."""
    if client.opted_out:
        return IngestResult(ignored="opted_out")
    device = classify_user_agent(client.user_agent or "")
    if device.bot:
        return IngestResult(ignored="bot")
    salt = salts.salt_for(es.vn_day(now_ms))  # today's salt, whatever day the event happened (it is gone tomorrow)
    session = es.keyed_hash32(salt, "session", batch["session"])
    ctx = es.pack_ctx(device.device_class, device.os_family, device.browser, es.ENTRIES[batch["entry"]])
    visitors: dict[str, int] = {}

    def visitor(publication: str) -> int:
        if publication not in visitors:
            visitors[publication] = es.keyed_hash32(salt, "reader", client.address, client.user_agent, publication)
        return visitors[publication]

    pages: dict[int, PublishedPage | None] = {}  # one catalog look-up per page of the batch, not per event

    def published_page(page_id: int) -> PublishedPage | None:
        if page_id not in pages:
            pages[page_id] = lookup.page(page_id)
        return pages[page_id]

    rows: list[es.EventRow] = []
    dropped: dict[str, int] = {}

    def drop(reason: str) -> None:
        dropped[reason] = dropped.get(reason, 0) + 1

    for ev in batch["events"]:
        t = ev["t"]
        if t < now_ms - MAX_AGE_MS:
            drop("stale")
            continue
        if t > now_ms + MAX_SKEW_MS:
            drop("future")
            continue
        edition_id = ev.get("edition")
        page_id = ev.get("page")
        overlay_id = ev.get("overlay")
        publication = ""
        kind = None
        if page_id is not None:
            page = published_page(page_id)
            if page is None:
                drop("unknown_page")
                continue
            if edition_id is not None and edition_id != page.edition_id:
                drop("unknown_edition")
                continue
            edition_id, publication = page.edition_id, page.publication
            if overlay_id is not None:
                kind, refusal = _overlay_of(ev, page, overlay_id)
                if refusal is not None:
                    drop(refusal)
                    continue
            if ev["type"] == "aim" and not (ev["x_mm"] <= page.width_mm and ev["y_mm"] <= page.height_mm):
                drop("outside_page")
                continue
        elif overlay_id is not None:
            drop("unknown_overlay")  # an overlay is named by its page
            continue
        elif edition_id is not None:
            publication = lookup.edition_publication(edition_id)
            if publication is None:
                drop("unknown_edition")
                continue
        k, n = _category_and_quantity(ev, kind)
        x = y = None
        if ev["type"] == "aim":
            x, y = int(ev["x_mm"]), int(ev["y_mm"])  # whole millimetres (floor): the heat-map's cells are 5 mm
        rows.append(es.EventRow(t, es.EVENT_TYPES[ev["type"]], edition_id, page_id, overlay_id,
                                visitor(publication), session, ctx, k, n, x, y))
    if not rows:
        unknown = sum(dropped.get(r, 0) for r in (*UNKNOWN_ID_REASONS, "wrong_kind", "not_premium"))
        if unknown:
            raise BatchError("unknown_ids", detail=json.dumps(dropped, sort_keys=True))
        return IngestResult(0, dropped)
    for reason, count in dropped.items():
        rows.append(es.EventRow(now_ms, es.EVENT_TYPES["dropped"], None, None, None, 0, session, ctx,
                                es.DROP_REASONS[reason], count))
    writer.append(rows)
    return IngestResult(len(rows) - len(dropped), dropped)
