//! The study's methods at run time: imported answers, segmenters (classical, SAM), and methods
//! that cannot run here (with the reason, shown in the report).

use super::schema::{MethodSpec, Study};
use anyhow::Context;
use mica_core::dataset::{self, Sample};
use mica_core::Segmenter;
use std::collections::HashMap;

/// One row of an imported method's answers.
#[derive(Debug, Clone)]
pub struct AnswerRow {
    /// The image as written in the CSV.
    pub key: String,
    /// `file:line`, for messages.
    pub at: String,
    /// The raw cell text.
    pub answer: String,
    /// The expert's grade of the answer (`grade_column`), as written.
    pub grade: Option<String>,
}

/// Answers of an imported method, as read; matched to a dataset's samples by [`Self::resolve`].
#[derive(Debug, Clone)]
pub struct ImportedAnswers {
    pub rows: Vec<AnswerRow>,
    /// The CSV files read, for messages.
    pub sources: Vec<String>,
}

impl ImportedAnswers {
    /// Matches the rows to `samples` by [`mica_core::dataset::NameIndex`] (id, then path, then
    /// name): sample index → the answer, or why it cannot be used (a name that matches several
    /// images, naming them; two different answers for one image, naming both rows). Rows that
    /// match no sample are not used.
    pub fn resolve(&self, samples: &[Sample]) -> HashMap<usize, Result<AnswerRow, String>> {
        let ix = dataset::NameIndex::of(samples);
        let mut out: HashMap<usize, Result<AnswerRow, String>> = HashMap::new();
        let mut from: HashMap<usize, &AnswerRow> = HashMap::new();
        for row in &self.rows {
            match ix.find(&row.key) {
                dataset::Lookup::One(i) => match (out.get(&i), from.get(&i)) {
                    (Some(Ok(old)), Some(first))
                        if old.answer != row.answer || old.grade != row.grade =>
                    {
                        let why = format!(
                            "two different answers for this image: {:?} ({}) and {:?} ({})",
                            old.answer, first.at, row.answer, row.at
                        );
                        out.insert(i, Err(why));
                    }
                    (Some(_), _) => {}
                    (None, _) => {
                        out.insert(i, Ok(row.clone()));
                        from.insert(i, row);
                    }
                },
                dataset::Lookup::Missing => {}
                dataset::Lookup::Ambiguous(hits) => {
                    let why = format!(
                        "{}: answer not used: {}",
                        row.at,
                        ix.ambiguity(&row.key, &hits)
                    );
                    for i in hits {
                        out.insert(i, Err(why.clone()));
                    }
                }
            }
        }
        out
    }
}

/// A vision-language model with its response cache, and the prompt variant to use.
pub struct VlmMethod {
    pub engine: mica_vlm::Engine,
    pub prompt: String,
    /// Batch API mode (`batch = true`): the time between two status requests.
    pub batch_poll: Option<std::time::Duration>,
    /// Requests in flight at once (its limits' concurrency): the run gives its images that
    /// many threads, whatever the number of cores.
    pub concurrency: usize,
    /// The answers its batches gave in this run, by request key, taken once each.
    pub batch_answers:
        std::sync::Mutex<HashMap<String, Result<mica_vlm::Outcome, mica_vlm::VlmError>>>,
}

/// A method ready to run, or the reason it cannot.
pub enum Runtime {
    Imported(ImportedAnswers),
    Segmenter(Box<dyn Segmenter>),
    Vlm(Box<VlmMethod>),
    Skipped(String),
}

