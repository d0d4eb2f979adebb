//! # mica-store
//!
//! The results store of a study: one SQLite file in WAL mode holding
//!
//! - **runs**: one row per `mica run` invocation (study name and hash, mica version, settings, shard);
//! - **samples**: every image a study touched, with its truth (count, class, mask path) and metadata;
//! - **methods**: every method of the study, with its settings, and why it was skipped if it was;
//! - **predictions**: one row per (dataset, sample, task, method) with the raw answer, the parsed value,
//!   the failure reason, timings, tokens and cost, and the predicted mask file by path and sha256;
//! - **image_metrics**: per-image metrics of a prediction (Dice, Jaccard, ...), written in the same
//!   transaction as the prediction;
//! - **events**: what a run did that a reader of the results must know (predictions dropped
//!   because the settings that made them changed), shown by the report.
//!
//! Every prediction records the hash of the effective settings that made it (`settings_hash`), so a
//! rerun with other settings can tell its stale predictions apart ([`Store::done_settings`],
//! [`Store::delete_predictions`]).
//!
//! Answers of paid model calls are cached by `mica-vlm`'s response cache (a file next to the store),
//! so nothing is paid for twice.
//!
//! Every prediction is committed as soon as it is made ([`Store::insert_prediction`]), so a run killed at
//! any moment (even `kill -9`) loses at most the prediction in flight; a rerun asks
//! [`Store::done_keys`] and skips what is done. The unique key on predictions makes duplicates impossible.
//!
//! ```
//! use mica_store::{Prediction, PredictionKey, Store};
//! let dir = tempfile::tempdir().unwrap();
//! let store = Store::open(&dir.path().join("results.sqlite")).unwrap();
//! let key = PredictionKey::new("bbbc005", "img1", "count", "classical");
//! let mut p = Prediction::ok(key.clone(), 1);
//! p.value_num = Some(12.0);
//! assert!(store.insert_prediction(&p, &[]).unwrap());
//! assert!(!store.insert_prediction(&p, &[]).unwrap()); // already there: not inserted twice
//! assert!(store.done_keys().unwrap().contains(&key));
//! ```

pub mod lock;
pub mod sheet;

pub use lock::{LockError, RunLock};

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The schema version this build writes and reads. Version 1 (before settings hashes) is upgraded
/// in place when opened for writing: its predictions get an empty settings hash, which matches no
/// method's settings, so the next run redoes them and says so.
pub const SCHEMA_VERSION: i64 = 2;

/// Result alias of the store.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, with the store file concerned.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// SQLite failed on this file.
    #[error("{path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    /// The file is a store of another schema version.
    #[error("{path}: results store has schema version {found}, this mica reads version {SCHEMA_VERSION}{}", if *found < SCHEMA_VERSION { " (an older store: `mica run STUDY --store FILE` upgrades it and redoes the predictions whose settings it did not record)" } else { " (made by a newer mica)" })]
    SchemaVersion { path: PathBuf, found: i64 },
    /// The file is not a mica results store.
    #[error("{path}: not a mica results store ({reason})")]
    NotAStore { path: PathBuf, reason: String },
    /// A stored JSON field could not be decoded.
    #[error("{path}: corrupt {what}: {reason}")]
    Corrupt {
        path: PathBuf,
        what: String,
        reason: String,
    },
}

/// Identifies one prediction: which method did which task on which sample of which dataset.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PredictionKey {
    pub dataset: String,
    pub sample_id: String,
    pub task: String,
    pub method: String,
}

impl PredictionKey {
    pub fn new(
        dataset: impl Into<String>,
        sample_id: impl Into<String>,
        task: impl Into<String>,
        method: impl Into<String>,
    ) -> Self {
        PredictionKey {
            dataset: dataset.into(),
            sample_id: sample_id.into(),
            task: task.into(),
            method: method.into(),
        }
    }
}

/// Whether a prediction produced a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The method answered (the value may still be missing when the answer could not be parsed:
    /// then `failure` says why).
    Ok,
    /// The method failed on this sample (error, unreadable image, refused call); `failure` says why.
    Failed,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Failed => "failed",
        }
    }
    fn parse(s: &str) -> Option<Status> {
        match s {
            "ok" => Some(Status::Ok),
            "failed" => Some(Status::Failed),
            _ => None,
        }
    }
}

/// A mask file written by a method, by path (relative to the store's directory when possible) and
/// the sha256 of its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaskFile {
    pub path: String,
    pub sha256: String,
}

/// One prediction of one method for one sample and task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    pub key: PredictionKey,
    /// The run that made it.
    pub run_id: i64,
    pub status: Status,
    /// The answer as the method gave it (model text, CSV cell), unparsed.
    pub raw_answer: Option<String>,
    /// The parsed numeric value (a count, a class number).
    pub value_num: Option<f64>,
    /// The parsed text value (a class name, a VQA answer).
    pub value_text: Option<String>,
    /// Why there is no value (parse failure, method error).
    pub failure: Option<String>,
    /// Wall time of the prediction.
    pub elapsed_ms: Option<f64>,
    pub tokens_in: Option<i64>,
    pub tokens_out: Option<i64>,
    /// Estimated cost in US dollars.
    pub cost_usd: Option<f64>,
    pub mask: Option<MaskFile>,
    /// Unix time (seconds) when it was stored.
    pub created_unix_s: i64,
    /// sha256 (hex) of the effective settings of the method and task that made it; empty when
    /// unknown (a store of schema version 1).
    pub settings_hash: String,
}

