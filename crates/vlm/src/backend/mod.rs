//! The [`VisionLanguageModel`] capability and [`Client`], which speaks each provider's protocol.

pub mod gemini;
pub mod ollama;
pub mod openai;

use crate::error::VlmError;
use crate::model::{Endpoint, ModelSpec, Provider};
use crate::request::{VlmRequest, VlmResponse};
use crate::transport::{Limits, RetryPolicy, Transport};
use serde::{Deserialize, Serialize};

/// A model that answers questions about images.
pub trait VisionLanguageModel: Send + Sync {
    /// `provider:model`, e.g. `openai:gpt-4o`: names the model in tables and in the cache key.
    fn name(&self) -> String;

    /// The base URL requests go to: part of the cache key, so two servers serving a model of
    /// the same name never share answers.
    fn endpoint(&self) -> String;

    /// Sends one request and waits for the whole answer.
    ///
    /// # Errors
    /// Any [`VlmError`] for this request; callers report it and go on with the next image.
    fn generate(&self, req: &VlmRequest) -> Result<VlmResponse, VlmError>;

    /// [`Self::generate`], also saying how many of its HTTP attempts timed out: a timed-out
    /// request may still have been processed, and billed, by the provider, so the budget charges
    /// it. The default (a model with no HTTP, a test double) reports none.
    fn generate_counted(&self, req: &VlmRequest) -> Generated {
        Generated {
            result: self.generate(req),
            timed_out_attempts: 0,
        }
    }

    /// The provider's Batch API for this model, when mica speaks it (OpenAI's, Gemini's);
    /// `None` else.
    fn batch_api(&self) -> Option<&dyn crate::batch::BatchApi> {
        None
    }
}

/// What [`VisionLanguageModel::generate_counted`] gives.
#[derive(Debug)]
pub struct Generated {
    pub result: Result<VlmResponse, VlmError>,
    /// HTTP attempts that timed out (each possibly billed), whatever the result.
    pub timed_out_attempts: u32,
}

/// Whether to ask for structured (JSON-schema) output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Structured {
    /// When the task has a schema (all four backends support it; turn it off for a compatible
    /// server that rejects `response_format`).
    #[default]
    Auto,
    /// Never: answers go through the text parsers.
    Off,
    /// OpenAI-compatible servers only: JSON mode with the schema beside it,
    /// `response_format: {"type": "json_object", "schema": …}`, the form llama-cpp-python's
    /// server takes (it rejects `json_schema` with HTTP 500; its PR #1122 documents this form).
    /// Other providers ask as with `Auto`.
    #[serde(rename = "json-object")]
    JsonObject,
}

impl Structured {
    /// Parses `auto`, `off` or `json-object`.
    ///
    /// # Errors
    /// Names the known values.
    pub fn parse(s: &str) -> Result<Structured, String> {
        match s {
            "auto" => Ok(Structured::Auto),
            "off" => Ok(Structured::Off),
            "json-object" => Ok(Structured::JsonObject),
            _ => Err(format!(
                "unknown structured-output mode {s:?} (known: auto, off, json-object)"
            )),
        }
    }
}

/// Everything needed to build a [`Client`] besides the model name.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// Overrides the base URL (else the provider's environment variable, else its default).
    pub base_url: Option<String>,
    /// Per-provider limits; `None` = [`default_limits`] of the provider.
    pub limits: Option<Limits>,
    pub retry: RetryPolicy,
    pub structured: Structured,
}

/// Defaults per provider: OpenAI 4 in flight and 60 requests/min, Gemini 2 and 15/min (the free
/// tier of the Flash models), Ollama 1 (one local GPU), compatible servers 2; timeout 120 s.
pub fn default_limits(provider: Provider) -> Limits {
    let (concurrency, requests_per_minute) = match provider {
        Provider::Openai => (4, 60),
        Provider::Gemini => (2, 15),
        Provider::Ollama => (1, 0),
        Provider::OpenaiCompatible => (2, 0),
    };
    Limits {
        concurrency,
        requests_per_minute,
        ..Limits::default()
    }
}

/// A model reached over its provider's HTTP API.
#[derive(Debug)]
pub struct Client {
    spec: ModelSpec,
    endpoint: Endpoint,
    pub(crate) transport: Transport,
    structured: Structured,
    limits: Limits,
}

impl Client {
    /// Resolves the endpoint and key and builds the HTTP transport.
    ///
    /// # Errors
    /// [`VlmError::MissingKey`], [`VlmError::Config`] as in [`Endpoint::resolve`] and
    /// [`Transport::new`].
    pub fn new(spec: ModelSpec, opts: &ClientOptions) -> Result<Self, VlmError> {
        let endpoint = Endpoint::resolve(spec.provider, opts.base_url.as_deref())?;
        let limits = opts.limits.unwrap_or_else(|| default_limits(spec.provider));
        let transport = Transport::new(
            spec.provider.as_str(),
            &limits,
            opts.retry.clone(),
            endpoint.key.clone(),
            is_loopback(&endpoint.base_url),
        )?;
        Ok(Client {
            spec,
            endpoint,
            transport,
            structured: opts.structured,
            limits,
        })
    }

    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The base URL requests go to.
    pub fn base_url(&self) -> &str {
        &self.endpoint.base_url
    }

