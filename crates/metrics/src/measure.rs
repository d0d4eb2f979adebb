//! # The measurement layer
//!
//! One place where a prediction becomes a score, shared by every command: a study's runner (the
//! per-image scores it stores), `mica report` (the summaries it shows), `mica eval` (the same
//! scores from files) and `mica robustness`. What is here is computed nowhere else.
//!
//! - [`Metric`]: every metric's name, spelled once ([`Metric::key`] in files and JSON,
//!   [`Metric::label`] for people).
//! - [`Estimate`]: a value with its bootstrap interval.
//! - Per image: [`score_segmentation`] → [`SegmentationScores`] (foreground overlap, Hausdorff,
//!   instance matching against [`TruthKind::InstanceLabels`] or, labelled as such,
//!   [`TruthKind::BinaryMask`] components).
//! - Summaries: [`count_summary`] (MAE, RMSE, bias, MAPE, exact, Pearson r, R² with intervals),
//!   [`mean_estimate`] (a mean of per-image values with its interval, e.g. mean Dice),
//!   [`classification_summary`] (accuracy, balanced accuracy, macro-F1 with intervals),
//!   [`size_summary`] (sizes in µm).
//! - Everything a store's predictions say, at once: [`crate::evaluation::evaluate`].

use crate::bootstrap::{bootstrap_intervals, BootstrapConfig, Interval};
use crate::classification::{classification_report, ClassificationReport};
use crate::counting::{scores_of_pairs, CountScores};
use crate::error::Result;
use crate::foreground::foreground_scores;
use crate::instances::{instance_scores, InstanceReport, STANDARD_IOU_THRESHOLDS};
use mica_core::{BinaryMask, LabelImage};
use serde::Serialize;

/// A metric mica reports. [`Metric::key`] is its name in files, JSON and the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(into = "&'static str")]
pub enum Metric {
    // Counting.
    Mae,
    Rmse,
    Bias,
    Mape,
    Exact,
    PearsonR,
    R2,
    // Foreground overlap, per image.
    Dice,
    Jaccard,
    Precision,
    Recall,
    HausdorffPx,
    Hausdorff95Px,
    // Instances, per image.
    InstancesTrue,
    InstancesPred,
    F1Iou50,
    PrecisionIou50,
    RecallIou50,
    TpOverTpFpFnIou50,
    F1Iou75,
    PrecisionIou75,
    RecallIou75,
    TpOverTpFpFnIou75,
    /// Mean F1 over IoU 0.50, 0.55, ..., 0.95.
    F1Iou50To95,
    /// Mean TP/(TP+FP+FN) over IoU 0.50, ..., 0.95 (the mSA of micro-sam and the DSB 2018).
    TpOverTpFpFnIou50To95,
    // Classification.
    Accuracy,
    BalancedAccuracy,
    MacroF1,
    // Sizes in µm.
    MaeUm,
    MedianAbsLog10Ratio,
    WithinFactor2,
}

impl Metric {
    /// Every metric, in the order tables show them.
    pub const ALL: [Metric; 31] = [
        Metric::Mae,
        Metric::Rmse,
        Metric::Bias,
        Metric::Mape,
        Metric::Exact,
        Metric::PearsonR,
        Metric::R2,
        Metric::Dice,
        Metric::Jaccard,
        Metric::Precision,
        Metric::Recall,
        Metric::HausdorffPx,
        Metric::Hausdorff95Px,
        Metric::InstancesTrue,
        Metric::InstancesPred,
        Metric::F1Iou50,
        Metric::PrecisionIou50,
        Metric::RecallIou50,
        Metric::TpOverTpFpFnIou50,
        Metric::F1Iou75,
        Metric::PrecisionIou75,
        Metric::RecallIou75,
        Metric::TpOverTpFpFnIou75,
        Metric::F1Iou50To95,
        Metric::TpOverTpFpFnIou50To95,
        Metric::Accuracy,
        Metric::BalancedAccuracy,
        Metric::MacroF1,
        Metric::MaeUm,
        Metric::MedianAbsLog10Ratio,
        Metric::WithinFactor2,
    ];

