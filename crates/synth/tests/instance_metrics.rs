//! The instance metrics of mica-metrics on generated images with instance truth: a perfect
//! prediction scores 1, merging touching cells (foreground connected components) is penalised,
//! and a shifted prediction loses IoU as the shift grows.

use mica_core::{Connectivity, LabelImage};
use mica_metrics::instances::{instance_scores, STANDARD_IOU_THRESHOLDS};
use mica_synth::{generate, CellGenConfig};

fn scene(count: usize, clustering: f64, seed: u64) -> LabelImage {
    let cfg = CellGenConfig {
        width: 320,
        height: 240,
        count,
        clustering_probability: clustering,
        radius_px: 12.0,
        ..CellGenConfig::default()
    };
    generate(&cfg, seed).unwrap().labels
}

#[test]
fn truth_against_itself_scores_one_at_every_threshold() {
    let t = scene(25, 0.5, 1);
    let r = instance_scores(&t, &t, &STANDARD_IOU_THRESHOLDS).unwrap();
    assert_eq!((r.num_truth, r.num_pred), (25, 25));
    assert!(r
        .per_threshold
        .iter()
        .all(|s| s.f1 == Some(1.0) && s.fp == 0 && s.fn_ == 0));
}

#[test]
fn merging_touching_cells_costs_matches() {
    // Separate cells: connected components recover every instance.
    let sparse = scene(6, 0.0, 2);
    let cc = sparse
        .foreground()
        .connected_components(Connectivity::Eight);
    let r = instance_scores(&sparse, &cc, &[0.5]).unwrap();
    assert_eq!(r.per_threshold[0].tp, 6, "{r:?}");

    // Clustered cells: components merge touching cells, so fewer predictions and misses.
    let crowded = scene(30, 0.8, 3);
    let cc = crowded
        .foreground()
        .connected_components(Connectivity::Eight);
    let r = instance_scores(&crowded, &cc, &[0.5]).unwrap();
    assert!(r.num_pred < 30, "{} components", r.num_pred);
    let s = &r.per_threshold[0];
    assert!(s.fn_ > 0 && s.f1.unwrap() < 1.0, "{s:?}");
    assert_eq!(s.tp + s.fn_, 30);
}

#[test]
fn iou_falls_as_a_prediction_is_shifted() {
    let t = scene(10, 0.0, 4);
    let shifted = |dx: u32| {
        let mut p = LabelImage::zeros(t.width(), t.height());
        for y in 0..t.height() {
            for x in dx..t.width() {
                p.set(x, y, t.get(x - dx, y));
            }
        }
        p
    };
    let iou = |dx| {
        instance_scores(&t, &shifted(dx), &[0.1])
            .unwrap()
            .per_threshold[0]
            .mean_matched_iou
            .unwrap()
    };
    let (a, b, c) = (iou(0), iou(3), iou(8));
    assert!(a == 1.0 && b < a && c < b, "{a} {b} {c}");
}
