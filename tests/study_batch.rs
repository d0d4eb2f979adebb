//! `mica run` with a Batch API method (`batch = true`) against a local server speaking OpenAI's
//! Batch API as documented, or Gemini's Batch Mode as the google-genai SDK speaks it, killed
//! three times mid-way: while uploading, while the batch is being created (the provider has it,
//! mica has not recorded its id), and while polling. Every answer must end up stored once,
//! exactly one batch submitted, the key nowhere, and (OpenAI) every body mica sent and every
//! object the server answered valid under OpenAI's OpenAPI schemas.

mod common;

#[path = "../crates/vlm/tests/support/mod.rs"]
mod support;

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::BatchServer;

const KEY: &str = "sk-mica-batch-test-SECRET-KEY-0123";
const GEMINI_KEY: &str = "AIza-mica-batch-test-SECRET-KEY-4567";

/// One provider's side of the test.
struct Case {
    model: &'static str,
    key_var: &'static str,
    key: &'static str,
    /// The state word of a completed batch.
    completed: &'static str,
    /// (input, output) tokens of each answer and the batch prices, USD per million.
    tokens: (f64, f64),
    batch_prices: (f64, f64),
    /// What a failed line's reason says.
    failed_line: &'static str,
    /// How an echoed key reads after redaction.
    redacted: &'static str,
}

const OPENAI: Case = Case {
    model: "openai:gpt-4o",
    key_var: "OPENAI_API_KEY",
    key: KEY,
    completed: "completed",
    tokens: (812.0, 9.0),
    batch_prices: (1.25, 5.0),
    failed_line: "unsupported image",
    redacted: "called with Bearer ***",
};

const GEMINI: Case = Case {
    model: "gemini:gemini-3.5-flash",
    key_var: "GEMINI_API_KEY",
    key: GEMINI_KEY,
    completed: "BATCH_STATE_SUCCEEDED",
    tokens: (540.0, 7.0),
    batch_prices: (0.75, 4.5),
    failed_line: "Unable to process input image",
    redacted: "called with ***",
};

/// The 10-image count study of `common`, its model a batch method polled every 0.1 s.
fn study(dir: &Path, model: &str, url: &str) -> std::path::PathBuf {
    let study = common::vlm_count_study(dir, model, url);
    let text = std::fs::read_to_string(&study).unwrap();
    let line = format!("base_url = \"{url}\"\n");
    assert!(text.contains(&line));
    std::fs::write(
        &study,
        text.replace(&line, &format!("{line}batch = true\nbatch_poll_s = 0.1\n")),
    )
    .unwrap();
    study
}

fn mica_run(case: &Case, study: &Path, store: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mica"));
    c.arg("run")
        .arg(study)
        .arg("--store")
        .arg(store)
        .env(case.key_var, case.key)
        .env_remove("OPENAI_BASE_URL")
        .env_remove("GEMINI_BASE_URL");
    c
}

