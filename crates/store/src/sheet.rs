//! Reading the first worksheet of a spreadsheet (`.xlsx`, `.xlsm`, `.xls`, `.ods`) as text cells,
//! for tables that come as spreadsheets (the study's VQA references and answers). Numbers are
//! written as Rust prints them (`24`, `0.016`), dates and errors as text, empty cells as `""`.

use calamine::{open_workbook_auto, Data, Reader};
use std::path::{Path, PathBuf};

/// A spreadsheet that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct SheetError {
    pub path: PathBuf,
    pub reason: String,
}

/// Whether `path` names a spreadsheet this module reads (by extension, case-insensitive).
pub fn is_spreadsheet(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| {
        matches!(
            e.to_ascii_lowercase().as_str(),
            "xlsx" | "xlsm" | "xls" | "ods"
        )
    })
}

/// The cells of the first worksheet, row by row (every row as wide as the used range; the first
/// row of the range first). Rows above the used range are not returned.
///
/// # Errors
/// [`SheetError`] naming the file when it cannot be opened, is not a spreadsheet, or has no
/// worksheet.
pub fn read_first_sheet(path: &Path) -> Result<Vec<Vec<String>>, SheetError> {
    let err = |reason: String| SheetError {
        path: path.to_path_buf(),
        reason,
    };
    let mut wb = open_workbook_auto(path).map_err(|e| err(e.to_string()))?;
    let name = wb
        .sheet_names()
        .first()
        .cloned()
        .ok_or_else(|| err("the workbook has no worksheet".into()))?;
    let range = wb
        .worksheet_range(&name)
        .map_err(|e| err(format!("worksheet {name:?}: {e}")))?;
    Ok(range
        .rows()
        .map(|row| row.iter().map(cell_text).collect())
        .collect())
}

fn cell_text(c: &Data) -> String {
    match c {
        Data::Empty => String::new(),
        Data::String(s) => s.clone(),
        Data::Float(f) => {
            if f.fract() == 0.0 && f.abs() < 1e15 {
                format!("{}", *f as i64)
            } else {
                format!("{f}")
            }
        }
        Data::Int(i) => i.to_string(),
        Data::Bool(b) => b.to_string(),
        Data::DateTime(d) => d.to_string(),
        Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
        Data::Error(e) => format!("#{e:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATA: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/data/vlms-micrographs"
    );

    #[test]
    fn reads_the_study_size_answers() {
        let p = Path::new(DATA).join("vqa_t2_size_results.xlsx");
        if !p.exists() {
            eprintln!("skipped: {} not present", p.display());
            return;
        }
        let rows = read_first_sheet(&p).unwrap();
        assert_eq!(
            rows[0],
            [
                "Filename",
                "Size ground truth",
                "ChatGPT",
                "LLaVA",
                "Gemini"
            ]
        );
        let r = rows
            .iter()
            .find(|r| r[0] == "0a9d325c8250edd1e89670d17b0b04ec.jpg")
            .unwrap();
        assert_eq!(r[1..], ["0.016", "0.01", "10", "0.0001"]);
        // Section rows ("NFFA Fibers") and the units row are kept as they are.
        assert!(rows
            .iter()
            .any(|r| r[0] == "NFFA Fibers" && r[1].is_empty()));
        assert_eq!(rows.len(), 25);
    }

    #[test]
    fn a_csv_or_missing_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("not.xlsx");
        std::fs::write(&p, "a,b\n1,2\n").unwrap();
        let e = read_first_sheet(&p).unwrap_err();
        assert!(e.to_string().contains("not.xlsx"), "{e}");
        let e = read_first_sheet(&dir.path().join("missing.xlsx")).unwrap_err();
        assert!(e.to_string().contains("missing.xlsx"), "{e}");
        assert!(is_spreadsheet(Path::new("a.XLSX")) && !is_spreadsheet(Path::new("a.csv")));
    }
}
