//! Running a study into a results store, resumably.
//!
//! Work is planned as (dataset, sample, method) groups, each with the tasks still missing for it in
//! the store; a segmenter runs once per group and answers every task of it (count and segment).
//! Every prediction is committed as soon as it is made, so a killed run loses at most the groups in
//! flight, and a rerun does only what is missing.

use super::data::{self, LoadedDataset};
use super::methods::{self, AnswerRow, ImportedAnswers, Runtime};
use super::schema::{MethodSpec, Study, TaskKind, TaskSpec};
use anyhow::Context;
use mica_core::dataset::Sample;
use mica_core::{BinaryMask, Segmentation};
use mica_store::{MaskFile, MethodRecord, Prediction, PredictionKey, SampleRecord, Store};
use rayon::prelude::*;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// How to run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Memory the images being segmented may take together (bytes); `None`: the machine's
    /// budget ([`mica_core::memory::MemoryBudget::of_machine`]).
    pub max_memory: Option<u64>,
    /// The results store (created if missing).
    pub store: PathBuf,
    /// Run only this shard of the samples ([`crate::shard::resolve`]).
    pub shard: Option<crate::shard::Shard>,
    /// Set (by the binary's SIGTERM/SIGINT handler) to stop: no new prediction is started, those
    /// in flight finish and are stored, and the summary counts the rest as not made.
    pub stop: Option<std::sync::Arc<AtomicBool>>,
    /// How long to wait for another run holding the store ([`mica_store::RunLock`]) before
    /// refusing.
    pub lock_wait: std::time::Duration,
    /// Print the plan and stop.
    pub dry_run: bool,
    /// Delete failed predictions first so they are tried again.
    pub retry_failed: bool,
    pub quiet: bool,
    /// Pause after each stored prediction (for interruption tests and rate limiting by hand).
    pub delay_ms: u64,
    /// Run only these methods (all when empty).
    pub methods: Vec<String>,
    /// Stop calling paid model APIs before the study's spending in this run could exceed this
    /// (USD). Each uncached call reserves its worst case (estimated input tokens + the output
    /// limit) first, as `mica-vlm`'s budget does; cached answers are free and always used.
    pub max_cost_usd: Option<f64>,
    /// Told how many prediction groups there are, then once per group done (the binary draws a
    /// progress bar with it; the library prints none).
    pub progress: Progress,
    /// Where SAM runs (the same rule as `mica segment`: the binary picks it); `None` = the CPU.
    #[cfg(feature = "sam")]
    pub sam_device: Option<mica_sam::Device>,
}

/// A progress callback: `(done, total)` after each prediction group, and once with `done = 0`
/// before the first.
#[derive(Clone, Default)]
pub struct Progress(Option<std::sync::Arc<dyn Fn(u64, u64) + Send + Sync>>);

impl Progress {
    /// A callback called with `(done, total)`.
    pub fn new(f: impl Fn(u64, u64) + Send + Sync + 'static) -> Self {
        Progress(Some(std::sync::Arc::new(f)))
    }

    fn tell(&self, done: u64, total: u64) {
        if let Some(f) = &self.0 {
            f(done, total);
        }
    }
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Progress(callback)"
        } else {
            "Progress(none)"
        })
    }
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct RunSummary {
    /// Predictions the study asks for in this shard (methods that can run).
    pub planned: usize,
    /// Of those, already in the store before this run.
    pub already_done: usize,
    /// Stored by this run.
    pub made: usize,
    /// Of those, failed ones (reason stored).
    pub failed: usize,
    /// Methods that could not run, with the reason.
    pub skipped_methods: Vec<(String, String)>,
    /// Dataset problems (unreadable files, listed names not found).
    pub problems: Vec<String>,
    /// Things worth knowing that are not failures (e.g. the store holds runs of another study).
    pub warnings: Vec<String>,
    /// Predictions not made (and not stored) because the next call could exceed `--max-cost`.
    pub not_made_cost_limit: usize,
    /// Model methods stopped for the rest of the run by an error every later call would repeat
    /// (a rejected key, an unknown model), with that error; their remaining predictions were not
    /// made and nothing was stored for them, so a rerun tries them again.
    pub halted_methods: Vec<(String, String)>,
    /// Predictions not made because their method was stopped.
    pub not_made_halted: usize,
    /// Predictions not made because the run was told to stop ([`RunOptions::stop`]); nothing was
    /// stored for them, so a rerun makes them.
    pub not_made_interrupted: usize,
    /// Money the model calls of this run cost (reported tokens at the price table's prices), USD.
    pub spent_usd: f64,
    /// Stored predictions made with other settings than the method's current ones: deleted
    /// and made again (in a dry run: would be).
    pub stale: usize,
    /// A dry run's plan, line by line, for the binary to print (datasets, predictions per method
    /// and task, the estimated cost of model calls).
    pub plan: Vec<String>,
}

/// Stored predictions of one (method, task, dataset) made with other settings: their keys and the
/// settings hashes they were made with.
type StaleGroup = (Vec<PredictionKey>, BTreeSet<String>);

struct Group {
    dataset: usize,
    sample: usize,
    method: String,
    tasks: Vec<(TaskKind, usize)>,
}

