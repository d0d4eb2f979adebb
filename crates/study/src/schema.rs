//! The study file (TOML): what it may contain, and its validation into a [`Study`] with resolved
//! paths.
//!
//! ```toml
//! name = "demo"
//! data_root = "../examples"          # relative to this file; `--data-root` overrides
//!
//! [[datasets]]
//! name = "bbbc005"
//! kind = "bbbc005"                  # bbbc005 | nffa | folder | class-folders | manifest | table
//! path = "bbbc005"                  # relative to data_root
//!
//! [[methods]]
//! name = "GPT visual"
//! kind = "imported"
//! csv = ["vlms-micrographs/results_counting_BBBC005-S_w1.csv"]
//! column = "GPT visual"
//!
//! [[tasks]]
//! kind = "count"                    # count | segment | classify | vqa
//! datasets = ["bbbc005"]
//! methods = ["GPT visual"]
//! ```
//!
//! Every table uses `deny_unknown_fields`: a misspelt key is an error naming the key.

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The study file as written.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StudyFile {
    /// Name shown in the report.
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Folder that dataset and CSV paths are relative to; itself relative to the study file.
    #[serde(default = "default_data_root")]
    pub data_root: String,
    /// Seed of every random choice (sampling, bootstrap).
    #[serde(default = "default_seed")]
    pub seed: u64,
    #[serde(default)]
    pub datasets: Vec<DatasetSpec>,
    #[serde(default)]
    pub methods: Vec<MethodSpec>,
    #[serde(default)]
    pub tasks: Vec<TaskSpec>,
}

fn default_data_root() -> String {
    ".".into()
}

fn default_seed() -> u64 {
    42
}

/// How a dataset is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetKindSpec {
    Bbbc005,
    Nffa,
    Folder,
    ClassFolders,
    Manifest,
    /// A CSV naming images and their truth where the images need not exist (imported answers only,
    /// e.g. the study's NFFA-RS classification list whose images are not distributed).
    Table,
}

/// A dataset of the study.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetSpec {
    pub name: String,
    pub kind: DatasetKindSpec,
    /// Folder (or CSV for `manifest`/`table`), relative to `data_root`.
    pub path: String,
    /// BBBC005: mask folder when not `<path>/masks`.
    #[serde(default)]
    pub masks: Option<String>,
    /// NFFA: CSVs with expert counts.
    #[serde(default)]
    pub counts: Vec<String>,
    /// NFFA: keep only the top 1024×600 (drop the instrument bar).
    #[serde(default)]
    pub crop_info_bar: bool,
    /// Keep only the images named in the first column of this CSV (header row skipped).
    #[serde(default)]
    pub subset: Option<String>,
    /// Keep only samples whose metadata matches, e.g. `{ stain = "w1" }`; `class` also matches the
    /// true class.
    #[serde(default)]
    pub filter: std::collections::BTreeMap<String, String>,
    /// Keep a seeded random sample of this many images (after `subset` and `filter`).
    #[serde(default)]
    pub sample: Option<usize>,
    /// `table`: column with the image name (default: the first column).
    #[serde(default)]
    pub id_column: Option<String>,
    /// `table`: column with the true class.
    #[serde(default)]
    pub class_column: Option<String>,
    /// `table`: column with the true count.
    #[serde(default)]
    pub count_column: Option<String>,
    /// Truth from another table (CSV, or a spreadsheet: `.xlsx`, `.ods`), matched on the image
    /// name in its first column (or `truth_key_column`; `L<d>_` class hints and extensions are
    /// ignored). Rows whose name matches no image (section titles, units rows) are ignored; images
    /// without a row keep the truth they had.
    #[serde(default)]
    pub truth_table: Option<String>,
    #[serde(default)]
    pub truth_key_column: Option<String>,
    /// `truth_table`: column with the true count.
    #[serde(default)]
    pub truth_count_column: Option<String>,
    /// `truth_table`: column with the expert's reference answer (VQA), shown next to the answers.
    #[serde(default)]
    pub reference_column: Option<String>,
    /// `truth_table`: column with the true mean object size in µm (`size` task).
    #[serde(default)]
    pub truth_size_column: Option<String>,
    /// The question asked about every image (VQA), shown in the report.
    #[serde(default)]
    pub question: Option<String>,
    /// The truth masks are instance label images (each object its own label, e.g. StarDist's
    /// `mask2d.tif`): segmentation is also scored per object (matching at IoU 0.5 … 0.95). The
    /// default (false) is foreground-only truth (BBBC005's masks), scored by overlap only.
    #[serde(default)]
    pub instance_masks: bool,
}

