//! Prompt templates as data: one TOML file per task in `crates/vlm/prompts/`, embedded in the
//! binary, each with named variants (`study`: the study's protocol, the default; `domain`:
//! states modality, stain, objects and scale bar). A user can pass their own file of the same shape.
//!
//! Placeholders are written `{name}`; `{{` and `}}` are literal braces. A line holding a placeholder
//! whose value is empty is left out, so optional context (stain, scale bar) reads naturally.

use crate::error::VlmError;
use crate::prepare::{prepare_file, PrepareOptions};
use crate::request::{Role, Turn};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The task a template is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskKind {
    Classify,
    Count,
    Describe,
    Size,
    Ask,
}

impl TaskKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskKind::Classify => "classify",
            TaskKind::Count => "count",
            TaskKind::Describe => "describe",
            TaskKind::Size => "size",
            TaskKind::Ask => "ask",
        }
    }

    /// The embedded template file of the task.
    pub fn builtin_toml(self) -> &'static str {
        match self {
            TaskKind::Classify => include_str!("../prompts/classify.toml"),
            TaskKind::Count => include_str!("../prompts/count.toml"),
            TaskKind::Describe => include_str!("../prompts/describe.toml"),
            TaskKind::Size => include_str!("../prompts/size.toml"),
            TaskKind::Ask => include_str!("../prompts/ask.toml"),
        }
    }
}

/// One prompt variant.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Template {
    /// What the variant is, for `--help`-style listings.
    #[serde(default)]
    pub about: String,
    /// Optional system prompt (same placeholders).
    #[serde(default)]
    pub system: Option<String>,
    /// The user prompt.
    pub text: String,
}

/// All variants of a task's template file, by name.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateSet {
    pub source: String,
    pub variants: BTreeMap<String, Template>,
}

impl TemplateSet {
    /// The built-in templates of `task`.
    ///
    /// # Errors
    /// Never for the shipped files (tested).
    pub fn builtin(task: TaskKind) -> Result<Self, VlmError> {
        Self::parse(
            task.builtin_toml(),
            &format!("built-in {}.toml", task.as_str()),
        )
    }