/// Runs (or with `dry_run`, plans) `study` into the store.
///
/// # Errors
/// The store cannot be opened or written, a dataset or imported CSV cannot be read.
pub fn run(study: &Study, opts: &RunOptions) -> anyhow::Result<RunSummary> {
    let mut study = study.clone();
    if !opts.methods.is_empty() {
        for m in &opts.methods {
            if !study.file.methods.iter().any(|s| s.name() == m) {
                anyhow::bail!(
                    "--method {m:?}: no such method in the study (methods: {})",
                    study
                        .file
                        .methods
                        .iter()
                        .map(|s| s.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
        for t in &mut study.file.tasks {
            t.methods.retain(|m| opts.methods.contains(m));
        }
        study.file.tasks.retain(|t| !t.methods.is_empty());
    }
    let study = &study;
    let f = &study.file;
    let mut summary = RunSummary::default();
    let shard = opts.shard.as_ref().map(crate::shard::Shard::pair);
    if let Some(limit) = opts.max_cost_usd {
        if !(limit.is_finite() && limit >= 0.0) {
            anyhow::bail!("--max-cost {limit}: need a non-negative number of US dollars");
        }
    }
    // Datasets used by some task, in file order.
    let used: BTreeSet<&str> = f
        .tasks
        .iter()
        .flat_map(|t| t.datasets.iter().map(String::as_str))
        .collect();
    let mut datasets: Vec<LoadedDataset> = Vec::new();
    for spec in f.datasets.iter().filter(|d| used.contains(d.name.as_str())) {
        let _span = tracing::info_span!("load", dataset = %spec.name).entered();
        let mut ds = data::load(study, spec)?;
        summary.problems.extend(
            ds.problems
                .iter()
                .map(|p| format!("dataset {:?}: {p}", ds.name)),
        );
        normalise_classes(&mut ds, &f.tasks);
        datasets.push(ds);
    }
    let used_methods: BTreeSet<&str> = f
        .tasks
        .iter()
        .flat_map(|t| t.methods.iter().map(String::as_str))
        .collect();
    let mut runtimes: BTreeMap<String, Runtime> = BTreeMap::new();
    let mut effective: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    for spec in f.methods.iter().filter(|m| used_methods.contains(m.name())) {
        let rt = methods::build(
            study,
            spec,
            Some(&vlm_cache_of(&opts.store)),
            #[cfg(feature = "sam")]
            opts.sam_device.as_ref(),
        )?;
        if let Runtime::Skipped(reason) = &rt {
            summary
                .skipped_methods
                .push((spec.name().to_string(), reason.clone()));
        }
        effective.insert(
            spec.name().to_string(),
            methods::effective_settings(study, spec, &rt),
        );
        runtimes.insert(spec.name().to_string(), rt);
    }
    // The settings hash of each (method, task, dataset): what a stored prediction must carry to
    // count as done.
    let mut hashes: HashMap<(String, String, usize), String> = HashMap::new();
    for task in &f.tasks {
        for dname in &task.datasets {
            let Some(di) = datasets.iter().position(|d| &d.name == dname) else {
                continue;
            };
            let dspec = f.datasets.iter().find(|d| &d.name == dname);
            for m in &task.methods {
                let Some(eff) = effective.get(m) else {
                    continue;
                };
                let h = prediction_settings_hash(eff, task, dspec);
                hashes.insert((m.clone(), task.kind.as_str().to_string(), di), h);
            }
        }
    }
    // Imported answers matched to each dataset's samples once.
    let mut imported: HashMap<(String, usize), HashMap<usize, Result<AnswerRow, String>>> =
        HashMap::new();
    for (name, rt) in &runtimes {
        if let Runtime::Imported(a) = rt {
            for (di, d) in datasets.iter().enumerate() {
                imported.insert((name.clone(), di), a.resolve(&d.samples));
            }
        }
    }
    if opts.max_cost_usd.is_some() && !opts.dry_run {
        for (name, rt) in &runtimes {
            if let Runtime::Vlm(v) = rt {
                let unpriced_batch = v.batch_poll.is_some()
                    && v.engine
                        .price()
                        .is_some_and(|p| p.batch_input_usd_per_mtok.is_none());
                if unpriced_batch {
                    anyhow::bail!(
                        "--max-cost was given but method {name:?} ({}) sends batches and its row of the price table has no batch prices (batch_input_usd_per_mtok, batch_output_usd_per_mtok), so its cost cannot be limited",
                        v.engine.spec()
                    );
                }
                if v.engine.price().is_none() {
                    anyhow::bail!(
                        "--max-cost was given but method {name:?} ({}) has no price in mica-vlm's price table, so its cost cannot be limited; add a row to crates/vlm/prices.toml or run it without --max-cost (--method)",
                        v.engine.spec()
                    );
                }
            }
        }
    }

    let done: HashMap<PredictionKey, String> = if opts.dry_run {
        if opts.store.is_file() {
            Store::open_read_only(&opts.store)?.done_settings()?
        } else {
            HashMap::new()
        }
    } else {
        HashMap::new()
    };
    let mut lock = None;
    let mut store = if opts.dry_run {
        None
    } else {
        if let Some(dir) = opts.store.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let t0 = Instant::now();
        let mut waited = false;
        lock = Some(mica_store::RunLock::acquire(
            &opts.store,
            opts.lock_wait,
            |holder| {
                waited = true;
                tracing::warn!(
                    "the store {} is in use by another mica run ({holder}); waiting up to {} s for it to end",
                    opts.store.display(),
                    opts.lock_wait.as_secs()
                );
            },
        )?);
        if waited {
            summary.warnings.push(format!(
                "waited {:.0} s for another mica run to release the store {}",
                t0.elapsed().as_secs_f64(),
                opts.store.display()
            ));
        }
        Some(Store::open(&opts.store)?)
    };
    let done = match &store {
        Some(s) => {
            if opts.retry_failed {
                let n = s.delete_failed()?;
                tracing::info!("deleted {n} failed predictions to retry them");
            }
            s.done_settings()?
        }
        None => done,
    };
    // Stale predictions by (method, task, dataset): keys and the hash they were made with.
    let mut stale: BTreeMap<(String, String, String), StaleGroup> = BTreeMap::new();

    // Plan.
    let mut groups: BTreeMap<(usize, usize, String), Vec<(TaskKind, usize)>> = BTreeMap::new();
    let mut unconfigured: BTreeMap<(usize, usize, String), Vec<(TaskKind, usize)>> =
        BTreeMap::new();
    for (ti, task) in f.tasks.iter().enumerate() {
        for dname in &task.datasets {
            let Some(di) = datasets.iter().position(|d| &d.name == dname) else {
                continue;
            };
            for (si, s) in datasets[di].samples.iter().enumerate() {
                if !in_shard(dname, &s.id, shard) {
                    continue;
                }
                for m in &task.methods {
                    if matches!(runtimes.get(m), Some(Runtime::Skipped(_)) | None) {
                        // A dry run still prices the calls of a model that is not configured.
                        if opts.dry_run && is_vlm(study, m) {
                            unconfigured
                                .entry((di, si, m.clone()))
                                .or_default()
                                .push((task.kind, ti));
                        }
                        continue;
                    }
                    summary.planned += 1;
                    let key = PredictionKey::new(dname, &s.id, task.kind.as_str(), m);
                    let current = hashes.get(&(m.clone(), task.kind.as_str().to_string(), di));
                    match done.get(&key) {
                        Some(h) if Some(h) == current => {
                            summary.already_done += 1;
                            continue;
                        }
                        Some(h) => {
                            let e = stale
                                .entry((m.clone(), task.kind.as_str().to_string(), dname.clone()))
                                .or_default();
                            e.0.push(key.clone());
                            e.1.insert(h.clone());
                            summary.stale += 1;
                        }
                        None => {}
                    }
                    groups
                        .entry((di, si, m.clone()))
                        .or_default()
                        .push((task.kind, ti));
                }
            }
        }
    }
    let to_groups = |m: BTreeMap<(usize, usize, String), Vec<(TaskKind, usize)>>| -> Vec<Group> {
        m.into_iter()
            .map(|((dataset, sample, method), tasks)| Group {
                dataset,
                sample,
                method,
                tasks,
            })
            .collect()
    };
    let groups = to_groups(groups);

    let stale_message = |(m, t, d): &(String, String, String), n: usize, old: &BTreeSet<String>| {
        let short = |h: &str| {
            if h.is_empty() {
                "not recorded".to_string()
            } else {
                format!("{}…", &h[..h.len().min(12)])
            }
        };
        let new = hashes
            .get(&(
                m.clone(),
                t.clone(),
                datasets.iter().position(|x| &x.name == d).unwrap_or(0),
            ))
            .map(|h| short(h))
            .unwrap_or_default();
        let old: Vec<String> = old.iter().map(|h| short(h)).collect();
        format!(
            "method {m:?}, task {t}, dataset {d:?}: {n} stored predictions were made with other settings (sha256 {}; now {new}); {}",
            old.join(", "),
            if opts.dry_run { "they would be deleted and made again" } else { "they were deleted and are made again with the current settings" }
        )
    };
    if opts.dry_run {
        for (k, (keys, old)) in &stale {
            summary.warnings.push(stale_message(k, keys.len(), old));
        }
        let unconfigured = to_groups(unconfigured);
        summary.plan = describe_plan(
            study,
            &datasets,
            &groups,
            &unconfigured,
            &runtimes,
            &summary,
        );
        return Ok(summary);
    }
    let store = store.take().context("store is open when not a dry run")?;
    if let Some(prev) = store
        .runs()?
        .into_iter()
        .rev()
        .find(|r| r.study_hash != study.hash)
    {
        summary.warnings.push(format!(
            "the store {} also holds run {} of a different study file (sha256 {}…, now {}…); predictions already stored are kept, not redone",
            opts.store.display(),
            prev.id,
            &prev.study_hash[..prev.study_hash.len().min(12)],
            &study.hash[..12]
        ));
    }
    let settings = serde_json::json!({
        "study_file": study.source.display().to_string(),
        "data_root": study.data_root.display().to_string(),
        "shard": shard.map(|(i, n)| format!("{i}/{n}")),
        "shard_source": opts.shard.as_ref().map(|s| s.source.clone()),
        "retry_failed": opts.retry_failed,
        "max_cost_usd": opts.max_cost_usd,
        "threads": rayon::current_num_threads(),
    });
    let run_id = store.begin_run(
        &f.name,
        &study.hash,
        env!("CARGO_PKG_VERSION"),
        &settings.to_string(),
    )?;
    let mut store = store;
    for (k, (keys, old)) in &stale {
        store.delete_predictions(keys)?;
        let msg = stale_message(k, keys.len(), old);
        store.add_event(run_id, Some(&k.0), &msg)?;
        summary.warnings.push(msg);
    }
    let records: Vec<SampleRecord> = datasets
        .iter()
        .flat_map(|d| {
            d.samples
                .iter()
                .filter(|s| in_shard(&d.name, &s.id, shard))
                .map(|s| sample_record(&d.name, s))
        })
        .collect();
    store.upsert_samples(&records)?;
    for spec in f.methods.iter().filter(|m| used_methods.contains(m.name())) {
        let skipped = match runtimes.get(spec.name()) {
            Some(Runtime::Skipped(r)) => Some(r.clone()),
            _ => None,
        };
        let eff = effective
            .get(spec.name())
            .map(|e| e.to_string())
            .unwrap_or_default();
        store.upsert_method(&MethodRecord {
            name: spec.name().to_string(),
            kind: spec.kind().to_string(),
            settings_json: serde_json::to_string(spec).unwrap_or_default(),
            skipped_reason: skipped,
            settings_hash: mica_store::sha256_hex(eff.as_bytes()),
            effective_json: eff,
        })?;
    }

    let masks_dir = masks_dir_of(&opts.store);
    let budget = match opts.max_memory {
        Some(b) => mica_core::memory::MemoryBudget::new(b, "--max-memory"),
        None => mica_core::memory::MemoryBudget::of_machine(),
    };
    let store_dir = opts
        .store
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let seg_env = SegmentEnv {
        masks_dir: &masks_dir,
        store_dir: &store_dir,
        budget: &budget,
    };
    let total = groups.len() as u64;
    let done_groups = AtomicUsize::new(0);
    opts.progress.tell(0, total);
    let store = Mutex::new(store);
    let counts = Mutex::new((0usize, 0usize));
    let first_error: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    let spend = Spending {
        budget: mica_vlm::Budget::new(opts.max_cost_usd),
        stopped: AtomicBool::new(false),
        not_made: AtomicUsize::new(0),
        halted: Mutex::new(BTreeMap::new()),
        not_made_halted: AtomicUsize::new(0),
    };
    let not_made_interrupted = AtomicUsize::new(0);
    // Batch API methods first: their uncached requests go out as batches and are waited for;
    // the loop below then stores their answers like any other method's.
    for (name, rt) in &runtimes {
        if let Runtime::Vlm(v) = rt {
            if let Some(poll) = v.batch_poll {
                batch_phase(
                    study, &datasets, &groups, name, v, poll, run_id, &store, &spend, opts,
                );
            }
        }
    }
    let do_group = |g: &Group| {
        if first_error.lock().map(|e| e.is_some()).unwrap_or(true) {
            return;
        }
        if opts.stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst)) {
            if not_made_interrupted.fetch_add(g.tasks.len(), Ordering::SeqCst) == 0 {
                tracing::warn!(
                    "stopping on a signal: the predictions in flight are finished and stored, no new ones are started"
                );
            }
            return;
        }
        let ds = &datasets[g.dataset];
        let sample = &ds.samples[g.sample];
        let Some(rt) = runtimes.get(&g.method) else {
            return;
        };
        let made = match rt {
            Runtime::Imported(a) => {
                let answer = imported
                    .get(&(g.method.clone(), g.dataset))
                    .and_then(|m| m.get(&g.sample));
                imported_predictions(study, ds, sample, g, a, answer, run_id)
            }
            Runtime::Segmenter(seg) => {
                segmenter_predictions(ds, sample, g, seg.as_ref(), run_id, &seg_env)
            }
            Runtime::Vlm(v) => vlm_predictions(study, ds, sample, g, v, run_id, &spend),
            Runtime::Skipped(_) => Vec::new(),
        };
        for (mut p, metrics) in made {
            if let Some(h) = hashes.get(&(p.key.method.clone(), p.key.task.clone(), g.dataset)) {
                p.settings_hash = h.clone();
            }
            let res = store
                .lock()
                .map_err(|_| anyhow::anyhow!("store lock poisoned"))
                .and_then(|s| Ok(s.insert_prediction(&p, &metrics)?));
            match res {
                Ok(inserted) => {
                    if inserted {
                        if let Ok(mut c) = counts.lock() {
                            c.0 += 1;
                            if p.status == mica_store::Status::Failed {
                                c.1 += 1;
                            }
                        }
                    }
                }
                Err(e) => {
                    if let Ok(mut slot) = first_error.lock() {
                        slot.get_or_insert(e);
                    }
                    return;
                }
            }
            if opts.delay_ms > 0 {
                std::thread::sleep(std::time::Duration::from_millis(opts.delay_ms));
            }
        }
        let d = done_groups.fetch_add(1, Ordering::Relaxed) as u64 + 1;
        opts.progress.tell(d, total);
    };
    // Model methods wait on HTTP, not on the CPU: their images get a pool of as many threads
    // as their requests may be in flight (each provider's limiter still caps it), beside the
    // cores' pool that segments the others.
    let vlm_threads: usize = runtimes
        .values()
        .map(|rt| match rt {
            Runtime::Vlm(v) => v.concurrency,
            _ => 0,
        })
        .sum();
    let (vlm_groups, cpu_groups): (Vec<&Group>, Vec<&Group>) = groups
        .iter()
        .partition(|g| matches!(runtimes.get(&g.method), Some(Runtime::Vlm(_))));
    if opts.delay_ms > 0 {
        groups.iter().for_each(do_group);
    } else if vlm_threads > 0 && !vlm_groups.is_empty() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(vlm_threads.min(256))
            .thread_name(|i| format!("mica-vlm-{i}"))
            .build()
            .context("cannot start the threads of the model methods")?;
        rayon::join(
            || pool.install(|| vlm_groups.par_iter().for_each(|g| do_group(g))),
            || cpu_groups.par_iter().for_each(|g| do_group(g)),
        );
    } else {
        groups.par_iter().for_each(do_group);
    }
    if let Some(e) = first_error.into_inner().ok().flatten() {
        return Err(e);
    }
    let store = store
        .into_inner()
        .map_err(|_| anyhow::anyhow!("store lock poisoned"))?;
    summary.not_made_interrupted = not_made_interrupted.into_inner();
    // A stopped run stays unfinished in the runs table, like a killed one.
    if summary.not_made_interrupted == 0 {
        store.finish_run(run_id)?;
    }
    drop(store);
    drop(lock);
    let (made, failed) = counts.into_inner().unwrap_or_default();
    summary.made = made;
    summary.failed = failed;
    summary.not_made_cost_limit = spend.not_made.into_inner();
    summary.not_made_halted = spend.not_made_halted.into_inner();
    summary.halted_methods = spend
        .halted
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .collect();
    for (m, why) in &summary.halted_methods {
        summary.warnings.push(format!(
            "method {m:?} was stopped: {why}; its remaining predictions were not made (nothing stored for them), rerun to make them"
        ));
    }
    summary.spent_usd = spend.budget.spent_usd();
    Ok(summary)
}

/// The settings hash of the predictions of one method on one task and dataset: sha256 of the
/// method's effective settings, the task's settings that change answers (kind, classes, objects)
/// and the dataset's settings that change the images or the stored per-image scores (kind,
/// path as written, masks, info-bar crop, instance masks).
fn prediction_settings_hash(
    method: &serde_json::Value,
    task: &TaskSpec,
    dataset: Option<&super::schema::DatasetSpec>,
) -> String {
    let v = serde_json::json!({
        "method": method,
        "task": { "kind": task.kind.as_str(), "classes": task.classes, "objects": task.objects },
        "dataset": dataset.map(|d| serde_json::json!({
            "kind": d.kind,
            "path": d.path,
            "masks": d.masks,
            "crop_info_bar": d.crop_info_bar,
            "instance_masks": d.instance_masks,
        })),
    });
    mica_store::sha256_hex(v.to_string().as_bytes())
}

/// The folder where predicted masks of a store go: `<store stem>-masks/` next to it.
pub fn masks_dir_of(store: &Path) -> PathBuf {
    let stem = store
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "results".into());
    store.with_file_name(format!("{stem}-masks"))
}

