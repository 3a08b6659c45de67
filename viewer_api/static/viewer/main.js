// Wiring of the viewer's stages. Stages talk through renderer-neutral events (events.js); this module owns the
// frame loop and the reader's path: start -> camera -> recognition (server) -> page load (manifest, bundle, marker)
// -> tracking (every frame) -> pose -> renderer; and the fallbacks (no camera: pick a page / upload a photo).
//
// State for tests and debugging: window.__baonhung = {state, pageId, editionId, corners, overlaysVisible,
// overlays: [{id, kind, corners}], media: [...], frames: [...per processed frame...], metrics: {...}}.

import { emit, on } from "./events.js";
import { Camera, PROCESS_LONG_SIDE, toGrey } from "./camera.js";
import { RecognitionClient } from "./recognition.js";
import { PageTracker, pageCorners } from "./tracker.js";
import { PoseEstimator, projectionFromIntrinsics } from "./pose.js";
import { PageRenderer } from "./renderer.js";
import { attachOverlay, closePanorama } from "./media.js";
import { ViewerUI } from "./ui.js";
import { loadPageManifest, loadEditionManifest, loadMarker, resolveMedia } from "./manifest.js";

const LOST_HIDE_MS = 350;        // overlays stay this long after the page is lost (a blur or a hand passing by)
const REDETECT_EVERY_LOST = 3;   // while lost, ORB re-detection on every 3rd frame (keeps the camera preview fluid)
const FRAME_LOG = 3000;          // frames kept in __baonhung.frames (100 s at 30 fps)
const OPENCV_POLL_MS = 50;
const PHOTO_LONG_SIDE = 1280;    // uploaded photos are recognized at this size (enough detail, quick upload)
const params = new URLSearchParams(location.search);  // debug, nosw, autostart, process=<px>, slowms=<ms>
const DEBUG = params.has("debug");
const KNOWN_PAGES_KEY = "baonhung.knownPages";
// Slow devices (phones are 3-5x slower than a 2-core laptop): when a processed frame costs more than
// SLOW_FRAME_MS (median over SLOW_CHECK_FRAMES tracked frames), process at SLOW_LONG_SIDE px instead of 640:
// ~0.56x the pixels for LK, ORB and the frame read-back, still ≈1 px of registration at phone screen scale.
const SLOW_FRAME_MS = Number(params.get("slowms") ?? 24);
const SLOW_CHECK_FRAMES = 45;
const SLOW_LONG_SIDE = 480;

const config = JSON.parse(document.getElementById("viewer-config").textContent);
const ui = new ViewerUI();
const camera = new Camera(document.getElementById("camera"), Number(params.get("process")) || PROCESS_LONG_SIDE);
const renderer = new PageRenderer(document.getElementById("gl"), { dracoPath: config.dracoPath });
const recognition = new RecognitionClient(config.recognizeUrl, config.scope);

const S = {
  state: "idle", pageId: null, editionId: config.editionId, corners: null, overlaysVisible: false,
  overlays: [], frames: [], focal: null, error: null, cvReady: false, bundleLoaded: false,
  debug: {},  // live objects for debugging and benchmarks (tracker, renderer); tests read the plain fields above
  metrics: { tapAt: null, firstFrameAt: null, firstMatchAt: null, firstOverlayAt: null, trackMs: [], redetectMs: [],
             recognizeMs: [], frameTimes: [], bundleBytes: 0 },
};
// media state is read live from the overlay controllers (current time, paused, muted)
Object.defineProperty(S, "media", {
  enumerable: true,
  get: () => renderer.overlays.map((o) => (o.controller ? o.controller.state() : { id: o.id, kind: o.kind })),
});
S.debug.renderer = renderer;
window.__baonhung = S;

let cv = null;
let tracker = null, pose = null;
let page = null;                 // PageInfo of the page being shown
let pageLoad = null;             // promise of the page being loaded
let loadingPageId = null;
let lostSince = null, lostFrames = 0, frameIndex = 0, redetectsSeen = 0;
let grey = null;                 // Uint8Array, grey copy of the current frame
let frameSize = null;
let unmuteOffered = false;
let marker = null;               // browser marker of `page` (for re-detection), kept to re-arm a new tracker
const trackedFrameMs = [];

