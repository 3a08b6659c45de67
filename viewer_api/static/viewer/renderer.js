// Renderer stage (three.js): the page's GLB anchored on the paper.
// The camera sits at the origin with the projection of the real camera's intrinsics; the page root carries the
// model-view matrix from pose.js (glTF page frame -> three.js camera frame). The canvas has the size and aspect of
// the processed camera frame and is laid over the <video> with the same CSS box, so pixels agree.
//
// GLB conventions (builder/bundle.py): overlay nodes carry extras.overlay = {id, kind, src, …} (GLTFLoader puts
// extras into userData); the page plane node is hidden by default. Node names are rewritten by GLTFLoader, so we
// key on extras only.
//
// Parts (issue 27): a premium part is one more GLB of the same conventions, parsed by the same loader and hung on the
// same page root (loadPart / removePart); its overlays join `overlays` with `premium: true`. The free bundle's teaser
// nodes of those overlays are hidden meanwhile (setHidden): a hidden overlay is not shown, measured or picked.

import * as THREE from "three";
import { GLTFLoader } from "three/addons/loaders/GLTFLoader.js";
import { DRACOLoader } from "three/addons/loaders/DRACOLoader.js";
import { MeshoptDecoder } from "three/addons/libs/meshopt_decoder.module.js";
import { OrbitControls } from "three/addons/controls/OrbitControls.js";
import { RoomEnvironment } from "three/addons/environments/RoomEnvironment.js";

// Image-based light for lit (PBR) models, as a product viewer lights them: without it a model with no material
// (glTF's default is fully metallic) or a metallic one reflects nothing but two lights and renders nearly black.
// Khronos PBR Neutral tone mapping, made for product viewers: base colours stay true, highlights of the bright room
// roll off instead of clipping (untoned, a white model was a flat white disc). Only lit materials are tone mapped:
// the paper, posters, videos and images (unlit) are shown as they are.
const ENV_BLUR_SIGMA = 0.04;      // RoomEnvironment's usual blur: soft reflections, no visible room edges
const SUN_INTENSITY = 0.8;        // one directional light on top of the environment: a shading cue, not the light
const ENV_INTENSITY = 0.6;        // the room is bright: at 1 a white model is a near-white disc with little shape
// Depth order on the paper. Overlays at elevation 0 lie exactly in the page plane: two coplanar surfaces give the
// depth test equal depths up to interpolation noise, seen as flickering stripes (depth fighting). The paper is
// therefore drawn first and never writes depth (nothing can lose to it; it cannot hide what lies above it), and each
// flat overlay is pulled toward the camera by a polygon offset growing with its order, so overlays overlapping each
// other at one elevation keep the page's order too. A polygon offset is in depth-buffer steps and slope, so unlike a
// lift in millimetres it holds at any distance and viewing angle; a lift would also move the overlay on the paper.
const PAPER_RENDER_ORDER = -1;
const OVERLAY_OFFSET_STEP = 2;    // depth-buffer units between successive flat overlays (1 is the resolvable minimum)
// The plain 3D view: the page seen from above at this direction (up and toward the reader), fitted to the screen
// in both directions with this share of the half-screen kept free.
const VIEW3D_DIRECTION = new THREE.Vector3(0, 1.1, 0.75).normalize();
const VIEW3D_FILL = 0.9;
const VIEW3D_FOV = 50;

export function overlaySpecOf(object) {
  const ud = object.userData || {};
  return ud.overlay || (ud.extras && ud.extras.overlay) || null;
}

export function isPagePlane(object) {
  const ud = object.userData || {};
  return !!(ud.page_plane || ud.pagePlane || ud.role === "page" || (ud.page && !ud.overlay));
}

// The paper is drawn before everything and writes no depth: no overlay can fight it (see PAPER_RENDER_ORDER).
// It is opaque (a page image with an alpha channel would otherwise move it to three.js's transparent pass, drawn
// after the overlays and over them).
function layPaper(mesh) {
  mesh.renderOrder = PAPER_RENDER_ORDER;
  for (const m of [].concat(mesh.material)) {
    if (!m) continue;
    m.depthWrite = false;
    m.transparent = false;
  }
}

// A flat overlay (quad on the paper) of the page's i-th overlay: pulled toward the camera by a polygon offset.
// media.js copies it onto the materials it puts in place (keepDepthOrder).
function liftFlatOverlay(material, i) {
  for (const m of [].concat(material)) {
    if (!m) continue;
    m.polygonOffset = true;
    m.polygonOffsetFactor = -1;
    m.polygonOffsetUnits = -OVERLAY_OFFSET_STEP * (i + 1);
  }
}