/// The response cache of the vision-language models of a store: `<store stem>-vlm-cache.sqlite`.
pub fn vlm_cache_of(store: &Path) -> PathBuf {
    let stem = store
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "results".into());
    store.with_file_name(format!("{stem}-vlm-cache.sqlite"))
}

/// Whether a sample belongs to shard `i` of `n`: by a hash of its dataset and id, so every shard
/// count splits the same samples the same way whatever the order of the files.
fn in_shard(dataset: &str, id: &str, shard: Option<(u32, u32)>) -> bool {
    let Some((i, n)) = shard else {
        return true;
    };
    let h = mica_store::sha256_hex(format!("{dataset}\u{0}{id}").as_bytes());
    let v = u64::from_str_radix(&h[..16], 16).unwrap_or(0);
    v % n as u64 == i as u64
}

/// Truth classes given as numbers 1..=N become class names when a classify task lists classes.
fn normalise_classes(ds: &mut LoadedDataset, tasks: &[TaskSpec]) {
    let Some(classes) = tasks
        .iter()
        .find(|t| {
            t.kind == TaskKind::Classify && !t.classes.is_empty() && t.datasets.contains(&ds.name)
        })
        .map(|t| &t.classes)
    else {
        return;
    };
    for s in &mut ds.samples {
        if let Some(c) = &s.truth.class {
            if let Ok(n) = c.trim().parse::<usize>() {
                if (1..=classes.len()).contains(&n) {
                    s.truth.class = Some(classes[n - 1].clone());
                }
            }
        }
    }
}