impl Prediction {
    /// A successful prediction with no value yet; fill in the fields that apply.
    pub fn ok(key: PredictionKey, run_id: i64) -> Self {
        Prediction {
            key,
            run_id,
            status: Status::Ok,
            raw_answer: None,
            value_num: None,
            value_text: None,
            failure: None,
            elapsed_ms: None,
            tokens_in: None,
            tokens_out: None,
            cost_usd: None,
            mask: None,
            created_unix_s: now_unix_s(),
            settings_hash: String::new(),
        }
    }

    /// The same prediction, recording the hash of the settings that made it.
    pub fn with_settings(mut self, settings_hash: impl Into<String>) -> Self {
        self.settings_hash = settings_hash.into();
        self
    }

    /// A failed prediction with its reason.
    pub fn failed(key: PredictionKey, run_id: i64, reason: impl Into<String>) -> Self {
        let mut p = Prediction::ok(key, run_id);
        p.status = Status::Failed;
        p.failure = Some(reason.into());
        p
    }
}

/// One sample a study touched, with its truth.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleRecord {
    pub dataset: String,
    pub sample_id: String,
    /// The image path as the study resolved it (may not exist for answer-only datasets).
    pub path: String,
    pub truth_count: Option<f64>,
    pub truth_class: Option<String>,
    pub truth_mask: Option<String>,
    /// Free metadata (stain, blur, site, class folder, ...).
    pub meta: BTreeMap<String, String>,
}

/// A method of the study, as configured, and whether it ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MethodRecord {
    pub name: String,
    /// `imported`, `classical`, `sam`, `vlm`.
    pub kind: String,
    /// The method's settings as JSON (model, prompt, preset, CSV path, ...). Never a secret.
    pub settings_json: String,
    /// Why the method did not run (no weights, no key), or `None` when it ran.
    pub skipped_reason: Option<String>,
    /// sha256 (hex) of the method's effective settings as of the last run (weights hash,
    /// resolved preset, prompt templates, answer files' contents, ...); empty when unknown.
    pub settings_hash: String,
    /// Those effective settings as JSON (what the hash is of).
    pub effective_json: String,
}

/// Something a run did that a reader of the results must know.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    pub run_id: i64,
    pub unix_s: i64,
    /// The method concerned, if any.
    pub method: Option<String>,
    pub message: String,
}

/// One invocation of a study.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: i64,
    pub study_name: String,
    /// sha256 of the study file's bytes.
    pub study_hash: String,
    pub mica_version: String,
    /// Settings of the run (data root, shard, flags) as JSON.
    pub settings_json: String,
    pub started_unix_s: i64,
    pub finished_unix_s: Option<i64>,
}

/// A per-image metric of a prediction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageMetric {
    pub key: PredictionKey,
    pub name: String,
    pub value: f64,
}

/// What [`Store::merge_from`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MergeSummary {
    pub runs: usize,
    pub samples: usize,
    pub predictions_added: usize,
    /// Predictions already present with the same value.
    pub predictions_same: usize,
    /// Predictions present in both stores with different values; the existing one is kept.
    pub conflicts: Vec<PredictionKey>,
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn now_unix_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// sha256 of `bytes` as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    study_name TEXT NOT NULL,
    study_hash TEXT NOT NULL,
    mica_version TEXT NOT NULL,
    settings_json TEXT NOT NULL,
    started_unix_s INTEGER NOT NULL,
    finished_unix_s INTEGER
);
CREATE TABLE IF NOT EXISTS samples (
    dataset TEXT NOT NULL,
    sample_id TEXT NOT NULL,
    path TEXT NOT NULL,
    truth_count REAL,
    truth_class TEXT,
    truth_mask TEXT,
    meta_json TEXT NOT NULL,
    PRIMARY KEY (dataset, sample_id)
);
CREATE TABLE IF NOT EXISTS methods (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    settings_json TEXT NOT NULL,
    skipped_reason TEXT,
    settings_hash TEXT NOT NULL DEFAULT '',
    effective_json TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS predictions (
    dataset TEXT NOT NULL,
    sample_id TEXT NOT NULL,
    task TEXT NOT NULL,
    method TEXT NOT NULL,
    run_id INTEGER NOT NULL,
    status TEXT NOT NULL,
    raw_answer TEXT,
    value_num REAL,
    value_text TEXT,
    failure TEXT,
    elapsed_ms REAL,
    tokens_in INTEGER,
    tokens_out INTEGER,
    cost_usd REAL,
    mask_path TEXT,
    mask_sha256 TEXT,
    created_unix_s INTEGER NOT NULL,
    settings_hash TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (dataset, sample_id, task, method)
);
CREATE TABLE IF NOT EXISTS image_metrics (
    dataset TEXT NOT NULL,
    sample_id TEXT NOT NULL,
    task TEXT NOT NULL,
    method TEXT NOT NULL,
    name TEXT NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (dataset, sample_id, task, method, name)
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL,
    unix_s INTEGER NOT NULL,
    method TEXT,
    message TEXT NOT NULL
);
"#;

/// Upgrades a schema-1 store to schema 2 (settings hashes, events).
const UPGRADE_1_TO_2: &str = r#"
ALTER TABLE methods ADD COLUMN settings_hash TEXT NOT NULL DEFAULT '';
ALTER TABLE methods ADD COLUMN effective_json TEXT NOT NULL DEFAULT '';
ALTER TABLE predictions ADD COLUMN settings_hash TEXT NOT NULL DEFAULT '';
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL,
    unix_s INTEGER NOT NULL,
    method TEXT,
    message TEXT NOT NULL
);
UPDATE meta SET value = '2' WHERE key = 'schema_version';
"#;

