"""Load on the public side (make bench-load): the real server (`baonhung serve`, gunicorn) on loopback with the demo
edition, simulated readers sending camera frames to POST /api/v1/recognize as the phone viewer does (640 px JPEG,
one request at a time, its own X-Viewer-Session, waiting as a 429's Retry-After says), artifact downloads beside
them.

Frames: half are phone-like photos of the demo page (markers.synth: found), half real photos of other printed things
from ../shared/data (tpofinder, SmartDoc 2015; downscaled to 640 px: found nowhere, the dearer case).

Scenarios, each bounded in time (--seconds) and only on 127.0.0.1:
  one address    all readers behind one address (a school's NAT, or a proxy the server was not told about)
  behind a proxy every reader with its own X-Forwarded-For, as a trusted nginx sends it (BAONHUNG_TRUSTED_PROXIES=1)
Measures: requests/s, latency p50/p95/p99, 429s, connection errors, the gunicorn worker's memory before and after.
Ends with one RESULT line.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("BAONHUNG_SHARED_DIR", REPO.parent / "shared"))
sys.path.insert(0, str(REPO))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def frames(n_real: int = 12) -> list[bytes]:
    from builder.demo import DEMO_PAGE_MM, demo_page_png
    from markers.synth import synth_photo

    page = cv2.imdecode(np.frombuffer(demo_page_png(), np.uint8), cv2.IMREAD_COLOR)
    out = []
    for seed in range(n_real):
        shot = synth_photo(page, *DEMO_PAGE_MM, seed=seed)
        out.append(_jpeg640(shot.image))
    real = sorted((SHARED / "data" / "tpofinder" / "data").rglob("*.jpg")) + \
        sorted((SHARED / "data" / "smartdoc15_subset").glob("*.jpeg"))
    for path in real[:n_real]:
        out.append(_jpeg640(cv2.imread(str(path))))
    return out


def _jpeg640(img: np.ndarray) -> bytes:
    s = 640 / max(img.shape[:2])
    small = cv2.resize(img, (round(img.shape[1] * s), round(img.shape[0] * s)), interpolation=cv2.INTER_AREA)
    return cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes()


class Server:
    def __init__(self, data: Path, port: int, env_extra: dict):
        env = {**os.environ, "BAONHUNG_DATA_DIR": str(data), **env_extra}
        self.proc = subprocess.Popen([str(REPO / ".venv" / "bin" / "baonhung"), "serve", "--port", str(port)],
                                     env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.port = port
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/v/")
                if c.getresponse().status == 200:
                    return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError("the server did not start")

    def worker_rss_mb(self) -> float:
        import psutil

        kids = psutil.Process(self.proc.pid).children(recursive=True)
        return max((k.memory_info().rss for k in kids), default=0) / 1e6

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def reader(port: int, photos: list[bytes], stop_at: float, forwarded: str | None, out: dict, lock: threading.Lock):
    session = secrets.token_urlsafe(12)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    rng = np.random.default_rng(int.from_bytes(session.encode()[:4], "little"))
    quiet_until = 0.0
    while time.monotonic() < stop_at:
        if time.monotonic() < quiet_until:
            time.sleep(0.05)
            continue
        body = photos[int(rng.integers(len(photos)))]
        headers = {"Content-Type": "image/jpeg", "X-Viewer-Session": session}
        if forwarded:
            headers["X-Forwarded-For"] = forwarded
        t0 = time.monotonic()
        try:
            conn.request("POST", "/api/v1/recognize?scope=edition:1", body=body, headers=headers)
            resp = conn.getresponse()
            resp.read()
            ms = (time.monotonic() - t0) * 1000
            with lock:
                out["codes"].append(resp.status)
                if resp.status == 200:
                    out["ms"].append(ms)
            if resp.status == 429:
                quiet_until = time.monotonic() + float(resp.getheader("Retry-After") or 5)
            if resp.getheader("Connection", "").lower() == "close":
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        except (OSError, http.client.HTTPException):
            with lock:
                out["conn_errors"] += 1
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        time.sleep(0.25)  # the viewer's pace: at most 4 frames a second, one at a time
    conn.close()


def downloader(port: int, urls: list[str], stop_at: float, out: dict, lock: threading.Lock):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    i = 0
    while time.monotonic() < stop_at:
        try:
            conn.request("GET", urls[i % len(urls)], headers={"Accept-Encoding": "gzip"})
            resp = conn.getresponse()
            resp.read()
            with lock:
                out["downloads"] += 1
                out["download_errors"] += resp.status != 200
        except (OSError, http.client.HTTPException):
            with lock:
                out["conn_errors"] += 1
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        i += 1


def scenario(port: int, photos, urls, readers: int, seconds: float, proxy: bool) -> dict:
    out = {"codes": [], "ms": [], "conn_errors": 0, "downloads": 0, "download_errors": 0}
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds
    threads = [threading.Thread(target=reader, args=(port, photos, stop_at, f"198.51.100.{i + 1}" if proxy else None,
                                                    out, lock)) for i in range(readers)]
    threads.append(threading.Thread(target=downloader, args=(port, urls, stop_at, out, lock)))
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=seconds + 60)
    out["elapsed"] = time.monotonic() - t0
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--readers", default="8,32", help="simulated readers per scenario, comma-separated")
    ap.add_argument("--seconds", type=float, default=20.0, help="length of each scenario (1-300)")
    args = ap.parse_args()
    if not 1 <= args.seconds <= 300:
        ap.error("--seconds must be 1-300")
    counts = [int(x) for x in args.readers.split(",")]
    if not all(1 <= n <= 200 for n in counts):
        ap.error("--readers: 1-200 each")

    from builder.db import upgrade

    tmp = Path(tempfile.mkdtemp(prefix="bench-load-"))
    data = tmp / "data"
    upgrade(f"sqlite:///{data / 'baonhung.sqlite3'}")
    subprocess.run([str(REPO / ".venv" / "bin" / "baonhung"), "demo", "--password", "bench-load-password"],
                   env={**os.environ, "BAONHUNG_DATA_DIR": str(data)}, check=True, capture_output=True)
    photos = frames()
    port = free_port()
    server = Server(data, port, {"BAONHUNG_TRUSTED_PROXIES": "1"})
    rows = []
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("GET", "/pub/editions/1/manifest.json")
        edition = json.loads(c.getresponse().read())
        page_url = edition["pages"][0]["manifest_url"]
        c.request("GET", page_url)
        page = json.loads(c.getresponse().read())
        urls = ["/pub/editions/1/manifest.json", page_url, page["bundles"]["full"]["url"], page["marker_url"]]
        rss0 = server.worker_rss_mb()
        for proxy in (False, True):
            for n in counts:
                res = scenario(port, photos, urls, n, args.seconds, proxy)
                codes = np.array(res["codes"])
                ms = np.array(res["ms"]) if res["ms"] else np.array([np.nan])
                rows.append({"scenario": "behind a proxy" if proxy else "one address", "readers": n,
                             "req_s": len(codes) / res["elapsed"], "p50": np.percentile(ms, 50),
                             "p95": np.percentile(ms, 95), "p99": np.percentile(ms, 99),
                             "r429": int((codes == 429).sum()), "other": int(((codes != 200) & (codes != 429)).sum()),
                             "conn": res["conn_errors"], "dl": res["downloads"], "dl_err": res["download_errors"],
                             "rss": server.worker_rss_mb()})
        rss1 = server.worker_rss_mb()
    finally:
        server.stop()
    print(f"bench-load — `baonhung serve` (gunicorn, 1 worker, 8 threads) on 127.0.0.1, demo edition, "
          f"{len(photos)} frames (half the demo page, half real photos of other things), {args.seconds:g} s each")
    print(f"{'scenario':<15} {'readers':>7} {'req/s':>6} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'429':>5} "
          f"{'other':>5} {'conn err':>8} {'downloads':>9} {'worker MB':>9}")
    for r in rows:
        print(f"{r['scenario']:<15} {r['readers']:>7} {r['req_s']:>6.1f} {r['p50']:>7.0f} {r['p95']:>7.0f} "
              f"{r['p99']:>7.0f} {r['r429']:>5} {r['other']:>5} {r['conn']:>8} {r['dl']:>9} {r['rss']:>9.0f}")
    worst = max(rows, key=lambda r: r["readers"])
    print(f"worker memory {rss0:.0f} MB before, {rss1:.0f} MB after")
    print(f"RESULT req_s_{worst['readers']}={max(r['req_s'] for r in rows if r['readers'] == worst['readers']):.1f} "
          f"p95_ms_{worst['readers']}={max(r['p95'] for r in rows if r['readers'] == worst['readers']):.0f} "
          f"r429={sum(r['r429'] for r in rows)} conn_errors={sum(r['conn'] for r in rows)} "
          f"worker_mb_before={rss0:.0f} worker_mb_after={rss1:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
