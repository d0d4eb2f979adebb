//! Automatic mask generation: prompt SAM with a grid of points over the image (and, optionally,
//! over overlapping crops), keep the masks that are confident and stable, remove duplicates, and
//! clean up small holes and islands. Every option and every step of the reference
//! `SamAutomaticMaskGenerator` (segment_anything / MobileSAM) is implemented, in its order:
//!
//! 1. crop boxes: the whole image, plus `crop_n_layers` layers of `2^i × 2^i` overlapping crops;
//! 2. per crop: embed it once, decode a point grid in batches of `points_per_batch` (3 masks per
//!    point), keep masks with predicted IoU above `pred_iou_thresh` and stability score
//!    (IoU of the masks thresholded at ±`stability_score_offset`) at least
//!    `stability_score_thresh`, drop masks touching an inner crop edge, non-maximum suppression
//!    of boxes within the crop (`box_nms_thresh`, by predicted IoU);
//! 3. across crops: box NMS preferring smaller crops (`crop_nms_thresh`);
//! 4. with `min_mask_region_area > 0`: fill small holes, remove small islands, and NMS again
//!    preferring unchanged masks.
//!
//! The model is anything that implements [`PointPredictor`] ([`crate::Sam`] does), which keeps
//! the generator testable without weights. Post-processing of the masks of a batch runs in
//! parallel; low-resolution logits are resized to the crop only for masks that pass the IoU
//! threshold (the reference resizes all of them first, with the same result).

use crate::error::{Result, SamError};
use crate::mask_decoder::LOW_RES;
use crate::model::{DecodeNeeds, Prediction, MASK_THRESHOLD};
use crate::resize::MaskResizer;
use crate::rle::Rle;
use crate::tiny_vit::INPUT_SIZE;
use mica_core::{BBox, BinaryMask, Connectivity, Image, LabelImage};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// A model that answers single positive point prompts with several masks.
pub trait PointPredictor: Sync {
    /// What is computed once per image (crop).
    type Embedding: Sync;

    /// Embeds an 8-bit RGB image.
    ///
    /// # Errors
    /// Any model failure.
    fn embed(&self, rgb8: &Image) -> Result<Self::Embedding>;

    /// For each point `(x, y)` (pixels of the embedded image), the multimask prediction:
    /// `256 × 256` logits per mask in the padded 1024 frame, and predicted IoUs. Logits may be
    /// left empty for a prompt none of whose IoUs is above `needs.min_iou`, and outside
    /// `needs.low_res_extent` (they are not used).
    ///
    /// # Errors
    /// Any model failure.
    fn predict_points(
        &self,
        emb: &Self::Embedding,
        points: &[[f64; 2]],
        needs: DecodeNeeds,
    ) -> Result<Vec<Prediction>>;
}

/// Settings of the automatic mask generator; defaults are the reference's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AmgConfig {
    /// Points sampled along each side of the image (grid of `n × n`); exactly one of this and
    /// `point_grids` must be set.
    pub points_per_side: Option<usize>,
    /// Explicit point grids in `[0, 1]²`, one per crop layer (`crop_n_layers + 1`).
    pub point_grids: Option<Vec<Vec<[f64; 2]>>>,
    /// Points decoded together (memory/speed trade-off; results do not depend on it).
    pub points_per_batch: usize,
    /// Keep masks whose predicted IoU is above this (0 disables).
    pub pred_iou_thresh: f32,
    /// Keep masks whose stability score is at least this (0 disables).
    pub stability_score_thresh: f32,
    /// Logit offset of the stability score.
    pub stability_score_offset: f32,
    /// Box IoU above which the lower-scoring mask of a crop is dropped.
    pub box_nms_thresh: f32,
    /// Layers of crops (layer i has `(2^i)²` crops); 0 = whole image only.
    pub crop_n_layers: usize,
    /// Box IoU above which duplicates across crops are dropped.
    pub crop_nms_thresh: f32,
    /// Overlap of neighbouring crops, as a fraction of the image's short side (first layer).
    pub crop_overlap_ratio: f64,
    /// Points per side in layer i are divided by `factor^i`.
    pub crop_n_points_downscale_factor: usize,
    /// Holes and islands smaller than this (pixels) are removed; 0 disables.
    pub min_mask_region_area: usize,
}

impl Default for AmgConfig {
    fn default() -> Self {
        AmgConfig {
            points_per_side: Some(32),
            point_grids: None,
            points_per_batch: 64,
            pred_iou_thresh: 0.88,
            stability_score_thresh: 0.95,
            stability_score_offset: 1.0,
            box_nms_thresh: 0.7,
            crop_n_layers: 0,
            crop_nms_thresh: 0.7,
            crop_overlap_ratio: 512.0 / 1500.0,
            crop_n_points_downscale_factor: 1,
            min_mask_region_area: 0,
        }
    }
}

/// Named settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AmgPreset {
    /// The reference defaults.
    Standard,
    /// The study's "custom" settings: pred_iou_thresh 0.98, stability_score_thresh 0.98,
    /// box_nms_thresh 0.90.
    Custom,
}

impl AmgPreset {
    /// Every preset, for help texts.
    pub const ALL: [AmgPreset; 2] = [AmgPreset::Standard, AmgPreset::Custom];

    pub fn name(self) -> &'static str {
        match self {
            AmgPreset::Standard => "standard",
            AmgPreset::Custom => "custom",
        }
    }

    /// Parses a preset name.
    ///
    /// # Errors
    /// [`SamError::Invalid`] listing the known names.
    pub fn from_name(name: &str) -> Result<Self> {
        AmgPreset::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                SamError::Invalid(format!(
                    "unknown SAM preset {name:?} (known: standard, custom)"
                ))
            })
    }

    /// The preset's settings, read from its data file (`crates/sam/presets/*.json`).
    pub fn config(self) -> AmgConfig {
        let text = match self {
            AmgPreset::Standard => include_str!("../presets/standard.json"),
            AmgPreset::Custom => include_str!("../presets/custom.json"),
        };
        // The files are part of the crate and checked by a unit test; the reference defaults are
        // the fallback should one ever fail to parse.
        serde_json::from_str(text).unwrap_or_default()
    }
}

