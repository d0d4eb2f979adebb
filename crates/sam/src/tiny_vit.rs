//! TinyViT-5M, MobileSAM's image encoder (upstream `mobile_sam/modeling/tiny_vit_sam.py`).
//!
//! A 1024×1024 RGB input becomes a `1 × 64 × 64 × 256` channels-last embedding: a two-convolution
//! patch embedding (stride 4), a stage of MBConv blocks, three stages of windowed-attention blocks
//! with patch merging between them, and a convolutional neck. Activations stay channels-last, so
//! the 1×1 convolutions are matrix products. State-dict names are those of the official
//! checkpoint under `image_encoder.`.

use crate::nn::{gelu, pointwise_conv_bn, softmax, ConvBn, DepthwiseConv3, Lin, Neck, Norm};
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

/// Hyper-parameters of a TinyViT encoder.
#[derive(Debug, Clone, PartialEq)]
pub struct TinyVitConfig {
    pub embed_dims: [usize; 4],
    pub depths: [usize; 4],
    pub num_heads: [usize; 4],
    pub window_sizes: [usize; 4],
    pub mlp_ratio: usize,
    pub mbconv_expand_ratio: usize,
    pub out_chans: usize,
}

impl TinyVitConfig {
    /// MobileSAM's TinyViT-5M.
    pub fn mobile_sam() -> Self {
        TinyVitConfig {
            embed_dims: [64, 128, 160, 320],
            depths: [2, 2, 6, 2],
            num_heads: [2, 4, 5, 10],
            window_sizes: [7, 7, 14, 7],
            mlp_ratio: 4,
            mbconv_expand_ratio: 4,
            out_chans: 256,
        }
    }
}

/// Side of the input image the encoder expects.
pub const INPUT_SIZE: usize = 1024;
/// Side of the embedding grid.
pub const EMBED_SIZE: usize = 64;

#[derive(Debug, Clone)]
struct MbConv {
    conv1: Lin,
    conv2: DepthwiseConv3,
    conv3: Lin,
}

impl MbConv {
    fn load(vb: VarBuilder, dim: usize, expand: usize) -> Result<Self> {
        let hidden = dim * expand;
        Ok(MbConv {
            conv1: pointwise_conv_bn(&vb.pp("conv1"), dim, hidden)?,
            conv2: DepthwiseConv3::load_bn(&vb.pp("conv2"), hidden, 1)?,
            conv3: pointwise_conv_bn(&vb.pp("conv3"), hidden, dim)?,
        })
    }

    /// `x`: `B × H × W × C`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = gelu(&self.conv1.forward(x)?)?;
        let y = gelu(&self.conv2.forward(&y)?)?;
        let y = self.conv3.forward(&y)?;
        gelu(&(y + x)?)
    }
}

#[derive(Debug, Clone)]
struct PatchMerging {
    conv1: Lin,
    conv2: DepthwiseConv3,
    conv3: Lin,
}

