"""Would a second descriptor find the photos ORB cannot (issue 30)? XFeat (markers/recognition/xfeat.py, ONNX run by
OpenCV) or RootSIFT, with the right page handed (an oracle: the ceiling of a second pass over candidate pages), on
the bench's held-out generated photos (set a) and the real photos (set b).

    .venv/bin/python bench/second_descriptor_probe.py [--descriptor xfeat|rootsift] [--queries 200]
        [--photo-side 1280] [--page-sides 240,480,960] [--page-kp 300] [--photo-kp 2000] [--min-cos 0.5]
        [--page-dtype int8|float32] [--engines]

Set (a): bench/bench_recognition.py's photos (seeds 1,000,000+) of generated pages 0..99; set (b): its 27 real
photos (tpofinder, SmartDoc; ../shared/data) and their reference images. For every photo, features of the photo
(shrunk to ``--photo-side`` px at most) and of its right page, matched (XFeat: mutual nearest neighbours by cosine
similarity >= ``--min-cos``; RootSIFT: Lowe's ratio test 0.8), then a MAGSAC homography page mm -> photo px (5 px);
found when >= 12 inliers and the page corners land within 10 px of the ground truth (max over the 4 corners).

XFeat is not scale-invariant (one scale per image): the page is described at several heights (``--page-sides``,
px of its long side), ``--page-kp`` features in all, shared between the scales (``--page-quota``), and its
descriptors quantised to int8 (``--page-dtype int8``, the default: round(127 x d), a stored form; 64 B + 4 B of
position per feature: 300 features take 19.9 KB, the issue's budget beside ORB's ~40 KB). A homography of >= 8 inliers, however inaccurate, is also handed to the pipeline's rectified pass as its
hint (``+rect_orb``: the photo's ORB features rectified with it, matched against the page's and verified, corners
within 10 px). Beside each photo the ORB ceiling of the same photo (bench/diagnose_candidates.py oracle: ORB features
verified against the right page alone). Prints the photos ORB misses, a table per set and a RESULT line; one thread,
a shared 2-core machine (timings are noisy). ``--engines``: only the network's time under OpenCV's DNN module and
onnxruntime (if importable).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

import bench_recognition as br  # noqa: E402
from diagnose_candidates import oracle  # noqa: E402
from markers import RecognitionIndex, synth, train_page  # noqa: E402
from markers.recognition import page_corners_mm, project  # noqa: E402
from markers.recognition.looks import rectify  # noqa: E402
from markers.recognition.photo import query_features  # noqa: E402
from markers.recognition.verification import page_correspondences, verify as verify_orb  # noqa: E402
from markers.recognition.xfeat import XFeat  # noqa: E402

MIN_INLIERS = 12
HINT_INLIERS = 8  # a homography this weak still rectifies the photo for ORB (params.min_hint_inliers)
CORNER_PX = 10.0  # a found page's corners land within this of the ground truth (photo px)
POSITION_BYTES = 4  # a stored feature's page position, 2 x float16 mm


def shrink(gray: np.ndarray, side: int) -> tuple[np.ndarray, float]:
    """``gray`` shrunk to ``side`` px at most, and its px per ``gray`` px."""
    f = min(1.0, side / max(gray.shape))
    return (cv2.resize(gray, None, fx=f, fy=f, interpolation=cv2.INTER_AREA) if f < 1 else gray), f


class RootSift:
    """RootSIFT with Lowe's ratio test (the first probe's descriptor)."""
    name = "rootsift"

    def __init__(self, args):
        self.sift = cv2.SIFT_create(nfeatures=4000)
        self.args = args
        self.bf = cv2.BFMatcher(cv2.NORM_L2)

    def features(self, gray: np.ndarray, side: int, _limit: int) -> tuple[np.ndarray, np.ndarray]:
        small, f = shrink(gray, side)
        kps, desc = self.sift.detectAndCompute(small, None)
        if desc is None:
            return np.zeros((0, 2), np.float32), np.zeros((0, 128), np.float32)
        desc = np.sqrt(desc / np.maximum(desc.sum(axis=1, keepdims=True), 1e-7)).astype(np.float32)
        return (np.float32([k.pt for k in kps]) + 0.5) / f - 0.5, desc

    def page(self, gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.features(gray, self.args.page_sides[-1], 0)

    def photo(self, gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.features(gray, self.args.photo_side, 0)

    def match(self, desc_q: np.ndarray, desc_p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pairs = self.bf.knnMatch(desc_q, desc_p, k=2)
        good = [a for a, b in (p for p in pairs if len(p) == 2) if a.distance < 0.8 * b.distance]
        return np.int64([g.queryIdx for g in good]), np.int64([g.trainIdx for g in good])

    def page_bytes(self, desc: np.ndarray) -> int:
        return desc.size + len(desc) * POSITION_BYTES  # SIFT's 128 values fit a byte each (OpenCV's own uint8 form)


class XFeatProbe:
    """XFeat: the page at several scales, mutual nearest neighbours by cosine similarity."""
    name = "xfeat"

    def __init__(self, args):
        self.model = XFeat()
        self.args = args

    def page(self, gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sides = self.args.page_sides
        share = np.float64(sides) ** 2 if self.args.page_quota == "area" else np.ones(len(sides))
        quota = np.maximum(1, np.round(self.args.page_kp * share / share.sum())).astype(int)
        xy, desc = [], []
        for side, k in zip(sides, quota):
            small, f = shrink(gray, side)
            out = self.model.detect(small, int(k))
            xy.append((out.xy + 0.5) / f - 0.5)
            desc.append(out.descriptors)
        d = np.concatenate(desc)
        if self.args.page_dtype == "int8":
            d = np.clip(np.round(d * 127), -127, 127).astype(np.int8).astype(np.float32) / 127
        return np.concatenate(xy), d

    def photo(self, gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        up = self.args.photo_upscale
        if up != 1.0:  # enlarged first (small pages seen larger), then held to --photo-side
            gray = cv2.resize(gray, None, fx=up, fy=up, interpolation=cv2.INTER_LINEAR)
        small, f = shrink(gray, self.args.photo_side)
        f *= up
        out = self.model.detect(small, self.args.photo_kp)
        return (out.xy + 0.5) / f - 0.5, out.descriptors

    def match(self, desc_q: np.ndarray, desc_p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mutual nearest neighbours with cosine similarity >= --min-cos (upstream ``XFeat.match``)."""
        if len(desc_q) == 0 or len(desc_p) == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        sim = desc_q @ desc_p.T
        q2p, p2q = sim.argmax(axis=1), sim.argmax(axis=0)
        qi = np.arange(len(desc_q))
        keep = (p2q[q2p] == qi) & (sim[qi, q2p] >= self.args.min_cos)
        return qi[keep], q2p[keep]

    def page_bytes(self, desc: np.ndarray) -> int:
        return desc.size * (1 if self.args.page_dtype == "int8" else 4) + len(desc) * POSITION_BYTES


