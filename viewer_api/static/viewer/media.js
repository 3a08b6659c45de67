// Media stage: what each overlay kind does once its node is on the page.
//   video / animated_image : <video> texture on the overlay quad (muted autoplay, loop; chroma key in a shader)
//   audio                  : a sound control on its quad (play/pause button, progress); plays/pauses on tap
//   image / model3d        : drawn from the GLB itself (model animations run in the renderer's AnimationMixer)
//   panorama360            : tap opens a full-screen 360° view (device orientation on phones, drag on computers)
//   link                   : tap opens the URL
// One registry of kind -> controller factory instead of if-chains.

import * as THREE from "three";
import { emit } from "./events.js";

const CHROMA_DEFAULT = { color: "#00ff00", similarity: 0.16, smoothness: 0.08, spill: 0.15 };

const CHROMA_VERTEX = `
varying vec2 vUv;
void main() { vUv = uv; gl_Position = projectionMatrix * modelViewMatrix * vec4(position, 1.0); }`;

// Key on chroma (Cb, Cr) distance so shadows and highlights of the green screen key out alike; soft edge over
// `smoothness`; spill suppression pulls the key colour out of the remaining edge pixels.
const CHROMA_FRAGMENT = `
uniform sampler2D map; uniform vec3 keyColor; uniform float similarity; uniform float smoothness; uniform float spill;
varying vec2 vUv;
vec2 chroma(vec3 c) { return vec2(-0.169 * c.r - 0.331 * c.g + 0.5 * c.b, 0.5 * c.r - 0.419 * c.g - 0.081 * c.b); }
void main() {
  vec4 c = texture2D(map, vUv);
  float d = distance(chroma(c.rgb), chroma(keyColor));
  float a = smoothstep(similarity, similarity + smoothness, d);
  float s = pow(smoothstep(similarity, similarity + spill, d), 1.5);
  float grey = dot(c.rgb, vec3(0.2126, 0.7152, 0.0722));
  vec3 rgb = mix(vec3(grey), c.rgb, s);
  if (a < 0.01) discard;
  gl_FragColor = vec4(rgb, c.a * a);
  #include <colorspace_fragment>
}`;

export function chromaKeyMaterial(texture, options) {
  // chroma_key may be true, a colour string ("#00ff00") or {color, similarity, smoothness, spill}
  const given = typeof options === "string" ? { color: options } : (typeof options === "object" ? options : {});
  const o = { ...CHROMA_DEFAULT, ...given };
  return new THREE.ShaderMaterial({
    uniforms: {
      map: { value: texture },
      keyColor: { value: new THREE.Color(o.color) },
      similarity: { value: o.similarity },
      smoothness: { value: o.smoothness },
      spill: { value: o.spill },
    },
    vertexShader: CHROMA_VERTEX,
    fragmentShader: CHROMA_FRAGMENT,
    transparent: true,
    side: THREE.DoubleSide,
  });
}

// A material put in place of the bundle's keeps its depth order on the paper (renderer.js liftFlatOverlay).
function keepDepthOrder(next, previous) {
  next.polygonOffset = previous.polygonOffset;
  next.polygonOffsetFactor = previous.polygonOffsetFactor;
  next.polygonOffsetUnits = previous.polygonOffsetUnits;
  return next;
}

function meshesOf(object) {
  const out = [];
  object.traverse((o) => { if (o.isMesh) out.push(o); });
  return out;
}

// ---------- progress quartiles of a video / audio overlay (readership analytics, issue 26) ----------
// media:quartile {pageId, id, kind, quartile} when a play reaches 25/50/75/100 % of the clip, each once per play. A
// play begins at the start of the clip: a looping video that wraps around, or a clip started again after its end,
// is a new play (the wrap itself completes the old one). Read on timeupdate (~4 a second), never per frame.
const QUARTILES = [25, 50, 75, 100];
const END_SLACK_S = 0.3;   // timeupdate fires every ~250 ms: within this of the end counts as the end

