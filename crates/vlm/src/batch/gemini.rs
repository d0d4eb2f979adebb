//! Gemini's Batch Mode with an input file (the form whose answers can be matched to their
//! requests: every line of the responses file carries the request's `key`; inline batches do not
//! reliably, see below):
//!
//! 1. the JSONL file (`{"key", "request": GenerateContentRequest}` per line) goes up through the
//!    Files API's resumable upload: `POST {root}/upload/v1beta/files` with
//!    `X-Goog-Upload-Protocol: resumable`, `X-Goog-Upload-Command: start` and the size and type
//!    in `X-Goog-Upload-Header-Content-*`; the answer's `x-goog-upload-url` header says where the
//!    bytes go, with `X-Goog-Upload-Command: upload, finalize` and `X-Goog-Upload-Offset: 0`;
//!    the final answer is `{"file": {"name": "files/…"}}`;
//! 2. the batch is `POST {base}/models/{model}:batchGenerateContent` with
//!    `{"batch": {"displayName": tag, "inputConfig": {"fileName"}}}`: a long-running operation
//!    `{"name": "batches/…", "metadata": {"state": "BATCH_STATE_…", "batchStats", "output":
//!    {"responsesFile"}}, "done", "response", "error"}`;
//! 3. `GET {base}/batches/…` is polled; `GET {base}/batches?pageSize&pageToken` lists
//!    (`{"operations", "nextPageToken"}`), which is how a batch is found by its display name;
//! 4. the answers are `GET {base}/{responsesFile}:download?alt=media`, one line per request:
//!    `{"key", "response": GenerateContentResponse}` or `{"key", "error"|"status": {code, message}}`.
//!
//! Shapes as the official `google-genai` SDK speaks them (`files.upload`, `batches.create` with
//! `src=file_name`, `batches.get`/`list`, `files.download`; `crates/vlm/tests/batch_gemini.rs`
//! drives the test server with the SDK and compares what it sent with what mica sends) and as a
//! live batch recorded by ellmer's tests (`tests/testthat/batch/state-capitals-gemini.json`).
//! Two findings from ellmer's live runs (tidyverse/ellmer `R/provider-google.R`) are followed:
//! the batch file's parser takes protobuf field names (snake_case) where the synchronous REST API
//! also takes camelCase, and the state can read `BATCH_STATE_SUCCEEDED` before the responses file
//! is named (then mica keeps polling). Inline batches are not used: their responses have been
//! reported out of order (googleapis/python-genai#1909) and without the request's metadata
//! (#1886, #2008, js-genai#1191).

use super::{BatchLine, BatchStatus, LineResult, Submitted};
use crate::error::VlmError;
use crate::transport::HttpRequest;
use crate::Client;
use serde_json::{json, Map, Value};

/// The line of `req` under `key`: the synchronous body with protobuf (snake_case) field names.
pub(super) fn line(c: &Client, key: &str, req: &crate::VlmRequest) -> BatchLine {
    let (_, _, body) = c.wire(req);
    BatchLine {
        custom_id: key.to_string(),
        jsonl: json!({"key": key, "request": proto_names(&body)}).to_string(),
    }
}

/// `body` with every field name in snake_case, except the property names of a schema's
/// `properties` (the caller's names, kept as they are).
pub fn proto_names(body: &Value) -> Value {
    fn walk(v: &Value, names_are_data: bool) -> Value {
        match v {
            Value::Object(m) => {
                let mut out = Map::new();
                for (k, v) in m {
                    let name = if names_are_data { k.clone() } else { snake(k) };
                    out.insert(name, walk(v, !names_are_data && k == "properties"));
                }
                Value::Object(out)
            }
            Value::Array(a) => Value::Array(a.iter().map(|x| walk(x, false)).collect()),
            other => other.clone(),
        }
    }
    walk(body, false)
}

