//! `--judge MODEL` of `mica eval vqa` and `mica report`: the LLM judge of `mica_vlm::judge` built
//! from the command line (model, rubric, sampling, limits, cache, prices, cost limit) with the
//! same client, cache and budget code as every other model call.

use super::vlm::VlmOptions;
use anyhow::Context;
use mica_vlm::judge::{builtin_rubrics, Judge, JudgeConfig};
use mica_vlm::prompt::TemplateSet;
use mica_vlm::ModelSpec;
use std::path::PathBuf;

/// The LLM judge's flags.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct JudgeArgs {
    /// Also have this model (`provider:model`, e.g. `openai:gpt-4.1-mini`, `ollama:llama3.1`)
    /// grade each answer 0–5 against the reference, with the study's rubric (key responses
    /// correct / wrong / uncertain). Calls are cached and costed like every model call.
    #[arg(long, value_name = "MODEL", help_heading = "LLM judge")]
    pub judge: Option<String>,
    /// The judge's API base URL (else OPENAI_BASE_URL, GEMINI_BASE_URL or OLLAMA_HOST).
    #[arg(long, value_name = "URL", help_heading = "LLM judge")]
    pub judge_base_url: Option<String>,
    /// A rubric file (TOML like crates/vlm/prompts/judge.toml, with {reference} and {answer}).
    #[arg(long, value_name = "FILE", help_heading = "LLM judge")]
    pub judge_rubric: Option<PathBuf>,
    /// The rubric variant.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "study",
        help_heading = "LLM judge"
    )]
    pub judge_rubric_variant: String,
    /// The question the answers replied to, shown to the judge (e.g. "Describe this image.").
    #[arg(long, value_name = "TEXT", help_heading = "LLM judge")]
    pub judge_question: Option<String>,
    /// The judge's sampling temperature (unset: the provider's default).
    #[arg(long, value_name = "T", help_heading = "LLM judge")]
    pub judge_temperature: Option<f64>,
    /// The judge's sampling seed.
    #[arg(long, value_name = "N", help_heading = "LLM judge")]
    pub judge_seed: Option<u64>,
    /// The judge's maximum new tokens (reasoning models need room to think).
    #[arg(long, value_name = "N", help_heading = "LLM judge")]
    pub judge_max_tokens: Option<u32>,
    /// Do not ask the judge for JSON-schema output (its reply is then read for `Score: N`).
    #[arg(long, help_heading = "LLM judge")]
    pub judge_no_structured: bool,
    /// Judge requests in flight (default per provider, as for every model).
    #[arg(long, value_name = "N", help_heading = "LLM judge")]
    pub judge_concurrency: Option<usize>,
    /// Judge requests started per minute, 0 = no limit.
    #[arg(long, value_name = "N", help_heading = "LLM judge")]
    pub judge_rpm: Option<u32>,
    /// Judge tokens per minute, 0 = no limit.
    #[arg(long, value_name = "N", help_heading = "LLM judge")]
    pub judge_tpm: Option<u32>,
    /// Timeout of one judge request in seconds.
    #[arg(
        long,
        value_name = "S",
        default_value_t = 120.0,
        help_heading = "LLM judge"
    )]
    pub judge_timeout_s: f64,
    /// Retries of a judge request after a 429, 5xx, timeout or connection error.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 4,
        help_heading = "LLM judge"
    )]
    pub judge_retries: u32,
    /// Response cache database (default: the one every mica model call uses).
    #[arg(long, value_name = "FILE", help_heading = "LLM judge")]
    pub judge_cache: Option<PathBuf>,
    /// Neither read nor write the response cache for the judge.
    #[arg(long, conflicts_with = "judge_cache", help_heading = "LLM judge")]
    pub judge_no_cache: bool,
    /// Price table (TOML) for the judge's costs (default: the built-in table).
    #[arg(long, value_name = "FILE", help_heading = "LLM judge")]
    pub judge_prices: Option<PathBuf>,
    /// Stop judging before a request that could take the judge's spending above USD.
    #[arg(long, value_name = "USD", help_heading = "LLM judge")]
    pub judge_max_cost: Option<f64>,
}

impl JudgeArgs {
    /// The judge, or `None` without `--judge`.
    ///
    /// # Errors
    /// A bad model name, a missing key, an unreadable rubric or price table, a bad limit.
    pub fn load(&self) -> anyhow::Result<Option<Judge>> {
        let Some(model) = &self.judge else {
            return Ok(None);
        };
        let spec = ModelSpec::parse(model).with_context(|| format!("--judge {model}"))?;
        let opts = VlmOptions {
            base_url: self.judge_base_url.clone(),
            no_structured: self.judge_no_structured,
            temperature: self.judge_temperature,
            seed: self.judge_seed,
            max_tokens: self.judge_max_tokens,
            concurrency: self.judge_concurrency,
            rpm: self.judge_rpm,
            tpm: self.judge_tpm,
            timeout_s: self.judge_timeout_s,
            retries: self.judge_retries,
            cache: self.judge_cache.clone(),
            no_cache: self.judge_no_cache,
            prices: self.judge_prices.clone(),
            max_cost: self.judge_max_cost,
            ..VlmOptions::default()
        };
        let limits = super::vlm::limits(&spec, &opts)?;
        let workers = limits.concurrency;
        let prices = super::vlm::prices(&opts)?;
        let (engine, _) = super::vlm::engine(&spec, &opts, limits, &prices)?;
        let (set, source) = match &self.judge_rubric {
            Some(p) => (TemplateSet::load(p)?, p.display().to_string()),
            None => (builtin_rubrics()?, "built-in judge.toml".to_string()),
        };
        let rubric = set.variant(&self.judge_rubric_variant)?;
        let judge = Judge::new(
            engine,
            rubric,
            &format!("{source} [{}]", self.judge_rubric_variant),
            JudgeConfig {
                question: self.judge_question.clone(),
                sampling: mica_vlm::Sampling {
                    temperature: self.judge_temperature,
                    seed: self.judge_seed,
                    max_tokens: self.judge_max_tokens,
                    ..Default::default()
                },
                structured: !self.judge_no_structured,
                workers,
            },
        )?;
        Ok(Some(judge))
    }
}

/// One line on what the judge did: calls, cache hits, spending.
pub fn spending(judge: &Judge) -> String {
    let e = judge.engine();
    let (calls, hits) = e.calls_and_hits();
    let cost = if e.price().is_some() {
        format!("${:.4}", e.spent_usd())
    } else {
        format!("cost unknown ({} has no price in the table)", e.spec())
    };
    format!(
        "judge {}: {calls} requests sent, {hits} answers from the cache, {cost}",
        e.spec()
    )
}
