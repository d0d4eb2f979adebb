//! The tables mica writes next to label images (`mica segment`, `mica count`, `mica annotate`),
//! in one place so every writer agrees on their columns: `objects.csv` (one row per object),
//! `prompt_labels.csv` (the label of each named object) and `counts.csv`. Image paths are written
//! as given (they are the user's own and must match when read back); object names from prompt
//! files are neutralised for spreadsheets.

use crate::mask::ObjectProps;
use crate::method::NamedObject;
use crate::text::csv_safe;
use std::io::Write;

/// Columns of `objects.csv` (definitions: [`ObjectProps`]; names as scikit-image's
/// `regionprops` where it has the property).
pub const OBJECTS_HEADER: [&str; 21] = [
    "image",
    "label",
    "area_px",
    "centroid_x",
    "centroid_y",
    "bbox_x0",
    "bbox_y0",
    "bbox_x1",
    "bbox_y1",
    "mean_intensity",
    "perimeter",
    "eccentricity",
    "solidity",
    "major_axis_length",
    "minor_axis_length",
    "orientation",
    "equivalent_diameter",
    "integrated_intensity",
    "min_intensity",
    "max_intensity",
    "std_intensity",
];

/// Columns of `prompt_labels.csv`: `label` is empty, with the reason in `note`, for an object
/// that got none.
pub const PROMPT_LABELS_HEADER: [&str; 4] = ["image", "object", "label", "note"];

/// Columns of `counts.csv`.
pub const COUNTS_HEADER: [&str; 2] = ["image", "count"];

fn opt(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.4}")).unwrap_or_default()
}

/// The `objects.csv` rows of one image.
///
/// # Errors
/// The writer fails.
pub fn write_object_rows<W: Write>(
    w: &mut csv::Writer<W>,
    image: &str,
    objects: &[ObjectProps],
) -> csv::Result<()> {
    for o in objects {
        w.write_record([
            image.to_string(),
            o.label.to_string(),
            o.area_px.to_string(),
            format!("{:.3}", o.centroid_x),
            format!("{:.3}", o.centroid_y),
            o.bbox.x0.to_string(),
            o.bbox.y0.to_string(),
            o.bbox.x1.to_string(),
            o.bbox.y1.to_string(),
            opt(o.mean_intensity),
            format!("{:.4}", o.perimeter),
            format!("{:.6}", o.eccentricity),
            format!("{:.6}", o.solidity),
            format!("{:.4}", o.major_axis_length),
            format!("{:.4}", o.minor_axis_length),
            format!("{:.6}", o.orientation),
            format!("{:.4}", o.equivalent_diameter),
            opt(o.integrated_intensity),
            opt(o.min_intensity),
            opt(o.max_intensity),
            opt(o.std_intensity),
        ])?;
    }
    Ok(())
}

/// The `prompt_labels.csv` rows of one image.
///
/// # Errors
/// The writer fails.
pub fn write_prompt_label_rows<W: Write>(
    w: &mut csv::Writer<W>,
    image: &str,
    named: &[NamedObject],
) -> csv::Result<()> {
    for o in named {
        let (label, note) = match &o.label {
            Ok(l) => (l.to_string(), String::new()),
            Err(why) => (String::new(), why.clone()),
        };
        w.write_record([
            image.to_string(),
            csv_safe(&o.name).into_owned(),
            label,
            note,
        ])?;
    }
    Ok(())
}

/// One `counts.csv` row.
///
/// # Errors
/// The writer fails.
pub fn write_count_row<W: Write>(
    w: &mut csv::Writer<W>,
    image: &str,
    count: usize,
) -> csv::Result<()> {
    w.write_record([image.to_string(), count.to_string()])
}
