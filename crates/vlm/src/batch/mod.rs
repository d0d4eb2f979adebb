//! Batch APIs: many requests sent as one file, answered within a day at the provider's batch
//! price (half of every token price at OpenAI and Gemini).
//!
//! - [`BatchApi`]: what a provider's batch protocol offers: submit a set of requests, find a
//!   batch by the tag mica gave it, read its status, read its answers. [`crate::Client`]
//!   implements it for OpenAI ([`openai`]: `/v1/files` + `/v1/batches`) and Gemini ([`gemini`]:
//!   the Files API's resumable upload + `models/{model}:batchGenerateContent` with an input
//!   file, answers in a responses file keyed by request).
//! - [`BatchJournal`]: where the batches of a method are written down *before* and *after*
//!   each step (the study store), so that a killed run never submits the same requests twice:
//!   a batch whose creation may have happened but whose id was never recorded is looked up on
//!   the server by its tag ([`BatchApi::find`]) before anything new is sent.
//! - [`crate::Engine::run_batches`] puts it together: answers go through the same reply parser,
//!   key redaction and response cache as synchronous calls.

pub mod gemini;
pub mod openai;

use crate::error::VlmError;
use crate::model::Provider;
use crate::request::VlmResponse;

/// mica's limits on one batch input file, within both providers' (OpenAI: 50,000 requests and
/// 200 MB; Gemini: 2 GB): 50,000 requests, 190 MB (the file is held in memory to be sent).
pub const MAX_LINES: usize = 50_000;
pub const MAX_BYTES: usize = 190 * 1024 * 1024;

/// One request of a batch: its id in the batch (mica's cache key of the request: OpenAI's
/// `custom_id`, Gemini's `key`) and its line of the JSONL input file, which holds the body a
/// synchronous call would send.
#[derive(Debug, Clone)]
pub struct BatchLine {
    pub custom_id: String,
    pub jsonl: String,
}

/// A submitted batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    pub batch_id: String,
    pub input_file_id: String,
}

/// Where a batch stands.
#[derive(Debug, Clone, PartialEq)]
pub enum BatchStatus {
    /// Not finished (OpenAI: `validating`, `in_progress`, `finalizing`, `cancelling`; Gemini:
    /// `BATCH_STATE_PENDING`, `BATCH_STATE_RUNNING`, or succeeded without its responses file
    /// yet).
    Running {
        status: String,
        completed: u64,
        failed: u64,
        total: u64,
    },
    /// Finished with answers to read (`completed` / `BATCH_STATE_SUCCEEDED`; expired and
    /// cancelled batches keep the answers made before): the files holding them.
    Ended {
        status: String,
        output_file_id: Option<String>,
        error_file_id: Option<String>,
    },
    /// Failed as a whole (`failed` / `BATCH_STATE_FAILED`: the input did not validate), with the
    /// provider's reasons.
    Failed { status: String, reason: String },
}

/// The answer to one line of a batch.
#[derive(Debug)]
pub struct LineResult {
    pub custom_id: String,
    pub result: Result<VlmResponse, VlmError>,
}

/// A provider's batch protocol.
pub trait BatchApi: Send + Sync {
    /// The line for `req`: the body a synchronous call would send, under `custom_id`.
    fn line(&self, custom_id: &str, req: &crate::VlmRequest) -> BatchLine;
    /// Uploads `lines` and creates one batch tagged `tag` (in its metadata).
    ///
    /// # Errors
    /// Any HTTP or protocol error; nothing is known to be created then, which is why callers
    /// look the tag up with [`Self::find`] before submitting again.
    fn submit(&self, lines: &[BatchLine], tag: &str) -> Result<Submitted, VlmError>;
    /// The batch created with `tag`, if the server has one.
    ///
    /// # Errors
    /// Any HTTP or protocol error.
    fn find(&self, tag: &str) -> Result<Option<String>, VlmError>;
    /// The status of batch `batch_id`.
    ///
    /// # Errors
    /// Any HTTP or protocol error.
    fn status(&self, batch_id: &str) -> Result<BatchStatus, VlmError>;
    /// The answers of an ended batch, one per line of its output and error files.
    ///
    /// # Errors
    /// Any HTTP error, or a file that is not JSONL as documented.
    fn results(&self, batch_id: &str, status: &BatchStatus) -> Result<Vec<LineResult>, VlmError>;
}

