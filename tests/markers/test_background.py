"""The background model of the candidate stage (markers.background, the ``background`` of soft_votes) and its
place in the index file."""
from functools import partial

import numpy as np
import pytest

from markers import RecognitionIndex, synth, train_page
from markers.background import BANK_FILE, background_bank, background_distance, build_background_descriptors
from markers.recognition import DEFAULT_PARAMS as P
from markers.recognition import FEATURE_BITS, INDEXED_FEATURES, candidates

# The stages with the default parameters (RecognitionParams), as RecognitionIndex() runs them.
soft_votes = partial(candidates.soft_votes, p=P)


def _ids(slot, feats):
    return (np.int64(slot) << FEATURE_BITS) | np.asarray(feats, np.int64)


def test_bank_is_deterministic_generic_photo_content():
    bank = background_bank()
    assert bank.ntotal > 10_000  # 20 generated phone photos
    first = np.frombuffer(bank.reconstruct(0), np.uint8)
    assert background_distance(first[None])[0] == 0  # a bank descriptor is its own nearest
    rng = np.random.default_rng(0)
    random_desc = rng.integers(0, 256, (200, 32), dtype=np.uint8)
    d = background_distance(random_desc)
    assert d.dtype == np.uint8 and d.min() > 60  # random bits are far from any real image feature
    assert background_distance(np.zeros((0, 32), np.uint8)).shape == (0,)


def test_the_shipped_bank_is_what_the_code_builds():
    """markers/models/background-bank.npy is loaded instead of being built in every process; it must not drift
    from the code that defines it (scripts/build_background_bank.py writes it again)."""
    shipped = np.load(BANK_FILE, allow_pickle=False)
    built = build_background_descriptors()
    assert shipped.shape == built.shape and shipped.dtype == np.uint8
    assert np.array_equal(shipped, built), "markers/models/background-bank.npy is stale: run scripts/build_background_bank.py"


def test_a_neighbour_no_closer_than_the_background_is_not_a_vote():
    # Photo features 0 and 1 both have page 0 feature 0 / page 1 feature 0 as neighbours at distance 30; page 0's
    # feature is generic (background at 25), page 1's is distinctive (background at 60).
    dist = np.array([[30, 40], [30, 40]], np.int32)
    ids = np.stack([[_ids(0, 0), _ids(1, 1)], [_ids(1, 0), _ids(0, 1)]])
    background = np.zeros((2, INDEXED_FEATURES), np.uint8)
    background[0, :2] = (25, 60)
    background[1, :2] = (60, 60)
    plain = soft_votes(dist, ids, FEATURE_BITS)
    filtered = soft_votes(dist, ids, FEATURE_BITS, background=background)
    assert plain.score[0] == pytest.approx(1.0) and plain.score[1] == pytest.approx(1.0)
    # Row 0: page 0's hit (30 >= 25) is dropped, page 1's feature 1 (40 < 60) now carries the vote.
    assert filtered.score[0] == pytest.approx(0.0)
    assert filtered.score[1] == pytest.approx(2.0)
    assert filtered.slots[0, 0] == -1 and filtered.slots[0, 1] == 1
    assert filtered.near[0, 0] == 0  # the layout check still sees the hit (geometry judges it)
    # Equal to the background distance is not closer: dropped too.
    background[1, 0] = 30
    assert soft_votes(dist, ids, FEATURE_BITS, background=background).score[1] == pytest.approx(1.0)


@pytest.fixture(scope="module")
def two_page_index():
    index = RecognitionIndex()
    for seed in (3, 4):
        index.add(train_page(synth.generate_page(seed), synth.PAGE_W_MM, synth.PAGE_H_MM, f"p{seed}"))
    return index


def test_index_keeps_each_indexed_features_background_distance(two_page_index, tmp_path):
    page = two_page_index._pages["p3"]
    expected = background_distance(page.descriptors[:INDEXED_FEATURES])
    assert np.array_equal(two_page_index._background[page.slot, :len(expected)], expected)
    assert np.median(expected) > 20  # trained pages keep distinctive features, not generic ones
    path = tmp_path / "i.bnix"
    two_page_index.save(path)
    loaded = RecognitionIndex.load(path)
    for pid in ("p3", "p4"):
        slot = two_page_index._pages[pid].slot
        assert np.array_equal(loaded._background[loaded._pages[pid].slot], two_page_index._background[slot])
    # Memory per page counts the one byte per indexed feature.
    assert loaded.memory_bytes() == two_page_index.memory_bytes()


def test_removed_pages_slot_votes_for_nobody_and_is_reused():
    index = RecognitionIndex()
    index.add(train_page(synth.generate_page(3), synth.PAGE_W_MM, synth.PAGE_H_MM, "a"))
    slot = index._pages["a"].slot
    index.remove("a")
    assert not index._background[slot].any()
    index.add(train_page(synth.generate_page(4), synth.PAGE_W_MM, synth.PAGE_H_MM, "b"))
    assert index._pages["b"].slot == slot and index._background[slot].any()
