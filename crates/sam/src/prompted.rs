//! Prompted segmentation: one mask per given prompt (points and/or a box), the way SAM is meant
//! to be used when something already knows roughly where the objects are — a detector (mica's
//! classical pipeline, as micro-sam's automatic prompt generation uses its own decoder's seeds),
//! a person clicking ([`crate::Sam`] in `mica annotate`), or a CSV of points and boxes.
//!
//! Per image: embed once; decode every prompt (a lone point with SAM's three masks, keeping the
//! one with the highest predicted IoU, as the reference predictor's `multimask_output=True` is
//! used for ambiguous single clicks; anything with a box or several points with one mask); then
//! the automatic generator's filters, in its order: predicted IoU above `pred_iou_thresh`,
//! stability score at least `stability_score_thresh`, box non-maximum suppression at
//! `box_nms_thresh`. The result is an [`AmgOutput`], so labels, the study's rules and every
//! output are the same as for grid masks.

use crate::amg::{nms, AmgOutput, AmgTimings, GeneratedMask};
use crate::error::{Result, SamError};
use crate::mask_decoder::LOW_RES;
use crate::model::{DecodeNeeds, ImageEmbedding, PointPrompt, Prompt, Sam, MASK_THRESHOLD};
use crate::prompt_encoder::PointLabel;
use crate::resize::MaskResizer;
use crate::rle::Rle;
use crate::tiny_vit::INPUT_SIZE;
use mica_core::{BBox, Image, LabelImage, MethodError};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::time::Instant;

/// Filters applied to the masks of prompted segmentation; `0` disables a threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PromptedConfig {
    /// Keep masks whose predicted IoU is above this.
    pub pred_iou_thresh: f32,
    /// Keep masks whose stability score is at least this.
    pub stability_score_thresh: f32,
    /// Logit offset of the stability score.
    pub stability_score_offset: f32,
    /// Box IoU above which the lower-scoring of two masks is dropped (1 keeps all).
    pub box_nms_thresh: f32,
}

impl Default for PromptedConfig {
    /// Each prompt stands for an object someone (or something) found, so no mask is dropped
    /// for a low predicted IoU; SAM's unstable masks (stability under 0.8) and duplicates of
    /// the same object (box IoU above 0.7, the generator's default) are.
    fn default() -> Self {
        PromptedConfig {
            pred_iou_thresh: 0.0,
            stability_score_thresh: 0.8,
            stability_score_offset: 1.0,
            box_nms_thresh: 0.7,
        }
    }
}

impl PromptedConfig {
    /// # Errors
    /// [`SamError::Invalid`] naming a setting out of range.
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [
            ("pred_iou_thresh", self.pred_iou_thresh),
            ("stability_score_thresh", self.stability_score_thresh),
            ("box_nms_thresh", self.box_nms_thresh),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(SamError::Invalid(format!(
                    "{name} must be in [0, 1], got {v}"
                )));
            }
        }
        if !(self.stability_score_offset >= 0.0 && self.stability_score_offset.is_finite()) {
            return Err(SamError::Invalid(format!(
                "stability_score_offset must be finite and >= 0, got {}",
                self.stability_score_offset
            )));
        }
        Ok(())
    }
}

/// Where the prompts of an image come from (a detector, a file): implemented outside this crate
/// (mica-study's classical detector), so the crate needs no detector of its own.
pub trait PromptSource: Send + Sync {
    /// A short name, e.g. `classical:fluorescence-nuclei`.
    fn name(&self) -> String;
    /// Every setting that changes the prompts (hashed by studies with the rest).
    fn settings(&self) -> serde_json::Value;
    /// The prompts for one image, in its pixel coordinates.
    ///
    /// # Errors
    /// Whatever the source fails with for this image.
    fn prompts(&self, image: &Image) -> std::result::Result<Vec<Prompt>, MethodError>;
}

/// How prompts are made from a detector's objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum PromptKind {
    /// The object's bounding box, grown by a margin (the default: the best of the three on the
    /// StarDist nuclei image, docs/sam.md).
    #[default]
    Box,
    /// One positive point: the object pixel farthest from its outline.
    Point,
    /// Both, as one prompt.
    BoxPoint,
}

