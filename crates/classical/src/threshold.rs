//! Global thresholds (Otsu, Li, triangle) over a histogram of the data's own range, and a local
//! (adaptive) mean threshold. Works the same for 8-bit, 16-bit and float data: the histogram spans
//! `[min, max]` of the values, never a fixed 0–255.

use crate::plane::Plane;
use crate::scratch;
use mica_core::BinaryMask;

/// A histogram of `bins` equal bins over `[lo, hi]`.
#[derive(Debug, Clone)]
pub struct Histogram {
    pub lo: f32,
    pub hi: f32,
    pub counts: Vec<u64>,
}

impl Histogram {
    /// Histogram of `values` over their own range. `None` when the values are all equal (or empty):
    /// no threshold separates anything then.
    pub fn of(values: &[f32], bins: usize) -> Option<Histogram> {
        let bins = bins.max(2);
        let (lo, hi) = values
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            });
        if values.is_empty() || lo >= hi {
            return None;
        }
        let mut counts = vec![0u64; bins];
        Histogram::accumulate(values, lo, hi, &mut counts);
        Some(Histogram { lo, hi, counts })
    }

    /// Adds `values` to `counts`, equal bins over `[lo, hi]` (`lo < hi`; values outside go to
    /// the end bins). Tiles of an image added one by one give the counts of the whole image.
    pub fn accumulate(values: &[f32], lo: f32, hi: f32, counts: &mut [u64]) {
        let bins = counts.len();
        let scale = bins as f32 / (hi - lo);
        let bin = |v: f32| (((v - lo) * scale) as usize).min(bins - 1);
        // Four partial histograms: neighbouring pixels of smooth images fall in the same bin, and
        // one counter would make every increment wait for the previous one.
        let mut part = vec![0u64; 4 * bins];
        let mut chunks = values.chunks_exact(4);
        for c in &mut chunks {
            part[bin(c[0])] += 1;
            part[bins + bin(c[1])] += 1;
            part[2 * bins + bin(c[2])] += 1;
            part[3 * bins + bin(c[3])] += 1;
        }
        for &v in chunks.remainder() {
            part[bin(v)] += 1;
        }
        for (i, c) in counts.iter_mut().enumerate() {
            *c += (0..4).map(|k| part[k * bins + i]).sum::<u64>();
        }
    }

    /// Value at the centre of bin `i`.
    pub fn center(&self, i: usize) -> f32 {
        let width = (self.hi - self.lo) / self.counts.len() as f32;
        self.lo + (i as f32 + 0.5) * width
    }
}

/// Otsu's threshold: the bin centre that maximises the between-class variance (values above it
/// are foreground).
pub fn otsu(h: &Histogram) -> f32 {
    let n = h.counts.len();
    let total: f64 = h.counts.iter().map(|&c| c as f64).sum();
    let sum_all: f64 = (0..n).map(|i| i as f64 * h.counts[i] as f64).sum();
    let (mut w0, mut sum0) = (0.0f64, 0.0f64);
    let (mut best, mut best_i) = (-1.0f64, 0usize);
    for i in 0..n - 1 {
        w0 += h.counts[i] as f64;
        sum0 += i as f64 * h.counts[i] as f64;
        let w1 = total - w0;
        if w0 == 0.0 || w1 == 0.0 {
            continue;
        }
        let m0 = sum0 / w0;
        let m1 = (sum_all - sum0) / w1;
        let between = w0 * w1 * (m0 - m1) * (m0 - m1);
        if between > best {
            best = between;
            best_i = i;
        }
    }
    h.center(best_i)
}

/// Li's iterative minimum cross-entropy threshold (Li & Tam 1998), computed on the histogram,
/// starting from the mean, to a tolerance of half a bin.
pub fn li(h: &Histogram) -> f32 {
    let n = h.counts.len();
    // Work in bin units shifted to be positive (cross-entropy needs positive values).
    let x = |i: usize| i as f64 + 1.0;
    let total: f64 = h.counts.iter().map(|&c| c as f64).sum();
    let mut t: f64 = (0..n).map(|i| x(i) * h.counts[i] as f64).sum::<f64>() / total;
    for _ in 0..1000 {
        let (mut wb, mut sb, mut wf, mut sf) = (0.0, 0.0, 0.0, 0.0);
        for i in 0..n {
            let c = h.counts[i] as f64;
            if x(i) > t {
                wf += c;
                sf += c * x(i);
            } else {
                wb += c;
                sb += c * x(i);
            }
        }
        if wb == 0.0 || wf == 0.0 {
            break;
        }
        let (mb, mf) = (sb / wb, sf / wf);
        let next = (mf - mb) / (mf.ln() - mb.ln());
        if !next.is_finite() {
            break;
        }
        let done = (next - t).abs() < 0.5;
        t = next;
        if done {
            break;
        }
    }
    let width = (h.hi - h.lo) as f64 / n as f64;
    // Bin i covers [lo + i w, lo + (i+1) w) and has x = i + 1 at its centre + 0.5 w offset.
    (h.lo as f64 + (t - 0.5) * width) as f32
}

