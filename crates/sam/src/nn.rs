//! Small building blocks shared by the networks: linear layers that multiply as one large matrix,
//! convolutions with their batch norm folded in, depthwise convolutions in channels-last layout,
//! layer norms.
//!
//! The encoder keeps activations channels-last (`B, H, W, C`), so 1×1 convolutions are plain
//! matrix products and layer norms over channels are ordinary last-dimension layer norms.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

/// `y = x Wᵀ + b` over the last dimension, computed as one `(rows, in) × (in, out)` product
/// whatever the leading dimensions are. The weight is stored transposed and contiguous.
#[derive(Debug, Clone)]
pub struct Lin {
    w_t: Tensor,
    b: Option<Tensor>,
}

impl Lin {
    /// From a PyTorch `nn.Linear` (`weight` is `out × in`).
    pub fn load(vb: VarBuilder, in_dim: usize, out_dim: usize) -> Result<Self> {
        let w = vb.get((out_dim, in_dim), "weight")?;
        let b = vb.get(out_dim, "bias")?;
        Ok(Lin {
            w_t: w.t()?.contiguous()?,
            b: Some(b),
        })
    }

    /// The weight, transposed: `in × out`.
    pub fn w_t(&self) -> &Tensor {
        &self.w_t
    }

    /// The bias, if any.
    pub fn bias(&self) -> Option<&Tensor> {
        self.b.as_ref()
    }

    /// From an explicit `in × out` matrix and bias.
    pub fn from_parts(w_t: Tensor, b: Option<Tensor>) -> Result<Self> {
        Ok(Lin {
            w_t: w_t.contiguous()?,
            b,
        })
    }
}

impl Module for Lin {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let in_dim = dims[dims.len() - 1];
        let rows = x.elem_count() / in_dim;
        let y = x.contiguous()?.reshape((rows, in_dim))?.matmul(&self.w_t)?;
        let y = match &self.b {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        };
        let mut out = dims;
        let last = out.len() - 1;
        out[last] = self.w_t.dims()[1];
        y.reshape(out)
    }
}

/// Layer norm over the last dimension.
#[derive(Debug, Clone)]
pub struct Norm {
    inner: candle_nn::LayerNorm,
}

impl Norm {
    pub fn load(vb: VarBuilder, dim: usize, eps: f64) -> Result<Self> {
        let w = vb.get(dim, "weight")?;
        let b = vb.get(dim, "bias")?;
        Ok(Norm {
            inner: candle_nn::LayerNorm::new(w, b, eps),
        })
    }
}

impl Module for Norm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.inner.forward(&x.contiguous()?)
    }
}

/// Weight and bias of a convolution followed by batch norm (TinyViT's `Conv2d_BN`, names `c` and
/// `bn`), with the norm folded into the convolution. Weight shape `out × in/groups × k × k`.
pub fn fused_conv_bn(
    vb: &VarBuilder,
    in_per_group: usize,
    out: usize,
    k: usize,
) -> Result<(Tensor, Tensor)> {
    let w = vb.pp("c").get((out, in_per_group, k, k), "weight")?;
    let bn = vb.pp("bn");
    let gamma = bn.get(out, "weight")?;
    let beta = bn.get(out, "bias")?;
    let mean = bn.get(out, "running_mean")?;
    let var = bn.get(out, "running_var")?;
    let scale = (gamma / (var + 1e-5)?.sqrt()?)?;
    let w = w.broadcast_mul(&scale.reshape((out, 1, 1, 1))?)?;
    let b = (beta - mean.mul(&scale)?)?;
    Ok((w, b))
}

/// SAM's encoder neck, shared by the TinyViT and ViT encoders (state-dict `neck.0`–`neck.3`):
/// a 1×1 convolution without bias, a channel layer norm, a 3×3 convolution without bias (padding
/// 1), a channel layer norm; channels-last in and out.
#[derive(Debug, Clone)]
pub struct Neck {
    conv1: Lin,
    norm1: Norm,
    conv2: Tensor,
    norm2: Norm,
}

