//! The classical pipeline: [`Classical`] runs [`Settings`] on an image.

use crate::distance::distance_transform;
use crate::error::Result;
use crate::filter::{gaussian, gaussian_radius, opening, recycle, subtract_clipped};
use crate::morphology::{fill_holes, fill_holes_up_to, remove_small_objects};
use crate::peaks::{label_unreached_owned, markers_at, peak_local_max};
use crate::plane::Plane;
use crate::scratch;
use crate::settings::{Background, Flood, Markers, Polarity, Preset, Settings, Split, Threshold};
use crate::threshold::{above, li, local_mean, otsu, triangle, Histogram};
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
    /// The surface the watershed flooded (negated distance or intensity), when asked for.
    pub flood_surface: Option<Plane>,
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
        let p = Plane::from_image(image)?;
        let (_, hi) = p.min_max();
        let (p, prepared) = self.prepare(p, hi);
        self.finish(p, prepared, ThresholdSource::Own, None, false)
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
        let markers = match s.split {
            Split::None => 0,
            Split::Watershed { markers, .. } => match markers {
                Markers::DistancePeaks {
                    min_distance_px,
                    smoothing_sigma_px,
                    ..
                } => gaussian_radius(smoothing_sigma_px) + 2 * min_distance_px + 1,
                Markers::IntensityPeaks {
                    sigma_px,
                    min_distance_px,
                } => gaussian_radius(sigma_px) + 2 * min_distance_px + 1,
            },
        };
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
    pub(crate) fn global_threshold(&self, prepared: &[f32]) -> Option<f32> {
        Histogram::of(prepared, self.settings.histogram_bins).map(|h| self.threshold_of(&h))
    }

    /// The global threshold of a histogram of the prepared image.
    pub(crate) fn threshold_of(&self, hist: &Histogram) -> f32 {
        match self.settings.threshold {
            Threshold::Li => li(hist),
            Threshold::Triangle => triangle(hist),
            _ => otsu(hist),
        }
    }

    pub(crate) fn histogram_bins(&self) -> usize {
        self.settings.histogram_bins.max(2)
    }

    /// The stages after preparation: threshold, hole filling, small-object removal, splitting,
    /// the instance size filter.
    ///
    /// `flood_range`: the range the watershed's levels are spread over (`None`: the surface's
    /// own range inside the foreground). `keep_surface`: return the flooding surface in
    /// [`Stages::flood_surface`].
    pub(crate) fn finish(
        &self,
        p: Plane,
        prepared: Plane,
        source: ThresholdSource,
        flood_range: Option<(f32, f32)>,
        keep_surface: bool,
    ) -> Result<Stages> {
        let s = &self.settings;
        let (w, h) = (prepared.width as u32, prepared.height as u32);
        let (threshold, fg) = match (s.threshold, source) {
            (
                Threshold::Local {
                    block_size_px,
                    offset,
                },
                _,
            ) => (None, local_mean(&prepared, block_size_px, offset)),
            (Threshold::Fixed { value }, _) => (Some(value), above(&prepared, value)),
            (_, ThresholdSource::Given(None)) => (None, BinaryMask::empty(w, h)),
            (_, ThresholdSource::Given(Some(t))) => (Some(t), above(&prepared, t)),
            (_, ThresholdSource::Own) => match self.global_threshold(&prepared.data) {
                None => (None, BinaryMask::empty(w, h)),
                Some(t) => (Some(t), above(&prepared, t)),
            },
        };
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
        let fg = if s.min_object_area_px > 1 {
            let kept = remove_small_objects(&fg, s.min_object_area_px, s.connectivity);
            scratch::recycle_bools(fg.into_vec());
            kept
        } else {
            fg
        };
        let mut flood_surface = None;
        let labels = match s.split {
            Split::None => fg.connected_components(s.connectivity),
            Split::Watershed { markers, flood } => {
                // The distance transform only when markers or flooding use it.
                let needs_distance =
                    flood == Flood::Distance || matches!(markers, Markers::DistancePeaks { .. });
                let dist = if needs_distance {
                    distance_transform(&fg)
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
                    } => (gaussian(&p, sigma_px), f32::NEG_INFINITY, min_distance_px),
                };
                let peaks = peak_local_max(&peak_surface, &fg, min_distance, min_value);
                let seeds = markers_at(&peaks, w, h);
                let mut surface = match (flood, markers) {
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
                        Plane { data, ..prepared }
                    }
                };
                surface.data.iter_mut().for_each(|v| *v = -*v);
                let flooded = crate::watershed::watershed_in_range(
                    &surface,
                    &seeds,
                    Some(&fg),
                    s.connectivity,
                    flood_range,
                );
                if keep_surface {
                    flood_surface = Some(surface);
                } else {
                    recycle(surface);
                }
                scratch::recycle_u32s(seeds.into_vec());
                label_unreached_owned(flooded?, &fg, s.connectivity)
            }
        };
        recycle(p);
        let labels = size_filter(labels, s.min_instance_area_px, s.max_instance_area_px);
        Ok(Stages {
            prepared,
            threshold,
            foreground: fg,
            labels,
            flood_surface,
        })
    }

    /// Segments `image` into instances numbered 1..=N; the count is N. Images that the
    /// segmenter's [`Tiling`] applies to are segmented tile by tile
    /// ([`Classical::segment_tiled`]), with the same objects.
    ///
    /// # Errors
    /// As [`Classical::run`].
    pub fn segment_image(&self, image: &Image) -> Result<Segmentation> {
        if self.tiling.applies(image.width(), image.height()) {
            let tiled = self.segment_tiled(image, self.tiling)?;
            return Ok(Segmentation::from_labels(tiled.labels));
        }
        let stages = self.run(image)?;
        recycle(stages.prepared);
        scratch::recycle_bools(stages.foreground.into_vec());
        Ok(Segmentation::from_labels(stages.labels))
    }
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
    /// pixel of peak memory for the whole image at once, 7.4 with 768-px tiles (both with the
    /// decoded image, 1 byte per pixel there). The estimate rounds up and adds the tiles'
    /// working memory.
    fn memory_needed(&self, info: &mica_core::io::ImageInfo) -> u64 {
        let px = info.pixels();
        if self.tiling.applies(info.width, info.height) {
            info.decoded_bytes() + 7 * px + (128 << 20)
        } else {
            info.decoded_bytes() + 30 * px
        }
    }
}
