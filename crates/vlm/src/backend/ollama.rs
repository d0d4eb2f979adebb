//! Ollama's native chat API (`POST {host}/api/chat`, `stream: false`): images as a list of base64
//! strings on the message, `format` a JSON schema, `options` {temperature, seed, num_predict},
//! token counts in `prompt_eval_count` and `eval_count`.

use crate::error::VlmError;
use crate::request::{FinishReason, Role, Usage, VlmRequest};
use serde_json::{json, Map, Value};

/// The request body.
pub fn build_body(model: &str, req: &VlmRequest, structured: bool) -> Value {
    let mut messages = Vec::new();
    if let Some(s) = &req.system {
        messages.push(json!({"role": "system", "content": s}));
    }
    for t in &req.turns {
        let role = match t.role {
            Role::User => "user",
            Role::Assistant => "assistant",
        };
        let mut m = Map::new();
        m.insert("role".into(), json!(role));
        m.insert("content".into(), json!(t.text));
        if !t.images.is_empty() {
            m.insert(
                "images".into(),
                Value::Array(t.images.iter().map(|i| json!(i.base64())).collect()),
            );
        }
        messages.push(Value::Object(m));
    }
    let mut body = Map::new();
    body.insert("model".into(), json!(model));
    body.insert("messages".into(), Value::Array(messages));
    body.insert("stream".into(), json!(false));
    if let (true, Some(schema)) = (structured, &req.schema) {
        body.insert("format".into(), schema.schema.clone());
    }
    let mut opts = Map::new();
    let s = &req.sampling;
    if let Some(t) = s.temperature {
        opts.insert("temperature".into(), json!(t));
    }
    if let Some(seed) = s.seed {
        opts.insert("seed".into(), json!(seed));
    }
    if let Some(m) = s.max_tokens {
        opts.insert("num_predict".into(), json!(m));
    }
    if !opts.is_empty() {
        body.insert("options".into(), Value::Object(opts));
    }
    Value::Object(body)
}

/// Answer text, finish reason, usage and model from a response body.
///
/// # Errors
/// [`VlmError::BadResponse`] when there is no `message.content`.
pub fn parse_reply(
    provider: &str,
    body: &Value,
) -> Result<(String, FinishReason, Usage, Option<String>), VlmError> {
    let text = body["message"]["content"]
        .as_str()
        .ok_or_else(|| VlmError::BadResponse {
            provider: provider.to_string(),
            reason: match body["error"].as_str() {
                Some(e) => format!("error in body: {e}"),
                None => "no `message.content`".into(),
            },
        })?
        .to_string();
    let finish = match body["done_reason"].as_str().unwrap_or("stop") {
        "stop" => FinishReason::Stop,
        "length" => FinishReason::Length,
        other => FinishReason::Other(other.to_string()),
    };
    let usage = Usage {
        input_tokens: body["prompt_eval_count"].as_u64(),
        output_tokens: body["eval_count"].as_u64(),
    };
    Ok((
        text,
        finish,
        usage,
        body["model"].as_str().map(str::to_string),
    ))
}
