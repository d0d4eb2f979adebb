//! `mica demo`: the built-in study on the sample images in `examples/` (issue #7).

use super::Ctx;
use anyhow::Context;
use std::path::PathBuf;
use std::time::Instant;

/// The demo study, compiled in so that `mica demo` needs only the sample data.
const DEMO_STUDY: &str = include_str!("../../studies/demo.toml");

/// Run the small built-in study on the sample images shipped in `examples/` (BBBC005 cells in
/// both stains, NFFA SEM crops, the study's own answers) with the methods available offline, and
/// write its report. Prints the report's path.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Output folder (results store, masks, report.html, tables/).
    #[arg(long, default_value = "mica-demo")]
    pub out: PathBuf,
    /// Folder with the sample data (default: `examples/` of the mica source tree).
    #[arg(long)]
    pub examples: Option<PathBuf>,
    /// Start from an empty store instead of resuming the one in `--out`.
    #[arg(long)]
    pub fresh: bool,
    /// Leave SAM out even when its weights are found (MobileSAM on a CPU takes minutes per image).
    #[arg(long)]
    pub no_sam: bool,
}

pub fn run(args: Args, ctx: &Ctx) -> anyhow::Result<i32> {
    let t0 = Instant::now();
    let examples = match &args.examples {
        Some(e) => e.clone(),
        None => {
            let local = PathBuf::from("examples");
            if local.join("bbbc005").is_dir() {
                local
            } else {
                PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/examples"))
            }
        }
    };
    if !examples.join("bbbc005").is_dir() {
        anyhow::bail!(
            "{}: the sample data of the demo is not there (it ships in the examples/ folder of the \
             mica repository; pass --examples DIR)",
            examples.display()
        );
    }
    let study = mica_study::Study::from_str(
        DEMO_STUDY,
        std::path::Path::new("studies/demo.toml (built in)"),
        &examples,
        Some(&examples),
    )?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let store = args.out.join("results.sqlite");
    if args.fresh {
        for suffix in ["", "-wal", "-shm"] {
            let p = PathBuf::from(format!("{}{suffix}", store.display()));
            if p.exists() {
                std::fs::remove_file(&p)
                    .with_context(|| format!("cannot remove {}", p.display()))?;
            }
        }
    }
    let methods: Vec<String> = if args.no_sam {
        study
            .file
            .methods
            .iter()
            .filter(|m| m.kind() != "sam")
            .map(|m| m.name().to_string())
            .collect()
    } else {
        Vec::new()
    };
    let opts = mica_study::RunOptions {
        max_memory: None,
        store: store.clone(),
        quiet: ctx.quiet,
        methods,
        progress: super::run::progress_bar(ctx.quiet),
        #[cfg(feature = "sam")]
        sam_device: Some(super::sam::device()?),
        ..Default::default()
    };
    let summary = mica_study::run(&study, &opts)?;
    super::run::print_summary(&summary, &store, ctx);
    let report = super::report::write_report(
        &store,
        &args.out.join("report"),
        &mica_metrics::bootstrap::BootstrapConfig::default(),
        &mica_report::ReportOptions::default(),
        ctx,
    )?;
    if !ctx.quiet {
        eprintln!("demo finished in {:.1} s", t0.elapsed().as_secs_f64());
    }
    println!("{}", report.display());
    Ok(crate::exit::SUCCESS)
}