DESCRIPTORS = {"xfeat": XFeatProbe, "rootsift": RootSift}


def corner_px(h: np.ndarray, q: dict) -> float:
    """Worst corner error (photo px) of homography ``h`` (page mm -> photo px) against the ground truth."""
    corners = page_corners_mm(*q["size_mm"])
    return float(np.linalg.norm(project(h, corners) - project(q["H"], corners), axis=1).max())


def verify(xy_q, xy_mm, qi, pi, q: dict) -> tuple[bool, int, float, np.ndarray | None]:
    """(found, inliers, worst corner error px, homography page mm -> photo px or None) of the matches (qi, pi)."""
    if len(qi) < HINT_INLIERS:
        return False, len(qi), float("inf"), None
    h, mask = cv2.findHomography(xy_mm[pi].astype(np.float64), xy_q[qi].astype(np.float64), cv2.USAC_MAGSAC, 5.0,
                                 maxIters=2000)
    if h is None or mask is None:
        return False, 0, float("inf"), None
    err, inliers = corner_px(h, q), int(mask.sum())
    return inliers >= MIN_INLIERS and err < CORNER_PX, inliers, err, (h if inliers >= HINT_INLIERS else None)


def rectified_orb(index: RecognitionIndex, q: dict, h: np.ndarray) -> tuple[bool, int, float]:
    """The pipeline's rectified pass with ``h`` as its hint: the photo's ORB features rectified with it
    (looks.rectify), matched against the right page's ORB features and verified (verification.verify); found when
    >= p.min_inliers and the corners within CORNER_PX. (found, inliers, corner error px)."""
    p = index.params
    feats = query_features(q["image"], p)
    page = index._pages[q["page_id"]]
    h_work = np.diag([feats.scale, feats.scale, 1.0]) @ h  # photo px -> working px (to within 0.5 px)
    rect = rectify(feats, h_work, page.width_mm, page.height_mm, p)
    if rect is None:
        return False, 0, float("inf")
    rq, to_rect = rect
    mm = page.keypoints_mm()
    c = page_correspondences(rq.descriptors, page.descriptors, mm, p)
    v = verify_orb(page.slot, rq.xy, mm[c.f_idx], c.q_idx, c.ratio, page.width_mm, page.height_mm, rq.size, p)
    if v is None:
        return False, 0, float("inf")
    h_photo = np.diag([1 / feats.scale, 1 / feats.scale, 1.0]) @ np.linalg.inv(to_rect) @ v.homography
    err = corner_px(h_photo, q)
    return len(v.inlier_q) >= p.min_inliers and err < CORNER_PX, len(v.inlier_q), err