    /// A user's template file.
    ///
    /// # Errors
    /// [`VlmError::Template`] naming the file when it cannot be read or parsed.
    pub fn load(path: &Path) -> Result<Self, VlmError> {
        let text = std::fs::read_to_string(path).map_err(|e| VlmError::Template {
            name: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses template-file text; `source` names it in errors.
    ///
    /// # Errors
    /// [`VlmError::Template`] when it is not a table of variants.
    pub fn parse(text: &str, source: &str) -> Result<Self, VlmError> {
        let variants: BTreeMap<String, Template> =
            toml::from_str(text).map_err(|e| VlmError::Template {
                name: source.to_string(),
                reason: e.to_string(),
            })?;
        if variants.is_empty() {
            return Err(VlmError::Template {
                name: source.to_string(),
                reason: "no prompt variants (expected tables like [study] with a `text`)".into(),
            });
        }
        Ok(TemplateSet {
            source: source.to_string(),
            variants,
        })
    }

    /// The variant called `name`.
    ///
    /// # Errors
    /// [`VlmError::Template`] listing the variants there are.
    pub fn variant(&self, name: &str) -> Result<&Template, VlmError> {
        self.variants.get(name).ok_or_else(|| VlmError::Template {
            name: self.source.clone(),
            reason: format!(
                "no prompt variant `{name}` (have: {})",
                self.variants.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        })
    }
}

/// Values for placeholders. Unset optional values render as empty (and drop their line).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PromptContext {
    pub values: BTreeMap<String, String>,
}

impl PromptContext {
    /// Sets `name` (empty strings count as unset).
    pub fn set(&mut self, name: &str, value: impl Into<String>) -> &mut Self {
        self.values.insert(name.to_string(), value.into());
        self
    }

    /// Builder form of [`PromptContext::set`].
    pub fn with(mut self, name: &str, value: impl Into<String>) -> Self {
        self.set(name, value);
        self
    }
}

/// Names every template may use; a placeholder outside this list is a typo and an error.
pub const KNOWN_PLACEHOLDERS: [&str; 10] = [
    "labels",
    "n_classes",
    "objects",
    "modality",
    "stain",
    "scale_bar",
    "question",
    "task",
    "reference",
    "answer",
];

/// Renders `template` with `ctx`.
///
/// # Errors
/// [`VlmError::Template`] for an unknown placeholder or an unclosed `{`.
///
/// ```
/// use mica_vlm::prompt::{render, PromptContext};
/// let ctx = PromptContext::default().with("objects", "cells");
/// assert_eq!(render("Count the {objects}.\nStain: {stain}.\nGo.", &ctx).unwrap(),
///            "Count the cells.\nGo.");
/// ```
pub fn render(template: &str, ctx: &PromptContext) -> Result<String, VlmError> {
    let err = |reason: String| VlmError::Template {
        name: "prompt".into(),
        reason,
    };
    let mut out_lines = Vec::new();
    for line in template.trim().lines() {
        let mut out = String::new();
        let mut empty_placeholder = false;
        let mut chars = line.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            match c {
                '{' if line[i + 1..].starts_with('{') => {
                    out.push('{');
                    chars.next();
                }
                '}' if line[i + 1..].starts_with('}') => {
                    out.push('}');
                    chars.next();
                }
                '{' => {
                    let rest = &line[i + 1..];
                    let end = rest
                        .find('}')
                        .ok_or_else(|| err(format!("unclosed `{{` in line `{line}`")))?;
                    let name = &rest[..end];
                    if !KNOWN_PLACEHOLDERS.contains(&name) {
                        return Err(err(format!(
                            "unknown placeholder {{{name}}} (known: {})",
                            KNOWN_PLACEHOLDERS.join(", ")
                        )));
                    }
                    let value = ctx.values.get(name).map(|s| s.trim()).unwrap_or("");
                    if value.is_empty() {
                        empty_placeholder = true;
                    }
                    out.push_str(value);
                    for _ in 0..name.chars().count() + 1 {
                        chars.next();
                    }
                }
                c => out.push(c),
            }
        }
        if !empty_placeholder {
            out_lines.push(out);
        }
    }
    Ok(out_lines.join("\n").trim().to_string())
}

/// Few-shot examples: images with the answer the model should give, sent as earlier turns.
///
/// File format (TOML), paths relative to the file:
/// ```toml
/// [[example]]
/// image = "fibres/a.jpg"
/// answer = "Count: 7"
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FewShotFile {
    pub example: Vec<FewShotExample>,
}

/// One example of a [`FewShotFile`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FewShotExample {
    pub image: PathBuf,
    pub answer: String,
}

/// Reads a few-shot file and turns it into alternating user/assistant turns, each user turn
/// holding `prompt` and the prepared example image.
///
/// # Errors
/// [`VlmError::Template`] when the file is unreadable or malformed; [`VlmError::Image`] when an
/// example image cannot be prepared.
pub fn few_shot_turns(
    path: &Path,
    prompt: &str,
    prep: &PrepareOptions,
) -> Result<Vec<Turn>, VlmError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| VlmError::Template {
        name: name.clone(),
        reason: e.to_string(),
    })?;
    let file: FewShotFile = toml::from_str(&text).map_err(|e| VlmError::Template {
        name: name.clone(),
        reason: e.to_string(),
    })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut turns = Vec::new();
    for ex in file.example {
        let img_path = if ex.image.is_absolute() {
            ex.image.clone()
        } else {
            dir.join(&ex.image)
        };
        let img = prepare_file(&img_path, prep)?;
        turns.push(Turn {
            role: Role::User,
            text: prompt.to_string(),
            images: vec![img],
        });
        turns.push(Turn {
            role: Role::Assistant,
            text: ex.answer,
            images: vec![],
        });
    }
    Ok(turns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_templates_parse_and_have_study_and_domain() {
        for t in [
            TaskKind::Classify,
            TaskKind::Count,
            TaskKind::Describe,
            TaskKind::Size,
            TaskKind::Ask,
        ] {
            let set = TemplateSet::builtin(t).unwrap();
            for v in ["study", "domain"] {
                let tpl = set.variant(v).unwrap();
                let ctx = PromptContext::default()
                    .with("labels", "1. A\n2. B")
                    .with("n_classes", "2")
                    .with("objects", "cells")
                    .with("modality", "fluorescence microscope")
                    .with("question", "What is this?");
                let text = render(&tpl.text, &ctx).unwrap();
                assert!(!text.is_empty(), "{t:?}/{v}");
                assert!(!text.contains('{'), "{t:?}/{v}: {text}");
            }
            assert!(set.variant("nope").is_err());
        }
    }

    #[test]
    fn render_drops_lines_with_empty_values_and_rejects_typos() {
        let ctx = PromptContext::default().with("objects", "fibres");
        assert_eq!(
            render("A {objects}\nB {stain}\nC {{x}}", &ctx).unwrap(),
            "A fibres\nC {x}"
        );
        assert!(render("{objcts}", &ctx).is_err());
        assert!(render("{objects", &ctx).is_err());
    }

    #[test]
    fn study_count_prompt_asks_for_count_form() {
        let set = TemplateSet::builtin(TaskKind::Count).unwrap();
        let ctx = PromptContext::default().with("objects", "particles");
        let text = render(&set.variant("study").unwrap().text, &ctx).unwrap();
        assert!(text.contains("particles") && text.contains("Count: <n>"));
    }
}
