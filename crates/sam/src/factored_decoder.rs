//! SAM's mask decoder on the CPU with the image side kept in factored form: one part computed
//! once per image, plus a low-rank part per prompt.
//!
//! # Why this is exact
//! In the two-way transformer the 4096 image tokens are changed only by attention to the few
//! prompt tokens and by layer norms; there is no MLP on the image side. After the first
//! image-to-token attention, image token `i` is `X0_i + Σ_{h,t} a_iht u_ht + b` — the shared
//! embedding plus a combination of 56 per-prompt vectors (8 heads × 7 tokens, `u_ht` = head
//! `h`'s slice of the output projection applied to token `t`'s value) with per-token weights
//! `a_iht` (the attention probabilities). A layer norm centres the vector (linear), scales it by
//! `1/s_i` (one number per token) and applies an affine map (linear), so the result keeps the
//! form "per-token multiple of a shared vector + combination of per-prompt vectors + constant".
//! Its `s_i` follows from inner products: `|c(X0_i) + Σ a u|² = |c(X0_i)|² + 2 Σ a ⟨X0_i, u⟩ +
//! aᵀ G a` with `G` the 56 × 56 Gram matrix of the prompt vectors, and `⟨X0_i, u_ht⟩` is a
//! 16-dimensional dot product with a per-image projection. After the second block the image
//! side is a shared part plus 113 prompt vectors.
//!
//! Every projection of the image side (keys, values, queries of the next attention, the first
//! transposed convolution) is then a per-image projection of the shared part, computed once per
//! image, plus per-token weights times a projection of the 113 prompt vectors, computed once per
//! prompt. What is left per prompt and image token is attention weights, these combinations,
//! and after the first transposed convolution the ordinary dense work (layer norm, GELU, the
//! second transposed convolution, the hypernetwork dot products). Per prompt this is about
//! 0.2 G multiply-adds for the transformer instead of 0.4 G, and 0.27 G instead of 0.4 G for
//! the upscaling, which is only done for prompts with a mask whose predicted IoU passes the
//! caller's threshold.
//!
//! The results equal the tensor decoder's ([`crate::mask_decoder::MaskDecoder`]) up to float
//! rounding (tested on the real checkpoint). Mask prompts change the image side per prompt and
//! go to the tensor decoder.

use crate::kernels::{
    bias_gelu_rows, bias_norm_gelu_rows, column_dots, head_attention, head_products,
    head_products_scaled, layer_norm_rows, row_dots, softmax_columns, softmax_rows, HeadBlocked,
    HeadValues, ScaleOf,
};
use crate::linalg::{matmul, MatMut, MatRef, Threads};
use crate::mask_decoder::{LOW_RES, NUM_MULTIMASK};
use candle_core::{DType, Result, Tensor};
use candle_nn::VarBuilder;
use rayon::prelude::*;

/// Model width.
const C: usize = 256;
/// Image tokens (64 × 64).
const N: usize = 4096;
/// Side of the image-token grid.
const GRID: usize = 64;
/// Heads of every attention.
const HEADS: usize = 8;
/// Internal width of the cross-attentions (downsampled by 2).
const I: usize = 128;
/// Head width of the cross-attentions.
const D: usize = I / HEADS;
// The head kernels are written for this head width.
const _: () = assert!(D == crate::kernels::HEAD_DIM);
/// Channels after the first transposed convolution.
const UP1: usize = C / 4;
/// Channels after the second.
const UP2: usize = C / 8;
/// Hidden width of the transformer's MLP.
const MLP_HIDDEN: usize = 2048;
/// Image tokens per tile of the upscaling (one row of the grid).
const TILE: usize = GRID;

fn host(t: &Tensor) -> Result<Vec<f32>> {
    t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()
}

/// `y = x Wᵀ + b`, weights stored `in × out`.
#[derive(Debug, Clone)]
struct Linear {
    wt: Vec<f32>,
    b: Vec<f32>,
    inp: usize,
    out: usize,
}

impl Linear {
    fn load(vb: VarBuilder, inp: usize, out: usize) -> Result<Self> {
        let w = vb.get((out, inp), "weight")?;
        Ok(Linear {
            wt: host(&w.t()?.contiguous()?)?,
            b: host(&vb.get(out, "bias")?)?,
            inp,
            out,
        })
    }

    /// `in × out`.
    fn wt(&self) -> MatRef<'_> {
        MatRef::new(&self.wt, self.inp, self.out)
    }

    /// `rows × in` → `rows × out`, with bias.
    fn forward(&self, x: &[f32], rows: usize, threads: Threads) -> Vec<f32> {
        let mut y = self.b.repeat(rows);
        matmul(
            MatMut::new(&mut y, rows, self.out),
            MatRef::new(x, rows, self.inp),
            self.wt(),
            1.0,
            true,
            threads,
        );
        y
    }

    /// `rows × in` → `rows × out`, without bias.
    fn project(&self, x: &[f32], rows: usize, threads: Threads) -> Vec<f32> {
        let mut y = vec![0f32; rows * self.out];
        matmul(
            MatMut::new(&mut y, rows, self.out),
            MatRef::new(x, rows, self.inp),
            self.wt(),
            1.0,
            false,
            threads,
        );
        y
    }
}

#[derive(Debug, Clone)]
struct Norm {
    g: Vec<f32>,
    b: Vec<f32>,
    eps: f32,
}

impl Norm {
    fn load(vb: VarBuilder, dim: usize, eps: f32) -> Result<Self> {
        Ok(Norm {
            g: host(&vb.get(dim, "weight")?)?,
            b: host(&vb.get(dim, "bias")?)?,
            eps,
        })
    }

    fn apply(&self, x: &mut [f32]) {
        layer_norm_rows(x, &self.g, &self.b, self.eps);
    }
}

