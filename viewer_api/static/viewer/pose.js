// Pose stage: page homography -> camera pose for the renderer.
//
// 1. Smooth the four page corners (frame px) with a One-Euro filter per coordinate: strong smoothing when the
//    phone is still (kills jitter), almost none when it moves (no visible lag). Casiez et al., CHI 2012.
// 2. Estimate the focal length from the homography (orthogonality and equal norm of the rotation columns, square
//    pixels, principal point at the image centre), keep a robust running median.
// 3. solvePnP (IPPE) on the page corners -> rigid R, t in OpenCV camera axes; the in-paper axes are then taken from
//    the homography so the paper registration stays exact with an estimated focal length (see solve()).
// 4. Convert to the three.js model-view matrix of the glTF page frame.
//
// Frames used (see docs/ARCHITECTURE.md):
//   glTF page frame G: metres, page centre at origin, X right along the width, Y out of the paper, top edge at -Z.
//   Object frame O for solvePnP (planar, z = 0 on paper): x = X, y = Z (toward the page bottom), z = -Y (into the
//   paper). O is right-handed (x × y = z: right × down = into the paper), and maps G -> O with
//   P = [[1,0,0],[0,0,1],[0,-1,0]] (det +1, a rotation).
//   OpenCV camera C: x right, y down, z forward. three.js camera E: x right, y up, z backward -> E = D·C, D=diag(1,-1,-1).
//   Model-view (G -> E) = D · [R | t] · P.
//   Projection (E -> clip) from intrinsics so that E-space points land on the same OpenCV pixel centres:
//   x_ndc = 2(u + 0.5)/W - 1, y_ndc = 1 - 2(v + 0.5)/H.

const FOCAL_DEFAULT_FRACTION = 0.8;   // f ≈ 0.8 × long side: 64° horizontal FOV, typical phone main camera
const FOCAL_MIN_FRACTION = 0.45, FOCAL_MAX_FRACTION = 2.5;  // plausible phone/webcam range
const FOCAL_HISTORY = 31;             // median over this many valid estimates
const FOCAL_MIN_PERSPECTIVE = 2e-4;   // |h31|, |h32| scale below which the estimate is ill-conditioned (fronto-parallel)
const NEAR = 0.01, FAR = 100;         // metres

export class LowPass {
  constructor() { this.y = null; }
  filter(x, alpha) { this.y = this.y === null ? x : alpha * x + (1 - alpha) * this.y; return this.y; }
}

export class OneEuro {
  // minCutoff (Hz): smoothing at rest; beta: how fast the cutoff opens with speed (per px/s); dCutoff: speed filter.
  constructor(minCutoff = 1.0, beta = 0.05, dCutoff = 1.0) {
    Object.assign(this, { minCutoff, beta, dCutoff });
    this.x = new LowPass();
    this.dx = new LowPass();
    this.t = null;
  }
  static alpha(cutoff, dt) { const tau = 1 / (2 * Math.PI * cutoff); return 1 / (1 + tau / dt); }
  reset() { this.x = new LowPass(); this.dx = new LowPass(); this.t = null; }
  filter(value, tSec) {
    if (this.t === null) { this.t = tSec; this.dx.y = 0; return this.x.filter(value, 1); }
    const dt = Math.max(1e-3, tSec - this.t);
    this.t = tSec;
    const d = (value - this.x.y) / dt;
    const ed = this.dx.filter(d, OneEuro.alpha(this.dCutoff, dt));
    const cutoff = this.minCutoff + this.beta * Math.abs(ed);
    return this.x.filter(value, OneEuro.alpha(cutoff, dt));
  }
}

// Tuned on the moving test clip (≤0.3 px lag at 150 px/s) and the still clip (jitter ÷3).
export const SMOOTHING = { minCutoff: 1.5, beta: 0.3, dCutoff: 1.0 };

export class CornerSmoother {
  constructor(opts = SMOOTHING) {
    this.filters = Array.from({ length: 8 }, () => new OneEuro(opts.minCutoff, opts.beta, opts.dCutoff));
  }
  reset() { this.filters.forEach((f) => f.reset()); }
  filter(corners, tSec) {
    return corners.map(([x, y], i) => [this.filters[2 * i].filter(x, tSec), this.filters[2 * i + 1].filter(y, tSec)]);
  }
}

