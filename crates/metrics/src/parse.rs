//! Turning an answer (a model's free text, a JSON field, a spreadsheet cell) into a count, a size
//! or a class, saying *why* when that fails. These are the only rules mica reads answers by: the
//! study runner, `mica eval`, the VLM clients and robustness all call them.
//!
//! A value that cannot be read is a failure with a reason, never a different value.
//!
//! # Numbers
//! A number is a run of digits, optionally with `,ddd` thousands groups (`1,234`), a decimal part
//! (`3.7`) and an exponent (`12e4`), preceded by `-` / `−` when negative. A run glued to letters
//! (`2D`, `w1`, `F48`, `20kV`) is part of a word, not a number.
//!
//! # Counts ([`parse_count`], [`count_from_json`], [`parse_count_cell`])
//! A count is a non-negative whole number of at most [`MAX_COUNT`] (2⁵³, the largest whole number
//! an `f64` holds exactly):
//! - a `Count: <n>` (or `count = <n>`) marker wins, case-insensitive, markdown emphasis such as
//!   `**Count:** 12` allowed, words before the number skipped (`Count: about 40` is 40). Several
//!   markers must agree.
//! - without a marker, the text must hold exactly one distinct number (`There are 7 cells.`;
//!   `12 cells, so 12` is fine); several different numbers are ambiguous and fail
//!   (`7 cells in 3 clusters`). This is stricter than the study's "first integer" rule, which
//!   would read `In 3 regions I see 40 cells` as 3.
//! - failures: empty, `NaN` / `N/A` / `none`, a refusal, no number, a negative number (`-4`), a
//!   fractional one (`3.7`; `12.0` is 12), exponent notation (`12e4`), one above [`MAX_COUNT`],
//!   a range (`40-50`, `40 to 50`, `40 or 50`).
//! - number words ("twelve") are deliberately not read: "one" occurs in too many refusals.
//! - JSON ([`count_from_json`]): a whole number; `null` means "cannot tell"; a string is read as
//!   text; `7.9`, `-3`, `1e+308` and `99999999999999999999999` fail.
//! - a spreadsheet / CSV cell ([`parse_count_cell`]): empty is *missing*, a bare count is the
//!   count, anything else is *not a count* with the reason above.
//!
//! # Sizes ([`parse_size_um`], [`size_from_json`])
//! A size is a positive, finite length in µm. Decimals and exponents are allowed (a size is a
//! measurement). A bare number is µm; `Size: <n> [unit]` wins; otherwise the numbers followed by a
//! length unit (`nm`, `µm` / `um` / `micron`, `mm`) must agree. Negative or zero sizes, ranges,
//! several different sizes and `NaN` fail.
//!
//! # Classes ([`parse_class`])
//! The first whole number in the text that is one of the labels' ids (the class numbers shown in
//! the prompt) wins; otherwise the first label, in the labels' fixed order, one of whose aliases
//! occurs in the text as a substring (the study's rule), matched case-insensitively. Refinement:
//! a short alias (4 characters or fewer, e.g. `tip`, `mems`) must start at a word boundary, so
//! `tip` does not match inside "mul*tip*le"; it may still end anywhere (`tip` matches "tips").

use std::fmt;

/// Why an answer could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseFailure {
    /// A short human-readable reason, e.g. "the answer is NaN" or "no number in the answer".
    pub reason: String,
}

impl ParseFailure {
    fn new(reason: impl Into<String>) -> Self {
        ParseFailure {
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ParseFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for ParseFailure {}

/// The largest count mica reads: 2⁵³, the largest whole number an `f64` holds exactly (every
/// metric is computed in `f64`).
pub const MAX_COUNT: u64 = 1 << 53;

/// Version of these reading rules; part of the settings hash of every method whose answers are
/// read by them, so a change of rules recomputes (re-reads) those answers.
pub const RULES_VERSION: u32 = 2;

/// Phrases that mark a refusal or an inability to answer (lower case).
const REFUSALS: &[&str] = &[
    "i can't",
    "i cannot",
    "i can not",
    "i'm unable",
    "i am unable",
    "unable to",
    "i'm sorry",
    "i am sorry",
    "sorry",
    "not possible",
    "impossible",
    "cannot determine",
    "can't determine",
    "cannot be determined",
    "not able to",
];

/// A number as written in an answer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NumberToken {
    /// Byte span in the (lower-cased) text, sign included.
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) negative: bool,
    /// The digits before the decimal point, thousands separators removed.
    pub(crate) int_digits: String,
    /// The digits after the decimal point, if any.
    pub(crate) frac_digits: Option<String>,
    /// Whether it has an exponent (`e4`, `E-3`).
    pub(crate) exponent: bool,
    /// Glued to a letter, digit or `_` before it (`w1`, `F48`): part of a word.
    pub(crate) glued_before: bool,
    /// Followed directly by a letter (`2D`, `350nm`).
    pub(crate) glued_after: bool,
    /// The number as written.
    pub(crate) text: String,
}

impl NumberToken {
    pub(crate) fn value(&self) -> f64 {
        let t: String = self
            .text
            .chars()
            .filter(|c| *c != ',')
            .map(|c| if c == '−' { '-' } else { c })
            .collect();
        t.parse::<f64>().unwrap_or(f64::NAN)
    }

