//! Which part of a study one job runs: `--shard I/N`, or `--shard auto` inside a Slurm job array
//! or a Kubernetes Indexed Job (issue #18).
//!
//! Samples are split by a hash of (dataset, sample id) modulo N, so N jobs divide the work with no
//! coordination. With `auto` the index and count come from the scheduler's environment:
//!
//! - **Slurm** (`sbatch --array=A-B[:S]`): `SLURM_ARRAY_TASK_ID`, `SLURM_ARRAY_TASK_COUNT`,
//!   `SLURM_ARRAY_TASK_MIN` and `SLURM_ARRAY_TASK_STEP`; the shard index is
//!   `(ID - MIN) / STEP`, so `--array=1-8` works as well as `--array=0-7`. The array must be one
//!   range (a list such as `--array=1,3,7` has holes, and shards would be lost): anything else is
//!   refused with the reason.
//! - **Kubernetes** (an Indexed Job): `JOB_COMPLETION_INDEX` is the index; the count is not in the
//!   environment, so it is given as `--shard auto/N` (N = the Job's `completions`).
//!
//! `auto/N` inside a Slurm array also checks that the array has N tasks.

use std::fmt;

/// One shard: `index` of `count` (0-based), and where the numbers came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
    /// `given`, or the scheduler's task, e.g. `slurm array job 12 task 3`.
    pub source: String,
}

impl Shard {
    /// `(index, count)`, as [`crate::RunOptions::shard`] takes it.
    pub fn pair(&self) -> (u32, u32) {
        (self.index, self.count)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)?;
        if self.source != "given" {
            write!(f, " ({})", self.source)?;
        }
        Ok(())
    }
}

/// Kubernetes' index of a pod in an Indexed Job.
pub const K8S_INDEX: &str = "JOB_COMPLETION_INDEX";

/// Parses `I/N`, `auto` or `auto/N`, reading the scheduler's variables through `env`.
///
/// # Errors
/// A malformed value, an index outside the count, `auto` outside a job array or with an array
/// that is not one range: each says what was found and what to do.
pub fn resolve(spec: &str, env: impl Fn(&str) -> Option<String>) -> Result<Shard, String> {
    let spec = spec.trim();
    let bad = |why: String| format!("--shard {spec:?}: {why}");
    let number = |what: &str, s: &str| -> Result<u32, String> {
        s.trim()
            .parse::<u32>()
            .map_err(|_| bad(format!("{what} {s:?} is not a whole number")))
    };
    let (first, count) = match spec.split_once('/') {
        Some((i, n)) => (i.trim(), Some(number("the count", n)?)),
        None => (spec, None),
    };
    if count == Some(0) {
        return Err(bad("the count must be at least 1".into()));
    }
    if !first.eq_ignore_ascii_case("auto") {
        let Some(n) = count else {
            return Err(bad(
                "expected I/N (e.g. 0/4), auto (in a Slurm job array) or auto/N".into(),
            ));
        };
        let i = number("the index", first)?;
        if i >= n {
            return Err(bad(format!("index {i} is outside 0..{n} (0-based)")));
        }
        return Ok(Shard {
            index: i,
            count: n,
            source: "given".into(),
        });
    }
    let var = |name: &str| {
        env(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let var_num = |name: &str| -> Result<Option<u64>, String> {
        var(name)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| bad(format!("{name}={v:?} is not a whole number")))
            })
            .transpose()
    };
    if let Some(id) = var_num("SLURM_ARRAY_TASK_ID")? {
        let tasks = var_num("SLURM_ARRAY_TASK_COUNT")?.ok_or_else(|| {
            bad("SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not (Slurm older than 18.08?); give --shard I/N".into())
        })?;
        let min = var_num("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
        let max = var_num("SLURM_ARRAY_TASK_MAX")?;
        let step = var_num("SLURM_ARRAY_TASK_STEP")?.unwrap_or(1).max(1);
        let job = var("SLURM_ARRAY_JOB_ID").unwrap_or_else(|| "?".into());
        if let Some(max) = max {
            let span = max.checked_sub(min).map(|d| d / step + 1);
            if span != Some(tasks) || (max - min) % step != 0 {
                return Err(bad(format!(
                    "the Slurm array (tasks {min}..={max}, step {step}) has {tasks} tasks, not one range: shards would be missing. Submit a range such as --array=0-{}",
                    tasks.saturating_sub(1)
                )));
            }
        }
        if id < min || (id - min) % step != 0 || (id - min) / step >= tasks {
            return Err(bad(format!(
                "SLURM_ARRAY_TASK_ID={id} is not a task of the array (first {min}, step {step}, {tasks} tasks)"
            )));
        }
        let index = u32::try_from((id - min) / step).map_err(|_| bad("index too large".into()))?;
        let n = u32::try_from(tasks).map_err(|_| bad("too many tasks".into()))?;
        if let Some(c) = count {
            if c != n {
                return Err(bad(format!(
                    "the Slurm array has {n} tasks (SLURM_ARRAY_TASK_COUNT), not {c}: every task must split the study the same way"
                )));
            }
        }
        return Ok(Shard {
            index,
            count: n,
            source: format!("slurm array job {job} task {id}"),
        });
    }
    if let Some(i) = var_num(K8S_INDEX)? {
        let Some(n) = count else {
            return Err(bad(format!(
                "{K8S_INDEX}={i} (a Kubernetes Indexed Job) does not say how many pods there are: give --shard auto/N with N = the Job's completions"
            )));
        };
        let index = u32::try_from(i).map_err(|_| bad("index too large".into()))?;
        if index >= n {
            return Err(bad(format!("{K8S_INDEX}={i} is outside 0..{n}")));
        }
        return Ok(Shard {
            index,
            count: n,
            source: format!("kubernetes completion index {i}"),
        });
    }
    if var("SLURM_JOB_ID").is_some() {
        return Err(bad(
            "this is a Slurm job but not a job array (SLURM_ARRAY_TASK_ID is unset): submit it with sbatch --array=0-(N-1), or give --shard I/N".into(),
        ));
    }
    Err(bad(
        "not inside a Slurm job array (SLURM_ARRAY_TASK_ID is unset) or a Kubernetes Indexed Job (JOB_COMPLETION_INDEX is unset); give --shard I/N".into(),
    ))
}

