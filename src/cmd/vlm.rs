//! Options and the batch runner shared by the vision-language-model commands (issue #6):
//! `mica classify`, `mica ask`, and `mica count --model` (which calls [`count`]).
//!
//! Each answer is written (CSV row flushed, cache row committed) as soon as it arrives, so an
//! interrupted run loses nothing it had received and a rerun pays only for what is missing.

use super::Ctx;
use anyhow::{bail, Context as _};
use mica_vlm::prepare::{prepare_file, sample_id, Encoding, PrepareOptions, Resize};
use mica_vlm::prompt::{few_shot_turns, PromptContext, TemplateSet};
use mica_vlm::task::AnswerValue;
use mica_vlm::{
    default_limits, run_batch, Client, ClientOptions, Detail, Engine, ModelSpec, Outcome,
    PriceTable, ResponseCache, RetryPolicy, Sampling, Structured, Task, TaskPrompt, VlmError,
};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Flags of every command that talks to a vision-language model.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct VlmOptions {
    /// API base URL (else OPENAI_BASE_URL, GEMINI_BASE_URL or OLLAMA_HOST, else the public default).
    #[arg(long, value_name = "URL", help_heading = "Model")]
    pub base_url: Option<String>,
    /// Prompt variant of the task's template: `study` (the study's protocol) or `domain`
    /// (states modality, stain, objects, scale bar).
    #[arg(
        long,
        default_value = "study",
        value_name = "NAME",
        help_heading = "Prompt"
    )]
    pub prompt_variant: String,
    /// A prompt template file (TOML, same shape as crates/vlm/prompts/*.toml) instead of the built-in one.
    #[arg(long, value_name = "FILE", help_heading = "Prompt")]
    pub prompt_file: Option<PathBuf>,
    /// What to count or measure, as the prompt names it (e.g. cells, fibres, particles).
    #[arg(
        long,
        default_value = "objects",
        value_name = "TEXT",
        help_heading = "Prompt"
    )]
    pub objects: String,
    /// Imaging modality for the `domain` prompt (e.g. "scanning electron microscope (SEM)").
    #[arg(
        long,
        default_value = "microscope",
        value_name = "TEXT",
        help_heading = "Prompt"
    )]
    pub modality: String,
    /// Stain or sample preparation for the `domain` prompt.
    #[arg(long, value_name = "TEXT", help_heading = "Prompt")]
    pub stain: Option<String>,
    /// A sentence about the scale bar or information bar for the `domain` prompt.
    #[arg(long, value_name = "TEXT", help_heading = "Prompt")]
    pub scale_bar: Option<String>,
    /// Few-shot examples (TOML: [[example]] image = "...", answer = "..."), sent before each question.
    #[arg(long, value_name = "FILE", help_heading = "Prompt")]
    pub few_shot: Option<PathBuf>,
    /// Do not ask for JSON-schema output; read answers with the text parsers only.
    #[arg(long, help_heading = "Prompt")]
    pub no_structured: bool,
    /// How to ask for JSON-schema output: auto (each provider's own form), off (as
    /// --no-structured), json-object (OpenAI-compatible servers that take
    /// `{"type": "json_object", "schema": …}`, such as llama-cpp-python's).
    #[arg(long, value_name = "MODE", value_parser = Structured::parse, conflicts_with = "no_structured", help_heading = "Prompt")]
    pub structured: Option<Structured>,

    /// Sampling temperature (unset: the provider's default).
    #[arg(long, value_name = "T", help_heading = "Sampling")]
    pub temperature: Option<f64>,
    /// Sampling seed (OpenAI, Gemini, Ollama).
    #[arg(long, value_name = "N", help_heading = "Sampling")]
    pub seed: Option<u64>,
    /// Maximum new tokens per answer.
    #[arg(long, value_name = "N", help_heading = "Sampling")]
    pub max_tokens: Option<u32>,
    /// OpenAI image detail level.
    #[arg(long, value_enum, default_value = "high", help_heading = "Sampling")]
    pub detail: DetailArg,

    /// Remove this many rows from the bottom of each image before sending.
    #[arg(long, value_name = "PX", help_heading = "Image")]
    pub crop_bottom: Option<u32>,
    /// Remove the NFFA SEM information bar (the bottom 168 rows of a 1024x768 image).
    #[arg(long, conflicts_with = "crop_bottom", help_heading = "Image")]
    pub crop_info_bar: bool,
    /// Shrink so the longer side is at most PX.
    #[arg(
        long,
        value_name = "PX",
        conflicts_with = "resize",
        help_heading = "Image"
    )]
    pub max_side: Option<u32>,
    /// Resize to exactly WxH (the study used 1024x600 for LLaVA).
    #[arg(long, value_name = "WxH", help_heading = "Image")]
    pub resize: Option<String>,
    /// Encoding of the image sent.
    #[arg(long, value_enum, default_value = "png", help_heading = "Image")]
    pub image_format: ImageFormatArg,

    /// Requests in flight at once (default per provider: openai 4, gemini 2, ollama 1, compatible 2).
    #[arg(long, value_name = "N", help_heading = "Requests")]
    pub concurrency: Option<usize>,
    /// Requests started per minute, 0 = no limit (default: openai 60, gemini 15, others none).
    #[arg(long, value_name = "N", help_heading = "Requests")]
    pub rpm: Option<u32>,
    /// Tokens per minute, 0 = no limit (default none): each request counts its estimated input
    /// tokens plus its output limit (--max-tokens, else 1024), as OpenAI counts them.
    #[arg(long, value_name = "N", help_heading = "Requests")]
    pub tpm: Option<u32>,
    /// Timeout of one request in seconds.
    #[arg(
        long,
        default_value_t = 120.0,
        value_name = "S",
        help_heading = "Requests"
    )]
    pub timeout_s: f64,
    /// Retries after a 429, 5xx, timeout or connection error (never after 400/401).
    #[arg(long, default_value_t = 4, value_name = "N", help_heading = "Requests")]
    pub retries: u32,
    /// Response cache database (default: $MICA_CACHE_DIR, $XDG_CACHE_HOME/mica or ~/.cache/mica, file vlm-responses.sqlite).
    #[arg(long, value_name = "FILE", help_heading = "Requests")]
    pub cache: Option<PathBuf>,
    /// Neither read nor write the response cache.
    #[arg(long, conflicts_with = "cache", help_heading = "Requests")]
    pub no_cache: bool,
    /// Price table (TOML) for cost estimates (default: the built-in table; see docs/vlm.md).
    #[arg(long, value_name = "FILE", help_heading = "Requests")]
    pub prices: Option<PathBuf>,
    /// Stop before a request that could take spending in this run above USD.
    #[arg(long, value_name = "USD", help_heading = "Requests")]
    pub max_cost: Option<f64>,
    /// Prepare the images and print the estimated worst-case cost; send nothing.
    #[arg(long, help_heading = "Requests")]
    pub dry_run: bool,
}