fn sample_record(dataset: &str, s: &Sample) -> SampleRecord {
    let mut meta = s.meta.clone();
    if let Some(q) = &s.truth.question {
        meta.insert(mica_core::dataset::meta::QUESTION.into(), q.clone());
    }
    if let Some(a) = &s.truth.answer {
        meta.insert(mica_core::dataset::meta::REFERENCE_ANSWER.into(), a.clone());
    }
    SampleRecord {
        dataset: dataset.to_string(),
        sample_id: s.id.clone(),
        path: s.path.display().to_string(),
        truth_count: s.truth.count,
        truth_class: s.truth.class.clone(),
        truth_mask: s.truth.mask.as_ref().map(|m| m.display().to_string()),
        meta,
    }
}

type Made = Vec<(Prediction, Vec<(String, f64)>)>;

/// The study-wide cost limit of one run: one budget over all model methods.
struct Spending {
    budget: mica_vlm::Budget,
    /// Set when a call was refused: from then on only cached answers are used.
    stopped: AtomicBool,
    /// Predictions not made because of the limit.
    not_made: AtomicUsize,
    /// Methods stopped for the rest of the run by an error every later call would repeat (a
    /// rejected key, a missing model), with the error.
    halted: Mutex<BTreeMap<String, String>>,
    /// Predictions not made (and not stored) because their method was stopped.
    not_made_halted: AtomicUsize,
}

/// The store as the batch journal of one method.
struct StoreJournal<'a> {
    store: &'a Mutex<Store>,
    method: &'a str,
    run_id: i64,
}

impl StoreJournal<'_> {
    fn with<T>(&self, f: impl FnOnce(&Store) -> mica_store::Result<T>) -> Result<T, String> {
        let s = self
            .store
            .lock()
            .map_err(|_| "store lock poisoned".to_string())?;
        f(&s).map_err(|e| e.to_string())
    }
}

impl mica_vlm::batch::BatchJournal for StoreJournal<'_> {
    fn open(&self) -> Result<Vec<mica_vlm::batch::JournalEntry>, String> {
        Ok(self
            .with(|s| s.batches())?
            .into_iter()
            .filter(|b| {
                b.method == self.method && matches!(b.state.as_str(), "submitting" | "submitted")
            })
            .map(|b| mica_vlm::batch::JournalEntry {
                tag: b.tag,
                batch_id: b.batch_id,
            })
            .collect())
    }
    fn begin(&self, tag: &str, requests: usize) -> Result<(), String> {
        self.with(|s| s.batch_begin(self.method, self.run_id, tag, requests))
    }
    fn submitted(&self, tag: &str, b: &mica_vlm::batch::Submitted) -> Result<(), String> {
        self.with(|s| s.batch_submitted(tag, &b.batch_id, &b.input_file_id))
    }
    fn ended(&self, tag: &str, status: &str, detail: &str) -> Result<(), String> {
        self.with(|s| s.batch_ended(tag, status, detail))
    }
}

/// Sends the uncached requests of batch method `name` through its provider's Batch API and
/// waits for them (resuming the batches an earlier run left open); the answers are cached and
/// kept in the method for the prediction loop. Requests that do not fit the cost limit (at
/// batch prices) are not sent. A failure stops the method for this run, with the reason.
#[allow(clippy::too_many_arguments)]
fn batch_phase(
    study: &Study,
    datasets: &[LoadedDataset],
    groups: &[Group],
    name: &str,
    v: &methods::VlmMethod,
    poll: std::time::Duration,
    run_id: i64,
    store: &Mutex<Store>,
    spend: &Spending,
    opts: &RunOptions,
) {
    let mine: Vec<&Group> = groups.iter().filter(|g| g.method == name).collect();
    if mine.is_empty() || opts.stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst)) {
        return;
    }
    let reserved = Mutex::new(0.0f64);
    let requests = mine.into_iter().flat_map(|g| {
        let ds = &datasets[g.dataset];
        let sample = &ds.samples[g.sample];
        let image = if ds.has_images {
            sample.load_image().ok()
        } else {
            None
        };
        let mut reqs = Vec::new();
        if let Some(img) = image {
            for &(task, ti) in &g.tasks {
                let Ok((_, req)) =
                    vlm_request(&study.file.tasks[ti], task, &v.prompt, &img, &sample.id)
                else {
                    continue;
                };
                // The study's cost limit, at batch prices: a request that does not fit is not
                // sent (the loop counts it as not made).
                if spend.budget.limit_usd().is_some() && !v.engine.is_cached(&req).unwrap_or(false)
                {
                    let est = v.engine.estimate_max_batch_cost_usd(&req).unwrap_or(0.0);
                    if spend.stopped.load(Ordering::SeqCst) || spend.budget.reserve(est).is_err() {
                        spend.stopped.store(true, Ordering::SeqCst);
                        continue;
                    }
                    if let Ok(mut r) = reserved.lock() {
                        *r += est;
                    }
                }
                reqs.push(req);
            }
        }
        reqs
    });
    let journal = StoreJournal {
        store,
        method: name,
        run_id,
    };
    let on_status = |id: &str, st: &mica_vlm::batch::BatchStatus| match st {
        mica_vlm::batch::BatchStatus::Running {
            status,
            completed,
            failed,
            total,
        } => tracing::info!(
            method = name,
            batch = id,
            "batch {status}: {completed} of {total} done, {failed} failed"
        ),
        other => tracing::info!(method = name, batch = id, "batch: {other:?}"),
    };
    let result = v.engine.run_batches(
        requests,
        &journal,
        &mica_vlm::BatchOptions {
            poll_interval: poll,
            stop: opts.stop.as_deref(),
            on_status: &on_status,
        },
    );
    // The loop charges what each answer cost; the reservations only kept the limit.
    spend
        .budget
        .settle(reserved.into_inner().unwrap_or(0.0), 0.0);
    match result {
        Ok(run) => {
            tracing::info!(
                method = name,
                resumed = run.resumed.len(),
                submitted = run.submitted.len(),
                requests = run.requests_sent,
                answers = run.answers.len(),
                "batches done"
            );
            if let Ok(mut a) = v.batch_answers.lock() {
                *a = run.answers;
            }
        }
        // Stopped by a signal: the loop sees the flag and makes nothing new.
        Err(e) if opts.stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst)) => {
            tracing::warn!(method = name, "{e}");
        }
        Err(e) => {
            if let Ok(mut h) = spend.halted.lock() {
                h.entry(name.to_string()).or_insert_with(|| e.to_string());
            }
        }
    }
}

