//! The Batch API protocol of [`Engine::run_batches`] against a local server speaking OpenAI's
//! Batch API as documented, or Gemini's Batch Mode as the google-genai SDK speaks it
//! (`support::BatchServer`; the study-level test with kills is `tests/study_batch.rs`): a batch
//! that fails validation, a wait stopped by a signal and resumed without submitting again, a
//! batch created by a killed run found again by its tag, a live-recorded Gemini operation, and the
//! official SDK run against the same server, its requests compared with mica's.

mod support;

use mica_vlm::batch::{BatchJournal, JournalEntry, Submitted};
use mica_vlm::*;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;
use std::time::Duration;
use support::BatchServer;

const KEY: &str = "sk-mica-batch-unit-KEY";
const GEMINI_KEY: &str = "AIza-mica-batch-unit-KEY";

/// A journal in memory: (tag, batch id, state).
#[derive(Default)]
struct Journal(Mutex<Vec<(String, Option<String>, String)>>);

impl BatchJournal for Journal {
    fn open(&self) -> Result<Vec<JournalEntry>, String> {
        Ok(self
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.2 == "submitting" || e.2 == "submitted")
            .map(|e| JournalEntry {
                tag: e.0.clone(),
                batch_id: e.1.clone(),
            })
            .collect())
    }
    fn begin(&self, tag: &str, _: usize) -> Result<(), String> {
        self.0
            .lock()
            .unwrap()
            .push((tag.into(), None, "submitting".into()));
        Ok(())
    }
    fn submitted(&self, tag: &str, s: &Submitted) -> Result<(), String> {
        for e in self.0.lock().unwrap().iter_mut().filter(|e| e.0 == tag) {
            e.1 = Some(s.batch_id.clone());
            e.2 = "submitted".into();
        }
        Ok(())
    }
    fn ended(&self, tag: &str, status: &str, _: &str) -> Result<(), String> {
        for e in self.0.lock().unwrap().iter_mut().filter(|e| e.0 == tag) {
            e.2 = status.into();
        }
        Ok(())
    }
}

fn engine(server: &BatchServer, cache: &std::path::Path) -> Engine {
    engine_for("openai:gpt-4o", server, cache)
}

fn engine_for(model: &str, server: &BatchServer, cache: &std::path::Path) -> Engine {
    std::env::set_var("OPENAI_API_KEY", KEY);
    std::env::set_var("GEMINI_API_KEY", GEMINI_KEY);
    let spec = ModelSpec::parse(model).unwrap();
    let client = Client::new(
        spec.clone(),
        &ClientOptions {
            base_url: Some(server.url()),
            ..Default::default()
        },
    )
    .unwrap();
    Engine::new(
        Box::new(client),
        spec,
        Some(ResponseCache::open(cache).unwrap()),
        &PriceTable::builtin().unwrap(),
        None,
    )
    .unwrap()
}

fn requests(n: usize) -> Vec<VlmRequest> {
    (0..n)
        .map(|i| {
            let mut r = VlmRequest::single(
                format!("How many cells are in image {i}? Count: <n>"),
                vec![],
            );
            r.sampling.max_tokens = Some(16);
            r
        })
        .collect()
}

fn opts(stop: Option<&AtomicBool>) -> BatchOptions<'_> {
    BatchOptions {
        poll_interval: Duration::from_millis(20),
        stop,
        on_status: &|_, _| {},
    }
}

#[test]
fn a_batch_that_fails_validation_is_an_error_with_the_providers_reason_and_is_written_off() {
    let dir = tempfile::tempdir().unwrap();
    let server = BatchServer::start(KEY);
    server.state().fail_validation = true;
    let e = engine(&server, &dir.path().join("c.sqlite"));
    let journal = Journal::default();
    let err = e
        .run_batches(requests(3).into_iter(), &journal, &opts(None))
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, VlmError::Batch { .. }), "{err:?}");
    assert!(
        msg.contains("batch_1") && msg.contains("line 1") && msg.contains("does not exist"),
        "{msg}"
    );
    assert!(!err.is_per_image(), "a failed batch stops the method");
    // Written off: a rerun submits anew (nothing was answered or billed).
    assert_eq!(journal.0.lock().unwrap()[0].2, "failed");
    assert!(journal.open().unwrap().is_empty());
}

