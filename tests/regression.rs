//! One test per defect fixed, each named after the defect it pins (ripgrep's `tests/regression.rs`
//! style). Each one fails on the code before its fix.

mod common;

#[path = "../crates/vlm/tests/support/mod.rs"]
mod support;

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
    let (code, err) = run_study(d, &store);
    // The ambiguous answers are failures, so the run says some predictions failed.
    assert_eq!(code, 3, "{err}");
    common::write_report(&store, &d.join("report"));
    let exact = counting_row(&d.join("report"), "cf", "exact");
    assert_eq!(exact["n"], 2, "{exact}");
    assert_eq!(exact["mae"], 0.0, "{exact}");
    let by_name = counting_row(&d.join("report"), "cf", "by-name");
    assert_eq!(by_name["n"], 0, "{by_name}");
    let failures = std::fs::read_to_string(d.join("report/report.html")).unwrap();
    assert!(
        failures.contains("cf/plate1/a.tif and cf/plate2/a.tif"),
        "the refusal names both images"
    );
}

fn nffa_jpeg() -> std::path::PathBuf {
    let dir = shared().join("data/vlms-micrographs/data_images_NFFA-MS_cropped/Fibres");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    files.sort();
    files.remove(0)
}

/// A JPEG cut to 5 % of its bytes was decoded (the decoder fills the rest) and counted, exit 0.
#[test]
fn truncated_jpeg_is_not_counted() {
    let dir = tempfile::tempdir().unwrap();
    let src = nffa_jpeg();
    let bytes = std::fs::read(&src).unwrap();
    let good = dir.path().join("good.jpg");
    let cut = dir.path().join("cut.jpg");
    std::fs::write(&good, &bytes).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() / 20]).unwrap();
    let (code, out, err) = mica(&["-q", "count", good.to_str().unwrap(), cut.to_str().unwrap()]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(out.contains("good.jpg,"), "{out}");
    assert!(
        !out.contains("cut.jpg,"),
        "the truncated file was counted: {out}"
    );
    assert!(
        err.contains("cut.jpg") && err.contains("truncated JPEG"),
        "{err}"
    );
}

