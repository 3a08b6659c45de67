"""Would a second descriptor find the photos ORB cannot (issue 30)? RootSIFT at reduced resolution, with the right
page handed (an oracle: the ceiling of a second pass over candidate pages), on the bench's held-out generated photos.

    .venv/bin/python bench/second_descriptor_probe.py [--queries 200] [--photo-side 960] [--page-side 1000]

For every photo of set (a) (bench/bench_recognition.py, seeds 1,000,000+): RootSIFT features of the photo shrunk to
``--photo-side`` px and of its page rendered at ``--page-side`` px, Lowe's ratio test (0.8), RANSAC (5 px); found
when >= 12 inliers and the page corners land within 10 px of the ground truth. Beside it the ORB ceiling of the same
photo (bench/diagnose_candidates.py oracle: ORB features verified against the right page alone). Prints per-photo
lines for the photos ORB misses, the shares and the time of each step (one thread, a shared machine).
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


def rootsift(gray: np.ndarray, side: int, sift: cv2.SIFT) -> tuple[np.ndarray, np.ndarray, float]:
    """(xy px of ``gray``, RootSIFT descriptors, scale used) of ``gray`` shrunk to ``side`` px at most."""
    f = min(1.0, side / max(gray.shape))
    small = cv2.resize(gray, None, fx=f, fy=f, interpolation=cv2.INTER_AREA) if f < 1 else gray
    kps, desc = sift.detectAndCompute(small, None)
    if desc is None:
        return np.zeros((0, 2), np.float32), np.zeros((0, 128), np.float32), f
    desc = np.sqrt(desc / np.maximum(desc.sum(axis=1, keepdims=True), 1e-7)).astype(np.float32)
    xy = (np.float32([k.pt for k in kps]) + 0.5) / f - 0.5
    return xy, desc, f


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--photo-side", type=int, default=960)
    ap.add_argument("--page-side", type=int, default=1000)
    args = ap.parse_args()
    cv2.setNumThreads(1)
    q_a = br.synthetic_queries(args.queries)
    seeds = sorted({int(q["page_id"].removeprefix("gen-")) for q in q_a})
    sift = cv2.SIFT_create(nfeatures=4000)
    index = RecognitionIndex()
    pages, page_ms = {}, []
    for s in seeds:
        img = synth.generate_page(s)
        index.add(train_page(img, synth.PAGE_W_MM, synth.PAGE_H_MM, f"gen-{s}"))
        t = time.perf_counter()
        xy, desc, _ = rootsift(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), args.page_side, sift)
        page_ms.append((time.perf_counter() - t) * 1000)
        mm = xy * np.float32([synth.PAGE_W_MM / img.shape[1], synth.PAGE_H_MM / img.shape[0]])
        pages[f"gen-{s}"] = (mm, desc)
    bf = cv2.BFMatcher(cv2.NORM_L2)
    found_sift, found_orb, photo_ms, match_ms = [], [], [], []
    corners_mm = page_corners_mm(synth.PAGE_W_MM, synth.PAGE_H_MM)
    for q in q_a:
        gray = cv2.cvtColor(q["image"], cv2.COLOR_BGR2GRAY)
        t = time.perf_counter()
        xy, desc, _ = rootsift(gray, args.photo_side, sift)
        photo_ms.append((time.perf_counter() - t) * 1000)
        mm, pdesc = pages[q["page_id"]]
        t = time.perf_counter()
        ok, inliers = False, 0
        if len(desc) >= 2 and len(pdesc) >= 2:
            pairs = bf.knnMatch(desc, pdesc, k=2)
            good = [a for a, b in (p for p in pairs if len(p) == 2) if a.distance < 0.8 * b.distance]
            if len(good) >= 12:
                src = mm[[g.trainIdx for g in good]].astype(np.float64)
                dst = xy[[g.queryIdx for g in good]].astype(np.float64)
                h, mask = cv2.findHomography(src, dst, cv2.USAC_MAGSAC, 5.0, maxIters=2000)
                if h is not None and mask is not None:
                    inliers = int(mask.sum())
                    err = np.linalg.norm(project(h, corners_mm) - project(q["H"], corners_mm), axis=1).max()
                    ok = inliers >= 12 and err < 10.0
        match_ms.append((time.perf_counter() - t) * 1000)
        by_page, _ = oracle(index, q)
        found_sift.append(ok)
        found_orb.append(by_page)
        if not by_page:
            print(f"# ORB misses {q['page_id']} tall={q['tall']:.0f} tilt={q['tilt']:.0f}: RootSIFT "
                  f"{'finds' if ok else 'misses'} it ({inliers} inliers)", flush=True)
    s, o = np.array(found_sift), np.array(found_orb)
    print(f"# {len(q_a)} photos of set (a); RootSIFT photo at <= {args.photo_side} px, page at {args.page_side} px")
    print(f"RESULT rootsift_true_page={s.mean():.3f} orb_true_page={o.mean():.3f} "
          f"rootsift_finds_orb_misses={int((s & ~o).sum())}/{int((~o).sum())} either={(s | o).mean():.3f} "
          f"photo_ms_p50={np.median(photo_ms):.0f} match_ms_p50={np.median(match_ms):.1f} "
          f"page_ms_p50={np.median(page_ms):.0f} page_kb={np.mean([len(d) for _, d in pages.values()]) * 128 / 1024:.0f}")


if __name__ == "__main__":
    main()
