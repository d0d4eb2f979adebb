//! Times the encoder and one decoder batch on one image: `cargo run -p mica-sam --example sam_probe -- WEIGHTS IMAGE [N_PROMPTS]`.
use mica_sam::{ImagePrep, PointLabel, PointPrompt, Prompt, Sam};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    mica_core::memory::keep_freed_memory();
    let args: Vec<String> = std::env::args().collect();
    let sam = Sam::load(args[1].as_ref(), &candle_core::Device::Cpu)?;
    let img = image::open(&args[2])?;
    let img = mica_core::Image::from_dynamic(img)?;
    let rgb = ImagePrep::default().apply(&img)?;
    let t = Instant::now();
    let emb = sam.embed(&rgb)?;
    println!("embed_ms {:.0}", t.elapsed().as_secs_f64() * 1e3);
    let n: usize = args.get(3).map(|s| s.parse().unwrap()).unwrap_or(16);
    let prompts: Vec<Prompt> = (0..n)
        .map(|i| Prompt {
            points: vec![PointPrompt {
                x: 20.0 + 40.0 * (i % 16) as f32,
                y: 30.0 + 30.0 * (i / 16) as f32,
                label: PointLabel::Positive,
            }],
            ..Default::default()
        })
        .collect();
    let t = Instant::now();
    let preds = sam.predict(&emb, &prompts, true)?;
    println!(
        "decode_ms {:.0} for {n} prompts",
        t.elapsed().as_secs_f64() * 1e3
    );
    println!("iou[0] {:?}", preds[0].iou);
    Ok(())
}
