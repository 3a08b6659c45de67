"""Readership analytics (make bench-analytics, issue 26).

1. Ingestion: the real server (`baonhung serve`, gunicorn, 1 worker, 8 threads, demo edition) on loopback; sender
   threads POST batches of 20 events of the demo page to /api/v1/events (each its own X-Forwarded-For, the server
   told of one proxy, the event rate limits raised for the bench) while readers send camera frames to
   /api/v1/recognize beside them (bench_load's frames: the demo page and real photos from ../shared/data).
   Measures events stored per second and the p50/p95 latency of the event posts twice: closed loop (each sender
   posts again as soon as it is answered: the saturation throughput, where latency = senders / throughput) and
   paced at --paced events/s (open loop, latency from each batch's scheduled time): the latency at the target rate.
2. Storage and dashboard: --events raw events (default 10,000,000) generated in a SQLite events store (executemany
   in chunks; 120 days, one edition every 2 days of 8 pages with 3 overlays, readers on recent editions), bytes per
   raw event (the file over the rows), the rollup of every completed day, then the dashboard's queries for one
   edition (report + its pages + its days) over the last 30 days: the busiest edition read today, so both the
   rolled-up days and today's raw events are read.
3. --part separate (issue 26's way out of the shared interpreter lock): two `baonhung serve-public --workers 1`
   processes on two ports; the paced run (ack committed unless --ack says otherwise) against one while the recognize
   readers load the other, then the events process without readers, then (unless --no-compare) the same load against
   one serve-public serving both; a table with the cores each process and the bench used, and its own RESULT line.
Ends with one RESULT line.
"""
from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_load import Server, free_port, frames, reader  # noqa: E402

BATCH = 20
UA = "Mozilla/5.0 (Linux; Android 14; SM-A546E) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Mobile Safari/537.36"


