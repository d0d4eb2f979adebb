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

/// A store of the study's three imported VQA-T1 methods, run by `mica run`.
fn t1_store(dir: &Path) -> PathBuf {
    let store = dir.join("s.sqlite");
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
    store
}

#[test]
fn report_scores_vqa_similarity_with_the_same_numbers_as_eval() {
    let Some(model) = minilm() else { return };
    let dir = tempfile::tempdir().unwrap();
    let store = t1_store(dir.path());
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

/// A local OpenAI-compatible test server standing in for an LLM judge. It grades by a fixed rule,
/// not by a model: the share of the reference's words of five or more letters that the answer
/// also uses, times 5, rounded. It answers an answer mentioning TESCAN (LLaVA's on L4) with the
/// out-of-range grade 7, to test that one bad reply leaves only that answer ungraded. Returns the
/// base URL and the number of requests it got; every request body is kept.
fn judge_test_server() -> (
    String,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
    std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let calls = std::sync::Arc::new(AtomicUsize::new(0));
    let bodies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let (c, b) = (calls.clone(), bodies.clone());
    let url = common::json_server(move |_, body| {
        c.fetch_add(1, Ordering::SeqCst);
        let req: Value = serde_json::from_slice(body).unwrap();
        b.lock().unwrap().push(req.clone());
        let text = req["messages"]
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .find(|m| m["role"] == "user")
            .map(|m| match &m["content"] {
                Value::String(t) => t.clone(),
                // Content parts: [{"type": "text", "text": ...}].
                Value::Array(parts) => parts
                    .iter()
                    .filter_map(|p| p["text"].as_str())
                    .collect::<Vec<_>>()
                    .join("\n"),
                _ => String::new(),
            })
            .unwrap_or_default();
        let between = |open: &str, close: &str| -> String {
            let a = text.find(open).map(|i| i + open.len()).unwrap_or(0);
            let z = text[a..].find(close).map(|i| a + i).unwrap_or(text.len());
            text[a..z].to_lowercase()
        };
        let words = |t: &str| -> std::collections::BTreeSet<String> {
            t.split(|c: char| !c.is_alphabetic())
                .filter(|w| w.chars().count() >= 5)
                .map(str::to_string)
                .collect()
        };
        let (answer, reference) = (
            between("<answer>", "</answer>"),
            between("<reference>", "</reference>"),
        );
        let r = words(&reference);
        let shared = words(&answer).intersection(&r).count();
        let grade = if answer.contains("tescan") {
            7
        } else {
            ((5.0 * shared as f64 / r.len().max(1) as f64).round() as i64).min(5)
        };
        let content = serde_json::json!({
            "correct": [], "wrong": [], "uncertain": [], "score": grade
        })
        .to_string();
        serde_json::json!({
            "id": "chatcmpl-judge-test",
            "object": "chat.completion",
            "created": 1_735_000_000,
            "model": "test-judge",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": 900, "completion_tokens": 20, "total_tokens": 920}
        })
        .to_string()
    });
    (url, calls, bodies)
}

fn judge_prices(dir: &Path) -> PathBuf {
    let p = dir.join("prices.toml");
    std::fs::write(
        &p,
        "[[price]]\nprovider = \"openai-compatible\"\nmodel = \"test-judge\"\n\
         input_usd_per_mtok = 1.0\noutput_usd_per_mtok = 4.0\n",
    )
    .unwrap();
    p
}

/// The LLM judge through `mica eval vqa`: the structured request, one grade per answer, a bad
/// reply that fails only its answer (named), the agreement with the expert's grades, costs,
/// and a rerun that sends nothing. The agreement printed here describes the test server's
/// word-overlap rule, not any model.
#[test]
fn eval_vqa_judge_grades_every_answer_through_the_cache() {
    use std::sync::atomic::Ordering;
    let dir = tempfile::tempdir().unwrap();
    let (url, calls, bodies) = judge_test_server();
    let cache = dir.path().join("cache.sqlite");
    let prices = judge_prices(dir.path());
    let args = [
        "--judge",
        "openai-compatible:test-judge",
        "--judge-base-url",
        url.as_str(),
        "--judge-cache",
        cache.to_str().unwrap(),
        "--judge-prices",
        prices.to_str().unwrap(),
        "--judge-question",
        "Describe this image.",
        "--judge-temperature",
        "0",
    ];
    let (code, v, err) = eval_t1(&args);
    // Exit 3: one answer could not be graded (named); the others were.
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("judge gave no value for \"LLaVA\""), "{err}");
    assert_eq!(calls.load(Ordering::SeqCst), 30);
    // What was sent: the rubric with both texts, the schema, the sampling.
    let first = bodies.lock().unwrap()[0].clone();
    assert_eq!(first["model"], "test-judge");
    assert_eq!(first["temperature"], 0.0);
    assert_eq!(
        first["response_format"]["json_schema"]["name"],
        "judge_grade"
    );
    let user = first["messages"][1]["content"][0]["text"].as_str().unwrap();
    assert!(
        user.contains("<reference>") && user.contains("<answer>"),
        "{user}"
    );
    assert!(user.contains("asked: Describe this image."), "{user}");
    assert!(first["messages"][0]["role"] == "system");
    // Every answer but LLaVA's L4 has a grade 0-5; that one says why not.
    let answers = v["answers"].as_array().unwrap();
    for a in answers {
        let bad = a["image"].as_str().unwrap().starts_with("L4") && a["model"] == "LLaVA";
        if bad {
            assert!(a["scores"].get("judge").is_none(), "{a}");
            let why = a["failures"]["judge"].as_str().unwrap();
            assert!(why.contains("score 7"), "{why}");
        } else {
            let g = a["scores"]["judge"].as_f64().unwrap();
            assert!((0.0..=5.0).contains(&g) && g.fract() == 0.0, "{a}");
        }
    }
    let notes = v["notes"].as_array().unwrap();
    assert!(
        notes.iter().any(|n| {
            let n = n.as_str().unwrap();
            n.contains("judge gave no value for \"LLaVA\"") && n.contains("L4_")
        }),
        "{notes:?}"
    );
    // 30 requests of 900 + 20 tokens at $1 / $4 per million.
    let spend = notes
        .iter()
        .map(|n| n.as_str().unwrap())
        .find(|n| n.starts_with("judge openai-compatible:test-judge"))
        .unwrap();
    assert!(
        spend.contains("30 requests sent, 0 answers from the cache, $0.0294"),
        "{spend}"
    );
    let pooled = agreement(&v, "judge", "pooled");
    assert_eq!(pooled["n"], 29);
    eprintln!(
        "test server's word-overlap rule (not a model) vs the expert: Spearman {} Kendall {}",
        pooled["spearman"], pooled["kendall"]
    );
    // (MICA_MINILM_DIR, when set, adds the similarity scorer's description too.)
    assert!(
        v["scorers"].as_array().unwrap().iter().any(|d| d
            .as_str()
            .unwrap()
            .starts_with("judge: openai-compatible:test-judge at http://127.0.0.1")),
        "{}",
        v["scorers"]
    );
    // A rerun pays nothing: every reply, the bad one too, comes from the cache.
    let (code, v2, err) = eval_t1(&args);
    assert_eq!(code, 3, "{err}");
    assert_eq!(calls.load(Ordering::SeqCst), 30);
    assert_eq!(v2["summary"], v["summary"]);
    assert!(v2["notes"].as_array().unwrap().iter().any(|n| n
        .as_str()
        .unwrap()
        .contains("0 requests sent, 30 answers from the cache")));
}

