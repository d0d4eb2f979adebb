//! Instance segmentation metrics between two [`LabelImage`]s (0 = background).
//!
//! 1. [`OverlapTable`]: the pixel overlap of every (true object, predicted object) pair that
//!    overlaps at all, with object areas, built in one pass (sparse: no objects × objects matrix).
//! 2. [`match_instances`]: an optimal one-to-one matching at an IoU threshold. Among pairs with
//!    IoU ≥ threshold it maximises the number of matched pairs and, among those, the summed IoU
//!    (the criterion of cellpose's and StarDist's matching). The candidate graph is split into
//!    connected components and each is solved exactly with [`crate::assignment`]; at thresholds
//!    above 0.5 every component is a single pair.
//! 3. [`instance_scores`]: TP / FP / FN, precision, recall, F1 and TP / (TP + FP + FN) per
//!    threshold, and their means. TP / (TP + FP + FN) is what cellpose calls "average precision"
//!    and StarDist "accuracy"; mica names it by what it computes.

/// What instance scores against a binary truth mask mean, said wherever they are shown.
pub const BINARY_TRUTH_CAVEAT: &str = "the truth masks are binary (foreground only), so each connected component of the truth counts as one object: touching or overlapping cells become one, and a prediction with a near-perfect foreground can score a low instance F1. Instance scores are meaningful against instance label images";

use crate::assignment::min_cost_assignment;
use crate::error::{check_shape, MetricsError, Result};
use mica_core::LabelImage;
use serde::Serialize;
use std::collections::HashMap;

/// The IoU thresholds 0.50, 0.55, ..., 0.95.
pub const STANDARD_IOU_THRESHOLDS: [f64; 10] =
    [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95];

/// One overlapping pair of objects.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Overlap {
    /// Index into [`OverlapTable::truth_labels`].
    pub truth: u32,
    /// Index into [`OverlapTable::pred_labels`].
    pub pred: u32,
    /// Pixels in both objects.
    pub intersection_px: u64,
}

/// Object areas and pairwise overlaps of two label images.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OverlapTable {
    /// Distinct non-zero labels of the truth, ascending.
    pub truth_labels: Vec<u32>,
    /// Area in pixels of each truth object.
    pub truth_areas_px: Vec<u64>,
    /// Distinct non-zero labels of the prediction, ascending.
    pub pred_labels: Vec<u32>,
    /// Area in pixels of each predicted object.
    pub pred_areas_px: Vec<u64>,
    /// Every pair with a non-zero intersection, sorted by (truth, pred).
    pub overlaps: Vec<Overlap>,
}

impl OverlapTable {
    /// Builds the table.
    ///
    /// # Errors
    /// [`MetricsError::Shape`] when the images differ in size.
    pub fn new(truth: &LabelImage, prediction: &LabelImage) -> Result<Self> {
        check_shape(
            "label images",
            (truth.width(), truth.height()),
            (prediction.width(), prediction.height()),
        )?;
        let (t_ids, truth_labels, truth_areas_px) = compact_labels(truth.as_slice());
        let (p_ids, pred_labels, pred_areas_px) = compact_labels(prediction.as_slice());
        // Run-length accumulate (truth, pred) pairs along raster order, then merge.
        let mut runs: Vec<(u64, u64)> = Vec::new();
        let mut cur_key = u64::MAX;
        let mut cur_len = 0u64;
        for (&t, &p) in t_ids.iter().zip(&p_ids) {
            if t == u32::MAX || p == u32::MAX {
                if cur_len > 0 {
                    runs.push((cur_key, cur_len));
                    cur_len = 0;
                    cur_key = u64::MAX;
                }
                continue;
            }
            let key = (u64::from(t) << 32) | u64::from(p);
            if key == cur_key {
                cur_len += 1;
            } else {
                if cur_len > 0 {
                    runs.push((cur_key, cur_len));
                }
                cur_key = key;
                cur_len = 1;
            }
        }
        if cur_len > 0 {
            runs.push((cur_key, cur_len));
        }
        runs.sort_unstable_by_key(|r| r.0);
        let mut overlaps: Vec<Overlap> = Vec::new();
        for (key, len) in runs {
            let (t, p) = ((key >> 32) as u32, key as u32);
            match overlaps.last_mut() {
                Some(o) if o.truth == t && o.pred == p => o.intersection_px += len,
                _ => overlaps.push(Overlap {
                    truth: t,
                    pred: p,
                    intersection_px: len,
                }),
            }
        }
        Ok(OverlapTable {
            truth_labels,
            truth_areas_px,
            pred_labels,
            pred_areas_px,
            overlaps,
        })
    }