/// Builds the runtime of every method of the study. A method that cannot run here (no weights, no
/// key, backend not built) becomes [`Runtime::Skipped`]; a broken imported CSV is an error.
///
/// # Errors
/// An imported CSV that cannot be read, lacks the column, or gives two answers for one image.
pub fn build(
    study: &Study,
    spec: &MethodSpec,
    vlm_cache: Option<&std::path::Path>,
    #[cfg(feature = "sam")] sam_device: Option<&mica_sam::Device>,
) -> anyhow::Result<Runtime> {
    #[cfg(not(feature = "sam"))]
    let sam_device: Option<&()> = None;
    match spec {
        MethodSpec::Imported {
            name,
            csv,
            column,
            key_column,
            relative_to,
            filter,
            grade_column,
            ..
        } => {
            let mut rows = Vec::new();
            let mut sources = Vec::new();
            for c in csv {
                let path = study.resolve_answers(c, *relative_to);
                let t = super::data::read_any_table(&path)
                    .with_context(|| format!("method {name:?}: cannot read answers"))?;
                let key = match key_column {
                    Some(k) => t.require_column(&[k.as_str()])?,
                    None => 0,
                };
                let col = t
                    .require_column(&[column.as_str()])
                    .with_context(|| format!("method {name:?}"))?;
                let grade = match grade_column {
                    Some(g) => Some(
                        t.require_column(&[g.as_str()])
                            .with_context(|| format!("method {name:?}: grade_column"))?,
                    ),
                    None => None,
                };
                let mut wanted = Vec::new();
                for (k, v) in filter {
                    let c = t
                        .require_column(&[k.as_str()])
                        .with_context(|| format!("method {name:?}: filter"))?;
                    wanted.push((c, v.trim()));
                }
                for (line, row) in &t.rows {
                    if row[key].trim().is_empty()
                        || wanted.iter().any(|(c, v)| row[*c].trim() != *v)
                    {
                        continue;
                    }
                    if let Some(g) = grade.map(|g| row[g].trim()) {
                        if !g.is_empty() && !g.parse::<f64>().is_ok_and(f64::is_finite) {
                            anyhow::bail!(
                                "method {name:?}: {}:{line}: the grade {g:?} in column {:?} is not a number",
                                path.display(),
                                grade_column.as_deref().unwrap_or_default()
                            );
                        }
                    }
                    rows.push(AnswerRow {
                        key: row[key].trim().to_string(),
                        at: format!("{}:{line}", path.display()),
                        answer: row[col].trim().to_string(),
                        grade: grade.map(|g| row[g].trim().to_string()),
                    });
                }
                if !filter.is_empty() && rows.is_empty() {
                    anyhow::bail!(
                        "method {name:?}: no row of {} matches the filter {filter:?}",
                        path.display()
                    );
                }
                sources.push(path.display().to_string());
            }
            Ok(Runtime::Imported(ImportedAnswers { rows, sources }))
        }
        MethodSpec::Classical {
            name,
            preset,
            tile,
            halo,
            ..
        } => {
            let p: mica_classical::Preset =
                preset.parse().with_context(|| format!("method {name:?}"))?;
            let tiling = mica_classical::Tiling::parse(
                &tile.as_ref().map_or_else(|| "auto".into(), |t| t.as_arg()),
                *halo,
            )
            .map_err(|e| anyhow::anyhow!("method {name:?}: {e}"))?;
            let c = mica_classical::Classical::preset(p)
                .with_context(|| format!("method {name:?}: preset {preset:?}"))?
                .with_tiling(tiling);
            Ok(Runtime::Segmenter(Box::new(c)))
        }
        MethodSpec::Sam {
            name,
            preset,
            model,
            weights,
            prompts,
            prompt_kind,
            count,
            points,
            boxes,
            tile,
            halo,
            ..
        } => Ok({
            let tile_arg = tile.as_ref().map(|t| t.as_arg());
            match sam_segmenter(
                study,
                &SamSpec {
                    preset,
                    prompts: prompts.as_deref(),
                    prompt_kind: prompt_kind.as_deref(),
                    count: count.as_deref(),
                    points: points.as_deref().map(|p| study.resolve(p)).as_deref(),
                    boxes: boxes.as_deref().map(|p| study.resolve(p)).as_deref(),
                    embeddings: None,
                    tile: tile_arg.as_deref(),
                    halo: *halo,
                },
                model.as_deref(),
                weights.as_deref(),
                sam_device,
            )
            .with_context(|| format!("method {name:?}"))?
            {
                Ok(s) => Runtime::Segmenter(s),
                Err(reason) => Runtime::Skipped(reason),
            }
        }),
        MethodSpec::Vlm {
            name,
            model,
            prompt,
            base_url,
            structured,
            batch,
            batch_poll_s,
            concurrency,
            requests_per_minute,
            tokens_per_minute,
            ..
        } => {
            let spec = mica_vlm::ModelSpec::parse(model)
                .with_context(|| format!("method {name:?}: model {model:?}"))?;
            let prices = mica_vlm::PriceTable::builtin()?;
            // A shut-down model is skipped with the reason, before any key or server is needed.
            if let Err(e) = prices.check_not_retired(&spec) {
                return Ok(Runtime::Skipped(e.to_string()));
            }
            let structured = match structured {
                Some(s) => mica_vlm::Structured::parse(s)
                    .map_err(|e| anyhow::anyhow!("method {name:?}: structured: {e}"))?,
                None => mica_vlm::Structured::Auto,
            };
            // Limits change how fast, never what is answered: not part of the settings hash.
            let mut limits = mica_vlm::default_limits(spec.provider);
            if let Some(c) = concurrency {
                limits.concurrency = *c;
            }
            if let Some(r) = requests_per_minute {
                limits.requests_per_minute = *r;
            }
            if let Some(t) = tokens_per_minute {
                limits.tokens_per_minute = *t;
            }
            let opts = mica_vlm::ClientOptions {
                base_url: base_url.clone(),
                structured,
                limits: Some(limits),
                ..Default::default()
            };
            let endpoint = match mica_vlm::Endpoint::resolve(spec.provider, base_url.as_deref()) {
                Ok(e) => e,
                Err(e) => return Ok(Runtime::Skipped(format!("{model}: {e}"))),
            };
            if endpoint.key.is_none() {
                // A local server (Ollama, an OpenAI-compatible one): skip quickly when nothing
                // listens, instead of failing every image after retries.
                if let Err(e) = server_reachable(&endpoint.base_url) {
                    return Ok(Runtime::Skipped(format!("{model}: {e}")));
                }
            }
            let client = match mica_vlm::Client::new(spec.clone(), &opts) {
                Ok(c) => c,
                Err(e) => return Ok(Runtime::Skipped(format!("{model}: {e}"))),
            };
            let cache = match vlm_cache {
                Some(p) => Some(
                    mica_vlm::ResponseCache::open(p)
                        .with_context(|| format!("method {name:?}: response cache"))?,
                ),
                None => None,
            };
            let engine = mica_vlm::Engine::new(Box::new(client), spec, cache, &prices, None)?;
            if *batch == Some(true) && !engine.has_batch_api() {
                return Ok(Runtime::Skipped(format!(
                    "{model}: `batch = true`, but mica speaks no Batch API for this provider"
                )));
            }
            Ok(Runtime::Vlm(Box::new(VlmMethod {
                engine,
                prompt: prompt.clone(),
                batch_poll: (*batch == Some(true))
                    .then(|| std::time::Duration::from_secs_f64(batch_poll_s.unwrap_or(30.0))),
                batch_answers: Default::default(),
                concurrency: limits.concurrency.max(1),
            })))
        }
    }
}

