#!/usr/bin/env python3
"""Calibrated TIFFs written by tifffile (the writer Python microscopy tools use), for
crates/core/tests/calibration.rs:

    python scripts/make_calibration_fixtures.py OUT_DIR

imagej_0.65um.tif (ImageJ hyperstack metadata, unit um), ome_0.325x0.5um.ome.tif (OME-XML,
PhysicalSizeY given in nm), res_cm_0.5um.tif (plain resolution tags in centimetres),
res_72dpi.tif (a screen default: no calibration), imagej_bad_unit.tif (unit "furlong").
"""
import sys
from pathlib import Path

import numpy as np
import tifffile


def main():
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    data = (np.arange(8 * 6, dtype=np.uint16) * 100).reshape(6, 8)
    tifffile.imwrite(out / "imagej_0.65um.tif", data, imagej=True,
                     resolution=(1 / 0.65, 1 / 0.65), metadata={"unit": "um"})
    tifffile.imwrite(out / "ome_0.325x0.5um.ome.tif", data, ome=True,
                     metadata={"axes": "YX", "PhysicalSizeX": 0.325, "PhysicalSizeXUnit": "µm",
                               "PhysicalSizeY": 500.0, "PhysicalSizeYUnit": "nm"})
    tifffile.imwrite(out / "res_cm_0.5um.tif", data, resolution=(20000, 20000),
                     resolutionunit="CENTIMETER")
    tifffile.imwrite(out / "res_72dpi.tif", data, resolution=(72, 72), resolutionunit="INCH")
    tifffile.imwrite(out / "imagej_bad_unit.tif", data, imagej=True, resolution=(2.0, 2.0),
                     metadata={"unit": "furlong"})


if __name__ == "__main__":
    main()
