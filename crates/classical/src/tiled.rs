//! Tiles with a halo: the classical pipeline on images of any size in memory that grows with the
//! image only by the label image, with the whole image's objects.
//!
//! The image is cut into square cores of `tile_px`. Each core is segmented inside a window that
//! adds `halo_px` of image on every side (clipped at the image), so an object crossing the core's
//! edge is seen whole. Three rules make the tiles add up to the whole image:
//!
//! 1. **The same prepared values.** Background subtraction and smoothing reach a fixed distance
//!    (4 σ of a Gaussian, twice an opening's radius): a window is prepared from that much more
//!    image and then cropped, so its values are those of the whole image, bit for bit.
//! 2. **The same threshold and flooding levels.** Otsu, Li and triangle thresholds come from the
//!    histogram of the whole prepared image, counted tile by tile in a first pass; the tiles
//!    are given it (local and fixed thresholds need no such pass). Likewise the watershed
//!    quantises its surface over the range of the whole foreground, measured in a second pass,
//!    so that ties are broken as in the whole image.
//! 3. **Each object decided once, where it is whole.** Objects are grouped by their connected
//!    foreground region (a clump of touching cells is split by the watershed as one). A clump
//!    belongs to the core that holds its first pixel in raster order, and is taken from a window
//!    only when its bounding box keeps the decision margin to every window edge that is not the
//!    image's edge (the margin covers the local threshold's block and the marker search:
//!    smoothing, peak window and peak suppression). A clump too big for its window is decided
//!    again in windows twice as large, up to `max_window_px` a side; beyond that the image fails
//!    with a message that names the clump, rather than cutting it.
//!
//! `tests/tiling.rs` checks that tiled and whole-image labels are the same objects, pixel for
//! pixel, on the BBBC005 examples, the StarDist nuclei image and the SEM crops, for every preset.

use crate::error::{Error, Result};
use crate::pipeline::{Classical, ThresholdSource};
use crate::plane::Plane;
use crate::threshold::Histogram;
use mica_core::{Image, LabelImage};
use serde::{Deserialize, Serialize};

/// How images are cut into tiles, and which images are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tiling {
    /// Images with more pixels than this are tiled (0: every image larger than one tile;
    /// `u64::MAX`: none).
    pub above_px: u64,
    /// Side of a tile's core (px).
    pub tile_px: u32,
    /// Image added around each core (px); `None`: twice the settings' decision margin plus 64.
    pub halo_px: Option<u32>,
}

impl Tiling {
    /// The default: images above 4096 × 4096 px in 768-px tiles, automatic halo (the tile
    /// side keeps an 8000² 8-bit image under 8 bytes per pixel of peak memory, docs/study.md).
    pub const AUTO: Tiling = Tiling {
        above_px: 4096 * 4096,
        tile_px: 768,
        halo_px: None,
    };
    /// Never tile.
    pub const OFF: Tiling = Tiling {
        above_px: u64::MAX,
        tile_px: 768,
        halo_px: None,
    };

    /// The tiling `--tile` and `--halo` ask for: `auto` (the default: [`Tiling::AUTO`]), `off`
    /// (never), or a tile side in px (every image larger than one tile).
    ///
    /// # Errors
    /// A word that is none of these, or a side under 16 px.
    pub fn parse(tile: &str, halo_px: Option<u32>) -> std::result::Result<Tiling, String> {
        let base = match tile.trim() {
            "auto" => Tiling::AUTO,
            "off" => Tiling::OFF,
            n => {
                let px: u32 = n
                    .parse()
                    .map_err(|_| format!("tile {n:?}: give auto, off or a tile side in pixels"))?;
                if px < 16 {
                    return Err(format!("tile {px}: tiles are at least 16 px"));
                }
                Tiling {
                    above_px: 0,
                    tile_px: px,
                    halo_px: None,
                }
            }
        };
        Ok(Tiling { halo_px, ..base })
    }

    /// Whether an image of `width × height` is tiled.
    pub fn applies(&self, width: u32, height: u32) -> bool {
        let px = width as u64 * height as u64;
        px > self.above_px && (width > self.tile_px || height > self.tile_px)
    }
}

impl Default for Tiling {
    fn default() -> Self {
        Tiling::AUTO
    }
}