impl PromptKind {
    pub fn name(self) -> &'static str {
        match self {
            PromptKind::Box => "box",
            PromptKind::Point => "point",
            PromptKind::BoxPoint => "box-point",
        }
    }

    /// # Errors
    /// [`SamError::Invalid`] listing the names.
    pub fn from_name(s: &str) -> Result<Self> {
        [PromptKind::Box, PromptKind::Point, PromptKind::BoxPoint]
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                SamError::Invalid(format!(
                    "unknown prompt kind {s:?} (known: box, point, box-point)"
                ))
            })
    }
}

/// One prompt per object of a label image: its box (first and last pixel, as SAM's reference
/// computes a mask's box) grown by `margin` pixels on every side (clipped to the image) and/or its innermost pixel (the one farthest from the background by
/// the city-block distance inside the object's box; ties: first in raster order), as pixel
/// centres. Objects in label order.
pub fn prompts_from_labels(labels: &LabelImage, kind: PromptKind, margin: f32) -> Vec<Prompt> {
    let (w, h) = (labels.width() as usize, labels.height() as usize);
    let props = mica_core::object_properties(labels, None).unwrap_or_default();
    let data = labels.as_slice();
    props
        .iter()
        .map(|o| {
            let b = o.bbox;
            // SAM's own box of a mask (the reference's `batched_mask_to_box`): first and last
            // pixel index, both inclusive.
            let bbox = [
                (b.x0 as f32 - margin).max(0.0),
                (b.y0 as f32 - margin).max(0.0),
                ((b.x1 - 1) as f32 + margin).min(w as f32 - 1.0),
                ((b.y1 - 1) as f32 + margin).min(h as f32 - 1.0),
            ];
            let point = innermost_pixel(data, w, o.label, [b.x0, b.y0, b.x1, b.y1]);
            let points = match kind {
                PromptKind::Box => Vec::new(),
                _ => vec![crate::model::PointPrompt {
                    x: point[0] as f32 + 0.5,
                    y: point[1] as f32 + 0.5,
                    label: PointLabel::Positive,
                }],
            };
            Prompt {
                points,
                bbox: (kind != PromptKind::Point).then_some(bbox),
                mask_logits: None,
            }
        })
        .collect()
}

/// The pixel of `label` inside `bbox` (`[x0, y0, x1, y1]`, end-exclusive) farthest from any
/// other pixel (two-pass city-block distance; the box's outside counts as background).
fn innermost_pixel(data: &[u32], w: usize, label: u32, bbox: [u32; 4]) -> [usize; 2] {
    let [x0, y0, x1, y1] = bbox.map(|v| v as usize);
    let (bw, bh) = (x1 - x0, y1 - y0);
    let mut d = vec![0u32; bw * bh];
    for y in 0..bh {
        for x in 0..bw {
            if data[(y + y0) * w + x + x0] == label {
                let up = if y > 0 { d[(y - 1) * bw + x] } else { 0 };
                let left = if x > 0 { d[y * bw + x - 1] } else { 0 };
                d[y * bw + x] = up.min(left) + 1;
            }
        }
    }
    let mut best = (0u32, [x0, y0]);
    for y in (0..bh).rev() {
        for x in (0..bw).rev() {
            let i = y * bw + x;
            if d[i] == 0 {
                continue;
            }
            let down = if y + 1 < bh { d[i + bw] } else { 0 };
            let right = if x + 1 < bw { d[i + 1] } else { 0 };
            d[i] = d[i].min(down.min(right) + 1);
        }
    }
    for y in 0..bh {
        for x in 0..bw {
            if d[y * bw + x] > best.0 {
                best = (d[y * bw + x], [x + x0, y + y0]);
            }
        }
    }
    best.1
}

/// Checks prompts against the image they are for: every coordinate inside it, every prompt
/// non-empty, boxes with `x0 <= x1` and `y0 <= y1`.
///
/// # Errors
/// [`SamError::Invalid`] naming the prompt (0-based) and the value.
pub fn check_prompts(prompts: &[Prompt], width: u32, height: u32) -> Result<()> {
    let (w, h) = (width as f32, height as f32);
    let inside = |x: f32, y: f32| {
        x.is_finite() && y.is_finite() && (0.0..=w).contains(&x) && (0.0..=h).contains(&y)
    };
    for (i, p) in prompts.iter().enumerate() {
        if p.points.is_empty() && p.bbox.is_none() {
            return Err(SamError::Invalid(format!(
                "prompt {i} has no point and no box"
            )));
        }
        for q in &p.points {
            if !inside(q.x, q.y) {
                return Err(SamError::Invalid(format!(
                    "prompt {i}: point ({}, {}) is outside the {width}x{height} image",
                    q.x, q.y
                )));
            }
        }
        if let Some([x0, y0, x1, y1]) = p.bbox {
            if !inside(x0, y0) || !inside(x1, y1) || x0 > x1 || y0 > y1 {
                return Err(SamError::Invalid(format!(
                    "prompt {i}: box ({x0}, {y0})-({x1}, {y1}) is not a box inside the \
                     {width}x{height} image"
                )));
            }
        }
    }
    Ok(())
}

