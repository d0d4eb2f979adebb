//! The VLM tests' helpers around the workspace's test server (`mica_testkit`): providers'
//! reply shapes, the oracle Python, and the Batch API servers. No test touches the internet.
#![allow(dead_code)]

pub use mica_testkit::{MockServer, Recorded, Reply, Script};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// An OpenAI Chat Completions response with `content`, as the API returns it.
pub fn openai_ok(content: &str) -> serde_json::Value {
    serde_json::json!({
        "id": "chatcmpl-abc123",
        "object": "chat.completion",
        "created": 1_735_000_000,
        "model": "gpt-4o-2024-08-06",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content, "refusal": null},
            "logprobs": null,
            "finish_reason": "stop"
        }],
        "usage": {"prompt_tokens": 812, "completion_tokens": 9, "total_tokens": 821},
        "system_fingerprint": "fp_test"
    })
}

/// A Gemini generateContent response with `text`.
pub fn gemini_ok(text: &str) -> serde_json::Value {
    serde_json::json!({
        "candidates": [{
            "content": {"parts": [{"text": text}], "role": "model"},
            "finishReason": "STOP",
            "avgLogprobs": -0.01
        }],
        "usageMetadata": {"promptTokenCount": 540, "candidatesTokenCount": 7, "totalTokenCount": 547},
        "modelVersion": "gemini-3.5-flash"
    })
}

/// An Ollama /api/chat response with `content`.
pub fn ollama_ok(content: &str) -> serde_json::Value {
    serde_json::json!({
        "model": "llava:13b",
        "created_at": "2026-11-28T01:00:00Z",
        "message": {"role": "assistant", "content": content},
        "done_reason": "stop",
        "done": true,
        "total_duration": 4_000_000_000u64,
        "load_duration": 1_000_000u64,
        "prompt_eval_count": 601,
        "prompt_eval_duration": 100_000_000u64,
        "eval_count": 6,
        "eval_duration": 200_000_000u64
    })
}

/// A Python that can `import` every module of `modules` (e.g. `"openai, google.genai"`), for the
/// oracle tests that run the providers' official SDKs: `MICA_ORACLE_PYTHON`, else
/// `target/oracle-venv/bin/python` (made by `.ci/run`), else `python3`. `None` when it cannot:
/// the test then says SKIPPED, except under `MICA_REQUIRE_ORACLES=1` (set by `.ci/run`), where
/// this panics.
pub fn oracle_python(modules: &str) -> Option<std::path::PathBuf> {
    let py = std::env::var_os("MICA_ORACLE_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            let venv = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../target/oracle-venv/bin/python");
            if venv.exists() {
                venv
            } else {
                "python3".into()
            }
        });
    let ok = std::process::Command::new(&py)
        .args(["-c", &format!("import {modules}")])
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return Some(py);
    }
    let msg = format!(
        "`import {modules}` fails with {}: install the SDKs with \
         `python3 -m venv target/oracle-venv && target/oracle-venv/bin/pip install -r scripts/oracle-requirements.txt`",
        py.display()
    );
    if std::env::var("MICA_REQUIRE_ORACLES").as_deref() == Ok("1") {
        panic!("{msg}");
    }
    eprintln!("SKIPPED: {msg}");
    None
}

