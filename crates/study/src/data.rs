//! Loading a study's datasets into samples, with subsets, filters and seeded sampling.

use super::schema::{DatasetKindSpec, DatasetSpec, Study};
use anyhow::{bail, Context};
use mica_core::dataset::{self, DatasetKind, OpenOptions, Sample};
use std::path::Path;

/// A loaded dataset of the study.
#[derive(Debug, Clone)]
pub struct LoadedDataset {
    pub name: String,
    pub samples: Vec<Sample>,
    /// Files skipped while loading and listed names that matched no image, with the reason.
    pub problems: Vec<String>,
    /// Whether the images exist (false for `table` datasets: answers only).
    pub has_images: bool,
    /// Whether the truth masks are instance label images (scored with instance metrics too).
    pub instance_truth: bool,
}

/// Loads one dataset of `study`.
///
/// # Errors
/// The dataset's folder or CSV cannot be read, or a subset list is malformed.
pub fn load(study: &Study, spec: &DatasetSpec) -> anyhow::Result<LoadedDataset> {
    let path = study.resolve(&spec.path);
    let mut problems = Vec::new();
    let (mut samples, has_images) = if spec.kind == DatasetKindSpec::Table {
        (load_table(spec, &path)?, false)
    } else {
        let kind = match spec.kind {
            DatasetKindSpec::Bbbc005 => DatasetKind::Bbbc005,
            DatasetKindSpec::Nffa => DatasetKind::Nffa,
            DatasetKindSpec::Folder => DatasetKind::Folder,
            DatasetKindSpec::ClassFolders => DatasetKind::ClassFolders,
            DatasetKindSpec::Manifest | DatasetKindSpec::Table => DatasetKind::Manifest,
        };
        let opts = OpenOptions {
            kind: Some(kind),
            masks: spec.masks.as_ref().map(|m| study.resolve(m)),
            counts: spec.counts.iter().map(|c| study.resolve(c)).collect(),
            crop_info_bar: spec.crop_info_bar,
        };
        let ds = dataset::open(&path, &opts)
            .with_context(|| format!("dataset {:?}: cannot load {}", spec.name, path.display()))?;
        problems.extend(
            ds.problems
                .iter()
                .map(|p| format!("{}: {}", p.path.display(), p.reason)),
        );
        (ds.samples, true)
    };
    if let Some(t) = &spec.truth_table {
        apply_truth_table(spec, &study.resolve(t), &mut samples, &mut problems)?;
    }
    if spec.instance_masks {
        count_instance_labels(&mut samples, &mut problems);
    }
    if let Some(q) = &spec.question {
        for s in &mut samples {
            s.truth.question = Some(q.clone());
        }
    }
    if let Some(list) = &spec.subset {
        let list_path = study.resolve(list);
        let names = dataset::subset::read_list(&list_path)
            .with_context(|| format!("dataset {:?}: subset list", spec.name))?;
        let (chosen, missing) = dataset::subset::select_by_names(&samples, &names);
        for m in missing {
            problems.push(format!("{}: {m}", list_path.display()));
        }
        samples = chosen;
    }
    if !spec.filter.is_empty() {
        samples.retain(|s| {
            spec.filter.iter().all(|(k, v)| match s.meta.get(k) {
                Some(x) => x == v,
                None if k == "class" => s.truth.class.as_deref() == Some(v.as_str()),
                None => false,
            })
        });
    }
    if let Some(n) = spec.sample {
        samples =
            dataset::subset::sample(&samples, n, study.file.seed, dataset::subset::Strata::None);
    }
    if samples.is_empty() {
        bail!(
            "dataset {:?}: no samples left at {} (after subset and filter)",
            spec.name,
            path.display()
        );
    }
    Ok(LoadedDataset {
        name: spec.name.clone(),
        samples,
        problems,
        has_images,
        instance_truth: spec.instance_masks,
    })
}

/// For a dataset whose masks are instance label images: a sample without a true count gets the
/// number of objects (distinct non-zero labels) of its label image, recorded as
/// `truth_count_from = instance labels`; an unreadable label image is a problem naming it.
fn count_instance_labels(samples: &mut [Sample], problems: &mut Vec<String>) {
    use rayon::prelude::*;
    let counted: Vec<Option<Result<usize, String>>> = samples
        .par_iter()
        .map(|s| {
            let m = s.truth.mask.as_ref().filter(|_| s.truth.count.is_none())?;
            Some(
                mica_core::io::read_label_image(m)
                    .map(|l| l.num_objects())
                    .map_err(|e| format!("{e} (no true count for {})", s.id)),
            )
        })
        .collect();
    for (s, c) in samples.iter_mut().zip(counted) {
        match c {
            Some(Ok(n)) => {
                s.truth.count = Some(n as f64);
                s.meta.insert(
                    dataset::meta::TRUTH_COUNT_FROM.into(),
                    "instance labels".into(),
                );
            }
            Some(Err(e)) => problems.push(e),
            None => {}
        }
    }
}

