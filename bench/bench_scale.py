"""Scale-out on one machine (issue 28, make bench-scale): Debian's nginx in front of `baonhung serve-public`
processes, on loopback only.

Set-up (a throw-away data directory, bench/out/scale): the newsroom app (in this process, its JSON API) and one
`baonhung worker` process (the job queue, SQLite under the data directory). Edition 1 is published through the
queue: one page per SmartDoc 2015 document (../shared/data/smartdoc15_subset: a real phone frame of each, rectified
to 5 px/mm as bench_recognition does), each with a link overlay, the first with a video.

Load, one configuration at a time, each --seconds long at a fixed concurrency (--recognize readers posting real
phone frames to POST /api/v1/recognize: the other SmartDoc frames (found) and tpofinder's photos (found nowhere),
downscaled to 640 px as the viewer sends them, each the next as soon as one is answered; --downloaders clients
fetching the edition's /pub/a/ artifacts at --artifact-rate a second in all), all through nginx:
  1x1   one serve-public process, one gunicorn worker
  1x2   one serve-public process, two workers (the index loaded before the fork, shared)
  2x1   two serve-public processes of one worker each (nginx's upstream holds both)
Per configuration: requests/s, p50/p95 ms, errors (any status but 200/206, any connection error), resident memory
(RSS and proportional PSS from /proc/<pid>/smaps_rollup, of every process of the gunicorn groups), and the CPU
seconds the servers, nginx and this load generator used (they share the machine's cores).

Then, with 2x1 running: edition 2 (--pages pages: tpofinder's five objects and generated newspaper pages) is
published through the queue; timed: the job's run (started -> finished, by the worker), and, polling each replica
directly every 20 ms for the edition's manifest, how long after the job finished each one serves it.

Ends with a table and one ``RESULT key=value ...`` line.

    .venv/bin/python bench/bench_scale.py [--seconds 20] [--recognize 4] [--downloaders 2] [--artifact-rate 40]
                                          [--pages 20] [--configs 1x1,1x2,2x1] [--threads 4] [--cv-threads 0]
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import http.client
import io
import json
import logging
import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BAONHUNG_SHARED_DIR", REPO.parent / "shared"))
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "deploy"))

import nginx_conf  # noqa: E402

OUT = REPO / "bench" / "out" / "scale"
THREADS = 4  # gunicorn threads per worker (--threads)
CLK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def jpeg640(img: np.ndarray) -> bytes:
    s = 640 / max(img.shape[:2])
    small = cv2.resize(img, (round(img.shape[1] * s), round(img.shape[0] * s)), interpolation=cv2.INTER_AREA)
    return cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes()


def png(img: np.ndarray) -> bytes:
    return cv2.imencode(".png", img)[1].tobytes()


# ------------------------------------------------------------------------------------------------ real photos

def smartdoc() -> tuple[list[tuple[str, bytes, float, float]], list[bytes]]:
    """(pages: name, PNG, width mm, height mm — each document's first frame rectified; frames: the others, 640 px)."""
    sd = SHARED / "data" / "smartdoc15_subset"
    rows = list(csv.DictReader(open(sd / "ground_truth.csv")))
    w_mm, h_mm, px_per_mm = 210.0, 297.0, 5.0
    page_mm = np.array([[0, 0], [w_mm, 0], [w_mm, h_mm], [0, h_mm]], np.float32)
    pages, frames = [], []
    for doc in sorted({r["model_name"] for r in rows}):
        shots = sorted((r for r in rows if r["model_name"] == doc), key=lambda r: r["bg_name"])
        for k, r in enumerate(shots):
            img = cv2.imread(str(sd / f"{r['bg_name']}_{doc}_frame_{int(r['frame_index']):04d}.jpeg"))
            if k == 0:
                corners = np.array([[float(r[f"{c}_x"]), float(r[f"{c}_y"])] for c in ("tl", "tr", "br", "bl")],
                                   np.float32)
                h = cv2.getPerspectiveTransform(page_mm, corners).astype(float)
                size = (int(w_mm * px_per_mm), int(h_mm * px_per_mm))
                ref = cv2.warpPerspective(img, h @ np.diag([1 / px_per_mm, 1 / px_per_mm, 1]), size,
                                          flags=cv2.INTER_AREA | cv2.WARP_INVERSE_MAP)
                pages.append((f"smartdoc-{doc}", png(ref), w_mm, h_mm))
            else:
                frames.append(jpeg640(img))
    return pages, frames


def tpofinder() -> tuple[list[tuple[str, bytes, float, float]], list[bytes]]:
    """(pages: each object's frontal photo cropped to its box, 0.5 mm per photo px, enlarged 2x (the product refuses
    a page under 200 px a side); views: the other photos, 640 px)."""
    tpo = SHARED / "data" / "tpofinder"
    gt = json.loads((tpo / "ground_truth.json").read_text())
    pages, views = [], []
    for obj in sorted({e["object"] for e in gt}):
        e0 = next(e for e in gt if e["object"] == obj)
        (x0, y0), (x1, _), (_, y1), _ = e0["roi_bbox_in_ref_tl_tr_br_bl"]
        ref = cv2.imread(str(tpo / e0["reference"]))
        crop = cv2.resize(ref[y0:y1, x0:x1], None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)  # >= 200 px a side
        pages.append((f"tpo-{obj}", png(crop), (x1 - x0) * 0.5, (y1 - y0) * 0.5))
        views += [jpeg640(cv2.imread(str(tpo / e["view"]))) for e in gt if e["object"] == obj]
    return pages, views


def video_mp4() -> bytes:
    path = OUT / "clip.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25:duration=4",
                    "-pix_fmt", "yuv420p", "-c:v", "libx264", "-movflags", "+faststart", str(path)],
                   check=True, capture_output=True)
    return path.read_bytes()