export function watchQuartiles(el, overlay, pageId) {
  let reached = 0;          // highest quartile emitted in this play
  let last = 0;             // currentTime at the previous timeupdate
  const report = (upTo) => {
    for (const q of QUARTILES) {
      if (q > reached && q <= upTo) {
        reached = q;
        emit("media:quartile", { pageId, id: overlay.id, kind: overlay.kind, quartile: q });
      }
    }
  };
  const onTime = () => {
    const d = el.duration, t = el.currentTime;
    if (!(d > 0) || !Number.isFinite(d)) return;
    if (t + END_SLACK_S < last && last >= d * 0.75) {  // wrapped around (loop): the old play reached its end
      report(100);
      reached = 0;
    }
    last = t;
    report(t >= d - END_SLACK_S ? 100 : Math.floor((100 * t) / d));
  };
  const onEnded = () => { report(100); last = el.duration || 0; };
  const onPlay = () => {  // started again from the beginning (after its end, or a replay): a new play
    if (el.currentTime < END_SLACK_S) reached = 0;
    last = el.currentTime;
  };
  el.addEventListener("timeupdate", onTime);
  el.addEventListener("ended", onEnded);
  el.addEventListener("play", onPlay);
  return () => {
    el.removeEventListener("timeupdate", onTime);
    el.removeEventListener("ended", onEnded);
    el.removeEventListener("play", onPlay);
  };
}

// ---------- controllers (one per overlay) ----------

function videoController(overlay, ctx) {
  const spec = overlay.spec;
  const el = document.createElement("video");
  el.crossOrigin = "anonymous";
  el.playsInline = true;
  el.setAttribute("playsinline", "");
  el.preload = "auto";
  el.loop = spec.loop !== false;
  const alwaysMuted = overlay.kind === "animated_image";
  el.muted = true;  // autoplay is only allowed muted; sound comes on a tap
  el.defaultMuted = true;
  el.src = ctx.resolve(spec.src);
  const tex = new THREE.VideoTexture(el);
  tex.colorSpace = THREE.SRGBColorSpace;
  tex.flipY = false;  // glTF UVs have their origin at the image's top-left
  const key = spec.chroma_key;
  // The bundle's own material (its poster) stays until the video has a frame: on a phone network the video arrives
  // seconds after the first overlay, and a video texture without data draws a black box on the paper.
  const useVideo = () => {
    for (const mesh of meshesOf(overlay.object)) {
      const next = key ? chromaKeyMaterial(tex, key)
        : new THREE.MeshBasicMaterial({ map: tex, side: THREE.DoubleSide, toneMapped: false });
      mesh.material = keepDepthOrder(next, mesh.material);
    }
  };
  if (el.readyState >= 2) useVideo();
  else el.addEventListener("loadeddata", useVideo, { once: true });
  const wantsSound = !alwaysMuted;  // videos start muted (autoplay rule); "tap for sound" is always offered
  const unwatch = overlay.kind === "video" ? watchQuartiles(el, overlay, ctx.pageId) : () => {};
  return {
    element: el,
    show() {
      if (spec.autoplay === false && !this.started) return;
      this.started = true;
      el.play().catch(() => {});
      if (wantsSound && el.muted) ctx.offerUnmute(this);
    },
    hide() { el.pause(); },
    unmute() { if (!alwaysMuted) { el.muted = false; el.play().catch(() => {}); } },
    tap() {
      this.started = true;
      if (el.paused) el.play().catch(() => {});
      if (!alwaysMuted && el.muted) this.unmute();
    },
    state() { return { id: overlay.id, kind: overlay.kind, currentTime: el.currentTime, duration: el.duration, paused: el.paused, muted: el.muted }; },
    dispose() { unwatch(); el.pause(); el.removeAttribute("src"); el.load(); tex.dispose(); },
  };
}

// The sound control drawn on the audio overlay's quad (the bundle's own poster is the same control at rest,
// builder/bundle.py audio_placeholder, with the same layout): a round play/pause button inside a progress ring, and
// a progress bar with the time. Redrawn on every change of state and, while playing, on every display frame.
const AUDIO_ACCENT = "#e8572e";        // viewer.css --accent, as the bundle's poster
const AUDIO_TRACK = "#f6beaa";         // the unplayed part of the ring and bar
const AUDIO_WIDE_ASPECT = 1.6;         // as bundle.py: wider boxes put the bar beside the button
const AUDIO_CANVAS_LONG_SIDE = 512;    // px: sharp on a phone at arm's length, 1 MB of texture at most

