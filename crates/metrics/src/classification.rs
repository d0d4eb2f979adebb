//! Classification metrics: accuracy, balanced accuracy, macro-F1, per-class precision / recall /
//! F1 / support, and a confusion matrix with an extra "none" column for answers that named no class.
//!
//! Inputs are class indices into a list of class names: `truth[i]` is always a class,
//! `prediction[i]` is `None` when the answer named no class (unparsed, empty, "NaN"). An unparsed
//! answer counts as wrong (the study's rule) and is never dropped from `n`.

use crate::error::{check_len, MetricsError, Result};
use crate::parse::{parse_class, ClassLabel};
use serde::Serialize;

/// Name of the confusion-matrix column for answers that named no class.
pub const NONE_COLUMN: &str = "none";

/// Precision, recall and F1 of one class.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassScores {
    /// The class name.
    pub class: String,
    /// TP / (TP + FP); `None` when the class was never predicted.
    pub precision: Option<f64>,
    /// TP / (TP + FN); `None` when the class never occurs in the truth.
    pub recall: Option<f64>,
    /// 2·TP / (2·TP + FP + FN) (0 when TP = 0; equals the harmonic mean of P and R when both exist).
    pub f1: f64,
    /// Images whose true class is this one.
    pub support: usize,
    /// Images predicted as this class.
    pub predicted: usize,
}

/// Rows = true class, columns = predicted class followed by [`NONE_COLUMN`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConfusionMatrix {
    /// Row labels (true classes).
    pub rows: Vec<String>,
    /// Column labels: the classes, then "none".
    pub columns: Vec<String>,
    /// `counts[row][column]`.
    pub counts: Vec<Vec<usize>>,
}

/// The classification report of one method.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassificationReport {
    /// Images scored (all of them, unparsed answers included).
    pub n: usize,
    /// Answers that named no class (counted as wrong).
    pub unparsed: usize,
    /// Fraction of images whose predicted class is the true class.
    pub accuracy: f64,
    /// Mean recall over the classes that occur in the truth.
    pub balanced_accuracy: f64,
    /// Mean F1 over the classes that occur in the truth or the predictions (scikit-learn's set);
    /// the "none" column is not a class.
    pub macro_f1: f64,
    /// One entry per class, in the order of the class list.
    pub per_class: Vec<ClassScores>,
    pub confusion: ConfusionMatrix,
}

/// Scores predicted classes against true classes; `classes[k]` names class index `k`.
///
/// ```
/// use mica_metrics::classification::classification_report;
/// let classes = vec!["a".to_string(), "b".to_string()];
/// let r = classification_report(&classes, &[0, 0, 1, 1], &[Some(0), Some(1), Some(1), None]).unwrap();
/// assert_eq!(r.accuracy, 0.5);
/// assert_eq!(r.unparsed, 1);
/// assert_eq!(r.confusion.counts, vec![vec![1, 1, 0], vec![0, 1, 1]]);
/// ```
///
/// # Errors
/// [`MetricsError::Length`] for slices of different length, [`MetricsError::Invalid`] for an
/// index outside `classes` or no images.
pub fn classification_report(
    classes: &[String],
    truth: &[usize],
    prediction: &[Option<usize>],
) -> Result<ClassificationReport> {
    check_len("classification", truth.len(), prediction.len())?;
    if truth.is_empty() {
        return Err(MetricsError::Invalid(
            "classification: no images to score".into(),
        ));
    }
    let k = classes.len();
    if let Some(bad) = truth
        .iter()
        .copied()
        .chain(prediction.iter().flatten().copied())
        .find(|&c| c >= k)
    {
        return Err(MetricsError::Invalid(format!(
            "classification: class index {bad} but only {k} classes"
        )));
    }
    let mut counts = vec![vec![0usize; k + 1]; k];
    for (&t, p) in truth.iter().zip(prediction) {
        counts[t][p.unwrap_or(k)] += 1;
    }
    Ok(report_from_confusion(classes, counts))
}

