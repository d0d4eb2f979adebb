//! Tasks (classify, count, describe, size, free question): from a template to a request, and from a
//! response to an [`Answer`] that keeps the raw text, the parsed value and, on failure, the reason.
//!
//! Structured answers (JSON following the task's schema) are read first; anything else goes
//! through the text parsers of `mica_metrics::parse`, the same rules used to score the study's
//! own answers.

use crate::error::VlmError;
use crate::prepare::PreparedImage;
use crate::prompt::{render, PromptContext, TaskKind, Template};
use crate::request::{AnswerSchema, FinishReason, Role, Sampling, Turn, VlmRequest, VlmResponse};
use mica_metrics::parse::{
    count_from_json, parse_class, parse_count, parse_size_um, size_from_json, ClassLabel,
};
use serde::Serialize;
use serde_json::json;
use std::path::Path;

/// A task with what it needs.
#[derive(Debug, Clone, PartialEq)]
pub enum Task {
    /// Classify into `labels` (answer: one class number, or "cannot tell").
    Classify { labels: Vec<ClassLabel> },
    /// Count `objects` (e.g. "cells").
    Count { objects: String },
    /// Describe the image (VQA T1).
    Describe,
    /// Estimate the mean size of `objects` in µm from the scale bar (VQA T2).
    Size { objects: String },
    /// Any question.
    Ask { question: String },
}

impl Task {
    pub fn kind(&self) -> TaskKind {
        match self {
            Task::Classify { .. } => TaskKind::Classify,
            Task::Count { .. } => TaskKind::Count,
            Task::Describe => TaskKind::Describe,
            Task::Size { .. } => TaskKind::Size,
            Task::Ask { .. } => TaskKind::Ask,
        }
    }

    /// The JSON Schema of a structured answer, if the task has one.
    pub fn schema(&self) -> Option<AnswerSchema> {
        let (name, field, ty, desc) = match self {
            Task::Classify { .. } => (
                "class_answer",
                "class_number",
                "integer",
                "the number of the category, or null if it is impossible to decide",
            ),
            Task::Count { .. } => (
                "count_answer",
                "count",
                "integer",
                "the number of objects, or null if it is impossible to count them",
            ),
            Task::Size { .. } => (
                "size_answer",
                "size_um",
                "number",
                "the mean size in micrometres, or null if it is impossible to estimate",
            ),
            Task::Describe | Task::Ask { .. } => return None,
        };
        Some(AnswerSchema {
            name: name.into(),
            schema: json!({
                "type": "object",
                "properties": {field: {"type": [ty, "null"], "description": desc}},
                "required": [field],
                "additionalProperties": false
            }),
        })
    }

    fn field(&self) -> Option<&'static str> {
        match self {
            Task::Classify { .. } => Some("class_number"),
            Task::Count { .. } => Some("count"),
            Task::Size { .. } => Some("size_um"),
            _ => None,
        }
    }
}

/// The labels as numbered lines for `{labels}`: `1. Biological`, underscores shown as spaces.
pub fn numbered_labels(labels: &[ClassLabel]) -> String {
    labels
        .iter()
        .map(|l| format!("{}. {}", l.id, l.name.replace('_', " ")))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Reads a label file: one class per line, `#` starts a comment. A line is either a name (ids are
/// then 1, 2, ... in file order) or `id,name[,alias;alias...]`. Names and aliases are matched
/// case-insensitively in answers.
///
/// # Errors
/// [`VlmError::Template`] naming the file and line when it is unreadable, empty, mixes the two
/// forms, or repeats an id.
pub fn load_labels(path: &Path) -> Result<Vec<ClassLabel>, VlmError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| VlmError::Template {
        name: name.clone(),
        reason: e.to_string(),
    })?;
    parse_labels(&text, &name)
}

