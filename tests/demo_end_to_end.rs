//! `mica demo` runs end to end on the sample data in examples/ and writes a self-contained report.

use std::process::Command;

#[test]
fn demo_writes_a_self_contained_report() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("demo");
    let t0 = std::time::Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_mica"))
        .env_remove("MICA_SAM_WEIGHTS")
        .env("XDG_CACHE_HOME", dir.path().join("empty-cache"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["demo", "--out"])
        .arg(&out_dir)
        .output()
        .unwrap();
    eprintln!(
        "mica demo took {:.1} s (test build)",
        t0.elapsed().as_secs_f64()
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let printed = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let html_path = std::path::PathBuf::from(&printed);
    assert_eq!(html_path, out_dir.join("report/report.html"));
    let html = std::fs::read_to_string(&html_path).unwrap();

    // Self-contained: no external resource, no script.
    for bad in ["<script", "http://", "src=\"http", "href=\"http", "<link"] {
        let hits: Vec<_> = html.match_indices(bad).map(|(i, _)| i).collect();
        // The only http text allowed is the SAM download address shown as text, and the SVG namespace.
        let allowed = |i: usize| {
            html[i..].starts_with("http://www.w3.org/2000/svg")
                || html[i.saturating_sub(0)..].starts_with("https://github.com/ChaoningZhang")
        };
        assert!(hits.into_iter().all(allowed), "report contains {bad:?}");
    }
    // Every section with content from the demo's methods.
    for needle in [
        "Counting",
        "GPT visual",
        "mica classical (fluorescence-nuclei)",
        "predicted vs true count",
        "Dice per image",
        "data:image/png;base64,",
        "Confusion matrix",
        "Provenance",
        // SAM is skipped offline and the report says how to get it.
        "MICA_SAM_WEIGHTS",
    ] {
        assert!(html.contains(needle), "report lacks {needle:?}");
    }
    assert!(html.matches("<svg").count() >= 8, "too few figures");
    // Tables as CSV and JSON, with the imported methods' numbers.
    let counting = std::fs::read_to_string(out_dir.join("report/tables/counting.csv")).unwrap();
    assert!(counting.lines().count() > 10);
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out_dir.join("report/tables/counting.json")).unwrap(),
    )
    .unwrap();
    // GPT visual on the five w1 sample scenes, by hand from results_counting_BBBC005-S_w1.csv:
    // truth 1, 18, 44, 74, 100; answers 1, 16, 22, 42, 67; errors 0, 2, 22, 32, 33 -> MAE 89/5.
    let row = json
        .as_array()
        .unwrap()
        .iter()
        .find(|r| {
            r["dataset"] == "BBBC005 w1 (sample)"
                && r["method"] == "GPT visual"
                && r["stratum"] == "all"
        })
        .expect("GPT visual row");
    assert_eq!(row["n"], 5);
    let mae = row["mae"].as_f64().unwrap();
    assert!((mae - 17.8).abs() < 1e-9, "{mae}");

    // A second demo resumes: nothing new to do.
    let again = Command::new(env!("CARGO_BIN_EXE_mica"))
        .env_remove("MICA_SAM_WEIGHTS")
        .env("XDG_CACHE_HOME", dir.path().join("empty-cache"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["demo", "--out"])
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(again.status.success());
    let e = String::from_utf8_lossy(&again.stderr);
    assert!(e.contains(" 0 made now"), "{e}");
}
