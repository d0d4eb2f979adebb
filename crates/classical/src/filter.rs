//! Smoothing, grey-level morphology and background subtraction on [`Plane`]s.

use crate::plane::Plane;
use crate::scratch;

/// Gaussian kernel radius for `sigma`: 4 σ, as scipy and scikit-image truncate.
pub(crate) fn gaussian_radius(sigma: f32) -> usize {
    (4.0 * sigma + 0.5) as usize
}

fn gaussian_kernel(sigma: f32) -> Vec<f32> {
    let r = gaussian_radius(sigma) as isize;
    let mut k: Vec<f32> = (-r..=r)
        .map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp())
        .collect();
    let s: f32 = k.iter().sum();
    k.iter_mut().for_each(|v| *v /= s);
    k
}

/// Runs `$generic` compiled for AVX-512 or AVX2, the widest the CPU has
/// ([`mica_core::cpu::vector_units`]; the same operations in the same order, wider registers:
/// results are bit-identical, no fused multiply-add), else as compiled. `$avx2` names the copies.
macro_rules! with_avx2 {
    ($avx2:ident, $generic:ident, ($($arg:ident: $ty:ty),*) -> $ret:ty) => {
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2")]
            unsafe fn widest($($arg: $ty),*) -> $ret {
                $generic($($arg),*)
            }
            #[target_feature(enable = "avx2")]
            unsafe fn $avx2($($arg: $ty),*) -> $ret {
                $generic($($arg),*)
            }
            match mica_core::cpu::vector_units() {
                // SAFETY: the CPU supports these features (detected by `vector_units`).
                mica_core::cpu::VectorUnits::Avx512 => return unsafe { widest($($arg),*) },
                // SAFETY: the CPU supports AVX2 (detected by `vector_units`).
                mica_core::cpu::VectorUnits::Avx2Fma => return unsafe { $avx2($($arg),*) },
                mica_core::cpu::VectorUnits::Baseline => {}
            }
        }
        return $generic($($arg),*);
    };
}

/// Convolves every row with `kernel` (odd length), borders repeat the edge value
/// (scipy's `nearest` mode).
fn convolve_rows(p: &Plane, kernel: &[f32]) -> Plane {
    with_avx2!(rows_avx2, convolve_rows_generic, (p: &Plane, kernel: &[f32]) -> Plane);
}

#[inline(always)]
fn convolve_rows_generic(p: &Plane, kernel: &[f32]) -> Plane {
    let r = kernel.len() / 2;
    let w = p.width;
    let mut out = scratch::f32s_filled(p.data.len(), 0.0);
    let mut padded = vec![0.0f32; w + 2 * r];
    for (row, dst) in p.data.chunks_exact(w).zip(out.chunks_exact_mut(w)) {
        let (first, last) = (row[0], row[w - 1]);
        padded[..r].fill(first);
        padded[r..r + w].copy_from_slice(row);
        padded[r + w..].fill(last);
        // Symmetric kernel: fold the two sides (half the multiplications).
        for (d, &s) in dst.iter_mut().zip(&padded[r..r + w]) {
            *d = kernel[r] * s;
        }
        for j in 1..=r {
            let kj = kernel[r + j];
            let (left, right) = (&padded[r - j..r - j + w], &padded[r + j..r + j + w]);
            for ((d, &a), &b) in dst.iter_mut().zip(left).zip(right) {
                *d += kj * (a + b);
            }
        }
    }
    Plane {
        width: w,
        height: p.height,
        data: out,
    }
}

/// Convolves every column with `kernel`, borders repeat the edge value.
fn convolve_cols(p: &Plane, kernel: &[f32]) -> Plane {
    with_avx2!(cols_avx2, convolve_cols_generic, (p: &Plane, kernel: &[f32]) -> Plane);
}