pub use mica_core::task::TaskKind;

/// Metrics the report computes for a task (keys of [`mica_metrics::measure::Metric`], and
/// `confusion` / `answers` for the tables that are not one number).
pub fn known_metrics(kind: TaskKind) -> Vec<&'static str> {
    use mica_metrics::measure::Metric as M;
    match kind {
        TaskKind::Count => M::COUNTING.iter().map(|m| m.key()).collect(),
        TaskKind::Segment => vec![M::Dice.key(), M::Jaccard.key()],
        TaskKind::Classify => vec![M::Accuracy.key(), "confusion"],
        TaskKind::Vqa => vec!["answers"],
        TaskKind::Size => [M::MaeUm, M::MedianAbsLog10Ratio, M::WithinFactor2]
            .iter()
            .map(|m| m.key())
            .collect(),
    }
}

/// A task: which methods run on which datasets.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    pub kind: TaskKind,
    pub datasets: Vec<String>,
    pub methods: Vec<String>,
    /// Metrics to show (default: all of the task's).
    #[serde(default)]
    pub metrics: Vec<String>,
    /// `classify`: class names in order; answers and truths that are numbers 1..=N map to them.
    #[serde(default)]
    pub classes: Vec<String>,
    /// `count` with a vision-language model: what to count, in the prompt (default `objects`).
    #[serde(default)]
    pub objects: Option<String>,
}

/// What an imported method's answer paths are relative to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RelativeTo {
    #[default]
    DataRoot,
    Study,
}

