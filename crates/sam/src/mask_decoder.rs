//! SAM's mask decoder (upstream `segment_anything/modeling/mask_decoder.py`), batched over prompts.
//!
//! Output tokens (IoU token + 4 mask tokens) and the prompt tokens run through the two-way
//! transformer with the image embedding; the image side is upscaled 4× by two 2×2 stride-2
//! transposed convolutions, and each mask is the dot product of a hypernetwork vector (from its
//! mask token) with the 32 upscaled channels at every pixel.
//!
//! The transposed convolutions are matrix products: with kernel 2 and stride 2 each input pixel
//! owns its own 2×2 output block, so `pixels × C_in` times `C_in × (2·2·C_out)` gives every output
//! value. The pixel order is left interleaved (`i, j, di, dj, di2, dj2`) through both products and
//! the layer norm; only the final few mask channels are permuted into image order.

use crate::nn::{BiasNormGelu, Lin};
use crate::transformer::{SharedKeys, TwoWayTransformer};
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

/// Number of mask outputs in multimask mode.
pub const NUM_MULTIMASK: usize = 3;
/// Side of the decoder's output masks.
pub const LOW_RES: usize = 256;

#[derive(Debug, Clone)]
struct Mlp {
    layers: Vec<Lin>,
}

impl Mlp {
    fn load(vb: VarBuilder, dims: &[usize]) -> Result<Self> {
        let layers = dims
            .windows(2)
            .enumerate()
            .map(|(i, w)| Lin::load(vb.pp("layers").pp(i.to_string()), w[0], w[1]))
            .collect::<Result<_>>()?;
        Ok(Mlp { layers })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut x = x.clone();
        let n = self.layers.len();
        for (i, l) in self.layers.iter().enumerate() {
            x = l.forward(&x)?;
            if i + 1 < n {
                x = x.relu()?;
            }
        }
        Ok(x)
    }
}

/// A 2×2 stride-2 transposed convolution as a channels-last matrix product.
#[derive(Debug, Clone)]
struct UpConv2x2 {
    /// Without bias; the bias is added by the fused activation that follows.
    lin: Lin,
    bias: Tensor,
    out: usize,
}

impl UpConv2x2 {
    fn load(vb: VarBuilder, inp: usize, out: usize) -> Result<Self> {
        // PyTorch ConvTranspose2d weight: in × out × kh × kw → in × (kh·kw·out).
        let w = vb.get((inp, out, 2, 2), "weight")?;
        let b = vb.get(out, "bias")?;
        let w = w.permute((0, 2, 3, 1))?.reshape((inp, 4 * out))?;
        Ok(UpConv2x2 {
            lin: Lin::from_parts(w, None)?,
            bias: b,
            out,
        })
    }

    /// `x`: `rows × C_in` → `(rows·4) × C_out` (the 2×2 block of each input pixel, `di·2+dj`),
    /// bias not added.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let rows = x.dim(0)?;
        self.lin.forward(x)?.reshape((rows * 4, self.out))
    }
}

/// The mask decoder.
#[derive(Debug, Clone)]
pub struct MaskDecoder {
    transformer: TwoWayTransformer,
    /// `5 × 256`: IoU token then the 4 mask tokens.
    output_tokens: Tensor,
    up1: UpConv2x2,
    /// Bias of `up1`, layer norm, GELU.
    act1: BiasNormGelu,
    up2: UpConv2x2,
    /// Bias of `up2`, GELU.
    act2: BiasNormGelu,
    hyper: Vec<Mlp>,
    iou_head: Mlp,
}

