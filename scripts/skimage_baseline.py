#!/usr/bin/env python3
"""The textbook scikit-image nuclei pipeline, the reference mica's classical baseline is measured against.

Per image: read, Gaussian sigma=1, Otsu threshold, fill holes, Euclidean distance transform, peaks of
the distance with min_distance=5 (one per connected component label, as in the scikit-image
watershed example), marker-controlled watershed on the negated distance inside the foreground.
Writes one 16-bit label TIFF per image to --out (same file name) and prints `image,count,seconds`
CSV rows (seconds = read + segment + write of that image, inside this process).

Usage:
    python scripts/skimage_baseline.py --out DIR [--jobs N] IMAGES...

--jobs 1 (default) runs in this process, single-threaded; --jobs N uses a process pool.
Needs: scikit-image, scipy, numpy, tifffile (`pip install scikit-image tifffile`).
"""
import argparse
import os
import sys
import time

# One thread per process for any BLAS-backed call: the benchmark compares single-core runs.
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import numpy as np  # noqa: E402
import tifffile  # noqa: E402
from scipy import ndimage as ndi  # noqa: E402
from skimage import filters, io, segmentation  # noqa: E402
from skimage.feature import peak_local_max  # noqa: E402

OUT = None


def segment(img):
    if img.ndim == 3:
        img = img[..., :3].mean(axis=2)
    smooth = filters.gaussian(img.astype(np.float64), sigma=1)
    fg = smooth > filters.threshold_otsu(smooth)
    fg = ndi.binary_fill_holes(fg)
    dist = ndi.distance_transform_edt(fg)
    comp, _ = ndi.label(fg)
    coords = peak_local_max(dist, min_distance=5, labels=comp)
    markers = np.zeros(dist.shape, dtype=np.int32)
    markers[tuple(coords.T)] = np.arange(1, len(coords) + 1)
    labels = segmentation.watershed(-dist, markers, mask=fg)
    return labels


def run_one(path):
    t0 = time.perf_counter()
    try:
        img = io.imread(path)
        labels = segment(img)
    except Exception as e:  # a bad image is reported, the run goes on
        return path, None, time.perf_counter() - t0, str(e)
    count = int(len(np.unique(labels[labels > 0])))
    if OUT is not None:
        dtype = np.uint16 if labels.max() < 65536 else np.uint32
        tifffile.imwrite(os.path.join(OUT, os.path.basename(path)), labels.astype(dtype))
    return path, count, time.perf_counter() - t0, None


def init(out):
    global OUT
    OUT = out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("images", nargs="+")
    ap.add_argument("--out", help="folder for the label TIFFs (not written when absent)")
    ap.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    args = ap.parse_args()
    if args.out:
        os.makedirs(args.out, exist_ok=True)
    init(args.out)
    if args.jobs <= 1:
        results = map(run_one, args.images)
    else:
        from multiprocessing import Pool

        pool = Pool(args.jobs, initializer=init, initargs=(args.out,))
        results = pool.imap(run_one, args.images, chunksize=4)
    failed = 0
    print("image,count,seconds")
    for path, count, secs, err in results:
        if err is not None:
            failed += 1
            print(f"error: {path}: {err}", file=sys.stderr)
            continue
        print(f"{os.path.basename(path)},{count},{secs:.6f}")
    return 3 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