# ------------------------------------------------------------------------------------------------ the newsroom

class Newsroom:
    """The newsroom app in this process (its JSON API, jobs queued, not run here) and a `baonhung worker`."""

    def __init__(self, data_dir: Path, env: dict):
        from builder import services as svc
        from builder.app import create_app
        from builder.db import upgrade

        url = f"sqlite:///{data_dir / 'baonhung.sqlite3'}"
        upgrade(url)
        self.app = create_app({"DATA_DIR": data_dir, "TESTING": True, "DATABASE_URL": url, "JOBS_IMMEDIATE": False})
        self.client = self.app.test_client()
        self.tokens = {}
        db = self.app.extensions["baonhung"].sessionmaker()
        try:
            for role in ("designer", "editor"):
                user, _ = svc.create_user(db, svc.SYSTEM, f"{role}@bench.vn", role, "mat-khau-bench-dai-1")
                _, self.tokens[role] = svc.issue_token(db, svc.SYSTEM, user, "bench")
        finally:
            db.close()
        self.post("/api/v1/publications", json={"name": "Báo Bench", "slug": "bao-bench"})
        self.worker = subprocess.Popen([str(REPO / ".venv" / "bin" / "baonhung"), "worker"],
                                       env={**env, "DATABASE_URL": url}, cwd=REPO, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL, start_new_session=True)

    def post(self, path, role="designer", **kw):
        r = self.client.post(path, headers={"Authorization": f"Bearer {self.tokens[role]}"}, **kw)
        assert r.status_code in (200, 201, 202), (path, r.status_code, r.get_json())
        return r.get_json()

    def get(self, path):
        r = self.client.get(path, headers={"Authorization": f"Bearer {self.tokens['editor']}"})
        assert r.status_code == 200, (path, r.status_code)
        return r.get_json()

    def edition(self, number: int, pages: list, video: bytes | None, video_on_every_page: bool = False
                ) -> tuple[int, list[int]]:
        """A submitted edition: each page with a link overlay, the first (or every one) also with a video."""
        edition = self.post("/api/v1/publications/bao-bench/editions",
                            json={"date": "2026-12-07", "number": number, "title": f"Bench {number}"})
        ids = []
        box = {"x_mm": "10", "y_mm": "10", "width_mm": "60", "height_mm": "40"}
        for i, (name, image, w_mm, h_mm) in enumerate(pages):
            page = self.post(f"/api/v1/editions/{edition['id']}/pages", content_type="multipart/form-data",
                             data={"image": (io.BytesIO(image), f"{name}.png"), "width_mm": f"{w_mm:.1f}",
                                   "height_mm": f"{h_mm:.1f}"})
            ids.append(page["id"])
            self.post(f"/api/v1/pages/{page['id']}/overlays", content_type="multipart/form-data",
                      data={"kind": "link", "url": f"https://example.org/{name}", **box})
            if video and (i == 0 or video_on_every_page):
                self.post(f"/api/v1/pages/{page['id']}/overlays", content_type="multipart/form-data",
                          data={"kind": "video", "file": (io.BytesIO(video), "v.mp4"), **box,
                                "y_mm": f"{max(5.0, min(60.0, h_mm - 45.0)):.1f}"})  # below the link, on the page
        self.post(f"/api/v1/editions/{edition['id']}/submit")
        return edition["id"], ids

    def publish(self, edition_id: int, timeout_s: float = 1800) -> dict:
        """Queue the publish and wait for the worker to finish it; the job as the API shows it, with the time the
        publish request took to be answered (``answered_ms``: the HTTP request only queues the job)."""
        t = time.perf_counter()
        job = self.post(f"/api/v1/editions/{edition_id}/publish", role="editor")
        answered_ms = (time.perf_counter() - t) * 1000
        deadline = time.monotonic() + timeout_s
        while job["status"] not in ("done", "failed"):
            assert time.monotonic() < deadline, job
            time.sleep(0.02)
            job = self.get(f"/api/v1/jobs/{job['id']}")
        assert job["status"] == "done", job
        return {**job, "answered_ms": answered_ms}

    def artifacts(self, page_ids: list[int]) -> list[str]:
        urls = []
        for pid in page_ids:
            m = self.client.get(f"/pub/pages/{pid}/manifest.json").get_json()
            urls += [m["preview_url"], m["thumbnail_url"], m["marker_url"], m["bundles"]["lite"]["url"],
                     m["bundles"]["full"]["url"]] + [x["url"] for x in m.get("media", [])]
        return urls

    def stop(self) -> None:
        if self.worker.poll() is None:
            os.killpg(self.worker.pid, 15)
            self.worker.wait(30)


