//! [`Engine`]: a model plus the response cache, the price table and the budget. Every request
//! goes through [`Engine::answer`]: cache lookup, budget reservation, the HTTP call, the cache write
//! (committed at once), cost accounting. [`run_batch`] runs many of them with a worker pool.

use crate::backend::VisionLanguageModel;
use crate::batch::{
    BatchApi, BatchJournal, BatchLine, BatchStatus, Submitted, MAX_BYTES, MAX_LINES,
};
use crate::cache::{cache_key, ResponseCache};
use crate::error::VlmError;
use crate::model::ModelSpec;
use crate::prices::{estimate_tokens, ModelPrice};
use crate::prices::{Budget, PriceTable};
use crate::request::{VlmRequest, VlmResponse};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;

/// One answered request.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub response: VlmResponse,
    /// Served from the cache (no HTTP call, nothing paid).
    pub cached: bool,
    /// Cost of this call in USD from the reported tokens (0 when cached); `None` when the model
    /// has no price in the table or the provider reported no token counts.
    pub cost_usd: Option<f64>,
}

/// A model with cache, prices and budget.
pub struct Engine {
    model: Box<dyn VisionLanguageModel>,
    spec: ModelSpec,
    cache: Option<ResponseCache>,
    price: Option<ModelPrice>,
    budget: Budget,
    http_calls: AtomicU64,
    cache_hits: AtomicU64,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("model", &self.model.name())
            .field(
                "cache",
                &self.cache.as_ref().map(|c| c.path().to_path_buf()),
            )
            .field("price", &self.price)
            .finish()
    }
}

impl Engine {
    /// Builds an engine; `spec` must name the same model as `model` (used for prices and
    /// token estimates).
    ///
    /// # Errors
    /// [`VlmError::Config`] when a cost limit is set but the model has no price in `prices`
    /// (mica cannot keep a limit it cannot compute).
    pub fn new(
        model: Box<dyn VisionLanguageModel>,
        spec: ModelSpec,
        cache: Option<ResponseCache>,
        prices: &PriceTable,
        max_cost_usd: Option<f64>,
    ) -> Result<Self, VlmError> {
        prices.check_not_retired(&spec)?;
        let price = prices.lookup(&spec).cloned();
        if let Some(limit) = max_cost_usd {
            if !(limit.is_finite() && limit >= 0.0) {
                return Err(VlmError::Config(format!(
                    "cost limit must be a non-negative number, got {limit}"
                )));
            }
            if price.is_none() {
                return Err(VlmError::Config(format!(
                    "a cost limit was given but {spec} has no price in the price table; add a row for it (--prices FILE)"
                )));
            }
        }
        Ok(Engine {
            model,
            spec,
            cache,
            price,
            budget: Budget::new(max_cost_usd),
            http_calls: AtomicU64::new(0),
            cache_hits: AtomicU64::new(0),
        })
    }

    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// The base URL the model is reached at.
    pub fn endpoint(&self) -> String {
        self.model.endpoint()
    }

    pub fn price(&self) -> Option<&ModelPrice> {
        self.price.as_ref()
    }

    /// Money spent in this engine's lifetime (settled calls), USD.
    pub fn spent_usd(&self) -> f64 {
        self.budget.spent_usd()
    }

    /// HTTP requests made (not counting retries inside one call) and cache hits so far.
    pub fn calls_and_hits(&self) -> (u64, u64) {
        (
            self.http_calls.load(Ordering::Relaxed),
            self.cache_hits.load(Ordering::Relaxed),
        )
    }

    /// Whether the answer to `req` is already in the response cache (answering it would make no
    /// HTTP call and cost nothing). Always `false` without a cache.
    ///
    /// # Errors
    /// [`VlmError::Cache`] when the cache cannot be read.
    pub fn is_cached(&self, req: &VlmRequest) -> Result<bool, VlmError> {
        match &self.cache {
            Some(cache) => Ok(cache
                .get(&cache_key(&self.model.name(), &self.model.endpoint(), req))?
                .is_some()),
            None => Ok(false),
        }
    }

