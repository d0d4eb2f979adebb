#!/usr/bin/env python3
"""Expected object measurements for crates/core/tests/regionprops_skimage.rs, computed by
scikit-image's regionprops_table (the reference mica's objects.csv is checked against).

    python scripts/make_regionprops_fixture.py SHARED_DATA_DIR OUT_DIR

Writes OUT_DIR/regionprops_stardist.csv (the StarDist nuclei image with its instance labels,
../shared/data/stardist-nuclei) and OUT_DIR/edge_cases_labels.tif + regionprops_edge_cases.csv
(a small label image with a single pixel, straight and diagonal lines, a ring, an L, an object
on the image border and touching objects). Needs scikit-image and tifffile (pip).
"""
import sys
from pathlib import Path

import numpy as np
import skimage
import tifffile
from skimage.measure import regionprops_table

PROPS = [
    "label", "area", "centroid", "bbox", "perimeter", "eccentricity", "solidity",
    "axis_major_length", "axis_minor_length", "orientation", "equivalent_diameter_area",
    "intensity_mean", "intensity_min", "intensity_max", "intensity_std",
]


def write(path, labels, intensity):
    t = regionprops_table(labels, intensity_image=intensity, properties=PROPS)
    cols = list(t.keys())
    with open(path, "w") as f:
        f.write(f"# scikit-image {skimage.__version__} regionprops_table; centroid-0 = row\n")
        f.write(",".join(cols) + "\n")
        for i in range(len(t["label"])):
            f.write(",".join(repr(float(t[c][i])) for c in cols) + "\n")


def edge_cases():
    lab = np.zeros((24, 32), np.uint16)
    lab[2, 2] = 1                      # one pixel
    lab[5, 1:9] = 2                    # horizontal line
    for k in range(6):                 # diagonal line
        lab[10 + k, 2 + k] = 3
    lab[1:8, 12:19] = 4                # ring with a hole
    lab[3:6, 14:17] = 0
    lab[10:18, 12:14] = 5              # L shape
    lab[16:18, 14:20] = 5
    lab[0:4, 26:32] = 6                # on the image border (top right)
    lab[20:24, 0:5] = 7                # bottom left border
    lab[12:16, 22:26] = 8              # two touching squares
    lab[12:16, 26:30] = 9
    yy, xx = np.mgrid[0:24, 0:32]
    disk = (yy - 20.0) ** 2 + (xx - 14.0) ** 2 <= 3.2 ** 2
    lab[disk] = 10                     # a small disk
    rng = np.random.default_rng(7)
    intensity = rng.integers(0, 4096, size=lab.shape).astype(np.uint16)
    return lab, intensity


def main():
    shared, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    nuclei = shared / "stardist-nuclei"
    labels = tifffile.imread(nuclei / "mask2d.tif")
    image = tifffile.imread(nuclei / "img2d.tif")
    write(out / "regionprops_stardist.csv", labels, image)
    lab, intensity = edge_cases()
    tifffile.imwrite(out / "edge_cases_labels.tif", lab)
    tifffile.imwrite(out / "edge_cases_intensity.tif", intensity)
    write(out / "regionprops_edge_cases.csv", lab, intensity)


if __name__ == "__main__":
    main()
