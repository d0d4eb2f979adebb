//! SAM as a [`mica_core::Segmenter`] with the study's semantics.
//!
//! The study counted the masks of the automatic generator and, for segmentation, dropped masks
//! covering 25 % of the image or more (taken as background) and unioned the rest into the
//! foreground. [`SamSegmenter`] reports every count: `count` by its rule, and the extra counts
//! `masks`, `masks_below_25pct` (left after dropping the large ones) and `objects`. The label image holds
//! the masks under 25 % of the image, painted by [`crate::amg::paint_labels`] (one connected
//! object per label). mica's own `count` is the objects of that label image by default
//! ([`SamCount::Objects`]); the study's is [`SamCount::Masks`].

use crate::amg::{AmgConfig, AmgOutput, MaskGenerator, PointPredictor};
use crate::error::Result;
use crate::model::{DecodeNeeds, ImageEmbedding, ImagePrep, PointPrompt, Prediction, Prompt, Sam};
use crate::prompt_encoder::PointLabel;
use crate::prompt_file::PromptFiles;
use crate::prompted::{self, PromptSource, PromptedConfig};
use crate::tiled::SamTiling;
use mica_core::{BinaryMask, Image, MethodError, Segmentation, Segmenter};
use serde::{Deserialize, Serialize};
use std::path::Path;

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

/// What a SAM segmentation's `count` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SamCount {
    /// The objects of the label image (masks under 25 % of the image, painted by
    /// [`crate::amg::paint_labels`]): count = labels = rows of `objects.csv`.
    #[default]
    Objects,
    /// Every mask of the generator, overlapping or not, background included: the study's
    /// definition ("the number of masks").
    Masks,
}

impl SamCount {
    pub fn name(self) -> &'static str {
        match self {
            SamCount::Objects => "objects",
            SamCount::Masks => "masks",
        }
    }

    /// # Errors
    /// [`crate::SamError::Invalid`] listing the names.
    pub fn from_name(s: &str) -> Result<Self> {
        [SamCount::Objects, SamCount::Masks]
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                crate::SamError::Invalid(format!(
                    "unknown SAM count rule {s:?} (known: objects, masks)"
                ))
            })
    }
}

/// Name of the extra count holding every mask (the study's count).
pub const COUNT_MASKS: &str = "masks";
/// Name of the extra count holding the objects of the label image.
pub const COUNT_OBJECTS: &str = "objects";

/// Images smaller than this on a side are refused: SAM upsamples them to 1024 pixels, and the
/// masks of a few pixels it returns there are noise (a 1 × 1 image gave 2,028 masks).
pub const MIN_IMAGE_SIDE: u32 = 16;

/// Applies the study's rules to a generator output: labels and foreground from the masks under
/// 25 % of the image; `count` by `rule`; the other counts as extra counts (`masks`,
/// `masks_below_25pct`, `objects`).
pub fn study_segmentation(out: &AmgOutput, rule: SamCount) -> Segmentation {
    let limit = BACKGROUND_FRACTION * out.width as f64 * out.height as f64;
    let small = |m: &crate::amg::GeneratedMask| (m.area as f64) < limit;
    let kept: Vec<&crate::amg::GeneratedMask> = out.masks.iter().filter(|m| small(m)).collect();
    let painted = crate::amg::paint_labels(out.width, out.height, &kept);
    let labels = painted.labels;
    let mut fg = BinaryMask::empty(out.width, out.height);
    let n_small = kept.len();
    {
        let (w, h) = (out.width as usize, out.height as usize);
        let d = fg.as_mut_slice();
        for m in &kept {
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
    let objects = labels.num_objects();
    Segmentation {
        count: match rule {
            SamCount::Objects => objects,
            SamCount::Masks => out.masks.len(),
        },
        labels,
        foreground: fg,
        extra_counts: vec![
            (COUNT_MASKS.to_string(), out.masks.len()),
            (COUNT_BELOW_25PCT.to_string(), n_small),
            (COUNT_OBJECTS.to_string(), objects),
        ],
        named_objects: Vec::new(),
    }
}

/// How a [`SamSegmenter`] finds its masks.
pub enum SamMode {
    /// The automatic mask generator over a point grid (and crops).
    Grid(MaskGenerator),
    /// One prompt per object a detector finds, then the generator's filters.
    Prompted {
        source: Box<dyn PromptSource>,
        config: PromptedConfig,
    },
    /// Named objects from prompt files (a person's points and boxes), one mask each, unfiltered.
    Objects(PromptFiles),
}

impl std::fmt::Debug for SamMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SamMode::Grid(g) => f.debug_tuple("Grid").field(g.config()).finish(),
            SamMode::Prompted { source, config } => f
                .debug_struct("Prompted")
                .field("source", &source.name())
                .field("config", config)
                .finish(),
            SamMode::Objects(p) => f.debug_tuple("Objects").field(&p.sources()).finish(),
        }
    }
}

