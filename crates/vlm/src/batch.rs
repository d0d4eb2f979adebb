//! Batch APIs: many requests sent as one file, answered within a day at the provider's batch
//! price (OpenAI: half of every token price).
//!
//! - [`BatchApi`]: what a provider's batch protocol offers: submit a set of requests, find a
//!   batch by the tag mica gave it, read its status, read its answers. [`crate::Client`]
//!   implements it for OpenAI: the JSONL file goes to `POST {base}/files` (`purpose=batch`),
//!   the batch is `POST {base}/batches` on `/v1/chat/completions` with a 24 h window and the
//!   tag in its `metadata`; `GET {base}/batches/{id}` is polled and the answers are
//!   `GET {base}/files/{output_file_id}/content` (shapes as in OpenAI's OpenAPI spec,
//!   `CreateBatchRequest`, `Batch`, `OpenAIFile`, and the batch guide's request/output lines).
//! - [`BatchJournal`]: where the batches of a method are written down *before* and *after*
//!   each step (the study store), so that a killed run never submits the same requests twice:
//!   a batch whose creation may have happened but whose id was never recorded is looked up on
//!   the server by its tag ([`BatchApi::find`]) before anything new is sent.
//! - [`crate::Engine::run_batches`] puts it together: answers go through the same reply parser,
//!   key redaction and response cache as synchronous calls.

use crate::error::VlmError;
use crate::request::VlmResponse;
use serde_json::{json, Value};

/// The endpoint every batch line is sent to.
pub const CHAT_COMPLETIONS: &str = "/v1/chat/completions";
/// OpenAI's limits on one batch input file: 50,000 requests, 200 MB.
pub const MAX_LINES: usize = 50_000;
pub const MAX_BYTES: usize = 190 * 1024 * 1024;

/// One request of a batch: its `custom_id` (mica's cache key of the request) and the body a
/// synchronous call would send.
#[derive(Debug, Clone)]
pub struct BatchLine {
    pub custom_id: String,
    pub body: Value,
}

