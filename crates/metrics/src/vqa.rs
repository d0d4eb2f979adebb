//! Scoring free-text descriptions of SEM images against the expert's reference: the
//! *instrument facts* scorer.
//!
//! The study's expert ends each VQA-T1 reference with the instrument line printed under the image,
//! e.g. `Scale bar = 100 µm, Magnification = 250 X, WD = NaN, EHT = 3.00 kV, Stage Z = 48.000 mm,
//! Logo = Zeiss.` Reading that bar is a task with a right answer, so an answer can be checked fact
//! by fact.
//!
//! # Reference facts
//! The instrument line is the line of the reference holding at least two `key = value` pairs with
//! known keys (case-insensitive): `scale bar` (a length), `magnification` / `mag` (`250 X`,
//! `2.50 kX`), `WD` / `working distance` (a length), `EHT` / `voltage` (`3.00 kV`, `500 V`),
//! `stage z` (a length), `logo`, `detector` / `signal` (names). A value `NaN`, `-` or empty is
//! unknown: not a fact. A reference without such a line, or with a value that does not read as
//! its kind, is an error naming the pair.
//!
//! # Facts an answer states
//! Numbers are read as in [`crate::parse`] (thousands groups `234,190` are one number), then by
//! the unit that follows:
//! - `kV`, `V`, `kilovolt(s)`, `volt(s)` → EHT;
//! - `x`, `X`, `×` (glued or spaced), `kX` (× 1000), `times` → magnification; a bare number right
//!   after the word "magnification" (`a magnification of 50,000`) also;
//! - a length (`nm`, `µm`/`um`/`micron(s)`, `mm`/`millimetre(s)`) → the kind named by the nearest
//!   keyword before it in the same sentence and within 80 characters: `scale` (scale bar),
//!   `working distance` / `WD`, `stage` / `Z =` (stage Z). A length whose nearest keyword names
//!   another quantity (`size`, `width`, `length`, `diameter`, `aperture`, `thick…`, `field of
//!   view`: `aperture size (30.00 µm)`) or that has no keyword is not a stated fact.
//!
//! A number with one comma group and no point (`47,000 mm`) reads both ways: thousands
//! separator (47000) and decimal comma (47.000); it agrees with the reference if either does.
//!
//! Names (logo, detector) are stated when the reference's name appears in the answer, compared
//! without case, spaces and hyphens (`InLens` = `In-Lens`). For the logo, an answer that names
//! another maker or lab from [`KNOWN_LOGOS`] and not the reference's states a wrong logo.
//!
//! # Verdicts and scores
//! A reference fact is *correct* when the answer states it and every value it states for that
//! kind agrees with the reference to the precision of the less precisely written of the two
//! (half its last digit, after units: `48,000 µm` = `48.000 mm`, `10.00 kX` = `10000 X`,
//! `10 kV` = `10.00 kV`, but `47.58 mm` ≠ `47.957 mm` and `249.19 kX` ≠ `234190 X`), *wrong* when
//! it states it with a value that does not agree, and *not stated* otherwise. Recall = correct / reference facts; precision = correct / (correct + wrong),
//! undefined when the answer states none. Facts an answer states that the reference does not have
//! (a working distance where the reference says `WD = NaN`) cannot be judged and are ignored.

use crate::parse::{all_number_tokens, length_unit};
use serde::Serialize;
use std::fmt;

/// A kind of instrument fact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FactKind {
    ScaleBar,
    Magnification,
    WorkingDistance,
    Eht,
    StageZ,
    Logo,
    Detector,
}

impl FactKind {
    pub const ALL: [FactKind; 7] = [
        FactKind::ScaleBar,
        FactKind::Magnification,
        FactKind::WorkingDistance,
        FactKind::Eht,
        FactKind::StageZ,
        FactKind::Logo,
        FactKind::Detector,
    ];

    /// Name as in the instrument line.
    pub fn label(self) -> &'static str {
        match self {
            FactKind::ScaleBar => "scale bar",
            FactKind::Magnification => "magnification",
            FactKind::WorkingDistance => "WD",
            FactKind::Eht => "EHT",
            FactKind::StageZ => "stage Z",
            FactKind::Logo => "logo",
            FactKind::Detector => "detector",
        }
    }

    fn of_key(key: &str) -> Option<FactKind> {
        let k: String = key
            .to_lowercase()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        Some(match k.as_str() {
            "scale bar" | "scalebar" | "scale" => FactKind::ScaleBar,
            "magnification" | "mag" => FactKind::Magnification,
            "wd" | "working distance" => FactKind::WorkingDistance,
            "eht" | "voltage" | "accelerating voltage" | "hv" => FactKind::Eht,
            "stage z" => FactKind::StageZ,
            "logo" => FactKind::Logo,
            "detector" | "signal" | "signal a" => FactKind::Detector,
            _ => return None,
        })
    }

    fn is_name(self) -> bool {
        matches!(self, FactKind::Logo | FactKind::Detector)
    }
}

