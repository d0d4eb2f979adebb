//! Each backend against a local server that checks the request against the provider's protocol and
//! answers with recorded response shapes, including the failure modes.

mod support;

use base64::Engine as _;
use mica_core::Image;
use mica_vlm::prepare::{prepare, prepare_pixels, PrepareOptions, Resize};
use mica_vlm::prompt::{PromptContext, TaskKind, TemplateSet};
use mica_vlm::task::{AnswerValue, ParsedVia};
use mica_vlm::*;
use serde_json::json;
use std::sync::Once;
use std::time::{Duration, Instant};
use support::{gemini_ok, ollama_ok, openai_ok, MockServer, Reply, Script};

const OPENAI_KEY: &str = "sk-mica-test-0p3nA1-SECRET";
const GEMINI_KEY: &str = "AIza-mica-test-G3m1n1-SECRET";

fn setup() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        std::env::set_var("OPENAI_API_KEY", OPENAI_KEY);
        std::env::set_var("GEMINI_API_KEY", GEMINI_KEY);
        for v in ["OPENAI_BASE_URL", "GEMINI_BASE_URL", "OLLAMA_HOST"] {
            std::env::remove_var(v);
        }
    });
}

/// A 16-bit gray test image: a gradient with a bright block, so stretching and colour conversion
/// are visible in the pixels.
fn test_image() -> Image {
    let (w, h) = (40u32, 30u32);
    let data: Vec<u16> = (0..w * h)
        .map(|i| {
            let (x, y) = (i % w, i / w);
            if (10..20).contains(&x) && (5..15).contains(&y) {
                4000
            } else {
                (x * 20 + y * 5) as u16 + 300
            }
        })
        .collect();
    Image::gray16(w, h, data).unwrap()
}

fn prep_opts() -> PrepareOptions {
    PrepareOptions {
        crop_bottom_px: 4,
        resize: Resize::Longest { max_side: 32 },
        ..Default::default()
    }
}

fn fast_retry(max_retries: u32) -> RetryPolicy {
    RetryPolicy {
        max_retries,
        base_delay_ms: 10,
        max_delay_ms: 40,
        max_retry_after_s: 5,
    }
}

fn client(model: &str, base: String, retries: u32, timeout_s: f64) -> Client {
    setup();
    let spec = ModelSpec::parse(model).unwrap();
    let mut limits = default_limits(spec.provider);
    limits.timeout_s = timeout_s;
    limits.requests_per_minute = 0;
    Client::new(
        spec,
        &ClientOptions {
            base_url: Some(base),
            limits: Some(limits),
            retry: fast_retry(retries),
            structured: Structured::Auto,
        },
    )
    .unwrap()
}

fn count_prompt() -> TaskPrompt {
    let set = TemplateSet::builtin(TaskKind::Count).unwrap();
    TaskPrompt::new(
        Task::Count {
            objects: "cells".into(),
        },
        set.variant("study").unwrap(),
        PromptContext::default(),
    )
    .unwrap()
}

fn sampling() -> Sampling {
    Sampling {
        temperature: Some(0.2),
        seed: Some(7),
        max_tokens: Some(256),
        detail: Detail::High,
    }
}

/// Decodes a base64 image the server received and checks it is exactly the prepared pixels.
fn assert_is_prepared_image(b64: &str) {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("valid base64");
    let got = image::load_from_memory(&bytes)
        .expect("a decodable image")
        .to_rgb8();
    let want = prepare_pixels(&test_image(), &prep_opts(), "t").unwrap();
    assert_eq!(got.dimensions(), (32, 21));
    assert_eq!(got, want, "the server must receive the prepared pixels");
}

fn prepared() -> mica_vlm::prepare::PreparedImage {
    prepare(&test_image(), &prep_opts(), "t").unwrap()
}

