//! NFFA-Europe SEM images (Aversa et al. 2018): one folder per class, 1024×768 JPEGs whose bottom
//! 168 rows are the instrument information bar.
//!
//! A sample's id is `<class folder>/<file name>`. File names may start with `L<d>_`, a class hint
//! left by the study; it is removed from the sample's name (what tables are matched on and what may
//! reach a model), so it never reaches a model. Counts come from CSVs of `<image name>,<count>` (the
//! study's `data_ground_truth_NFFA-MS-*_counts.csv`).

use super::{
    file_name, list_images, list_subdirs, read_table, relative_id, Crop, Dataset, DatasetKind,
    Problem, Sample,
};
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The ten NFFA classes, in the order of the study's class ids 1–10.
pub const CLASSES: [&str; 10] = [
    "Biological",
    "Fibres",
    "Films_Coated_Surface",
    "MEMS_devices_and_electrodes",
    "Nanowires",
    "Particles",
    "Patterned_surface",
    "Porous_Sponge",
    "Powder",
    "Tips",
];

/// Full frame of an NFFA image and the part above the information bar.
pub const FULL_WIDTH: u32 = 1024;
pub const FULL_HEIGHT: u32 = 768;
pub const CROPPED_HEIGHT: u32 = 600;

/// Index (0-based) of a class name, case-insensitive; `Fibers` is accepted for `Fibres`.
pub fn class_index(name: &str) -> Option<usize> {
    let n = name.to_ascii_lowercase();
    let n = if n == "fibers" {
        "fibres".to_string()
    } else {
        n
    };
    CLASSES.iter().position(|c| c.to_ascii_lowercase() == n)
}

/// Splits a leading `L<digits>_` class hint from a file name: `("L3_abc.jpg")` →
/// `("abc.jpg", Some(3))`; names without a hint are returned unchanged with `None`.
pub fn strip_class_hint(name: &str) -> (&str, Option<u32>) {
    if let Some(rest) = name.strip_prefix('L') {
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        if !digits.is_empty() {
            if let Some(after) = rest[digits.len()..].strip_prefix('_') {
                if !after.is_empty() {
                    return (after, digits.parse().ok());
                }
            }
        }
    }
    (name, None)
}

/// Options of the NFFA loader.
#[derive(Debug, Clone, Default)]
pub struct NffaOptions {
    /// CSVs of counts: first column the image name, a column named `ground truth`, `count` or
    /// `truth` (else the second column).
    pub counts: Vec<PathBuf>,
    /// Keep only the top 1024×600 of full 1024×768 frames.
    pub crop_info_bar: bool,
}

/// Reads a two-column count table into name → count; names are stored without class hints.
/// Empty or non-numeric cells are skipped (no truth for that image).
///
/// # Errors
/// A malformed table, naming the file.
pub fn read_counts(path: &Path) -> Result<HashMap<String, f64>> {
    let t = read_table(path)?;
    let col = match t.column(&["ground truth", "count", "truth"]) {
        Some(c) => c,
        None if t.header.len() >= 2 => 1,
        None => {
            return Err(Error::Table {
                path: path.to_path_buf(),
                line: 1,
                reason: "needs an image-name column and a count column".into(),
            })
        }
    };
    let mut out: HashMap<String, f64> = HashMap::new();
    for (line, row) in &t.rows {
        let bad = |reason: String| Error::Table {
            path: path.to_path_buf(),
            line: *line,
            reason,
        };
        let cell = row[col].trim();
        // An empty cell or NaN is "no expert count" for that image; anything else that is not a
        // count is an error naming the line, never a silently missing or different truth.
        if cell.is_empty() || ["nan", "na", "n/a"].contains(&cell.to_ascii_lowercase().as_str()) {
            continue;
        }
        let v: f64 = cell
            .parse()
            .map_err(|_| bad(format!("count {cell:?} of {:?} is not a number", row[0])))?;
        if !(v.is_finite() && v >= 0.0) {
            return Err(bad(format!(
                "count {cell:?} of {:?} is not a count (negative or not finite)",
                row[0]
            )));
        }
        let name = strip_class_hint(&row[0]).0.to_string();
        match out.get(&name) {
            Some(&old) if old != v => {
                return Err(bad(format!(
                    "{name:?} has two different counts ({old} and {v})"
                )))
            }
            _ => {
                out.insert(name, v);
            }
        }
    }
    Ok(out)
}