function audioLayout(w, h) {
  if (w / h >= AUDIO_WIDE_ASPECT) {
    return { cx: h * 0.5, cy: h * 0.5, r: h * 0.34, bar: [h * 0.98, w - h * 0.3, h * 0.62, Math.max(2, h * 0.09)],
             text: [h * 0.98, h * 0.36, h * 0.22] };
  }
  const s = Math.min(w, h);
  return { cx: w / 2, cy: h * 0.44, r: s * 0.3, bar: [w * 0.14, w * 0.86, h * 0.86, Math.max(2, s * 0.06)], text: null };
}

function clock(seconds) {
  const t = Math.max(0, Math.floor(seconds || 0));
  return `${Math.floor(t / 60)}:${String(t % 60).padStart(2, "0")}`;
}

export function drawAudioControl(g, w, h, { playing, fraction, elapsed, duration }) {
  const { cx, cy, r, bar, text } = audioLayout(w, h);
  const ring = Math.max(2, Math.round(r * 0.14));
  g.fillStyle = AUDIO_ACCENT;
  g.fillRect(0, 0, w, h);
  g.lineCap = "round";
  g.lineWidth = ring;
  g.strokeStyle = AUDIO_TRACK;
  g.beginPath(); g.arc(cx, cy, r - ring / 2, 0, 2 * Math.PI); g.stroke();
  if (fraction > 0) {
    g.strokeStyle = "#fff";
    g.beginPath(); g.arc(cx, cy, r - ring / 2, -Math.PI / 2, -Math.PI / 2 + 2 * Math.PI * fraction); g.stroke();
  }
  const inner = r - ring * 1.6;
  g.fillStyle = "#fff";
  g.beginPath(); g.arc(cx, cy, inner, 0, 2 * Math.PI); g.fill();
  g.fillStyle = AUDIO_ACCENT;
  const t = inner * 0.5;
  if (playing) {  // pause: two bars
    g.fillRect(cx - t * 0.75, cy - t, t * 0.5, 2 * t);
    g.fillRect(cx + t * 0.25, cy - t, t * 0.5, 2 * t);
  } else {        // play: a triangle, its centroid on the button's centre
    g.beginPath(); g.moveTo(cx - t * 0.6, cy - t); g.lineTo(cx - t * 0.6, cy + t); g.lineTo(cx + t, cy); g.closePath(); g.fill();
  }
  const [x0, x1, y, thick] = bar;
  g.lineWidth = thick;
  g.strokeStyle = AUDIO_TRACK;
  g.beginPath(); g.moveTo(x0, y); g.lineTo(x1, y); g.stroke();
  if (fraction > 0) {
    g.strokeStyle = "#fff";
    g.beginPath(); g.moveTo(x0, y); g.lineTo(x0 + (x1 - x0) * fraction, y); g.stroke();
  }
  if (text) {
    const [tx, ty, size] = text;
    const label = duration ? `${clock(elapsed)} / ${clock(duration)}` : clock(elapsed);
    g.fillStyle = "#fff";
    g.textBaseline = "middle";
    g.font = `600 ${Math.round(size)}px system-ui, sans-serif`;
    const room = x1 - tx, used = g.measureText(label).width;  // the time ends where the bar ends
    if (used > room) g.font = `600 ${Math.floor(size * room / used)}px system-ui, sans-serif`;
    g.fillText(label, tx, ty);
  }
}

// The box-sized quad of an audio node that has none (bundles published before issue 24): in the node's XZ plane,
// facing +Y, its image upright on the page (v = 0, the image's top row, toward the page's top at -Z), as bundle.py
// lays every quad. Pulled toward the camera like the flat overlays renderer.js lifts (the last overlay's step).
function audioQuad(spec, material) {
  const g = new THREE.PlaneGeometry((Number(spec.width_mm) || 20) / 1000, (Number(spec.height_mm) || 20) / 1000);
  g.rotateX(-Math.PI / 2);  // XY plane -> XZ plane, normal +Y; PlaneGeometry's v = 1 edge now lies toward -Z
  const uv = g.attributes.uv;
  for (let i = 0; i < uv.count; i++) uv.setY(i, 1 - uv.getY(i));
  material.polygonOffset = true;
  material.polygonOffsetFactor = -1;
  material.polygonOffsetUnits = -64;
  return new THREE.Mesh(g, material);
}

