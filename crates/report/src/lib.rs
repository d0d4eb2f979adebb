//! # mica-report
//!
//! One self-contained HTML report of a results store ([`mica_store::Store`]): inline SVG figures
//! and inline PNG overlays, no network, no JavaScript, every piece of model or file text escaped;
//! plus every table as CSV and JSON.
//!
//! Front door: [`build`] renders an evaluation of a store (a
//! [`mica_metrics::evaluation::Evaluation`], made by `mica_study::evaluate_store`) into a
//! [`Report`]; it computes no score itself: every number it shows is one of the evaluation's.
//! The store supplies what is not a score (methods, runs, samples, VQA answers, mask files for
//! overlays). [`Report::write`] writes `report.html`, `evaluation.json` and
//! `tables/<id>.csv|json` into a folder.
//!
//! Sections: methods (and why any were skipped), counting (per dataset and stain: MAE with a 95 %
//! bootstrap interval, RMSE, bias, MAPE, exact, r, R²; predicted-vs-true scatter with y = x per
//! method; signed error against true count and blur level), segmentation (Dice and Jaccard with
//! intervals, Dice per image, difference overlays drawn on the image of the best, median and
//! worst image by Dice and of the largest count error: red = predicted only, blue = truth only,
//! green = both, yellow = each predicted object's outline), classification (accuracy with interval,
//! confusion matrices), VQA answers side by side with the reference, failures, provenance.

pub mod html;
pub mod svg;

pub use html::{escape, Cell, Table};

use base64::Engine;
use mica_core::dataset::meta;
use mica_core::task::TaskKind;
use mica_core::{BinaryMask, Image};
use mica_metrics::evaluation::{CountPoint, Evaluation, SegmentationImage};
use mica_metrics::measure::{Estimate, Metric};
use mica_store::{Prediction, SampleRecord, Store};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use svg::Point;

/// Result alias of the report crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] mica_store::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("table {table}: {reason}")]
    Table { table: String, reason: String },
}

/// Report settings.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// Title; default: the study name of the first run.
    pub title: Option<String>,
    /// Include difference overlays (reads the mask files).
    pub overlays: bool,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            title: None,
            overlays: true,
        }
    }
}

/// A built report.
#[derive(Debug, Clone)]
pub struct Report {
    pub html: String,
    /// The evaluation the report renders, as JSON (`evaluation.json`).
    pub evaluation_json: String,
    pub tables: Vec<Table>,
    /// Things the report could not show (unreadable mask files, ...), also listed in the HTML.
    pub warnings: Vec<String>,
}

impl Report {
    /// Writes `report.html`, `evaluation.json` (every summary, typed) and `tables/<id>.csv` /
    /// `.json` into `dir`; returns the HTML path.
    ///
    /// # Errors
    /// [`Error::Io`] naming the file that could not be written.
    pub fn write(&self, dir: &Path) -> Result<PathBuf> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io { path, source }
        };
        let tables = dir.join("tables");
        std::fs::create_dir_all(&tables).map_err(io(&tables))?;
        for t in &self.tables {
            let csv = t.to_csv().map_err(|e| Error::Table {
                table: t.id.clone(),
                reason: e.to_string(),
            })?;
            let p = tables.join(format!("{}.csv", t.id));
            std::fs::write(&p, csv).map_err(io(&p))?;
            let p = tables.join(format!("{}.json", t.id));
            let json = serde_json::to_string_pretty(&t.to_json()).unwrap_or_default();
            std::fs::write(&p, json).map_err(io(&p))?;
        }
        let p = dir.join("evaluation.json");
        std::fs::write(&p, &self.evaluation_json).map_err(io(&p))?;
        let p = dir.join("report.html");
        std::fs::write(&p, &self.html).map_err(io(&p))?;
        Ok(p)
    }
}

struct Ctx<'a> {
    samples: BTreeMap<(String, String), &'a SampleRecord>,
    store_dir: PathBuf,
    opts: &'a ReportOptions,
    tables: Vec<Table>,
    warnings: Vec<String>,
    body: String,
    /// Method name → colour index, stable across figures.
    method_index: BTreeMap<String, usize>,
}

impl Ctx<'_> {
    fn push_table(&mut self, t: Table) {
        self.body.push_str(&format!(
            "<h4>{}</h4>\n{}<p class=\"files\">tables/{}.csv, tables/{}.json</p>\n",
            escape(&t.title),
            t.to_html(),
            escape(&t.id),
            escape(&t.id)
        ));
        self.tables.push(t);
    }

    /// A long table, folded (`<details>`) so the page stays readable; exported like any other.
    fn push_table_folded(&mut self, t: Table) {
        self.body.push_str(&format!(
            "<details><summary>{} ({} rows)</summary>\n",
            escape(&t.title),
            t.rows.len()
        ));
        self.push_table(t);
        self.body.push_str("</details>\n");
    }

    fn colour(&self, method: &str) -> &'static str {
        svg::colour(self.method_index.get(method).copied().unwrap_or(0))
    }
}

/// Builds the report of a store.
///
/// # Errors
/// Errors reading the store. Unreadable mask files are warnings, not errors.
pub fn build(store: &Store, evaluation: &Evaluation, opts: &ReportOptions) -> Result<Report> {
    let ev = evaluation;
    let samples = store.samples()?;
    let preds = store.predictions()?;
    let methods = store.methods()?;
    let runs = store.runs()?;
    let events = store.events()?;
    let mut method_index = BTreeMap::new();
    for m in &methods {
        let i = method_index.len();
        method_index.entry(m.name.clone()).or_insert(i);
    }
    for p in &preds {
        let i = method_index.len();
        method_index.entry(p.key.method.clone()).or_insert(i);
    }
    let mut ctx = Ctx {
        samples: samples
            .iter()
            .map(|s| ((s.dataset.clone(), s.sample_id.clone()), s))
            .collect(),
        store_dir: store
            .path()
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default(),
        opts,
        tables: Vec::new(),
        warnings: Vec::new(),
        body: String::new(),
        method_index,
    };
    let title = opts
        .title
        .clone()
        .or_else(|| runs.first().map(|r| r.study_name.clone()))
        .unwrap_or_else(|| "mica report".into());

    // The answer comes first, above the warnings; the details follow.
    section_summary(&mut ctx, ev);
    let summary_html = std::mem::take(&mut ctx.body);

    // Methods.
    ctx.body
        .push_str("<section id=\"methods\"><h2>Methods</h2>\n");
    let mut t = Table::new(
        "methods",
        "Methods of the study",
        &["method", "kind", "status", "settings", "settings sha256"],
    );
    for m in &methods {
        t.rows.push(vec![
            Cell::text(&m.name),
            Cell::text(&m.kind),
            Cell::text(match &m.skipped_reason {
                Some(r) => format!("skipped: {r}"),
                None => "ran".into(),
            }),
            Cell::text(&m.settings_json),
            Cell::text(if m.settings_hash.is_empty() {
                "not recorded".to_string()
            } else {
                m.settings_hash.clone()
            }),
        ]);
    }
    ctx.push_table(t);
    ctx.body.push_str("</section>\n");

    let by_task = |task: TaskKind| -> Vec<&Prediction> {
        preds
            .iter()
            .filter(|p| p.key.task == task.as_str())
            .collect()
    };
    ctx.warnings.extend(ev.warnings.iter().cloned());
    section_counting(&mut ctx, ev);
    section_segmentation(&mut ctx, ev, &by_task(TaskKind::Segment));
    section_classification(&mut ctx, ev);
    section_vqa(&mut ctx, ev, &by_task(TaskKind::Vqa));
    section_size(&mut ctx, ev);
    section_failures(&mut ctx, ev);
    section_provenance(&mut ctx, &runs, &preds, store.path());
    // What runs did that changes how results read (predictions redone after a settings change).
    let mut t = Table::new(
        "events",
        "Events of the runs (predictions dropped and redone when settings changed)",
        &["run", "method", "event"],
    );
    for e in &events {
        ctx.warnings
            .push(format!("run {}: {}", e.run_id, e.message));
        t.rows.push(vec![
            Cell::Int(e.run_id),
            Cell::text(e.method.clone().unwrap_or_default()),
            Cell::text(&e.message),
        ]);
    }
    ctx.body
        .push_str("<section id=\"events\"><h2>Events</h2>\n");
    if events.is_empty() {
        ctx.body.push_str(
            "<p>None: every stored prediction was made with its method's current settings.</p>\n",
        );
    }
    ctx.push_table(t);
    ctx.body.push_str("</section>\n");

    let mut warn_html = String::new();
    if !ctx.warnings.is_empty() {
        warn_html.push_str("<section id=\"warnings\"><h2>Warnings</h2><ul>");
        for w in &ctx.warnings {
            warn_html.push_str(&format!("<li>{}</li>", escape(w)));
        }
        warn_html.push_str("</ul></section>");
    }
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t}</title><style>{CSS}</style></head><body>\n\
         <header><h1>{t}</h1><p>{n_s} samples, {n_p} predictions, {n_m} methods. Made by mica {v}. \
         Intervals are 95 % percentile bootstrap intervals over images ({r} resamples, seed {seed}).</p>\
         <nav><a href=\"#summary\">Summary</a> · <a href=\"#methods\">Methods</a> · <a href=\"#counting\">Counting</a> · \
         <a href=\"#segmentation\">Segmentation</a> · <a href=\"#classification\">Classification</a> · \
         <a href=\"#vqa\">VQA</a> · <a href=\"#size\">Sizes</a> · <a href=\"#failures\">Failures</a> · <a href=\"#provenance\">Provenance</a></nav></header>\n\
         <main>{summary_html}{warn_html}{body}</main></body></html>\n",
        t = escape(&title),
        n_s = samples.len(),
        n_p = preds.len(),
        n_m = methods.len(),
        v = escape(env!("CARGO_PKG_VERSION")),
        r = ev.bootstrap.resamples,
        seed = ev.bootstrap.seed,
        body = ctx.body,
    );
    Ok(Report {
        html,
        evaluation_json: serde_json::to_string_pretty(ev).unwrap_or_default(),
        tables: ctx.tables,
        warnings: ctx.warnings,
    })
}

const CSS: &str = "body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#222;background:#fafafa}\
header,main{max-width:1200px;margin:0 auto;padding:0 16px}h1{margin:16px 0 4px}h2{border-bottom:2px solid #0072B2;padding-bottom:2px;margin-top:32px}\
nav a{color:#0072B2}.tw{overflow-x:auto}table{border-collapse:collapse;margin:6px 0;background:#fff}th,td{border:1px solid #ddd;padding:3px 7px;text-align:left;vertical-align:top}td.long{overflow-wrap:anywhere;min-width:240px}\
td.n{text-align:right;font-variant-numeric:tabular-nums}th{background:#eef3f8}.files{color:#777;font-size:12px;margin:0 0 10px}\
.figs{display:flex;flex-wrap:wrap;gap:10px}svg.fig{background:#fff;border:1px solid #e3e3e3;max-width:100%;height:auto}svg .tk{font-size:10px;fill:#333}svg .lb{font-size:11px;fill:#222}svg .tt{font-size:12px;font-weight:600;fill:#222}\
.vqa{display:flex;gap:12px;align-items:flex-start;background:#fff;border:1px solid #e3e3e3;padding:8px;margin:8px 0;break-inside:avoid}.vqa img.thumb{width:200px;height:auto;flex:none}.vqa h4{margin:0 0 4px}.vqa .ref{margin:0 0 6px}.vqa details{margin:2px 0}.vqa .ok{color:#087f23}.vqa .bad{color:#b00020;font-weight:600}.vqa .na{color:#888}figure{margin:0;background:#fff;border:1px solid #e3e3e3;padding:6px}figure img{display:block;max-width:340px;height:auto;image-rendering:pixelated}figcaption{font-size:12px;max-width:340px}\
.note{color:#555}.answer{font-size:15px;background:#eef6ee;border-left:4px solid #009E73;padding:6px 10px}.ans{white-space:pre-wrap;max-width:420px}\
@media print{body{background:#fff}figure,svg.fig,tr,.answer,.vqa{break-inside:avoid}h2,h3,h4{break-after:avoid}.tw{overflow:visible}}";