/// `--detail`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DetailArg {
    Low,
    #[default]
    High,
    Auto,
}

/// `--image-format`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ImageFormatArg {
    #[default]
    Png,
    Jpeg,
}

impl VlmOptions {
    fn prepare_options(&self) -> anyhow::Result<PrepareOptions> {
        let resize = match (&self.resize, self.max_side) {
            (Some(s), _) => {
                let (w, h) = s
                    .split_once(['x', 'X'])
                    .and_then(|(w, h)| Some((w.trim().parse().ok()?, h.trim().parse().ok()?)))
                    .filter(|&(w, h): &(u32, u32)| w > 0 && h > 0)
                    .with_context(|| format!("--resize {s}: expected WxH, e.g. 1024x600"))?;
                Resize::Exact {
                    width: w,
                    height: h,
                }
            }
            (None, Some(0)) => bail!("--max-side must be positive"),
            (None, Some(m)) => Resize::Longest { max_side: m },
            (None, None) => Resize::None,
        };
        Ok(PrepareOptions {
            crop_bottom_px: if self.crop_info_bar {
                mica_vlm::prepare::NFFA_INFO_BAR_PX
            } else {
                self.crop_bottom.unwrap_or(0)
            },
            resize,
            encoding: match self.image_format {
                ImageFormatArg::Png => Encoding::Png,
                ImageFormatArg::Jpeg => Encoding::Jpeg,
            },
            ..PrepareOptions::default()
        })
    }

    fn sampling(&self) -> Sampling {
        Sampling {
            temperature: self.temperature,
            seed: self.seed,
            max_tokens: self.max_tokens,
            detail: match self.detail {
                DetailArg::Low => Detail::Low,
                DetailArg::High => Detail::High,
                DetailArg::Auto => Detail::Auto,
            },
        }
    }

