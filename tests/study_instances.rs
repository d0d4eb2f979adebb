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

/// The study's qualitative figure: with two methods segmenting the same images, the report
/// shows one image with each method's overlay side by side (the image with the lowest mean
/// Dice over the methods), each captioned with that method's Dice.
#[test]
fn two_methods_on_one_dataset_are_shown_side_by_side_on_the_hardest_image() {
    let dir = tempfile::tempdir().unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let study = dir.path().join("s.toml");
    std::fs::write(
        &study,
        format!(
            r#"
name = "side by side"
data_root = "{root}"
[[datasets]]
name = "bbbc"
kind = "bbbc005"
path = "{examples}/bbbc005"
[[methods]]
name = "nuclei preset"
kind = "classical"
preset = "fluorescence-nuclei"
[[methods]]
name = "textbook preset"
kind = "classical"
preset = "textbook"
[[tasks]]
kind = "segment"
datasets = ["bbbc"]
methods = ["nuclei preset", "textbook preset"]
"#,
            root = dir.path().display(),
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
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    let at = html
        .find("the methods side by side on ")
        .expect("a side-by-side panel");
    let block = &html[at..at + html[at..].find("</div>").unwrap()];
    // The image named is the one with the lowest mean Dice in the per-image table.
    let rows = csv_rows(&out.join("tables").join("segmentation_per_image.csv"));
    let header: Vec<String> =
        csv::Reader::from_path(out.join("tables").join("segmentation_per_image.csv"))
            .unwrap()
            .headers()
            .unwrap()
            .iter()
            .map(str::to_string)
            .collect();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let (img, method, dice) = (col("image"), col("method"), col("dice"));
    let mut mean: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
    for r in &rows {
        mean.entry(r[img].clone())
            .or_default()
            .push(r[dice].parse().unwrap());
    }
    let hardest = mean
        .iter()
        .filter(|(_, d)| d.len() == 2)
        .min_by(|a, b| {
            let m = |d: &Vec<f64>| d.iter().sum::<f64>() / 2.0;
            m(a.1).total_cmp(&m(b.1))
        })
        .unwrap()
        .0;
    assert!(block.contains(hardest.as_str()), "{hardest}: {block}");
    for m in ["nuclei preset", "textbook preset"] {
        let d = rows
            .iter()
            .find(|r| &r[img] == hardest && r[method] == m)
            .unwrap()[dice]
            .parse::<f64>()
            .unwrap();
        assert!(
            block.contains(&format!("<figcaption>{m}: Dice {d:.3}</figcaption>")),
            "{m} {d}: {block}"
        );
    }
    assert_eq!(
        block.matches("<img src=\"data:image/png;base64,").count(),
        2
    );
}
