//! Settings of the classical pipeline as data, and the named presets.
//!
//! [`Settings::default`] is the textbook scikit-image nuclei pipeline (Gaussian σ = 1, Otsu, hole
//! filling, distance-transform peaks with `min_distance = 5`, watershed on the negated distance,
//! 4-connectivity). The presets are TOML files in `crates/classical/presets/`, compiled in; any
//! field a preset leaves out keeps its default.

use crate::error::{Error, Result};
use mica_core::Connectivity;
use serde::{Deserialize, Serialize};

/// Whether objects are brighter or darker than the background.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Polarity {
    /// Bright objects on a dark background (fluorescence).
    #[default]
    Bright,
    /// Dark objects on a bright background (the image is inverted first).
    Dark,
}

/// Background subtraction before thresholding.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Background {
    /// No background subtraction.
    #[default]
    None,
    /// Subtract a Gaussian blur of standard deviation `sigma_px` (much larger than the objects).
    Gaussian { sigma_px: f32 },
    /// White top-hat: subtract the grey-level opening with a square of side `2 radius_px + 1`
    /// (objects narrower than the square are kept).
    Opening { radius_px: usize },
}

/// How the foreground threshold is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Threshold {
    /// Otsu's between-class variance maximum.
    #[default]
    Otsu,
    /// Li's minimum cross-entropy.
    Li,
    /// Otsu, or Li when the objects differ widely in brightness: when the dimmest tenth of the
    /// objects above Li's (lower) level peak, above the background, at less than `dim_ratio` of
    /// the brightest tenth's peak. One global level then sits too high for the dim objects and cuts them small
    /// or misses them (dim nuclei among bright ones); where objects are about equally bright
    /// (BBBC005), Li's lower level would take in the blur around them, and Otsu is kept.
    Auto {
        #[serde(default = "default_dim_ratio")]
        dim_ratio: f32,
    },
    /// Triangle method (good for a large background peak and a thin foreground tail).
    Triangle,
    /// Local mean over a `block_size_px` square minus `offset` (in image units).
    Local { block_size_px: usize, offset: f32 },
    /// A fixed value in image units (after background subtraction and smoothing).
    Fixed { value: f32 },
}

fn default_max_ratio() -> f32 {
    4.0
}

fn default_dim_ratio() -> f32 {
    0.5
}

/// Where the watershed markers come from.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "from", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Markers {
    /// Peaks of the distance transform of the foreground (optionally smoothed by
    /// `smoothing_sigma_px`), at least `min_distance_px` apart and higher than `min_height_px`.
    DistancePeaks {
        min_distance_px: usize,
        #[serde(default)]
        smoothing_sigma_px: f32,
        #[serde(default)]
        min_height_px: f32,
    },
    /// Peaks of the image smoothed with `sigma_px` (about half an object's radius), at least
    /// `min_distance_px` apart, inside the foreground: for touching or overlapping objects whose
    /// distance transform has one peak for several objects.
    IntensityPeaks {
        sigma_px: f32,
        min_distance_px: usize,
    },
}

impl Default for Markers {
    fn default() -> Self {
        Markers::DistancePeaks {
            min_distance_px: 5,
            smoothing_sigma_px: 0.0,
            min_height_px: 0.0,
        }
    }
}

/// The landscape the watershed floods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Flood {
    /// The negated distance transform: cuts at the necks between round objects.
    #[default]
    Distance,
    /// The negated smoothed intensity: cuts along dim seams between objects.
    Intensity,
}

/// One marker-controlled watershed: where its markers come from and what it floods.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Watershed {
    #[serde(default)]
    pub markers: Markers,
    #[serde(default)]
    pub flood: Flood,
}

/// How the foreground is split into instances.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Split {
    /// Each connected component is one object.
    None,
    /// Marker-controlled watershed.
    Watershed {
        #[serde(default)]
        markers: Markers,
        #[serde(default)]
        flood: Flood,
    },
    /// Both watersheds on every foreground component, which then keeps the one that finds more
    /// objects in it (of at least `min_instance_area_px`; `compact` on a tie). Compact nuclei
    /// in a clump are told apart by the necks of the distance map, touching cell bodies by the
    /// dim seams of the intensity; each clump takes the split that sees its objects. `touching`
    /// is not taken where it finds more than `max_ratio` times as many objects as `compact`
    /// (one object counting as one): that many seams are texture, not cells.
    Adaptive {
        compact: Watershed,
        touching: Watershed,
        #[serde(default = "default_max_ratio")]
        max_ratio: f32,
    },
}

impl Split {
    /// The watersheds this split runs.
    pub fn watersheds(&self) -> Vec<Watershed> {
        match *self {
            Split::None => Vec::new(),
            Split::Watershed { markers, flood } => vec![Watershed { markers, flood }],
            Split::Adaptive {
                compact, touching, ..
            } => vec![compact, touching],
        }
    }
}

impl Default for Split {
    fn default() -> Self {
        Split::Watershed {
            markers: Markers::default(),
            flood: Flood::default(),
        }
    }
}

