//! `mica eval vqa`: free-text answers scored against the expert's references, and each
//! automatic scorer's agreement with the expert's grades (issue #19).
//!
//! The scoring and every summary live in `mica_metrics::vqa`; this reads the files, matches
//! answers to references and prints.

use super::eval::BootstrapArgs;
use super::Ctx;
use anyhow::{bail, Context};
use mica_core::text::{csv_safe, terminal_safe};
use mica_metrics::vqa::{self, AnswerScores, GradedAnswer, VqaSummary};
use serde::Serialize;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct VqaArgs {
    /// Answers: CSV or spreadsheet with an image column, a model column and an answer column
    /// (one row per answer).
    #[arg(long, value_name = "FILE")]
    pub answers: PathBuf,
    /// References: CSV or spreadsheet with an image column and the expert's reference text
    /// (whose instrument line, e.g. `Scale bar = 100 µm, Magnification = 250 X, EHT = 3.00 kV`,
    /// the facts scorer checks answers against).
    #[arg(long, value_name = "FILE")]
    pub reference: PathBuf,
    /// Column of the answers file with the expert's grade of each answer; with it, each
    /// scorer's agreement with the expert is measured (Spearman ρ, Kendall τ-b).
    #[arg(long, value_name = "NAME")]
    pub expert_score_column: Option<String>,
    /// Image column in both files (default: `image`, `filename` or `file`, else the first
    /// column).
    #[arg(long, value_name = "NAME")]
    pub image_column: Option<String>,
    /// Model column of the answers file.
    #[arg(long, value_name = "NAME", default_value = "model")]
    pub model_column: String,
    /// Answer column of the answers file.
    #[arg(long, value_name = "NAME", default_value = "answer")]
    pub answer_column: String,
    /// Reference column (default: `reference`, or the only column besides the image).
    #[arg(long, value_name = "NAME")]
    pub reference_column: Option<String>,
    #[command(flatten)]
    pub similarity: super::similarity::SimilarityArgs,
    /// Also write every answer's scores and fact checks to this CSV.
    #[arg(long, value_name = "FILE.csv")]
    pub out: Option<PathBuf>,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub bootstrap: BootstrapArgs,
    #[command(flatten)]
    pub judge: super::judge::JudgeArgs,
}

#[derive(Serialize)]
struct Output<'a> {
    answers_file: String,
    reference_file: String,
    answers: &'a [AnswerScores],
    summary: &'a VqaSummary,
    /// What computed each external score (model, weights hash, rubric, settings).
    scorers: &'a [String],
    notes: &'a [String],
}

fn image_column(t: &mica_core::dataset::Table, want: Option<&str>) -> anyhow::Result<usize> {
    Ok(match want {
        Some(c) => t.require_column(&[c])?,
        None => t.column(&["image", "filename", "file"]).unwrap_or(0),
    })
}

/// The references of a file, matched to answers' image keys by the project's one name rule
/// ([`mica_core::dataset::NameIndex`]: path, then file name, then name without extension).
struct References {
    texts: Vec<String>,
    index: mica_core::dataset::NameIndex,
}

impl References {
    fn read(path: &Path, args: &VqaArgs) -> anyhow::Result<References> {
        let t = mica_study::data::read_any_table(path)
            .with_context(|| format!("cannot read the references {}", path.display()))?;
        let img = image_column(&t, args.image_column.as_deref())?;
        let col = match &args.reference_column {
            Some(c) => t.require_column(&[c.as_str()])?,
            None => match t.column(&["reference"]) {
                Some(c) => c,
                None if t.header.len() == 2 => 1 - img,
                None => bail!(
                    "{}: no column named reference (columns: {}); name it with --reference-column",
                    path.display(),
                    t.header.join(", ")
                ),
            },
        };
        let mut keys: Vec<String> = Vec::new();
        let mut seen = HashSet::new();
        let mut texts = Vec::new();
        for (line, row) in &t.rows {
            let key = mica_core::dataset::normalise_key(&row[img]);
            if key.is_empty() || row[col].trim().is_empty() {
                continue;
            }
            if !seen.insert(key.clone()) {
                bail!(
                    "{}:{line}: a second reference for image {key:?}",
                    path.display()
                );
            }
            keys.push(key);
            texts.push(row[col].clone());
        }
        if keys.is_empty() {
            bail!("{}: no reference in the file", path.display());
        }
        let index = mica_core::dataset::NameIndex::new(keys.iter().map(String::as_str));
        Ok(References { texts, index })
    }

    /// The reference of `image`, `None` when there is none, or why the key is ambiguous.
    fn find(&self, image: &str) -> Result<Option<&str>, String> {
        use mica_core::dataset::Lookup;
        match self.index.find(image) {
            Lookup::One(i) => Ok(Some(&self.texts[i])),
            Lookup::Missing => Ok(None),
            Lookup::Ambiguous(hits) => Err(self.index.ambiguity(image, &hits)),
        }
    }
}

