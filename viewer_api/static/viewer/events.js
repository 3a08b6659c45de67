// Renderer-neutral events between the viewer's stages (camera → recognition → tracker → pose → renderer/UI).
// Each stage only emits facts ("target:update" with corners and a pose), never calls another stage's UI.
//
// Event names and details (all coordinates in video pixels, OpenCV convention: origin top-left, pixel centres
// at integer coordinates):
//   camera:started   {width, height}          camera:error {reason: "denied"|"unavailable"|"insecure"}
//   camera:stopped   {}                       (the reader left the camera for a way without it)
//   recognition:match {pageId, editionId, manifestUrl, homography, corners, frameSize}
//   page:recognized  {pageId, editionId, stage: "server"|"redetect"|"offline"|"photo", scoped}
//                    (a page the viewer was not following was found; main.js)
//   page:progress    {pageId, loaded, total}  page:ready {pageId, editionId, widthMm, heightMm}
//   page:error {pageId, message}
//   overlays:shown   {pageId, overlays: [{id, kind}]}  (the page's overlays became visible: camera, photo or 3D view)
//   target:found     {pageId}                 target:lost {pageId}
//   target:update    {pageId, corners, homography (page mm -> frame px, row-major 9), frameSize: {width, height},
//                     pose: {modelView: Float64Array(16) column-major, focal}}
//   overlay:activate {id, kind, pageId}
//   media:quartile   {pageId, id, kind, quartile: 25|50|75|100}  (a video / audio overlay reached it, once per play)
//   fallback:used    {mode: "photo_upload"|"no_camera_3d", pageId?}
//   panorama:open    {url, id?, pageId?}      panorama:close {}
//   premium:teaser_shown {overlay_id}  premium:lock_tap {overlay_id}  premium:redeemed {}  (premium.js, issue 27)
//
// A module loaded late (analytics.js, after the first overlay) still hears what happened before it: every event but
// the per-frame target:update is kept in a short log with its wall-clock time (`at`, Date.now()) and replayed to it.

export const bus = new EventTarget();
const LOG_MAX = 400;                        // events kept for late listeners (a session's first minutes, far less)
const NOT_LOGGED = new Set(["target:update", "page:progress"]);  // per frame / per chunk: only live listeners
export const log = [];                       // [{name, detail, at}]

export function emit(name, detail = {}) {
  const at = Date.now();
  if (!NOT_LOGGED.has(name)) {
    log.push({ name, detail, at });
    if (log.length > LOG_MAX) log.shift();
  }
  bus.dispatchEvent(new CustomEvent(name, { detail: { ...detail, at } }));
}

export function on(name, handler) {
  const listener = (e) => handler(e.detail);
  bus.addEventListener(name, listener);
  return () => bus.removeEventListener(name, listener);
}

// handler(name, detail) for each logged event in order, then live for every event named in `names`. The detail carries
// `at` (ms since the epoch, when it was emitted). Returns a function that stops listening.
export function replayAndListen(names, handler) {
  for (const e of log) if (names.includes(e.name)) handler(e.name, { ...e.detail, at: e.at });
  const offs = names.map((n) => on(n, (d) => handler(n, d)));
  return () => offs.forEach((off) => off());
}
