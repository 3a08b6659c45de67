"""Recognition stages used by ``RecognitionIndex.recognize``: photo decoding, query features, soft votes over the
index's nearest neighbours, exact matching of one candidate page, geometric verification and acceptance.

Why each stage (numbers from tuning photos, seeds 500,000+, and bench/bench_recognition.py):
- the index search only *ranks* pages: each photo feature shares one vote among the pages whose neighbour is
  about as close as its nearest, so features shared by many pages (mastheads, repeated ads, common glyphs) count
  little without a stop list; at 10,000 pages a hard ratio test left the right page 0-6 votes;
- votes still drown a page small or tilted in the photo (5-12 hits among 10,000 pages' random ones): the pages
  with the most hits are also checked for hits that one affine map of the page explains, and such pages are
  verified first;
- the best candidates are matched exactly against *all* their features (the index holds only a prefix of each
  page): among the k nearest of millions of features the right page's correspondences halve at 10,000 pages;
  PROSAC over all matches sorted by their within-page ratio finds the homography even at ~10 % inliers;
- acceptance needs the inliers to be exclusive to the best page (margin over the runner-up), to cover the
  page's textured cells and to carry exclusive evidence in the votes (or cover nearly all of them, or lie in
  good number away from what the page prints in common with other pages), which rejects a non-catalog page
  sharing only a masthead or an ad with catalog pages;
- a weak but plausible homography rectifies the photo for a second matching of the same page, and a photo with
  no accepted page is searched once more with a closer look: the photo enlarged (pages under ~250 px tall in the
  frame) together with the paper in it (the largest bright, nearly colourless region) brought to a middle catalog
  scale; when asked for, the tilted look searches the photo un-tilted in four directions (a page tilted 40-55 deg
  is otherwise rarely a candidate among thousands of pages).
"""
from __future__ import annotations

import io
import threading
from dataclasses import dataclass

import cv2
import faiss
import numpy as np
from PIL import Image, ImageOps

from .errors import ImageTooLargeError, InvalidImageError
from .features import as_gray, detect_orb, resize_long_side
from .workers import Workers, one_faiss_thread

