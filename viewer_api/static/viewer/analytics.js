// Readership analytics (issue 26): what a reader did, reported to POST /api/v1/events in the shape of
// viewer_api/schemas/events.schema.json (docs/analytics.md explains each event). Loaded by main.js only once the
// main thread is idle after the first overlay; it hears what happened before from the event bus's log (events.js).
//
// Privacy: nothing at all when the browser asks not to be tracked (Do Not Track or Global Privacy Control); a random
// session id in memory only (a new one on every page load, never stored); ids of published editions / pages /
// overlays and times, nothing about the reader. The reader notice (ui.js, the "ⓘ" link) says so.
//
// Sending: events wait in a bounded queue and go in batches every FLUSH_EVERY_MS with fetch (keepalive) — its answer
// tells a refusal to wait (429 Retry-After) or a network down (the batch goes back into the queue, with its original
// times, until the browser is online again) — and, when the page is hidden or left, with navigator.sendBeacon (the
// page may be gone before any answer; fetch keepalive when the beacon is refused). A 4xx other than 429 is not retried.
// What cannot be sent now (offline, told to wait, or left without a network) is also kept in localStorage, bounded
// (PERSIST_MAX_EVENTS / PERSIST_MAX_BYTES, the oldest dropped and counted), without the session id; the next page load
// sends it with its original times under a new random session id of its own (one per earlier page load, in memory).
// Nothing here runs per camera frame but two assignments (dwell) and, at most once a second, the aim point.

import { replayAndListen } from "./events.js";
import { readerOptedOut } from "./ui.js";

export const EVENTS_URL = "/api/v1/events";
const FLUSH_EVERY_MS = 15000;      // the schema's "every ~15 s": a reader's minute is 4 small requests, dwell stays fresh
const BATCH_MAX_EVENTS = 100;      // the server's cap per batch (events.schema.json maxItems)
const BATCH_MAX_BYTES = 60000;     // under the server's 64 KB body cap, with room for the envelope
const QUEUE_MAX = 1000;            // kept while offline or told to wait; the oldest go first (~an hour of reading)
// Kept on the device for a later page load when they cannot be sent now: ~10 minutes of reading (aim points are one a
// second), small next to localStorage's ~5 MB an origin shares with the viewer's own keys.
const PERSIST_MAX_EVENTS = 500;
const PERSIST_MAX_BYTES = 200000;
const MAX_AGE_MS = 7 * 24 * 3600 * 1000;  // the server drops events older than this (viewer_api/ingest.py MAX_AGE_MS)
const ENTRIES = ["qr", "archive", "offline"];
const AIM_EVERY_MS = 1000;         // at most one aim point per second per page (schema: "at most one per second")
// Tracked frames further apart than this are two stretches on the paper (a camera that gave no frame for so long while
// the page was visible has stopped; the main thread's stalls while three.js or opencv.js load are shorter).
const DWELL_GAP_MS = 5000;
const DWELL_MAX_MS = 3600000;      // the schema's cap of one dwell / ms value
const GESTURE_EVERY_MS = 5000;     // model_interaction: at most one per gesture kind and overlay per 5 s (schema)
const RETRY_AFTER_DEFAULT_S = 30;  // a 429 without a usable Retry-After
const RETRY_AFTER_MAX_S = 600;     // never wait longer than this on the server's word
const REACTION_SHOW_MS = 8000;     // the "Useful?" control stays this long after an overlay is tapped
const LOST_HIDE_MS = 350;          // main.js: target:lost comes this long after the last tracked frame
const SESSION_BYTES = 12;          // 96 random bits -> 16 characters of base64url (schema: 8-64 of A-Za-z0-9_-)

const LISTENED = ["camera:started", "camera:error", "camera:stopped", "page:recognized", "page:ready",
                  "overlays:shown", "overlay:activate", "media:quartile", "panorama:open", "fallback:used",
                  "target:found", "target:update", "target:lost",
                  // premium overlays (premium.js, issue 27; docs/PREMIUM.md): {overlay_id}, {overlay_id}, {}
                  "premium:teaser_shown", "premium:lock_tap", "premium:redeemed"];

// A published id (the schema's 1..2^31-1 integers), or null: ids of test fixtures ("p1") are not reported.
export function publishedId(value) {
  const n = typeof value === "number" ? value : (/^\d+$/.test(String(value ?? "")) ? Number(value) : NaN);
  return Number.isInteger(n) && n >= 1 && n <= 2147483647 ? n : null;
}