    /// The metric's name in files, JSON and the store (`mae`, `dice`, `f1_iou50`, ...).
    pub fn key(self) -> &'static str {
        match self {
            Metric::Mae => "mae",
            Metric::Rmse => "rmse",
            Metric::Bias => "bias",
            Metric::Mape => "mape",
            Metric::Exact => "exact",
            Metric::PearsonR => "pearson_r",
            Metric::R2 => "r2",
            Metric::Dice => "dice",
            Metric::Jaccard => "jaccard",
            Metric::Precision => "precision",
            Metric::Recall => "recall",
            Metric::HausdorffPx => "hausdorff_px",
            Metric::Hausdorff95Px => "hausdorff95_px",
            Metric::InstancesTrue => "instances_true",
            Metric::InstancesPred => "instances_pred",
            Metric::F1Iou50 => "f1_iou50",
            Metric::PrecisionIou50 => "precision_iou50",
            Metric::RecallIou50 => "recall_iou50",
            Metric::TpOverTpFpFnIou50 => "tp_over_tp_fp_fn_iou50",
            Metric::F1Iou75 => "f1_iou75",
            Metric::PrecisionIou75 => "precision_iou75",
            Metric::RecallIou75 => "recall_iou75",
            Metric::TpOverTpFpFnIou75 => "tp_over_tp_fp_fn_iou75",
            Metric::F1Iou50To95 => "f1_iou50_95",
            Metric::TpOverTpFpFnIou50To95 => "tp_over_tp_fp_fn_iou50_95",
            Metric::Accuracy => "accuracy",
            Metric::BalancedAccuracy => "balanced_accuracy",
            Metric::MacroF1 => "macro_f1",
            Metric::MaeUm => "mae_um",
            Metric::MedianAbsLog10Ratio => "median_abs_log10_ratio",
            Metric::WithinFactor2 => "within_factor_2",
        }
    }

    /// The metric's name for people (table headers).
    pub fn label(self) -> &'static str {
        match self {
            Metric::Mae => "MAE",
            Metric::Rmse => "RMSE",
            Metric::Bias => "bias",
            Metric::Mape => "MAPE",
            Metric::Exact => "exact",
            Metric::PearsonR => "Pearson r",
            Metric::R2 => "R²",
            Metric::Dice => "Dice",
            Metric::Jaccard => "Jaccard",
            Metric::Precision => "precision",
            Metric::Recall => "recall",
            Metric::HausdorffPx => "Hausdorff (px)",
            Metric::Hausdorff95Px => "Hausdorff 95% (px)",
            Metric::InstancesTrue => "true objects",
            Metric::InstancesPred => "predicted objects",
            Metric::F1Iou50 => "F1 @ IoU 0.5",
            Metric::PrecisionIou50 => "precision @ IoU 0.5",
            Metric::RecallIou50 => "recall @ IoU 0.5",
            Metric::TpOverTpFpFnIou50 => "TP/(TP+FP+FN) @ IoU 0.5",
            Metric::F1Iou75 => "F1 @ IoU 0.75",
            Metric::PrecisionIou75 => "precision @ IoU 0.75",
            Metric::RecallIou75 => "recall @ IoU 0.75",
            Metric::TpOverTpFpFnIou75 => "TP/(TP+FP+FN) @ IoU 0.75",
            Metric::F1Iou50To95 => "mean F1 @ IoU 0.5–0.95",
            Metric::TpOverTpFpFnIou50To95 => "mSA: mean TP/(TP+FP+FN) @ IoU 0.5–0.95",
            Metric::Accuracy => "accuracy",
            Metric::BalancedAccuracy => "balanced accuracy",
            Metric::MacroF1 => "macro-F1",
            Metric::MaeUm => "MAE (µm)",
            Metric::MedianAbsLog10Ratio => "median |log10(pred/true)|",
            Metric::WithinFactor2 => "within a factor of 2",
        }
    }

    /// The metric named `key` (as [`Metric::key`] spells it).
    pub fn from_key(key: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.key() == key)
    }

    /// The counting metrics, in the order of [`CountSummary::estimates`].
    pub const COUNTING: [Metric; 7] = [
        Metric::Mae,
        Metric::Rmse,
        Metric::Bias,
        Metric::Mape,
        Metric::Exact,
        Metric::PearsonR,
        Metric::R2,
    ];
}

impl From<Metric> for &'static str {
    fn from(m: Metric) -> Self {
        m.key()
    }
}

impl std::fmt::Display for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.key())
    }
}

/// A value with its bootstrap interval (`None` where it is undefined or too few values exist).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Estimate {
    pub value: Option<f64>,
    pub ci: Option<Interval>,
}

