//! SAM's two-way transformer (upstream `segment_anything/modeling/transformer.py`), batched over
//! prompts.
//!
//! Every prompt of a batch attends to the same image embedding. Upstream copies the
//! `256 × 64 × 64` embedding once per prompt (`repeat_interleave`); here the image side keeps a
//! batch of one as long as it is the same for all prompts (up to the first image-to-token
//! attention), and the projections of that shared embedding in the first block (token-to-image
//! keys and values, image-to-token queries) are computed once per image ([`SharedKeys`]) and
//! reused by every batch of prompts.

use crate::nn::{softmax, Lin, Norm};
use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

/// Multi-head attention with an optional down-projection of the internal width.
///
/// Cross-attention between a few prompt tokens and the 4096 image tokens is computed with the
/// projections folded into the few-token side, which is exact linear algebra:
/// `q_h · (W_k,h x + b_k,h) = (W_k,hᵀ q_h) · x + const` (the constant drops out of the softmax),
/// and `Σ P (W_v,h x + b_v,h) = W_v,h (Σ P x) + b_v,h` (softmax rows sum to one); likewise the
/// image-side queries and the output projection of image-to-token attention. The 4096 image
/// tokens are therefore never projected: per prompt and attention this costs two
/// `(8·T) × 256 × 4096` products instead of three or four `4096 × 256 × 128` projections.
#[derive(Debug, Clone)]
pub struct Attention {
    q_proj: Lin,
    k_proj: Lin,
    v_proj: Lin,
    out_proj: Lin,
    /// `I × C` weights (PyTorch layout) of the query and key projections.
    wq: Tensor,
    wk: Tensor,
    heads: usize,
    inner: usize,
    /// `1 × h × 1 × I`: 1 on the columns of each head.
    head_mask: Tensor,
}

impl Attention {
    fn load(vb: VarBuilder, dim: usize, heads: usize, downsample: usize) -> Result<Self> {
        let inner = dim / downsample;
        let q_proj = Lin::load(vb.pp("q_proj"), dim, inner)?;
        let k_proj = Lin::load(vb.pp("k_proj"), dim, inner)?;
        let d = inner / heads;
        let m: Vec<f32> = (0..heads)
            .flat_map(|h| (0..inner).map(move |c| if c / d == h { 1.0 } else { 0.0 }))
            .collect();
        Ok(Attention {
            wq: q_proj.w_t().t()?.contiguous()?,
            wk: k_proj.w_t().t()?.contiguous()?,
            q_proj,
            k_proj,
            v_proj: Lin::load(vb.pp("v_proj"), dim, inner)?,
            out_proj: Lin::load(vb.pp("out_proj"), inner, dim)?,
            heads,
            inner,
            head_mask: Tensor::from_vec(m, (1, heads, 1, inner), vb.device())?,
        })
    }

    fn scale(&self) -> f64 {
        1.0 / ((self.inner / self.heads) as f64).sqrt()
    }

    /// `B × N × (h·d)` → `B × h × N × d`.
    fn split_heads(&self, x: &Tensor) -> Result<Tensor> {
        let (b, n, c) = x.dims3()?;
        x.reshape((b, n, self.heads, c / self.heads))?
            .transpose(1, 2)?
            .contiguous()
    }

    /// Block-diagonal expansion of a few tokens `B × N × I` into `B × (h·N) × I`: row `(h, t)`
    /// keeps only head `h`'s columns of token `t`.
    fn block_diag(&self, x: &Tensor) -> Result<Tensor> {
        let (b, n, i) = x.dims3()?;
        x.unsqueeze(1)?
            .broadcast_mul(&self.head_mask)?
            .reshape((b, self.heads * n, i))
    }

    /// `B × (h·N) × I` rows `(h, t)` → `B × N × I` keeping head `h`'s columns of row `(h, t)`.
    fn block_diag_collect(&self, x: &Tensor) -> Result<Tensor> {
        let (b, hn, i) = x.dims3()?;
        x.reshape((b, self.heads, hn / self.heads, i))?
            .broadcast_mul(&self.head_mask)?
            .sum(1)
    }

