//! The small harness shared by the integration tests: where the shared data is, how to run the
//! built `mica`, how to read a CSV it wrote. Each test binary uses what it needs.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// `../shared` beside the repository (real data and the MobileSAM checkpoint).
pub fn shared() -> PathBuf {
    let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared"));
    assert!(
        p.is_dir(),
        "these tests need ../shared next to the repository"
    );
    p
}

/// A headless-capable Chromium on PATH, if there is one.
pub fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            let out = Command::new("which").arg(name).output().ok()?;
            out.status
                .success()
                .then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
        })
}

/// `browser` in headless mode as every test runs it (no sandbox, no GPU, `HOME` in `home` so
/// that no profile outside the test is touched); the caller adds what to do.
pub fn headless(browser: &Path, home: &Path) -> Command {
    let mut c = Command::new(browser);
    c.args(["--headless", "--no-sandbox", "--disable-gpu"])
        .env("HOME", home);
    c
}

/// Runs `mica ARGS...` and returns (exit code, stdout, stderr).
pub fn mica(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mica"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The records of a CSV file with a header, as strings.
pub fn csv_rows(path: &Path) -> Vec<Vec<String>> {
    let mut r = csv::Reader::from_path(path).unwrap();
    r.records()
        .map(|rec| rec.unwrap().iter().map(str::to_string).collect())
        .collect()
}

/// Runs `mica report STORE --out OUT` and checks that it succeeded.
pub fn write_report(store: &Path, out: &Path) {
    let st = Command::new(env!("CARGO_BIN_EXE_mica"))
        .args(["-q", "report"])
        .arg(store)
        .arg("--out")
        .arg(out)
        .status()
        .unwrap();
    assert!(st.success(), "mica report failed: {st}");
}

/// A local HTTP server on 127.0.0.1 for OpenAI-compatible tests (the workspace's test server,
/// `mica_testkit`): `respond(request_line, body)` gives the JSON answered with status 200.
/// Returns the base URL (`http://127.0.0.1:PORT/v1`).
pub fn json_server(respond: impl Fn(&str, &[u8]) -> String + Send + Sync + 'static) -> String {
    use mica_testkit::{MockServer, Reply, Script};
    let server = MockServer::start(Script::Func(Box::new(move |r| {
        let line = format!("{} {} HTTP/1.1", r.method, r.path);
        Reply::raw(200, &respond(&line, &r.body))
    })));
    server.url("/v1")
}

/// A local OpenAI-compatible server that answers every chat completion with a count after
/// `delay_ms`, reporting `prompt_tokens` input tokens and 5 output tokens, and counts the
/// requests it received.
pub fn count_server(
    delay_ms: u64,
    prompt_tokens: u64,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let hits = std::sync::Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let url = json_server(move |first, _| {
        assert!(first.contains("/v1/chat/completions"), "{first}");
        h.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        format!(
            r#"{{"id":"x","object":"chat.completion","choices":[{{"index":0,"message":{{"role":"assistant","content":"{{\"count\": 7}}"}},"finish_reason":"stop"}}],"usage":{{"prompt_tokens":{prompt_tokens},"completion_tokens":5}}}}"#
        )
    });
    (url, hits)
}

/// A study of the repository's 10 BBBC005 example images counted by one model method, "test
/// model" (`model`, e.g. `openai-compatible:test-model`, at `url`), written to `dir/vlm.toml`.
pub fn vlm_count_study(dir: &Path, model: &str, url: &str) -> PathBuf {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let study = dir.join("vlm.toml");
    std::fs::write(
        &study,
        format!(
            r#"
name = "vlm count"
data_root = "{}"
[[datasets]]
name = "bbbc"
kind = "bbbc005"
path = "bbbc005"
[[methods]]
name = "test model"
kind = "vlm"
model = "{model}"
base_url = "{url}"
[[tasks]]
kind = "count"
datasets = ["bbbc"]
methods = ["test model"]
objects = "cells"
"#,
            examples.display()
        ),
    )
    .unwrap();
    study
}

/// Every prediction of a store as one line of its key, status, values, answer, failure,
/// settings hash, tokens and mask hash, sorted: two stores with the same lines hold the same
/// results whatever the order they were made in.
pub fn prediction_rows(store: &Path) -> Vec<String> {
    let s = mica_store::Store::open_read_only(store).unwrap();
    let mut r: Vec<String> = s
        .predictions()
        .unwrap()
        .into_iter()
        .map(|p| {
            format!(
                "{:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?}",
                p.key,
                p.status,
                p.value_num,
                p.value_text,
                p.raw_answer,
                p.failure,
                p.settings_hash,
                p.tokens_in,
                p.mask.map(|m| m.sha256)
            )
        })
        .collect();
    r.sort();
    r
}

/// Whether tests that need outside programs must run instead of skipping (`.ci/run` sets
/// `MICA_REQUIRE_ORACLES=1`).
pub fn required() -> bool {
    std::env::var("MICA_REQUIRE_ORACLES").as_deref() == Ok("1")
}

/// A TCP port free on 127.0.0.1 at the time of asking.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A server started as a child process, killed when dropped, and the URL it answers on.
pub struct ChildServer {
    pub child: std::process::Child,
    pub url: String,
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
