//! Element-wise kernels of the factored decoder: exponential, softmax, layer norm and exact
//! (erf) GELU over `f32` slices.
//!
//! They are written as plain loops without branches on the data so that LLVM vectorises them;
//! on x86-64 each public function runs a copy compiled for AVX-512 or for AVX2+FMA when the CPU
//! has them (checked once at run time, [`vector_units`]), otherwise the baseline (SSE2) copy.
//! The decoder evaluates about a billion exponentials per image (softmax over 4096 image tokens,
//! and over 7 prompt tokens at each of them), so libm's scalar `expf` alone would cost seconds.

/// Defines `$name`, which runs `$generic::<true>` (fused multiply-adds) compiled for AVX-512 or
/// AVX2+FMA, the widest the CPU has, else `$generic::<false>` compiled for the baseline.
macro_rules! dispatch {
    ($(#[$doc:meta])* $name:ident, $generic:ident, ($($arg:ident : $ty:ty),*)) => {
        $(#[$doc])*
        #[allow(clippy::too_many_arguments)]
        pub(crate) fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn widest($($arg: $ty),*) {
                    $generic::<true>($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn fast($($arg: $ty),*) {
                    $generic::<true>($($arg),*)
                }
                match crate::kernels::vector_units() {
                    // Safety: the CPU has the features each copy was compiled for.
                    crate::kernels::VectorUnits::Avx512 => return unsafe { widest($($arg),*) },
                    crate::kernels::VectorUnits::Avx2Fma => return unsafe { fast($($arg),*) },
                    crate::kernels::VectorUnits::Baseline => {}
                }
            }
            $generic::<false>($($arg),*)
        }
    };
}

/// The vector units the kernels run on (core's, detected once for the whole process): AVX-512
/// (16 lanes; also used by `gemm`'s matrix products, its `x86-v4` feature), AVX2 with FMA (8
/// lanes), or the baseline (SSE2 on x86-64, whatever the target has elsewhere).
pub(crate) use mica_core::cpu::VectorUnits;

/// The widest vector units this CPU has, or in tests the ones a test chose.
pub(crate) fn vector_units() -> VectorUnits {
    #[cfg(test)]
    if let Some(units) = tests::CHOSEN_UNITS.with(|c| c.get()) {
        return units;
    }
    mica_core::cpu::vector_units()
}

/// `a·b + c`, fused when `F` (only in copies compiled with FMA: elsewhere `mul_add` would be a
/// slow library call).
#[inline(always)]
fn fma<const F: bool>(a: f32, b: f32, c: f32) -> f32 {
    if F {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

const LOG2E: f32 = std::f32::consts::LOG2_E;
/// ln 2 split in a part exact in few bits and the rest (Cody–Waite reduction).
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;

/// `e^x` with a relative error of a few ulp for `x` in [-87, 88]; below that the result is
/// about 1e-38 (not 0), above it saturates at about 1.6e38; NaN stays NaN. No branches and no
/// float-to-integer conversion (Rust's saturating `as` blocks vectorisation): vectorises.
#[inline(always)]
pub(crate) fn exp<const F: bool>(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5·2²³: adding it rounds to an integer in the low bits
    let x = x.clamp(-87.0, 88.0);
    let shifted = x * LOG2E + MAGIC;
    let n = shifted - MAGIC;
    let r = fma::<F>(-n, LN2_LO, fma::<F>(-n, LN2_HI, x));
    // Minimax polynomial for e^r on [-ln2/2, ln2/2] (Cephes expf coefficients).
    let p = 1.987_569_1e-4;
    let p = fma::<F>(p, r, 1.398_199_9e-3);
    let p = fma::<F>(p, r, 8.333_452e-3);
    let p = fma::<F>(p, r, 4.166_579_6e-2);
    let p = fma::<F>(p, r, 1.666_666_5e-1);
    let p = fma::<F>(p, r, 0.5);
    let er = fma::<F>(p, r * r, r) + 1.0;
    // 2ⁿ from the integer held in `shifted`'s mantissa (n in [-126, 127] after the clamp).
    let ni = shifted.to_bits().wrapping_sub(MAGIC.to_bits());
    let scale = f32::from_bits(ni.wrapping_add(127) << 23);
    er * scale
}

/// Lane-wise accumulation in 8 independent sums, which LLVM vectorises (a plain `sum()` of
/// floats must keep its order and stays scalar).
#[inline(always)]
fn sum_lanes(x: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let mut chunks = x.chunks_exact(8);
    for c in &mut chunks {
        for j in 0..8 {
            acc[j] += c[j];
        }
    }
    let tail: f32 = chunks.remainder().iter().sum();
    acc.iter().sum::<f32>() + tail
}

/// `Σ (x − m)²`, lane-wise.
#[inline(always)]
fn sum_sq_dev_lanes(x: &[f32], m: f32) -> f32 {
    let mut acc = [0f32; 8];
    let mut chunks = x.chunks_exact(8);
    for c in &mut chunks {
        for j in 0..8 {
            let d = c[j] - m;
            acc[j] += d * d;
        }
    }
    let tail: f32 = chunks.remainder().iter().map(|v| (v - m) * (v - m)).sum();
    acc.iter().sum::<f32>() + tail
}

/// Largest value, lane-wise.
#[inline(always)]
fn max_lanes(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 8];
    let mut chunks = x.chunks_exact(8);
    for c in &mut chunks {
        for j in 0..8 {
            acc[j] = acc[j].max(c[j]);
        }
    }
    let tail = chunks
        .remainder()
        .iter()
        .fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    acc.iter().fold(tail, |m, &v| m.max(v))
}

/// erf(x) as x·P(x²)/Q(x²) for |x| ≤ 4 and ±erf(4) beyond (1.5e-8 from ±1): a rational fit
/// (degrees 6 and 4 in x², fitted here by reweighted least squares), absolute error below
/// 4e-7 in f32 including rounding. No `exp`, one division: half the work of the
/// Abramowitz–Stegun form this replaced.
#[inline(always)]
fn erf<const F: bool>(x: f32) -> f32 {
    const P: [f32; 7] = [
        1.128_378_7,
        0.213_946_54,
        0.052_433_368,
        0.004_292_889_4,
        1.555_147_5e-4,
        -1.989_832_6e-6,
        1.921_016e-8,
    ];
    const Q: [f32; 5] = [
        1.0,
        0.522_932_8,
        0.120_800_05,
        0.015_550_967,
        0.001_097_938_9,
    ];
    let x = x.clamp(-4.0, 4.0);
    let t = x * x;
    let mut p = P[6];
    for &c in P[..6].iter().rev() {
        p = fma::<F>(p, t, c);
    }
    let mut q = Q[4];
    for &c in Q[..4].iter().rev() {
        q = fma::<F>(q, t, c);
    }
    // Within the fit's error of ±1 near |x| = 4; never past them.
    (x * p / q).clamp(-1.0, 1.0)
}

/// Exact GELU, `x/2 · (1 + erf(x/√2))`, as PyTorch's `nn.GELU()`.
#[inline(always)]
pub(crate) fn gelu<const F: bool>(x: f32) -> f32 {
    0.5 * x * (1.0 + erf::<F>(x * std::f32::consts::FRAC_1_SQRT_2))
}

#[cfg(test)]
#[inline(always)]
fn exp_in_place_generic<const F: bool>(x: &mut [f32]) {
    for v in x.iter_mut() {
        *v = exp::<F>(*v);
    }
}
#[cfg(test)]
dispatch!(exp_in_place, exp_in_place_generic, (x: &mut [f32]));

#[inline(always)]
fn gelu_in_place_generic<const F: bool>(x: &mut [f32]) {
    for v in x.iter_mut() {
        *v = gelu::<F>(*v);
    }
}
dispatch!(gelu_in_place, gelu_in_place_generic, (x: &mut [f32]));

/// Softmax of every row of `n` values (rows contiguous), in place.
#[inline(always)]
fn softmax_rows_generic<const F: bool>(x: &mut [f32], n: usize) {
    if n == 0 {
        return;
    }
    for row in x.chunks_exact_mut(n) {
        let max = max_lanes(row);
        for v in row.iter_mut() {
            *v = exp::<F>(*v - max);
        }
        let inv = 1.0 / sum_lanes(row);
        for v in row.iter_mut() {
            *v *= inv;
        }
    }
}
dispatch!(softmax_rows, softmax_rows_generic, (x: &mut [f32], n: usize));

/// Layer norm of every row of `gamma.len()` values in place: `(x − mean)/√(var + eps)·γ + β`.
#[inline(always)]
fn layer_norm_rows_generic<const F: bool>(x: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let c = gamma.len();
    if c == 0 {
        return;
    }
    for row in x.chunks_exact_mut(c) {
        let mean = sum_lanes(row) / c as f32;
        let var = sum_sq_dev_lanes(row, mean) / c as f32;
        let inv = 1.0 / (var + eps).sqrt();
        for ((v, g), b) in row.iter_mut().zip(gamma).zip(beta) {
            *v = (*v - mean) * inv * g + b;
        }
    }
}
dispatch!(
    layer_norm_rows,
    layer_norm_rows_generic,
    (x: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32)
);

/// `gelu(layer_norm(x + bias))` over rows of `bias.len()` values, in place.
#[inline(always)]
fn bias_norm_gelu_rows_generic<const F: bool>(
    x: &mut [f32],
    bias: &[f32],
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
) {
    let c = bias.len();
    if c == 0 {
        return;
    }
    for row in x.chunks_exact_mut(c) {
        for (v, b) in row.iter_mut().zip(bias) {
            *v += b;
        }
        let mean = sum_lanes(row) / c as f32;
        let var = sum_sq_dev_lanes(row, mean) / c as f32;
        let inv = 1.0 / (var + eps).sqrt();
        for ((v, g), b) in row.iter_mut().zip(gamma).zip(beta) {
            *v = gelu::<F>((*v - mean) * inv * g + b);
        }
    }
}
dispatch!(
    bias_norm_gelu_rows,
    bias_norm_gelu_rows_generic,
    (x: &mut [f32], bias: &[f32], gamma: &[f32], beta: &[f32], eps: f32)
);

/// `gelu(x + bias)` over rows of `bias.len()` values, in place.
#[inline(always)]
fn bias_gelu_rows_generic<const F: bool>(x: &mut [f32], bias: &[f32]) {
    if bias.is_empty() {
        return;
    }
    for row in x.chunks_exact_mut(bias.len()) {
        for (v, b) in row.iter_mut().zip(bias) {
            *v = gelu::<F>(*v + b);
        }
    }
}
dispatch!(bias_gelu_rows, bias_gelu_rows_generic, (x: &mut [f32], bias: &[f32]));

/// Image tokens per block of a [`HeadBlocked`] matrix.
pub(crate) const HB: usize = 32;

/// A per-image matrix of `heads·dh` channels by `n` image tokens in the layout the per-head
/// kernels read: for every head and block of [`HB`] image tokens, the head's `dh` channels ×
/// `HB` tokens lie together (2 KB for `dh` = 16), zero-padded past `n`. In the plain
/// channel-major layout a block's 16 rows lie 16 KB apart, all in one set of the L1 cache
/// (8-way): every block of a product then missed L1, which made the products run at a sixth of
/// their arithmetic speed.
#[derive(Debug, Clone)]
pub(crate) struct HeadBlocked {
    data: Vec<f32>,
    heads: usize,
    dh: usize,
    n: usize,
}

impl HeadBlocked {
    /// From a channel-major matrix `x` (`heads·dh` rows of `n` values).
    ///
    /// # Panics
    /// When `x` is not `heads·dh × n`.
    pub(crate) fn from_rows(x: &[f32], heads: usize, dh: usize, n: usize) -> Self {
        assert_eq!(x.len(), heads * dh * n, "matrix must be {heads}·{dh} x {n}");
        let nb = n.div_ceil(HB);
        let mut data = vec![0f32; heads * nb * dh * HB];
        for h in 0..heads {
            for bi in 0..nb {
                let (i0, w) = (bi * HB, HB.min(n - bi * HB));
                for d in 0..dh {
                    let dst = ((h * nb + bi) * dh + d) * HB;
                    let src = (h * dh + d) * n + i0;
                    data[dst..dst + w].copy_from_slice(&x[src..src + w]);
                }
            }
        }
        HeadBlocked { data, heads, dh, n }
    }

    /// From a token-major matrix `x` (`n` rows of `heads·dh` values).
    ///
    /// # Panics
    /// When `x` is not `n × heads·dh`.
    pub(crate) fn from_token_major(x: &[f32], n: usize, heads: usize, dh: usize) -> Self {
        let inner = heads * dh;
        assert_eq!(x.len(), n * inner, "matrix must be {n} x {heads}·{dh}");
        let nb = n.div_ceil(HB);
        let mut data = vec![0f32; heads * nb * dh * HB];
        for (i, row) in x.chunks_exact(inner).enumerate() {
            let (bi, j) = (i / HB, i % HB);
            for h in 0..heads {
                for d in 0..dh {
                    data[((h * nb + bi) * dh + d) * HB + j] = row[h * dh + d];
                }
            }
        }
        HeadBlocked { data, heads, dh, n }
    }

    /// Head `h`: `⌈n / HB⌉` blocks of `dh × HB`.
    fn head(&self, h: usize) -> &[f32] {
        let len = self.n.div_ceil(HB) * self.dh * HB;
        &self.data[h * len..(h + 1) * len]
    }
}

/// Writes (or adds) the first `w` of a register block of results. A function, not a closure:
/// closures are compiled without the caller's `target_feature`s and would not be inlined into
/// the fast copies.
#[inline(always)]
fn store_block(o: &mut [f32], acc: &[f32; HB], w: usize, accumulate: bool) {
    if w == HB {
        if accumulate {
            for j in 0..HB {
                o[j] += acc[j];
            }
        } else {
            o[..HB].copy_from_slice(acc);
        }
    } else {
        for (o, &a) in o[..w].iter_mut().zip(acc) {
            *o = if accumulate { *o + a } else { a };
        }
    }
}

/// `acc[k] += Σ_d coefs[t0 + k][d] · rows[d]` for `K` tokens (coefficients `T × dh`) over
/// one block (`rows`: `dh × HB`): the sums stay in registers (8 of the 16 for `K` = 2).
#[inline(always)]
fn block_products<const F: bool, const K: usize>(
    acc: &mut [[f32; HB]; K],
    rows: &[f32],
    coefs: &[f32],
    t0: usize,
    dh: usize,
) {
    for d in 0..dh {
        let row = &rows[d * HB..(d + 1) * HB];
        for (k, acc) in acc.iter_mut().enumerate() {
            let c = coefs[(t0 + k) * dh + d];
            for j in 0..HB {
                acc[j] = fma::<F>(c, row[j], acc[j]);
            }
        }
    }
}

/// One head of [`head_products`]: `blocks` holds the head's blocks (`dh × HB` each), `coefs`
/// the scaled coefficients `T × dh`, `out` the `T × n` output. A block stays in L1 while the
/// tokens are accumulated in registers, two at a time.
#[inline(always)]
fn head_block_generic<const F: bool>(
    out: &mut [f32],
    blocks: &[f32],
    coefs: &[f32],
    t: usize,
    dh: usize,
    n: usize,
    accumulate: bool,
) {
    let nb = n.div_ceil(HB);
    assert!(blocks.len() >= nb * dh * HB && coefs.len() >= t * dh && out.len() >= t * n);
    for bi in 0..nb {
        let (i0, w) = (bi * HB, HB.min(n - bi * HB));
        let blk = &blocks[bi * dh * HB..(bi + 1) * dh * HB];
        // Two named accumulators rather than [`block_products`]: written through it, this
        // kernel measured 2.3× slower (0.55–0.65 vs 0.25 ms per prompt and product).
        let mut ti = 0;
        while ti + 2 <= t {
            let (mut acc0, mut acc1) = ([0f32; HB], [0f32; HB]);
            for d in 0..dh {
                let (c0, c1) = (coefs[ti * dh + d], coefs[(ti + 1) * dh + d]);
                let arow = &blk[d * HB..(d + 1) * HB];
                for j in 0..HB {
                    acc0[j] = fma::<F>(c0, arow[j], acc0[j]);
                    acc1[j] = fma::<F>(c1, arow[j], acc1[j]);
                }
            }
            store_block(&mut out[ti * n + i0..], &acc0, w, accumulate);
            store_block(&mut out[(ti + 1) * n + i0..], &acc1, w, accumulate);
            ti += 2;
        }
        if ti < t {
            let mut acc0 = [0f32; HB];
            for d in 0..dh {
                let c0 = coefs[ti * dh + d];
                let arow = &blk[d * HB..(d + 1) * HB];
                for j in 0..HB {
                    acc0[j] = fma::<F>(c0, arow[j], acc0[j]);
                }
            }
            store_block(&mut out[ti * n + i0..], &acc0, w, accumulate);
        }
    }
}
dispatch!(
    head_block,
    head_block_generic,
    (
        out: &mut [f32],
        blocks: &[f32],
        coefs: &[f32],
        t: usize,
        dh: usize,
        n: usize,
        accumulate: bool
    )
);

/// The coefficients `T × dh` of head `h` for the tokens `q` (`T × (heads·dh)`), times `scale`.
fn head_coefs(q: &[f32], scale: f32, (h, heads, dh, t): (usize, usize, usize, usize)) -> Vec<f32> {
    let inner = heads * dh;
    assert!(q.len() >= t * inner, "tokens must be {t} x {inner}");
    (0..t)
        .flat_map(|ti| (0..dh).map(move |d| scale * q[ti * inner + h * dh + d]))
        .collect()
}

/// Per-head products along image tokens of one prompt: for every head `h` and token `t`,
/// `out[h·T + t][i] (+)= scale · Σ_d b[t][h·dh + d] · a[h·dh + d][i]`, where `a` holds
/// `heads·dh` channels of `n` image tokens (a per-image projection), `b` is `T × (heads·dh)`
/// (a prompt's tokens) and `out` is `(heads·T) × n`.
///
/// These are the factored decoder's attention logits and inner products: contractions over only
/// `dh` = 16 channels, which general matrix-product kernels run at a fraction of their speed.
/// Runs on the calling thread: the decoder runs prompts in parallel, each through all of a
/// stage's steps, so a prompt's buffers stay in cache from one step to the next (sweeping every
/// prompt's buffers once per step made these steps bound by memory bandwidth).
pub(crate) fn head_products(
    out: &mut [f32],
    a: &HeadBlocked,
    b: &[f32],
    t: usize,
    scale: f32,
    accumulate: bool,
) {
    let (heads, dh, n) = (a.heads, a.dh, a.n);
    assert!(out.len() >= heads * t * n);
    for (h, chunk) in out[..heads * t * n].chunks_mut(t * n).enumerate() {
        let coefs = head_coefs(b, scale, (h, heads, dh, t));
        head_block(chunk, a.head(h), &coefs, t, dh, n, accumulate);
    }
}

/// Head width of [`HeadValues`] and [`head_attention`].
pub(crate) const HEAD_DIM: usize = 16;

/// A per-image value matrix (`n` image tokens × `heads·16` channels) with each head's
/// `n × 16` values together, as [`head_attention`] reads them.
#[derive(Debug, Clone)]
pub(crate) struct HeadValues {
    data: Vec<f32>,
    heads: usize,
    n: usize,
}

impl HeadValues {
    /// From a token-major matrix `x` (`n × heads·16`).
    ///
    /// # Panics
    /// When `x` is not `n × heads·16`.
    pub(crate) fn from_token_major(x: &[f32], n: usize, heads: usize) -> Self {
        let inner = heads * HEAD_DIM;
        assert_eq!(x.len(), n * inner, "values must be {n} x {inner}");
        let mut data = vec![0f32; n * inner];
        for h in 0..heads {
            for i in 0..n {
                let dst = (h * n + i) * HEAD_DIM;
                let src = i * inner + h * HEAD_DIM;
                data[dst..dst + HEAD_DIM].copy_from_slice(&x[src..src + HEAD_DIM]);
            }
        }
        HeadValues { data, heads, n }
    }

    fn head(&self, h: usize) -> &[f32] {
        &self.data[h * self.n * HEAD_DIM..(h + 1) * self.n * HEAD_DIM]
    }
}

/// Rows `t0..t0 + K` of one head's attention output (see [`head_attention`]).
#[inline(always)]
fn attend_tokens<const F: bool, const K: usize>(
    o: &mut [f32],
    ldo: usize,
    p: &[f32],
    v: &[f32],
    t0: usize,
    n: usize,
) {
    let rows: [&[f32]; K] = std::array::from_fn(|k| &p[(t0 + k) * n..(t0 + k + 1) * n]);
    let mut acc = [[0f32; HEAD_DIM]; K];
    for (i, vr) in v.chunks_exact(HEAD_DIM).take(n).enumerate() {
        for (acc, row) in acc.iter_mut().zip(&rows) {
            let c = row[i];
            for d in 0..HEAD_DIM {
                acc[d] = fma::<F>(c, vr[d], acc[d]);
            }
        }
    }
    for (k, acc) in acc.iter().enumerate() {
        o[(t0 + k) * ldo..(t0 + k) * ldo + HEAD_DIM].copy_from_slice(acc);
    }
}

/// One head: `o[t][d] = Σ_i p[t][i] · v[i][d]` for `t` rows of `p` (`T × n`) and the head's
/// values `v` (`n × 16`); `o` has rows at stride `ldo`.
#[inline(always)]
fn head_attend_generic<const F: bool>(
    o: &mut [f32],
    ldo: usize,
    p: &[f32],
    v: &[f32],
    t: usize,
    n: usize,
) {
    assert!(p.len() >= t * n && v.len() >= n * HEAD_DIM);
    assert!(t == 0 || o.len() >= (t - 1) * ldo + HEAD_DIM);
    let mut t0 = 0;
    while t0 + 4 <= t {
        attend_tokens::<F, 4>(o, ldo, p, v, t0, n);
        t0 += 4;
    }
    match t - t0 {
        3 => attend_tokens::<F, 3>(o, ldo, p, v, t0, n),
        2 => attend_tokens::<F, 2>(o, ldo, p, v, t0, n),
        1 => attend_tokens::<F, 1>(o, ldo, p, v, t0, n),
        _ => {}
    }
}
dispatch!(
    head_attend,
    head_attend_generic,
    (o: &mut [f32], ldo: usize, p: &[f32], v: &[f32], t: usize, n: usize)
);

/// Attention output per head: `o[t][h·16 + d] = Σ_i p[h·T + t][i] · v[i][h·16 + d]` for
/// probabilities `p` (`(heads·T) × n`) and values `v`; `o` is `T × (heads·16)`. A general
/// matrix product of these shapes (7 × 4096 by 4096 × 16 per head) spends as long packing
/// its operands as multiplying.
pub(crate) fn head_attention(o: &mut [f32], p: &[f32], v: &HeadValues, t: usize) {
    let (heads, n) = (v.heads, v.n);
    let inner = heads * HEAD_DIM;
    assert!(o.len() >= t * inner && p.len() >= heads * t * n);
    for h in 0..heads {
        head_attend(
            &mut o[h * HEAD_DIM..],
            inner,
            &p[h * t * n..(h + 1) * t * n],
            v.head(h),
            t,
            n,
        );
    }
}

/// How [`head_products_scaled`] combines the existing output with the first product.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ScaleOf {
    /// `out ← s ⊙ (out + A·qa) + B·qb`.
    Sum,
    /// `out ← out + s ⊙ (A·qa) + B·qb`.
    Product,
}

/// Tokens `t0..t0 + K` (K = 1 or 2) of one block of [`head_block_scaled`]: `out` rows
/// `o0..o0 + K` at stride `stride` from `i0`, `a`/`b` the block's `dh × HB` values, `sv` the
/// block's column scales.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn scaled_tokens<const F: bool, const K: usize>(
    out: &mut [f32],
    (o0, stride, i0): (usize, usize, usize),
    (a, ca): (&[f32], &[f32]),
    (b, cb): (&[f32], &[f32]),
    sv: &[f32],
    t0: usize,
    dh: usize,
    of_sum: bool,
) {
    let mut acc = [[0f32; HB]; K];
    if of_sum {
        for (k, acc) in acc.iter_mut().enumerate() {
            acc.copy_from_slice(&out[(o0 + k) * stride + i0..][..HB]);
        }
    }
    block_products::<F, K>(&mut acc, a, ca, t0, dh);
    for (k, acc) in acc.iter_mut().enumerate() {
        let o = &out[(o0 + k) * stride + i0..][..HB];
        for j in 0..HB {
            acc[j] = if of_sum {
                acc[j] * sv[j]
            } else {
                fma::<F>(acc[j], sv[j], o[j])
            };
        }
    }
    block_products::<F, K>(&mut acc, b, cb, t0, dh);
    for (k, acc) in acc.iter().enumerate() {
        out[(o0 + k) * stride + i0..][..HB].copy_from_slice(acc);
    }
}

/// One head of [`head_products_scaled`], for `t` tokens: `a`/`b` hold the head's blocks,
/// `ca`/`cb` the coefficients `T × dh`, `s` the column scales. Two tokens at a time in
/// registers; every output is read and written once.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn head_block_scaled_generic<const F: bool>(
    out: &mut [f32],
    a: &[f32],
    ca: &[f32],
    b: &[f32],
    cb: &[f32],
    s: &[f32],
    t: usize,
    dh: usize,
    n: usize,
    of_sum: bool,
) {
    let nb = n.div_ceil(HB);
    assert!(a.len() >= nb * dh * HB && b.len() >= nb * dh * HB);
    assert!(s.len() >= n && out.len() >= t * n && ca.len() >= t * dh && cb.len() >= t * dh);
    for bi in 0..nb {
        let (i0, w) = (bi * HB, HB.min(n - bi * HB));
        let (ab, bb) = (
            &a[bi * dh * HB..(bi + 1) * dh * HB],
            &b[bi * dh * HB..(bi + 1) * dh * HB],
        );
        if w == HB {
            let sv = &s[i0..i0 + HB];
            let mut ti = 0;
            while ti + 2 <= t {
                let at = (ti, n, i0);
                scaled_tokens::<F, 2>(out, at, (ab, ca), (bb, cb), sv, ti, dh, of_sum);
                ti += 2;
            }
            if ti < t {
                let at = (ti, n, i0);
                scaled_tokens::<F, 1>(out, at, (ab, ca), (bb, cb), sv, ti, dh, of_sum);
            }
        } else {
            // The last, partial block through a padded copy.
            let mut sv = [0f32; HB];
            sv[..w].copy_from_slice(&s[i0..n]);
            let mut tmp = [0f32; HB];
            for ti in 0..t {
                tmp[..w].copy_from_slice(&out[ti * n + i0..ti * n + n]);
                let at = (0, HB, 0);
                scaled_tokens::<F, 1>(&mut tmp, at, (ab, ca), (bb, cb), &sv, ti, dh, of_sum);
                out[ti * n + i0..ti * n + n].copy_from_slice(&tmp[..w]);
            }
        }
    }
}
dispatch!(
    head_block_scaled,
    head_block_scaled_generic,
    (
        out: &mut [f32],
        a: &[f32],
        ca: &[f32],
        b: &[f32],
        cb: &[f32],
        s: &[f32],
        t: usize,
        dh: usize,
        n: usize,
        of_sum: bool
    )
);