function setState(s) {
  S.state = s;
  document.body.dataset.state = s;
}

// ---------- opencv.js: load once, wait for cv.Mat (the 4.x module is a thenable that hangs if awaited) ----------
function loadOpenCV() {
  return new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = config.opencvUrl;
    script.async = true;
    script.onerror = () => reject(new Error("opencv.js failed to load"));
    document.head.appendChild(script);
    const poll = () => {
      // resolve with a box: resolving with `cv` itself would adopt its broken then() and hang the page
      if (window.cv && window.cv.Mat) resolve({ cv: window.cv });
      else setTimeout(poll, OPENCV_POLL_MS);
    };
    poll();
  });
}
const cvReady = loadOpenCV().then((box) => { cv = box.cv; S.cvReady = true; });

// ---------- service worker: the viewer and the bundles it loaded work again offline ----------
if ("serviceWorker" in navigator && config.swUrl && !params.has("nosw")) {
  navigator.serviceWorker.register(config.swUrl, { scope: "/v/" })
    .then(() => navigator.serviceWorker.ready)
    .then(() => waitFor(() => navigator.serviceWorker.controller, 5000))
    // the page itself was loaded before the worker existed: fetch it once through the worker so it is cached
    .then(() => fetch(location.href, { credentials: "same-origin" }))
    .then(() => { S.offlineReady = true; })
    .catch(() => {});
}

// A QR code printed on one page names that page: fetch its bundle and marker while the reader aims the phone
// (immutable artifacts, so the browser cache serves them when the page is recognized).
if (config.pageId) {
  loadPageManifest(`/pub/pages/${encodeURIComponent(config.pageId)}/manifest.json`)
    .then((info) => Promise.all([info.bundleUrl && fetch(info.bundleUrl), info.markerUrl && fetch(info.markerUrl)]))
    .catch(() => {});
}

function rememberPage(info) {
  const known = JSON.parse(localStorage.getItem(KNOWN_PAGES_KEY) || "{}");
  known[info.pageId] = { manifestUrl: info.manifestUrl, at: Date.now() };
  localStorage.setItem(KNOWN_PAGES_KEY, JSON.stringify(known));
}

// ---------- page loading: manifest -> bundle (with progress) + marker ----------
async function loadPage(manifestUrl) {
  const info = await loadPageManifest(manifestUrl);
  ui.setStatus("status.page");
  ui.progress(0);
  const bundle = renderer.loadBundle(info.bundleUrl, (loaded, total) => {
    ui.progress(total ? loaded / total : Math.min(0.9, loaded / Math.max(1, info.bundleBytes || 4e6)));
    S.metrics.bundleBytes = loaded;
  });
  const marker = info.markerUrl ? loadMarker(info.markerUrl).catch(() => null) : Promise.resolve(null);
  return { info, bundle, marker };
}

function mediaContext(info) {
  return {
    resolve: (src) => resolveMedia(info, src),
    offerUnmute: () => {
      if (unmuteOffered) return;
      unmuteOffered = true;
      ui.showUnmute(() => renderer.overlays.forEach((o) => o.controller && o.controller.unmute && o.controller.unmute()));
    },
  };
}

async function showPage(manifestUrl, pageId) {
  S.pageId = pageId;
  S.bundleLoaded = false;
  renderer.setVisible(false);
  const { info, bundle, marker: markerLoad } = await loadPage(manifestUrl);
  page = info;
  marker = null;
  S.editionId = info.editionId || S.editionId;
  if (tracker) tracker.setPage(info, null);
  if (pose) pose.setPage(info.widthMm, info.heightMm);
  markerLoad.then((m) => {
    if (page !== info) return;
    marker = m;
    if (m && tracker) tracker.setMarker(m);
  });
  try {
    await bundle;
  } catch (err) {
    S.error = String(err);
    ui.setStatus("status.error");
    ui.progress(null);
    throw err;
  }
  renderer.attachControllers((o) => attachOverlay(o, mediaContext(info)));
  S.bundleLoaded = true;
  ui.progress(null);
  rememberPage(info);
  emit("page:ready", { pageId: info.pageId });
  return info;
}

