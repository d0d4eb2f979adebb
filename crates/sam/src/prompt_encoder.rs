//! SAM's prompt encoder (upstream `segment_anything/modeling/prompt_encoder.py`).
//!
//! Points and box corners become 256-wide tokens: a random-Fourier positional encoding of their
//! position plus a learned embedding of their kind. A mask prompt (`256 × 256` logits) becomes a
//! dense `64 × 64 × 256` embedding through a small convolutional stack; without one, a learned
//! "no mask" vector is used at every position. The sparse tokens are few, so they are built on the
//! host; the dense positional encoding of the embedding grid is computed once at load.

use crate::nn::gelu;
use candle_core::{Device, Module, Result, Tensor};
use candle_nn::VarBuilder;

/// Width of every prompt token.
pub const EMBED_DIM: usize = 256;
/// Side of a mask prompt (low-resolution logits, as the decoder outputs them).
pub const MASK_INPUT_SIZE: usize = 256;

/// The kind of a point prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PointLabel {
    /// Background: the mask should not contain this point.
    Negative,
    /// Foreground: the mask should contain this point.
    Positive,
}

/// The prompt encoder's weights.
#[derive(Debug, Clone)]
pub struct PromptEncoder {
    /// `2 × 128` Gaussian matrix of the positional encoding.
    gaussian: Vec<[f32; 2]>,
    /// point_embeddings 0..3: negative, positive, box corner 1, box corner 2.
    point_embeddings: [Vec<f32>; 4],
    not_a_point: Vec<f32>,
    no_mask: Tensor,
    mask_convs: [(Tensor, Tensor); 3],
    mask_norms: [(candle_nn::LayerNorm, usize); 2],
    dense_pe: Tensor,
    input_size: usize,
}

impl PromptEncoder {
    /// Loads from `vb` (the `prompt_encoder` prefix); `input_size` is the model input side (1024),
    /// `grid` the embedding side (64).
    pub fn load(vb: VarBuilder, input_size: usize, grid: usize) -> Result<Self> {
        let g = vb
            .get(
                (2, EMBED_DIM / 2),
                "pe_layer.positional_encoding_gaussian_matrix",
            )?
            .to_vec2::<f32>()?;
        let gaussian = (0..EMBED_DIM / 2).map(|j| [g[0][j], g[1][j]]).collect();
        let emb = |name: &str| -> Result<Vec<f32>> {
            vb.get((1, EMBED_DIM), name)?
                .flatten_all()?
                .to_vec1::<f32>()
        };
        let point_embeddings = [
            emb("point_embeddings.0.weight")?,
            emb("point_embeddings.1.weight")?,
            emb("point_embeddings.2.weight")?,
            emb("point_embeddings.3.weight")?,
        ];
        let md = vb.pp("mask_downscaling");
        let conv = |i: &str, o: usize, inp: usize, k: usize| -> Result<(Tensor, Tensor)> {
            Ok((
                md.get((o, inp, k, k), &format!("{i}.weight"))?,
                md.get(o, &format!("{i}.bias"))?,
            ))
        };
        let norm = |i: &str, c: usize| -> Result<(candle_nn::LayerNorm, usize)> {
            Ok((
                candle_nn::LayerNorm::new(
                    md.get(c, &format!("{i}.weight"))?,
                    md.get(c, &format!("{i}.bias"))?,
                    1e-6,
                ),
                c,
            ))
        };
        let mut pe = PromptEncoder {
            gaussian,
            point_embeddings,
            not_a_point: emb("not_a_point_embed.weight")?,
            no_mask: vb.get((1, EMBED_DIM), "no_mask_embed.weight")?,
            mask_convs: [
                conv("0", 4, 1, 2)?,
                conv("3", 16, 4, 2)?,
                conv("6", EMBED_DIM, 16, 1)?,
            ],
            mask_norms: [norm("1", 4)?, norm("4", 16)?],
            dense_pe: Tensor::zeros(1, candle_core::DType::F32, vb.device())?,
            input_size,
        };
        pe.dense_pe = pe.grid_pe(grid, vb.device())?;
        Ok(pe)
    }

