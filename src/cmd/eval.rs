//! `mica eval` (issue #3): score predictions from files against truth.
//!
//! - `count`: a CSV with an image column, a truth column and one column per method.
//! - `classify`: a CSV with a truth column and a prediction column.
//! - `segment`: two folders of masks or label images, paired by file stem.
//!
//! Every aggregate comes with a seeded 95 % bootstrap interval (`--seed`, `--resamples`), and can
//! be stratified with `--by` (stain, blur, class, count range, any CSV column): each stratum gets
//! its own row with n, missing, the metrics and their intervals.

use super::Ctx;
use crate::exit;
use anyhow::{bail, Context};
use mica_core::dataset::bbbc005::Bbbc005Name;
use mica_core::{io, BinaryMask, Connectivity, Image, LabelImage};
use mica_metrics::bootstrap::{
    count_range_keys, paired_difference, select, stratify, BootstrapConfig, Interval,
};
use mica_metrics::classification::{encode_classes, ClassificationReport};
use mica_metrics::counting::{absolute_errors, CountScores};
use mica_metrics::foreground::row_vector_directed_hausdorff;
use mica_metrics::instances::{InstanceReport, STANDARD_IOU_THRESHOLDS};
use mica_metrics::parse::nffa_labels;
use mica_metrics::table::{
    read_class_table, read_count_table, read_raw_table, CountTable, RawTable,
};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

#[derive(clap::Subcommand, Debug)]
pub enum EvalCommand {
    /// Score counting predictions from a CSV: one row per image, a truth column, one column per
    /// method (the header is the method's name).
    ///
    /// Prints per method: n (images with a numeric answer, the ones scored), missing (images
    /// without one: empty cells and non-numeric answers such as "NaN" or "about 40", each
    /// reported), MAE, RMSE, bias (mean of prediction − truth), MAPE, exact-match rate, Pearson r
    /// and R² against y = x, with 95 % bootstrap intervals. Rates are fractions.
    Count(CountArgs),
    /// Score classification predictions from a CSV: accuracy, balanced accuracy, macro-F1,
    /// per-class precision/recall/F1/support and the confusion matrix (with a "none" column for
    /// answers that named no class).
    Classify(ClassifyArgs),
    /// Score segmentation masks or label images against truth, pairing files by name (stem).
    ///
    /// A file with at most two distinct values (0 and one other) is a binary mask; its objects
    /// are its 8-connected components. Any other integer image is a label image (0 = background).
    /// Prints per image and aggregated: Dice, Jaccard, precision, recall, Hausdorff distance and
    /// its 95th percentile (pixels), the study's row-vector "Hausdorff", and instance matching
    /// scores at IoU 0.50..0.95.
    Segment(SegmentArgs),
    /// Score free-text answers (VQA, e.g. "describe this image") against the expert's
    /// references, and measure each automatic scorer's agreement with the expert's grades.
    ///
    /// Scorers: instrument facts (the scale bar, magnification, working distance, EHT, stage Z,
    /// logo and detector of the reference's instrument line, and whether the answer states them
    /// correctly: recall and precision, units converted) and, with --similarity-model, semantic
    /// similarity (cosine of all-MiniLM-L6-v2 sentence embeddings, run by mica; docs/vqa.md).
    /// With --expert-score-column, Spearman's
    /// rho and Kendall's tau-b of each scorer with the grades, pooled and per model, with 95 %
    /// bootstrap intervals.
    Vqa(Box<super::eval_vqa::VqaArgs>),
}

/// Bootstrap settings shared by the subcommands.
#[derive(clap::Args, Debug, Clone)]
pub struct BootstrapArgs {
    /// Seed of the bootstrap resampling (same seed, same intervals).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Number of bootstrap resamples for the 95 % intervals.
    #[arg(long, default_value_t = 2000)]
    pub resamples: usize,
}

impl BootstrapArgs {
    pub(crate) fn config(&self) -> anyhow::Result<BootstrapConfig> {
        let c = BootstrapConfig {
            resamples: self.resamples,
            seed: self.seed,
            level: 0.95,
        };
        c.validate()?;
        Ok(c)
    }
}

#[derive(clap::Args, Debug)]
pub struct CountArgs {
    /// CSV of predictions: image name, truth, and one column per method.
    #[arg(long, value_name = "FILE.csv")]
    pub predictions: PathBuf,
    /// Truth column (default: the column named "ground truth" or "truth"). Without a truth
    /// column the truth comes from --truth, or from the images' BBBC005 names (`_C<count>_`).
    #[arg(long, value_name = "NAME")]
    pub truth_column: Option<String>,
    /// Where the true counts are: a dataset (folder or manifest, as `mica data inspect` reads
    /// it) or a truth table (`<image>,<count>` such as the study's ground-truth CSVs). Images are
    /// matched by path, then by name. For scoring e.g. the CSV of `mica count`.
    #[arg(long, value_name = "DATASET_PATH", conflicts_with = "truth_column")]
    pub truth: Option<PathBuf>,
    /// Also score each count range, e.g. "10,50" gives <10, [10, 50), >=50 (by true count).
    /// Implies `--by count-range`.
    #[arg(long, value_name = "EDGES", value_delimiter = ',')]
    pub count_ranges: Vec<f64>,
    /// Also score each stratum: stain or blur (from BBBC005 image names; other names form the
    /// stratum "unknown"), count-range (edges from --count-ranges) or column:NAME (the values of
    /// a CSV column, which is then not scored as a method). Repeatable or comma-separated; each
    /// key gives its own set of strata.
    #[arg(long, value_name = "KEY", value_delimiter = ',', value_parser = parse_by)]
    pub by: Vec<By>,
    /// Compare every other method with this one: difference of MAE on the images both
    /// answered, with a paired bootstrap interval.
    #[arg(long, value_name = "METHOD")]
    pub compare_to: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub bootstrap: BootstrapArgs,
}

/// A label set for reading class answers as text.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelSet {
    /// The study's ten NFFA-Europe SEM classes (ids 1-10 or names, plural/British spellings).
    Nffa,
}

#[derive(clap::Args, Debug)]
pub struct ClassifyArgs {
    /// CSV of predictions.
    #[arg(long, value_name = "FILE.csv")]
    pub predictions: PathBuf,
    /// Column with the true class.
    #[arg(long, value_name = "NAME")]
    pub truth_column: String,
    /// Column with the predicted class.
    #[arg(long, value_name = "NAME")]
    pub pred_column: String,
    /// Read both columns as free text against this label set (class number or name). Without
    /// it, the trimmed cell is the class, and an empty cell or "NaN" names no class.
    #[arg(long, value_name = "SET")]
    pub labels: Option<LabelSet>,
    /// Compare with another method's prediction column: difference of accuracy (this column −
    /// that one) on the same images, with a paired bootstrap interval.
    #[arg(long, value_name = "NAME")]
    pub compare_pred_column: Option<String>,
    /// Also score each stratum: class (the true class), stain or blur (from BBBC005 names in the
    /// image column, the first column that is neither truth nor prediction; other names form the
    /// stratum "unknown") or column:NAME (the values of a CSV column). Repeatable or
    /// comma-separated.
    #[arg(long, value_name = "KEY", value_delimiter = ',', value_parser = parse_by)]
    pub by: Vec<By>,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub bootstrap: BootstrapArgs,
}

#[derive(clap::Args, Debug)]
pub struct SegmentArgs {
    /// Folder of true masks or label images.
    #[arg(long, value_name = "DIR")]
    pub truth: PathBuf,
    /// Folder of predicted masks or label images (same file stems as the truth).
    #[arg(long = "pred", value_name = "DIR")]
    pub pred: PathBuf,
    /// Read every file as a binary mask, foreground where the intensity is above this value
    /// (e.g. 127 for JPEG masks); objects are then 8-connected components. Without it, files
    /// with two values are binary masks and others label images.
    #[arg(long, value_name = "T")]
    pub mask_threshold: Option<f32>,
    /// Also aggregate each stratum: stain or blur, read from the BBBC005 names of the truth
    /// files (other names form the stratum "unknown"). Repeatable or comma-separated.
    #[arg(long, value_name = "KEY", value_delimiter = ',', value_parser = parse_by)]
    pub by: Vec<By>,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub bootstrap: BootstrapArgs,
}