#[derive(Debug, Clone)]
struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
}

impl Attention {
    fn load(vb: VarBuilder, downsample: usize) -> Result<Self> {
        let inner = C / downsample;
        Ok(Attention {
            q: Linear::load(vb.pp("q_proj"), C, inner)?,
            k: Linear::load(vb.pp("k_proj"), C, inner)?,
            v: Linear::load(vb.pp("v_proj"), C, inner)?,
            o: Linear::load(vb.pp("out_proj"), inner, C)?,
        })
    }

    /// Attention among the `t` tokens of each of `b` prompts (`b·t × C` each).
    fn tokens(&self, q: &[f32], k: &[f32], v: &[f32], b: usize, t: usize) -> Vec<f32> {
        let rows = b * t;
        let qp = self.q.forward(q, rows, Threads::Pool);
        let kp = self.k.forward(k, rows, Threads::Pool);
        let vp = self.v.forward(v, rows, Threads::Pool);
        let inner = self.q.out;
        let d = inner / HEADS;
        let scale = 1.0 / (d as f32).sqrt();
        let mut o = vec![0f32; rows * inner];
        let mut s = vec![0f32; t];
        for p in 0..b {
            for h in 0..HEADS {
                for i in 0..t {
                    let qi = &qp[(p * t + i) * inner + h * d..][..d];
                    for (j, sj) in s.iter_mut().enumerate() {
                        let kj = &kp[(p * t + j) * inner + h * d..][..d];
                        *sj = qi.iter().zip(kj).map(|(a, b)| a * b).sum::<f32>() * scale;
                    }
                    softmax_rows(&mut s, t);
                    let oi = &mut o[(p * t + i) * inner + h * d..][..d];
                    for (j, &sj) in s.iter().enumerate() {
                        let vj = &vp[(p * t + j) * inner + h * d..][..d];
                        for (a, &b) in oi.iter_mut().zip(vj) {
                            *a += sj * b;
                        }
                    }
                }
            }
        }
        self.o.forward(&o, rows, Threads::Pool)
    }
}

#[derive(Debug, Clone)]
struct Block {
    self_attn: Attention,
    norm1: Norm,
    t2i: Attention,
    norm2: Norm,
    lin1: Linear,
    lin2: Linear,
    norm3: Norm,
    norm4: Norm,
    i2t: Attention,
}

impl Block {
    fn load(vb: VarBuilder) -> Result<Self> {
        let mlp = vb.pp("mlp");
        let lin1 = mlp.pp("lin1");
        let hidden = MLP_HIDDEN;
        Ok(Block {
            self_attn: Attention::load(vb.pp("self_attn"), 1)?,
            norm1: Norm::load(vb.pp("norm1"), C, 1e-5)?,
            t2i: Attention::load(vb.pp("cross_attn_token_to_image"), 2)?,
            norm2: Norm::load(vb.pp("norm2"), C, 1e-5)?,
            lin1: Linear::load(lin1, C, hidden)?,
            lin2: Linear::load(mlp.pp("lin2"), hidden, C)?,
            norm3: Norm::load(vb.pp("norm3"), C, 1e-5)?,
            norm4: Norm::load(vb.pp("norm4"), C, 1e-5)?,
            i2t: Attention::load(vb.pp("cross_attn_image_to_token"), 2)?,
        })
    }

    /// `queries = norm3(queries + mlp(queries))`.
    fn mlp(&self, queries: &mut [f32], rows: usize) {
        let mut h = self.lin1.forward(queries, rows, Threads::Pool);
        h.iter_mut().for_each(|v| *v = v.max(0.0));
        let out = self.lin2.forward(&h, rows, Threads::Pool);
        add_in_place(queries, &out);
        self.norm3.apply(queries);
    }
}

#[derive(Debug, Clone)]
struct Mlp {
    layers: Vec<Linear>,
}

impl Mlp {
    fn load(vb: VarBuilder, dims: &[usize]) -> Result<Self> {
        let layers = dims
            .windows(2)
            .enumerate()
            .map(|(i, w)| Linear::load(vb.pp("layers").pp(i.to_string()), w[0], w[1]))
            .collect::<Result<_>>()?;
        Ok(Mlp { layers })
    }

    fn forward(&self, x: &[f32], rows: usize) -> Vec<f32> {
        let mut x = x.to_vec();
        let n = self.layers.len();
        for (i, l) in self.layers.iter().enumerate() {
            x = l.forward(&x, rows, Threads::Pool);
            if i + 1 < n {
                x.iter_mut().for_each(|v| *v = v.max(0.0));
            }
        }
        x
    }
}

fn add_in_place(a: &mut [f32], b: &[f32]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x += y;
    }
}

fn add(a: &[f32], b: &[f32]) -> Vec<f32> {
    a.iter().zip(b).map(|(x, y)| x + y).collect()
}

/// Rows of `x` (`rows × cols`) minus their mean.
fn center_rows(x: &mut [f32], cols: usize) {
    for r in x.chunks_exact_mut(cols) {
        let m = r.iter().sum::<f32>() / cols as f32;
        r.iter_mut().for_each(|v| *v -= m);
    }
}

/// `x` with every row multiplied element-wise by `g`.
fn scale_cols(x: &[f32], g: &[f32]) -> Vec<f32> {
    x.chunks_exact(g.len())
        .flat_map(|r| r.iter().zip(g).map(|(a, b)| a * b))
        .collect()
}

/// Squared norm of every row.
fn row_norms2(x: &[f32], cols: usize) -> Vec<f32> {
    x.chunks_exact(cols)
        .map(|r| r.iter().map(|v| v * v).sum())
        .collect()
}