QUERY_MAX_SIDE = 1280  # larger photos are shrunk first: a page at 1280 px still has 4x margin over the catalog
QUERY_FEATURES = 1500  # features per photo: recall on small pages vs. search time (bench)
# Searching only the first 1,100 (spread over the photo) and verifying with all 1,500, in the first pass: interleaved
# A/B at 10,000 pages (600 tuning and 200 non-catalog photos), p50 54.6 -> 49.1 ms, p95 124.5 -> 114.2 ms, but 551
# instead of 553 found. Not taken.
QUERY_FAST_THRESHOLD = 10  # phone photos are blurred/compressed: a lower FAST threshold keeps small pages alive
# Photo features are spread over a 2 x 2 raster, not the catalog's 8 x 8: a page small in the frame holds a few
# of 64 cells, and an even spread gave the textured but blurred background as many features as the page.
# Tuning photos (seeds 500,000+): right pages 95 / 93.5 / 90 % -> 96 / 94.5 / 91 % at 100 / 1,000 / 10,000 pages,
# found by the first search 162 -> 173 of 200 at 10,000 (fewer need the enlarged pass); 4 x 4 found as many
# right pages but accepted more non-catalog ones at 1,000 pages, no raster (strongest features) more at both.
QUERY_SPREAD_GRID = 2
# Neighbours per query feature in the index search (soft votes; 20 ranked no better at 3,000 pages). 16 found 558
# instead of 553 of 600 tuning photos at 10,000 pages, but not in the held-out bench (96.3 / 95.0 / 89.7 % ->
# 96.0 / 94.3 / 90.0 % at 100 / 1,000 / 10,000 pages; p95 121 -> 129 ms at 10,000): kept at 10.
KNN = 10
MAX_HAMMING = 64  # of 256 bits; beyond this ORB matches are mostly chance
SOFT_RATIO = 0.9  # soft votes: neighbours within d1 / SOFT_RATIO share the feature's vote
MIN_VOTES = 5  # confusability: a published page needs this many matches to be checked
MIN_SCORE = 2.0  # soft votes a candidate page needs to be verified
# At most this many pages are verified per photo and pass. Tuning photos (200 of catalog pages, 200 non-catalog):
# 5 finds as many right pages as 8 at 100, 1,000 and 10,000 pages (4 and 3 lose 1 and 7 at 100 pages), and a photo
# with no page, which verifies every candidate of every pass, costs less (p95 at 10,000 pages 175 -> 149 ms).
MAX_CANDIDATES = 5
RANSAC_PX = 5.0  # USAC inlier threshold in photo px (photos at <= 1280 px)
# Tighter threshold of the least-squares refinement (corner accuracy; tuning photos at 100 pages: median corner
# error 1.72 px at 3.0, 1.57 at 2.0, 1.59 at 1.5).
REFINE_PX = 2.0
USAC_ITERS_ALL = 2000  # PROSAC over all nearest-neighbour matches of a candidate page
MIN_INLIERS = 12  # below this a homography from ORB matches is not trustworthy
MIN_HINT_INLIERS = 8  # a weaker homography is still good enough to rectify the photo for a second pass
RECTIFY_CANDIDATES = 1  # weak hypotheses tried in the rectified second pass (2 found no more of 200 tuning photos)
RECTIFY_UPSCALE = 1.5  # rectified page long side = 1.5 x its apparent size in the photo ...
RECTIFY_MIN_SIDE, RECTIFY_MAX_SIDE = 320, 1100  # ... within the span of the catalog scales
RECTIFY_FEATURES = 1000
# Final look at an accepted page (corner accuracy): the photo rectified with the accepted homography at the page's
# apparent size, matched against the page again, and the homography refitted on the matches that agree with it
# together with its own fit points. Seen frontally the page's features match their catalog twins far more often
# than under tilt. Tuning photos at 100 pages (288 recognized): median corner error 1.78 -> 1.31 px (pages < 250 px
# tall 2.68 -> 1.59), ~7 ms per recognized photo. Refitted on the rectified matches alone: 1.43 (and worse than
# before on some whole pages); with that refit, on 150 photos, rectified at 1.5x / 2.5x the apparent size 1.36 /
# 1.56 vs 1.31 at 1x, and on 300, at >= 200 px instead of RECTIFY_MIN_SIDE 1.49. 500 / 700 features: 1.36 / 1.35.
FINAL_LOOK_UPSCALE = 1.0
FINAL_LOOK_FEATURES = 1000
FINAL_LOOK_MAX_SIDE = 600.0  # px: 1,100 (as the rectified pass) gave the same median (1.31 px), -0.4 ms
FINAL_LOOK_PX = (3.0, 1.5)  # photo px: matches re-collected within 3, least squares on those within 1.5
FINAL_LOOK_MIN_INLIERS = 20  # fewer agreeing matches: the accepted homography is kept
FINAL_LOOK_MAX_SHIFT = 0.1  # a refit moving a corner by more than this x the page's apparent size is refused
# Last pass, the closer look: the photo enlarged, for pages small in the frame, together with the paper region
# (below). On the 22 tuning photos (1,000 pages) none of whose hypotheses was the right page, the right page
# verified with >= 20 inliers in 19 enlarged 1.5x with 2000 features, 16 enlarged 2x with 3000 (4x the pixels), 0 as
# taken.
MAGNIFY = 1.5
# 1,000 enlarged features beside the paper region's 800 (2,000 alone before it): tuning photos at 10,000 pages,
# 275 vs 276 of 300 found with 2,000, non-catalog photos p95 116 vs 132 ms (every pass run). Not enlarging the photo
# when its paper region is 400 px or taller (the page is then not small; only the paper's features searched):
# interleaved A/B at 10,000 pages, 600 tuning and 200 non-catalog photos, p95 113 -> 98 ms, non-catalog p50 96 -> 84
# ms, but 545 instead of 553 found: 16 of the 27 pages the closer look finds have such a paper region (10 of them
# over 690 px tall, filling the frame), and without the enlarged features 8 fewer were found.
MAGNIFIED_FEATURES = 1000
# The paper: newsprint is bright and nearly colourless, so the largest such region of a colour photo (OpenCV HSV:
# saturation < PAPER_MAX_SATURATION, value > PAPER_MIN_VALUE, closed and opened, >= PAPER_MIN_AREA px filling
# >= PAPER_MIN_FILL of its bounding box) is most likely the page. Its box, PAPER_MARGIN wider on every side, is
# resized to PAPER_LONG_SIDE px and gets PAPER_FEATURES features of its own: the photo's features are no longer
# spent on a busy background, and the page comes to a middle catalog scale (the scales the index's prefix of every
# marker holds most of), enlarged when small and shrunk when it fills the frame. Tuning photos (seeds 500,000+):
# the box holds half the page or more in 91 % of 300 (79 % of pages under 300 px tall). Searched alone after the
# first pass failed, at 10,000 pages it found 8 of the 29 missed pages (brought to 450 px; 350 / 550 px: 7 / 5; the
# region enlarged 1.5x / 2x instead: 4 / 2); searched with the enlarged features in one search (the votes add up),
# 544 instead of 534 of 600 found, then 543 with the closer look's acceptance (CLOSER_*).
PAPER_MAX_SATURATION = 70
PAPER_MIN_VALUE = 100
PAPER_MIN_AREA = 800  # working px (a page 150 px tall in the frame covers ~10,000)
PAPER_MIN_FILL = 0.35
PAPER_CLOSE_PX, PAPER_OPEN_PX = 7, 5  # closing fills the text and photos of the page; opening drops thin streaks
PAPER_MARGIN = 0.15
PAPER_LONG_SIDE = 450
PAPER_FEATURES = 800
# The enlarged look is lighter (tuning photos at 10,000 pages: 180 of 200 right vs 181 with the full first-pass
# settings, p95 of the mixed set 379 -> 336 ms): half the inverted lists, no rectified pass.
MAGNIFIED_NPROBE = 4
# Pages verified in the closer look. 3 instead of 5, interleaved A/B at 10,000 pages (600 tuning and 200 non-catalog
# tuning photos): non-catalog photos p50 103 -> 98 ms, p95 of all 122 -> 116 ms, but 551 instead of 553 found (the
# closer look accepted 3 of its 27 right pages at the 3rd-5th candidate, pages its votes alone ranked there).
CLOSER_CANDIDATES = 5
MAGNIFY_BELOW_PX = 320  # skip the enlarged pass when a verified hypothesis shows a page taller than this ...
# ... with this many inliers (wrong pages reach 12-14 by chance at 10,000 pages). With 14 the enlarged search ran
# for 61 instead of 73 % of non-catalog photos (mean -8 ms at 10,000 pages), but 14 to 19 lost 1 of 600 tuning
# photos' right pages there (a wrong page with 17-19 inliers appearing large).
MAGNIFY_SKIP_INLIERS = 20
# The tilted look (asked for: RecognitionIndex.recognize(..., tilted=True)), after every other pass: the photo
# un-tilted in TILT_DIRECTIONS, each copy searched on its own. A page tilted 40-55 deg leaves ORB descriptors ~52 bits
# from its catalog features, beyond the ~42 of the 10th nearest among 10,000 pages' features, so the page never
# becomes a candidate (though matching it exactly finds 50-170 inliers); seen through the right un-tilted copy it
# does. Query-side affine simulation (ASIFT's tilts t = 1.7 at 4 directions, 45 deg apart: 180 deg / (72 / 1.7 deg)
# ~ 4): tuning photos at 10,000 pages (seeds 500,000+), whole recognitions of the 4 copies found 20 of the 47 pages
# missed, 28 with the true homography's rectification; catalog features from tilted copies instead found fewer
# (1,000 pages: 552 vs 565 of 600), and the paper outline gave a usable quad for 29 of the 47 and found 8.
# Each copy: stretched TILT ** (1 - TILT_SQUEEZE) along the direction and shrunk TILT ** -TILT_SQUEEZE across (its
# ORB costs what the photo's does; stretched only: 16 of 47 instead of 15, ~+20 ms); TILT_FEATURES features (800 /
# 500: 8 / 5 of 47); the 4 copies searched as one query found 13. Searched lightly (TILT_NPROBE lists,
# TILT_CANDIDATES pages verified, the closer look's acceptance), 568 instead of 553 of 600 were found at 10,000
# pages, 574 vs 567 at 1,000, 579 vs 576 at 100, at ~+125 ms for a photo with no page (every pass run; p95 of 600
# tuning and 550 non-catalog photos 113 -> 237 ms at 10,000 pages): it is asked for, not run on every photo (the
# viewer asks for it now and then while nothing is recognized, and for a still photo). Four tries, so a page needs
# TILT_MIN_INLIERS too: the 2 non-catalog photos of 3 x 1,600 it accepted under the closer look's rules had 36 and
# 45 inliers, the right pages it found 47-169 (one of 15 at 10,000 pages below 50). With it: 567 / 573 / 579 found,
# non-catalog photos accepted 0 / 4 / 8 of 1,600 as without the tilted look, 0 wrong.
# Other tilts, on the 47 tuning photos the plain passes miss at 10,000 pages (seeds 500,000+): t = 1.45 / 1.55 / 2.0
# found 12 / 11 / 4 of them, 1.7 found 14 (none of 299 non-catalog photos accepted with any). One copy along each
# photo's true direction of tilt (from its ground truth) found 14 with t = 1.7 and 17 with its true t: picking the
# direction from the photo could save three of the four searches, but finds no more pages.
TILT = 1.7
TILT_DIRECTIONS = (0.0, 45.0, 90.0, 135.0)  # degrees, image x axis towards y
TILT_SQUEEZE = 0.5
TILT_FEATURES = 1500
TILT_NPROBE = 2
TILT_CANDIDATES = 2
DEDUP_PX = 3.0  # inliers closer than this in the photo count once
DISTINCT_RATIO = 0.8  # an inlier is *distinctive* when its match beats the page's next point by this ratio
MARGIN = 1.5  # exclusive inliers of the best page >= MARGIN x the runner-up's (RESEARCH.md: 1.5 kept FPs near 0)
# ... and MARGIN_PARTIAL x when its inliers cover less than PARTIAL_COVERAGE of the page's textured cells: a
# non-catalog page sharing a masthead with a few catalog pages leaves its runner-up (another page with that
# masthead) a third to a half of its own exclusive inliers. Tuning photos at 100 pages: the three non-catalog pages
# accepted had 1.8-2.9x over 0.40-0.64 of the page; right pages below 0.7 coverage had >= 4.2x at 100, 1,000 and
# 10,000 pages (every decision recorded). The rectified second look at a rejected page needs it too: the one
# non-catalog page it accepted led 1.7x; the right pages it found had no rival with exclusive inliers.
MARGIN_PARTIAL = 3.5
PARTIAL_COVERAGE = 0.7
# The closer look sees a look-alike's shared masthead and ads up close too: under the first look's rules it accepted
# 13 instead of 8 of 1,600 non-catalog tuning photos at 100 pages (6 instead of 4 at 1,000), each with 26-58
# inliers, most with a runner-up holding a third of theirs or more. Its pages need CLOSER_MIN_INLIERS inliers over
# CLOSER_MIN_COVERAGE of the textured cells and CLOSER_MARGIN x the runner-up's exclusive inliers: 8 and 4 non-catalog
# photos accepted again, and 543 / 565 / 575 of 600 tuning photos found at 10,000 / 1,000 / 100 pages (544 / 565 /
# 577 without; 534 / 563 / 573 before the paper region).
CLOSER_MIN_INLIERS = 35
CLOSER_MIN_COVERAGE = 0.7
CLOSER_MARGIN = 3.0
MIN_DISTINCT = 8  # two pages in one photo: each needs this many distinctive inliers
# Acceptance, tuned on tuning photos (200 of catalog pages, seeds 500,000+; 200 of non-catalog pages sharing a
# masthead and ads, seeds 600,000+): a right page matched exactly against all its features gets 35-120 inliers;
# a non-catalog page up to ~57 from a shared masthead and ad, over <= 0.67 of the page's textured cells and with
# little exclusive evidence (its inliers' index votes are shared by every page with that masthead or ad).
MIN_COVERAGE = 0.4  # textured page cells holding an inlier (cell_coverage), always
MIN_INLIERS_ALONE = 50  # either this many inliers with MIN_EXCLUSIVE_ALONE exclusive votes ...
MIN_EXCLUSIVE_ALONE = 2.0  # (1.5 and MIN_EXCLUSIVE 2.0 before photo features were spread 2 x 2: with more of them
# on the page, two of 600 tuning non-catalog photos at 10,000 pages (seeds 600,000+) got through with 1.83 and
# 2.0; right pages lost: 0 / 0 / 1 of 200 / 200 / 600 at 100 / 1,000 / 10,000 pages)
MIN_INLIERS_BACKED = 25  # ... or this many with MIN_EXCLUSIVE votes and MIN_COVERAGE_BACKED (20 let a non-catalog
# page through with 21 inliers at 10,000 pages once hits needed to beat the background; right pages accepted by
# this branch had >= 25 but one at 100 pages: tuning photos, every decision recorded)
MIN_EXCLUSIVE = 2.5
MIN_COVERAGE_BACKED = 0.7
# ... or, without exclusive evidence, inliers over nearly the whole page: a right page found by its layout gets
# 35-210 inliers over 0.8-1.0 of the page's textured cells but 0.1-1.4 exclusive votes; non-catalog pages reached
# 33 inliers at >= 0.8 coverage, wrong pages 34 (tuning photos at 1,000 and 10,000 pages, every decision
# recorded: 181 of 200 right vs 176 without this branch, 0 wrong, 0 false positives). With photo features spread
# 2 x 2, 1,000 more tuning non-catalog photos (seeds 600,600+) at 10,000 pages gave 2 accepted this way with 49 and
# 50 inliers; of the 600 tuning photos of catalog pages, 36 rely on this branch, with 45 (one) and 57-188 inliers.
MIN_INLIERS_WHOLE = 55
MIN_COVERAGE_WHOLE = 0.85
MARGIN_WHOLE = 2.0
# ... or many inliers on the page's *own* content. A right page that few photo features hit in the index (small or
# tilted in the frame) has little exclusive evidence in the votes, however many inliers matching it exactly finds.
# A non-catalog look-alike matches a catalog page only where both print the same thing, and what a page prints in
# common with other pages (masthead, footer, a repeated ad) shows in the index itself: page features with a near
# twin (Hamming <= SHARED_HAMMING among the SHARED_KNN nearest indexed features) on another page within SHARED_MM of
# the same place (RecognitionIndex._shared_mm). Body inliers lie farther than BODY_MM from every such feature.
# Tuning photos (600 of catalog pages, seeds 500,000+; 1,600 non-catalog, 600,000+), every decision recorded at 100 /
# 1,000 / 10,000 pages: of the rejected wrong hypotheses with >= BODY_MIN_COVERAGE and a BODY_MARGIN lead over the
# runner-up, none had more than 37 / 38 / 38 body inliers; the right pages of 1 / 2 / 10 missed photos had 45 or more
# (a bar of 50: 1 / 2 / 7; of 40: the same as 45, but too close to the look-alikes). Measured, and applied, in every
# pass alike (the closer look's CLOSER_* bar is not added on top).
SHARED_KNN = 10
SHARED_HAMMING = 40
SHARED_MM = 3.0
BODY_MM = 4.0
BODY_MIN_INLIERS = 45
BODY_MIN_COVERAGE = 0.65
BODY_MARGIN = 3.0
TWO_PAGES_MAX_SHARED = 0.2  # two verified pages sharing < 20 % of inliers are two pages in view, not rivals
TILT_MIN_INLIERS = MIN_INLIERS_ALONE  # a page found by the tilted look (TILT) has this many inliers too


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


