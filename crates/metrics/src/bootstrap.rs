//! Seeded, reproducible bootstrap confidence intervals, paired comparisons of two methods, and
//! stratification helpers.
//!
//! Resampling draws image indices with replacement using [`mica_core::rng::SplitMix64`], so the
//! same seed gives the same interval on every machine and across dependency upgrades. Intervals are
//! percentile intervals (quantiles of the resampled statistic, linear interpolation as numpy's
//! default).

use crate::error::{check_len, MetricsError, Result};
use mica_core::rng::SplitMix64;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How to bootstrap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BootstrapConfig {
    /// Number of resamples.
    pub resamples: usize,
    /// Seed of the resampling generator.
    pub seed: u64,
    /// Coverage of the interval (0.95 = 95 %).
    pub level: f64,
}

impl Default for BootstrapConfig {
    fn default() -> Self {
        BootstrapConfig {
            resamples: 2000,
            seed: 0,
            level: 0.95,
        }
    }
}

impl BootstrapConfig {
    /// # Errors
    /// [`MetricsError::Invalid`] for zero resamples or a level outside (0, 1).
    pub fn validate(&self) -> Result<()> {
        if self.resamples == 0 {
            return Err(MetricsError::Invalid(
                "bootstrap: resamples must be > 0".into(),
            ));
        }
        if !(self.level > 0.0 && self.level < 1.0) {
            return Err(MetricsError::Invalid(format!(
                "bootstrap: level must be in (0, 1), got {}",
                self.level
            )));
        }
        Ok(())
    }
}

/// A confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Interval {
    pub low: f64,
    pub high: f64,
}

/// The fewest items a bootstrap interval is computed over. Resampling one or two images gives
/// intervals like [2.00, 2.00] that look precise and mean nothing; below this an interval is
/// `None` and tables say "too few images".
pub const MIN_ITEMS_FOR_INTERVAL: usize = 5;

/// Bootstraps several statistics over the same resamples of `n` items.
///
/// `statistic` gets the resampled indices and returns one value per statistic (`None` when a
/// statistic is undefined on that resample; such resamples are left out for that statistic).
/// An interval is `None` when `n` is below [`MIN_ITEMS_FOR_INTERVAL`] or when more than half of
/// the resamples were undefined.
///
/// # Errors
/// [`MetricsError::Invalid`] for a bad config.
pub fn bootstrap_intervals<F>(
    n: usize,
    num_statistics: usize,
    config: &BootstrapConfig,
    mut statistic: F,
) -> Result<Vec<Option<Interval>>>
where
    F: FnMut(&[usize]) -> Vec<Option<f64>>,
{
    config.validate()?;
    if n < MIN_ITEMS_FOR_INTERVAL {
        return Ok(vec![None; num_statistics]);
    }
    let mut rng = SplitMix64::new(config.seed);
    let mut samples: Vec<Vec<f64>> = vec![Vec::with_capacity(config.resamples); num_statistics];
    let mut idx = vec![0usize; n];
    for _ in 0..config.resamples {
        for i in idx.iter_mut() {
            *i = rng.below(n as u64) as usize;
        }
        let values = statistic(&idx);
        for (s, v) in samples.iter_mut().zip(values) {
            if let Some(v) = v.filter(|v| v.is_finite()) {
                s.push(v);
            }
        }
    }
    let alpha = (1.0 - config.level) / 2.0;
    Ok(samples
        .into_iter()
        .map(|mut s| {
            if s.len() * 2 < config.resamples {
                return None;
            }
            s.sort_by(f64::total_cmp);
            Some(Interval {
                low: quantile_sorted(&s, alpha),
                high: quantile_sorted(&s, 1.0 - alpha),
            })
        })
        .collect())
}

/// One statistic's bootstrap interval; see [`bootstrap_intervals`].
///
/// # Errors
/// [`MetricsError::Invalid`] for a bad config.
pub fn bootstrap_interval<F>(
    n: usize,
    config: &BootstrapConfig,
    mut statistic: F,
) -> Result<Option<Interval>>
where
    F: FnMut(&[usize]) -> Option<f64>,
{
    Ok(
        bootstrap_intervals(n, 1, config, |idx| vec![statistic(idx)])?
            .pop()
            .flatten(),
    )
}

