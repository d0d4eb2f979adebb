//! Agreement of an automatic score with an expert's grades: Spearman's ρ and Kendall's τ-b, with
//! seeded bootstrap intervals over the graded items.
//!
//! Both are computed as SciPy does (`scipy.stats.spearmanr`: Pearson's r of average ranks;
//! `scipy.stats.kendalltau`, default variant `b`: ties in either variable corrected), so a value
//! here equals SciPy's on the same pairs. Either is undefined (`None`) when fewer than two pairs
//! are given or one variable is constant — an automatic scorer that gives every answer the same
//! score has no agreement to measure.

use crate::bootstrap::{bootstrap_intervals, BootstrapConfig, Interval};
use crate::error::{check_len, Result};
use serde::Serialize;

/// Average ranks (1-based; ties get the mean of their positions), as `scipy.stats.rankdata`.
pub fn average_ranks(x: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..x.len()).collect();
    order.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut ranks = vec![0.0; x.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && x[order[j + 1]] == x[order[i]] {
            j += 1;
        }
        let r = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            ranks[k] = r;
        }
        i = j + 1;
    }
    ranks
}

fn pearson(x: &[f64], y: &[f64]) -> Option<f64> {
    let n = x.len() as f64;
    if x.len() < 2 {
        return None;
    }
    let mx = x.iter().sum::<f64>() / n;
    let my = y.iter().sum::<f64>() / n;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    (sxx > 0.0 && syy > 0.0).then(|| (sxy / (sxx * syy).sqrt()).clamp(-1.0, 1.0))
}

/// Spearman's rank correlation (ties by average ranks).
pub fn spearman(x: &[f64], y: &[f64]) -> Option<f64> {
    if x.len() != y.len() {
        return None;
    }
    pearson(&average_ranks(x), &average_ranks(y))
}

/// Kendall's τ-b: (concordant − discordant) / √((n0 − n1)(n0 − n2)), n1 and n2 the pairs tied
/// in x and in y. O(n log n) (Knight's algorithm, as SciPy): sort by (x, y), count the swaps of
/// a merge sort of y.
pub fn kendall_tau_b(x: &[f64], y: &[f64]) -> Option<f64> {
    if x.len() != y.len() || x.len() < 2 {
        return None;
    }
    let n = x.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| x[a].total_cmp(&x[b]).then(y[a].total_cmp(&y[b])));
    let pairs = |t: u64| t * t.saturating_sub(1) / 2;
    // Ties in x, and joint ties in (x, y), over the sorted order.
    let (mut tie_x, mut tie_xy) = (0u64, 0u64);
    let (mut run_x, mut run_xy) = (1u64, 1u64);
    for w in order.windows(2) {
        let (a, b) = (w[0], w[1]);
        if x[a] == x[b] {
            run_x += 1;
            if y[a] == y[b] {
                run_xy += 1;
            } else {
                tie_xy += pairs(run_xy);
                run_xy = 1;
            }
        } else {
            tie_x += pairs(run_x);
            tie_xy += pairs(run_xy);
            run_x = 1;
            run_xy = 1;
        }
    }
    tie_x += pairs(run_x);
    tie_xy += pairs(run_xy);
    // Discordant pairs = swaps of a stable merge sort of y in this order.
    let mut ys: Vec<f64> = order.iter().map(|&i| y[i]).collect();
    let mut buf = ys.clone();
    let swaps = merge_count(&mut ys, &mut buf);
    // Ties in y (ys is now sorted).
    let mut tie_y = 0u64;
    let mut run = 1u64;
    for w in ys.windows(2) {
        if w[0] == w[1] {
            run += 1;
        } else {
            tie_y += pairs(run);
            run = 1;
        }
    }
    tie_y += pairs(run);
    let n0 = pairs(n as u64);
    let num = n0 as f64 - tie_x as f64 - tie_y as f64 + tie_xy as f64 - 2.0 * swaps as f64;
    let d = (n0 - tie_x) as f64 * (n0 - tie_y) as f64;
    (d > 0.0).then(|| (num / d.sqrt()).clamp(-1.0, 1.0))
}

/// Sorts `v` (stable merge sort) and returns the number of inversions (pairs out of order,
/// ties not counted).
fn merge_count(v: &mut [f64], buf: &mut [f64]) -> u64 {
    let n = v.len();
    if n < 2 {
        return 0;
    }
    let mid = n / 2;
    let mut swaps = {
        let (l, r) = v.split_at_mut(mid);
        let (bl, br) = buf.split_at_mut(mid);
        merge_count(l, bl) + merge_count(r, br)
    };
    let (mut i, mut j, mut k) = (0, mid, 0);
    while i < mid && j < n {
        if v[j] < v[i] {
            buf[k] = v[j];
            swaps += (mid - i) as u64;
            j += 1;
        } else {
            buf[k] = v[i];
            i += 1;
        }
        k += 1;
    }
    buf[k..k + mid - i].copy_from_slice(&v[i..mid]);
    let k2 = k + mid - i;
    buf[k2..n].copy_from_slice(&v[j..n]);
    v.copy_from_slice(&buf[..n]);
    swaps
}

