#!/usr/bin/env python3
"""Build the recognition background bank from the code (markers.background.build_background_descriptors) and write
it to markers/models/background-bank.npy, or to the file given. Run it after changing the photo features, the
generated pages or photos, or the bank's size; tests/markers/test_background.py checks the shipped file."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from markers.background import BANK_FILE, build_background_descriptors  # noqa: E402


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else BANK_FILE
    descs = build_background_descriptors()
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "wb") as f:
        np.save(f, descs, allow_pickle=False)
    tmp.replace(out)
    print(f"{out}: {len(descs)} descriptors")


if __name__ == "__main__":
    main()