// ---------------------------------------------------------------------------------------------
// stratification (--by)

/// One way of grouping images into strata (`--by`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum By {
    /// BBBC005 stain (`w1`, `w2`) from the image file name.
    Stain,
    /// BBBC005 blur level (`F1` … `F48`) from the image file name.
    Blur,
    /// The true class (classification).
    Class,
    /// Range of the true count (counting; edges from `--count-ranges`).
    CountRange,
    /// The values of a CSV column.
    Column(String),
}

const BY_KEYS: &str = "stain, blur, class, count-range or column:NAME";

fn parse_by(s: &str) -> Result<By, String> {
    let t = s.trim();
    match t.to_ascii_lowercase().as_str() {
        "stain" => return Ok(By::Stain),
        "blur" => return Ok(By::Blur),
        "class" => return Ok(By::Class),
        "count-range" | "count_range" => return Ok(By::CountRange),
        _ => {}
    }
    match t.split_once(':') {
        Some((k, name)) if k.trim().eq_ignore_ascii_case("column") => {
            let name = name.trim();
            if name.is_empty() {
                Err(format!(
                    "{s:?}: column: needs a column name, e.g. column:plate"
                ))
            } else {
                Ok(By::Column(name.to_string()))
            }
        }
        _ => Err(format!("{s:?} is not a stratification; use {BY_KEYS}")),
    }
}

impl fmt::Display for By {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            By::Stain => write!(f, "stain"),
            By::Blur => write!(f, "blur"),
            By::Class => write!(f, "class"),
            By::CountRange => write!(f, "count-range"),
            By::Column(name) => write!(f, "column:{name}"),
        }
    }
}

/// The `--by` keys once each, in the order given.
fn unique_by(by: &[By]) -> Vec<By> {
    let mut out: Vec<By> = Vec::new();
    for b in by {
        if !out.contains(b) {
            out.push(b.clone());
        }
    }
    out
}

/// A stratum key that orders labels naturally: numbers numerically, then text, then the
/// "unknown" / "(empty)" strata last.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct StratumKey(u8, u64, String);

/// The stratum of images whose names are no BBBC005 file names.
const UNKNOWN: &str = "unknown";

/// The strata of one `--by` key: (label, item indices), in natural order.
struct Strata {
    by: String,
    groups: Vec<(String, Vec<usize>)>,
}

impl Strata {
    fn new(by: &By, keys: &[StratumKey]) -> Strata {
        Strata {
            by: by.to_string(),
            groups: stratify(keys)
                .into_iter()
                .map(|(k, idx)| (k.2, idx))
                .collect(),
        }
    }
}

/// Stain or blur key of each image name (a path or a file name); names that are no BBBC005
/// file name go to "unknown" and come back as (image, why).
fn bbbc005_keys(by: &By, images: &[String]) -> (Vec<StratumKey>, Vec<(String, String)>) {
    let mut unknown = Vec::new();
    let keys = images
        .iter()
        .map(|img| {
            let name = img.trim().rsplit(['/', '\\']).next().unwrap_or_default();
            match Bbbc005Name::parse(name) {
                Ok(n) if *by == By::Blur => StratumKey(0, n.blur.into(), format!("F{}", n.blur)),
                Ok(n) => StratumKey(0, n.stain.into(), format!("w{}", n.stain)),
                Err(e) => {
                    let why = match e {
                        mica_core::Error::Name { reason, .. } => reason,
                        other => other.to_string(),
                    };
                    unknown.push((img.clone(), why));
                    StratumKey(2, 0, UNKNOWN.to_string())
                }
            }
        })
        .collect();
    (keys, unknown)
}

/// Says which images went to the "unknown" stratum and why.
fn report_unknown(file: &str, by: &By, unknown: &[(String, String)]) {
    if unknown.is_empty() {
        return;
    }
    eprintln!(
        "note: {file}: --by {by}: {} image(s) have no BBBC005 file name; they form the stratum \"{UNKNOWN}\":",
        unknown.len()
    );
    for (img, why) in unknown.iter().take(5) {
        eprintln!("  {img:?}: {why}");
    }
    if unknown.len() > 5 {
        eprintln!("  … and {} more", unknown.len() - 5);
    }
}

/// The key of a CSV cell: whole numbers sort numerically, empty cells form "(empty)".
fn column_key(cell: &str) -> StratumKey {
    let t = cell.trim();
    if t.is_empty() {
        StratumKey(2, 0, "(empty)".to_string())
    } else if let Ok(v) = t.parse::<u64>() {
        StratumKey(0, v, t.to_string())
    } else {
        StratumKey(1, 0, t.to_string())
    }
}

/// Names each `column:NAME` key by the header as written in the file (the match is
/// case-insensitive), so that output says "column:plate" for `--by column:Plate`.
fn canonical_columns(by: &mut [By], raw: &RawTable) -> anyhow::Result<()> {
    for b in by.iter_mut() {
        if let By::Column(name) = b {
            let c = raw
                .column_index(name)
                .with_context(|| format!("--by column:{name}"))?;
            *name = raw.header[c].trim().to_string();
        }
    }
    Ok(())
}

/// The cells of column `name` for the rows at the given 1-based lines.
fn column_cells(raw: &RawTable, name: &str, lines: &[u64]) -> anyhow::Result<Vec<String>> {
    let c = raw
        .column_index(name)
        .with_context(|| format!("--by column:{name}"))?;
    let by_line: HashMap<u64, &str> = raw
        .rows
        .iter()
        .map(|(line, cells)| (*line, cells[c].as_str()))
        .collect();
    lines
        .iter()
        .map(|line| {
            by_line
                .get(line)
                .map(|s| s.to_string())
                .with_context(|| format!("{}: no row at line {line}", raw.path.display()))
        })
        .collect()
}

pub fn run(cmd: EvalCommand, ctx: &Ctx) -> anyhow::Result<i32> {
    match cmd {
        EvalCommand::Count(a) => run_count(&a, ctx),
        EvalCommand::Classify(a) => run_classify(&a, ctx),
        EvalCommand::Segment(a) => run_segment(&a, ctx),
        EvalCommand::Vqa(a) => super::eval_vqa::run(&a, ctx),
    }
}

// ---------------------------------------------------------------------------------------------
// count

/// One row of `mica eval count --json`.
#[derive(Debug, Serialize)]
struct CountRow {
    method: String,
    /// Only on stratum rows (`--by`, `--count-ranges`): the stratification key ("stain",
    /// "blur", "count-range", "column:NAME").
    #[serde(skip_serializing_if = "Option::is_none")]
    by: Option<String>,
    /// Only on stratum rows: the stratum ("w1", "F4", "1: [10, 50)", a column value, "unknown").
    #[serde(skip_serializing_if = "Option::is_none")]
    stratum: Option<String>,
    n: usize,
    missing: usize,
    mae: Option<f64>,
    rmse: Option<f64>,
    bias: Option<f64>,
    mape: Option<f64>,
    exact: Option<f64>,
    pearson_r: Option<f64>,
    r2: Option<f64>,
    /// Missing answers that were empty cells.
    empty: usize,
    /// Missing answers that were not numbers ("NaN", "about 40").
    non_numeric: usize,
    mae_ci_low: Option<f64>,
    mae_ci_high: Option<f64>,
    rmse_ci_low: Option<f64>,
    rmse_ci_high: Option<f64>,
    bias_ci_low: Option<f64>,
    bias_ci_high: Option<f64>,
    mape_ci_low: Option<f64>,
    mape_ci_high: Option<f64>,
    exact_ci_low: Option<f64>,
    exact_ci_high: Option<f64>,
    pearson_r_ci_low: Option<f64>,
    pearson_r_ci_high: Option<f64>,
    r2_ci_low: Option<f64>,
    r2_ci_high: Option<f64>,
    /// Only with `--compare-to`: MAE of this method minus MAE of the reference method on the
    /// images both answered, with its paired bootstrap interval.
    #[serde(skip_serializing_if = "Option::is_none")]
    mae_difference: Option<MaeDifference>,
}

#[derive(Debug, Serialize)]
struct MaeDifference {
    reference: String,
    n: usize,
    difference: f64,
    ci_low: Option<f64>,
    ci_high: Option<f64>,
}