/// Head `h`'s `D` columns of a `rows × I` matrix.
fn head(x: &[f32], rows: usize, h: usize) -> MatRef<'_> {
    MatRef::new(x, rows, I).cols_range(h * D, D)
}

/// What the factored decoder computes once per image: projections of the shared image side
/// for every place it is used, about 40 MB. Matrices named `..t` are stored transposed, one row
/// per channel and one column per image token (`I × N`), which is what the per-head kernels
/// read; the others are `N × I` (or `N × 256`).
#[derive(Debug, Clone)]
pub struct FactoredImage {
    // Block 1: token-to-image keys and values, image-to-token queries.
    k1t: HeadBlocked,
    v1: HeadValues,
    q1t: HeadBlocked,
    /// `|Z_i|²` with `Z = c(X0 + b_o)` (the first image update's centred base).
    zn: Vec<f32>,
    /// `(Z · W_o)ᵀ`: inner products of `Z` with the first update's vectors, per head.
    rzt: HeadBlocked,
    // Block 2, with `A = g₁ ⊙ Z` and the norm's bias `β₁`.
    kz2t: HeadBlocked,
    kc2t: HeadBlocked,
    vz2: HeadValues,
    vc2: Vec<f32>,
    qz2t: HeadBlocked,
    qc2t: HeadBlocked,
    // Second layer norm, with `Y = c(A)`.
    yn: Vec<f32>,
    ry1t: HeadBlocked,
    ry2t: HeadBlocked,
    /// `e0 = c(β₁) + c(b_o2)` and `⟨Y_i, e0⟩`.
    e0: Vec<f32>,
    ye0: Vec<f32>,
    // Final attention with `g₂ ⊙ Y`.
    ky3t: HeadBlocked,
    kc3t: HeadBlocked,
    vy3: HeadValues,
    vc3: Vec<f32>,
    /// First transposed convolution of `g₂ ⊙ Y` (`N × 4·64`) and of the constant part, with
    /// its bias.
    ty: Vec<f32>,
    tc: Vec<f32>,
}

/// The mask decoder's weights on the host, for [`FactoredImage`]s.
#[derive(Debug, Clone)]
pub struct FactoredDecoder {
    blocks: [Block; 2],
    final_attn: Attention,
    norm_final: Norm,
    /// `5 × C`: IoU token, then 4 mask tokens.
    output_tokens: Vec<f32>,
    /// `C × (2·2·64)`, column `(di·2 + dj)·64 + c`.
    up1: Vec<f32>,
    up1_b: Vec<f32>,
    ln2d: Norm,
    /// `64 × (2·2·32)`.
    up2: Vec<f32>,
    up2_b: Vec<f32>,
    hyper: Vec<Mlp>,
    iou_head: Mlp,
}

/// Per-prompt state kept between the stages of a batch. Matrices over image tokens are
/// `rows × N` (one column per image token).
#[derive(Default)]
struct PromptState {
    /// First image-to-token attention, `(H·T) × N`, row `h·T + t`.
    a1t: Vec<f32>,
    inv_s1: Vec<f32>,
    /// `g₁ ⊙` the first update's centred vectors, `(H·T) × C`.
    gu1: Vec<f32>,
    /// The first block's image-to-token values, `T × I`.
    vt1: Vec<f32>,
    /// Final coefficients of the prompt vectors `F` (`R × N`), of `g₂ ⊙ Y` (`N`), and `F`
    /// itself (`R × C`).
    wt: Vec<f32>,
    inv_s12: Vec<f32>,
    f: Vec<f32>,
}

impl PromptState {
    /// Attention logits (`(H·T) × N`) between the `T` tokens `tokens` (`T × I`, scaled by
    /// `scale`) and the image after the first layer norm: `inv_s1 ⊙ (tokens·shared +
    /// a1 · proj(g₁ ⊙ u)) + tokens·constant`, with `shared` and `constant` the image side's
    /// per-image projections (`I × N`) and `proj` the attention's projection on the image side
    /// (keys or queries).
    fn first_norm_logits(
        &self,
        tokens: &[f32],
        (shared, constant): (&HeadBlocked, &HeadBlocked),
        proj: &Linear,
        t: usize,
        scale: f32,
    ) -> Vec<f32> {
        let ht = HEADS * t;
        let pu = proj.project(&self.gu1, ht, Threads::One);
        let m = head_products_rows(tokens, &pu, t, ht);
        let mut out = vec![0f32; ht * N];
        matmul(
            MatMut::new(&mut out, ht, N),
            MatRef::new(&m, ht, ht),
            MatRef::new(&self.a1t, ht, N),
            1.0,
            false,
            Threads::One,
        );
        let s1: Vec<f32> = self.inv_s1.iter().map(|v| v * scale).collect();
        head_products_scaled(
            &mut out,
            (shared, tokens, 1.0),
            (constant, tokens, scale),
            &s1,
            ScaleOf::Sum,
            t,
        );
        out
    }
}

/// A batch of prompts between the decoder's stages.
struct Batch {
    /// Prompts, tokens per prompt (5 output tokens, then the sparse ones), `H·T`, and the
    /// number of prompt vectors after the second block, `R = 2·H·T + 1`.
    b: usize,
    t: usize,
    ht: usize,
    r: usize,
    /// The tokens (`b·t × C`) and their positional encoding (the initial tokens).
    q: Vec<f32>,
    pe: Vec<f32>,
    states: Vec<PromptState>,
}

impl Batch {
    fn rows(&self) -> usize {
        self.b * self.t
    }
}

/// The output of [`FactoredDecoder::decode`] for one prompt.
pub struct FactoredPrediction {
    /// `K × 256 × 256`, empty when the prompt was not upscaled.
    pub logits: Vec<f32>,
    pub iou: Vec<f32>,
}