    /// Number of true objects.
    pub fn num_truth(&self) -> usize {
        self.truth_labels.len()
    }

    /// Number of predicted objects.
    pub fn num_pred(&self) -> usize {
        self.pred_labels.len()
    }

    /// Intersection over union of one overlapping pair.
    pub fn iou(&self, o: &Overlap) -> f64 {
        let union = self.truth_areas_px[o.truth as usize] + self.pred_areas_px[o.pred as usize]
            - o.intersection_px;
        o.intersection_px as f64 / union as f64
    }
}

/// Per pixel: the dense index of its label (u32::MAX = background); the sorted distinct labels;
/// their areas.
fn compact_labels(data: &[u32]) -> (Vec<u32>, Vec<u32>, Vec<u64>) {
    let max = data.iter().copied().max().unwrap_or(0) as usize;
    if max <= data.len().max(1 << 16) {
        let mut area = vec![0u64; max + 1];
        for &l in data {
            area[l as usize] += 1;
        }
        let mut index = vec![u32::MAX; max + 1];
        let mut labels = Vec::new();
        let mut areas = Vec::new();
        for (l, &a) in area.iter().enumerate().skip(1) {
            if a > 0 {
                index[l] = labels.len() as u32;
                labels.push(l as u32);
                areas.push(a);
            }
        }
        let ids = data.iter().map(|&l| index[l as usize]).collect();
        (ids, labels, areas)
    } else {
        // Sparse, very large label values: a hash map instead of a dense table.
        let mut area: HashMap<u32, u64> = HashMap::new();
        for &l in data.iter().filter(|&&l| l != 0) {
            *area.entry(l).or_insert(0) += 1;
        }
        let mut labels: Vec<u32> = area.keys().copied().collect();
        labels.sort_unstable();
        let index: HashMap<u32, u32> = labels
            .iter()
            .enumerate()
            .map(|(i, &l)| (l, i as u32))
            .collect();
        let areas = labels.iter().map(|l| area[l]).collect();
        let ids = data
            .iter()
            .map(|&l| if l == 0 { u32::MAX } else { index[&l] })
            .collect();
        (ids, labels, areas)
    }
}

/// A matched pair.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct InstanceMatch {
    /// Label value in the truth image.
    pub truth_label: u32,
    /// Label value in the predicted image.
    pub pred_label: u32,
    pub iou: f64,
}