fn run_count(args: &CountArgs, ctx: &Ctx) -> anyhow::Result<i32> {
    let config = args.bootstrap.config()?;
    let mut by = unique_by(&args.by);
    if !args.count_ranges.is_empty() && !by.contains(&By::CountRange) {
        by.push(By::CountRange);
    }
    if by.contains(&By::Class) {
        bail!("--by class: a count table has no class; it applies to `mica eval classify` (group a count table by a column of classes with --by column:NAME)");
    }
    if by.contains(&By::CountRange) && args.count_ranges.is_empty() {
        bail!("--by count-range needs the range edges: --count-ranges EDGES, e.g. --count-ranges 10,50");
    }
    let mut table = match &args.truth {
        Some(ds) => count_table_from_dataset(&args.predictions, ds)?,
        None => match read_count_table(&args.predictions, args.truth_column.as_deref()) {
            Ok(t) => t,
            Err(mica_metrics::MetricsError::MissingColumn { .. })
                if args.truth_column.is_none() =>
            {
                count_table_from_names(&args.predictions)?
            }
            Err(e) => return Err(e.into()),
        },
    };
    let file = args.predictions.display().to_string();
    if !ctx.quiet {
        for d in &table.duplicates {
            eprintln!("note: {d}");
        }
    }
    let raw = if by.iter().any(|b| matches!(b, By::Column(_))) {
        Some(read_raw_table(&args.predictions)?)
    } else {
        None
    };
    if let Some(raw) = &raw {
        canonical_columns(&mut by, raw)?;
        for b in &by {
            if let By::Column(name) = b {
                let c = raw
                    .column_index(name)
                    .with_context(|| format!("--by column:{name}"))?;
                let header = &raw.header[c];
                let before = table.methods.len();
                table.methods.retain(|m| m.name != *header);
                if table.methods.len() < before && !ctx.quiet {
                    eprintln!(
                        "note: {file}: column {header:?} groups the images (--by {b}); it is not scored as a method"
                    );
                }
            }
        }
    }
    if table.methods.is_empty() {
        bail!(
            "{file}: no method columns (the header has only the image column \"{}\" and the truth column \"{}\")",
            table.image_column,
            table.truth_column
        );
    }
    if table.truth.is_empty() {
        bail!(
            "{file}: no row has a numeric truth in column \"{}\"",
            table.truth_column
        );
    }
    let reference = match &args.compare_to {
        Some(name) => Some(
            table
                .methods
                .iter()
                .position(|m| m.name == *name)
                .with_context(|| {
                    format!(
                        "{file}: --compare-to {name:?} is not a method column; methods: {}",
                        table
                            .methods
                            .iter()
                            .map(|m| format!("{:?}", m.name))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })?,
        ),
        None => None,
    };
    let mut strata = Vec::new();
    for b in &by {
        let keys: Vec<StratumKey> = match (b, &raw) {
            (By::Stain | By::Blur, _) => {
                let (keys, unknown) = bbbc005_keys(b, &table.images);
                if !ctx.quiet {
                    report_unknown(&file, b, &unknown);
                }
                keys
            }
            (By::CountRange, _) => count_range_keys(&table.truth, &args.count_ranges)?
                .into_iter()
                .map(|label| {
                    // Labels start with the bin index ("1: [10, 50)"): sort by it.
                    let bin = label
                        .split(':')
                        .next()
                        .and_then(|b| b.parse::<u64>().ok())
                        .unwrap_or(u64::MAX);
                    StratumKey(0, bin, label)
                })
                .collect(),
            (By::Column(name), Some(raw)) => column_cells(raw, name, &table.lines)?
                .iter()
                .map(|c| column_key(c))
                .collect(),
            (By::Class | By::Column(_), _) => bail!("--by {b} is not available for eval count"),
        };
        strata.push(Strata::new(b, &keys));
    }

    let all: Vec<usize> = (0..table.truth.len()).collect();
    let mut rows = Vec::new();
    for (mi, method) in table.methods.iter().enumerate() {
        // Absolute errors of this method and the reference, for paired differences of MAE.
        let paired = match reference.filter(|&r| r != mi) {
            Some(r) => Some((
                r,
                absolute_errors(&table.truth, &method.values())?,
                absolute_errors(&table.truth, &table.methods[r].values())?,
            )),
            None => None,
        };
        let difference = |idx: &[usize]| -> Option<MaeDifference> {
            let (r, a, b) = paired.as_ref()?;
            let d = paired_difference(&select(a, idx), &select(b, idx), &config).ok()?;
            Some(MaeDifference {
                reference: table.methods[*r].name.clone(),
                n: d.n,
                difference: d.difference,
                ci_low: d.ci.map(|c| c.low),
                ci_high: d.ci.map(|c| c.high),
            })
        };
        let mut row = count_row(&table, mi, &all, None, &config)?;
        row.mae_difference = difference(&all);
        rows.push(row);
        for s in &strata {
            for (label, idx) in &s.groups {
                let mut row = count_row(&table, mi, idx, Some((&s.by, label.clone())), &config)?;
                row.mae_difference = difference(idx);
                rows.push(row);
            }
        }
    }

    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print_count_table(&table, &rows);
    }
    if !ctx.quiet {
        report_count_problems(&table, &file);
    }
    Ok(exit::SUCCESS)
}

/// A count table without a truth column, scored against a dataset's truth (matched by path, then
/// name; a name matching two images is left out with the reason).
fn count_table_from_dataset(predictions: &Path, dataset: &Path) -> anyhow::Result<CountTable> {
    if dataset.is_file() && !is_manifest(dataset) {
        return count_table_from_truth_csv(predictions, dataset);
    }
    let ds = mica_core::dataset::open(dataset, &Default::default())
        .with_context(|| format!("--truth {}", dataset.display()))?;
    let ix = mica_core::dataset::NameIndex::of(&ds.samples);
    let truth = |image: &str| -> Result<Option<f64>, String> {
        match ix.find(image) {
            mica_core::dataset::Lookup::One(i) => Ok(ds.samples[i].truth.count),
            mica_core::dataset::Lookup::Missing => {
                Err(format!("not an image of {}", dataset.display()))
            }
            mica_core::dataset::Lookup::Ambiguous(hits) => Err(ix.ambiguity(image, &hits)),
        }
    };
    let source = format!("the truth of {} ({})", dataset.display(), ds.kind);
    Ok(mica_metrics::table::read_count_table_with_truth(
        predictions,
        &source,
        &truth,
    )?)
}

/// Whether a CSV is a dataset manifest (it has an `image`/`path`/`filename`/`file` column, as
/// `mica data inspect` reads manifests) rather than a truth table such as the study's
/// `<image>,ground truth` files.
fn is_manifest(path: &Path) -> bool {
    mica_core::dataset::read_table(path)
        .map(|t| t.column(&["image", "path", "filename", "file"]).is_some())
        .unwrap_or(false)
}

/// A count table without a truth column, scored against a truth table: the first column names
/// the images (matched by path, then name, as everywhere), the truth is the column `ground truth`,
/// `truth` or `count` (else the second). A truth cell that is not a count is a row left out with
/// the reason.
fn count_table_from_truth_csv(predictions: &Path, truth: &Path) -> anyhow::Result<CountTable> {
    let t = mica_core::dataset::read_table(truth)
        .with_context(|| format!("--truth {}", truth.display()))?;
    let col = match t.column(&["ground truth", "truth", "count"]) {
        Some(c) => c,
        None if t.header.len() >= 2 => 1,
        None => bail!(
            "--truth {}: a truth table needs an image column and a count column",
            truth.display()
        ),
    };
    let keys: Vec<String> = t.rows.iter().map(|(_, r)| r[0].clone()).collect();
    let ix = mica_core::dataset::NameIndex::new(keys.iter().map(String::as_str));
    let cell = |i: usize| -> Result<Option<f64>, String> {
        let (line, row) = &t.rows[i];
        match mica_metrics::parse::parse_count_cell(&row[col]) {
            mica_metrics::parse::CountCell::Count(n) => Ok(Some(n as f64)),
            mica_metrics::parse::CountCell::Empty => Ok(None),
            mica_metrics::parse::CountCell::Invalid { text, reason } => Err(format!(
                "{}:{line}: true count {text:?} is not a count ({reason})",
                truth.display()
            )),
        }
    };
    let lookup = |image: &str| -> Result<Option<f64>, String> {
        match ix.find(image) {
            mica_core::dataset::Lookup::One(i) => cell(i),
            mica_core::dataset::Lookup::Missing => Err(format!("not in {}", truth.display())),
            mica_core::dataset::Lookup::Ambiguous(hits) => Err(ix.ambiguity(image, &hits)),
        }
    };
    let source = format!("the truth table {}", truth.display());
    Ok(mica_metrics::table::read_count_table_with_truth(
        predictions,
        &source,
        &lookup,
    )?)
}

