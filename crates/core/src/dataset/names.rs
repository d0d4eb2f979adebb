//! Sample identity and the one rule for matching names written by people (answer CSVs, truth
//! tables, subset lists) to samples.
//!
//! A sample's id is its path relative to the dataset root ([`relative_id`]). A key from a table is
//! matched by [`NameIndex::find`], in this order, stopping at the first rule that applies:
//!
//! 1. the key is a sample's id (after [`normalise_key`]);
//! 2. the key holds a folder (`plate1/a.tif`, `/data/bbbc/images/x.tif`): the samples whose id and
//!    key agree on every path component the shorter of the two has (one is a suffix of the other
//!    at a `/`), so a key never matches an image in another folder;
//! 3. the key is a file name: the samples with that [`Sample::name`](super::Sample::name) (class
//!    hint removed);
//! 4. the samples with that [`match_name`] (file name without class hint and extension).
//!
//! When the rule that applies finds more than one sample the key is [`Lookup::Ambiguous`] and the
//! caller must refuse it, naming the samples; it is never given to one of them.

use super::Sample;
use std::collections::HashMap;
use std::path::Path;

/// A key as written, with surrounding blanks, `\` separators and leading `./` removed.
pub fn normalise_key(key: &str) -> String {
    let mut k = key.trim().replace('\\', "/");
    while let Some(rest) = k.strip_prefix("./") {
        k = rest.to_string();
    }
    k
}

/// The id of the image at `path` in a dataset rooted at `root`: the relative path with `/`
/// separators, or the file name when `path` is not under `root`.
pub fn relative_id(root: &Path, path: &Path) -> String {
    let rel = path
        .strip_prefix(root)
        .ok()
        .filter(|r| r.iter().next().is_some());
    match rel {
        Some(r) => r
            .iter()
            .map(|c| c.to_string_lossy())
            .collect::<Vec<_>>()
            .join("/"),
        None => path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string()),
    }
}

/// The name an image is matched on when nothing closer matches: folder, class hint (`L<d>_`) and
/// extension removed.
pub fn match_name(name: &str) -> String {
    let n = normalise_key(name);
    let n = n.rsplit('/').next().unwrap_or(&n);
    let n = super::nffa::strip_class_hint(n).0;
    match n.rsplit_once('.') {
        Some((stem, ext)) if !ext.is_empty() && ext.len() <= 5 && !stem.is_empty() => {
            stem.to_string()
        }
        _ => n.to_string(),
    }
}

/// What a key matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Exactly one sample (its index).
    One(usize),
    /// No sample.
    Missing,
    /// Several samples (their indices): the key must be refused.
    Ambiguous(Vec<usize>),
}

/// Samples indexed for [`NameIndex::find`].
#[derive(Debug, Clone, Default)]
pub struct NameIndex {
    ids: Vec<String>,
    by_id: HashMap<String, usize>,
    by_name: HashMap<String, Vec<usize>>,
    by_stem: HashMap<String, Vec<usize>>,
}

impl NameIndex {
    /// Indexes `samples` by id, name and match name.
    pub fn of(samples: &[Sample]) -> Self {
        Self::new(samples.iter().map(|s| s.id.as_str()))
    }

