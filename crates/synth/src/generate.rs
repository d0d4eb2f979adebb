//! A SIMCEP-like synthetic cell generator: irregular blob cells with nuclei, a chosen count, a
//! clustering probability, texture, blur and noise; image + instance labels + count.
//!
//! In the spirit of SIMCEP (Lehmussola et al., IEEE TMI 2007), which produced BBBC005:
//!
//! 1. **Shape.** A cell is a star-shaped blob around its centre: radius
//!    `r(θ) = R·e(θ)·(1 + Σ_{k=2..6} a_k cos(kθ + φ_k))`, `R ~ N(radius_px, radius_sd_px²)`,
//!    `a_k ~ N(0, (irregularity/k)²)`, `e(θ)` an ellipse of axis ratio `1 + U(0, elongation)` at a
//!    random angle. The nucleus is the same construction with `R·nucleus_radius_ratio`, around a
//!    point displaced from the cell centre by at most `nucleus_offset_frac·R`.
//! 2. **Placement.** With probability `clustering_probability` a cell is placed next to a random
//!    earlier cell, centre distance `(R_i + R_j)·U(0.55, 0.95)` (touching or overlapping);
//!    otherwise uniformly, trying to keep clear of earlier cells. Earlier cells stay on top in the
//!    label image: a new cell owns only pixels no earlier cell owns, and is re-drawn at a new
//!    place when less than `min_visible_fraction` of it (cell or nucleus) would be visible. So
//!    every placed cell is exactly one label and `count == labels.num_objects()`.
//! 3. **Intensity.** Fluorescence adds up: the image is `background + Σ_i A_i·(1 +
//!    texture·n_i(x))·edge_i(x)`, `A_i ~ N(intensity, intensity_sd²)` as fractions of full scale,
//!    `n_i` smooth value noise of scale `texture_scale_px`, `edge_i` a ramp over `edge_px` inside
//!    the boundary. The cell channel uses cells; the nucleus channel nuclei.
//! 4. **Optics and sensor.** Gaussian blur (diameter `blur_diameter_px`, σ = d/4), Poisson noise
//!    and Gaussian noise as in [`crate::perturb`], then quantisation to 8 or 16 bits.

use crate::error::{check_range, Result, SynthError};
use crate::perturb::Perturbation;
use crate::raster::{value_noise, Planes};
use crate::truth::Truth;
use mica_core::rng::SplitMix64;
use mica_core::{BitDepth, Channels, Image, LabelImage, Pixels};
use serde::{Deserialize, Serialize};

/// Appearance of one channel (cells or nuclei).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StainParams {
    /// Mean object intensity above background, fraction of full scale.
    pub intensity: f64,
    /// Spread of object intensity between objects.
    pub intensity_sd: f64,
    /// Texture amplitude (relative modulation, 0 = flat).
    pub texture: f64,
    /// Texture feature size.
    pub texture_scale_px: f64,
    /// Width of the intensity ramp inside the boundary.
    pub edge_px: f64,
}

impl Default for StainParams {
    fn default() -> Self {
        StainParams {
            intensity: 0.35,
            intensity_sd: 0.08,
            texture: 0.25,
            texture_scale_px: 6.0,
            edge_px: 3.0,
        }
    }
}

/// Which channel [`Synthetic::image`] and [`Synthetic::labels`] show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Channel {
    #[default]
    Cells,
    Nuclei,
}

/// Settings of the generator. Defaults are the `bbbc005-w1` preset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CellGenConfig {
    pub width: u32,
    pub height: u32,
    pub count: usize,
    /// Probability that a cell is placed touching or overlapping an earlier one.
    pub clustering_probability: f64,
    pub radius_px: f64,
    pub radius_sd_px: f64,
    /// Amplitude of the boundary harmonics (0 = ellipse).
    pub irregularity: f64,
    /// Largest extra axis ratio (0 = round).
    pub elongation: f64,
    pub nucleus_radius_ratio: f64,
    pub nucleus_offset_frac: f64,
    pub cells: StainParams,
    pub nuclei: StainParams,
    /// Which channel is the output image.
    pub channel: Channel,
    /// Background level, fraction of full scale.
    pub background: f64,
    pub blur_diameter_px: f64,
    /// Shot noise: σ at full scale as a fraction of full scale (0 = none).
    pub poisson_sigma_frac: f64,
    /// Additive read noise σ, fraction of full scale.
    pub gaussian_sigma_frac: f64,
    pub bit_depth: BitDepth,
    pub min_visible_fraction: f64,
    pub max_attempts_per_cell: u32,
}

