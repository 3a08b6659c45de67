"""The candidate stage's layout check (nearest_hits, affine_consistency) and the whole-page acceptance."""
from functools import partial

import numpy as np

from markers.recognition import DEFAULT_PARAMS as P
from markers.recognition import acceptance, candidates, verification

# The stages with the default parameters (RecognitionParams), as RecognitionIndex() runs them.
accept = partial(acceptance.accept, p=P)
affine_consistency = partial(candidates.affine_consistency, p=P)
soft_votes = partial(candidates.soft_votes, p=P)
Verified = verification.Verified
nearest_hits = candidates.nearest_hits


def _pages_of_hits(rng, n_hits=20, true_hits=10, affine=None):
    """One page's hits: ``true_hits`` mapped by ``affine`` (2x3, page mm -> photo px, +/- 2 px), the rest random."""
    pm = rng.uniform(0, 300, (n_hits, 2))
    pq = rng.uniform(0, 1280, (n_hits, 2))
    if affine is not None:
        pq[:true_hits] = pm[:true_hits] @ affine[:, :2].T + affine[:, 2] + rng.normal(0, 2, (true_hits, 2))
    return pq, pm


def test_hits_one_affine_map_explains_are_counted_and_random_hits_are_not():
    rng = np.random.default_rng(1)
    tilted = np.array([[0.9, 0.25, 300.0], [-0.1, 0.6, 100.0]])  # ~1 px/mm, foreshortened, slightly rotated
    pq_a, pm_a = _pages_of_hits(rng, 20, 10, tilted)
    pq_b, pm_b = _pages_of_hits(rng, 20)
    best = affine_consistency(np.stack([pq_a, pq_b]), np.stack([pm_a, pm_b]), np.array([20, 20]))
    assert best[0] >= 9  # nearly all of the 10 (64 random triplets need 3 of them)
    assert best[1] < P.layout_min


def test_mirrored_or_absurdly_scaled_layouts_are_not_plausible():
    rng = np.random.default_rng(2)
    mirrored = np.array([[-1.0, 0.0, 900.0], [0.0, 1.0, 100.0]])
    huge = np.array([[20.0, 0.0, 0.0], [0.0, 20.0, 0.0]])  # 20 px per mm: a page 6 m tall in the photo
    pq_m, pm_m = _pages_of_hits(rng, 12, 12, mirrored)
    pq_h, pm_h = _pages_of_hits(rng, 12, 12, huge)
    best = affine_consistency(np.stack([pq_m, pq_h]), np.stack([pm_m, pm_h]), np.array([12, 12]))
    assert best.max() < P.layout_min


def test_padding_beyond_a_pages_count_is_ignored_and_result_is_deterministic():
    rng = np.random.default_rng(3)
    aff = np.array([[1.0, 0.0, 50.0], [0.0, 1.0, 60.0]])
    pq, pm = _pages_of_hits(rng, 12, 12, aff)
    pad_q, pad_m = np.zeros((30, 2)), np.zeros((30, 2))
    pad_q[:12], pad_m[:12] = pq, pm
    pad_q[12:] = pad_m[12:] @ aff[:, :2].T + aff[:, 2]  # would be inliers if the padding were read
    one = affine_consistency(pad_q[None], pad_m[None], np.array([12]))
    assert one[0] <= 12
    assert one[0] == affine_consistency(pad_q[None], pad_m[None], np.array([12]))[0]


def test_nearest_hits_keeps_one_nearest_hit_per_photo_feature_and_page():
    bits = 12
    ids = np.array([[(3 << bits) | 7, (3 << bits) | 9, (5 << bits) | 1],
                    [(5 << bits) | 2, -1, (3 << bits) | 4]], np.int64)
    dist = np.array([[30, 20, 40], [10, 0, 100]], np.int32)  # 100 > MAX_HAMMING: no hit
    rows, slots, feats = nearest_hits(soft_votes(dist, ids, bits), dist, ids, bits)
    got = sorted(zip(rows.tolist(), slots.tolist(), feats.tolist()))
    assert got == [(0, 3, 9), (0, 5, 1), (1, 5, 2)]
    assert list(slots) == sorted(slots)
    rows, slots, feats = nearest_hits(soft_votes(dist, ids, bits, allowed=np.array([5])), dist, ids, bits)
    assert set(slots.tolist()) == {5}


def _nearest_hits_by_lexsort(votes, dist, ids, bits):
    """The definition, spelled out: nearest hit per (page, photo feature), then by page, closest first."""
    r, c = np.nonzero(votes.near >= 0)
    s, f, d = votes.near[r, c], ids[r, c] & ((1 << bits) - 1), dist[r, c]
    o = np.lexsort((c, d, r, s))
    r, s, f, d = r[o], s[o], f[o], d[o]
    key = s * len(dist) + r
    keep = np.r_[True, key[1:] != key[:-1]]
    r, s, f, d = r[keep], s[keep], f[keep], d[keep]
    o = np.lexsort((r, d, s))
    return r[o], s[o], f[o]


