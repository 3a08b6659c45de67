"""The ``baonhung`` command: serve, serve-public, create-user, demo, db upgrade|downgrade.

Examples::

    baonhung db upgrade
    baonhung create-user --email admin@toasoan.vn --role admin --token
    baonhung demo
    baonhung serve --host 0.0.0.0 --port 8000 [--https] [--no-worker]
    baonhung worker                                 # publish jobs (serve also runs them, unless --no-worker)
    baonhung backup baonhung-2026-12-07.tar.gz      # while the server runs
    baonhung restore baonhung-2026-12-07.tar.gz     # into an empty data dir/database, server stopped
    baonhung analytics rollup                       # raw readership events -> daily aggregates (also hourly in serve)
    baonhung analytics ingest-role --apply          # PostgreSQL: the public side's INSERT-only role
"""
from __future__ import annotations

import argparse
import socket
import sys

from .config import ConfigError, Settings, install_node_tools, read_secret


def _settings() -> Settings:
    """The settings from the environment (a malformed variable: its message and exit status 2), with the process's
    node programs installed from them (commands that build bundles without an app)."""
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    install_node_tools(settings.node_tools)
    return settings


def cmd_db(args) -> int:
    from .db import downgrade, upgrade

    s = _settings()
    if args.action == "upgrade":
        upgrade(s.database_url, args.revision or "head")
    else:
        downgrade(s.database_url, args.revision or "-1")
    print(f"database {args.action}d: {s.database_url}")
    return 0


def _session(s: Settings):
    from .db import make_engine, make_sessionmaker, upgrade

    upgrade(s.database_url)
    return make_sessionmaker(make_engine(s.database_url))()


def cmd_create_user(args) -> int:
    from . import services as svc
    from .errors import AppError

    s = _settings()
    db = _session(s)
    try:
        user, generated = svc.create_user(db, svc.SYSTEM, args.email, args.role, args.password, args.name or "")
        print(f"created {user.role} {user.email}")
        if generated:
            print(f"password: {generated}")
        if args.token:
            _row, secret = svc.issue_token(db, svc.SYSTEM, user, "cli")
            print(f"token: {secret}")
    except AppError as exc:
        print(f"error: {exc.message('en')}", file=sys.stderr)
        return 1
    finally:
        db.close()
    return 0


def cmd_demo(args) -> int:
    from .demo import seed_demo

    s = _settings()
    db = _session(s)
    try:
        result = seed_demo(db, s, password=args.password)
    finally:
        db.close()
    for line in result.lines:
        print(line)
    return 0


def cmd_backup(args) -> int:
    from .backup import BackupError, backup

    s = _settings()
    try:
        info = backup(s, args.file)
    except BackupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"backup written to {args.file}: {info['database']} database (revision {info['revision']}), "
          f"{info['blobs']} blobs, {len(info['published'])} published files")
    return 0


def cmd_restore(args) -> int:
    from .backup import BackupError, restore

    s = _settings()
    try:
        info = restore(s, args.file, force=args.force)
    except BackupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"restored the backup of {info['created_at']} into {s.data_dir}: {info['blobs']} blobs")
    return 0


def cmd_analytics(args) -> int:
    """Readership analytics (issue 26): roll raw events up, or make the public side's INSERT-only role."""
    from viewer_api import eventstore as es

    s = _settings()
    if args.action == "rollup":
        import datetime as dt

        from .analytics import AnalyticsError, rollup_configured

        today = None
        if args.today:
            try:
                today = dt.date.fromisoformat(args.today)
            except ValueError:
                print(f"error: --today {args.today!r} is not a date YYYY-MM-DD", file=sys.stderr)
                return 2
        db = _session(s)
        try:
            result = rollup_configured(s, db, today)
        except AnalyticsError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        finally:
            db.close()
        print(f"rolled up {result.days_rolled} day(s) into {result.rows_written} aggregate rows; "
              f"deleted {result.raw_deleted} raw events older than {s.events_retention_days} days")
        return 0
    password = read_secret(args.password_env) if args.password_env else ""
    try:
        statements = es.ingest_role_sql(args.role, password)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    url = s.events_url or es.default_events_url(s.data_dir)
    if not args.apply:
        for stmt in statements:
            print(stmt + ";")
        return 0
    if not url.startswith("postgresql"):
        print("error: --apply needs BAONHUNG_EVENTS_URL to name a PostgreSQL events store (SQLite has no roles)",
              file=sys.stderr)
        return 2
    from sqlalchemy import text

    engine = es.make_events_engine(url)
    es.create_schema(engine)
    with engine.begin() as conn:
        for stmt in statements:
            conn.execute(text(stmt))
    engine.dispose()
    print(f"role {args.role} can now INSERT into events and nothing else; give the public side "
          f"BAONHUNG_EVENTS_INGEST_URL=postgresql+psycopg://{args.role}:...@host/db")
    return 0


