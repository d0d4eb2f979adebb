//! A local stand-in for a vision-language model server, for demos and CI: it speaks the
//! OpenAI Chat Completions protocol (`POST /v1/chat/completions`) and Ollama's (`POST /api/chat`)
//! on 127.0.0.1, decodes the image it is sent, and answers.
//!
//! It is NOT a model. Its answers are a transparent baseline, so that numbers coming out of a
//! demo are honest about what produced them:
//! - a counting question ("count" in the prompt) is answered with the number of connected bright
//!   regions of at least 30 px after thresholding the gray image at its mean (8-connectivity);
//! - a classification question ("categor" in the prompt) is answered with class 6 (Particles)
//!   when the image has 15 or more such regions, else class 2 (Fibres): a two-class guess;
//! - anything else gets a one-line description of the image size and mean intensity.
//!
//! Usage: `cargo run -p mica-vlm --example mock_vlm_server [PORT]` (0 or nothing: any free port).
//! The first line printed is `listening on http://127.0.0.1:PORT`.

use base64::Engine as _;
use mica_core::{BinaryMask, Connectivity};
use mica_testkit::{MockServer, Reply, Script};
use serde_json::{json, Value};
use std::io::Write;

fn main() {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    // The workspace's test server (`mica_testkit`) does the HTTP; this file only answers.
    let server = match MockServer::start_unrecorded(
        port,
        Script::Func(Box::new(|r| {
            let (status, reply) = match serde_json::from_slice::<Value>(&r.body) {
                Ok(req) => answer(&r.path, &req),
                Err(e) => (
                    400,
                    json!({"error": {"message": format!("body is not JSON: {e}")}}),
                ),
            };
            Reply::json(status, reply)
        })),
    ) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot listen on 127.0.0.1:{port}: {e}");
            std::process::exit(1);
        }
    };
    println!("listening on http://127.0.0.1:{}", server.port);
    let _ = std::io::stdout().flush();
    loop {
        std::thread::park();
    }
}

fn answer(path: &str, req: &Value) -> (u16, Value) {
    let model = req["model"].as_str().unwrap_or("mock").to_string();
    let messages = req["messages"].as_array().cloned().unwrap_or_default();
    let Some(last) = messages.last() else {
        return (400, json!({"error": {"message": "no messages"}}));
    };
    // OpenAI: content parts; Ollama: content string + images.
    let (prompt, image_b64) = if path.ends_with("/chat/completions") {
        let parts = last["content"].as_array().cloned().unwrap_or_default();
        let prompt = parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n");
        let img = parts
            .iter()
            .filter_map(|p| p["image_url"]["url"].as_str())
            .find_map(|u| u.split_once(";base64,").map(|(_, b)| b.to_string()));
        (prompt, img)
    } else if path == "/api/chat" {
        (
            last["content"].as_str().unwrap_or("").to_string(),
            last["images"][0].as_str().map(str::to_string),
        )
    } else {
        return (
            404,
            json!({"error": {"message": format!("no route {path}")}}),
        );
    };
    let Some(b64) = image_b64 else {
        return (
            400,
            json!({"error": {"message": "no image in the last message"}}),
        );
    };
    let text = match describe(&b64, &prompt) {
        Ok(t) => t,
        Err(e) => return (400, json!({"error": {"message": e}})),
    };
    let structured = req.get("response_format").is_some() || req.get("format").is_some();
    let content = if structured && prompt.to_lowercase().contains("count") {
        json!({"count": first_number(&text)}).to_string()
    } else if structured && prompt.to_lowercase().contains("categor") {
        json!({"class_number": first_number(&text)}).to_string()
    } else {
        text
    };
    let reply = if path == "/api/chat" {
        json!({"model": model, "message": {"role": "assistant", "content": content},
               "done": true, "done_reason": "stop", "prompt_eval_count": 600, "eval_count": 8})
    } else {
        json!({"id": "mock-1", "object": "chat.completion", "model": model,
               "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                            "finish_reason": "stop"}],
               "usage": {"prompt_tokens": 600, "completion_tokens": 8, "total_tokens": 608}})
    };
    (200, reply)
}

fn first_number(s: &str) -> u64 {
    s.split(|c: char| !c.is_ascii_digit())
        .find(|t| !t.is_empty())
        .and_then(|t| t.parse().ok())
        .unwrap_or(0)
}

fn describe(b64: &str, prompt: &str) -> Result<String, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| format!("image is not base64: {e}"))?;
    let gray = image::load_from_memory(&bytes)
        .map_err(|e| format!("image does not decode: {e}"))?
        .to_luma8();
    let (w, h) = gray.dimensions();
    let px = gray.into_raw();
    let mean = px.iter().map(|&v| v as f64).sum::<f64>() / px.len().max(1) as f64;
    let mask = BinaryMask::new(w, h, px.iter().map(|&v| v as f64 > mean).collect())
        .map_err(|e| e.to_string())?;
    let labels = mask.connected_components(Connectivity::Eight);
    let mut areas = vec![0usize; labels.max_label() as usize + 1];
    for &l in labels.as_slice() {
        areas[l as usize] += 1;
    }
    let regions = areas.iter().skip(1).filter(|&&a| a >= 30).count();
    let p = prompt.to_lowercase();
    Ok(if p.contains("count") {
        format!("Count: {regions}")
    } else if p.contains("categor") {
        if regions >= 15 {
            "6".into()
        } else {
            "2".into()
        }
    } else {
        format!("A {w}x{h} image with mean intensity {mean:.0} and {regions} bright regions.")
    })
}