/// The counting scores of one method on a set of images, with their intervals.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CountSummary {
    /// Point estimates (and `n`, `missing`).
    pub scores: CountScores,
    /// The metrics of [`Metric::COUNTING`] with their intervals, in that order.
    pub estimates: Vec<(Metric, Estimate)>,
}

impl CountSummary {
    /// The estimate of one counting metric.
    pub fn get(&self, m: Metric) -> Option<Estimate> {
        self.estimates
            .iter()
            .find(|(k, _)| *k == m)
            .map(|(_, e)| *e)
    }
}

/// Counting scores of (truth, prediction) pairs with percentile-bootstrap intervals over the
/// scored images (`missing` answers cannot be resampled into a score; they are reported).
///
/// # Errors
/// An invalid bootstrap configuration.
pub fn count_summary(
    pairs: &[(f64, f64)],
    missing: usize,
    config: &BootstrapConfig,
) -> Result<CountSummary> {
    let s = scores_of_pairs(pairs, missing);
    let cis = bootstrap_intervals(pairs.len(), Metric::COUNTING.len(), config, |idx| {
        let sample: Vec<(f64, f64)> = idx.iter().map(|&i| pairs[i]).collect();
        let r = scores_of_pairs(&sample, 0);
        vec![r.mae, r.rmse, r.bias, r.mape, r.exact, r.pearson_r, r.r2]
    })?;
    let values = [s.mae, s.rmse, s.bias, s.mape, s.exact, s.pearson_r, s.r2];
    let estimates = Metric::COUNTING
        .into_iter()
        .zip(values)
        .zip(cis)
        .map(|((m, value), ci)| (m, Estimate { value, ci }))
        .collect();
    Ok(CountSummary {
        scores: s,
        estimates,
    })
}

/// The mean of per-image values (e.g. Dice) with its percentile-bootstrap interval.
///
/// # Errors
/// An invalid bootstrap configuration.
pub fn mean_estimate(values: &[f64], config: &BootstrapConfig) -> Result<Estimate> {
    let mean =
        |v: &mut dyn Iterator<Item = f64>, n: usize| (n > 0).then(|| v.sum::<f64>() / n as f64);
    let value = mean(&mut values.iter().copied(), values.len());
    let ci = bootstrap_intervals(values.len(), 1, config, |idx| {
        vec![mean(&mut idx.iter().map(|&i| values[i]), idx.len())]
    })?
    .pop()
    .flatten();
    Ok(Estimate { value, ci })
}

/// The classification scores of one method with their intervals (images resampled; an answer
/// that named no class is wrong and stays in `n`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassificationSummary {
    pub report: ClassificationReport,
    pub accuracy: Estimate,
    pub balanced_accuracy: Estimate,
    pub macro_f1: Estimate,
}

/// [`ClassificationSummary`] of class indices into `classes` (`None` = named no class).
///
/// # Errors
/// As [`classification_report`]; an invalid bootstrap configuration.
pub fn classification_summary(
    classes: &[String],
    truth: &[usize],
    prediction: &[Option<usize>],
    config: &BootstrapConfig,
) -> Result<ClassificationSummary> {
    let report = classification_report(classes, truth, prediction)?;
    let mut cis = bootstrap_intervals(truth.len(), 3, config, |idx| {
        let t: Vec<usize> = idx.iter().map(|&i| truth[i]).collect();
        let p: Vec<Option<usize>> = idx.iter().map(|&i| prediction[i]).collect();
        match classification_report(classes, &t, &p) {
            Ok(r) => vec![
                Some(r.accuracy),
                Some(r.balanced_accuracy),
                Some(r.macro_f1),
            ],
            Err(_) => vec![None, None, None],
        }
    })?
    .into_iter();
    let mut est = |value: f64| Estimate {
        value: Some(value),
        ci: cis.next().flatten(),
    };
    Ok(ClassificationSummary {
        accuracy: est(report.accuracy),
        balanced_accuracy: est(report.balanced_accuracy),
        macro_f1: est(report.macro_f1),
        report,
    })
}

/// Scores of size answers against the expert's sizes (µm).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SizeSummary {
    /// Images with a numeric answer and a truth.
    pub n: usize,
    /// Images with a truth but no numeric answer.
    pub missing: usize,
    /// Mean |answer − truth|, µm, with its interval.
    pub mae_um: Estimate,
    /// Median |log10(answer / truth)|: 0 = exact, 1 = off by a factor of 10.
    pub median_abs_log10_ratio: Option<f64>,
    /// Fraction of answers within a factor of 2 of the truth.
    pub within_factor_2: Option<f64>,
}

