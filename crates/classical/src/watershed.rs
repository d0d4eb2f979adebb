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
    watershed_in_range(surface, markers, mask, connectivity, None)
}

/// [`watershed`] with the quantisation range given: `Some((lo, hi))` spreads the [`LEVELS`]
/// steps over `lo..=hi` instead of the surface's own range inside the mask. A tile of a larger
/// image is flooded with the whole image's range, so that its ties are the whole image's.
///
/// # Errors
/// As [`watershed`].
pub fn watershed_in_range(
    surface: &Plane,
    markers: &LabelImage,
    mask: Option<&BinaryMask>,
    connectivity: Connectivity,
    range: Option<(f32, f32)>,
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
    let (lo, hi) = match range {
        Some(r) => r,
        None => surface_range(surface, inside),
    };
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
    let eight = connectivity == Connectivity::Eight;
    let mut buckets = BUCKETS.with(|b| std::mem::take(&mut *b.borrow_mut()));
    buckets.resize_with(LEVELS, Vec::new);
    buckets.iter_mut().for_each(Vec::clear);
    if labels.iter().all(|&l| l < BLOCKED) {
        flood_packed(&mut labels, inside, &levels, w, h, eight, &mut buckets);
    } else {
        flood(&mut labels, inside, &levels, w, h, eight, &mut buckets);
    }
    BUCKETS.with(|b| *b.borrow_mut() = buckets);
    LabelImage::new(w as u32, h as u32, labels)
}

/// The smallest and largest finite value of `surface` where `inside` holds (the range the
/// flooding levels are spread over).
pub fn surface_range(surface: &Plane, inside: &[bool]) -> (f32, f32) {
    let (mut lo, mut hi) = (f32::INFINITY, f32::NEG_INFINITY);
    for (&v, &m) in surface.data.iter().zip(inside) {
        if m && v.is_finite() {
            lo = lo.min(v);
            hi = hi.max(v);
        }
    }
    (lo, hi)
}

thread_local! {
    /// The queue's buckets, kept per thread between images (their capacity is reused).
    static BUCKETS: std::cell::RefCell<Vec<Vec<u32>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Pixels still to flood carry `FREE | level` in the packed flooding state.
const FREE: u32 = 1 << 31;
/// Pixels outside the mask, in the packed state (looks labelled, so it is never flooded).
const BLOCKED: u32 = FREE - 1;

/// Flooding with the labels, the mask and the levels read separately (any label values).
/// `labels` holds the markers (0 elsewhere and outside the mask); `buckets` are LEVELS empty queues.
fn flood(
    labels: &mut [u32],
    inside: &[bool],
    levels: &[u16],
    w: usize,
    h: usize,
    eight: bool,
    buckets: &mut [Vec<u32>],
) {
    let mut heads = vec![0usize; LEVELS];
    for (i, &l) in labels.iter().enumerate() {
        if l != 0 {
            buckets[levels[i] as usize].push(i as u32);
        }
    }
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
            visit(i - 1, labels, buckets);
        }
        if x + 1 < w {
            visit(i + 1, labels, buckets);
        }
        if y > 0 {
            visit(i - w, labels, buckets);
            if eight {
                if x > 0 {
                    visit(i - w - 1, labels, buckets);
                }
                if x + 1 < w {
                    visit(i - w + 1, labels, buckets);
                }
            }
        }
        if y + 1 < h {
            visit(i + w, labels, buckets);
            if eight {
                if x > 0 {
                    visit(i + w - 1, labels, buckets);
                }
                if x + 1 < w {
                    visit(i + w + 1, labels, buckets);
                }
            }
        }
    }
}