@dataclass(frozen=True)
class Photo:
    """A photo decoded for recognition (``decode_photo``): gray (h, w) uint8, upright (EXIF orientation applied),
    perhaps smaller than the photo itself; scale: its px per photo px, in pixel-index coordinates
    (gray + 0.5 = scale x (photo + 0.5)); color: its colour in the same px (decoded when first asked for), None for
    a grey photo."""
    gray: np.ndarray
    scale: float
    color: PhotoColor | None = None


class PhotoColor:
    """A photo's colour, (h, w, 3) uint8 BGR, given or decoded from the photo's bytes on the first call, then kept.
    Decoded as decode_photo decoded the grey (same draft size, same orientation), so in the same px. Most photos are
    recognized without it (only the closer look's paper region needs it): a 4000 x 3000 JPEG turned by its EXIF
    orientation takes ~10 ms in decode_photo, its colour ~16 ms more."""

    def __init__(self, image: np.ndarray | None = None, data: bytes | None = None,
                 draft: tuple[int, int] | None = None) -> None:
        self._image, self._data, self._draft = image, data, draft
        self._lock = threading.Lock()

    def __call__(self) -> np.ndarray | None:
        with self._lock:
            if self._image is None and self._data is not None:
                try:
                    with Image.open(io.BytesIO(self._data)) as im:
                        if self._draft is not None:
                            im.draft("RGB", self._draft)
                        rgb = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
                    # OpenCV's order (a reversed-stride copy costs ~10x more)
                    self._image = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
                except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
                    pass  # decoded as grey already: without its colour the closer look only enlarges it
                self._data = None
            return self._image


# Pixels a photo may have (from its header, before anything is decoded): a JPEG is decoded at up to 1/8 of its size,
# so it may be large (a 200 MP phone mode still decodes to ~3 MP); what is decoded in full (PNG, WebP, a small JPEG)
# may not be more than a 24 MP camera's. A 190 KB PNG of 13,000 x 13,000 px cost +605 MB before this (issue 25).
PHOTO_MAX_PIXELS = 200_000_000
PHOTO_MAX_DECODED_PIXELS = 24_000_000