def run_set(name: str, queries: list[dict], pages: dict, desc, index: RecognitionIndex) -> dict:
    found, by_orb, hinted, photo_ms, match_ms = [], [], [], [], []
    for q in queries:
        gray = cv2.cvtColor(q["image"], cv2.COLOR_BGR2GRAY)
        t = time.perf_counter()
        xy_q, d_q = desc.photo(gray)
        photo_ms.append((time.perf_counter() - t) * 1000)
        xy_mm, d_p = pages[q["page_id"]]
        t = time.perf_counter()
        qi, pi = desc.match(d_q, d_p)
        ok, inliers, err, h = verify(xy_q, xy_mm, qi, pi, q)
        match_ms.append((time.perf_counter() - t) * 1000)
        orb, _ = oracle(index, q)
        hint = rectified_orb(index, q, h) if h is not None else (False, 0, float("inf"))
        found.append(ok)
        by_orb.append(orb)
        hinted.append(ok or hint[0])
        if not orb or not ok:
            print(f"# set {name} {q['page_id']:<22} tall={q.get('tall', 0):4.0f} tilt={q.get('tilt', 0):3.0f} "
                  f"{q.get('name', ''):<24} ORB {'finds' if orb else 'misses'}; {desc.name} "
                  f"{'finds' if ok else 'misses'} it ({len(qi)} matches, {inliers} inliers, corners {err:.1f} px); "
                  f"its hint rectified for ORB: {'found' if hint[0] else 'not found'} ({hint[1]} inliers, "
                  f"corners {hint[2]:.1f} px)", flush=True)
    s, o, r = np.array(found), np.array(by_orb), np.array(hinted)
    return {"set": name, "photos": len(queries), "second": s.mean(), "orb": o.mean(), "either": (s | o).mean(),
            "finds_misses": int((s & ~o).sum()), "misses": int((~o).sum()), "loses": int((o & ~s).sum()),
            "hinted": r.mean(), "hinted_finds_misses": int((r & ~o).sum()), "hinted_either": (r | o).mean(),
            "photo_ms": float(np.median(photo_ms)), "photo_p95": float(np.percentile(photo_ms, 95)),
            "match_ms": float(np.median(match_ms))}


