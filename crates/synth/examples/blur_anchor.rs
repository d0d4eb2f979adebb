//! How well does the blur perturbation (Gaussian of diameter d, σ = d/4) applied to an in-focus
//! BBBC005 image reproduce the real blurred image of the same scene (F23, F48)? For each real
//! blurred image, finds the d that minimises the RMSE between blur_d(F1 scene) and the real image.
//!
//! ```text
//! cargo run -p mica-synth --example blur_anchor -- ../shared/data [max_images]
//! ```

use mica_core::io;
use mica_synth::{Perturbation, Truth};
use std::path::PathBuf;

fn rmse(a: &[f32], b: &[f32]) -> f64 {
    (a.iter()
        .zip(b)
        .map(|(x, y)| ((x - y) as f64).powi(2))
        .sum::<f64>()
        / a.len() as f64)
        .sqrt()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let root = PathBuf::from(args.get(1).map(String::as_str).unwrap_or("../shared/data"));
    let max: usize = args
        .get(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(usize::MAX);
    let dir = root.join("bbbc005-blur/images");
    let mut names: Vec<String> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".TIF"))
        .collect();
    names.sort();
    println!("| image | F | best d | RMSE at best d | RMSE at d = F | RMSE unblurred |");
    println!("|---|---|---|---|---|---|");
    let mut per_f: std::collections::BTreeMap<u32, Vec<f64>> = Default::default();
    for name in names.iter().take(max) {
        let name_obj = mica_core::dataset::bbbc005::Bbbc005Name::parse(name)?;
        let f1 = name_obj.f1_scene_name();
        let f: u32 = name
            .split('_')
            .find_map(|p| p.strip_prefix('F')?.parse().ok())
            .ok_or("no F in name")?;
        let real = io::read_image(&dir.join(name))?.intensity_f32();
        let sharp = io::read_image(&root.join("bbbc005/images").join(&f1))?;
        let err_at = |d: f64| -> Result<f64, Box<dyn std::error::Error>> {
            let b = Perturbation::Blur { diameter_px: d }.apply(&sharp, &Truth::default(), 0)?;
            Ok(rmse(&b.image.intensity_f32(), &real))
        };
        // Golden-section search for the best d in [0, 3F].
        let (mut lo, mut hi) = (0.0f64, 3.0 * f as f64);
        let g = (5f64.sqrt() - 1.0) / 2.0;
        for _ in 0..14 {
            let a = hi - g * (hi - lo);
            let b = lo + g * (hi - lo);
            if err_at(a)? < err_at(b)? {
                hi = b;
            } else {
                lo = a;
            }
        }
        let best = (lo + hi) / 2.0;
        println!(
            "| {name} | {f} | {best:.1} | {:.2} | {:.2} | {:.2} |",
            err_at(best)?,
            err_at(f as f64)?,
            err_at(0.0)?
        );
        per_f.entry(f).or_default().push(best);
    }
    for (f, ds) in per_f {
        let mean = ds.iter().sum::<f64>() / ds.len() as f64;
        let sd = (ds.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / ds.len() as f64).sqrt();
        eprintln!(
            "F{f}: best-fit diameter {mean:.2} ± {sd:.2} px (n = {})",
            ds.len()
        );
    }
    Ok(())
}