/// What the runs of a merged store say about its shards: one line per problem (none when every
/// shard of one split is present, each with a finished run, all of one study file).
///
/// A run's shard is the `shard` ("I/N") in its settings; runs without one ran everything.
pub fn coverage_problems(runs: &[mica_store::RunRecord]) -> Vec<String> {
    use std::collections::{BTreeMap, BTreeSet};
    let mut problems = Vec::new();
    let mut whole = false;
    // (count, index) -> whether some run of it finished
    let mut shards: BTreeMap<(u32, u32), bool> = BTreeMap::new();
    let mut studies: BTreeSet<&str> = BTreeSet::new();
    for r in runs {
        studies.insert(r.study_hash.as_str());
        let shard = serde_json::from_str::<serde_json::Value>(&r.settings_json)
            .ok()
            .and_then(|v| v.get("shard").and_then(|s| s.as_str()).map(str::to_string));
        match shard.and_then(|s| resolve(&s, |_| None).ok()) {
            Some(s) => {
                let done = shards.entry((s.count, s.index)).or_insert(false);
                *done |= r.finished_unix_s.is_some();
            }
            None => whole = true,
        }
    }
    if studies.len() > 1 {
        problems.push(format!(
            "the runs come from {} different study files (sha256 {}): check that every shard ran the same study",
            studies.len(),
            studies.iter().map(|h| format!("{}…", &h[..h.len().min(12)])).collect::<Vec<_>>().join(", ")
        ));
    }
    let counts: BTreeSet<u32> = shards.keys().map(|k| k.0).collect();
    if counts.len() > 1 {
        problems.push(format!(
            "the shards split the study different ways (N = {}): each split covers every sample once, different splits do not line up",
            counts.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")
        ));
    }
    if !whole {
        for &n in &counts {
            let missing: Vec<String> = (0..n)
                .filter(|i| !shards.contains_key(&(n, *i)))
                .map(|i| format!("{i}/{n}"))
                .collect();
            if !missing.is_empty() {
                problems.push(format!(
                    "shard{} {} of {n} {} missing: the merged store lacks {} samples",
                    if missing.len() == 1 { "" } else { "s" },
                    missing.join(", "),
                    if missing.len() == 1 { "is" } else { "are" },
                    if missing.len() == 1 { "its" } else { "their" }
                ));
            }
        }
    }
    let unfinished: Vec<String> = shards
        .iter()
        .filter(|(_, done)| !**done)
        .map(|((n, i), _)| format!("{i}/{n}"))
        .collect();
    if !unfinished.is_empty() {
        problems.push(format!(
            "shard{} {} never finished a run (stopped, killed or still running): {} predictions may be incomplete; rerun {} with the same --store, then merge again",
            if unfinished.len() == 1 { "" } else { "s" },
            unfinished.join(", "),
            if unfinished.len() == 1 { "its" } else { "their" },
            if unfinished.len() == 1 { "it" } else { "them" }
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        let m: HashMap<&str, &str> = vars.iter().copied().collect();
        move |k| m.get(k).map(|v| v.to_string())
    }

    fn slurm(
        id: &str,
        count: &str,
        min: &str,
        max: &str,
        step: &str,
    ) -> Vec<(&'static str, String)> {
        vec![
            ("SLURM_JOB_ID", "40".into()),
            ("SLURM_ARRAY_JOB_ID", "12".into()),
            ("SLURM_ARRAY_TASK_ID", id.into()),
            ("SLURM_ARRAY_TASK_COUNT", count.into()),
            ("SLURM_ARRAY_TASK_MIN", min.into()),
            ("SLURM_ARRAY_TASK_MAX", max.into()),
            ("SLURM_ARRAY_TASK_STEP", step.into()),
        ]
    }

    fn resolve_in(spec: &str, vars: &[(&'static str, String)]) -> Result<Shard, String> {
        let pairs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        resolve(spec, env(&pairs))
    }

    #[test]
    fn given_shards_parse_and_bad_ones_say_why() {
        let s = resolve("2/5", env(&[])).unwrap();
        assert_eq!((s.pair(), s.source.as_str()), ((2, 5), "given"));
        assert_eq!(s.to_string(), "2/5");
        for (spec, why) in [
            ("5/5", "outside 0..5"),
            ("0/0", "at least 1"),
            ("x/3", "\"x\" is not a whole number"),
            ("3", "expected I/N"),
            ("-1/3", "not a whole number"),
        ] {
            let e = resolve(spec, env(&[])).unwrap_err();
            assert!(e.contains(why) && e.contains(spec), "{spec}: {e}");
        }
    }

    #[test]
    fn slurm_arrays_give_index_and_count_from_zero_one_or_a_step() {
        let s = resolve_in("auto", &slurm("3", "8", "0", "7", "1")).unwrap();
        assert_eq!(s.pair(), (3, 8));
        assert_eq!(s.to_string(), "3/8 (slurm array job 12 task 3)");
        // --array=1-8
        assert_eq!(
            resolve_in("auto", &slurm("1", "8", "1", "8", "1"))
                .unwrap()
                .pair(),
            (0, 8)
        );
        assert_eq!(
            resolve_in("auto", &slurm("8", "8", "1", "8", "1"))
                .unwrap()
                .pair(),
            (7, 8)
        );
        // --array=0-14:2
        assert_eq!(
            resolve_in("auto", &slurm("6", "8", "0", "14", "2"))
                .unwrap()
                .pair(),
            (3, 8)
        );
        // auto/N checks the count
        assert_eq!(
            resolve_in("auto/8", &slurm("0", "8", "0", "7", "1"))
                .unwrap()
                .pair(),
            (0, 8)
        );
        let e = resolve_in("auto/4", &slurm("0", "8", "0", "7", "1")).unwrap_err();
        assert!(e.contains("has 8 tasks") && e.contains("not 4"), "{e}");
    }

    #[test]
    fn a_slurm_array_with_holes_is_refused() {
        // What Slurm sets for --array=1,3,7 (seen on slurm-wlm 22.05).
        let e = resolve_in("auto", &slurm("3", "3", "1", "7", "1")).unwrap_err();
        assert!(
            e.contains("not one range") && e.contains("--array=0-2"),
            "{e}"
        );
        let e = resolve_in("auto", &slurm("9", "8", "0", "7", "1")).unwrap_err();
        assert!(e.contains("not a task of the array"), "{e}");
    }

    #[test]
    fn auto_outside_a_scheduler_or_in_a_plain_job_is_refused() {
        let e = resolve("auto", env(&[])).unwrap_err();
        assert!(
            e.contains("not inside a Slurm job array") && e.contains("--shard I/N"),
            "{e}"
        );
        let e = resolve("auto", env(&[("SLURM_JOB_ID", "5")])).unwrap_err();
        assert!(
            e.contains("not a job array") && e.contains("--array"),
            "{e}"
        );
        let e = resolve("auto", env(&[("SLURM_ARRAY_TASK_ID", "1")])).unwrap_err();
        assert!(e.contains("SLURM_ARRAY_TASK_COUNT is not"), "{e}");
        let e = resolve("auto", env(&[("SLURM_ARRAY_TASK_ID", "one")])).unwrap_err();
        assert!(e.contains("SLURM_ARRAY_TASK_ID=\"one\""), "{e}");
    }

    fn run(shard: Option<&str>, finished: bool, study: &str) -> mica_store::RunRecord {
        mica_store::RunRecord {
            id: 1,
            study_name: "s".into(),
            study_hash: study.into(),
            mica_version: "0".into(),
            settings_json: serde_json::json!({ "shard": shard }).to_string(),
            started_unix_s: 0,
            finished_unix_s: finished.then_some(1),
        }
    }

    #[test]
    fn merged_shards_are_checked_for_holes_unfinished_runs_and_mixed_splits() {
        let all: Vec<_> = (0..4)
            .map(|i| run(Some(&format!("{i}/4")), true, "aa"))
            .collect();
        assert!(coverage_problems(&all).is_empty());
        // A requeued shard: its first run stopped, its second finished.
        let mut requeued = all.clone();
        requeued.push(run(Some("2/4"), false, "aa"));
        assert!(coverage_problems(&requeued).is_empty());
        let p = coverage_problems(&all[..3]);
        assert_eq!(p.len(), 1);
        assert!(p[0].contains("shard 3/4 of 4 is missing"), "{p:?}");
        let mut stopped = all[1..].to_vec();
        stopped.push(run(Some("0/4"), false, "aa"));
        let p = coverage_problems(&stopped);
        assert!(
            p.len() == 1 && p[0].contains("shard 0/4 never finished"),
            "{p:?}"
        );
        let mut mixed = all.clone();
        mixed.push(run(Some("1/2"), true, "bb"));
        let p = coverage_problems(&mixed);
        assert!(
            p.iter().any(|l| l.contains("2 different study files")),
            "{p:?}"
        );
        assert!(p.iter().any(|l| l.contains("N = 2, 4")), "{p:?}");
        assert!(
            p.iter().any(|l| l.contains("shard 0/2 of 2 is missing")),
            "{p:?}"
        );
        // A whole run covers everything; unsharded runs are not shards.
        assert!(
            coverage_problems(&[run(None, true, "aa"), run(Some("1/3"), true, "aa")]).is_empty()
        );
    }

    #[test]
    fn kubernetes_indexed_jobs_need_the_count() {
        let k = [(K8S_INDEX, "2")];
        let s = resolve("auto/4", env(&k)).unwrap();
        assert_eq!(
            (s.pair(), s.source.as_str()),
            ((2, 4), "kubernetes completion index 2")
        );
        let e = resolve("auto", env(&k)).unwrap_err();
        assert!(
            e.contains("--shard auto/N") && e.contains("completions"),
            "{e}"
        );
        let e = resolve("auto/2", env(&k)).unwrap_err();
        assert!(e.contains("outside 0..2"), "{e}");
    }
}