// The GPU resources under a root: {geometries, materials, textures} (Sets; added to `into` when given).
export function resourcesOf(root, into = { geometries: new Set(), materials: new Set(), textures: new Set() }) {
  root.traverse((o) => {
    if (o.geometry) into.geometries.add(o.geometry);
    for (const m of [].concat(o.material || [])) {
      into.materials.add(m);
      for (const value of Object.values(m)) if (value && value.isTexture) into.textures.add(value);
      if (m.uniforms) for (const u of Object.values(m.uniforms)) if (u && u.value && u.value.isTexture) into.textures.add(u.value);
    }
  });
  return into;
}

// Release them (a decoded ImageBitmap is closed too: its memory outlives the texture otherwise).
export function disposeResources({ geometries, materials, textures }) {
  for (const g of geometries) g.dispose();
  for (const m of materials) m.dispose();
  for (const t of textures) {
    t.dispose();
    if (t.image && typeof t.image.close === "function") t.image.close();
  }
}

export class PageRenderer {
  constructor(canvas, { dracoPath } = {}) {
    this.canvas = canvas;
    // No MSAA: on software GL (CI) it doubles the frame cost; phones render at devicePixelRatio ≥ 2 anyway.
    this.renderer = new THREE.WebGLRenderer({ canvas, alpha: true, antialias: false, powerPreference: "high-performance" });
    this.renderer.setClearColor(0x000000, 0);
    this.renderer.outputColorSpace = THREE.SRGBColorSpace;
    this.renderer.toneMapping = THREE.NeutralToneMapping;
    this.scene = new THREE.Scene();
    this.camera = new THREE.PerspectiveCamera(60, 4 / 3, 0.01, 100);
    this.camera.matrixAutoUpdate = false;
    this.pageRoot = new THREE.Group();
    this.pageRoot.matrixAutoUpdate = false;
    this.pageRoot.visible = false;
    this.scene.add(this.pageRoot);
    // Light for lit (PBR) models such as the stock pin; bundle quads are unlit (KHR_materials_unlit) and ignore it.
    // The environment (scene.environment) is made when a bundle holds a lit material (lightModels).
    const sun = new THREE.DirectionalLight(0xffffff, SUN_INTENSITY);
    sun.position.set(0.3, 1, 0.5);
    this.scene.add(sun);
    this.loader = new GLTFLoader();
    this.loader.setMeshoptDecoder(MeshoptDecoder);
    if (dracoPath) {
      const draco = new DRACOLoader();
      draco.setDecoderPath(dracoPath);
      this.loader.setDRACOLoader(draco);
    }
    this.mixer = null;
    this.pendingEnvironment = null;  // a loaded scene whose lit materials want the environment (lightModels)
    this.clock = new THREE.Clock();
    this.overlays = [];     // {id, kind, spec, object, controller[, premium, hidden]}
    this.parts = [];        // loaded parts (loadPart): {scene, overlays, mixer}
    this.pagePlanes = [];
    this.gltf = null;
    this.width = 640; this.height = 480;
    this.mode = "ar";       // "ar" (camera or photo) | "view3d" (plain 3D view, no camera)
    this.controls = null;
    // With a live camera we draw once per processed camera frame (requestRender), not on every display refresh:
    // the overlays cannot move more often than the tracker updates them, and the main thread is shared with it.
    this.live = false;
    this.dirty = true;
    this.renderer.setAnimationLoop(() => this._frame());
  }

  setViewport(width, height) {
    this.width = width; this.height = height;
    this.renderer.setPixelRatio(Math.min(2, window.devicePixelRatio || 1));
    this.renderer.setSize(width, height, false);
  }

  // Load a page bundle (GLB url). onProgress(loaded, total). Resolves the overlay list.
  async loadBundle(url, onProgress) {
    this.clear();
    const gltf = await this.loader.loadAsync(url, (e) => onProgress && onProgress(e.loaded, e.total || 0));
    this.gltf = gltf;
    this.pageRoot.add(gltf.scene);
    gltf.scene.traverse((o) => {
      const spec = overlaySpecOf(o);
      if (spec) this.overlays.push({ id: String(spec.id), kind: spec.kind, spec, object: o, controller: null });
      else if (isPagePlane(o)) { this.pagePlanes.push(o); o.visible = false; }
    });
    gltf.scene.traverse((o) => {  // images (unlit: KHR_materials_unlit) are shown as they are, never tone mapped
      if (o.isMesh) for (const m of [].concat(o.material)) if (m && m.isMeshBasicMaterial) m.toneMapped = false;
    });
    for (const plane of this.pagePlanes) plane.traverse((m) => { if (m.isMesh) layPaper(m); });
    this.overlays.forEach((o, i) => {
      if (o.kind === "model3d") return;
      o.object.traverse((m) => { if (m.isMesh) liftFlatOverlay(m.material, i); });
    });
    this.pendingEnvironment = gltf.scene;  // made after the first frame that shows it (lightModels, _frame)
    if (gltf.animations && gltf.animations.length) {
      this.mixer = new THREE.AnimationMixer(gltf.scene);
      for (const clip of gltf.animations) this.mixer.clipAction(clip).play();
    }
    return this.overlays;
  }

