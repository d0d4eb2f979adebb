//! Automatic mask generation on images, one JSON per image (masks as uncompressed COCO RLE, with
//! scores and per-stage timings), for `scripts/sam_parity.py amg` and for timing.
//!
//! `sam_amg WEIGHTS OUT_DIR PRESET POINTS_PER_SIDE IMAGE...` (PRESET: standard | custom); with
//! `WARMUP` set, the first image is run once untimed before the timed runs.
use mica_sam::{AmgPreset, ImagePrep, MaskGenerator, Sam};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    mica_core::memory::keep_freed_memory();
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 6 {
        return Err("usage: sam_amg WEIGHTS OUT_DIR PRESET POINTS_PER_SIDE IMAGE...".into());
    }
    let t = std::time::Instant::now();
    // The GPU when built with `--features cuda` and one is present, else the CPU.
    let device = candle_core::Device::cuda_if_available(0)?;
    eprintln!("device {device:?}");
    let sam = Sam::load(args[1].as_ref(), &device)?;
    eprintln!("load_ms {:.0}", t.elapsed().as_secs_f64() * 1e3);
    let out_dir = std::path::PathBuf::from(&args[2]);
    std::fs::create_dir_all(&out_dir)?;
    let mut cfg = AmgPreset::from_name(&args[3])?.config();
    cfg.points_per_side = Some(args[4].parse()?);
    let generator = MaskGenerator::new(cfg)?;
    if std::env::var_os("WARMUP").is_some() {
        // One untimed pass (device initialisation, kernel loading on a GPU).
        let img = mica_core::Image::from_dynamic(image::open(&args[5])?)?;
        generator.generate(&sam, &ImagePrep::default().apply(&img)?)?;
    }
    for path in &args[5..] {
        let img = mica_core::Image::from_dynamic(image::open(path)?)?;
        let rgb = ImagePrep::default().apply(&img)?;
        let t = std::time::Instant::now();
        let out = generator.generate(&sam, &rgb)?;
        let total_ms = t.elapsed().as_secs_f64() * 1e3;
        let stem = std::path::Path::new(path)
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("image");
        let json = serde_json::json!({
            "image": path,
            "width": out.width,
            "height": out.height,
            "total_ms": total_ms,
            "timings": out.timings,
            "masks": out.masks,
        });
        std::fs::write(
            out_dir.join(format!("{stem}.json")),
            serde_json::to_string(&json)?,
        )?;
        println!(
            "{stem}\tmasks {}\ttotal_ms {total_ms:.0}\tembed_ms {:.0}\tdecode_ms {:.0}\tpost_ms {:.0}\tbatches {}\tupscaled {}/{}",
            out.masks.len(),
            out.timings.embed_ms,
            out.timings.decode_ms,
            out.timings.post_ms,
            out.timings.batches,
            out.timings.prompts_upscaled,
            out.timings.prompts
        );
    }
    Ok(())
}