    /// The structured-output mode the flags ask for.
    pub fn structured_mode(&self) -> Structured {
        if self.no_structured {
            Structured::Off
        } else {
            self.structured.unwrap_or_default()
        }
    }

    fn context(&self) -> PromptContext {
        let mut c = PromptContext::default();
        c.set("modality", self.modality.clone());
        if let Some(s) = &self.stain {
            c.set("stain", s.clone());
        }
        if let Some(s) = &self.scale_bar {
            c.set("scale_bar", s.clone());
        }
        c
    }
}

/// Counts objects in `images` with `model` (`provider:model`).
pub fn count(
    model: &str,
    images: &[PathBuf],
    opts: &VlmOptions,
    csv: Option<&Path>,
    json: bool,
    ctx: &Ctx,
) -> anyhow::Result<i32> {
    let task = Task::Count {
        objects: opts.objects.clone(),
    };
    run_task(task, model, images, opts, csv, json, ctx)
}

/// Expands folders into their image files (sorted); files are kept as given.
pub fn expand_images(inputs: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in inputs {
        if p.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("{}: cannot list folder", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.is_file() && mica_core::io::has_image_extension(f))
                .collect();
            files.sort();
            if files.is_empty() {
                bail!("{}: no image files in this folder", p.display());
            }
            out.extend(files);
        } else {
            out.push(p.clone());
        }
    }
    if out.is_empty() {
        bail!("no images given");
    }
    Ok(out)
}

/// One output row.
#[derive(Debug, serde::Serialize)]
struct Record {
    image: String,
    id: String,
    model: String,
    task: &'static str,
    value: Option<AnswerValue>,
    parse_failure: Option<String>,
    raw_answer: Option<String>,
    finish: Option<String>,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    latency_ms: Option<u64>,
    cost_usd: Option<f64>,
    cached: Option<bool>,
    error: Option<String>,
}

impl Record {
    fn value_columns(task: &Task) -> Vec<&'static str> {
        match task {
            Task::Classify { .. } => vec!["class_id", "class_name"],
            Task::Count { .. } => vec!["count"],
            Task::Size { .. } => vec!["size_um"],
            Task::Describe | Task::Ask { .. } => vec!["answer"],
        }
    }

    fn value_cells(&self, task: &Task) -> Vec<String> {
        match (&self.value, task) {
            (Some(AnswerValue::Class { id, name, .. }), _) => vec![id.to_string(), name.clone()],
            (Some(AnswerValue::Count(n)), _) => vec![n.to_string()],
            (Some(AnswerValue::SizeUm(v)), _) => vec![v.to_string()],
            (Some(AnswerValue::Text(t)), _) => vec![t.clone()],
            (None, t) => vec![String::new(); Self::value_columns(t).len()],
        }
    }

    fn human(&self) -> String {
        if let Some(e) = &self.error {
            return format!("{}\terror: {e}", self.id);
        }
        let v = match &self.value {
            Some(AnswerValue::Class { id, name, .. }) => format!("{id}\t{name}"),
            Some(AnswerValue::Count(n)) => n.to_string(),
            Some(AnswerValue::SizeUm(v)) => format!("{v} µm"),
            Some(AnswerValue::Text(t)) => format!("\n{}\n", t.trim_end()),
            None => format!(
                "-\t(not parsed: {})",
                self.parse_failure.as_deref().unwrap_or("?")
            ),
        };
        format!("{}\t{v}", self.id)
    }
}

/// The prompt of `task` from the options (template file or built-in, variant, context,
/// structured output, few-shot examples).
fn task_prompt(task: Task, opts: &VlmOptions, prep: &PrepareOptions) -> anyhow::Result<TaskPrompt> {
    let templates = match &opts.prompt_file {
        Some(p) => TemplateSet::load(p)?,
        None => TemplateSet::builtin(task.kind())?,
    };
    let template = templates.variant(&opts.prompt_variant)?;
    let mut prompt = TaskPrompt::new(task, template, opts.context())?;
    prompt.structured = opts.structured_mode() != Structured::Off;
    if let Some(fs) = &opts.few_shot {
        prompt.few_shot = few_shot_turns(fs, &prompt.text, prep)?;
    }
    Ok(prompt)
}

