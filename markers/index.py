"""The recognition index: every published page's catalog features in one FAISS binary index, incremental add and
remove, a versioned file format, confusability, and ``recognize`` (photo -> ``PageMatch`` or ``None``).

Memory layout: per page, every feature's 32-byte ORB descriptor and its keypoint as two uint16 (page position in
1/65535 of the page size, i.e. < 0.01 mm on a 420 mm page), for exact matching and geometric verification; in
FAISS (an exact ``IndexBinaryFlat`` while the catalog is small, an ``IndexBinaryIVF`` once it passes
``IVF_MIN_FEATURES``), the descriptor and 8-byte id of only the first ``INDEXED_FEATURES`` of each page, which rank
candidate pages, and beside them each indexed feature's distance to generic photo content (markers.background,
one byte). Feature ids encode ``slot << FEATURE_BITS | feature index``; a slot is a page's place in ``_slots``.
"""
from __future__ import annotations

import dataclasses
import json
import os

# OpenMP threads that spin while waiting make FAISS 10-50x slower on a loaded machine (a web server shares its
# cores); passive waiting costs nothing measurable when idle. Only effective before the OpenMP runtime starts.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import struct
import tempfile
import threading
import zlib
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

import cv2
import faiss
import numpy as np

from . import recognize as rz
from .background import background_distance
from .errors import IndexFormatError
from .features import DESCRIPTOR_BYTES, PageMarker
from .recognize import PageMatch
from .workers import Workers, one_faiss_thread, result_or_run

INDEX_MAGIC = b"BNIX"
INDEX_VERSION = 5  # 2: per-page descriptors kept beside FAISS (two-stage search); 3: background distances;
# 4: built from version-2 markers (keypoint convention), so an index of older markers is rebuilt; 5: an IVF index has
# one always-empty inverted list more than centroids (_search_ivf)
FEATURE_BITS = 12  # up to 4096 features per page (train_page keeps ~830)
MAX_PAGE_FEATURES = 1 << FEATURE_BITS
# Two stages: FAISS holds only each page's first INDEXED_FEATURES features (markers list the most repeatable
# first) and ranks candidate pages by votes; each candidate is then matched exactly against *all* its features
# (kept per page). At 10,000 pages the votes still put the right page first for ~9 photos in 10, but its
# correspondences among the k nearest of 8 million features halve (tuning photos): matching the page itself
# gives back the full set, and a smaller FAISS index is also faster to search.
INDEXED_FEATURES = 260
IVF_MIN_FEATURES = 20_000  # below ~25 pages an exact search is fast enough (< 20 ms) and needs no training
# nlist = IVF_LIST_FACTOR * sqrt(N): the cost per query feature, nlist (coarse search) + nprobe * N / nlist
# (list scan), is near its minimum, with lists kept large enough for recall at Hamming distances of 40-60 bits.
IVF_LIST_FACTOR = 2.0
IVF_RETRAIN_GROWTH = 4  # retrain the coarse quantizer when the catalog has grown 4x since the last training
IVF_NPROBE = 8  # lists visited per query feature: at 3,000 pages 16 ranked the right page no better, at 2x the time;
# at 10,000 pages (list-by-list search) 12 found 554 instead of 553 of 600 tuning photos for +6 ms p50 (interleaved)
IVF_TRAIN_ITERS = 6  # k-means iterations for the coarse quantizer: more changes little for binary codes
IVF_TRAIN_POINTS_PER_LIST = 24
# A scope of 8+ pages gets a small IVF of its own (an edition of 24-48 pages indexes 6-12k features): tuning photos
# at 1,000 pages scoped to their 24-page edition, p50 29 -> 25 ms against an exact search, the same pages found.
SCOPE_IVF_MIN_FEATURES = 2_000
# Candidate pages are verified two at a time, the second on this worker thread (FAISS and OpenCV release the GIL;
# decisions stay in candidate order): 3.6 -> 2.0 ms per page alone in a loop, non-catalog photos at 10,000 pages
# p50 121 -> 117 ms in recognize (2 cores).
VERIFY_AHEAD = True  # False: one page at a time (a single-core host)
_VERIFIER = Workers(1, "verify-page")
# The closer look's features (rz.closer_look: the photo enlarged MAGNIFY x, ~11 ms, and the paper region, ~6 ms;
# medians over 60 non-catalog tuning photos) are computed ahead on a worker when the first search finds no page
# whose hits fit one layout (true of 1 % of the tuning photos recognized in the first pass, of ~70 % of those that
# are not): the closer search then does not wait for them.
CLOSER_AHEAD = True
_CLOSER = Workers(1, "closer-look")
# FAISS's own OpenMP threads do little for these searches (1,500 photo features against an edition's 6,240 indexed
# features: 11.7 ms on two threads, 4.1 on one; against 1,000 pages: 20 vs 22 ms, both cores busy): the photo's
# features are split in two halves instead, each searched on one thread, this one and a worker (2.5 / 12 ms; the
# same neighbours).
SEARCH_SPLIT = True  # False: FAISS's own threads (e.g. a single-core host)
SEARCH_SPLIT_MIN = 64  # fewer descriptors: one search on this thread
_SEARCHER = Workers(1, "index-search")


def _search_one_thread(index: faiss.IndexBinary, desc: np.ndarray, k: int, nprobe: int | None
                       ) -> tuple[np.ndarray, np.ndarray]:
    with one_faiss_thread():
        if isinstance(index, faiss.IndexBinaryIVF):
            return _search_ivf(index, np.ascontiguousarray(desc, np.uint8), k, nprobe)
        return index.search(np.ascontiguousarray(desc), k)


