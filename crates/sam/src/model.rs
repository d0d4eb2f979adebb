//! [`Sam`]: the whole model (image encoder, prompt encoder, mask decoder) with SAM's input
//! preparation, prompted prediction and mapping of masks back to the image frame.
//!
//! The image embedding is computed once per image ([`Sam::embed`]) and reused for any number of
//! prompts ([`Sam::predict`]), which are decoded in batches.

use crate::embedding_cache::EmbeddingCache;
use crate::error::{Result, SamError};
use crate::factored_decoder::{FactoredDecoder, FactoredImage};
use crate::image_encoder::{VitConfig, VitEncoder};
use crate::mask_decoder::{MaskDecoder, LOW_RES};
use crate::prompt_encoder::{PointLabel, PromptEncoder, EMBED_DIM, MASK_INPUT_SIZE};
use crate::resize::{resize_like_pil_bilinear, resized_size, MaskResizer};
use crate::tiny_vit::{TinyVit, TinyVitConfig, EMBED_SIZE, INPUT_SIZE};
use crate::transformer::SharedKeys;
use crate::weights::{open_checkpoint, SamModel};
use candle_core::{Device, Tensor};
use candle_nn::VarBuilder;
use mica_core::{BinaryMask, BitDepth, Channels, Image, Pixels};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// ImageNet pixel mean and standard deviation (0–255 scale), as upstream `Sam`.
const PIXEL_MEAN: [f32; 3] = [123.675, 116.28, 103.53];
const PIXEL_STD: [f32; 3] = [58.395, 57.12, 57.375];

/// Threshold on mask logits that makes a binary mask (upstream `Sam.mask_threshold`).
pub const MASK_THRESHOLD: f32 = 0.0;

/// How an image is turned into the 8-bit RGB input SAM expects.
///
/// 8-bit images are used as they are (gray repeated into three channels), as the reference
/// pipelines do with `cv2.cvtColor`. 16-bit and float images are contrast-stretched between two
/// percentiles to 8 bits first. Set `stretch_8bit` to stretch 8-bit images too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImagePrep {
    /// Lower percentile mapped to 0 for images that are stretched.
    pub low_pct: f64,
    /// Upper percentile mapped to 255.
    pub high_pct: f64,
    /// Stretch 8-bit images as well (off: they are used unchanged).
    pub stretch_8bit: bool,
}

impl Default for ImagePrep {
    fn default() -> Self {
        ImagePrep {
            low_pct: 0.5,
            high_pct: 99.5,
            stretch_8bit: false,
        }
    }
}

impl ImagePrep {
    /// The 8-bit RGB image SAM sees.
    ///
    /// # Errors
    /// [`SamError::Image`] for invalid percentiles.
    pub fn apply(&self, image: &Image) -> Result<Image> {
        let img8 = if image.bit_depth() == BitDepth::U8 && !self.stretch_8bit {
            image.clone()
        } else {
            image.stretch_to_u8(self.low_pct, self.high_pct)?
        };
        Ok(img8.to_rgb())
    }
}

/// A point prompt in the image's pixel coordinates (x = column, y = row).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PointPrompt {
    pub x: f32,
    pub y: f32,
    pub label: PointLabel,
}

/// One prompt: any combination of points, a box and a low-resolution mask.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Prompt {
    pub points: Vec<PointPrompt>,
    /// A box *prompt*: its corners `[x0, y0, x1, y1]` in continuous image coordinates, as the
    /// prompt encoder takes them (sub-pixel values and margins allowed). Not a pixel box: the
    /// boxes of masks and objects in this crate are [`mica_core::BBox`].
    pub bbox: Option<[f32; 4]>,
    /// `256 × 256` logits, usually a previous prediction's [`Prediction::low_res_logits`].
    pub mask_logits: Option<Vec<f32>>,
}

/// What a caller of [`Sam::predict_filtered`] needs besides the predicted IoUs.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DecodeNeeds {
    /// Compute masks only for prompts with a predicted IoU above this; the others get empty
    /// [`Prediction::low_res_logits`].
    pub min_iou: Option<f32>,
    /// Only these leading rows and columns of the `256 × 256` low-resolution logits will be
    /// read (the part covering the image, see [`crate::resize::MaskResizer::low_res_extent`]);
    /// the decoder may leave the rest at 0.
    pub low_res_extent: Option<(usize, usize)>,
}