    /// The token as a count, or why it is not one.
    fn as_count(&self) -> Result<u64, ParseFailure> {
        if self.negative {
            return Err(ParseFailure::new(format!(
                "negative count {}: a count is a whole number 0 or more",
                self.text
            )));
        }
        if self.exponent {
            return Err(ParseFailure::new(format!(
                "the count {} is in exponent notation; a count is a whole number",
                self.text
            )));
        }
        if let Some(f) = &self.frac_digits {
            if f.chars().any(|c| c != '0') {
                return Err(ParseFailure::new(format!(
                    "fractional count {}: a count is a whole number",
                    self.text
                )));
            }
        }
        match self.int_digits.parse::<u64>() {
            Ok(n) if n <= MAX_COUNT => Ok(n),
            _ => Err(ParseFailure::new(format!(
                "the number {} is too large for a count (at most {MAX_COUNT})",
                self.text
            ))),
        }
    }
}

/// Every number in `s` (see the module docs for what a number is), including those glued to a
/// word (`w1`, `350nm`), which say so.
pub(crate) fn all_number_tokens(s: &str) -> Vec<NumberToken> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        // Glued to a letter or digit before (`w1`, `F48`)? Then it is part of a word.
        let before = s[..i].chars().next_back();
        let glued_before = before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.');
        let mut start = i;
        let mut negative = false;
        if let Some(sign) = before.filter(|c| *c == '-' || *c == '−') {
            // A sign only when what precedes it is not a digit or letter (`40-50` is a range).
            let sign_start = i - sign.len_utf8();
            let pre = s[..sign_start].chars().next_back();
            if !pre.is_some_and(|c| c.is_alphanumeric()) {
                negative = true;
                start = sign_start;
            }
        }
        let mut int_digits = String::new();
        while i < b.len() && b[i].is_ascii_digit() {
            int_digits.push(b[i] as char);
            i += 1;
        }
        // Thousands groups: ",ddd" not followed by another digit.
        while i + 4 <= b.len()
            && b[i] == b','
            && b[i + 1..i + 4].iter().all(u8::is_ascii_digit)
            && b.get(i + 4).is_none_or(|c| !c.is_ascii_digit())
        {
            int_digits.push_str(&s[i + 1..i + 4]);
            i += 4;
        }
        let mut frac_digits = None;
        if i + 1 < b.len() && b[i] == b'.' && b[i + 1].is_ascii_digit() {
            let mut f = String::new();
            i += 1;
            while i < b.len() && b[i].is_ascii_digit() {
                f.push(b[i] as char);
                i += 1;
            }
            frac_digits = Some(f);
        }
        let mut exponent = false;
        if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
            let mut j = i + 1;
            if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
                j += 1;
            }
            if j < b.len() && b[j].is_ascii_digit() {
                while j < b.len() && b[j].is_ascii_digit() {
                    j += 1;
                }
                exponent = true;
                i = j;
            }
        }
        let glued_after = s[i..]
            .chars()
            .next()
            .is_some_and(|c| c.is_alphabetic() || c == '_');
        let end = i;
        if glued_before {
            // Skip the rest of the word.
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'.') {
                i += 1;
            }
        }
        out.push(NumberToken {
            start,
            end,
            negative,
            int_digits,
            frac_digits,
            exponent,
            glued_before,
            glued_after,
            text: s[start..end].to_string(),
        });
    }
    out
}

/// The numbers of `s` that stand on their own (not glued to a word): what a count is read from.
fn number_tokens(s: &str) -> Vec<NumberToken> {
    all_number_tokens(s)
        .into_iter()
        .filter(|t| !t.glued_before && !t.glued_after)
        .collect()
}

/// The numbers of `s` a size is read from, each with the length unit that follows it (spaced
/// or glued: `350 nm`, `350nm`).
fn size_tokens(s: &str) -> Vec<(NumberToken, Option<(f64, f64)>)> {
    all_number_tokens(s)
        .into_iter()
        .filter(|t| !t.glued_before)
        .filter_map(|t| {
            let unit = length_unit(&s[t.end..]);
            (!t.glued_after || unit.is_some()).then_some((t, unit))
        })
        .collect()
}