/// The effective settings of a method as built: everything that can change its predictions, as
/// JSON (hashed by the runner, stored with the method). Never a secret: a VLM's endpoint is its
/// URL, not its key.
///
/// - imported: the answer files as written in the study with the sha256 of their bytes, the
///   columns, and the version of the answer-reading rules;
/// - classical and SAM: the segmenter's own [`Segmenter::settings`] (resolved preset, model, AMG
///   configuration, image preparation, code version) and, for SAM, the weights file's sha256;
/// - vision-language models: model, endpoint URL, prompt variant, sha256 of the built-in prompt
///   templates, and the answer-reading rules' version;
/// - a skipped method: its settings as written (it makes no predictions).
pub fn effective_settings(study: &Study, spec: &MethodSpec, rt: &Runtime) -> serde_json::Value {
    use serde_json::json;
    let rules = mica_metrics::parse::RULES_VERSION;
    match (spec, rt) {
        (_, Runtime::Skipped(_)) => json!({ "as_written": spec }),
        (_, Runtime::Segmenter(seg)) => {
            json!({ "segmenter": seg.name(), "settings": seg.settings() })
        }
        (
            MethodSpec::Imported {
                csv,
                column,
                key_column,
                relative_to,
                filter,
                grade_column,
                ..
            },
            _,
        ) => {
            let files: Vec<_> = csv
                .iter()
                .map(|c| {
                    let sha = std::fs::read(study.resolve_answers(c, *relative_to))
                        .map(|b| mica_store::sha256_hex(&b))
                        .unwrap_or_else(|e| format!("unreadable: {e}"));
                    json!({ "file": c, "sha256": sha })
                })
                .collect();
            let mut j = json!({ "answers": files, "column": column, "key_column": key_column, "answer_rules": rules });
            // Only when set, so the settings hash of existing imported methods stays the same.
            if !filter.is_empty() {
                j["filter"] = json!(filter);
            }
            if let Some(g) = grade_column {
                j["grade_column"] = json!(g);
            }
            j
        }
        (
            MethodSpec::Vlm {
                model,
                prompt,
                base_url,
                structured,
                ..
            },
            _,
        ) => {
            use mica_vlm::prompt::TaskKind as T;
            let templates: String = [T::Classify, T::Count, T::Describe, T::Size]
                .iter()
                .map(|t| t.builtin_toml())
                .collect();
            let endpoint = mica_vlm::ModelSpec::parse(model)
                .ok()
                .and_then(|m| mica_vlm::Endpoint::resolve(m.provider, base_url.as_deref()).ok())
                .map(|e| e.base_url);
            let mut j = json!({
                "model": model,
                "endpoint": endpoint,
                "prompt": prompt,
                "templates_sha256": mica_store::sha256_hex(templates.as_bytes()),
                "sampling": format!("{:?}", mica_vlm::Sampling::default()),
                "answer_rules": rules,
            });
            // Only when set: methods written before the option keep their settings hash.
            if let Some(s) = structured {
                j["structured"] = json!(s);
            }
            j
        }
        _ => json!({ "as_written": spec }),
    }
}

