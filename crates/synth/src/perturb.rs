//! Perturbations of an [`Image`] with a severity scale, deterministic from a seed, that carry the
//! truth through.
//!
//! Every perturbation works on the image's own values (`M` below is full scale: 255 for 8-bit,
//! 65535 for 16-bit, 1 for float images), per channel, and rounds and clips back to the source
//! depth. `U(a, b)` is a uniform draw, `N(0, s²)` a normal one, both from
//! [`mica_core::rng::SplitMix64`] seeded with the caller's seed (mixed with a constant per kind).
//!
//! | kind | parameter | formula | identity at |
//! |---|---|---|---|
//! | [`Perturbation::Blur`] | diameter `d` px | Gaussian with σ = d/4 (BBBC005 convention), edge pixels repeated | d = 0 |
//! | [`Perturbation::GaussianNoise`] | `sigma_frac` | v + N(0, (sigma_frac·M)²) | 0 |
//! | [`Perturbation::PoissonNoise`] | `sigma_frac_at_full_scale` s | P = 1/s² photons at full scale; v' = Poisson(v·P/M)·M/P (normal approximation for λ ≥ 30); the noise σ at full scale is s·M | 0 |
//! | [`Perturbation::Contrast`] | `factor` f | v' = μ + f·(v − μ), μ = channel mean | f = 1 |
//! | [`Perturbation::Brightness`] | `offset_frac` b | v' = v + b·M | 0 |
//! | [`Perturbation::UnevenIllumination`] | `amplitude_frac` a | v' = v + a·M·(t − ½), t ∈ [0, 1] the position along a random direction (a linear ramp, peak to peak a·M) | 0 |
//! | [`Perturbation::Jpeg`] | `quality` q (1–100) | encode with the `image` crate's baseline JPEG encoder at quality q and decode; 16-bit data is reduced to 8 bits (÷257) for the codec and scaled back (×257) | never (q = 100 is still lossy) |
//! | [`Perturbation::Debris`] | [`DebrisParams`] | specks (disks) and fibres (curved strokes) composited v' = v(1−α) + α·value, α the anti-aliased coverage | density 0 |
//! | [`Perturbation::Scratches`] | [`ScratchParams`] | straight lines across the image, composited like debris | count 0 |
//! | [`Perturbation::InfoBar`] | [`InfoBarParams`] | an SEM-style bar: dark band with pseudo-text and a scale bar, over the bottom rows or appended below | height 0 |
//!
//! Truth: blur, noise, contrast, brightness, illumination, JPEG, debris and scratches leave the
//! truth unchanged (debris and scratches are not objects; an object under debris is still there).
//! An info bar *overlay* hides the rows it covers: label and foreground pixels there become
//! background, objects with no visible pixel left are dropped and the count becomes the number of
//! objects still visible; when only a foreground mask and a count are known, the count stays if no
//! foreground pixel was covered and becomes unknown (`None`) otherwise; with only a count it
//! becomes unknown unless the bar has height 0. An *appended* bar adds rows and leaves the truth
//! valid (masks padded with background).

use crate::error::{check_range, Result, SynthError};
use crate::raster::{gaussian_blur, Planes};
use crate::truth::{Perturbed, Truth};
use mica_core::rng::SplitMix64;
use mica_core::{BinaryMask, Image, LabelImage};
use serde::{Deserialize, Serialize};

/// The kinds of perturbation, for severity sweeps (`PerturbationKind::at`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PerturbationKind {
    Blur,
    GaussianNoise,
    PoissonNoise,
    Contrast,
    Brightness,
    UnevenIllumination,
    Jpeg,
    Debris,
    Scratches,
    InfoBar,
}

impl PerturbationKind {
    /// Every kind, in the order above.
    pub const ALL: [PerturbationKind; 10] = [
        PerturbationKind::Blur,
        PerturbationKind::GaussianNoise,
        PerturbationKind::PoissonNoise,
        PerturbationKind::Contrast,
        PerturbationKind::Brightness,
        PerturbationKind::UnevenIllumination,
        PerturbationKind::Jpeg,
        PerturbationKind::Debris,
        PerturbationKind::Scratches,
        PerturbationKind::InfoBar,
    ];

