"""The recognition pipeline: one photo's way through the catalog, stage by stage.

    photo.query_features          ORB features of the photo
    for the scope (if any), then the whole catalog:
      1. catalog search            k nearest indexed features of each photo feature (Catalog._search)
         candidates.rank_candidates pages whose hits fit one layout, then soft votes
         verification.verify        each candidate matched exactly against all its features, homography by PROSAC
         acceptance.accept          margin over the runner-up, coverage, exclusive evidence (or body inliers)
      2. rectified pass            a weak but plausible hypothesis rectifies the photo; that page matched again
      3. closer look               looks.closer_look (enlarged photo + paper region), searched lightly, stricter rules
      4. tilted look (asked for)   looks.untilted in four directions, each searched lightly
    refinement.refine_homography  the final look at the accepted page (corner accuracy)

``Pipeline`` runs these for one catalog under its read lock; ``RecognitionIndex.recognize`` is the entry point.
"""
from __future__ import annotations

import dataclasses
from concurrent.futures import Future
from dataclasses import dataclass

import faiss
import numpy as np

from ..pixels import EDGE_TO_INDEX, INDEX_TO_EDGE
from ..workers import Workers, result_or_run
from .acceptance import (
    accept,
    accept_body,
    aimed_elsewhere,
    aimed_first,
    body_inliers,
    body_may_decide,
    cell_coverage,
    evidence,
)
from .candidates import rank_candidates
from .catalog import FEATURE_BITS, Catalog, PageEntry
from .geometry import page_corners_mm, project
from .looks import closer_look, rectify, untilted
from .params import RecognitionParams
from .photo import QueryFeatures
from .refinement import refine_homography
from .verification import Verified, page_correspondences, verify

_VERIFIER = Workers(1, "verify-page")  # candidate i + 1 verified here while the caller verifies candidate i
_CLOSER = Workers(1, "closer-look")  # the closer look's features computed ahead (params.closer_ahead)


@dataclass(frozen=True, eq=False)
class PageMatch:
    """A recognized page. homography : (3, 3) float64, page mm -> photo px; corners : (4, 2) float64 photo px of
    the page corners (tl, tr, br, bl); inliers : geometric inliers; score : confidence in (0, 1]."""
    page_id: str
    homography: np.ndarray
    corners: np.ndarray
    inliers: int
    score: float
    stage: str = "photo"  # which pass found it: photo, rectified, closer, tilted (diagnostics)


class CloserLook:
    """The closer look's features (``closer_look``), computed at most once: ahead on _CLOSER once started, else (or
    when that job is still queued behind other photos') on the calling thread when needed."""

    def __init__(self, q: QueryFeatures, p: RecognitionParams) -> None:
        self._q, self._p = q, p
        self._job: Future | None = None
        self._features: QueryFeatures | None = None

    def start(self) -> None:
        if self._p.closer_ahead and self._job is None and self._features is None:
            self._job = _CLOSER.submit(closer_look, self._q, self._p)

    def features(self) -> QueryFeatures:
        if self._features is None:
            job, self._job = self._job, None
            self._features = result_or_run(job, closer_look, self._q, self._p)
        return self._features

    def discard(self) -> None:
        """Not needed after all (a page was recognized): a job not started yet never runs."""
        if self._job is not None:
            self._job.cancel()


