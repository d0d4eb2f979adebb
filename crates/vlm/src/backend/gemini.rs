//! Google Gemini `generateContent` (`POST {base}/models/{model}:generateContent`), key in the
//! `x-goog-api-key` header (never in the URL).
//!
//! Images go as `inline_data` parts; settings in `generationConfig`; structured output as
//! `responseMimeType: application/json` plus `responseSchema` (Gemini's OpenAPI schema subset,
//! converted from the request's JSON Schema by [`to_gemini_schema`]).

use crate::error::VlmError;
use crate::request::{FinishReason, Role, Usage, VlmRequest};
use serde_json::{json, Map, Value};

/// The request body.
pub fn build_body(req: &VlmRequest, structured: bool) -> Value {
    let mut contents = Vec::new();
    for t in &req.turns {
        let mut parts = vec![json!({"text": t.text})];
        for img in &t.images {
            parts.push(json!({"inline_data": {"mime_type": img.mime, "data": img.base64()}}));
        }
        let role = match t.role {
            Role::User => "user",
            Role::Assistant => "model",
        };
        contents.push(json!({"role": role, "parts": parts}));
    }
    let mut body = Map::new();
    if let Some(s) = &req.system {
        body.insert("systemInstruction".into(), json!({"parts": [{"text": s}]}));
    }
    body.insert("contents".into(), Value::Array(contents));
    let mut cfg = Map::new();
    let s = &req.sampling;
    if let Some(t) = s.temperature {
        cfg.insert("temperature".into(), json!(t));
    }
    if let Some(seed) = s.seed {
        cfg.insert("seed".into(), json!(seed));
    }
    if let Some(m) = s.max_tokens {
        cfg.insert("maxOutputTokens".into(), json!(m));
    }
    if let (true, Some(schema)) = (structured, &req.schema) {
        cfg.insert("responseMimeType".into(), json!("application/json"));
        cfg.insert("responseSchema".into(), to_gemini_schema(&schema.schema));
    }
    if !cfg.is_empty() {
        body.insert("generationConfig".into(), Value::Object(cfg));
    }
    Value::Object(body)
}

/// JSON Schema → Gemini schema: upper-case types, `["T", "null"]` → `type: T, nullable: true`,
/// `additionalProperties` dropped (not supported), `propertyOrdering` from the property order.
pub fn to_gemini_schema(s: &Value) -> Value {
    let Value::Object(m) = s else {
        return s.clone();
    };
    let mut out = Map::new();
    for (k, v) in m {
        match k.as_str() {
            "additionalProperties" | "$schema" | "title" => {}
            "type" => match v {
                Value::String(t) => {
                    out.insert("type".into(), json!(t.to_ascii_uppercase()));
                }
                Value::Array(ts) => {
                    let non_null: Vec<&str> = ts
                        .iter()
                        .filter_map(Value::as_str)
                        .filter(|t| *t != "null")
                        .collect();
                    if let Some(t) = non_null.first() {
                        out.insert("type".into(), json!(t.to_ascii_uppercase()));
                    }
                    if non_null.len() < ts.len() {
                        out.insert("nullable".into(), json!(true));
                    }
                }
                _ => {}
            },
            "properties" => {
                if let Value::Object(props) = v {
                    let conv: Map<String, Value> = props
                        .iter()
                        .map(|(pk, pv)| (pk.clone(), to_gemini_schema(pv)))
                        .collect();
                    out.insert(
                        "propertyOrdering".into(),
                        json!(props.keys().collect::<Vec<_>>()),
                    );
                    out.insert("properties".into(), Value::Object(conv));
                }
            }
            "items" => {
                out.insert("items".into(), to_gemini_schema(v));
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

/// Answer text, finish reason, usage and model version from a response body. A prompt blocked by
/// safety filters (`promptFeedback.blockReason`, no candidates) and a candidate stopped for safety
/// are answers with [`FinishReason::Blocked`], not errors: they are recorded and cached.
///
/// # Errors
/// [`VlmError::BadResponse`] when there are no candidates and no block reason, or a candidate
/// finished normally without text.
pub fn parse_reply(
    provider: &str,
    body: &Value,
) -> Result<(String, FinishReason, Usage, Option<String>), VlmError> {
    let bad = |reason: &str| VlmError::BadResponse {
        provider: provider.to_string(),
        reason: reason.to_string(),
    };
    let um = &body["usageMetadata"];
    // Output is the answer's tokens plus the thinking tokens of 2.5 / 3 models
    // (`thoughtsTokenCount`), which Google bills at the output price: counting only
    // `candidatesTokenCount` under-counts a thinking model's cost several times over.
    let candidates = um["candidatesTokenCount"].as_u64();
    let thoughts = um["thoughtsTokenCount"].as_u64();
    let usage = Usage {
        input_tokens: um["promptTokenCount"].as_u64(),
        output_tokens: match (candidates, thoughts) {
            (None, None) => um.get("promptTokenCount").map(|_| 0),
            (c, t) => Some(c.unwrap_or(0) + t.unwrap_or(0)),
        },
    };
    let version = body["modelVersion"].as_str().map(str::to_string);
    let first = body["candidates"].as_array().and_then(|c| c.first());
    let Some(cand) = first else {
        if let Some(r) = body["promptFeedback"]["blockReason"].as_str() {
            return Ok((
                String::new(),
                FinishReason::Blocked(r.to_string()),
                usage,
                version,
            ));
        }
        return Err(bad("no candidates and no block reason"));
    };
    let text: String = cand["content"]["parts"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .filter(|p| !p["thought"].as_bool().unwrap_or(false))
                .filter_map(|p| p["text"].as_str())
                .collect::<Vec<_>>()
                .join("")
        })
        .unwrap_or_default();
    let finish = match cand["finishReason"].as_str().unwrap_or("STOP") {
        "STOP" => FinishReason::Stop,
        "MAX_TOKENS" => FinishReason::Length,
        r @ ("SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII"
        | "IMAGE_SAFETY") => FinishReason::Blocked(r.to_string()),
        other => FinishReason::Other(other.to_string()),
    };
    if text.is_empty() && finish == FinishReason::Stop {
        return Err(bad("candidate finished with STOP but has no text"));
    }
    Ok((text, finish, usage, version))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reply published by Google (see `tests/fixtures/gemini/README.md`): 418 answer tokens and
    /// 438 thinking tokens, both output.
    #[test]
    fn thinking_tokens_are_output_tokens() {
        let body: Value = serde_json::from_str(include_str!(
            "../../tests/fixtures/gemini/generate_content_thinking.json"
        ))
        .unwrap();
        let (text, finish, usage, version) = parse_reply("gemini", &body).unwrap();
        assert!(text.starts_with("Here is"));
        assert_eq!(finish, FinishReason::Stop);
        assert_eq!(usage.input_tokens, Some(34));
        assert_eq!(usage.output_tokens, Some(418 + 438));
        // What Google counts in total is exactly what mica bills.
        let total = body["usageMetadata"]["totalTokenCount"].as_u64().unwrap();
        assert_eq!(
            usage.input_tokens.unwrap() + usage.output_tokens.unwrap(),
            total
        );
        assert_eq!(version.as_deref(), Some("gemini-3-flash-preview"));
    }
}
