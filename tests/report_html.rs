//! The report escapes model text, and renders in headless Chromium with its figures.

mod common;

use common::chromium;
use std::path::{Path, PathBuf};
use std::process::Command;

fn mica() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mica"));
    c.env_remove("MICA_SAM_WEIGHTS");
    c
}

/// A study with imported answers that try to inject HTML, run and reported.
fn hostile_report(dir: &Path) -> PathBuf {
    std::fs::write(
        dir.join("truth.csv"),
        "image,count,class\na.png,3,cat\nb.png,5,dog\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("answers.csv"),
        "image,model\na.png,\"<script>alert('count')</script> Count: 4\"\nb.png,<img src=x onerror=alert(1)> Count: 5\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("study.toml"),
        r#"
name = "hostile <script>alert('title')</script>"
[[datasets]]
name = "d</td><script>"
kind = "table"
path = "truth.csv"
count_column = "count"
class_column = "class"
[[methods]]
name = "m<script>alert(3)</script>"
kind = "imported"
csv = ["answers.csv"]
column = "model"
[[tasks]]
kind = "count"
datasets = ["d</td><script>"]
methods = ["m<script>alert(3)</script>"]
[[tasks]]
kind = "vqa"
datasets = ["d</td><script>"]
methods = ["m<script>alert(3)</script>"]
[[tasks]]
kind = "classify"
datasets = ["d</td><script>"]
methods = ["m<script>alert(3)</script>"]
"#,
    )
    .unwrap();
    let store = dir.join("r.sqlite");
    let st = mica()
        .args(["-q", "run"])
        .arg(dir.join("study.toml"))
        .arg("--store")
        .arg(&store)
        .status()
        .unwrap();
    assert!(st.code() == Some(0) || st.code() == Some(3), "{st}");
    let out = mica()
        .args(["-q", "report"])
        .arg(&store)
        .arg("--out")
        .arg(dir.join("report"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir.join("report/report.html")
}

#[test]
fn model_text_with_script_is_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let html = std::fs::read_to_string(hostile_report(dir.path())).unwrap();
    assert!(
        !html.to_ascii_lowercase().contains("<script"),
        "unescaped <script> in the report"
    );
    assert!(
        !html.contains("<img src=x"),
        "unescaped <img> in the report"
    );
    assert!(!html.contains("</td><script"), "unescaped dataset name");
    assert!(html.contains("&lt;script&gt;alert(&#39;count&#39;)&lt;/script&gt;"));
    // The answers were still parsed: the count after the markup (a bare `5` next to the
    // `1` of `alert(1)` would be two numbers, a parse failure under the strict rules).
    let counting = std::fs::read_to_string(dir.path().join("report/tables/counting.csv")).unwrap();
    assert!(counting.contains(",2,0,"), "{counting}");
}

#[test]
fn demo_report_renders_in_headless_chromium() {
    let Some(browser) = chromium() else {
        eprintln!("SKIPPED: no chromium on PATH (apt-get install -y chromium) - the report was not rendered");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = mica()
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["-q", "demo", "--out"])
        .arg(dir.path().join("demo"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let html = dir.path().join("demo/report/report.html");
    let shot = dir.path().join("shot.png");
    let res = common::headless(&browser, dir.path())
        .args([
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1280,16000",
        ])
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", html.display()))
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&res.stderr);
    assert!(shot.is_file(), "no screenshot; chromium said:\n{log}");
    let console: Vec<&str> = log.lines().filter(|l| l.contains(":CONSOLE")).collect();
    assert!(
        console.is_empty(),
        "console messages:\n{}",
        console.join("\n")
    );
    // The figures rendered: the screenshot holds the second series colour (Okabe-Ito orange
    // #E69F00 at 75 % opacity on white, used by scatter points and nowhere else on the page) and
    // the yellow (255, 220, 0) object outlines of the difference overlays, drawn on the image
    // (inline PNG data URIs).
    let img = mica_core::io::read_image(&shot).unwrap().to_rgb();
    let mica_core::Pixels::U8(px) = img.pixels() else {
        panic!("8-bit screenshot expected")
    };
    let near = |p: &[u8], c: [u8; 3], tol: i32| {
        p.iter()
            .zip(c)
            .all(|(&a, b)| (a as i32 - b as i32).abs() <= tol)
    };
    let count = |c: [u8; 3], tol: i32| px.chunks(3).filter(|p| near(p, c, tol)).count();
    let orange = count([236, 183, 64], 20);
    let yellow = count([255, 220, 0], 6);
    assert!(
        orange > 100,
        "scatter points not rendered ({orange} orange pixels)"
    );
    assert!(
        yellow > 5000,
        "overlay images not rendered ({yellow} yellow outline pixels)"
    );
    // Overlays are also picked by count error (the demo counts and segments with the same
    // methods).
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains("largest count error ("),
        "no count-error pick"
    );
}

/// `scripts/pdf_splits.py` on a PDF printed by headless Chromium: how many figures, table rows
/// and tables lie on more than one page.
fn pdf_splits(browser: &Path, html: &Path, home: &Path) -> serde_json::Value {
    let pdf = home.join(format!(
        "{}.pdf",
        html.file_stem().unwrap().to_string_lossy()
    ));
    let res = common::headless(browser, home)
        .arg("--no-pdf-header-footer")
        .arg(format!("--print-to-pdf={}", pdf.display()))
        .arg(format!("file://{}", html.display()))
        .output()
        .unwrap();
    assert!(
        pdf.is_file(),
        "no PDF; chromium said:\n{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let out = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/pdf_splits.py"
        ))
        .arg(&pdf)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Chromium's print to PDF keeps the report's figures and table rows whole (tables longer than
/// a page go on over pages, row by row). The checker reads the PDF's structure tree; it is
/// first shown to see a split: a page of tall rows without the print rules has rows cut in two.
#[test]
fn report_prints_to_pdf_with_figures_and_rows_whole() {
    let Some(browser) = chromium() else {
        eprintln!("SKIPPED: no chromium on PATH (apt-get install -y chromium) - nothing printed");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let control = dir.path().join("control.html");
    let rows: String = (0..60)
        .map(|i| format!("<tr><td>row {i}<br>a<br>b</td></tr>"))
        .collect();
    std::fs::write(
        &control,
        format!(
            "<html><body><div style=\"height:700px\">x</div><table>{rows}</table></body></html>"
        ),
    )
    .unwrap();
    let c = pdf_splits(&browser, &control, dir.path());
    assert!(
        c["split_rows"].as_u64().unwrap() > 0,
        "the checker sees no split: {c}"
    );
    let out = mica()
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["-q", "demo", "--out"])
        .arg(dir.path().join("demo"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = pdf_splits(
        &browser,
        &dir.path().join("demo/report/report.html"),
        dir.path(),
    );
    assert!(r["pages"].as_u64().unwrap() > 5, "{r}");
    assert!(
        r["figures"].as_u64().unwrap() > 10 && r["rows"].as_u64().unwrap() > 50,
        "{r}"
    );
    assert_eq!(
        (r["split_figures"].as_u64(), r["split_rows"].as_u64()),
        (Some(0), Some(0)),
        "{r}"
    );
}

#[test]
fn vqa_answers_sit_next_to_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for name in ["a.png", "b.png"] {
        let img = mica_core::Image::gray8(4, 4, vec![7; 16]).unwrap();
        mica_core::io::write_png(&d.join(name), &img).unwrap();
    }
    std::fs::write(
        d.join("manifest.csv"),
        "image,question,answer\na.png,What is shown?,Gold nanoparticles on silicon\nb.png,What is shown?,Carbon fibres\n",
    )
    .unwrap();
    std::fs::write(
        d.join("answers.csv"),
        "image,llm\na.png,Some particles\nb.png,Fibres <b>crossing</b>\n",
    )
    .unwrap();
    std::fs::write(
        d.join("study.toml"),
        r#"
name = "vqa"
[[datasets]]
name = "vqa set"
kind = "manifest"
path = "manifest.csv"
[[methods]]
name = "llm"
kind = "imported"
csv = ["answers.csv"]
column = "llm"
[[tasks]]
kind = "vqa"
datasets = ["vqa set"]
methods = ["llm"]
"#,
    )
    .unwrap();
    let store = d.join("r.sqlite");
    let st = mica()
        .args(["-q", "run"])
        .arg(d.join("study.toml"))
        .arg("--store")
        .arg(&store)
        .status()
        .unwrap();
    assert!(st.success(), "{st}");
    let st = mica()
        .args(["-q", "report"])
        .arg(&store)
        .arg("--out")
        .arg(d.join("report"))
        .status()
        .unwrap();
    assert!(st.success());
    let csv = std::fs::read_to_string(d.join("report/tables/vqa_answers.csv")).unwrap();
    assert!(
        csv.contains("vqa set,b.png,What is shown?,Carbon fibres,Fibres <b>crossing</b>"),
        "{csv}"
    );
    let html = std::fs::read_to_string(d.join("report/report.html")).unwrap();
    assert!(html.contains("Gold nanoparticles on silicon"));
    assert!(html.contains("Fibres &lt;b&gt;crossing&lt;/b&gt;"));
}
