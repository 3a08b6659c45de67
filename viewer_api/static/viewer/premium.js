// Premium overlays in the viewer (issue 27; docs/PREMIUM.md). Imported by main.js only for a page whose manifest
// has a premium part, after its free bundle is on the page.
//
//   locked   : each premium overlay shows its teaser (a node of the free bundle carrying the overlay's id) and a
//              lock badge anchored on it, a DOM button moved every frame to the teaser's projected centre; a tap on
//              it (or on the teaser) opens the reader sheet (reader_sheet.js) over the running camera view.
//   entitled : the page's premium part (GET premium.url: a GLB pair and media, every URL signed for this session
//              and short-lived) is parsed by the renderer's own loader and hung on the same page root; the teasers
//              are hidden and the premium media bound like the free ones. The URLs are renewed at RENEW_AT of their
//              life and when a media element fails (its position kept).
//   sign-out : the part is taken off (media emptied, GPU resources released), the teasers and locks come back,
//              and the service worker and CacheStorage forget anything under /pub/p/ and /api/v1/reader/.
//
// Bus events (readership, issue 26): premium:teaser_shown {overlay_id} (once per overlay per visit, when its teaser
// is first on screen), premium:lock_tap {overlay_id}, premium:redeemed {}.
//
// State for tests and debugging: window.__baonhung.premium = {state, reader, entitled, overlays, badges, shown,
// part: {expiresAt, bundleBytes, renewals, recoveries}, metrics: {askedAt, partAt, bytesAt, attachedAt, playingAt} (performance.now()
// ms: part asked for, answered, its bundle's bytes in, attached, its first media playing), error}.

import { emit } from "./events.js";
import { pickBundle } from "./manifest.js";
import { ReaderApi, ReaderSheet } from "./reader_sheet.js";

// Signed URLs live premium_url_ttl_s (30-600 s, 300 by default): renewed at 80 % of their life, leaving a
// phone's round trip (~1 s) and a retry well inside it even at the shortest TTL (24 s of 30).
const RENEW_AT = 0.8;
const RENEW_MIN_MS = 5000;        // never renew more often than this (a clock far off the server's)
const RENEW_RETRY_MS = 15000;     // a renewal that could not reach the server is tried again after this
const FRESH_MS = 1000;            // a media error within this of the last part: its URLs are retried as they are
const MEDIA_RETRIES = 3;          // a media element failing again and again (not an expiry): given up after this
// A subscriber's part bundle is fetched while the free bundle downloads only when it is this small (a video's quad
// and poster are tens of KB); a bigger one (a 3D model) waits for the free bundle, which the first overlay needs.
const PREFETCH_MAX_BYTES = 256 * 1024;
const PURGE_TIMEOUT_MS = 2000;    // the service worker's answer to a purge is awaited this long
export const PRIVATE_PATHS = ["/pub/p/", "/api/v1/reader/"];  // never cached (sw.js), purged at sign-out

// Delete every CacheStorage entry under PRIVATE_PATHS (the page can reach the worker's caches itself).
export async function purgeCaches() {
  if (!window.caches) return 0;
  let removed = 0;
  for (const name of await caches.keys()) {
    const cache = await caches.open(name);
    for (const req of await cache.keys()) {
      if (PRIVATE_PATHS.some((p) => new URL(req.url).pathname.startsWith(p)) && await cache.delete(req)) removed++;
    }
  }
  return removed;
}

// Ask the service worker(s) to purge too (sw.js "purge-private"); resolves when they answered or after a timeout.
function purgeServiceWorker() {
  if (!("serviceWorker" in navigator)) return Promise.resolve();
  return navigator.serviceWorker.getRegistrations().then((regs) => Promise.all(regs.flatMap((r) => [r.active, r.waiting, r.installing])
    .filter(Boolean).map((worker) => new Promise((resolve) => {
      const channel = new MessageChannel();
      const timer = setTimeout(resolve, PURGE_TIMEOUT_MS);
      channel.port1.onmessage = () => { clearTimeout(timer); resolve(); };
      worker.postMessage({ type: "purge-private" }, [channel.port2]);
    })))).catch(() => {});
}

