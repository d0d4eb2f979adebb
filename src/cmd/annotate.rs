//! `mica annotate` (issue #16): the SAM demo's click-and-drag workflow on a local page, saving
//! label images, tables and replayable prompts (see `mica_annotate`).

use super::Ctx;
#[cfg(feature = "sam")]
use std::io::Write;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Folder for `<stem>_labels.tif`, overlays, objects.csv, counts.csv, prompt_labels.csv and
    /// the prompts (points.csv, boxes.csv: replay them with `mica segment --method sam
    /// --points ... --boxes ...`). Prompts saved there earlier are shown again.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Port on 127.0.0.1 (0: any free port). Only this machine can reach the page.
    #[arg(long, default_value_t = 8787)]
    pub port: u16,
    /// SAM model, weights and embedding cache, as for `mica segment --method sam`.
    #[command(flatten)]
    pub sam: super::sam::SamOptions,
    /// Image files or folders of images.
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
}

#[cfg(feature = "sam")]
pub fn run(args: Args, ctx: &Ctx) -> anyhow::Result<i32> {
    let o = &args.sam;
    if o.prompts.is_some()
        || o.points.is_some()
        || o.boxes.is_some()
        || o.sam_count.is_some()
        || o.sam_preset.is_some()
        || o.sam_config.is_some()
    {
        anyhow::bail!(
            "mica annotate takes its prompts from the page; of the SAM options it uses \
             --sam-model, --weights, --download-weights and --embeddings"
        );
    }
    let images = super::data::expand_inputs(&args.images)?;
    let sam = super::sam::load_model(&o.model, o.embeddings.as_deref())?;
    let annotator =
        mica_annotate::Annotator::new(sam, mica_sam::ImagePrep::default(), &images, &args.out)
            .map_err(anyhow::Error::msg)?;
    let n = images.len();
    let quiet = ctx.quiet;
    annotator
        .serve(args.port, |addr| {
            // The address on stdout (tests and scripts read it), the rest on stderr.
            println!("http://{addr}/");
            let _ = std::io::stdout().flush();
            if !quiet {
                eprintln!(
                    "mica annotate: {n} image(s); open http://{addr}/ in a browser; \
                     saves go to {}; Ctrl-C to stop",
                    args.out.display()
                );
            }
        })
        .map_err(anyhow::Error::msg)?;
    Ok(crate::exit::SUCCESS)
}

#[cfg(not(feature = "sam"))]
pub fn run(_args: Args, _ctx: &Ctx) -> anyhow::Result<i32> {
    Err(super::NotInThisBuild(
        "this mica was built without the `sam` feature; rebuild with --features sam".into(),
    )
    .into())
}
