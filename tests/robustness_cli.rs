//! `mica robustness` end to end: generated images, crowding, real BBBC005 blur anchors, SAM
//! beside the classical method, errors.

mod common;

use common::{mica, shared};

/// CSV rows as (kind, severity, mean_dice, count_mae) for one axis/series.
fn rows(csv_text: &str, axis: &str, series: &str) -> Vec<(String, f64, Option<f64>, Option<f64>)> {
    let mut r = csv::Reader::from_reader(csv_text.as_bytes());
    r.records()
        .map(|rec| rec.unwrap())
        .filter(|f| &f[1] == axis && &f[2] == series)
        .map(|f| {
            (
                f[3].to_string(),
                f[5].parse().unwrap(),
                f[9].parse().ok(),
                f[10].parse().ok(),
            )
        })
        .collect()
}

#[test]
fn generated_noise_and_crowding_curves() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let (code, stdout, err) = mica(&[
        "robustness",
        "--perturbation",
        "gaussian-noise,crowding",
        "--severities",
        "0,40",
        "--clustering",
        "0,0.5",
        "--images",
        "2",
        "--count",
        "20",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}\n{stdout}");
    let csv = std::fs::read_to_string(out.join("robustness.csv")).unwrap();
    let noise = rows(&csv, "gaussian-noise", "");
    assert_eq!(noise.len(), 2, "{csv}");
    // Heavy noise must cost Dice on generated cells.
    assert!(noise[1].2.unwrap() < noise[0].2.unwrap(), "{csv}");
    assert_eq!(rows(&csv, "crowding", "clustering 0.5").len(), 2, "{csv}");
    for f in [
        "robustness.json",
        "robustness_gaussian-noise.svg",
        "robustness_crowding.svg",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("robustness.json")).unwrap())
            .unwrap();
    assert_eq!(json["curves"].as_array().unwrap().len(), 3);
}

#[test]
fn real_blur_anchors_lie_near_the_synthetic_blur_curve() {
    let d = shared().join("data");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let (code, stdout, err) = mica(&[
        "robustness",
        "--perturbation",
        "blur",
        "--data",
        d.join("bbbc005").to_str().unwrap(),
        "--anchors",
        d.join("bbbc005-blur").to_str().unwrap(),
        "--severities",
        "0,23,48",
        "--images",
        "6",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}\n{stdout}");
    let csv = std::fs::read_to_string(out.join("robustness.csv")).unwrap();
    let r = rows(&csv, "blur", "");
    let curve: Vec<_> = r.iter().filter(|x| x.0 == "curve").collect();
    let anchors: Vec<_> = r.iter().filter(|x| x.0 == "anchor").collect();
    assert_eq!((curve.len(), anchors.len()), (3, 2), "{csv}");
    for a in anchors {
        let c = curve.iter().find(|c| c.1 == a.1).unwrap();
        let gap = (a.2.unwrap() - c.2.unwrap()).abs();
        assert!(
            gap < 0.05,
            "anchor F{} Dice {:?} vs curve {:?}",
            a.1,
            a.2,
            c.2
        );
    }
}

const KEY: &str = "sk-mica-robustness-test-SECRET-0123456789";

/// An OpenAI chat-completions answer with `text` as the assistant's message.
fn chat_answer(text: &str) -> String {
    serde_json::json!({
        "id": "chatcmpl-test", "object": "chat.completion", "created": 0, "model": "gpt-4o",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1000, "completion_tokens": 5, "total_tokens": 1005}
    })
    .to_string()
}

fn robustness_with_vlm(
    base_url: &str,
    cache: &std::path::Path,
    out: &std::path::Path,
) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_mica"))
        .args([
            "robustness",
            "--method",
            "classical,openai:gpt-4o",
            "--perturbation",
            "blur",
        ])
        .args([
            "--severities",
            "0,16",
            "--images",
            "2",
            "--count",
            "20",
            "--objects",
            "nuclei",
        ])
        .args(["--base-url", base_url, "--cache"])
        .arg(cache)
        .arg("--out")
        .arg(out)
        .env("OPENAI_API_KEY", KEY)
        .output()
        .unwrap()
}

