//! Accuracy of the classical presets on BBBC005 (count MAE and foreground Dice per stain and blur
//! level) and on the NFFA SEM crops (count MAE per class).
//!
//! ```text
//! cargo run --release -p mica-classical --example evaluate -- [--sites 1,2] [--settings FILE] PRESET...
//! ```
//! Reads `../shared/data` next to the repository (or `$MICA_SHARED/data`). `--sites` keeps only
//! those BBBC005 sites (to choose settings on some sites and report on the others).

use mica_classical::{Classical, Preset, Settings};
use mica_core::dataset::{self, OpenOptions, Sample};
use mica_core::BinaryMask;
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::path::PathBuf;

fn shared() -> PathBuf {
    std::env::var_os("MICA_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared")))
}

fn dice(truth: &BinaryMask, pred: &BinaryMask) -> f64 {
    let (t, p) = (truth.as_slice(), pred.as_slice());
    let inter = t.iter().zip(p).filter(|(a, b)| **a && **b).count() as f64;
    let sum = (truth.area() + pred.area()) as f64;
    if sum == 0.0 {
        1.0
    } else {
        2.0 * inter / sum
    }
}

struct Row {
    group: String,
    truth: f64,
    predicted: f64,
    dice: Option<f64>,
}

fn evaluate(seg: &Classical, samples: &[Sample], group_of: &(dyn Fn(&Sample) -> String + Sync)) {
    let rows: Vec<Row> = samples
        .par_iter()
        .filter_map(|s| {
            let img = match s.load_image() {
                Ok(i) => i,
                Err(e) => {
                    eprintln!("error: {e}");
                    return None;
                }
            };
            let out = match seg.segment_image(&img) {
                Ok(o) => o,
                Err(e) => {
                    eprintln!("error: {}: {e}", s.path.display());
                    return None;
                }
            };
            let dice = s.truth.mask.as_ref().and_then(|m| {
                let mask = mica_core::io::read_image(m).ok()?;
                Some(dice(
                    &BinaryMask::from_image_above(&mask, 0.0),
                    &out.foreground,
                ))
            });
            Some(Row {
                group: group_of(s),
                truth: s.truth.count?,
                predicted: out.count as f64,
                dice,
            })
        })
        .collect();
    let mut groups: BTreeMap<&str, Vec<&Row>> = BTreeMap::new();
    for r in &rows {
        groups.entry(&r.group).or_default().push(r);
    }
    for (g, rs) in groups {
        let n = rs.len() as f64;
        let mae = rs
            .iter()
            .map(|r| (r.predicted - r.truth).abs())
            .sum::<f64>()
            / n;
        let bias = rs.iter().map(|r| r.predicted - r.truth).sum::<f64>() / n;
        let d: Vec<f64> = rs.iter().filter_map(|r| r.dice).collect();
        let dice = if d.is_empty() {
            "-".to_string()
        } else {
            format!("{:.4}", d.iter().sum::<f64>() / d.len() as f64)
        };
        println!(
            "{:<22} {:<24} n={:<4} count_mae={:<7.2} bias={:<7.2} dice={}",
            seg_name(seg),
            g,
            rs.len(),
            mae,
            bias,
            dice
        );
    }
}

/// The 16-bit StarDist nuclei image: count, and recall / precision of objects matched one to one
/// at IoU ≥ 0.5 against its instance labels.
fn stardist(seg: &Classical, dir: &std::path::Path) {
    let (img, truth) = match (
        mica_core::io::read_image(&dir.join("img2d.tif")),
        mica_core::io::read_label_image(&dir.join("mask2d.tif")),
    ) {
        (Ok(i), Ok(t)) => (i, t),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: {}: {e}", dir.display());
            return;
        }
    };
    let out = match seg.segment_image(&img) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {}: {e}", dir.display());
            return;
        }
    };
    let r =
        mica_metrics::instances::instance_scores(&truth, &out.labels, &[0.5]).expect("same size");
    let s = &r.per_threshold[0];
    let t = truth.foreground();
    let inter = t
        .as_slice()
        .iter()
        .zip(out.foreground.as_slice())
        .filter(|(a, b)| **a && **b)
        .count() as f64;
    println!(
        "{:<22} {:<24} n=1    count={} true={} recall@0.5={:.3} precision@0.5={:.3} pixel_recall={:.3} dice={:.4}",
        seg_name(seg),
        "stardist nuclei",
        out.count,
        truth.num_objects(),
        s.recall.unwrap_or(f64::NAN),
        s.precision.unwrap_or(f64::NAN),
        inter / t.area() as f64,
        dice(&t, &out.foreground),
    );
}

fn seg_name(seg: &Classical) -> String {
    mica_core::Segmenter::name(seg)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut sites: Option<Vec<u32>> = None;
    let mut segmenters = Vec::new();
    while !args.is_empty() {
        let a = args.remove(0);
        match a.as_str() {
            "--sites" => {
                let v = args.remove(0);
                sites = Some(v.split(',').map(|s| s.parse()).collect::<Result<_, _>>()?);
            }
            "--settings" => {
                let f = args.remove(0);
                let s = Settings::from_toml(&std::fs::read_to_string(&f)?, &f)?;
                segmenters.push(Classical::new(s, &f)?);
            }
            name => segmenters.push(Classical::preset(name.parse::<Preset>()?)?),
        }
    }
    let data = shared().join("data");
    let keep = |s: &Sample| {
        sites.as_ref().is_none_or(|v| {
            s.meta
                .get("site")
                .and_then(|x| x.parse::<u32>().ok())
                .is_some_and(|x| v.contains(&x))
        })
    };
    let mut bbbc = dataset::open(&data.join("bbbc005"), &OpenOptions::default())?.samples;
    bbbc.retain(keep);
    let blur_opts = OpenOptions {
        masks: Some(data.join("bbbc005/masks")),
        ..Default::default()
    };
    let mut blur = dataset::open(&data.join("bbbc005-blur"), &blur_opts)?.samples;
    blur.retain(keep);
    let nffa_dir = data.join("vlms-micrographs");
    let nffa_opts = OpenOptions {
        kind: Some(dataset::DatasetKind::Nffa),
        counts: vec![
            nffa_dir.join("data_ground_truth_NFFA-MS-fibers_counts.csv"),
            nffa_dir.join("data_ground_truth_NFFA-MS-particles_counts.csv"),
        ],
        ..Default::default()
    };
    let nffa = dataset::open(&nffa_dir.join("data_images_NFFA-MS_cropped"), &nffa_opts)?.samples;
    let meta = |s: &Sample, k: &str| s.meta.get(k).cloned().unwrap_or_default();
    for seg in &segmenters {
        let t = std::time::Instant::now();
        evaluate(seg, &bbbc, &|s| format!("bbbc005 {}", meta(s, "stain")));
        evaluate(seg, &blur, &|s| {
            format!("bbbc005 {} F{}", meta(s, "stain"), meta(s, "blur"))
        });
        evaluate(seg, &nffa, &|s| {
            format!("nffa {}", s.truth.class.clone().unwrap_or_default())
        });
        stardist(seg, &data.join("stardist-nuclei"));
        eprintln!("{}: {:.1} s", seg_name(seg), t.elapsed().as_secs_f64());
    }
    Ok(())
}