/// Two [`head_products`] and a column scaling in one pass over the output (`(heads·T) × n`):
/// with `P(A, q)` the per-head products of the tokens `q` (`T × (heads·dh)`) with `A`,
/// `out ← s ⊙ (out + P(A, sa·qa)) + P(B, sb·qb)` ([`ScaleOf::Sum`]) or
/// `out ← out + s ⊙ P(A, sa·qa) + P(B, sb·qb)` ([`ScaleOf::Product`]), `s` scaling column `i`.
/// The factored decoder's attention logits: a per-image part, a per-prompt low-rank part
/// already in `out`, the layer norm's per-token scale and a constant part.
pub(crate) fn head_products_scaled(
    out: &mut [f32],
    (a, qa, sa): (&HeadBlocked, &[f32], f32),
    (b, qb, sb): (&HeadBlocked, &[f32], f32),
    s: &[f32],
    of: ScaleOf,
    t: usize,
) {
    let (heads, dh, n) = (a.heads, a.dh, a.n);
    assert_eq!(
        (b.heads, b.dh, b.n),
        (heads, dh, n),
        "products of different shapes"
    );
    assert!(out.len() >= heads * t * n);
    for (h, chunk) in out[..heads * t * n].chunks_mut(t * n).enumerate() {
        let dims = (h, heads, dh, t);
        head_block_scaled(
            chunk,
            a.head(h),
            &head_coefs(qa, sa, dims),
            b.head(h),
            &head_coefs(qb, sb, dims),
            s,
            t,
            dh,
            n,
            of == ScaleOf::Sum,
        );
    }
}