/// Every setting of the classical pipeline. Defaults: the textbook scikit-image pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Bright or dark objects.
    pub polarity: Polarity,
    /// Background subtraction (before smoothing).
    pub background: Background,
    /// Gaussian smoothing before thresholding; 0 = none.
    pub smoothing_sigma_px: f32,
    /// Foreground threshold.
    pub threshold: Threshold,
    /// Bins of the histogram for global thresholds, spanning the data's own range.
    pub histogram_bins: usize,
    /// Fill holes in the foreground.
    pub fill_holes: bool,
    /// Fill only holes up to this many pixels (`None`: all holes, as scikit-image's
    /// `binary_fill_holes`); larger enclosed background, e.g. gaps among touching cells, is kept.
    pub max_hole_area_px: Option<usize>,
    /// Foreground components smaller than this are removed before splitting.
    pub min_object_area_px: usize,
    /// Splitting of touching objects.
    pub split: Split,
    /// Instances smaller than this (after splitting) are removed.
    pub min_instance_area_px: usize,
    /// Instances larger than this are removed (`None`: no upper limit).
    pub max_instance_area_px: Option<usize>,
    /// Pixel connectivity for components and for the watershed.
    pub connectivity: Connectivity,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            polarity: Polarity::Bright,
            background: Background::None,
            smoothing_sigma_px: 1.0,
            threshold: Threshold::Otsu,
            histogram_bins: 256,
            fill_holes: true,
            max_hole_area_px: None,
            min_object_area_px: 0,
            split: Split::default(),
            min_instance_area_px: 0,
            max_instance_area_px: None,
            connectivity: Connectivity::Four,
        }
    }
}

fn bad(name: &'static str, reason: impl Into<String>) -> Error {
    Error::Setting {
        name,
        reason: reason.into(),
    }
}

fn check_sigma(name: &'static str, v: f32, max: f32) -> Result<()> {
    if !v.is_finite() || v < 0.0 || v > max {
        return Err(bad(name, format!("must be in 0..={max}, got {v}")));
    }
    Ok(())
}

impl Settings {
    /// Parses settings from TOML; `source_name` names the file in errors.
    ///
    /// # Errors
    /// [`Error::Parse`] on syntax errors, unknown fields or wrong types; [`Error::Setting`] when a
    /// value is out of range.
    pub fn from_toml(text: &str, source_name: &str) -> Result<Settings> {
        let s: Settings = toml::from_str(text).map_err(|e| Error::Parse {
            source_name: source_name.to_string(),
            reason: e.to_string(),
        })?;
        s.validate()?;
        Ok(s)
    }

