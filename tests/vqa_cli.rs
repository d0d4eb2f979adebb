//! `mica eval vqa` on the study's VQA-T1 answers and grades (issue #19), bad input, and the
//! extraction of those answers from the study's PDF.

mod common;

use common::{mica, shared};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn answers_csv() -> PathBuf {
    repo().join("studies/vqa-t1/answers.csv")
}

fn references() -> PathBuf {
    shared().join("data/vlms-micrographs/vqa_t1_ground_truths.xlsx")
}

fn eval_json(answers: &Path, reference: &Path, extra: &[&str]) -> (i32, Value, String) {
    let mut args = vec![
        "eval",
        "vqa",
        "--answers",
        answers.to_str().unwrap(),
        "--reference",
        reference.to_str().unwrap(),
        "--json",
    ];
    args.extend_from_slice(extra);
    let (code, out, err) = mica(&args);
    let v = serde_json::from_str(&out).unwrap_or(Value::Null);
    (code, v, err)
}

/// `mica eval vqa --json` on the study's 30 answers against the expert's references and grades.
fn eval_t1(extra: &[&str]) -> (i32, Value, String) {
    let mut args = vec![
        "--reference-column",
        "Description ground truth",
        "--expert-score-column",
        "expert_score",
    ];
    args.extend_from_slice(extra);
    eval_json(&answers_csv(), &references(), &args)
}

/// The agreement of `scorer` with the expert over `group` in `mica eval vqa --json` output.
fn agreement<'a>(v: &'a Value, scorer: &str, group: &str) -> &'a Value {
    &v["summary"]["agreement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["scorer"] == scorer && a["group"] == group)
        .unwrap_or_else(|| panic!("no agreement of {scorer} over {group}"))["agreement"]
}

fn answer<'a>(v: &'a Value, image_prefix: &str, model: &str) -> &'a Value {
    v["answers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["image"].as_str().unwrap().starts_with(image_prefix) && a["model"] == model)
        .unwrap_or_else(|| panic!("no answer {image_prefix} {model}"))
}

fn verdict(a: &Value, kind: &str) -> String {
    a["facts"]["Ok"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == kind)
        .map(|c| c["verdict"].as_str().unwrap().to_string())
        .unwrap_or_else(|| panic!("no {kind} check in {a}"))
}

#[test]
fn committed_t1_answers_hold_the_30_graded_answers() {
    let rows = common::csv_rows(&answers_csv());
    assert_eq!(rows.len(), 30);
    // The PDF's Scores column for L0 reads "5 1 2" (ChatGPT, LLaVA, Gemini).
    let l0: Vec<(&str, &str)> = rows
        .iter()
        .filter(|r| r[0].starts_with("L0_"))
        .map(|r| (r[2].as_str(), r[4].as_str()))
        .collect();
    assert_eq!(l0, [("ChatGPT", "5"), ("LLaVA", "1"), ("Gemini", "2")]);
    for r in &rows {
        assert!(r[3].len() > 200, "a full answer, not a fragment: {r:?}");
        let g: u8 = r[4].parse().unwrap();
        assert!(g <= 5);
    }
}

