// Tracker stage (opencv.js): follows a recognized page from frame to frame.
//
// Every frame: pyramidal Lucas-Kanade optical flow of ~150 corner points from the previous frame, then a RANSAC
// homography from the points' fixed page-millimetre positions to their new pixel positions. Because each point keeps
// the page-mm position it was given when seeded, the homography is re-solved from scratch every frame (no chaining
// of frame-to-frame homographies, which is what drifts). When too few points survive (fast motion, occlusion, the
// page leaves the view) the page is re-detected: ORB features of the frame matched against the page's browser
// marker (keypoints in page mm + ORB descriptors), RANSAC, and the point set is seeded again.
//
// Coordinates: homographies map page mm -> frame px (row-major 9 numbers), like markers.PageMatch.homography.
// Modelled on OpenCV's samples/python/plane_tracker.py (small result records, named constants, early returns).

const MAX_TRACK_POINTS = 150;  // LK cost is linear in points: 150 ≈ 10 ms on 2 cores, plenty for a stable fit
const MIN_TRACK_POINTS = 20;   // below this a homography from flow is unreliable: re-detect
const RESEED_BELOW = 90;       // top the point set up again when fewer survive (keeps coverage of the page)
const SEED_MIN_DISTANCE = 9;   // px between seeded corners: spreads points over the page
const SEED_QUALITY = 0.01;     // goodFeaturesToTrack quality level (relative to the strongest corner)
const SEED_INSET = 0.02;       // seed inside the page quad shrunk by 2%: page edges also see the table
const LK_WIN = 21;             // LK window (px) per pyramid level
const LK_LEVELS = 3;           // 3 levels -> follows motion up to ~80 px per frame
const LK_MAX_ERR = 30;         // mean abs patch difference above which a flow vector is discarded
const RANSAC_FLOW_PX = 3;      // reprojection threshold for flow points (sub-pixel flow; anything worse is an outlier)
const ORB_FEATURES = 500;      // ORB(500) ≈ 42 ms at 640×480 in opencv.js
const RATIO = 0.8;             // Lowe ratio test for marker matching
const MAX_HAMMING = 64;        // absolute descriptor distance cap (of 256 bits)
const MIN_MATCH_COUNT = 15;    // inliers needed to accept a re-detection
const RANSAC_DETECT_PX = 5;    // ORB keypoints are less precise than flow points
const MIN_AREA_FRACTION = 0.005; // a page smaller than 0.5% of the frame cannot be tracked meaningfully

export function applyH(H, x, y) {
  const w = H[6] * x + H[7] * y + H[8];
  return [(H[0] * x + H[1] * y + H[2]) / w, (H[3] * x + H[4] * y + H[5]) / w];
}

export function invert3(m) {
  const [a, b, c, d, e, f, g, h, i] = m;
  const A = e * i - f * h, B = -(d * i - f * g), C = d * h - e * g;
  const det = a * A + b * B + c * C;
  return [A / det, -(b * i - c * h) / det, (b * f - c * e) / det,
          B / det, (a * i - c * g) / det, -(a * f - c * d) / det,
          C / det, -(a * h - b * g) / det, (a * e - b * d) / det];
}

// Page corners [tl, tr, br, bl] in frame px for a page of w×h mm.
export function pageCorners(H, widthMm, heightMm) {
  return [[0, 0], [widthMm, 0], [widthMm, heightMm], [0, heightMm]].map(([x, y]) => applyH(H, x, y));
}

// A homography is usable when the page quad is convex, not degenerate and not absurdly far outside the frame.
export function plausibleQuad(q, width, height) {
  let sign = 0;
  for (let i = 0; i < 4; i++) {
    const [ax, ay] = q[i], [bx, by] = q[(i + 1) % 4], [cx, cy] = q[(i + 2) % 4];
    const cross = (bx - ax) * (cy - by) - (by - ay) * (cx - bx);
    if (!Number.isFinite(cross) || cross === 0) return false;
    if (sign === 0) sign = Math.sign(cross);
    else if (Math.sign(cross) !== sign) return false;
  }
  let area = 0;
  for (let i = 0; i < 4; i++) area += q[i][0] * q[(i + 1) % 4][1] - q[(i + 1) % 4][0] * q[i][1];
  area = Math.abs(area) / 2;
  const lim = 8 * Math.max(width, height);
  return area > MIN_AREA_FRACTION * width * height && q.every(([x, y]) => Math.abs(x) < lim && Math.abs(y) < lim);
}

export class PageTracker {
  constructor(cv, width, height) {
    this.cv = cv;
    this.width = width;
    this.height = height;
    this.prev = new cv.Mat(height, width, cv.CV_8UC1);
    this.cur = new cv.Mat(height, width, cv.CV_8UC1);
    this.page = null;         // {pageId, widthMm, heightMm}
    this.refDesc = null;      // cv.Mat N×32 CV_8U
    this.refKp = null;        // Float32Array 2N (page mm)
    this.ptsMm = [];          // [x, y] page mm of tracked points
    this.ptsPx = [];          // [x, y] frame px of tracked points in `prev`
    this.H = null;
    this.orb = null;
    this.matcher = null;
    this.stats = { lastTrackMs: 0, lastRedetectMs: 0, redetects: 0 };
  }

