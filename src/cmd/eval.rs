//! `mica eval` (issue #3).

use super::Ctx;

#[derive(clap::Subcommand, Debug)]
pub enum EvalCommand {
    /// Score counting predictions from a CSV.
    Count,
    /// Score classification predictions from a CSV.
    Classify,
    /// Score segmentation masks against truth masks.
    Segment,
}

pub fn run(_cmd: EvalCommand, _ctx: &Ctx) -> anyhow::Result<i32> {
    super::not_implemented("`mica eval`", 3)
}