impl FactoredDecoder {
    /// Loads from `vb` (`mask_decoder`).
    ///
    /// # Errors
    /// Missing or misshapen tensors.
    pub fn load(vb: VarBuilder) -> Result<Self> {
        let tr = vb.pp("transformer");
        let blocks = [
            Block::load(tr.pp("layers").pp("0"))?,
            Block::load(tr.pp("layers").pp("1"))?,
        ];
        let up = vb.pp("output_upscaling");
        let conv = |vb: VarBuilder, inp: usize, out: usize| -> Result<(Vec<f32>, Vec<f32>)> {
            let w = vb.get((inp, out, 2, 2), "weight")?;
            let w = w.permute((0, 2, 3, 1))?.contiguous()?;
            Ok((host(&w)?, host(&vb.get(out, "bias")?)?))
        };
        let (up1, up1_b) = conv(up.pp("0"), C, UP1)?;
        let (up2, up2_b) = conv(up.pp("3"), UP1, UP2)?;
        let iou_token = vb.get((1, C), "iou_token.weight")?;
        let mask_tokens = vb.get((4, C), "mask_tokens.weight")?;
        Ok(FactoredDecoder {
            blocks,
            final_attn: Attention::load(tr.pp("final_attn_token_to_image"), 2)?,
            norm_final: Norm::load(tr.pp("norm_final_attn"), C, 1e-5)?,
            output_tokens: host(&Tensor::cat(&[iou_token, mask_tokens], 0)?)?,
            up1,
            up1_b,
            ln2d: Norm::load(up.pp("1"), UP1, 1e-6)?,
            up2,
            up2_b,
            hyper: (0..4)
                .map(|i| {
                    Mlp::load(
                        vb.pp("output_hypernetworks_mlps").pp(i.to_string()),
                        &[C, C, C, UP2],
                    )
                })
                .collect::<Result<_>>()?,
            iou_head: Mlp::load(vb.pp("iou_prediction_head"), &[C, 256, 256, 4])?,
        })
    }

    /// The per-image part from the image side `src` (embedding plus the "no mask" dense
    /// embedding) and the dense positional encoding, both `4096 × 256` row-major.
    ///
    /// # Panics
    /// When the inputs are not `4096 × 256`.
    pub fn prepare(&self, src: &[f32], pe: &[f32]) -> FactoredImage {
        assert_eq!(
            (src.len(), pe.len()),
            (N * C, N * C),
            "image side must be 4096 x 256"
        );
        let [b1, b2] = &self.blocks;
        let xp = add(src, pe);
        // Projections as I × N (transposed) or N × I.
        let proj_t = |x: &[f32], l: &Linear, bias: bool| {
            HeadBlocked::from_rows(&transposed_projection(x, l, bias), HEADS, D, N)
        };
        let blocked = |x: &[f32]| HeadBlocked::from_token_major(x, N, HEADS, D);
        let values = |x: &[f32]| HeadValues::from_token_major(x, N, HEADS);
        let k1t = proj_t(&xp, &b1.t2i.k, true);
        let v1 = values(&b1.t2i.v.forward(src, N, Threads::Pool));
        let q1t = proj_t(&xp, &b1.i2t.q, true);
        let mut z: Vec<f32> = src
            .chunks_exact(C)
            .flat_map(|r| r.iter().zip(&b1.i2t.o.b).map(|(a, b)| a + b))
            .collect();
        center_rows(&mut z, C);
        let zn = row_norms2(&z, C);
        let rzt = blocked(&project_t(&z, &b1.i2t.o));
        let g1 = &b1.norm4.g;
        let beta1 = &b1.norm4.b;
        let a = scale_cols(&z, g1);
        drop(z);
        let beta1_pe: Vec<f32> = pe
            .chunks_exact(C)
            .flat_map(|r| r.iter().zip(beta1).map(|(a, b)| a + b))
            .collect();
        let kz2t = proj_t(&a, &b2.t2i.k, false);
        let kc2t = proj_t(&beta1_pe, &b2.t2i.k, true);
        let vz2 = values(&b2.t2i.v.project(&a, N, Threads::Pool));
        let vc2 = b2.t2i.v.forward(beta1, 1, Threads::One);
        let qz2t = proj_t(&a, &b2.i2t.q, false);
        let qc2t = proj_t(&beta1_pe, &b2.i2t.q, true);
        let mut y = a;
        center_rows(&mut y, C);
        let yn = row_norms2(&y, C);
        let mut cgy = scale_cols(&y, g1);
        center_rows(&mut cgy, C);
        let ry1t = blocked(&project_t(&cgy, &b1.i2t.o));
        drop(cgy);
        let ry2t = blocked(&project_t(&y, &b2.i2t.o));
        let mut e0 = beta1.clone();
        center_rows(&mut e0, C);
        let mut cbo2 = b2.i2t.o.b.clone();
        center_rows(&mut cbo2, C);
        add_in_place(&mut e0, &cbo2);
        let ye0: Vec<f32> = y
            .chunks_exact(C)
            .map(|r| r.iter().zip(&e0).map(|(a, b)| a * b).sum())
            .collect();
        let g2 = &b2.norm4.g;
        let beta2 = &b2.norm4.b;
        let gy = scale_cols(&y, g2);
        drop(y);
        let beta2_pe: Vec<f32> = pe
            .chunks_exact(C)
            .flat_map(|r| r.iter().zip(beta2).map(|(a, b)| a + b))
            .collect();
        let fa = &self.final_attn;
        let ky3t = proj_t(&gy, &fa.k, false);
        let kc3t = proj_t(&beta2_pe, &fa.k, true);
        let vy3 = values(&fa.v.project(&gy, N, Threads::Pool));
        let vc3 = fa.v.forward(beta2, 1, Threads::One);
        let mut ty = vec![0f32; N * 4 * UP1];
        matmul(
            MatMut::new(&mut ty, N, 4 * UP1),
            MatRef::new(&gy, N, C),
            MatRef::new(&self.up1, C, 4 * UP1),
            1.0,
            false,
            Threads::Pool,
        );
        let mut tc: Vec<f32> = (0..4 * UP1).map(|j| self.up1_b[j % UP1]).collect();
        matmul(
            MatMut::new(&mut tc, 1, 4 * UP1),
            MatRef::new(beta2, 1, C),
            MatRef::new(&self.up1, C, 4 * UP1),
            1.0,
            true,
            Threads::One,
        );
        FactoredImage {
            k1t,
            v1,
            q1t,
            zn,
            rzt,
            kz2t,
            kc2t,
            vz2,
            vc2,
            qz2t,
            qc2t,
            yn,
            ry1t,
            ry2t,
            e0,
            ye0,
            ky3t,
            kc3t,
            vy3,
            vc3,
            ty,
            tc,
        }
    }