/// The decoder's answer to one prompt.
#[derive(Debug, Clone)]
pub struct Prediction {
    /// `K × 256 × 256` logits in the padded model-input frame (K = 3 with multimask, else 1);
    /// empty when skipped by [`Sam::predict_filtered`].
    pub low_res_logits: Vec<f32>,
    /// Predicted IoU of each of the K masks.
    pub iou: Vec<f32>,
}

impl Prediction {
    /// Number of masks.
    pub fn len(&self) -> usize {
        self.iou.len()
    }
    pub fn is_empty(&self) -> bool {
        self.iou.is_empty()
    }
    /// Logits of mask `k` (empty when they were not computed, see [`Sam::predict_filtered`]).
    pub fn logits(&self, k: usize) -> &[f32] {
        self.low_res_logits
            .get(k * LOW_RES * LOW_RES..(k + 1) * LOW_RES * LOW_RES)
            .unwrap_or(&[])
    }
}

/// An image's embedding and what is needed to decode prompts against it.
#[derive(Debug, Clone)]
pub struct ImageEmbedding {
    /// `1 × 4096 × 256`.
    features: Tensor,
    /// `features` plus the "no mask" dense embedding.
    src_no_mask: Tensor,
    shared: SharedKeys,
    /// The factored decoder's per-image part (CPU, [`DecoderPath::Factored`]).
    factored: Option<Arc<FactoredImage>>,
    width: usize,
    height: usize,
}

impl ImageEmbedding {
    /// The encoder output, `1 × 4096 × 256` (rows of the 64 × 64 grid, channels last).
    pub fn features(&self) -> &Tensor {
        &self.features
    }

    /// Width and height of the image that was embedded.
    pub fn image_size(&self) -> (usize, usize) {
        (self.width, self.height)
    }
}

/// The image encoder variants: MobileSAM's TinyViT and SAM's ViT (B, L, H).
#[derive(Debug, Clone)]
pub enum ImageEncoder {
    TinyVit(TinyVit),
    Vit(VitEncoder),
}

/// Which model a checkpoint holds, from its tensors: TinyViT's convolutional patch embedding
/// (`image_encoder.patch_embed.seq.0.c.weight`) or ViT's linear one
/// (`image_encoder.patch_embed.proj.weight`), whose width tells B (768), L (1024) and H (1280).
fn detect_model(vb: &VarBuilder, path: &Path) -> Result<SamModel> {
    let bad = |reason: String| SamError::BadWeights {
        path: path.to_path_buf(),
        reason,
    };
    if vb.contains_tensor("image_encoder.patch_embed.seq.0.c.weight") {
        return Ok(SamModel::MobileSam);
    }
    let name = "image_encoder.patch_embed.proj.weight";
    if vb.contains_tensor(name) {
        let t = vb
            .get_unchecked(name)
            .map_err(|e| bad(format!("{name}: {e}")))?;
        return match t.dims().first() {
            Some(768) => Ok(SamModel::VitB),
            Some(1024) => Ok(SamModel::VitL),
            Some(1280) => Ok(SamModel::VitH),
            _ => Err(bad(format!(
                "a ViT image encoder of width {:?}, not SAM ViT-B (768), ViT-L (1024) or ViT-H (1280)",
                t.dims().first()
            ))),
        };
    }
    Err(bad(
        "not a SAM or MobileSAM checkpoint (no image_encoder.patch_embed tensors)".into(),
    ))
}

/// Which implementation of the mask decoder answers prompts without a mask input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DecoderPath {
    /// On the CPU, the factored decoder ([`crate::factored_decoder`]): the image side is
    /// projected once per image and each prompt adds a low-rank part; elsewhere, and for
    /// prompts with a mask, the tensor decoder.
    #[default]
    Factored,
    /// Always the tensor decoder ([`MaskDecoder`], candle operations on any device).
    Tensor,
}

