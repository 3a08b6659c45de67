"""`baonhung serve --https`: a real server (gunicorn) with a self-signed certificate it makes itself, printing the
URL and a terminal QR code of the viewer address that a phone can scan."""
import socket
import ssl
import subprocess
import sys
import time
import urllib.request

import numpy as np

from tests.conftest import REPO, database_env


READY_S = 60  # a server's start on 2 shared cores: imports, migrations, the app
READY_POLL_S = 0.05  # how often a test asks whether it answers yet


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ascii_qr_to_image(lines: list[str]) -> np.ndarray:
    """Half-block terminal art (two module rows per text row) back to a grey image, 8 px per module."""
    upper = {"█": (1, 1), "▀": (1, 0), "▄": (0, 1), " ": (0, 0), "\xa0": (0, 0)}
    rows = []
    for line in lines:
        top, bottom = zip(*(upper[ch] for ch in line))
        rows += [top, bottom]
    dark = np.array(rows, np.uint8)
    img = np.where(dark, 255, 0).astype(np.uint8)  # printed inverted: a "full" cell is light
    img = np.kron(img, np.ones((8, 8), np.uint8))
    return np.pad(img, 32, constant_values=255)


def test_serve_https_answers_over_tls_and_prints_a_scannable_qr(tmp_path):
    import zxingcpp

    port = _free_port()
    env = {"PATH": "/usr/bin:/bin", "BAONHUNG_DATA_DIR": str(tmp_path / "data"), **database_env(tmp_path / "data")}
    proc = subprocess.Popen([sys.executable, "-m", "builder.cli", "serve", "--port", str(port), "--https"],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # self-signed, as the reader's phone will be told once
        status = None
        deadline = time.monotonic() + READY_S
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"https://127.0.0.1:{port}/v/", context=context, timeout=2) as resp:
                    status = resp.status
                    cert = resp.fp.raw._sock.getpeercert(binary_form=True)
                break
            except OSError:
                time.sleep(READY_POLL_S)
        assert status == 200 and cert
        assert (tmp_path / "data" / "tls" / "cert.pem").exists()
        assert oct((tmp_path / "data" / "tls" / "key.pem").stat().st_mode & 0o777) == "0o600"
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    lines = out.splitlines()
    assert lines[0].startswith("Báo Nhúng serving on https://") and f":{port}" in lines[0]
    art = [ln for ln in lines[1:] if ln and set(ln) <= set("█▀▄ \xa0")]
    texts = [r.text for r in zxingcpp.read_barcodes(_ascii_qr_to_image(art))]
    assert texts and texts[0].startswith("https://") and texts[0].endswith(f":{port}/v/")


def _raw_request(port: int, request_line: str, extra_headers: str = "") -> tuple[int, dict, bytes]:
    """One HTTP/1.1 request on a raw socket (urllib refuses what these tests send); status, headers, body."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"{request_line}\r\nHost: 127.0.0.1\r\n{extra_headers}Connection: close\r\n\r\n".encode("latin-1"))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (ln.split(":", 1) for ln in header_lines)}
    return int(status_line.split()[1]), headers, body


def test_serve_answers_its_own_refusals_in_the_json_error_shape(tmp_path):
    """gunicorn refuses a request line past 8,190 bytes and oversized headers before the app sees them; the served
    worker answers those in the product's one error shape too, not gunicorn's HTML page (issue 25)."""
    import json

    port = _free_port()
    env = {"PATH": "/usr/bin:/bin", "BAONHUNG_DATA_DIR": str(tmp_path / "data"), **database_env(tmp_path / "data")}
    proc = subprocess.Popen([sys.executable, "-m", "builder.cli", "serve", "--port", str(port)],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + READY_S
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v/", timeout=2):
                    break
            except OSError:
                time.sleep(READY_POLL_S)
        cases = [(f"GET /api/v1/publications?q={'a' * 5000} HTTP/1.1", "", 414),   # the app's own limit (4096)
                 (f"GET /api/v1/publications?q={'a' * 9000} HTTP/1.1", "", 414),   # gunicorn's (8190)
                 ("GET /v/ HTTP/1.1", f"X-Big: {'b' * 9000}\r\n", 431),           # one header past 8190 bytes
                 ("GET /v/ HTTP/1.1", "".join(f"X-H{i}: 1\r\n" for i in range(120)), 431)]  # past 100 headers
        for line, headers, expected in cases:
            status, head, body = _raw_request(port, line, headers)
            assert status == expected, (line[:40], status, body[:200])
            assert head["content-type"].startswith("application/json"), head
            payload = json.loads(body)
            assert set(payload) == {"error", "message"} and payload["message"], payload
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
