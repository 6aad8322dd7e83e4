//! Feedback kept through the cluster's own write path: a collection's records are the
//! points of its companion collection (`vectron_model::feedback`), created on the first
//! feedback with the collection's shard count and replication factor, written and read
//! like any collection (replicated, durable, visible to every gateway), and deleted by
//! the placement driver with the collection.
//!
//! The `feedback` rerank strategy's model is trained here, from the records and the
//! judged points' payloads (`vectron_reranker::feedback::train`), kept per (collection,
//! text fields), and retrained in the background on its first use after this gateway
//! kept feedback for the collection, or once it is older than [`RETRAIN_AFTER`]; the same records give every gateway the same model (its version
//! names them). A reranked search sends the model's weights and each candidate's prior
//! to the reranker, which stays stateless.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use vectron_model::convert::{default_rerank, point_id_to_pb, struct_from_pb};
use vectron_model::feedback::{FeedbackRecord, FeedbackStats, feedback_collection, record_id};
use vectron_model::request::{Consistency, GetRequest, ScrollRequest};
use vectron_model::rerank::{Rerank, RerankPlan, RerankStrategy};
use vectron_model::types::MAX_IDS_PER_REQUEST;
use vectron_model::{Distance, Payload, Point, PointId};
use vectron_proto::v1 as pb;
use vectron_proto::v1::ErrorCode;
use vectron_reranker::feedback::{Model, text_of_fields, train};

use crate::api::{Api, allowed};
use crate::auth::{Access, Scope};
use crate::error::GatewayError;
use crate::learned::{MAX_TRAINING_RECORDS, ModelKey, Trained, examples, feedback_params};
use crate::routing::CollectionRoute;

type Result<T> = std::result::Result<T, GatewayError>;

