"""Why photos are missed (issue 30): for every photo of a catalog page that ``recognize`` does not answer with its
page, where the right page was lost — never a candidate of the first search (and why: how many of the photo's k-NN
hits were on it, how many survived the background test, its soft-vote rank), a candidate that verification could
not fit, or a candidate verified but refused by acceptance (and which rule).

    .venv/bin/python bench/diagnose_candidates.py [--pages 1000] [--queries 200]

Same catalog and query sets as bench/bench_recognition.py (held-out seeds 1,000,000+ and the real photos of set (b),
read in place from ../shared/data). Prints one line per miss and a count per cause; exact matching of the photo
against the right page alone (``inliers_true``: the pipeline's own verification, all the page's features) says
whether the page was findable at all.
"""
from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import numpy as np  # noqa: E402

import bench_recognition as br  # noqa: E402
from markers import RecognitionIndex, synth  # noqa: E402
from markers.recognition.acceptance import accept, cell_coverage  # noqa: E402
from markers.recognition.candidates import layout_consistent, rank_candidates  # noqa: E402
from markers.recognition.catalog import FEATURE_BITS  # noqa: E402
from markers.recognition.geometry import project  # noqa: E402
from markers.recognition.looks import rectify  # noqa: E402
from markers.recognition.photo import query_features  # noqa: E402
from markers.recognition.verification import page_correspondences  # noqa: E402
from markers.recognition.pipeline import Pipeline  # noqa: E402


def diagnose(index: RecognitionIndex, q: dict) -> dict:
    """The right page's way through the first search of photo ``q`` (its candidates, verification, acceptance)."""
    p = index.params
    feats = query_features(q["image"], p)
    slot = index._pages[q["page_id"]].slot
    dist, ids = index._search(feats.descriptors, index._index, p.knn)
    slots, votes = rank_candidates(feats, dist, ids, index._slots, index._background, None, FEATURE_BITS,
                                   p.max_candidates, p)
    near = votes.near
    hits = int((near == slot).any(axis=1).sum())
    kept = int((votes.slots == slot).any(axis=1).sum())  # hits that beat the background
    order = np.argsort(-votes.score, kind="stable")
    rank = int(np.nonzero(order == slot)[0][0]) + 1 if slot < len(votes.score) else -1
    laid = layout_consistent(feats, votes, dist, ids, index._slots, FEATURE_BITS, p)
    stages = Pipeline(index, p)
    v = stages._verify_page(feats, slot)
    out = {"hits": hits, "kept": kept, "vote_rank": rank, "score": float(votes.score[slot]) if rank > 0 else 0.0,
           "in_layout": slot in laid, "candidate": slot in slots, "inliers_true": 0 if v is None else len(v.inlier_q),
           "photo_features": len(feats.xy)}
    if v is None:
        return out
    rivals = [r for r in (stages._verify_page(feats, s) for s in slots if s != slot) if r is not None]
    rivals.sort(key=lambda r: len(r.inlier_q), reverse=True)
    runner = rivals[0] if rivals else None
    page = index._slots[slot]
    cover = cell_coverage(v, feats.xy, page.width_mm, page.height_mm, p)
    exclusive = float(votes.weights(slot)[v.inlier_q].sum())
    ok, _ = accept(v, runner, cover, exclusive, p)
    out.update(cover=round(cover, 2), exclusive=round(exclusive, 2), runner=0 if runner is None else len(runner.inlier_q),
               accept_if_candidate=ok)
    return out


def oracle(index: RecognitionIndex, q: dict) -> tuple[bool, bool]:
    """(found when handed the true page, found when handed the true homography) for photo ``q``: the first
    verifies the photo's own ORB features against the right page alone and needs p.min_inliers; the second rectifies
    the photo with the ground-truth homography (the page seen frontally at its apparent size, looks.rectify) and
    counts the rectified features matched to the page feature at their own place (within 3 px), needing
    p.min_inliers — the ceiling of any search and verification built on ORB features of this photo."""
    p = index.params
    feats = query_features(q["image"], p)
    page = index._pages[q["page_id"]]
    v = Pipeline(index, p)._verify_page(feats, page.slot)
    by_page = v is not None and len(v.inlier_q) >= p.min_inliers
    h_work = np.diag([feats.scale, feats.scale, 1.0]) @ q["H"]  # page mm -> working px (to within 0.5 px)
    rect = rectify(feats, h_work, page.width_mm, page.height_mm, p, upscale=1.0)
    if rect is None:
        return by_page, False
    rq, to_rect = rect
    mm = page.keypoints_mm()
    c = page_correspondences(rq.descriptors, page.descriptors, mm, p)
    want = project(to_rect @ h_work, mm[c.f_idx])
    agree = np.linalg.norm(want - rq.xy[c.q_idx], axis=1) < 3.0
    return by_page, int(agree.sum()) >= p.min_inliers


def cause(d: dict) -> str:
    if d["inliers_true"] < 12:
        return "not findable by ORB (exact matching < 12 inliers)"
    if not d["candidate"]:
        return "never a candidate"
    if not d.get("accept_if_candidate"):
        return "candidate, refused by acceptance"
    return "candidate and acceptable in the first search (lost later)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pages", type=int, default=1000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--oracle", action="store_true", help="also the oracle ceilings over every photo")
    ap.add_argument("--oracle-only", action="store_true", help="only the oracle ceilings")
    args = ap.parse_args()
    q_a = br.synthetic_queries(args.queries)
    refs, q_b = br.real_set()
    markers, _ = br.generated_markers(args.pages, 2)
    index = RecognitionIndex()
    for i, m in enumerate(markers[:args.pages]):
        index.add(m, scopes=(f"edition:{i // br.EDITION_PAGES}", f"publication:t{i % synth.N_TEMPLATES}"))
    for m, _ in refs:
        index.add(m, scopes=("publication:real",))
    counts: Counter = Counter()
    for set_name, queries in (("a", q_a), ("b", q_b)) if not args.oracle_only else ():
        for q in queries:
            match = index.recognize(q["image"])
            if match is not None and match.page_id == q["page_id"]:
                continue
            d = diagnose(index, q)
            c = cause(d)
            counts[(set_name, c, d["inliers_true"] >= 100)] += 1
            print(f"set {set_name} {q['page_id']:<22} got {match and match.page_id} tall={q.get('tall', 0):.0f} "
                  f"tilt={q.get('tilt', 0):.0f} {q.get('name', '')} -> {c}; {d}", flush=True)
    if args.oracle or args.oracle_only:
        for set_name, queries in (("a", q_a), ("b", q_b)):
            o = np.array([oracle(index, q) for q in queries])
            print(f"ORACLE set={set_name} photos={len(queries)} true_page={o[:, 0].mean():.3f} "
                  f"true_homography={o[:, 1].mean():.3f}", flush=True)
    print(f"# {args.pages} pages; misses of set (a) ({len(q_a)} photos) and (b) ({len(q_b)}) by cause:")
    for (s, c, big), n in sorted(counts.items()):
        print(f"#   set ({s}) {c}{' [>= 100 exact inliers]' if big else ''}: {n}")


if __name__ == "__main__":
    main()