def decode_photo(data: bytes, long_side: int = QUERY_MAX_SIDE) -> Photo:
    """Decode a JPEG/PNG/WebP photo for recognition, grey and upright (EXIF orientation honoured); its colour, which
    the closer look finds the paper by (``paper_box``), is decoded only if asked for (``PhotoColor``).

    A JPEG at least twice ``long_side`` is decoded at 1/2, 1/4 or 1/8 of its size by libjpeg's DCT scaling
    (Pillow's draft mode), never below ``long_side`` (recognition shrinks a photo to QUERY_MAX_SIDE anyway), and
    only its luma: a 4000 x 3000 phone-like JPEG (1.9 MB) takes 22 ms here instead of 117-129 ms. An output pixel
    is the mean of a k x k block, so the pixel-index convention holds with scale 1/k. Raises InvalidImageError for
    anything that is not a decodable image, ImageTooLargeError (before decoding) for one of more than
    PHOTO_MAX_PIXELS, or of more than PHOTO_MAX_DECODED_PIXELS once a JPEG's reduction is counted."""
    draft = None
    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
            if w * h > PHOTO_MAX_PIXELS:
                raise ImageTooLargeError(f"{w} x {h} px is more than {PHOTO_MAX_PIXELS:,} pixels")
            colour = im.mode not in ("1", "L", "LA", "I", "I;16", "F")
            if max(w, h) >= 2 * long_side:
                f = long_side / max(w, h)
                draft = (max(1, int(np.ceil(w * f))), max(1, int(np.ceil(h * f))))
                im.draft("L", draft)
            if im.size[0] * im.size[1] > PHOTO_MAX_DECODED_PIXELS:
                raise ImageTooLargeError(f"{w} x {h} px would be decoded at {im.size[0]} x {im.size[1]}, more than "
                                         f"{PHOTO_MAX_DECODED_PIXELS:,} pixels")
            k = 2 ** round(np.log2(w / im.size[0]))  # libjpeg's scale: output = ceil(w / k)
            gray = np.asarray(ImageOps.exif_transpose(im).convert("L"))
    except ImageTooLargeError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise InvalidImageError(f"not a decodable image ({len(data)} bytes): {exc}") from exc
    return Photo(as_gray(gray), 1.0 / k, PhotoColor(data=data, draft=draft) if colour else None)


@dataclass(frozen=True)
class QueryFeatures:
    """Features of one photo. xy : (N, 2) float32 px in the *working* image; scale : working px per original px;
    gray : the working image (kept for the rectified second pass)."""
    xy: np.ndarray
    descriptors: np.ndarray
    size: tuple[int, int]  # working image (w, h)
    scale: float
    gray: np.ndarray | None = None
    # the photo's colour, None for a grey one (no paper region); larger than the working image when the photo was
    # shrunk to it (paper_features resizes it only if the closer look is needed)
    color: PhotoColor | None = None


# The photo's ORB pyramid is detected on two threads (features.orb_levels: the same features, 9.1 -> 6.5 ms for
# 3,000 candidates in 40 tuning photos): this thread and this worker.
_PHOTO_ORB = Workers(1, "photo-orb")


def _photo_orb(gray: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(xy, descriptors) of ``n`` ORB features of a photo (or a look at it) with the photo settings: low FAST
    threshold, QUERY_SPREAD_GRID raster."""
    xy, desc, _ = detect_orb(gray, n, oversample=2, fast_threshold=QUERY_FAST_THRESHOLD, grid=QUERY_SPREAD_GRID,
                             workers=_PHOTO_ORB)
    return xy, desc


def query_features(image: np.ndarray | bytes | Photo, n: int = QUERY_FEATURES) -> QueryFeatures:
    """ORB features of a photo: np.ndarray BGR/grey, encoded JPEG/PNG bytes, or a ``decode_photo`` result.
    QueryFeatures.scale maps the photo's own px to the working image's."""
    if isinstance(image, (bytes, bytearray, memoryview)):
        image = decode_photo(bytes(image))
    if isinstance(image, Photo):
        gray, scale, color = image.gray, image.scale, image.color
    else:
        gray, scale = as_gray(image), 1.0
        color = PhotoColor(image[:, :, :3]) if image.ndim == 3 and image.shape[2] in (3, 4) else None
    if max(gray.shape) > QUERY_MAX_SIDE:
        gray, f = resize_long_side(gray, QUERY_MAX_SIDE)
        scale *= f

    xy, desc = _photo_orb(gray, n)
    return QueryFeatures(xy, desc, (gray.shape[1], gray.shape[0]), scale, gray, color)


def magnified(q: QueryFeatures) -> QueryFeatures:
    """Features of the working image enlarged MAGNIFY times, in working px: a page under ~250 px tall leaves ORB
    (31 px patches, FAST on a 7 px circle) too few usable corners at its own size."""
    assert q.gray is not None
    big = cv2.resize(q.gray, None, fx=MAGNIFY, fy=MAGNIFY, interpolation=cv2.INTER_CUBIC)
    xy, desc = _photo_orb(big, MAGNIFIED_FEATURES)
    return QueryFeatures(((xy + 0.5) / MAGNIFY - 0.5).astype(np.float32), desc, q.size, q.scale, q.gray, q.color)


def paper_box(color: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) px (x1, y1 exclusive) of the paper in a BGR photo: the bounding box of its largest bright,
    nearly colourless region (PAPER_*), PAPER_MARGIN of its long side wider on every side and clipped to the
    photo, or None when there is no such region."""
    hsv = cv2.cvtColor(color, cv2.COLOR_BGR2HSV)
    mask = ((hsv[:, :, 1] < PAPER_MAX_SATURATION) & (hsv[:, :, 2] > PAPER_MIN_VALUE)).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((PAPER_CLOSE_PX, PAPER_CLOSE_PX), np.uint8))
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((PAPER_OPEN_PX, PAPER_OPEN_PX), np.uint8))
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask)
    x, y, w, h, area = stats[1:].T if n > 1 else np.zeros((5, 0), np.int64)
    ok = (area >= PAPER_MIN_AREA) & (area >= PAPER_MIN_FILL * w * h)
    if not ok.any():
        return None
    j = int(np.argmax(np.where(ok, area, -1)))
    m = int(PAPER_MARGIN * max(w[j], h[j]))
    rows, cols = mask.shape
    return (max(0, int(x[j]) - m), max(0, int(y[j]) - m), min(cols, int(x[j] + w[j]) + m),
            min(rows, int(y[j] + h[j]) + m))


def paper_features(q: QueryFeatures) -> tuple[np.ndarray, np.ndarray] | None:
    """(xy working px, descriptors) of PAPER_FEATURES features of the paper region (``paper_box``) resized to
    PAPER_LONG_SIDE px, or None for a grey photo or one without such a region."""
    color = q.color() if q.color is not None else None
    if color is None or q.gray is None:
        return None
    if color.shape[:2] != q.gray.shape:
        color = cv2.resize(color, (q.gray.shape[1], q.gray.shape[0]), interpolation=cv2.INTER_AREA)
    box = paper_box(color)
    if box is None:
        return None
    x0, y0, x1, y1 = box
    s = PAPER_LONG_SIDE / max(x1 - x0, y1 - y0)
    region = cv2.resize(q.gray[y0:y1, x0:x1], None, fx=s, fy=s,
                        interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    xy, desc = _photo_orb(region, PAPER_FEATURES)
    # region px -> working px, pixel-index coordinates: (region + 0.5) / s = (working - corner) + 0.5
    return ((xy + 0.5) / s - 0.5 + np.array([x0, y0], np.float32)).astype(np.float32), desc


def closer_look(q: QueryFeatures) -> QueryFeatures:
    """The closer look's features, in working px: the photo enlarged (``magnified``) and, in colour, the paper
    region at a middle catalog scale (``paper_features``), searched and verified together."""
    big = magnified(q)
    paper = paper_features(q)
    if paper is None or len(paper[0]) == 0:
        return big
    return QueryFeatures(np.vstack([big.xy, paper[0]]), np.vstack([big.descriptors, paper[1]]), q.size, q.scale,
                         q.gray, q.color)


def untilt_map(size: tuple[int, int], direction_deg: float) -> tuple[np.ndarray, tuple[int, int]]:
    """The un-tilted copy of an image of ``size`` (w, h) along ``direction_deg`` (TILT, TILT_SQUEEZE: stretched along
    it, shrunk across it, the area kept): (2 x 3 affine map image px -> copy px, pixel-index coordinates; the copy's
    size (w, h), the image's bounding box there)."""
    a = np.radians(direction_deg)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    lin = rot @ np.diag([TILT ** (1 - TILT_SQUEEZE), TILT ** -TILT_SQUEEZE]) @ rot.T
    w, h = size
    ends = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64) @ lin.T
    # Pixel centres (x + 0.5) map linearly, and the copy starts at the image's bounding box.
    shift = -ends.min(axis=0) + lin @ [0.5, 0.5] - 0.5
    extent = np.ceil(ends.max(axis=0) - ends.min(axis=0)).astype(int)
    return np.c_[lin, shift], (int(extent[0]), int(extent[1]))


