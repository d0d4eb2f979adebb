//! `object_properties` against scikit-image's `regionprops_table` on the same label images:
//! the StarDist nuclei image with its 125 instance labels (from ../shared) and a small label
//! image of edge cases (a single pixel, lines, a ring, an L, objects on the border, touching
//! objects, a disk). The expected values were computed by scikit-image
//! (`scripts/make_regionprops_fixture.py`, the version is in each file's first line).

use mica_core::{io::read_image, object_properties, LabelImage};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn expected(file: &str) -> Vec<HashMap<String, f64>> {
    let text = std::fs::read_to_string(fixtures().join(file)).unwrap();
    let mut lines = text.lines().filter(|l| !l.starts_with('#'));
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    lines
        .map(|l| {
            header
                .iter()
                .zip(l.split(','))
                .map(|(h, v)| (h.to_string(), v.parse::<f64>().unwrap()))
                .collect()
        })
        .collect()
}

fn check(labels_file: &Path, intensity_file: &Path, fixture: &str) {
    let labels = LabelImage::from_image(&read_image(labels_file).unwrap()).unwrap();
    let intensity = read_image(intensity_file).unwrap();
    let got = object_properties(&labels, Some(&intensity)).unwrap();
    let want = expected(fixture);
    assert_eq!(got.len(), want.len(), "objects");
    let close = |name: &str, label: u32, a: f64, b: f64| {
        let tol = 1e-9 * b.abs().max(1.0);
        assert!(
            (a - b).abs() <= tol,
            "label {label} {name}: mica {a}, scikit-image {b}"
        );
    };
    for (o, e) in got.iter().zip(&want) {
        let l = o.label;
        assert_eq!(l as f64, e["label"]);
        assert_eq!(o.area_px as f64, e["area"], "label {l}");
        close("centroid x", l, o.centroid_x, e["centroid-1"]);
        close("centroid y", l, o.centroid_y, e["centroid-0"]);
        let b = o.bbox;
        assert_eq!(
            [b.y0, b.x0, b.y1, b.x1].map(|v| v as f64),
            [e["bbox-0"], e["bbox-1"], e["bbox-2"], e["bbox-3"]],
            "label {l} bbox"
        );
        close("perimeter", l, o.perimeter, e["perimeter"]);
        close("eccentricity", l, o.eccentricity, e["eccentricity"]);
        close("solidity", l, o.solidity, e["solidity"]);
        close("major axis", l, o.major_axis_length, e["axis_major_length"]);
        close("minor axis", l, o.minor_axis_length, e["axis_minor_length"]);
        close("orientation", l, o.orientation, e["orientation"]);
        close(
            "equivalent diameter",
            l,
            o.equivalent_diameter,
            e["equivalent_diameter_area"],
        );
        close("mean", l, o.mean_intensity.unwrap(), e["intensity_mean"]);
        close("min", l, o.min_intensity.unwrap(), e["intensity_min"]);
        close("max", l, o.max_intensity.unwrap(), e["intensity_max"]);
        close("std", l, o.std_intensity.unwrap(), e["intensity_std"]);
        close(
            "integrated",
            l,
            o.integrated_intensity.unwrap(),
            e["intensity_mean"] * e["area"],
        );
    }
}

#[test]
fn edge_cases_agree_with_scikit_image() {
    let f = fixtures();
    check(
        &f.join("edge_cases_labels.tif"),
        &f.join("edge_cases_intensity.tif"),
        "regionprops_edge_cases.csv",
    );
}

#[test]
fn stardist_nuclei_agree_with_scikit_image() {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/stardist-nuclei");
    if !d.join("mask2d.tif").is_file() {
        panic!(
            "{} is missing (../shared is present for developers and CI)",
            d.display()
        );
    }
    check(
        &d.join("mask2d.tif"),
        &d.join("img2d.tif"),
        "regionprops_stardist.csv",
    );
}
