//! One test per defect fixed, each named after the defect it pins (ripgrep's `tests/regression.rs`
//! style). Each one fails on the code before its fix.

mod common;

use common::{mica, shared};
use std::path::Path;

fn bbbc005_image(name: &str) -> std::path::PathBuf {
    shared().join("data/bbbc005/images").join(name)
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The report's counting row for (dataset, method, stratum "all").
fn counting_row(report: &Path, dataset: &str, method: &str) -> serde_json::Value {
    let rows = json(&report.join("tables/counting.json"));
    rows.as_array()
        .unwrap()
        .iter()
        .find(|r| r["dataset"] == dataset && r["method"] == method && r["stratum"] == "all")
        .unwrap_or_else(|| panic!("no counting row {dataset} / {method}: {rows}"))
        .clone()
}

/// Two images named `a.tif` in two folders of one manifest: two samples, each scored against its
/// own truth; an answer keyed only by the file name is refused, naming both images.
#[test]
fn same_file_name_in_two_folders_is_two_samples() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (plate, src) in [
        ("plate1", "SIMCEPImages_A01_C1_F1_s01_w1.TIF"),
        ("plate2", "SIMCEPImages_A13_C53_F1_s01_w1.TIF"),
    ] {
        std::fs::create_dir_all(d.join("cf").join(plate)).unwrap();
        std::fs::copy(bbbc005_image(src), d.join("cf").join(plate).join("a.tif")).unwrap();
    }
    std::fs::write(
        d.join("manifest.csv"),
        "image,count\ncf/plate1/a.tif,1\ncf/plate2/a.tif,53\n",
    )
    .unwrap();
    std::fs::write(
        d.join("exact.csv"),
        "image,answer\ncf/plate1/a.tif,Count: 1\ncf/plate2/a.tif,Count: 53\n",
    )
    .unwrap();
    std::fs::write(d.join("by_name.csv"), "image,answer\na.tif,Count: 1\n").unwrap();
    std::fs::write(
        d.join("study.toml"),
        r#"
name = "identity"
[[datasets]]
name = "cf"
kind = "manifest"
path = "manifest.csv"
[[methods]]
name = "exact"
kind = "imported"
csv = ["exact.csv"]
column = "answer"
[[methods]]
name = "by-name"
kind = "imported"
csv = ["by_name.csv"]
column = "answer"
[[tasks]]
kind = "count"
datasets = ["cf"]
methods = ["exact", "by-name"]
"#,
    )
    .unwrap();
    let store = d.join("s.sqlite");
    let (code, _out, err) = mica(&[
        "-q",
        "run",
        d.join("study.toml").to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
    ]);
    // The ambiguous answers are failures, so the run says some predictions failed.
    assert_eq!(code, 3, "{err}");
    common::write_report(&store, &d.join("report"));
    let exact = counting_row(&d.join("report"), "cf", "exact");
    assert_eq!(exact["n"], 2, "{exact}");
    assert_eq!(exact["MAE"], 0.0, "{exact}");
    let by_name = counting_row(&d.join("report"), "cf", "by-name");
    assert_eq!(by_name["n"], 0, "{by_name}");
    let failures = std::fs::read_to_string(d.join("report/report.html")).unwrap();
    assert!(
        failures.contains("cf/plate1/a.tif and cf/plate2/a.tif"),
        "the refusal names both images"
    );
}
