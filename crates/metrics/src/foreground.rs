//! Foreground (semantic) segmentation metrics between two [`BinaryMask`]s: Dice, Jaccard,
//! precision, recall, the Hausdorff distance between the two pixel sets and its 95th-percentile
//! variant, and the study's own "Hausdorff" over image rows.
//!
//! # Two different "Hausdorff" numbers
//! - [`hausdorff_px`] is the Hausdorff distance between the *sets of foreground pixels*, in pixels:
//!   the largest distance from a pixel of one set to the nearest pixel of the other, both ways. It
//!   is computed exactly from Euclidean distance transforms (Felzenszwalb & Huttenlocher), in time
//!   linear in the number of pixels. The 95th-percentile variant is the larger of the two directed
//!   95th percentiles (MONAI's convention) over all foreground pixels of each set.
//! - [`row_vector_directed_hausdorff`] reproduces what the study computed: scipy's
//!   `directed_hausdorff(u, v)` called on the two mask *arrays*, which treats each image **row** as
//!   one point in a W-dimensional space. The result is the largest, over rows of `u`, of the
//!   Euclidean distance to the nearest row of `v` (any row, not the same row). It is not a
//!   spatial distance in pixels: with 0/1 values it is √(number of differing pixels between two
//!   rows); it is 0 whenever every row pattern of `u` occurs somewhere in `v`; and it scales with
//!   the mask values (0/255 masks give 255× the 0/1 value). mica computes it on 0/1 values; multiply
//!   by 255 to compare with values computed on 0/255 arrays.

use crate::error::{check_shape, Result};
use mica_core::BinaryMask;
use serde::Serialize;

/// Pixel counts and overlap scores of a predicted foreground against the true one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ForegroundScores {
    /// Pixels foreground in both.
    pub tp_px: u64,
    /// Pixels predicted foreground but background in the truth.
    pub fp_px: u64,
    /// Pixels foreground in the truth but predicted background.
    pub fn_px: u64,
    /// 2·TP / (2·TP + FP + FN) (= pixel F1); 1 when both masks are empty.
    pub dice: f64,
    /// TP / (TP + FP + FN) (= IoU); 1 when both masks are empty.
    pub jaccard: f64,
    /// TP / (TP + FP); `None` when the prediction is empty.
    pub precision: Option<f64>,
    /// TP / (TP + FN); `None` when the truth is empty.
    pub recall: Option<f64>,
    /// Hausdorff distance between the pixel sets, in pixels (`None` if exactly one set is empty).
    pub hausdorff_px: Option<f64>,
    /// 95th-percentile Hausdorff distance, in pixels (`None` if exactly one set is empty).
    pub hausdorff95_px: Option<f64>,
}

/// All foreground scores of `prediction` against `truth`.
///
/// ```
/// use mica_core::BinaryMask;
/// use mica_metrics::foreground::foreground_scores;
/// let t = BinaryMask::new(4, 1, vec![true, true, false, false]).unwrap();
/// let p = BinaryMask::new(4, 1, vec![false, true, true, false]).unwrap();
/// let s = foreground_scores(&t, &p).unwrap();
/// assert_eq!(s.dice, 0.5);
/// assert_eq!(s.hausdorff_px, Some(1.0));
/// ```
///
/// # Errors
/// [`crate::MetricsError::Shape`] when the masks differ in size.
pub fn foreground_scores(truth: &BinaryMask, prediction: &BinaryMask) -> Result<ForegroundScores> {
    let (tp, fp, fn_) = confusion_px(truth, prediction)?;
    let (dice, jaccard) = overlap_from_counts(tp, fp, fn_);
    let h = hausdorff_distances(truth, prediction)?;
    Ok(ForegroundScores {
        tp_px: tp,
        fp_px: fp,
        fn_px: fn_,
        dice,
        jaccard,
        precision: (tp + fp > 0).then(|| tp as f64 / (tp + fp) as f64),
        recall: (tp + fn_ > 0).then(|| tp as f64 / (tp + fn_) as f64),
        hausdorff_px: h.map(|h| h.max_px),
        hausdorff95_px: h.map(|h| h.p95_px),
    })
}

/// Dice coefficient 2·|T∩P| / (|T| + |P|); 1 when both are empty.
///
/// # Errors
/// [`crate::MetricsError::Shape`] when the masks differ in size.
pub fn dice(truth: &BinaryMask, prediction: &BinaryMask) -> Result<f64> {
    let (tp, fp, fn_) = confusion_px(truth, prediction)?;
    Ok(overlap_from_counts(tp, fp, fn_).0)
}

