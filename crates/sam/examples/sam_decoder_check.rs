//! Compares the factored and the tensor mask decoder on one image: the same prompts through both,
//! the largest differences of predicted IoUs and low-resolution logits, and the time of each.
//!
//! `sam_decoder_check WEIGHTS IMAGE [POINTS_PER_SIDE [factored]]` (a grid of single-point prompts, default 4).
use mica_sam::{
    amg::build_point_grid, DecoderPath, ImagePrep, PointLabel, PointPrompt, Prompt, Sam,
};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    mica_core::memory::keep_freed_memory();
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        return Err("usage: sam_decoder_check WEIGHTS IMAGE [POINTS_PER_SIDE]".into());
    }
    let pps: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(4);
    let sam = Sam::load(args[1].as_ref(), &candle_core::Device::Cpu)?;
    let img = mica_core::io::read_image(args[2].as_ref())?;
    let rgb = ImagePrep::default().apply(&img)?;
    let t = Instant::now();
    let emb = sam.embed(&rgb)?;
    println!(
        "embed (with the factored part) {:.0} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    let (w, h) = (rgb.width() as f32, rgb.height() as f32);
    let prompts: Vec<Prompt> = build_point_grid(pps)
        .iter()
        .map(|p| Prompt {
            points: vec![PointPrompt {
                x: p[0] as f32 * w,
                y: p[1] as f32 * h,
                label: PointLabel::Positive,
            }],
            ..Prompt::default()
        })
        .collect();
    let repeat: usize = std::env::var("REPEAT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    for _ in 1..repeat {
        sam.predict(&emb, &prompts, true)?;
    }
    let t = Instant::now();
    let fast = sam.predict(&emb, &prompts, true)?;
    let t_fast = t.elapsed().as_secs_f64() * 1e3;
    if args.get(4).map(String::as_str) == Some("factored") {
        println!("{} prompts: factored {t_fast:.0} ms", prompts.len());
        return Ok(());
    }
    let sam = sam.with_decoder(DecoderPath::Tensor)?;
    let t = Instant::now();
    let slow = sam.predict(&emb, &prompts, true)?;
    let t_slow = t.elapsed().as_secs_f64() * 1e3;
    let (mut di, mut dl, mut scale) = (0f32, 0f32, 0f32);
    let mut flips = 0usize;
    for (a, b) in fast.iter().zip(&slow) {
        for (x, y) in a.iou.iter().zip(&b.iou) {
            di = di.max((x - y).abs());
        }
        for (x, y) in a.low_res_logits.iter().zip(&b.low_res_logits) {
            dl = dl.max((x - y).abs());
            scale = scale.max(y.abs());
            flips += usize::from((*x > 0.0) != (*y > 0.0));
        }
    }
    println!(
        "{} prompts: factored {t_fast:.0} ms, tensor {t_slow:.0} ms; max |dIoU| {di:.2e}, max |dlogit| {dl:.2e} (max |logit| {scale:.1}), sign flips {flips}",
        prompts.len()
    );
    Ok(())
}
