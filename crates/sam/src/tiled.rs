//! Tiles for large images: SAM at the image's own scale, window by window.
//!
//! SAM sees an image resized so that its longer side is 1024 px. A 10,000-px SEM mosaic or a
//! whole-slide image shrinks ten times on the way in, and its cells or particles become a few
//! pixels that no mask finds. With tiles, the image is cut into square **cores** of `tile_px`
//! (evenly spaced, so no core is larger) and each core is seen by SAM inside a **window** that
//! adds `halo_px` of image on every side. Every window has the same side, `tile_px + 2·halo_px`
//! (1024 by default: SAM's input, so the image is seen at its own scale); windows at the image's
//! border are shifted inwards rather than clipped, so that every window is seen at the same
//! scale.
//!
//! How masks from the windows add up to one image's masks:
//!
//! - **Point grid** ([`crate::MaskGenerator::generate_tiled`]): each window gets the generator's
//!   point grid and filters, as one of the reference's crops does, including its rule that a mask
//!   whose box comes within 20 px of a window edge that is not the image's edge is dropped (it
//!   may be cut). A mask then belongs to the core that holds the centre of its box, and is kept
//!   only from that core's window; a box non-maximum suppression over all kept masks (at
//!   `box_nms_thresh`, as within one image) removes the duplicates that a centre on a core's edge
//!   can leave. An object is therefore never counted twice, and it is seen whole when it reaches
//!   less than `halo_px − 20` px beyond its core (108 px at the default halo); a larger object on
//!   a seam is lost (choose a larger halo).
//! - **Detector prompts** ([`crate::prompted::segment_tiled`]): the detector runs on the whole
//!   image; each prompt is decoded in the window of the core that holds its centre, or, when its
//!   box does not fit that window, in a window of its own centred on it (large enough for the box
//!   and a halo). One mask per prompt, then the filters and one non-maximum suppression over the
//!   image, as without tiles.
//!
//! The study's rules (masks of 25 % of the image or more are background; the count is the
//! image's) then apply to the image as a whole, as without tiles; a window's own background mask
//! reaches the window's inner edges and is dropped by the edge rule.

use crate::error::{Result, SamError};
use serde::{Deserialize, Serialize};

/// How SAM cuts images into windows, and which images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SamTiling {
    /// Images whose longer side is above this are tiled (0: every image larger than one
    /// window; `u32::MAX`: none).
    pub above_side: u32,
    /// Side of a core (px).
    pub tile_px: u32,
    /// Image added around each core (px).
    pub halo_px: u32,
}

impl SamTiling {
    /// The default: images with a side above 2048 px (which SAM would shrink more than twice)
    /// in 768-px cores with a 128-px halo: windows of 1024 px, SAM's input size.
    pub const AUTO: SamTiling = SamTiling {
        above_side: 2048,
        tile_px: 768,
        halo_px: 128,
    };
    /// Never tile: the whole image, resized to SAM's input.
    pub const OFF: SamTiling = SamTiling {
        above_side: u32::MAX,
        tile_px: 768,
        halo_px: 128,
    };

    /// The tiling `--tile` and `--halo` ask for: `auto` ([`SamTiling::AUTO`]), `off`, or a core
    /// side in px (every image larger than one window is tiled); `halo_px` replaces the default
    /// halo of 128 px.
    ///
    /// # Errors
    /// [`SamError::Invalid`] for a word that is none of these, a core under 16 px, or a halo
    /// that leaves less than nothing of the edge rule (under 21 px).
    pub fn parse(tile: &str, halo_px: Option<u32>) -> Result<SamTiling> {
        let base = match tile.trim() {
            "auto" => SamTiling::AUTO,
            "off" => SamTiling::OFF,
            n => {
                let px: u32 = n.parse().map_err(|_| {
                    SamError::Invalid(format!(
                        "tile {n:?}: give auto, off or a tile side in pixels"
                    ))
                })?;
                if px < 16 {
                    return Err(SamError::Invalid(format!(
                        "tile {px}: tiles are at least 16 px"
                    )));
                }
                SamTiling {
                    above_side: 0,
                    tile_px: px,
                    ..SamTiling::AUTO
                }
            }
        };
        let t = SamTiling {
            halo_px: halo_px.unwrap_or(base.halo_px),
            ..base
        };
        if t.halo_px <= EDGE_PX {
            return Err(SamError::Invalid(format!(
                "halo {} px: SAM's tiles need a halo above {EDGE_PX} px (masks within {EDGE_PX} px \
                 of a window's inner edge are dropped as possibly cut)",
                t.halo_px
            )));
        }
        Ok(t)
    }