/// A method of the study.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum MethodSpec {
    /// Answers read from CSV files (the study's own per-image answers).
    Imported {
        name: String,
        /// One or more CSVs, relative to `data_root` (or to the study file with
        /// `relative_to = "study"`); the first column (or `key_column`) names the image.
        csv: Vec<String>,
        /// The column with this method's answers.
        column: String,
        #[serde(default)]
        key_column: Option<String>,
        /// `data_root` (default) or `study`: what the `csv` paths are relative to. Answers that
        /// ship with the study (e.g. extracted from a paper) live beside the study file.
        #[serde(default)]
        relative_to: RelativeTo,
        /// Use only the rows whose columns have these values, e.g. `{ model = "LLaVA" }` for a
        /// file holding several methods' answers in long format.
        #[serde(default)]
        filter: std::collections::BTreeMap<String, String>,
        /// VQA: the column with the expert's grade of each answer. Stored with the answer; the
        /// report measures each automatic scorer's agreement with these grades.
        #[serde(default)]
        grade_column: Option<String>,
        /// Free text shown in the report (who made the answers, how).
        #[serde(default)]
        description: String,
    },
    /// mica's classical pipeline with a named preset.
    Classical {
        name: String,
        preset: String,
        /// Tiles with a halo: `"auto"` (the default: images above 4096² px), `"off"`, or a
        /// tile side in px.
        #[serde(default)]
        tile: Option<TileSpec>,
        /// Image added around each tile (px); default: automatic.
        #[serde(default)]
        halo: Option<u32>,
        #[serde(default)]
        description: String,
    },
    /// SAM automatic mask generation with a named preset.
    Sam {
        name: String,
        #[serde(default = "default_sam_preset")]
        preset: String,
        /// `mobile_sam` (default), `vit_b`, `vit_l` or `vit_h`; with `weights`, the file must
        /// hold this model.
        #[serde(default)]
        model: Option<String>,
        /// Weights file; default: the SAM backend's own resolution (`MICA_SAM_WEIGHTS`, cache).
        #[serde(default)]
        weights: Option<String>,
        /// Prompts from a detector instead of the point grid: `classical` (the default classical
        /// preset) or `classical:PRESET`. The generator preset is then not used.
        #[serde(default)]
        prompts: Option<String>,
        /// With `prompts`: `box` (default), `point` or `box-point`.
        #[serde(default)]
        prompt_kind: Option<String>,
        /// What the count is: `objects` (default; the objects of the label image) or `masks`
        /// (every mask of the generator: the study's definition).
        #[serde(default)]
        count: Option<String>,
        /// Named objects from prompt files instead of automatic masks (relative to the data
        /// root): `points` (`image,x,y,label[,object]`) and/or `boxes`
        /// (`image,x0,y0,x1,y1[,object]`), e.g. what `mica annotate` saved: the study's "SAM
        /// manual" arm done in mica. Images are matched by path; not for cropped datasets.
        #[serde(default)]
        points: Option<String>,
        #[serde(default)]
        boxes: Option<String>,
        /// Tiles for large images: `"auto"` (the default: images with a side above 2048 px, in
        /// windows of 1024 px), `"off"`, or a core side in px (docs/sam.md).
        #[serde(default)]
        tile: Option<TileSpec>,
        /// Image added around each core (px); default 128.
        #[serde(default)]
        halo: Option<u32>,
        #[serde(default)]
        description: String,
    },
    /// A vision-language model over its API (`provider:model`).
    Vlm {
        name: String,
        model: String,
        /// Prompt variant (`study` = the paper's protocol).
        #[serde(default = "default_prompt")]
        prompt: String,
        /// Server address (else the provider's environment variable, else its default).
        #[serde(default)]
        base_url: Option<String>,
        /// How to ask for JSON-schema output: `"auto"` (the default: each provider's own form),
        /// `"off"` (text answers only) or `"json-object"` (OpenAI-compatible servers that take
        /// `{"type": "json_object", "schema": …}`, such as llama-cpp-python's).
        #[serde(default)]
        structured: Option<String>,
        /// `true`: send the requests not in the response cache through the provider's Batch API
        /// (OpenAI's: answered within 24 h at half price), resumably; the answers are the same
        /// model's to the same requests, so the method's settings hash does not change.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        batch: Option<bool>,
        /// Seconds between two status requests of a running batch (default 30).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        batch_poll_s: Option<f64>,
        /// Requests in flight at once (default per provider: openai 4, gemini 2, ollama 1,
        /// compatible 2), as `--concurrency`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        concurrency: Option<usize>,
        /// Requests started per minute, 0 = no limit (default per provider), as `--rpm`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        requests_per_minute: Option<u32>,
        /// Tokens per minute, 0 = no limit (default), as `--tpm`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tokens_per_minute: Option<u32>,
        #[serde(default)]
        description: String,
    },
}

fn default_sam_preset() -> String {
    "standard".into()
}

fn default_prompt() -> String {
    "study".into()
}

/// A classical method's `tile`: a word (`"auto"`, `"off"`) or a tile side in px.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum TileSpec {
    Px(u32),
    Word(String),
}

impl TileSpec {
    /// As `--tile` takes it.
    pub fn as_arg(&self) -> String {
        match self {
            TileSpec::Px(n) => n.to_string(),
            TileSpec::Word(w) => w.clone(),
        }
    }
}

impl MethodSpec {
    pub fn name(&self) -> &str {
        match self {
            MethodSpec::Imported { name, .. }
            | MethodSpec::Classical { name, .. }
            | MethodSpec::Sam { name, .. }
            | MethodSpec::Vlm { name, .. } => name,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            MethodSpec::Imported { .. } => "imported",
            MethodSpec::Classical { .. } => "classical",
            MethodSpec::Sam { .. } => "sam",
            MethodSpec::Vlm { .. } => "vlm",
        }
    }

