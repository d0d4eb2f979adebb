//! `mica data`: inspect and convert datasets (issue #2).

use super::Ctx;
use crate::exit;
use anyhow::Context;
use mica_core::dataset::{self, subset, Dataset, DatasetKind, OpenOptions};
use mica_core::{io, BinaryMask, Connectivity};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(clap::Subcommand, Debug)]
pub enum DataCommand {
    /// What a dataset holds: images, sizes, bit depths, truth available, per-class and per-count
    /// summaries, and every file that could not be used.
    ///
    /// The kind is detected (BBBC005 names, NFFA class folders, class folders, a flat folder, a
    /// .csv manifest) unless --kind is given. Every image is decoded to check it (use --no-read
    /// to skip). Exit code 3 when some files could not be used.
    Inspect(InspectArgs),
    /// Convert images: masks to label TIFFs (connected components), or any image to 8 bits.
    Convert(ConvertArgs),
}

/// Where a dataset is and how to read it.
#[derive(clap::Args, Debug, Clone)]
pub struct DatasetArgs {
    /// Dataset folder or CSV manifest.
    pub path: PathBuf,
    /// Dataset kind instead of detecting it: bbbc005, nffa, class-folders, folder, manifest.
    #[arg(long)]
    pub kind: Option<DatasetKind>,
    /// BBBC005: mask folder when not <PATH>/masks (blurred images use the mask of their F1 scene).
    #[arg(long, value_name = "DIR")]
    pub masks: Option<PathBuf>,
    /// NFFA: CSV of expert counts (image name, count); repeat for several files.
    #[arg(long, value_name = "CSV")]
    pub counts: Vec<PathBuf>,
    /// NFFA: crop the instrument information bar (keep the top 1024x600 of 1024x768 frames).
    #[arg(long)]
    pub crop_info_bar: bool,
    /// Keep only the images named in this list (first CSV column, or one name per line in a .txt).
    #[arg(long, value_name = "FILE")]
    pub list: Option<PathBuf>,
    /// Keep a seeded random sample of N images (after --list).
    #[arg(long, value_name = "N")]
    pub sample: Option<usize>,
    /// Seed of --sample; the same seed gives the same images.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Stratify --sample: equal shares per class, per true count, or per stain.
    #[arg(long, value_enum, default_value = "none")]
    pub stratify: StratifyArg,
}

/// Strata of `--sample`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum StratifyArg {
    None,
    Class,
    Count,
    Stain,
}

impl DatasetArgs {
    /// Opens the dataset and applies `--list`; listed names without an image become problems.
    pub fn open(&self) -> anyhow::Result<Dataset> {
        let opts = OpenOptions {
            kind: self.kind,
            masks: self.masks.clone(),
            counts: self.counts.clone(),
            crop_info_bar: self.crop_info_bar,
        };
        let mut ds = dataset::open(&self.path, &opts)
            .with_context(|| format!("cannot open dataset {}", self.path.display()))?;
        if let Some(list) = &self.list {
            let names = subset::read_list(list)?;
            let (chosen, problems) = subset::select_by_names(&ds.samples, &names);
            ds.samples = chosen;
            for reason in problems {
                ds.problems.push(dataset::Problem {
                    path: list.clone(),
                    reason,
                });
            }
        }
        if let Some(n) = self.sample {
            let strata = match self.stratify {
                StratifyArg::None => subset::Strata::None,
                StratifyArg::Class => subset::Strata::Class,
                StratifyArg::Count => subset::Strata::Count,
                StratifyArg::Stain => subset::Strata::Meta(dataset::meta::STAIN),
            };
            ds.samples = subset::sample(&ds.samples, n, self.seed, strata);
        }
        Ok(ds)
    }
}

#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    #[command(flatten)]
    pub dataset: DatasetArgs,
    /// Do not decode the images (faster; sizes and bit depths are then unknown).
    #[arg(long)]
    pub no_read: bool,
    /// Print a JSON object instead of text (includes one entry per image).
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvertTo {
    /// Binary masks (any non-zero pixel is foreground) to label TIFFs by connected components.
    Labels,
    /// Any image to 8 bits with a percentile contrast stretch, written as PNG.
    Png8,
}

