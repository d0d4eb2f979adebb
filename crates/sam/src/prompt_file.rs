//! Prompts from CSV files (`mica segment --method sam --points FILE.csv --boxes FILE.csv`):
//! what a person clicked or drew, replayed.
//!
//! - points: columns `image,x,y,label[,object]`; `label` 1 = foreground, 0 = background;
//! - boxes: columns `image,x0,y0,x1,y1[,object]`.
//!
//! Columns are found by name (any order, case-insensitive; other columns are ignored).
//! Coordinates are image pixels (x to the right, y down), as SAM's predictor takes them. Rows
//! of one image with the same `object` form one prompt (at most one box, any number of points);
//! without an `object` column each row is an object of its own, named after its file and row
//! (`points.csv:5`), and a background point then has nothing to belong to (an error). Images
//! are named by path: relative paths are looked up next to the CSV file, then in the current
//! folder, and matched to the images being segmented by their canonical path, never by file
//! name alone.
//!
//! A bad row (a missing or non-numeric value, an unknown label, a second box for an object,
//! a point outside the image) fails its image only, with the file and row in the message; a
//! file that cannot be read or has no such columns, or that holds no rows, is an error for the
//! whole run.

use crate::error::{Result, SamError};
use crate::model::{PointPrompt, Prompt};
use crate::prompt_encoder::PointLabel;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One object's prompt and the rows it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedPrompt {
    /// The `object` value, or `FILE:ROW` without an object column.
    pub name: String,
    pub prompt: Prompt,
    /// Where each part came from (`points.csv:7`), for messages.
    pub rows: Vec<String>,
}

/// The prompts of one image, or why it has none that can be used.
#[derive(Debug, Clone)]
pub struct ImagePrompts {
    /// The image as the file names it (resolved, not canonical).
    pub path: PathBuf,
    /// Where it was first named (`points.csv:2`).
    pub first_row: String,
    pub objects: std::result::Result<Vec<NamedPrompt>, String>,
}

/// The prompts of one or two CSV files, by image.
#[derive(Debug, Clone)]
pub struct PromptFiles {
    /// In the order the images first appear (points file first).
    images: Vec<ImagePrompts>,
    /// Canonical path (or the resolved path when the file does not exist) -> index in `images`.
    by_key: HashMap<PathBuf, usize>,
    /// The files and their sha256, for the method's settings.
    sources: Vec<(String, String)>,
}

/// Which file a row is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Points,
    Boxes,
}

fn bad(msg: String) -> SamError {
    SamError::Invalid(msg)
}

impl PromptFiles {
    /// Reads the points and/or boxes file (at least one).
    ///
    /// # Errors
    /// [`SamError::Invalid`] when neither is given, a file cannot be read, lacks a required
    /// column, or has no rows.
    pub fn read(points: Option<&Path>, boxes: Option<&Path>) -> Result<Self> {
        if points.is_none() && boxes.is_none() {
            return Err(bad("no prompt file given (--points or --boxes)".into()));
        }
        let mut acc = Acc::default();
        let mut sources = Vec::new();
        for (path, kind) in [(points, Kind::Points), (boxes, Kind::Boxes)] {
            let Some(path) = path else { continue };
            let bytes = std::fs::read(path).map_err(|source| SamError::Io {
                path: path.to_path_buf(),
                source,
            })?;
            sources.push((
                path.display().to_string(),
                hex::encode(Sha256::digest(&bytes)),
            ));
            acc.read_file(path, &bytes, kind)?;
        }
        Ok(acc.finish(sources))
    }

    /// Every image the files name, in order of appearance.
    pub fn images(&self) -> &[ImagePrompts] {
        &self.images
    }

    /// The prompts for the image at `path`, if the files name it (matched by canonical path).
    pub fn for_path(&self, path: &Path) -> Option<&ImagePrompts> {
        self.by_key.get(&key_of(path)).map(|&i| &self.images[i])
    }

    /// Whether the files name the image at `path`.
    pub fn names(&self, path: &Path) -> bool {
        self.by_key.contains_key(&key_of(path))
    }

    /// The files read and their sha256 (a study or a run records them as settings).
    pub fn sources(&self) -> &[(String, String)] {
        &self.sources
    }

