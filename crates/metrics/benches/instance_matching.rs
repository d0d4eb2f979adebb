//! Instance matching on two 2048×2048 label images with about 2,000 objects each.
//!
//! Truth: a 45×45 grid of disks (radius 12–19 px, jittered centres) = 2,025 objects. Prediction:
//! the same disks shifted by up to 4 px with radius changed by up to ±3 px, 5 % dropped, 5 % extra
//! disks added between grid points, labels shuffled. Run:
//! `cargo bench -p mica-metrics --bench instance_matching -- --measurement-time 5`

use criterion::{criterion_group, criterion_main, Criterion};
use mica_core::rng::SplitMix64;
use mica_core::LabelImage;
use mica_metrics::instances::{instance_scores, OverlapTable, STANDARD_IOU_THRESHOLDS};
use std::hint::black_box;

const SIZE: u32 = 2048;

fn paint_disk(img: &mut LabelImage, cx: f64, cy: f64, r: f64, label: u32) {
    let (x0, x1) = (
        (cx - r).floor().max(0.0) as u32,
        (cx + r).ceil().min(SIZE as f64 - 1.0) as u32,
    );
    let (y0, y1) = (
        (cy - r).floor().max(0.0) as u32,
        (cy + r).ceil().min(SIZE as f64 - 1.0) as u32,
    );
    for y in y0..=y1 {
        for x in x0..=x1 {
            let (dx, dy) = (x as f64 - cx, y as f64 - cy);
            if dx * dx + dy * dy <= r * r {
                img.set(x, y, label);
            }
        }
    }
}

fn label_images() -> (LabelImage, LabelImage) {
    let mut rng = SplitMix64::new(42);
    let mut truth = LabelImage::zeros(SIZE, SIZE);
    let mut pred = LabelImage::zeros(SIZE, SIZE);
    let spacing = SIZE as f64 / 45.0;
    let mut disks = Vec::new();
    for gy in 0..45 {
        for gx in 0..45 {
            let cx = (gx as f64 + 0.5) * spacing + (rng.next_f64() - 0.5) * 4.0;
            let cy = (gy as f64 + 0.5) * spacing + (rng.next_f64() - 0.5) * 4.0;
            let r = 12.0 + rng.next_f64() * 7.0;
            disks.push((cx, cy, r));
        }
    }
    for (i, &(cx, cy, r)) in disks.iter().enumerate() {
        paint_disk(&mut truth, cx, cy, r, i as u32 + 1);
    }
    let mut pred_disks: Vec<(f64, f64, f64)> = Vec::new();
    for &(cx, cy, r) in &disks {
        if rng.next_f64() < 0.05 {
            continue; // dropped: a false negative
        }
        let dx = (rng.next_f64() - 0.5) * 8.0;
        let dy = (rng.next_f64() - 0.5) * 8.0;
        let dr = (rng.next_f64() - 0.5) * 6.0;
        pred_disks.push((cx + dx, cy + dy, (r + dr).max(3.0)));
    }
    for _ in 0..100 {
        let gx = rng.below(44) as f64 + 1.0;
        let gy = rng.below(44) as f64 + 1.0;
        pred_disks.push((gx * spacing, gy * spacing, 4.0));
    }
    let mut labels: Vec<u32> = (1..=pred_disks.len() as u32).collect();
    rng.shuffle(&mut labels);
    for (&(cx, cy, r), &l) in pred_disks.iter().zip(&labels) {
        paint_disk(&mut pred, cx, cy, r, l);
    }
    (truth, pred)
}

fn bench(c: &mut Criterion) {
    let (truth, pred) = label_images();
    let table = OverlapTable::new(&truth, &pred).expect("same size");
    eprintln!(
        "truth objects: {}, predicted objects: {}, overlapping pairs: {}",
        table.num_truth(),
        table.num_pred(),
        table.overlaps.len()
    );
    let mut group = c.benchmark_group("instance_matching_2048x2048_2000_objects");
    group.sample_size(10);
    group.bench_function("overlap_table", |b| {
        b.iter(|| OverlapTable::new(black_box(&truth), black_box(&pred)))
    });
    group.bench_function("instance_scores_10_thresholds", |b| {
        b.iter(|| {
            instance_scores(
                black_box(&truth),
                black_box(&pred),
                &STANDARD_IOU_THRESHOLDS,
            )
        })
    });
    group.bench_function("instance_scores_iou_0.1", |b| {
        b.iter(|| instance_scores(black_box(&truth), black_box(&pred), &[0.1]))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