/// The price table of `--prices`, else the built-in one.
pub(crate) fn prices(opts: &VlmOptions) -> anyhow::Result<PriceTable> {
    Ok(match &opts.prices {
        Some(p) => PriceTable::load(p)?,
        None => PriceTable::builtin()?,
    })
}

/// The provider's default limits with `--concurrency`, `--rpm`, `--tpm` and `--timeout-s` applied.
pub(crate) fn limits(spec: &ModelSpec, opts: &VlmOptions) -> anyhow::Result<mica_vlm::Limits> {
    let mut limits = default_limits(spec.provider);
    if let Some(c) = opts.concurrency {
        if c == 0 {
            bail!("--concurrency must be at least 1");
        }
        limits.concurrency = c;
    }
    if let Some(r) = opts.rpm {
        limits.requests_per_minute = r;
    }
    if let Some(t) = opts.tpm {
        limits.tokens_per_minute = t;
    }
    limits.timeout_s = opts.timeout_s;
    Ok(limits)
}

/// The client, the response cache (unless `--no-cache`) and the engine that joins them with the
/// price table and `--max-cost`; also the cache's path.
pub(crate) fn engine(
    spec: &ModelSpec,
    opts: &VlmOptions,
    limits: mica_vlm::Limits,
    prices: &PriceTable,
) -> anyhow::Result<(Engine, Option<PathBuf>)> {
    let client = Client::new(
        spec.clone(),
        &ClientOptions {
            base_url: opts.base_url.clone(),
            limits: Some(limits),
            retry: RetryPolicy {
                max_retries: opts.retries,
                ..RetryPolicy::default()
            },
            structured: opts.structured_mode(),
        },
    )?;
    let cache = if opts.no_cache {
        None
    } else {
        match opts.cache.clone().or_else(ResponseCache::default_path) {
            Some(p) => Some(ResponseCache::open(&p)?),
            None => {
                tracing::warn!("no cache location (HOME unset); answers will not be cached");
                None
            }
        }
    };
    let cache_path = cache.as_ref().map(|c| c.path().to_path_buf());
    let engine = Engine::new(Box::new(client), spec.clone(), cache, prices, opts.max_cost)?;
    Ok((engine, cache_path))
}

/// A vision-language model as a [`mica_core::Counter`]: each image (in memory, e.g. perturbed)
/// is prepared as `mica count --model` would send it, asked the count prompt, and the answer
/// parsed; answers go through the response cache, so a rerun pays only for new images.
pub(crate) struct VlmCounter {
    engine: Engine,
    prompt: TaskPrompt,
    prep: PrepareOptions,
    sampling: Sampling,
    name: String,
}

impl VlmCounter {
    /// HTTP calls made and answers taken from the cache so far.
    pub(crate) fn calls_and_hits(&self) -> (u64, u64) {
        self.engine.calls_and_hits()
    }

    pub(crate) fn method_name(&self) -> &str {
        &self.name
    }
}

impl mica_core::Counter for VlmCounter {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn count(&self, image: &mica_core::Image) -> Result<f64, mica_core::MethodError> {
        let img = mica_vlm::prepare::prepare(image, &self.prep, "image")?;
        let o = self
            .engine
            .answer(&self.prompt.request(img, &self.sampling))?;
        let a = self.prompt.interpret(&o.response);
        match a.value {
            Some(AnswerValue::Count(n)) => Ok(n as f64),
            _ => Err(format!(
                "{}: no count in the answer {:?}{}",
                self.name,
                a.raw,
                a.failure.map(|f| format!(" ({f})")).unwrap_or_default()
            )
            .into()),
        }
    }
}

/// A counter for `model` (`provider:model`) with the options of `mica count --model`.
pub(crate) fn counter(model: &str, opts: &VlmOptions) -> anyhow::Result<VlmCounter> {
    let spec = ModelSpec::parse(model)?;
    let prep = opts.prepare_options()?;
    let prompt = task_prompt(
        Task::Count {
            objects: opts.objects.clone(),
        },
        opts,
        &prep,
    )?;
    let prices = prices(opts)?;
    let (engine, _) = engine(&spec, opts, limits(&spec, opts)?, &prices)?;
    Ok(VlmCounter {
        engine,
        prompt,
        prep,
        sampling: opts.sampling(),
        name: format!("vlm:{spec}"),
    })
}

