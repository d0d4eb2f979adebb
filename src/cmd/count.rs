//! `mica count` (issue #4): object counts per image with the classical method, SAM or (with
//! `--model`) a vision-language model.

use super::instances;
use super::segment::MethodArgs;
use super::Ctx;
use crate::exit;
use std::io::Write;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub method: MethodArgs,
    /// Count with a vision-language model instead (`provider:model`, e.g. `openai:gpt-4o`).
    #[arg(long, value_name = "PROVIDER:MODEL")]
    pub model: Option<String>,
    #[command(flatten)]
    pub vlm: super::vlm::VlmOptions,
    /// Also write the `image,count` table to FILE.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Print JSON instead of CSV.
    #[arg(long)]
    pub json: bool,
    /// Image files or folders of images (with --points/--boxes: optional, the images the
    /// prompt files name).
    #[arg(required_unless_present_any = ["points", "boxes"])]
    pub images: Vec<PathBuf>,
}

pub fn run(args: Args, ctx: &Ctx) -> anyhow::Result<i32> {
    let images = super::sam::inputs(&args.method.sam, &args.images)?;
    if let Some(model) = &args.model {
        return super::vlm::count(
            model,
            &images,
            &args.vlm,
            args.csv.as_deref(),
            args.json,
            ctx,
        );
    }
    let seg = super::segment::segmenter(&args.method)?;
    let outputs = instances::Outputs {
        dir: None,
        pixel_size: None,
        numbers: false,
    };
    let budget = super::segment::memory_budget(args.method.max_memory.as_deref())?;
    let run = instances::run(
        seg.as_ref(),
        &images,
        &outputs,
        args.method.jobs,
        &budget,
        ctx,
    )?;
    if let Some(path) = &args.csv {
        instances::write_counts_csv(path, &run)?;
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        let text = serde_json::to_string_pretty(&instances::counts_json(&run, &images))?;
        writeln!(out, "{text}").map_err(super::stdout_error)?;
    } else {
        let mut csv = Vec::new();
        instances::write_counts(&mut csv, &run)?;
        out.write_all(&csv).map_err(super::stdout_error)?;
    }
    let failed = run.failures();
    Ok(if failed == 0 {
        exit::SUCCESS
    } else if failed == run.results.len() {
        exit::FAILURE
    } else {
        exit::PARTIAL
    })
}