const BADGE_MARGIN_PX = 8;  // a lock badge keeps this far from the screen's edges
// The badge's padlock: an inline SVG (nothing fetched, no icon font)
function padlock() {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 16 16");
  svg.setAttribute("aria-hidden", "true");
  const shackle = document.createElementNS(ns, "path");
  shackle.setAttribute("d", "M4.5 7V5a3.5 3.5 0 0 1 7 0v2");
  shackle.setAttribute("fill", "none");
  shackle.setAttribute("stroke", "currentColor");
  shackle.setAttribute("stroke-width", "1.8");
  const body = document.createElementNS(ns, "rect");
  for (const [k, v] of Object.entries({ x: "2.5", y: "7", width: "11", height: "8", rx: "1.5", fill: "#e8572e" })) body.setAttribute(k, v);
  svg.append(shackle, body);
  return svg;
}

// The bytes of a part's bundle (never kept by the HTTP cache: no-store, and the server says so too).
async function fetchBytes(url) {
  const res = await fetch(url, { credentials: "same-origin", cache: "no-store" });
  if (!res.ok) throw new Error(`part bundle: HTTP ${res.status}`);
  return res.arrayBuffer();
}

// When a part's URLs expire, in ms since the epoch on this device's clock: from expires_in (seconds, immune to a
// phone's clock being off), else expires_at (unix seconds or an ISO time); null when the document says neither.
function expiryMs(doc, receivedAt) {
  if (typeof doc.expires_in === "number") return receivedAt + doc.expires_in * 1000;
  const value = doc.expires_at;
  if (typeof value === "number") return value * 1000;
  if (typeof value === "string") { const t = Date.parse(value); return Number.isNaN(t) ? null : t; }
  return null;
}

export class PremiumViewer {
  // renderer: PageRenderer; ui: ViewerUI; bind(overlay, resolve) -> controller (media.js attachOverlay with the
  // page's media context); state: the object exposed as window.__baonhung.premium
  constructor({ renderer, ui, bind, state }) {
    this.renderer = renderer;
    this.ui = ui;
    this.bind = bind;
    this.S = Object.assign(state, { state: "none", reader: null, entitled: false, overlays: [], badges: [], shown: [],
                                    part: null, metrics: { askedAt: null, partAt: null, bytesAt: null, attachedAt: null,
                                                             playingAt: null },
                                    error: null });
    this.api = new ReaderApi(() => ui.lang);
    this.page = null;
    this.part = null;         // the renderer's part (loadPart) of this page, when entitled
    this.doc = null;          // the part document last received (its signed URLs)
    this.docAt = 0;
    this.timer = null;
    this.loading = null;
    this.early = null;        // {info, answers: Promise<[me, part]>, bundle: Promise<bytes | null>} asked for
                              // while the free bundle downloads
    this.shown = new Set();   // overlay ids whose teaser_shown was emitted (this visit)
    this.badges = new Map();  // overlay id -> button
    this.layer = document.getElementById("locks");
    this.sheet = new ReaderSheet(ui, {
      signIn: (email, password, mode) => this.signIn(email, password, mode),
      forgot: (email) => this.api.resetPassword(email),
      redeem: (code) => this.redeem(code),
      signOut: () => this.signOut(),
    });
    this.onChange = () => {};  // main.js: the overlays changed (a still view re-measures them)
    this.account = document.getElementById("reader-open");
    this.account.addEventListener("click", () => this.sheet.open());
  }

  // A page with a premium part is being loaded (its manifest is in, its free bundle downloading): ask who the reader is
  // and for the part now, both at once, so a subscriber's part is known when the free bundle is on the paper.
  prepare(info) {
    if (!info.premium) return;
    this.S.metrics.askedAt = performance.now();
    const asked = this.api.part(info.premium.url);
    const answers = Promise.all([this.api.me(), asked]);
    const bundle = asked.then((part) => {
      if (!part.ok) return null;
      this.S.metrics.partAt = performance.now();
      const chosen = pickBundle(part.data.bundles, location.href);
      return chosen.bytes && chosen.bytes <= PREFETCH_MAX_BYTES ? fetchBytes(chosen.url) : null;
    });
    answers.catch(() => {});
    bundle.catch(() => {});
    this.early = { info, answers, bundle };
  }