#[inline(always)]
fn convolve_cols_generic(p: &Plane, kernel: &[f32]) -> Plane {
    let r = kernel.len() as isize / 2;
    let (w, h) = (p.width, p.height as isize);
    let mut out = scratch::f32s_filled(p.data.len(), 0.0);
    let row = |yy: isize| {
        let sy = yy.clamp(0, h - 1) as usize;
        &p.data[sy * w..(sy + 1) * w]
    };
    for (y, dst) in out.chunks_exact_mut(w).enumerate() {
        let y = y as isize;
        for (d, &s) in dst.iter_mut().zip(row(y)) {
            *d = kernel[r as usize] * s;
        }
        // Symmetric kernel: fold the rows above and below.
        for j in 1..=r {
            let kj = kernel[(r + j) as usize];
            for ((d, &a), &b) in dst.iter_mut().zip(row(y - j)).zip(row(y + j)) {
                *d += kj * (a + b);
            }
        }
    }
    Plane {
        width: w,
        height: p.height,
        data: out,
    }
}

/// Gaussian smoothing with standard deviation `sigma_px` (kernel truncated at 4 σ, edge values
/// repeated beyond the border, as `skimage.filters.gaussian`). `sigma_px <= 0` returns a copy.
pub fn gaussian(p: &Plane, sigma_px: f32) -> Plane {
    if sigma_px <= 0.0 {
        return p.clone();
    }
    let k = gaussian_kernel(sigma_px);
    let rows = convolve_rows(p, &k);
    let out = convolve_cols(&rows, &k);
    scratch::recycle_f32s(rows.data);
    out
}

#[derive(Clone, Copy)]
enum Extremum {
    Min,
    Max,
}

/// Running min or max over windows of `2 r + 1` along every row (van Herk / Gil–Werman: three
/// comparisons per pixel whatever `r`). The window is clipped at the border.
fn running_extremum_rows(p: &Plane, r: usize, which: Extremum) -> Plane {
    match which {
        Extremum::Min => running_rows(p, r, f32::INFINITY, |a: f32, b: f32| a.min(b)),
        Extremum::Max => running_rows(p, r, f32::NEG_INFINITY, |a: f32, b: f32| a.max(b)),
    }
}

#[inline(always)]
fn running_rows(p: &Plane, r: usize, pad: f32, f: impl Fn(f32, f32) -> f32 + Copy) -> Plane {
    let w = p.width;
    let k = 2 * r + 1;
    // Padded row: r pad values on the left, enough on the right to fill whole blocks.
    let n = w + 2 * r;
    let blocks = n.div_ceil(k);
    let len = blocks * k;
    let mut buf = vec![pad; len];
    let mut g = vec![pad; len];
    let mut hbuf = vec![pad; len];
    let mut out = vec![0.0f32; p.data.len()];
    for (row, dst) in p.data.chunks_exact(w).zip(out.chunks_exact_mut(w)) {
        buf.fill(pad);
        buf[r..r + w].copy_from_slice(row);
        for b in 0..blocks {
            let s = b * k;
            g[s] = buf[s];
            for i in s + 1..s + k {
                g[i] = f(g[i - 1], buf[i]);
            }
            hbuf[s + k - 1] = buf[s + k - 1];
            for i in (s..s + k - 1).rev() {
                hbuf[i] = f(hbuf[i + 1], buf[i]);
            }
        }
        // Window of output x covers buf[x ..= x + 2r].
        for (x, d) in dst.iter_mut().enumerate() {
            *d = f(hbuf[x], g[x + k - 1]);
        }
    }
    Plane {
        width: w,
        height: p.height,
        data: out,
    }
}

/// Running min or max over windows of `2 r + 1` rows (clipped at the border), computed a whole
/// row at a time so that it vectorises (with AVX2 where the CPU has it).
fn running_extremum_cols(p: &Plane, r: usize, which: Extremum) -> Plane {
    with_avx2!(cols_extremum_avx2, running_extremum_cols_generic, (p: &Plane, r: usize, which: Extremum) -> Plane);
}

#[inline(always)]
fn running_extremum_cols_generic(p: &Plane, r: usize, which: Extremum) -> Plane {
    let (w, h) = (p.width, p.height);
    let mut out = vec![0.0f32; p.data.len()];
    for (y, dst) in out.chunks_exact_mut(w).enumerate() {
        let (y0, y1) = (y.saturating_sub(r), (y + r + 1).min(h));
        dst.copy_from_slice(&p.data[y0 * w..(y0 + 1) * w]);
        for yy in y0 + 1..y1 {
            let src = &p.data[yy * w..(yy + 1) * w];
            match which {
                Extremum::Min => dst.iter_mut().zip(src).for_each(|(d, &s)| *d = d.min(s)),
                Extremum::Max => dst.iter_mut().zip(src).for_each(|(d, &s)| *d = d.max(s)),
            }
        }
    }
    Plane {
        width: w,
        height: h,
        data: out,
    }
}