/// Pixel connectivity on the command line.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectivityArg {
    /// Edge neighbours only.
    #[value(name = "4")]
    Four,
    /// Edge and corner neighbours.
    #[value(name = "8")]
    Eight,
}

#[derive(clap::Args, Debug)]
pub struct ConvertArgs {
    /// What to convert to.
    #[arg(long, value_enum)]
    pub to: ConvertTo,
    /// Image files or folders of images.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Output folder (created if needed); outputs keep the input file stem.
    #[arg(long, short)]
    pub out: PathBuf,
    /// Labels: pixel connectivity, 4 or 8.
    #[arg(long, value_enum, default_value = "8")]
    pub connectivity: ConnectivityArg,
    /// Png8: lower and upper percentiles of the contrast stretch.
    #[arg(long, default_value_t = 0.5)]
    pub low: f64,
    #[arg(long, default_value_t = 99.5)]
    pub high: f64,
    /// Page of multi-page TIFF inputs to convert (0-based).
    #[arg(long, default_value_t = 0)]
    pub page: usize,
}

pub fn run(cmd: DataCommand, ctx: &Ctx) -> anyhow::Result<i32> {
    match cmd {
        DataCommand::Inspect(a) => inspect(a, ctx),
        DataCommand::Convert(a) => convert(a, ctx),
    }
}

#[derive(Serialize)]
struct ImageInfo {
    id: String,
    path: PathBuf,
    count: Option<f64>,
    class: Option<String>,
    mask: Option<PathBuf>,
    meta: BTreeMap<String, String>,
    width: Option<u32>,
    height: Option<u32>,
    bit_depth: Option<u32>,
    channels: Option<String>,
    /// Pages of a multi-page TIFF (the first is what methods read unless told otherwise).
    pages: Option<usize>,
    error: Option<String>,
    /// Why the truth mask cannot be used (unreadable, or not the image's size).
    mask_error: Option<String>,
}

/// Why a truth mask cannot be scored against an image of `width`×`height`, if it cannot.
fn check_mask(mask: &std::path::Path, width: u32, height: u32) -> Option<String> {
    match io::read_image(mask) {
        Err(e) => Some(format!("truth mask: {e}")),
        Ok(m) if (m.width(), m.height()) != (width, height) => Some(format!(
            "truth mask {} is {}x{}, the image is {width}x{height}",
            mask.display(),
            m.width(),
            m.height()
        )),
        Ok(_) => None,
    }
}

#[derive(Serialize)]
struct Report {
    path: PathBuf,
    kind: String,
    images: usize,
    unreadable: usize,
    sizes: BTreeMap<String, usize>,
    formats: BTreeMap<String, usize>,
    multi_page: usize,
    with_count: usize,
    count_min: Option<f64>,
    count_max: Option<f64>,
    with_class: usize,
    with_mask: usize,
    with_question: usize,
    per_class: BTreeMap<String, usize>,
    per_count: BTreeMap<String, usize>,
    per_meta: BTreeMap<String, BTreeMap<String, usize>>,
    problems: Vec<dataset::Problem>,
    samples: Vec<ImageInfo>,
}

