"""nginx in front of public processes (issue 28): the configuration from deploy/nginx-baonhung.conf.template, and
an nginx started from it in a directory of its own (the bench and tests/web/test_nginx.py). Debian's nginx; runs as
the current user; listens only where told (loopback)."""
from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parent / "nginx-baonhung.conf.template"
ACCEL_PREFIX = "/_store/"  # the internal location of the template: BAONHUNG_ACCEL_REDIRECT of the public processes


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).is_file()), None)


# Readership events (POST /api/v1/events, thousands a second, each a few ms) in serve-public processes of their own,
# so that the interpreter lock of a process busy recognizing does not delay them (docs/analytics.md, bench-analytics
# --part separate): their upstream, and the exact-match location that sends the events there.
EVENTS_UPSTREAM = """
    upstream baonhung_events {
        least_conn;
@@SERVERS@@
        keepalive 16;
    }
"""
EVENTS_LOCATION = """
        location = /api/v1/events {
            proxy_pass http://baonhung_events;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_read_timeout 10s;  # a batch is answered in milliseconds (503 with Retry-After when its queue is full)
        }
"""


def _servers(upstreams: list[str]) -> str:
    return "\n".join(f"        server {u};" for u in upstreams)


def render(prefix: Path, listen: str, upstreams: list[str], store: Path, events: list[str] | None = None) -> str:
    """The configuration: nginx on ``listen`` in front of ``upstreams`` (host:port each), artifacts from ``store``;
    with ``events`` (host:port each), POST /api/v1/events goes to those processes instead."""
    user = f"user {getpass.getuser()};" if os.geteuid() == 0 else ""
    text = TEMPLATE.read_text()
    for name, value in (("USER", user), ("PREFIX", str(prefix)), ("LISTEN", listen),
                        ("UPSTREAMS", _servers(upstreams)),
                        ("EVENTS_UPSTREAM", EVENTS_UPSTREAM.replace("@@SERVERS@@", _servers(events)) if events else ""),
                        ("EVENTS_LOCATION", EVENTS_LOCATION if events else ""),
                        ("STORE", str(Path(store).resolve()))):
        text = text.replace(f"@@{name}@@", value)
    return text


class Nginx:
    """``nginx -p prefix -c prefix/nginx.conf`` in the foreground of its own process group; ``stop()`` ends it."""

    def __init__(self, prefix: Path, port: int, upstreams: list[str], store: Path, events: list[str] | None = None):
        binary = nginx_binary()
        if binary is None:
            raise RuntimeError("nginx is not installed (Debian: apt-get install nginx)")
        self.prefix, self.port = Path(prefix), port
        self.prefix.mkdir(parents=True, exist_ok=True)
        conf = self.prefix / "nginx.conf"
        conf.write_text(render(self.prefix, f"127.0.0.1:{port}", upstreams, store, events))
        cmd = [binary, "-p", str(self.prefix), "-e", str(self.prefix / "error.log"), "-c", str(conf),
               "-g", "daemon off;"]
        check = subprocess.run(cmd[:-2] + ["-t"], capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"nginx -t failed: {check.stderr.strip()}")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited: {self.proc.stderr.read().decode(errors='replace')}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("nginx did not listen within 10 s")

    def pids(self) -> list[int]:
        """nginx's master and worker."""
        out = subprocess.run(["ps", "-o", "pid=", "-g", str(self.proc.pid)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGQUIT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
