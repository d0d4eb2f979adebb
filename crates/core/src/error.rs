//! Error type of the core crate. Every variant names the file or image that failed.

use std::path::PathBuf;

/// Result alias for the core crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, always with the input that caused it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be opened, read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file exists but its contents could not be decoded (corrupt, truncated, empty).
    #[error("{path}: cannot decode image: {reason}")]
    Decode { path: PathBuf, reason: String },
    /// The file is a valid image of a kind mica does not handle.
    #[error("{path}: unsupported image: {reason}")]
    Unsupported { path: PathBuf, reason: String },
    /// A file or sample name does not follow the expected convention.
    #[error("{name}: {reason}")]
    Name { name: String, reason: String },
    /// A table (CSV manifest, list file) is malformed.
    #[error("{path}:{line}: {reason}")]
    Table {
        path: PathBuf,
        line: u64,
        reason: String,
    },
    /// Two images or masks that must agree in size do not.
    #[error("{what}: size mismatch: expected {expected_w}x{expected_h}, got {got_w}x{got_h}")]
    Shape {
        what: String,
        expected_w: u32,
        expected_h: u32,
        got_w: u32,
        got_h: u32,
    },
    /// An argument or setting is out of its valid range.
    #[error("invalid argument: {0}")]
    Invalid(String),
}

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// A decoding failure for `path`.
    pub fn decode(path: impl Into<PathBuf>, reason: impl std::fmt::Display) -> Self {
        Error::Decode {
            path: path.into(),
            reason: reason.to_string(),
        }
    }

    /// An unsupported-format failure for `path`.
    pub fn unsupported(path: impl Into<PathBuf>, reason: impl std::fmt::Display) -> Self {
        Error::Unsupported {
            path: path.into(),
            reason: reason.to_string(),
        }
    }
}
