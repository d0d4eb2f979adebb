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

/// Reads a CSV file with a header. A UTF-8 BOM is removed, CRLF accepted, blank lines skipped,
/// cells and header names trimmed; line numbers are the physical lines of the file.
///
/// # Errors
/// [`Error::Io`] for an unreadable file; [`Error::Table`] for an empty file, invalid UTF-8 or a
/// row with a different number of cells than the header (with its line number).
pub fn read_table(path: &Path) -> Result<Table> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    let table_err = |line: u64, reason: String| Error::Table {
        path: path.to_path_buf(),
        line,
        reason,
    };
    if let Err(e) = std::str::from_utf8(body) {
        let line = body[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count() as u64
            + 1;
        return Err(table_err(line, format!("not UTF-8 text: {e}")));
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(body);
    // Physical line of a record from its byte offset: the csv crate's own record positions do
    // not count blank lines and CRLF the way an editor does.
    let line_at = |byte: u64| -> u64 {
        let mut start = (byte as usize).min(body.len());
        while start < body.len() && (body[start] == b'\n' || body[start] == b'\r') {
            start += 1;
        }
        body[..start].iter().filter(|&&b| b == b'\n').count() as u64 + 1
    };
    let mut rec = csv::StringRecord::new();
    let mut read = |rec: &mut csv::StringRecord| -> Result<Option<u64>> {
        let start = reader.position().byte();
        match reader.read_record(rec) {
            Ok(true) => Ok(Some(line_at(start))),
            Ok(false) => Ok(None),
            Err(e) => Err(table_err(
                line_at(start),
                format!("cannot read the row: {e}"),
            )),
        }
    };
    let blank = |rec: &csv::StringRecord| rec.iter().all(|c| c.trim().is_empty());
    let header: Vec<String> = loop {
        match read(&mut rec)? {
            None => return Err(table_err(1, "empty file (no header)".into())),
            Some(_) if blank(&rec) => continue,
            Some(_) => break rec.iter().map(|h| h.trim().to_string()).collect(),
        }
    };
    let mut rows = Vec::new();
    while let Some(line) = read(&mut rec)? {
        if blank(&rec) {
            continue;
        }
        if rec.len() != header.len() {
            return Err(table_err(
                line,
                format!(
                    "ragged row: {} cells, but the header has {}",
                    rec.len(),
                    header.len()
                ),
            ));
        }
        rows.push((line, rec.iter().map(|c| c.trim().to_string()).collect()));
    }
    Ok(Table {
        path: path.to_path_buf(),
        header,
        rows,
    })
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
        assert_eq!((t.rows[0].0, t.rows[1].0), (2, 3));
        assert_eq!(t.column(&["COUNT"]), Some(1));
    }

    #[test]
    fn ragged_row_names_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.csv");
        std::fs::write(&p, "a,b\r\n1,2\r\n\r\n3\r\n").unwrap();
        let e = read_table(&p).unwrap_err().to_string();
        assert!(
            e.contains("bad.csv:4") && e.contains("ragged row: 1 cells"),
            "{e}"
        );
    }
}
