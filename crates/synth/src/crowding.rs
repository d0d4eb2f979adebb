//! How crowded an image with instance labels is: the statistics that place a real image on the
//! crowding axis of the robustness curves, and that fit the generator to it.
//!
//! The generator's `clustering_probability` is a drawing rule, not something a real image has.
//! What both have is the *touching fraction*: the share of objects that share an edge (4-
//! neighbourhood) with another object. [`crowding_stats`] measures it (with the count, object
//! sizes and intensities) on a real labelled image and on generated ones, and
//! [`matching_clustering`] picks the clustering probability whose generated images touch as much
//! as the real one.

use crate::error::{Result, SynthError};
use crate::generate::{generate, CellGenConfig};
use mica_core::{Image, LabelImage};
use serde::{Deserialize, Serialize};

/// Crowding and intensity statistics of an image with instance labels. Intensities are fractions
/// of the image's full scale (255, 65535, or 1 for float images).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrowdingStats {
    pub objects: usize,
    pub area_median_px: f64,
    pub area_p10_px: f64,
    pub area_p90_px: f64,
    /// Share of objects with at least one pixel 4-adjacent to another object's pixel.
    pub touching_fraction: f64,
    /// Mean intensity inside objects and outside them.
    pub fg_mean: f64,
    pub bg_mean: f64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((p / 100.0) * (sorted.len() - 1) as f64).round() as usize]
}

/// Measures `labels` (0 = background) over `image`.
///
/// # Errors
/// [`SynthError::TruthShape`] when the two differ in size.
pub fn crowding_stats(image: &Image, labels: &LabelImage) -> Result<CrowdingStats> {
    let (w, h) = (labels.width() as usize, labels.height() as usize);
    if (image.width() as usize, image.height() as usize) != (w, h) {
        return Err(SynthError::TruthShape {
            what: "instance labels",
            image_w: image.width(),
            image_h: image.height(),
            truth_w: labels.width(),
            truth_h: labels.height(),
        });
    }
    let l = labels.as_slice();
    let max = labels.max_label() as usize;
    let mut area = vec![0u64; max + 1];
    let mut touching = vec![false; max + 1];
    for y in 0..h {
        for x in 0..w {
            let a = l[y * w + x];
            area[a as usize] += 1;
            if a == 0 {
                continue;
            }
            let right = (x + 1 < w).then(|| l[y * w + x + 1]);
            let down = (y + 1 < h).then(|| l[(y + 1) * w + x]);
            for b in [right, down].into_iter().flatten() {
                if b != 0 && b != a {
                    touching[a as usize] = true;
                    touching[b as usize] = true;
                }
            }
        }
    }
    let mut areas: Vec<f64> = area[1..]
        .iter()
        .filter(|&&a| a > 0)
        .map(|&a| a as f64)
        .collect();
    areas.sort_by(f64::total_cmp);
    let objects = areas.len();
    let touching_n = (1..=max).filter(|&i| area[i] > 0 && touching[i]).count();
    let scale = crate::raster::full_scale(image.bit_depth()) as f64;
    let v = image.intensity_f32();
    let (mut fs, mut fnn, mut bs, mut bn) = (0f64, 0usize, 0f64, 0usize);
    for (&p, &lab) in v.iter().zip(l) {
        if lab == 0 {
            bs += p as f64;
            bn += 1;
        } else {
            fs += p as f64;
            fnn += 1;
        }
    }
    let mean = |s: f64, n: usize| {
        if n == 0 {
            f64::NAN
        } else {
            s / n as f64 / scale
        }
    };
    Ok(CrowdingStats {
        objects,
        area_median_px: percentile(&areas, 50.0),
        area_p10_px: percentile(&areas, 10.0),
        area_p90_px: percentile(&areas, 90.0),
        touching_fraction: if objects == 0 {
            0.0
        } else {
            touching_n as f64 / objects as f64
        },
        fg_mean: mean(fs, fnn),
        bg_mean: mean(bs, bn),
    })
}

/// The touching fraction of images generated with `base` at `count` objects and clustering
/// probability `p`, averaged over `images` seeds.
///
/// # Errors
/// As [`generate()`].
pub fn generated_touching_fraction(
    base: &CellGenConfig,
    count: usize,
    p: f64,
    images: usize,
    seed: u64,
) -> Result<f64> {
    let cfg = CellGenConfig {
        count,
        clustering_probability: p,
        ..base.clone()
    };
    let mut sum = 0.0;
    for i in 0..images.max(1) {
        let g = generate(&cfg, seed.wrapping_add(i as u64))?;
        sum += crowding_stats(&g.image, &g.labels)?.touching_fraction;
    }
    Ok(sum / images.max(1) as f64)
}

/// Of the clustering probabilities `candidates`, the one whose generated images (with `base`, at
/// `count` objects) have the touching fraction closest to `target`; with that fraction.
///
/// # Errors
/// As [`generate()`].
pub fn matching_clustering(
    base: &CellGenConfig,
    count: usize,
    target: f64,
    candidates: &[f64],
    images: usize,
    seed: u64,
) -> Result<Option<(f64, f64)>> {
    let mut best: Option<(f64, f64)> = None;
    for &p in candidates {
        let f = generated_touching_fraction(base, count, p, images, seed)?;
        if best.is_none_or(|(_, bf)| (f - target).abs() < (bf - target).abs()) {
            best = Some((p, f));
        }
    }
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn touching_is_counted_per_object() {
        // Objects 1 and 2 share an edge; 3 touches nothing (only diagonally 2).
        let l = LabelImage::new(
            5,
            3,
            vec![
                1, 1, 2, 0, 0, //
                1, 1, 2, 0, 0, //
                0, 0, 0, 3, 3,
            ],
        )
        .unwrap();
        let img = Image::gray8(5, 3, vec![255; 15]).unwrap();
        let s = crowding_stats(&img, &l).unwrap();
        assert_eq!(s.objects, 3);
        assert!((s.touching_fraction - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(
            (s.area_median_px, s.area_p10_px, s.area_p90_px),
            (2.0, 2.0, 4.0)
        );
        assert_eq!((s.fg_mean, s.bg_mean), (1.0, 1.0));
        let wrong = LabelImage::zeros(4, 3);
        assert!(crowding_stats(&img, &wrong).is_err());
    }

    #[test]
    fn clustering_raises_the_touching_fraction_of_generated_images() {
        let base = CellGenConfig {
            width: 256,
            height: 256,
            radius_px: 8.0,
            ..CellGenConfig::default()
        };
        let apart = generated_touching_fraction(&base, 40, 0.0, 2, 1).unwrap();
        let clustered = generated_touching_fraction(&base, 40, 0.6, 2, 1).unwrap();
        assert!(clustered > apart + 0.2, "{apart} vs {clustered}");
        let (p, f) = matching_clustering(&base, 40, clustered, &[0.0, 0.6], 2, 1)
            .unwrap()
            .unwrap();
        assert_eq!((p, f), (0.6, clustered));
    }
}