/// Segment Anything: encoder, prompt encoder, decoder.
#[derive(Debug, Clone)]
pub struct Sam {
    model: SamModel,
    encoder: ImageEncoder,
    prompt_encoder: PromptEncoder,
    decoder: MaskDecoder,
    /// The decoder's weights on the host (CPU only).
    factored: Option<Arc<FactoredDecoder>>,
    device: Device,
    weights: PathBuf,
    /// Largest number of prompts decoded in one pass (bounds memory: ~20 MB per prompt with
    /// the tensor decoder, ~4 MB with the factored one).
    pub decoder_batch: usize,
    /// Which decoder answers prompts without a mask input: chosen once, at load (or with
    /// [`Sam::with_decoder`], which returns a new model), so every embedding this model makes
    /// fits the decoder that reads it.
    decoder_path: DecoderPath,
    /// Where embeddings are kept between runs ([`Sam::with_embedding_cache`]).
    cache: Option<Arc<EmbeddingCache>>,
}

impl Sam {
    /// Loads MobileSAM from a checkpoint (`.pt` zip or `.safetensors`).
    ///
    /// # Errors
    /// [`SamError::BadWeights`] naming the file when it cannot be parsed, lacks a tensor, or
    /// holds another model.
    pub fn load_mobile_sam(path: &Path, device: &Device) -> Result<Self> {
        Self::load_as(SamModel::MobileSam, path, device)
    }