    /// Decodes `b` prompts with `s` sparse tokens each (`sparse`: `b × s × 256`). With
    /// `multimask`, masks 1..=3 are returned, else mask 0. Masks are computed only for prompts
    /// with a predicted IoU above `min_iou` (all when `None`), and only their leading
    /// `extent = (rows, columns)` of the 256 × 256 logits (rounded up to whole image tokens;
    /// the rest stays 0).
    pub fn decode(
        &self,
        img: &FactoredImage,
        sparse: &[f32],
        b: usize,
        multimask: bool,
        min_iou: Option<f32>,
        extent: Option<(usize, usize)>,
    ) -> Vec<FactoredPrediction> {
        let per_token = LOW_RES / GRID;
        let (tok_rows, tok_cols) = extent.map_or((GRID, GRID), |(r, c)| {
            (
                r.div_ceil(per_token).min(GRID),
                c.div_ceil(per_token).min(GRID),
            )
        });
        if b == 0 {
            return Vec::new();
        }
        let s = sparse.len() / (b * C);
        let t = 5 + s;
        let ht = HEADS * t;
        let r = 2 * ht + 1;
        let rows = b * t;
        // Tokens: output tokens then the prompt's sparse tokens; they are also the query PE.
        let mut pe = Vec::with_capacity(rows * C);
        for p in 0..b {
            pe.extend_from_slice(&self.output_tokens);
            pe.extend_from_slice(&sparse[p * s * C..(p + 1) * s * C]);
        }
        let mut bt = Batch {
            b,
            t,
            ht,
            r,
            q: Vec::new(),
            pe,
            states: (0..b).map(|_| PromptState::default()).collect(),
        };
        self.block1(img, &mut bt);
        self.block2(img, &mut bt);
        self.final_attention(img, &mut bt);
        self.heads_and_masks(img, bt, multimask, min_iou, (tok_rows, tok_cols))
    }

    /// The first two-way block: token self-attention (no PE, no residual), tokens to the shared
    /// image, MLP, then the image to the tokens, which gives each prompt its first update
    /// (`a1`, the update vectors) and the first layer norm's scales.
    fn block1(&self, img: &FactoredImage, bt: &mut Batch) {
        let b1 = &self.blocks[0];
        let (b, t, ht, rows) = (bt.b, bt.t, bt.ht, bt.rows());
        let scale = 1.0 / (D as f32).sqrt();
        // Self-attention without PE and without residual.
        bt.q = b1.self_attn.tokens(&bt.pe, &bt.pe, &bt.pe, b, t);
        b1.norm1.apply(&mut bt.q);
        // Tokens attend to the shared image.
        let qt = b1.t2i.q.forward(&add(&bt.q, &bt.pe), rows, Threads::Pool);
        let mut out = vec![0f32; rows * I];
        out.par_chunks_mut(t * I)
            .zip(qt.par_chunks(t * I))
            .for_each(|(o, q)| {
                let mut l = vec![0f32; ht * N];
                head_products(&mut l, &img.k1t, q, t, scale, false);
                softmax_rows(&mut l, N);
                head_attention(o, &l, &img.v1, t);
            });
        let attn = b1.t2i.o.forward(&out, rows, Threads::Pool);
        add_in_place(&mut bt.q, &attn);
        b1.norm2.apply(&mut bt.q);
        b1.mlp(&mut bt.q, rows);
        // The image attends to the tokens: a1, the update vectors and the first norm's scale.
        let qpe = add(&bt.q, &bt.pe);
        let kt = b1.i2t.k.forward(&qpe, rows, Threads::Pool);
        let vt = b1.i2t.v.forward(&bt.q, rows, Threads::Pool);
        bt.states.par_iter_mut().enumerate().for_each(|(p, st)| {
            let vp = vt[p * t * I..(p + 1) * t * I].to_vec();
            let mut a1t = vec![0f32; ht * N];
            head_products(
                &mut a1t,
                &img.q1t,
                &kt[p * t * I..(p + 1) * t * I],
                t,
                scale,
                false,
            );
            // m = 2⟨Z_i, u⟩ (then + G a1_i below); var_i = (|Z_i|² + a1_i · m_i) / C.
            let mut m = vec![0f32; ht * N];
            head_products(&mut m, &img.rzt, &vp, t, 2.0, false);
            let mut work = vec![0f32; 2 * N];
            softmax_columns(&mut a1t, t, N, &mut work);
            let mut cu1 = head_outputs(&vp, t, &b1.i2t.o);
            center_rows(&mut cu1, C);
            let g = gram(&cu1, ht);
            matmul(
                MatMut::new(&mut m, ht, N),
                MatRef::new(&g, ht, ht),
                MatRef::new(&a1t, ht, N),
                1.0,
                true,
                Threads::One,
            );
            let mut var = vec![0f32; N];
            column_dots(&mut var, &img.zn, &a1t, &m);
            st.inv_s1 = inv_std(&var, b1.norm4.eps);
            st.gu1 = scale_cols(&cu1, &b1.norm4.g);
            st.a1t = a1t;
            st.vt1 = vp;
        });
    }

