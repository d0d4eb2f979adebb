//! Prediction tables (CSV) as real users have them: a UTF-8 byte-order mark, Windows line endings,
//! empty cells and non-numeric answers are handled explicitly and reported, never silently.
//!
//! - [`read_count_table`]: one image per row; a truth column (`ground truth` or `truth` by
//!   default); every other column except the image name (the first other column) is a method.
//! - [`read_class_table`]: a truth column and a prediction column, as text.

use crate::error::{MetricsError, Result};
use std::path::{Path, PathBuf};

/// One cell of a count column.
#[derive(Debug, Clone, PartialEq)]
pub enum CountCell {
    /// A finite number.
    Number(f64),
    /// An empty cell (whitespace only).
    Empty,
    /// Anything else ("NaN", "about 40", "inf"), kept verbatim.
    NonNumeric(String),
}

impl CountCell {
    /// Reads a cell: a finite number after trimming, else empty or non-numeric.
    pub fn parse(raw: &str) -> Self {
        let s = raw.trim();
        if s.is_empty() {
            return CountCell::Empty;
        }
        match s.parse::<f64>() {
            Ok(v) if v.is_finite() => CountCell::Number(v),
            _ => CountCell::NonNumeric(s.to_string()),
        }
    }

    /// The number, if any.
    pub fn value(&self) -> Option<f64> {
        match self {
            CountCell::Number(v) => Some(*v),
            _ => None,
        }
    }
}

/// One method's answers, aligned with [`CountTable::images`].
#[derive(Debug, Clone, PartialEq)]
pub struct MethodColumn {
    /// The header of the column.
    pub name: String,
    pub cells: Vec<CountCell>,
}

impl MethodColumn {
    /// The answers as `Option<f64>` (`None` = missing: empty or non-numeric).
    pub fn values(&self) -> Vec<Option<f64>> {
        self.cells.iter().map(CountCell::value).collect()
    }

    /// Number of empty cells.
    pub fn empty(&self) -> usize {
        self.cells
            .iter()
            .filter(|c| matches!(c, CountCell::Empty))
            .count()
    }

    /// Non-numeric cells as (row index, text).
    pub fn non_numeric(&self) -> Vec<(usize, &str)> {
        self.cells
            .iter()
            .enumerate()
            .filter_map(|(i, c)| match c {
                CountCell::NonNumeric(s) => Some((i, s.as_str())),
                _ => None,
            })
            .collect()
    }
}

/// A row left out because its truth is not a number.
#[derive(Debug, Clone, PartialEq)]
pub struct SkippedRow {
    /// 1-based line number in the file (the header is line 1).
    pub line: u64,
    /// Image name.
    pub image: String,
    /// The truth cell as written.
    pub truth: String,
}

/// A counting prediction table. Only rows with a numeric truth are kept; the others are in
/// [`CountTable::skipped`].
#[derive(Debug, Clone, PartialEq)]
pub struct CountTable {
    pub path: PathBuf,
    /// Header of the image-name column.
    pub image_column: String,
    /// Header of the truth column, or where the truth came from when it is not a column.
    pub truth_column: String,
    /// Whether the truth came from elsewhere than a column (see [`read_count_table_with_truth`]).
    pub truth_external: bool,
    /// 1-based line number of each kept row in the file (the header is line 1).
    pub lines: Vec<u64>,
    /// Image names of the kept rows.
    pub images: Vec<String>,
    /// True counts of the kept rows.
    pub truth: Vec<f64>,
    /// One entry per method column, in file order.
    pub methods: Vec<MethodColumn>,
    /// Rows without a numeric truth (not scored, reported).
    pub skipped: Vec<SkippedRow>,
    /// Rows that repeat an earlier row exactly (counted once), as notes for the user.
    pub duplicates: Vec<String>,
}

/// Default names of the truth column, tried in order (case-insensitive, trimmed).
pub const DEFAULT_TRUTH_COLUMNS: [&str; 2] = ["ground truth", "truth"];

