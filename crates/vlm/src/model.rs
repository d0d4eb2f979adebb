//! Model names (`provider:model`), providers, and where their APIs live.

use crate::error::VlmError;
use crate::secret::ApiKey;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The API a model is reached through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Provider {
    /// OpenAI Chat Completions (`https://api.openai.com/v1`), key in `OPENAI_API_KEY`.
    Openai,
    /// Google Gemini `generateContent`, key in `GEMINI_API_KEY`.
    Gemini,
    /// Ollama's native `/api/chat` (how LLaVA is usually run locally); no key.
    Ollama,
    /// Any server speaking Chat Completions (vLLM, llama.cpp server, LM Studio, Ollama `/v1`);
    /// the base URL is required, a key (`OPENAI_API_KEY`) is sent only when set.
    OpenaiCompatible,
}

impl Provider {
    /// All providers, in documentation order.
    pub const ALL: [Provider; 4] = [
        Provider::Openai,
        Provider::Gemini,
        Provider::Ollama,
        Provider::OpenaiCompatible,
    ];

    /// The name used in model names and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Openai => "openai",
            Provider::Gemini => "gemini",
            Provider::Ollama => "ollama",
            Provider::OpenaiCompatible => "openai-compatible",
        }
    }

    /// Parses a provider name (`google` is accepted for `gemini`).
    pub fn parse(s: &str) -> Option<Provider> {
        match s.to_ascii_lowercase().as_str() {
            "openai" => Some(Provider::Openai),
            "gemini" | "google" => Some(Provider::Gemini),
            "ollama" => Some(Provider::Ollama),
            "openai-compatible" | "openai_compatible" => Some(Provider::OpenaiCompatible),
            _ => None,
        }
    }

    /// The environment variable holding the API key, if the provider uses one.
    pub fn key_var(self) -> Option<&'static str> {
        match self {
            Provider::Openai | Provider::OpenaiCompatible => Some("OPENAI_API_KEY"),
            Provider::Gemini => Some("GEMINI_API_KEY"),
            Provider::Ollama => None,
        }
    }

    /// The environment variable that overrides the base URL.
    pub fn base_url_var(self) -> &'static str {
        match self {
            Provider::Openai | Provider::OpenaiCompatible => "OPENAI_BASE_URL",
            Provider::Gemini => "GEMINI_BASE_URL",
            Provider::Ollama => "OLLAMA_HOST",
        }
    }

    /// The public default base URL; `None` for `openai-compatible`, which must be given one.
    pub fn default_base_url(self) -> Option<&'static str> {
        match self {
            Provider::Openai => Some("https://api.openai.com/v1"),
            Provider::Gemini => Some("https://generativelanguage.googleapis.com/v1beta"),
            Provider::Ollama => Some("http://127.0.0.1:11434"),
            Provider::OpenaiCompatible => None,
        }
    }

    /// Whether a request without a key is refused before sending.
    pub fn key_required(self) -> bool {
        matches!(self, Provider::Openai | Provider::Gemini)
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A model as named on the command line: `openai:gpt-4o`, `gemini:gemini-3.5-flash`,
/// `ollama:llava:13b`, `openai-compatible:NAME`. Everything after the first `:` is the model.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ModelSpec {
    pub provider: Provider,
    pub model: String,
}

impl ModelSpec {
    /// Parses `provider:model`.
    ///
    /// # Errors
    /// [`VlmError::ModelName`] when there is no `:`, the provider is unknown or the model empty.
    ///
    /// ```
    /// use mica_vlm::{ModelSpec, Provider};
    /// let m = ModelSpec::parse("ollama:llava:13b").unwrap();
    /// assert_eq!((m.provider, m.model.as_str()), (Provider::Ollama, "llava:13b"));
    /// ```
    pub fn parse(name: &str) -> Result<ModelSpec, VlmError> {
        let err = |reason: String| VlmError::ModelName {
            name: name.to_string(),
            reason,
        };
        let (p, m) = name.split_once(':').ok_or_else(|| {
            err("expected provider:model, e.g. openai:gpt-4o, gemini:gemini-3.5-flash, ollama:llava:13b, openai-compatible:NAME".into())
        })?;
        let provider = Provider::parse(p.trim()).ok_or_else(|| {
            err(format!(
                "unknown provider `{p}` (known: openai, gemini, ollama, openai-compatible)"
            ))
        })?;
        let model = m.trim();
        if model.is_empty() {
            return Err(err("the model after the provider is empty".into()));
        }
        Ok(ModelSpec {
            provider,
            model: model.to_string(),
        })
    }
}

