//! `mica annotate` driven in a real headless Chromium (scripts/annotate_cdp.py sends mouse and
//! key events through the DevTools protocol): clicks and a drag on known BBBC005 cells give
//! saved labels on those cells, delete and undo work, the saved prompts replay to the same label
//! image with `mica segment --points --boxes`, and a restarted annotator shows what was saved.

mod common;

use common::{chromium, shared, ChildServer as Server};
use mica_core::{io::read_image, BinaryMask, Connectivity, LabelImage, ObjectProps};
use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};

const NAME: &str = "SIMCEPImages_A05_C18_F1_s01_w1";

fn start(home: &Path, out: &Path) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mica"))
        .args(["annotate", "--port", "0", "--weights"])
        .arg(shared().join("models/mobile_sam.pt"))
        .arg("--embeddings")
        .arg(home.join("emb"))
        .arg("--out")
        .arg(out)
        .arg(shared().join(format!("data/bbbc005/images/{NAME}.TIF")))
        .env("HOME", home)
        .env("RAYON_NUM_THREADS", "2")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.trim().to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{url:?}");
    Server { child, url }
}

/// Runs the driver; returns the page's final state.
fn drive(browser: &Path, url: &str, actions: serde_json::Value, dir: &Path) -> serde_json::Value {
    let file = dir.join("actions.json");
    std::fs::write(&file, actions.to_string()).unwrap();
    let out = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/annotate_cdp.py"
        ))
        .arg(browser)
        .arg(url)
        .arg(&file)
        .arg(dir.join("annotate.png"))
        .output()
        .expect("python3");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "driver failed: {err}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {err}"))
}

fn iou(labels: &LabelImage, label: u32, cells: &LabelImage, cell: u32) -> f64 {
    let (mut inter, mut union) = (0usize, 0usize);
    for (l, t) in labels.as_slice().iter().zip(cells.as_slice()) {
        let (x, y) = (*l == label, *t == cell);
        inter += (x && y) as usize;
        union += (x || y) as usize;
    }
    inter as f64 / union as f64
}

