//! Mapping low-resolution mask logits back to an image's own frame.
//!
//! Upstream (`Sam.postprocess_masks`) resizes the `256 × 256` logits bilinearly to `1024 × 1024`,
//! crops the part that covers the resized image, and resizes that bilinearly to the original size
//! (PyTorch `F.interpolate`, `align_corners=False`). Both steps are linear and separable, so each
//! output row and column is a fixed combination of at most four low-resolution rows/columns; this
//! module precomputes those taps once per image size and applies them per mask.

/// Taps of one output coordinate: `(source index, weight)`.
type Taps = Vec<(u32, f32)>;

/// PyTorch's bilinear (`align_corners=False`) taps for resizing `input` samples to `output`.
fn bilinear_taps(input: usize, output: usize) -> Vec<Taps> {
    let scale = input as f32 / output as f32;
    (0..output)
        .map(|o| {
            let src = ((o as f32 + 0.5) * scale - 0.5).max(0.0);
            let i0 = (src as usize).min(input - 1);
            let i1 = if i0 + 1 < input { i0 + 1 } else { i0 };
            let l1 = src - i0 as f32;
            let l0 = 1.0 - l1;
            if i1 == i0 {
                vec![(i0 as u32, 1.0)]
            } else {
                vec![(i0 as u32, l0), (i1 as u32, l1)]
            }
        })
        .collect()
}

/// `low → padded (model input side) → crop to valid → original`, composed.
fn composed_taps(low: usize, padded: usize, valid: usize, original: usize) -> Vec<Taps> {
    let first = bilinear_taps(low, padded);
    let second = bilinear_taps(valid, original);
    second
        .iter()
        .map(|t2| {
            let mut acc: Taps = Vec::with_capacity(4);
            for &(a, w2) in t2 {
                for &(b, w1) in &first[a as usize] {
                    match acc.iter_mut().find(|(i, _)| *i == b) {
                        Some(e) => e.1 += w1 * w2,
                        None => acc.push((b, w1 * w2)),
                    }
                }
            }
            acc
        })
        .collect()
}

/// Precomputed mapping from `low × low` logits to an `height × width` image frame.
#[derive(Debug, Clone)]
pub struct MaskResizer {
    low: usize,
    rows: Vec<Taps>,
    cols: Vec<Taps>,
    /// Blocks of output columns: `(x0, x1, c0, c1)`, columns `x0..x1` read `c0..=c1`.
    col_blocks: Vec<(usize, usize, usize, usize)>,
    width: usize,
    height: usize,
}

impl MaskResizer {
    /// For an image of `width × height` whose longest side was resized to `input` (1024),
    /// giving `input_w × input_h`, with the decoder's output side `low` (256).
    pub fn new(width: usize, height: usize, input: usize, low: usize) -> Self {
        let (input_w, input_h) = resized_size(width, height, input);
        let cols = composed_taps(low, input, input_w, width);
        let col_blocks = (0..width)
            .step_by(COLUMN_BLOCK)
            .map(|x0| {
                let x1 = (x0 + COLUMN_BLOCK).min(width);
                let taps = || cols[x0..x1].iter().flatten().map(|&(b, _)| b as usize);
                (x0, x1, taps().min().unwrap_or(0), taps().max().unwrap_or(0))
            })
            .collect();
        MaskResizer {
            low,
            rows: composed_taps(low, input, input_h, height),
            cols,
            col_blocks,
            width,
            height,
        }
    }

    pub fn width(&self) -> usize {
        self.width
    }
    pub fn height(&self) -> usize {
        self.height
    }

    /// How many leading rows and columns of the `low × low` logits [`MaskResizer::resize_into`]
    /// reads: the part covering the resized image, plus the bilinear support at its edge (the
    /// padding beyond is never read).
    pub fn low_res_extent(&self) -> (usize, usize) {
        let used = |taps: &[Taps]| {
            taps.iter()
                .flat_map(|t| t.iter().map(|&(i, _)| i as usize + 1))
                .max()
                .unwrap_or(0)
        };
        (used(&self.rows), used(&self.cols))
    }

