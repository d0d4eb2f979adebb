//! The Batch API protocol of [`Engine::run_batches`] against a local server speaking OpenAI's
//! Batch API as documented (`support::BatchServer`; the study-level test with kills is
//! `tests/study_batch.rs`): a batch that fails validation, and a wait stopped by a signal and
//! resumed without submitting again.

mod support;

use mica_vlm::batch::{BatchJournal, JournalEntry, Submitted};
use mica_vlm::*;
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;
use std::time::Duration;
use support::BatchServer;

const KEY: &str = "sk-mica-batch-unit-KEY";

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
    std::env::set_var("OPENAI_API_KEY", KEY);
    let spec = ModelSpec::parse("openai:gpt-4o").unwrap();
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
            VlmRequest::single(
                format!("How many cells are in image {i}? Count: <n>"),
                vec![],
            )
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