/// Unix seconds as an ISO 8601 UTC time (`2026-12-02T20:31:05Z`).
fn utc(unix_s: i64) -> String {
    let days = unix_s.div_euclid(86_400);
    let secs = unix_s.rem_euclid(86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

fn fmt_ci(c: Option<(f64, f64)>) -> Cell {
    Cell::Interval(c, 2)
}

fn slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect::<String>()
        .split('-')
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}

/// The first screen: per dataset and task, the methods ranked by the main score with intervals,
/// the best marked, and whether it beats the runner-up beyond resampling noise (the paired
/// comparison of the evaluation's [`mica_metrics::evaluation::Ranking`]).
fn section_summary(ctx: &mut Ctx, ev: &Evaluation) {
    ctx.body.push_str(
        "<section id=\"summary\"><h2>Summary: which method is best, and how wrong</h2>\n",
    );
    if ev.rankings.is_empty() {
        ctx.body.push_str(
            "<p class=\"note\">No scored predictions in this store (no truth, or no method ran).</p></section>\n",
        );
        return;
    }
    summary_across_datasets(ctx, ev);
    let ci_key = "ci";
    let mut t = Table::keyed(
        "summary",
        "Methods ranked per dataset and task by the main score (best first)",
        &[
            ("dataset", "dataset"),
            ("task", "task"),
            ("rank", "rank"),
            ("method", "method"),
            ("metric", "metric"),
            ("value", "value"),
            (ci_key, "95% CI"),
            ("n", "n"),
        ],
    );
    for r in &ev.rankings {
        let better = direction(r.lower_is_better);
        ctx.body.push_str(&format!(
            "<h3>{}: {} ({}, {better})</h3>",
            escape(&r.dataset),
            escape(r.task.as_str()),
            escape(r.metric.label())
        ));
        let rows: Vec<svg::IntervalRow> = r
            .entries
            .iter()
            .enumerate()
            .filter_map(|(i, e)| {
                Some(svg::IntervalRow {
                    label: e.method.clone(),
                    value: e.estimate.value?,
                    interval: e.estimate.ci.map(|c| (c.low, c.high)),
                    colour: ctx.colour(&e.method),
                    best: i == 0,
                })
            })
            .collect();
        if let Some(best) = r.entries.first().filter(|e| e.estimate.value.is_some()) {
            let v = best.estimate.value.unwrap_or_default();
            let ci = best
                .estimate
                .ci
                .map(|c| format!(" [{:.3}, {:.3}]", c.low, c.high))
                .unwrap_or_else(|| " (too few images for an interval)".into());
            let verdict = match &r.runner_up {
                Some(ru) => {
                    let d = &ru.difference;
                    let dci =
                        d.ci.map(|c| format!(" [{:.3}, {:.3}]", c.low, c.high))
                            .unwrap_or_default();
                    if ru.beyond_noise {
                        format!(
                            " It beats the runner-up, <b>{}</b>, beyond resampling noise: on the {} images both scored, the runner-up's {} differs by {:.3}{dci}.",
                            escape(&ru.method),
                            d.n,
                            escape(r.metric.label()),
                            d.difference
                        )
                    } else {
                        format!(
                            " The runner-up, <b>{}</b>, is within resampling noise of it: on the {} images both scored, the difference is {:.3}{dci}, an interval that includes 0.",
                            escape(&ru.method),
                            d.n,
                            d.difference
                        )
                    }
                }
                None if rows.len() > 1 => {
                    " No image was scored by both it and the runner-up, so they cannot be compared."
                        .into()
                }
                None => String::new(),
            };
            ctx.body.push_str(&format!(
                "<p class=\"answer\">Best: <b>{}</b>, {} {v:.3}{ci} over {} images.{verdict}</p>",
                escape(&best.method),
                escape(r.metric.label()),
                best.n
            ));
        }
        ctx.body.push_str(&svg::interval_chart(
            &format!("{}: {}", r.dataset, r.metric.label()),
            r.metric.label(),
            &rows,
        ));
        for (i, e) in r.entries.iter().enumerate() {
            let (v, ci) = est(&e.estimate, 3);
            t.rows.push(vec![
                Cell::text(&r.dataset),
                Cell::text(r.task.as_str()),
                Cell::Int(i as i64 + 1),
                Cell::text(&e.method),
                Cell::text(r.metric.key()),
                v,
                ci,
                Cell::Int(e.n as i64),
            ]);
        }
    }
    ctx.push_table(t);
    ctx.body.push_str("</section>\n");
}

/// One figure per task and main score that more than one dataset has: every method's score on
/// every dataset (the study's "MAE by method and dataset"), each dataset on its own scale.
fn summary_across_datasets(ctx: &mut Ctx, ev: &Evaluation) {
    let mut groups: Vec<(String, Vec<&mica_metrics::evaluation::Ranking>)> = Vec::new();
    for r in &ev.rankings {
        let key = format!("{}/{}", r.task.as_str(), r.metric.key());
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, g)) => g.push(r),
            None => groups.push((key, vec![r])),
        }
    }
    for (_, rankings) in groups.iter().filter(|(_, g)| g.len() > 1) {
        let first = rankings[0];
        // Methods in the order of their mean rank over the datasets that scored them.
        let mut ranks: Vec<(String, f64, usize)> = Vec::new();
        for r in rankings {
            for (i, e) in r.entries.iter().enumerate() {
                if e.estimate.value.is_none() {
                    continue;
                }
                match ranks.iter_mut().find(|(m, _, _)| *m == e.method) {
                    Some((_, sum, n)) => {
                        *sum += i as f64;
                        *n += 1;
                    }
                    None => ranks.push((e.method.clone(), i as f64, 1)),
                }
            }
        }
        ranks.sort_by(|a, b| (a.1 / a.2 as f64).total_cmp(&(b.1 / b.2 as f64)));
        let methods: Vec<(String, &'static str)> = ranks
            .iter()
            .map(|(m, _, _)| (m.clone(), ctx.colour(m)))
            .collect();
        let datasets: Vec<String> = rankings.iter().map(|r| r.dataset.clone()).collect();
        let cells: Vec<Vec<Option<svg::GridCell>>> = methods
            .iter()
            .map(|(m, _)| {
                rankings
                    .iter()
                    .map(|r| {
                        let (i, e) = r.entries.iter().enumerate().find(|(_, e)| e.method == *m)?;
                        Some(svg::GridCell {
                            value: e.estimate.value?,
                            interval: e.estimate.ci.map(|c| (c.low, c.high)),
                            best: i == 0,
                        })
                    })
                    .collect()
            })
            .collect();
        let better = direction(first.lower_is_better);
        ctx.body.push_str(&format!(
            "<h3>All datasets: {} ({}, {better})</h3><p class=\"note\">Each dataset on its own scale; the best method of each in bold, with a black edge; 95% intervals as lines.</p>",
            escape(first.task.as_str()),
            escape(first.metric.label())
        ));
        ctx.body.push_str(&svg::by_method_and_dataset(
            &format!("{} by method and dataset", first.metric.label()),
            &datasets,
            &methods,
            &cells,
        ));
    }
}

/// How a score is read: "lower is better" or "higher is better".
fn direction(lower_is_better: bool) -> &'static str {
    if lower_is_better {
        "lower is better"
    } else {
        "higher is better"
    }
}

fn est(e: &Estimate, digits: usize) -> (Cell, Cell) {
    (
        Cell::Num(e.value, digits),
        Cell::Interval(e.ci.map(|i| (i.low, i.high)), digits),
    )
}