    /// The worst-case cost of `req` in USD (estimated tokens), `None` without a price.
    pub fn estimate_max_cost_usd(&self, req: &VlmRequest) -> Option<f64> {
        self.cost_of(estimate_tokens(&self.spec, req), Rate::Standard)
    }

    /// What `usage` costs at `rate`, USD: every cost mica reports or reserves is computed here.
    /// `None` without a price (or without batch rates, for [`Rate::Batch`]), or when the
    /// provider reported no tokens (then the cost is unknown, not zero).
    fn cost_of(&self, usage: crate::request::Usage, rate: Rate) -> Option<f64> {
        let p = self.price.as_ref()?;
        if usage.input_tokens.is_none() && usage.output_tokens.is_none() {
            return None;
        }
        let (i, o) = (
            usage.input_tokens.unwrap_or(0),
            usage.output_tokens.unwrap_or(0),
        );
        match rate {
            Rate::Standard => Some(p.cost_usd(i, o)),
            Rate::Batch => p.batch_cost_usd(i, o),
        }
    }

    /// Answers `req`: from the cache if it is there, else over HTTP (then cached at once).
    ///
    /// # Errors
    /// [`VlmError::Budget`] before sending when the cost limit could be exceeded; any error of
    /// the model; [`VlmError::Cache`] when the cache cannot be read or written.
    pub fn answer(&self, req: &VlmRequest) -> Result<Outcome, VlmError> {
        self.answer_spend(req).result
    }

    /// [`Self::answer`], with what its timed-out attempts may have cost. A request that timed out
    /// was sent and may have been processed and billed by the provider (openai-python retries
    /// timeouts too; nothing says they are free), so each timed-out attempt is charged to the
    /// budget at the request's worst-case estimate, whether the request finally succeeded or not.
    /// Retries after a timeout can therefore take spending past `--max-cost` by at most
    /// `max_retries` such estimates; the next request is refused once it is.
    pub fn answer_spend(&self, req: &VlmRequest) -> Answered {
        let key = cache_key(&self.model.name(), &self.model.endpoint(), req);
        if let Some(cache) = &self.cache {
            match cache.get(&key) {
                Ok(Some(response)) => {
                    self.cache_hits.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(model = %self.spec, key = %&key[..12], "answer from cache");
                    return Answered::free(Ok(Outcome {
                        response,
                        cached: true,
                        cost_usd: Some(0.0),
                    }));
                }
                Ok(None) => {}
                Err(e) => return Answered::free(Err(e)),
            }
        }
        let reserve = self.estimate_max_cost_usd(req).unwrap_or(0.0);
        if let Err(e) = self.budget.reserve(reserve) {
            return Answered::free(Err(e));
        }
        self.http_calls.fetch_add(1, Ordering::Relaxed);
        let generated = self.model.generate_counted(req);
        let possibly_billed_usd = f64::from(generated.timed_out_attempts) * reserve;
        if generated.timed_out_attempts > 0 {
            tracing::warn!(
                model = %self.spec,
                timed_out = generated.timed_out_attempts,
                charged_usd = possibly_billed_usd,
                "timed-out attempts may have been billed; charged to the budget at their estimate"
            );
        }
        let response = match generated.result {
            Ok(r) => r,
            Err(e) => {
                self.budget.settle(reserve, possibly_billed_usd);
                return Answered {
                    result: Err(e),
                    possibly_billed_usd,
                };
            }
        };
        let cost_usd = self.cost_of(response.usage, Rate::Standard);
        // `-v`: one line per answer with its time (the model call is the VLM's only stage).
        tracing::info!(
            model = %self.spec,
            latency_ms = response.latency_ms,
            attempts = response.attempts,
            input_tokens = ?response.usage.input_tokens,
            output_tokens = ?response.usage.output_tokens,
            finish = %response.finish.label(),
            "answer received"
        );
        // Without token counts, charge the reservation: the limit stays safe.
        self.budget
            .settle(reserve, cost_usd.unwrap_or(reserve) + possibly_billed_usd);
        if let Some(cache) = &self.cache {
            if let Err(e) = cache.put(&key, &self.model.name(), &response) {
                return Answered {
                    result: Err(e),
                    possibly_billed_usd,
                };
            }
        }
        Answered {
            result: Ok(Outcome {
                response,
                cached: false,
                cost_usd,
            }),
            possibly_billed_usd,
        }
    }
}

