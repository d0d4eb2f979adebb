//! The shipped study's VQA experiments on the real data in ../shared/data: VQA-T1 references and
//! VQA-T2 counts and sizes read from the study's spreadsheets (.xlsx), the study's size answers
//! imported and scored as numbers.

mod common;

use common::{csv_rows, json_server, write_report};

use std::process::Command;

const SHARED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data");

#[test]
fn vqa_references_counts_and_sizes_come_from_the_study_spreadsheets() {
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
        .env_remove("OPENAI_API_KEY")
        .env_remove("GEMINI_API_KEY")
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
        "ChatGPT size (study)",
        "LLaVA size (study)",
        "Gemini size (study)",
        "GPT visual (study)",
        "ChatGPT description (study)",
        "LLaVA description (study)",
        "Gemini description (study)",
        // A model method without a key: skipped, but its VQA-T1 task keeps the samples (and their
        // references) in the store.
        "GPT-4o",
    ] {
        cmd.args(["--method", m]);
    }
    let st = cmd.status().unwrap();
    assert!(matches!(st.code(), Some(0) | Some(3)), "{st}");
    let out = dir.path().join("report");
    write_report(&store, &out);
    let tables = out.join("tables");

    // Sizes: 10 fibres and 10 particles per method, every answer of the sheet imported. ChatGPT's
    // fibre MAE by hand from vqa_t2_size_results.xlsx: |6-24|+|7-14|+|5-24|+|10-30|+|20-25|+
    // |12-30|+|8.5-15|+|15-25|+|8-25|+|7-24| = 137.5, / 10 = 13.75 µm.
    let size = csv_rows(&tables.join("size.csv"));
    let row = |d: &str, m: &str| {
        size.iter()
            .find(|r| r[0] == d && r[1] == m)
            .unwrap_or_else(|| panic!("no row {d} {m} in {size:?}"))
            .clone()
    };
    let r = row("VQA-T2 size fibres", "ChatGPT size (study)");
    assert_eq!((r[2].as_str(), r[3].as_str()), ("10", "0"));
    assert!((r[4].parse::<f64>().unwrap() - 13.75).abs() < 1e-9, "{r:?}");
    // Gemini's particle answers: 0.0001 µm for a 0.016 µm truth etc.; within a factor of 2 for
    // 2 of 10 (0.015 vs 0.01 and 0.012 vs 0.02).
    let r = row("VQA-T2 size particles", "Gemini size (study)");
    assert_eq!(r[2], "10");
    assert!((r[8].parse::<f64>().unwrap() - 0.2).abs() < 1e-9, "{r:?}");
    let answers = csv_rows(&tables.join("size_answers.csv"));
    assert_eq!(answers.len(), 20);
    let a = answers
        .iter()
        .find(|r| r[1].starts_with("0a9d325c8250edd1e89670d17b0b04ec"))
        .unwrap();
    assert_eq!(a[2].parse::<f64>().unwrap(), 0.016);

    // VQA-T2 counts: the expert counts of the sheet (50 of the 51 crops have one).
    let counting = csv_rows(&tables.join("counting.csv"));
    let c = counting
        .iter()
        .find(|r| r[0] == "VQA-T2 counts" && r[1] == "all" && r[2] == "GPT visual (study)")
        .unwrap();
    assert_eq!(c[3], "50");
    // Count strata: 30 of those 50 expert counts are at most 10 (17 fibre and 13 particle crops,
    // counted by hand in the sheet).
    let c = counting
        .iter()
        .find(|r| {
            r[0] == "VQA-T2 counts" && r[1] == "true count 0–10" && r[2] == "GPT visual (study)"
        })
        .unwrap();
    assert_eq!(c[3], "30");

    // VQA-T1: the expert's description of each of the 10 images, with the question.
    let vqa = csv_rows(&tables.join("vqa_answers.csv"));
    assert_eq!(vqa.len(), 10);
    let l0 = vqa
        .iter()
        .find(|r| r[1].contains("1c34778dec5a1701d689a7067c4813eb"))
        .unwrap();
    assert_eq!(l0[2], "Describe this image.");
    assert!(
        l0[3].starts_with("The SEM image depicts a porous material"),
        "{l0:?}"
    );

    // VQA-T1 scored: the study's 30 answers with the expert's grades (the PDF's L0 scores
    // "5 1 2"), the facts scorer's values, and its agreement with the grades.
    let scores = csv_rows(&tables.join("vqa_scores.csv"));
    assert_eq!(scores.len(), 30);
    let l0: Vec<(&str, &str)> = scores
        .iter()
        .filter(|r| r[1].starts_with("L0_"))
        .map(|r| (r[2].as_str(), r[3].as_str()))
        .collect();
    assert_eq!(
        l0,
        [
            ("ChatGPT description (study)", "5"),
            ("Gemini description (study)", "2"),
            ("LLaVA description (study)", "1")
        ]
    );
    let summary = csv_rows(&tables.join("vqa_summary.csv"));
    let chatgpt = summary
        .iter()
        .find(|r| r[1] == "ChatGPT description (study)")
        .unwrap();
    assert_eq!((chatgpt[2].as_str(), chatgpt[3].as_str()), ("10", "4.6"));
    let agreement = csv_rows(&tables.join("vqa_agreement.csv"));
    let pooled = agreement
        .iter()
        .find(|r| r[1] == "facts recall" && r[2] == "pooled")
        .unwrap();
    assert_eq!(pooled[3], "30");
    let rho: f64 = pooled[4].parse().unwrap();
    assert!((-1.0..=1.0).contains(&rho));
    // The same number as `mica eval vqa` on the committed CSV (one summary function).
    let (code, stdout, err) = common::mica(&[
        "eval",
        "vqa",
        "--answers",
        concat!(env!("CARGO_MANIFEST_DIR"), "/studies/vqa-t1/answers.csv"),
        "--reference",
        &format!("{SHARED}/vlms-micrographs/vqa_t1_ground_truths.xlsx"),
        "--reference-column",
        "Description ground truth",
        "--expert-score-column",
        "expert_score",
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let eval_rho = v["summary"]["agreement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["scorer"] == "facts_recall" && a["group"] == "pooled")
        .unwrap()["agreement"]["spearman"]["value"]
        .as_f64()
        .unwrap();
    assert!((eval_rho - rho).abs() < 1e-12, "{eval_rho} vs {rho}");
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert_eq!(
        html.matches("<img class=\"thumb\" src=\"data:image/png;base64,")
            .count(),
        10
    );
}

/// A local OpenAI-compatible server answering every request with a structured size of 2.5 µm.
fn size_server() -> String {
    json_server(|_, body| {
        // The request asks for the size schema.
        assert!(String::from_utf8_lossy(body).contains("size_um"));
        r#"{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"{\"size_um\": 2.5}"},"finish_reason":"stop"}],"usage":{"prompt_tokens":100,"completion_tokens":5}}"#.to_string()
    })
}

#[test]
fn a_model_answers_sizes_scored_against_a_csv_truth_table() {
    let url = size_server();
    let dir = tempfile::tempdir().unwrap();
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    // Truth: 5 µm for every example image (a CSV truth table; names without extension).
    let mut truth = String::from("image,size\n");
    for e in std::fs::read_dir(examples.join("bbbc005/images")).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().to_string();
        truth.push_str(&format!("{},5\n", name.rsplit_once('.').unwrap().0));
    }
    std::fs::write(dir.path().join("sizes.csv"), truth).unwrap();
    let study = dir.path().join("s.toml");
    std::fs::write(
        &study,
        format!(
            r#"
name = "sizes"
data_root = "{root}"
[[datasets]]
name = "cells"
kind = "bbbc005"
path = "{examples}/bbbc005"
truth_table = "sizes.csv"
truth_size_column = "size"
[[methods]]
name = "test model"
kind = "vlm"
model = "openai-compatible:test-model"
base_url = "{url}"
[[tasks]]
kind = "size"
datasets = ["cells"]
methods = ["test model"]
objects = "cells"
"#,
            root = dir.path().display(),
            examples = examples.display(),
        ),
    )
    .unwrap();
    let store = dir.path().join("s.sqlite");
    let st = Command::new(env!("CARGO_BIN_EXE_mica"))
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .args(["-q", "run"])
        .arg(&study)
        .arg("--store")
        .arg(&store)
        .status()
        .unwrap();
    assert!(st.success(), "{st}");
    let out = dir.path().join("report");
    write_report(&store, &out);
    let size = csv_rows(&out.join("tables").join("size.csv"));
    assert_eq!(size.len(), 1, "{size:?}");
    let r = &size[0];
    assert_eq!((r[0].as_str(), r[1].as_str()), ("cells", "test model"));
    assert_eq!((r[2].as_str(), r[3].as_str()), ("10", "0"));
    // |2.5 - 5| on every image; log10(2.5/5) = -0.301: within a factor of 2 everywhere.
    assert_eq!(r[4].parse::<f64>().unwrap(), 2.5);
    assert!(
        (r[7].parse::<f64>().unwrap() - 2f64.log10()).abs() < 1e-9,
        "{r:?}"
    );
    assert_eq!(r[8].parse::<f64>().unwrap(), 1.0);
}
