//! # Evaluation: every summary of a set of predictions, computed once
//!
//! [`evaluate`] takes the samples' truths ([`SampleTruth`]) and the typed predictions
//! ([`Observation`]) of a study and returns an [`Evaluation`]: counting summaries per dataset,
//! stratum and method with the paired comparison against the best method, foreground and
//! instance segmentation summaries, classification and size summaries, and the failures. A
//! report renders an `Evaluation` and computes nothing; `mica eval` scores files with the same
//! summary functions of [`crate::measure`].
//!
//! Where the observations come from (a results store, files) is the caller's business: the
//! study library reads a store into observations (`mica_study::evaluate_store`).

use crate::bootstrap::{paired_difference, BootstrapConfig, PairedDifference};
use crate::error::Result;
use crate::measure::{
    classification_summary, count_summary, mean_estimate, size_summary, ClassificationSummary,
    CountSummary, Estimate, Metric, PredictionValue, SizeSummary,
};
use mica_core::task::TaskKind;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// The truth of one sample, as far as summaries need it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SampleTruth {
    pub dataset: String,
    /// The sample's id (its path relative to the dataset root).
    pub id: String,
    pub count: Option<f64>,
    pub class: Option<String>,
    pub size_um: Option<f64>,
    /// Stain (BBBC005 `w1`/`w2`), a stratum of the counting table.
    pub stain: Option<String>,
    /// Blur level (BBBC005 `F`), the x axis of the error-against-blur figure.
    pub blur: Option<f64>,
    /// The expert's reference answer (VQA), which automatic scorers compare answers with.
    pub reference: Option<String>,
}

/// What a prediction holds, as the measurement layer reads it.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A value of the prediction's task.
    Value(PredictionValue),
    /// The method answered but no value could be read (an unparsed answer; the reason is in
    /// [`Observation::failure`]).
    NoValue,
    /// The method failed on this sample.
    Failed,
    /// A stored value that is not a value of the task (a count of 3.7): never read as another
    /// value; scored as missing, with the reason among the warnings.
    Unreadable(String),
}

/// One prediction of one method on one sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub dataset: String,
    pub method: String,
    pub task: TaskKind,
    pub sample_id: String,
    pub outcome: Outcome,
    /// Why there is no value (failure or parse failure), when there is none.
    pub failure: Option<String>,
    /// Per-image scores the runner computed (segmentation: Dice, instance scores...).
    pub image_metrics: BTreeMap<Metric, f64>,
}

impl Observation {
    fn value(&self) -> Option<&PredictionValue> {
        match &self.outcome {
            Outcome::Value(v) => Some(v),
            _ => None,
        }
    }
}

/// A subset of a dataset's images that a counting summary is computed over.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Stratum {
    /// Every image.
    All,
    /// Images of one stain.
    Stain { stain: String },
    /// Images whose true count is in `(low − 1, high]` (`high: None` = no upper end).
    TrueCount { low: f64, high: Option<f64> },
}

impl Stratum {
    /// The stratum in words (`all`, `stain w1`, `true count 11–30`).
    pub fn label(&self) -> String {
        match self {
            Stratum::All => "all".into(),
            Stratum::Stain { stain } => format!("stain {stain}"),
            Stratum::TrueCount {
                low,
                high: Some(high),
            } => format!("true count {low}–{high}"),
            Stratum::TrueCount { low, high: None } => format!("true count ≥ {low}"),
        }
    }

    fn contains(&self, s: &SampleTruth, truth: f64) -> bool {
        match self {
            Stratum::All => true,
            Stratum::Stain { stain } => s.stain.as_deref() == Some(stain),
            Stratum::TrueCount { low, high } => in_count_range(truth, *low, *high),
        }
    }
}

/// True-count ranges of the count strata (used when a dataset's truths fall in more than one):
/// few objects, a handful, crowded, very crowded.
pub const COUNT_RANGES: [(f64, Option<f64>); 4] = [
    (0.0, Some(10.0)),
    (11.0, Some(30.0)),
    (31.0, Some(60.0)),
    (61.0, None),
];

/// Whether a true count falls in the range `low`–`high` of [`COUNT_RANGES`]: above the previous
/// range's end (`low − 1`) and at most `high`, so a non-integer truth lands in one range.
fn in_count_range(truth: f64, low: f64, high: Option<f64>) -> bool {
    truth > low - 1.0 && high.is_none_or(|h| truth <= h)
}