#[test]
fn a_wait_stopped_by_a_signal_resumes_polling_without_submitting_again() {
    let dir = tempfile::tempdir().unwrap();
    let server = BatchServer::start(KEY);
    let cache = dir.path().join("c.sqlite");
    let journal = Journal::default();
    let stop = AtomicBool::new(true);
    let err = engine(&server, &cache)
        .run_batches(requests(4).into_iter(), &journal, &opts(Some(&stop)))
        .unwrap_err();
    assert!(err.to_string().contains("resumes polling"), "{err}");
    assert_eq!(server.state().batches.len(), 1);
    assert_eq!(journal.open().unwrap().len(), 1);

    server.state().complete = true;
    let e = engine(&server, &cache);
    let run = e
        .run_batches(requests(4).into_iter(), &journal, &opts(None))
        .unwrap();
    assert_eq!(server.state().batches.len(), 1, "submitted again");
    assert_eq!((run.resumed.len(), run.submitted.len()), (1, 0));
    assert_eq!(run.answers.len(), 4);
    // The answers are in the cache, keyed as synchronous calls: answering now is free.
    for r in requests(4) {
        let a = e.answer(&r).unwrap();
        assert!(a.cached);
        assert!(
            a.response.text.starts_with("{\"count\": "),
            "{}",
            a.response.text
        );
    }
    let before = server.server.count();
    let again = e
        .run_batches(requests(4).into_iter(), &journal, &opts(None))
        .unwrap();
    assert_eq!((again.submitted.len(), again.answers.len()), (0, 0));
    assert_eq!(server.server.count(), before, "cached requests were sent");
}

const GEMINI: &str = "gemini:gemini-3.5-flash";

#[test]
fn a_gemini_batch_goes_up_as_a_resumable_upload_and_its_keyed_answers_come_back_into_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let server = BatchServer::start_gemini(GEMINI_KEY);
    {
        let mut s = server.state();
        s.complete = true;
        s.fail_lines = vec![1];
        s.echo_key_line = Some(2);
    }
    let e = engine_for(GEMINI, &server, &dir.path().join("c.sqlite"));
    let journal = Journal::default();
    let run = e
        .run_batches(requests(4).into_iter(), &journal, &opts(None))
        .unwrap();
    assert_eq!((run.submitted.len(), run.requests_sent), (1, 4));
    assert_eq!(run.submitted[0], "batches/b1");
    assert_eq!(journal.0.lock().unwrap()[0].2, "BATCH_STATE_SUCCEEDED");

    // The resumable upload: start (size and type announced), then the bytes, finalized.
    let reqs = server.server.requests();
    let start = &reqs[0];
    assert_eq!(
        (start.method.as_str(), start.path.as_str()),
        ("POST", "/upload/v1beta/files")
    );
    assert_eq!(start.header("x-goog-upload-protocol"), Some("resumable"));
    assert_eq!(start.header("x-goog-upload-command"), Some("start"));
    assert_eq!(
        start.header("x-goog-upload-header-content-type"),
        Some("application/jsonl")
    );
    let bytes = &reqs[1];
    assert!(bytes.path.starts_with("/upload/v1beta/files?upload_id="));
    assert_eq!(
        start.header("x-goog-upload-header-content-length"),
        Some(bytes.body.len().to_string().as_str())
    );
    let create = &reqs[2];
    assert_eq!(
        create.path,
        "/v1beta/models/gemini-3.5-flash:batchGenerateContent"
    );
    assert_eq!(
        create.json()["batch"]["inputConfig"]["fileName"],
        "files/in1"
    );
    // Every line is `{"key", "request"}` with protobuf field names (a camelCase name would have
    // failed its line), keyed by the request's cache key.
    let lines: Vec<serde_json::Value> = String::from_utf8(bytes.body.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    for (line, req) in lines.iter().zip(requests(4)) {
        assert_eq!(line["key"], e.key_of(&req).as_str());
        assert!(line["request"]["contents"][0]["parts"][0]["text"].is_string());
        assert_eq!(
            line["request"]["generation_config"]["max_output_tokens"],
            16
        );
    }
    // Polled past "succeeded, responses file not named yet".
    assert!(server.state().polls >= 2);

    // Three answers, one failed line with Gemini's reason; the echoed key nowhere.
    let mut ok = 0;
    for (i, req) in requests(4).iter().enumerate() {
        let outcome = &run.answers[&e.key_of(req)];
        if i == 1 {
            let err = outcome.as_ref().unwrap_err().to_string();
            assert!(err.contains("Unable to process input image"), "{err}");
            assert!(err.contains("400"), "{err}");
            continue;
        }
        let o = outcome.as_ref().unwrap();
        assert!(
            o.response
                .text
                .starts_with(&format!("{{\"count\": {}", i + 1)),
            "{}",
            o.response.text
        );
        assert!(!o.response.text.contains(GEMINI_KEY), "{}", o.response.text);
        // gemini-3.5-flash at batch rates ($0.75 / $4.50 per million): 540 in, 7 out.
        let cost = o.cost_usd.unwrap();
        assert!(
            (cost - (540.0 * 0.75 + 7.0 * 4.5) / 1e6).abs() < 1e-12,
            "{cost}"
        );
        ok += 1;
        // In the cache: a synchronous call would be free.
        assert!(e.answer(req).unwrap().cached);
    }
    assert_eq!(ok, 3);
}

