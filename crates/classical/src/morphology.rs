//! Binary morphology on [`BinaryMask`]s: hole filling and small-object removal.

use mica_core::{BinaryMask, Connectivity};

/// Fills holes: background regions (4-connected) that do not reach the image border become
/// foreground, as `scipy.ndimage.binary_fill_holes`.
pub fn fill_holes(mask: &BinaryMask) -> BinaryMask {
    let (w, h) = (mask.width() as usize, mask.height() as usize);
    let m = mask.as_slice();
    let mut outside = vec![false; w * h];
    let mut stack: Vec<usize> = Vec::new();
    let seed = |i: usize, outside: &mut [bool], stack: &mut Vec<usize>| {
        if !m[i] && !outside[i] {
            outside[i] = true;
            stack.push(i);
        }
    };
    for x in 0..w {
        seed(x, &mut outside, &mut stack);
        seed((h - 1) * w + x, &mut outside, &mut stack);
    }
    for y in 0..h {
        seed(y * w, &mut outside, &mut stack);
        seed(y * w + w - 1, &mut outside, &mut stack);
    }
    while let Some(i) = stack.pop() {
        let (x, y) = (i % w, i / w);
        if x > 0 {
            seed(i - 1, &mut outside, &mut stack);
        }
        if x + 1 < w {
            seed(i + 1, &mut outside, &mut stack);
        }
        if y > 0 {
            seed(i - w, &mut outside, &mut stack);
        }
        if y + 1 < h {
            seed(i + w, &mut outside, &mut stack);
        }
    }
    BinaryMask::new(
        mask.width(),
        mask.height(),
        outside.into_iter().map(|o| !o).collect(),
    )
    .expect("same size")
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
    fn removes_specks_only() {
        let m = mask(&["#....###", ".....###"]);
        let r = remove_small_objects(&m, 2, Connectivity::Eight);
        assert!(!r.get(0, 0));
        assert_eq!(r.area(), 6);
    }
}
