//! Writes mica's MobileSAM tensors for one image and a few point prompts, for
//! `scripts/sam_parity.py tensors` to compare with the PyTorch reference.
//!
//! `sam_dump WEIGHTS IMAGE OUT_DIR X,Y [X,Y ...]` writes `embedding.f32` (256×64×64, NCHW),
//! `lowres.f32` (N×3×256×256), `iou.f32` (N×3), `masks.u8` (N×3×H×W, 0/1, original frame),
//! `meta.json`.
use mica_sam::{ImagePrep, PointLabel, PointPrompt, Prompt, Sam};
use std::io::Write;

fn write_f32(path: &std::path::Path, v: &[f32]) -> std::io::Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    for x in v {
        f.write_all(&x.to_le_bytes())?;
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    mica_core::memory::keep_freed_memory();
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 {
        return Err("usage: sam_dump WEIGHTS IMAGE OUT_DIR X,Y [X,Y ...]".into());
    }
    let sam = Sam::load(args[1].as_ref(), &candle_core::Device::Cpu)?;
    let img = mica_core::Image::from_dynamic(image::open(&args[2])?)?;
    let out = std::path::PathBuf::from(&args[3]);
    std::fs::create_dir_all(&out)?;
    let rgb = ImagePrep::default().apply(&img)?;
    let t = std::time::Instant::now();
    let emb = sam.embed(&rgb)?;
    let embed_ms = t.elapsed().as_secs_f64() * 1e3;
    let f = emb.features().squeeze(0)?.t()?.contiguous()?; // 256 × 4096
    write_f32(
        &out.join("embedding.f32"),
        &f.flatten_all()?.to_vec1::<f32>()?,
    )?;
    let mut prompts = Vec::new();
    for p in &args[4..] {
        let (x, y) = p.split_once(',').ok_or("point must be X,Y")?;
        prompts.push(Prompt {
            points: vec![PointPrompt {
                x: x.parse()?,
                y: y.parse()?,
                label: PointLabel::Positive,
            }],
            ..Default::default()
        });
    }
    let t = std::time::Instant::now();
    let preds = sam.predict(&emb, &prompts, true)?;
    let decode_ms = t.elapsed().as_secs_f64() * 1e3;
    let mut low = Vec::new();
    let mut iou = Vec::new();
    let mut masks = Vec::new();
    for p in &preds {
        low.extend_from_slice(&p.low_res_logits);
        iou.extend_from_slice(&p.iou);
        for k in 0..p.len() {
            masks.extend(
                sam.mask_in_frame(&emb, p, k)?
                    .as_slice()
                    .iter()
                    .map(|&b| b as u8),
            );
        }
    }
    write_f32(&out.join("lowres.f32"), &low)?;
    write_f32(&out.join("iou.f32"), &iou)?;
    std::fs::write(out.join("masks.u8"), &masks)?;
    std::fs::write(
        out.join("meta.json"),
        format!(
            "{{\"width\": {}, \"height\": {}, \"n_prompts\": {}, \"embed_ms\": {embed_ms:.1}, \"decode_ms\": {decode_ms:.1}}}\n",
            img.width(),
            img.height(),
            prompts.len()
        ),
    )?;
    println!("embed_ms {embed_ms:.0} decode_ms {decode_ms:.0}");
    Ok(())
}