    /// Resizes one `low × low` logit map into `out` (`height × width`, row-major).
    pub fn resize_into(&self, logits: &[f32], out: &mut [f32]) {
        let low = self.low;
        let mut row = vec![0f32; low];
        for (y, rt) in self.rows.iter().enumerate() {
            row.iter_mut().for_each(|v| *v = 0.0);
            for &(a, w) in rt {
                let src = &logits[a as usize * low..(a as usize + 1) * low];
                for (r, s) in row.iter_mut().zip(src) {
                    *r += w * s;
                }
            }
            let dst = &mut out[y * self.width..(y + 1) * self.width];
            for (d, ct) in dst.iter_mut().zip(&self.cols) {
                *d = ct.iter().map(|&(b, w)| w * row[b as usize]).sum();
            }
        }
    }

    /// Resizes one logit map into a new buffer.
    pub fn resize(&self, logits: &[f32]) -> Vec<f32> {
        let mut out = vec![0f32; self.width * self.height];
        self.resize_into(logits, &mut out);
        out
    }

    /// Visits the resized map of `logits` as spans of output rows, without computing the values
    /// that the thresholds cannot tell apart: each output value is a convex combination of the
    /// low-resolution values under its taps, so where the minimum and maximum of those (with a
    /// margin far above rounding) lie on the same side of every threshold, the whole span is
    /// [`Span::Uniform`]. Elsewhere the values are computed exactly as [`MaskResizer::resize_into`]
    /// computes them ([`Span::Exact`]). So every threshold test on the spans gives what it gives
    /// on the resized map, bit for bit, while most pixels of a small object's mask (background)
    /// or of a large one (interior) cost nothing. NaN logits always take the exact path.
    pub fn for_each_span(
        &self,
        logits: &[f32],
        thresholds: &[f32],
        mut emit: impl FnMut(usize, usize, Span<'_>),
    ) {
        let low = self.low;
        let (used_rows, used_cols) = self.low_res_extent();
        let (row_min, row_max): (Vec<f32>, Vec<f32>) = (0..used_rows)
            .map(|a| bounds(&logits[a * low..a * low + used_cols]))
            .unzip();
        let mut row = vec![0f32; low];
        let mut exact = [0f32; COLUMN_BLOCK];
        for (y, rt) in self.rows.iter().enumerate() {
            let (mn, mx) =
                rt.iter()
                    .fold((f32::INFINITY, f32::NEG_INFINITY), |(mn, mx), &(a, _)| {
                        (
                            nan_min(mn, row_min[a as usize]),
                            nan_max(mx, row_max[a as usize]),
                        )
                    });
            if let Some(above) = classify(mn, mx, thresholds) {
                emit(
                    y,
                    0,
                    Span::Uniform {
                        above,
                        len: self.width,
                    },
                );
                continue;
            }
            row.iter_mut().for_each(|v| *v = 0.0);
            for &(a, w) in rt {
                let src = &logits[a as usize * low..(a as usize + 1) * low];
                for (r, s) in row.iter_mut().zip(src) {
                    *r += w * s;
                }
            }
            for &(x0, x1, c0, c1) in &self.col_blocks {
                let (mn, mx) = bounds(&row[c0..=c1]);
                if let Some(above) = classify(mn, mx, thresholds) {
                    emit(
                        y,
                        x0,
                        Span::Uniform {
                            above,
                            len: x1 - x0,
                        },
                    );
                    continue;
                }
                let vals = &mut exact[..x1 - x0];
                for (d, ct) in vals.iter_mut().zip(&self.cols[x0..x1]) {
                    *d = ct.iter().map(|&(b, w)| w * row[b as usize]).sum();
                }
                emit(y, x0, Span::Exact(vals));
            }
        }
    }

    /// How many values of the resized map are above each threshold (`v > t`), as
    /// `resize(logits).iter().filter(|v| v > t).count()` would say (the tests' reference for
    /// [`MaskResizer::count_and_mask`]).
    #[cfg(test)]
    pub fn count_above<const N: usize>(&self, logits: &[f32], thresholds: [f32; N]) -> [usize; N] {
        let mut counts = [0usize; N];
        self.for_each_span(logits, &thresholds, |_, _, span| match span {
            Span::Uniform { above, len } => {
                for (i, c) in counts.iter_mut().enumerate() {
                    if above & (1 << i) != 0 {
                        *c += len;
                    }
                }
            }
            Span::Exact(vals) => {
                for (c, &t) in counts.iter_mut().zip(&thresholds) {
                    *c += vals.iter().filter(|&&v| v > t).count();
                }
            }
        });
        counts
    }

    /// The resized map thresholded at `threshold` (`v > threshold`), row-major `height × width`.
    #[cfg(test)]
    pub fn mask_above(&self, logits: &[f32], threshold: f32) -> Vec<bool> {
        let mut out = vec![false; self.width * self.height];
        self.for_each_span(logits, &[threshold], |y, x0, span| {
            let at = y * self.width + x0;
            match span {
                Span::Uniform { above, len } => out[at..at + len].fill(above & 1 != 0),
                Span::Exact(vals) => {
                    for (o, &v) in out[at..at + vals.len()].iter_mut().zip(vals) {
                        *o = v > threshold;
                    }
                }
            }
        });
        out
    }
}

impl MaskResizer {
    /// [`MaskResizer::count_above`] for `thresholds` and the runs of the mask at
    /// `mask_threshold` (`v > mask_threshold`), from one visit of the spans: the automatic
    /// generator's stability counts and, for the masks that pass, the mask and its box without
    /// computing the resized values a second time.
    pub fn count_and_mask<const N: usize>(
        &self,
        logits: &[f32],
        thresholds: [f32; N],
        mask_threshold: f32,
    ) -> ([usize; N], MaskRuns) {
        let mut all = [0f32; 32];
        assert!(N < 32, "at most 31 thresholds");
        all[..N].copy_from_slice(&thresholds);
        all[N] = mask_threshold;
        let mut counts = [0usize; N];
        let mut runs = MaskRuns {
            width: self.width,
            height: self.height,
            runs: Vec::new(),
        };
        self.for_each_span(logits, &all[..=N], |y, x0, span| match span {
            Span::Uniform { above, len } => {
                for (i, c) in counts.iter_mut().enumerate() {
                    if above & (1 << i) != 0 {
                        *c += len;
                    }
                }
                if above & (1 << N) != 0 {
                    runs.push(y, x0, len);
                }
            }
            Span::Exact(vals) => {
                for (c, &t) in counts.iter_mut().zip(&thresholds) {
                    *c += vals.iter().filter(|&&v| v > t).count();
                }
                let mut start = None;
                for (i, &v) in vals.iter().enumerate() {
                    match (v > mask_threshold, start) {
                        (true, None) => start = Some(i),
                        (false, Some(s)) => {
                            runs.push(y, x0 + s, i - s);
                            start = None;
                        }
                        _ => {}
                    }
                }
                if let Some(s) = start {
                    runs.push(y, x0 + s, vals.len() - s);
                }
            }
        });
        (counts, runs)
    }
}

/// A thresholded mask as runs of set pixels along its rows (row-major order), from
/// [`MaskResizer::count_and_mask`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskRuns {
    width: usize,
    height: usize,
    /// `(row, first column, length)`, touching runs merged.
    runs: Vec<(usize, usize, usize)>,
}