/// Optimal one-to-one matching of objects with IoU ≥ `iou_threshold` (see the module docs).
/// Matches are sorted by truth label.
///
/// # Errors
/// [`MetricsError::Invalid`] for a threshold outside (0, 1].
pub fn match_instances(table: &OverlapTable, iou_threshold: f64) -> Result<Vec<InstanceMatch>> {
    if !(iou_threshold > 0.0 && iou_threshold <= 1.0) {
        return Err(MetricsError::Invalid(format!(
            "IoU threshold must be in (0, 1], got {iou_threshold}"
        )));
    }
    let edges: Vec<(u32, u32, f64)> = table
        .overlaps
        .iter()
        .map(|o| (o.truth, o.pred, table.iou(o)))
        .filter(|e| e.2 >= iou_threshold)
        .collect();
    // Connected components of the candidate graph (nodes: truth 0..nt, pred nt..nt+np).
    let nt = table.num_truth();
    let mut parent: Vec<usize> = (0..nt + table.num_pred()).collect();
    fn find(parent: &mut [usize], mut x: usize) -> usize {
        while parent[x] != x {
            parent[x] = parent[parent[x]];
            x = parent[x];
        }
        x
    }
    for &(t, p, _) in &edges {
        let (a, b) = (
            find(&mut parent, t as usize),
            find(&mut parent, nt + p as usize),
        );
        if a != b {
            parent[a.max(b)] = a.min(b);
        }
    }
    let mut components: HashMap<usize, Vec<(u32, u32, f64)>> = HashMap::new();
    for &e in &edges {
        let root = find(&mut parent, e.0 as usize);
        components.entry(root).or_default().push(e);
    }
    let mut matches = Vec::new();
    for comp in components.into_values() {
        if comp.len() == 1 {
            let (t, p, iou) = comp[0];
            matches.push(InstanceMatch {
                truth_label: table.truth_labels[t as usize],
                pred_label: table.pred_labels[p as usize],
                iou,
            });
            continue;
        }
        let mut ts: Vec<u32> = comp.iter().map(|e| e.0).collect();
        let mut ps: Vec<u32> = comp.iter().map(|e| e.1).collect();
        ts.sort_unstable();
        ts.dedup();
        ps.sort_unstable();
        ps.dedup();
        // Rows = the smaller side.
        let transpose = ts.len() > ps.len();
        let (rows, cols) = if transpose {
            (ps.len(), ts.len())
        } else {
            (ts.len(), ps.len())
        };
        // Maximise (#matches + summed IoU / (k + 1)): one more match always outweighs any IoU sum.
        let scale = 1.0 / (rows as f64 + 1.0);
        let mut cost = vec![0.0f64; rows * cols];
        for &(t, p, iou) in &comp {
            let ti = ts.binary_search(&t).unwrap_or(0);
            let pi = ps.binary_search(&p).unwrap_or(0);
            let (r, c) = if transpose { (pi, ti) } else { (ti, pi) };
            cost[r * cols + c] = -(1.0 + iou * scale);
        }
        let Some(assignment) = min_cost_assignment(&cost, rows, cols) else {
            return Err(MetricsError::Invalid(
                "instance matching: assignment failed".into(),
            ));
        };
        for (r, c) in assignment.into_iter().enumerate() {
            if cost[r * cols + c] == 0.0 {
                continue; // Not a candidate pair: the row stays unmatched.
            }
            let (ti, pi) = if transpose { (c, r) } else { (r, c) };
            let (t, p) = (ts[ti], ps[pi]);
            let iou = comp
                .iter()
                .find(|e| e.0 == t && e.1 == p)
                .map_or(0.0, |e| e.2);
            matches.push(InstanceMatch {
                truth_label: table.truth_labels[t as usize],
                pred_label: table.pred_labels[p as usize],
                iou,
            });
        }
    }
    matches.sort_by_key(|m| (m.truth_label, m.pred_label));
    Ok(matches)
}

/// Precision, recall, F1 and TP/(TP+FP+FN) from matching counts; each `None` where its
/// denominator is 0.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectionRates {
    pub precision: Option<f64>,
    pub recall: Option<f64>,
    pub f1: Option<f64>,
    pub tp_over_tp_fp_fn: Option<f64>,
}

impl DetectionRates {
    /// The rates of `tp` matched pairs, `fp` unmatched predictions and `fn_` unmatched truths.
    pub fn from_counts(tp: usize, fp: usize, fn_: usize) -> Self {
        let ratio = |num: usize, den: usize| (den > 0).then(|| num as f64 / den as f64);
        DetectionRates {
            precision: ratio(tp, tp + fp),
            recall: ratio(tp, tp + fn_),
            f1: ratio(2 * tp, 2 * tp + fp + fn_),
            tp_over_tp_fp_fn: ratio(tp, tp + fp + fn_),
        }
    }
}

/// Matching counts and scores at one IoU threshold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstanceScores {
    pub iou_threshold: f64,
    /// Matched pairs.
    pub tp: usize,
    /// Predicted objects without a match.
    pub fp: usize,
    /// True objects without a match.
    #[serde(rename = "fn")]
    pub fn_: usize,
    /// TP / (TP + FP); `None` without predicted objects.
    pub precision: Option<f64>,
    /// TP / (TP + FN); `None` without true objects.
    pub recall: Option<f64>,
    /// 2·TP / (2·TP + FP + FN); `None` without any object.
    pub f1: Option<f64>,
    /// TP / (TP + FP + FN) (cellpose's "average precision"); `None` without any object.
    pub tp_over_tp_fp_fn: Option<f64>,
    /// Mean IoU of the matched pairs; `None` without a match.
    pub mean_matched_iou: Option<f64>,
}

