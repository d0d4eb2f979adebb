//! Oracle written by others: every request body mica's OpenAI clients send (each task, each
//! built-in prompt variant, structured output on and off, every image detail, with and without
//! few-shot examples, system prompt, sampling options, both token-limit fields) is validated
//! against `CreateChatCompletionRequest` of OpenAI's official OpenAPI spec, and every OpenAI reply
//! fixture mica's tests serve against `CreateChatCompletionResponse` (schemas and provenance in
//! `tests/oracle/`). The bodies are the ones the clients really sent, recorded by a local server.

mod support;

use mica_core::Image;
use mica_vlm::prepare::{prepare, PrepareOptions};
use mica_vlm::prompt::{PromptContext, TemplateSet};
use mica_vlm::*;
use serde_json::Value;
use support::{openai_ok, MockServer, Reply};

const SCHEMA: &str = include_str!("oracle/openai_chat_schema.json");

fn validator(root: &str) -> jsonschema::Validator {
    let mut schema: Value = serde_json::from_str(SCHEMA).unwrap();
    schema["$ref"] = Value::String(format!("#/$defs/{root}"));
    jsonschema::draft202012::options()
        .should_validate_formats(false)
        .build(&schema)
        .unwrap_or_else(|e| panic!("the OpenAPI schema does not compile: {e}"))
}