impl MaskRuns {
    fn push(&mut self, y: usize, x0: usize, len: usize) {
        if let Some(last) = self.runs.last_mut() {
            if last.0 == y && last.1 + last.2 == x0 {
                last.2 += len;
                return;
            }
        }
        self.runs.push((y, x0, len));
    }

    /// The mask, row-major `height × width`.
    pub fn to_mask(&self) -> Vec<bool> {
        let mut out = vec![false; self.width * self.height];
        for &(y, x0, len) in &self.runs {
            let at = y * self.width + x0;
            out[at..at + len].fill(true);
        }
        out
    }

    /// The box of the set pixels (end-exclusive, as every [`mica_core::BBox`]), `None` for an
    /// empty mask.
    pub fn bbox(&self) -> Option<mica_core::BBox> {
        let first = self.runs.first()?;
        let last = self.runs.last()?;
        let x0 = self.runs.iter().map(|r| r.1).min()?;
        let x1 = self.runs.iter().map(|r| r.1 + r.2).max()?;
        Some(mica_core::BBox {
            x0: x0 as u32,
            y0: first.0 as u32,
            x1: x1 as u32,
            y1: last.0 as u32 + 1,
        })
    }
}

/// Output columns visited together by [`MaskResizer::for_each_span`].
const COLUMN_BLOCK: usize = 32;

