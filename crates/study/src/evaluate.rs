//! A results store read as typed observations and evaluated by the measurement layer
//! ([`mica_metrics::evaluation::evaluate`]): what `mica report` renders.

use mica_core::dataset::meta;
use mica_core::task::TaskKind;
use mica_metrics::bootstrap::BootstrapConfig;
use mica_metrics::evaluation::{evaluate_with, Evaluation, Observation, Outcome, SampleTruth};
use mica_metrics::measure::{Metric, PredictionValue};
use mica_metrics::vqa::AnswerScorer;
use mica_store::{Prediction, SampleRecord, Status, Store};
use std::collections::BTreeMap;

/// The truth of a stored sample, typed.
pub fn sample_truth(s: &SampleRecord) -> SampleTruth {
    SampleTruth {
        dataset: s.dataset.clone(),
        id: s.sample_id.clone(),
        count: s.truth_count,
        class: s.truth_class.clone(),
        size_um: s
            .meta
            .get(meta::TRUTH_SIZE_UM)
            .and_then(|v| v.parse::<f64>().ok()),
        stain: s.meta.get(meta::STAIN).cloned(),
        blur: s.meta.get(meta::BLUR).and_then(|b| b.parse::<f64>().ok()),
        reference: s.meta.get(meta::REFERENCE_ANSWER).cloned(),
    }
}

/// The outcome of a stored prediction of `task`: its value typed by the measurement layer
/// ([`PredictionValue::from_stored`]); a stored value that does not fit its task is
/// [`Outcome::Unreadable`], never read as another value.
pub fn outcome(task: TaskKind, p: &Prediction) -> Outcome {
    if p.status != Status::Ok {
        return Outcome::Failed;
    }
    match PredictionValue::from_stored(
        task,
        p.value_num,
        p.value_text.as_deref(),
        p.mask.as_ref().map(|m| m.path.as_str()),
    ) {
        Ok(Some(v)) => Outcome::Value(v),
        Ok(None) => Outcome::NoValue,
        Err(reason) => Outcome::Unreadable(reason),
    }
}

/// Evaluates every prediction of a store. Predictions of a task mica does not know and per-image
/// scores of a metric it does not know are left out and named among the warnings.
///
/// # Errors
/// Errors reading the store; an invalid bootstrap configuration.
pub fn evaluate_store(store: &Store, config: &BootstrapConfig) -> anyhow::Result<Evaluation> {
    evaluate_store_with(store, config, &[])
}

/// [`evaluate_store`] with external answer scorers (see
/// [`mica_metrics::evaluation::evaluate_with`]).
///
/// # Errors
/// As [`evaluate_store`].
pub fn evaluate_store_with(
    store: &Store,
    config: &BootstrapConfig,
    scorers: &[&dyn AnswerScorer],
) -> anyhow::Result<Evaluation> {
    let samples: Vec<SampleTruth> = store.samples()?.iter().map(sample_truth).collect();
    let mut warnings = Vec::new();
    let mut scores: BTreeMap<(String, String, String, String), BTreeMap<Metric, f64>> =
        BTreeMap::new();
    for m in store.image_metrics()? {
        let Some(metric) = Metric::from_key(&m.name) else {
            warnings.push(format!(
                "stored per-image score {:?} of {:?} on {:?} is not a metric this mica knows; left out",
                m.name, m.key.method, m.key.sample_id
            ));
            continue;
        };
        let k = m.key;
        scores
            .entry((k.dataset, k.sample_id, k.task, k.method))
            .or_default()
            .insert(metric, m.value);
    }
    let mut observations = Vec::new();
    for p in store.predictions()? {
        let Some(task) = TaskKind::from_name(&p.key.task) else {
            warnings.push(format!(
                "stored prediction of {:?} on {:?} has task {:?}, which this mica does not know; left out",
                p.key.method, p.key.sample_id, p.key.task
            ));
            continue;
        };
        let k = &p.key;
        let image_metrics = scores
            .remove(&(
                k.dataset.clone(),
                k.sample_id.clone(),
                k.task.clone(),
                k.method.clone(),
            ))
            .unwrap_or_default();
        observations.push(Observation {
            dataset: k.dataset.clone(),
            method: k.method.clone(),
            task,
            sample_id: k.sample_id.clone(),
            outcome: outcome(task, &p),
            failure: p.failure.clone(),
            image_metrics,
        });
    }
    let mut ev = evaluate_with(&samples, &observations, config, scorers)?;
    ev.warnings.extend(warnings);
    Ok(ev)
}
