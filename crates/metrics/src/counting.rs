//! Counting metrics: how far predicted counts are from true counts.
//!
//! A prediction is `Option<f64>`: `None` is a missing answer (empty cell, "NaN", a refusal). Missing
//! answers are *not* scored but are always reported ([`CountScores::missing`]): `n` is the number of
//! images with an answer, and `n + missing` the number of images.

use crate::error::{check_len, Result};
use serde::Serialize;

/// Counting metrics over the images that have an answer.
///
/// Every value is `None` when it is undefined (no scored image; Pearson r with zero variance; R²
/// when the truth has zero variance; MAPE when every true count is 0).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CountScores {
    /// Images with a numeric answer (the ones scored).
    pub n: usize,
    /// Images without one (never silently dropped: reported here).
    pub missing: usize,
    /// Mean absolute error, mean(|prediction − truth|).
    pub mae: Option<f64>,
    /// Root mean squared error.
    pub rmse: Option<f64>,
    /// Mean signed error, mean(prediction − truth): positive = over-counting.
    pub bias: Option<f64>,
    /// Mean absolute percentage error as a fraction, mean(|prediction − truth| / |truth|) over the
    /// scored images whose true count is not 0.
    pub mape: Option<f64>,
    /// Fraction of scored images where prediction == truth exactly.
    pub exact: Option<f64>,
    /// Pearson correlation between truth and prediction.
    pub pearson_r: Option<f64>,
    /// Coefficient of determination of the prediction against the identity line y = x:
    /// 1 − Σ(prediction − truth)² / Σ(truth − mean(truth))². Can be negative (worse than
    /// predicting the mean); it is not r².
    pub r2: Option<f64>,
}

/// Scores counts. `truth[i]` and `prediction[i]` are the same image.
///
/// ```
/// use mica_metrics::counting::count_scores;
/// let s = count_scores(&[10.0, 20.0, 30.0], &[Some(12.0), None, Some(27.0)]).unwrap();
/// assert_eq!((s.n, s.missing), (2, 1));
/// assert_eq!(s.mae, Some(2.5));
/// assert_eq!(s.bias, Some(-0.5));
/// ```
///
/// # Errors
/// [`crate::MetricsError::Length`] when the slices differ in length.
pub fn count_scores(truth: &[f64], prediction: &[Option<f64>]) -> Result<CountScores> {
    check_len("count scores", truth.len(), prediction.len())?;
    let pairs: Vec<(f64, f64)> = truth
        .iter()
        .zip(prediction)
        .filter_map(|(&t, p)| p.map(|p| (t, p)))
        .collect();
    Ok(scores_of_pairs(&pairs, truth.len() - pairs.len()))
}

/// Scores `(truth, prediction)` pairs that all have an answer; `missing` is reported as given.
pub fn scores_of_pairs(pairs: &[(f64, f64)], missing: usize) -> CountScores {
    let n = pairs.len();
    if n == 0 {
        return CountScores {
            n,
            missing,
            mae: None,
            rmse: None,
            bias: None,
            mape: None,
            exact: None,
            pearson_r: None,
            r2: None,
        };
    }
    let nf = n as f64;
    let mae = pairs.iter().map(|(t, p)| (p - t).abs()).sum::<f64>() / nf;
    let sse: f64 = pairs.iter().map(|(t, p)| (p - t) * (p - t)).sum();
    let rmse = (sse / nf).sqrt();
    let bias = pairs.iter().map(|(t, p)| p - t).sum::<f64>() / nf;
    let nonzero: Vec<f64> = pairs
        .iter()
        .filter(|(t, _)| *t != 0.0)
        .map(|(t, p)| (p - t).abs() / t.abs())
        .collect();
    let mape = if nonzero.is_empty() {
        None
    } else {
        Some(nonzero.iter().sum::<f64>() / nonzero.len() as f64)
    };
    let exact = pairs.iter().filter(|(t, p)| t == p).count() as f64 / nf;
    let mean_t = pairs.iter().map(|(t, _)| t).sum::<f64>() / nf;
    let mean_p = pairs.iter().map(|(_, p)| p).sum::<f64>() / nf;
    let sst: f64 = pairs.iter().map(|(t, _)| (t - mean_t) * (t - mean_t)).sum();
    let spp: f64 = pairs.iter().map(|(_, p)| (p - mean_p) * (p - mean_p)).sum();
    let stp: f64 = pairs.iter().map(|(t, p)| (t - mean_t) * (p - mean_p)).sum();
    let pearson_r = if sst > 0.0 && spp > 0.0 {
        Some((stp / (sst.sqrt() * spp.sqrt())).clamp(-1.0, 1.0))
    } else {
        None
    };
    let r2 = if sst > 0.0 {
        Some(1.0 - sse / sst)
    } else {
        None
    };
    CountScores {
        n,
        missing,
        mae: Some(mae),
        rmse: Some(rmse),
        bias: Some(bias),
        mape,
        exact: Some(exact),
        pearson_r,
        r2,
    }
}

/// Absolute error per image (`None` where the answer is missing): the per-image loss behind MAE,
/// e.g. for [`crate::bootstrap::paired_difference`].
pub fn absolute_errors(truth: &[f64], prediction: &[Option<f64>]) -> Result<Vec<Option<f64>>> {
    check_len("absolute errors", truth.len(), prediction.len())?;
    Ok(truth
        .iter()
        .zip(prediction)
        .map(|(t, p)| p.map(|p| (p - t).abs()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed() {
        // truth 1 2 3 4, prediction 2 2 5 missing.
        let s = count_scores(
            &[1.0, 2.0, 3.0, 4.0],
            &[Some(2.0), Some(2.0), Some(5.0), None],
        )
        .unwrap();
        assert_eq!((s.n, s.missing), (3, 1));
        assert!((s.mae.unwrap() - 1.0).abs() < 1e-12);
        assert!((s.rmse.unwrap() - (5.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert!((s.bias.unwrap() - 1.0).abs() < 1e-12);
        assert!((s.mape.unwrap() - (1.0 + 0.0 + 2.0 / 3.0) / 3.0).abs() < 1e-12);
        assert!((s.exact.unwrap() - 1.0 / 3.0).abs() < 1e-12);
        // truth mean 2, sst = 2; sse = 5 -> r2 = 1 - 5/2.
        assert!((s.r2.unwrap() + 1.5).abs() < 1e-12);
        // pred mean 3: cov = (-1)(-1) + 0 + (1)(2) = 3; spp = 1 + 1 + 4 = 6 -> r = 3 / sqrt(12).
        assert!((s.pearson_r.unwrap() - 3.0 / 12f64.sqrt()).abs() < 1e-12);
    }

    #[test]
    fn undefined_values_are_none() {
        let s = count_scores(&[5.0, 5.0], &[Some(4.0), Some(6.0)]).unwrap();
        assert_eq!(s.pearson_r, None);
        assert_eq!(s.r2, None);
        let s = count_scores(&[5.0], &[None]).unwrap();
        assert_eq!((s.n, s.missing, s.mae), (0, 1, None));
        let s = count_scores(&[0.0, 0.0], &[Some(1.0), Some(0.0)]).unwrap();
        assert_eq!(s.mape, None);
        assert!(count_scores(&[1.0], &[]).is_err());
    }
}