/// How [`Engine::run_batches`] waits.
pub struct BatchOptions<'a> {
    /// Time between two status requests of a running batch.
    pub poll_interval: std::time::Duration,
    /// Set (Ctrl-C): stop waiting; the batch keeps running at the provider and a rerun resumes
    /// polling it.
    pub stop: Option<&'a AtomicBool>,
    /// Told each status read: the batch id and its status.
    pub on_status: &'a (dyn Fn(&str, &BatchStatus) + Sync),
}

/// What [`Engine::run_batches`] got.
#[derive(Debug, Default)]
pub struct BatchRun {
    /// Answer (already in the response cache) or failure of each request a batch answered, by
    /// cache key ([`Engine::key_of`]).
    pub answers: HashMap<String, Result<Outcome, VlmError>>,
    /// Batches resumed from the journal (created by an earlier run).
    pub resumed: Vec<String>,
    /// Batches submitted by this call.
    pub submitted: Vec<String>,
    /// Requests sent in the batches submitted by this call.
    pub requests_sent: usize,
}

impl Engine {
    /// The response-cache key of `req` (also its `custom_id` in a batch).
    pub fn key_of(&self, req: &VlmRequest) -> String {
        cache_key(&self.model.name(), &self.model.endpoint(), req)
    }

    /// The worst-case cost of `req` at the provider's batch price, USD; `None` when the price
    /// table has no batch rates for the model.
    pub fn estimate_max_batch_cost_usd(&self, req: &VlmRequest) -> Option<f64> {
        self.cost_of(estimate_tokens(&self.spec, req), Rate::Batch)
    }

    /// Whether mica can send this model's requests through its provider's Batch API.
    pub fn has_batch_api(&self) -> bool {
        self.model.batch_api().is_some()
    }