    /// The second two-way block against the factored image; ends with each prompt's final
    /// coefficients `W` and prompt vectors `F` after the second layer norm.
    fn block2(&self, img: &FactoredImage, bt: &mut Batch) {
        let b2 = &self.blocks[1];
        let (b, t, ht, r, rows) = (bt.b, bt.t, bt.ht, bt.r, bt.rows());
        let scale = 1.0 / (D as f32).sqrt();
        // Self-attention with PE and residual.
        let qpe = add(&bt.q, &bt.pe);
        let sa = b2.self_attn.tokens(&qpe, &qpe, &bt.q, b, t);
        add_in_place(&mut bt.q, &sa);
        b2.norm1.apply(&mut bt.q);

        // Tokens attend to the factored image: keys inv_s1·(kz2 + a1·ku) + kc2.
        let qt = b2.t2i.q.forward(&add(&bt.q, &bt.pe), rows, Threads::Pool);
        let mut out = vec![0f32; rows * I];
        out.par_chunks_mut(t * I)
            .zip(qt.par_chunks(t * I))
            .zip(bt.states.par_iter())
            .for_each(|((o, q), st)| {
                let mut l = st.first_norm_logits(q, (&img.kz2t, &img.kc2t), &b2.t2i.k, t, scale);
                let vu = b2.t2i.v.project(&st.gu1, ht, Threads::One);
                let l = &mut l[..];
                softmax_rows(l, N);
                scale_columns(l, &st.inv_s1);
                // out = P'·vz2 + (P'·a1)·vu + vc2, per head.
                let mut cm = vec![0f32; ht * ht];
                row_dots(&mut cm, &l[..ht * N], &st.a1t[..ht * N], N);
                head_attention(o, l, &img.vz2, t);
                for h in 0..HEADS {
                    let cmh = MatRef::new(&cm, ht, ht).rows_range(h * t, t);
                    let om = MatMut::new(o, t, I).cols_range(h * D, D);
                    matmul(om, cmh, head(&vu, ht, h), 1.0, true, Threads::One);
                }
                for row in o.chunks_exact_mut(I) {
                    add_in_place(row, &img.vc2);
                }
            });
        let attn = b2.t2i.o.forward(&out, rows, Threads::Pool);
        add_in_place(&mut bt.q, &attn);
        b2.norm2.apply(&mut bt.q);
        b2.mlp(&mut bt.q, rows);

        // The image attends to the tokens again: queries inv_s1·(qz2 + a1·qu) + qc2.
        let qpe = add(&bt.q, &bt.pe);
        let kt = b2.i2t.k.forward(&qpe, rows, Threads::Pool);
        let vt = b2.i2t.v.forward(&bt.q, rows, Threads::Pool);
        bt.states.par_iter_mut().enumerate().for_each(|(p, st)| {
            let (kp, vp) = (
                &kt[p * t * I..(p + 1) * t * I],
                &vt[p * t * I..(p + 1) * t * I],
            );
            let mut a2t = st.first_norm_logits(kp, (&img.qz2t, &img.qc2t), &b2.i2t.q, t, scale);
            // The second norm: m = 2/s1 ⟨Y_i, F0_k⟩ (then + Γ W'_i), rows [E1; E2; e0].
            let mut m = vec![0f32; r * N];
            head_products(&mut m[..ht * N], &img.ry1t, &st.vt1, t, 1.0, false);
            head_products(&mut m[ht * N..2 * ht * N], &img.ry2t, vp, t, 1.0, false);
            let mut work = vec![0f32; 2 * N];
            softmax_columns(&mut a2t, t, N, &mut work);
            let mut cu2 = head_outputs(vp, t, &b2.i2t.o);
            center_rows(&mut cu2, C);
            // F0 = [c(g₁ ⊙ cu1); cu2; e0] (R × C) and the coefficients W' = [a1/s1; a2; 1].
            let mut f0 = std::mem::take(&mut st.gu1);
            center_rows(&mut f0, C);
            f0.extend_from_slice(&cu2);
            f0.extend_from_slice(&img.e0);
            let gm = gram(&f0, r);
            let mut wt = Vec::with_capacity(r * N);
            for row in st.a1t.chunks_exact(N) {
                wt.extend(row.iter().zip(&st.inv_s1).map(|(a, s)| a * s));
            }
            wt.extend_from_slice(&a2t);
            wt.resize(r * N, 1.0);
            drop(a2t);
            st.a1t = Vec::new();
            m[2 * ht * N..].copy_from_slice(&img.ye0);
            let two_s1: Vec<f32> = st.inv_s1.iter().map(|v| 2.0 * v).collect();
            scale_columns(&mut m, &two_s1);
            matmul(
                MatMut::new(&mut m, r, N),
                MatRef::new(&gm, r, r),
                MatRef::new(&wt, r, N),
                1.0,
                true,
                Threads::One,
            );
            let base: Vec<f32> = st
                .inv_s1
                .iter()
                .zip(&img.yn)
                .map(|(s, y)| s * s * y)
                .collect();
            let mut var = vec![0f32; N];
            column_dots(&mut var, &base, &wt, &m);
            let inv_s2 = inv_std(&var, b2.norm4.eps);
            scale_columns(&mut wt, &inv_s2);
            st.inv_s12 = st.inv_s1.iter().zip(&inv_s2).map(|(a, b)| a * b).collect();
            st.f = scale_cols(&f0, &b2.norm4.g);
            st.wt = wt;
        });
    }