/// A segmenter whose settings include the sha256 of the weights file it was loaded from.
#[cfg(feature = "sam")]
struct WithWeights {
    inner: mica_sam::SamSegmenter,
    weights: std::path::PathBuf,
    /// Hashed the first time the settings are asked for (a study does; `mica segment` never
    /// does, so it does not read a 2.5 GB ViT-H file a second time).
    weights_sha256: std::sync::OnceLock<String>,
}

#[cfg(feature = "sam")]
impl Segmenter for WithWeights {
    fn name(&self) -> String {
        self.inner.name()
    }
    fn settings(&self) -> serde_json::Value {
        let sha = self.weights_sha256.get_or_init(|| {
            mica_sam::weights::sha256_file(&self.weights)
                .unwrap_or_else(|e| format!("unreadable: {e}"))
        });
        serde_json::json!({ "sam": self.inner.settings(), "weights_sha256": sha })
    }
    fn memory_needed(&self, info: &mica_core::io::ImageInfo) -> u64 {
        self.inner.memory_needed(info)
    }
    fn segment(
        &self,
        image: &mica_core::Image,
    ) -> Result<mica_core::Segmentation, mica_core::MethodError> {
        self.inner.segment(image)
    }
    fn segment_file(
        &self,
        path: &std::path::Path,
        image: &mica_core::Image,
    ) -> Result<mica_core::Segmentation, mica_core::MethodError> {
        self.inner.segment_file(path, image)
    }
}

/// How a SAM method finds its masks, as written in a study file or on the command line.
#[derive(Debug, Clone, Copy)]
pub struct SamSpec<'a> {
    /// Generator preset (grid mode).
    pub preset: &'a str,
    /// `classical` or `classical:PRESET`: prompts from the classical pipeline's objects.
    pub prompts: Option<&'a str>,
    /// `box` (default), `box-point`, `point`.
    pub prompt_kind: Option<&'a str>,
    /// `objects` (default) or `masks`.
    pub count: Option<&'a str>,
    /// Named objects from a points CSV and/or a boxes CSV (`mica_sam::prompt_file`), instead of
    /// automatic masks.
    pub points: Option<&'a std::path::Path>,
    pub boxes: Option<&'a std::path::Path>,
    /// A folder of image embeddings to read and fill (`mica_sam::EmbeddingCache`).
    pub embeddings: Option<&'a std::path::Path>,
    /// Tiles for large images: `auto` (`None`: the default, `mica_sam::SamTiling::AUTO`),
    /// `off` or a core side in px; and the halo around each core (px).
    pub tile: Option<&'a str>,
    pub halo: Option<u32>,
}

/// Prompts from a detector's objects: one per object of its label image.
#[cfg(feature = "sam")]
pub struct DetectorPrompts {
    detector: Box<dyn Segmenter>,
    kind: mica_sam::PromptKind,
    /// Pixels added to every side of an object's box.
    margin: f32,
}

/// Margin added to a detected object's box before it prompts SAM (pixels). Measured on the
/// StarDist nuclei image with the classical boxes: mSA 0.427 at 0, 0.415 at 1, 0.358 at 3,
/// 0.283 at 6 (docs/sam.md): SAM finds the outline itself, and a looser box invites neighbours.
#[cfg(feature = "sam")]
pub const PROMPT_BOX_MARGIN: f32 = 0.0;

#[cfg(feature = "sam")]
impl DetectorPrompts {
    /// Parses `classical` or `classical:PRESET`.
    ///
    /// # Errors
    /// An unknown detector or preset, an unknown prompt kind.
    pub fn parse(source: &str, kind: Option<&str>) -> anyhow::Result<Self> {
        let (det, preset) = match source.split_once(':') {
            Some((d, p)) => (d, Some(p)),
            None => (source, None),
        };
        if !det.eq_ignore_ascii_case("classical") {
            anyhow::bail!("unknown prompt source {source:?} (known: classical, classical:PRESET)");
        }
        let p: mica_classical::Preset = match preset {
            Some(p) => p.parse()?,
            None => DEFAULT_CLASSICAL_PRESET,
        };
        let kind = kind
            .map(mica_sam::PromptKind::from_name)
            .transpose()?
            .unwrap_or_default();
        Ok(DetectorPrompts {
            detector: Box::new(mica_classical::Classical::preset(p)?),
            kind,
            margin: PROMPT_BOX_MARGIN,
        })
    }
}