    /// The kebab-case name used on the command line and in tables.
    pub fn name(self) -> &'static str {
        match self {
            PerturbationKind::Blur => "blur",
            PerturbationKind::GaussianNoise => "gaussian-noise",
            PerturbationKind::PoissonNoise => "poisson-noise",
            PerturbationKind::Contrast => "contrast",
            PerturbationKind::Brightness => "brightness",
            PerturbationKind::UnevenIllumination => "uneven-illumination",
            PerturbationKind::Jpeg => "jpeg",
            PerturbationKind::Debris => "debris",
            PerturbationKind::Scratches => "scratches",
            PerturbationKind::InfoBar => "info-bar",
        }
    }

    /// Parses [`PerturbationKind::name`].
    pub fn from_name(name: &str) -> Option<PerturbationKind> {
        PerturbationKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// What one unit of severity means for this kind.
    pub fn severity_unit(self) -> &'static str {
        match self {
            PerturbationKind::Blur => "Gaussian diameter d in px (sigma = d/4)",
            PerturbationKind::GaussianNoise => "noise sigma in % of full scale",
            PerturbationKind::PoissonNoise => "shot-noise sigma at full scale in % of full scale",
            PerturbationKind::Contrast => "% of contrast removed (factor = 1 - s/100)",
            PerturbationKind::Brightness => "offset in % of full scale",
            PerturbationKind::UnevenIllumination => "ramp peak-to-peak in % of full scale",
            PerturbationKind::Jpeg => "100 - JPEG quality",
            PerturbationKind::Debris => "debris items per 100,000 px",
            PerturbationKind::Scratches => "number of scratches",
            PerturbationKind::InfoBar => "bar height in % of image height",
        }
    }

    /// The perturbation of this kind at `severity` (see [`PerturbationKind::severity_unit`]);
    /// debris, scratches and the info bar use their default shape parameters.
    ///
    /// # Errors
    /// [`SynthError::Param`] when the severity is out of range for the kind.
    pub fn at(self, severity: f64) -> Result<Perturbation> {
        let s = severity;
        let p = match self {
            PerturbationKind::Blur => Perturbation::Blur { diameter_px: s },
            PerturbationKind::GaussianNoise => Perturbation::GaussianNoise {
                sigma_frac: s / 100.0,
            },
            PerturbationKind::PoissonNoise => Perturbation::PoissonNoise {
                sigma_frac_at_full_scale: s / 100.0,
            },
            PerturbationKind::Contrast => Perturbation::Contrast {
                factor: 1.0 - s / 100.0,
            },
            PerturbationKind::Brightness => Perturbation::Brightness {
                offset_frac: s / 100.0,
            },
            PerturbationKind::UnevenIllumination => Perturbation::UnevenIllumination {
                amplitude_frac: s / 100.0,
            },
            PerturbationKind::Jpeg => {
                check_range("jpeg severity", s, 0.0, 99.0)?;
                Perturbation::Jpeg {
                    quality: (100.0 - s).round() as u8,
                }
            }
            PerturbationKind::Debris => Perturbation::Debris(DebrisParams {
                density_per_100k_px: s,
                ..DebrisParams::default()
            }),
            PerturbationKind::Scratches => {
                check_range("scratch severity", s, 0.0, 10_000.0)?;
                Perturbation::Scratches(ScratchParams {
                    count: s.round() as u32,
                    ..ScratchParams::default()
                })
            }
            PerturbationKind::InfoBar => Perturbation::InfoBar(InfoBarParams {
                height_frac: s / 100.0,
                ..InfoBarParams::default()
            }),
        };
        p.validate()?;
        Ok(p)
    }
}

/// Whether debris or scratches are brighter or darker than the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Polarity {
    Bright,
    Dark,
    /// Each item bright or dark with probability ½.
    #[default]
    Mixed,
}

/// Debris: specks and fibres. Sizes in pixels, intensities as fractions of full scale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DebrisParams {
    /// Items per 100,000 px² of image (a 696×520 image is 3.6 × 100,000 px²).
    pub density_per_100k_px: f64,
    /// Share of items that are fibres (the rest are specks).
    pub fibre_fraction: f64,
    /// Speck radius range `[min, max]`, drawn uniformly.
    pub speck_radius_px: [f64; 2],
    /// Fibre length range `[min, max]`.
    pub fibre_length_px: [f64; 2],
    /// Fibre stroke width.
    pub fibre_width_px: f64,
    /// Standard deviation of the fibre's change of direction per pixel of length, radians.
    pub fibre_curvature_rad_per_px: f64,
    pub polarity: Polarity,
    /// Intensity range of bright items.
    pub bright_intensity_frac: [f64; 2],
    /// Intensity range of dark items.
    pub dark_intensity_frac: [f64; 2],
    /// Opacity of every item (1 = fully covers what is under it).
    pub opacity: f64,
}

impl Default for DebrisParams {
    fn default() -> Self {
        DebrisParams {
            density_per_100k_px: 5.0,
            fibre_fraction: 0.3,
            speck_radius_px: [1.5, 6.0],
            fibre_length_px: [20.0, 80.0],
            fibre_width_px: 2.0,
            fibre_curvature_rad_per_px: 0.06,
            polarity: Polarity::Mixed,
            bright_intensity_frac: [0.6, 1.0],
            dark_intensity_frac: [0.0, 0.05],
            opacity: 1.0,
        }
    }
}

/// Scratches: straight lines through the whole image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScratchParams {
    pub count: u32,
    pub width_px: f64,
    pub polarity: Polarity,
    pub bright_intensity_frac: f64,
    pub dark_intensity_frac: f64,
}

impl Default for ScratchParams {
    fn default() -> Self {
        ScratchParams {
            count: 1,
            width_px: 1.5,
            polarity: Polarity::Mixed,
            bright_intensity_frac: 0.9,
            dark_intensity_frac: 0.0,
        }
    }
}

/// Where an info bar goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BarPlacement {
    /// Over the bottom rows (hides them).
    #[default]
    Overlay,
    /// Below the image (adds rows), as on an SEM micrograph.
    Append,
}

/// An SEM-like information bar.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InfoBarParams {
    /// Bar height as a fraction of the image height (NFFA SEM: 168/768 = 0.219).
    pub height_frac: f64,
    pub placement: BarPlacement,
    /// Bar background and text intensities as fractions of full scale.
    pub background_frac: f64,
    pub text_frac: f64,
}

impl Default for InfoBarParams {
    fn default() -> Self {
        InfoBarParams {
            height_frac: 168.0 / 768.0,
            placement: BarPlacement::Overlay,
            background_frac: 0.0,
            text_frac: 1.0,
        }
    }
}