impl Neck {
    /// From `vb` (`image_encoder.neck`), for `inp` input and `out` output channels.
    pub fn load(vb: VarBuilder, inp: usize, out: usize) -> Result<Self> {
        let w1 = vb.get((out, inp, 1, 1), "0.weight")?.reshape((out, inp))?;
        Ok(Neck {
            conv1: Lin::from_parts(w1.t()?, None)?,
            norm1: Norm::load(vb.pp("1"), out, 1e-6)?,
            conv2: vb.get((out, out, 3, 3), "2.weight")?,
            norm2: Norm::load(vb.pp("3"), out, 1e-6)?,
        })
    }
}

impl Module for Neck {
    /// `x`: `B × H × W × inp` → `B × H × W × out`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = self.norm1.forward(&self.conv1.forward(x)?)?;
        let y = x
            .permute((0, 3, 1, 2))?
            .contiguous()?
            .conv2d(&self.conv2, 1, 1, 1, 1)?
            .permute((0, 2, 3, 1))?;
        self.norm2.forward(&y)
    }
}

/// A 1×1 convolution with folded batch norm, applied channels-last as a linear layer.
pub fn pointwise_conv_bn(vb: &VarBuilder, in_dim: usize, out: usize) -> Result<Lin> {
    let (w, b) = fused_conv_bn(vb, in_dim, out, 1)?;
    Lin::from_parts(w.reshape((out, in_dim))?.t()?, Some(b))
}

/// Depthwise 3×3 convolution, padding 1, stride 1 or 2, on channels-last input. On the CPU one
/// parallel pass over the output rows ([`crate::kernels`]); elsewhere nine shifted
/// multiply-adds of candle operations instead of one tiny convolution per channel.
#[derive(Debug, Clone)]
pub struct DepthwiseConv3 {
    /// `9 × C`, tap `ky * 3 + kx`.
    taps: Vec<Tensor>,
    bias: Tensor,
    stride: usize,
    /// The same on the host, for the CPU kernel.
    taps_host: Vec<f32>,
    bias_host: Vec<f32>,
}

impl candle_core::CustomOp1 for DepthwiseConv3 {
    fn name(&self) -> &'static str {
        "mica-depthwise3"
    }

    fn cpu_fwd(
        &self,
        storage: &candle_core::CpuStorage,
        layout: &candle_core::Layout,
    ) -> Result<(candle_core::CpuStorage, candle_core::Shape)> {
        use rayon::prelude::*;
        let x = contiguous_f32("mica-depthwise3", storage, layout)?;
        let (b, h, w, c) = layout.shape().dims4()?;
        if c != self.bias_host.len() {
            candle_core::bail!(
                "mica-depthwise3: {c} channels, the filter has {}",
                self.bias_host.len()
            )
        }
        let (h2, w2) = (h.div_ceil(self.stride), w.div_ceil(self.stride));
        let mut out = vec![0f32; b * h2 * w2 * c];
        out.par_chunks_mut(w2 * c).enumerate().for_each(|(row, o)| {
            let (bi, oy) = (row / h2, row % h2);
            let img = &x[bi * h * w * c..(bi + 1) * h * w * c];
            crate::kernels::depthwise3_row(
                o,
                img,
                &self.taps_host,
                &self.bias_host,
                h,
                w,
                self.stride,
                oy,
            );
        });
        Ok((
            candle_core::CpuStorage::F32(out),
            candle_core::Shape::from((b, h2, w2, c)),
        ))
    }
}

impl DepthwiseConv3 {
    /// From a `Conv2d_BN` with `groups = channels`.
    pub fn load_bn(vb: &VarBuilder, channels: usize, stride: usize) -> Result<Self> {
        let (w, b) = fused_conv_bn(vb, 1, channels, 3)?;
        let w = w.reshape((channels, 9))?.t()?.contiguous()?;
        let taps = (0..9).map(|i| w.get(i)).collect::<Result<Vec<_>>>()?;
        Ok(DepthwiseConv3 {
            taps_host: w.flatten_all()?.to_vec1::<f32>()?,
            bias_host: b.to_vec1::<f32>()?,
            taps,
            bias: b,
            stride,
        })
    }
}