impl fmt::Display for ModelSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.provider, self.model)
    }
}

/// Where and how to reach a provider: base URL and key, resolved once.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Base URL without a trailing `/`, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    pub key: Option<ApiKey>,
}

impl Endpoint {
    /// Resolves the base URL (`explicit`, else the provider's environment variable, else its public
    /// default) and the key (only from the provider's environment variable).
    ///
    /// # Errors
    /// [`VlmError::MissingKey`] when OpenAI or Gemini has no key; [`VlmError::Config`] when
    /// `openai-compatible` has no base URL or a URL is not http(s).
    pub fn resolve(provider: Provider, explicit: Option<&str>) -> Result<Endpoint, VlmError> {
        let env = |v: &str| std::env::var(v).ok().filter(|s| !s.trim().is_empty());
        let key = provider.key_var().and_then(ApiKey::from_env);
        let from_env = env(provider.base_url_var());
        let raw = explicit
            .map(str::to_string)
            .or(from_env)
            .or(provider.default_base_url().map(str::to_string))
            .ok_or_else(|| {
                VlmError::Config(format!(
                    "{provider} needs a base URL: pass --base-url or set {}",
                    provider.base_url_var()
                ))
            })?;
        let base_url = normalise_base_url(provider, &raw)?;
        if key.is_none() && provider.key_required() {
            return Err(VlmError::MissingKey {
                provider: provider.to_string(),
                var: provider.key_var().unwrap_or_default().to_string(),
            });
        }
        Ok(Endpoint { base_url, key })
    }
}

/// Adds `http://` to scheme-less hosts (the `OLLAMA_HOST` convention, e.g. `0.0.0.0:11434`), maps
/// the listen-all address to loopback, and removes trailing slashes.
fn normalise_base_url(provider: Provider, raw: &str) -> Result<String, VlmError> {
    let mut s = raw.trim().trim_end_matches('/').to_string();
    if !s.contains("://") {
        s = format!("http://{s}");
    }
    if !(s.starts_with("http://") || s.starts_with("https://")) {
        return Err(VlmError::Config(format!(
            "{provider} base URL `{raw}` is not an http(s) URL"
        )));
    }
    if provider == Provider::Ollama {
        s = s.replace("://0.0.0.0", "://127.0.0.1");
        if s.matches(':').count() == 1 {
            s.push_str(":11434");
        }
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_model_names() {
        let m = ModelSpec::parse("openai:gpt-4o").unwrap();
        assert_eq!(m.provider, Provider::Openai);
        assert_eq!(m.to_string(), "openai:gpt-4o");
        let m = ModelSpec::parse("openai-compatible:llava-hf/llava-1.5-13b-hf").unwrap();
        assert_eq!(m.provider, Provider::OpenaiCompatible);
        assert_eq!(m.model, "llava-hf/llava-1.5-13b-hf");
        assert!(ModelSpec::parse("gpt-4o").is_err());
        assert!(ModelSpec::parse("claude:x").is_err());
        assert!(ModelSpec::parse("openai:").is_err());
    }

    #[test]
    fn normalises_ollama_hosts() {
        let n = |s| normalise_base_url(Provider::Ollama, s).unwrap();
        assert_eq!(n("0.0.0.0:11434"), "http://127.0.0.1:11434");
        assert_eq!(n("http://gpu-box"), "http://gpu-box:11434");
        assert_eq!(n("https://x.org:8443/"), "https://x.org:8443");
        assert!(normalise_base_url(Provider::Openai, "ftp://x").is_err());
    }
}
