//! The classical pipeline: [`Classical`] runs [`Settings`] on an image.

use crate::distance::distance_transform;
use crate::error::Result;
use crate::filter::{gaussian, gaussian_radius, opening, recycle, subtract_clipped};
use crate::morphology::{fill_holes, fill_holes_up_to};
use crate::peaks::{label_unreached_owned, markers_at, peak_local_max};
use crate::plane::Plane;
use crate::scratch;
use crate::settings::{
    Background, Flood, Markers, Polarity, Preset, Settings, Split, Threshold, Watershed,
};
use crate::threshold::{
    above, brightness_spreads, li, local_mean, median_below, otsu, triangle, Histogram,
};
use crate::tiled::Tiling;
use mica_core::{BinaryMask, Image, LabelImage, Segmentation};

/// Where [`Classical::finish`] takes a global threshold from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ThresholdSource {
    /// From the histogram of the plane it is given (the whole image).
    Own,
    /// Computed beforehand on the whole image (`None`: the image has no contrast).
    Given(Option<f32>),
}

/// The classical segmenter: validated [`Settings`] and a name for tables.
#[derive(Debug, Clone)]
pub struct Classical {
    settings: Settings,
    name: String,
    tiling: Tiling,
}

/// The intermediate results of one run, for inspection and overlays.
#[derive(Debug, Clone)]
pub struct Stages {
    /// The intensity after polarity, background subtraction and smoothing.
    pub prepared: Plane,
    /// The threshold used (global methods), in the units of `prepared`; `None` for local
    /// thresholds and for images without contrast.
    pub threshold: Option<f32>,
    /// The foreground after hole filling and small-object removal.
    pub foreground: BinaryMask,
    /// The instances, numbered 1..=N.
    pub labels: LabelImage,
    /// Which rule gave the threshold (`"otsu"`, `"li"`, `"triangle"`, `"auto: otsu"`, `"auto: li"`,
    /// `"local"`, `"fixed"`, `"given"` for a tile); `None` without contrast.
    pub threshold_rule: Option<&'static str>,
    /// Milliseconds per stage.
    pub timings: StageTimes,
    /// The surfaces the watersheds flooded (negated distance or intensity), one per watershed
    /// of the split ([`Split::watersheds`]), when asked for.
    pub flood_surfaces: Vec<Plane>,
}

/// Milliseconds spent in each stage of one run.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StageTimes {
    /// Polarity, background subtraction, smoothing.
    pub prepare_ms: f64,
    /// The threshold (for `auto`: its choice too) and the foreground.
    pub threshold_ms: f64,
    /// Hole filling and small-object removal.
    pub cleanup_ms: f64,
    /// Markers and watershed(s).
    pub split_ms: f64,
    /// The instance size filter and renumbering.
    pub filter_ms: f64,
}