def _search_ivf(index: faiss.IndexBinaryIVF, desc: np.ndarray, k: int, nprobe: int | None
                ) -> tuple[np.ndarray, np.ndarray]:
    """k nearest indexed features of each descriptor in an IVF index of ours (_new_ivf), searched list by list:
    FAISS's per_invlist_search reads each inverted list once for all the descriptors that probe it, four at a time.
    FAISS's default, descriptor by descriptor, took 1.4x as long (1,500 photo features at 10,000 pages, one thread:
    median 31 vs 23 ms over 50 tuning photos, split in two halves; the same distances).

    FAISS sizes a table of that search by the number of descriptors where it needs the number of lists (faiss-cpu
    1.15.1 corrupts its heap when there are fewer descriptors than lists) and hangs on a list number -1, so the
    descriptors are padded to nlist + 1 rows that probe the index's extra inverted list, which is always empty."""
    pad_list = index.nlist - 1
    nprobe = min(index.nprobe if nprobe is None else nprobe, index.quantizer.ntotal)
    centroid_dist, lists = index.quantizer.search(desc, nprobe)
    n = len(desc)
    rows = max(n, index.nlist + 1)
    x = np.zeros((rows, DESCRIPTOR_BYTES), np.uint8)
    x[:n] = desc
    keys = np.full((rows, nprobe), pad_list, np.int64)
    keys[:n] = lists
    cdist = np.zeros((rows, nprobe), np.int32)
    cdist[:n] = centroid_dist
    dist = np.empty((rows, k), np.int32)
    ids = np.empty((rows, k), np.int64)
    params = faiss.SearchParametersIVF(nprobe=nprobe)
    index.search_preassigned_c(rows, faiss.swig_ptr(x), k, faiss.swig_ptr(keys), faiss.swig_ptr(cdist),
                               faiss.swig_ptr(dist), faiss.swig_ptr(ids), False, params)
    return dist[:n], ids[:n]


def _per_list_ready(index: faiss.IndexBinary) -> None:
    """Check an IVF index has _search_ivf's extra empty list (IndexFormatError otherwise) and select FAISS's
    per-list search (a FAISS field, not stored in the index file). Only _search_ivf may search it then."""
    if not isinstance(index, faiss.IndexBinaryIVF):
        return
    if index.nlist != index.quantizer.ntotal + 1 or index.invlists.list_size(index.nlist - 1) != 0:
        raise IndexFormatError(f"an IVF index needs one empty inverted list more than its {index.quantizer.ntotal} "
                               f"centroids (it has {index.nlist} lists)")
    index.per_invlist_search = True


class _CloserLook:
    """The closer look's features (rz.closer_look), computed at most once: ahead on _CLOSER once started, else (or
    when that job is still queued behind other photos') on the calling thread when needed."""

    def __init__(self, q: rz.QueryFeatures) -> None:
        self._q = q
        self._job: Future | None = None
        self._features: rz.QueryFeatures | None = None

    def start(self) -> None:
        if CLOSER_AHEAD and self._job is None and self._features is None:
            self._job = _CLOSER.submit(rz.closer_look, self._q)

    def features(self) -> rz.QueryFeatures:
        if self._features is None:
            job, self._job = self._job, None
            self._features = result_or_run(job, rz.closer_look, self._q)
        return self._features

    def discard(self) -> None:
        """Not needed after all (a page was recognized): a job not started yet never runs."""
        if self._job is not None:
            self._job.cancel()


def _faiss_single_threaded_after_fork() -> None:
    """GNU OpenMP's thread team of the thread that forks survives in the child without its threads: FAISS on that
    thread would wait forever, so there it runs single-threaded (threads started later get their own teams)."""
    faiss.omp_set_num_threads(1)


os.register_at_fork(after_in_child=_faiss_single_threaded_after_fork)
SCOPE_CACHE = 16  # scoped sub-indexes kept (one per edition or publication recently asked for)
SHARED_CACHE = 256  # pages whose shared features (_shared_mm) are kept; any add or remove clears them
COORD_MAX = 65535  # uint16 page coordinates


def _coords_mm(coords: np.ndarray, size_mm: np.ndarray) -> np.ndarray:
    """Page mm of uint16 page coordinates (N, 2); size_mm: (2,) the page's (width, height), or (N, 2) per row."""
    return coords.astype(np.float64) / COORD_MAX * size_mm


@dataclass(frozen=True)
class Confusion:
    """A published page that a page could be mistaken for. score : shared-geometry inliers / features of the
    page (0..1); region : (x_mm, y_mm, width_mm, height_mm) on the *queried* page of what is shared."""
    page_id: str
    score: float
    region: tuple[float, float, float, float]


@dataclass
class _Page:
    page_id: str
    slot: int
    width_mm: float
    height_mm: float
    coords: np.ndarray  # (N, 2) uint16, page position in units of size / 65535
    descriptors: np.ndarray  # (N, 32) uint8: all features of the page, for exact matching of candidates
    scopes: tuple[str, ...]

    def keypoints_mm(self, feat: np.ndarray | None = None) -> np.ndarray:
        """Page mm of the features ``feat`` (all of them by default)."""
        return _coords_mm(self.coords if feat is None else self.coords[feat], np.array([self.width_mm, self.height_mm]))