/// The result of a tiled run.
#[derive(Debug, Clone)]
pub struct TiledRun {
    /// The instances, numbered 1..=N in the order they were decided.
    pub labels: LabelImage,
    /// The global threshold given to every tile (`None`: local or fixed threshold, or no
    /// contrast).
    pub threshold: Option<f32>,
    /// Tiles (cores) the image was cut into.
    pub tiles: usize,
    /// Clumps too big for their first window, decided again in a larger one.
    pub regrown: usize,
    /// The halo used (px).
    pub halo_px: u32,
}

/// A rectangle of pixels, `x0..x1 × y0..y1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rect {
    x0: u32,
    y0: u32,
    x1: u32,
    y1: u32,
}

impl Rect {
    fn grow(self, by: u32, w: u32, h: u32) -> Rect {
        Rect {
            x0: self.x0.saturating_sub(by),
            y0: self.y0.saturating_sub(by),
            x1: (self.x1.saturating_add(by)).min(w),
            y1: (self.y1.saturating_add(by)).min(h),
        }
    }
    fn width(&self) -> u32 {
        self.x1 - self.x0
    }
    fn height(&self) -> u32 {
        self.y1 - self.y0
    }
    fn contains(&self, x: u32, y: u32) -> bool {
        (self.x0..self.x1).contains(&x) && (self.y0..self.y1).contains(&y)
    }
}

/// The part `inner` of a plane that covers `outer`.
fn crop(p: &Plane, outer: Rect, inner: Rect) -> Plane {
    let (dx, dy) = (
        (inner.x0 - outer.x0) as usize,
        (inner.y0 - outer.y0) as usize,
    );
    let (w, h) = (inner.width() as usize, inner.height() as usize);
    let mut data = Vec::with_capacity(w * h);
    for y in 0..h {
        let row = (dy + y) * p.width + dx;
        data.extend_from_slice(&p.data[row..row + w]);
    }
    Plane {
        width: w,
        height: h,
        data,
    }
}

/// The intensity of `r` of `image`, refused when it holds NaN or infinite values.
fn window_plane(image: &Image, r: Rect) -> Result<Plane> {
    Plane::from_intensities(
        r.width() as usize,
        r.height() as usize,
        image.intensity_f32_rect(r.x0, r.y0, r.width(), r.height()),
    )
}

/// The cores of a `w × h` image in raster order.
fn cores(w: u32, h: u32, tile: u32) -> Vec<Rect> {
    let mut out = Vec::new();
    for y0 in (0..h).step_by(tile as usize) {
        for x0 in (0..w).step_by(tile as usize) {
            out.push(Rect {
                x0,
                y0,
                x1: (x0 + tile).min(w),
                y1: (y0 + tile).min(h),
            });
        }
    }
    out
}

/// Reserves `n` zeroed values, failing with a message instead of aborting the process.
fn zeroed<T: Clone + Default>(n: usize, what: &'static str) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| Error::Memory {
        what,
        mb: (n * std::mem::size_of::<T>()) >> 20,
    })?;
    v.resize(n, T::default());
    Ok(v)
}

/// What one window decided.
enum Decided {
    /// The clump was taken.
    Taken,
    /// The clump reaches too close to an inner edge of the window: its first pixel.
    TooBig((u32, u32)),
}

/// Where a window's decided clumps go.
enum Sink<'a> {
    /// Widen these ranges (one per watershed) by the flooding surfaces' values on them.
    Range(&'a mut [(f32, f32)]),
    /// Number their instances from `next` into the label image.
    Labels {
        labels: &'a mut [u32],
        next: &'a mut u32,
    },
}

struct Ctx<'a> {
    image: &'a Image,
    hi: f32,
    threshold: Option<f32>,
    flood_ranges: Vec<(f32, f32)>,
    support: u32,
    margin: u32,
    w: u32,
    h: u32,
}