/// The classical preset `mica segment`/`mica count` use when none is named.
pub const DEFAULT_CLASSICAL_PRESET: mica_classical::Preset = mica_classical::Preset::Auto;

#[cfg(feature = "sam")]
impl mica_sam::PromptSource for DetectorPrompts {
    fn name(&self) -> String {
        format!("{}:{}", self.detector.name(), self.kind.name())
    }
    fn settings(&self) -> serde_json::Value {
        serde_json::json!({
            "detector": self.detector.name(),
            "detector_settings": self.detector.settings(),
            "kind": self.kind,
            "box_margin_px": self.margin,
        })
    }
    fn prompts(
        &self,
        image: &mica_core::Image,
    ) -> Result<Vec<mica_sam::Prompt>, mica_core::MethodError> {
        let seg = self.detector.segment(image)?;
        Ok(mica_sam::prompted::prompts_from_labels(
            &seg.labels,
            self.kind,
            self.margin,
        ))
    }
}

/// The one SAM factory of mica (a study's method and `mica segment --method sam` both come here):
/// loads the weights file on `device` (as `model`, or whatever model the file holds), builds the
/// automatic mask generator with `config` (or, with `spec.prompts`, the detector-prompted
/// segmenter), and returns it as a segmenter whose settings include the weights file's sha256
/// (computed when the settings are first asked for).
///
/// # Errors
/// The weights cannot be read or loaded, or the configuration is invalid.
#[cfg(feature = "sam")]
pub fn load_sam(
    model: Option<mica_sam::SamModel>,
    weights: &std::path::Path,
    config: mica_sam::AmgConfig,
    spec: &SamSpec,
    device: &mica_sam::Device,
) -> anyhow::Result<Box<dyn Segmenter>> {
    let count = spec
        .count
        .map(mica_sam::SamCount::from_name)
        .transpose()?
        .unwrap_or_default();
    let source = spec
        .prompts
        .map(|p| DetectorPrompts::parse(p, spec.prompt_kind))
        .transpose()?;
    if source.is_none() && spec.prompt_kind.is_some() {
        anyhow::bail!("a prompt kind is given without prompts (e.g. prompts = \"classical\")");
    }
    let files = (spec.points.is_some() || spec.boxes.is_some())
        .then(|| mica_sam::PromptFiles::read(spec.points, spec.boxes))
        .transpose()?;
    if files.is_some() && (source.is_some() || spec.count.is_some()) {
        anyhow::bail!(
            "prompt files (points, boxes) give one object per prompt; they do not combine \
             with detector prompts or a count rule"
        );
    }
    let tiling = mica_sam::SamTiling::parse(spec.tile.unwrap_or("auto"), spec.halo)
        .map_err(|e| anyhow::anyhow!("tile/halo: {e}"))?;
    let sam = load_sam_model(model, weights, spec.embeddings, device)?;
    let prep = mica_sam::ImagePrep::default();
    let seg = match (files, source) {
        (Some(f), _) => mica_sam::SamSegmenter::from_prompt_files(sam, f, prep),
        (None, Some(s)) => mica_sam::SamSegmenter::prompted(
            sam,
            Box::new(s),
            mica_sam::PromptedConfig::default(),
            prep,
        )?
        .with_count(count),
        (None, None) => {
            mica_sam::SamSegmenter::new(sam, config, prep, spec.preset)?.with_count(count)
        }
    };
    // A person's prompts are decoded on the whole image: `with_tiling` refuses any tiling but
    // the default and `off` for them.
    let seg = seg.with_tiling(tiling)?;
    Ok(Box::new(WithWeights {
        inner: seg,
        weights: weights.to_path_buf(),
        weights_sha256: std::sync::OnceLock::new(),
    }))
}

