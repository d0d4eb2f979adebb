//! Marker-controlled watershed by priority-queue flooding (Meyer 1991; Beucher & Meyer 1993),
//! with a hierarchical (bucket) queue so that flooding costs O(pixels).

use crate::plane::Plane;
use mica_core::{BinaryMask, Connectivity, LabelImage};

/// Number of priority levels of the flooding queue: the surface is quantised to this many steps
/// between its minimum and maximum (ties within a step are flooded first come, first served).
pub const LEVELS: usize = 4096;

/// Floods `surface` from the labelled `markers`, lowest values first (quantised to [`LEVELS`]
/// steps; ties in the order pixels were reached, as scikit-image does), inside `mask` (all pixels when `None`). Every masked pixel
/// reachable from a marker gets that marker's label; others stay 0. Markers outside the mask are
/// ignored.
///
/// # Errors
/// [`mica_core::Error::Shape`] when the sizes of `surface`, `markers` and `mask` differ.
pub fn watershed(
    surface: &Plane,
    markers: &LabelImage,
    mask: Option<&BinaryMask>,
    connectivity: Connectivity,
) -> mica_core::Result<LabelImage> {
    let (w, h) = (surface.width, surface.height);
    markers.check_same_size(w as u32, h as u32, "markers vs watershed surface")?;
    if let Some(m) = mask {
        m.check_same_size(w as u32, h as u32, "mask vs watershed surface")?;
    }
    let all = vec![true; if mask.is_none() { w * h } else { 0 }];
    let inside: &[bool] = match mask {
        Some(m) => m.as_slice(),
        None => &all,
    };
    let mut labels = crate::scratch::u32s(w * h);
    labels.extend(
        markers
            .as_slice()
            .iter()
            .zip(inside)
            .map(|(&l, &m)| if m { l } else { 0 }),
    );
    // Hierarchical queue: LEVELS FIFO buckets over the surface's range inside the mask. A pixel
    // reached from a higher level joins the current bucket (flooding never goes back down).
    let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
    for (&v, &m) in surface.data.iter().zip(inside) {
        if m && v.is_finite() {
            lo = lo.min(v);
            hi = hi.max(v);
        }
    }
    let scale = if hi > lo {
        (LEVELS - 1) as f32 / (hi - lo)
    } else {
        0.0
    };
    let levels: Vec<u16> = surface
        .data
        .iter()
        .map(|&v| {
            if v.is_finite() {
                ((v - lo) * scale).clamp(0.0, (LEVELS - 1) as f32) as u16
            } else if v > 0.0 {
                (LEVELS - 1) as u16
            } else {
                0
            }
        })
        .collect();
    let mut buckets: Vec<Vec<u32>> = vec![Vec::new(); LEVELS];
    let mut heads = vec![0usize; LEVELS];
    for (i, &l) in labels.iter().enumerate() {
        if l != 0 {
            buckets[levels[i] as usize].push(i as u32);
        }
    }
    let eight = connectivity == Connectivity::Eight;
    let mut current = 0usize;
    while current < LEVELS {
        let Some(&i) = buckets[current].get(heads[current]) else {
            current += 1;
            continue;
        };
        heads[current] += 1;
        let i = i as usize;
        let l = labels[i];
        let (x, y) = (i % w, i / w);
        let visit = |j: usize, labels: &mut [u32], buckets: &mut [Vec<u32>]| {
            if labels[j] == 0 && inside[j] {
                labels[j] = l;
                buckets[(levels[j] as usize).max(current)].push(j as u32);
            }
        };
        if x > 0 {
            visit(i - 1, &mut labels, &mut buckets);
        }
        if x + 1 < w {
            visit(i + 1, &mut labels, &mut buckets);
        }
        if y > 0 {
            visit(i - w, &mut labels, &mut buckets);
            if eight {
                if x > 0 {
                    visit(i - w - 1, &mut labels, &mut buckets);
                }
                if x + 1 < w {
                    visit(i - w + 1, &mut labels, &mut buckets);
                }
            }
        }
        if y + 1 < h {
            visit(i + w, &mut labels, &mut buckets);
            if eight {
                if x > 0 {
                    visit(i + w - 1, &mut labels, &mut buckets);
                }
                if x + 1 < w {
                    visit(i + w + 1, &mut labels, &mut buckets);
                }
            }
        }
    }
    LabelImage::new(w as u32, h as u32, labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_the_ridge() {
        // Two basins at x=1 and x=7, ridge at x=4.
        let s = Plane {
            width: 9,
            height: 1,
            data: vec![1., 0., 1., 2., 8., 2., 1., 0., 1.],
        };
        let mut mk = vec![0u32; 9];
        mk[1] = 1;
        mk[7] = 2;
        let markers = LabelImage::new(9, 1, mk).unwrap();
        let l = watershed(&s, &markers, None, Connectivity::Four).unwrap();
        assert_eq!(&l.as_slice()[..4], &[1, 1, 1, 1]);
        assert_eq!(&l.as_slice()[5..], &[2, 2, 2, 2]);
        assert_ne!(l.as_slice()[4], 0);
    }

    #[test]
    fn mask_limits_flooding() {
        let s = Plane::filled(5, 1, 0.0);
        let markers = LabelImage::new(5, 1, vec![1, 0, 0, 0, 0]).unwrap();
        let mask = BinaryMask::new(5, 1, vec![true, true, false, true, true]).unwrap();
        let l = watershed(&s, &markers, Some(&mask), Connectivity::Four).unwrap();
        assert_eq!(l.as_slice(), &[1, 1, 0, 0, 0]);
    }
}