def engine_timing(repeats: int = 15) -> None:
    """The XFeat network's forward on a 640 x 352 and a 1280 x 704 input, 1 and 2 threads: OpenCV's DNN module
    (markers/recognition/xfeat.py) and, if it is importable (not a dependency: install it in a scratch venv),
    onnxruntime; the median of ``repeats`` runs after one warm-up, and the largest output difference."""
    from markers.recognition.xfeat import MODEL_PATH
    try:
        import onnxruntime as ort
    except ImportError:
        ort = None
    model = XFeat()
    for h, w in ((352, 640), (704, 1280)):
        x = np.random.default_rng(0).random((1, 1, h, w), dtype=np.float32)
        for threads in (1, 2):
            cv2.setNumThreads(threads)
            engines = {"opencv_dnn": lambda: model.forward(x)}
            if ort is not None:
                o = ort.SessionOptions()
                setattr(o, "intra_op_num_threads", threads)  # a property of the C++ options
                setattr(o, "inter_op_num_threads", 1)
                sess = ort.InferenceSession(str(MODEL_PATH), o, providers=["CPUExecutionProvider"])
                engines["onnxruntime"] = lambda: [a[0] for a in sess.run(None, {"image": x})]
            outs = {}
            for name, run in engines.items():
                outs[name] = run()
                ms = []
                for _ in range(repeats):
                    t = time.perf_counter()
                    run()
                    ms.append((time.perf_counter() - t) * 1000)
                print(f"ENGINE {name:<11} {w}x{h} threads={threads} ms_p50={np.median(ms):.1f} ms_min={min(ms):.1f}")
            if len(outs) == 2:
                a, b = outs.values()
                print(f"# {w}x{h}: largest |opencv - onnxruntime| of the feats / logits / reliability: "
                      + " / ".join(f"{float(np.abs(u - v.reshape(u.shape)).max()):.1e}" for u, v in zip(a, b)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--descriptor", choices=sorted(DESCRIPTORS), default="xfeat")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--photo-side", type=int, default=1280)
    ap.add_argument("--page-sides", default="240,480,960", help="page long sides described (xfeat: all; rootsift: "
                                                                 "the last)")
    ap.add_argument("--page-kp", type=int, default=300, help="xfeat features per page, all scales")
    ap.add_argument("--page-quota", choices=("area", "equal"), default="equal",
                    help="xfeat: page features shared between the scales by area, or equally")
    ap.add_argument("--photo-upscale", type=float, default=1.0, help="xfeat: the photo enlarged by this first")
    ap.add_argument("--photo-kp", type=int, default=2000, help="xfeat features per photo")
    ap.add_argument("--min-cos", type=float, default=0.5, help="xfeat: least cosine similarity of a match "
                                                              "(upstream XFeat.match's default 0.82 found fewer)")
    ap.add_argument("--page-dtype", choices=("int8", "float32"), default="int8", help="xfeat: page descriptors")
    ap.add_argument("--sets", default="a,b")
    ap.add_argument("--engines", action="store_true", help="only time the network: OpenCV DNN vs onnxruntime")
    args = ap.parse_args()
    if args.engines:
        engine_timing()
        return
    args.page_sides = [int(s) for s in args.page_sides.split(",")]
    cv2.setNumThreads(1)
    desc = DESCRIPTORS[args.descriptor](args)
    q_a = br.synthetic_queries(args.queries) if "a" in args.sets else []
    refs, q_b = br.real_set() if "b" in args.sets else ([], [])
    seeds = sorted({int(q["page_id"].removeprefix("gen-")) for q in q_a})
    index = RecognitionIndex()
    pages, page_ms, page_bytes = {}, [], []
    images = {f"gen-{s}": (synth.generate_page(s), synth.PAGE_W_MM, synth.PAGE_H_MM) for s in seeds}
    for s in seeds:
        img, w_mm, h_mm = images[f"gen-{s}"]
        index.add(train_page(img, w_mm, h_mm, f"gen-{s}"))
    for m, _ in refs:
        index.add(m)
        images[m.page_id] = (br.REAL_PAGE_IMAGES[m.page_id], m.width_mm, m.height_mm)
    for page_id, (img, w_mm, h_mm) in images.items():
        gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        t = time.perf_counter()
        xy, d = desc.page(gray)
        page_ms.append((time.perf_counter() - t) * 1000)
        pages[page_id] = (xy * np.float32([w_mm / gray.shape[1], h_mm / gray.shape[0]]), d)
        page_bytes.append(desc.page_bytes(d))
    rows = [run_set(name, qs, pages, desc, index) for name, qs in (("a", q_a), ("b", q_b)) if qs]
    print(f"# {desc.name}: photo <= {args.photo_side} px, page long sides {args.page_sides}"
          + (f", {args.page_kp} page / {args.photo_kp} photo features, min cos {args.min_cos}, "
             f"{args.page_dtype} page descriptors" if desc.name == "xfeat" else "")
          + "; one thread, shared 2-core machine")
    print(f"{'set':>3} {'photos':>6} {'orb_true_page':>13} {desc.name + '_true_page':>18} {'either':>6} "
          f"{'finds_orb_misses':>16} {'loses':>5} {'+rect_orb':>9} {'+rect_finds_misses':>18} {'+rect_either':>12} "
          f"{'photo_ms_p50':>12} {'photo_ms_p95':>12} {'match_ms_p50':>12}")
    for r in rows:
        print(f"{r['set']:>3} {r['photos']:>6} {r['orb']:>13.3f} {r['second']:>18.3f} {r['either']:>6.3f} "
              f"{str(r['finds_misses']) + '/' + str(r['misses']):>16} {r['loses']:>5} {r['hinted']:>9.3f} "
              f"{str(r['hinted_finds_misses']) + '/' + str(r['misses']):>18} {r['hinted_either']:>12.3f} "
              f"{r['photo_ms']:>12.0f} "
              f"{r['photo_p95']:>12.0f} {r['match_ms']:>12.1f}")
    kb = np.mean(page_bytes) / 1024
    parts = " ".join(f"{r['set']}_true_page={r['second']:.3f} {r['set']}_orb_true_page={r['orb']:.3f} "
                     f"{r['set']}_finds_orb_misses={r['finds_misses']}/{r['misses']} {r['set']}_either={r['either']:.3f} "
                     f"{r['set']}_hint_rectified_orb_finds_misses={r['hinted_finds_misses']}/{r['misses']} "
                     f"{r['set']}_hint_either={r['hinted_either']:.3f}"
                     for r in rows)
    print(f"RESULT descriptor={desc.name} {parts} photo_ms_p50={rows[0]['photo_ms']:.0f} "
          f"match_ms_p50={rows[0]['match_ms']:.1f} page_ms_p50={np.median(page_ms):.0f} page_kb={kb:.1f}")


if __name__ == "__main__":
    main()