fn section_counting(ctx: &mut Ctx, ev: &Evaluation) {
    ctx.body
        .push_str("<section id=\"counting\"><h2>Counting</h2>\n");
    if ev.counting.is_empty() {
        ctx.body
            .push_str("<p class=\"note\">No counting predictions in this store.</p></section>\n");
        return;
    }
    ctx.body.push_str(
        "<p class=\"note\">n = images with a numeric answer (scored); missing = images without one \
         (empty cell, unparsable answer, or failure), never silently dropped. Bias = mean(prediction − truth). \
         MAPE and exact as fractions. R² is against the line y = x (can be negative). \
         An interval shown as – covers fewer than 5 images, too few for one.</p>\n",
    );
    let k = |m: Metric| (m.key(), m.label());
    let mae_ci = format!("{}_ci", Metric::Mae.key());
    let mut table = Table::keyed(
        "counting",
        "Counting error per dataset and method",
        &[
            ("dataset", "dataset"),
            ("stratum", "stratum"),
            ("method", "method"),
            ("n", "n"),
            ("missing", "missing"),
            k(Metric::Mae),
            (&mae_ci, "MAE 95% CI"),
            k(Metric::Rmse),
            k(Metric::Bias),
            k(Metric::Mape),
            k(Metric::Exact),
            k(Metric::PearsonR),
            k(Metric::R2),
        ],
    );
    // Rows: dataset, then stratum (in the evaluation's order), then method.
    for r in &ev.counting {
        let sc = &r.summary.scores;
        let ci = r
            .summary
            .get(Metric::Mae)
            .and_then(|e| e.ci)
            .map(|i| (i.low, i.high));
        table.rows.push(vec![
            Cell::text(&r.dataset),
            Cell::text(r.stratum.label()),
            Cell::text(&r.method),
            Cell::Int(sc.n as i64),
            Cell::Int(sc.missing as i64),
            Cell::Num(sc.mae, 2),
            fmt_ci(ci),
            Cell::Num(sc.rmse, 2),
            Cell::Num(sc.bias, 2),
            Cell::Num(sc.mape, 3),
            Cell::Num(sc.exact, 3),
            Cell::Num(sc.pearson_r, 3),
            Cell::Num(sc.r2, 3),
        ]);
    }
    ctx.push_table(table);
    paired_counting(ctx, ev);
    counting_per_image(ctx, ev);

    // Figures from the scored points, per dataset and method (methods of the counting table, so
    // a method with no scored image still gets its empty panel).
    let mut grouped: BTreeMap<&str, BTreeMap<&str, Vec<&CountPoint>>> = BTreeMap::new();
    for r in &ev.counting {
        grouped
            .entry(&r.dataset)
            .or_default()
            .entry(&r.method)
            .or_default();
    }
    for p in &ev.count_points {
        grouped
            .entry(&p.dataset)
            .or_default()
            .entry(&p.method)
            .or_default()
            .push(p);
    }
    let mut pooled_blur: BTreeMap<String, Vec<Point>> = BTreeMap::new();
    for (dataset, methods) in &grouped {
        ctx.body.push_str(&format!(
            "<h3>{}: predicted vs true count</h3><div class=\"figs\">",
            escape(dataset)
        ));
        // One scale for every method of the dataset.
        let shared_max = methods
            .values()
            .flatten()
            .flat_map(|p| [p.truth, p.predicted])
            .filter(|v| v.is_finite())
            .fold(1.0f64, f64::max);
        let mut err_series = Vec::new();
        for (method, ps) in methods {
            let mut pts = Vec::new();
            let mut errs = Vec::new();
            for p in ps {
                let (t, v) = (p.truth, p.predicted);
                let label = format!("{}: true {t}, predicted {v}", p.image);
                pts.push(Point {
                    x: t,
                    y: v,
                    label: label.clone(),
                });
                errs.push(Point {
                    x: t,
                    y: v - t,
                    label: label.clone(),
                });
                if let Some(b) = p.blur {
                    pooled_blur
                        .entry(method.to_string())
                        .or_default()
                        .push(Point {
                            x: b,
                            y: (v - t).abs(),
                            label,
                        });
                }
            }
            let svg = svg::scatter_identity(
                method,
                "true count",
                "predicted count",
                &pts,
                ctx.colour(method),
                Some(shared_max),
            );
            ctx.body.push_str(&svg);
            err_series.push((method.to_string(), errs));
        }
        ctx.body.push_str("</div>\n");
        // Series keep their method's colour from the scatter plots.
        let colours: Vec<&str> = err_series.iter().map(|(m, _)| ctx.colour(m)).collect();
        ctx.body.push_str(&svg::multi_series(
            &format!("{dataset}: count error against true count"),
            "true count",
            "predicted − true",
            &err_series,
            &colours,
            None,
            Some(0.0),
        ));
    }
    // Error against blur level, pooled over the datasets (e.g. BBBC005 F1 next to F23/F48).
    let levels: BTreeSet<String> = pooled_blur
        .values()
        .flatten()
        .map(|p| format!("{}", p.x))
        .collect();
    if levels.len() > 1 {
        // Only methods run at more than one blur level say anything about blur.
        let series: Vec<(String, Vec<Point>)> = pooled_blur
            .into_iter()
            .filter(|(_, pts)| {
                pts.iter()
                    .map(|p| format!("{}", p.x))
                    .collect::<BTreeSet<_>>()
                    .len()
                    > 1
            })
            .collect();
        let colours: Vec<&str> = series.iter().map(|(m, _)| ctx.colour(m)).collect();
        ctx.body
            .push_str("<h3>Count error against blur level (all datasets)</h3>");
        ctx.body.push_str(&svg::multi_series(
            "absolute count error against blur level",
            "blur level (BBBC005 F)",
            "|predicted − true|",
            &series,
            &colours,
            None,
            Some(0.0),
        ));
    }
    ctx.body.push_str("</section>\n");
}

/// Image by image: the true count and each method's count (blank: no count from that method),
/// folded in the page, whole in `tables/counting_per_image.csv`.
fn counting_per_image(ctx: &mut Ctx, ev: &Evaluation) {
    let methods: Vec<&str> = ev
        .counting
        .iter()
        .map(|r| r.method.as_str())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut cols = vec!["dataset".to_string(), "image".into(), "truth".into()];
    cols.extend(methods.iter().map(|m| m.to_string()));
    let col_refs: Vec<&str> = cols.iter().map(String::as_str).collect();
    let mut t = Table::new(
        "counting_per_image",
        "Counts per image: truth and each method's prediction",
        &col_refs,
    );
    // (dataset, image) → (truth, method → predicted count).
    type Row<'a> = (f64, BTreeMap<&'a str, f64>);
    let mut rows: BTreeMap<(&str, &str), Row> = BTreeMap::new();
    for p in &ev.count_points {
        rows.entry((&p.dataset, &p.image))
            .or_insert((p.truth, BTreeMap::new()))
            .1
            .insert(&p.method, p.predicted);
    }
    for ((d, image), (truth, preds)) in rows {
        let mut cells = vec![Cell::text(d), Cell::text(image), Cell::Num(Some(truth), 0)];
        cells.extend(methods.iter().map(|m| Cell::Num(preds.get(m).copied(), 0)));
        t.rows.push(cells);
    }
    if !t.rows.is_empty() {
        ctx.push_table_folded(t);
    }
}

/// Per dataset: every method against the one with the lowest MAE, on the images both answered,
/// with a paired bootstrap interval of the difference of MAE (images resampled as pairs).
fn paired_counting(ctx: &mut Ctx, ev: &Evaluation) {
    let mut t = Table::new(
        "counting_paired",
        "Paired comparison: MAE of each method minus MAE of the best method, on the same images",
        &[
            "dataset",
            "method",
            "best method",
            "n paired",
            "MAE method",
            "MAE best",
            "difference",
            "difference 95% CI",
        ],
    );
    for r in &ev.counting_paired {
        let d = &r.difference;
        t.rows.push(vec![
            Cell::text(&r.dataset),
            Cell::text(&r.method),
            Cell::text(&r.best),
            Cell::Int(d.n as i64),
            Cell::Num(Some(d.mean_a), 2),
            Cell::Num(Some(d.mean_b), 2),
            Cell::Num(Some(d.difference), 2),
            Cell::Interval(d.ci.map(|c| (c.low, c.high)), 2),
        ]);
    }
    if !t.rows.is_empty() {
        ctx.body.push_str("<p class=\"note\">An interval that excludes 0 means the best method is better on these images beyond resampling noise.</p>");
        ctx.push_table(t);
    }
}

fn section_segmentation(ctx: &mut Ctx, ev: &Evaluation, preds: &[&Prediction]) {
    ctx.body
        .push_str("<section id=\"segmentation\"><h2>Segmentation</h2>\n");
    if ev.segmentation.is_empty() {
        ctx.body.push_str(if preds.is_empty() {
            "<p class=\"note\">No segmentation predictions in this store.</p>"
        } else {
            "<p class=\"note\">No segmentation scored: no true masks for these images.</p>"
        });
        object_sizes(ctx, preds);
        ctx.body.push_str("</section>\n");
        return;
    }
    ctx.body.push_str(
        "<p class=\"note\">Foreground overlap of the predicted mask with the true mask, per image. \
         Dice = 2|T∩P|/(|T|+|P|), Jaccard = |T∩P|/|T∪P|.</p>\n",
    );
    let (dice_ci, jaccard_ci) = (
        format!("{}_ci", Metric::Dice.key()),
        format!("{}_ci", Metric::Jaccard.key()),
    );
    let mut table = Table::keyed(
        "segmentation",
        "Foreground segmentation per dataset and method (means over images)",
        &[
            ("dataset", "dataset"),
            ("method", "method"),
            ("n", "n"),
            ("not_scored", "not scored"),
            (Metric::Dice.key(), "mean Dice"),
            (&dice_ci, "Dice 95% CI"),
            (Metric::Jaccard.key(), "mean Jaccard"),
            (&jaccard_ci, "Jaccard 95% CI"),
        ],
    );
    for r in &ev.segmentation {
        let (d, dci) = est(&r.dice, 3);
        let (j, jci) = est(&r.jaccard, 3);
        table.rows.push(vec![
            Cell::text(&r.dataset),
            Cell::text(&r.method),
            Cell::Int(r.n as i64),
            Cell::Int(r.not_scored as i64),
            d,
            dci,
            j,
            jci,
        ]);
    }
    let mut per_image = Table::keyed(
        "segmentation_per_image",
        "Per-image segmentation metrics",
        &[
            ("dataset", "dataset"),
            ("method", "method"),
            ("image", "image"),
            (Metric::Dice.key(), Metric::Dice.label()),
            (Metric::Jaccard.key(), Metric::Jaccard.label()),
            (Metric::HausdorffPx.key(), Metric::HausdorffPx.label()),
        ],
    );
    for r in &ev.segmentation_images {
        per_image.rows.push(vec![
            Cell::text(&r.dataset),
            Cell::text(&r.method),
            Cell::text(&r.image),
            Cell::Num(r.dice, 4),
            Cell::Num(r.jaccard, 4),
            Cell::Num(r.hausdorff_px, 1),
        ]);
    }
    // The stored predictions, for their mask files (overlays).
    let by_key: BTreeMap<(&str, &str, &str), &Prediction> = preds
        .iter()
        .map(|p| {
            (
                (
                    p.key.dataset.as_str(),
                    p.key.method.as_str(),
                    p.key.sample_id.as_str(),
                ),
                *p,
            )
        })
        .collect();
    let mut grouped: BTreeMap<&str, BTreeMap<&str, Vec<&SegmentationImage>>> = BTreeMap::new();
    for r in &ev.segmentation {
        grouped
            .entry(&r.dataset)
            .or_default()
            .entry(&r.method)
            .or_default();
    }
    for r in &ev.segmentation_images {
        grouped
            .entry(&r.dataset)
            .or_default()
            .entry(&r.method)
            .or_default()
            .push(r);
    }
    for (dataset, methods) in &grouped {
        let mut dice_series = Vec::new();
        let mut overlays = String::new();
        for (method, imgs) in methods {
            let mut ranked: Vec<(f64, &str)> = imgs
                .iter()
                .filter(|r| r.jaccard.is_some())
                .filter_map(|r| Some((r.dice?, r.image.as_str())))
                .collect();
            ranked.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(b.1)));
            let pts: Vec<Point> = ranked
                .iter()
                .enumerate()
                .map(|(i, (d, id))| Point {
                    x: i as f64 + 1.0,
                    y: *d,
                    label: format!("{id}: Dice {d:.3}"),
                })
                .collect();
            dice_series.push((method.to_string(), pts));
            if ctx.opts.overlays && !ranked.is_empty() {
                let mut picks = vec![
                    ("worst Dice".to_string(), 0),
                    ("median Dice".to_string(), ranked.len() / 2),
                    ("best Dice".to_string(), ranked.len() - 1),
                ];
                // The image with the largest count error among those scored here (a Dice that
                // barely varies hides merged or split cells; the count error shows them).
                let count_error: BTreeMap<&str, f64> = ev
                    .count_points
                    .iter()
                    .filter(|c| c.dataset == **dataset && c.method == **method)
                    .map(|c| (c.image.as_str(), (c.predicted - c.truth).abs()))
                    .collect();
                if let Some((i, e)) = ranked
                    .iter()
                    .enumerate()
                    .filter_map(|(i, (_, id))| Some((i, *count_error.get(id)?)))
                    .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))
                {
                    picks.insert(1, (format!("largest count error ({e})"), i));
                }
                let mut seen = BTreeSet::new();
                overlays.push_str(&format!(
                    "<h4>{}: difference overlays</h4><div class=\"figs\">",
                    escape(method)
                ));
                for (what, i) in picks {
                    if !seen.insert(i) {
                        continue;
                    }
                    let (d, id) = ranked[i];
                    overlays.push_str(&overlay_figure(
                        ctx,
                        by_key.get(&(*dataset, *method, id)).copied(),
                        (method, id),
                        &format!("difference overlay of {id}"),
                        &format!("{what}: {id}, Dice {d:.3}"),
                    ));
                }
                overlays.push_str("</div>\n");
            }
        }
        ctx.body.push_str(&format!("<h3>{}</h3>", escape(dataset)));
        ctx.body.push_str(&svg::multi_series(
            &format!("{dataset}: Dice per image (images sorted by Dice, per method)"),
            "image rank",
            "Dice",
            &dice_series,
            &dice_series
                .iter()
                .map(|(m, _)| ctx.colour(m))
                .collect::<Vec<_>>(),
            // Fitted to the values: Dice of 0.95-0.99 would be a flat line on a 0-1 axis.
            None,
            None,
        ));
        ctx.body.push_str("<p class=\"note\">Overlays, drawn on the image: <span style=\"color:#d00\">red = predicted only</span>, \
            <span style=\"color:#00d\">blue = truth only</span>, <span style=\"color:#0a0\">green = both</span>, \
            <span style=\"color:#b90\">yellow = outline of each predicted object</span> (merged or split cells show \
            there); picked by Dice and, where the method also counted, by the largest count error.</p>");
        ctx.body.push_str(&overlays);
        if ctx.opts.overlays {
            side_by_side(ctx, dataset, methods, &by_key);
        }
    }
    ctx.push_table(table);
    ctx.push_table_folded(per_image);
    instance_table(ctx, ev);
    object_sizes(ctx, preds);
    ctx.body.push_str("</section>\n");
}