/// The judge in the study's report: the same grades and agreement as `mica eval vqa`, the
/// ungradable answer named in the tables, the judge described; rendering twice sends nothing.
#[test]
fn report_shows_the_judges_grades_with_the_same_numbers_as_eval() {
    use std::sync::atomic::Ordering;
    let dir = tempfile::tempdir().unwrap();
    let store = t1_store(dir.path());
    let (url, calls, _) = judge_test_server();
    let cache = dir.path().join("cache.sqlite");
    let judge = [
        "--judge",
        "openai-compatible:test-judge",
        "--judge-base-url",
        url.as_str(),
        "--judge-cache",
        cache.to_str().unwrap(),
    ];
    let out = dir.path().join("report");
    let mut args = vec![
        "-q",
        "report",
        store.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(&judge);
    let (code, _, err) = mica(&args);
    assert_eq!(code, 0, "{err}");
    assert_eq!(calls.load(Ordering::SeqCst), 30);
    let table = common::csv_rows(&out.join("tables/vqa_agreement.csv"));
    let pooled = table
        .iter()
        .find(|r| r[1] == "judge" && r[2] == "pooled")
        .unwrap_or_else(|| panic!("{table:?}"));
    assert_eq!(pooled[3], "29");
    let report_rho: f64 = pooled[4].parse().unwrap();
    let (_, v, _) = eval_t1(&judge);
    let eval_rho = agreement(&v, "judge", "pooled")["spearman"]["value"]
        .as_f64()
        .unwrap();
    assert!(
        (report_rho - eval_rho).abs() < 1e-9,
        "{report_rho} vs {eval_rho}"
    );
    let scores_csv = out.join("tables/vqa_scores.csv");
    let head: Vec<String> = csv::Reader::from_path(&scores_csv)
        .unwrap()
        .headers()
        .unwrap()
        .iter()
        .map(str::to_string)
        .collect();
    let col = |name: &str| {
        head.iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name}: {head:?}"))
    };
    let scores = common::csv_rows(&scores_csv);
    let l4 = scores
        .iter()
        .find(|r| r[1].starts_with("L4") && r[2].starts_with("LLaVA"))
        .unwrap();
    assert_eq!(l4[col("judge grade")], "");
    assert!(l4[col("not scored")].contains("score 7"), "{l4:?}");
    let graded = scores
        .iter()
        .filter(|r| !r[col("judge grade")].is_empty())
        .count();
    assert_eq!(graded, 29);
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("judge: openai-compatible:test-judge at http://127.0.0.1"));
    assert!(html.contains("/5 · ") && html.contains("no judge"));
    // Rendering again pays nothing: the eval above and this report share the cache.
    let (code, _, err) = mica(&args);
    assert_eq!(code, 0, "{err}");
    assert_eq!(calls.load(Ordering::SeqCst), 30);
}