/// SAM with a loaded model as a [`Segmenter`]: automatic masks (grid or detector prompts) and
/// the study's rules.
#[derive(Debug)]
pub struct SamSegmenter {
    sam: Sam,
    mode: SamMode,
    prep: ImagePrep,
    count: SamCount,
    tiling: SamTiling,
    name: String,
}

impl SamSegmenter {
    /// Grid generation; `preset_name` only labels results (e.g. `sam:mobile_sam:custom`).
    ///
    /// # Errors
    /// [`crate::SamError::Invalid`] for an invalid configuration.
    pub fn new(sam: Sam, config: AmgConfig, prep: ImagePrep, preset_name: &str) -> Result<Self> {
        let name = format!("sam:{}:{preset_name}", sam.model());
        Ok(SamSegmenter {
            sam,
            mode: SamMode::Grid(MaskGenerator::new(config)?),
            prep,
            count: SamCount::default(),
            tiling: SamTiling::AUTO,
            name,
        })
    }

    /// Masks from the prompts of `source` (e.g. a detector's objects).
    ///
    /// # Errors
    /// [`crate::SamError::Invalid`] for an invalid configuration.
    pub fn prompted(
        sam: Sam,
        source: Box<dyn PromptSource>,
        config: PromptedConfig,
        prep: ImagePrep,
    ) -> Result<Self> {
        config.validate()?;
        let name = format!("sam:{}:prompts:{}", sam.model(), source.name());
        Ok(SamSegmenter {
            sam,
            mode: SamMode::Prompted { source, config },
            prep,
            count: SamCount::default(),
            tiling: SamTiling::AUTO,
            name,
        })
    }

    /// One object per prompt of the prompt files, matched to images by path (see
    /// [`crate::prompt_file`]); segment with [`Segmenter::segment_file`].
    pub fn from_prompt_files(sam: Sam, files: PromptFiles, prep: ImagePrep) -> Self {
        let name = format!("sam:{}:prompt-files", sam.model());
        SamSegmenter {
            sam,
            mode: SamMode::Objects(files),
            prep,
            count: SamCount::Objects,
            tiling: SamTiling::OFF,
            name,
        }
    }

    /// What `count` is (default [`SamCount::Objects`]).
    pub fn with_count(mut self, rule: SamCount) -> Self {
        self.count = rule;
        self
    }

    /// Which images are cut into windows (default [`SamTiling::AUTO`]; see [`crate::tiled`]).
    ///
    /// # Errors
    /// [`crate::SamError::Invalid`] for tiles with prompt files (a person's prompts are made on
    /// the whole image: only `off` is taken) or with the generator's crop layers.
    pub fn with_tiling(mut self, tiling: SamTiling) -> Result<Self> {
        match &self.mode {
            SamMode::Objects(_) if tiling != SamTiling::OFF && tiling != SamTiling::AUTO => {
                return Err(crate::SamError::Invalid(
                    "tiles are for automatic masks (grid or detector prompts); prompts from a \
                     file are decoded on the whole image"
                        .into(),
                ))
            }
            SamMode::Objects(_) => return Ok(self),
            SamMode::Grid(g) if g.config().crop_n_layers > 0 && tiling != SamTiling::OFF => {
                return Err(crate::SamError::Invalid(
                    crate::amg::CROPS_WITH_TILES.into(),
                ))
            }
            _ => {}
        }
        self.tiling = tiling;
        Ok(self)
    }

    pub fn tiling(&self) -> SamTiling {
        self.tiling
    }

    pub fn count_rule(&self) -> SamCount {
        self.count
    }

    pub fn sam(&self) -> &Sam {
        &self.sam
    }

    /// Runs the generator and returns its full output (masks, scores, timings).
    ///
    /// # Errors
    /// An image under [`MIN_IMAGE_SIDE`] on a side, image preparation, the prompt source or
    /// model failures.
    pub fn generate(&self, image: &Image) -> std::result::Result<AmgOutput, MethodError> {
        check_size(image)?;
        let rgb = self.prep.apply(image)?;
        let tiled = self.tiling.applies(image.width(), image.height());
        Ok(match &self.mode {
            SamMode::Grid(g) if tiled => g.generate_tiled(&self.sam, &rgb, &self.tiling)?,
            SamMode::Grid(g) => g.generate(&self.sam, &rgb)?,
            SamMode::Prompted { source, config } => {
                let t = std::time::Instant::now();
                let prompts = source.prompts(image)?;
                let detect_ms = t.elapsed().as_secs_f64() * 1e3;
                let mut out = if tiled {
                    prompted::segment_tiled(&self.sam, &rgb, &prompts, config, &self.tiling)?
                } else {
                    prompted::segment(&self.sam, &rgb, &prompts, config)?
                };
                out.timings.post_ms += detect_ms;
                out
            }
            SamMode::Objects(_) => {
                return Err("prompts from a file are matched to images by path, in the \
                            file's pixel coordinates; this image has no path of its own (e.g. \
                            a cropped region of a dataset's image)"
                    .into())
            }
        })
    }

