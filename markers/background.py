"""Background model of the candidate stage: what a phone sees that is *not* the page being looked for.

A catalog feature that generic photo content matches about as well as a photo of its page (text strokes of the
common fonts, blurred blobs, a shared masthead) draws k-NN hits from every photo: on tuning photos at 100 pages
such "hub" pages took the first places of the votes while the right page ranked 9th-100th. Each indexed catalog
feature therefore keeps its Hamming distance to the nearest descriptor of a fixed bank of generic phone-photo
features (``background_distance``), and a hit votes only when the photo feature is *closer* than that
(rz.soft_votes; the layout check still sees every hit, its geometry rejects chance hits). On 200 tuning photos
(seeds 500,000+) the right page came first in the votes for 93 % instead of 80 % at 100 pages and 81.5 % instead
of 75 % at 10,000; recognized end to end: 192 instead of 185 at 100 pages, 187 / 185 at 1,000, 179 / 180 at
10,000 (of 200 tuning non-catalog photos accepted: 4 / 3, 2 / 2, 0 / 0).

The bank: ORB features (the query extractor, ``rz.query_features``) of BACKGROUND_PHOTOS generated phone photos
of generated, non-catalog newspaper pages (half of them sharing mastheads) over cluttered backgrounds, seeds
BACKGROUND_SEED+ (no catalog, tuning or benchmark seed). The bank ships built, as markers/models/background-bank.npy
(~0.9 MB, loaded in milliseconds where building it takes ~2.6 s, in every process that publishes or recognizes:
servers, workers, commands); ``scripts/build_background_bank.py`` builds it again from the code, and a test checks
that the shipped file is what the code builds.
"""
from __future__ import annotations

import threading
from pathlib import Path

import faiss
import numpy as np

from .features import DESCRIPTOR_BYTES

BACKGROUND_PHOTOS = 20  # ~28,000 features; 60 photos ranked the right page first no more often at 100 pages
BACKGROUND_SEED = 900_000
BANK_FILE = Path(__file__).resolve().parent / "models" / "background-bank.npy"

_lock = threading.Lock()
_bank: faiss.IndexBinaryFlat | None = None


def build_background_descriptors() -> np.ndarray:
    """(N, DESCRIPTOR_BYTES) uint8: the bank's descriptors, built from the generated photos (~2.6 s)."""
    from . import synth
    from .recognition.photo import query_features

    descs = []
    for i in range(BACKGROUND_PHOTOS):
        seed = BACKGROUND_SEED + i
        page = (synth.generate_masthead_sharing_page(seed, template=i % synth.N_TEMPLATES) if i % 2
                else synth.generate_page(seed))
        shot = synth.synth_photo(page, synth.PAGE_W_MM, synth.PAGE_H_MM, seed)
        descs.append(query_features(shot.image).descriptors)
    return np.ascontiguousarray(np.concatenate(descs), np.uint8)


def background_bank() -> faiss.IndexBinaryFlat:
    """Exact Hamming index of the bank's descriptors (loaded from BANK_FILE on first use, then shared)."""
    global _bank
    with _lock:
        if _bank is None:
            descs = np.load(BANK_FILE, allow_pickle=False)
            if descs.dtype != np.uint8 or descs.ndim != 2 or descs.shape[1] != DESCRIPTOR_BYTES:
                raise ValueError(f"{BANK_FILE}: not a bank of {DESCRIPTOR_BYTES}-byte descriptors "
                                 f"({descs.dtype}, {descs.shape}); build it again: scripts/build_background_bank.py")
            bank = faiss.IndexBinaryFlat(DESCRIPTOR_BYTES * 8)
            bank.add(np.ascontiguousarray(descs))
            _bank = bank
        return _bank


def background_distance(descriptors: np.ndarray) -> np.ndarray:
    """(N,) uint8: Hamming distance of each descriptor to the nearest descriptor of the background bank."""
    if len(descriptors) == 0:
        return np.zeros(0, np.uint8)
    dist, _ = background_bank().search(np.ascontiguousarray(descriptors, np.uint8), 1)
    return np.minimum(dist[:, 0], 255).astype(np.uint8)