impl Classical {
    /// Segments `image` tile by tile (see the [module](crate::tiled) documentation); the
    /// instances are those of [`Classical::segment_image`] on the whole image.
    ///
    /// # Errors
    /// [`Error::Tiling`] for a tile under 16 px, a halo under the decision margin or a clump
    /// larger than the largest window; [`Error::Memory`] when the label image cannot be had;
    /// [`Error::NonFinite`] for NaN or infinite values.
    pub fn segment_tiled(&self, image: &Image, tiling: Tiling) -> Result<TiledRun> {
        let (w, h) = (image.width(), image.height());
        if tiling.tile_px < 16 {
            return Err(Error::Tiling(format!(
                "tile of {} px: tiles are at least 16 px",
                tiling.tile_px
            )));
        }
        let margin = self.decision_margin_px() as u32;
        let halo = tiling.halo_px.unwrap_or(2 * margin + 64);
        if halo < margin {
            return Err(Error::Tiling(format!(
                "a halo of {halo} px is less than the {margin} px these settings look around an object (marker search, local threshold): give --halo {margin} or more"
            )));
        }
        let support = self.prepare_support_px() as u32;
        let cores = cores(w, h, tiling.tile_px);

        // Pass 0: the largest intensity (dark polarity inverts against it) and finite values.
        let mut hi = f32::NEG_INFINITY;
        for &c in &cores {
            let p = window_plane(image, c)?;
            hi = p.data.iter().fold(hi, |m, &v| m.max(v));
        }

        // Pass 1: the histogram of the whole prepared image, for a global threshold: its range,
        // then its counts, tile by tile (nothing the size of the image is kept).
        let threshold = if self.threshold_is_global() {
            let prepared_core = |c: Rect| -> Result<Plane> {
                let r = c.grow(support, w, h);
                let (_, prepared) = self.prepare(window_plane(image, r)?, hi);
                Ok(crop(&prepared, r, c))
            };
            let (mut lo, mut top) = (f32::INFINITY, f32::NEG_INFINITY);
            for &c in &cores {
                for &v in &prepared_core(c)?.data {
                    lo = lo.min(v);
                    top = top.max(v);
                }
            }
            if lo < top {
                let mut counts = vec![0u64; self.histogram_bins()];
                for &c in &cores {
                    Histogram::accumulate(&prepared_core(c)?.data, lo, top, &mut counts);
                }
                let hist = Histogram {
                    lo,
                    hi: top,
                    counts,
                };
                // An adaptive threshold looks at the peaks of the objects above Li's level:
                // each core gives those whose first pixel it holds, seen in its window.
                let mut failed = None;
                let (level, _) = self.threshold_of(&hist, |level| {
                    let mut peaks = Vec::new();
                    for &c in &cores {
                        let win = c.grow(halo, w, h);
                        let r = win.grow(support, w, h);
                        let prepared = match window_plane(image, r) {
                            Ok(p) => crop(&self.prepare(p, hi).1, r, win),
                            Err(e) => {
                                failed = Some(e);
                                break;
                            }
                        };
                        let ww = win.width() as usize;
                        peaks.extend(
                            self.object_peaks(&prepared, level)
                                .into_iter()
                                .filter(|&(_, i)| {
                                    c.contains(win.x0 + (i % ww) as u32, win.y0 + (i / ww) as u32)
                                })
                                .map(|(peak, _)| peak),
                        );
                    }
                    peaks
                });
                if let Some(e) = failed {
                    return Err(e);
                }
                Some(level)
            } else {
                None
            }
        } else {
            None
        };

        // Pass 2: the range of the watershed's surface over the whole foreground, so that every
        // window quantises it as the whole image does (ties are broken the same way).
        let mut ctx = Ctx {
            image,
            hi,
            threshold,
            flood_ranges: Vec::new(),
            support,
            margin,
            w,
            h,
        };
        let max_window = tiling.tile_px.saturating_mul(4).max(4096);
        let watersheds = self.settings().split.watersheds().len();
        if watersheds > 0 {
            let mut ranges = vec![(f32::INFINITY, f32::NEG_INFINITY); watersheds];
            self.sweep(
                &ctx,
                &cores,
                halo,
                max_window,
                &mut Sink::Range(&mut ranges),
            )?;
            ctx.flood_ranges = ranges;
        }

        // Pass 3: each core's clumps, decided in its window.
        let mut labels: Vec<u32> = zeroed(w as usize * h as usize, "label image")?;
        let mut next = 0u32;
        let regrown = self.sweep(
            &ctx,
            &cores,
            halo,
            max_window,
            &mut Sink::Labels {
                labels: &mut labels,
                next: &mut next,
            },
        )?;
        let labels = LabelImage::new(w, h, labels).expect("sized to the image");
        Ok(TiledRun {
            labels,
            threshold,
            tiles: cores.len(),
            regrown,
            halo_px: halo,
        })
    }