fn snake(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for ch in name.chars() {
        if ch.is_ascii_uppercase() {
            out.push('_');
            out.push(ch.to_ascii_lowercase());
        } else {
            out.push(ch);
        }
    }
    out
}

/// `{scheme}://{host}` of `url`.
fn origin(url: &str) -> &str {
    let after = url.find("://").map_or(0, |i| i + 3);
    match url[after..].find('/') {
        Some(i) => &url[..after + i],
        None => url,
    }
}

/// The upload endpoint for base URL `base` (`…/v1beta` → `…/upload/v1beta/files`).
fn upload_endpoint(base: &str) -> String {
    let base = base.trim_end_matches('/');
    match base.rsplit_once('/') {
        Some((root, version)) if version.starts_with('v') => {
            format!("{root}/upload/{version}/files")
        }
        _ => format!("{base}/upload/v1beta/files"),
    }
}

/// `upload_url` sent to `base`'s scheme and host: the key goes nowhere but the configured
/// server (the SDK rewrites the upload URL the same way when a base URL is set).
fn same_origin(upload_url: &str, base: &str) -> String {
    format!(
        "{}{}",
        origin(base),
        &upload_url[origin(upload_url).len()..]
    )
}

pub(super) fn submit(c: &Client, lines: &[BatchLine], tag: &str) -> Result<Submitted, VlmError> {
    let mut jsonl = String::new();
    for l in lines {
        jsonl.push_str(&l.jsonl);
        jsonl.push('\n');
    }
    let base = c.base_url().trim_end_matches('/');
    let mut headers = c.auth_headers();
    headers.extend([
        ("X-Goog-Upload-Protocol", "resumable".to_string()),
        ("X-Goog-Upload-Command", "start".to_string()),
        (
            "X-Goog-Upload-Header-Content-Length",
            jsonl.len().to_string(),
        ),
        (
            "X-Goog-Upload-Header-Content-Type",
            "application/jsonl".to_string(),
        ),
    ]);
    // Field names as the SDK writes them here (protobuf's; the API takes camelCase too).
    let start =
        json!({"file": {"display_name": format!("{tag}.jsonl"), "mime_type": "application/jsonl"}})
            .to_string();
    let started = c.transport.send(
        HttpRequest::Post {
            content_type: "application/json",
            body: start.as_bytes(),
        },
        &upload_endpoint(base),
        &headers,
    )?;
    let upload_url = started
        .header("x-goog-upload-url")
        .ok_or_else(|| c.protocol("", "the upload start answered without `x-goog-upload-url`"))?;
    // The upload URL's `upload_id` authorizes the bytes: the key is not sent again (as the SDK
    // does not).
    let headers = [
        ("X-Goog-Upload-Command", "upload, finalize".to_string()),
        ("X-Goog-Upload-Offset", "0".to_string()),
    ];
    let uploaded = c.transport.send(
        HttpRequest::Post {
            content_type: "application/jsonl",
            body: jsonl.as_bytes(),
        },
        &same_origin(upload_url, base),
        &headers,
    )?;
    if uploaded.header("x-goog-upload-status") != Some("final") {
        return Err(c.protocol(
            "",
            format!(
                "the upload ended with status {:?}, not \"final\"",
                uploaded.header("x-goog-upload-status")
            ),
        ));
    }
    let file: Value = serde_json::from_str(&uploaded.text).map_err(|e| c.protocol("", e))?;
    let file_name = file["file"]["name"]
        .as_str()
        .ok_or_else(|| c.protocol("", "the uploaded file has no `file.name`"))?
        .to_string();
    let model = c
        .spec()
        .model
        .strip_prefix("models/")
        .unwrap_or(&c.spec().model);
    let create = json!({"batch": {"displayName": tag, "inputConfig": {"fileName": file_name}}});
    let op = c.transport.send_json(
        &format!("{base}/models/{model}:batchGenerateContent"),
        &c.auth_headers(),
        &create,
    )?;
    let batch_id = op.body["name"]
        .as_str()
        .ok_or_else(|| c.protocol("", "the created batch operation has no `name`"))?
        .to_string();
    Ok(Submitted {
        batch_id,
        input_file_id: file_name,
    })
}