/// Whether `first` and `next` form a range (`40-50`, `40 - 50`, `40 to 50`, `40 or 50`; a length
/// unit may follow the first number: `2 um to 5 um`).
fn is_range(s: &str, first: &NumberToken, next: &NumberToken) -> bool {
    let mut between = s[first.end..next.start].trim();
    for unit in [
        "micrometres",
        "micrometers",
        "nanometres",
        "nanometers",
        "microns",
        "micron",
        "nm",
        "µm",
        "μm",
        "um",
        "mm",
    ] {
        if let Some(rest) = between.strip_prefix(unit) {
            between = rest.trim();
            break;
        }
    }
    match between {
        "-" | "–" | "—" | "to" | "or" | "/" | "..." => true,
        "" => next.negative,
        _ => false,
    }
}

/// The (multiplier, divisor) to µm of a length unit at the start of `rest` (after spaces);
/// division keeps 350 nm exactly 0.35.
pub(crate) fn length_unit(rest: &str) -> Option<(f64, f64)> {
    let r = rest.trim_start();
    let word_end = |unit: &str| {
        r.strip_prefix(unit)
            .is_some_and(|after| after.chars().next().is_none_or(|c| !c.is_alphabetic()))
    };
    if word_end("nm") || r.starts_with("nanomet") {
        Some((1.0, 1e3))
    } else if word_end("µm")
        || word_end("μm")
        || word_end("um")
        || r.starts_with("micron")
        || r.starts_with("micromet")
    {
        Some((1.0, 1.0))
    } else if word_end("mm") || r.starts_with("millimet") {
        Some((1e3, 1.0))
    } else {
        None
    }
}

/// A count from a free-text answer (rules in the module docs).
///
/// ```
/// use mica_metrics::parse::parse_count;
/// assert_eq!(parse_count("I see 3 groups. Count: 12").unwrap(), 12);
/// assert_eq!(parse_count("There are 7 cells.").unwrap(), 7);
/// assert!(parse_count("NaN").is_err());
/// assert!(parse_count("Count: -4").is_err());
/// assert!(parse_count("Count: 3.7").is_err());
/// assert!(parse_count("7 cells in 3 clusters").is_err());
/// ```
///
/// # Errors
/// A [`ParseFailure`] saying why (see the module docs).
pub fn parse_count(text: &str) -> Result<u64, ParseFailure> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(ParseFailure::new("empty answer"));
    }
    let lower = trimmed.to_lowercase();
    if is_nan_answer(&lower) {
        return Err(ParseFailure::new("the answer is NaN"));
    }
    let markers = count_markers(&lower);
    if !markers.is_empty() {
        let mut values: Vec<u64> = Vec::new();
        for after in &markers {
            let after_text = &lower[*after..];
            let rest = after_text.trim_start();
            if starts_with_word(rest, "nan") {
                return Err(ParseFailure::new("the answer is `Count: NaN`"));
            }
            let toks = number_tokens(after_text);
            let Some(first) = toks.first() else {
                continue;
            };
            // Only words may stand between the marker and its number (`Count: about 40`), not
            // another sentence.
            if after_text[..first.start].contains(['.', '\n', ';']) {
                continue;
            }
            if toks.get(1).is_some_and(|n| is_range(after_text, first, n)) {
                return Err(ParseFailure::new(format!(
                    "a range ({}), not one count",
                    after_text[first.start..toks[1].end].trim()
                )));
            }
            values.push(first.as_count()?);
        }
        if let Some(&v) = values.first() {
            if values.iter().any(|&x| x != v) {
                return Err(ParseFailure::new(format!(
                    "several `Count:` lines with different numbers ({})",
                    join_numbers(&values)
                )));
            }
            return Ok(v);
        }
    }
    let toks = number_tokens(&lower);
    if toks.is_empty() {
        return Err(if REFUSALS.iter().any(|r| lower.contains(r)) {
            ParseFailure::new("refusal: the answer gives no count")
        } else if contains_word(&lower, "nan") {
            ParseFailure::new("the answer contains NaN and no number")
        } else {
            ParseFailure::new("no number in the answer")
        });
    }
    if toks.len() == 2 && is_range(&lower, &toks[0], &toks[1]) {
        return Err(ParseFailure::new(format!(
            "a range ({}), not one count",
            lower[toks[0].start..toks[1].end].trim()
        )));
    }
    let first = toks[0].as_count()?;
    let distinct: Vec<String> = {
        let mut d: Vec<String> = Vec::new();
        for t in &toks {
            let v = t.value();
            let s = if v.is_finite() {
                format!("{v}")
            } else {
                t.text.clone()
            };
            if !d.contains(&s) {
                d.push(s);
            }
        }
        d
    };
    if distinct.len() > 1 {
        return Err(ParseFailure::new(format!(
            "several different numbers ({}) and no `Count:` marker: which is the count is ambiguous",
            distinct.join(", ")
        )));
    }
    for t in &toks[1..] {
        t.as_count()?;
    }
    Ok(first)
}

