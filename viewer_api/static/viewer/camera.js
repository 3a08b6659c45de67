// Camera stage: opens the rear camera, delivers each new video frame as ImageData at processing size.
// Processing size: the video downscaled so its long side is at most PROCESS_LONG_SIDE (tracking cost grows with
// pixels; 640 px keeps ORB ≈40 ms and LK ≈8 ms on a 2-core laptop). All tracker coordinates are in these pixels.

import { emit } from "./events.js";

export const PROCESS_LONG_SIDE = 640;

export class Camera {
  // constraints: getUserMedia's (the page config's "camera", which the boot script uses on the tap too)
  constructor(video, longSide = PROCESS_LONG_SIDE, constraints = { audio: false, video: true }) {
    this.video = video;
    this.constraints = constraints;
    this.longSide = longSide;
    this.stream = null;
    this.canvas = document.createElement("canvas");
    this.ctx = null;
    this.width = 0;
    this.height = 0;
    this._running = false;
  }

  // Must be called from a user gesture on iOS. Resolves {width, height} or throws an Error with .reason.
  // early: the getUserMedia promise the page's boot script started on the reader's tap (same constraints), before
  // this module had loaded.
  async start(early = null) {
    if (!window.isSecureContext || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      throw Object.assign(new Error("camera needs https"), { reason: window.isSecureContext ? "unavailable" : "insecure" });
    }
    try {
      this.stream = await (early || navigator.mediaDevices.getUserMedia(this.constraints));
    } catch (err) {
      const denied = err && (err.name === "NotAllowedError" || err.name === "SecurityError");
      throw Object.assign(new Error(err && err.message), { reason: denied ? "denied" : "unavailable" });
    }
    this.video.srcObject = this.stream;
    this.video.muted = true;
    this.video.setAttribute("playsinline", "");
    await this.video.play();
    if (!this.video.videoWidth) await new Promise((r) => this.video.addEventListener("loadedmetadata", r, { once: true }));
    this.setLongSide(this.longSide);
    emit("camera:started", { width: this.width, height: this.height });
    return { width: this.width, height: this.height };
  }

  // Processing size: the video scaled so that its long side is at most `longSide` px.
  setLongSide(longSide) {
    this.longSide = longSide;
    const vw = this.video.videoWidth, vh = this.video.videoHeight;
    const scale = Math.min(1, longSide / Math.max(vw, vh));
    this.width = Math.round(vw * scale);
    this.height = Math.round(vh * scale);
    this.canvas.width = this.width;
    this.canvas.height = this.height;
    this.ctx = this.canvas.getContext("2d", { willReadFrequently: true });
    return { width: this.width, height: this.height };
  }

  stop() {
    this._running = false;
    if (this.stream) this.stream.getTracks().forEach((t) => t.stop());
    this.stream = null;
  }

  // Calls onFrame(imageData, timestampMs) once per new camera frame until stop().
  // The callback may be async; frames arriving while it runs are skipped (never queued: no growing lag).
  run(onFrame) {
    this._running = true;
    let busy = false;
    const v = this.video;
    const tick = async (now) => {
      if (!this._running) return;
      schedule();
      if (busy || v.readyState < 2) return;
      busy = true;
      try {
        this.ctx.drawImage(v, 0, 0, this.width, this.height);
        const img = this.ctx.getImageData(0, 0, this.width, this.height);
        await onFrame(img, now);
      } finally {
        busy = false;
      }
    };
    const schedule = () => {
      if (v.requestVideoFrameCallback) v.requestVideoFrameCallback((now) => tick(now));
      else requestAnimationFrame(tick);
    };
    schedule();
  }

  // JPEG of the current processing-size frame (for server recognition).
  async snapshotJpeg(quality = 0.8) {
    return new Promise((resolve) => this.canvas.toBlob(resolve, "image/jpeg", quality));
  }
}

// ImageData (RGBA) -> grey bytes written into `out` (Uint8Array of w*h), BT.601 luma with integer weights.
export function toGrey(img, out) {
  const d = img.data;
  for (let i = 0, j = 0; j < out.length; i += 4, j++) out[j] = (77 * d[i] + 150 * d[i + 1] + 29 * d[i + 2]) >> 8;
  return out;
}
