//! The classical pipeline: [`Classical`] runs [`Settings`] on an image.

use crate::distance::distance_transform;
use crate::error::Result;
use crate::filter::{gaussian, opening, recycle, subtract_clipped};
use crate::morphology::{fill_holes, fill_holes_up_to, remove_small_objects};
use crate::peaks::{label_unreached_owned, markers_at, peak_local_max};
use crate::plane::Plane;
use crate::scratch;
use crate::settings::{Background, Flood, Markers, Polarity, Preset, Settings, Split, Threshold};
use crate::threshold::{above, li, local_mean, otsu, triangle, Histogram};
use mica_core::{BinaryMask, Image, LabelImage, Segmentation};

/// The classical segmenter: validated [`Settings`] and a name for tables.
#[derive(Debug, Clone)]
pub struct Classical {
    settings: Settings,
    name: String,
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
        })
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
        let s = &self.settings;
        let mut p = Plane::from_image(image)?;
        if s.polarity == Polarity::Dark {
            let (_, hi) = p.min_max();
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
        let (w, h) = (prepared.width as u32, prepared.height as u32);
        let (threshold, fg) = match s.threshold {
            Threshold::Local {
                block_size_px,
                offset,
            } => (None, local_mean(&prepared, block_size_px, offset)),
            Threshold::Fixed { value } => (Some(value), above(&prepared, value)),
            global => match Histogram::of(&prepared.data, s.histogram_bins) {
                None => (None, BinaryMask::empty(w, h)),
                Some(hist) => {
                    let t = match global {
                        Threshold::Li => li(&hist),
                        Threshold::Triangle => triangle(&hist),
                        _ => otsu(&hist),
                    };
                    (Some(t), above(&prepared, t))
                }
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
                let flooded =
                    crate::watershed::watershed(&surface, &seeds, Some(&fg), s.connectivity);
                recycle(surface);
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
        })
    }

    /// Segments `image` into instances numbered 1..=N; the count is N.
    ///
    /// # Errors
    /// As [`Classical::run`].
    pub fn segment_image(&self, image: &Image) -> Result<Segmentation> {
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
            "results_version": crate::RESULTS_VERSION,
        })
    }

    fn segment(&self, image: &Image) -> std::result::Result<Segmentation, mica_core::MethodError> {
        Ok(self.segment_image(image)?)
    }
}
