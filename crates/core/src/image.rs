//! [`Image`]: a 2-D microscopy image that keeps its original bit depth.
//!
//! Loading never changes the data; conversions for models (contrast stretch to 8 bits, gray to RGB,
//! resizing, cropping) are explicit methods that return a new image.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// Samples per pixel. Alpha is dropped on load (microscopy data has no meaningful alpha).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channels {
    Gray,
    Rgb,
}

impl Channels {
    /// Number of samples per pixel.
    pub fn count(self) -> usize {
        match self {
            Channels::Gray => 1,
            Channels::Rgb => 3,
        }
    }
}

/// Storage type of the samples, i.e. the bit depth of the source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BitDepth {
    U8,
    U16,
    F32,
}

impl BitDepth {
    /// Bits per sample.
    pub fn bits(self) -> u32 {
        match self {
            BitDepth::U8 => 8,
            BitDepth::U16 => 16,
            BitDepth::F32 => 32,
        }
    }
}

/// Interleaved samples (row-major, channels innermost).
#[derive(Debug, Clone, PartialEq)]
pub enum Pixels {
    U8(Vec<u8>),
    U16(Vec<u16>),
    F32(Vec<f32>),
}

impl Pixels {
    fn len(&self) -> usize {
        match self {
            Pixels::U8(v) => v.len(),
            Pixels::U16(v) => v.len(),
            Pixels::F32(v) => v.len(),
        }
    }

    /// Sample `i` as f32 (raw value, not normalised).
    #[inline]
    pub fn get_f32(&self, i: usize) -> f32 {
        match self {
            Pixels::U8(v) => v[i] as f32,
            Pixels::U16(v) => v[i] as f32,
            Pixels::F32(v) => v[i],
        }
    }
}

/// Resampling filter for [`Image::resize`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResizeFilter {
    Nearest,
    #[default]
    Bilinear,
    Bicubic,
    Lanczos3,
}

impl ResizeFilter {
    fn to_image(self) -> image::imageops::FilterType {
        use image::imageops::FilterType;
        match self {
            ResizeFilter::Nearest => FilterType::Nearest,
            ResizeFilter::Bilinear => FilterType::Triangle,
            ResizeFilter::Bicubic => FilterType::CatmullRom,
            ResizeFilter::Lanczos3 => FilterType::Lanczos3,
        }
    }
}

/// A 2-D image, grayscale or RGB, 8-bit, 16-bit or 32-bit float, with its original values.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    width: u32,
    height: u32,
    channels: Channels,
    pixels: Pixels,
}

impl Image {
    /// Builds an image from interleaved samples.
    ///
    /// # Errors
    /// [`Error::Invalid`] when the sample count is not `width * height * channels`, or a side is 0.
    pub fn new(width: u32, height: u32, channels: Channels, pixels: Pixels) -> Result<Self> {
        if width == 0 || height == 0 {
            return Err(Error::Invalid(format!(
                "image of size {width}x{height} is empty"
            )));
        }
        let expected = width as usize * height as usize * channels.count();
        if pixels.len() != expected {
            return Err(Error::Invalid(format!(
                "{width}x{height}x{} image needs {expected} samples, got {}",
                channels.count(),
                pixels.len()
            )));
        }
        Ok(Image {
            width,
            height,
            channels,
            pixels,
        })
    }

    /// An 8-bit grayscale image.
    pub fn gray8(width: u32, height: u32, data: Vec<u8>) -> Result<Self> {
        Self::new(width, height, Channels::Gray, Pixels::U8(data))
    }

    /// A 16-bit grayscale image.
    pub fn gray16(width: u32, height: u32, data: Vec<u16>) -> Result<Self> {
        Self::new(width, height, Channels::Gray, Pixels::U16(data))
    }

    /// A 32-bit float grayscale image.
    pub fn gray_f32(width: u32, height: u32, data: Vec<f32>) -> Result<Self> {
        Self::new(width, height, Channels::Gray, Pixels::F32(data))
    }