  // scene.environment from three.js's RoomEnvironment (PMREM), made once, only when a lit material is shown, and
  // only after the first frame that shows the page (~130 ms of a 2-core laptop's software GL, ~390 ms at 6x CPU
  // throttling): the first overlay never waits for it; lit models brighten a frame later.
  lightModels(root) {
    if (this.scene.environment) return;
    let lit = false;
    root.traverse((o) => {
      if (!o.isMesh) return;
      for (const m of [].concat(o.material)) if (m && (m.isMeshStandardMaterial || m.isMeshPhongMaterial || m.isMeshLambertMaterial)) lit = true;
    });
    if (!lit) return;
    const pmrem = new THREE.PMREMGenerator(this.renderer);
    const room = new RoomEnvironment();
    this.scene.environment = pmrem.fromScene(room, ENV_BLUR_SIGMA).texture;
    this.scene.environmentIntensity = ENV_INTENSITY;
    room.dispose();
    pmrem.dispose();
  }

  // Parse a part (a GLB's bytes) with the bundle loader and hang it on the page root beside the bundle. Its overlays
  // are appended to `overlays` (flagged premium) and returned in the part; controllers are attached by the caller
  // (attachControllers(factory, part.overlays)). Nothing of the part is cached by three.js (THREE.Cache is off).
  async loadPart(bytes) {
    const gltf = await this.loader.parseAsync(bytes, "");
    // resources as loaded: the media controllers put their own materials in place of some, which are then no longer
    // reachable from the scene but still hold GPU memory
    const part = { scene: gltf.scene, overlays: [], mixer: null, resources: resourcesOf(gltf.scene) };
    gltf.scene.traverse((o) => {
      const spec = overlaySpecOf(o);
      if (spec) part.overlays.push({ id: String(spec.id), kind: spec.kind, spec, object: o, controller: null, premium: true });
      else if (isPagePlane(o)) o.visible = false;
    });
    gltf.scene.traverse((o) => {
      if (o.isMesh) for (const m of [].concat(o.material)) if (m && m.isMeshBasicMaterial) m.toneMapped = false;
    });
    // depth order after the bundle's flat overlays (see OVERLAY_OFFSET_STEP)
    part.overlays.forEach((o, i) => {
      if (o.kind === "model3d") return;
      o.object.traverse((m) => { if (m.isMesh) liftFlatOverlay(m.material, this.overlays.length + i); });
    });
    if (gltf.animations && gltf.animations.length) {
      part.mixer = new THREE.AnimationMixer(gltf.scene);
      for (const clip of gltf.animations) part.mixer.clipAction(clip).play();
    }
    this.pageRoot.add(gltf.scene);
    this.overlays.push(...part.overlays);
    this.parts.push(part);
    if (!this.pendingEnvironment) this.pendingEnvironment = gltf.scene;
    this.requestRender();
    return part;
  }

  // Take a part off the page: its controllers disposed (media emptied), its overlays forgotten, and every GPU
  // resource of it released (geometries, materials, textures; decoded images closed). False if it was not attached.
  removePart(part) {
    const at = this.parts.indexOf(part);
    if (at < 0) return false;
    this.parts.splice(at, 1);
    for (const o of part.overlays) if (o.controller) { o.controller.dispose(); o.controller = null; }
    this.overlays = this.overlays.filter((o) => !part.overlays.includes(o));
    this.pageRoot.remove(part.scene);
    disposeResources(resourcesOf(part.scene, part.resources));
    if (part.mixer) { part.mixer.stopAllAction(); part.mixer.uncacheRoot(part.scene); }
    if (this.pendingEnvironment === part.scene) this.pendingEnvironment = null;
    this.requestRender();
    return true;
  }

