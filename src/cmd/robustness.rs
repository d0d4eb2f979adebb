//! `mica robustness` (issue #8): degradation curves of a method under perturbations of growing
//! severity and under crowding, on generated or real images, with real blurred BBBC005 images as
//! anchor points on the blur curve.
//!
//! The work is done by `mica_synth::robustness`; this module picks the method and images, and
//! writes `robustness.csv`, `robustness.json` (`mica_synth::robustness::RobustnessResults`) and one
//! `robustness_<axis>.svg` per perturbation into `--out`.

use super::Ctx;
use crate::exit;
use anyhow::{bail, Context};
use mica_classical::{Classical, Preset};
use mica_core::dataset::{self, subset, DatasetKind, OpenOptions, Sample};
use mica_core::{io, BinaryMask, Segmenter};
use mica_synth::robustness::{
    add_anchor, anchor_point, crowding_curve, curves_svg, perturbation_curve, place_anchor,
    write_csv, Case, Curve, Method, RobustnessResults,
};
use mica_synth::{generate, CellGenConfig, PerturbationKind, Truth};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Methods to test (comma-separated or repeated): classical, sam, or a vision-language model
    /// as provider:model (e.g. openai:gpt-4o, gemini:gemini-3.5-flash, ollama:llava:13b), which
    /// counts (no Dice or instance F1). Each method gets its own curve on every axis.
    #[arg(long, value_delimiter = ',', default_value = "classical")]
    pub method: Vec<String>,
    /// What a vision-language model is asked to count.
    #[arg(
        long,
        default_value = "cells",
        value_name = "TEXT",
        help_heading = "Vision-language models"
    )]
    pub objects: String,
    /// API base URL of the vision-language model (else OPENAI_BASE_URL, GEMINI_BASE_URL or
    /// OLLAMA_HOST, else the public default).
    #[arg(long, value_name = "URL", help_heading = "Vision-language models")]
    pub base_url: Option<String>,
    /// Prompt variant: study (the study's protocol) or domain.
    #[arg(
        long,
        default_value = "study",
        value_name = "NAME",
        help_heading = "Vision-language models"
    )]
    pub prompt_variant: String,
    /// Response cache database (default: that of `mica count --model`).
    #[arg(long, value_name = "FILE", help_heading = "Vision-language models")]
    pub cache: Option<PathBuf>,
    /// Neither read nor write the response cache.
    #[arg(
        long,
        conflicts_with = "cache",
        help_heading = "Vision-language models"
    )]
    pub no_cache: bool,
    /// Stop before a request that could take this run's spending above USD.
    #[arg(long, value_name = "USD", help_heading = "Vision-language models")]
    pub max_cost: Option<f64>,
    /// SAM flags, used when --method includes sam.
    #[command(flatten)]
    pub sam: super::sam::SamOptions,
    /// Classical preset: fluorescence-nuclei, fluorescence-cells, sem-particles, sem-fibres,
    /// textbook.
    #[arg(long, default_value = "fluorescence-nuclei")]
    pub preset: String,
    /// Perturbations (comma-separated or repeated): blur, gaussian-noise, poisson-noise, contrast,
    /// brightness, uneven-illumination, jpeg, debris, scratches, info-bar, crowding.
    #[arg(long, value_delimiter = ',', required = true)]
    pub perturbation: Vec<String>,
    /// Severities in the perturbation's unit (comma-separated); default: a range per perturbation.
    /// For crowding: cell counts.
    #[arg(long, value_delimiter = ',')]
    pub severities: Vec<f64>,
    /// Images to perturb: `generated` (the synthetic generator) or a BBBC005 folder with masks/.
    #[arg(long, default_value = "generated", value_name = "generated|DIR")]
    pub data: String,
    /// BBBC005 stain to use from --data (1 or 2).
    #[arg(long, default_value_t = 1)]
    pub stain: u32,
    /// Folder of really blurred BBBC005 images (e.g. ../shared/data/bbbc005-blur): each blur level
    /// (F23, F48) becomes an anchor point on the blur curve. With a BBBC005 --data, the curve is
    /// computed on the in-focus scenes of those same images.
    #[arg(long, value_name = "DIR")]
    pub anchors: Option<PathBuf>,
    /// Generator preset for generated images: bbbc005-w1, bbbc005-w2.
    #[arg(long, default_value = "bbbc005-w1")]
    pub generator: String,
    /// Cells per generated image for perturbation curves.
    #[arg(long, default_value_t = 30)]
    pub count: usize,
    /// Clustering probabilities for crowding, one line each.
    #[arg(long, value_delimiter = ',', default_value = "0,0.25,0.5")]
    pub clustering: Vec<f64>,
    /// A real image and its instance labels (e.g. ../shared/data/stardist-nuclei/img2d.tif
    /// mask2d.tif) as a crowding anchor: its share of touching objects picks the clustering
    /// probability whose generated images touch as much, that line is added (its counts
    /// include the image's), and the image is scored on it. Pair with a --generator fitted to
    /// the image (stardist-nuclei for the StarDist sample).
    #[arg(long, num_args = 2, value_names = ["IMAGE", "LABELS"])]
    pub crowding_anchor: Vec<PathBuf>,
    /// Images per point (generated), or the number of real images used.
    #[arg(long, default_value_t = 8)]
    pub images: usize,
    /// Debris takes its intensities from this image's texture (tiled, stretched from its 1st to
    /// 99th percentile) instead of plain bright or dark values.
    #[arg(long, value_name = "IMAGE")]
    pub debris_texture: Option<PathBuf>,
    /// Seed of the generator, the perturbations and the image sample.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output folder (created).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// Default severities per axis, in the axis's unit.