impl AmgConfig {
    /// Checks every setting.
    ///
    /// # Errors
    /// [`SamError::Invalid`] naming the setting and its valid range.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(SamError::Invalid(m));
        match (&self.points_per_side, &self.point_grids) {
            (Some(0), _) => return bad("points_per_side must be at least 1".into()),
            (Some(_), Some(_)) | (None, None) => {
                return bad("exactly one of points_per_side and point_grids must be set".into())
            }
            (None, Some(g)) => {
                if g.len() != self.crop_n_layers + 1 {
                    return bad(format!(
                        "point_grids has {} grids, crop_n_layers {} needs {}",
                        g.len(),
                        self.crop_n_layers,
                        self.crop_n_layers + 1
                    ));
                }
                if g.iter()
                    .flatten()
                    .any(|p| !(0.0..=1.0).contains(&p[0]) || !(0.0..=1.0).contains(&p[1]))
                {
                    return bad("point_grids coordinates must lie in [0, 1]".into());
                }
            }
            (Some(_), None) => {}
        }
        if self.points_per_batch == 0 {
            return bad("points_per_batch must be at least 1".into());
        }
        for (name, v) in [
            ("pred_iou_thresh", self.pred_iou_thresh),
            ("stability_score_thresh", self.stability_score_thresh),
            ("box_nms_thresh", self.box_nms_thresh),
            ("crop_nms_thresh", self.crop_nms_thresh),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return bad(format!("{name} must be in [0, 1], got {v}"));
            }
        }
        if !(self.stability_score_offset >= 0.0 && self.stability_score_offset.is_finite()) {
            return bad(format!(
                "stability_score_offset must be finite and >= 0, got {}",
                self.stability_score_offset
            ));
        }
        if !(0.0..1.0).contains(&self.crop_overlap_ratio) {
            return bad(format!(
                "crop_overlap_ratio must be in [0, 1), got {}",
                self.crop_overlap_ratio
            ));
        }
        if self.crop_n_points_downscale_factor == 0 {
            return bad("crop_n_points_downscale_factor must be at least 1".into());
        }
        if let Some(n) = self.points_per_side {
            let last = n / self
                .crop_n_points_downscale_factor
                .pow(self.crop_n_layers as u32);
            if last == 0 {
                return bad(format!(
                    "points_per_side {n} with downscale factor {} leaves no points in crop layer {}",
                    self.crop_n_points_downscale_factor, self.crop_n_layers
                ));
            }
        }
        Ok(())
    }

    /// The point grid of each crop layer, in `[0, 1]²`.
    pub fn layer_point_grids(&self) -> Vec<Vec<[f64; 2]>> {
        match (&self.point_grids, self.points_per_side) {
            (Some(g), _) => g.clone(),
            (None, Some(n)) => (0..=self.crop_n_layers)
                .map(|i| {
                    let f = self.crop_n_points_downscale_factor.pow(i as u32) as f64;
                    build_point_grid((n as f64 / f) as usize)
                })
                .collect(),
            (None, None) => Vec::new(),
        }
    }
}

/// Upstream `build_point_grid`: `n × n` cell centres, rows outer.
pub fn build_point_grid(n: usize) -> Vec<[f64; 2]> {
    let offset = 1.0 / (2.0 * n as f64);
    let side: Vec<f64> = (0..n)
        .map(|i| {
            if n == 1 {
                offset
            } else {
                offset + (1.0 - 2.0 * offset) * i as f64 / (n - 1) as f64
            }
        })
        .collect();
    side.iter()
        .flat_map(|&y| side.iter().map(move |&x| [x, y]))
        .collect()
}

/// A crop box `[x0, y0, x1, y1]` (end-exclusive) and its layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CropBox {
    pub xyxy: [u32; 4],
    pub layer: usize,
}

/// Upstream `generate_crop_boxes`.
pub fn generate_crop_boxes(
    width: u32,
    height: u32,
    n_layers: usize,
    overlap_ratio: f64,
) -> Vec<CropBox> {
    let mut boxes = vec![CropBox {
        xyxy: [0, 0, width, height],
        layer: 0,
    }];
    let short = width.min(height) as f64;
    let crop_len = |orig: u32, n: u32, overlap: u32| -> u32 {
        ((overlap as f64 * (n as f64 - 1.0) + orig as f64) / n as f64).ceil() as u32
    };
    for layer in 0..n_layers {
        let n = 1u32 << (layer + 1);
        let overlap = (overlap_ratio * short * (2.0 / n as f64)) as u32;
        let cw = crop_len(width, n, overlap);
        let ch = crop_len(height, n, overlap);
        let x0s: Vec<u32> = (0..n).map(|i| (cw - overlap) * i).collect();
        let y0s: Vec<u32> = (0..n).map(|i| (ch - overlap) * i).collect();
        for &x0 in &x0s {
            for &y0 in &y0s {
                boxes.push(CropBox {
                    xyxy: [x0, y0, (x0 + cw).min(width), (y0 + ch).min(height)],
                    layer: layer + 1,
                });
            }
        }
    }
    boxes
}

/// One generated mask, in the original image frame (the reference's output record).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeneratedMask {
    /// The mask, run-length encoded (COCO, uncompressed).
    pub segmentation: Rle,
    /// Foreground pixels.
    pub area: u64,
    /// `[x, y, w, h]` as upstream: `w = max_x - min_x` (inclusive maximum, so one less than the
    /// pixel width).
    pub bbox: [u32; 4],
    pub predicted_iou: f32,
    /// The prompt point `[x, y]`.
    pub point_coords: [f64; 2],
    pub stability_score: f32,
    /// The crop that produced it, `[x, y, w, h]`.
    pub crop_box: [u32; 4],
}

impl GeneratedMask {
    pub fn to_binary_mask(&self) -> BinaryMask {
        self.segmentation.to_mask()
    }
}

/// Time spent per stage, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AmgTimings {
    /// Image preparation and encoder, all crops.
    pub embed_ms: f64,
    /// Prompt decoding, all batches.
    pub decode_ms: f64,
    /// Resizing, thresholds, boxes, RLE, NMS, small-region clean-up.
    pub post_ms: f64,
    /// Number of decoder batches.
    pub batches: usize,
    /// Point prompts decoded.
    pub prompts: usize,
    /// Of those, prompts whose masks were computed (a predicted IoU above `pred_iou_thresh`;
    /// the others' masks would be discarded and are not upscaled).
    pub prompts_upscaled: usize,
    /// Images the encoder embedded: crops, or the windows of a tiled image (1 for a whole
    /// image).
    #[serde(default)]
    pub windows: usize,
}

/// The generator's result for one image.
#[derive(Debug, Clone)]
pub struct AmgOutput {
    pub width: u32,
    pub height: u32,
    pub masks: Vec<GeneratedMask>,
    pub timings: AmgTimings,
}

impl AmgOutput {
    /// Non-overlapping labels, each one connected object (see [`paint_labels`]); `keep` selects
    /// masks.
    pub fn label_image(&self, keep: impl Fn(&GeneratedMask) -> bool) -> LabelImage {
        let masks: Vec<&GeneratedMask> = self.masks.iter().filter(|m| keep(m)).collect();
        paint_labels(self.width, self.height, &masks).labels
    }
}

/// A label image painted from overlapping masks, and what the painting left out.
#[derive(Debug, Clone)]
pub struct PaintedLabels {
    /// Labels 1..=N, each one 8-connected object.
    pub labels: LabelImage,
    /// Masks that got no label: covered by smaller masks for at least
    /// [`MIN_VISIBLE_FRACTION`] of their area (in one piece).
    pub masks_hidden: usize,
    /// Pixels of kept masks that were left as background because they lay in a piece of the mask
    /// cut off from its largest piece by smaller masks.
    pub fragment_pixels: u64,
    /// Per input mask (in the order given): its label, or `None` when it was hidden.
    pub label_of: Vec<Option<u32>>,
}

/// A mask keeps a label only when its largest visible piece holds at least this fraction of its
/// pixels.
pub const MIN_VISIBLE_FRACTION: f64 = 0.5;