fn join_numbers(v: &[u64]) -> String {
    v.iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A count from a JSON value of a structured answer (rules in the module docs).
///
/// ```
/// use mica_metrics::parse::count_from_json;
/// use serde_json::json;
/// assert_eq!(count_from_json(&json!(12)).unwrap(), 12);
/// assert!(count_from_json(&json!(7.9)).is_err());
/// assert!(count_from_json(&json!(1e308)).is_err());
/// assert!(count_from_json(&json!(null)).is_err());
/// ```
///
/// # Errors
/// A [`ParseFailure`] for `null`, a negative, fractional or too large number, or another type.
pub fn count_from_json(v: &serde_json::Value) -> Result<u64, ParseFailure> {
    match v {
        serde_json::Value::Null => Err(ParseFailure::new(
            "the model answered null (it cannot tell the count)",
        )),
        serde_json::Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                return if u <= MAX_COUNT {
                    Ok(u)
                } else {
                    Err(ParseFailure::new(format!(
                        "the number {u} is too large for a count (at most {MAX_COUNT})"
                    )))
                };
            }
            if let Some(i) = n.as_i64() {
                return Err(ParseFailure::new(format!(
                    "negative count {i}: a count is a whole number 0 or more"
                )));
            }
            let f = n.as_f64().unwrap_or(f64::NAN);
            if f < 0.0 {
                Err(ParseFailure::new(format!(
                    "negative count {n}: a count is a whole number 0 or more"
                )))
            } else if f.fract() != 0.0 {
                Err(ParseFailure::new(format!(
                    "fractional count {n}: a count is a whole number"
                )))
            } else {
                Err(ParseFailure::new(format!(
                    "the number {n} is too large for a count (at most {MAX_COUNT})"
                )))
            }
        }
        serde_json::Value::String(s) => parse_count(s),
        other => Err(ParseFailure::new(format!(
            "the count is not a number: {other}"
        ))),
    }
}

/// A spreadsheet or CSV cell that should hold a count.
#[derive(Debug, Clone, PartialEq)]
pub enum CountCell {
    /// A count.
    Count(u64),
    /// An empty cell (whitespace only): a missing answer.
    Empty,
    /// Anything else, verbatim, with why it is not a count (`NaN`, `about 40`, `3.7`, `-1`).
    Invalid { text: String, reason: String },
}

impl CountCell {
    /// The count, if any.
    pub fn value(&self) -> Option<u64> {
        match self {
            CountCell::Count(n) => Some(*n),
            _ => None,
        }
    }
}

/// Reads a cell that should hold a bare count: the cell must be one count and nothing else.
///
/// ```
/// use mica_metrics::parse::{parse_count_cell, CountCell};
/// assert_eq!(parse_count_cell(" 12 "), CountCell::Count(12));
/// assert_eq!(parse_count_cell("12.0"), CountCell::Count(12));
/// assert_eq!(parse_count_cell(""), CountCell::Empty);
/// assert!(matches!(parse_count_cell("3.7"), CountCell::Invalid { .. }));
/// assert!(matches!(parse_count_cell("about 40"), CountCell::Invalid { .. }));
/// ```
pub fn parse_count_cell(cell: &str) -> CountCell {
    let s = cell.trim();
    if s.is_empty() {
        return CountCell::Empty;
    }
    let invalid = |reason: String| CountCell::Invalid {
        text: s.to_string(),
        reason,
    };
    let toks = number_tokens(s);
    match toks.as_slice() {
        [t] if t.start == 0 && t.end == s.len() => match t.as_count() {
            Ok(n) => CountCell::Count(n),
            Err(e) => invalid(e.reason),
        },
        _ => invalid(match parse_count(s) {
            Err(e) => e.reason,
            Ok(_) => "not a bare count (text around the number)".to_string(),
        }),
    }
}