/// One perturbation with its parameters (see the module table for formulas).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Perturbation {
    Blur { diameter_px: f64 },
    GaussianNoise { sigma_frac: f64 },
    PoissonNoise { sigma_frac_at_full_scale: f64 },
    Contrast { factor: f64 },
    Brightness { offset_frac: f64 },
    UnevenIllumination { amplitude_frac: f64 },
    Jpeg { quality: u8 },
    Debris(DebrisParams),
    Scratches(ScratchParams),
    InfoBar(InfoBarParams),
}

fn check_pair(name: &str, r: [f64; 2], lo: f64, hi: f64) -> Result<()> {
    check_range(name, r[0], lo, hi)?;
    check_range(name, r[1], lo, hi)?;
    if r[0] > r[1] {
        return Err(SynthError::param(
            name,
            format!("min {} is above max {}", r[0], r[1]),
        ));
    }
    Ok(())
}

impl Perturbation {
    pub fn kind(&self) -> PerturbationKind {
        match self {
            Perturbation::Blur { .. } => PerturbationKind::Blur,
            Perturbation::GaussianNoise { .. } => PerturbationKind::GaussianNoise,
            Perturbation::PoissonNoise { .. } => PerturbationKind::PoissonNoise,
            Perturbation::Contrast { .. } => PerturbationKind::Contrast,
            Perturbation::Brightness { .. } => PerturbationKind::Brightness,
            Perturbation::UnevenIllumination { .. } => PerturbationKind::UnevenIllumination,
            Perturbation::Jpeg { .. } => PerturbationKind::Jpeg,
            Perturbation::Debris(_) => PerturbationKind::Debris,
            Perturbation::Scratches(_) => PerturbationKind::Scratches,
            Perturbation::InfoBar(_) => PerturbationKind::InfoBar,
        }
    }

    /// Checks every parameter's range.
    ///
    /// # Errors
    /// [`SynthError::Param`] naming the first parameter out of range.
    pub fn validate(&self) -> Result<()> {
        match self {
            Perturbation::Blur { diameter_px } => {
                check_range("diameter_px", *diameter_px, 0.0, 1000.0)
            }
            Perturbation::GaussianNoise { sigma_frac } => {
                check_range("sigma_frac", *sigma_frac, 0.0, 10.0)
            }
            Perturbation::PoissonNoise {
                sigma_frac_at_full_scale,
            } => check_range(
                "sigma_frac_at_full_scale",
                *sigma_frac_at_full_scale,
                0.0,
                10.0,
            ),
            Perturbation::Contrast { factor } => check_range("factor", *factor, 0.0, 100.0),
            Perturbation::Brightness { offset_frac } => {
                check_range("offset_frac", *offset_frac, -1.0, 1.0)
            }
            Perturbation::UnevenIllumination { amplitude_frac } => {
                check_range("amplitude_frac", *amplitude_frac, 0.0, 2.0)
            }
            Perturbation::Jpeg { quality } => check_range("quality", *quality as f64, 1.0, 100.0),
            Perturbation::Debris(d) => {
                check_range("density_per_100k_px", d.density_per_100k_px, 0.0, 100_000.0)?;
                check_range("fibre_fraction", d.fibre_fraction, 0.0, 1.0)?;
                check_pair("speck_radius_px", d.speck_radius_px, 0.0, 10_000.0)?;
                check_pair("fibre_length_px", d.fibre_length_px, 0.0, 100_000.0)?;
                check_range("fibre_width_px", d.fibre_width_px, 0.0, 1000.0)?;
                check_range(
                    "fibre_curvature_rad_per_px",
                    d.fibre_curvature_rad_per_px,
                    0.0,
                    10.0,
                )?;
                check_pair("bright_intensity_frac", d.bright_intensity_frac, 0.0, 1.0)?;
                check_pair("dark_intensity_frac", d.dark_intensity_frac, 0.0, 1.0)?;
                check_range("opacity", d.opacity, 0.0, 1.0)
            }
            Perturbation::Scratches(s) => {
                check_range("width_px", s.width_px, 0.0, 1000.0)?;
                check_range("bright_intensity_frac", s.bright_intensity_frac, 0.0, 1.0)?;
                check_range("dark_intensity_frac", s.dark_intensity_frac, 0.0, 1.0)
            }
            Perturbation::InfoBar(b) => {
                check_range("height_frac", b.height_frac, 0.0, 1.0)?;
                check_range("background_frac", b.background_frac, 0.0, 1.0)?;
                check_range("text_frac", b.text_frac, 0.0, 1.0)
            }
        }
    }

    /// True when the perturbation returns its input unchanged (severity 0).
    pub fn is_identity(&self) -> bool {
        match self {
            Perturbation::Blur { diameter_px } => *diameter_px == 0.0,
            Perturbation::GaussianNoise { sigma_frac } => *sigma_frac == 0.0,
            Perturbation::PoissonNoise {
                sigma_frac_at_full_scale,
            } => *sigma_frac_at_full_scale == 0.0,
            Perturbation::Contrast { factor } => *factor == 1.0,
            Perturbation::Brightness { offset_frac } => *offset_frac == 0.0,
            Perturbation::UnevenIllumination { amplitude_frac } => *amplitude_frac == 0.0,
            Perturbation::Jpeg { .. } => false,
            Perturbation::Debris(d) => d.density_per_100k_px == 0.0 || d.opacity == 0.0,
            Perturbation::Scratches(s) => s.count == 0 || s.width_px == 0.0,
            Perturbation::InfoBar(b) => b.height_frac == 0.0,
        }
    }

