//! # mica-classical
//!
//! The classical baseline a biologist would run first, and the yardstick for every model:
//! foreground by threshold, instances by marker-controlled watershed, the count is the number of
//! instances.
//!
//! Stages, each a free function you can call on its own:
//! [`filter`] (Gaussian smoothing, grey-level opening, background subtraction),
//! [`threshold`] (Otsu, Li, triangle over the data's own range, for 8-bit, 16-bit and float data;
//! local mean), [`morphology`] (hole filling, small-object removal), [`distance`] (exact Euclidean
//! distance transform), [`peaks`] (local maxima with a minimum distance), [`watershed`]
//! (priority-queue flooding from markers).
//!
//! The front door is [`Classical`], built from [`Settings`] (serde data) or a [`Preset`], and an
//! implementation of [`mica_core::Segmenter`]:
//!
//! ```
//! use mica_classical::{Classical, Preset};
//! use mica_core::Image;
//! // Two bright squares on a dark background.
//! let (w, h) = (32u32, 16u32);
//! let data = (0..w * h)
//!     .map(|i| {
//!         let (x, y) = (i % w, i / w);
//!         if (4..10).contains(&y) && ((3..9).contains(&x) || (20..26).contains(&x)) { 200 } else { 10 }
//!     })
//!     .collect();
//! let image = Image::gray8(w, h, data).unwrap();
//! let seg = Classical::preset(Preset::Textbook).unwrap().segment_image(&image).unwrap();
//! assert_eq!(seg.count, 2);
//! ```

pub mod distance;
pub mod error;
pub mod filter;
pub mod morphology;
pub mod peaks;
mod pipeline;
pub mod plane;
mod scratch;
pub mod settings;
pub mod threshold;
pub mod tiled;
pub mod watershed;

/// Version of the pipeline's results: raised whenever a change of code changes what the same
/// settings produce on the same image, so studies recompute their classical predictions.
pub const RESULTS_VERSION: u32 = 1;

pub use error::{Error, Result};
pub use pipeline::{Classical, StageTimes, Stages};
pub use plane::Plane;
pub use settings::{
    Background, Flood, Markers, Polarity, Preset, Settings, Split, Threshold, Watershed,
};
pub use tiled::{TiledRun, Tiling};