impl Module for DepthwiseConv3 {
    /// `x`: `B × H × W × C`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if x.device().is_cpu() && x.dtype() == candle_core::DType::F32 {
            return x.contiguous()?.apply_op1_no_bwd(self);
        }
        self.forward_ops(x)
    }
}

impl DepthwiseConv3 {
    /// The convolution as candle operations (any device).
    fn forward_ops(&self, x: &Tensor) -> Result<Tensor> {
        let (b, h, w, c) = x.dims4()?;
        let p = x.pad_with_zeros(1, 1, 1)?.pad_with_zeros(2, 1, 1)?;
        let mut acc = self
            .bias
            .reshape((1, 1, 1, c))?
            .broadcast_as((b, h, w, c))?
            .contiguous()?;
        for ky in 0..3 {
            let rows = p.narrow(1, ky, h)?;
            for kx in 0..3 {
                let win = rows.narrow(2, kx, w)?;
                acc = (acc + win.broadcast_mul(&self.taps[ky * 3 + kx])?)?;
            }
        }
        if self.stride == 2 {
            // A stride-2 output is the stride-1 output at even positions.
            let (h2, w2) = (h.div_ceil(2), w.div_ceil(2));
            let acc = acc
                .pad_with_zeros(1, 0, 2 * h2 - h)?
                .pad_with_zeros(2, 0, 2 * w2 - w)?;
            acc.reshape((b, h2, 2, w2, 2, c))?
                .narrow(2, 0, 1)?
                .narrow(4, 0, 1)?
                .reshape((b, h2, w2, c))
        } else {
            Ok(acc)
        }
    }
}

/// A full (not depthwise) convolution with folded batch norm, NCHW, via candle's conv2d.
#[derive(Debug, Clone)]
pub struct ConvBn {
    w: Tensor,
    b: Tensor,
    stride: usize,
    padding: usize,
}

impl ConvBn {
    pub fn load(
        vb: &VarBuilder,
        in_dim: usize,
        out: usize,
        k: usize,
        stride: usize,
        padding: usize,
    ) -> Result<Self> {
        let (w, b) = fused_conv_bn(vb, in_dim, out, k)?;
        Ok(ConvBn {
            w,
            b,
            stride,
            padding,
        })
    }
}

impl Module for ConvBn {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = x.conv2d(&self.w, self.padding, self.stride, 1, 1)?;
        y.broadcast_add(&self.b.reshape((1, self.b.dims1()?, 1, 1))?)
    }
}

/// Exact (erf) GELU, as PyTorch's `nn.GELU()`. On the CPU a parallel, vectorised kernel
/// ([`crate::kernels`], erf by a rational fit, absolute error below 4e-7) replaces
/// candle's single-threaded one; other devices use candle's.
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == candle_core::DType::F32 {
        x.contiguous()?.apply_op1_no_bwd(&FastGelu)
    } else {
        x.gelu_erf()
    }
}

/// The `f32` values of a custom op's contiguous input; `op` names the op in the error.
fn contiguous_f32<'a>(
    op: &str,
    storage: &'a candle_core::CpuStorage,
    layout: &candle_core::Layout,
) -> Result<&'a [f32]> {
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("{op} needs a contiguous input")
    };
    Ok(&storage.as_slice::<f32>()?[start..end])
}

struct FastGelu;

impl candle_core::CustomOp1 for FastGelu {
    fn name(&self) -> &'static str {
        "mica-gelu-erf"
    }

    fn cpu_fwd(
        &self,
        storage: &candle_core::CpuStorage,
        layout: &candle_core::Layout,
    ) -> Result<(candle_core::CpuStorage, candle_core::Shape)> {
        use rayon::prelude::*;
        let src = contiguous_f32("mica-gelu-erf", storage, layout)?;
        let mut dst = src.to_vec();
        dst.par_chunks_mut(1 << 14)
            .for_each(crate::kernels::gelu_in_place);
        Ok((candle_core::CpuStorage::F32(dst), layout.shape().clone()))
    }
}

