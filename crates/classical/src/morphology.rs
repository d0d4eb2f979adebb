//! Binary morphology on [`BinaryMask`]s: hole filling and small-object removal.

use crate::scratch;
use mica_core::{BinaryMask, Connectivity};

/// Fills holes: background regions (4-connected) that do not reach the image border become
/// foreground, as `scipy.ndimage.binary_fill_holes`.
pub fn fill_holes(mask: &BinaryMask) -> BinaryMask {
    let (w, h) = (mask.width() as usize, mask.height() as usize);
    let m = mask.as_slice();
    // Scanline flood fill of the background from the border: `outside` marks background reached.
    let mut outside = scratch::bools(w * h);
    outside.resize(w * h, false);
    let mut stack: Vec<(usize, usize)> = Vec::new();
    for x in 0..w {
        stack.push((x, 0));
        stack.push((x, h - 1));
    }
    for y in 0..h {
        stack.push((0, y));
        stack.push((w - 1, y));
    }
    while let Some((x, y)) = stack.pop() {
        let row = y * w;
        if m[row + x] || outside[row + x] {
            continue;
        }
        let mut x0 = x;
        while x0 > 0 && !m[row + x0 - 1] && !outside[row + x0 - 1] {
            x0 -= 1;
        }
        let mut x1 = x;
        while x1 + 1 < w && !m[row + x1 + 1] && !outside[row + x1 + 1] {
            x1 += 1;
        }
        outside[row + x0..=row + x1].fill(true);
        for ny in [y.wrapping_sub(1), y + 1] {
            if ny >= h {
                continue;
            }
            let nrow = ny * w;
            let mut in_run = false;
            for nx in x0..=x1 {
                let open = !m[nrow + nx] && !outside[nrow + nx];
                if open && !in_run {
                    stack.push((nx, ny));
                }
                in_run = open;
            }
        }
    }
    // Foreground = not reached from the border (in place).
    outside.iter_mut().for_each(|o| *o = !*o);
    BinaryMask::new(mask.width(), mask.height(), outside).expect("same size")
}

/// Fills only holes of at most `max_area_px` pixels (4-connected background regions that do not
/// reach the border); larger enclosed regions, such as gaps between touching cells, stay background.
pub fn fill_holes_up_to(mask: &BinaryMask, max_area_px: usize) -> BinaryMask {
    let filled = fill_holes(mask);
    let m = mask.as_slice();
    let mut holes = scratch::bools(m.len());
    holes.extend(filled.as_slice().iter().zip(m).map(|(&f, &o)| f && !o));
    if !holes.iter().any(|&h| h) {
        return filled;
    }
    let hole_mask = BinaryMask::new(mask.width(), mask.height(), holes).expect("same size");
    let holes = hole_mask.connected_components(Connectivity::Four);
    scratch::recycle_bools(hole_mask.into_vec());
    let mut area = vec![0usize; holes.max_label() as usize + 1];
    for &l in holes.as_slice() {
        area[l as usize] += 1;
    }
    // Reuse the buffer of `filled` for the result.
    let mut data = filled.into_vec();
    data.clear();
    data.extend(
        m.iter()
            .zip(holes.as_slice())
            .map(|(&o, &l)| o || (l != 0 && area[l as usize] <= max_area_px)),
    );
    scratch::recycle_u32s(holes.into_vec());
    BinaryMask::new(mask.width(), mask.height(), data).expect("same size")
}

/// Removes connected components (with `connectivity`) smaller than `min_area_px` pixels.
pub fn remove_small_objects(
    mask: &BinaryMask,
    min_area_px: usize,
    connectivity: Connectivity,
) -> BinaryMask {
    if min_area_px <= 1 {
        return mask.clone();
    }
    mask.connected_components(connectivity)
        .remove_small(min_area_px)
        .foreground()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(rows: &[&str]) -> BinaryMask {
        let h = rows.len() as u32;
        let w = rows[0].len() as u32;
        BinaryMask::new(
            w,
            h,
            rows.iter()
                .flat_map(|r| r.chars().map(|c| c == '#'))
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn fills_enclosed_hole_not_open_bay() {
        let m = mask(&[
            "#####..", //
            "#...#..", //
            "#####..", //
            "..#.#..", //
            "..#.#..", //
        ]);
        let f = fill_holes(&m);
        assert!(f.get(1, 1) && f.get(3, 1));
        assert!(!f.get(3, 3) && !f.get(3, 4)); // bay open to the bottom border
    }

    #[test]
    fn fill_holes_matches_simple_flood_fill_on_random_masks() {
        let mut rng = mica_core::rng::SplitMix64::new(11);
        for _ in 0..50 {
            let (w, h) = (1 + rng.below(20) as usize, 1 + rng.below(20) as usize);
            let data: Vec<bool> = (0..w * h).map(|_| rng.next_f64() < 0.55).collect();
            let m = BinaryMask::new(w as u32, h as u32, data.clone()).unwrap();
            // Reference: repeated relaxation from the border.
            let mut out = vec![false; w * h];
            for y in 0..h {
                for x in 0..w {
                    if (x == 0 || y == 0 || x + 1 == w || y + 1 == h) && !data[y * w + x] {
                        out[y * w + x] = true;
                    }
                }
            }
            loop {
                let mut changed = false;
                for y in 0..h {
                    for x in 0..w {
                        let i = y * w + x;
                        if data[i] || out[i] {
                            continue;
                        }
                        let n = (x > 0 && out[i - 1])
                            || (x + 1 < w && out[i + 1])
                            || (y > 0 && out[i - w])
                            || (y + 1 < h && out[i + w]);
                        if n {
                            out[i] = true;
                            changed = true;
                        }
                    }
                }
                if !changed {
                    break;
                }
            }
            let expected: Vec<bool> = out.iter().map(|&o| !o).collect();
            assert_eq!(fill_holes(&m).as_slice(), &expected[..], "{w}x{h}");
        }
    }

    #[test]
    fn fills_small_holes_keeps_large_gaps() {
        let m = mask(&[
            "#########", //
            "#.###...#", //
            "#####...#", //
            "#####...#", //
            "#########", //
        ]);
        let f = fill_holes_up_to(&m, 4);
        assert!(f.get(1, 1));
        assert!(!f.get(6, 2));
        assert_eq!(fill_holes_up_to(&m, 9), fill_holes(&m));
    }

    #[test]
    fn removes_specks_only() {
        let m = mask(&["#....###", ".....###"]);
        let r = remove_small_objects(&m, 2, Connectivity::Eight);
        assert!(!r.get(0, 0));
        assert_eq!(r.area(), 6);
    }
}