/// The value of a fact: a quantity (lengths in µm, voltages in V, magnification as a factor) or a
/// name.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum FactValue {
    Quantity(f64),
    Name(String),
}

/// One fact of a reference line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fact {
    pub kind: FactKind,
    pub value: FactValue,
    /// The precision it is written to, in the value's unit (`3.00 kV`: 10 V); `None` for names.
    pub step: Option<f64>,
    /// As written (`100 µm`).
    pub text: String,
}

/// A numeric fact an answer states (µm, V or a factor, as [`FactValue::Quantity`]), with the
/// text it was read from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stated {
    pub kind: FactKind,
    pub value: f64,
    /// The other reading of a number with one comma group and no point (`47,000 mm`: 47000 mm
    /// with a thousands separator, 47.000 mm with a decimal comma); the fact agrees if either
    /// reading does.
    pub alternative: Option<(f64, f64)>,
    /// The precision it is written to (see [`Fact::step`]).
    pub step: f64,
    pub text: String,
}

/// Makers and labs whose logo appears on SEM images of the NFFA-Europe set.
pub const KNOWN_LOGOS: [&str; 12] = [
    "zeiss", "fei", "jeol", "hitachi", "tescan", "thermo", "leica", "phenom", "iom", "tasc", "cnr",
    "nffa",
];

/// A reference that cannot be scored against, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferenceError(pub String);

impl fmt::Display for ReferenceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ReferenceError {}

/// The instrument facts of a reference (rules in the module docs).
///
/// ```
/// use mica_metrics::vqa::{reference_facts, FactKind};
/// let f = reference_facts("Pores.\nScale bar = 100 µm, Magnification = 250 X, WD = NaN, EHT = 3.00 kV.").unwrap();
/// assert_eq!(f.iter().map(|f| f.kind).collect::<Vec<_>>(),
///            [FactKind::ScaleBar, FactKind::Magnification, FactKind::Eht]);
/// ```
///
/// # Errors
/// No instrument line, or a value that does not read as its kind.
pub fn reference_facts(reference: &str) -> Result<Vec<Fact>, ReferenceError> {
    for line in reference.lines() {
        let pairs = key_value_pairs(line);
        let known: Vec<(FactKind, &str, &str)> = pairs
            .iter()
            .filter_map(|(k, v)| FactKind::of_key(k).map(|kind| (kind, *k, *v)))
            .collect();
        if known.len() < 2 {
            continue;
        }
        let mut facts: Vec<Fact> = Vec::new();
        for (kind, key, value) in known {
            let v = value.trim().trim_end_matches('.').trim();
            if v.is_empty() || v.eq_ignore_ascii_case("nan") || v == "-" || v == "–" {
                continue;
            }
            if facts.iter().any(|f| f.kind == kind) {
                return Err(ReferenceError(format!(
                    "the instrument line gives {} twice (`{key} = {v}`)",
                    kind.label()
                )));
            }
            let (value, step) = if kind.is_name() {
                (FactValue::Name(v.to_string()), None)
            } else {
                let (q, step) = quantity_of(kind, &v.to_lowercase()).ok_or_else(|| {
                    ReferenceError(format!(
                        "`{key} = {v}` in the instrument line is not a {} ({})",
                        kind.label(),
                        unit_hint(kind)
                    ))
                })?;
                (FactValue::Quantity(q), Some(step))
            };
            facts.push(Fact {
                kind,
                value,
                step,
                text: v.to_string(),
            });
        }
        return Ok(facts);
    }
    Err(ReferenceError(
        "the reference has no instrument line (`Scale bar = …, Magnification = …, EHT = …`)".into(),
    ))
}

fn unit_hint(kind: FactKind) -> &'static str {
    match kind {
        FactKind::Magnification => "a number with X or kX",
        FactKind::Eht => "a number with kV or V",
        _ => "a number with nm, µm or mm",
    }
}

/// `key = value` pairs of a line: split at commas, a piece without `=` continues the previous
/// value.
fn key_value_pairs(line: &str) -> Vec<(&str, &str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    let mut start = 0;
    let mut pieces = Vec::new();
    for (i, c) in line.char_indices() {
        if c == ',' {
            pieces.push((start, i));
            start = i + 1;
        }
    }
    pieces.push((start, line.len()));
    let mut cur: Option<(usize, usize, usize)> = None; // key start, '=' at, value end
    for (a, b) in pieces {
        let piece = &line[a..b];
        match piece.find('=') {
            Some(eq) => {
                if let Some((ks, e, ve)) = cur.take() {
                    out.push((line[ks..e].trim(), &line[e + 1..ve]));
                }
                cur = Some((a, a + eq, b));
            }
            None => {
                if let Some(c) = cur.as_mut() {
                    c.2 = b;
                }
            }
        }
    }
    if let Some((ks, e, ve)) = cur {
        out.push((line[ks..e].trim(), &line[e + 1..ve]));
    }
    out
}