/// Jaccard index |T∩P| / |T∪P|; 1 when both are empty.
///
/// # Errors
/// [`crate::MetricsError::Shape`] when the masks differ in size.
pub fn jaccard(truth: &BinaryMask, prediction: &BinaryMask) -> Result<f64> {
    let (tp, fp, fn_) = confusion_px(truth, prediction)?;
    Ok(overlap_from_counts(tp, fp, fn_).1)
}

fn overlap_from_counts(tp: u64, fp: u64, fn_: u64) -> (f64, f64) {
    if tp + fp + fn_ == 0 {
        return (1.0, 1.0);
    }
    let dice = 2.0 * tp as f64 / (2 * tp + fp + fn_) as f64;
    let jaccard = tp as f64 / (tp + fp + fn_) as f64;
    (dice, jaccard)
}

/// (TP, FP, FN) pixel counts.
fn confusion_px(truth: &BinaryMask, prediction: &BinaryMask) -> Result<(u64, u64, u64)> {
    check_shape(
        "foreground masks",
        (truth.width(), truth.height()),
        (prediction.width(), prediction.height()),
    )?;
    let (mut tp, mut fp, mut fn_) = (0u64, 0u64, 0u64);
    for (&t, &p) in truth.as_slice().iter().zip(prediction.as_slice()) {
        match (t, p) {
            (true, true) => tp += 1,
            (false, true) => fp += 1,
            (true, false) => fn_ += 1,
            (false, false) => {}
        }
    }
    Ok((tp, fp, fn_))
}

/// The Hausdorff distance and its 95th-percentile variant, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct HausdorffDistances {
    pub max_px: f64,
    pub p95_px: f64,
}

/// Hausdorff distance between the foreground pixel sets; see the module docs.
/// `None` when exactly one mask is empty (infinite distance); both empty gives 0.
///
/// # Errors
/// [`crate::MetricsError::Shape`] when the masks differ in size.
pub fn hausdorff_px(truth: &BinaryMask, prediction: &BinaryMask) -> Result<Option<f64>> {
    Ok(hausdorff_distances(truth, prediction)?.map(|h| h.max_px))
}

/// Both Hausdorff numbers at once (one pair of distance transforms).
///
/// # Errors
/// [`crate::MetricsError::Shape`] when the masks differ in size.
pub fn hausdorff_distances(
    truth: &BinaryMask,
    prediction: &BinaryMask,
) -> Result<Option<HausdorffDistances>> {
    check_shape(
        "foreground masks",
        (truth.width(), truth.height()),
        (prediction.width(), prediction.height()),
    )?;
    let t_any = truth.as_slice().iter().any(|&b| b);
    let p_any = prediction.as_slice().iter().any(|&b| b);
    match (t_any, p_any) {
        (false, false) => {
            return Ok(Some(HausdorffDistances {
                max_px: 0.0,
                p95_px: 0.0,
            }))
        }
        (true, false) | (false, true) => return Ok(None),
        _ => {}
    }
    let to_pred = squared_distance_to_foreground(prediction);
    let to_truth = squared_distance_to_foreground(truth);
    let directed = |from: &BinaryMask, dist2: &[f64]| -> (f64, f64) {
        let mut d: Vec<f64> = from
            .as_slice()
            .iter()
            .zip(dist2)
            .filter(|(&b, _)| b)
            .map(|(_, &d2)| d2.sqrt())
            .collect();
        d.sort_by(f64::total_cmp);
        let max = d.last().copied().unwrap_or(0.0);
        (max, crate::bootstrap::quantile_sorted(&d, 0.95))
    };
    let (a_max, a_95) = directed(truth, &to_pred);
    let (b_max, b_95) = directed(prediction, &to_truth);
    Ok(Some(HausdorffDistances {
        max_px: a_max.max(b_max),
        p95_px: a_95.max(b_95),
    }))
}

/// A large finite stand-in for "infinitely far" in the distance transform.
const FAR: f64 = 1e20;

