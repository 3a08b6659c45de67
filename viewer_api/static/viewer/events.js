// Renderer-neutral events between the viewer's stages (camera → recognition → tracker → pose → renderer/UI).
// Each stage only emits facts ("target:update" with corners and a pose), never calls another stage's UI.
//
// Event names and details (all coordinates in video pixels, OpenCV convention: origin top-left, pixel centres
// at integer coordinates):
//   camera:started   {width, height}          camera:error {reason: "denied"|"unavailable"|"insecure"}
//   recognition:match {pageId, editionId, manifestUrl, homography, corners, frameSize}
//   page:progress    {pageId, loaded, total}  page:ready {pageId}    page:error {pageId, message}
//   target:found     {pageId}                 target:lost {pageId}
//   target:update    {pageId, corners, homography, pose: {modelView: Float64Array(16) column-major, focal}}
//   overlay:activate {id, kind}

export const bus = new EventTarget();

export function emit(name, detail = {}) {
  bus.dispatchEvent(new CustomEvent(name, { detail }));
}

export function on(name, handler) {
  const listener = (e) => handler(e.detail);
  bus.addEventListener(name, listener);
  return () => bus.removeEventListener(name, listener);
}