/// The file of a prediction's label image, relative paths taken from the store's folder.
fn mask_file(ctx: &Ctx, p: &Prediction) -> Option<PathBuf> {
    let pp = PathBuf::from(&p.mask.as_ref()?.path);
    Some(if pp.is_absolute() {
        pp
    } else {
        ctx.store_dir.join(pp)
    })
}

/// The middle value of `v` (mean of the two middle ones for an even count); `None` when empty.
fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// The objects each method segmented, measured as `objects.csv` measures them (scikit-image's
/// `regionprops` definitions): per dataset and method the objects' median area and equivalent
/// diameter in pixels and, for images whose file states its pixel size (TIFF resolution, ImageJ,
/// OME-TIFF), in µm. A calibration that cannot be read is a warning and leaves that image out of
/// the µm columns, never a guessed size.
fn object_sizes(ctx: &mut Ctx, preds: &[&Prediction]) {
    #[derive(Default)]
    struct Acc {
        images: usize,
        calibrated: usize,
        area_px: Vec<f64>,
        diameter_px: Vec<f64>,
        area_um2: Vec<f64>,
        diameter_um: Vec<f64>,
        pixel_um: BTreeSet<String>,
        sources: BTreeSet<&'static str>,
    }
    let mut acc: BTreeMap<(String, String), Acc> = BTreeMap::new();
    let mut calibration: BTreeMap<String, Option<mica_core::calibration::PixelSize>> =
        BTreeMap::new();
    for p in preds.iter().filter(|p| p.status == mica_store::Status::Ok) {
        let Some(file) = mask_file(ctx, p) else {
            continue;
        };
        let Some(sample) = ctx
            .samples
            .get(&(p.key.dataset.clone(), p.key.sample_id.clone()))
        else {
            continue;
        };
        let labels = match mica_core::io::read_image(&file)
            .and_then(|i| mica_core::LabelImage::from_image(&i))
        {
            Ok(l) => l,
            Err(e) => {
                ctx.warnings.push(format!(
                    "object sizes: {} ({}): {e}",
                    file.display(),
                    p.key.method
                ));
                continue;
            }
        };
        let props = match mica_core::mask::object_properties(&labels, None) {
            Ok(v) => v,
            Err(e) => {
                ctx.warnings
                    .push(format!("object sizes: {}: {e}", file.display()));
                continue;
            }
        };
        let pixel = match calibration.get(&sample.path) {
            Some(c) => *c,
            None => {
                let c = match mica_core::calibration::read_pixel_size(Path::new(&sample.path)) {
                    Ok(c) => c,
                    Err(e) => {
                        ctx.warnings.push(format!(
                            "pixel size of {}: {e} (left out of the µm columns)",
                            sample.path
                        ));
                        None
                    }
                };
                calibration.insert(sample.path.clone(), c);
                c
            }
        };
        let a = acc
            .entry((p.key.dataset.clone(), p.key.method.clone()))
            .or_default();
        a.images += 1;
        for o in &props {
            a.area_px.push(o.area_px as f64);
            a.diameter_px.push(o.equivalent_diameter);
        }
        if let Some(px) = pixel {
            a.calibrated += 1;
            a.sources.insert(px.source.name());
            a.pixel_um.insert(if px.x_um == px.y_um {
                format!("{:.4}", px.x_um)
            } else {
                format!("{:.4} × {:.4}", px.x_um, px.y_um)
            });
            for o in &props {
                a.area_um2.push(o.area_px as f64 * px.x_um * px.y_um);
                // A diameter in µm needs square pixels.
                if px.x_um == px.y_um {
                    a.diameter_um.push(o.equivalent_diameter * px.x_um);
                }
            }
        }
    }
    if acc.is_empty() {
        return;
    }
    let mut t = Table::keyed(
        "object_sizes",
        "Objects segmented per dataset and method: median size in pixels, and in µm where the image states its pixel size",
        &[
            ("dataset", "dataset"),
            ("method", "method"),
            ("images", "images"),
            ("objects", "objects"),
            ("median_area_px", "median area (px)"),
            ("median_equivalent_diameter_px", "median equivalent diameter (px)"),
            ("calibrated_images", "images with a pixel size"),
            ("pixel_size_um", "pixel size (µm)"),
            ("calibration", "calibration"),
            ("median_area_um2", "median area (µm²)"),
            ("median_equivalent_diameter_um", "median equivalent diameter (µm)"),
        ],
    );
    let any_um = acc.values().any(|a| a.calibrated > 0);
    for ((d, m), a) in acc {
        let join = |v: &BTreeSet<String>| v.iter().cloned().collect::<Vec<_>>().join(", ");
        t.rows.push(vec![
            Cell::text(d),
            Cell::text(m),
            Cell::Int(a.images as i64),
            Cell::Int(a.area_px.len() as i64),
            Cell::Num(median(a.area_px), 1),
            Cell::Num(median(a.diameter_px), 2),
            Cell::Int(a.calibrated as i64),
            Cell::text(join(&a.pixel_um)),
            Cell::text(a.sources.iter().copied().collect::<Vec<_>>().join(", ")),
            Cell::Num(median(a.area_um2), 2),
            Cell::Num(median(a.diameter_um), 3),
        ]);
    }
    ctx.body.push_str(if any_um {
        "<p class=\"note\">Object sizes as <code>objects.csv</code> measures them (scikit-image's <code>regionprops</code>): the µm columns count only the images whose file states its pixel size (TIFF resolution tags, ImageJ or OME-TIFF metadata), named in the calibration column; the pixel columns count every image.</p>"
    } else {
        "<p class=\"note\">Object sizes as <code>objects.csv</code> measures them (scikit-image's <code>regionprops</code>), in pixels only: none of these images states its pixel size in its file (TIFF resolution tags, ImageJ or OME-TIFF metadata), so no µm value is given.</p>"
    });
    ctx.push_table(t);
}

/// The study's qualitative figure: one image with every method's difference overlay side by
/// side, for datasets segmented by two methods or more. The image is the hardest one that every
/// method scored (lowest mean Dice).
fn side_by_side(
    ctx: &mut Ctx,
    dataset: &str,
    methods: &BTreeMap<&str, Vec<&SegmentationImage>>,
    by_key: &BTreeMap<(&str, &str, &str), &Prediction>,
) {
    if methods.len() < 2 {
        return;
    }
    let mut dice: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for imgs in methods.values() {
        for r in imgs {
            if let Some(d) = r.dice {
                dice.entry(r.image.as_str()).or_default().push(d);
            }
        }
    }
    let Some((image, _)) = dice
        .iter()
        .filter(|(_, ds)| ds.len() == methods.len())
        .map(|(id, ds)| (*id, ds.iter().sum::<f64>() / ds.len() as f64))
        .min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(b.0)))
    else {
        return;
    };
    ctx.body.push_str(&format!(
        "<h4>{}: the methods side by side on {}, the image they found hardest (lowest mean Dice)</h4><div class=\"figs\">",
        escape(dataset),
        escape(image)
    ));
    for (method, imgs) in methods {
        let d = imgs
            .iter()
            .find(|r| r.image == image)
            .and_then(|r| r.dice)
            .unwrap_or(f64::NAN);
        let fig = overlay_figure(
            ctx,
            by_key.get(&(dataset, *method, image)).copied(),
            (method, image),
            &format!("{method} on {image}"),
            &format!("{method}: Dice {d:.3}"),
        );
        ctx.body.push_str(&fig);
    }
    ctx.body.push_str("</div>\n");
}

/// A difference overlay as a `<figure>` with `alt` and `caption` (escaped here), or nothing and
/// a warning naming `(method, image)` when it cannot be made.
fn overlay_figure(
    ctx: &mut Ctx,
    prediction: Option<&Prediction>,
    (method, image): (&str, &str),
    alt: &str,
    caption: &str,
) -> String {
    match prediction
        .ok_or_else(|| "no stored prediction".to_string())
        .and_then(|p| overlay_data_uri(ctx, p))
    {
        Ok(uri) => format!(
            "<figure><img src=\"{uri}\" alt=\"{}\"><figcaption>{}</figcaption></figure>",
            escape(alt),
            escape(caption)
        ),
        Err(e) => {
            ctx.warnings
                .push(format!("overlay of {image} ({method}): {e}"));
            String::new()
        }
    }
}

/// Instance metrics (datasets whose truth masks are instance labels): per dataset and method, the
/// means over images of F1 at IoU 0.5 and 0.75, F1 averaged over IoU 0.5…0.95, and TP/(TP+FP+FN)
/// at 0.5 and averaged over 0.5…0.95 (mSA), with the total numbers of true and predicted objects.
fn instance_table(ctx: &mut Ctx, ev: &Evaluation) {
    if ev.instances.is_empty() {
        return;
    }
    let f1_ci = format!("{}_ci", Metric::F1Iou50.key());
    let mut table = Table::keyed(
        "segmentation_instances",
        "Instance segmentation per dataset and method (truth: instance labels)",
        &[
            ("dataset", "dataset"),
            ("method", "method"),
            ("n", "n"),
            (Metric::F1Iou50.key(), "mean F1 @IoU0.5"),
            (&f1_ci, "F1 @IoU0.5 95% CI"),
            (Metric::F1Iou75.key(), "mean F1 @IoU0.75"),
            (Metric::F1Iou50To95.key(), "mean F1 @IoU0.5:0.95"),
            (
                Metric::TpOverTpFpFnIou50.key(),
                "mean TP/(TP+FP+FN) @IoU0.5",
            ),
            (
                Metric::TpOverTpFpFnIou50To95.key(),
                "mSA (TP/(TP+FP+FN) @IoU0.5:0.95)",
            ),
            (Metric::InstancesTrue.key(), "true objects"),
            (Metric::InstancesPred.key(), "predicted objects"),
        ],
    );
    for r in &ev.instances {
        let (f1, f1ci) = est(&r.f1_iou50, 3);
        table.rows.push(vec![
            Cell::text(&r.dataset),
            Cell::text(&r.method),
            Cell::Int(r.n as i64),
            f1,
            f1ci,
            Cell::Num(r.f1_iou75, 3),
            Cell::Num(r.f1_iou50_95, 3),
            Cell::Num(r.tp_over_tp_fp_fn_iou50, 3),
            Cell::Num(r.tp_over_tp_fp_fn_iou50_95, 3),
            Cell::Int(r.instances_true as i64),
            Cell::Int(r.instances_pred as i64),
        ]);
    }
    ctx.body.push_str(
        "<p class=\"note\">Instance metrics (only where the truth masks are instance labels): a \
         predicted object matches a true one when their IoU reaches the threshold (one-to-one, \
         mica-metrics' matching). F1 = 2TP/(2TP+FP+FN); means are over images.</p>\n",
    );
    ctx.push_table(table);
}