/// The O(n²) definition, for tests of [`kendall_tau_b`].
#[cfg(test)]
fn kendall_tau_b_pairs(x: &[f64], y: &[f64]) -> Option<f64> {
    let n = x.len();
    let (mut s, mut tx, mut ty, mut total) = (0i64, 0i64, 0i64, 0i64);
    for i in 0..n {
        for j in i + 1..n {
            total += 1;
            let dx = x[i].total_cmp(&x[j]) as i64;
            let dy = y[i].total_cmp(&y[j]) as i64;
            tx += (dx == 0) as i64;
            ty += (dy == 0) as i64;
            s += dx * dy;
        }
    }
    let d = ((total - tx) as f64) * ((total - ty) as f64);
    (d > 0.0).then(|| (s as f64 / d.sqrt()).clamp(-1.0, 1.0))
}

/// A correlation with its interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Correlation {
    pub value: Option<f64>,
    pub ci: Option<Interval>,
}

/// Agreement of a scorer with the expert over `n` graded items.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Agreement {
    pub n: usize,
    pub spearman: Correlation,
    pub kendall: Correlation,
}

/// Spearman's ρ and Kendall's τ-b of `(expert, score)` pairs with bootstrap intervals (items
/// resampled with replacement; resamples where a variable is constant are left out).
///
/// ```
/// use mica_metrics::agreement::agreement;
/// use mica_metrics::bootstrap::BootstrapConfig;
/// let a = agreement(&[5.0, 1.0, 2.0, 4.0, 3.0], &[0.9, 0.1, 0.5, 0.4, 0.6], &BootstrapConfig::default()).unwrap();
/// assert!((a.spearman.value.unwrap() - 0.7).abs() < 1e-12);
/// assert!((a.kendall.value.unwrap() - 0.6).abs() < 1e-12);
/// ```
///
/// # Errors
/// Different lengths, or a bad bootstrap config.
pub fn agreement(expert: &[f64], score: &[f64], config: &BootstrapConfig) -> Result<Agreement> {
    check_len("expert grades and scores", expert.len(), score.len())?;
    let cis = bootstrap_intervals(expert.len(), 2, config, |idx| {
        let x: Vec<f64> = idx.iter().map(|&i| expert[i]).collect();
        let y: Vec<f64> = idx.iter().map(|&i| score[i]).collect();
        vec![spearman(&x, &y), kendall_tau_b(&x, &y)]
    })?;
    Ok(Agreement {
        n: expert.len(),
        spearman: Correlation {
            value: spearman(expert, score),
            ci: cis[0],
        },
        kendall: Correlation {
            value: kendall_tau_b(expert, score),
            ci: cis[1],
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected values from SciPy 1.17.1 (`scipy.stats.spearmanr(x, y).statistic`,
    // `scipy.stats.kendalltau(x, y).statistic`) on the same data.
    #[test]
    fn matches_scipy_with_ties() {
        let x = [5.0, 1.0, 2.0, 5.0, 2.0, 0.0, 4.0, 4.0, 3.0, 5.0];
        let y = [0.8, 0.2, 0.2, 0.6, 0.4, 0.0, 0.6, 0.8, 0.2, 1.0];
        assert!((spearman(&x, &y).unwrap() - SCIPY_SPEARMAN).abs() < 1e-12);
        assert!((kendall_tau_b(&x, &y).unwrap() - SCIPY_KENDALL).abs() < 1e-12);
    }
    const SCIPY_SPEARMAN: f64 = 0.8805031446540882;
    const SCIPY_KENDALL: f64 = 0.7749999999999999;

    #[test]
    fn fast_kendall_equals_the_pairwise_definition() {
        let mut rng = mica_core::rng::SplitMix64::new(7);
        for n in [2usize, 3, 5, 17, 64, 200] {
            for _ in 0..20 {
                // Few distinct values, so ties in x, in y and in both are common.
                let x: Vec<f64> = (0..n).map(|_| rng.below(6) as f64).collect();
                let y: Vec<f64> = (0..n).map(|_| rng.below(4) as f64 * 0.5).collect();
                match (kendall_tau_b(&x, &y), kendall_tau_b_pairs(&x, &y)) {
                    (Some(a), Some(b)) => assert!((a - b).abs() < 1e-12, "{a} vs {b}"),
                    (a, b) => assert_eq!(a, b),
                }
            }
        }
    }

    #[test]
    fn constant_scores_have_no_correlation() {
        assert_eq!(spearman(&[1.0, 2.0, 3.0], &[0.5, 0.5, 0.5]), None);
        assert_eq!(kendall_tau_b(&[1.0, 2.0, 3.0], &[0.5, 0.5, 0.5]), None);
        assert_eq!(spearman(&[1.0], &[1.0]), None);
    }

    #[test]
    fn perfect_and_reversed_orders() {
        let x = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(spearman(&x, &[10.0, 20.0, 30.0, 40.0]), Some(1.0));
        assert_eq!(kendall_tau_b(&x, &[4.0, 3.0, 2.0, 1.0]), Some(-1.0));
    }

    #[test]
    fn interval_covers_value_and_is_reproducible() {
        let x = [5.0, 1.0, 2.0, 5.0, 2.0, 1.0, 4.0, 3.0, 0.0, 4.0, 5.0, 3.0];
        let y = [0.9, 0.3, 0.2, 0.7, 0.5, 0.1, 0.6, 0.6, 0.0, 0.8, 0.7, 0.2];
        let c = BootstrapConfig::default();
        let a = agreement(&x, &y, &c).unwrap();
        let ci = a.spearman.ci.unwrap();
        assert!(ci.low <= a.spearman.value.unwrap() && a.spearman.value.unwrap() <= ci.high);
        assert_eq!(a, agreement(&x, &y, &c).unwrap());
        assert!(agreement(&x, &y[..3], &c).is_err());
    }
}
