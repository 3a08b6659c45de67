"""Every tunable of recognition in one frozen record, ``RecognitionParams``, passed explicitly to each stage.

A test or a benchmark that needs another value makes its own (``dataclasses.replace(DEFAULT_PARAMS, knn=16)``) and
hands it to ``RecognitionIndex(params=...)``; nothing reads a module global. The comments record why each value
(numbers from tuning photos, seeds 500,000+ for photos of catalog pages and 600,000+ for non-catalog ones, and from
bench/bench_recognition.py, whose seeds 1,000,000+ are held out). History: docs/recognition.md.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RecognitionParams:
    """Recognition tunables, grouped by stage (see markers/recognition/pipeline.py for the order of the stages)."""
    # ---- Photo features
    query_features: int = 1500  # features per photo: recall on small pages vs. search time (bench)
    # Searching only the first 1,100 (spread over the photo) and verifying with all 1,500, in the first pass: interleaved
    # A/B at 10,000 pages (600 tuning and 200 non-catalog photos), p50 54.6 -> 49.1 ms, p95 124.5 -> 114.2 ms, but 551
    # instead of 553 found. Not taken.
    query_fast_threshold: int = 10  # phone photos are blurred/compressed: a lower FAST threshold keeps small pages alive
    # Photo features are spread over a 2 x 2 raster, not the catalog's 8 x 8: a page small in the frame holds a few
    # of 64 cells, and an even spread gave the textured but blurred background as many features as the page.
    # Tuning photos (seeds 500,000+): right pages 95 / 93.5 / 90 % -> 96 / 94.5 / 91 % at 100 / 1,000 / 10,000 pages,
    # found by the first search 162 -> 173 of 200 at 10,000 (fewer need the enlarged pass); 4 x 4 found as many
    # right pages but accepted more non-catalog ones at 1,000 pages, no raster (strongest features) more at both.
    query_spread_grid: int = 2
    # Neighbours per query feature in the index search (soft votes; 20 ranked no better at 3,000 pages). 16 found 558
    # instead of 553 of 600 tuning photos at 10,000 pages, but not in the held-out bench (96.3 / 95.0 / 89.7 % ->
    # 96.0 / 94.3 / 90.0 % at 100 / 1,000 / 10,000 pages; p95 121 -> 129 ms at 10,000): kept at 10.
    knn: int = 10
    # ---- Candidate stage: votes
    max_hamming: int = 64  # of 256 bits; beyond this ORB matches are mostly chance
    soft_ratio: float = 0.9  # soft votes: neighbours within d1 / soft_ratio share the feature's vote
    min_votes: int = 5  # confusability: a published page needs this many matches to be checked
    min_score: float = 2.0  # soft votes a candidate page needs to be verified
    # At most this many pages are verified per photo and pass. Tuning photos (200 of catalog pages, 200 non-catalog):
    # 5 finds as many right pages as 8 at 100, 1,000 and 10,000 pages (4 and 3 lose 1 and 7 at 100 pages), and a photo
    # with no page, which verifies every candidate of every pass, costs less (p95 at 10,000 pages 175 -> 149 ms).
    max_candidates: int = 5
    # ---- Verification
    ransac_px: float = 5.0  # USAC inlier threshold in photo px (photos at <= 1280 px)
    # Tighter threshold of the least-squares refinement (corner accuracy; tuning photos at 100 pages: median corner
    # error 1.72 px at 3.0, 1.57 at 2.0, 1.59 at 1.5).
    refine_px: float = 2.0
    usac_iters_all: int = 2000  # PROSAC over all nearest-neighbour matches of a candidate page
    min_inliers: int = 12  # below this a homography from ORB matches is not trustworthy
    min_hint_inliers: int = 8  # a weaker homography is still good enough to rectify the photo for a second pass
    rectify_candidates: int = 1  # weak hypotheses tried in the rectified second pass (2 found no more of 200 tuning photos)
    rectify_upscale: float = 1.5  # rectified page long side = 1.5 x its apparent size in the photo ...
    rectify_min_side: int = 320
    rectify_max_side: int = 1100  # ... within the span of the catalog scales
    rectify_features: int = 1000
    # ---- Final look (pose refinement)
    # Final look at an accepted page (corner accuracy): the photo rectified with the accepted homography at the page's
    # apparent size, matched against the page again, and the homography refitted on the matches that agree with it
    # together with its own fit points. Seen frontally the page's features match their catalog twins far more often
    # than under tilt. Tuning photos at 100 pages (288 recognized): median corner error 1.78 -> 1.31 px (pages < 250 px
    # tall 2.68 -> 1.59), ~7 ms per recognized photo. Refitted on the rectified matches alone: 1.43 (and worse than
    # before on some whole pages); with that refit, on 150 photos, rectified at 1.5x / 2.5x the apparent size 1.36 /
    # 1.56 vs 1.31 at 1x, and on 300, at >= 200 px instead of rectify_min_side 1.49. 500 / 700 features: 1.36 / 1.35.
    final_look_upscale: float = 1.0
    final_look_features: int = 1000
    final_look_max_side: float = 600.0  # px: 1,100 (as the rectified pass) gave the same median (1.31 px), -0.4 ms
    final_look_px: tuple[float, ...] = (3.0, 1.5)  # photo px: matches re-collected within 3, least squares on those within 1.5
    final_look_min_inliers: int = 20  # fewer agreeing matches: the accepted homography is kept
    final_look_max_shift: float = 0.1  # a refit moving a corner by more than this x the page's apparent size is refused
    # ---- Closer look
    # Last pass, the closer look: the photo enlarged, for pages small in the frame, together with the paper region
    # (below). On the 22 tuning photos (1,000 pages) none of whose hypotheses was the right page, the right page
    # verified with >= 20 inliers in 19 enlarged 1.5x with 2000 features, 16 enlarged 2x with 3000 (4x the pixels), 0 as
    # taken.
    magnify: float = 1.5
    # 1,000 enlarged features beside the paper region's 800 (2,000 alone before it): tuning photos at 10,000 pages,
    # 275 vs 276 of 300 found with 2,000, non-catalog photos p95 116 vs 132 ms (every pass run). Not enlarging the photo
    # when its paper region is 400 px or taller (the page is then not small; only the paper's features searched):
    # interleaved A/B at 10,000 pages, 600 tuning and 200 non-catalog photos, p95 113 -> 98 ms, non-catalog p50 96 -> 84
    # ms, but 545 instead of 553 found: 16 of the 27 pages the closer look finds have such a paper region (10 of them
    # over 690 px tall, filling the frame), and without the enlarged features 8 fewer were found.
    magnified_features: int = 1000
    # The paper: newsprint is bright and nearly colourless, so the largest such region of a colour photo (OpenCV HSV:
    # saturation < paper_max_saturation, value > paper_min_value, closed and opened, >= paper_min_area px filling
    # >= paper_min_fill of its bounding box) is most likely the page. Its box, paper_margin wider on every side, is
    # resized to paper_long_side px and gets paper_features features of its own: the photo's features are no longer
    # spent on a busy background, and the page comes to a middle catalog scale (the scales the index's prefix of every
    # marker holds most of), enlarged when small and shrunk when it fills the frame. Tuning photos (seeds 500,000+):
    # the box holds half the page or more in 91 % of 300 (79 % of pages under 300 px tall). Searched alone after the
    # first pass failed, at 10,000 pages it found 8 of the 29 missed pages (brought to 450 px; 350 / 550 px: 7 / 5; the
    # region enlarged 1.5x / 2x instead: 4 / 2); searched with the enlarged features in one search (the votes add up),
    # 544 instead of 534 of 600 found, then 543 with the closer look's acceptance (CLOSER_*).
    paper_max_saturation: int = 70
    paper_min_value: int = 100
    paper_min_area: int = 800  # working px (a page 150 px tall in the frame covers ~10,000)
    paper_min_fill: float = 0.35
    paper_close_px: int = 7
    paper_open_px: int = 5  # closing fills the text and photos of the page; opening drops thin streaks
    paper_margin: float = 0.15
    paper_long_side: int = 450
    paper_features: int = 800
    # The enlarged look is lighter (tuning photos at 10,000 pages: 180 of 200 right vs 181 with the full first-pass
    # settings, p95 of the mixed set 379 -> 336 ms): half the inverted lists, no rectified pass.
    magnified_nprobe: int = 4
    # Pages verified in the closer look. 3 instead of 5, interleaved A/B at 10,000 pages (600 tuning and 200 non-catalog
    # tuning photos): non-catalog photos p50 103 -> 98 ms, p95 of all 122 -> 116 ms, but 551 instead of 553 found (the
    # closer look accepted 3 of its 27 right pages at the 3rd-5th candidate, pages its votes alone ranked there).
    closer_candidates: int = 5
    magnify_below_px: int = 320  # skip the enlarged pass when a verified hypothesis shows a page taller than this ...
    # ... with this many inliers (wrong pages reach 12-14 by chance at 10,000 pages). With 14 the enlarged search ran
    # for 61 instead of 73 % of non-catalog photos (mean -8 ms at 10,000 pages), but 14 to 19 lost 1 of 600 tuning
    # photos' right pages there (a wrong page with 17-19 inliers appearing large).
    magnify_skip_inliers: int = 20
    # ---- Tilted look
    # The tilted look (asked for: RecognitionIndex.recognize(..., tilted=True)), after every other pass: the photo
    # un-tilted in tilt_directions, each copy searched on its own. A page tilted 40-55 deg leaves ORB descriptors ~52 bits
    # from its catalog features, beyond the ~42 of the 10th nearest among 10,000 pages' features, so the page never
    # becomes a candidate (though matching it exactly finds 50-170 inliers); seen through the right un-tilted copy it
    # does. Query-side affine simulation (ASIFT's tilts t = 1.7 at 4 directions, 45 deg apart: 180 deg / (72 / 1.7 deg)
    # ~ 4): tuning photos at 10,000 pages (seeds 500,000+), whole recognitions of the 4 copies found 20 of the 47 pages
    # missed, 28 with the true homography's rectification; catalog features from tilted copies instead found fewer
    # (1,000 pages: 552 vs 565 of 600), and the paper outline gave a usable quad for 29 of the 47 and found 8.
    # Each copy: stretched tilt ** (1 - tilt_squeeze) along the direction and shrunk tilt ** -tilt_squeeze across (its
    # ORB costs what the photo's does; stretched only: 16 of 47 instead of 15, ~+20 ms); tilt_features features (800 /
    # 500: 8 / 5 of 47); the 4 copies searched as one query found 13. Searched lightly (tilt_nprobe lists,
    # tilt_candidates pages verified, the closer look's acceptance), 568 instead of 553 of 600 were found at 10,000
    # pages, 574 vs 567 at 1,000, 579 vs 576 at 100, at ~+125 ms for a photo with no page (every pass run; p95 of 600
    # tuning and 550 non-catalog photos 113 -> 237 ms at 10,000 pages): it is asked for, not run on every photo (the
    # viewer asks for it now and then while nothing is recognized, and for a still photo). Four tries, so a page needs
    # tilt_min_inliers too: the 2 non-catalog photos of 3 x 1,600 it accepted under the closer look's rules had 36 and
    # 45 inliers, the right pages it found 47-169 (one of 15 at 10,000 pages below 50). With it: 567 / 573 / 579 found,
    # non-catalog photos accepted 0 / 4 / 8 of 1,600 as without the tilted look, 0 wrong.
    # Other tilts, on the 47 tuning photos the plain passes miss at 10,000 pages (seeds 500,000+): t = 1.45 / 1.55 / 2.0
    # found 12 / 11 / 4 of them, 1.7 found 14 (none of 299 non-catalog photos accepted with any). One copy along each
    # photo's true direction of tilt (from its ground truth) found 14 with t = 1.7 and 17 with its true t: picking the
    # direction from the photo could save three of the four searches, but finds no more pages.
    tilt: float = 1.7
    tilt_directions: tuple[float, ...] = (0.0, 45.0, 90.0, 135.0)  # degrees, image x axis towards y
    tilt_squeeze: float = 0.5
    tilt_features: int = 1500
    tilt_nprobe: int = 2
    tilt_candidates: int = 2
    # ---- Acceptance
    dedup_px: float = 3.0  # inliers closer than this in the photo count once
    distinct_ratio: float = 0.8  # an inlier is *distinctive* when its match beats the page's next point by this ratio
    margin: float = 1.5  # exclusive inliers of the best page >= margin x the runner-up's (tuning photos: 1.5 kept FPs near 0)
    # ... and margin_partial x when its inliers cover less than partial_coverage of the page's textured cells: a
    # non-catalog page sharing a masthead with a few catalog pages leaves its runner-up (another page with that
    # masthead) a third to a half of its own exclusive inliers. Tuning photos at 100 pages: the three non-catalog pages
    # accepted had 1.8-2.9x over 0.40-0.64 of the page; right pages below 0.7 coverage had >= 4.2x at 100, 1,000 and
    # 10,000 pages (every decision recorded). The rectified second look at a rejected page needs it too: the one
    # non-catalog page it accepted led 1.7x; the right pages it found had no rival with exclusive inliers.
    margin_partial: float = 3.5
    partial_coverage: float = 0.7
    # The closer look sees a look-alike's shared masthead and ads up close too: under the first look's rules it accepted
    # 13 instead of 8 of 1,600 non-catalog tuning photos at 100 pages (6 instead of 4 at 1,000), each with 26-58
    # inliers, most with a runner-up holding a third of theirs or more. Its pages need closer_min_inliers inliers over
    # closer_min_coverage of the textured cells and closer_margin x the runner-up's exclusive inliers: 8 and 4 non-catalog
    # photos accepted again, and 543 / 565 / 575 of 600 tuning photos found at 10,000 / 1,000 / 100 pages (544 / 565 /
    # 577 without; 534 / 563 / 573 before the paper region).
    closer_min_inliers: int = 35
    closer_min_coverage: float = 0.7
    closer_margin: float = 3.0
    min_distinct: int = 8  # two pages in one photo: each needs this many distinctive inliers
    # Acceptance, tuned on tuning photos (200 of catalog pages, seeds 500,000+; 200 of non-catalog pages sharing a
    # masthead and ads, seeds 600,000+): a right page matched exactly against all its features gets 35-120 inliers;
    # a non-catalog page up to ~57 from a shared masthead and ad, over <= 0.67 of the page's textured cells and with
    # little exclusive evidence (its inliers' index votes are shared by every page with that masthead or ad).
    min_coverage: float = 0.4  # textured page cells holding an inlier (cell_coverage), always
    min_inliers_alone: int = 50  # either this many inliers with min_exclusive_alone exclusive votes ...
    min_exclusive_alone: float = 2.0  # (1.5 and min_exclusive 2.0 before photo features were spread 2 x 2: with more of them
    # on the page, two of 600 tuning non-catalog photos at 10,000 pages (seeds 600,000+) got through with 1.83 and
    # 2.0; right pages lost: 0 / 0 / 1 of 200 / 200 / 600 at 100 / 1,000 / 10,000 pages)
    min_inliers_backed: int = 25  # ... or this many with min_exclusive votes and min_coverage_backed (20 let a non-catalog
    # page through with 21 inliers at 10,000 pages once hits needed to beat the background; right pages accepted by
    # this branch had >= 25 but one at 100 pages: tuning photos, every decision recorded)
    min_exclusive: float = 2.5
    min_coverage_backed: float = 0.7
    # ... or, without exclusive evidence, inliers over nearly the whole page: a right page found by its layout gets
    # 35-210 inliers over 0.8-1.0 of the page's textured cells but 0.1-1.4 exclusive votes; non-catalog pages reached
    # 33 inliers at >= 0.8 coverage, wrong pages 34 (tuning photos at 1,000 and 10,000 pages, every decision
    # recorded: 181 of 200 right vs 176 without this branch, 0 wrong, 0 false positives). With photo features spread
    # 2 x 2, 1,000 more tuning non-catalog photos (seeds 600,600+) at 10,000 pages gave 2 accepted this way with 49 and
    # 50 inliers; of the 600 tuning photos of catalog pages, 36 rely on this branch, with 45 (one) and 57-188 inliers.
    min_inliers_whole: int = 55
    min_coverage_whole: float = 0.85
    margin_whole: float = 2.0
    # ... or many inliers on the page's *own* content. A right page that few photo features hit in the index (small or
    # tilted in the frame) has little exclusive evidence in the votes, however many inliers matching it exactly finds.
    # A non-catalog look-alike matches a catalog page only where both print the same thing, and what a page prints in
    # common with other pages (masthead, footer, a repeated ad) shows in the index itself: page features with a near
    # twin (Hamming <= shared_hamming among the shared_knn nearest indexed features) on another page within shared_mm of
    # the same place (RecognitionIndex._shared_mm). Body inliers lie farther than body_mm from every such feature.
    # Tuning photos (600 of catalog pages, seeds 500,000+; 1,600 non-catalog, 600,000+), every decision recorded at 100 /
    # 1,000 / 10,000 pages: of the rejected wrong hypotheses with >= body_min_coverage and a body_margin lead over the
    # runner-up, none had more than 37 / 38 / 38 body inliers; the right pages of 1 / 2 / 10 missed photos had 45 or more
    # (a bar of 50: 1 / 2 / 7; of 40: the same as 45, but too close to the look-alikes). Measured, and applied, in every
    # pass alike (the closer look's CLOSER_* bar is not added on top).
    shared_knn: int = 10
    shared_hamming: int = 40
    shared_mm: float = 3.0
    body_mm: float = 4.0
    body_min_inliers: int = 45
    body_min_coverage: float = 0.65
    body_margin: float = 3.0
    two_pages_max_shared: float = 0.2  # two verified pages sharing < 20 % of inliers are two pages in view, not rivals
    tilt_min_inliers: int = 50  # a page found by the tilted look (tilt) has this many inliers too
    # ---- Candidate stage: layout check
    # Layout check of the candidate stage. At 10,000 pages a page small or tilted in the photo gets 5-12 of the
    # photo's k-NN hits, nearly all geometrically right, while random pages get 10-20 scattered ones; soft votes
    # ranked such pages 3rd-1800th (tuning photos, seeds 500,000+). The pages with the most hits are checked for
    # hits that one affine map of the page explains (a small page is nearly affine in the photo); on 100 tuning
    # photos at 10,000 pages this put the right page first for 5 of the 13 the votes missed.
    layout_pool: int = 48  # pages with the most hits checked
    layout_samples: int = 64  # random triplets (affine hypotheses) per page
    layout_min: int = 8  # hits one affine map must explain (6 let random pages through at 10,000 pages)
    layout_px: float = 10.0  # photo px: an affine map is within ~10 px of the perspective of a page < ~300 px tall
    layout_max_hits: int = 48  # hits per page used
    layout_candidates: int = 3  # layout-consistent pages verified before the vote order
    # ---- Exact matching of one page
    page_knn: int = 4  # neighbours per query feature on one candidate page (2nd *other point* for the ratio test)
    same_point_mm: float = 1.5  # catalog features this close on the page are one point seen at two catalog scales
    # ---- Coverage
    cover_grid: int = 4  # page divided into 4 x 4 cells for the coverage test
    cover_min_features: int = 4  # a cell counts as textured when it holds this many photo features (and cover_min_share)
    cover_min_share: float = 0.015
    # ---- Index search
    ivf_min_features: int = 20_000  # below ~25 pages an exact search is fast enough (< 20 ms) and needs no training
    # nlist = ivf_list_factor * sqrt(N): the cost per query feature, nlist (coarse search) + nprobe * N / nlist
    # (list scan), is near its minimum, with lists kept large enough for recall at Hamming distances of 40-60 bits.
    ivf_list_factor: float = 2.0
    ivf_retrain_growth: int = 4  # retrain the coarse quantizer when the catalog has grown 4x since the last training
    ivf_nprobe: int = 8  # lists visited per query feature: at 3,000 pages 16 ranked the right page no better, at 2x the time;
    # at 10,000 pages (list-by-list search) 12 found 554 instead of 553 of 600 tuning photos for +6 ms p50 (interleaved)
    ivf_train_iters: int = 6  # k-means iterations for the coarse quantizer: more changes little for binary codes
    ivf_train_points_per_list: int = 24
    # A scope of 8+ pages gets a small IVF of its own (an edition of 24-48 pages indexes 6-12k features): tuning photos
    # at 1,000 pages scoped to their 24-page edition, p50 29 -> 25 ms against an exact search, the same pages found.
    scope_ivf_min_features: int = 2_000
    # ---- Threads
    # Candidate pages are verified two at a time, the second on this worker thread (FAISS and OpenCV release the GIL;
    # decisions stay in candidate order): 3.6 -> 2.0 ms per page alone in a loop, non-catalog photos at 10,000 pages
    # p50 121 -> 117 ms in recognize (2 cores).
    verify_ahead: bool = True  # False: one page at a time (a single-core host)
    # The closer look's features (rz.closer_look: the photo enlarged magnify x, ~11 ms, and the paper region, ~6 ms;
    # medians over 60 non-catalog tuning photos) are computed ahead on a worker when the first search finds no page
    # whose hits fit one layout (true of 1 % of the tuning photos recognized in the first pass, of ~70 % of those that
    # are not): the closer search then does not wait for them.
    closer_ahead: bool = True
    # FAISS's own OpenMP threads do little for these searches (1,500 photo features against an edition's 6,240 indexed
    # features: 11.7 ms on two threads, 4.1 on one; against 1,000 pages: 20 vs 22 ms, both cores busy): the photo's
    # features are split in two halves instead, each searched on one thread, this one and a worker (2.5 / 12 ms; the
    # same neighbours).
    search_split: bool = True  # False: FAISS's own threads (e.g. a single-core host)
    search_split_min: int = 64  # fewer descriptors: one search on this thread


DEFAULT_PARAMS = RecognitionParams()