    /// An 8-bit RGB image (interleaved).
    pub fn rgb8(width: u32, height: u32, data: Vec<u8>) -> Result<Self> {
        Self::new(width, height, Channels::Rgb, Pixels::U8(data))
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    /// Number of pixels (not samples).
    pub fn num_pixels(&self) -> usize {
        self.width as usize * self.height as usize
    }

    pub fn channels(&self) -> Channels {
        self.channels
    }

    pub fn bit_depth(&self) -> BitDepth {
        match self.pixels {
            Pixels::U8(_) => BitDepth::U8,
            Pixels::U16(_) => BitDepth::U16,
            Pixels::F32(_) => BitDepth::F32,
        }
    }

    pub fn pixels(&self) -> &Pixels {
        &self.pixels
    }

    /// Consumes the image, returning its samples.
    pub fn into_pixels(self) -> Pixels {
        self.pixels
    }

    /// Minimum and maximum sample value over all channels.
    pub fn min_max(&self) -> (f32, f32) {
        let n = self.pixels.len();
        let mut lo = f32::INFINITY;
        let mut hi = f32::NEG_INFINITY;
        for i in 0..n {
            let v = self.pixels.get_f32(i);
            lo = lo.min(v);
            hi = hi.max(v);
        }
        (lo, hi)
    }

    /// Intensity per pixel as f32 in the image's own units: the sample for gray images, the
    /// Rec. 601 luma (0.299 R + 0.587 G + 0.114 B) for RGB images.
    pub fn intensity_f32(&self) -> Vec<f32> {
        match self.channels {
            Channels::Gray => (0..self.num_pixels())
                .map(|i| self.pixels.get_f32(i))
                .collect(),
            Channels::Rgb => (0..self.num_pixels())
                .map(|i| {
                    let r = self.pixels.get_f32(3 * i);
                    let g = self.pixels.get_f32(3 * i + 1);
                    let b = self.pixels.get_f32(3 * i + 2);
                    0.299 * r + 0.587 * g + 0.114 * b
                })
                .collect(),
        }
    }

    /// Every `step`-th pixel in both directions (nearest-neighbour downscaling by an integer
    /// factor, no new values), same depth and channels.
    pub fn subsample(&self, step: u32) -> Image {
        let step = step.max(1);
        let (w, h) = (self.width.div_ceil(step), self.height.div_ceil(step));
        let c = self.channels.count();
        fn pick<T: Copy>(v: &[T], sw: u32, w: u32, h: u32, step: u32, c: usize) -> Vec<T> {
            let mut out = Vec::with_capacity(w as usize * h as usize * c);
            for y in 0..h {
                for x in 0..w {
                    let i = ((y * step) as usize * sw as usize + (x * step) as usize) * c;
                    out.extend_from_slice(&v[i..i + c]);
                }
            }
            out
        }
        let pixels = match &self.pixels {
            Pixels::U8(v) => Pixels::U8(pick(v, self.width, w, h, step, c)),
            Pixels::U16(v) => Pixels::U16(pick(v, self.width, w, h, step, c)),
            Pixels::F32(v) => Pixels::F32(pick(v, self.width, w, h, step, c)),
        };
        Image::new(w, h, self.channels, pixels).expect("sizes follow from the image")
    }

    /// [`Image::intensity_f32`] of the `w × h` rectangle whose top-left pixel is `(x0, y0)`,
    /// row-major. The rectangle must lie inside the image.
    ///
    /// # Panics
    /// When the rectangle reaches outside the image.
    pub fn intensity_f32_rect(&self, x0: u32, y0: u32, w: u32, h: u32) -> Vec<f32> {
        assert!(
            x0 + w <= self.width && y0 + h <= self.height,
            "rectangle {x0},{y0} {w}x{h} outside a {}x{} image",
            self.width,
            self.height
        );
        let mut out = Vec::with_capacity(w as usize * h as usize);
        for y in y0..y0 + h {
            let row = y as usize * self.width as usize;
            for x in x0..x0 + w {
                let i = row + x as usize;
                out.push(match self.channels {
                    Channels::Gray => self.pixels.get_f32(i),
                    Channels::Rgb => {
                        let r = self.pixels.get_f32(3 * i);
                        let g = self.pixels.get_f32(3 * i + 1);
                        let b = self.pixels.get_f32(3 * i + 2);
                        0.299 * r + 0.587 * g + 0.114 * b
                    }
                });
            }
        }
        out
    }

    /// The image as grayscale at its own bit depth (RGB is converted to luma, rounded).
    pub fn to_gray(&self) -> Image {
        if self.channels == Channels::Gray {
            return self.clone();
        }
        let luma = self.intensity_f32();
        let pixels = match self.pixels {
            Pixels::U8(_) => Pixels::U8(
                luma.iter()
                    .map(|&v| v.round().clamp(0.0, 255.0) as u8)
                    .collect(),
            ),
            Pixels::U16(_) => Pixels::U16(
                luma.iter()
                    .map(|&v| v.round().clamp(0.0, 65535.0) as u16)
                    .collect(),
            ),
            Pixels::F32(_) => Pixels::F32(luma),
        };
        Image {
            width: self.width,
            height: self.height,
            channels: Channels::Gray,
            pixels,
        }
    }

    /// The values at the `low_pct` and `high_pct` percentiles (0–100) of all samples.
    ///
    /// # Errors
    /// [`Error::Invalid`] unless `0 <= low_pct < high_pct <= 100`.
    pub fn percentiles(&self, low_pct: f64, high_pct: f64) -> Result<(f32, f32)> {
        if !(0.0..=100.0).contains(&low_pct)
            || !(0.0..=100.0).contains(&high_pct)
            || low_pct >= high_pct
        {
            return Err(Error::Invalid(format!(
                "percentiles must satisfy 0 <= low < high <= 100, got {low_pct} and {high_pct}"
            )));
        }
        let mut v: Vec<f32> = (0..self.pixels.len())
            .map(|i| self.pixels.get_f32(i))
            .collect();
        let idx = |p: f64| -> usize { ((p / 100.0) * (v.len() - 1) as f64).round() as usize };
        let (il, ih) = (idx(low_pct), idx(high_pct));
        let lo = *v.select_nth_unstable_by(il, f32::total_cmp).1;
        let hi = *v.select_nth_unstable_by(ih, f32::total_cmp).1;
        Ok((lo, hi))
    }

    /// Maps `[lo, hi]` linearly to `[0, 255]` (clipping outside), keeping the channels.
    pub fn window_to_u8(&self, lo: f32, hi: f32) -> Image {
        let scale = if hi > lo { 255.0 / (hi - lo) } else { 0.0 };
        let data = (0..self.pixels.len())
            .map(|i| {
                ((self.pixels.get_f32(i) - lo) * scale)
                    .round()
                    .clamp(0.0, 255.0) as u8
            })
            .collect();
        Image {
            width: self.width,
            height: self.height,
            channels: self.channels,
            pixels: Pixels::U8(data),
        }
    }

    /// Percentile contrast stretch to 8 bits: the `low_pct` percentile maps to 0 and the
    /// `high_pct` percentile to 255 (e.g. 0.5 and 99.5). The usual way to show 16-bit data to a model.
    ///
    /// # Errors
    /// As [`Image::percentiles`].
    pub fn stretch_to_u8(&self, low_pct: f64, high_pct: f64) -> Result<Image> {
        let (lo, hi) = self.percentiles(low_pct, high_pct)?;
        Ok(self.window_to_u8(lo, hi))
    }

    /// Converts to 8 bits without changing contrast: 8-bit data unchanged, 16-bit data divided by
    /// 257 (full range to full range), float data clipped to [0, 1] and scaled by 255.
    pub fn to_u8_full_range(&self) -> Image {
        match &self.pixels {
            Pixels::U8(_) => self.clone(),
            Pixels::U16(_) => self.window_to_u8(0.0, 65535.0),
            Pixels::F32(_) => self.window_to_u8(0.0, 1.0),
        }
    }

    /// Gray → RGB by repeating the channel; RGB images are returned unchanged.
    pub fn to_rgb(&self) -> Image {
        if self.channels == Channels::Rgb {
            return self.clone();
        }
        fn rep<T: Copy>(v: &[T]) -> Vec<T> {
            v.iter().flat_map(|&x| [x, x, x]).collect()
        }
        let pixels = match &self.pixels {
            Pixels::U8(v) => Pixels::U8(rep(v)),
            Pixels::U16(v) => Pixels::U16(rep(v)),
            Pixels::F32(v) => Pixels::F32(rep(v)),
        };
        Image {
            width: self.width,
            height: self.height,
            channels: Channels::Rgb,
            pixels,
        }
    }

    /// The sub-image at `(x, y)` of size `width` × `height`.
    ///
    /// # Errors
    /// [`Error::Invalid`] when the rectangle is empty or leaves the image.
    pub fn crop(&self, x: u32, y: u32, width: u32, height: u32) -> Result<Image> {
        if width == 0
            || height == 0
            || x as u64 + width as u64 > self.width as u64
            || y as u64 + height as u64 > self.height as u64
        {
            return Err(Error::Invalid(format!(
                "crop {width}x{height}+{x}+{y} does not fit in a {}x{} image",
                self.width, self.height
            )));
        }
        let c = self.channels.count();
        fn cut<T: Copy>(
            v: &[T],
            iw: usize,
            c: usize,
            x: usize,
            y: usize,
            w: usize,
            h: usize,
        ) -> Vec<T> {
            let mut out = Vec::with_capacity(w * h * c);
            for row in y..y + h {
                let start = (row * iw + x) * c;
                out.extend_from_slice(&v[start..start + w * c]);
            }
            out
        }
        let (iw, xs, ys, ws, hs) = (
            self.width as usize,
            x as usize,
            y as usize,
            width as usize,
            height as usize,
        );
        let pixels = match &self.pixels {
            Pixels::U8(v) => Pixels::U8(cut(v, iw, c, xs, ys, ws, hs)),
            Pixels::U16(v) => Pixels::U16(cut(v, iw, c, xs, ys, ws, hs)),
            Pixels::F32(v) => Pixels::F32(cut(v, iw, c, xs, ys, ws, hs)),
        };
        Ok(Image {
            width,
            height,
            channels: self.channels,
            pixels,
        })
    }

    /// Resamples to exactly `width` × `height` at the same bit depth.
    ///
    /// # Errors
    /// [`Error::Invalid`] when a side is 0.
    pub fn resize(&self, width: u32, height: u32, filter: ResizeFilter) -> Result<Image> {
        use image::{ImageBuffer, Luma, Rgb};
        if width == 0 || height == 0 {
            return Err(Error::Invalid(format!("cannot resize to {width}x{height}")));
        }
        if width == self.width && height == self.height {
            return Ok(self.clone());
        }
        let f = filter.to_image();
        let (w, h) = (self.width, self.height);
        macro_rules! go {
            ($px:ident, $v:expr, $variant:ident) => {{
                let buf: ImageBuffer<$px<_>, Vec<_>> = ImageBuffer::from_raw(w, h, $v.clone())
                    .expect("sample count checked at construction");
                Pixels::$variant(image::imageops::resize(&buf, width, height, f).into_raw())
            }};
        }
        let pixels = match (&self.pixels, self.channels) {
            (Pixels::U8(v), Channels::Gray) => go!(Luma, v, U8),
            (Pixels::U8(v), Channels::Rgb) => go!(Rgb, v, U8),
            (Pixels::U16(v), Channels::Gray) => go!(Luma, v, U16),
            (Pixels::U16(v), Channels::Rgb) => go!(Rgb, v, U16),
            (Pixels::F32(v), Channels::Gray) => go!(Luma, v, F32),
            (Pixels::F32(v), Channels::Rgb) => go!(Rgb, v, F32),
        };
        Ok(Image {
            width,
            height,
            channels: self.channels,
            pixels,
        })
    }

    /// Resizes so that the longer side is `max_side`, keeping the aspect ratio (rounded).
    /// Images already within `max_side` are returned unchanged unless `upscale` is true.
    pub fn resize_longest(
        &self,
        max_side: u32,
        upscale: bool,
        filter: ResizeFilter,
    ) -> Result<Image> {
        let long = self.width.max(self.height);
        if long <= max_side && !upscale {
            return Ok(self.clone());
        }
        let s = max_side as f64 / long as f64;
        let w = ((self.width as f64 * s).round() as u32).max(1);
        let h = ((self.height as f64 * s).round() as u32).max(1);
        self.resize(w, h, filter)
    }

    /// The image as an 8-bit RGB buffer from the `image` crate, for encoders and drawing.
    /// Non-8-bit data is converted with [`Image::to_u8_full_range`]; use
    /// [`Image::stretch_to_u8`] first for contrast.
    pub fn to_rgb8_buffer(&self) -> image::RgbImage {
        let img = self.to_u8_full_range().to_rgb();
        match img.pixels {
            Pixels::U8(v) => {
                image::RgbImage::from_raw(self.width, self.height, v).expect("checked size")
            }
            _ => unreachable!("to_u8_full_range returns 8-bit data"),
        }
    }

    /// Converts an `image` crate image; alpha is dropped, 16-bit and float kept.
    pub fn from_dynamic(img: image::DynamicImage) -> Result<Image> {
        use image::DynamicImage as D;
        let (w, h) = (img.width(), img.height());
        match img {
            D::ImageLuma8(b) => Image::new(w, h, Channels::Gray, Pixels::U8(b.into_raw())),
            D::ImageLumaA8(_) => {
                Image::new(w, h, Channels::Gray, Pixels::U8(img.to_luma8().into_raw()))
            }
            D::ImageLuma16(b) => Image::new(w, h, Channels::Gray, Pixels::U16(b.into_raw())),
            D::ImageLumaA16(_) => Image::new(
                w,
                h,
                Channels::Gray,
                Pixels::U16(img.to_luma16().into_raw()),
            ),
            D::ImageRgb8(b) => Image::new(w, h, Channels::Rgb, Pixels::U8(b.into_raw())),
            D::ImageRgba8(_) => {
                Image::new(w, h, Channels::Rgb, Pixels::U8(img.to_rgb8().into_raw()))
            }
            D::ImageRgb16(b) => Image::new(w, h, Channels::Rgb, Pixels::U16(b.into_raw())),
            D::ImageRgba16(_) => {
                Image::new(w, h, Channels::Rgb, Pixels::U16(img.to_rgb16().into_raw()))
            }
            D::ImageRgb32F(b) => Image::new(w, h, Channels::Rgb, Pixels::F32(b.into_raw())),
            _ => Image::new(w, h, Channels::Rgb, Pixels::F32(img.to_rgb32f().into_raw())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_wrong_sample_count() {
        assert!(Image::gray8(2, 2, vec![0; 3]).is_err());
        assert!(Image::gray8(0, 2, vec![]).is_err());
    }

    #[test]
    fn stretch_maps_percentiles_to_full_range() {
        let data: Vec<u16> = (0..100).map(|i| 1000 + i * 10).collect();
        let img = Image::gray16(10, 10, data).unwrap();
        let s = img.stretch_to_u8(0.0, 100.0).unwrap();
        let Pixels::U8(v) = s.pixels() else { panic!() };
        assert_eq!(v[0], 0);
        assert_eq!(v[99], 255);
        assert!(v.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn gray_to_rgb_repeats_and_back() {
        let img = Image::gray8(2, 1, vec![10, 200]).unwrap();
        let rgb = img.to_rgb();
        assert_eq!(rgb.pixels(), &Pixels::U8(vec![10, 10, 10, 200, 200, 200]));
        assert_eq!(rgb.to_gray(), img);
    }

    #[test]
    fn crop_and_resize_keep_depth() {
        let img = Image::gray16(4, 4, (0..16).collect()).unwrap();
        let c = img.crop(1, 1, 2, 2).unwrap();
        assert_eq!(c.pixels(), &Pixels::U16(vec![5, 6, 9, 10]));
        assert!(img.crop(3, 3, 2, 2).is_err());
        let r = img.resize_longest(8, true, ResizeFilter::Nearest).unwrap();
        assert_eq!(
            (r.width(), r.height(), r.bit_depth()),
            (8, 8, BitDepth::U16)
        );
    }
}
