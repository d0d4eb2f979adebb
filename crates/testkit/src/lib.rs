//! The workspace's one local HTTP test server: an HTTP/1.1 server on 127.0.0.1 that records
//! every request and answers with canned replies in order (the last one repeats) or with replies
//! computed from the request. Every test that needs a server (the VLM protocols and Batch APIs,
//! the CLI's model servers, weight and file downloads) builds it from this; no test touches the
//! internet. Tests only (`publish = false`).

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
    pub body: Vec<u8>,
    /// Wait this long before answering (to provoke a client timeout).
    pub delay: Duration,
    /// The `Content-Length` announced, when not the body's (a truncated transfer).
    pub announced_len: Option<usize>,
}

impl Reply {
    /// `body` as JSON.
    pub fn json(status: u16, body: serde_json::Value) -> Self {
        Self::raw(status, &body.to_string())
    }

    /// `body` as it is, labelled JSON.
    pub fn raw(status: u16, body: &str) -> Self {
        Self::bytes(status, body.as_bytes().to_vec())
            .with_header("Content-Type", "application/json")
    }

    /// `body` with no `Content-Type`.
    pub fn bytes(status: u16, body: Vec<u8>) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body,
            delay: Duration::ZERO,
            announced_len: None,
        }
    }

    /// Announces `len` bytes whatever the body holds (more: the transfer ends short).
    pub fn announcing(mut self, len: usize) -> Self {
        self.announced_len = Some(len);
        self
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
    /// Starts on a free port of 127.0.0.1.
    pub fn start(script: Script) -> MockServer {
        Self::start_on(0, script).expect("bind 127.0.0.1")
    }

    /// Starts on `port` of 127.0.0.1 (0: a free one).
    ///
    /// # Errors
    /// The port cannot be bound.
    pub fn start_on(port: u16, script: Script) -> std::io::Result<MockServer> {
        Self::listen(port, script, true)
    }

    /// [`Self::start_on`] for a long-running demo server: requests are answered, not kept
    /// ([`Self::requests`] and [`Self::count`] stay empty).
    ///
    /// # Errors
    /// The port cannot be bound.
    pub fn start_unrecorded(port: u16, script: Script) -> std::io::Result<MockServer> {
        Self::listen(port, script, false)
    }

    fn listen(port: u16, script: Script, record: bool) -> std::io::Result<MockServer> {
        let listener = TcpListener::bind(("127.0.0.1", port))?;
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
                        handle(
                            stream,
                            record.then_some(&*requests),
                            &script,
                            &served,
                            &mut || {
                                if !std::mem::replace(&mut answered, true) {
                                    in_flight.fetch_sub(1, Ordering::SeqCst);
                                }
                            },
                        );
                        if !answered {
                            in_flight.fetch_sub(1, Ordering::SeqCst);
                        }
                    });
                }
            });
        }
        Ok(MockServer {
            port,
            requests,
            max_in_flight,
        })
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
    requests: Option<&Mutex<Vec<Recorded>>>,
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
    if let Some(requests) = requests {
        requests.lock().unwrap().push(rec);
    }
    if !reply.delay.is_zero() {
        thread::sleep(reply.delay);
    }
    answering();
    let mut out = stream;
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        reply.status,
        reason(reply.status),
        reply.announced_len.unwrap_or(reply.body.len())
    );
    for (k, v) in &reply.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = out.write_all(head.as_bytes());
    let _ = out.write_all(&reply.body);
    let _ = out.flush();
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        302 => "Found",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}
