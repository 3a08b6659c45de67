"""The catalog half of recognition: every published page's features in one FAISS binary index, incremental add
and remove, scoped sub-indexes, and what a page shares with the others.

Memory layout: per page, every feature's 32-byte ORB descriptor and its keypoint as two uint16 (page position in
1/65535 of the page size, i.e. < 0.01 mm on a 420 mm page), for exact matching and geometric verification; in
FAISS (an exact ``IndexBinaryFlat`` while the catalog is small, an ``IndexBinaryIVF`` once it passes
``params.ivf_min_features``), the descriptor and 8-byte id of only the first ``INDEXED_FEATURES`` of each page, which
rank candidate pages, and beside them each indexed feature's distance to generic photo content (markers.background,
one byte). Feature ids encode ``slot << FEATURE_BITS | feature index``; a slot is a page's place in ``_slots``.
"""
from __future__ import annotations

import os

# OpenMP threads that spin while waiting make FAISS 10-50x slower on a loaded machine (a web server shares its
# cores); passive waiting costs nothing measurable when idle. Only effective before the OpenMP runtime starts.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import threading  # noqa: E402
from collections import OrderedDict  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import faiss  # noqa: E402
import numpy as np  # noqa: E402

from ..background import background_distance  # noqa: E402
from ..errors import IndexFormatError  # noqa: E402
from ..features import DESCRIPTOR_BYTES, PageMarker  # noqa: E402
from ..workers import Workers, one_faiss_thread, result_or_run  # noqa: E402
from .params import DEFAULT_PARAMS, RecognitionParams  # noqa: E402

FEATURE_BITS = 12  # up to 4096 features per page (train_page keeps ~830)
MAX_PAGE_FEATURES = 1 << FEATURE_BITS
# Two stages: FAISS holds only each page's first INDEXED_FEATURES features (markers list the most repeatable
# first) and ranks candidate pages by votes; each candidate is then matched exactly against *all* its features
# (kept per page). At 10,000 pages the votes still put the right page first for ~9 photos in 10, but its
# correspondences among the k nearest of 8 million features halve (tuning photos): matching the page itself
# gives back the full set, and a smaller FAISS index is also faster to search.
INDEXED_FEATURES = 260
_SEARCHER = Workers(1, "index-search")


def search_one_thread(index: faiss.IndexBinary, desc: np.ndarray, k: int, nprobe: int | None
                      ) -> tuple[np.ndarray, np.ndarray]:
    with one_faiss_thread():
        if isinstance(index, faiss.IndexBinaryIVF):
            return search_ivf(index, np.ascontiguousarray(desc, np.uint8), k, nprobe)
        return index.search(np.ascontiguousarray(desc), k)


