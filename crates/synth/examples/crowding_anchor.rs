//! Measures a real image with instance labels as a crowding anchor and fits the generator to it:
//! object count, size, how many objects touch another (the crowding the generator's
//! `clustering_probability` controls), and intensities; then the touching fraction of generated
//! images of the same count at each clustering probability, for the `stardist-nuclei` preset.
//!
//! `cargo run -p mica-synth --example crowding_anchor -- IMAGE LABELS`
//! (e.g. ../shared/data/stardist-nuclei/img2d.tif ../shared/data/stardist-nuclei/mask2d.tif).
use mica_core::io;
use mica_synth::crowding::{crowding_stats, CrowdingStats};
use mica_synth::{generate, CellGenConfig};

fn show(name: &str, s: &CrowdingStats) {
    println!(
        "{name}: {} objects, area median {:.0} px (p10 {:.0}, p90 {:.0}), touching {:.2}, fg mean {:.4} bg mean {:.4} (fractions of full scale)",
        s.objects, s.area_median_px, s.area_p10_px, s.area_p90_px, s.touching_fraction, s.fg_mean, s.bg_mean
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        return Err("usage: crowding_anchor IMAGE LABELS".into());
    }
    let img = io::read_image(args[1].as_ref())?;
    let labels = io::read_label_image(args[2].as_ref())?;
    let real = crowding_stats(&img, &labels)?;
    show("real", &real);
    let base = CellGenConfig::preset("stardist-nuclei").ok_or("preset")?;
    for p in [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6] {
        let mut t = Vec::new();
        for seed in 0..4 {
            let cfg = CellGenConfig {
                count: real.objects,
                clustering_probability: p,
                ..base.clone()
            };
            let g = generate(&cfg, seed)?;
            let s = crowding_stats(&g.image, &g.labels)?;
            if seed == 0 {
                show(&format!("generated p={p}"), &s);
            }
            t.push(s.touching_fraction);
        }
        let mean = t.iter().sum::<f64>() / t.len() as f64;
        println!("  clustering {p}: touching fraction {mean:.3} (4 images)");
    }
    Ok(())
}