  // The grey buffer for the next frame: callers write W*H bytes into it, then call track() or redetect().
  greyBuffer() {
    return this.cur.data;
  }

  // page: {pageId, widthMm, heightMm}. The marker (for re-detection) may arrive later: setMarker().
  setPage(page, marker = null) {
    this.page = page;
    this.setMarker(marker);
    this.reset();
  }

  setMarker(marker) {
    const cv = this.cv;
    if (this.refDesc) this.refDesc.delete();
    this.refDesc = null;
    this.refKp = null;
    if (marker) {
      this.refDesc = new cv.Mat(marker.count, 32, cv.CV_8U);
      this.refDesc.data.set(marker.descriptors);
      this.refKp = marker.keypointsMm;
    }
  }

  get canRedetect() {
    return !!(this.refDesc && this.page);
  }

  reset() {
    this.ptsMm = [];
    this.ptsPx = [];
    this.H = null;
  }

  get tracking() {
    return this.H !== null;
  }

  // Start following the page from a homography found elsewhere (server recognition on frame `grey`, a Uint8Array
  // copy of that frame). The next track() call flows the points from that frame to the current one.
  seedFrom(grey, H) {
    this.prev.data.set(grey);
    this.ptsMm = [];
    this.ptsPx = [];
    this._topUp(this.prev, H);
    this.H = this.ptsPx.length >= MIN_TRACK_POINTS ? H.slice() : null;
    return this.tracking;
  }

  // Follow the page into the frame in greyBuffer(). Returns {H, corners, points, mode, ms} or null (lost).
  track() {
    const t0 = performance.now();
    let result = null;
    if (this.ptsPx.length >= MIN_TRACK_POINTS) result = this._flow();
    if (result) {
      this.stats.lastTrackMs = performance.now() - t0;
      result.ms = this.stats.lastTrackMs;
    } else {
      result = this.redetect();
    }
    this._swap();
    return result;
  }

  // ORB re-detection against the browser marker in greyBuffer() (without swapping frames).
  redetect() {
    const cv = this.cv;
    if (!this.refDesc || !this.page) { this.reset(); return null; }
    const t0 = performance.now();
    if (!this.orb) {
      this.orb = new cv.ORB(ORB_FEATURES);
      this.matcher = new cv.BFMatcher(cv.NORM_HAMMING, false);
    }
    const kps = new cv.KeyPointVector();
    const desc = new cv.Mat();
    const none = new cv.Mat();
    const matches = new cv.DMatchVectorVector();
    let result = null;
    try {
      this.orb.detectAndCompute(this.cur, none, kps, desc);
      if (desc.rows >= MIN_MATCH_COUNT) {
        this.matcher.knnMatch(desc, this.refDesc, matches, 2);
        const src = [], dst = [];
        for (let i = 0; i < matches.size(); i++) {
          const pair = matches.get(i);
          if (pair.size() < 2) continue;
          const m0 = pair.get(0), m1 = pair.get(1);
          if (m0.distance < RATIO * m1.distance && m0.distance <= MAX_HAMMING) {
            src.push(this.refKp[2 * m0.trainIdx], this.refKp[2 * m0.trainIdx + 1]);
            const p = kps.get(m0.queryIdx).pt;
            dst.push(p.x, p.y);
          }
        }
        if (src.length / 2 >= MIN_MATCH_COUNT) {
          const fit = this._homography(src, dst, RANSAC_DETECT_PX);
          if (fit && fit.inliers >= MIN_MATCH_COUNT) {
            const corners = pageCorners(fit.H, this.page.widthMm, this.page.heightMm);
            if (plausibleQuad(corners, this.width, this.height)) {
              this.ptsMm = [];
              this.ptsPx = [];
              this._topUp(this.cur, fit.H);
              this.H = fit.H;
              result = { H: fit.H, corners, points: this.ptsPx.length, inliers: fit.inliers, mode: "redetect" };
            }
          }
        }
      }
    } finally {
      kps.delete(); desc.delete(); none.delete(); matches.delete();
    }
    if (!result) this.reset();
    this.stats.redetects++;
    this.stats.lastRedetectMs = performance.now() - t0;
    if (result) result.ms = this.stats.lastRedetectMs;
    return result;
  }

  // After a failed track/redetect the caller still wants the next frame to be compared to this one.
  skipFrame() {
    this._swap();
  }

  _swap() {
    const t = this.prev; this.prev = this.cur; this.cur = t;
  }