/// [`SizeSummary`] of `(truth_um, answer_um)` pairs; pairs with a non-positive value count for
/// the MAE but not for the ratio scores.
///
/// # Errors
/// An invalid bootstrap configuration.
pub fn size_summary(
    pairs: &[(f64, f64)],
    missing: usize,
    config: &BootstrapConfig,
) -> Result<SizeSummary> {
    let errors: Vec<f64> = pairs.iter().map(|(t, p)| (p - t).abs()).collect();
    let mut logs: Vec<f64> = pairs
        .iter()
        .filter(|(t, p)| *t > 0.0 && *p > 0.0)
        .map(|(t, p)| (p / t).log10().abs())
        .collect();
    logs.sort_by(f64::total_cmp);
    let median_abs_log10_ratio = match logs.len() {
        0 => None,
        n if n % 2 == 1 => Some(logs[n / 2]),
        n => Some((logs[n / 2 - 1] + logs[n / 2]) / 2.0),
    };
    let within_factor_2 = (!logs.is_empty()).then(|| {
        logs.iter().filter(|&&l| l <= 2f64.log10() + 1e-12).count() as f64 / logs.len() as f64
    });
    Ok(SizeSummary {
        n: pairs.len(),
        missing,
        mae_um: mean_estimate(&errors, config)?,
        median_abs_log10_ratio,
        within_factor_2,
    })
}

/// A prediction's value, typed by its task: what a method answered, as the measurement layer scores
/// it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum PredictionValue {
    /// A number of objects (a whole number, at most [`crate::parse::MAX_COUNT`]).
    Count(u64),
    /// A class name.
    Class(String),
    /// A free-text answer (VQA), with the expert's grade of it where one was imported.
    Answer {
        text: String,
        expert_grade: Option<f64>,
    },
    /// A size in micrometres (positive, finite).
    SizeUm(f64),
    /// A label image, by its file (relative to the store's folder when not absolute).
    Mask(String),
}

impl PredictionValue {
    /// Reads a stored value (a store keeps a number, a text and a mask path per prediction) as the
    /// value of `task`. `Ok(None)`: no value (a failed or unparsed prediction). A value that does
    /// not fit its task (a count of 3.7, a negative size) is an error with the reason, never
    /// another value.
    ///
    /// # Errors
    /// The stored value is not a value of this task.
    pub fn from_stored(
        task: mica_core::task::TaskKind,
        number: Option<f64>,
        text: Option<&str>,
        mask: Option<&str>,
    ) -> std::result::Result<Option<PredictionValue>, String> {
        use mica_core::task::TaskKind as T;
        Ok(match task {
            T::Count => match number {
                None => None,
                Some(v)
                    if v.is_finite()
                        && v >= 0.0
                        && v.fract() == 0.0
                        && v <= crate::parse::MAX_COUNT as f64 =>
                {
                    Some(PredictionValue::Count(v as u64))
                }
                Some(v) => {
                    return Err(format!("stored count {v} is not a whole number of objects"))
                }
            },
            T::Size => match number {
                None => None,
                Some(v) if v.is_finite() && v > 0.0 => Some(PredictionValue::SizeUm(v)),
                Some(v) => return Err(format!("stored size {v} µm is not a positive size")),
            },
            T::Classify => text.map(|t| PredictionValue::Class(t.to_string())),
            T::Vqa => match number {
                Some(g) if !g.is_finite() => {
                    return Err(format!("stored expert grade {g} is not a number"))
                }
                grade => text.map(|t| PredictionValue::Answer {
                    text: t.to_string(),
                    expert_grade: grade,
                }),
            },
            T::Segment => mask.map(|m| PredictionValue::Mask(m.to_string())),
        })
    }

    /// The count, if this is one.
    pub fn count(&self) -> Option<u64> {
        match self {
            PredictionValue::Count(n) => Some(*n),
            _ => None,
        }
    }

    /// The size in µm, if this is one.
    pub fn size_um(&self) -> Option<f64> {
        match self {
            PredictionValue::SizeUm(v) => Some(*v),
            _ => None,
        }
    }
}

/// What the truth of a segmentation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TruthKind {
    /// An instance label image: one label per object.
    InstanceLabels,
    /// A binary mask: its objects are taken as its connected components (see
    /// [`crate::instances::BINARY_TRUTH_CAVEAT`]).
    BinaryMask,
}