    /// Side of every window (px).
    pub fn window_px(&self) -> u32 {
        self.tile_px.saturating_add(self.halo_px.saturating_mul(2))
    }

    /// Whether an image of `width × height` is tiled.
    pub fn applies(&self, width: u32, height: u32) -> bool {
        width.max(height) > self.above_side && width.max(height) > self.window_px()
    }

    /// The windows of an image this tiling applies to (see the module's documentation).
    pub fn layout(&self, width: u32, height: u32) -> TileLayout {
        TileLayout {
            width,
            height,
            xs: self.axis(width),
            ys: self.axis(height),
        }
    }

    /// Cores and windows along one axis of `len` px: `(core0, core1, window0, window1)`.
    fn axis(&self, len: u32) -> Vec<[u32; 4]> {
        if len <= self.window_px() {
            // One window holds the whole axis: one core.
            return vec![[0, len, 0, len]];
        }
        let n = len.div_ceil(self.tile_px.max(1)).max(1) as u64;
        let side = self.window_px().min(len);
        (0..n)
            .map(|i| {
                let c0 = (i * len as u64 / n) as u32;
                let c1 = ((i + 1) * len as u64 / n) as u32;
                let centre = (c0 + c1) / 2;
                let w0 = centre.saturating_sub(side / 2).min(len - side);
                [c0, c1, w0, w0 + side]
            })
            .collect()
    }
}

impl Default for SamTiling {
    fn default() -> Self {
        SamTiling::AUTO
    }
}

/// The reference's crop-edge tolerance (`is_box_near_crop_edge`, `atol=20`).
pub const EDGE_PX: u32 = 20;

/// One core and its window, `[x0, y0, x1, y1]` (end-exclusive) in the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tile {
    pub core: [u32; 4],
    pub window: [u32; 4],
}

/// The cores and windows of one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TileLayout {
    width: u32,
    height: u32,
    xs: Vec<[u32; 4]>,
    ys: Vec<[u32; 4]>,
}

impl TileLayout {
    /// Every tile, row by row.
    pub fn tiles(&self) -> Vec<Tile> {
        self.ys
            .iter()
            .flat_map(|y| {
                self.xs.iter().map(move |x| Tile {
                    core: [x[0], y[0], x[1], y[1]],
                    window: [x[2], y[2], x[3], y[3]],
                })
            })
            .collect()
    }

    /// Index (in [`TileLayout::tiles`]) of the tile whose core holds the point `(x, y)`
    /// (clamped to the image).
    pub fn owner(&self, x: f64, y: f64) -> usize {
        let find = |axis: &[[u32; 4]], v: f64, len: u32| {
            let v = if v.is_finite() {
                v.floor().clamp(0.0, len.saturating_sub(1) as f64) as u32
            } else {
                0
            };
            axis.iter().position(|a| v < a[1]).unwrap_or(axis.len() - 1)
        };
        find(&self.ys, y, self.height) * self.xs.len() + find(&self.xs, x, self.width)
    }

    /// Side of the windows along x and y.
    pub fn window_size(&self) -> (u32, u32) {
        (self.xs[0][3] - self.xs[0][2], self.ys[0][3] - self.ys[0][2])
    }