/// `data inspect` said "problems none" for 0-byte and wrong-size masks, truncated images and
/// dangling symbolic links, and for a folder with no images at all.
#[test]
fn data_inspect_reports_what_other_commands_would_hit() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("bbbc");
    std::fs::create_dir_all(root.join("images")).unwrap();
    std::fs::create_dir_all(root.join("masks")).unwrap();
    let names = [
        "SIMCEPImages_A01_C1_F1_s01_w1.TIF",
        "SIMCEPImages_A01_C1_F1_s02_w1.TIF",
        "SIMCEPImages_A01_C1_F1_s03_w1.TIF",
    ];
    for n in names {
        std::fs::copy(bbbc005_image(n), root.join("images").join(n)).unwrap();
    }
    let masks = shared().join("data/bbbc005/masks");
    std::fs::copy(masks.join(names[0]), root.join("masks").join(names[0])).unwrap();
    std::fs::write(root.join("masks").join(names[1]), b"").unwrap();
    // A mask of another size: a 10×10 crop written as TIFF.
    let small = mica_core::Image::gray8(10, 10, vec![0; 100]).unwrap();
    mica_core::io::write_tiff(&root.join("masks").join(names[2]), &small).unwrap();
    let (code, out, err) = mica(&["-q", "data", "inspect", root.to_str().unwrap()]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(
        out.contains(names[1]) && out.contains("empty (0 bytes)"),
        "{out}"
    );
    assert!(out.contains("is 10x10, the image is 696x520"), "{out}");

    let flat = dir.path().join("flat");
    std::fs::create_dir_all(&flat).unwrap();
    let bytes = std::fs::read(nffa_jpeg()).unwrap();
    std::fs::write(flat.join("cut.jpg"), &bytes[..bytes.len() / 2]).unwrap();
    std::os::unix::fs::symlink(flat.join("gone.jpg"), flat.join("link.jpg")).unwrap();
    let (code, out, err) = mica(&["-q", "data", "inspect", flat.to_str().unwrap()]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(
        out.contains("cut.jpg") && out.contains("truncated JPEG"),
        "{out}"
    );
    assert!(out.contains("link.jpg"), "{out}");

    let empty = dir.path().join("nothing-here");
    std::fs::create_dir_all(&empty).unwrap();
    let (code, out, err) = mica(&["-q", "data", "inspect", empty.to_str().unwrap()]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(
        out.contains("no images found in") && out.contains("nothing-here"),
        "{out}"
    );
}

fn study_csv(name: &str) -> std::path::PathBuf {
    shared().join("data/vlms-micrographs").join(name)
}

fn eval_count_json(csv: &Path) -> (i32, serde_json::Value, String) {
    let (code, out, err) = mica(&[
        "eval",
        "count",
        "--predictions",
        csv.to_str().unwrap(),
        "--json",
    ]);
    let v = serde_json::from_str(&out).unwrap_or(serde_json::Value::Null);
    (code, v, err)
}

/// `eval count` scored a duplicated image row twice.
#[test]
fn eval_count_scores_a_repeated_row_once() {
    let src = study_csv("results_counting_BBBC005-S_w1.csv");
    let text = std::fs::read_to_string(&src).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let twice = dir.path().join("twice.csv");
    let mut lines: Vec<&str> = text.lines().collect();
    lines.push(lines[1]);
    std::fs::write(&twice, lines.join("\n")).unwrap();
    let (_, a, _) = eval_count_json(&src);
    let (code, b, err) = eval_count_json(&twice);
    assert_eq!(code, 0, "{err}");
    assert_eq!(a, b, "a repeated row changed the scores");
    assert!(err.contains("counted once"), "{err}");
}

/// One image on two rows with different answers was scored twice instead of refused.
#[test]
fn eval_count_refuses_one_image_with_two_different_rows() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("p.csv");
    std::fs::write(
        &p,
        "image,ground truth,A\nx.tif,3,3\ny.tif,5,4\nx.tif,3,9\n",
    )
    .unwrap();
    let (code, _, err) = eval_count_json(&p);
    assert_ne!(code, 0);
    assert!(err.contains("\"x.tif\"") && err.contains("line 4"), "{err}");
    let c = dir.path().join("c.csv");
    std::fs::write(&c, "file,truth,pred\na,1,1\na,1,2\n").unwrap();
    let (code, _, err) = mica(&[
        "eval",
        "classify",
        "--predictions",
        c.to_str().unwrap(),
        "--truth-column",
        "truth",
        "--pred-column",
        "pred",
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("\"a\""), "{err}");
}

/// A second column named like the truth column was scored as a method.
#[test]
fn a_second_truth_column_is_not_scored_as_a_method() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("p.csv");
    std::fs::write(
        &p,
        "image,ground truth,A,Ground Truth\nx.tif,3,3,3\ny.tif,5,4,5\n",
    )
    .unwrap();
    let (code, out, err) = eval_count_json(&p);
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("have the same name"), "{err}");
}

/// Running a study, changing a method's preset and running again kept the old predictions and
/// showed them under the new preset.
#[test]
fn changed_preset_recomputes_instead_of_relabelling() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("bbbc/images")).unwrap();
    for n in [
        "SIMCEPImages_A05_C18_F1_s01_w2.TIF",
        "SIMCEPImages_A13_C53_F1_s01_w2.TIF",
    ] {
        std::fs::copy(bbbc005_image(n), d.join("bbbc/images").join(n)).unwrap();
    }
    let study = |preset: &str| {
        std::fs::write(
            d.join("study.toml"),
            format!(
                r#"
name = "settings"
[[datasets]]
name = "b"
kind = "bbbc005"
path = "bbbc"
[[methods]]
name = "classical"
kind = "classical"
preset = "{preset}"
[[tasks]]
kind = "count"
datasets = ["b"]
methods = ["classical"]
"#
            ),
        )
        .unwrap();
    };
    let run = |store: &Path| {
        mica(&[
            "run",
            d.join("study.toml").to_str().unwrap(),
            "--store",
            store.to_str().unwrap(),
        ])
    };
    let counts = |store: &Path| -> Vec<(String, f64, String)> {
        let s = mica_store::Store::open_read_only(store).unwrap();
        s.predictions()
            .unwrap()
            .into_iter()
            .map(|p| (p.key.sample_id, p.value_num.unwrap(), p.settings_hash))
            .collect()
    };
    let store = d.join("s.sqlite");
    study("fluorescence-nuclei");
    assert_eq!(run(&store).0, 0);
    let before = counts(&store);
    study("fluorescence-cells");
    let (code, _, err) = run(&store);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("2 stored predictions were made with other settings"),
        "the run says what it dropped: {err}"
    );
    let after = counts(&store);
    // A fresh store with the new preset gives exactly what the rerun stored.
    let fresh = d.join("fresh.sqlite");
    assert_eq!(run(&fresh).0, 0);
    assert_eq!(after, counts(&fresh));
    assert_ne!(before[0].2, after[0].2, "the settings hash changed");
    // And a third run with unchanged settings redoes nothing.
    let (_, _, err) = run(&store);
    assert!(err.contains("2 were already stored, 0 made now"), "{err}");
    common::write_report(&store, &d.join("report"));
    let html = std::fs::read_to_string(d.join("report/report.html")).unwrap();
    assert!(
        html.contains("made with other settings"),
        "the report says so too"
    );
}