/// Starts `mica run`, waits until `ready` says so, then kills it with SIGKILL.
fn kill_when(
    case: &Case,
    study: &Path,
    store: &Path,
    server: &BatchServer,
    ready: impl Fn(&BatchServer) -> bool,
) {
    let mut child = mica_run(case, study, store)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !ready(server) {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "mica never got there"
        );
        if let Some(st) = child.try_wait().unwrap() {
            panic!("mica ended early ({st})");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

fn validator(schema: &str, root: &str) -> jsonschema::Validator {
    let mut schema: Value = serde_json::from_str(schema).unwrap();
    schema["$ref"] = Value::String(format!("#/$defs/{root}"));
    jsonschema::draft202012::options()
        .should_validate_formats(false)
        .build(&schema)
        .unwrap()
}

#[test]
fn a_batch_study_killed_while_creating_and_while_polling_submits_once_and_stores_every_answer_once()
{
    killed_three_times(&OPENAI, BatchServer::start(KEY));
}

#[test]
fn a_gemini_batch_study_killed_while_creating_and_while_polling_submits_once_and_stores_every_answer_once(
) {
    killed_three_times(&GEMINI, BatchServer::start_gemini(GEMINI_KEY));
}

fn killed_three_times(case: &Case, server: BatchServer) {
    let dir = tempfile::tempdir().unwrap();
    let study = study(dir.path(), case.model, &server.url());
    let store = dir.path().join("results.sqlite");
    server.state().fail_lines = vec![3];
    server.state().echo_key_line = Some(5);

    // 1. Killed while uploading: the store has a batch being submitted, the server none.
    server.state().hold_upload = true;
    kill_when(case, &study, &store, &server, |s| {
        !s.state().files.is_empty()
    });
    server.state().hold_upload = false;
    assert!(server.state().batches.is_empty());

    // 2. Killed after the server created the batch and before mica heard of it.
    server.state().hold_create = true;
    kill_when(case, &study, &store, &server, |s| {
        !s.state().batches.is_empty()
    });
    server.state().hold_create = false;
    assert_eq!(server.state().batches.len(), 1);

    // 3. Killed while polling the batch.
    let polls = server.state().polls;
    kill_when(case, &study, &store, &server, |s| {
        s.state().polls >= polls + 3
    });
    assert_eq!(server.state().batches.len(), 1, "a rerun submitted again");

    // 4. The batch completes; the run ends.
    server.state().complete = true;
    let out = mica_run(case, &study, &store).output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    // Exit code 3: partial success (the failed line).
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{stderr}");
    let s = server.state();
    assert_eq!(s.batches.len(), 1, "exactly one batch submitted");
    let state = &s.batches[0]["status"];
    let state = if state.is_null() {
        &s.batches[0]["metadata"]["state"]
    } else {
        state
    };
    assert_eq!(state, case.completed);
    // Two uploads (the first run's, never used for a batch) and two result files.
    assert_eq!(s.files.iter().filter(|f| f.1 == "batch").count(), 2);

    // Every image answered once: 9 counts 1..=10 without the failed line 4, one failure with
    // the provider's reason.
    let st = mica_store::Store::open_read_only(&store).unwrap();
    let preds = st.predictions().unwrap();
    assert_eq!(preds.len(), 10, "{preds:#?}");
    let mut counts: Vec<u64> = preds
        .iter()
        .filter_map(|p| p.value_num.map(|v| v as u64))
        .collect();
    counts.sort();
    assert_eq!(counts, vec![1, 2, 3, 5, 6, 7, 8, 9, 10]);
    let mut served: Vec<u64> = s.answered.iter().map(|a| a.1).collect();
    served.sort();
    assert_eq!(served, counts, "the stored counts are those the batch gave");
    let failed: Vec<_> = preds
        .iter()
        .filter(|p| p.status == mica_store::Status::Failed)
        .collect();
    assert_eq!(failed.len(), 1);
    let why = failed[0].failure.as_deref().unwrap_or("");
    assert!(why.contains("HTTP 400") || why.contains("400"), "{why}");
    assert!(why.contains(case.failed_line), "{why}");
    // Priced at the model's batch rates.
    let ok = preds.iter().find(|p| p.value_num.is_some()).unwrap();
    let cost = ok.cost_usd.unwrap();
    let ((i, o), (pi, po)) = (case.tokens, case.batch_prices);
    assert!((cost - (i * pi + o * po) / 1e6).abs() < 1e-12, "{cost}");
    // The store's batch journal: the first run's batch never created, the second's completed.
    let batches = st.batches().unwrap();
    let states: Vec<&str> = batches.iter().map(|b| b.state.as_str()).collect();
    assert_eq!(states, ["not created", case.completed], "{batches:#?}");
    let first = s.batches[0]["id"]
        .as_str()
        .or_else(|| s.batches[0]["name"].as_str());
    assert_eq!(batches[1].batch_id.as_deref(), first);
    assert_eq!(batches[1].requests, 10);

    // The key the server echoed inside an answer is nowhere in what mica wrote or printed.
    let key = case.key;
    for f in walk(dir.path()) {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !bytes.windows(key.len()).any(|w| w == key.as_bytes()),
            "{} holds the key",
            f.display()
        );
    }
    assert!(!stdout.contains(key) && !stderr.contains(key));
    let echoed = preds
        .iter()
        .find(|p| {
            p.raw_answer
                .as_deref()
                .is_some_and(|a| a.contains("called with"))
        })
        .unwrap();
    assert!(
        echoed
            .raw_answer
            .as_deref()
            .unwrap()
            .contains(case.redacted),
        "{:?}",
        echoed.raw_answer
    );
    if case.model.starts_with("gemini:") {
        // Gemini's shapes are checked against the google-genai SDK in crates/vlm/tests/batch.rs;
        // here: every line went up keyed and with protobuf field names.
        let lines: Vec<&Value> = s
            .exchanged
            .iter()
            .filter(|e| e.0 == "GeminiBatchLine")
            .map(|e| &e.1)
            .collect();
        assert_eq!(lines.len(), 10);
        for l in lines {
            assert!(
                l["key"].is_string() && l["request"]["contents"].is_array(),
                "{l}"
            );
        }
    } else {
        // OpenAI's OpenAPI schemas: every request body mica sent and every object the server
        // answered (so the server speaks the documented protocol), and each line's body.
        let batch_schema = include_str!("../crates/vlm/tests/oracle/openai_batch_schema.json");
        let chat_schema = include_str!("../crates/vlm/tests/oracle/openai_chat_schema.json");
        let chat = validator(chat_schema, "CreateChatCompletionRequest");
        let reply = validator(chat_schema, "CreateChatCompletionResponse");
        let mut seen = std::collections::BTreeSet::new();
        for (what, v) in &s.exchanged {
            seen.insert(*what);
            if *what == "BatchRequestInput" {
                // The input line of OpenAI's batch guide: custom_id, method POST, url, body.
                assert!(v["custom_id"].is_string(), "{v}");
                assert_eq!(v["method"], "POST");
                assert_eq!(v["url"], "/v1/chat/completions");
                let errs: Vec<String> = chat
                    .iter_errors(&v["body"])
                    .map(|e| e.to_string())
                    .collect();
                assert!(errs.is_empty(), "line body: {errs:?}");
                continue;
            }
            let val = validator(batch_schema, what);
            let errs: Vec<String> = val
                .iter_errors(v)
                .map(|e| format!("{e} at {}", e.instance_path()))
                .collect();
            assert!(errs.is_empty(), "{what}: {errs:?}\n{v}");
        }
        assert_eq!(
            seen.into_iter().collect::<Vec<_>>(),
            [
                "Batch",
                "BatchRequestInput",
                "CreateBatchRequest",
                "ListBatchesResponse",
                "OpenAIFile"
            ]
        );
        for f in s.files.iter().filter(|f| f.1 == "batch_output") {
            for line in String::from_utf8_lossy(&f.3).lines() {
                let v: Value = serde_json::from_str(line).unwrap();
                if v["response"]["status_code"] == 200 {
                    let errs: Vec<String> = reply
                        .iter_errors(&v["response"]["body"])
                        .map(|e| e.to_string())
                        .collect();
                    assert!(errs.is_empty(), "{errs:?}");
                }
            }
        }
    }
    drop(s);

    // A rerun has nothing to do and sends nothing.
    let before = server.server.count();
    let out = mica_run(case, &study, &store).output().unwrap();
    assert!(out.status.code() == Some(0) || out.status.code() == Some(3));
    assert_eq!(
        server.server.count(),
        before,
        "a finished study sent requests"
    );
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Regression: a study's model requests were made on the cores' thread pool, so a 2-core
/// machine never had more than 2 in flight whatever the method's `concurrency`.
#[test]
fn a_study_model_method_keeps_its_concurrency_in_flight_whatever_the_cores() {
    let dir = tempfile::tempdir().unwrap();
    let server = support::MockServer::start(support::Script::Func(Box::new(|_| {
        support::Reply::json(200, support::openai_ok("{\"count\": 4}"))
            .delayed(Duration::from_millis(300))
    })));
    let url = server.url("/v1");
    let study = study(dir.path(), OPENAI.model, &url);
    let text = std::fs::read_to_string(&study).unwrap().replace(
        "batch = true\nbatch_poll_s = 0.1\n",
        "concurrency = 4\nrequests_per_minute = 0\n",
    );
    std::fs::write(&study, text).unwrap();
    let out = mica_run(&OPENAI, &study, &dir.path().join("r.sqlite"))
        .env("RAYON_NUM_THREADS", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(server.count(), 10);
    assert_eq!(server.max_in_flight(), 4, "requests in flight");
}
