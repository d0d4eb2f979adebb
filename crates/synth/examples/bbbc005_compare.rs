//! Compares generated images with real BBBC005 images at the same count: intensity statistics,
//! histogram distance, object sizes, and how the classical method scores on both (foreground
//! Dice, count error). Prints Markdown tables.
//!
//! ```text
//! cargo run -p mica-synth --example bbbc005_compare -- ../shared/data/bbbc005 [max_images_per_stain]
//! ```

use mica_classical::{Classical, Preset};
use mica_core::{io, BinaryMask, Segmenter};
use mica_synth::compare::{histogram_emd_gray_levels, image_stats, ImageStats};
use mica_synth::robustness::{score_case, Case, Method};
use mica_synth::Truth;
use mica_synth::{generate, CellGenConfig};
use std::path::PathBuf;

fn count_of(name: &str) -> Option<usize> {
    name.split('_')
        .find_map(|p| p.strip_prefix('C')?.parse().ok())
}

#[derive(Default)]
struct Acc {
    n: usize,
    sums: [f64; 8],
    emd: f64,
}

fn add(acc: &mut Acc, s: &ImageStats) {
    let v = [
        s.background_mean,
        s.background_p99,
        s.foreground_mean,
        s.foreground_p10,
        s.foreground_p50,
        s.foreground_p90,
        s.foreground_px_per_object.unwrap_or(f64::NAN),
        s.foreground_fraction * 100.0,
    ];
    for (a, x) in acc.sums.iter_mut().zip(v) {
        *a += x;
    }
    acc.n += 1;
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let root = PathBuf::from(
        args.get(1)
            .map(String::as_str)
            .unwrap_or("../shared/data/bbbc005"),
    );
    let max: usize = args
        .get(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(usize::MAX);
    let mut names: Vec<String> = std::fs::read_dir(root.join("images"))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".TIF"))
        .collect();
    names.sort();
    let mut method_rows = Vec::new();
    println!("| stain | source | images | bg mean | bg p99 | fg mean | fg p10 | fg p50 | fg p90 | fg px per cell | fg % | hist EMD (gray levels) |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (stain, preset) in [("w1", "bbbc005-w1"), ("w2", "bbbc005-w2")] {
        let mut real = Acc::default();
        let mut syn = Acc::default();
        let mut single_real = Vec::new();
        let mut single_syn = Vec::new();
        let seg = Classical::preset(if stain == "w1" {
            Preset::FluorescenceNuclei
        } else {
            Preset::FluorescenceCells
        })?;
        // (dice, |count error|, count error) sums for real and generated.
        let mut m_real = [0f64; 3];
        let mut m_syn = [0f64; 3];
        for (k, name) in names
            .iter()
            .filter(|n| n.contains(&format!("_{stain}.")))
            .take(max)
            .enumerate()
        {
            let Some(count) = count_of(name) else {
                continue;
            };
            let img = io::read_image(&root.join("images").join(name))?;
            let mask_img = io::read_image(&root.join("masks").join(name))?;
            let mask = BinaryMask::from_image_above(&mask_img, 0.0);
            let rs = image_stats(&img, &mask, Some(count as f64))?;
            let cfg = CellGenConfig {
                count,
                ..CellGenConfig::preset(preset).ok_or("preset")?
            };
            let g = generate(&cfg, 1000 + k as u64)?;
            let ss = image_stats(&g.image, &g.labels.foreground(), Some(count as f64))?;
            let emd = histogram_emd_gray_levels(&rs.histogram, &ss.histogram);
            real.emd += emd;
            syn.emd += emd;
            if count == 1 {
                single_real.push(rs.median_component_px);
                single_syn.push(ss.median_component_px);
            }
            add(&mut real, &rs);
            add(&mut syn, &ss);
            let cr = score_case(
                Method::Segmenter(&seg),
                &Case {
                    id: name.clone(),
                    image: img,
                    truth: Truth {
                        count: Some(count as f64),
                        labels: None,
                        foreground: Some(mask),
                    },
                },
            );
            let cs = score_case(
                Method::Segmenter(&seg),
                &Case {
                    id: format!("generated-{k}"),
                    truth: g.truth(),
                    image: g.image,
                },
            );
            for (m, c) in [(&mut m_real, &cr), (&mut m_syn, &cs)] {
                let e = c.count_error.unwrap_or(f64::NAN);
                m[0] += c.dice.unwrap_or(f64::NAN);
                m[1] += e.abs();
                m[2] += e;
            }
        }
        for (label, a) in [("real", &real), ("generated", &syn)] {
            let n = a.n.max(1) as f64;
            let s: Vec<String> = a.sums.iter().map(|x| format!("{:.1}", x / n)).collect();
            println!(
                "| {stain} | {label} | {} | {} | {:.2} |",
                a.n,
                s.join(" | "),
                a.emd / n
            );
        }
        let n = real.n.max(1) as f64;
        method_rows.push(format!(
            "| {stain} | {} | {} | {:.3} | {:.3} | {:.2} | {:.2} | {:.2} | {:.2} |",
            seg.name(),
            real.n,
            m_real[0] / n,
            m_syn[0] / n,
            m_real[1] / n,
            m_syn[1] / n,
            m_real[2] / n,
            m_syn[2] / n
        ));
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        eprintln!(
            "{stain}: single-cell (C1) area px: real {:.0} (n={}), generated {:.0} (n={})",
            mean(&single_real),
            single_real.len(),
            mean(&single_syn),
            single_syn.len()
        );
    }
    println!();
    println!("| stain | method | images | Dice real | Dice generated | count MAE real | count MAE generated | count bias real | count bias generated |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in method_rows {
        println!("{r}");
    }
    Ok(())
}
