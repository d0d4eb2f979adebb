//! `mica segment` and `mica count` with the classical method, end to end on real images and on
//! bad files the tests make.

mod common;

use common::{mica, shared};
use std::path::PathBuf;

fn image(name: &str) -> PathBuf {
    shared().join("data/bbbc005/images").join(name)
}

const W1: &str = "SIMCEPImages_A05_C18_F1_s01_w1.TIF";
const W2: &str = "SIMCEPImages_A05_C18_F1_s01_w2.TIF";

#[test]
fn segment_writes_labels_overlays_and_object_table() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let (a, b) = (image(W1), image(W2));
    let (code, _, err) = mica(&[
        "segment",
        "--method",
        "classical",
        "--preset",
        "fluorescence-nuclei",
        "--out",
        out.to_str().unwrap(),
        a.to_str().unwrap(),
        b.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    for stem in [W1, W2].map(|n| n.trim_end_matches(".TIF")) {
        assert!(out.join(format!("{stem}_labels.tif")).is_file());
        assert!(out.join(format!("{stem}_overlay.png")).is_file());
    }
    // The label TIFF holds as many objects as the object table has rows for that image.
    let labels = mica_core::io::read_label_image(
        &out.join(format!("{}_labels.tif", W1.trim_end_matches(".TIF"))),
    )
    .unwrap();
    let table = std::fs::read_to_string(out.join("objects.csv")).unwrap();
    let mut lines = table.lines();
    assert_eq!(
        lines.next().unwrap(),
        "image,label,area_px,centroid_x,centroid_y,bbox_x0,bbox_y0,bbox_x1,bbox_y1,mean_intensity,\
         perimeter,eccentricity,solidity,major_axis_length,minor_axis_length,orientation,\
         equivalent_diameter,integrated_intensity,min_intensity,max_intensity,std_intensity"
    );
    let rows_w1 = lines
        .clone()
        .filter(|l| l.starts_with(&image(W1).display().to_string()))
        .count();
    assert_eq!(rows_w1, labels.num_objects());
    assert!(
        (16..=20).contains(&rows_w1),
        "{rows_w1} objects in a C18 image"
    );
    let counts = std::fs::read_to_string(out.join("counts.csv")).unwrap();
    assert!(counts.starts_with("image,count\n"));
    assert!(counts.contains(&format!("{W1},{rows_w1}")));
}

#[test]
fn count_prints_csv_and_json_and_writes_csv() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("counts.csv");
    let a = image(W1);
    let (code, out, err) = mica(&["count", a.to_str().unwrap(), "--csv", csv.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("image,count"));
    let row = lines.next().unwrap();
    let n: usize = row
        .strip_prefix(&format!("{},", a.display()))
        .unwrap()
        .parse()
        .unwrap();
    assert!((16..=20).contains(&n), "{n}");
    assert_eq!(std::fs::read_to_string(&csv).unwrap(), out);
    let (code, out, err) = mica(&["count", "--json", a.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["image"], a.display().to_string());
    assert_eq!(v[0]["count"], n);
}

#[test]
fn bad_image_is_reported_and_the_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("broken.tif");
    std::fs::write(&bad, b"II*\0not really a tiff").unwrap();
    let a = image(W1);
    let (code, out, err) = mica(&["count", bad.to_str().unwrap(), a.to_str().unwrap()]);
    assert_eq!(code, 3, "partial success: {err}");
    assert!(err.contains("broken.tif"), "{err}");
    assert!(out.contains(W1));
    assert!(!out.contains("broken.tif"));
}

#[test]
fn unknown_preset_and_bad_settings_are_errors() {
    let a = image(W1);
    let (code, _, err) = mica(&["count", "--preset", "nuclei-ish", a.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        err.contains("nuclei-ish") && err.contains("fluorescence-nuclei"),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("mine.toml");
    std::fs::write(
        &s,
        "smoothing_sigma_px = 1.0\nthreshold_method = \"otsu\"\n",
    )
    .unwrap();
    let (code, _, err) = mica(&[
        "count",
        "--settings",
        s.to_str().unwrap(),
        a.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("mine.toml") && err.contains("threshold_method"),
        "{err}"
    );
}

#[test]
fn settings_file_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("nosplit.toml");
    // No splitting: touching nuclei count once, so the count can only go down.
    std::fs::write(&s, "[split]\nmethod = \"none\"\n").unwrap();
    let a = image("SIMCEPImages_A24_C100_F1_s01_w1.TIF");
    let count = |extra: &[&str]| -> usize {
        let mut args = vec!["count"];
        args.extend_from_slice(extra);
        args.push(a.to_str().unwrap());
        let (code, out, err) = mica(&args);
        assert_eq!(code, 0, "{err}");
        out.lines()
            .nth(1)
            .unwrap()
            .rsplit(',')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let split = count(&["--preset", "textbook"]);
    let merged = count(&["--settings", s.to_str().unwrap()]);
    assert!(merged < split, "{merged} vs {split}");
}

/// Without a terminal (a batch job's log) a classical `count` prints its progress as plain lines
/// while it runs, and `-v` one line per image (issue #17: before, nothing until the end).
#[test]
fn count_reports_progress_without_a_terminal_and_per_image_with_v() {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/bbbc005/images");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mica"))
        .args(["count"])
        .arg(&examples)
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("segment: 10/10 (100 %)"), "{err}");
    assert_eq!(err.matches("segment: ").count(), 10, "{err}");
    assert!(!err.contains('\u{1b}'), "no escape codes in a log: {err:?}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mica"))
        .args(["-v", "count"])
        .arg(&examples)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches(" segmented image=").count(), 10, "{err}");
    assert!(
        err.contains("SIMCEPImages_A05_C18_F1_s13_w1.TIF objects=18"),
        "{err}"
    );
    // Per-stage timings of every image, with the image and the threshold rule the default
    // (`auto`) chose; the plain progress lines give the rate.
    assert_eq!(err.matches(": classical stages ").count(), 10, "{err}");
    for field in [
        "prepare_ms=",
        "threshold_ms=",
        "cleanup_ms=",
        "split_ms=",
        "filter_ms=",
    ] {
        assert_eq!(err.matches(field).count(), 10, "{field}: {err}");
    }
    assert!(
        err.contains("segment{image=") && err.contains("rule=\"auto: otsu\""),
        "{err}"
    );
    assert!(err.contains("/s"), "rate in the progress lines: {err}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mica"))
        .args(["-v", "count"])
        .arg(shared().join("data/stardist-nuclei/img2d.tif"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("rule=\"auto: li\""), "dim nuclei: {err}");
    // --quiet: nothing.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mica"))
        .args(["-q", "count"])
        .arg(&examples)
        .output()
        .unwrap();
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Pixel size: from `--pixel-size`, or from the calibration an input TIFF carries (here an
/// ImageJ-calibrated TIFF the test writes); objects.csv gains µm columns, label TIFFs are
/// calibrated; a calibration that cannot be read fails that image, naming it.
#[test]
fn pixel_size_from_the_flag_or_the_file_gives_um_columns_and_calibrated_labels() {
    use mica_core::calibration::{read_pixel_size, PixelSize};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // An input with a calibration: the true nuclei of a BBBC005 image as an ImageJ TIFF.
    let truth =
        mica_core::io::read_image(&shared().join(format!("data/bbbc005/masks/{W1}"))).unwrap();
    let cells = mica_core::BinaryMask::from_image_above(&truth, 0.0)
        .connected_components(mica_core::Connectivity::Eight);
    let calibrated = d.join("calibrated.tif");
    mica_core::io::write_label_tiff_calibrated(
        &calibrated,
        &cells,
        Some(&PixelSize::user(0.65).unwrap()),
    )
    .unwrap();
    let out = d.join("out");
    let (code, _, err) = mica(&[
        "segment",
        "--method",
        "classical",
        "--out",
        out.to_str().unwrap(),
        calibrated.to_str().unwrap(),
        image(W1).to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let rows = common::csv_rows(&out.join("objects.csv"));
    let header = std::fs::read_to_string(out.join("objects.csv")).unwrap();
    let header: Vec<&str> = header.lines().next().unwrap().split(',').collect();
    let col = |n: &str| header.iter().position(|h| *h == n).unwrap();
    let (area, area_um2, cal, per, per_um) = (
        col("area_px"),
        col("area_um2"),
        col("calibration"),
        col("perimeter"),
        col("perimeter_um"),
    );
    let mut calibrated_rows = 0;
    for r in &rows {
        if r[0].ends_with("calibrated.tif") {
            calibrated_rows += 1;
            assert_eq!(r[cal], "imagej");
            let a: f64 = r[area].parse().unwrap();
            let um2: f64 = r[area_um2].parse().unwrap();
            assert!((um2 - a * 0.65 * 0.65).abs() < 1e-2 * a, "{r:?}");
            let p: f64 = r[per].parse().unwrap();
            let pum: f64 = r[per_um].parse().unwrap();
            assert!((pum - p * 0.65).abs() < 1e-2, "{r:?}");
        } else {
            // The BBBC005 image carries no calibration: empty µm cells.
            assert_eq!(r[cal], "", "{r:?}");
            assert_eq!(r[area_um2], "", "{r:?}");
        }
    }
    assert!(calibrated_rows >= 10, "{calibrated_rows}");
    let p = read_pixel_size(&out.join("calibrated_labels.tif"))
        .unwrap()
        .unwrap();
    assert!((p.x_um - 0.65).abs() < 1e-6, "{p:?}");
    assert_eq!(
        read_pixel_size(&out.join(format!("{}_labels.tif", W1.trim_end_matches(".TIF")))).unwrap(),
        None
    );

    // --pixel-size for every image.
    let out2 = d.join("out2");
    let (code, _, err) = mica(&[
        "segment",
        "--method",
        "classical",
        "--pixel-size",
        "0.5",
        "--out",
        out2.to_str().unwrap(),
        image(W1).to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let rows = common::csv_rows(&out2.join("objects.csv"));
    assert!(rows.iter().all(|r| r[cal] == "user"), "{rows:?}");
    let (code, _, err) = mica(&[
        "segment",
        "--method",
        "classical",
        "--pixel-size=-1",
        "--out",
        out2.to_str().unwrap(),
        image(W1).to_str().unwrap(),
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("pixel size"), "{err}");

    // A calibration the file claims but that cannot be read fails that image only.
    let bad = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("crates/core/tests/fixtures/calibration/imagej_bad_unit.tif");
    let out3 = d.join("out3");
    let (code, _, err) = mica(&[
        "segment",
        "--method",
        "classical",
        "--out",
        out3.to_str().unwrap(),
        bad.to_str().unwrap(),
        image(W1).to_str().unwrap(),
    ]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("imagej_bad_unit.tif") && err.contains("furlong"),
        "{err}"
    );
}

/// `--overlay-numbers` writes each object's label number (white, black rim) at its centroid in
/// objects.csv; without it the overlay has no white-on-black digits there.
#[test]
fn overlay_numbers_are_written_at_the_objects_centroids() {
    let dir = tempfile::tempdir().unwrap();
    let run = |numbers: bool, out: &std::path::Path| {
        let a = image(W1);
        let mut args = vec![
            "segment",
            "--out",
            out.to_str().unwrap(),
            a.to_str().unwrap(),
        ];
        if numbers {
            args.insert(1, "--overlay-numbers");
        }
        let (code, _, err) = mica(&args);
        assert_eq!(code, 0, "{err}");
        let png = out.join(format!("{}_overlay.png", W1.trim_end_matches(".TIF")));
        let img = mica_core::io::read_image(&png).unwrap();
        let mica_core::Pixels::U8(px) = img.pixels().clone() else {
            panic!("8-bit overlay")
        };
        (img.width() as usize, px)
    };
    let (w, plain) = run(false, &dir.path().join("plain"));
    let (_, numbered) = run(true, &dir.path().join("numbered"));
    let table = std::fs::read_to_string(dir.path().join("numbered/objects.csv")).unwrap();
    let mut objects = 0;
    for line in table.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let (cx, cy): (f64, f64) = (f[3].parse().unwrap(), f[4].parse().unwrap());
        // Digits are 10 px high at this size: around the centroid, pixels turned white or
        // black (glyph and rim) that the plain overlay has in other colours.
        let (x0, y0) = (cx.round() as i64, cy.round() as i64);
        let mut changed = 0;
        for dy in -5..=5i64 {
            for dx in -6..=6i64 {
                let (x, y) = ((x0 + dx).max(0) as usize, (y0 + dy).max(0) as usize);
                let i = 3 * (y * w + x);
                let (a, b) = (plain.get(i..i + 3), numbered.get(i..i + 3));
                if a != b && matches!(b, Some([255, 255, 255]) | Some([0, 0, 0])) {
                    changed += 1;
                }
            }
        }
        assert!(
            changed >= 5,
            "no number at ({cx}, {cy}): {changed} pixels changed"
        );
        objects += 1;
    }
    assert!(objects >= 16, "{objects}");
}

/// `mica count … | head`: when the reader of stdout has gone, mica stops quietly (exit 0, no
/// error message), as ripgrep does, instead of reporting "Broken pipe" as a failure.
#[test]
fn count_into_a_closed_pipe_stops_quietly() {
    // CSV and JSON output: both end with exit 0 and nothing on stderr.
    for args in [&["count"][..], &["count", "--json"]] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mica"))
            .args(args)
            .arg(image(W1))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {:?}: {err}", out.status);
        assert!(
            !err.contains("error") && !err.contains("panicked"),
            "{args:?}: {err}"
        );
    }
}
