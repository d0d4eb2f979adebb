//! Working buffers: an [`Image`] as f32 samples in its own units, and back.
//!
//! Every perturbation converts the image to [`Planes`] (interleaved f32, same units as the source:
//! 0–255 for 8-bit, 0–65535 for 16-bit, the float values for 32-bit), works there, and converts
//! back by rounding and clipping to the source range. 8- and 16-bit values survive the round trip
//! exactly, so a perturbation that does nothing returns the same image.

use mica_core::{BitDepth, Channels, Image, Pixels};

/// Interleaved f32 samples of an image, with its shape and full-scale value.
#[derive(Debug, Clone)]
pub(crate) struct Planes {
    pub width: usize,
    pub height: usize,
    pub channels: usize,
    pub depth: BitDepth,
    pub data: Vec<f32>,
}

/// The value that stands for full scale at a bit depth: 255, 65535, or 1.0 for float images.
pub fn full_scale(depth: BitDepth) -> f32 {
    match depth {
        BitDepth::U8 => 255.0,
        BitDepth::U16 => 65535.0,
        BitDepth::F32 => 1.0,
    }
}

impl Planes {
    pub fn from_image(img: &Image) -> Planes {
        let n = img.num_pixels() * img.channels().count();
        let px = img.pixels();
        Planes {
            width: img.width() as usize,
            height: img.height() as usize,
            channels: img.channels().count(),
            depth: img.bit_depth(),
            data: (0..n).map(|i| px.get_f32(i)).collect(),
        }
    }

    pub fn full_scale(&self) -> f32 {
        full_scale(self.depth)
    }

    /// Back to an image of the source depth; values are rounded and clipped (8/16-bit) or clipped
    /// to [0, 1] (float).
    pub fn to_image(&self) -> mica_core::Result<Image> {
        let ch = if self.channels == 3 {
            Channels::Rgb
        } else {
            Channels::Gray
        };
        let pixels = match self.depth {
            BitDepth::U8 => Pixels::U8(
                self.data
                    .iter()
                    .map(|&v| v.round().clamp(0.0, 255.0) as u8)
                    .collect(),
            ),
            BitDepth::U16 => Pixels::U16(
                self.data
                    .iter()
                    .map(|&v| v.round().clamp(0.0, 65535.0) as u16)
                    .collect(),
            ),
            BitDepth::F32 => Pixels::F32(
                self.data
                    .iter()
                    .map(|&v| if v.is_nan() { 0.0 } else { v.clamp(0.0, 1.0) })
                    .collect(),
            ),
        };
        Image::new(self.width as u32, self.height as u32, ch, pixels)
    }
}

/// A normalised Gaussian kernel of standard deviation `sigma` (> 0), radius ⌈3σ⌉.
pub(crate) fn gaussian_kernel(sigma: f64) -> Vec<f32> {
    let radius = (3.0 * sigma).ceil().max(1.0) as i64;
    let mut k: Vec<f64> = (-radius..=radius)
        .map(|i| (-(i * i) as f64 / (2.0 * sigma * sigma)).exp())
        .collect();
    let s: f64 = k.iter().sum();
    k.iter_mut().for_each(|v| *v /= s);
    k.into_iter().map(|v| v as f32).collect()
}

/// Separable Gaussian blur of every channel, in place; borders repeat the edge pixel.
pub(crate) fn gaussian_blur(p: &mut Planes, sigma: f64) {
    if sigma <= 0.0 {
        return;
    }
    let k = gaussian_kernel(sigma);
    let r = (k.len() / 2) as i64;
    let (w, h, c) = (p.width, p.height, p.channels);
    let mut tmp = vec![0f32; p.data.len()];
    // Rows.
    for y in 0..h {
        for x in 0..w {
            for ch in 0..c {
                let mut acc = 0f32;
                for (j, kv) in k.iter().enumerate() {
                    let xx = (x as i64 + j as i64 - r).clamp(0, w as i64 - 1) as usize;
                    acc += kv * p.data[(y * w + xx) * c + ch];
                }
                tmp[(y * w + x) * c + ch] = acc;
            }
        }
    }
    // Columns.
    for y in 0..h {
        for x in 0..w {
            for ch in 0..c {
                let mut acc = 0f32;
                for (j, kv) in k.iter().enumerate() {
                    let yy = (y as i64 + j as i64 - r).clamp(0, h as i64 - 1) as usize;
                    acc += kv * tmp[(yy * w + x) * c + ch];
                }
                p.data[(y * w + x) * c + ch] = acc;
            }
        }
    }
}

/// Smooth value noise in about [-1, 1]: random values on a lattice of spacing `scale_px`,
/// interpolated with a smoothstep; two octaves. Deterministic in `(x, y, seed)`.
pub(crate) fn value_noise(x: f64, y: f64, scale_px: f64, seed: u64) -> f64 {
    fn lattice(ix: i64, iy: i64, seed: u64) -> f64 {
        let mut z = seed
            ^ (ix as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ (iy as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }
    fn octave(x: f64, y: f64, s: f64, seed: u64) -> f64 {
        let (fx, fy) = (x / s, y / s);
        let (ix, iy) = (fx.floor() as i64, fy.floor() as i64);
        let (tx, ty) = (fx - ix as f64, fy - iy as f64);
        let sm = |t: f64| t * t * (3.0 - 2.0 * t);
        let (sx, sy) = (sm(tx), sm(ty));
        let a = lattice(ix, iy, seed);
        let b = lattice(ix + 1, iy, seed);
        let c = lattice(ix, iy + 1, seed);
        let d = lattice(ix + 1, iy + 1, seed);
        let top = a + (b - a) * sx;
        let bot = c + (d - c) * sx;
        top + (bot - top) * sy
    }
    let s = scale_px.max(1.0);
    (octave(x, y, s, seed) * 2.0 + octave(x, y, s / 2.0, seed ^ 0x5555)) / 3.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_sums_to_one_and_is_symmetric() {
        let k = gaussian_kernel(2.5);
        let s: f32 = k.iter().sum();
        assert!((s - 1.0).abs() < 1e-5);
        let n = k.len();
        assert!((0..n).all(|i| (k[i] - k[n - 1 - i]).abs() < 1e-7));
        assert_eq!(n, 2 * 8 + 1);
    }

    #[test]
    fn blur_keeps_a_flat_image_flat_and_spreads_a_point() {
        let img = Image::gray8(9, 9, vec![100; 81]).unwrap();
        let mut p = Planes::from_image(&img);
        gaussian_blur(&mut p, 1.5);
        assert_eq!(p.to_image().unwrap(), img);

        let mut v = vec![0u16; 81];
        v[40] = 10000;
        let mut p = Planes::from_image(&Image::gray16(9, 9, v).unwrap());
        gaussian_blur(&mut p, 1.0);
        assert!(p.data[40] < 10000.0 && p.data[41] > 0.0);
        let total: f32 = p.data.iter().sum();
        assert!((total - 10000.0).abs() < 1.0, "mass kept: {total}");
    }

    #[test]
    fn value_noise_is_bounded_and_deterministic() {
        for i in 0..200 {
            let (x, y) = (i as f64 * 1.7, i as f64 * 0.3);
            let v = value_noise(x, y, 8.0, 42);
            assert!((-1.0..=1.0).contains(&v));
            assert_eq!(v, value_noise(x, y, 8.0, 42));
        }
    }
}