#[test]
fn a_gemini_batch_created_by_a_killed_run_is_found_by_its_display_name_not_submitted_again() {
    let dir = tempfile::tempdir().unwrap();
    let server = BatchServer::start_gemini(GEMINI_KEY);
    let cache = dir.path().join("c.sqlite");
    let journal = Journal::default();
    let stop = AtomicBool::new(true);
    engine_for(GEMINI, &server, &cache)
        .run_batches(requests(3).into_iter(), &journal, &opts(Some(&stop)))
        .unwrap_err();
    // As if the run had been killed before it wrote the batch's name down.
    for e in journal.0.lock().unwrap().iter_mut() {
        (e.1, e.2) = (None, "submitting".into());
    }
    server.state().complete = true;
    let run = engine_for(GEMINI, &server, &cache)
        .run_batches(requests(3).into_iter(), &journal, &opts(None))
        .unwrap();
    assert_eq!(server.state().batches.len(), 1, "submitted again");
    assert_eq!(run.resumed, vec!["batches/b1".to_string()]);
    assert_eq!(run.answers.len(), 3);
    assert!(server
        .server
        .requests()
        .iter()
        .any(|r| r.method == "GET" && r.path.starts_with("/v1beta/batches?pageSize=")));
}

#[test]
fn a_gemini_batch_that_fails_is_an_error_with_the_providers_reason() {
    let dir = tempfile::tempdir().unwrap();
    let server = BatchServer::start_gemini(GEMINI_KEY);
    server.state().fail_validation = true;
    let e = engine_for(GEMINI, &server, &dir.path().join("c.sqlite"));
    let journal = Journal::default();
    let err = e
        .run_batches(requests(2).into_iter(), &journal, &opts(None))
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("batches/b1")
            && msg.contains("BATCH_STATE_FAILED")
            && msg.contains("unexpected model name format")
            && msg.contains("INVALID_ARGUMENT"),
        "{msg}"
    );
    assert_eq!(journal.0.lock().unwrap()[0].2, "BATCH_STATE_FAILED");
}