/// A run of consecutive values of one output row, see [`MaskResizer::for_each_span`].
#[derive(Debug)]
pub enum Span<'a> {
    /// `len` values, all above threshold `i` where bit `i` of `above` is set, all at or below
    /// the others.
    Uniform { above: u32, len: usize },
    /// The values themselves.
    Exact(&'a [f32]),
}

/// Minimum and maximum; NaN if any value is NaN. (Eight lanes of compare-and-select, which the
/// compiler turns into vector min/max.)
fn bounds(v: &[f32]) -> (f32, f32) {
    let mut mn = [f32::INFINITY; 8];
    let mut mx = [f32::NEG_INFINITY; 8];
    let mut nan = [false; 8];
    let chunks = v.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..8 {
            mn[i] = if c[i] < mn[i] { c[i] } else { mn[i] };
            mx[i] = if c[i] > mx[i] { c[i] } else { mx[i] };
            nan[i] |= c[i].is_nan();
        }
    }
    let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
    for i in 0..8 {
        lo = lo.min(mn[i]);
        hi = hi.max(mx[i]);
    }
    for &x in rest {
        lo = nan_min(lo, x);
        hi = nan_max(hi, x);
    }
    if nan.iter().any(|&n| n) {
        return (f32::NAN, f32::NAN);
    }
    (lo, hi)
}

fn nan_min(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        f32::NAN
    } else {
        a.min(b)
    }
}

fn nan_max(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        f32::NAN
    } else {
        a.max(b)
    }
}

/// For values known to lie in `[mn, mx]` up to rounding: the bit set of thresholds they are all
/// above, or `None` when some threshold may split them (or a bound is NaN). The margin, 1e-5 of
/// the magnitude, is ~40 times the worst rounding of a four-tap, two-stage bilinear sum.
fn classify(mn: f32, mx: f32, thresholds: &[f32]) -> Option<u32> {
    let margin = 1e-5 * (1.0 + mn.abs().max(mx.abs()));
    let (lo, hi) = (mn - margin, mx + margin);
    let mut above = 0;
    for (i, &t) in thresholds.iter().enumerate() {
        if lo > t {
            above |= 1 << i;
        } else if hi > t || hi.is_nan() || t.is_nan() {
            return None;
        }
    }
    Some(above)
}

/// Upstream `ResizeLongestSide.get_preprocess_shape`: the `(width, height)` of an image whose
/// longest side is scaled to `target` (rounded half up).
pub fn resized_size(width: usize, height: usize, target: usize) -> (usize, usize) {
    let scale = target as f64 / width.max(height) as f64;
    let w = (width as f64 * scale + 0.5) as usize;
    let h = (height as f64 * scale + 0.5) as usize;
    (w.max(1), h.max(1))
}

/// Bits of PIL's fixed-point resampling coefficients for 8-bit images.
const PIL_PRECISION_BITS: u32 = 32 - 8 - 2;