impl BatchLine {
    /// The line of the JSONL input file (`{"custom_id", "method": "POST", "url", "body"}`).
    pub fn jsonl(&self) -> String {
        json!({"custom_id": self.custom_id, "method": "POST", "url": CHAT_COMPLETIONS, "body": self.body})
            .to_string()
    }
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
    /// Not finished (`validating`, `in_progress`, `finalizing`, `cancelling`).
    Running {
        status: String,
        completed: u64,
        failed: u64,
        total: u64,
    },
    /// Finished with answers to read (`completed`; `expired` and `cancelled` keep the answers
    /// made before): the files holding them.
    Ended {
        status: String,
        output_file_id: Option<String>,
        error_file_id: Option<String>,
    },
    /// Failed as a whole (`failed`: the input did not validate), with the provider's reasons.
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
        let (_, _, body) = self.wire(req);
        BatchLine {
            custom_id: custom_id.to_string(),
            body,
        }
    }

    fn submit(&self, lines: &[BatchLine], tag: &str) -> Result<Submitted, VlmError> {
        let mut jsonl = String::new();
        for l in lines {
            jsonl.push_str(&l.jsonl());
            jsonl.push('\n');
        }
        let (body, content_type) = multipart_file(jsonl.as_bytes(), "mica-batch.jsonl");
        let base = self.base_url().trim_end_matches('/');
        let headers = self.auth_headers();
        let file = self.transport.send(
            crate::transport::HttpRequest::Post {
                content_type: &content_type,
                body: &body,
            },
            &format!("{base}/files"),
            &headers,
        )?;
        let file: Value = serde_json::from_str(&file.text).map_err(|e| self.protocol("", e))?;
        let input_file_id = file["id"]
            .as_str()
            .ok_or_else(|| self.protocol("", "the uploaded file object has no `id`"))?
            .to_string();
        let create = json!({
            "input_file_id": input_file_id,
            "endpoint": CHAT_COMPLETIONS,
            "completion_window": "24h",
            "metadata": {"mica_tag": tag},
        });
        let batch = self
            .transport
            .post_json(&format!("{base}/batches"), &headers, &create)?;
        let batch_id = batch.body["id"]
            .as_str()
            .ok_or_else(|| self.protocol("", "the created batch object has no `id`"))?
            .to_string();
        Ok(Submitted {
            batch_id,
            input_file_id,
        })
    }

    fn find(&self, tag: &str) -> Result<Option<String>, VlmError> {
        let base = self.base_url().trim_end_matches('/');
        let headers = self.auth_headers();
        let mut after: Option<String> = None;
        // Newest first, 100 per page; a tag is looked for among the last 2,000 batches.
        for _ in 0..20 {
            let url = match &after {
                Some(a) => format!("{base}/batches?limit=100&after={a}"),
                None => format!("{base}/batches?limit=100"),
            };
            let page = self.transport.get_json(&url, &headers)?.body;
            let data = page["data"]
                .as_array()
                .ok_or_else(|| self.protocol("", "the batch list has no `data` array"))?;
            if let Some(b) = data.iter().find(|b| b["metadata"]["mica_tag"] == tag) {
                return Ok(b["id"].as_str().map(str::to_string));
            }
            match (
                page["has_more"].as_bool(),
                data.last().and_then(|b| b["id"].as_str()),
            ) {
                (Some(true), Some(last)) => after = Some(last.to_string()),
                _ => return Ok(None),
            }
        }
        Ok(None)
    }

    fn status(&self, batch_id: &str) -> Result<BatchStatus, VlmError> {
        let base = self.base_url().trim_end_matches('/');
        let b = self
            .transport
            .get_json(&format!("{base}/batches/{batch_id}"), &self.auth_headers())?
            .body;
        let status = b["status"]
            .as_str()
            .ok_or_else(|| self.protocol(batch_id, "the batch object has no `status`"))?
            .to_string();
        let file = |k: &str| b[k].as_str().map(str::to_string);
        let counts = &b["request_counts"];
        Ok(match status.as_str() {
            "validating" | "in_progress" | "finalizing" | "cancelling" => BatchStatus::Running {
                completed: counts["completed"].as_u64().unwrap_or(0),
                failed: counts["failed"].as_u64().unwrap_or(0),
                total: counts["total"].as_u64().unwrap_or(0),
                status,
            },
            "completed" | "expired" | "cancelled" => BatchStatus::Ended {
                status,
                output_file_id: file("output_file_id"),
                error_file_id: file("error_file_id"),
            },
            "failed" => {
                let reasons: Vec<String> = b["errors"]["data"]
                    .as_array()
                    .map(|errs| {
                        errs.iter()
                            .map(|e| {
                                let line = e["line"]
                                    .as_u64()
                                    .map(|l| format!("line {l}: "))
                                    .unwrap_or_default();
                                format!(
                                    "{line}{} ({})",
                                    e["message"].as_str().unwrap_or("no message"),
                                    e["code"].as_str().unwrap_or("no code")
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                BatchStatus::Failed {
                    status,
                    reason: if reasons.is_empty() {
                        "the provider gave no reason".into()
                    } else {
                        reasons.join("; ")
                    },
                }
            }
            other => {
                return Err(self.protocol(batch_id, format!("unknown batch status {other:?}")));
            }
        })
    }

    fn results(&self, batch_id: &str, status: &BatchStatus) -> Result<Vec<LineResult>, VlmError> {
        let BatchStatus::Ended {
            output_file_id,
            error_file_id,
            ..
        } = status
        else {
            return Ok(Vec::new());
        };
        let base = self.base_url().trim_end_matches('/');
        let mut out = Vec::new();
        for id in [output_file_id, error_file_id].into_iter().flatten() {
            let text = self
                .transport
                .send(
                    crate::transport::HttpRequest::Get,
                    &format!("{base}/files/{id}/content"),
                    &self.auth_headers(),
                )?
                .text;
            for (n, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let v: Value = serde_json::from_str(line).map_err(|e| {
                    self.protocol(batch_id, format!("file {id} line {}: not JSON: {e}", n + 1))
                })?;
                let custom_id = v["custom_id"]
                    .as_str()
                    .ok_or_else(|| {
                        self.protocol(batch_id, format!("file {id} line {}: no custom_id", n + 1))
                    })?
                    .to_string();
                out.push(LineResult {
                    custom_id,
                    result: self.line_answer(&v),
                });
            }
        }
        Ok(out)
    }
}

impl crate::Client {
    fn auth_headers(&self) -> Vec<(&'static str, String)> {
        // The same headers as a synchronous call (`wire` of an empty request).
        let (_, headers, _) = self.wire(&crate::VlmRequest::single("", vec![]));
        headers
    }

    fn protocol(&self, batch: &str, reason: impl std::fmt::Display) -> VlmError {
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

    /// The answer of one output line (`{"custom_id", "response": {"status_code", "body"},
    /// "error"}`), read as a synchronous reply with that status would be.
    fn line_answer(&self, v: &Value) -> Result<VlmResponse, VlmError> {
        let provider = self.spec().provider.as_str().to_string();
        if let Some(e) = v["error"].as_object() {
            return Err(VlmError::BadResponse {
                provider,
                reason: format!(
                    "batch line failed: {} ({})",
                    e.get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("no message"),
                    e.get("code").and_then(Value::as_str).unwrap_or("no code")
                ),
            });
        }
        let r = &v["response"];
        let status = r["status_code"].as_u64().unwrap_or(0) as u16;
        if status != 200 {
            return Err(VlmError::Http {
                provider,
                status,
                attempts: 1,
                message: crate::transport::error_message(&r["body"].to_string()),
            });
        }
        self.read_reply(&crate::transport::JsonReply {
            body: r["body"].clone(),
            latency_ms: 0,
            attempts: 1,
        })
    }
}

/// A `multipart/form-data` body with `purpose=batch` and `file` (the JSONL), and its content
/// type.
fn multipart_file(bytes: &[u8], filename: &str) -> (Vec<u8>, String) {
    // A boundary that does not occur in the file (base64 and JSON never hold this many dashes
    // followed by the counter, but it is checked).
    let mut n = 0u64;
    let boundary = loop {
        let b = format!("mica-batch-boundary-{n:016x}");
        if !bytes.windows(b.len()).any(|w| w == b.as_bytes()) {
            break b;
        }
        n += 1;
    };
    let mut body = Vec::with_capacity(bytes.len() + 512);
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: application/jsonl\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (body, format!("multipart/form-data; boundary={boundary}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_body_holds_the_purpose_and_the_file() {
        let (body, ct) = multipart_file(b"{\"a\":1}\n", "x.jsonl");
        let boundary = ct.strip_prefix("multipart/form-data; boundary=").unwrap();
        let text = String::from_utf8(body).unwrap();
        assert!(text.starts_with(&format!("--{boundary}\r\n")));
        assert!(text.contains("name=\"purpose\"\r\n\r\nbatch\r\n"));
        assert!(text.contains(
            "filename=\"x.jsonl\"\r\nContent-Type: application/jsonl\r\n\r\n{\"a\":1}\n\r\n"
        ));
        assert!(text.ends_with(&format!("--{boundary}--\r\n")));
    }
}
