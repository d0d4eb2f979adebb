//! A scripted HTTP/1.1 server on 127.0.0.1 for protocol tests: records every request and answers
//! with canned responses in order (the last one repeats). No test touches the internet.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// One recorded request.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == &name.to_ascii_lowercase())
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }
}

/// A canned answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// Wait this long before answering (to provoke a client timeout).
    pub delay: Duration,
}

impl Reply {
    pub fn json(status: u16, body: serde_json::Value) -> Self {
        Reply {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.to_string(),
            delay: Duration::ZERO,
        }
    }

    pub fn raw(status: u16, body: &str) -> Self {
        Reply {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.to_string(),
            delay: Duration::ZERO,
        }
    }

    pub fn with_header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }

    pub fn delayed(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }
}

/// How replies are chosen.
pub enum Script {
    /// In order; the last repeats.
    Sequence(Vec<Reply>),
    /// Computed from the request.
    Func(Box<dyn Fn(&Recorded) -> Reply + Send + Sync>),
}

pub struct MockServer {
    pub port: u16,
    requests: Arc<Mutex<Vec<Recorded>>>,
    max_in_flight: Arc<AtomicUsize>,
}

impl MockServer {
    pub fn start(script: Script) -> MockServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let max_in_flight = Arc::new(AtomicUsize::new(0));
        let script = Arc::new(script);
        let served = Arc::new(AtomicUsize::new(0));
        {
            let requests = requests.clone();
            let max_in_flight = max_in_flight.clone();
            thread::spawn(move || {
                for stream in listener.incoming() {
                    let Ok(stream) = stream else { continue };
                    let (requests, script, served, in_flight, max_in_flight) = (
                        requests.clone(),
                        script.clone(),
                        served.clone(),
                        in_flight.clone(),
                        max_in_flight.clone(),
                    );
                    thread::spawn(move || {
                        let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                        max_in_flight.fetch_max(now, Ordering::SeqCst);
                        // A request stops being in flight when its answer is about to be sent:
                        // counted after the write, the client (which may send its next request
                        // the moment the answer arrives) could overlap it under load.
                        let mut answered = false;
                        handle(stream, &requests, &script, &served, &mut || {
                            if !std::mem::replace(&mut answered, true) {
                                in_flight.fetch_sub(1, Ordering::SeqCst);
                            }
                        });
                        if !answered {
                            in_flight.fetch_sub(1, Ordering::SeqCst);
                        }
                    });
                }
            });
        }
        MockServer {
            port,
            requests,
            max_in_flight,
        }
    }

    pub fn sequence(replies: Vec<Reply>) -> MockServer {
        Self::start(Script::Sequence(replies))
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }

    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight.load(Ordering::SeqCst)
    }
}

fn handle(
    stream: TcpStream,
    requests: &Mutex<Vec<Recorded>>,
    script: &Script,
    served: &AtomicUsize,
    answering: &mut dyn FnMut(),
) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 {
            return;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let rec = Recorded {
        method,
        path,
        headers,
        body,
    };
    let reply = match script {
        Script::Sequence(v) => {
            let i = served.fetch_add(1, Ordering::SeqCst);
            v[i.min(v.len() - 1)].clone()
        }
        Script::Func(f) => f(&rec),
    };
    requests.lock().unwrap().push(rec);
    if !reply.delay.is_zero() {
        thread::sleep(reply.delay);
    }
    answering();
    let mut out = stream;
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        reply.status,
        reason(reply.status),
        reply.body.len()
    );
    for (k, v) in &reply.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = out.write_all(head.as_bytes());
    let _ = out.write_all(reply.body.as_bytes());
    let _ = out.flush();
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

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