fn ms_since(t: std::time::Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

impl Classical {
    /// A segmenter with `settings`, named `classical:<name>`.
    ///
    /// # Errors
    /// [`crate::Error::Setting`] when a setting is out of range.
    pub fn new(settings: Settings, name: &str) -> Result<Self> {
        settings.validate()?;
        Ok(Classical {
            settings,
            name: format!("classical:{name}"),
            tiling: Tiling::AUTO,
        })
    }

    /// The same segmenter cutting images into tiles as `tiling` says ([`Tiling::AUTO`] unless
    /// set).
    pub fn with_tiling(mut self, tiling: Tiling) -> Self {
        self.tiling = tiling;
        self
    }

    pub fn tiling(&self) -> Tiling {
        self.tiling
    }

    /// The segmenter of a named preset.
    ///
    /// # Errors
    /// As [`Preset::settings`].
    pub fn preset(preset: Preset) -> Result<Self> {
        Classical::new(preset.settings()?, preset.name())
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Runs every stage on `image` (gray or RGB, any bit depth). An image without contrast
    /// (constant) gives an empty foreground and no objects.
    ///
    /// # Errors
    /// [`crate::Error::NonFinite`] when the image holds NaN or infinite values.
    pub fn run(&self, image: &Image) -> Result<Stages> {
        let t = std::time::Instant::now();
        let p = Plane::from_image(image)?;
        let (_, hi) = p.min_max();
        let (p, prepared) = self.prepare(p, hi);
        let prepare_ms = ms_since(t);
        let mut stages = self.finish(p, prepared, ThresholdSource::Own, &[], false)?;
        stages.timings.prepare_ms = prepare_ms;
        Ok(stages)
    }

    /// Polarity, background subtraction and smoothing of `p`: returns the plane after background
    /// subtraction (intensity markers are found on it) and the prepared plane. `hi` is the
    /// largest intensity of the whole image, which dark polarity inverts against (for a tile,
    /// the whole image's, not the tile's).
    pub(crate) fn prepare(&self, mut p: Plane, hi: f32) -> (Plane, Plane) {
        let s = &self.settings;
        if s.polarity == Polarity::Dark {
            p.data.iter_mut().for_each(|v| *v = hi - *v);
        }
        // Buffers no longer needed go back to this thread's pool (`recycle`), see `scratch`.
        let background = match s.background {
            Background::None => None,
            Background::Gaussian { sigma_px } => Some(gaussian(&p, sigma_px)),
            Background::Opening { radius_px } => Some(opening(&p, radius_px)),
        };
        if let Some(bg) = background {
            let fg = subtract_clipped(&p, &bg);
            recycle(bg);
            recycle(std::mem::replace(&mut p, fg));
        }
        let prepared = gaussian(&p, s.smoothing_sigma_px);
        (p, prepared)
    }

    /// How far (px) a pixel of the prepared plane depends on the image around it: the supports
    /// of the background filter and of the smoothing. A tile computed with this much image
    /// around it has the prepared values of the whole image.
    pub(crate) fn prepare_support_px(&self) -> usize {
        let s = &self.settings;
        let background = match s.background {
            Background::None => 0,
            Background::Gaussian { sigma_px } => gaussian_radius(sigma_px),
            // Erosion then dilation: each reaches `radius` further.
            Background::Opening { radius_px } => 2 * radius_px,
        };
        let smoothing = if s.smoothing_sigma_px > 0.0 {
            gaussian_radius(s.smoothing_sigma_px)
        } else {
            0
        };
        background + smoothing
    }

    /// How far (px) the stages after the prepared plane look around an object: the local
    /// threshold's block, the marker surface's smoothing, the peaks' window and their
    /// suppression. An object whose bounding box has this margin inside a tile is decided there
    /// as in the whole image.
    pub(crate) fn decision_margin_px(&self) -> usize {
        let s = &self.settings;
        let local = match s.threshold {
            Threshold::Local { block_size_px, .. } => block_size_px / 2 + 1,
            _ => 0,
        };
        let markers = s
            .split
            .watersheds()
            .iter()
            .map(|ws| match ws.markers {
                Markers::DistancePeaks {
                    min_distance_px,
                    smoothing_sigma_px,
                    ..
                } => gaussian_radius(smoothing_sigma_px) + 2 * min_distance_px + 1,
                Markers::IntensityPeaks {
                    sigma_px,
                    min_distance_px,
                } => gaussian_radius(sigma_px) + 2 * min_distance_px + 1,
            })
            .max()
            .unwrap_or(0);
        local + markers + 2
    }

    /// Whether the threshold is computed from the histogram of the whole prepared image (Otsu,
    /// Li, triangle), so that tiles must be given it.
    pub(crate) fn threshold_is_global(&self) -> bool {
        !matches!(
            self.settings.threshold,
            Threshold::Local { .. } | Threshold::Fixed { .. }
        )
    }

    /// The global threshold of a prepared plane (`None`: no contrast).
    pub(crate) fn global_threshold(&self, prepared: &Plane) -> Option<(f32, &'static str)> {
        let hist = Histogram::of(&prepared.data, self.settings.histogram_bins)?;
        Some(self.threshold_of(&hist, |level| {
            self.object_peaks(prepared, level)
                .into_iter()
                .map(|(peak, _)| peak)
                .collect()
        }))
    }

    /// The global threshold of a histogram of the prepared image, and the rule that gave it.
    /// `peaks_above(level)`: the peak values of the objects above `level` (only
    /// [`Threshold::Auto`] asks).
    pub(crate) fn threshold_of(
        &self,
        hist: &Histogram,
        peaks_above: impl FnOnce(f32) -> Vec<f32>,
    ) -> (f32, &'static str) {
        match self.settings.threshold {
            Threshold::Li => (li(hist), "li"),
            Threshold::Triangle => (triangle(hist), "triangle"),
            Threshold::Auto { dim_ratio } => {
                let low = li(hist);
                let background = median_below(hist, low);
                let mut peaks = peaks_above(low);
                if brightness_spreads(&mut peaks, background, dim_ratio) {
                    (low, "auto: li")
                } else {
                    (otsu(hist), "auto: otsu")
                }
            }
            _ => (otsu(hist), "otsu"),
        }
    }

    /// The peak value and first pixel (raster index) of every connected component of
    /// `prepared > level` of at least `min_object_area_px` pixels, in raster order of their
    /// first pixels. Only these three numbers are needed, so no label image is made: the
    /// components are found over runs of foreground pixels (union-find of the runs that touch
    /// in consecutive rows), about 4× faster than labelling every pixel.
    pub(crate) fn object_peaks(&self, prepared: &Plane, level: f32) -> Vec<(f32, usize)> {
        run_component_peaks(prepared, level, self.settings.connectivity)
            .into_iter()
            .filter(|c| c.area >= self.settings.min_object_area_px.max(1))
            .map(|c| (c.peak, c.first))
            .collect()
    }

    pub(crate) fn histogram_bins(&self) -> usize {
        self.settings.histogram_bins.max(2)
    }

    /// The stages after preparation: threshold, hole filling, small-object removal, splitting,
    /// the instance size filter.
    ///
    /// `flood_ranges`: the ranges each watershed's levels are spread over, one per watershed of
    /// the split (empty: each surface's own range inside the foreground). `keep_surface`:
    /// return the flooding surfaces in [`Stages::flood_surfaces`].
    pub(crate) fn finish(
        &self,
        p: Plane,
        prepared: Plane,
        source: ThresholdSource,
        flood_ranges: &[(f32, f32)],
        keep_surface: bool,
    ) -> Result<Stages> {
        let s = &self.settings;
        let mut timings = StageTimes::default();
        let t = std::time::Instant::now();
        let (w, h) = (prepared.width as u32, prepared.height as u32);
        let (threshold, rule, fg) = match (s.threshold, source) {
            (
                Threshold::Local {
                    block_size_px,
                    offset,
                },
                _,
            ) => (
                None,
                Some("local"),
                local_mean(&prepared, block_size_px, offset),
            ),
            (Threshold::Fixed { value }, _) => {
                (Some(value), Some("fixed"), above(&prepared, value))
            }
            (_, ThresholdSource::Given(None)) => (None, None, BinaryMask::empty(w, h)),
            (_, ThresholdSource::Given(Some(t))) => (Some(t), Some("given"), above(&prepared, t)),
            (_, ThresholdSource::Own) => match self.global_threshold(&prepared) {
                None => (None, None, BinaryMask::empty(w, h)),
                Some((t, rule)) => (Some(t), Some(rule), above(&prepared, t)),
            },
        };
        timings.threshold_ms = ms_since(t);
        let t = std::time::Instant::now();
        let filled = match (s.fill_holes, s.max_hole_area_px) {
            (false, _) => None,
            (true, None) => Some(fill_holes(&fg)),
            (true, Some(max)) => Some(fill_holes_up_to(&fg, max)),
        };
        let fg = match filled {
            Some(f) => {
                scratch::recycle_bools(fg.into_vec());
                f
            }
            None => fg,
        };
        // The components of the foreground, kept for an adaptive split (its clumps).
        let adaptive = matches!(s.split, Split::Adaptive { .. });
        let (fg, clumps) = if s.min_object_area_px > 1 {
            let comps = fg
                .connected_components(s.connectivity)
                .remove_small(s.min_object_area_px);
            scratch::recycle_bools(fg.into_vec());
            (comps.foreground(), adaptive.then_some(comps))
        } else {
            (fg, None)
        };
        timings.cleanup_ms = ms_since(t);
        let t = std::time::Instant::now();
        let mut flood_surfaces = Vec::new();
        let flood = |ws: Watershed, i: usize, surfaces: &mut Vec<Plane>| {
            let (peaks, surface) = self.watershed_inputs(ws, &p, &prepared, &fg);
            self.flood(
                &peaks,
                surface,
                &fg,
                flood_ranges.get(i).copied(),
                keep_surface.then_some(surfaces),
            )
        };
        let labels = match s.split {
            Split::None => fg.connected_components(s.connectivity),
            Split::Watershed { markers, flood: f } => {
                flood(Watershed { markers, flood: f }, 0, &mut flood_surfaces)?
            }
            Split::Adaptive {
                compact,
                touching,
                max_ratio,
            } => {
                let a = flood(compact, 0, &mut flood_surfaces)?;
                let clumps = clumps.unwrap_or_else(|| fg.connected_components(s.connectivity));
                let count_a = objects_per_clump(&a, &clumps, s.min_instance_area_px);
                // `touching` finds at most one object per marker in a clump (each clump is
                // connected, so its markers reach all of it): it is flooded only in the clumps
                // where it has more markers than `compact` has objects, the only ones it can win.
                let (peaks, surface) = self.watershed_inputs(touching, &p, &prepared, &fg);
                let mut markers = vec![0usize; count_a.len()];
                for &i in &peaks {
                    markers[clumps.as_slice()[i] as usize] += 1;
                }
                let open: Vec<bool> = (0..count_a.len())
                    .map(|c| c > 0 && markers[c] > count_a[c])
                    .collect();
                if open.iter().any(|&o| o) {
                    let mask = BinaryMask::new(
                        fg.width(),
                        fg.height(),
                        clumps
                            .as_slice()
                            .iter()
                            .map(|&c| open[c as usize])
                            .collect(),
                    )
                    .expect("same size");
                    let b = self.flood(
                        &peaks,
                        surface,
                        &mask,
                        flood_ranges.get(1).copied(),
                        keep_surface.then_some(&mut flood_surfaces),
                    )?;
                    let count_b = objects_per_clump(&b, &clumps, s.min_instance_area_px);
                    more_objects_per_clump(a, &b, &clumps, &count_a, &count_b, max_ratio)
                } else {
                    recycle(surface);
                    a
                }
            }
        };
        recycle(p);
        timings.split_ms = ms_since(t);
        let t = std::time::Instant::now();
        let labels = size_filter(labels, s.min_instance_area_px, s.max_instance_area_px);
        timings.filter_ms = ms_since(t);
        Ok(Stages {
            prepared,
            threshold,
            threshold_rule: rule,
            timings,
            foreground: fg,
            labels,
            flood_surfaces,
        })
    }

    /// The markers (pixel indices) and the surface to flood (not yet negated) of one
    /// watershed of the foreground `fg`. `p`: the plane after background subtraction
    /// (intensity markers), `prepared`: after smoothing.
    fn watershed_inputs(
        &self,
        ws: Watershed,
        p: &Plane,
        prepared: &Plane,
        fg: &BinaryMask,
    ) -> (Vec<usize>, Plane) {
        let Watershed { markers, flood } = ws;
        // The distance transform only when markers or flooding use it.
        let needs_distance =
            flood == Flood::Distance || matches!(markers, Markers::DistancePeaks { .. });
        let dist = if needs_distance {
            distance_transform(fg)
        } else {
            Plane::filled(0, 0, 0.0)
        };
        let (peak_surface, min_value, min_distance) = match markers {
            Markers::DistancePeaks {
                min_distance_px,
                smoothing_sigma_px,
                min_height_px,
            } => (
                gaussian(&dist, smoothing_sigma_px),
                min_height_px,
                min_distance_px,
            ),
            Markers::IntensityPeaks {
                sigma_px,
                min_distance_px,
            } => (gaussian(p, sigma_px), f32::NEG_INFINITY, min_distance_px),
        };
        let peaks = peak_local_max(&peak_surface, fg, min_distance, min_value);
        let surface = match (flood, markers) {
            (Flood::Distance, _) => {
                recycle(peak_surface);
                dist
            }
            (Flood::Intensity, Markers::IntensityPeaks { .. }) => {
                recycle(dist);
                peak_surface
            }
            (Flood::Intensity, Markers::DistancePeaks { .. }) => {
                recycle(peak_surface);
                recycle(dist);
                let mut data = scratch::f32s(prepared.data.len());
                data.extend_from_slice(&prepared.data);
                Plane { data, ..*prepared }
            }
        };
        (peaks, surface)
    }

    /// Floods the negated `surface` from the `peaks` inside `mask`; parts of the mask no marker
    /// reaches become objects of their own. The flooded surface is pushed to `keep_surface`
    /// when given, with NaN outside the mask (no level there).
    fn flood(
        &self,
        peaks: &[usize],
        mut surface: Plane,
        mask: &BinaryMask,
        flood_range: Option<(f32, f32)>,
        keep_surface: Option<&mut Vec<Plane>>,
    ) -> Result<LabelImage> {
        let s = &self.settings;
        let seeds = markers_at(peaks, mask.width(), mask.height());
        surface.data.iter_mut().for_each(|v| *v = -*v);
        let flooded = crate::watershed::watershed_in_range(
            &surface,
            &seeds,
            Some(mask),
            s.connectivity,
            flood_range,
        );
        match keep_surface {
            Some(kept) => {
                for (v, &m) in surface.data.iter_mut().zip(mask.as_slice()) {
                    if !m {
                        *v = f32::NAN;
                    }
                }
                kept.push(surface)
            }
            None => recycle(surface),
        }
        scratch::recycle_u32s(seeds.into_vec());
        Ok(label_unreached_owned(flooded?, mask, s.connectivity))
    }

    /// Segments `image` into instances numbered 1..=N; the count is N. Images that the
    /// segmenter's [`Tiling`] applies to are segmented tile by tile
    /// ([`Classical::segment_tiled`]), with the same objects.
    ///
    /// # Errors
    /// As [`Classical::run`].
    pub fn segment_image(&self, image: &Image) -> Result<Segmentation> {
        if self.tiling.applies(image.width(), image.height()) {
            let t = std::time::Instant::now();
            let tiled = self.segment_tiled(image, self.tiling)?;
            tracing::info!(
                tiles = tiled.tiles,
                regrown = tiled.regrown,
                threshold = tiled.threshold,
                ms = ms_since(t).round(),
                "classical tiles"
            );
            return Ok(Segmentation::from_labels(tiled.labels));
        }
        let stages = self.run(image)?;
        let t = &stages.timings;
        tracing::info!(
            threshold = stages.threshold,
            rule = stages.threshold_rule.unwrap_or("none (no contrast)"),
            prepare_ms = format!("{:.1}", t.prepare_ms),
            threshold_ms = format!("{:.1}", t.threshold_ms),
            cleanup_ms = format!("{:.1}", t.cleanup_ms),
            split_ms = format!("{:.1}", t.split_ms),
            filter_ms = format!("{:.1}", t.filter_ms),
            "classical stages"
        );
        recycle(stages.prepared);
        scratch::recycle_bools(stages.foreground.into_vec());
        Ok(Segmentation::from_labels(stages.labels))
    }
}

/// One connected component of a thresholded plane: its brightest value, first pixel (raster
/// index) and area.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ComponentPeak {
    pub peak: f32,
    pub first: usize,
    pub area: usize,
}

/// The connected components of `p > level` (`conn` neighbours), in raster order of their first
/// pixels, from runs of foreground pixels: each row's runs are joined (union-find, the earlier
/// run the root) with the previous row's runs they touch.
pub(crate) fn run_component_peaks(
    p: &Plane,
    level: f32,
    conn: mica_core::Connectivity,
) -> Vec<ComponentPeak> {
    let w = p.width;
    if w == 0 {
        return Vec::new();
    }
    // Runs as (start index, end index exclusive) with their stats; `parent` over run indices.
    let mut runs: Vec<(usize, usize)> = Vec::new();
    let mut stats: Vec<ComponentPeak> = Vec::new();
    let mut parent: Vec<usize> = Vec::new();
    fn find(parent: &mut [usize], mut x: usize) -> usize {
        while parent[x] != x {
            parent[x] = parent[parent[x]];
            x = parent[x];
        }
        x
    }
    // Diagonal neighbours make runs touch that end one pixel before the other starts.
    let reach = usize::from(conn == mica_core::Connectivity::Eight);
    let mut prev = 0..0; // the previous row's runs
    for (y, row) in p.data.chunks_exact(w).enumerate() {
        let this_start = runs.len();
        let mut x = 0;
        while x < w {
            if row[x] <= level || row[x].is_nan() {
                x += 1;
                continue;
            }
            let x0 = x;
            let mut peak = row[x];
            x += 1;
            while x < w && row[x] > level {
                peak = peak.max(row[x]);
                x += 1;
            }
            let id = runs.len();
            runs.push((x0, x));
            parent.push(id);
            stats.push(ComponentPeak {
                peak,
                first: y * w + x0,
                area: x - x0,
            });
        }
        // Join this row's runs with the previous row's runs that touch them.
        let mut j = prev.start;
        for i in this_start..runs.len() {
            let (a0, a1) = runs[i];
            while j < prev.end && runs[j].1 + reach <= a0 {
                j += 1;
            }
            let mut k = j;
            while k < prev.end && runs[k].0 < a1 + reach {
                let (ri, rk) = (find(&mut parent, i), find(&mut parent, k));
                if ri != rk {
                    let (lo, hi) = (ri.min(rk), ri.max(rk));
                    parent[hi] = lo;
                }
                k += 1;
            }
        }
        prev = this_start..runs.len();
    }
    // Gather each component at its root (the earliest run, so its start is the first pixel).
    let mut out_of_root = vec![usize::MAX; runs.len()];
    let mut out: Vec<ComponentPeak> = Vec::new();
    for i in 0..runs.len() {
        let r = find(&mut parent, i);
        if r == i {
            out_of_root[i] = out.len();
            out.push(stats[i]);
        } else {
            let c = &mut out[out_of_root[r]];
            c.peak = c.peak.max(stats[i].peak);
            c.area += stats[i].area;
        }
    }
    out
}

/// The objects of `labels` of at least `min_area_px` pixels in each clump (index = clump label;
/// each object lies inside one clump).
fn objects_per_clump(labels: &LabelImage, clumps: &LabelImage, min_area_px: usize) -> Vec<usize> {
    let n = clumps.max_label() as usize;
    let m = labels.max_label() as usize;
    let mut area = vec![0usize; m + 1];
    let mut clump_of = vec![0u32; m + 1];
    for (&x, &c) in labels.as_slice().iter().zip(clumps.as_slice()) {
        area[x as usize] += 1;
        clump_of[x as usize] = c;
    }
    let mut count = vec![0usize; n + 1];
    for x in 1..=m {
        if area[x] >= min_area_px.max(1) {
            count[clump_of[x] as usize] += 1;
        }
    }
    count
}

/// For each clump, the labels of `a` or of `b`, whichever has more objects there (`count_a`,
/// `count_b` per clump; `a` on a tie, and `a` when `b` has more than `max_ratio` times as many,
/// one counting as one). The result's labels are `a`'s and `b`'s shifted past `a`'s largest, not
/// consecutive (the size filter renumbers them).
fn more_objects_per_clump(
    a: LabelImage,
    b: &LabelImage,
    clumps: &LabelImage,
    count_a: &[usize],
    count_b: &[usize],
    max_ratio: f32,
) -> LabelImage {
    let shift = a.max_label();
    let take_b: Vec<bool> = count_a
        .iter()
        .zip(count_b)
        .map(|(&na, &nb)| nb > na && nb as f32 <= max_ratio * na.max(1) as f32)
        .collect();
    let (w, h) = (a.width(), a.height());
    let mut out = a.into_vec();
    for ((o, &y), &c) in out.iter_mut().zip(b.as_slice()).zip(clumps.as_slice()) {
        if c != 0 && take_b[c as usize] {
            *o = y + shift;
        }
    }
    LabelImage::new(w, h, out).expect("same size")
}

/// Removes instances outside `[min, max]` pixels and renumbers the rest 1..=N.
fn size_filter(labels: LabelImage, min_area_px: usize, max_area_px: Option<usize>) -> LabelImage {
    let n = labels.max_label() as usize;
    let mut area = vec![0usize; n + 1];
    for &l in labels.as_slice() {
        area[l as usize] += 1;
    }
    let max = max_area_px.unwrap_or(usize::MAX);
    let mut map = vec![0u32; n + 1];
    let mut next = 0;
    for l in 1..=n {
        if area[l] > 0 && area[l] >= min_area_px && area[l] <= max {
            next += 1;
            map[l] = next;
        }
    }
    let (w, h) = (labels.width(), labels.height());
    let mut data = labels.into_vec();
    data.iter_mut().for_each(|l| *l = map[*l as usize]);
    LabelImage::new(w, h, data).expect("same size")
}

impl mica_core::Segmenter for Classical {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn settings(&self) -> serde_json::Value {
        serde_json::json!({
            "classical": self.settings,
            "tiling": self.tiling,
            "results_version": crate::RESULTS_VERSION,
        })
    }

    fn segment(&self, image: &Image) -> std::result::Result<Segmentation, mica_core::MethodError> {
        Ok(self.segment_image(image)?)
    }

    /// Measured on an 8-bit 8000 × 8000 image (`scripts/large_image_bench.sh`): 29.8 bytes per
    /// pixel of peak memory for the whole image at once with one watershed
    /// (`fluorescence-nuclei`), 34.6 with the adaptive split of `auto` (its clumps and second
    /// labels); 7.4 and 7.9 with 768-px tiles (all with the decoded image, 1 byte per pixel
    /// there). The estimate rounds up and adds the tiles' working memory.
    fn memory_needed(&self, info: &mica_core::io::ImageInfo) -> u64 {
        let px = info.pixels();
        let adaptive = matches!(self.settings.split, Split::Adaptive { .. });
        if self.tiling.applies(info.width, info.height) {
            info.decoded_bytes() + if adaptive { 8 } else { 7 } * px + (128 << 20)
        } else {
            info.decoded_bytes() + if adaptive { 35 } else { 30 } * px
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mica_core::Connectivity;

    fn labels(w: u32, rows: &[&str]) -> LabelImage {
        let data: Vec<u32> = rows
            .iter()
            .flat_map(|r| {
                r.bytes()
                    .map(|b| if b == b'.' { 0 } else { (b - b'0') as u32 })
            })
            .collect();
        LabelImage::new(w, rows.len() as u32, data).unwrap()
    }

    fn pick(a: LabelImage, b: &LabelImage, min_area_px: usize, max_ratio: f32) -> LabelImage {
        let clumps = a.foreground().connected_components(Connectivity::Four);
        let count_a = objects_per_clump(&a, &clumps, min_area_px);
        let count_b = objects_per_clump(b, &clumps, min_area_px);
        more_objects_per_clump(a, b, &clumps, &count_a, &count_b, max_ratio)
    }

    /// The components of `p > level` by labelling every pixel: the definition the run-based
    /// search must reproduce.
    fn labelled_peaks(p: &Plane, level: f32, conn: Connectivity) -> Vec<ComponentPeak> {
        let comps = above(p, level).connected_components(conn);
        let n = comps.max_label() as usize;
        let mut out = vec![
            ComponentPeak {
                peak: f32::NEG_INFINITY,
                first: usize::MAX,
                area: 0
            };
            n
        ];
        for (i, &c) in comps.as_slice().iter().enumerate() {
            if c > 0 {
                let o = &mut out[c as usize - 1];
                o.peak = o.peak.max(p.data[i]);
                o.first = o.first.min(i);
                o.area += 1;
            }
        }
        out
    }

    #[test]
    fn component_peaks_from_runs_equal_those_of_labelled_pixels() {
        // Random planes at every level (so every density), single rows and columns, NaN pixels
        // (never foreground), and U shapes whose arms meet only rows later.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32
        };
        let mut planes = Vec::new();
        for (w, h) in [(1, 1), (1, 9), (9, 1), (17, 13), (64, 40)] {
            for _ in 0..6 {
                let data: Vec<f32> = (0..w * h)
                    .map(|_| {
                        let v = next();
                        if v < 0.02 {
                            f32::NAN
                        } else {
                            v
                        }
                    })
                    .collect();
                planes.push(Plane {
                    width: w,
                    height: h,
                    data,
                });
            }
        }
        let u = [
            "#...#.#...#",
            "#...#.#.#.#",
            "#...#.#.#.#",
            "#####.###.#",
            "........#..",
            "#.#.#.#####",
        ];
        planes.push(Plane {
            width: u[0].len(),
            height: u.len(),
            data: u
                .iter()
                .flat_map(|r| {
                    r.bytes()
                        .enumerate()
                        .map(|(x, b)| if b == b'#' { 1.0 + x as f32 } else { 0.0 })
                })
                .collect(),
        });
        for p in &planes {
            for level in [0.1, 0.35, 0.5, 0.65, 0.9] {
                for conn in [Connectivity::Four, Connectivity::Eight] {
                    assert_eq!(
                        run_component_peaks(p, level, conn),
                        labelled_peaks(p, level, conn),
                        "{}x{} plane above {level}, {conn:?}",
                        p.width,
                        p.height
                    );
                }
            }
        }
    }

    #[test]
    fn each_clump_takes_the_split_with_more_objects_compact_on_a_tie() {
        // Three clumps: the left one split in two by `a`, the middle one in two by `b`, the
        // right one whole in both.
        let a = labels(11, &["11.33..44.5", "22.33..44.5"]);
        let b = labels(11, &["11.22..33.5", "11.24..33.5"]);
        let out = pick(a, &b, 1, 4.0);
        // Left: a (2 objects vs 1). Middle: b (2 vs 1), its labels shifted past a's largest (5).
        // Right two: 1 vs 1, a.
        let want = labels(11, &["11.77..44.5", "22.79..44.5"]);
        assert_eq!(out.as_slice(), want.as_slice());
    }

    #[test]
    fn a_clump_cut_into_too_many_pieces_keeps_the_compact_split() {
        // One clump: `a` sees one object, `b` five (texture, not cells).
        let a = labels(10, &["1111111111"]);
        let b = labels(10, &["1122334455"]);
        let capped = pick(a.clone(), &b, 1, 4.0);
        assert_eq!(capped.as_slice(), a.as_slice());
        let open = pick(a.clone(), &b, 1, 5.0);
        assert_eq!(open.as_slice().iter().max(), Some(&6));
        // Pieces under the instance size do not count: b's five pieces of 2 px against 3 px.
        let small = pick(a.clone(), &b, 3, 5.0);
        assert_eq!(small.as_slice(), a.as_slice());
    }
}