    /// Positional encoding of a point in `[0, 1]²` (x, y).
    fn pe_unit(&self, x: f32, y: f32, out: &mut [f32]) {
        let (cx, cy) = (2.0 * x - 1.0, 2.0 * y - 1.0);
        let half = self.gaussian.len();
        for (j, g) in self.gaussian.iter().enumerate() {
            let v = std::f32::consts::TAU * (cx * g[0] + cy * g[1]);
            out[j] = v.sin();
            out[half + j] = v.cos();
        }
    }

    /// Dense positional encoding of the `grid × grid` embedding, `1 × grid² × 256` (row-major).
    fn grid_pe(&self, grid: usize, device: &Device) -> Result<Tensor> {
        let mut data = vec![0f32; grid * grid * EMBED_DIM];
        for i in 0..grid {
            for j in 0..grid {
                let o = (i * grid + j) * EMBED_DIM;
                self.pe_unit(
                    (j as f32 + 0.5) / grid as f32,
                    (i as f32 + 0.5) / grid as f32,
                    &mut data[o..o + EMBED_DIM],
                );
            }
        }
        Tensor::from_vec(data, (1, grid * grid, EMBED_DIM), device)
    }

    /// The dense positional encoding of the image embedding, `1 × 4096 × 256`.
    pub fn dense_pe(&self) -> &Tensor {
        &self.dense_pe
    }

    /// One token: the encoding of a point at `(x, y)` in model-input pixels plus `kind`'s
    /// embedding. Upstream shifts points to pixel centres (+0.5) before encoding.
    fn token(&self, x: f32, y: f32, kind: &[f32], out: &mut Vec<f32>) {
        let s = self.input_size as f32;
        let mut t = vec![0f32; EMBED_DIM];
        self.pe_unit((x + 0.5) / s, (y + 0.5) / s, &mut t);
        out.extend(t.iter().zip(kind).map(|(a, b)| a + b));
    }

    /// Sparse tokens of one prompt (`points` and `bbox` already in model-input pixels).
    /// Without a box, a "not a point" token is appended, as upstream does.
    pub fn sparse_tokens(
        &self,
        points: &[(f32, f32, PointLabel)],
        bbox: Option<[f32; 4]>,
    ) -> Vec<f32> {
        let mut out = Vec::with_capacity((points.len() + 2) * EMBED_DIM);
        for &(x, y, l) in points {
            let kind = match l {
                PointLabel::Negative => &self.point_embeddings[0],
                PointLabel::Positive => &self.point_embeddings[1],
            };
            self.token(x, y, kind, &mut out);
        }
        match bbox {
            Some([x0, y0, x1, y1]) => {
                self.token(x0, y0, &self.point_embeddings[2], &mut out);
                self.token(x1, y1, &self.point_embeddings[3], &mut out);
            }
            None if !points.is_empty() => out.extend_from_slice(&self.not_a_point),
            None => {}
        }
        out
    }

    /// The "no mask" dense embedding, `1 × 1 × 256` (broadcast over the grid).
    pub fn no_mask(&self) -> Result<Tensor> {
        self.no_mask.reshape((1, 1, EMBED_DIM))
    }

    /// Dense embeddings of mask prompts: `masks` is `B × 1 × 256 × 256`; returns
    /// `B × 4096 × 256` (channels-last).
    pub fn embed_masks(&self, masks: &Tensor) -> Result<Tensor> {
        let mut x = masks.clone();
        for i in 0..3 {
            let (w, b) = &self.mask_convs[i];
            let stride = if i < 2 { 2 } else { 1 };
            x = x.conv2d(w, 0, stride, 1, 1)?;
            x = x.broadcast_add(&b.reshape((1, b.dims1()?, 1, 1))?)?;
            if i < 2 {
                let (norm, _) = &self.mask_norms[i];
                let y = norm.forward(&x.permute((0, 2, 3, 1))?.contiguous()?)?;
                x = gelu(&y)?.permute((0, 3, 1, 2))?.contiguous()?;
            }
        }
        let (b, c, h, w) = x.dims4()?;
        x.permute((0, 2, 3, 1))?
            .contiguous()?
            .reshape((b, h * w, c))
    }
}
