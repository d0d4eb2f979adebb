//! SAM's ViT image encoder (upstream `segment_anything/modeling/image_encoder.py`, from ViTDet),
//! for SAM ViT-B, ViT-L and ViT-H.
//!
//! A `1 × 3 × S × S` input becomes a channels-last `1 × (S/16) × (S/16) × 256` embedding: a
//! 16×16 stride-16 patch embedding (here one matrix product over the patches), an absolute
//! position embedding, `depth` transformer blocks — most attending within 14×14 windows of the
//! zero-padded grid, a few ("global attention indexes") over the whole grid — with decomposed
//! relative position terms added to the attention logits, then a neck (1×1 convolution, layer
//! norm, 3×3 convolution, layer norm). State-dict names are those of the official checkpoints
//! under `image_encoder.`.

use crate::nn::{gelu, softmax, Lin, Neck, Norm};
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

/// Hyper-parameters of a ViT image encoder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VitConfig {
    /// Side of the (square, padded) input.
    pub img_size: usize,
    pub patch_size: usize,
    pub embed_dim: usize,
    pub depth: usize,
    pub num_heads: usize,
    /// Hidden width of the MLPs as a multiple of `embed_dim`.
    pub mlp_ratio: usize,
    pub out_chans: usize,
    /// Side of the attention windows (0: every block attends globally).
    pub window_size: usize,
    /// Blocks that attend over the whole grid.
    pub global_attn_indexes: Vec<usize>,
}

impl VitConfig {
    fn sam(embed_dim: usize, depth: usize, num_heads: usize, global: [usize; 4]) -> Self {
        VitConfig {
            img_size: 1024,
            patch_size: 16,
            embed_dim,
            depth,
            num_heads,
            mlp_ratio: 4,
            out_chans: 256,
            window_size: 14,
            global_attn_indexes: global.to_vec(),
        }
    }

    /// SAM ViT-B (91 M parameters).
    pub fn vit_b() -> Self {
        Self::sam(768, 12, 12, [2, 5, 8, 11])
    }

    /// SAM ViT-L (308 M parameters).
    pub fn vit_l() -> Self {
        Self::sam(1024, 24, 16, [5, 11, 17, 23])
    }

    /// SAM ViT-H (636 M parameters), the model of the study.
    pub fn vit_h() -> Self {
        Self::sam(1280, 32, 16, [7, 15, 23, 31])
    }

    /// Side of the patch grid.
    pub fn grid(&self) -> usize {
        self.img_size / self.patch_size
    }
}

/// Multi-head self-attention with decomposed relative positions.
#[derive(Debug, Clone)]
struct Attention {
    qkv: Lin,
    proj: Lin,
    heads: usize,
    /// `(2·size − 1) × head_dim` tables along rows and columns, expanded for the block's
    /// window (or grid) size into `size × size × head_dim` lookups `R[q, k] = table[q − k +
    /// size − 1]`.
    rel_h: Tensor,
    rel_w: Tensor,
}

/// Upstream `get_rel_pos` for equal query and key sizes: `R[q, k] = table[q − k + size − 1]`.
fn expand_rel_pos(table: &Tensor, size: usize) -> Result<Tensor> {
    let idx: Vec<u32> = (0..size)
        .flat_map(|q| (0..size).map(move |k| (q + size - 1 - k) as u32))
        .collect();
    let idx = Tensor::from_vec(idx, size * size, table.device())?;
    let hd = table.dim(1)?;
    table.index_select(&idx, 0)?.reshape((size, size, hd))
}

impl Attention {
    fn load(vb: VarBuilder, dim: usize, heads: usize, size: usize) -> Result<Self> {
        let hd = dim / heads;
        let table = |name: &str| -> Result<Tensor> {
            let t = vb.get_unchecked(name)?;
            let rows = t.dim(0)?;
            if rows != 2 * size - 1 || t.dim(1)? != hd {
                candle_core::bail!(
                    "{name}: relative position table is {:?}, expected [{}, {hd}] for a {size}×{size} attention (input sizes other than the checkpoint's are not supported)",
                    t.dims(),
                    2 * size - 1
                );
            }
            expand_rel_pos(&t, size)
        };
        Ok(Attention {
            qkv: Lin::load(vb.pp("qkv"), dim, 3 * dim)?,
            proj: Lin::load(vb.pp("proj"), dim, dim)?,
            heads,
            rel_h: table("rel_pos_h")?,
            rel_w: table("rel_pos_w")?,
        })
    }