def untilted(q: QueryFeatures, direction_deg: float) -> QueryFeatures:
    """TILT_FEATURES features of the working image's un-tilted copy along ``direction_deg`` (``untilt_map``),
    placed back in the working image's px."""
    assert q.gray is not None
    to_copy, size = untilt_map(q.size, direction_deg)
    copy = cv2.warpAffine(q.gray, to_copy, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    xy, desc = _photo_orb(copy, TILT_FEATURES)
    back = cv2.invertAffineTransform(to_copy)
    return QueryFeatures((xy @ back[:, :2].T + back[:, 2]).astype(np.float32), desc, q.size, q.scale, q.gray,
                         q.color)


def _long_side(corners: np.ndarray) -> float:
    """Longest side of a projected page (tl, tr, br, bl) in px."""
    return float(max(np.linalg.norm(corners[3] - corners[0]), np.linalg.norm(corners[2] - corners[1]),
                     np.linalg.norm(corners[1] - corners[0]), np.linalg.norm(corners[2] - corners[3])))


def rectify(q: QueryFeatures, h_mm_to_px: np.ndarray, width_mm: float, height_mm: float,
            upscale: float = RECTIFY_UPSCALE, features: int = RECTIFY_FEATURES, max_side: float = RECTIFY_MAX_SIDE
            ) -> tuple[QueryFeatures, np.ndarray] | None:
    """The photo warped so the hypothesised page appears frontally, its long side ``upscale`` x its apparent
    size (within RECTIFY_MIN_SIDE..RECTIFY_MAX_SIDE px).

    Returns (features of the rectified image, 3x3 working px -> rectified px) or None if the hypothesis is too
    degenerate to warp. Rectified px = mm * r (r px per mm), so a homography found there maps page mm -> rect px."""
    if q.gray is None:
        return None
    apparent = _long_side(project(h_mm_to_px, page_corners_mm(width_mm, height_mm)))
    long_side = float(np.clip(upscale * apparent, RECTIFY_MIN_SIDE, max_side))
    r = long_side / max(width_mm, height_mm)
    try:
        to_rect = np.diag([r, r, 1.0]) @ np.linalg.inv(h_mm_to_px)
    except np.linalg.LinAlgError:
        return None
    size = (max(32, int(round(width_mm * r))), max(32, int(round(height_mm * r))))
    rect = cv2.warpPerspective(q.gray, to_rect, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    xy, desc = _photo_orb(rect, features)
    return QueryFeatures(xy, desc, size, 1.0, None), to_rect


@dataclass(frozen=True)
class Votes:
    """Soft votes of the photo's features. score : (max slot + 1,) float per page slot; slots/tied : (nq, k)
    neighbour page slots that vote (-1: none) and which of them share the feature's vote; share : (nq,) 1 / pages
    sharing; near : (nq, k) neighbour page slots within MAX_HAMMING and the scope, *before* the background test
    (-1: none): the layout check's hits (geometry rejects chance hits itself, and the true hits of a tilted page
    are often no closer than the background)."""
    score: np.ndarray
    slots: np.ndarray
    tied: np.ndarray
    share: np.ndarray
    near: np.ndarray

    def weights(self, slot: int) -> np.ndarray:
        """(nq,) the vote each photo feature gave page ``slot``: 1 if only that page has a neighbour about as
        close as the nearest, 1/n if n pages share it, 0 if its nearest neighbours are on other pages."""
        return (self.tied & (self.slots == slot)).any(axis=1) * self.share


def soft_votes(dist: np.ndarray, ids: np.ndarray, feature_bits: int, allowed: np.ndarray | None = None,
               background: np.ndarray | None = None) -> Votes:
    """Candidate scores per page slot from the k-NN search of the photo's features.

    Each query feature shares one vote among the pages whose neighbour is nearly as close as its nearest
    (d <= d1 / SOFT_RATIO, within MAX_HAMMING): a feature shared by many pages (masthead, repeated ad, common
    glyph) spreads its vote thin. A hard cross-page ratio test (one vote or none) left the right page 0-6 votes
    at 10,000 pages, often fewer than a random page (tuning photos). ids encode ``slot << feature_bits |
    feature``; ``allowed`` (sorted slot array) restricts the votes to a scope. ``background`` (slots x indexed
    features, uint8): each catalog feature's distance to generic photo content (markers.background); a neighbour
    no closer than that is no evidence for its page and is dropped."""
    ids = ids.astype(np.int64)
    near = np.where((ids >= 0) & (dist <= MAX_HAMMING), ids >> feature_bits, -1)
    if allowed is not None:
        near = np.where(np.isin(near, allowed), near, -1)
    slots = near
    if background is not None and background.size:
        feat = ids & ((1 << feature_bits) - 1)
        inside = (near >= 0) & (near < background.shape[0]) & (feat < background.shape[1])
        closer = dist < background[np.where(inside, near, 0), np.where(inside, feat, 0)]
        slots = np.where(inside & closer, near, -1)
    dist = np.where(slots >= 0, dist, 10_000)
    n = int(slots.max()) + 1 if slots.size else 0
    tied = (slots >= 0) & (dist * SOFT_RATIO <= dist.min(axis=1, keepdims=True))
    if n <= 0:
        return Votes(np.zeros(0), slots, tied, np.zeros(len(slots)), near)
    rows, cols = np.nonzero(tied)
    pairs = np.unique(rows.astype(np.int64) * n + slots[rows, cols])
    prow, pslot = pairs // n, pairs % n
    per_row = np.bincount(prow, minlength=len(slots))
    share = 1.0 / np.maximum(per_row, 1)
    return Votes(np.bincount(pslot, weights=share[prow], minlength=n), slots, tied, share, near)


# Layout check of the candidate stage. At 10,000 pages a page small or tilted in the photo gets 5-12 of the
# photo's k-NN hits, nearly all geometrically right, while random pages get 10-20 scattered ones; soft votes
# ranked such pages 3rd-1800th (tuning photos, seeds 500,000+). The pages with the most hits are checked for
# hits that one affine map of the page explains (a small page is nearly affine in the photo); on 100 tuning
# photos at 10,000 pages this put the right page first for 5 of the 13 the votes missed.
LAYOUT_POOL = 48  # pages with the most hits checked
LAYOUT_SAMPLES = 64  # random triplets (affine hypotheses) per page
LAYOUT_MIN = 8  # hits one affine map must explain (6 let random pages through at 10,000 pages)
LAYOUT_PX = 10.0  # photo px: an affine map is within ~10 px of the perspective of a page < ~300 px tall
LAYOUT_MAX_HITS = 48  # hits per page used
LAYOUT_CANDIDATES = 3  # layout-consistent pages verified before the vote order


def nearest_hits(votes: Votes, dist: np.ndarray, ids: np.ndarray, feature_bits: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(query feature, page slot, page feature) of each photo feature's nearest neighbour on each page among
    its k-NN, sorted by slot and, within a page, closest first (the layout check reads a page's first
    LAYOUT_MAX_HITS); the neighbours within MAX_HAMMING and the scope (``votes.near``)."""
    slots = votes.near
    r, c = np.nonzero(slots >= 0)
    s = slots[r, c].astype(np.int64)
    f = ids[r, c].astype(np.int64) & ((1 << feature_bits) - 1)
    d = dist[r, c].astype(np.int64)
    nq, k = max(len(dist), 1), max(dist.shape[1], 1)
    dmax = int(d.max()) + 1 if len(d) else 1
    # One argsort of a packed key (page, photo feature, distance, column) instead of a lexsort: all unique, so
    # the order is that of a stable sort by (page, feature, distance); the first of each (page, feature) stays.
    o = np.argsort(((s * nq + r) * dmax + d) * k + c)
    r, s, f, d = r[o], s[o], f[o], d[o]
    key = s * nq + r
    keep = np.r_[True, key[1:] != key[:-1]] if len(key) else np.zeros(0, bool)
    r, s, f, d = r[keep], s[keep], f[keep], d[keep]
    o = np.argsort((s * dmax + d) * nq + r)  # by page, closest first, then photo feature
    return r[o], s[o], f[o]


def affine_consistency(pq: np.ndarray, pm: np.ndarray, counts: np.ndarray, seed: int = 0) -> np.ndarray:
    """Most hits one plausible affine map page mm -> photo px explains, per page.

    pq/pm : (P, n, 2) photo px / page mm of each page's hits (padded), counts : (P,) hits per page. Hypotheses
    from LAYOUT_SAMPLES random triplets per page (seeded: deterministic), all pages at once; a hypothesis must
    keep the page's orientation (not mirrored), a scale of 0.15-8 px per mm and an anisotropy below 3 (tilt
    <= ~70 deg)."""
    n_pages, n, _ = pq.shape
    if n_pages == 0 or n < 3:
        return np.zeros(n_pages, np.int64)
    pq, pm = pq.astype(np.float32), pm.astype(np.float32)
    rng = np.random.default_rng(seed)
    pick = (rng.random((n_pages, LAYOUT_SAMPLES, 3)) * counts[:, None, None]).astype(np.int64)
    rows = np.arange(n_pages)[:, None, None]
    src, dst = pm[rows, pick], pq[rows, pick]  # (P, S, 3, 2)
    s0, d0 = src[:, :, 0], dst[:, :, 0]
    sv = np.stack([src[:, :, 1] - s0, src[:, :, 2] - s0], axis=-1)  # columns: two edges of the triplet
    dv = np.stack([dst[:, :, 1] - d0, dst[:, :, 2] - d0], axis=-1)
    det = sv[..., 0, 0] * sv[..., 1, 1] - sv[..., 0, 1] * sv[..., 1, 0]
    ok = np.abs(det) > 4.0  # the triplet spans > 4 mm^2 of the page
    safe = np.where(ok, det, 1.0)
    inv = np.stack([np.stack([sv[..., 1, 1], -sv[..., 0, 1]], -1),
                    np.stack([-sv[..., 1, 0], sv[..., 0, 0]], -1)], -2) / safe[..., None, None]
    a = dv @ inv  # (P, S, 2, 2): photo px per page mm
    adet = a[..., 0, 0] * a[..., 1, 1] - a[..., 0, 1] * a[..., 1, 0]
    fro = (a ** 2).sum(axis=(-1, -2))
    root = np.sqrt(np.maximum(fro ** 2 - 4 * adet ** 2, 0))
    s_max, s_min = np.sqrt((fro + root) / 2), np.sqrt(np.maximum(fro - root, 0) / 2)
    ok &= (adet > 0) & (s_min > 0.15) & (s_max < 8.0) & (s_max < 3.0 * s_min)
    t = d0 - (a @ s0[..., None])[..., 0]  # (P, S, 2)
    mx, my = pm[:, None, :, 0], pm[:, None, :, 1]  # (P, 1, n)
    ex = a[..., 0, 0, None] * mx + a[..., 0, 1, None] * my + t[..., 0, None] - pq[:, None, :, 0]
    ey = a[..., 1, 0, None] * mx + a[..., 1, 1, None] * my + t[..., 1, None] - pq[:, None, :, 1]
    err2 = ex * ex + ey * ey  # (P, S, n)
    valid = np.arange(n)[None, None, :] < counts[:, None, None]
    inl = ((err2 < LAYOUT_PX ** 2) & valid).sum(-1)
    return np.where(ok, inl, 0).max(axis=1)


def evidence(points: np.ndarray, q_xy: np.ndarray, weights: np.ndarray, tol: float = DEDUP_PX) -> float:
    """Exclusive evidence of inliers at ``points`` (working px): the sum of the votes that the photo features
    there gave the page in the index search. A masthead or an ad shared by many catalog pages spreads its votes
    over all of them, so a non-catalog page that shares only those earns little, however many inliers."""
    if len(points) == 0 or len(q_xy) == 0:
        return 0.0
    d = np.linalg.norm(points[:, None, :].astype(np.float32) - q_xy[None, :, :], axis=2)
    near = d.argmin(axis=1)
    hit = d[np.arange(len(points)), near] <= tol
    # each photo feature counts once
    return float(weights[np.unique(near[hit])].sum())


PAGE_KNN = 4  # neighbours per query feature on one candidate page (2nd *other point* for the ratio test)
SAME_POINT_MM = 1.5  # catalog features this close on the page are one point seen at two catalog scales


@dataclass(frozen=True)
class PageCorrespondences:
    """Exact matches of every query feature against one candidate page's own features (all of them, not only
    the indexed subset): q_idx (M,) query feature, f_idx (M,) page feature, ratio (M,) distance to the nearest /
    to the nearest at another point of the page (lower: more distinctive)."""
    q_idx: np.ndarray
    f_idx: np.ndarray
    ratio: np.ndarray


def page_correspondences(q_desc: np.ndarray, page_desc: np.ndarray, page_mm: np.ndarray) -> PageCorrespondences:
    """Nearest page feature of each query feature within MAX_HAMMING (FAISS exact search, a few ms per page).

    The ratio test compares with the nearest feature at another *point* of the page: the same point is stored at
    several catalog scales with near-identical descriptors, which must not make it ambiguous."""
    k = min(PAGE_KNN, len(page_desc))
    flat = faiss.IndexBinaryFlat(page_desc.shape[1] * 8)
    flat.add(np.ascontiguousarray(page_desc))
    # One OpenMP thread: a page is too small a search to share (1,500 x 830 features: 1.9 ms on one thread, 2.0 on
    # two), and pages are verified two at a time already. Interleaved A/B, tuning photos at 10,000 pages: non-catalog
    # photos mean 102.5 -> 92.7 ms, p95 137 -> 122; at 1,000 pages photos of catalog pages p50 37.6 -> 34.7 ms.
    with one_faiss_thread():
        dist, nn = flat.search(np.ascontiguousarray(q_desc), k)
    d1, f1 = dist[:, 0], nn[:, 0]
    d2 = np.full(len(q_desc), 256, np.int64)
    if k > 1:
        far = np.linalg.norm(page_mm[np.clip(nn[:, 1:], 0, None)] - page_mm[f1][:, None, :], axis=2) > SAME_POINT_MM
        far &= nn[:, 1:] >= 0
        has = far.any(axis=1)
        d2 = np.where(has, dist[np.arange(len(dist)), 1 + far.argmax(axis=1)], 256)
    ok = (f1 >= 0) & (d1 <= MAX_HAMMING)
    q_idx = np.nonzero(ok)[0]
    return PageCorrespondences(q_idx, f1[ok].astype(np.int64), (d1 / np.maximum(d2, 1))[ok])


@dataclass(frozen=True)
class Verified:
    """Outcome of verifying one candidate: H (3,3) page mm -> working px, inlier query-feature indices."""
    slot: int
    homography: np.ndarray
    inlier_q: np.ndarray
    distinct: int
    inlier_pts: np.ndarray  # (M, 2) photo px of the inliers (in the frame of the query that was verified)
    # The correspondences of the final least-squares fit: (K, 2) page mm and (K, 2) photo px (REFINE_PX inliers).
    fit_mm: np.ndarray
    fit_px: np.ndarray


def _quad_ok(corners: np.ndarray, size: tuple[int, int]) -> bool:
    """Plausible projection of a page: convex, not tiny, corners not absurdly far outside the frame."""
    if not np.all(np.isfinite(corners)):
        return False
    if not cv2.isContourConvex(corners.astype(np.float32).reshape(-1, 1, 2)):
        return False
    w, h = size
    if np.abs(corners).max() > 20 * max(w, h):
        return False
    x, y = corners[:, 0], corners[:, 1]
    signed = 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))
    # Same orientation as the page (tl, tr, br, bl): a printed page is never seen mirrored.
    return signed >= 24 * 24


def page_corners_mm(width_mm: float, height_mm: float) -> np.ndarray:
    """Page corners (tl, tr, br, bl) in page mm: (4, 2) float64."""
    return np.array([[0, 0], [width_mm, 0], [width_mm, height_mm], [0, height_mm]], np.float64)


def project(h: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Apply homography ``h`` to (N, 2) points."""
    return cv2.perspectiveTransform(pts.reshape(-1, 1, 2).astype(np.float64), h).reshape(-1, 2)


def verify(slot: int, q_xy: np.ndarray, page_mm: np.ndarray, q_idx: np.ndarray, quality: np.ndarray,
           width_mm: float, height_mm: float, size: tuple[int, int]) -> Verified | None:
    """Homography page mm -> photo px for one candidate, in two stages:

    1. PROSAC (USAC) over all correspondences sorted by ``quality`` (within-page ratio, lower is better): it
       draws its samples from the most distinctive matches first, so a few hundred iterations find the model
       even when only ~10 % of the nearest-neighbour matches are right;
    2. guided re-collection over *all* correspondences (shared regions such as the masthead count for geometry),
       then least squares on the inliers at RANSAC_PX and REFINE_PX (corner accuracy).
    q_idx/page_mm: query features with a match on this page and the matched page positions; quality (aligned
    with q_idx): within-page ratio, the sort key of stage 1; inliers below DISTINCT_RATIO count as
    ``Verified.distinct``. Returns None when no plausible homography with MIN_HINT_INLIERS exists (acceptance
    needs MIN_INLIERS)."""
    if len(q_idx) < MIN_HINT_INLIERS:
        return None
    order = np.argsort(quality, kind="stable")
    q_idx, page_mm, quality = q_idx[order], page_mm[order], quality[order]
    src = page_mm.astype(np.float64)
    dst = q_xy[q_idx].astype(np.float64)
    h, mask = cv2.findHomography(src, dst, cv2.USAC_PROSAC, RANSAC_PX, maxIters=USAC_ITERS_ALL, confidence=0.995)
    if h is None or mask is None or int(mask.sum()) < MIN_HINT_INLIERS:
        return None
    for thr in (RANSAC_PX, REFINE_PX):  # re-collect inliers with the model, then least squares on them
        err = np.linalg.norm(project(h, src) - dst, axis=1)
        fit = err < thr
        if fit.sum() < MIN_HINT_INLIERS:
            return None
        h2, _ = cv2.findHomography(src[fit], dst[fit], 0)
        if h2 is None:
            return None
        h = h2
    err = np.linalg.norm(project(h, src) - dst, axis=1)
    inl = err < RANSAC_PX
    corners = project(h, page_corners_mm(width_mm, height_mm))
    if int(inl.sum()) < MIN_HINT_INLIERS or not _quad_ok(corners, size):
        return None
    inlier_q = np.unique(q_idx[inl])
    # One inlier per photo location (a photo feature can match a point stored at two catalog scales).
    _, first = np.unique(np.round(q_xy[inlier_q] / DEDUP_PX).astype(np.int64), axis=0, return_index=True)
    inlier_q = inlier_q[np.sort(first)]
    if len(inlier_q) < MIN_HINT_INLIERS:
        return None
    is_distinct = np.zeros(len(q_xy), bool)
    is_distinct[q_idx[quality < DISTINCT_RATIO]] = True
    return Verified(slot, h, inlier_q, int(is_distinct[inlier_q].sum()), q_xy[inlier_q], src[fit], dst[fit])


def refine_homography(q: QueryFeatures, v: Verified, page_desc: np.ndarray, page_mm: np.ndarray,
                      width_mm: float, height_mm: float) -> np.ndarray | None:
    """The final look (FINAL_LOOK_*) at the accepted hypothesis ``v`` (verified on ``q``): its homography page mm
    -> working px refitted on its own fit correspondences plus the matches found in the photo rectified with it,
    or None when that look does not confirm it well enough (the caller keeps ``v.homography``).
    page_desc/page_mm: all the page's features and their positions."""
    h = v.homography
    rect = rectify(q, h, width_mm, height_mm, upscale=FINAL_LOOK_UPSCALE, features=FINAL_LOOK_FEATURES,
                   max_side=FINAL_LOOK_MAX_SIDE)
    if rect is None:
        return None
    rq, to_rect = rect
    c = page_correspondences(rq.descriptors, page_desc, page_mm)
    src = page_mm[c.f_idx].astype(np.float64)
    dst = project(np.linalg.inv(to_rect), rq.xy[c.q_idx])  # measured in the rectified look, in working px
    refined = h
    for thr in FINAL_LOOK_PX:
        inl = np.linalg.norm(project(refined, src) - dst, axis=1) < thr
        if inl.sum() < FINAL_LOOK_MIN_INLIERS:
            return None
        refined, _ = cv2.findHomography(np.vstack([src[inl], v.fit_mm]), np.vstack([dst[inl], v.fit_px]), 0)
        if refined is None:
            return None
    refined = refined / refined[2, 2]
    corners_mm = page_corners_mm(width_mm, height_mm)
    before, after = project(h, corners_mm), project(refined, corners_mm)
    shift = float(np.linalg.norm(after - before, axis=1).max())
    if not _quad_ok(after, q.size) or shift > FINAL_LOOK_MAX_SHIFT * _long_side(before):
        return None
    return refined


def coverage(v: Verified, q_xy: np.ndarray, width_mm: float, height_mm: float, size: tuple[int, int]) -> float:
    """Share of the photo's features lying on the (visible) page that fall inside the convex hull of the inliers.

    A correct match explains the page everywhere the photo has texture; a page that only shares a masthead or an
    ad with the catalog page is explained in that one region only."""
    w, h = size
    quad = project(v.homography, page_corners_mm(width_mm, height_mm))
    on_page = inside_convex(quad, q_xy, size)
    n_page = int(on_page.sum())
    if n_page == 0:
        return 0.0
    hull = cv2.convexHull(q_xy[v.inlier_q].astype(np.float32)).reshape(-1, 2)
    return float(inside_convex(hull, q_xy[on_page], size).mean())


def inside_convex(poly: np.ndarray, pts: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(N,) bool: points inside the convex polygon ``poly`` (clipped to the w x h frame), by rasterizing it."""
    w, h = size
    mask = np.zeros((h, w), np.uint8)
    poly = np.clip(poly, -4 * max(w, h), 4 * max(w, h))
    cv2.fillConvexPoly(mask, np.round(poly * 4).astype(np.int32), 1, lineType=cv2.LINE_8, shift=2)
    xi = np.clip(pts[:, 0].astype(np.int64), 0, w - 1)
    yi = np.clip(pts[:, 1].astype(np.int64), 0, h - 1)
    return mask[yi, xi].astype(bool)


def accept(best: Verified, runner: Verified | None, cover: float, exclusive: float, second_look: bool = False,
           closer: bool = False) -> tuple[bool, float]:
    """Acceptance of the best verified page. Returns (accepted, score in [0, 1]).

    The inliers must be exclusive to the best page (not also explained by the runner-up, >= MARGIN x the
    runner-up's own, MARGIN_PARTIAL x when they cover only part of the page or when this is a ``second_look``
    at a rejected hypothesis, the rectified pass) and cover the page's textured cells (``cell_coverage``); then
    either many inliers with some exclusive evidence in the index votes (``evidence``: shared regions spread
    their votes over every page that has them), or fewer inliers with more exclusive evidence over more of the
    page, or many inliers over nearly all of the page's textured cells, whatever the votes (a page found by its
    layout, rz.affine_consistency, often has little exclusive evidence). A page seen by the ``closer`` look
    needs more on top (CLOSER_*). A page rejected here may still be accepted on its body inliers (``accept_body``)."""
    excl_best, excl_runner = _exclusive_inliers(best, runner)
    n = len(best.inlier_q)
    margin = MARGIN if cover >= PARTIAL_COVERAGE and not second_look else MARGIN_PARTIAL
    margin_ok = n >= MIN_INLIERS and excl_best >= MIN_INLIERS and excl_best >= margin * excl_runner
    strong = ((n >= MIN_INLIERS_ALONE and exclusive >= MIN_EXCLUSIVE_ALONE)
              or (n >= MIN_INLIERS_BACKED and exclusive >= MIN_EXCLUSIVE and cover >= MIN_COVERAGE_BACKED)
              or (n >= MIN_INLIERS_WHOLE and cover >= MIN_COVERAGE_WHOLE and excl_best >= MARGIN_WHOLE * excl_runner))
    ok = margin_ok and cover >= MIN_COVERAGE and strong
    if closer:
        ok = (ok and n >= CLOSER_MIN_INLIERS and cover >= CLOSER_MIN_COVERAGE
              and excl_best >= CLOSER_MARGIN * excl_runner)
    score = float(excl_best / (excl_best + excl_runner + MIN_INLIERS)) * min(1.0, cover)
    return ok, score


def _exclusive_inliers(best: Verified, runner: Verified | None) -> tuple[int, int]:
    """Inliers of the best page not shared with the runner-up's, and the runner-up's not shared with the best's."""
    if runner is None:
        return len(best.inlier_q), 0
    shared = len(np.intersect1d(best.inlier_q, runner.inlier_q))
    return len(best.inlier_q) - shared, len(runner.inlier_q) - shared


def body_may_decide(best: Verified, runner: Verified | None, cover: float) -> bool:
    """Whether a page rejected by ``accept`` could still be accepted on its body inliers (``accept_body``): the cheap
    conditions, checked before the page's shared features are looked up."""
    excl_best, excl_runner = _exclusive_inliers(best, runner)
    return (len(best.inlier_q) >= BODY_MIN_INLIERS and cover >= BODY_MIN_COVERAGE
            and excl_best >= BODY_MARGIN * excl_runner)


def body_inliers(v: Verified, shared_mm: np.ndarray) -> int:
    """Inliers of ``v`` whose page position (through v's homography) lies farther than BODY_MM from every page
    feature the page shares with other pages (``shared_mm`` (M, 2) page mm)."""
    if len(v.inlier_pts) == 0:
        return 0
    try:
        mm = project(np.linalg.inv(v.homography), v.inlier_pts)
    except np.linalg.LinAlgError:
        return 0
    if len(shared_mm) == 0:
        return len(mm)
    d2 = ((mm[:, None, :] - shared_mm[None, :, :]) ** 2).sum(axis=2).min(axis=1)
    return int((d2 > BODY_MM ** 2).sum())


def accept_body(best: Verified, runner: Verified | None, cover: float, body: int) -> bool:
    """Acceptance of a page on its body inliers (BODY_*), whatever its votes."""
    return body_may_decide(best, runner, cover) and body >= BODY_MIN_INLIERS


def area_coverage(v: Verified, page_mm: np.ndarray, width_mm: float, height_mm: float,
                  size: tuple[int, int]) -> float:
    """Area of the inliers' convex hull on the page (mm^2) / area of the page visible in the photo (mm^2).

    page_mm : (N,2) page positions of the inliers. The visible page is the frame rectangle mapped back onto the
    page by the inverse homography, clipped to the page."""
    w, h = size
    frame = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64)
    try:
        inv = np.linalg.inv(v.homography)
    except np.linalg.LinAlgError:
        return 0.0
    frame_mm = project(inv, frame).astype(np.float32)
    page = page_corners_mm(width_mm, height_mm).astype(np.float32)
    if not cv2.isContourConvex(frame_mm.reshape(-1, 1, 2)):
        visible = float(width_mm * height_mm)  # frame plane behind the camera: fall back to the whole page
    else:
        visible, _ = cv2.intersectConvexConvex(frame_mm, page)
    if visible <= 0:
        return 0.0
    hull = cv2.convexHull(page_mm.astype(np.float32))
    return float(cv2.contourArea(hull) / visible)