/// A size in µm from text (rules in the module docs).
///
/// ```
/// use mica_metrics::parse::parse_size_um;
/// assert_eq!(parse_size_um("Size: 2.5 µm").unwrap(), 2.5);
/// assert_eq!(parse_size_um("about 350 nm wide").unwrap(), 0.35);
/// assert_eq!(parse_size_um("0.016").unwrap(), 0.016);
/// assert!(parse_size_um("Size: NaN").is_err());
/// assert!(parse_size_um("-3 um").is_err());
/// assert!(parse_size_um("between 2 um and 5 um").is_err());
/// ```
///
/// # Errors
/// A [`ParseFailure`] saying why.
pub fn parse_size_um(text: &str) -> Result<f64, ParseFailure> {
    let t = text.trim();
    if t.is_empty() {
        return Err(ParseFailure::new("empty answer"));
    }
    let lower = t.to_lowercase();
    if is_nan_answer(&lower) {
        return Err(ParseFailure::new("the answer is NaN"));
    }
    let check = |tok: &NumberToken, unit: Option<(f64, f64)>| -> Result<f64, ParseFailure> {
        let (mul, div) = unit.unwrap_or((1.0, 1.0));
        let v = tok.value() * mul / div;
        if tok.negative || v < 0.0 {
            Err(ParseFailure::new(format!(
                "negative size {}: a size is positive",
                tok.text
            )))
        } else if v == 0.0 {
            Err(ParseFailure::new("a size of 0: a size is positive"))
        } else if !v.is_finite() {
            Err(ParseFailure::new(format!(
                "the size {} is not finite",
                tok.text
            )))
        } else {
            Ok(v)
        }
    };
    let toks = size_tokens(&lower);
    // A bare number is µm.
    if let [(tok, None)] = toks.as_slice() {
        if tok.start == 0 && tok.end == lower.len() {
            return check(tok, None);
        }
    }
    if let Some(p) = lower.find("size:").or_else(|| lower.find("size_um:")) {
        let after = p + lower[p..].find(':').unwrap_or(0) + 1;
        let rest = lower[after..].trim_start();
        if starts_with_word(rest, "nan") {
            return Err(ParseFailure::new("the answer is `Size: NaN`"));
        }
        let after_toks: Vec<&(NumberToken, Option<(f64, f64)>)> =
            toks.iter().filter(|(t, _)| t.start >= after).collect();
        if let Some((tok, unit)) = after_toks.first() {
            if let Some((next, _)) = after_toks.get(1) {
                if is_range(&lower, tok, next) {
                    return Err(ParseFailure::new(format!(
                        "a range ({}), not one size",
                        lower[tok.start..next.end].trim()
                    )));
                }
            }
            return check(tok, *unit);
        }
        return Err(ParseFailure::new("no number after `Size:`"));
    }
    let with_unit: Vec<&(NumberToken, Option<(f64, f64)>)> =
        toks.iter().filter(|(_, u)| u.is_some()).collect();
    if with_unit.is_empty() {
        return Err(ParseFailure::new(
            "no size with a unit (nm, µm, um, mm) or `Size: <number>` in the answer",
        ));
    }
    for pair in toks.windows(2) {
        let ((a, ua), (b, ub)) = (&pair[0], &pair[1]);
        if (ua.is_some() || ub.is_some()) && is_range(&lower, a, b) {
            return Err(ParseFailure::new(format!(
                "a range ({}), not one size",
                lower[a.start..b.end].trim()
            )));
        }
    }
    let mut values = Vec::new();
    for (tok, unit) in &with_unit {
        values.push(check(tok, *unit)?);
    }
    let v = values[0];
    if values
        .iter()
        .any(|x| (x - v).abs() > 1e-12 * v.abs().max(1.0))
    {
        return Err(ParseFailure::new(format!(
            "several different sizes ({}) in the answer",
            values
                .iter()
                .map(|x| format!("{x} µm"))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(v)
}

/// A size in µm from a JSON value of a structured answer (a number, or a string read as text).
///
/// # Errors
/// A [`ParseFailure`] for `null`, a non-positive or non-finite number, or another type.
pub fn size_from_json(v: &serde_json::Value) -> Result<f64, ParseFailure> {
    match v {
        serde_json::Value::Null => Err(ParseFailure::new(
            "the model answered null (it cannot tell the size)",
        )),
        serde_json::Value::Number(n) => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            if !f.is_finite() {
                Err(ParseFailure::new(format!("the size {n} is not finite")))
            } else if f <= 0.0 {
                Err(ParseFailure::new(format!("the size {n} is not positive")))
            } else {
                Ok(f)
            }
        }
        serde_json::Value::String(s) => parse_size_um(s),
        other => Err(ParseFailure::new(format!(
            "the size is not a number: {other}"
        ))),
    }
}

/// One class of a label set: the number shown in the prompt, its canonical name and the
/// lower-case strings that name it in a free-text answer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClassLabel {
    /// The class number shown in the prompt (1-based in the study).
    pub id: u32,
    /// Canonical name (for NFFA: the dataset's folder name).
    pub name: String,
    /// Strings that name the class in an answer (lower case), matched as substrings; aliases of
    /// 4 characters or fewer only at a word start.
    pub aliases: Vec<String>,
}

impl ClassLabel {
    /// A label whose aliases are the lower-cased name (underscores as spaces) plus `aliases`.
    pub fn new(id: u32, name: &str, aliases: &[&str]) -> Self {
        let mut all: Vec<String> = vec![name.to_lowercase().replace('_', " ")];
        for a in aliases {
            let a = a.to_lowercase();
            if !all.contains(&a) {
                all.push(a);
            }
        }
        ClassLabel {
            id,
            name: name.to_string(),
            aliases: all,
        }
    }
}

/// The study's ten NFFA-Europe SEM classes, ids 1..=10 in the study's order, names as the
/// dataset's folder names. Aliases include the study's substrings (biological, fibers, coated film,
/// mems, nanowire, particles, patterned surface, porous sponge, powder, tips) and singular, plural
/// and British/American spellings.
pub fn nffa_labels() -> Vec<ClassLabel> {
    vec![
        ClassLabel::new(1, "Biological", &["biological", "biology"]),
        ClassLabel::new(2, "Fibres", &["fibers", "fibres", "fiber", "fibre"]),
        ClassLabel::new(
            3,
            "Films_Coated_Surface",
            &[
                "coated film",
                "films coated surface",
                "film coated surface",
                "coated surface",
                "films",
                "film",
            ],
        ),
        ClassLabel::new(
            4,
            "MEMS_devices_and_electrodes",
            &["mems", "electrode", "microelectromechanical"],
        ),
        ClassLabel::new(5, "Nanowires", &["nanowire", "nano-wire", "nano wire"]),
        ClassLabel::new(
            6,
            "Particles",
            &["particles", "particle", "nanoparticle", "nano-particle"],
        ),
        ClassLabel::new(
            7,
            "Patterned_surface",
            &["patterned surface", "patterned surfaces", "patterned"],
        ),
        ClassLabel::new(
            8,
            "Porous_Sponge",
            &["porous sponge", "porous", "sponge", "sponges"],
        ),
        ClassLabel::new(9, "Powder", &["powder", "powders"]),
        ClassLabel::new(10, "Tips", &["tips", "tip"]),
    ]
}

/// The index into `labels` of the class an answer names.
///
/// ```
/// use mica_metrics::parse::{nffa_labels, parse_class};
/// let labels = nffa_labels();
/// assert_eq!(labels[parse_class("Class 6 (particles)", &labels).unwrap()].name, "Particles");
/// assert_eq!(labels[parse_class("These look like fibers.", &labels).unwrap()].name, "Fibres");
/// assert!(parse_class("NaN", &labels).is_err());
/// ```
///
/// # Errors
/// A [`ParseFailure`] saying why: empty answer, `NaN`, a refusal, or no class number or name.
pub fn parse_class(text: &str, labels: &[ClassLabel]) -> Result<usize, ParseFailure> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(ParseFailure::new("empty answer"));
    }
    if labels.is_empty() {
        return Err(ParseFailure::new("the label set is empty"));
    }
    let lower = trimmed.to_lowercase();
    if is_nan_answer(&lower) {
        return Err(ParseFailure::new("the answer is NaN"));
    }
    let mut numbers_seen = Vec::new();
    for tok in number_tokens(&lower) {
        if tok.negative || tok.exponent || tok.frac_digits.is_some() {
            continue;
        }
        let Ok(n) = tok.int_digits.parse::<u64>() else {
            continue;
        };
        if let Some(i) = labels.iter().position(|l| u64::from(l.id) == n) {
            return Ok(i);
        }
        numbers_seen.push(n);
    }
    for (i, label) in labels.iter().enumerate() {
        if label
            .aliases
            .iter()
            .any(|a| !a.is_empty() && alias_occurs(&lower, &a.to_lowercase()))
        {
            return Ok(i);
        }
    }
    if REFUSALS.iter().any(|r| lower.contains(r)) {
        return Err(ParseFailure::new("refusal: the answer names no class"));
    }
    if contains_word(&lower, "nan") {
        return Err(ParseFailure::new("the answer contains NaN and no class"));
    }
    if !numbers_seen.is_empty() {
        let ids: Vec<String> = labels.iter().map(|l| l.id.to_string()).collect();
        return Err(ParseFailure::new(format!(
            "no class name, and no number in the answer is a class id ({} not in {})",
            numbers_seen
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            ids.join(", ")
        )));
    }
    Err(ParseFailure::new(
        "no class number or class name in the answer",
    ))
}

