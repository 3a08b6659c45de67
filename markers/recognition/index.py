"""The recognition index: the catalog (``Catalog``: pages' features in FAISS, add and remove, scopes) with
``recognize`` (photo -> ``PageMatch`` or ``None``, by ``Pipeline``), confusability and a versioned file format
(``persistence``)."""
from __future__ import annotations

import os
from dataclasses import dataclass

import cv2
import numpy as np

from ..features import PageMarker
from . import persistence
from .catalog import FEATURE_BITS, Catalog
from .params import DEFAULT_PARAMS, RecognitionParams
from .photo import Photo, query_features
from .pipeline import PageMatch, Pipeline
from .verification import page_correspondences


@dataclass(frozen=True)
class Confusion:
    """A published page that a page could be mistaken for. score : shared-geometry inliers / features of the
    page (0..1); region : (x_mm, y_mm, width_mm, height_mm) on the *queried* page of what is shared."""
    page_id: str
    score: float
    region: tuple[float, float, float, float]


class RecognitionIndex(Catalog):
    """Catalog of page markers for recognition. Thread-safe: concurrent ``recognize`` calls share a read lock;
    ``add``/``remove`` take the write lock. params: the recognition tunables (RecognitionParams) every call uses."""

    def __init__(self, params: RecognitionParams = DEFAULT_PARAMS) -> None:
        super().__init__(params)

    def recognize(self, image: np.ndarray | bytes | Photo, scope: str | None = None, tilted: bool = False
                  ) -> PageMatch | None:
        """Recognize the page in a photo. image: BGR/grey uint8 array, JPEG/PNG bytes or decode_photo's result
        (EXIF orientation honoured; PageMatch in the upright photo's px). scope: e.g. "edition:12" — searched
        first; the whole archive is searched if it finds nothing. Returns None when no page is recognized with
        confidence.

        One index search ranks candidate pages (pages whose hits fit one affine layout first, then soft votes);
        candidates are matched exactly against all their
        features and verified by a homography, best first, until one is accepted. Without an accepted page:
        (2) the photo rectified with a weak but plausible homography (the page seen frontally at a catalog
        scale) is matched against that page again (no second search); (3) a closer look (looks.closer_look: the photo
        enlarged params.magnify times, for pages small in the frame, and the paper region at a middle catalog scale) is
        searched, more lightly, and its pages must pass stricter acceptance (params.closer_*); (4) with ``tilted``, the
        tilted look (params.tilt*: the photo un-tilted in four directions, each searched lightly; ~+125 ms for a photo
        with no page at 10,000 pages) — for a caller that can wait, e.g. a still photo. ``PageMatch.stage`` says
        which pass found the page."""
        p = self.params
        q = query_features(image, p)
        if len(q.xy) < p.min_inliers:
            return None
        with self._lock.read():
            return Pipeline(self, p).run(q, scope, tilted)

    def confusable_with(self, marker: PageMarker, top: int = 5) -> list[Confusion]:
        """Published pages sharing geometrically consistent content with ``marker``'s page (same masthead, ad,
        template), most confusable first. The page itself (same page_id) is ignored."""
        with self._lock.read():
            if not self._pages:
                return []
            dist, ids = self._search(marker.descriptors, self._index, self.params.knn)
            own = self._pages.get(marker.page_id)
            slots = np.where(ids >= 0, ids >> FEATURE_BITS, -1)
            ok = (ids >= 0) & (dist <= self.params.max_hamming)
            if own is not None:
                ok &= slots != own.slot
            cand = np.bincount(slots[ok]) if ok.any() else np.zeros(0, np.int64)
            out: list[Confusion] = []
            for slot in np.argsort(-cand)[: max(top * 3, 10)]:
                if cand[slot] < self.params.min_votes or self._slots[slot] is None:
                    continue
                page = self._slots[slot]
                mm = page.keypoints_mm()
                c = page_correspondences(marker.descriptors, page.descriptors, mm, self.params)
                if len(c.q_idx) < self.params.min_inliers:
                    continue
                order = np.argsort(c.ratio, kind="stable")
                src = marker.keypoints_mm[c.q_idx[order]].astype(np.float64)
                dst = mm[c.f_idx[order]]
                h, mask = cv2.findHomography(src, dst, cv2.USAC_PROSAC, 2.0, maxIters=self.params.usac_iters_all)
                if h is None or mask is None or mask.sum() < self.params.min_inliers:
                    continue
                pts = src[mask.ravel().astype(bool)]
                x0, y0 = pts.min(axis=0)
                x1, y1 = pts.max(axis=0)
                out.append(Confusion(page.page_id, float(mask.sum()) / max(1, len(marker.keypoints_mm)),
                                     (float(x0), float(y0), float(x1 - x0), float(y1 - y0))))
            out.sort(key=lambda c: c.score, reverse=True)
            return out[:top]

    # ---------------------------------------------------------------------------------------------- persistence
    def save(self, path: str | os.PathLike) -> None:
        """Write the index atomically (temp file in the same directory, fsync, rename): persistence.save."""
        with self._lock.read():
            persistence.save(self, path)

    stored_version = staticmethod(persistence.stored_version)
    stored_scopes = staticmethod(persistence.stored_scopes)

    @classmethod
    def load(cls, path: str | os.PathLike, params: RecognitionParams = DEFAULT_PARAMS, mapped: bool = True
             ) -> "RecognitionIndex":
        """Read an index written by ``save``: its arrays mapped from the file, shared with every other process that
        loads the same file (mapped=False: read into this process's memory). The file must not be rewritten in
        place while loaded (published indexes are content-named and replaced by rename). IndexFormatError: not an
        index, wrong version, truncated/corrupt."""
        self = cls(params)
        persistence.load_into(self, path, mapped)
        return self
