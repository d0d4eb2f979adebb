//! The tables mica writes next to label images (`mica segment`, `mica count`, `mica annotate`),
//! in one place so every writer agrees on their columns: `objects.csv` (one row per object),
//! `prompt_labels.csv` (the label of each named object) and `counts.csv`. Image paths are written
//! as given (they are the user's own and must match when read back); object names from prompt
//! files are neutralised for spreadsheets.

use crate::calibration::PixelSize;
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

/// Columns added to `objects.csv` when a pixel size is known for some image of the run (empty
/// for images without one): the calibration, then the measures in micrometres. Lengths need
/// square pixels (empty otherwise, as scikit-image refuses them).
pub const OBJECTS_UM_HEADER: [&str; 10] = [
    "pixel_width_um",
    "pixel_height_um",
    "calibration",
    "area_um2",
    "centroid_x_um",
    "centroid_y_um",
    "perimeter_um",
    "major_axis_length_um",
    "minor_axis_length_um",
    "equivalent_diameter_um",
];

/// The header of `objects.csv`, with the µm columns or without.
pub fn objects_header(um_columns: bool) -> Vec<&'static str> {
    let mut h = OBJECTS_HEADER.to_vec();
    if um_columns {
        h.extend(OBJECTS_UM_HEADER);
    }
    h
}

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
    pixel: Option<&PixelSize>,
    um_columns: bool,
) -> csv::Result<()> {
    for o in objects {
        let mut row = vec![
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
        ];
        if um_columns {
            row.extend(um_cells(o, pixel));
        }
        w.write_record(&row)?;
    }
    Ok(())
}

fn um_cells(o: &ObjectProps, pixel: Option<&PixelSize>) -> Vec<String> {
    let Some(p) = pixel else {
        return vec![String::new(); OBJECTS_UM_HEADER.len()];
    };
    let len = |v: f64| {
        if p.is_square() {
            format!("{:.4}", v * p.x_um)
        } else {
            String::new()
        }
    };
    vec![
        format!("{}", p.x_um),
        format!("{}", p.y_um),
        p.source.name().to_string(),
        format!("{:.4}", o.area_px as f64 * p.x_um * p.y_um),
        format!("{:.4}", o.centroid_x * p.x_um),
        format!("{:.4}", o.centroid_y * p.y_um),
        len(o.perimeter),
        len(o.major_axis_length),
        len(o.minor_axis_length),
        len(o.equivalent_diameter),
    ]
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