fn default_severities(axis: &str) -> Vec<f64> {
    let v: &[f64] = match axis {
        "blur" => &[0.0, 4.0, 8.0, 16.0, 23.0, 32.0, 48.0, 64.0],
        "gaussian-noise" | "poisson-noise" => &[0.0, 2.0, 5.0, 10.0, 20.0, 30.0],
        "contrast" => &[0.0, 25.0, 50.0, 75.0, 90.0],
        "brightness" => &[-20.0, -10.0, 0.0, 10.0, 20.0, 30.0],
        "uneven-illumination" => &[0.0, 10.0, 20.0, 40.0, 60.0],
        "jpeg" => &[0.0, 50.0, 80.0, 90.0, 95.0, 98.0],
        "debris" => &[0.0, 2.0, 5.0, 10.0, 20.0, 40.0],
        "scratches" => &[0.0, 1.0, 2.0, 4.0, 8.0],
        "info-bar" => &[0.0, 10.0, 20.0, 30.0],
        "crowding" => &[1.0, 10.0, 25.0, 50.0, 75.0, 100.0],
        _ => &[],
    };
    v.to_vec()
}

fn classical(preset: &str) -> anyhow::Result<Classical> {
    let p = Preset::ALL
        .into_iter()
        .find(|p| p.name() == preset)
        .with_context(|| {
            format!(
                "unknown classical preset {preset:?} (known: {})",
                Preset::known_names()
            )
        })?;
    Classical::preset(p).with_context(|| format!("classical preset {preset}"))
}

/// Reads a BBBC005 sample as a case: image, count and foreground mask.
fn load_case(s: &Sample) -> anyhow::Result<Case> {
    let image = s
        .load_image()
        .with_context(|| format!("{}", s.path.display()))?;
    let foreground = match &s.truth.mask {
        Some(m) => Some(BinaryMask::from_image_above(
            &io::read_image(m).with_context(|| format!("mask {}", m.display()))?,
            0.0,
        )),
        None => None,
    };
    Ok(Case {
        id: s.id.clone(),
        image,
        truth: Truth {
            count: s.truth.count,
            labels: None,
            foreground,
        },
    })
}

/// A real image with instance labels placed on the crowding axis.
struct CrowdedAnchor {
    case: Case,
    count: usize,
    label: String,
    /// The clustering probability whose generated images touch most like it, and their
    /// touching fraction.
    clustering: f64,
    generated_touching: f64,
}

