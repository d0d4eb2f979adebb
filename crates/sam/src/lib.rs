//! # mica-sam
//!
//! Segment Anything on candle: MobileSAM (TinyViT encoder) with SAM's prompt encoder and mask
//! decoder, prompted segmentation, and the complete automatic mask generator.
//!
//! Front doors:
//! - [`resolve_weights`] and [`Sam::load`]: find and load a checkpoint of any [`SamModel`]
//!   (MobileSAM, SAM ViT-B/L/H; `--weights`, `MICA_SAM_WEIGHTS`, or the cache directory with a
//!   sha256 check); the model is recognised from the checkpoint's tensors.
//! - [`Sam::embed`] once per image, then [`Sam::predict`] for points, boxes and mask prompts.
//! - [`MaskGenerator`] with an [`AmgConfig`] (presets [`AmgPreset::Standard`] and
//!   [`AmgPreset::Custom`]) for automatic masks; [`SamSegmenter`] wraps it as a
//!   [`mica_core::Segmenter`] with the study's count and foreground rules.
//!
//! ```no_run
//! use mica_sam::{resolve_weights, AmgPreset, ImagePrep, MaskGenerator, Sam, SamModel};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let weights = resolve_weights(SamModel::MobileSam, None)?;
//! let sam = Sam::load(&weights.path, &candle_core::Device::Cpu)?;
//! let image = mica_core::Image::gray8(64, 48, vec![0; 64 * 48])?;
//! let rgb = ImagePrep::default().apply(&image)?;
//! let out = MaskGenerator::new(AmgPreset::Custom.config())?.generate(&sam, &rgb)?;
//! println!("{} masks", out.masks.len());
//! # Ok(()) }
//! ```

pub mod amg;
pub mod embedding_cache;
pub mod error;
mod factored_decoder;
mod image_encoder;
mod kernels;
mod linalg;
mod mask_decoder;
pub mod model;
mod nn;
pub mod prompt_encoder;
pub mod prompt_file;
pub mod prompted;
mod resize;
pub mod rle;
pub mod study;
pub mod tiled;
mod tiny_vit;
mod transformer;
pub mod weights;

pub use amg::{
    paint_labels, AmgConfig, AmgOutput, AmgPreset, AmgTimings, GeneratedMask, MaskGenerator,
    PointPredictor,
};
/// The compute device (re-exported from candle): `Device::Cpu`, or a GPU with the `cuda` feature.
pub use candle_core::Device;
pub use embedding_cache::EmbeddingCache;
pub use error::{Result, SamError};
pub use model::{
    DecodeNeeds, DecoderPath, ImageEmbedding, ImagePrep, PointPrompt, Prediction, Prompt, Sam,
    MASK_THRESHOLD,
};
pub use prompt_encoder::PointLabel;
pub use prompt_file::{NamedPrompt, PromptFiles};
pub use prompted::{PromptKind, PromptSource, PromptedConfig};
pub use rle::{CocoRle, Rle};
pub use study::{
    study_segmentation, SamCount, SamMode, SamSegmenter, BACKGROUND_FRACTION, COUNT_BELOW_25PCT,
    COUNT_MASKS, COUNT_OBJECTS, MIN_IMAGE_SIDE,
};
pub use tiled::{SamTiling, TileLayout};
pub use weights::{
    resolve_weights, ResolvedWeights, SamModel, WeightsOrigin, MOBILE_SAM_SHA256, MOBILE_SAM_URL,
    WEIGHTS_ENV,
};