/// PIL's `precompute_coeffs` for its bilinear (triangle) filter: per output sample the first
/// source index, the number of taps, and the normalised fixed-point weights.
fn pil_bilinear_coeffs(in_size: usize, out_size: usize) -> (Vec<(usize, usize)>, Vec<i32>, usize) {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filterscale; // the triangle filter's support is 1
    let ksize = support.ceil() as usize * 2 + 1;
    let mut bounds = Vec::with_capacity(out_size);
    let mut kk = vec![0i32; out_size * ksize];
    let mut w = vec![0f64; ksize];
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        let ss = 1.0 / filterscale;
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize - xmin;
        let mut ww = 0.0;
        for (x, wx) in w.iter_mut().enumerate().take(xmax) {
            let t = ((x + xmin) as f64 - center + 0.5) * ss;
            *wx = (1.0 - t.abs()).max(0.0);
            ww += *wx;
        }
        for x in 0..ksize {
            let v = if x < xmax && ww != 0.0 {
                w[x] / ww
            } else {
                0.0
            };
            let f = v * (1u64 << PIL_PRECISION_BITS) as f64;
            kk[xx * ksize + x] = if v < 0.0 {
                (-0.5 + f) as i32
            } else {
                (0.5 + f) as i32
            };
        }
        bounds.push((xmin, xmax));
    }
    (bounds, kk, ksize)
}

#[inline]
fn pil_clip8(v: i32) -> u8 {
    if v >= (1 << PIL_PRECISION_BITS << 8) {
        255
    } else if v <= 0 {
        0
    } else {
        (v >> PIL_PRECISION_BITS) as u8
    }
}

