//! One module per subcommand: its flags (`Args`) and its `run`.

pub mod annotate;
pub mod ask;
pub mod classify;
pub mod count;
pub mod data;
pub mod demo;
pub mod embed;
pub mod eval;
pub mod eval_vqa;
pub mod instances;
pub mod judge;
pub mod merge;
pub mod report;
pub mod robustness;
pub mod run;
pub mod sam;
pub mod segment;
pub mod similarity;
pub mod vlm;

/// Options shared by every subcommand.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// No progress bars or informational output.
    pub quiet: bool,
}

/// Whoever read stdout stopped reading (`mica count … | head`); `main` stops quietly.
#[derive(Debug, thiserror::Error)]
#[error("stdout was closed by its reader")]
pub struct StdoutClosed;

/// A write to stdout that failed: [`StdoutClosed`] when the reader has gone, else the error
/// with what was being written.
pub fn stdout_error(e: std::io::Error) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        StdoutClosed.into()
    } else {
        anyhow::Error::new(e).context("cannot write to stdout")
    }
}

/// A capability this build of mica does not have (e.g. SAM in a build without the `sam`
/// feature); `main` turns it into exit code 4.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NotInThisBuild(pub String);