/// Reads a real labelled image, measures how crowded it is and finds the generator's matching
/// clustering probability (0 to 0.6 in steps of 0.05, 4 images each).
fn crowded_anchor(
    image: &Path,
    labels: &Path,
    gen_cfg: &CellGenConfig,
    seed: u64,
) -> anyhow::Result<CrowdedAnchor> {
    let img =
        io::read_image(image).with_context(|| format!("crowding anchor {}", image.display()))?;
    let lab = io::read_label_image(labels)
        .with_context(|| format!("crowding anchor labels {}", labels.display()))?;
    let stats = mica_synth::crowding::crowding_stats(&img, &lab)
        .with_context(|| format!("crowding anchor {}", image.display()))?;
    let candidates: Vec<f64> = (0..=12).map(|i| i as f64 * 0.05).collect();
    let (clustering, generated_touching) = mica_synth::crowding::matching_clustering(
        gen_cfg,
        stats.objects,
        stats.touching_fraction,
        &candidates,
        4,
        seed,
    )?
    .context("no clustering candidates")?;
    let name = image
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    eprintln!(
        "crowding anchor {name}: {} objects, {:.0} % touching; generated images touch {:.0} % at clustering {clustering}",
        stats.objects,
        100.0 * stats.touching_fraction,
        100.0 * generated_touching
    );
    Ok(CrowdedAnchor {
        label: format!(
            "{name} (real, {} objects, {:.0} % touching)",
            stats.objects,
            100.0 * stats.touching_fraction
        ),
        count: stats.objects,
        case: Case {
            id: name,
            truth: Truth {
                count: Some(stats.objects as f64),
                foreground: Some(lab.foreground()),
                labels: Some(lab),
            },
            image: img,
        },
        clustering,
        generated_touching,
    })
}

/// Up to `k` items spread evenly over `items` (first and last included), in order.
fn spread<T: Clone>(items: &[T], k: usize) -> Vec<T> {
    let n = items.len();
    if n <= k {
        return items.to_vec();
    }
    (0..k)
        .map(|i| items[if k == 1 { 0 } else { i * (n - 1) / (k - 1) }].clone())
        .collect()
}

/// Loads cases, reporting (not failing on) the ones that cannot be read.
fn load_cases(samples: &[Sample], failures: &mut usize) -> Vec<Case> {
    samples
        .iter()
        .filter_map(|s| match load_case(s) {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("error: {e:#}");
                *failures += 1;
                None
            }
        })
        .collect()
}

fn open_bbbc005(path: &Path, masks: Option<PathBuf>) -> anyhow::Result<Vec<Sample>> {
    let ds = dataset::open(
        path,
        &OpenOptions {
            kind: Some(DatasetKind::Bbbc005),
            masks,
            ..OpenOptions::default()
        },
    )
    .with_context(|| format!("BBBC005 dataset {}", path.display()))?;
    for p in &ds.problems {
        eprintln!("warning: skipped {}: {}", p.path.display(), p.reason);
    }
    Ok(ds.samples)
}

/// A method of the run, built: a segmenter or a vision-language counter.
enum Built {
    Segmenter(Box<dyn Segmenter>),
    Counter(Box<super::vlm::VlmCounter>),
}

impl Built {
    fn method(&self) -> Method<'_> {
        match self {
            Built::Segmenter(s) => Method::Segmenter(s.as_ref()),
            Built::Counter(c) => Method::Counter(c.as_ref()),
        }
    }
}

/// The VLM options of `mica count --model` (their defaults) with this command's VLM flags.
fn vlm_options(args: &Args) -> anyhow::Result<super::vlm::VlmOptions> {
    use clap::Parser;
    #[derive(Parser)]
    struct Defaults {
        #[command(flatten)]
        vlm: super::vlm::VlmOptions,
    }
    let mut o = Defaults::try_parse_from(["mica"])?.vlm;
    o.objects = args.objects.clone();
    o.base_url = args.base_url.clone();
    o.prompt_variant = args.prompt_variant.clone();
    o.cache = args.cache.clone();
    o.no_cache = args.no_cache;
    o.max_cost = args.max_cost;
    Ok(o)
}