/// What a [`BatchServer`] holds and how it behaves; tests change the switches while it runs.
#[derive(Debug, Default)]
pub struct BatchState {
    /// Uploaded files: id, purpose, filename, content.
    pub files: Vec<(String, String, String, Vec<u8>)>,
    /// Batch objects, oldest first.
    pub batches: Vec<serde_json::Value>,
    /// Block `POST /files` (after storing the file) while set.
    pub hold_upload: bool,
    /// Block `POST /batches` (after creating the batch) while set.
    pub hold_create: bool,
    /// Batches complete at their next status request while set (else they stay in progress).
    pub complete: bool,
    /// Batches fail validation at their next status request while set (`status: failed`, with
    /// the error of line 1 as OpenAI reports it).
    pub fail_validation: bool,
    /// Status requests so far.
    pub polls: usize,
    /// Lines (0-based, in input order) answered with an HTTP 400 in the error file.
    pub fail_lines: Vec<usize>,
    /// A line whose answer quotes the caller's `Authorization` header.
    pub echo_key_line: Option<usize>,
    /// Every request body mica sent and every JSON answer given, by what it is
    /// (`CreateBatchRequest`, `Batch`, `OpenAIFile`, `ListBatchesResponse`, `BatchRequestInput`):
    /// for validation against OpenAI's OpenAPI schemas.
    pub exchanged: Vec<(&'static str, serde_json::Value)>,
    /// The count each answered line gave, by custom_id.
    pub answered: Vec<(String, u64)>,
}

impl BatchState {
    /// The content of uploaded file `name` (empty when there is none).
    fn file_text(&self, name: &str) -> String {
        self.files
            .iter()
            .find(|f| f.0 == name)
            .map(|f| String::from_utf8_lossy(&f.3).to_string())
            .unwrap_or_default()
    }

    /// The count line `n` (0-based) is answered with (its number, 1-based), and the answer's
    /// text, quoting `credential` (what the caller authenticated with) on the echo line.
    fn answer(&self, n: usize, credential: &str) -> (u64, String) {
        let count = n as u64 + 1;
        let content = if self.echo_key_line == Some(n) {
            format!("{{\"count\": {count}, \"note\": \"called with {credential}\"}}")
        } else {
            format!("{{\"count\": {count}}}")
        };
        (count, content)
    }
}

/// Blocks while `flag` holds for the server's state (a test holds a request open to kill mica
/// in the middle of it).
fn hold_while(state: &Mutex<BatchState>, flag: fn(&BatchState) -> bool) {
    while flag(&state.lock().unwrap()) {
        thread::sleep(Duration::from_millis(20));
    }
}

/// A local server speaking OpenAI's Batch API as documented (`POST /v1/files` multipart with
/// `purpose=batch`, `POST /v1/batches`, `GET /v1/batches`, `GET /v1/batches/{id}`,
/// `GET /v1/files/{id}/content`): every line is answered as a chat completion whose content is
/// `{"count": N}` with N = the line's number (1-based) in its input file.
///
/// [`BatchServer::start_gemini`] speaks Gemini's Batch Mode with an input file instead (see
/// [`gemini_batch_route`]), the same switches and records applying.
pub struct BatchServer {
    pub server: MockServer,
    pub state: Arc<Mutex<BatchState>>,
    /// The API's base path (`/v1`, `/v1beta`).
    base: &'static str,
}

impl BatchServer {
    /// Starts the server; requests need `Authorization: Bearer {key}`.
    pub fn start(key: &str) -> BatchServer {
        let state = Arc::new(Mutex::new(BatchState::default()));
        let st = state.clone();
        let bearer = format!("Bearer {key}");
        let server = MockServer::start(Script::Func(Box::new(move |r| {
            if r.header("authorization") != Some(bearer.as_str()) {
                return Reply::json(
                    401,
                    serde_json::json!({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}}),
                );
            }
            batch_route(&st, r)
        })));
        BatchServer {
            server,
            state,
            base: "/v1",
        }
    }

    /// Starts a server speaking Gemini's Batch Mode; requests need `x-goog-api-key: {key}`.
    pub fn start_gemini(key: &str) -> BatchServer {
        let state = Arc::new(Mutex::new(BatchState::default()));
        let st = state.clone();
        let key = key.to_string();
        let server = MockServer::start(Script::Func(Box::new(move |r| {
            // The bytes of a resumable upload are authorized by the session's `upload_id`.
            let upload_bytes = r.path.starts_with("/upload/") && r.path.contains("upload_id=");
            if !upload_bytes && r.header("x-goog-api-key") != Some(key.as_str()) {
                // Gemini's answer to a bad key (HTTP 400, ErrorInfo reason API_KEY_INVALID).
                return Reply::json(
                    400,
                    serde_json::json!({"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.", "status": "INVALID_ARGUMENT",
                        "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com"}]}}),
                );
            }
            gemini_batch_route(&st, r)
        })));
        BatchServer {
            server,
            state,
            base: "/v1beta",
        }
    }

    pub fn url(&self) -> String {
        self.server.url(self.base)
    }

    /// The server's root URL (for an SDK that adds the version itself).
    pub fn root(&self) -> String {
        self.server.url("")
    }

    pub fn state(&self) -> std::sync::MutexGuard<'_, BatchState> {
        self.state.lock().unwrap()
    }
}

fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The parts of a `multipart/form-data` body: (name, filename, content).
pub fn multipart_parts(content_type: &str, body: &[u8]) -> Vec<(String, Option<String>, Vec<u8>)> {
    let boundary = content_type
        .split(';')
        .find_map(|p| p.trim().strip_prefix("boundary="))
        .expect("multipart boundary")
        .trim_matches('"');
    let delim = format!("--{boundary}");
    let mut out = Vec::new();
    let find = |hay: &[u8], needle: &[u8], from: usize| {
        hay[from..]
            .windows(needle.len())
            .position(|w| w == needle)
            .map(|p| p + from)
    };
    let mut at = find(body, delim.as_bytes(), 0).expect("first boundary") + delim.len();
    loop {
        if body[at..].starts_with(b"--") {
            break;
        }
        at += 2; // CRLF after the boundary
        let head_end = find(body, b"\r\n\r\n", at).expect("part headers");
        let head = String::from_utf8_lossy(&body[at..head_end]).to_string();
        let next = find(body, format!("\r\n{delim}").as_bytes(), head_end).expect("next boundary");
        let disp = head
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("content-disposition"))
            .unwrap_or("");
        let field = |k: &str| {
            disp.split(';')
                .find_map(|p| p.trim().strip_prefix(&format!("{k}=")))
                .map(|v| v.trim_matches('"').to_string())
        };
        out.push((
            field("name").unwrap_or_default(),
            field("filename"),
            body[head_end + 4..next].to_vec(),
        ));
        at = next + 2 + delim.len();
    }
    out
}

