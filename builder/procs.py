"""Every external process the builder runs gets a time and a memory limit (issue 25: a 2 M-face model held a
server thread for 22+ minutes in gltf-transform, then meshoptimizer). No Flask here.

``limited(memory_mb)`` is the ``preexec_fn`` of a child process: an address-space limit (RLIMIT_AS) and a CPU-time
backstop (RLIMIT_CPU); node is given its V8 heap limit instead (``node_args``), because V8 reserves far more
address space than it uses and would not start under RLIMIT_AS. Wall-clock limits are the ``timeout`` of each call.
"""
from __future__ import annotations

import resource

FFMPEG_MEMORY_MB = 2048      # x264 on a 4K frame stays well under 1 GB
NODE_HEAP_MB = 2048          # gltf-transform on a 500k-triangle model with 2048 px textures: ~600 MB here
CPU_SECONDS = 900            # CPU-time backstop beside each call's wall-clock timeout


def limited(memory_mb: int | None, cpu_s: int = CPU_SECONDS):
    """preexec_fn applying the limits in the child (POSIX), before it executes the program."""
    def apply() -> None:
        if memory_mb:
            limit = memory_mb * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 5))
    return apply


def node_args(heap_mb: int = NODE_HEAP_MB) -> list[str]:
    """Arguments right after the node binary: its heap limit (out of memory -> exit, not a swapping server)."""
    return [f"--max-old-space-size={int(heap_mb)}"]