# ------------------------------------------------------------------------------------------------ the public side

class PublicProcess:
    """`baonhung serve-public` in its own process group (gunicorn's master and workers)."""

    def __init__(self, env: dict, workers: int):
        self.port = free_port()
        self.proc = subprocess.Popen([str(REPO / ".venv" / "bin" / "baonhung"), "serve-public", "--host", "127.0.0.1",
                                      "--port", str(self.port), "--workers", str(workers), "--threads", str(THREADS)],
                                     env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)

    def wait(self, path: str) -> None:
        deadline = time.monotonic() + 120
        while get_status(self.port, path) != 200:
            assert self.proc.poll() is None, "serve-public exited"
            assert time.monotonic() < deadline, "serve-public did not start"
            time.sleep(0.2)

    def pids(self) -> list[int]:
        return group_pids(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            self.proc.wait(30)


def group_pids(pgid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "-g", str(pgid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def get_status(port: int, path: str) -> int:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", path)
        status = conn.getresponse().status
        conn.close()
        return status
    except OSError:
        return 0


def memory_mb(pid: int) -> tuple[float, float]:
    """(RSS, PSS) of one process in MB, from /proc/<pid>/smaps_rollup."""
    rss = pss = 0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Rss:"):
            rss = int(line.split()[1])
        elif line.startswith("Pss:"):
            pss = int(line.split()[1])
    return rss / 1024, pss / 1024


def cpu_s(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except OSError:
            pass
    return total / CLK


# ------------------------------------------------------------------------------------------------ load

class Load:
    """Bounded load through nginx: readers posting frames, downloaders fetching artifacts, for ``seconds``."""

    def __init__(self, port: int, frames: list[bytes], artifacts: list[str], downloads_per_s: float):
        self.port, self.frames, self.artifacts = port, frames, artifacts
        self.interval = 1.0 / downloads_per_s  # per downloader
        self.lock = threading.Lock()

    def _client(self, kind: str, stop_at: float, seed: int, out: dict) -> None:
        rnd = random.Random(seed)
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        session = f"bench-{seed}"
        lat, errors, nbytes = [], 0, 0
        next_at = time.monotonic()
        while time.monotonic() < stop_at:
            t = time.perf_counter()
            try:
                if kind == "recognize":
                    conn.request("POST", "/api/v1/recognize", body=rnd.choice(self.frames),
                                 headers={"Content-Type": "image/jpeg", "X-Viewer-Session": session})
                else:
                    # a fixed offered rate: downloads take what they need, not every cycle recognition could use
                    time.sleep(max(0.0, next_at - time.monotonic()))
                    next_at = max(next_at + self.interval, time.monotonic() - self.interval)
                    t = time.perf_counter()
                    conn.request("GET", rnd.choice(self.artifacts), headers={"Accept-Encoding": "gzip"})
                r = conn.getresponse()
                body = r.read()
                ok = r.status in (200, 206)
                nbytes += len(body)
            except (OSError, http.client.HTTPException):
                ok = False
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            if ok:
                lat.append((time.perf_counter() - t) * 1000)
            else:
                errors += 1
        conn.close()
        with self.lock:
            out[kind]["lat"] += lat
            out[kind]["errors"] += errors
            out[kind]["bytes"] += nbytes

    def run(self, seconds: float, readers: int, downloaders: int) -> dict:
        out = {k: {"lat": [], "errors": 0, "bytes": 0} for k in ("recognize", "artifact")}
        stop_at = time.monotonic() + seconds
        threads = [threading.Thread(target=self._client, args=("recognize", stop_at, i, out)) for i in range(readers)]
        threads += [threading.Thread(target=self._client, args=("artifact", stop_at, 1000 + i, out))
                    for i in range(downloaders)]
        start = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        out["seconds"] = time.monotonic() - start
        return out


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return float(np.percentile(values, q))


def run_config(name: str, processes: int, workers: int, env: dict, frames, artifacts, args, warm_path: str) -> dict:
    publics = [PublicProcess(env, workers) for _ in range(processes)]
    nginx = None
    try:
        for p in publics:
            p.wait(warm_path)
        nginx = nginx_conf.Nginx(OUT / f"nginx-{name}", free_port(), [f"127.0.0.1:{p.port}" for p in publics],
                                 Path(env["BAONHUNG_DATA_DIR"]) / "store")
        load = Load(nginx.port, frames, artifacts, args.artifact_rate / max(1, args.downloaders))
        load.run(3, args.recognize, args.downloaders)  # warm-up: every worker has loaded its libraries and buffers
        server_pids = [pid for p in publics for pid in p.pids()]
        before = (cpu_s(server_pids), cpu_s(nginx.pids()), time.process_time())
        res = load.run(args.seconds, args.recognize, args.downloaders)
        after = (cpu_s(server_pids), cpu_s(nginx.pids()), time.process_time())
        mem = [memory_mb(pid) for pid in server_pids]
        row = {"config": name, "processes": processes, "workers": workers, "seconds": res["seconds"],
               "rss_mb": sum(m[0] for m in mem), "pss_mb": sum(m[1] for m in mem),
               "rss_each": [round(m[0]) for m in mem],
               "cpu_servers": after[0] - before[0], "cpu_nginx": after[1] - before[1], "cpu_load": after[2] - before[2]}
        for kind in ("recognize", "artifact"):
            r = res[kind]
            row[kind] = {"n": len(r["lat"]), "rps": len(r["lat"]) / res["seconds"], "p50": pct(r["lat"], 50),
                         "p95": pct(r["lat"], 95), "errors": r["errors"], "mb_s": r["bytes"] / res["seconds"] / 1e6}
        return row, publics, nginx
    except BaseException:
        if nginx is not None:
            nginx.stop()
        for p in publics:
            p.stop()
        raise


def pickup(newsroom: Newsroom, publics: list[PublicProcess], pages: list, number: int,
           video: bytes | None = None) -> dict:
    """Publish edition ``number`` through the queue while every replica is polled directly for its manifest (with
    ``video``: a video overlay on every page)."""
    edition_id, _ = newsroom.edition(number, pages, video, video_on_every_page=True)
    path = f"/pub/editions/{edition_id}/manifest.json"
    first_ok: dict[int, float] = {}
    done = threading.Event()

    def poll(p: PublicProcess) -> None:
        while not done.is_set():
            if get_status(p.port, path) == 200:
                first_ok[p.port] = time.time()
                return
            time.sleep(0.02)

    pollers = [threading.Thread(target=poll, args=(p,)) for p in publics]
    for t in pollers:
        t.start()
    try:
        job = newsroom.publish(edition_id)
        deadline = time.monotonic() + 60
        while len(first_ok) < len(publics) and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        done.set()
        for t in pollers:
            t.join()
    stamp = lambda s: dt.datetime.fromisoformat(s.rstrip("Z")).replace(tzinfo=dt.timezone.utc).timestamp()  # noqa
    finished = stamp(job["finished_at"])
    return {"pages": len(pages), "videos": len(pages) if video else 0, "answered_ms": job["answered_ms"],
            "publish_s": finished - stamp(job["started_at"]),
            "queued_s": finished - stamp(job["created_at"]),
            "pickup_s": [round(first_ok[p.port] - finished, 3) if p.port in first_ok else None for p in publics]}


# ------------------------------------------------------------------------------------------------ main

def main() -> None:
    global THREADS
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20, help="load per configuration")
    ap.add_argument("--recognize", type=int, default=4, help="concurrent readers posting frames")
    ap.add_argument("--downloaders", type=int, default=2, help="concurrent artifact downloaders")
    ap.add_argument("--artifact-rate", type=float, default=40, help="artifact downloads per second, offered")
    ap.add_argument("--pages", type=int, default=20, help="pages of the edition published during the pickup test")
    ap.add_argument("--threads", type=int, default=THREADS, help="gunicorn threads per worker")
    ap.add_argument("--cv-threads", type=int, default=0,
                    help="OpenCV's and OpenMP's threads per public process (OPENCV_FOR_THREADS_NUM, OMP_NUM_THREADS); "
                         "0: their defaults (one per core)")
    ap.add_argument("--video-on-every-page", action="store_true",
                    help="the edition published during the pickup test has a video overlay on every page")
    ap.add_argument("--configs", default="1x1,1x2,2x1", help="processes x workers, comma-separated")
    args = ap.parse_args()
    THREADS = args.threads
    logging.disable(logging.WARNING)
    if nginx_conf.nginx_binary() is None:
        sys.exit("nginx is not installed: make bench-scale installs Debian's nginx")

    shutil.rmtree(OUT, ignore_errors=True)
    data = OUT / "data"
    data.mkdir(parents=True)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"),
           "BAONHUNG_DATA_DIR": str(data), "BAONHUNG_READERS_DATABASE_URL": "none",
           "BAONHUNG_ACCEL_REDIRECT": nginx_conf.ACCEL_PREFIX, "BAONHUNG_TRUSTED_PROXIES": "1",
           # the bench measures serving, not the per-address limits (every reader arrives from 127.0.0.1)
           "BAONHUNG_RECOGNIZE_RATE": "1000000", "BAONHUNG_RECOGNIZE_SESSION_RATE": "1000000"}
    if args.cv_threads:
        env.update(OPENCV_FOR_THREADS_NUM=str(args.cv_threads), OMP_NUM_THREADS=str(args.cv_threads))

    t0 = time.monotonic()
    sd_pages, sd_frames = smartdoc()
    tpo_pages, tpo_views = tpofinder()
    frames = sd_frames + tpo_views
    newsroom = Newsroom(data, env)
    rows, pick = [], None
    try:
        ed1, page_ids = newsroom.edition(1, sd_pages, video_mp4())
        job1 = newsroom.publish(ed1)
        artifacts = newsroom.artifacts(page_ids)
        print(f"# edition 1: {len(sd_pages)} pages (SmartDoc documents), {len(artifacts)} artifacts, published by the "
              f"worker (version {job1['version']}); set-up {time.monotonic() - t0:.0f} s; frames: {len(sd_frames)} "
              f"SmartDoc (found) + {len(tpo_views)} tpofinder (not in the edition), 640 px", flush=True)
        from markers.synth import generate_page

        extra = [(f"synth-{i}", png(generate_page(7000 + i)), 297.0, 420.0)
                 for i in range(max(0, args.pages - len(tpo_pages)))]
        pages2 = (tpo_pages + extra)[:args.pages]
        for name in args.configs.split(","):
            processes, workers = (int(x) for x in name.split("x"))
            row, publics, nginx = run_config(name, processes, workers, env, frames, artifacts, args,
                                             f"/pub/editions/{ed1}/manifest.json")
            try:
                rows.append(row)
                print(f"# {name}: {json.dumps(row, default=lambda v: round(v, 2))}", flush=True)
                if processes > 1 and pick is None:
                    pick = pickup(newsroom, publics, pages2, 2, video_mp4() if args.video_on_every_page else None)
                    print(f"# pickup: {json.dumps(pick)}", flush=True)
            finally:
                nginx.stop()
                for p in publics:
                    p.stop()
    finally:
        newsroom.stop()

    print()
    print(f"{subprocess.run([nginx_conf.nginx_binary(), '-v'], capture_output=True, text=True).stderr.strip()}"
          f"; {os.cpu_count()} cores; {args.recognize} readers + {args.downloaders} downloaders "
          f"({args.artifact_rate:g}/s offered) through nginx, "
          f"{args.seconds:g} s per configuration; gunicorn --threads {THREADS}"
          + (f"; OpenCV/OpenMP threads per process: {args.cv_threads}" if args.cv_threads else ""))
    print(f"{'config':7} {'rec/s':>6} {'p50':>6} {'p95':>6} {'art/s':>6} {'p50':>5} {'p95':>5} {'MB/s':>5} {'err':>4} "
          f"{'RSS MB':>7} {'PSS MB':>7} {'cpu srv':>7} {'nginx':>6} {'load':>5}")
    for r in rows:
        rec, art = r["recognize"], r["artifact"]
        print(f"{r['config']:7} {rec['rps']:6.1f} {rec['p50']:6.0f} {rec['p95']:6.0f} {art['rps']:6.1f} "
              f"{art['p50']:5.1f} {art['p95']:5.1f} {art['mb_s']:5.1f} {rec['errors'] + art['errors']:4d} "
              f"{r['rss_mb']:7.0f} {r['pss_mb']:7.0f} {r['cpu_servers'] / r['seconds']:7.2f} "
              f"{r['cpu_nginx'] / r['seconds']:6.2f} {r['cpu_load'] / r['seconds']:5.2f}")
    print("(latencies ms; RSS/PSS: every process of the serve-public groups after the load; cpu: cores used on "
          "average by the servers, nginx and this load generator)")
    by = {r["config"]: r for r in rows}
    result = {"errors": sum(r["recognize"]["errors"] + r["artifact"]["errors"] for r in rows)}
    if "1x1" in by:
        result["recognize_rps_1"] = round(by["1x1"]["recognize"]["rps"], 2)
        result["artifact_rps_1"] = round(by["1x1"]["artifact"]["rps"], 1)
        result["pss_mb_1"] = round(by["1x1"]["pss_mb"])
    for name in ("1x2", "2x1"):
        if name in by and "1x1" in by:
            result[f"recognize_rps_{name}"] = round(by[name]["recognize"]["rps"], 2)
            result[f"speedup_{name}"] = round(by[name]["recognize"]["rps"] / by["1x1"]["recognize"]["rps"], 2)
            result[f"pss_mb_{name}"] = round(by[name]["pss_mb"])
            result[f"mem_ratio_{name}"] = round(by[name]["pss_mb"] / by["1x1"]["pss_mb"], 2)
    if pick:
        print(f"edition 2: {pick['pages']} pages ({pick['videos']} with a video), the publish request answered in "
              f"{pick['answered_ms']:.0f} ms, published by the worker in {pick['publish_s']:.1f} s "
              f"(queued -> done {pick['queued_s']:.1f} s); served by each replica "
              f"{', '.join(f'{s:+.2f} s' if s is not None else 'never (60 s)' for s in pick['pickup_s'])} "
              f"after the job finished")
        result["publish_pages"] = pick["pages"]
        result["publish_videos"] = pick["videos"]
        result["publish_answered_ms"] = round(pick["answered_ms"])
        result["publish_s"] = round(pick["publish_s"], 1)
        waits = [s for s in pick["pickup_s"] if s is not None]
        result["replica_pickup_s"] = round(max(waits), 2) if len(waits) == len(pick["pickup_s"]) else "never"
    print("RESULT " + " ".join(f"{k}={v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