/// Resizes an interleaved 8-bit image of `channels` samples per pixel as PIL's
/// `Image.resize(..., BILINEAR)` does (what upstream SAM uses through torchvision): a triangle
/// filter widened when shrinking (antialiasing), fixed-point weights, horizontal pass first into
/// an 8-bit intermediate, then vertical. Results are bit-identical to PIL.
pub fn resize_like_pil_bilinear(
    src: &[u8],
    width: usize,
    height: usize,
    channels: usize,
    new_width: usize,
    new_height: usize,
) -> Vec<u8> {
    let half = 1i32 << (PIL_PRECISION_BITS - 1);
    let (hb, hk, hks) = pil_bilinear_coeffs(width, new_width);
    let (vb, vk, vks) = pil_bilinear_coeffs(height, new_height);
    // Only the source rows the vertical pass reads.
    let y_first = vb.first().map(|b| b.0).unwrap_or(0);
    let y_last = vb.last().map(|b| b.0 + b.1).unwrap_or(0);
    let horizontal = if new_width != width {
        let rows = y_last - y_first;
        let mut tmp = vec![0u8; rows * new_width * channels];
        for r in 0..rows {
            let srow = &src[(r + y_first) * width * channels..(r + y_first + 1) * width * channels];
            for (xx, &(xmin, xmax)) in hb.iter().enumerate() {
                let k = &hk[xx * hks..xx * hks + xmax];
                for c in 0..channels {
                    let mut ss = half;
                    for (x, &kx) in k.iter().enumerate() {
                        ss += srow[(x + xmin) * channels + c] as i32 * kx;
                    }
                    tmp[(r * new_width + xx) * channels + c] = pil_clip8(ss);
                }
            }
        }
        Some(tmp)
    } else {
        None
    };
    let (img, offset) = match &horizontal {
        Some(t) => (t.as_slice(), y_first),
        None => (src, 0),
    };
    if new_height == height {
        return match horizontal {
            Some(t) if y_first == 0 => t,
            _ => img.to_vec(),
        };
    }
    let row_len = new_width * channels;
    let mut out = vec![0u8; new_height * row_len];
    for (yy, &(ymin, ymax)) in vb.iter().enumerate() {
        let k = &vk[yy * vks..yy * vks + ymax];
        for i in 0..row_len {
            let mut ss = half;
            for (y, &ky) in k.iter().enumerate() {
                ss += img[(y + ymin - offset) * row_len + i] as i32 * ky;
            }
            out[yy * row_len + i] = pil_clip8(ss);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The two-step reference: bilinear to padded, crop, bilinear to original.
    fn two_step(logits: &[f32], low: usize, w: usize, h: usize, input: usize) -> Vec<f32> {
        let (iw, ih) = resized_size(w, h, input);
        let t1 = bilinear_taps(low, input);
        let mut big = vec![0f32; input * input];
        for y in 0..input {
            for x in 0..input {
                let mut s = 0.0;
                for &(a, wa) in &t1[y] {
                    for &(b, wb) in &t1[x] {
                        s += wa * wb * logits[a as usize * low + b as usize];
                    }
                }
                big[y * input + x] = s;
            }
        }
        let (ty, tx) = (bilinear_taps(ih, h), bilinear_taps(iw, w));
        let mut out = vec![0f32; w * h];
        for y in 0..h {
            for x in 0..w {
                let mut s = 0.0;
                for &(a, wa) in &ty[y] {
                    for &(b, wb) in &tx[x] {
                        s += wa * wb * big[a as usize * input + b as usize];
                    }
                }
                out[y * w + x] = s;
            }
        }
        out
    }

    #[test]
    fn composed_equals_two_steps() {
        let low = 16;
        let logits: Vec<f32> = (0..low * low)
            .map(|i| ((i * 37) % 23) as f32 - 11.0)
            .collect();
        for (w, h) in [(29, 17), (64, 64), (10, 40)] {
            let r = MaskResizer::new(w, h, 64, low);
            let fast = r.resize(&logits);
            let slow = two_step(&logits, low, w, h, 64);
            for (a, b) in fast.iter().zip(&slow) {
                assert!((a - b).abs() < 1e-3, "{w}x{h}: {a} vs {b}");
            }
        }
    }

    /// Smooth blob-shaped logits (mostly far from the thresholds, as real masks are), with
    /// values placed exactly at and next to the thresholds and a NaN.
    fn blob_logits(low: usize, seed: u64, nan: bool) -> Vec<f32> {
        let mut r = seed;
        let mut next = || {
            r = r
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (r >> 33) as f32 / (1u64 << 31) as f32
        };
        let (cx, cy, rad) = (
            next() * low as f32,
            next() * low as f32,
            2.0 + next() * low as f32 / 3.0,
        );
        let mut v: Vec<f32> = (0..low * low)
            .map(|i| {
                let (x, y) = ((i % low) as f32, (i / low) as f32);
                let d = ((x - cx).powi(2) + (y - cy).powi(2)).sqrt();
                (rad - d) * 3.0 + (next() - 0.5) * 0.2
            })
            .collect();
        for (k, t) in [-1.0f32, 0.0, 1.0].into_iter().enumerate() {
            for (j, d) in [0.0f32, 1e-7, -1e-7, 1e-6].into_iter().enumerate() {
                let i = (k * 97 + j * 31 + seed as usize * 13) % v.len();
                v[i] = t + d;
            }
        }
        if nan {
            v[(seed as usize * 7919) % (low * low)] = f32::NAN;
        }
        v
    }

    #[test]
    fn spans_threshold_exactly_like_the_resized_map() {
        let low = 32;
        let thresholds = [-1.0f32, 0.0, 1.0];
        let mut skipped = 0usize;
        let mut total = 0usize;
        for (w, h) in [(29, 17), (128, 128), (40, 160), (300, 97), (1, 1)] {
            let r = MaskResizer::new(w, h, 128, low);
            for seed in 0..12u64 {
                let logits = blob_logits(low, seed, seed % 4 == 3);
                let full = r.resize(&logits);
                let want = thresholds.map(|t| full.iter().filter(|&&v| v > t).count());
                assert_eq!(
                    r.count_above(&logits, thresholds),
                    want,
                    "{w}x{h} seed {seed}"
                );
                for t in thresholds {
                    let mask = r.mask_above(&logits, t);
                    let exact: Vec<bool> = full.iter().map(|&v| v > t).collect();
                    assert_eq!(mask, exact, "{w}x{h} seed {seed} threshold {t}");
                }
                r.for_each_span(&logits, &thresholds, |_, _, s| {
                    if let Span::Uniform { len, .. } = s {
                        skipped += len;
                    }
                });
                total += w * h;
            }
        }
        // The point of the spans: most values of blob masks are never computed.
        assert!(skipped * 2 > total, "{skipped} of {total} skipped");
    }

    #[test]
    fn counts_and_mask_in_one_visit_equal_the_separate_ones() {
        let low = 32;
        for (w, h) in [(29, 17), (128, 128), (40, 160), (300, 97), (1, 1)] {
            let r = MaskResizer::new(w, h, 128, low);
            for seed in 0..12u64 {
                let logits = blob_logits(low, seed, seed % 4 == 3);
                for t in [-1.0f32, 0.0, 1.0] {
                    let (counts, runs) = r.count_and_mask(&logits, [1.0, -1.0], t);
                    assert_eq!(
                        counts,
                        r.count_above(&logits, [1.0, -1.0]),
                        "{w}x{h} {seed}"
                    );
                    let mask = r.mask_above(&logits, t);
                    assert_eq!(runs.to_mask(), mask, "{w}x{h} seed {seed} threshold {t}");
                    let mut want: Option<[usize; 4]> = None;
                    for (i, _) in mask.iter().enumerate().filter(|(_, &m)| m) {
                        let (x, y) = (i % w, i / w);
                        want = Some(match want {
                            None => [x, y, x, y],
                            Some([a, b, c, d]) => [a.min(x), b.min(y), c.max(x), d.max(y)],
                        });
                    }
                    let want = want.map(|[x0, y0, x1, y1]| mica_core::BBox {
                        x0: x0 as u32,
                        y0: y0 as u32,
                        x1: x1 as u32 + 1,
                        y1: y1 as u32 + 1,
                    });
                    assert_eq!(runs.bbox(), want, "{w}x{h} seed {seed} threshold {t}");
                }
            }
        }
    }

    #[test]
    fn preprocess_shape_matches_upstream() {
        assert_eq!(resized_size(696, 520, 1024), (1024, 765));
        assert_eq!(resized_size(1024, 600, 1024), (1024, 600));
        assert_eq!(resized_size(100, 300, 1024), (341, 1024));
    }

    #[test]
    fn pil_bilinear_is_bit_exact() {
        // Expected values from Pillow: Image.fromarray(src).resize(size, Image.BILINEAR).
        let src: Vec<u8> = (0..7 * 5 * 3).map(|i| (i * 37 % 251) as u8).collect();
        let up = resize_like_pil_bilinear(&src, 7, 5, 3, 11, 8);
        assert_eq!(
            &up[..24],
            &[
                0, 37, 74, 50, 87, 124, 121, 135, 172, 192, 46, 83, 171, 48, 85, 82, 119, 156, 153,
                190, 67, 155, 192, 46
            ]
        );
        assert_eq!(
            &up[up.len() - 12..],
            &[68, 105, 142, 139, 176, 213, 73, 110, 147, 9, 46, 83]
        );
        assert_eq!(up.len(), 11 * 8 * 3);
        let down = resize_like_pil_bilinear(&src, 7, 5, 3, 3, 2);
        assert_eq!(
            down,
            vec![
                104, 102, 134, 146, 103, 120, 145, 143, 106, 115, 150, 109, 114, 132, 125, 127,
                113, 125
            ]
        );
        // Same size: unchanged.
        assert_eq!(resize_like_pil_bilinear(&src, 7, 5, 3, 7, 5), src);
    }
}