class _RWLock:
    """Many concurrent readers (recognize) or one writer (add/remove/save)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False

    def read(self) -> "_Guard":
        return _Guard(self, False)

    def write(self) -> "_Guard":
        return _Guard(self, True)


class _Guard:
    def __init__(self, lock: _RWLock, write: bool) -> None:
        self.lock, self.write_mode = lock, write

    def __enter__(self) -> None:
        c = self.lock._cond
        with c:
            if self.write_mode:
                while self.lock._writer or self.lock._readers:
                    c.wait()
                self.lock._writer = True
            else:
                while self.lock._writer:
                    c.wait()
                self.lock._readers += 1

    def __exit__(self, *exc: object) -> None:
        c = self.lock._cond
        with c:
            if self.write_mode:
                self.lock._writer = False
            else:
                self.lock._readers -= 1
            c.notify_all()


def _all_codes(index: faiss.IndexBinary) -> tuple[np.ndarray, np.ndarray]:
    """Every (code (N,32) uint8, id (N,) int64) stored in a flat-with-ids or IVF binary index."""
    if isinstance(index, faiss.IndexBinaryIVF):
        inv = index.invlists
        codes, ids = [], []
        for li in range(index.nlist):
            n = inv.list_size(li)
            if n:
                codes.append(np.array(faiss.rev_swig_ptr(inv.get_codes(li), n * DESCRIPTOR_BYTES)).reshape(n, -1))
                ids.append(np.array(faiss.rev_swig_ptr(inv.get_ids(li), n)).astype(np.int64))
        if not codes:
            return np.zeros((0, DESCRIPTOR_BYTES), np.uint8), np.zeros(0, np.int64)
        return np.concatenate(codes), np.concatenate(ids)
    flat = faiss.downcast_IndexBinary(index.index)
    codes = faiss.vector_to_array(flat.xb).reshape(-1, DESCRIPTOR_BYTES)
    return codes, faiss.vector_to_array(index.id_map).astype(np.int64)


def _new_flat() -> faiss.IndexBinary:
    return faiss.IndexBinaryIDMap(faiss.IndexBinaryFlat(DESCRIPTOR_BYTES * 8))


def _new_ivf(codes: np.ndarray, seed: int = 1234) -> faiss.IndexBinaryIVF:
    """IVF index with a coarse quantizer trained on (a sample of) ``codes``."""
    nlist = int(np.clip(IVF_LIST_FACTOR * np.sqrt(len(codes)), 16, 65536))
    quantizer = faiss.IndexBinaryFlat(DESCRIPTOR_BYTES * 8)
    ivf = faiss.IndexBinaryIVF(quantizer, DESCRIPTOR_BYTES * 8, nlist)
    ivf.own_fields = True
    quantizer.this.disown()
    ivf.cp.niter = IVF_TRAIN_ITERS
    ivf.cp.seed = seed
    ivf.cp.max_points_per_centroid = IVF_TRAIN_POINTS_PER_LIST
    ivf.cp.min_points_per_centroid = 4  # a deliberately small sample (speed); silences the FAISS warning
    rng = np.random.default_rng(seed)
    sample = codes[rng.choice(len(codes), min(len(codes), nlist * IVF_TRAIN_POINTS_PER_LIST), replace=False)]
    ivf.train(np.ascontiguousarray(sample))
    ivf.nprobe = IVF_NPROBE
    # One inverted list more than centroids: no feature is ever assigned to it (_search_ivf's padding probes it).
    lists = faiss.ArrayInvertedLists(nlist + 1, DESCRIPTOR_BYTES)
    ivf.nlist = nlist + 1
    ivf.replace_invlists(lists, True)
    lists.this.disown()
    _per_list_ready(ivf)
    return ivf


def _build_index(codes: np.ndarray, ids: np.ndarray, min_ivf: int | None = None) -> faiss.IndexBinary:
    """Exact index for few codes (< min_ivf, default IVF_MIN_FEATURES), IVF otherwise, holding ``codes``."""
    index = _new_flat() if len(codes) < (IVF_MIN_FEATURES if min_ivf is None else min_ivf) else _new_ivf(codes)
    if len(codes):
        index.add_with_ids(codes, ids)
    return index


class RecognitionIndex:
    """Catalog of page markers for recognition. Thread-safe: concurrent ``recognize`` calls share a read lock;
    ``add``/``remove`` take the write lock."""

    def __init__(self) -> None:
        self._lock = _RWLock()
        self._pages: dict[str, _Page] = {}
        self._slots: list[_Page | None] = []
        self._free: list[int] = []
        # (slots, INDEXED_FEATURES) uint8: background distance of each indexed feature (0 = never counts)
        self._background = np.zeros((0, INDEXED_FEATURES), np.uint8)
        self._index: faiss.IndexBinary = _new_flat()
        self._trained_size = 0  # feature count the IVF was trained at (0: flat)
        self._scope_cache: OrderedDict[str, tuple[faiss.IndexBinary, np.ndarray]] = OrderedDict()
        self._scope_lock = threading.Lock()
        self._shared_cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._shared_lock = threading.Lock()

    # ---------------------------------------------------------------------------------------------- catalog
    def __len__(self) -> int:
        return len(self._pages)

    def __contains__(self, page_id: object) -> bool:
        return page_id in self._pages

    @property
    def page_ids(self) -> list[str]:
        return list(self._pages)

    def scopes_of(self, page_id: str) -> tuple[str, ...]:
        return self._pages[page_id].scopes

    def add(self, marker: PageMarker, scopes: tuple[str, ...] | list[str] = ()) -> None:
        """Add (or replace) a page. scopes: e.g. ("edition:12", "publication:bao-yen-bai")."""
        n = len(marker.keypoints_mm)
        if n > MAX_PAGE_FEATURES:
            raise ValueError(f"page {marker.page_id!r} has {n} features, at most {MAX_PAGE_FEATURES} supported")
        k = min(n, INDEXED_FEATURES)  # markers list their most repeatable features first
        # Outside the lock and before any change: readers are not held up, and a failure leaves the index as it was.
        background = background_distance(np.ascontiguousarray(marker.descriptors[:k], np.uint8))
        with self._lock.write():
            if marker.page_id in self._pages:
                self._remove_locked(marker.page_id)
            slot = self._free.pop() if self._free else len(self._slots)
            rel = np.clip(marker.keypoints_mm / np.array([marker.width_mm, marker.height_mm], np.float32), 0, 1)
            desc = np.ascontiguousarray(marker.descriptors, np.uint8)
            page = _Page(marker.page_id, slot, marker.width_mm, marker.height_mm,
                         np.round(rel * COORD_MAX).astype(np.uint16), desc, tuple(str(s) for s in scopes))
            if slot == len(self._slots):
                self._slots.append(page)
            else:
                self._slots[slot] = page
            self._pages[marker.page_id] = page
            ids = (np.int64(slot) << FEATURE_BITS) | np.arange(k, dtype=np.int64)
            self._set_background_locked(slot, background)
            self._index.add_with_ids(np.ascontiguousarray(desc[:k]), ids)
            self._maybe_train_locked()
            self._invalidate_scopes(page.scopes)
            self._forget_shared()

    def _set_background_locked(self, slot: int, dist: np.ndarray) -> None:
        if slot >= len(self._background):
            grown = np.zeros((max(slot + 1, 2 * len(self._background)), INDEXED_FEATURES), np.uint8)
            grown[:len(self._background)] = self._background
            self._background = grown
        self._background[slot] = 0
        self._background[slot, :len(dist)] = dist

    def remove(self, page_id: str) -> None:
        """Remove a page; KeyError if it is not in the index."""
        with self._lock.write():
            if page_id not in self._pages:
                raise KeyError(page_id)
            self._remove_locked(page_id)

    def _remove_locked(self, page_id: str) -> None:
        page = self._pages.pop(page_id)
        lo = page.slot << FEATURE_BITS
        self._index.remove_ids(faiss.IDSelectorRange(lo, lo + MAX_PAGE_FEATURES))
        self._slots[page.slot] = None
        self._background[page.slot] = 0
        self._free.append(page.slot)
        self._invalidate_scopes(page.scopes)
        self._forget_shared()

    def _invalidate_scopes(self, scopes: tuple[str, ...]) -> None:
        with self._scope_lock:
            for s in scopes:
                self._scope_cache.pop(s, None)

    def _forget_shared(self) -> None:
        """What a page shares with the others changes with every page added or removed."""
        with self._shared_lock:
            self._shared_cache.clear()

    def _maybe_train_locked(self) -> None:
        n = self._index.ntotal
        if n < IVF_MIN_FEATURES or (self._trained_size and n < IVF_RETRAIN_GROWTH * self._trained_size):
            return
        codes, ids = _all_codes(self._index)
        self._index, self._trained_size = _build_index(codes, ids), n
        with self._scope_lock:
            self._scope_cache.clear()

    # ---------------------------------------------------------------------------------------------- memory
    def memory_bytes(self) -> int:
        """Bytes held for the catalog: FAISS codes + ids (+ IVF centroids), the uint16 keypoints, the per-page
        descriptors and the background distances of the indexed features."""
        n = self._index.ntotal
        faiss_bytes = n * (DESCRIPTOR_BYTES + 8)
        if isinstance(self._index, faiss.IndexBinaryIVF):
            faiss_bytes += self._index.nlist * (DESCRIPTOR_BYTES + 8 * 3)  # centroids + list headers
        pages = sum(p.coords.nbytes + p.descriptors.nbytes + 160 + len(p.page_id)  # 160: record overhead
                    for p in self._pages.values())
        pages += len(self._background) * INDEXED_FEATURES
        return int(faiss_bytes + pages)

    def memory_bytes_per_page(self) -> float:
        return self.memory_bytes() / max(1, len(self))

    # ---------------------------------------------------------------------------------------------- search
    def prepare_scope(self, scope: str) -> None:
        """Build (and cache) the search structure of ``scope`` now, e.g. right after an edition is published, so
        the first reader of that edition does not pay for it."""
        with self._lock.read():
            self._scope_index(scope)

    def _scope_index(self, scope: str) -> tuple[faiss.IndexBinary | None, np.ndarray]:
        """(sub-index of the scope's pages or None when the catalog is small, sorted slot array)."""
        slots = np.array(sorted(p.slot for p in self._pages.values() if scope in p.scopes), np.int64)
        if not isinstance(self._index, faiss.IndexBinaryIVF) or len(slots) == 0:
            return None, slots
        with self._scope_lock:
            hit = self._scope_cache.get(scope)
            if hit is not None:
                self._scope_cache.move_to_end(scope)
                return hit
        codes, ids = _all_codes(self._index)
        keep = np.isin(ids >> FEATURE_BITS, slots)
        sub = _build_index(np.ascontiguousarray(codes[keep]), ids[keep], SCOPE_IVF_MIN_FEATURES)
        with self._scope_lock:
            self._scope_cache[scope] = (sub, slots)
            while len(self._scope_cache) > SCOPE_CACHE:
                self._scope_cache.popitem(last=False)
        return sub, slots

    def _search(self, desc: np.ndarray, index: faiss.IndexBinary, k: int, nprobe: int | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
        """k nearest indexed features of each descriptor: (distances, ids). SEARCH_SPLIT: the descriptors' second
        half is searched on _SEARCHER meanwhile, each half on one OpenMP thread."""
        if index.ntotal == 0 or len(desc) == 0:
            return np.zeros((len(desc), k), np.int32), np.full((len(desc), k), -1, np.int64)
        if not SEARCH_SPLIT or len(desc) < SEARCH_SPLIT_MIN:
            return _search_one_thread(index, desc, k, nprobe)
        mid = len(desc) // 2
        job = _SEARCHER.submit(_search_one_thread, index, desc[mid:], k, nprobe)
        d1, i1 = _search_one_thread(index, desc[:mid], k, nprobe)
        d2, i2 = result_or_run(job, _search_one_thread, index, desc[mid:], k, nprobe)
        return np.vstack([d1, d2]), np.vstack([i1, i2])

    def recognize(self, image: np.ndarray | bytes | rz.Photo, scope: str | None = None, tilted: bool = False
                  ) -> PageMatch | None:
        """Recognize the page in a photo. image: BGR/grey uint8 array, JPEG/PNG bytes or rz.decode_photo's result
        (EXIF orientation honoured; PageMatch in the upright photo's px). scope: e.g. "edition:12" — searched
        first; the whole archive is searched if it finds nothing. Returns None when no page is recognized with
        confidence.

        One index search ranks candidate pages (pages whose hits fit one affine layout first, then soft votes);
        candidates are matched exactly against all their
        features and verified by a homography, best first, until one is accepted. Without an accepted page:
        (2) the photo rectified with a weak but plausible homography (the page seen frontally at a catalog
        scale) is matched against that page again (no second search); (3) a closer look (rz.closer_look: the photo
        enlarged MAGNIFY times, for pages small in the frame, and the paper region at a middle catalog scale) is
        searched, more lightly, and its pages must pass stricter acceptance (rz.CLOSER_*); (4) with ``tilted``, the
        tilted look (rz.TILT*: the photo un-tilted in four directions, each searched lightly; ~+125 ms for a photo
        with no page at 10,000 pages) — for a caller that can wait, e.g. a still photo. ``PageMatch.stage`` says
        which pass found the page."""
        q = rz.query_features(image)
        if len(q.xy) < rz.MIN_INLIERS:
            return None
        closer = _CloserLook(q)
        try:
            with self._lock.read():
                return self._recognize_locked(q, scope, closer, tilted)
        finally:
            closer.discard()

    def _recognize_locked(self, q: rz.QueryFeatures, scope: str | None, closer: _CloserLook, tilted: bool = False
                          ) -> PageMatch | None:
        if not self._pages:
            return None
        searches: list[tuple[faiss.IndexBinary, np.ndarray | None]] = []
        if scope is not None:
            sub, slots = self._scope_index(scope)
            if len(slots):
                searches.append((sub if sub is not None else self._index, slots))
        searches.append((self._index, None))
        # A scope is searched as taken and closer before the archive (a reader who scanned the edition's QR
        # most likely photographs one of its pages); the archive the same way after.
        for index, allowed in searches:
            match, hypotheses = self._recognize_in(q, index, allowed, no_layout=closer.start)
            if match is not None:
                return match
            # Then the closer look, with its own search — unless a plausible (if rejected) page already appears
            # large in the frame: a rejected non-catalog page (usually such a look-alike) then costs no second
            # search.
            if not any(self._apparent_height(v) > rz.MAGNIFY_BELOW_PX for v in hypotheses
                       if len(v.inlier_q) >= rz.MAGNIFY_SKIP_INLIERS):
                match, _ = self._recognize_in(closer.features(), index, allowed, thorough=False,
                                              nprobe=rz.MAGNIFIED_NPROBE, candidates=rz.CLOSER_CANDIDATES)
                if match is not None:
                    return dataclasses.replace(match, stage="closer")
            if tilted:
                match = self._tilted_look(q, index, allowed)
                if match is not None:
                    return match
        return None

    def _tilted_look(self, q: rz.QueryFeatures, index: faiss.IndexBinary, allowed: np.ndarray | None
                     ) -> PageMatch | None:
        """The photo un-tilted in each of rz.TILT_DIRECTIONS (rz.untilted), each copy searched on its own, lightly;
        the first page accepted with rz.TILT_MIN_INLIERS."""
        for direction in rz.TILT_DIRECTIONS:
            match, _ = self._recognize_in(rz.untilted(q, direction), index, allowed, thorough=False,
                                          nprobe=rz.TILT_NPROBE, candidates=rz.TILT_CANDIDATES)
            if match is not None and match.inliers >= rz.TILT_MIN_INLIERS:
                return dataclasses.replace(match, stage="tilted")
        return None

    def _apparent_height(self, v: rz.Verified) -> float:
        """Height of the hypothesised page in working px."""
        page = self._slots[v.slot]
        c = rz.project(v.homography, rz.page_corners_mm(page.width_mm, page.height_mm))
        return float(max(np.linalg.norm(c[3] - c[0]), np.linalg.norm(c[2] - c[1])))

    def _recognize_in(self, q: rz.QueryFeatures, index: faiss.IndexBinary, allowed: np.ndarray | None,
                      thorough: bool = True, no_layout=None, nprobe: int | None = None,
                      candidates: int | None = None) -> tuple[PageMatch | None, list[rz.Verified]]:
        """One search and its decisions. Returns (match or None, the verified (rejected) hypotheses).
        thorough=False (the closer and tilted looks): no rectified pass, the closer look's acceptance. nprobe:
        inverted lists visited (None: the index's own); at most ``candidates`` pages verified (None:
        rz.MAX_CANDIDATES). no_layout() is called when no page's hits fit one layout (the photo is then rarely
        recognized in this pass)."""
        dist, ids = self._search(q.descriptors, index, rz.KNN, nprobe)
        candidates = rz.MAX_CANDIDATES if candidates is None else candidates
        votes = rz.soft_votes(dist, ids, FEATURE_BITS, allowed, self._background)
        order = np.argsort(-votes.score, kind="stable")[:candidates]
        voted = [int(s) for s in order if votes.score[s] >= rz.MIN_SCORE and self._slots[s] is not None]
        laid_out = self._layout_consistent(q, votes, dist, ids)[:min(rz.LAYOUT_CANDIDATES, candidates)]
        if not laid_out and no_layout is not None:
            no_layout()
        slots = (laid_out + [s for s in voted if s not in laid_out])[:candidates]

        def exclusive(v: rz.Verified, to_work: np.ndarray | None = None) -> float:
            if to_work is None:  # verified on this very query: its inliers are these features
                return float(votes.weights(v.slot)[v.inlier_q].sum())
            return rz.evidence(rz.project(to_work, v.inlier_pts), q.xy, votes.weights(v.slot))

        def elsewhere(v: rz.Verified, rest: list[int]) -> list[int]:
            return self._aimed_elsewhere(q, v, rest, votes)

        match, verified = self._verify_and_decide(q, slots, exclusive, closer=not thorough, elsewhere=elsewhere)
        if match is not None or not thorough:
            return match, verified
        # Pass 2: rectify the photo with the best weak hypotheses and match the same page again.
        for hint in verified[:rz.RECTIFY_CANDIDATES]:
            match = self._match_rectified(q, hint, verified, exclusive)
            if match is not None:
                return match, verified
        return None, verified

    def _layout_consistent(self, q: rz.QueryFeatures, votes: rz.Votes, dist: np.ndarray, ids: np.ndarray
                           ) -> list[int]:
        """Pages among the LAYOUT_POOL with the most k-NN hits whose hits one affine map explains
        (rz.affine_consistency), most explained hits first."""
        rows, slots, feats = rz.nearest_hits(votes, dist, ids, FEATURE_BITS)
        if len(slots) == 0:
            return []
        hits = np.bincount(slots)
        pool = np.argsort(-hits, kind="stable")[:rz.LAYOUT_POOL]
        pool = pool[hits[pool] >= rz.LAYOUT_MIN]
        if len(pool) == 0:
            return []
        starts = np.searchsorted(slots, pool)
        counts = np.minimum(hits[pool], rz.LAYOUT_MAX_HITS)
        n = int(counts.max())
        pq = np.zeros((len(pool), n, 2))
        pm = np.zeros((len(pool), n, 2))
        for j, (slot, a, c) in enumerate(zip(pool, starts, counts)):
            page = self._slots[slot]
            if page is None:
                counts[j] = 0
                continue
            pm[j, :c] = page.keypoints_mm(feats[a:a + c])
            pq[j, :c] = q.xy[rows[a:a + c]]
        best = rz.affine_consistency(pq, pm, counts)
        keep = np.nonzero(best >= rz.LAYOUT_MIN)[0]
        keep = keep[np.argsort(-best[keep], kind="stable")]
        return [int(pool[j]) for j in keep]

    def _verify_and_decide(self, q: rz.QueryFeatures, slots: list[int], exclusive, to_work=None, closer=False,
                           elsewhere=None) -> tuple[PageMatch | None, list[rz.Verified]]:
        """Verify candidates in the order given and decide as soon as a page is accepted against at least one
        verified rival (the runner-up of the votes is the likeliest look-alike): a recognized photo costs about
        two page matchings, not MAX_CANDIDATES. A page accepted away from the frame centre is held while the
        candidates elsewhere(accepted, unverified candidates) names are verified: another catalog page in view,
        nearer the centre, is the one aimed at (``_aimed_first``). Returns (match or None, verified pages, most
        inliers first)."""
        verified: list[rz.Verified] = []
        ahead: dict[int, Future] = {}  # candidate i + 1, verified on the worker while this thread does candidate i
        held: tuple[rz.Verified, float] | None = None  # accepted off the frame centre, while others are verified
        others: list[int] = []
        try:
            for i, slot in enumerate(slots):
                if VERIFY_AHEAD and i not in ahead and i + 1 < len(slots):
                    ahead[i + 1] = _VERIFIER.submit(self._verify_page, q, slots[i + 1])
                v = result_or_run(ahead.pop(i, None), self._verify_page, q, slot)
                if v is not None:
                    verified.append(v)
                    verified.sort(key=lambda v: len(v.inlier_q), reverse=True)
                if verified and (i >= 1 or i == len(slots) - 1):
                    accepted = self._accepted(q, verified, exclusive, to_work, closer)
                    if accepted is None:
                        continue
                    if i < len(slots) - 1 and to_work is None and elsewhere is not None:
                        others = elsewhere(accepted[0], slots[i + 1:])
                    if not others:
                        return self._match_of(q, *accepted, to_work), verified
                    held = accepted
                    break
            if held is None:
                return None, verified
            for slot in others:
                job = next((ahead.pop(j) for j in list(ahead) if slots[j] == slot), None)
                v = result_or_run(job, self._verify_page, q, slot)
                if v is not None:
                    verified.append(v)
            verified.sort(key=lambda v: len(v.inlier_q), reverse=True)
            # Another catalog page in view nearer the centre (both strong, disjoint inliers: _aimed_first) is the
            # one the reader aims at; when it is not accepted, the page accepted first still stands.
            again = self._accepted(q, verified, exclusive, to_work, closer)
            return self._match_of(q, *(held if again is None else again), to_work), verified
        finally:
            for f in ahead.values():  # a page verified ahead for nothing: done before the read lock is released
                if not f.cancel():
                    f.exception()

    def _verify_page(self, q: rz.QueryFeatures, slot: int) -> rz.Verified | None:
        """Exact matching of the photo's features against one page's own features, then homography
        verification."""
        page = self._slots[slot]
        mm = page.keypoints_mm()
        c = rz.page_correspondences(q.descriptors, page.descriptors, mm)
        return rz.verify(slot, q.xy, mm[c.f_idx], c.q_idx, c.ratio, page.width_mm, page.height_mm, q.size)

    def _accepted(self, q: rz.QueryFeatures, verified: list[rz.Verified], exclusive, to_work=None, closer=False
                  ) -> tuple[rz.Verified, float] | None:
        """Acceptance of the best verified page: (it, its score) or None. exclusive(v, to_work) -> evidence of v's
        inliers in the index votes; to_work maps this query's px to the searched photo's working px (rectified
        passes); closer: q is the closer look (its stricter acceptance)."""
        if not verified:
            return None
        verified = self._aimed_first(verified, q.size)
        best = verified[0]
        runner = verified[1] if len(verified) > 1 else None
        page = self._slots[best.slot]
        cover = rz.cell_coverage(best, q.xy, page.width_mm, page.height_mm)
        ok, score = rz.accept(best, runner, cover, exclusive(best, to_work), second_look=to_work is not None,
                              closer=closer)
        if not ok and rz.body_may_decide(best, runner, cover):
            ok = rz.accept_body(best, runner, cover, rz.body_inliers(best, self._shared_mm(best.slot)))
        return (best, score) if ok else None

    def _match_of(self, q: rz.QueryFeatures, best: rz.Verified, score: float, to_work=None) -> PageMatch:
        """The PageMatch of an accepted page (``_accepted``), its homography refined by the final look."""
        page = self._slots[best.slot]
        # A second look inside a rectified pass is refined by the pass itself, in the photo's own frame.
        h = best.homography if to_work is not None else self._refined(q, page, best)
        return self._page_match(page, h, q.scale, len(best.inlier_q), score)

    def _shared_mm(self, slot: int) -> np.ndarray:
        """(M, 2) page mm of the page's features that another page also has at the same place (rz.SHARED_*): a
        near twin among the rz.SHARED_KNN nearest indexed features, on another page, within rz.SHARED_MM. Looked up
        in the index when first needed (one search of the page's features), kept until a page is added or
        removed."""
        with self._shared_lock:
            hit = self._shared_cache.get(slot)
            if hit is not None:
                self._shared_cache.move_to_end(slot)
                return hit
        page = self._slots[slot]
        dist, ids = self._search(page.descriptors, self._index, rz.SHARED_KNN)
        ids = ids.astype(np.int64)
        other = ids >> FEATURE_BITS
        r, c = np.nonzero((ids >= 0) & (dist <= rz.SHARED_HAMMING) & (other != slot))
        mm = page.keypoints_mm()
        # Thousands of hits on thousands of pages: one pass over the hits, not one numpy call per page.
        twins = [self._slots[s] for s in other[r, c].tolist()]
        feats = (ids[r, c] & ((1 << FEATURE_BITS) - 1)).tolist()
        pos = _coords_mm(np.array([t.coords[f] for t, f in zip(twins, feats)], np.uint16).reshape(-1, 2),
                         np.array([(t.width_mm, t.height_mm) for t in twins], np.float64).reshape(-1, 2))
        shared = np.zeros(len(mm), bool)
        shared[r[np.linalg.norm(pos - mm[r], axis=1) <= rz.SHARED_MM]] = True
        out = mm[shared]
        with self._shared_lock:
            self._shared_cache[slot] = out
            while len(self._shared_cache) > SHARED_CACHE:
                self._shared_cache.popitem(last=False)
        return out

    @staticmethod
    def _refined(q: rz.QueryFeatures, page: _Page, v: rz.Verified) -> np.ndarray:
        """The accepted homography after the final look (rz.refine_homography), or as it was."""
        mm = page.keypoints_mm()
        refined = rz.refine_homography(q, v, page.descriptors, mm, page.width_mm, page.height_mm)
        return v.homography if refined is None else refined

    def _aimed_elsewhere(self, q: rz.QueryFeatures, v: rz.Verified, rest: list[int], votes: rz.Votes) -> list[int]:
        """Of the candidates ``rest`` not verified yet, the one (if any) that may be the page the reader aims at
        rather than v's, accepted off the frame centre: rz.LAYOUT_MIN or more of its index hits (votes.near) lie
        outside v's page, nearer the frame centre (median) than v's page is. A page accepted elsewhere is usually
        the only one in view, and such a candidate's hits are then few and scattered over the photo."""
        page = self._slots[v.slot]
        corners = rz.project(v.homography, rz.page_corners_mm(page.width_mm, page.height_mm))
        centre = np.array([q.size[0] / 2 - 0.5, q.size[1] / 2 - 0.5])
        off = -cv2.pointPolygonTest(corners.astype(np.float32).reshape(-1, 1, 2), tuple(centre), True)
        if off <= 0 or not rest:
            return []
        outside = ~rz.inside_convex(corners, q.xy, q.size)
        best, most = [], rz.LAYOUT_MIN - 1
        for slot in rest:
            rows = np.nonzero((votes.near == slot).any(axis=1) & outside)[0]
            if len(rows) > most and np.median(np.linalg.norm(q.xy[rows] - centre, axis=1)) < off:
                best, most = [slot], len(rows)
        return best

    def _aimed_first(self, verified: list[rz.Verified], size: tuple[int, int]) -> list[rz.Verified]:
        """Two catalog pages genuinely in one photo (strong, *disjoint* inlier sets, e.g. a page and a poster
        beside it): the reader aims at the one nearer the frame centre, so it goes first and the other is not
        its runner-up (they do not compete for the same photo features)."""
        if len(verified) < 2:
            return verified
        a, b = verified[0], verified[1]
        shared = len(np.intersect1d(a.inlier_q, b.inlier_q))
        strong = all(len(v.inlier_q) >= rz.MIN_INLIERS and v.distinct >= rz.MIN_DISTINCT for v in (a, b))
        if not strong or shared > rz.TWO_PAGES_MAX_SHARED * min(len(a.inlier_q), len(b.inlier_q)):
            return verified
        centre = np.array([size[0] / 2, size[1] / 2])

        def off_centre(v: rz.Verified) -> float:
            page = self._slots[v.slot]
            mid = rz.project(v.homography, np.array([[page.width_mm / 2, page.height_mm / 2]]))[0]
            return float(np.linalg.norm(mid - centre))

        first, second = sorted((a, b), key=off_centre)
        return [first] + verified[2:]

    def _match_rectified(self, q: rz.QueryFeatures, hint: rz.Verified, rivals: list[rz.Verified], exclusive
                         ) -> PageMatch | None:
        """The photo warped so the hint's page appears frontally, matched against that page and against the
        best rival page (the runner-up of the acceptance test) in the rectified frame."""
        page = self._slots[hint.slot]
        rect = rz.rectify(q, hint.homography, page.width_mm, page.height_mm)
        if rect is None:
            return None
        rq, to_rect = rect  # to_rect: working px -> rectified px
        others = [v.slot for v in rivals if v.slot != hint.slot][:1]
        to_work = np.linalg.inv(to_rect)
        match, verified = self._verify_and_decide(rq, [hint.slot] + others, exclusive, to_work)
        if match is None or match.page_id != page.page_id:
            return None
        # The accepted page's hypothesis maps page mm -> rectified px: back to working px, then original photo px.
        v = next(v for v in verified if v.slot == hint.slot)
        h_work = self._refined(q, page, dataclasses.replace(
            v, homography=to_work @ v.homography, fit_px=rz.project(to_work, v.fit_px)))
        return dataclasses.replace(self._page_match(page, h_work, q.scale, match.inliers, match.score),
                                   stage="rectified")

    @staticmethod
    def _page_match(page: _Page, h_work: np.ndarray, scale: float, inliers: int, score: float) -> PageMatch:
        # Back to original photo px (pixel-index coordinates): working + 0.5 = scale * (original + 0.5).
        shift = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])
        h = np.linalg.inv(shift) @ np.diag([1.0 / scale, 1.0 / scale, 1.0]) @ shift @ h_work
        h = h / h[2, 2]
        corners = rz.project(h, rz.page_corners_mm(page.width_mm, page.height_mm))
        return PageMatch(page.page_id, h, corners, int(inliers), float(score))

    # ---------------------------------------------------------------------------------------------- confusability
    def confusable_with(self, marker: PageMarker, top: int = 5) -> list[Confusion]:
        """Published pages sharing geometrically consistent content with ``marker``'s page (same masthead, ad,
        template), most confusable first. The page itself (same page_id) is ignored."""
        with self._lock.read():
            if not self._pages:
                return []
            dist, ids = self._search(marker.descriptors, self._index, rz.KNN)
            own = self._pages.get(marker.page_id)
            slots = np.where(ids >= 0, ids >> FEATURE_BITS, -1)
            ok = (ids >= 0) & (dist <= rz.MAX_HAMMING)
            if own is not None:
                ok &= slots != own.slot
            cand = np.bincount(slots[ok]) if ok.any() else np.zeros(0, np.int64)
            out: list[Confusion] = []
            for slot in np.argsort(-cand)[: max(top * 3, 10)]:
                if cand[slot] < rz.MIN_VOTES or self._slots[slot] is None:
                    continue
                page = self._slots[slot]
                mm = page.keypoints_mm()
                c = rz.page_correspondences(marker.descriptors, page.descriptors, mm)
                if len(c.q_idx) < rz.MIN_INLIERS:
                    continue
                order = np.argsort(c.ratio, kind="stable")
                src = marker.keypoints_mm[c.q_idx[order]].astype(np.float64)
                dst = mm[c.f_idx[order]]
                h, mask = cv2.findHomography(src, dst, cv2.USAC_PROSAC, 2.0, maxIters=rz.USAC_ITERS_ALL)
                if h is None or mask is None or mask.sum() < rz.MIN_INLIERS:
                    continue
                pts = src[mask.ravel().astype(bool)]
                x0, y0 = pts.min(axis=0)
                x1, y1 = pts.max(axis=0)
                out.append(Confusion(page.page_id, float(mask.sum()) / max(1, len(marker.keypoints_mm)),
                                     (float(x0), float(y0), float(x1 - x0), float(y1 - y0))))
            out.sort(key=lambda c: c.score, reverse=True)
            return out[:top]

    # ---------------------------------------------------------------------------------------------- persistence
    # File: MAGIC(4) | version u16 | header length u32 | header JSON | page coords (uint16) | page descriptors |
    # background distances of the indexed features (uint8) | faiss bytes | crc32; sections after the header are
    # each preceded by their byte length (u64).
    def save(self, path: str | os.PathLike) -> None:
        """Write the index atomically (temp file in the same directory, fsync, rename)."""
        path = Path(path)
        with self._lock.read():
            pages = [p for p in self._slots if p is not None]
            header = json.dumps({
                "pages": [{"page_id": p.page_id, "slot": p.slot, "width_mm": p.width_mm, "height_mm": p.height_mm,
                           "n": len(p.coords), "scopes": list(p.scopes)} for p in pages],
                "n_slots": len(self._slots), "trained_size": self._trained_size,
            }).encode()
            coords = b"".join(np.ascontiguousarray(p.coords, "<u2").tobytes() for p in pages)
            descs = b"".join(np.ascontiguousarray(p.descriptors, np.uint8).tobytes() for p in pages)
            back = b"".join(self._background[p.slot, :min(len(p.coords), INDEXED_FEATURES)].tobytes()
                            for p in pages)
            fbytes = faiss.serialize_index_binary(self._index).tobytes()
        body = b"".join([INDEX_MAGIC, struct.pack("<HI", INDEX_VERSION, len(header)), header,
                         struct.pack("<Q", len(coords)), coords, struct.pack("<Q", len(descs)), descs,
                         struct.pack("<Q", len(back)), back, struct.pack("<Q", len(fbytes)), fbytes])
        body += struct.pack("<I", zlib.crc32(body))
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(body)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @staticmethod
    def stored_version(path: str | os.PathLike) -> int:
        """Format version of an index file (any version), so a caller can rebuild one written by an older
        library from its page markers. IndexFormatError if it is not an index file."""
        with open(path, "rb") as fh:
            head = fh.read(10)
        if len(head) < 10 or head[:4] != INDEX_MAGIC:
            raise IndexFormatError(f"{path}: not a recognition index (first bytes {head[:4]!r}, "
                                   f"expected {INDEX_MAGIC!r})")
        return struct.unpack_from("<H", head, 4)[0]

    @staticmethod
    def stored_scopes(path: str | os.PathLike) -> dict[str, tuple[str, ...]]:
        """page id -> scopes recorded in an index file of any version (its header is the same in every
        version): what a rebuild from the page markers needs besides the markers."""
        data = Path(path).read_bytes()
        if len(data) < 10 or data[:4] != INDEX_MAGIC:
            raise IndexFormatError(f"{path}: not a recognition index")
        (hlen,) = struct.unpack_from("<I", data, 6)
        try:
            header = json.loads(data[10:10 + hlen])
            return {str(p["page_id"]): tuple(p["scopes"]) for p in header["pages"]}
        except (ValueError, KeyError, TypeError) as exc:
            raise IndexFormatError(f"{path}: corrupted recognition index header: {exc}") from exc

    @classmethod
    def load(cls, path: str | os.PathLike) -> "RecognitionIndex":
        """Read an index written by ``save``. IndexFormatError: not an index, wrong version, truncated/corrupt."""
        data = Path(path).read_bytes()
        if len(data) < 10 or data[:4] != INDEX_MAGIC:
            raise IndexFormatError(f"{path}: not a recognition index (first bytes {data[:4]!r}, "
                                   f"expected {INDEX_MAGIC!r})")
        version, hlen = struct.unpack_from("<HI", data, 4)
        if version != INDEX_VERSION:
            raise IndexFormatError(f"{path}: unsupported recognition index version {version} (this library reads "
                                   f"version {INDEX_VERSION}); rebuild the index from the page markers")
        if len(data) < 10 + hlen + 8 + 8 + 4:
            raise IndexFormatError(f"{path}: truncated recognition index ({len(data)} bytes)")
        if zlib.crc32(data[:-4]) != struct.unpack("<I", data[-4:])[0]:
            raise IndexFormatError(f"{path}: truncated or corrupted recognition index (checksum mismatch, "
                                   f"{len(data)} bytes)")
        try:
            header = json.loads(data[10:10 + hlen])
            off = 10 + hlen
            (clen,) = struct.unpack_from("<Q", data, off)
            off += 8
            coords = np.frombuffer(data, "<u2", count=clen // 2, offset=off)
            off += clen
            (dlen,) = struct.unpack_from("<Q", data, off)
            off += 8
            descs = np.frombuffer(data, np.uint8, count=dlen, offset=off).reshape(-1, DESCRIPTOR_BYTES)
            off += dlen
            (blen,) = struct.unpack_from("<Q", data, off)
            off += 8
            back = np.frombuffer(data, np.uint8, count=blen, offset=off)
            off += blen
            (flen,) = struct.unpack_from("<Q", data, off)
            off += 8
            index = faiss.deserialize_index_binary(np.frombuffer(data, np.uint8, count=flen, offset=off).copy())
        except (ValueError, KeyError, struct.error, RuntimeError) as exc:
            raise IndexFormatError(f"{path}: corrupted recognition index: {exc}") from exc
        self = cls()
        if isinstance(index, faiss.IndexBinaryIVF):
            index.nprobe = IVF_NPROBE
            try:
                _per_list_ready(index)
            except IndexFormatError as exc:
                raise IndexFormatError(f"{path}: {exc}") from exc
        self._index = index
        self._trained_size = int(header["trained_size"])
        self._slots = [None] * int(header["n_slots"])
        self._background = np.zeros((len(self._slots), INDEXED_FEATURES), np.uint8)
        pos = bpos = 0
        for rec in header["pages"]:
            n = int(rec["n"])
            page = _Page(rec["page_id"], int(rec["slot"]), float(rec["width_mm"]), float(rec["height_mm"]),
                         coords[pos:pos + 2 * n].reshape(n, 2).astype(np.uint16),
                         descs[pos // 2:pos // 2 + n].copy(), tuple(rec["scopes"]))
            pos += 2 * n
            k = min(n, INDEXED_FEATURES)
            if bpos + k > len(back):
                raise IndexFormatError(f"{path}: corrupted recognition index: background distances too short")
            self._background[page.slot, :k] = back[bpos:bpos + k]
            bpos += k
            self._slots[page.slot] = page
            self._pages[page.page_id] = page
        self._free = [i for i, p in enumerate(self._slots) if p is None]
        return self