fn is_vlm(study: &Study, method: &str) -> bool {
    study
        .file
        .methods
        .iter()
        .any(|m| m.name() == method && matches!(m, MethodSpec::Vlm { .. }))
}

/// The request a model method sends for one task on one image (the prompt and the image as
/// sent), or why there is none.
fn vlm_request(
    spec: &TaskSpec,
    task: TaskKind,
    prompt_variant: &str,
    img: &mica_core::Image,
    sample_id: &str,
) -> Result<(mica_vlm::TaskPrompt, mica_vlm::VlmRequest), String> {
    use mica_vlm::{prompt::PromptContext, prompt::TemplateSet, Task, TaskPrompt};
    let vtask = match task {
        TaskKind::Count => Task::Count {
            objects: spec.objects.clone().unwrap_or_else(|| "objects".into()),
        },
        TaskKind::Classify => {
            if spec.classes.is_empty() {
                return Err("a classify task needs `classes` for a vision-language model".into());
            }
            Task::Classify {
                labels: vlm_labels(&spec.classes),
            }
        }
        TaskKind::Vqa => Task::Describe,
        TaskKind::Size => Task::Size {
            objects: spec.objects.clone().unwrap_or_else(|| "objects".into()),
        },
        TaskKind::Segment => return Err("a vision-language model cannot segment".into()),
    };
    let set = TemplateSet::builtin(vtask.kind()).map_err(|e| e.to_string())?;
    let tpl = set
        .variant(prompt_variant)
        .map_err(|e| e.to_string())?
        .clone();
    let tp = TaskPrompt::new(vtask, &tpl, PromptContext::default()).map_err(|e| e.to_string())?;
    let prepared = mica_vlm::prepare::prepare(
        img,
        &mica_vlm::prepare::PrepareOptions::default(),
        sample_id,
    )
    .map_err(|e| e.to_string())?;
    let req = tp.request(prepared, &mica_vlm::Sampling::default());
    Ok((tp, req))
}

fn imported_predictions(
    study: &Study,
    ds: &LoadedDataset,
    sample: &Sample,
    g: &Group,
    answers: &ImportedAnswers,
    answer: Option<&Result<AnswerRow, String>>,
    run_id: i64,
) -> Made {
    let mut out = Vec::new();
    for &(task, ti) in &g.tasks {
        let key = PredictionKey::new(&ds.name, &sample.id, task.as_str(), &g.method);
        let (raw, grade) = match answer {
            Some(Ok(row)) => (&row.answer, row.grade.as_deref()),
            Some(Err(why)) => {
                out.push((Prediction::failed(key, run_id, why.clone()), Vec::new()));
                continue;
            }
            None => {
                out.push((
                    Prediction::failed(
                        key,
                        run_id,
                        format!("no answer for this image in {}", answers.sources.join(", ")),
                    ),
                    Vec::new(),
                ));
                continue;
            }
        };
        let mut p = Prediction::ok(key, run_id);
        p.raw_answer = Some(raw.clone());
        match task {
            TaskKind::Count => match mica_metrics::parse::parse_count(raw) {
                Ok(n) => p.value_num = Some(n as f64),
                Err(e) => p.failure = Some(e.reason),
            },
            TaskKind::Classify => match parse_class_answer(raw, &study.file.tasks[ti].classes) {
                Ok(c) => p.value_text = Some(c),
                Err(e) => p.failure = Some(e),
            },
            TaskKind::Vqa => {
                p.value_text = Some(raw.clone());
                // The expert's grade of this answer, kept with it (`grade_column`; checked to
                // be a number when the answers were read).
                p.value_num = grade.and_then(|g| g.trim().parse::<f64>().ok());
            }
            // The study's sizes are bare numbers in µm; a unit (nm, mm) is converted.
            TaskKind::Size => match mica_metrics::parse::parse_size_um(raw) {
                Ok(v) => p.value_num = Some(v),
                Err(e) => p.failure = Some(e.reason),
            },
            TaskKind::Segment => {
                p = Prediction::failed(p.key, run_id, "imported answers cannot segment".to_string())
            }
        }
        out.push((p, Vec::new()));
    }
    out
}

fn vlm_labels(classes: &[String]) -> Vec<mica_metrics::parse::ClassLabel> {
    let nffa = mica_metrics::parse::nffa_labels();
    if classes.len() == nffa.len() && classes.iter().zip(&nffa).all(|(c, l)| c == &l.name) {
        nffa
    } else {
        classes
            .iter()
            .enumerate()
            .map(|(i, c)| mica_metrics::parse::ClassLabel::new(i as u32 + 1, c, &[]))
            .collect()
    }
}