const ROUND_TRIP: [&str; 3] = [
    "SIMCEPImages_A05_C18_F1_s01_w1.TIF",
    "SIMCEPImages_A05_C18_F1_s01_w2.TIF",
    "SIMCEPImages_A13_C53_F1_s01_w1.TIF",
];

/// A BBBC005 subset laid out as the dataset is (`images/`, `masks/`), copied, not renamed.
/// Runs `d/study.toml` into `store` quietly: (exit code, stderr).
fn run_study(d: &Path, store: &Path) -> (i32, String) {
    let (code, _, err) = mica(&[
        "-q",
        "run",
        d.join("study.toml").to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
    ]);
    (code, err)
}

fn bbbc005_subset(root: &Path) {
    bbbc005_images_and_masks(root, &ROUND_TRIP);
}

/// BBBC005 images and their masks laid out as the dataset is (`images/`, `masks/`), copied.
fn bbbc005_images_and_masks(root: &Path, names: &[&str]) {
    std::fs::create_dir_all(root.join("images")).unwrap();
    std::fs::create_dir_all(root.join("masks")).unwrap();
    for n in names {
        std::fs::copy(bbbc005_image(n), root.join("images").join(n)).unwrap();
        let mask = shared().join("data/bbbc005/masks").join(n);
        std::fs::copy(mask, root.join("masks").join(n)).unwrap();
    }
}

fn eval_segment(truth: &Path, pred: &Path) -> (i32, serde_json::Value, String) {
    let (code, out, err) = mica(&[
        "eval",
        "segment",
        "--truth",
        truth.to_str().unwrap(),
        "--pred",
        pred.to_str().unwrap(),
        "--json",
    ]);
    let v = serde_json::from_str(&out).unwrap_or(serde_json::Value::Null);
    (code, v, err)
}

/// `mica segment IMAGES --out S` then `mica eval segment --truth MASKS --pred S` failed ("no true
/// mask named …_labels.*", overlays counted as problems).
#[test]
fn segment_output_pairs_with_truth_masks_in_eval_segment() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("bbbc");
    bbbc005_subset(&root);
    let out = dir.path().join("seg");
    let (code, _, err) = mica(&[
        "-q",
        "segment",
        root.join("images").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, v, err) = eval_segment(&root.join("masks"), &out);
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["aggregate"]["images"], 3, "{v}");
    assert_eq!(v["problems"].as_array().unwrap().len(), 0, "{v}");
    let dice = v["aggregate"]["dice"]["mean"].as_f64().unwrap();
    assert!(dice > 0.8, "classical Dice on BBBC005: {dice}");
}

