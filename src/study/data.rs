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
    if let Some(list) = &spec.subset {
        let list_path = study.resolve(list);
        let names = dataset::subset::read_list(&list_path)
            .with_context(|| format!("dataset {:?}: subset list", spec.name))?;
        let (chosen, missing) = dataset::subset::select_by_names(&samples, &names);
        for m in missing {
            problems.push(format!(
                "{m}: listed in {} but not found in the dataset",
                list_path.display()
            ));
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
    })
}

/// A `table` dataset: truth from CSV columns; the image path is the name next to the CSV (it need
/// not exist).
fn load_table(spec: &DatasetSpec, path: &Path) -> anyhow::Result<Vec<Sample>> {
    let t = dataset::read_table(path)
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
        let id = dataset::nffa::strip_class_hint(raw).0.to_string();
        let mut s = Sample::new(id, dir.join(raw));
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