fn vlm_predictions(
    study: &Study,
    ds: &LoadedDataset,
    sample: &Sample,
    g: &Group,
    vlm: &methods::VlmMethod,
    run_id: i64,
    spend: &Spending,
) -> Made {
    use mica_vlm::AnswerValue;
    let mut out = Vec::new();
    let image = if ds.has_images {
        sample.load_image().map_err(|e| e.to_string())
    } else {
        Err("this dataset has no images (answers only)".to_string())
    };
    for &(task, ti) in &g.tasks {
        let key = PredictionKey::new(&ds.name, &sample.id, task.as_str(), &g.method);
        let spec = &study.file.tasks[ti];
        let img = match &image {
            Ok(i) => i,
            Err(e) => {
                out.push((Prediction::failed(key, run_id, e.clone()), Vec::new()));
                continue;
            }
        };
        if spend
            .halted
            .lock()
            .map(|h| h.contains_key(&g.method))
            .unwrap_or(false)
        {
            spend.not_made_halted.fetch_add(1, Ordering::SeqCst);
            continue;
        }
        let t0 = Instant::now();
        let (tp, req) = match vlm_request(spec, task, &vlm.prompt, img, &sample.id) {
            Ok(x) => x,
            Err(e) => {
                out.push((Prediction::failed(key, run_id, e), Vec::new()));
                continue;
            }
        };
        // The study-wide cost limit: an uncached call reserves its worst case first.
        let cached = match vlm.engine.is_cached(&req) {
            Ok(c) => c,
            Err(e) => {
                out.push((Prediction::failed(key, run_id, e.to_string()), Vec::new()));
                continue;
            }
        };
        let reserve = if cached || spend.budget.limit_usd().is_none() {
            0.0
        } else {
            vlm.engine.estimate_max_cost_usd(&req).unwrap_or(0.0)
        };
        if !cached
            && spend.budget.limit_usd().is_some()
            && (spend.stopped.load(Ordering::SeqCst) || spend.budget.reserve(reserve).is_err())
        {
            spend.stopped.store(true, Ordering::SeqCst);
            spend.not_made.fetch_add(1, Ordering::SeqCst);
            continue;
        }
        // A batch method takes its batch's answer (or the line's failure); one its batches did
        // not answer is not sent on its own, at the full price.
        let from_batch = match vlm.batch_poll {
            Some(_) => vlm
                .batch_answers
                .lock()
                .ok()
                .and_then(|mut a| a.remove(&vlm.engine.key_of(&req))),
            None => None,
        };
        let answered = match from_batch {
            Some(result) => mica_vlm::Answered {
                result,
                possibly_billed_usd: 0.0,
            },
            None if vlm.batch_poll.is_some() && !cached => {
                spend.budget.settle(reserve, 0.0);
                if spend.stopped.load(Ordering::SeqCst) {
                    spend.not_made.fetch_add(1, Ordering::SeqCst);
                } else {
                    out.push((
                        Prediction::failed(
                            key,
                            run_id,
                            "no batch answered this request (see the run's batches); rerun to send it in a new batch".to_string(),
                        ),
                        Vec::new(),
                    ));
                }
                continue;
            }
            // Timed-out attempts may have been billed: the study's budget charges them too.
            None => vlm.engine.answer_spend(&req),
        };
        let possibly_billed = answered.possibly_billed_usd;
        let outcome = match answered.result {
            Ok(o) => o,
            Err(e) if !e.is_per_image() => {
                // Every later call would fail the same way (a rejected key, an unknown model):
                // stop the method, store nothing for it, so a rerun tries again once it is fixed.
                spend.budget.settle(reserve, possibly_billed);
                if let Ok(mut h) = spend.halted.lock() {
                    h.entry(g.method.clone()).or_insert_with(|| e.to_string());
                }
                spend.not_made_halted.fetch_add(1, Ordering::SeqCst);
                continue;
            }
            Err(e) => {
                spend.budget.settle(reserve, possibly_billed);
                out.push((Prediction::failed(key, run_id, e.to_string()), Vec::new()));
                continue;
            }
        };
        // Without reported tokens the reservation is charged: the limit stays safe.
        let charged = if outcome.cached {
            0.0
        } else {
            outcome.cost_usd.unwrap_or(reserve)
        };
        spend.budget.settle(reserve, charged + possibly_billed);
        let answer = tp.interpret(&outcome.response);
        let mut p = Prediction::ok(key, run_id);
        p.elapsed_ms = Some(t0.elapsed().as_secs_f64() * 1e3);
        p.raw_answer = Some(answer.raw.clone());
        p.failure = answer.failure.clone();
        p.tokens_in = outcome.response.usage.input_tokens.map(|v| v as i64);
        p.tokens_out = outcome.response.usage.output_tokens.map(|v| v as i64);
        p.cost_usd = outcome.cost_usd;
        match answer.value {
            Some(AnswerValue::Count(n)) => p.value_num = Some(n as f64),
            Some(AnswerValue::Class { id, name, .. }) => {
                p.value_num = Some(id as f64);
                p.value_text = Some(name);
            }
            Some(AnswerValue::SizeUm(v)) => p.value_num = Some(v),
            Some(AnswerValue::Text(t)) => p.value_text = Some(t),
            None => {}
        }
        out.push((p, Vec::new()));
    }
    out
}

/// A class answer: a number 1..=N names `classes[n-1]`; otherwise the class name is looked for
/// in the text with the metrics crate's parser (NFFA aliases when the classes are NFFA's).
fn parse_class_answer(raw: &str, classes: &[String]) -> Result<String, String> {
    if classes.is_empty() {
        let t = raw.trim();
        return if t.is_empty() {
            Err("empty answer".into())
        } else {
            Ok(t.to_string())
        };
    }
    if let Ok(n) = raw.trim().parse::<usize>() {
        return if (1..=classes.len()).contains(&n) {
            Ok(classes[n - 1].clone())
        } else {
            Err(format!("class number {n} is not in 1..={}", classes.len()))
        };
    }
    let labels = vlm_labels(classes);
    mica_metrics::parse::parse_class(raw, &labels)
        .map(|i| labels[i].name.clone())
        .map_err(|e| e.reason)
}

/// What segmenting a sample needs from the run: where masks go, and the memory budget.
#[derive(Clone, Copy)]
struct SegmentEnv<'a> {
    masks_dir: &'a Path,
    store_dir: &'a Path,
    budget: &'a mica_core::memory::MemoryBudget,
}

fn segmenter_predictions(
    ds: &LoadedDataset,
    sample: &Sample,
    g: &Group,
    seg: &dyn mica_core::Segmenter,
    run_id: i64,
    env: &SegmentEnv,
) -> Made {
    let SegmentEnv {
        masks_dir,
        store_dir,
        budget,
    } = *env;
    let keys: Vec<(TaskKind, PredictionKey)> = g
        .tasks
        .iter()
        .map(|&(t, _)| {
            (
                t,
                PredictionKey::new(&ds.name, &sample.id, t.as_str(), &g.method),
            )
        })
        .collect();
    let fail_all = |reason: String| -> Made {
        keys.iter()
            .map(|(_, k)| (Prediction::failed(k.clone(), run_id, &reason), Vec::new()))
            .collect()
    };
    if !ds.has_images {
        return fail_all("this dataset has no images (answers only)".into());
    }
    let t0 = Instant::now();
    // The memory this image will need, from its header, reserved before it is decoded: an
    // image too large for the budget fails alone, with the reason.
    let info = match mica_core::io::image_info(&sample.path) {
        Ok(i) => i,
        Err(e) => return fail_all(e.to_string()),
    };
    let _reserved = match budget.reserve(seg.memory_needed(&info)) {
        Ok(r) => r,
        Err(why) => {
            return fail_all(format!(
                "{}: a {}x{} image: {why}",
                sample.path.display(),
                info.width,
                info.height
            ))
        }
    };
    let image = match sample.load_image() {
        Ok(i) => i,
        Err(e) => return fail_all(e.to_string()),
    };
    // The file's own pixels are passed with its path (methods that read prompts by image path
    // use it); a cropped region is not the file, so it goes without. A panic inside the method
    // fails this image's predictions, not the run.
    let segmented = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match sample.crop {
        None => seg.segment_file(&sample.path, &image),
        Some(_) => seg.segment(&image),
    }))
    .unwrap_or_else(|panic| {
        Err(mica_core::MethodError::from(format!(
            "internal error: {}",
            mica_core::panic_message(panic.as_ref())
        )))
    });
    let result: Segmentation = match segmented {
        Ok(s) => s,
        Err(e) => return fail_all(format!("{}: {e}", sample.path.display())),
    };
    let elapsed_ms = t0.elapsed().as_secs_f64() * 1e3;
    let mut out = Vec::new();
    for (task, key) in keys {
        let mut p = Prediction::ok(key, run_id);
        p.elapsed_ms = Some(elapsed_ms);
        let mut metrics = Vec::new();
        match task {
            TaskKind::Count => {
                p.value_num = Some(result.count as f64);
                p.raw_answer = Some(result.count.to_string());
                for (name, n) in &result.extra_counts {
                    metrics.push((format!("count:{name}"), *n as f64));
                }
            }
            TaskKind::Segment => {
                let rel = mask_rel_path(&g.method, &ds.name, &sample.id);
                let path = masks_dir.join(&rel);
                match write_mask(&path, &result) {
                    Ok(sha) => {
                        let shown = path
                            .strip_prefix(store_dir)
                            .map(Path::to_path_buf)
                            .unwrap_or(path.clone());
                        p.mask = Some(MaskFile {
                            path: shown.display().to_string(),
                            sha256: sha,
                        });
                    }
                    Err(e) => {
                        p = Prediction::failed(p.key, run_id, e);
                        out.push((p, metrics));
                        continue;
                    }
                }
                p.value_num = Some(result.foreground.area() as f64);
                match &sample.truth.mask {
                    Some(m) => match score_against_truth(m, ds.instance_truth, &result) {
                        Ok(ms) => metrics.extend(ms),
                        Err(e) => p.failure = Some(e),
                    },
                    None => p.failure = Some("no truth mask for this image".into()),
                }
            }
            TaskKind::Classify | TaskKind::Vqa | TaskKind::Size => {
                p = Prediction::failed(p.key, run_id, "a segmenter cannot do this task");
            }
        }
        out.push((p, metrics));
    }
    out
}