impl TruthKind {
    /// What instance scores are computed against, in words.
    pub fn describe(self) -> &'static str {
        match self {
            TruthKind::InstanceLabels => "instance labels",
            TruthKind::BinaryMask => "connected components of a binary mask",
        }
    }
}

/// The scores of one predicted segmentation against its truth.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SegmentationScores {
    pub dice: f64,
    pub jaccard: f64,
    pub precision: Option<f64>,
    pub recall: Option<f64>,
    pub hausdorff_px: Option<f64>,
    pub hausdorff95_px: Option<f64>,
    /// What the instance scores are against.
    pub truth_kind: TruthKind,
    /// Instance matching at IoU 0.50, 0.55, ..., 0.95.
    pub instances: InstanceReport,
}

impl SegmentationScores {
    /// The per-image metrics as stored by a study: the foreground scores always, the instance
    /// scores only when `with_instances` (instance-label truth; the runner does not store
    /// instance scores of binary truth).
    pub fn image_metrics(&self, with_instances: bool) -> Vec<(Metric, f64)> {
        let mut out = vec![(Metric::Dice, self.dice), (Metric::Jaccard, self.jaccard)];
        for (m, v) in [
            (Metric::Precision, self.precision),
            (Metric::Recall, self.recall),
            (Metric::HausdorffPx, self.hausdorff_px),
            (Metric::Hausdorff95Px, self.hausdorff95_px),
        ] {
            if let Some(v) = v {
                out.push((m, v));
            }
        }
        if !with_instances {
            return out;
        }
        let r = &self.instances;
        out.push((Metric::InstancesTrue, r.num_truth as f64));
        out.push((Metric::InstancesPred, r.num_pred as f64));
        for s in &r.per_threshold {
            let at = match (s.iou_threshold * 100.0).round() as u32 {
                50 => [
                    Metric::F1Iou50,
                    Metric::PrecisionIou50,
                    Metric::RecallIou50,
                    Metric::TpOverTpFpFnIou50,
                ],
                75 => [
                    Metric::F1Iou75,
                    Metric::PrecisionIou75,
                    Metric::RecallIou75,
                    Metric::TpOverTpFpFnIou75,
                ],
                _ => continue,
            };
            for (m, v) in at
                .into_iter()
                .zip([s.f1, s.precision, s.recall, s.tp_over_tp_fp_fn])
            {
                if let Some(v) = v {
                    out.push((m, v));
                }
            }
        }
        if let Some(v) = r.mean_f1 {
            out.push((Metric::F1Iou50To95, v));
        }
        if let Some(v) = r.mean_tp_over_tp_fp_fn {
            out.push((Metric::TpOverTpFpFnIou50To95, v));
        }
        out
    }
}

