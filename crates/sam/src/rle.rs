//! Run-length encoded masks in COCO's convention: runs over the pixels in column-major
//! (Fortran) order, starting with a run of zeros (possibly empty), as upstream
//! `mask_to_rle_pytorch` and pycocotools produce them.

use mica_core::BinaryMask;
use serde::{Deserialize, Serialize};

/// An uncompressed COCO RLE (`{"size": [h, w], "counts": [...]}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rle {
    /// `[height, width]`.
    pub size: [u32; 2],
    pub counts: Vec<u32>,
}

/// A compressed COCO RLE (`counts` as pycocotools' string).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CocoRle {
    /// `[height, width]`.
    pub size: [u32; 2],
    pub counts: String,
}

impl Rle {
    /// Encodes a mask given as a predicate on `(x, y)`.
    pub fn from_fn(width: u32, height: u32, f: impl Fn(u32, u32) -> bool) -> Rle {
        let mut counts = Vec::new();
        let mut current = false;
        let mut run = 0u32;
        for x in 0..width {
            for y in 0..height {
                let v = f(x, y);
                if v != current {
                    counts.push(run);
                    run = 0;
                    current = v;
                }
                run += 1;
            }
        }
        counts.push(run);
        Rle {
            size: [height, width],
            counts,
        }
    }

    /// Encodes a row-major `height × width` mask: what [`Rle::from_fn`] gives for
    /// `|x, y| mask[y * width + x]`, faster (the mask is transposed in cache-sized tiles, then
    /// its runs are found eight pixels at a time).
    ///
    /// # Panics
    /// If `mask.len() != width · height`.
    pub fn from_row_major(width: u32, height: u32, mask: &[bool]) -> Rle {
        let (w, h) = (width as usize, height as usize);
        assert_eq!(mask.len(), w * h, "mask size");
        const TILE: usize = 32;
        let mut col = vec![0u8; w * h];
        for y0 in (0..h).step_by(TILE) {
            for x0 in (0..w).step_by(TILE) {
                for y in y0..(y0 + TILE).min(h) {
                    let row = &mask[y * w..(y + 1) * w];
                    for x in x0..(x0 + TILE).min(w) {
                        col[x * h + y] = u8::from(row[x]);
                    }
                }
            }
        }
        let mut counts = Vec::new();
        let (mut current, mut start, mut i) = (0u8, 0usize, 0usize);
        let uniform = |v: u8| u64::from_ne_bytes([v; 8]);
        while i < col.len() {
            // Skip whole words of the current value, then find the change in the word.
            let same = uniform(current);
            while i + 8 <= col.len()
                && u64::from_ne_bytes(col[i..i + 8].try_into().expect("8 bytes")) == same
            {
                i += 8;
            }
            match col[i..].iter().position(|&v| v != current) {
                Some(p) => {
                    i += p;
                    counts.push((i - start) as u32);
                    start = i;
                    current ^= 1;
                }
                None => i = col.len(),
            }
        }
        counts.push((col.len() - start) as u32);
        Rle {
            size: [height, width],
            counts,
        }
    }

    /// This mask (of a window) placed at `(x0, y0)` in a `width × height` frame: the frame's
    /// RLE, built from the runs without a frame-sized buffer (what [`Rle::from_fn`] gives for the
    /// window's pixels shifted, zeros elsewhere).
    ///
    /// # Panics
    /// If the window does not fit the frame at `(x0, y0)`.
    pub fn placed(&self, width: u32, height: u32, x0: u32, y0: u32) -> Rle {
        let (ch, cw) = (self.size[0] as u64, self.size[1] as u64);
        let (fh, fw) = (height as u64, width as u64);
        assert!(
            x0 as u64 + cw <= fw && y0 as u64 + ch <= fh,
            "a {cw}x{ch} window at ({x0}, {y0}) does not fit a {width}x{height} frame"
        );
        let mut counts = Vec::new();
        // End of the last foreground interval written (frame index), and the value of the run
        // being extended.
        let mut end = 0u64;
        let mut open: Option<(u64, u64)> = None;
        let mut push =
            |s: u64, e: u64, counts: &mut Vec<u32>, open: &mut Option<(u64, u64)>| match open {
                Some((_, oe)) if *oe == s => *oe = e,
                _ => {
                    if let Some((os, oe)) = open.take() {
                        counts.push((os - end) as u32);
                        counts.push((oe - os) as u32);
                        end = oe;
                    }
                    *open = Some((s, e));
                }
            };
        let mut idx = 0u64;
        let mut on = false;
        for &c in &self.counts {
            let (mut s, e) = (idx, idx + c as u64);
            if on {
                // Split the window interval [s, e) at its columns.
                while s < e {
                    let (col, row) = (s / ch, s % ch);
                    let len = (ch - row).min(e - s);
                    let fs = (x0 as u64 + col) * fh + y0 as u64 + row;
                    push(fs, fs + len, &mut counts, &mut open);
                    s += len;
                }
            }
            idx = e;
            on = !on;
        }
        if let Some((os, oe)) = open {
            counts.push((os - end) as u32);
            counts.push((oe - os) as u32);
            end = oe;
        }
        // As from_fn: the last run is written only when it is not empty (or is the only one).
        if fw * fh > end || counts.is_empty() {
            counts.push((fw * fh - end) as u32);
        }
        Rle {
            size: [height, width],
            counts,
        }
    }

    /// Encodes a binary mask.
    pub fn from_mask(mask: &BinaryMask) -> Rle {
        Rle::from_fn(mask.width(), mask.height(), |x, y| mask.get(x, y))
    }

