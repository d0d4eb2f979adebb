//! Options and constructor for the SAM method of `mica segment` / `mica count` (issue #5).
//!
//! The model is `--sam-model` (mobile_sam, the default, or vit_b, vit_l, vit_h), else whatever
//! the `--weights` file holds. Weights come from `--weights PATH`, else `MICA_SAM_WEIGHTS`, else
//! the model's official file in the cache directory (`$XDG_CACHE_HOME/mica/` or
//! `~/.cache/mica/`, sha256-checked); a missing file gives the download command, and
//! `--download-weights` downloads the official checkpoint into the cache when it is missing (or
//! fails its sha256), verifies it, then proceeds.
//! `MICA_SAM_WEIGHTS_URL` overrides the download URL (a mirror). Settings: `--sam-preset`
//! (standard = reference defaults, custom = the study's), or a `--sam-config` file (JSON or TOML
//! with the fields of `mica_sam::AmgConfig`), then the individual overrides.

use mica_core::Segmenter;
use std::path::PathBuf;

/// Which SAM model and weights: the flags every command that loads SAM shares.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct SamModelOptions {
    /// SAM model: mobile_sam (default; 40.7 MB), vit_b (375 MB), vit_l (1.25 GB) or vit_h
    /// (2.56 GB, the study's). Without it, the model the --weights file holds.
    #[arg(long, value_name = "NAME")]
    pub sam_model: Option<String>,
    /// SAM weights file (.pt, .pth or .safetensors). Default: $MICA_SAM_WEIGHTS, then the
    /// model's official file in ~/.cache/mica/ (e.g. mobile_sam.pt, sam_vit_h_4b8939.pth).
    #[arg(long, value_name = "PATH")]
    pub weights: Option<PathBuf>,
    /// Download the model's official weights into the cache directory when no weights are
    /// found there (sha256-verified), then proceed. URL override: $MICA_SAM_WEIGHTS_URL. Never
    /// done without this flag.
    #[arg(long)]
    pub download_weights: bool,
}

/// Flags of the SAM method.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct SamOptions {
    #[command(flatten)]
    pub model: SamModelOptions,
    /// SAM automatic-mask settings: standard (reference defaults) or custom (the study's:
    /// pred_iou_thresh 0.98, stability_score_thresh 0.98, box_nms_thresh 0.90).
    #[arg(long, value_name = "NAME")]
    pub sam_preset: Option<String>,
    /// SAM generator settings file (JSON or TOML, fields of the reference generator); replaces
    /// the preset.
    #[arg(long, value_name = "FILE", conflicts_with = "sam_preset")]
    pub sam_config: Option<PathBuf>,
    /// Override: grid points per image side (reference default 32).
    #[arg(long, value_name = "N")]
    pub sam_points_per_side: Option<usize>,
    /// Override: holes and islands under this many pixels are removed (default 0 = off).
    #[arg(long, value_name = "PX")]
    pub sam_min_region_area: Option<usize>,
    /// Override: layers of image crops (default 0 = whole image only).
    #[arg(long, value_name = "N")]
    pub sam_crop_layers: Option<usize>,
    /// Prompt SAM with a detector's objects instead of the point grid: `classical` (its
    /// default preset) or `classical:PRESET` (e.g. classical:fluorescence-cells). One mask per
    /// detected object, then SAM's stability filter and box NMS.
    #[arg(long, value_name = "SOURCE")]
    pub prompts: Option<String>,
    /// With --prompts: box (default: the object's bounding box), point (its innermost pixel)
    /// or box-point (both).
    #[arg(long, value_name = "KIND", requires = "prompts")]
    pub prompt_kind: Option<String>,
    /// What SAM's count is: objects (default: the objects of the label image, = rows of
    /// objects.csv) or masks (every mask of the generator, overlapping ones and background
    /// included: the study's definition).
    #[arg(long, value_name = "RULE")]
    pub sam_count: Option<String>,
    /// Points someone clicked, as CSV: image,x,y,label[,object] (label 1 = foreground, 0 =
    /// background; rows with the same object form one prompt). One labelled object per prompt;
    /// `prompt_labels.csv` says which label each object got. Images are named by path
    /// (relative to the CSV's folder, then the current one); without IMAGES, the images the
    /// file names are segmented.
    #[arg(long, value_name = "FILE.csv", conflicts_with_all = ["prompts", "sam_count"])]
    pub points: Option<PathBuf>,
    /// Boxes as CSV: image,x0,y0,x1,y1[,object] (pixels); combined with --points by
    /// (image, object).
    #[arg(long, value_name = "FILE.csv", conflicts_with_all = ["prompts", "sam_count"])]
    pub boxes: Option<PathBuf>,
    /// Keep SAM's image embeddings in this folder and reuse them: the encoder (most of the
    /// time of prompted segmentation) runs once per image and model. Created if missing.
    #[arg(long, value_name = "DIR")]
    pub embeddings: Option<PathBuf>,
}