fn inspect(a: InspectArgs, ctx: &Ctx) -> anyhow::Result<i32> {
    let ds = a.dataset.open()?;
    let pb = crate::progress::bar(ds.samples.len() as u64, "reading", ctx.quiet || a.no_read);
    let infos: Vec<ImageInfo> = ds
        .samples
        .par_iter()
        .map(|s| {
            let mut info = ImageInfo {
                id: s.id.clone(),
                path: s.path.clone(),
                count: s.truth.count,
                class: s.truth.class.clone(),
                mask: s.truth.mask.clone(),
                meta: s.meta.clone(),
                width: None,
                height: None,
                bit_depth: None,
                channels: None,
                pages: None,
                error: None,
                mask_error: None,
            };
            if a.no_read {
                // Without decoding, still name what cannot be opened at all.
                match std::fs::metadata(&s.path) {
                    Err(e) => info.error = Some(format!("{}: {e}", s.path.display())),
                    Ok(m) if m.len() == 0 => {
                        info.error = Some(format!("{}: file is empty (0 bytes)", s.path.display()))
                    }
                    Ok(_) => {}
                }
            } else {
                match s.load_image() {
                    Ok(img) => {
                        info.width = Some(img.width());
                        info.height = Some(img.height());
                        info.bit_depth = Some(img.bit_depth().bits());
                        info.channels = Some(format!("{:?}", img.channels()).to_lowercase());
                        if io::detect_format(&s.path).ok() == Some(io::Format::Tiff) {
                            info.pages = io::tiff_page_count(&s.path).ok();
                        }
                        if let Some(m) = &s.truth.mask {
                            info.mask_error = check_mask(m, img.width(), img.height());
                        }
                    }
                    Err(e) => info.error = Some(e.to_string()),
                }
                pb.inc(1);
            }
            info
        })
        .collect();
    pb.finish_and_clear();
    let mut r = Report {
        path: a.dataset.path.clone(),
        kind: ds.kind.to_string(),
        images: infos.len(),
        unreadable: infos.iter().filter(|i| i.error.is_some()).count(),
        sizes: BTreeMap::new(),
        formats: BTreeMap::new(),
        multi_page: infos
            .iter()
            .filter(|i| i.pages.is_some_and(|p| p > 1))
            .count(),
        with_count: 0,
        count_min: None,
        count_max: None,
        with_class: 0,
        with_mask: 0,
        with_question: ds
            .samples
            .iter()
            .filter(|s| s.truth.question.is_some())
            .count(),
        per_class: BTreeMap::new(),
        per_count: BTreeMap::new(),
        per_meta: BTreeMap::new(),
        problems: ds.problems.clone(),
        samples: Vec::new(),
    };
    for i in &infos {
        if let (Some(w), Some(h)) = (i.width, i.height) {
            *r.sizes.entry(format!("{w}x{h}")).or_default() += 1;
        }
        if let (Some(b), Some(c)) = (i.bit_depth, &i.channels) {
            *r.formats.entry(format!("{b}-bit {c}")).or_default() += 1;
        }
        if let Some(c) = i.count {
            r.with_count += 1;
            r.count_min = Some(r.count_min.map_or(c, |m: f64| m.min(c)));
            r.count_max = Some(r.count_max.map_or(c, |m: f64| m.max(c)));
            *r.per_count.entry(format!("{c}")).or_default() += 1;
        }
        if let Some(c) = &i.class {
            r.with_class += 1;
            *r.per_class.entry(c.clone()).or_default() += 1;
        }
        if i.mask.is_some() {
            r.with_mask += 1;
        }
        for (k, v) in &i.meta {
            use dataset::meta;
            if [meta::STAIN, meta::BLUR, meta::SITE, meta::CLASS_HINT].contains(&k.as_str()) {
                *r.per_meta
                    .entry(k.clone())
                    .or_default()
                    .entry(v.clone())
                    .or_default() += 1;
            }
        }
        if let Some(e) = &i.error {
            r.problems.push(dataset::Problem {
                path: i.path.clone(),
                reason: e.clone(),
            });
        }
        if let (Some(e), Some(m)) = (&i.mask_error, &i.mask) {
            r.problems.push(dataset::Problem {
                path: m.clone(),
                reason: e.clone(),
            });
        }
    }
    if infos.is_empty() {
        r.problems.push(dataset::Problem {
            path: a.dataset.path.clone(),
            reason: format!(
                "no images found in {} (looked for {})",
                a.dataset.path.display(),
                io::IMAGE_EXTENSIONS.join(", ")
            ),
        });
    }
    let failed = !r.problems.is_empty();
    if a.json {
        r.samples = infos;
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print_report(&r, &infos, a.no_read);
    }
    Ok(if failed { exit::PARTIAL } else { exit::SUCCESS })
}

