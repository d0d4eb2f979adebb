//! Property tests of metric invariants: bounds, symmetry, perfect prediction, relabelling
//! invariance, Dice = 2J / (1 + J), and optimal matching against brute force.

use mica_core::{BinaryMask, LabelImage};
use mica_metrics::classification::classification_report;
use mica_metrics::counting::count_scores;
use mica_metrics::foreground::{foreground_scores, hausdorff_distances};
use mica_metrics::instances::{instance_scores, OverlapTable, STANDARD_IOU_THRESHOLDS};
use proptest::prelude::*;

const EPS: f64 = 1e-9;

fn mask_strategy() -> impl Strategy<Value = (BinaryMask, BinaryMask)> {
    (1u32..14, 1u32..14).prop_flat_map(|(w, h)| {
        let n = (w * h) as usize;
        (
            proptest::collection::vec(proptest::bool::weighted(0.3), n),
            proptest::collection::vec(proptest::bool::weighted(0.3), n),
        )
            .prop_map(move |(a, b)| {
                (
                    BinaryMask::new(w, h, a).unwrap(),
                    BinaryMask::new(w, h, b).unwrap(),
                )
            })
    })
}

/// Label images made of a few random rectangles (later ones paint over earlier ones).
fn rect_labels(w: u32, h: u32, rects: &[(u32, u32, u32, u32)], labels: &[u32]) -> LabelImage {
    let mut img = LabelImage::zeros(w, h);
    for (&(x, y, rw, rh), &l) in rects.iter().zip(labels) {
        for yy in y..(y + rh).min(h) {
            for xx in x..(x + rw).min(w) {
                img.set(xx, yy, l);
            }
        }
    }
    img
}

fn label_pair_strategy() -> impl Strategy<Value = (LabelImage, LabelImage)> {
    let rect = (0u32..16, 0u32..16, 1u32..8, 1u32..8);
    (
        proptest::collection::vec(rect.clone(), 0..7),
        proptest::collection::vec(rect, 0..7),
    )
        .prop_map(|(a, b)| {
            let la: Vec<u32> = (1..=a.len() as u32).collect();
            let lb: Vec<u32> = (1..=b.len() as u32).collect();
            (rect_labels(16, 16, &a, &la), rect_labels(16, 16, &b, &lb))
        })
}

