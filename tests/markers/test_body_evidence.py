"""Body evidence (markers.recognize.accept_body): a page whose photo features seldom hit it in the index is accepted
on its inliers away from what it prints in common with other pages (RecognitionIndex._shared_mm), and a look-alike
sharing only a masthead is not."""
import numpy as np
import pytest

from markers import RecognitionIndex, train_page
from markers import recognize as rz
from markers.synth import (
    N_TEMPLATES,
    PAGE_H_MM,
    PAGE_W_MM,
    generate_masthead_sharing_page,
    generate_page,
    synth_photo,
)

MASTHEAD_MM = 40.0  # the masthead band of a generated page lies above this


@pytest.fixture(scope="module")
def markers():
    # Pages 0 and N_TEMPLATES share template 0's masthead; page 1 has another template.
    return {s: train_page(generate_page(s), PAGE_W_MM, PAGE_H_MM, f"p{s}") for s in (0, 1, N_TEMPLATES)}


@pytest.fixture
def index(markers):
    idx = RecognitionIndex()
    for s in (0, 1, N_TEMPLATES):
        idx.add(markers[s])
    return idx


def _verified(inliers_mm: np.ndarray, scale: float = 2.0, slot: int = 0, first_q: int = 0) -> rz.Verified:
    h = np.diag([scale, scale, 1.0])
    q = np.arange(first_q, first_q + len(inliers_mm))
    px = inliers_mm * scale
    return rz.Verified(slot, h, q, len(q), px, inliers_mm, px)


def test_shared_features_are_the_masthead_a_page_shares_with_its_template_twin(index):
    slot = index._pages["p0"].slot
    shared = index._shared_mm(slot)
    assert len(shared) >= 8
    assert (shared[:, 1] < MASTHEAD_MM).sum() >= len(shared) - 2  # the masthead, not the stories
    index.remove(f"p{N_TEMPLATES}")  # without its twin the masthead is the page's own
    assert len(index._shared_mm(slot)) <= 2


def test_body_inliers_are_those_away_from_shared_features():
    inliers = np.array([[10.0, 10.0], [12.0, 11.0], [100.0, 200.0], [150.0, 300.0]])
    v = _verified(inliers)
    assert rz.body_inliers(v, np.zeros((0, 2))) == 4
    assert rz.body_inliers(v, np.array([[11.0, 10.0]])) == 2  # both within BODY_MM of the shared feature
    assert rz.body_inliers(v, np.array([[11.0, 10.0 + rz.BODY_MM + 2]])) == 4
    assert rz.body_inliers(_verified(np.zeros((0, 2))), np.zeros((0, 2))) == 0


def test_acceptance_on_body_inliers_needs_enough_of_them_coverage_and_a_lead():
    rng = np.random.default_rng(0)
    n = rz.BODY_MIN_INLIERS
    best = _verified(rng.uniform(0, 200, (n, 2)))
    assert rz.accept_body(best, None, rz.BODY_MIN_COVERAGE, n)
    assert not rz.accept_body(best, None, rz.BODY_MIN_COVERAGE, n - 1)
    assert not rz.accept_body(best, None, rz.BODY_MIN_COVERAGE - 0.05, n)
    # A runner-up with a third of the best page's inliers of its own is too close.
    runner = _verified(rng.uniform(0, 200, (n // 3 + 1, 2)), first_q=10_000)
    assert not rz.body_may_decide(best, runner, 1.0)
    assert not rz.accept_body(best, runner, 1.0, n)
    assert not rz.body_may_decide(_verified(rng.uniform(0, 200, (n - 1, 2))), None, 1.0)


def _no_whole_page_branch(monkeypatch):
    # Pages seen whole are accepted without votes anyway (MIN_*_WHOLE): switched off so only the body can decide.
    monkeypatch.setattr(rz, "MIN_INLIERS_WHOLE", 10 ** 6)


def _no_votes(v, to_work=None):
    return 0.0


def test_a_page_without_vote_evidence_is_accepted_on_its_body_inliers(index, monkeypatch):
    _no_whole_page_branch(monkeypatch)
    slot = index._pages["p0"].slot
    photo = synth_photo(generate_page(0), PAGE_W_MM, PAGE_H_MM, 11, frame=(1280, 720), page_px_tall=700,
                        max_tilt_deg=25)
    q = rz.query_features(photo.image)
    v = index._verify_page(q, slot)
    accepted = index._accepted(q, [v], _no_votes)
    assert accepted is not None and index._slots[accepted[0].slot].page_id == "p0"
    monkeypatch.setattr(rz, "BODY_MIN_INLIERS", 10 ** 6)
    assert index._accepted(q, [v], _no_votes) is None


def test_a_look_alike_sharing_the_masthead_has_few_body_inliers(index, markers, monkeypatch):
    _no_whole_page_branch(monkeypatch)
    slot = index._pages["p0"].slot
    fake = generate_masthead_sharing_page(907, template=0)
    photo = synth_photo(fake, PAGE_W_MM, PAGE_H_MM, 7, frame=(1280, 720), page_px_tall=700, max_tilt_deg=25)
    q = rz.query_features(photo.image)
    v = index._verify_page(q, slot)
    assert v is not None and len(v.inlier_q) >= 30  # the masthead (and footer) match page 0 well
    body = rz.body_inliers(v, index._shared_mm(slot))
    assert body < rz.BODY_MIN_INLIERS and body <= len(v.inlier_q) - 8
    # With a bar low enough for its inliers, the twin's masthead is what keeps it out: without the twin in the
    # index, the masthead is page 0's own and the look-alike would pass.
    monkeypatch.setattr(rz, "BODY_MIN_INLIERS", body + 1)
    monkeypatch.setattr(rz, "BODY_MIN_COVERAGE", 0.5)
    assert index._accepted(q, [v], _no_votes) is None
    index.remove(f"p{N_TEMPLATES}")
    assert index._accepted(q, [v], _no_votes) is not None