// Focal length (px) implied by a page-mm -> px homography, or null when ill-conditioned.
export function focalFromHomography(H, width, height) {
  const cx = (width - 1) / 2, cy = (height - 1) / 2;
  // H' = T^-1 H moves the principal point to the origin.
  const h = [H[0] - cx * H[6], H[1] - cx * H[7], H[3] - cy * H[6], H[4] - cy * H[7], H[6], H[7]];
  const [h11, h12, h21, h22, h31, h32] = h;
  // normalise scale so h31, h32 thresholds are comparable across poses
  const s = Math.hypot(h11, h21, h12, h22) / Math.max(width, height);
  if (!(s > 0)) return null;
  const p31 = h31 / s, p32 = h32 / s;
  const estimates = [];
  if (Math.abs(p31 * p32) > FOCAL_MIN_PERSPECTIVE ** 2) {
    const f2 = -(h11 * h12 + h21 * h22) / (h31 * h32);  // r1 · r2 = 0
    if (f2 > 0) estimates.push(Math.sqrt(f2));
  }
  if (Math.abs(p32 * p32 - p31 * p31) > FOCAL_MIN_PERSPECTIVE ** 2) {
    const f2 = (h11 * h11 + h21 * h21 - h12 * h12 - h22 * h22) / (h32 * h32 - h31 * h31);  // |r1| = |r2|
    if (f2 > 0) estimates.push(Math.sqrt(f2));
  }
  const L = Math.max(width, height);
  const ok = estimates.filter((f) => f > FOCAL_MIN_FRACTION * L && f < FOCAL_MAX_FRACTION * L);
  return ok.length ? ok.reduce((a, b) => a + b) / ok.length : null;
}

export class FocalEstimator {
  constructor(width, height, known = null) {
    this.width = width; this.height = height;
    this.known = known;
    this.history = [];
    this.value = known || FOCAL_DEFAULT_FRACTION * Math.max(width, height);
  }
  update(H) {
    if (this.known) return this.value;
    const f = focalFromHomography(H, this.width, this.height);
    if (f) {
      this.history.push(f);
      if (this.history.length > FOCAL_HISTORY) this.history.shift();
      const sorted = [...this.history].sort((a, b) => a - b);
      if (sorted.length >= 5) this.value = sorted[sorted.length >> 1];
    }
    return this.value;
  }
}

// Column-major 4x4 (three.js Matrix4.fromArray order) projection for OpenCV intrinsics.
export function projectionFromIntrinsics(f, width, height, cx = (width - 1) / 2, cy = (height - 1) / 2) {
  const a = 2 * f / width, b = 2 * f / height;
  const c = 1 - 2 * (cx + 0.5) / width, d = 2 * (cy + 0.5) / height - 1;
  const e = -(FAR + NEAR) / (FAR - NEAR), g = -2 * FAR * NEAR / (FAR - NEAR);
  // rows: [a 0 c 0] [0 b d 0] [0 0 e g] [0 0 -1 0]
  return [a, 0, 0, 0, 0, b, 0, 0, c, d, e, -1, 0, 0, g, 0];
}

export class PoseEstimator {
  constructor(cv, width, height, pageWidthMm, pageHeightMm, knownFocal = null) {
    this.cv = cv;
    this.width = width; this.height = height;
    this.focal = new FocalEstimator(width, height, knownFocal);
    this.smoother = new CornerSmoother();
    this.setPage(pageWidthMm, pageHeightMm);
  }

  setPage(wMm, hMm) {
    this.wMm = wMm; this.hMm = hMm;
    const w = wMm / 1000, h = hMm / 1000;
    // page corners tl, tr, br, bl in the object frame O (metres, z = 0)
    this.objectPoints = [-w / 2, -h / 2, 0, w / 2, -h / 2, 0, w / 2, h / 2, 0, -w / 2, h / 2, 0];
    this.smoother.reset();
  }

  reset() { this.smoother.reset(); }

  // corners: raw [tl,tr,br,bl] px; H: homography; tSec: frame time. Returns the pose record for target:update.
  update(corners, H, tSec) {
    const smooth = this.smoother.filter(corners, tSec);
    const f = this.focal.update(H);
    const modelView = this.solve(smooth, f);
    return { corners: smooth, rawCorners: corners, focal: f, modelView,
             projection: projectionFromIntrinsics(f, this.width, this.height) };
  }

  // Model-view (column-major, glTF page frame in metres -> three.js camera) from the page corners [tl,tr,br,bl] px.
  //
  // solvePnP (IPPE, the 4 coplanar corners, focal f) gives the rigid camera pose. With an estimated focal length a
  // rigid pose cannot reproduce the corners exactly (8 degrees of freedom in a homography, 6 in a pose): on the
  // moving test clips that alone cost 2-4 px median on the paper. So the two in-paper axes and the origin come from
  // the homography itself, A = K^-1 H = λ [r1 r2 t] (exact on the paper for any f), and only the paper's normal
  // comes from solvePnP's rotation (r3, scaled like the in-paper axes): overlays on the paper are exactly where the
  // tracker sees the paper; 3D models standing on it follow the rigid pose.
  solve(corners, f) {
    const cv = this.cv;
    const cx = (this.width - 1) / 2, cy = (this.height - 1) / 2;  // principal point of K
    const obj = cv.matFromArray(4, 1, cv.CV_64FC3, this.objectPoints);
    const img = cv.matFromArray(4, 1, cv.CV_64FC2, corners.flat());
    const K = cv.matFromArray(3, 3, cv.CV_64F, [f, 0, cx, 0, f, cy, 0, 0, 1]);
    const dist = cv.Mat.zeros(4, 1, cv.CV_64F);
    const rvec = new cv.Mat(), tvec = new cv.Mat(), R = new cv.Mat();
    const src = cv.matFromArray(4, 1, cv.CV_32FC2, [0, 0, this.wMm, 0, this.wMm, this.hMm, 0, this.hMm]);
    const dst = cv.matFromArray(4, 1, cv.CV_32FC2, corners.flat());
    let Hm = null;
    try {
      const flag = cv.SOLVEPNP_IPPE !== undefined ? cv.SOLVEPNP_IPPE : cv.SOLVEPNP_ITERATIVE;
      cv.solvePnP(obj, img, K, dist, rvec, tvec, false, flag);
      cv.Rodrigues(rvec, R);
      const r = R.data64F;
      Hm = cv.getPerspectiveTransform(src, dst);  // page mm -> px
      return modelViewFromHomography(Hm.data64F, f, this.width, this.height, this.wMm, this.hMm, [r[2], r[5], r[8]]);
    } finally {
      [obj, img, K, dist, rvec, tvec, R, src, dst].forEach((x) => x.delete());
      if (Hm) Hm.delete();
    }
  }
}

