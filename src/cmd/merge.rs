//! `mica merge OUT INPUTS...`: combines the stores of sharded runs (issue #7).

use super::Ctx;
use std::path::PathBuf;

/// Merge results stores (e.g. of `mica run --shard I/N` jobs) into one. Predictions already in the
/// output are kept; a prediction present in two stores with different values is reported.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The merged store (created if missing).
    #[arg(long, short)]
    pub out: PathBuf,
    /// The stores to merge into it.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
}

pub fn run(args: Args, ctx: &Ctx) -> anyhow::Result<i32> {
    let mut out = mica_store::Store::open(&args.out)?;
    let mut conflicts = 0usize;
    for input in &args.inputs {
        if input == &args.out {
            anyhow::bail!("{}: cannot merge a store into itself", input.display());
        }
        let s = out.merge_from(input)?;
        for k in &s.conflicts {
            eprintln!(
                "warning: {}: {}/{}/{}/{} differs from the merged store; kept the earlier one",
                input.display(),
                k.dataset,
                k.sample_id,
                k.task,
                k.method
            );
        }
        conflicts += s.conflicts.len();
        if !ctx.quiet {
            eprintln!(
                "{}: {} runs, {} samples, {} predictions added, {} already present",
                input.display(),
                s.runs,
                s.samples,
                s.predictions_added,
                s.predictions_same
            );
        }
    }
    let mut problems = 0usize;
    for input in &args.inputs {
        if let Some(holder) = mica_store::RunLock::holder(input) {
            eprintln!(
                "warning: {} is being written by a mica run ({holder}): merged what it held so far",
                input.display()
            );
            problems += 1;
        }
    }
    for p in mica_study::shard::coverage_problems(&out.runs()?) {
        eprintln!("warning: {}: {p}", args.out.display());
        problems += 1;
    }
    println!("{}", args.out.display());
    Ok(if conflicts > 0 || problems > 0 {
        crate::exit::PARTIAL
    } else {
        crate::exit::SUCCESS
    })
}
