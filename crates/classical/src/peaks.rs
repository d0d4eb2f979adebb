//! Marker finding: local maxima with a minimum distance between them (as
//! `skimage.feature.peak_local_max`), restricted to a mask.

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
    let (w, h) = (p.width, p.height);
    let r = min_distance_px;
    let m = mask.as_slice();
    // A pixel is a candidate when no pixel of its clipped (2 r + 1)² window is higher (the same
    // as `value >= max_filter(value, r)`). Most pixels fail on their row neighbours, so the whole
    // window is only read for the few that do not (instead of a max filter over the image).
    let higher_in_window = |x: usize, y: usize, v: f32| {
        let (x0, x1) = (x.saturating_sub(r), (x + r + 1).min(w));
        (y.saturating_sub(r)..(y + r + 1).min(h))
            .any(|yy| p.data[yy * w + x0..yy * w + x1].iter().any(|&u| u > v))
    };
    let mut candidates: Vec<usize> = Vec::new();
    for y in 0..h {
        let row = &p.data[y * w..(y + 1) * w];
        let mrow = &m[y * w..(y + 1) * w];
        for x in 0..w {
            let v = row[x];
            if !mrow[x] || v <= min_value {
                continue;
            }
            if r > 0
                && ((x > 0 && row[x - 1] > v)
                    || (x + 1 < w && row[x + 1] > v)
                    || higher_in_window(x, y, v))
            {
                continue;
            }
            candidates.push(y * w + x);
        }
    }
    candidates.sort_by(|&a, &b| p.data[b].total_cmp(&p.data[a]).then(a.cmp(&b)));
    if min_distance_px == 0 {
        return candidates;
    }
    // Greedy suppression using a raster of claimed pixels.
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

/// Marker labels 1..=K at the given pixel indices of a `width × height` image.
pub fn markers_at(peaks: &[usize], width: u32, height: u32) -> LabelImage {
    let n = width as usize * height as usize;
    let mut markers = crate::scratch::u32s(n);
    markers.resize(n, 0);
    for (k, &i) in peaks.iter().enumerate() {
        markers[i] = k as u32 + 1;
    }
    LabelImage::new(width, height, markers).expect("peak indices come from an image of this size")
}

/// Gives the foreground pixels of `mask` that `labels` left at 0 (components of the mask that had
/// no marker) new labels, one per connected component (with `connectivity`), after the existing
/// ones: no object is lost for want of a marker.
pub fn label_unreached(
    labels: &LabelImage,
    mask: &BinaryMask,
    connectivity: Connectivity,
) -> LabelImage {
    label_unreached_owned(labels.clone(), mask, connectivity)
}

/// [`label_unreached`] reusing the buffer of `labels`.
pub(crate) fn label_unreached_owned(
    labels: LabelImage,
    mask: &BinaryMask,
    connectivity: Connectivity,
) -> LabelImage {
    let unreached = |(&m, &v): (&bool, &u32)| m && v == 0;
    if !mask.as_slice().iter().zip(labels.as_slice()).any(unreached) {
        return labels;
    }
    let mut left = crate::scratch::bools(mask.as_slice().len());
    left.extend(mask.as_slice().iter().zip(labels.as_slice()).map(unreached));
    let left = BinaryMask::new(labels.width(), labels.height(), left).expect("same size");
    let rest = left.connected_components(connectivity);
    crate::scratch::recycle_bools(left.into_vec());
    let offset = labels.max_label();
    let (w, h) = (labels.width(), labels.height());
    let mut data = labels.into_vec();
    for (v, &r) in data.iter_mut().zip(rest.as_slice()) {
        if r != 0 {
            *v = offset + r;
        }
    }
    crate::scratch::recycle_u32s(rest.into_vec());
    LabelImage::new(w, h, data).expect("same size")
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

    /// The former definition: candidates are the masked pixels above `min_value` equal to the
    /// max filter of their window, sorted highest first; then the same greedy suppression.
    fn reference(p: &Plane, mask: &BinaryMask, r: usize, min_value: f32) -> Vec<usize> {
        let maxed = crate::filter::max_filter(p, r);
        let m = mask.as_slice();
        let mut c: Vec<usize> = (0..p.data.len())
            .filter(|&i| m[i] && p.data[i] > min_value && p.data[i] >= maxed.data[i])
            .collect();
        c.sort_by(|&a, &b| p.data[b].total_cmp(&p.data[a]).then(a.cmp(&b)));
        let mut kept: Vec<usize> = Vec::new();
        for &i in &c {
            let (x, y) = ((i % p.width) as isize, (i / p.width) as isize);
            let far = |&k: &usize| {
                let (kx, ky) = ((k % p.width) as isize, (k / p.width) as isize);
                (kx - x).abs().max((ky - y).abs()) > r as isize
            };
            if r == 0 || kept.iter().all(far) {
                kept.push(i);
            }
        }
        kept
    }

    #[test]
    fn matches_max_filter_definition_on_random_surfaces() {
        let mut rng = mica_core::rng::SplitMix64::new(7);
        for case in 0..40 {
            let (w, h) = (5 + case % 23, 3 + case % 17);
            // Few distinct levels, so that plateaus and ties are common.
            let data: Vec<f32> = (0..w * h).map(|_| (rng.next_u64() % 6) as f32).collect();
            let m: Vec<bool> = (0..w * h)
                .map(|_| !rng.next_u64().is_multiple_of(4))
                .collect();
            let p = Plane {
                width: w,
                height: h,
                data,
            };
            let mask = BinaryMask::new(w as u32, h as u32, m).unwrap();
            for r in [0usize, 1, 2, 5, 8] {
                for min_value in [f32::NEG_INFINITY, 2.0] {
                    assert_eq!(
                        peak_local_max(&p, &mask, r, min_value),
                        reference(&p, &mask, r, min_value),
                        "case {case} r {r} min {min_value}"
                    );
                }
            }
        }
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
    fn component_without_marker_gets_a_label() {
        let mask = BinaryMask::new(
            10,
            1,
            vec![
                false, true, true, false, false, false, true, true, false, true,
            ],
        )
        .unwrap();
        let labels = LabelImage::new(10, 1, vec![0, 0, 0, 0, 0, 0, 1, 1, 0, 0]).unwrap();
        let out = label_unreached(&labels, &mask, Connectivity::Eight);
        assert_eq!(out.as_slice(), &[0, 2, 2, 0, 0, 0, 1, 1, 0, 3]);
        assert_eq!(markers_at(&[3, 5], 10, 1).as_slice()[5], 2);
    }
}