/// The difference of a prediction's objects against the truth drawn on the sample's image (see
/// [`difference_on_image_png`]), as a PNG data URI; on black when the image cannot be read.
fn overlay_data_uri(ctx: &Ctx, p: &Prediction) -> Result<String, String> {
    let sample = ctx
        .samples
        .get(&(p.key.dataset.clone(), p.key.sample_id.clone()))
        .ok_or("no sample record")?;
    let truth_path = sample.truth_mask.as_ref().ok_or("no truth mask")?;
    let mask = p.mask.as_ref().ok_or("no predicted mask file")?;
    let pred_path = {
        let pp = PathBuf::from(&mask.path);
        if pp.is_absolute() {
            pp
        } else {
            ctx.store_dir.join(pp)
        }
    };
    let read = |path: &Path| mica_core::io::read_image(path).map_err(|e| e.to_string());
    let truth = BinaryMask::from_image_above(&read(Path::new(truth_path))?.to_gray(), 0.0);
    let pred = mica_core::LabelImage::from_image(&read(&pred_path)?)
        .map_err(|e| format!("predicted labels {}: {e}", pred_path.display()))?;
    let png = match read(Path::new(&sample.path)) {
        Ok(image) => difference_on_image_png(&image, &truth, &pred)?,
        Err(_) => difference_png(&truth, &pred.foreground())?,
    };
    Ok(format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png)
    ))
}

/// Longest side of a difference overlay in the report (larger images are subsampled).
pub const OVERLAY_MAX_SIDE: u32 = 1024;

/// PNG bytes of the difference drawn on the image (its gray values stretched from the 0.5th to
/// the 99.5th percentile): tinted red where only the prediction has foreground (false
/// positive), blue where only the truth has (missed), green where both have; the outline of
/// every predicted object in yellow, so that two cells merged into one object (or one cell split
/// in two) show even where the foreground agrees. Images longer than [`OVERLAY_MAX_SIDE`] are
/// subsampled.
///
/// # Errors
/// When the image, the truth and the prediction differ in size.
pub fn difference_on_image_png(
    image: &Image,
    truth: &BinaryMask,
    pred: &mica_core::LabelImage,
) -> Result<Vec<u8>, String> {
    let img = mica_core::render::difference_on_image(image, truth, pred, OVERLAY_MAX_SIDE)
        .map_err(|e| e.to_string())?;
    mica_core::io::encode_png(&img).map_err(|e| e.to_string())
}

/// PNG bytes of the difference image: red = predicted only, blue = truth only, green = both,
/// black = neither.
///
/// # Errors
/// When the masks differ in size.
pub fn difference_png(truth: &BinaryMask, pred: &BinaryMask) -> Result<Vec<u8>, String> {
    if (truth.width(), truth.height()) != (pred.width(), pred.height()) {
        return Err(format!(
            "truth mask is {}x{}, predicted mask {}x{}",
            truth.width(),
            truth.height(),
            pred.width(),
            pred.height()
        ));
    }
    let mut rgb = Vec::with_capacity(truth.as_slice().len() * 3);
    for (&t, &p) in truth.as_slice().iter().zip(pred.as_slice()) {
        rgb.extend_from_slice(match (t, p) {
            (true, true) => &[0, 200, 0],
            (false, true) => &[220, 0, 0],
            (true, false) => &[0, 0, 230],
            (false, false) => &[0, 0, 0],
        });
    }
    let img = Image::rgb8(truth.width(), truth.height(), rgb).map_err(|e| e.to_string())?;
    mica_core::io::encode_png(&img).map_err(|e| e.to_string())
}