    /// Sends the uncached `requests` through the provider's Batch API and waits for the
    /// answers, resumably:
    ///
    /// 1. every batch `journal` holds open is finished first: one whose id was never recorded
    ///    (the run was killed while creating it) is looked up on the server by its tag, and
    ///    written off only when the server has none, so its requests are never sent twice;
    /// 2. the requests not answered by those and not in the cache go out in new batches
    ///    (at most [`crate::batch::MAX_LINES`] lines and [`crate::batch::MAX_BYTES`] each),
    ///    each written to the journal before it is submitted and after it is created;
    /// 3. each batch is polled until it ends; its answers are read by the same reply parser as
    ///    a synchronous call, put in the response cache at once and priced at the batch rates.
    ///
    /// # Errors
    /// [`VlmError::Config`] when the provider has no batch API in mica, [`VlmError::Batch`]
    /// when a batch failed as a whole or waiting was stopped (`opts.stop`), any HTTP error of
    /// the protocol, and journal or cache failures. Answers already received are in the cache.
    pub fn run_batches(
        &self,
        requests: impl Iterator<Item = VlmRequest>,
        journal: &dyn BatchJournal,
        opts: &BatchOptions<'_>,
    ) -> Result<BatchRun, VlmError> {
        let api = self.model.batch_api().ok_or_else(|| {
            VlmError::Config(format!(
                "{}: mica speaks no Batch API for this provider (OpenAI's and Gemini's only); run it without `batch`",
                self.spec
            ))
        })?;
        let journal_err = |e| self.journal_error("journal", e);
        let mut run = BatchRun::default();
        for entry in journal.open().map_err(journal_err)? {
            let id = match entry.batch_id {
                Some(id) => id,
                None => match api.find(&entry.tag)? {
                    Some(id) => {
                        let s = Submitted {
                            batch_id: id.clone(),
                            input_file_id: String::new(),
                        };
                        journal.submitted(&entry.tag, &s).map_err(journal_err)?;
                        id
                    }
                    None => {
                        journal
                            .ended(
                                &entry.tag,
                                "not created",
                                "the run stopped before the provider created the batch; its requests are sent again",
                            )
                            .map_err(journal_err)?;
                        continue;
                    }
                },
            };
            tracing::info!(model = %self.spec, batch = %id, "resuming a batch of an earlier run");
            run.resumed.push(id.clone());
            self.finish_batch(api, journal, &entry.tag, &id, opts, &mut run)?;
        }
        let mut seen = HashSet::new();
        let mut chunk: Vec<BatchLine> = Vec::new();
        let mut bytes = 0usize;
        let mut created: Vec<(String, String)> = Vec::new();
        for req in requests {
            let key = self.key_of(&req);
            if run.answers.contains_key(&key)
                || !seen.insert(key.clone())
                || self.is_cached(&req)?
            {
                continue;
            }
            let line = api.line(&key, &req);
            let n = line.jsonl.len() + 1;
            if !chunk.is_empty() && (chunk.len() >= MAX_LINES || bytes + n > MAX_BYTES) {
                self.submit_chunk(api, journal, &chunk, &mut created, &mut run)?;
                chunk.clear();
                bytes = 0;
            }
            chunk.push(line);
            bytes += n;
        }
        if !chunk.is_empty() {
            self.submit_chunk(api, journal, &chunk, &mut created, &mut run)?;
        }
        for (tag, id) in &created {
            self.finish_batch(api, journal, tag, id, opts, &mut run)?;
        }
        Ok(run)
    }

    /// Journals, submits and journals again one batch of `chunk`.
    fn submit_chunk(
        &self,
        api: &dyn BatchApi,
        journal: &dyn BatchJournal,
        chunk: &[BatchLine],
        created: &mut Vec<(String, String)>,
        run: &mut BatchRun,
    ) -> Result<(), VlmError> {
        let journal_err = |e| self.journal_error("journal", e);
        let tag = self.new_tag(created.len());
        journal.begin(&tag, chunk.len()).map_err(journal_err)?;
        // Should this fail after the provider created the batch, the journal still holds the
        // tag: the next run finds the batch by it.
        let s = api.submit(chunk, &tag)?;
        journal.submitted(&tag, &s).map_err(journal_err)?;
        tracing::info!(model = %self.spec, batch = %s.batch_id, requests = chunk.len(), "batch submitted");
        run.requests_sent += chunk.len();
        run.submitted.push(s.batch_id.clone());
        created.push((tag, s.batch_id));
        Ok(())
    }

    /// A failure to read or write the batch journal.
    fn journal_error(&self, batch: &str, reason: String) -> VlmError {
        VlmError::Batch {
            provider: self.spec.provider.as_str().to_string(),
            batch: batch.to_string(),
            reason,
        }
    }

    /// A tag no other batch has: the model, the time, the process and a counter, hashed.
    fn new_tag(&self, n: usize) -> String {
        use sha2::{Digest, Sha256};
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let material = format!("{}|{now}|{}|{n}", self.spec, std::process::id());
        format!(
            "mica-{}",
            &hex::encode(Sha256::digest(material.as_bytes()))[..24]
        )
    }

