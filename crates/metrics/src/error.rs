//! Error type of the metrics crate. Every variant names the file, column or input that failed.

use std::path::PathBuf;

/// Result alias for the metrics crate.
pub type Result<T, E = MetricsError> = std::result::Result<T, E>;

/// What went wrong, always with the input that caused it.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A CSV file is malformed (ragged rows, bad encoding, no header).
    #[error("{path}: line {line}: {reason}")]
    Table {
        path: PathBuf,
        line: u64,
        reason: String,
    },
    /// A column that was asked for (or is required) is not in the header.
    #[error("{path}: no column {wanted}; the header has: {available}")]
    MissingColumn {
        path: PathBuf,
        wanted: String,
        available: String,
    },
    /// Two inputs that must have the same length do not.
    #[error("{what}: length mismatch: truth has {truth}, prediction has {prediction}")]
    Length {
        what: String,
        truth: usize,
        prediction: usize,
    },
    /// Two masks that must have the same size do not.
    #[error(
        "{what}: size mismatch: truth is {truth_w}x{truth_h}, prediction is {pred_w}x{pred_h}"
    )]
    Shape {
        what: String,
        truth_w: u32,
        truth_h: u32,
        pred_w: u32,
        pred_h: u32,
    },
    /// An argument or setting is out of its valid range.
    #[error("invalid argument: {0}")]
    Invalid(String),
}

pub(crate) fn check_len(what: &str, truth: usize, prediction: usize) -> Result<()> {
    if truth != prediction {
        return Err(MetricsError::Length {
            what: what.to_string(),
            truth,
            prediction,
        });
    }
    Ok(())
}

pub(crate) fn check_shape(what: &str, truth: (u32, u32), prediction: (u32, u32)) -> Result<()> {
    if truth != prediction {
        return Err(MetricsError::Shape {
            what: what.to_string(),
            truth_w: truth.0,
            truth_h: truth.1,
            pred_w: prediction.0,
            pred_h: prediction.1,
        });
    }
    Ok(())
}