    /// Applies the perturbation to `image`, deterministic in `seed`.
    ///
    /// # Errors
    /// [`SynthError::Param`] for parameters out of range, [`SynthError::TruthShape`] when the
    /// truth's masks differ in size from the image, [`SynthError::Jpeg`] when the codec fails.
    pub fn apply(&self, image: &Image, truth: &Truth, seed: u64) -> Result<Perturbed> {
        self.apply_with_texture(image, truth, seed, None)
    }

    /// As [`Perturbation::apply`]; debris takes its intensities from `texture` (tiled, at a random
    /// offset, stretched from its 1st–99th percentile to full scale) instead of its polarity.
    ///
    /// # Errors
    /// As [`Perturbation::apply`].
    pub fn apply_with_texture(
        &self,
        image: &Image,
        truth: &Truth,
        seed: u64,
        texture: Option<&Image>,
    ) -> Result<Perturbed> {
        self.validate()?;
        truth.check_fits(image)?;
        if self.is_identity() {
            return Ok(Perturbed {
                image: image.clone(),
                truth: truth.clone(),
            });
        }
        let mut rng = SplitMix64::new(seed ^ salt(self.kind()));
        let same_truth = |image: Image| Perturbed {
            image,
            truth: truth.clone(),
        };
        let mut p = Planes::from_image(image);
        let m = p.full_scale();
        match self {
            Perturbation::Blur { diameter_px } => {
                gaussian_blur(&mut p, diameter_px / 4.0);
                Ok(same_truth(p.to_image()?))
            }
            Perturbation::GaussianNoise { sigma_frac } => {
                let s = (*sigma_frac * m as f64) as f32;
                p.data
                    .iter_mut()
                    .for_each(|v| *v += s * rng.normal() as f32);
                Ok(same_truth(p.to_image()?))
            }
            Perturbation::PoissonNoise {
                sigma_frac_at_full_scale: s,
            } => {
                let photons = 1.0 / (s * s);
                let per_unit = photons / m as f64;
                p.data.iter_mut().for_each(|v| {
                    let lambda = (*v as f64).max(0.0) * per_unit;
                    *v = (poisson(&mut rng, lambda) / per_unit) as f32;
                });
                Ok(same_truth(p.to_image()?))
            }
            Perturbation::Contrast { factor } => {
                let c = p.channels;
                for ch in 0..c {
                    let n = p.data.len() / c;
                    let mean = p
                        .data
                        .iter()
                        .skip(ch)
                        .step_by(c)
                        .map(|&v| v as f64)
                        .sum::<f64>()
                        / n as f64;
                    for v in p.data.iter_mut().skip(ch).step_by(c) {
                        *v = (mean + factor * (*v as f64 - mean)) as f32;
                    }
                }
                Ok(same_truth(p.to_image()?))
            }
            Perturbation::Brightness { offset_frac } => {
                let o = (*offset_frac * m as f64) as f32;
                p.data.iter_mut().for_each(|v| *v += o);
                Ok(same_truth(p.to_image()?))
            }
            Perturbation::UnevenIllumination { amplitude_frac } => {
                let theta = rng.next_f64() * std::f64::consts::TAU;
                let (dx, dy) = (theta.cos(), theta.sin());
                let (w, h) = (p.width as f64 - 1.0, p.height as f64 - 1.0);
                let proj = [0.0, w * dx, h * dy, w * dx + h * dy];
                let lo = proj.iter().cloned().fold(f64::INFINITY, f64::min);
                let hi = proj.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let span = (hi - lo).max(1e-9);
                let amp = amplitude_frac * m as f64;
                let c = p.channels;
                for y in 0..p.height {
                    for x in 0..p.width {
                        let t = ((x as f64 * dx + y as f64 * dy) - lo) / span;
                        let add = (amp * (t - 0.5)) as f32;
                        for ch in 0..c {
                            p.data[(y * p.width + x) * c + ch] += add;
                        }
                    }
                }
                Ok(same_truth(p.to_image()?))
            }
            Perturbation::Jpeg { quality } => Ok(same_truth(jpeg_round_trip(image, *quality)?)),
            Perturbation::Debris(d) => {
                let tex = texture.map(TextureSampler::new).transpose()?;
                draw_debris(&mut p, d, tex.as_ref(), &mut rng);
                Ok(same_truth(p.to_image()?))
            }
            Perturbation::Scratches(s) => {
                draw_scratches(&mut p, s, &mut rng);
                Ok(same_truth(p.to_image()?))
            }
            Perturbation::InfoBar(b) => info_bar(&p, truth, b, &mut rng),
        }
    }
}

fn salt(kind: PerturbationKind) -> u64 {
    0xA076_1D64_78BD_642F_u64.wrapping_mul(kind as u64 + 1)
}

/// A Poisson deviate with mean `lambda`: Knuth's product method below 30, the rounded normal
/// approximation N(λ, λ) (clipped at 0) from 30 on.
pub(crate) fn poisson(rng: &mut SplitMix64, lambda: f64) -> f64 {
    if lambda <= 0.0 {
        return 0.0;
    }
    if lambda < 30.0 {
        let limit = (-lambda).exp();
        let mut k = 0.0;
        let mut prod = rng.next_f64();
        while prod > limit {
            k += 1.0;
            prod *= rng.next_f64();
        }
        k
    } else {
        (lambda + lambda.sqrt() * rng.normal()).round().max(0.0)
    }
}

