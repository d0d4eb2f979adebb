//! Subsets: by a list file (the study's BBBC005-S and NFFA-RS lists) or by deterministic, seeded
//! sampling, optionally stratified by class or by count.

use super::{read_table, Sample};
use crate::error::{Error, Result};
use crate::rng::SplitMix64;
use std::collections::BTreeMap;
use std::path::Path;

/// Image names listed in the first column of a CSV list file (header row expected, as in the
/// study's lists), or one name per line in a `.txt` file. Class-hint prefixes are removed.
///
/// # Errors
/// An unreadable or malformed file, naming it.
pub fn read_list(path: &Path) -> Result<Vec<String>> {
    let is_txt = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("txt"));
    let names: Vec<String> = if is_txt {
        std::fs::read_to_string(path)
            .map_err(|e| Error::io(path, e))?
            .lines()
            .map(|l| l.trim().trim_start_matches('\u{feff}').to_string())
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect()
    } else {
        read_table(path)?
            .rows
            .into_iter()
            .map(|(_, r)| r[0].clone())
            .filter(|n| !n.is_empty())
            .collect()
    };
    Ok(names
        .into_iter()
        .map(|n| super::nffa::strip_class_hint(&n).0.to_string())
        .collect())
}

/// The samples named in `names` (matched by [`super::NameIndex`]: id, then path, then name), in
/// the samples' order, and a message for each listed name that matched no sample or several.
pub fn select_by_names(samples: &[Sample], names: &[String]) -> (Vec<Sample>, Vec<String>) {
    let ix = super::NameIndex::of(samples);
    let mut want = vec![false; samples.len()];
    let mut problems = Vec::new();
    for n in names {
        match ix.find(n) {
            super::Lookup::One(i) => want[i] = true,
            super::Lookup::Missing => problems.push(format!("{n}: not found in the dataset")),
            super::Lookup::Ambiguous(hits) => {
                problems.push(format!("not selected: {}", ix.ambiguity(n, &hits)))
            }
        }
    }
    let chosen = samples
        .iter()
        .zip(&want)
        .filter(|(_, &w)| w)
        .map(|(s, _)| s.clone())
        .collect();
    (chosen, problems)
}

/// How to stratify a seeded sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strata {
    /// Plain random sample.
    None,
    /// Equal share per class (truth class).
    Class,
    /// Equal share per distinct true count.
    Count,
    /// Equal share per value of a metadata field (e.g. stain).
    Meta(&'static str),
}

/// A deterministic sample of `n` samples (all of them if fewer): the same seed and input give
/// the same result. With strata, each stratum gets `n / k` (the remainder going to the first
/// strata in sorted order); strata with too few samples give all they have. The result is
/// sorted by id.
pub fn sample(samples: &[Sample], n: usize, seed: u64, strata: Strata) -> Vec<Sample> {
    let mut rng = SplitMix64::new(seed);
    let key = |s: &Sample| -> String {
        match strata {
            Strata::None => String::new(),
            Strata::Class => s.truth.class.clone().unwrap_or_default(),
            Strata::Count => s
                .truth
                .count
                .map(|c| format!("{c:012.3}"))
                .unwrap_or_default(),
            Strata::Meta(k) => s.meta.get(k).cloned().unwrap_or_default(),
        }
    };
    let mut groups: BTreeMap<String, Vec<&Sample>> = BTreeMap::new();
    let mut sorted: Vec<&Sample> = samples.iter().collect();
    sorted.sort_by(|a, b| a.id.cmp(&b.id));
    for s in sorted {
        groups.entry(key(s)).or_default().push(s);
    }
    let k = groups.len().max(1);
    let mut out = Vec::new();
    for (i, (_, mut g)) in groups.into_iter().enumerate() {
        let quota = n / k + usize::from(i < n % k);
        rng.shuffle(&mut g);
        out.extend(g.into_iter().take(quota).cloned());
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Sample> {
        (0..40)
            .map(|i| {
                let mut s = Sample::new(format!("img{i:02}"), format!("/x/img{i:02}.tif"));
                s.truth.class = Some(if i < 30 { "a" } else { "b" }.into());
                s
            })
            .collect()
    }

    #[test]
    fn same_seed_same_sample_and_strata_balanced() {
        let a = sample(&samples(), 10, 42, Strata::Class);
        let b = sample(&samples(), 10, 42, Strata::Class);
        assert_eq!(a, b);
        assert_eq!(
            a.iter()
                .filter(|s| s.truth.class.as_deref() == Some("b"))
                .count(),
            5
        );
        let c = sample(&samples(), 10, 43, Strata::Class);
        assert_ne!(a, c);
    }

    #[test]
    fn select_reports_missing_names() {
        let (got, missing) = select_by_names(&samples(), &["img01".into(), "nope".into()]);
        assert_eq!(got.len(), 1);
        assert_eq!(missing, vec!["nope: not found in the dataset".to_string()]);
        let two = vec![
            Sample::new("p1/a.tif", "/x/p1/a.tif"),
            Sample::new("p2/a.tif", "/x/p2/a.tif"),
        ];
        let (got, problems) = select_by_names(&two, &["a.tif".into(), "p2/a.tif".into()]);
        assert_eq!(
            got.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
            ["p2/a.tif"]
        );
        assert!(
            problems[0].contains("p1/a.tif and p2/a.tif"),
            "{problems:?}"
        );
    }
}