/// A static file server on 127.0.0.1 for `files` (URL path `/NAME`); counts requests.
fn file_server(
    files: Vec<(String, Vec<u8>)>,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use mica_testkit::{MockServer, Reply, Script};
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let h = hits.clone();
    let server = MockServer::start(Script::Func(Box::new(move |r| {
        h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        match files.iter().find(|(n, _)| r.path == format!("/{n}")) {
            Some((_, body)) => Reply::bytes(200, body.clone()),
            None => Reply::bytes(404, Vec::new()),
        }
    })));
    (server.url(""), hits)
}

fn eval_t1_env(extra: &[&str], env: &[(&str, &Path)]) -> (i32, Value, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_mica"));
    cmd.args([
        "eval",
        "vqa",
        "--answers",
        answers_csv().to_str().unwrap(),
        "--reference",
        references().to_str().unwrap(),
        "--reference-column",
        "Description ground truth",
        "--json",
    ])
    .args(extra)
    .env_remove("MICA_MINILM_DIR")
    .env_remove("MICA_MINILM_URL");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `--download-similarity-model` fetches the three pinned files into the cache, verified, and
/// then uses them; a second run downloads nothing; a mirror serving other bytes is refused with
/// both hashes and leaves nothing in the cache.
#[test]
fn download_similarity_model_fetches_verified_files_into_the_cache_once() {
    let Some(model) = minilm() else { return };
    let files: Vec<(String, Vec<u8>)> = ["config.json", "tokenizer.json", "model.safetensors"]
        .iter()
        .map(|n| (n.to_string(), std::fs::read(model.join(n)).unwrap()))
        .collect();
    let (url, hits) = file_server(files.clone());
    let cache = tempfile::tempdir().unwrap();
    let url_path = PathBuf::from(&url);
    let env = [
        ("XDG_CACHE_HOME", cache.path()),
        ("MICA_MINILM_URL", url_path.as_path()),
    ];
    let (code, v, err) = eval_t1_env(&["--download-similarity-model"], &env);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("MB downloaded and verified"), "{err}");
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 3);
    let dir = cache.path().join("mica/all-MiniLM-L6-v2");
    for (n, bytes) in &files {
        assert_eq!(&std::fs::read(dir.join(n)).unwrap(), bytes, "{n}");
    }
    assert!(v["answers"][0]["scores"]["similarity"].is_f64(), "{v}");
    // Again: nothing downloaded.
    let (code, _, err) = eval_t1_env(&["--download-similarity-model"], &env);
    assert_eq!(code, 0, "{err}");
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 3);
    // A mirror with another tokenizer: refused, named, nothing kept.
    let mut bad = files.clone();
    bad[1].1.extend_from_slice(b" ");
    let (bad_url, _) = file_server(bad);
    let bad_cache = tempfile::tempdir().unwrap();
    let bad_path = PathBuf::from(&bad_url);
    let (code, _, err) = eval_t1_env(
        &["--download-similarity-model"],
        &[
            ("XDG_CACHE_HOME", bad_cache.path()),
            ("MICA_MINILM_URL", bad_path.as_path()),
        ],
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("{bad_url}/tokenizer.json"))
            && err.contains("be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"),
        "{err}"
    );
    assert!(!bad_cache
        .path()
        .join("mica/all-MiniLM-L6-v2/tokenizer.json")
        .exists());
}