#[test]
fn a_live_recorded_gemini_batch_operation_reads_as_ended_with_its_responses_file() {
    // tidyverse/ellmer's recording of a finished gemini-3.5-flash batch (see the README there).
    let recorded: serde_json::Value = serde_json::from_str(include_str!(
        "fixtures/gemini_batch/operation_succeeded.json"
    ))
    .unwrap();
    let server = support::MockServer::sequence(vec![support::Reply::json(200, recorded)]);
    std::env::set_var("GEMINI_API_KEY", GEMINI_KEY);
    let client = Client::new(
        ModelSpec::parse(GEMINI).unwrap(),
        &ClientOptions {
            base_url: Some(server.url("/v1beta")),
            ..Default::default()
        },
    )
    .unwrap();
    let api = client.batch_api().expect("Gemini has a batch API");
    let status = api
        .status("batches/o6k1fq34vm2ou69wy5w72wqw56qjigbln6yy")
        .unwrap();
    assert_eq!(
        status,
        batch::BatchStatus::Ended {
            status: "BATCH_STATE_SUCCEEDED".into(),
            output_file_id: Some("files/batch-o6k1fq34vm2ou69wy5w72wqw56qjigbln6yy".into()),
            error_file_id: None,
        }
    );
    assert_eq!(
        server.requests()[0].path,
        "/v1beta/batches/o6k1fq34vm2ou69wy5w72wqw56qjigbln6yy"
    );
    assert_eq!(
        server.requests()[0].header("x-goog-api-key"),
        Some(GEMINI_KEY)
    );
}

/// Runs `scripts/SCRIPT ARGS INPUT` with the oracle Python and reads the JSON it prints; an
/// SDK that refuses the server's protocol fails the test with its output.
fn run_sdk_script(py: &Path, script: &str, args: &[&str], input: &Path) -> serde_json::Value {
    let out = std::process::Command::new(py)
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../scripts")
                .join(script),
        )
        .args(args)
        .arg(input)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the SDK refused the protocol:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Oracle written by others: the official google-genai SDK runs a batch against the same test