/// One output row of a depthwise 3×3 convolution (padding 1, stride `stride`) on a channels-last
/// image `x` (`h × w × c`): `out` (`w_out × c`) for output row `oy`, from the taps `k`
/// (`9 × c`, tap `ky·3 + kx`) and `bias` (`c`). Vectorised over the channels.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn depthwise3_row_generic<const F: bool>(
    out: &mut [f32],
    x: &[f32],
    k: &[f32],
    bias: &[f32],
    h: usize,
    w: usize,
    stride: usize,
    oy: usize,
) {
    let c = bias.len();
    let w_out = out.len() / c.max(1);
    for ox in 0..w_out {
        let o = &mut out[ox * c..(ox + 1) * c];
        o.copy_from_slice(bias);
        for ky in 0..3 {
            let iy = (oy * stride + ky) as isize - 1;
            if iy < 0 || iy >= h as isize {
                continue;
            }
            for kx in 0..3 {
                let ix = (ox * stride + kx) as isize - 1;
                if ix < 0 || ix >= w as isize {
                    continue;
                }
                let src = &x[(iy as usize * w + ix as usize) * c..][..c];
                let tap = &k[(ky * 3 + kx) * c..][..c];
                for ((o, &v), &t) in o.iter_mut().zip(src).zip(tap) {
                    *o = fma::<F>(v, t, *o);
                }
            }
        }
    }
}
dispatch!(
    depthwise3_row,
    depthwise3_row_generic,
    (
        out: &mut [f32],
        x: &[f32],
        k: &[f32],
        bias: &[f32],
        h: usize,
        w: usize,
        stride: usize,
        oy: usize
    )
);

