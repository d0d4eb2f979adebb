//! Pixel sizes read from calibrated TIFFs that someone else's writer made (tifffile:
//! `scripts/make_calibration_fixtures.py`), and from mica's own calibrated label TIFFs.

use mica_core::calibration::{read_pixel_size, CalibrationSource, PixelSize};
use mica_core::{io, LabelImage};
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/calibration")
        .join(name)
}

fn read(name: &str) -> Option<PixelSize> {
    read_pixel_size(&fixture(name)).unwrap()
}

#[test]
fn tifffile_calibrations_are_read() {
    let p = read("imagej_0.65um.tif").unwrap();
    assert_eq!(p.source, CalibrationSource::ImageJ);
    assert!(
        (p.x_um - 0.65).abs() < 1e-9 && (p.y_um - 0.65).abs() < 1e-9,
        "{p:?}"
    );
    let p = read("ome_0.325x0.5um.ome.tif").unwrap();
    assert_eq!(p.source, CalibrationSource::OmeTiff);
    assert!(
        (p.x_um - 0.325).abs() < 1e-12 && (p.y_um - 0.5).abs() < 1e-12,
        "{p:?}"
    );
    assert!(!p.is_square());
    let p = read("res_cm_0.5um.tif").unwrap();
    assert_eq!(p.source, CalibrationSource::TiffResolution);
    assert!((p.x_um - 0.5).abs() < 1e-12, "{p:?}");
    // 72 dpi is what software writes without measuring anything.
    assert_eq!(read("res_72dpi.tif"), None);
    // The images themselves read as usual.
    let img = io::read_image(&fixture("imagej_0.65um.tif")).unwrap();
    assert_eq!((img.width(), img.height()), (8, 6));
}

#[test]
fn a_calibration_that_cannot_be_read_is_an_error_naming_the_file() {
    let e = read_pixel_size(&fixture("imagej_bad_unit.tif"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("imagej_bad_unit.tif") && e.contains("furlong"),
        "{e}"
    );
}

#[test]
fn label_tiffs_carry_imagej_metadata_and_the_calibration() {
    let d = tempfile::tempdir().unwrap();
    let labels = LabelImage::new(4, 3, vec![0, 1, 1, 0, 0, 2, 2, 0, 3, 3, 0, 0]).unwrap();
    let calibrated = d.path().join("c_labels.tif");
    io::write_label_tiff_calibrated(&calibrated, &labels, Some(&PixelSize::user(0.65).unwrap()))
        .unwrap();
    let p = read_pixel_size(&calibrated).unwrap().unwrap();
    assert_eq!(p.source, CalibrationSource::ImageJ);
    assert!((p.x_um - 0.65).abs() < 1e-6, "{p:?}");
    let back = io::read_label_image(&calibrated).unwrap();
    assert_eq!(back.as_slice(), labels.as_slice());
    // Uncalibrated: ImageJ metadata (display range), no pixel size.
    let plain = d.path().join("p_labels.tif");
    io::write_label_tiff(&plain, &labels).unwrap();
    assert_eq!(read_pixel_size(&plain).unwrap(), None);
    let bytes = std::fs::read(&plain).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        text.contains("ImageJ=1.11a\nmin=0.0\nmax=3.0\n"),
        "no ImageJ description"
    );
}
