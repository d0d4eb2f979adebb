//! `mica classify`, `mica ask` end to end against local servers speaking the providers' protocols:
//! cache (a second run makes zero calls), `kill -9` in the middle of a batch, errors, and the API
//! key never appearing in anything mica prints or writes.

mod common;

use common::csv_rows;

#[path = "../crates/vlm/tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use support::{gemini_ok, openai_ok, MockServer, Reply, Script};

const OPENAI_KEY: &str = "sk-mica-cli-test-0PENAI-SECRET-KEY";
const GEMINI_KEY: &str = "AIza-mica-cli-test-GEMINI-SECRET-KEY";

fn mica() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mica"));
    for v in [
        "OPENAI_BASE_URL",
        "GEMINI_BASE_URL",
        "OLLAMA_HOST",
        "OPENAI_API_KEY",
        "GEMINI_API_KEY",
        "RUST_LOG",
    ] {
        c.env_remove(v);
    }
    c
}

/// `n` small gray PNGs with NFFA-style class-hint names, different pixels each.
fn images(dir: &Path, n: usize) -> Vec<PathBuf> {
    (0..n)
        .map(|k| {
            let p = dir.join(format!("L{}_sample{k:02}.png", k % 10));
            let data: Vec<u8> = (0..24 * 18).map(|i| ((i * (k + 3)) % 251) as u8).collect();
            let img = mica_core::Image::gray8(24, 18, data).unwrap();
            mica_core::io::write_png(&p, &img).unwrap();
            p
        })
        .collect()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn assert_no_key_in(bytes: &[u8], key: &str, what: &str) {
    assert!(
        !bytes.windows(key.len()).any(|w| w == key.as_bytes()),
        "API key found in {what}"
    );
}

#[test]
fn classify_second_run_makes_zero_calls_and_never_leaks_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let imgs = images(dir.path(), 4);
    // The answer depends on the request, so each image gets its own class.
    let server = MockServer::start(Script::Func(Box::new(|r| {
        let n = r.body.len() % 10 + 1;
        Reply::json(200, openai_ok(&format!("{{\"class_number\": {n}}}")))
    })));
    let out_dir = dir.path().join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    let run = |csv: &str| {
        mica()
            .args([
                "-vvv",
                "classify",
                "--model",
                "openai:gpt-4o",
                "--label-set",
                "nffa",
            ])
            .args(["--base-url", &server.url("/v1"), "--rpm", "0"])
            .arg("--cache")
            .arg(out_dir.join("cache.sqlite"))
            .arg("--csv")
            .arg(out_dir.join(csv))
            .args(&imgs)
            .env("OPENAI_API_KEY", OPENAI_KEY)
            .output()
            .unwrap()
    };
    let first = run("first.csv");
    let (stdout1, stderr1) = text(&first);
    assert_eq!(first.status.code(), Some(0), "{stderr1}");
    assert_eq!(server.count(), 4);
    let second = run("second.csv");
    let (stdout2, stderr2) = text(&second);
    assert_eq!(second.status.code(), Some(0), "{stderr2}");
    assert_eq!(
        server.count(),
        4,
        "the second run must make zero HTTP calls"
    );
    assert!(
        stderr2.contains("0 HTTP request(s), 4 from cache"),
        "{stderr2}"
    );

    // Same answers both times; ids have the class hint stripped; second run all cached.
    let (a, b) = (
        csv_rows(&out_dir.join("first.csv")),
        csv_rows(&out_dir.join("second.csv")),
    );
    assert_eq!(a.len(), 4);
    let key = |rows: &Vec<Vec<String>>| {
        let mut v: Vec<(String, String)> =
            rows.iter().map(|r| (r[1].clone(), r[3].clone())).collect();
        v.sort();
        v
    };
    assert_eq!(key(&a), key(&b));
    assert!(a
        .iter()
        .all(|r| r[1].starts_with("sample") && !r[3].is_empty()));
    assert!(b.iter().all(|r| r[12] == "true"), "{b:?}");
    assert!(a.iter().all(|r| r[12] == "false"));

    // The model never sees a file name or its class hint.
    for r in server.requests() {
        let body = String::from_utf8_lossy(&r.body);
        assert!(
            !body.contains("sample0") && !body.contains("L1_"),
            "a name reached the model"
        );
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {OPENAI_KEY}").as_str())
        );
    }

    // The key is in nothing mica printed or wrote (debug logging on).
    for (what, bytes) in [
        ("stdout 1", stdout1.as_bytes()),
        ("stderr 1", stderr1.as_bytes()),
        ("stdout 2", stdout2.as_bytes()),
        ("stderr 2", stderr2.as_bytes()),
    ] {
        assert_no_key_in(bytes, OPENAI_KEY, what);
    }
    let written = files_under(&out_dir);
    assert!(written.len() >= 3, "{written:?}");
    for f in written {
        assert_no_key_in(
            &std::fs::read(&f).unwrap(),
            OPENAI_KEY,
            &f.display().to_string(),
        );
    }
}