fn batch_route(state: &Mutex<BatchState>, r: &Recorded) -> Reply {
    use serde_json::{json, Value};
    let path = r.path.split('?').next().unwrap_or("").to_string();
    let hold = |flag| hold_while(state, flag);
    match (r.method.as_str(), path.as_str()) {
        ("POST", "/v1/files") => {
            let parts = multipart_parts(r.header("content-type").unwrap_or(""), &r.body);
            let purpose = parts
                .iter()
                .find(|p| p.0 == "purpose")
                .map(|p| String::from_utf8_lossy(&p.2).to_string())
                .unwrap_or_default();
            let Some((_, filename, content)) = parts.into_iter().find(|p| p.0 == "file") else {
                return Reply::json(
                    400,
                    json!({"error": {"message": "no file", "type": "invalid_request_error"}}),
                );
            };
            let filename = filename.unwrap_or_default();
            let file = {
                let mut s = state.lock().unwrap();
                let id = format!("file-{}", s.files.len() + 1);
                let file = json!({"id": id, "object": "file", "bytes": content.len(), "created_at": now_s(),
                    "filename": filename, "purpose": purpose, "status": "processed"});
                s.files.push((id, purpose, filename, content));
                s.exchanged.push(("OpenAIFile", file.clone()));
                file
            };
            hold(|s| s.hold_upload);
            Reply::json(200, file)
        }
        ("POST", "/v1/batches") => {
            let req: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
            let batch = {
                let mut s = state.lock().unwrap();
                s.exchanged.push(("CreateBatchRequest", req.clone()));
                let input = req["input_file_id"].as_str().unwrap_or("");
                let Some(file) = s.files.iter().find(|f| f.0 == input) else {
                    return Reply::json(
                        400,
                        json!({"error": {"message": format!("no file {input}"), "type": "invalid_request_error"}}),
                    );
                };
                let text = String::from_utf8_lossy(&file.3).to_string();
                let lines = text.lines().count();
                for l in text.lines() {
                    let v: Value = serde_json::from_str(l).unwrap_or(Value::Null);
                    s.exchanged.push(("BatchRequestInput", v));
                }
                let id = format!("batch_{}", s.batches.len() + 1);
                let batch = json!({"id": id, "object": "batch", "endpoint": req["endpoint"],
                    "input_file_id": input, "completion_window": req["completion_window"],
                    "status": "validating", "created_at": now_s(), "metadata": req["metadata"],
                    "request_counts": {"total": lines, "completed": 0, "failed": 0}});
                s.batches.push(batch.clone());
                s.exchanged.push(("Batch", batch.clone()));
                batch
            };
            hold(|s| s.hold_create);
            Reply::json(200, batch)
        }
        ("GET", "/v1/batches") => {
            let mut s = state.lock().unwrap();
            let data: Vec<Value> = s.batches.iter().rev().cloned().collect();
            let mut list = json!({"object": "list", "has_more": false, "data": data});
            // `first_id` and `last_id` are strings when present (the schema has no null).
            if let (Some(first), Some(last)) = (data.first(), data.last()) {
                list["first_id"] = first["id"].clone();
                list["last_id"] = last["id"].clone();
            }
            s.exchanged.push(("ListBatchesResponse", list.clone()));
            Reply::json(200, list)
        }
        ("GET", p) if p.starts_with("/v1/batches/") => {
            let id = p.trim_start_matches("/v1/batches/").to_string();
            let mut s = state.lock().unwrap();
            s.polls += 1;
            let Some(i) = s.batches.iter().position(|b| b["id"] == id.as_str()) else {
                return Reply::json(
                    404,
                    json!({"error": {"message": format!("No batch found with id '{id}'."), "type": "invalid_request_error"}}),
                );
            };
            if s.fail_validation {
                s.batches[i]["status"] = "failed".into();
                s.batches[i]["failed_at"] = now_s().into();
                s.batches[i]["errors"] = json!({"object": "list", "data": [{"code": "invalid_request",
                    "message": "The model `gpt-4o-nonexistent` does not exist or you do not have access to it.",
                    "param": "body.model", "line": 1}]});
            } else if s.complete && s.batches[i]["status"] != "completed" {
                complete_batch(&mut s, i, r.header("authorization").unwrap_or(""));
            } else if !s.complete {
                s.batches[i]["status"] = "in_progress".into();
                s.batches[i]["in_progress_at"] = now_s().into();
            }
            let b = s.batches[i].clone();
            s.exchanged.push(("Batch", b.clone()));
            Reply::json(200, b)
        }
        ("GET", p) if p.starts_with("/v1/files/") && p.ends_with("/content") => {
            let id = p
                .trim_start_matches("/v1/files/")
                .trim_end_matches("/content");
            let s = state.lock().unwrap();
            match s.files.iter().find(|f| f.0 == id) {
                Some(f) => Reply::bytes(200, f.3.clone())
                    .with_header("Content-Type", "application/octet-stream"),
                None => Reply::json(
                    404,
                    json!({"error": {"message": format!("No such File object: {id}"), "type": "invalid_request_error"}}),
                ),
            }
        }
        _ => Reply::json(
            404,
            json!({"error": {"message": format!("no route {} {}", r.method, r.path)}}),
        ),
    }
}

