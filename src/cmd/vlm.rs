//! Options and entry points shared by the vision-language-model commands (issue #6).
//! `count.rs` calls [`count`] when `--model` is given.

use super::Ctx;
use std::path::{Path, PathBuf};

/// Flags of every command that talks to a vision-language model.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct VlmOptions {}

/// Counts objects in `images` with `model` (`provider:model`).
pub fn count(
    _model: &str,
    _images: &[PathBuf],
    _opts: &VlmOptions,
    _csv: Option<&Path>,
    _json: bool,
    _ctx: &Ctx,
) -> anyhow::Result<i32> {
    super::not_implemented("counting with a vision-language model", 6)
}