fn errors(v: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    v.iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

fn tasks() -> Vec<Task> {
    vec![
        Task::Count {
            objects: "cells".into(),
        },
        Task::Classify {
            labels: mica_metrics::parse::nffa_labels(),
        },
        Task::Describe,
        Task::Size {
            objects: "particles".into(),
        },
        Task::Ask {
            question: "How many fibres cross the image?".into(),
        },
    ]
}

fn image() -> mica_vlm::prepare::PreparedImage {
    let img = Image::gray8(24, 16, (0..384).map(|i| (i % 251) as u8).collect()).unwrap();
    prepare(&img, &PrepareOptions::default(), "t").unwrap()
}

/// Every body the clients send for `provider:model` over the option matrix, as recorded.
fn sent_bodies(model: &str, dir: &std::path::Path) -> Vec<(String, Value)> {
    std::env::set_var("OPENAI_API_KEY", "sk-mica-oracle-test");
    let ex = dir.join("ex.png");
    mica_core::io::write_png(&ex, &Image::gray8(8, 8, vec![90; 64]).unwrap()).unwrap();
    let shots = dir.join("shots.toml");
    std::fs::write(
        &shots,
        "[[example]]\nimage = \"ex.png\"\nanswer = \"Count: 1\"\n",
    )
    .unwrap();
    let gemini = model.starts_with("gemini:");
    let server = MockServer::start(support::Script::Func(Box::new(move |_| {
        if gemini {
            Reply::json(200, support::gemini_ok("Count: 3"))
        } else {
            Reply::json(200, openai_ok("Count: 3"))
        }
    })));
    let mut out = Vec::new();
    let samplings = [
        Sampling::default(),
        Sampling {
            temperature: Some(0.0),
            seed: Some(42),
            max_tokens: Some(300),
            detail: Detail::Low,
        },
        Sampling {
            temperature: Some(1.0),
            seed: None,
            max_tokens: Some(10),
            detail: Detail::High,
        },
        Sampling {
            detail: Detail::Auto,
            ..Default::default()
        },
    ];
    for structured in [Structured::Auto, Structured::Off] {
        let spec = ModelSpec::parse(model).unwrap();
        let client = Client::new(
            spec,
            &ClientOptions {
                base_url: Some(server.url(if gemini { "/v1beta" } else { "/v1" })),
                structured,
                // No request spacing against the local server.
                limits: Some(Limits {
                    concurrency: 1,
                    requests_per_minute: 0,
                    timeout_s: 10.0,
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .unwrap();
        for task in tasks() {
            let set = TemplateSet::builtin(task.kind()).unwrap();
            for variant in set.variants.keys() {
                let mut tp = TaskPrompt::new(
                    task.clone(),
                    set.variant(variant).unwrap(),
                    PromptContext::default(),
                )
                .unwrap();
                for (k, sampling) in samplings.iter().enumerate() {
                    // Few-shot examples on every other request.
                    tp.few_shot = if k % 2 == 1 {
                        mica_vlm::prompt::few_shot_turns(
                            &shots,
                            &tp.text,
                            &PrepareOptions::default(),
                        )
                        .unwrap()
                    } else {
                        Vec::new()
                    };
                    let before = server.count();
                    client.generate(&tp.request(image(), sampling)).unwrap();
                    let r = &server.requests()[before];
                    out.push((
                        format!(
                            "{model} {:?} {variant} structured={structured:?} sampling #{k} {}",
                            task.kind(),
                            r.path
                        ),
                        r.json(),
                    ));
                }
            }
        }
        // The LLM judge's requests (text only, its own schema), over the same sampling matrix.
        let rubrics = mica_vlm::judge::builtin_rubrics().unwrap();
        for (k, sampling) in samplings.iter().enumerate() {
            let client = Client::new(
                ModelSpec::parse(model).unwrap(),
                &ClientOptions {
                    base_url: Some(server.url(if gemini { "/v1beta" } else { "/v1" })),
                    structured,
                    limits: Some(Limits {
                        concurrency: 1,
                        requests_per_minute: 0,
                        timeout_s: 10.0,
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            )
            .unwrap();
            let engine = Engine::new(
                Box::new(client),
                ModelSpec::parse(model).unwrap(),
                None,
                &PriceTable::builtin().unwrap(),
                None,
            )
            .unwrap();
            let j = Judge::new(
                engine,
                rubrics.variant("study").unwrap(),
                "judge.toml",
                JudgeConfig {
                    question: (k % 2 == 0).then(|| "Describe this image.".to_string()),
                    sampling: sampling.clone(),
                    structured: structured == Structured::Auto,
                    workers: 1,
                },
            )
            .unwrap();
            let req = j
                .request(
                    "An SEM image of fibres at 10.00 KX, EHT = 5 kV.",
                    "Fibres. Scale bar = 2 µm, Magnification = 10.00 K X, EHT = 5.00 kV.",
                )
                .unwrap();
            let before = server.count();
            j.engine().answer(&req).unwrap();
            let r = &server.requests()[before];
            out.push((
                format!(
                    "{model} judge structured={structured:?} sampling #{k} {}",
                    r.path
                ),
                r.json(),
            ));
        }
    }
    out
}

#[test]
fn every_request_mica_sends_follows_the_official_openapi_schema() {
    let dir = tempfile::tempdir().unwrap();
    let v = validator("CreateChatCompletionRequest");
    let mut checked = 0;
    let mut judged = 0;
    let mut seen = std::collections::BTreeSet::new();
    for model in ["openai:gpt-4o", "openai-compatible:llava"] {
        for (what, body) in sent_bodies(model, dir.path()) {
            let errs = errors(&v, &body);
            assert!(errs.is_empty(), "{what}: {errs:#?}\n{body:#}");
            for k in body.as_object().unwrap().keys() {
                seen.insert(k.clone());
            }
            checked += 1;
            judged += usize::from(what.contains(" judge "));
        }
    }
    eprintln!("{checked} request bodies validated, {judged} of them the LLM judge's");
    assert!(judged >= 16, "{judged} judge bodies");
    // The matrix really covers the options (a schema check of nothing would pass too).
    assert!(checked >= 80, "{checked} bodies");
    for field in [
        "model",
        "messages",
        "temperature",
        "seed",
        "max_completion_tokens",
        "max_tokens",
        "response_format",
    ] {
        assert!(seen.contains(field), "no request had {field}: {seen:?}");
    }
}

#[test]
fn the_schema_check_catches_a_wrong_request() {
    // The oracle is not vacuous: shapes the API would reject fail it.
    let v = validator("CreateChatCompletionRequest");
    let bad = [
        serde_json::json!({"model": "gpt-4o", "messages": []}),
        serde_json::json!({"model": "gpt-4o", "messages": [{"role": "robot", "content": "hi"}]}),
        serde_json::json!({"model": "gpt-4o", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA", "detail": "ultra"}}]}]}),
        serde_json::json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}],
            "response_format": {"type": "json_schema"}}),
        serde_json::json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}],
            "temperature": 7}),
    ];
    for b in bad {
        assert!(!errors(&v, &b).is_empty(), "accepted {b}");
    }
}

#[test]
fn every_openai_reply_fixture_follows_the_official_openapi_schema() {
    let v = validator("CreateChatCompletionResponse");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/openai");
    let mut n = 0;
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.starts_with("chat_completion") || !name.ends_with(".json") {
            continue;
        }
        let body: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let errs = errors(&v, &body);
        found.push((name, errs));
        n += 1;
    }
    // The reply every test server of this crate answers with.
    let errs = errors(&v, &openai_ok("Count: 3"));
    assert!(errs.is_empty(), "support::openai_ok: {errs:#?}");
    assert!(n >= 2, "fixtures: {found:?}");
    for (name, errs) in &found {
        match KNOWN_DEVIATIONS.iter().find(|(f, _)| f == name) {
            // A reply recorded from another implementation: its deviations from OpenAI's schema
            // are exactly the listed ones (mica reads the reply anyway: it is what that server
            // sends).
            Some((_, want)) => {
                let mut got: Vec<&str> = errs.iter().map(String::as_str).collect();
                got.sort_unstable();
                assert_eq!(got, *want, "{name}");
            }
            None => assert!(errs.is_empty(), "{name}: {errs:#?}"),
        }
    }
}

/// Fixtures recorded from OpenAI-compatible servers that are not OpenAI, and where they differ
/// from OpenAI's response schema. vLLM (`chat_completion_length_null_content.json`) sends `null`
/// for `annotations` and `function_call`, which OpenAI's schema declares as an array and an object
/// (not nullable).
const KNOWN_DEVIATIONS: &[(&str, &[&str])] = &[(
    "chat_completion_length_null_content.json",
    &[
        "null is not of type \"array\" at /choices/0/message/annotations",
        "null is not of type \"object\" at /choices/0/message/function_call",
    ],
)];

/// Every body mica sends, passed to the official SDK's typed `chat.completions.create(**body)`:
/// the SDK knows every parameter mica uses (an unknown one is a TypeError) and sends exactly the
/// same JSON, field by field. No difference is allowed on this side.
#[test]
fn the_official_openai_sdk_sends_the_same_requests_as_mica() {
    let Some(py) = support::oracle_python("openai") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut bodies = Vec::new();
    for model in ["openai:gpt-4o", "openai-compatible:llava"] {
        bodies.extend(sent_bodies(model, dir.path()));
    }
    let file = dir.path().join("bodies.json");
    let only: Vec<&Value> = bodies.iter().map(|(_, b)| b).collect();
    std::fs::write(&file, serde_json::to_string(&only).unwrap()).unwrap();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../scripts/sdk_openai_requests.py");
    let out = std::process::Command::new(&py)
        .arg(&script)
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the SDK refused a request:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sdk: Vec<Value> = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(sdk.len(), bodies.len());
    for ((what, mica), sdk) in bodies.iter().zip(&sdk) {
        assert_eq!(mica, sdk, "{what}: the SDK sent something else");
    }
}

/// A Gemini body with the two spellings the API reads alike made one: object keys in lowerCamelCase
/// (proto JSON accepts a field's original name, `inline_data`, and its lowerCamel name,
/// `inlineData`; the SDK mixes both), and image bytes (`inlineData.data`) in standard base64 (proto
/// JSON accepts standard and URL-safe base64; the SDK sends URL-safe, mica standard), and an
/// empty `generationConfig` left out.
fn camel_keys(v: &Value) -> Value {
    let mut v = camel_keys_only(v);
    // An empty message is the same as none in proto3 JSON: the SDK sends `generationConfig: {}`
    // with a system instruction and no other setting (the LLM judge's text-only request).
    if let Some(m) = v.as_object_mut() {
        if m.get("generationConfig") == Some(&Value::Object(Default::default())) {
            m.remove("generationConfig");
        }
    }
    if let Some(contents) = v["contents"].as_array_mut() {
        for c in contents {
            for p in c["parts"].as_array_mut().into_iter().flatten() {
                if let Some(d) = p["inlineData"]["data"].as_str() {
                    p["inlineData"]["data"] = Value::String(d.replace('-', "+").replace('_', "/"));
                }
            }
        }
    }
    v
}

fn camel_keys_only(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let mut out = String::new();
                    let mut up = false;
                    for c in k.chars() {
                        if c == '_' {
                            up = true;
                        } else if up {
                            out.extend(c.to_uppercase());
                            up = false;
                        } else {
                            out.push(c);
                        }
                    }
                    (out, camel_keys_only(v))
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(camel_keys_only).collect()),
        other => other.clone(),
    }
}

