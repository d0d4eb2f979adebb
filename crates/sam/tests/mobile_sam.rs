//! Tests with the real MobileSAM checkpoint and real BBBC005 images from `../shared` (present for
//! developers and CI; never needed at run time). The encoder costs seconds per image, so the
//! model is loaded once and each test embeds at most one image.

use mica_core::{io::read_image, BinaryMask, Connectivity, Image};
use mica_sam::{
    study_segmentation, AmgConfig, AmgPreset, DecodeNeeds, DecoderPath, ImageEmbedding, ImagePrep,
    MaskGenerator, PointLabel, PointPrompt, Prediction, Prompt, Sam, SamCount, SamError, SamModel,
};
use std::path::PathBuf;
use std::sync::OnceLock;

fn shared() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared"))
}

fn weights() -> PathBuf {
    shared().join("models/mobile_sam.pt")
}

fn model() -> &'static Sam {
    static SAM: OnceLock<Sam> = OnceLock::new();
    SAM.get_or_init(|| {
        mica_core::memory::keep_freed_memory();
        Sam::load_mobile_sam(&weights(), &candle_core::Device::Cpu).unwrap()
    })
}

fn bbbc005(name: &str) -> (Image, BinaryMask) {
    let d = shared().join("data/bbbc005");
    let img = read_image(&d.join("images").join(name)).unwrap();
    let truth = read_image(&d.join("masks").join(name)).unwrap();
    (img, BinaryMask::from_image_above(&truth, 0.0))
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

#[test]
fn loads_pytorch_and_safetensors_checkpoints() {
    let sam = model();
    assert_eq!(sam.weights_path(), weights());
    assert_eq!(
        Sam::load(&weights(), &candle_core::Device::Cpu)
            .unwrap()
            .model(),
        SamModel::MobileSam
    );
    // The same tensors as safetensors load into the same model.
    let dir = tempfile::tempdir().unwrap();
    let tensors: std::collections::HashMap<String, candle_core::Tensor> =
        candle_core::pickle::read_all(weights())
            .unwrap()
            .into_iter()
            .collect();
    assert_eq!(tensors.len(), 439);
    let st = dir.path().join("mobile_sam.safetensors");
    candle_core::safetensors::save(&tensors, &st).unwrap();
    Sam::load_mobile_sam(&st, &candle_core::Device::Cpu).unwrap();
}

#[test]
fn bad_weights_files_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    // A truncated download of the real file.
    let bytes = std::fs::read(weights()).unwrap();
    let cut = dir.path().join("cut.pt");
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
    let e = Sam::load_mobile_sam(&cut, &candle_core::Device::Cpu).unwrap_err();
    assert!(matches!(e, SamError::BadWeights { .. }), "{e}");
    assert!(e.to_string().contains("cut.pt"), "{e}");
    // A valid safetensors file that is not MobileSAM names the missing tensor.
    let other = dir.path().join("other.safetensors");
    let t =
        candle_core::Tensor::zeros(3, candle_core::DType::F32, &candle_core::Device::Cpu).unwrap();
    candle_core::safetensors::save(
        &std::collections::HashMap::from([("x".to_string(), t)]),
        &other,
    )
    .unwrap();
    let e = Sam::load_mobile_sam(&other, &candle_core::Device::Cpu).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("other.safetensors") && msg.contains("not a SAM or MobileSAM checkpoint"),
        "{msg}"
    );
    assert!(msg.contains("image_encoder"), "{msg}");
    // The model is recognised from the patch embedding: a ViT of width 768 is ViT-B, and a file
    // with nothing more names the first missing tensor; other widths are refused.
    let vit = |width: usize, name: &str| {
        let p = dir.path().join(name);
        let t = candle_core::Tensor::zeros(
            (width, 3, 16, 16),
            candle_core::DType::F32,
            &candle_core::Device::Cpu,
        )
        .unwrap();
        candle_core::safetensors::save(
            &std::collections::HashMap::from([(
                "image_encoder.patch_embed.proj.weight".to_string(),
                t,
            )]),
            &p,
        )
        .unwrap();
        p
    };
    let msg = Sam::load(&vit(768, "b.safetensors"), &candle_core::Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("not a complete vit_b checkpoint"), "{msg}");
    let msg = Sam::load(&vit(500, "w.safetensors"), &candle_core::Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("width Some(500)"), "{msg}");
    // Asking for one model and finding another.
    let msg = Sam::load_as(SamModel::VitH, &weights(), &candle_core::Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("this is a mobile_sam checkpoint, not vit_h"),
        "{msg}"
    );
    // A missing file.
    let e =
        Sam::load_mobile_sam(&dir.path().join("nope.pt"), &candle_core::Device::Cpu).unwrap_err();
    assert!(e.to_string().contains("nope.pt"), "{e}");
}

