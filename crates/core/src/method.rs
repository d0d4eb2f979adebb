//! Capability traits that methods implement, and the result types they share.
//!
//! A method is anything that turns an [`Image`] into a result: the classical pipeline, SAM, or
//! (for counting and classification) a vision-language model. The traits are small and
//! object-safe so the CLI and the study runner can hold a `Box<dyn Segmenter>`.

use crate::image::Image;
use crate::mask::{BinaryMask, LabelImage};

/// Any error a method reports for one image; the run goes on with the next image.
pub type MethodError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The message of a caught panic (`std::panic::catch_unwind`'s payload), for reporting it as
/// one input's failure; `"unknown"` for payloads that are not text.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("unknown")
}

/// What a segmentation method produces for one image.
#[derive(Debug, Clone)]
pub struct Segmentation {
    /// Non-overlapping instances, 0 = background.
    pub labels: LabelImage,
    /// The method's object count. Equals `labels.num_objects()` for methods with disjoint
    /// objects; for SAM it follows its count rule: the label image's objects (the default), or
    /// the number of masks, which may overlap (the study's definition).
    pub count: usize,
    /// The foreground as the method defines it (for SAM: the union of masks under 25 % of the
    /// image, the study's rule).
    pub foreground: BinaryMask,
    /// Further named counts a method offers, e.g. `("masks_below_25pct", 17)`.
    pub extra_counts: Vec<(String, usize)>,
    /// For objects someone named (prompts from a file): each one's label, in the order given.
    /// Empty for methods that find their objects themselves.
    pub named_objects: Vec<NamedObject>,
}

/// An object named by the user (e.g. the `object` column of a prompt file) and what became of
/// it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedObject {
    pub name: String,
    /// Its label in [`Segmentation::labels`], or why it has none.
    pub label: Result<u32, String>,
}

impl Segmentation {
    /// A segmentation whose count and foreground are those of its label image.
    pub fn from_labels(labels: LabelImage) -> Self {
        Segmentation {
            count: labels.num_objects(),
            foreground: labels.foreground(),
            labels,
            extra_counts: Vec::new(),
            named_objects: Vec::new(),
        }
    }
}

/// Segments an image into instances.
pub trait Segmenter: Send + Sync {
    /// A short name for tables and file names, e.g. `classical:fluorescence-nuclei`.
    fn name(&self) -> String;

    /// Every setting that can change this segmenter's results (thresholds, model, grid, ...), as
    /// JSON. A study hashes it, so a change of any of them recomputes the predictions; leave
    /// nothing out that changes a result.
    fn settings(&self) -> serde_json::Value;

    /// Segments one image.
    ///
    /// # Errors
    /// Any failure for this image (bad shape, model error); callers report it and go on.
    fn segment(&self, image: &Image) -> Result<Segmentation, MethodError>;

    /// About how many bytes segmenting an image that `info` describes takes at its peak, the
    /// decoded pixels included: images that would not fit the memory budget are refused before
    /// they are decoded (`--max-memory`). The default is a deliberately high guess for methods
    /// that do not state theirs: the decoded pixels plus 48 bytes per pixel.
    fn memory_needed(&self, info: &crate::io::ImageInfo) -> u64 {
        info.decoded_bytes() + 48 * info.pixels()
    }

    /// Segments one image read from `path`. Methods whose input depends on the file, not only
    /// its pixels (SAM with prompts from a CSV that names images), override this; the rest
    /// segment the pixels.
    ///
    /// # Errors
    /// As [`Segmenter::segment`].
    fn segment_file(
        &self,
        path: &std::path::Path,
        image: &Image,
    ) -> Result<Segmentation, MethodError> {
        let _ = path;
        self.segment(image)
    }
}

/// Counts objects without segmenting them, e.g. a vision-language model asked "how many cells?".
pub trait Counter: Send + Sync {
    /// A short name for tables and file names, e.g. `vlm:openai:gpt-4o`.
    fn name(&self) -> String;

    /// The number of objects in one image.
    ///
    /// # Errors
    /// Any failure for this image (API error, an answer without a number); callers report it
    /// and go on.
    fn count(&self, image: &Image) -> Result<f64, MethodError>;
}

#[cfg(test)]
mod panic_tests {
    #[test]
    fn panic_messages_of_both_payload_kinds_and_others() {
        let text = std::panic::catch_unwind(|| panic!("bad {}", 1)).unwrap_err();
        assert_eq!(super::panic_message(text.as_ref()), "bad 1");
        let lit = std::panic::catch_unwind(|| panic!("plain")).unwrap_err();
        assert_eq!(super::panic_message(lit.as_ref()), "plain");
        let other = std::panic::catch_unwind(|| std::panic::panic_any(7u8)).unwrap_err();
        assert_eq!(super::panic_message(other.as_ref()), "unknown");
    }
}
