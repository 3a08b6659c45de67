// 3D preview of a model3d overlay in the editor (three.js from our own server via the page's import map).
//
// Frame (docs/ARCHITECTURE.md, glTF bundle): metres, Y up, the paper in the XZ plane, +X along the page width,
// the page's top edge toward -Z. The overlay's box is drawn as a sheet of paper; the model stands on it at its
// elevation, fitted to the box's shorter side times the overlay's scale, turned by rotation_deg clockwise as
// seen from above (a clockwise turn seen from +Y is a negative angle about +Y).
import * as THREE from 'three';
import {GLTFLoader} from 'three/addons/loaders/GLTFLoader.js';
import {OrbitControls} from 'three/addons/controls/OrbitControls.js';
import {MeshoptDecoder} from 'three/addons/libs/meshopt_decoder.module.js';
import {RoomEnvironment} from 'three/addons/environments/RoomEnvironment.js';

const MM = 0.001; // metres per millimetre
// Lit as the reader's viewer lights it (viewer_api/static/viewer/renderer.js): an image-based environment, as a
// product viewer does, so a model without a material (glTF's default is fully metallic) or a metallic one shows its
// shape instead of rendering nearly black, plus one directional light as a shading cue; Khronos PBR Neutral tone
// mapping keeps base colours true and rolls the bright room's highlights off.
const ENV_BLUR_SIGMA = 0.04;
const SUN_INTENSITY = 0.8;
const ENV_INTENSITY = 0.6; // as the viewer: at 1 the bright room turns a white model into a near-white disc
// A premium overlay (issue 27) carries a lock label above its model, as the canvas shows it on the box.
const LOCK_PX = 64; // label texture height; its width follows the text
const LOCK_HEIGHT_SHARE = 0.09; // label height as a share of the view's span: readable, never hiding the model
const LOCK_COLOUR = '#8a5a00'; // app.css --premium
const LOCK_AT_HEIGHT = 0.8; // share of the model's height: inside the view the camera frames (above it was cut off)

// The lock label as a canvas texture: a padlock and the text ("Dành cho bạn đọc đăng ký") on a rounded pill.
function lockTexture(label) {
  const canvas = document.createElement('canvas');
  const ctx = canvas.getContext('2d');
  const font = `600 ${Math.round(LOCK_PX * 0.45)}px system-ui, sans-serif`;
  ctx.font = font;
  const pad = LOCK_PX * 0.3, icon = LOCK_PX * 0.5;
  canvas.width = Math.ceil(pad * 3 + icon + ctx.measureText(label).width);
  canvas.height = LOCK_PX;
  ctx.font = font;
  ctx.fillStyle = LOCK_COLOUR;
  ctx.beginPath();
  ctx.roundRect(0, 0, canvas.width, canvas.height, LOCK_PX / 2);
  ctx.fill();
  const x = pad, y = (LOCK_PX - icon) / 2; // padlock: shackle arc over a body, in white
  ctx.strokeStyle = ctx.fillStyle = '#fff';
  ctx.lineWidth = icon * 0.13;
  ctx.beginPath();
  ctx.arc(x + icon / 2, y + icon * 0.42, icon * 0.26, Math.PI, 0);
  ctx.stroke();
  ctx.fillRect(x + icon * 0.12, y + icon * 0.42, icon * 0.76, icon * 0.58);
  ctx.textBaseline = 'middle';
  ctx.fillText(label, x + icon + pad, LOCK_PX / 2 + 1);
  const texture = new THREE.CanvasTexture(canvas);
  texture.colorSpace = THREE.SRGBColorSpace;
  return {texture, aspect: canvas.width / canvas.height};
}