fn jpeg_round_trip(image: &Image, quality: u8) -> Result<Image> {
    use image::codecs::jpeg::JpegEncoder;
    use image::ExtendedColorType;
    use mica_core::{BitDepth, Channels, Pixels};
    let (w, h) = (image.width(), image.height());
    let depth = image.bit_depth();
    let m = crate::raster::full_scale(depth);
    let bytes: Vec<u8> = match image.pixels() {
        Pixels::U8(v) => v.clone(),
        other => {
            let n = image.num_pixels() * image.channels().count();
            (0..n)
                .map(|i| (other.get_f32(i) / m * 255.0).round().clamp(0.0, 255.0) as u8)
                .collect()
        }
    };
    let color = match image.channels() {
        Channels::Gray => ExtendedColorType::L8,
        Channels::Rgb => ExtendedColorType::Rgb8,
    };
    let mut buf = Vec::new();
    JpegEncoder::new_with_quality(&mut buf, quality)
        .encode(&bytes, w, h, color)
        .map_err(|e| SynthError::Jpeg(e.to_string()))?;
    let decoded = image::load_from_memory_with_format(&buf, image::ImageFormat::Jpeg)
        .map_err(|e| SynthError::Jpeg(e.to_string()))?;
    let out8 = match image.channels() {
        Channels::Gray => decoded.to_luma8().into_raw(),
        Channels::Rgb => decoded.to_rgb8().into_raw(),
    };
    let pixels = match depth {
        BitDepth::U8 => Pixels::U8(out8),
        BitDepth::U16 => Pixels::U16(out8.iter().map(|&v| v as u16 * 257).collect()),
        BitDepth::F32 => Pixels::F32(out8.iter().map(|&v| v as f32 / 255.0).collect()),
    };
    Ok(Image::new(w, h, image.channels(), pixels)?)
}

/// Intensities drawn from another image, tiled.
struct TextureSampler {
    width: usize,
    height: usize,
    /// Normalised 0..1 intensity.
    values: Vec<f32>,
}

impl TextureSampler {
    fn new(img: &Image) -> Result<TextureSampler> {
        let (lo, hi) = img.percentiles(1.0, 99.0)?;
        let span = (hi - lo).max(f32::EPSILON);
        Ok(TextureSampler {
            width: img.width() as usize,
            height: img.height() as usize,
            values: img
                .intensity_f32()
                .into_iter()
                .map(|v| ((v - lo) / span).clamp(0.0, 1.0))
                .collect(),
        })
    }
    fn at(&self, x: i64, y: i64) -> f32 {
        let xx = x.rem_euclid(self.width as i64) as usize;
        let yy = y.rem_euclid(self.height as i64) as usize;
        self.values[yy * self.width + xx]
    }
}

fn uniform(rng: &mut SplitMix64, r: [f64; 2]) -> f64 {
    r[0] + (r[1] - r[0]) * rng.next_f64()
}

fn is_bright(rng: &mut SplitMix64, pol: Polarity) -> bool {
    match pol {
        Polarity::Bright => true,
        Polarity::Dark => false,
        Polarity::Mixed => rng.next_f64() < 0.5,
    }
}

/// Coverage of a stroke through `points` with radius `r`, composited onto `p`.
fn composite_stroke(
    p: &mut Planes,
    points: &[(f64, f64)],
    radius: f64,
    value: f32,
    opacity: f32,
    tex: Option<(&TextureSampler, i64, i64)>,
) {
    if points.is_empty() {
        return;
    }
    let m = p.full_scale();
    let pad = radius + 1.0;
    let x0 = points.iter().map(|q| q.0).fold(f64::INFINITY, f64::min) - pad;
    let x1 = points.iter().map(|q| q.0).fold(f64::NEG_INFINITY, f64::max) + pad;
    let y0 = points.iter().map(|q| q.1).fold(f64::INFINITY, f64::min) - pad;
    let y1 = points.iter().map(|q| q.1).fold(f64::NEG_INFINITY, f64::max) + pad;
    let xs = x0.floor().max(0.0) as usize;
    let ys = y0.floor().max(0.0) as usize;
    let xe = (x1.ceil() as i64).min(p.width as i64 - 1);
    let ye = (y1.ceil() as i64).min(p.height as i64 - 1);
    if xe < 0 || ye < 0 {
        return;
    }
    let c = p.channels;
    for y in ys..=ye as usize {
        for x in xs..=xe as usize {
            let (fx, fy) = (x as f64, y as f64);
            let mut alpha = 0f64;
            for &(px, py) in points {
                let d = ((fx - px).powi(2) + (fy - py).powi(2)).sqrt();
                alpha = alpha.max((radius + 0.5 - d).clamp(0.0, 1.0));
                if alpha >= 1.0 {
                    break;
                }
            }
            if alpha <= 0.0 {
                continue;
            }
            let a = alpha as f32 * opacity;
            let val = match tex {
                Some((t, ox, oy)) => t.at(x as i64 + ox, y as i64 + oy) * m,
                None => value,
            };
            for ch in 0..c {
                let s = &mut p.data[(y * p.width + x) * c + ch];
                *s = *s * (1.0 - a) + a * val;
            }
        }
    }
}

