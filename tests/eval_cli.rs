//! `mica eval` end to end: the study's own answer CSVs give the numbers we checked independently,
//! files as users have them are handled, and bad files give errors naming the file.
//!
//! How the pinned numbers were checked: `crates/metrics/tests/check_study_numbers.py`, a Python 3
//! script using only the standard library (`csv`, `math`) and sharing no code with mica, computes
//! n, missing, MAE, RMSE, bias, MAPE, exact, Pearson r and R² (against y = x) for every method
//! column of the four counting CSVs, and accuracy, balanced accuracy, macro-F1 and the per-class
//! counts for the classification CSV. The values below are its output (10 decimals).

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn mica(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mica"))
        .args(args)
        .output()
        .expect("run mica")
}

fn study(name: &str) -> PathBuf {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/data/vlms-micrographs"
    ))
    .join(name)
}

fn stdout_json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "mica failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}

fn close(a: &Value, b: f64, what: &str) {
    let a = a
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: not a number: {a}"));
    assert!((a - b).abs() < 1e-8, "{what}: got {a}, expected {b}");
}

type Expected = (&'static str, u64, u64, [f64; 7]);

/// (method, n, missing, [mae, rmse, bias, mape, exact, pearson_r, r2]) from the Python check.
const BBBC005_W1: [Expected; 6] = [
    (
        "GPT visual",
        50,
        0,
        [
            19.72,
            25.0471555271,
            -19.72,
            0.3304652271,
            0.16,
            0.9573657317,
            0.3757425595,
        ],
    ),
    (
        "GPT code",
        50,
        0,
        [
            8.48,
            13.0506704809,
            -8.44,
            0.1248236193,
            0.18,
            0.9748943367,
            0.8305223041,
        ],
    ),
    (
        "LLaVA",
        43,
        7,
        [
            28.0697674419,
            39.4376163250,
            15.4186046512,
            0.6439947249,
            0.0930232558,
            0.7303387468,
            -0.8111286471,
        ],
    ),
    (
        "SAM Manual",
        50,
        0,
        [
            6.04,
            8.5369783882,
            -5.92,
            0.0946679441,
            0.2,
            0.9920783324,
            0.9274804223,
        ],
    ),
    (
        "SAM automated",
        50,
        0,
        [
            3.52,
            4.3358966777,
            3.32,
            0.0932795498,
            0.1,
            0.9962779210,
            0.9812929739,
        ],
    ),
    (
        "Gemini",
        50,
        0,
        [
            8.26,
            11.5956888541,
            4.18,
            0.4203341706,
            0.04,
            0.9545790648,
            0.8662049613,
        ],
    ),
];
const BBBC005_W2: [Expected; 6] = [
    (
        "GPT visual",
        50,
        0,
        [
            22.34,
            30.5139312446,
            -22.34,
            0.3517590007,
            0.14,
            0.8130616702,
            0.0735046817,
        ],
    ),
    (
        "GPT code",
        50,
        0,
        [
            19.2,
            27.3561693225,
            -19.2,
            0.2931495304,
            0.14,
            0.8425970267,
            0.2553409555,
        ],
    ),
    (
        "LLaVA",
        27,
        23,
        [
            21.4814814815,
            29.7047196649,
            6.2222222222,
            0.5010799601,
            0.1481481481,
            0.7601733722,
            0.1375916039,
        ],
    ),
    (
        "SAM Manual",
        50,
        0,
        [
            19.44,
            28.0442507477,
            -19.44,
            0.2842031459,
            0.12,
            0.8959525539,
            0.2174094749,
        ],
    ),
    (
        "SAM automated",
        50,
        0,
        [
            10.04,
            13.1468627436,
            -1.68,
            0.2385938259,
            0.08,
            0.9294731936,
            0.8280147666,
        ],
    ),
    (
        "Gemini",
        50,
        0,
        [
            11.92,
            17.6669182372,
            -1.76,
            0.4956422268,
            0.12,
            0.8806991440,
            0.6894235649,
        ],
    ),
];
const NFFA_FIBERS: [Expected; 6] = [
    (
        "GPT visual",
        25,
        0,
        [
            4.2,
            6.0232881386,
            -3.88,
            0.4048595732,
            0.08,
            0.8177768944,
            0.4297605875,
        ],
    ),
    (
        "GPT code",
        25,
        0,
        [
            7.08,
            12.3174672721,
            3.64,
            1.7077423863,
            0.08,
            0.2561415804,
            -1.3846946987,
        ],
    ),
    (
        "LLaVA",
        25,
        0,
        [
            71.8,
            205.4040895406,
            68.68,
            13.4252456900,
            0.04,
            -0.0947024674,
            -662.1444271200,
        ],
    ),
    (
        "SAM manual",
        25,
        0,
        [
            3.04,
            6.9685005561,
            -1.68,
            0.2220165565,
            0.36,
            0.5644237180,
            0.2367468062,
        ],
    ),
    (
        "SAM automated",
        25,
        0,
        [
            14.08,
            17.1394282285,
            14.08,
            2.2921736918,
            0.0,
            0.7121290225,
            -3.6172417262,
        ],
    ),
    (
        "Gemini",
        25,
        0,
        [
            3.4,
            5.5964274319,
            -3.24,
            0.2532091593,
            0.28,
            0.8974156101,
            0.5077205513,
        ],
    ),
];
const NFFA_PARTICLES: [Expected; 6] = [
    (
        "GPT visual",
        25,
        0,
        [
            2.76,
            5.1575187833,
            1.56,
            0.1298146192,
            0.4,
            0.9684681703,
            0.8194896851,
        ],
    ),
    (
        "GPT code",
        25,
        0,
        [
            5.44,
            11.8995798245,
            -2.56,
            0.2548506177,
            0.44,
            0.6618641485,
            0.0390879479,
        ],
    ),
    (
        "LLaVA",
        23,
        2,
        [
            15.4347826087,
            29.1241719420,
            6.6521739130,
            1.6909004901,
            0.1304347826,
            0.3930909293,
            -4.8240356160,
        ],
    ),
    (
        "SAM manual",
        25,
        0,
        [
            4.24,
            7.4458041876,
            -0.72,
            0.2621134842,
            0.44,
            0.7948864127,
            0.6237785016,
        ],
    ),
    (
        "SAM automated",
        25,
        0,
        [
            10.72,
            18.6053755673,
            7.84,
            1.3357831863,
            0.16,
            0.4051809976,
            -1.3490770901,
        ],
    ),
    (
        "Gemini",
        25,
        0,
        [
            7.88,
            15.0293047078,
            6.76,
            2.7280210513,
            0.16,
            0.7001077719,
            -0.5328447340,
        ],
    ),
];

fn check_count_csv(file: &str, expected: &[Expected]) {
    let path = study(file);
    let out = mica(&[
        "eval",
        "count",
        "--predictions",
        path.to_str().unwrap(),
        "--json",
    ]);
    let rows = stdout_json(&out);
    let rows = rows.as_array().expect("a JSON array");
    assert_eq!(rows.len(), expected.len(), "{file}: one row per method");
    let keys = ["mae", "rmse", "bias", "mape", "exact", "pearson_r", "r2"];
    for (row, (method, n, missing, values)) in rows.iter().zip(expected) {
        assert_eq!(row["method"], *method, "{file}");
        assert_eq!(row["n"], *n, "{file} {method}: n");
        assert_eq!(row["missing"], *missing, "{file} {method}: missing");
        for (k, v) in keys.iter().zip(values) {
            close(&row[*k], *v, &format!("{file} {method} {k}"));
            // The interval brackets its estimate (percentile bootstrap of a plug-in statistic:
            // not guaranteed in general, but true for these means with 2000 resamples).
            let (lo, hi) = (&row[format!("{k}_ci_low")], &row[format!("{k}_ci_high")]);
            if let (Some(lo), Some(hi)) = (lo.as_f64(), hi.as_f64()) {
                assert!(lo <= hi, "{file} {method} {k}: CI [{lo}, {hi}]");
                if ["mae", "bias", "exact"].contains(k) {
                    assert!(lo <= *v + 1e-12 && *v <= hi + 1e-12, "{file} {method} {k}");
                }
            }
        }
    }
}

#[test]
fn count_bbbc005_w1() {
    check_count_csv("results_counting_BBBC005-S_w1.csv", &BBBC005_W1);
}

#[test]
fn count_bbbc005_w2() {
    check_count_csv("results_counting_BBBC005-S_w2.csv", &BBBC005_W2);
}

#[test]
fn count_nffa_fibers() {
    check_count_csv("results_counting_NFFA-MS_fibers.csv", &NFFA_FIBERS);
}

#[test]
fn count_nffa_particles() {
    check_count_csv("results_counting_NFFA-MS_particles.csv", &NFFA_PARTICLES);
}

#[test]
fn count_intervals_are_reproducible_and_seeded() {
    let path = study("results_counting_NFFA-MS_fibers.csv");
    let p = path.to_str().unwrap();
    let a = stdout_json(&mica(&["eval", "count", "--predictions", p, "--json"]));
    let b = stdout_json(&mica(&["eval", "count", "--predictions", p, "--json"]));
    assert_eq!(a, b);
    let c = stdout_json(&mica(&[
        "eval",
        "count",
        "--predictions",
        p,
        "--json",
        "--seed",
        "7",
    ]));
    // Another seed moves some interval end (values are discrete, so not necessarily all).
    let ends = |v: &Value| -> Vec<Value> {
        v.as_array()
            .unwrap()
            .iter()
            .flat_map(|r| {
                ["mae", "rmse", "bias", "r2"]
                    .iter()
                    .flat_map(|k| {
                        [
                            r[format!("{k}_ci_low")].clone(),
                            r[format!("{k}_ci_high")].clone(),
                        ]
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    assert_ne!(ends(&a), ends(&c));
    assert_eq!(a[0]["mae"], c[0]["mae"]);
}

#[test]
fn count_table_text_and_missing_reported() {
    let path = study("results_counting_BBBC005-S_w2.csv");
    let out = mica(&["eval", "count", "--predictions", path.to_str().unwrap()]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("LLaVA"), "{text}");
    assert!(text.contains("21.481"), "{text}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("\"LLaVA\": 23 empty cell(s)"), "{err}");
}

#[test]
fn classify_chatgpt_nffa() {
    let path = study("results_classification_NFFA-MS_chatgpt.csv");
    let out = mica(&[
        "eval",
        "classify",
        "--predictions",
        path.to_str().unwrap(),
        "--truth-column",
        "actual_class",
        "--pred-column",
        "predicted_class",
        "--json",
    ]);
    let r = stdout_json(&out);
    assert_eq!(r["n"], 250);
    assert_eq!(r["unparsed"], 1);
    close(&r["accuracy"], 0.552, "accuracy");
    close(&r["balanced_accuracy"], 0.552, "balanced accuracy");
    close(&r["macro_f1"], 0.5360231958, "macro-F1");
    let per_class = r["per_class"].as_array().unwrap();
    assert_eq!(per_class.len(), 10);
    // Class 3 (Films_Coated_Surface): tp 3, fp 15, fn 22 in the Python check.
    assert_eq!(per_class[2]["class"], "3");
    close(&per_class[2]["precision"], 3.0 / 18.0, "class 3 precision");
    close(&per_class[2]["recall"], 3.0 / 25.0, "class 3 recall");
    close(&per_class[2]["f1"], 6.0 / 43.0, "class 3 F1");
    assert_eq!(per_class[5]["predicted"], 47);
    let conf = &r["confusion"];
    assert_eq!(conf["columns"].as_array().unwrap().last().unwrap(), "none");
    // The one empty answer is in row 9 (Powder), column "none".
    assert_eq!(conf["counts"][8][10], 1);
    assert_eq!(conf["counts"][4][1], 12); // nanowires taken for fibres
    for k in ["accuracy", "balanced_accuracy", "macro_f1"] {
        let (lo, hi) = (
            r[format!("{k}_ci_low")].as_f64().unwrap(),
            r[format!("{k}_ci_high")].as_f64().unwrap(),
        );
        assert!(
            lo < r[k].as_f64().unwrap() && r[k].as_f64().unwrap() < hi,
            "{k}"
        );
    }
    assert!(String::from_utf8_lossy(&out.stderr).contains(":203:"));
}

#[test]
fn classify_with_nffa_labels_names_classes() {
    let path = study("results_classification_NFFA-MS_chatgpt.csv");
    let r = stdout_json(&mica(&[
        "eval",
        "classify",
        "--predictions",
        path.to_str().unwrap(),
        "--truth-column",
        "actual_class",
        "--pred-column",
        "predicted_class",
        "--labels",
        "nffa",
        "--json",
    ]));
    close(&r["accuracy"], 0.552, "accuracy");
    assert_eq!(r["per_class"][2]["class"], "Films_Coated_Surface");
    assert_eq!(r["per_class"][9]["class"], "Tips");
}

fn write(dir: &Path, name: &str, content: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p
}

#[test]
fn count_file_as_users_have_it() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "answers.csv",
        b"\xEF\xBB\xBFimage,Truth,model A,model B\r\na.tif,10,12,NaN\r\nb.tif,20,,about 40\r\nc.tif,,5,5\r\nd.tif,30,30,33\r\n",
    );
    let out = mica(&[
        "eval",
        "count",
        "--predictions",
        p.to_str().unwrap(),
        "--json",
    ]);
    let rows = stdout_json(&out);
    assert_eq!(rows[0]["method"], "model A");
    assert_eq!(
        (rows[0]["n"].as_u64(), rows[0]["missing"].as_u64()),
        (Some(2), Some(1))
    );
    close(&rows[0]["mae"], 1.0, "model A MAE");
    assert_eq!(rows[0]["empty"], 1);
    assert_eq!(
        (rows[1]["n"].as_u64(), rows[1]["missing"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(rows[1]["non_numeric"], 2);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("\"about 40\""), "{err}");
    assert!(err.contains("\"NaN\""), "{err}");
    assert!(
        err.contains("c.tif") && err.contains("no numeric truth"),
        "{err}"
    );
}

#[test]
fn bad_count_files_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let no_truth = write(dir.path(), "no_truth.csv", b"image,expert,A\nx,1,2\n");
    let out = mica(&["eval", "count", "--predictions", no_truth.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no_truth.csv") && err.contains("--truth-column"),
        "{err}"
    );
    let ok = mica(&[
        "eval",
        "count",
        "--predictions",
        no_truth.to_str().unwrap(),
        "--truth-column",
        "expert",
    ]);
    assert!(ok.status.success());

    let ragged = write(dir.path(), "ragged.csv", b"image,truth,A\nx,1,2\ny,3\n");
    let out = mica(&["eval", "count", "--predictions", ragged.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ragged.csv") && err.contains("line 3"),
        "{err}"
    );

    let missing = dir.path().join("absent.csv");
    let out = mica(&["eval", "count", "--predictions", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("absent.csv"));

    let class = write(dir.path(), "classes.csv", b"f,actual,predicted\na,1,1\n");
    let out = mica(&[
        "eval",
        "classify",
        "--predictions",
        class.to_str().unwrap(),
        "--truth-column",
        "actual",
        "--pred-column",
        "guess",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("classes.csv") && err.contains("\"guess\""),
        "{err}"
    );
}

fn write_mask(path: &Path, w: u32, h: u32, on: impl Fn(u32, u32) -> bool) {
    let data = (0..h)
        .flat_map(|y| (0..w).map(move |x| (x, y)))
        .map(|(x, y)| if on(x, y) { 255u8 } else { 0 })
        .collect();
    let img = mica_core::Image::gray8(w, h, data).unwrap();
    mica_core::io::write_png(path, &img).unwrap();
}

#[test]
fn segment_pairs_by_stem_and_reports_missing_masks() {
    let dir = tempfile::tempdir().unwrap();
    let (t, p) = (dir.path().join("truth"), dir.path().join("pred"));
    std::fs::create_dir_all(&t).unwrap();
    std::fs::create_dir_all(&p).unwrap();
    // Two 4x4 squares in the truth; the prediction shifts the first by one column and misses
    // the second.
    let sq = |x0: u32, y0: u32| {
        move |x: u32, y: u32| (x0..x0 + 4).contains(&x) && (y0..y0 + 4).contains(&y)
    };
    let (a, b) = (sq(2, 2), sq(12, 12));
    write_mask(&t.join("img1.png"), 20, 20, |x, y| a(x, y) || b(x, y));
    write_mask(&p.join("img1.png"), 20, 20, sq(3, 2));
    // A real BBBC005 mask scored against itself.
    let real = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/data/bbbc005/masks"
    ))
    .join("SIMCEPImages_A01_C1_F1_s01_w1.TIF");
    std::fs::copy(&real, t.join("real.TIF")).unwrap();
    std::fs::copy(&real, p.join("real.TIF")).unwrap();
    // A truth image with no predicted mask.
    write_mask(&t.join("lonely.png"), 20, 20, sq(0, 0));

    let out = mica(&[
        "eval",
        "segment",
        "--truth",
        t.to_str().unwrap(),
        "--pred",
        p.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(3), "partial: one image has no mask");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("lonely.png") && err.contains("no predicted mask"),
        "{err}"
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let imgs = r["per_image"].as_array().unwrap();
    assert_eq!(imgs.len(), 2);
    let img1 = imgs.iter().find(|i| i["image"] == "img1").unwrap();
    // TP 12, FP 4, FN 4 + 16: Dice = 24 / (24 + 24), Jaccard = 12 / 36.
    close(&img1["dice"], 0.5, "dice");
    close(&img1["jaccard"], 1.0 / 3.0, "jaccard");
    close(&img1["precision"], 0.75, "precision");
    // Farthest truth pixel (15,15) to the predicted square (3..6, 2..5): (9, 10).
    close(&img1["hausdorff_px"], (81.0f64 + 100.0).sqrt(), "hausdorff");
    let inst = &img1["instances"];
    assert_eq!(
        (inst["num_truth"].as_u64(), inst["num_pred"].as_u64()),
        (Some(2), Some(1))
    );
    // IoU of the shifted square: 12 / 20 = 0.6 -> matched at 0.5..0.6, not above.
    assert_eq!(inst["per_threshold"][2]["tp"], 1);
    assert_eq!(inst["per_threshold"][3]["tp"], 0);
    let real = imgs.iter().find(|i| i["image"] == "real").unwrap();
    assert_eq!(real["truth_kind"], "binary mask");
    close(&real["dice"], 1.0, "real dice");
    close(&real["hausdorff_px"], 0.0, "real hausdorff");
    close(
        &real["instances"]["mean_tp_over_tp_fp_fn"],
        1.0,
        "real instances",
    );
    assert_eq!(r["aggregate"]["images"], 2);
    close(&r["aggregate"]["dice"]["mean"], 0.75, "mean dice");
}

#[test]
fn segment_size_mismatch_names_both_files() {
    let dir = tempfile::tempdir().unwrap();
    let (t, p) = (dir.path().join("t"), dir.path().join("p"));
    std::fs::create_dir_all(&t).unwrap();
    std::fs::create_dir_all(&p).unwrap();
    write_mask(&t.join("a.png"), 10, 10, |x, _| x < 3);
    write_mask(&p.join("a.png"), 12, 10, |x, _| x < 3);
    let out = mica(&[
        "eval",
        "segment",
        "--truth",
        t.to_str().unwrap(),
        "--pred",
        p.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "nothing could be scored");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("a.png") && err.contains("10x10") && err.contains("12x10"),
        "{err}"
    );
}

#[test]
fn paired_comparisons() {
    // Count: difference of MAE on the images both answered (fibres: all 25).
    let path = study("results_counting_NFFA-MS_fibers.csv");
    let rows = stdout_json(&mica(&[
        "eval",
        "count",
        "--predictions",
        path.to_str().unwrap(),
        "--compare-to",
        "SAM manual",
        "--json",
    ]));
    let gemini = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["method"] == "Gemini")
        .unwrap();
    let d = &gemini["mae_difference"];
    assert_eq!(d["reference"], "SAM manual");
    assert_eq!(d["n"], 25);
    close(&d["difference"], 3.4 - 3.04, "MAE difference");
    assert!(d["ci_low"].as_f64().unwrap() <= d["ci_high"].as_f64().unwrap());

    // Classify: difference of accuracy between two prediction columns.
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "two.csv",
        b"img,truth,m1,m2\n1,a,a,a\n2,a,a,b\n3,b,b,a\n4,b,a,a\n",
    );
    let r = stdout_json(&mica(&[
        "eval",
        "classify",
        "--predictions",
        p.to_str().unwrap(),
        "--truth-column",
        "truth",
        "--pred-column",
        "m1",
        "--compare-pred-column",
        "m2",
        "--json",
    ]));
    let d = &r["accuracy_difference"];
    close(&d["accuracy"], 0.75, "m1 accuracy");
    close(&d["other_accuracy"], 0.25, "m2 accuracy");
    close(&d["difference"], 0.5, "difference");
}

#[test]
fn segment_label_tiffs_and_mask_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let (t, p) = (dir.path().join("t"), dir.path().join("p"));
    std::fs::create_dir_all(&t).unwrap();
    std::fs::create_dir_all(&p).unwrap();
    // Two touching objects (labels 1 and 2) that a binary mask would merge; the prediction has
    // the same objects under other labels (300 needs 16 bits).
    let w = 8u32;
    let lab = |a: u32, b: u32| -> Vec<u32> {
        (0..w * 4).map(|i| if i % w < 4 { a } else { b }).collect()
    };
    let truth = mica_core::LabelImage::new(w, 4, lab(1, 2)).unwrap();
    let pred = mica_core::LabelImage::new(w, 4, lab(300, 7)).unwrap();
    mica_core::io::write_label_tiff(&t.join("x.tif"), &truth).unwrap();
    mica_core::io::write_label_tiff(&p.join("x.tif"), &pred).unwrap();
    let r = stdout_json(&mica(&[
        "eval",
        "segment",
        "--truth",
        t.to_str().unwrap(),
        "--pred",
        p.to_str().unwrap(),
        "--json",
    ]));
    let x = &r["per_image"][0];
    assert_eq!(x["truth_kind"], "label image");
    assert_eq!(x["instances"]["num_truth"], 2);
    assert_eq!(x["instances"]["per_threshold"][9]["tp"], 2);
    // As binary masks (foreground > 0) the two objects merge into one.
    let r = stdout_json(&mica(&[
        "eval",
        "segment",
        "--truth",
        t.to_str().unwrap(),
        "--pred",
        p.to_str().unwrap(),
        "--mask-threshold",
        "0",
        "--json",
    ]));
    assert_eq!(r["per_image"][0]["instances"]["num_truth"], 1);
    assert_eq!(r["per_image"][0]["instances"]["num_pred"], 1);
}

// ---------------------------------------------------------------------------------------------
// Stratification (--by)

/// The rows of a count JSON output for one method: the unstratified row and the stratum rows.
fn method_rows<'a>(rows: &'a Value, method: &str) -> Vec<&'a Value> {
    rows.as_array()
        .unwrap()
        .iter()
        .filter(|r| r["method"] == method)
        .collect()
}

fn stratum_row<'a>(rows: &'a Value, method: &str, by: &str, stratum: &str) -> &'a Value {
    method_rows(rows, method)
        .into_iter()
        .find(|r| r["by"] == by && r["stratum"] == stratum)
        .unwrap_or_else(|| panic!("no row {method} {by}={stratum}"))
}