    /// The final attention of the tokens to the image (keys inv_s12·ky3 + w·kf + kc3), then
    /// its layer norm.
    fn final_attention(&self, img: &FactoredImage, bt: &mut Batch) {
        let fa = &self.final_attn;
        let (t, ht, r, rows) = (bt.t, bt.ht, bt.r, bt.rows());
        let scale = 1.0 / (D as f32).sqrt();
        let qt = fa.q.forward(&add(&bt.q, &bt.pe), rows, Threads::Pool);
        let mut out = vec![0f32; rows * I];
        out.par_chunks_mut(t * I)
            .zip(qt.par_chunks(t * I))
            .zip(bt.states.par_iter())
            .for_each(|((o, q), st)| {
                // scale · (inv_s12 ⊙ q·ky3 + m3·W + q·kc3).
                let kf = fa.k.project(&st.f, r, Threads::One);
                let m3 = head_products_rows(q, &kf, t, r);
                let mut l = vec![0f32; ht * N];
                let l = &mut l[..];
                matmul(
                    MatMut::new(l, ht, N),
                    MatRef::new(&m3, ht, r),
                    MatRef::new(&st.wt, r, N),
                    scale,
                    false,
                    Threads::One,
                );
                let s12: Vec<f32> = st.inv_s12.iter().map(|v| v * scale).collect();
                head_products_scaled(
                    l,
                    (&img.ky3t, q, 1.0),
                    (&img.kc3t, q, scale),
                    &s12,
                    ScaleOf::Product,
                    t,
                );
                let vf = fa.v.project(&st.f, r, Threads::One);
                softmax_rows(l, N);
                let mut cm = vec![0f32; ht * r];
                row_dots(&mut cm, &l[..ht * N], &st.wt[..r * N], N);
                scale_columns(l, &st.inv_s12);
                head_attention(o, l, &img.vy3, t);
                for h in 0..HEADS {
                    let cmh = MatRef::new(&cm, ht, r).rows_range(h * t, t);
                    let om = MatMut::new(o, t, I).cols_range(h * D, D);
                    matmul(om, cmh, head(&vf, r, h), 1.0, true, Threads::One);
                }
                for row in o.chunks_exact_mut(I) {
                    add_in_place(row, &img.vc3);
                }
            });
        let attn = fa.o.forward(&out, rows, Threads::Pool);
        add_in_place(&mut bt.q, &attn);
        self.norm_final.apply(&mut bt.q);
    }

    /// The IoU head and hypernetworks on the output tokens, then the masks of the prompts
    /// that pass `min_iou`, within `extent` (image tokens: rows, columns).
    fn heads_and_masks(
        &self,
        img: &FactoredImage,
        bt: Batch,
        multimask: bool,
        min_iou: Option<f32>,
        (tok_rows, tok_cols): (usize, usize),
    ) -> Vec<FactoredPrediction> {
        let (b, t, r) = (bt.b, bt.t, bt.r);
        // Heads on the output tokens.
        let token = |k: usize| -> Vec<f32> {
            (0..b)
                .flat_map(|p| bt.q[(p * t + k) * C..(p * t + k + 1) * C].iter().copied())
                .collect()
        };
        let iou_all = self.iou_head.forward(&token(0), b);
        let range: Vec<usize> = if multimask {
            (1..=NUM_MULTIMASK).collect()
        } else {
            vec![0]
        };
        let hyper: Vec<Vec<f32>> = range
            .iter()
            .map(|&k| self.hyper[k].forward(&token(1 + k), b))
            .collect();
        let ious: Vec<Vec<f32>> = (0..b)
            .map(|p| range.iter().map(|&k| iou_all[p * 4 + k]).collect())
            .collect();
        bt.states
            .into_par_iter()
            .zip(ious)
            .enumerate()
            .map(|(p, (st, iou))| {
                let wanted = min_iou.is_none_or(|th| iou.iter().any(|&v| v > th));
                let logits = if wanted {
                    let h: Vec<f32> = hyper
                        .iter()
                        .flat_map(|hk| hk[p * UP2..(p + 1) * UP2].iter().copied())
                        .collect();
                    self.upscale(img, &st, r, &h, tok_rows, tok_cols)
                } else {
                    Vec::new()
                };
                FactoredPrediction { logits, iou }
            })
            .collect()
    }