def lan_address() -> str:
    """The address other devices on the LAN reach this machine at (no packet is sent: UDP connect only)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("192.0.2.1", 9))  # TEST-NET-1: never routed, only used to pick the outgoing interface
            return sock.getsockname()[0]
        except OSError:
            return "127.0.0.1"


SERVE_THREADS = 8  # one process, threads: OpenCV and FAISS release the GIL, and the index is loaded once


def _port_free(host: str, port: int) -> bool:
    """Can a server listen on host:port? (gunicorn would otherwise print its address, then fail after 5 s.)"""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def cmd_serve(args) -> int:
    """Serve with gunicorn (a production WSGI server; threads in one process so the recognition index is shared)."""
    from gunicorn.app.base import BaseApplication

    from .app import create_app, start_sweeper
    from .db import upgrade

    s = _settings()
    if not _port_free(args.host, args.port):
        print(f"error: port {args.port} on {args.host} is already in use (another server?). Choose another one: "
              f"baonhung serve --port {args.port + 1}, or make run PORT={args.port + 1}", file=sys.stderr)
        return 2
    upgrade(s.database_url)
    options = {"bind": f"[{args.host}]:{args.port}" if ":" in args.host else f"{args.host}:{args.port}",
               "workers": 1, "threads": args.threads, "worker_class": "builder.serve_worker.JsonErrorWorker", "timeout": 120,
               "accesslog": "-", "errorlog": "-", "loglevel": "info",
               # gunicorn's largest request line; the app answers longer-than-MAX_URL_CHARS URLs with its JSON 414,
               # gunicorn the longer ones in the same shape (builder/serve_worker.py)
               "limit_request_line": 8190}
    scheme = "http"
    if args.https:
        from .tls import ensure_self_signed

        cert, key = ensure_self_signed(s.data_dir / "tls", extra_hosts=[lan_address()])
        options.update(certfile=str(cert), keyfile=str(key))
        scheme = "https"
    host_shown = args.host if args.host not in ("0.0.0.0", "::") else lan_address()
    url = f"{scheme}://{host_shown}:{args.port}"
    print(f"Báo Nhúng serving on {url}  (viewer: {url}/v/)", flush=True)
    if args.https:
        import qrcode

        qr = qrcode.QRCode(border=1)
        qr.add_data(f"{url}/v/")
        qr.print_ascii(invert=True)
        print("Phones on the same network: scan this and accept the self-signed certificate once "
              "(run with --host 0.0.0.0 to be reachable from the LAN).", flush=True)

    class _Server(BaseApplication):
        def load_config(self):
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self):
            # In the worker, after gunicorn forked it: the app's start-up work (an index upgrade trains pages and
            # searches FAISS) must not leave thread pools in a master that forks.
            # sweeps what an interrupted run left, then every hour:
            app = create_app({"SETTINGS": s, **({"SESSION_COOKIE_SECURE": True} if args.https else {})})
            start_sweeper(app)
            from .analytics import start_rollup_schedule  # readership rollups, now and every hour (issue 26)

            start_rollup_schedule(s, app.extensions["baonhung"].sessionmaker, app.logger)
            if not args.no_worker:  # publish jobs in this process too: the one-machine default (issue 28)
                from .jobs import start_consumer_thread

                start_consumer_thread(app.extensions["baonhung"].jobs, app.logger)
            return app

    _Server().run()
    return 0


def cmd_worker(args) -> int:
    """Run publish / unpublish jobs from the queue (BAONHUNG_QUEUE_URL; default SQLite under the data directory)
    until stopped: SIGINT finishes the running job first, SIGTERM stops at once (the job is run again by the next
    worker's start, or marked failed after its second interruption)."""
    import logging

    from .app import create_app
    from .db import upgrade
    from .jobs import run_consumer

    s = _settings()
    upgrade(s.database_url)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app({"SETTINGS": s, "JOBS_IMMEDIATE": False})  # sweeps what an interrupted publish left
    print(f"Báo Nhúng worker: jobs from {s.queue_url or s.data_dir / 'queue' / 'huey.db'}", flush=True)
    run_consumer(app.extensions["baonhung"].jobs, workers=args.threads, logger=app.logger)
    return 0


PUBLIC_WORKERS = 1  # one process per core is the usual count; each shares the index loaded before the fork


def cmd_serve_public(args) -> int:
    """Serve the public side alone (viewer_api.app.create_public_app) with gunicorn: published content, recognition,
    readership events, reader accounts. No newsroom database, no migration, nothing written at start-up; the catalog
    and index are loaded before gunicorn forks its workers (``preload_app``), so the workers share them."""
    from gunicorn.app.base import BaseApplication

    from viewer_api.app import create_public_app, warm_up

    s = _settings()
    if not _port_free(args.host, args.port):
        print(f"error: port {args.port} on {args.host} is already in use (another server?). Choose another one: "
              f"baonhung serve-public --port {args.port + 1}", file=sys.stderr)
        return 2
    options = {"bind": f"[{args.host}]:{args.port}" if ":" in args.host else f"{args.host}:{args.port}",
               "workers": args.workers, "threads": args.threads, "preload_app": True,
               "worker_class": "builder.serve_worker.JsonErrorWorker", "timeout": 120,
               "accesslog": "-", "errorlog": "-", "loglevel": "info", "limit_request_line": 8190}
    print(f"Báo Nhúng public side serving on http://{args.host}:{args.port}  (viewer: /v/; "
          f"{args.workers} worker(s) x {args.threads} threads)", flush=True)

    class _Server(BaseApplication):
        def load_config(self):
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self):
            # in the master (preload_app): reads only — the catalog and the recognition index, then the fork
            app = create_public_app(s)
            warm_up(app)
            return app

    _Server().run()
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="baonhung", description="Báo Nhúng — AR for printed newspapers")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="serve the authoring UI, the API and the public viewer")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000, choices=range(1, 65536), metavar="1-65535")
    p.add_argument("--https", action="store_true", help="self-signed HTTPS so phones on the LAN allow the camera")
    p.add_argument("--threads", type=int, default=SERVE_THREADS)
    p.add_argument("--no-worker", action="store_true",
                   help="do not run publish jobs in this process (a separate `baonhung worker` runs them)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("worker", help="run publish / unpublish jobs from the queue (BAONHUNG_QUEUE_URL)")
    p.add_argument("--threads", type=int, default=1, choices=range(1, 17), metavar="1-16",
                   help="jobs at once (publishes of one data directory take turns on its publish lock)")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("serve-public", help="serve the public side alone (viewer, published content, recognition, "
                                            "reader accounts): any number of copies, no newsroom database")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8001, choices=range(1, 65536), metavar="1-65535")
    p.add_argument("--workers", type=int, default=PUBLIC_WORKERS, choices=range(1, 65), metavar="1-64")
    p.add_argument("--threads", type=int, default=SERVE_THREADS, choices=range(1, 257), metavar="1-256")
    p.set_defaults(func=cmd_serve_public)

    p = sub.add_parser("create-user", help="create an account (the first admin comes from here)")
    p.add_argument("--email", required=True)
    p.add_argument("--role", required=True, choices=["admin", "editor", "designer", "print_desk"])
    p.add_argument("--password", help="omit to generate one (printed once)")
    p.add_argument("--name")
    p.add_argument("--token", action="store_true", help="also create an API token and print it (shown once)")
    p.set_defaults(func=cmd_create_user)

    p = sub.add_parser("demo", help="seed demo accounts and a published demo page")
    p.add_argument("--password", help="password of the demo accounts (default: generated and printed)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("backup", help="write the database, asset store and published state to one archive")
    p.add_argument("file")
    p.set_defaults(func=cmd_backup)

    p = sub.add_parser("restore", help="restore an archive written by backup (server stopped)")
    p.add_argument("file")
    p.add_argument("--force", action="store_true", help="replace a data directory / database that has content")
    p.set_defaults(func=cmd_restore)

    p = sub.add_parser("analytics", help="readership analytics: rollup, or the public side's PostgreSQL role")
    p.add_argument("action", choices=["rollup", "ingest-role"])
    p.add_argument("--today", help="rollup: the day to count as today, YYYY-MM-DD (default: today in Vietnam)")
    p.add_argument("--role", default="baonhung_ingest", help="ingest-role: the role's name")
    p.add_argument("--password-env", help="ingest-role: the environment variable holding the role's password")
    p.add_argument("--apply", action="store_true", help="ingest-role: run the SQL on BAONHUNG_EVENTS_URL "
                                                         "(default: print it)")
    p.set_defaults(func=cmd_analytics)

    p = sub.add_parser("db", help="database migrations")
    p.add_argument("action", choices=["upgrade", "downgrade"])
    p.add_argument("revision", nargs="?")
    p.set_defaults(func=cmd_db)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