/// Where a sample's predicted mask goes under a store's masks folder:
/// `<method>/<dataset>/<the sample's folders>/<stem>_labels.tif`, the one naming rule, so `mica
/// eval segment --pred` pairs these files with the truth by stem. No part can lead out of the
/// folder: `..` becomes `up`, `.` and empty parts (of an absolute or `./` path) are dropped.
pub fn mask_rel_path(method: &str, dataset: &str, sample_id: &str) -> PathBuf {
    let mut rel = PathBuf::from(slug(method)).join(slug(dataset));
    let mut parts: Vec<&str> = sample_id.split('/').collect();
    let last = parts.pop().unwrap_or_default();
    for d in parts {
        match d {
            "" | "." => {}
            ".." => rel.push("up"),
            d => rel.push(slug(d)),
        }
    }
    rel.push(mica_core::naming::labels_file_name(&slug(last)));
    rel
}

/// A file-name-safe form of a name (never `.` or `..`).
pub fn slug(s: &str) -> String {
    let out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.chars().all(|c| c == '.') {
        "_".repeat(out.len().max(1))
    } else {
        out
    }
}

fn write_mask(path: &Path, seg: &Segmentation) -> Result<String, String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    mica_core::io::write_label_tiff(path, &seg.labels).map_err(|e| e.to_string())?;
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(mica_store::sha256_hex(&bytes))
}

/// The per-image scores a study stores for a segmentation, computed by the measurement layer
/// ([`mica_metrics::measure::score_segmentation`]): foreground overlap against the truth's
/// foreground (any non-zero pixel), and for instance-label truth the instance scores too (binary
/// truth has no objects to match, so none are stored for it).
fn score_against_truth(
    truth_path: &Path,
    instance_truth: bool,
    result: &Segmentation,
) -> Result<Vec<(String, f64)>, String> {
    use mica_metrics::measure::{score_segmentation, TruthKind};
    let img = mica_core::io::read_image(truth_path).map_err(|e| format!("truth mask: {e}"))?;
    let (truth, kind) = if instance_truth {
        let l = mica_core::LabelImage::from_image(&img)
            .map_err(|e| format!("truth instance labels {}: {e}", truth_path.display()))?;
        (l, TruthKind::InstanceLabels)
    } else {
        let fg = BinaryMask::from_image_above(&img.to_gray(), 0.0);
        (
            fg.connected_components(mica_core::Connectivity::Eight),
            TruthKind::BinaryMask,
        )
    };
    let s = score_segmentation(&truth, kind, &result.labels, &result.foreground)
        .map_err(|e| format!("{}: {e}", truth_path.display()))?;
    Ok(s.image_metrics(instance_truth)
        .into_iter()
        .map(|(m, v)| (m.key().to_string(), v))
        .collect())
}

/// Estimated cost of the model calls of one method in a plan.
#[derive(Debug, Default, Clone)]
struct CostEstimate {
    /// Calls that would be sent (answer not in the response cache).
    uncached_calls: usize,
    /// Answers already in the response cache (free).
    cached_calls: usize,
    /// Worst-case cost of the uncached calls, USD (estimated input tokens + the output limit).
    worst_usd: f64,
    /// Requests that could not be prepared (unreadable image, ...), with the first reason.
    unpreparable: usize,
    first_problem: Option<String>,
}

/// Prices every model call of `groups`: builds each request as the run would (the image as sent,
/// the prompt), asks the response cache whether it is already answered, and adds the worst-case
/// cost of the others. `engine` is `None` for a model that is not configured here (no key, no
/// server): its calls are priced from the price table and counted as uncached.
fn estimate_cost(
    study: &Study,
    datasets: &[LoadedDataset],
    groups: &[&Group],
    prompt_variant: &str,
    engine: Option<&mica_vlm::Engine>,
    spec: &mica_vlm::ModelSpec,
    price: Option<&mica_vlm::ModelPrice>,
) -> CostEstimate {
    let per: Vec<CostEstimate> = groups
        .par_iter()
        .map(|g| {
            let mut e = CostEstimate::default();
            let ds = &datasets[g.dataset];
            let sample = &ds.samples[g.sample];
            let img = if ds.has_images {
                sample.load_image().map_err(|e| e.to_string())
            } else {
                Err("this dataset has no images".to_string())
            };
            for &(task, ti) in &g.tasks {
                let req = img.as_ref().map_err(Clone::clone).and_then(|img| {
                    vlm_request(&study.file.tasks[ti], task, prompt_variant, img, &sample.id)
                });
                let req = match req {
                    Ok((_, r)) => r,
                    Err(why) => {
                        e.unpreparable += 1;
                        e.first_problem
                            .get_or_insert_with(|| format!("{}: {why}", sample.id));
                        continue;
                    }
                };
                if engine.is_some_and(|en| en.is_cached(&req).unwrap_or(false)) {
                    e.cached_calls += 1;
                    continue;
                }
                e.uncached_calls += 1;
                if let Some(p) = price {
                    let u = mica_vlm::prices::estimate_tokens(spec, &req);
                    e.worst_usd +=
                        p.cost_usd(u.input_tokens.unwrap_or(0), u.output_tokens.unwrap_or(0));
                }
            }
            e
        })
        .collect();
    per.into_iter().fold(CostEstimate::default(), |mut a, b| {
        a.uncached_calls += b.uncached_calls;
        a.cached_calls += b.cached_calls;
        a.worst_usd += b.worst_usd;
        a.unpreparable += b.unpreparable;
        if a.first_problem.is_none() {
            a.first_problem = b.first_problem;
        }
        a
    })
}

