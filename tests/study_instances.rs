//! Instance metrics in studies: a dataset whose truth masks are instance labels (StarDist's
//! nuclei in ../shared/data) is scored per object as well as by foreground overlap; BBBC005's
//! foreground-only masks are not.

mod common;

use common::{csv_rows, write_report};

use std::path::Path;
use std::process::Command;

const SHARED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data");

#[test]
fn instance_label_truth_gets_instance_metrics_and_foreground_truth_does_not() {
    let nuclei = Path::new(SHARED).join("stardist-nuclei");
    if !nuclei.join("mask2d.tif").is_file() {
        eprintln!("SKIPPED: {} not present", nuclei.display());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("nuclei.csv");
    std::fs::write(
        &manifest,
        format!(
            "image,mask\n{},{}\n",
            nuclei.join("img2d.tif").display(),
            nuclei.join("mask2d.tif").display()
        ),
    )
    .unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let study = dir.path().join("s.toml");
    std::fs::write(
        &study,
        format!(
            r#"
name = "instances"
data_root = "{root}"
[[datasets]]
name = "nuclei"
kind = "manifest"
path = "{manifest}"
instance_masks = true
[[datasets]]
name = "bbbc"
kind = "bbbc005"
path = "{examples}/bbbc005"
[[methods]]
name = "classical"
kind = "classical"
preset = "fluorescence-nuclei"
[[tasks]]
kind = "segment"
datasets = ["nuclei", "bbbc"]
methods = ["classical"]
"#,
            root = dir.path().display(),
            manifest = manifest.display(),
            examples = examples.display(),
        ),
    )
    .unwrap();
    let store = dir.path().join("s.sqlite");
    let st = Command::new(env!("CARGO_BIN_EXE_mica"))
        .args(["-q", "run"])
        .arg(&study)
        .arg("--store")
        .arg(&store)
        .status()
        .unwrap();
    assert!(st.success(), "{st}");
    let out = dir.path().join("report");
    write_report(&store, &out);
    let rows = csv_rows(&out.join("tables").join("segmentation_instances.csv"));
    // Only the instance-labelled dataset has a row.
    assert_eq!(rows.len(), 1, "{rows:?}");
    let r = &rows[0];
    assert_eq!(
        (r[0].as_str(), r[1].as_str(), r[2].as_str()),
        ("nuclei", "classical", "1")
    );
    // mask2d.tif holds 125 distinct nonzero labels (counted with numpy).
    assert_eq!(r[10], "125", "{r:?}");
    let f1_50: f64 = r[3].parse().unwrap();
    let f1_75: f64 = r[6].parse().unwrap();
    let f1_all: f64 = r[7].parse().unwrap();
    // mSA: TP/(TP+FP+FN) ≤ F1 = 2TP/(2TP+FP+FN) at every threshold.
    let msa: f64 = r[9].parse().unwrap();
    assert!(
        (0.0..=1.0).contains(&f1_50) && f1_75 <= f1_50 && f1_all <= f1_50 && msa <= f1_all,
        "{r:?}"
    );
    // Foreground metrics still there for both datasets.
    let seg = csv_rows(&out.join("tables").join("segmentation.csv"));
    assert!(seg.iter().any(|r| r[0] == "nuclei") && seg.iter().any(|r| r[0] == "bbbc"));
}