/// server. It must accept every object the server answers (so the server speaks the SDK's
/// protocol), read the same answers mica read, and have sent what mica sends, field by field.
/// Differences the API allows are listed: the SDK also announces `size_bytes` when it starts the
/// upload, and repeats the start's headers when it sends the bytes.
#[test]
fn the_official_gemini_sdk_runs_a_batch_against_the_test_server_as_mica_does() {
    let Some(py) = support::oracle_python("google.genai") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = BatchServer::start_gemini(GEMINI_KEY);
    server.state().complete = true;
    let e = engine_for(GEMINI, &server, &dir.path().join("c.sqlite"));
    let mica_run = e
        .run_batches(requests(3).into_iter(), &Journal::default(), &opts(None))
        .unwrap();
    let mica_reqs = server.server.requests();
    let input = dir.path().join("input.jsonl");
    std::fs::write(&input, &mica_reqs[1].body).unwrap();

    let sdk = run_sdk_script(
        &py,
        "sdk_gemini_batch.py",
        &[&server.root(), GEMINI_KEY, "gemini-3.5-flash"],
        &input,
    );
    assert_eq!(sdk["file"], "files/in3");
    assert_eq!(sdk["file_state"], "ACTIVE");
    assert_eq!(sdk["batch"], "batches/b2");
    assert_eq!(sdk["display_name"], "sdk-oracle");
    assert_eq!(sdk["created_state"], "JOB_STATE_PENDING");
    assert_eq!(sdk["final_state"], "JOB_STATE_SUCCEEDED");
    assert_eq!(sdk["model"], "models/gemini-3.5-flash");
    assert_eq!(sdk["responses_file"], "files/batch-b2");
    assert_eq!(sdk["listed"][0], "batches/b2");
    // The SDK reads from the responses file what mica read.
    let lines = sdk["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 3);
    for l in lines {
        let mine = mica_run.answers[l["key"].as_str().unwrap()]
            .as_ref()
            .unwrap();
        assert_eq!(l["text"].as_str(), Some(mine.response.text.as_str()));
        assert_eq!(l["input_tokens"].as_u64(), mine.response.usage.input_tokens);
        assert_eq!(
            l["output_tokens"].as_u64(),
            mine.response.usage.output_tokens
        );
    }

    // What each sent, request by request (mica's 3 protocol requests, then the SDK's).
    let all = server.server.requests();
    let sdk_reqs: Vec<_> = all[mica_reqs.len()..].to_vec();
    let find = |reqs: &[support::Recorded], method: &str, prefix: &str, n: usize| {
        reqs.iter()
            .filter(|r| r.method == method && r.path.starts_with(prefix))
            .nth(n)
            .unwrap_or_else(|| panic!("no {method} {prefix}"))
            .clone()
    };
    let start_headers = [
        "x-goog-api-key",
        "x-goog-upload-protocol",
        "x-goog-upload-command",
        "x-goog-upload-header-content-type",
        "x-goog-upload-offset",
    ];
    // The SDK carries the start's headers over to the bytes (`x-goog-upload-protocol`, the
    // announced size and type, `Content-Type: application/json`); what the bytes request
    // itself means is the command and the offset, and neither sends the key with it.
    let bytes_headers = [
        "x-goog-api-key",
        "x-goog-upload-command",
        "x-goog-upload-offset",
    ];
    for (n, what, headers) in [
        (0, "upload start", &start_headers[..]),
        (1, "upload bytes", &bytes_headers[..]),
    ] {
        let (m, s) = (
            find(&mica_reqs, "POST", "/upload/v1beta/files", n),
            find(&sdk_reqs, "POST", "/upload/v1beta/files", n),
        );
        for h in headers {
            assert_eq!(m.header(h), s.header(h), "{what}: {h}");
        }
    }
    let (ms, ss) = (
        find(&mica_reqs, "POST", "/upload/v1beta/files", 0).json(),
        find(&sdk_reqs, "POST", "/upload/v1beta/files", 0).json(),
    );
    assert_eq!(ms["file"]["mime_type"], "application/jsonl");
    assert_eq!(ms["file"]["mime_type"], ss["file"]["mime_type"]);
    let mut sdk_fields: Vec<&String> = ss["file"].as_object().unwrap().keys().collect();
    sdk_fields.retain(|k| *k != "size_bytes");
    let mica_fields: Vec<&String> = ms["file"].as_object().unwrap().keys().collect();
    assert_eq!(mica_fields, sdk_fields, "upload start fields");
    let (mc, sc) = (
        find(&mica_reqs, "POST", "/v1beta/models/", 0),
        find(&sdk_reqs, "POST", "/v1beta/models/", 0),
    );
    assert_eq!(mc.path, sc.path, "batch creation path");
    let (mut mb, mut sb) = (mc.json(), sc.json());
    // The names differ by design (mica's tag, the SDK's display name, the files uploaded).
    for b in [&mut mb, &mut sb] {
        b["batch"]["displayName"] = "NAME".into();
        b["batch"]["inputConfig"]["fileName"] = "FILE".into();
    }
    assert_eq!(mb, sb, "batch creation body");
    assert_eq!(
        mc.header("x-goog-api-key"),
        sc.header("x-goog-api-key"),
        "key header"
    );
}

/// Oracle written by others, for OpenAI's Batch API: the official `openai` SDK runs a batch
/// against the same test server. Its typed models must accept every object the server answers
/// (`FileObject`, `Batch`, the list page, each output line's `ChatCompletion`), it must read the
/// answers mica read, and its upload and batch creation must be mica's, field by field.
/// Differences the API allows: the uploaded file's name, and the SDK's own headers
/// (`User-Agent`, `X-Stainless-*`).
#[test]
fn the_official_openai_sdk_runs_a_batch_against_the_test_server_as_mica_does() {
    let Some(py) = support::oracle_python("openai") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = BatchServer::start(KEY);
    {
        let mut s = server.state();
        s.complete = true;
        s.fail_lines = vec![1];
    }
    let e = engine(&server, &dir.path().join("c.sqlite"));
    let mica_run = e
        .run_batches(requests(3).into_iter(), &Journal::default(), &opts(None))
        .unwrap();
    let mica_reqs = server.server.requests();
    let parts = |r: &support::Recorded| {
        support::multipart_parts(r.header("content-type").unwrap_or(""), &r.body)
    };
    let mica_upload = parts(&mica_reqs[0]);
    let input = dir.path().join("input.jsonl");
    let file = mica_upload.iter().find(|p| p.0 == "file").unwrap();
    std::fs::write(&input, &file.2).unwrap();

    let sdk = run_sdk_script(&py, "sdk_openai_batch.py", &[&server.url(), KEY], &input);
    assert_eq!(sdk["purpose"], "batch");
    assert_eq!(sdk["batch"], "batch_2");
    assert_eq!(sdk["created_status"], "validating");
    assert_eq!(sdk["final_status"], "completed");
    assert_eq!(sdk["metadata"]["mica_tag"], "sdk-oracle");
    assert_eq!(sdk["counts"]["completed"], 2);
    assert_eq!(sdk["counts"]["failed"], 1);
    assert_eq!(sdk["listed"][0], "batch_2");
    let lines = sdk["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 3);
    for l in lines {
        let mine = &mica_run.answers[l["custom_id"].as_str().unwrap()];
        match mine {
            Ok(o) => {
                assert_eq!(l["text"].as_str(), Some(o.response.text.as_str()));
                assert_eq!(l["input_tokens"].as_u64(), o.response.usage.input_tokens);
                assert_eq!(l["output_tokens"].as_u64(), o.response.usage.output_tokens);
            }
            Err(err) => {
                assert_eq!(l["status"], 400, "{l}");
                assert!(err.to_string().contains("400"), "{err}");
            }
        }
    }

    // The upload and the creation, as each sent them.
    let sdk_reqs: Vec<_> = server.server.requests()[mica_reqs.len()..].to_vec();
    let find = |reqs: &[support::Recorded], method: &str, path: &str| {
        reqs.iter()
            .find(|r| r.method == method && r.path == path)
            .unwrap_or_else(|| panic!("no {method} {path}"))
            .clone()
    };
    let (mu, su) = (
        find(&mica_reqs, "POST", "/v1/files"),
        find(&sdk_reqs, "POST", "/v1/files"),
    );
    let names = |p: &[(String, Option<String>, Vec<u8>)]| {
        let mut v: Vec<(String, bool)> = p.iter().map(|x| (x.0.clone(), x.1.is_some())).collect();
        v.sort();
        v
    };
    let sdk_upload = parts(&su);
    assert_eq!(names(&mica_upload), names(&sdk_upload), "multipart parts");
    for name in ["purpose", "file"] {
        let body = |p: &[(String, Option<String>, Vec<u8>)]| {
            p.iter().find(|x| x.0 == name).unwrap().2.clone()
        };
        assert_eq!(body(&mica_upload), body(&sdk_upload), "part {name}");
    }
    assert_eq!(mu.header("authorization"), su.header("authorization"));
    let (mc, sc) = (
        find(&mica_reqs, "POST", "/v1/batches"),
        find(&sdk_reqs, "POST", "/v1/batches"),
    );
    let (mut mb, mut sb) = (mc.json(), sc.json());
    for b in [&mut mb, &mut sb] {
        b["input_file_id"] = "FILE".into();
        b["metadata"]["mica_tag"] = "TAG".into();
    }
    assert_eq!(mb, sb, "batch creation body");
    assert_eq!(mc.header("authorization"), sc.header("authorization"));
}

/// Regression: answers were read with a 64 MiB limit, made for one model answer, so a large
/// batch's results file (50,000 answers; Gemini's carry thought signatures) could never be read:
/// the batch was paid for and its answers lost on every run.
#[test]
fn a_batch_results_file_over_64_mib_is_read_not_refused() {
    let mut line =
        serde_json::json!({"key": "K", "response": support::gemini_ok("{\"count\": 1}")});
    // A thought signature of 2 kB, as Gemini 3 models attach to their parts.
    line["response"]["candidates"][0]["content"]["parts"][0]["thoughtSignature"] =
        "A".repeat(2000).into();
    let n = 36_000;
    let mut file = String::with_capacity(n * 2300);
    for i in 0..n {
        line["key"] = format!("k{i}").into();
        file.push_str(&line.to_string());
        file.push('\n');
    }
    assert!(file.len() > 64 * 1024 * 1024, "{}", file.len());
    let body = file.into_bytes();
    let server = support::MockServer::start(support::Script::Func(Box::new(move |_| {
        support::Reply::bytes(200, body.clone())
    })));
    std::env::set_var("GEMINI_API_KEY", GEMINI_KEY);
    let client = Client::new(
        ModelSpec::parse(GEMINI).unwrap(),
        &ClientOptions {
            base_url: Some(server.url("/v1beta")),
            ..Default::default()
        },
    )
    .unwrap();
    let status = batch::BatchStatus::Ended {
        status: "BATCH_STATE_SUCCEEDED".into(),
        output_file_id: Some("files/batch-big".into()),
        error_file_id: None,
    };
    let lines = client
        .batch_api()
        .unwrap()
        .results("batches/big", &status)
        .unwrap();
    assert_eq!(lines.len(), n);
    assert!(lines.iter().all(|l| l.result.is_ok()));
    assert_eq!(lines[n - 1].custom_id, format!("k{}", n - 1));
}

/// The recorded operation of `fixtures/gemini_batch/` as the official google-genai SDK reads it
/// (`batches.get` against a server answering it): the state and responses file mica reads.
#[test]
fn the_official_gemini_sdk_reads_the_recorded_batch_operation_as_mica_does() {
    let Some(py) = support::oracle_python("google.genai") else {
        return;
    };
    let recorded: serde_json::Value = serde_json::from_str(include_str!(
        "fixtures/gemini_batch/operation_succeeded.json"
    ))
    .unwrap();
    let server = support::MockServer::sequence(vec![support::Reply::json(200, recorded)]);
    let script = r#"
import json, sys
from google import genai
from google.genai import types
c = genai.Client(api_key="AIza-oracle", http_options=types.HttpOptions(base_url=sys.argv[1], api_version="v1beta"))
j = c.batches.get(name="batches/o6k1fq34vm2ou69wy5w72wqw56qjigbln6yy")
print(json.dumps({"state": j.state.value, "file": j.dest.file_name, "name": j.name, "model": j.model}))
"#;
    let out = std::process::Command::new(&py)
        .args(["-c", script, &server.url("")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sdk: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(sdk["state"], "JOB_STATE_SUCCEEDED");
    assert_eq!(
        sdk["file"],
        "files/batch-o6k1fq34vm2ou69wy5w72wqw56qjigbln6yy"
    );
    assert_eq!(sdk["model"], "models/gemini-3.5-flash");
    // mica: the same file, from the same answer.
    std::env::set_var("GEMINI_API_KEY", GEMINI_KEY);
    let client = Client::new(
        ModelSpec::parse(GEMINI).unwrap(),
        &ClientOptions {
            base_url: Some(server.url("/v1beta")),
            ..Default::default()
        },
    )
    .unwrap();
    match client
        .batch_api()
        .unwrap()
        .status(sdk["name"].as_str().unwrap())
        .unwrap()
    {
        batch::BatchStatus::Ended {
            output_file_id: Some(f),
            ..
        } => assert_eq!(f, sdk["file"].as_str().unwrap()),
        other => panic!("{other:?}"),
    }
}