/// The same flooding, in the same order, with label, mask and level packed in one word per pixel
/// (one memory access per neighbour instead of three): for labels below [`BLOCKED`].
fn flood_packed(
    labels: &mut [u32],
    inside: &[bool],
    levels: &[u16],
    w: usize,
    h: usize,
    eight: bool,
    buckets: &mut [Vec<u32>],
) {
    // The state lives in a frame one pixel wider on every side, filled with BLOCKED: no
    // neighbour needs a bounds test, and no pixel needs its column (no division).
    let pw = w + 2;
    let mut state = crate::scratch::u32s(pw * (h + 2));
    state.resize(pw * (h + 2), BLOCKED);
    for y in 0..h {
        let row = &mut state[(y + 1) * pw + 1..(y + 1) * pw + 1 + w];
        let src = y * w..(y + 1) * w;
        for (((s, &l), &m), &lv) in row
            .iter_mut()
            .zip(&labels[src.clone()])
            .zip(&inside[src.clone()])
            .zip(&levels[src])
        {
            *s = if !m {
                BLOCKED
            } else if l == 0 {
                FREE | lv as u32
            } else {
                l
            };
        }
    }
    let mut heads = vec![0usize; LEVELS];
    for (i, &l) in labels.iter().enumerate() {
        if l != 0 && inside[i] {
            let (y, x) = (i / w, i % w);
            buckets[levels[i] as usize].push(((y + 1) * pw + x + 1) as u32);
        }
    }
    let mut current = 0usize;
    while current < LEVELS {
        let Some(&i) = buckets[current].get(heads[current]) else {
            current += 1;
            continue;
        };
        heads[current] += 1;
        let i = i as usize;
        let l = state[i];
        let mut visit = |j: usize| {
            let s = state[j];
            if s >= FREE {
                state[j] = l;
                buckets[((s & 0xFFFF) as usize).max(current)].push(j as u32);
            }
        };
        visit(i - 1);
        visit(i + 1);
        visit(i - pw);
        if eight {
            visit(i - pw - 1);
            visit(i - pw + 1);
        }
        visit(i + pw);
        if eight {
            visit(i + pw - 1);
            visit(i + pw + 1);
        }
    }
    for y in 0..h {
        let row = &state[(y + 1) * pw + 1..(y + 1) * pw + 1 + w];
        for (d, &s) in labels[y * w..(y + 1) * w].iter_mut().zip(row) {
            *d = if s >= BLOCKED { 0 } else { s };
        }
    }
    crate::scratch::recycle_u32s(state);
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
    fn packed_flooding_equals_plain_flooding() {
        let mut rng = mica_core::rng::SplitMix64::new(11);
        for case in 0..30 {
            let (w, h) = (4 + case % 19, 3 + case % 13);
            let n = w * h;
            // Few levels (many ties, so that the first-come order matters) or many.
            let top = if case % 2 == 0 { 5 } else { LEVELS as u64 };
            let levels: Vec<u16> = (0..n).map(|_| rng.below(top) as u16).collect();
            let inside: Vec<bool> = (0..n).map(|_| rng.below(5) != 0).collect();
            let markers: Vec<u32> = (0..n)
                .map(|i| {
                    if inside[i] && rng.below(12) == 0 {
                        1 + rng.below(4) as u32
                    } else {
                        0
                    }
                })
                .collect();
            for eight in [false, true] {
                let mut plain = markers.clone();
                let mut packed = markers.clone();
                let mut b1 = vec![Vec::new(); LEVELS];
                let mut b2 = vec![Vec::new(); LEVELS];
                flood(&mut plain, &inside, &levels, w, h, eight, &mut b1);
                flood_packed(&mut packed, &inside, &levels, w, h, eight, &mut b2);
                assert_eq!(plain, packed, "case {case} eight {eight}");
            }
        }
    }

    #[test]
    fn huge_marker_labels_take_the_plain_path() {
        let s = Plane::filled(4, 1, 0.0);
        let markers = LabelImage::new(4, 1, vec![u32::MAX - 1, 0, 0, 7]).unwrap();
        let l = watershed(&s, &markers, None, Connectivity::Four).unwrap();
        assert_eq!(l.as_slice(), &[u32::MAX - 1, u32::MAX - 1, 7, 7]);
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
