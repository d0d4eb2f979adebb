//! OpenAI Chat Completions (`POST {base}/chat/completions`), also spoken by vLLM, llama.cpp server,
//! LM Studio and Ollama's `/v1`.
//!
//! Images go as `image_url` parts holding a base64 `data:` URL with a `detail` level; structured
//! output as `response_format: {type: "json_schema", json_schema: {name, strict: true, schema}}`.

use crate::error::VlmError;
use crate::request::{FinishReason, Role, Usage, VlmRequest};
use serde_json::{json, Map, Value};

/// Which field carries the token limit: OpenAI itself wants `max_completion_tokens` (required by
/// its reasoning models), most compatible servers know only `max_tokens`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenLimitField {
    MaxCompletionTokens,
    MaxTokens,
}

/// How a task's schema is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFormat {
    /// No `response_format`: the answer is read by the text parsers.
    None,
    /// OpenAI's structured outputs: `{"type": "json_schema", "json_schema": {name, strict, schema}}`.
    JsonSchema,
    /// JSON mode with the schema beside it, `{"type": "json_object", "schema": …}`: what
    /// llama-cpp-python's server accepts (not part of OpenAI's API).
    JsonObjectWithSchema,
}

/// The request body.
pub fn build_body(
    model: &str,
    req: &VlmRequest,
    format: ResponseFormat,
    limit_field: TokenLimitField,
) -> Value {
    let mut messages = Vec::new();
    if let Some(s) = &req.system {
        messages.push(json!({"role": "system", "content": s}));
    }
    for t in &req.turns {
        match t.role {
            Role::User => {
                let mut parts = vec![json!({"type": "text", "text": t.text})];
                for img in &t.images {
                    parts.push(json!({
                        "type": "image_url",
                        "image_url": {"url": img.data_url(), "detail": req.sampling.detail.as_str()}
                    }));
                }
                messages.push(json!({"role": "user", "content": parts}));
            }
            Role::Assistant => messages.push(json!({"role": "assistant", "content": t.text})),
        }
    }
    let mut body = Map::new();
    body.insert("model".into(), json!(model));
    body.insert("messages".into(), Value::Array(messages));
    let s = &req.sampling;
    if let Some(t) = s.temperature {
        body.insert("temperature".into(), json!(t));
    }
    if let Some(seed) = s.seed {
        body.insert("seed".into(), json!(seed));
    }
    if let Some(m) = s.max_tokens {
        let field = match limit_field {
            TokenLimitField::MaxCompletionTokens => "max_completion_tokens",
            TokenLimitField::MaxTokens => "max_tokens",
        };
        body.insert(field.into(), json!(m));
    }
    match (format, &req.schema) {
        (ResponseFormat::JsonSchema, Some(schema)) => {
            body.insert(
                "response_format".into(),
                json!({
                    "type": "json_schema",
                    "json_schema": {"name": schema.name, "strict": true, "schema": schema.schema}
                }),
            );
        }
        (ResponseFormat::JsonObjectWithSchema, Some(schema)) => {
            body.insert(
                "response_format".into(),
                json!({"type": "json_object", "schema": schema.schema}),
            );
        }
        _ => {}
    }
    Value::Object(body)
}

/// Answer text, finish reason, usage and model from a response body.
///
/// # Errors
/// [`VlmError::BadResponse`] when `choices` is missing or empty, or the first choice has neither
/// content, a refusal nor a content-filter finish.
pub fn parse_reply(
    provider: &str,
    body: &Value,
) -> Result<(String, FinishReason, Usage, Option<String>), VlmError> {
    let bad = |reason: &str| VlmError::BadResponse {
        provider: provider.to_string(),
        reason: reason.to_string(),
    };
    let choice = body["choices"]
        .as_array()
        .ok_or_else(|| bad("no `choices` array"))?
        .first()
        .ok_or_else(|| bad("empty `choices` list"))?;
    let msg = &choice["message"];
    let finish_raw = choice["finish_reason"].as_str().unwrap_or("");
    let usage = Usage {
        input_tokens: body["usage"]["prompt_tokens"].as_u64(),
        output_tokens: body["usage"]["completion_tokens"].as_u64(),
    };
    let model = body["model"].as_str().map(str::to_string);
    if let Some(r) = msg["refusal"].as_str().filter(|r| !r.is_empty()) {
        return Ok((
            String::new(),
            FinishReason::Refused(r.to_string()),
            usage,
            model,
        ));
    }
    let finish = match finish_raw {
        "stop" | "" => FinishReason::Stop,
        "length" => FinishReason::Length,
        "content_filter" => FinishReason::Blocked("content_filter".into()),
        other => FinishReason::Other(other.to_string()),
    };
    let text = match &msg["content"] {
        Value::String(s) => s.clone(),
        // Some compatible servers return content as a list of text parts.
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join(""),
        // A filtered answer, or a reasoning model that spent its token budget before answering
        // (`finish_reason: "length"`, `content: null`): an answer with no text, recorded and
        // cached like any other, never an error paid for again on every rerun.
        Value::Null if matches!(finish, FinishReason::Blocked(_) | FinishReason::Length) => {
            String::new()
        }
        _ => return Err(bad("first choice has no message content")),
    };
    Ok((text, finish, usage, model))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `content: null` with `finish_reason: "length"` (see `tests/fixtures/openai/README.md`):
    /// an empty answer cut by the token limit, not a malformed reply.
    #[test]
    fn null_content_cut_by_the_token_limit_is_an_answer() {
        let body: Value = serde_json::from_str(include_str!(
            "../../tests/fixtures/openai/chat_completion_length_null_content.json"
        ))
        .unwrap();
        let (text, finish, usage, model) = parse_reply("openai-compatible", &body).unwrap();
        assert_eq!((text.as_str(), finish), ("", FinishReason::Length));
        assert_eq!(usage.output_tokens, None);
        assert_eq!(model.as_deref(), Some("openai/gpt-oss-120b"));
        // Without a reason for it, a missing content is still a malformed reply.
        let mut stop = body.clone();
        stop["choices"][0]["finish_reason"] = "stop".into();
        assert!(parse_reply("openai-compatible", &stop).is_err());
    }
}