/// Builds the SAM segmenter from its flags, with a preset name given by the caller (e.g. a
/// generic `--preset`); `--sam-preset` wins over it.
#[cfg(feature = "sam")]
pub fn segmenter_with_preset(
    opts: &SamOptions,
    preset: Option<&str>,
    tile: Option<(&str, Option<u32>)>,
) -> anyhow::Result<Box<dyn Segmenter>> {
    use anyhow::Context;
    use mica_sam::{AmgConfig, AmgPreset, SamModel};

    let (mut config, name) = match &opts.sam_config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let is_json = path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("json"));
            let cfg: AmgConfig = if is_json {
                serde_json::from_str(&text).with_context(|| format!("{}", path.display()))?
            } else {
                toml::from_str(&text).with_context(|| format!("{}", path.display()))?
            };
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "config".into());
            (cfg, name)
        }
        None => {
            let p =
                AmgPreset::from_name(opts.sam_preset.as_deref().or(preset).unwrap_or("standard"))?;
            (p.config(), p.name().to_string())
        }
    };
    if let Some(n) = opts.sam_points_per_side {
        config.points_per_side = Some(n);
        config.point_grids = None;
    }
    if let Some(a) = opts.sam_min_region_area {
        config.min_mask_region_area = a;
    }
    if let Some(l) = opts.sam_crop_layers {
        config.crop_n_layers = l;
    }
    let model = opts
        .model
        .sam_model
        .as_deref()
        .map(SamModel::from_name)
        .transpose()?;
    let weights = resolve_or_download(&opts.model, model.unwrap_or(SamModel::MobileSam))?;
    tracing::info!(weights = %weights.path.display(), origin = ?weights.origin, "SAM weights found");
    // The one SAM factory, the one a study's SAM method uses, on the same device.
    let spec = mica_study::methods::SamSpec {
        preset: &name,
        prompts: opts.prompts.as_deref(),
        prompt_kind: opts.prompt_kind.as_deref(),
        count: opts.sam_count.as_deref(),
        points: opts.points.as_deref(),
        boxes: opts.boxes.as_deref(),
        embeddings: opts.embeddings.as_deref(),
        tile: tile.map(|t| t.0),
        halo: tile.and_then(|t| t.1),
    };
    mica_study::methods::load_sam(model, &weights.path, config, &spec, &device()?)
}

/// The SAM model the flags name (weights resolved or downloaded as for `segment`), reading and
/// filling the `embeddings` folder when given: for tools that prompt SAM themselves
/// (`mica annotate`, `mica embed`).
#[cfg(feature = "sam")]
pub fn load_model(
    opts: &SamModelOptions,
    embeddings: Option<&std::path::Path>,
) -> anyhow::Result<mica_sam::Sam> {
    use mica_sam::SamModel;
    let model = opts
        .sam_model
        .as_deref()
        .map(SamModel::from_name)
        .transpose()?;
    let weights = resolve_or_download(opts, model.unwrap_or(SamModel::MobileSam))?;
    mica_study::methods::load_sam_model(model, &weights.path, embeddings, &device()?)
}