pub fn run(args: &VqaArgs, ctx: &Ctx) -> anyhow::Result<i32> {
    let config = args.bootstrap.config()?;
    let refs = References::read(&args.reference, args)?;
    let t = mica_study::data::read_any_table(&args.answers)
        .with_context(|| format!("cannot read the answers {}", args.answers.display()))?;
    let file = args.answers.display().to_string();
    let img = image_column(&t, args.image_column.as_deref())?;
    let model = t.require_column(&[args.model_column.as_str()])?;
    let answer = t.require_column(&[args.answer_column.as_str()])?;
    let grade = match &args.expert_score_column {
        Some(c) => Some(t.require_column(&[c.as_str()])?),
        None => None,
    };
    let mut notes = Vec::new();
    let mut scored = Vec::new();
    // (index into `scored`, answer, reference) of the answers that have a reference.
    let mut pairs: Vec<(usize, String, String)> = Vec::new();
    for (line, row) in &t.rows {
        let image = row[img].trim();
        if image.is_empty() {
            continue;
        }
        let at = format!("{file}:{line}");
        let expert = match grade.map(|g| row[g].trim()) {
            None | Some("") => None,
            Some(g) => match g.parse::<f64>() {
                Ok(v) if v.is_finite() => Some(v),
                _ => {
                    notes.push(format!(
                        "{at}: expert score {g:?} is not a number; the answer is scored without a grade"
                    ));
                    None
                }
            },
        };
        let a = GradedAnswer {
            image: image.to_string(),
            model: row[model].trim().to_string(),
            answer: row[answer].clone(),
            expert,
        };
        if a.answer.trim().is_empty() {
            notes.push(format!(
                "{at}: empty answer of {:?} for {image:?}: scored as stating nothing",
                a.model
            ));
        }
        let reference = match refs.find(image) {
            Ok(r) => r,
            Err(why) => {
                notes.push(format!("{at}: {why}; not scored"));
                continue;
            }
        };
        if let Some(r) = reference {
            pairs.push((scored.len(), a.answer.clone(), r.to_string()));
        }
        let s = vqa::score_answer(&a, reference);
        if let Err(why) = &s.facts {
            notes.push(format!("{at}: facts not scored: {why}"));
        }
        scored.push(s);
    }
    if scored.is_empty() {
        bail!("{file}: no answer could be scored");
    }
    let mut scorers: Vec<Box<dyn vqa::AnswerScorer>> = Vec::new();
    if let Some(s) = args.similarity.load(ctx.quiet)? {
        scorers.push(s);
    }
    let judge = args.judge.load()?;
    let p: Vec<(usize, &str, &str)> = pairs
        .iter()
        .map(|(i, a, r)| (*i, a.as_str(), r.as_str()))
        .collect();
    let mut described = Vec::new();
    let mut failed = 0usize;
    for scorer in scorers
        .iter()
        .map(|s| s.as_ref())
        .chain(judge.as_ref().map(|j| j as &dyn vqa::AnswerScorer))
    {
        vqa::add_external_scores(&mut scored, &p, scorer).map_err(anyhow::Error::msg)?;
        described.push(scorer.describe());
        // One note per reason: a judge that stopped says so once, not once per answer.
        let mut by_reason: Vec<(&str, Vec<&AnswerScores>)> = Vec::new();
        for s in &scored {
            if let Some(why) = s.failures.get(scorer.name()) {
                match by_reason.iter_mut().find(|(w, _)| *w == why.as_str()) {
                    Some((_, v)) => v.push(s),
                    None => by_reason.push((why, vec![s])),
                }
            }
        }
        for (why, answers) in by_reason {
            failed += answers.len();
            notes.push(match answers.as_slice() {
                [s] => format!(
                    "{} gave no value for {:?}'s answer on {:?}: {why}",
                    scorer.name(),
                    s.model,
                    s.image
                ),
                [s, ..] => format!(
                    "{} gave no value for {} answers ({:?}'s on {:?} and {} more): {why}",
                    scorer.name(),
                    answers.len(),
                    s.model,
                    s.image,
                    answers.len() - 1
                ),
                [] => continue,
            });
        }
        if pairs.len() < scored.len() {
            notes.push(format!(
                "{} answers without a reference have no {}",
                scored.len() - pairs.len(),
                scorer.name()
            ));
        }
    }
    if let Some(j) = &judge {
        notes.push(super::judge::spending(j));
    }
    let summary = vqa::summarise(&scored, &config)?;
    if let Some(out) = &args.out {
        write_scores(out, &scored)?;
    }
    if args.json {
        let o = Output {
            answers_file: file.clone(),
            reference_file: args.reference.display().to_string(),
            answers: &scored,
            summary: &summary,
            scorers: &described,
            notes: &notes,
        };
        println!("{}", serde_json::to_string_pretty(&o)?);
    } else {
        print_summary(&file, &scored, &summary);
        for d in &described {
            println!("{}", terminal_safe(d));
        }
    }
    if !ctx.quiet {
        for n in &notes {
            eprintln!("note: {}", terminal_safe(n));
        }
    }
    // An answer a scorer could not score is a partial failure (each named above).
    Ok(if failed > 0 {
        crate::exit::PARTIAL
    } else {
        crate::exit::SUCCESS
    })
}