/// Instance scores over several thresholds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstanceReport {
    pub num_truth: usize,
    pub num_pred: usize,
    pub per_threshold: Vec<InstanceScores>,
    /// Mean of [`InstanceScores::tp_over_tp_fp_fn`] over the thresholds (`None` without objects).
    pub mean_tp_over_tp_fp_fn: Option<f64>,
    /// Mean of [`InstanceScores::f1`] over the thresholds (`None` without objects).
    pub mean_f1: Option<f64>,
}

/// Scores at each threshold from one overlap table.
///
/// ```
/// use mica_core::LabelImage;
/// use mica_metrics::instances::{instance_scores, STANDARD_IOU_THRESHOLDS};
/// let t = LabelImage::new(4, 1, vec![1, 1, 0, 2]).unwrap();
/// let p = LabelImage::new(4, 1, vec![5, 5, 0, 0]).unwrap();
/// let r = instance_scores(&t, &p, &STANDARD_IOU_THRESHOLDS).unwrap();
/// let at_05 = &r.per_threshold[0];
/// assert_eq!((at_05.tp, at_05.fp, at_05.fn_), (1, 0, 1));
/// assert_eq!(at_05.tp_over_tp_fp_fn, Some(0.5));
/// ```
///
/// # Errors
/// [`MetricsError::Shape`] for images of different size, [`MetricsError::Invalid`] for a
/// threshold outside (0, 1].
pub fn instance_scores(
    truth: &LabelImage,
    prediction: &LabelImage,
    iou_thresholds: &[f64],
) -> Result<InstanceReport> {
    let table = OverlapTable::new(truth, prediction)?;
    instance_scores_from_table(&table, iou_thresholds)
}