// Model-view (column-major, glTF page frame in metres -> three.js camera) from a page-mm -> px homography h (9 numbers,
// row-major) and the focal length f: the two in-paper axes and the origin from A = K^-1 H = λ [r1 r2 t] (exact on the
// paper for any f). The paper's normal is r3 (solvePnP's rigid rotation, PoseEstimator.solve) when given, otherwise
// the normal of the plane the in-paper axes span (c1 × c2, into the paper): what the viewer uses before the
// in-browser tracker (opencv.js) has loaded, with the server's homography, and for an uploaded still photo.
export function modelViewFromHomography(h, f, width, height, wMm, hMm, r3 = null) {
  const cx = (width - 1) / 2, cy = (height - 1) / 2;
  const col = (j) => [(h[j] - cx * h[6 + j]) / f, (h[3 + j] - cy * h[6 + j]) / f, h[6 + j]];
  const a1 = col(0), a2 = col(1), a3 = col(2);
  const norm = (v) => Math.hypot(v[0], v[1], v[2]);
  let lam = 2 / (norm(a1) + norm(a2));
  if (a3[2] * lam < 0) lam = -lam;  // the page is in front of the camera
  const c1 = a1.map((v) => v * lam), c2 = a2.map((v) => v * lam), c3 = a3.map((v) => v * lam);
  const scale = (norm(c1) + norm(c2)) / 2;
  const cross = [c1[1] * c2[2] - c1[2] * c2[1], c1[2] * c2[0] - c1[0] * c2[2], c1[0] * c2[1] - c1[1] * c2[0]];
  let n;
  if (r3) {
    n = r3.map((v) => v * scale);  // solvePnP's object z axis (into the paper)
    if (n[0] * cross[0] + n[1] * cross[1] + n[2] * cross[2] < 0) n = n.map((v) => -v);
  } else {
    const k = norm(cross) || 1;
    n = cross.map((v) => v * scale / k);
  }
  // object frame O: metres, origin at the page centre -> camera (OpenCV axes, metres)
  const t = [0, 1, 2].map((i) => (c1[i] * wMm / 2 + c2[i] * hMm / 2 + c3[i]) / 1000);
  // M = D [R|t] P with P: G->O = [[1,0,0],[0,0,1],[0,-1,0]]  =>  [R|t]·P has columns (x, -z, y) and t.
  // D = diag(1,-1,-1) negates rows 2 and 3.
  const RP = [0, 1, 2].map((i) => [c1[i], -n[i], c2[i], t[i]]);
  const rows = [RP[0], RP[1].map((v) => -v), RP[2].map((v) => -v), [0, 0, 0, 1]];
  const m = new Float64Array(16);
  for (let c = 0; c < 4; c++) for (let rr = 0; rr < 4; rr++) m[c * 4 + rr] = rows[rr][c];
  return m;
}

// Pose of a page from a homography alone (no opencv.js, no smoothing): the server's answer for the frame it was
// sent, shown until the in-browser tracker takes over, and the pose on an uploaded still photo.
// focal: a FocalEstimator of that frame size (updated with H). Returns the record PoseEstimator.update returns.
export function poseFromHomography(H, focal, width, height, wMm, hMm) {
  const f = focal.update(H);
  const applied = [[0, 0], [wMm, 0], [wMm, hMm], [0, hMm]].map(([x, y]) => {
    const w = H[6] * x + H[7] * y + H[8];
    return [(H[0] * x + H[1] * y + H[2]) / w, (H[3] * x + H[4] * y + H[5]) / w];
  });
  return { corners: applied, rawCorners: applied, focal: f, modelView: modelViewFromHomography(H, f, width, height, wMm, hMm),
           projection: projectionFromIntrinsics(f, width, height) };
}