/// Softmax over the last dimension. On the CPU, rows are handed to threads in blocks (the
/// attention of 4096 image tokens over 7 prompt tokens has millions of 7-wide rows, which
/// candle's one-task-per-row kernel spends mostly on scheduling).
pub fn softmax(x: &Tensor) -> Result<Tensor> {
    let x = x.contiguous()?;
    if x.device().is_cpu() && x.dtype() == candle_core::DType::F32 {
        x.apply_op1_no_bwd(&BlockSoftmax)
    } else {
        candle_nn::ops::softmax_last_dim(&x)
    }
}

struct BlockSoftmax;

impl candle_core::CustomOp1 for BlockSoftmax {
    fn name(&self) -> &'static str {
        "mica-softmax"
    }

    fn cpu_fwd(
        &self,
        storage: &candle_core::CpuStorage,
        layout: &candle_core::Layout,
    ) -> Result<(candle_core::CpuStorage, candle_core::Shape)> {
        use rayon::prelude::*;
        let src = contiguous_f32("mica-softmax", storage, layout)?;
        let n = layout.shape().dims().last().copied().unwrap_or(1).max(1);
        let mut dst = src.to_vec();
        let rows_per_task = (1 << 14) / n + 1;
        dst.par_chunks_mut(rows_per_task * n)
            .for_each(|d| crate::kernels::softmax_rows(d, n));
        Ok((candle_core::CpuStorage::F32(dst), layout.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_gelu_matches_exact_erf() {
        let v: Vec<f32> = (-4000..4000).map(|i| i as f32 / 500.0).collect();
        let x = Tensor::new(v.as_slice(), &candle_core::Device::Cpu).unwrap();
        let fast = gelu(&x).unwrap().to_vec1::<f32>().unwrap();
        let exact = x.gelu_erf().unwrap().to_vec1::<f32>().unwrap();
        for ((a, b), xv) in fast.iter().zip(&exact).zip(&v) {
            assert!(
                (a - b).abs() < 1e-6 * (1.0 + xv.abs()),
                "x={xv}: {a} vs {b}"
            );
        }
    }

    #[test]
    fn fused_bias_norm_gelu_matches_candle_ops() {
        let dev = candle_core::Device::Cpu;
        let x = Tensor::randn(0f32, 2.0, (37, 8), &dev).unwrap();
        let b = Tensor::randn(0f32, 1.0, 8, &dev).unwrap();
        let w = Tensor::randn(1f32, 0.2, 8, &dev).unwrap();
        let nb = Tensor::randn(0f32, 0.2, 8, &dev).unwrap();
        for norm in [None, Some((&w, &nb, 1e-6))] {
            let op = BiasNormGelu::new(&b, norm).unwrap();
            let fast = op.forward(&x).unwrap();
            let slow = op.reference(&x).unwrap();
            let d = (fast - slow).unwrap().abs().unwrap().max_all().unwrap();
            assert!(d.to_scalar::<f32>().unwrap() < 1e-5);
        }
    }

    #[test]
    fn block_softmax_matches_candle() {
        let dev = candle_core::Device::Cpu;
        for shape in [(3, 7), (5000, 7), (2, 4096)] {
            let x = Tensor::randn(0f32, 3.0, shape, &dev).unwrap();
            let ours = softmax(&x).unwrap();
            let theirs = candle_nn::ops::softmax_last_dim(&x).unwrap();
            let d = (ours - theirs).unwrap().abs().unwrap().max_all().unwrap();
            assert!(d.to_scalar::<f32>().unwrap() < 1e-6, "{shape:?}");
        }
    }

    #[test]
    fn depthwise_matches_conv2d() {
        use candle_core::Device;
        let dev = Device::Cpu;
        let (c, h, w) = (11, 7, 6);
        let x = Tensor::randn(0f32, 1.0, (2, c, h, w), &dev).unwrap();
        let k = Tensor::randn(0f32, 1.0, (c, 1, 3, 3), &dev).unwrap();
        let b = Tensor::randn(0f32, 1.0, c, &dev).unwrap();
        let taps = k
            .reshape((c, 9))
            .unwrap()
            .t()
            .unwrap()
            .contiguous()
            .unwrap();
        for stride in [1, 2] {
            let dw = DepthwiseConv3 {
                taps: (0..9).map(|i| taps.get(i).unwrap()).collect(),
                bias: b.clone(),
                stride,
                taps_host: taps.flatten_all().unwrap().to_vec1().unwrap(),
                bias_host: b.to_vec1().unwrap(),
            };
            let xl = x.permute((0, 2, 3, 1)).unwrap().contiguous().unwrap();
            let reference = x
                .conv2d(&k, 1, stride, 1, c)
                .unwrap()
                .broadcast_add(&b.reshape((1, c, 1, 1)).unwrap())
                .unwrap();
            // The CPU kernel and the candle operations.
            for ours in [dw.forward(&xl).unwrap(), dw.forward_ops(&xl).unwrap()] {
                let ours = ours.permute((0, 3, 1, 2)).unwrap();
                assert_eq!(ours.dims(), reference.dims());
                let diff = (ours - &reference)
                    .unwrap()
                    .abs()
                    .unwrap()
                    .max_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap();
                assert!(diff < 1e-5, "stride {stride}: {diff}");
            }
        }
    }
}

/// `gelu(layer_norm(x + bias))` (or `gelu(x + bias)` without a norm) over the rows of a
/// `rows × C` tensor: one parallel pass on the CPU instead of three or four single-threaded ones.
#[derive(Debug, Clone)]
pub struct BiasNormGelu {
    bias: Vec<f32>,
    norm: Option<(Vec<f32>, Vec<f32>, f32)>,
    /// The same, as tensors, for other devices.
    bias_t: Tensor,
    norm_t: Option<candle_nn::LayerNorm>,
}

impl BiasNormGelu {
    pub fn new(bias: &Tensor, norm: Option<(&Tensor, &Tensor, f64)>) -> Result<Self> {
        let host_norm = match norm {
            Some((w, b, eps)) => Some((w.to_vec1::<f32>()?, b.to_vec1::<f32>()?, eps as f32)),
            None => None,
        };
        Ok(BiasNormGelu {
            bias: bias.to_vec1::<f32>()?,
            norm: host_norm,
            bias_t: bias.clone(),
            norm_t: norm.map(|(w, b, eps)| candle_nn::LayerNorm::new(w.clone(), b.clone(), eps)),
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        if x.device().is_cpu() && x.dtype() == candle_core::DType::F32 {
            return x.contiguous()?.apply_op1_no_bwd(self);
        }
        self.reference(x)
    }

    /// The unfused computation with candle's ops.
    fn reference(&self, x: &Tensor) -> Result<Tensor> {
        let y = x.broadcast_add(&self.bias_t)?;
        let y = match &self.norm_t {
            Some(ln) => ln.forward(&y)?,
            None => y,
        };
        y.gelu_erf()
    }
}

impl candle_core::CustomOp1 for BiasNormGelu {
    fn name(&self) -> &'static str {
        "mica-bias-norm-gelu"
    }

    fn cpu_fwd(
        &self,
        storage: &candle_core::CpuStorage,
        layout: &candle_core::Layout,
    ) -> Result<(candle_core::CpuStorage, candle_core::Shape)> {
        use rayon::prelude::*;
        let src = contiguous_f32("mica-bias-norm-gelu", storage, layout)?;
        let c = self.bias.len();
        if src.len() % c != 0 {
            candle_core::bail!(
                "mica-bias-norm-gelu: {} values are not rows of {c}",
                src.len()
            )
        }
        let mut dst = src.to_vec();
        let rows_per_task = (1 << 14) / c.max(1) + 1;
        dst.par_chunks_mut(rows_per_task * c)
            .for_each(|d| match &self.norm {
                Some((w, b, eps)) => crate::kernels::bias_norm_gelu_rows(d, &self.bias, w, b, *eps),
                None => crate::kernels::bias_gelu_rows(d, &self.bias),
            });
        Ok((candle_core::CpuStorage::F32(dst), layout.shape().clone()))
    }
}