    /// The prompts of `path`, checked against the image size: each point and box inside the
    /// image. Errors name the file and row.
    ///
    /// # Errors
    /// A message for this image only: not in the files, a bad row, a prompt outside it.
    pub fn prompts_for(
        &self,
        path: &Path,
        width: u32,
        height: u32,
    ) -> std::result::Result<Vec<NamedPrompt>, String> {
        let entry = self.for_path(path).ok_or_else(|| {
            format!(
                "no prompts for {} in {}",
                path.display(),
                self.sources
                    .iter()
                    .map(|(f, _)| f.as_str())
                    .collect::<Vec<_>>()
                    .join(" or ")
            )
        })?;
        let objects = entry.objects.clone()?;
        let (w, h) = (width as f32, height as f32);
        let inside = |x: f32, y: f32| (0.0..=w).contains(&x) && (0.0..=h).contains(&y);
        for o in &objects {
            let mut part = o.rows.iter();
            if let Some(b) = o.prompt.bbox {
                let row = part.next().map(String::as_str).unwrap_or("?");
                if !inside(b[0], b[1]) || !inside(b[2], b[3]) {
                    return Err(format!(
                        "{row}: box ({}, {})-({}, {}) of object {:?} is outside the \
                         {width}x{height} image",
                        b[0], b[1], b[2], b[3], o.name
                    ));
                }
            }
            for (q, row) in o.prompt.points.iter().zip(part) {
                if !inside(q.x, q.y) {
                    return Err(format!(
                        "{row}: point ({}, {}) of object {:?} is outside the {width}x{height} \
                         image",
                        q.x, q.y, o.name
                    ));
                }
            }
        }
        Ok(objects)
    }
}

/// Canonical path when the file exists, else the path as given (it then matches nothing that
/// exists).
fn key_of(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Where a CSV's image value points: absolute as given; relative next to the CSV, then in the
/// current folder; the first that exists (else the one next to the CSV).
fn resolve(csv: &Path, value: &str) -> PathBuf {
    let p = Path::new(value);
    if p.is_absolute() {
        return p.to_path_buf();
    }
    let beside = csv.parent().unwrap_or(Path::new("")).join(p);
    if beside.exists() || !p.exists() {
        beside
    } else {
        p.to_path_buf()
    }
}

#[derive(Debug, Default)]
struct Obj {
    name: String,
    points: Vec<(PointPrompt, String)>,
    bbox: Option<([f32; 4], String)>,
}

#[derive(Debug)]
struct Img {
    path: PathBuf,
    first_row: String,
    objects: Vec<Obj>,
    index: HashMap<String, usize>,
    error: Option<String>,
}

#[derive(Debug, Default)]
struct Acc {
    images: Vec<Img>,
    by_key: HashMap<PathBuf, usize>,
}

impl Acc {
    fn image(&mut self, path: PathBuf, row: &str) -> &mut Img {
        let key = key_of(&path);
        let n = self.images.len();
        let i = *self.by_key.entry(key).or_insert(n);
        if i == n {
            self.images.push(Img {
                path,
                first_row: row.to_string(),
                objects: Vec::new(),
                index: HashMap::new(),
                error: None,
            });
        }
        &mut self.images[i]
    }

    fn read_file(&mut self, path: &Path, bytes: &[u8], kind: Kind) -> Result<()> {
        let file = path.display().to_string();
        let short = path
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| file.clone());
        let text =
            std::str::from_utf8(bytes).map_err(|e| bad(format!("{file}: not UTF-8 text ({e})")))?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut r = csv::ReaderBuilder::new()
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(text.as_bytes());
        let header: Vec<String> = r
            .headers()
            .map_err(|e| bad(format!("{file}: {e}")))?
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .collect();
        let col = |name: &str| header.iter().position(|h| h == name);
        let required: &[&str] = match kind {
            Kind::Points => &["image", "x", "y", "label"],
            Kind::Boxes => &["image", "x0", "y0", "x1", "y1"],
        };
        let mut cols = Vec::new();
        for name in required {
            cols.push(col(name).ok_or_else(|| {
                bad(format!(
                    "{file}: no {name:?} column (a {} file has columns {}[,object]; found: {})",
                    if kind == Kind::Points {
                        "points"
                    } else {
                        "boxes"
                    },
                    required.join(","),
                    header.join(",")
                ))
            })?);
        }
        let object_col = col("object");
        let mut rows = 0usize;
        for (i, rec) in r.records().enumerate() {
            // Row numbers as a spreadsheet shows them: the header is row 1.
            let row = format!("{short}:{}", i + 2);
            let rec = rec.map_err(|e| bad(format!("{row}: {e}")))?;
            if rec.iter().all(|v| v.is_empty()) {
                continue;
            }
            rows += 1;
            let image_value = rec.get(cols[0]).unwrap_or("");
            if image_value.is_empty() {
                return Err(bad(format!("{row}: empty image")));
            }
            let image_path = resolve(path, image_value);
            let img = self.image(image_path, &row);
            if img.error.is_some() {
                continue;
            }
            if let Err(e) = img.add(&rec, &cols, object_col, kind, &row) {
                img.error = Some(e);
            }
        }
        if rows == 0 {
            return Err(bad(format!("{file}: no prompts (only a header)")));
        }
        Ok(())
    }

    fn finish(self, sources: Vec<(String, String)>) -> PromptFiles {
        let images = self
            .images
            .into_iter()
            .map(|img| {
                let objects = match img.error {
                    Some(e) => Err(e),
                    None => img
                        .objects
                        .into_iter()
                        .map(|o| {
                            if o.bbox.is_none()
                                && o.points
                                    .iter()
                                    .all(|(p, _)| p.label != PointLabel::Positive)
                            {
                                return Err(format!(
                                    "{}: object {:?} has only background points (it needs a \
                                     foreground point or a box)",
                                    o.points.first().map(|(_, r)| r.as_str()).unwrap_or("?"),
                                    o.name
                                ));
                            }
                            let mut rows = Vec::new();
                            let bbox = o.bbox.map(|(b, r)| {
                                rows.push(r);
                                b
                            });
                            let points = o
                                .points
                                .into_iter()
                                .map(|(p, r)| {
                                    rows.push(r);
                                    p
                                })
                                .collect();
                            Ok(NamedPrompt {
                                name: o.name,
                                prompt: Prompt {
                                    points,
                                    bbox,
                                    mask_logits: None,
                                },
                                rows,
                            })
                        })
                        .collect(),
                };
                ImagePrompts {
                    path: img.path,
                    first_row: img.first_row,
                    objects,
                }
            })
            .collect();
        PromptFiles {
            images,
            by_key: self.by_key,
            sources,
        }
    }
}