#[test]
fn eval_vqa_scores_the_studys_t1_answers_against_the_expert() {
    let (code, v, err) = eval_t1(&[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["answers"].as_array().unwrap().len(), 30);
    let models = v["summary"]["models"].as_array().unwrap();
    let grade = |m: &str| {
        models.iter().find(|x| x["model"] == m).unwrap()["expert"]["value"]
            .as_f64()
            .unwrap()
    };
    // Means of the expert's grades, from the PDF: ChatGPT 46/10, LLaVA 30/10, Gemini 25/10.
    assert!((grade("ChatGPT") - 4.6).abs() < 1e-12);
    assert!((grade("LLaVA") - 3.0).abs() < 1e-12);
    assert!((grade("Gemini") - 2.5).abs() < 1e-12);
    // Facts the expert coloured: LLaVA's L2 "249.19 kX" and "482.90 mm" red, "10.00 kV" green.
    let a = answer(&v, "L2_", "LLaVA");
    assert_eq!(verdict(a, "magnification"), "wrong");
    assert_eq!(verdict(a, "stage_z"), "wrong");
    assert_eq!(verdict(a, "eht"), "correct");
    // LLaVA's L0: 250x, 100 µm, 3.00 kV and 48,000 µm all green.
    let a = answer(&v, "L0_", "LLaVA");
    for k in ["scale_bar", "magnification", "eht", "stage_z"] {
        assert_eq!(verdict(a, k), "correct", "{k}");
    }
    let pooled = agreement(&v, "facts_recall", "pooled");
    assert_eq!(pooled["n"], 30);
    let rho = &pooled["spearman"];
    let (r, lo, hi) = (
        rho["value"].as_f64().unwrap(),
        rho["ci"]["low"].as_f64().unwrap(),
        rho["ci"]["high"].as_f64().unwrap(),
    );
    assert!(lo <= r && r <= hi && (-1.0..=1.0).contains(&r));
}

#[test]
fn eval_vqa_bad_input_names_the_item_and_scores_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let refs = dir.path().join("refs.csv");
    std::fs::write(
        &refs,
        "image,reference\n\
         a.jpg,\"Fibres.\nScale bar = 20 µm, Magnification = 1430 X, EHT = 1.00 kV\"\n\
         b.jpg,A description without an instrument line.\n\
         c.jpg,\"Magnification = lots, EHT = 3 kV\"\n",
    )
    .unwrap();
    let answers = dir.path().join("answers.csv");
    std::fs::write(
        &answers,
        "image,model,answer,grade\n\
         a.jpg,M,\"At 1.43 kX and 1.00 kV.\",4\n\
         a.jpg,N,,1\n\
         sub/a.jpg,O,\"Magnification 1430x\",four\n\
         b.jpg,M,\"EHT 1 kV\",3\n\
         c.jpg,M,\"EHT 3 kV\",2\n\
         d.jpg,M,\"no reference\",2\n",
    )
    .unwrap();
    let (code, v, err) = eval_json(&answers, &refs, &["--expert-score-column", "grade"]);
    assert_eq!(code, 0, "{err}");
    let a = v["answers"].as_array().unwrap();
    // Every answer is listed; those whose facts cannot be checked say why and have no score.
    assert_eq!(a.len(), 6, "{v}");
    for i in [3, 4, 5] {
        assert!(a[i]["facts"]["Err"].is_string(), "{}", a[i]);
        assert!(a[i]["scores"].get("facts_recall").is_none(), "{}", a[i]);
        // (A similarity is there when MICA_MINILM_DIR is set and the image has a reference.)
    }
    assert_eq!(a[0]["scores"]["facts_recall"], 2.0 / 3.0);
    assert_eq!(
        a[1]["scores"]["facts_recall"], 0.0,
        "empty answer states nothing"
    );
    assert_eq!(a[2]["expert"], Value::Null, "grade 'four' is not a number");
    assert_eq!(
        a[2]["scores"]["facts_recall"],
        1.0 / 3.0,
        "sub/a.jpg matched by name"
    );
    let notes = v["notes"].as_array().unwrap();
    let has = |needle: &str| notes.iter().any(|n| n.as_str().unwrap().contains(needle));
    assert!(has("answers.csv:3: empty answer of \"N\""), "{notes:?}");
    assert!(
        has("answers.csv:4: expert score \"four\" is not a number"),
        "{notes:?}"
    );
    assert!(has("answers.csv:5: facts not scored: reference of \"b.jpg\": the reference has no instrument line"), "{notes:?}");
    assert!(
        has("`Magnification = lots` in the instrument line is not a magnification"),
        "{notes:?}"
    );
    assert!(
        has("answers.csv:7: facts not scored: no reference for image \"d.jpg\""),
        "{notes:?}"
    );
    assert!(err.contains("note: "), "notes also on stderr: {err}");

    // A missing column stops with the file and its columns named.
    let (code, _, err) = eval_json(&answers, &refs, &["--answer-column", "text"]);
    assert_ne!(code, 0);
    assert!(err.contains("answers.csv") && err.contains("text"), "{err}");
}

