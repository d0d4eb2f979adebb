//! BBBC005 (Broad Bioimage Benchmark Collection, synthetic SIMCEP cells).
//!
//! File names: `SIMCEPImages_<well>_C<count>_F<blur>_s<site>_w<stain>.TIF`. The well row letter
//! encodes the blur level (A = F1, in focus), the column the count. Foreground masks exist for
//! in-focus (F1) scenes only and carry the same name; a blurred image shows the same scene as the
//! F1 image with well row A and `_F1_`, so its mask is that one.
//! Layout: `<root>/images/*.TIF` and `<root>/masks/*.TIF` (or images directly in `<root>`; masks
//! elsewhere can be given explicitly).

use super::{file_name, list_images, Dataset, DatasetKind, Problem, Sample};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// The parts of a BBBC005 file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bbbc005Name {
    /// Well, e.g. `A05` (row letter + column number).
    pub well: String,
    /// Number of cells in the scene.
    pub count: u32,
    /// Blur level (the Gaussian filter diameter; 1 = in focus).
    pub blur: u32,
    /// Site number.
    pub site: u32,
    /// Stain: 1 = cell body, 2 = nuclei (the naming of the data set).
    pub stain: u32,
    /// The extension as written (e.g. `TIF`).
    pub extension: String,
}

impl Bbbc005Name {
    /// Parses a file name (not a path).
    ///
    /// # Errors
    /// [`Error::Name`] saying which part is wrong.
    pub fn parse(name: &str) -> Result<Self> {
        let bad = |reason: &str| {
            Error::Name {
            name: name.to_string(),
            reason: format!(
                "not a BBBC005 name (SIMCEPImages_<well>_C<count>_F<blur>_s<site>_w<stain>.TIF): {reason}"
            ),
        }
        };
        let (stem, ext) = name.rsplit_once('.').ok_or_else(|| bad("no extension"))?;
        let rest = stem
            .strip_prefix("SIMCEPImages_")
            .ok_or_else(|| bad("does not start with SIMCEPImages_"))?;
        let parts: Vec<&str> = rest.split('_').collect();
        if parts.len() != 5 {
            return Err(bad("expected 5 fields after SIMCEPImages_"));
        }
        let well = parts[0];
        let mut wc = well.chars();
        if !(wc.next().is_some_and(|c| c.is_ascii_uppercase())
            && well.len() >= 2
            && wc.all(|c| c.is_ascii_digit()))
        {
            return Err(bad(
                "well must be a row letter and a column number, e.g. A05",
            ));
        }
        let num = |s: &str, prefix: char, what: &str| -> Result<u32> {
            s.strip_prefix(prefix)
                .and_then(|d| d.parse::<u32>().ok())
                .ok_or_else(|| bad(&format!("{what} field {s:?} is not {prefix}<number>")))
        };
        Ok(Bbbc005Name {
            well: well.to_string(),
            count: num(parts[1], 'C', "count")?,
            blur: num(parts[2], 'F', "blur")?,
            site: num(parts[3], 's', "site")?,
            stain: num(parts[4], 'w', "stain")?,
            extension: ext.to_string(),
        })
    }

    /// The file name of the in-focus (F1) image of the same scene: well row → `A`, `F<n>` → `F1`.
    /// Equal to the name itself for F1 images.
    pub fn f1_scene_name(&self) -> String {
        let column = &self.well[1..];
        format!(
            "SIMCEPImages_A{column}_C{}_F1_s{:02}_w{}.{}",
            self.count, self.site, self.stain, self.extension
        )
    }
}

/// The folder holding the images: `<root>/images` when it exists, else `root`.
pub fn images_dir(root: &Path) -> PathBuf {
    let sub = root.join("images");
    if sub.is_dir() {
        sub
    } else {
        root.to_path_buf()
    }
}

/// Loads BBBC005 from `root`. Masks are looked up in `masks` if given, else `<root>/masks`;
/// for a blurred image the mask of its F1 scene is used (recorded as `f1_scene` in the metadata).
/// Files whose names do not parse are listed as problems, and so is a mask missing from the mask
/// folder (the image is kept: its count is still truth). Without a mask folder no mask is expected.
///
/// # Errors
/// [`Error::Io`] when the image folder cannot be listed; a given `masks` folder that does not
/// exist.
pub fn load(root: &Path, masks: Option<&Path>) -> Result<Dataset> {
    let dir = images_dir(root);
    let mask_dir = match masks {
        Some(m) => {
            if !m.is_dir() {
                return Err(Error::io(
                    m,
                    std::io::Error::new(std::io::ErrorKind::NotFound, "mask folder not found"),
                ));
            }
            Some(m.to_path_buf())
        }
        None => Some(root.join("masks")).filter(|m| m.is_dir()),
    };
    let mut samples = Vec::new();
    let mut problems = Vec::new();
    for path in list_images(&dir)? {
        let name = file_name(&path);
        let parsed = match Bbbc005Name::parse(&name) {
            Ok(p) => p,
            Err(e) => {
                problems.push(Problem {
                    path,
                    reason: e.to_string(),
                });
                continue;
            }
        };
        let mut s = Sample::new(name.clone(), path);
        s.truth.count = Some(parsed.count as f64);
        let scene = parsed.f1_scene_name();
        if let Some(md) = &mask_dir {
            let m = md.join(&scene);
            if m.is_file() {
                s.truth.mask = Some(m);
            } else {
                problems.push(Problem {
                    path: m,
                    reason: format!("mask of {name} not found (the image is kept, with its count)"),
                });
            }
        }
        use super::meta;
        s.meta.insert(meta::WELL.into(), parsed.well.clone());
        s.meta.insert(meta::BLUR.into(), parsed.blur.to_string());
        s.meta.insert(meta::SITE.into(), parsed.site.to_string());
        s.meta
            .insert(meta::STAIN.into(), format!("w{}", parsed.stain));
        s.meta.insert(meta::F1_SCENE.into(), scene);
        samples.push(s);
    }
    Ok(Dataset {
        kind: DatasetKind::Bbbc005,
        root: root.to_path_buf(),
        samples,
        problems,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_field() {
        let n = Bbbc005Name::parse("SIMCEPImages_A05_C18_F1_s13_w2.TIF").unwrap();
        assert_eq!(
            (n.well.as_str(), n.count, n.blur, n.site, n.stain),
            ("A05", 18, 1, 13, 2)
        );
        assert_eq!(n.f1_scene_name(), "SIMCEPImages_A05_C18_F1_s13_w2.TIF");
    }

    #[test]
    fn blurred_maps_to_f1_scene() {
        let n = Bbbc005Name::parse("SIMCEPImages_H02_C5_F23_s01_w1.TIF").unwrap();
        assert_eq!(n.f1_scene_name(), "SIMCEPImages_A02_C5_F1_s01_w1.TIF");
    }

    #[test]
    fn rejects_malformed_names_with_reason() {
        for bad in [
            "SIMCEPImages_A05_C18_F1_s13.TIF",
            "SIMCEPImages_A05_Cx_F1_s13_w2.TIF",
            "cells_A05_C18_F1_s13_w2.TIF",
            "SIMCEPImages_5A_C18_F1_s13_w2.TIF",
            "SIMCEPImages_A05_C18_F1_s13_w2",
        ] {
            let e = Bbbc005Name::parse(bad).unwrap_err().to_string();
            assert!(e.starts_with(bad), "{e}");
        }
    }
}
