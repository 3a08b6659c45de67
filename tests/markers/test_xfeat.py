"""XFeat without PyTorch (markers/recognition/xfeat.py, issue 30): the exported network and our numpy
post-processing reproduce upstream's own outputs (tests/markers/xfeat_reference.npz, written by
scripts/export_xfeat_onnx.py from the wheel's torch code), and the model loads with no network."""
from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest

from markers.recognition import xfeat as xf

REFERENCE = Path(__file__).with_name("xfeat_reference.npz")


@pytest.fixture(scope="module")
def ref():
    return np.load(REFERENCE)


@pytest.fixture(scope="module")
def model():
    return xf.XFeat()


def test_network_outputs_match_upstream_torch(model, ref):
    feats, logits, heat = model.forward(ref["image"])
    assert np.abs(feats - ref["feats"][0]).max() < 1e-3
    assert np.abs(logits - ref["keypoints"][0]).max() < 1e-3
    assert np.abs(heat - ref["heatmap"][0, 0]).max() < 1e-4


def test_sparse_features_match_upstream_detect_and_compute(model, ref):
    out = model.detect(ref["page"], top_k=300)
    assert len(out) == len(ref["page_xy"]) == 300
    ours = {tuple(p): i for i, p in enumerate(np.round(out.xy).astype(int))}
    theirs = {tuple(p): i for i, p in enumerate(np.round(ref["page_xy"]).astype(int))}
    common = sorted(set(ours) & set(theirs))
    assert len(common) >= 295  # the 300th place is a near-tie between scores that differ by ~1e-4
    a, b = [ours[c] for c in common], [theirs[c] for c in common]
    assert np.abs(out.descriptors[a] - ref["page_descriptors"][b].astype(np.float32)).max() < 2e-3
    assert np.abs(out.scores[a] - ref["page_scores"][b]).max() < 2e-3
    np.testing.assert_allclose(np.linalg.norm(out.descriptors, axis=1), 1.0, atol=1e-5)
    assert np.all(np.diff(out.scores) <= 0)


def test_model_loads_and_runs_with_sockets_blocked(monkeypatch, ref):
    def refuse(*args, **kwargs):
        raise OSError("network blocked in this test")
    monkeypatch.setattr(socket, "socket", refuse)
    model = xf.XFeat()
    assert len(model.detect(ref["page"], top_k=50)) == 50


def test_a_model_file_that_is_not_the_export_is_refused(tmp_path):
    bad = tmp_path / "xfeat.onnx"
    bad.write_bytes(xf.MODEL_PATH.read_bytes()[:-1] + b"\0")
    with pytest.raises(xf.XFeatModelError, match="SHA-256"):
        xf.XFeat(bad)
    with pytest.raises(xf.XFeatModelError, match="cannot be read"):
        xf.XFeat(tmp_path / "missing.onnx")


def test_bad_inputs_are_refused_and_tiny_images_give_no_features(model):
    with pytest.raises(ValueError):
        model.detect(np.zeros((64, 64, 3), np.uint8), top_k=10)
    with pytest.raises(ValueError):
        model.detect(np.zeros((2000, 1100), np.uint8), top_k=10)
    assert len(model.detect(np.zeros((20, 300), np.uint8), top_k=10)) == 0


def test_keypoints_follow_a_scaled_image(model, ref):
    """Keypoints are returned in the px of the image handed in, whatever size the network saw."""
    import cv2
    page = ref["page"]
    big = cv2.resize(page, (page.shape[1] * 2 + 10, page.shape[0] * 2 + 6), interpolation=cv2.INTER_LINEAR)
    a, b = model.detect(page, top_k=100), model.detect(big, top_k=400)
    sx, sy = (big.shape[1]) / page.shape[1], (big.shape[0]) / page.shape[0]
    # the strongest keypoints of the small image reappear (within 3 px of the big one) once scaled
    want = (a.xy[:30] + 0.5) * np.float32([sx, sy]) - 0.5
    d = np.linalg.norm(want[:, None] - b.xy[None], axis=2).min(axis=1)
    assert np.mean(d < 3 * max(sx, sy)) > 0.6


def test_features_match_a_tilted_view_of_the_same_page(model):
    """A generated page and a view of it tilted ~35 deg about its horizontal axis and shrunk: XFeat features, mutual
    nearest neighbours and MAGSAC give back the view's homography (corners within 4 px); a page of another seed
    gives no such homography."""
    import cv2

    from markers import synth

    def gray(seed):
        page = cv2.cvtColor(synth.generate_page(seed), cv2.COLOR_BGR2GRAY)
        return cv2.resize(page, None, fx=480 / page.shape[0], fy=480 / page.shape[0], interpolation=cv2.INTER_AREA)

    page = gray(3)
    h, w = page.shape
    corners = np.float32([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]])
    seen = np.float32([[60, 40], [w - 60, 40], [w + 10, h - 120], [-10, h - 120]]) + 40  # far edge narrower
    true_h = cv2.getPerspectiveTransform(corners, seen)
    view = cv2.warpPerspective(page, true_h, (w + 80, h), borderValue=90)

    def homography(a, b):
        fa, fb = model.detect(a, 600), model.detect(b, 600)
        sim = fa.descriptors @ fb.descriptors.T
        ab, ba = sim.argmax(axis=1), sim.argmax(axis=0)
        keep = np.nonzero(ba[ab] == np.arange(len(ab)))[0]
        return cv2.findHomography(fa.xy[keep], fb.xy[ab[keep]], cv2.USAC_MAGSAC, 3.0)

    found, mask = homography(page, view)
    assert found is not None and int(mask.sum()) >= 40
    err = np.linalg.norm(cv2.perspectiveTransform(corners[None], found)[0] - seen, axis=1).max()
    assert err < 4.0
    other, mask = homography(gray(4), view)
    assert other is None or int(mask.sum()) < 15