/// The batches sent through a provider's Batch API (added in place to any schema-2 store:
/// older mica versions ignore the table). `state`: `submitting` (written before the batch is
/// created: a run killed then looks the batch up by its tag), `submitted`, or the final status
/// (`completed`, `expired`, `cancelled`, `failed`, `not created`).
const BATCHES: &str = r#"
CREATE TABLE IF NOT EXISTS batches (
    tag TEXT PRIMARY KEY,
    method TEXT NOT NULL,
    run_id INTEGER NOT NULL,
    requests INTEGER NOT NULL,
    state TEXT NOT NULL,
    batch_id TEXT,
    input_file_id TEXT,
    detail TEXT,
    created_unix_s INTEGER NOT NULL,
    ended_unix_s INTEGER
);
"#;

/// One batch of a method ([`Store::batches`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchRecord {
    pub tag: String,
    pub method: String,
    pub run_id: i64,
    pub requests: i64,
    pub state: String,
    pub batch_id: Option<String>,
    pub input_file_id: Option<String>,
    pub detail: Option<String>,
    pub created_unix_s: i64,
    pub ended_unix_s: Option<i64>,
}

/// An open results store.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    /// Opens the store at `path`, creating it (and its schema) if it does not exist. WAL mode with
    /// `synchronous = NORMAL`: a committed prediction survives the process being killed.
    ///
    /// # Errors
    /// [`Error::Sqlite`] when the file cannot be opened or written, [`Error::SchemaVersion`] for a
    /// store of another version, [`Error::NotAStore`] for another SQLite database.
    pub fn open(path: &Path) -> Result<Store> {
        let conn = Connection::open(path).map_err(|e| sql_err(path, e))?;
        let store = Store {
            conn,
            path: path.to_path_buf(),
        };
        store.init(true)?;
        Ok(store)
    }

    /// Opens an existing store without writing to it.
    ///
    /// # Errors
    /// As [`Store::open`]; also when the file does not exist.
    pub fn open_read_only(path: &Path) -> Result<Store> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| sql_err(path, e))?;
        let store = Store {
            conn,
            path: path.to_path_buf(),
        };
        store.init(false)?;
        Ok(store)
    }

    /// The file of this store.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn e(&self) -> impl Fn(rusqlite::Error) -> Error + '_ {
        move |e| sql_err(&self.path, e)
    }

    fn init(&self, write: bool) -> Result<()> {
        let c = &self.conn;
        c.busy_timeout(Duration::from_secs(30)).map_err(self.e())?;
        if write {
            c.pragma_update(None, "journal_mode", "WAL")
                .map_err(self.e())?;
            c.pragma_update(None, "synchronous", "NORMAL")
                .map_err(self.e())?;
            // Is this an empty database or a store? Another schema is refused, never altered.
            let tables: Vec<String> = {
                let mut st = c
                    .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
                    .map_err(|e| self.not_a_store(e))?;
                let rows = st
                    .query_map([], |r| r.get::<_, String>(0))
                    .map_err(|e| self.not_a_store(e))?;
                rows.collect::<rusqlite::Result<_>>()
                    .map_err(|e| self.not_a_store(e))?
            };
            if tables.is_empty() {
                c.execute_batch(SCHEMA).map_err(self.e())?;
                c.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)",
                    params![SCHEMA_VERSION.to_string()],
                )
                .map_err(self.e())?;
            }
        }
        let read_version = || -> Result<Option<String>> {
            c.query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.not_a_store(e))
        };
        let mut version = read_version()?;
        if write && version.as_deref() == Some("1") {
            c.execute_batch(&format!("BEGIN IMMEDIATE;{UPGRADE_1_TO_2}COMMIT;"))
                .map_err(self.e())?;
            version = read_version()?;
        }
        match version.as_deref().map(str::parse::<i64>) {
            Some(Ok(SCHEMA_VERSION)) => {
                if write {
                    c.execute_batch(BATCHES).map_err(self.e())?;
                }
                Ok(())
            }
            Some(Ok(found)) => Err(Error::SchemaVersion {
                path: self.path.clone(),
                found,
            }),
            _ => Err(Error::NotAStore {
                path: self.path.clone(),
                reason: "no schema version".into(),
            }),
        }
    }

    fn not_a_store(&self, e: rusqlite::Error) -> Error {
        Error::NotAStore {
            path: self.path.clone(),
            reason: e.to_string(),
        }
    }

    /// Records the start of a run and returns its id.
    ///
    /// # Errors
    /// [`Error::Sqlite`] on a write failure.
    pub fn begin_run(
        &self,
        study_name: &str,
        study_hash: &str,
        mica_version: &str,
        settings_json: &str,
    ) -> Result<i64> {
        self.conn
            .execute(
                "INSERT INTO runs (study_name, study_hash, mica_version, settings_json, started_unix_s)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![study_name, study_hash, mica_version, settings_json, now_unix_s()],
            )
            .map_err(self.e())?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Marks a run finished.
    ///
    /// # Errors
    /// [`Error::Sqlite`] on a write failure.
    pub fn finish_run(&self, run_id: i64) -> Result<()> {
        self.conn
            .execute(
                "UPDATE runs SET finished_unix_s = ?1 WHERE id = ?2",
                params![now_unix_s(), run_id],
            )
            .map_err(self.e())?;
        Ok(())
    }

    /// Inserts or updates samples (truth may be refined by a later run), in one transaction.
    ///
    /// # Errors
    /// [`Error::Sqlite`] on a write failure.
    pub fn upsert_samples(&mut self, samples: &[SampleRecord]) -> Result<()> {
        let path = self.path.clone();
        let e = |e| sql_err(&path, e);
        let tx = self.conn.transaction().map_err(e)?;
        {
            let mut st = tx
                .prepare(
                    "INSERT INTO samples (dataset, sample_id, path, truth_count, truth_class, truth_mask, meta_json)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT (dataset, sample_id) DO UPDATE SET path = excluded.path,
                       truth_count = excluded.truth_count, truth_class = excluded.truth_class,
                       truth_mask = excluded.truth_mask, meta_json = excluded.meta_json",
                )
                .map_err(e)?;
            for s in samples {
                let meta = serde_json::to_string(&s.meta).unwrap_or_else(|_| "{}".into());
                st.execute(params![
                    s.dataset,
                    s.sample_id,
                    s.path,
                    s.truth_count,
                    s.truth_class,
                    s.truth_mask,
                    meta
                ])
                .map_err(e)?;
            }
        }
        tx.commit().map_err(e)
    }

    /// Inserts or updates a method's description.
    ///
    /// # Errors
    /// [`Error::Sqlite`] on a write failure.
    pub fn upsert_method(&self, m: &MethodRecord) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO methods (name, kind, settings_json, skipped_reason, settings_hash, effective_json)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (name) DO UPDATE SET kind = excluded.kind,
                   settings_json = excluded.settings_json, skipped_reason = excluded.skipped_reason,
                   settings_hash = excluded.settings_hash, effective_json = excluded.effective_json",
                params![
                    m.name,
                    m.kind,
                    m.settings_json,
                    m.skipped_reason,
                    m.settings_hash,
                    m.effective_json
                ],
            )
            .map_err(self.e())?;
        Ok(())
    }

    /// Stores a prediction and its per-image metrics in one transaction. Returns `false` (and
    /// changes nothing) when a prediction with the same key is already stored.
    ///
    /// # Errors
    /// [`Error::Sqlite`] on a write failure.
    pub fn insert_prediction(&self, p: &Prediction, metrics: &[(String, f64)]) -> Result<bool> {
        let tx = self.conn.unchecked_transaction().map_err(self.e())?;
        let k = &p.key;
        let n = tx
            .execute(
                "INSERT OR IGNORE INTO predictions (dataset, sample_id, task, method, run_id, status,
                   raw_answer, value_num, value_text, failure, elapsed_ms, tokens_in, tokens_out,
                   cost_usd, mask_path, mask_sha256, created_unix_s, settings_hash)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
                params![
                    k.dataset,
                    k.sample_id,
                    k.task,
                    k.method,
                    p.run_id,
                    p.status.as_str(),
                    p.raw_answer,
                    p.value_num,
                    p.value_text,
                    p.failure,
                    p.elapsed_ms,
                    p.tokens_in,
                    p.tokens_out,
                    p.cost_usd,
                    p.mask.as_ref().map(|m| &m.path),
                    p.mask.as_ref().map(|m| &m.sha256),
                    p.created_unix_s,
                    p.settings_hash,
                ],
            )
            .map_err(self.e())?;
        if n == 0 {
            return Ok(false);
        }
        for (name, value) in metrics {
            tx.execute(
                "INSERT OR REPLACE INTO image_metrics (dataset, sample_id, task, method, name, value)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![k.dataset, k.sample_id, k.task, k.method, name, value],
            )
            .map_err(self.e())?;
        }
        tx.commit().map_err(self.e())?;
        Ok(true)
    }

    /// Deletes failed predictions (and their metrics) so that a rerun tries them again; returns how
    /// many were deleted.
    ///
    /// # Errors
    /// [`Error::Sqlite`] on a write failure.
    pub fn delete_failed(&self) -> Result<usize> {
        let tx = self.conn.unchecked_transaction().map_err(self.e())?;
        tx.execute(
            "DELETE FROM image_metrics WHERE (dataset, sample_id, task, method) IN
               (SELECT dataset, sample_id, task, method FROM predictions WHERE status = 'failed')",
            [],
        )
        .map_err(self.e())?;
        let n = tx
            .execute("DELETE FROM predictions WHERE status = 'failed'", [])
            .map_err(self.e())?;
        tx.commit().map_err(self.e())?;
        Ok(n)
    }

    /// The keys of every stored prediction (done work).
    ///
    /// # Errors
    /// [`Error::Sqlite`] on a read failure.
    pub fn done_keys(&self) -> Result<HashSet<PredictionKey>> {
        Ok(self.done_settings()?.into_keys().collect())
    }

    /// The settings hash of every stored prediction, by key.
    ///
    /// # Errors
    /// [`Error::Sqlite`] on a read failure.
    pub fn done_settings(&self) -> Result<std::collections::HashMap<PredictionKey, String>> {
        let mut st = self
            .conn
            .prepare("SELECT dataset, sample_id, task, method, settings_hash FROM predictions")
            .map_err(self.e())?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    PredictionKey {
                        dataset: r.get(0)?,
                        sample_id: r.get(1)?,
                        task: r.get(2)?,
                        method: r.get(3)?,
                    },
                    r.get::<_, String>(4)?,
                ))
            })
            .map_err(self.e())?;
        rows.collect::<rusqlite::Result<_>>().map_err(self.e())
    }

    /// Deletes these predictions (and their metrics) in one transaction; returns how many were
    /// deleted.
    ///
    /// # Errors
    /// [`Error::Sqlite`] on a write failure.
    pub fn delete_predictions(&self, keys: &[PredictionKey]) -> Result<usize> {
        let tx = self.conn.unchecked_transaction().map_err(self.e())?;
        let mut n = 0;
        for k in keys {
            let args = params![k.dataset, k.sample_id, k.task, k.method];
            tx.execute(
                "DELETE FROM image_metrics
                 WHERE dataset = ?1 AND sample_id = ?2 AND task = ?3 AND method = ?4",
                args,
            )
            .map_err(self.e())?;
            n += tx
                .execute(
                    "DELETE FROM predictions
                     WHERE dataset = ?1 AND sample_id = ?2 AND task = ?3 AND method = ?4",
                    args,
                )
                .map_err(self.e())?;
        }
        tx.commit().map_err(self.e())?;
        Ok(n)
    }

    /// Writes down that a batch of `requests` requests of `method`, tagged `tag`, is about to
    /// be submitted (state `submitting`).
    ///
    /// # Errors
    /// [`Error::Sqlite`] on a write failure.
    pub fn batch_begin(&self, method: &str, run_id: i64, tag: &str, requests: usize) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO batches (tag, method, run_id, requests, state, created_unix_s) VALUES (?1, ?2, ?3, ?4, 'submitting', ?5)",
                params![tag, method, run_id, requests as i64, now_unix_s()],
            )
            .map_err(self.e())?;
        Ok(())
    }

    /// The batch tagged `tag` was created as `batch_id` (state `submitted`).
    ///
    /// # Errors
    /// [`Error::Sqlite`] on a write failure.
    pub fn batch_submitted(&self, tag: &str, batch_id: &str, input_file_id: &str) -> Result<()> {
        self.conn
            .execute(
                "UPDATE batches SET state = 'submitted', batch_id = ?2, input_file_id = NULLIF(?3, '') WHERE tag = ?1",
                params![tag, batch_id, input_file_id],
            )
            .map_err(self.e())?;
        Ok(())
    }

    /// The batch tagged `tag` ended with `state` (its final status) and `detail`.
    ///
    /// # Errors
    /// [`Error::Sqlite`] on a write failure.
    pub fn batch_ended(&self, tag: &str, state: &str, detail: &str) -> Result<()> {
        self.conn
            .execute(
                "UPDATE batches SET state = ?2, detail = ?3, ended_unix_s = ?4 WHERE tag = ?1",
                params![tag, state, detail, now_unix_s()],
            )
            .map_err(self.e())?;
        Ok(())
    }

    /// Every batch, oldest first.
    ///
    /// # Errors
    /// [`Error::Sqlite`] on a read failure (a store without the table has none).
    pub fn batches(&self) -> Result<Vec<BatchRecord>> {
        let exists: bool = self
            .conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'batches'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map_err(self.e())?
            > 0;
        if !exists {
            return Ok(Vec::new());
        }
        let mut st = self
            .conn
            .prepare(
                "SELECT tag, method, run_id, requests, state, batch_id, input_file_id, detail, created_unix_s, ended_unix_s FROM batches ORDER BY created_unix_s, rowid",
            )
            .map_err(self.e())?;
        let rows = st
            .query_map([], |r| {
                Ok(BatchRecord {
                    tag: r.get(0)?,
                    method: r.get(1)?,
                    run_id: r.get(2)?,
                    requests: r.get(3)?,
                    state: r.get(4)?,
                    batch_id: r.get(5)?,
                    input_file_id: r.get(6)?,
                    detail: r.get(7)?,
                    created_unix_s: r.get(8)?,
                    ended_unix_s: r.get(9)?,
                })
            })
            .map_err(self.e())?;
        rows.collect::<rusqlite::Result<_>>().map_err(self.e())
    }

    /// Records an event of a run.
    ///
    /// # Errors
    /// [`Error::Sqlite`] on a write failure.
    pub fn add_event(&self, run_id: i64, method: Option<&str>, message: &str) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO events (run_id, unix_s, method, message) VALUES (?1, ?2, ?3, ?4)",
                params![run_id, now_unix_s(), method, message],
            )
            .map_err(self.e())?;
        Ok(())
    }

    /// Every event, oldest first.
    ///
    /// # Errors
    /// [`Error::Sqlite`] on a read failure.
    pub fn events(&self) -> Result<Vec<EventRecord>> {
        let mut st = self
            .conn
            .prepare("SELECT run_id, unix_s, method, message FROM events ORDER BY id")
            .map_err(self.e())?;
        let rows = st
            .query_map([], |r| {
                Ok(EventRecord {
                    run_id: r.get(0)?,
                    unix_s: r.get(1)?,
                    method: r.get(2)?,
                    message: r.get(3)?,
                })
            })
            .map_err(self.e())?;
        rows.collect::<rusqlite::Result<_>>().map_err(self.e())
    }

    /// Every stored prediction, ordered by key.
    ///
    /// # Errors
    /// [`Error::Sqlite`] on a read failure; [`Error::Corrupt`] for an unknown status.
    pub fn predictions(&self) -> Result<Vec<Prediction>> {
        let mut st = self
            .conn
            .prepare(
                "SELECT dataset, sample_id, task, method, run_id, status, raw_answer, value_num,
                   value_text, failure, elapsed_ms, tokens_in, tokens_out, cost_usd, mask_path,
                   mask_sha256, created_unix_s, settings_hash
                 FROM predictions ORDER BY dataset, task, method, sample_id",
            )
            .map_err(self.e())?;
        let rows = st
            .query_map([], |r| {
                let status: String = r.get(5)?;
                let mask_path: Option<String> = r.get(14)?;
                let mask_sha: Option<String> = r.get(15)?;
                Ok((
                    status,
                    Prediction {
                        key: PredictionKey {
                            dataset: r.get(0)?,
                            sample_id: r.get(1)?,
                            task: r.get(2)?,
                            method: r.get(3)?,
                        },
                        run_id: r.get(4)?,
                        status: Status::Ok,
                        raw_answer: r.get(6)?,
                        value_num: r.get(7)?,
                        value_text: r.get(8)?,
                        failure: r.get(9)?,
                        elapsed_ms: r.get(10)?,
                        tokens_in: r.get(11)?,
                        tokens_out: r.get(12)?,
                        cost_usd: r.get(13)?,
                        mask: mask_path.map(|path| MaskFile {
                            path,
                            sha256: mask_sha.unwrap_or_default(),
                        }),
                        created_unix_s: r.get(16)?,
                        settings_hash: r.get(17)?,
                    },
                ))
            })
            .map_err(self.e())?;
        let mut out = Vec::new();
        for row in rows {
            let (status, mut p) = row.map_err(self.e())?;
            p.status = Status::parse(&status).ok_or_else(|| Error::Corrupt {
                path: self.path.clone(),
                what: "prediction status".into(),
                reason: format!("unknown status {status:?}"),
            })?;
            out.push(p);
        }
        Ok(out)
    }

    /// Every per-image metric.
    ///
    /// # Errors
    /// [`Error::Sqlite`] on a read failure.
    pub fn image_metrics(&self) -> Result<Vec<ImageMetric>> {
        let mut st = self
            .conn
            .prepare(
                "SELECT dataset, sample_id, task, method, name, value FROM image_metrics
                 ORDER BY dataset, task, method, sample_id, name",
            )
            .map_err(self.e())?;
        let rows = st
            .query_map([], |r| {
                Ok(ImageMetric {
                    key: PredictionKey {
                        dataset: r.get(0)?,
                        sample_id: r.get(1)?,
                        task: r.get(2)?,
                        method: r.get(3)?,
                    },
                    name: r.get(4)?,
                    value: r.get(5)?,
                })
            })
            .map_err(self.e())?;
        rows.collect::<rusqlite::Result<_>>().map_err(self.e())
    }

    /// Every sample, ordered by dataset and id.
    ///
    /// # Errors
    /// [`Error::Sqlite`] on a read failure; [`Error::Corrupt`] for undecodable metadata.
    pub fn samples(&self) -> Result<Vec<SampleRecord>> {
        let mut st = self
            .conn
            .prepare(
                "SELECT dataset, sample_id, path, truth_count, truth_class, truth_mask, meta_json
                 FROM samples ORDER BY dataset, sample_id",
            )
            .map_err(self.e())?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(6)?,
                    SampleRecord {
                        dataset: r.get(0)?,
                        sample_id: r.get(1)?,
                        path: r.get(2)?,
                        truth_count: r.get(3)?,
                        truth_class: r.get(4)?,
                        truth_mask: r.get(5)?,
                        meta: BTreeMap::new(),
                    },
                ))
            })
            .map_err(self.e())?;
        let mut out = Vec::new();
        for row in rows {
            let (meta, mut s) = row.map_err(self.e())?;
            s.meta = serde_json::from_str(&meta).map_err(|e| Error::Corrupt {
                path: self.path.clone(),
                what: format!("metadata of sample {}", s.sample_id),
                reason: e.to_string(),
            })?;
            out.push(s);
        }
        Ok(out)
    }

    /// Every method, ordered by name.
    ///
    /// # Errors
    /// [`Error::Sqlite`] on a read failure.
    pub fn methods(&self) -> Result<Vec<MethodRecord>> {
        let mut st = self
            .conn
            .prepare(
                "SELECT name, kind, settings_json, skipped_reason, settings_hash, effective_json
                 FROM methods ORDER BY name",
            )
            .map_err(self.e())?;
        let rows = st
            .query_map([], |r| {
                Ok(MethodRecord {
                    name: r.get(0)?,
                    kind: r.get(1)?,
                    settings_json: r.get(2)?,
                    skipped_reason: r.get(3)?,
                    settings_hash: r.get(4)?,
                    effective_json: r.get(5)?,
                })
            })
            .map_err(self.e())?;
        rows.collect::<rusqlite::Result<_>>().map_err(self.e())
    }

    /// Every run, oldest first.
    ///
    /// # Errors
    /// [`Error::Sqlite`] on a read failure.
    pub fn runs(&self) -> Result<Vec<RunRecord>> {
        let mut st = self
            .conn
            .prepare(
                "SELECT id, study_name, study_hash, mica_version, settings_json, started_unix_s,
                   finished_unix_s FROM runs ORDER BY id",
            )
            .map_err(self.e())?;
        let rows = st
            .query_map([], |r| {
                Ok(RunRecord {
                    id: r.get(0)?,
                    study_name: r.get(1)?,
                    study_hash: r.get(2)?,
                    mica_version: r.get(3)?,
                    settings_json: r.get(4)?,
                    started_unix_s: r.get(5)?,
                    finished_unix_s: r.get(6)?,
                })
            })
            .map_err(self.e())?;
        rows.collect::<rusqlite::Result<_>>().map_err(self.e())
    }

    /// Copies everything of the store at `other` into this one: runs (with new ids), samples,
    /// methods, predictions that are not here yet, and their metrics. A
    /// prediction present in both with a different value is a conflict: the one here is kept and
    /// the key is listed in the summary.
    ///
    /// # Errors
    /// Errors of either store.
    pub fn merge_from(&mut self, other: &Path) -> Result<MergeSummary> {
        let src = Store::open_read_only(other)?;
        let mut summary = MergeSummary::default();
        let mut run_map = BTreeMap::new();
        for r in src.runs()? {
            let id = self.begin_run(
                &r.study_name,
                &r.study_hash,
                &r.mica_version,
                &r.settings_json,
            )?;
            self.conn
                .execute(
                    "UPDATE runs SET started_unix_s = ?1, finished_unix_s = ?2 WHERE id = ?3",
                    params![r.started_unix_s, r.finished_unix_s, id],
                )
                .map_err(self.e())?;
            run_map.insert(r.id, id);
            summary.runs += 1;
        }
        let samples = src.samples()?;
        summary.samples = samples.len();
        self.upsert_samples(&samples)?;
        for m in src.methods()? {
            self.upsert_method(&m)?;
        }
        for e in src.events()? {
            let run = run_map.get(&e.run_id).copied().unwrap_or(e.run_id);
            self.conn
                .execute(
                    "INSERT INTO events (run_id, unix_s, method, message) VALUES (?1, ?2, ?3, ?4)",
                    params![run, e.unix_s, e.method, e.message],
                )
                .map_err(self.e())?;
        }
        let mut metrics: BTreeMap<PredictionKey, Vec<(String, f64)>> = BTreeMap::new();
        for m in src.image_metrics()? {
            metrics.entry(m.key).or_default().push((m.name, m.value));
        }
        let existing: BTreeMap<PredictionKey, Prediction> = self
            .predictions()?
            .into_iter()
            .map(|p| (p.key.clone(), p))
            .collect();
        for mut p in src.predictions()? {
            if let Some(old) = existing.get(&p.key) {
                let same = old.status == p.status
                    && old.value_num == p.value_num
                    && old.value_text == p.value_text
                    && old.raw_answer == p.raw_answer
                    && old.settings_hash == p.settings_hash;
                if same {
                    summary.predictions_same += 1;
                } else {
                    summary.conflicts.push(p.key.clone());
                }
                continue;
            }
            p.run_id = run_map.get(&p.run_id).copied().unwrap_or(p.run_id);
            let m = metrics.remove(&p.key).unwrap_or_default();
            if self.insert_prediction(&p, &m)? {
                summary.predictions_added += 1;
            }
        }
        Ok(summary)
    }
}