/// Records read per page when adding up a collection's feedback.
const STATS_PAGE: usize = 1000;

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl Api {
    /// Keeps `record` (checked at the edge) as feedback on `collection`; a record for the same
    /// (query, point) replaces the earlier one.
    pub async fn submit_feedback(&self, access: &Access, collection: &str, record: FeedbackRecord) -> Result<()> {
        allowed(access, Scope::Write, Some(collection))?;
        let parent = self.router().collection(collection).await?;
        let record = FeedbackRecord { at_ms: now_ms(), ..record };
        let store = self.feedback_store(&parent).await?;
        let point = Point {
            id: record_id(&record.query_id, &record.point_id),
            vector: vec![record.relevance],
            payload: Some(Payload::from_map(&record.to_payload())),
        };
        self.write_points(&store, vec![point], true).await?;
        self.models.changed.lock().insert(collection.to_owned());
        Ok(())
    }

    /// What `collection`'s feedback adds up to (none yet: zeros).
    pub async fn feedback_stats(&self, access: &Access, collection: &str) -> Result<pb::FeedbackStats> {
        allowed(access, Scope::Read, Some(collection))?;
        let route = self.router().collection(collection).await?;
        let records = match self.router().collection(&feedback_collection(collection)).await {
            Ok(store) => self.feedback_records(&store, usize::MAX).await?,
            Err(GatewayError::CollectionNotFound { .. }) => Vec::new(),
            Err(e) => return Err(e),
        };
        let mut stats = stats_to_pb(&FeedbackStats::of(&records));
        // The model of the collection's default feedback rerank's text fields, if any.
        let default = route.info.config.as_ref().map(default_rerank).transpose().map_err(GatewayError::Invalid)?;
        let plan = Rerank::plan(None, default.flatten().as_ref(), 1).map_err(GatewayError::Invalid)?;
        let text_fields = match plan {
            Some(p) if p.strategy == RerankStrategy::Feedback => feedback_params(&p)?,
            _ => Vec::new(),
        };
        let key: ModelKey = (collection.to_owned(), text_fields);
        let trained = match self.models.kept(&key).filter(|k| !self.models.due(&key, k)) {
            Some(fresh) => fresh,
            None => {
                // The freshest model: searches use it from now on.
                let trained = Arc::new(self.train_model(&route, &key.1).await?);
                self.models.keep(key, trained.clone());
                trained
            }
        };
        stats.model = Some(model_to_pb(&trained.model));
        Ok(stats)
    }

    /// The feedback strategy's model for `plan` (trained now if there is none yet), put
    /// into its params; the client may name only `text_fields`.
    pub(crate) async fn attach_feedback_model(
        &self,
        route: &CollectionRoute,
        plan: &mut RerankPlan,
    ) -> Result<Arc<Trained>> {
        let text_fields = feedback_params(plan)?;
        let trained = self.feedback_model(route, text_fields).await?;
        plan.params.insert("weights".into(), serde_json::json!(trained.model.weights));
        plan.params.insert("model_version".into(), Value::from(trained.model.version.clone()));
        Ok(trained)
    }

    /// The model of the collection of `route` over `text_fields`: the kept one (retrained
    /// in the background when older than [`RETRAIN_AFTER`]), or one trained now.
    pub(crate) async fn feedback_model(
        &self,
        route: &CollectionRoute,
        text_fields: Vec<String>,
    ) -> Result<Arc<Trained>> {
        let name = route.info.config.as_ref().map(|c| c.name.clone()).unwrap_or_default();
        let key: ModelKey = (name, text_fields);
        if let Some(kept) = self.models.kept(&key) {
            if self.models.due(&key, &kept) && self.models.training.lock().insert(key.clone()) {
                self.models.changed.lock().remove(&key.0);
                let (api, route) = (self.clone(), route.clone());
                tokio::spawn(async move {
                    match api.train_model(&route, &key.1).await {
                        Ok(t) => api.models.keep(key.clone(), Arc::new(t)),
                        Err(e) => tracing::warn!(collection = key.0, "retraining the feedback model: {e}"),
                    }
                    api.models.training.lock().remove(&key);
                });
            }
            return Ok(kept);
        }
        // First trainings take turns (then find the model another just trained).
        let _turn = self.models.first_training.lock().await;
        if let Some(kept) = self.models.kept(&key) {
            return Ok(kept);
        }
        let trained = Arc::new(self.train_model(route, &key.1).await?);
        self.models.keep(key, trained.clone());
        Ok(trained)
    }

    /// Trains a model from the collection's records and its judged points' text.
    async fn train_model(&self, route: &CollectionRoute, text_fields: &[String]) -> Result<Trained> {
        let name = route.info.config.as_ref().map(|c| c.name.clone()).unwrap_or_default();
        let records = match self.router().collection(&feedback_collection(&name)).await {
            Ok(store) => self.feedback_records(&store, MAX_TRAINING_RECORDS).await?,
            Err(GatewayError::CollectionNotFound { .. }) => Vec::new(),
            Err(e) => return Err(e),
        };
        let texts =
            if text_fields.is_empty() { HashMap::new() } else { self.texts(route, &records, text_fields).await? };
        let (examples, priors) = examples(&records, &texts);
        let model = tokio::task::spawn_blocking(move || train(&examples))
            .await
            .map_err(|e| GatewayError::Internal { what: format!("training the feedback model: {e}") })?;
        tracing::debug!(collection = name, version = model.version, "trained the feedback model");
        Ok(Trained { model, priors, trained_at: Instant::now() })
    }

    /// The judged points' text (their `text_fields`, joined), by id.
    async fn texts(
        &self,
        route: &CollectionRoute,
        records: &[FeedbackRecord],
        text_fields: &[String],
    ) -> Result<HashMap<PointId, String>> {
        let ids: Vec<PointId> =
            records.iter().map(|r| r.point_id.clone()).collect::<HashSet<_>>().into_iter().collect();
        let mut texts = HashMap::new();
        for chunk in ids.chunks(MAX_IDS_PER_REQUEST) {
            let name = route.info.config.as_ref().map(|c| c.name.clone()).unwrap_or_default();
            let req = GetRequest {
                collection: name,
                ids: chunk.to_vec(),
                with_payload: true,
                with_vector: false,
                consistency: Consistency::Leader,
            };
            for p in self.get_route(route, &req).await?.points {
                let id = vectron_model::convert::point_id_from_pb(p.id.as_ref()).map_err(GatewayError::Invalid)?;
                let payload = p.payload.as_ref().map(struct_from_pb).transpose().map_err(GatewayError::Invalid)?;
                let text = text_of_fields(payload.as_ref(), text_fields);
                texts.insert(id, text);
            }
        }
        Ok(texts)
    }

    /// The records of a feedback store (at most `limit`), read page by page.
    async fn feedback_records(&self, store: &CollectionRoute, limit: usize) -> Result<Vec<FeedbackRecord>> {
        let name = store.info.config.as_ref().map(|c| c.name.clone()).unwrap_or_default();
        let mut request = ScrollRequest {
            collection: name,
            filter: None,
            limit: STATS_PAGE,
            cursor: Vec::new(),
            with_payload: true,
            with_vector: false,
            consistency: Consistency::Leader,
        };
        let mut records = Vec::new();
        loop {
            let page = self.scroll_route(store, &request).await?;
            for p in &page.points {
                let payload = p.payload.as_ref().map(struct_from_pb).transpose().map_err(GatewayError::Invalid)?;
                // A record the cluster wrote that does not read back is its fault, not the
                // caller's.
                let record = payload.as_ref().map(FeedbackRecord::from_payload).transpose();
                let record = record.map_err(|e| GatewayError::Internal { what: format!("feedback store: {e}") })?;
                match record {
                    Some(r) => records.push(r),
                    None => tracing::warn!(store = request.collection, "a feedback point without a record"),
                }
            }
            if page.next_cursor.is_empty() || records.len() >= limit {
                records.truncate(limit);
                return Ok(records);
            }
            request.cursor = page.next_cursor;
        }
    }

    /// The feedback store of the collection of `parent`, created if it is missing.
    async fn feedback_store(&self, parent: &CollectionRoute) -> Result<CollectionRoute> {
        let config = parent.info.config.as_ref().ok_or_else(|| GatewayError::Internal { what: "no config".into() })?;
        let name = feedback_collection(&config.name);
        match self.router().collection(&name).await {
            Err(GatewayError::CollectionNotFound { .. }) => {}
            found => return found,
        }
        let store = pb::CollectionConfig {
            name: name.clone(),
            dimension: 1,
            distance: vectron_model::convert::distance_to_pb(Distance::Euclid) as i32,
            shard_count: config.shard_count,
            replication_factor: config.replication_factor,
            ..Default::default()
        };
        let created = self
            .router()
            .placement()
            .call(|mut c| {
                let r = pb::CreateCollectionRequest { config: Some(store.clone()) };
                async move { c.create_collection(r).await }
            })
            .await;
        match created {
            Ok(_) => tracing::info!(store = name, "created the feedback store"),
            // Another gateway made it first.
            Err(e) if e.code == ErrorCode::CollectionAlreadyExists => {}
            Err(e) => return Err(GatewayError::Placement(e)),
        }
        self.router().refresh_now().await.ok();
        self.wait_for_leaders(&name).await?;
        self.router().collection(&name).await
    }
}

fn model_to_pb(m: &Model) -> pb::FeedbackModel {
    pb::FeedbackModel {
        version: m.version.clone(),
        weights: m.weights.to_vec(),
        examples: m.examples as u64,
        train_queries: m.train_queries as u64,
        held_out_queries: m.held_out_queries as u64,
        ndcg_vector: m.ndcg_vector,
        ndcg_model: m.ndcg_model,
    }
}

fn stats_to_pb(s: &FeedbackStats) -> pb::FeedbackStats {
    pb::FeedbackStats {
        count: s.count,
        queries: s.queries,
        points: s.points,
        mean_relevance: s.mean_relevance(),
        positive: s.positive,
        negative: s.negative,
        clicked: s.clicked,
        top_points: s
            .top_points
            .iter()
            .map(|p| pb::PointFeedback {
                point_id: Some(point_id_to_pb(&p.point_id)),
                count: p.count,
                mean_relevance: p.mean_relevance(),
                relevance_sum: p.relevance_sum,
                clicks: p.clicks,
            })
            .collect(),
        model: None,
    }
}