impl PatchMerging {
    fn load(vb: VarBuilder, dim: usize, out: usize) -> Result<Self> {
        // Upstream MobileSAM keeps the resolution when merging into 320, 448 or 576 channels.
        let stride = if matches!(out, 320 | 448 | 576) { 1 } else { 2 };
        Ok(PatchMerging {
            conv1: pointwise_conv_bn(&vb.pp("conv1"), dim, out)?,
            conv2: DepthwiseConv3::load_bn(&vb.pp("conv2"), out, stride)?,
            conv3: pointwise_conv_bn(&vb.pp("conv3"), out, out)?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = gelu(&self.conv1.forward(x)?)?;
        let y = gelu(&self.conv2.forward(&y)?)?;
        self.conv3.forward(&y)
    }
}

#[derive(Debug, Clone)]
struct Attention {
    norm: Norm,
    qkv: Lin,
    proj: Lin,
    /// `heads × N × N` relative position bias.
    bias: Tensor,
    heads: usize,
    key_dim: usize,
    scale: f64,
}

impl Attention {
    fn load(vb: VarBuilder, dim: usize, heads: usize, window: usize) -> Result<Self> {
        let key_dim = dim / heads;
        let (idxs, n_offsets) = attention_bias_idxs(window);
        let biases = vb.get((heads, n_offsets), "attention_biases")?;
        let n = window * window;
        let idx = Tensor::from_vec(idxs, n * n, biases.device())?;
        let bias = biases.index_select(&idx, 1)?.reshape((heads, n, n))?;
        Ok(Attention {
            norm: Norm::load(vb.pp("norm"), dim, 1e-5)?,
            qkv: Lin::load(vb.pp("qkv"), dim, 3 * dim)?,
            proj: Lin::load(vb.pp("proj"), dim, dim)?,
            bias,
            heads,
            key_dim,
            scale: (key_dim as f64).powf(-0.5),
        })
    }

    /// `x`: `windows × N × C`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, n, c) = x.dims3()?;
        let x = self.norm.forward(x)?;
        let qkv = self
            .qkv
            .forward(&x)?
            .reshape((b, n, self.heads, 3 * self.key_dim))?;
        let part = |i: usize| -> Result<Tensor> {
            qkv.narrow(3, i * self.key_dim, self.key_dim)?
                .transpose(1, 2)?
                .contiguous()
        };
        let (q, k, v) = (part(0)?, part(1)?, part(2)?);
        let attn = (q.matmul(&k.t()?)? * self.scale)?.broadcast_add(&self.bias)?;
        let attn = softmax(&attn)?;
        let y = attn.matmul(&v)?.transpose(1, 2)?.reshape((b, n, c))?;
        self.proj.forward(&y)
    }
}

/// Upstream's index of the relative offset `(|dy|, |dx|)` of every pair of window positions,
/// numbered in order of first appearance; returns the `N×N` indices and the number of offsets.
fn attention_bias_idxs(window: usize) -> (Vec<u32>, usize) {
    let points: Vec<(usize, usize)> = (0..window)
        .flat_map(|a| (0..window).map(move |b| (a, b)))
        .collect();
    let mut offsets: Vec<(usize, usize)> = Vec::new();
    let mut idxs = Vec::with_capacity(points.len() * points.len());
    for p1 in &points {
        for p2 in &points {
            let off = (p1.0.abs_diff(p2.0), p1.1.abs_diff(p2.1));
            let i = match offsets.iter().position(|o| *o == off) {
                Some(i) => i,
                None => {
                    offsets.push(off);
                    offsets.len() - 1
                }
            };
            idxs.push(i as u32);
        }
    }
    (idxs, offsets.len())
}

#[derive(Debug, Clone)]
struct Mlp {
    norm: Norm,
    fc1: Lin,
    fc2: Lin,
}

impl Mlp {
    fn load(vb: VarBuilder, dim: usize, hidden: usize) -> Result<Self> {
        Ok(Mlp {
            norm: Norm::load(vb.pp("norm"), dim, 1e-5)?,
            fc1: Lin::load(vb.pp("fc1"), dim, hidden)?,
            fc2: Lin::load(vb.pp("fc2"), hidden, dim)?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.norm.forward(x)?;
        let y = gelu(&self.fc1.forward(&y)?)?;
        self.fc2.forward(&y)
    }
}

#[derive(Debug, Clone)]
struct TinyVitBlock {
    attn: Attention,
    local_conv: DepthwiseConv3,
    mlp: Mlp,
    window: usize,
}

impl TinyVitBlock {
    fn load(
        vb: VarBuilder,
        dim: usize,
        heads: usize,
        window: usize,
        mlp_ratio: usize,
    ) -> Result<Self> {
        Ok(TinyVitBlock {
            attn: Attention::load(vb.pp("attn"), dim, heads, window)?,
            local_conv: DepthwiseConv3::load_bn(&vb.pp("local_conv"), dim, 1)?,
            mlp: Mlp::load(vb.pp("mlp"), dim, dim * mlp_ratio)?,
            window,
        })
    }

    /// `x`: `B × H × W × C`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, h, w, c) = x.dims4()?;
        let ws = self.window;
        let attn_out = if h == ws && w == ws {
            self.attn
                .forward(&x.reshape((b, h * w, c))?)?
                .reshape((b, h, w, c))?
        } else {
            let pad_b = (ws - h % ws) % ws;
            let pad_r = (ws - w % ws) % ws;
            let xp = x.pad_with_zeros(1, 0, pad_b)?.pad_with_zeros(2, 0, pad_r)?;
            let (ph, pw) = (h + pad_b, w + pad_r);
            let (nh, nw) = (ph / ws, pw / ws);
            let win = xp
                .reshape((b, nh, ws, nw, ws, c))?
                .transpose(2, 3)?
                .contiguous()?
                .reshape((b * nh * nw, ws * ws, c))?;
            let y = self.attn.forward(&win)?;
            let y = y
                .reshape((b, nh, nw, ws, ws, c))?
                .transpose(2, 3)?
                .contiguous()?
                .reshape((b, ph, pw, c))?;
            if pad_b > 0 || pad_r > 0 {
                y.narrow(1, 0, h)?.narrow(2, 0, w)?.contiguous()?
            } else {
                y
            }
        };
        let x = (x + attn_out)?;
        let x = self.local_conv.forward(&x)?;
        let m = self.mlp.forward(&x)?;
        x + m
    }
}

#[derive(Debug, Clone)]
enum Stage {
    Conv(Vec<MbConv>),
    Attention(Vec<TinyVitBlock>),
}

/// The TinyViT image encoder with MobileSAM's neck.
#[derive(Debug, Clone)]
pub struct TinyVit {
    patch_embed: (ConvBn, ConvBn),
    stages: Vec<(Stage, Option<PatchMerging>)>,
    neck: Neck,
}

impl TinyVit {
    /// Loads the encoder from `vb` (the `image_encoder` prefix).
    ///
    /// # Errors
    /// A candle error naming the missing or mis-shaped tensor.
    pub fn load(vb: VarBuilder, cfg: &TinyVitConfig) -> Result<Self> {
        let d = cfg.embed_dims;
        let pe = vb.pp("patch_embed").pp("seq");
        let patch_embed = (
            ConvBn::load(&pe.pp("0"), 3, d[0] / 2, 3, 2, 1)?,
            ConvBn::load(&pe.pp("2"), d[0] / 2, d[0], 3, 2, 1)?,
        );
        let mut stages = Vec::new();
        for i in 0..4 {
            let lv = vb.pp("layers").pp(i.to_string());
            let stage = if i == 0 {
                Stage::Conv(
                    (0..cfg.depths[0])
                        .map(|j| {
                            MbConv::load(
                                lv.pp("blocks").pp(j.to_string()),
                                d[0],
                                cfg.mbconv_expand_ratio,
                            )
                        })
                        .collect::<Result<_>>()?,
                )
            } else {
                Stage::Attention(
                    (0..cfg.depths[i])
                        .map(|j| {
                            TinyVitBlock::load(
                                lv.pp("blocks").pp(j.to_string()),
                                d[i],
                                cfg.num_heads[i],
                                cfg.window_sizes[i],
                                cfg.mlp_ratio,
                            )
                        })
                        .collect::<Result<_>>()?,
                )
            };
            let down = if i < 3 {
                Some(PatchMerging::load(lv.pp("downsample"), d[i], d[i + 1])?)
            } else {
                None
            };
            stages.push((stage, down));
        }
        Ok(TinyVit {
            patch_embed,
            stages,
            neck: Neck::load(vb.pp("neck"), d[3], cfg.out_chans)?,
        })
    }

    /// `x`: normalised, padded `1 × 3 × 1024 × 1024` input; returns `1 × 64 × 64 × 256`
    /// (channels-last).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = gelu(&self.patch_embed.0.forward(x)?)?;
        let x = self.patch_embed.1.forward(&x)?;
        let mut x = x.permute((0, 2, 3, 1))?.contiguous()?;
        for (stage, down) in &self.stages {
            match stage {
                Stage::Conv(blocks) => {
                    for b in blocks {
                        x = b.forward(&x)?;
                    }
                }
                Stage::Attention(blocks) => {
                    for b in blocks {
                        x = b.forward(&x)?;
                    }
                }
            }
            if let Some(d) = down {
                x = d.forward(&x)?;
            }
        }
        self.neck.forward(&x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bias_offsets_match_upstream_counts() {
        let (idx, n) = attention_bias_idxs(7);
        assert_eq!(n, 49);
        assert_eq!(idx.len(), 49 * 49);
        // Pair (0,0)-(0,0) is the first offset; (0,0)-(0,1) the second.
        assert_eq!((idx[0], idx[1]), (0, 1));
        assert_eq!(attention_bias_idxs(14).1, 196);
    }
}
