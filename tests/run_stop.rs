//! `mica run` under a scheduler's rules (issue #18): SIGTERM stops it between predictions with exit
//! code 5 and a rerun resumes without asking the model again; a second run on a store in use waits
//! and then refuses, naming the holder; `--shard auto` outside a scheduler is refused with the
//! reason.

mod common;

use common::{count_server, vlm_count_study};

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

fn mica_run(study: &Path, store: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mica"));
    c.env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .env_remove("MICA_SAM_WEIGHTS")
        .args(["run"])
        .arg(study)
        .arg("--store")
        .arg(store)
        .args(extra);
    for v in [
        "SLURM_JOB_ID",
        "SLURM_ARRAY_JOB_ID",
        "SLURM_ARRAY_TASK_ID",
        "SLURM_ARRAY_TASK_COUNT",
        "SLURM_ARRAY_TASK_MIN",
        "SLURM_ARRAY_TASK_MAX",
        "SLURM_ARRAY_TASK_STEP",
        "JOB_COMPLETION_INDEX",
    ] {
        c.env_remove(v);
    }
    c
}

fn spawn(mut c: Command) -> Child {
    c.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finish(child: Child) -> (i32, String) {
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn stored(store: &Path) -> usize {
    mica_store::Store::open_read_only(store)
        .and_then(|s| s.done_keys())
        .map(|k| k.len())
        .unwrap_or(0)
}

/// Waits until `n` predictions are stored (the run is under way and holds its lock).
fn wait_for_stored(store: &Path, n: usize, child: &mut Child) {
    let t0 = Instant::now();
    while stored(store) < n {
        assert!(t0.elapsed() < Duration::from_secs(60), "no progress");
        assert!(child.try_wait().unwrap().is_none(), "the run ended early");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig}");
}

#[test]
fn sigterm_stops_between_predictions_with_exit_5_and_a_rerun_asks_each_image_once() {
    let (url, hits) = count_server(200, 100);
    let dir = tempfile::tempdir().unwrap();
    let study = vlm_count_study(dir.path(), "openai-compatible:test-model", &url);
    let store = dir.path().join("s.sqlite");
    let mut child = spawn(mica_run(&study, &store, &["--delay-ms", "1"]));
    wait_for_stored(&store, 2, &mut child);
    signal(&child, "TERM");
    let (code, said) = finish(child);
    assert_eq!(code, 5, "{said}");
    assert!(said.contains("stopped by a signal"), "{said}");
    let kept = stored(&store);
    assert!((2..10).contains(&kept), "{kept} stored\n{said}");
    // Unlike SIGKILL, SIGTERM loses nothing: every answer received was stored.
    assert_eq!(hits.load(Ordering::SeqCst), kept, "{said}");
    let runs = mica_store::Store::open_read_only(&store)
        .unwrap()
        .runs()
        .unwrap();
    assert_eq!(runs.len(), 1);
    assert!(
        runs[0].finished_unix_s.is_none(),
        "a stopped run is not finished"
    );

    let (code, said) = finish(spawn(mica_run(&study, &store, &[])));
    assert_eq!(code, 0, "{said}");
    assert_eq!(stored(&store), 10);
    assert_eq!(hits.load(Ordering::SeqCst), 10, "each image asked once");
}

#[test]
fn a_second_run_on_a_store_in_use_waits_then_refuses_naming_the_holder() {
    let (url, _hits) = count_server(300, 100);
    let dir = tempfile::tempdir().unwrap();
    let study = vlm_count_study(dir.path(), "openai-compatible:test-model", &url);
    let store = dir.path().join("s.sqlite");
    let mut first = spawn(mica_run(&study, &store, &["--delay-ms", "1"]));
    wait_for_stored(&store, 1, &mut first);
    let t0 = Instant::now();
    let (code, said) = finish(spawn(mica_run(&study, &store, &["--wait-for-store", "1"])));
    let waited = t0.elapsed();
    assert_eq!(code, 1, "{said}");
    assert!(said.contains("in use by another mica run"), "{said}");
    assert!(said.contains(&format!("pid {}", first.id())), "{said}");
    assert!(waited >= Duration::from_secs(1), "refused without waiting");
    assert!(first.try_wait().unwrap().is_none(), "the first run goes on");
    signal(&first, "TERM");
    assert_eq!(finish(first).0, 5);
    // Once the holder has gone the store is free again.
    let (code, said) = finish(spawn(mica_run(&study, &store, &["--wait-for-store", "0"])));
    assert_eq!(code, 0, "{said}");
}

#[test]
fn shard_auto_outside_a_scheduler_or_on_an_array_with_holes_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let study = vlm_count_study(
        dir.path(),
        "openai-compatible:test-model",
        "http://127.0.0.1:9",
    );
    let store = dir.path().join("s.sqlite");
    let (code, said) = finish(spawn(mica_run(&study, &store, &["--shard", "auto"])));
    assert_eq!(code, 1, "{said}");
    assert!(said.contains("not inside a Slurm job array"), "{said}");
    assert!(!store.exists(), "nothing is written for a refused run");

    let mut c = mica_run(&study, &store, &["--shard", "auto"]);
    c.envs([
        ("SLURM_JOB_ID", "12"),
        ("SLURM_ARRAY_JOB_ID", "11"),
        ("SLURM_ARRAY_TASK_ID", "3"),
        ("SLURM_ARRAY_TASK_COUNT", "3"),
        ("SLURM_ARRAY_TASK_MIN", "1"),
        ("SLURM_ARRAY_TASK_MAX", "7"),
        ("SLURM_ARRAY_TASK_STEP", "1"),
    ]);
    let (code, said) = finish(spawn(c));
    assert_eq!(code, 1, "{said}");
    assert!(
        said.contains("not one range: shards would be missing"),
        "{said}"
    );
    assert!(!store.exists());

    let mut c = mica_run(&study, &store, &["--shard", "auto/4"]);
    c.env("JOB_COMPLETION_INDEX", "4");
    let (code, said) = finish(spawn(c));
    assert_eq!(code, 1, "{said}");
    assert!(
        said.contains("JOB_COMPLETION_INDEX=4 is outside 0..4"),
        "{said}"
    );
}