/// `mica count` on BBBC005 then `mica eval count --predictions c.csv` failed (`no column "ground
/// truth"`), though the truth is in the names.
#[test]
fn count_output_is_scored_by_eval_count_from_the_names() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("bbbc");
    bbbc005_subset(&root);
    let csv = dir.path().join("c.csv");
    let (code, _, err) = mica(&[
        "-q",
        "count",
        root.join("images").to_str().unwrap(),
        "--csv",
        csv.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, v, err) = eval_count_json(&csv);
    assert_eq!(code, 0, "{err}");
    assert_eq!(v[0]["n"], 3, "{v}");
    // The same truth read from the dataset itself (`--truth DATASET_PATH`) gives the same scores.
    let (code, out, err) = mica(&[
        "eval",
        "count",
        "--predictions",
        csv.to_str().unwrap(),
        "--truth",
        root.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let w: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v, w);
    // By hand: |predicted - true| averaged over the three images.
    let rows = common::csv_rows(&csv);
    let truths = [18.0, 18.0, 53.0];
    let mae: f64 = rows
        .iter()
        .map(|r| {
            let i = ROUND_TRIP.iter().position(|n| r[0].ends_with(n)).unwrap();
            (r[1].parse::<f64>().unwrap() - truths[i]).abs()
        })
        .sum::<f64>()
        / 3.0;
    assert!((v[0]["mae"].as_f64().unwrap() - mae).abs() < 1e-12, "{v}");
}

/// A study store's masks were named `<id>.tif` (`x.TIF.tif`) in one folder per method and
/// dataset, which `mica eval segment` could not pair with the truth.
#[test]
fn study_store_masks_pair_with_truth_masks_in_eval_segment() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    bbbc005_subset(&d.join("bbbc"));
    std::fs::write(
        d.join("study.toml"),
        r#"
name = "masks"
[[datasets]]
name = "b"
kind = "bbbc005"
path = "bbbc"
[[methods]]
name = "classical"
kind = "classical"
preset = "fluorescence-cells"
[[tasks]]
kind = "segment"
datasets = ["b"]
methods = ["classical"]
"#,
    )
    .unwrap();
    let store = d.join("s.sqlite");
    let (code, err) = run_study(d, &store);
    assert_eq!(code, 0, "{err}");
    let pred = d.join("s-masks/classical/b");
    let (code, v, err) = eval_segment(&d.join("bbbc/masks"), &pred);
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["aggregate"]["images"], 3, "{v}");
    // The Dice the study stored for each image is the one `mica eval segment` computes.
    let s = mica_store::Store::open_read_only(&store).unwrap();
    let stored: Vec<f64> = s
        .image_metrics()
        .unwrap()
        .into_iter()
        .filter(|m| m.name == "dice")
        .map(|m| m.value)
        .collect();
    let evaluated: Vec<f64> = v["per_image"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["dice"].as_f64().unwrap())
        .collect();
    assert_eq!(stored, evaluated);
}

/// On BBBC005's binary masks instance F1 was computed from connected components (a Dice 0.984
/// image got F1 0.085) with no word of it.
#[test]
fn instance_scores_against_binary_masks_say_what_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("bbbc");
    bbbc005_subset(&root);
    let out = dir.path().join("seg");
    let (code, _, err) = mica(&[
        "-q",
        "segment",
        root.join("images").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let (_, v, _) = eval_segment(&root.join("masks"), &out);
    assert_eq!(v["instance_truth"], "connected components of a binary mask");
    assert!(
        v["instance_caveat"].as_str().unwrap().contains("binary"),
        "{v}"
    );
    let (_, text, _) = mica(&[
        "eval",
        "segment",
        "--truth",
        root.join("masks").to_str().unwrap(),
        "--pred",
        out.to_str().unwrap(),
    ]);
    assert!(
        text.contains("caveat: the truth masks are binary"),
        "{text}"
    );
}

/// Counting against an instance-label dataset (`instance_masks = true`) scored nothing (n = 0)
/// while the report said all was well.
#[test]
fn counting_against_instance_labels_uses_the_number_of_labels() {
    let nuclei = shared().join("data/stardist-nuclei");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("nuclei.csv"),
        format!(
            "image,mask\n{},{}\n",
            nuclei.join("img2d.tif").display(),
            nuclei.join("mask2d.tif").display()
        ),
    )
    .unwrap();
    std::fs::write(
        d.join("study.toml"),
        r#"
name = "instances"
[[datasets]]
name = "nuclei"
kind = "manifest"
path = "nuclei.csv"
instance_masks = true
[[methods]]
name = "classical"
kind = "classical"
preset = "fluorescence-nuclei"
[[tasks]]
kind = "count"
datasets = ["nuclei"]
methods = ["classical"]
"#,
    )
    .unwrap();
    let store = d.join("s.sqlite");
    let (code, err) = run_study(d, &store);
    assert_eq!(code, 0, "{err}");
    let labels = mica_core::io::read_label_image(&nuclei.join("mask2d.tif")).unwrap();
    let s = mica_store::Store::open_read_only(&store).unwrap();
    let samples = s.samples().unwrap();
    assert_eq!(samples[0].truth_count, Some(labels.num_objects() as f64));
    assert_eq!(samples[0].meta["truth_count_from"], "instance labels");
    common::write_report(&store, &d.join("report"));
    let row = counting_row(&d.join("report"), "nuclei", "classical");
    assert_eq!(
        (row["n"].as_i64(), row["missing"].as_i64()),
        (Some(1), Some(0)),
        "{row}"
    );
    let predicted = s.predictions().unwrap()[0].value_num.unwrap();
    let mae = row["mae"].as_f64().unwrap();
    assert!((mae - (predicted - labels.num_objects() as f64).abs()).abs() < 1e-9);
}