    /// Plain attention (few tokens on both sides): `B × N × C` each.
    fn forward(&self, q: &Tensor, k: &Tensor, v: &Tensor) -> Result<Tensor> {
        let (b, n, _) = q.dims3()?;
        let qh = self.split_heads(&self.q_proj.forward(q)?)?;
        let kh = self.split_heads(&self.k_proj.forward(k)?)?;
        let vh = self.split_heads(&self.v_proj.forward(v)?)?;
        let a = softmax(&(qh.matmul(&kh.t()?)? * self.scale())?)?;
        let o = a
            .matmul(&vh)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b, n, self.inner))?;
        self.out_proj.forward(&o)
    }

    /// Tokens attend to a shared image whose keys and values are already projected
    /// (`1 × HW × I`); `q_in`: `B × T × C`.
    fn token_to_image_projected(&self, q_in: &Tensor, k: &Tensor, v: &Tensor) -> Result<Tensor> {
        let (b, t, _) = q_in.dims3()?;
        let h = self.heads;
        let qd = self.block_diag(&self.q_proj.forward(q_in)?)?;
        let qd = qd.reshape((1, b * h * t, self.inner))?;
        let a = softmax(&(qd.matmul(&k.t()?)? * self.scale())?)?;
        let o = a.matmul(v)?.reshape((b, h * t, self.inner))?;
        self.out_proj.forward(&self.block_diag_collect(&o)?)
    }

    /// Tokens (`q_in`: `B × T × C`) attend to the image: keys from `k_in` (image + PE), values
    /// from `v_in` (image), both `1 × HW × C` (shared) or `B × HW × C`.
    fn token_to_image(&self, q_in: &Tensor, k_in: &Tensor, v_in: &Tensor) -> Result<Tensor> {
        let (b, t, c) = q_in.dims3()?;
        let h = self.heads;
        let qd = self.block_diag(&self.q_proj.forward(q_in)?)?; // B × hT × I
        let qt = qd.reshape((b * h * t, self.inner))?.matmul(&self.wk)?; // (B·hT) × C
        let pk = if k_in.dim(0)? == 1 && b > 1 {
            let qt = qt.reshape((1, b * h * t, c))?;
            let a = softmax(&(qt.matmul(&k_in.t()?)? * self.scale())?)?;
            a.matmul(v_in)?
        } else {
            let qt = qt.reshape((b, h * t, c))?;
            let a = softmax(&(qt.matmul(&k_in.t()?)? * self.scale())?)?;
            a.matmul(v_in)?
        };
        let o = pk
            .reshape((b * h * t, c))?
            .matmul(self.v_proj.w_t())?
            .reshape((b, h * t, self.inner))?;
        let mut o = self.block_diag_collect(&o)?;
        if let Some(bv) = self.v_proj.bias() {
            o = o.broadcast_add(bv)?;
        }
        self.out_proj.forward(&o)
    }

    /// The image attends to the tokens. Queries from `q_in` (image + PE, `Bq × HW × C`) or, when
    /// given, the already projected shared queries `shared_q` (`1 × HW × I`); keys from `k_in`
    /// (tokens + PE), values from `v_in` (tokens), `B × T × C`. Returns `B × HW × C`.
    fn image_to_token(
        &self,
        q_in: &Tensor,
        shared_q: Option<&Tensor>,
        k_in: &Tensor,
        v_in: &Tensor,
    ) -> Result<Tensor> {
        let (b, t, _) = k_in.dims3()?;
        let (bq, hw, c) = q_in.dims3()?;
        let h = self.heads;
        let ht = h * t;
        let kd = self.block_diag(&self.k_proj.forward(k_in)?)?; // B × hT × I
        let vd = self.block_diag(&self.v_proj.forward(v_in)?)?;
        // Values already passed through the output projection: B × hT × C.
        let vt = vd
            .reshape((b * ht, self.inner))?
            .matmul(self.out_proj.w_t())?
            .reshape((b, ht, c))?;
        let kd2 = kd.reshape((b * ht, self.inner))?;
        let a = if let Some(qs) = shared_q {
            let s = (qs.squeeze(0)?.matmul(&kd2.t()?)? * self.scale())?; // HW × B·hT
            let s = softmax(&s.reshape((hw, b * h, t))?)?;
            s.reshape((hw, b, ht))?.transpose(0, 1)?.contiguous()?
        } else {
            let kt = kd2.matmul(&self.wq)?; // (B·hT) × C
            let bias = match self.q_proj.bias() {
                Some(bq_) => Some(kd2.matmul(&bq_.unsqueeze(1)?)?.reshape((b, 1, ht))?),
                None => None,
            };
            let s = if bq == 1 && b > 1 {
                let s = q_in.squeeze(0)?.matmul(&kt.t()?)?; // HW × B·hT
                s.reshape((hw, b, ht))?.transpose(0, 1)?.contiguous()?
            } else {
                q_in.matmul(&kt.reshape((b, ht, c))?.t()?)? // B × HW × hT
            };
            let s = match bias {
                Some(bias) => s.broadcast_add(&bias)?,
                None => s,
            };
            let s = (s * self.scale())?;
            softmax(&s.reshape((b, hw, h, t))?)?.reshape((b, hw, ht))?
        };
        let out = a.matmul(&vt)?;
        match self.out_proj.bias() {
            Some(bo) => out.broadcast_add(bo),
            None => Ok(out),
        }
    }
}