  _flow() {
    const cv = this.cv;
    const n = this.ptsPx.length;
    const p0 = new cv.Mat(n, 1, cv.CV_32FC2);
    const p1 = new cv.Mat();
    const status = new cv.Mat();
    const err = new cv.Mat();
    try {
      const d = p0.data32F;
      for (let i = 0; i < n; i++) { d[2 * i] = this.ptsPx[i][0]; d[2 * i + 1] = this.ptsPx[i][1]; }
      cv.calcOpticalFlowPyrLK(this.prev, this.cur, p0, p1, status, err, new cv.Size(LK_WIN, LK_WIN), LK_LEVELS,
        new cv.TermCriteria(cv.TermCriteria_COUNT + cv.TermCriteria_EPS, 20, 0.03));
      const st = status.data, er = err.data32F, q = p1.data32F;
      const mm = [], px = [];
      for (let i = 0; i < n; i++) {
        const x = q[2 * i], y = q[2 * i + 1];
        if (st[i] && er[i] < LK_MAX_ERR && x >= 0 && y >= 0 && x < this.width && y < this.height) {
          mm.push(this.ptsMm[i]);
          px.push([x, y]);
        }
      }
      if (px.length < MIN_TRACK_POINTS) return null;
      const fit = this._homography(mm.flat(), px.flat(), RANSAC_FLOW_PX);
      if (!fit || fit.inliers < MIN_TRACK_POINTS) return null;
      const corners = pageCorners(fit.H, this.page.widthMm, this.page.heightMm);
      if (!plausibleQuad(corners, this.width, this.height)) return null;
      this.ptsMm = mm.filter((_, i) => fit.mask[i]);
      this.ptsPx = px.filter((_, i) => fit.mask[i]);
      this.H = fit.H;
      if (this.ptsPx.length < RESEED_BELOW) this._topUp(this.cur, fit.H);
      return { H: fit.H, corners, points: this.ptsPx.length, inliers: fit.inliers, mode: "flow" };
    } finally {
      p0.delete(); p1.delete(); status.delete(); err.delete();
    }
  }

  // RANSAC homography src (page mm, flat) -> dst (px, flat). Returns {H, mask, inliers} or null.
  _homography(src, dst, thresholdPx) {
    const cv = this.cv;
    const n = src.length / 2;
    const a = cv.matFromArray(n, 1, cv.CV_32FC2, src);
    const b = cv.matFromArray(n, 1, cv.CV_32FC2, dst);
    const mask = new cv.Mat();
    let H = null;
    try {
      H = cv.findHomography(a, b, cv.RANSAC, thresholdPx, mask, 2000, 0.995);
      if (!H || H.rows !== 3) return null;
      const h = Array.from(H.data64F);
      if (!h.every(Number.isFinite) || Math.abs(h[8]) < 1e-12) return null;
      const Hn = h.map((v) => v / h[8]);
      const m = Array.from(mask.data);
      return { H: Hn, mask: m, inliers: m.reduce((s, v) => s + (v ? 1 : 0), 0) };
    } finally {
      a.delete(); b.delete(); mask.delete();
      if (H) H.delete();
    }
  }

  // Add corner points inside the page quad of frame `img` (existing points are kept; new ones avoid them).
  _topUp(img, H) {
    const cv = this.cv;
    const need = MAX_TRACK_POINTS - this.ptsPx.length;
    if (need <= 0) return;
    const { widthMm: w, heightMm: h } = this.page;
    const ix = w * SEED_INSET, iy = h * SEED_INSET;
    const quad = [[ix, iy], [w - ix, iy], [w - ix, h - iy], [ix, h - iy]].map(([x, y]) => applyH(H, x, y));
    const mask = cv.Mat.zeros(this.height, this.width, cv.CV_8UC1);
    const poly = cv.matFromArray(4, 1, cv.CV_32SC2, quad.flat().map(Math.round));
    const found = new cv.Mat();
    try {
      cv.fillConvexPoly(mask, poly, new cv.Scalar(255));
      const md = mask.data;
      const r = SEED_MIN_DISTANCE;
      for (const [x, y] of this.ptsPx) {  // keep new points away from the ones we already follow
        const x0 = Math.max(0, Math.round(x) - r), x1 = Math.min(this.width - 1, Math.round(x) + r);
        const y0 = Math.max(0, Math.round(y) - r), y1 = Math.min(this.height - 1, Math.round(y) + r);
        for (let yy = y0; yy <= y1; yy++) md.fill(0, yy * this.width + x0, yy * this.width + x1 + 1);
      }
      cv.goodFeaturesToTrack(img, found, need, SEED_QUALITY, SEED_MIN_DISTANCE, mask, 5, false, 0.04);
      const Hi = invert3(H);
      const f = found.data32F;
      for (let i = 0; i < found.rows; i++) {
        const x = f[2 * i], y = f[2 * i + 1];
        this.ptsPx.push([x, y]);
        this.ptsMm.push(applyH(Hi, x, y));
      }
    } finally {
      mask.delete(); poly.delete(); found.delete();
    }
  }

  dispose() {
    [this.prev, this.cur, this.refDesc].forEach((m) => m && m.delete());
    if (this.orb) this.orb.delete();
    if (this.matcher) this.matcher.delete();
  }
}
