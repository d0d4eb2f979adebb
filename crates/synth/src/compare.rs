//! Image statistics for comparing generated images with real ones (intensity histograms, object
//! sizes), used to validate the generator against BBBC005.

use crate::error::{Result, SynthError};
use mica_core::{BinaryMask, Connectivity, Image};
use serde::{Deserialize, Serialize};

/// Number of bins of [`ImageStats::histogram`] (over the 8-bit range).
pub const HIST_BINS: usize = 32;

/// Intensity and size statistics of one image with its foreground mask. Intensities are in 8-bit
/// units (16-bit images divided by 257, float images multiplied by 255).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageStats {
    pub background_mean: f64,
    pub background_p99: f64,
    pub foreground_mean: f64,
    pub foreground_p10: f64,
    pub foreground_p50: f64,
    pub foreground_p90: f64,
    /// Share of pixels in the foreground.
    pub foreground_fraction: f64,
    /// Foreground pixels per counted object (`None` without a count or with count 0).
    pub foreground_px_per_object: Option<f64>,
    /// Connected foreground regions (8-connectivity).
    pub components: usize,
    /// Median area of those regions, px.
    pub median_component_px: f64,
    /// Normalised histogram of all pixels, [`HIST_BINS`] equal bins over 0–255.
    pub histogram: Vec<f64>,
}

fn percentile(sorted: &[f32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i] as f64
}

/// Statistics of `image` (gray or RGB, any depth) with foreground `mask` and optional `count`.
///
/// # Errors
/// [`SynthError::TruthShape`] when the mask has another size.
pub fn image_stats(image: &Image, mask: &BinaryMask, count: Option<f64>) -> Result<ImageStats> {
    if (mask.width(), mask.height()) != (image.width(), image.height()) {
        return Err(SynthError::TruthShape {
            what: "foreground mask",
            image_w: image.width(),
            image_h: image.height(),
            truth_w: mask.width(),
            truth_h: mask.height(),
        });
    }
    let scale = 255.0 / crate::raster::full_scale(image.bit_depth());
    let v: Vec<f32> = image.intensity_f32().iter().map(|&x| x * scale).collect();
    let m = mask.as_slice();
    let mut fg: Vec<f32> = v
        .iter()
        .zip(m)
        .filter(|(_, &b)| b)
        .map(|(&x, _)| x)
        .collect();
    let mut bg: Vec<f32> = v
        .iter()
        .zip(m)
        .filter(|(_, &b)| !b)
        .map(|(&x, _)| x)
        .collect();
    fg.sort_by(f32::total_cmp);
    bg.sort_by(f32::total_cmp);
    let mean = |xs: &[f32]| {
        if xs.is_empty() {
            f64::NAN
        } else {
            xs.iter().map(|&x| x as f64).sum::<f64>() / xs.len() as f64
        }
    };
    let mut histogram = vec![0f64; HIST_BINS];
    for &x in &v {
        let b = ((x / 256.0 * HIST_BINS as f32) as usize).min(HIST_BINS - 1);
        histogram[b] += 1.0;
    }
    histogram.iter_mut().for_each(|h| *h /= v.len() as f64);
    let labels = mask.connected_components(Connectivity::Eight);
    let mut areas: Vec<u64> = mica_core::object_properties(&labels, None)?
        .iter()
        .map(|p| p.area_px)
        .collect();
    areas.sort_unstable();
    let median_component_px = if areas.is_empty() {
        f64::NAN
    } else {
        areas[areas.len() / 2] as f64
    };
    Ok(ImageStats {
        background_mean: mean(&bg),
        background_p99: percentile(&bg, 99.0),
        foreground_mean: mean(&fg),
        foreground_p10: percentile(&fg, 10.0),
        foreground_p50: percentile(&fg, 50.0),
        foreground_p90: percentile(&fg, 90.0),
        foreground_fraction: fg.len() as f64 / v.len() as f64,
        foreground_px_per_object: count.filter(|&c| c > 0.0).map(|c| fg.len() as f64 / c),
        components: areas.len(),
        median_component_px,
        histogram,
    })
}

/// Earth mover's distance between two normalised histograms of [`HIST_BINS`] bins over 0–255,
/// in gray levels (the mean shift needed to turn one into the other).
pub fn histogram_emd_gray_levels(a: &[f64], b: &[f64]) -> f64 {
    let bin = 256.0 / a.len().max(1) as f64;
    let (mut ca, mut cb, mut d) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        ca += x;
        cb += y;
        d += (ca - cb).abs();
    }
    d * bin
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_of_a_two_level_image() {
        let mut data = vec![10u8; 100];
        let mut mask = vec![false; 100];
        for i in 0..25 {
            data[i] = 200;
            mask[i] = true;
        }
        let img = Image::gray8(10, 10, data).unwrap();
        let m = BinaryMask::new(10, 10, mask).unwrap();
        let s = image_stats(&img, &m, Some(1.0)).unwrap();
        assert_eq!(s.foreground_mean, 200.0);
        assert_eq!(s.background_mean, 10.0);
        assert_eq!(s.foreground_fraction, 0.25);
        assert_eq!(s.foreground_px_per_object, Some(25.0));
        assert_eq!(s.components, 1);
        assert!((s.histogram.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn emd_is_zero_for_equal_and_the_shift_for_moved_histograms() {
        let mut a = vec![0.0; HIST_BINS];
        let mut b = vec![0.0; HIST_BINS];
        a[2] = 1.0;
        b[5] = 1.0;
        assert_eq!(histogram_emd_gray_levels(&a, &a), 0.0);
        assert_eq!(histogram_emd_gray_levels(&a, &b), 3.0 * 8.0);
    }
}