fn sql_err(path: &Path, source: rusqlite::Error) -> Error {
    Error::Sqlite {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str, m: &str) -> PredictionKey {
        PredictionKey::new("d", s, "count", m)
    }

    #[test]
    fn prediction_round_trips_with_metrics() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.sqlite")).unwrap();
        let run = store.begin_run("study", "abc", "0.1.0", "{}").unwrap();
        let mut p = Prediction::ok(key("a", "m"), run);
        p.value_num = Some(3.0);
        p.raw_answer = Some("Count: 3 <script>".into());
        p.tokens_in = Some(10);
        p.mask = Some(MaskFile {
            path: "masks/a.tif".into(),
            sha256: "00".into(),
        });
        assert!(store
            .insert_prediction(&p, &[("dice".into(), 0.5)])
            .unwrap());
        let got = store.predictions().unwrap();
        assert_eq!(got, vec![p]);
        let m = store.image_metrics().unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!((m[0].name.as_str(), m[0].value), ("dice", 0.5));
    }

    #[test]
    fn duplicate_prediction_is_ignored_and_failed_can_be_retried() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.sqlite")).unwrap();
        let f = Prediction::failed(key("a", "m"), 1, "boom");
        assert!(store.insert_prediction(&f, &[]).unwrap());
        assert!(!store.insert_prediction(&f, &[]).unwrap());
        assert_eq!(store.predictions().unwrap().len(), 1);
        assert_eq!(store.delete_failed().unwrap(), 1);
        assert!(store.done_keys().unwrap().is_empty());
    }

    #[test]
    fn reopen_keeps_data_and_rejects_foreign_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite");
        {
            let store = Store::open(&path).unwrap();
            store
                .insert_prediction(&Prediction::ok(key("a", "m"), 1), &[])
                .unwrap();
        }
        assert_eq!(Store::open(&path).unwrap().done_keys().unwrap().len(), 1);
        let foreign = dir.path().join("other.sqlite");
        let c = Connection::open(&foreign).unwrap();
        c.execute_batch("CREATE TABLE t (x INTEGER);").unwrap();
        drop(c);
        let err = Store::open(&foreign).unwrap_err();
        assert!(matches!(err, Error::NotAStore { .. }), "{err}");
        assert!(err.to_string().contains("other.sqlite"));
    }

    #[test]
    fn stale_predictions_are_told_apart_and_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.sqlite")).unwrap();
        let old = Prediction::ok(key("a", "m"), 1).with_settings("old");
        let new = Prediction::ok(key("b", "m"), 1).with_settings("new");
        store
            .insert_prediction(&old, &[("dice".into(), 0.5)])
            .unwrap();
        store.insert_prediction(&new, &[]).unwrap();
        assert_eq!(store.done_settings().unwrap()[&key("a", "m")], "old");
        assert_eq!(store.delete_predictions(&[key("a", "m")]).unwrap(), 1);
        assert_eq!(store.predictions().unwrap(), vec![new]);
        assert!(store.image_metrics().unwrap().is_empty());
        store.add_event(1, Some("m"), "dropped 1").unwrap();
        assert_eq!(store.events().unwrap()[0].message, "dropped 1");
    }

    #[test]
    fn schema_1_store_is_upgraded_on_write_and_refused_read_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.sqlite");
        {
            let c = Connection::open(&path).unwrap();
            let v1 = SCHEMA
                .replace(",\n    settings_hash TEXT NOT NULL DEFAULT '',\n    effective_json TEXT NOT NULL DEFAULT ''", "")
                .replace("    settings_hash TEXT NOT NULL DEFAULT '',\n", "");
            assert!(!v1.contains("settings_hash"), "{v1}");
            c.execute_batch(&v1).unwrap();
            c.execute("INSERT INTO meta VALUES ('schema_version', '1')", [])
                .unwrap();
            c.execute(
                "INSERT INTO predictions (dataset, sample_id, task, method, run_id, status, created_unix_s)
                 VALUES ('d', 'a', 'count', 'm', 1, 'ok', 0)",
                [],
            )
            .unwrap();
        }
        let e = Store::open_read_only(&path).unwrap_err().to_string();
        assert!(e.contains("version 1") && e.contains("upgrades it"), "{e}");
        let store = Store::open(&path).unwrap();
        let p = store.predictions().unwrap();
        assert_eq!((p.len(), p[0].settings_hash.as_str()), (1, ""));
        drop(store);
        assert!(Store::open_read_only(&path).is_ok());
    }

    #[test]
    fn merge_adds_missing_and_reports_conflicts() {
        let dir = tempfile::tempdir().unwrap();
        let a_path = dir.path().join("a.sqlite");
        let b_path = dir.path().join("b.sqlite");
        let mut a = Store::open(&a_path).unwrap();
        let b = Store::open(&b_path).unwrap();
        let ra = a.begin_run("s", "h", "v", "{}").unwrap();
        let rb = b.begin_run("s", "h", "v", "{}").unwrap();
        let mut p1 = Prediction::ok(key("x", "m"), ra);
        p1.value_num = Some(1.0);
        a.insert_prediction(&p1, &[]).unwrap();
        let mut p1b = p1.clone();
        p1b.run_id = rb;
        p1b.value_num = Some(2.0);
        b.insert_prediction(&p1b, &[]).unwrap();
        let mut p2 = Prediction::ok(key("y", "m"), rb);
        p2.value_num = Some(5.0);
        b.insert_prediction(&p2, &[("dice".into(), 0.9)]).unwrap();
        drop(b);
        let s = a.merge_from(&b_path).unwrap();
        assert_eq!(s.predictions_added, 1);
        assert_eq!(s.conflicts, vec![key("x", "m")]);
        assert_eq!(a.predictions().unwrap().len(), 2);
        assert_eq!(a.image_metrics().unwrap().len(), 1);
        // Merging again adds nothing.
        let s2 = a.merge_from(&b_path).unwrap();
        assert_eq!(s2.predictions_added, 0);
    }
}