function audioController(overlay, ctx) {
  const spec = overlay.spec;
  const el = new Audio();
  el.preload = "auto";
  el.loop = !!spec.loop;
  el.src = ctx.resolve(spec.src);
  // the live control replaces the bundle's poster at once (it shows the same control at rest)
  const aspect = Math.max(1e-3, Number(spec.width_mm) || 1) / Math.max(1e-3, Number(spec.height_mm) || 1);
  const canvas = document.createElement("canvas");
  canvas.width = Math.round(aspect >= 1 ? AUDIO_CANVAS_LONG_SIDE : AUDIO_CANVAS_LONG_SIDE * aspect);
  canvas.height = Math.round(aspect >= 1 ? AUDIO_CANVAS_LONG_SIDE / aspect : AUDIO_CANVAS_LONG_SIDE);
  const g = canvas.getContext("2d");
  const tex = new THREE.CanvasTexture(canvas);
  tex.colorSpace = THREE.SRGBColorSpace;
  tex.flipY = false;  // glTF UVs have their origin at the image's top-left
  const material = new THREE.MeshBasicMaterial({ map: tex, side: THREE.DoubleSide, toneMapped: false });
  const meshes = meshesOf(overlay.object);
  for (const mesh of meshes) mesh.material = keepDepthOrder(material, mesh.material);
  if (!meshes.length) overlay.object.add(audioQuad(spec, material));  // a bundle published before audio had a quad
  let frame = null;
  const progress = () => (el.duration > 0 && Number.isFinite(el.duration) ? Math.min(1, el.currentTime / el.duration) : 0);
  const draw = () => {
    drawAudioControl(g, canvas.width, canvas.height, { playing: !el.paused, fraction: progress(),
                                                       elapsed: el.currentTime, duration: el.duration });
    tex.needsUpdate = true;
  };
  const animate = () => {
    draw();
    frame = el.paused ? null : requestAnimationFrame(animate);
  };
  const onChange = () => {
    if (!el.paused && frame === null) frame = requestAnimationFrame(animate);
    draw();
  };
  for (const type of ["play", "pause", "ended", "loadedmetadata", "seeked", "emptied"]) el.addEventListener(type, onChange);
  const unwatch = watchQuartiles(el, overlay, ctx.pageId);
  draw();
  return {
    element: el,
    show() {},
    hide() { el.pause(); },
    tap() { if (el.paused) el.play().catch(() => {}); else el.pause(); },
    state() {
      return { id: overlay.id, kind: overlay.kind, currentTime: el.currentTime, paused: el.paused, muted: el.muted,
               progress: progress() };
    },
    dispose() {
      unwatch();
      el.pause();
      el.removeAttribute("src");  // the element lets go of the stream (and of a signed premium URL, issue 27)
      el.load();
      if (frame !== null) cancelAnimationFrame(frame);
      tex.dispose();
    },
  };
}

function panoramaController(overlay, ctx) {
  return {
    show() {}, hide() {},
    tap() { openPanorama(ctx.resolve(overlay.spec.src), overlay.spec, { id: overlay.id, pageId: ctx.pageId }); },
    state() { return { id: overlay.id, kind: overlay.kind }; },
    dispose() {},
  };
}

function linkController(overlay, ctx) {
  const url = overlay.spec.url || overlay.spec.href || overlay.spec.src;
  return {
    show() {}, hide() {},
    tap() { if (url) window.open(ctx.resolve(url), "_blank", "noopener"); },
    state() { return { id: overlay.id, kind: overlay.kind, url }; },
    dispose() {},
  };
}

function staticController(overlay) {
  return { show() {}, hide() {}, tap() {}, state() { return { id: overlay.id, kind: overlay.kind }; }, dispose() {} };
}

const CONTROLLERS = {
  video: videoController,
  animated_image: videoController,
  audio: audioController,
  panorama360: panoramaController,
  link: linkController,
  image: staticController,
  model3d: staticController,
};

// overlay: {id, kind, spec, object}; ctx: {resolve(src) -> url, offerUnmute(controller)}
export function attachOverlay(overlay, ctx) {
  const make = CONTROLLERS[overlay.kind] || staticController;
  return make(overlay, ctx);
}

// ---------- full-screen 360° panorama ----------

let pano = null;