/// `Count: -4` was read as 4, `Count: 3.7` as 3, `Count: 12e4` as 12, and JSON counts `7.9`,
/// `1e+308` and `99999999999999999999999` as 7, 1 and 1: each is now a failure with a reason,
/// never a different number.
#[test]
fn count_answers_that_are_not_counts_are_failures_not_other_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let answers = [
        ("a.png", "Count: -4"),
        ("b.png", "Count: 3.7"),
        ("c.png", "Count: 12e4"),
        ("d.png", "{\"count\": 7.9}"),
        ("e.png", "{\"count\": 1e+308}"),
        ("f.png", "{\"count\": 99999999999999999999999}"),
        ("g.png", "between 10 and 20"),
        ("h.png", "Count: 12"),
    ];
    let mut truth = String::from("image,count\n");
    let mut csv = String::from("image,answer\n");
    for (img, a) in answers {
        truth.push_str(&format!("{img},12\n"));
        csv.push_str(&format!("{img},\"{}\"\n", a.replace('"', "\"\"")));
    }
    std::fs::write(d.join("truth.csv"), truth).unwrap();
    std::fs::write(d.join("answers.csv"), csv).unwrap();
    std::fs::write(
        d.join("study.toml"),
        r#"
name = "parsing"
[[datasets]]
name = "t"
kind = "table"
path = "truth.csv"
count_column = "count"
[[methods]]
name = "answers"
kind = "imported"
csv = ["answers.csv"]
column = "answer"
[[tasks]]
kind = "count"
datasets = ["t"]
methods = ["answers"]
"#,
    )
    .unwrap();
    let store = d.join("s.sqlite");
    run_study(d, &store);
    let s = mica_store::Store::open_read_only(&store).unwrap();
    for p in s.predictions().unwrap() {
        if p.key.sample_id == "h.png" {
            assert_eq!(p.value_num, Some(12.0));
        } else {
            assert_eq!(p.value_num, None, "{}: {:?}", p.key.sample_id, p.raw_answer);
            assert!(p.failure.is_some(), "{}: a reason", p.key.sample_id);
        }
    }
}

