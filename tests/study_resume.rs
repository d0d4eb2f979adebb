//! `mica run` survives SIGKILL: a resumed run ends with the same tables as an uninterrupted one,
//! no duplicate rows, and no prediction made twice.

mod common;

use common::{count_server, vlm_count_study, write_report};

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn mica() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mica"));
    c.env_remove("MICA_SAM_WEIGHTS")
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    c
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
    write_report(store, out);
    std::fs::read_to_string(out.join("tables").join(format!("{table}.csv"))).unwrap()
}

#[test]
fn sigkill_mid_run_then_resume_gives_the_uninterrupted_result() {
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full/results.sqlite");
    let cut = dir.path().join("cut/results.sqlite");

    let st = run_study(&full, &[]).wait().unwrap();
    assert!(st.success(), "uninterrupted run failed: {st}");
    let want = common::prediction_rows(&full);
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
    let before = common::prediction_rows(&cut);
    assert!(
        before.len() < want.len(),
        "killed too late: {} of {}",
        before.len(),
        want.len()
    );

    let st = run_study(&cut, &[]).wait().unwrap();
    assert!(st.success(), "resumed run failed: {st}");
    let mut got = common::prediction_rows(&cut);
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
    let mut a = common::prediction_rows(&full);
    let mut b = common::prediction_rows(&merged);
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

#[test]
fn vlm_calls_are_not_repeated_after_sigkill() {
    use std::sync::atomic::Ordering;
    let (url, hits) = count_server(150, 100);
    let dir = tempfile::tempdir().unwrap();
    let study = vlm_count_study(dir.path(), "openai-compatible:test-model", &url);
    let store = dir.path().join("vlm.sqlite");
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_mica"))
            .env_remove("OPENAI_API_KEY")
            .env_remove("OPENAI_BASE_URL")
            .args(["-q", "run"])
            .arg(&study)
            .arg("--store")
            .arg(&store)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    // One call at a time (--delay-ms), killed after a few answers.
    let mut child = run(&["--delay-ms", "1"]);
    let t0 = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let done = mica_store::Store::open_read_only(&store)
            .and_then(|s| s.done_keys())
            .map(|k| k.len())
            .unwrap_or(0);
        if done >= 3 {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(60), "no progress");
        assert!(
            child.try_wait().unwrap().is_none(),
            "run ended before the kill"
        );
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let stored_before = mica_store::Store::open_read_only(&store)
        .unwrap()
        .done_keys()
        .unwrap()
        .len();
    let calls_before = hits.load(Ordering::SeqCst);
    assert!(stored_before < 10);
    // At most the one call in flight at the kill was lost (its answer never arrived).
    assert!(
        calls_before <= stored_before + 1,
        "{calls_before} calls, {stored_before} stored"
    );

    assert!(run(&[]).wait().unwrap().success());
    let s = mica_store::Store::open_read_only(&store).unwrap();
    let preds = s.predictions().unwrap();
    assert_eq!(preds.len(), 10);
    assert!(preds
        .iter()
        .all(|p| p.value_num == Some(7.0) && p.tokens_in == Some(100)));
    let calls = hits.load(Ordering::SeqCst);
    // Every image was asked once, plus at most the call that was in flight at the kill.
    assert!((10..=11).contains(&calls), "{calls} calls for 10 images");

    // A rerun asks nothing.
    assert!(run(&[]).wait().unwrap().success());
    assert_eq!(hits.load(Ordering::SeqCst), calls);
}

/// The total of `estimated cost: $X` in a dry run's output.
fn dry_run_total(text: &str) -> f64 {
    let line = text
        .lines()
        .find(|l| l.starts_with("estimated cost: $"))
        .unwrap_or_else(|| panic!("no total in {text}"));
    line["estimated cost: $".len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn max_cost_stops_before_spending_more_and_dry_run_prices_uncached_calls() {
    use std::sync::atomic::Ordering;
    // gpt-4o prices ($2.50 / $10.00 per M tokens): 4000 input + 5 output tokens = $0.01005 a call.
    let (url, hits) = count_server(0, 4000);
    let dir = tempfile::tempdir().unwrap();
    let study = vlm_count_study(dir.path(), "openai:gpt-4o", &url);
    let store = dir.path().join("vlm.sqlite");
    let mica_run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_mica"))
            .env("OPENAI_API_KEY", "test-key-not-secret")
            .env_remove("OPENAI_BASE_URL")
            .args(["-q", "run"])
            .arg(&study)
            .arg("--store")
            .arg(&store)
            .args(extra)
            .output()
            .unwrap()
    };

    // Dry run: 10 calls priced, nothing sent, nothing written.
    let out = mica_run(&["--dry-run"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        text.contains(
            "test model (openai:gpt-4o): 10 calls to send, 0 answers in the response cache"
        ),
        "{text}"
    );
    let estimate = dry_run_total(&text);
    // Worst case per call: a 696x520 image (1105 tokens at detail high) plus the prompt, and
    // 1024 output tokens: between $0.012 and $0.015.
    assert!((0.12..0.15).contains(&estimate), "{estimate}\n{text}");
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    assert!(!store.exists());

    // A limit of $0.03: each call reserves its worst case (~$0.013) and costs $0.01005, so at
    // most 2 calls fit; the run stops, stores nothing for the rest, and exits with 3.
    let out = mica_run(&["--max-cost", "0.03", "--delay-ms", "1"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let calls = hits.load(Ordering::SeqCst);
    let preds = mica_store::Store::open_read_only(&store)
        .unwrap()
        .predictions()
        .unwrap();
    assert!((1..=2).contains(&calls), "{calls} calls");
    assert_eq!(
        preds.len(),
        calls,
        "one stored prediction per call, no failures"
    );
    assert!(preds.iter().all(|p| p.value_num == Some(7.0)));
    let spent: f64 = preds.iter().filter_map(|p| p.cost_usd).sum();
    assert!(spent <= 0.03 && spent > 0.0, "{spent}");

    // The dry run now prices only what is left.
    let out = mica_run(&["--dry-run"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        text.contains(&format!("{} calls to send", 10 - calls)),
        "{text}"
    );
    let left = dry_run_total(&text);
    assert!(
        (left - estimate * (10 - calls) as f64 / 10.0).abs() < 0.01,
        "{left} {estimate}"
    );

    // Without a limit the rest is made, and nothing is asked twice.
    let out = mica_run(&[]);
    assert!(out.status.success());
    assert_eq!(hits.load(Ordering::SeqCst), 10);
    assert_eq!(
        mica_store::Store::open_read_only(&store)
            .unwrap()
            .predictions()
            .unwrap()
            .len(),
        10
    );

    // With the store gone but the response cache kept, every call is free.
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", store.display()));
    }
    let out = mica_run(&["--dry-run"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        text.contains("0 calls to send, 10 answers in the response cache"),
        "{text}"
    );
    assert_eq!(dry_run_total(&text), 0.0);
    // And a run with a zero limit still uses them all.
    let out = mica_run(&["--max-cost", "0"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(hits.load(Ordering::SeqCst), 10);
}

#[test]
fn max_cost_needs_a_price_and_a_dry_run_prices_unconfigured_models() {
    let dir = tempfile::tempdir().unwrap();
    let (url, hits) = count_server(0, 100);
    let study = vlm_count_study(dir.path(), "openai-compatible:test-model", &url);
    let out = Command::new(env!("CARGO_BIN_EXE_mica"))
        .env_remove("OPENAI_API_KEY")
        .args(["run"])
        .arg(&study)
        .arg("--store")
        .arg(dir.path().join("s.sqlite"))
        .args(["--max-cost", "1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no price") && err.contains("test model"),
        "{err}"
    );
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0);

    // An OpenAI model without a key is skipped by a run, but a dry run still prices its calls.
    let study = vlm_count_study(
        dir.path(),
        "openai:gpt-4o-mini",
        "https://api.openai.com/v1",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_mica"))
        .env_remove("OPENAI_API_KEY")
        .args(["run"])
        .arg(&study)
        .arg("--store")
        .arg(dir.path().join("s2.sqlite"))
        .arg("--dry-run")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("test model (openai:gpt-4o-mini) (not configured here: would run with a key or server): 10 calls to send"),
        "{text}"
    );
}
