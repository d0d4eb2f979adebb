//! Datasets: a [`Dataset`] is a list of [`Sample`]s, each an image file with whatever truth exists
//! (count, class, mask, question and reference answer) and metadata (stain, blur, site, ...).
//!
//! Loaders: [`bbbc005`] (counts in names, masks by name, blurred images mapped to their in-focus
//! scene), [`nffa`] (NFFA-Europe SEM, class per folder, `L<d>_` hints stripped, optional info-bar
//! crop, counts from the study's CSVs), and [`generic`] (class folders, plain folders, CSV
//! manifests). [`open`] detects which one a path needs. [`subset`] selects by list or by seeded,
//! stratified sampling.
//!
//! Loading never stops at a bad file: files that cannot be used are recorded in
//! [`Dataset::problems`] with the reason, and the rest are loaded.

pub mod bbbc005;
pub mod generic;
mod names;
pub mod nffa;
pub mod subset;
mod table;

pub use names::{match_name, normalise_key, relative_id, Lookup, NameIndex};
pub use table::{read_table, Table};

use crate::error::{Error, Result};
use crate::image::Image;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The kinds of dataset mica knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetKind {
    /// BBBC005 synthetic fluorescent cells.
    Bbbc005,
    /// NFFA-Europe SEM images, one folder per class.
    Nffa,
    /// A folder of class folders (the folder name is the label).
    ClassFolders,
    /// A flat folder of images without truth.
    Folder,
    /// A CSV manifest naming images and their truth.
    Manifest,
}

impl std::fmt::Display for DatasetKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            DatasetKind::Bbbc005 => "bbbc005",
            DatasetKind::Nffa => "nffa",
            DatasetKind::ClassFolders => "class-folders",
            DatasetKind::Folder => "folder",
            DatasetKind::Manifest => "manifest",
        };
        f.write_str(s)
    }
}

impl std::str::FromStr for DatasetKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "bbbc005" => Ok(DatasetKind::Bbbc005),
            "nffa" => Ok(DatasetKind::Nffa),
            "class-folders" => Ok(DatasetKind::ClassFolders),
            "folder" => Ok(DatasetKind::Folder),
            "manifest" => Ok(DatasetKind::Manifest),
            other => Err(Error::Invalid(format!(
                "unknown dataset kind {other:?} (expected bbbc005, nffa, class-folders, folder or manifest)"
            ))),
        }
    }
}

/// The metadata fields mica's loaders set: the keys of [`Sample::meta`], named once. Read them with
/// the typed accessors of [`Sample`] ([`Sample::stain`], [`Sample::blur`], ...).
pub mod meta {
    /// BBBC005 stain: `w1` (nuclei, Hoechst) or `w2` (cell bodies, phalloidin).
    pub const STAIN: &str = "stain";
    /// BBBC005 focus blur level (the `F` number: 1 = in focus).
    pub const BLUR: &str = "blur";
    /// BBBC005 site within the well.
    pub const SITE: &str = "site";
    /// BBBC005 well (`A05`).
    pub const WELL: &str = "well";
    /// BBBC005: the in-focus scene whose mask is the truth of this (possibly blurred) image.
    pub const F1_SCENE: &str = "f1_scene";
    /// NFFA: the class hint `L<d>_` removed from the file name.
    pub const CLASS_HINT: &str = "class_hint";
    /// Where a true count came from when it is not given (`instance labels`).
    pub const TRUTH_COUNT_FROM: &str = "truth_count_from";
    /// The true object size in µm (from a study's truth table).
    pub const TRUTH_SIZE_UM: &str = "truth_size_um";
    /// The question and reference answer of a VQA sample, as the store keeps them.
    pub const QUESTION: &str = "question";
    pub const REFERENCE_ANSWER: &str = "reference_answer";
}

/// Whatever ground truth exists for a sample.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Truth {
    /// Number of objects.
    pub count: Option<f64>,
    /// Class label (a name, e.g. `Fibres`).
    pub class: Option<String>,
    /// Path of the foreground mask or label image (the file exists when set).
    pub mask: Option<PathBuf>,
    /// A question about the image (VQA) and its reference answer.
    pub question: Option<String>,
    pub answer: Option<String>,
}

/// A rectangle to cut from an image before use, in pixels (see [`crate::BBox`] conventions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Crop {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

/// One image of a dataset.
///
/// A sample is identified by its [`id`](Sample::id): the image's path relative to the dataset
/// root, with `/` as separator (`plate1/a.tif`, `Fibres/L1_x.jpg`; for BBBC005 and flat folders
/// the file name). Two images with the same file name in different folders are two samples.
/// The [`name`](Sample::name) (the file name without a class hint) is what tables written by
/// people are matched on (see [`NameIndex`]) and what may reach a model; never the full path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// The identity of the sample within its dataset: the path relative to the dataset root.
    pub id: String,
    /// The file name with any class-hint prefix (`L3_`) removed.
    #[serde(default)]
    pub name: String,
    /// The image file.
    pub path: PathBuf,
    pub truth: Truth,
    /// Dataset-specific fields, e.g. `stain`, `blur`, `site`, `well`, `f1_scene`.
    pub meta: BTreeMap<String, String>,
    /// Region to keep when the image is loaded (e.g. without the SEM information bar).
    pub crop: Option<Crop>,
}