/// Reads a counting table.
///
/// # Errors
/// [`MetricsError::Io`] when unreadable; [`MetricsError::MissingColumn`] when the truth column is
/// not there; [`MetricsError::Table`] for no header, fewer than two columns, ragged rows or
/// invalid UTF-8 — each naming the file (and line).
pub fn read_count_table(path: &Path, truth_column: Option<&str>) -> Result<CountTable> {
    let (header, rows) = read_csv(path)?;
    let truth_idx = find_truth_column(path, &header, truth_column)?;
    let image_idx =
        (0..header.len())
            .find(|&i| i != truth_idx)
            .ok_or_else(|| MetricsError::Table {
                path: path.to_path_buf(),
                line: 1,
                reason: "needs an image-name column besides the truth column".into(),
            })?;
    let method_idx: Vec<usize> = (0..header.len())
        .filter(|&i| i != truth_idx && i != image_idx)
        .collect();
    let truth = |row: &[String]| match CountCell::parse(&row[truth_idx]) {
        CountCell::Number(t) => Ok(t),
        _ => Err(row[truth_idx].trim().to_string()),
    };
    let truth_name = header[truth_idx].clone();
    build_count_table(
        path,
        &header,
        rows,
        image_idx,
        &method_idx,
        truth_name,
        false,
        &truth,
    )
}

/// A count table from rows: one kept row per image (see [`dedupe_rows`]) whose `truth(row)` is a
/// number; the others are skipped with the `Err` text as their truth.
#[allow(clippy::too_many_arguments)]
fn build_count_table(
    path: &Path,
    header: &[String],
    rows: Rows,
    image_idx: usize,
    method_idx: &[usize],
    truth_column: String,
    truth_external: bool,
    truth: &dyn Fn(&[String]) -> std::result::Result<f64, String>,
) -> Result<CountTable> {
    let (rows, duplicates) = dedupe_rows(path, rows, image_idx)?;
    let mut table = CountTable {
        path: path.to_path_buf(),
        image_column: header[image_idx].clone(),
        truth_column,
        truth_external,
        lines: Vec::new(),
        images: Vec::new(),
        truth: Vec::new(),
        methods: method_idx
            .iter()
            .map(|&i| MethodColumn {
                name: header[i].clone(),
                cells: Vec::new(),
            })
            .collect(),
        skipped: Vec::new(),
        duplicates,
    };
    for (line, row) in rows {
        let image = row[image_idx].trim().to_string();
        match truth(&row) {
            Ok(t) => {
                table.lines.push(line);
                table.images.push(image);
                table.truth.push(t);
                for (m, &i) in table.methods.iter_mut().zip(method_idx) {
                    m.cells.push(CountCell::parse(&row[i]));
                }
            }
            Err(why) => table.skipped.push(SkippedRow {
                line,
                image,
                truth: why,
            }),
        }
    }
    Ok(table)
}

/// Reads a counting table whose truth is not a column: the first column names the images, every
/// other column is a method, and `truth(image)` gives the true count of an image (`Ok(None)`: no
/// truth known; `Err(reason)`: the truth cannot be told, e.g. the name matches two images). Rows
/// without a truth are in [`CountTable::skipped`] with the reason; the same checks as
/// [`read_count_table`] apply (repeated rows, columns with one name).
///
/// # Errors
/// As [`read_count_table`].
pub fn read_count_table_with_truth(
    path: &Path,
    truth_source: &str,
    truth: &dyn Fn(&str) -> std::result::Result<Option<f64>, String>,
) -> Result<CountTable> {
    let (header, rows) = read_csv(path)?;
    let method_idx: Vec<usize> = (1..header.len()).collect();
    let by_image = |row: &[String]| match truth(row[0].trim()) {
        Ok(Some(t)) => Ok(t),
        Ok(None) => Err(format!("no true count in {truth_source}")),
        Err(why) => Err(why),
    };
    build_count_table(
        path,
        &header,
        rows,
        0,
        &method_idx,
        truth_source.to_string(),
        true,
        &by_image,
    )
}