/// Exact squared Euclidean distance from every pixel to the nearest foreground pixel of `mask`
/// (0 on the foreground), row-major. Felzenszwalb & Huttenlocher's two-pass lower-envelope
/// algorithm, O(width·height). Without any foreground every value is a huge number (≥ 1e20).
pub fn squared_distance_to_foreground(mask: &BinaryMask) -> Vec<f64> {
    let (w, h) = (mask.width() as usize, mask.height() as usize);
    let data = mask.as_slice();
    let mut out = vec![0.0f64; w * h];
    let n = w.max(h);
    let mut f = vec![0.0f64; n];
    let mut d = vec![0.0f64; n];
    let mut v = vec![0usize; n];
    let mut z = vec![0.0f64; n + 1];
    // Columns.
    for x in 0..w {
        for y in 0..h {
            f[y] = if data[y * w + x] { 0.0 } else { FAR };
        }
        dt_1d(&f[..h], &mut d[..h], &mut v, &mut z);
        for y in 0..h {
            out[y * w + x] = d[y];
        }
    }
    // Rows.
    for y in 0..h {
        f[..w].copy_from_slice(&out[y * w..(y + 1) * w]);
        dt_1d(&f[..w], &mut d[..w], &mut v, &mut z);
        out[y * w..(y + 1) * w].copy_from_slice(&d[..w]);
    }
    out
}

/// 1-D squared distance transform of sampled function `f` (lower envelope of parabolas).
fn dt_1d(f: &[f64], d: &mut [f64], v: &mut [usize], z: &mut [f64]) {
    let n = f.len();
    if n == 0 {
        return;
    }
    let mut k = 0usize;
    v[0] = 0;
    z[0] = f64::NEG_INFINITY;
    z[1] = f64::INFINITY;
    for q in 1..n {
        let qf = q as f64;
        let mut s;
        loop {
            let vk = v[k] as f64;
            s = ((f[q] + qf * qf) - (f[v[k]] + vk * vk)) / (2.0 * qf - 2.0 * vk);
            // z[0] is -inf, so this never steps below k = 0.
            if k > 0 && s <= z[k] {
                k -= 1;
            } else {
                break;
            }
        }
        k += 1;
        v[k] = q;
        z[k] = s;
        z[k + 1] = f64::INFINITY;
    }
    k = 0;
    for (q, dq) in d.iter_mut().enumerate().take(n) {
        let qf = q as f64;
        while z[k + 1] < qf {
            k += 1;
        }
        let diff = qf - v[k] as f64;
        *dq = diff * diff + f[v[k]];
    }
}

/// The study's "Hausdorff": scipy's `directed_hausdorff(from, to)` on the mask arrays, i.e. each
/// image row is a point in W dimensions with 0/1 coordinates; the result is
/// max over rows r of `from` of min over rows s of `to` of ‖r − s‖₂. Not symmetric and not in
/// pixels; see the module docs for how it differs from [`hausdorff_px`].
///
/// Rows are bit-packed, so the cost is O(H_from · H_to · W / 64).
///
/// # Errors
/// [`crate::MetricsError::Shape`] when the masks differ in width (heights may differ).
pub fn row_vector_directed_hausdorff(from: &BinaryMask, to: &BinaryMask) -> Result<f64> {
    if from.width() != to.width() {
        return check_shape(
            "row-vector Hausdorff (masks must have the same width)",
            (from.width(), from.height()),
            (to.width(), to.height()),
        )
        .map(|_| 0.0);
    }
    let a = pack_rows(from);
    let b = pack_rows(to);
    if a.is_empty() || b.is_empty() {
        return Ok(0.0);
    }
    let mut worst = 0u32;
    for ra in &a {
        let mut best = u32::MAX;
        for rb in &b {
            let d: u32 = ra.iter().zip(rb).map(|(x, y)| (x ^ y).count_ones()).sum();
            if d < best {
                best = d;
                if best <= worst {
                    // Cannot raise the maximum any more (scipy's early break).
                    break;
                }
            }
        }
        worst = worst.max(best);
    }
    Ok((worst as f64).sqrt())
}

