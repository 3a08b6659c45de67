// Recognition client: sends a camera frame (JPEG) to POST /api/v1/recognize a few times a second until a page
// matches. The server answers {"match": {page_id, edition_id, corners, homography (page mm -> photo px),
// manifest_url}} or {"match": null}. Coordinates come back in the pixels of the JPEG we sent.

import { emit } from "./events.js";

const MIN_INTERVAL_MS = 250; // ≤4 requests/s: enough to catch the page within ~0.3 s, light on the server
const TIMEOUT_MS = 5000;
// While nothing is recognized, every TILTED_EVERY-th frame also asks for the tilted look (tilted=1: the photo
// un-tilted in four directions, for a page held at 40-60°; about twice a quick request's time on the server when
// nothing is found), so a reader who keeps the phone steep is found within a few seconds without every frame paying
// for it. Not within TILTED_QUIET_MS of a match: a page just followed and lost is found again by quick requests.
// (Every 4th frame, 2 s after a match: the moving-clip browser test, server and browser on one slowed 2-core
// machine, fell to overlays on 52-78 % of its page frames instead of >= 80 %.)
export const TILTED_EVERY = 8;
export const TILTED_QUIET_MS = 5000;

export class RecognitionClient {
  constructor(url, scope) {
    this.url = url;
    this.scope = scope || null;
    this.pending = false;
    this.lastSentAt = -Infinity;
    this.offline = false;
    this.misses = 0; // requests since the last match (a refused or failed request counts too)
    this.lastMatchAt = -Infinity;
    this.quietUntil = -Infinity; // a 429's Retry-After: no request before then
    // This page load, for the server's per-viewer rate limit (readers behind one address share its limit): random,
    // new on every load, never stored.
    const bytes = crypto.getRandomValues(new Uint8Array(12));
    this.session = btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_");
  }

  ready(now) {
    return !this.pending && now - this.lastSentAt >= MIN_INTERVAL_MS && performance.now() >= this.quietUntil;
  }

  // blob: JPEG; frameSize: {width, height}; now: the frame's time (ms); tilted: ask for the tilted look (default: every
  // TILTED_EVERY-th frame without a match, TILTED_QUIET_MS after one). Returns the normalized match or null. Emits
  // recognition:match.
  async recognize(blob, frameSize, now = performance.now(), { tilted = null } = {}) {
    this.pending = true;
    this.lastSentAt = now;
    const ctrl = new AbortController();
    const timer = setTimeout(() => ctrl.abort(), TIMEOUT_MS);
    try {
      const query = new URLSearchParams();
      if (this.scope) query.set("scope", this.scope);
      const due = this.misses % TILTED_EVERY === TILTED_EVERY - 1 && now - this.lastMatchAt >= TILTED_QUIET_MS;
      if (tilted ?? due) query.set("tilted", "1");
      this.misses += 1; // until the answer is a match
      const url = query.toString() ? `${this.url}?${query}` : this.url;
      const res = await fetch(url, {
        method: "POST", body: blob, headers: { "Content-Type": "image/jpeg", "X-Viewer-Session": this.session },
        signal: ctrl.signal,
      });
      this.offline = false;
      if (res.status === 429) {
        const wait = Number(res.headers.get("Retry-After"));
        this.quietUntil = performance.now() + 1000 * (Number.isFinite(wait) && wait > 0 ? Math.min(wait, 60) : 5);
      }
      if (!res.ok) return null;
      const body = await res.json();
      if (!body || !body.match) return null;
      this.misses = 0;
      this.lastMatchAt = now;
      const m = body.match;
      const match = {
        pageId: String(m.page_id),
        editionId: m.edition_id != null ? String(m.edition_id) : null,
        manifestUrl: m.manifest_url || `/pub/pages/${m.page_id}/manifest.json`,
        homography: m.homography.flat ? m.homography.flat() : m.homography,
        corners: m.corners,
        frameSize,
      };
      emit("recognition:match", match);
      return match;
    } catch (err) {
      this.offline = true; // network down (or timeout): main falls back to markers already on this device
      return null;
    } finally {
      clearTimeout(timer);
      this.pending = false;
    }
  }
}