    /// Polls batch `id` until it ends, then caches its answers into `run`.
    fn finish_batch(
        &self,
        api: &dyn BatchApi,
        journal: &dyn BatchJournal,
        tag: &str,
        id: &str,
        opts: &BatchOptions<'_>,
        run: &mut BatchRun,
    ) -> Result<(), VlmError> {
        let provider = self.spec.provider.as_str().to_string();
        let journal_err = |e| self.journal_error(id, e);
        loop {
            let status = api.status(id)?;
            (opts.on_status)(id, &status);
            match &status {
                BatchStatus::Running { .. } => {
                    let until = std::time::Instant::now() + opts.poll_interval;
                    while std::time::Instant::now() < until {
                        if opts.stop.is_some_and(|s| s.load(Ordering::SeqCst)) {
                            return Err(VlmError::Batch {
                                provider,
                                batch: id.to_string(),
                                reason: "stopped while waiting for it; it goes on at the provider and the next run resumes polling it".into(),
                            });
                        }
                        std::thread::sleep(
                            opts.poll_interval
                                .min(std::time::Duration::from_millis(200)),
                        );
                    }
                }
                BatchStatus::Failed { status, reason } => {
                    journal.ended(tag, status, reason).map_err(journal_err)?;
                    return Err(VlmError::Batch {
                        provider,
                        batch: id.to_string(),
                        reason: format!("{status}: {reason}"),
                    });
                }
                BatchStatus::Ended { status: word, .. } => {
                    let (mut ok, mut failed) = (0usize, 0usize);
                    for line in api.results(id, &status)? {
                        let outcome = match line.result {
                            Ok(response) => {
                                let cost_usd = self.cost_of(response.usage, Rate::Batch);
                                if let Some(cache) = &self.cache {
                                    cache.put(&line.custom_id, &self.model.name(), &response)?;
                                }
                                self.budget.settle(0.0, cost_usd.unwrap_or(0.0));
                                ok += 1;
                                Ok(Outcome {
                                    response,
                                    cached: false,
                                    cost_usd,
                                })
                            }
                            Err(e) => {
                                failed += 1;
                                Err(e)
                            }
                        };
                        run.answers.insert(line.custom_id, outcome);
                    }
                    tracing::info!(model = %self.spec, batch = %id, status = %word, answers = ok, failed, "batch ended");
                    journal
                        .ended(tag, word, &format!("{ok} answers, {failed} failed lines"))
                        .map_err(journal_err)?;
                    return Ok(());
                }
            }
        }
    }
}

/// Which of a price row's rates a cost is at.
#[derive(Debug, Clone, Copy)]
enum Rate {
    /// A synchronous call.
    Standard,
    /// A request sent through the provider's Batch API.
    Batch,
}

/// What [`Engine::answer_spend`] gives.
#[derive(Debug)]
pub struct Answered {
    pub result: Result<Outcome, VlmError>,
    /// The worst-case cost charged for attempts that timed out (possibly billed), USD; 0 when
    /// none did or the model has no price.
    pub possibly_billed_usd: f64,
}

impl Answered {
    fn free(result: Result<Outcome, VlmError>) -> Self {
        Answered {
            result,
            possibly_billed_usd: 0.0,
        }
    }
}

/// What [`run_batch`] reports per job, in completion order.
#[derive(Debug)]
pub struct JobResult<T> {
    /// Index of the job in the input.
    pub index: usize,
    pub result: Result<T, VlmError>,
}