  // Hide (or show again) the bundle's nodes of these overlay ids (the teasers of a loaded premium part).
  setHidden(ids, hidden) {
    const wanted = new Set([...ids].map(String));
    for (const o of this.overlays) {
      if (o.premium || !wanted.has(o.id) || !!o.hidden === hidden) continue;
      o.hidden = hidden;
      o.object.visible = !hidden;
      if (o.controller) (hidden || !this.pageRoot.visible ? o.controller.hide() : o.controller.show());
    }
    this.requestRender();
  }

  clear() {
    for (const part of [...this.parts]) this.removePart(part);
    for (const o of this.overlays) if (o.controller) o.controller.dispose();
    this.overlays = [];
    this.pagePlanes = [];
    if (this.gltf) this.pageRoot.remove(this.gltf.scene);
    this.gltf = null;
    this.mixer = null;
    this.pendingEnvironment = null;
    this.pageRoot.visible = false;
  }

  // pose: {modelView: 16 column-major, projection: 16 column-major}
  setPose(pose) {
    this.camera.matrixWorld.identity();
    this.camera.matrixWorldInverse.identity();
    this.camera.projectionMatrix.fromArray(pose.projection);
    this.camera.projectionMatrixInverse.copy(this.camera.projectionMatrix).invert();
    this.pageRoot.matrix.fromArray(pose.modelView);
    this.pageRoot.matrixWorldNeedsUpdate = true;
    this.pageRoot.updateMatrixWorld(true);
  }

  setVisible(visible) {
    if (this.pageRoot.visible === visible) return;
    this.pageRoot.visible = visible;
    for (const o of this.overlays) if (o.controller && !o.hidden) (visible ? o.controller.show() : o.controller.hide());
  }

  get visible() {
    return this.pageRoot.visible;
  }

  // Plain 3D view (no camera): the page lies on a table, the reader orbits around it.
  enterView3d(widthMm, heightMm) {
    this.mode = "view3d";
    this.live = false;
    for (const p of this.pagePlanes) p.visible = true;
    if (!this.pagePlanes.length) this._addPaper(widthMm, heightMm);
    this.pageRoot.matrix.identity();
    this.pageRoot.updateMatrixWorld(true);
    this.camera.matrixAutoUpdate = true;
    this.view3dPage = { widthMm, heightMm };
    this.controls = new OrbitControls(this.camera, this.canvas);
    this.controls.maxPolarAngle = Math.PI / 2 - 0.05;  // stay above the table: the paper is seen from its front
    this.fitView3d();
    this.renderer.setClearColor(0x202020, 1);
    this.setVisible(true);
  }

  // Frame the whole page in the 3D view, in both directions, whatever the screen's shape (a portrait phone is
  // limited by the page's width, a landscape screen by its depth): the camera looks at the page centre from
  // VIEW3D_DIRECTION and backs off until the four corners project inside VIEW3D_FILL of the screen. Called again
  // when the screen turns or resizes.
  fitView3d() {
    if (this.mode !== "view3d" || !this.view3dPage) return;
    const w = this.view3dPage.widthMm / 1000, h = this.view3dPage.heightMm / 1000;
    const cam = this.camera;
    cam.fov = VIEW3D_FOV;
    cam.aspect = this.width / this.height;
    const corners = [[-w / 2, -h / 2], [w / 2, -h / 2], [w / 2, h / 2], [-w / 2, h / 2]].map(([x, z]) => new THREE.Vector3(x, 0, z));
    const fits = (distance) => {
      cam.position.copy(VIEW3D_DIRECTION).multiplyScalar(distance);
      cam.lookAt(0, 0, 0);
      cam.updateMatrixWorld(true);
      cam.updateProjectionMatrix();
      return corners.every((c) => {
        const p = c.clone().project(cam);
        return p.z < 1 && Math.abs(p.x) <= VIEW3D_FILL && Math.abs(p.y) <= VIEW3D_FILL;
      });
    };
    // the projected page only shrinks as the camera backs off: bisect the distance at which it just fits
    let lo = 0.01, hi = 100 * Math.max(w, h);
    for (let i = 0; i < 50; i++) { const mid = (lo + hi) / 2; if (fits(mid)) hi = mid; else lo = mid; }
    fits(hi);
    cam.near = hi / 100; cam.far = hi * 20;
    cam.updateProjectionMatrix();
    this.controls.target.set(0, 0, 0);
    this.controls.minDistance = hi * 0.25;
    this.controls.maxDistance = hi * 3;
    this.controls.update();
  }

