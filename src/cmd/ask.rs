//! `mica ask` (issue #6): ask a vision-language model a question about an image, or have it
//! describe the image or estimate a size from the scale bar (the study's VQA tasks).

use super::vlm::{run_task, VlmOptions};
use super::Ctx;
use mica_vlm::Task;
use std::path::PathBuf;

/// What to ask.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum AskTask {
    /// The QUESTION as given (the default when a question is given).
    Question,
    /// Describe the image (VQA T1; the default without a question).
    Describe,
    /// Estimate the mean size of --objects in µm from the scale bar (VQA T2).
    Size,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The model, as provider:model.
    #[arg(long, short = 'm', value_name = "PROVIDER:MODEL")]
    pub model: String,
    /// The image.
    #[arg(value_name = "IMAGE")]
    pub image: PathBuf,
    /// The question (omit it with --task describe or --task size).
    #[arg(value_name = "QUESTION")]
    pub question: Option<String>,
    /// The kind of question.
    #[arg(long, value_enum)]
    pub task: Option<AskTask>,
    /// Write the answer as a CSV row.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub vlm: VlmOptions,
}

pub fn run(args: Args, ctx: &Ctx) -> anyhow::Result<i32> {
    let kind = args.task.unwrap_or(if args.question.is_some() {
        AskTask::Question
    } else {
        AskTask::Describe
    });
    let task = match (kind, args.question) {
        (AskTask::Question, Some(q)) if !q.trim().is_empty() => Task::Ask { question: q },
        (AskTask::Question, _) => anyhow::bail!("give a QUESTION, or --task describe / size"),
        (AskTask::Describe, None) => Task::Describe,
        (AskTask::Size, None) => Task::Size {
            objects: args.vlm.objects.clone(),
        },
        (_, Some(_)) => anyhow::bail!("--task describe and --task size take no QUESTION"),
    };
    run_task(
        task,
        &args.model,
        std::slice::from_ref(&args.image),
        &args.vlm,
        args.csv.as_deref(),
        args.json,
        ctx,
    )
}