#[derive(Debug, Clone)]
struct MlpBlock {
    lin1: Lin,
    lin2: Lin,
}

impl MlpBlock {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.lin2.forward(&self.lin1.forward(x)?.relu()?)
    }
}

#[derive(Debug, Clone)]
struct TwoWayBlock {
    self_attn: Attention,
    norm1: Norm,
    cross_token_to_image: Attention,
    norm2: Norm,
    mlp: MlpBlock,
    norm3: Norm,
    norm4: Norm,
    cross_image_to_token: Attention,
    skip_first_layer_pe: bool,
}

/// Projections of the shared image side in the first block, computed once per image.
#[derive(Debug, Clone)]
pub struct SharedKeys {
    /// token-to-image keys `k_proj(image + pe)`, `1 × 4096 × 128`.
    t2i_k: Tensor,
    /// token-to-image values `v_proj(image)`.
    t2i_v: Tensor,
    /// image-to-token queries `q_proj(image + pe)`.
    i2t_q: Tensor,
}

impl TwoWayBlock {
    fn load(
        vb: VarBuilder,
        dim: usize,
        heads: usize,
        mlp_dim: usize,
        skip_pe: bool,
    ) -> Result<Self> {
        Ok(TwoWayBlock {
            self_attn: Attention::load(vb.pp("self_attn"), dim, heads, 1)?,
            norm1: Norm::load(vb.pp("norm1"), dim, 1e-5)?,
            cross_token_to_image: Attention::load(
                vb.pp("cross_attn_token_to_image"),
                dim,
                heads,
                2,
            )?,
            norm2: Norm::load(vb.pp("norm2"), dim, 1e-5)?,
            mlp: MlpBlock {
                lin1: Lin::load(vb.pp("mlp").pp("lin1"), dim, mlp_dim)?,
                lin2: Lin::load(vb.pp("mlp").pp("lin2"), mlp_dim, dim)?,
            },
            norm3: Norm::load(vb.pp("norm3"), dim, 1e-5)?,
            norm4: Norm::load(vb.pp("norm4"), dim, 1e-5)?,
            cross_image_to_token: Attention::load(
                vb.pp("cross_attn_image_to_token"),
                dim,
                heads,
                2,
            )?,
            skip_first_layer_pe: skip_pe,
        })
    }