/// The median of the values at or below `level` (the background's level under a threshold), as
/// the centre of the bin that holds it.
pub fn median_below(h: &Histogram, level: f32) -> f32 {
    let below: Vec<(usize, u64)> = (0..h.counts.len())
        .filter(|&i| h.center(i) <= level)
        .map(|i| (i, h.counts[i]))
        .collect();
    let total: u64 = below.iter().map(|b| b.1).sum();
    let mut seen = 0;
    for (i, c) in below {
        seen += c;
        if 2 * seen >= total && c > 0 {
            return h.center(i);
        }
    }
    h.lo
}

/// Whether objects differ widely in brightness: the 10th percentile of their `peaks` rises above
/// `background` by less than `dim_ratio` times the 90th percentile's rise. Fewer than 5 objects
/// say nothing (false). Percentiles by linear interpolation, as numpy's default.
pub fn brightness_spreads(peaks: &mut [f32], background: f32, dim_ratio: f32) -> bool {
    if peaks.len() < 5 {
        return false;
    }
    peaks.sort_by(f32::total_cmp);
    let q = |f: f64| {
        let x = f * (peaks.len() - 1) as f64;
        let (i, t) = (x.floor() as usize, x.fract() as f32);
        let j = (i + 1).min(peaks.len() - 1);
        peaks[i] + t * (peaks[j] - peaks[i])
    };
    let (dim, bright) = (q(0.1) - background, q(0.9) - background);
    bright > 0.0 && dim < dim_ratio * bright
}

/// The triangle threshold (Zack et al. 1977): the bin farthest from the line joining the
/// histogram's peak to the far end of its longer tail.
pub fn triangle(h: &Histogram) -> f32 {
    let n = h.counts.len();
    let first = h.counts.iter().position(|&c| c > 0).unwrap_or(0);
    let last = h.counts.iter().rposition(|&c| c > 0).unwrap_or(n - 1);
    let peak = (0..n).max_by_key(|&i| (h.counts[i], n - i)).unwrap_or(0);
    // The longer tail decides the side; mirror so the tail is to the right of the peak.
    let tail_right = last - peak >= peak - first;
    let (start, end) = if tail_right {
        (peak, last)
    } else {
        (first, peak)
    };
    let (x0, y0, x1, y1) = if tail_right {
        (peak as f64, h.counts[peak] as f64, last as f64, 0.0)
    } else {
        (first as f64, 0.0, peak as f64, h.counts[peak] as f64)
    };
    let (dx, dy) = (x1 - x0, y1 - y0);
    let mut best = (-1.0f64, peak);
    for i in start..=end {
        let d = (dy * (i as f64 - x0) - dx * (h.counts[i] as f64 - y0)).abs();
        if d > best.0 {
            best = (d, i);
        }
    }
    h.center(best.1)
}

/// Foreground where `p > threshold`.
pub fn above(p: &Plane, threshold: f32) -> BinaryMask {
    BinaryMask::new(p.width as u32, p.height as u32, {
        let mut v = scratch::bools(p.data.len());
        v.extend(p.data.iter().map(|&v| v > threshold));
        v
    })
    .expect("plane size is consistent")
}

