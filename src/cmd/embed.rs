//! `mica embed` (issue #16): computes SAM's image embeddings into a folder ahead of time (as
//! micro-sam's `precompute_embeddings` does), for `--embeddings DIR` of `mica segment`,
//! `mica count` and `mica annotate`: on a fast machine once, then prompts cost milliseconds.

use super::Ctx;
#[cfg(feature = "sam")]
use crate::exit;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Folder of embeddings (created if missing); images already there are skipped.
    #[arg(long, value_name = "DIR")]
    pub embeddings: PathBuf,
    #[command(flatten)]
    pub model: super::sam::SamModelOptions,
    /// Image files or folders of images.
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
}

#[cfg(feature = "sam")]
pub fn run(args: Args, ctx: &Ctx) -> anyhow::Result<i32> {
    let images = super::data::expand_inputs(&args.images)?;
    if images.is_empty() {
        anyhow::bail!("no images given");
    }
    let sam = super::sam::load_model(&args.model, Some(&args.embeddings))?;
    let prep = mica_sam::ImagePrep::default();
    let bar = crate::progress::bar(images.len() as u64, "embed", ctx.quiet);
    let mut failed = 0usize;
    // One image at a time: the encoder uses every core itself.
    for p in &images {
        let r = mica_core::io::read_image(p)
            .map_err(|e| e.to_string())
            .and_then(|img| {
                prep.apply(&img)
                    .map_err(|e| format!("{}: {e}", p.display()))
            })
            .and_then(|rgb| {
                sam.embed(&rgb)
                    .map(|_| ())
                    .map_err(|e| format!("{}: {e}", p.display()))
            });
        if let Err(e) = r {
            failed += 1;
            bar.suspend(|| eprintln!("error: {e}"));
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let (hits, misses) = sam
        .embedding_cache()
        .map(|c| c.hits_and_misses())
        .unwrap_or_default();
    if !ctx.quiet {
        eprintln!(
            "{misses} embedding(s) computed, {hits} already in {}, {failed} image(s) failed",
            args.embeddings.display()
        );
    }
    Ok(if failed == 0 {
        exit::SUCCESS
    } else if failed == images.len() {
        exit::FAILURE
    } else {
        exit::PARTIAL
    })
}

#[cfg(not(feature = "sam"))]
pub fn run(_args: Args, _ctx: &Ctx) -> anyhow::Result<i32> {
    Err(super::NotInThisBuild(
        "this mica was built without the `sam` feature; rebuild with --features sam".into(),
    )
    .into())
}