/// A count table without a truth column whose images carry their count in their BBBC005 names.
fn count_table_from_names(predictions: &Path) -> anyhow::Result<CountTable> {
    let truth = |image: &str| -> Result<Option<f64>, String> {
        let name = mica_core::dataset::normalise_key(image);
        let name = name.rsplit('/').next().unwrap_or_default();
        mica_core::dataset::bbbc005::Bbbc005Name::parse(name)
            .map(|n| Some(f64::from(n.count)))
            .map_err(|e| format!("no truth column and the name carries no count ({e})"))
    };
    let t = mica_metrics::table::read_count_table_with_truth(
        predictions,
        "the counts in the BBBC005 names",
        &truth,
    )?;
    if t.truth.is_empty() {
        bail!(
            "{}: no truth: no column named \"ground truth\" or \"truth\" (name one with --truth-column), no --truth DATASET_PATH, and the image names carry no BBBC005 count",
            predictions.display()
        );
    }
    Ok(t)
}

fn count_row(
    table: &CountTable,
    method: usize,
    indices: &[usize],
    stratum: Option<(&str, String)>,
    config: &BootstrapConfig,
) -> anyhow::Result<CountRow> {
    let (by, stratum) = match stratum {
        Some((by, s)) => (Some(by.to_string()), Some(s)),
        None => (None, None),
    };
    let m = &table.methods[method];
    let values = m.values();
    let pairs: Vec<(f64, f64)> = indices
        .iter()
        .filter_map(|&i| values[i].map(|p| (table.truth[i], p)))
        .collect();
    let missing = indices.len() - pairs.len();
    // The measurement layer: scores and their intervals over the scored images.
    let summary = mica_metrics::measure::count_summary(&pairs, missing, config)?;
    let s: &CountScores = &summary.scores;
    let empty = indices
        .iter()
        .filter(|&&i| matches!(m.cells[i], mica_metrics::table::CountCell::Empty))
        .count();
    let ci = |k: usize| summary.estimates[k].1.ci;
    let lo = |k: usize| ci(k).map(|c: Interval| c.low);
    let hi = |k: usize| ci(k).map(|c: Interval| c.high);
    Ok(CountRow {
        method: m.name.clone(),
        by,
        stratum,
        n: s.n,
        missing: s.missing,
        mae: s.mae,
        rmse: s.rmse,
        bias: s.bias,
        mape: s.mape,
        exact: s.exact,
        pearson_r: s.pearson_r,
        r2: s.r2,
        empty,
        non_numeric: missing - empty,
        mae_ci_low: lo(0),
        mae_ci_high: hi(0),
        rmse_ci_low: lo(1),
        rmse_ci_high: hi(1),
        bias_ci_low: lo(2),
        bias_ci_high: hi(2),
        mape_ci_low: lo(3),
        mape_ci_high: hi(3),
        exact_ci_low: lo(4),
        exact_ci_high: hi(4),
        pearson_r_ci_low: lo(5),
        pearson_r_ci_high: hi(5),
        r2_ci_low: lo(6),
        r2_ci_high: hi(6),
        mae_difference: None,
    })
}

fn fmt_opt(v: Option<f64>, decimals: usize) -> String {
    match v {
        Some(v) => format!("{v:.decimals$}"),
        None => "-".to_string(),
    }
}

fn fmt_ci(lo: Option<f64>, hi: Option<f64>, decimals: usize) -> String {
    match (lo, hi) {
        (Some(l), Some(h)) => format!("[{l:.decimals$}, {h:.decimals$}]"),
        _ => "-".to_string(),
    }
}

fn print_count_table(table: &CountTable, rows: &[CountRow]) {
    println!(
        "{}: {} images scored against {}{}",
        table.path.display(),
        table.truth.len(),
        if table.truth_external {
            table.truth_column.clone()
        } else {
            format!("column \"{}\"", table.truth_column)
        },
        if table.skipped.is_empty() {
            String::new()
        } else {
            format!(
                " ({} rows without a numeric truth left out)",
                table.skipped.len()
            )
        }
    );
    let name_w = rows
        .iter()
        .map(|r| row_label(r).chars().count())
        .max()
        .unwrap_or(6)
        .max(6);
    println!(
        "{:<name_w$} {:>4} {:>7} {:>8} {:>18} {:>8} {:>8} {:>7} {:>6} {:>7} {:>8}",
        "method", "n", "missing", "MAE", "MAE 95% CI", "RMSE", "bias", "MAPE", "exact", "r", "R2"
    );
    for r in rows {
        let name = row_label(r);
        println!(
            "{:<name_w$} {:>4} {:>7} {:>8} {:>18} {:>8} {:>8} {:>7} {:>6} {:>7} {:>8}",
            name,
            r.n,
            r.missing,
            fmt_opt(r.mae, 3),
            fmt_ci(r.mae_ci_low, r.mae_ci_high, 2),
            fmt_opt(r.rmse, 3),
            fmt_opt(r.bias, 3),
            fmt_opt(r.mape, 3),
            fmt_opt(r.exact, 3),
            fmt_opt(r.pearson_r, 3),
            fmt_opt(r.r2, 3),
        );
    }
    let diffs: Vec<&CountRow> = rows.iter().filter(|r| r.mae_difference.is_some()).collect();
    if !diffs.is_empty() {
        println!();
        println!("paired difference of MAE (method − reference) on images both answered:");
        for r in diffs {
            if let Some(d) = &r.mae_difference {
                let stratum = match (&r.by, &r.stratum) {
                    (Some(by), Some(s)) => format!(" ({by}={s})"),
                    _ => String::new(),
                };
                println!(
                    "  {} − {}{stratum}: {:+.3} {} (n = {})",
                    r.method,
                    d.reference,
                    d.difference,
                    fmt_ci(d.ci_low, d.ci_high, 3),
                    d.n
                );
            }
        }
    }
}

/// A method's name, or on a stratum row the indented method and stratum: "  LLaVA  stain=w2".
fn row_label(r: &CountRow) -> String {
    match (&r.by, &r.stratum) {
        (Some(by), Some(s)) => format!("  {}  {by}={s}", r.method),
        _ => r.method.clone(),
    }
}