#[test]
fn kill_9_in_the_middle_loses_no_received_answer() {
    let dir = tempfile::tempdir().unwrap();
    let n = 10;
    let imgs = images(dir.path(), n);
    // One server (the cache key includes the endpoint): slow until the kill, then fast, and it
    // counts the calls of the rerun.
    let rerun = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let rerun_calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (flag, calls) = (rerun.clone(), rerun_calls.clone());
    let slow = MockServer::start(Script::Func(Box::new(move |_| {
        let r = Reply::json(200, openai_ok("Count: 3\n\nI think it is class 3"));
        if flag.load(std::sync::atomic::Ordering::SeqCst) {
            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            r
        } else {
            r.delayed(Duration::from_millis(300))
        }
    })));
    let cache = dir.path().join("cache.sqlite");
    let csv1 = dir.path().join("run1.csv");
    let mut child = mica()
        .args([
            "classify",
            "--model",
            "openai-compatible:llava",
            "--label-set",
            "nffa",
        ])
        .args(["--base-url", &slow.url("/v1"), "--concurrency", "1"])
        .arg("--cache")
        .arg(&cache)
        .arg("--csv")
        .arg(&csv1)
        .args(&imgs)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until a few answers are in the CSV, then SIGKILL.
    let t0 = Instant::now();
    loop {
        // Count CSV records, not lines: raw answers hold newlines.
        let rows = csv::Reader::from_path(&csv1)
            .map(|mut r| r.records().filter(|x| x.is_ok()).count())
            .unwrap_or(0);
        if rows >= 3 || t0.elapsed() > Duration::from_secs(60) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    let received = csv_rows(&csv1);
    assert!(
        received.len() >= 3 && received.len() < n,
        "{} rows",
        received.len()
    );

    rerun.store(true, std::sync::atomic::Ordering::SeqCst);
    let csv2 = dir.path().join("run2.csv");
    let out = mica()
        .args([
            "classify",
            "--model",
            "openai-compatible:llava",
            "--label-set",
            "nffa",
        ])
        .args(["--base-url", &slow.url("/v1")])
        .arg("--cache")
        .arg(&cache)
        .arg("--csv")
        .arg(&csv2)
        .args(&imgs)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out).1);
    let made = rerun_calls.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        made <= n - received.len(),
        "rerun made {made} calls though {} answers had been received",
        received.len()
    );
    let rows2 = csv_rows(&csv2);
    assert_eq!(rows2.len(), n);
    for r in &received {
        let again = rows2.iter().find(|x| x[0] == r[0]).unwrap();
        assert_eq!(
            again[12], "true",
            "{} was received before the kill but not cached",
            r[0]
        );
        assert_eq!(again[3], "3");
    }
}

