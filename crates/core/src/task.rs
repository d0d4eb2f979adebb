//! The tasks mica measures, named once for every crate (the study file, the store's keys, the
//! report's sections).

use serde::{Deserialize, Serialize};

/// What a task asks of a method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskKind {
    /// How many objects: a number.
    Count,
    /// Which pixels, and which object each belongs to: a label image.
    Segment,
    /// Which class: a name.
    Classify,
    /// A question about the image (the study's VQA): text.
    Vqa,
    /// Mean object size in µm read from the scale bar (the study's VQA-T2 size), scored as numbers.
    Size,
}

impl TaskKind {
    /// Every task.
    pub const ALL: [TaskKind; 5] = [
        TaskKind::Count,
        TaskKind::Segment,
        TaskKind::Classify,
        TaskKind::Vqa,
        TaskKind::Size,
    ];

    /// The task's name in study files and stores (`count`, `segment`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            TaskKind::Count => "count",
            TaskKind::Segment => "segment",
            TaskKind::Classify => "classify",
            TaskKind::Vqa => "vqa",
            TaskKind::Size => "size",
        }
    }

    /// The task named `s` (as [`TaskKind::as_str`] spells it).
    pub fn from_name(s: &str) -> Option<TaskKind> {
        TaskKind::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

impl std::fmt::Display for TaskKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