/// A mask found for one prompt, before non-maximum suppression.
struct Found {
    prompt: usize,
    rle: Rle,
    bbox: BBox,
    iou: f32,
    stability: f32,
}

/// Segments one embedded image with `prompts` (pixel coordinates of the embedded image).
/// `GeneratedMask::point_coords` holds the prompt's first point (or its box centre).
///
/// # Errors
/// Invalid prompts (see [`check_prompts`]), model failures.
pub fn segment_embedded(
    sam: &Sam,
    emb: &ImageEmbedding,
    prompts: &[Prompt],
    cfg: &PromptedConfig,
    timings: &mut AmgTimings,
) -> Result<Vec<GeneratedMask>> {
    Ok(segment_embedded_indexed(sam, emb, prompts, cfg, timings)?
        .into_iter()
        .map(|(_, m)| m)
        .collect())
}

/// As [`segment_embedded`], each mask with the index of the prompt that made it.
fn segment_embedded_indexed(
    sam: &Sam,
    emb: &ImageEmbedding,
    prompts: &[Prompt],
    cfg: &PromptedConfig,
    timings: &mut AmgTimings,
) -> Result<Vec<(usize, GeneratedMask)>> {
    cfg.validate()?;
    let (w, h) = emb.image_size();
    check_prompts(prompts, w as u32, h as u32)?;
    let resizer = MaskResizer::new(w, h, INPUT_SIZE, LOW_RES);
    let needs = DecodeNeeds {
        min_iou: (cfg.pred_iou_thresh > 0.0).then_some(cfg.pred_iou_thresh),
        low_res_extent: Some(resizer.low_res_extent()),
    };
    // Lone points are ambiguous (SAM's three masks, the best kept); the rest get one mask.
    let lone = |p: &Prompt| p.points.len() == 1 && p.bbox.is_none();
    let t = Instant::now();
    let mut preds = Vec::with_capacity(prompts.len());
    for multimask in [true, false] {
        let idx: Vec<usize> = (0..prompts.len())
            .filter(|&i| lone(&prompts[i]) == multimask)
            .collect();
        if idx.is_empty() {
            continue;
        }
        let group: Vec<Prompt> = idx.iter().map(|&i| prompts[i].clone()).collect();
        let out = sam.predict_filtered(emb, &group, multimask, needs)?;
        preds.extend(idx.into_iter().zip(out));
    }
    timings.decode_ms += t.elapsed().as_secs_f64() * 1e3;
    timings.prompts += prompts.len();
    timings.batches += 1;
    let t = Instant::now();
    let hi = MASK_THRESHOLD + cfg.stability_score_offset;
    let lo = MASK_THRESHOLD - cfg.stability_score_offset;
    let found: Vec<Found> = preds
        .par_iter()
        .filter_map(|(i, pred)| {
            let k = (0..pred.len()).max_by(|&a, &b| {
                pred.iou[a]
                    .partial_cmp(&pred.iou[b])
                    .unwrap_or(Ordering::Equal)
                    .then(b.cmp(&a))
            })?;
            let iou = pred.iou[k];
            if cfg.pred_iou_thresh > 0.0
                && iou.partial_cmp(&cfg.pred_iou_thresh) != Some(Ordering::Greater)
            {
                return None;
            }
            let logits = pred.logits(k);
            if logits.is_empty() {
                return None;
            }
            let ([inter, union], runs) = resizer.count_and_mask(logits, [hi, lo], MASK_THRESHOLD);
            let stability = if union == 0 {
                0.0
            } else {
                inter as f32 / union as f32
            };
            if cfg.stability_score_thresh > 0.0
                && !matches!(
                    stability.partial_cmp(&cfg.stability_score_thresh),
                    Some(Ordering::Greater | Ordering::Equal)
                )
            {
                return None;
            }
            let bx = runs.bbox()?;
            let mask = runs.to_mask();
            Some(Found {
                prompt: *i,
                rle: Rle::from_row_major(w as u32, h as u32, &mask),
                bbox: bx,
                iou,
                stability,
            })
        })
        .collect();
    let boxes: Vec<BBox> = found.iter().map(|f| f.bbox).collect();
    let scores: Vec<f32> = found.iter().map(|f| f.iou).collect();
    let keep = nms(&boxes, &scores, cfg.box_nms_thresh);
    let mut slots: Vec<Option<Found>> = found.into_iter().map(Some).collect();
    let masks = keep
        .iter()
        .filter_map(|&i| slots[i].take())
        .map(|f| {
            let p = &prompts[f.prompt];
            let point = match (p.points.first(), p.bbox) {
                (Some(q), _) => [q.x as f64, q.y as f64],
                (None, Some(b)) => [(b[0] + b[2]) as f64 / 2.0, (b[1] + b[3]) as f64 / 2.0],
                (None, None) => [0.0, 0.0],
            };
            let m = GeneratedMask {
                area: f.rle.area(),
                segmentation: f.rle,
                bbox: crate::amg::mask_box_xywh(&f.bbox),
                predicted_iou: f.iou,
                point_coords: point,
                stability_score: f.stability,
                crop_box: [0, 0, w as u32, h as u32],
            };
            (f.prompt, m)
        })
        .collect();
    timings.post_ms += t.elapsed().as_secs_f64() * 1e3;
    Ok(masks)
}

