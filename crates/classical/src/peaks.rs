//! Marker finding: local maxima with a minimum distance between them (as
//! `skimage.feature.peak_local_max`), restricted to a mask.

use crate::filter::max_filter;
use crate::plane::Plane;
use mica_core::{BinaryMask, Connectivity, LabelImage};

/// Local maxima of `p` inside `mask`: pixels equal to the maximum of their
/// `(2 min_distance_px + 1)²` neighbourhood and above `min_value`, then thinned greedily from the
/// highest so that no two kept peaks are within `min_distance_px` of each other (Chebyshev
/// distance). Returns pixel indices, highest first.
pub fn peak_local_max(
    p: &Plane,
    mask: &BinaryMask,
    min_distance_px: usize,
    min_value: f32,
) -> Vec<usize> {
    let w = p.width;
    let maxed = max_filter(p, min_distance_px);
    let m = mask.as_slice();
    let mut candidates: Vec<usize> = (0..p.data.len())
        .filter(|&i| m[i] && p.data[i] > min_value && p.data[i] >= maxed.data[i])
        .collect();
    candidates.sort_by(|&a, &b| p.data[b].total_cmp(&p.data[a]).then(a.cmp(&b)));
    if min_distance_px == 0 {
        return candidates;
    }
    // Greedy suppression using a raster of claimed pixels.
    let r = min_distance_px;
    let h = p.height;
    let mut kept_at = vec![false; p.data.len()];
    let mut kept = Vec::new();
    'next: for &i in &candidates {
        let (x, y) = (i % w, i / w);
        for yy in y.saturating_sub(r)..(y + r + 1).min(h) {
            let row = yy * w;
            if kept_at[row + x.saturating_sub(r)..row + (x + r + 1).min(w)]
                .iter()
                .any(|&k| k)
            {
                continue 'next;
            }
        }
        kept_at[i] = true;
        kept.push(i);
    }
    kept
}

/// Marker labels 1..=K at the given pixels; then every connected component of `mask` (with
/// `connectivity`) that received no marker gets one at its highest pixel of `p`, so no object is
/// lost for want of a marker.
pub fn markers_from_peaks(
    peaks: &[usize],
    p: &Plane,
    mask: &BinaryMask,
    connectivity: Connectivity,
) -> LabelImage {
    let n = p.data.len();
    let mut markers = vec![0u32; n];
    let mut next = 0u32;
    for &i in peaks {
        next += 1;
        markers[i] = next;
    }
    let comps = mask.connected_components(connectivity);
    let nc = comps.max_label() as usize;
    let mut has = vec![false; nc + 1];
    let mut best: Vec<Option<usize>> = vec![None; nc + 1];
    for (i, &c) in comps.as_slice().iter().enumerate() {
        if c == 0 {
            continue;
        }
        let c = c as usize;
        if markers[i] != 0 {
            has[c] = true;
        }
        match best[c] {
            Some(b) if p.data[b] >= p.data[i] => {}
            _ => best[c] = Some(i),
        }
    }
    for c in 1..=nc {
        if let (false, Some(i)) = (has[c], best[c]) {
            next += 1;
            markers[i] = next;
        }
    }
    LabelImage::new(mask.width(), mask.height(), markers).expect("mask size")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_separated_peaks_one_close_pair() {
        let (w, h) = (30, 10);
        let mut p = Plane::filled(w, h, 0.0);
        p.data[5 * w + 5] = 10.0;
        p.data[5 * w + 20] = 9.0;
        p.data[5 * w + 22] = 8.0; // within 3 of the 9: suppressed
        let mask = BinaryMask::new(w as u32, h as u32, vec![true; w * h]).unwrap();
        let peaks = peak_local_max(&p, &mask, 3, 0.0);
        assert_eq!(peaks, vec![5 * w + 5, 5 * w + 20]);
        let peaks1 = peak_local_max(&p, &mask, 1, 0.0);
        assert_eq!(peaks1.len(), 3);
    }

    #[test]
    fn plateau_gives_one_peak() {
        let (w, h) = (10, 10);
        let mut p = Plane::filled(w, h, 0.0);
        for y in 3..6 {
            for x in 3..6 {
                p.data[y * w + x] = 5.0;
            }
        }
        let mask = BinaryMask::new(w as u32, h as u32, vec![true; w * h]).unwrap();
        assert_eq!(peak_local_max(&p, &mask, 3, 0.0).len(), 1);
    }

    #[test]
    fn component_without_peak_gets_marker() {
        let (w, h) = (10, 1);
        let p = Plane {
            width: w,
            height: h,
            data: vec![0., 1., 2., 0., 0., 0., 3., 4., 0., 0.],
        };
        let mask = BinaryMask::new(
            w as u32,
            h as u32,
            p.data.iter().map(|&v| v > 0.0).collect(),
        )
        .unwrap();
        let m = markers_from_peaks(&[7], &p, &mask, Connectivity::Eight);
        assert_eq!(m.num_objects(), 2);
        assert_eq!(m.as_slice()[7], 1);
        assert_eq!(m.as_slice()[2], 2);
    }
}