def test_nearest_hits_orders_each_page_closest_first_like_the_definition():
    rng = np.random.default_rng(7)
    bits = 12
    ids = (rng.integers(0, 50, (400, 10)).astype(np.int64) << bits) | rng.integers(0, 260, (400, 10))
    ids[:, 1] = ids[:, 0] ^ 1  # the same page twice in one row
    ids[rng.random((400, 10)) < 0.05] = -1
    dist = np.sort(rng.integers(0, 80, (400, 10)), axis=1).astype(np.int32)
    votes = soft_votes(dist, ids, bits)
    got = nearest_hits(votes, dist, ids, bits)
    want = _nearest_hits_by_lexsort(votes, dist, ids, bits)
    assert len(want[0]) > 1000
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


def _verified(n, start=0):
    q = np.arange(start, start + n)
    return Verified(0, np.eye(3), q, n, np.zeros((n, 2)), np.zeros((n, 2)), np.zeros((n, 2)))


def test_many_inliers_over_the_whole_page_are_accepted_without_exclusive_votes():
    ok, _ = accept(_verified(60), _verified(10, 1000), cover=0.9, exclusive=0.2)
    assert ok
    # the same inliers over part of the page (a shared masthead and ad) need exclusive votes
    assert not accept(_verified(60), _verified(10, 1000), cover=0.7, exclusive=0.2)[0]
    # or a runner-up explaining half as many on its own
    assert not accept(_verified(60), _verified(35, 1000), cover=0.9, exclusive=0.2)[0]


def test_few_inliers_need_exclusive_votes_and_at_least_min_inliers_backed():
    assert accept(_verified(30), None, cover=0.75, exclusive=3.0)[0]
    assert not accept(_verified(30), None, cover=0.75, exclusive=1.0)[0]  # no exclusive evidence
    # 21 inliers with evidence: the non-catalog page a 10,000-page catalog once accepted
    assert not accept(_verified(21), None, cover=0.75, exclusive=3.2)[0]


def test_a_page_matched_over_part_of_it_must_lead_its_runner_up_clearly():
    # 40 exclusive inliers against the runner-up's 14 over 0.64 of the page: a non-catalog page that shares its
    # masthead with a few catalog pages (a tuning photo at 100 pages)
    assert not accept(_verified(60), _verified(34, 40), cover=0.64, exclusive=6.0)[0]
    # the same lead over most of the page is enough ...
    assert accept(_verified(60), _verified(34, 40), cover=0.75, exclusive=6.0)[0]
    # ... and so is a clear lead over part of it
    assert accept(_verified(60), _verified(23, 50), cover=0.64, exclusive=6.0)[0]


def test_a_second_look_at_a_rejected_page_must_lead_its_runner_up_clearly():
    # the rectified pass once accepted a non-catalog page at 24 exclusive inliers against the rival's 14
    assert accept(_verified(38), _verified(28, 24), cover=0.75, exclusive=3.0)[0]
    assert not accept(_verified(38), _verified(28, 24), cover=0.75, exclusive=3.0, second_look=True)[0]
    assert accept(_verified(38), _verified(10, 1000), cover=0.75, exclusive=3.0, second_look=True)[0]


def test_exclusive_evidence_thresholds_reject_the_non_catalog_pages_tuning_found():
    # two tuning photos of non-catalog pages at 10,000 pages: 32 inliers over 0.7 of the page with 2.0 exclusive
    # votes, 63 inliers (52 vs 13 exclusive) over 0.55 with 1.83
    assert not accept(_verified(32), None, cover=0.7, exclusive=2.0)[0]
    assert not accept(_verified(63), _verified(24, 52), cover=0.55, exclusive=1.83)[0]
    assert accept(_verified(32), None, cover=0.7, exclusive=2.5)[0]
    assert accept(_verified(63), _verified(24, 52), cover=0.55, exclusive=2.0)[0]


def test_whole_page_acceptance_needs_more_inliers_than_non_catalog_pages_reached():
    # tuning non-catalog photos at 10,000 pages: 49 inliers over all textured cells without exclusive votes, and 50
    # over 0.9 of them with 1.0
    assert not accept(_verified(49), None, cover=1.0, exclusive=0.0)[0]
    assert not accept(_verified(50), None, cover=0.9, exclusive=1.0)[0]
    assert accept(_verified(57), None, cover=1.0, exclusive=0.0)[0]