fn running_extremum(p: &Plane, r: usize, which: Extremum) -> Plane {
    if r == 0 {
        return p.clone();
    }
    running_extremum_cols(&running_extremum_rows(p, r, which), r, which)
}

/// Maximum over the (2 r + 1)² square around each pixel (clipped at the border).
pub fn max_filter(p: &Plane, radius_px: usize) -> Plane {
    running_extremum(p, radius_px, Extremum::Max)
}

/// Minimum over the (2 r + 1)² square around each pixel (clipped at the border).
pub fn min_filter(p: &Plane, radius_px: usize) -> Plane {
    running_extremum(p, radius_px, Extremum::Min)
}

/// Grey-level opening (erosion then dilation) with a (2 r + 1)² square: the background under
/// objects narrower than the square.
pub fn opening(p: &Plane, radius_px: usize) -> Plane {
    max_filter(&min_filter(p, radius_px), radius_px)
}

/// Hands the buffer of a plane that is no longer needed back for reuse on this thread.
pub(crate) fn recycle(p: Plane) {
    scratch::recycle_f32s(p.data);
}

/// `a - b`, clipped at 0.
pub fn subtract_clipped(a: &Plane, b: &Plane) -> Plane {
    Plane {
        width: a.width,
        height: a.height,
        data: a
            .data
            .iter()
            .zip(&b.data)
            .map(|(&x, &y)| (x - y).max(0.0))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plane(w: usize, h: usize, data: Vec<f32>) -> Plane {
        Plane {
            width: w,
            height: h,
            data,
        }
    }

    #[test]
    fn gaussian_keeps_constant_and_mass() {
        let p = Plane::filled(9, 7, 3.0);
        let g = gaussian(&p, 1.5);
        assert!(g.data.iter().all(|&v| (v - 3.0).abs() < 1e-5));
        let mut d = Plane::filled(21, 21, 0.0);
        d.data[10 * 21 + 10] = 1.0;
        let g = gaussian(&d, 1.0);
        let s: f32 = g.data.iter().sum();
        assert!((s - 1.0).abs() < 1e-4);
        assert!(g.data[10 * 21 + 10] > g.data[10 * 21 + 11]);
        assert!((g.data[10 * 21 + 11] - g.data[11 * 21 + 10]).abs() < 1e-7);
    }

    #[test]
    fn max_and_min_filter_match_brute_force() {
        let w = 13;
        let h = 9;
        let data: Vec<f32> = (0..w * h).map(|i| ((i * 37) % 23) as f32).collect();
        let p = plane(w, h, data.clone());
        for r in [1usize, 2, 4, 7, 12] {
            let mx = max_filter(&p, r);
            let mn = min_filter(&p, r);
            for y in 0..h {
                for x in 0..w {
                    let mut bmax = f32::NEG_INFINITY;
                    let mut bmin = f32::INFINITY;
                    for yy in y.saturating_sub(r)..(y + r + 1).min(h) {
                        for xx in x.saturating_sub(r)..(x + r + 1).min(w) {
                            bmax = bmax.max(data[yy * w + xx]);
                            bmin = bmin.min(data[yy * w + xx]);
                        }
                    }
                    assert_eq!(mx.data[y * w + x], bmax, "max r={r} at {x},{y}");
                    assert_eq!(mn.data[y * w + x], bmin, "min r={r} at {x},{y}");
                }
            }
        }
    }

    #[test]
    fn opening_removes_narrow_peaks_keeps_ramp() {
        let w = 20;
        let mut data: Vec<f32> = (0..w).map(|x| x as f32).collect();
        data[10] = 100.0;
        let p = plane(w, 1, data);
        let bg = opening(&p, 2);
        assert!(bg.data[10] < 20.0);
        assert_eq!(bg.data[3], 3.0);
    }
}
