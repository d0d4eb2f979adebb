//! Image preparation for a model: crop the SEM information bar, stretch to 8 bits, gray → RGB,
//! resize, encode PNG or JPEG. Only pixels are sent, never a file name (so the `L<d>_` class hint
//! of NFFA names cannot reach a model).

use crate::error::VlmError;
use base64::Engine as _;
use mica_core::{BitDepth, Image, Pixels, ResizeFilter};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::Path;

/// Encoding of the image sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// Lossless; what the model sees is exactly the prepared pixels.
    #[default]
    Png,
    /// Smaller uploads (quality 90).
    Jpeg,
}

/// How to resize before sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Resize {
    /// Keep the size.
    #[default]
    None,
    /// Shrink so the longer side is at most `max_side` (aspect ratio kept).
    Longest { max_side: u32 },
    /// Exactly `width` × `height` (the study resized to 1024×600 for LLaVA).
    Exact { width: u32, height: u32 },
}

/// Preparation settings. Defaults: no crop, percentile stretch 0.5–99.5 % for 16-bit and float
/// images (8-bit images are sent as they are), no resize, PNG.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrepareOptions {
    /// Rows removed from the bottom before anything else (NFFA SEM: 168, the instrument bar of a
    /// 1024×768 image).
    pub crop_bottom_px: u32,
    /// Percentiles mapped to 0 and 255 for images that are not 8-bit.
    pub stretch_low_pct: f64,
    pub stretch_high_pct: f64,
    /// Also stretch 8-bit images (off: the study sent 8-bit SEM images unchanged).
    pub stretch_8bit: bool,
    pub resize: Resize,
    pub encoding: Encoding,
}

impl Default for PrepareOptions {
    fn default() -> Self {
        PrepareOptions {
            crop_bottom_px: 0,
            stretch_low_pct: 0.5,
            stretch_high_pct: 99.5,
            stretch_8bit: false,
            resize: Resize::None,
            encoding: Encoding::Png,
        }
    }
}

/// Rows of the NFFA SEM information bar at the bottom of a 1024×768 image.
pub const NFFA_INFO_BAR_PX: u32 = 168;

/// An encoded image ready to send.
#[derive(Clone, PartialEq)]
pub struct PreparedImage {
    pub bytes: Vec<u8>,
    /// `image/png` or `image/jpeg`.
    pub mime: &'static str,
    pub width: u32,
    pub height: u32,
    /// SHA-256 of `bytes`, hex: the image part of the cache key.
    pub sha256: String,
}

impl std::fmt::Debug for PreparedImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedImage")
            .field("mime", &self.mime)
            .field("width", &self.width)
            .field("height", &self.height)
            .field("bytes", &self.bytes.len())
            .field("sha256", &self.sha256)
            .finish()
    }
}

impl PreparedImage {
    /// The bytes as standard base64 (no line breaks).
    pub fn base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.bytes)
    }

    /// A `data:` URL (OpenAI image input).
    pub fn data_url(&self) -> String {
        format!("data:{};base64,{}", self.mime, self.base64())
    }
}

/// The 8-bit RGB pixels a model will see, before encoding.
///
/// # Errors
/// [`VlmError::Image`] (named `name`) when the crop leaves nothing or a size is invalid.
pub fn prepare_pixels(
    img: &Image,
    opts: &PrepareOptions,
    name: &str,
) -> Result<image::RgbImage, VlmError> {
    let err = |reason: String| VlmError::Image {
        name: name.to_string(),
        reason,
    };
    let mut img = if opts.crop_bottom_px > 0 {
        if opts.crop_bottom_px >= img.height() {
            return Err(err(format!(
                "cannot crop {} bottom rows from an image {} rows high",
                opts.crop_bottom_px,
                img.height()
            )));
        }
        img.crop(0, 0, img.width(), img.height() - opts.crop_bottom_px)
            .map_err(|e| err(e.to_string()))?
    } else {
        img.clone()
    };
    if img.bit_depth() != BitDepth::U8 || opts.stretch_8bit {
        img = img
            .stretch_to_u8(opts.stretch_low_pct, opts.stretch_high_pct)
            .map_err(|e| err(e.to_string()))?;
    }
    let img = img.to_rgb();
    let img = match opts.resize {
        Resize::None => img,
        Resize::Longest { max_side } => {
            if max_side == 0 {
                return Err(err("maximum side 0".into()));
            }
            img.resize_longest(max_side, false, ResizeFilter::Lanczos3)
                .map_err(|e| err(e.to_string()))?
        }
        Resize::Exact { width, height } => img
            .resize(width, height, ResizeFilter::Lanczos3)
            .map_err(|e| err(e.to_string()))?,
    };
    let (w, h) = (img.width(), img.height());
    match img.into_pixels() {
        Pixels::U8(v) => image::RgbImage::from_raw(w, h, v)
            .ok_or_else(|| err("pixel buffer does not match its size".into())),
        _ => Err(err("expected 8-bit pixels after stretching".into())),
    }
}

