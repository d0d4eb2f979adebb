//! Property tests: determinism, identity at severity 0, truth carried through, generator counts.

use mica_core::rng::SplitMix64;
use mica_core::{BitDepth, Channels, Image, LabelImage, Pixels};
use mica_synth::{
    generate, BarPlacement, CellGenConfig, InfoBarParams, Perturbation, PerturbationKind, Truth,
};
use proptest::prelude::*;

/// A random image of the given shape with a few bright rectangles on a textured background, and
/// the rectangles as instance labels.
fn scene(w: u32, h: u32, depth: BitDepth, channels: Channels, seed: u64) -> (Image, Truth) {
    let mut rng = SplitMix64::new(seed);
    let c = channels.count();
    let n = (w * h) as usize;
    let mut labels = LabelImage::zeros(w, h);
    let objects = 1 + rng.below(4) as u32;
    for id in 1..=objects {
        let x0 = rng.below(w as u64) as u32;
        let y0 = rng.below(h as u64) as u32;
        let (rw, rh) = (1 + rng.below(6) as u32, 1 + rng.below(6) as u32);
        for y in y0..(y0 + rh).min(h) {
            for x in x0..(x0 + rw).min(w) {
                labels.set(x, y, id);
            }
        }
    }
    let labels = labels.relabel_sequential();
    let frac: Vec<f64> = (0..n * c)
        .map(|i| {
            let fg = labels.as_slice()[i / c] != 0;
            (if fg { 0.6 } else { 0.1 }) + 0.2 * rng.next_f64()
        })
        .collect();
    let pixels = match depth {
        BitDepth::U8 => Pixels::U8(frac.iter().map(|f| (f * 255.0) as u8).collect()),
        BitDepth::U16 => Pixels::U16(frac.iter().map(|f| (f * 65535.0) as u16).collect()),
        BitDepth::F32 => Pixels::F32(frac.iter().map(|&f| f as f32).collect()),
    };
    (
        Image::new(w, h, channels, pixels).unwrap(),
        Truth::from_labels(labels),
    )
}

fn arb_scene() -> impl Strategy<Value = (Image, Truth)> {
    (
        1u32..40,
        1u32..40,
        prop_oneof![Just(BitDepth::U8), Just(BitDepth::U16), Just(BitDepth::F32)],
        prop_oneof![Just(Channels::Gray), Just(Channels::Rgb)],
        any::<u64>(),
    )
        .prop_map(|(w, h, d, c, s)| scene(w, h, d, c, s))
}

fn arb_kind() -> impl Strategy<Value = PerturbationKind> {
    proptest::sample::select(PerturbationKind::ALL.to_vec())
}