fn parse_labels(text: &str, name: &str) -> Result<Vec<ClassLabel>, VlmError> {
    let err = |line: usize, reason: String| VlmError::Template {
        name: format!("{name}:{line}"),
        reason,
    };
    let mut labels: Vec<ClassLabel> = Vec::new();
    let mut with_ids: Option<bool> = None;
    for (i, raw) in text.trim_start_matches('\u{feff}').lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let has_id = fields.len() >= 2 && fields[0].parse::<u32>().is_ok();
        if *with_ids.get_or_insert(has_id) != has_id {
            return Err(err(
                i + 1,
                "mixes `id,name` lines with bare names; use one form".into(),
            ));
        }
        let (id, label, aliases): (u32, &str, Vec<&str>) = if has_id {
            let aliases = fields
                .get(2)
                .map(|a| {
                    a.split(';')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default();
            (fields[0].parse().unwrap_or(0), fields[1], aliases)
        } else {
            (labels.len() as u32 + 1, line, Vec::new())
        };
        if label.is_empty() {
            return Err(err(i + 1, "empty class name".into()));
        }
        if labels.iter().any(|l| l.id == id) {
            return Err(err(i + 1, format!("class id {id} appears twice")));
        }
        labels.push(ClassLabel::new(id, label, &aliases));
    }
    if labels.len() < 2 {
        return Err(VlmError::Template {
            name: name.to_string(),
            reason: format!("needs at least 2 classes, found {}", labels.len()),
        });
    }
    Ok(labels)
}

/// A task bound to a rendered prompt: builds one request per image and reads the answers.
#[derive(Debug, Clone)]
pub struct TaskPrompt {
    pub task: Task,
    pub system: Option<String>,
    pub text: String,
    /// Earlier example turns (few-shot), sent before the question.
    pub few_shot: Vec<Turn>,
    /// Whether to attach the task's schema (structured output).
    pub structured: bool,
}

impl TaskPrompt {
    /// Renders `template` for `task`; the task's own values (labels, objects, question) are added
    /// to `ctx`.
    ///
    /// # Errors
    /// [`VlmError::Template`] as [`render`].
    pub fn new(task: Task, template: &Template, mut ctx: PromptContext) -> Result<Self, VlmError> {
        match &task {
            Task::Classify { labels } => {
                ctx.set("labels", numbered_labels(labels));
                ctx.set("n_classes", labels.len().to_string());
            }
            Task::Count { objects } | Task::Size { objects } => {
                ctx.set("objects", objects.clone());
            }
            Task::Ask { question } => {
                ctx.set("question", question.clone());
            }
            Task::Describe => {}
        }
        let text = render(&template.text, &ctx)?;
        if text.is_empty() {
            return Err(VlmError::Template {
                name: "prompt".into(),
                reason: "renders to an empty prompt".into(),
            });
        }
        let system = template
            .system
            .as_deref()
            .map(|s| render(s, &ctx))
            .transpose()?
            .filter(|s| !s.is_empty());
        Ok(TaskPrompt {
            task,
            system,
            text,
            few_shot: Vec::new(),
            structured: true,
        })
    }

    /// The request for one prepared image.
    pub fn request(&self, image: PreparedImage, sampling: &Sampling) -> VlmRequest {
        let mut turns = self.few_shot.clone();
        turns.push(Turn {
            role: Role::User,
            text: self.text.clone(),
            images: vec![image],
        });
        VlmRequest {
            system: self.system.clone(),
            turns,
            schema: if self.structured {
                self.task.schema()
            } else {
                None
            },
            sampling: sampling.clone(),
        }
    }

    /// Reads a response into an [`Answer`].
    pub fn interpret(&self, resp: &VlmResponse) -> Answer {
        interpret(&self.task, self.structured, resp)
    }
}

/// A parsed value.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerValue {
    /// `index` into the label set, with the class's id and name.
    Class {
        index: usize,
        id: u32,
        name: String,
    },
    Count(u64),
    SizeUm(f64),
    Text(String),
}

/// How a value was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ParsedVia {
    /// From the JSON of a structured answer.
    Structured,
    /// By the text parsers.
    Text,
}

/// A model's answer: the raw text, the value read from it (if any), how, and why not.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Answer {
    pub raw: String,
    pub value: Option<AnswerValue>,
    pub via: Option<ParsedVia>,
    /// Why no value could be read (refusal, safety block, "NaN", no number, ...).
    pub failure: Option<String>,
}

