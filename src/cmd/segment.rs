//! `mica segment` (issue #4): label images, overlays and per-object measurements for many images.

use super::instances;
use super::Ctx;
use crate::exit;
use anyhow::{bail, Context};
use mica_classical::{Classical, Preset, Settings};
use mica_core::Segmenter;
use std::path::PathBuf;

/// The segmentation methods.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Method {
    /// Threshold and marker-controlled watershed (mica-classical).
    #[default]
    Classical,
    /// Segment Anything (MobileSAM), automatic mask generation.
    Sam,
}

/// Flags that choose and configure the method, shared by `segment` and `count`.
#[derive(clap::Args, Debug, Clone)]
pub struct MethodArgs {
    /// Segmentation method.
    #[arg(long, value_enum, default_value_t = Method::Classical)]
    pub method: Method,
    /// Named settings of the method. classical: auto (default: adapts to compact or touching
    /// objects and to dim ones among bright), fluorescence-nuclei, fluorescence-cells,
    /// sem-particles, sem-fibres, textbook. sam: standard, custom.
    #[arg(long)]
    pub preset: Option<String>,
    /// classical: a TOML settings file (fields as in crates/classical/presets/*.toml) instead of
    /// a preset.
    #[arg(long, value_name = "FILE", conflicts_with = "preset")]
    pub settings: Option<PathBuf>,
    /// Worker threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub jobs: usize,
    /// Cut large images into tiles with a halo. classical (same objects as the whole image,
    /// less memory): auto = images above 4096x4096 px in 768-px tiles. sam (the image at its own
    /// scale instead of shrunk to SAM's 1024-px input): auto = images with a side above 2048 px,
    /// 768-px tiles in 1024-px windows. off: never; N: tiles of N px for every image larger
    /// than one (window).
    #[arg(long, value_name = "auto|off|N", default_value = "auto")]
    pub tile: String,
    /// Image added around each tile (px). classical default: twice what the settings look
    /// around an object, plus 64; sam default: 128 (objects reaching up to 108 px past their
    /// tile are seen whole).
    #[arg(long, value_name = "PX")]
    pub halo: Option<u32>,
    /// Memory the images being processed may take together (e.g. 8G, 500M). An image that
    /// would need more (estimated from its header before it is decoded) is refused with a
    /// message and the others go on; default: 3/4 of the machine's memory, cgroup or
    /// `ulimit -v` limit, whichever is least.
    #[arg(long, value_name = "SIZE")]
    pub max_memory: Option<String>,
    #[command(flatten)]
    pub sam: super::sam::SamOptions,
}

/// The memory budget `--max-memory` asks for, else the machine's.
pub fn memory_budget(max_memory: Option<&str>) -> anyhow::Result<mica_core::memory::MemoryBudget> {
    Ok(match max_memory {
        Some(s) => mica_core::memory::MemoryBudget::new(
            mica_core::memory::parse_size(s).map_err(|e| anyhow::anyhow!("--max-memory {e}"))?,
            format!("--max-memory {s}"),
        ),
        None => mica_core::memory::MemoryBudget::of_machine(),
    })
}

/// The default classical preset (also the prompting detector's).
const DEFAULT_PRESET: Preset = mica_study::methods::DEFAULT_CLASSICAL_PRESET;

/// Builds the segmenter the flags ask for.
pub fn segmenter(m: &MethodArgs) -> anyhow::Result<Box<dyn Segmenter>> {
    match m.method {
        Method::Classical => {
            let tiling = mica_classical::Tiling::parse(&m.tile, m.halo)
                .map_err(|e| anyhow::anyhow!("--tile/--halo: {e}"))?;
            let o = &m.sam;
            if o.prompts.is_some()
                || o.sam_count.is_some()
                || o.points.is_some()
                || o.boxes.is_some()
                || o.embeddings.is_some()
            {
                bail!(
                    "--prompts, --points, --boxes, --embeddings and --sam-count are options of \
                     --method sam"
                );
            }
            if let Some(path) = &m.settings {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                let s = Settings::from_toml(&text, &path.display().to_string())?;
                let name = path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "settings".into());
                return Ok(Box::new(Classical::new(s, &name)?.with_tiling(tiling)));
            }
            let preset = match &m.preset {
                Some(p) => p.parse::<Preset>()?,
                None => DEFAULT_PRESET,
            };
            Ok(Box::new(Classical::preset(preset)?.with_tiling(tiling)))
        }
        Method::Sam => {
            if m.settings.is_some() {
                bail!("--settings is a classical option; SAM is configured with its own flags");
            }
            // `--preset standard|custom` names a SAM preset here; `--sam-preset` wins over it.
            super::sam::segmenter_with_preset(
                &m.sam,
                m.preset.as_deref(),
                Some((m.tile.as_str(), m.halo)),
            )
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub method: MethodArgs,
    /// Folder for label TIFFs (`<stem>_labels.tif`), overlays (`<stem>_overlay.png`),
    /// `objects.csv` and `counts.csv`.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Pixel size in micrometres for every image (square pixels), instead of the calibration
    /// each TIFF may carry (ImageJ, OME-TIFF or resolution tags). With a pixel size,
    /// objects.csv gains µm columns and label TIFFs are calibrated.
    #[arg(long, value_name = "UM")]
    pub pixel_size: Option<f64>,
    /// Write each object's label number (the `label` column of objects.csv) on the overlays.
    #[arg(long)]
    pub overlay_numbers: bool,
    /// Image files or folders of images (with --points/--boxes: optional, the images the
    /// prompt files name).
    #[arg(required_unless_present_any = ["points", "boxes"])]
    pub images: Vec<PathBuf>,
}

pub fn run(args: Args, ctx: &Ctx) -> anyhow::Result<i32> {
    let seg = segmenter(&args.method)?;
    let images = super::sam::inputs(&args.method.sam, &args.images)?;
    let started = std::time::Instant::now();
    let outputs = instances::Outputs {
        dir: Some(args.out.clone()),
        pixel_size: args
            .pixel_size
            .map(mica_core::calibration::PixelSize::user)
            .transpose()?,
        numbers: args.overlay_numbers,
    };
    let budget = memory_budget(args.method.max_memory.as_deref())?;
    let run = instances::run(
        seg.as_ref(),
        &images,
        &outputs,
        args.method.jobs,
        &budget,
        ctx,
    )?;
    let failed = run.failures();
    let ok = run.results.len() - failed;
    let objects: usize = run.results.iter().flatten().map(|r| r.count).sum();
    if !ctx.quiet {
        eprintln!(
            "{}: {ok} image(s) segmented, {objects} object(s), {failed} failed, in {:.2} s; outputs in {}",
            seg.name(),
            started.elapsed().as_secs_f64(),
            args.out.display()
        );
    }
    Ok(if failed == 0 {
        exit::SUCCESS
    } else if ok == 0 {
        exit::FAILURE
    } else {
        exit::PARTIAL
    })
}