#[test]
fn count_by_stain_reproduces_the_per_file_numbers() {
    // The study's w1 and w2 answers in one file, plus one image whose name is no BBBC005 name.
    let w1 = std::fs::read_to_string(study("results_counting_BBBC005-S_w1.csv")).unwrap();
    let w2 = std::fs::read_to_string(study("results_counting_BBBC005-S_w2.csv")).unwrap();
    let mut both = String::new();
    for (i, text) in [&w1, &w2].iter().enumerate() {
        for (j, line) in text.lines().enumerate() {
            if line.trim().is_empty() || (i == 1 && j == 0) {
                continue;
            }
            both.push_str(line.trim_end());
            both.push('\n');
        }
    }
    both.push_str("plates/other_image.png,10,11,10,,10,10,9\n");
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "both.csv", both.as_bytes());
    let out = mica(&[
        "eval",
        "count",
        "--predictions",
        p.to_str().unwrap(),
        "--by",
        "stain",
        "--by",
        "blur",
        "--json",
    ]);
    let rows = stdout_json(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("plates/other_image.png") && err.contains("\"unknown\""),
        "{err}"
    );
    let per_file = |name: &str| {
        stdout_json(&mica(&[
            "eval",
            "count",
            "--predictions",
            study(name).to_str().unwrap(),
            "--json",
        ]))
    };
    let (f1, f2) = (
        per_file("results_counting_BBBC005-S_w1.csv"),
        per_file("results_counting_BBBC005-S_w2.csv"),
    );
    let keys = ["mae", "rmse", "bias", "mape", "exact", "pearson_r", "r2"];
    for (stain, expected, file_rows) in [("w1", &BBBC005_W1, &f1), ("w2", &BBBC005_W2, &f2)] {
        for (k, (method, n, missing, values)) in expected.iter().enumerate() {
            let rs = method_rows(&rows, method);
            // Order: the whole file, stain w1, w2, unknown, blur F1, unknown.
            let strata: Vec<String> = rs
                .iter()
                .map(|r| format!("{}={}", r["by"], r["stratum"]))
                .collect();
            assert_eq!(
                strata,
                [
                    "null=null",
                    "\"stain\"=\"w1\"",
                    "\"stain\"=\"w2\"",
                    "\"stain\"=\"unknown\"",
                    "\"blur\"=\"F1\"",
                    "\"blur\"=\"unknown\"",
                ],
                "{method}"
            );
            // The unstratified row keeps its old keys only.
            assert!(rs[0].get("by").is_none() && rs[0].get("stratum").is_none());
            let r = stratum_row(&rows, method, "stain", stain);
            assert_eq!(r["n"], *n, "{stain} {method}: n");
            assert_eq!(r["missing"], *missing, "{stain} {method}: missing");
            for (key, v) in keys.iter().zip(values) {
                close(&r[*key], *v, &format!("{stain} {method} {key}"));
                // Same images in the same order, same seed: the same intervals as the file alone.
                for end in ["ci_low", "ci_high"] {
                    let f = format!("{key}_{end}");
                    assert_eq!(r[&f], file_rows[k][&f], "{stain} {method} {f}");
                }
            }
        }
    }
    // Every image of both files is in focus (F1); the extra image is in "unknown".
    let f1_row = stratum_row(&rows, "LLaVA", "blur", "F1");
    assert_eq!(
        (f1_row["n"].as_u64(), f1_row["missing"].as_u64()),
        (Some(70), Some(30))
    );
    let unknown = stratum_row(&rows, "GPT visual", "stain", "unknown");
    assert_eq!(unknown["n"], 1);
    close(&unknown["mae"], 1.0, "unknown stratum MAE");
    let llava_unknown = stratum_row(&rows, "LLaVA", "stain", "unknown");
    assert_eq!(
        (
            llava_unknown["n"].as_u64(),
            llava_unknown["missing"].as_u64()
        ),
        (Some(0), Some(1))
    );
    assert!(llava_unknown["mae"].is_null());

    // Text table: a row per stratum under its method.
    let out = mica(&[
        "eval",
        "count",
        "--predictions",
        p.to_str().unwrap(),
        "--by",
        "stain",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("LLaVA  stain=w2"), "{text}");
    assert!(text.contains("21.481"), "{text}");
}