/// The quantity of a reference value (lower-cased) of a numeric kind (µm, V or a factor), and
/// the precision it is written to.
fn quantity_of(kind: FactKind, v: &str) -> Option<(f64, f64)> {
    let toks = all_number_tokens(v);
    let t = toks.iter().find(|t| !t.glued_before && !t.negative)?;
    let rest = &v[t.end..];
    let (x, step) = (t.value(), written_step(&t.frac_digits));
    let factor = match kind {
        FactKind::Magnification => magnification_unit(rest).unwrap_or(1.0),
        FactKind::Eht => voltage_unit(rest)?,
        _ => length_unit(rest).map(|(mul, div)| mul / div)?,
    };
    Some((x * factor, step * factor))
}

/// The step of the last written digit: `3.00` → 0.01, `250` → 1.
fn written_step(frac: &Option<String>) -> f64 {
    let d = frac.as_ref().map_or(0, String::len);
    10f64.powi(-(d as i32))
}

/// The factor of a magnification unit at the start of `rest` (lower-cased): `x`, `×` → 1,
/// `kx`, `k x`, `k×` → 1000, `times` → 1.
fn magnification_unit(rest: &str) -> Option<f64> {
    let r = rest.trim_start();
    let word_end = |u: &str| {
        r.strip_prefix(u)
            .is_some_and(|a| a.chars().next().is_none_or(|c| !c.is_alphanumeric()))
    };
    if word_end("kx") || word_end("k x") || word_end("k×") || word_end("k ×") {
        Some(1000.0)
    } else if word_end("x") || r.starts_with('×') || word_end("times") {
        Some(1.0)
    } else {
        None
    }
}

/// The factor to volts of a voltage unit at the start of `rest` (lower-cased).
fn voltage_unit(rest: &str) -> Option<f64> {
    let r = rest.trim_start();
    let word_end = |u: &str| {
        r.strip_prefix(u)
            .is_some_and(|a| a.chars().next().is_none_or(|c| !c.is_alphanumeric()))
    };
    if word_end("kv") || r.starts_with("kilovolt") {
        Some(1000.0)
    } else if word_end("v") || r.starts_with("volt") {
        Some(1.0)
    } else {
        None
    }
}

/// Keywords that give a length its kind, as they appear in answers (lower-cased); `None`: the
/// length is of something else (`aperture size (30.00 µm)`, `a width of 7.8 µm`).
const LENGTH_KEYWORDS: [(&str, Option<FactKind>); 13] = [
    ("scale", Some(FactKind::ScaleBar)),
    ("working distance", Some(FactKind::WorkingDistance)),
    ("wd", Some(FactKind::WorkingDistance)),
    ("stage", Some(FactKind::StageZ)),
    ("z =", Some(FactKind::StageZ)),
    ("z=", Some(FactKind::StageZ)),
    ("size", None),
    ("width", None),
    ("length", None),
    ("diameter", None),
    ("aperture", None),
    ("thick", None),
    ("field of view", None),
];

/// How far before a length its keyword may be, in bytes.
const KEYWORD_WINDOW: usize = 80;

/// The numeric facts an answer states (rules in the module docs), in order.
pub fn stated_quantities(answer: &str) -> Vec<Stated> {
    let text = answer.to_lowercase();
    let mut out = Vec::new();
    for t in all_number_tokens(&text) {
        if t.glued_before || t.negative {
            continue;
        }
        let rest = &text[t.end..];
        let x = t.value();
        let comma = t.text.matches(',').count() == 1 && !t.text.contains('.');
        let alt = |factor: f64| {
            comma
                .then(|| t.text.replace(',', ".").parse::<f64>().ok())
                .flatten()
                .map(|v| (v * factor, 0.001 * factor))
        };
        let step = |factor: f64| written_step(&t.frac_digits) * factor;
        let unit_text = |n: usize| {
            let r = rest.trim_start();
            let skipped = rest.len() - r.len();
            let end = t.end + skipped + n.min(r.len());
            text[t.start..end].trim().to_string()
        };
        if let Some(m) = voltage_unit(rest) {
            let n = rest
                .trim_start()
                .find(|c: char| !c.is_alphabetic())
                .unwrap_or(rest.trim_start().len());
            out.push(Stated {
                kind: FactKind::Eht,
                value: x * m,
                alternative: alt(m),
                step: step(m),
                text: unit_text(n),
            });
        } else if let Some(m) = magnification_unit(rest) {
            let r = rest.trim_start();
            let n = if r.starts_with("k ") {
                3
            } else {
                r.find(|c: char| !(c.is_alphabetic() || c == '×'))
                    .unwrap_or(r.len())
            };
            out.push(Stated {
                kind: FactKind::Magnification,
                value: x * m,
                alternative: alt(m),
                step: step(m),
                text: unit_text(n),
            });
        } else if let Some((mul, div)) = length_unit(rest) {
            let Some(kind) = length_keyword(&text, t.start) else {
                continue;
            };
            let r = rest.trim_start();
            let n = r
                .find(|c: char| !(c.is_alphabetic() || c == 'µ' || c == 'μ'))
                .unwrap_or(r.len());
            out.push(Stated {
                kind,
                value: x * mul / div,
                alternative: alt(mul / div),
                step: step(mul / div),
                text: unit_text(n),
            });
        } else if !t.glued_after && after_magnification_word(&text, t.start) {
            out.push(Stated {
                kind: FactKind::Magnification,
                value: x,
                alternative: alt(1.0),
                step: step(1.0),
                text: t.text.clone(),
            });
        }
    }
    out
}