/// Answers every line of batch `i`, writes its output and error files, and marks it completed.
fn complete_batch(s: &mut BatchState, i: usize, authorization: &str) {
    use serde_json::json;
    let input = s.batches[i]["input_file_id"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let text = s.file_text(&input);
    let (mut out, mut err) = (String::new(), String::new());
    let (mut ok, mut failed) = (0u64, 0u64);
    for (n, line) in text.lines().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
        let custom_id = v["custom_id"].as_str().unwrap_or("").to_string();
        let model = v["body"]["model"].as_str().unwrap_or("gpt-4o");
        if s.fail_lines.contains(&n) {
            failed += 1;
            let l = json!({"id": format!("batch_req_{i}_{n}"), "custom_id": custom_id,
                "response": {"status_code": 400, "request_id": format!("req_{n}"),
                    "body": {"error": {"message": "You uploaded an unsupported image. Please make sure your image is valid.", "type": "invalid_request_error", "param": null, "code": "image_parse_error"}}},
                "error": null});
            err.push_str(&format!("{l}\n"));
            continue;
        }
        let (count, content) = s.answer(n, authorization);
        let mut body = openai_ok(&content);
        body["model"] = model.into();
        let l = json!({"id": format!("batch_req_{i}_{n}"), "custom_id": custom_id,
            "response": {"status_code": 200, "request_id": format!("req_{n}"), "body": body},
            "error": null});
        out.push_str(&format!("{l}\n"));
        s.answered.push((custom_id, count));
        ok += 1;
    }
    let mut file = |content: String| {
        let id = format!("file-{}", s.files.len() + 1);
        s.files.push((
            id.clone(),
            "batch_output".into(),
            "output.jsonl".into(),
            content.into_bytes(),
        ));
        id
    };
    let out_id = (!out.is_empty()).then(|| file(out));
    let err_id = (!err.is_empty()).then(|| file(err));
    let b = &mut s.batches[i];
    b["status"] = "completed".into();
    b["completed_at"] = now_s().into();
    b["request_counts"] = json!({"total": ok + failed, "completed": ok, "failed": failed});
    if let Some(id) = out_id {
        b["output_file_id"] = id.into();
    }
    if let Some(id) = err_id {
        b["error_file_id"] = id.into();
    }
}