/// A severity in the kind's useful range.
fn severity(kind: PerturbationKind, u: f64) -> f64 {
    match kind {
        PerturbationKind::Blur => 20.0 * u,
        PerturbationKind::Jpeg => 99.0 * u,
        PerturbationKind::Brightness => 50.0 * u - 25.0,
        PerturbationKind::Contrast => 100.0 * u,
        PerturbationKind::Scratches => 5.0 * u,
        PerturbationKind::InfoBar => 50.0 * u,
        PerturbationKind::Debris => 2000.0 * u,
        _ => 30.0 * u,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn same_seed_same_image((img, truth) in arb_scene(), kind in arb_kind(), u in 0.0f64..1.0, seed in any::<u64>()) {
        let p = kind.at(severity(kind, u)).unwrap();
        let a = p.apply(&img, &truth, seed).unwrap();
        let b = p.apply(&img, &truth, seed).unwrap();
        prop_assert_eq!(a, b);
    }

    #[test]
    fn severity_zero_is_identity((img, truth) in arb_scene(), kind in arb_kind(), seed in any::<u64>()) {
        prop_assume!(kind != PerturbationKind::Jpeg); // JPEG at quality 100 is still lossy
        let out = kind.at(0.0).unwrap().apply(&img, &truth, seed).unwrap();
        prop_assert_eq!(&out.image, &img);
        prop_assert_eq!(&out.truth, &truth);
    }

    #[test]
    fn shape_depth_and_truth_are_kept((img, truth) in arb_scene(), kind in arb_kind(), u in 0.0f64..1.0, seed in any::<u64>()) {
        prop_assume!(kind != PerturbationKind::InfoBar);
        let out = kind.at(severity(kind, u)).unwrap().apply(&img, &truth, seed).unwrap();
        prop_assert_eq!((out.image.width(), out.image.height()), (img.width(), img.height()));
        prop_assert_eq!(out.image.bit_depth(), img.bit_depth());
        prop_assert_eq!(out.image.channels(), img.channels());
        prop_assert_eq!(&out.truth, &truth);
    }

    #[test]
    fn overlay_bar_keeps_truth_consistent((img, truth) in arb_scene(), u in 0.01f64..0.9, seed in any::<u64>()) {
        let p = Perturbation::InfoBar(InfoBarParams { height_frac: u, ..InfoBarParams::default() });
        let out = p.apply(&img, &truth, seed).unwrap();
        let labels = out.truth.labels.as_ref().unwrap();
        let before = truth.labels.as_ref().unwrap();
        prop_assert_eq!(out.truth.count, Some(labels.num_objects() as f64));
        prop_assert!(labels.num_objects() <= before.num_objects());
        // Every visible truth pixel was an object pixel before; foreground agrees with labels.
        for (a, b) in labels.as_slice().iter().zip(before.as_slice()) {
            prop_assert!(*a == 0 || *b != 0);
        }
        prop_assert_eq!(out.truth.foreground.as_ref().unwrap(), &labels.foreground());
        // Rows above the bar are untouched in the image.
        let bar_h = ((u * img.height() as f64).round() as u32).max(1).min(img.height());
        let keep = img.height() - bar_h;
        if keep > 0 {
            prop_assert_eq!(out.image.crop(0, 0, img.width(), keep).unwrap(), img.crop(0, 0, img.width(), keep).unwrap());
        }
    }

    #[test]
    fn appended_bar_keeps_the_count((img, truth) in arb_scene(), u in 0.01f64..0.9, seed in any::<u64>()) {
        let p = Perturbation::InfoBar(InfoBarParams { height_frac: u, placement: BarPlacement::Append, ..InfoBarParams::default() });
        let out = p.apply(&img, &truth, seed).unwrap();
        prop_assert!(out.image.height() > img.height());
        prop_assert_eq!(out.truth.count, truth.count);
        prop_assert_eq!(out.truth.labels.as_ref().unwrap().num_objects() as f64, truth.count.unwrap());
        prop_assert_eq!(out.image.crop(0, 0, img.width(), img.height()).unwrap(), img);
    }

    #[test]
    fn noise_depends_on_the_seed((img, truth) in arb_scene(), s1 in any::<u64>(), s2 in any::<u64>()) {
        prop_assume!(s1 != s2);
        let p = PerturbationKind::GaussianNoise.at(10.0).unwrap();
        prop_assert_ne!(p.apply(&img, &truth, s1).unwrap().image, p.apply(&img, &truth, s2).unwrap().image);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn generator_count_equals_labels(count in 0usize..25, clustering in 0.0f64..1.0, seed in any::<u64>(), nuclei in any::<bool>()) {
        let cfg = CellGenConfig {
            width: 200,
            height: 150,
            count,
            clustering_probability: clustering,
            radius_px: 9.0,
            blur_diameter_px: 4.0,
            channel: if nuclei { mica_synth::Channel::Nuclei } else { mica_synth::Channel::Cells },
            ..CellGenConfig::default()
        };
        let s = generate(&cfg, seed).unwrap();
        prop_assert_eq!(s.count, count);
        prop_assert_eq!(s.labels.num_objects(), count);
        prop_assert_eq!(s.labels.max_label() as usize, count);
        prop_assert_eq!(s.cell_labels.num_objects(), s.nucleus_labels.num_objects());
        prop_assert_eq!(s.truth().count, Some(count as f64));
        // Same seed, same image.
        prop_assert_eq!(generate(&cfg, seed).unwrap(), s);
    }
}