fn draw_debris(
    p: &mut Planes,
    d: &DebrisParams,
    tex: Option<&TextureSampler>,
    rng: &mut SplitMix64,
) {
    let area = (p.width * p.height) as f64;
    let expected = d.density_per_100k_px * area / 100_000.0;
    // Integer part plus a Bernoulli draw for the fraction, so the mean count is exact.
    let n = expected.floor() as usize + usize::from(rng.next_f64() < expected.fract());
    let m = p.full_scale() as f64;
    for _ in 0..n {
        let bright = is_bright(rng, d.polarity);
        let value = if bright {
            uniform(rng, d.bright_intensity_frac) * m
        } else {
            uniform(rng, d.dark_intensity_frac) * m
        } as f32;
        let cx = rng.next_f64() * p.width as f64;
        let cy = rng.next_f64() * p.height as f64;
        let t = tex.map(|t| {
            (
                t,
                rng.below(t.width as u64) as i64,
                rng.below(t.height as u64) as i64,
            )
        });
        if rng.next_f64() < d.fibre_fraction {
            let len = uniform(rng, d.fibre_length_px);
            let mut theta = rng.next_f64() * std::f64::consts::TAU;
            let (mut x, mut y) = (cx, cy);
            let steps = len.ceil() as usize;
            let mut pts = Vec::with_capacity(steps + 1);
            pts.push((x, y));
            for _ in 0..steps {
                theta += d.fibre_curvature_rad_per_px * rng.normal();
                x += theta.cos();
                y += theta.sin();
                pts.push((x, y));
            }
            composite_stroke(p, &pts, d.fibre_width_px / 2.0, value, d.opacity as f32, t);
        } else {
            let r = uniform(rng, d.speck_radius_px);
            composite_stroke(p, &[(cx, cy)], r, value, d.opacity as f32, t);
        }
    }
}

fn draw_scratches(p: &mut Planes, s: &ScratchParams, rng: &mut SplitMix64) {
    let m = p.full_scale() as f64;
    let c = p.channels;
    for _ in 0..s.count {
        let bright = is_bright(rng, s.polarity);
        let value = if bright {
            s.bright_intensity_frac * m
        } else {
            s.dark_intensity_frac * m
        } as f32;
        let px = rng.next_f64() * p.width as f64;
        let py = rng.next_f64() * p.height as f64;
        let theta = rng.next_f64() * std::f64::consts::PI;
        let (sn, cs) = theta.sin_cos();
        let half = s.width_px / 2.0;
        for y in 0..p.height {
            for x in 0..p.width {
                let d = ((x as f64 - px) * sn - (y as f64 - py) * cs).abs();
                let a = (half + 0.5 - d).clamp(0.0, 1.0) as f32;
                if a <= 0.0 {
                    continue;
                }
                for ch in 0..c {
                    let v = &mut p.data[(y * p.width + x) * c + ch];
                    *v = *v * (1.0 - a) + a * value;
                }
            }
        }
    }
}

/// Draws the bar into rows `top..top + bar_h` of `p` (which must have them).
fn draw_bar(p: &mut Planes, top: usize, bar_h: usize, b: &InfoBarParams, rng: &mut SplitMix64) {
    let m = p.full_scale();
    let (w, c) = (p.width, p.channels);
    let bg = b.background_frac as f32 * m;
    let fg = b.text_frac as f32 * m;
    let set = |p: &mut Planes, x: usize, y: usize, v: f32| {
        if x < w && y >= top && y < top + bar_h {
            for ch in 0..c {
                p.data[(y * w + x) * c + ch] = v;
            }
        }
    };
    for y in top..top + bar_h {
        for x in 0..w {
            set(p, x, y, bg);
        }
    }
    // A frame line on top.
    for x in 0..w {
        set(p, x, top, fg);
    }
    // Two lines of pseudo-text: 5×7 random glyphs, in fields separated by gaps.
    let glyph_h = (bar_h / 4).max(1);
    let cell = (glyph_h as f64 / 7.0).max(1.0 / 7.0);
    let glyph_w = ((5.0 * cell).ceil() as usize).max(1);
    for line in 0..2 {
        let y0 = top + bar_h / 6 + line * (glyph_h + bar_h / 6);
        let mut x0 = w / 40;
        while x0 + glyph_w < w * 3 / 4 {
            let field_len = 3 + rng.below(6) as usize;
            for _ in 0..field_len {
                let bits = rng.next_u64();
                for gy in 0..glyph_h {
                    for gx in 0..glyph_w {
                        let (cx, cy) = ((gx as f64 / cell) as u64, (gy as f64 / cell) as u64);
                        if bits >> ((cy * 5 + cx.min(4)) % 64) & 1 == 1 {
                            set(p, x0 + gx, y0 + gy, fg);
                        }
                    }
                }
                x0 += glyph_w + glyph_w / 3 + 1;
            }
            x0 += 2 * glyph_w;
        }
    }
    // Scale bar: a bright bar with end ticks at the right.
    let sb_len = w / 6;
    let sb_x = w - w / 40 - sb_len;
    let sb_y = top + bar_h * 2 / 3;
    let thick = (bar_h / 20).max(1);
    for y in sb_y..sb_y + thick {
        for x in sb_x..sb_x + sb_len {
            set(p, x, y, fg);
        }
    }
    for y in sb_y.saturating_sub(2 * thick)..sb_y + thick {
        for x in [sb_x, sb_x + sb_len - 1] {
            for t in 0..thick {
                set(p, x + t, y, fg);
            }
        }
    }
}