COVER_GRID = 4  # page divided into 4 x 4 cells for the coverage test
COVER_MIN_FEATURES = 4  # a cell counts as textured when it holds this many photo features (and COVER_MIN_SHARE)
COVER_MIN_SHARE = 0.015


def cell_coverage(v: Verified, q_xy: np.ndarray, width_mm: float, height_mm: float) -> float:
    """Share of the page's *textured* cells (photo features mapped onto the page by the inverse homography) that
    contain at least one inlier. A correct match has inliers wherever the photo shows texture; a non-catalog page
    sharing only a masthead or an ad has inliers in those cells only."""
    try:
        inv = np.linalg.inv(v.homography)
    except np.linalg.LinAlgError:
        return 0.0
    mm = project(inv, q_xy)
    g = COVER_GRID
    on = (mm[:, 0] >= 0) & (mm[:, 1] >= 0) & (mm[:, 0] < width_mm) & (mm[:, 1] < height_mm)
    if on.sum() == 0:
        return 0.0
    cell = (np.minimum((mm[:, 1] * g / height_mm).astype(np.int64), g - 1) * g
            + np.minimum((mm[:, 0] * g / width_mm).astype(np.int64), g - 1))
    feats = np.bincount(cell[on], minlength=g * g)
    inl = np.zeros(len(q_xy), bool)
    inl[v.inlier_q] = True
    hits = np.bincount(cell[on & inl], minlength=g * g)
    textured = feats >= max(COVER_MIN_FEATURES, COVER_MIN_SHARE * on.sum())
    if textured.sum() == 0:
        return 0.0
    return float((hits[textured] > 0).mean())