/// The painting rule for SAM's overlapping masks (documented in docs/sam.md):
///
/// 1. masks are painted from the largest to the smallest, so a smaller mask lies on top of a
///    larger one it overlaps (ties: the order given);
/// 2. of each mask, only its largest 8-connected visible piece keeps the label; other pieces
///    (ring fragments left around smaller masks) become background;
/// 3. a mask whose largest visible piece holds less than [`MIN_VISIBLE_FRACTION`] of its own
///    pixels is mostly made of the smaller masks drawn over it (a merge of them): it gets no
///    label and its leftover pixels become background;
/// 4. labels are numbered 1..=N in painting order.
///
/// So every label is one connected object, and the number of labels is the number of objects
/// `object_properties` measures.
pub fn paint_labels(width: u32, height: u32, masks: &[&GeneratedMask]) -> PaintedLabels {
    let mut index: Vec<usize> = (0..masks.len()).collect();
    index.sort_by_key(|&i| std::cmp::Reverse(masks[i].area));
    let order: Vec<&GeneratedMask> = index.iter().map(|&i| masks[i]).collect();
    let mut labels = LabelImage::zeros(width, height);
    let h = height as usize;
    let w = width as usize;
    {
        let data = labels.as_mut_slice();
        for (i, m) in order.iter().enumerate() {
            let mut idx = 0usize;
            let mut on = false;
            for &c in &m.segmentation.counts {
                if on {
                    for k in idx..(idx + c as usize).min(w * h) {
                        data[(k % h) * w + k / h] = i as u32 + 1;
                    }
                }
                idx += c as usize;
                on = !on;
            }
        }
    }
    let (mut one_piece, tally) = labels.keep_largest_piece();
    let mut fragment_pixels = 0u64;
    let mut hidden = vec![false; order.len() + 1];
    for (i, m) in order.iter().enumerate() {
        let (kept, cut) = tally.get(i + 1).copied().unwrap_or((0, 0));
        if kept == 0 || (kept as f64) < MIN_VISIBLE_FRACTION * m.area as f64 {
            hidden[i + 1] = true;
        } else {
            fragment_pixels += cut;
        }
    }
    for l in one_piece.as_mut_slice() {
        if hidden[*l as usize] {
            *l = 0;
        }
    }
    // Sequential renumbering keeps the painting order.
    let mut label_of = vec![None; masks.len()];
    let mut next = 0u32;
    for (i, &input) in index.iter().enumerate() {
        if !hidden[i + 1] {
            next += 1;
            label_of[input] = Some(next);
        }
    }
    PaintedLabels {
        labels: one_piece.relabel_sequential(),
        masks_hidden: hidden.iter().filter(|&&h| h).count(),
        fragment_pixels,
        label_of,
    }
}

/// A mask's box as the reference writes it: `[x0, y0, x1, y1]` with *inclusive* maxima
/// (upstream `batched_mask_to_box`), `[x0, y0, x0, y0]` for an empty box at `(x0, y0)` (upstream
/// gives an empty mask `[0, 0, 0, 0]` before it is moved out of its crop). Every box in this
/// crate is a [`BBox`] (end-exclusive); this view exists only for the reference's arithmetic
/// (NMS areas, the crop-edge test, the output `bbox`), so that the masks stay the reference's.
pub(crate) fn ref_xyxy(b: &BBox) -> [f32; 4] {
    if b.x1 <= b.x0 || b.y1 <= b.y0 {
        return [b.x0 as f32, b.y0 as f32, b.x0 as f32, b.y0 as f32];
    }
    [
        b.x0 as f32,
        b.y0 as f32,
        (b.x1 - 1) as f32,
        (b.y1 - 1) as f32,
    ]
}

/// `b` moved by `(dx, dy)`.
pub(crate) fn shifted(b: BBox, dx: u32, dy: u32) -> BBox {
    BBox {
        x0: b.x0 + dx,
        y0: b.y0 + dy,
        x1: b.x1 + dx,
        y1: b.y1 + dy,
    }
}

/// The empty box at the origin (an empty mask's).
pub(crate) const EMPTY_BOX: BBox = BBox {
    x0: 0,
    y0: 0,
    x1: 0,
    y1: 0,
};

/// A mask's box as the reference's output `bbox`, `[x, y, w, h]` of its inclusive-maximum box
/// (upstream `box_xyxy_to_xywh`).
pub(crate) fn mask_box_xywh(b: &BBox) -> [u32; 4] {
    let r = ref_xyxy(b);
    [
        r[0] as u32,
        r[1] as u32,
        (r[2] - r[0]) as u32,
        (r[3] - r[1]) as u32,
    ]
}

/// The box of a mask output record's `bbox` (`[x, y, w, h]`, see [`mask_box_xywh`]).
pub(crate) fn box_of_xywh(b: [u32; 4]) -> BBox {
    BBox {
        x0: b[0],
        y0: b[1],
        x1: b[0] + b[2] + 1,
        y1: b[1] + b[3] + 1,
    }
}

/// A candidate mask while generating, all coordinates in the original frame.
#[derive(Debug, Clone)]
struct Candidate {
    rle: Rle,
    /// The mask's box (empty at the crop's origin for an empty mask).
    bbox: BBox,
    iou: f32,
    stability: f32,
    point: [f64; 2],
    crop: [u32; 4],
}

/// The automatic mask generator.
#[derive(Debug, Clone)]
pub struct MaskGenerator {
    config: AmgConfig,
}

/// The refusal of crop layers together with tiles (the generator's own check, and
/// [`crate::study::SamSegmenter::with_tiling`]'s early one).
pub(crate) const CROPS_WITH_TILES: &str = "crop layers and tiles do not go together (tiles replace crops): turn tiles off (--tile off) or set crop_n_layers to 0";

impl MaskGenerator {
    /// # Errors
    /// [`SamError::Invalid`] when a setting is out of range (see [`AmgConfig::validate`]).
    pub fn new(config: AmgConfig) -> Result<Self> {
        config.validate()?;
        Ok(MaskGenerator { config })
    }

    pub fn config(&self) -> &AmgConfig {
        &self.config
    }

    /// Generates masks for an 8-bit RGB image (see [`crate::ImagePrep`]).
    ///
    /// # Errors
    /// Model failures; [`SamError::Image`] for a crop outside the image (not expected).
    pub fn generate<P: PointPredictor>(&self, model: &P, rgb8: &Image) -> Result<AmgOutput> {
        let cfg = &self.config;
        let (w, h) = (rgb8.width(), rgb8.height());
        let crops = generate_crop_boxes(w, h, cfg.crop_n_layers, cfg.crop_overlap_ratio);
        let grids = cfg.layer_point_grids();
        let mut timings = AmgTimings::default();
        let mut all: Vec<Candidate> = Vec::new();
        for crop in &crops {
            let found = self.process_crop(model, rgb8, crop, &grids[crop.layer], &mut timings)?;
            all.extend(found);
        }
        let t = Instant::now();
        timings.windows = crops.len();
        if crops.len() > 1 {
            let scores: Vec<f32> = all
                .iter()
                .map(|c| {
                    let a = (c.crop[2] - c.crop[0]) as f32 * (c.crop[3] - c.crop[1]) as f32;
                    1.0 / a
                })
                .collect();
            let boxes: Vec<BBox> = all.iter().map(|c| c.bbox).collect();
            let keep = nms(&boxes, &scores, cfg.crop_nms_thresh);
            all = take(all, &keep);
        }
        self.finish(all, timings, t, w, h)
    }