/// No filter: every prompt someone gave stands for one object and keeps its mask.
const KEEP_ALL: PromptedConfig = PromptedConfig {
    pred_iou_thresh: 0.0,
    stability_score_thresh: 0.0,
    stability_score_offset: 1.0,
    box_nms_thresh: 1.0,
};

/// Segments named objects, one prompt each (a person's clicks and boxes): one mask per prompt,
/// none dropped by SAM's filters, no background rule. Returns the masks and, per prompt, the
/// index of its mask (`None` when SAM's mask was empty).
///
/// # Errors
/// As [`segment_embedded`].
pub fn segment_objects(
    sam: &Sam,
    rgb8: &Image,
    prompts: &[Prompt],
) -> Result<(AmgOutput, Vec<Option<usize>>)> {
    check_prompts(prompts, rgb8.width(), rgb8.height())?;
    let mut timings = AmgTimings::default();
    let (masks, mask_of) = if prompts.is_empty() {
        (Vec::new(), Vec::new())
    } else {
        let t = Instant::now();
        let emb = sam.embed(rgb8)?;
        timings.embed_ms = t.elapsed().as_secs_f64() * 1e3;
        segment_objects_embedded(sam, &emb, prompts, &mut timings)?
    };
    Ok((
        AmgOutput {
            width: rgb8.width(),
            height: rgb8.height(),
            masks,
            timings,
        },
        mask_of,
    ))
}

/// As [`segment_objects`] on an embedded image: the masks, and per prompt the index of its
/// mask.
///
/// # Errors
/// As [`segment_embedded`].
pub fn segment_objects_embedded(
    sam: &Sam,
    emb: &ImageEmbedding,
    prompts: &[Prompt],
    timings: &mut AmgTimings,
) -> Result<(Vec<GeneratedMask>, Vec<Option<usize>>)> {
    let mut mask_of = vec![None; prompts.len()];
    let mut masks = Vec::new();
    for (prompt, m) in segment_embedded_indexed(sam, emb, prompts, &KEEP_ALL, timings)? {
        mask_of[prompt] = Some(masks.len());
        masks.push(m);
    }
    Ok((masks, mask_of))
}

/// Why a named object has no label.
pub const NO_MASK: &str = "SAM gave an empty mask";
/// Why a named object has no label.
pub const HIDDEN: &str = "hidden: its mask is mostly covered by smaller objects' masks";