/// Counting scores of one method on one stratum of a dataset.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CountingResult {
    pub dataset: String,
    pub stratum: Stratum,
    pub method: String,
    pub summary: CountSummary,
}

/// A method against the dataset's best method (lowest MAE) on the images both answered.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PairedResult {
    pub dataset: String,
    pub method: String,
    pub best: String,
    /// MAE of `method` − MAE of `best`, images resampled as pairs.
    pub difference: PairedDifference,
}

/// One scored count (for figures and per-image tables).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CountPoint {
    pub dataset: String,
    pub method: String,
    pub image: String,
    pub truth: f64,
    pub predicted: f64,
    pub blur: Option<f64>,
}

/// Foreground segmentation of one method on one dataset (means over images).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentationResult {
    pub dataset: String,
    pub method: String,
    /// Images with a Dice score.
    pub n: usize,
    /// Predictions without one (failed, no mask, no truth).
    pub not_scored: usize,
    pub dice: Estimate,
    pub jaccard: Estimate,
}

/// The stored per-image scores of one segmentation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentationImage {
    pub dataset: String,
    pub method: String,
    pub image: String,
    pub dice: Option<f64>,
    pub jaccard: Option<f64>,
    pub hausdorff_px: Option<f64>,
}

/// Instance segmentation of one method on one dataset (only images scored against instance
/// labels; means over images).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstanceResult {
    pub dataset: String,
    pub method: String,
    pub n: usize,
    pub f1_iou50: Estimate,
    pub f1_iou75: Option<f64>,
    pub f1_iou50_95: Option<f64>,
    pub tp_over_tp_fp_fn_iou50: Option<f64>,
    /// mSA: TP/(TP+FP+FN) averaged over IoU 0.5…0.95, then over images.
    pub tp_over_tp_fp_fn_iou50_95: Option<f64>,
    pub instances_true: u64,
    pub instances_pred: u64,
}

/// Classification of one method on one dataset.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassificationResult {
    pub dataset: String,
    pub method: String,
    pub summary: ClassificationSummary,
}

/// Sizes of one method on one dataset.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SizeResult {
    pub dataset: String,
    pub method: String,
    pub summary: SizeSummary,
}

/// One size answer next to the expert's size (every size prediction, scored or not).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SizeAnswer {
    pub dataset: String,
    pub method: String,
    pub image: String,
    pub truth_um: Option<f64>,
    /// `None`: no size could be read from the answer (or the method failed).
    pub answer_um: Option<f64>,
}

/// Predictions without a value, by method and task.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailureResult {
    pub method: String,
    pub task: TaskKind,
    pub count: usize,
    /// Each reason with how often it occurred (sorted by reason).
    pub reasons: Vec<(String, usize)>,
}

/// One method's main score on one dataset and task.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RankEntry {
    pub method: String,
    /// Images scored.
    pub n: usize,
    pub estimate: Estimate,
}

/// The best method against the runner-up, on the images both scored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunnerUp {
    pub method: String,
    /// Runner-up's mean per-image score minus the best's, images resampled as pairs.
    pub difference: PairedDifference,
    /// Whether the interval of the difference excludes 0 (the best is better on these images
    /// beyond resampling noise).
    pub beyond_noise: bool,
}

/// The methods of one dataset and task ranked by the task's main score: what the report's first
/// screen shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ranking {
    pub dataset: String,
    pub task: TaskKind,
    /// Count: MAE; segment: Dice; classify: accuracy; size: MAE in µm.
    pub metric: Metric,
    pub lower_is_better: bool,
    /// Best first; methods without a score last.
    pub entries: Vec<RankEntry>,
    pub runner_up: Option<RunnerUp>,
}