  // A page was put on the paper (info: PageInfo of manifest.js, with .premium) or none has premium (null).
  setPage(info) {
    this.forgetPart();        // the renderer dropped the old page's part with its bundle (clear)
    this.page = info && info.premium ? info : null;
    for (const b of this.badges.values()) b.remove();
    this.badges.clear();
    this.S.overlays = this.page ? this.page.premium.overlays.slice() : [];
    this.account.hidden = !this.page && !(this.S.reader && this.S.reader.signed_in);
    if (!this.page) { this.S.state = "none"; return; }
    for (const id of this.S.overlays) this.badges.set(id, this.makeBadge(id));
    this.S.state = "checking";
    this.refresh();
  }

  makeBadge(id) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "lock-badge";
    b.dataset.overlayId = id;
    b.hidden = true;
    b.appendChild(padlock());
    const label = document.createElement("span");
    label.dataset.i18n = "premium.lock";
    label.textContent = this.ui.t("premium.lock");
    b.appendChild(label);
    b.addEventListener("click", (e) => { e.stopPropagation(); this.lockTap(id); });
    this.layer.appendChild(b);
    return b;
  }

  lockTap(id) {
    emit("premium:lock_tap", { overlay_id: id });
    this.sheet.open();
  }

  // A tap on the canvas hit an overlay: a locked teaser opens the sheet (true: the tap is taken).
  onOverlayTap(hit) {
    if (!this.page || this.part || hit.premium || !this.S.overlays.includes(hit.id)) return false;
    this.lockTap(hit.id);
    return true;
  }

  // Every drawn frame: overlays = renderer.overlayCorners() (canvas px), or null when the page is not in view.
  onFrame(overlays) {
    if (!this.badges.size) return;
    const locked = !this.part;
    const canvas = this.renderer.canvas;
    const rect = canvas.getBoundingClientRect();
    const sx = rect.width / this.renderer.width, sy = rect.height / this.renderer.height;
    const badges = [];
    for (const [id, b] of this.badges) {
      const ov = locked && overlays ? overlays.find((o) => o.id === id && !o.premium && o.corners) : null;
      let visible = false, x = 0, y = 0;
      if (ov) {
        x = rect.left + sx * ov.corners.reduce((a, c) => a + c[0], 0) / ov.corners.length;
        y = rect.top + sy * ov.corners.reduce((a, c) => a + c[1], 0) / ov.corners.length;
        visible = x >= 0 && y >= 0 && x <= window.innerWidth && y <= window.innerHeight;
      }
      if (visible) {
        // centred on the teaser, but kept whole on the screen (a teaser near an edge would cut its label in half;
        // seen at 390 px); a hidden badge measures 0 and is clamped from its next frame on
        const hw = b.offsetWidth / 2 + BADGE_MARGIN_PX, hh = b.offsetHeight / 2 + BADGE_MARGIN_PX;
        const cx = Math.min(Math.max(x, hw), Math.max(hw, window.innerWidth - hw));
        const cy = Math.min(Math.max(y, hh), Math.max(hh, window.innerHeight - hh));
        b.style.transform = `translate(${Math.round(cx)}px, ${Math.round(cy)}px) translate(-50%, -50%)`;
      }
      if (b.hidden === visible) b.hidden = !visible;
      if (visible && !this.shown.has(id)) {
        this.shown.add(id);
        this.S.shown = [...this.shown];
        emit("premium:teaser_shown", { overlay_id: id });
      }
      badges.push({ id, visible, x, y });
    }
    this.S.badges = badges;
  }

  // ---------- the reader and the part ----------
  async refresh() {
    const page = this.page;
    const early = this.early && this.early.info === page ? this.early : null;
    this.early = null;
    let me, part = null;
    try {
      [me, part] = early ? await early.answers : [await this.api.me(), null];
    } catch (err) {
      this.S.state = "locked";
      this.S.error = String(err);
      return;
    }
    if (page !== this.page) return;
    this.setReader(me.ok ? me.data : { signed_in: false });
    // signed in, or the part answered anyway: a publication may make its premium overlays free for everyone some
    // days after the edition's date (the part then comes with URLs bound to no session, "free": true)
    if (this.S.reader.signed_in || (part && part.ok)) await this.loadPart(part, early && early.bundle.catch(() => null));
    else this.S.state = "locked";
  }

  setReader(reader) {
    this.S.reader = reader && reader.signed_in ? { signed_in: true, email: reader.email || null,
                                                   entitlements: reader.entitlements || [] } : { signed_in: false };
    this.account.hidden = !this.page && !this.S.reader.signed_in;
    this.account.dataset.signedIn = String(this.S.reader.signed_in);
    this.sheet.update(this.S.reader, !!this.part);
  }

  // GET the part (or take the answer already in: `answered`, with its bundle's bytes maybe on their way:
  // `prefetched`); entitled: load and attach it. Resolves the API's answer (the sheet shows its message).
  loadPart(answered = null, prefetched = null) {
    if (this.loading) return this.loading;
    this.loading = this._loadPart(answered, prefetched).finally(() => { this.loading = null; });
    return this.loading;
  }

  async _loadPart(answered, prefetched) {
    const page = this.page;
    if (!page || this.part) return { ok: true };
    this.S.state = "loading";
    const answer = answered || await this.api.part(page.premium.url);
    if (page !== this.page) return answer;
    if (answer.status === 401) this.setReader({ signed_in: false });
    if (!answer.ok) {
      this.S.state = "locked";
      this.S.error = answer.error;
      this.sheet.update(this.S.reader, false);
      return answer;
    }
    if (!answered) this.S.metrics.partAt = performance.now();
    this.takeDocument(answer.data);
    let bytes;
    try {
      bytes = (prefetched && await prefetched) || await fetchBytes(pickBundle(answer.data.bundles, location.href).url);
    } catch (err) {
      this.S.state = "locked";
      this.S.error = String(err);
      return { ok: false, status: 0, message: null };
    }
    if (page !== this.page || this.part) return answer;
    this.S.metrics.bytesAt = performance.now();
    const part = await this.renderer.loadPart(bytes);
    if (page !== this.page || this.part) { this.renderer.removePart(part); return answer; }
    this.part = part;
    this.renderer.attachControllers((o) => this.bind(o, (src) => this.resolve(src, o)), part.overlays);
    for (const o of part.overlays) if (o.controller && o.controller.element) this.watchMedia(o);
    this.renderer.setHidden(this.S.overlays, true);
    this.S.metrics.attachedAt = performance.now();
    this.S.entitled = true;
    this.S.state = "entitled";
    this.S.error = null;
    this.onFrame(null);
    this.sheet.update(this.S.reader, true);
    this.onChange();
    return answer;
  }

  takeDocument(doc) {
    this.doc = doc;
    this.docAt = Date.now();
    const exp = expiryMs(doc, this.docAt);
    this.S.part = { expiresAt: exp, bundleBytes: pickBundle(doc.bundles, location.href).bytes,
                    renewals: this.S.part ? this.S.part.renewals : 0, recoveries: this.S.part ? this.S.part.recoveries : 0 };
    clearTimeout(this.timer);
    if (exp !== null) this.timer = setTimeout(() => this.renew(), Math.max(RENEW_MIN_MS, RENEW_AT * (exp - Date.now())));
  }

  // The signed URL of a media file of the part, from the document last received.
  resolve(src, overlay) {
    const media = (this.doc && this.doc.media) || [];
    const hit = media.find((m) => m.name === src || (m.sha256 && src && src.includes(m.sha256)))
      || media.find((m) => String(m.overlay_id) === overlay.id);
    return hit ? new URL(hit.url, location.href).href : null;
  }

  // New signed URLs for the same part (the GLB already on the page is kept). Signed out or no longer entitled
  // (revoked, expired): the part is taken off and the locks come back.
  async renew() {
    const page = this.page;
    if (!page || !this.part) return false;
    let answer;
    try {
      answer = await this.api.part(page.premium.url);
    } catch (err) {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.renew(), RENEW_RETRY_MS);
      return false;
    }
    if (page !== this.page || !this.part) return false;
    if (answer.ok) {
      this.takeDocument(answer.data);
      this.S.part.renewals++;
      return true;
    }
    if (answer.status === 401 || answer.status === 403 || answer.status === 404) {
      if (answer.status === 401) this.setReader({ signed_in: false });
      this.dropPart();
    }
    return false;
  }

  // A premium media element that fails (most likely its signed URL expired mid-stream) gets a fresh URL and goes on
  // from where it was.
  watchMedia(o) {
    const el = o.controller.element;
    let failures = 0;
    el.addEventListener("playing", () => {
      failures = 0;
      if (this.S.metrics.playingAt === null) this.S.metrics.playingAt = performance.now();
    });
    el.addEventListener("error", async () => {
      if (!el.getAttribute("src") || !this.part || !this.part.overlays.includes(o) || ++failures > MEDIA_RETRIES) return;
      const at = el.currentTime, resume = !el.paused || this.renderer.visible;
      if (Date.now() - this.docAt > FRESH_MS && !(await this.renew())) return;
      const url = this.resolve(o.spec.src, o);
      if (!url || !this.part || !this.part.overlays.includes(o)) return;
      el.addEventListener("loadedmetadata", () => {
        el.currentTime = at;
        if (resume && this.renderer.visible) el.play().catch(() => {});
      }, { once: true });
      el.src = url;
      this.S.part.recoveries++;
    });
  }

  // Take the part off the page and bring the teasers and locks back.
  dropPart() {
    const part = this.part;
    this.forgetPart();
    if (part) this.renderer.removePart(part);
    this.renderer.setHidden(this.S.overlays, false);
    this.S.state = this.page ? "locked" : "none";
    this.sheet.update(this.S.reader, false);
    this.onChange();
  }

  forgetPart() {
    clearTimeout(this.timer);
    this.timer = null;
    this.part = null;
    this.doc = null;
    this.S.entitled = false;
    this.S.part = null;
  }

  // ---------- the sheet's actions ----------
  async signIn(email, password, mode) {
    const answer = mode === "signup" ? await this.api.signup(email, password) : await this.api.signin(email, password);
    if (!answer.ok) return answer;
    this.setReader(answer.data);
    const part = this.page ? await this.loadPart() : { ok: true };
    if (part.ok) this.sheet.close();
    else if (part.status !== 403) return part;  // 403: signed in, not entitled: the sheet offers to redeem a code
    return { ok: true };
  }

  async redeem(code) {
    const answer = await this.api.redeem(code);
    if (!answer.ok) return answer;
    emit("premium:redeemed", {});
    this.sheet.notice("premium.redeemed");
    const me = await this.api.me();
    if (me.ok) this.setReader(me.data);
    const part = this.page ? await this.loadPart() : { ok: true };
    if (!part.ok) return part;
    this.sheet.close();
    return { ok: true };
  }

  async signOut() {
    let answer = null;
    try {
      answer = await this.api.signout();
    } catch (err) {
      answer = { ok: false, message: this.ui.t("reader.error.network") };
    }
    // whatever the server said, nothing premium stays on this device
    this.dropPart();
    this.setReader({ signed_in: false });
    await Promise.all([purgeServiceWorker(), purgeCaches().catch(() => 0)]);
    this.S.state = this.page ? "locked" : "none";
    this.sheet.notice(answer.ok ? "premium.signed_out" : null);
    return answer;
  }
}