    /// `x`: `B × H × W × C` (B windows, or one grid) → same shape.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, h, w, c) = x.dims4()?;
        let nh = self.heads;
        let hd = c / nh;
        let n = h * w;
        // B × N × 3 × heads × hd → 3 × (B·heads) × N × hd.
        let qkv = self
            .qkv
            .forward(x)?
            .reshape((b, n, 3, nh, hd))?
            .permute((2, 0, 3, 1, 4))?
            .contiguous()?
            .reshape((3, b * nh, n, hd))?;
        let (q, k, v) = (qkv.get(0)?, qkv.get(1)?, qkv.get(2)?);
        let scale = 1.0 / (hd as f64).sqrt();
        let attn = (&q * scale)?.matmul(&k.t()?)?; // (B·heads) × N × N
                                                   // Relative positions, with the unscaled queries (as upstream):
                                                   // rel_h[b, qh, qw, kh] = Σ_c q[b, qh, qw, c] R_h[qh, kh, c], likewise along columns.
        let bh = b * nh;
        let rq = q.reshape((bh, h, w, hd))?;
        let rel_h = rq
            .permute((1, 0, 2, 3))?
            .contiguous()?
            .reshape((h, bh * w, hd))?
            .matmul(&self.rel_h.t()?)? // h × (bh·w) × kh
            .reshape((h, bh, w, h))?
            .permute((1, 0, 2, 3))?; // bh × qh × qw × kh
        let rel_w = rq
            .permute((2, 0, 1, 3))?
            .contiguous()?
            .reshape((w, bh * h, hd))?
            .matmul(&self.rel_w.t()?)? // w × (bh·h) × kw
            .reshape((w, bh, h, w))?
            .permute((1, 2, 0, 3))?; // bh × qh × qw × kw
        let attn = attn
            .reshape((bh, h, w, h, w))?
            .broadcast_add(&rel_h.unsqueeze(4)?)?
            .broadcast_add(&rel_w.unsqueeze(3)?)?
            .reshape((bh, n, n))?;
        let attn = softmax(&attn)?;
        let o = attn
            .matmul(&v.contiguous()?)? // bh × N × hd
            .reshape((b, nh, h, w, hd))?
            .permute((0, 2, 3, 1, 4))?
            .contiguous()?
            .reshape((b, h, w, c))?;
        self.proj.forward(&o)
    }
}

#[derive(Debug, Clone)]
struct Block {
    norm1: Norm,
    attn: Attention,
    norm2: Norm,
    lin1: Lin,
    lin2: Lin,
    /// 0 for global attention.
    window: usize,
}

impl Block {
    fn load(vb: VarBuilder, cfg: &VitConfig, global: bool) -> Result<Self> {
        let dim = cfg.embed_dim;
        let window = if global { 0 } else { cfg.window_size };
        let size = if window == 0 { cfg.grid() } else { window };
        Ok(Block {
            norm1: Norm::load(vb.pp("norm1"), dim, 1e-6)?,
            attn: Attention::load(vb.pp("attn"), dim, cfg.num_heads, size)?,
            norm2: Norm::load(vb.pp("norm2"), dim, 1e-6)?,
            lin1: Lin::load(vb.pp("mlp").pp("lin1"), dim, dim * cfg.mlp_ratio)?,
            lin2: Lin::load(vb.pp("mlp").pp("lin2"), dim * cfg.mlp_ratio, dim)?,
            window,
        })
    }

    /// `x`: `1 × H × W × C`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.norm1.forward(x)?;
        let y = if self.window == 0 {
            self.attn.forward(&y)?
        } else {
            let (_, h, w, _) = y.dims4()?;
            let (win, pad) = window_partition(&y, self.window)?;
            window_unpartition(&self.attn.forward(&win)?, self.window, pad, (h, w))?
        };
        let x = (x + y)?;
        let m = self
            .lin2
            .forward(&gelu(&self.lin1.forward(&self.norm2.forward(&x)?)?)?)?;
        x + m
    }
}