    /// The settings as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot serialise settings: {e}\n"))
    }

    /// Checks every value's range.
    ///
    /// # Errors
    /// [`Error::Setting`] naming the first bad setting.
    pub fn validate(&self) -> Result<()> {
        check_sigma("smoothing_sigma_px", self.smoothing_sigma_px, 256.0)?;
        match self.background {
            Background::None => {}
            Background::Gaussian { sigma_px } => {
                check_sigma("background.sigma_px", sigma_px, 4096.0)?;
                if sigma_px == 0.0 {
                    return Err(bad("background.sigma_px", "must be > 0"));
                }
            }
            Background::Opening { radius_px } => {
                if radius_px == 0 || radius_px > 4096 {
                    return Err(bad("background.radius_px", "must be in 1..=4096"));
                }
            }
        }
        match self.threshold {
            Threshold::Local {
                block_size_px,
                offset,
            } => {
                if block_size_px < 3 || block_size_px % 2 == 0 {
                    return Err(bad(
                        "threshold.block_size_px",
                        format!("must be odd and >= 3, got {block_size_px}"),
                    ));
                }
                if !offset.is_finite() {
                    return Err(bad("threshold.offset", "must be finite"));
                }
            }
            Threshold::Fixed { value } if !value.is_finite() => {
                return Err(bad("threshold.value", "must be finite"));
            }
            Threshold::Auto { dim_ratio }
                if !(dim_ratio.is_finite() && (0.0..=1.0).contains(&dim_ratio)) =>
            {
                return Err(bad(
                    "threshold.dim_ratio",
                    format!("must be in 0..=1, got {dim_ratio}"),
                ));
            }
            _ => {}
        }
        if !(2..=65536).contains(&self.histogram_bins) {
            return Err(bad("histogram_bins", "must be in 2..=65536"));
        }
        if let Split::Adaptive { max_ratio, .. } = self.split {
            if !(max_ratio.is_finite() && max_ratio >= 1.0) {
                return Err(bad(
                    "split.max_ratio",
                    format!("must be >= 1, got {max_ratio}"),
                ));
            }
        }
        for Watershed { markers, .. } in self.split.watersheds() {
            match markers {
                Markers::DistancePeaks {
                    min_distance_px,
                    smoothing_sigma_px,
                    min_height_px,
                } => {
                    if min_distance_px > 1024 {
                        return Err(bad("split.markers.min_distance_px", "must be <= 1024"));
                    }
                    check_sigma(
                        "split.markers.smoothing_sigma_px",
                        smoothing_sigma_px,
                        256.0,
                    )?;
                    if !min_height_px.is_finite() || min_height_px < 0.0 {
                        return Err(bad("split.markers.min_height_px", "must be >= 0"));
                    }
                }
                Markers::IntensityPeaks {
                    sigma_px,
                    min_distance_px,
                } => {
                    check_sigma("split.markers.sigma_px", sigma_px, 256.0)?;
                    if min_distance_px > 1024 {
                        return Err(bad("split.markers.min_distance_px", "must be <= 1024"));
                    }
                }
            }
        }
        if let Some(max) = self.max_instance_area_px {
            if max < self.min_instance_area_px.max(1) {
                return Err(bad(
                    "max_instance_area_px",
                    format!(
                        "must be >= min_instance_area_px ({}), got {max}",
                        self.min_instance_area_px
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// A named preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// The default: adapts to the image (compact or touching objects, dim ones among bright).
    Auto,
    /// The textbook scikit-image pipeline (= [`Settings::default`]), for comparison.
    Textbook,
    /// Compact, mostly separate nuclei (fluorescence).
    FluorescenceNuclei,
    /// Larger cell bodies that touch and overlap (fluorescence).
    FluorescenceCells,
    /// Particles in scanning electron micrographs.
    SemParticles,
    /// Fibres in scanning electron micrographs (not split).
    SemFibres,
}

impl Preset {
    /// All presets, in the order of [`Preset::name`]s in help texts.
    pub const ALL: [Preset; 6] = [
        Preset::Auto,
        Preset::FluorescenceNuclei,
        Preset::FluorescenceCells,
        Preset::SemParticles,
        Preset::SemFibres,
        Preset::Textbook,
    ];

    /// The preset's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Auto => "auto",
            Preset::Textbook => "textbook",
            Preset::FluorescenceNuclei => "fluorescence-nuclei",
            Preset::FluorescenceCells => "fluorescence-cells",
            Preset::SemParticles => "sem-particles",
            Preset::SemFibres => "sem-fibres",
        }
    }

    /// The preset's TOML text.
    pub fn toml(self) -> &'static str {
        match self {
            Preset::Auto => include_str!("../presets/auto.toml"),
            Preset::Textbook => include_str!("../presets/textbook.toml"),
            Preset::FluorescenceNuclei => include_str!("../presets/fluorescence-nuclei.toml"),
            Preset::FluorescenceCells => include_str!("../presets/fluorescence-cells.toml"),
            Preset::SemParticles => include_str!("../presets/sem-particles.toml"),
            Preset::SemFibres => include_str!("../presets/sem-fibres.toml"),
        }
    }

    /// The preset's settings.
    ///
    /// # Errors
    /// [`Error::Parse`] if the compiled-in file is malformed (a bug, caught by the tests).
    pub fn settings(self) -> Result<Settings> {
        Settings::from_toml(self.toml(), &format!("preset {}", self.name()))
    }

    /// Comma-separated names, for messages.
    pub fn known_names() -> String {
        Preset::ALL.map(Preset::name).join(", ")
    }
}

impl std::str::FromStr for Preset {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Preset::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| Error::UnknownPreset {
                name: s.to_string(),
                known: Preset::known_names(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_parses_and_validates() {
        for p in Preset::ALL {
            p.settings().unwrap_or_else(|e| panic!("{}: {e}", p.name()));
            assert_eq!(p.name().parse::<Preset>().unwrap(), p);
        }
        assert_eq!(Preset::Textbook.settings().unwrap(), Settings::default());
    }

    #[test]
    fn unknown_fields_and_bad_values_are_rejected() {
        let e = Settings::from_toml("smoothing_sigma = 2.0", "x.toml").unwrap_err();
        assert!(e.to_string().contains("x.toml"), "{e}");
        let e = Settings::from_toml("smoothing_sigma_px = -1.0", "x.toml").unwrap_err();
        assert!(e.to_string().contains("smoothing_sigma_px"), "{e}");
        let e = Settings::from_toml(
            "[threshold]\nmethod = \"local\"\nblock_size_px = 4\noffset = 0.0",
            "x.toml",
        )
        .unwrap_err();
        assert!(e.to_string().contains("block_size_px"), "{e}");
        let e = Settings::from_toml(
            "[split]\nmethod = \"watershed\"\n[split.markers]\nfrom = \"distance-peaks\"\nmin_distance_px = 3\nbogus = 1",
            "x.toml",
        );
        assert!(e.is_err());
        assert!("no-such-preset".parse::<Preset>().is_err());
    }

    #[test]
    fn settings_round_trip_through_toml() {
        for p in Preset::ALL {
            let s = p.settings().unwrap();
            let back = Settings::from_toml(&s.to_toml(), "round trip").unwrap();
            assert_eq!(back, s, "{}", p.name());
        }
    }
}