/// A batch as a [`BatchJournal`] holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry {
    /// mica's tag of the batch (in its metadata on the server).
    pub tag: String,
    /// The provider's id, once known.
    pub batch_id: Option<String>,
}

/// Durable record of one method's batches (mica's study store implements it). Every call must be
/// committed before it returns: the protocol's safety rests on it.
pub trait BatchJournal {
    /// The batches not yet ended, oldest first.
    ///
    /// # Errors
    /// The journal cannot be read.
    fn open(&self) -> Result<Vec<JournalEntry>, String>;
    /// A batch of `requests` lines tagged `tag` is about to be submitted.
    ///
    /// # Errors
    /// The journal cannot be written (then nothing is submitted).
    fn begin(&self, tag: &str, requests: usize) -> Result<(), String>;
    /// The batch tagged `tag` was created as `batch_id` from the file `input_file_id`.
    ///
    /// # Errors
    /// The journal cannot be written.
    fn submitted(&self, tag: &str, submitted: &Submitted) -> Result<(), String>;
    /// The batch tagged `tag` is over: its final `status`, and what became of it.
    ///
    /// # Errors
    /// The journal cannot be written.
    fn ended(&self, tag: &str, status: &str, detail: &str) -> Result<(), String>;
}

impl BatchApi for crate::Client {
    fn line(&self, custom_id: &str, req: &crate::VlmRequest) -> BatchLine {
        match self.spec().provider {
            Provider::Gemini => gemini::line(self, custom_id, req),
            _ => openai::line(self, custom_id, req),
        }
    }

    fn submit(&self, lines: &[BatchLine], tag: &str) -> Result<Submitted, VlmError> {
        match self.spec().provider {
            Provider::Gemini => gemini::submit(self, lines, tag),
            _ => openai::submit(self, lines, tag),
        }
    }

    fn find(&self, tag: &str) -> Result<Option<String>, VlmError> {
        match self.spec().provider {
            Provider::Gemini => gemini::find(self, tag),
            _ => openai::find(self, tag),
        }
    }

    fn status(&self, batch_id: &str) -> Result<BatchStatus, VlmError> {
        match self.spec().provider {
            Provider::Gemini => gemini::status(self, batch_id),
            _ => openai::status(self, batch_id),
        }
    }

    fn results(&self, batch_id: &str, status: &BatchStatus) -> Result<Vec<LineResult>, VlmError> {
        match self.spec().provider {
            Provider::Gemini => gemini::results(self, batch_id, status),
            _ => openai::results(self, batch_id, status),
        }
    }
}

/// The answers of results file `file` of batch `batch_id` (its JSONL `text`): each non-empty
/// line is JSON holding the request's id in `id_field` and read by `answer`.
///
/// # Errors
/// [`VlmError::Batch`] naming the file and line that is not JSON or has no id.
pub(crate) fn read_result_lines(
    c: &crate::Client,
    batch_id: &str,
    file: &str,
    text: &str,
    id_field: &str,
    answer: impl Fn(&serde_json::Value) -> Result<VlmResponse, VlmError>,
) -> Result<Vec<LineResult>, VlmError> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(line).map_err(|e| {
            c.protocol(
                batch_id,
                format!("file {file} line {}: not JSON: {e}", n + 1),
            )
        })?;
        let custom_id = v[id_field]
            .as_str()
            .ok_or_else(|| {
                c.protocol(
                    batch_id,
                    format!("file {file} line {}: no `{id_field}`", n + 1),
                )
            })?
            .to_string();
        out.push(LineResult {
            custom_id,
            result: answer(&v),
        });
    }
    Ok(out)
}

impl crate::Client {
    pub(crate) fn auth_headers(&self) -> Vec<(&'static str, String)> {
        // The same headers as a synchronous call (`wire` of an empty request).
        let (_, headers, _) = self.wire(&crate::VlmRequest::single("", vec![]));
        headers
    }

    pub(crate) fn protocol(&self, batch: &str, reason: impl std::fmt::Display) -> VlmError {
        VlmError::Batch {
            provider: self.spec().provider.as_str().to_string(),
            batch: if batch.is_empty() {
                "(not created)".into()
            } else {
                batch.to_string()
            },
            reason: reason.to_string(),
        }
    }
}