// ---------- recognition (server) ----------
async function recognizeFrame(now) {
  const sentGrey = grey.slice();
  const blob = await camera.snapshotJpeg(0.8);
  const t0 = performance.now();
  const match = await recognition.recognize(blob, frameSize, now);
  S.metrics.recognizeMs.push(performance.now() - t0);
  ui.setStatus(recognition.offline ? "status.offline" : (S.state === "lost" ? "status.lost" : "status.scanning"));
  if (!match) {
    if (recognition.offline) await tryKnownPageOffline();
    return;
  }
  if (S.metrics.firstMatchAt === null) S.metrics.firstMatchAt = performance.now();
  if ((match.pageId !== S.pageId || !page) && loadingPageId !== match.pageId) {
    loadingPageId = match.pageId;
    pageLoad = showPage(match.manifestUrl, match.pageId).catch(() => null).finally(() => { loadingPageId = null; });
    // start following the paper at once; overlays appear when the bundle is in
    await waitFor(() => page && page.pageId === match.pageId, 10000);
  }
  await cvReady;
  if (tracker && page && page.pageId === match.pageId && !tracker.tracking) {
    if (DEBUG) console.log("seed", JSON.stringify(match.homography));
    tracker.seedFrom(sentGrey, match.homography);
    if (DEBUG) console.log("seeded", tracker.ptsPx.length);
    lostSince = null;
    setState("tracking");
  }
}

// Offline (the recognize request failed): take turns with the pages opened before on this device; their
// manifest, bundle and marker come from the service worker's cache and the tracker re-detects them by itself.
async function tryKnownPageOffline() {
  const known = Object.entries(JSON.parse(localStorage.getItem(KNOWN_PAGES_KEY) || "{}"))
    .sort((a, b) => b[1].at - a[1].at);
  if (!known.length || loadingPageId) return;
  const ids = known.map(([id]) => id);
  const next = known[(ids.indexOf(S.pageId) + 1) % ids.length];
  if (next[0] === S.pageId && page) return;  // the only known page is already waiting to be re-detected
  loadingPageId = next[0];
  try {
    await showPage(next[1].manifestUrl, next[0]);
  } catch (err) {
    S.error = String(err);
  } finally {
    loadingPageId = null;
  }
}

function waitFor(pred, timeoutMs) {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const poll = () => (pred() || performance.now() - t0 > timeoutMs ? resolve() : setTimeout(poll, 20));
    poll();
  });
}