fn interpret(task: &Task, structured: bool, resp: &VlmResponse) -> Answer {
    let raw = resp.text.clone();
    let fail = |reason: String| Answer {
        raw: raw.clone(),
        value: None,
        via: None,
        failure: Some(reason),
    };
    match &resp.finish {
        FinishReason::Blocked(r) => {
            return fail(format!("blocked by the provider's safety filter ({r})"))
        }
        FinishReason::Refused(m) => return fail(format!("the model refused: {m}")),
        _ => {}
    }
    let cut = if resp.finish == FinishReason::Length {
        " (the answer was cut by the token limit)"
    } else {
        ""
    };
    // Structured answer first.
    if let (true, Some(field)) = (structured, task.field()) {
        if let Some(obj) = json_object(&raw) {
            if let Some(v) = obj.get(field) {
                let structured_value = match task {
                    Task::Count { .. } => Some(count_from_json(v).map(AnswerValue::Count)),
                    Task::Size { .. } => Some(size_from_json(v).map(AnswerValue::SizeUm)),
                    _ => None,
                };
                if let Some(r) = structured_value {
                    return match r {
                        Ok(value) => Answer {
                            raw: raw.clone(),
                            value: Some(value),
                            via: Some(ParsedVia::Structured),
                            failure: None,
                        },
                        Err(e) => fail(format!("{field}: {}", e.reason)),
                    };
                }
                let text = match v {
                    serde_json::Value::Null => {
                        return fail(format!("the model answered {field}: null (cannot tell)"))
                    }
                    serde_json::Value::Number(n) => n.to_string(),
                    serde_json::Value::String(s) => s.clone(),
                    other => {
                        return fail(format!("{field} is not a number: {other}"));
                    }
                };
                let mut a = parse_value(task, &text, &raw);
                if a.value.is_some() {
                    a.via = Some(ParsedVia::Structured);
                }
                return a;
            }
        }
    }
    let mut a = parse_value(task, &raw, &raw);
    if let Some(f) = &mut a.failure {
        f.push_str(cut);
    }
    a
}

/// The JSON object in `text`, also inside a ```json fence.
pub(crate) fn json_object(text: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    let t = text.trim();
    let t = t
        .strip_prefix("```json")
        .or_else(|| t.strip_prefix("```"))
        .map(|s| s.trim_end().trim_end_matches("```"))
        .unwrap_or(t)
        .trim();
    match serde_json::from_str(t).ok()? {
        serde_json::Value::Object(m) => Some(m),
        _ => None,
    }
}

