#!/usr/bin/env python3
"""Accuracy of label TIFF folders on BBBC005: count MAE and foreground Dice per stain / blur level.

Usage:
    python scripts/classical_bench.py --masks DATA/bbbc005/masks NAME=LABEL_DIR...

Each LABEL_DIR holds one label TIFF per image, named as the image (skimage_baseline.py) or
`<stem>_labels.tif` (mica segment). The true count is `_C<n>_` in the name; the mask is the F1
scene's (`_F23_`/`_F48_` -> `_F1_`, well row -> A). Prints one line per (name, stain, blur).
"""
import argparse
import os
import re
import sys
from collections import defaultdict

import numpy as np
import tifffile

NAME = re.compile(r"SIMCEPImages_([A-Z])(\d+)_C(\d+)_F(\d+)_s(\d+)_w(\d)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--masks", required=True)
    ap.add_argument("runs", nargs="+", help="NAME=LABEL_DIR")
    args = ap.parse_args()
    for spec in args.runs:
        name, d = spec.split("=", 1)
        groups = defaultdict(list)
        for f in sorted(os.listdir(d)):
            m = NAME.search(f)
            if not m or not f.lower().endswith((".tif", ".tiff")):
                continue
            _, col, count, blur, site, stain = m.groups()
            labels = tifffile.imread(os.path.join(d, f))
            predicted = len(np.unique(labels[labels > 0]))
            mask_name = f"SIMCEPImages_A{col}_C{count}_F1_s{site}_w{stain}.TIF"
            mp = os.path.join(args.masks, mask_name)
            dice = np.nan
            if os.path.exists(mp):
                t = tifffile.imread(mp) > 0
                p = labels > 0
                dice = 2 * (t & p).sum() / max(1, t.sum() + p.sum())
            groups[(f"w{stain}", f"F{blur}")].append((predicted - int(count), dice))
        for (stain, blur), v in sorted(groups.items()):
            a = np.array(v, dtype=float)
            print(
                f"{name:<28} {stain} {blur:<4} n={len(v):<4} count_mae={np.abs(a[:, 0]).mean():.2f} "
                f"bias={a[:, 0].mean():+.2f} dice={np.nanmean(a[:, 1]):.4f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