fn describe_plan(
    study: &Study,
    datasets: &[LoadedDataset],
    groups: &[Group],
    unconfigured: &[Group],
    runtimes: &BTreeMap<String, Runtime>,
    summary: &RunSummary,
) -> Vec<String> {
    let mut out = Vec::new();
    out.push(format!(
        "study {:?} (data root {})",
        study.file.name,
        study.data_root.display()
    ));
    for d in datasets {
        out.push(format!(
            "  dataset {:?}: {} samples",
            d.name,
            d.samples.len()
        ));
    }
    let mut per: BTreeMap<(String, &str), usize> = BTreeMap::new();
    for g in groups {
        for (t, _) in &g.tasks {
            *per.entry((g.method.clone(), t.as_str())).or_default() += 1;
        }
    }
    out.push(format!(
        "predictions: {} planned, {} already stored, {} to make",
        summary.planned,
        summary.already_done,
        summary.planned - summary.already_done
    ));
    for ((m, t), n) in &per {
        let kind = study
            .file
            .methods
            .iter()
            .find(|s| s.name() == m)
            .map(MethodSpec::kind)
            .unwrap_or("?");
        let cost = match runtimes.get(m) {
            Some(Runtime::Imported(_)) => "no cost (imported answers)",
            Some(Runtime::Segmenter(_)) => "no cost (local)",
            Some(Runtime::Vlm(_)) => "model calls (priced below)",
            _ => "cost unknown",
        };
        out.push(format!("  {m} ({kind}) {t}: {n} to make, {cost}"));
    }
    for (m, why) in &summary.skipped_methods {
        out.push(format!("  skipped {m}: {why}"));
    }

    // Cost of the model calls, per method: configured models (cache consulted) and models that
    // would run once configured.
    let mut lines: Vec<String> = Vec::new();
    let mut total = 0.0;
    let mut total_calls = 0usize;
    let mut total_unconfigured = 0.0;
    let mut unpriced: Vec<String> = Vec::new();
    for spec in &study.file.methods {
        let MethodSpec::Vlm {
            name,
            model,
            prompt,
            ..
        } = spec
        else {
            continue;
        };
        let (gs, engine, configured): (Vec<&Group>, Option<&mica_vlm::Engine>, bool) =
            match runtimes.get(name) {
                Some(Runtime::Vlm(v)) => (
                    groups.iter().filter(|g| &g.method == name).collect(),
                    Some(&v.engine),
                    true,
                ),
                Some(Runtime::Skipped(_)) => (
                    unconfigured.iter().filter(|g| &g.method == name).collect(),
                    None,
                    false,
                ),
                _ => continue,
            };
        let Ok(mspec) = mica_vlm::ModelSpec::parse(model) else {
            continue;
        };
        let prices = mica_vlm::PriceTable::builtin().ok();
        let mut price = prices.as_ref().and_then(|p| p.lookup(&mspec)).cloned();
        // A batch method is priced at the provider's batch rates (none: unpriced).
        let batch = matches!(
            spec,
            MethodSpec::Vlm {
                batch: Some(true),
                ..
            }
        );
        if batch {
            price = price.and_then(|p| {
                Some(mica_vlm::ModelPrice {
                    input_usd_per_mtok: p.batch_input_usd_per_mtok?,
                    output_usd_per_mtok: p.batch_output_usd_per_mtok?,
                    ..p
                })
            });
        }
        let e = estimate_cost(study, datasets, &gs, prompt, engine, &mspec, price.as_ref());
        let note = match (configured, batch) {
            (true, false) => "",
            (true, true) => " (Batch API, batch prices)",
            (false, false) => " (not configured here: would run with a key or server)",
            (false, true) => {
                " (Batch API, batch prices; not configured here: would run with a key or server)"
            }
        };
        let cost = match &price {
            Some(_) => {
                if configured {
                    total += e.worst_usd;
                    total_calls += e.uncached_calls;
                } else {
                    total_unconfigured += e.worst_usd;
                }
                format!("${:.4} at most", e.worst_usd)
            }
            None => {
                unpriced.push(name.clone());
                "no price in the table (local server or unknown model)".to_string()
            }
        };
        let mut line = format!(
            "  {name} ({model}){note}: {} calls to send, {} answers in the response cache (free): {cost}",
            e.uncached_calls, e.cached_calls
        );
        if e.unpreparable > 0 {
            line.push_str(&format!(
                "; {} requests cannot be prepared (first: {})",
                e.unpreparable,
                e.first_problem.unwrap_or_default()
            ));
        }
        lines.push(line);
    }
    if lines.is_empty() {
        out.push("estimated cost: $0.00 (no method in this plan calls a model API)".to_string());
        return out;
    }
    out.push(format!(
        "estimated cost of the model calls (worst case: estimated input tokens + {} output tokens per call, prices of mica-vlm's price table):",
        mica_vlm::prices::ASSUMED_MAX_OUTPUT_TOKENS
    ));
    for l in lines {
        out.push(l.to_string());
    }
    out.push(format!(
        "estimated cost: ${total:.4} at most in total for {total_calls} calls of the configured models{}",
        if unpriced.is_empty() {
            String::new()
        } else {
            format!(" (not counted: {}, no price)", unpriced.join(", "))
        }
    ));
    if total_unconfigured > 0.0 {
        out.push(format!(
            "  and ${total_unconfigured:.4} at most more for the models not configured here"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imported_size_answers_in_micrometres() {
        let p = |raw: &str| mica_metrics::parse::parse_size_um(raw).ok();
        assert_eq!(p("0.016"), Some(0.016));
        assert_eq!(p("0.0001"), Some(0.0001));
        assert_eq!(p("8.5"), Some(8.5));
        assert_eq!(p(""), None);
        assert_eq!(p("NaN"), None);
    }

    #[test]
    fn shards_partition_samples() {
        let ids: Vec<String> = (0..200).map(|i| format!("img{i}")).collect();
        for id in &ids {
            let hits = (0..3).filter(|&i| in_shard("d", id, Some((i, 3)))).count();
            assert_eq!(hits, 1, "{id}");
        }
        let in0 = ids
            .iter()
            .filter(|id| in_shard("d", id, Some((0, 3))))
            .count();
        assert!((40..=100).contains(&in0), "{in0}");
    }

    #[test]
    fn class_answers_by_number_and_name() {
        let classes: Vec<String> = mica_core::dataset::nffa::CLASSES
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(parse_class_answer("6", &classes).unwrap(), "Particles");
        assert_eq!(
            parse_class_answer("These are fibers", &classes).unwrap(),
            "Fibres"
        );
        assert!(parse_class_answer("11", &classes).is_err());
        assert!(parse_class_answer("", &classes).is_err());
    }

    #[test]
    fn mask_paths_stay_inside_the_masks_folder() {
        use std::path::Component;
        for (m, d, id) in [
            ("classical", "b", "SIMCEPImages_A05_C18_F1_s01_w1.TIF"),
            ("..", "..", "../../../etc/x.tif"),
            ("m", "d", "/abs/path/a.tif"),
            ("m", "d", "./plate1/a.tif"),
        ] {
            let p = mask_rel_path(m, d, id);
            assert!(
                p.components().all(|c| matches!(c, Component::Normal(_))),
                "{p:?}"
            );
            assert!(p.to_string_lossy().ends_with("_labels.tif"), "{p:?}");
        }
        assert_eq!(
            mask_rel_path("classical", "b", "plate1/a.tif"),
            PathBuf::from("classical/b/plate1/a_labels.tif")
        );
    }

    #[test]
    fn stored_scores_of_binary_and_instance_truth() {
        let dir = tempfile::tempdir().unwrap();
        let truth = dir.path().join("t.tif");
        let l = mica_core::LabelImage::new(4, 1, vec![1, 2, 0, 0]).unwrap();
        mica_core::io::write_label_tiff(&truth, &l).unwrap();
        let pred =
            Segmentation::from_labels(mica_core::LabelImage::new(4, 1, vec![0, 1, 1, 0]).unwrap());
        let m = score_against_truth(&truth, false, &pred).unwrap();
        let dice = mica_metrics::measure::Metric::Dice.key();
        assert_eq!(m[0], (dice.to_string(), 0.5));
        assert!((m[1].1 - 1.0 / 3.0).abs() < 1e-12);
        assert!(m.iter().all(|(k, _)| !k.starts_with("f1_")), "{m:?}");
        let m = score_against_truth(&truth, true, &pred).unwrap();
        let n_true = mica_metrics::measure::Metric::InstancesTrue.key();
        assert!(m.contains(&(n_true.to_string(), 2.0)), "{m:?}");
    }
}