    /// Loads whichever model the checkpoint holds (MobileSAM, SAM ViT-B, ViT-L or ViT-H: see
    /// [`Sam::model`]).
    ///
    /// # Errors
    /// [`SamError::BadWeights`] naming the file when it cannot be parsed, is not a SAM
    /// checkpoint, or lacks a tensor.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let vb = open_checkpoint(path, device)?;
        let model = detect_model(&vb, path)?;
        Self::from_var_builder(model, vb, path, device)
    }

    /// Loads a checkpoint that must hold `model`.
    ///
    /// # Errors
    /// As [`Sam::load`], and [`SamError::BadWeights`] when the file holds another model.
    pub fn load_as(model: SamModel, path: &Path, device: &Device) -> Result<Self> {
        let vb = open_checkpoint(path, device)?;
        let found = detect_model(&vb, path)?;
        if found != model {
            return Err(SamError::BadWeights {
                path: path.to_path_buf(),
                reason: format!("this is a {found} checkpoint, not {model}"),
            });
        }
        Self::from_var_builder(model, vb, path, device)
    }

    fn from_var_builder(
        model: SamModel,
        vb: VarBuilder,
        path: &Path,
        device: &Device,
    ) -> Result<Self> {
        let bad = |e: candle_core::Error| SamError::BadWeights {
            path: path.to_path_buf(),
            reason: format!("not a complete {model} checkpoint: {e}"),
        };
        let ie = vb.pp("image_encoder");
        let encoder = match model {
            SamModel::MobileSam => {
                ImageEncoder::TinyVit(TinyVit::load(ie, &TinyVitConfig::mobile_sam()).map_err(bad)?)
            }
            SamModel::VitB => {
                ImageEncoder::Vit(VitEncoder::load(ie, &VitConfig::vit_b()).map_err(bad)?)
            }
            SamModel::VitL => {
                ImageEncoder::Vit(VitEncoder::load(ie, &VitConfig::vit_l()).map_err(bad)?)
            }
            SamModel::VitH => {
                ImageEncoder::Vit(VitEncoder::load(ie, &VitConfig::vit_h()).map_err(bad)?)
            }
        };
        let prompt_encoder =
            PromptEncoder::load(vb.pp("prompt_encoder"), INPUT_SIZE, EMBED_SIZE).map_err(bad)?;
        let decoder = MaskDecoder::load(vb.pp("mask_decoder")).map_err(bad)?;
        let factored = if device.is_cpu() {
            Some(Arc::new(
                FactoredDecoder::load(vb.pp("mask_decoder")).map_err(bad)?,
            ))
        } else {
            None
        };
        Ok(Sam {
            model,
            encoder,
            prompt_encoder,
            decoder,
            factored,
            device: device.clone(),
            weights: path.to_path_buf(),
            decoder_batch: 16,
            decoder_path: if device.is_cpu() {
                DecoderPath::Factored
            } else {
                DecoderPath::Tensor
            },
            cache: None,
        })
    }

    /// This model with another decoder for prompts without a mask input. Embeddings made by
    /// `self` are not for the returned model (the factored decoder needs its own per-image part).
    ///
    /// # Errors
    /// [`SamError::Invalid`] for [`DecoderPath::Factored`] off the CPU (it is a CPU kernel).
    pub fn with_decoder(mut self, path: DecoderPath) -> Result<Self> {
        if path == DecoderPath::Factored && self.factored.is_none() {
            return Err(SamError::Invalid(format!(
                "the factored decoder runs on the CPU only; this model is on {:?}",
                self.device
            )));
        }
        self.decoder_path = path;
        Ok(self)
    }

    /// The decoder that answers prompts without a mask input.
    pub fn decoder(&self) -> DecoderPath {
        self.decoder_path
    }

    /// This model, reading embeddings from `cache` when it has them and storing those it
    /// computes (see [`crate::embedding_cache`]).
    pub fn with_embedding_cache(mut self, cache: EmbeddingCache) -> Self {
        self.cache = Some(Arc::new(cache));
        self
    }

    /// The embedding cache in use, if any.
    pub fn embedding_cache(&self) -> Option<&EmbeddingCache> {
        self.cache.as_deref()
    }

    /// Which model this is.
    pub fn model(&self) -> SamModel {
        self.model
    }

    /// The weights file this model was loaded from.
    pub fn weights_path(&self) -> &Path {
        &self.weights
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Resizes (longest side 1024, bilinear with antialiasing), normalises and zero-pads an 8-bit RGB image into the
    /// `1 × 3 × 1024 × 1024` model input.
    ///
    /// # Errors
    /// [`SamError::Invalid`] unless the image is 8-bit RGB (see [`ImagePrep::apply`]).
    pub fn preprocess(&self, rgb8: &Image) -> Result<Tensor> {
        if rgb8.channels() != Channels::Rgb || rgb8.bit_depth() != BitDepth::U8 {
            return Err(SamError::Invalid(
                "SAM input must be 8-bit RGB; prepare it with ImagePrep::apply".into(),
            ));
        }
        let (w, h) = (rgb8.width() as usize, rgb8.height() as usize);
        let (nw, nh) = resized_size(w, h, INPUT_SIZE);
        let Pixels::U8(src) = rgb8.pixels() else {
            return Err(SamError::Invalid("SAM input must be 8-bit".into()));
        };
        // Upstream resizes with torchvision `resize` on a PIL image (bilinear, antialiased);
        // this reproduces PIL bit for bit.
        let px = resize_like_pil_bilinear(src, w, h, 3, nw, nh);
        let plane = INPUT_SIZE * INPUT_SIZE;
        let mut data = vec![0f32; 3 * plane];
        for y in 0..nh {
            for x in 0..nw {
                let s = (y * nw + x) * 3;
                for c in 0..3 {
                    data[c * plane + y * INPUT_SIZE + x] =
                        (px[s + c] as f32 - PIXEL_MEAN[c]) / PIXEL_STD[c];
                }
            }
        }
        Ok(Tensor::from_vec(
            data,
            (1, 3, INPUT_SIZE, INPUT_SIZE),
            &self.device,
        )?)
    }

    /// Computes the embedding of an 8-bit RGB image (see [`ImagePrep::apply`]).
    ///
    /// # Errors
    /// [`SamError::Invalid`] for other inputs and images under
    /// [`MIN_IMAGE_SIDE`](crate::MIN_IMAGE_SIDE) pixels on a side; [`SamError::Candle`] if the
    /// network fails.
    pub fn embed(&self, rgb8: &Image) -> Result<ImageEmbedding> {
        let _span = tracing::info_span!("sam_embed").entered();
        let min = crate::study::MIN_IMAGE_SIDE;
        if rgb8.width() < min || rgb8.height() < min {
            // Upscaled to 1024 pixels, a few pixels become smooth ramps SAM cuts into
            // thousands of "objects" (a 1x1 image gave 2,028).
            return Err(SamError::Invalid(format!(
                "image is {}x{} pixels; SAM needs at least {min} on each side",
                rgb8.width(),
                rgb8.height()
            )));
        }
        let shape = [1, EMBED_SIZE * EMBED_SIZE, EMBED_DIM];
        let cached = self
            .cache
            .as_ref()
            .and_then(|c| c.load(rgb8, &shape, &self.device));
        let features = match cached {
            Some(f) => f,
            None => {
                let f = self.encode(rgb8)?;
                if let Some(c) = &self.cache {
                    if let Err(e) = c.store(rgb8, &f) {
                        tracing::warn!("cannot store the SAM embedding: {e}");
                    }
                }
                f
            }
        };
        self.embedding_from_features(features, rgb8.width() as usize, rgb8.height() as usize)
    }

    /// Runs the image encoder on an 8-bit RGB image: the features, `1 × 4096 × 256`.
    ///
    /// # Errors
    /// As [`Sam::embed`].
    pub fn encode(&self, rgb8: &Image) -> Result<Tensor> {
        let x = self.preprocess(rgb8)?;
        let features = match &self.encoder {
            ImageEncoder::TinyVit(e) => e.forward(&x)?,
            ImageEncoder::Vit(e) => e.forward(&x)?,
        };
        Ok(features.reshape((1, EMBED_SIZE * EMBED_SIZE, EMBED_DIM))?)
    }

    /// The embedding of a `width × height` image from its encoder features (from
    /// [`Sam::encode`] of this model).
    ///
    /// # Errors
    /// [`SamError::Invalid`] for features of another shape.
    pub fn embedding_from_features(
        &self,
        features: Tensor,
        width: usize,
        height: usize,
    ) -> Result<ImageEmbedding> {
        if features.dims() != [1, EMBED_SIZE * EMBED_SIZE, EMBED_DIM] {
            return Err(SamError::Invalid(format!(
                "SAM features must be 1x{}x{EMBED_DIM}, got {:?}",
                EMBED_SIZE * EMBED_SIZE,
                features.dims()
            )));
        }
        let src_no_mask = features.broadcast_add(&self.prompt_encoder.no_mask()?)?;
        let shared = self
            .decoder
            .shared_keys(&src_no_mask, self.prompt_encoder.dense_pe())?;
        let factored = match (&self.factored, self.decoder_path) {
            (Some(dec), DecoderPath::Factored) => {
                let src = src_no_mask.flatten_all()?.to_vec1::<f32>()?;
                let pe = self
                    .prompt_encoder
                    .dense_pe()
                    .flatten_all()?
                    .to_vec1::<f32>()?;
                Some(Arc::new(dec.prepare(&src, &pe)))
            }
            _ => None,
        };
        Ok(ImageEmbedding {
            features,
            src_no_mask,
            shared,
            factored,
            width,
            height,
        })
    }

    /// Decodes prompts against an embedding. Prompts with the same structure (number of points,
    /// box or not, mask or not) are decoded together in batches of [`Sam::decoder_batch`];
    /// results come back in the order of `prompts`.
    ///
    /// # Errors
    /// [`SamError::Invalid`] for a prompt with neither points nor box nor mask, or a mask prompt
    /// that is not `256 × 256`.
    pub fn predict(
        &self,
        emb: &ImageEmbedding,
        prompts: &[Prompt],
        multimask: bool,
    ) -> Result<Vec<Prediction>> {
        self.predict_filtered(emb, prompts, multimask, DecodeNeeds::default())
    }

    /// As [`Sam::predict`], computing only what `needs` says: masks only for prompts with a
    /// predicted IoU above `needs.min_iou` (other prompts get empty
    /// [`Prediction::low_res_logits`]; their IoUs are still given), and with the factored
    /// decoder only the part `needs.low_res_extent` of each mask. The automatic generator uses
    /// both: its `pred_iou_thresh` and the image's part of the padded frame.
    ///
    /// # Errors
    /// As [`Sam::predict`].
    pub fn predict_filtered(
        &self,
        emb: &ImageEmbedding,
        prompts: &[Prompt],
        multimask: bool,
        needs: DecodeNeeds,
    ) -> Result<Vec<Prediction>> {
        let _span = tracing::debug_span!("sam_decode", prompts = prompts.len()).entered();
        for (i, p) in prompts.iter().enumerate() {
            if p.points.is_empty() && p.bbox.is_none() && p.mask_logits.is_none() {
                return Err(SamError::Invalid(format!("prompt {i} is empty")));
            }
            if let Some(m) = &p.mask_logits {
                if m.len() != MASK_INPUT_SIZE * MASK_INPUT_SIZE {
                    return Err(SamError::Invalid(format!(
                        "prompt {i}: mask prompt has {} values, expected 256x256",
                        m.len()
                    )));
                }
            }
        }
        let key = |p: &Prompt| (p.points.len(), p.bbox.is_some(), p.mask_logits.is_some());
        let mut order: Vec<usize> = (0..prompts.len()).collect();
        order.sort_by_key(|&i| key(&prompts[i]));
        let mut out: Vec<Option<Prediction>> = vec![None; prompts.len()];
        let mut start = 0;
        while start < order.len() {
            let k0 = key(&prompts[order[start]]);
            let mut end = start;
            while end < order.len()
                && key(&prompts[order[end]]) == k0
                && end - start < self.decoder_batch.max(1)
            {
                end += 1;
            }
            let group: Vec<&Prompt> = order[start..end].iter().map(|&i| &prompts[i]).collect();
            let preds = self.decode_group(emb, &group, multimask, needs)?;
            for (&i, p) in order[start..end].iter().zip(preds) {
                out[i] = Some(p);
            }
            start = end;
        }
        Ok(out.into_iter().flatten().collect())
    }

    /// Decodes prompts of identical structure in one pass.
    fn decode_group(
        &self,
        emb: &ImageEmbedding,
        group: &[&Prompt],
        multimask: bool,
        needs: DecodeNeeds,
    ) -> Result<Vec<Prediction>> {
        let min_iou = needs.min_iou;
        let b = group.len();
        let (iw, ih) = resized_size(emb.width, emb.height, INPUT_SIZE);
        let sx = iw as f32 / emb.width as f32;
        let sy = ih as f32 / emb.height as f32;
        let mut sparse = Vec::new();
        for p in group {
            let pts: Vec<(f32, f32, PointLabel)> = p
                .points
                .iter()
                .map(|q| (q.x * sx, q.y * sy, q.label))
                .collect();
            let bbox = p
                .bbox
                .map(|[x0, y0, x1, y1]| [x0 * sx, y0 * sy, x1 * sx, y1 * sy]);
            sparse.extend(self.prompt_encoder.sparse_tokens(&pts, bbox));
        }
        if group[0].mask_logits.is_none() && self.decoder_path == DecoderPath::Factored {
            let (Some(dec), Some(img)) = (&self.factored, &emb.factored) else {
                return Err(SamError::Invalid(
                    "this embedding was made by a model with the tensor decoder; embed the \
                     image with this model"
                        .into(),
                ));
            };
            {
                return Ok(dec
                    .decode(img, &sparse, b, multimask, min_iou, needs.low_res_extent)
                    .into_iter()
                    .map(|p| Prediction {
                        low_res_logits: p.logits,
                        iou: p.iou,
                    })
                    .collect());
            }
        }
        let n_tokens = sparse.len() / (b * EMBED_DIM);
        let sparse = Tensor::from_vec(sparse, (b, n_tokens, EMBED_DIM), &self.device)?;
        let pe = self.prompt_encoder.dense_pe();
        let (hs, src, iou) = if group[0].mask_logits.is_some() {
            let mut m = Vec::with_capacity(b * MASK_INPUT_SIZE * MASK_INPUT_SIZE);
            for p in group {
                if let Some(l) = &p.mask_logits {
                    m.extend_from_slice(l);
                }
            }
            let m = Tensor::from_vec(m, (b, 1, MASK_INPUT_SIZE, MASK_INPUT_SIZE), &self.device)?;
            let dense = self.prompt_encoder.embed_masks(&m)?;
            let src = dense.broadcast_add(&emb.features)?;
            self.decoder
                .forward_tokens(&src, pe, &sparse, None, multimask)?
        } else {
            self.decoder.forward_tokens(
                &emb.src_no_mask,
                pe,
                &sparse,
                Some(&emb.shared),
                multimask,
            )?
        };
        let iou = iou.to_vec2::<f32>()?;
        // Upscale only the prompts with a mask whose predicted IoU passes `min_iou`.
        let wanted: Vec<u32> = iou
            .iter()
            .enumerate()
            .filter(|(_, v)| min_iou.is_none_or(|t| v.iter().any(|&x| x > t)))
            .map(|(i, _)| i as u32)
            .collect();
        let mut logits: Vec<Vec<f32>> = vec![Vec::new(); b];
        if !wanted.is_empty() {
            let masks = if wanted.len() == b {
                self.decoder.upscale(&hs, &src, multimask)?
            } else {
                let idx = Tensor::from_vec(wanted.clone(), wanted.len(), &self.device)?;
                let hs = hs.index_select(&idx, 0)?;
                let src = src.index_select(&idx, 0)?;
                self.decoder.upscale(&hs, &src, multimask)?
            };
            let masks = masks.flatten_all()?.to_vec1::<f32>()?;
            let per = masks.len() / wanted.len();
            for (j, &i) in wanted.iter().enumerate() {
                logits[i as usize] = masks[j * per..(j + 1) * per].to_vec();
            }
        }
        Ok(iou
            .into_iter()
            .zip(logits)
            .map(|(iou, low_res_logits)| Prediction {
                low_res_logits,
                iou,
            })
            .collect())
    }

    /// Mask `k` of a prediction as a binary mask in the embedded image's frame.
    ///
    /// # Errors
    /// [`SamError::Invalid`] when `k` is out of range.
    pub fn mask_in_frame(
        &self,
        emb: &ImageEmbedding,
        pred: &Prediction,
        k: usize,
    ) -> Result<BinaryMask> {
        if k >= pred.len() {
            return Err(SamError::Invalid(format!(
                "mask {k} requested from a prediction of {}",
                pred.len()
            )));
        }
        let r = MaskResizer::new(emb.width, emb.height, INPUT_SIZE, LOW_RES);
        let logits = r.resize(pred.logits(k));
        Ok(BinaryMask::new(
            emb.width as u32,
            emb.height as u32,
            logits.into_iter().map(|v| v > MASK_THRESHOLD).collect(),
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_prep_is_explicit_about_depth_and_channels() {
        let prep = ImagePrep::default();
        // 8-bit gray: values kept, repeated into RGB.
        let g8 = Image::gray8(2, 1, vec![10, 200]).unwrap();
        let r = prep.apply(&g8).unwrap();
        assert_eq!((r.channels(), r.bit_depth()), (Channels::Rgb, BitDepth::U8));
        assert_eq!(r.pixels(), &Pixels::U8(vec![10, 10, 10, 200, 200, 200]));
        // 16-bit gray: stretched to the full 8-bit range.
        let g16 = Image::gray16(100, 1, (0..100).map(|i| 1000 + 10 * i).collect()).unwrap();
        let r = prep.apply(&g16).unwrap();
        let Pixels::U8(v) = r.pixels() else { panic!() };
        assert_eq!((v[0], v[v.len() - 1]), (0, 255));
        // Stretching 8-bit data is opt-in.
        let s = ImagePrep {
            stretch_8bit: true,
            ..ImagePrep::default()
        }
        .apply(&g8)
        .unwrap();
        assert_eq!(s.pixels(), &Pixels::U8(vec![0, 0, 0, 255, 255, 255]));
        assert!(ImagePrep {
            low_pct: 90.0,
            high_pct: 10.0,
            stretch_8bit: true
        }
        .apply(&g8)
        .is_err());
    }
}