/// The kind named by the nearest keyword before `at` in the same sentence and window (`None`
/// also when the nearest keyword names another quantity).
fn length_keyword(text: &str, at: usize) -> Option<FactKind> {
    let mut from = at.saturating_sub(KEYWORD_WINDOW);
    while !text.is_char_boundary(from) {
        from += 1;
    }
    let window = &text[from..at];
    // The sentence: after the last ". " (a full stop followed by a space) of the window.
    let window = match window.rfind(". ") {
        Some(i) => &window[i + 2..],
        None => window,
    };
    let mut best: Option<(usize, Option<FactKind>)> = None;
    for (kw, kind) in LENGTH_KEYWORDS {
        for (i, _) in window.match_indices(kw) {
            let before_ok = window[..i]
                .chars()
                .next_back()
                .is_none_or(|c| !c.is_alphanumeric());
            let after_ok = window[i + kw.len()..].chars().next().is_none_or(|c| {
                !c.is_alphanumeric()
                    || !kw.ends_with(|c: char| c.is_alphabetic())
                    || kw == "scale"
                    || kw == "stage"
                    || kw == "thick"
            });
            if before_ok && after_ok && best.is_none_or(|(b, _)| i >= b) {
                best = Some((i, kind));
            }
        }
    }
    best.and_then(|(_, k)| k)
}

/// Whether the number at `at` follows the word "magnification" closely (`magnification of`,
/// `magnification:`, `magnification level of`).
fn after_magnification_word(text: &str, at: usize) -> bool {
    let before = text[..at].trim_end();
    let before = before
        .strip_suffix("of")
        .or_else(|| before.strip_suffix(':'))
        .or_else(|| before.strip_suffix('='))
        .or_else(|| before.strip_suffix("is"))
        .unwrap_or(before)
        .trim_end();
    let before = before.strip_suffix("level").unwrap_or(before).trim_end();
    before.ends_with("magnification") || before.ends_with("mag")
}

/// Lower case without spaces, hyphens and other punctuation: how names are compared.
fn squash(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Whether `name` appears in `text` as a whole word (compared squashed, word by word).
fn names(text: &str, name: &str) -> bool {
    let want = squash(name);
    if want.is_empty() {
        return false;
    }
    let words: Vec<String> = text
        .split(|c: char| c.is_whitespace() || c == '/' || c == '(' || c == ')' || c == ',')
        .map(squash)
        .filter(|w| !w.is_empty())
        .collect();
    // A name may span words ("In Lens" for "InLens"): join up to three consecutive words.
    (0..words.len()).any(|i| {
        let mut joined = String::new();
        (i..words.len().min(i + 3)).any(|j| {
            joined.push_str(&words[j]);
            joined == want || (j == i && words[j].strip_suffix('s') == Some(want.as_str()))
        })
    })
}

/// How an answer did on one reference fact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Correct,
    Wrong,
    NotStated,
}

/// One reference fact checked against an answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FactCheck {
    pub kind: FactKind,
    /// The reference's value as written.
    pub reference: String,
    /// What the answer stated for this kind, as written.
    pub stated: Vec<String>,
    pub verdict: Verdict,
}

/// The instrument-facts score of one answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FactScore {
    pub checks: Vec<FactCheck>,
    pub correct: usize,
    pub wrong: usize,
    /// correct / reference facts; `None` when the reference has no fact.
    pub recall: Option<f64>,
    /// correct / (correct + wrong); `None` when the answer states none.
    pub precision: Option<f64>,
}

/// Whether two readings agree to the precision of the less precise one (half its last digit,
/// with room for floating-point rounding).
fn agrees((a, step_a): (f64, f64), (b, step_b): (f64, f64)) -> bool {
    let tol = step_a.max(step_b) / 2.0;
    (a - b).abs() <= tol * (1.0 + 1e-9) + 1e-12 * b.abs()
}