def search_ivf(index: faiss.IndexBinaryIVF, desc: np.ndarray, k: int, nprobe: int | None
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


def per_list_ready(index: faiss.IndexBinary) -> None:
    """Check an IVF index has _search_ivf's extra empty list (IndexFormatError otherwise) and select FAISS's
    per-list search (a FAISS field, not stored in the index file). Only _search_ivf may search it then."""
    if not isinstance(index, faiss.IndexBinaryIVF):
        return
    if index.nlist != index.quantizer.ntotal + 1 or index.invlists.list_size(index.nlist - 1) != 0:
        raise IndexFormatError(f"an IVF index needs one empty inverted list more than its {index.quantizer.ntotal} "
                               f"centroids (it has {index.nlist} lists)")
    index.per_invlist_search = True


def _faiss_single_threaded_after_fork() -> None:
    """GNU OpenMP's thread team of the thread that forks survives in the child without its threads: FAISS on that
    thread would wait forever, so there it runs single-threaded (threads started later get their own teams)."""
    faiss.omp_set_num_threads(1)


os.register_at_fork(after_in_child=_faiss_single_threaded_after_fork)
SCOPE_CACHE = 16  # scoped sub-indexes kept (one per edition or publication recently asked for)
SHARED_CACHE = 256  # pages whose shared features (_shared_mm) are kept; any add or remove clears them
COORD_MAX = 65535  # uint16 page coordinates


def coords_mm(coords: np.ndarray, size_mm: np.ndarray) -> np.ndarray:
    """Page mm of uint16 page coordinates (N, 2); size_mm: (2,) the page's (width, height), or (N, 2) per row."""
    return coords.astype(np.float64) / COORD_MAX * size_mm



@dataclass
class PageEntry:
    page_id: str
    slot: int
    width_mm: float
    height_mm: float
    coords: np.ndarray  # (N, 2) uint16, page position in units of size / 65535
    descriptors: np.ndarray  # (N, 32) uint8: all features of the page, for exact matching of candidates
    scopes: tuple[str, ...]

    def keypoints_mm(self, feat: np.ndarray | None = None) -> np.ndarray:
        """Page mm of the features ``feat`` (all of them by default)."""
        return coords_mm(self.coords if feat is None else self.coords[feat], np.array([self.width_mm, self.height_mm]))


class RWLock:
    """Many concurrent readers (recognize) or one writer (add/remove/save)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False

    def read(self) -> "Guard":
        return Guard(self, False)

    def write(self) -> "Guard":
        return Guard(self, True)


class Guard:
    def __init__(self, lock: RWLock, write: bool) -> None:
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


def all_codes(index: faiss.IndexBinary) -> tuple[np.ndarray, np.ndarray]:
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


def _new_ivf(codes: np.ndarray, params: RecognitionParams, seed: int = 1234) -> faiss.IndexBinaryIVF:
    """IVF index with a coarse quantizer trained on (a sample of) ``codes``."""
    nlist = int(np.clip(params.ivf_list_factor * np.sqrt(len(codes)), 16, 65536))
    quantizer = faiss.IndexBinaryFlat(DESCRIPTOR_BYTES * 8)
    ivf = faiss.IndexBinaryIVF(quantizer, DESCRIPTOR_BYTES * 8, nlist)
    ivf.own_fields = True
    quantizer.this.disown()
    ivf.cp.niter = params.ivf_train_iters
    ivf.cp.seed = seed
    ivf.cp.max_points_per_centroid = params.ivf_train_points_per_list
    ivf.cp.min_points_per_centroid = 4  # a deliberately small sample (speed); silences the FAISS warning
    rng = np.random.default_rng(seed)
    sample = codes[rng.choice(len(codes), min(len(codes), nlist * params.ivf_train_points_per_list), replace=False)]
    ivf.train(np.ascontiguousarray(sample))
    ivf.nprobe = params.ivf_nprobe
    # One inverted list more than centroids: no feature is ever assigned to it (_search_ivf's padding probes it).
    lists = faiss.ArrayInvertedLists(nlist + 1, DESCRIPTOR_BYTES)
    ivf.nlist = nlist + 1
    ivf.replace_invlists(lists, True)
    lists.this.disown()
    per_list_ready(ivf)
    return ivf


def build_index(codes: np.ndarray, ids: np.ndarray, params: RecognitionParams, min_ivf: int | None = None
                ) -> faiss.IndexBinary:
    """Exact index for few codes (< min_ivf, default params.ivf_min_features), IVF otherwise, holding ``codes``."""
    index = _new_flat() if len(codes) < (params.ivf_min_features if min_ivf is None else min_ivf) \
        else _new_ivf(codes, params)
    if len(codes):
        index.add_with_ids(codes, ids)
    return index


class Catalog:
    """The published pages' features, searchable (the storage half of ``RecognitionIndex``). Thread-safe:
    concurrent searches share a read lock; ``add``/``remove`` take the write lock."""

    def __init__(self, params: RecognitionParams = DEFAULT_PARAMS) -> None:
        self.params = params
        self._lock = RWLock()
        self._pages: dict[str, PageEntry] = {}
        self._slots: list[PageEntry | None] = []
        self._free: list[int] = []
        # (slots, INDEXED_FEATURES) uint8: background distance of each indexed feature (0 = never counts)
        self._background = np.zeros((0, INDEXED_FEATURES), np.uint8)
        self._index: faiss.IndexBinary = _new_flat()
        self._trained_size = 0  # feature count the IVF was trained at (0: flat)
        # A loaded index's FAISS codes are read in place from the mapped file (persistence.load_into): the mapping
        # stays alive with them, and the first change copies the index into this process (_own_index_locked).
        self._mapping: np.ndarray | None = None
        self._index_mapped = False
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
            page = PageEntry(marker.page_id, slot, marker.width_mm, marker.height_mm,
                         np.round(rel * COORD_MAX).astype(np.uint16), desc, tuple(str(s) for s in scopes))
            if slot == len(self._slots):
                self._slots.append(page)
            else:
                self._slots[slot] = page
            self._pages[marker.page_id] = page
            ids = (np.int64(slot) << FEATURE_BITS) | np.arange(k, dtype=np.int64)
            self._set_background_locked(slot, background)
            self._own_index_locked()
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
        self._own_index_locked()
        self._index.remove_ids(faiss.IDSelectorRange(lo, lo + MAX_PAGE_FEATURES))
        self._slots[page.slot] = None
        self._background[page.slot] = 0
        self._free.append(page.slot)
        self._invalidate_scopes(page.scopes)
        self._forget_shared()

    def _own_index_locked(self) -> None:
        """Before a change: a FAISS index that views the mapped file (FAISS aborts the process on a change to a
        viewed list) is replaced by a copy of its own."""
        if not self._index_mapped:
            return
        index = faiss.deserialize_index_binary(faiss.serialize_index_binary(self._index))
        if isinstance(index, faiss.IndexBinaryIVF):
            index.nprobe = self._index.nprobe
            per_list_ready(index)
        self._index, self._index_mapped = index, False

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
        if n < self.params.ivf_min_features or (self._trained_size and n < self.params.ivf_retrain_growth * self._trained_size):
            return
        codes, ids = all_codes(self._index)
        self._index, self._trained_size = build_index(codes, ids, self.params), n
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
        codes, ids = all_codes(self._index)
        keep = np.isin(ids >> FEATURE_BITS, slots)
        sub = build_index(np.ascontiguousarray(codes[keep]), ids[keep], self.params,
                          self.params.scope_ivf_min_features)
        with self._scope_lock:
            self._scope_cache[scope] = (sub, slots)
            while len(self._scope_cache) > SCOPE_CACHE:
                self._scope_cache.popitem(last=False)
        return sub, slots

    def _search(self, desc: np.ndarray, index: faiss.IndexBinary, k: int, nprobe: int | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """k nearest indexed features of each descriptor: (distances, ids). params.search_split: the descriptors' second
        half is searched on _SEARCHER meanwhile, each half on one OpenMP thread."""
        if index.ntotal == 0 or len(desc) == 0:
            return np.zeros((len(desc), k), np.int32), np.full((len(desc), k), -1, np.int64)
        if not self.params.search_split or len(desc) < self.params.search_split_min:
            return search_one_thread(index, desc, k, nprobe)
        mid = len(desc) // 2
        job = _SEARCHER.submit(search_one_thread, index, desc[mid:], k, nprobe)
        d1, i1 = search_one_thread(index, desc[:mid], k, nprobe)
        d2, i2 = result_or_run(job, search_one_thread, index, desc[mid:], k, nprobe)
        return np.vstack([d1, d2]), np.vstack([i1, i2])

    def _shared_mm(self, slot: int) -> np.ndarray:
        """(M, 2) page mm of the page's features that another page also has at the same place (params.shared_*): a
        near twin among the params.shared_knn nearest indexed features, on another page, within params.shared_mm. Looked up
        in the index when first needed (one search of the page's features), kept until a page is added or
        removed."""
        with self._shared_lock:
            hit = self._shared_cache.get(slot)
            if hit is not None:
                self._shared_cache.move_to_end(slot)
                return hit
        page = self._slots[slot]
        dist, ids = self._search(page.descriptors, self._index, self.params.shared_knn)
        ids = ids.astype(np.int64)
        other = ids >> FEATURE_BITS
        r, c = np.nonzero((ids >= 0) & (dist <= self.params.shared_hamming) & (other != slot))
        mm = page.keypoints_mm()
        # Thousands of hits on thousands of pages: one pass over the hits, not one numpy call per page.
        twins = [self._slots[s] for s in other[r, c].tolist()]
        feats = (ids[r, c] & ((1 << FEATURE_BITS) - 1)).tolist()
        pos = coords_mm(np.array([t.coords[f] for t, f in zip(twins, feats)], np.uint16).reshape(-1, 2),
                         np.array([(t.width_mm, t.height_mm) for t in twins], np.float64).reshape(-1, 2))
        shared = np.zeros(len(mm), bool)
        shared[r[np.linalg.norm(pos - mm[r], axis=1) <= self.params.shared_mm]] = True
        out = mm[shared]
        with self._shared_lock:
            self._shared_cache[slot] = out
            while len(self._shared_cache) > SHARED_CACHE:
                self._shared_cache.popitem(last=False)
        return out
