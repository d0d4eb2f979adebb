//! HTTP for all backends: one JSON POST with timeouts, a concurrency and requests-per-minute limit,
//! and retries with exponential backoff and jitter, following the official OpenAI SDK's rules
//! (`openai-python`'s `_base_client.py`): 408, 409, 429 and 5xx are retried (and 425), other
//! client errors are not; a server's `x-should-retry: true|false` overrides that; a wait the server
//! asks for (`retry-after-ms`, `Retry-After`, or Google's `RetryInfo.retryDelay` in the body) is
//! honoured on whatever status is retried. Failures no retry can fix end the request at once: a
//! rejected key, a daily quota, billing (HTTP 402, OpenAI's `insufficient_quota`).

use crate::error::VlmError;
use crate::secret::ApiKey;
use mica_core::rng::SplitMix64;
use serde::{Deserialize, Serialize};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Retry settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// Retries after the first attempt (so at most `max_retries + 1` requests).
    pub max_retries: u32,
    /// First backoff; doubles per retry.
    pub base_delay_ms: u64,
    /// Cap of one backoff.
    pub max_delay_ms: u64,
    /// The longest `Retry-After` honoured; a longer one ends the request with an error.
    pub max_retry_after_s: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 4,
            base_delay_ms: 1000,
            max_delay_ms: 30_000,
            max_retry_after_s: 120,
        }
    }
}

impl RetryPolicy {
    /// Backoff before retry number `retry` (0-based): `d = min(max, base * 2^retry)`, then a
    /// uniformly random delay in `[d/2, d]` ("equal jitter"), so clients do not retry in lockstep.
    pub fn backoff(&self, retry: u32, rng: &mut SplitMix64) -> Duration {
        let d = self
            .base_delay_ms
            .saturating_mul(1u64 << retry.min(30))
            .min(self.max_delay_ms);
        let half = d / 2;
        Duration::from_millis(half + rng.below(d - half + 1))
    }
}

/// Limits on how hard one provider is hit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Requests started per minute (0 = no limit). Retries count.
    pub requests_per_minute: u32,
    /// Tokens per minute (0 = no limit): each request's estimated input tokens plus its
    /// output-token limit, as OpenAI counts a request against its TPM limit; request starts are
    /// spaced so that no minute sees more. Retries count.
    pub tokens_per_minute: u32,
    /// Whole-request timeout (connect, send, answer).
    pub timeout_s: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            concurrency: 2,
            requests_per_minute: 0,
            tokens_per_minute: 0,
            timeout_s: 120.0,
        }
    }
}

/// Concurrency semaphore plus an even spacing of request starts: `60 / rpm` seconds apart, and
/// `60 × tokens / tpm` seconds after a request of `tokens` tokens.
#[derive(Debug)]
struct Limiter {
    in_flight: Mutex<usize>,
    freed: Condvar,
    max: usize,
    spacing: Option<Duration>,
    next_start: Mutex<Option<Instant>>,
    tokens_per_minute: u32,
    next_token_start: Mutex<Option<Instant>>,
}

struct Permit<'a>(&'a Limiter);

/// Takes the next start slot of `next` (now, or later when the slot before was reserved further
/// ahead), moves it on by `step`, and sleeps until the slot taken.
fn wait_for_slot(next: &Mutex<Option<Instant>>, step: Duration) {
    let slot = {
        let mut next = next.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let slot = next.map_or(now, |t| t.max(now));
        *next = Some(slot + step);
        slot
    };
    let now = Instant::now();
    if slot > now {
        std::thread::sleep(slot - now);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let mut n = self.0.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        *n = n.saturating_sub(1);
        self.0.freed.notify_one();
    }
}

impl Limiter {
    fn new(limits: &Limits) -> Self {
        Limiter {
            in_flight: Mutex::new(0),
            freed: Condvar::new(),
            max: limits.concurrency.max(1),
            spacing: (limits.requests_per_minute > 0)
                .then(|| Duration::from_secs_f64(60.0 / limits.requests_per_minute as f64)),
            next_start: Mutex::new(None),
            tokens_per_minute: limits.tokens_per_minute,
            next_token_start: Mutex::new(None),
        }
    }