/// Scoring was done in four places (runner, report, eval, robustness) tied by string names; the
/// same predictions scored three ways must give the same numbers.
#[test]
fn report_eval_and_robustness_give_the_same_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let root = d.join("bbbc");
    bbbc005_images_and_masks(
        &root,
        &[
            "SIMCEPImages_A05_C18_F1_s01_w2.TIF",
            "SIMCEPImages_A13_C53_F1_s01_w2.TIF",
            "SIMCEPImages_A09_C35_F1_s02_w2.TIF",
        ],
    );
    let preset = "fluorescence-nuclei";
    // 1. A study, reported.
    std::fs::write(
        d.join("study.toml"),
        format!(
            r#"
name = "three ways"
[[datasets]]
name = "b"
kind = "bbbc005"
path = "bbbc"
[[methods]]
name = "classical"
kind = "classical"
preset = "{preset}"
[[tasks]]
kind = "count"
datasets = ["b"]
methods = ["classical"]
[[tasks]]
kind = "segment"
datasets = ["b"]
methods = ["classical"]
"#
        ),
    )
    .unwrap();
    let store = d.join("s.sqlite");
    let (code, err) = run_study(d, &store);
    assert_eq!(code, 0, "{err}");
    common::write_report(&store, &d.join("report"));
    let count_row = counting_row(&d.join("report"), "b", "classical");
    let seg_rows = json(&d.join("report/tables/segmentation.json"));
    let seg_row = seg_rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["dataset"] == "b" && r["method"] == "classical")
        .unwrap()
        .clone();
    // 2. The same method from the command line, scored by `mica eval`.
    let images = root.join("images");
    let csv = d.join("c.csv");
    let seg = d.join("seg");
    for args in [
        vec!["count", "--preset", preset, "--csv", csv.to_str().unwrap()],
        vec![
            "segment",
            "--preset",
            preset,
            "--out",
            seg.to_str().unwrap(),
        ],
    ] {
        let mut a = vec!["-q"];
        a.extend(args);
        a.push(images.to_str().unwrap());
        let (code, _, err) = mica(&a);
        assert_eq!(code, 0, "{err}");
    }
    let (code, ev_count, err) = eval_count_json(&csv);
    assert_eq!(code, 0, "{err}");
    let (code, ev_seg, err) = eval_segment(&root.join("masks"), &seg);
    assert_eq!(code, 0, "{err}");
    // 3. Robustness at severity 0 (the images unchanged).
    let rob = d.join("rob");
    let (code, _, err) = mica(&[
        "-q",
        "robustness",
        "--data",
        root.to_str().unwrap(),
        "--stain",
        "2",
        "--preset",
        preset,
        "--perturbation",
        "blur",
        "--severities",
        "0",
        "--images",
        "3",
        "--out",
        rob.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let point = json(&rob.join("robustness.json"))["curves"][0]["points"][0].clone();

    let mae = count_row["mae"].as_f64().unwrap();
    // The report's tables use the keys `mica eval --json` uses.
    for k in ["mae", "mae_ci_low", "mae_ci_high", "rmse", "bias", "r2"] {
        assert!(
            count_row.get(k).is_some(),
            "report counting table has no {k:?}: {count_row}"
        );
    }
    assert!(mae > 0.0, "a test with MAE 0 would prove little");
    assert_eq!(ev_count[0]["mae"].as_f64().unwrap(), mae);
    assert_eq!(point["count_mae"].as_f64().unwrap(), mae);
    assert_eq!(count_row["n"], 3);
    // Same intervals too (one bootstrap configuration).
    assert_eq!(
        ev_count[0]["mae_ci_low"].as_f64(),
        count_row["mae_ci_low"].as_f64()
    );
    let dice = seg_row["dice"].as_f64().unwrap();
    let ev_dice = ev_seg["aggregate"]["dice"]["mean"].as_f64().unwrap();
    let rob_dice = point["mean_dice"].as_f64().unwrap();
    // The report rounds nothing in its JSON; the three means are of the same three values.
    assert!((ev_dice - dice).abs() < 1e-12, "{ev_dice} vs {dice}");
    assert!((rob_dice - dice).abs() < 1e-12, "{rob_dice} vs {dice}");
}

/// Metric names were string literals in four crates (the runner stored `"f1_iou50"`, the report
/// read it back). They are spelled once, in `mica_metrics::measure::Metric`.
#[test]
fn metric_keys_are_spelled_only_in_the_measurement_layer() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let keys = [
        "dice",
        "jaccard",
        "hausdorff_px",
        "hausdorff95_px",
        "instances_true",
        "instances_pred",
        "f1_iou50",
        "f1_iou75",
        "f1_iou50_95",
        "tp_over_tp_fp_fn_iou50",
        "tp_over_tp_fp_fn_iou50_95",
        "mae_um",
    ];
    let mut found = Vec::new();
    let mut stack = vec![root.join("src"), root.join("crates/report/src")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&p).unwrap();
                for (i, line) in text.lines().enumerate() {
                    for k in keys {
                        if line.contains(&format!("\"{k}\"")) {
                            found.push(format!("{}:{}: {line}", p.display(), i + 1));
                        }
                    }
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "metric keys as literals:\n{}",
        found.join("\n")
    );
}