/// The same requests built with the official `google-genai` SDK's typed objects and sent by it:
/// same path, and the same JSON field by field up to two differences the API allows (proto3 JSON
/// mapping): the spelling of field names (the SDK sends `inlineData` with `mime_type` inside and
/// `property_ordering`, mica `inline_data`/`mime_type` and `propertyOrdering`) and the base64
/// alphabet of image bytes (the SDK URL-safe, mica standard). Nothing else may differ.
#[test]
fn the_official_gemini_sdk_sends_the_same_requests_as_mica() {
    let Some(py) = support::oracle_python("google.genai") else {
        return;
    };
    std::env::set_var("GEMINI_API_KEY", "AIza-mica-oracle-test");
    let dir = tempfile::tempdir().unwrap();
    let bodies = sent_bodies("gemini:gemini-3.5-flash", dir.path());
    assert!(bodies.len() >= 40, "{} bodies", bodies.len());
    let file = dir.path().join("bodies.json");
    let only: Vec<&Value> = bodies.iter().map(|(_, b)| b).collect();
    std::fs::write(&file, serde_json::to_string(&only).unwrap()).unwrap();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../scripts/sdk_gemini_requests.py");
    let out = std::process::Command::new(&py)
        .arg(&script)
        .arg("gemini-3.5-flash")
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the SDK refused a request:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sdk: Vec<Value> = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(sdk.len(), bodies.len());
    let mut spelled_differently = 0;
    for ((what, mica), sdk) in bodies.iter().zip(&sdk) {
        assert!(
            what.ends_with(sdk["path"].as_str().unwrap()),
            "{what}: SDK path {}",
            sdk["path"]
        );
        assert_eq!(
            camel_keys(mica),
            camel_keys(&sdk["body"]),
            "{what}: the SDK sent something else"
        );
        spelled_differently += usize::from(*mica != sdk["body"]);
    }
    // The allowed difference is real (the comparison is not of identical strings).
    assert!(spelled_differently > 0);
}