#[test]
fn count_by_column_and_count_range() {
    let dir = tempfile::tempdir().unwrap();
    // plate "9" sorts before "10" (numbers numerically); an empty plate forms "(empty)".
    let p = write(
        dir.path(),
        "plates.csv",
        b"image,truth,plate,A,B\r\na,10,10,12,10\r\nb,20,10,NaN,20\r\nc,5,9,5,4\r\nd,30,9,36,30\r\ne,7,,8,7\r\n",
    );
    let out = mica(&[
        "eval",
        "count",
        "--predictions",
        p.to_str().unwrap(),
        "--by",
        "column:Plate,count-range",
        "--count-ranges",
        "10",
        "--compare-to",
        "B",
        "--json",
    ]);
    let rows = stdout_json(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("\"plate\" groups the images"), "{err}");
    // "plate" is not a method.
    let methods: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r.get("by").is_none())
        .map(|r| r["method"].as_str().unwrap())
        .collect();
    assert_eq!(methods, ["A", "B"]);
    let strata: Vec<String> = method_rows(&rows, "A")
        .iter()
        .skip(1)
        .map(|r| {
            format!(
                "{}={}",
                r["by"].as_str().unwrap(),
                r["stratum"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        strata,
        [
            "column:plate=9",
            "column:plate=10",
            "column:plate=(empty)",
            "count-range=0: <10",
            "count-range=1: >=10",
        ]
    );
    // By hand: plate 9: |5-5|, |36-30| -> MAE 3, bias 3, exact 1/2; plate 10: |12-10| and a
    // non-numeric answer -> n 1, missing 1, MAE 2.
    let p9 = stratum_row(&rows, "A", "column:plate", "9");
    assert_eq!(
        (p9["n"].as_u64(), p9["missing"].as_u64()),
        (Some(2), Some(0))
    );
    close(&p9["mae"], 3.0, "plate 9 MAE");
    close(&p9["bias"], 3.0, "plate 9 bias");
    close(&p9["exact"], 0.5, "plate 9 exact");
    // Two images are too few for an interval (mica_metrics::bootstrap::MIN_ITEMS_FOR_INTERVAL):
    // none is given rather than a meaningless one.
    assert!(p9["mae_ci_low"].is_null(), "{p9}");
    let p10 = stratum_row(&rows, "A", "column:plate", "10");
    assert_eq!(
        (p10["n"].as_u64(), p10["missing"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(p10["non_numeric"], 1);
    close(&p10["mae"], 2.0, "plate 10 MAE");
    // Count ranges: <10 holds c (5 -> 5) and e (7 -> 8): MAE 0.5; >=10 holds a, b, d.
    let low = stratum_row(&rows, "A", "count-range", "0: <10");
    close(&low["mae"], 0.5, "<10 MAE");
    let high = stratum_row(&rows, "A", "count-range", "1: >=10");
    assert_eq!(
        (high["n"].as_u64(), high["missing"].as_u64()),
        (Some(2), Some(1))
    );
    close(&high["mae"], 4.0, ">=10 MAE");
    // Paired difference of MAE per stratum: plate 9, A errors 0, 6 vs B errors 1, 0.
    let d = &p9["mae_difference"];
    assert_eq!(d["reference"], "B");
    close(&d["difference"], 3.0 - 0.5, "plate 9 MAE difference");

    // Seeded: the same stratum intervals on a second run.
    let again = stdout_json(&mica(&[
        "eval",
        "count",
        "--predictions",
        p.to_str().unwrap(),
        "--by",
        "column:Plate,count-range",
        "--count-ranges",
        "10",
        "--compare-to",
        "B",
        "--json",
    ]));
    assert_eq!(rows, again);

    // --count-ranges alone still stratifies by count range, now with "by" named.
    let r = stdout_json(&mica(&[
        "eval",
        "count",
        "--predictions",
        p.to_str().unwrap(),
        "--count-ranges",
        "10",
        "--json",
    ]));
    // Without --by column:plate, "plate" is a method again.
    assert_eq!(method_rows(&r, "plate").len(), 3);
    close(
        &stratum_row(&r, "A", "count-range", "0: <10")["mae"],
        0.5,
        "<10 MAE",
    );
}

#[test]
fn classify_by_class_stain_and_column() {
    let path = study("results_classification_NFFA-MS_chatgpt.csv");
    let out = mica(&[
        "eval",
        "classify",
        "--predictions",
        path.to_str().unwrap(),
        "--truth-column",
        "actual_class",
        "--pred-column",
        "predicted_class",
        "--by",
        "class,stain",
        "--json",
    ]);
    let r = stdout_json(&out);
    close(&r["accuracy"], 0.552, "accuracy");
    let strata = r["strata"].as_array().unwrap();
    let classes: Vec<&Value> = strata.iter().filter(|s| s["by"] == "class").collect();
    assert_eq!(classes.len(), 10);
    assert_eq!(
        classes
            .iter()
            .map(|s| s["n"].as_u64().unwrap())
            .sum::<u64>(),
        250
    );
    // Within one true class, accuracy is that class's recall (class 3: 3 of 25 in the Python
    // check) and equals the per-class recall of the same output.
    for (s, c) in classes.iter().zip(r["per_class"].as_array().unwrap()) {
        assert_eq!(s["stratum"], c["class"]);
        close(&s["accuracy"], c["recall"].as_f64().unwrap(), "recall");
        assert!(
            s["macro_f1"].is_null(),
            "macro-F1 says nothing within one class"
        );
        let (lo, hi) = (
            s["accuracy_ci_low"].as_f64().unwrap(),
            s["accuracy_ci_high"].as_f64().unwrap(),
        );
        assert!(lo <= s["accuracy"].as_f64().unwrap() && s["accuracy"].as_f64().unwrap() <= hi);
    }
    assert_eq!(classes[2]["stratum"], "3");
    close(&classes[2]["accuracy"], 3.0 / 25.0, "class 3 accuracy");
    // The one empty answer is a Powder (class 9) image.
    assert_eq!(classes[8]["missing"], 1);
    assert_eq!(classes[0]["missing"], 0);
    // NFFA file names are no BBBC005 names: one "unknown" stratum with the whole file, reported.
    let unknown: Vec<&Value> = strata.iter().filter(|s| s["by"] == "stain").collect();
    assert_eq!(unknown.len(), 1);
    assert_eq!(unknown[0]["stratum"], "unknown");
    assert_eq!(unknown[0]["n"], 250);
    close(
        &unknown[0]["accuracy"],
        r["accuracy"].as_f64().unwrap(),
        "unknown = all",
    );
    close(&unknown[0]["macro_f1"], 0.5360231958, "unknown macro-F1");
    assert_eq!(unknown[0]["accuracy_ci_low"], r["accuracy_ci_low"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("250 image(s) have no BBBC005 file name")
            && err.contains("07f896d05966491dff2b6bf79c78d6f3.jpg"),
        "{err}"
    );

    // A small table by any column, and by stain from BBBC005 names in the image column.
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "sites.csv",
        b"img,truth,pred,site\nSIMCEPImages_A01_C1_F1_s01_w1.TIF,a,a,x\nSIMCEPImages_A01_C1_F1_s01_w2.TIF,a,b,x\nSIMCEPImages_A01_C1_F1_s02_w2.TIF,b,b,y\nSIMCEPImages_A01_C1_F1_s03_w2.TIF,b,,y\n",
    );
    let out = mica(&[
        "eval",
        "classify",
        "--predictions",
        p.to_str().unwrap(),
        "--truth-column",
        "truth",
        "--pred-column",
        "pred",
        "--by",
        "column:site",
        "--by",
        "stain",
    ]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("column:site=x") && text.contains("stain=w2"),
        "{text}"
    );
    let r = stdout_json(&mica(&[
        "eval",
        "classify",
        "--predictions",
        p.to_str().unwrap(),
        "--truth-column",
        "truth",
        "--pred-column",
        "pred",
        "--by",
        "column:site,stain",
        "--json",
    ]));
    let s = r["strata"].as_array().unwrap();
    let got: Vec<(String, u64, u64, f64)> = s
        .iter()
        .map(|s| {
            (
                format!(
                    "{}={}",
                    s["by"].as_str().unwrap(),
                    s["stratum"].as_str().unwrap()
                ),
                s["n"].as_u64().unwrap(),
                s["missing"].as_u64().unwrap(),
                s["accuracy"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("column:site=x".to_string(), 2, 0, 0.5),
            ("column:site=y".to_string(), 2, 1, 0.5),
            ("stain=w1".to_string(), 1, 0, 1.0),
            ("stain=w2".to_string(), 3, 1, 1.0 / 3.0),
        ]
    );
    // Without --by the JSON has no "strata" key.
    let plain = stdout_json(&mica(&[
        "eval",
        "classify",
        "--predictions",
        p.to_str().unwrap(),
        "--truth-column",
        "truth",
        "--pred-column",
        "pred",
        "--json",
    ]));
    assert!(plain.get("strata").is_none());
}

#[test]
fn segment_by_stain_and_blur() {
    let dir = tempfile::tempdir().unwrap();
    let (t, p) = (dir.path().join("truth"), dir.path().join("pred"));
    std::fs::create_dir_all(&t).unwrap();
    std::fs::create_dir_all(&p).unwrap();
    let sq = |x0: u32| move |x: u32, y: u32| (x0..x0 + 4).contains(&x) && (2..6).contains(&y);
    // w1, in focus and blur 10: perfect; w2 blur 4: shifted by one column (Dice 24/32);
    // another w2 image without a prediction; "other" is no BBBC005 name (perfect).
    for name in [
        "SIMCEPImages_A01_C1_F1_s01_w1.png",
        "SIMCEPImages_B01_C1_F10_s01_w1.png",
        "other.png",
    ] {
        write_mask(&t.join(name), 12, 8, sq(2));
        write_mask(&p.join(name), 12, 8, sq(2));
    }
    write_mask(&t.join("SIMCEPImages_C01_C1_F4_s01_w2.png"), 12, 8, sq(2));
    write_mask(&p.join("SIMCEPImages_C01_C1_F4_s01_w2.png"), 12, 8, sq(3));
    write_mask(&t.join("SIMCEPImages_A01_C1_F1_s02_w2.png"), 12, 8, sq(2));
    let out = mica(&[
        "eval",
        "segment",
        "--truth",
        t.to_str().unwrap(),
        "--pred",
        p.to_str().unwrap(),
        "--by",
        "stain,blur",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(3), "partial: one image has no mask");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("other.png") && err.contains("\"unknown\""),
        "{err}"
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let got: Vec<(String, u64, u64, f64)> = r["strata"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                format!(
                    "{}={}",
                    s["by"].as_str().unwrap(),
                    s["stratum"].as_str().unwrap()
                ),
                s["images"].as_u64().unwrap(),
                s["missing"].as_u64().unwrap(),
                s["dice"]["mean"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("stain=w1".to_string(), 2, 0, 1.0),
            ("stain=w2".to_string(), 1, 1, 0.75),
            ("stain=unknown".to_string(), 1, 0, 1.0),
            ("blur=F1".to_string(), 1, 1, 1.0),
            ("blur=F4".to_string(), 1, 0, 0.75),
            ("blur=F10".to_string(), 1, 0, 1.0),
            ("blur=unknown".to_string(), 1, 0, 1.0),
        ]
    );
    // Each stratum has the full aggregate with intervals and pooled instances.
    let w2 = &r["strata"][1];
    close(&w2["jaccard"]["mean"], 0.6, "w2 Jaccard");
    assert_eq!(w2["pooled_instances"][0]["tp"], 1);
    assert_eq!(r["aggregate"]["images"], 4);
    let out = mica(&[
        "eval",
        "segment",
        "--truth",
        t.to_str().unwrap(),
        "--pred",
        p.to_str().unwrap(),
        "--by",
        "blur",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("blur=F10") && text.contains("per stratum"),
        "{text}"
    );
}

#[test]
fn bad_by_values_give_clear_errors() {
    let counts = study("results_counting_BBBC005-S_w1.csv");
    let c = counts.to_str().unwrap();
    let err_of = |args: &[&str]| -> String {
        let out = mica(args);
        assert!(!out.status.success(), "{args:?} should fail");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let e = err_of(&["eval", "count", "--predictions", c, "--by", "colour"]);
    assert!(
        e.contains("colour") && e.contains("stain, blur, class, count-range or column:NAME"),
        "{e}"
    );
    let e = err_of(&["eval", "count", "--predictions", c, "--by", "column:"]);
    assert!(e.contains("needs a column name"), "{e}");
    let e = err_of(&[
        "eval",
        "count",
        "--predictions",
        c,
        "--by",
        "stain,column:plate",
    ]);
    assert!(
        e.contains("column:plate")
            && e.contains("results_counting_BBBC005-S_w1.csv")
            && e.contains("\"GPT visual\""),
        "{e}"
    );
    let e = err_of(&["eval", "count", "--predictions", c, "--by", "class"]);
    assert!(
        e.contains("--by class") && e.contains("eval classify"),
        "{e}"
    );
    let e = err_of(&["eval", "count", "--predictions", c, "--by", "count-range"]);
    assert!(e.contains("--count-ranges"), "{e}");
    // Grouping by the only method column leaves nothing to score.
    let dir = tempfile::tempdir().unwrap();
    let one = write(dir.path(), "one.csv", b"image,truth,A\nx,1,2\n");
    let e = err_of(&[
        "eval",
        "count",
        "--predictions",
        one.to_str().unwrap(),
        "--by",
        "column:A",
    ]);
    assert!(
        e.contains("one.csv") && e.contains("no method columns"),
        "{e}"
    );

    let classes = study("results_classification_NFFA-MS_chatgpt.csv");
    let e = err_of(&[
        "eval",
        "classify",
        "--predictions",
        classes.to_str().unwrap(),
        "--truth-column",
        "actual_class",
        "--pred-column",
        "predicted_class",
        "--by",
        "count-range",
    ]);
    assert!(e.contains("count-range") && e.contains("eval count"), "{e}");
    let e = err_of(&[
        "eval",
        "classify",
        "--predictions",
        classes.to_str().unwrap(),
        "--truth-column",
        "actual_class",
        "--pred-column",
        "predicted_class",
        "--by",
        "column:magnification",
    ]);
    assert!(
        e.contains("\"magnification\"") && e.contains("\"filename\""),
        "{e}"
    );
    let e = err_of(&[
        "eval", "segment", "--truth", ".", "--pred", ".", "--by", "class",
    ]);
    assert!(
        e.contains("--by class") && e.contains("stain or blur"),
        "{e}"
    );
}