/// Exhaustive maximum number of one-to-one pairs with IoU >= thr (small inputs only).
fn brute_max_matches(table: &OverlapTable, thr: f64) -> usize {
    let edges: Vec<(u32, u32)> = table
        .overlaps
        .iter()
        .filter(|o| table.iou(o) >= thr)
        .map(|o| (o.truth, o.pred))
        .collect();
    fn go(edges: &[(u32, u32)], i: usize, used_t: &mut Vec<u32>, used_p: &mut Vec<u32>) -> usize {
        if i == edges.len() {
            return 0;
        }
        let skip = go(edges, i + 1, used_t, used_p);
        let (t, p) = edges[i];
        if used_t.contains(&t) || used_p.contains(&p) {
            return skip;
        }
        used_t.push(t);
        used_p.push(p);
        let take = 1 + go(edges, i + 1, used_t, used_p);
        used_t.pop();
        used_p.pop();
        skip.max(take)
    }
    go(&edges, 0, &mut Vec::new(), &mut Vec::new())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn foreground_bounds_symmetry_and_dice_jaccard_relation((a, b) in mask_strategy()) {
        let s = foreground_scores(&a, &b).unwrap();
        let r = foreground_scores(&b, &a).unwrap();
        prop_assert!((0.0..=1.0).contains(&s.dice));
        prop_assert!((0.0..=1.0).contains(&s.jaccard));
        prop_assert!((s.dice - 2.0 * s.jaccard / (1.0 + s.jaccard)).abs() < EPS);
        prop_assert!((s.dice - r.dice).abs() < EPS);
        prop_assert!((s.jaccard - r.jaccard).abs() < EPS);
        prop_assert_eq!(s.precision, r.recall);
        prop_assert_eq!(s.hausdorff_px, r.hausdorff_px);
        prop_assert_eq!(s.hausdorff95_px.is_some(), s.hausdorff_px.is_some());
        if let (Some(h), Some(h95)) = (s.hausdorff_px, s.hausdorff95_px) {
            prop_assert!(h95 <= h + EPS && h95 >= 0.0);
        }
        for p in [s.precision, s.recall].into_iter().flatten() {
            prop_assert!((0.0..=1.0).contains(&p));
        }
    }

    #[test]
    fn hausdorff_matches_brute_force((a, b) in mask_strategy()) {
        let pts = |m: &BinaryMask| -> Vec<(f64, f64)> {
            let w = m.width() as usize;
            m.as_slice().iter().enumerate().filter(|(_, &v)| v)
                .map(|(i, _)| ((i % w) as f64, (i / w) as f64)).collect()
        };
        let (pa, pb) = (pts(&a), pts(&b));
        let h = hausdorff_distances(&a, &b).unwrap();
        if pa.is_empty() || pb.is_empty() {
            prop_assert_eq!(h.is_none(), pa.is_empty() != pb.is_empty());
        } else {
            let directed = |u: &[(f64, f64)], v: &[(f64, f64)]| u.iter().map(|p| {
                v.iter().map(|q| ((p.0 - q.0).powi(2) + (p.1 - q.1).powi(2)).sqrt())
                    .fold(f64::INFINITY, f64::min)
            }).fold(0.0, f64::max);
            let expect = directed(&pa, &pb).max(directed(&pb, &pa));
            prop_assert!((h.unwrap().max_px - expect).abs() < EPS);
        }
    }

    #[test]
    fn perfect_foreground_scores_perfectly((a, _b) in mask_strategy()) {
        let s = foreground_scores(&a, &a).unwrap();
        prop_assert_eq!(s.dice, 1.0);
        prop_assert_eq!(s.jaccard, 1.0);
        prop_assert_eq!(s.hausdorff_px, Some(0.0));
        prop_assert_eq!(s.hausdorff95_px, Some(0.0));
        if a.area() > 0 {
            prop_assert_eq!(s.precision, Some(1.0));
            prop_assert_eq!(s.recall, Some(1.0));
        }
    }

    #[test]
    fn instance_relabelling_changes_nothing(
        (t, p) in label_pair_strategy(),
        seed in any::<u64>(),
    ) {
        let base = instance_scores(&t, &p, &STANDARD_IOU_THRESHOLDS).unwrap();
        // Permute both images' labels (and spread them out) with a random bijection.
        let mut rng = mica_core::rng::SplitMix64::new(seed);
        let mut perm: Vec<u32> = (1..=20).map(|x| x * 1000 + 7).collect();
        rng.shuffle(&mut perm);
        let remap = |img: &LabelImage| {
            let d = img.as_slice().iter().map(|&l| if l == 0 { 0 } else { perm[l as usize - 1] }).collect();
            LabelImage::new(img.width(), img.height(), d).unwrap()
        };
        let again = instance_scores(&remap(&t), &remap(&p), &STANDARD_IOU_THRESHOLDS).unwrap();
        prop_assert_eq!(base.num_truth, again.num_truth);
        prop_assert_eq!(base.num_pred, again.num_pred);
        for (x, y) in base.per_threshold.iter().zip(&again.per_threshold) {
            prop_assert_eq!((x.tp, x.fp, x.fn_), (y.tp, y.fp, y.fn_));
            prop_assert_eq!(x.f1, y.f1);
        }
    }

    #[test]
    fn instance_bounds_symmetry_and_perfect((t, p) in label_pair_strategy()) {
        let r = instance_scores(&t, &p, &STANDARD_IOU_THRESHOLDS).unwrap();
        let s = instance_scores(&p, &t, &STANDARD_IOU_THRESHOLDS).unwrap();
        for (x, y) in r.per_threshold.iter().zip(&s.per_threshold) {
            prop_assert_eq!(x.tp, y.tp);
            prop_assert_eq!((x.fp, x.fn_), (y.fn_, y.fp));
            prop_assert_eq!(x.tp + x.fn_, r.num_truth);
            prop_assert_eq!(x.tp + x.fp, r.num_pred);
            for v in [x.precision, x.recall, x.f1, x.tp_over_tp_fp_fn, x.mean_matched_iou].into_iter().flatten() {
                prop_assert!((0.0..=1.0 + EPS).contains(&v));
            }
        }
        // TP never increases with the threshold.
        for w in r.per_threshold.windows(2) {
            prop_assert!(w[1].tp <= w[0].tp);
        }
        let perfect = instance_scores(&t, &t, &STANDARD_IOU_THRESHOLDS).unwrap();
        if perfect.num_truth > 0 {
            prop_assert_eq!(perfect.mean_tp_over_tp_fp_fn, Some(1.0));
            prop_assert_eq!(perfect.mean_f1, Some(1.0));
        }
    }

    #[test]
    fn matching_is_maximum_at_low_thresholds(
        (t, p) in label_pair_strategy(),
        thr in 0.05f64..0.6,
    ) {
        let table = OverlapTable::new(&t, &p).unwrap();
        let r = instance_scores(&t, &p, &[thr]).unwrap();
        prop_assert_eq!(r.per_threshold[0].tp, brute_max_matches(&table, thr));
    }

    #[test]
    fn count_bounds_and_perfect(
        rows in proptest::collection::vec((0u32..200, proptest::option::weighted(0.8, 0u32..250)), 1..60),
    ) {
        let truth: Vec<f64> = rows.iter().map(|r| r.0 as f64).collect();
        let pred: Vec<Option<f64>> = rows.iter().map(|r| r.1.map(f64::from)).collect();
        let s = count_scores(&truth, &pred).unwrap();
        prop_assert_eq!(s.n + s.missing, truth.len());
        if let (Some(mae), Some(rmse), Some(bias)) = (s.mae, s.rmse, s.bias) {
            prop_assert!(mae >= 0.0);
            prop_assert!(rmse + EPS >= mae);
            prop_assert!(bias.abs() <= mae + EPS);
        }
        if let Some(e) = s.exact { prop_assert!((0.0..=1.0).contains(&e)); }
        if let Some(r) = s.pearson_r { prop_assert!((-1.0..=1.0).contains(&r)); }
        if let Some(r2) = s.r2 { prop_assert!(r2 <= 1.0 + EPS); }
        if let Some(m) = s.mape { prop_assert!(m >= 0.0); }

        let perfect: Vec<Option<f64>> = truth.iter().map(|&t| Some(t)).collect();
        let p = count_scores(&truth, &perfect).unwrap();
        prop_assert_eq!(p.mae, Some(0.0));
        prop_assert_eq!(p.rmse, Some(0.0));
        prop_assert_eq!(p.exact, Some(1.0));
        prop_assert_eq!(p.missing, 0);
        if p.r2.is_some() {
            prop_assert_eq!(p.r2, Some(1.0));
            prop_assert!((p.pearson_r.unwrap() - 1.0).abs() < EPS);
        }
    }

    #[test]
    fn classification_bounds_perfect_and_relabelling(
        rows in proptest::collection::vec((0usize..5, proptest::option::weighted(0.9, 0usize..5)), 1..80),
        seed in any::<u64>(),
    ) {
        let classes: Vec<String> = (0..5).map(|i| format!("c{i}")).collect();
        let truth: Vec<usize> = rows.iter().map(|r| r.0).collect();
        let pred: Vec<Option<usize>> = rows.iter().map(|r| r.1).collect();
        let r = classification_report(&classes, &truth, &pred).unwrap();
        for v in [r.accuracy, r.balanced_accuracy, r.macro_f1] {
            prop_assert!((0.0..=1.0).contains(&v));
        }
        prop_assert_eq!(r.confusion.counts.iter().flatten().sum::<usize>(), truth.len());
        prop_assert_eq!(r.per_class.iter().map(|c| c.support).sum::<usize>(), truth.len());

        let perfect: Vec<Option<usize>> = truth.iter().map(|&t| Some(t)).collect();
        let p = classification_report(&classes, &truth, &perfect).unwrap();
        prop_assert_eq!((p.accuracy, p.balanced_accuracy, p.macro_f1), (1.0, 1.0, 1.0));

        // Renaming the classes (a permutation of the indices) changes no aggregate.
        let mut perm: Vec<usize> = (0..5).collect();
        mica_core::rng::SplitMix64::new(seed).shuffle(&mut perm);
        let t2: Vec<usize> = truth.iter().map(|&t| perm[t]).collect();
        let p2: Vec<Option<usize>> = pred.iter().map(|p| p.map(|p| perm[p])).collect();
        let q = classification_report(&classes, &t2, &p2).unwrap();
        prop_assert!((q.accuracy - r.accuracy).abs() < EPS);
        prop_assert!((q.balanced_accuracy - r.balanced_accuracy).abs() < EPS);
        prop_assert!((q.macro_f1 - r.macro_f1).abs() < EPS);
        prop_assert_eq!(q.unparsed, r.unparsed);
    }
}