/// Local mean threshold: foreground where a pixel exceeds the mean of its
/// `block_size_px × block_size_px` neighbourhood (clipped at the border) minus `offset`.
pub fn local_mean(p: &Plane, block_size_px: usize, offset: f32) -> BinaryMask {
    let (w, h) = (p.width, p.height);
    // Integral image in f64 (sums of 16-bit data over large blocks).
    let mut ii = vec![0.0f64; (w + 1) * (h + 1)];
    for y in 0..h {
        let mut row = 0.0f64;
        for x in 0..w {
            row += p.data[y * w + x] as f64;
            ii[(y + 1) * (w + 1) + x + 1] = ii[y * (w + 1) + x + 1] + row;
        }
    }
    let r = block_size_px / 2;
    let mut data = vec![false; w * h];
    for y in 0..h {
        let (y0, y1) = (y.saturating_sub(r), (y + r + 1).min(h));
        for x in 0..w {
            let (x0, x1) = (x.saturating_sub(r), (x + r + 1).min(w));
            let s = ii[y1 * (w + 1) + x1] - ii[y0 * (w + 1) + x1] - ii[y1 * (w + 1) + x0]
                + ii[y0 * (w + 1) + x0];
            let mean = s / ((y1 - y0) * (x1 - x0)) as f64;
            data[y * w + x] = p.data[y * w + x] as f64 > mean - offset as f64;
        }
    }
    BinaryMask::new(w as u32, h as u32, data).expect("plane size is consistent")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bimodal(lo: f32, hi: f32) -> Vec<f32> {
        let mut v = vec![lo; 700];
        v.extend(std::iter::repeat_n(hi, 300));
        for (i, x) in v.iter_mut().enumerate() {
            *x += (i % 7) as f32 * (hi - lo) / 100.0;
        }
        v
    }

    #[test]
    fn thresholds_separate_two_modes_in_8_and_16_bit_ranges() {
        for (lo, hi) in [(10.0f32, 200.0f32), (1000.0, 40000.0)] {
            let v = bimodal(lo, hi);
            let h = Histogram::of(&v, 256).unwrap();
            for (name, t) in [("otsu", otsu(&h)), ("li", li(&h))] {
                let n_above = v.iter().filter(|&&x| x > t).count();
                assert_eq!(
                    n_above, 300,
                    "{name}: threshold {t} for modes {lo} and {hi}"
                );
            }
        }
    }

    #[test]
    fn brightness_spreads_only_when_the_dim_tenth_is_far_below_the_bright_tenth() {
        // Peaks above a background of 10: all within 20 % of each other.
        let mut even: Vec<f32> = (0..20).map(|i| 100.0 + i as f32).collect();
        assert!(!brightness_spreads(&mut even, 10.0, 0.5));
        // A third of the objects at a quarter of the others' rise above the background.
        let mut dim: Vec<f32> = (0..30)
            .map(|i| if i % 3 == 0 { 32.5 } else { 100.0 })
            .collect();
        assert!(brightness_spreads(&mut dim, 10.0, 0.5));
        assert!(
            !brightness_spreads(&mut dim, 10.0, 0.2),
            "a ratio under 0.25 keeps Otsu"
        );
        // Four objects say nothing, however different.
        assert!(!brightness_spreads(
            &mut [20.0, 200.0, 20.0, 200.0],
            10.0,
            0.5
        ));
        // No object above the background.
        assert!(!brightness_spreads(&mut [5.0; 10], 10.0, 0.5));
    }

    #[test]
    fn median_below_is_the_background_level_under_a_threshold() {
        let v = bimodal(10.0, 200.0);
        let h = Histogram::of(&v, 256).unwrap();
        let m = median_below(&h, otsu(&h));
        // The low mode spreads from 10 to 10 + 6 × 1.9.
        assert!((10.0..=22.0).contains(&m), "{m}");
    }

    #[test]
    fn triangle_sits_between_peak_and_tail() {
        // A large background peak at 10 and a long thin tail up to 200.
        let mut v = vec![10.0f32; 5000];
        v.extend((0..190).map(|i| 11.0 + i as f32));
        let h = Histogram::of(&v, 256).unwrap();
        let t = triangle(&h);
        assert!(t > 10.0 && t < 100.0, "{t}");
    }

    #[test]
    fn constant_data_has_no_histogram() {
        assert!(Histogram::of(&[5.0; 10], 256).is_none());
        assert!(Histogram::of(&[], 256).is_none());
    }

    #[test]
    fn local_mean_finds_dim_object_on_ramp() {
        let (w, h) = (40, 10);
        let mut data: Vec<f32> = (0..w * h).map(|i| (i % w) as f32 * 10.0).collect();
        data[5 * w + 5] += 30.0; // dim spot on the dark side, below the bright side's level
        let p = Plane {
            width: w,
            height: h,
            data,
        };
        let m = local_mean(&p, 5, 10.0);
        assert!(m.get(5, 5));
        let global = above(&p, otsu(&Histogram::of(&p.data, 256).unwrap()));
        assert!(!global.get(5, 5));
    }
}
