//! `mica segment --method sam` end to end: missing weights, bad settings, and one real run with
//! few points (one encoder pass, seconds).

use std::path::PathBuf;
use std::process::Command;

fn shared() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared"))
}

fn mica(home: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mica"));
    c.env("HOME", home)
        .env_remove("XDG_CACHE_HOME")
        .env_remove("MICA_SAM_WEIGHTS")
        .env("RAYON_NUM_THREADS", "2");
    c
}

fn image() -> PathBuf {
    shared().join("data/bbbc005/images/SIMCEPImages_A05_C18_F1_s01_w1.TIF")
}

#[test]
fn missing_weights_say_how_to_get_them() {
    let home = tempfile::tempdir().unwrap();
    let out = mica(home.path())
        .args(["segment", "--method", "sam", "--out"])
        .arg(home.path().join("out"))
        .arg(image())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("https://github.com/ChaoningZhang/MobileSAM/raw/master/weights/mobile_sam.pt"),
        "{err}"
    );
    assert!(
        err.contains("MICA_SAM_WEIGHTS") && err.contains("--weights"),
        "{err}"
    );
    assert!(err.contains(".cache/mica/mobile_sam.pt"), "{err}");
}

#[test]
fn bad_sam_settings_are_named() {
    let home = tempfile::tempdir().unwrap();
    let out = mica(home.path())
        .args([
            "segment",
            "--method",
            "sam",
            "--sam-preset",
            "fancy",
            "--out",
        ])
        .arg(home.path().join("out"))
        .arg(image())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("fancy") && err.contains("custom"), "{err}");
    let cfg = home.path().join("sam.toml");
    std::fs::write(&cfg, "pred_iou_thresh = 0.9\npoints_per_sid = 4\n").unwrap();
    let out = mica(home.path())
        .args(["segment", "--method", "sam", "--sam-config"])
        .arg(&cfg)
        .arg("--out")
        .arg(home.path().join("out"))
        .arg(image())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("sam.toml") && err.contains("points_per_sid"),
        "{err}"
    );
}

#[test]
fn segments_a_real_image_with_the_real_checkpoint() {
    let home = tempfile::tempdir().unwrap();
    let out_dir = home.path().join("out");
    let out = mica(home.path())
        .args([
            "segment",
            "--method",
            "sam",
            "--sam-preset",
            "custom",
            "--sam-points-per-side",
            "4",
        ])
        .arg("--weights")
        .arg(shared().join("models/mobile_sam.pt"))
        .arg("--out")
        .arg(&out_dir)
        .arg(image())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(out_dir
        .join("SIMCEPImages_A05_C18_F1_s01_w1_labels.tif")
        .is_file());
    let counts = std::fs::read_to_string(out_dir.join("counts.csv")).unwrap();
    assert!(
        counts.contains("SIMCEPImages_A05_C18_F1_s01_w1.TIF"),
        "{counts}"
    );
    assert!(err.contains("sam:mobile_sam:custom"), "{err}");
}