/// `mica count --preset PRESET INPUTS --csv CSV`, then `mica eval count` of that CSV against the
/// expert truth table `truth`: its JSON.
fn count_and_score(
    preset: &str,
    inputs: &[std::path::PathBuf],
    csv: &Path,
    truth: &Path,
) -> serde_json::Value {
    let mut args = vec![
        "-q",
        "count",
        "--preset",
        preset,
        "--csv",
        csv.to_str().unwrap(),
    ];
    args.extend(inputs.iter().map(|p| p.to_str().unwrap()));
    let (code, _, err) = mica(&args);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = mica(&[
        "eval",
        "count",
        "--predictions",
        csv.to_str().unwrap(),
        "--truth",
        truth.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap()
}

/// `mica eval count --truth` takes the study's expert truth tables (`<image>,ground truth`) too,
/// matched to `mica count`'s rows by name.
#[test]
fn count_output_is_scored_against_an_expert_truth_table() {
    let dir = tempfile::tempdir().unwrap();
    let fibres = shared().join("data/vlms-micrographs/data_images_NFFA-MS_cropped/Fibres");
    let truth = study_csv("data_ground_truth_NFFA-MS-fibers_counts.csv");
    let mut images: Vec<_> = std::fs::read_dir(&fibres)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    images.sort();
    images.truncate(3);
    let csv = dir.path().join("c.csv");
    let v = count_and_score("sem-particles", &images, &csv, &truth);
    assert_eq!(v[0]["n"], 3, "{v}");
    // By hand from the two files.
    let truths: std::collections::HashMap<String, f64> = common::csv_rows(&truth)
        .into_iter()
        .map(|r| (r[0].clone(), r[1].parse().unwrap()))
        .collect();
    let mae: f64 = common::csv_rows(&csv)
        .iter()
        .map(|r| {
            let name = Path::new(&r[0]).file_name().unwrap().to_str().unwrap();
            (r[1].parse::<f64>().unwrap() - truths[name]).abs()
        })
        .sum::<f64>()
        / 3.0;
    assert!((v[0]["mae"].as_f64().unwrap() - mae).abs() < 1e-12, "{v}");
}

/// Regression: SEM fibres had no preset; `sem-particles` split every fibre at its bends and
/// crossings (count MAE 74 on the 25 NFFA fibre crops, where the experts count 2 to 36).
/// `sem-fibres` does not split: MAE 4.24 measured (docs/classical.md), better than MobileSAM's
/// grid (4.72 by objects) and the study's SAM automated (14.08).
#[test]
fn sem_fibres_preset_counts_fibres_instead_of_their_pieces() {
    let dir = tempfile::tempdir().unwrap();
    let fibres = shared().join("data/vlms-micrographs/data_images_NFFA-MS_cropped/Fibres");
    let truth = study_csv("data_ground_truth_NFFA-MS-fibers_counts.csv");
    let mae = |preset: &str| {
        let csv = dir.path().join(format!("{preset}.csv"));
        let v = count_and_score(preset, std::slice::from_ref(&fibres), &csv, &truth);
        assert_eq!(v[0]["n"], 25, "{v}");
        v[0]["mae"].as_f64().unwrap()
    };
    let fibre = mae("sem-fibres");
    assert!(fibre < 5.0, "sem-fibres MAE {fibre}");
    let particle = mae("sem-particles");
    assert!(particle > 50.0, "sem-particles MAE {particle}");
}

/// A wrong Gemini key is HTTP 400 `INVALID_ARGUMENT` / `API_KEY_INVALID` (the body Google
/// documents, `crates/vlm/tests/fixtures/gemini/`); a study kept sending every image. Now the
/// method stops after the first answer and nothing is stored for it, so a rerun tries again.
#[test]
fn rejected_gemini_key_stops_the_method_instead_of_sending_every_image() {
    let body = include_str!("../crates/vlm/tests/fixtures/gemini/error_api_key_invalid.json");
    let server = support::MockServer::sequence(vec![support::Reply::raw(400, body)]);
    let url = server.url("/v1beta");
    let dir = tempfile::tempdir().unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let study = dir.path().join("s.toml");
    std::fs::write(
        &study,
        format!(
            r#"
name = "bad key"
data_root = "{}"
[[datasets]]
name = "bbbc"
kind = "bbbc005"
path = "bbbc005"
[[methods]]
name = "gemini"
kind = "vlm"
model = "gemini:gemini-3.5-flash"
base_url = "{url}"
[[tasks]]
kind = "count"
datasets = ["bbbc"]
methods = ["gemini"]
"#,
            examples.display()
        ),
    )
    .unwrap();
    let store = dir.path().join("s.sqlite");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mica"))
        .env("GEMINI_API_KEY", "AIza-mica-test-not-a-key")
        .env_remove("GEMINI_BASE_URL")
        .args(["-q", "run"])
        .arg(&study)
        .arg("--store")
        .arg(&store)
        .arg("--delay-ms")
        .arg("1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert_eq!(server.count(), 1, "one request, then stop");
    assert!(
        err.contains("was stopped") && err.contains("API key"),
        "{err}"
    );
    assert!(!err.contains("AIza-mica-test-not-a-key"), "{err}");
    let s = mica_store::Store::open_read_only(&store).unwrap();
    assert!(
        s.predictions().unwrap().is_empty(),
        "nothing stored: a rerun tries again"
    );
}
