//! [`VlmError`]: everything that can go wrong talking to a vision-language model.
//!
//! No variant ever carries an API key: response bodies quoted in errors are passed through
//! [`crate::secret::ApiKey::redact`] first, and keys travel only in request headers.

use std::path::PathBuf;

/// What went wrong, with the model, file or setting that caused it.
#[derive(Debug, thiserror::Error)]
pub enum VlmError {
    /// A model name that is not `provider:model` with a known provider.
    #[error("model name `{name}`: {reason}")]
    ModelName { name: String, reason: String },
    /// A provider needs an API key and its environment variable is not set.
    #[error("{provider} needs an API key: set the environment variable {var}")]
    MissingKey { provider: String, var: String },
    /// A setting is invalid (base URL, limits, options).
    #[error("invalid setting: {0}")]
    Config(String),
    /// An image could not be read or prepared for the model.
    #[error("{name}: cannot prepare image: {reason}")]
    Image { name: String, reason: String },
    /// The server answered with an HTTP error that is not retried (400, 401, 403, 404, ...), or a
    /// retried status (429, 5xx) persisted after all retries.
    #[error("{provider}: HTTP {status} after {attempts} attempt(s): {message}")]
    Http {
        provider: String,
        status: u16,
        attempts: u32,
        message: String,
    },
    /// The provider rejected the API key, whatever the HTTP status says (Gemini answers a wrong
    /// key with 400 `INVALID_ARGUMENT`, reason `API_KEY_INVALID`): every later request would be
    /// rejected too, so a batch stops.
    #[error("{provider}: the API key was rejected (HTTP {status}): {message}; check the key in the environment")]
    KeyRejected {
        provider: String,
        status: u16,
        message: String,
    },
    /// A quota that no retry today can restore (a daily quota), named as the provider names it.
    #[error("{provider}: quota {quota} exhausted (a daily quota: retrying today cannot succeed): {message}")]
    QuotaExhausted {
        provider: String,
        quota: String,
        message: String,
    },
    /// The account cannot pay for requests (HTTP 402, e.g. Gemini's depleted prepaid credit, or
    /// OpenAI's 429 `insufficient_quota`, a billing limit rather than a rate limit).
    #[error("{provider}: the account cannot pay for more requests (HTTP {status}): {message}; add credit or raise the spending limit with the provider, then run again")]
    BillingExhausted {
        provider: String,
        status: u16,
        message: String,
    },
    /// The server rejects the request's structured-output form (`response_format`): every
    /// request would fail the same way.
    #[error("{provider}: the server rejects this structured-output request (HTTP {status}): {message}; for llama-cpp-python's server use --structured json-object (study: structured = \"json-object\"), else --no-structured (study: structured = \"off\")")]
    FormatRejected {
        provider: String,
        status: u16,
        message: String,
    },
    /// The provider shut the model down (mica's list of retired models, in the price table).
    #[error("{model} was shut down by its provider on {shut_down} ({according_to}); use {replacement} or another current model. If your provider still serves it, remove it from the `retired` list of a price table of your own (--prices FILE)")]
    RetiredModel {
        model: String,
        shut_down: String,
        replacement: String,
        according_to: String,
    },
    /// Every attempt timed out.
    #[error("{provider}: no answer within {timeout_ms} ms, {attempts} attempt(s)")]
    Timeout {
        provider: String,
        timeout_ms: u64,
        attempts: u32,
    },
    /// The server could not be reached (refused, DNS, TLS, broken connection) after all retries.
    #[error("{provider}: cannot reach {url} after {attempts} attempt(s): {reason}")]
    Connection {
        provider: String,
        url: String,
        attempts: u32,
        reason: String,
    },
    /// The server asked to wait longer (Retry-After) than the retry policy allows.
    #[error("{provider}: server asked to retry after {retry_after_s} s, more than the allowed {max_wait_s} s")]
    RetryAfterTooLong {
        provider: String,
        retry_after_s: u64,
        max_wait_s: u64,
    },
    /// A 2xx answer that does not follow the protocol (malformed JSON, no choices, no text).
    #[error("{provider}: malformed response: {reason}")]
    BadResponse { provider: String, reason: String },
    /// The response cache failed.
    #[error("response cache {path}: {reason}")]
    Cache { path: PathBuf, reason: String },
    /// The price table could not be read.
    #[error("price table {path}: {reason}")]
    Prices { path: PathBuf, reason: String },
    /// `--max-cost` would be exceeded by the next request; nothing was sent.
    #[error("cost limit of ${limit_usd:.4} reached: ${spent_usd:.4} spent or committed, the next request may cost up to ${next_usd:.4}")]
    Budget {
        limit_usd: f64,
        spent_usd: f64,
        next_usd: f64,
    },
    /// A batch of the provider's Batch API failed, expired or was cancelled as a whole, or its
    /// protocol broke (a file or batch object that is not as documented).
    #[error("{provider}: batch {batch}: {reason}")]
    Batch {
        provider: String,
        batch: String,
        reason: String,
    },
    /// A prompt template, few-shot file or label file is invalid.
    #[error("{name}: {reason}")]
    Template { name: String, reason: String },
}

impl VlmError {
    /// True for errors that concern one image only, after which a batch goes on. False for
    /// errors every later request would repeat: missing key, bad settings, cost limit, cache or
    /// template failures, 401/403/404, a server still unreachable after all retries, and a
    /// `Retry-After` beyond the policy (an exhausted quota).
    pub fn is_per_image(&self) -> bool {
        !matches!(
            self,
            VlmError::MissingKey { .. }
                | VlmError::KeyRejected { .. }
                | VlmError::QuotaExhausted { .. }
                | VlmError::BillingExhausted { .. }
                | VlmError::FormatRejected { .. }
                | VlmError::RetiredModel { .. }
                | VlmError::Connection { .. }
                | VlmError::RetryAfterTooLong { .. }
                | VlmError::ModelName { .. }
                | VlmError::Config(_)
                | VlmError::Budget { .. }
                | VlmError::Cache { .. }
                | VlmError::Prices { .. }
                | VlmError::Template { .. }
                | VlmError::Batch { .. }
        ) && !matches!(
            self,
            VlmError::Http {
                status: 401 | 403 | 404,
                ..
            }
        )
    }
}
