//! HTML escaping and the tables of the report (rendered as HTML, exported as CSV and JSON).

use serde_json::{Map, Value as Json};

/// Escapes text for HTML element content and attribute values (`&`, `<`, `>`, `"`, `'`).
///
/// ```
/// assert_eq!(mica_report::escape("<script>alert('x')</script>"),
///            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;");
/// ```
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A cell of a report table.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Text(String),
    Int(i64),
    /// A number shown with `digits` decimals; `None` is shown as "–" and exported as null.
    Num(Option<f64>, usize),
    /// A 95 % interval, shown as `[low, high]`; exported as two fields `<column>_low/_high`.
    Interval(Option<(f64, f64)>, usize),
}

impl Cell {
    pub fn text(s: impl Into<String>) -> Cell {
        Cell::Text(s.into())
    }

    fn shown(&self) -> String {
        match self {
            Cell::Text(s) => s.clone(),
            Cell::Int(i) => i.to_string(),
            Cell::Num(Some(v), d) => format!("{v:.d$}"),
            Cell::Num(None, _) | Cell::Interval(None, _) => "–".into(),
            Cell::Interval(Some((lo, hi)), d) => format!("[{lo:.d$}, {hi:.d$}]"),
        }
    }

    fn is_numeric(&self) -> bool {
        !matches!(self, Cell::Text(_))
    }
}

/// A table of the report: shown in the HTML and written as `tables/<id>.csv` and `.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// File-name-safe identifier.
    pub id: String,
    pub title: String,
    /// Column headers for people (HTML).
    pub columns: Vec<String>,
    /// Column names in the CSV and JSON exports: the same keys `mica eval --json` uses (`image`,
    /// metric keys of `mica_metrics::measure::Metric`); equal to the headers unless given.
    pub keys: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
}

impl Table {
    pub fn new(id: impl Into<String>, title: impl Into<String>, columns: &[&str]) -> Table {
        Table {
            id: id.into(),
            title: title.into(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            keys: columns.iter().map(|c| c.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// A table whose exports name each column by a key (`(key, header)` pairs).
    pub fn keyed(
        id: impl Into<String>,
        title: impl Into<String>,
        columns: &[(&str, &str)],
    ) -> Table {
        Table {
            id: id.into(),
            title: title.into(),
            columns: columns.iter().map(|c| c.1.to_string()).collect(),
            keys: columns.iter().map(|c| c.0.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// The table as HTML (every cell escaped).
    pub fn to_html(&self) -> String {
        let mut s = String::from("<div class=\"tw\"><table>\n<thead><tr>");
        for c in &self.columns {
            s.push_str(&format!("<th>{}</th>", escape(c)));
        }
        s.push_str("</tr></thead>\n<tbody>\n");
        for row in &self.rows {
            s.push_str("<tr>");
            for c in row {
                // Long text (settings, answers) may wrap anywhere so it cannot widen the table;
                // short words keep their column.
                let class = if c.is_numeric() {
                    " class=\"n\""
                } else if c.shown().chars().count() > 60 {
                    " class=\"long\""
                } else {
                    ""
                };
                s.push_str(&format!("<td{class}>{}</td>", escape(&c.shown())));
            }
            s.push_str("</tr>\n");
        }
        s.push_str("</tbody></table></div>\n");
        s
    }

    /// The table as CSV: numbers in full precision, intervals as two columns.
    ///
    /// # Errors
    /// Only from the CSV writer (never for in-memory output in practice).
    pub fn to_csv(&self) -> Result<String, csv::Error> {
        let mut w = csv::Writer::from_writer(Vec::new());
        let mut header = Vec::new();
        for (i, c) in self.keys.iter().enumerate() {
            if self.is_interval_column(i) {
                header.push(format!("{c}_low"));
                header.push(format!("{c}_high"));
            } else {
                header.push(c.clone());
            }
        }
        w.write_record(&header)?;
        for row in &self.rows {
            let mut rec = Vec::new();
            for (i, c) in row.iter().enumerate() {
                match c {
                    // Model text can start with `=`: never a formula in a spreadsheet.
                    Cell::Text(s) => rec.push(mica_core::text::csv_safe(s).into_owned()),
                    Cell::Int(v) => rec.push(v.to_string()),
                    Cell::Num(v, _) => rec.push(v.map(|v| v.to_string()).unwrap_or_default()),
                    Cell::Interval(v, _) => {
                        rec.push(v.map(|v| v.0.to_string()).unwrap_or_default());
                        rec.push(v.map(|v| v.1.to_string()).unwrap_or_default());
                    }
                }
                let _ = i;
            }
            w.write_record(&rec)?;
        }
        let bytes = w.into_inner().map_err(|e| e.into_error())?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// The table as a JSON array of objects keyed by column (intervals as `<column>_low/_high`).
    pub fn to_json(&self) -> Json {
        let rows = self
            .rows
            .iter()
            .map(|row| {
                let mut o = Map::new();
                for (c, cell) in self.keys.iter().zip(row) {
                    match cell {
                        Cell::Text(s) => {
                            o.insert(c.clone(), Json::from(s.clone()));
                        }
                        Cell::Int(v) => {
                            o.insert(c.clone(), Json::from(*v));
                        }
                        Cell::Num(v, _) => {
                            o.insert(c.clone(), v.map(Json::from).unwrap_or(Json::Null));
                        }
                        Cell::Interval(v, _) => {
                            o.insert(
                                format!("{c}_low"),
                                v.map(|v| Json::from(v.0)).unwrap_or(Json::Null),
                            );
                            o.insert(
                                format!("{c}_high"),
                                v.map(|v| Json::from(v.1)).unwrap_or(Json::Null),
                            );
                        }
                    }
                }
                Json::Object(o)
            })
            .collect();
        Json::Array(rows)
    }

    fn is_interval_column(&self, i: usize) -> bool {
        self.rows
            .iter()
            .any(|r| matches!(r.get(i), Some(Cell::Interval(..))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_escapes_and_exports() {
        let mut t = Table::new("t", "T", &["method", "mae", "ci"]);
        t.rows.push(vec![
            Cell::text("<script>x</script>"),
            Cell::Num(Some(1.23456), 2),
            Cell::Interval(Some((1.0, 2.0)), 2),
        ]);
        t.rows.push(vec![
            Cell::text("b,\"q\""),
            Cell::Num(None, 2),
            Cell::Interval(None, 2),
        ]);
        let html = t.to_html();
        assert!(!html.contains("<script>"));
        assert!(html.contains("&lt;script&gt;"));
        assert!(html.contains("1.23"));
        let csv = t.to_csv().unwrap();
        assert!(csv.starts_with("method,mae,ci_low,ci_high\n"), "{csv}");
        assert!(csv.contains("\"b,\"\"q\"\"\",,,"), "{csv}");
        let json = t.to_json();
        assert_eq!(json[0]["ci_high"], 2.0);
        assert!(json[1]["mae"].is_null());
    }
}
