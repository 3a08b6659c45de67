// Wiring of the viewer's stages. Stages talk through renderer-neutral events (events.js); this module owns the
// frame loop and the reader's path: start -> camera -> recognition (server) -> page load (manifest, bundle) ->
// overlays drawn from the server's homography -> tracker (opencv.js) loaded, then tracking every frame -> pose ->
// renderer; and the fallbacks (no camera: pick a page / upload a photo).
//
// The reader's first seconds on a phone (issue 23): nothing the first overlay does not need is downloaded before
// it. The tap is taken by the page's inline boot script (templates/viewer/viewer.html) before this module runs, and
// it opens the camera at once; three.js and the renderer are imported while the camera starts; overlays are drawn
// from the server's answers ("server" mode: the homography of the frame sent, asked for a few times a second)
// until the in-browser tracker has loaded (asked for once the first overlay is on the paper);
// the service worker is registered only then, so its precaching never competes with the first scan.
//
// Premium overlays (issue 27): premium.js is imported once a page whose manifest has a premium part is on the paper
// (never before the first overlay); it draws the locks, the reader sheet, and loads the part for entitled readers.
//
// State for tests and debugging: window.__baonhung = {state, pageId, editionId, corners, overlaysVisible,
// overlays: [{id, kind, corners}], media: [...], frames: [...per processed frame...], metrics: {...}, premium: {...}}.

import { emit, on } from "./events.js";
import { Camera, PROCESS_LONG_SIDE, toGrey } from "./camera.js";
import { RecognitionClient } from "./recognition.js";
import { PageTracker } from "./tracker.js";
import { FocalEstimator, PoseEstimator, poseFromHomography } from "./pose.js";
import { loadOpenCV } from "./cvload.js";
import { ViewerUI } from "./ui.js";
import { loadPageManifest, loadEditionManifest, loadMarker, resolveMedia } from "./manifest.js";

const LOST_HIDE_MS = 350;        // overlays stay this long after the page is lost (a blur or a hand passing by)
const REDETECT_EVERY_LOST = 3;   // while lost, ORB re-detection on every 3rd frame (keeps the camera preview fluid)
const FRAME_LOG = 3000;          // frames kept in __baonhung.frames (100 s at 30 fps)
// Before the tracker has loaded, the overlays follow the server's answers: an answer is the pose of the frame it
// was sent for; without a new match for SERVER_LOST_MS (a phone's round trip on a mobile network is ~1 s) they hide.
const SERVER_LOST_MS = 2500;
const SEED_MAX_AGE_MS = 150;     // a match older than this is not used to seed the tracker (the next one is)
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
// Readership analytics (analytics.js, issue 26) is imported only once the main thread is idle after the first overlay
// (or the no-camera panel), never in the first seconds: at the latest ANALYTICS_LATEST_MS after this module ran,
// for a reader who never gets an overlay (it still hears every earlier event: events.js keeps them).
const ANALYTICS_LATEST_MS = 8000;
const ANALYTICS_IDLE_TIMEOUT_MS = 3000;  // requestIdleCallback's bound: a busy tracker leaves little idle time

const config = JSON.parse(document.getElementById("viewer-config").textContent);
const ui = new ViewerUI();
const camera = new Camera(document.getElementById("camera"), Number(params.get("process")) || PROCESS_LONG_SIDE,
                          config.camera);
const recognition = new RecognitionClient(config.recognizeUrl, config.scope);
const boot = window.__baonhungBoot || { tapAt: null, stream: null };
// three.js, the renderer and the media controllers (preloaded by the page, so already downloading) are evaluated
// once the first frame is on its way to the server: evaluating three.js and opening a WebGL context cost a phone's
// main thread ~1 s, which the first recognize request must not wait for (on a warm re-open it did: 1 s later).
let renderer = null, attachOverlay = null, closePanorama = () => {};
let rendererLoad = null;
function rendererReady() {
  if (!rendererLoad) {
    rendererLoad = Promise.all([import("./renderer.js"), import("./media.js")]).then(([r, m]) => {
      renderer = new r.PageRenderer(document.getElementById("gl"), { dracoPath: config.dracoPath });
      attachOverlay = m.attachOverlay;
      closePanorama = m.closePanorama;
      S.debug.renderer = renderer;
      if (frameSize) renderer.setViewport(frameSize.width, frameSize.height);
      renderer.live = camera.stream !== null;
      return renderer;
    });
  }
  return rendererLoad;
}