#[test]
fn ask_gemini_describe_and_a_safety_block() {
    let dir = tempfile::tempdir().unwrap();
    let imgs = images(dir.path(), 2);
    let server = MockServer::sequence(vec![
        Reply::json(200, gemini_ok("A grey gradient with diagonal bands.")),
        Reply::json(
            200,
            serde_json::json!({"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 300}}),
        ),
    ]);
    let ask = |img: &Path| {
        mica()
            .args([
                "ask",
                "--model",
                "gemini:gemini-3.5-flash",
                "--json",
                "--no-cache",
            ])
            .arg(img)
            .env("GEMINI_BASE_URL", server.url("/v1beta"))
            .env("GEMINI_API_KEY", GEMINI_KEY)
            .output()
            .unwrap()
    };
    let out = ask(&imgs[0]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        v[0]["value"]["text"],
        "A grey gradient with diagonal bands."
    );
    assert_eq!(v[0]["task"], "describe");
    assert_eq!(v[0]["input_tokens"], 540);
    let r = &server.requests()[0];
    assert_eq!(r.path, "/v1beta/models/gemini-3.5-flash:generateContent");
    assert_eq!(r.header("x-goog-api-key"), Some(GEMINI_KEY));
    assert!(r.json()["contents"][0]["parts"][0]["text"]
        .as_str()
        .unwrap()
        .contains("Describe this image"));

    let out = ask(&imgs[1]);
    let (stdout, stderr) = text(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "a block is an answer, not a failure: {stderr}"
    );
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v[0]["finish"], "blocked:SAFETY");
    assert!(v[0]["parse_failure"]
        .as_str()
        .unwrap()
        .contains("safety filter"));
    assert_no_key_in(stdout.as_bytes(), GEMINI_KEY, "stdout");
    assert_no_key_in(stderr.as_bytes(), GEMINI_KEY, "stderr");
}

#[test]
fn unauthorized_is_not_retried_and_stops_the_batch() {
    let dir = tempfile::tempdir().unwrap();
    let imgs = images(dir.path(), 3);
    let server = MockServer::sequence(vec![Reply::json(
        401,
        serde_json::json!({"error": {"message": format!("Incorrect API key provided: {OPENAI_KEY}."), "type": "invalid_request_error", "code": "invalid_api_key"}}),
    )]);
    let out = mica()
        .args([
            "classify",
            "--model",
            "openai:gpt-4o",
            "--label-set",
            "nffa",
            "--no-cache",
        ])
        .args([
            "--base-url",
            &server.url("/v1"),
            "--concurrency",
            "1",
            "--rpm",
            "0",
        ])
        .args(&imgs)
        .env("OPENAI_API_KEY", OPENAI_KEY)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert_eq!(
        server.count(),
        1,
        "a 401 is neither retried nor repeated for other images"
    );
    assert!(
        stderr.contains("HTTP 401") && stderr.contains("Incorrect API key"),
        "{stderr}"
    );
    assert!(stderr.contains("2 image(s) not sent"), "{stderr}");
    assert_no_key_in(stdout.as_bytes(), OPENAI_KEY, "stdout");
    assert_no_key_in(stderr.as_bytes(), OPENAI_KEY, "stderr");
}

#[test]
fn missing_key_and_bad_model_fail_clearly_without_calls() {
    let dir = tempfile::tempdir().unwrap();
    let imgs = images(dir.path(), 1);
    let out = mica()
        .args([
            "classify",
            "--model",
            "openai:gpt-4o",
            "--label-set",
            "nffa",
            "--no-cache",
        ])
        .args(&imgs)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("OPENAI_API_KEY"), "{}", text(&out).1);
    let out = mica()
        .args(["ask", "--model", "gpt-4o"])
        .arg(&imgs[0])
        .arg("what is this?")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("provider:model"));
}

#[test]
fn dry_run_and_cost_limit_send_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let imgs = images(dir.path(), 3);
    let server = MockServer::sequence(vec![Reply::json(200, openai_ok("{\"class_number\": 2}"))]);
    let base = |c: &mut Command| {
        c.args([
            "classify",
            "--model",
            "openai:gpt-4o",
            "--label-set",
            "nffa",
            "--no-cache",
        ])
        .args(["--base-url", &server.url("/v1"), "--rpm", "0"])
        .args(&imgs)
        .env("OPENAI_API_KEY", OPENAI_KEY);
    };
    let mut c = mica();
    base(&mut c);
    let out = c.arg("--dry-run").output().unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stdout.contains("openai:gpt-4o\t3\t"), "{stdout}");
    assert_eq!(server.count(), 0);
    // A limit below one request's worst case sends nothing.
    let mut c = mica();
    base(&mut c);
    let out = c.args(["--max-cost", "0.0001"]).output().unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("cost limit"), "{stderr}");
    assert_eq!(server.count(), 0);
}