/// An RFC 3339 time for `now_s`.
fn rfc3339(t: u64) -> String {
    let days = t / 86_400;
    let (h, m, sec) = ((t % 86_400) / 3600, (t % 3600) / 60, t % 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{sec:02}.000000Z")
}

/// Gemini's Batch Mode with an input file, as the google-genai SDK speaks it and ellmer's live
/// recording shows it (`tests/testthat/batch/state-capitals-gemini.json`):
///
/// - `POST /upload/v1beta/files` with `x-goog-upload-command: start` answers the upload URL in
///   `x-goog-upload-url`; `POST` there with `upload, finalize` stores the file and
///   answers `x-goog-upload-status: final` and `{"file": File}`;
/// - `POST /v1beta/models/{model}:batchGenerateContent` creates `batches/N` from
///   `batch.inputConfig.fileName`; `GET /v1beta/batches` lists, `GET /v1beta/batches/N` polls
///   (first `BATCH_STATE_SUCCEEDED` without its responses file, as ellmer saw live, then with
///   it); `GET /v1beta/files/F:download?alt=media` (or `/download/v1beta/...`) gives the file.
///
/// Every line's `{"count": N}` is its number in the input file (1-based). A line whose request
/// has a camelCase field name is answered with an error (ellmer's finding: the batch file's
/// parser takes protobuf names only).
pub fn gemini_batch_route(state: &Mutex<BatchState>, r: &Recorded) -> Reply {
    use serde_json::{json, Value};
    let (path, query) = r.path.split_once('?').unwrap_or((r.path.as_str(), ""));
    let hold = |flag| hold_while(state, flag);
    let not_found = |what: String| {
        Reply::json(
            404,
            json!({"error": {"code": 404, "message": what, "status": "NOT_FOUND"}}),
        )
    };
    match (r.method.as_str(), path) {
        ("POST", "/upload/v1beta/files") if r.header("x-goog-upload-command") == Some("start") => {
            let mut s = state.lock().unwrap();
            let req: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
            s.exchanged.push(("GeminiUploadStart", req));
            let n = s.files.len() + s.batches.len() + 1;
            let host = r.header("host").unwrap_or("127.0.0.1");
            Reply::raw(200, "")
                .with_header(
                    "x-goog-upload-url",
                    &format!("http://{host}/upload/v1beta/files?upload_id=U{n}&upload_protocol=resumable"),
                )
                .with_header("x-goog-upload-status", "active")
        }
        ("POST", "/upload/v1beta/files") => {
            if r.header("x-goog-upload-command") != Some("upload, finalize")
                || r.header("x-goog-upload-offset") != Some("0")
                || !query.contains("upload_id=")
            {
                return Reply::json(
                    400,
                    json!({"error": {"code": 400, "message": "bad resumable upload", "status": "INVALID_ARGUMENT"}}),
                );
            }
            let file = {
                let mut s = state.lock().unwrap();
                let name = format!("files/in{}", s.files.len() + 1);
                let t = rfc3339(now_s());
                let file = json!({"name": name, "mimeType": "application/jsonl",
                    "sizeBytes": r.body.len().to_string(), "createTime": t, "updateTime": t,
                    "expirationTime": t, "sha256Hash": "AAAA",
                    "uri": format!("https://generativelanguage.googleapis.com/v1beta/{name}"),
                    "state": "ACTIVE", "source": "UPLOADED"});
                s.files
                    .push((name, "batch".into(), "input.jsonl".into(), r.body.clone()));
                s.exchanged.push(("GeminiFile", file.clone()));
                file
            };
            hold(|s| s.hold_upload);
            Reply::json(200, json!({"file": file})).with_header("x-goog-upload-status", "final")
        }
        ("POST", p) if p.starts_with("/v1beta/models/") && p.ends_with(":batchGenerateContent") => {
            let model = p
                .trim_start_matches("/v1beta/models/")
                .trim_end_matches(":batchGenerateContent")
                .to_string();
            let req: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
            let op = {
                let mut s = state.lock().unwrap();
                s.exchanged.push(("GeminiCreateBatch", req.clone()));
                let input = req["batch"]["inputConfig"]["fileName"]
                    .as_str()
                    .or_else(|| req["batch"]["input_config"]["file_name"].as_str())
                    .unwrap_or("")
                    .to_string();
                let Some(file) = s.files.iter().find(|f| f.0 == input) else {
                    return Reply::json(
                        400,
                        json!({"error": {"code": 400, "message": format!("File {input} not found."), "status": "INVALID_ARGUMENT"}}),
                    );
                };
                let text = String::from_utf8_lossy(&file.3).to_string();
                let lines = text.lines().count();
                for l in text.lines() {
                    let v: Value = serde_json::from_str(l).unwrap_or(Value::Null);
                    s.exchanged.push(("GeminiBatchLine", v));
                }
                let name = format!("batches/b{}", s.batches.len() + 1);
                let t = rfc3339(now_s());
                let display = req["batch"]["displayName"]
                    .as_str()
                    .or_else(|| req["batch"]["display_name"].as_str())
                    .unwrap_or("");
                let op = json!({"name": name, "metadata": {
                    "@type": "type.googleapis.com/google.ai.generativelanguage.v1beta.GenerateContentBatch",
                    "model": format!("models/{model}"), "displayName": display,
                    "inputConfig": {"fileName": input}, "createTime": t, "updateTime": t,
                    "batchStats": {"requestCount": lines.to_string(), "pendingRequestCount": lines.to_string()},
                    "state": "BATCH_STATE_PENDING", "name": name}});
                s.batches.push(op.clone());
                op
            };
            hold(|s| s.hold_create);
            Reply::json(200, op)
        }
        ("GET", "/v1beta/batches") => {
            let s = state.lock().unwrap();
            let ops: Vec<Value> = s.batches.iter().rev().cloned().collect();
            Reply::json(200, json!({"operations": ops}))
        }
        ("GET", p) if p.starts_with("/v1beta/batches/") => {
            let name = p.trim_start_matches("/v1beta/").to_string();
            let mut s = state.lock().unwrap();
            s.polls += 1;
            let Some(i) = s.batches.iter().position(|b| b["name"] == name.as_str()) else {
                return not_found(format!("Batch {name} not found."));
            };
            let t = rfc3339(now_s());
            if s.fail_validation {
                let b = &mut s.batches[i];
                b["metadata"]["state"] = "BATCH_STATE_FAILED".into();
                b["done"] = true.into();
                b["error"] = json!({"code": 400, "message": "* BatchGenerateContentRequest.model: unexpected model name format\n", "status": "INVALID_ARGUMENT"});
            } else if s.complete && s.batches[i]["metadata"]["state"] != "BATCH_STATE_SUCCEEDED" {
                // Succeeded, but the responses file not named yet (seen live by ellmer).
                let b = &mut s.batches[i];
                b["metadata"]["state"] = "BATCH_STATE_SUCCEEDED".into();
                b["metadata"]["updateTime"] = t.into();
            } else if s.complete && s.batches[i]["done"] != true {
                complete_gemini_batch(&mut s, i, r.header("x-goog-api-key").unwrap_or(""));
            } else if !s.complete {
                let b = &mut s.batches[i];
                b["metadata"]["state"] = "BATCH_STATE_RUNNING".into();
                b["metadata"]["updateTime"] = t.into();
            }
            let b = s.batches[i].clone();
            s.exchanged.push(("GeminiBatch", b.clone()));
            Reply::json(200, b)
        }
        ("GET", p)
            if (p.starts_with("/v1beta/files/") || p.starts_with("/download/v1beta/files/"))
                && p.ends_with(":download") =>
        {
            if !query.split('&').any(|q| q == "alt=media") {
                return Reply::json(
                    400,
                    json!({"error": {"code": 400, "message": "download needs alt=media", "status": "INVALID_ARGUMENT"}}),
                );
            }
            let name = p
                .trim_start_matches("/download")
                .trim_start_matches("/v1beta/")
                .trim_end_matches(":download");
            let s = state.lock().unwrap();
            match s.files.iter().find(|f| f.0 == name) {
                Some(f) => Reply::bytes(200, f.3.clone())
                    .with_header("Content-Type", "application/octet-stream"),
                None => not_found(format!("File {name} not found.")),
            }
        }
        _ => not_found(format!("no route {} {}", r.method, r.path)),
    }
}

/// True when some field name of `v` (outside a schema's `properties`) is not snake_case.
fn has_camel_case_field(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Object(m) => m.iter().any(|(k, x)| {
            k.chars().any(|c| c.is_ascii_uppercase())
                || if k == "properties" {
                    x.as_object()
                        .is_some_and(|p| p.values().any(has_camel_case_field))
                } else {
                    has_camel_case_field(x)
                }
        }),
        serde_json::Value::Array(a) => a.iter().any(has_camel_case_field),
        _ => false,
    }
}