const S = {
  state: "idle", pageId: null, editionId: config.editionId, corners: null, overlaysVisible: false,
  overlays: [], frames: [], focal: null, error: null, cvReady: false, bundleLoaded: false,
  tracker: "idle",  // in-browser tracker: idle (not asked for) | loading | ready | failed
  debug: {},  // live objects for debugging and benchmarks (tracker, renderer); tests read the plain fields above
  metrics: { tapAt: null, firstFrameAt: null, firstRecognizeAt: null, firstMatchAt: null, firstOverlayAt: null,
             firstOverlayMode: null, trackerReadyAt: null, trackMs: [], redetectMs: [], recognizeMs: [],
             frameTimes: [], bundleBytes: 0 },
  premium: {},  // premium.js's state (issue 27)
};
// media state is read live from the overlay controllers (current time, paused, muted)
Object.defineProperty(S, "media", {
  enumerable: true,
  get: () => (renderer ? renderer.overlays.map((o) => ({ ...(o.controller ? o.controller.state() : { id: o.id, kind: o.kind }),
                                                         premium: !!o.premium, hidden: !!o.hidden }))
    : []),
});
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
let serverPose = null;           // {pageId, pose, at}: the last server answer drawn while the tracker loads
let serverFocal = null;          // FocalEstimator of the processing size, for server poses
let lastMatch = null;            // {match, grey, at}: the last server match, to seed the tracker when it arrives
let recognizing = false;         // a frame is being encoded or sent (never two at once)
let foundPageId = null;          // the page followed since its last target:found (null: none, or lost)
const trackedFrameMs = [];

function setState(s) {
  S.state = s;
  document.body.dataset.state = s;
}

// ---------- the tracker (opencv.js): asked for once the first overlay is on the paper (or when offline) ----------
// Also on a warm re-open, when the service worker has it: compiling it costs a phone's main thread seconds, which
// the first overlay must not wait for (measured: 7.5 s instead of ~2.5 s to the first overlay on the phone profile).
let trackerLoad = null;
let wantTracker = null;
const trackerWanted = new Promise((resolve) => { wantTracker = resolve; });

function loadTracker() {
  if (trackerLoad) return trackerLoad;
  S.tracker = "loading";
  wantTracker();
  trackerLoad = loadOpenCV(config.opencv).then((box) => {
    cv = box.cv;
    S.cvReady = true;
    S.tracker = "ready";
    S.metrics.trackerReadyAt = performance.now();
    registerServiceWorker();
  }).catch((err) => {
    S.tracker = "failed";  // the overlays keep following the server's answers
    S.error = String(err);
  });
  return trackerLoad;
}

// ---------- service worker: the viewer and the bundles it loaded work again offline ----------
// Registered once the tracker has loaded (or the no-camera panel is shown), never during the first scan: its
// install precaches the shell, which then comes from the HTTP cache instead of competing with the first overlay.
const seenUrls = new Set();      // published artifacts this visit loaded, cached through the worker once it runs
let swRegistered = false;

function registerServiceWorker() {
  if (swRegistered || !("serviceWorker" in navigator) || !config.swUrl || params.has("nosw")) return;
  swRegistered = true;
  navigator.serviceWorker.register(config.swUrl, { scope: "/v/" })
    .then(() => navigator.serviceWorker.ready)
    .then(() => waitFor(() => navigator.serviceWorker.controller, 5000))
    // the page and what it loaded came before the worker existed: fetch them once through it so they are cached
    .then(() => Promise.all([location.href, ...seenUrls].map((u) => fetch(u, { credentials: "same-origin" })
      .then((r) => r.blob()).catch(() => null))))
    .then(() => { S.offlineReady = true; })
    .catch(() => {});
}