/// The SAM model in `weights` (insisting on `model` when given) on `device`, reading and filling
/// the embedding folder `embeddings` when given.
///
/// # Errors
/// The weights cannot be read or loaded, or the folder cannot be created.
#[cfg(feature = "sam")]
pub fn load_sam_model(
    model: Option<mica_sam::SamModel>,
    weights: &std::path::Path,
    embeddings: Option<&std::path::Path>,
    device: &mica_sam::Device,
) -> anyhow::Result<mica_sam::Sam> {
    let mut sam = match model {
        Some(m) => mica_sam::Sam::load_as(m, weights, device)?,
        None => mica_sam::Sam::load(weights, device)?,
    };
    tracing::info!(model = %sam.model(), weights = %weights.display(), "SAM weights loaded");
    if let Some(dir) = embeddings {
        sam = sam.with_embedding_cache(mica_sam::EmbeddingCache::new(dir, weights)?);
    }
    Ok(sam)
}

/// SAM (MobileSAM unless `model` names another) as `spec` says, on `device`, as a segmenter with
/// the study's foreground rules; `Ok(Err(reason))` when it cannot run here (no weights: the
/// reason says how to get them), `Err` for a spec that is wrong. Weights: `weights` in the
/// study (relative to the data root), else the SAM crate's own resolution
/// (`MICA_SAM_WEIGHTS`, then the cache directory, sha256-checked).
#[cfg(feature = "sam")]
fn sam_segmenter(
    study: &Study,
    spec: &SamSpec,
    model: Option<&str>,
    weights: Option<&str>,
    device: Option<&mica_sam::Device>,
) -> anyhow::Result<Result<Box<dyn Segmenter>, String>> {
    let p = mica_sam::AmgPreset::from_name(spec.preset)?;
    let m = mica_sam::SamModel::from_name(model.unwrap_or("mobile_sam"))?;
    check_sam_spec(spec)?;
    let explicit = weights.map(|w| study.resolve(w));
    let w = match mica_sam::resolve_weights(m, explicit.as_deref()) {
        Ok(w) => w,
        Err(e) => return Ok(Err(format!("SAM {m} (preset {:?}): {e}", spec.preset))),
    };
    let cpu = mica_sam::Device::Cpu;
    Ok(load_sam(
        Some(m),
        &w.path,
        p.config(),
        &SamSpec {
            preset: p.name(),
            ..*spec
        },
        device.unwrap_or(&cpu),
    )
    .map_err(|e| format!("SAM {m} (preset {:?}): {e:#}", spec.preset)))
}

/// The parts of a SAM spec that can be checked without weights.
#[cfg(feature = "sam")]
fn check_sam_spec(spec: &SamSpec) -> anyhow::Result<()> {
    if (spec.points.is_some() || spec.boxes.is_some())
        && (spec.prompts.is_some() || spec.count.is_some() || spec.prompt_kind.is_some())
    {
        anyhow::bail!(
            "points and boxes files give one object per prompt; they do not combine with \
             prompts, prompt_kind or count"
        );
    }
    if let Some(c) = spec.count {
        mica_sam::SamCount::from_name(c)?;
    }
    mica_sam::SamTiling::parse(spec.tile.unwrap_or("auto"), spec.halo)
        .map_err(|e| anyhow::anyhow!("tile/halo: {e}"))?;
    match spec.prompts {
        Some(p) => {
            DetectorPrompts::parse(p, spec.prompt_kind)?;
        }
        None if spec.prompt_kind.is_some() => {
            anyhow::bail!("prompt_kind is given without prompts (e.g. prompts = \"classical\")")
        }
        None => {}
    }
    Ok(())
}

/// SAM in a build without the `sam` feature: never available.
#[cfg(not(feature = "sam"))]
fn sam_segmenter(
    _study: &Study,
    spec: &SamSpec,
    _model: Option<&str>,
    _weights: Option<&str>,
    _device: Option<&()>,
) -> anyhow::Result<Result<Box<dyn Segmenter>, String>> {
    Ok(Err(format!(
        "SAM (preset {:?}): this mica was built without the `sam` feature",
        spec.preset
    )))
}