fn report_from_confusion(classes: &[String], counts: Vec<Vec<usize>>) -> ClassificationReport {
    let k = classes.len();
    let n: usize = counts.iter().map(|r| r.iter().sum::<usize>()).sum();
    let unparsed: usize = counts.iter().map(|r| r[k]).sum();
    let correct: usize = (0..k).map(|c| counts[c][c]).sum();
    let mut per_class = Vec::with_capacity(k);
    let (mut recall_sum, mut recall_n, mut f1_sum, mut f1_n) = (0.0, 0usize, 0.0, 0usize);
    for c in 0..k {
        let tp = counts[c][c];
        let support: usize = counts[c].iter().sum();
        let predicted: usize = (0..k).map(|r| counts[r][c]).sum();
        let (fp, fn_) = (predicted - tp, support - tp);
        let precision = (predicted > 0).then(|| tp as f64 / predicted as f64);
        let recall = (support > 0).then(|| tp as f64 / support as f64);
        let denom = 2 * tp + fp + fn_;
        let f1 = if denom > 0 {
            2.0 * tp as f64 / denom as f64
        } else {
            0.0
        };
        if let Some(r) = recall {
            recall_sum += r;
            recall_n += 1;
        }
        if support > 0 || predicted > 0 {
            f1_sum += f1;
            f1_n += 1;
        }
        per_class.push(ClassScores {
            class: classes[c].clone(),
            precision,
            recall,
            f1,
            support,
            predicted,
        });
    }
    let mut columns: Vec<String> = classes.to_vec();
    columns.push(NONE_COLUMN.to_string());
    ClassificationReport {
        n,
        unparsed,
        accuracy: if n > 0 {
            correct as f64 / n as f64
        } else {
            0.0
        },
        balanced_accuracy: if recall_n > 0 {
            recall_sum / recall_n as f64
        } else {
            0.0
        },
        macro_f1: if f1_n > 0 { f1_sum / f1_n as f64 } else { 0.0 },
        per_class,
        confusion: ConfusionMatrix {
            rows: classes.to_vec(),
            columns,
            counts,
        },
    }
}

/// 1.0 where the prediction is the true class, 0.0 otherwise (unparsed = wrong): the per-image
/// score behind accuracy, e.g. for [`crate::bootstrap::paired_difference`].
pub fn correctness(truth: &[usize], prediction: &[Option<usize>]) -> Result<Vec<f64>> {
    check_len("correctness", truth.len(), prediction.len())?;
    Ok(truth
        .iter()
        .zip(prediction)
        .map(|(&t, p)| if *p == Some(t) { 1.0 } else { 0.0 })
        .collect())
}

/// A row whose answer or truth could not be turned into a class.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnreadAnswer {
    /// Row index in the input (0-based).
    pub row: usize,
    /// The raw text.
    pub text: String,
    /// Why it could not be read.
    pub reason: String,
}

/// Class answers as text turned into class indices.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedClasses {
    /// Class names; indices in `truth` and `prediction` point here.
    pub classes: Vec<String>,
    /// Input rows kept (those whose truth could be read).
    pub rows: Vec<usize>,
    /// True class of each kept row.
    pub truth: Vec<usize>,
    /// Predicted class of each kept row (`None` = named no class).
    pub prediction: Vec<Option<usize>>,
    /// Kept rows whose answer named no class, with why (they count as wrong).
    pub unparsed: Vec<UnreadAnswer>,
    /// Rows dropped because their *truth* could not be read.
    pub bad_truth: Vec<UnreadAnswer>,
    /// Predicted values that are not the truth of any row (only without a label set).
    pub predicted_only: Vec<String>,
}

/// Turns text columns into class indices.
///
/// - With `labels`: both columns are read with [`parse_class`] (class number or name); classes
///   are the labels' names in their order.
/// - Without: the trimmed text is the class. Classes are the distinct truth values plus any
///   other predicted value (as scikit-learn does), sorted numerically when all are integers,
///   else alphabetically. An empty answer or `NaN` names no class.
pub fn encode_classes(
    truth: &[String],
    prediction: &[String],
    labels: Option<&[ClassLabel]>,
) -> Result<EncodedClasses> {
    check_len("classes", truth.len(), prediction.len())?;
    let mut out = EncodedClasses {
        classes: Vec::new(),
        rows: Vec::new(),
        truth: Vec::new(),
        prediction: Vec::new(),
        unparsed: Vec::new(),
        bad_truth: Vec::new(),
        predicted_only: Vec::new(),
    };
    match labels {
        Some(labels) => {
            out.classes = labels.iter().map(|l| l.name.clone()).collect();
            for (row, (t, p)) in truth.iter().zip(prediction).enumerate() {
                let t = match parse_class(t, labels) {
                    Ok(t) => t,
                    Err(e) => {
                        out.bad_truth.push(UnreadAnswer {
                            row,
                            text: t.clone(),
                            reason: e.reason,
                        });
                        continue;
                    }
                };
                let p = match parse_class(p, labels) {
                    Ok(p) => Some(p),
                    Err(e) => {
                        out.unparsed.push(UnreadAnswer {
                            row,
                            text: p.clone(),
                            reason: e.reason,
                        });
                        None
                    }
                };
                out.rows.push(row);
                out.truth.push(t);
                out.prediction.push(p);
            }
        }
        None => {
            let is_none = |s: &str| s.is_empty() || s.eq_ignore_ascii_case("nan");
            let mut names: Vec<String> = Vec::new();
            for t in truth {
                let t = t.trim();
                if !is_none(t) && !names.iter().any(|n| n == t) {
                    names.push(t.to_string());
                }
            }
            for p in prediction {
                let p = p.trim();
                if !is_none(p) && !names.iter().any(|n| n == p) {
                    names.push(p.to_string());
                    out.predicted_only.push(p.to_string());
                }
            }
            sort_class_names(&mut names);
            let index = |s: &str| names.iter().position(|n| n == s);
            for (row, (t, p)) in truth.iter().zip(prediction).enumerate() {
                let Some(ti) = index(t.trim()) else {
                    out.bad_truth.push(UnreadAnswer {
                        row,
                        text: t.clone(),
                        reason: "empty or NaN truth".into(),
                    });
                    continue;
                };
                let pi = index(p.trim());
                if pi.is_none() {
                    out.unparsed.push(UnreadAnswer {
                        row,
                        text: p.clone(),
                        reason: if p.trim().is_empty() {
                            "empty answer".into()
                        } else {
                            "the answer is NaN".into()
                        },
                    });
                }
                out.rows.push(row);
                out.truth.push(ti);
                out.prediction.push(pi);
            }
            out.classes = names;
        }
    }
    Ok(out)
}