#[test]
fn count_with_ollama_writes_counts_and_reads_text_answers() {
    let dir = tempfile::tempdir().unwrap();
    let imgs = images(dir.path(), 3);
    let server = MockServer::start(Script::Func(Box::new(|r| {
        let n = r.json()["messages"][0]["images"][0]
            .as_str()
            .unwrap_or("")
            .len()
            % 50;
        let answer = if n % 3 == 0 {
            "I cannot count these, NaN".to_string()
        } else {
            format!("Count: {n}")
        };
        Reply::json(200, support::ollama_ok(&answer))
    })));
    let csv = dir.path().join("counts.csv");
    let out = mica()
        .args([
            "count",
            "--model",
            "ollama:llava:13b",
            "--objects",
            "cells",
            "--no-structured",
        ])
        .args([
            "--temperature",
            "0.2",
            "--max-tokens",
            "256",
            "--resize",
            "1024x600",
            "--no-cache",
        ])
        .env("OLLAMA_HOST", format!("127.0.0.1:{}", server.port))
        .arg("--csv")
        .arg(&csv)
        .args(&imgs)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(server.count(), 3);
    for r in server.requests() {
        let b = r.json();
        assert_eq!(r.path, "/api/chat");
        assert!(b.get("format").is_none(), "--no-structured sends no schema");
        assert_eq!(b["options"]["num_predict"], 256);
        assert!(b["messages"][0]["content"]
            .as_str()
            .unwrap()
            .contains("Count the number of cells"));
    }
    let rows = csv_rows(&csv);
    assert_eq!(rows.len(), 3);
    for r in &rows {
        // image,id,model,count,parse_failure,raw_answer,...
        if r[5].contains("NaN") {
            assert!(r[3].is_empty() && !r[4].is_empty(), "{r:?}");
        } else {
            assert_eq!(format!("Count: {}", r[3]), r[5]);
        }
    }
    assert_eq!(stdout.lines().count(), 3, "{stdout}");
}

#[test]
fn an_unreachable_server_stops_the_batch_after_retries() {
    let dir = tempfile::tempdir().unwrap();
    let imgs = images(dir.path(), 3);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = mica()
        .args([
            "count",
            "--model",
            "ollama:llava:13b",
            "--no-cache",
            "--retries",
            "1",
        ])
        .args(["--base-url", &format!("http://127.0.0.1:{port}")])
        .args(&imgs)
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("cannot reach"), "{stderr}");
    assert!(stderr.contains("2 image(s) not sent"), "{stderr}");
}

/// Model text is untrusted: an answer with terminal escape sequences (`ESC ]0;` retitles the
/// terminal) and a spreadsheet formula (`=HYPERLINK(`) reaches neither the terminal raw nor a CSV
/// cell as a formula (issue #15 item 7, success path).
#[test]
fn answers_with_escapes_and_formulas_are_neutralised() {
    let dir = tempfile::tempdir().unwrap();
    let imgs = images(dir.path(), 1);
    let hostile = "=HYPERLINK(\"http://evil.example\",\"Count: 3\")\u{1b}]0;pwned\u{7}\u{1b}[2J";
    let server = MockServer::sequence(vec![Reply::json(200, openai_ok(hostile))]);
    let csv = dir.path().join("out.csv");
    let out = mica()
        .args([
            "ask",
            "--model",
            "openai:gpt-4o",
            "--no-cache",
            "--task",
            "describe",
        ])
        .args(["--base-url", &server.url("/v1"), "--csv"])
        .arg(&csv)
        .args(&imgs)
        .env("OPENAI_API_KEY", OPENAI_KEY)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        !stdout.contains('\u{1b}') && !stdout.contains('\u{7}'),
        "{stdout:?}"
    );
    assert!(
        stdout.contains("\\x1b]0;pwned"),
        "shown, escaped: {stdout:?}"
    );
    let bytes = std::fs::read_to_string(&csv).unwrap();
    for row in csv_rows(&csv) {
        for cell in row {
            assert!(!cell.starts_with('='), "formula cell {cell:?} in {bytes}");
        }
    }
    assert!(bytes.contains("'=HYPERLINK("), "{bytes}");
}

