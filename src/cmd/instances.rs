//! The shared pipeline of `mica segment` and `mica count`: run any [`Segmenter`] over many images
//! in parallel with a progress bar, report bad images and go on, and write the outputs.
//!
//! Outputs in `--out DIR`, per image `<stem>_labels.tif` (16-bit label TIFF when the labels fit,
//! opened by napari, Fiji and CellProfiler) and `<stem>_overlay.png` (object outlines on the
//! contrast-stretched image), and for all images `objects.csv` (one row per object: the columns of
//! `mica_core::tables::OBJECTS_HEADER`, scikit-image `regionprops` measures) and
//! `counts.csv` (image, count); with prompt files (`--points`, `--boxes`), `prompt_labels.csv`
//! (image, object, label, note).

use anyhow::{bail, Context};
use mica_core::{ObjectProps, Segmenter};
use rayon::prelude::*;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Colour of the outlines in overlays (yellow: visible on gray).
const OUTLINE_RGB: [u8; 3] = [255, 220, 0];

/// Which files to write for each image.
#[derive(Debug, Clone)]
pub struct Outputs {
    /// Folder for label TIFFs, overlays and the CSVs; nothing is written when `None`.
    pub dir: Option<PathBuf>,
    /// Pixel size given by the user (µm); else each image's own calibration, if it has one.
    pub pixel_size: Option<mica_core::calibration::PixelSize>,
    /// Write each object's label number (as in `objects.csv`) on the overlays.
    pub numbers: bool,
}

/// What one image gave.
#[derive(Debug, Clone)]
pub struct ImageResult {
    /// The file name, used in tables.
    pub image: String,
    pub count: usize,
    /// Per-object measurements (only when outputs are written).
    pub objects: Vec<ObjectProps>,
    /// Objects named by prompt files, with their labels.
    pub named: Vec<mica_core::NamedObject>,
    /// The image's pixel size, when known (only when outputs are written).
    pub pixel_size: Option<mica_core::calibration::PixelSize>,
}

/// Results of a run, in input order: successes and failures (with the error, naming the image).
pub struct RunResult {
    pub results: Vec<Result<ImageResult, String>>,
}

impl RunResult {
    pub fn failures(&self) -> usize {
        self.results.iter().filter(|r| r.is_err()).count()
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

fn stem(p: &Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image".into())
}

/// Fails before any work when two inputs would write the same output files.
fn check_unique_stems(images: &[PathBuf]) -> anyhow::Result<()> {
    let mut seen: HashMap<String, &Path> = HashMap::new();
    for p in images {
        if let Some(prev) = seen.insert(stem(p), p) {
            bail!(
                "{} and {} have the same file stem: their outputs would overwrite each other; \
                 run them into different --out folders",
                prev.display(),
                p.display()
            );
        }
    }
    Ok(())
}

/// Longest side of an overlay PNG: larger images are subsampled for it (the label TIFF keeps
/// full resolution).
const OVERLAY_MAX_SIDE: u32 = 4096;

/// Memory an image's outputs take beyond the segmentation (overlay, TIFF encoding): per pixel,
/// and at most the overlay's own size.
fn outputs_memory(info: &mica_core::io::ImageInfo) -> u64 {
    4 * info.pixels() + 8 * OVERLAY_MAX_SIDE as u64 * OVERLAY_MAX_SIDE as u64
}

fn process_one(
    seg: &dyn Segmenter,
    path: &Path,
    outputs: &Outputs,
    budget: &mica_core::memory::MemoryBudget,
) -> Result<ImageResult, String> {
    // What the image will need, from its header, before anything is decoded.
    let info = mica_core::io::image_info(path).map_err(|e| e.to_string())?;
    let need = seg.memory_needed(&info)
        + if outputs.dir.is_some() {
            outputs_memory(&info)
        } else {
            0
        };
    let _reserved = budget.reserve(need).map_err(|why| {
        format!(
            "{}: a {}x{} image: {why}",
            path.display(),
            info.width,
            info.height
        )
    })?;
    let image = mica_core::io::read_image(path).map_err(|e| e.to_string())?;
    let _span = tracing::info_span!("segment", image = %path.display()).entered();
    let s = seg
        .segment_file(path, &image)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut objects = Vec::new();
    let mut pixel_size = None;
    if let Some(dir) = &outputs.dir {
        // A calibration the file claims but that cannot be read fails the image: no guess.
        pixel_size = match outputs.pixel_size {
            Some(p) => Some(p),
            None => mica_core::calibration::read_pixel_size(path).map_err(|e| e.to_string())?,
        };
        let name = file_name(path);
        let labels = dir.join(mica_core::naming::labels_file_name(&name));
        mica_core::io::write_label_tiff_calibrated(&labels, &s.labels, pixel_size.as_ref())
            .map_err(|e| e.to_string())?;
        objects = mica_core::object_properties(&s.labels, Some(&image))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let (mut overlay, step) = mica_core::render::outline_overlay_at_most(
            &image,
            &s.labels,
            OUTLINE_RGB,
            OVERLAY_MAX_SIDE,
        )
        .map_err(|e| format!("{}: overlay: {e}", path.display()))?;
        if outputs.numbers {
            let at: Vec<(u32, f64, f64)> = objects
                .iter()
                .map(|o| {
                    let k = step as f64;
                    (o.label, o.centroid_x / k, o.centroid_y / k)
                })
                .collect();
            let scale = if overlay.width().max(overlay.height()) >= 400 {
                2
            } else {
                1
            };
            overlay = mica_core::render::draw_numbers(overlay, &at, scale)
                .map_err(|e| format!("{}: overlay: {e}", path.display()))?;
        }
        let overlay_file = dir.join(mica_core::naming::overlay_file_name(&name));
        mica_core::io::write_png(&overlay_file, &overlay).map_err(|e| e.to_string())?;
    }
    Ok(ImageResult {
        // The image as the user named it: two inputs with one file name stay two rows.
        image: path.display().to_string(),
        count: s.count,
        objects,
        named: s.named_objects,
        pixel_size,
    })
}

/// Runs `seg` on every image with `jobs` threads (0 = all cores), with a progress bar; a bad
/// image is reported on stderr and the run goes on. Each image first reserves the memory it
/// will need from `budget` (refused with a message when it needs more than all of it). Writes the outputs when `outputs.dir` is set.
///
/// # Errors
/// Only for the run as a whole: the output folder or the CSVs cannot be written, or two inputs
/// share a file stem.
pub fn run(
    seg: &dyn Segmenter,
    images: &[PathBuf],
    outputs: &Outputs,
    jobs: usize,
    budget: &mica_core::memory::MemoryBudget,
    ctx: &super::Ctx,
) -> anyhow::Result<RunResult> {
    if images.is_empty() {
        bail!("no images given");
    }
    if let Some(dir) = &outputs.dir {
        check_unique_stems(images)?;
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create output folder {}", dir.display()))?;
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(jobs)
        .build()
        .context("cannot start worker threads")?;
    let bar = crate::progress::bar(images.len() as u64, "segment", ctx.quiet);
    let results: Vec<Result<ImageResult, String>> = pool.install(|| {
        images
            .par_iter()
            .map(|p| {
                let t0 = std::time::Instant::now();
                // A panic inside a method fails its image, not the batch.
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    process_one(seg, p, outputs, budget)
                }))
                .unwrap_or_else(|panic| {
                    Err(format!(
                        "{}: internal error: {}",
                        p.display(),
                        mica_core::panic_message(panic.as_ref())
                    ))
                });
                match &r {
                    Err(e) => bar.suspend(|| eprintln!("error: {e}")),
                    // `-v`: one line per image as it is done.
                    Ok(done) => bar.suspend(|| {
                        tracing::info!(
                            image = %p.display(),
                            objects = done.count,
                            ms = t0.elapsed().as_millis() as u64,
                            "segmented"
                        )
                    }),
                }
                bar.inc(1);
                r
            })
            .collect()
    });
    bar.finish_and_clear();
    let run = RunResult { results };
    if let Some(dir) = &outputs.dir {
        write_objects_csv(&dir.join("objects.csv"), &run)?;
        write_counts_csv(&dir.join("counts.csv"), &run)?;
        if run.results.iter().flatten().any(|r| !r.named.is_empty()) {
            write_prompt_labels_csv(&dir.join("prompt_labels.csv"), &run)?;
        }
    }
    Ok(run)
}

