//! [`Plane`]: a single-channel f32 image, the working type of every filter in this crate.

use crate::error::{Error, Result};
use mica_core::Image;

/// A width × height grid of f32 values, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Plane {
    pub width: usize,
    pub height: usize,
    pub data: Vec<f32>,
}

impl Plane {
    /// A plane filled with `value`.
    pub fn filled(width: usize, height: usize, value: f32) -> Self {
        Plane {
            width,
            height,
            data: vec![value; width * height],
        }
    }

    /// The intensity of `image` (luma for RGB) in the image's own units.
    ///
    /// # Errors
    /// [`Error::NonFinite`] when a value is NaN or infinite.
    pub fn from_image(image: &Image) -> Result<Self> {
        Plane::from_intensities(
            image.width() as usize,
            image.height() as usize,
            image.intensity_f32(),
        )
    }

    /// A `width × height` plane of intensities, refused when a value is NaN or infinite.
    ///
    /// # Errors
    /// [`Error::NonFinite`] with the number of such values.
    pub fn from_intensities(width: usize, height: usize, data: Vec<f32>) -> Result<Self> {
        let bad = data.iter().filter(|v| !v.is_finite()).count();
        if bad > 0 {
            return Err(Error::NonFinite { count: bad });
        }
        Ok(Plane {
            width,
            height,
            data,
        })
    }

    /// Smallest and largest value.
    pub fn min_max(&self) -> (f32, f32) {
        self.data
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            })
    }

    /// The transposed plane (height × width).
    pub fn transposed(&self) -> Plane {
        let (w, h) = (self.width, self.height);
        let mut out = vec![0.0; w * h];
        const B: usize = 32;
        for by in (0..h).step_by(B) {
            for bx in (0..w).step_by(B) {
                for y in by..(by + B).min(h) {
                    for x in bx..(bx + B).min(w) {
                        out[x * h + y] = self.data[y * w + x];
                    }
                }
            }
        }
        Plane {
            width: h,
            height: w,
            data: out,
        }
    }
}