fn section_classification(ctx: &mut Ctx, ev: &Evaluation) {
    ctx.body
        .push_str("<section id=\"classification\"><h2>Classification</h2>\n");
    if ev.classification.is_empty() {
        ctx.body.push_str(
            "<p class=\"note\">No classification predictions in this store.</p></section>\n",
        );
        return;
    }
    ctx.body.push_str("<p class=\"note\">An answer that names no class counts as wrong (the study's rule) and is shown in the column \"none\".</p>");
    let accuracy_ci = format!("{}_ci", Metric::Accuracy.key());
    let mut table = Table::keyed(
        "classification",
        "Classification per dataset and method",
        &[
            ("dataset", "dataset"),
            ("method", "method"),
            ("n", "n"),
            ("unparsed", "unparsed"),
            (Metric::Accuracy.key(), Metric::Accuracy.label()),
            (&accuracy_ci, "accuracy 95% CI"),
            (
                Metric::BalancedAccuracy.key(),
                Metric::BalancedAccuracy.label(),
            ),
            (Metric::MacroF1.key(), Metric::MacroF1.label()),
        ],
    );
    let mut figs = String::new();
    let mut conf_tables = Vec::new();
    for r in &ev.classification {
        let (dataset, method) = (&r.dataset, &r.method);
        let rep = &r.summary.report;
        let (acc, acc_ci) = est(&r.summary.accuracy, 3);
        table.rows.push(vec![
            Cell::text(dataset),
            Cell::text(method),
            Cell::Int(rep.n as i64),
            Cell::Int(rep.unparsed as i64),
            acc,
            acc_ci,
            Cell::Num(r.summary.balanced_accuracy.value, 3),
            Cell::Num(r.summary.macro_f1.value, 3),
        ]);
        figs.push_str(&svg::confusion_heatmap(
            &format!("{dataset}: {method}"),
            &rep.confusion.rows,
            &rep.confusion.columns,
            &rep.confusion.counts,
        ));
        let mut cols = vec!["true class".to_string()];
        cols.extend(rep.confusion.columns.iter().cloned());
        let col_refs: Vec<&str> = cols.iter().map(String::as_str).collect();
        let mut ct = Table::new(
            format!("confusion_{}_{}", slug(dataset), slug(method)),
            format!("Confusion matrix: {dataset}, {method}"),
            &col_refs,
        );
        for (row_name, row) in rep.confusion.rows.iter().zip(&rep.confusion.counts) {
            let mut cells = vec![Cell::text(row_name)];
            cells.extend(row.iter().map(|&n| Cell::Int(n as i64)));
            ct.rows.push(cells);
        }
        conf_tables.push(ct);
    }
    ctx.push_table(table);
    ctx.body
        .push_str(&format!("<div class=\"figs\">{figs}</div>"));
    for t in conf_tables {
        ctx.push_table(t);
    }
    ctx.body.push_str("</section>\n");
}
fn section_vqa(ctx: &mut Ctx, ev: &Evaluation, preds: &[&Prediction]) {
    ctx.body
        .push_str("<section id=\"vqa\"><h2>Visual question answering</h2>\n");
    // Images with an expert reference are listed even when no method answered them (e.g. no
    // model configured), so the reference is visible.
    let with_reference: Vec<(String, String)> = ctx
        .samples
        .iter()
        .filter(|(_, r)| {
            r.meta.contains_key(meta::REFERENCE_ANSWER) && !r.meta.contains_key(meta::TRUTH_SIZE_UM)
        })
        .map(|(k, _)| k.clone())
        .collect();
    if preds.is_empty() && !with_reference.is_empty() {
        ctx.body.push_str(
            "<p class=\"note\">No method answered these questions in this store (model methods run \
             when a key or server is configured); the expert's references are listed.</p>\n",
        );
    }
    if preds.is_empty() && with_reference.is_empty() {
        ctx.body
            .push_str("<p class=\"note\">No VQA answers in this store.</p></section>\n");
        return;
    }
    let methods: Vec<String> = preds
        .iter()
        .map(|p| p.key.method.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut cols = vec![
        "dataset".to_string(),
        "sample".into(),
        "question".into(),
        "reference".into(),
    ];
    cols.extend(methods.iter().cloned());
    let col_refs: Vec<&str> = cols.iter().map(String::as_str).collect();
    let mut t = Table::new(
        "vqa_answers",
        "Answers side by side with the expert's reference",
        &col_refs,
    );
    let mut rows: BTreeMap<(String, String), BTreeMap<String, String>> = BTreeMap::new();
    for k in with_reference {
        rows.entry(k).or_default();
    }
    for p in preds {
        let text = p
            .value_text
            .clone()
            .or_else(|| p.raw_answer.clone())
            .or_else(|| p.failure.clone().map(|f| format!("(failed: {f})")))
            .unwrap_or_default();
        rows.entry((p.key.dataset.clone(), p.key.sample_id.clone()))
            .or_default()
            .insert(p.key.method.clone(), text);
    }
    vqa_scored(ctx, ev, &rows);
    for ((d, s), answers) in rows {
        let rec = ctx.samples.get(&(d.clone(), s.clone()));
        let q = rec
            .and_then(|r| r.meta.get(meta::QUESTION).cloned())
            .unwrap_or_default();
        let a = rec
            .and_then(|r| r.meta.get(meta::REFERENCE_ANSWER).cloned())
            .unwrap_or_default();
        let mut cells = vec![Cell::text(d), Cell::text(s), Cell::text(q), Cell::text(a)];
        cells.extend(
            methods
                .iter()
                .map(|m| Cell::text(answers.get(m).cloned().unwrap_or_default())),
        );
        t.rows.push(cells);
    }
    ctx.push_table_folded(t);
    ctx.body.push_str("</section>\n");
}

/// The scored part of the VQA section: per model the mean expert grade and automatic scores,
/// each scorer's agreement with the expert, and per image the thumbnail, the reference and every
/// answer with its grade and fact checks. Everything comes from `Evaluation::vqa`.
fn vqa_scored(
    ctx: &mut Ctx,
    ev: &Evaluation,
    texts: &BTreeMap<(String, String), BTreeMap<String, String>>,
) {
    use mica_metrics::vqa::{
        Verdict, SCORER_FACTS_PRECISION, SCORER_FACTS_RECALL, SCORER_JUDGE, SCORER_SIMILARITY,
    };
    if ev.vqa.is_empty() {
        return;
    }
    ctx.body.push_str(
        "<p class=\"note\">Automatic scores (docs/vqa.md): <b>facts recall</b> = the share of the \
         instrument facts in the expert's reference line (scale bar, magnification, working \
         distance, EHT, stage Z, logo) that the answer states correctly, units converted; \
         <b>facts precision</b> = correct / stated. The expert's grade (0–5) is shown where the \
         answers came with one, and each automatic score's agreement with it is measured by \
         Spearman's ρ and Kendall's τ-b over the graded answers.</p>\n",
    );
    let has = |name: &str| {
        ev.vqa_scorers
            .iter()
            .any(|d| d.starts_with(&format!("{name}:")))
    };
    if !has(SCORER_SIMILARITY) {
        ctx.body.push_str(
            "<p class=\"note\">No similarity score: give <code>mica report --similarity-model DIR</code> \
             (all-MiniLM-L6-v2) to score answers by semantic similarity to the reference.</p>\n",
        );
    }
    if !has(SCORER_JUDGE) {
        ctx.body.push_str(
            "<p class=\"note\">No LLM judge: give <code>mica report --judge MODEL</code> to have a \
             language model grade each answer 0–5 against the reference.</p>\n",
        );
    }
    for d in &ev.vqa_scorers {
        ctx.body
            .push_str(&format!("<p class=\"note\"><b>{}</b></p>\n", escape(d)));
    }
    let mut summary = Table::new(
        "vqa_summary",
        "VQA per dataset and method: mean expert grade and automatic scores",
        &[
            "dataset",
            "method",
            "answers",
            "expert grade",
            "expert grade 95% CI",
            "facts recall",
            "facts recall 95% CI",
            "facts precision",
            "facts precision 95% CI",
            "similarity",
            "similarity 95% CI",
            "judge grade",
            "judge grade 95% CI",
        ],
    );
    let iv = |e: &mica_metrics::measure::Estimate| Cell::Interval(e.ci.map(|c| (c.low, c.high)), 2);
    for r in &ev.vqa {
        for m in &r.summary.models {
            let sc = |k: &str| m.scores.get(k).map(|(_, e)| *e).unwrap_or_default();
            let (rec, prec, sim, judge) = (
                sc(SCORER_FACTS_RECALL),
                sc(SCORER_FACTS_PRECISION),
                sc(SCORER_SIMILARITY),
                sc(SCORER_JUDGE),
            );
            summary.rows.push(vec![
                Cell::text(&r.dataset),
                Cell::text(&m.model),
                Cell::Int(m.answers as i64),
                Cell::Num(m.expert.value, 2),
                iv(&m.expert),
                Cell::Num(rec.value, 2),
                iv(&rec),
                Cell::Num(prec.value, 2),
                iv(&prec),
                Cell::Num(sim.value, 2),
                iv(&sim),
                Cell::Num(judge.value, 2),
                iv(&judge),
            ]);
        }
    }
    ctx.push_table(summary);
    let mut agree = Table::new(
        "vqa_agreement",
        "Agreement of each automatic score with the expert's grades",
        &[
            "dataset",
            "score",
            "answers",
            "n",
            "Spearman ρ",
            "ρ 95% CI",
            "Kendall τ-b",
            "τ 95% CI",
        ],
    );
    for r in &ev.vqa {
        for a in &r.summary.agreement {
            let ci = |c: &mica_metrics::agreement::Correlation| {
                Cell::Interval(c.ci.map(|c| (c.low, c.high)), 2)
            };
            agree.rows.push(vec![
                Cell::text(&r.dataset),
                Cell::text(a.scorer.replace('_', " ")),
                Cell::text(&a.group),
                Cell::Int(a.agreement.n as i64),
                Cell::Num(a.agreement.spearman.value, 2),
                ci(&a.agreement.spearman),
                Cell::Num(a.agreement.kendall.value, 2),
                ci(&a.agreement.kendall),
            ]);
        }
    }
    if agree.rows.is_empty() {
        ctx.body.push_str(
            "<p class=\"note\">No answer carries an expert grade: agreement not measured.</p>\n",
        );
    } else {
        ctx.body.push_str(
            "<p class=\"note\">A correlation is undefined (–) where a score or the grades are the \
             same for every answer; intervals need at least 5 answers.</p>\n",
        );
        ctx.push_table(agree);
    }

    // Per image: thumbnail, reference, answers with grade and fact checks.
    let mut per_answer = Table::new(
        "vqa_scores",
        "Every VQA answer's expert grade and automatic scores",
        &[
            "dataset",
            "sample",
            "method",
            "expert grade",
            "facts recall",
            "facts precision",
            "similarity",
            "judge grade",
            "not scored",
            "fact checks",
        ],
    );
    for r in &ev.vqa {
        let mut by_image: BTreeMap<&str, Vec<&mica_metrics::vqa::AnswerScores>> = BTreeMap::new();
        for a in &r.answers {
            by_image.entry(a.image.as_str()).or_default().push(a);
        }
        for (image, answers) in by_image {
            let rec = ctx
                .samples
                .get(&(r.dataset.clone(), image.to_string()))
                .copied();
            let reference = rec
                .and_then(|s| s.meta.get(meta::REFERENCE_ANSWER))
                .cloned()
                .unwrap_or_default();
            let thumb = rec.map(|s| thumbnail_data_uri(Path::new(&s.path)));
            let mut html = String::from("<div class=\"vqa\">");
            match thumb {
                Some(Ok(uri)) => html.push_str(&format!(
                    "<img class=\"thumb\" src=\"{uri}\" alt=\"{}\">",
                    escape(image)
                )),
                Some(Err(why)) => html.push_str(&format!(
                    "<p class=\"note\">no thumbnail: {}</p>",
                    escape(&why)
                )),
                None => {}
            }
            html.push_str(&format!(
                "<div><h4>{} · {}</h4><p class=\"ref\"><b>Expert:</b> {}</p>",
                escape(&r.dataset),
                escape(image),
                escape(&reference).replace('\n', "<br>")
            ));
            for a in &answers {
                let mut grade = a
                    .expert
                    .map(|g| format!("expert grade <b>{g}</b>/5 · "))
                    .unwrap_or_default();
                if let Some(s) = a.scores.get(SCORER_SIMILARITY) {
                    grade.push_str(&format!("similarity {s:.2} · "));
                }
                if let Some(j) = a.scores.get(SCORER_JUDGE) {
                    grade.push_str(&format!("judge <b>{j}</b>/5 · "));
                }
                for (scorer, why) in &a.failures {
                    grade.push_str(&format!(
                        "<span class=\"bad\" title=\"{}\">no {}</span> · ",
                        escape(why),
                        escape(scorer)
                    ));
                }
                let facts = match &a.facts {
                    Ok(f) => {
                        let marks: Vec<String> = f
                            .checks
                            .iter()
                            .map(|c| {
                                let (cls, sym) = match c.verdict {
                                    Verdict::Correct => ("ok", "✓"),
                                    Verdict::Wrong => ("bad", "✗"),
                                    Verdict::NotStated => ("na", "·"),
                                };
                                format!(
                                    "<span class=\"{cls}\" title=\"{}\">{sym} {}</span>",
                                    escape(&format!(
                                        "reference {}; stated: {}",
                                        c.reference,
                                        c.stated.join("; ")
                                    )),
                                    escape(c.kind.label())
                                )
                            })
                            .collect();
                        format!(
                            "facts {}/{} correct, {} wrong: {}",
                            f.correct,
                            f.checks.len(),
                            f.wrong,
                            marks.join(" ")
                        )
                    }
                    Err(why) => format!("facts not scored: {}", escape(why)),
                };
                let text = texts
                    .get(&(r.dataset.clone(), image.to_string()))
                    .and_then(|m| m.get(&a.model))
                    .map(String::as_str)
                    .unwrap_or_default();
                html.push_str(&format!(
                    "<details><summary><b>{}</b> — {grade}{facts}</summary><p>{}</p></details>",
                    escape(&a.model),
                    escape(text)
                ));
                let checks = a
                    .facts
                    .as_ref()
                    .map(|f| {
                        f.checks
                            .iter()
                            .map(|c| format!("{} {}: {:?}", c.kind.label(), c.reference, c.verdict))
                            .collect::<Vec<_>>()
                            .join(" | ")
                    })
                    .unwrap_or_else(|e| e.clone());
                per_answer.rows.push(vec![
                    Cell::text(&r.dataset),
                    Cell::text(image),
                    Cell::text(&a.model),
                    Cell::Num(a.expert, 0),
                    Cell::Num(a.scores.get(SCORER_FACTS_RECALL).copied(), 2),
                    Cell::Num(a.scores.get(SCORER_FACTS_PRECISION).copied(), 2),
                    Cell::Num(a.scores.get(SCORER_SIMILARITY).copied(), 3),
                    Cell::Num(a.scores.get(SCORER_JUDGE).copied(), 0),
                    Cell::text(
                        a.failures
                            .iter()
                            .map(|(k, v)| format!("{k}: {v}"))
                            .collect::<Vec<_>>()
                            .join(" | "),
                    ),
                    Cell::text(checks),
                ]);
            }
            html.push_str("</div></div>\n");
            ctx.body.push_str(&html);
        }
    }
    ctx.push_table_folded(per_answer);
}

/// A small PNG of an image (longest side 200 px, contrast stretched for deep images) as a data
/// URI, or why not.
fn thumbnail_data_uri(path: &Path) -> Result<String, String> {
    let img = mica_core::io::read_image(path).map_err(|e| e.to_string())?;
    let small = img
        .resize_longest(200, false, mica_core::image::ResizeFilter::Bilinear)
        .map_err(|e| e.to_string())?;
    let small = if small.bit_depth() == mica_core::BitDepth::U8 {
        small
    } else {
        small.stretch_to_u8(0.5, 99.5).map_err(|e| e.to_string())?
    };
    let png = mica_core::io::encode_png(&small).map_err(|e| e.to_string())?;
    Ok(format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png)
    ))
}

fn section_size(ctx: &mut Ctx, ev: &Evaluation) {
    ctx.body
        .push_str("<section id=\"size\"><h2>Object sizes from the scale bar</h2>\n");
    if ev.size_answers.is_empty() {
        ctx.body
            .push_str("<p class=\"note\">No size answers in this store.</p></section>\n");
        return;
    }
    ctx.body.push_str(
        "<p class=\"note\">Mean object size in µm read from the scale bar, scored against the \
         expert's size. Sizes span orders of magnitude, so besides the mean absolute error the \
         table gives the median |log10(answer / truth)| (1 = off by a factor of 10) and the fraction \
         of answers within a factor of 2. n = images with a numeric answer and a truth; missing = \
         images with a truth but no numeric answer.</p>\n",
    );
    let mae_um_ci = format!("{}_ci", Metric::MaeUm.key());
    let mut table = Table::keyed(
        "size",
        "Size error per dataset and method",
        &[
            ("dataset", "dataset"),
            ("method", "method"),
            ("n", "n"),
            ("missing", "missing"),
            (Metric::MaeUm.key(), Metric::MaeUm.label()),
            (&mae_um_ci, "MAE 95% CI"),
            (
                Metric::MedianAbsLog10Ratio.key(),
                Metric::MedianAbsLog10Ratio.label(),
            ),
            (Metric::WithinFactor2.key(), Metric::WithinFactor2.label()),
        ],
    );
    for r in &ev.size {
        let sc = &r.summary;
        let (mae, mae_ci) = est(&sc.mae_um, 3);
        table.rows.push(vec![
            Cell::text(&r.dataset),
            Cell::text(&r.method),
            Cell::Int(sc.n as i64),
            Cell::Int(sc.missing as i64),
            mae,
            mae_ci,
            Cell::Num(sc.median_abs_log10_ratio, 2),
            Cell::Num(sc.within_factor_2, 2),
        ]);
    }
    ctx.push_table(table);

    // Per image, side by side with the expert.
    let methods: Vec<&str> = ev
        .size_answers
        .iter()
        .map(|a| a.method.as_str())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut cols = vec!["dataset".to_string(), "sample".into(), "truth (µm)".into()];
    cols.extend(methods.iter().map(|m| format!("{m} (µm)")));
    let col_refs: Vec<&str> = cols.iter().map(String::as_str).collect();
    let mut t = Table::new(
        "size_answers",
        "Size answers per image next to the expert's",
        &col_refs,
    );
    // (dataset, image) → (truth, method → answer).
    type Row<'a> = (Option<f64>, BTreeMap<&'a str, Option<f64>>);
    let mut rows: BTreeMap<(&str, &str), Row> = BTreeMap::new();
    for a in &ev.size_answers {
        rows.entry((&a.dataset, &a.image))
            .or_insert((a.truth_um, BTreeMap::new()))
            .1
            .insert(&a.method, a.answer_um);
    }
    for ((d, s), (truth, answers)) in rows {
        let mut cells = vec![Cell::text(d), Cell::text(s), Cell::Num(truth, 3)];
        cells.extend(
            methods
                .iter()
                .map(|m| Cell::Num(answers.get(m).copied().flatten(), 4)),
        );
        t.rows.push(cells);
    }
    ctx.push_table(t);
    ctx.body.push_str("</section>\n");
}