    /// Whether this kind of method can do `task`.
    pub fn can_do(&self, task: TaskKind) -> bool {
        match self {
            MethodSpec::Imported { .. } => task != TaskKind::Segment,
            MethodSpec::Classical { .. } | MethodSpec::Sam { .. } => {
                matches!(task, TaskKind::Count | TaskKind::Segment)
            }
            MethodSpec::Vlm { .. } => task != TaskKind::Segment,
        }
    }
}

/// A validated study: the file plus resolved paths and its hash.
#[derive(Debug, Clone)]
pub struct Study {
    pub file: StudyFile,
    /// Where the study file is (or `<built-in>`).
    pub source: PathBuf,
    /// sha256 of the study file's bytes.
    pub hash: String,
    /// Resolved data root.
    pub data_root: PathBuf,
    /// The folder of the study file (what `relative_to = "study"` paths are relative to).
    pub base: PathBuf,
}

impl Study {
    /// Reads and validates a study file. `data_root` overrides the file's own.
    ///
    /// # Errors
    /// Unreadable file, TOML errors (with line and key), and every validation error of
    /// [`Study::from_str`].
    pub fn load(path: &Path, data_root: Option<&Path>) -> anyhow::Result<Study> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read study file {}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Study::from_str(&text, path, base, data_root)
    }

    /// Parses and validates study text; relative `data_root` is resolved against `base`.
    ///
    /// # Errors
    /// TOML syntax, unknown keys, duplicate names, a task naming an unknown dataset or method, a
    /// method that cannot do its task, unknown metrics, and paths that do not exist.
    pub fn from_str(
        text: &str,
        source: &Path,
        base: &Path,
        data_root: Option<&Path>,
    ) -> anyhow::Result<Study> {
        let file: StudyFile = toml::from_str(text)
            .with_context(|| format!("{}: invalid study file", source.display()))?;
        let data_root = match data_root {
            Some(d) => d.to_path_buf(),
            None => base.join(&file.data_root),
        };
        let study = Study {
            hash: mica_store::sha256_hex(text.as_bytes()),
            source: source.to_path_buf(),
            data_root,
            base: base.to_path_buf(),
            file,
        };
        study
            .validate()
            .with_context(|| format!("{}: invalid study", source.display()))?;
        Ok(study)
    }

    /// A path of the study, resolved against the data root.
    pub fn resolve(&self, rel: &str) -> PathBuf {
        self.data_root.join(rel)
    }

    /// An imported method's answer path, resolved against what it is relative to.
    pub fn resolve_answers(&self, rel: &str, relative_to: RelativeTo) -> PathBuf {
        match relative_to {
            RelativeTo::DataRoot => self.data_root.join(rel),
            RelativeTo::Study => self.base.join(rel),
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        let f = &self.file;
        if !self.data_root.is_dir() {
            bail!(
                "data root {} is not a folder (set `data_root` in the study or pass --data-root)",
                self.data_root.display()
            );
        }
        let mut names = BTreeSet::new();
        for d in &f.datasets {
            if !names.insert(d.name.as_str()) {
                bail!("dataset {:?} is defined twice", d.name);
            }
            let p = self.resolve(&d.path);
            if !p.exists() {
                bail!("dataset {:?}: path {} does not exist", d.name, p.display());
            }
            for extra in d
                .counts
                .iter()
                .chain(&d.subset)
                .chain(&d.masks)
                .chain(&d.truth_table)
            {
                let p = self.resolve(extra);
                if !p.exists() {
                    bail!("dataset {:?}: path {} does not exist", d.name, p.display());
                }
            }
            let truth_cols = [
                &d.truth_count_column,
                &d.reference_column,
                &d.truth_size_column,
                &d.truth_key_column,
            ];
            if d.truth_table.is_none() && truth_cols.iter().any(|c| c.is_some()) {
                bail!(
                    "dataset {:?}: `truth_count_column`, `reference_column`, `truth_size_column` and `truth_key_column` need a `truth_table`",
                    d.name
                );
            }
            if d.truth_table.is_some() && truth_cols[..3].iter().all(|c| c.is_none()) {
                bail!(
                    "dataset {:?}: `truth_table` needs at least one of `truth_count_column`, `reference_column`, `truth_size_column`",
                    d.name
                );
            }
            if d.kind == DatasetKindSpec::Table
                && d.class_column.is_none()
                && d.count_column.is_none()
            {
                bail!(
                    "dataset {:?}: a `table` dataset needs `class_column` or `count_column`",
                    d.name
                );
            }
        }
        let mut mnames = BTreeSet::new();
        for m in &f.methods {
            if !mnames.insert(m.name()) {
                bail!("method {:?} is defined twice", m.name());
            }
            if m.name().trim().is_empty() {
                bail!("a method has an empty name");
            }
            if let MethodSpec::Imported {
                name,
                csv,
                relative_to,
                ..
            } = m
            {
                if csv.is_empty() {
                    bail!("method {name:?}: `csv` lists no file");
                }
                for c in csv {
                    let p = self.resolve_answers(c, *relative_to);
                    if !p.is_file() {
                        bail!("method {name:?}: CSV {} does not exist", p.display());
                    }
                }
            }
            if let MethodSpec::Vlm {
                name,
                model,
                structured,
                batch,
                batch_poll_s,
                concurrency,
                ..
            } = m
            {
                if !model.contains(':') {
                    bail!("method {name:?}: model {model:?} must be `provider:model`, e.g. `openai:gpt-4o`");
                }
                if *batch == Some(true)
                    && !(model.starts_with("openai:") || model.starts_with("gemini:"))
                {
                    bail!("method {name:?}: `batch = true` needs an `openai:` or `gemini:` model (mica speaks those providers' Batch APIs only), not {model:?}");
                }
                if *concurrency == Some(0) {
                    bail!("method {name:?}: concurrency must be at least 1");
                }
                if let Some(p) = batch_poll_s {
                    if !(p.is_finite() && *p > 0.0) {
                        bail!("method {name:?}: batch_poll_s must be a positive number of seconds, got {p}");
                    }
                }
                if let Some(s) = structured {
                    mica_vlm::Structured::parse(s)
                        .map_err(|e| anyhow::anyhow!("method {name:?}: structured: {e}"))?;
                }
            }
        }
        let mut seen = BTreeSet::new();
        for (i, t) in f.tasks.iter().enumerate() {
            let what = format!("task {} ({})", i + 1, t.kind.as_str());
            if t.datasets.is_empty() || t.methods.is_empty() {
                bail!("{what}: needs at least one dataset and one method");
            }
            for d in &t.datasets {
                if !names.contains(d.as_str()) {
                    bail!(
                        "{what}: unknown dataset {d:?} (defined: {})",
                        names.iter().copied().collect::<Vec<_>>().join(", ")
                    );
                }
            }
            for m in &t.methods {
                let Some(spec) = f.methods.iter().find(|s| s.name() == m) else {
                    bail!(
                        "{what}: unknown method {m:?} (defined: {})",
                        mnames.iter().copied().collect::<Vec<_>>().join(", ")
                    );
                };
                if !spec.can_do(t.kind) {
                    bail!(
                        "{what}: method {m:?} ({}) cannot do the {} task",
                        spec.kind(),
                        t.kind.as_str()
                    );
                }
                for d in &t.datasets {
                    if !seen.insert((t.kind, d.clone(), m.clone())) {
                        bail!(
                            "{what}: method {m:?} on dataset {d:?} is already in another {} task",
                            t.kind.as_str()
                        );
                    }
                }
            }
            for metric in &t.metrics {
                if !known_metrics(t.kind).contains(&metric.as_str()) {
                    bail!(
                        "{what}: unknown metric {metric:?} (known: {})",
                        known_metrics(t.kind).join(", ")
                    );
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> anyhow::Result<Study> {
        let dir = std::env::temp_dir();
        Study::from_str(text, Path::new("t.toml"), &dir, Some(&dir))
    }

    #[test]
    fn unknown_key_is_named() {
        let err = parse("name = \"x\"\nfoo = 1\n").unwrap_err();
        assert!(format!("{err:#}").contains("foo"), "{err:#}");
    }

    #[test]
    fn vlm_batch_and_limit_options_are_checked() {
        let study = |method: &str| {
            format!(
                "name = \"x\"\n[[datasets]]\nname = \"d\"\nkind = \"folder\"\npath = \".\"\n[[methods]]\nname = \"m\"\nkind = \"vlm\"\n{method}\n[[tasks]]\nkind = \"count\"\ndatasets = [\"d\"]\nmethods = [\"m\"]\n"
            )
        };
        let ok = parse(&study(
            "model = \"openai:gpt-4o\"\nbatch = true\nbatch_poll_s = 5\nconcurrency = 8\nrequests_per_minute = 500\ntokens_per_minute = 30000",
        ))
        .unwrap();
        match &ok.file.methods[0] {
            MethodSpec::Vlm {
                batch,
                concurrency,
                tokens_per_minute,
                ..
            } => assert_eq!(
                (*batch, *concurrency, *tokens_per_minute),
                (Some(true), Some(8), Some(30000))
            ),
            other => panic!("{other:?}"),
        }
        parse(&study("model = \"gemini:gemini-3.5-flash\"\nbatch = true"))
            .expect("Gemini batch mode is accepted");
        for (bad, says) in [
            (
                "model = \"ollama:llava:13b\"\nbatch = true",
                "Batch APIs only",
            ),
            (
                "model = \"openai:gpt-4o\"\nbatch_poll_s = 0",
                "batch_poll_s",
            ),
            ("model = \"openai:gpt-4o\"\nconcurrency = 0", "concurrency"),
        ] {
            let err = format!("{:#}", parse(&study(bad)).unwrap_err());
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn method_that_cannot_do_task_is_refused() {
        let text = r#"
name = "x"
[[datasets]]
name = "d"
kind = "folder"
path = "."
[[methods]]
name = "c"
kind = "classical"
preset = "fluorescence-nuclei"
[[tasks]]
kind = "classify"
datasets = ["d"]
methods = ["c"]
"#;
        let err = format!("{:#}", parse(text).unwrap_err());
        assert!(err.contains("cannot do the classify task"), "{err}");
    }

    #[test]
    fn truth_table_columns_need_a_table_and_a_classical_method_cannot_size() {
        let text = r#"
name = "x"
[[datasets]]
name = "d"
kind = "folder"
path = "."
reference_column = "Description ground truth"
"#;
        let err = format!("{:#}", parse(text).unwrap_err());
        assert!(
            err.contains("\"d\"") && err.contains("need a `truth_table`"),
            "{err}"
        );
        let text = r#"
name = "x"
[[datasets]]
name = "d"
kind = "folder"
path = "."
truth_table = "no/such/sizes.xlsx"
truth_size_column = "Size"
"#;
        let err = format!("{:#}", parse(text).unwrap_err());
        assert!(err.contains("no/such/sizes.xlsx"), "{err}");
        let text = r#"
name = "x"
[[datasets]]
name = "d"
kind = "folder"
path = "."
[[methods]]
name = "c"
kind = "classical"
preset = "sem-particles"
[[tasks]]
kind = "size"
datasets = ["d"]
methods = ["c"]
"#;
        let err = format!("{:#}", parse(text).unwrap_err());
        assert!(err.contains("cannot do the size task"), "{err}");
    }

    #[test]
    fn missing_path_and_unknown_method_are_named() {
        let text = r#"
name = "x"
[[datasets]]
name = "d"
kind = "folder"
path = "no/such/dir"
"#;
        let err = format!("{:#}", parse(text).unwrap_err());
        assert!(err.contains("no/such/dir"), "{err}");
        let text = r#"
name = "x"
[[datasets]]
name = "d"
kind = "folder"
path = "."
[[tasks]]
kind = "count"
datasets = ["d"]
methods = ["nope"]
"#;
        let err = format!("{:#}", parse(text).unwrap_err());
        assert!(err.contains("unknown method \"nope\""), "{err}");
    }
}