pub fn run(args: Args, ctx: &Ctx) -> anyhow::Result<i32> {
    let mut methods: Vec<&str> = Vec::new();
    for m in &args.method {
        let known =
            matches!(m.as_str(), "classical" | "sam") || mica_vlm::ModelSpec::parse(m).is_ok();
        if !known {
            bail!("unknown method {m:?}: use classical, sam or a vision-language model as provider:model (e.g. openai:gpt-4o)");
        }
        if !methods.contains(&m.as_str()) {
            methods.push(m);
        }
    }
    if methods.is_empty() {
        bail!("--method needs at least one method (classical, sam, provider:model)");
    }
    let gen_cfg = CellGenConfig::preset(&args.generator).with_context(|| {
        format!(
            "unknown generator preset {:?} (known: {})",
            args.generator,
            CellGenConfig::PRESETS.join(", ")
        )
    })?;
    if args.images == 0 {
        bail!("--images must be at least 1");
    }
    if !args.crowding_anchor.is_empty() && !args.perturbation.iter().any(|p| p == "crowding") {
        bail!("--crowding-anchor places a real image on the crowding curves: add --perturbation crowding");
    }
    for a in &args.perturbation {
        if a != "crowding" && PerturbationKind::from_name(a).is_none() {
            bail!(
                "unknown perturbation {a:?} (known: {}, crowding)",
                PerturbationKind::ALL.map(|k| k.name()).join(", ")
            );
        }
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    // Methods are built after the cheap checks: SAM loads its weights here.
    let segs: Vec<Built> = methods
        .iter()
        .map(|m| -> anyhow::Result<Built> {
            Ok(match *m {
                "sam" => {
                    Built::Segmenter(super::sam::segmenter_with_preset(&args.sam, None, None)?)
                }
                "classical" => Built::Segmenter(Box::new(classical(&args.preset)?)),
                model => {
                    Built::Counter(Box::new(super::vlm::counter(model, &vlm_options(&args)?)?))
                }
            })
        })
        .collect::<anyhow::Result<_>>()?;

    let texture = match &args.debris_texture {
        Some(p) => {
            Some(io::read_image(p).with_context(|| format!("debris texture {}", p.display()))?)
        }
        None => None,
    };
    let mut failures = 0usize;
    // Images for the perturbation curves, and the anchors by blur level.
    let mut anchors: BTreeMap<u32, Vec<Case>> = BTreeMap::new();
    // Real images of the chosen stain (empty for generated data): crowding anchors by count.
    let mut real_all: Vec<Sample> = Vec::new();
    let (cases, source) = if args.data == "generated" {
        let cfg = CellGenConfig {
            count: args.count,
            ..gen_cfg.clone()
        };
        let cases = (0..args.images)
            .map(|i| {
                let g = generate(&cfg, args.seed.wrapping_add(i as u64))?;
                Ok(Case {
                    id: format!("generated-{i}"),
                    truth: g.truth(),
                    image: g.image,
                })
            })
            .collect::<Result<Vec<_>, mica_synth::SynthError>>()?;
        (
            cases,
            format!("generated ({}, {} cells)", args.generator, args.count),
        )
    } else {
        let root = PathBuf::from(&args.data);
        let stain = format!("w{}", args.stain);
        let all: Vec<Sample> = open_bbbc005(&root, None)?
            .into_iter()
            .filter(|s| s.stain() == Some(stain.as_str()))
            .collect();
        let chosen: Vec<Sample> = match &args.anchors {
            Some(adir) => {
                // The in-focus scenes of the anchor images, then those anchors.
                let blurred: Vec<Sample> = open_bbbc005(adir, Some(root.join("masks")))?
                    .into_iter()
                    .filter(|s| s.stain() == Some(stain.as_str()))
                    .collect();
                let mut scenes: Vec<String> = blurred
                    .iter()
                    .filter_map(|s| s.f1_scene().map(str::to_string))
                    .collect();
                scenes.sort();
                scenes.dedup();
                // Up to --images scenes spread over the sorted names (so over the counts,
                // which the names carry), not the first few (all one-cell scenes).
                let scenes = spread(&scenes, args.images);
                for s in blurred
                    .iter()
                    .filter(|s| s.f1_scene().is_some_and(|f| scenes.iter().any(|x| x == f)))
                {
                    let blur: u32 = s.blur().unwrap_or(0);
                    if let Ok(c) = load_case(s).inspect_err(|e| {
                        eprintln!("error: {e:#}");
                        failures += 1;
                    }) {
                        anchors.entry(blur).or_default().push(c);
                    }
                }
                all.iter()
                    .filter(|s| scenes.contains(&s.id))
                    .cloned()
                    .collect()
            }
            None => subset::sample(&all, args.images, args.seed, subset::Strata::Count),
        };
        real_all = all;
        if chosen.is_empty() {
            bail!(
                "no BBBC005 stain-{} images found in {}",
                args.stain,
                args.data
            );
        }
        (
            load_cases(&chosen, &mut failures),
            format!("BBBC005 {} ({stain})", args.data),
        )
    };
    if !ctx.quiet {
        eprintln!(
            "robustness: {} on {} image(s) from {source}",
            segs.iter()
                .map(|s| s.method().name())
                .collect::<Vec<_>>()
                .join(", "),
            cases.len()
        );
    }

    let mut curves: Vec<Curve> = Vec::new();
    for axis in &args.perturbation {
        let sev = if args.severities.is_empty() {
            if axis == "crowding" && !real_all.is_empty() {
                // Counts that BBBC005 has, so every point gets a real anchor.
                vec![1.0, 10.0, 27.0, 48.0, 74.0, 100.0]
            } else {
                default_severities(axis)
            }
        } else {
            args.severities.clone()
        };
        let t0 = std::time::Instant::now();
        if axis == "crowding" {
            let counts: Vec<usize> = sev.iter().map(|&c| c.max(0.0).round() as usize).collect();
            // Real images at each count (up to --images per count), read once.
            let mut real_cases = Vec::new();
            for &n in &counts {
                let at_n: Vec<Sample> = real_all
                    .iter()
                    .filter(|s| s.truth.count == Some(n as f64))
                    .take(args.images)
                    .cloned()
                    .collect();
                if !at_n.is_empty() {
                    real_cases.push((n, load_cases(&at_n, &mut failures)));
                }
            }
            // A real crowded image with instance labels, matched to a clustering probability.
            let real_crowded = match &args.crowding_anchor[..] {
                [image, labels] => Some(crowded_anchor(image, labels, &gen_cfg, args.seed)?),
                _ => None,
            };
            for seg in &segs {
                let seg = seg.method();
                // Real images scored once per method.
                let real_points: Vec<_> = real_cases
                    .iter()
                    .map(|(n, cs)| {
                        (
                            format!("BBBC005 C{n} (real, {} images)", cs.len()),
                            anchor_point(seg, *n as f64, cs),
                        )
                    })
                    .collect();
                for &cl in &args.clustering {
                    let mut c = crowding_curve(
                        seg,
                        &gen_cfg,
                        &counts,
                        cl,
                        args.images,
                        args.seed,
                        &format!("generated ({})", args.generator),
                    )?;
                    for (label, p) in &real_points {
                        place_anchor(&mut c, label, p.clone());
                    }
                    curves.push(c);
                }
                if let Some(a) = &real_crowded {
                    let mut with_n = counts.clone();
                    if !with_n.contains(&a.count) {
                        with_n.push(a.count);
                        with_n.sort_unstable();
                    }
                    let mut c = crowding_curve(
                        seg,
                        &gen_cfg,
                        &with_n,
                        a.clustering,
                        args.images,
                        args.seed,
                        &format!("generated ({})", args.generator),
                    )?;
                    c.series = format!(
                        "clustering {} (matched: generated {:.0} % touching)",
                        a.clustering,
                        100.0 * a.generated_touching
                    );
                    let p = anchor_point(seg, a.count as f64, std::slice::from_ref(&a.case));
                    place_anchor(&mut c, &a.label, p);
                    curves.push(c);
                }
            }
        } else {
            let kind = PerturbationKind::from_name(axis).context("checked above")?;
            for seg in &segs {
                let seg = seg.method();
                let mut c = perturbation_curve(
                    seg,
                    &cases,
                    kind,
                    &sev,
                    args.seed,
                    &source,
                    texture.as_ref(),
                )?;
                if kind == PerturbationKind::Blur {
                    for (blur, acases) in &anchors {
                        add_anchor(
                            &mut c,
                            seg,
                            &format!("BBBC005 F{blur} (real, {} images)", acases.len()),
                            *blur as f64,
                            acases,
                        );
                    }
                }
                curves.push(c);
            }
        }
        if !ctx.quiet {
            eprintln!("  {axis}: {:.1} s", t0.elapsed().as_secs_f64());
        }
    }

    let results = RobustnessResults {
        seed: args.seed,
        curves,
    };
    let csv_path = args.out.join("robustness.csv");
    let f = std::fs::File::create(&csv_path)
        .with_context(|| format!("creating {}", csv_path.display()))?;
    write_csv(&results, std::io::BufWriter::new(f))
        .with_context(|| format!("writing {}", csv_path.display()))?;
    let json_path = args.out.join("robustness.json");
    std::fs::write(&json_path, serde_json::to_string_pretty(&results)?)
        .with_context(|| format!("writing {}", json_path.display()))?;
    let mut axes: Vec<&str> = results.curves.iter().map(|c| c.axis.as_str()).collect();
    axes.dedup();
    for axis in axes {
        let cs: Vec<&Curve> = results.curves.iter().filter(|c| c.axis == axis).collect();
        let p = args.out.join(format!("robustness_{axis}.svg"));
        std::fs::write(&p, curves_svg(&cs)).with_context(|| format!("writing {}", p.display()))?;
    }

    let mut method_failures = 0;
    for c in &results.curves {
        println!(
            "{} | {}{}",
            c.method,
            c.axis,
            if c.series.is_empty() {
                String::new()
            } else {
                format!(" ({})", c.series)
            }
        );
        println!("  severity  images  failed  mean_dice  count_mae  count_bias  inst_f1@0.5");
        let f = |v: Option<f64>| v.map(|x| format!("{x:.3}")).unwrap_or_else(|| "-".into());
        for p in &c.points {
            method_failures += p.n_failed;
            println!(
                "  {:>8}  {:>6}  {:>6}  {:>9}  {:>9}  {:>10}  {:>11}",
                p.severity,
                p.n_images,
                p.n_failed,
                f(p.mean_dice),
                f(p.count_mae),
                f(p.count_bias),
                f(p.mean_instance_f1_iou50)
            );
        }
        for a in &c.anchors {
            method_failures += a.point.n_failed;
            println!(
                "  anchor {}: severity {} dice {} (curve {}), count MAE {} (curve {})",
                a.label,
                a.point.severity,
                f(a.point.mean_dice),
                f(a.curve_dice),
                f(a.point.count_mae),
                f(a.curve_count_mae)
            );
        }
    }
    if !ctx.quiet {
        for b in &segs {
            if let Built::Counter(c) = b {
                let (calls, hits) = c.calls_and_hits();
                eprintln!(
                    "{}: {calls} API call(s), {hits} answer(s) from the cache",
                    c.method_name()
                );
            }
        }
        eprintln!("wrote {}", args.out.display());
    }
    if failures + method_failures > 0 {
        eprintln!(
            "{failures} image(s) could not be read and the method failed on {method_failures} image(s)"
        );
        return Ok(exit::PARTIAL);
    }
    Ok(exit::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::spread;

    #[test]
    fn scenes_are_spread_over_the_list() {
        let v: Vec<u32> = (0..48).collect();
        assert_eq!(spread(&v, 4), vec![0, 15, 31, 47]);
        assert_eq!(spread(&v, 1), vec![0]);
        assert_eq!(spread(&v, 60).len(), 48);
        assert_eq!(spread(&v[..3], 3), vec![0, 1, 2]);
    }
}