    /// The URL, headers and body of the HTTP request for `req` (headers hold the key).
    pub(crate) fn wire(
        &self,
        req: &VlmRequest,
    ) -> (String, Vec<(&'static str, String)>, serde_json::Value) {
        let structured = self.structured != Structured::Off;
        let base = &self.endpoint.base_url;
        let key = self.endpoint.key.as_ref();
        match self.spec.provider {
            Provider::Openai | Provider::OpenaiCompatible => {
                let field = if self.spec.provider == Provider::Openai {
                    openai::TokenLimitField::MaxCompletionTokens
                } else {
                    openai::TokenLimitField::MaxTokens
                };
                let headers = key
                    .map(|k| vec![("Authorization", format!("Bearer {}", k.expose()))])
                    .unwrap_or_default();
                (
                    format!("{base}/chat/completions"),
                    headers,
                    openai::build_body(
                        &self.spec.model,
                        req,
                        match self.structured {
                            Structured::Off => openai::ResponseFormat::None,
                            Structured::JsonObject
                                if self.spec.provider == Provider::OpenaiCompatible =>
                            {
                                openai::ResponseFormat::JsonObjectWithSchema
                            }
                            _ => openai::ResponseFormat::JsonSchema,
                        },
                        field,
                    ),
                )
            }
            Provider::Gemini => {
                let headers = key
                    .map(|k| vec![("x-goog-api-key", k.expose().to_string())])
                    .unwrap_or_default();
                let model = self
                    .spec
                    .model
                    .strip_prefix("models/")
                    .unwrap_or(&self.spec.model);
                (
                    format!("{base}/models/{model}:generateContent"),
                    headers,
                    gemini::build_body(req, structured),
                )
            }
            Provider::Ollama => (
                format!("{base}/api/chat"),
                Vec::new(),
                ollama::build_body(&self.spec.model, req, structured),
            ),
        }
    }
}

/// True when `url`'s host is `localhost`, `127.x.x.x` or `[::1]`.
fn is_loopback(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let host_port = rest.split('/').next().unwrap_or("");
    let host = if let Some(h) = host_port.strip_prefix('[') {
        h.split(']').next().unwrap_or("")
    } else {
        host_port.split(':').next().unwrap_or("")
    };
    host.eq_ignore_ascii_case("localhost")
        || host == "::1"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl VisionLanguageModel for Client {
    fn name(&self) -> String {
        self.spec.to_string()
    }

    fn endpoint(&self) -> String {
        self.endpoint.base_url.clone()
    }

    fn generate(&self, req: &VlmRequest) -> Result<VlmResponse, VlmError> {
        self.generate_counted(req).result
    }

    fn batch_api(&self) -> Option<&dyn crate::batch::BatchApi> {
        matches!(self.spec.provider, Provider::Openai | Provider::Gemini)
            .then_some(self as &dyn crate::batch::BatchApi)
    }

    fn generate_counted(&self, req: &VlmRequest) -> Generated {
        let (url, headers, body) = self.wire(req);
        tracing::debug!(model = %self.spec, %url, "sending request");
        // What a tokens-per-minute limit counts: estimated input plus the output limit.
        let u = crate::prices::estimate_tokens(&self.spec, req);
        let tokens = u.input_tokens.unwrap_or(0) + u.output_tokens.unwrap_or(0);
        let (reply, timed_out_attempts) = self
            .transport
            .post_json_weighted(&url, &headers, &body, tokens);
        Generated {
            result: reply.and_then(|reply| self.read_reply(&reply)),
            timed_out_attempts,
        }
    }
}

impl Client {
    pub(crate) fn read_reply(
        &self,
        reply: &crate::transport::JsonReply,
    ) -> Result<VlmResponse, VlmError> {
        let provider = self.spec.provider.as_str();
        let (text, finish, usage, model_version) = match self.spec.provider {
            Provider::Openai | Provider::OpenaiCompatible => {
                openai::parse_reply(provider, &reply.body)?
            }
            Provider::Gemini => gemini::parse_reply(provider, &reply.body)?,
            Provider::Ollama => ollama::parse_reply(provider, &reply.body)?,
        };
        Ok(VlmResponse {
            text,
            finish,
            usage,
            latency_ms: reply.latency_ms,
            attempts: reply.attempts,
            model_version,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::is_loopback;

    #[test]
    fn recognises_loopback_hosts() {
        assert!(is_loopback("http://127.0.0.1:11434"));
        assert!(is_loopback("http://localhost:8000/v1"));
        assert!(is_loopback("http://[::1]:8000/v1"));
        assert!(!is_loopback("https://api.openai.com/v1"));
        assert!(!is_loopback("http://gpu-box:11434"));
    }
}