/// The label image of named objects ([`segment_objects`]): masks painted by the rule of
/// [`crate::amg::paint_labels`] (smaller on top, one connected piece per label), labels then
/// numbered 1..=N in the order the objects were given; count = labels; every object's label
/// (or why it has none) in `named_objects`.
pub fn object_segmentation(
    out: &AmgOutput,
    mask_of: &[Option<usize>],
    names: &[String],
) -> mica_core::Segmentation {
    let refs: Vec<&GeneratedMask> = out.masks.iter().collect();
    let painted = crate::amg::paint_labels(out.width, out.height, &refs);
    let mut renumber = vec![0u32; out.masks.len() + 1];
    let mut next = 0u32;
    let mut named = Vec::with_capacity(names.len());
    for (name, m) in names.iter().zip(mask_of) {
        let label = match m {
            None => Err(NO_MASK.to_string()),
            Some(j) => match painted.label_of[*j] {
                None => Err(HIDDEN.to_string()),
                Some(l) => {
                    next += 1;
                    renumber[l as usize] = next;
                    Ok(next)
                }
            },
        };
        named.push(mica_core::NamedObject {
            name: name.clone(),
            label,
        });
    }
    let mut labels = painted.labels;
    for v in labels.as_mut_slice() {
        *v = renumber[*v as usize];
    }
    let mut seg = mica_core::Segmentation::from_labels(labels);
    seg.extra_counts = vec![
        (crate::study::COUNT_MASKS.to_string(), out.masks.len()),
        (crate::study::COUNT_OBJECTS.to_string(), seg.count),
    ];
    seg.named_objects = named;
    seg
}

/// Embeds an 8-bit RGB image and segments it with `prompts`.
///
/// # Errors
/// As [`segment_embedded`].
pub fn segment(
    sam: &Sam,
    rgb8: &Image,
    prompts: &[Prompt],
    cfg: &PromptedConfig,
) -> Result<AmgOutput> {
    let mut timings = AmgTimings::default();
    cfg.validate()?;
    check_prompts(prompts, rgb8.width(), rgb8.height())?;
    // No prompt, no mask: the encoder is not paid for nothing.
    let masks = if prompts.is_empty() {
        Vec::new()
    } else {
        let t = Instant::now();
        let emb = sam.embed(rgb8)?;
        timings.embed_ms = t.elapsed().as_secs_f64() * 1e3;
        timings.windows = 1;
        segment_embedded(sam, &emb, prompts, cfg, &mut timings)?
    };
    Ok(AmgOutput {
        width: rgb8.width(),
        height: rgb8.height(),
        masks,
        timings,
    })
}

/// Segments a large image with `prompts` window by window (see [`crate::tiled`]): each prompt
/// is decoded in the window of the core that holds its centre, or in a window of its own when
/// it does not fit there; then the filters and one non-maximum suppression over the image, as
/// [`segment`] does for a whole image.
///
/// # Errors
/// As [`segment`]; [`SamError::Invalid`] for a prompt with mask logits (they belong to one
/// model input frame, not to a window).
pub fn segment_tiled(
    sam: &Sam,
    rgb8: &Image,
    prompts: &[Prompt],
    cfg: &PromptedConfig,
    tiling: &crate::tiled::SamTiling,
) -> Result<AmgOutput> {
    cfg.validate()?;
    let (w, h) = (rgb8.width(), rgb8.height());
    check_prompts(prompts, w, h)?;
    if let Some(i) = prompts.iter().position(|p| p.mask_logits.is_some()) {
        return Err(SamError::Invalid(format!(
            "prompt {i} has mask logits, which belong to the whole image's model input; tiles \
             take points and boxes only"
        )));
    }
    let layout = tiling.layout(w, h);
    let tiles = layout.tiles();
    let mut windows: Vec<([u32; 4], Vec<usize>)> =
        tiles.iter().map(|t| (t.window, Vec::new())).collect();
    for (i, p) in prompts.iter().enumerate() {
        let e = extent(p);
        let owner = layout.owner(((e[0] + e[2]) / 2.0) as f64, ((e[1] + e[3]) / 2.0) as f64);
        let [x0, y0, x1, y1] = tiles[owner].window.map(|v| v as f32);
        if e[0] >= x0 && e[1] >= y0 && e[2] <= x1 && e[3] <= y1 {
            windows[owner].1.push(i);
        } else {
            windows.push((layout.window_around(e, tiling.halo_px), vec![i]));
        }
    }
    // Duplicates are removed once, over the image.
    let in_window = PromptedConfig {
        box_nms_thresh: 1.0,
        ..cfg.clone()
    };
    let mut timings = AmgTimings::default();
    let mut all: Vec<GeneratedMask> = Vec::new();
    for (win, idx) in windows.iter().filter(|(_, idx)| !idx.is_empty()) {
        let [x0, y0, x1, y1] = *win;
        let t = Instant::now();
        let crop = rgb8.crop(x0, y0, x1 - x0, y1 - y0)?;
        let emb = sam.embed(&crop)?;
        timings.embed_ms += t.elapsed().as_secs_f64() * 1e3;
        timings.windows += 1;
        let shifted: Vec<Prompt> = idx
            .iter()
            .map(|&i| {
                let p = &prompts[i];
                Prompt {
                    points: p
                        .points
                        .iter()
                        .map(|q| PointPrompt {
                            x: q.x - x0 as f32,
                            y: q.y - y0 as f32,
                            ..*q
                        })
                        .collect(),
                    bbox: p.bbox.map(|b| {
                        [
                            b[0] - x0 as f32,
                            b[1] - y0 as f32,
                            b[2] - x0 as f32,
                            b[3] - y0 as f32,
                        ]
                    }),
                    mask_logits: None,
                }
            })
            .collect();
        for (_, m) in segment_embedded_indexed(sam, &emb, &shifted, &in_window, &mut timings)? {
            all.push(GeneratedMask {
                segmentation: m.segmentation.placed(w, h, x0, y0),
                bbox: [m.bbox[0] + x0, m.bbox[1] + y0, m.bbox[2], m.bbox[3]],
                point_coords: [m.point_coords[0] + x0 as f64, m.point_coords[1] + y0 as f64],
                crop_box: [x0, y0, x1 - x0, y1 - y0],
                ..m
            });
        }
    }
    let t = Instant::now();
    let boxes: Vec<BBox> = all
        .iter()
        .map(|m| crate::amg::box_of_xywh(m.bbox))
        .collect();
    let scores: Vec<f32> = all.iter().map(|m| m.predicted_iou).collect();
    let keep = nms(&boxes, &scores, cfg.box_nms_thresh);
    let mut slots: Vec<Option<GeneratedMask>> = all.into_iter().map(Some).collect();
    let masks = keep.iter().filter_map(|&i| slots[i].take()).collect();
    timings.post_ms += t.elapsed().as_secs_f64() * 1e3;
    Ok(AmgOutput {
        width: w,
        height: h,
        masks,
        timings,
    })
}