def sender(port: int, page: int, overlays: list[int], stop_at: float, out: dict, lock, idx: int,
           interval_s: float = 0.0):
    """POST batches until ``stop_at``. ``interval_s`` 0: the next as soon as the answer came (closed loop: the
    server's saturation, where latency is senders / throughput). Else paced (open loop): one batch every
    ``interval_s`` on a fixed schedule, its latency counted from its scheduled time (a late answer delays the next
    send and that wait is counted, so a slow server is not hidden)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    rng = np.random.default_rng(idx)
    due = time.monotonic() + (interval_s * idx / 8 if interval_s else 0.0)  # senders spread over the interval
    while time.monotonic() < stop_at:
        if interval_s:
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            if due >= stop_at:
                break
        now = int(time.time() * 1000)
        events = []
        for i in range(BATCH):
            kind = int(rng.integers(4))
            if kind == 0:
                events.append({"type": "aim", "t": now - i * 50, "page": page, "x_mm": float(rng.uniform(0, 200)),
                               "y_mm": float(rng.uniform(0, 280))})
            elif kind == 1:
                events.append({"type": "dwell", "t": now - i * 50, "page": page, "ms": int(rng.integers(100, 15000))})
            elif kind == 2 and overlays:
                events.append({"type": "overlay_shown", "t": now - i * 50, "page": page,
                               "overlay": overlays[int(rng.integers(len(overlays)))]})
            else:
                events.append({"type": "recognized", "t": now - i * 50, "page": page, "ms": int(rng.integers(200, 5000)),
                               "stage": "server", "scoped": True})
        body = json.dumps({"v": 1, "session": f"bench-{idx}-{secrets.token_hex(4)}", "entry": "qr", "events": events})
        t0 = due if interval_s else time.monotonic()
        due += interval_s
        try:
            conn.request("POST", "/api/v1/events", body=body, headers={
                "Content-Type": "application/json", "User-Agent": UA, "X-Forwarded-For": f"10.0.{idx}.{now % 250}"})
            resp = conn.getresponse()
            resp.read()
            ms = (time.monotonic() - t0) * 1000
            with lock:
                out["ms"].append(ms)
                out["codes"].append(resp.status)
                out["stored"] += int(resp.getheader("X-Events-Stored") or 0)
        except (OSError, http.client.HTTPException):
            with lock:
                out["errors"] += 1
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.close()


class PublicServer:
    """`baonhung serve-public --workers 1` (the public app, viewer_api/app.py) in its own process group."""

    def __init__(self, data: Path, env_extra: dict):
        self.port = free_port()
        env = {**os.environ, "BAONHUNG_DATA_DIR": str(data), "BAONHUNG_READERS_DATABASE_URL": "none", **env_extra}
        self.proc = subprocess.Popen([str(REPO / ".venv" / "bin" / "baonhung"), "serve-public", "--host", "127.0.0.1",
                                      "--port", str(self.port), "--workers", "1"],
                                     env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        deadline = time.monotonic() + 120
        while True:
            assert self.proc.poll() is None, "serve-public exited"
            assert time.monotonic() < deadline, "serve-public did not start"
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                c.request("GET", "/v/")
                if c.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.3)

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of a process and its living children (gunicorn's master and workers)."""
    import psutil

    try:
        procs = [psutil.Process(pid)]
        procs += procs[0].children(recursive=True)
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def load_run(events_port: int, rec_port: int, page_id: int, overlays: list[int], photos, seconds: float,
             senders: int, readers: int, interval: float, pids: dict[str, int]) -> dict:
    """One run: ``senders`` event senders against ``events_port`` and ``readers`` recognize readers against
    ``rec_port`` (the same port: one process), for ``seconds``. ``pids``: processes whose CPU is reported (cores)."""
    out = {"ms": [], "codes": [], "stored": 0, "errors": 0}
    rec = {"ms": [], "codes": [], "conn_errors": 0}
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds
    threads = [threading.Thread(target=reader, args=(rec_port, photos, stop_at, f"10.9.0.{i}", rec, lock))
               for i in range(readers)]
    threads += [threading.Thread(target=sender, args=(events_port, page_id, overlays, stop_at, out, lock, i,
                                                       interval)) for i in range(senders)]
    cpu0 = {name: cpu_s(pid) for name, pid in pids.items()}
    own0 = sum(os.times()[:2])
    load0 = os.getloadavg()[0]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    cores = {name: (cpu_s(pid) - cpu0[name]) / elapsed for name, pid in pids.items()}
    cores["load generator (this bench)"] = (sum(os.times()[:2]) - own0) / elapsed
    ms = sorted(out["ms"])
    return {"events_s": out["stored"] / elapsed, "posts": len(ms),
            "p50": ms[len(ms) // 2] if ms else float("nan"),
            "p95": ms[int(len(ms) * 0.95)] if ms else float("nan"),
            "non204": sum(c != 204 for c in out["codes"]), "errors": out["errors"],
            "non204_codes": sorted({c for c in out["codes"] if c != 204}),
            "recognize_req_s": len(rec["codes"]) / elapsed,
            "recognize_p95": sorted(rec["ms"])[int(len(rec["ms"]) * 0.95)] if rec["ms"] else float("nan"),
            "cores": cores, "load1": (load0, os.getloadavg()[0])}


def demo_data() -> Path:
    from builder.db import upgrade

    tmp = Path(tempfile.mkdtemp(prefix="bench-analytics-"))
    data = tmp / "data"
    upgrade(f"sqlite:///{data / 'baonhung.sqlite3'}")
    subprocess.run([str(REPO / ".venv" / "bin" / "baonhung"), "demo", "--password", "bench-analytics-password"],
                   env={**os.environ, "BAONHUNG_DATA_DIR": str(data)}, check=True, capture_output=True)
    return data


def demo_page(port: int) -> tuple[int, list[int]]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/pub/editions/1/manifest.json")
    edition = json.loads(c.getresponse().read())
    page_url = edition["pages"][0]["manifest_url"]
    c.request("GET", page_url)
    page = json.loads(c.getresponse().read())
    return int(page_url.split("/")[-2]), [int(o["id"]) for o in page.get("overlays", [])]


EVENTS_ENV = {"BAONHUNG_TRUSTED_PROXIES": "1", "BAONHUNG_EVENTS_RATE": "1000000",
              "BAONHUNG_EVENTS_SESSION_RATE": "1000000"}


def warm(events_port: int, rec_port: int, page_id: int, overlays: list[int], photos) -> None:
    """A few untimed requests of each kind first (a fresh process's first recognitions and commits are slower)."""
    out = {"ms": [], "codes": [], "stored": 0, "errors": 0}
    rec = {"ms": [], "codes": [], "conn_errors": 0}
    lock = threading.Lock()
    stop_at = time.monotonic() + 3
    threads = [threading.Thread(target=reader, args=(rec_port, photos, stop_at, "10.8.0.1", rec, lock)),
               threading.Thread(target=sender, args=(events_port, page_id, overlays, stop_at, out, lock, 99, 0.05))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def ingestion(seconds: float, senders: int, readers: int, paced_events_s: float, ack: str) -> dict:
    data = demo_data()
    photos = frames()
    port = free_port()
    server = Server(data, port, {**EVENTS_ENV, "BAONHUNG_EVENTS_ACK": ack})
    try:
        page_id, overlays = demo_page(port)
        runs = {}
        # closed loop first (the server's saturation), then paced at the target rate, each beside recognize traffic
        for name, interval in (("closed", 0.0), ("paced", senders * BATCH / paced_events_s)):
            runs[name] = load_run(port, port, page_id, overlays, photos, seconds, senders, readers, interval,
                                  {"serve (events + recognize)": server.proc.pid})
    finally:
        server.stop()
    return runs


def separate(seconds: float, senders: int, readers: int, paced_events_s: float, ack: str, compare: bool) -> dict:
    """The paced event post against a serve-public process of its own while the recognize readers load another
    serve-public process (docs/DEPLOY.md: two processes on two ports, what nginx would route by path); then, if
    ``compare``, the same load against one serve-public process serving both."""
    data = demo_data()
    photos = frames()
    env = {**EVENTS_ENV, "BAONHUNG_EVENTS_ACK": ack}
    interval = senders * BATCH / paced_events_s
    runs = {}
    events_srv = rec_srv = None
    try:
        events_srv = PublicServer(data, env)
        rec_srv = PublicServer(data, env)
        page_id, overlays = demo_page(events_srv.port)
        warm(events_srv.port, rec_srv.port, page_id, overlays, photos)
        runs["separate"] = load_run(events_srv.port, rec_srv.port, page_id, overlays, photos, seconds, senders,
                                    readers, interval, {"events process (serve-public)": events_srv.proc.pid,
                                                        "recognize process (serve-public)": rec_srv.proc.pid})
        # without the recognize readers: what the events process and the senders alone give on this machine
        runs["alone"] = load_run(events_srv.port, rec_srv.port, page_id, overlays, photos, min(seconds, 10.0),
                                 senders, 0, interval, {"events process (serve-public)": events_srv.proc.pid})
    finally:
        for s in (events_srv, rec_srv):
            if s:
                s.stop()
    if compare:
        one = PublicServer(data, env)
        try:
            warm(one.port, one.port, page_id, overlays, photos)
            runs["same"] = load_run(one.port, one.port, page_id, overlays, photos, seconds, senders, readers,
                                    interval, {"one serve-public (events + recognize)": one.proc.pid})
        finally:
            one.stop()
    return runs


def _separate_main(args) -> int:
    runs = separate(args.seconds, args.senders, args.readers, args.paced, args.ack_one, not args.no_compare)
    titles = {"separate": "events and recognize in two serve-public processes",
              "alone": "events process alone (no recognize readers)",
              "same": "events and recognize in one serve-public process"}
    print(f"{'measure':58s} {'value':>16s}  target")
    for name, r in runs.items():
        rows = [(f"[{titles[name]}]", "", ""),
                ("  stored events/s (paced)", f"{r['events_s']:.0f}", ""),
                ("  post latency p50 / p95 (ms)", f"{r['p50']:.1f} / {r['p95']:.1f}", "p95 <= 20"),
                ("  posts (non-204 [codes], connection errors)",
                 f"{r['posts']} ({r['non204']} {r['non204_codes'] or ''}, {r['errors']})".replace(" , ", ", "), ""),
                ("  recognize: req/s, p95 ms", f"{r['recognize_req_s']:.1f}, {r['recognize_p95']:.0f}", ""),
                ("  load average (1 min) before / after", f"{r['load1'][0]:.1f} / {r['load1'][1]:.1f}", "")]
        rows += [(f"  cores used: {who}", f"{c:.2f}", "") for who, c in r["cores"].items()]
        rows.append(("  cores used in all (of 2)", f"{sum(r['cores'].values()):.2f}", ""))
        for n, v, t in rows:
            print(f"{n:58s} {v:>16s}  {t}")
    sep = runs["separate"]
    line = (f"RESULT paced_p95_ms_separate={sep['p95']:.1f} paced_p50_ms_separate={sep['p50']:.1f} "
            f"paced_events_s_separate={sep['events_s']:.0f} recognize_req_s_separate={sep['recognize_req_s']:.1f} "
            f"paced_p95_ms_events_alone={runs['alone']['p95']:.1f}")
    if "same" in runs:
        line += (f" paced_p95_ms_same={runs['same']['p95']:.1f} paced_events_s_same={runs['same']['events_s']:.0f} "
                 f"recognize_req_s_same={runs['same']['recognize_req_s']:.1f}")
    print(line + f" ack={args.ack_one} seconds={args.seconds:g}")
    return 0


COMMON_CTX = np.array([c | e << 10 for c in (1 | 1 << 2 | 1 << 6, 1 | 1 << 2 | 4 << 6, 1 | 2 << 2 | 2 << 6,
                                               1 | 1 << 2 | 8 << 6, 2 | 3 << 2 | 2 << 6, 3 | 4 << 2 | 7 << 6)
                       for e in (1, 2)])


def generate(engine, n: int, days: int, today: int, seed: int = 26) -> dict:
    """n raw events over ``days`` days ending ``today`` (a Vietnamese day number)."""
    from viewer_api import eventstore as es

    rng = np.random.default_rng(seed)
    editions = {e: 1 for e in range(1, days // 2 + 2)}
    chunk = 200_000
    raw = engine.raw_connection()
    cur = raw.cursor()
    T = es.EVENT_TYPES
    types = np.array([T["opened"], T["camera_started"], T["recognized"], T["dwell"], T["overlay_shown"],
                      T["overlay_activated"], T["media_progress"], T["aim"], T["aim"], T["aim"], T["link_opened"]])
    done = 0
    while done < n:
        m = min(chunk, n - done)
        day = today - rng.integers(0, days, m)
        t = (day * es.DAY_MS - es.VN_OFFSET_MS + rng.integers(6 * 3600_000, 23 * 3600_000, m)).astype(np.int64)
        edition = np.clip(day // 2 - (today - days) // 2 - rng.integers(0, 7, m), 1, max(editions))
        page = edition * 100 + rng.integers(1, 9, m)
        typ = types[rng.integers(0, len(types), m)]
        has_overlay = np.isin(typ, [T["overlay_shown"], T["overlay_activated"], T["media_progress"], T["link_opened"]])
        overlay = page * 10 + rng.integers(1, 4, m)
        session = rng.integers(-2**31, 2**31, m) % 40_000 + day * 40_000
        visitor = session // 3
        ctx = COMMON_CTX[rng.integers(0, len(COMMON_CTX), m)]  # a dozen device/entry mixes, as real readers have
        k = np.where(typ == T["media_progress"], 25 * rng.integers(1, 5, m), np.where(typ == T["recognized"], 3, -1))
        nval = np.where(np.isin(typ, [T["recognized"], T["dwell"]]), rng.integers(100, 20000, m), -1)
        x = rng.integers(0, 297, m)
        y = rng.integers(0, 420, m)
        is_aim = typ == T["aim"]
        rows = [(int(t[i]), int(typ[i]), int(edition[i]), int(page[i]) if typ[i] not in (1, 2) else None,
                 int(overlay[i]) if has_overlay[i] else None, int(visitor[i] % 2**31), int(session[i] % 2**31),
                 int(ctx[i]), int(k[i]) if k[i] >= 0 else None, int(nval[i]) if nval[i] >= 0 else None,
                 int(x[i]) if is_aim[i] else None, int(y[i]) if is_aim[i] else None) for i in range(m)]
        cur.executemany("INSERT INTO events (t, type, edition_id, page_id, overlay_id, visitor, session, ctx, k, n, "
                        "x_mm, y_mm) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        raw.commit()
        done += m
    cur.close()
    raw.close()
    return editions


def dashboard(n: int, days: int) -> dict:
    from builder import analytics as an
    from viewer_api import eventstore as es

    tmp = Path(tempfile.mkdtemp(prefix="bench-analytics-store-"))
    path = tmp / "events.sqlite3"
    engine = es.make_events_engine(f"sqlite:///{path}")
    es.create_schema(engine)
    today = es.vn_day(int(time.time() * 1000))
    t0 = time.monotonic()
    editions = generate(engine, n, days, today)
    gen_s = time.monotonic() - t0
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    bytes_per_event = path.stat().st_size / n
    reader = an.EventsReader(engine, editions)
    t0 = time.monotonic()
    result = an.rollup(reader, es.date_of_day(today), retention_days=days + 30)
    rollup_s = time.monotonic() - t0
    last = es.date_of_day(today)
    first = last - dt.timedelta(days=29)
    # The busiest edition of the range among those read today: rolled-up days and today's raw events. (Until
    # 0fbe0e4 this was max(editions), which the generator gives no events: the figure timed an empty edition.)
    with engine.connect() as conn:
        edition = conn.exec_driver_sql(
            "SELECT edition_id FROM events WHERE t >= ? AND edition_id IN "
            "(SELECT DISTINCT edition_id FROM events WHERE t >= ?) GROUP BY edition_id ORDER BY COUNT(*) DESC LIMIT 1",
            (es.day_start_ms(es.day_of_date(first)), es.day_start_ms(today))).scalar()
    timings = []
    for _ in range(5):
        t0 = time.monotonic()
        # what the dashboard's page and the JSON API run for one request (report + its pages + its days; the
        # raw part read once for the report and the days), with a reader of its own as a request has
        an.dashboard(an.EventsReader(engine, editions), an.Scope(1, edition), first, last)
        timings.append((time.monotonic() - t0) * 1000)
    old = max(1, edition - 20)  # an edition whose days are all rolled up
    t0 = time.monotonic()
    an.report(reader, an.Scope(1, old), first - dt.timedelta(days=60), last)
    old_ms = (time.monotonic() - t0) * 1000
    t0 = time.monotonic()
    an.report(reader, an.Scope(), first, last)
    site_ms = (time.monotonic() - t0) * 1000
    engine.dispose()
    for p in tmp.iterdir():
        p.unlink()
    tmp.rmdir()
    return {"gen_s": gen_s, "bytes_per_event": bytes_per_event, "rollup_s": rollup_s, "rollup_rows": result.rows_written,
            "dashboard_ms": statistics.median(timings), "dashboard_max_ms": max(timings), "old_edition_ms": old_ms,
            "site_ms": site_ms}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=10_000_000, help="raw events stored for the dashboard (1e3-5e7)")
    ap.add_argument("--days", type=int, default=120, help="days they span (10-365)")
    ap.add_argument("--seconds", type=float, default=20.0, help="length of the ingestion run (1-300)")
    ap.add_argument("--senders", type=int, default=8, help="threads posting event batches (1-64)")
    ap.add_argument("--readers", type=int, default=4, help="readers sending camera frames beside them (0-64)")
    ap.add_argument("--paced", type=float, default=5000.0,
                    help="events per second offered in the paced run (100-100000): the latency target's rate")
    ap.add_argument("--ack", choices=("both", "committed", "queued"), default="both",
                    help="ack modes of the ingestion runs (a reduced run: one)")
    ap.add_argument("--part", choices=("all", "ingest", "dashboard", "separate"), default="all",
                    help="what to run (a reduced run: ingestion or the dashboard only; separate: the paced post "
                         "against a serve-public process of its own, recognize against another)")
    ap.add_argument("--no-compare", action="store_true",
                    help="--part separate: skip the same-process run (one serve-public serving both)")
    args = ap.parse_args()
    if not (1_000 <= args.events <= 50_000_000 and 10 <= args.days <= 365 and 1 <= args.seconds <= 300
            and 1 <= args.senders <= 64 and 0 <= args.readers <= 64 and 100 <= args.paced <= 100_000):
        ap.error("a value is out of its range (see --help)")
    if args.part == "separate":
        args.ack_one = "committed" if args.ack == "both" else args.ack
        print(f"bench-analytics --part separate — paced at {args.paced:,.0f} events/s ({args.senders} senders of "
              f"{BATCH}-event batches, ack {args.ack_one}) against a serve-public --workers 1 of its own, "
              f"{args.readers} recognize readers against another, {args.seconds:g} s; then the events process "
              f"alone{'' if args.no_compare else ', then one serve-public serving both'}; {os.cpu_count()} cores",
              flush=True)
        return _separate_main(args)
    print(f"bench-analytics — for each ack mode, ingestion {args.seconds:g} s closed loop then {args.seconds:g} s "
          f"paced at "
          f"{args.paced:,.0f} events/s ({args.senders} senders of {BATCH}-event batches, {args.readers} recognize "
          f"readers beside them); dashboard at {args.events:,} events over {args.days} days", flush=True)
    # the default (204 after the group commit) and BAONHUNG_EVENTS_ACK=queued (204 once queued; docs/analytics.md)
    acks = ("committed", "queued") if args.ack == "both" else (args.ack,)
    by_ack = ({ack: ingestion(args.seconds, args.senders, args.readers, args.paced, ack) for ack in acks}
              if args.part != "dashboard" else {})
    dash = dashboard(args.events, args.days) if args.part != "ingest" else None
    print(f"{'measure':54s} {'value':>14s}  target")
    rows = []
    for ack, runs in by_ack.items():
        ing, paced = runs["closed"], runs["paced"]
        rows += [(f"[ack {ack}] events ingested per second (closed loop)", f"{ing['events_s']:.0f}", ">= 5000"),
                 ("  post latency p50 / p95 (ms)", f"{ing['p50']:.1f} / {ing['p95']:.1f}", ""),
                 ("  posts (non-204, connection errors)", f"{ing['posts']} ({ing['non204']}, {ing['errors']})", ""),
                 ("  recognize beside it: req/s, p95 ms", f"{ing['recognize_req_s']:.1f}, {ing['recognize_p95']:.0f}",
                  ""),
                 (f"[ack {ack}] paced at {args.paced:,.0f} events/s: stored/s", f"{paced['events_s']:.0f}", ""),
                 ("  post latency p50 / p95 (ms)", f"{paced['p50']:.1f} / {paced['p95']:.1f}", "p95 <= 20"),
                 ("  posts (non-204, connection errors)", f"{paced['posts']} ({paced['non204']}, {paced['errors']})",
                  ""),
                 ("  recognize beside it: req/s, p95 ms",
                  f"{paced['recognize_req_s']:.1f}, {paced['recognize_p95']:.0f}", "")]
    if args.part != "all" or args.ack != "both":  # a reduced run: its table, no RESULT line
        if dash:
            rows += _dashboard_rows(dash, args.events)
        for name, value, target in rows:
            print(f"{name:54s} {value:>14s}  {target}")
        return 0
    ing, paced = by_ack["committed"]["closed"], by_ack["committed"]["paced"]
    qing, qpaced = by_ack["queued"]["closed"], by_ack["queued"]["paced"]
    rows += _dashboard_rows(dash, args.events)
    for name, value, target in rows:
        print(f"{name:54s} {value:>14s}  {target}")
    print(f"RESULT events_s={ing['events_s']:.0f} post_p95_ms={ing['p95']:.1f} post_p50_ms={ing['p50']:.1f} "
          f"paced_events_s={paced['events_s']:.0f} paced_p95_ms={paced['p95']:.1f} "
          f"queued_events_s={qing['events_s']:.0f} queued_post_p95_ms={qing['p95']:.1f} "
          f"queued_paced_events_s={qpaced['events_s']:.0f} queued_paced_p95_ms={qpaced['p95']:.1f} "
          f"bytes_per_event={dash['bytes_per_event']:.1f} dashboard_ms={dash['dashboard_ms']:.0f} "
          f"site_report_ms={dash['site_ms']:.0f} rollup_s={dash['rollup_s']:.1f} events={args.events}")
    return 0


def _dashboard_rows(dash: dict, events: int) -> list[tuple[str, str, str]]:
    return [("bytes per raw event (SQLite file / rows)", f"{dash['bytes_per_event']:.1f}", "<= 100"),
            (f"generating {events:,} events (s)", f"{dash['gen_s']:.1f}", ""),
            ("rollup of every completed day (s, rows)", f"{dash['rollup_s']:.1f}, {dash['rollup_rows']}", ""),
            ("dashboard, busiest edition, 30 days (ms median/max)",
             f"{dash['dashboard_ms']:.0f} / {dash['dashboard_max_ms']:.0f}", "<= 300"),
            ("report, older edition, 90 days (ms)", f"{dash['old_edition_ms']:.0f}", ""),
            ("report, whole site, 30 days (ms)", f"{dash['site_ms']:.0f}", "")]


if __name__ == "__main__":
    raise SystemExit(main())
