//! The response cache end to end: a second run makes zero HTTP calls, and the key is nowhere in
//! what mica wrote.

mod support;

use mica_core::Image;
use mica_vlm::prepare::{prepare, PrepareOptions};
use mica_vlm::prompt::{PromptContext, TaskKind, TemplateSet};
use mica_vlm::*;
use support::{openai_ok, MockServer, Reply, Script};

const KEY: &str = "sk-mica-cache-test-K3Y-SECRET";

#[test]
fn second_run_makes_no_http_calls_and_the_key_is_not_stored() {
    std::env::set_var("OPENAI_API_KEY", KEY);
    let server = MockServer::start(Script::Func(Box::new(|r| {
        // Answer with a count that depends on the image, so cached answers are checked per image.
        let b = r.json();
        let url = b["messages"][0]["content"][1]["image_url"]["url"]
            .as_str()
            .unwrap_or("")
            .len();
        Reply::json(200, openai_ok(&format!("Count: {}", url % 97)))
    })));
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cache/vlm.sqlite");
    let images: Vec<_> = (0..5u8)
        .map(|k| {
            let img = Image::gray8(
                16,
                16,
                (0..256).map(|i| (i as u8).wrapping_mul(k + 1)).collect(),
            )
            .unwrap();
            prepare(&img, &PrepareOptions::default(), "t").unwrap()
        })
        .collect();
    let set = TemplateSet::builtin(TaskKind::Count).unwrap();
    let tp = TaskPrompt::new(
        Task::Count {
            objects: "cells".into(),
        },
        set.variant("study").unwrap(),
        PromptContext::default(),
    )
    .unwrap();
    let sampling = Sampling {
        temperature: Some(0.0),
        ..Default::default()
    };
    let run = || -> (Vec<String>, (u64, u64)) {
        let spec = ModelSpec::parse("openai:gpt-4o").unwrap();
        let client = Client::new(
            spec.clone(),
            &ClientOptions {
                base_url: Some(server.url("/v1")),
                limits: Some(Limits {
                    concurrency: 3,
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
            spec,
            Some(ResponseCache::open(&db).unwrap()),
            &PriceTable::builtin().unwrap(),
            Some(5.0),
        )
        .unwrap();
        let mut texts = vec![String::new(); images.len()];
        let unstarted = run_batch(
            images.len(),
            3,
            |i| engine.answer(&tp.request(images[i].clone(), &sampling)),
            |r| {
                texts[r.index] = r.result.unwrap().response.text;
            },
        );
        assert!(unstarted.is_empty());
        (texts, engine.calls_and_hits())
    };
    let (first, stats1) = run();
    assert_eq!(server.count(), 5);
    assert_eq!(stats1, (5, 0));
    let (second, stats2) = run();
    assert_eq!(server.count(), 5, "the second run must not call the server");
    assert_eq!(stats2, (0, 5));
    assert_eq!(first, second);
    // A changed setting is a different request.
    {
        let spec = ModelSpec::parse("openai:gpt-4o").unwrap();
        let client = Client::new(
            spec.clone(),
            &ClientOptions {
                base_url: Some(server.url("/v1")),
                limits: Some(Limits {
                    concurrency: 3,
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
            spec,
            Some(ResponseCache::open(&db).unwrap()),
            &PriceTable::builtin().unwrap(),
            None,
        )
        .unwrap();
        let hot = Sampling {
            temperature: Some(0.7),
            ..Default::default()
        };
        assert!(
            !engine
                .answer(&tp.request(images[0].clone(), &hot))
                .unwrap()
                .cached
        );
        assert_eq!(server.count(), 6);
    }
    // Everything in the cache folder (database, WAL, shared memory) is free of the key.
    for entry in std::fs::read_dir(db.parent().unwrap()).unwrap() {
        let p = entry.unwrap().path();
        let bytes = std::fs::read(&p).unwrap();
        assert!(
            !bytes.windows(KEY.len()).any(|w| w == KEY.as_bytes()),
            "key found in {}",
            p.display()
        );
        assert!(
            !bytes.windows(10).any(|w| w == b"Bearer sk-"),
            "auth header found in {}",
            p.display()
        );
    }
}

/// A reasoning model that spent its token budget (HTTP 200, `finish_reason: "length"`, content
/// `null` or `""`; fixtures in `tests/fixtures/openai/`) gave a paid, empty answer: it is cached
/// like any other, so a rerun does not pay for it again, and read as "cut by the token limit"
/// (issue #15 item 5).
#[test]
fn answer_cut_by_the_token_limit_is_cached_not_paid_again() {
    std::env::set_var("OPENAI_API_KEY", KEY);
    for fixture in [
        include_str!("fixtures/openai/chat_completion_length_null_content.json"),
        include_str!("fixtures/openai/chat_completion_length_empty_content.json"),
    ] {
        let body = fixture.to_string();
        let server = MockServer::start(Script::Func(Box::new(move |_| Reply::raw(200, &body))));
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("vlm.sqlite");
        let img = Image::gray8(8, 8, vec![7; 64]).unwrap();
        let img = prepare(&img, &PrepareOptions::default(), "t").unwrap();
        let set = TemplateSet::builtin(TaskKind::Count).unwrap();
        let tp = TaskPrompt::new(
            Task::Count {
                objects: "cells".into(),
            },
            set.variant("study").unwrap(),
            PromptContext::default(),
        )
        .unwrap();
        let answer = || {
            let spec = ModelSpec::parse("openai:gpt-5-nano").unwrap();
            let client = Client::new(
                spec.clone(),
                &ClientOptions {
                    base_url: Some(server.url("/v1")),
                    ..Default::default()
                },
            )
            .unwrap();
            let engine = Engine::new(
                Box::new(client),
                spec,
                Some(ResponseCache::open(&db).unwrap()),
                &PriceTable::builtin().unwrap(),
                None,
            )
            .unwrap();
            engine
                .answer(&tp.request(img.clone(), &Sampling::default()))
                .unwrap()
        };
        let first = answer();
        assert!(!first.cached);
        assert_eq!(first.response.finish, FinishReason::Length);
        let a = tp.interpret(&first.response);
        assert!(a.value.is_none());
        let why = a.failure.unwrap_or_default();
        assert!(why.contains("token limit"), "{why}");
        let second = answer();
        assert!(second.cached, "the empty answer is served from the cache");
        assert_eq!(server.count(), 1, "paid once");
    }
}