export async function createPreview(container, {lockLabel = 'Premium'} = {}) {
  const renderer = new THREE.WebGLRenderer({antialias: true, alpha: true, preserveDrawingBuffer: true});
  renderer.setPixelRatio(Math.min(window.devicePixelRatio || 1, 2));
  renderer.toneMapping = THREE.NeutralToneMapping;
  container.replaceChildren(renderer.domElement);
  const scene = new THREE.Scene();
  const pmrem = new THREE.PMREMGenerator(renderer);
  const room = new RoomEnvironment();
  scene.environment = pmrem.fromScene(room, ENV_BLUR_SIGMA).texture;
  scene.environmentIntensity = ENV_INTENSITY;
  room.dispose();
  pmrem.dispose();
  const sun = new THREE.DirectionalLight(0xffffff, SUN_INTENSITY);
  sun.position.set(0.3, 1, 0.5);
  scene.add(sun);
  const camera = new THREE.PerspectiveCamera(40, 1, 0.001, 50);
  const controls = new OrbitControls(camera, renderer.domElement);
  controls.enableDamping = true;

  const paper = new THREE.Mesh(new THREE.PlaneGeometry(1, 1),
    new THREE.MeshStandardMaterial({color: 0xf4f1ea, roughness: 0.95, side: THREE.DoubleSide}));
  paper.rotation.x = -Math.PI / 2; // plane geometry is XY; the paper lies in XZ
  scene.add(paper);

  const loader = new GLTFLoader();
  loader.setMeshoptDecoder(MeshoptDecoder);
  const cache = new Map(); // asset url -> loaded scene
  let holder = null;
  let lock = null; // the lock label sprite, made on first use

  function resize() {
    const w = container.clientWidth || 300;
    const h = Math.round(w * 0.75);
    renderer.setSize(w, h, false);
    camera.aspect = w / h;
    camera.updateProjectionMatrix();
  }
  new ResizeObserver(resize).observe(container);
  resize();

  renderer.setAnimationLoop(() => {
    controls.update();
    renderer.render(scene, camera);
  });

  async function load(url) {
    if (!cache.has(url)) cache.set(url, loader.loadAsync(url).then((gltf) => gltf.scene));
    return cache.get(url);
  }

  return {
    renderer, scene, camera, // for tests: what is drawn and how it is lit
    async show(o) {
      const model = await load(o.asset.url);
      const wM = o.width_mm * MM, hM = o.height_mm * MM;
      paper.scale.set(wM, hM, 1);
      if (holder) scene.remove(holder);
      holder = new THREE.Group();
      const copy = model.clone(true);
      const bounds = new THREE.Box3().setFromObject(copy);
      const size = bounds.getSize(new THREE.Vector3());
      const fit = Math.min(wM, hM) / Math.max(size.x, size.z, 1e-6) * (o.scale || 1);
      const centre = bounds.getCenter(new THREE.Vector3());
      copy.position.set(-centre.x, -bounds.min.y, -centre.z); // stand on the paper, centred on the box
      holder.add(copy);
      holder.scale.setScalar(fit);
      holder.position.y = (o.elevation_mm || 0) * MM;
      holder.rotation.y = -(o.rotation_deg || 0) * Math.PI / 180;
      scene.add(holder);
      const span = Math.max(wM, hM, size.y * fit);
      const premium = o.access === 'premium';
      if (premium && !lock) {
        const {texture, aspect} = lockTexture(lockLabel);
        lock = new THREE.Sprite(new THREE.SpriteMaterial({map: texture, depthTest: false, transparent: true,
          toneMapped: false})); // its colour as the canvas badge's
        lock.userData.aspect = aspect;
        lock.renderOrder = 10; // drawn over the model, never hidden inside it
        lock.name = 'premium-lock';
      }
      if (lock) {
        lock.visible = premium;
        const h = span * LOCK_HEIGHT_SHARE;
        lock.scale.set(h * lock.userData.aspect, h, 1);
        lock.position.set(0, holder.position.y + size.y * fit * LOCK_AT_HEIGHT, 0);
        if (!lock.parent) scene.add(lock);
      }
      container.dataset.locked = premium ? 'yes' : 'no';
      camera.position.set(span * 0.9, span * 1.1, span * 1.4);
      controls.target.set(0, size.y * fit * 0.4, 0);
      controls.update();
      container.dataset.shown = String(o.id); // which overlay is on screen (tests wait for it)
    },
  };
}
