//! `mica segment` (issue #4).

use super::Ctx;

#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args, _ctx: &Ctx) -> anyhow::Result<i32> {
    super::not_implemented("`mica segment`", 4)
}
