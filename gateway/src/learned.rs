//! The feedback strategy's models as the gateway keeps them: trained per (collection,
//! text fields), with the points' priors; what a `feedback` rerank may say; and the
//! training examples that records and their points' text make. The training itself
//! and the features are `vectron_reranker::feedback`'s (shared with the strategy);
//! reading the records and retraining are in `crate::feedback`.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::Value;
use vectron_model::PointId;
use vectron_model::feedback::FeedbackRecord;
use vectron_model::rerank::RerankPlan;
use vectron_proto::v1 as pb;
use vectron_reranker::feedback::{Example, Model, features, prior, text_features};

use crate::error::GatewayError;

type Result<T> = std::result::Result<T, GatewayError>;

/// A feedback model older than this is retrained (in the background) on its next use.
pub const RETRAIN_AFTER: Duration = Duration::from_secs(30);
/// Records one training reads at most.
pub const MAX_TRAINING_RECORDS: usize = 200_000;
/// Judged hits of one query a training uses at most (those seen highest): pairs grow
/// with their square.
pub const MAX_JUDGED_PER_QUERY: usize = 50;
/// Models kept at most (the oldest trained goes first).
pub const MAX_MODELS: usize = 64;
/// Text fields a `feedback` rerank may name at most.
pub const MAX_TEXT_FIELDS: usize = 8;

/// A trained model and the priors of the points it knows.
#[derive(Debug)]
pub struct Trained {
    pub model: Model,
    pub(crate) priors: HashMap<PointId, f32>,
    pub(crate) trained_at: Instant,
}

impl Trained {
    /// The prior of the point `id` names (0 for points without feedback).
    pub fn prior_of(&self, id: Option<&pb::PointId>) -> f32 {
        id.and_then(|i| vectron_model::convert::point_id_from_pb(Some(i)).ok())
            .and_then(|id| self.priors.get(&id).copied())
            .unwrap_or(0.0)
    }
}

pub(crate) type ModelKey = (String, Vec<String>);

/// The gateway's feedback models, by (collection, text fields).
#[derive(Debug, Default)]
pub struct FeedbackModels {
    pub(crate) models: Mutex<HashMap<ModelKey, std::sync::Arc<Trained>>>,
    pub(crate) training: Mutex<HashSet<ModelKey>>,
    /// Collections this gateway kept feedback for since their models were trained.
    pub(crate) changed: Mutex<HashSet<String>>,
    /// First trainings take turns.
    pub(crate) first_training: tokio::sync::Mutex<()>,
}

impl FeedbackModels {
    pub(crate) fn kept(&self, key: &ModelKey) -> Option<std::sync::Arc<Trained>> {
        self.models.lock().get(key).cloned()
    }

    /// Whether `kept` should be retrained: old, or this gateway kept feedback since.
    pub(crate) fn due(&self, key: &ModelKey, kept: &Trained) -> bool {
        kept.trained_at.elapsed() > RETRAIN_AFTER || self.changed.lock().contains(&key.0)
    }

    /// Keeps `trained` under `key`, dropping the oldest model past [`MAX_MODELS`].
    pub(crate) fn keep(&self, key: ModelKey, trained: std::sync::Arc<Trained>) {
        let mut models = self.models.lock();
        models.insert(key, trained);
        while models.len() > MAX_MODELS {
            let oldest = models.iter().min_by_key(|(_, t)| t.trained_at).map(|(k, _)| k.clone());
            match oldest {
                Some(k) => models.remove(&k),
                None => break,
            };
        }
    }
}

/// The text fields a `feedback` rerank names: its only parameter (the weights are
/// learned).
pub(crate) fn feedback_params(plan: &RerankPlan) -> Result<Vec<String>> {
    if let Some(other) = plan.params.keys().find(|k| *k != "text_fields") {
        return Err(GatewayError::invalid(format!(
            "the feedback strategy takes only text_fields, not {other:?} (its weights are learned)"
        )));
    }
    match plan.params.get("text_fields") {
        None => Ok(Vec::new()),
        Some(Value::Array(a))
            if a.len() <= MAX_TEXT_FIELDS && a.iter().all(|f| f.as_str().is_some_and(|f| f.len() <= 256)) =>
        {
            Ok(a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        }
        Some(_) => {
            Err(GatewayError::invalid(format!("text_fields must be a list of at most {MAX_TEXT_FIELDS} field names")))
        }
    }
}

/// The training examples of `records` (judged points' text in `texts`), and every
/// point's prior. An example's prior leaves its own record out; a record without a
/// position counts as seen below the query's other hits.
pub(crate) fn examples(
    records: &[FeedbackRecord],
    texts: &HashMap<PointId, String>,
) -> (Vec<Example>, HashMap<PointId, f32>) {
    let mut sums: HashMap<&PointId, (f32, u32)> = HashMap::new();
    for r in records {
        let s = sums.entry(&r.point_id).or_default();
        s.0 += r.relevance;
        s.1 += 1;
    }
    let mut queries: HashMap<&str, Vec<&FeedbackRecord>> = HashMap::new();
    for r in records {
        queries.entry(&r.query_id).or_default().push(r);
    }
    for judged in queries.values_mut() {
        judged.sort_by_key(|r| r.position.unwrap_or(u32::MAX));
        judged.truncate(MAX_JUDGED_PER_QUERY);
    }
    let mut examples = Vec::with_capacity(records.len());
    for judged in queries.values() {
        let query_text = judged.iter().find_map(|r| r.query_text.as_deref());
        let docs: Vec<String> = judged.iter().map(|r| texts.get(&r.point_id).cloned().unwrap_or_default()).collect();
        let text = text_features(query_text, &docs);
        for (r, (bm25, coverage)) in judged.iter().zip(text) {
            let (sum, count) = sums[&r.point_id];
            let position = r.position.unwrap_or(judged.len() as u32);
            examples.push(Example {
                query_id: r.query_id.clone(),
                relevance: r.relevance,
                position,
                features: features(position as usize, bm25, coverage, prior(sum - r.relevance, count - 1)),
            });
        }
    }
    // A stable order: the model's version names the data, not the hash map's order.
    examples.sort_by(|a, b| a.query_id.cmp(&b.query_id).then(a.position.cmp(&b.position)));
    let priors = sums.into_iter().map(|(id, (sum, count))| (id.clone(), prior(sum, count))).collect();
    (examples, priors)
}
