//! A study run as a Slurm job array on a real single-node Slurm cluster (issue #18).
//!
//! The test starts munged, slurmctld and slurmd from Debian's `slurm-wlm` and `munge` packages
//! (`.ci/run` installs them) with a `slurm.conf` it writes into a temporary folder, submits
//! `examples/slurm/submit.sh` (an array of 4 `mica run --shard auto` tasks plus a merge-and-report
//! job that depends on it), makes one task's first attempt slow so that it meets its time limit,
//! stops and requeues itself, and checks that:
//!
//! - the merged store equals a single-machine run of the same study, prediction by prediction;
//! - the model server was asked once per image across all tasks and attempts (no repeated call);
//! - the slow task ran twice (stopped near its time limit, requeued, resumed) and said so.
//!
//! The daemons are stopped by their PIDs when the test ends, pass or fail. Without Slurm (or not as
//! root) the test says so and returns, except under `MICA_REQUIRE_ORACLES=1` (CI), where it fails.

mod common;

use common::{free_port, required};

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

fn which(prog: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {prog}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// A single-node Slurm cluster in a temporary folder; its daemons are killed on drop.
struct Cluster {
    dir: PathBuf,
    conf: PathBuf,
    daemons: Vec<(&'static str, Child)>,
}

impl Cluster {
    fn start(dir: &Path) -> Cluster {
        let host = String::from_utf8(
            Command::new("hostname")
                .arg("-s")
                .output()
                .expect("hostname")
                .stdout,
        )
        .unwrap()
        .trim()
        .to_string();
        let munge = dir.join("munge");
        for d in ["munge", "state", "spool", "log"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&munge, std::fs::Permissions::from_mode(0o700)).unwrap();
        let key = munge.join("munge.key");
        let mut bytes = vec![0u8; 1024];
        let mut f = std::fs::File::open("/dev/urandom").unwrap();
        std::io::Read::read_exact(&mut f, &mut bytes).unwrap();
        std::fs::write(&key, &bytes).unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let socket = munge.join("socket");
        let mut cluster = Cluster {
            dir: dir.to_path_buf(),
            conf: dir.join("slurm.conf"),
            daemons: Vec::new(),
        };
        let log = |name: &str| {
            std::fs::File::create(dir.join("log").join(format!("{name}.out"))).unwrap()
        };
        let munged = Command::new("munged")
            .arg("--foreground")
            .arg("--force")
            .arg(format!("--key-file={}", key.display()))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--pid-file={}", munge.join("pid").display()))
            .arg(format!("--log-file={}", munge.join("log").display()))
            .arg(format!("--seed-file={}", munge.join("seed").display()))
            .stdout(log("munged"))
            .stderr(log("munged"))
            .spawn()
            .expect("munged");
        cluster.daemons.push(("munged", munged));
        let t0 = Instant::now();
        while !socket.exists() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "munged did not start: {}",
                text(&munge.join("log"))
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let d = dir.display();
        let conf = format!(
            "ClusterName=micatest
SlurmctldHost={host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort={ctld}
SlurmdPort={slurmd}
AuthType=auth/munge
AuthInfo=socket={socket}
CredType=cred/munge
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/log/slurmctld.log
SlurmdLogFile={d}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
InactiveLimit=0
MinJobAge=600
KillWait=10
NodeName={host} NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN
PartitionName=test Nodes={host} Default=YES MaxTime=INFINITE State=UP
",
            ctld = free_port(),
            slurmd = free_port(),
            socket = socket.display(),
        );
        std::fs::write(&cluster.conf, conf).unwrap();
        let ctld = Command::new("slurmctld")
            .args(["-D", "-i", "-f"])
            .arg(&cluster.conf)
            .env("SLURM_CONF", &cluster.conf)
            .stdout(log("slurmctld"))
            .stderr(log("slurmctld"))
            .spawn()
            .expect("slurmctld");
        cluster.daemons.push(("slurmctld", ctld));
        let slurmd = Command::new("slurmd")
            .args(["-D", "-f"])
            .arg(&cluster.conf)
            .env("SLURM_CONF", &cluster.conf)
            .stdout(log("slurmd"))
            .stderr(log("slurmd"))
            .spawn()
            .expect("slurmd");
        cluster.daemons.push(("slurmd", slurmd));
        let t0 = Instant::now();
        loop {
            let out = cluster.cmd("sinfo").args(["-h", "-o", "%T"]).output();
            let state = out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
            if state.as_deref().is_ok_and(|s| s == "idle") {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "the Slurm node did not come up ({state:?}):\n{}",
                cluster.logs()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
        cluster
    }

    fn cmd(&self, prog: &str) -> Command {
        let mut c = Command::new(prog);
        c.env("SLURM_CONF", &self.conf);
        c
    }

    fn logs(&self) -> String {
        let mut s = String::new();
        for f in ["slurmctld.log", "slurmd.log"] {
            let t = text(&self.dir.join("log").join(f));
            let tail: Vec<&str> = t.lines().rev().take(25).collect();
            s += &format!("--- {f}\n");
            for l in tail.into_iter().rev() {
                s += l;
                s.push('\n');
            }
        }
        s
    }

    /// `squeue` lines `ID STATE REASON` of every job.
    fn queue(&self) -> Vec<(String, String, String)> {
        let out = self
            .cmd("squeue")
            .args(["-h", "-r", "-o", "%i %T %r"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let mut p = l.split_whitespace();
                Some((
                    p.next()?.into(),
                    p.next()?.into(),
                    p.next().unwrap_or("").into(),
                ))
            })
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self
            .cmd("scancel")
            .arg("--full")
            .arg("-u")
            .arg("root")
            .status();
        // Daemons in reverse order of start, by PID: TERM, then KILL if one lingers.
        for (_, child) in self.daemons.iter_mut().rev() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let t0 = Instant::now();
            while child.try_wait().ok().flatten().is_none()
                && t0.elapsed() < Duration::from_secs(10)
            {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn a_study_as_a_slurm_job_array_with_a_requeued_task_merges_into_the_single_machine_result() {
    let missing: Vec<&str> = ["munged", "slurmctld", "slurmd", "sbatch", "scontrol"]
        .into_iter()
        .filter(|p| !which(p))
        .collect();
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !missing.is_empty() || !root {
        let why = if root {
            format!(
                "not installed: {} (apt-get install slurm-wlm munge)",
                missing.join(", ")
            )
        } else {
            "not root (the test cluster runs its daemons as root)".into()
        };
        assert!(!required(), "the Slurm test cannot run: {why}");
        eprintln!("skipping the Slurm test: {why}");
        return;
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();

    // A model server that counts its calls.
    let (url, hits) = common::count_server(0, 100);
    let study = dir.join("study.toml");
    std::fs::write(
        &study,
        format!(
            r#"
name = "slurm test"
data_root = "{}"
[[datasets]]
name = "bbbc"
kind = "bbbc005"
path = "bbbc005"
[[methods]]
name = "classical"
kind = "classical"
preset = "fluorescence-nuclei"
[[methods]]
name = "test model"
kind = "vlm"
model = "openai-compatible:test-model"
base_url = "{url}"
[[tasks]]
kind = "count"
datasets = ["bbbc"]
methods = ["classical", "test model"]
objects = "cells"
[[tasks]]
kind = "segment"
datasets = ["bbbc"]
methods = ["classical"]
"#,
            repo.join("examples").display()
        ),
    )
    .unwrap();
    let mica = env!("CARGO_BIN_EXE_mica");

    // The single-machine run to compare with.
    let single = dir.join("single/results.sqlite");
    let st = Command::new(mica)
        .env_remove("OPENAI_API_KEY")
        .args(["-q", "run"])
        .arg(&study)
        .arg("--store")
        .arg(&single)
        .status()
        .unwrap();
    assert!(st.success(), "single-machine run: {st}");
    let single_calls = hits.swap(0, Ordering::SeqCst);
    assert_eq!(single_calls, 10, "one call per image");

    // Task 1's first attempt is slow (10 s per prediction) so that it meets its time limit; every
    // other run is mica as it is.
    let slow_task = 1;
    let wrapper = dir.join("mica-wrapper.sh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nif [ \"$SLURM_ARRAY_TASK_ID\" = {slow_task} ] && [ \"${{SLURM_RESTART_COUNT:-0}}\" = 0 ]; then\n  exec {mica} \"$@\" --delay-ms 10000\nfi\nexec {mica} \"$@\"\n"
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let shard_planned = |i: u32| {
        let out = Command::new(mica)
            .args(["run", "--dry-run", "--shard", &format!("{i}/4")])
            .arg(&study)
            .arg("--store")
            .arg(dir.join("none.sqlite"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let plan = shard_planned(slow_task);
    assert!(
        !plan.contains(", 0 to make"),
        "shard {slow_task}/4 is empty, pick another slow task: {plan}"
    );

    let cluster = Cluster::start(&dir.join("slurm"));
    let results = dir.join("results");
    let jobs = dir.join("jobs");
    std::fs::create_dir_all(&jobs).unwrap();
    let out = cluster
        .cmd(&repo.join("examples/slurm/submit.sh").to_string_lossy())
        .arg(&study)
        .arg("4")
        .arg(&results)
        .current_dir(&jobs)
        .env("MICA", &wrapper)
        .env_remove("OPENAI_API_KEY")
        .env(
            "MICA_SBATCH_ARGS",
            "--time=1 --signal=B:USR1@50 --cpus-per-task=1",
        )
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "submit.sh: {said}\n{}",
        cluster.logs()
    );
    let array: String = said
        .split_whitespace()
        .nth(2)
        .unwrap_or_default()
        .to_string();
    assert!(
        array.chars().all(|c| c.is_ascii_digit()) && !array.is_empty(),
        "{said}"
    );

    // Wait for everything to end; a requeued task waits for its begin time (120 s after the
    // requeue on Slurm 22.05): move it to now, as an administrator would.
    let t0 = Instant::now();
    let slow_id = format!("{array}_{slow_task}");
    let mut requeued = false;
    // When the requeued task was first seen waiting: its start is moved only after it has
    // waited 2 s, so that slurmctld has finished requeueing it (moving it at once raced the
    // requeue: slurmd then refused to launch it, "Job … already killed").
    let mut waiting_since: Option<Instant> = None;
    loop {
        let q = cluster.queue();
        if q.is_empty() {
            break;
        }
        for (id, state, reason) in &q {
            if id == &slow_id && state == "PENDING" && reason == "BeginTime" {
                requeued = true;
                let since = *waiting_since.get_or_insert_with(Instant::now);
                if since.elapsed() < Duration::from_secs(2) {
                    continue;
                }
                let _ = cluster
                    .cmd("scontrol")
                    .args(["update", &format!("JobId={id}"), "StartTime=now"])
                    .status();
            }
            assert!(
                !reason.contains("DependencyNeverSatisfied"),
                "the merge job will never run: {q:?}\n{}",
                cluster.logs()
            );
        }
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "jobs still queued after 300 s: {q:?}\n{}",
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let logs: Vec<(String, String)> = std::fs::read_dir(&jobs)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (
                p.file_name().unwrap().to_string_lossy().to_string(),
                text(&p),
            )
        })
        .collect();
    let all_logs = || {
        logs.iter()
            .map(|(n, t)| format!("=== {n}\n{t}"))
            .collect::<String>()
            + &cluster.logs()
    };
    assert!(
        requeued,
        "task {slow_id} was never requeued:\n{}",
        all_logs()
    );
    let slow_log = logs
        .iter()
        .find(|(n, _)| n.ends_with(&format!("_{slow_task}.log")))
        .map(|(_, t)| t.clone())
        .unwrap_or_default();
    assert!(
        slow_log.contains("attempt 1") && slow_log.contains("attempt 2"),
        "{}",
        all_logs()
    );
    assert!(slow_log.contains("requeueing"), "{}", all_logs());
    assert!(slow_log.contains("stopped by a signal"), "{}", all_logs());

    // The slow shard's store: a stopped run, then a finished one.
    let runs =
        mica_store::Store::open_read_only(&results.join(format!("shard-{slow_task}.sqlite")))
            .unwrap()
            .runs()
            .unwrap();
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert!(runs[0].finished_unix_s.is_none() && runs[1].finished_unix_s.is_some());
    assert!(
        runs[1]
            .settings_json
            .contains(&format!("slurm array job {array} task {slow_task}")),
        "{}",
        runs[1].settings_json
    );

    // The merged store is the single-machine one; the model was asked once per image.
    let merged = results.join("all.sqlite");
    assert!(merged.is_file(), "{}", all_logs());
    assert_eq!(
        common::prediction_rows(&merged),
        common::prediction_rows(&single),
        "{}",
        all_logs()
    );
    assert_eq!(
        hits.load(Ordering::SeqCst),
        10,
        "model calls across tasks and attempts"
    );
    let merge_log = logs
        .iter()
        .find(|(n, _)| n.starts_with("mica-mica-merge"))
        .map(|(_, t)| t.clone())
        .unwrap_or_default();
    assert!(!merge_log.contains("warning"), "{merge_log}");
    assert!(
        results.join("report/report.html").is_file(),
        "{}",
        all_logs()
    );
    drop(cluster);
}