function orientationQuaternion(alpha, beta, gamma, screenAngle) {
  // W3C deviceorientation (Z-X'-Y'' intrinsic, degrees) -> camera quaternion looking out of the back of the phone.
  const d = THREE.MathUtils.DEG2RAD;
  const euler = new THREE.Euler(beta * d, alpha * d, -gamma * d, "YXZ");
  const q = new THREE.Quaternion().setFromEuler(euler);
  q.multiply(new THREE.Quaternion(-Math.sqrt(0.5), 0, 0, Math.sqrt(0.5)));  // camera looks out the back, not the top
  q.multiply(new THREE.Quaternion().setFromAxisAngle(new THREE.Vector3(0, 0, 1), -screenAngle * d));
  return q;
}

// from: {id, pageId} of the overlay opened (panorama:open carries them for the readership analytics)
export async function openPanorama(url, spec = {}, from = {}) {
  const section = document.getElementById("panorama");
  const canvas = document.getElementById("panorama-gl");
  section.hidden = false;
  emit("panorama:open", { url, id: from.id ?? null, pageId: from.pageId ?? null });
  // iOS asks for motion permission, and only inside a user gesture (this runs from the tap).
  if (window.DeviceOrientationEvent && typeof DeviceOrientationEvent.requestPermission === "function") {
    try { await DeviceOrientationEvent.requestPermission(); } catch (e) { /* drag still works */ }
  }
  const renderer = new THREE.WebGLRenderer({ canvas, antialias: false });
  renderer.setPixelRatio(Math.min(2, window.devicePixelRatio || 1));
  const scene = new THREE.Scene();
  const camera = new THREE.PerspectiveCamera(75, 1, 0.1, 100);
  const geometry = new THREE.SphereGeometry(10, 60, 40);
  geometry.scale(-1, 1, 1);  // look at the inside of the sphere
  let texture;
  if (/\.(mp4|webm|mov)(\?|$)/i.test(url) || (spec.mime || "").startsWith("video/")) {
    const v = document.createElement("video");
    Object.assign(v, { src: url, loop: true, muted: true, playsInline: true, crossOrigin: "anonymous" });
    v.play().catch(() => {});
    texture = new THREE.VideoTexture(v);
  } else {
    texture = new THREE.TextureLoader().load(url);
  }
  texture.colorSpace = THREE.SRGBColorSpace;
  scene.add(new THREE.Mesh(geometry, new THREE.MeshBasicMaterial({ map: texture })));
  let yaw = 0, pitch = 0, orient = null, drag = null;
  const onOrient = (e) => { if (e.alpha !== null) orient = e; };
  const onDown = (e) => { drag = { x: e.clientX, y: e.clientY, yaw, pitch }; canvas.setPointerCapture(e.pointerId); };
  const onMove = (e) => {
    if (!drag) return;
    yaw = drag.yaw + (e.clientX - drag.x) * 0.005;
    pitch = Math.max(-1.5, Math.min(1.5, drag.pitch + (e.clientY - drag.y) * 0.005));
  };
  const onUp = () => { drag = null; };
  window.addEventListener("deviceorientation", onOrient);
  canvas.addEventListener("pointerdown", onDown);
  canvas.addEventListener("pointermove", onMove);
  canvas.addEventListener("pointerup", onUp);
  const resize = () => {
    const w = section.clientWidth, h = section.clientHeight;
    renderer.setSize(w, h, false);
    camera.aspect = w / Math.max(1, h);
    camera.updateProjectionMatrix();
  };
  resize();
  window.addEventListener("resize", resize);
  renderer.setAnimationLoop(() => {
    if (orient && !drag) {
      const screenAngle = (screen.orientation && screen.orientation.angle) || 0;
      camera.quaternion.copy(orientationQuaternion(orient.alpha, orient.beta, orient.gamma, screenAngle));
      camera.rotateY(yaw);
    } else {
      camera.rotation.set(pitch, yaw, 0, "YXZ");
    }
    renderer.render(scene, camera);
  });
  pano = {
    close() {
      renderer.setAnimationLoop(null);
      window.removeEventListener("deviceorientation", onOrient);
      window.removeEventListener("resize", resize);
      canvas.removeEventListener("pointerdown", onDown);
      canvas.removeEventListener("pointermove", onMove);
      canvas.removeEventListener("pointerup", onUp);
      texture.dispose(); geometry.dispose(); renderer.dispose();
      section.hidden = true;
      emit("panorama:close", {});
    },
  };
  document.getElementById("panorama-close").onclick = () => closePanorama();
}

export function closePanorama() {
  if (pano) pano.close();
  pano = null;
}