function randomSession() {
  const bytes = crypto.getRandomValues(new Uint8Array(SESSION_BYTES));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

// The frame centre in page mm: the inverse of H (page mm -> frame px, row-major 9) applied to the centre pixel
// ((w - 1) / 2, (h - 1) / 2 in OpenCV's convention: pixel centres at integers). Returns [x, y] or null (singular H, or
// the centre on the page plane's line at infinity).
export function frameCentreOnPage(H, width, height) {
  const [a, b, c, d, e, f, g, h, i] = H;
  // adjugate of H (its inverse up to scale): enough for a point in homogeneous coordinates
  const inv = [e * i - f * h, c * h - b * i, b * f - c * e,
               f * g - d * i, a * i - c * g, c * d - a * f,
               d * h - e * g, b * g - a * h, a * e - b * d];
  const det = a * inv[0] + b * inv[3] + c * inv[6];
  if (!Number.isFinite(det) || Math.abs(det) < 1e-12) return null;
  const u = (width - 1) / 2, v = (height - 1) / 2;
  const w = inv[6] * u + inv[7] * v + inv[8];
  if (Math.abs(w) < 1e-12 * Math.abs(det)) return null;
  return [(inv[0] * u + inv[1] * v + inv[2]) / w, (inv[3] * u + inv[4] * v + inv[5]) / w];
}

export class Reporter {
  // config: the page's viewer config (code, editionId); entry: "qr" | "archive" | "offline"; openedAt: ms since the epoch
  // store: a PendingStore (null: nothing kept on the device)
  constructor({ config, entry, openedAt, url = EVENTS_URL, store = null }) {
    this.url = url;
    this.entry = entry;
    this.session = randomSession();
    this.queue = [];
    this.older = [];               // [{session, entry, events}] kept by earlier page loads, oldest first
    this.store = store;
    this.dropped = 0;              // events dropped from a full queue (or too old when kept on the device)
    this.sent = 0;                 // events the server answered 204 for (or handed to a beacon)
    this.quietUntil = 0;           // Date.now() before which nothing is sent (429 Retry-After)
    this.inflight = null;
    this.cameraStartedAt = null;
    this.photoAt = null;
    this.recognizedPages = new Set();
    this.gaveUp = false;
    this.shown = new Set();        // "page/overlay" drawn in this session
    this.kinds = new Map();        // overlay id -> {pageId, kind}
    this.pages = new Map();        // page id -> {widthMm, heightMm}
    this.lastAim = new Map();      // page id -> ms of its last aim point
    this.lastGesture = new Map();  // "overlay/gesture" -> ms
    this.stretch = null;           // {pageId, since, lastSeen, live}: the page followed on the paper now
    this.dwell = new Map();        // page id -> tracked ms not yet reported
    this.currentPage = null;
    this.teasersShown = new Set(); // "page/overlay" whose premium teaser was reported in this session
    this.lastLockTap = null;       // {page, overlay} of the last lock tapped in this session: a redemption's cause
    const edition = publishedId(config.editionId);
    this.add({ type: "opened", t: Math.round(openedAt), ...(entry === "qr" && edition ? { edition } : {}) });
    if (store) {
      const { groups, dropped } = store.takeAll(Date.now());
      this.dropped += dropped;
      // each earlier page load is its own session again, under a new random id that lives in memory only
      this.older = groups.map((g) => ({ session: randomSession(), entry: g.entry, events: g.events }));
      if (this.older.length) this.persist();  // taken from storage: kept there under this page load until sent
    }
  }

  add(event) {
    this.queue.push(event);
    if (this.queue.length > QUEUE_MAX) {
      this.dropped += this.queue.length - QUEUE_MAX;
      this.queue.splice(0, this.queue.length - QUEUE_MAX);
    }
  }

  // ---------- from the bus ----------
  handle(name, d) {
    const at = d.at;
    switch (name) {
      case "camera:started":
        this.cameraStartedAt = at;
        this.add({ type: "camera_started", t: at });
        break;
      case "camera:error":
        this.add({ type: d.reason === "denied" ? "camera_denied" : "camera_unavailable", t: at });
        break;
      case "camera:stopped":
        this.giveUp(at);
        break;
      case "page:recognized": {
        const page = publishedId(d.pageId);
        if (!page || this.recognizedPages.has(page)) break;
        this.recognizedPages.add(page);
        // ms since the camera's first frame (a photo: since it was chosen)
        const from = d.stage === "photo" ? (this.photoAt ?? at) : (this.cameraStartedAt ?? at);
        this.add({ type: "recognized", t: at, page, ms: Math.min(DWELL_MAX_MS, Math.max(0, Math.round(at - from))),
                   stage: d.stage, scoped: !!d.scoped });
        break;
      }
      case "page:ready":
        this.pages.set(String(d.pageId), { widthMm: d.widthMm, heightMm: d.heightMm });
        this.currentPage = String(d.pageId);
        break;
      case "overlays:shown": {
        const page = publishedId(d.pageId);
        for (const o of d.overlays || []) {
          this.kinds.set(String(o.id), { pageId: String(d.pageId), kind: o.kind });
          const overlay = publishedId(o.id);
          if (!page || !overlay || this.shown.has(`${page}/${overlay}`)) continue;
          this.shown.add(`${page}/${overlay}`);
          this.add({ type: "overlay_shown", t: at, page, overlay });
        }
        break;
      }
      case "overlay:activate":
        this.activated(d, at);
        break;
      case "media:quartile":
        if (d.kind === "video" || d.kind === "audio") this.overlayEvent("media_progress", d.pageId, d.id, at, { quartile: d.quartile });
        break;
      case "panorama:open":
        this.overlayEvent("panorama_entered", d.pageId ?? this.currentPage, d.id, at);
        break;
      case "fallback:used": {
        if (d.mode === "photo_upload") this.photoAt = at;
        const page = publishedId(d.pageId);
        this.add({ type: "fallback_used", t: at, mode: d.mode, ...(page ? { page } : {}) });
        break;
      }
      case "target:found":
      case "target:update":
        this.tracked(String(d.pageId), at, name === "target:update", d);
        break;
      case "premium:teaser_shown":
      case "premium:lock_tap":
        this.premium(name, d, at);
        break;
      case "premium:redeemed":
        // after a lock tap of this session: attributed to that overlay (the "redemptions after a lock tap")
        this.add({ type: "premium_redeemed", t: at, ...(this.lastLockTap || {}) });
        break;
      case "target:lost":
        // heard late (replayed), a stretch has no frame times: it ended LOST_HIDE_MS before this (main.js)
        if (this.stretch && !this.stretch.live) this.stretch.lastSeen = Math.max(this.stretch.lastSeen, at - LOST_HIDE_MS);
        this.closeStretch();
        break;
      default:
        break;
    }
  }

  overlayEvent(type, pageId, overlayId, at, extra = {}) {
    const page = publishedId(pageId), overlay = publishedId(overlayId);
    if (page && overlay) this.add({ type, t: at, page, overlay, ...extra });
  }

  // A premium overlay's teaser drawn (reported once per overlay and session) or its lock tapped. The bus names the
  // overlay only: its page is the one overlays:shown listed it on, else the page followed now.
  premium(name, d, at) {
    const pageId = d.pageId ?? (this.kinds.get(String(d.overlay_id)) || {}).pageId ?? this.currentPage;
    const page = publishedId(pageId), overlay = publishedId(d.overlay_id);
    if (!page || !overlay) return;
    if (name === "premium:lock_tap") {
      this.lastLockTap = { page, overlay };
      this.add({ type: "premium_lock_tap", t: at, page, overlay });
    } else if (!this.teasersShown.has(`${page}/${overlay}`)) {
      this.teasersShown.add(`${page}/${overlay}`);
      this.add({ type: "premium_impression", t: at, page, overlay });
    }
  }

  activated(d, at) {
    const pageId = d.pageId ?? (this.kinds.get(String(d.id)) || {}).pageId ?? this.currentPage;
    this.overlayEvent("overlay_activated", pageId, d.id, at);
    if (d.kind === "link") this.overlayEvent("link_opened", pageId, d.id, at);
    if (d.kind === "model3d") this.gesture(pageId, d.id, "tap", at);
    if (this.onActivated) this.onActivated(pageId, d.id);
  }

  gesture(pageId, overlayId, gesture, at) {
    const key = `${overlayId}/${gesture}`;
    if (at - (this.lastGesture.get(key) ?? -Infinity) < GESTURE_EVERY_MS) return;
    this.lastGesture.set(key, at);
    this.overlayEvent("model_interaction", pageId, overlayId, at, { gesture });
  }

  reaction(pageId, overlayId, value) {
    this.overlayEvent("reaction", pageId, overlayId, Date.now(), { value });
  }

  // A tracked frame of `pageId` at `at` (live: a target:update heard as it happened; a replayed target:found is not).
  tracked(pageId, at, live, d) {
    const s = this.stretch;
    if (!s || s.pageId !== pageId || (live && s.live && at - s.lastSeen > DWELL_GAP_MS)) {
      this.closeStretch();
      this.stretch = { pageId, since: at, lastSeen: at, live };
    } else {
      s.lastSeen = at;
      s.live = s.live || live;
    }
    this.currentPage = pageId;
    if (live && d.homography && d.frameSize) this.aim(pageId, at, d.homography, d.frameSize);
  }

  closeStretch() {
    const s = this.stretch;
    if (!s) return;
    this.dwell.set(s.pageId, (this.dwell.get(s.pageId) || 0) + (s.lastSeen - s.since));
    this.stretch = null;
  }

  aim(pageId, at, H, size) {
    if (at - (this.lastAim.get(pageId) ?? -Infinity) < AIM_EVERY_MS) return;
    const page = publishedId(pageId), dims = this.pages.get(pageId);
    if (!page || !dims) return;
    this.lastAim.set(pageId, at);
    const p = frameCentreOnPage(H, size.width, size.height);
    // only a centre on the paper is a place a reader aimed at (the server drops others as "outside_page")
    if (!p || !(p[0] >= 0 && p[1] >= 0 && p[0] <= dims.widthMm && p[1] <= dims.heightMm)) return;
    this.add({ type: "aim", t: at, page, x_mm: Math.round(p[0] * 10) / 10, y_mm: Math.round(p[1] * 10) / 10 });
  }

  // The reader left the camera (or the page) before any page was recognized: once per session.
  giveUp(at) {
    if (this.gaveUp || this.cameraStartedAt === null || this.recognizedPages.size) return;
    this.gaveUp = true;
    this.add({ type: "recognition_given_up", t: at, ms: Math.min(DWELL_MAX_MS, Math.round(at - this.cameraStartedAt)) });
  }

  // Tracked time not yet reported becomes dwell events (the stretch in progress is cut at its last frame).
  reportDwell(now) {
    const s = this.stretch;
    if (s) {
      this.dwell.set(s.pageId, (this.dwell.get(s.pageId) || 0) + (s.lastSeen - s.since));
      s.since = s.lastSeen;
    }
    for (const [pageId, ms] of this.dwell) {
      const page = publishedId(pageId);
      const whole = Math.min(DWELL_MAX_MS, Math.round(ms));
      if (page && whole >= 1) this.add({ type: "dwell", t: now, page, ms: whole });
    }
    this.dwell.clear();
  }

  // ---------- sending ----------
  // Unsent events in groups of one page load each: the groups kept from earlier page loads (`older`, oldest first,
  // each under a fresh random session id made now, in memory: the stored copy has none) and this page load's queue.
  pending() {
    return this.older.reduce((n, g) => n + g.events.length, 0) + this.queue.length;
  }

  nextGroup() {
    while (this.older.length && !this.older[0].events.length) this.older.shift();
    return this.older[0] || { session: this.session, entry: this.entry, events: this.queue };
  }

  // The next batch off the front of `group`: at most BATCH_MAX_EVENTS events and BATCH_MAX_BYTES of body.
  takeBatch(group = this.nextGroup()) {
    let n = Math.min(BATCH_MAX_EVENTS, group.events.length);
    let body;
    for (;;) {
      body = JSON.stringify({ v: 1, session: group.session, entry: group.entry, events: group.events.slice(0, n) });
      if (body.length <= BATCH_MAX_BYTES || n === 1) break;
      n = Math.max(1, Math.floor(n / 2));
    }
    return { events: group.events.splice(0, n), body };
  }

  putBack(group, events) {
    group.events.unshift(...events);
    if (group.events === this.queue && this.queue.length > QUEUE_MAX) {
      this.dropped += this.queue.length - QUEUE_MAX;
      this.queue.splice(0, this.queue.length - QUEUE_MAX);
    }
  }

  // Keep what is unsent on the device (offline, told to wait, or leaving without a network) so a reload or a later
  // visit sends it; bounded, the oldest events dropped (and counted) first.
  persist() {
    if (!this.store) return;
    const groups = () => [...this.older, { entry: this.entry, events: this.queue }].filter((g) => g.events.length);
    const dropOldest = (n) => {
      for (const g of groups()) {
        const k = Math.min(n, g.events.length);
        g.events.splice(0, k);
        this.dropped += k;
        n -= k;
        if (!n) break;
      }
    };
    const excess = this.pending() - PERSIST_MAX_EVENTS;
    if (excess > 0) dropOldest(excess);
    let json = PendingStore.serialize(groups());
    while (json.length > PERSIST_MAX_BYTES && this.pending()) {
      dropOldest(Math.max(1, Math.ceil(this.pending() / 10)));
      json = PendingStore.serialize(groups());
    }
    this.store.save(this.pending() ? json : null);
  }

  // After a send: the stored copy follows what is left (nothing stored when nothing is left).
  sync() {
    if (!this.store || !this.store.saved) return;
    if (this.pending()) this.persist();
    else this.store.save(null);
  }

  // hiding: the page is being hidden or left (beacon, no answer awaited). Returns a promise settled when the fetch is.
  flush({ hiding = false } = {}) {
    const now = Date.now();
    if (hiding) this.giveUp(now);
    this.reportDwell(now);
    if (!this.pending()) { this.sync(); return Promise.resolve(); }
    if (now < this.quietUntil || navigator.onLine === false) { this.persist(); return Promise.resolve(); }
    if (hiding) {
      while (this.pending()) {
        const { events, body } = this.takeBatch();
        const queued = navigator.sendBeacon && navigator.sendBeacon(this.url, body);
        if (!queued) {
          fetch(this.url, { method: "POST", body, keepalive: true, credentials: "omit",
                            headers: { "Content-Type": "text/plain;charset=UTF-8" } }).catch(() => {});
        }
        this.sent += events.length;
      }
      this.sync();
      return Promise.resolve();
    }
    if (this.inflight) return this.inflight;
    const group = this.nextGroup();
    const { events, body } = this.takeBatch(group);
    this.inflight = fetch(this.url, { method: "POST", body, keepalive: true, credentials: "omit",
                                      headers: { "Content-Type": "text/plain;charset=UTF-8" } })
      .then((res) => {
        if (res.status === 429) {
          const s = Number(res.headers.get("Retry-After"));
          const wait = Number.isFinite(s) && s > 0 ? Math.min(s, RETRY_AFTER_MAX_S) : RETRY_AFTER_DEFAULT_S;
          this.quietUntil = Date.now() + 1000 * wait;
          this.putBack(group, events);
          this.persist();
          return false;
        }
        if (res.status >= 500) { this.putBack(group, events); this.persist(); return false; }
        this.sent += events.length;  // 2xx; another 4xx is a batch the server will never take: not retried
        this.sync();
        return true;
      }, () => { this.putBack(group, events); this.persist(); return false; })  // network down: kept, original times
      .then((ok) => {
        this.inflight = null;
        if (ok && this.pending()) return this.flush();  // more than one batch was waiting
        return undefined;
      });
    return this.inflight;
  }
}

// ---------- unsent events kept on the device (localStorage) ----------
// One key per page load holding its unsent groups: {v: 1, groups: [{entry, events}]}. No session id is stored (the
// reader notice: "a random session id lives only in memory"); the key's suffix is random per page load and only
// lets two open viewers keep their own copies. A later page load takes every key (and removes it) at its start.
export const PENDING_PREFIX = "baonhung.analytics.pending.";

export class PendingStore {
  constructor(storage = globalThis.localStorage) {
    this.storage = storage;
    this.key = PENDING_PREFIX + randomSession();
    this.saved = false;  // the storage holds a copy of this page load's unsent events
  }

  static serialize(groups) {
    return JSON.stringify({ v: 1, groups: groups.map((g) => ({ entry: g.entry, events: g.events })) });
  }

  // Every group kept by earlier page loads (their keys removed), oldest first; events past the server's age limit
  // (or not in the shape this viewer sends) are left out and counted in `dropped`.
  takeAll(now) {
    const groups = [];
    let dropped = 0;
    const keys = [];
    try {
      for (let i = 0; i < this.storage.length; i++) {
        const k = this.storage.key(i);
        if (k && k.startsWith(PENDING_PREFIX) && k !== this.key) keys.push(k);
      }
      for (const k of keys) {
        const raw = this.storage.getItem(k);
        this.storage.removeItem(k);
        let doc = null;
        try { doc = JSON.parse(raw); } catch { doc = null; }
        for (const g of (doc && doc.v === 1 && Array.isArray(doc.groups) ? doc.groups : [])) {
          if (!g || !ENTRIES.includes(g.entry) || !Array.isArray(g.events)) continue;
          const events = g.events.filter((e) => e && typeof e.type === "string" && Number.isInteger(e.t)
                                                && e.t >= now - MAX_AGE_MS);
          dropped += g.events.length - events.length;
          if (events.length) groups.push({ entry: g.entry, events });
        }
      }
    } catch {
      return { groups, dropped };  // storage refused (private mode, disabled): what was read is kept
    }
    groups.sort((a, b) => a.events[0].t - b.events[0].t);
    return { groups, dropped };
  }

  save(json) {
    try {
      if (json === null) {
        if (this.saved) this.storage.removeItem(this.key);
        this.saved = false;
      } else {
        this.storage.setItem(this.key, json);
        this.saved = true;
      }
    } catch {
      // storage full or refused: the events stay in memory (sent while this page lives)
    }
  }

  // The reader opted out (DNT / GPC): nothing kept from before either.
  static removeAll(storage = globalThis.localStorage) {
    try {
      const keys = [];
      for (let i = 0; i < storage.length; i++) {
        const k = storage.key(i);
        if (k && k.startsWith(PENDING_PREFIX)) keys.push(k);
      }
      keys.forEach((k) => storage.removeItem(k));
    } catch {
      // no storage: nothing kept
    }
  }
}

// ---------- the "Useful?" control on an overlay just tapped ----------
function reactionControl(reporter, ui) {
  const box = document.getElementById("reaction");
  if (!box) return;
  const ask = document.getElementById("reaction-ask");
  let target = null, timer = null;
  const hide = () => { box.hidden = true; target = null; };
  reporter.onActivated = (pageId, overlayId) => {
    if (!publishedId(pageId) || !publishedId(overlayId)) return;
    target = { pageId, overlayId };
    ask.dataset.i18n = "reaction.ask";
    ask.textContent = ui.t("reaction.ask");
    box.querySelectorAll("button").forEach((b) => { b.hidden = false; });
    box.hidden = false;
    clearTimeout(timer);
    timer = setTimeout(hide, REACTION_SHOW_MS);
  };
  box.querySelectorAll("button").forEach((b) => b.addEventListener("click", () => {
    if (!target) return;
    reporter.reaction(target.pageId, target.overlayId, b.dataset.value);
    target = null;
    ask.dataset.i18n = "reaction.thanks";
    ask.textContent = ui.t("reaction.thanks");
    box.querySelectorAll("button").forEach((x) => { x.hidden = true; });
    clearTimeout(timer);
    timer = setTimeout(hide, 1500);
  }));
}

// Starts reporting (unless the reader opted out). Returns a small handle for tests and debugging:
// {active, queued(), sent(), dropped(), flush()}.
export function startAnalytics({ config, ui, offlineAtOpen = false }) {
  if (readerOptedOut()) {
    PendingStore.removeAll();  // nothing sent, nothing kept: not even events kept before the reader opted out
    return { active: false, queued: () => 0, sent: () => 0, dropped: () => 0, flush: () => Promise.resolve() };
  }
  const entry = offlineAtOpen ? "offline" : (config.code ? "qr" : "archive");
  const reporter = new Reporter({ config, entry, openedAt: performance.timeOrigin, store: new PendingStore() });
  replayAndListen(LISTENED, (name, detail) => reporter.handle(name, detail));
  reactionControl(reporter, ui);
  setInterval(() => reporter.flush(), FLUSH_EVERY_MS);
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "hidden") {
      reporter.closeStretch();
      reporter.flush({ hiding: true });
    }
  });
  window.addEventListener("pagehide", () => reporter.flush({ hiding: true }));
  window.addEventListener("online", () => reporter.flush());
  if (document.visibilityState === "hidden") {  // loaded because the reader is leaving (main.js): report at once
    reporter.closeStretch();
    reporter.flush({ hiding: true });
  } else if (reporter.older.length) {
    reporter.flush();  // events kept by an earlier page load: sent now, not in FLUSH_EVERY_MS
  }
  return {
    active: true,
    queued: () => reporter.pending(),
    sent: () => reporter.sent,
    dropped: () => reporter.dropped,
    flush: () => reporter.flush(),
  };
}
