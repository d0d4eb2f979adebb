//! Reading CSV tables as users have them: UTF-8 byte-order mark, Windows line endings, empty
//! cells, ragged rows reported with their line.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// A CSV file with a header row; every record has as many cells as the header.
#[derive(Debug, Clone)]
pub struct Table {
    pub path: PathBuf,
    pub header: Vec<String>,
    /// Records with their 1-based line number in the file.
    pub rows: Vec<(u64, Vec<String>)>,
}

impl Table {
    /// Index of the first column whose name equals one of `names` (case-insensitive, trimmed).
    pub fn column(&self, names: &[&str]) -> Option<usize> {
        names.iter().find_map(|want| {
            self.header
                .iter()
                .position(|h| h.trim().eq_ignore_ascii_case(want))
        })
    }

    /// Like [`Table::column`], but an error naming the file and the columns it has.
    ///
    /// # Errors
    /// [`Error::Table`] when no column matches.
    pub fn require_column(&self, names: &[&str]) -> Result<usize> {
        self.column(names).ok_or_else(|| Error::Table {
            path: self.path.clone(),
            line: 1,
            reason: format!(
                "no column named {} (columns: {})",
                names.join(" or "),
                self.header.join(", ")
            ),
        })
    }
}

/// Reads a CSV file with a header. A UTF-8 BOM is removed, CRLF accepted, cells trimmed.
///
/// # Errors
/// [`Error::Io`] for an unreadable file; [`Error::Table`] for an empty file, invalid UTF-8 or a
/// row with a different number of cells than the header (with its line number).
pub fn read_table(path: &Path) -> Result<Table> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let text = std::str::from_utf8(&bytes).map_err(|e| Error::Table {
        path: path.to_path_buf(),
        line: 0,
        reason: format!("not UTF-8 text: {e}"),
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let header: Vec<String> = rdr
        .headers()
        .map_err(|e| csv_err(path, e))?
        .iter()
        .map(str::to_string)
        .collect();
    if header.is_empty() || header.iter().all(|h| h.is_empty()) {
        return Err(Error::Table {
            path: path.to_path_buf(),
            line: 1,
            reason: "empty file or empty header".into(),
        });
    }
    let mut rows = Vec::new();
    for rec in rdr.records() {
        let rec = rec.map_err(|e| csv_err(path, e))?;
        if rec.iter().all(|c| c.is_empty()) {
            continue;
        }
        let line = rec.position().map(|p| p.line()).unwrap_or(0);
        rows.push((line, rec.iter().map(str::to_string).collect()));
    }
    Ok(Table {
        path: path.to_path_buf(),
        header,
        rows,
    })
}

fn csv_err(path: &Path, e: csv::Error) -> Error {
    let line = e.position().map(|p| p.line()).unwrap_or(0);
    let reason = match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("row has {len} cells but the header has {expected_len}"),
        _ => e.to_string(),
    };
    Error::Table {
        path: path.to_path_buf(),
        line,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bom_crlf_and_empty_cells() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.csv");
        std::fs::write(&p, "\u{feff}name,count\r\na.tif,3\r\nb.tif,\r\n\r\n").unwrap();
        let t = read_table(&p).unwrap();
        assert_eq!(t.header, vec!["name", "count"]);
        assert_eq!(t.rows.len(), 2);
        assert_eq!(t.rows[1].1, vec!["b.tif", ""]);
        assert_eq!(t.column(&["COUNT"]), Some(1));
    }

    #[test]
    fn ragged_row_names_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.csv");
        std::fs::write(&p, "a,b\n1,2\n3\n").unwrap();
        let e = read_table(&p).unwrap_err().to_string();
        assert!(e.contains("bad.csv:3") && e.contains("1 cells"), "{e}");
    }
}
