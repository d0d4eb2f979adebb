//! Exact Euclidean distance transform (Felzenszwalb & Huttenlocher 2012): for every foreground
//! pixel, the distance to the nearest background pixel.

use crate::plane::Plane;
use mica_core::BinaryMask;

/// Large finite stand-in for "no background anywhere".
const FAR: f32 = 1e20;

/// One-dimensional squared distance transform of `f` (lower envelope of parabolas) into `d`.
fn edt_1d(f: &[f32], d: &mut [f32], v: &mut [usize], z: &mut [f32]) {
    let n = f.len();
    let mut k = 0usize;
    v[0] = 0;
    z[0] = f32::NEG_INFINITY;
    z[1] = f32::INFINITY;
    for q in 1..n {
        let fq = f[q] + (q * q) as f32;
        loop {
            let p = v[k];
            let s = (fq - (f[p] + (p * p) as f32)) / (2.0 * (q as f32 - p as f32));
            if s <= z[k] && k > 0 {
                k -= 1;
                continue;
            }
            if s <= z[k] {
                // k == 0: the new parabola dominates from -inf.
                v[0] = q;
                z[0] = f32::NEG_INFINITY;
                z[1] = f32::INFINITY;
                break;
            }
            k += 1;
            v[k] = q;
            z[k] = s;
            z[k + 1] = f32::INFINITY;
            break;
        }
    }
    k = 0;
    for (q, dq) in d.iter_mut().enumerate() {
        while z[k + 1] < q as f32 {
            k += 1;
        }
        let p = v[k];
        let dx = q as f32 - p as f32;
        *dq = dx * dx + f[p];
    }
}

/// Row pass over squared column distances. A background pixel (0) is nearer to everything on
/// its far side than any site beyond it, so each run of foreground pixels is solved on its own,
/// together with the background pixel at each end: the work is proportional to the foreground.
fn edt_rows(p: &mut Plane) {
    let w = p.width;
    let mut v = vec![0usize; w];
    let mut z = vec![0.0f32; w + 1];
    let mut f = vec![0.0f32; w];
    for row in p.data.chunks_exact_mut(w) {
        let mut x = 0;
        while x < w {
            if row[x] == 0.0 {
                x += 1;
                continue;
            }
            let start = x;
            while x < w && row[x] != 0.0 {
                x += 1;
            }
            let (s0, s1) = (start.saturating_sub(1), x.min(w - 1));
            let n = s1 - s0 + 1;
            f[..n].copy_from_slice(&row[s0..=s1]);
            edt_1d(&f[..n], &mut row[s0..=s1], &mut v, &mut z);
        }
    }
}

/// Euclidean distance (in pixels) from each foreground pixel to the nearest background pixel;
/// 0 on the background. The image border is not background (as `scipy.ndimage.distance_transform_edt`).
/// A mask with no background at all gets a very large distance everywhere.
pub fn distance_transform(mask: &BinaryMask) -> Plane {
    let (w, h) = (mask.width() as usize, mask.height() as usize);
    let m = mask.as_slice();
    // Columns: distance to the nearest background pixel in the same column, by a scan down and a
    // scan up, row by row (vectorisable), then squared.
    let mut d = crate::scratch::f32s_filled(w * h, 0.0);
    for x in 0..w {
        d[x] = if m[x] { FAR } else { 0.0 };
    }
    for y in 1..h {
        let (prev, cur) = d.split_at_mut(y * w);
        let prev = &prev[(y - 1) * w..];
        for ((c, &p), &fg) in cur[..w].iter_mut().zip(prev).zip(&m[y * w..(y + 1) * w]) {
            *c = if fg { (p + 1.0).min(FAR) } else { 0.0 };
        }
    }
    for y in (0..h.saturating_sub(1)).rev() {
        let (cur, next) = d.split_at_mut((y + 1) * w);
        for (c, &n) in cur[y * w..].iter_mut().zip(&next[..w]) {
            *c = c.min(n + 1.0);
        }
    }
    d.iter_mut()
        .for_each(|v| *v = if *v >= FAR { FAR } else { *v * *v });
    // Rows: lower envelope of parabolas over the squared column distances.
    let mut p = Plane {
        width: w,
        height: h,
        data: d,
    };
    edt_rows(&mut p);
    p.data.iter_mut().for_each(|v| *v = v.min(FAR).sqrt());
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_brute_force() {
        let (w, h) = (17usize, 11usize);
        let data: Vec<bool> = (0..w * h).map(|i| (i * 7 + i / 5) % 11 != 0).collect();
        let m = BinaryMask::new(w as u32, h as u32, data.clone()).unwrap();
        let d = distance_transform(&m);
        for y in 0..h {
            for x in 0..w {
                let mut best = f32::INFINITY;
                for yy in 0..h {
                    for xx in 0..w {
                        if !data[yy * w + xx] {
                            let dx = x as f32 - xx as f32;
                            let dy = y as f32 - yy as f32;
                            best = best.min((dx * dx + dy * dy).sqrt());
                        }
                    }
                }
                assert!((d.data[y * w + x] - best).abs() < 1e-3, "{x},{y}");
            }
        }
    }

    #[test]
    fn all_foreground_is_far() {
        let m = BinaryMask::new(3, 3, vec![true; 9]).unwrap();
        assert!(distance_transform(&m).data.iter().all(|&v| v > 1e6));
    }
}