/// Upstream `window_partition`: zero-pads `1 × H × W × C` to multiples of `ws` and cuts it into
/// `(Hp/ws · Wp/ws) × ws × ws × C` windows (row-major); returns them and the padded size.
fn window_partition(x: &Tensor, ws: usize) -> Result<(Tensor, (usize, usize))> {
    let (b, h, w, c) = x.dims4()?;
    let (ph, pw) = ((ws - h % ws) % ws, (ws - w % ws) % ws);
    let x = x.pad_with_zeros(1, 0, ph)?.pad_with_zeros(2, 0, pw)?;
    let (hp, wp) = (h + ph, w + pw);
    let win = x
        .reshape((b, hp / ws, ws, wp / ws, ws, c))?
        .permute((0, 1, 3, 2, 4, 5))?
        .contiguous()?
        .reshape((b * (hp / ws) * (wp / ws), ws, ws, c))?;
    Ok((win, (hp, wp)))
}

/// Upstream `window_unpartition`: the inverse of [`window_partition`], cropping the padding.
fn window_unpartition(
    win: &Tensor,
    ws: usize,
    (hp, wp): (usize, usize),
    (h, w): (usize, usize),
) -> Result<Tensor> {
    let c = win.dim(3)?;
    let b = win.dim(0)? / ((hp / ws) * (wp / ws));
    win.reshape((b, hp / ws, wp / ws, ws, ws, c))?
        .permute((0, 1, 3, 2, 4, 5))?
        .contiguous()?
        .reshape((b, hp, wp, c))?
        .narrow(1, 0, h)?
        .narrow(2, 0, w)?
        .contiguous()
}

/// The ViT image encoder with SAM's neck.
#[derive(Debug, Clone)]
pub struct VitEncoder {
    cfg: VitConfig,
    /// Patch embedding as `(3·p·p) × C` (rows in the order channel, row, column) and bias.
    patch: Lin,
    /// `1 × G × G × C`.
    pos_embed: Tensor,
    blocks: Vec<Block>,
    neck: Neck,
}

impl VitEncoder {
    /// Loads from `vb` (`image_encoder`).
    ///
    /// # Errors
    /// Missing or misshapen tensors (the message names them).
    pub fn load(vb: VarBuilder, cfg: &VitConfig) -> Result<Self> {
        let (c, p, g) = (cfg.embed_dim, cfg.patch_size, cfg.grid());
        let pe = vb.pp("patch_embed").pp("proj");
        let w = pe.get((c, 3, p, p), "weight")?.reshape((c, 3 * p * p))?;
        let patch = Lin::from_parts(w.t()?, Some(pe.get(c, "bias")?))?;
        let blocks = (0..cfg.depth)
            .map(|i| {
                Block::load(
                    vb.pp("blocks").pp(i.to_string()),
                    cfg,
                    cfg.window_size == 0 || cfg.global_attn_indexes.contains(&i),
                )
            })
            .collect::<Result<_>>()?;
        Ok(VitEncoder {
            patch,
            pos_embed: vb.get((1, g, g, c), "pos_embed")?,
            blocks,
            neck: Neck::load(vb.pp("neck"), c, cfg.out_chans)?,
            cfg: cfg.clone(),
        })
    }

    pub fn config(&self) -> &VitConfig {
        &self.cfg
    }