/// Softmax down the columns of consecutive groups of `t` rows of `n` values (`x` is
/// `groups × t × n`): for every group and column `i`, the `t` values `x[g][·][i]` are replaced
/// by their softmax. Vectorised along the columns (the image tokens); `work` needs `2n` values.
#[inline(always)]
fn softmax_columns_generic<const F: bool>(x: &mut [f32], t: usize, n: usize, work: &mut [f32]) {
    if t == 0 || n == 0 {
        return;
    }
    let (mx, sum) = work[..2 * n].split_at_mut(n);
    for g in x.chunks_exact_mut(t * n) {
        mx.copy_from_slice(&g[..n]);
        for r in g.chunks_exact(n).skip(1) {
            for (m, &v) in mx.iter_mut().zip(r) {
                *m = m.max(v);
            }
        }
        sum.fill(0.0);
        for r in g.chunks_exact_mut(n) {
            for ((v, &m), s) in r.iter_mut().zip(mx.iter()).zip(sum.iter_mut()) {
                *v = exp::<F>(*v - m);
                *s += *v;
            }
        }
        for s in sum.iter_mut() {
            *s = 1.0 / *s;
        }
        for r in g.chunks_exact_mut(n) {
            for (v, &s) in r.iter_mut().zip(sum.iter()) {
                *v *= s;
            }
        }
    }
}
dispatch!(
    softmax_columns,
    softmax_columns_generic,
    (x: &mut [f32], t: usize, n: usize, work: &mut [f32])
);