/// A classification prediction table: truth and prediction as text, one row per image.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassTable {
    pub path: PathBuf,
    /// 1-based line of each row.
    pub lines: Vec<u64>,
    pub truth: Vec<String>,
    pub prediction: Vec<String>,
    /// Rows that repeat an earlier row exactly (counted once), as notes for the user.
    pub duplicates: Vec<String>,
}

/// Reads the two named columns of a classification table. The first other column names the
/// images: a row repeating an earlier one exactly is counted once (noted), and one image on two
/// rows with different cells is an error naming the image.
///
/// # Errors
/// As [`read_count_table`]; [`MetricsError::MissingColumn`] for either column.
pub fn read_class_table(path: &Path, truth_column: &str, pred_column: &str) -> Result<ClassTable> {
    let (header, rows) = read_csv(path)?;
    let t = find_column(path, &header, truth_column)?;
    let p = find_column(path, &header, pred_column)?;
    let (rows, duplicates) = match (0..header.len()).find(|&i| i != t && i != p) {
        Some(image_idx) => dedupe_rows(path, rows, image_idx)?,
        None => (rows, Vec::new()),
    };
    let mut table = ClassTable {
        path: path.to_path_buf(),
        lines: Vec::new(),
        truth: Vec::new(),
        prediction: Vec::new(),
        duplicates,
    };
    for (line, row) in rows {
        table.lines.push(line);
        table.truth.push(row[t].clone());
        table.prediction.push(row[p].clone());
    }
    Ok(table)
}

/// Every cell of a table as text, for grouping rows by any column (e.g. `mica eval --by
/// column:NAME`). Rows align with the `lines` of [`CountTable`] and [`ClassTable`] by line number.
#[derive(Debug, Clone, PartialEq)]
pub struct RawTable {
    pub path: PathBuf,
    pub header: Vec<String>,
    /// (1-based line number, cells) per row, in file order.
    pub rows: Vec<(u64, Vec<String>)>,
}

impl RawTable {
    /// Index of a column by header (exact after trimming, else ASCII case-insensitive).
    ///
    /// # Errors
    /// [`MetricsError::MissingColumn`] naming the file and the available columns.
    pub fn column_index(&self, name: &str) -> Result<usize> {
        find_column(&self.path, &self.header, name)
    }
}

/// Reads a prediction table with every cell as text (same reader and checks as
/// [`read_count_table`]).
///
/// # Errors
/// As [`read_count_table`].
pub fn read_raw_table(path: &Path) -> Result<RawTable> {
    let (header, rows) = read_csv(path)?;
    Ok(RawTable {
        path: path.to_path_buf(),
        header,
        rows,
    })
}

fn find_column(path: &Path, header: &[String], wanted: &str) -> Result<usize> {
    let w = wanted.trim();
    header
        .iter()
        .position(|h| h.trim() == w)
        .or_else(|| header.iter().position(|h| h.trim().eq_ignore_ascii_case(w)))
        .ok_or_else(|| MetricsError::MissingColumn {
            path: path.to_path_buf(),
            wanted: format!("\"{w}\""),
            available: quoted(header),
        })
}

fn find_truth_column(path: &Path, header: &[String], wanted: Option<&str>) -> Result<usize> {
    match wanted {
        Some(w) => find_column(path, header, w),
        None => DEFAULT_TRUTH_COLUMNS
            .iter()
            .find_map(|d| header.iter().position(|h| h.trim().eq_ignore_ascii_case(d)))
            .ok_or_else(|| MetricsError::MissingColumn {
                path: path.to_path_buf(),
                wanted: "\"ground truth\" or \"truth\" (name it with --truth-column)".into(),
                available: quoted(header),
            }),
    }
}