fn summary(m: &BTreeMap<String, usize>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k} ({v})"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn print_report(r: &Report, infos: &[ImageInfo], no_read: bool) {
    println!("dataset   {} ({})", r.path.display(), r.kind);
    println!("images    {} ({} unreadable)", r.images, r.unreadable);
    if !no_read {
        println!("sizes     {}", summary(&r.sizes));
        println!("formats   {}", summary(&r.formats));
        if r.multi_page > 0 {
            println!(
                "stacks    {} multi-page TIFFs (page 0 is used; `mica data convert --page N` extracts others)",
                r.multi_page
            );
        }
    }
    let range = match (r.count_min, r.count_max) {
        (Some(lo), Some(hi)) => format!(", {lo}-{hi}"),
        _ => String::new(),
    };
    println!(
        "truth     count {}{range}; class {}; mask {}; question {}",
        r.with_count, r.with_class, r.with_mask, r.with_question
    );
    for (k, m) in &r.per_meta {
        println!("{k:<9} {}", summary(m));
    }
    if !r.per_class.is_empty() {
        println!("classes   {}", summary(&r.per_class));
    }
    if !r.per_count.is_empty() {
        let mut counts: Vec<(f64, usize)> = r
            .per_count
            .iter()
            .map(|(k, v)| (k.parse().unwrap_or(0.0), *v))
            .collect();
        counts.sort_by(|a, b| a.0.total_cmp(&b.0));
        let s: Vec<String> = counts.iter().map(|(c, n)| format!("{c} ({n})")).collect();
        println!("counts    {}", s.join(", "));
    }
    let blurred: Vec<&ImageInfo> = infos
        .iter()
        .filter(|i| {
            i.meta
                .get(dataset::meta::F1_SCENE)
                .is_some_and(|s| *s != i.id)
        })
        .collect();
    if !blurred.is_empty() {
        let with_mask = blurred.iter().filter(|i| i.mask.is_some()).count();
        println!(
            "f1 scenes {} blurred images mapped to their in-focus scene, e.g. {} -> {}; {} with an F1 mask{}",
            blurred.len(),
            blurred[0].id,
            blurred[0].meta[dataset::meta::F1_SCENE],
            with_mask,
            if with_mask < blurred.len() { " (give the F1 mask folder with --masks DIR)" } else { "" }
        );
    }
    if r.problems.is_empty() {
        println!("problems  none");
    } else {
        println!("problems  {}", r.problems.len());
        for p in &r.problems {
            println!("  {}: {}", p.path.display(), p.reason);
        }
    }
}

/// Image files named directly or found in the given folders, sorted per folder.
pub fn expand_inputs(inputs: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in inputs {
        if p.is_dir() {
            out.extend(dataset::list_images(p)?);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn stem(p: &Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image".into())
}

fn convert(a: ConvertArgs, ctx: &Ctx) -> anyhow::Result<i32> {
    let files = expand_inputs(&a.inputs)?;
    if files.is_empty() {
        anyhow::bail!("no image files in {:?}", a.inputs);
    }
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create {}", a.out.display()))?;
    let conn = match a.connectivity {
        ConnectivityArg::Four => Connectivity::Four,
        ConnectivityArg::Eight => Connectivity::Eight,
    };
    let pb = crate::progress::bar(files.len() as u64, "converting", ctx.quiet);
    let results: Vec<(PathBuf, anyhow::Result<PathBuf>)> = files
        .par_iter()
        .map(|f| {
            let r = (|| -> anyhow::Result<PathBuf> {
                let img = if a.page == 0 {
                    io::read_image(f)?
                } else {
                    io::read_tiff_page(f, a.page)?
                };
                match a.to {
                    ConvertTo::Labels => {
                        let labels =
                            BinaryMask::from_image_above(&img, 0.0).connected_components(conn);
                        let name = f.file_name().unwrap_or_default().to_string_lossy();
                        let out = a.out.join(mica_core::naming::labels_file_name(&name));
                        io::write_label_tiff(&out, &labels)?;
                        Ok(out)
                    }
                    ConvertTo::Png8 => {
                        let out = a.out.join(format!("{}.png", stem(f)));
                        io::write_png(&out, &img.stretch_to_u8(a.low, a.high)?)?;
                        Ok(out)
                    }
                }
            })();
            pb.inc(1);
            (f.clone(), r)
        })
        .collect();
    pb.finish_and_clear();
    let mut failed = 0;
    for (f, r) in &results {
        if let Err(e) = r {
            failed += 1;
            eprintln!("error: {}: {e:#}", f.display());
        }
    }
    if !ctx.quiet {
        eprintln!(
            "wrote {} files to {}",
            results.len() - failed,
            a.out.display()
        );
    }
    Ok(if failed > 0 {
        exit::PARTIAL
    } else {
        exit::SUCCESS
    })
}