/// The one cell of `A01_C1` (x 440–471, y 3–33): point, box and mask prompts against its truth.
/// The one-cell image `A01_C1_F1_s01_w1`: its embedding (computed once for all tests), its
/// mask and the cell's properties.
fn one_cell() -> &'static (ImageEmbedding, BinaryMask, mica_core::ObjectProps) {
    static CELL: OnceLock<(ImageEmbedding, BinaryMask, mica_core::ObjectProps)> = OnceLock::new();
    CELL.get_or_init(|| {
        let (img, truth) = bbbc005("SIMCEPImages_A01_C1_F1_s01_w1.TIF");
        let cell = truth.connected_components(Connectivity::Eight);
        let props = mica_core::object_properties(&cell, None).unwrap();
        assert_eq!(props.len(), 1);
        let rgb = ImagePrep::default().apply(&img).unwrap();
        let emb = model().embed(&rgb).unwrap();
        (emb, truth, props[0].clone())
    })
}

fn point(x: f32, y: f32, label: PointLabel) -> PointPrompt {
    PointPrompt { x, y, label }
}

/// Largest absolute differences of predicted IoUs and of logits between two predictions.
fn max_diffs(a: &[Prediction], b: &[Prediction]) -> (f32, f32) {
    let mut d = (0f32, 0f32);
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x.len(), y.len());
        assert_eq!(x.low_res_logits.len(), y.low_res_logits.len());
        for (u, v) in x.iou.iter().zip(&y.iou) {
            d.0 = d.0.max((u - v).abs());
        }
        for (u, v) in x.low_res_logits.iter().zip(&y.low_res_logits) {
            d.1 = d.1.max((u - v).abs());
        }
    }
    d
}

