//! Feedback kept through the cluster's own write path: a collection's records are the
//! points of its companion collection (`vectron_model::feedback`), created on the first
//! feedback with the collection's shard count and replication factor, written and read
//! like any collection (replicated, durable, visible to every gateway), and deleted by
//! the placement driver with the collection.

use std::time::{SystemTime, UNIX_EPOCH};

use vectron_model::convert::{point_id_to_pb, struct_from_pb};
use vectron_model::feedback::{FeedbackRecord, FeedbackStats, feedback_collection, record_id};
use vectron_model::request::{Consistency, ScrollRequest};
use vectron_model::{Distance, Payload, Point};
use vectron_proto::v1 as pb;
use vectron_proto::v1::ErrorCode;

use crate::api::{Api, allowed};
use crate::auth::{Access, Scope};
use crate::error::GatewayError;
use crate::routing::CollectionRoute;

type Result<T> = std::result::Result<T, GatewayError>;

/// Records read per page when adding up a collection's feedback.
const STATS_PAGE: usize = 1000;

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl Api {
    /// Keeps `record` (checked) as feedback on `collection`; a record for the same
    /// (query, point) replaces the earlier one.
    pub async fn submit_feedback(&self, access: &Access, collection: &str, record: FeedbackRecord) -> Result<()> {
        allowed(access, Scope::Write, Some(collection))?;
        let parent = self.router().collection(collection).await?;
        let record = FeedbackRecord { at_ms: now_ms(), ..record }.checked()?;
        let store = self.feedback_store(&parent).await?;
        let point = Point {
            id: record_id(&record.query_id, &record.point_id),
            vector: vec![record.relevance],
            payload: Some(Payload::from_map(&record.to_payload())),
        };
        self.write_points(&store, vec![point], true).await?;
        Ok(())
    }

    /// What `collection`'s feedback adds up to (none yet: zeros).
    pub async fn feedback_stats(&self, access: &Access, collection: &str) -> Result<pb::FeedbackStats> {
        allowed(access, Scope::Read, Some(collection))?;
        self.router().collection(collection).await?;
        let records = match self.router().collection(&feedback_collection(collection)).await {
            Ok(store) => self.feedback_records(&store).await?,
            Err(GatewayError::CollectionNotFound { .. }) => Vec::new(),
            Err(e) => return Err(e),
        };
        Ok(stats_to_pb(&FeedbackStats::of(&records)))
    }

    /// Every record of a feedback store, read page by page.
    async fn feedback_records(&self, store: &CollectionRoute) -> Result<Vec<FeedbackRecord>> {
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
                let record = payload.as_ref().map(FeedbackRecord::from_payload).transpose();
                match record.map_err(GatewayError::Invalid)? {
                    Some(r) => records.push(r),
                    None => tracing::warn!(store = request.collection, "a feedback point without a record"),
                }
            }
            if page.next_cursor.is_empty() {
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
    }
}
