"""Fake-camera clips for the browser tests: a pinhole camera moving over a printed page in 3D.

Chromium plays a ``.y4m`` file as its camera (``--use-file-for-fake-video-capture``). Each frame here is the
exact image of a flat printed page seen by a pinhole camera (intrinsics ``K``, pose ``R, t``), so the
ground truth of every frame is known exactly:

World frame = page millimetres, the ARCHITECTURE.md editor frame: origin at the page's top-left corner,
x right, y down, hence z (= x × y) points *into* the table; the camera hovers at z < 0. A point (x_mm, y_mm, 0)
projects with ``p ~ K (R [x, y, 0]^T + t) = K [r1 r2 t] [x, y, 1]^T``, so the page-mm -> image-px homography of a
frame is ``H = K [r1 r2 t]`` (columns r1, r2 of R). That is the same convention as ``markers`` (page mm -> photo
px) and OpenCV pixel centres (integer coordinates at pixel centres).

Frames are rendered 2x supersampled then area-downsampled (anti-aliasing like a real sensor), with a little
sensor noise and a light fall-off. The bottom-left corner of each frame carries a 16-block "frame probe"
(block 0 white, block 1 black, blocks 2..15 the frame index in binary, MSB first) so a test can tell which clip
frame the viewer was looking at when it reported its state (see ``PROBE_JS``).
"""
from __future__ import annotations

import functools
import json
import math
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

WIDTH, HEIGHT, FPS = 640, 480, 30
SUPERSAMPLE = 2  # render at 2x then INTER_AREA down: edges look like a camera's, not like nearest-neighbour
NOISE_SIGMA = 1.5  # grey levels of per-frame sensor noise: keeps "still" clips honest for jitter measurements
PROBE_BLOCK, PROBE_STEP, PROBE_BITS = 10, 12, 14  # probe geometry (px) and index bits (16384 frames max)
PROBE_ORIGIN = (4, HEIGHT - 4 - PROBE_BLOCK)  # x, y of block 0 (bottom-left corner of the frame)

# JS the tests inject (page.add_init_script): the viewer calls window.__baonhungProbe(imageData) on every frame
# it processes and stores the result with that frame's state. Returns the clip frame index or -1.
PROBE_JS = f"""
window.__baonhungProbe = (img) => {{
  const k0 = img.width / {WIDTH};  // the viewer may process a downscaled frame
  const B = {PROBE_BLOCK}, S = {PROBE_STEP}, X0 = {PROBE_ORIGIN[0]}, N = {PROBE_BITS};
  const y = Math.round((img.height / k0 - 4 - B + B / 2) * k0);
  const grey = (x) => {{ const i = (y * img.width + Math.round(x * k0)) * 4;
                         return (img.data[i] + img.data[i+1] + img.data[i+2]) / 3; }};
  const at = (k) => grey(X0 + k * S + B / 2);
  if (!(at(0) > 170 && at(1) < 85)) return -1;
  let v = 0;
  for (let k = 0; k < N; k++) v = (v << 1) | (at(2 + k) < 128 ? 1 : 0);
  return v;
}};
"""


@dataclass(frozen=True)
class Pinhole:
    """Intrinsics of the fake camera: focal length in px, principal point at the image centre."""

    focal_px: float = 560.0  # ≈ 60° horizontal field of view at 640 px: a typical phone main camera
    width: int = WIDTH
    height: int = HEIGHT

    @property
    def K(self) -> np.ndarray:
        return np.array(
            [[self.focal_px, 0, (self.width - 1) / 2], [0, self.focal_px, (self.height - 1) / 2], [0, 0, 1]],
            dtype=np.float64,
        )