/// Answers every line of Gemini batch `i`, writes its responses file and marks it done.
fn complete_gemini_batch(s: &mut BatchState, i: usize, key: &str) {
    use serde_json::json;
    let input = s.batches[i]["metadata"]["inputConfig"]["fileName"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let text = s.file_text(&input);
    let mut out = String::new();
    let (mut ok, mut failed) = (0u64, 0u64);
    for (n, line) in text.lines().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
        let k = v["key"].as_str().unwrap_or("").to_string();
        if s.fail_lines.contains(&n) || has_camel_case_field(&v["request"]) {
            failed += 1;
            let l = json!({"key": k, "error": {"code": 400,
                "message": "Unable to process input image. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
                "status": "INVALID_ARGUMENT"}});
            out.push_str(&format!("{l}\n"));
            continue;
        }
        let (count, content) = s.answer(n, key);
        let l = json!({"key": k, "response": gemini_ok(&content)});
        out.push_str(&format!("{l}\n"));
        s.answered.push((k, count));
        ok += 1;
    }
    let name = format!("files/batch-b{}", i + 1);
    s.files.push((
        name.clone(),
        "batch_output".into(),
        "responses.jsonl".into(),
        out.into_bytes(),
    ));
    let t = rfc3339(now_s());
    let b = &mut s.batches[i];
    b["metadata"]["output"] = json!({"responsesFile": name});
    b["metadata"]["endTime"] = t.clone().into();
    b["metadata"]["updateTime"] = t.into();
    b["metadata"]["batchStats"] = json!({"requestCount": (ok + failed).to_string(),
        "successfulRequestCount": ok.to_string(), "failedRequestCount": failed.to_string()});
    b["done"] = true.into();
    b["response"] = json!({"@type": "type.googleapis.com/google.ai.generativelanguage.v1beta.GenerateContentBatchOutput", "responsesFile": name});
}