fn quoted(header: &[String]) -> String {
    header
        .iter()
        .map(|h| format!("\"{h}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

type Rows = Vec<(u64, Vec<String>)>;

/// Keeps the first of rows naming the same image (column `image_idx`, trimmed) when they are
/// identical, with a note for each repeat; rows naming one image with different cells are an
/// error naming the image and both lines (which one would be right cannot be known).
fn dedupe_rows(path: &Path, rows: Rows, image_idx: usize) -> Result<(Rows, Vec<String>)> {
    let mut first: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut kept: Rows = Vec::with_capacity(rows.len());
    let mut notes = Vec::new();
    let trimmed = |r: &[String]| r.iter().map(|c| c.trim().to_string()).collect::<Vec<_>>();
    for (line, row) in rows {
        let image = row[image_idx].trim().to_string();
        if image.is_empty() {
            kept.push((line, row));
            continue;
        }
        match first.get(&image) {
            Some(&k) => {
                let (first_line, first_row) = &kept[k];
                if trimmed(first_row) != trimmed(&row) {
                    return Err(MetricsError::Table {
                        path: path.to_path_buf(),
                        line,
                        reason: format!(
                            "image {image:?} is also on line {first_line} with different values; keep one row per image"
                        ),
                    });
                }
                notes.push(format!(
                    "{}:{line}: repeats line {first_line} (image {image:?}); counted once",
                    path.display()
                ));
            }
            None => {
                first.insert(image, kept.len());
                kept.push((line, row));
            }
        }
    }
    Ok((kept, notes))
}

/// Header and rows with their 1-based line numbers, read by the core crate's CSV reader (BOM,
/// CRLF, blank lines, ragged rows), plus the check that a prediction table has two columns.
fn read_csv(path: &Path) -> Result<(Vec<String>, Rows)> {
    let t = mica_core::dataset::read_table(path).map_err(|e| match e {
        mica_core::Error::Io { path, source } => MetricsError::Io { path, source },
        mica_core::Error::Table { path, line, reason } => {
            MetricsError::Table { path, line, reason }
        }
        other => MetricsError::Table {
            path: path.to_path_buf(),
            line: 0,
            reason: other.to_string(),
        },
    })?;
    for (i, h) in t.header.iter().enumerate() {
        if let Some(j) = t.header[..i]
            .iter()
            .position(|o| o.trim().eq_ignore_ascii_case(h.trim()))
        {
            return Err(MetricsError::Table {
                path: path.to_path_buf(),
                line: 1,
                reason: format!(
                    "columns {} ({:?}) and {} ({:?}) have the same name; rename one so each column means one thing",
                    j + 1,
                    t.header[j].trim(),
                    i + 1,
                    h.trim()
                ),
            });
        }
    }
    if t.header.len() < 2 {
        return Err(MetricsError::Table {
            path: path.to_path_buf(),
            line: 1,
            reason: format!(
                "the header has {} column(s); a prediction table needs at least two",
                t.header.len()
            ),
        });
    }
    Ok((t.header, t.rows))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(content: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(content).unwrap();
        f
    }

    #[test]
    fn bom_crlf_empty_and_non_numeric() {
        let f = file(
            b"\xEF\xBB\xBFimage,ground truth,A,B\r\nx.tif,3,3,\r\ny.tif,5,NaN,about 40\r\n\r\nz.tif,,1,2\r\n",
        );
        let t = read_count_table(f.path(), None).unwrap();
        assert_eq!(t.image_column, "image");
        assert_eq!(t.truth_column, "ground truth");
        assert_eq!(t.images, vec!["x.tif", "y.tif"]);
        assert_eq!(t.lines, vec![2, 3]);
        assert_eq!(t.truth, vec![3.0, 5.0]);
        assert_eq!(t.methods[0].values(), vec![Some(3.0), None]);
        assert_eq!(t.methods[0].non_numeric(), vec![(1, "NaN")]);
        assert_eq!(t.methods[1].empty(), 1);
        assert_eq!(t.methods[1].non_numeric(), vec![(1, "about 40")]);
        assert_eq!(t.skipped.len(), 1);
        assert_eq!(t.skipped[0].line, 5);
        assert_eq!(t.skipped[0].image, "z.tif");
    }

    #[test]
    fn errors_name_the_file() {
        let f = file(b"image,GT,A\nx,1,2\n");
        let e = read_count_table(f.path(), None).unwrap_err().to_string();
        assert!(e.contains(&f.path().display().to_string()), "{e}");
        assert!(e.contains("ground truth"), "{e}");
        assert!(read_count_table(f.path(), Some("GT")).is_ok());
        let e = read_count_table(f.path(), Some("nope"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"nope\"") && e.contains("\"GT\""), "{e}");

        let f = file(b"image,truth,A\nx,1,2\ny,1\n");
        let e = read_count_table(f.path(), None).unwrap_err().to_string();
        assert!(e.contains("line 3") && e.contains("ragged"), "{e}");
        assert!(e.contains(&f.path().display().to_string()), "{e}");

        let f = file(b"");
        assert!(read_count_table(f.path(), None)
            .unwrap_err()
            .to_string()
            .contains("empty"));
        let missing = Path::new("/nonexistent/predictions.csv");
        assert!(read_count_table(missing, None)
            .unwrap_err()
            .to_string()
            .contains("/nonexistent/predictions.csv"));
    }

    #[test]
    fn duplicate_rows_and_columns() {
        let f = file(b"image,truth,A\nx,1,2\ny,3,3\nx,1,2\n");
        let t = read_count_table(f.path(), None).unwrap();
        assert_eq!(t.images, vec!["x", "y"]);
        assert_eq!(t.duplicates.len(), 1);
        assert!(
            t.duplicates[0].contains(":4: repeats line 2"),
            "{:?}",
            t.duplicates
        );
        let f = file(b"image,truth,A\nx,1,2\ny,3,3\nx,1,5\n");
        let e = read_count_table(f.path(), None).unwrap_err().to_string();
        assert!(
            e.contains("line 4") && e.contains("\"x\"") && e.contains("line 2"),
            "{e}"
        );
        let f = file(b"image,truth,A,Truth\nx,1,2,9\n");
        let e = read_count_table(f.path(), None).unwrap_err().to_string();
        assert!(e.contains("columns 2 (\"truth\") and 4 (\"Truth\")"), "{e}");
        let f = file(b"file,t,p\na,1,1\na,1,1\nb,2,1\n");
        let t = read_class_table(f.path(), "t", "p").unwrap();
        assert_eq!((t.truth.len(), t.duplicates.len()), (2, 1));
        let f = file(b"file,t,p\na,1,1\na,1,2\n");
        assert!(read_class_table(f.path(), "t", "p").is_err());
    }

    #[test]
    fn class_table_columns() {
        let f = file(b"\xEF\xBB\xBFfilename,actual_class,predicted_class\r\na,1,1\r\nb,2,\r\n");
        let t = read_class_table(f.path(), "actual_class", "predicted_class").unwrap();
        assert_eq!(t.truth, vec!["1", "2"]);
        assert_eq!(t.prediction, vec!["1", ""]);
        assert_eq!(t.lines, vec![2, 3]);
        assert!(read_class_table(f.path(), "actual_class", "pred").is_err());
        let raw = read_raw_table(f.path()).unwrap();
        assert_eq!(raw.column_index("Predicted_Class").unwrap(), 2);
        assert_eq!(raw.rows[1], (3, vec!["b".into(), "2".into(), "".into()]));
        let e = raw.column_index("stain").unwrap_err().to_string();
        assert!(e.contains("\"stain\"") && e.contains("\"filename\""), "{e}");
    }
}