    /// A window of at least the tiles' size holding `[x0, y0, x1, y1]` with `halo` px around
    /// it where the image allows, centred on it and shifted inside the image.
    pub fn window_around(&self, b: [f32; 4], halo: u32) -> [u32; 4] {
        let (ww, wh) = self.window_size();
        let axis = |lo: f32, hi: f32, min_side: u32, len: u32| {
            let need = (hi - lo).max(0.0).ceil() as u32 + 2 * halo;
            let side = need.max(min_side).min(len);
            let centre = ((lo + hi) / 2.0).max(0.0) as u32;
            let s = centre.saturating_sub(side / 2).min(len - side);
            (s, s + side)
        };
        let (x0, x1) = axis(b[0], b[2], ww, self.width);
        let (y0, y1) = axis(b[1], b[3], wh, self.height);
        [x0, y0, x1, y1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::amg::{AmgConfig, AmgOutput, MaskGenerator, PointPredictor};
    use crate::mask_decoder::LOW_RES;
    use crate::model::{DecodeNeeds, Prediction};
    use crate::tiny_vit::INPUT_SIZE;
    use mica_core::Image;

    /// A stand-in for SAM that sees the image: a point on a bright object gets that object's
    /// mask (the disc with the object's centroid and area, as logits that fall off with the
    /// distance, so that masks survive resizing), a point on the background gets only a low
    /// predicted IoU. An object cut by the window's edge is seen cut.
    struct Blobs;

    impl PointPredictor for Blobs {
        type Embedding = (usize, usize, Vec<bool>);

        fn embed(&self, rgb8: &Image) -> crate::Result<Self::Embedding> {
            let mica_core::Pixels::U8(px) = rgb8.pixels() else {
                unreachable!("8-bit RGB")
            };
            let bright = px.chunks_exact(3).map(|p| p[0] > 128).collect();
            Ok((rgb8.width() as usize, rgb8.height() as usize, bright))
        }

        fn predict_points(
            &self,
            (w, h, bright): &Self::Embedding,
            points: &[[f64; 2]],
            _needs: DecodeNeeds,
        ) -> crate::Result<Vec<Prediction>> {
            let (w, h) = (*w, *h);
            let scale = INPUT_SIZE as f64 / w.max(h) as f64 / 4.0; // pixels → low-res
            Ok(points
                .iter()
                .map(|p| {
                    let (px, py) = ((p[0] as usize).min(w - 1), (p[1] as usize).min(h - 1));
                    if !bright[py * w + px] {
                        return Prediction {
                            low_res_logits: Vec::new(),
                            iou: vec![0.5; 3],
                        };
                    }
                    // The object's pixels (4-connected).
                    let (mut n, mut sx, mut sy) = (0f64, 0f64, 0f64);
                    let mut seen = vec![false; w * h];
                    let mut stack = vec![(px, py)];
                    seen[py * w + px] = true;
                    while let Some((x, y)) = stack.pop() {
                        n += 1.0;
                        sx += x as f64 + 0.5;
                        sy += y as f64 + 0.5;
                        let mut next = |x: usize, y: usize| {
                            if bright[y * w + x] && !seen[y * w + x] {
                                seen[y * w + x] = true;
                                stack.push((x, y));
                            }
                        };
                        if x > 0 {
                            next(x - 1, y);
                        }
                        if x + 1 < w {
                            next(x + 1, y);
                        }
                        if y > 0 {
                            next(x, y - 1);
                        }
                        if y + 1 < h {
                            next(x, y + 1);
                        }
                    }
                    let (cx, cy, r) = (sx / n, sy / n, (n / std::f64::consts::PI).sqrt());
                    let mut one = Vec::with_capacity(LOW_RES * LOW_RES);
                    for v in 0..LOW_RES {
                        for u in 0..LOW_RES {
                            let (x, y) = ((u as f64 + 0.5) / scale, (v as f64 + 0.5) / scale);
                            let d = ((x - cx).powi(2) + (y - cy).powi(2)).sqrt();
                            one.push(40.0 * ((r - d) * scale) as f32);
                        }
                    }
                    Prediction {
                        low_res_logits: [one.clone(), one.clone(), one].concat(),
                        iou: vec![0.9, 0.95, 0.99],
                    }
                })
                .collect())
        }
    }

    /// An RGB image with bright discs `(x, y, r)`.
    fn discs(w: u32, h: u32, discs: &[(f64, f64, f64)]) -> Image {
        let mut px = vec![0u8; (w * h * 3) as usize];
        for y in 0..h {
            for x in 0..w {
                let (fx, fy) = (x as f64 + 0.5, y as f64 + 0.5);
                if discs
                    .iter()
                    .any(|&(cx, cy, r)| (fx - cx).powi(2) + (fy - cy).powi(2) <= r * r)
                {
                    let i = ((y * w + x) * 3) as usize;
                    px[i..i + 3].fill(255);
                }
            }
        }
        Image::rgb8(w, h, px).unwrap()
    }

    /// For each disc, the masks that match it (IoU above 0.8), and the masks that match none.
    fn matches(out: &AmgOutput, discs: &[(f64, f64, f64)]) -> (Vec<usize>, usize) {
        let mut per_disc = vec![0; discs.len()];
        let mut unmatched = 0;
        for m in &out.masks {
            let mask = m.to_binary_mask();
            let best = discs.iter().position(|&(cx, cy, r)| {
                let (mut inter, mut union) = (0u64, 0u64);
                for y in 0..out.height {
                    for x in 0..out.width {
                        let (fx, fy) = (x as f64 + 0.5, y as f64 + 0.5);
                        let a = (fx - cx).powi(2) + (fy - cy).powi(2) <= r * r;
                        let b = mask.get(x, y);
                        inter += u64::from(a && b);
                        union += u64::from(a || b);
                    }
                }
                inter as f64 > 0.8 * union as f64
            });
            match best {
                Some(i) => per_disc[i] += 1,
                None => unmatched += 1,
            }
        }
        (per_disc, unmatched)
    }

    /// Discs spread over a 600 × 480 image, several of them across the seams of 150-px cores.
    fn scene() -> Vec<(f64, f64, f64)> {
        let mut v = Vec::new();
        let mut r = 7u64;
        let mut next = || {
            r = r
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (r >> 33) as f64 / (1u64 << 31) as f64
        };
        // On seams: x = 150, 300, 450 and y = 120, 240, 360 are core edges.
        for &(x, y) in &[(150.0, 60.0), (300.0, 240.0), (452.0, 118.0), (70.0, 362.0)] {
            v.push((x, y, 12.0));
        }
        while v.len() < 30 {
            let (x, y, rad) = (
                20.0 + 560.0 * next(),
                20.0 + 440.0 * next(),
                10.0 + 4.0 * next(),
            );
            if v.iter().all(|&(a, b, c): &(f64, f64, f64)| {
                ((a - x).powi(2) + (b - y).powi(2)).sqrt() > c + rad + 6.0
            }) {
                v.push((x, y, rad));
            }
        }
        v
    }

    fn generator(points: usize) -> MaskGenerator {
        MaskGenerator::new(AmgConfig {
            points_per_side: Some(points),
            ..AmgConfig::default()
        })
        .unwrap()
    }

    #[test]
    fn tiled_grid_finds_every_object_once_like_the_whole_image() {
        let truth = scene();
        let image = discs(600, 480, &truth);
        // The same prompt spacing (12.5 px) for the whole image and for the windows.
        let whole = generator(48).generate(&Blobs, &image).unwrap();
        let (per_disc, junk) = matches(&whole, &truth);
        assert!(
            per_disc.iter().all(|&n| n == 1) && junk == 0,
            "{per_disc:?} {junk}"
        );
        let tiling = SamTiling::parse("150", Some(50)).unwrap();
        let tiled = generator(20)
            .generate_tiled(&Blobs, &image, &tiling)
            .unwrap();
        assert_eq!(tiled.timings.windows, 16);
        let (per_disc, junk) = matches(&tiled, &truth);
        assert_eq!(junk, 0, "no cut or stray masks");
        assert!(
            per_disc.iter().all(|&n| n == 1),
            "every disc once, those on seams too: {per_disc:?}"
        );
        assert_eq!(tiled.masks.len(), whole.masks.len());
        // A window that is not the image's own keeps the crop box of its window.
        assert!(tiled
            .masks
            .iter()
            .all(|m| m.crop_box[2] == 250 && m.crop_box[3] == 250));
    }

    #[test]
    fn an_object_too_big_for_the_halo_on_a_seam_is_lost_not_cut_or_doubled() {
        // Radius 45 reaches 45 px past its core; the halo of 50 keeps only 30 clear of the
        // window's edge rule.
        let truth = vec![(300.0, 240.0, 45.0), (80.0, 80.0, 12.0)];
        let image = discs(600, 480, &truth);
        let tiling = SamTiling::parse("150", Some(50)).unwrap();
        let out = generator(20)
            .generate_tiled(&Blobs, &image, &tiling)
            .unwrap();
        let (per_disc, junk) = matches(&out, &truth);
        assert_eq!((per_disc, junk), (vec![0, 1], 0));
        // With a halo that holds it, it is found once.
        let tiling = SamTiling::parse("150", Some(80)).unwrap();
        let out = generator(20)
            .generate_tiled(&Blobs, &image, &tiling)
            .unwrap();
        assert_eq!(matches(&out, &truth), (vec![1, 1], 0));
    }

    #[test]
    fn crop_layers_and_tiles_are_refused_together() {
        let g = MaskGenerator::new(AmgConfig {
            crop_n_layers: 1,
            ..AmgConfig::default()
        })
        .unwrap();
        let e = g
            .generate_tiled(
                &Blobs,
                &discs(600, 480, &[]),
                &SamTiling::parse("150", None).unwrap(),
            )
            .unwrap_err()
            .to_string();
        assert!(e.contains("crop layers"), "{e}");
    }

    #[test]
    fn windows_have_one_size_and_hold_their_cores_with_the_halo() {
        let t = SamTiling::AUTO;
        assert!(!t.applies(2048, 2048) && t.applies(2049, 600) && !t.applies(600, 600));
        assert!(!SamTiling::OFF.applies(100_000, 100_000));
        for (w, h) in [(2500u32, 2100u32), (5000, 900), (1025, 3000), (4096, 4096)] {
            let l = t.layout(w, h);
            let tiles = l.tiles();
            let mut covered = vec![0u8; (w * h) as usize];
            for tile in &tiles {
                let [cx0, cy0, cx1, cy1] = tile.core;
                let [wx0, wy0, wx1, wy1] = tile.window;
                assert!(cx1 - cx0 <= t.tile_px || (cx0, cx1) == (0, w));
                assert!(cy1 - cy0 <= t.tile_px || (cy0, cy1) == (0, h));
                assert_eq!(
                    (wx1 - wx0, wy1 - wy0),
                    (1024.min(w), 1024.min(h)),
                    "{w}x{h}"
                );
                assert!(wx1 <= w && wy1 <= h);
                // Inner edges of the window keep the halo from the core.
                for (c, win, len) in [(cx0, wx0, 0), (cy0, wy0, 0), (cx1, wx1, w), (cy1, wy1, h)] {
                    if win != len && win != 0 {
                        assert!(c.abs_diff(win) >= t.halo_px, "{w}x{h} {tile:?}");
                    }
                }
                for y in cy0..cy1 {
                    for x in cx0..cx1 {
                        covered[(y * w + x) as usize] += 1;
                    }
                }
                let mid = ((cx0 + cx1) as f64 / 2.0, (cy0 + cy1) as f64 / 2.0);
                assert_eq!(tiles[l.owner(mid.0, mid.1)], *tile);
            }
            assert!(covered.iter().all(|&c| c == 1), "cores cover {w}x{h} once");
            assert_eq!(l.owner(-5.0, f64::NAN), 0);
            assert_eq!(l.owner(1e9, 1e9), tiles.len() - 1);
        }
    }

    #[test]
    fn a_window_around_a_large_box_holds_it() {
        let l = SamTiling::AUTO.layout(5000, 5000);
        assert_eq!(
            l.window_around([10.0, 10.0, 50.0, 50.0], 128),
            [0, 0, 1024, 1024]
        );
        let w = l.window_around([1000.0, 4000.0, 2500.0, 4990.0], 128);
        assert_eq!((w[2] - w[0], w[3] - w[1]), (1756, 1246));
        assert!(w[0] <= 1000 - 128 && w[2] >= 2500 + 128 && w[3] == 5000);
    }

    #[test]
    fn tiling_words_sides_and_halos() {
        assert_eq!(SamTiling::parse("auto", None).unwrap(), SamTiling::AUTO);
        assert_eq!(SamTiling::parse("off", None).unwrap(), SamTiling::OFF);
        let t = SamTiling::parse("348", Some(64)).unwrap();
        assert_eq!((t.above_side, t.tile_px, t.window_px()), (0, 348, 476));
        assert!(t.applies(696, 520) && !t.applies(476, 300));
        for (tile, halo) in [("big", None), ("8", None), ("512", Some(20))] {
            assert!(SamTiling::parse(tile, halo).is_err(), "{tile} {halo:?}");
        }
    }
}