#[test]
fn openai_request_follows_chat_completions_protocol() {
    let server = MockServer::sequence(vec![Reply::json(200, openai_ok(r#"{"count": 17}"#))]);
    let c = client("openai:gpt-4o", server.url("/v1"), 0, 10.0);
    let tp = count_prompt();
    let resp = c.generate(&tp.request(prepared(), &sampling())).unwrap();
    let reqs = server.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("POST", "/v1/chat/completions")
    );
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {OPENAI_KEY}").as_str())
    );
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    let b = r.json();
    assert_eq!(b["model"], "gpt-4o");
    assert_eq!(b["temperature"], 0.2);
    assert_eq!(b["seed"], 7);
    assert_eq!(b["max_completion_tokens"], 256);
    assert!(b.get("max_tokens").is_none());
    let msg = &b["messages"][0];
    assert_eq!(msg["role"], "user");
    assert_eq!(msg["content"][0]["type"], "text");
    assert!(msg["content"][0]["text"]
        .as_str()
        .unwrap()
        .contains("cells"));
    let part = &msg["content"][1];
    assert_eq!(part["type"], "image_url");
    assert_eq!(part["image_url"]["detail"], "high");
    let url = part["image_url"]["url"].as_str().unwrap();
    let b64 = url
        .strip_prefix("data:image/png;base64,")
        .expect("a PNG data URL");
    assert_is_prepared_image(b64);
    let rf = &b["response_format"];
    assert_eq!(rf["type"], "json_schema");
    assert_eq!(rf["json_schema"]["strict"], true);
    assert_eq!(rf["json_schema"]["schema"]["required"][0], "count");
    assert_eq!(rf["json_schema"]["schema"]["additionalProperties"], false);
    // The answer.
    assert_eq!(resp.usage.input_tokens, Some(812));
    assert_eq!(resp.usage.output_tokens, Some(9));
    assert_eq!(resp.model_version.as_deref(), Some("gpt-4o-2024-08-06"));
    let a = tp.interpret(&resp);
    assert_eq!(a.value, Some(AnswerValue::Count(17)));
    assert_eq!(a.via, Some(ParsedVia::Structured));
}

#[test]
fn openai_compatible_uses_base_url_and_max_tokens() {
    let server = MockServer::sequence(vec![Reply::json(200, openai_ok("Count: 4"))]);
    let c = client(
        "openai-compatible:llava-1.5-13b",
        server.url("/v1/"),
        0,
        10.0,
    );
    let mut tp = count_prompt();
    tp.structured = false;
    let resp = c.generate(&tp.request(prepared(), &sampling())).unwrap();
    let r = &server.requests()[0];
    assert_eq!(r.path, "/v1/chat/completions");
    let b = r.json();
    assert_eq!(b["model"], "llava-1.5-13b");
    assert_eq!(b["max_tokens"], 256);
    assert!(b.get("response_format").is_none());
    let a = tp.interpret(&resp);
    assert_eq!(a.value, Some(AnswerValue::Count(4)));
    assert_eq!(a.via, Some(ParsedVia::Text));
}

#[test]
fn gemini_request_follows_generate_content_protocol() {
    let server = MockServer::sequence(vec![Reply::json(200, gemini_ok("{\"count\": 23}"))]);
    let c = client("gemini:gemini-3.5-flash", server.url("/v1beta"), 0, 10.0);
    let tp = count_prompt();
    let resp = c.generate(&tp.request(prepared(), &sampling())).unwrap();
    let r = &server.requests()[0];
    assert_eq!(r.path, "/v1beta/models/gemini-3.5-flash:generateContent");
    assert!(!r.path.contains("key="), "the key must not be in the URL");
    assert_eq!(r.header("x-goog-api-key"), Some(GEMINI_KEY));
    assert!(r.header("authorization").is_none());
    let b = r.json();
    let parts = &b["contents"][0]["parts"];
    assert_eq!(b["contents"][0]["role"], "user");
    assert!(parts[0]["text"].as_str().unwrap().contains("cells"));
    assert_eq!(parts[1]["inline_data"]["mime_type"], "image/png");
    assert_is_prepared_image(parts[1]["inline_data"]["data"].as_str().unwrap());
    let g = &b["generationConfig"];
    assert_eq!(g["temperature"], 0.2);
    assert_eq!(g["seed"], 7);
    assert_eq!(g["maxOutputTokens"], 256);
    assert_eq!(g["responseMimeType"], "application/json");
    assert_eq!(g["responseSchema"]["type"], "OBJECT");
    assert_eq!(
        g["responseSchema"]["properties"]["count"]["type"],
        "INTEGER"
    );
    assert_eq!(g["responseSchema"]["properties"]["count"]["nullable"], true);
    assert!(g["responseSchema"].get("additionalProperties").is_none());
    assert_eq!(resp.usage.input_tokens, Some(540));
    assert_eq!(resp.usage.output_tokens, Some(7));
    assert_eq!(tp.interpret(&resp).value, Some(AnswerValue::Count(23)));
}

#[test]
fn gemini_default_settings_send_no_generation_config() {
    let server = MockServer::sequence(vec![Reply::json(200, gemini_ok("Count: 3"))]);
    let c = client("gemini:gemini-3.5-flash", server.url("/v1beta"), 0, 10.0);
    let mut tp = count_prompt();
    tp.structured = false;
    c.generate(&tp.request(prepared(), &Sampling::default()))
        .unwrap();
    assert!(server.requests()[0]
        .json()
        .get("generationConfig")
        .is_none());
}

#[test]
fn gemini_safety_blocks_are_reported_as_such() {
    let prompt_block = json!({
        "promptFeedback": {
            "blockReason": "SAFETY",
            "safetyRatings": [{"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH"}]
        },
        "usageMetadata": {"promptTokenCount": 530, "totalTokenCount": 530},
        "modelVersion": "gemini-3.5-flash"
    });
    let candidate_block = json!({
        "candidates": [{
            "finishReason": "SAFETY",
            "safetyRatings": [{"category": "HARM_CATEGORY_HARASSMENT", "probability": "MEDIUM", "blocked": true}]
        }],
        "usageMetadata": {"promptTokenCount": 530, "totalTokenCount": 530}
    });
    let server = MockServer::sequence(vec![
        Reply::json(200, prompt_block),
        Reply::json(200, candidate_block),
    ]);
    let c = client("gemini:gemini-3.5-flash", server.url("/v1beta"), 0, 10.0);
    let tp = count_prompt();
    for _ in 0..2 {
        let resp = c.generate(&tp.request(prepared(), &sampling())).unwrap();
        assert_eq!(resp.finish, FinishReason::Blocked("SAFETY".into()));
        let a = tp.interpret(&resp);
        assert!(a.value.is_none());
        assert!(a.failure.unwrap().contains("safety filter (SAFETY)"));
    }
}

#[test]
fn ollama_request_follows_api_chat_protocol() {
    let server = MockServer::sequence(vec![Reply::json(200, ollama_ok("{\"count\": 10}"))]);
    let c = client("ollama:llava:13b", server.url(""), 0, 10.0);
    let tp = count_prompt();
    let resp = c.generate(&tp.request(prepared(), &sampling())).unwrap();
    let r = &server.requests()[0];
    assert_eq!(r.path, "/api/chat");
    assert!(r.header("authorization").is_none(), "no key goes to Ollama");
    let b = r.json();
    assert_eq!(b["model"], "llava:13b");
    assert_eq!(b["stream"], false);
    assert_eq!(b["messages"][0]["role"], "user");
    assert_is_prepared_image(b["messages"][0]["images"][0].as_str().unwrap());
    assert_eq!(b["format"]["properties"]["count"]["type"][0], "integer");
    assert_eq!(b["options"]["temperature"], 0.2);
    assert_eq!(b["options"]["seed"], 7);
    assert_eq!(b["options"]["num_predict"], 256);
    assert_eq!(resp.usage.input_tokens, Some(601));
    assert_eq!(resp.usage.output_tokens, Some(6));
    assert_eq!(tp.interpret(&resp).value, Some(AnswerValue::Count(10)));
}

#[test]
fn client_errors_are_not_retried() {
    for status in [400u16, 401] {
        let body = json!({"error": {"message": format!("Incorrect API key provided: {OPENAI_KEY}"), "type": "invalid_request_error"}});
        let server = MockServer::sequence(vec![Reply::json(status, body)]);
        let c = client("openai:gpt-4o", server.url("/v1"), 3, 10.0);
        let err = c
            .generate(&count_prompt().request(prepared(), &sampling()))
            .unwrap_err();
        assert_eq!(server.count(), 1, "HTTP {status} must not be retried");
        match &err {
            VlmError::Http {
                status: s,
                attempts,
                ..
            } => assert_eq!((*s, *attempts), (status, 1)),
            other => panic!("unexpected {other:?}"),
        }
        let msg = format!("{err} {err:?}");
        assert!(msg.contains("Incorrect API key"));
        assert!(
            !msg.contains(OPENAI_KEY),
            "the echoed key must be redacted: {msg}"
        );
    }
}

#[test]
fn rate_limits_and_unavailable_honour_retry_after() {
    for status in [429u16, 503] {
        let server = MockServer::sequence(vec![
            Reply::json(
                status,
                json!({"error": {"message": "slow down", "code": status}}),
            )
            .with_header("Retry-After", "1"),
            Reply::json(200, openai_ok("Count: 5")),
        ]);
        let c = client("openai:gpt-4o", server.url("/v1"), 3, 10.0);
        let t0 = Instant::now();
        let resp = c
            .generate(&count_prompt().request(prepared(), &sampling()))
            .unwrap();
        let waited = t0.elapsed();
        assert_eq!(server.count(), 2);
        assert_eq!(resp.attempts, 2);
        // The backoff alone would be <= 40 ms; Retry-After says 1 s.
        assert!(
            waited >= Duration::from_millis(950),
            "{status}: waited {waited:?}"
        );
    }
}

#[test]
fn retry_after_beyond_the_policy_ends_the_request() {
    let server = MockServer::sequence(vec![Reply::json(
        429,
        json!({"error": {"message": "quota"}}),
    )
    .with_header("Retry-After", "3600")]);
    let c = client("openai:gpt-4o", server.url("/v1"), 3, 10.0);
    let err = c
        .generate(&count_prompt().request(prepared(), &sampling()))
        .unwrap_err();
    assert!(
        matches!(
            err,
            VlmError::RetryAfterTooLong {
                retry_after_s: 3600,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(server.count(), 1);
}

#[test]
fn server_errors_are_retried_with_backoff_then_reported() {
    let server = MockServer::sequence(vec![Reply::json(
        500,
        json!({"error": {"message": "The server had an error", "type": "server_error"}}),
    )]);
    let c = client("openai:gpt-4o", server.url("/v1"), 2, 10.0);
    let err = c
        .generate(&count_prompt().request(prepared(), &sampling()))
        .unwrap_err();
    assert_eq!(server.count(), 3, "1 attempt + 2 retries");
    assert!(
        matches!(
            err,
            VlmError::Http {
                status: 500,
                attempts: 3,
                ..
            }
        ),
        "{err:?}"
    );
    // And a 500 followed by success recovers.
    let server = MockServer::sequence(vec![
        Reply::json(500, json!({"error": {"message": "oops"}})),
        Reply::json(200, openai_ok("Count: 2")),
    ]);
    let c = client("openai:gpt-4o", server.url("/v1"), 2, 10.0);
    let r = c
        .generate(&count_prompt().request(prepared(), &sampling()))
        .unwrap();
    assert_eq!((r.attempts, server.count()), (2, 2));
}

#[test]
fn a_silent_server_times_out() {
    let server = MockServer::sequence(vec![
        Reply::json(200, openai_ok("Count: 1")).delayed(Duration::from_secs(3))
    ]);
    let c = client("openai:gpt-4o", server.url("/v1"), 1, 0.3);
    let t0 = Instant::now();
    let err = c
        .generate(&count_prompt().request(prepared(), &sampling()))
        .unwrap_err();
    assert!(
        matches!(err, VlmError::Timeout { attempts: 2, .. }),
        "{err:?}"
    );
    assert!(t0.elapsed() < Duration::from_secs(3));
    assert_eq!(server.count(), 2);
}

#[test]
fn malformed_and_empty_answers_are_errors_not_retried() {
    let cases = vec![
        (
            Reply::raw(200, "{\"choices\": [ {\"message\": "),
            "not JSON",
        ),
        (
            Reply::json(
                200,
                json!({"id": "x", "choices": [], "usage": {"prompt_tokens": 3}}),
            ),
            "empty `choices`",
        ),
        (Reply::json(200, json!({"id": "x"})), "no `choices`"),
    ];
    for (reply, want) in cases {
        let server = MockServer::sequence(vec![reply]);
        let c = client("openai:gpt-4o", server.url("/v1"), 3, 10.0);
        let err = c
            .generate(&count_prompt().request(prepared(), &sampling()))
            .unwrap_err();
        assert!(matches!(err, VlmError::BadResponse { .. }), "{err:?}");
        assert!(err.to_string().contains(want), "{err}");
        assert_eq!(server.count(), 1);
    }
}

#[test]
fn unreachable_server_is_a_connection_error() {
    // Bind and drop to get a port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let c = client(
        "ollama:llava:13b",
        format!("http://127.0.0.1:{port}"),
        1,
        2.0,
    );
    let err = c
        .generate(&count_prompt().request(prepared(), &sampling()))
        .unwrap_err();
    assert!(
        matches!(err, VlmError::Connection { attempts: 2, .. }),
        "{err:?}"
    );
}

#[test]
fn concurrency_and_rate_limits_hold() {
    setup();
    let server = MockServer::start(Script::Func(Box::new(|_| {
        Reply::json(200, ollama_ok("Count: 1")).delayed(Duration::from_millis(150))
    })));
    let spec = ModelSpec::parse("ollama:llava:13b").unwrap();
    let c = Client::new(
        spec,
        &ClientOptions {
            base_url: Some(server.url("")),
            limits: Some(Limits {
                concurrency: 2,
                requests_per_minute: 0,
                timeout_s: 10.0,
                ..Default::default()
            }),
            retry: fast_retry(0),
            structured: Structured::Auto,
        },
    )
    .unwrap();
    let req = count_prompt().request(prepared(), &sampling());
    let unstarted = run_batch(8, 6, |_| c.generate(&req), |r| assert!(r.result.is_ok()));
    assert!(unstarted.is_empty());
    assert_eq!(server.count(), 8);
    assert!(
        server.max_in_flight() <= 2,
        "max in flight {}",
        server.max_in_flight()
    );
    assert_eq!(server.max_in_flight(), 2);

    // 600 requests/minute = one start every 100 ms: 5 requests take at least 400 ms.
    let server = MockServer::sequence(vec![Reply::json(200, ollama_ok("Count: 1"))]);
    let c = Client::new(
        ModelSpec::parse("ollama:llava:13b").unwrap(),
        &ClientOptions {
            base_url: Some(server.url("")),
            limits: Some(Limits {
                concurrency: 4,
                requests_per_minute: 600,
                timeout_s: 10.0,
                ..Default::default()
            }),
            retry: fast_retry(0),
            structured: Structured::Auto,
        },
    )
    .unwrap();
    let t0 = Instant::now();
    run_batch(5, 4, |_| c.generate(&req), |r| assert!(r.result.is_ok()));
    assert!(
        t0.elapsed() >= Duration::from_millis(390),
        "{:?}",
        t0.elapsed()
    );
}

#[test]
fn a_tokens_per_minute_limit_spaces_requests_by_their_estimated_tokens() {
    setup();
    let server = MockServer::sequence(vec![Reply::json(200, ollama_ok("Count: 1"))]);
    let spec = ModelSpec::parse("ollama:llava:13b").unwrap();
    let req = count_prompt().request(prepared(), &sampling());
    // What the limit counts per request: estimated input tokens plus the output limit.
    let u = mica_vlm::prices::estimate_tokens(&spec, &req);
    let tokens = u.input_tokens.unwrap() + u.output_tokens.unwrap();
    assert!(tokens > 0);
    // A limit of 10 requests' worth per second: 5 requests, 4 in flight, take at least 0.4 s
    // (without the limit they take milliseconds).
    let tpm = (tokens * 600) as u32;
    let c = Client::new(
        spec,
        &ClientOptions {
            base_url: Some(server.url("")),
            limits: Some(Limits {
                concurrency: 4,
                tokens_per_minute: tpm,
                timeout_s: 10.0,
                ..Default::default()
            }),
            retry: fast_retry(0),
            structured: Structured::Auto,
        },
    )
    .unwrap();
    let t0 = Instant::now();
    run_batch(5, 4, |_| c.generate(&req), |r| assert!(r.result.is_ok()));
    assert!(
        t0.elapsed() >= Duration::from_millis(390),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(server.count(), 5);
}

#[test]
fn openai_compatible_needs_a_base_url() {
    setup();
    let err = Client::new(
        ModelSpec::parse("openai-compatible:x").unwrap(),
        &ClientOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("--base-url"), "{err}");
}

#[test]
fn few_shot_examples_become_earlier_turns() {
    let dir = tempfile::tempdir().unwrap();
    let ex = dir.path().join("ex.png");
    mica_core::io::write_png(&ex, &Image::gray8(8, 8, vec![100; 64]).unwrap()).unwrap();
    let file = dir.path().join("shots.toml");
    std::fs::write(
        &file,
        "[[example]]\nimage = \"ex.png\"\nanswer = \"Count: 1\"\n",
    )
    .unwrap();
    let mut tp = count_prompt();
    tp.few_shot =
        mica_vlm::prompt::few_shot_turns(&file, &tp.text, &PrepareOptions::default()).unwrap();
    let req = tp.request(prepared(), &sampling());

    let server = MockServer::sequence(vec![Reply::json(200, openai_ok("Count: 2"))]);
    client("openai:gpt-4o", server.url("/v1"), 0, 10.0)
        .generate(&req)
        .unwrap();
    let m = &server.requests()[0].json()["messages"];
    assert_eq!(m.as_array().unwrap().len(), 3);
    assert_eq!(
        (
            m[0]["role"].as_str(),
            m[1]["role"].as_str(),
            m[2]["role"].as_str()
        ),
        (Some("user"), Some("assistant"), Some("user"))
    );
    assert_eq!(m[1]["content"], "Count: 1");
    assert_is_prepared_image(
        m[2]["content"][1]["image_url"]["url"]
            .as_str()
            .unwrap()
            .split_once(",")
            .unwrap()
            .1,
    );

    let server = MockServer::sequence(vec![Reply::json(200, gemini_ok("Count: 2"))]);
    client("gemini:gemini-3.5-flash", server.url("/v1beta"), 0, 10.0)
        .generate(&req)
        .unwrap();
    let c = &server.requests()[0].json()["contents"];
    assert_eq!(c[1]["role"], "model");
    assert_eq!(c[1]["parts"][0]["text"], "Count: 1");
    assert_eq!(c[2]["role"], "user");

    // A missing example image is an error naming it.
    std::fs::write(
        &file,
        "[[example]]\nimage = \"nope.png\"\nanswer = \"Count: 1\"\n",
    )
    .unwrap();
    let err =
        mica_vlm::prompt::few_shot_turns(&file, &tp.text, &PrepareOptions::default()).unwrap_err();
    assert!(err.to_string().contains("nope.png"), "{err}");
}

/// Gemini answers a wrong key with HTTP 400 `INVALID_ARGUMENT` / `API_KEY_INVALID` (the body
/// Google documents, `tests/fixtures/gemini/`), not 401: it is a rejected key that stops a batch,
/// not a per-image failure to go on sending images after.
#[test]
fn gemini_invalid_key_is_a_rejected_key_not_a_per_image_error() {
    let body = include_str!("fixtures/gemini/error_api_key_invalid.json");
    let server = MockServer::sequence(vec![Reply::raw(400, body)]);
    let c = client("gemini:gemini-3.5-flash", server.url("/v1beta"), 3, 10.0);
    let err = c
        .generate(&count_prompt().request(prepared(), &sampling()))
        .unwrap_err();
    assert_eq!(server.count(), 1, "not retried");
    assert!(
        matches!(err, VlmError::KeyRejected { status: 400, .. }),
        "{err:?}"
    );
    assert!(!err.is_per_image(), "a rejected key ends the batch");
    assert!(err.to_string().contains("API key not valid"), "{err}");
    assert!(!err.to_string().contains(GEMINI_KEY));
}

/// Gemini's 429 carries its wait in the body (`RetryInfo.retryDelay`, no `Retry-After` header):
/// mica waits that long, not its own short backoff (issue #15 item 4).
#[test]
fn gemini_quota_retry_delay_in_the_body_is_honoured() {
    let body = include_str!("fixtures/gemini/error_quota_per_minute.json");
    let server = MockServer::sequence(vec![
        Reply::raw(429, body),
        Reply::json(200, gemini_ok("{\"count\": 4}")),
    ]);
    let c = client("gemini:gemini-3.5-flash", server.url("/v1beta"), 3, 10.0);
    let t0 = Instant::now();
    let resp = c
        .generate(&count_prompt().request(prepared(), &sampling()))
        .unwrap();
    assert_eq!((server.count(), resp.attempts), (2, 2));
    let waited = t0.elapsed();
    assert!(waited >= Duration::from_millis(1150), "waited {waited:?}");
}

/// A daily quota cannot come back by retrying: the request ends at once with the quota named,
/// and the error stops a batch (issue #15 item 4).
#[test]
fn gemini_daily_quota_is_not_retried() {
    let body = include_str!("fixtures/gemini/error_quota_per_day.json");
    let server = MockServer::sequence(vec![Reply::raw(429, body)]);
    let c = client("gemini:gemini-3.5-flash", server.url("/v1beta"), 3, 10.0);
    let err = c
        .generate(&count_prompt().request(prepared(), &sampling()))
        .unwrap_err();
    assert_eq!(server.count(), 1);
    assert!(matches!(err, VlmError::QuotaExhausted { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("GenerateRequestsPerDayPerProjectPerModel"),
        "{err}"
    );
    assert!(!err.is_per_image());
}

/// OpenAI's 429 `insufficient_quota` is billing, not a rate limit: retrying cannot help, so the
/// request ends at once and the batch stops with what to do (issue #15 item 4).
#[test]
fn openai_insufficient_quota_is_billing_not_a_rate_limit() {
    let body = include_str!("fixtures/openai/error_insufficient_quota.json");
    let server = MockServer::sequence(vec![Reply::raw(429, body)]);
    let c = client("openai:gpt-4o", server.url("/v1"), 3, 10.0);
    let err = c
        .generate(&count_prompt().request(prepared(), &sampling()))
        .unwrap_err();
    assert_eq!(server.count(), 1, "not retried");
    assert!(
        matches!(err, VlmError::BillingExhausted { status: 429, .. }),
        "{err:?}"
    );
    assert!(!err.is_per_image(), "billing ends the batch");
    let msg = err.to_string();
    assert!(
        msg.contains("check your plan and billing") && msg.contains("add credit"),
        "{msg}"
    );
}

/// Gemini's HTTP 402 (prepaid credit used up) ends the request at once and stops the batch.
#[test]
fn gemini_402_depleted_credit_stops_the_batch() {
    let body = include_str!("fixtures/gemini/error_prepayment_credits_depleted.json");
    let server = MockServer::sequence(vec![Reply::raw(402, body)]);
    let c = client("gemini:gemini-3.5-flash", server.url("/v1beta"), 3, 10.0);
    let err = c
        .generate(&count_prompt().request(prepared(), &sampling()))
        .unwrap_err();
    assert_eq!(server.count(), 1, "not retried");
    assert!(
        matches!(err, VlmError::BillingExhausted { status: 402, .. }),
        "{err:?}"
    );
    assert!(!err.is_per_image());
    assert!(
        err.to_string().contains("prepayment credits are depleted"),
        "{err}"
    );
}

/// `x-should-retry` (openai-python's `_should_retry`): the server's word overrides the status rule,
/// both ways.
#[test]
fn x_should_retry_is_obeyed_both_ways() {
    // A 503 the server says not to retry.
    let server = MockServer::sequence(vec![Reply::json(
        503,
        json!({"error": {"message": "overloaded"}}),
    )
    .with_header("x-should-retry", "false")]);
    let c = client("openai:gpt-4o", server.url("/v1"), 3, 10.0);
    let err = c
        .generate(&count_prompt().request(prepared(), &sampling()))
        .unwrap_err();
    assert_eq!(server.count(), 1, "x-should-retry: false");
    assert!(matches!(err, VlmError::Http { status: 503, .. }), "{err:?}");
    // A 400 the server says to retry.
    let server = MockServer::sequence(vec![
        Reply::json(400, json!({"error": {"message": "try again"}}))
            .with_header("x-should-retry", "true"),
        Reply::json(200, openai_ok("Count: 3")),
    ]);
    let c = client("openai:gpt-4o", server.url("/v1"), 3, 10.0);
    let resp = c
        .generate(&count_prompt().request(prepared(), &sampling()))
        .unwrap();
    assert_eq!(
        (server.count(), resp.attempts),
        (2, 2),
        "x-should-retry: true"
    );
}

/// `retry-after-ms` is preferred to `Retry-After`, and a wait is honoured on any retried status
/// (here a 500), not only on 429 and 503.
#[test]
fn retry_after_ms_is_honoured_on_any_retried_status() {
    let server = MockServer::sequence(vec![
        Reply::json(500, json!({"error": {"message": "oops"}}))
            .with_header("retry-after-ms", "900")
            .with_header("Retry-After", "30"),
        Reply::json(200, openai_ok("Count: 5")),
    ]);
    let c = client("openai:gpt-4o", server.url("/v1"), 3, 10.0);
    let t0 = Instant::now();
    let resp = c
        .generate(&count_prompt().request(prepared(), &sampling()))
        .unwrap();
    let waited = t0.elapsed();
    assert_eq!(resp.attempts, 2);
    // The backoff alone would be <= 40 ms; retry-after-ms says 0.9 s (not Retry-After's 30 s).
    assert!(
        waited >= Duration::from_millis(850) && waited < Duration::from_secs(10),
        "waited {waited:?}"
    );
}

/// A timed-out attempt was sent and may have been processed and billed: the budget charges it at
/// the request's worst-case estimate, also when a retry then succeeds and when every attempt
/// times out; before, it was settled at $0 (issue #15 item 6).
#[test]
fn timed_out_attempts_are_charged_to_the_budget() {
    let engine = |server: &MockServer| {
        Engine::new(
            Box::new(client("openai:gpt-4o", server.url("/v1"), 1, 0.3)),
            ModelSpec::parse("openai:gpt-4o").unwrap(),
            None,
            &PriceTable::builtin().unwrap(),
            Some(100.0),
        )
        .unwrap()
    };
    let req = count_prompt().request(prepared(), &sampling());
    // First attempt times out, the retry answers.
    let server = MockServer::sequence(vec![
        Reply::json(200, openai_ok("Count: 1")).delayed(Duration::from_secs(2)),
        Reply::json(200, openai_ok("Count: 5")),
    ]);
    let e = engine(&server);
    let worst = e.estimate_max_cost_usd(&req).unwrap();
    assert!(worst > 0.0);
    let a = e.answer_spend(&req);
    let outcome = a.result.unwrap();
    let reported = outcome.cost_usd.unwrap();
    assert_eq!(a.possibly_billed_usd, worst);
    assert!(
        (e.spent_usd() - (reported + worst)).abs() < 1e-12,
        "spent {} = reported {reported} + one timed-out attempt {worst}",
        e.spent_usd()
    );
    // Every attempt times out: both are charged, and the error is still reported.
    let server = MockServer::sequence(vec![
        Reply::json(200, openai_ok("Count: 1")).delayed(Duration::from_secs(2))
    ]);
    let e = engine(&server);
    let a = e.answer_spend(&req);
    assert!(matches!(
        a.result,
        Err(VlmError::Timeout { attempts: 2, .. })
    ));
    assert!((a.possibly_billed_usd - 2.0 * worst).abs() < 1e-12);
    assert!((e.spent_usd() - 2.0 * worst).abs() < 1e-12);
}

/// Regression: an answer over the size limit was retried like a dropped connection, so a
/// request the provider had processed (and billed) was sent four more times for the same
/// oversized answer. Now it fails at once, saying why.
#[test]
fn an_answer_over_the_size_limit_is_not_sent_again() {
    let big = vec![b' '; 65 * 1024 * 1024];
    let server = MockServer::sequence(vec![Reply::bytes(200, big)]);
    let c = client("openai:gpt-4o", server.url("/v1"), 3, 30.0);
    let err = c
        .generate(&count_prompt().request(prepared(), &sampling()))
        .unwrap_err();
    assert_eq!(server.count(), 1, "sent again: {err}");
    assert!(
        matches!(err, VlmError::BadResponse { .. }) && err.to_string().contains("64 MiB"),
        "{err}"
    );
}
