//! The one naming rule for the files mica writes per image, and its inverse.
//!
//! For an image `x.tif` (or any image named `x.<ext>`):
//!
//! - its label image is `x_labels.tif` ([`labels_file_name`]), written by `mica segment`, `mica
//!   count --out`, `mica data convert --to labels` and a study's masks;
//! - its overlay is `x_overlay.png` ([`overlay_file_name`]), for people, never scored.
//!
//! [`mask_file_role`] reads a file name back: `x_labels.tif` and a plain `x.tif` (a mask named like
//! its image, as BBBC005's) both stand for image `x`; `x_overlay.png` is an overlay. Names written by
//! earlier versions of mica (`x.labels.tif`, and `x.tif.tif` from study stores) are read the same
//! way, so old outputs still pair.

use crate::io::has_image_extension;
use std::path::Path;

/// Suffix of label images, before `.tif`.
pub const LABELS_SUFFIX: &str = "_labels";
/// Suffix of overlays, before `.png`.
pub const OVERLAY_SUFFIX: &str = "_overlay";

/// The stem of an image file name: the name without its image extension (`x.TIF` → `x`); a name
/// without one is returned as is.
pub fn image_stem(name: &str) -> &str {
    match name.rsplit_once('.') {
        Some((stem, _)) if !stem.is_empty() && has_image_extension(Path::new(name)) => stem,
        _ => name,
    }
}

/// `x.tif` → `x_labels.tif`.
pub fn labels_file_name(image_name: &str) -> String {
    format!("{}{LABELS_SUFFIX}.tif", image_stem(image_name))
}

/// `x.tif` → `x_overlay.png`.
pub fn overlay_file_name(image_name: &str) -> String {
    format!("{}{OVERLAY_SUFFIX}.png", image_stem(image_name))
}

/// What a file in a folder of masks is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MaskFileRole {
    /// A mask or label image of the image with this stem.
    Mask(String),
    /// An overlay for people: not a mask.
    Overlay,
}

/// Reads a file name by the naming rule (see the module docs); `None` for a file that is not an
/// image.
pub fn mask_file_role(file_name: &str) -> Option<MaskFileRole> {
    if !has_image_extension(Path::new(file_name)) {
        return None;
    }
    let stem = image_stem(file_name);
    if stem.ends_with(OVERLAY_SUFFIX) {
        return Some(MaskFileRole::Overlay);
    }
    let stem = stem
        .strip_suffix(LABELS_SUFFIX)
        .or_else(|| stem.strip_suffix(".labels"))
        .unwrap_or(stem);
    // `x.tif.tif` (a study store's masks before this rule) stands for `x`.
    Some(MaskFileRole::Mask(image_stem(stem).to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_their_inverse() {
        assert_eq!(labels_file_name("a.TIF"), "a_labels.tif");
        assert_eq!(overlay_file_name("a.png"), "a_overlay.png");
        assert_eq!(labels_file_name("scan.v2"), "scan.v2_labels.tif");
        let m = |s: &str| Some(MaskFileRole::Mask(s.to_string()));
        for (file, role) in [
            ("a_labels.tif", m("a")),
            ("a.tif", m("a")),
            (
                "SIMCEPImages_A01_C1_F1_s01_w1.TIF",
                m("SIMCEPImages_A01_C1_F1_s01_w1"),
            ),
            ("a.labels.tif", m("a")),
            ("img2d.tif.tif", m("img2d")),
            ("a_overlay.png", Some(MaskFileRole::Overlay)),
            ("objects.csv", None),
        ] {
            assert_eq!(mask_file_role(file), role, "{file}");
        }
        // A label file names the image it came from.
        assert_eq!(
            mask_file_role(&labels_file_name("x.jpg")),
            Some(MaskFileRole::Mask("x".into()))
        );
    }
}