/// The factored decoder (the CPU default) gives the tensor decoder's predictions, which match
/// the PyTorch reference (docs/sam.md), for every kind of prompt it handles, with one and
/// several masks; its extent option computes exactly the requested part.
#[test]
fn factored_decoder_equals_tensor_decoder() {
    let sam = model();
    let (emb, _, p) = one_cell();
    let (cx, cy) = (p.centroid_x as f32, p.centroid_y as f32);
    let prompts = vec![
        Prompt {
            points: vec![point(cx, cy, PointLabel::Positive)],
            ..Prompt::default()
        },
        Prompt {
            points: vec![point(500.0, 100.0, PointLabel::Positive)],
            ..Prompt::default()
        },
        Prompt {
            points: vec![
                point(cx, cy, PointLabel::Positive),
                point(100.0, 400.0, PointLabel::Negative),
            ],
            ..Prompt::default()
        },
        Prompt {
            bbox: Some([cx - 30.0, cy - 30.0, cx + 30.0, cy + 30.0]),
            ..Prompt::default()
        },
        Prompt {
            points: vec![point(cx, cy, PointLabel::Positive)],
            bbox: Some([cx - 40.0, cy - 25.0, cx + 35.0, cy + 30.0]),
            ..Prompt::default()
        },
    ];
    let tensor = sam.clone().with_decoder(DecoderPath::Tensor).unwrap();
    assert_eq!(sam.decoder(), DecoderPath::Factored);
    for multimask in [true, false] {
        let fast = sam.predict(emb, &prompts, multimask).unwrap();
        let slow = tensor.predict(emb, &prompts, multimask).unwrap();
        let (d_iou, d_logit) = max_diffs(&fast, &slow);
        let top = slow
            .iter()
            .flat_map(|p| p.low_res_logits.iter())
            .fold(0f32, |m, v| m.max(v.abs()));
        eprintln!("multimask {multimask}: |dIoU| {d_iou:.2e}, |dlogit| {d_logit:.2e} of {top:.1}");
        assert!(top > 10.0, "logits too small to compare: {top}");
        assert!(
            d_iou < 1e-4 && d_logit < 2e-3 * top.max(1.0) / 10.0,
            "{d_iou} {d_logit}"
        );
    }
    // Only the leading 191 rows and 200 columns: computed for whole image tokens (4 × 4
    // logits), 0 beyond.
    let needs = DecodeNeeds {
        min_iou: None,
        low_res_extent: Some((191, 200)),
    };
    let part = sam
        .predict_filtered(emb, &prompts[..2], true, needs)
        .unwrap();
    let full = sam.predict(emb, &prompts[..2], true).unwrap();
    for (a, b) in part.iter().zip(&full) {
        for k in 0..3 {
            let (la, lb) = (a.logits(k), b.logits(k));
            for y in 0..256 {
                for x in 0..256 {
                    let i = y * 256 + x;
                    if y < 192 && x < 200 {
                        assert!(
                            (la[i] - lb[i]).abs() < 1e-4,
                            "({y},{x}): {} {}",
                            la[i],
                            lb[i]
                        );
                    } else {
                        assert_eq!(la[i], 0.0, "({y},{x}) outside the extent");
                    }
                }
            }
        }
    }
    // The tensor decoder ignores the extent and computes everything.
    let t_part = tensor
        .predict_filtered(emb, &prompts[..2], true, needs)
        .unwrap();
    assert!((max_diffs(&t_part, &full).1) < 2e-2);
}

#[test]
fn prompted_segmentation_of_a_real_cell() {
    let sam = model();
    let (emb, truth, p) = one_cell();
    let truth = truth.clone();
    let emb = emb.clone();
    assert_eq!(emb.image_size(), (696, 520));

    let point = Prompt {
        points: vec![PointPrompt {
            x: p.centroid_x as f32,
            y: p.centroid_y as f32,
            label: PointLabel::Positive,
        }],
        ..Prompt::default()
    };
    let b = p.bbox;
    let boxed = Prompt {
        bbox: Some([
            b.x0 as f32,
            b.y0 as f32,
            (b.x1 - 1) as f32,
            (b.y1 - 1) as f32,
        ]),
        ..Prompt::default()
    };
    let both_neg = Prompt {
        points: vec![
            PointPrompt {
                x: p.centroid_x as f32,
                y: p.centroid_y as f32,
                label: PointLabel::Positive,
            },
            PointPrompt {
                x: 100.0,
                y: 400.0,
                label: PointLabel::Negative,
            },
        ],
        ..Prompt::default()
    };
    let preds_box = boxed.clone();
    let preds = sam
        .predict(&emb, &[point.clone(), boxed.clone(), both_neg], true)
        .unwrap();
    let best = |pr: &mica_sam::Prediction| {
        (0..pr.len())
            .max_by(|&a, &b| pr.iou[a].total_cmp(&pr.iou[b]))
            .unwrap()
    };
    for (name, pr) in ["point", "box", "point+negative"].iter().zip(&preds) {
        assert_eq!(pr.len(), 3);
        let k = best(pr);
        let m = sam.mask_in_frame(&emb, pr, k).unwrap();
        let d = dice(&truth, &m);
        eprintln!("{name}: predicted IoU {:?}, Dice {d:.3}", pr.iou);
        assert!(d > 0.8, "{name}: Dice {d}");
    }

    // Batched decoding gives what one prompt at a time gives.
    let alone = sam.predict(&emb, &[boxed], true).unwrap();
    let diff = alone[0]
        .low_res_logits
        .iter()
        .zip(&preds[1].low_res_logits)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(diff < 1e-3, "batched vs alone: {diff}");

    // Filtered decoding: masks only for prompts with a predicted IoU above the threshold
    // (point: best 0.981, box: best 0.990), identical where computed.
    let f = sam
        .predict_filtered(
            &emb,
            &[point.clone(), preds_box.clone()],
            true,
            DecodeNeeds {
                min_iou: Some(0.985),
                low_res_extent: None,
            },
        )
        .unwrap();
    assert!(f[0].low_res_logits.is_empty() && f[0].logits(0).is_empty());
    assert_eq!(f[0].iou, preds[0].iou);
    assert_eq!(f[1].iou, preds[1].iou);
    assert_eq!(f[1].low_res_logits, preds[1].low_res_logits);

    // A mask prompt (the previous low-resolution logits) with the point, single-mask output.
    let k = best(&preds[0]);
    let refine = Prompt {
        mask_logits: Some(preds[0].logits(k).to_vec()),
        ..point
    };
    let r = sam.predict(&emb, &[refine], false).unwrap();
    assert_eq!(r[0].len(), 1);
    let d = dice(&truth, &sam.mask_in_frame(&emb, &r[0], 0).unwrap());
    assert!(d > 0.8, "mask prompt: Dice {d}");
    assert!(
        sam.predict(&emb, &[Prompt::default()], true).is_err(),
        "empty prompt"
    );
}

