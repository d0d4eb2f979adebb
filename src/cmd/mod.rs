//! One module per subcommand: its flags (`Args`) and its `run`.

pub mod ask;
pub mod classify;
pub mod count;
pub mod data;
pub mod demo;
pub mod eval;
pub mod instances;
pub mod merge;
pub mod report;
pub mod robustness;
pub mod run;
pub mod sam;
pub mod segment;
pub mod vlm;

/// Options shared by every subcommand.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// No progress bars or informational output.
    pub quiet: bool,
}

/// The error for a subcommand this build does not have yet; exit code 4 says so to scripts.
pub fn not_implemented(what: &str, issue: u32) -> anyhow::Result<i32> {
    eprintln!("error: {what} is not implemented yet (tracked in issue #{issue})");
    Ok(crate::exit::NOT_IMPLEMENTED)
}