impl Default for CellGenConfig {
    fn default() -> Self {
        CellGenConfig::preset("bbbc005-w1").expect("built-in preset")
    }
}

impl CellGenConfig {
    /// Names of the built-in presets.
    pub const PRESETS: [&'static str; 3] = ["bbbc005-w1", "bbbc005-w2", "stardist-nuclei"];

    /// A named preset: `bbbc005-w1` (compact bright bodies, as BBBC005's w1 images look) or
    /// `bbbc005-w2` (larger, dimmer, textured bodies, as its w2 images look), both 696×520 8-bit,
    /// count 20, fitted to BBBC005; `stardist-nuclei` (512×512 16-bit, count 125, small dim
    /// nuclei fitted to the StarDist sample image, a real crowded image with instance labels).
    /// No clustering (see docs/robustness.md).
    pub fn preset(name: &str) -> Option<CellGenConfig> {
        let base = CellGenConfig {
            width: 696,
            height: 520,
            count: 20,
            clustering_probability: 0.0,
            radius_px: 16.0,
            radius_sd_px: 2.0,
            irregularity: 0.12,
            elongation: 0.3,
            nucleus_radius_ratio: 0.55,
            nucleus_offset_frac: 0.15,
            cells: StainParams {
                intensity: 0.6,
                intensity_sd: 0.1,
                texture: 0.08,
                texture_scale_px: 8.0,
                edge_px: 1.0,
            },
            nuclei: StainParams {
                intensity: 0.6,
                intensity_sd: 0.08,
                texture: 0.08,
                texture_scale_px: 6.0,
                edge_px: 1.0,
            },
            channel: Channel::Cells,
            background: 0.004,
            blur_diameter_px: 10.0,
            poisson_sigma_frac: 0.0,
            gaussian_sigma_frac: 0.004,
            bit_depth: BitDepth::U8,
            min_visible_fraction: 0.5,
            max_attempts_per_cell: 200,
        };
        match name {
            "bbbc005-w1" => Some(base),
            "bbbc005-w2" => Some(CellGenConfig {
                radius_px: 31.5,
                radius_sd_px: 4.0,
                irregularity: 0.15,
                cells: StainParams {
                    intensity: 0.61,
                    intensity_sd: 0.08,
                    texture: 0.15,
                    texture_scale_px: 16.0,
                    edge_px: 1.0,
                },
                ..base
            }),
            // Fitted to the StarDist sample (512×512 16-bit, 125 nuclei; `crowding_anchor`
            // example): median area 440 px, object means 71 ± 31 over a background of 21,
            // pixel noise 5 (in 16-bit levels).
            "stardist-nuclei" => Some(CellGenConfig {
                width: 512,
                height: 512,
                count: 125,
                radius_px: 12.5,
                radius_sd_px: 2.5,
                irregularity: 0.1,
                cells: StainParams {
                    intensity: 50.0 / 65535.0,
                    intensity_sd: 30.0 / 65535.0,
                    texture: 0.1,
                    texture_scale_px: 6.0,
                    edge_px: 1.0,
                },
                background: 21.0 / 65535.0,
                blur_diameter_px: 6.0,
                gaussian_sigma_frac: 5.0 / 65535.0,
                bit_depth: BitDepth::U16,
                ..base
            }),
            _ => None,
        }
    }

    /// Checks every setting's range.
    ///
    /// # Errors
    /// [`SynthError::Param`] naming the setting.
    pub fn validate(&self) -> Result<()> {
        if self.width == 0 || self.height == 0 || self.width > 20_000 || self.height > 20_000 {
            return Err(SynthError::param(
                "width/height",
                format!("{}x{} is not in 1..=20000", self.width, self.height),
            ));
        }
        check_range("count", self.count as f64, 0.0, 100_000.0)?;
        check_range(
            "clustering_probability",
            self.clustering_probability,
            0.0,
            1.0,
        )?;
        check_range("radius_px", self.radius_px, 1.0, 5000.0)?;
        check_range("radius_sd_px", self.radius_sd_px, 0.0, 5000.0)?;
        check_range("irregularity", self.irregularity, 0.0, 1.0)?;
        check_range("elongation", self.elongation, 0.0, 5.0)?;
        check_range("nucleus_radius_ratio", self.nucleus_radius_ratio, 0.05, 1.0)?;
        check_range("nucleus_offset_frac", self.nucleus_offset_frac, 0.0, 1.0)?;
        for (n, s) in [("cells", &self.cells), ("nuclei", &self.nuclei)] {
            check_range(&format!("{n}.intensity"), s.intensity, 0.0, 1.0)?;
            check_range(&format!("{n}.intensity_sd"), s.intensity_sd, 0.0, 1.0)?;
            check_range(&format!("{n}.texture"), s.texture, 0.0, 1.0)?;
            check_range(
                &format!("{n}.texture_scale_px"),
                s.texture_scale_px,
                1.0,
                5000.0,
            )?;
            check_range(&format!("{n}.edge_px"), s.edge_px, 0.0, 1000.0)?;
        }
        check_range("background", self.background, 0.0, 1.0)?;
        check_range("blur_diameter_px", self.blur_diameter_px, 0.0, 1000.0)?;
        check_range("poisson_sigma_frac", self.poisson_sigma_frac, 0.0, 10.0)?;
        check_range("gaussian_sigma_frac", self.gaussian_sigma_frac, 0.0, 10.0)?;
        check_range("min_visible_fraction", self.min_visible_fraction, 0.0, 1.0)?;
        if self.bit_depth == BitDepth::F32 {
            return Err(SynthError::param(
                "bit_depth",
                "the generator writes u8 or u16",
            ));
        }
        if self.max_attempts_per_cell == 0 {
            return Err(SynthError::param(
                "max_attempts_per_cell",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

/// A generated image with instance truth for both channels.
#[derive(Debug, Clone, PartialEq)]
pub struct Synthetic {
    /// The channel chosen by [`CellGenConfig::channel`].
    pub image: Image,
    /// Instance labels of that channel.
    pub labels: LabelImage,
    /// Number of objects; equals `labels.num_objects()`.
    pub count: usize,
    pub cell_image: Image,
    pub cell_labels: LabelImage,
    pub nucleus_image: Image,
    /// Nucleus `i` belongs to cell `i`.
    pub nucleus_labels: LabelImage,
}

impl Synthetic {
    /// The truth of the chosen channel.
    pub fn truth(&self) -> Truth {
        Truth::from_labels(self.labels.clone())
    }
}

/// A star-shaped blob.
#[derive(Debug, Clone)]
struct Blob {
    cx: f64,
    cy: f64,
    /// Radius at 360 equally spaced angles.
    radius: Vec<f64>,
    max_r: f64,
}

const N_ANGLES: usize = 360;

impl Blob {
    fn random(rng: &mut SplitMix64, cx: f64, cy: f64, r: f64, cfg: &CellGenConfig) -> Blob {
        let harmonics: Vec<(f64, f64)> = (2..=6)
            .map(|k| {
                (
                    cfg.irregularity / k as f64 * rng.normal(),
                    rng.next_f64() * std::f64::consts::TAU,
                )
            })
            .collect();
        let ratio = 1.0 + cfg.elongation * rng.next_f64();
        let tilt = rng.next_f64() * std::f64::consts::PI;
        Blob::with(cx, cy, r, &harmonics, ratio, tilt)
    }

    fn with(cx: f64, cy: f64, r: f64, harmonics: &[(f64, f64)], ratio: f64, tilt: f64) -> Blob {
        // Ellipse of area πR² with axes R·√ratio and R/√ratio.
        let (a, b) = (r * ratio.sqrt(), r / ratio.sqrt());
        let radius: Vec<f64> = (0..N_ANGLES)
            .map(|i| {
                let th = i as f64 / N_ANGLES as f64 * std::f64::consts::TAU;
                let t = th - tilt;
                let e = a * b / ((b * t.cos()).powi(2) + (a * t.sin()).powi(2)).sqrt();
                let h: f64 = harmonics
                    .iter()
                    .enumerate()
                    .map(|(j, &(amp, ph))| amp * ((j as f64 + 2.0) * th + ph).cos())
                    .sum();
                (e * (1.0 + h)).max(0.5)
            })
            .collect();
        let max_r = radius.iter().cloned().fold(0.0, f64::max);
        Blob {
            cx,
            cy,
            radius,
            max_r,
        }
    }

    /// Boundary radius at the angle of `(dx, dy)`, linearly interpolated.
    fn r_at(&self, dx: f64, dy: f64) -> f64 {
        let th = dy.atan2(dx).rem_euclid(std::f64::consts::TAU);
        let f = th / std::f64::consts::TAU * N_ANGLES as f64;
        let i = (f.floor() as usize) % N_ANGLES;
        let j = (i + 1) % N_ANGLES;
        let t = f - f.floor();
        self.radius[i] * (1.0 - t) + self.radius[j] * t
    }

    /// Pixels inside, with their depth below the boundary (px), clipped to the image.
    fn pixels(&self, w: usize, h: usize) -> Vec<(usize, f64)> {
        let x0 = (self.cx - self.max_r).floor().max(0.0) as usize;
        let y0 = (self.cy - self.max_r).floor().max(0.0) as usize;
        let x1 = ((self.cx + self.max_r).ceil() as i64).min(w as i64 - 1);
        let y1 = ((self.cy + self.max_r).ceil() as i64).min(h as i64 - 1);
        let mut out = Vec::new();
        if x1 < 0 || y1 < 0 {
            return out;
        }
        for y in y0..=y1 as usize {
            for x in x0..=x1 as usize {
                let (dx, dy) = (x as f64 - self.cx, y as f64 - self.cy);
                let d = (dx * dx + dy * dy).sqrt();
                let r = self.r_at(dx, dy);
                if d <= r {
                    out.push((y * w + x, r - d));
                }
            }
        }
        out
    }

    /// Full area in pixels, including outside the image (≈ ∫ r²/2 dθ).
    fn area(&self) -> f64 {
        self.radius.iter().map(|r| r * r).sum::<f64>() / N_ANGLES as f64 * std::f64::consts::PI
    }
}

struct Placed {
    cell: Blob,
    cell_px: Vec<(usize, f64)>,
    nucleus_px: Vec<(usize, f64)>,
}

/// Generates one image, deterministic in `(cfg, seed)`.
///
/// # Errors
/// [`SynthError::Param`] for settings out of range; [`SynthError::Crowded`] when fewer than
/// `count` cells fit.
pub fn generate(cfg: &CellGenConfig, seed: u64) -> Result<Synthetic> {
    cfg.validate()?;
    let (w, h) = (cfg.width as usize, cfg.height as usize);
    let mut rng = SplitMix64::new(seed);
    let mut cell_owner = vec![0u32; w * h];
    let mut nuc_owner = vec![0u32; w * h];
    let mut placed: Vec<Placed> = Vec::with_capacity(cfg.count);
    for _ in 0..cfg.count {
        let mut done = false;
        for attempt in 0..cfg.max_attempts_per_cell {
            let r = (cfg.radius_px + cfg.radius_sd_px * rng.normal()).max(cfg.radius_px * 0.3);
            let cluster = !placed.is_empty() && rng.next_f64() < cfg.clustering_probability;
            let (cx, cy) = if cluster {
                let j = rng.below(placed.len() as u64) as usize;
                let other = &placed[j].cell;
                let other_r = (other.area() / std::f64::consts::PI).sqrt();
                let dist = (r + other_r) * (0.55 + 0.4 * rng.next_f64());
                let phi = rng.next_f64() * std::f64::consts::TAU;
                (other.cx + dist * phi.cos(), other.cy + dist * phi.sin())
            } else {
                let cx = rng.next_f64() * w as f64;
                let cy = rng.next_f64() * h as f64;
                // Keep clear of earlier cells for the first half of the attempts.
                if attempt < cfg.max_attempts_per_cell / 2
                    && placed.iter().any(|p| {
                        let pr = (p.cell.area() / std::f64::consts::PI).sqrt();
                        (p.cell.cx - cx).hypot(p.cell.cy - cy) < (pr + r) * 1.05
                    })
                {
                    continue;
                }
                (cx, cy)
            };
            let cell = Blob::random(&mut rng, cx, cy, r, cfg);
            let off = cfg.nucleus_offset_frac * r * rng.next_f64();
            let phi = rng.next_f64() * std::f64::consts::TAU;
            let nucleus = Blob::random(
                &mut rng,
                cx + off * phi.cos(),
                cy + off * phi.sin(),
                r * cfg.nucleus_radius_ratio,
                cfg,
            );
            let cell_px = cell.pixels(w, h);
            let nucleus_px = nucleus.pixels(w, h);
            let visible = |px: &[(usize, f64)], owner: &[u32], area: f64| {
                px.iter().filter(|(i, _)| owner[*i] == 0).count() as f64 / area.max(1.0)
            };
            if cell_px.is_empty()
                || nucleus_px.is_empty()
                || visible(&cell_px, &cell_owner, cell.area()) < cfg.min_visible_fraction
                || visible(&nucleus_px, &nuc_owner, nucleus.area()) < cfg.min_visible_fraction
            {
                continue;
            }
            let id = placed.len() as u32 + 1;
            for &(i, _) in &cell_px {
                if cell_owner[i] == 0 {
                    cell_owner[i] = id;
                }
            }
            for &(i, _) in &nucleus_px {
                if nuc_owner[i] == 0 {
                    nuc_owner[i] = id;
                }
            }
            placed.push(Placed {
                cell,
                cell_px,
                nucleus_px,
            });
            done = true;
            break;
        }
        if !done {
            return Err(SynthError::Crowded {
                requested: cfg.count,
                placed: placed.len(),
                width: cfg.width,
                height: cfg.height,
            });
        }
    }

    let render = |stain: &StainParams, pick: &dyn Fn(&Placed) -> &[(usize, f64)], salt: u64| {
        let mut rng = SplitMix64::new(seed ^ salt);
        let mut v = vec![cfg.background as f32; w * h];
        for p in &placed {
            // At least a quarter of the mean, so no cell vanishes into the background.
            let amp =
                (stain.intensity + stain.intensity_sd * rng.normal()).max(0.25 * stain.intensity);
            let tex_seed = rng.next_u64();
            for &(i, depth) in pick(p) {
                let (x, y) = ((i % w) as f64, (i / w) as f64);
                let edge = if stain.edge_px > 0.0 {
                    let t = (depth / stain.edge_px).min(1.0);
                    t * t * (3.0 - 2.0 * t)
                } else {
                    1.0
                };
                let n = value_noise(x, y, stain.texture_scale_px, tex_seed);
                v[i] += (amp * (1.0 + stain.texture * n) * edge) as f32;
            }
        }
        v
    };
    let finish = |frac: Vec<f32>, salt: u64| -> Result<Image> {
        let m = crate::raster::full_scale(cfg.bit_depth);
        // Blur and noise on unquantised values, then quantise once.
        let mut img = RawImage {
            w,
            h,
            data: frac.iter().map(|&f| f * m).collect(),
        };
        for p in [
            Perturbation::Blur {
                diameter_px: cfg.blur_diameter_px,
            },
            Perturbation::PoissonNoise {
                sigma_frac_at_full_scale: cfg.poisson_sigma_frac,
            },
            Perturbation::GaussianNoise {
                sigma_frac: cfg.gaussian_sigma_frac,
            },
        ] {
            img = apply_unclipped(&p, img, m, seed ^ salt)?;
        }
        quantise(&img, cfg.bit_depth)
    };
    let cell_image = finish(render(&cfg.cells, &|p| &p.cell_px, 0xC311), 0xC311)?;
    let nucleus_image = finish(render(&cfg.nuclei, &|p| &p.nucleus_px, 0x9C1E), 0x9C1E)?;
    let cell_labels = LabelImage::new(cfg.width, cfg.height, cell_owner)?;
    let nucleus_labels = LabelImage::new(cfg.width, cfg.height, nuc_owner)?;
    let (image, labels) = match cfg.channel {
        Channel::Cells => (cell_image.clone(), cell_labels.clone()),
        Channel::Nuclei => (nucleus_image.clone(), nucleus_labels.clone()),
    };
    Ok(Synthetic {
        count: labels.num_objects(),
        image,
        labels,
        cell_image,
        cell_labels,
        nucleus_image,
        nucleus_labels,
    })
}

/// Float image holding raw values in units of the target depth (not clipped to [0, 1]).
struct RawImage {
    w: usize,
    h: usize,
    data: Vec<f32>,
}

/// Applies blur or noise to raw values in units of full scale `m`, without clipping, by
/// rescaling to [0, 1] float, which the perturbations treat with M = 1.
fn apply_unclipped(p: &Perturbation, img: RawImage, m: f32, seed: u64) -> Result<RawImage> {
    if p.is_identity() {
        return Ok(img);
    }
    let mut planes = Planes {
        width: img.w,
        height: img.h,
        channels: 1,
        depth: BitDepth::F32,
        data: img.data.iter().map(|&v| v / m).collect(),
    };
    let mut rng = SplitMix64::new(seed ^ 0xD1B5_4A32_D192_ED03);
    match p {
        Perturbation::Blur { diameter_px } => {
            crate::raster::gaussian_blur(&mut planes, diameter_px / 4.0)
        }
        Perturbation::GaussianNoise { sigma_frac } => planes
            .data
            .iter_mut()
            .for_each(|v| *v += (*sigma_frac * rng.normal()) as f32),
        Perturbation::PoissonNoise {
            sigma_frac_at_full_scale: s,
        } => {
            let photons = 1.0 / (s * s);
            planes.data.iter_mut().for_each(|v| {
                *v = (crate::perturb::poisson(&mut rng, (*v as f64).max(0.0) * photons) / photons)
                    as f32
            });
        }
        _ => {
            return Err(SynthError::param(
                "generator perturbation",
                "only blur and noise are applied inside the generator",
            ))
        }
    }
    Ok(RawImage {
        w: img.w,
        h: img.h,
        data: planes.data.iter().map(|&v| v * m).collect(),
    })
}

fn quantise(img: &RawImage, depth: BitDepth) -> Result<Image> {
    let (w, h) = (img.w as u32, img.h as u32);
    let px = match depth {
        BitDepth::U16 => Pixels::U16(
            img.data
                .iter()
                .map(|&v| v.round().clamp(0.0, 65535.0) as u16)
                .collect(),
        ),
        _ => Pixels::U8(
            img.data
                .iter()
                .map(|&v| v.round().clamp(0.0, 255.0) as u8)
                .collect(),
        ),
    };
    Ok(Image::new(w, h, Channels::Gray, px)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(count: usize, clustering: f64) -> CellGenConfig {
        CellGenConfig {
            width: 160,
            height: 120,
            count,
            clustering_probability: clustering,
            radius_px: 9.0,
            ..CellGenConfig::default()
        }
    }

    #[test]
    fn count_equals_labels_and_is_requested() {
        for (n, c) in [(0, 0.0), (1, 0.0), (12, 0.0), (12, 0.5), (20, 1.0)] {
            let s = generate(&small(n, c), 7).unwrap();
            assert_eq!(s.count, n);
            assert_eq!(s.labels.num_objects(), n);
            assert_eq!(s.nucleus_labels.num_objects(), n);
            assert_eq!(s.labels.max_label() as usize, n);
        }
    }

    #[test]
    fn clustering_makes_cells_touch() {
        let touching = |c: f64| {
            let s = generate(&small(15, c), 11).unwrap();
            let l = &s.cell_labels;
            let (w, h) = (l.width(), l.height());
            let mut pairs = std::collections::BTreeSet::new();
            for y in 0..h {
                for x in 0..w - 1 {
                    let (a, b) = (l.get(x, y), l.get(x + 1, y));
                    if a != 0 && b != 0 && a != b {
                        pairs.insert((a.min(b), a.max(b)));
                    }
                }
            }
            pairs.len()
        };
        assert!(
            touching(1.0) > touching(0.0),
            "{} vs {}",
            touching(1.0),
            touching(0.0)
        );
    }

    #[test]
    fn cells_are_brighter_than_background() {
        let s = generate(&small(10, 0.0), 3).unwrap();
        let v = s.image.intensity_f32();
        let fg = s.labels.as_slice();
        let mean = |want: bool| {
            let xs: Vec<f64> = v
                .iter()
                .zip(fg)
                .filter(|(_, &l)| (l != 0) == want)
                .map(|(&x, _)| x as f64)
                .collect();
            xs.iter().sum::<f64>() / xs.len() as f64
        };
        assert!(
            mean(true) > mean(false) + 30.0,
            "{} vs {}",
            mean(true),
            mean(false)
        );
    }

    #[test]
    fn too_many_cells_is_a_clear_error() {
        let cfg = CellGenConfig {
            width: 40,
            height: 40,
            count: 500,
            radius_px: 10.0,
            max_attempts_per_cell: 20,
            ..CellGenConfig::default()
        };
        let e = generate(&cfg, 1).unwrap_err();
        assert!(
            matches!(e, SynthError::Crowded { requested: 500, .. }),
            "{e}"
        );
    }

    #[test]
    fn presets_exist_and_validate() {
        for name in CellGenConfig::PRESETS {
            CellGenConfig::preset(name).unwrap().validate().unwrap();
        }
        assert!(CellGenConfig::preset("nope").is_none());
    }

    #[test]
    fn config_rejects_unknown_fields() {
        let e = serde_json::from_str::<CellGenConfig>(r#"{"count": 3, "bogus": 1}"#);
        assert!(e.is_err());
        let c: CellGenConfig = serde_json::from_str(r#"{"count": 3}"#).unwrap();
        assert_eq!(c.count, 3);
        assert_eq!(c.width, 696);
    }
}