fn sort_class_names(names: &mut [String]) {
    if names.iter().all(|n| n.parse::<i64>().is_ok()) {
        names.sort_by_key(|n| n.parse::<i64>().unwrap_or(0));
    } else {
        names.sort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn hand_computed_three_classes() {
        // truth:      a a a b b c
        // prediction: a a b b - a
        let c = names(&["a", "b", "c"]);
        let r = classification_report(
            &c,
            &[0, 0, 0, 1, 1, 2],
            &[Some(0), Some(0), Some(1), Some(1), None, Some(0)],
        )
        .unwrap();
        assert_eq!(r.n, 6);
        assert_eq!(r.unparsed, 1);
        assert!((r.accuracy - 3.0 / 6.0).abs() < 1e-12);
        // recalls: a 2/3, b 1/2, c 0 -> mean 7/18
        assert!((r.balanced_accuracy - 7.0 / 18.0).abs() < 1e-12);
        // F1: a: tp2 fp1 fn1 -> 4/6; b: tp1 fp1 fn1 -> 2/4; c: tp0 -> 0
        assert!((r.macro_f1 - (4.0 / 6.0 + 0.5) / 3.0).abs() < 1e-12);
        assert_eq!(r.per_class[0].precision, Some(2.0 / 3.0));
        assert_eq!(r.per_class[2].precision, None);
        assert_eq!(r.per_class[1].support, 2);
        assert_eq!(r.confusion.columns.last().unwrap(), "none");
        assert_eq!(r.confusion.counts[1], vec![0, 1, 0, 1]);
    }

    #[test]
    fn bad_indices_are_errors() {
        let c = names(&["a"]);
        assert!(classification_report(&c, &[1], &[Some(0)]).is_err());
        assert!(classification_report(&c, &[0], &[Some(3)]).is_err());
        assert!(classification_report(&c, &[], &[]).is_err());
        assert!(classification_report(&c, &[0], &[]).is_err());
    }

    #[test]
    fn encode_without_labels_sorts_numbers_and_reports() {
        let t = names(&["10", "2", "2", "", "1"]);
        let p = names(&["10", " 2 ", "NaN", "2", "11"]);
        let e = encode_classes(&t, &p, None).unwrap();
        assert_eq!(e.classes, names(&["1", "2", "10", "11"]));
        assert_eq!(e.rows, vec![0, 1, 2, 4]);
        assert_eq!(e.truth, vec![2, 1, 1, 0]);
        assert_eq!(e.prediction, vec![Some(2), Some(1), None, Some(3)]);
        assert_eq!(e.bad_truth.len(), 1);
        assert_eq!(e.unparsed.len(), 1);
        assert_eq!(e.predicted_only, names(&["11"]));
    }

    #[test]
    fn encode_with_labels_parses_text() {
        let labels = crate::parse::nffa_labels();
        let t = names(&["2", "6"]);
        let p = names(&["I see fibres", "no idea"]);
        let e = encode_classes(&t, &p, Some(&labels)).unwrap();
        assert_eq!(e.truth, vec![1, 5]);
        assert_eq!(e.prediction, vec![Some(1), None]);
        assert_eq!(e.unparsed[0].row, 1);
    }
}