function remember(...urls) {
  for (const u of urls) if (u) seenUrls.add(u);
}

// A QR code printed on one page names that page: fetch its bundle while the reader aims the phone (immutable
// artifacts, so the browser cache serves them when the page is recognized). Its marker waits for the tracker.
if (config.pageId) {
  loadPageManifest(`/pub/pages/${encodeURIComponent(config.pageId)}/manifest.json`)
    .then((info) => info.bundleUrl && fetch(info.bundleUrl))
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
  remember(manifestUrl, info.bundleUrl, info.markerUrl, ...info.media.map((m) => m.url));
  ui.setStatus("status.page");
  ui.progress(0);
  await rendererReady();
  const bundle = renderer.loadBundle(info.bundleUrl, (loaded, total) => {
    ui.progress(total ? loaded / total : Math.min(0.9, loaded / Math.max(1, info.bundleBytes || 4e6)));
    S.metrics.bundleBytes = loaded;
  });
  // the browser marker serves only the tracker's re-detection: fetched once the tracker is asked for
  const marker = info.markerUrl ? trackerWanted.then(() => loadMarker(info.markerUrl)).catch(() => null)
    : Promise.resolve(null);
  return { info, bundle, marker };
}

function mediaContext(info) {
  return {
    pageId: info.pageId,
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
  serverPose = null;
  if (renderer) renderer.setVisible(false);
  const { info, bundle, marker: markerLoad } = await loadPage(manifestUrl);
  page = info;
  if (info.premium) premiumModule().then((p) => p.prepare(info)).catch(() => {});  // while the bundle downloads
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
  premiumFor(info);
  S.bundleLoaded = true;
  ui.progress(null);
  rememberPage(info);
  emit("page:ready", { pageId: info.pageId, editionId: info.editionId, widthMm: info.widthMm, heightMm: info.heightMm });
  return info;
}

// ---------- recognition (server) ----------
async function recognizeFrame(now) {
  recognizing = true;
  let match = null;
  const sentGrey = grey.slice();
  const sentSize = { ...frameSize };
  try {
    const blob = await camera.snapshotJpeg(0.8);
    const t0 = performance.now();
    const answer = recognition.recognize(blob, sentSize, now);
    rendererReady();  // the frame is on its way: now three.js may take the main thread
    match = await answer;
    S.metrics.recognizeMs.push(performance.now() - t0);
    if (S.metrics.firstRecognizeAt === null) S.metrics.firstRecognizeAt = performance.now();
  } finally {
    recognizing = false;
  }
  if (sentSize.width !== frameSize.width) return;  // the processing size changed meanwhile: the answer is stale
  ui.setStatus(recognition.offline ? "status.offline" : (S.state === "lost" ? "status.lost" : "status.scanning"));
  if (!match) {
    if (recognition.offline) {
      loadTracker();  // offline, pages known on this device are found by the tracker's re-detection
      await tryKnownPageOffline();
    }
    return;
  }
  if (S.metrics.firstMatchAt === null) S.metrics.firstMatchAt = performance.now();
  if (!(S.state === "tracking" && S.pageId === match.pageId)) {
    emit("page:recognized", { pageId: match.pageId, editionId: match.editionId, stage: "server",
                              scoped: scopedMatch(match.editionId) });
  }
  lastMatch = { match, grey: sentGrey, at: performance.now() };
  if ((match.pageId !== S.pageId || !page) && loadingPageId !== match.pageId) {
    loadingPageId = match.pageId;
    pageLoad = showPage(match.manifestUrl, match.pageId).catch(() => null).finally(() => { loadingPageId = null; });
    // start following the paper at once; overlays appear when the bundle is in
    await waitFor(() => page && page.pageId === match.pageId, 10000);
  }
  if (!page || page.pageId !== match.pageId) return;
  if (tracker && !tracker.tracking) {
    if (DEBUG) console.log("seed", JSON.stringify(match.homography));
    tracker.seedFrom(sentGrey, match.homography);
    if (DEBUG) console.log("seeded", tracker.ptsPx.length);
    lostSince = null;
    setState("tracking");
  } else if (!tracker) {
    // the tracker is still loading: the overlays follow the server's answer for the frame it was sent
    if (!serverFocal || serverFocal.width !== sentSize.width) serverFocal = new FocalEstimator(sentSize.width, sentSize.height);
    serverPose = { pageId: match.pageId, at: performance.now(), H: match.homography,
                   pose: poseFromHomography(match.homography, serverFocal, sentSize.width, sentSize.height,
                                            page.widthMm, page.heightMm) };
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

// Found in the edition the QR code named (the recognize request's scope), not elsewhere in the archive.
function scopedMatch(editionId) {
  return !!config.scope && editionId != null && String(editionId) === String(config.editionId);
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
    // take over from the server's answers: seed from the last match while it is fresh (else the next one seeds)
    if (page && lastMatch && lastMatch.match.pageId === page.pageId && performance.now() - lastMatch.at < SEED_MAX_AGE_MS
        && lastMatch.match.frameSize.width === frameSize.width) {
      tracker.seedFrom(lastMatch.grey, lastMatch.match.homography);
    }
    serverPose = null;
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

  let p = null;
  if (result) {
    p = pose.update(result.corners, result.H, now / 1000);
    if (result.mode === "redetect" && !(S.state === "tracking" && foundPageId === page.pageId)) {
      // found by the browser alone: a page known on this device while offline, or found again by re-detection
      emit("page:recognized", { pageId: page.pageId, editionId: page.editionId,
                                stage: recognition.offline ? "offline" : "redetect", scoped: scopedMatch(page.editionId) });
    }
  } else if (!tracker && serverPose && page && serverPose.pageId === page.pageId
             && performance.now() - serverPose.at < SERVER_LOST_MS) {
    p = serverPose.pose;
    result = { mode: "server", corners: p.rawCorners, H: serverPose.H, points: 0 };
  }

  if (result && renderer) {
    lostSince = null;
    lostFrames = 0;
    renderer.setPose(p);
    S.corners = p.corners;
    S.rawCorners = result.corners;
    S.focal = p.focal;
    record.tracked = result.mode !== "server";  // tracked in the browser (server mode: the server's pose)
    record.mode = result.mode;
    record.points = result.points;
    record.corners = p.corners;
    record.rawCorners = result.corners;
    if (foundPageId !== page.pageId) {
      foundPageId = page.pageId;
      emit("target:found", { pageId: page.pageId });
    }
    if (S.bundleLoaded) {
      showOverlays(page.pageId);
      if (S.metrics.firstOverlayAt === null) {
        S.metrics.firstOverlayAt = performance.now();
        S.metrics.firstOverlayMode = result.mode;
        loadTracker();  // the first overlay is on the paper: now the tracker may take the network
        loadAnalytics();  // and, when the main thread is idle, the readership analytics
      }
      S.overlays = renderer.overlayCorners();
      record.overlays = S.overlays;
      setState("tracking");
      ui.setStatus("status.tracking");
    } else {
      setState("loading");
    }
    emit("target:update", { pageId: page.pageId, corners: p.corners, homography: result.H, frameSize,
                            pose: { modelView: p.modelView, projection: p.projection, focal: p.focal } });
  } else {
    lostFrames++;
    if (S.state === "tracking" || S.state === "loading") {
      if (lostSince === null) lostSince = now;
      if (now - lostSince > LOST_HIDE_MS) {
        serverPose = null;
        if (renderer) renderer.setVisible(false);
        if (pose) pose.reset();
        S.corners = null;
        S.overlays = [];
        setState("lost");
        ui.setStatus("status.lost");
        foundPageId = null;
        emit("target:lost", { pageId: S.pageId });
      }
    }
  }
  S.overlaysVisible = !!(renderer && renderer.visible);
  if (premium) premium.onFrame(S.overlaysVisible ? S.overlays : null);
  record.visible = S.overlaysVisible;
  if (renderer) renderer.requestRender();
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
  if (!following && !recognizing && recognition.ready(now) && S.state !== "loading") {
    recognizeFrame(now).catch((e) => console.error(e));
  }
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
  serverPose = null;
  if (renderer) renderer.setViewport(frameSize.width, frameSize.height);
  ui.layout(frameSize.width, frameSize.height);
  S.processing = [frameSize.width, frameSize.height];
}

async function startCamera(tapAt = performance.now(), early = null) {
  if (S.metrics.tapAt === null) S.metrics.tapAt = tapAt;
  ui.hideStart();
  document.getElementById("fallback-panel").hidden = true;
  setState("starting");
  ui.setStatus("status.starting");
  let size;
  try {
    size = await camera.start(early);
  } catch (err) {
    emit("camera:error", { reason: err.reason || "unavailable" });
    showFallback(err.reason || "unavailable");
    return;
  }
  frameSize = size;
  S.processing = [size.width, size.height];
  grey = new Uint8Array(size.width * size.height);
  if (renderer) {
    renderer.setViewport(size.width, size.height);
    renderer.live = true;
  }
  ui.layout(size.width, size.height);
  window.addEventListener("resize", () => ui.layout(frameSize.width, frameSize.height));
  setState("scanning");
  ui.setStatus("status.scanning");
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
  if (camera.stream) emit("camera:stopped", {});
  camera.stop();
  registerServiceWorker();
  loadAnalytics();
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
  await rendererReady();
  renderer.setViewport(window.innerWidth, window.innerHeight);
  ui.fullCanvas();
  emit("fallback:used", { mode: "no_camera_3d", pageId: p.pageId });
  const info = await showPage(p.manifestUrl, p.pageId);
  renderer.enterView3d(info.widthMm, info.heightMm);
  emit("overlays:shown", { pageId: info.pageId, overlays: renderer.overlays.map((o) => ({ id: o.id, kind: o.kind })) });
  const measure = () => {
    S.overlays = renderer.overlayCorners();  // canvas px = CSS px of the window here (for tests: where to tap)
    S.pageCorners = renderer.pageCorners();
    if (premium) premium.onFrame(S.overlays);
  };
  renderer.controls.addEventListener("change", measure);
  // a phone turned (or a window resized) frames the whole page again at the new shape
  window.addEventListener("resize", () => {
    renderer.setViewport(window.innerWidth, window.innerHeight);
    renderer.fitView3d();
    measure();
  });
  measure();
  S.overlaysVisible = true;
  setState("view3d");
  ui.setStatus("status.view3d");
}

async function uploadPhoto(file) {
  ui.setStatus("status.photo.working");
  emit("fallback:used", { mode: "photo_upload" });
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
  emit("page:recognized", { pageId: match.pageId, editionId: match.editionId, stage: "photo",
                            scoped: scopedMatch(match.editionId) });
  ui.hideFallback();
  setState("loading");
  const img = document.getElementById("photo");
  img.src = URL.createObjectURL(blob);
  img.hidden = false;
  document.getElementById("camera").hidden = true;
  await rendererReady();
  renderer.setViewport(w, h);
  ui.layout(w, h, { contain: true });
  const info = await showPage(match.manifestUrl, match.pageId);
  // a still photo needs no tracker: the pose comes from the server's homography alone
  const p = poseFromHomography(match.homography, new FocalEstimator(w, h), w, h, info.widthMm, info.heightMm);
  renderer.setPose(p);
  showOverlays(info.pageId);
  S.corners = p.corners;
  S.photoSize = [w, h];
  S.overlays = renderer.overlayCorners();
  S.overlaysVisible = true;
  if (premium) premium.onFrame(S.overlays);
  setState("photo");
  ui.setStatus("status.photo");
}

// ---------- taps on overlays ----------
document.getElementById("gl").addEventListener("click", (e) => {
  const hit = renderer && renderer.pick(e.clientX, e.clientY);
  if (!hit || !hit.controller) return;
  if (premium && premium.onOverlayTap(hit)) return;  // a locked teaser: the reader sheet
  hit.controller.tap();
  S.lastActivated = { id: hit.id, kind: hit.kind };
  emit("overlay:activate", { id: hit.id, kind: hit.kind, pageId: S.pageId });
});

// ---------- premium overlays (issue 27): premium.js for a page with a premium part ----------
let premium = null, premiumLoad = null;
function premiumModule() {
  if (!premiumLoad) {
    premiumLoad = import("./premium.js").then((m) => {
      premium = new m.PremiumViewer({ renderer, ui, state: S.premium,
                                      bind: (o, resolve) => attachOverlay(o, { ...mediaContext(page), resolve }) });
      // a still view (photo, 3D view) measures its overlays when they change, not every frame
      premium.onChange = () => {
        if (S.state !== "view3d" && S.state !== "photo") return;
        S.overlays = renderer.overlayCorners();
        premium.onFrame(S.overlays);
      };
      return premium;
    });
  }
  return premiumLoad;
}

function premiumFor(info) {
  if (!info.premium && !premiumLoad) return;
  premiumModule().then((p) => {
    if (page !== info) return;
    p.setPage(info);
    p.onFrame(S.overlaysVisible ? S.overlays : null);
  }).catch((err) => { S.error = String(err); });
}

// The page's overlays are made visible; overlays:shown when they were not.
function showOverlays(pageId) {
  if (renderer.visible) return;
  renderer.setVisible(true);
  emit("overlays:shown", { pageId, overlays: renderer.overlays.map((o) => ({ id: o.id, kind: o.kind })) });
}

// ---------- readership analytics (issue 26): after the first overlay, when the main thread is idle ----------
let analyticsLoad = null;
function loadAnalytics({ now = false } = {}) {
  if (analyticsLoad) return;
  analyticsLoad = new Promise((resolve) => {
    if (now) { resolve(); return; }
    const idle = window.requestIdleCallback || ((fn) => setTimeout(fn, 200));
    idle(resolve, { timeout: ANALYTICS_IDLE_TIMEOUT_MS });
  }).then(() => import("./analytics.js"))
    .then((m) => { S.analytics = m.startAnalytics({ config, ui, offlineAtOpen: !!boot.offline }); })
    .catch((err) => { S.error = String(err); });
}
setTimeout(loadAnalytics, ANALYTICS_LATEST_MS);
// A reader who leaves (switches app, closes the tab) before that still counts: analytics.js is fetched at once when
// the page is hidden and reports what the bus logged (opened, camera, given up) with a beacon. A hidden page keeps
// running for a moment, enough for a 6 KB module; a page torn down at once is still lost.
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "hidden") loadAnalytics({ now: true });
});

on("page:ready", ({ pageId }) => { S.readyPageId = pageId; });

// The boot script took the taps until now (and opened the camera on the first): from here this module answers them.
boot.bound = true;
ui.onStart(() => startCamera());
ui.onNoCamera(() => showFallback("nocamera"));
ui.onRetry(() => startCamera());
ui.onBack(() => { closePanorama(); location.reload(); });
ui.setStatus("status.ready");
setState("idle");
if (boot.tapAt !== null) startCamera(boot.tapAt, boot.stream);
else if (boot.noCamera) showFallback("nocamera");
else if (params.has("autostart")) startCamera();
