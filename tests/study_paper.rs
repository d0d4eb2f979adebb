//! The shipped study of the paper, on the real data in ../shared/data: its imported answers give
//! the study's per-method counting errors.

mod common;

use common::write_report;

use std::process::Command;

const SHARED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data");

#[test]
fn imported_answers_reproduce_the_papers_counting_errors() {
    if !std::path::Path::new(SHARED)
        .join("vlms-micrographs")
        .is_dir()
    {
        eprintln!("SKIPPED: {SHARED} not present");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("bhv.sqlite");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mica"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "-q",
            "run",
            "studies/beyond-human-vision.toml",
            "--data-root",
            SHARED,
        ])
        .arg("--store")
        .arg(&store);
    for m in [
        "GPT visual (study)",
        "GPT code (study)",
        "LLaVA (study)",
        "SAM manual (study)",
        "SAM automated (study, ViT-H)",
        "Gemini (study)",
    ] {
        cmd.args(["--method", m]);
    }
    let st = cmd.status().unwrap();
    // Exit 3: the one NFFA fibre image without an expert count has no row in the study's CSVs.
    assert!(matches!(st.code(), Some(0) | Some(3)), "{st}");
    let out = dir.path().join("report");
    write_report(&store, &out);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("tables/counting.json")).unwrap())
            .unwrap();
    let mae = |dataset: &str, method: &str| -> (f64, i64, i64) {
        let r = json
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["dataset"] == dataset && r["method"] == method && r["stratum"] == "all")
            .unwrap_or_else(|| panic!("no row {dataset} / {method}"));
        (
            r["mae"].as_f64().unwrap(),
            r["n"].as_i64().unwrap(),
            r["missing"].as_i64().unwrap(),
        )
    };
    // Independently computed with a few lines of Python's csv module over the study's four
    // results_counting_*.csv files: mean |answer - truth| over non-empty cells.
    let expected = [
        ("BBBC005-S w1", "GPT visual (study)", 19.72, 50),
        ("BBBC005-S w1", "GPT code (study)", 8.48, 50),
        ("BBBC005-S w1", "LLaVA (study)", 28.07, 43),
        ("BBBC005-S w1", "SAM manual (study)", 6.04, 50),
        ("BBBC005-S w1", "SAM automated (study, ViT-H)", 3.52, 50),
        ("BBBC005-S w1", "Gemini (study)", 8.26, 50),
        ("BBBC005-S w2", "GPT visual (study)", 22.34, 50),
        ("BBBC005-S w2", "LLaVA (study)", 21.48, 27),
        ("BBBC005-S w2", "SAM automated (study, ViT-H)", 10.04, 50),
        ("NFFA-MS fibres", "LLaVA (study)", 71.80, 25),
        ("NFFA-MS fibres", "SAM manual (study)", 3.04, 25),
        ("NFFA-MS particles", "GPT visual (study)", 2.76, 25),
        ("NFFA-MS particles", "LLaVA (study)", 15.43, 23),
        ("NFFA-MS particles", "Gemini (study)", 7.88, 25),
    ];
    for (d, m, want, n) in expected {
        let (got, got_n, missing) = mae(d, m);
        assert!(
            (got - want).abs() < 0.005,
            "{d} / {m}: MAE {got}, expected {want}"
        );
        assert_eq!(got_n, n, "{d} / {m}: n");
        let total = if d.starts_with("BBBC") { 50 } else { 25 };
        assert_eq!(got_n + missing, total, "{d} / {m}: n + missing");
    }
}