/// The `q` quantile (0..=1) of sorted values, linear interpolation between order statistics.
/// `NaN` for an empty slice.
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let frac = pos - lo as f64;
    sorted[lo] + (sorted[hi] - sorted[lo]) * frac
}

/// Two methods compared on the same images.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PairedDifference {
    /// Images where both methods have a value (the ones compared).
    pub n: usize,
    /// Images left out because one or both values were missing.
    pub missing: usize,
    /// Mean per-image value of method A on the compared images.
    pub mean_a: f64,
    /// Mean per-image value of method B on the compared images.
    pub mean_b: f64,
    /// mean_a − mean_b.
    pub difference: f64,
    /// Bootstrap interval of the difference (images resampled as pairs).
    pub ci: Option<Interval>,
}

/// Compares two methods by a per-image value (e.g. absolute error for the difference of MAE, 0/1
/// correctness for the difference of accuracy), resampling images as pairs.
///
/// ```
/// use mica_metrics::bootstrap::{paired_difference, BootstrapConfig};
/// let a = [Some(1.0), Some(2.0), Some(3.0), Some(4.0), Some(5.0), None];
/// let b = [Some(0.0), Some(1.0), Some(2.0), Some(3.0), Some(4.0), Some(9.0)];
/// let d = paired_difference(&a, &b, &BootstrapConfig::default()).unwrap();
/// assert_eq!((d.n, d.missing, d.difference), (5, 1, 1.0));
/// assert_eq!(d.ci.unwrap().low, 1.0);
/// // Fewer than MIN_ITEMS_FOR_INTERVAL pairs: no interval.
/// let d = paired_difference(&a[..3], &b[..3], &BootstrapConfig::default()).unwrap();
/// assert!(d.ci.is_none());
/// ```
///
/// # Errors
/// [`MetricsError::Length`] for slices of different length; [`MetricsError::Invalid`] when no
/// image has both values or the config is bad.
pub fn paired_difference(
    a: &[Option<f64>],
    b: &[Option<f64>],
    config: &BootstrapConfig,
) -> Result<PairedDifference> {
    check_len("paired difference (method A vs B)", a.len(), b.len())?;
    let pairs: Vec<(f64, f64)> = a
        .iter()
        .zip(b)
        .filter_map(|(x, y)| Some(((*x)?, (*y)?)))
        .collect();
    if pairs.is_empty() {
        return Err(MetricsError::Invalid(
            "paired difference: no image has values from both methods".into(),
        ));
    }
    let n = pairs.len();
    let mean_a = pairs.iter().map(|p| p.0).sum::<f64>() / n as f64;
    let mean_b = pairs.iter().map(|p| p.1).sum::<f64>() / n as f64;
    let ci = bootstrap_interval(n, config, |idx| {
        Some(idx.iter().map(|&i| pairs[i].0 - pairs[i].1).sum::<f64>() / idx.len() as f64)
    })?;
    Ok(PairedDifference {
        n,
        missing: a.len() - n,
        mean_a,
        mean_b,
        difference: mean_a - mean_b,
        ci,
    })
}

/// Groups item indices by a key (class, stain, blur level, count range...), keys sorted.
///
/// ```
/// use mica_metrics::bootstrap::stratify;
/// let g = stratify(&["w1", "w2", "w1"]);
/// assert_eq!(g["w1"], vec![0, 2]);
/// ```
pub fn stratify<K: Ord + Clone>(keys: &[K]) -> BTreeMap<K, Vec<usize>> {
    let mut groups: BTreeMap<K, Vec<usize>> = BTreeMap::new();
    for (i, k) in keys.iter().enumerate() {
        groups.entry(k.clone()).or_default().push(i);
    }
    groups
}

/// The items of `values` at `indices` (one stratum).
pub fn select<T: Clone>(values: &[T], indices: &[usize]) -> Vec<T> {
    indices.iter().map(|&i| values[i].clone()).collect()
}