    pub fn width(&self) -> u32 {
        self.size[1]
    }
    pub fn height(&self) -> u32 {
        self.size[0]
    }

    /// Number of foreground pixels.
    pub fn area(&self) -> u64 {
        self.counts
            .iter()
            .skip(1)
            .step_by(2)
            .map(|&c| c as u64)
            .sum()
    }

    /// Decodes into a binary mask.
    pub fn to_mask(&self) -> BinaryMask {
        let (h, w) = (self.size[0] as usize, self.size[1] as usize);
        let mut m = BinaryMask::empty(w as u32, h as u32);
        let data = m.as_mut_slice();
        let mut idx = 0usize;
        let mut value = false;
        for &c in &self.counts {
            if value {
                for k in idx..(idx + c as usize).min(w * h) {
                    let (x, y) = (k / h, k % h);
                    data[y * w + x] = true;
                }
            }
            idx += c as usize;
            value = !value;
        }
        m
    }

    /// pycocotools' compressed string form (`rleToString`).
    pub fn to_coco(&self) -> CocoRle {
        let mut s = String::new();
        for (i, &c) in self.counts.iter().enumerate() {
            let mut x = c as i64;
            if i > 2 {
                x -= self.counts[i - 2] as i64;
            }
            loop {
                let mut ch = (x & 0x1f) as u8;
                x >>= 5;
                let more = if ch & 0x10 != 0 { x != -1 } else { x != 0 };
                if more {
                    ch |= 0x20;
                }
                s.push((ch + 48) as char);
                if !more {
                    break;
                }
            }
        }
        CocoRle {
            size: self.size,
            counts: s,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_major_runs_start_with_zeros() {
        // 2x2, only (x=1, y=0) set: column-major order is (0,0),(0,1),(1,0),(1,1).
        let m = BinaryMask::new(2, 2, vec![false, true, false, false]).unwrap();
        let r = Rle::from_mask(&m);
        assert_eq!(r.counts, vec![2, 1, 1]);
        assert_eq!(r.area(), 1);
        assert_eq!(r.to_mask(), m);
        let full = BinaryMask::new(2, 1, vec![true, true]).unwrap();
        assert_eq!(Rle::from_mask(&full).counts, vec![0, 2]);
    }

    #[test]
    fn row_major_encoding_equals_the_predicate_encoding() {
        let mut r = 12345u64;
        for (w, h) in [(1, 1), (7, 3), (33, 65), (696, 520), (100, 1)] {
            for density in [0.0, 0.02, 0.5, 1.0] {
                // Blocky masks (long runs) and scattered pixels.
                let mask: Vec<bool> = (0..w * h)
                    .map(|i| {
                        r = r.wrapping_mul(6364136223846793005).wrapping_add(1);
                        let blob = ((i % w) / 9 + (i / w) / 5) % 3 == 0;
                        let noise = ((r >> 40) as f64 / (1u64 << 24) as f64) < density;
                        if density == 1.0 {
                            true
                        } else {
                            blob ^ noise
                        }
                    })
                    .collect();
                let want =
                    Rle::from_fn(w as u32, h as u32, |x, y| mask[y as usize * w + x as usize]);
                assert_eq!(
                    Rle::from_row_major(w as u32, h as u32, &mask),
                    want,
                    "{w}x{h} {density}"
                );
            }
        }
        assert_eq!(Rle::from_row_major(3, 2, &[false; 6]).counts, vec![6]);
    }

    #[test]
    fn placed_equals_the_shifted_predicate_encoding() {
        let mut r = 99u64;
        for (cw, ch, fw, fh, x0, y0) in [
            (1, 1, 1, 1, 0, 0),
            (5, 4, 9, 7, 2, 3),
            (5, 7, 9, 7, 4, 0),
            (9, 7, 9, 7, 0, 0),
            (33, 20, 40, 90, 7, 70),
        ] {
            for density in [0.0, 0.3, 1.0] {
                let mask: Vec<bool> = (0..cw * ch)
                    .map(|_| {
                        r = r.wrapping_mul(6364136223846793005).wrapping_add(1);
                        ((r >> 40) as f64 / (1u64 << 24) as f64) < density
                    })
                    .collect();
                let window = Rle::from_row_major(cw as u32, ch as u32, &mask);
                let want = Rle::from_fn(fw, fh, |x, y| {
                    let (x, y) = (x as i64 - x0 as i64, y as i64 - y0 as i64);
                    (0..cw as i64).contains(&x)
                        && (0..ch as i64).contains(&y)
                        && mask[y as usize * cw + x as usize]
                });
                let got = window.placed(fw, fh, x0, y0);
                assert_eq!(
                    got, want,
                    "{cw}x{ch} at ({x0},{y0}) in {fw}x{fh}, {density}"
                );
                assert_eq!(got.area(), window.area());
            }
        }
    }

    #[test]
    fn coco_string_follows_rle_to_string() {
        // counts [4, 1, 4]: the third count is not differenced (only i > 2 is).
        let r = Rle {
            size: [3, 3],
            counts: vec![4, 1, 4],
        };
        assert_eq!(r.to_coco().counts, "414");
        // 100 → 'T','3'; 50 → 'b','1'; 20 → 'd','0' (bit 4 set needs a terminator);
        // 30 - 50 = -20 → '\\', 'O' (negative, sign-extended).
        let r = Rle {
            size: [100, 100],
            counts: vec![100, 50, 20, 30],
        };
        assert_eq!(r.to_coco().counts, "T3b1d0\\O");
    }
}