    /// A permit for a request of `tokens` estimated tokens.
    fn acquire(&self, tokens: u64) -> Permit<'_> {
        {
            let mut n = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
            while *n >= self.max {
                n = self.freed.wait(n).unwrap_or_else(|p| p.into_inner());
            }
            *n += 1;
        }
        if let Some(spacing) = self.spacing {
            wait_for_slot(&self.next_start, spacing);
        }
        if self.tokens_per_minute > 0 {
            let step =
                Duration::from_secs_f64(60.0 * tokens as f64 / self.tokens_per_minute as f64);
            wait_for_slot(&self.next_token_start, step);
        }
        Permit(self)
    }
}

/// A successful (2xx) JSON answer.
#[derive(Debug)]
pub struct JsonReply {
    pub body: serde_json::Value,
    pub latency_ms: u64,
    pub attempts: u32,
}

/// The HTTP client of one provider.
#[derive(Debug)]
pub struct Transport {
    agent: ureq::Agent,
    provider: String,
    retry: RetryPolicy,
    timeout: Duration,
    limiter: Limiter,
    key: Option<ApiKey>,
    rng: Mutex<SplitMix64>,
}

/// The largest answer a GET may have (a Batch API's results file): 2 GiB.
pub const BATCH_FILE_LIMIT: u64 = 2 * 1024 * 1024 * 1024;

/// A successful (2xx) answer as text (a batch's JSONL results).
#[derive(Debug)]
pub struct TextReply {
    pub text: String,
    pub latency_ms: u64,
    pub attempts: u32,
    /// The answer's `x-goog-upload-*` headers (names lower-cased, values with the key removed):
    /// Gemini's resumable upload says where to send the file and whether it is complete there.
    pub upload_headers: Vec<(String, String)>,
}