fn pack_rows(m: &BinaryMask) -> Vec<Vec<u64>> {
    let w = m.width() as usize;
    let words = w.div_ceil(64);
    m.as_slice()
        .chunks(w.max(1))
        .take(m.height() as usize)
        .map(|row| {
            let mut packed = vec![0u64; words];
            for (i, &b) in row.iter().enumerate() {
                if b {
                    packed[i / 64] |= 1 << (i % 64);
                }
            }
            packed
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(rows: &[&str]) -> BinaryMask {
        BinaryMask::from_rows(rows).unwrap()
    }

    /// O(n²) reference: exact squared distance to the nearest foreground pixel.
    fn brute_dist2(m: &BinaryMask) -> Vec<f64> {
        let w = m.width() as i64;
        let pts: Vec<(i64, i64)> = m
            .as_slice()
            .iter()
            .enumerate()
            .filter(|(_, &b)| b)
            .map(|(i, _)| (i as i64 % w, i as i64 / w))
            .collect();
        (0..m.as_slice().len() as i64)
            .map(|i| {
                let (x, y) = (i % w, i / w);
                pts.iter()
                    .map(|(px, py)| ((px - x).pow(2) + (py - y).pow(2)) as f64)
                    .fold(f64::INFINITY, f64::min)
            })
            .collect()
    }

    #[test]
    fn distance_transform_matches_brute_force() {
        let mut rng = mica_core::rng::SplitMix64::new(3);
        for _ in 0..30 {
            let (w, h) = (1 + rng.below(17) as u32, 1 + rng.below(13) as u32);
            let data: Vec<bool> = (0..w * h).map(|_| rng.below(9) == 0).collect();
            let m = BinaryMask::new(w, h, data).unwrap();
            if m.area() == 0 {
                continue;
            }
            assert_eq!(squared_distance_to_foreground(&m), brute_dist2(&m));
        }
    }

    #[test]
    fn hausdorff_of_shifted_squares() {
        let t = mask(&["##....", "##....", "......"]);
        let p = mask(&["......", "......", "...###"]);
        // Farthest: pred (5,2) to nearest truth (1,1): sqrt(16+1).
        let h = hausdorff_distances(&t, &p).unwrap().unwrap();
        assert!((h.max_px - 17f64.sqrt()).abs() < 1e-12);
        assert_eq!(hausdorff_px(&t, &t).unwrap(), Some(0.0));
        assert_eq!(hausdorff_px(&t, &BinaryMask::empty(6, 3)).unwrap(), None);
        let e = BinaryMask::empty(6, 3);
        assert_eq!(hausdorff_px(&e, &e).unwrap(), Some(0.0));
    }

    #[test]
    fn overlap_counts() {
        let t = mask(&["###.", "...."]);
        let p = mask(&[".###", "...#"]);
        let s = foreground_scores(&t, &p).unwrap();
        assert_eq!((s.tp_px, s.fp_px, s.fn_px), (2, 2, 1));
        assert!((s.dice - 4.0 / 7.0).abs() < 1e-12);
        assert!((s.jaccard - 2.0 / 5.0).abs() < 1e-12);
        assert_eq!(s.precision, Some(0.5));
        assert_eq!(s.recall, Some(2.0 / 3.0));
        assert!(foreground_scores(&t, &BinaryMask::empty(3, 2)).is_err());
    }

    #[test]
    fn row_vector_hausdorff_is_not_spatial() {
        // Same rows in a different order: the study's metric says 0, the pixel Hausdorff does not.
        let a = mask(&["#...", "....", "...."]);
        let b = mask(&["....", "....", "#..."]);
        assert_eq!(row_vector_directed_hausdorff(&a, &b).unwrap(), 0.0);
        assert_eq!(hausdorff_px(&a, &b).unwrap(), Some(2.0));
        // Row "##.." vs nearest row of c ("#..." or "...."): one pixel differs -> 1.
        let a = mask(&["##..", "...."]);
        let c = mask(&["#...", "...."]);
        assert_eq!(row_vector_directed_hausdorff(&a, &c).unwrap(), 1.0);
        // Directed: every row of c is in a? "#..." is not, nearest "##.." or "...." -> 1.
        assert_eq!(row_vector_directed_hausdorff(&c, &a).unwrap(), 1.0);
        let wide = mask(&["####", "####"]);
        let e = mask(&["....", "...."]);
        assert_eq!(row_vector_directed_hausdorff(&wide, &e).unwrap(), 2.0);
    }

    #[test]
    fn row_vector_hausdorff_packs_wide_rows() {
        // 130 columns span three u64 words.
        let w = 130u32;
        let mut a = BinaryMask::empty(w, 2);
        a.set(129, 0, true);
        a.set(64, 0, true);
        let b = BinaryMask::empty(w, 3);
        assert_eq!(row_vector_directed_hausdorff(&a, &b).unwrap(), 2f64.sqrt());
        assert!(row_vector_directed_hausdorff(&a, &BinaryMask::empty(5, 2)).is_err());
    }
}
