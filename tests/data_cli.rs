//! `mica data` end to end, on the real data and on bad files the tests make.

mod common;

use common::{mica, shared};

#[test]
fn inspect_bbbc005_json() {
    let p = shared().join("data/bbbc005");
    let (code, out, err) = mica(&["data", "inspect", p.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["kind"], "bbbc005");
    assert_eq!(v["images"], 272);
    assert_eq!(v["with_mask"], 272);
    assert_eq!(v["count_min"], 1.0);
    assert_eq!(v["count_max"], 100.0);
    assert_eq!(v["per_meta"]["stain"]["w1"], 136);
    assert_eq!(v["per_meta"]["stain"]["w2"], 136);
    assert_eq!(v["sizes"]["696x520"], 272);
    assert_eq!(v["samples"].as_array().unwrap().len(), 272);
}

#[test]
fn inspect_blurred_with_f1_masks() {
    let p = shared().join("data/bbbc005-blur");
    let m = shared().join("data/bbbc005/masks");
    let (code, out, err) = mica(&[
        "data",
        "inspect",
        p.to_str().unwrap(),
        "--masks",
        m.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("96 blurred images mapped to their in-focus scene"),
        "{out}"
    );
    assert!(out.contains("96 with an F1 mask"), "{out}");
}

#[test]
fn inspect_nffa_crops_text() {
    let p = shared().join("data/vlms-micrographs/data_images_NFFA-MS_cropped");
    let (code, out, err) = mica(&["data", "inspect", p.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("images    51 (0 unreadable)"), "{out}");
    assert!(out.contains("Fibres (26), Particles (25)"), "{out}");
    assert!(
        !out.contains("L2_") && !out.contains("L9_"),
        "class hints leak: {out}"
    );
}

#[test]
fn bad_files_are_named_and_the_rest_is_processed() {
    let dir = tempfile::tempdir().unwrap();
    let good = shared().join("data/bbbc005/images/SIMCEPImages_A01_C1_F1_s01_w1.TIF");
    std::fs::copy(&good, dir.path().join("SIMCEPImages_A01_C1_F1_s01_w1.TIF")).unwrap();
    std::fs::write(dir.path().join("SIMCEPImages_A02_C5_F1_s01_w1.TIF"), b"").unwrap();
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(
        dir.path().join("SIMCEPImages_A03_C10_F1_s01_w1.TIF"),
        &bytes[..bytes.len() / 3],
    )
    .unwrap();
    std::fs::write(dir.path().join("SIMCEPImages_oops.TIF"), &bytes).unwrap();
    let (code, out, _) = mica(&["data", "inspect", dir.path().to_str().unwrap()]);
    assert_eq!(code, 3, "partial failure exit code: {out}");
    assert!(out.contains("images    3 (2 unreadable)"), "{out}");
    assert!(
        out.contains("SIMCEPImages_A02_C5_F1_s01_w1.TIF: cannot decode image: file is empty"),
        "{out}"
    );
    assert!(out.contains("SIMCEPImages_A03_C10_F1_s01_w1.TIF"), "{out}");
    assert!(
        out.contains("SIMCEPImages_oops.TIF") && out.contains("not a BBBC005 name"),
        "{out}"
    );
}

#[test]
fn wrong_path_is_a_clear_error() {
    let (code, _, err) = mica(&["data", "inspect", "/definitely/not/here"]);
    assert_eq!(code, 1);
    assert!(err.contains("/definitely/not/here"), "{err}");
}

#[test]
fn convert_masks_to_label_tiffs() {
    let dir = tempfile::tempdir().unwrap();
    let m = shared().join("data/bbbc005/masks/SIMCEPImages_A05_C18_F1_s13_w1.TIF");
    let (code, _, err) = mica(&[
        "data",
        "convert",
        "--to",
        "labels",
        m.to_str().unwrap(),
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let labels = mica_core_labels(&dir.path().join("SIMCEPImages_A05_C18_F1_s13_w1_labels.tif"));
    // 18 cells, some touching: between a handful and 18 connected components.
    assert!((5..=18).contains(&labels), "{labels} components");
}

fn mica_core_labels(p: &std::path::Path) -> usize {
    // Read back through the CLI so the root package needs no extra dependency.
    let (code, out, err) = mica(&[
        "data",
        "inspect",
        p.parent().unwrap().to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["formats"]["16-bit gray"], 1, "{v}");
    // Count distinct labels by reading the TIFF with the library.
    let img = mica_core::io::read_label_image(p).unwrap();
    img.num_objects()
}

#[test]
fn convert_16_bit_to_png8_stretches_contrast() {
    let dir = tempfile::tempdir().unwrap();
    let img = shared().join("data/stardist-nuclei/img2d.tif");
    let (code, _, err) = mica(&[
        "data",
        "convert",
        "--to",
        "png8",
        img.to_str().unwrap(),
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let png = mica_core::io::read_image(&dir.path().join("img2d.png")).unwrap();
    assert_eq!(png.bit_depth(), mica_core::BitDepth::U8);
    let (lo, hi) = png.min_max();
    assert_eq!(
        (lo, hi),
        (0.0, 255.0),
        "the stretch uses the full 8-bit range"
    );
}

#[test]
fn convert_rejects_connectivity_other_than_4_or_8() {
    let (code, _, err) = mica(&[
        "data",
        "convert",
        "--to",
        "labels",
        "x.tif",
        "--out",
        "/tmp/x",
        "--connectivity",
        "6",
    ]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn convert_reports_bad_file_and_converts_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.tif");
    std::fs::write(&bad, b"II*\0garbage").unwrap();
    let good = shared().join("data/bbbc005/masks/SIMCEPImages_A01_C1_F1_s01_w1.TIF");
    let out = dir.path().join("out");
    let (code, _, err) = mica(&[
        "data",
        "convert",
        "--to",
        "labels",
        bad.to_str().unwrap(),
        good.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("bad.tif"), "{err}");
    assert!(out
        .join("SIMCEPImages_A01_C1_F1_s01_w1_labels.tif")
        .is_file());
}

#[test]
fn seeded_stratified_sample_is_reproducible() {
    let p = shared().join("data/bbbc005");
    let run = |seed: &str| {
        let (code, out, err) = mica(&[
            "data",
            "inspect",
            p.to_str().unwrap(),
            "--no-read",
            "--sample",
            "20",
            "--seed",
            seed,
            "--stratify",
            "stain",
            "--json",
        ]);
        assert_eq!(code, 0, "{err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["images"], 20);
        assert_eq!(v["per_meta"]["stain"]["w1"], 10);
        v["samples"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(run("7"), run("7"));
    assert_ne!(run("7"), run("8"));
}

#[test]
fn missing_mask_is_reported_and_the_image_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (img, masks) = (dir.path().join("images"), dir.path().join("masks"));
    std::fs::create_dir_all(&img).unwrap();
    std::fs::create_dir_all(&masks).unwrap();
    let src = shared().join("data/bbbc005");
    for n in [
        "SIMCEPImages_A01_C1_F1_s01_w1.TIF",
        "SIMCEPImages_A02_C5_F1_s01_w1.TIF",
    ] {
        std::fs::copy(src.join("images").join(n), img.join(n)).unwrap();
    }
    std::fs::copy(
        src.join("masks/SIMCEPImages_A01_C1_F1_s01_w1.TIF"),
        masks.join("SIMCEPImages_A01_C1_F1_s01_w1.TIF"),
    )
    .unwrap();
    let (code, out, _) = mica(&["data", "inspect", dir.path().to_str().unwrap()]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("images    2 (0 unreadable)"), "{out}");
    assert!(out.contains("masks/SIMCEPImages_A02_C5_F1_s01_w1.TIF: mask of SIMCEPImages_A02_C5_F1_s01_w1.TIF not found"), "{out}");
}
