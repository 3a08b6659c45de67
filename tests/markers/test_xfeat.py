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
