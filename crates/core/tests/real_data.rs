//! Integration tests on the real data in `../shared/data`.

use mica_core::dataset::{self, subset, DatasetKind, OpenOptions};
use mica_core::{io, BitDepth, Channels, Image, LabelImage};
use std::collections::BTreeSet;
use std::path::PathBuf;

fn shared() -> PathBuf {
    let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared"));
    assert!(
        p.is_dir(),
        "these tests need ../shared next to the repository"
    );
    p
}

#[test]
fn bbbc005_has_272_images_counts_1_to_100_both_stains_all_masks() {
    let ds = dataset::open(&shared().join("data/bbbc005"), &OpenOptions::default()).unwrap();
    assert_eq!(ds.kind, DatasetKind::Bbbc005);
    assert_eq!(ds.samples.len(), 272);
    assert!(ds.problems.is_empty(), "{:?}", ds.problems);
    let counts: Vec<f64> = ds.samples.iter().map(|s| s.truth.count.unwrap()).collect();
    assert_eq!(counts.iter().cloned().fold(f64::INFINITY, f64::min), 1.0);
    assert_eq!(counts.iter().cloned().fold(0.0, f64::max), 100.0);
    let stains: BTreeSet<&str> = ds
        .samples
        .iter()
        .map(|s| s.meta["stain"].as_str())
        .collect();
    assert_eq!(stains, BTreeSet::from(["w1", "w2"]));
    assert!(ds.samples.iter().all(|s| s.truth.mask.is_some()));
    // The mask is the file of the same name.
    let s = &ds.samples[0];
    assert_eq!(
        s.truth
            .mask
            .as_ref()
            .unwrap()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap(),
        s.id
    );
}

#[test]
fn blurred_bbbc005_maps_every_image_to_an_existing_f1_mask() {
    let opts = OpenOptions {
        masks: Some(shared().join("data/bbbc005/masks")),
        ..Default::default()
    };
    let ds = dataset::open(&shared().join("data/bbbc005-blur"), &opts).unwrap();
    assert_eq!(ds.samples.len(), 96);
    for s in &ds.samples {
        assert_ne!(s.meta["blur"], "1");
        let mask = s
            .truth
            .mask
            .as_ref()
            .unwrap_or_else(|| panic!("{} has no mask", s.id));
        assert_eq!(
            mask.file_name().unwrap().to_str().unwrap(),
            s.meta["f1_scene"]
        );
        assert!(s.meta["f1_scene"].starts_with("SIMCEPImages_A"));
    }
    let blurs: BTreeSet<&str> = ds.samples.iter().map(|s| s.meta["blur"].as_str()).collect();
    assert_eq!(blurs, BTreeSet::from(["23", "48"]));
}

#[test]
fn nffa_crops_are_51_images_in_two_classes_with_counts() {
    let root = shared().join("data/vlms-micrographs");
    let opts = OpenOptions {
        counts: vec![
            root.join("data_ground_truth_NFFA-MS-fibers_counts.csv"),
            root.join("data_ground_truth_NFFA-MS-particles_counts.csv"),
        ],
        ..Default::default()
    };
    let ds = dataset::open(&root.join("data_images_NFFA-MS_cropped"), &opts).unwrap();
    assert_eq!(ds.kind, DatasetKind::Nffa);
    assert_eq!(ds.samples.len(), 51);
    let classes: BTreeSet<&str> = ds
        .samples
        .iter()
        .map(|s| s.truth.class.as_deref().unwrap())
        .collect();
    assert_eq!(classes, BTreeSet::from(["Fibres", "Particles"]));
    // 25 + 25 expert counts; one fibre image has none.
    assert_eq!(
        ds.samples
            .iter()
            .filter(|s| s.truth.count.is_some())
            .count(),
        50
    );
    let img = ds.samples[0].load_image().unwrap();
    assert_eq!((img.width(), img.height()), (1024, 600));
}

#[test]
fn nffa_class_hints_are_stripped_from_names_not_ids() {
    let dir = tempfile::tempdir().unwrap();
    let vqa = shared().join("data/vlms-micrographs/data_images_vqa/vqa_t1");
    let class_dir = dir.path().join("Tips");
    std::fs::create_dir(&class_dir).unwrap();
    let name = "L9_67328b7fc592b7625489dc1e9c12ba22.jpg";
    std::fs::copy(vqa.join(name), class_dir.join(name)).unwrap();
    let opts = OpenOptions {
        crop_info_bar: true,
        ..Default::default()
    };
    let ds = dataset::open(dir.path(), &opts).unwrap();
    assert_eq!(ds.samples[0].id, format!("Tips/{name}"));
    assert_eq!(ds.samples[0].name, "67328b7fc592b7625489dc1e9c12ba22.jpg");
    assert_eq!(ds.samples[0].meta["class_hint"], "9");
    let img = ds.samples[0].load_image().unwrap();
    assert_eq!((img.width(), img.height()), (1024, 600));
}

#[test]
fn study_subset_list_selects_50_scenes() {
    let root = shared().join("data");
    let ds = dataset::open(&root.join("bbbc005"), &OpenOptions::default()).unwrap();
    let names =
        subset::read_list(&root.join("vlms-micrographs/data_ground_truth_BBBC005-S-w1_counts.csv"))
            .unwrap();
    let (chosen, missing) = subset::select_by_names(&ds.samples, &names);
    assert_eq!(names.len(), 50);
    assert!(missing.is_empty(), "{missing:?}");
    assert_eq!(chosen.len(), 50);
}

#[test]
fn stardist_16_bit_tiff_round_trips_exactly() {
    let p = shared().join("data/stardist-nuclei/img2d.tif");
    let img = io::read_image(&p).unwrap();
    assert_eq!(
        (img.width(), img.height(), img.channels()),
        (512, 512, Channels::Gray)
    );
    assert_eq!(img.bit_depth(), BitDepth::U16);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("copy.tif");
    io::write_tiff(&out, &img).unwrap();
    assert_eq!(io::read_image(&out).unwrap(), img);
    let png = dir.path().join("copy.png");
    io::write_png(&png, &img).unwrap();
    assert_eq!(io::read_image(&png).unwrap(), img);
}

#[test]
fn stardist_labels_round_trip_through_label_tiff() {
    let labels = io::read_label_image(&shared().join("data/stardist-nuclei/mask2d.tif")).unwrap();
    assert_eq!(labels.num_objects(), 125);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("labels.tif");
    io::write_label_tiff(&out, &labels).unwrap();
    let back: LabelImage = io::read_label_image(&out).unwrap();
    assert_eq!(back, labels);
}

#[test]
fn bbbc005_image_and_mask_read_as_8_bit_gray() {
    let p = shared().join("data/bbbc005/images/SIMCEPImages_A05_C18_F1_s13_w2.TIF");
    let img = io::read_image(&p).unwrap();
    assert_eq!(
        (img.width(), img.height(), img.bit_depth()),
        (696, 520, BitDepth::U8)
    );
    let m = io::read_image(&shared().join("data/bbbc005/masks/SIMCEPImages_A05_C18_F1_s13_w2.TIF"))
        .unwrap();
    let fg = mica_core::BinaryMask::from_image_above(&m, 0.0);
    assert!(fg.area() > 1000);
    let _: Image = img.stretch_to_u8(0.5, 99.5).unwrap();
}