/// The box `[x0, y0, x1, y1]` holding a prompt's box and points.
fn extent(p: &Prompt) -> [f32; 4] {
    let mut e = p.bbox.unwrap_or([f32::MAX, f32::MAX, f32::MIN, f32::MIN]);
    for q in &p.points {
        e = [e[0].min(q.x), e[1].min(q.y), e[2].max(q.x), e[3].max(q.y)];
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompts_from_labels_box_and_innermost_point() {
        // An L-shaped object: its centroid lies outside it, its innermost pixel inside.
        let mut data = vec![0u32; 10 * 8];
        for y in 1..7 {
            for x in 1..4 {
                data[y * 10 + x] = 1;
            }
        }
        for y in 4..7 {
            for x in 4..9 {
                data[y * 10 + x] = 1;
            }
        }
        let l = LabelImage::new(10, 8, data.clone()).unwrap();
        let p = prompts_from_labels(&l, PromptKind::BoxPoint, 2.0);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].bbox, Some([0.0, 0.0, 9.0, 7.0]));
        let q = p[0].points[0];
        let (x, y) = (q.x as usize, q.y as usize);
        assert_eq!(
            data[y * 10 + x],
            1,
            "the point lies on the object: ({x}, {y})"
        );
        assert!(x >= 2 && y >= 2, "away from the outline: ({x}, {y})");
        assert!(prompts_from_labels(&l, PromptKind::Box, 0.0)[0]
            .points
            .is_empty());
        assert!(prompts_from_labels(&l, PromptKind::Point, 0.0)[0]
            .bbox
            .is_none());
        assert!(PromptKind::from_name("boxes").is_err());
    }

    #[test]
    fn prompts_outside_the_image_are_refused_with_their_index() {
        let ok = Prompt {
            bbox: Some([0.0, 0.0, 10.0, 5.0]),
            ..Prompt::default()
        };
        assert!(check_prompts(std::slice::from_ref(&ok), 10, 5).is_ok());
        let out = Prompt {
            bbox: Some([0.0, 0.0, 11.0, 5.0]),
            ..Prompt::default()
        };
        let e = check_prompts(&[ok.clone(), out], 10, 5)
            .unwrap_err()
            .to_string();
        assert!(e.contains("prompt 1") && e.contains("10x5"), "{e}");
        let flipped = Prompt {
            bbox: Some([5.0, 0.0, 1.0, 5.0]),
            ..Prompt::default()
        };
        assert!(check_prompts(&[flipped], 10, 5).is_err());
        assert!(check_prompts(&[Prompt::default()], 10, 5).is_err());
    }
}