impl MaskDecoder {
    /// Loads from `vb` (`mask_decoder`).
    pub fn load(vb: VarBuilder) -> Result<Self> {
        let dim = 256;
        let iou_token = vb.get((1, dim), "iou_token.weight")?;
        let mask_tokens = vb.get((4, dim), "mask_tokens.weight")?;
        let up = vb.pp("output_upscaling");
        let up1 = UpConv2x2::load(up.pp("0"), dim, dim / 4)?;
        let up2 = UpConv2x2::load(up.pp("3"), dim / 4, dim / 8)?;
        let nw = up.pp("1").get(dim / 4, "weight")?;
        let nb = up.pp("1").get(dim / 4, "bias")?;
        Ok(MaskDecoder {
            act1: BiasNormGelu::new(&up1.bias, Some((&nw, &nb, 1e-6)))?,
            act2: BiasNormGelu::new(&up2.bias, None)?,
            up1,
            up2,
            transformer: TwoWayTransformer::load(vb.pp("transformer"))?,
            output_tokens: Tensor::cat(&[iou_token, mask_tokens], 0)?,
            hyper: (0..4)
                .map(|i| {
                    Mlp::load(
                        vb.pp("output_hypernetworks_mlps").pp(i.to_string()),
                        &[dim, dim, dim, dim / 8],
                    )
                })
                .collect::<Result<_>>()?,
            iou_head: Mlp::load(vb.pp("iou_prediction_head"), &[dim, 256, 256, 4])?,
        })
    }

    /// The first transformer block's projections of `image` (`1 × 4096 × 256`, embedding plus
    /// dense prompt embedding), for [`MaskDecoder::forward`].
    pub fn shared_keys(&self, image: &Tensor, image_pe: &Tensor) -> Result<SharedKeys> {
        self.transformer.shared_keys(image, image_pe)
    }

    /// The transformer and the IoU head: returns the output tokens `B × T × C`, the image side
    /// `B × 4096 × C` and the predicted IoUs `B × K`. Masks follow from [`MaskDecoder::upscale`],
    /// which may be run on a subset of the prompts (e.g. those whose IoU passes a threshold).
    pub fn forward_tokens(
        &self,
        image: &Tensor,
        image_pe: &Tensor,
        sparse: &Tensor,
        shared: Option<&SharedKeys>,
        multimask: bool,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let b = sparse.dim(0)?;
        let c = self.output_tokens.dim(1)?;
        let out_tokens = self.output_tokens.unsqueeze(0)?.broadcast_as((b, 5, c))?;
        let tokens = Tensor::cat(&[&out_tokens.contiguous()?, sparse], 1)?;
        let (hs, src) = self.transformer.forward(image, image_pe, &tokens, shared)?;
        let src = src.broadcast_as((b, src.dim(1)?, c))?.contiguous()?;
        let range = Self::mask_range(multimask);
        let iou = self.iou_head.forward(&hs.narrow(1, 0, 1)?.squeeze(1)?)?;
        let idx = Tensor::from_vec(
            range.iter().map(|&i| i as u32).collect::<Vec<_>>(),
            range.len(),
            iou.device(),
        )?;
        let iou = iou.index_select(&idx, 1)?;
        Ok((hs, src, iou))
    }

    fn mask_range(multimask: bool) -> Vec<usize> {
        if multimask {
            (1..=NUM_MULTIMASK).collect()
        } else {
            vec![0]
        }
    }

    /// Masks `B × K × 256 × 256` from the output tokens and image side of
    /// [`MaskDecoder::forward_tokens`].
    pub fn upscale(&self, hs: &Tensor, src: &Tensor, multimask: bool) -> Result<Tensor> {
        let (b, hw, c) = src.dims3()?;
        let range = Self::mask_range(multimask);
        let k = range.len();
        let hyper = range
            .iter()
            .map(|&i| self.hyper[i].forward(&hs.narrow(1, 1 + i, 1)?))
            .collect::<Result<Vec<_>>>()?;
        let hyper = Tensor::cat(&hyper, 1)?; // B × K × 32
        let grid = (hw as f64).sqrt() as usize;
        let x = src.reshape((b * hw, c))?;
        let x = self.act1.forward(&self.up1.forward(&x)?)?; // (B·HW·4) × 64
        let x = self.act2.forward(&self.up2.forward(&x)?)?; // (B·HW·16) × 32
        let ch = x.dim(1)?;
        let x = x.reshape((b, hw * 16, ch))?;
        // B × (HW·16) × K; pixel (4i + 2di + di2, 4j + 2dj + dj2) sits at (i, j, di, dj, di2, dj2).
        let m = x.matmul(&hyper.transpose(1, 2)?.contiguous()?)?;
        m.reshape(vec![b, grid, grid, 2, 2, 2, 2, k])?
            .permute(vec![0, 7, 1, 3, 5, 2, 4, 6])?
            .contiguous()?
            .reshape((b, k, 4 * grid, 4 * grid))
    }
}