/// Runs `task` on every image and reports: CSV rows (flushed per answer), JSON array on stdout
/// with `json`, else one line per image on stdout; a summary on stderr.
pub(crate) fn run_task(
    task: Task,
    model: &str,
    images: &[PathBuf],
    opts: &VlmOptions,
    csv: Option<&Path>,
    json: bool,
    ctx: &Ctx,
) -> anyhow::Result<i32> {
    let images = expand_images(images)?;
    let spec = ModelSpec::parse(model)?;
    let prep = opts.prepare_options()?;
    let prompt = task_prompt(task.clone(), opts, &prep)?;
    let sampling = opts.sampling();
    let limits = limits(&spec, opts)?;
    let prices = prices(opts)?;
    // A shut-down model is refused before anything is planned or sent.
    prices.check_not_retired(&spec)?;

    if opts.dry_run {
        return dry_run(&spec, &images, &prompt, &prep, &sampling, &prices);
    }

    let (engine, cache_path) = engine(&spec, opts, limits, &prices)?;
    if engine.price().is_none() && !ctx.quiet {
        eprintln!(
            "note: {spec} has no price in the price table; costs are not estimated (see --prices)"
        );
    }

    let mut writer = match csv {
        Some(p) => {
            let mut w = csv::Writer::from_path(p)
                .with_context(|| format!("{}: cannot create CSV file", p.display()))?;
            let mut header = vec!["image", "id", "model"];
            header.extend(Record::value_columns(&task));
            header.extend([
                "parse_failure",
                "raw_answer",
                "finish",
                "input_tokens",
                "output_tokens",
                "latency_ms",
                "cost_usd",
                "cached",
                "error",
            ]);
            w.write_record(&header)
                .and_then(|_| w.flush().map_err(csv::Error::from))
                .with_context(|| format!("{}: cannot write", p.display()))?;
            Some((w, p.to_path_buf()))
        }
        None => None,
    };

    let pb = crate::progress::bar(images.len() as u64, task.kind().as_str(), ctx.quiet);
    let mut records: Vec<Option<Record>> = (0..images.len()).map(|_| None).collect();
    let mut write_error: Option<anyhow::Error> = None;
    let mut fatal: Option<String> = None;
    let workers = limits.concurrency;
    let unstarted = run_batch(
        images.len(),
        workers,
        |i| -> Result<Outcome, VlmError> {
            let img = prepare_file(&images[i], &prep)?;
            engine.answer(&prompt.request(img, &sampling))
        },
        |r| {
            let path = &images[r.index];
            let mut rec = Record {
                image: path.display().to_string(),
                id: sample_id(path),
                model: spec.to_string(),
                task: task.kind().as_str(),
                value: None,
                parse_failure: None,
                raw_answer: None,
                finish: None,
                input_tokens: None,
                output_tokens: None,
                latency_ms: None,
                cost_usd: None,
                cached: None,
                error: None,
            };
            match r.result {
                Ok(o) => {
                    let a = prompt.interpret(&o.response);
                    rec.value = a.value;
                    rec.parse_failure = a.failure;
                    rec.raw_answer = Some(a.raw);
                    rec.finish = Some(o.response.finish.label());
                    rec.input_tokens = o.response.usage.input_tokens;
                    rec.output_tokens = o.response.usage.output_tokens;
                    rec.latency_ms = Some(o.response.latency_ms);
                    rec.cost_usd = o.cost_usd;
                    rec.cached = Some(o.cached);
                }
                Err(e) => {
                    if !e.is_per_image() && fatal.is_none() {
                        fatal = Some(e.to_string());
                    }
                    pb.suspend(|| {
                        let msg = format!("error: {}: {e}", path.display());
                        eprintln!("{}", mica_core::text::terminal_safe(&msg));
                    });
                    rec.error = Some(e.to_string());
                }
            }
            if let Some((w, p)) = &mut writer {
                let mut row = vec![rec.image.clone(), rec.id.clone(), rec.model.clone()];
                row.extend(rec.value_cells(&task));
                let opt = |v: Option<String>| v.unwrap_or_default();
                row.extend([
                    opt(rec.parse_failure.clone()),
                    opt(rec.raw_answer.clone()),
                    opt(rec.finish.clone()),
                    opt(rec.input_tokens.map(|v| v.to_string())),
                    opt(rec.output_tokens.map(|v| v.to_string())),
                    opt(rec.latency_ms.map(|v| v.to_string())),
                    opt(rec.cost_usd.map(|v| format!("{v:.6}"))),
                    opt(rec.cached.map(|v| v.to_string())),
                    opt(rec.error.clone()),
                ]);
                let row: Vec<String> = row
                    .iter()
                    .map(|c| mica_core::text::csv_safe(c).into_owned())
                    .collect();
                if let Err(e) = w
                    .write_record(&row)
                    .and_then(|_| w.flush().map_err(csv::Error::from))
                {
                    if write_error.is_none() {
                        write_error =
                            Some(anyhow::anyhow!("{}: cannot write row: {e}", p.display()));
                    }
                }
            }
            if !json {
                pb.suspend(|| {
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "{}", mica_core::text::terminal_safe(&rec.human()));
                });
            }
            pb.inc(1);
            records[r.index] = Some(rec);
        },
    );
    pb.finish_and_clear();
    if let Some(e) = write_error {
        return Err(e);
    }
    if json {
        let done: Vec<&Record> = records.iter().flatten().collect();
        println!("{}", serde_json::to_string_pretty(&done)?);
    }

    let done: Vec<&Record> = records.iter().flatten().collect();
    let errors = done.iter().filter(|r| r.error.is_some()).count();
    let unparsed = done
        .iter()
        .filter(|r| r.error.is_none() && r.value.is_none())
        .count();
    let (calls, hits) = engine.calls_and_hits();
    let tokens_in: u64 = done
        .iter()
        .filter(|r| r.cached == Some(false))
        .filter_map(|r| r.input_tokens)
        .sum();
    let tokens_out: u64 = done
        .iter()
        .filter(|r| r.cached == Some(false))
        .filter_map(|r| r.output_tokens)
        .sum();
    if !ctx.quiet {
        let cost = match engine.price() {
            Some(_) => format!("${:.4}", engine.spent_usd()),
            None => "unknown (no price)".into(),
        };
        eprintln!(
            "{spec}: {} answered ({} not parsed), {errors} failed, {} not started; {calls} HTTP request(s), {hits} from cache{}; tokens in {tokens_in}, out {tokens_out}; cost {cost}",
            done.len() - errors,
            unparsed,
            unstarted.len(),
            cache_path
                .map(|p| format!(" ({})", p.display()))
                .unwrap_or_default(),
        );
    }
    if let Some(f) = fatal {
        eprintln!(
            "stopped: {f}; {} image(s) not sent (rerun to continue: answers so far are cached)",
            unstarted.len()
        );
    }
    Ok(if errors > 0 || !unstarted.is_empty() {
        crate::exit::PARTIAL
    } else {
        crate::exit::SUCCESS
    })
}

