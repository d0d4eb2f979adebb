//! Error type of the SAM crate. Every variant names the file, setting or image that failed.

use std::path::PathBuf;

/// Result alias for the SAM crate.
pub type Result<T, E = SamError> = std::result::Result<T, E>;

/// What went wrong in loading or running SAM.
#[derive(Debug, thiserror::Error)]
pub enum SamError {
    /// No weights were given and none were found in the cache directory.
    #[error("SAM weights not found (looked in: {}).\n{how}", searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    WeightsMissing {
        /// Every place looked at, in order.
        searched: Vec<PathBuf>,
        /// How to get them (the official download command).
        how: String,
    },
    /// A weights path was given (flag or environment variable) but no file is there.
    #[error("{path}: SAM weights file does not exist (given by {origin}).\n{how}")]
    WeightsNotFound {
        path: PathBuf,
        origin: String,
        how: String,
    },
    /// The file exists but is not a checkpoint this crate can read, or lacks a tensor of the model.
    #[error("{path}: not a usable SAM checkpoint: {reason}")]
    BadWeights { path: PathBuf, reason: String },
    /// A cached weights file does not have the published checksum (corrupt or partial download).
    #[error("{path}: sha256 is {actual}, expected {expected} (corrupt or partial download: delete it and download again)")]
    Checksum {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    /// Reading a file failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A setting of the generator or a prompt is out of range.
    #[error("invalid SAM setting: {0}")]
    Invalid(String),
    /// An image could not be prepared for the model.
    #[error("image: {0}")]
    Image(#[from] mica_core::Error),
    /// The tensor library failed while running the model.
    #[error("model computation failed: {0}")]
    Candle(#[from] candle_core::Error),
}
