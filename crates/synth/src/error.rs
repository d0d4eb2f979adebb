//! Error type of the synth crate; every variant names the setting or input that failed.

/// Result alias for the synth crate.
pub type Result<T, E = SynthError> = std::result::Result<T, E>;

/// What went wrong while perturbing or generating an image.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// A parameter is out of its valid range; `name` is the parameter.
    #[error("invalid parameter `{name}`: {reason}")]
    Param { name: String, reason: String },
    /// The truth does not fit the image (different size).
    #[error("{what}: size mismatch: image is {image_w}x{image_h}, truth is {truth_w}x{truth_h}")]
    TruthShape {
        what: &'static str,
        image_w: u32,
        image_h: u32,
        truth_w: u32,
        truth_h: u32,
    },
    /// The generator could not place the requested number of cells.
    #[error(
        "could only place {placed} of {requested} cells in a {width}x{height} image \
         (lower the count or the cell radius, or raise the clustering probability)"
    )]
    Crowded {
        requested: usize,
        placed: usize,
        width: u32,
        height: u32,
    },
    /// JPEG encoding or decoding failed.
    #[error("JPEG round trip failed: {0}")]
    Jpeg(String),
    /// Perturbing or generating one named image failed.
    #[error("{id}: {source}")]
    OnImage {
        id: String,
        #[source]
        source: Box<SynthError>,
    },
    /// An error from mica-core (image construction).
    #[error(transparent)]
    Core(#[from] mica_core::Error),
}

impl SynthError {
    pub(crate) fn param(name: &str, reason: impl std::fmt::Display) -> Self {
        SynthError::Param {
            name: name.to_string(),
            reason: reason.to_string(),
        }
    }
}

/// Checks that `v` is finite and within `lo..=hi`.
pub(crate) fn check_range(name: &str, v: f64, lo: f64, hi: f64) -> Result<()> {
    if !v.is_finite() || v < lo || v > hi {
        return Err(SynthError::param(
            name,
            format!("{v} is not in [{lo}, {hi}]"),
        ));
    }
    Ok(())
}