/// A vision-language model is a counting curve beside the classical one: each perturbed image
/// is sent once (a second run answers from the cache), its answers are scored as counts only,
/// and a failed answer is counted as a failure, not scored. The key appears nowhere.
#[test]
fn vision_language_models_count_along_the_curve() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let url = common::json_server(move |line, body| {
        assert!(line.starts_with("POST /v1/chat/completions"), "{line}");
        let b: serde_json::Value = serde_json::from_slice(body).unwrap();
        let text = b["messages"].to_string();
        assert!(
            text.contains("nuclei") && text.contains("data:image/png;base64,"),
            "{text}"
        );
        seen.fetch_add(1, Ordering::SeqCst);
        chat_answer("There are 12 nuclei in this image.")
    });
    let cache = dir.path().join("cache.sqlite");
    let out = dir.path().join("r");
    let o = robustness_with_vlm(&url, &cache, &out);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert_eq!(o.status.code(), Some(0), "{stderr}\n{stdout}");
    // 2 images at 2 blur levels; generated images hold 20 cells, the model says 12.
    assert_eq!(calls.load(Ordering::SeqCst), 4, "{stderr}");
    let csv = std::fs::read_to_string(out.join("robustness.csv")).unwrap();
    let mut r = csv::Reader::from_reader(csv.as_bytes());
    let recs: Vec<csv::StringRecord> = r.records().map(|x| x.unwrap()).collect();
    let vlm: Vec<_> = recs
        .iter()
        .filter(|f| &f[0] == "vlm:openai:gpt-4o")
        .collect();
    assert_eq!(vlm.len(), 2, "{csv}");
    for f in &vlm {
        // mean_dice and instance F1 empty; count MAE 8, bias -8.
        assert_eq!(
            (&f[9], &f[10], &f[11], &f[12]),
            ("", "8.0000", "-8.0000", ""),
            "{csv}"
        );
    }
    assert!(
        recs.iter()
            .any(|f| f[0].starts_with("classical:") && !f[9].is_empty()),
        "{csv}"
    );
    // The same run again: every answer from the cache.
    let out2 = dir.path().join("r2");
    let o = robustness_with_vlm(&url, &cache, &out2);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        4,
        "second run must not call the API"
    );
    assert!(
        stderr.contains("0 API call(s), 4 answer(s) from the cache"),
        "{stderr}"
    );

    // Answers without a number are failures (exit 3), and the rest of the run goes on.
    let url = common::json_server(|_, _| chat_answer("I cannot tell how many there are."));
    let out3 = dir.path().join("r3");
    let o = robustness_with_vlm(&url, &dir.path().join("c3.sqlite"), &out3);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert_eq!(o.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("the method failed on 4 image(s)"),
        "{stderr}"
    );
    let csv = std::fs::read_to_string(out3.join("robustness.csv")).unwrap();
    let mut r = csv::Reader::from_reader(csv.as_bytes());
    for f in r
        .records()
        .map(|x| x.unwrap())
        .filter(|f| &f[0] == "vlm:openai:gpt-4o")
    {
        assert_eq!((&f[8], &f[10]), ("2", ""), "{csv}");
    }
    for text in [stdout.to_string(), stderr.to_string(), csv] {
        assert!(!text.contains(KEY), "the API key leaked");
    }
    for f in ["robustness.json", "robustness_blur.svg"] {
        let bytes = std::fs::read(out3.join(f)).unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains(KEY), "key in {f}");
    }
}

