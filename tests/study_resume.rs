//! `mica run` survives SIGKILL: a resumed run ends with the same tables as an uninterrupted one,
//! no duplicate rows, and no prediction made twice.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn mica() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mica"));
    c.env_remove("MICA_SAM_WEIGHTS")
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

/// Every prediction as comparable text: key, status and values (not timings or run ids).
fn rows(store: &Path) -> Vec<String> {
    let s = mica_store::Store::open_read_only(store).unwrap();
    s.predictions()
        .unwrap()
        .into_iter()
        .map(|p| {
            format!(
                "{:?} {:?} {:?} {:?} {:?} {:?}",
                p.key, p.status, p.value_num, p.value_text, p.raw_answer, p.failure
            )
        })
        .collect()
}

fn run_study(store: &Path, extra: &[&str]) -> std::process::Child {
    mica()
        .args([
            "-q",
            "run",
            "studies/demo.toml",
            "--data-root",
            "examples",
            "--store",
        ])
        .arg(store)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn report_table(store: &Path, out: &Path, table: &str) -> String {
    let st = mica()
        .args(["-q", "report"])
        .arg(store)
        .arg("--out")
        .arg(out)
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::read_to_string(out.join("tables").join(format!("{table}.csv"))).unwrap()
}

#[test]
fn sigkill_mid_run_then_resume_gives_the_uninterrupted_result() {
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full/results.sqlite");
    let cut = dir.path().join("cut/results.sqlite");

    let st = run_study(&full, &[]).wait().unwrap();
    assert!(st.success(), "uninterrupted run failed: {st}");
    let want = rows(&full);
    assert!(
        want.len() > 100,
        "the demo study has {} predictions",
        want.len()
    );

    // One prediction at a time, slowly, so the kill lands mid-run.
    let mut child = run_study(&cut, &["--delay-ms", "20"]);
    let t0 = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let n = if cut.is_file() {
            mica_store::Store::open_read_only(&cut)
                .and_then(|s| s.done_keys())
                .map(|k| k.len())
                .unwrap_or(0)
        } else {
            0
        };
        if n >= 40 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "run made no progress"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "run ended before the kill"
        );
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    let before = rows(&cut);
    assert!(
        before.len() < want.len(),
        "killed too late: {} of {}",
        before.len(),
        want.len()
    );

    let st = run_study(&cut, &[]).wait().unwrap();
    assert!(st.success(), "resumed run failed: {st}");
    let mut got = rows(&cut);
    let mut want_sorted = want.clone();
    got.sort();
    want_sorted.sort();
    assert_eq!(
        got, want_sorted,
        "resumed store differs from the uninterrupted one"
    );

    // Nothing done twice: the first run's rows are kept as they were, and the second run made
    // exactly the missing ones.
    let s = mica_store::Store::open_read_only(&cut).unwrap();
    let runs = s.runs().unwrap();
    assert_eq!(runs.len(), 2);
    assert!(
        runs[0].finished_unix_s.is_none(),
        "the killed run cannot have finished"
    );
    let preds = s.predictions().unwrap();
    let by_first = preds.iter().filter(|p| p.run_id == runs[0].id).count();
    let by_second = preds.iter().filter(|p| p.run_id == runs[1].id).count();
    assert_eq!(by_first, before.len());
    assert_eq!(by_second, want.len() - before.len());
    let keys: std::collections::HashSet<_> = preds.iter().map(|p| p.key.clone()).collect();
    assert_eq!(keys.len(), preds.len(), "duplicate prediction rows");

    // The same tables.
    for t in ["counting", "segmentation", "classification"] {
        assert_eq!(
            report_table(&full, &dir.path().join("rf"), t),
            report_table(&cut, &dir.path().join("rc"), t),
            "table {t} differs"
        );
    }

    // A third run has nothing left to do.
    let st = run_study(&cut, &[]).wait().unwrap();
    assert!(st.success());
    let s = mica_store::Store::open_read_only(&cut).unwrap();
    let last = s.runs().unwrap().last().unwrap().id;
    assert_eq!(
        s.predictions()
            .unwrap()
            .iter()
            .filter(|p| p.run_id == last)
            .count(),
        0
    );
}

#[test]
fn shards_merge_into_the_full_study() {
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full.sqlite");
    assert!(run_study(&full, &[]).wait().unwrap().success());
    let mut parts = Vec::new();
    for i in 0..3 {
        let p = dir.path().join(format!("part{i}.sqlite"));
        let st = run_study(&p, &["--shard", &format!("{i}/3")])
            .wait()
            .unwrap();
        assert!(st.success());
        parts.push(p);
    }
    let merged = dir.path().join("merged.sqlite");
    let st = mica()
        .args(["-q", "merge", "--out"])
        .arg(&merged)
        .args(&parts)
        .status()
        .unwrap();
    assert!(st.success());
    let mut a = rows(&full);
    let mut b = rows(&merged);
    a.sort();
    b.sort();
    assert_eq!(a, b);
}

#[test]
fn dry_run_writes_nothing_and_bad_study_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s.sqlite");
    let out = mica()
        .args([
            "run",
            "studies/demo.toml",
            "--data-root",
            "examples",
            "--dry-run",
            "--store",
        ])
        .arg(&store)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("to make"), "{text}");
    assert!(text.contains("estimated cost"), "{text}");
    assert!(!store.exists());

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "name = \"x\"\n[[datasets]]\nname = \"d\"\nkind = \"folder\"\npath = \".\"\ncolour = 1\n",
    )
    .unwrap();
    let out = mica().arg("run").arg(&bad).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml") && err.contains("colour"), "{err}");
}