    /// Indexes sample ids (the name of each is derived from its id as [`Sample::new`] does).
    pub fn new<'a>(ids: impl IntoIterator<Item = &'a str>) -> Self {
        let mut ix = NameIndex::default();
        for (i, id) in ids.into_iter().enumerate() {
            let id = normalise_key(id);
            ix.by_id.insert(id.clone(), i);
            ix.by_name.entry(name_of(&id)).or_default().push(i);
            ix.by_stem.entry(match_name(&id)).or_default().push(i);
            ix.ids.push(id);
        }
        ix
    }

    /// The id of sample `i`.
    pub fn id(&self, i: usize) -> &str {
        &self.ids[i]
    }

    /// Finds the sample a key names (see the module docs for the rules).
    pub fn find(&self, key: &str) -> Lookup {
        let k = normalise_key(key);
        if k.is_empty() {
            return Lookup::Missing;
        }
        if let Some(&i) = self.by_id.get(&k) {
            return Lookup::One(i);
        }
        if k.contains('/') {
            let candidates = self.by_name.get(&name_of(&k)).map(Vec::as_slice);
            let hits: Vec<usize> = candidates
                .unwrap_or_default()
                .iter()
                .copied()
                .filter(|&i| same_path_tail(&self.ids[i], &k))
                .collect();
            return lookup(hits);
        }
        if let Some(hits) = self.by_name.get(&name_of(&k)) {
            return lookup(hits.clone());
        }
        match self.by_stem.get(&match_name(&k)) {
            Some(hits) => lookup(hits.clone()),
            None => Lookup::Missing,
        }
    }

    /// A sentence for an ambiguous key: which samples it matches and what to write instead.
    pub fn ambiguity(&self, key: &str, hits: &[usize]) -> String {
        let ids: Vec<&str> = hits.iter().map(|&i| self.ids[i].as_str()).collect();
        format!(
            "{key:?} matches {} images ({}); write the path relative to the dataset root to say which",
            ids.len(),
            ids.join(" and ")
        )
    }
}

fn lookup(hits: Vec<usize>) -> Lookup {
    match hits.len() {
        0 => Lookup::Missing,
        1 => Lookup::One(hits[0]),
        _ => Lookup::Ambiguous(hits),
    }
}

/// The name of a sample id: its last component without a class hint.
pub(crate) fn name_of(id: &str) -> String {
    let last = id.rsplit('/').next().unwrap_or(id);
    super::nffa::strip_class_hint(last).0.to_string()
}

/// Whether one path ends with the other at a component boundary (the file names may differ only
/// by a class hint).
fn same_path_tail(id: &str, key: &str) -> bool {
    let a: Vec<&str> = id.split('/').collect();
    let b: Vec<&str> = key.split('/').collect();
    let n = a.len().min(b.len());
    let (a, b) = (&a[a.len() - n..], &b[b.len() - n..]);
    a[..n - 1] == b[..n - 1] && name_of(a[n - 1]) == name_of(b[n - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_relative_paths_with_slashes() {
        let root = Path::new("/data/cf");
        assert_eq!(
            relative_id(root, Path::new("/data/cf/plate1/a.tif")),
            "plate1/a.tif"
        );
        assert_eq!(relative_id(root, Path::new("/elsewhere/b.tif")), "b.tif");
        assert_eq!(normalise_key(" .\\plate1\\a.tif "), "plate1/a.tif");
    }

    #[test]
    fn same_file_name_in_two_folders_is_ambiguous_by_name_only() {
        let ix = NameIndex::new(["plate1/a.tif", "plate2/a.tif", "plate2/b.tif"]);
        assert_eq!(ix.find("plate2/a.tif"), Lookup::One(1));
        assert_eq!(ix.find("cf/plate1/a.tif"), Lookup::One(0));
        assert_eq!(ix.find("plate3/a.tif"), Lookup::Missing);
        assert_eq!(ix.find("a.tif"), Lookup::Ambiguous(vec![0, 1]));
        assert_eq!(ix.find("b.tif"), Lookup::One(2));
        assert_eq!(ix.find("b"), Lookup::One(2));
        assert_eq!(ix.find("a"), Lookup::Ambiguous(vec![0, 1]));
        assert_eq!(ix.find("c.tif"), Lookup::Missing);
        let why = ix.ambiguity("a.tif", &[0, 1]);
        assert!(why.contains("plate1/a.tif and plate2/a.tif"), "{why}");
    }

    #[test]
    fn class_hints_and_extensions_follow_the_study_tables() {
        let ix = NameIndex::new(["Fibres/L1_x.jpg", "Tips/y.jpg"]);
        assert_eq!(ix.find("x.jpg"), Lookup::One(0));
        assert_eq!(ix.find("L1_x.jpg"), Lookup::One(0));
        assert_eq!(ix.find("x"), Lookup::One(0));
        assert_eq!(ix.find("Fibres/x.jpg"), Lookup::One(0));
        assert_eq!(ix.find("Tips/x.jpg"), Lookup::Missing);
        assert_eq!(match_name("Fibres/L1_x.jpg"), "x");
    }
}