/// Scores a predicted segmentation (its labels and its foreground) against the truth's labels:
/// foreground overlap of `pred_foreground` with the truth's foreground, and instance matching of
/// `pred_labels` with `truth` at the standard IoU thresholds. For a binary truth pass its
/// connected components and [`TruthKind::BinaryMask`].
///
/// # Errors
/// Images of different sizes.
pub fn score_segmentation(
    truth: &LabelImage,
    truth_kind: TruthKind,
    pred_labels: &LabelImage,
    pred_foreground: &BinaryMask,
) -> Result<SegmentationScores> {
    let fg = foreground_scores(&truth.foreground(), pred_foreground)?;
    let instances = instance_scores(truth, pred_labels, &STANDARD_IOU_THRESHOLDS)?;
    Ok(SegmentationScores {
        dice: fg.dice,
        jaccard: fg.jaccard,
        precision: fg.precision,
        recall: fg.recall,
        hausdorff_px: fg.hausdorff_px,
        hausdorff95_px: fg.hausdorff95_px,
        truth_kind,
        instances,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique_and_read_back() {
        let mut keys: Vec<&str> = Metric::ALL.iter().map(|m| m.key()).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), Metric::ALL.len());
        for m in Metric::ALL {
            assert_eq!(Metric::from_key(m.key()), Some(m));
        }
        assert_eq!(
            serde_json::to_string(&Metric::F1Iou50).unwrap(),
            "\"f1_iou50\""
        );
    }

    #[test]
    fn count_summary_by_hand() {
        let pairs = [(10.0, 12.0), (20.0, 20.0), (30.0, 27.0)];
        let s = count_summary(&pairs, 1, &BootstrapConfig::default()).unwrap();
        let mae = s.get(Metric::Mae).unwrap();
        assert!((mae.value.unwrap() - 5.0 / 3.0).abs() < 1e-12);
        // Three images: too few for an interval.
        assert!(mae.ci.is_none());
        assert_eq!((s.scores.n, s.scores.missing), (3, 1));
        let more = [pairs, pairs].concat();
        let s = count_summary(&more, 0, &BootstrapConfig::default()).unwrap();
        let ci = s.get(Metric::Mae).unwrap().ci.unwrap();
        assert!(ci.low <= 5.0 / 3.0 && 5.0 / 3.0 <= ci.high);
        let m = mean_estimate(&[0.5, 1.0], &BootstrapConfig::default()).unwrap();
        assert_eq!(m.value, Some(0.75));
        assert_eq!(
            mean_estimate(&[], &BootstrapConfig::default())
                .unwrap()
                .value,
            None
        );
    }

    #[test]
    fn size_summary_by_hand() {
        // Errors 1, 0.5, 9; ratios 2, 0.5, 10: |log10| = 0.301, 0.301, 1.
        let c = BootstrapConfig::default();
        let s = size_summary(&[(1.0, 2.0), (1.0, 0.5), (1.0, 10.0)], 2, &c).unwrap();
        assert_eq!((s.n, s.missing), (3, 2));
        assert!((s.mae_um.value.unwrap() - 10.5 / 3.0).abs() < 1e-12);
        assert!((s.median_abs_log10_ratio.unwrap() - 2f64.log10()).abs() < 1e-12);
        assert!((s.within_factor_2.unwrap() - 2.0 / 3.0).abs() < 1e-12);
        let empty = size_summary(&[], 0, &c).unwrap();
        assert_eq!(empty.n, 0);
        assert!(empty.mae_um.value.is_none() && empty.median_abs_log10_ratio.is_none());
    }

    #[test]
    fn classification_summary_interval_is_the_accuracy_interval() {
        let classes = vec!["a".to_string(), "b".to_string()];
        let t = [0, 0, 1, 1, 0, 1];
        let p = [Some(0), Some(1), Some(1), None, Some(0), Some(1)];
        let c = BootstrapConfig::default();
        let s = classification_summary(&classes, &t, &p, &c).unwrap();
        assert_eq!(s.accuracy.value, Some(4.0 / 6.0));
        // The accuracy interval is that of the mean 0/1 correctness (the same resamples).
        let correct: Vec<f64> = t
            .iter()
            .zip(&p)
            .map(|(a, b)| f64::from(u8::from(Some(*a) == *b)))
            .collect();
        assert_eq!(s.accuracy.ci, mean_estimate(&correct, &c).unwrap().ci);
    }

    #[test]
    fn stored_values_are_typed_or_refused() {
        use mica_core::task::TaskKind as T;
        let v = |t, n| PredictionValue::from_stored(t, n, None, None);
        assert_eq!(
            v(T::Count, Some(12.0)),
            Ok(Some(PredictionValue::Count(12)))
        );
        assert_eq!(v(T::Count, None), Ok(None));
        assert!(v(T::Count, Some(3.7)).is_err());
        assert!(v(T::Count, Some(-4.0)).is_err());
        assert!(v(T::Count, Some(1e308)).is_err());
        assert_eq!(
            v(T::Size, Some(2.5)),
            Ok(Some(PredictionValue::SizeUm(2.5)))
        );
        assert!(v(T::Size, Some(0.0)).is_err());
        let c = PredictionValue::from_stored(T::Classify, None, Some("Fibres"), None);
        assert_eq!(c, Ok(Some(PredictionValue::Class("Fibres".into()))));
    }

    #[test]
    fn segmentation_scores_by_hand() {
        let truth = LabelImage::new(4, 1, vec![1, 1, 0, 2]).unwrap();
        let pred = LabelImage::new(4, 1, vec![5, 5, 0, 0]).unwrap();
        let s = score_segmentation(&truth, TruthKind::InstanceLabels, &pred, &pred.foreground())
            .unwrap();
        // Foreground: truth 3 px, prediction 2 px, overlap 2 px → Dice 4/5.
        assert!((s.dice - 0.8).abs() < 1e-12);
        let m = s.image_metrics(true);
        assert!(m.contains(&(Metric::TpOverTpFpFnIou50, 0.5)), "{m:?}");
        assert!(s
            .image_metrics(false)
            .iter()
            .all(|(k, _)| *k != Metric::F1Iou50));
    }
}
