//! OpenAI's Batch API: the JSONL file goes to `POST {base}/files` (`purpose=batch`), the batch
//! is `POST {base}/batches` on `/v1/chat/completions` with a 24 h window and the tag in its
//! `metadata`; `GET {base}/batches/{id}` is polled and the answers are
//! `GET {base}/files/{output_file_id}/content` (shapes as in OpenAI's OpenAPI spec,
//! `CreateBatchRequest`, `Batch`, `OpenAIFile`, and the batch guide's request/output lines).

use super::{BatchLine, BatchStatus, LineResult, Submitted};
use crate::error::VlmError;
use crate::request::VlmResponse;
use crate::Client;
use serde_json::{json, Value};

/// The endpoint every batch line is sent to.
pub const CHAT_COMPLETIONS: &str = "/v1/chat/completions";
/// OpenAI's limits on one batch input file: 50,000 requests, 200 MB.
pub const MAX_LINES: usize = 50_000;
pub const MAX_BYTES: usize = 190 * 1024 * 1024;

pub(super) fn line(c: &Client, custom_id: &str, req: &crate::VlmRequest) -> BatchLine {
    let (_, _, body) = c.wire(req);
    // `{"custom_id", "method": "POST", "url", "body"}`, the batch guide's request line.
    BatchLine {
        custom_id: custom_id.to_string(),
        jsonl:
            json!({"custom_id": custom_id, "method": "POST", "url": CHAT_COMPLETIONS, "body": body})
                .to_string(),
    }
}

pub(super) fn submit(c: &Client, lines: &[BatchLine], tag: &str) -> Result<Submitted, VlmError> {
    let mut jsonl = String::new();
    for l in lines {
        jsonl.push_str(&l.jsonl);
        jsonl.push('\n');
    }
    let (body, content_type) = multipart_file(jsonl.as_bytes(), "mica-batch.jsonl");
    let base = c.base_url().trim_end_matches('/');
    let headers = c.auth_headers();
    let file = c.transport.send(
        crate::transport::HttpRequest::Post {
            content_type: &content_type,
            body: &body,
        },
        &format!("{base}/files"),
        &headers,
    )?;
    let file: Value = serde_json::from_str(&file.text).map_err(|e| c.protocol("", e))?;
    let input_file_id = file["id"]
        .as_str()
        .ok_or_else(|| c.protocol("", "the uploaded file object has no `id`"))?
        .to_string();
    let create = json!({
        "input_file_id": input_file_id,
        "endpoint": CHAT_COMPLETIONS,
        "completion_window": "24h",
        "metadata": {"mica_tag": tag},
    });
    let batch = c
        .transport
        .send_json(&format!("{base}/batches"), &headers, &create)?;
    let batch_id = batch.body["id"]
        .as_str()
        .ok_or_else(|| c.protocol("", "the created batch object has no `id`"))?
        .to_string();
    Ok(Submitted {
        batch_id,
        input_file_id,
    })
}

pub(super) fn find(c: &Client, tag: &str) -> Result<Option<String>, VlmError> {
    let base = c.base_url().trim_end_matches('/');
    let headers = c.auth_headers();
    let mut after: Option<String> = None;
    // Newest first, 100 per page; a tag is looked for among the last 2,000 batches.
    for _ in 0..20 {
        let url = match &after {
            Some(a) => format!("{base}/batches?limit=100&after={a}"),
            None => format!("{base}/batches?limit=100"),
        };
        let page = c.transport.get_json(&url, &headers)?.body;
        let data = page["data"]
            .as_array()
            .ok_or_else(|| c.protocol("", "the batch list has no `data` array"))?;
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

pub(super) fn status(c: &Client, batch_id: &str) -> Result<BatchStatus, VlmError> {
    let base = c.base_url().trim_end_matches('/');
    let b = c
        .transport
        .get_json(&format!("{base}/batches/{batch_id}"), &c.auth_headers())?
        .body;
    let status = b["status"]
        .as_str()
        .ok_or_else(|| c.protocol(batch_id, "the batch object has no `status`"))?
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
            return Err(c.protocol(batch_id, format!("unknown batch status {other:?}")));
        }
    })
}

pub(super) fn results(
    c: &Client,
    batch_id: &str,
    status: &BatchStatus,
) -> Result<Vec<LineResult>, VlmError> {
    let BatchStatus::Ended {
        output_file_id,
        error_file_id,
        ..
    } = status
    else {
        return Ok(Vec::new());
    };
    let base = c.base_url().trim_end_matches('/');
    let mut out = Vec::new();
    for id in [output_file_id, error_file_id].into_iter().flatten() {
        let text = c
            .transport
            .send(
                crate::transport::HttpRequest::Get,
                &format!("{base}/files/{id}/content"),
                &c.auth_headers(),
            )?
            .text;
        out.extend(super::read_result_lines(
            c,
            batch_id,
            id,
            &text,
            "custom_id",
            |v| line_answer(c, v),
        )?);
    }
    Ok(out)
}

/// The answer of one output line (`{"custom_id", "response": {"status_code", "body"},
/// "error"}`), read as a synchronous reply with that status would be.
fn line_answer(c: &Client, v: &Value) -> Result<VlmResponse, VlmError> {
    let provider = c.spec().provider.as_str().to_string();
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
    c.read_reply(&crate::transport::JsonReply {
        body: r["body"].clone(),
        latency_ms: 0,
        attempts: 1,
    })
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