/// [`instance_scores`] from an existing table.
///
/// # Errors
/// [`MetricsError::Invalid`] for a threshold outside (0, 1].
pub fn instance_scores_from_table(
    table: &OverlapTable,
    iou_thresholds: &[f64],
) -> Result<InstanceReport> {
    let (nt, np) = (table.num_truth(), table.num_pred());
    let mut per_threshold = Vec::with_capacity(iou_thresholds.len());
    for &thr in iou_thresholds {
        let m = match_instances(table, thr)?;
        let tp = m.len();
        let (fp, fn_) = (np - tp, nt - tp);
        let r = DetectionRates::from_counts(tp, fp, fn_);
        per_threshold.push(InstanceScores {
            iou_threshold: thr,
            tp,
            fp,
            fn_,
            precision: r.precision,
            recall: r.recall,
            f1: r.f1,
            tp_over_tp_fp_fn: r.tp_over_tp_fp_fn,
            mean_matched_iou: (tp > 0).then(|| m.iter().map(|x| x.iou).sum::<f64>() / tp as f64),
        });
    }
    let mean_of = |f: fn(&InstanceScores) -> Option<f64>| -> Option<f64> {
        let v: Vec<f64> = per_threshold.iter().filter_map(f).collect();
        (!v.is_empty() && v.len() == per_threshold.len())
            .then(|| v.iter().sum::<f64>() / v.len() as f64)
    };
    let mean_tp_over_tp_fp_fn = mean_of(|s| s.tp_over_tp_fp_fn);
    let mean_f1 = mean_of(|s| s.f1);
    Ok(InstanceReport {
        num_truth: nt,
        num_pred: np,
        per_threshold,
        mean_tp_over_tp_fp_fn,
        mean_f1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(w: u32, rows: &[&[u32]]) -> LabelImage {
        LabelImage::new(w, rows.len() as u32, rows.concat()).unwrap()
    }

    #[test]
    fn overlap_table_counts_pairs() {
        let t = labels(4, &[&[1, 1, 2, 2], &[1, 1, 2, 0]]);
        let p = labels(4, &[&[7, 7, 7, 0], &[0, 7, 9, 9]]);
        let tab = OverlapTable::new(&t, &p).unwrap();
        assert_eq!(tab.truth_labels, vec![1, 2]);
        assert_eq!(tab.pred_labels, vec![7, 9]);
        assert_eq!(tab.truth_areas_px, vec![4, 3]);
        assert_eq!(tab.pred_areas_px, vec![4, 2]);
        let pairs: Vec<(u32, u32, u64)> = tab
            .overlaps
            .iter()
            .map(|o| (o.truth, o.pred, o.intersection_px))
            .collect();
        assert_eq!(pairs, vec![(0, 0, 3), (1, 0, 1), (1, 1, 1)]);
        // IoU(1,7) = 3 / (4 + 4 - 3)
        assert!((tab.iou(&tab.overlaps[0]) - 0.6).abs() < 1e-12);
    }

    #[test]
    fn low_threshold_needs_optimal_not_greedy_matching() {
        // Truth A (4 px) and B (2 px); prediction X covers A's 2 px + B's 1 px... built so that the
        // greedy highest-IoU-first choice matches one pair where two matches are possible.
        // t: A A A A B B
        // p: X X Y Y Y X?  -> use explicit table instead.
        let t = labels(6, &[&[1, 1, 1, 2, 2, 2]]);
        let p = labels(6, &[&[5, 5, 5, 5, 6, 6]]);
        // IoU(1,5) = 3/4, IoU(2,5) = 1/6, IoU(2,6) = 2/3. At 0.1: greedy takes (1,5) then (2,6): 2.
        let r = instance_scores(&t, &p, &[0.1]).unwrap();
        assert_eq!(r.per_threshold[0].tp, 2);
        // A case where greedy fails: t = [1 1 2], p = [5 6 6]; IoU(1,5)=1/2, IoU(1,6)=1/4,
        // IoU(2,6)=1/2. Max-IoU greedy could pick (1,6)? No: show count maximisation instead.
        let t = labels(4, &[&[1, 1, 1, 2]]);
        let p = labels(4, &[&[5, 6, 6, 6]]);
        // IoU(1,6)=2/4=0.5 (highest), IoU(1,5)=1/3, IoU(2,6)=1/3. Greedy by IoU at 0.3 matches
        // (1,6) only; the optimum matches (1,5) and (2,6).
        let r = instance_scores(&t, &p, &[0.3]).unwrap();
        assert_eq!(r.per_threshold[0].tp, 2);
        let m = match_instances(&OverlapTable::new(&t, &p).unwrap(), 0.3).unwrap();
        assert_eq!(
            m.iter()
                .map(|x| (x.truth_label, x.pred_label))
                .collect::<Vec<_>>(),
            vec![(1, 5), (2, 6)]
        );
    }

    #[test]
    fn thresholds_and_means() {
        let t = labels(4, &[&[1, 1, 1, 1]]);
        let p = labels(4, &[&[3, 3, 3, 0]]); // IoU 0.75
        let r = instance_scores(&t, &p, &STANDARD_IOU_THRESHOLDS).unwrap();
        let tps: Vec<usize> = r.per_threshold.iter().map(|s| s.tp).collect();
        assert_eq!(tps, vec![1, 1, 1, 1, 1, 1, 0, 0, 0, 0]);
        assert!((r.mean_tp_over_tp_fp_fn.unwrap() - 0.6).abs() < 1e-12);
        assert!(instance_scores(&t, &p, &[0.0]).is_err());
        assert!(instance_scores(&t, &labels(2, &[&[1, 1]]), &[0.5]).is_err());
    }

    #[test]
    fn huge_label_values_use_the_sparse_path() {
        let t = LabelImage::new(3, 1, vec![4_000_000_000, 0, 7]).unwrap();
        let p = LabelImage::new(3, 1, vec![1, 0, 3_000_000_000]).unwrap();
        let r = instance_scores(&t, &p, &[0.5]).unwrap();
        assert_eq!(r.per_threshold[0].tp, 2);
    }
}
