//! `mica run` (issue #7).

use super::Ctx;

#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args, _ctx: &Ctx) -> anyhow::Result<i32> {
    super::not_implemented("`mica run`", 7)
}