pub(super) fn find(c: &Client, tag: &str) -> Result<Option<String>, VlmError> {
    let base = c.base_url().trim_end_matches('/');
    let mut token: Option<String> = None;
    // 100 per page; a tag is looked for among the last 2,000 batches.
    for _ in 0..20 {
        let url = match &token {
            Some(t) => format!("{base}/batches?pageSize=100&pageToken={}", query_value(t)),
            None => format!("{base}/batches?pageSize=100"),
        };
        let page = c.transport.get_json(&url, &c.auth_headers())?.body;
        let ops = page["operations"].as_array().map_or(&[][..], Vec::as_slice);
        if let Some(op) = ops.iter().find(|o| o["metadata"]["displayName"] == tag) {
            return Ok(op["name"].as_str().map(str::to_string));
        }
        match page["nextPageToken"].as_str() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => return Ok(None),
        }
    }
    Ok(None)
}

/// `v` percent-encoded for a query string (a page token may hold `+`, `/` or `=`).
fn query_value(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A count of `batchStats` (int64 fields, which protobuf's JSON writes as strings).
fn stat(stats: &Value, name: &str) -> u64 {
    match &stats[name] {
        Value::String(s) => s.parse().unwrap_or(0),
        v => v.as_u64().unwrap_or(0),
    }
}

pub(super) fn status(c: &Client, batch_id: &str) -> Result<BatchStatus, VlmError> {
    let base = c.base_url().trim_end_matches('/');
    let op = c
        .transport
        .get_json(&format!("{base}/{batch_id}"), &c.auth_headers())?
        .body;
    read_status(c, batch_id, &op)
}

/// The status of operation `op` (what `batches.get` answers).
pub(super) fn read_status(c: &Client, batch_id: &str, op: &Value) -> Result<BatchStatus, VlmError> {
    let meta = &op["metadata"];
    let state = meta["state"]
        .as_str()
        .ok_or_else(|| c.protocol(batch_id, "the batch operation has no `metadata.state`"))?
        .to_string();
    let stats = &meta["batchStats"];
    let file = meta["output"]["responsesFile"]
        .as_str()
        .or_else(|| op["response"]["responsesFile"].as_str())
        .filter(|f| !f.is_empty())
        .map(str::to_string);
    let running = |status: String| BatchStatus::Running {
        status,
        completed: stat(stats, "successfulRequestCount"),
        failed: stat(stats, "failedRequestCount"),
        total: stat(stats, "requestCount"),
    };
    Ok(match state.as_str() {
        "BATCH_STATE_PENDING" | "BATCH_STATE_RUNNING" | "BATCH_STATE_UNSPECIFIED" => running(state),
        "BATCH_STATE_SUCCEEDED" if file.is_none() => {
            running(format!("{state} (its responses file is not named yet)"))
        }
        "BATCH_STATE_SUCCEEDED" | "BATCH_STATE_CANCELLED" | "BATCH_STATE_EXPIRED" => {
            BatchStatus::Ended {
                status: state,
                output_file_id: file,
                error_file_id: None,
            }
        }
        "BATCH_STATE_FAILED" => BatchStatus::Failed {
            status: state,
            reason: match op["error"]["message"].as_str() {
                Some(m) => format!(
                    "{m} ({})",
                    op["error"]["status"]
                        .as_str()
                        .map_or_else(|| op["error"]["code"].to_string(), str::to_string)
                ),
                None => "the provider gave no reason".into(),
            },
        },
        other => {
            return Err(c.protocol(batch_id, format!("unknown batch state {other:?}")));
        }
    })
}

pub(super) fn results(
    c: &Client,
    batch_id: &str,
    status: &BatchStatus,
) -> Result<Vec<LineResult>, VlmError> {
    let BatchStatus::Ended {
        output_file_id: Some(file),
        ..
    } = status
    else {
        return Ok(Vec::new());
    };
    let base = c.base_url().trim_end_matches('/');
    let text = c
        .transport
        .send(
            HttpRequest::Get,
            &format!("{base}/{file}:download?alt=media"),
            &c.auth_headers(),
        )?
        .text;
    super::read_result_lines(c, batch_id, file, &text, "key", |v| line_answer(c, v))
}

/// The answer of one line of the responses file, read as a synchronous reply would be.
fn line_answer(c: &Client, v: &Value) -> Result<crate::request::VlmResponse, VlmError> {
    let provider = c.spec().provider.as_str().to_string();
    let failure = v.get("error").or_else(|| v.get("status"));
    if let Some(e) = failure.filter(|e| e.is_object()) {
        let code = e["code"].as_u64().unwrap_or(0) as u16;
        let message = format!(
            "batch line failed: {} ({})",
            e["message"].as_str().unwrap_or("no message"),
            e["status"].as_str().unwrap_or("no status")
        );
        return Err(if code >= 400 {
            VlmError::Http {
                provider,
                status: code,
                attempts: 1,
                message,
            }
        } else {
            VlmError::BadResponse {
                provider,
                reason: message,
            }
        });
    }
    if !v["response"].is_object() {
        return Err(VlmError::BadResponse {
            provider,
            reason: "batch line has neither `response` nor `error`".into(),
        });
    }
    c.read_reply(&crate::transport::JsonReply {
        body: v["response"].clone(),
        latency_ms: 0,
        attempts: 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_become_snake_case_but_schema_property_names_do_not() {
        let body = json!({"systemInstruction": {"parts": [{"text": "x"}]},
            "contents": [{"role": "user", "parts": [{"inline_data": {"mime_type": "image/png", "data": "AA"}}]}],
            "generationConfig": {"maxOutputTokens": 10, "responseMimeType": "application/json",
                "responseSchema": {"type": "OBJECT", "properties": {"cellCount": {"type": "INTEGER"}},
                    "propertyOrdering": ["cellCount"], "required": ["cellCount"]}}});
        let p = proto_names(&body);
        assert_eq!(p["system_instruction"]["parts"][0]["text"], "x");
        assert_eq!(
            p["contents"][0]["parts"][0]["inline_data"]["mime_type"],
            "image/png"
        );
        let g = &p["generation_config"];
        assert_eq!(g["max_output_tokens"], 10);
        assert_eq!(g["response_mime_type"], "application/json");
        let s = &g["response_schema"];
        assert_eq!(s["properties"]["cellCount"]["type"], "INTEGER");
        assert_eq!(s["property_ordering"][0], "cellCount");
        assert_eq!(s["required"][0], "cellCount");
    }

    #[test]
    fn page_tokens_are_percent_encoded() {
        assert_eq!(query_value("Ab+/9=_-"), "Ab%2B%2F9%3D_-");
    }

    #[test]
    fn upload_goes_to_the_upload_path_of_the_base_and_stays_on_its_host() {
        assert_eq!(
            upload_endpoint("https://generativelanguage.googleapis.com/v1beta"),
            "https://generativelanguage.googleapis.com/upload/v1beta/files"
        );
        assert_eq!(
            upload_endpoint("http://127.0.0.1:9/v1beta/"),
            "http://127.0.0.1:9/upload/v1beta/files"
        );
        assert_eq!(
            same_origin(
                "https://elsewhere.example/upload/v1beta/files?upload_id=A&upload_protocol=resumable",
                "http://127.0.0.1:9/v1beta"
            ),
            "http://127.0.0.1:9/upload/v1beta/files?upload_id=A&upload_protocol=resumable"
        );
    }
}
