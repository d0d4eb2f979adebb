//! # mica-vlm
//!
//! Vision-language models over their real HTTP APIs, for classification, counting and visual
//! questions about microscopy images:
//!
//! - [`Client`] speaks OpenAI Chat Completions, Google Gemini `generateContent`, Ollama `/api/chat`
//!   and any OpenAI-compatible server; models are named `provider:model` ([`ModelSpec`]). It
//!   implements the small [`VisionLanguageModel`] capability.
//! - [`prepare`] turns a [`mica_core::Image`] into what is sent (crop, 8-bit stretch, RGB, resize,
//!   PNG/JPEG); only pixels are sent, never file names.
//! - [`prompt`] holds the prompt templates (data files, the study's protocol by default) and
//!   [`task`] turns answers into values with the parsers of `mica_metrics::parse`.
//! - [`Engine`] adds a SQLite [`ResponseCache`] (nothing is paid for twice; each answer committed
//!   as it arrives), token and cost accounting from a [`PriceTable`], and a cost limit;
//!   [`run_batch`] runs many requests with a worker pool.
//! - [`transport`]: timeouts, per-provider concurrency and requests-per-minute limits, retries
//!   with exponential backoff and jitter honouring `Retry-After`, never retrying 400/401.
//!
//! API keys come only from the environment (`OPENAI_API_KEY`, `GEMINI_API_KEY`), travel only in
//! request headers, and never appear in errors, logs or the cache ([`ApiKey`]).
//!
//! ```no_run
//! use mica_vlm::{Client, ClientOptions, ModelSpec, VisionLanguageModel, VlmRequest};
//! use mica_vlm::prepare::{prepare_file, PrepareOptions};
//! let spec = ModelSpec::parse("ollama:llava:13b")?;
//! let client = Client::new(spec, &ClientOptions::default())?;
//! let img = prepare_file("cells.tif".as_ref(), &PrepareOptions::default())?;
//! let answer = client.generate(&VlmRequest::single("How many cells? Count: <n>", vec![img]))?;
//! println!("{}", answer.text);
//! # Ok::<(), mica_vlm::VlmError>(())
//! ```

pub mod backend;
pub mod batch;
pub mod cache;
pub mod engine;
pub mod error;
pub mod judge;
pub mod model;
pub mod prepare;
pub mod prices;
pub mod prompt;
pub mod request;
pub mod secret;
pub mod task;
pub mod transport;

pub use backend::{
    default_limits, Client, ClientOptions, Generated, Structured, VisionLanguageModel,
};
pub use cache::{cache_key, ResponseCache};
pub use engine::{run_batch, Answered, BatchOptions, BatchRun, Engine, JobResult, Outcome};
pub use error::VlmError;
pub use judge::{Judge, JudgeConfig, Verdict};
pub use model::{Endpoint, ModelSpec, Provider};
pub use prices::{Budget, ModelPrice, PriceTable};
pub use request::{
    AnswerSchema, Detail, FinishReason, Role, Sampling, Turn, Usage, VlmRequest, VlmResponse,
};
pub use secret::ApiKey;
pub use task::{Answer, AnswerValue, Task, TaskPrompt};
pub use transport::{Limits, RetryPolicy};