fn report_count_problems(table: &CountTable, file: &str) {
    for s in &table.skipped {
        eprintln!(
            "note: {file}:{}: image {:?} has no numeric truth ({:?}); left out",
            s.line, s.image, s.truth
        );
    }
    for m in &table.methods {
        let empty = m.empty();
        if empty > 0 {
            eprintln!(
                "note: {file}: method {:?}: {empty} empty cell(s), counted as missing",
                m.name
            );
        }
        for (row, text) in m.non_numeric() {
            eprintln!(
                "note: {file}: method {:?}: image {:?}: non-numeric answer {text:?}, counted as missing",
                m.name, table.images[row]
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// classify

#[derive(Debug, Serialize)]
struct ClassifyOutput {
    #[serde(flatten)]
    report: ClassificationReport,
    accuracy_ci_low: Option<f64>,
    accuracy_ci_high: Option<f64>,
    balanced_accuracy_ci_low: Option<f64>,
    balanced_accuracy_ci_high: Option<f64>,
    macro_f1_ci_low: Option<f64>,
    macro_f1_ci_high: Option<f64>,
    /// Answers that named no class, with why (counted as wrong).
    unparsed_answers: Vec<RowNote>,
    /// Rows left out because the truth could not be read.
    rows_without_truth: Vec<RowNote>,
    /// Predicted values that are no row's true class (classes with support 0).
    predicted_only_classes: Vec<String>,
    /// Only with `--compare-pred-column`.
    #[serde(skip_serializing_if = "Option::is_none")]
    accuracy_difference: Option<AccuracyDifference>,
    /// Only with `--by`: one entry per stratum.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    strata: Vec<ClassifyStratum>,
}

/// The scores of one stratum of `mica eval classify --by`.
#[derive(Debug, Serialize)]
struct ClassifyStratum {
    /// The stratification key ("class", "stain", "blur", "column:NAME").
    by: String,
    /// The stratum (a class, "w1", "F4", a column value, "unknown").
    stratum: String,
    /// Images scored in the stratum (answers that named no class included, as wrong).
    n: usize,
    /// Answers in the stratum that named no class (counted as wrong, so part of n).
    missing: usize,
    accuracy: f64,
    balanced_accuracy: f64,
    /// `null` for `--by class`: within one true class, an F1 averaged over classes says
    /// nothing (accuracy there is the class's recall).
    macro_f1: Option<f64>,
    accuracy_ci_low: Option<f64>,
    accuracy_ci_high: Option<f64>,
    balanced_accuracy_ci_low: Option<f64>,
    balanced_accuracy_ci_high: Option<f64>,
    macro_f1_ci_low: Option<f64>,
    macro_f1_ci_high: Option<f64>,
}

/// Accuracy, balanced accuracy and macro-F1 of the scored images `idx` (positions in `truth`),
/// each with its bootstrap interval.
fn classify_scores(
    classes: &[String],
    truth: &[usize],
    prediction: &[Option<usize>],
    config: &BootstrapConfig,
) -> anyhow::Result<(ClassificationReport, Vec<Option<Interval>>)> {
    // The measurement layer's summary (the report's too), unpacked for the JSON fields.
    let s = mica_metrics::measure::classification_summary(classes, truth, prediction, config)?;
    let cis = vec![s.accuracy.ci, s.balanced_accuracy.ci, s.macro_f1.ci];
    Ok((s.report, cis))
}

/// The strata of the scored images of a classification table, one set per `--by` key.
fn classify_strata(
    args: &ClassifyArgs,
    table: &mica_metrics::table::ClassTable,
    enc: &mica_metrics::classification::EncodedClasses,
    config: &BootstrapConfig,
    ctx: &Ctx,
) -> anyhow::Result<Vec<ClassifyStratum>> {
    let mut by = unique_by(&args.by);
    if by.is_empty() {
        return Ok(Vec::new());
    }
    let file = args.predictions.display().to_string();
    if by.contains(&By::CountRange) {
        bail!("--by count-range applies to `mica eval count` (ranges of true counts)");
    }
    // Line of each scored image.
    let lines: Vec<u64> = enc.rows.iter().map(|&r| table.lines[r]).collect();
    let raw = if by.iter().any(|b| !matches!(b, By::Class)) {
        let raw = read_raw_table(&args.predictions)?;
        canonical_columns(&mut by, &raw)?;
        Some(raw)
    } else {
        None
    };
    let mut out = Vec::new();
    for b in &by {
        let keys: Vec<StratumKey> = match (b, &raw) {
            (By::Class, _) => enc
                .truth
                .iter()
                .map(|&t| StratumKey(0, t as u64, enc.classes[t].clone()))
                .collect(),
            (By::Stain | By::Blur, Some(raw)) => {
                let t = raw.column_index(&args.truth_column)?;
                let p = raw.column_index(&args.pred_column)?;
                let image = (0..raw.header.len())
                    .find(|&i| i != t && i != p)
                    .with_context(|| {
                        format!("{file}: --by {b} needs an image-name column besides the truth and prediction columns")
                    })?;
                let names = column_cells(raw, &raw.header[image], &lines)?;
                let (keys, unknown) = bbbc005_keys(b, &names);
                if !ctx.quiet {
                    report_unknown(&file, b, &unknown);
                }
                keys
            }
            (By::Column(name), Some(raw)) => column_cells(raw, name, &lines)?
                .iter()
                .map(|c| column_key(c))
                .collect(),
            _ => bail!("--by {b} is not available for eval classify"),
        };
        let strata = Strata::new(b, &keys);
        for (label, idx) in &strata.groups {
            let t: Vec<usize> = select(&enc.truth, idx);
            let p: Vec<Option<usize>> = select(&enc.prediction, idx);
            let (r, mut cis) = classify_scores(&enc.classes, &t, &p, config)
                .with_context(|| format!("{file}: cannot score stratum {}={label}", strata.by))?;
            let macro_f1 = if *b == By::Class {
                cis[2] = None;
                None
            } else {
                Some(r.macro_f1)
            };
            out.push(ClassifyStratum {
                by: strata.by.clone(),
                stratum: label.clone(),
                n: r.n,
                missing: r.unparsed,
                accuracy: r.accuracy,
                balanced_accuracy: r.balanced_accuracy,
                macro_f1,
                accuracy_ci_low: cis[0].map(|c| c.low),
                accuracy_ci_high: cis[0].map(|c| c.high),
                balanced_accuracy_ci_low: cis[1].map(|c| c.low),
                balanced_accuracy_ci_high: cis[1].map(|c| c.high),
                macro_f1_ci_low: cis[2].map(|c| c.low),
                macro_f1_ci_high: cis[2].map(|c| c.high),
            });
        }
    }
    Ok(out)
}

#[derive(Debug, Serialize)]
struct AccuracyDifference {
    /// The column compared with.
    other: String,
    n: usize,
    accuracy: f64,
    other_accuracy: f64,
    /// accuracy − other_accuracy.
    difference: f64,
    ci_low: Option<f64>,
    ci_high: Option<f64>,
}

/// Per input row: 1 / 0 for a right / wrong answer, `None` where the truth is unreadable.
fn correct_by_row(
    enc: &mica_metrics::classification::EncodedClasses,
    rows: usize,
) -> Vec<Option<f64>> {
    let mut out = vec![None; rows];
    for ((&row, &t), p) in enc.rows.iter().zip(&enc.truth).zip(&enc.prediction) {
        out[row] = Some(if *p == Some(t) { 1.0 } else { 0.0 });
    }
    out
}

#[derive(Debug, Serialize)]
struct RowNote {
    line: u64,
    text: String,
    reason: String,
}

fn run_classify(args: &ClassifyArgs, ctx: &Ctx) -> anyhow::Result<i32> {
    let config = args.bootstrap.config()?;
    let file = args.predictions.display().to_string();
    let table = read_class_table(&args.predictions, &args.truth_column, &args.pred_column)?;
    if !ctx.quiet {
        for d in &table.duplicates {
            eprintln!("note: {d}");
        }
    }
    let labels = args.labels.map(|LabelSet::Nffa| nffa_labels());
    let enc = encode_classes(&table.truth, &table.prediction, labels.as_deref())?;
    if enc.truth.is_empty() {
        bail!(
            "{file}: no row has a readable truth in column \"{}\"",
            args.truth_column
        );
    }
    let (report, cis) = classify_scores(&enc.classes, &enc.truth, &enc.prediction, &config)
        .with_context(|| format!("{file}: cannot score"))?;
    let strata = classify_strata(args, &table, &enc, &config, ctx)?;
    let accuracy_difference = match &args.compare_pred_column {
        Some(other) => {
            let t2 = read_class_table(&args.predictions, &args.truth_column, other)?;
            let enc2 = encode_classes(&t2.truth, &t2.prediction, labels.as_deref())?;
            let a = correct_by_row(&enc, table.truth.len());
            let b = correct_by_row(&enc2, t2.truth.len());
            let d = paired_difference(&a, &b, &config)
                .with_context(|| format!("{file}: cannot compare with column \"{other}\""))?;
            Some(AccuracyDifference {
                other: other.clone(),
                n: d.n,
                accuracy: d.mean_a,
                other_accuracy: d.mean_b,
                difference: d.difference,
                ci_low: d.ci.map(|c| c.low),
                ci_high: d.ci.map(|c| c.high),
            })
        }
        None => None,
    };
    let note = |u: &mica_metrics::classification::UnreadAnswer| RowNote {
        line: table.lines[u.row],
        text: u.text.clone(),
        reason: u.reason.clone(),
    };
    let out = ClassifyOutput {
        accuracy_ci_low: cis[0].map(|c| c.low),
        accuracy_ci_high: cis[0].map(|c| c.high),
        balanced_accuracy_ci_low: cis[1].map(|c| c.low),
        balanced_accuracy_ci_high: cis[1].map(|c| c.high),
        macro_f1_ci_low: cis[2].map(|c| c.low),
        macro_f1_ci_high: cis[2].map(|c| c.high),
        unparsed_answers: enc.unparsed.iter().map(note).collect(),
        rows_without_truth: enc.bad_truth.iter().map(note).collect(),
        predicted_only_classes: enc.predicted_only.clone(),
        accuracy_difference,
        strata,
        report,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print_classify(&file, args, &out);
    }
    if !ctx.quiet {
        for u in &out.unparsed_answers {
            eprintln!(
                "note: {file}:{}: answer {:?} names no class ({}); counted as wrong",
                u.line, u.text, u.reason
            );
        }
        for u in &out.rows_without_truth {
            eprintln!(
                "note: {file}:{}: truth {:?} is not a class ({}); row left out",
                u.line, u.text, u.reason
            );
        }
        if !out.predicted_only_classes.is_empty() {
            eprintln!(
                "note: {file}: predicted values that are no image's true class (kept as classes with support 0): {}",
                out.predicted_only_classes
                    .iter()
                    .map(|c| format!("{c:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    Ok(exit::SUCCESS)
}

fn print_classify(file: &str, args: &ClassifyArgs, out: &ClassifyOutput) {
    let r = &out.report;
    println!(
        "{file}: {} images, truth \"{}\", prediction \"{}\"; {} answers named no class (counted as wrong)",
        r.n, args.truth_column, args.pred_column, r.unparsed
    );
    println!(
        "accuracy           {:.4} {}",
        r.accuracy,
        fmt_ci(out.accuracy_ci_low, out.accuracy_ci_high, 4)
    );
    println!(
        "balanced accuracy  {:.4} {}",
        r.balanced_accuracy,
        fmt_ci(
            out.balanced_accuracy_ci_low,
            out.balanced_accuracy_ci_high,
            4
        )
    );
    println!(
        "macro-F1           {:.4} {}",
        r.macro_f1,
        fmt_ci(out.macro_f1_ci_low, out.macro_f1_ci_high, 4)
    );
    if let Some(d) = &out.accuracy_difference {
        println!(
            "accuracy − accuracy of \"{}\": {:+.4} {} ({:.4} vs {:.4}, n = {})",
            d.other,
            d.difference,
            fmt_ci(d.ci_low, d.ci_high, 4),
            d.accuracy,
            d.other_accuracy,
            d.n
        );
    }
    println!();
    let w = r
        .per_class
        .iter()
        .map(|c| c.class.len())
        .max()
        .unwrap_or(5)
        .max(5);
    println!(
        "{:<w$} {:>9} {:>7} {:>7} {:>7} {:>9}",
        "class", "precision", "recall", "F1", "support", "predicted"
    );
    for c in &r.per_class {
        println!(
            "{:<w$} {:>9} {:>7} {:>7.3} {:>7} {:>9}",
            c.class,
            fmt_opt(c.precision, 3),
            fmt_opt(c.recall, 3),
            c.f1,
            c.support,
            c.predicted
        );
    }
    if !out.strata.is_empty() {
        println!();
        let sw = out
            .strata
            .iter()
            .map(|s| s.by.chars().count() + s.stratum.chars().count() + 1)
            .max()
            .unwrap_or(7)
            .max(7);
        println!(
            "{:<sw$} {:>4} {:>7} {:>8} {:>18} {:>9} {:>8}",
            "stratum", "n", "missing", "accuracy", "accuracy 95% CI", "bal. acc.", "macro-F1"
        );
        for s in &out.strata {
            println!(
                "{:<sw$} {:>4} {:>7} {:>8.4} {:>18} {:>9.4} {:>8}",
                format!("{}={}", s.by, s.stratum),
                s.n,
                s.missing,
                s.accuracy,
                fmt_ci(s.accuracy_ci_low, s.accuracy_ci_high, 4),
                s.balanced_accuracy,
                fmt_opt(s.macro_f1, 4)
            );
        }
    }
    println!();
    println!("confusion matrix (rows: truth, columns: prediction):");
    let cw = r
        .confusion
        .columns
        .iter()
        .map(|c| c.len())
        .max()
        .unwrap_or(4)
        .max(4);
    print!("{:<w$}", "");
    for c in &r.confusion.columns {
        print!(" {c:>cw$}");
    }
    println!();
    for (row, counts) in r.confusion.rows.iter().zip(&r.confusion.counts) {
        print!("{row:<w$}");
        for v in counts {
            print!(" {v:>cw$}");
        }
        println!();
    }
}

// ---------------------------------------------------------------------------------------------
// segment

#[derive(Debug, Serialize)]
struct SegmentImage {
    /// The image (its stem), under the key every command's JSON uses.
    #[serde(rename = "image")]
    name: String,
    truth_file: PathBuf,
    pred_file: PathBuf,
    truth_kind: &'static str,
    pred_kind: &'static str,
    dice: f64,
    jaccard: f64,
    precision: Option<f64>,
    recall: Option<f64>,
    hausdorff_px: Option<f64>,
    hausdorff95_px: Option<f64>,
    /// The study's scipy `directed_hausdorff` over image rows (0/1 values), truth rows → prediction.
    row_vector_hausdorff_truth_to_pred: f64,
    /// The same, prediction rows → truth.
    row_vector_hausdorff_pred_to_truth: f64,
    instances: InstanceReport,
}

#[derive(Debug, Serialize)]
struct PooledInstances {
    iou_threshold: f64,
    tp: usize,
    fp: usize,
    #[serde(rename = "fn")]
    fn_: usize,
    precision: Option<f64>,
    recall: Option<f64>,
    f1: Option<f64>,
    tp_over_tp_fp_fn: Option<f64>,
}

#[derive(Debug, Serialize)]
struct MeanWithCi {
    mean: Option<f64>,
    /// Images where the value is defined (the mean is over these).
    n: usize,
    ci_low: Option<f64>,
    ci_high: Option<f64>,
}

#[derive(Debug, Serialize)]
struct SegmentAggregate {
    images: usize,
    dice: MeanWithCi,
    jaccard: MeanWithCi,
    precision: MeanWithCi,
    recall: MeanWithCi,
    hausdorff_px: MeanWithCi,
    hausdorff95_px: MeanWithCi,
    row_vector_hausdorff_truth_to_pred: MeanWithCi,
    mean_tp_over_tp_fp_fn: MeanWithCi,
    /// TP, FP, FN summed over images, and the scores of those sums, per IoU threshold.
    pooled_instances: Vec<PooledInstances>,
}

#[derive(Debug, Serialize)]
struct Problem {
    file: PathBuf,
    reason: String,
}

#[derive(Debug, Serialize)]
struct SegmentOutput {
    /// What the instance scores are computed against: "instance labels", or "connected
    /// components of a binary mask" (then `instance_caveat` says what that means), or "mixed".
    instance_truth: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    instance_caveat: Option<&'static str>,
    per_image: Vec<SegmentImage>,
    aggregate: SegmentAggregate,
    /// Only with `--by`: the aggregate of each stratum.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    strata: Vec<SegmentStratum>,
    problems: Vec<Problem>,
}

/// One stratum of `mica eval segment --by`: its aggregate (`images` is n, the pairs scored).
#[derive(Debug, Serialize)]
struct SegmentStratum {
    /// The stratification key ("stain", "blur").
    by: String,
    /// The stratum ("w1", "F4", "unknown").
    stratum: String,
    /// Truth masks of the stratum that could not be scored (no predicted mask, unreadable).
    missing: usize,
    #[serde(flatten)]
    aggregate: SegmentAggregate,
}

/// The masks of a folder by image stem, read by the one naming rule
/// ([`mica_core::naming::mask_file_role`]: `x_labels.tif` and `x.tif` are both image `x`'s; overlays
/// are left out), and the problems: two files standing for one image.
fn mask_files(dir: &Path) -> anyhow::Result<(BTreeMap<String, PathBuf>, Vec<Problem>)> {
    use mica_core::naming::{mask_file_role, MaskFileRole};
    // The same listing every loader uses (image extensions, sorted, dangling links kept so that
    // reading them names them).
    let paths = mica_core::dataset::list_images(dir)
        .with_context(|| format!("cannot read folder {}", dir.display()))?;
    let mut out: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut problems = Vec::new();
    for path in paths {
        let Some(name) = path.file_name().and_then(|s| s.to_str()) else {
            continue;
        };
        let Some(MaskFileRole::Mask(stem)) = mask_file_role(name) else {
            continue;
        };
        if let Some(first) = out.get(&stem) {
            problems.push(Problem {
                file: path.clone(),
                reason: format!(
                    "{} and {} both stand for image {stem:?}; keep one",
                    first.display(),
                    path.display()
                ),
            });
            continue;
        }
        out.insert(stem, path);
    }
    Ok((out, problems))
}

/// The truth stem a predicted mask is scored against: its own, or for a blurred BBBC005 image
/// (`…_F23_…`) the in-focus scene's, whose mask is the truth of every blur level.
fn truth_stem_for(pred_stem: &str, truth: &BTreeMap<String, PathBuf>) -> Option<String> {
    if truth.contains_key(pred_stem) {
        return Some(pred_stem.to_string());
    }
    let parsed =
        mica_core::dataset::bbbc005::Bbbc005Name::parse(&format!("{pred_stem}.TIF")).ok()?;
    let scene = parsed.f1_scene_name();
    let scene = mica_core::naming::image_stem(&scene).to_string();
    truth.contains_key(&scene).then_some(scene)
}

/// Instances and kind of a mask file: a binary mask gives its connected components.
fn to_labels(img: &Image, threshold: Option<f32>) -> anyhow::Result<(LabelImage, &'static str)> {
    if let Some(t) = threshold {
        let mask = BinaryMask::from_image_above(img, t);
        return Ok((
            mask.connected_components(Connectivity::Eight),
            "binary mask",
        ));
    }
    let values = img.intensity_f32();
    let mut other: Option<f32> = None;
    let mut binary = true;
    for &v in &values {
        if v != 0.0 {
            match other {
                None => other = Some(v),
                Some(o) if o != v => {
                    binary = false;
                    break;
                }
                _ => {}
            }
        }
    }
    if binary {
        let mask = BinaryMask::from_image_above(img, 0.0);
        Ok((
            mask.connected_components(Connectivity::Eight),
            "binary mask",
        ))
    } else {
        Ok((LabelImage::from_image(img)?, "label image"))
    }
}

fn score_pair(
    name: &str,
    truth_file: &Path,
    pred_file: &Path,
    threshold: Option<f32>,
) -> anyhow::Result<SegmentImage> {
    let t_img = io::read_image(truth_file)?;
    let p_img = io::read_image(pred_file)?;
    let (t, truth_kind) =
        to_labels(&t_img, threshold).with_context(|| format!("{}", truth_file.display()))?;
    let (p, pred_kind) =
        to_labels(&p_img, threshold).with_context(|| format!("{}", pred_file.display()))?;
    if (t.width(), t.height()) != (p.width(), p.height()) {
        bail!(
            "{} is {}x{} but {} is {}x{}",
            truth_file.display(),
            t.width(),
            t.height(),
            pred_file.display(),
            p.width(),
            p.height()
        );
    }
    let (tf, pf) = (t.foreground(), p.foreground());
    // The measurement layer's per-image scores (the same a study stores), plus the study's
    // row-vector "Hausdorff", which only `mica eval` reports.
    let kind = if truth_kind == "binary mask" {
        mica_metrics::measure::TruthKind::BinaryMask
    } else {
        mica_metrics::measure::TruthKind::InstanceLabels
    };
    let sc = mica_metrics::measure::score_segmentation(&t, kind, &p, &pf)?;
    Ok(SegmentImage {
        name: name.to_string(),
        truth_file: truth_file.to_path_buf(),
        pred_file: pred_file.to_path_buf(),
        truth_kind,
        pred_kind,
        dice: sc.dice,
        jaccard: sc.jaccard,
        precision: sc.precision,
        recall: sc.recall,
        hausdorff_px: sc.hausdorff_px,
        hausdorff95_px: sc.hausdorff95_px,
        row_vector_hausdorff_truth_to_pred: row_vector_directed_hausdorff(&tf, &pf)?,
        row_vector_hausdorff_pred_to_truth: row_vector_directed_hausdorff(&pf, &tf)?,
        instances: sc.instances,
    })
}

fn mean_with_ci(values: &[Option<f64>], config: &BootstrapConfig) -> anyhow::Result<MeanWithCi> {
    let v: Vec<f64> = values.iter().flatten().copied().collect();
    let e = mica_metrics::measure::mean_estimate(&v, config)?;
    let ci = e.ci;
    Ok(MeanWithCi {
        mean: e.value,
        n: v.len(),
        ci_low: ci.map(|c| c.low),
        ci_high: ci.map(|c| c.high),
    })
}

/// Means over images with their intervals, and instances pooled over images.
fn aggregate_images(
    per_image: &[&SegmentImage],
    config: &BootstrapConfig,
) -> anyhow::Result<SegmentAggregate> {
    let col = |f: &dyn Fn(&SegmentImage) -> Option<f64>| -> Vec<Option<f64>> {
        per_image.iter().map(|s| f(s)).collect()
    };
    let pooled_instances = STANDARD_IOU_THRESHOLDS
        .iter()
        .enumerate()
        .map(|(k, &thr)| {
            let (tp, fp, fn_) = per_image.iter().fold((0, 0, 0), |acc, s| {
                let x = &s.instances.per_threshold[k];
                (acc.0 + x.tp, acc.1 + x.fp, acc.2 + x.fn_)
            });
            let r = mica_metrics::instances::DetectionRates::from_counts(tp, fp, fn_);
            PooledInstances {
                iou_threshold: thr,
                tp,
                fp,
                fn_,
                precision: r.precision,
                recall: r.recall,
                f1: r.f1,
                tp_over_tp_fp_fn: r.tp_over_tp_fp_fn,
            }
        })
        .collect();
    Ok(SegmentAggregate {
        images: per_image.len(),
        dice: mean_with_ci(&col(&|s| Some(s.dice)), config)?,
        jaccard: mean_with_ci(&col(&|s| Some(s.jaccard)), config)?,
        precision: mean_with_ci(&col(&|s| s.precision), config)?,
        recall: mean_with_ci(&col(&|s| s.recall), config)?,
        hausdorff_px: mean_with_ci(&col(&|s| s.hausdorff_px), config)?,
        hausdorff95_px: mean_with_ci(&col(&|s| s.hausdorff95_px), config)?,
        row_vector_hausdorff_truth_to_pred: mean_with_ci(
            &col(&|s| Some(s.row_vector_hausdorff_truth_to_pred)),
            config,
        )?,
        mean_tp_over_tp_fp_fn: mean_with_ci(&col(&|s| s.instances.mean_tp_over_tp_fp_fn), config)?,
        pooled_instances,
    })
}

/// The aggregate of each stain / blur stratum of the truth files.
fn segment_strata(
    by: &[By],
    truth_dir: &Path,
    truth: &BTreeMap<String, PathBuf>,
    per_image: &[SegmentImage],
    config: &BootstrapConfig,
    ctx: &Ctx,
) -> anyhow::Result<Vec<SegmentStratum>> {
    let name_of = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    // The prediction's name carries the blur level (a blurred image is scored against its F1
    // scene's mask), so strata are read from it when it is a BBBC005 name.
    let scored: Vec<String> = per_image
        .iter()
        .map(|s| {
            let own = format!("{}.TIF", s.name);
            if mica_core::dataset::bbbc005::Bbbc005Name::parse(&own).is_ok() {
                own
            } else {
                name_of(&s.truth_file)
            }
        })
        .collect();
    let unscored: Vec<String> = truth
        .values()
        .filter(|p| !per_image.iter().any(|s| s.truth_file == **p))
        .map(|p| name_of(p))
        .collect();
    let mut out = Vec::new();
    for b in by {
        let (keys, unknown) = bbbc005_keys(b, &scored);
        let (unscored_keys, unscored_unknown) = bbbc005_keys(b, &unscored);
        if !ctx.quiet {
            let mut all_unknown = unknown.clone();
            all_unknown.extend(unscored_unknown);
            report_unknown(&truth_dir.display().to_string(), b, &all_unknown);
        }
        let mut groups: BTreeMap<StratumKey, (Vec<usize>, usize)> = BTreeMap::new();
        for (i, k) in keys.into_iter().enumerate() {
            groups.entry(k).or_default().0.push(i);
        }
        for k in unscored_keys {
            groups.entry(k).or_default().1 += 1;
        }
        for (key, (idx, missing)) in groups {
            let images: Vec<&SegmentImage> = idx.iter().map(|&i| &per_image[i]).collect();
            out.push(SegmentStratum {
                by: b.to_string(),
                stratum: key.2,
                missing,
                aggregate: aggregate_images(&images, config)?,
            });
        }
    }
    Ok(out)
}

fn run_segment(args: &SegmentArgs, ctx: &Ctx) -> anyhow::Result<i32> {
    let config = args.bootstrap.config()?;
    let by = unique_by(&args.by);
    if let Some(b) = by.iter().find(|b| !matches!(b, By::Stain | By::Blur)) {
        bail!("--by {b}: eval segment groups images by stain or blur (read from the BBBC005 names of the truth files)");
    }
    let (truth, mut problems) = mask_files(&args.truth)?;
    let (pred, pred_problems) = mask_files(&args.pred)?;
    problems.extend(pred_problems);
    if truth.is_empty() {
        bail!(
            "{}: no mask images (.tif, .png, .jpg)",
            args.truth.display()
        );
    }
    // Pair each prediction with its truth (by stem; a blurred BBBC005 image with its F1 scene).
    let mut pairs: Vec<(&String, &PathBuf, &PathBuf)> = Vec::new();
    let mut scored_truth = std::collections::BTreeSet::new();
    for (stem, path) in &pred {
        match truth_stem_for(stem, &truth) {
            Some(t) => {
                scored_truth.insert(t.clone());
                pairs.push((stem, &truth[&t], path));
            }
            None => problems.push(Problem {
                file: path.clone(),
                reason: format!(
                    "no true mask for image {stem:?} in {} (looked for {stem}.*, {stem}_labels.*)",
                    args.truth.display()
                ),
            }),
        }
    }
    for (stem, path) in &truth {
        if !scored_truth.contains(stem) {
            problems.push(Problem {
                file: path.clone(),
                reason: format!(
                    "no predicted mask for image {stem:?} in {} (looked for {stem}_labels.*, {stem}.*)",
                    args.pred.display()
                ),
            });
        }
    }
    let bar = crate::progress::bar(pairs.len() as u64, "scoring", ctx.quiet);
    let results: Vec<anyhow::Result<SegmentImage>> = pairs
        .par_iter()
        .map(|(s, t, p)| {
            let r = score_pair(s, t, p, args.mask_threshold);
            bar.inc(1);
            r
        })
        .collect();
    bar.finish_and_clear();
    let mut per_image = Vec::new();
    for ((_, t, _), r) in pairs.iter().zip(results) {
        match r {
            Ok(s) => per_image.push(s),
            Err(e) => problems.push(Problem {
                file: (*t).clone(),
                reason: format!("{e:#}"),
            }),
        }
    }
    let all: Vec<&SegmentImage> = per_image.iter().collect();
    let aggregate = aggregate_images(&all, &config)?;
    let strata = segment_strata(&by, &args.truth, &truth, &per_image, &config, ctx)?;
    let binary = per_image
        .iter()
        .filter(|s| s.truth_kind == "binary mask")
        .count();
    let (instance_truth, instance_caveat) = match binary {
        0 => ("instance labels", None),
        b if b == per_image.len() => (
            "connected components of a binary mask",
            Some(mica_metrics::instances::BINARY_TRUTH_CAVEAT),
        ),
        _ => ("mixed", Some(mica_metrics::instances::BINARY_TRUTH_CAVEAT)),
    };
    let out = SegmentOutput {
        instance_truth,
        instance_caveat,
        per_image,
        aggregate,
        strata,
        problems,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print_segment(&out);
    }
    for p in &out.problems {
        eprintln!("error: {}: {}", p.file.display(), p.reason);
    }
    if out.per_image.is_empty() {
        bail!(
            "no image pair could be scored ({} problems)",
            out.problems.len()
        );
    }
    Ok(if out.problems.is_empty() {
        exit::SUCCESS
    } else {
        exit::PARTIAL
    })
}

fn print_segment(out: &SegmentOutput) {
    let w = out
        .per_image
        .iter()
        .map(|s| s.name.len())
        .max()
        .unwrap_or(5)
        .max(5);
    println!(
        "{:<w$} {:>6} {:>6} {:>6} {:>6} {:>8} {:>8} {:>8} {:>5} {:>5} {:>7} {:>8}",
        "image",
        "Dice",
        "Jacc.",
        "prec.",
        "recall",
        "HD px",
        "HD95 px",
        "rowHD",
        "n_t",
        "n_p",
        "F1@0.5",
        "mTP/all"
    );
    for s in &out.per_image {
        let at05 = &s.instances.per_threshold[0];
        println!(
            "{:<w$} {:>6.4} {:>6.4} {:>6} {:>6} {:>8} {:>8} {:>8.3} {:>5} {:>5} {:>7} {:>8}",
            s.name,
            s.dice,
            s.jaccard,
            fmt_opt(s.precision, 4),
            fmt_opt(s.recall, 4),
            fmt_opt(s.hausdorff_px, 2),
            fmt_opt(s.hausdorff95_px, 2),
            s.row_vector_hausdorff_truth_to_pred,
            s.instances.num_truth,
            s.instances.num_pred,
            fmt_opt(at05.f1, 3),
            fmt_opt(s.instances.mean_tp_over_tp_fp_fn, 3),
        );
    }
    let a = &out.aggregate;
    println!();
    println!(
        "instance scores (n_t, n_p, F1, mTP/all) against: {}",
        out.instance_truth
    );
    if let Some(c) = out.instance_caveat {
        println!("caveat: {c}");
    }
    println!("{} images; mean over images [95% bootstrap CI]:", a.images);
    for (name, m) in [
        ("Dice", &a.dice),
        ("Jaccard", &a.jaccard),
        ("precision", &a.precision),
        ("recall", &a.recall),
        ("Hausdorff (px)", &a.hausdorff_px),
        ("Hausdorff 95% (px)", &a.hausdorff95_px),
        (
            "row-vector Hausdorff (study)",
            &a.row_vector_hausdorff_truth_to_pred,
        ),
        ("mean TP/(TP+FP+FN) 0.5-0.95", &a.mean_tp_over_tp_fp_fn),
    ] {
        println!(
            "  {name:<30} {:>9} {} (n = {})",
            fmt_opt(m.mean, 4),
            fmt_ci(m.ci_low, m.ci_high, 4),
            m.n
        );
    }
    if !out.strata.is_empty() {
        println!();
        println!("per stratum, mean over images [95% bootstrap CI]:");
        let sw = out
            .strata
            .iter()
            .map(|s| s.by.chars().count() + s.stratum.chars().count() + 1)
            .max()
            .unwrap_or(7)
            .max(7);
        println!(
            "  {:<sw$} {:>4} {:>7} {:>7} {:>18} {:>7} {:>8} {:>8}",
            "stratum", "n", "missing", "Dice", "Dice 95% CI", "Jacc.", "HD px", "mTP/all"
        );
        for s in &out.strata {
            let a = &s.aggregate;
            println!(
                "  {:<sw$} {:>4} {:>7} {:>7} {:>18} {:>7} {:>8} {:>8}",
                format!("{}={}", s.by, s.stratum),
                a.images,
                s.missing,
                fmt_opt(a.dice.mean, 4),
                fmt_ci(a.dice.ci_low, a.dice.ci_high, 4),
                fmt_opt(a.jaccard.mean, 4),
                fmt_opt(a.hausdorff_px.mean, 2),
                fmt_opt(a.mean_tp_over_tp_fp_fn.mean, 3),
            );
        }
    }
    println!();
    println!("instances pooled over images:");
    println!(
        "  {:>5} {:>7} {:>7} {:>7} {:>6} {:>6} {:>6} {:>10}",
        "IoU", "TP", "FP", "FN", "prec.", "recall", "F1", "TP/(all)"
    );
    for p in &a.pooled_instances {
        println!(
            "  {:>5.2} {:>7} {:>7} {:>7} {:>6} {:>6} {:>6} {:>10}",
            p.iou_threshold,
            p.tp,
            p.fp,
            p.fn_,
            fmt_opt(p.precision, 3),
            fmt_opt(p.recall, 3),
            fmt_opt(p.f1, 3),
            fmt_opt(p.tp_over_tp_fp_fn, 3)
        );
    }
}