impl Img {
    fn add(
        &mut self,
        rec: &csv::StringRecord,
        cols: &[usize],
        object_col: Option<usize>,
        kind: Kind,
        row: &str,
    ) -> std::result::Result<(), String> {
        let names = match kind {
            Kind::Points => ["image", "x", "y", "label"].as_slice(),
            Kind::Boxes => ["image", "x0", "y0", "x1", "y1"].as_slice(),
        };
        let num = |k: usize| -> std::result::Result<f32, String> {
            let v = rec.get(cols[k]).unwrap_or("");
            match v.parse::<f32>() {
                Ok(x) if x.is_finite() => Ok(x),
                _ => Err(format!("{row}: {} is {v:?}, not a number", names[k])),
            }
        };
        let name = match object_col.and_then(|c| rec.get(c)) {
            Some(v) if !v.is_empty() => v.to_string(),
            Some(_) => return Err(format!("{row}: empty object")),
            None => row.to_string(),
        };
        let n = self.objects.len();
        let i = *self.index.entry(name.clone()).or_insert(n);
        if i == n {
            self.objects.push(Obj {
                name: name.clone(),
                ..Obj::default()
            });
        }
        let obj = &mut self.objects[i];
        match kind {
            Kind::Points => {
                let (x, y) = (num(1)?, num(2)?);
                let label = match rec.get(cols[3]).unwrap_or("") {
                    "1" => PointLabel::Positive,
                    "0" => PointLabel::Negative,
                    other => {
                        return Err(format!(
                            "{row}: label is {other:?}; 1 = foreground, 0 = background"
                        ))
                    }
                };
                obj.points
                    .push((PointPrompt { x, y, label }, row.to_string()));
            }
            Kind::Boxes => {
                let b = [num(1)?, num(2)?, num(3)?, num(4)?];
                if b[0] > b[2] || b[1] > b[3] {
                    return Err(format!(
                        "{row}: box ({}, {})-({}, {}) has x0 > x1 or y0 > y1",
                        b[0], b[1], b[2], b[3]
                    ));
                }
                if let Some((_, first)) = &obj.bbox {
                    return Err(format!(
                        "{row}: object {name:?} already has a box ({first}); SAM takes one box \
                         per object"
                    ));
                }
                obj.bbox = Some((b, row.to_string()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn points_and_boxes_combine_by_image_and_object() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "a.tif", "");
        std::fs::create_dir(d.path().join("sub")).unwrap();
        write(&d.path().join("sub"), "a.tif", "");
        let pts = write(
            d.path(),
            "points.csv",
            "\u{feff}Image,X,Y,Label,Object\na.tif,10,12,1,cell1\na.tif,30,30,0,cell1\n\
             sub/a.tif,5,5,1,c\n",
        );
        let bx = write(
            d.path(),
            "boxes.csv",
            "image,object,x0,y0,x1,y1\na.tif,cell1,0,0,20,20\na.tif,cell2,40,40,60,50\n",
        );
        let f = PromptFiles::read(Some(&pts), Some(&bx)).unwrap();
        // Two images with one file name are two images.
        assert_eq!(f.images().len(), 2);
        let a = f.prompts_for(&d.path().join("a.tif"), 100, 100).unwrap();
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].name, "cell1");
        assert_eq!(a[0].prompt.points.len(), 2);
        assert_eq!(a[0].prompt.points[1].label, PointLabel::Negative);
        assert_eq!(a[0].prompt.bbox, Some([0.0, 0.0, 20.0, 20.0]));
        assert_eq!(a[1].name, "cell2");
        assert!(a[1].prompt.points.is_empty());
        let sub = f
            .prompts_for(&d.path().join("sub/../sub/a.tif"), 100, 100)
            .unwrap();
        assert_eq!(sub.len(), 1);
        assert_eq!(f.sources().len(), 2);
        // Outside the image: an error naming the row.
        let e = f.prompts_for(&d.path().join("a.tif"), 50, 50).unwrap_err();
        assert!(e.contains("boxes.csv:3") && e.contains("cell2"), "{e}");
        let e = f.prompts_for(&d.path().join("b.tif"), 50, 50).unwrap_err();
        assert!(e.contains("no prompts for"), "{e}");
    }

    #[test]
    fn a_bad_row_fails_its_image_only() {
        let d = tempfile::tempdir().unwrap();
        let pts = write(
            d.path(),
            "p.csv",
            "image,x,y,label\na.tif,1,2,1\na.tif,x,2,1\nb.tif,3,4,1\nb.tif,5,6,1\nc.tif,1,1,0\n\
             d.tif,1,1,yes\n",
        );
        let f = PromptFiles::read(Some(&pts), None).unwrap();
        let e = f.prompts_for(&d.path().join("a.tif"), 9, 9).unwrap_err();
        assert!(e.contains("p.csv:3") && e.contains("\"x\""), "{e}");
        // Without an object column every row is its own object.
        let b = f.prompts_for(&d.path().join("b.tif"), 9, 9).unwrap();
        assert_eq!(
            b.iter().map(|o| o.name.as_str()).collect::<Vec<_>>(),
            ["p.csv:4", "p.csv:5"]
        );
        let e = f.prompts_for(&d.path().join("c.tif"), 9, 9).unwrap_err();
        assert!(e.contains("only background points"), "{e}");
        let e = f.prompts_for(&d.path().join("d.tif"), 9, 9).unwrap_err();
        assert!(e.contains("p.csv:7") && e.contains("yes"), "{e}");
    }

    #[test]
    fn unusable_files_are_errors_for_the_run() {
        let d = tempfile::tempdir().unwrap();
        let empty = write(d.path(), "e.csv", "image,x,y,label\n");
        let e = PromptFiles::read(Some(&empty), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no prompts"), "{e}");
        let cols = write(d.path(), "c.csv", "image,x,y\na,1,1\n");
        let e = PromptFiles::read(Some(&cols), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"label\"") && e.contains("c.csv"), "{e}");
        let two = write(
            d.path(),
            "b.csv",
            "image,x0,y0,x1,y1,object\na,0,0,5,5,o\na,1,1,4,4,o\n",
        );
        let f = PromptFiles::read(None, Some(&two)).unwrap();
        let e = f.prompts_for(&d.path().join("a"), 9, 9).unwrap_err();
        assert!(e.contains("b.csv:3") && e.contains("one box"), "{e}");
        let missing = d.path().join("nope.csv");
        let e = PromptFiles::read(Some(&missing), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("nope.csv"), "{e}");
        assert!(PromptFiles::read(None, None).is_err());
    }
}
