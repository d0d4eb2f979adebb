//! `mica`: run vision foundation models and classical image analysis on microscopy images and
//! measure them against ground truth.
//!
//! The binary is glue: each subcommand parses its flags in `cmd::<name>`, validates them into the
//! library types of the `mica-*` crates, and reports. Exit codes are part of the interface and are
//! documented in [`exit`].

mod cmd;
mod exit;
mod progress;

use clap::{Parser, Subcommand};

/// Run vision foundation models and classical image analysis on microscopy images, and measure them
/// against ground truth.
#[derive(Parser, Debug)]
#[command(name = "mica", version, about, long_about = None, propagate_version = true)]
struct Cli {
    /// More log output (-v info, -vv debug, -vvv trace); `RUST_LOG` overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// No progress bars or informational messages; errors are still printed.
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Inspect and convert datasets (BBBC005, NFFA-Europe SEM, folders, CSV manifests).
    #[command(subcommand)]
    Data(cmd::data::DataCommand),
    /// Score predictions from files against truth (counting, classification, segmentation).
    #[command(subcommand)]
    Eval(cmd::eval::EvalCommand),
    /// Segment images into label images (classical or SAM).
    Segment(cmd::segment::Args),
    /// Count objects in images (classical, SAM or a vision-language model).
    Count(cmd::count::Args),
    /// Annotate images with SAM in the browser (click, drag, accept; saves labels and prompts).
    Annotate(cmd::annotate::Args),
    /// Compute SAM image embeddings into a folder ahead of time (for --embeddings).
    Embed(cmd::embed::Args),
    /// Classify images into a label set with a vision-language model.
    Classify(cmd::classify::Args),
    /// Ask a vision-language model a question about an image.
    Ask(cmd::ask::Args),
    /// Run a study file (datasets x tasks x methods), resumably.
    Run(cmd::run::Args),
    /// Merge the result stores of sharded runs.
    Merge(cmd::merge::Args),
    /// Write the HTML report (and CSV/JSON tables) of a results store.
    Report(cmd::report::Args),
    /// Run the small built-in study on the bundled sample images and write its report.
    Demo(cmd::demo::Args),
    /// Degradation curves of methods under blur, noise, debris and crowding.
    Robustness(cmd::robustness::Args),
}

fn main() {
    // Reuse freed tensor buffers instead of faulting fresh pages in (see mica_core::memory).
    mica_core::memory::keep_freed_memory();
    let cli = Cli::parse();
    init_tracing(cli.verbose, cli.quiet);
    let ctx = cmd::Ctx { quiet: cli.quiet };
    let result = match cli.command {
        Command::Data(c) => cmd::data::run(c, &ctx),
        Command::Eval(c) => cmd::eval::run(c, &ctx),
        Command::Segment(a) => cmd::segment::run(a, &ctx),
        Command::Count(a) => cmd::count::run(a, &ctx),
        Command::Annotate(a) => cmd::annotate::run(a, &ctx),
        Command::Embed(a) => cmd::embed::run(a, &ctx),
        Command::Classify(a) => cmd::classify::run(a, &ctx),
        Command::Ask(a) => cmd::ask::run(a, &ctx),
        Command::Run(a) => cmd::run::run(a, &ctx),
        Command::Merge(a) => cmd::merge::run(a, &ctx),
        Command::Report(a) => cmd::report::run(a, &ctx),
        Command::Demo(a) => cmd::demo::run(a, &ctx),
        Command::Robustness(a) => cmd::robustness::run(a, &ctx),
    };
    let code = match result {
        Ok(code) => code,
        // Whoever read the output stopped reading (`mica count … | head`): nothing to report,
        // as ripgrep and the coreutils do.
        Err(e) if e.downcast_ref::<cmd::StdoutClosed>().is_some() => exit::SUCCESS,
        Err(e) => {
            eprintln!(
                "error: {}",
                mica_core::text::terminal_safe(&format!("{e:#}"))
            );
            if e.downcast_ref::<cmd::NotInThisBuild>().is_some() {
                exit::NOT_IMPLEMENTED
            } else {
                exit::FAILURE
            }
        }
    };
    std::process::exit(code);
}

fn init_tracing(verbose: u8, quiet: bool) {
    use tracing_subscriber::EnvFilter;
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    // No colour codes in a log file or pipe (a batch job's log).
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