/// `out[i] = base[i] + Σ_k a[k][i] · b[k][i]` for `k` rows of `n` values: per-column inner
/// products (the layer-norm variances of the factored decoder), vectorised along the columns.
#[inline(always)]
fn column_dots_generic<const F: bool>(out: &mut [f32], base: &[f32], a: &[f32], b: &[f32]) {
    let n = out.len();
    out.copy_from_slice(&base[..n]);
    for (ra, rb) in a.chunks_exact(n).zip(b.chunks_exact(n)) {
        for ((o, &x), &y) in out.iter_mut().zip(ra).zip(rb) {
            *o = fma::<F>(x, y, *o);
        }
    }
}
dispatch!(
    column_dots,
    column_dots_generic,
    (out: &mut [f32], base: &[f32], a: &[f32], b: &[f32])
);

/// Values of `k` per pass of [`row_dots`]: the rows' slices of one pass (the decoder's 56 and
/// 113 rows) stay in the L2 cache.
const ROW_DOTS_KC: usize = 512;

/// `out[i][j] = Σ_l a[i][l] · b[j][l]` for row-major `a` (`m × k`) and `b` (`n × k`), `out`
/// `m × n`: a product with the second factor transposed, both read along their rows.
///
/// `gemm` packs both operands of this shape element by element: the decoder's 56 × 4096 by
/// 4096 × 113 products ran at a quarter of its speed on other shapes. With AVX-512 this runs
/// blocks of 2 × 4 rows in 16 lanes over 512 values of `k` at a time (lanes summed in a fixed
/// order); elsewhere it is `gemm`'s product as before.
pub(crate) fn row_dots(out: &mut [f32], a: &[f32], b: &[f32], k: usize) {
    assert!(
        k > 0 && a.len().is_multiple_of(k) && b.len().is_multiple_of(k),
        "rows of {k} values"
    );
    let (m, n) = (a.len() / k, b.len() / k);
    assert_eq!(out.len(), m * n, "row_dots output size");
    #[cfg(target_arch = "x86_64")]
    if vector_units() == VectorUnits::Avx512 {
        // Safety: the CPU has AVX-512F; the shapes were checked above.
        return unsafe { row_dots_avx512(out, a, b, k) };
    }
    use crate::linalg::{matmul, MatMut, MatRef, Threads};
    matmul(
        MatMut::new(out, m, n),
        MatRef::new(a, m, k),
        MatRef::new(b, n, k).t(),
        1.0,
        false,
        Threads::One,
    );
}