    /// Mask logits `K × 256 × 256` of one prompt from its final coefficients and hypernetwork
    /// vectors `hyper` (`K × 32`), for the image tokens of the first `tok_rows` rows and
    /// `tok_cols` columns of the grid (zeros elsewhere). One tile is one row of tokens.
    fn upscale(
        &self,
        img: &FactoredImage,
        st: &PromptState,
        r: usize,
        hyper: &[f32],
        tok_rows: usize,
        tok_cols: usize,
    ) -> Vec<f32> {
        let k = hyper.len() / UP2;
        let mut tf = vec![0f32; r * 4 * UP1];
        matmul(
            MatMut::new(&mut tf, r, 4 * UP1),
            MatRef::new(&st.f, r, C),
            MatRef::new(&self.up1, C, 4 * UP1),
            1.0,
            false,
            Threads::One,
        );
        let zero = vec![0f32; UP1];
        let mut y1 = vec![0f32; TILE * 4 * UP1];
        let mut z2 = vec![0f32; TILE * 4 * 4 * UP2];
        let mut dots = vec![0f32; k * TILE * 16];
        let mut masks = vec![0f32; k * LOW_RES * LOW_RES];
        let w = MatRef::new(&st.wt, r, N);
        for i0 in (0..tok_rows).map(|row| row * GRID) {
            let n = tok_cols;
            for (li, row) in y1.chunks_exact_mut(4 * UP1).take(n).enumerate() {
                let i = i0 + li;
                let s = st.inv_s12[i];
                for ((o, &a), &c) in row.iter_mut().zip(&img.ty[i * 4 * UP1..]).zip(&img.tc) {
                    *o = s * a + c;
                }
            }
            let y1 = &mut y1[..n * 4 * UP1];
            matmul(
                MatMut::new(y1, n, 4 * UP1),
                w.cols_range(i0, n).t(),
                MatRef::new(&tf, r, 4 * UP1),
                1.0,
                true,
                Threads::One,
            );
            bias_norm_gelu_rows(y1, &zero, &self.ln2d.g, &self.ln2d.b, self.ln2d.eps);
            let z2 = &mut z2[..n * 16 * UP2];
            matmul(
                MatMut::new(z2, n * 4, 4 * UP2),
                MatRef::new(y1, n * 4, UP1),
                MatRef::new(&self.up2, UP1, 4 * UP2),
                1.0,
                false,
                Threads::One,
            );
            bias_gelu_rows(z2, &self.up2_b);
            // dots (K × 16n) = hyper (K × 32) · z2ᵀ.
            let dots = &mut dots[..k * n * 16];
            row_dots(dots, &hyper[..k * UP2], z2, UP2);
            // Row (li, sub1, sub2) of the tile is pixel (4r + 2di + di2, 4c + 2dj + dj2).
            for ki in 0..k {
                let src = &dots[ki * n * 16..(ki + 1) * n * 16];
                let dst = &mut masks[ki * LOW_RES * LOW_RES..(ki + 1) * LOW_RES * LOW_RES];
                for li in 0..n {
                    let i = i0 + li;
                    let (gr, gc) = (i / GRID, i % GRID);
                    for s1 in 0..4 {
                        let (di, dj) = (s1 / 2, s1 % 2);
                        for s2 in 0..4 {
                            let (di2, dj2) = (s2 / 2, s2 % 2);
                            let y = 4 * gr + 2 * di + di2;
                            let x = 4 * gc + 2 * dj + dj2;
                            dst[y * LOW_RES + x] = src[(li * 4 + s1) * 4 + s2];
                        }
                    }
                }
            }
        }
        masks
    }
}

/// `(x Wᵀ (+ b))ᵀ`: the projection of `N` rows, one output row per channel (`out × N`).
fn transposed_projection(x: &[f32], l: &Linear, bias: bool) -> Vec<f32> {
    let rows = x.len() / l.inp;
    let mut y = vec![0f32; l.out * rows];
    matmul(
        MatMut::new(&mut y, l.out, rows),
        l.wt().t(),
        MatRef::new(x, rows, l.inp).t(),
        1.0,
        false,
        Threads::Pool,
    );
    if bias {
        for (row, b) in y.chunks_exact_mut(rows).zip(&l.b) {
            row.iter_mut().for_each(|v| *v += b);
        }
    }
    y
}

/// `1/√(var/C + eps)` per image token, from `C`·variances.
fn inv_std(var_c: &[f32], eps: f32) -> Vec<f32> {
    var_c
        .iter()
        .map(|v| 1.0 / ((v / C as f32).max(0.0) + eps).sqrt())
        .collect()
}

/// `x · W_oᵀ` for rows `x` (`rows × C`) and an output projection `W_o` (`C × I`, stored
/// transposed as `I × C`): the inner products of `x` with the columns of each head.
fn project_t(x: &[f32], o: &Linear) -> Vec<f32> {
    let rows = x.len() / C;
    let mut y = vec![0f32; rows * I];
    matmul(
        MatMut::new(&mut y, rows, I),
        MatRef::new(x, rows, C),
        o.wt().t(),
        1.0,
        false,
        Threads::Pool,
    );
    y
}

/// The update vectors `u_ht = W_o,h v_th` (`(H·T) × C`, row `h·T + t`) of an attention whose
/// values are `v` (`T × I`).
fn head_outputs(v: &[f32], t: usize, o: &Linear) -> Vec<f32> {
    let mut u = vec![0f32; HEADS * t * C];
    for h in 0..HEADS {
        matmul(
            MatMut::new(&mut u[h * t * C..(h + 1) * t * C], t, C),
            head(v, t, h),
            o.wt().rows_range(h * D, D),
            1.0,
            false,
            Threads::One,
        );
    }
    u
}

/// Gram matrix `x xᵀ` of `n` rows of `C`.
fn gram(x: &[f32], n: usize) -> Vec<f32> {
    let mut g = vec![0f32; n * n];
    let xm = MatRef::new(x, n, C);
    matmul(
        MatMut::new(&mut g, n, n),
        xm,
        xm.t(),
        1.0,
        false,
        Threads::One,
    );
    g
}

/// `m[(h, t), k] = q[t, h] · kv[k, h]` for queries `q` (`T × I`) and `n` rows `kv` (`n × I`):
/// `(H·T) × n`.
fn head_products_rows(q: &[f32], kv: &[f32], t: usize, n: usize) -> Vec<f32> {
    let mut m = vec![0f32; HEADS * t * n];
    for h in 0..HEADS {
        matmul(
            MatMut::new(&mut m[h * t * n..(h + 1) * t * n], t, n),
            head(q, t, h),
            head(kv, n, h).t(),
            1.0,
            false,
            Threads::One,
        );
    }
    m
}

/// Multiplies column `i` of every row of `x` (rows of `s.len()`) by `s[i]`.
fn scale_columns(x: &mut [f32], s: &[f32]) {
    for row in x.chunks_exact_mut(s.len()) {
        row.iter_mut().zip(s).for_each(|(v, f)| *v *= f);
    }
}