/// The images to segment: `images` (files and folders) as given; with `--points`/`--boxes`
/// and no `images`, the images the prompt files name (in order of appearance), and with both,
/// every image the files name must be among `images` (an error naming the file and row).
pub fn inputs(opts: &SamOptions, images: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let listed = super::data::expand_inputs(images)?;
    if opts.points.is_none() && opts.boxes.is_none() {
        return Ok(listed);
    }
    prompt_file_inputs(opts, listed)
}

#[cfg(feature = "sam")]
fn prompt_file_inputs(opts: &SamOptions, listed: Vec<PathBuf>) -> anyhow::Result<Vec<PathBuf>> {
    let files = mica_sam::PromptFiles::read(opts.points.as_deref(), opts.boxes.as_deref())?;
    if listed.is_empty() {
        return Ok(files.images().iter().map(|i| i.path.clone()).collect());
    }
    let given: std::collections::HashSet<PathBuf> = listed
        .iter()
        .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()))
        .collect();
    for i in files.images() {
        let key = std::fs::canonicalize(&i.path).unwrap_or_else(|_| i.path.clone());
        if !given.contains(&key) {
            anyhow::bail!(
                "{}: image {} is not among the images given; add it, or leave the images out \
                 to segment those the prompt files name",
                i.first_row,
                i.path.display()
            );
        }
    }
    Ok(listed)
}

#[cfg(not(feature = "sam"))]
fn prompt_file_inputs(_opts: &SamOptions, _listed: Vec<PathBuf>) -> anyhow::Result<Vec<PathBuf>> {
    Err(super::NotInThisBuild(
        "this mica was built without the `sam` feature; rebuild with --features sam".into(),
    )
    .into())
}

/// Resolves the weights; with `--download-weights`, a missing (or corrupt) cached file is
/// downloaded first. An explicit path or `MICA_SAM_WEIGHTS` is never replaced by a download.
#[cfg(feature = "sam")]
fn resolve_or_download(
    opts: &SamModelOptions,
    model: mica_sam::SamModel,
) -> anyhow::Result<mica_sam::ResolvedWeights> {
    use mica_sam::SamError;
    match mica_sam::resolve_weights(model, opts.weights.as_deref()) {
        Err(SamError::WeightsMissing { .. } | SamError::Checksum { .. })
            if opts.download_weights =>
        {
            let url = mica_sam::weights::weights_url(model);
            let mb = model.checkpoint().size_bytes as f64 / 1e6;
            eprintln!("downloading {model} weights ({mb:.0} MB) from {url} ...");
            let w = mica_sam::weights::download_weights(model, Some(&url), None)?;
            eprintln!(
                "SAM weights saved to {} (sha256 verified)",
                w.path.display()
            );
            Ok(w)
        }
        other => Ok(other?),
    }
}

/// The GPU when built with `cuda` and one is present, else the CPU: where SAM runs, for `mica
/// segment`, `mica count` and a study's SAM methods alike.
#[cfg(feature = "sam")]
pub fn device() -> anyhow::Result<mica_sam::Device> {
    if cfg!(feature = "cuda") {
        Ok(mica_sam::Device::cuda_if_available(0)?)
    } else {
        Ok(mica_sam::Device::Cpu)
    }
}

/// Without the `sam` feature the method is absent from this build.
#[cfg(not(feature = "sam"))]
pub fn segmenter_with_preset(
    _opts: &SamOptions,
    _preset: Option<&str>,
    _tile: Option<(&str, Option<u32>)>,
) -> anyhow::Result<Box<dyn Segmenter>> {
    Err(super::NotInThisBuild(
        "this mica was built without the `sam` feature; rebuild with --features sam".into(),
    )
    .into())
}