/// A key echoed back inside a successful (200) answer was written in clear to the CSV, the
/// response cache and stdout (issue #15 item 7); error paths already redacted it.
#[test]
fn a_key_echoed_in_a_200_answer_is_written_nowhere() {
    let dir = tempfile::tempdir().unwrap();
    let imgs = images(dir.path(), 2);
    let answer = format!("Request used key {OPENAI_KEY}. Count: 3");
    let server = MockServer::sequence(vec![Reply::json(200, openai_ok(&answer))]);
    let out_dir = dir.path().join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    let csv = out_dir.join("counts.csv");
    let out = mica()
        .args([
            "count",
            "--model",
            "openai:gpt-4o",
            "--objects",
            "cells",
            "--no-structured",
        ])
        .args(["--base-url", &server.url("/v1"), "--cache"])
        .arg(out_dir.join("cache.sqlite"))
        .arg("--csv")
        .arg(&csv)
        .args(&imgs)
        .env("OPENAI_API_KEY", OPENAI_KEY)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_no_key_in(stdout.as_bytes(), OPENAI_KEY, "stdout");
    assert_no_key_in(stderr.as_bytes(), OPENAI_KEY, "stderr");
    for f in files_under(&out_dir) {
        assert_no_key_in(
            &std::fs::read(&f).unwrap(),
            OPENAI_KEY,
            &f.display().to_string(),
        );
    }
    assert!(std::fs::read_to_string(&csv)
        .unwrap()
        .contains("Request used key ***"));
}

/// A model its provider shut down (Gemini 2.0 Flash, 2026-06-01) is refused before anything is
/// planned or sent, with the date and the replacement; in a study it is a skipped method with
/// that reason, not a run that fails image by image (issue #15 item 2).
#[test]
fn a_retired_model_is_refused_with_its_date_and_replacement() {
    let dir = tempfile::tempdir().unwrap();
    let imgs = images(dir.path(), 1);
    let server = MockServer::sequence(vec![Reply::json(200, openai_ok("Count: 1"))]);
    for dry in [true, false] {
        let mut c = mica();
        c.args([
            "count",
            "--model",
            "gemini:gemini-2.0-flash",
            "--objects",
            "cells",
        ])
        .args(["--base-url", &server.url("/v1beta"), "--no-cache"])
        .args(&imgs)
        .env("GEMINI_API_KEY", "AIza-mica-test-retired");
        if dry {
            c.arg("--dry-run");
        }
        let out = c.output().unwrap();
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains("shut down")
                && stderr.contains("2026-06-01")
                && stderr.contains("gemini:gemini-3.5-flash"),
            "{stderr}"
        );
    }
    assert_eq!(server.count(), 0, "nothing sent");
    // In a study: the method is skipped with the reason, the rest of the study runs.
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let study = dir.path().join("s.toml");
    std::fs::write(
        &study,
        format!(
            "name = \"retired\"\ndata_root = \"{}\"\n\
             [[datasets]]\nname = \"bbbc\"\nkind = \"bbbc005\"\npath = \"bbbc005\"\n\
             [[methods]]\nname = \"old gemini\"\nkind = \"vlm\"\nmodel = \"gemini:gemini-2.0-flash\"\n\
             [[methods]]\nname = \"classical\"\nkind = \"classical\"\npreset = \"fluorescence-nuclei\"\n\
             [[tasks]]\nkind = \"count\"\ndatasets = [\"bbbc\"]\nmethods = [\"old gemini\", \"classical\"]\n",
            examples.display()
        ),
    )
    .unwrap();
    let store = dir.path().join("s.sqlite");
    let out = mica()
        .args(["run"])
        .arg(&study)
        .arg("--store")
        .arg(&store)
        .env("GEMINI_API_KEY", "AIza-mica-test-retired")
        .output()
        .unwrap();
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("shut down"), "{stderr}");
    let s = mica_store::Store::open_read_only(&store).unwrap();
    let m = s.methods().unwrap();
    let old = m.iter().find(|m| m.name == "old gemini").unwrap();
    assert!(
        old.skipped_reason
            .as_deref()
            .is_some_and(|r| r.contains("2026-06-01")),
        "{old:?}"
    );
    assert_eq!(server.count(), 0);
}