impl TextReply {
    /// The value of response header `name` (lower-case) among [`Self::upload_headers`].
    pub fn header(&self, name: &str) -> Option<&str> {
        self.upload_headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What one HTTP request of [`Transport::send`] is.
#[derive(Debug, Clone, Copy)]
pub enum HttpRequest<'a> {
    Get,
    /// A POST with its body and `Content-Type`.
    Post {
        content_type: &'a str,
        body: &'a [u8],
    },
}

enum Attempt {
    Done(TextReply),
    Retry {
        after: Option<Duration>,
        last: VlmError,
    },
    Fail(VlmError),
}

impl Transport {
    /// A transport for `provider` (used in messages); `key` is only used to redact error text.
    /// Proxies come from the usual environment variables (`HTTPS_PROXY`, `ALL_PROXY`, `NO_PROXY`)
    /// except for a `loopback` server (a local Ollama or test server), which is always reached
    /// directly.
    ///
    /// # Errors
    /// [`VlmError::Config`] for a non-positive timeout.
    pub fn new(
        provider: &str,
        limits: &Limits,
        retry: RetryPolicy,
        key: Option<ApiKey>,
        loopback: bool,
    ) -> Result<Self, VlmError> {
        if !(limits.timeout_s.is_finite() && limits.timeout_s > 0.0) {
            return Err(VlmError::Config(format!(
                "timeout must be positive, got {} s",
                limits.timeout_s
            )));
        }
        let timeout = Duration::from_secs_f64(limits.timeout_s);
        let mut config = ureq::Agent::config_builder();
        if loopback {
            config = config.proxy(None);
        }
        let agent: ureq::Agent = config
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .user_agent(concat!("mica/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x5eed)
            ^ (std::process::id() as u64) << 32;
        Ok(Transport {
            agent,
            provider: provider.to_string(),
            retry,
            timeout,
            limiter: Limiter::new(limits),
            key,
            rng: Mutex::new(SplitMix64::new(seed)),
        })
    }

    fn redact(&self, s: &str) -> String {
        match &self.key {
            Some(k) => k.redact(s),
            None => s.to_string(),
        }
    }

    /// POSTs `body` as JSON to `url` with `headers`, retrying as the policy says: a model call
    /// of `tokens` estimated tokens (input plus the output limit), which the tokens-per-minute
    /// limit counts. Also gives the number of attempts that timed out (the request was sent
    /// and no answer came within the timeout: the provider may have processed and billed it).
    ///
    /// # Errors
    /// [`VlmError::Http`] (non-retryable status, or retries exhausted), [`VlmError::Timeout`],
    /// [`VlmError::Connection`], [`VlmError::RetryAfterTooLong`], [`VlmError::BadResponse`]
    /// (a 2xx answer that is not JSON).
    pub fn post_json_weighted(
        &self,
        url: &str,
        headers: &[(&str, String)],
        body: &serde_json::Value,
        tokens: u64,
    ) -> (Result<JsonReply, VlmError>, u32) {
        let mut timed_out = 0u32;
        let result = self.post_json_inner(url, headers, body, tokens, &mut timed_out);
        (result, timed_out)
    }

    fn post_json_inner(
        &self,
        url: &str,
        headers: &[(&str, String)],
        body: &serde_json::Value,
        tokens: u64,
        timed_out: &mut u32,
    ) -> Result<JsonReply, VlmError> {
        let payload = serde_json::to_vec(body).map_err(|e| VlmError::BadResponse {
            provider: self.provider.clone(),
            reason: format!("cannot serialise request: {e}"),
        })?;
        let request = HttpRequest::Post {
            content_type: "application/json",
            body: &payload,
        };
        let reply = self.send_inner(request, url, headers, Some(tokens), timed_out)?;
        self.json_of(reply)
    }

    /// The JSON of a 2xx answer.
    fn json_of(&self, reply: TextReply) -> Result<JsonReply, VlmError> {
        match serde_json::from_str(&reply.text) {
            Ok(body) => Ok(JsonReply {
                body,
                latency_ms: reply.latency_ms,
                attempts: reply.attempts,
            }),
            Err(e) => Err(VlmError::BadResponse {
                provider: self.provider.clone(),
                reason: format!("2xx body is not JSON ({e}): {}", snippet(&reply.text)),
            }),
        }
    }

    /// GETs `url` and reads its JSON answer, with the retry rules of [`Self::post_json_weighted`].
    ///
    /// # Errors
    /// As [`Self::post_json_weighted`].
    pub fn get_json(&self, url: &str, headers: &[(&str, String)]) -> Result<JsonReply, VlmError> {
        let reply = self.send(HttpRequest::Get, url, headers)?;
        self.json_of(reply)
    }

    /// Sends one request (GET, or POST with any body) with the retry rules of
    /// [`Self::post_json_weighted`] and gives the 2xx answer's text, with the key removed.
    ///
    /// These are a Batch API's protocol requests (uploads, batch creation, status, results),
    /// which the providers limit apart from model calls: the requests- and tokens-per-minute
    /// limits, made for model calls, do not hold them back.
    ///
    /// # Errors
    /// As [`Self::post_json_weighted`].
    pub fn send(
        &self,
        request: HttpRequest<'_>,
        url: &str,
        headers: &[(&str, String)],
    ) -> Result<TextReply, VlmError> {
        let mut timed_out = 0;
        self.send_inner(request, url, headers, None, &mut timed_out)
    }

    /// [`Self::send`] of a JSON body, its answer read as JSON.
    ///
    /// # Errors
    /// As [`Self::post_json_weighted`].
    pub fn send_json(
        &self,
        url: &str,
        headers: &[(&str, String)],
        body: &serde_json::Value,
    ) -> Result<JsonReply, VlmError> {
        let payload = body.to_string();
        let reply = self.send(
            HttpRequest::Post {
                content_type: "application/json",
                body: payload.as_bytes(),
            },
            url,
            headers,
        )?;
        self.json_of(reply)
    }

    /// `limited`: `Some(tokens)` for a model call the limits hold back (weighing `tokens`).
    fn send_inner(
        &self,
        request: HttpRequest<'_>,
        url: &str,
        headers: &[(&str, String)],
        limited: Option<u64>,
        timed_out: &mut u32,
    ) -> Result<TextReply, VlmError> {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let outcome = {
                let _permit = limited.map(|tokens| self.limiter.acquire(tokens));
                self.attempt(request, url, headers, attempt)
            };
            match outcome {
                Attempt::Done(r) => return Ok(r),
                Attempt::Fail(e) => return Err(e),
                Attempt::Retry { after, last } => {
                    if matches!(last, VlmError::Timeout { .. }) {
                        *timed_out += 1;
                    }
                    if attempt > self.retry.max_retries {
                        return Err(last);
                    }
                    let wait = match after {
                        Some(a) if a.as_secs() > self.retry.max_retry_after_s => {
                            return Err(VlmError::RetryAfterTooLong {
                                provider: self.provider.clone(),
                                retry_after_s: a.as_secs(),
                                max_wait_s: self.retry.max_retry_after_s,
                            })
                        }
                        Some(a) => a,
                        None => {
                            let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
                            self.retry.backoff(attempt - 1, &mut rng)
                        }
                    };
                    tracing::warn!(
                        provider = %self.provider,
                        attempt,
                        wait_ms = wait.as_millis() as u64,
                        "retrying: {last}"
                    );
                    std::thread::sleep(wait);
                }
            }
        }
    }

    fn attempt(
        &self,
        request: HttpRequest<'_>,
        url: &str,
        headers: &[(&str, String)],
        attempt: u32,
    ) -> Attempt {
        let start = Instant::now();
        let resp = match request {
            HttpRequest::Get => {
                let mut req = self.agent.get(url);
                for (k, v) in headers {
                    req = req.header(*k, v.as_str());
                }
                req.call()
            }
            HttpRequest::Post { content_type, body } => {
                let mut req = self.agent.post(url).header("Content-Type", content_type);
                for (k, v) in headers {
                    req = req.header(*k, v.as_str());
                }
                req.send(body)
            }
        };
        let mut resp = match resp {
            Ok(r) => r,
            Err(e) => return self.transport_error(url, e, attempt),
        };
        let status = resp.status().as_u16();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        // The wait a server asks for: `retry-after-ms` first (milliseconds, OpenAI's), then
        // `Retry-After` (seconds or an HTTP date), as openai-python's `_parse_retry_after_header`.
        let retry_after = header("retry-after-ms")
            .and_then(|v| parse_retry_after_ms(&v))
            .or_else(|| header("retry-after").and_then(|v| parse_retry_after(&v)));
        // A server's explicit word on retrying (`x-should-retry: true|false`) is obeyed.
        let should_retry = header("x-should-retry");
        let upload_headers: Vec<(String, String)> = resp
            .headers()
            .iter()
            .filter(|(k, _)| k.as_str().starts_with("x-goog-upload-"))
            .filter_map(|(k, v)| Some((k.as_str().to_string(), self.redact(v.to_str().ok()?))))
            .collect();
        // A model's answer is small; a Batch API's results file (a GET) holds up to 50,000
        // answers (with Gemini's thought signatures, 100 MB and more).
        let limit = match request {
            HttpRequest::Get => BATCH_FILE_LIMIT,
            HttpRequest::Post { .. } => 64 * 1024 * 1024,
        };
        let text = match resp.body_mut().with_config().limit(limit).read_to_string() {
            Ok(t) => t,
            Err(e) => return self.transport_error(url, e, attempt),
        };
        let latency_ms = start.elapsed().as_millis() as u64;
        if (200..300).contains(&status) {
            // A server may echo the key inside a successful answer (model text quoting the
            // request): it is removed before the answer reaches the cache, files or terminal.
            return Attempt::Done(TextReply {
                text: self.redact(&text),
                latency_ms,
                attempts: attempt,
                upload_headers,
            });
        }
        if key_rejected(&text) {
            return Attempt::Fail(VlmError::KeyRejected {
                provider: self.provider.clone(),
                status,
                message: error_message(&self.redact(&text)),
            });
        }
        let err = VlmError::Http {
            provider: self.provider.clone(),
            status,
            attempts: attempt,
            message: error_message(&self.redact(&text)),
        };
        // A quota that resets only tomorrow: no retry can succeed today.
        if let Some(quota) = daily_quota(&text).filter(|_| status == 429) {
            return Attempt::Fail(VlmError::QuotaExhausted {
                provider: self.provider.clone(),
                quota,
                message: error_message(&self.redact(&text)),
            });
        }
        // Billing, not rate: HTTP 402 (Gemini's depleted prepaid credit) or OpenAI's 429
        // `insufficient_quota`. No retry can pay for the request.
        if status == 402 || insufficient_quota(&text) {
            return Attempt::Fail(VlmError::BillingExhausted {
                provider: self.provider.clone(),
                status,
                message: error_message(&self.redact(&text)),
            });
        }
        // A validation error about the structured-output field (llama-cpp-python's server
        // answers OpenAI's `json_schema` with HTTP 500 and a pydantic error whose `loc` names
        // `response_format`): deterministic, so not retried.
        if format_rejected(status, &text) {
            return Attempt::Fail(VlmError::FormatRejected {
                provider: self.provider.clone(),
                status,
                message: error_message(&self.redact(&text)),
            });
        }
        let retry = match should_retry.as_deref().map(str::trim) {
            Some("true") => true,
            Some("false") => false,
            _ => matches!(status, 408 | 409 | 425 | 429 | 500..=599),
        };
        if retry {
            Attempt::Retry {
                // Gemini sends its wait in the body (`google.rpc.RetryInfo.retryDelay`), not in a
                // `Retry-After` header. A hint is honoured on whatever status is retried.
                after: retry_after.or_else(|| body_retry_delay(&text)),
                last: err,
            }
        } else {
            Attempt::Fail(err)
        }
    }

    fn transport_error(&self, url: &str, e: ureq::Error, attempt: u32) -> Attempt {
        let last = match e {
            ureq::Error::Timeout(_) => VlmError::Timeout {
                provider: self.provider.clone(),
                timeout_ms: self.timeout.as_millis() as u64,
                attempts: attempt,
            },
            // An answer over the size limit came whole from the server: the request was
            // processed (and billed); sending it again would get the same answer, paid again.
            ureq::Error::BodyExceedsLimit(limit) => {
                return Attempt::Fail(VlmError::BadResponse {
                    provider: self.provider.clone(),
                    reason: format!(
                        "the answer from {url} is larger than mica reads ({} MiB); not sent again",
                        limit / (1024 * 1024)
                    ),
                })
            }
            ureq::Error::BadUri(_) | ureq::Error::Http(_) => {
                return Attempt::Fail(VlmError::Config(format!(
                    "{}: bad request URL {url}: {}",
                    self.provider,
                    self.redact(&e.to_string())
                )))
            }
            other => VlmError::Connection {
                provider: self.provider.clone(),
                url: url.to_string(),
                attempts: attempt,
                reason: self.redact(&other.to_string()),
            },
        };
        Attempt::Retry { after: None, last }
    }
}

/// Whether an error body says the request's `response_format` is invalid: a 400, 422 or 500
/// whose text names `response_format` next to a validation error or an unsupported value.
fn format_rejected(status: u16, body: &str) -> bool {
    if !matches!(status, 400 | 422 | 500) || !body.contains("response_format") {
        return false;
    }
    let b = body.to_ascii_lowercase();
    [
        "validation error",
        "literal_error",
        "not supported",
        "unsupported",
        "invalid",
    ]
    .iter()
    .any(|w| b.contains(w))
}

/// The wait a Google error body asks for: `google.rpc.RetryInfo.retryDelay` in `error.details`,
/// a protobuf Duration in JSON (`"45.8s"`).
fn body_retry_delay(body: &str) -> Option<Duration> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    v["error"]["details"].as_array()?.iter().find_map(|d| {
        let s = d["retryDelay"].as_str()?.trim().strip_suffix('s')?;
        let secs: f64 = s.parse().ok()?;
        (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
    })
}

/// The daily quota a Google quota error names, if it is one (`google.rpc.QuotaFailure` with a
/// violation whose `quotaId` counts per day, e.g. `GenerateRequestsPerDayPerProjectPerModel-FreeTier`).
fn daily_quota(body: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    v["error"]["details"].as_array()?.iter().find_map(|x| {
        x["violations"].as_array()?.iter().find_map(|q| {
            q["quotaId"]
                .as_str()
                .filter(|id| id.contains("PerDay"))
                .map(str::to_string)
        })
    })
}

/// Whether an error body is OpenAI's "insufficient_quota" (the account's credit or monthly
/// spending limit is used up; sent with HTTP 429 like a rate limit): `error.code` or `error.type`.
fn insufficient_quota(body: &str) -> bool {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(body) else {
        return false;
    };
    let e = &v["error"];
    [&e["code"], &e["type"]]
        .iter()
        .any(|x| x.as_str() == Some("insufficient_quota"))
}

/// Whether an error body says the API key is invalid: Google's `google.rpc.ErrorInfo` with
/// reason `API_KEY_INVALID` (sent with HTTP 400 by the Gemini API).
fn key_rejected(body: &str) -> bool {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(body) else {
        return false;
    };
    v["error"]["details"].as_array().is_some_and(|d| {
        d.iter()
            .any(|x| x["reason"].as_str() == Some("API_KEY_INVALID"))
    })
}

/// The message of a provider error body (`{"error": {"message": ...}}` for OpenAI and Gemini,
/// `{"error": "..."}` for Ollama), else the body itself, shortened.
pub(crate) fn error_message(body: &str) -> String {
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(body) {
        let e = &v["error"];
        if let Some(m) = e["message"].as_str() {
            let status = e["status"].as_str().or(e["type"].as_str());
            return match status {
                Some(s) => snippet(&format!("{m} ({s})")),
                None => snippet(m),
            };
        }
        if let Some(m) = e.as_str() {
            return snippet(m);
        }
    }
    snippet(body)
}

pub(crate) fn snippet(s: &str) -> String {
    const MAX: usize = 300;
    let s = s.trim();
    if s.chars().count() <= MAX {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(MAX).collect::<String>())
    }
}

/// `retry-after-ms` (OpenAI): milliseconds, possibly fractional.
pub fn parse_retry_after_ms(v: &str) -> Option<Duration> {
    let ms: f64 = v.trim().parse().ok()?;
    (ms.is_finite() && ms >= 0.0).then(|| Duration::from_secs_f64(ms / 1e3))
}

/// `Retry-After` as seconds (`"7"`, `"1.5"`) or an HTTP date (`Wed, 21 Oct 2015 07:28:00 GMT`).
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(s) = v.parse::<f64>() {
        return (s.is_finite() && s >= 0.0).then(|| Duration::from_secs_f64(s));
    }
    let at = parse_http_date(v)?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
    Some(Duration::from_secs(at.saturating_sub(now)))
}