/// The committed CSV is what `scripts/extract_vqa_t1.py` extracts from the study's PDF, with
/// pdfplumber (installed by `.ci/run` into target/oracle-venv).
#[test]
fn vqa_t1_extraction_reproduces_the_committed_csv() {
    let py = std::env::var_os("MICA_ORACLE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let v = repo().join("target/oracle-venv/bin/python");
            if v.exists() {
                v
            } else {
                "python3".into()
            }
        });
    let ok = std::process::Command::new(&py)
        .args(["-c", "import pdfplumber"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        let msg = format!(
            "`import pdfplumber` fails with {}: pip install -r scripts/oracle-requirements.txt",
            py.display()
        );
        if std::env::var("MICA_REQUIRE_ORACLES").as_deref() == Ok("1") {
            panic!("{msg}");
        }
        eprintln!("SKIPPED: {msg}");
        return;
    }
    let pdf = shared().join("data/vlms-micrographs/vqa_t1_evaluation.pdf");
    let out = std::process::Command::new(&py)
        .arg(repo().join("scripts/extract_vqa_t1.py"))
        .arg(&pdf)
        .arg("--check")
        .arg(answers_csv())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// all-MiniLM-L6-v2's files: `MICA_MINILM_DIR`, else `target/minilm/model` (made by `.ci/run`).
fn minilm() -> Option<PathBuf> {
    let dir = std::env::var_os("MICA_MINILM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/minilm/model"));
    if dir.join("model.safetensors").is_file() {
        return Some(dir);
    }
    if std::env::var("MICA_REQUIRE_ORACLES").as_deref() == Ok("1") {
        panic!("no all-MiniLM-L6-v2 files in {}", dir.display());
    }
    eprintln!("SKIPPED: no all-MiniLM-L6-v2 files in {}", dir.display());
    None
}

#[test]
fn eval_vqa_similarity_scores_every_answer_and_its_agreement() {
    let Some(model) = minilm() else { return };
    let (code, v, err) = eval_t1(&["--similarity-model", model.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    for a in v["answers"].as_array().unwrap() {
        let s = a["scores"]["similarity"].as_f64().unwrap();
        assert!((-1.0..=1.0).contains(&s), "{a}");
    }
    assert_eq!(agreement(&v, "similarity", "pooled")["n"], 30);
    // A folder without the model is an error naming it.
    let (code, _, err) = eval_json(
        &answers_csv(),
        &references(),
        &[
            "--reference-column",
            "Description ground truth",
            "--similarity-model",
            "/nonexistent/minilm",
        ],
    );
    assert_ne!(code, 0);
    assert!(err.contains("/nonexistent/minilm/config.json"), "{err}");
}

#[test]
fn report_scores_vqa_similarity_with_the_same_numbers_as_eval() {
    let Some(model) = minilm() else { return };
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s.sqlite");
    let data = shared().join("data");
    let (code, _, err) = mica(&[
        "-q",
        "run",
        repo()
            .join("studies/beyond-human-vision.toml")
            .to_str()
            .unwrap(),
        "--data-root",
        data.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
        "--method",
        "ChatGPT description (study)",
        "--method",
        "LLaVA description (study)",
        "--method",
        "Gemini description (study)",
    ]);
    assert_eq!(code, 0, "{err}");
    let out = dir.path().join("report");
    let (code, _, err) = mica(&[
        "-q",
        "report",
        store.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--similarity-model",
        model.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let table = common::csv_rows(&out.join("tables/vqa_agreement.csv"));
    let pooled = table
        .iter()
        .find(|r| r[1] == "similarity" && r[2] == "pooled")
        .unwrap_or_else(|| panic!("{table:?}"));
    assert_eq!(pooled[3], "30");
    let report_rho: f64 = pooled[4].parse().unwrap();
    let (_, v, _) = eval_t1(&["--similarity-model", model.to_str().unwrap()]);
    let eval_rho = agreement(&v, "similarity", "pooled")["spearman"]["value"]
        .as_f64()
        .unwrap();
    assert!(
        (report_rho - eval_rho).abs() < 1e-9,
        "{report_rho} vs {eval_rho}"
    );
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        html.contains("all-MiniLM-L6-v2 sentence embeddings (model.safetensors sha256 53aa5117")
    );
}
