//! Marker-controlled watershed by priority-queue flooding (Meyer 1991; Beucher & Meyer 1993).

use crate::plane::Plane;
use mica_core::{BinaryMask, Connectivity, LabelImage};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Maps an f32 to a u32 with the same order (total order; -0.0 < 0.0).
#[inline]
fn ordered_bits(v: f32) -> u32 {
    let b = v.to_bits();
    if b & 0x8000_0000 != 0 {
        !b
    } else {
        b | 0x8000_0000
    }
}

/// Floods `surface` from the labelled `markers`, lowest values first (ties in the order pixels
/// were reached, as scikit-image does), inside `mask` (all pixels when `None`). Every masked pixel
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
    let inside = |i: usize| mask.is_none_or(|m| m.as_slice()[i]);
    let mut labels: Vec<u32> = markers
        .as_slice()
        .iter()
        .enumerate()
        .map(|(i, &l)| if inside(i) { l } else { 0 })
        .collect();
    let mut heap: BinaryHeap<Reverse<(u64, u32)>> = BinaryHeap::new();
    let mut age: u64 = 0;
    let key = |v: f32, age: u64| ((ordered_bits(v) as u64) << 32) | (age & 0xFFFF_FFFF);
    for (i, &l) in labels.iter().enumerate() {
        if l != 0 {
            heap.push(Reverse((key(surface.data[i], age), i as u32)));
            age += 1;
        }
    }
    let four: [(isize, isize); 4] = [(-1, 0), (1, 0), (0, -1), (0, 1)];
    let eight: [(isize, isize); 8] = [
        (-1, 0),
        (1, 0),
        (0, -1),
        (0, 1),
        (-1, -1),
        (1, -1),
        (-1, 1),
        (1, 1),
    ];
    let offsets: &[(isize, isize)] = match connectivity {
        Connectivity::Four => &four,
        Connectivity::Eight => &eight,
    };
    while let Some(Reverse((_, i))) = heap.pop() {
        let i = i as usize;
        let l = labels[i];
        let (x, y) = ((i % w) as isize, (i / w) as isize);
        for &(dx, dy) in offsets {
            let (nx, ny) = (x + dx, y + dy);
            if nx < 0 || ny < 0 || nx >= w as isize || ny >= h as isize {
                continue;
            }
            let j = ny as usize * w + nx as usize;
            if labels[j] != 0 || !inside(j) {
                continue;
            }
            labels[j] = l;
            heap.push(Reverse((key(surface.data[j], age), j as u32)));
            age += 1;
        }
    }
    LabelImage::new(w as u32, h as u32, labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordered_bits_preserves_order() {
        let v = [-3.5f32, -1.0, -0.0, 0.0, 0.5, 2.0, 1e9];
        for p in v.windows(2) {
            assert!(ordered_bits(p[0]) <= ordered_bits(p[1]), "{p:?}");
        }
    }

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