/// Prepares `img` for sending: [`prepare_pixels`], then PNG or JPEG encoding.
///
/// # Errors
/// As [`prepare_pixels`], or when encoding fails.
pub fn prepare(img: &Image, opts: &PrepareOptions, name: &str) -> Result<PreparedImage, VlmError> {
    let rgb = prepare_pixels(img, opts, name)?;
    encode(&rgb, opts.encoding, name)
}

/// Reads `path` and prepares it; errors name the file.
///
/// # Errors
/// [`VlmError::Image`] when the file cannot be read or decoded, or as [`prepare`].
pub fn prepare_file(path: &Path, opts: &PrepareOptions) -> Result<PreparedImage, VlmError> {
    let name = path.display().to_string();
    let img = read_image(path).map_err(|reason| VlmError::Image {
        name: name.clone(),
        reason,
    })?;
    prepare(&img, opts, &name)
}

fn read_image(path: &Path) -> Result<Image, String> {
    mica_core::io::read_image(path).map_err(|e| e.to_string())
}

/// Encodes 8-bit RGB pixels.
///
/// # Errors
/// [`VlmError::Image`] when the encoder fails.
pub fn encode(
    rgb: &image::RgbImage,
    encoding: Encoding,
    name: &str,
) -> Result<PreparedImage, VlmError> {
    let mut bytes = Vec::new();
    let mut cursor = std::io::Cursor::new(&mut bytes);
    let (res, mime) = match encoding {
        Encoding::Png => (
            rgb.write_to(&mut cursor, image::ImageFormat::Png),
            "image/png",
        ),
        Encoding::Jpeg => {
            let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut cursor, 90);
            (rgb.write_with_encoder(enc), "image/jpeg")
        }
    };
    res.map_err(|e| VlmError::Image {
        name: name.to_string(),
        reason: format!("encoding failed: {e}"),
    })?;
    let sha256 = hex::encode(Sha256::digest(&bytes));
    Ok(PreparedImage {
        bytes,
        mime,
        width: rgb.width(),
        height: rgb.height(),
        sha256,
    })
}

/// The sample id of an image file: its stem without an NFFA `L<d>_` class-hint prefix
/// (`L9_1bf6….jpg` → `1bf6…`), so outputs join with truth tables that never had the prefix.
pub fn sample_id(path: &Path) -> String {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    mica_core::dataset::nffa::strip_class_hint(&stem)
        .0
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_class_hint_only() {
        assert_eq!(sample_id(Path::new("L9abc.png")), "L9abc");
        assert_eq!(sample_id(Path::new("/d/L2_0a7e.jpg")), "0a7e");
    }

    #[test]
    fn sixteen_bit_gray_is_stretched_cropped_and_made_rgb() {
        let data: Vec<u16> = (0..40).map(|i| 1000 + 100 * i).collect();
        let img = Image::gray16(8, 5, data).unwrap();
        let opts = PrepareOptions {
            crop_bottom_px: 1,
            stretch_low_pct: 0.0,
            stretch_high_pct: 100.0,
            ..Default::default()
        };
        let rgb = prepare_pixels(&img, &opts, "x").unwrap();
        assert_eq!(rgb.dimensions(), (8, 4));
        assert_eq!(rgb.get_pixel(0, 0).0, [0, 0, 0]);
        assert_eq!(rgb.get_pixel(7, 3).0, [255, 255, 255]);
        let p = prepare(&img, &opts, "x").unwrap();
        assert_eq!(p.mime, "image/png");
        let back = image::load_from_memory(&p.bytes).unwrap().to_rgb8();
        assert_eq!(back, rgb);
        assert!(prepare(
            &img,
            &PrepareOptions {
                crop_bottom_px: 5,
                ..Default::default()
            },
            "x"
        )
        .is_err());
    }

    #[test]
    fn jpeg_encoding_keeps_size_and_is_close() {
        let img = Image::gray8(16, 8, (0..128).map(|i| (i * 2) as u8).collect()).unwrap();
        let opts = PrepareOptions {
            encoding: Encoding::Jpeg,
            ..Default::default()
        };
        let p = prepare(&img, &opts, "x").unwrap();
        assert_eq!((p.mime, p.width, p.height), ("image/jpeg", 16, 8));
        assert!(p.data_url().starts_with("data:image/jpeg;base64,"));
        let back = image::load_from_memory(&p.bytes).unwrap().to_rgb8();
        let want = prepare_pixels(&img, &opts, "x").unwrap();
        let max_diff = back
            .as_raw()
            .iter()
            .zip(want.as_raw())
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap();
        assert!(max_diff <= 12, "JPEG q90 differs by {max_diff}");
    }

    #[test]
    fn resizes_exactly_and_by_longest_side() {
        let img = Image::gray8(100, 50, vec![7; 5000]).unwrap();
        let r = |resize| {
            prepare_pixels(
                &img,
                &PrepareOptions {
                    resize,
                    ..Default::default()
                },
                "x",
            )
            .unwrap()
            .dimensions()
        };
        assert_eq!(r(Resize::Longest { max_side: 40 }), (40, 20));
        assert_eq!(r(Resize::Longest { max_side: 400 }), (100, 50));
        assert_eq!(
            r(Resize::Exact {
                width: 64,
                height: 30
            }),
            (64, 30)
        );
    }
}
