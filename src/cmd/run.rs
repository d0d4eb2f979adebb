//! `mica run STUDY.toml`: runs a study into a results store, resumably (issue #7).

use super::Ctx;
use anyhow::Context;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use mica_study as study;

/// Run a study file (datasets × tasks × methods) into a results store. Every prediction is stored
/// as soon as it is made: after an interruption (even `kill -9`), running the same command again
/// does only what is missing.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The study file (TOML; see docs/study.md).
    pub study: PathBuf,
    /// The results store (SQLite); created if missing, resumed if present.
    #[arg(long, default_value = "results/results.sqlite")]
    pub store: PathBuf,
    /// Folder that the study's data paths are relative to (overrides `data_root` in the file).
    #[arg(long)]
    pub data_root: Option<PathBuf>,
    /// Run only shard I of N (0-based, `I/N`), split by sample; combine the stores with `mica merge`.
    /// `auto` takes I and N from a Slurm job array (SLURM_ARRAY_TASK_ID, _COUNT, _MIN, _STEP);
    /// `auto/N` takes I from a Kubernetes Indexed Job (JOB_COMPLETION_INDEX). See docs/study.md.
    #[arg(long, value_name = "I/N|auto|auto/N")]
    pub shard: Option<String>,
    /// If another mica run holds the store, wait this many seconds for it to end before refusing
    /// (two runs on one store would make the same predictions twice).
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub wait_for_store: u64,
    /// Memory the images being segmented may take together (e.g. 8G). An image that would need
    /// more (estimated from its header before decoding) fails with the reason and the run goes
    /// on; default: 3/4 of the machine's memory, cgroup or `ulimit -v` limit, whichever is least.
    #[arg(long, value_name = "SIZE")]
    pub max_memory: Option<String>,
    /// Print what would run (and its estimated cost) without running anything.
    #[arg(long)]
    pub dry_run: bool,
    /// Stop before the model calls of this run could cost more than USD (worst case of each
    /// uncached call reserved before it is sent; cached answers are free). Needs a price for every
    /// model method in the plan.
    #[arg(long, value_name = "USD")]
    pub max_cost: Option<f64>,
    /// Try failed predictions again (they are kept, with their reason, by default).
    #[arg(long)]
    pub retry_failed: bool,
    /// Run only this method of the study (repeatable; default: all).
    #[arg(long = "method", value_name = "NAME")]
    pub methods: Vec<String>,
    /// Pause this many milliseconds after each stored prediction (runs one at a time).
    #[arg(long, default_value_t = 0, hide = true)]
    pub delay_ms: u64,
}

/// A flag set by the first SIGTERM or SIGINT (a scheduler's time limit, `scancel`, Ctrl-C): the run
/// then starts nothing new, stores what is in flight and exits with [`crate::exit::INTERRUPTED`]. A
/// second signal ends the process at once (nothing committed is lost either way).
fn stop_on_signal() -> anyhow::Result<Arc<AtomicBool>> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let stop = Arc::new(AtomicBool::new(false));
    for (sig, code) in [(SIGTERM, 143), (SIGINT, 130)] {
        // Registered first, so it sees the flag as it was before this signal set it.
        signal_hook::flag::register_conditional_shutdown(sig, code, stop.clone())
            .context("cannot install a signal handler")?;
        signal_hook::flag::register(sig, stop.clone())
            .context("cannot install a signal handler")?;
    }
    Ok(stop)
}

pub fn run(args: Args, ctx: &Ctx) -> anyhow::Result<i32> {
    let shard = args
        .shard
        .as_deref()
        .map(|s| study::shard::resolve(s, |k| std::env::var(k).ok()))
        .transpose()
        .map_err(anyhow::Error::msg)?;
    if let (Some(s), false) = (&shard, ctx.quiet) {
        eprintln!("shard {s}");
    }
    let study = study::Study::load(&args.study, args.data_root.as_deref())?;
    let stop = if args.dry_run {
        None
    } else {
        Some(stop_on_signal()?)
    };
    let opts = study::RunOptions {
        max_memory: args
            .max_memory
            .as_deref()
            .map(mica_core::memory::parse_size)
            .transpose()
            .map_err(|e| anyhow::anyhow!("--max-memory {e}"))?,
        store: args.store.clone(),
        shard,
        dry_run: args.dry_run,
        retry_failed: args.retry_failed,
        quiet: ctx.quiet,
        delay_ms: args.delay_ms,
        methods: args.methods.clone(),
        max_cost_usd: args.max_cost,
        stop,
        lock_wait: std::time::Duration::from_secs(args.wait_for_store),
        progress: progress_bar(ctx.quiet),
        #[cfg(feature = "sam")]
        sam_device: Some(super::sam::device()?),
    };
    let summary = study::run(&study, &opts)?;
    if args.dry_run {
        for line in &summary.plan {
            println!("{line}");
        }
        for w in &summary.warnings {
            eprintln!("warning: {}", mica_core::text::terminal_safe(w));
        }
        return Ok(crate::exit::SUCCESS);
    }
    print_summary(&summary, &args.store, ctx);
    Ok(if summary.not_made_interrupted > 0 {
        crate::exit::INTERRUPTED
    } else if summary.failed > 0
        || !summary.problems.is_empty()
        || summary.not_made_cost_limit > 0
        || summary.not_made_halted > 0
    {
        crate::exit::PARTIAL
    } else {
        crate::exit::SUCCESS
    })
}

/// Progress of a study's predictions on stderr (a bar on a terminal, plain lines otherwise,
/// nothing when quiet).
pub fn progress_bar(quiet: bool) -> study::runner::Progress {
    let bar: std::sync::OnceLock<crate::progress::Progress> = std::sync::OnceLock::new();
    study::runner::Progress::new(move |done, total| {
        let pb = bar.get_or_init(|| crate::progress::bar(total, "predicting", quiet));
        pb.set_position(done);
        if done == total {
            pb.finish_and_clear();
        }
    })
}

/// Prints what a run did to stderr (unless quiet).
pub fn print_summary(s: &study::RunSummary, store: &std::path::Path, ctx: &Ctx) {
    for p in s.problems.iter().chain(&s.warnings) {
        eprintln!("warning: {}", mica_core::text::terminal_safe(p));
    }
    if ctx.quiet {
        return;
    }
    eprintln!(
        "{} predictions planned: {} were already stored, {} made now ({} failed, reasons stored) -> {}",
        s.planned,
        s.already_done,
        s.made,
        s.failed,
        store.display()
    );
    for (m, why) in &s.skipped_methods {
        eprintln!("skipped method {m:?}: {why}");
    }
    if s.spent_usd > 0.0 {
        eprintln!("model calls of this run cost ${:.4}", s.spent_usd);
    }
    if s.not_made_halted > 0 {
        eprintln!(
            "{} predictions not made because their method was stopped",
            s.not_made_halted
        );
    }
    if s.not_made_interrupted > 0 {
        eprintln!(
            "stopped by a signal: {} predictions not made (nothing stored for them); run the same command again to resume",
            s.not_made_interrupted
        );
    }
    if s.not_made_cost_limit > 0 {
        eprintln!(
            "cost limit reached: {} predictions not made (nothing stored for them); rerun with a higher --max-cost to make them",
            s.not_made_cost_limit
        );
    }
}