// ---------- the frame loop ----------
function onFrame(img, now) {
  const tFrame0 = performance.now();
  if (S.metrics.firstFrameAt === null) S.metrics.firstFrameAt = now;
  S.metrics.frameTimes.push(now);
  if (S.metrics.frameTimes.length > 600) S.metrics.frameTimes.shift();
  const probe = window.__baonhungProbe ? window.__baonhungProbe(img) : null;
  toGrey(img, grey);
  const record = { i: frameIndex++, probe, t: now, tracked: false, visible: false, mode: null, pageId: S.pageId };

  if (cv && !tracker) {
    tracker = new PageTracker(cv, frameSize.width, frameSize.height);
    S.debug.tracker = tracker;
    pose = new PoseEstimator(cv, frameSize.width, frameSize.height, page ? page.widthMm : 210, page ? page.heightMm : 297);
    if (page) tracker.setPage(page, marker);
  }

  let result = null;
  if (tracker && page && (tracker.tracking || tracker.canRedetect)) {
    tracker.greyBuffer().set(grey);
    if (tracker.tracking) {
      result = tracker.track();
    } else if (lostFrames % REDETECT_EVERY_LOST === 0) {
      result = tracker.redetect();
      tracker.skipFrame();
    } else {
      tracker.skipFrame();
    }
    if (result && result.mode === "flow") S.metrics.trackMs.push(result.ms);
    else if (tracker.stats.redetects > redetectsSeen) S.metrics.redetectMs.push(tracker.stats.lastRedetectMs);
    redetectsSeen = tracker.stats.redetects;
    if (S.metrics.trackMs.length > 2000) S.metrics.trackMs.shift();
    if (S.metrics.redetectMs.length > 500) S.metrics.redetectMs.shift();
  }

  if (result) {
    lostSince = null;
    lostFrames = 0;
    const p = pose.update(result.corners, result.H, now / 1000);
    renderer.setPose(p);
    S.corners = p.corners;
    S.rawCorners = result.corners;
    S.focal = p.focal;
    record.tracked = true;
    record.mode = result.mode;
    record.points = result.points;
    record.corners = p.corners;
    record.rawCorners = result.corners;
    if (S.bundleLoaded) {
      renderer.setVisible(true);
      if (S.metrics.firstOverlayAt === null) S.metrics.firstOverlayAt = performance.now();
      S.overlays = renderer.overlayCorners();
      record.overlays = S.overlays;
      setState("tracking");
      ui.setStatus("status.tracking");
    } else {
      setState("loading");
    }
    emit("target:update", { pageId: page.pageId, corners: p.corners, homography: result.H,
                            pose: { modelView: p.modelView, projection: p.projection, focal: p.focal } });
  } else {
    lostFrames++;
    if (S.state === "tracking" || S.state === "loading") {
      if (lostSince === null) lostSince = now;
      if (now - lostSince > LOST_HIDE_MS) {
        renderer.setVisible(false);
        if (pose) pose.reset();
        S.corners = null;
        S.overlays = [];
        setState("lost");
        ui.setStatus("status.lost");
        emit("target:lost", { pageId: S.pageId });
      }
    }
  }
  S.overlaysVisible = renderer.visible;
  record.visible = renderer.visible;
  renderer.requestRender();
  record.ms = performance.now() - tFrame0;
  if (record.tracked && camera.longSide > SLOW_LONG_SIDE && !params.get("process")) {
    trackedFrameMs.push(record.ms);
    if (trackedFrameMs.length >= SLOW_CHECK_FRAMES) {
      const sorted = [...trackedFrameMs].sort((a, b) => a - b);
      trackedFrameMs.length = 0;
      if (sorted[sorted.length >> 1] > SLOW_FRAME_MS) queueMicrotask(() => setProcessingSize(SLOW_LONG_SIDE));
    }
  }
  S.frames.push(record);
  if (S.frames.length > FRAME_LOG) S.frames.shift();

  // Recognition on the server while no page is followed (a few frames a second, never two at once).
  const following = tracker && tracker.tracking;
  if (!following && recognition.ready(now) && S.state !== "loading") recognizeFrame(now).catch((e) => console.error(e));
}

// Change the processing size on the fly: new grey buffer, tracker and pose at the new size; the page is found
// again by re-detection against its marker on the next frames.
function setProcessingSize(longSide) {
  frameSize = camera.setLongSide(longSide);
  grey = new Uint8Array(frameSize.width * frameSize.height);
  if (tracker) tracker.dispose();
  tracker = null;
  pose = null;
  lostFrames = 0;
  renderer.setViewport(frameSize.width, frameSize.height);
  ui.layout(frameSize.width, frameSize.height);
  S.processing = [frameSize.width, frameSize.height];
}

async function startCamera() {
  if (S.metrics.tapAt === null) S.metrics.tapAt = performance.now();
  ui.hideStart();
  document.getElementById("fallback-panel").hidden = true;
  setState("starting");
  ui.setStatus("status.starting");
  let size;
  try {
    size = await camera.start();
  } catch (err) {
    showFallback(err.reason || "unavailable");
    return;
  }
  frameSize = size;
  S.processing = [size.width, size.height];
  grey = new Uint8Array(size.width * size.height);
  renderer.setViewport(size.width, size.height);
  ui.layout(size.width, size.height);
  window.addEventListener("resize", () => ui.layout(frameSize.width, frameSize.height));
  setState("scanning");
  ui.setStatus("status.scanning");
  renderer.live = true;
  camera.run(onFrame);
}