/// Checks an answer against reference facts (rules in the module docs).
///
/// ```
/// use mica_metrics::vqa::{reference_facts, score_facts};
/// let r = reference_facts("Scale bar = 200 nm, Magnification = 234190 X, WD = 3 mm, EHT = 10.00 kV, Logo = Zeiss.").unwrap();
/// let s = score_facts(&r, "A magnification of 249.19 kX, at 10 kV; the working distance is 3 mm.");
/// assert_eq!((s.correct, s.wrong), (2, 1));      // EHT and WD right, magnification wrong
/// assert_eq!(s.recall, Some(0.4));                // 2 of 5 facts
/// ```
pub fn score_facts(reference: &[Fact], answer: &str) -> FactScore {
    let quantities = stated_quantities(answer);
    let mut checks = Vec::new();
    for fact in reference {
        let (stated, verdict) = match &fact.value {
            FactValue::Quantity(want) => {
                let want = (*want, fact.step.unwrap_or(0.0));
                let mine: Vec<&Stated> =
                    quantities.iter().filter(|s| s.kind == fact.kind).collect();
                let all_agree = mine.iter().all(|s| {
                    agrees((s.value, s.step), want)
                        || s.alternative.is_some_and(|a| agrees(a, want))
                });
                let verdict = match (mine.is_empty(), all_agree) {
                    (true, _) => Verdict::NotStated,
                    (false, true) => Verdict::Correct,
                    (false, false) => Verdict::Wrong,
                };
                (mine.iter().map(|s| s.text.clone()).collect(), verdict)
            }
            FactValue::Name(want) => {
                if names(answer, want) {
                    (vec![want.clone()], Verdict::Correct)
                } else if fact.kind == FactKind::Logo {
                    let others: Vec<String> = KNOWN_LOGOS
                        .iter()
                        .filter(|l| names(answer, l))
                        .map(|l| l.to_string())
                        .collect();
                    let v = if others.is_empty() {
                        Verdict::NotStated
                    } else {
                        Verdict::Wrong
                    };
                    (others, v)
                } else {
                    (Vec::new(), Verdict::NotStated)
                }
            }
        };
        checks.push(FactCheck {
            kind: fact.kind,
            reference: fact.text.clone(),
            stated,
            verdict,
        });
    }
    let correct = checks
        .iter()
        .filter(|c| c.verdict == Verdict::Correct)
        .count();
    let wrong = checks
        .iter()
        .filter(|c| c.verdict == Verdict::Wrong)
        .count();
    FactScore {
        recall: (!checks.is_empty()).then(|| correct as f64 / checks.len() as f64),
        precision: (correct + wrong > 0).then(|| correct as f64 / (correct + wrong) as f64),
        checks,
        correct,
        wrong,
    }
}

/// Scorer names, as in tables and JSON.
pub const SCORER_FACTS_RECALL: &str = "facts_recall";
pub const SCORER_FACTS_PRECISION: &str = "facts_precision";
/// Cosine similarity of the answer's and the reference's sentence embeddings (computed by the
/// caller, e.g. with `mica-semantic`'s all-MiniLM-L6-v2, and added with [`AnswerScores::add`]).
pub const SCORER_SIMILARITY: &str = "similarity";
/// A language model's 0–5 grade of the answer against the reference (`mica_vlm::judge`).
pub const SCORER_JUDGE: &str = "judge";

/// One answer to score: which model gave it for which image, the text, and the expert's grade
/// of it where known.
#[derive(Debug, Clone, PartialEq)]
pub struct GradedAnswer {
    pub image: String,
    pub model: String,
    pub answer: String,
    pub expert: Option<f64>,
}

/// The automatic scores of one answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnswerScores {
    pub image: String,
    pub model: String,
    pub expert: Option<f64>,
    /// The instrument-facts check, or why it could not be made (a reference without an
    /// instrument line, no reference for the image).
    pub facts: std::result::Result<FactScore, String>,
    /// Each scorer's value (`facts_recall`, `facts_precision`, …); a scorer that is undefined
    /// on this answer is absent.
    pub scores: std::collections::BTreeMap<String, f64>,
    /// Why an external scorer gave this answer no value (a judge's call failed, its grade could
    /// not be read), by scorer name.
    pub failures: std::collections::BTreeMap<String, String>,
}

impl AnswerScores {
    /// Adds a score computed elsewhere (e.g. [`SCORER_SIMILARITY`]); a non-finite value is not
    /// a score and is left out.
    pub fn add(&mut self, scorer: &str, value: f64) {
        if value.is_finite() {
            self.scores.insert(scorer.to_string(), value);
        }
    }
}

/// A scorer of answers against references that runs outside this crate (a sentence-embedding
/// model): [`crate::evaluation::evaluate_with`] gives it every (answer, reference) pair of a
/// dataset at once and adds its values under [`AnswerScorer::name`].
pub trait AnswerScorer {
    /// The score's name in tables (e.g. [`SCORER_SIMILARITY`]).
    fn name(&self) -> &str;
    /// What computes it (model and file hash), for the report.
    fn describe(&self) -> String;
    /// One value per `(answer, reference)` pair, or why that pair has none (one failed call
    /// leaves the others scored).
    ///
    /// # Errors
    /// The scorer cannot run at all; the reason is reported and the score left out.
    fn score(
        &self,
        pairs: &[(&str, &str)],
    ) -> std::result::Result<Vec<std::result::Result<f64, String>>, String>;
}

