"""A reader's first scan on a phone-class browser: Chromium throttled through the DevTools protocol like
Lighthouse's mobile profile (CPU 4x slower, 1.6 Mbit/s down, 750 kbit/s up, 150 ms round trip, 412 x 823 viewport,
empty cache), opening an edition's ``/v/<code>`` link, tapping "Bật camera" as soon as it shows, the camera being a
y4m clip of a printed page.

Used by ``make bench-viewer`` (the figures) and by tests/browser/test_viewer_phone.py (generous bounds).

Times are from the navigation's start (``performance.now()`` of the viewer page is measured from it). Bytes are
what the network delivered (``encodedDataLength`` of the DevTools protocol: gzip and headers as on the wire),
counted up to the moment the first overlay was drawn on the paper.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from tests.browser import clip as clipmod
from tests.browser.fixture_app import launch_chromium

LOST_TAP_WAIT_S = 2.0   # a tap the viewer has not acted on after this long is counted lost, and the reader taps again
MAX_TAPS = 5


@dataclass(frozen=True)
class PhoneProfile:
    cpu: float = 4.0          # CPU slowdown (Emulation.setCPUThrottlingRate)
    down_kbps: float = 1600.0
    up_kbps: float = 750.0
    rtt_ms: float = 150.0
    width: int = 412
    height: int = 823
    dpr: float = 1.75

    def label(self) -> str:
        return (f"CPU {self.cpu:g}x, {self.down_kbps / 1000:g} Mbit/s down, {self.up_kbps:g} kbit/s up, "
                f"{self.rtt_ms:g} ms RTT, {self.width}x{self.height}")


@dataclass
class ScanResult:
    first_overlay_s: float | None = None       # navigation start -> overlays drawn on the paper
    first_recognize_s: float | None = None     # navigation start -> first /api/v1/recognize answer arrived
    tracker_ready_s: float | None = None       # navigation start -> in-browser tracker ready
    tap_s: float | None = None                 # navigation start -> the tap the viewer acted on
    bytes_before_overlay: int = 0              # downloaded before the first overlay (on the wire)
    bytes_total: int = 0
    lost_taps: int = 0
    fps: float = 0.0                            # processed frames per second while tracked in the browser
    first_mode: str | None = None               # how the first overlay was placed ("server" pose or tracker)
    requests: list = field(default_factory=list)  # (seconds from navigation, url, bytes, priority) finished
    sent: list = field(default_factory=list)      # (seconds from navigation, url) of every request sent
    sources: dict = field(default_factory=dict)   # url -> "service-worker" | "cache" | "network"
    recognize_waits: list = field(default_factory=list)  # (sent s, answered s) of each recognize request
    frames: list = field(default_factory=list)
    marks: dict = field(default_factory=dict)    # the viewer's own times (s from navigation) of each step
    track_ms: list = field(default_factory=list)   # per-frame tracking cost in the browser (flow + RANSAC)
    redetect_ms: list = field(default_factory=list)  # per-attempt ORB re-detection cost (main thread)
    errors: list = field(default_factory=list)


class _Wire:
    """DevTools network events of one page: bytes received with their times, recognize request timings."""

    def __init__(self, cdp):
        self.t_nav = None            # DevTools monotonic time of the navigation request
        self.chunks = []             # (timestamp, encoded bytes)
        self.urls = {}
        self.priority = {}
        self.sent = {}
        self.done = []               # (timestamp, url, encoded bytes)
        self.recognize = []          # (sent ts, answered ts)
        self.source = {}             # url -> "service-worker" | "cache" | "network" (how its response came)
        cdp.on("Network.responseReceived", self._response)
        cdp.on("Network.requestWillBeSent", self._sent)
        cdp.on("Network.dataReceived", self._data)
        cdp.on("Network.loadingFinished", self._finished)

    def reset(self):
        self.t_nav = None
        self.chunks, self.done, self.recognize = [], [], []
        self.urls, self.priority, self.sent, self.source = {}, {}, {}, {}

    def _sent(self, ev):
        rid, req = ev["requestId"], ev["request"]
        self.urls[rid] = req["url"]
        self.priority[rid] = req.get("initialPriority")
        self.sent[rid] = ev["timestamp"]
        if ev.get("type") == "Document" and self.t_nav is None:
            self.t_nav = ev["timestamp"]

    def _response(self, ev):
        r = ev["response"]
        self.source[r["url"]] = ("service-worker" if r.get("fromServiceWorker") else
                                 "cache" if r.get("fromDiskCache") or r.get("fromPrefetchCache") else "network")

    def _data(self, ev):
        self.chunks.append((ev["timestamp"], ev.get("encodedDataLength", 0), ev["requestId"]))

    def _finished(self, ev):
        rid = ev["requestId"]
        url = self.urls.get(rid, "")
        # encodedDataLength of loadingFinished is the whole response on the wire (headers included); the chunks
        # carry the body as it arrives: whatever the chunks did not account for arrived at the end.
        got = sum(c[1] for c in self.chunks if c[2] == rid)
        rest = max(0, ev.get("encodedDataLength", 0) - got)
        if rest:
            self.chunks.append((ev["timestamp"], rest, rid))
        self.done.append((ev["timestamp"], url, ev.get("encodedDataLength", 0), self.priority.get(rid)))
        if "/api/v1/recognize" in url and rid in self.sent:
            self.recognize.append((self.sent[rid], ev["timestamp"]))

    def rel(self, ts):
        return None if self.t_nav is None else ts - self.t_nav


def _throttle(cdp, profile: PhoneProfile):
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", {
        "offline": False, "latency": profile.rtt_ms,
        "downloadThroughput": profile.down_kbps * 1000 / 8, "uploadThroughput": profile.up_kbps * 1000 / 8})
    cdp.send("Emulation.setCPUThrottlingRate", {"rate": profile.cpu})


METRICS_JS = """() => { const s = window.__baonhung; if (!s) return null; const m = s.metrics;
  return {tapAt: m.tapAt, firstFrameAt: m.firstFrameAt ?? null, firstRecognizeAt: m.firstRecognizeAt ?? null,
          firstMatchAt: m.firstMatchAt ?? null, firstOverlayAt: m.firstOverlayAt, trackerReadyAt: m.trackerReadyAt ?? null,
          firstMode: m.firstOverlayMode ?? null, state: s.state, trackMs: m.trackMs, redetectMs: m.redetectMs}; }"""


def _scan(page, wire: _Wire, url: str, timeout_s: float, track_s: float, until_tracker: bool = False) -> ScanResult:
    out = ScanResult()
    page.goto(url, wait_until="commit")
    taps = 0
    while taps < MAX_TAPS:
        page.wait_for_selector("#start", state="visible", timeout=timeout_s * 1000)
        try:
            page.tap("#start", timeout=timeout_s * 1000)
        except Exception:  # noqa: BLE001 - the panel went away between the check and the tap: the earlier one worked
            break
        taps += 1
        t_tap = time.monotonic()
        acted = False
        while time.monotonic() - t_tap < LOST_TAP_WAIT_S:
            m = page.evaluate(METRICS_JS)
            if m and m["tapAt"] is not None:
                acted = True
                break
            time.sleep(0.05)
        if acted:
            break
        out.lost_taps += 1
    t0 = time.monotonic()
    m = None
    while time.monotonic() - t0 < timeout_s:
        m = page.evaluate(METRICS_JS)
        if m and m["firstOverlayAt"] is not None:
            break
        time.sleep(0.05)
    if not m or m["firstOverlayAt"] is None:
        raise TimeoutError(f"no overlay within {timeout_s} s (state {m and m['state']})")
    out.first_overlay_s = m["firstOverlayAt"] / 1000
    out.tap_s = m["tapAt"] / 1000 if m["tapAt"] is not None else None
    out.first_mode = m["firstMode"]
    out.marks = {k: (v / 1000 if isinstance(v, (int, float)) else v) for k, v in m.items() if not k.endswith("Ms")}
    if until_tracker:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout_s and page.evaluate(METRICS_JS)["trackerReadyAt"] is None:
            time.sleep(0.1)
    if track_s:
        time.sleep(track_s)
    m = page.evaluate(METRICS_JS)
    out.frames = page.evaluate("() => window.__baonhung.frames")
    out.tracker_ready_s = m["trackerReadyAt"] / 1000 if m["trackerReadyAt"] is not None else None
    out.track_ms, out.redetect_ms = list(m["trackMs"]), list(m["redetectMs"])
    cut = wire.t_nav + out.first_overlay_s if wire.t_nav is not None else None
    network = {rid for rid, u in wire.urls.items() if u.startswith("http")}  # not data: or blob: URLs
    out.bytes_before_overlay = sum(b for ts, b, rid in wire.chunks if rid in network and cut is not None and ts <= cut)
    out.bytes_total = sum(b for _, b, rid in wire.chunks if rid in network)
    out.requests = [(wire.rel(ts), u, b, p) for ts, u, b, p in wire.done]
    out.sources = dict(wire.source)
    out.sent = sorted((wire.rel(ts), wire.urls[rid]) for rid, ts in wire.sent.items())
    out.recognize_waits = [(wire.rel(a), wire.rel(b)) for a, b in wire.recognize]
    answered = [b for _, b in out.recognize_waits if b is not None]
    out.first_recognize_s = min(answered) if answered else None
    return out


def phone_scan(base: str, code: str, y4m, profile: PhoneProfile = PhoneProfile(), *, warm: bool = True,
               timeout_s: float = 90.0, track_s: float = 6.0, warm_wait_s: float = 120.0, warm_track_s: float = 0.0,
               on_warm=None) -> tuple[ScanResult, ScanResult | None]:
    """Cold scan in a fresh browser context (its frames recorded until the tracker is ready and track_s more),
    then (warm) the same link re-opened in that context once the viewer says it is ready offline (service worker
    installed, tracker cached; up to warm_wait_s), recorded until its tracker is ready too when warm_track_s > 0.
    on_warm: called just before the re-open (e.g. to clear a server's request log). Returns (cold, warm or None)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = launch_chromium(pw, clip=y4m)
        try:
            context = browser.new_context(viewport={"width": profile.width, "height": profile.height},
                                          device_scale_factor=profile.dpr, is_mobile=True, has_touch=True)
            page = context.new_page()
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.add_init_script(clipmod.PROBE_JS)
            cdp = context.new_cdp_session(page)
            _throttle(cdp, profile)
            wire = _Wire(cdp)
            url = f"{base}/v/{code}"
            cold = _scan(page, wire, url, timeout_s, track_s, until_tracker=True)
            cold.errors = list(errors)
            if not warm:
                return cold, None
            t0 = time.monotonic()
            while time.monotonic() - t0 < warm_wait_s:
                if page.evaluate("() => !!(window.__baonhung && window.__baonhung.offlineReady)"):
                    break
                time.sleep(0.25)
            wire.reset()
            errors.clear()
            if on_warm:
                on_warm()
            hot = _scan(page, wire, url, timeout_s, warm_track_s, until_tracker=warm_track_s > 0)
            hot.errors = list(errors)
            return cold, hot
        finally:
            browser.close()