/// Loads an NFFA folder: each subfolder is a class (a name outside the ten classes is kept as the
/// label and reported as a problem so typos are seen).
///
/// # Errors
/// [`Error::Io`] when the folder cannot be listed; a malformed count CSV.
pub fn load(root: &Path, opts: &NffaOptions) -> Result<Dataset> {
    let mut counts = HashMap::new();
    for c in &opts.counts {
        counts.extend(read_counts(c)?);
    }
    let mut samples = Vec::new();
    let mut problems = Vec::new();
    for dir in list_subdirs(root)? {
        let class = file_name(&dir);
        let label = match class_index(&class) {
            Some(i) => CLASSES[i].to_string(),
            None => {
                problems.push(Problem {
                    path: dir.clone(),
                    reason: format!("folder {class:?} is not one of the ten NFFA classes; used as the label as is"),
                });
                class.clone()
            }
        };
        for path in list_images(&dir)? {
            let name = file_name(&path);
            let hint = strip_class_hint(&name).1;
            let mut s = Sample::new(relative_id(root, &path), path.clone());
            s.truth.class = Some(label.clone());
            s.truth.count = counts.get(&s.name).copied();
            if let Some(h) = hint {
                s.meta.insert(super::meta::CLASS_HINT.into(), h.to_string());
            }
            if opts.crop_info_bar {
                s.crop = Some(Crop {
                    x: 0,
                    y: 0,
                    width: FULL_WIDTH,
                    height: CROPPED_HEIGHT,
                });
            }
            samples.push(s);
        }
    }
    Ok(Dataset {
        kind: DatasetKind::Nffa,
        root: root.to_path_buf(),
        samples,
        problems,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_hint_only_when_well_formed() {
        assert_eq!(strip_class_hint("L3_abc.jpg"), ("abc.jpg", Some(3)));
        assert_eq!(strip_class_hint("L10_x.jpg"), ("x.jpg", Some(10)));
        assert_eq!(strip_class_hint("Lx_abc.jpg"), ("Lx_abc.jpg", None));
        assert_eq!(strip_class_hint("L3abc.jpg"), ("L3abc.jpg", None));
        assert_eq!(strip_class_hint("L3_"), ("L3_", None));
        assert_eq!(strip_class_hint("abc.jpg"), ("abc.jpg", None));
    }

    /// Regression: a truth cell that is not a count (`abc`, `-3`) was dropped silently, so the
    /// image was scored as "no truth" with nothing said; a second row with another count
    /// overwrote the first.
    #[test]
    fn count_csv_cell_that_is_not_a_count_is_an_error_naming_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.csv");
        let read = |body: &str| {
            std::fs::write(&p, body).unwrap();
            read_counts(&p)
        };
        let ok =
            read("image,ground truth\na.jpg,3\nb.jpg,\nc.jpg,NaN\nL2_d.jpg,5\na.jpg,3\n").unwrap();
        assert_eq!(ok.len(), 2, "{ok:?}");
        assert_eq!((ok["a.jpg"], ok["d.jpg"]), (3.0, 5.0));
        for (body, want) in [
            ("image,ground truth\na.jpg,3\nb.jpg,abc\n", "c.csv:3"),
            ("image,ground truth\na.jpg,-3\n", "negative"),
            (
                "image,ground truth\na.jpg,3\na.jpg,4\n",
                "two different counts",
            ),
        ] {
            let e = read(body).unwrap_err().to_string();
            assert!(e.contains(want) && e.contains("c.csv"), "{body:?}: {e}");
        }
    }

    #[test]
    fn class_names_and_spelling() {
        assert_eq!(class_index("fibers"), Some(1));
        assert_eq!(class_index("Tips"), Some(9));
        assert_eq!(class_index("Cells"), None);
    }
}