/// Runs an external scorer on `pairs` (index into `answers`, answer text, reference text) and
/// adds its values to those answers; an answer the scorer gave no value gets the reason in
/// [`AnswerScores::failures`] (a non-finite value is such a failure too).
///
/// # Errors
/// The scorer failed, or gave a different number of values than pairs; nothing is added.
pub fn add_external_scores(
    answers: &mut [AnswerScores],
    pairs: &[(usize, &str, &str)],
    scorer: &dyn AnswerScorer,
) -> std::result::Result<(), String> {
    let texts: Vec<(&str, &str)> = pairs.iter().map(|(_, a, r)| (*a, *r)).collect();
    let values = scorer
        .score(&texts)
        .map_err(|e| format!("scorer {:?} failed: {e}", scorer.name()))?;
    if values.len() != pairs.len() {
        return Err(format!(
            "scorer {:?} gave {} values for {} answers",
            scorer.name(),
            values.len(),
            pairs.len()
        ));
    }
    for ((i, _, _), v) in pairs.iter().zip(values) {
        match v {
            Ok(v) if v.is_finite() => answers[*i].add(scorer.name(), v),
            Ok(v) => {
                answers[*i]
                    .failures
                    .insert(scorer.name().to_string(), format!("not a number: {v}"));
            }
            Err(why) => {
                answers[*i].failures.insert(scorer.name().to_string(), why);
            }
        }
    }
    Ok(())
}

/// Scores one answer against its reference (`None`: the image has no reference).
pub fn score_answer(a: &GradedAnswer, reference: Option<&str>) -> AnswerScores {
    let facts = match reference {
        None => Err(format!("no reference for image {:?}", a.image)),
        Some(r) => reference_facts(r)
            .map(|f| score_facts(&f, &a.answer))
            .map_err(|e| format!("reference of {:?}: {e}", a.image)),
    };
    let mut scores = std::collections::BTreeMap::new();
    if let Ok(f) = &facts {
        if let Some(r) = f.recall {
            scores.insert(SCORER_FACTS_RECALL.to_string(), r);
        }
        if let Some(p) = f.precision {
            scores.insert(SCORER_FACTS_PRECISION.to_string(), p);
        }
    }
    AnswerScores {
        image: a.image.clone(),
        model: a.model.clone(),
        expert: a.expert,
        facts,
        scores,
        failures: Default::default(),
    }
}

/// A model's mean scores over its answers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelSummary {
    pub model: String,
    pub answers: usize,
    /// Mean expert grade over the graded answers.
    pub expert: crate::measure::Estimate,
    /// Each scorer's mean over the answers it is defined on, with its `n`.
    pub scores: std::collections::BTreeMap<String, (usize, crate::measure::Estimate)>,
}

/// How well a scorer agrees with the expert on a group of answers (`pooled` or a model).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScorerAgreement {
    pub scorer: String,
    pub group: String,
    pub agreement: crate::agreement::Agreement,
}

/// Every VQA summary: per model, and each scorer's agreement with the expert (pooled and per
/// model, over the answers that have both a grade and the score).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VqaSummary {
    pub models: Vec<ModelSummary>,
    pub agreement: Vec<ScorerAgreement>,
}

/// The group name of all answers together in [`ScorerAgreement::group`].
pub const POOLED: &str = "pooled";