impl Sample {
    /// A sample with no truth; its [`name`](Sample::name) is the last component of `id` without
    /// a class hint.
    pub fn new(id: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        let id = normalise_key(&id.into());
        let name = names::name_of(&id);
        Sample {
            id,
            name,
            path: path.into(),
            truth: Truth::default(),
            meta: BTreeMap::new(),
            crop: None,
        }
    }

    /// BBBC005 stain (`w1`, `w2`).
    pub fn stain(&self) -> Option<&str> {
        self.meta.get(meta::STAIN).map(String::as_str)
    }

    /// BBBC005 blur level.
    pub fn blur(&self) -> Option<u32> {
        self.meta.get(meta::BLUR).and_then(|b| b.parse().ok())
    }

    /// BBBC005: the in-focus scene of this image.
    pub fn f1_scene(&self) -> Option<&str> {
        self.meta.get(meta::F1_SCENE).map(String::as_str)
    }

    /// The true size in µm, if a truth table gave one.
    pub fn truth_size_um(&self) -> Option<f64> {
        self.meta
            .get(meta::TRUTH_SIZE_UM)
            .and_then(|v| v.parse().ok())
    }

    /// Reads the image and applies the sample's crop, if any.
    ///
    /// # Errors
    /// As [`crate::io::read_image`]; a crop that does not fit the image is an error naming it.
    pub fn load_image(&self) -> Result<Image> {
        let img = crate::io::read_image(&self.path)?;
        match self.crop {
            None => Ok(img),
            Some(c) => img
                .crop(c.x, c.y, c.width, c.height)
                .map_err(|e| Error::decode(&self.path, e)),
        }
    }
}

/// A file that could not be made into a sample, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    pub path: PathBuf,
    pub reason: String,
}

/// A loaded dataset.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dataset {
    pub kind: DatasetKind,
    /// The path it was loaded from.
    pub root: PathBuf,
    /// Samples sorted by id.
    pub samples: Vec<Sample>,
    /// Files skipped while loading, with the reason.
    pub problems: Vec<Problem>,
}

/// Options for [`open`]; each applies to the dataset kinds that use it.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// Force a kind instead of detecting it.
    pub kind: Option<DatasetKind>,
    /// BBBC005: folder of masks when not `<root>/masks` (e.g. the F1 masks for blurred images).
    pub masks: Option<PathBuf>,
    /// NFFA: CSVs with counts (`<image name>,<count>`), e.g. the study's ground-truth files.
    pub counts: Vec<PathBuf>,
    /// NFFA: crop the instrument information bar (keep the top 1024×600 of 1024×768 images).
    pub crop_info_bar: bool,
}

/// Opens a dataset, detecting its kind unless `opts.kind` is set:
/// a `.csv` file is a manifest; a folder (or its `images/` subfolder) of BBBC005-named files is
/// BBBC005; a folder whose subfolders are NFFA class names is NFFA; other folders with
/// subfolders of images are class folders; otherwise a flat folder.
///
/// # Errors
/// [`Error::Io`] when the path does not exist or cannot be listed; a malformed manifest.
pub fn open(path: &Path, opts: &OpenOptions) -> Result<Dataset> {
    let kind = match opts.kind {
        Some(k) => k,
        None => detect_kind(path)?,
    };
    let mut ds = match kind {
        DatasetKind::Bbbc005 => bbbc005::load(path, opts.masks.as_deref())?,
        DatasetKind::Nffa => nffa::load(
            path,
            &nffa::NffaOptions {
                counts: opts.counts.clone(),
                crop_info_bar: opts.crop_info_bar,
            },
        )?,
        DatasetKind::ClassFolders => generic::load_class_folders(path)?,
        DatasetKind::Folder => generic::load_folder(path)?,
        DatasetKind::Manifest => generic::load_manifest(path)?,
    };
    ds.samples.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(ds)
}

/// Guesses the kind of dataset at `path` (see [`open`]).
///
/// # Errors
/// [`Error::Io`] when the path does not exist or cannot be listed.
pub fn detect_kind(path: &Path) -> Result<DatasetKind> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.is_file() {
        return if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
        {
            Ok(DatasetKind::Manifest)
        } else {
            Err(Error::Invalid(format!(
                "{}: a dataset is a folder or a .csv manifest",
                path.display()
            )))
        };
    }
    let images_dir = bbbc005::images_dir(path);
    let files = list_images(&images_dir)?;
    if !files.is_empty()
        && files.iter().any(|f| {
            f.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| bbbc005::Bbbc005Name::parse(n).is_ok())
        })
    {
        return Ok(DatasetKind::Bbbc005);
    }
    let subdirs = list_subdirs(path)?;
    if !subdirs.is_empty() {
        let nffa_named = subdirs.iter().any(|d| {
            d.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| nffa::class_index(n).is_some())
        });
        return Ok(if nffa_named {
            DatasetKind::Nffa
        } else {
            DatasetKind::ClassFolders
        });
    }
    Ok(DatasetKind::Folder)
}

/// Image files (by extension) directly in `dir`, sorted. A symbolic link whose target is missing
/// is listed too, so that reading it fails with an error naming it rather than the image being
/// skipped without a word.
///
/// # Errors
/// [`Error::Io`] when the folder cannot be listed.
pub fn list_images(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let p = entry.path();
        let dangling = p.is_symlink() && !p.exists();
        if (p.is_file() || dangling) && crate::io::has_image_extension(&p) {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

/// Subfolders of `dir` (not hidden), sorted.
fn list_subdirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let p = entry.path();
        let hidden = p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if p.is_dir() && !hidden {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
