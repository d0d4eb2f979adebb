//! Turning a model's free-text answer into a count or a class, saying *why* when that fails.
//!
//! The rules follow the study (see `shared/STUDY.md`, "Tasks as run") with a few documented
//! refinements:
//!
//! - **Counts** ([`parse_count`]): a `Count: <n>` pattern (case-insensitive, `:` or `=`, markdown
//!   emphasis such as `**Count:** 12` allowed; the first integer after the marker, so
//!   `Count: about 40` is 40) wins; otherwise the first integer in the text (the
//!   study's rule). An answer that is `NaN` (or `Count: NaN`), empty, or a refusal without any
//!   integer is a failure with a reason. Refinement: `1,234` with comma-separated groups of exactly
//!   three digits is read as 1234 (the study's `\d+` would read 1). Number words ("twelve") are
//!   deliberately not read: "one" occurs in too many refusals ("no one can tell").
//! - **Classes** ([`parse_class`]): the first integer in the text that is one of the labels' ids
//!   (the class numbers shown in the prompt) wins; otherwise the first label, in the labels' fixed
//!   order, one of whose aliases occurs in the text as a substring (the study's rule), matched
//!   case-insensitively. Refinement: a short alias (4 characters or fewer, e.g. `tip`, `mems`)
//!   must start at a word boundary, so `tip` does not match inside "mul*tip*le"; it may still end
//!   anywhere (`tip` matches "tips").

use std::fmt;

/// Why an answer could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseFailure {
    /// A short human-readable reason, e.g. "the answer is NaN" or "no integer in the answer".
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

/// A count from a free-text answer.
///
/// ```
/// use mica_metrics::parse::parse_count;
/// assert_eq!(parse_count("I see 3 groups. Count: 12").unwrap(), 12);
/// assert_eq!(parse_count("There are 7 cells.").unwrap(), 7);
/// assert!(parse_count("NaN").is_err());
/// ```
///
/// # Errors
/// A [`ParseFailure`] saying why: empty answer, `NaN`, a refusal, no integer, or a number too
/// large for `u64`.
pub fn parse_count(text: &str) -> Result<u64, ParseFailure> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(ParseFailure::new("empty answer"));
    }
    let lower = trimmed.to_lowercase();
    if is_nan_answer(&lower) {
        return Err(ParseFailure::new("the answer is NaN"));
    }
    if let Some(after) = count_pattern_value(&lower) {
        let after = after.trim_start();
        if starts_with_word(after, "nan") {
            return Err(ParseFailure::new("the answer is `Count: NaN`"));
        }
        if let Some(n) = first_integer(after)? {
            return Ok(n);
        }
    }
    match first_integer(&lower)? {
        Some(n) => Ok(n),
        None => {
            if REFUSALS.iter().any(|r| lower.contains(r)) {
                Err(ParseFailure::new("refusal: the answer gives no count"))
            } else if contains_word(&lower, "nan") {
                Err(ParseFailure::new("the answer contains NaN and no integer"))
            } else {
                Err(ParseFailure::new("no integer in the answer"))
            }
        }
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
    for (start, end) in integer_spans(&lower) {
        let Ok(n) = lower[start..end].parse::<u64>() else {
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
    matches!(core.trim(), "nan" | "n/a" | "na" | "none" | "count nan")
}

/// The text after a `count:` / `count =` marker (markdown `**` allowed around it), if any.
fn count_pattern_value(lower: &str) -> Option<&str> {
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
            return Some(r.trim_start_matches(['*', '_', ' ', '\t']));
        }
    }
    None
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

/// Byte spans of maximal ASCII digit runs (with `,ddd` thousands groups joined).
fn integer_spans(s: &str) -> Vec<(usize, usize)> {
    let b = s.as_bytes();
    let mut spans = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() {
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            // Thousands groups: ",ddd" not followed by another digit.
            while i + 4 <= b.len()
                && b[i] == b','
                && b[i + 1..i + 4].iter().all(u8::is_ascii_digit)
                && b.get(i + 4).is_none_or(|c| !c.is_ascii_digit())
            {
                i += 4;
            }
            spans.push((start, i));
        } else {
            i += 1;
        }
    }
    spans
}

fn parse_digits(s: &str) -> Result<u64, ParseFailure> {
    let digits: String = s.chars().filter(|c| *c != ',').collect();
    digits
        .parse::<u64>()
        .map_err(|_| ParseFailure::new(format!("the number {s} is too large for a count")))
}

fn first_integer(s: &str) -> Result<Option<u64>, ParseFailure> {
    match integer_spans(s).first() {
        Some(&(a, b)) => parse_digits(&s[a..b]).map(Some),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_pattern_wins_over_first_integer() {
        assert_eq!(parse_count("In 3 regions I see... Count: 42").unwrap(), 42);
        assert_eq!(parse_count("**Count:** 17 cells").unwrap(), 17);
        assert_eq!(parse_count("count = 5").unwrap(), 5);
        assert_eq!(
            parse_count("I see 3 clusters. Count: approximately 40").unwrap(),
            40
        );
    }

    #[test]
    fn first_integer_otherwise() {
        assert_eq!(
            parse_count("There are approximately 40 cells.").unwrap(),
            40
        );
        assert_eq!(parse_count("about 40").unwrap(), 40);
        assert_eq!(parse_count("12").unwrap(), 12);
        assert_eq!(parse_count("  7\r\n").unwrap(), 7);
    }

    #[test]
    fn thousands_groups() {
        assert_eq!(parse_count("Count: 1,234").unwrap(), 1234);
        assert_eq!(parse_count("1,2 and 3").unwrap(), 1);
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
        assert!(e.reason.contains("no integer"), "{e}");
        let e = parse_count("99999999999999999999999").unwrap_err();
        assert!(e.reason.contains("too large"), "{e}");
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