/// Everything the predictions of a study say, computed once.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    /// The resampling of every interval.
    pub bootstrap: BootstrapConfig,
    pub counting: Vec<CountingResult>,
    pub counting_paired: Vec<PairedResult>,
    pub count_points: Vec<CountPoint>,
    pub segmentation: Vec<SegmentationResult>,
    pub segmentation_images: Vec<SegmentationImage>,
    pub instances: Vec<InstanceResult>,
    pub classification: Vec<ClassificationResult>,
    pub size: Vec<SizeResult>,
    pub size_answers: Vec<SizeAnswer>,
    /// VQA per dataset: every answer's automatic scores and the summaries.
    pub vqa: Vec<VqaResult>,
    /// The external answer scorers used, described (model, file hash).
    pub vqa_scorers: Vec<String>,
    pub failures: Vec<FailureResult>,
    /// Per dataset and task, the methods ranked by the main score.
    pub rankings: Vec<Ranking>,
    /// What a reader must know (predictions not scored for want of truth, unreadable values).
    pub warnings: Vec<String>,
}

/// The VQA answers of one dataset, scored, with the per-model summaries and each scorer's
/// agreement with the expert ([`crate::vqa::summarise`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VqaResult {
    pub dataset: String,
    pub answers: Vec<crate::vqa::AnswerScores>,
    pub summary: crate::vqa::VqaSummary,
}

/// Method `a` against method `b` by per-image values, over the images `ids` (images resampled as
/// pairs; those missing from either map are left out and counted as missing). `None` when no
/// image has both values.
fn paired_on<'k, K: Ord + 'k>(
    ids: impl IntoIterator<Item = &'k K>,
    a: &BTreeMap<K, f64>,
    b: &BTreeMap<K, f64>,
    config: &BootstrapConfig,
) -> Option<PairedDifference> {
    let (va, vb): (Vec<Option<f64>>, Vec<Option<f64>>) = ids
        .into_iter()
        .map(|i| (a.get(i).copied(), b.get(i).copied()))
        .unzip();
    paired_difference(&va, &vb, config).ok()
}

/// Per (dataset, task, method): image → the per-image value of the task's main score.
type PerImage = BTreeMap<(String, TaskKind, String), BTreeMap<String, f64>>;

/// The rankings of an evaluation whose summaries are computed: each method's main estimate as the
/// summaries have it, and the best against the runner-up on the images both scored.
fn rankings(
    ev: &Evaluation,
    per_image: &PerImage,
    config: &BootstrapConfig,
) -> Result<Vec<Ranking>> {
    let mut by: BTreeMap<(String, TaskKind), (Metric, bool, Vec<RankEntry>)> = BTreeMap::new();
    let mut add =
        |d: &str, t: TaskKind, m: Metric, lower: bool, method: &str, n: usize, e: Estimate| {
            by.entry((d.to_string(), t))
                .or_insert_with(|| (m, lower, Vec::new()))
                .2
                .push(RankEntry {
                    method: method.to_string(),
                    n,
                    estimate: e,
                });
        };
    for r in ev.counting.iter().filter(|r| r.stratum == Stratum::All) {
        let e = r.summary.get(Metric::Mae).unwrap_or(Estimate {
            value: None,
            ci: None,
        });
        add(
            &r.dataset,
            TaskKind::Count,
            Metric::Mae,
            true,
            &r.method,
            r.summary.scores.n,
            e,
        );
    }
    for r in &ev.segmentation {
        add(
            &r.dataset,
            TaskKind::Segment,
            Metric::Dice,
            false,
            &r.method,
            r.n,
            r.dice,
        );
    }
    for r in &ev.classification {
        let n = r.summary.report.n;
        add(
            &r.dataset,
            TaskKind::Classify,
            Metric::Accuracy,
            false,
            &r.method,
            n,
            r.summary.accuracy,
        );
    }
    for r in &ev.size {
        add(
            &r.dataset,
            TaskKind::Size,
            Metric::MaeUm,
            true,
            &r.method,
            r.summary.n,
            r.summary.mae_um,
        );
    }
    let mut out = Vec::new();
    for ((dataset, task), (metric, lower, mut entries)) in by {
        let key = |e: &RankEntry| e.estimate.value.map(|v| if lower { v } else { -v });
        entries.sort_by(|a, b| match (key(a), key(b)) {
            (Some(x), Some(y)) => x.total_cmp(&y).then(a.method.cmp(&b.method)),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => a.method.cmp(&b.method),
        });
        let scored: Vec<&RankEntry> = entries
            .iter()
            .filter(|e| e.estimate.value.is_some())
            .collect();
        let runner_up = match scored.as_slice() {
            [best, second, ..] => {
                let get = |m: &str| per_image.get(&(dataset.clone(), task, m.to_string()));
                match (get(&best.method), get(&second.method)) {
                    (Some(b), Some(s)) => {
                        let ids: BTreeSet<&String> = b.keys().chain(s.keys()).collect();
                        paired_on(ids, s, b, config).map(|difference| RunnerUp {
                            method: second.method.clone(),
                            beyond_noise: difference
                                .ci
                                .is_some_and(|c| c.low > 0.0 || c.high < 0.0),
                            difference,
                        })
                    }
                    _ => None,
                }
            }
            _ => None,
        };
        out.push(Ranking {
            dataset,
            task,
            metric,
            lower_is_better: lower,
            entries,
            runner_up,
        });
    }
    Ok(out)
}

