"""`baonhung serve --https`: a real server (gunicorn) with a self-signed certificate it makes itself, printing the
URL and a terminal QR code of the viewer address that a phone can scan."""
import socket
import ssl
import subprocess
import sys
import time
import urllib.request

import numpy as np

from tests.conftest import REPO


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
    env = {"PATH": "/usr/bin:/bin", "BAONHUNG_DATA_DIR": str(tmp_path / "data")}
    proc = subprocess.Popen([sys.executable, "-m", "builder.cli", "serve", "--port", str(port), "--https"],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # self-signed, as the reader's phone will be told once
        status = None
        for _ in range(60):
            try:
                with urllib.request.urlopen(f"https://127.0.0.1:{port}/v/", context=context, timeout=2) as resp:
                    status = resp.status
                    cert = resp.fp.raw._sock.getpeercert(binary_form=True)
                break
            except OSError:
                time.sleep(0.5)
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