fn dry_run(
    spec: &ModelSpec,
    images: &[PathBuf],
    prompt: &TaskPrompt,
    prep: &PrepareOptions,
    sampling: &Sampling,
    prices: &PriceTable,
) -> anyhow::Result<i32> {
    let price = prices.lookup(spec);
    let mut tokens_in = 0u64;
    let mut tokens_out = 0u64;
    let mut failed = 0usize;
    for p in images {
        match prepare_file(p, prep) {
            Ok(img) => {
                let u = mica_vlm::prices::estimate_tokens(spec, &prompt.request(img, sampling));
                tokens_in += u.input_tokens.unwrap_or(0);
                tokens_out += u.output_tokens.unwrap_or(0);
            }
            Err(e) => {
                failed += 1;
                eprintln!("error: {e}");
            }
        }
    }
    let n = images.len() - failed;
    println!("model\timages\test_input_tokens\tmax_output_tokens\tmax_cost_usd\tmax_cost_per_100_images_usd");
    let (cost, per100) = match price {
        Some(p) => {
            let c = p.cost_usd(tokens_in, tokens_out);
            (
                format!("{c:.4}"),
                format!("{:.4}", if n > 0 { c * 100.0 / n as f64 } else { 0.0 }),
            )
        }
        None => ("unknown".into(), "unknown".into()),
    };
    println!("{spec}\t{n}\t{tokens_in}\t{tokens_out}\t{cost}\t{per100}");
    Ok(if failed > 0 {
        crate::exit::PARTIAL
    } else {
        crate::exit::SUCCESS
    })
}