type Grouped<'a> = BTreeMap<&'a str, BTreeMap<&'a str, Vec<&'a Observation>>>;

/// Observations of `task`, by dataset then method (both sorted).
fn grouped(obs: &[Observation], task: TaskKind) -> Grouped<'_> {
    let mut out: Grouped = BTreeMap::new();
    for o in obs.iter().filter(|o| o.task == task) {
        out.entry(&o.dataset)
            .or_default()
            .entry(&o.method)
            .or_default()
            .push(o);
    }
    out
}

/// Evaluates `observations` against the truths of `samples`.
///
/// # Errors
/// An invalid bootstrap configuration (checked before anything is computed).
pub fn evaluate(
    samples: &[SampleTruth],
    observations: &[Observation],
    config: &BootstrapConfig,
) -> Result<Evaluation> {
    evaluate_with(samples, observations, config, &[])
}

/// [`evaluate`], with answer scorers that run outside this crate (VQA similarity by a sentence
/// model): their per-answer values join the built-in scores and every VQA summary.
///
/// # Errors
/// As [`evaluate`]; a scorer that fails is a warning, not an error.
pub fn evaluate_with(
    samples: &[SampleTruth],
    observations: &[Observation],
    config: &BootstrapConfig,
    scorers: &[&dyn crate::vqa::AnswerScorer],
) -> Result<Evaluation> {
    config.validate()?;
    let truths: BTreeMap<(&str, &str), &SampleTruth> = samples
        .iter()
        .map(|s| ((s.dataset.as_str(), s.id.as_str()), s))
        .collect();
    let truth_of = |o: &Observation| -> Option<&SampleTruth> {
        truths
            .get(&(o.dataset.as_str(), o.sample_id.as_str()))
            .copied()
    };
    let mut ev = Evaluation {
        bootstrap: config.clone(),
        counting: Vec::new(),
        counting_paired: Vec::new(),
        count_points: Vec::new(),
        segmentation: Vec::new(),
        segmentation_images: Vec::new(),
        instances: Vec::new(),
        classification: Vec::new(),
        size: Vec::new(),
        size_answers: Vec::new(),
        vqa: Vec::new(),
        vqa_scorers: scorers.iter().map(|s| s.describe()).collect(),
        failures: Vec::new(),
        rankings: Vec::new(),
        warnings: Vec::new(),
    };
    // Per (dataset, task, method): per image, the value the main score averages.
    let mut per_image: PerImage = BTreeMap::new();
    for o in observations {
        if let Outcome::Unreadable(reason) = &o.outcome {
            ev.warnings.push(format!(
                "{} of {:?} on {:?} (dataset {:?}): {reason}; scored as missing",
                o.task, o.method, o.sample_id, o.dataset
            ));
        }
    }

    // Counting.
    for (dataset, methods) in grouped(observations, TaskKind::Count) {
        let all = || methods.values().flatten().filter_map(|o| truth_of(o));
        let mut strata = vec![Stratum::All];
        let stains: BTreeSet<&str> = all().filter_map(|s| s.stain.as_deref()).collect();
        if stains.len() > 1 {
            strata.extend(
                stains
                    .into_iter()
                    .map(|s| Stratum::Stain { stain: s.into() }),
            );
        }
        let counts: Vec<f64> = all().filter_map(|s| s.count).collect();
        let ranges: Vec<Stratum> = COUNT_RANGES
            .iter()
            .filter(|&&(low, high)| counts.iter().any(|&t| in_count_range(t, low, high)))
            .map(|&(low, high)| Stratum::TrueCount { low, high })
            .collect();
        if ranges.len() > 1 {
            strata.extend(ranges);
        }
        for (method, os) in &methods {
            let no_truth = os
                .iter()
                .filter(|o| truth_of(o).is_none_or(|s| s.count.is_none()))
                .count();
            if no_truth > 0 {
                ev.warnings.push(format!(
                    "counting, dataset {dataset:?}, method {method:?}: {no_truth} of {} predictions have no true count and are not scored",
                    os.len()
                ));
            }
            for o in os {
                if let (Some(s), Some(n)) = (truth_of(o), o.value().and_then(|v| v.count())) {
                    if let Some(t) = s.count {
                        ev.count_points.push(CountPoint {
                            dataset: dataset.into(),
                            method: (*method).into(),
                            image: o.sample_id.clone(),
                            truth: t,
                            predicted: n as f64,
                            blur: s.blur,
                        });
                    }
                }
            }
        }
        for stratum in &strata {
            for (method, os) in &methods {
                let mut pairs = Vec::new();
                let mut missing = 0usize;
                for o in os {
                    let Some(s) = truth_of(o) else { continue };
                    let Some(t) = s.count else { continue };
                    if !stratum.contains(s, t) {
                        continue;
                    }
                    match o.value().and_then(|v| v.count()) {
                        Some(v) => pairs.push((t, v as f64)),
                        None => missing += 1,
                    }
                }
                ev.counting.push(CountingResult {
                    dataset: dataset.into(),
                    stratum: stratum.clone(),
                    method: (*method).into(),
                    summary: count_summary(&pairs, missing, config)?,
                });
            }
        }
        // Paired: every method against the one with the lowest MAE on the images both answered.
        let errs: BTreeMap<&str, BTreeMap<&str, f64>> = methods
            .iter()
            .map(|(m, os)| {
                let e = os
                    .iter()
                    .filter_map(|o| {
                        let t = truth_of(o)?.count?;
                        let v = o.value()?.count()? as f64;
                        Some((o.sample_id.as_str(), (v - t).abs()))
                    })
                    .collect();
                (*m, e)
            })
            .collect();
        for (m, e) in &errs {
            per_image.insert(
                (dataset.to_string(), TaskKind::Count, m.to_string()),
                e.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            );
        }
        let mae = |e: &BTreeMap<&str, f64>| e.values().sum::<f64>() / e.len().max(1) as f64;
        let Some((best, best_e)) = errs
            .iter()
            .filter(|(_, e)| !e.is_empty())
            .min_by(|a, b| mae(a.1).total_cmp(&mae(b.1)))
        else {
            continue;
        };
        let ids: BTreeSet<&str> = errs.values().flat_map(|e| e.keys().copied()).collect();
        for (m, e) in &errs {
            if m == best {
                continue;
            }
            let Some(difference) = paired_on(&ids, e, best_e, config) else {
                continue;
            };
            ev.counting_paired.push(PairedResult {
                dataset: dataset.into(),
                method: (*m).into(),
                best: (*best).into(),
                difference,
            });
        }
    }

    // Segmentation (from the per-image scores the runner stored).
    for (dataset, methods) in grouped(observations, TaskKind::Segment) {
        for (method, os) in methods {
            let mut dice = Vec::new();
            let mut jaccard = Vec::new();
            for o in &os {
                let m = &o.image_metrics;
                if m.is_empty() {
                    continue;
                }
                if let (Some(&d), Some(&j)) = (m.get(&Metric::Dice), m.get(&Metric::Jaccard)) {
                    dice.push(d);
                    jaccard.push(j);
                    per_image
                        .entry((dataset.to_string(), TaskKind::Segment, method.to_string()))
                        .or_default()
                        .insert(o.sample_id.clone(), d);
                }
                ev.segmentation_images.push(SegmentationImage {
                    dataset: dataset.into(),
                    method: method.into(),
                    image: o.sample_id.clone(),
                    dice: m.get(&Metric::Dice).copied(),
                    jaccard: m.get(&Metric::Jaccard).copied(),
                    hausdorff_px: m.get(&Metric::HausdorffPx).copied(),
                });
            }
            ev.segmentation.push(SegmentationResult {
                dataset: dataset.into(),
                method: method.into(),
                n: dice.len(),
                not_scored: os.len() - dice.len(),
                dice: mean_estimate(&dice, config)?,
                jaccard: mean_estimate(&jaccard, config)?,
            });
            // Instance scores exist only where the truth is instance labels.
            let with: Vec<&BTreeMap<Metric, f64>> = os
                .iter()
                .map(|o| &o.image_metrics)
                .filter(|m| m.contains_key(&Metric::InstancesTrue))
                .collect();
            if with.is_empty() {
                continue;
            }
            let vals = |k: Metric| -> Vec<f64> {
                with.iter().filter_map(|m| m.get(&k).copied()).collect()
            };
            let mean = |k: Metric| {
                let v = vals(k);
                (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
            };
            let total = |k: Metric| vals(k).iter().sum::<f64>() as u64;
            ev.instances.push(InstanceResult {
                dataset: dataset.into(),
                method: method.into(),
                n: with.len(),
                f1_iou50: mean_estimate(&vals(Metric::F1Iou50), config)?,
                f1_iou75: mean(Metric::F1Iou75),
                f1_iou50_95: mean(Metric::F1Iou50To95),
                tp_over_tp_fp_fn_iou50: mean(Metric::TpOverTpFpFnIou50),
                tp_over_tp_fp_fn_iou50_95: mean(Metric::TpOverTpFpFnIou50To95),
                instances_true: total(Metric::InstancesTrue),
                instances_pred: total(Metric::InstancesPred),
            });
        }
    }

    // Classification: an answer that names no class is wrong (the study's rule).
    for (dataset, methods) in grouped(observations, TaskKind::Classify) {
        for (method, os) in methods {
            let mut truth_names = Vec::new();
            let mut pred_names: Vec<Option<&str>> = Vec::new();
            let correct = per_image
                .entry((dataset.to_string(), TaskKind::Classify, method.to_string()))
                .or_default();
            for o in &os {
                let Some(t) = truth_of(o).and_then(|s| s.class.as_deref()) else {
                    continue;
                };
                truth_names.push(t);
                let p = match o.value() {
                    Some(PredictionValue::Class(c)) => Some(c.as_str()),
                    _ => None,
                };
                correct.insert(o.sample_id.clone(), f64::from(u8::from(p == Some(t))));
                pred_names.push(p);
            }
            if truth_names.is_empty() {
                continue;
            }
            let classes: Vec<String> = truth_names
                .iter()
                .copied()
                .chain(pred_names.iter().flatten().copied())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .map(String::from)
                .collect();
            let idx = |c: &str| classes.iter().position(|x| x == c).unwrap_or(0);
            let t: Vec<usize> = truth_names.iter().map(|c| idx(c)).collect();
            let p: Vec<Option<usize>> = pred_names.iter().map(|c| c.map(idx)).collect();
            ev.classification.push(ClassificationResult {
                dataset: dataset.into(),
                method: method.into(),
                summary: classification_summary(&classes, &t, &p, config)?,
            });
        }
    }

    // Sizes in µm.
    for (dataset, methods) in grouped(observations, TaskKind::Size) {
        for (method, os) in methods {
            let mut pairs = Vec::new();
            let mut missing = 0usize;
            for o in &os {
                let truth_um = truth_of(o).and_then(|s| s.size_um);
                ev.size_answers.push(SizeAnswer {
                    dataset: dataset.into(),
                    method: method.into(),
                    image: o.sample_id.clone(),
                    truth_um,
                    answer_um: o.value().and_then(|v| v.size_um()),
                });
                let Some(t) = truth_um else {
                    continue;
                };
                match o.value().and_then(|v| v.size_um()) {
                    Some(v) => {
                        pairs.push((t, v));
                        per_image
                            .entry((dataset.to_string(), TaskKind::Size, method.to_string()))
                            .or_default()
                            .insert(o.sample_id.clone(), (v - t).abs());
                    }
                    None => missing += 1,
                }
            }
            ev.size.push(SizeResult {
                dataset: dataset.into(),
                method: method.into(),
                summary: size_summary(&pairs, missing, config)?,
            });
        }
    }

    // VQA: automatic scores of each answer against the sample's reference, and their
    // agreement with the expert's grades where the answers carry them.
    for (dataset, methods) in grouped(observations, TaskKind::Vqa) {
        let mut answers = Vec::new();
        let mut pairs: Vec<(usize, String, String)> = Vec::new();
        for (method, os) in methods {
            for o in os {
                let Some(PredictionValue::Answer { text, expert_grade }) = o.value() else {
                    continue;
                };
                let a = crate::vqa::GradedAnswer {
                    image: o.sample_id.clone(),
                    model: method.to_string(),
                    answer: text.clone(),
                    expert: *expert_grade,
                };
                let reference = truth_of(o).and_then(|s| s.reference.as_deref());
                if let Some(r) = reference {
                    pairs.push((answers.len(), text.clone(), r.to_string()));
                }
                answers.push(crate::vqa::score_answer(&a, reference));
            }
        }
        let pairs: Vec<(usize, &str, &str)> = pairs
            .iter()
            .map(|(i, a, r)| (*i, a.as_str(), r.as_str()))
            .collect();
        for scorer in scorers {
            if let Err(why) = crate::vqa::add_external_scores(&mut answers, &pairs, *scorer) {
                ev.warnings
                    .push(format!("{why} (dataset {dataset:?}); left out"));
            }
            for a in &answers {
                if let Some(why) = a.failures.get(scorer.name()) {
                    ev.warnings.push(format!(
                        "{} gave no value for {:?}'s answer on {:?} (dataset {dataset:?}): {why}",
                        scorer.name(),
                        a.model,
                        a.image
                    ));
                }
            }
        }
        let summary = crate::vqa::summarise(&answers, config)?;
        ev.vqa.push(VqaResult {
            dataset: dataset.into(),
            answers,
            summary,
        });
    }

    ev.rankings = rankings(&ev, &per_image, config)?;

    // Failures and missing answers.
    let mut per: BTreeMap<(&str, TaskKind), BTreeMap<&str, usize>> = BTreeMap::new();
    for o in observations {
        if let Some(f) = &o.failure {
            *per.entry((&o.method, o.task))
                .or_default()
                .entry(f)
                .or_default() += 1;
        }
    }
    ev.failures = per
        .into_iter()
        .map(|((method, task), reasons)| FailureResult {
            method: method.into(),
            task,
            count: reasons.values().sum(),
            reasons: reasons.into_iter().map(|(r, n)| (r.into(), n)).collect(),
        })
        .collect();
    Ok(ev)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn truth(id: &str, count: f64, stain: &str) -> SampleTruth {
        SampleTruth {
            dataset: "d".into(),
            id: id.into(),
            count: Some(count),
            stain: Some(stain.into()),
            ..Default::default()
        }
    }

    fn count(method: &str, id: &str, n: Option<u64>) -> Observation {
        Observation {
            dataset: "d".into(),
            method: method.into(),
            task: TaskKind::Count,
            sample_id: id.into(),
            outcome: n.map_or(Outcome::Failed, |n| {
                Outcome::Value(PredictionValue::Count(n))
            }),
            failure: n.is_none().then(|| "timeout".to_string()),
            image_metrics: BTreeMap::new(),
        }
    }

    #[test]
    fn counting_strata_paired_and_failures_by_hand() {
        let samples = [
            truth("a", 5.0, "w1"),
            truth("b", 20.0, "w2"),
            truth("c", 40.0, "w2"),
        ];
        let obs = [
            count("good", "a", Some(5)),
            count("good", "b", Some(21)),
            count("good", "c", Some(40)),
            count("bad", "a", Some(9)),
            count("bad", "b", None),
            count("bad", "c", Some(30)),
        ];
        let ev = evaluate(&samples, &obs, &BootstrapConfig::default()).unwrap();
        let row = |stratum: &str, m: &str| {
            ev.counting
                .iter()
                .find(|r| r.stratum.label() == stratum && r.method == m)
                .unwrap_or_else(|| panic!("no row {stratum} {m}"))
        };
        let all_bad = row("all", "bad");
        assert_eq!(
            (all_bad.summary.scores.n, all_bad.summary.scores.missing),
            (2, 1)
        );
        assert_eq!(all_bad.summary.scores.mae, Some(7.0));
        assert_eq!(row("stain w2", "good").summary.scores.mae, Some(0.5));
        assert_eq!(row("true count 11–30", "good").summary.scores.n, 1);
        assert_eq!(
            row("true count 31–60", "bad").summary.scores.mae,
            Some(10.0)
        );
        // Paired on images a and c (b has no answer from "bad"): (4 + 10)/2 − 0.
        let p = &ev.counting_paired[0];
        assert_eq!((p.method.as_str(), p.best.as_str()), ("bad", "good"));
        assert_eq!((p.difference.n, p.difference.difference), (2, 7.0));
        assert_eq!(ev.count_points.len(), 5);
        assert_eq!(ev.failures.len(), 1);
        assert_eq!(ev.failures[0].reasons, vec![("timeout".to_string(), 1)]);
        // The ranking: "good" (MAE 1/3) before "bad" (MAE 7), compared on images a and c.
        let r = &ev.rankings[0];
        assert_eq!(
            (r.task, r.metric, r.lower_is_better),
            (TaskKind::Count, Metric::Mae, true)
        );
        let names: Vec<&str> = r.entries.iter().map(|e| e.method.as_str()).collect();
        assert_eq!(names, ["good", "bad"]);
        let ru = r.runner_up.as_ref().unwrap();
        assert_eq!(
            (
                ru.method.as_str(),
                ru.difference.n,
                ru.difference.difference
            ),
            ("bad", 2, 7.0)
        );
        assert!(ev.warnings.is_empty(), "{:?}", ev.warnings);
    }

    #[test]
    fn unreadable_value_is_missing_with_a_warning_and_no_truth_is_said() {
        let samples = [truth("a", 4.0, "w1")];
        let mut bad = count("m", "a", None);
        bad.outcome = Outcome::Unreadable("stored count 3.7 is not a whole number".into());
        bad.failure = None;
        let orphan = count("m", "zzz", Some(3));
        let ev = evaluate(&samples, &[bad, orphan], &BootstrapConfig::default()).unwrap();
        let all = &ev.counting[0];
        assert_eq!((all.summary.scores.n, all.summary.scores.missing), (0, 1));
        assert_eq!(ev.warnings.len(), 2, "{:?}", ev.warnings);
        assert!(ev.warnings.iter().any(|w| w.contains("3.7")));
        assert!(ev
            .warnings
            .iter()
            .any(|w| w.contains("1 of 2 predictions have no true count")));
    }

    #[test]
    fn higher_is_better_scores_rank_highest_first() {
        let samples: Vec<SampleTruth> = (0..6)
            .map(|i| SampleTruth {
                dataset: "d".into(),
                id: format!("s{i}"),
                class: Some(if i % 2 == 0 { "A" } else { "B" }.into()),
                ..Default::default()
            })
            .collect();
        let answer = |method: &str, i: usize, c: &str| Observation {
            dataset: "d".into(),
            method: method.into(),
            task: TaskKind::Classify,
            sample_id: format!("s{i}"),
            outcome: Outcome::Value(PredictionValue::Class(c.into())),
            failure: None,
            image_metrics: BTreeMap::new(),
        };
        let mut obs = Vec::new();
        for i in 0..6 {
            let truth = if i % 2 == 0 { "A" } else { "B" };
            obs.push(answer("always A", i, "A"));
            obs.push(answer("right", i, truth));
        }
        let ev = evaluate(&samples, &obs, &BootstrapConfig::default()).unwrap();
        let r = &ev.rankings[0];
        assert_eq!((r.metric, r.lower_is_better), (Metric::Accuracy, false));
        assert_eq!(r.entries[0].method, "right");
        assert_eq!(r.entries[0].estimate.value, Some(1.0));
        let ru = r.runner_up.as_ref().unwrap();
        // Runner-up's accuracy 0.5 minus the best's 1.0 on the same 6 images.
        assert_eq!((ru.difference.n, ru.difference.difference), (6, -0.5));
        assert!(ru.beyond_noise, "{ru:?}");
    }

    #[test]
    fn invalid_bootstrap_is_refused_before_anything_is_computed() {
        let c = BootstrapConfig {
            resamples: 0,
            ..Default::default()
        };
        assert!(evaluate(&[], &[], &c).is_err());
    }
}
