"""Body evidence (markers.recognition.acceptance.accept_body): a page whose photo features seldom hit it in the index is accepted
on its inliers away from what it prints in common with other pages (RecognitionIndex._shared_mm), and a look-alike
sharing only a masthead is not."""
import dataclasses
from functools import partial

import numpy as np
import pytest

from markers import RecognitionIndex, train_page
from markers.recognition import DEFAULT_PARAMS as P
from markers.recognition import RecognitionParams, acceptance, photo, verification
from markers.recognition.pipeline import Pipeline
from markers.synth import (
    N_TEMPLATES,
    PAGE_H_MM,
    PAGE_W_MM,
    generate_masthead_sharing_page,
    generate_page,
    synth_photo,
)

# The stages with the default parameters (RecognitionParams), as RecognitionIndex() runs them.
accept_body = partial(acceptance.accept_body, p=P)
body_inliers = partial(acceptance.body_inliers, p=P)
body_may_decide = partial(acceptance.body_may_decide, p=P)
query_features = partial(photo.query_features, p=P)
Verified = verification.Verified

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


def _verified(inliers_mm: np.ndarray, scale: float = 2.0, slot: int = 0, first_q: int = 0) -> Verified:
    h = np.diag([scale, scale, 1.0])
    q = np.arange(first_q, first_q + len(inliers_mm))
    px = inliers_mm * scale
    return Verified(slot, h, q, len(q), px, inliers_mm, px)


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
    assert body_inliers(v, np.zeros((0, 2))) == 4
    assert body_inliers(v, np.array([[11.0, 10.0]])) == 2  # both within BODY_MM of the shared feature
    assert body_inliers(v, np.array([[11.0, 10.0 + P.body_mm + 2]])) == 4
    assert body_inliers(_verified(np.zeros((0, 2))), np.zeros((0, 2))) == 0


def test_acceptance_on_body_inliers_needs_enough_of_them_coverage_and_a_lead():
    rng = np.random.default_rng(0)
    n = P.body_min_inliers
    best = _verified(rng.uniform(0, 200, (n, 2)))
    assert accept_body(best, None, P.body_min_coverage, n)
    assert not accept_body(best, None, P.body_min_coverage, n - 1)
    assert not accept_body(best, None, P.body_min_coverage - 0.05, n)
    # A runner-up with a third of the best page's inliers of its own is too close.
    runner = _verified(rng.uniform(0, 200, (n // 3 + 1, 2)), first_q=10_000)
    assert not body_may_decide(best, runner, 1.0)
    assert not accept_body(best, runner, 1.0, n)
    assert not body_may_decide(_verified(rng.uniform(0, 200, (n - 1, 2))), None, 1.0)


def _no_whole_page_branch(**changes) -> RecognitionParams:
    # Pages seen whole are accepted without votes anyway (min_*_whole): switched off so only the body can decide.
    return dataclasses.replace(P, min_inliers_whole=10 ** 6, **changes)


def _no_votes(v, to_work=None):
    return 0.0


def test_a_page_without_vote_evidence_is_accepted_on_its_body_inliers(index):
    stages = Pipeline(index, _no_whole_page_branch())
    slot = index._pages["p0"].slot
    photo = synth_photo(generate_page(0), PAGE_W_MM, PAGE_H_MM, 11, frame=(1280, 720), page_px_tall=700,
                        max_tilt_deg=25)
    q = query_features(photo.image)
    v = stages._verify_page(q, slot)
    accepted = stages._accepted(q, [v], _no_votes)
    assert accepted is not None and index._slots[accepted[0].slot].page_id == "p0"
    assert Pipeline(index, _no_whole_page_branch(body_min_inliers=10 ** 6))._accepted(q, [v], _no_votes) is None


def test_a_look_alike_sharing_the_masthead_has_few_body_inliers(index, markers):
    stages = Pipeline(index, _no_whole_page_branch())
    slot = index._pages["p0"].slot
    fake = generate_masthead_sharing_page(907, template=0)
    photo = synth_photo(fake, PAGE_W_MM, PAGE_H_MM, 7, frame=(1280, 720), page_px_tall=700, max_tilt_deg=25)
    q = query_features(photo.image)
    v = stages._verify_page(q, slot)
    assert v is not None and len(v.inlier_q) >= 30  # the masthead (and footer) match page 0 well
    body = body_inliers(v, index._shared_mm(slot))
    assert body < P.body_min_inliers and body <= len(v.inlier_q) - 8
    # With a bar low enough for its inliers, the twin's masthead is what keeps it out: without the twin in the
    # index, the masthead is page 0's own and the look-alike would pass.
    low_bar = Pipeline(index, _no_whole_page_branch(body_min_inliers=body + 1, body_min_coverage=0.5))
    assert low_bar._accepted(q, [v], _no_votes) is None
    index.remove(f"p{N_TEMPLATES}")
    assert low_bar._accepted(q, [v], _no_votes) is not None
