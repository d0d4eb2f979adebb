//! SAM as a [`mica_core::Segmenter`] with the study's semantics.
//!
//! The study counted the masks of the automatic generator and, for segmentation, dropped masks
//! covering 25 % of the image or more (taken as background) and unioned the rest into the
//! foreground. [`SamSegmenter`] reports both counts: `count` is the number of masks, and the extra
//! count `masks_below_25pct` the number left after dropping the large ones. The label image holds
//! the masks under 25 % of the image, painted largest first.

use crate::amg::{AmgConfig, AmgOutput, MaskGenerator, PointPredictor};
use crate::error::Result;
use crate::model::{DecodeNeeds, ImageEmbedding, ImagePrep, PointPrompt, Prediction, Prompt, Sam};
use crate::prompt_encoder::PointLabel;
use mica_core::{BinaryMask, Image, MethodError, Segmentation, Segmenter};

/// Fraction of the image area at or above which a mask counts as background (the study's rule).
pub const BACKGROUND_FRACTION: f64 = 0.25;
/// Name of the extra count in [`Segmentation::extra_counts`].
pub const COUNT_BELOW_25PCT: &str = "masks_below_25pct";

impl PointPredictor for Sam {
    type Embedding = ImageEmbedding;

    fn embed(&self, rgb8: &Image) -> Result<ImageEmbedding> {
        Sam::embed(self, rgb8)
    }

    fn predict_points(
        &self,
        emb: &ImageEmbedding,
        points: &[[f64; 2]],
        needs: DecodeNeeds,
    ) -> Result<Vec<Prediction>> {
        let prompts: Vec<Prompt> = points
            .iter()
            .map(|p| Prompt {
                points: vec![PointPrompt {
                    x: p[0] as f32,
                    y: p[1] as f32,
                    label: PointLabel::Positive,
                }],
                ..Prompt::default()
            })
            .collect();
        self.predict_filtered(emb, &prompts, true, needs)
    }
}

/// Applies the study's rule to a generator output.
pub fn study_segmentation(out: &AmgOutput) -> Segmentation {
    let limit = BACKGROUND_FRACTION * out.width as f64 * out.height as f64;
    let small = |m: &crate::amg::GeneratedMask| (m.area as f64) < limit;
    let labels = out.label_image(small);
    let mut fg = BinaryMask::empty(out.width, out.height);
    let n_small = out.masks.iter().filter(|m| small(m)).count();
    {
        let (w, h) = (out.width as usize, out.height as usize);
        let d = fg.as_mut_slice();
        for m in out.masks.iter().filter(|m| small(m)) {
            let mut idx = 0usize;
            let mut on = false;
            for &c in &m.segmentation.counts {
                if on {
                    for k in idx..(idx + c as usize).min(w * h) {
                        d[(k % h) * w + k / h] = true;
                    }
                }
                idx += c as usize;
                on = !on;
            }
        }
    }
    Segmentation {
        labels,
        count: out.masks.len(),
        foreground: fg,
        extra_counts: vec![(COUNT_BELOW_25PCT.to_string(), n_small)],
    }
}

/// Automatic mask generation with a loaded model, as a [`Segmenter`].
#[derive(Debug)]
pub struct SamSegmenter {
    sam: Sam,
    generator: MaskGenerator,
    prep: ImagePrep,
    name: String,
}

impl SamSegmenter {
    /// `preset_name` only labels results (e.g. `sam:mobile_sam:custom`).
    ///
    /// # Errors
    /// [`crate::SamError::Invalid`] for an invalid configuration.
    pub fn new(sam: Sam, config: AmgConfig, prep: ImagePrep, preset_name: &str) -> Result<Self> {
        let name = format!("sam:{}:{preset_name}", sam.model());
        Ok(SamSegmenter {
            sam,
            generator: MaskGenerator::new(config)?,
            prep,
            name,
        })
    }

    /// Runs the generator and returns its full output (masks, scores, timings).
    ///
    /// # Errors
    /// Image preparation or model failures.
    pub fn generate(&self, image: &Image) -> Result<AmgOutput> {
        let rgb = self.prep.apply(image)?;
        self.generator.generate(&self.sam, &rgb)
    }
}

impl Segmenter for SamSegmenter {
    fn name(&self) -> String {
        self.name.clone()
    }

    /// The model, the generator's configuration, the image preparation and the study's rules.
    /// The weights file's hash is added by whoever loaded it (it is not kept here).
    fn settings(&self) -> serde_json::Value {
        serde_json::json!({
            "model": self.sam.model().to_string(),
            "amg": self.generator.config(),
            "prep": self.prep,
            "background_fraction": BACKGROUND_FRACTION,
        })
    }

    fn segment(&self, image: &Image) -> std::result::Result<Segmentation, MethodError> {
        let out = self.generate(image)?;
        let t = &out.timings;
        tracing::info!(
            masks = out.masks.len(),
            embed_ms = t.embed_ms.round(),
            decode_ms = t.decode_ms.round(),
            post_ms = t.post_ms.round(),
            batches = t.batches,
            "SAM automatic masks"
        );
        Ok(study_segmentation(&out))
    }
}