    /// The named objects of prompt files in the image read from `path`.
    fn segment_objects(
        &self,
        files: &PromptFiles,
        path: &Path,
        image: &Image,
    ) -> std::result::Result<Segmentation, MethodError> {
        check_size(image)?;
        let objects = files.prompts_for(path, image.width(), image.height())?;
        let rgb = self.prep.apply(image)?;
        let prompts: Vec<_> = objects.iter().map(|o| o.prompt.clone()).collect();
        let names: Vec<String> = objects.into_iter().map(|o| o.name).collect();
        let (out, mask_of) = prompted::segment_objects(&self.sam, &rgb, &prompts)?;
        log_timings(&out);
        Ok(prompted::object_segmentation(&out, &mask_of, &names))
    }
}

fn check_size(image: &Image) -> std::result::Result<(), MethodError> {
    if image.width() < MIN_IMAGE_SIDE || image.height() < MIN_IMAGE_SIDE {
        return Err(format!(
            "image is {}x{} pixels; SAM needs at least {MIN_IMAGE_SIDE} on each side",
            image.width(),
            image.height()
        )
        .into());
    }
    Ok(())
}

fn log_timings(out: &AmgOutput) {
    let t = &out.timings;
    tracing::info!(
        masks = out.masks.len(),
        prompts = t.prompts,
        embed_ms = t.embed_ms.round(),
        decode_ms = t.decode_ms.round(),
        post_ms = t.post_ms.round(),
        batches = t.batches,
        windows = t.windows,
        "SAM masks"
    );
}

impl Segmenter for SamSegmenter {
    fn name(&self) -> String {
        self.name.clone()
    }

    /// Measured (`scripts/throughput_bench.sh`, MobileSAM, standard preset, BBBC005 696 × 520):
    /// 0.67 GB peak per process at 1 thread, 1.04 GB at 2. The estimate takes 1 GiB for the
    /// model and its activations, plus the default per-pixel guess for the masks at the image's
    /// size; a tiled image 24 B/px instead (measured on a 4096² mosaic, docs/sam.md: 0.80 GB
    /// peak with detector prompts, about 8 B/px above the small-image peak; the RGB copy, the
    /// label image and its clean-up).
    fn memory_needed(&self, info: &mica_core::io::ImageInfo) -> u64 {
        let per_px = if self.tiling.applies(info.width, info.height) {
            24
        } else {
            48
        };
        (1 << 30) + info.decoded_bytes() + per_px * info.pixels()
    }

    /// The model, the generator's configuration (or the prompt source's and the filters), the
    /// image preparation and the study's rules. The weights file's hash is added by whoever
    /// loaded it (it is not kept here).
    fn settings(&self) -> serde_json::Value {
        let mut s = serde_json::json!({
            "model": self.sam.model().to_string(),
            "prep": self.prep,
            "background_fraction": BACKGROUND_FRACTION,
            "count": self.count,
            "labels": "paint_labels v1 (largest first, one piece per label, min visible 0.5)",
            "min_image_side": MIN_IMAGE_SIDE,
        });
        if !matches!(self.mode, SamMode::Objects(_)) {
            s["tiling"] = serde_json::json!(self.tiling);
        }
        match &self.mode {
            SamMode::Grid(g) => s["amg"] = serde_json::json!(g.config()),
            SamMode::Prompted { source, config } => {
                s["prompts"] = serde_json::json!({
                    "source": source.name(),
                    "source_settings": source.settings(),
                    "filters": config,
                });
            }
            SamMode::Objects(files) => {
                s["prompts"] = serde_json::json!({
                    "files": files
                        .sources()
                        .iter()
                        .map(|(f, sha)| serde_json::json!({"file": f, "sha256": sha}))
                        .collect::<Vec<_>>(),
                    "filters": "none: one mask per named object",
                });
            }
        }
        s
    }

    fn segment(&self, image: &Image) -> std::result::Result<Segmentation, MethodError> {
        let out = self.generate(image)?;
        log_timings(&out);
        Ok(study_segmentation(&out, self.count))
    }

    fn segment_file(
        &self,
        path: &Path,
        image: &Image,
    ) -> std::result::Result<Segmentation, MethodError> {
        match &self.mode {
            SamMode::Objects(files) => self.segment_objects(files, path, image),
            _ => self.segment(image),
        }
    }
}