/// Runs `work` on every job index `0..n` with `workers` threads and hands each result to
/// `on_result` on the calling thread as soon as it is ready (so the caller can write it out at
/// once). After a [`VlmError::Budget`] or another error that is not about one image
/// ([`VlmError::is_per_image`]), no new job is started; the jobs never started are returned.
pub fn run_batch<T: Send>(
    n: usize,
    workers: usize,
    work: impl Fn(usize) -> Result<T, VlmError> + Sync,
    mut on_result: impl FnMut(JobResult<T>),
) -> Vec<usize> {
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let started = std::sync::Mutex::new(vec![false; n]);
    let (tx, rx) = mpsc::channel::<JobResult<T>>();
    std::thread::scope(|s| {
        for _ in 0..workers.max(1).min(n.max(1)) {
            let tx = tx.clone();
            let (next, stop, started, work) = (&next, &stop, &started, &work);
            s.spawn(move || loop {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= n {
                    break;
                }
                started.lock().unwrap_or_else(|p| p.into_inner())[i] = true;
                let result = work(i);
                if let Err(e) = &result {
                    if !e.is_per_image() {
                        stop.store(true, Ordering::SeqCst);
                    }
                }
                if tx.send(JobResult { index: i, result }).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        for r in rx {
            on_result(r);
        }
    });
    let started = started.into_inner().unwrap_or_else(|p| p.into_inner());
    (0..n).filter(|&i| !started[i]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{FinishReason, Usage};

    struct Fake {
        calls: AtomicU64,
    }

    impl VisionLanguageModel for Fake {
        fn name(&self) -> String {
            "openai:gpt-4o".into()
        }
        fn endpoint(&self) -> String {
            "https://api.openai.com/v1".into()
        }
        fn generate(&self, req: &VlmRequest) -> Result<VlmResponse, VlmError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            Ok(VlmResponse {
                text: format!("Count: {}", req.turns[0].text.len()),
                finish: FinishReason::Stop,
                usage: Usage {
                    input_tokens: Some(1000),
                    output_tokens: Some(10),
                },
                latency_ms: 1,
                attempts: 1,
                model_version: None,
            })
        }
    }

    #[test]
    fn caches_and_costs() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ResponseCache::open(&dir.path().join("c.sqlite")).unwrap();
        let spec = ModelSpec::parse("openai:gpt-4o").unwrap();
        let e = Engine::new(
            Box::new(Fake {
                calls: AtomicU64::new(0),
            }),
            spec,
            Some(cache),
            &PriceTable::builtin().unwrap(),
            None,
        )
        .unwrap();
        let req = VlmRequest::single("abc", vec![]);
        let a = e.answer(&req).unwrap();
        assert!(!a.cached);
        let cost = a.cost_usd.unwrap();
        assert!((cost - (1000.0 * 2.5 + 10.0 * 10.0) / 1e6).abs() < 1e-12);
        let b = e.answer(&req).unwrap();
        assert!(b.cached);
        assert_eq!(b.response.text, a.response.text);
        assert_eq!(e.calls_and_hits(), (1, 1));
    }

    #[test]
    fn budget_stops_before_sending() {
        let spec = ModelSpec::parse("openai:gpt-4o").unwrap();
        let e = Engine::new(
            Box::new(Fake {
                calls: AtomicU64::new(0),
            }),
            spec.clone(),
            None,
            &PriceTable::builtin().unwrap(),
            Some(0.000_001),
        )
        .unwrap();
        let err = e.answer(&VlmRequest::single("abc", vec![])).unwrap_err();
        assert!(matches!(err, VlmError::Budget { .. }));
        assert_eq!(e.calls_and_hits(), (0, 0));
        // A limit without a price is refused up front.
        let unpriced = ModelSpec::parse("openai-compatible:x").unwrap();
        assert!(Engine::new(
            Box::new(Fake {
                calls: AtomicU64::new(0)
            }),
            unpriced,
            None,
            &PriceTable::builtin().unwrap(),
            Some(1.0)
        )
        .is_err());
    }

    #[test]
    fn batch_stops_on_fatal_errors_and_reports_unstarted() {
        let mut seen = Vec::new();
        let unstarted = run_batch(
            10,
            1,
            |i| {
                if i == 3 {
                    Err(VlmError::Budget {
                        limit_usd: 1.0,
                        spent_usd: 1.0,
                        next_usd: 0.1,
                    })
                } else {
                    Ok(i)
                }
            },
            |r| seen.push(r.index),
        );
        assert_eq!(seen, vec![0, 1, 2, 3]);
        assert_eq!(unstarted, vec![4, 5, 6, 7, 8, 9]);
        let mut n = 0;
        assert!(run_batch(20, 4, Ok, |_| n += 1).is_empty());
        assert_eq!(n, 20);
    }
}