/// A count-range stratum key per value, from ascending bin edges: with edges `[10, 50]` the bins
/// are `<10`, `10-49`, `>=50` for integer counts (`[lo, hi)` in general). Keys sort by bin
/// because they start with the bin's index (`"0: <10"`).
///
/// # Errors
/// [`MetricsError::Invalid`] when the edges are not strictly ascending and finite.
pub fn count_range_keys(values: &[f64], edges: &[f64]) -> Result<Vec<String>> {
    if edges.iter().any(|e| !e.is_finite()) || edges.windows(2).any(|w| w[0] >= w[1]) {
        return Err(MetricsError::Invalid(format!(
            "count ranges: edges must be finite and strictly ascending, got {edges:?}"
        )));
    }
    let label = |b: usize| -> String {
        match (b, edges.len()) {
            (_, 0) => "0: all".to_string(),
            (0, _) => format!("0: <{}", edges[0]),
            (b, m) if b == m => format!("{b}: >={}", edges[m - 1]),
            (b, _) => format!("{b}: [{}, {})", edges[b - 1], edges[b]),
        }
    };
    Ok(values
        .iter()
        .map(|v| label(edges.iter().filter(|&&e| *v >= e).count()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_interval_and_seed_matters() {
        let v: Vec<f64> = (0..40).map(|i| (i * 7 % 13) as f64).collect();
        let mean = |idx: &[usize]| Some(idx.iter().map(|&i| v[i]).sum::<f64>() / idx.len() as f64);
        let c = BootstrapConfig::default();
        let a = bootstrap_interval(v.len(), &c, mean).unwrap().unwrap();
        let b = bootstrap_interval(v.len(), &c, mean).unwrap().unwrap();
        assert_eq!(a, b);
        let other = BootstrapConfig { seed: 1, ..c };
        let d = bootstrap_interval(v.len(), &other, mean).unwrap().unwrap();
        assert_ne!(a, d);
        let m = v.iter().sum::<f64>() / v.len() as f64;
        assert!(a.low < m && m < a.high, "{a:?} {m}");
    }

    #[test]
    fn interval_of_a_mean_has_the_textbook_width() {
        // 400 values 0/1 with p = 0.5: the 95% interval of the mean is about ±1.96·0.025.
        let v: Vec<f64> = (0..400).map(|i| (i % 2) as f64).collect();
        let ci = bootstrap_interval(v.len(), &BootstrapConfig::default(), |idx| {
            Some(idx.iter().map(|&i| v[i]).sum::<f64>() / idx.len() as f64)
        })
        .unwrap()
        .unwrap();
        let half = (ci.high - ci.low) / 2.0;
        assert!((half - 0.049).abs() < 0.006, "{ci:?}");
    }

    #[test]
    fn quantiles_interpolate_like_numpy() {
        let s = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile_sorted(&s, 0.5), 2.5);
        assert_eq!(quantile_sorted(&s, 0.0), 1.0);
        assert_eq!(quantile_sorted(&s, 1.0), 4.0);
        assert!((quantile_sorted(&s, 0.95) - 3.85).abs() < 1e-12);
    }

    #[test]
    fn bad_config_and_inputs() {
        let c = BootstrapConfig {
            resamples: 0,
            ..Default::default()
        };
        assert!(bootstrap_interval(3, &c, |_| Some(1.0)).is_err());
        assert!(paired_difference(&[None], &[Some(1.0)], &BootstrapConfig::default()).is_err());
        assert!(paired_difference(&[None], &[], &BootstrapConfig::default()).is_err());
    }

    #[test]
    fn count_ranges() {
        let k = count_range_keys(&[1.0, 10.0, 49.0, 50.0], &[10.0, 50.0]).unwrap();
        assert_eq!(k, vec!["0: <10", "1: [10, 50)", "1: [10, 50)", "2: >=50"]);
        assert!(count_range_keys(&[1.0], &[5.0, 5.0]).is_err());
    }
}