/// Whether something accepts TCP connections at the host and port of `url` (2 s timeout).
fn server_reachable(url: &str) -> Result<(), String> {
    use std::net::{TcpStream, ToSocketAddrs};
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let hostport = rest.split('/').next().unwrap_or_default();
    let with_port = if hostport
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        hostport.to_string()
    } else {
        format!("{hostport}:{}", if scheme == "https" { 443 } else { 80 })
    };
    let addrs: Vec<_> = with_port
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve the server address {url}: {e}"))?
        .collect();
    for a in &addrs {
        if TcpStream::connect_timeout(a, std::time::Duration::from_secs(2)).is_ok() {
            return Ok(());
        }
    }
    Err(format!("no server answering at {url}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// A study in `dir/studies/s.toml` with its data root `dir/data`, one imported VQA method.
    fn study_with(dir: &Path, method: &str) -> anyhow::Result<(Study, MethodSpec)> {
        std::fs::create_dir_all(dir.join("data/imgs"))?;
        std::fs::create_dir_all(dir.join("studies"))?;
        let text = format!(
            "name = \"x\"\ndata_root = \"../data\"\n[[datasets]]\nname = \"d\"\nkind = \"folder\"\npath = \"imgs\"\n{method}\n[[tasks]]\nkind = \"vqa\"\ndatasets = [\"d\"]\nmethods = [\"m\"]\n"
        );
        let path = dir.join("studies/s.toml");
        std::fs::write(&path, &text)?;
        let study = Study::load(&path, None)?;
        let spec = study.file.methods[0].clone();
        Ok((study, spec))
    }

    /// The imported method's runtime (no cache, no device).
    fn build_imported(study: &Study, spec: &MethodSpec) -> anyhow::Result<Runtime> {
        build(
            study,
            spec,
            None,
            #[cfg(feature = "sam")]
            None,
        )
    }

    fn build_error(study: &Study, spec: &MethodSpec) -> String {
        build_imported(study, spec)
            .err()
            .map(|e| format!("{e:#}"))
            .unwrap_or_default()
    }

    fn rows_of(rt: Runtime) -> Vec<AnswerRow> {
        match rt {
            Runtime::Imported(a) => a.rows,
            _ => panic!("not imported"),
        }
    }

    /// A study with one classical counting method configured by `extra` lines.
    fn classical_with(dir: &Path, extra: &str) -> anyhow::Result<(Study, MethodSpec)> {
        std::fs::create_dir_all(dir.join("data/imgs"))?;
        std::fs::create_dir_all(dir.join("studies"))?;
        let text = format!(
            "name = \"x\"\ndata_root = \"../data\"\n[[datasets]]\nname = \"d\"\nkind = \"folder\"\npath = \"imgs\"\n[[methods]]\nname = \"m\"\nkind = \"classical\"\npreset = \"fluorescence-nuclei\"\n{extra}\n[[tasks]]\nkind = \"count\"\ndatasets = [\"d\"]\nmethods = [\"m\"]\n"
        );
        let path = dir.join("studies/s.toml");
        std::fs::write(&path, &text)?;
        let study = Study::load(&path, None)?;
        let spec = study.file.methods[0].clone();
        Ok((study, spec))
    }

    #[test]
    fn a_classical_method_takes_its_tiling_from_the_study_and_it_is_in_its_settings() {
        let dir = tempfile::tempdir().unwrap();
        let tiling_of = |extra: &str| {
            let (study, spec) = classical_with(dir.path(), extra).unwrap();
            let rt = build_imported(&study, &spec)?;
            Ok::<_, anyhow::Error>(
                effective_settings(&study, &spec, &rt)["settings"]["tiling"].clone(),
            )
        };
        let auto = tiling_of("").unwrap();
        assert_eq!(auto["tile_px"], 768);
        assert_eq!(auto["above_px"], 4096 * 4096);
        let fixed = tiling_of("tile = 256\nhalo = 40").unwrap();
        assert_eq!(
            (fixed["tile_px"].as_u64(), fixed["halo_px"].as_u64()),
            (Some(256), Some(40))
        );
        assert_eq!(fixed["above_px"], 0);
        let off = tiling_of("tile = \"off\"").unwrap();
        assert_eq!(off["above_px"], u64::MAX);
        let e = format!("{:#}", tiling_of("tile = 4").unwrap_err());
        assert!(
            e.contains("method \"m\"") && e.contains("at least 16"),
            "{e}"
        );
    }

    /// A SAM method takes its tiling from the study (real MobileSAM weights from `../shared`);
    /// a bad tile is refused naming the method.
    #[cfg(feature = "sam")]
    #[test]
    fn a_sam_method_takes_its_tiling_from_the_study_and_it_is_in_its_settings() {
        let dir = tempfile::tempdir().unwrap();
        let weights =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/models/mobile_sam.pt");
        let tiling_of = |extra: &str| {
            std::fs::create_dir_all(dir.path().join("data/imgs"))?;
            std::fs::create_dir_all(dir.path().join("studies"))?;
            let text = format!(
                "name = \"x\"\ndata_root = \"../data\"\n[[datasets]]\nname = \"d\"\nkind = \"folder\"\npath = \"imgs\"\n[[methods]]\nname = \"m\"\nkind = \"sam\"\nweights = {:?}\n{extra}\n[[tasks]]\nkind = \"count\"\ndatasets = [\"d\"]\nmethods = [\"m\"]\n",
                weights.display().to_string()
            );
            let path = dir.path().join("studies/s.toml");
            std::fs::write(&path, &text)?;
            let study = Study::load(&path, None)?;
            let spec = study.file.methods[0].clone();
            let rt = build_imported(&study, &spec)?;
            if let Runtime::Skipped(why) = &rt {
                anyhow::bail!("skipped: {why}");
            }
            Ok::<_, anyhow::Error>(
                effective_settings(&study, &spec, &rt)["settings"]["sam"]["tiling"].clone(),
            )
        };
        let auto = tiling_of("").unwrap();
        assert_eq!(
            (
                auto["above_side"].as_u64(),
                auto["tile_px"].as_u64(),
                auto["halo_px"].as_u64()
            ),
            (Some(2048), Some(768), Some(128)),
            "{auto}"
        );
        let fixed = tiling_of("tile = 348\nhalo = 64\nprompts = \"classical\"").unwrap();
        assert_eq!(
            (
                fixed["above_side"].as_u64(),
                fixed["tile_px"].as_u64(),
                fixed["halo_px"].as_u64()
            ),
            (Some(0), Some(348), Some(64))
        );
        let e = format!("{:#}", tiling_of("tile = 4").unwrap_err());
        assert!(
            e.contains("method \"m\"") && e.contains("at least 16"),
            "{e}"
        );
        // Prompts from a file are decoded on the whole image: the default is taken, tiles are
        // refused with the reason.
        let points = dir.path().join("points.csv");
        std::fs::write(
            &points,
            "image,x,y,label
a.png,5,5,1
",
        )
        .unwrap();
        let file = format!("points = {:?}", points.display().to_string());
        tiling_of(&file).unwrap();
        let e = format!(
            "{:#}",
            tiling_of(&format!("{file}\ntile = 348")).unwrap_err()
        );
        assert!(e.contains("prompts from a file"), "{e}");
    }

    const METHOD: &str = "[[methods]]\nname = \"m\"\nkind = \"imported\"\ncsv = [\"answers.csv\"]\nrelative_to = \"study\"\nkey_column = \"image\"\ncolumn = \"answer\"\nfilter = { model = \"B\" }\ngrade_column = \"grade\"";

    #[test]
    fn imported_answers_beside_the_study_filtered_by_model_with_grades() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("studies")).unwrap();
        std::fs::write(
            dir.path().join("studies/answers.csv"),
            "image,model,answer,grade\na.jpg,A,first,1\na.jpg,B,second,4\nb.jpg,B,third,\n",
        )
        .unwrap();
        let (study, spec) = study_with(dir.path(), METHOD).unwrap();
        let rows = rows_of(build_imported(&study, &spec).unwrap());
        let got: Vec<(&str, &str, Option<&str>)> = rows
            .iter()
            .map(|r| (r.key.as_str(), r.answer.as_str(), r.grade.as_deref()))
            .collect();
        assert_eq!(
            got,
            [("a.jpg", "second", Some("4")), ("b.jpg", "third", Some(""))]
        );
        // The filter and grade column are part of the settings (and so of the settings hash).
        let rt = build_imported(&study, &spec).unwrap();
        let set = effective_settings(&study, &spec, &rt);
        assert_eq!(set["filter"]["model"], "B");
        assert_eq!(set["grade_column"], "grade");
        assert!(set["answers"][0]["sha256"].as_str().unwrap().len() == 64);
    }

    #[test]
    fn imported_grade_that_is_not_a_number_or_a_filter_matching_nothing_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("studies")).unwrap();
        std::fs::write(
            dir.path().join("studies/answers.csv"),
            "image,model,answer,grade\na.jpg,B,second,four\n",
        )
        .unwrap();
        let (study, spec) = study_with(dir.path(), METHOD).unwrap();
        let err = build_error(&study, &spec);
        assert!(
            err.contains("answers.csv:2: the grade \"four\" in column \"grade\" is not a number"),
            "{err}"
        );
        let (study2, spec2) = study_with(
            dir.path(),
            &METHOD.replace("model = \"B\"", "model = \"C\""),
        )
        .unwrap();
        let err = build_error(&study2, &spec2);
        assert!(
            err.contains("no row of") && err.contains("matches the filter"),
            "{err}"
        );
        // Relative to the data root (the default), the file is not found: the study says where it looked.
        let err = study_with(dir.path(), &METHOD.replace("relative_to = \"study\"\n", ""))
            .err()
            .map(|e| format!("{e:#}"))
            .unwrap();
        assert!(err.contains("data/answers.csv does not exist"), "{err}");
    }
}