fn info_bar(
    p: &Planes,
    truth: &Truth,
    b: &InfoBarParams,
    rng: &mut SplitMix64,
) -> Result<Perturbed> {
    let bar_h = ((b.height_frac * p.height as f64).round() as usize).max(1);
    match b.placement {
        BarPlacement::Append => {
            let mut q = p.clone();
            q.height = p.height + bar_h;
            q.data.resize(q.width * q.height * q.channels, 0.0);
            draw_bar(&mut q, p.height, bar_h, b, rng);
            let (w, h) = (q.width as u32, q.height as u32);
            let labels = match &truth.labels {
                Some(l) => {
                    let mut v = l.as_slice().to_vec();
                    v.resize(w as usize * h as usize, 0);
                    Some(LabelImage::new(w, h, v)?)
                }
                None => None,
            };
            let foreground = match &truth.foreground {
                Some(f) => {
                    let mut v = f.as_slice().to_vec();
                    v.resize(w as usize * h as usize, false);
                    Some(BinaryMask::new(w, h, v)?)
                }
                None => None,
            };
            Ok(Perturbed {
                image: q.to_image()?,
                truth: Truth {
                    count: truth.count,
                    labels,
                    foreground,
                },
            })
        }
        BarPlacement::Overlay => {
            let bar_h = bar_h.min(p.height);
            let top = p.height - bar_h;
            let mut q = p.clone();
            draw_bar(&mut q, top, bar_h, b, rng);
            let cut = top * p.width;
            let mut out = Truth::default();
            if let Some(l) = &truth.labels {
                let mut v = l.as_slice().to_vec();
                v[cut..].iter_mut().for_each(|x| *x = 0);
                let kept = LabelImage::new(l.width(), l.height(), v)?.relabel_sequential();
                out.count = Some(kept.num_objects() as f64);
                out.labels = Some(kept);
            }
            if let Some(f) = &truth.foreground {
                let covered = f.as_slice()[cut..].iter().any(|&x| x);
                let mut v = f.as_slice().to_vec();
                v[cut..].iter_mut().for_each(|x| *x = false);
                out.foreground = Some(BinaryMask::new(f.width(), f.height(), v)?);
                if out.count.is_none() && !covered {
                    out.count = truth.count;
                }
            }
            Ok(Perturbed {
                image: q.to_image()?,
                truth: out,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mica_core::Pixels;

    fn ramp8(w: u32, h: u32) -> Image {
        Image::gray8(w, h, (0..w * h).map(|i| (i % 200) as u8 + 20).collect()).unwrap()
    }

    #[test]
    fn blur_sigma_is_a_quarter_of_the_diameter() {
        // A vertical step edge blurred with d = 8 (σ = 2): the 16–84 % rise spans 2σ = 4 px.
        let (w, h) = (64u32, 4u32);
        let data = (0..w * h)
            .map(|i| if i % w < 32 { 0u16 } else { 10000 })
            .collect();
        let img = Image::gray16(w, h, data).unwrap();
        let out = Perturbation::Blur { diameter_px: 8.0 }
            .apply(&img, &Truth::default(), 0)
            .unwrap();
        let Pixels::U16(v) = out.image.pixels() else {
            panic!()
        };
        let row = &v[..w as usize];
        let x16 = row.iter().position(|&x| x as f64 >= 1587.0).unwrap();
        let x84 = row.iter().position(|&x| x as f64 >= 8413.0).unwrap();
        assert!((x84 as i64 - x16 as i64 - 4).abs() <= 1, "{x16}..{x84}");
    }

    #[test]
    fn gaussian_noise_has_the_requested_sigma() {
        let img = Image::gray16(200, 200, vec![30000; 40000]).unwrap();
        let out = Perturbation::GaussianNoise { sigma_frac: 0.01 }
            .apply(&img, &Truth::default(), 3)
            .unwrap();
        let v = out.image.intensity_f32();
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
        let sd =
            (v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
        assert!((sd - 655.35).abs() < 15.0, "sd {sd}");
        assert!((mean - 30000.0).abs() < 10.0);
    }

    #[test]
    fn poisson_noise_variance_scales_with_the_signal() {
        // s = 0.1 → 100 photons at full scale; at half scale λ = 50, σ = √50/100·M.
        let img = Image::gray16(200, 200, vec![32768; 40000]).unwrap();
        let out = Perturbation::PoissonNoise {
            sigma_frac_at_full_scale: 0.1,
        }
        .apply(&img, &Truth::default(), 9)
        .unwrap();
        let v = out.image.intensity_f32();
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
        let sd =
            (v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
        let expect = 50f64.sqrt() / 100.0 * 65535.0;
        assert!((sd / expect - 1.0).abs() < 0.05, "sd {sd} vs {expect}");
        // Small means use the exact sampler: mean and variance of Poisson(3).
        let mut rng = SplitMix64::new(1);
        let xs: Vec<f64> = (0..20000).map(|_| poisson(&mut rng, 3.0)).collect();
        let m = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / xs.len() as f64;
        assert!(
            (m - 3.0).abs() < 0.05 && (var - 3.0).abs() < 0.15,
            "{m} {var}"
        );
    }

    #[test]
    fn contrast_and_brightness_follow_their_formulas() {
        let img = Image::gray8(2, 1, vec![100, 200]).unwrap();
        let c = Perturbation::Contrast { factor: 0.5 }
            .apply(&img, &Truth::default(), 0)
            .unwrap();
        assert_eq!(c.image.pixels(), &Pixels::U8(vec![125, 175]));
        let b = Perturbation::Brightness { offset_frac: 0.2 }
            .apply(&img, &Truth::default(), 0)
            .unwrap();
        assert_eq!(b.image.pixels(), &Pixels::U8(vec![151, 251]));
    }

    #[test]
    fn illumination_ramp_spans_the_amplitude() {
        let img = Image::gray16(50, 40, vec![30000; 2000]).unwrap();
        let out = Perturbation::UnevenIllumination {
            amplitude_frac: 0.2,
        }
        .apply(&img, &Truth::default(), 5)
        .unwrap();
        let (lo, hi) = out.image.min_max();
        assert!(((hi - lo) as f64 - 0.2 * 65535.0).abs() < 2.0, "{lo}..{hi}");
    }

    #[test]
    fn jpeg_low_quality_changes_more_than_high_quality() {
        let img = ramp8(64, 64);
        let err = |q| {
            let out = Perturbation::Jpeg { quality: q }
                .apply(&img, &Truth::default(), 0)
                .unwrap();
            let a = img.intensity_f32();
            let b = out.image.intensity_f32();
            a.iter()
                .zip(&b)
                .map(|(x, y)| (x - y).abs() as f64)
                .sum::<f64>()
                / a.len() as f64
        };
        assert!(err(5) > err(95), "{} vs {}", err(5), err(95));
    }

    #[test]
    fn debris_density_sets_the_number_of_specks() {
        let img = Image::gray8(400, 250, vec![0; 100_000]).unwrap();
        let d = DebrisParams {
            density_per_100k_px: 20.0,
            fibre_fraction: 0.0,
            speck_radius_px: [2.0, 2.0],
            polarity: Polarity::Bright,
            ..DebrisParams::default()
        };
        let out = Perturbation::Debris(d)
            .apply(&img, &Truth::count_only(3.0), 1)
            .unwrap();
        assert_eq!(out.truth.count, Some(3.0));
        let mask = BinaryMask::from_image_above(&out.image, 100.0);
        let n = mask
            .connected_components(mica_core::Connectivity::Eight)
            .num_objects();
        // 20 specks, some may touch or sit on the border.
        assert!((15..=20).contains(&n), "{n}");
    }

    #[test]
    fn textured_debris_takes_the_texture_values() {
        let img = Image::gray8(200, 200, vec![128; 40_000]).unwrap();
        // A 0/200 checkerboard stretches to 0/1, so fully covered pixels become 0 or 255.
        let tex = Image::gray8(
            8,
            8,
            (0..64)
                .map(|i| if (i + i / 8) % 2 == 0 { 0 } else { 200 })
                .collect(),
        )
        .unwrap();
        let d = DebrisParams {
            density_per_100k_px: 200.0,
            polarity: Polarity::Bright,
            ..DebrisParams::default()
        };
        let out = Perturbation::Debris(d)
            .apply_with_texture(&img, &Truth::default(), 4, Some(&tex))
            .unwrap();
        let Pixels::U8(v) = out.image.pixels() else {
            panic!()
        };
        let zeros = v.iter().filter(|&&x| x == 0).count();
        let fulls = v.iter().filter(|&&x| x == 255).count();
        assert!(zeros > 100 && fulls > 100, "{zeros} {fulls}");
    }

    #[test]
    fn overlay_bar_drops_hidden_objects_and_append_keeps_them() {
        let mut l = LabelImage::zeros(20, 20);
        l.set(5, 2, 1); // top, stays visible
        l.set(5, 19, 2); // bottom row, hidden by a 5-row bar
        let truth = Truth::from_labels(l);
        let img = Image::gray8(20, 20, vec![50; 400]).unwrap();
        let bar = InfoBarParams {
            height_frac: 0.25,
            ..InfoBarParams::default()
        };
        let over = Perturbation::InfoBar(bar.clone())
            .apply(&img, &truth, 0)
            .unwrap();
        assert_eq!(over.truth.count, Some(1.0));
        assert_eq!(over.truth.labels.as_ref().unwrap().num_objects(), 1);
        let app = Perturbation::InfoBar(InfoBarParams {
            placement: BarPlacement::Append,
            ..bar
        })
        .apply(&img, &truth, 0)
        .unwrap();
        assert_eq!((app.image.width(), app.image.height()), (20, 25));
        assert_eq!(app.truth.count, Some(2.0));
        // Count-only truth is unknown after an overlay.
        let c = Perturbation::InfoBar(InfoBarParams::default())
            .apply(&img, &Truth::count_only(2.0), 0)
            .unwrap();
        assert_eq!(c.truth.count, None);
    }

    #[test]
    fn severity_names_round_trip_and_validate() {
        for k in PerturbationKind::ALL {
            assert_eq!(PerturbationKind::from_name(k.name()), Some(k));
            assert!(k.at(1.0).is_ok(), "{}", k.name());
        }
        assert!(PerturbationKind::Blur.at(-1.0).is_err());
        assert!(PerturbationKind::Jpeg.at(100.0).is_err());
    }

    #[test]
    fn perturbations_read_from_json_and_reject_unknown_fields() {
        let p: Perturbation =
            serde_json::from_str(r#"{"kind": "debris", "density_per_100k_px": 3.0}"#).unwrap();
        assert_eq!(
            p,
            Perturbation::Debris(DebrisParams {
                density_per_100k_px: 3.0,
                ..DebrisParams::default()
            })
        );
        let b: Perturbation =
            serde_json::from_str(r#"{"kind": "blur", "diameter_px": 4}"#).unwrap();
        assert_eq!(b, Perturbation::Blur { diameter_px: 4.0 });
        assert!(
            serde_json::from_str::<Perturbation>(r#"{"kind": "debris", "densty": 3}"#).is_err()
        );
        let text = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<Perturbation>(&text).unwrap(), p);
    }

    #[test]
    fn truth_of_another_size_is_an_error() {
        let img = Image::gray8(4, 4, vec![0; 16]).unwrap();
        let t = Truth::from_labels(LabelImage::zeros(5, 4));
        let e = Perturbation::Blur { diameter_px: 2.0 }
            .apply(&img, &t, 0)
            .unwrap_err();
        assert!(e.to_string().contains("truth labels"), "{e}");
    }
}