    /// `queries`: `B × T × C`; `keys`: `1 × HW × C` or `B × HW × C`; `shared`: the precomputed
    /// projections of `keys` when `keys` is the shared image embedding.
    fn forward(
        &self,
        queries: &Tensor,
        keys: &Tensor,
        query_pe: &Tensor,
        key_pe: &Tensor,
        shared: Option<&SharedKeys>,
    ) -> Result<(Tensor, Tensor)> {
        let queries = if self.skip_first_layer_pe {
            self.self_attn.forward(queries, queries, queries)?
        } else {
            let q = (queries + query_pe)?;
            (queries + self.self_attn.forward(&q, &q, queries)?)?
        };
        let queries = self.norm1.forward(&queries)?;

        let q = (&queries + query_pe)?;
        let a = &self.cross_token_to_image;
        let keys_pe = keys.broadcast_add(key_pe)?;
        let attn = match shared {
            Some(s) => a.token_to_image_projected(&q, &s.t2i_k, &s.t2i_v)?,
            None => a.token_to_image(&q, &keys_pe, keys)?,
        };
        let queries = self.norm2.forward(&(queries + attn)?)?;
        let queries = self
            .norm3
            .forward(&(&queries + self.mlp.forward(&queries)?)?)?;

        let q = (&queries + query_pe)?;
        let attn = self.cross_image_to_token.image_to_token(
            &keys_pe,
            shared.map(|s| &s.i2t_q),
            &q,
            &queries,
        )?;
        let keys = self.norm4.forward(&keys.broadcast_add(&attn)?)?;
        Ok((queries, keys))
    }
}

/// The two-way transformer of the mask decoder.
#[derive(Debug, Clone)]
pub struct TwoWayTransformer {
    layers: Vec<TwoWayBlock>,
    final_attn: Attention,
    norm_final: Norm,
}

impl TwoWayTransformer {
    /// Loads SAM's transformer (depth 2, width 256, 8 heads, MLP 2048) from `vb`
    /// (`mask_decoder.transformer`).
    pub fn load(vb: VarBuilder) -> Result<Self> {
        let (dim, heads, mlp) = (256, 8, 2048);
        let layers = (0..2)
            .map(|i| TwoWayBlock::load(vb.pp("layers").pp(i.to_string()), dim, heads, mlp, i == 0))
            .collect::<Result<_>>()?;
        Ok(TwoWayTransformer {
            layers,
            final_attn: Attention::load(vb.pp("final_attn_token_to_image"), dim, heads, 2)?,
            norm_final: Norm::load(vb.pp("norm_final_attn"), dim, 1e-5)?,
        })
    }

    /// The first block's projections of the image side `image + dense` (`1 × HW × C`).
    pub fn shared_keys(&self, keys: &Tensor, key_pe: &Tensor) -> Result<SharedKeys> {
        let l0 = &self.layers[0];
        let kp = keys.broadcast_add(key_pe)?;
        Ok(SharedKeys {
            t2i_k: l0.cross_token_to_image.k_proj.forward(&kp)?,
            t2i_v: l0.cross_token_to_image.v_proj.forward(keys)?,
            i2t_q: l0.cross_image_to_token.q_proj.forward(&kp)?,
        })
    }

    /// `image`: `1 × HW × C` (shared) or `B × HW × C`; `image_pe`: `1 × HW × C`; `tokens`:
    /// `B × T × C`. Returns the tokens `B × T × C` and the image side `B × HW × C`.
    pub fn forward(
        &self,
        image: &Tensor,
        image_pe: &Tensor,
        tokens: &Tensor,
        shared: Option<&SharedKeys>,
    ) -> Result<(Tensor, Tensor)> {
        let mut queries = tokens.clone();
        let mut keys = image.clone();
        for (i, layer) in self.layers.iter().enumerate() {
            let s = if i == 0 && image.dim(0)? == 1 {
                shared
            } else {
                None
            };
            let (q, k) = layer.forward(&queries, &keys, tokens, image_pe, s)?;
            queries = q;
            keys = k;
        }
        let q = (&queries + tokens)?;
        let k = keys.broadcast_add(image_pe)?;
        let attn = self.final_attn.token_to_image(&q, &k, &keys)?;
        let queries = self.norm_final.forward(&(queries + attn)?)?;
        Ok((queries, keys))
    }
}
