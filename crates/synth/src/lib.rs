//! # mica-synth
//!
//! Robustness material for mica (issue #8):
//!
//! - [`perturb`]: [`Perturbation`]s of any [`mica_core::Image`] (blur, Gaussian and Poisson noise,
//!   contrast, brightness, uneven illumination, JPEG, debris, scratches, an SEM-like info bar),
//!   each with a severity scale ([`PerturbationKind::at`]) and a documented formula,
//!   deterministic from a seed, carrying the [`Truth`] through.
//! - [`generate`](mod@generate): a SIMCEP-like synthetic cell generator ([`CellGenConfig`], [`generate()`])
//!   giving an image, an **instance** [`mica_core::LabelImage`] and the count.
//! - [`robustness`]: degradation curves of any [`mica_core::Segmenter`] over perturbation ×
//!   severity or crowding, with real images as anchors; serde results, CSV and SVG.
//! - [`compare`]: statistics for comparing generated and real images.
//!
//! ```
//! use mica_synth::{generate, CellGenConfig, PerturbationKind};
//! let cfg = CellGenConfig { width: 128, height: 96, count: 5, radius_px: 8.0, ..CellGenConfig::default() };
//! let scene = generate(&cfg, 42).unwrap();
//! assert_eq!(scene.labels.num_objects(), 5);
//! let blurred = PerturbationKind::Blur.at(8.0).unwrap().apply(&scene.image, &scene.truth(), 1).unwrap();
//! assert_eq!(blurred.truth.count, Some(5.0));
//! ```

pub mod compare;
pub mod crowding;
pub mod error;
pub mod generate;
pub mod perturb;
mod raster;
pub mod robustness;
pub mod truth;

pub use error::{Result, SynthError};
pub use generate::{generate, CellGenConfig, Channel, StainParams, Synthetic};
pub use perturb::{
    BarPlacement, DebrisParams, InfoBarParams, Perturbation, PerturbationKind, Polarity,
    ScratchParams,
};
pub use raster::full_scale;
pub use truth::{Perturbed, Truth};
