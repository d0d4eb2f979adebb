//! `mica report STORE`: the HTML report and CSV/JSON tables of a results store (issue #7).

use super::Ctx;
use anyhow::Context;
use std::path::{Path, PathBuf};

/// Write one self-contained HTML report (inline SVG figures, no network, no JavaScript) and every
/// table as CSV and JSON, from a results store.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The results store written by `mica run`.
    #[arg(default_value = "results/results.sqlite")]
    pub store: PathBuf,
    /// Output folder (report.html and tables/).
    #[arg(long, default_value = "results/report")]
    pub out: PathBuf,
    /// Report title (default: the study name).
    #[arg(long)]
    pub title: Option<String>,
    /// Bootstrap resamples for the confidence intervals.
    #[arg(long, default_value_t = 2000)]
    pub resamples: usize,
    /// Seed of the bootstrap (the default is `mica eval`'s, so both give the same intervals).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Leave out the difference overlays (they read every mask file).
    #[arg(long)]
    pub no_overlays: bool,
    #[command(flatten)]
    pub similarity: super::similarity::SimilarityArgs,
    #[command(flatten)]
    pub judge: super::judge::JudgeArgs,
}

pub fn run(args: Args, ctx: &Ctx) -> anyhow::Result<i32> {
    let opts = mica_report::ReportOptions {
        title: args.title.clone(),
        overlays: !args.no_overlays,
    };
    let bootstrap = mica_metrics::bootstrap::BootstrapConfig {
        resamples: args.resamples,
        seed: args.seed,
        level: 0.95,
    };
    let scorer = args.similarity.load(ctx.quiet)?;
    let judge = args.judge.load()?;
    let scorers: Vec<&dyn mica_metrics::vqa::AnswerScorer> = scorer
        .iter()
        .map(|s| s.as_ref())
        .chain(
            judge
                .as_ref()
                .map(|j| j as &dyn mica_metrics::vqa::AnswerScorer),
        )
        .collect();
    let path = write_report_with(&args.store, &args.out, &bootstrap, &opts, &scorers, ctx)?;
    if let (Some(j), false) = (&judge, ctx.quiet) {
        eprintln!("{}", super::judge::spending(j));
    }
    println!("{}", path.display());
    Ok(crate::exit::SUCCESS)
}

/// Evaluates `store` (every interval resampled by `bootstrap`), renders the report and writes it
/// into `out`; returns the HTML path.
pub fn write_report(
    store: &Path,
    out: &Path,
    bootstrap: &mica_metrics::bootstrap::BootstrapConfig,
    opts: &mica_report::ReportOptions,
    ctx: &Ctx,
) -> anyhow::Result<PathBuf> {
    write_report_with(store, out, bootstrap, opts, &[], ctx)
}

/// [`write_report`] with external VQA answer scorers.
pub fn write_report_with(
    store: &Path,
    out: &Path,
    bootstrap: &mica_metrics::bootstrap::BootstrapConfig,
    opts: &mica_report::ReportOptions,
    scorers: &[&dyn mica_metrics::vqa::AnswerScorer],
    ctx: &Ctx,
) -> anyhow::Result<PathBuf> {
    if !store.is_file() {
        anyhow::bail!(
            "{}: no results store here (run `mica run STUDY.toml --store {}` first)",
            store.display(),
            store.display()
        );
    }
    let s = mica_store::Store::open_read_only(store)?;
    let evaluation = mica_study::evaluate_store_with(&s, bootstrap, scorers)
        .with_context(|| format!("cannot evaluate {}", store.display()))?;
    let report = mica_report::build(&s, &evaluation, opts)
        .with_context(|| format!("cannot build the report of {}", store.display()))?;
    if !ctx.quiet {
        for w in &report.warnings {
            eprintln!("warning: {w}");
        }
    }
    Ok(report.write(out)?)
}