fn parse_value(task: &Task, text: &str, raw: &str) -> Answer {
    let done = |value: AnswerValue| Answer {
        raw: raw.to_string(),
        value: Some(value),
        via: Some(ParsedVia::Text),
        failure: None,
    };
    let fail = |reason: String| Answer {
        raw: raw.to_string(),
        value: None,
        via: None,
        failure: Some(reason),
    };
    match task {
        Task::Classify { labels } => match parse_class(text, labels) {
            Ok(i) => done(AnswerValue::Class {
                index: i,
                id: labels[i].id,
                name: labels[i].name.clone(),
            }),
            Err(e) => fail(e.reason),
        },
        Task::Count { .. } => match parse_count(text) {
            Ok(n) => done(AnswerValue::Count(n)),
            Err(e) => fail(e.reason),
        },
        Task::Size { .. } => match parse_size_um(text) {
            Ok(v) => done(AnswerValue::SizeUm(v)),
            Err(e) => fail(e.reason),
        },
        Task::Describe | Task::Ask { .. } => {
            if raw.trim().is_empty() {
                fail("empty answer".into())
            } else {
                done(AnswerValue::Text(raw.to_string()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Usage;
    use mica_metrics::parse::nffa_labels;

    fn resp(text: &str, finish: FinishReason) -> VlmResponse {
        VlmResponse {
            text: text.into(),
            finish,
            usage: Usage::default(),
            latency_ms: 1,
            attempts: 1,
            model_version: None,
        }
    }

    #[test]
    fn reads_structured_then_text_answers() {
        let t = Task::Count {
            objects: "cells".into(),
        };
        let a = interpret(&t, true, &resp(r#"{"count": 12}"#, FinishReason::Stop));
        assert_eq!(a.value, Some(AnswerValue::Count(12)));
        assert_eq!(a.via, Some(ParsedVia::Structured));
        let a = interpret(&t, true, &resp("Count: 7", FinishReason::Stop));
        assert_eq!(a.value, Some(AnswerValue::Count(7)));
        assert_eq!(a.via, Some(ParsedVia::Text));
        let a = interpret(&t, true, &resp(r#"{"count": null}"#, FinishReason::Stop));
        assert!(a.value.is_none() && a.failure.unwrap().contains("null"));
        let a = interpret(&t, true, &resp(r#"{"count": -3}"#, FinishReason::Stop));
        assert!(a.value.is_none() && a.failure.unwrap().contains("negative"));
        let a = interpret(&t, false, &resp("Count: NaN", FinishReason::Length));
        assert!(a.failure.unwrap().contains("token limit"));
    }

    #[test]
    fn classifies_by_number_or_name_and_reports_blocks() {
        let t = Task::Classify {
            labels: nffa_labels(),
        };
        let a = interpret(
            &t,
            true,
            &resp(r#"{"class_number": 6}"#, FinishReason::Stop),
        );
        assert_eq!(
            a.value,
            Some(AnswerValue::Class {
                index: 5,
                id: 6,
                name: "Particles".into()
            })
        );
        let a = interpret(&t, false, &resp("It shows fibers.", FinishReason::Stop));
        assert!(matches!(a.value, Some(AnswerValue::Class { id: 2, .. })));
        let a = interpret(&t, true, &resp("", FinishReason::Blocked("SAFETY".into())));
        assert!(a.failure.unwrap().contains("SAFETY"));
    }

    #[test]
    fn label_files_in_both_forms() {
        let l = parse_labels("\u{feff}# classes\nCells\nDebris\n", "l.txt").unwrap();
        assert_eq!((l[1].id, l[1].name.as_str()), (2, "Debris"));
        let l = parse_labels("3,Fibres,fiber;fibre\n7,Tips\n", "l.txt").unwrap();
        assert_eq!(l[0].id, 3);
        assert!(l[0].aliases.contains(&"fibre".to_string()));
        assert!(parse_labels("1,A\nB\n", "l.txt").is_err());
        assert!(parse_labels("1,A\n1,B\n", "l.txt").is_err());
        assert!(parse_labels("A\n", "l.txt").is_err());
        assert_eq!(
            numbered_labels(&nffa_labels()).lines().nth(2),
            Some("3. Films Coated Surface")
        );
    }

    #[test]
    fn structured_counts_and_sizes_follow_the_strict_rules() {
        let t = Task::Count {
            objects: "cells".into(),
        };
        for (body, why) in [
            (r#"{"count": 7.9}"#, "fractional"),
            (r#"{"count": 1e+308}"#, "too large"),
            (r#"{"count": 99999999999999999999999}"#, "too large"),
            (r#"{"count": "12e4"}"#, "exponent"),
        ] {
            let a = interpret(&t, true, &resp(body, FinishReason::Stop));
            assert!(a.value.is_none(), "{body}: {:?}", a.value);
            assert!(a.failure.as_deref().unwrap().contains(why), "{body}: {a:?}");
        }
        let s = Task::Size {
            objects: "fibres".into(),
        };
        let a = interpret(&s, true, &resp(r#"{"size_um": 0.8}"#, FinishReason::Stop));
        assert_eq!(a.value, Some(AnswerValue::SizeUm(0.8)));
        let a = interpret(&s, true, &resp(r#"{"size_um": -1}"#, FinishReason::Stop));
        assert!(a.failure.unwrap().contains("not positive"));
        let a = interpret(&s, false, &resp("Size: 1.2 mm", FinishReason::Stop));
        assert_eq!(a.value, Some(AnswerValue::SizeUm(1200.0)));
    }
}
