//! Options and constructor for the SAM method of `mica segment` / `mica count` (issue #5).

use mica_core::Segmenter;

/// Flags of the SAM method.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct SamOptions {}

/// Builds the SAM segmenter from its flags.
pub fn segmenter(_opts: &SamOptions) -> anyhow::Result<Box<dyn Segmenter>> {
    anyhow::bail!("the SAM method is not implemented yet (tracked in issue #5)")
}