/// True when the whole answer, stripped of punctuation and markdown, is NaN-like.
fn is_nan_answer(lower: &str) -> bool {
    let core: String = lower
        .chars()
        .filter(|c| !c.is_ascii_punctuation() || *c == '/')
        .collect();
    matches!(
        core.trim(),
        "nan" | "n/a" | "na" | "none" | "count nan" | "size nan"
    )
}

/// Byte positions right after every `count:` / `count =` marker (markdown `**` allowed around
/// it), in text order.
fn count_markers(lower: &str) -> Vec<usize> {
    let mut out = Vec::new();
    let mut search_from = 0;
    while let Some(pos) = lower[search_from..].find("count") {
        let start = search_from + pos;
        let after_word = start + "count".len();
        search_from = after_word;
        let at_word_start = lower[..start]
            .chars()
            .next_back()
            .is_none_or(|c| !c.is_alphanumeric());
        if !at_word_start {
            continue;
        }
        let rest = lower[after_word..].trim_start_matches(['*', '_', ' ', '\t']);
        if let Some(r) = rest.strip_prefix([':', '=']) {
            let r = r.trim_start_matches(['*', '_', ' ', '\t']);
            out.push(lower.len() - r.len());
        }
    }
    out
}

fn starts_with_word(s: &str, word: &str) -> bool {
    s.starts_with(word)
        && s[word.len()..]
            .chars()
            .next()
            .is_none_or(|c| !c.is_alphanumeric())
}