    /// Decides every core's clumps in its window, regrowing windows for clumps too big for
    /// them. Returns how many clumps were regrown.
    fn sweep(
        &self,
        ctx: &Ctx,
        cores: &[Rect],
        halo: u32,
        max_window: u32,
        sink: &mut Sink,
    ) -> Result<usize> {
        let (w, h) = (ctx.w, ctx.h);
        let mut regrown = 0;
        for &c in cores {
            let win = c.grow(halo, w, h);
            let pending = self.decide(ctx, win, Owner::Core(c), sink)?;
            for first in pending {
                regrown += 1;
                let mut win = win;
                loop {
                    let side = win.width().max(win.height());
                    let grown = win.grow(side / 2 + halo, w, h);
                    if grown.width().max(grown.height()) > max_window
                        && (grown.width() < w || grown.height() < h)
                    {
                        return Err(Error::Tiling(format!(
                            "an object (its first pixel at x={}, y={}) reaches more than {max_window} px: too large to be cut into tiles of {} px; give a larger --tile, or --tile off",
                            first.0, first.1, c.width().max(c.height())
                        )));
                    }
                    win = grown;
                    if self.decide(ctx, win, Owner::First(first), sink)?.is_empty() {
                        break;
                    }
                }
            }
        }
        Ok(regrown)
    }

    /// Segments window `win` and gives the clumps `owner` takes to `sink`. Returns the first
    /// pixels of owned clumps too big for the window.
    fn decide(
        &self,
        ctx: &Ctx,
        win: Rect,
        owner: Owner,
        sink: &mut Sink,
    ) -> Result<Vec<(u32, u32)>> {
        let r = win.grow(ctx.support, ctx.w, ctx.h);
        let (p, prepared) = self.prepare(window_plane(ctx.image, r)?, ctx.hi);
        let (p, prepared) = (crop(&p, r, win), crop(&prepared, r, win));
        let measuring = matches!(sink, Sink::Range(_));
        let stages = self.finish(
            p,
            prepared,
            ThresholdSource::Given(ctx.threshold),
            &ctx.flood_ranges,
            measuring,
        )?;
        let clumps = stages
            .foreground
            .connected_components(self.settings().connectivity);
        let (ww, wh) = (win.width() as usize, win.height() as usize);
        let n = clumps.max_label() as usize;
        // First pixel (raster order) and bounding box of each clump, in window coordinates.
        let mut first = vec![usize::MAX; n + 1];
        let mut bbox = vec![(u32::MAX, u32::MAX, 0u32, 0u32); n + 1];
        for (i, &c) in clumps.as_slice().iter().enumerate() {
            if c == 0 {
                continue;
            }
            let c = c as usize;
            if first[c] == usize::MAX {
                first[c] = i;
            }
            let (x, y) = ((i % ww) as u32, (i / ww) as u32);
            let b = &mut bbox[c];
            *b = (b.0.min(x), b.1.min(y), b.2.max(x), b.3.max(y));
        }
        let m = ctx.margin;
        let mut decided: Vec<Option<Decided>> = Vec::with_capacity(n + 1);
        decided.push(None);
        for c in 1..=n {
            let f = first[c];
            let g = (win.x0 + (f % ww) as u32, win.y0 + (f / ww) as u32);
            let owned = match owner {
                Owner::Core(core) => core.contains(g.0, g.1),
                Owner::First(p) => p == g,
            };
            if !owned {
                decided.push(None);
                continue;
            }
            let (x0, y0, x1, y1) = bbox[c];
            let fits = (win.x0 == 0 || x0 >= m)
                && (win.y0 == 0 || y0 >= m)
                && (win.x1 == ctx.w || (ww as u32 - 1 - x1) >= m)
                && (win.y1 == ctx.h || (wh as u32 - 1 - y1) >= m);
            decided.push(Some(if fits {
                Decided::Taken
            } else {
                Decided::TooBig(g)
            }));
        }
        let taken = |c: u32| c != 0 && matches!(decided[c as usize], Some(Decided::Taken));
        match sink {
            Sink::Range(ranges) => {
                for (range, surface) in ranges.iter_mut().zip(&stages.flood_surfaces) {
                    for (i, &c) in clumps.as_slice().iter().enumerate() {
                        let v = surface.data[i];
                        if taken(c) && v.is_finite() {
                            range.0 = range.0.min(v);
                            range.1 = range.1.max(v);
                        }
                    }
                }
            }
            Sink::Labels { labels, next } => {
                let inst = stages.labels.as_slice();
                let mut id = vec![0u32; stages.labels.max_label() as usize + 1];
                for (i, &c) in clumps.as_slice().iter().enumerate() {
                    let l = inst[i] as usize;
                    if l == 0 || !taken(c) {
                        continue;
                    }
                    if id[l] == 0 {
                        **next += 1;
                        id[l] = **next;
                    }
                    let g = (win.y0 as usize + i / ww) * ctx.w as usize + win.x0 as usize + i % ww;
                    debug_assert_eq!(labels[g], 0, "a pixel decided twice");
                    labels[g] = id[l];
                }
            }
        }
        Ok(decided
            .into_iter()
            .filter_map(|d| match d {
                Some(Decided::TooBig(g)) => Some(g),
                _ => None,
            })
            .collect())
    }
}

