// Renderer stage (three.js): the page's GLB anchored on the paper.
// The camera sits at the origin with the projection of the real camera's intrinsics; the page root carries the
// model-view matrix from pose.js (glTF page frame -> three.js camera frame). The canvas has the size and aspect of
// the processed camera frame and is laid over the <video> with the same CSS box, so pixels agree.
//
// GLB conventions (builder/bundle.py): overlay nodes carry extras.overlay = {id, kind, src, …} (GLTFLoader puts
// extras into userData); the page plane node is hidden by default. Node names are rewritten by GLTFLoader, so we
// key on extras only.

import * as THREE from "three";
import { GLTFLoader } from "three/addons/loaders/GLTFLoader.js";
import { DRACOLoader } from "three/addons/loaders/DRACOLoader.js";
import { MeshoptDecoder } from "three/addons/libs/meshopt_decoder.module.js";
import { OrbitControls } from "three/addons/controls/OrbitControls.js";

export function overlaySpecOf(object) {
  const ud = object.userData || {};
  return ud.overlay || (ud.extras && ud.extras.overlay) || null;
}

export function isPagePlane(object) {
  const ud = object.userData || {};
  return !!(ud.page_plane || ud.pagePlane || ud.role === "page" || (ud.page && !ud.overlay));
}

export class PageRenderer {
  constructor(canvas, { dracoPath } = {}) {
    this.canvas = canvas;
    // No MSAA: on software GL (CI) it doubles the frame cost; phones render at devicePixelRatio ≥ 2 anyway.
    this.renderer = new THREE.WebGLRenderer({ canvas, alpha: true, antialias: false, powerPreference: "high-performance" });
    this.renderer.setClearColor(0x000000, 0);
    this.renderer.outputColorSpace = THREE.SRGBColorSpace;
    this.scene = new THREE.Scene();
    this.camera = new THREE.PerspectiveCamera(60, 4 / 3, 0.01, 100);
    this.camera.matrixAutoUpdate = false;
    this.pageRoot = new THREE.Group();
    this.pageRoot.matrixAutoUpdate = false;
    this.pageRoot.visible = false;
    this.scene.add(this.pageRoot);
    // Light for lit (PBR) models such as the stock pin; bundle quads are unlit (KHR_materials_unlit) and ignore it.
    this.scene.add(new THREE.HemisphereLight(0xffffff, 0x666666, 1.4));
    const sun = new THREE.DirectionalLight(0xffffff, 0.9);
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
    this.clock = new THREE.Clock();
    this.overlays = [];     // {id, kind, spec, object, controller}
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
    if (gltf.animations && gltf.animations.length) {
      this.mixer = new THREE.AnimationMixer(gltf.scene);
      for (const clip of gltf.animations) this.mixer.clipAction(clip).play();
    }
    return this.overlays;
  }

  clear() {
    for (const o of this.overlays) if (o.controller) o.controller.dispose();
    this.overlays = [];
    this.pagePlanes = [];
    if (this.gltf) this.pageRoot.remove(this.gltf.scene);
    this.gltf = null;
    this.mixer = null;
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
    for (const o of this.overlays) if (o.controller) (visible ? o.controller.show() : o.controller.hide());
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
    const size = Math.max(widthMm, heightMm) / 1000;
    this.camera.fov = 50;
    this.camera.aspect = this.width / this.height;
    this.camera.near = 0.01; this.camera.far = 50;
    this.camera.position.set(0, size * 1.1, size * 0.75);
    this.camera.lookAt(0, 0, 0);
    this.camera.updateProjectionMatrix();
    this.controls = new OrbitControls(this.camera, this.canvas);
    this.controls.target.set(0, 0, 0);
    this.controls.update();
    this.renderer.setClearColor(0x202020, 1);
    this.setVisible(true);
  }

  _addPaper(widthMm, heightMm) {
    const g = new THREE.PlaneGeometry(widthMm / 1000, heightMm / 1000);
    g.rotateX(-Math.PI / 2);  // XY plane -> XZ plane, normal +Y (out of the paper)
    const paper = new THREE.Mesh(g, new THREE.MeshStandardMaterial({ color: 0xf4f1ea, roughness: 0.9 }));
    paper.position.y = -0.0005;
    this.pageRoot.add(paper);
  }

  // Overlay controllers hang off the renderer so visibility changes reach them.
  attachControllers(factory) {
    for (const o of this.overlays) o.controller = factory(o);
  }

  // Overlay footprints [tl,tr,br,bl] projected to canvas px (OpenCV pixel convention), for tests and hit hints.
  overlayCorners() {
    const out = [];
    this.pageRoot.updateMatrixWorld(true);
    const vp = new THREE.Matrix4().multiplyMatrices(this.camera.projectionMatrix, this.camera.matrixWorldInverse);
    for (const o of this.overlays) {
      const box = new THREE.Box3();
      // footprint in the page frame: box of the overlay's meshes expressed in pageRoot coordinates
      const toPage = new THREE.Matrix4().copy(this.pageRoot.matrixWorld).invert();
      o.object.traverse((m) => {
        if (!m.isMesh || !m.geometry) return;
        if (!m.geometry.boundingBox) m.geometry.computeBoundingBox();
        const rel = new THREE.Matrix4().multiplyMatrices(toPage, m.matrixWorld);
        box.union(m.geometry.boundingBox.clone().applyMatrix4(rel));
      });
      if (box.isEmpty()) { out.push({ id: o.id, kind: o.kind, corners: null }); continue; }
      const y = box.min.y;
      const pts = [[box.min.x, box.min.z], [box.max.x, box.min.z], [box.max.x, box.max.z], [box.min.x, box.max.z]];
      const corners = pts.map(([x, z]) => {
        const v = new THREE.Vector3(x, y, z).applyMatrix4(this.pageRoot.matrixWorld).applyMatrix4(vp);
        return [(v.x + 1) / 2 * this.width - 0.5, (1 - v.y) / 2 * this.height - 0.5];
      });
      out.push({ id: o.id, kind: o.kind, corners });
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
        if (ov) return ov;
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
    if (this.controls) this.controls.update();
    this.renderer.render(this.scene, this.camera);
  }
}
