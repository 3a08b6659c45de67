"""Worker threads beside the calling thread (OpenCV's ORB and FAISS release the GIL, so two cores both work).

A forked process (a server's worker) inherits a thread pool but not its threads: its jobs would wait forever, so
each ``Workers`` makes itself a new pool in the child. A job may be taken back while still queued behind other
callers' jobs (``result_or_run``): concurrent requests sharing one worker never wait for each other's work.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any


class Workers:
    """A thread pool of ``threads`` threads named ``name``, re-created in a forked child."""

    def __init__(self, threads: int, name: str) -> None:
        self._threads, self._name = threads, name
        self._pool = self._new_pool()
        os.register_at_fork(after_in_child=self._renew)

    def _new_pool(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=self._threads, thread_name_prefix=self._name)

    def _renew(self) -> None:
        self._pool = self._new_pool()

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        return self._pool.submit(fn, *args)


def result_or_run(job: Future | None, fn: Callable[..., Any], *args: Any) -> Any:
    """The result of ``job``; or, when there is no job or it is still queued (cancelled here), ``fn(*args)`` computed
    on this thread."""
    return job.result() if job is not None and not job.cancel() else fn(*args)


@contextmanager
def one_faiss_thread() -> Iterator[None]:
    """FAISS on one OpenMP thread within the block, for searches too small to share between threads (a page's
    features, a simulated view's); this thread's OpenMP setting only, restored after."""
    import faiss

    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(threads)