/// A real crowded image with instance labels (the StarDist sample) on the crowding axis: its
/// touching fraction picks a clustering line, which gets the image's count, and the image is
/// scored on it.
#[test]
fn a_real_labelled_image_anchors_a_matched_crowding_line() {
    let d = shared().join("data/stardist-nuclei");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let (code, stdout, err) = mica(&[
        "robustness",
        "--perturbation",
        "crowding",
        "--generator",
        "stardist-nuclei",
        "--crowding-anchor",
        d.join("img2d.tif").to_str().unwrap(),
        d.join("mask2d.tif").to_str().unwrap(),
        "--severities",
        "50",
        "--clustering",
        "0",
        "--images",
        "1",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}\n{stdout}");
    assert!(
        err.contains("crowding anchor img2d: 125 objects, 29 % touching"),
        "{err}"
    );
    let csv = std::fs::read_to_string(out.join("robustness.csv")).unwrap();
    let mut r = csv::Reader::from_reader(csv.as_bytes());
    let recs: Vec<csv::StringRecord> = r.records().map(|x| x.unwrap()).collect();
    let matched: Vec<_> = recs.iter().filter(|f| f[2].contains("matched")).collect();
    // The matched line has the given count and the image's (125), plus the anchor.
    let sev: Vec<&str> = matched.iter().map(|f| &f[5]).collect();
    assert_eq!(sev, ["50", "125", "125"], "{csv}");
    let anchor = matched.iter().find(|f| &f[3] == "anchor").unwrap();
    assert!(anchor[4].contains("125 objects"), "{csv}");
    let dice: f64 = anchor[9].parse().unwrap();
    assert!(
        dice > 0.5,
        "the classical method finds the real nuclei: {csv}"
    );
    assert!(
        !anchor[12].is_empty(),
        "instance F1 on real instance labels: {csv}"
    );
    // Without the crowding axis the flag is an error.
    let (code, _, err) = mica(&[
        "robustness",
        "--perturbation",
        "blur",
        "--crowding-anchor",
        d.join("img2d.tif").to_str().unwrap(),
        d.join("mask2d.tif").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("add --perturbation crowding"), "{err}");
}

#[test]
fn unknown_inputs_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let o = out.to_str().unwrap();
    let (code, _, err) = mica(&["robustness", "--perturbation", "fog", "--out", o]);
    assert_eq!(code, 1);
    assert!(err.contains("unknown perturbation \"fog\""), "{err}");
    let (code, _, err) = mica(&[
        "robustness",
        "--perturbation",
        "blur",
        "--preset",
        "nope",
        "--out",
        o,
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("unknown classical preset"), "{err}");
    let (code, _, err) = mica(&[
        "robustness",
        "--perturbation",
        "blur",
        "--method",
        "vlm",
        "--out",
        o,
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("unknown method \"vlm\"") && err.contains("provider:model"),
        "{err}"
    );
    let (code, _, err) = mica(&[
        "robustness",
        "--perturbation",
        "jpeg",
        "--severities",
        "100",
        "--out",
        o,
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("jpeg severity"), "{err}");
}

#[test]
fn real_bbbc005_counts_are_crowding_anchors() {
    let d = shared().join("data");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let (code, stdout, err) = mica(&[
        "robustness",
        "--perturbation",
        "crowding",
        "--data",
        d.join("bbbc005").to_str().unwrap(),
        "--severities",
        "1,10",
        "--clustering",
        "0",
        "--images",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}\n{stdout}");
    let csv = std::fs::read_to_string(out.join("robustness.csv")).unwrap();
    let r = rows(&csv, "crowding", "clustering 0");
    let anchors: Vec<_> = r.iter().filter(|x| x.0 == "anchor").collect();
    assert_eq!(anchors.len(), 2, "{csv}");
    assert_eq!((anchors[0].1, anchors[1].1), (1.0, 10.0));
    // The classical method counts sparse real w1 cells almost exactly.
    assert!(anchors.iter().all(|a| a.3.unwrap() < 1.0), "{csv}");
}

/// SAM and the classical method in one run: one curve each, SAM with the real MobileSAM checkpoint
/// and a 4×4 point grid so that each image costs one encoder pass and a few decodes on CPU.
#[cfg(feature = "sam")]
#[test]
fn sam_and_classical_curves_side_by_side() {
    let weights = shared().join("models").join("mobile_sam.pt");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let (code, stdout, err) = mica(&[
        "robustness",
        "--method",
        "classical,sam",
        "--weights",
        weights.to_str().unwrap(),
        "--sam-points-per-side",
        "4",
        "--perturbation",
        "blur",
        "--severities",
        "0,16",
        "--images",
        "1",
        "--count",
        "20",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}\n{stdout}");
    let recs = common::csv_rows(&out.join("robustness.csv"));
    // method, axis, series, kind, label, severity, unit, n_images, n_failed, dice, MAE, bias, F1
    for prefix in ["classical:", "sam:"] {
        let rows: Vec<&Vec<String>> = recs
            .iter()
            .filter(|r| r[0].starts_with(prefix) && r[1] == "blur" && r[3] == "curve")
            .collect();
        let sev: Vec<f64> = rows.iter().map(|r| r[5].parse().unwrap()).collect();
        assert_eq!(sev, [0.0, 16.0], "{prefix} rows in\n{recs:?}");
        for r in rows {
            assert_eq!((r[7].as_str(), r[8].as_str()), ("1", "0"), "{r:?}");
            let dice: f64 = r[9].parse().unwrap();
            let mae: f64 = r[10].parse().unwrap();
            let bias: f64 = r[11].parse().unwrap();
            let f1: f64 = r[12].parse().unwrap();
            assert!((0.0..=1.0).contains(&dice), "{r:?}");
            assert!((0.0..=1.0).contains(&f1), "{r:?}");
            // Count error can never exceed missing all 20 cells or finding many more.
            assert!(mae >= 0.0 && mae == bias.abs() && bias >= -20.0, "{r:?}");
        }
    }
    // The classical method finds generated cells; this pins that the SAM rows are SAM's own.
    let dice_at = |prefix: &str| -> f64 {
        recs.iter()
            .find(|r| r[0].starts_with(prefix) && r[3] == "curve" && r[5] == "0")
            .unwrap()[9]
            .parse()
            .unwrap()
    };
    assert!(dice_at("classical:") > 0.9, "{recs:?}");
    assert_ne!(dice_at("classical:"), dice_at("sam:"), "{recs:?}");
    assert!(
        stdout.contains("sam:mobile_sam:standard | blur"),
        "{stdout}"
    );
    assert!(out.join("robustness_blur.svg").is_file());
}
