//! # mica-core
//!
//! The base every other mica crate stands on, with no heavy dependencies:
//!
//! - [`Image`]: a 2-D image that keeps its original bit depth (8/16-bit, float; gray or RGB), with
//!   explicit conversions for models ([`Image::stretch_to_u8`], [`Image::to_rgb`], [`Image::resize`]).
//! - [`io`]: reading TIFF (8/16/32-bit, multi-page, LZW/Deflate), PNG and JPEG; writing label TIFFs
//!   that napari and Fiji open, and PNG previews.
//! - [`LabelImage`] (u32, 0 = background) and [`BinaryMask`]: the mask types used everywhere, with
//!   connected components and per-object properties.
//! - [`dataset`]: BBBC005, NFFA-Europe SEM and generic folders or CSV manifests, as samples with
//!   whatever truth exists.
//! - [`Segmenter`]: the capability trait every segmentation method implements.
//!
//! ```
//! use mica_core::{BinaryMask, Connectivity};
//! let m = BinaryMask::new(3, 1, vec![true, false, true]).unwrap();
//! assert_eq!(m.connected_components(Connectivity::Eight).num_objects(), 2);
//! ```

pub mod calibration;
pub mod cpu;
pub mod dataset;
pub mod download;
pub mod error;
pub mod image;
pub mod io;
pub mod mask;
pub mod memory;
pub mod method;
pub mod naming;
pub mod render;
pub mod rng;
pub mod tables;
pub mod task;
pub mod text;

pub use error::{Error, Result};
pub use image::{BitDepth, Channels, Image, Pixels, ResizeFilter};
pub use mask::{
    connected_components, object_properties, BBox, BinaryMask, Connectivity, LabelImage,
    ObjectProps,
};
pub use method::{panic_message, Counter, MethodError, NamedObject, Segmentation, Segmenter};
