//! `mica classify` (issue #6): classify images into a label set with a vision-language model.

use super::vlm::{run_task, VlmOptions};
use super::Ctx;
use mica_vlm::Task;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The model, as provider:model (openai:gpt-4o, gemini:gemini-3.5-flash, ollama:llava:13b,
    /// openai-compatible:NAME).
    #[arg(long, short = 'm', value_name = "PROVIDER:MODEL")]
    pub model: String,
    /// Label file: one class name per line (ids 1, 2, ...), or `id,name[,alias;alias]` lines.
    #[arg(long, value_name = "FILE", required_unless_present = "label_set")]
    pub labels: Option<PathBuf>,
    /// A built-in label set instead of --labels: `nffa` (the study's ten NFFA-Europe SEM classes).
    #[arg(long, value_name = "NAME", conflicts_with = "labels")]
    pub label_set: Option<String>,
    /// Images or folders of images.
    #[arg(required = true, value_name = "IMAGES")]
    pub images: Vec<PathBuf>,
    /// Write one CSV row per image (written as each answer arrives).
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Print the results as a JSON array on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub vlm: VlmOptions,
}

pub fn run(args: Args, ctx: &Ctx) -> anyhow::Result<i32> {
    let labels = match (&args.labels, args.label_set.as_deref()) {
        (Some(p), _) => mica_vlm::task::load_labels(p)?,
        (None, Some("nffa")) => mica_metrics::parse::nffa_labels(),
        (None, Some(other)) => anyhow::bail!("unknown --label-set `{other}` (known: nffa)"),
        (None, None) => anyhow::bail!("give --labels FILE or --label-set nffa"),
    };
    run_task(
        Task::Classify { labels },
        &args.model,
        &args.images,
        &args.vlm,
        args.csv.as_deref(),
        args.json,
        ctx,
    )
}