    /// Generates masks for a large image window by window (see [`crate::tiled`]): each window
    /// as one of the reference's crops, each mask kept from the window of the core that holds
    /// its box's centre, then one box non-maximum suppression over the image.
    ///
    /// # Errors
    /// [`SamError::Invalid`] with crop layers (tiles replace them); model failures.
    pub fn generate_tiled<P: PointPredictor>(
        &self,
        model: &P,
        rgb8: &Image,
        tiling: &crate::tiled::SamTiling,
    ) -> Result<AmgOutput> {
        let cfg = &self.config;
        if cfg.crop_n_layers > 0 {
            return Err(SamError::Invalid(CROPS_WITH_TILES.into()));
        }
        let (w, h) = (rgb8.width(), rgb8.height());
        let layout = tiling.layout(w, h);
        let tiles = layout.tiles();
        let grid = &cfg.layer_point_grids()[0];
        let mut timings = AmgTimings::default();
        let mut all: Vec<Candidate> = Vec::new();
        for (i, tile) in tiles.iter().enumerate() {
            let crop = CropBox {
                xyxy: tile.window,
                layer: 0,
            };
            let found = self.process_crop(model, rgb8, &crop, grid, &mut timings)?;
            all.extend(found.into_iter().filter(|c| {
                let b = ref_xyxy(&c.bbox);
                let centre = ((b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0);
                layout.owner(centre.0 as f64, centre.1 as f64) == i
            }));
        }
        let t = Instant::now();
        timings.windows = tiles.len();
        let boxes: Vec<BBox> = all.iter().map(|c| c.bbox).collect();
        let scores: Vec<f32> = all.iter().map(|c| c.iou).collect();
        let keep = nms(&boxes, &scores, cfg.box_nms_thresh);
        all = take(all, &keep);
        self.finish(all, timings, t, w, h)
    }

    /// Small-region clean-up and the output records.
    fn finish(
        &self,
        mut all: Vec<Candidate>,
        mut timings: AmgTimings,
        t: Instant,
        w: u32,
        h: u32,
    ) -> Result<AmgOutput> {
        let cfg = &self.config;
        if cfg.min_mask_region_area > 0 {
            all = postprocess_small_regions(
                all,
                cfg.min_mask_region_area,
                cfg.box_nms_thresh.max(cfg.crop_nms_thresh),
            );
        }
        let masks = all
            .into_iter()
            .map(|c| GeneratedMask {
                area: c.rle.area(),
                segmentation: c.rle,
                bbox: mask_box_xywh(&c.bbox),
                predicted_iou: c.iou,
                point_coords: c.point,
                stability_score: c.stability,
                crop_box: [
                    c.crop[0],
                    c.crop[1],
                    c.crop[2] - c.crop[0],
                    c.crop[3] - c.crop[1],
                ],
            })
            .collect();
        timings.post_ms += t.elapsed().as_secs_f64() * 1e3;
        Ok(AmgOutput {
            width: w,
            height: h,
            masks,
            timings,
        })
    }

    fn process_crop<P: PointPredictor>(
        &self,
        model: &P,
        image: &Image,
        crop: &CropBox,
        grid: &[[f64; 2]],
        timings: &mut AmgTimings,
    ) -> Result<Vec<Candidate>> {
        let cfg = &self.config;
        let [x0, y0, x1, y1] = crop.xyxy;
        let (cw, ch) = (x1 - x0, y1 - y0);
        let t = Instant::now();
        let cropped = if (x0, y0, cw, ch) == (0, 0, image.width(), image.height()) {
            image.clone()
        } else {
            image.crop(x0, y0, cw, ch)?
        };
        let emb = model.embed(&cropped)?;
        timings.embed_ms += t.elapsed().as_secs_f64() * 1e3;
        let resizer = MaskResizer::new(cw as usize, ch as usize, INPUT_SIZE, LOW_RES);
        let points: Vec<[f64; 2]> = grid
            .iter()
            .map(|p| [p[0] * cw as f64, p[1] * ch as f64])
            .collect();
        let orig = [image.width(), image.height()];
        let mut found: Vec<Candidate> = Vec::new();
        for batch in points.chunks(cfg.points_per_batch) {
            let t = Instant::now();
            let needs = DecodeNeeds {
                min_iou: (cfg.pred_iou_thresh > 0.0).then_some(cfg.pred_iou_thresh),
                low_res_extent: Some(resizer.low_res_extent()),
            };
            let preds = model.predict_points(&emb, batch, needs)?;
            timings.decode_ms += t.elapsed().as_secs_f64() * 1e3;
            timings.batches += 1;
            timings.prompts += preds.len();
            timings.prompts_upscaled += preds
                .iter()
                .filter(|p| !p.low_res_logits.is_empty())
                .count();
            let t = Instant::now();
            let jobs: Vec<(usize, usize)> = preds
                .iter()
                .enumerate()
                .flat_map(|(p, pr)| (0..pr.len()).map(move |k| (p, k)))
                .collect();
            let kept: Vec<Candidate> = jobs
                .par_iter()
                .filter_map(|&(p, k)| {
                    self.process_mask(&preds[p], k, batch[p], &resizer, crop.xyxy, orig)
                })
                .collect();
            found.extend(kept);
            timings.post_ms += t.elapsed().as_secs_f64() * 1e3;
        }
        let t = Instant::now();
        let boxes: Vec<BBox> = found.iter().map(|c| c.bbox).collect();
        let scores: Vec<f32> = found.iter().map(|c| c.iou).collect();
        let keep = nms(&boxes, &scores, cfg.box_nms_thresh);
        let found = take(found, &keep);
        timings.post_ms += t.elapsed().as_secs_f64() * 1e3;
        Ok(found)
    }

    /// Upstream `_process_batch` for one mask: thresholds, box, crop-edge filter, uncrop.
    fn process_mask(
        &self,
        pred: &Prediction,
        k: usize,
        point: [f64; 2],
        resizer: &MaskResizer,
        crop: [u32; 4],
        orig: [u32; 2],
    ) -> Option<Candidate> {
        let cfg = &self.config;
        let iou = pred.iou[k];
        // NaN scores fail the thresholds, as in the reference.
        if cfg.pred_iou_thresh > 0.0
            && iou.partial_cmp(&cfg.pred_iou_thresh) != Some(std::cmp::Ordering::Greater)
        {
            return None;
        }
        // The stability score and the mask need only which side of three thresholds each
        // full-resolution logit falls on: the spans of the resizer skip the values that their
        // low-resolution neighbourhood already decides (most of them), with the same result.
        let logits = pred.logits(k);
        let hi = MASK_THRESHOLD + cfg.stability_score_offset;
        let lo = MASK_THRESHOLD - cfg.stability_score_offset;
        let ([inter, union], runs) = resizer.count_and_mask(logits, [hi, lo], MASK_THRESHOLD);
        let stability = inter as f32 / union as f32;
        if cfg.stability_score_thresh > 0.0
            && !matches!(
                stability.partial_cmp(&cfg.stability_score_thresh),
                Some(std::cmp::Ordering::Greater | std::cmp::Ordering::Equal)
            )
        {
            return None;
        }
        let (cw, ch) = (resizer.width(), resizer.height());
        let mask = runs.to_mask();
        let [cx0, cy0, cx1, cy1] = crop;
        let bbox = shifted(runs.bbox().unwrap_or(EMPTY_BOX), cx0, cy0);
        // Upstream `is_box_near_crop_edge`, atol 20, on its inclusive-maximum box.
        let ref_box = ref_xyxy(&bbox);
        let crop_f = [cx0 as f32, cy0 as f32, cx1 as f32, cy1 as f32];
        let orig_f = [0.0, 0.0, orig[0] as f32, orig[1] as f32];
        let near = (0..4).any(|i| {
            (ref_box[i] - crop_f[i]).abs() <= 20.0 && (ref_box[i] - orig_f[i]).abs() > 20.0
        });
        if near {
            return None;
        }
        let rle = if [cw as u32, ch as u32] == orig {
            Rle::from_row_major(orig[0], orig[1], &mask)
        } else {
            // The crop's mask in the original frame.
            Rle::from_row_major(cw as u32, ch as u32, &mask).placed(orig[0], orig[1], cx0, cy0)
        };
        Some(Candidate {
            rle,
            bbox,
            iou,
            stability,
            point: [point[0] + cx0 as f64, point[1] + cy0 as f64],
            crop,
        })
    }
}

fn take(v: Vec<Candidate>, keep: &[usize]) -> Vec<Candidate> {
    let mut slots: Vec<Option<Candidate>> = v.into_iter().map(Some).collect();
    keep.iter().filter_map(|&i| slots[i].take()).collect()
}

/// Greedy non-maximum suppression (torchvision `nms`): indices kept, by decreasing score (ties by
/// index); a box is dropped when its IoU with a kept box is above `iou_thresh`. Areas and
/// overlaps are the reference's, on inclusive-maximum boxes ([`ref_xyxy`]):
/// `(x1 - x0) · (y1 - y0)`.
pub fn nms(boxes: &[BBox], scores: &[f32], iou_thresh: f32) -> Vec<usize> {
    let boxes: Vec<[f32; 4]> = boxes.iter().map(ref_xyxy).collect();
    let mut order: Vec<usize> = (0..boxes.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    let area = |b: &[f32; 4]| (b[2] - b[0]) * (b[3] - b[1]);
    let mut suppressed = vec![false; boxes.len()];
    let mut keep = Vec::new();
    for (oi, &i) in order.iter().enumerate() {
        if suppressed[i] {
            continue;
        }
        keep.push(i);
        let bi = &boxes[i];
        for &j in &order[oi + 1..] {
            if suppressed[j] {
                continue;
            }
            let bj = &boxes[j];
            let iw = (bi[2].min(bj[2]) - bi[0].max(bj[0])).max(0.0);
            let ih = (bi[3].min(bj[3]) - bi[1].max(bj[1])).max(0.0);
            let inter = iw * ih;
            let iou = inter / (area(bi) + area(bj) - inter);
            if iou > iou_thresh {
                suppressed[j] = true;
            }
        }
    }
    keep
}

/// Which kind of small region [`remove_small_regions`] removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegionKind {
    /// Background components inside or outside the mask smaller than the area are filled.
    Holes,
    /// Foreground components smaller than the area are removed (the largest is kept if all
    /// are small).
    Islands,
}

/// Upstream `remove_small_regions` (8-connectivity); returns the mask and whether it changed.
pub fn remove_small_regions(
    mask: &BinaryMask,
    area: usize,
    kind: RegionKind,
) -> (BinaryMask, bool) {
    let holes = kind == RegionKind::Holes;
    let working = BinaryMask::new(
        mask.width(),
        mask.height(),
        mask.as_slice().iter().map(|&v| v != holes).collect(),
    )
    .unwrap_or_else(|_| mask.clone());
    let labels = working.connected_components(Connectivity::Eight);
    let n = labels.max_label() as usize;
    let mut sizes = vec![0usize; n + 1];
    for &l in labels.as_slice() {
        sizes[l as usize] += 1;
    }
    let small: Vec<bool> = (0..=n).map(|l| l > 0 && sizes[l] < area).collect();
    if !small.iter().any(|&s| s) {
        return (mask.clone(), false);
    }
    // Labels whose pixels end up in the mask.
    let mut fill = vec![false; n + 1];
    if holes {
        fill[0] = true;
        fill[1..=n].copy_from_slice(&small[1..=n]);
    } else {
        for l in 1..=n {
            fill[l] = !small[l];
        }
        if !fill.iter().any(|&f| f) {
            let largest = (1..=n)
                .max_by_key(|&l| (sizes[l], std::cmp::Reverse(l)))
                .unwrap_or(1);
            fill[largest] = true;
        }
    }
    let data = labels
        .as_slice()
        .iter()
        .map(|&l| fill[l as usize])
        .collect();
    let out = BinaryMask::new(mask.width(), mask.height(), data).unwrap_or_else(|_| mask.clone());
    (out, true)
}

/// The box of a mask, [`EMPTY_BOX`] when the mask is empty.
fn mask_box(m: &BinaryMask) -> BBox {
    let (w, h) = (m.width() as usize, m.height() as usize);
    let s = m.as_slice();
    let mut b = [usize::MAX, usize::MAX, 0, 0];
    for y in 0..h {
        for x in 0..w {
            if s[y * w + x] {
                b[0] = b[0].min(x);
                b[1] = b[1].min(y);
                b[2] = b[2].max(x);
                b[3] = b[3].max(y);
            }
        }
    }
    if b[0] == usize::MAX {
        return EMPTY_BOX;
    }
    BBox {
        x0: b[0] as u32,
        y0: b[1] as u32,
        x1: b[2] as u32 + 1,
        y1: b[3] as u32 + 1,
    }
}

/// Upstream `postprocess_small_regions`.
fn postprocess_small_regions(
    cands: Vec<Candidate>,
    min_area: usize,
    nms_thresh: f32,
) -> Vec<Candidate> {
    if cands.is_empty() {
        return cands;
    }
    let cleaned: Vec<(BinaryMask, bool)> = cands
        .par_iter()
        .map(|c| {
            let m = c.rle.to_mask();
            let (m, ch1) = remove_small_regions(&m, min_area, RegionKind::Holes);
            let (m, ch2) = remove_small_regions(&m, min_area, RegionKind::Islands);
            (m, !(ch1 || ch2))
        })
        .collect();
    let boxes: Vec<BBox> = cleaned.iter().map(|(m, _)| mask_box(m)).collect();
    let scores: Vec<f32> = cleaned
        .iter()
        .map(|&(_, u)| if u { 1.0 } else { 0.0 })
        .collect();
    let keep = nms(&boxes, &scores, nms_thresh);
    let mut cands: Vec<Option<Candidate>> = cands.into_iter().map(Some).collect();
    keep.iter()
        .filter_map(|&i| {
            let mut c = cands[i].take()?;
            if scores[i] == 0.0 {
                c.rle = Rle::from_mask(&cleaned[i].0);
                c.bbox = boxes[i];
            }
            Some(c)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A stand-in model: for a point it returns three discs centred on the point with radii
    /// `radii` (image pixels), logits `slope · (r - distance)` (in low-res pixels), and fixed
    /// predicted IoUs. Counts its calls.
    struct Discs {
        radii: [f64; 3],
        slopes: [f32; 3],
        ious: [f32; 3],
        /// A small separate blob added to every mask at this offset from the point (pixels).
        island: Option<(f64, f64, f64)>,
        embeds: AtomicUsize,
        calls: AtomicUsize,
        prompts: AtomicUsize,
    }

    impl Discs {
        fn new() -> Self {
            Discs {
                radii: [6.0, 12.0, 30.0],
                slopes: [4.0, 4.0, 4.0],
                ious: [0.90, 0.95, 0.99],
                island: None,
                embeds: AtomicUsize::new(0),
                calls: AtomicUsize::new(0),
                prompts: AtomicUsize::new(0),
            }
        }
    }

    impl PointPredictor for Discs {
        type Embedding = (usize, usize);

        fn embed(&self, rgb8: &Image) -> Result<(usize, usize)> {
            self.embeds.fetch_add(1, Ordering::SeqCst);
            Ok((rgb8.width() as usize, rgb8.height() as usize))
        }

        fn predict_points(
            &self,
            emb: &(usize, usize),
            points: &[[f64; 2]],
            _needs: DecodeNeeds,
        ) -> Result<Vec<Prediction>> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            self.prompts.fetch_add(points.len(), Ordering::SeqCst);
            let scale = INPUT_SIZE as f64 / emb.0.max(emb.1) as f64 / 4.0; // pixels → low-res
            Ok(points
                .iter()
                .map(|p| {
                    let mut logits = Vec::with_capacity(3 * LOW_RES * LOW_RES);
                    for k in 0..3 {
                        for v in 0..LOW_RES {
                            for u in 0..LOW_RES {
                                let (x, y) = ((u as f64 + 0.5) / scale, (v as f64 + 0.5) / scale);
                                let d = ((x - p[0]).powi(2) + (y - p[1]).powi(2)).sqrt();
                                let mut l = self.slopes[k] * ((self.radii[k] - d) * scale) as f32;
                                if let Some((dx, dy, r)) = self.island {
                                    let di =
                                        ((x - p[0] - dx).powi(2) + (y - p[1] - dy).powi(2)).sqrt();
                                    l = l.max(self.slopes[k] * ((r - di) * scale) as f32);
                                }
                                logits.push(l);
                            }
                        }
                    }
                    Prediction {
                        low_res_logits: logits,
                        iou: self.ious.to_vec(),
                    }
                })
                .collect())
        }
    }

    fn image(w: u32, h: u32) -> Image {
        Image::rgb8(w, h, vec![0; (w * h * 3) as usize]).unwrap()
    }

    fn cfg(points: usize) -> AmgConfig {
        AmgConfig {
            points_per_side: Some(points),
            ..AmgConfig::default()
        }
    }

    fn run(model: &Discs, c: AmgConfig, w: u32, h: u32) -> AmgOutput {
        MaskGenerator::new(c)
            .unwrap()
            .generate(model, &image(w, h))
            .unwrap()
    }

    #[test]
    fn presets_are_data_with_the_study_values() {
        assert_eq!(AmgPreset::Standard.config(), AmgConfig::default());
        let c = AmgPreset::Custom.config();
        assert_eq!(
            (
                c.pred_iou_thresh,
                c.stability_score_thresh,
                c.box_nms_thresh
            ),
            (0.98, 0.98, 0.90)
        );
        assert_eq!(
            AmgConfig {
                pred_iou_thresh: 0.98,
                stability_score_thresh: 0.98,
                box_nms_thresh: 0.9,
                ..AmgConfig::default()
            },
            c
        );
        assert_eq!(AmgPreset::from_name("CUSTOM").unwrap(), AmgPreset::Custom);
        assert!(AmgPreset::from_name("fancy")
            .unwrap_err()
            .to_string()
            .contains("standard"));
        // Unknown keys are rejected.
        assert!(serde_json::from_str::<AmgConfig>(r#"{"points_per_sid": 3}"#).is_err());
        let c: AmgConfig = serde_json::from_str(r#"{"points_per_side": 8}"#).unwrap();
        assert_eq!(c.points_per_side, Some(8));
        assert_eq!(c.pred_iou_thresh, 0.88);
    }

    #[test]
    fn invalid_settings_name_the_setting() {
        let bad = [
            (
                AmgConfig {
                    points_per_side: Some(0),
                    ..cfg(1)
                },
                "points_per_side",
            ),
            (
                AmgConfig {
                    points_per_side: None,
                    ..cfg(1)
                },
                "exactly one",
            ),
            (
                AmgConfig {
                    point_grids: Some(vec![vec![[0.5, 0.5]]]),
                    ..cfg(4)
                },
                "exactly one",
            ),
            (
                AmgConfig {
                    points_per_batch: 0,
                    ..cfg(4)
                },
                "points_per_batch",
            ),
            (
                AmgConfig {
                    pred_iou_thresh: 1.5,
                    ..cfg(4)
                },
                "pred_iou_thresh",
            ),
            (
                AmgConfig {
                    stability_score_thresh: -0.1,
                    ..cfg(4)
                },
                "stability_score_thresh",
            ),
            (
                AmgConfig {
                    stability_score_offset: f32::NAN,
                    ..cfg(4)
                },
                "stability_score_offset",
            ),
            (
                AmgConfig {
                    box_nms_thresh: 2.0,
                    ..cfg(4)
                },
                "box_nms_thresh",
            ),
            (
                AmgConfig {
                    crop_nms_thresh: -1.0,
                    ..cfg(4)
                },
                "crop_nms_thresh",
            ),
            (
                AmgConfig {
                    crop_overlap_ratio: 1.0,
                    ..cfg(4)
                },
                "crop_overlap_ratio",
            ),
            (
                AmgConfig {
                    crop_n_points_downscale_factor: 0,
                    ..cfg(4)
                },
                "crop_n_points_downscale_factor",
            ),
            (
                AmgConfig {
                    crop_n_layers: 3,
                    crop_n_points_downscale_factor: 2,
                    ..cfg(4)
                },
                "leaves no points",
            ),
            (
                AmgConfig {
                    points_per_side: None,
                    point_grids: Some(vec![vec![[0.5, 0.5]]]),
                    crop_n_layers: 1,
                    ..cfg(1)
                },
                "point_grids has 1",
            ),
            (
                AmgConfig {
                    points_per_side: None,
                    point_grids: Some(vec![vec![[1.5, 0.5]]]),
                    ..cfg(1)
                },
                "[0, 1]",
            ),
        ];
        for (c, what) in bad {
            let e = MaskGenerator::new(c.clone()).unwrap_err().to_string();
            assert!(e.contains(what), "{c:?}: {e}");
        }
    }

    #[test]
    fn point_grid_and_crop_boxes_follow_upstream() {
        let g = build_point_grid(2);
        assert_eq!(
            g,
            vec![[0.25, 0.25], [0.75, 0.25], [0.25, 0.75], [0.75, 0.75]]
        );
        // Upstream for a 696x520 image, 1 layer, ratio 512/1500: overlap int(0.3413*520) = 177,
        // crop_w ceil((177+696)/2) = 437, crop_h ceil((177+520)/2) = 349; x-major order.
        let b = generate_crop_boxes(696, 520, 1, 512.0 / 1500.0);
        let xyxy: Vec<[u32; 4]> = b.iter().map(|c| c.xyxy).collect();
        assert_eq!(
            xyxy,
            vec![
                [0, 0, 696, 520],
                [0, 0, 437, 349],
                [0, 172, 437, 520],
                [260, 0, 696, 349],
                [260, 172, 696, 520]
            ]
        );
        assert_eq!(
            b.iter().map(|c| c.layer).collect::<Vec<_>>(),
            vec![0, 1, 1, 1, 1]
        );
        assert_eq!(generate_crop_boxes(100, 80, 2, 0.25).len(), 1 + 4 + 16);
        // Downscale factor: layer i has n / f^i points per side.
        let c = AmgConfig {
            crop_n_layers: 2,
            crop_n_points_downscale_factor: 2,
            ..cfg(8)
        };
        let sizes: Vec<usize> = c.layer_point_grids().iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![64, 16, 4]);
    }

    #[test]
    fn points_per_side_and_batch_set_the_prompts() {
        let m = Discs::new();
        let a = run(
            &m,
            AmgConfig {
                points_per_batch: 5,
                ..cfg(4)
            },
            120,
            90,
        );
        assert_eq!(m.prompts.load(Ordering::SeqCst), 16);
        assert_eq!(m.calls.load(Ordering::SeqCst), 4); // 5 + 5 + 5 + 1
        assert_eq!(a.timings.batches, 4);
        let m2 = Discs::new();
        let b = run(
            &m2,
            AmgConfig {
                points_per_batch: 64,
                ..cfg(4)
            },
            120,
            90,
        );
        assert_eq!(m2.calls.load(Ordering::SeqCst), 1);
        assert_eq!(
            a.masks, b.masks,
            "results must not depend on the batch size"
        );
        assert!(!a.masks.is_empty());
        // Masks are in the image frame and come from the grid points.
        for mk in &a.masks {
            assert_eq!(mk.segmentation.size, [90, 120]);
            assert_eq!(mk.crop_box, [0, 0, 120, 90]);
            let p = mk.point_coords;
            assert!(mk.to_binary_mask().get(p[0] as u32, p[1] as u32));
        }
    }

    #[test]
    fn explicit_point_grids_are_used() {
        let m = Discs::new();
        let c = AmgConfig {
            points_per_side: None,
            point_grids: Some(vec![vec![[0.5, 0.5]]]),
            ..cfg(1)
        };
        let out = run(&m, c, 200, 100);
        assert_eq!(m.prompts.load(Ordering::SeqCst), 1);
        assert!(out.masks.iter().all(|mk| mk.point_coords == [100.0, 50.0]));
    }

    #[test]
    fn pred_iou_thresh_filters_by_predicted_iou() {
        let m = Discs::new();
        let c = AmgConfig {
            stability_score_thresh: 0.0,
            box_nms_thresh: 1.0,
            ..cfg(3)
        };
        let all = run(
            &m,
            AmgConfig {
                pred_iou_thresh: 0.0,
                ..c.clone()
            },
            200,
            200,
        );
        let high = run(
            &m,
            AmgConfig {
                pred_iou_thresh: 0.96,
                ..c
            },
            200,
            200,
        );
        assert!(high.masks.iter().all(|mk| mk.predicted_iou > 0.96));
        assert!(all.masks.iter().any(|mk| mk.predicted_iou < 0.96));
        assert!(high.masks.len() < all.masks.len());
    }

    #[test]
    fn stability_score_thresh_and_offset_filter_soft_masks() {
        let mut m = Discs::new();
        m.slopes = [0.05, 0.05, 8.0]; // two soft masks, one sharp
        let c = AmgConfig {
            pred_iou_thresh: 0.0,
            box_nms_thresh: 1.0,
            ..cfg(2)
        };
        let none = run(
            &m,
            AmgConfig {
                stability_score_thresh: 0.0,
                ..c.clone()
            },
            100,
            100,
        );
        let strict = run(
            &m,
            AmgConfig {
                stability_score_thresh: 0.95,
                ..c.clone()
            },
            100,
            100,
        );
        assert!(strict.masks.len() < none.masks.len());
        assert!(strict.masks.iter().all(|mk| mk.stability_score >= 0.95));
        // A larger offset makes every score lower (or equal).
        let wide = run(
            &m,
            AmgConfig {
                stability_score_thresh: 0.0,
                stability_score_offset: 3.0,
                ..c
            },
            100,
            100,
        );
        for (a, b) in none.masks.iter().zip(&wide.masks) {
            assert!(b.stability_score <= a.stability_score + 1e-6);
        }
        assert!(wide
            .masks
            .iter()
            .zip(&none.masks)
            .any(|(b, a)| b.stability_score < a.stability_score));
    }

    #[test]
    fn box_nms_thresh_removes_duplicates() {
        let m = Discs::new();
        let c = AmgConfig {
            pred_iou_thresh: 0.0,
            stability_score_thresh: 0.0,
            ..cfg(6)
        };
        let keep_all = run(
            &m,
            AmgConfig {
                box_nms_thresh: 1.0,
                ..c.clone()
            },
            120,
            120,
        );
        let nms = run(
            &m,
            AmgConfig {
                box_nms_thresh: 0.3,
                ..c
            },
            120,
            120,
        );
        assert_eq!(keep_all.masks.len(), 36 * 3);
        assert!(nms.masks.len() < keep_all.masks.len());
        // Survivors are sorted by predicted IoU, as torchvision's nms returns them.
        assert!(nms
            .masks
            .windows(2)
            .all(|w| w[0].predicted_iou >= w[1].predicted_iou));
    }

    #[test]
    fn crop_layers_embed_each_crop_and_dedupe_across_crops() {
        let m = Discs::new();
        let c = AmgConfig {
            crop_n_layers: 1,
            crop_n_points_downscale_factor: 2,
            pred_iou_thresh: 0.0,
            stability_score_thresh: 0.0,
            ..cfg(4)
        };
        let strict = run(
            &m,
            AmgConfig {
                crop_nms_thresh: 0.1,
                ..c.clone()
            },
            300,
            200,
        );
        assert_eq!(m.embeds.load(Ordering::SeqCst), 5);
        assert_eq!(m.prompts.load(Ordering::SeqCst), 16 + 4 * 4);
        let loose = run(
            &m,
            AmgConfig {
                crop_nms_thresh: 1.0,
                ..c.clone()
            },
            300,
            200,
        );
        assert!(strict.masks.len() < loose.masks.len());
        let crops: std::collections::BTreeSet<[u32; 4]> =
            loose.masks.iter().map(|mk| mk.crop_box).collect();
        assert!(crops.len() > 1, "masks from several crops: {crops:?}");
        for mk in &loose.masks {
            assert_eq!(
                mk.segmentation.size,
                [200, 300],
                "uncropped to the image frame"
            );
            let [x, y, w, h] = mk.crop_box;
            let p = mk.point_coords;
            assert!(
                p[0] >= x as f64
                    && p[0] <= (x + w) as f64
                    && p[1] >= y as f64
                    && p[1] <= (y + h) as f64
            );
            assert!(mk.to_binary_mask().get(p[0] as u32, p[1] as u32));
        }
        // The overlap ratio changes the crops.
        let other = run(
            &m,
            AmgConfig {
                crop_overlap_ratio: 0.0,
                crop_nms_thresh: 1.0,
                ..c
            },
            300,
            200,
        );
        let crops2: std::collections::BTreeSet<[u32; 4]> =
            other.masks.iter().map(|mk| mk.crop_box).collect();
        assert_ne!(crops, crops2);
    }

    #[test]
    fn masks_touching_inner_crop_edges_are_dropped() {
        let mut m = Discs::new();
        m.radii = [60.0, 70.0, 80.0]; // large discs reach the inner edges of the crops
        let c = AmgConfig {
            crop_n_layers: 1,
            pred_iou_thresh: 0.0,
            stability_score_thresh: 0.0,
            crop_nms_thresh: 1.0,
            box_nms_thresh: 1.0,
            ..cfg(2)
        };
        let out = run(&m, c, 300, 300);
        let from_crops: Vec<&GeneratedMask> = out
            .masks
            .iter()
            .filter(|mk| mk.crop_box != [0, 0, 300, 300])
            .collect();
        assert!(!from_crops.is_empty());
        let near = |a: u32, b: u32| (a as i64 - b as i64).abs() <= 20;
        let inner = |edge: u32| edge != 0 && edge != 300;
        for mk in from_crops {
            let [cx, cy, cw, ch] = mk.crop_box;
            let [x, y, w, h] = mk.bbox;
            let touching = (near(x, cx) && inner(cx))
                || (near(y, cy) && inner(cy))
                || (near(x + w, cx + cw) && inner(cx + cw))
                || (near(y + h, cy + ch) && inner(cy + ch));
            assert!(!touching, "{mk:?}");
        }
        // Some discs were removed by the filter (NMS is off).
        assert!(out.masks.len() < m.prompts.load(Ordering::SeqCst) * 3);
    }

    #[test]
    fn min_mask_region_area_removes_islands_and_holes() {
        let mut m = Discs::new();
        m.island = Some((40.0, 0.0, 3.0)); // a ~28 px blob 40 px right of each disc
        let c = AmgConfig {
            pred_iou_thresh: 0.0,
            stability_score_thresh: 0.0,
            box_nms_thresh: 1.0,
            ..cfg(1)
        };
        let raw = run(&m, c.clone(), 200, 200);
        let clean = run(
            &m,
            AmgConfig {
                min_mask_region_area: 100,
                ..c
            },
            200,
            200,
        );
        assert_eq!(raw.masks.len(), clean.masks.len());
        let small_disc = |o: &AmgOutput| {
            o.masks
                .iter()
                .find(|mk| mk.area < 400)
                .map(|mk| mk.to_binary_mask())
        };
        let (r, k) = (small_disc(&raw).unwrap(), small_disc(&clean).unwrap());
        assert_eq!(r.connected_components(Connectivity::Eight).num_objects(), 2);
        assert_eq!(k.connected_components(Connectivity::Eight).num_objects(), 1);
        // Holes: background regions under the area are filled, larger ones stay.
        let holes = BinaryMask::new(
            6,
            3,
            "###### #.##.. ######"
                .split(' ')
                .flat_map(|r| r.chars().map(|c| c == '#'))
                .collect(),
        )
        .unwrap();
        let (filled, changed) = remove_small_regions(&holes, 2, RegionKind::Holes);
        assert!(changed);
        assert!(filled.get(1, 1) && !filled.get(4, 1) && !filled.get(5, 1));
        let (same, changed) = remove_small_regions(&holes, 1, RegionKind::Holes);
        assert!(!changed && same == holes);
        // Islands: when every island is small, the largest is kept.
        let two = BinaryMask::new(5, 1, vec![true, false, true, true, false]).unwrap();
        let (kept, changed) = remove_small_regions(&two, 10, RegionKind::Islands);
        assert!(changed);
        assert_eq!(kept.as_slice(), &[false, false, true, true, false]);
    }

    #[test]
    fn nms_keeps_best_and_drops_overlaps() {
        // Inclusive maxima 10, 11 and 30, as the reference's boxes of these pixels.
        let b = |x0, y0, x1, y1| BBox { x0, y0, x1, y1 };
        let boxes = [b(0, 0, 11, 11), b(1, 1, 12, 12), b(20, 20, 31, 31)];
        assert_eq!(nms(&boxes, &[0.5, 0.9, 0.1], 0.5), vec![1, 2]);
        assert_eq!(nms(&boxes, &[0.5, 0.9, 0.1], 0.99), vec![1, 0, 2]);
    }

    /// A mask of a 9 × 4 image from rows (missing rows and columns are background).
    fn mask_from_rows(rows: &[&str]) -> GeneratedMask {
        let mut r: Vec<String> = rows.iter().map(|s| format!("{s:.<9}")).collect();
        r.resize(4, ".".repeat(9));
        let refs: Vec<&str> = r.iter().map(String::as_str).collect();
        let m = BinaryMask::from_rows(&refs).unwrap();
        let rle = Rle::from_row_major(m.width(), m.height(), m.as_slice());
        GeneratedMask {
            area: rle.area(),
            segmentation: rle,
            bbox: [0; 4],
            predicted_iou: 1.0,
            point_coords: [0.0; 2],
            stability_score: 1.0,
            crop_box: [0; 4],
        }
    }

    /// Regression (issue #16 item 4): on the StarDist image `counts.csv` said 125, the label image
    /// held 124 labels, 23 of them in several pieces (ring fragments of a large mask cut by the
    /// smaller masks painted over it).
    #[test]
    fn sam_label_image_had_labels_in_several_pieces() {
        // A merge of two cells (big) with each cell also found alone: the big mask's visible
        // remainder is fragments, under half of its pixels: no label.
        let big = mask_from_rows(&["#########", "#########", "#########"]);
        let left = mask_from_rows(&["", "####", "####"]);
        let right = mask_from_rows(&["", ".....####", ".....####"]);
        // A bar cut in two by a smaller mask across it: it keeps its longer piece.
        let bar = mask_from_rows(&["", "", "", "#########"]);
        let across = mask_from_rows(&["", "", "", ".#"]);
        let p = paint_labels(9, 4, &[&big, &left, &right, &bar, &across]);
        assert_eq!(
            p.masks_hidden, 1,
            "the merge of the two cells gets no label"
        );
        assert_eq!(p.labels.num_objects(), 4);
        assert_eq!(
            p.labels.pieces(Connectivity::Eight).num_objects(),
            p.labels.num_objects(),
            "every label is one connected object"
        );
        // The pixel left of the cut is background; the bar's 7 others keep its label.
        assert_eq!(p.fragment_pixels, 1);
        assert_eq!(p.labels.get(0, 3), 0);
        assert_ne!(p.labels.get(5, 3), 0);
        assert_ne!(
            p.labels.get(1, 3),
            p.labels.get(5, 3),
            "the mask across the bar is its own label"
        );
        // The big mask's uncovered top row is background.
        assert_eq!(p.labels.get(4, 0), 0);
        // Each input mask knows its label: the big one none, the others theirs.
        assert_eq!(p.label_of[0], None);
        assert_eq!(p.label_of[1], Some(p.labels.get(1, 1)));
        assert_eq!(p.label_of[2], Some(p.labels.get(6, 1)));
        assert_eq!(p.label_of[3], Some(p.labels.get(5, 3)));
        assert_eq!(p.label_of[4], Some(p.labels.get(1, 3)));
    }

    #[test]
    fn label_image_paints_small_masks_on_top() {
        let m = Discs::new();
        let out = run(
            &m,
            AmgConfig {
                pred_iou_thresh: 0.0,
                stability_score_thresh: 0.0,
                box_nms_thresh: 1.0,
                ..cfg(1)
            },
            100,
            100,
        );
        assert_eq!(out.masks.len(), 3);
        let labels = out.label_image(|_| true);
        assert_eq!(labels.num_objects(), 3);
        // The centre belongs to the smallest disc, which is painted last.
        let smallest = out.masks.iter().map(|mk| mk.area).min().unwrap();
        let centre = labels.get(50, 50);
        let centre_area = labels.as_slice().iter().filter(|&&l| l == centre).count() as u64;
        assert_eq!(centre_area, smallest);
        let only_big = out.label_image(|mk| mk.area > smallest);
        assert_eq!(only_big.num_objects(), 2);
    }
}