fn csv_writer(path: &Path) -> anyhow::Result<csv::Writer<std::fs::File>> {
    csv::Writer::from_path(path).with_context(|| format!("cannot write {}", path.display()))
}

/// One row per object of every image that succeeded.
pub fn write_objects_csv(path: &Path, run: &RunResult) -> anyhow::Result<()> {
    let mut w = csv_writer(path)?;
    let um = run.results.iter().flatten().any(|r| r.pixel_size.is_some());
    w.write_record(mica_core::tables::objects_header(um))?;
    for r in run.results.iter().flatten() {
        mica_core::tables::write_object_rows(
            &mut w,
            &r.image,
            &r.objects,
            r.pixel_size.as_ref(),
            um,
        )?;
    }
    w.flush()
        .with_context(|| format!("cannot write {}", path.display()))
}

/// `image,object,label,note`: the label of every object a prompt file named (empty, with the
/// reason in `note`, when it has none).
pub fn write_prompt_labels_csv(path: &Path, run: &RunResult) -> anyhow::Result<()> {
    let mut w = csv_writer(path)?;
    w.write_record(mica_core::tables::PROMPT_LABELS_HEADER)?;
    for r in run.results.iter().flatten() {
        mica_core::tables::write_prompt_label_rows(&mut w, &r.image, &r.named)?;
    }
    w.flush()
        .with_context(|| format!("cannot write {}", path.display()))
}

/// `image,count` for every image that succeeded.
pub fn write_counts_csv(path: &Path, run: &RunResult) -> anyhow::Result<()> {
    let mut f =
        std::fs::File::create(path).with_context(|| format!("cannot write {}", path.display()))?;
    write_counts(&mut f, run).with_context(|| format!("cannot write {}", path.display()))
}

/// Writes `image,count` CSV rows (with header) to `out`.
pub fn write_counts(out: &mut dyn Write, run: &RunResult) -> anyhow::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(mica_core::tables::COUNTS_HEADER)?;
    for r in run.results.iter().flatten() {
        mica_core::tables::write_count_row(&mut w, &r.image, r.count)?;
    }
    w.flush()?;
    Ok(())
}

/// The results as JSON: `[{"image": ..., "count": n}, {"image": ..., "error": "..."}]`.
pub fn counts_json(run: &RunResult, images: &[PathBuf]) -> serde_json::Value {
    serde_json::Value::Array(
        run.results
            .iter()
            .zip(images)
            .map(|(r, p)| match r {
                Ok(r) => serde_json::json!({"image": r.image, "count": r.count}),
                Err(e) => serde_json::json!({"image": file_name(p), "error": e}),
            })
            .collect(),
    )
}