def look_at(eye_mm, target_mm, roll_deg: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """World->camera rotation R (3, 3) and translation t (3,) of a camera at ``eye`` looking at ``target``.

    The camera's image "down" axis follows the page's +y (page top at the top of the image) before roll.
    """
    eye = np.asarray(eye_mm, np.float64)
    z = np.asarray(target_mm, np.float64) - eye
    z /= np.linalg.norm(z)
    x = np.cross([0.0, 1.0, 0.0], z)  # x = y × z for a right-handed camera (x right, y down, z forward)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    c, s = math.cos(math.radians(roll_deg)), math.sin(math.radians(roll_deg))
    x, y = c * x + s * y, -s * x + c * y
    R = np.stack([x, y, z])
    return R, -R @ eye


def page_homography(cam: Pinhole, R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """(3, 3) float64 homography page mm -> frame px: ``K [r1 r2 t]``, normalised so H[2, 2] = 1."""
    H = cam.K @ np.column_stack([R[:, 0], R[:, 1], t])
    return H / H[2, 2]


def project_mm(H: np.ndarray, pts_mm) -> np.ndarray:
    """Apply a page-mm -> px homography to (N, 2) points."""
    pts = np.asarray(pts_mm, np.float64).reshape(-1, 1, 2)
    return cv2.perspectiveTransform(pts, H).reshape(-1, 2)


def page_corners_mm(width_mm: float, height_mm: float) -> np.ndarray:
    return np.array([[0, 0], [width_mm, 0], [width_mm, height_mm], [0, height_mm]], np.float64)


def make_table(seed: int = 7) -> np.ndarray:
    """A plain, slightly textured table top (BGR, WIDTH×HEIGHT at SUPERSAMPLE) behind the page."""
    rng = np.random.default_rng(seed)
    h, w = HEIGHT * SUPERSAMPLE, WIDTH * SUPERSAMPLE
    low = rng.normal(0, 1, (h // 64 + 2, w // 64 + 2)).astype(np.float32)
    grain = cv2.resize(low, (w, h), interpolation=cv2.INTER_CUBIC)
    base = np.array([70, 95, 125], np.float32)  # brownish wood
    table = base[None, None, :] + 10 * grain[..., None]
    return np.clip(table, 0, 255).astype(np.uint8)


def make_page(width_px: int = 1240, height_px: int = 1754, seed: int = 1, title: str = "BAO NHUNG") -> np.ndarray:
    """A synthetic newspaper page (BGR): masthead, headlines, columns of text, photos. Feature-rich like print."""
    rng = np.random.default_rng(seed)
    img = np.full((height_px, width_px, 3), 245, np.uint8)
    s = width_px / 1240.0
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(img, title, (int(60 * s), int(150 * s)), cv2.FONT_HERSHEY_TRIPLEX, 4.2 * s, (20, 20, 20), int(9 * s))
    cv2.line(img, (int(40 * s), int(190 * s)), (width_px - int(40 * s), int(190 * s)), (0, 0, 0), max(2, int(4 * s)))
    y = int(230 * s)
    words = ["tin", "moi", "kinh", "te", "the", "thao", "van", "hoa", "xa", "hoi", "du", "lich", "Ha", "Noi",
             "Yen", "Bai", "nong", "nghiep", "giao", "duc", "so", "bao", "trang", "doc", "gia"]
    cols = 3
    col_w = (width_px - int(80 * s)) // cols
    while y < height_px - int(60 * s):
        if rng.random() < 0.22:  # a photo block spanning 1-2 columns
            c0 = int(rng.integers(0, cols))
            span = int(rng.integers(1, 3)) if c0 < cols - 1 else 1
            ph = int(rng.integers(180, 320) * s)
            x0, x1 = int(40 * s) + c0 * col_w + 8, int(40 * s) + (c0 + span) * col_w - 8
            y1 = min(y + ph, height_px - int(60 * s))
            noise = rng.integers(0, 255, ((y1 - y) // 12 + 2, (x1 - x0) // 12 + 2, 3)).astype(np.uint8)
            photo = cv2.resize(noise, (x1 - x0, y1 - y), interpolation=cv2.INTER_CUBIC)
            for _ in range(6):
                cx, cy = int(rng.integers(0, x1 - x0)), int(rng.integers(0, y1 - y))
                color = tuple(int(v) for v in rng.integers(0, 255, 3))
                cv2.circle(photo, (cx, cy), int(rng.integers(10, 60) * s), color, -1)
            img[y:y1, x0:x1] = photo
            if c0 != 0 or span != cols:
                pass
            y = y1 + int(20 * s)
            continue
        if rng.random() < 0.15:  # headline
            text = " ".join(rng.choice(words, 4)).upper()
            cv2.putText(img, text, (int(50 * s), y + int(40 * s)), font, 1.5 * s, (15, 15, 15), max(2, int(4 * s)))
            y += int(70 * s)
            continue
        for c in range(cols):  # one line of body text in each column
            text = " ".join(rng.choice(words, 5))
            cv2.putText(img, text, (int(48 * s) + c * col_w, y + int(18 * s)), font, 0.62 * s, (30, 30, 30),
                        max(1, int(1.6 * s)))
        y += int(28 * s)
    return img


def draw_probe(frame: np.ndarray, index: int) -> None:
    """Stamp the frame index into the bottom-left corner (see PROBE_JS)."""
    x0, y0 = PROBE_ORIGIN
    bits = [0, 1] + [(index >> (PROBE_BITS - 1 - k)) & 1 for k in range(PROBE_BITS)]
    cv2.rectangle(frame, (x0 - 2, y0 - 2), (x0 + len(bits) * PROBE_STEP, y0 + PROBE_BLOCK + 1), (128, 128, 128), -1)
    for k, b in enumerate(bits):
        v = 0 if b else 255
        cv2.rectangle(frame, (x0 + k * PROBE_STEP, y0), (x0 + k * PROBE_STEP + PROBE_BLOCK - 1, y0 + PROBE_BLOCK - 1),
                      (v, v, v), -1)


@dataclass
class Clip:
    """Rendered clip: frames (BGR uint8) and per-frame ground truth."""

    width_mm: float
    height_mm: float
    cam: Pinhole
    frames: list[np.ndarray] = field(default_factory=list)
    homographies: list[np.ndarray | None] = field(default_factory=list)  # None: page not in view (blank scene)
    page_index: list[int] = field(default_factory=list)  # which page is in view: 0 first, 1 next, -1 none

    def corners(self, index: int) -> np.ndarray | None:
        H = self.homographies[index]
        return None if H is None else project_mm(H, page_corners_mm(self.width_mm, self.height_mm))

    def ground_truth(self) -> dict:
        out = []
        for i, H in enumerate(self.homographies):
            out.append(None if H is None else {"homography": H.tolist(), "corners": self.corners(i).tolist()})
        return {"width": self.cam.width, "height": self.cam.height, "fps": FPS, "focal_px": self.cam.focal_px,
                "width_mm": self.width_mm, "height_mm": self.height_mm, "frames": out,
                "page_index": list(self.page_index)}

    def write(self, y4m_path: Path) -> Path:
        """Write the y4m and ``<name>.json`` ground truth beside it. Returns the y4m path."""
        write_y4m(y4m_path, self.frames, FPS)
        y4m_path.with_suffix(".json").write_text(json.dumps(self.ground_truth()))
        return y4m_path


def write_y4m(path: Path, frames: list[np.ndarray], fps: int = FPS) -> None:
    """YUV4MPEG2 4:2:0 (the format Chromium's fake capture reads), frames BGR uint8 of equal size."""
    h, w = frames[0].shape[:2]
    with open(path, "wb") as fh:
        fh.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for f in frames:
            fh.write(b"FRAME\n")
            fh.write(cv2.cvtColor(f, cv2.COLOR_BGR2YUV_I420).tobytes())


def render_frame(page: np.ndarray, width_mm: float, height_mm: float, cam: Pinhole, H: np.ndarray | None,
                 table: np.ndarray, rng: np.random.Generator, light: float = 1.0) -> np.ndarray:
    """One camera frame of the page seen through homography H (page mm -> px); H None = table only."""
    return _add_noise(_clean_frame(page, width_mm, height_mm, cam, H, table, light), rng)


def _clean_frame(page: np.ndarray, width_mm: float, height_mm: float, cam: Pinhole, H: np.ndarray | None,
                 table: np.ndarray, light: float = 1.0) -> np.ndarray:
    """The frame before its sensor noise (float32): page over the table, downsampled, light fall-off."""
    ss = SUPERSAMPLE
    big = table
    if H is not None:
        ph, pw = page.shape[:2]
        page_px_to_mm = np.diag([width_mm / pw, height_mm / ph, 1.0])
        # low-res px -> high-res px with pixel centres kept: x_hi = ss * x_lo + (ss - 1) / 2
        lo_to_hi = np.array([[ss, 0, (ss - 1) / 2], [0, ss, (ss - 1) / 2], [0, 0, 1]], np.float64)
        M = lo_to_hi @ H @ page_px_to_mm
        # the page image's pixel centres sit at (i + 0.5) * mm_per_px in page mm
        M = M @ np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]], np.float64)
        size = (table.shape[1], table.shape[0])
        # one warp of BGRA: the alpha channel is the page's coverage (anti-aliased paper edge)
        bgra = cv2.warpPerspective(_with_alpha(page), M, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        big = _over(bgra, table)
    frame = cv2.resize(np.asarray(big, np.float32), (cam.width, cam.height), interpolation=cv2.INTER_AREA)
    return frame * (light * _falloff(cam.width, cam.height))[..., None]


def _over(bgra: np.ndarray, table: np.ndarray) -> np.ndarray:
    """``bgr * a + table * (1 - a)`` in float32 with ``a = alpha / 255``, computed only where the page is partly
    over the table (its anti-aliased edge): where alpha is 255 that is exactly the page's value (a = 1.0f, 1 - a =
    0.0f) and where it is 0 exactly the table's, so the result is bit for bit the full formula's, in a fraction of
    its time (tests/browser/test_clip.py checks it against the formula)."""
    alpha = bgra[..., 3]
    bgr = cv2.cvtColor(bgra, cv2.COLOR_BGRA2BGR)
    out = cv2.copyTo(bgr, cv2.inRange(alpha, 255, 255), table.copy()).astype(np.float32)
    edge = (alpha - 1) < 254  # 1..254 (0 wraps to 255)
    a = alpha[edge].astype(np.float32)[:, None] * (1 / 255.0)
    out[edge] = bgr[edge].astype(np.float32) * a + table[edge].astype(np.float32) * (1 - a)
    return out


def _add_noise(clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    frame = clean + rng.normal(0, NOISE_SIGMA, clean.shape).astype(np.float32)
    return np.clip(frame, 0, 255).astype(np.uint8)


_alpha_cache: dict = {}


def _with_alpha(page: np.ndarray) -> np.ndarray:
    key = (id(page), page.shape)
    if key not in _alpha_cache:
        _alpha_cache.clear()
        _alpha_cache[key] = (page, cv2.cvtColor(page, cv2.COLOR_BGR2BGRA))
    return _alpha_cache[key][1]


@functools.lru_cache(maxsize=4)
def _falloff(width: int, height: int) -> np.ndarray:
    """Light fall-off towards the frame corners (lens vignetting), 1.0 at the centre."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    return 1.0 - 0.18 * (((xx - width / 2) / width) ** 2 + ((yy - height / 2) / height) ** 2)


def moving_poses(n: int, width_mm: float, height_mm: float, seed: int = 3):
    """A hand-held phone drifting over the page: slow orbit up to ~25° tilt, zoom, roll and a little shake."""
    rng = np.random.default_rng(seed)
    cx, cy = width_mm / 2, height_mm / 2
    k = max(width_mm, height_mm) / 297.0  # distances scale with the page (tuned on A4 portrait)
    shake = rng.normal(0, 1.0, (n + 8, 3))
    shake = cv2.GaussianBlur(shake, (1, 9), 3)  # smooth hand tremor (mm)
    for i in range(n):
        u = i / max(1, n - 1)
        dist = k * (430 - 90 * math.sin(math.pi * u))  # comes closer in the middle of the clip
        az = 2 * math.pi * u * 0.8
        tilt = math.radians(8 + 17 * math.sin(math.pi * u))
        eye = np.array([cx + dist * math.sin(tilt) * math.cos(az), cy + dist * math.sin(tilt) * math.sin(az),
                        -dist * math.cos(tilt)]) + shake[i] * 2.0
        target = np.array([cx + 25 * k * math.sin(2 * math.pi * u), cy + 20 * k * math.cos(2 * math.pi * u), 0.0])
        yield look_at(eye, target, roll_deg=10 * math.sin(2 * math.pi * u))


def make_clip(page: np.ndarray, width_mm: float = 210.0, height_mm: float = 297.0, *, seconds_page: float = 6.0,
              seconds_blank: float = 1.5, still: bool = False, seed: int = 11, cam: Pinhole | None = None,
              lead_blank_s: float = 0.0, next_page: np.ndarray | None = None, seconds_next: float = 3.5,
              motion_blur: bool = False) -> Clip:
    """Clip: optional blank lead-in, the page (moving, or still with sensor noise only), a blank scene, then
    optionally another page of the same size (moving). When the file loops, the next page cuts straight back
    to the first one. motion_blur: each frame integrates the page over half a frame interval around its
    ground-truth pose (shutter 1/60 s at 30 fps, like an indoor phone camera)."""
    cam = cam or Pinhole()
    rng = np.random.default_rng(seed)
    table = make_table(seed)
    clip = Clip(width_mm, height_mm, cam)
    n_page = int(round(seconds_page * FPS))
    if still:
        k = max(width_mm, height_mm) / 297.0
        R, t = look_at([width_mm / 2 + 30 * k, height_mm / 2 + 40 * k, -420 * k], [width_mm / 2, height_mm / 2, 0],
                       roll_deg=4)
        poses = [(R, t)] * n_page
    else:
        poses = list(moving_poses(n_page, width_mm, height_mm, seed))
    plan: list[tuple[int, np.ndarray | None]] = [(-1, None)] * int(round(lead_blank_s * FPS))
    plan += [(0, page_homography(cam, R, t)) for R, t in poses]
    plan += [(-1, None)] * int(round(seconds_blank * FPS))
    if next_page is not None:
        n_next = int(round(seconds_next * FPS))
        plan += [(1, page_homography(cam, R, t)) for R, t in moving_poses(n_next, width_mm, height_mm, seed + 1)]
    pages = (page, next_page)
    # A still pose or a blank stretch is one clean frame, noised per frame. Clean frames use no randomness: a thread
    # renders the next few while this one draws the noise (in the same order as ever: the same frames, bit for bit).
    cleans: list[tuple[int, np.ndarray | None]] = []  # (page index, H) of each clean frame, in clip order
    uses: list[int | None] = []  # per frame: its clean frame's index, or None (motion-blurred, rendered on its own)
    for k, H in plan:
        if motion_blur and H is not None:
            uses.append(None)
            continue
        if not cleans or cleans[-1][0] != k or not _same_h(cleans[-1][1], H):
            cleans.append((k, H))
        uses.append(len(cleans) - 1)

    def clean(j: int) -> np.ndarray:
        k, H = cleans[j]
        return _clean_frame(pages[max(k, 0)], width_mm, height_mm, cam, H, table)

    with ThreadPoolExecutor(max_workers=1) as pool:
        ahead: dict[int, Future] = {}
        current: tuple[int, np.ndarray] | None = None
        for i, (k, H) in enumerate(plan):
            j = uses[i]
            if j is None:
                frame = _blurred_frame(plan, i, pages[max(k, 0)], width_mm, height_mm, cam, table, rng)
            else:
                if current is None or current[0] != j:
                    for n in range(j, min(j + CLEAN_AHEAD, len(cleans))):
                        if n not in ahead:
                            ahead[n] = pool.submit(clean, n)
                    current = (j, ahead.pop(j).result())
                frame = _add_noise(current[1], rng)
            draw_probe(frame, i)
            clip.frames.append(frame)
            clip.homographies.append(H)
            clip.page_index.append(k)
    return clip


CLEAN_AHEAD = 3  # clean frames rendered ahead (3.7 MB each)


def _same_h(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and np.array_equal(a, b))


MOTION_BLUR_SAMPLES = (-0.25, -0.083, 0.083, 0.25)  # sub-exposures, in frame intervals around the frame's pose


def _blurred_frame(plan, i, page, width_mm, height_mm, cam, table, rng) -> np.ndarray:
    """Average of sub-exposures at homographies interpolated towards the previous/next frame's."""
    H = plan[i][1]
    acc = np.zeros((cam.height, cam.width, 3), np.float32)
    for s in MOTION_BLUR_SAMPLES:
        j = i + (1 if s > 0 else -1)
        other = plan[j][1] if 0 <= j < len(plan) and plan[j][1] is not None and plan[j][0] == plan[i][0] else H
        Hs = (1 - abs(s)) * H + abs(s) * other  # both normalised to H[2,2] = 1; fine over a fraction of a frame
        acc += render_frame(page, width_mm, height_mm, cam, Hs / Hs[2, 2], table, rng)
    return np.clip(acc / len(MOTION_BLUR_SAMPLES), 0, 255).astype(np.uint8)


def photo_of_page(page: np.ndarray, width_mm: float = 210.0, height_mm: float = 297.0,
                  seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """A single tilted 'phone photo' of the page (BGR 640×480) and its ground-truth homography page mm -> px."""
    cam = Pinhole()
    k = max(width_mm, height_mm) / 297.0
    R, t = look_at([width_mm / 2 - 60 * k, height_mm / 2 + 120 * k, -400 * k], [width_mm / 2, height_mm / 2, 0],
                   roll_deg=-6)
    H = page_homography(cam, R, t)
    frame = render_frame(page, width_mm, height_mm, cam, H, make_table(seed), np.random.default_rng(seed))
    return frame, H


if __name__ == "__main__":  # quick look: python tests/browser/clip.py /tmp/clip.y4m
    import sys

    out = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/clip.y4m")
    c = make_clip(make_page())
    c.write(out)
    cv2.imwrite(str(out.with_suffix(".png")), c.frames[len(c.frames) // 3])
    print(out, len(c.frames), "frames")