fn fmt_est(e: &mica_metrics::measure::Estimate) -> String {
    match (e.value, e.ci) {
        (Some(v), Some(ci)) => format!("{v:.2} [{:.2}, {:.2}]", ci.low, ci.high),
        (Some(v), None) => format!("{v:.2}"),
        _ => "-".into(),
    }
}

fn fmt_corr(c: &mica_metrics::agreement::Correlation) -> String {
    match (c.value, c.ci) {
        (Some(v), Some(ci)) => format!("{v:+.2} [{:+.2}, {:+.2}]", ci.low, ci.high),
        (Some(v), None) => format!("{v:+.2} (too few for an interval)"),
        _ => "undefined (a constant variable)".into(),
    }
}

fn print_summary(file: &str, scored: &[AnswerScores], s: &VqaSummary) {
    let images: std::collections::BTreeSet<&str> =
        scored.iter().map(|a| a.image.as_str()).collect();
    println!(
        "{file}: {} answers scored, {} images, {} models",
        scored.len(),
        images.len(),
        s.models.len()
    );
    let scorers: Vec<&String> = s
        .models
        .first()
        .map(|m| m.scores.keys().collect())
        .unwrap_or_default();
    let mut head = format!("{:<24} {:>7}  {:<20}", "model", "answers", "expert grade");
    for sc in &scorers {
        head.push_str(&format!("  {sc:<20}"));
    }
    println!("{head}");
    for m in &s.models {
        let mut line = format!(
            "{:<24} {:>7}  {:<20}",
            terminal_safe(&m.model),
            m.answers,
            fmt_est(&m.expert)
        );
        for sc in &scorers {
            let cell = m
                .scores
                .get(*sc)
                .map(|(_, e)| fmt_est(e))
                .unwrap_or_default();
            line.push_str(&format!("  {cell:<20}"));
        }
        println!("{line}");
    }
    if s.agreement.is_empty() {
        println!("no expert grades (--expert-score-column): agreement not measured");
        return;
    }
    println!("agreement with the expert's grades (95 % bootstrap intervals over answers):");
    println!(
        "{:<16} {:<24} {:>3}  {:<30} {:<30}",
        "scorer", "answers", "n", "Spearman rho", "Kendall tau-b"
    );
    for a in &s.agreement {
        println!(
            "{:<16} {:<24} {:>3}  {:<30} {:<30}",
            a.scorer,
            terminal_safe(&a.group),
            a.agreement.n,
            fmt_corr(&a.agreement.spearman),
            fmt_corr(&a.agreement.kendall)
        );
    }
}

/// Per-answer CSV: image, model, expert, each fact's verdict, the scores.
fn write_scores(path: &Path, scored: &[AnswerScores]) -> anyhow::Result<()> {
    let mut w =
        csv::Writer::from_path(path).with_context(|| format!("cannot write {}", path.display()))?;
    let mut head = vec!["image".to_string(), "model".into(), "expert_score".into()];
    head.extend(
        [
            vqa::SCORER_FACTS_RECALL,
            vqa::SCORER_FACTS_PRECISION,
            vqa::SCORER_SIMILARITY,
            vqa::SCORER_JUDGE,
            "facts_correct",
            "facts_wrong",
            "facts_reference",
            "fact_checks",
            "not_scored",
        ]
        .map(String::from),
    );
    w.write_record(&head)?;
    let f = |v: Option<f64>| v.map(|v| format!("{v}")).unwrap_or_default();
    for s in scored {
        let (correct, wrong, n, checks): (String, String, String, String) = match &s.facts {
            Ok(fs) => (
                fs.correct.to_string(),
                fs.wrong.to_string(),
                fs.checks.len().to_string(),
                fs.checks
                    .iter()
                    .map(|c| {
                        format!(
                            "{} {}: {:?}{}",
                            c.kind.label(),
                            c.reference,
                            c.verdict,
                            if c.stated.is_empty() {
                                String::new()
                            } else {
                                format!(" ({})", c.stated.join("; "))
                            }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(" | "),
            ),
            Err(_) => Default::default(),
        };
        let row = [
            s.image.clone(),
            s.model.clone(),
            f(s.expert),
            f(s.scores.get(vqa::SCORER_FACTS_RECALL).copied()),
            f(s.scores.get(vqa::SCORER_FACTS_PRECISION).copied()),
            f(s.scores.get(vqa::SCORER_SIMILARITY).copied()),
            f(s.scores.get(vqa::SCORER_JUDGE).copied()),
            correct,
            wrong,
            n,
            checks,
            s.facts
                .as_ref()
                .err()
                .cloned()
                .into_iter()
                .chain(s.failures.iter().map(|(k, v)| format!("{k}: {v}")))
                .collect::<Vec<_>>()
                .join(" | "),
        ];
        w.write_record(row.iter().map(|c| csv_safe(c).into_owned()))?;
    }
    w.flush()?;
    Ok(())
}