/// Which clumps a window decides.
#[derive(Clone, Copy)]
enum Owner {
    /// Those whose first pixel lies in this core.
    Core(Rect),
    /// The one whose first pixel is this one (a clump decided again in a larger window).
    First((u32, u32)),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Preset, Settings};

    /// Blobs of a few sizes, some touching, on a smooth background gradient.
    fn blobs(w: u32, h: u32) -> Image {
        blobs_of(w, h, |_| 180.0)
    }

    /// [`blobs`] with blob `k` at brightness `level(k)`.
    fn blobs_of(w: u32, h: u32, level: impl Fn(usize) -> f32) -> Image {
        let centres: Vec<(f32, f32, f32)> = (0..60)
            .map(|k| {
                let k = k as f32;
                (
                    (k * 37.3) % w as f32,
                    (k * 53.7 + 11.0) % h as f32,
                    4.0 + (k * 1.7) % 9.0,
                )
            })
            .collect();
        let data = (0..w * h)
            .map(|i| {
                let (x, y) = ((i % w) as f32, (i / w) as f32);
                let inside = centres
                    .iter()
                    .position(|&(cx, cy, r)| (x - cx).powi(2) + (y - cy).powi(2) <= r * r);
                let bg = 10.0 + 20.0 * x / w as f32;
                inside.map_or(bg, &level) as u8
            })
            .collect();
        Image::gray8(w, h, data).unwrap()
    }

    /// Labels as sets of pixels, independent of numbering: each pixel's label replaced by the
    /// index of the label's first pixel.
    fn objects(l: &LabelImage) -> Vec<usize> {
        let mut first = std::collections::HashMap::new();
        l.as_slice()
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                if v == 0 {
                    usize::MAX
                } else {
                    *first.entry(v).or_insert(i)
                }
            })
            .collect()
    }

    fn assert_same_objects(a: &LabelImage, b: &LabelImage, what: &str) {
        let (oa, ob) = (objects(a), objects(b));
        let w = a.width() as usize;
        let diff: Vec<(usize, usize)> = (0..oa.len())
            .filter(|&i| oa[i] != ob[i])
            .map(|i| (i % w, i / w))
            .collect();
        assert!(
            diff.is_empty(),
            "{what}: {} pixels differ, first at {:?}",
            diff.len(),
            &diff[..diff.len().min(5)]
        );
    }

    #[test]
    fn tiles_give_the_whole_image_objects_for_every_preset() {
        let image = blobs(300, 220);
        for preset in Preset::ALL {
            let c = Classical::preset(preset).unwrap();
            let whole = c.segment_image(&image).unwrap();
            for tile in [16, 50, 128] {
                let t = Tiling {
                    above_px: 0,
                    tile_px: tile,
                    halo_px: None,
                };
                let tiled = c.segment_tiled(&image, t).unwrap();
                assert_eq!(
                    tiled.labels.num_objects(),
                    whole.count,
                    "{preset:?} tile {tile}"
                );
                assert_same_objects(
                    &tiled.labels,
                    &whole.labels,
                    &format!("{preset:?} tile {tile}"),
                );
            }
        }
    }

    #[test]
    fn the_adaptive_threshold_is_the_whole_images_in_tiles() {
        let c = Classical::preset(Preset::Auto).unwrap();
        let li = Classical::new(
            Settings {
                threshold: crate::Threshold::Li,
                ..c.settings().clone()
            },
            "li",
        )
        .unwrap();
        // Every third blob dim: Li's level; all equally bright: Otsu's. (Spread out so that
        // few blobs merge.)
        for (image, dim) in [
            (
                blobs_of(600, 440, |k| if k % 3 == 0 { 110.0 } else { 250.0 }),
                true,
            ),
            (blobs(600, 440), false),
        ] {
            let whole = c.run(&image).unwrap();
            let want = if dim {
                &li
            } else {
                &Classical::preset(Preset::FluorescenceNuclei).unwrap()
            };
            assert_eq!(
                whole.threshold,
                want.run(&image).unwrap().threshold,
                "dim {dim}"
            );
            for tile in [50, 128] {
                let t = Tiling {
                    above_px: 0,
                    tile_px: tile,
                    halo_px: None,
                };
                let tiled = c.segment_tiled(&image, t).unwrap();
                assert_eq!(tiled.threshold, whole.threshold, "dim {dim} tile {tile}");
                assert_same_objects(
                    &tiled.labels,
                    &whole.labels,
                    &format!("dim {dim} tile {tile}"),
                );
            }
        }
    }

    #[test]
    fn a_halo_under_the_margin_and_a_tiny_tile_are_refused() {
        let c = Classical::preset(Preset::FluorescenceNuclei).unwrap();
        let image = blobs(100, 100);
        let e = c
            .segment_tiled(
                &image,
                Tiling {
                    above_px: 0,
                    tile_px: 32,
                    halo_px: Some(1),
                },
            )
            .unwrap_err()
            .to_string();
        assert!(e.contains("halo of 1 px"), "{e}");
        let e = c
            .segment_tiled(
                &image,
                Tiling {
                    above_px: 0,
                    tile_px: 8,
                    halo_px: None,
                },
            )
            .unwrap_err()
            .to_string();
        assert!(e.contains("at least 16 px"), "{e}");
    }

    #[test]
    fn a_clump_wider_than_its_window_is_decided_in_a_larger_one() {
        // One long bar across the image: never whole in a 16-px tile's window.
        let (w, h) = (400u32, 60u32);
        let data = (0..w * h)
            .map(|i| if (20..30).contains(&(i / w)) { 200 } else { 5 })
            .collect();
        let image = Image::gray8(w, h, data).unwrap();
        let c = Classical::preset(Preset::Textbook).unwrap();
        let whole = c.segment_image(&image).unwrap();
        let tiled = c
            .segment_tiled(
                &image,
                Tiling {
                    above_px: 0,
                    tile_px: 16,
                    halo_px: Some(c.decision_margin_px() as u32),
                },
            )
            .unwrap();
        assert!(tiled.regrown >= 1);
        assert_same_objects(&tiled.labels, &whole.labels, "bar");
    }

    #[test]
    fn tile_words_and_sides_parse() {
        assert_eq!(Tiling::parse("auto", None).unwrap(), Tiling::AUTO);
        assert_eq!(Tiling::parse("off", None).unwrap(), Tiling::OFF);
        let t = Tiling::parse("512", Some(40)).unwrap();
        assert_eq!((t.above_px, t.tile_px, t.halo_px), (0, 512, Some(40)));
        assert!(Tiling::parse("8", None)
            .unwrap_err()
            .contains("at least 16"));
        assert!(Tiling::parse("big", None)
            .unwrap_err()
            .contains("auto, off"));
    }

    #[test]
    fn auto_tiles_only_large_images() {
        assert!(!Tiling::AUTO.applies(4096, 4096));
        assert!(Tiling::AUTO.applies(4097, 4096));
        assert!(!Tiling::OFF.applies(100_000, 100_000));
        let every = Tiling {
            above_px: 0,
            tile_px: 64,
            halo_px: None,
        };
        assert!(every.applies(65, 10) && !every.applies(64, 64));
    }
}
