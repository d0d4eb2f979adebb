//! `mica data` (issue #2).

use super::Ctx;

#[derive(clap::Subcommand, Debug)]
pub enum DataCommand {
    /// What a dataset holds.
    Inspect,
}

pub fn run(_cmd: DataCommand, _ctx: &Ctx) -> anyhow::Result<i32> {
    super::not_implemented("`mica data`", 2)
}
