//! [`Truth`]: what is known about an image (count, instance labels, foreground), carried through
//! perturbations; [`Perturbed`]: an image with the truth that still holds for it.

use crate::error::{Result, SynthError};
use mica_core::{BinaryMask, Image, LabelImage};

/// Ground truth of one image. Any part may be unknown.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Truth {
    /// Number of objects (f64 like `mica_core::dataset::Truth::count`; integral here).
    pub count: Option<f64>,
    /// Instance labels, 0 = background.
    pub labels: Option<LabelImage>,
    /// Foreground mask (BBBC005 gives only this).
    pub foreground: Option<BinaryMask>,
}

impl Truth {
    /// Truth from instance labels: count = number of labels, foreground = labels ≠ 0.
    pub fn from_labels(labels: LabelImage) -> Truth {
        Truth {
            count: Some(labels.num_objects() as f64),
            foreground: Some(labels.foreground()),
            labels: Some(labels),
        }
    }

    /// Only a count is known.
    pub fn count_only(count: f64) -> Truth {
        Truth {
            count: Some(count),
            ..Truth::default()
        }
    }

    /// Checks that the masks have the image's size.
    ///
    /// # Errors
    /// [`SynthError::TruthShape`] naming the mask that differs.
    pub fn check_fits(&self, image: &Image) -> Result<()> {
        let (w, h) = (image.width(), image.height());
        let err = |what, tw, th| SynthError::TruthShape {
            what,
            image_w: w,
            image_h: h,
            truth_w: tw,
            truth_h: th,
        };
        if let Some(l) = &self.labels {
            if (l.width(), l.height()) != (w, h) {
                return Err(err("truth labels", l.width(), l.height()));
            }
        }
        if let Some(m) = &self.foreground {
            if (m.width(), m.height()) != (w, h) {
                return Err(err("truth foreground", m.width(), m.height()));
            }
        }
        Ok(())
    }
}

/// A perturbed image and the truth that holds for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Perturbed {
    pub image: Image,
    pub truth: Truth,
}
