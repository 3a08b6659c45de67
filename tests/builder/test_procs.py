"""External processes run with a memory and CPU limit (builder/procs.py)."""
from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from builder.procs import limited, node_args


def test_a_child_over_its_memory_limit_fails_instead_of_growing():
    grab = "b = bytearray(400 * 1024 * 1024); print('allocated')"
    free = subprocess.run([sys.executable, "-c", grab], capture_output=True, timeout=60)
    assert free.returncode == 0
    capped = subprocess.run([sys.executable, "-c", grab], capture_output=True, timeout=60, preexec_fn=limited(200))
    assert capped.returncode != 0 and b"MemoryError" in capped.stderr


def test_a_child_over_its_cpu_time_is_stopped():
    spin = subprocess.run([sys.executable, "-c", "while True: pass"], capture_output=True, timeout=60,
                          preexec_fn=limited(None, cpu_s=1))
    assert spin.returncode != 0  # SIGXCPU, long before the 60 s timeout


@pytest.mark.skipif(shutil.which("node") is None, reason="node not installed")
def test_node_gets_a_heap_limit():
    hog = "const a = []; for (;;) a.push(new Array(1e6).fill(1.5));"
    proc = subprocess.run(["node", *node_args(64), "-e", hog], capture_output=True, timeout=120)
    assert proc.returncode != 0 and b"heap" in proc.stderr.lower()