#[test]
fn clicks_in_headless_chromium_save_labels_on_the_clicked_cells() {
    let Some(browser) = chromium() else {
        assert!(
            std::env::var_os("MICA_REQUIRE_ORACLES").is_none(),
            "no chromium on PATH (apt-get install -y chromium)"
        );
        eprintln!("SKIPPED: no chromium on PATH (apt-get install -y chromium)");
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let d = home.path();
    let out = d.join("ann");
    let truth = read_image(&shared().join(format!("data/bbbc005/masks/{NAME}.TIF"))).unwrap();
    let cells = BinaryMask::from_image_above(&truth, 0.0).connected_components(Connectivity::Eight);
    let props = mica_core::object_properties(&cells, None).unwrap();
    let mut big: Vec<&ObjectProps> = props.iter().filter(|p| p.area_px > 300).collect();
    big.sort_by_key(|p| p.label);
    let [a, b, c, e] = [big[0], big[1], big[2], big[3]];
    let at = |p: &ObjectProps| serde_json::json!([p.centroid_x, p.centroid_y]);
    let has_mask = serde_json::json!({"expect": "mica.currentMask && mica.currentMask.area > 0"});
    let bx = b.bbox;
    let actions = serde_json::json!([
        // Object 1: a click on cell a, accepted with the button.
        {"click": at(a)}, has_mask, {"press": "#accept"},
        // Object 2: a box dragged around cell b, accepted with Enter.
        {"drag": [bx.x0 as f64 - 2.0, bx.y0 as f64 - 2.0, bx.x1 as f64 + 1.0, bx.y1 as f64 + 1.0]},
        has_mask, {"key": "Enter"},
        // Object 3: cell c with a background point, accepted, then deleted.
        {"click": at(c)}, has_mask, {"click": [5.0, 5.0], "button": "right"},
        {"expect": "mica.current.points.length === 2 && mica.current.points[1][2] === 0"},
        {"press": "#accept"}, {"expect": "mica.accepted.length === 3"}, {"press": "#del-3"},
        // A click on cell e, undone, clicked again: object 4.
        {"click": at(e)}, has_mask, {"press": "#undo"},
        {"expect": "mica.current.points.length === 0 && mica.currentMask === null"},
        {"click": at(e)}, has_mask, {"press": "#accept"},
        {"expect": "document.getElementById('count').textContent === '3'"},
        {"press": "#save"}, {"expect": "mica.saved === true"},
    ]);
    let server = start(d, &out);
    let state = drive(&browser, &server.url, actions, d);
    assert_eq!(state["count"], 3, "{state}");
    assert_eq!(state["error"], serde_json::Value::Null, "{state}");
    drop(server);

    // Labels in the order accepted, each on its cell.
    let table = std::fs::read_to_string(out.join("prompt_labels.csv")).unwrap();
    let pairs: Vec<(String, String)> = table
        .lines()
        .skip(1)
        .map(|r| {
            let f: Vec<&str> = r.split(',').collect();
            (f[1].to_string(), f[2].to_string())
        })
        .collect();
    assert_eq!(
        pairs,
        // Objects with points first (1, 4), then the box-only one (2): as a replay numbers them.
        [("1", "1"), ("4", "2"), ("2", "3")].map(|(o, l)| (o.to_string(), l.to_string())),
        "{table}"
    );
    let labels_file = out.join(format!("{NAME}_labels.tif"));
    let labels = LabelImage::from_image(&read_image(&labels_file).unwrap()).unwrap();
    assert_eq!(labels.num_objects(), 3);
    for (label, cell) in [(1u32, a), (2, e), (3, b)] {
        let v = iou(&labels, label, &cells, cell.label);
        assert!(v > 0.7, "label {label}: IoU {v:.3} with the clicked cell");
    }
    let counts = std::fs::read_to_string(out.join("counts.csv")).unwrap();
    assert!(counts.trim_end().ends_with(",3"), "{counts}");
    let objects = std::fs::read_to_string(out.join("objects.csv")).unwrap();
    assert_eq!(objects.lines().count(), 4, "{objects}");
    let points = std::fs::read_to_string(out.join("points.csv")).unwrap();
    assert_eq!(
        points.lines().count(),
        3,
        "objects 1 and 4, one point each: {points}"
    );
    let boxes = std::fs::read_to_string(out.join("boxes.csv")).unwrap();
    assert_eq!(boxes.lines().count(), 2, "object 2: {boxes}");

    // The saved prompts replay to the same label image (the embedding from the cache).
    let replay = Command::new(env!("CARGO_BIN_EXE_mica"))
        .args(["segment", "--method", "sam", "--points"])
        .arg(out.join("points.csv"))
        .arg("--boxes")
        .arg(out.join("boxes.csv"))
        .arg("--embeddings")
        .arg(d.join("emb"))
        .arg("--weights")
        .arg(shared().join("models/mobile_sam.pt"))
        .arg("--out")
        .arg(d.join("replay"))
        .output()
        .unwrap();
    assert!(
        replay.status.success(),
        "{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    assert_eq!(
        std::fs::read(&labels_file).unwrap(),
        std::fs::read(d.join(format!("replay/{NAME}_labels.tif"))).unwrap(),
        "replayed prompts give the saved labels"
    );

    // The annotations as a study method ("SAM manual" done in mica), for counting and
    // segmentation, stored and reported like every other method.
    let data = d.join("data/bbbc");
    for sub in ["images", "masks"] {
        std::fs::create_dir_all(data.join(sub)).unwrap();
        std::os::unix::fs::symlink(
            shared().join(format!("data/bbbc005/{sub}/{NAME}.TIF")),
            data.join(format!("{sub}/{NAME}.TIF")),
        )
        .unwrap();
    }
    let study = d.join("manual.toml");
    std::fs::write(
        &study,
        format!(
            r#"
name = "manual"
data_root = "{root}"
[[datasets]]
name = "bbbc"
kind = "bbbc005"
path = "bbbc"
[[methods]]
name = "SAM manual (mica)"
kind = "sam"
weights = "{weights}"
points = "{out}/points.csv"
boxes = "{out}/boxes.csv"
[[tasks]]
kind = "count"
datasets = ["bbbc"]
methods = ["SAM manual (mica)"]
[[tasks]]
kind = "segment"
datasets = ["bbbc"]
methods = ["SAM manual (mica)"]
"#,
            root = d.join("data").display(),
            weights = shared().join("models/mobile_sam.pt").display(),
            out = out.display(),
        ),
    )
    .unwrap();
    let store = d.join("manual.sqlite");
    let run = Command::new(env!("CARGO_BIN_EXE_mica"))
        .args(["-q", "run"])
        .arg(&study)
        .arg("--store")
        .arg(&store)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let report = d.join("report");
    common::write_report(&store, &report);
    let counting = std::fs::read_to_string(report.join("tables/counting.csv")).unwrap();
    eprintln!("{counting}");
    let row = counting
        .lines()
        .find(|l| l.contains("SAM manual (mica)"))
        .unwrap_or_else(|| panic!("{counting}"));
    // 3 objects annotated of the 18 cells the name says: an error of 15.
    assert!(row.contains(",15"), "{row}");
    let seg = std::fs::read_to_string(report.join("tables/segmentation.csv")).unwrap();
    assert!(seg.contains("SAM manual (mica)"), "{seg}");

    // A new session on the same folder shows the saved objects.
    let server = start(d, &out);
    let state = drive(
        &browser,
        &server.url,
        serde_json::json!([{"expect": "mica.accepted.length === 3 && mica.saved === true"}]),
        d,
    );
    assert_eq!(state["count"], 3, "{state}");
}
