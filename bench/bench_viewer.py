"""Benchmark of the phone web viewer in headless Chromium (make bench-viewer).

Runs the real viewer (its blueprint, modules, opencv.js and three.js) against a fake camera playing y4m clips of a
pinhole camera over a printed page (tests/browser/clip.py), served either by the real app with the demo content
(`baonhung demo`: ``--app demo``) or by the self-contained fixture page (``--app fixture``; ``auto`` tries demo).

Measures
  first_overlay_s  first camera frame -> overlays visible, page in view from the first frame, recognition on the
                   server included; viewer already loaded when the reader taps "start" (warm); cold = tap at once
  fps              frames processed per second while tracking (the camera delivers 30)
  track_ms         per-frame tracking cost (LK flow + RANSAC homography), median
  redetect_ms      per-attempt ORB re-detection cost (detect + match + RANSAC), median
  jitter_px        std of overlay corner positions on a still clip (sensor noise only), px
  viewer_gzip_mb   bytes the viewer downloads before its first camera frame (as transferred, gzip)
  bundle_kb        bytes of the page bundle (GLB + marker) as transferred
On a phone profile (tests/browser/phone.py: Chromium throttled through the DevTools protocol, CPU 4x slower,
1.6 Mbit/s down, 750 kbit/s up, 150 ms round trip, 412x823, empty cache; options below), and again at 6x CPU:
  phone_first_overlay_s       link opened -> first overlay on the paper, cold cache, "Bật camera" tapped at once
  phone_warm_first_overlay_s  the same link re-opened (service worker installed)
  phone_bytes_mb              downloaded before the first overlay (on the wire: gzip and headers)
  first recognize answer, tracker ready, fps while tracked in the browser, taps lost
Ends with one machine-readable RESULT line.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.browser import clip as clipmod  # noqa: E402
from tests.browser import fixture_app as fx  # noqa: E402
from tests.browser.phone import PhoneProfile, phone_scan  # noqa: E402


@dataclass
class Target:
    name: str
    base: str
    code: str
    page: np.ndarray
    width_mm: float
    height_mm: float
    overlays_mm: dict  # overlay id -> (4, 2) page-mm corners
    stop: object


def fixture_target(tmp: Path) -> Target:
    f = fx.build_fixture(tmp / "fixture")
    server, base = fx.serve_in_thread(fx.create_fixture_app(f))
    return Target("fixture page (tests/browser/fixture_app.py)", base, fx.CODE, f.page, fx.WIDTH_MM, fx.HEIGHT_MM,
                  {ov["id"]: fx.overlay_corners_mm(ov) for ov in fx.OVERLAYS}, server.shutdown)


def demo_target(tmp: Path) -> Target:
    """The real app on a temporary data dir, seeded with the demo edition (what `baonhung demo` publishes)."""
    from builder.app import create_app
    from builder.bundle import BundleOptions
    from builder.db import upgrade
    from builder.demo import DEMO_PAGE_MM, demo_page_png, seed_demo
    from builder.models import Page

    data = tmp / "data"
    data.mkdir()
    upgrade(f"sqlite:///{data / 'baonhung.sqlite3'}")
    app = create_app({"DATA_DIR": data, "TESTING": True, "BUNDLE_OPTIONS": BundleOptions(compress=True)})
    state = app.extensions["baonhung"]
    db = state.sessionmaker()
    try:
        result = seed_demo(db, state.settings, password="bench-demo-password")
        page = db.get(Page, result.page_id)
        overlays = {}
        for ov in page.overlays:
            x, y, w, h = ov.x_mm, ov.y_mm, ov.width_mm, ov.height_mm
            if not getattr(ov, "rotation_deg", 0):
                overlays[str(ov.id)] = np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], np.float64)
    finally:
        db.close()
    server, base = fx.serve_in_thread(app)
    img = cv2.imdecode(np.frombuffer(demo_page_png(), np.uint8), cv2.IMREAD_COLOR)
    return Target(f"demo edition of the real app (/v/{result.edition_code})", base, result.edition_code, img,
                  DEMO_PAGE_MM[0], DEMO_PAGE_MM[1], overlays, server.shutdown)


def run(target: Target, y4m: Path, seconds: float, warm: bool, record_network: bool = False,
        process: int = 640) -> dict:
    from playwright.sync_api import sync_playwright

    out = {"requests": []}
    with sync_playwright() as pw:
        browser = fx.launch_chromium(pw, clip=y4m)
        try:
            page = browser.new_page(viewport={"width": 640, "height": 480})
            page.add_init_script(clipmod.PROBE_JS)
            if record_network:
                def on_done(req):
                    try:
                        size = req.sizes()["responseBodySize"]
                    except Exception:  # request without a body (redirect, aborted)
                        size = 0
                    out["requests"].append((time.monotonic(), req.url, size))
                page.on("requestfinished", on_done)
            t_nav = time.monotonic()
            # cold: tap as soon as the page is parsed; warm: once it has loaded (the tracker, opencv.js, is loaded
            # after the first overlay either way)
            page.goto(f"{target.base}/v/{target.code}?nosw=1&process={process}",
                      wait_until="load" if warm else "domcontentloaded")
            out["t_start"] = time.monotonic()
            page.click("#start")
            fx.wait_state(page, "s.overlaysVisible && s.tracker === 'ready'", 60)
            time.sleep(seconds)
            out["frames"] = page.evaluate(fx.FRAMES_JS)
            out["metrics"] = page.evaluate(fx.METRICS_JS)
            # re-detection on frames showing the page: force a few on the live tracker (it reseeds itself)
            out["forced_redetect_ms"] = page.evaluate("""() => { const t = window.__baonhung.debug.tracker, ms = [];
                if (!t || !t.canRedetect) return ms;
                for (let k = 0; k < 15; k++) { t.redetect(); ms.push(t.stats.lastRedetectMs); } return ms; }""")
            out["t_nav"] = t_nav
            # the page's clock (performance.now) -> first frame time on ours, for the network split
            out["first_frame_wall"] = out["t_nav"] + out["metrics"]["firstFrameAt"] / 1000.0
        finally:
            browser.close()
    return out


def fps_while_tracking(frames: list[dict]) -> float:
    """Processed frames per second over runs of consecutive tracked frames (≥10 frames each)."""
    total_frames, total_time = 0, 0.0
    run_start = None
    for a, b in zip(frames, frames[1:] + [None]):
        if a["tracked"] and run_start is None:
            run_start = a
        if run_start is not None and (b is None or not b["tracked"]):
            n = a["i"] - run_start["i"]
            if n >= 10:
                total_frames += n
                total_time += (a["t"] - run_start["t"]) / 1000.0
            run_start = None
    return total_frames / total_time if total_time else 0.0


JITTER_SETTLE_FRAMES = 30  # the focal-length estimate and the One-Euro filter settle during the first second


def jitter(frames: list[dict], key: str = "overlays") -> float:
    """Mean over overlay corners of sqrt(var x + var y) across tracked frames (still clip), after settling."""
    tracks: dict = {}
    for r in [r for r in frames if r.get("overlays")][JITTER_SETTLE_FRAMES:]:
        if not r.get("overlays"):
            continue
        if key == "overlays":
            for ov in r["overlays"]:
                for k, c in enumerate(ov["corners"] or []):
                    tracks.setdefault((ov["id"], k), []).append(c)
        else:
            for k, c in enumerate(r.get(key) or []):
                tracks.setdefault(("page", k), []).append(c)
    stds = [float(np.sqrt(np.var(np.array(v)[:, 0]) + np.var(np.array(v)[:, 1]))) for v in tracks.values() if len(v) > 30]
    return float(np.mean(stds)) if stds else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--app", choices=("auto", "demo", "fixture"), default="auto")
    ap.add_argument("--seconds", type=float, default=8.0, help="seconds of tracking recorded per run")
    d = PhoneProfile()
    ap.add_argument("--phone-cpu", type=float, default=d.cpu, help="phone profile: CPU slowdown (default %(default)s)")
    ap.add_argument("--phone-low-cpu", type=float, default=6.0, help="low-end phone: CPU slowdown (default %(default)s)")
    ap.add_argument("--phone-down-kbps", type=float, default=d.down_kbps)
    ap.add_argument("--phone-up-kbps", type=float, default=d.up_kbps)
    ap.add_argument("--phone-rtt-ms", type=float, default=d.rtt_ms)
    ap.add_argument("--no-phone", action="store_true", help="skip the phone-profile runs")
    args = ap.parse_args()
    for name in ("phone_cpu", "phone_low_cpu", "phone_down_kbps", "phone_up_kbps", "phone_rtt_ms"):
        value = getattr(args, name)
        if not (0 < value <= 100_000):
            ap.error(f"--{name.replace('_', '-')} must be positive (got {value})")
    tmp = Path(tempfile.mkdtemp(prefix="bench-viewer-"))
    target = None
    if args.app in ("auto", "demo"):
        try:
            target = demo_target(tmp)
        except Exception as exc:  # noqa: BLE001 - report why, then fall back (auto) or fail (demo)
            if args.app == "demo":
                raise
            print(f"(demo app unavailable: {type(exc).__name__}: {exc}; using the fixture page)")
    if target is None:
        target = fixture_target(tmp)
    print(f"viewer benchmark — {target.name}")
    t0 = time.monotonic()
    moving = clipmod.make_clip(target.page, target.width_mm, target.height_mm, seconds_page=6.0, seconds_blank=1.5)
    moving_y4m = moving.write(tmp / "moving.y4m")
    gt = moving.ground_truth()
    still = clipmod.make_clip(target.page, target.width_mm, target.height_mm, seconds_page=4.0, seconds_blank=0.0,
                              still=True)
    still_y4m = still.write(tmp / "still.y4m")
    print(f"clips rendered in {time.monotonic() - t0:.1f} s ({len(moving.frames)} + {len(still.frames)} frames, "
          f"{clipmod.WIDTH}x{clipmod.HEIGHT} @ {clipmod.FPS} fps)")
    phone_runs = {}
    try:
        warm = run(target, moving_y4m, args.seconds, warm=True, record_network=True)
        cold = run(target, moving_y4m, 1.0, warm=False)
        st = run(target, still_y4m, 5.0, warm=True)
        small = run(target, moving_y4m, args.seconds, warm=True, process=480)
        if not args.no_phone:
            # the page in the reader's hands from the first frame on, moving, looping without a blank table
            phone_clip = clipmod.make_clip(target.page, target.width_mm, target.height_mm, seconds_page=8.0,
                                           seconds_blank=0.0)
            phone_y4m = phone_clip.write(tmp / "phone.y4m")
            for cpu in (args.phone_cpu, args.phone_low_cpu):
                profile = PhoneProfile(cpu=cpu, down_kbps=args.phone_down_kbps, up_kbps=args.phone_up_kbps,
                                       rtt_ms=args.phone_rtt_ms)
                phone_runs[cpu] = (profile, *phone_scan(target.base, target.code, phone_y4m, profile, track_s=5.0))
    finally:
        target.stop()

    m = warm["metrics"]
    first_overlay = (m["firstOverlayAt"] - m["firstFrameAt"]) / 1000.0
    first_match = (m["firstMatchAt"] - m["firstFrameAt"]) / 1000.0
    cm = cold["metrics"]
    cold_first = (cm["firstOverlayAt"] - cm["firstFrameAt"]) / 1000.0
    cold_tap = (cm["firstOverlayAt"] - cm["tapAt"]) / 1000.0
    warm_tap = (m["firstOverlayAt"] - m["tapAt"]) / 1000.0
    fps = fps_while_tracking(warm["frames"])
    track_ms = float(np.median(m["trackMs"])) if m["trackMs"] else float("nan")
    track_p90 = float(np.percentile(m["trackMs"], 90)) if m["trackMs"] else float("nan")
    redetect = warm["forced_redetect_ms"] + st["forced_redetect_ms"]
    redetect_ms = float(np.median(redetect)) if redetect else float("nan")
    lost_attempts = m["redetectMs"] + st["metrics"]["redetectMs"] + cm["redetectMs"]
    lost_ms = float(np.median(lost_attempts)) if lost_attempts else float("nan")
    jit = jitter(st["frames"])
    jit_raw = jitter(st["frames"], "rawCorners")
    # registration of the in-browser tracker; the frames drawn from the server's answers before it had loaded
    # (mode "server", the pose of a frame 0.1-1 s old) are reported on their own
    tracked_frames = [r for r in warm["frames"] if r.get("mode") != "server"]
    server_frames = [r for r in warm["frames"] + cold["frames"] if r.get("mode") == "server"]
    errs = fx.overlay_errors(tracked_frames, gt, target.overlays_mm)
    errs_server = fx.overlay_errors(server_frames, gt, target.overlays_mm)
    # 480 px processing (slow-device mode): ground truth scaled to 480×360, pixel centres kept
    k = 480 / clipmod.WIDTH
    to_small = np.array([[k, 0, (k - 1) / 2], [0, k, (k - 1) / 2], [0, 0, 1]])
    gt_small = dict(gt, frames=[None if f is None else dict(f, homography=(to_small @ np.array(f["homography"])).tolist())
                                for f in gt["frames"]])
    errs_small = fx.overlay_errors([r for r in small["frames"] if r.get("mode") != "server"], gt_small,
                                   target.overlays_mm) / k  # in 640-px units
    sm = small["metrics"]
    small_ms = float(np.median(sm["trackMs"])) if sm["trackMs"] else float("nan")
    small_fps = fps_while_tracking(small["frames"])
    recog = float(np.median(m["recognizeMs"])) if m["recognizeMs"] else float("nan")
    before = [r for r in warm["requests"] if r[0] <= warm["first_frame_wall"]]
    shell_bytes = sum(r[2] for r in before if "/pub/" not in r[1] and "/api/" not in r[1])
    bundle_bytes = sum(r[2] for r in warm["requests"] if "/pub/a/" in r[1] and r[1].endswith((".glb", ".json")))
    media_bytes = sum(r[2] for r in warm["requests"] if "/pub/a/" in r[1] and not r[1].endswith((".glb", ".json")))
    gz_mb = shell_bytes / 1e6

    rows = [
        ("first overlay (warm: viewer loaded, tap, page in view)", f"{first_overlay:.2f} s", "≤ 1.0 s"),
        ("  of which server recognition (first match)", f"{first_match:.2f} s", ""),
        ("  recognize request, median", f"{recog:.0f} ms", ""),
        ("  tap -> overlay, camera start included (warm)", f"{warm_tap:.2f} s", ""),
        ("first overlay (cold: tap at once, opencv.js still loading)", f"{cold_first:.2f} s", ""),
        ("  tap -> overlay, camera start included (cold)", f"{cold_tap:.2f} s", ""),
        ("frames processed per second while tracking", f"{fps:.1f}", "≥ 25"),
        ("tracking per frame (LK + RANSAC), median / p90", f"{track_ms:.1f} / {track_p90:.1f} ms", ""),
        ("re-detection with the page in view (ORB + match + RANSAC), median", f"{redetect_ms:.1f} ms", ""),
        ("  re-detection attempts while lost (blank table), median", f"{lost_ms:.1f} ms", ""),
        ("jitter on a still clip, smoothed (raw)", f"{jit:.3f} ({jit_raw:.3f}) px", "≤ 0.5 px"),
        ("overlay corner error vs ground truth, median / p90",
         f"{np.median(errs):.2f} / {np.percentile(errs, 90):.2f} px" if len(errs) else "n/a", "≤ 4 / 10 px"),
        ("  before the tracker: server's pose, median / p90 (frames)",
         f"{np.median(errs_server):.2f} / {np.percentile(errs_server, 90):.2f} px ({len(errs_server) // 4 // 3})"
         if len(errs_server) else "n/a", ""),
        ("slow-device mode (480 px): tracking ms, fps", f"{small_ms:.1f} ms, {small_fps:.1f}", ""),
        ("  its overlay error in 640-px units, median / p90",
         f"{np.median(errs_small):.2f} / {np.percentile(errs_small, 90):.2f} px" if len(errs_small) else "n/a", ""),
        ("viewer download before first frame (gzip)", f"{gz_mb:.2f} MB", "≤ 4 MB"),
        ("page bundle (GLB + marker) / media, as transferred", f"{bundle_bytes / 1e3:.0f} KB / {media_bytes / 1e3:.0f} KB", ""),
    ]
    phone = {}
    for cpu, (profile, pc, pw_) in phone_runs.items():
        label = "phone" if cpu == args.phone_cpu else f"low-end phone ({cpu:g}x CPU)"
        goal = cpu == args.phone_cpu
        pfps = fps_while_tracking(pc.frames)
        rows += [
            (f"{label}: {profile.label()}", "", ""),
            ("  first overlay after the link is opened, cold cache", f"{pc.first_overlay_s:.2f} s", "≤ 6 s" if goal else ""),
            ("  first overlay, warm re-open (service worker)", f"{pw_.first_overlay_s:.2f} s", "≤ 3 s" if goal else ""),
            ("  downloaded before the first overlay (cold)", f"{pc.bytes_before_overlay / 1e6:.2f} MB",
             "≤ 0.6 MB" if goal else ""),
            ("  first recognize answer / tap (cold)", f"{pc.first_recognize_s:.2f} s / {pc.tap_s:.2f} s", ""),
            ("  tracker ready (cold), downloaded in all", f"{pc.tracker_ready_s or float('nan'):.2f} s, "
             f"{pc.bytes_total / 1e6:.2f} MB", ""),
            ("  frames per second tracked in the browser", f"{pfps:.1f}", ""),
            ("  tracking / re-detection per frame, median (main thread)",
             f"{np.median(pc.track_ms) if pc.track_ms else float('nan'):.0f} / "
             f"{np.median(pc.redetect_ms) if pc.redetect_ms else float('nan'):.0f} ms", ""),
            ("  taps lost (cold + warm)", f"{pc.lost_taps + pw_.lost_taps}", "0"),
        ]
        phone[cpu] = (pc, pw_)
    w = max(len(r[0]) for r in rows)
    print(f"{'measure'.ljust(w)}  {'value':>22}  target")
    for name, val, tgt in rows:
        print(f"{name.ljust(w)}  {val:>22}  {tgt}")
    print()
    print("Phones are 3-5x slower than this 2-core machine. Tracking would cost "
          f"{3 * track_ms:.0f}-{5 * track_ms:.0f} ms per frame at 640 px: 30 fps only at the fast end, so the viewer "
          f"drops to 480 px by itself when a frame costs >24 ms ({3 * small_ms:.0f}-{5 * small_ms:.0f} ms expected). "
          f"An ORB re-detection ≈ {3 * redetect_ms:.0f}-{5 * redetect_ms:.0f} ms is a visible hitch: it runs only "
          "when flow fails, every 3rd frame while lost. The first overlay is drawn from the server's answer (its "
          "homography) once the page bundle is in; the tracker (opencv.js) is downloaded only after it, while the "
          "overlays follow the server's answers, and is cached by the service worker for the next visit.")
    phone_kv = ""
    if phone:
        (pc, pw_), (lc, lw) = phone[args.phone_cpu], phone[args.phone_low_cpu]
        phone_kv = (f" phone_first_overlay_s={pc.first_overlay_s:.2f} phone_warm_first_overlay_s={pw_.first_overlay_s:.2f}"
                    f" phone_bytes_mb={pc.bytes_before_overlay / 1e6:.2f} phone_fps={fps_while_tracking(pc.frames):.1f}"
                    f" phone_lost_taps={pc.lost_taps + pw_.lost_taps}"
                    f" lowend_first_overlay_s={lc.first_overlay_s:.2f} lowend_warm_first_overlay_s={lw.first_overlay_s:.2f}")
    print(f"RESULT first_overlay_s={first_overlay:.2f} fps={fps:.1f} track_ms={track_ms:.1f} "
          f"redetect_ms={redetect_ms:.1f} jitter_px={jit:.3f} viewer_gzip_mb={gz_mb:.2f}{phone_kv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
