//! Datasets without a special naming scheme: a folder of class folders, a flat folder, or a CSV
//! manifest.
//!
//! Manifest columns (names case-insensitive; only the image column is required):
//! `image` (or `path`, `filename`, `file`), `label` (or `class`), `count`, `mask`, `question`,
//! `answer` (or `reference_answer`). Relative paths are relative to the manifest's folder.

use super::{
    file_name, list_images, list_subdirs, normalise_key, read_table, relative_id, Dataset,
    DatasetKind, Problem, Sample,
};
use crate::error::Result;
use std::path::Path;

/// A folder whose subfolders are classes (the subfolder name is the label). Sample ids are
/// `<class>/<file name>`.
///
/// # Errors
/// [`crate::Error::Io`] when a folder cannot be listed.
pub fn load_class_folders(root: &Path) -> Result<Dataset> {
    let mut samples = Vec::new();
    for dir in list_subdirs(root)? {
        let class = file_name(&dir);
        for path in list_images(&dir)? {
            let mut s = Sample::new(relative_id(root, &path), path);
            s.truth.class = Some(class.clone());
            samples.push(s);
        }
    }
    Ok(Dataset {
        kind: DatasetKind::ClassFolders,
        root: root.to_path_buf(),
        samples,
        problems: Vec::new(),
    })
}

/// A flat folder of images, no truth.
///
/// # Errors
/// [`crate::Error::Io`] when the folder cannot be listed.
pub fn load_folder(root: &Path) -> Result<Dataset> {
    let samples = list_images(root)?
        .into_iter()
        .map(|p| Sample::new(file_name(&p), p))
        .collect();
    Ok(Dataset {
        kind: DatasetKind::Folder,
        root: root.to_path_buf(),
        samples,
        problems: Vec::new(),
    })
}

/// A CSV manifest (see the module docs). A sample's id is its image cell as written (relative to
/// the manifest's folder, `/` separators). Rows whose image file does not exist, whose count is
/// not a number, or whose mask file does not exist are listed as problems (the image is kept
/// without that truth when only the truth is bad).
///
/// # Errors
/// An unreadable or malformed CSV, or one without an image column, naming the file.
pub fn load_manifest(path: &Path) -> Result<Dataset> {
    let t = read_table(path)?;
    let base = path.parent().unwrap_or(Path::new("."));
    let img_col = t.require_column(&["image", "path", "filename", "file"])?;
    let label_col = t.column(&["label", "class"]);
    let count_col = t.column(&["count"]);
    let mask_col = t.column(&["mask"]);
    let q_col = t.column(&["question"]);
    let a_col = t.column(&["answer", "reference_answer"]);
    let mut samples = Vec::new();
    let mut problems = Vec::new();
    let mut seen = std::collections::HashMap::new();
    let where_ = |line: u64| format!("{}:{line}", path.display());
    for (line, row) in &t.rows {
        let rel = &row[img_col];
        if rel.is_empty() {
            problems.push(Problem {
                path: path.to_path_buf(),
                reason: format!("{}: empty image cell", where_(*line)),
            });
            continue;
        }
        let img = base.join(rel);
        if !img.is_file() {
            problems.push(Problem {
                path: img,
                reason: format!("{}: image file not found", where_(*line)),
            });
            continue;
        }
        let id = normalise_key(rel);
        if let Some(&first) = seen.get(&id) {
            problems.push(Problem {
                path: img,
                reason: format!(
                    "{}: image {id:?} is listed again (first on line {first}); only the first row is used",
                    where_(*line)
                ),
            });
            continue;
        }
        seen.insert(id.clone(), *line);
        let mut s = Sample::new(id, img);
        let cell = |c: Option<usize>| c.map(|i| row[i].clone()).filter(|v| !v.is_empty());
        s.truth.class = cell(label_col);
        if let Some(c) = cell(count_col) {
            match c.parse::<f64>() {
                Ok(v) if v.is_finite() && v >= 0.0 => s.truth.count = Some(v),
                _ => problems.push(Problem {
                    path: s.path.clone(),
                    reason: format!(
                        "{}: count {c:?} is not a non-negative number",
                        where_(*line)
                    ),
                }),
            }
        }
        if let Some(m) = cell(mask_col) {
            let mp = base.join(&m);
            if mp.is_file() {
                s.truth.mask = Some(mp);
            } else {
                problems.push(Problem {
                    path: mp,
                    reason: format!("{}: mask file not found", where_(*line)),
                });
            }
        }
        s.truth.question = cell(q_col);
        s.truth.answer = cell(a_col);
        samples.push(s);
    }
    Ok(Dataset {
        kind: DatasetKind::Manifest,
        root: path.to_path_buf(),
        samples,
        problems,
    })
}