/// A `table` dataset: truth from CSV columns; the image path is the name next to the CSV (it need
/// not exist).
fn load_table(spec: &DatasetSpec, path: &Path) -> anyhow::Result<Vec<Sample>> {
    let t = read_any_table(path)
        .with_context(|| format!("dataset {:?}: cannot read table", spec.name))?;
    let id_col = match &spec.id_column {
        Some(c) => t.require_column(&[c.as_str()])?,
        None => 0,
    };
    let class_col = match &spec.class_column {
        Some(c) => Some(t.require_column(&[c.as_str()])?),
        None => None,
    };
    let count_col = match &spec.count_column {
        Some(c) => Some(t.require_column(&[c.as_str()])?),
        None => None,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut out = Vec::new();
    for (line, row) in &t.rows {
        let raw = &row[id_col];
        if raw.is_empty() {
            continue;
        }
        let mut s = Sample::new(raw.as_str(), dir.join(raw));
        if let Some(c) = class_col {
            let v = row[c].trim();
            if !v.is_empty() {
                s.truth.class = Some(v.to_string());
            }
        }
        if let Some(c) = count_col {
            let v = row[c].trim();
            if !v.is_empty() {
                let n: f64 = v.parse().with_context(|| {
                    format!("{}:{line}: count {v:?} is not a number", path.display())
                })?;
                s.truth.count = Some(n);
            }
        }
        out.push(s);
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// A table from a CSV (core's reader) or from the first worksheet of a spreadsheet (`.xlsx`,
/// `.xlsm`, `.xls`, `.ods`): the first row is the header, cells are trimmed, and each row keeps its
/// row number in the sheet as its line number. Rows shorter than the header are padded with "".
///
/// # Errors
/// The file cannot be read or parsed, or the sheet is empty.
pub fn read_any_table(path: &Path) -> anyhow::Result<dataset::Table> {
    if !mica_store::sheet::is_spreadsheet(path) {
        return Ok(dataset::read_table(path)?);
    }
    let mut rows = mica_store::sheet::read_first_sheet(path)?.into_iter();
    let header: Vec<String> = rows
        .next()
        .with_context(|| format!("{}: the first worksheet is empty", path.display()))?
        .into_iter()
        .map(|c| c.trim().to_string())
        .collect();
    let width = header.len();
    let rows = rows
        .enumerate()
        .map(|(i, r)| {
            let mut r: Vec<String> = r.into_iter().map(|c| c.trim().to_string()).collect();
            r.resize(width.max(r.len()), String::new());
            (i as u64 + 2, r)
        })
        .collect();
    Ok(dataset::Table {
        path: path.to_path_buf(),
        header,
        rows,
    })
}

/// Sets truth from `spec.truth_table` on the samples it names.
fn apply_truth_table(
    spec: &DatasetSpec,
    path: &Path,
    samples: &mut [Sample],
    problems: &mut Vec<String>,
) -> anyhow::Result<()> {
    let what = || format!("dataset {:?}: truth table", spec.name);
    let t = read_any_table(path).with_context(what)?;
    let key = match &spec.truth_key_column {
        Some(k) => t.require_column(&[k.as_str()]).with_context(what)?,
        None => 0,
    };
    let col = |c: &Option<String>| -> anyhow::Result<Option<usize>> {
        c.as_ref()
            .map(|c| t.require_column(&[c.as_str()]).with_context(what))
            .transpose()
    };
    let (count_col, ref_col, size_col) = (
        col(&spec.truth_count_column)?,
        col(&spec.reference_column)?,
        col(&spec.truth_size_column)?,
    );
    let index = dataset::NameIndex::of(samples);
    let mut matched = std::collections::HashSet::new();
    for (line, row) in &t.rows {
        let i = match index.find(&row[key]) {
            dataset::Lookup::One(i) => i,
            dataset::Lookup::Missing => continue,
            dataset::Lookup::Ambiguous(hits) => {
                problems.push(format!(
                    "{}:{line}: truth not used: {}",
                    path.display(),
                    index.ambiguity(&row[key], &hits)
                ));
                continue;
            }
        };
        if !matched.insert(i) {
            bail!(
                "{}:{line}: image {:?} is listed twice",
                path.display(),
                row[key]
            );
        }
        let s = &mut samples[i];
        let number = |c: usize, what: &str| -> anyhow::Result<Option<f64>> {
            let v = row[c].trim();
            if v.is_empty() {
                return Ok(None);
            }
            v.parse::<f64>()
                .map(Some)
                .with_context(|| format!("{}:{line}: {what} {v:?} is not a number", path.display()))
        };
        if let Some(c) = count_col {
            if let Some(n) = number(c, "count")? {
                s.truth.count = Some(n);
            }
        }
        if let Some(c) = size_col {
            if let Some(v) = number(c, "size")? {
                s.meta
                    .insert(dataset::meta::TRUTH_SIZE_UM.into(), v.to_string());
            }
        }
        if let Some(c) = ref_col {
            if !row[c].is_empty() {
                s.truth.answer = Some(row[c].clone());
            }
        }
    }
    if matched.len() < samples.len() {
        problems.push(format!(
            "{} of {} images have no row in {}",
            samples.len() - matched.len(),
            samples.len(),
            path.display()
        ));
    }
    Ok(())
}