/// [`row_dots`] in AVX-512 registers: 8 accumulators (2 rows of `a` × 4 of `b`), the last
/// row repeated where a block is cut short (its sums are dropped), the tail of each pass
/// through masked loads.
///
/// # Safety
/// The CPU must have AVX-512F; `a` and `b` hold whole rows of `k` and `out` their `m × n`
/// products.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn row_dots_avx512(out: &mut [f32], a: &[f32], b: &[f32], k: usize) {
    use std::arch::x86_64::*;
    let (m, n) = (a.len() / k, b.len() / k);
    out.fill(0.0);
    let mut k0 = 0;
    while k0 < k {
        let kc = ROW_DOTS_KC.min(k - k0);
        let whole = kc - kc % 16;
        let tail: __mmask16 = ((1u32 << (kc - whole)) - 1) as u16;
        let mut i = 0;
        while i < m {
            let mi = (m - i).min(2);
            let ap = [i, i + mi - 1].map(|r| a[r * k + k0..].as_ptr());
            let mut j = 0;
            while j < n {
                let nj = (n - j).min(4);
                let bp = [0, 1, 2, 3].map(|x| b[(j + x.min(nj - 1)) * k + k0..].as_ptr());
                let mut acc = [[_mm512_setzero_ps(); 4]; 2];
                let mut l = 0;
                while l < whole {
                    let av = [_mm512_loadu_ps(ap[0].add(l)), _mm512_loadu_ps(ap[1].add(l))];
                    for (x, p) in bp.iter().enumerate() {
                        let bv = _mm512_loadu_ps(p.add(l));
                        acc[0][x] = _mm512_fmadd_ps(av[0], bv, acc[0][x]);
                        acc[1][x] = _mm512_fmadd_ps(av[1], bv, acc[1][x]);
                    }
                    l += 16;
                }
                if tail != 0 {
                    let av = [
                        _mm512_maskz_loadu_ps(tail, ap[0].add(whole)),
                        _mm512_maskz_loadu_ps(tail, ap[1].add(whole)),
                    ];
                    for (x, p) in bp.iter().enumerate() {
                        let bv = _mm512_maskz_loadu_ps(tail, p.add(whole));
                        acc[0][x] = _mm512_fmadd_ps(av[0], bv, acc[0][x]);
                        acc[1][x] = _mm512_fmadd_ps(av[1], bv, acc[1][x]);
                    }
                }
                for (y, row) in acc.iter().enumerate().take(mi) {
                    for (x, v) in row.iter().enumerate().take(nj) {
                        out[(i + y) * n + j + x] += _mm512_reduce_add_ps(*v);
                    }
                }
                j += nj;
            }
            i += mi;
        }
        k0 += kc;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    thread_local! {
        /// The vector units [`vector_units`] reports on this test's thread, when set.
        pub(super) static CHOSEN_UNITS: Cell<Option<VectorUnits>> = const { Cell::new(None) };
    }

    /// Runs `f` once on each copy of the kernels this CPU can run, widest last.
    fn on_each_vector_unit(mut f: impl FnMut(VectorUnits)) {
        let all = [
            VectorUnits::Baseline,
            VectorUnits::Avx2Fma,
            VectorUnits::Avx512,
        ];
        let widest = mica_core::cpu::vector_units();
        let upto = all.iter().position(|&u| u == widest).unwrap();
        for &units in &all[..=upto] {
            CHOSEN_UNITS.with(|c| c.set(Some(units)));
            assert_eq!(vector_units(), units);
            f(units);
        }
        CHOSEN_UNITS.with(|c| c.set(None));
    }

    #[test]
    fn exp_is_accurate_to_a_few_ulp() {
        on_each_vector_unit(|_| {
            let mut worst = 0f64;
            for i in -87_000..88_000 {
                let x = i as f32 / 1000.0;
                let got = exp::<false>(x) as f64;
                let want = (x as f64).exp();
                worst = worst.max(((got - want) / want).abs());
            }
            assert!(worst < 5e-7, "worst relative error {worst}");
            // The vectorised copy gives the same values.
            let mut v: Vec<f32> = (-500..500).map(|i| i as f32 / 7.0).collect();
            let want: Vec<f32> = v.iter().map(|&x| exp::<false>(x)).collect();
            exp_in_place(&mut v);
            for (a, b) in v.iter().zip(&want) {
                assert!((a - b).abs() <= 1e-6 * b.abs());
            }
            // Far below the range the value is negligible, not NaN or negative.
            assert!(exp::<false>(-1000.0) < 1e-37 && exp::<false>(-1000.0) >= 0.0);
            assert!(exp::<false>(f32::NEG_INFINITY) < 1e-37);
            assert!(exp::<false>(f32::NAN).is_nan());
        });
    }

    #[test]
    fn erf_is_accurate_to_4e_7() {
        let mut worst = 0f64;
        for i in -9000..=9000 {
            let x = i as f64 / 1000.0;
            for got in [erf::<false>(x as f32), erf::<true>(x as f32)] {
                worst = worst.max((got as f64 - libm_erf(x as f32 as f64)).abs());
            }
        }
        assert!(worst < 4e-7, "worst absolute error {worst}");
        assert!(erf::<false>(f32::NAN).is_nan());
        assert_eq!(erf::<false>(0.0), 0.0);
        assert!(erf::<false>(f32::INFINITY) <= 1.0 && erf::<false>(f32::NEG_INFINITY) >= -1.0);
    }

    #[test]
    fn gelu_matches_the_exact_erf_form() {
        for i in -8000..8000 {
            let x = i as f64 / 1000.0;
            let want = 0.5 * x * (1.0 + libm_erf(x / std::f64::consts::SQRT_2));
            let got = gelu::<false>(x as f32) as f64;
            assert!(
                (got - want).abs() < 2e-6 * (1.0 + x.abs()),
                "x={x}: {got} vs {want}"
            );
        }
    }

    /// erf by its Taylor series (|x| < 3) or continued fraction, in f64, for the test only.
    fn libm_erf(x: f64) -> f64 {
        if x.abs() > 6.0 {
            return x.signum();
        }
        if x.abs() < 3.0 {
            let mut sum = x;
            let mut term = x;
            for n in 1..200 {
                term *= -x * x / n as f64;
                sum += term / (2 * n + 1) as f64;
            }
            return 2.0 / std::f64::consts::PI.sqrt() * sum;
        }
        // erfc continued fraction (Lentz) for large |x|.
        let ax = x.abs();
        let mut f = ax;
        for k in (1..60).rev() {
            f = ax + (k as f64 / 2.0) / f;
        }
        let erfc = (-ax * ax).exp() / std::f64::consts::PI.sqrt() / f;
        x.signum() * (1.0 - erfc)
    }

    #[test]
    fn softmax_kernels_sum_to_one_and_match_the_definition() {
        on_each_vector_unit(|_| {
            let x: Vec<f32> = (0..3 * 4096)
                .map(|i| ((i * 37) % 101) as f32 / 9.0 - 5.0)
                .collect();
            for n in [7usize, 4096] {
                let mut a = x.clone();
                if n == 7 {
                    softmax_rows(&mut a[..7 * 1000], n);
                } else {
                    softmax_rows(&mut a, n);
                }
                let rows = if n == 7 { 1000 } else { 3 };
                for r in 0..rows {
                    let src = &x[r * n..(r + 1) * n];
                    let m = src.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
                    let z: f64 = src.iter().map(|&v| (v as f64 - m).exp()).sum();
                    for (j, &v) in src.iter().enumerate() {
                        let want = (v as f64 - m).exp() / z;
                        assert!((a[r * n + j] as f64 - want).abs() < 1e-6 * (1.0 + want));
                    }
                }
            }
        });
    }

    #[test]
    fn blocked_from_either_layout_is_the_same() {
        let (heads, dh, n) = (3, 4, 70);
        let rows: Vec<f32> = (0..heads * dh * n).map(|i| i as f32).collect();
        let mut tokens = vec![0f32; n * heads * dh];
        for c in 0..heads * dh {
            for i in 0..n {
                tokens[i * heads * dh + c] = rows[c * n + i];
            }
        }
        let (a, b) = (
            HeadBlocked::from_rows(&rows, heads, dh, n),
            HeadBlocked::from_token_major(&tokens, n, heads, dh),
        );
        assert_eq!(a.data, b.data);
    }

    #[test]
    fn head_products_match_their_definition() {
        on_each_vector_unit(|_| {
            let (heads, dh, t, n) = (3, 4, 3, 70); // n not a multiple of the block, t odd
            let a: Vec<f32> = (0..heads * dh * n)
                .map(|i| ((i * 7) % 13) as f32 / 6.0 - 1.0)
                .collect();
            let b: Vec<f32> = (0..t * heads * dh)
                .map(|i| ((i * 5) % 11) as f32 / 5.0 - 1.0)
                .collect();
            let mut out = vec![1f32; heads * t * n];
            let blocked = HeadBlocked::from_rows(&a, heads, dh, n);
            head_products(&mut out, &blocked, &b, t, 0.5, true);
            for h in 0..heads {
                for ti in 0..t {
                    for i in 0..n {
                        let want: f32 = (0..dh)
                            .map(|d| b[ti * heads * dh + h * dh + d] * a[(h * dh + d) * n + i])
                            .sum();
                        let got = out[(h * t + ti) * n + i];
                        assert!((got - (1.0 + 0.5 * want)).abs() < 1e-5);
                    }
                }
            }
            let mut fresh = vec![9f32; heads * t * n];
            head_products(&mut fresh, &blocked, &b, t, 0.5, false);
            for (f, o) in fresh.iter().zip(&out) {
                assert!((f + 1.0 - o).abs() < 1e-5);
            }
        });
    }

    #[test]
    fn scaled_head_products_match_their_definition() {
        on_each_vector_unit(|_| {
            let (heads, dh, t, n) = (2, 4, 3, 70); // n not a multiple of the block, t odd
            let rows = |seed: usize| -> Vec<f32> {
                (0..heads * dh * n)
                    .map(|i| ((i * 7 + seed) % 13) as f32 / 6.0 - 1.0)
                    .collect()
            };
            let (a, b) = (rows(0), rows(5));
            let q = |seed: usize| -> Vec<f32> {
                (0..t * heads * dh)
                    .map(|i| ((i * 5 + seed) % 11) as f32 / 5.0 - 1.0)
                    .collect()
            };
            let (qa, qb) = (q(0), q(3));
            let s: Vec<f32> = (0..n).map(|i| 0.5 + (i % 7) as f32 / 4.0).collect();
            let start: Vec<f32> = (0..heads * t * n)
                .map(|i| (i % 9) as f32 / 3.0 - 1.0)
                .collect();
            for of in [ScaleOf::Sum, ScaleOf::Product] {
                let mut out = start.clone();
                let (ab, bb) = (
                    HeadBlocked::from_rows(&a, heads, dh, n),
                    HeadBlocked::from_rows(&b, heads, dh, n),
                );
                head_products_scaled(&mut out, (&ab, &qa, 0.5), (&bb, &qb, -2.0), &s, of, t);
                for h in 0..heads {
                    for ti in 0..t {
                        for i in 0..n {
                            let dot = |m: &[f32], q: &[f32]| -> f32 {
                                (0..dh)
                                    .map(|d| {
                                        q[ti * heads * dh + h * dh + d] * m[(h * dh + d) * n + i]
                                    })
                                    .sum()
                            };
                            let (pa, pb) = (0.5 * dot(&a, &qa), -2.0 * dot(&b, &qb));
                            let o = start[(h * t + ti) * n + i];
                            let want = match of {
                                ScaleOf::Sum => s[i] * (o + pa) + pb,
                                ScaleOf::Product => o + s[i] * pa + pb,
                            };
                            let got = out[(h * t + ti) * n + i];
                            assert!(
                                (got - want).abs() < 1e-4,
                                "{of:?} {h} {ti} {i}: {got} vs {want}"
                            );
                        }
                    }
                }
            }
        });
    }

    #[test]
    fn head_attention_matches_its_definition() {
        on_each_vector_unit(|_| {
            for t in [1, 2, 3, 4, 7] {
                let (heads, n) = (3, 37);
                let inner = heads * HEAD_DIM;
                let p: Vec<f32> = (0..heads * t * n)
                    .map(|i| ((i * 7) % 13) as f32 / 13.0)
                    .collect();
                let v: Vec<f32> = (0..n * inner)
                    .map(|i| ((i * 5) % 11) as f32 / 5.0 - 1.0)
                    .collect();
                let mut o = vec![9f32; t * inner];
                head_attention(&mut o, &p, &HeadValues::from_token_major(&v, n, heads), t);
                for h in 0..heads {
                    for ti in 0..t {
                        for d in 0..HEAD_DIM {
                            let want: f32 = (0..n)
                                .map(|i| p[(h * t + ti) * n + i] * v[i * inner + h * HEAD_DIM + d])
                                .sum();
                            let got = o[ti * inner + h * HEAD_DIM + d];
                            assert!(
                                (got - want).abs() < 1e-4,
                                "t {t} h {h} {ti} {d}: {got} vs {want}"
                            );
                        }
                    }
                }
            }
        });
    }

    #[test]
    fn column_softmax_and_dots_match_their_definitions() {
        on_each_vector_unit(|_| {
            let (g, t, n) = (2, 7, 45);
            let x: Vec<f32> = (0..g * t * n)
                .map(|i| ((i * 31) % 97) as f32 / 8.0 - 6.0)
                .collect();
            let mut y = x.clone();
            let mut work = vec![0f32; 2 * n];
            softmax_columns(&mut y, t, n, &mut work);
            for gi in 0..g {
                for i in 0..n {
                    let col: Vec<f64> = (0..t).map(|r| x[(gi * t + r) * n + i] as f64).collect();
                    let m = col.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let z: f64 = col.iter().map(|v| (v - m).exp()).sum();
                    for (r, v) in col.iter().enumerate() {
                        let want = (v - m).exp() / z;
                        assert!((y[(gi * t + r) * n + i] as f64 - want).abs() < 1e-6);
                    }
                }
            }
            let base: Vec<f32> = (0..n).map(|i| i as f32).collect();
            let mut out = vec![0f32; n];
            column_dots(&mut out, &base, &x[..t * n], &y[..t * n]);
            for i in 0..n {
                let want: f32 = base[i] + (0..t).map(|r| x[r * n + i] * y[r * n + i]).sum::<f32>();
                assert!((out[i] - want).abs() < 1e-4);
            }
        });
    }

    #[test]
    fn fused_rows_match_their_parts() {
        on_each_vector_unit(|_| {
            let c = 8;
            let x: Vec<f32> = (0..5 * c)
                .map(|i| ((i * 13) % 17) as f32 / 4.0 - 2.0)
                .collect();
            let bias: Vec<f32> = (0..c).map(|i| i as f32 / 10.0).collect();
            let g: Vec<f32> = (0..c).map(|i| 1.0 + i as f32 / 20.0).collect();
            let b: Vec<f32> = (0..c).map(|i| -(i as f32) / 30.0).collect();
            let mut fused = x.clone();
            bias_norm_gelu_rows(&mut fused, &bias, &g, &b, 1e-6);
            let mut parts: Vec<f32> = x.iter().enumerate().map(|(i, v)| v + bias[i % c]).collect();
            layer_norm_rows(&mut parts, &g, &b, 1e-6);
            gelu_in_place(&mut parts);
            for (a, b) in fused.iter().zip(&parts) {
                assert!((a - b).abs() < 1e-6);
            }
            let mut xs = x.clone();
            bias_gelu_rows(&mut xs, &bias);
            for (i, (a, v)) in xs.iter().zip(&x).enumerate() {
                assert!((a - gelu::<false>(v + bias[i % c])).abs() < 1e-6);
            }
        });
    }

    #[test]
    fn every_vector_unit_copy_gives_the_same_values() {
        // The AVX-512 and AVX2 copies are the same code with fused multiply-adds, only wider:
        // bit for bit equal. The baseline copy rounds differently (no FMA): close.
        let data = |n: usize, k: usize| -> Vec<f32> {
            (0..n).map(|i| ((i * k) % 97) as f32 / 12.0 - 4.0).collect()
        };
        let (c, rows, h, w) = (40usize, 37usize, 5usize, 7usize);
        let (x, bias, g, b) = (data(rows * c, 7), data(c, 3), data(c, 5), data(c, 11));
        let img = data(h * w * c, 13);
        let taps = data(9 * c, 17);
        let (heads, dh, t, n) = (2, 4, 7, 75);
        let ha = HeadBlocked::from_rows(&data(heads * dh * n, 19), heads, dh, n);
        let hb = HeadBlocked::from_rows(&data(heads * dh * n, 23), heads, dh, n);
        let q = data(t * heads * dh, 29);
        let s = data(n, 31);
        let vals = HeadValues::from_token_major(&data(n * heads * HEAD_DIM, 37), n, heads);
        let run = || -> Vec<Vec<f32>> {
            let mut outs = Vec::new();
            let mut v = x.clone();
            exp_in_place(&mut v);
            outs.push(v);
            let mut v = x.clone();
            gelu_in_place(&mut v);
            outs.push(v);
            let mut v = x.clone();
            softmax_rows(&mut v, c);
            outs.push(v);
            let mut v = x.clone();
            layer_norm_rows(&mut v, &g, &b, 1e-6);
            outs.push(v);
            let mut v = x.clone();
            bias_norm_gelu_rows(&mut v, &bias, &g, &b, 1e-6);
            outs.push(v);
            let mut v = x.clone();
            bias_gelu_rows(&mut v, &bias);
            outs.push(v);
            for stride in [1, 2] {
                for oy in 0..h.div_ceil(stride) {
                    let mut v = vec![0f32; w.div_ceil(stride) * c];
                    depthwise3_row(&mut v, &img, &taps, &bias, h, w, stride, oy);
                    outs.push(v);
                }
            }
            let mut v = vec![0.5f32; heads * t * n];
            head_products(&mut v, &ha, &q, t, 0.25, true);
            outs.push(v);
            for of in [ScaleOf::Sum, ScaleOf::Product] {
                let mut v = vec![0.5f32; heads * t * n];
                head_products_scaled(&mut v, (&ha, &q, 0.5), (&hb, &q, 2.0), &s, of, t);
                outs.push(v);
            }
            let mut p = data(heads * t * n, 41);
            softmax_columns(&mut p, t, n, &mut vec![0f32; 2 * n]);
            outs.push(p.clone());
            let mut v = vec![0f32; t * heads * HEAD_DIM];
            head_attention(&mut v, &p, &vals, t);
            outs.push(v);
            let mut v = vec![0f32; n];
            column_dots(&mut v, &s, &data(3 * n, 43), &data(3 * n, 47));
            outs.push(v);
            outs
        };
        let mut by_units = Vec::new();
        on_each_vector_unit(|units| by_units.push((units, run())));
        let (_, baseline) = &by_units[0];
        for (units, got) in &by_units {
            for (k, (a, z)) in got.iter().zip(baseline).enumerate() {
                for (u, v) in a.iter().zip(z) {
                    assert!(
                        (u - v).abs() <= 1e-5 * (1.0 + v.abs()),
                        "{units:?}, kernel output {k}: {u} vs baseline {v}"
                    );
                }
            }
        }
        if let [.., (_, avx2), (VectorUnits::Avx512, avx512)] = &by_units[..] {
            assert_eq!(avx2, avx512, "the AVX-512 copy rounds like the AVX2 copy");
        }
        eprintln!(
            "vector units compared: {:?}",
            by_units.iter().map(|u| u.0).collect::<Vec<_>>()
        );
    }

    #[test]
    fn row_dots_match_their_definition() {
        // Odd row counts (every block shape), k below, at and across the lanes and the passes.
        on_each_vector_unit(|units| {
            for (m, n, k) in [(1, 1, 1), (3, 5, 7), (5, 7, 16), (2, 9, 33), (7, 13, 1100)] {
                let a: Vec<f32> = (0..m * k)
                    .map(|i| ((i * 7) % 23) as f32 / 11.0 - 1.0)
                    .collect();
                let b: Vec<f32> = (0..n * k)
                    .map(|i| ((i * 5) % 19) as f32 / 9.0 - 1.0)
                    .collect();
                let mut out = vec![f32::NAN; m * n];
                row_dots(&mut out, &a, &b, k);
                for i in 0..m {
                    for j in 0..n {
                        let want: f64 = (0..k)
                            .map(|l| a[i * k + l] as f64 * b[j * k + l] as f64)
                            .sum();
                        let got = out[i * n + j] as f64;
                        assert!(
                            (got - want).abs() < 1e-5 * (1.0 + want.abs()),
                            "{units:?} {m}x{n}x{k} [{i}][{j}]: {got} vs {want}"
                        );
                    }
                }
            }
        });
    }
}
