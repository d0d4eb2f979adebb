//! The presets on real images from `../shared/data`: BBBC005 (both stains, counts from the names,
//! foreground masks) and a 16-bit fluorescence nuclei image with instance labels.

use mica_classical::{Classical, Preset};
use mica_core::dataset::{self, OpenOptions, Sample};
use mica_core::BinaryMask;
use std::path::PathBuf;

fn data() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data"))
}

fn dice(truth: &BinaryMask, pred: &BinaryMask) -> f64 {
    let inter = truth
        .as_slice()
        .iter()
        .zip(pred.as_slice())
        .filter(|(a, b)| **a && **b)
        .count() as f64;
    2.0 * inter / (truth.area() + pred.area()).max(1) as f64
}

/// Every 4th image of one stain (34 of 136), as (count MAE, mean Dice).
fn score(preset: Preset, stain: &str) -> (f64, f64) {
    let ds = dataset::open(&data().join("bbbc005"), &OpenOptions::default())
        .expect("BBBC005 in ../shared/data/bbbc005");
    let samples: Vec<&Sample> = ds
        .samples
        .iter()
        .filter(|s| s.meta.get("stain").map(String::as_str) == Some(stain))
        .step_by(4)
        .collect();
    assert!(samples.len() >= 30, "only {} {stain} images", samples.len());
    let seg = Classical::preset(preset).unwrap();
    let (mut abs_err, mut dice_sum) = (0.0, 0.0);
    for s in &samples {
        let out = seg.segment_image(&s.load_image().unwrap()).unwrap();
        abs_err += (out.count as f64 - s.truth.count.unwrap()).abs();
        let mask = mica_core::io::read_image(s.truth.mask.as_ref().unwrap()).unwrap();
        dice_sum += dice(&BinaryMask::from_image_above(&mask, 0.0), &out.foreground);
    }
    let n = samples.len() as f64;
    (abs_err / n, dice_sum / n)
}

#[test]
fn bbbc005_w1_nuclei_preset_matches_textbook_accuracy() {
    let (mae, dice) = score(Preset::FluorescenceNuclei, "w1");
    // Textbook scikit-image pipeline on all 136 w1 images: MAE 0.41, Dice 0.956.
    assert!(mae <= 0.6, "count MAE {mae}");
    assert!(dice >= 0.95, "Dice {dice}");
}

#[test]
fn bbbc005_w2_cells_preset_beats_textbook_counts() {
    let (mae, dice) = score(Preset::FluorescenceCells, "w2");
    // Textbook scikit-image pipeline on all 136 w2 images: MAE 9.6, Dice 0.985.
    assert!(mae <= 7.0, "count MAE {mae}");
    assert!(dice >= 0.98, "Dice {dice}");
    let (textbook_mae, _) = score(Preset::Textbook, "w2");
    assert!(mae < textbook_mae, "{mae} vs textbook {textbook_mae}");
}

#[test]
fn sixteen_bit_nuclei_image_count_is_close() {
    let dir = data().join("stardist-nuclei");
    let img = mica_core::io::read_image(&dir.join("img2d.tif")).unwrap();
    assert_eq!(img.bit_depth(), mica_core::BitDepth::U16);
    let truth = mica_core::io::read_label_image(&dir.join("mask2d.tif")).unwrap();
    let out = Classical::preset(Preset::FluorescenceNuclei)
        .unwrap()
        .segment_image(&img)
        .unwrap();
    let n_true = truth.num_objects() as f64;
    let rel = (out.count as f64 - n_true).abs() / n_true;
    eprintln!("stardist nuclei: {} found, {} true", out.count, n_true);
    assert!(rel < 0.2, "{} found vs {} true", out.count, n_true);
    let d = dice(&truth.foreground(), &out.foreground);
    assert!(d > 0.8, "Dice {d}");
}

/// The default (`auto`) adapts per image: on the compact w1 nuclei it counts as
/// `fluorescence-nuclei`, on the touching w2 bodies at least as well as `fluorescence-cells`,
/// and on both better than the textbook pipeline (issue #17, item 6).
#[test]
fn the_auto_default_counts_both_bbbc005_stains_at_least_as_well_as_the_textbook() {
    for stain in ["w1", "w2"] {
        let (auto, auto_dice) = score(Preset::Auto, stain);
        let (textbook, _) = score(Preset::Textbook, stain);
        eprintln!("{stain}: auto MAE {auto:.2} (Dice {auto_dice:.4}), textbook {textbook:.2}");
        assert!(
            auto <= textbook,
            "{stain}: auto {auto} vs textbook {textbook}"
        );
        let (best, _) = score(
            if stain == "w1" {
                Preset::FluorescenceNuclei
            } else {
                Preset::FluorescenceCells
            },
            stain,
        );
        assert!(
            auto <= best + 0.1,
            "{stain}: auto {auto} vs the stain's preset {best}"
        );
        assert!(auto_dice >= 0.95, "{stain}: Dice {auto_dice}");
    }
}

/// On the StarDist image, where nuclei range from dim to bright, the default takes Li's lower
/// level and covers the true nuclei (pixel recall 0.81 with Otsu).
#[test]
fn the_auto_default_covers_dim_nuclei_among_bright_ones() {
    let dir = data().join("stardist-nuclei");
    let img = mica_core::io::read_image(&dir.join("img2d.tif")).unwrap();
    let truth = mica_core::io::read_label_image(&dir.join("mask2d.tif")).unwrap();
    let t = truth.foreground();
    let recall = |fg: &BinaryMask| {
        let inter = t
            .as_slice()
            .iter()
            .zip(fg.as_slice())
            .filter(|(a, b)| **a && **b)
            .count();
        inter as f64 / t.area() as f64
    };
    let auto = Classical::preset(Preset::Auto).unwrap().run(&img).unwrap();
    let nuclei = Classical::preset(Preset::FluorescenceNuclei)
        .unwrap()
        .run(&img)
        .unwrap();
    let (ra, rn) = (recall(&auto.foreground), recall(&nuclei.foreground));
    eprintln!("pixel recall: auto {ra:.3}, fluorescence-nuclei {rn:.3}");
    assert!(ra >= 0.9, "auto pixel recall {ra}");
    assert!(
        rn < 0.85,
        "Otsu's level covers {rn}: the image no longer tests dim nuclei"
    );
    assert!(dice(&t, &auto.foreground) > dice(&t, &nuclei.foreground));
    let n = auto.labels.num_objects() as f64;
    assert!(
        (n - 125.0).abs() / 125.0 < 0.2,
        "{n} nuclei found, 125 true"
    );
}