/// IMF-fixdate (RFC 9110) to Unix seconds.
fn parse_http_date(v: &str) -> Option<u64> {
    // "Wed, 21 Oct 2015 07:28:00 GMT"
    let parts: Vec<&str> = v.split_whitespace().collect();
    if parts.len() != 6 || parts[5] != "GMT" {
        return None;
    }
    let day: u64 = parts[1].parse().ok()?;
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| *m == parts[2])? as u64 + 1;
    let year: i64 = parts[3].parse().ok()?;
    let hms: Vec<u64> = parts[4]
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    if hms.len() != 3 || !(1..=31).contains(&day) {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + (hms[0] * 3600 + hms[1] * 60 + hms[2]) as i64;
    u64::try_from(secs).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rejected_response_format_is_not_retried() {
        // Recorded from llama-cpp-python 0.3.36's server (fixtures/llama-cpp-python/README.md).
        let llama =
            include_str!("../tests/fixtures/llama-cpp-python/json_schema_rejected_500.json");
        assert!(format_rejected(500, llama));
        // OpenAI's own wording for a bad schema (its 400 invalid_request_error).
        assert!(format_rejected(
            400,
            r#"{"error":{"message":"Invalid schema for response_format 'count': 'required' is missing","type":"invalid_request_error","param":"response_format","code":null}}"#
        ));
        // A server error that is not about the format stays retryable; a 429 is a rate.
        assert!(!format_rejected(
            500,
            r#"{"error":{"message":"internal error"}}"#
        ));
        assert!(!format_rejected(429, llama));
    }

    #[test]
    fn parses_retry_after_forms() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(
            parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(1_445_412_480)
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(
            parse_retry_after_ms("1500"),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_retry_after_ms("-1"), None);
    }

    #[test]
    fn backoff_grows_with_jitter_within_bounds() {
        let p = RetryPolicy {
            base_delay_ms: 100,
            max_delay_ms: 1000,
            ..Default::default()
        };
        let mut rng = SplitMix64::new(1);
        for retry in 0..6 {
            let d = (100u64 << retry).min(1000);
            for _ in 0..50 {
                let b = p.backoff(retry, &mut rng).as_millis() as u64;
                assert!(b >= d / 2 && b <= d, "retry {retry}: {b}");
            }
        }
    }

    #[test]
    fn extracts_provider_error_messages() {
        assert_eq!(
            error_message(
                r#"{"error":{"message":"Invalid image","type":"invalid_request_error"}}"#
            ),
            "Invalid image (invalid_request_error)"
        );
        assert_eq!(
            error_message(r#"{"error":"model not found"}"#),
            "model not found"
        );
        assert_eq!(error_message("oops"), "oops");
    }
}
