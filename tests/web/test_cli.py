"""The baonhung command: first admin with a token, configuration errors, migrations."""
import subprocess
import sys

import pytest

from tests.conftest import REPO, database_env


def run_cli(tmp_path, *args, env_extra=None):
    env = {"PATH": "/usr/bin:/bin", "BAONHUNG_DATA_DIR": str(tmp_path / "data"), **database_env(tmp_path / "data"),
           **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "builder.cli", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)


def test_create_user_prints_a_working_token(tmp_path):
    r = run_cli(tmp_path, "create-user", "--email", "Admin@ToaSoan.vn", "--role", "admin", "--token")
    assert r.returncode == 0, r.stderr
    token = next(line.split(": ", 1)[1] for line in r.stdout.splitlines() if line.startswith("token: "))
    password = next(line.split(": ", 1)[1] for line in r.stdout.splitlines() if line.startswith("password: "))
    assert token.startswith("bn_") and len(password) >= 10
    from tests.conftest import make_app

    app = make_app(tmp_path / "data")
    resp = app.test_client().get("/api/v1/publications", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200


def test_duplicate_user_is_a_clear_error(tmp_path):
    assert run_cli(tmp_path, "create-user", "--email", "a@b.vn", "--role", "editor").returncode == 0
    r = run_cli(tmp_path, "create-user", "--email", "a@b.vn", "--role", "editor")
    assert r.returncode == 1 and "already exists" in r.stderr


def test_production_without_secret_key_refuses_to_start(tmp_path):
    r = run_cli(tmp_path, "db", "upgrade", env_extra={"BAONHUNG_ENV": "production"})
    assert r.returncode == 2 and "BAONHUNG_SECRET_KEY" in r.stderr


@pytest.mark.parametrize("role", ["superuser", ""])
def test_unknown_role_is_refused(tmp_path, role):
    assert run_cli(tmp_path, "create-user", "--email", "x@y.vn", "--role", role).returncode == 2


def test_backup_and_restore_commands(tmp_path):
    assert run_cli(tmp_path, "create-user", "--email", "a@b.vn", "--role", "admin").returncode == 0
    archive = tmp_path / "b.tar.gz"
    r = run_cli(tmp_path, "backup", str(archive))
    assert r.returncode == 0 and "backup written" in r.stdout, r.stderr
    again = run_cli(tmp_path, "restore", str(archive))  # the same data dir: it has content
    assert again.returncode == 1 and "already holds content" in again.stderr
    other = tmp_path / "other"
    r = subprocess.run([sys.executable, "-m", "builder.cli", "restore", str(archive)], cwd=REPO, capture_output=True,
                       text=True, timeout=120, env={"PATH": "/usr/bin:/bin", "BAONHUNG_DATA_DIR": str(other), **database_env(other)})
    assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, "-m", "builder.cli", "create-user", "--email", "a@b.vn", "--role", "admin"],
                       cwd=REPO, capture_output=True, text=True, timeout=120,
                       env={"PATH": "/usr/bin:/bin", "BAONHUNG_DATA_DIR": str(other), **database_env(other)})
    assert r.returncode == 1 and "already exists" in r.stderr  # the account came back with the restore


def test_serve_on_a_busy_port_says_so_at_once(tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = run_cli(tmp_path, "serve", "--port", str(port))
    assert r.returncode == 2 and "already in use" in r.stderr and f"PORT={port + 1}" in r.stderr
    assert "serving on" not in r.stdout