/// Automatic generation with few points on a real image with 18 cells: masks in the original
/// frame with the thresholds applied, several of them on cells; the study's rule for the count
/// and the foreground.
#[test]
fn automatic_generation_on_a_real_image() {
    let sam = model();
    let (img, truth) = bbbc005("SIMCEPImages_A05_C18_F1_s01_w1.TIF");
    let cfg = AmgConfig {
        points_per_side: Some(6),
        min_mask_region_area: 20,
        ..AmgPreset::Standard.config()
    };
    let rgb = ImagePrep::default().apply(&img).unwrap();
    let out = MaskGenerator::new(cfg)
        .unwrap()
        .generate(sam, &rgb)
        .unwrap();
    eprintln!("{} masks, timings {:?}", out.masks.len(), out.timings);
    assert!(!out.masks.is_empty());
    assert!(out.timings.batches >= 1 && out.timings.embed_ms > 0.0);
    let mut precisions = Vec::new();
    for m in &out.masks {
        assert_eq!(m.segmentation.size, [520, 696]);
        assert!(m.predicted_iou > 0.88 && m.stability_score >= 0.95);
        let bm = m.to_binary_mask();
        assert_eq!(bm.area() as u64, m.area);
        let on_cells = bm
            .as_slice()
            .iter()
            .zip(truth.as_slice())
            .filter(|(a, b)| **a && **b)
            .count();
        precisions.push(on_cells as f64 / m.area as f64);
    }
    precisions.sort_by(f64::total_cmp);
    eprintln!("fraction of each mask on cells: {precisions:.2?}");
    // Some masks are whole cells; others cover background patches, as the reference's do.
    assert!(
        precisions.iter().filter(|&&p| p > 0.7).count() >= 3,
        "{precisions:?}"
    );
    let seg = study_segmentation(&out, SamCount::Masks);
    assert_eq!(seg.count, out.masks.len());
    let extra = |n: &str| {
        seg.extra_counts
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| *v)
    };
    let below = extra("masks_below_25pct").expect("masks_below_25pct");
    assert!(below <= seg.count);
    // The label image holds one connected object per label, and `objects` counts them.
    assert_eq!(extra("objects"), Some(seg.labels.num_objects()));
    assert_eq!(
        seg.labels.pieces(Connectivity::Eight).num_objects(),
        seg.labels.num_objects()
    );
    let union_small: usize = {
        let mut u = vec![false; 696 * 520];
        for m in out
            .masks
            .iter()
            .filter(|m| (m.area as f64) < 0.25 * 696.0 * 520.0)
        {
            for (o, v) in u.iter_mut().zip(m.to_binary_mask().as_slice()) {
                *o |= *v;
            }
        }
        u.iter().filter(|&&v| v).count()
    };
    assert_eq!(seg.foreground.area(), union_small);
    assert!(seg.labels.num_objects() >= 1);
}