fn section_failures(ctx: &mut Ctx, ev: &Evaluation) {
    ctx.body
        .push_str("<section id=\"failures\"><h2>Failures and missing answers</h2>\n");
    let mut t = Table::new(
        "failures",
        "Predictions without a value, by method and task",
        &["method", "task", "count", "reasons (count)"],
    );
    for f in &ev.failures {
        let r = f
            .reasons
            .iter()
            .map(|(r, n)| format!("{r} ({n})"))
            .collect::<Vec<_>>()
            .join("; ");
        t.rows.push(vec![
            Cell::text(&f.method),
            Cell::text(f.task.as_str()),
            Cell::Int(f.count as i64),
            Cell::text(r),
        ]);
    }
    if t.rows.is_empty() {
        ctx.body
            .push_str("<p class=\"note\">Every prediction has a value.</p>");
    }
    ctx.push_table(t);
    ctx.body.push_str("</section>\n");
}
fn section_provenance(
    ctx: &mut Ctx,
    runs: &[mica_store::RunRecord],
    preds: &[Prediction],
    store: &Path,
) {
    ctx.body
        .push_str("<section id=\"provenance\"><h2>Provenance</h2>\n");
    ctx.body.push_str(&format!(
        "<p>Results store: <code>{}</code></p>",
        escape(&store.display().to_string())
    ));
    let mut t = Table::new(
        "runs",
        "Runs",
        &[
            "run",
            "study",
            "study sha256",
            "mica version",
            "settings",
            "started (UTC)",
            "finished (UTC)",
            "wall time (s)",
        ],
    );
    for r in runs {
        t.rows.push(vec![
            Cell::Int(r.id),
            Cell::text(&r.study_name),
            Cell::text(&r.study_hash),
            Cell::text(&r.mica_version),
            Cell::text(&r.settings_json),
            Cell::text(utc(r.started_unix_s)),
            match r.finished_unix_s {
                Some(f) => Cell::text(utc(f)),
                None => Cell::text("not finished (interrupted?)"),
            },
            Cell::Num(r.finished_unix_s.map(|f| (f - r.started_unix_s) as f64), 0),
        ]);
    }
    ctx.push_table(t);
    let mut cost = Table::new(
        "cost",
        "Time, tokens and cost per method",
        &[
            "method",
            "predictions",
            "total time (s)",
            "tokens in",
            "tokens out",
            "cost (USD)",
        ],
    );
    let mut per: BTreeMap<String, (usize, f64, i64, i64, f64)> = BTreeMap::new();
    for p in preds {
        let e = per.entry(p.key.method.clone()).or_default();
        e.0 += 1;
        e.1 += p.elapsed_ms.unwrap_or(0.0) / 1e3;
        e.2 += p.tokens_in.unwrap_or(0);
        e.3 += p.tokens_out.unwrap_or(0);
        e.4 += p.cost_usd.unwrap_or(0.0);
    }
    for (m, (n, s, ti, to, c)) in per {
        cost.rows.push(vec![
            Cell::text(m),
            Cell::Int(n as i64),
            Cell::Num(Some(s), 2),
            Cell::Int(ti),
            Cell::Int(to),
            Cell::Num(Some(c), 4),
        ]);
    }
    ctx.push_table(cost);
    let mut data = Table::new(
        "samples",
        "Samples and their truth",
        &[
            "dataset",
            "sample",
            "path",
            "true count",
            "true class",
            "truth mask",
        ],
    );
    let mut recs: Vec<&&SampleRecord> = ctx.samples.values().collect();
    recs.sort_by(|a, b| (&a.dataset, &a.sample_id).cmp(&(&b.dataset, &b.sample_id)));
    for s in recs {
        data.rows.push(vec![
            Cell::text(&s.dataset),
            Cell::text(&s.sample_id),
            Cell::text(&s.path),
            Cell::Num(s.truth_count, 0),
            Cell::text(s.truth_class.clone().unwrap_or_default()),
            Cell::text(s.truth_mask.clone().unwrap_or_default()),
        ]);
    }
    // The samples table can be long: export it, show it folded.
    ctx.body
        .push_str("<details><summary>Samples and their truth</summary>");
    ctx.push_table(data);
    ctx.body.push_str("</details></section>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use mica_metrics::bootstrap::BootstrapConfig;
    use mica_store::{MethodRecord, PredictionKey, SampleRecord};

    fn report_of(store: &Store) -> Report {
        let ev = mica_study::evaluate_store(store, &BootstrapConfig::default()).unwrap();
        build(store, &ev, &ReportOptions::default()).unwrap()
    }

    #[test]
    fn wide_figures_scale_down_to_the_page_instead_of_being_cut() {
        // Every figure has a viewBox, so a width cap keeps its proportions.
        let rule = CSS
            .split('}')
            .find(|r| r.starts_with("svg.fig{"))
            .expect("a rule for figures");
        assert!(
            rule.contains("max-width:100%") && rule.contains("height:auto"),
            "{rule}"
        );
        let classes: Vec<String> = (0..40).map(|i| format!("class {i}")).collect();
        let counts = vec![vec![1; 40]; 40];
        let svg = svg::confusion_heatmap("t", &classes, &classes, &counts);
        assert!(svg.contains("viewBox=\"0 0 ") && svg.contains("class=\"fig\""));
    }

    #[test]
    fn model_text_is_escaped_everywhere() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("r.sqlite")).unwrap();
        let mut store = store;
        store
            .upsert_samples(&[SampleRecord {
                dataset: "d".into(),
                sample_id: "<img src=x onerror=alert(1)>".into(),
                path: "p".into(),
                truth_count: Some(3.0),
                truth_class: Some("A".into()),
                truth_mask: None,
                meta: Default::default(),
            }])
            .unwrap();
        store
            .upsert_method(&MethodRecord {
                name: "m<script>".into(),
                kind: "imported".into(),
                settings_json: "{\"x\":\"</script>\"}".into(),
                skipped_reason: None,
                settings_hash: String::new(),
                effective_json: String::new(),
            })
            .unwrap();
        for task in ["count", "classify", "vqa"] {
            let key = PredictionKey::new("d", "<img src=x onerror=alert(1)>", task, "m<script>");
            let mut p = Prediction::ok(key, 1);
            p.raw_answer = Some("<script>alert('pwned')</script> Count: 4".into());
            p.value_num = Some(4.0);
            p.value_text = Some("<script>alert(2)</script>".into());
            p.failure = Some("<b>bad</b>".into());
            store.insert_prediction(&p, &[]).unwrap();
        }
        let r = report_of(&store);
        assert!(!r.html.contains("<script"), "unescaped script tag");
        assert!(!r.html.contains("<img src=x"), "unescaped img tag");
        assert!(!r.html.contains("<b>bad"));
        assert!(r.html.contains("&lt;script&gt;alert("));
        let out = r.write(dir.path()).unwrap();
        assert!(out.is_file());
        assert!(dir.path().join("tables/counting.csv").is_file());
    }

    #[test]
    fn object_sizes_are_in_pixels_and_in_microns_only_where_the_image_states_its_pixel_size() {
        use mica_core::calibration::PixelSize;
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("r.sqlite")).unwrap();
        // Two objects of 16 and 4 px in each prediction.
        let mut data = vec![0u32; 100];
        for (x, y) in (0..4).flat_map(|x| (0..4).map(move |y| (x, y))) {
            data[y * 10 + x] = 1;
        }
        for (x, y) in [(7, 7), (8, 7), (7, 8), (8, 8)] {
            data[y * 10 + x] = 2;
        }
        let labels = mica_core::LabelImage::new(10, 10, data).unwrap();
        // One image calibrated at 0.5 µm (ImageJ metadata, as Fiji writes), one with none.
        let calibrated = dir.path().join("calibrated.tif");
        let plain = dir.path().join("plain.png");
        mica_core::io::write_label_tiff_calibrated(
            &calibrated,
            &labels,
            Some(&PixelSize::user(0.5).unwrap()),
        )
        .unwrap();
        mica_core::io::write_png(
            &plain,
            &mica_core::Image::gray8(10, 10, vec![0; 100]).unwrap(),
        )
        .unwrap();
        let mut samples = Vec::new();
        for (i, image) in [&calibrated, &plain].into_iter().enumerate() {
            samples.push(SampleRecord {
                dataset: "d".into(),
                sample_id: format!("s{i}"),
                path: image.display().to_string(),
                truth_count: None,
                truth_class: None,
                truth_mask: None,
                meta: Default::default(),
            });
        }
        store.upsert_samples(&samples).unwrap();
        for i in 0..2 {
            let file = dir.path().join(format!("pred{i}_labels.tif"));
            mica_core::io::write_label_tiff(&file, &labels).unwrap();
            let mut p = Prediction::ok(PredictionKey::new("d", format!("s{i}"), "segment", "m"), 1);
            p.mask = Some(mica_store::MaskFile {
                path: file.display().to_string(),
                sha256: mica_store::sha256_hex(&std::fs::read(&file).unwrap()),
            });
            store.insert_prediction(&p, &[]).unwrap();
        }
        let r = report_of(&store);
        let t = r
            .tables
            .iter()
            .find(|t| t.id == "object_sizes")
            .expect("an object size table")
            .to_json();
        let row = &t[0];
        assert_eq!(row["images"], 2);
        assert_eq!(row["objects"], 4);
        assert_eq!(row["median_area_px"].as_f64(), Some(10.0));
        assert_eq!(row["calibrated_images"], 1);
        assert_eq!(row["calibration"], "imagej");
        assert_eq!(row["pixel_size_um"], "0.5000");
        // Only the calibrated image's objects: 16 and 4 px of 0.25 µm².
        assert_eq!(row["median_area_um2"].as_f64(), Some(2.5));
        let d = row["median_equivalent_diameter_um"].as_f64().unwrap();
        let want = 0.5
            * ((16.0f64 * 4.0 / std::f64::consts::PI).sqrt()
                + (4.0f64 * 4.0 / std::f64::consts::PI).sqrt())
            / 2.0;
        assert!((d - want).abs() < 1e-3, "{d} vs {want}");
        assert!(r
            .html
            .contains("the µm columns count only the images whose file states"));
    }

    #[test]
    fn stored_count_that_is_not_a_count_is_missing_not_scored() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("r.sqlite")).unwrap();
        let samples: Vec<SampleRecord> = ["a", "b"]
            .iter()
            .map(|id| SampleRecord {
                dataset: "d".into(),
                sample_id: id.to_string(),
                path: "p".into(),
                truth_count: Some(4.0),
                truth_class: None,
                truth_mask: None,
                meta: Default::default(),
            })
            .collect();
        store.upsert_samples(&samples).unwrap();
        for (id, v) in [("a", 4.0), ("b", 3.7)] {
            let mut p = Prediction::ok(PredictionKey::new("d", id, "count", "m"), 1);
            p.value_num = Some(v);
            store.insert_prediction(&p, &[]).unwrap();
        }
        let r = report_of(&store);
        let t = r.tables.iter().find(|t| t.id == "counting").unwrap();
        let json = t.to_json();
        let row = &json[0];
        assert_eq!(
            (row["n"].as_i64(), row["missing"].as_i64()),
            (Some(1), Some(1)),
            "{row}"
        );
        assert_eq!(row["mae"].as_f64(), Some(0.0));
        assert!(
            r.warnings.iter().any(|w| w.contains("3.7")),
            "the unreadable value is named: {:?}",
            r.warnings
        );
    }

    #[test]
    fn first_screen_ranks_methods_and_says_whether_the_best_beats_the_runner_up() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("r.sqlite")).unwrap();
        let samples: Vec<SampleRecord> = (0..8)
            .map(|i| SampleRecord {
                dataset: "d".into(),
                sample_id: format!("s{i}"),
                path: "p".into(),
                truth_count: Some(10.0 + i as f64),
                truth_class: None,
                truth_mask: None,
                meta: Default::default(),
            })
            .collect();
        store.upsert_samples(&samples).unwrap();
        for i in 0..8 {
            for (m, err) in [("close", (i % 2) as f64), ("far", 6.0 + (i % 3) as f64)] {
                let mut p = Prediction::ok(PredictionKey::new("d", format!("s{i}"), "count", m), 1);
                p.value_num = Some(10.0 + i as f64 + err);
                store.insert_prediction(&p, &[]).unwrap();
            }
        }
        let r = report_of(&store);
        let summary = r.html.find("id=\"summary\"").expect("a summary section");
        assert!(
            summary < r.html.find("id=\"methods\"").unwrap(),
            "summary first"
        );
        assert!(r.html.contains("Best: <b>close</b>"), "the best named");
        assert!(r.html.contains("beyond resampling noise"), "the verdict");
        let t = r
            .tables
            .iter()
            .find(|t| t.id == "summary")
            .unwrap()
            .to_json();
        assert_eq!(t[0]["method"], "close");
        assert_eq!(t[0]["rank"], 1);
        assert_eq!(t[0]["metric"], "mae");
        assert_eq!(t[0]["value"].as_f64(), Some(0.5));
        assert_eq!(t[1]["method"], "far");
        // Image by image, truth and both predictions.
        let per = r
            .tables
            .iter()
            .find(|t| t.id == "counting_per_image")
            .unwrap()
            .to_json();
        assert_eq!(per.as_array().unwrap().len(), 8);
        assert_eq!(
            (per[1]["image"].as_str(), per[1]["truth"].as_f64()),
            (Some("s1"), Some(11.0))
        );
        assert_eq!(
            (per[1]["close"].as_f64(), per[1]["far"].as_f64()),
            (Some(12.0), Some(18.0))
        );
    }

    #[test]
    fn summary_draws_every_methods_error_on_every_dataset_in_one_figure() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("r.sqlite")).unwrap();
        // Two datasets whose errors differ a hundredfold; "a" is best on the first, "b" on the
        // second; "c" ran only on the second.
        let (mut samples, mut preds) = (Vec::new(), Vec::new());
        for (d, scale) in [("nuclei", 1.0), ("fibres", 100.0)] {
            for i in 0..6 {
                samples.push(SampleRecord {
                    dataset: d.into(),
                    sample_id: format!("s{i}"),
                    path: format!("{d}/{i}"),
                    truth_count: Some(1000.0),
                    truth_class: None,
                    truth_mask: None,
                    meta: Default::default(),
                });
                let errs: &[(&str, f64)] = if d == "nuclei" {
                    &[("a", 1.0), ("b", 3.0)]
                } else {
                    &[("a", 4.0), ("b", 2.0), ("c", 5.0)]
                };
                for &(m, e) in errs {
                    let mut p =
                        Prediction::ok(PredictionKey::new(d, format!("s{i}"), "count", m), 1);
                    p.value_num = Some(1000.0 + e * scale);
                    preds.push(p);
                }
            }
        }
        store.upsert_samples(&samples).unwrap();
        for p in &preds {
            store.insert_prediction(p, &[]).unwrap();
        }
        let r = report_of(&store);
        let at = r
            .html
            .find("by method and dataset")
            .expect("the across-datasets figure");
        let summary = r.html.find("id=\"summary\"").unwrap();
        let first_dataset = r.html.find("<h3>nuclei: count").unwrap();
        assert!(summary < at && at < first_dataset, "it opens the summary");
        let fig = &r.html[at..at + r.html[at..].find("</svg>").unwrap()];
        for label in [">nuclei<", ">fibres<", ">a<", ">b<", ">c<"] {
            assert!(fig.contains(label), "{label} in the figure");
        }
        // Values on each dataset's scale, the best of each bold, "c" missing on nuclei.
        assert!(
            fig.contains("font-weight=\"700\">1.000<"),
            "a best on nuclei"
        );
        assert!(
            fig.contains("font-weight=\"700\">200.0<"),
            "b best on fibres"
        );
        assert!(
            fig.contains(">500.0<") && fig.contains(">–<"),
            "c on fibres only"
        );
        assert!(
            fig.contains("a on nuclei: 1.000"),
            "hover text names method and dataset"
        );
    }

    #[test]
    fn report_shows_the_numbers_of_the_evaluation_it_is_given() {
        // An evaluation that is not the store's: the report renders it, recomputing nothing.
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("r.sqlite")).unwrap();
        store
            .upsert_samples(&[SampleRecord {
                dataset: "d".into(),
                sample_id: "a".into(),
                path: "p".into(),
                truth_count: Some(4.0),
                truth_class: None,
                truth_mask: None,
                meta: Default::default(),
            }])
            .unwrap();
        let mut p = Prediction::ok(PredictionKey::new("d", "a", "count", "m"), 1);
        p.value_num = Some(4.0);
        store.insert_prediction(&p, &[]).unwrap();
        let mut ev = mica_study::evaluate_store(&store, &BootstrapConfig::default()).unwrap();
        ev.counting[0].summary.scores.mae = Some(123.25);
        let r = build(&store, &ev, &ReportOptions::default()).unwrap();
        let t = r.tables.iter().find(|t| t.id == "counting").unwrap();
        assert_eq!(t.to_json()[0]["mae"].as_f64(), Some(123.25));
        let json: serde_json::Value = serde_json::from_str(&r.evaluation_json).unwrap();
        assert_eq!(json["counting"][0]["summary"]["scores"]["mae"], 123.25);
    }

    #[test]
    fn run_times_read_as_utc_dates() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(1_445_412_480), "2015-10-21T07:28:00Z");
        assert_eq!(utc(1_772_323_200), "2026-03-01T00:00:00Z");
        assert_eq!(utc(1_709_164_800), "2024-02-29T00:00:00Z");
    }

    #[test]
    fn difference_colours() {
        let t = BinaryMask::new(3, 1, vec![true, true, false]).unwrap();
        let p = BinaryMask::new(3, 1, vec![false, true, true]).unwrap();
        let png = difference_png(&t, &p).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.png");
        std::fs::write(&path, png).unwrap();
        let img = mica_core::io::read_image(&path).unwrap();
        let mica_core::Pixels::U8(v) = img.pixels() else {
            panic!("8-bit expected")
        };
        assert_eq!(v.as_slice(), &[0, 0, 230, 0, 200, 0, 220, 0, 0]);
    }

    /// Two true cells that the prediction merged into one object: the foreground agrees (no
    /// red, no blue), but the yellow outline goes round one object, not two; and a missed and a
    /// false pixel are tinted over the image's gray.
    #[test]
    fn difference_on_the_image_outlines_merged_cells() {
        // 8 x 5: gray ramp; truth: cells at x 1..=2 and 4..=5 (rows 1..=3), pred: one object
        // x 1..=5 rows 1..=3 plus a false pixel (7, 0); truth pixel (0, 4) missed.
        let (w, h) = (8u32, 5u32);
        let gray: Vec<u8> = (0..w * h).map(|i| (i * 6) as u8).collect();
        let image = Image::gray8(w, h, gray).unwrap();
        let mut t = vec![false; (w * h) as usize];
        let mut l = vec![0u32; (w * h) as usize];
        for y in 1..=3 {
            for x in [1, 2, 4, 5] {
                t[(y * w + x) as usize] = true;
            }
            for x in 1..=5 {
                l[(y * w + x) as usize] = 1;
            }
        }
        t[(4 * w) as usize] = true;
        l[7] = 2;
        let truth = BinaryMask::new(w, h, t).unwrap();
        let pred = mica_core::LabelImage::new(w, h, l).unwrap();
        let png = difference_on_image_png(&image, &truth, &pred).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.png");
        std::fs::write(&path, png).unwrap();
        let img = mica_core::io::read_image(&path).unwrap();
        let mica_core::Pixels::U8(v) = img.pixels() else {
            panic!("8-bit expected")
        };
        let px = |x: u32, y: u32| {
            let i = ((y * w + x) * 3) as usize;
            [v[i], v[i + 1], v[i + 2]]
        };
        let yellow = [255, 220, 0];
        // The merged object's outline, including over the gap between the true cells.
        assert_eq!(px(1, 1), yellow);
        assert_eq!(px(3, 1), yellow);
        // Its inside: both (green tint: green above red and blue).
        let inside = px(2, 2);
        assert!(inside[1] > inside[0] && inside[1] > inside[2], "{inside:?}");
        // The gap pixel inside the object is predicted only: red.
        let gap = px(3, 2);
        assert!(gap[0] > gap[1] && gap[0] > gap[2], "{gap:?}");
        // A lone false pixel is its own outline; the missed pixel is blue; background is gray.
        assert_eq!(px(7, 0), yellow);
        let missed = px(0, 4);
        assert!(missed[2] > missed[0] && missed[2] > missed[1], "{missed:?}");
        let bg = px(6, 3);
        assert!(bg[0] == bg[1] && bg[1] == bg[2], "{bg:?}");
        assert!(difference_on_image_png(&image.crop(0, 0, 4, 4).unwrap(), &truth, &pred).is_err());
    }
}