/// Summarises scored answers (models in first-seen order).
///
/// # Errors
/// A bad bootstrap config.
pub fn summarise(
    scored: &[AnswerScores],
    config: &crate::bootstrap::BootstrapConfig,
) -> crate::Result<VqaSummary> {
    let mut models: Vec<String> = Vec::new();
    for s in scored {
        if !models.contains(&s.model) {
            models.push(s.model.clone());
        }
    }
    let scorers: std::collections::BTreeSet<&String> =
        scored.iter().flat_map(|s| s.scores.keys()).collect();
    let mut out = VqaSummary {
        models: Vec::new(),
        agreement: Vec::new(),
    };
    for m in &models {
        let mine: Vec<&AnswerScores> = scored.iter().filter(|s| &s.model == m).collect();
        let grades: Vec<f64> = mine.iter().filter_map(|s| s.expert).collect();
        let mut scores = std::collections::BTreeMap::new();
        for sc in &scorers {
            let v: Vec<f64> = mine
                .iter()
                .filter_map(|s| s.scores.get(*sc).copied())
                .collect();
            scores.insert(
                (*sc).clone(),
                (v.len(), crate::measure::mean_estimate(&v, config)?),
            );
        }
        out.models.push(ModelSummary {
            model: m.clone(),
            answers: mine.len(),
            expert: crate::measure::mean_estimate(&grades, config)?,
            scores,
        });
    }
    for sc in &scorers {
        let groups = std::iter::once(POOLED.to_string()).chain(models.iter().cloned());
        for g in groups {
            let (x, y): (Vec<f64>, Vec<f64>) = scored
                .iter()
                .filter(|s| g == POOLED || s.model == g)
                .filter_map(|s| Some((s.expert?, *s.scores.get(*sc)?)))
                .unzip();
            if x.is_empty() {
                continue;
            }
            out.agreement.push(ScorerAgreement {
                scorer: (*sc).clone(),
                group: g,
                agreement: crate::agreement::agreement(&x, &y, config)?,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const L0: &str = "The SEM image depicts a porous material.\nScale bar = 100 µm, Magnification = 250 X, WD = NaN, EHT = 3.00 kV, Stage Z = 48.000 mm, Logo = Zeiss.";

    fn verdicts(s: &FactScore) -> Vec<(FactKind, Verdict)> {
        s.checks.iter().map(|c| (c.kind, c.verdict)).collect()
    }

    #[test]
    fn reference_line_reads_with_units_and_skips_unknown_values() {
        let f = reference_facts(L0).unwrap();
        let kinds: Vec<FactKind> = f.iter().map(|f| f.kind).collect();
        assert_eq!(
            kinds,
            [
                FactKind::ScaleBar,
                FactKind::Magnification,
                FactKind::Eht,
                FactKind::StageZ,
                FactKind::Logo
            ]
        );
        assert_eq!(f[0].value, FactValue::Quantity(100.0));
        assert_eq!(f[1].value, FactValue::Quantity(250.0));
        assert_eq!(f[2].value, FactValue::Quantity(3000.0));
        assert!(f[3].value == FactValue::Quantity(48000.0));
        assert_eq!(f[4].value, FactValue::Name("Zeiss".into()));
    }

    #[test]
    fn reference_without_instrument_line_is_an_error() {
        let e = reference_facts("The SEM image shows fibres.").unwrap_err();
        assert!(e.0.contains("no instrument line"), "{e}");
        let e = reference_facts("Scale bar = big, Magnification = 250 X").unwrap_err();
        assert!(e.0.contains("`Scale bar = big`"), "{e}");
    }

    #[test]
    fn the_studys_l0_answers_score_as_the_expert_coloured_them() {
        // The expert marked 250x, 3.00 kV and Zeiss green in ChatGPT's L0 answer.
        let r = reference_facts(L0).unwrap();
        let chatgpt = "The scale bar indicates features in the micrometer range, with a magnification of 250x. The image was captured using a Secondary Electron (SE2) detector at an electron high tension (EHT) of 3.00 kV. The image was taken using a Zeiss microscope.";
        let s = score_facts(&r, chatgpt);
        assert_eq!(
            verdicts(&s),
            [
                (FactKind::ScaleBar, Verdict::NotStated),
                (FactKind::Magnification, Verdict::Correct),
                (FactKind::Eht, Verdict::Correct),
                (FactKind::StageZ, Verdict::NotStated),
                (FactKind::Logo, Verdict::Correct),
            ]
        );
        assert_eq!(s.recall, Some(0.6));
        assert_eq!(s.precision, Some(1.0));
        // LLaVA's: 250x, 100 µm, 3.00 kV and "48,000 µm" green (48.000 mm).
        let llava = "The image is taken at a magnification of 250x, and the scale bar at the bottom indicates 100 µm. The voltage is 3.00 kV and the stage position Z is 48,000 µm.";
        let s = score_facts(&r, llava);
        assert_eq!(s.correct, 4, "{:?}", s.checks);
        assert_eq!(s.wrong, 0);
    }

    #[test]
    fn wrong_values_and_units_are_wrong() {
        let r = reference_facts(
            "Scale bar = 200 nm, Magnification = 234190 X, WD = 3 mm, EHT = 10.00 kV, Stage Z = 48.920 mm, Logo = Zeiss.",
        )
        .unwrap();
        // LLaVA's L2 answer: 249.19 kX and 482.90 mm marked red by the expert; 10.00 kV green.
        let a = "It includes the magnification level (249.19 kX), the sample size (3 mm), the signal (A-In Lens), the stage position (482.90 mm). The EHT is 10.00 kV.";
        let s = score_facts(&r, a);
        assert_eq!(
            verdicts(&s),
            [
                (FactKind::ScaleBar, Verdict::NotStated),
                (FactKind::Magnification, Verdict::Wrong),
                (FactKind::WorkingDistance, Verdict::NotStated),
                (FactKind::Eht, Verdict::Correct),
                (FactKind::StageZ, Verdict::Wrong),
                (FactKind::Logo, Verdict::NotStated),
            ]
        );
        assert_eq!(s.precision, Some(1.0 / 3.0));
    }

    #[test]
    fn unit_conversions_agree() {
        let r =
            reference_facts("Magnification = 250 X, EHT = 3.00 kV, WD = 4 mm, Scale bar = 2 µm")
                .unwrap();
        for a in [
            "magnification 250 X, 3 kV, a working distance of 4.0 mm, scale bar 2000 nm",
            "250× at 3000 V; WD 4 millimeters; the scale bar is 2 um",
            "0.25 kX, 3 kilovolts, WD = 4 mm, scale: 2 microns",
            "a magnification of 250 and 3.00 KV, WD 4mm, scale bar of 2µm",
        ] {
            let s = score_facts(&r, a);
            assert_eq!(s.correct, 4, "{a}: {:?}", s.checks);
        }
    }

    #[test]
    fn a_length_without_keyword_is_not_a_fact_and_thousands_are_one_number() {
        let r =
            reference_facts("Magnification = 234190 X, WD = 3 mm, Stage Z = 47.000 mm").unwrap();
        let s = score_facts(
            &r,
            "Particles of about 3 mm. A magnification of 234,190x. The stage position, the aperture size (30.00 µm), Z = 47,000 mm.",
        );
        assert_eq!(
            verdicts(&s),
            [
                (FactKind::Magnification, Verdict::Correct),
                (FactKind::WorkingDistance, Verdict::NotStated),
                (FactKind::StageZ, Verdict::Correct),
            ]
        );
        let s = score_facts(&r, "The stage position (482.90 mm).");
        assert_eq!(s.checks[2].verdict, Verdict::Wrong);
        // Agreement to the written precision: LLaVA's L6 "Z=47.58 mm" for 47.957 mm (the expert
        // marked it uncertain) does not agree; 47.0 mm does (47.000 written more precisely).
        let r = reference_facts("Stage Z = 47.957 mm, EHT = 10.00 kV").unwrap();
        assert_eq!(
            score_facts(&r, "Z=47.58 mm").checks[0].verdict,
            Verdict::Wrong
        );
        assert_eq!(
            score_facts(&r, "stage at 48 mm").checks[0].verdict,
            Verdict::Correct
        );
        assert_eq!(
            score_facts(&r, "EHT 10 kV").checks[1].verdict,
            Verdict::Correct
        );
        assert_eq!(
            score_facts(&r, "EHT 10.1 kV").checks[1].verdict,
            Verdict::Wrong
        );
    }

    #[test]
    fn logo_naming_another_maker_is_wrong_naming_both_is_right() {
        let r = reference_facts("Magnification = 1000 X, Logo = TASC").unwrap();
        let v = |a: &str| score_facts(&r, a).checks[1].verdict;
        assert_eq!(v("taken with a JEOL microscope"), Verdict::Wrong);
        assert_eq!(
            v("taken at the TASC laboratory using a Zeiss microscope"),
            Verdict::Correct
        );
        assert_eq!(v("no maker named"), Verdict::NotStated);
        let r = reference_facts("Magnification = 1000 X, Detector = InLens").unwrap();
        assert_eq!(
            score_facts(&r, "captured with the In-Lens detector").checks[1].verdict,
            Verdict::Correct
        );
    }

    #[test]
    fn summary_agreement_is_over_graded_answers_per_model_and_pooled() {
        let reference = L0;
        let answers = [
            ("A", "magnification of 250x at 3.00 kV, Zeiss", Some(5.0)),
            ("A", "magnification of 250x", Some(3.0)),
            ("A", "nothing", Some(1.0)),
            ("B", "EHT 3.00 kV", Some(2.0)),
            ("B", "no facts", None),
        ];
        let scored: Vec<AnswerScores> = answers
            .iter()
            .enumerate()
            .map(|(i, (m, a, g))| {
                let ga = GradedAnswer {
                    image: format!("img{i}"),
                    model: m.to_string(),
                    answer: a.to_string(),
                    expert: *g,
                };
                score_answer(&ga, Some(reference))
            })
            .collect();
        assert_eq!(scored[0].scores[SCORER_FACTS_RECALL], 0.6);
        assert!(!scored[2].scores.contains_key(SCORER_FACTS_PRECISION));
        let s = summarise(&scored, &crate::bootstrap::BootstrapConfig::default()).unwrap();
        assert_eq!(s.models.len(), 2);
        assert_eq!(s.models[1].answers, 2);
        assert_eq!(s.models[1].expert.value, Some(2.0));
        let pooled = s
            .agreement
            .iter()
            .find(|a| a.scorer == SCORER_FACTS_RECALL && a.group == POOLED)
            .unwrap();
        assert_eq!(pooled.agreement.n, 4, "the ungraded answer is left out");
        let a = s
            .agreement
            .iter()
            .find(|a| a.scorer == SCORER_FACTS_RECALL && a.group == "A")
            .unwrap();
        assert_eq!(a.agreement.spearman.value, Some(1.0));
        assert_eq!(
            a.agreement.spearman.ci, None,
            "3 answers: too few for an interval"
        );
        let missing = score_answer(
            &GradedAnswer {
                image: "x".into(),
                model: "A".into(),
                answer: "250x".into(),
                expert: None,
            },
            Some("no line here"),
        );
        assert!(missing.facts.unwrap_err().contains("no instrument line"));
        assert!(missing.scores.is_empty());
    }

    #[test]
    fn empty_answer_states_nothing() {
        let r = reference_facts(L0).unwrap();
        let s = score_facts(&r, "");
        assert_eq!(s.recall, Some(0.0));
        assert_eq!(s.precision, None);
    }
}