/// A 1x1 image was upscaled to SAM's 1024 pixels and cut into 2,028 "objects"; images under
/// `MIN_IMAGE_SIDE` on a side are now refused by every entry point, naming the size.
#[test]
fn sam_one_pixel_image_gave_2028_objects() {
    use mica_core::Segmenter;
    let sam = model();
    let tiny = Image::rgb8(1, 1, vec![10, 20, 30]).unwrap();
    let err = MaskGenerator::new(AmgPreset::Standard.config())
        .unwrap()
        .generate(sam, &tiny)
        .unwrap_err()
        .to_string();
    assert!(err.contains("1x1") && err.contains("at least"), "{err}");
    let err = sam.embed(&tiny).unwrap_err().to_string();
    assert!(err.contains("1x1"), "{err}");
    let seg = mica_sam::SamSegmenter::new(
        sam.clone(),
        AmgPreset::Standard.config(),
        ImagePrep::default(),
        "standard",
    )
    .unwrap();
    let gray = Image::gray8(3, 15, vec![7; 45]).unwrap();
    let err = seg.segment(&gray).unwrap_err().to_string();
    assert!(err.contains("3x15"), "{err}");
}

/// Prompted segmentation with one box per true cell (what a perfect detector would give) finds
/// each cell once; count, labels and pieces agree. Embeddings kept in a cache folder are read
/// back (same masks, encoder not run), and a damaged cache file is recomputed, not trusted.
#[test]
fn prompted_boxes_from_true_cells_with_an_embedding_cache() {
    use mica_sam::prompted::{prompts_from_labels, segment};
    let (img, truth) = bbbc005("SIMCEPImages_A05_C18_F1_s01_w1.TIF");
    let cells = truth.connected_components(Connectivity::Eight);
    let prompts = prompts_from_labels(&cells, mica_sam::PromptKind::Box, 0.0);
    assert_eq!(prompts.len(), cells.num_objects());
    let dir = tempfile::tempdir().unwrap();
    let cache = mica_sam::EmbeddingCache::new(dir.path(), &weights()).unwrap();
    let sam = model().clone().with_embedding_cache(cache);
    let rgb = ImagePrep::default().apply(&img).unwrap();
    let cfg = mica_sam::PromptedConfig::default();

    let first = segment(&sam, &rgb, &prompts, &cfg).unwrap();
    let cache = sam.embedding_cache().unwrap();
    assert_eq!(cache.hits_and_misses(), (0, 1));
    let file = cache.path_for(&rgb).unwrap();
    assert!(file.is_file(), "{}", file.display());

    let seg = study_segmentation(&first, SamCount::Objects);
    let objects = seg.labels.num_objects();
    eprintln!(
        "{} true cells, {} masks, {objects} objects, timings {:?}",
        cells.num_objects(),
        first.masks.len(),
        first.timings
    );
    assert_eq!(seg.count, objects);
    assert_eq!(
        seg.labels.pieces(Connectivity::Eight).num_objects(),
        objects
    );
    assert!(
        objects.abs_diff(cells.num_objects()) <= 2,
        "{objects} objects for {} cells",
        cells.num_objects()
    );
    let d = dice(&truth, &seg.labels.foreground());
    assert!(d > 0.85, "Dice {d}");

    let masks = |o: &mica_sam::AmgOutput| -> Vec<(u64, [u32; 4])> {
        o.masks.iter().map(|m| (m.area, m.bbox)).collect()
    };
    let again = segment(&sam, &rgb, &prompts, &cfg).unwrap();
    assert_eq!(cache.hits_and_misses(), (1, 1));
    assert_eq!(masks(&again), masks(&first));

    std::fs::write(&file, b"not a safetensors file").unwrap();
    let third = segment(&sam, &rgb, &prompts, &cfg).unwrap();
    assert_eq!(cache.hits_and_misses(), (1, 2), "damaged file recomputed");
    assert_eq!(masks(&third), masks(&first));
    assert!(
        std::fs::metadata(&file).unwrap().len() > 1_000_000,
        "rewritten"
    );
}