    /// `x`: normalised, padded `1 × 3 × S × S` input; returns `1 × G × G × out_chans`
    /// (channels-last).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (p, g) = (self.cfg.patch_size, self.cfg.grid());
        // Patches as rows (channel, row, column), one matrix product.
        let patches = x
            .reshape((3, g, p, g, p))?
            .permute((1, 3, 0, 2, 4))?
            .contiguous()?
            .reshape((1, g, g, 3 * p * p))?;
        let mut x = self
            .patch
            .forward(&patches)?
            .broadcast_add(&self.pos_embed)?;
        for b in &self.blocks {
            x = b.forward(&x)?;
        }
        self.neck.forward(&x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn sam_configs_have_the_published_shapes() {
        for (cfg, dim, depth, global) in [
            (VitConfig::vit_b(), 768, 12, vec![2, 5, 8, 11]),
            (VitConfig::vit_l(), 1024, 24, vec![5, 11, 17, 23]),
            (VitConfig::vit_h(), 1280, 32, vec![7, 15, 23, 31]),
        ] {
            assert_eq!((cfg.embed_dim, cfg.depth, cfg.grid()), (dim, depth, 64));
            assert_eq!(cfg.global_attn_indexes, global);
            assert_eq!(cfg.embed_dim % cfg.num_heads, 0);
        }
    }

    /// A tiny encoder with random weights, its input and its output from the reference code
    /// (`scripts/make_vit_fixture.py`): padded windows, a global block, relative positions,
    /// neck. The same code runs SAM ViT-B/L/H.
    #[test]
    fn matches_the_reference_implementation() {
        let dev = Device::Cpu;
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/vit_tiny.safetensors"
        );
        let tensors = candle_core::safetensors::load(path, &dev).unwrap();
        let input = tensors["test.input"].clone();
        let want = tensors["test.output"].clone();
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &dev);
        let cfg = VitConfig {
            img_size: 64,
            patch_size: 16,
            embed_dim: 16,
            depth: 2,
            num_heads: 2,
            mlp_ratio: 4,
            out_chans: 8,
            window_size: 3,
            global_attn_indexes: vec![1],
        };
        let enc = VitEncoder::load(vb.pp("image_encoder"), &cfg).unwrap();
        let got = enc.forward(&input).unwrap();
        assert_eq!(got.dims(), &[1, 4, 4, 8]);
        let d = (&got - &want).unwrap().abs().unwrap().max_all().unwrap();
        let d = d.to_scalar::<f32>().unwrap();
        eprintln!("max |difference| {d:.2e}");
        assert!(d < 1e-4, "max |difference| {d}");
        // A wrong window size changes the result (the test can fail).
        let other = VitConfig {
            window_size: 2,
            ..cfg.clone()
        };
        let tensors = candle_core::safetensors::load(path, &dev).unwrap();
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &dev);
        assert!(
            VitEncoder::load(vb.pp("image_encoder"), &other).is_err(),
            "table size check"
        );
    }

    #[test]
    fn windows_round_trip_and_pad_with_zeros() {
        let dev = Device::Cpu;
        let x = Tensor::arange(0f32, (5 * 7 * 2) as f32, &dev)
            .unwrap()
            .reshape((1, 5, 7, 2))
            .unwrap();
        let (win, pad) = window_partition(&x, 3).unwrap();
        assert_eq!(pad, (6, 9));
        assert_eq!(win.dims(), &[2 * 3, 3, 3, 2]);
        // Window 1 (row 0, column 1) starts at grid (0, 3).
        let w1 = win.get(1).unwrap().to_vec3::<f32>().unwrap();
        assert_eq!(w1[0][0], vec![6.0, 7.0]);
        // The last window holds padding beyond row 4 and column 6.
        let last = win.get(5).unwrap().to_vec3::<f32>().unwrap();
        assert_eq!(last[2][2], vec![0.0, 0.0]);
        let back = window_unpartition(&win, 3, pad, (5, 7)).unwrap();
        let d = (back - &x).unwrap().abs().unwrap().max_all().unwrap();
        assert_eq!(d.to_scalar::<f32>().unwrap(), 0.0);
    }

    #[test]
    fn relative_positions_are_indexed_by_offset() {
        let dev = Device::Cpu;
        let table = Tensor::arange(0f32, 5.0, &dev)
            .unwrap()
            .reshape((5, 1))
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap();
        let r = expand_rel_pos(&table, 3).unwrap().squeeze(2).unwrap();
        // R[q, k] = table[q - k + 2].
        assert_eq!(
            r.to_vec2::<f32>().unwrap(),
            vec![
                vec![2.0, 1.0, 0.0],
                vec![3.0, 2.0, 1.0],
                vec![4.0, 3.0, 2.0]
            ]
        );
    }
}