// ---------- fallback: no camera ----------
async function editionPages() {
  if (!config.editionManifestUrl) return [];
  try {
    return (await loadEditionManifest(config.editionManifestUrl)).pages;
  } catch (err) {
    return [];
  }
}

async function showFallback(reason) {
  camera.stop();
  S.fallbackReason = reason;
  ui.setStatus("status.ready");
  ui.showFallback(reason, await editionPages(), pickPage, uploadPhoto);
  // Only now: the panel is shown and its page list and photo upload answer (the edition's pages are fetched first).
  setState("fallback");
}

async function pickPage(p) {
  ui.hideFallback();
  setState("loading");
  document.getElementById("camera").hidden = true;
  document.getElementById("photo").hidden = true;
  renderer.setViewport(window.innerWidth, window.innerHeight);
  ui.fullCanvas();
  const info = await showPage(p.manifestUrl, p.pageId);
  renderer.enterView3d(info.widthMm, info.heightMm);
  renderer.controls.addEventListener("change", () => { S.overlays = renderer.overlayCorners(); });
  S.overlays = renderer.overlayCorners();  // canvas px = CSS px of the window here (for tests: where to tap)
  S.overlaysVisible = true;
  setState("view3d");
  ui.setStatus("status.view3d");
}

async function uploadPhoto(file) {
  ui.setStatus("status.photo.working");
  const bitmap = await createImageBitmap(file);
  const s = Math.min(1, PHOTO_LONG_SIDE / Math.max(bitmap.width, bitmap.height));
  const w = Math.round(bitmap.width * s), h = Math.round(bitmap.height * s);
  const canvas = document.createElement("canvas");
  canvas.width = w; canvas.height = h;
  canvas.getContext("2d").drawImage(bitmap, 0, 0, w, h);
  const blob = await new Promise((r) => canvas.toBlob(r, "image/jpeg", 0.9));
  // a still photo is taken once: worth the tilted look's extra time
  const match = await recognition.recognize(blob, { width: w, height: h }, performance.now(), { tilted: true });
  if (!match) { ui.setStatus("status.photo.nomatch"); S.state = "fallback"; S.photoMatch = false; return; }
  ui.hideFallback();
  setState("loading");
  const img = document.getElementById("photo");
  img.src = URL.createObjectURL(blob);
  img.hidden = false;
  document.getElementById("camera").hidden = true;
  renderer.setViewport(w, h);
  ui.layout(w, h, { contain: true });
  const info = await showPage(match.manifestUrl, match.pageId);
  await cvReady;
  const still = new PoseEstimator(cv, w, h, info.widthMm, info.heightMm);
  const corners = pageCorners(match.homography, info.widthMm, info.heightMm);
  still.focal.update(match.homography);
  const p = { modelView: still.solve(corners, still.focal.value),
              projection: projectionFromIntrinsics(still.focal.value, w, h) };
  renderer.setPose(p);
  renderer.setVisible(true);
  S.corners = corners;
  S.photoSize = [w, h];
  S.overlays = renderer.overlayCorners();
  S.overlaysVisible = true;
  setState("photo");
  ui.setStatus("status.photo");
}

// ---------- taps on overlays ----------
document.getElementById("gl").addEventListener("click", (e) => {
  const hit = renderer.pick(e.clientX, e.clientY);
  if (!hit || !hit.controller) return;
  hit.controller.tap();
  S.lastActivated = { id: hit.id, kind: hit.kind };
  emit("overlay:activate", { id: hit.id, kind: hit.kind });
});

on("page:ready", ({ pageId }) => { S.readyPageId = pageId; });

ui.onStart(startCamera);
ui.onNoCamera(() => showFallback("nocamera"));
ui.onRetry(startCamera);
ui.onBack(() => { closePanorama(); location.reload(); });
ui.setStatus("status.ready");
setState("idle");
if (params.has("autostart")) startCamera();