class Pipeline:
    """The stages for one catalog and one set of parameters. Call ``run`` under the catalog's read lock."""

    def __init__(self, cat: Catalog, p: RecognitionParams) -> None:
        self.cat, self.p = cat, p

    def run(self, q: QueryFeatures, scope: str | None, tilted: bool = False) -> PageMatch | None:
        """The page in the photo of features ``q``, or None (see ``RecognitionIndex.recognize``)."""
        closer = CloserLook(q, self.p)
        try:
            return self._recognize_locked(q, scope, closer, tilted)
        finally:
            closer.discard()

    def _recognize_locked(self, q: QueryFeatures, scope: str | None, closer: CloserLook, tilted: bool = False
                          ) -> PageMatch | None:
        if not self.cat._pages:
            return None
        searches: list[tuple[faiss.IndexBinary, np.ndarray | None]] = []
        if scope is not None:
            sub, slots = self.cat._scope_index(scope)
            if len(slots):
                searches.append((sub if sub is not None else self.cat._index, slots))
        searches.append((self.cat._index, None))
        # A scope is searched as taken and closer before the archive (a reader who scanned the edition's QR
        # most likely photographs one of its pages); the archive the same way after.
        for index, allowed in searches:
            match, hypotheses = self._recognize_in(q, index, allowed, no_layout=closer.start)
            if match is not None:
                return match
            # Then the closer look, with its own search — unless a plausible (if rejected) page already appears
            # large in the frame: a rejected non-catalog page (usually such a look-alike) then costs no second
            # search.
            if not any(self._apparent_height(v) > self.p.magnify_below_px for v in hypotheses
                       if len(v.inlier_q) >= self.p.magnify_skip_inliers):
                match, _ = self._recognize_in(closer.features(), index, allowed, thorough=False,
                                              nprobe=self.p.magnified_nprobe, candidates=self.p.closer_candidates)
                if match is not None:
                    return dataclasses.replace(match, stage="closer")
            if tilted:
                match = self._tilted_look(q, index, allowed)
                if match is not None:
                    return match
        return None

    def _tilted_look(self, q: QueryFeatures, index: faiss.IndexBinary, allowed: np.ndarray | None
                     ) -> PageMatch | None:
        """The photo un-tilted in each of params.tilt_directions (``untilted``), each copy searched on its own, lightly;
        the first page accepted with params.tilt_min_inliers."""
        for direction in self.p.tilt_directions:
            match, _ = self._recognize_in(untilted(q, direction, self.p), index, allowed, thorough=False,
                                          nprobe=self.p.tilt_nprobe, candidates=self.p.tilt_candidates)
            if match is not None and match.inliers >= self.p.tilt_min_inliers:
                return dataclasses.replace(match, stage="tilted")
        return None

    def _apparent_height(self, v: Verified) -> float:
        """Height of the hypothesised page in working px."""
        page = self.cat._slots[v.slot]
        c = project(v.homography, page_corners_mm(page.width_mm, page.height_mm))
        return float(max(np.linalg.norm(c[3] - c[0]), np.linalg.norm(c[2] - c[1])))

    def _recognize_in(self, q: QueryFeatures, index: faiss.IndexBinary, allowed: np.ndarray | None,
                      thorough: bool = True, no_layout=None, nprobe: int | None = None,
                      candidates: int | None = None) -> tuple[PageMatch | None, list[Verified]]:
        """One search and its decisions. Returns (match or None, the verified (rejected) hypotheses).
        thorough=False (the closer and tilted looks): no rectified pass, the closer look's acceptance. nprobe:
        inverted lists visited (None: the index's own); at most ``candidates`` pages verified (None:
        self.p.max_candidates). no_layout() is called when no page's hits fit one layout (the photo is then rarely
        recognized in this pass)."""
        dist, ids = self.cat._search(q.descriptors, index, self.p.knn, nprobe)
        candidates = self.p.max_candidates if candidates is None else candidates
        slots, votes = rank_candidates(q, dist, ids, self.cat._slots, self.cat._background, allowed, FEATURE_BITS,
                                       candidates, self.p, no_layout)

        def exclusive(v: Verified, to_work: np.ndarray | None = None) -> float:
            if to_work is None:  # verified on this very query: its inliers are these features
                return float(votes.weights(v.slot)[v.inlier_q].sum())
            return evidence(project(to_work, v.inlier_pts), q.xy, votes.weights(v.slot), self.p.dedup_px)

        def elsewhere(v: Verified, rest: list[int]) -> list[int]:
            return aimed_elsewhere(q.xy, q.size, v, self.cat._slots[v.slot], rest, votes, self.p)

        match, verified = self._verify_and_decide(q, slots, exclusive, closer=not thorough, elsewhere=elsewhere)
        if match is not None or not thorough:
            return match, verified
        # Pass 2: rectify the photo with the best weak hypotheses and match the same page again.
        for hint in verified[:self.p.rectify_candidates]:
            match = self._match_rectified(q, hint, verified, exclusive)
            if match is not None:
                return match, verified
        return None, verified


    def _verify_and_decide(self, q: QueryFeatures, slots: list[int], exclusive, to_work=None, closer=False,
                           elsewhere=None) -> tuple[PageMatch | None, list[Verified]]:
        """Verify candidates in the order given and decide as soon as a page is accepted against at least one
        verified rival (the runner-up of the votes is the likeliest look-alike): a recognized photo costs about
        two page matchings, not params.max_candidates. A page accepted away from the frame centre is held while the
        candidates elsewhere(accepted, unverified candidates) names are verified: another catalog page in view,
        nearer the centre, is the one aimed at (``acceptance.aimed_first``). Returns (match or None, verified pages, most
        inliers first)."""
        verified: list[Verified] = []
        ahead: dict[int, Future] = {}  # candidate i + 1, verified on the worker while this thread does candidate i
        held: tuple[Verified, float] | None = None  # accepted off the frame centre, while others are verified
        others: list[int] = []
        try:
            for i, slot in enumerate(slots):
                if self.p.verify_ahead and i not in ahead and i + 1 < len(slots):
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
            # Another catalog page in view nearer the centre (both strong, disjoint inliers: aimed_first) is the
            # one the reader aims at; when it is not accepted, the page accepted first still stands.
            again = self._accepted(q, verified, exclusive, to_work, closer)
            return self._match_of(q, *(held if again is None else again), to_work), verified
        finally:
            for f in ahead.values():  # a page verified ahead for nothing: done before the read lock is released
                if not f.cancel():
                    f.exception()

    def _verify_page(self, q: QueryFeatures, slot: int) -> Verified | None:
        """Exact matching of the photo's features against one page's own features, then homography
        verification."""
        page = self.cat._slots[slot]
        mm = page.keypoints_mm()
        c = page_correspondences(q.descriptors, page.descriptors, mm, self.p)
        return verify(slot, q.xy, mm[c.f_idx], c.q_idx, c.ratio, page.width_mm, page.height_mm, q.size, self.p)

    def _accepted(self, q: QueryFeatures, verified: list[Verified], exclusive, to_work=None, closer=False
                  ) -> tuple[Verified, float] | None:
        """Acceptance of the best verified page: (it, its score) or None. exclusive(v, to_work) -> evidence of v's
        inliers in the index votes; to_work maps this query's px to the searched photo's working px (rectified
        passes); closer: q is the closer look (its stricter acceptance)."""
        if not verified:
            return None
        verified = aimed_first(verified, q.size, self.cat._slots, self.p)
        best = verified[0]
        runner = verified[1] if len(verified) > 1 else None
        page = self.cat._slots[best.slot]
        cover = cell_coverage(best, q.xy, page.width_mm, page.height_mm, self.p)
        ok, score = accept(best, runner, cover, exclusive(best, to_work), self.p, second_look=to_work is not None,
                              closer=closer)
        if not ok and body_may_decide(best, runner, cover, self.p):
            ok = accept_body(best, runner, cover, body_inliers(best, self.cat._shared_mm(best.slot), self.p), self.p)
        return (best, score) if ok else None

    def _match_of(self, q: QueryFeatures, best: Verified, score: float, to_work=None) -> PageMatch:
        """The PageMatch of an accepted page (``_accepted``), its homography refined by the final look."""
        page = self.cat._slots[best.slot]
        # A second look inside a rectified pass is refined by the pass itself, in the photo's own frame.
        h = best.homography if to_work is not None else self._refined(q, page, best)
        return self._page_match(page, h, q.scale, len(best.inlier_q), score)


    def _refined(self, q: QueryFeatures, page: PageEntry, v: Verified) -> np.ndarray:
        """The accepted homography after the final look (``refine_homography``), or as it was."""
        mm = page.keypoints_mm()
        refined = refine_homography(q, v, page.descriptors, mm, page.width_mm, page.height_mm, self.p)
        return v.homography if refined is None else refined

    def _match_rectified(self, q: QueryFeatures, hint: Verified, rivals: list[Verified], exclusive
                         ) -> PageMatch | None:
        """The photo warped so the hint's page appears frontally, matched against that page and against the
        best rival page (the runner-up of the acceptance test) in the rectified frame."""
        page = self.cat._slots[hint.slot]
        rect = rectify(q, hint.homography, page.width_mm, page.height_mm, self.p)
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
            v, homography=to_work @ v.homography, fit_px=project(to_work, v.fit_px)))
        return dataclasses.replace(self._page_match(page, h_work, q.scale, match.inliers, match.score),
                                   stage="rectified")

    @staticmethod
    def _page_match(page: PageEntry, h_work: np.ndarray, scale: float, inliers: int, score: float) -> PageMatch:
        # Back to original photo px (pixel-index coordinates, markers.pixels): working + 0.5 = scale * (original + 0.5).
        h = EDGE_TO_INDEX @ np.diag([1.0 / scale, 1.0 / scale, 1.0]) @ INDEX_TO_EDGE @ h_work
        h = h / h[2, 2]
        corners = project(h, page_corners_mm(page.width_mm, page.height_mm))
        return PageMatch(page.page_id, h, corners, int(inliers), float(score))
