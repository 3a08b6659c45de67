"""The static checks make test runs (issue 29): ruff and vulture, at the versions requirements.lock pins, with the
rule sets chosen in pyproject.toml ([tool.ruff], [tool.vulture]). A finding fails the test with the tool's output."""
from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_ruff_finds_nothing_unused_undefined_or_too_complex():
    done = _run("ruff", "check", "--no-cache", "--output-format", "concise", ".")
    assert done.returncode == 0, f"ruff check (see [tool.ruff] in pyproject.toml):\n{done.stdout}{done.stderr}"


def test_vulture_finds_no_dead_code():
    done = _run("vulture")  # paths, confidence and whitelist from [tool.vulture]
    assert done.returncode == 0, ("vulture: remove the dead code, or whitelist what is used from outside Python in "
                                  f"vulture_whitelist.py with its reason:\n{done.stdout}{done.stderr}")


def test_every_whitelisted_object_still_exists():
    sys.path.insert(0, str(ROOT))
    try:
        importlib.import_module("vulture_whitelist")  # an entry naming a removed object raises AttributeError
    finally:
        sys.path.remove(str(ROOT))
