//! Error type of the classical pipeline.

/// What went wrong in the classical pipeline.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting is out of its valid range (named, with the reason).
    #[error("invalid classical setting `{name}`: {reason}")]
    Setting { name: &'static str, reason: String },
    /// A preset name that does not exist.
    #[error("unknown classical preset `{name}` (known: {known})")]
    UnknownPreset { name: String, known: String },
    /// A settings file or string could not be parsed.
    #[error("{source_name}: cannot parse classical settings: {reason}")]
    Parse { source_name: String, reason: String },
    /// The image holds NaN or infinite values.
    #[error("image has {count} non-finite (NaN or infinite) pixel values")]
    NonFinite { count: usize },
    /// Tiles that cannot be made for this image or these settings.
    #[error("tiling: {0}")]
    Tiling(String),
    /// A buffer the size of the image could not be allocated.
    #[error("cannot allocate the {what} ({mb} MB) for this image")]
    Memory { what: &'static str, mb: usize },
    /// An error from mica-core (shapes, sizes).
    #[error(transparent)]
    Core(#[from] mica_core::Error),
}

/// Result alias for the classical crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