  // The page's corners [tl, tr, br, bl] projected to canvas px (the plain 3D view: is the whole page on screen?).
  pageCorners() {
    if (!this.view3dPage) return null;
    const w = this.view3dPage.widthMm / 1000, h = this.view3dPage.heightMm / 1000;
    this.camera.updateMatrixWorld(true);
    return [[-w / 2, -h / 2], [w / 2, -h / 2], [w / 2, h / 2], [-w / 2, h / 2]].map(([x, z]) => {
      const p = new THREE.Vector3(x, 0, z).applyMatrix4(this.pageRoot.matrixWorld).project(this.camera);
      return [(p.x + 1) / 2 * this.width, (1 - p.y) / 2 * this.height];
    });
  }

  _addPaper(widthMm, heightMm) {
    const g = new THREE.PlaneGeometry(widthMm / 1000, heightMm / 1000);
    g.rotateX(-Math.PI / 2);  // XY plane -> XZ plane, normal +Y (out of the paper)
    const paper = new THREE.Mesh(g, new THREE.MeshStandardMaterial({ color: 0xf4f1ea, roughness: 0.9 }));
    layPaper(paper);
    this.pagePlanes.push(paper);
    this.pageRoot.add(paper);
  }

  // Overlay controllers hang off the renderer so visibility changes reach them (all overlays, or those given).
  attachControllers(factory, overlays = this.overlays) {
    for (const o of overlays) {
      o.controller = factory(o);
      if (this.pageRoot.visible && !o.hidden && o.controller) o.controller.show();
    }
  }

  // Overlay footprints [tl,tr,br,bl] projected to canvas px (OpenCV pixel convention), for tests and hit hints.
  overlayCorners() {
    const out = [];
    this.pageRoot.updateMatrixWorld(true);
    const vp = new THREE.Matrix4().multiplyMatrices(this.camera.projectionMatrix, this.camera.matrixWorldInverse);
    for (const o of this.overlays) {
      if (o.hidden) continue;
      const box = new THREE.Box3();
      // footprint in the page frame: box of the overlay's meshes expressed in pageRoot coordinates
      const toPage = new THREE.Matrix4().copy(this.pageRoot.matrixWorld).invert();
      o.object.traverse((m) => {
        if (!m.isMesh || !m.geometry) return;
        if (!m.geometry.boundingBox) m.geometry.computeBoundingBox();
        const rel = new THREE.Matrix4().multiplyMatrices(toPage, m.matrixWorld);
        box.union(m.geometry.boundingBox.clone().applyMatrix4(rel));
      });
      const tag = o.premium ? { premium: true } : {};
      if (box.isEmpty()) { out.push({ id: o.id, kind: o.kind, corners: null, ...tag }); continue; }
      const y = box.min.y;
      const pts = [[box.min.x, box.min.z], [box.max.x, box.min.z], [box.max.x, box.max.z], [box.min.x, box.max.z]];
      const corners = pts.map(([x, z]) => {
        const v = new THREE.Vector3(x, y, z).applyMatrix4(this.pageRoot.matrixWorld).applyMatrix4(vp);
        return [(v.x + 1) / 2 * this.width - 0.5, (1 - v.y) / 2 * this.height - 0.5];
      });
      out.push({ id: o.id, kind: o.kind, corners, ...tag });
    }
    return out;
  }

  // Which overlay is under a canvas point (CSS px relative to the canvas)?
  pick(clientX, clientY) {
    if (!this.pageRoot.visible) return null;
    const r = this.canvas.getBoundingClientRect();
    const ndc = new THREE.Vector2(((clientX - r.left) / r.width) * 2 - 1, -((clientY - r.top) / r.height) * 2 + 1);
    const ray = new THREE.Raycaster();
    ray.setFromCamera(ndc, this.camera);
    const hits = ray.intersectObject(this.pageRoot, true);
    for (const h of hits) {
      for (let o = h.object; o; o = o.parent) {
        const ov = this.overlays.find((x) => x.object === o);
        if (ov && !ov.hidden) return ov;
      }
    }
    return null;
  }

  requestRender() {
    this.dirty = true;
  }

  _frame() {
    if (this.live && !this.dirty) return;
    this.dirty = false;
    const dt = this.clock.getDelta();
    if (this.mixer && this.pageRoot.visible) this.mixer.update(dt);
    if (this.pageRoot.visible) for (const part of this.parts) if (part.mixer) part.mixer.update(dt);
    if (this.controls) this.controls.update();
    this.renderer.render(this.scene, this.camera);
    if (this.pendingEnvironment && this.pageRoot.visible) {
      this.lightModels(this.pendingEnvironment);
      this.pendingEnvironment = null;
      this.dirty = true;
    }
  }
}