fn contains_word(s: &str, word: &str) -> bool {
    s.match_indices(word).any(|(i, _)| {
        let before_ok = s[..i]
            .chars()
            .next_back()
            .is_none_or(|c| !c.is_alphanumeric());
        let after_ok = s[i + word.len()..]
            .chars()
            .next()
            .is_none_or(|c| !c.is_alphanumeric());
        before_ok && after_ok
    })
}

/// The study's substring rule, with short aliases held to a word start.
fn alias_occurs(s: &str, alias: &str) -> bool {
    if alias.chars().count() > 4 {
        s.contains(alias)
    } else {
        contains_at_word_start(s, alias)
    }
}

fn contains_at_word_start(s: &str, alias: &str) -> bool {
    s.match_indices(alias).any(|(i, _)| {
        s[..i]
            .chars()
            .next_back()
            .is_none_or(|c| !c.is_alphanumeric())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn count_pattern_wins_over_other_numbers() {
        assert_eq!(parse_count("In 3 regions I see... Count: 42").unwrap(), 42);
        assert_eq!(parse_count("**Count:** 17 cells").unwrap(), 17);
        assert_eq!(parse_count("count = 5").unwrap(), 5);
        assert_eq!(
            parse_count("I see 3 clusters. Count: approximately 40").unwrap(),
            40
        );
        assert_eq!(parse_count("Count: 12\nCount: 12").unwrap(), 12);
        let e = parse_count("Count: 12. Later: Count: 14").unwrap_err();
        assert!(e.reason.contains("different"), "{e}");
    }

    #[test]
    fn one_number_without_a_marker() {
        assert_eq!(
            parse_count("There are approximately 40 cells.").unwrap(),
            40
        );
        assert_eq!(parse_count("about 40").unwrap(), 40);
        assert_eq!(parse_count("12").unwrap(), 12);
        assert_eq!(parse_count("  7\r\n").unwrap(), 7);
        assert_eq!(parse_count("12 cells, so 12.").unwrap(), 12);
        // Digits inside words are not numbers.
        assert_eq!(parse_count("In this 2D w1 image: 14 nuclei").unwrap(), 14);
    }

    #[test]
    fn several_numbers_without_a_marker_are_ambiguous() {
        let e = parse_count("7 cells in 3 clusters").unwrap_err();
        assert!(e.reason.contains("several different numbers (7, 3)"), "{e}");
        assert!(parse_count("1,2 and 3").is_err());
    }

    #[test]
    fn thousands_groups() {
        assert_eq!(parse_count("Count: 1,234").unwrap(), 1234);
        assert_eq!(parse_count("1,234 cells").unwrap(), 1234);
    }

    #[test]
    fn negative_fractional_exponent_and_huge_counts_fail() {
        for (text, why) in [
            ("Count: -4", "negative"),
            ("-4", "negative"),
            ("Count: −4", "negative"),
            ("Count: 3.7", "fractional"),
            ("3.7", "fractional"),
            ("Count: 12e4", "exponent"),
            ("12E+3 cells", "exponent"),
            ("99999999999999999999999", "too large"),
            ("Count: 9007199254740993", "too large"),
            ("Count: 40-50", "range"),
            ("Count: 40 - 50", "range"),
            ("Count: 40 to 50", "range"),
            ("40 or 50", "range"),
        ] {
            let e = parse_count(text).unwrap_err();
            assert!(e.reason.contains(why), "{text:?}: {e}");
        }
        assert_eq!(parse_count("Count: 12.0").unwrap(), 12);
        assert_eq!(parse_count(&MAX_COUNT.to_string()).unwrap(), MAX_COUNT);
    }

    #[test]
    fn nan_and_refusals_fail_with_reasons() {
        let e = parse_count("NaN").unwrap_err();
        assert!(e.reason.contains("NaN"), "{e}");
        let e = parse_count("Count: NaN").unwrap_err();
        assert!(e.reason.contains("NaN"), "{e}");
        let e = parse_count("I'm sorry, I can't count these.").unwrap_err();
        assert!(e.reason.contains("refusal"), "{e}");
        let e = parse_count("").unwrap_err();
        assert!(e.reason.contains("empty"), "{e}");
        let e = parse_count("many").unwrap_err();
        assert!(e.reason.contains("no number"), "{e}");
    }

    #[test]
    fn json_counts_are_whole_numbers() {
        assert_eq!(count_from_json(&json!(7)).unwrap(), 7);
        assert_eq!(count_from_json(&json!("Count: 7")).unwrap(), 7);
        for (v, why) in [
            (json!(7.9), "fractional"),
            (json!(-3), "negative"),
            (json!(-3.5), "negative"),
            (json!(1e308), "too large"),
            (json!(null), "null"),
            (json!([1]), "not a number"),
        ] {
            let e = count_from_json(&v).unwrap_err();
            assert!(e.reason.contains(why), "{v}: {e}");
        }
        let big: serde_json::Value = serde_json::from_str("99999999999999999999999").unwrap();
        assert!(count_from_json(&big)
            .unwrap_err()
            .reason
            .contains("too large"));
    }

    #[test]
    fn cells_hold_one_bare_count() {
        assert_eq!(parse_count_cell("5"), CountCell::Count(5));
        assert_eq!(parse_count_cell("  "), CountCell::Empty);
        for cell in ["NaN", "about 40", "3.7", "-1", "1e3", "7 or 8"] {
            assert!(
                matches!(parse_count_cell(cell), CountCell::Invalid { .. }),
                "{cell}"
            );
        }
        let CountCell::Invalid { reason, .. } = parse_count_cell("3.7") else {
            unreachable!()
        };
        assert!(reason.contains("fractional"), "{reason}");
    }

    #[test]
    fn sizes_with_units() {
        assert_eq!(parse_size_um("3").unwrap(), 3.0);
        assert_eq!(parse_size_um("0.0001").unwrap(), 0.0001);
        assert_eq!(parse_size_um("Size: 1.2 mm").unwrap(), 1200.0);
        assert_eq!(parse_size_um("Size: 350nm").unwrap(), 0.35);
        assert_eq!(
            parse_size_um("The fibres are 12 of them, about 0.8 um wide").unwrap(),
            0.8
        );
        assert_eq!(parse_size_um("2 um, i.e. 2000 nm").unwrap(), 2.0);
        for (text, why) in [
            ("no idea", "no size"),
            ("", "empty"),
            ("NaN", "NaN"),
            ("Size: NaN", "NaN"),
            ("-3", "negative"),
            ("Size: -3 um", "negative"),
            ("0", "positive"),
            ("between 2 um and 5 um", "several"),
            ("2-5 um", "range"),
            ("Size: 2 to 5 um", "range"),
        ] {
            let e = parse_size_um(text).unwrap_err();
            assert!(e.reason.contains(why), "{text:?}: {e}");
        }
        assert_eq!(size_from_json(&json!(0.5)).unwrap(), 0.5);
        assert!(size_from_json(&json!(-0.5)).is_err());
        assert!(size_from_json(&json!(null)).is_err());
    }

    #[test]
    fn nffa_labels_are_the_study_classes() {
        let l = nffa_labels();
        let names: Vec<&str> = l.iter().map(|c| c.name.as_str()).collect();
        // The same names, in the same order, as the dataset loader's classes.
        assert_eq!(names, mica_core::dataset::nffa::CLASSES);
        assert!(l.iter().enumerate().all(|(i, c)| c.id == i as u32 + 1));
        for (i, s) in [
            "biological",
            "fibers",
            "coated film",
            "mems",
            "nanowire",
            "particles",
            "patterned surface",
            "porous sponge",
            "powder",
            "tips",
        ]
        .iter()
        .enumerate()
        {
            assert_eq!(parse_class(s, &l).unwrap(), i, "{s}");
        }
    }

    #[test]
    fn class_number_first_then_names_in_fixed_order() {
        let l = nffa_labels();
        assert_eq!(parse_class("10", &l).unwrap(), 9);
        assert_eq!(parse_class("I think it is class 3.", &l).unwrap(), 2);
        // Number wins over a name.
        assert_eq!(parse_class("Powder (9)", &l).unwrap(), 8);
        // Names in the labels' order, not text order: Fibres (2) before Particles (6).
        assert_eq!(parse_class("particles on fibres", &l).unwrap(), 1);
        // British and American spellings, plurals.
        assert_eq!(parse_class("FIBRES", &l).unwrap(), 1);
        assert_eq!(parse_class("a single fiber", &l).unwrap(), 1);
        assert_eq!(parse_class("Nanowires", &l).unwrap(), 4);
        // A number that is not a class id is skipped.
        assert_eq!(parse_class("at 20 kV: nanoparticles", &l).unwrap(), 5);
        // Short aliases match at a word start only: "multiple" does not name Tips...
        assert!(parse_class("multiple things", &l).is_err());
        assert_eq!(parse_class("an AFM tip", &l).unwrap(), 9);
        // ...longer ones anywhere, as in the study: "microfibres" names Fibres.
        assert_eq!(parse_class("microfibres", &l).unwrap(), 1);
    }

    #[test]
    fn class_failures_say_why() {
        let l = nffa_labels();
        assert!(parse_class("NaN", &l).unwrap_err().reason.contains("NaN"));
        assert!(parse_class("  ", &l).unwrap_err().reason.contains("empty"));
        assert!(parse_class("Sorry, I cannot tell.", &l)
            .unwrap_err()
            .reason
            .contains("refusal"));
        assert!(parse_class("class 42", &l)
            .unwrap_err()
            .reason
            .contains("42"));
        assert!(parse_class("x", &[]).unwrap_err().reason.contains("empty"));
    }
}
