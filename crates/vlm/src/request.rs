//! What is sent to a model ([`VlmRequest`]) and what comes back ([`VlmResponse`]), independent of
//! the provider. Backends translate these to and from their wire formats.

use crate::prepare::PreparedImage;
use serde::{Deserialize, Serialize};

/// Who speaks a turn of the conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    /// A model answer, used for few-shot examples.
    Assistant,
}

/// One turn: text and the images that go with it.
#[derive(Debug, Clone)]
pub struct Turn {
    pub role: Role,
    pub text: String,
    pub images: Vec<PreparedImage>,
}

/// OpenAI's image detail level (ignored by other providers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Detail {
    Low,
    #[default]
    High,
    Auto,
}

impl Detail {
    pub fn as_str(self) -> &'static str {
        match self {
            Detail::Low => "low",
            Detail::High => "high",
            Detail::Auto => "auto",
        }
    }
}

/// Sampling settings. `None` means "not sent": the provider's own default applies (the study ran
/// Gemini with its defaults).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Sampling {
    pub temperature: Option<f64>,
    pub seed: Option<u64>,
    /// Maximum new tokens (OpenAI `max_completion_tokens`, Gemini `maxOutputTokens`, Ollama
    /// `num_predict`).
    pub max_tokens: Option<u32>,
    pub detail: Detail,
}

/// A request to a vision-language model.
#[derive(Debug, Clone)]
pub struct VlmRequest {
    pub system: Option<String>,
    /// The conversation; the last turn is the user's question.
    pub turns: Vec<Turn>,
    /// A JSON Schema (draft 2020-12 subset: object, properties, required, type with `"null"`,
    /// enum, description) the answer must follow, when the backend supports structured output.
    pub schema: Option<AnswerSchema>,
    pub sampling: Sampling,
}

/// A named JSON Schema for structured output.
#[derive(Debug, Clone, PartialEq)]
pub struct AnswerSchema {
    /// Name for OpenAI's `json_schema.name` (letters, digits, `_`, `-`).
    pub name: String,
    pub schema: serde_json::Value,
}

impl VlmRequest {
    /// A one-turn request: a text and its images.
    pub fn single(text: impl Into<String>, images: Vec<PreparedImage>) -> Self {
        VlmRequest {
            system: None,
            turns: vec![Turn {
                role: Role::User,
                text: text.into(),
                images,
            }],
            schema: None,
            sampling: Sampling::default(),
        }
    }

    /// A canonical description of everything that determines the answer, with images replaced by
    /// their SHA-256: the response-cache key material.
    pub fn fingerprint(&self) -> serde_json::Value {
        serde_json::json!({
            "system": self.system,
            "turns": self.turns.iter().map(|t| serde_json::json!({
                "role": t.role,
                "text": t.text,
                "images": t.images.iter().map(|i| format!("{}:{}", i.mime, i.sha256)).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "schema": self.schema.as_ref().map(|s| serde_json::json!({"name": s.name, "schema": s.schema})),
            "sampling": self.sampling,
        })
    }
}

/// Why the model stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "detail")]
pub enum FinishReason {
    /// A complete answer.
    Stop,
    /// The token limit cut the answer.
    Length,
    /// A safety/content filter blocked the prompt or the answer; the provider's reason is kept
    /// (e.g. Gemini `SAFETY`, `PROHIBITED_CONTENT`, OpenAI `content_filter`).
    Blocked(String),
    /// The model refused (OpenAI structured-output `refusal`), with its message.
    Refused(String),
    /// Any other reason, as the provider named it.
    Other(String),
}

impl FinishReason {
    /// A short label for tables.
    pub fn label(&self) -> String {
        match self {
            FinishReason::Stop => "stop".into(),
            FinishReason::Length => "length".into(),
            FinishReason::Blocked(r) => format!("blocked:{r}"),
            FinishReason::Refused(_) => "refused".into(),
            FinishReason::Other(r) => r.clone(),
        }
    }
}

/// Token counts as the provider reported them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
}

/// A model's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VlmResponse {
    /// The answer text (empty when blocked).
    pub text: String,
    pub finish: FinishReason,
    pub usage: Usage,
    /// Time from sending the (successful) request to its full answer.
    pub latency_ms: u64,
    /// HTTP attempts it took (1 = no retry).
    pub attempts: u32,
    /// The model version the provider reports, if any.
    pub model_version: Option<String>,
}
