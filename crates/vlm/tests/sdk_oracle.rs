//! Oracle written by others: the providers' official Python SDKs (`openai`, `google-genai`, pinned
//! in `scripts/oracle-requirements.txt`) parse every reply fixture mica's tests serve, and what the
//! SDKs read (answer text, finish reason, token counts, model, error codes) is what mica reads.
//!
//! Needs a Python with both SDKs ([`support::oracle_python`]); without them the test says
//! SKIPPED, unless `MICA_REQUIRE_ORACLES=1` (set by `.ci/run`), where it fails.

mod support;

use mica_vlm::backend::{gemini, openai};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

#[test]
fn official_sdks_parse_every_fixture_and_read_what_mica_reads() {
    let Some(py) = support::oracle_python("openai, google.genai") else {
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    // The replies the crate's test servers answer with, as files.
    let served = [
        ("openai_support.json", support::openai_ok("Count: 3")),
        ("gemini_support.json", support::gemini_ok("{\"count\": 4}")),
    ];
    let mut files: Vec<PathBuf> = Vec::new();
    for (name, body) in &served {
        let p = dir.path().join(name);
        std::fs::write(&p, body.to_string()).unwrap();
        files.push(p);
    }
    for provider in ["openai", "gemini"] {
        for e in std::fs::read_dir(root.join("tests/fixtures").join(provider)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "json") {
                files.push(p);
            }
        }
    }
    let out = Command::new(&py)
        .arg(root.join("../../scripts/sdk_parse_fixtures.py"))
        .args(&files)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "an SDK refused a fixture:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut n = 0;
    for line in stdout.lines() {
        let sdk: Value = serde_json::from_str(line).unwrap();
        let file = PathBuf::from(sdk["file"].as_str().unwrap());
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        let body: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        n += 1;
        match (sdk["sdk"].as_str().unwrap(), name.starts_with("error_")) {
            ("openai", false) => {
                let (text, finish, usage, model) = openai::parse_reply("openai", &body).unwrap();
                // `content: null` is an empty answer for mica, `None` for the SDK.
                assert_eq!(text, sdk["text"].as_str().unwrap_or(""), "{name}");
                assert_eq!(finish.label(), sdk["finish"].as_str().unwrap(), "{name}");
                assert_eq!(usage.input_tokens, sdk["input_tokens"].as_u64(), "{name}");
                assert_eq!(usage.output_tokens, sdk["output_tokens"].as_u64(), "{name}");
                assert_eq!(model.as_deref(), sdk["model"].as_str(), "{name}");
            }
            ("google-genai", false) => {
                let (text, finish, usage, model) = gemini::parse_reply("gemini", &body).unwrap();
                assert_eq!(text, sdk["text"].as_str().unwrap(), "{name}");
                let sdk_finish = match sdk["finish"].as_str().unwrap() {
                    "STOP" => "stop",
                    "MAX_TOKENS" => "length",
                    other => panic!("{name}: finish {other} not covered"),
                };
                assert_eq!(finish.label(), sdk_finish, "{name}");
                assert_eq!(usage.input_tokens, sdk["input_tokens"].as_u64(), "{name}");
                // mica bills thinking as output: candidates + thoughts, as the SDK reports them.
                let out_sdk = sdk["candidates_tokens"].as_u64().unwrap_or(0)
                    + sdk["thoughts_tokens"].as_u64().unwrap_or(0);
                assert_eq!(usage.output_tokens, Some(out_sdk), "{name}");
                assert_eq!(model.as_deref(), sdk["model"].as_str(), "{name}");
            }
            ("openai", true) => {
                // The SDK reads the billing code mica stops on. One deliberate difference: the
                // SDK retries every 429, mica does not retry `insufficient_quota` (billing).
                assert_eq!(sdk["error_class"], "RateLimitError", "{name}");
                assert_eq!(sdk["code"], "insufficient_quota", "{name}");
                assert_eq!(sdk["sdk_would_retry"], true, "{name}");
            }
            ("google-genai", true) => {
                assert_eq!(sdk["code"], body["error"]["code"], "{name}");
                assert_eq!(
                    sdk["message"].as_str(),
                    body["error"]["message"].as_str(),
                    "{name}"
                );
            }
            (other, _) => panic!("{name}: unexpected SDK {other}"),
        }
    }
    assert_eq!(n, files.len(), "every fixture was parsed");
}
