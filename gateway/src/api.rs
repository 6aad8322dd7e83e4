//! The public API's operations, independent of transport: the gRPC service and the
//! HTTP routes both call [`Api`], so they cannot disagree.
//!
//! - Writes are validated whole against the collection (dimension, finite values, ids,
//!   payload size) before any shard sees them, so a bad point refuses the whole batch
//!   and nothing is written; then grouped by shard and sent to the shard leaders in
//!   parallel.
//! - Searches fan out to every shard and are merged by score; a shard that misses the
//!   deadline makes the answer `partial` (with the shard listed), never silently short.
//! - Every operation first checks that the caller's [`Access`] allows it on the
//!   collection it names (admin for creating and deleting collections, write for
//!   writes, read for reads); the auth layer put the access in the request.
//! - Scroll walks the shards in order; its cursor is the shard's position and the
//!   shard's own cursor.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use vectron_common::routing::{point_hash, range_contains};
use vectron_engine::shard::validate_point;
use vectron_engine::{Distance, Point, PointId, ValidationError};
use vectron_model::convert::{self, point_from_pb, point_id_from_pb, shard_config};
use vectron_model::status::WireError;
use vectron_model::types::{MAX_IDS_PER_REQUEST, MAX_QUERY_ID_BYTES, MAX_SEARCH_BATCH};
use vectron_proto::internal as pi;
use vectron_proto::v1 as pb;
use vectron_proto::v1::ErrorCode;

use crate::auth::{Access, Quota, Scope, require};
use crate::policy::BodyLimits;
use crate::routing::{CollectionRoute, Router};

/// An upsert, parsed at the edge that received it.
#[derive(Debug)]
pub struct Upsert {
    pub collection: String,
    pub points: Vec<Point>,
    /// Answer once committed and applied (else once the shard leaders accepted it).
    pub wait: bool,
}

impl Upsert {
    /// The proto request, consumed point by point (each payload tree is dropped once
    /// written as text).
    pub fn from_pb(req: pb::UpsertRequest) -> Result<Upsert> {
        let points = req
            .points
            .into_iter()
            .enumerate()
            .map(|(i, p)| point_from_pb(p).map_err(|e| point_error(i, e)))
            .collect::<Result<_>>()?;
        Ok(Upsert { collection: req.collection, points, wait: req.wait.unwrap_or(true) })
    }
}

/// Gateway behaviour.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Budget of a write (including leader changes and retries).
    pub write_timeout: Duration,
    /// Default deadline of a read when the request gives none.
    pub read_timeout: Duration,
    /// How long CreateCollection waits for every shard to elect a leader.
    pub create_wait: Duration,
    /// Largest bodies and messages (the upsert's is configurable).
    pub body_limits: BodyLimits,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            write_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(5),
            create_wait: Duration::from_secs(15),
            body_limits: BodyLimits::default(),
        }
    }
}

type Result<T> = std::result::Result<T, WireError>;

fn invalid(message: impl Into<String>) -> WireError {
    WireError::new(ErrorCode::InvalidArgument, message, false)
}

/// Refuses more than `max` items of `what` in one request.
fn at_most(what: &str, n: usize, max: usize) -> Result<()> {
    if n > max {
        return Err(invalid(format!("{n} {what} in one request; the limit is {max}")));
    }
    Ok(())
}

/// A consistency a client may ask for (an unknown value is refused, not read as the
/// default).
fn known_consistency(raw: i32) -> Result<()> {
    pb::Consistency::try_from(raw).map(|_| ()).map_err(|_| invalid(format!("unknown consistency {raw}")))
}

fn unimplemented(message: impl Into<String>) -> WireError {
    WireError::new(ErrorCode::Unimplemented, message, false)
}

fn engine(e: impl Into<vectron_engine::EngineError>) -> WireError {
    WireError::from(&e.into())
}

/// The operations of the public API.
#[derive(Debug, Clone)]
pub struct Api {
    router: Arc<Router>,
    config: ApiConfig,
}

fn shard_of<'a>(route: &'a CollectionRoute, id: &PointId) -> Result<&'a pi::ShardInfo> {
    let h = point_hash(id);
    route
        .info
        .shards
        .iter()
        .find(|s| range_contains(s.range_start, s.range_end, h))
        .ok_or_else(|| WireError::new(ErrorCode::Internal, "the shard ranges do not cover the hash space", false))
}

fn name_of(route: &CollectionRoute) -> String {
    route.info.config.as_ref().map(|c| c.name.clone()).unwrap_or_default()
}

impl Api {
    pub fn new(router: Arc<Router>, config: ApiConfig) -> Api {
        Api { router, config }
    }

    pub fn router(&self) -> &Arc<Router> {
        &self.router
    }

    pub fn config(&self) -> &ApiConfig {
        &self.config
    }

    fn read_deadline(&self, timeout_ms: u32) -> Instant {
        let t = if timeout_ms == 0 { self.config.read_timeout } else { Duration::from_millis(timeout_ms.into()) };
        Instant::now() + t
    }

    // ---- collections ----

    pub async fn create_collection(
        &self,
        access: &Access,
        req: pb::CreateCollectionRequest,
    ) -> Result<pb::CreateCollectionResponse> {
        require(access, Scope::Admin, req.config.as_ref().map(|c| c.name.as_str()))?;
        let config = req.config.ok_or_else(|| invalid("create collection needs a config"))?;
        let config = convert::normalize_collection(config).map_err(engine)?;
        let r = pb::CreateCollectionRequest { config: Some(config) };
        let info = self
            .router
            .placement()
            .call(|mut c| {
                let r = r.clone();
                async move { c.create_collection(r).await }
            })
            .await?;
        let name = info.config.as_ref().map(|c| c.name.clone()).unwrap_or_default();
        self.router.refresh_now().await.ok();
        // Wait until every shard has a leader, so the first writes need no retries.
        let deadline = Instant::now() + self.config.create_wait;
        while Instant::now() < deadline {
            let status = self.collection_info(&name).await?;
            if status.shards.iter().all(|s| s.leader != 0) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(pb::CreateCollectionResponse { config: info.config })
    }

    async fn collection_info(&self, name: &str) -> Result<pi::CollectionInfo> {
        let r = pb::GetCollectionStatusRequest { name: name.to_owned() };
        self.router
            .placement()
            .call(|mut c| {
                let r = r.clone();
                async move { c.get_collection_status(r).await }
            })
            .await
    }

    pub async fn get_collection(
        &self,
        access: &Access,
        req: pb::GetCollectionRequest,
    ) -> Result<pb::GetCollectionResponse> {
        require(access, Scope::Read, Some(&req.name))?;
        let count = self.count(access, pb::CountRequest { collection: req.name.clone(), ..Default::default() }).await?;
        let route = self.router.collection(&req.name).await?;
        Ok(pb::GetCollectionResponse { config: route.info.config, points_count: count.count })
    }

    pub async fn collection_status(
        &self,
        access: &Access,
        req: pb::GetCollectionStatusRequest,
    ) -> Result<pb::GetCollectionStatusResponse> {
        require(access, Scope::Read, Some(&req.name))?;
        let info = self.collection_info(&req.name).await?;
        let table = self.router.refresh_now().await.unwrap_or_else(|_| self.router.table());
        let worker = |id: u64| table.workers.iter().find(|w| w.id == id);
        let shards = info
            .shards
            .iter()
            .map(|s| pb::ShardStatus {
                shard_id: s.id,
                range_start: s.range_start,
                range_end: s.range_end,
                points_count: s.points_count,
                replicas: s
                    .replicas
                    .iter()
                    .map(|&w| {
                        let up = worker(w).is_some_and(|x| x.state == pi::WorkerState::Up as i32);
                        let state = if !up {
                            pb::ReplicaState::Unreachable
                        } else if s.voters.contains(&w) {
                            pb::ReplicaState::Active
                        } else {
                            pb::ReplicaState::CatchingUp
                        };
                        pb::ReplicaStatus {
                            worker_id: w,
                            worker_address: worker(w).map(|x| x.address.clone()).unwrap_or_default(),
                            state: state as i32,
                            is_leader: s.leader == w,
                        }
                    })
                    .collect(),
            })
            .collect();
        Ok(pb::GetCollectionStatusResponse { config: info.config, shards, epoch: table.epoch })
    }

    /// The collections `access` may read.
    pub async fn list_collections(&self, access: &Access) -> Result<pb::ListCollectionsResponse> {
        let list = self
            .router
            .placement()
            .call(|mut c| async move { c.list_collections(pb::ListCollectionsRequest {}).await })
            .await?;
        let collections = list
            .collections
            .into_iter()
            .filter_map(|c| c.config)
            .filter(|c| access.permits(Scope::Read, Some(&c.name)))
            .collect();
        Ok(pb::ListCollectionsResponse { collections })
    }

    pub async fn delete_collection(
        &self,
        access: &Access,
        req: pb::DeleteCollectionRequest,
    ) -> Result<pb::DeleteCollectionResponse> {
        require(access, Scope::Admin, Some(&req.name))?;
        self.router
            .placement()
            .call(|mut c| {
                let r = req.clone();
                async move { c.delete_collection(r).await }
            })
            .await?;
        self.router.refresh_now().await.ok();
        Ok(pb::DeleteCollectionResponse {})
    }

    // ---- writes ----

    pub async fn upsert(&self, access: &Access, req: Upsert) -> Result<pb::UpsertResponse> {
        require(access, Scope::Write, Some(&req.collection))?;
        let route = self.router.collection(&req.collection).await?;
        let config = route.info.config.as_ref().ok_or_else(|| invalid("collection has no config"))?;
        let shard_config = shard_config(config).map_err(engine)?;
        if req.points.is_empty() {
            return Err(invalid("upsert needs at least one point"));
        }
        if req.points.len() > shard_config.limits.max_batch {
            return Err(invalid(format!(
                "upsert batch has {} points, the limit is {}",
                req.points.len(),
                shard_config.limits.max_batch
            )));
        }
        // Validate everything before any shard writes anything.
        let mut groups: HashMap<u64, Vec<pi::ShardPoint>> = HashMap::new();
        for (i, mut point) in req.points.into_iter().enumerate() {
            validate_point(&shard_config, &mut point).map_err(|e| point_error(i, e))?;
            groups.entry(shard_of(&route, &point.id)?.id).or_default().push(convert::shard_point_to_pb(point));
        }
        let deadline = Instant::now() + self.config.write_timeout;
        let name = name_of(&route);
        let no_wait = !req.wait;
        let calls = groups.into_iter().map(|(shard_id, points)| {
            let name = name.clone();
            async move {
                // Each attempt (a leader change retries) sends a copy: the vectors are
                // copied, the payloads' text is shared.
                let r = pi::ShardUpsertRequest { shard_id, points, no_wait };
                self.router
                    .call_shard(&name, shard_id, deadline, |c| {
                        let r = r.clone();
                        async move { c.upsert(r).await }
                    })
                    .await
            }
        });
        let mut upserted = 0;
        for result in join_all(calls).await {
            upserted += result?.affected;
        }
        Ok(pb::UpsertResponse { upserted })
    }

    pub async fn delete(&self, access: &Access, req: pb::DeleteRequest) -> Result<pb::DeleteResponse> {
        require(access, Scope::Write, Some(&req.collection))?;
        let route = self.router.collection(&req.collection).await?;
        let name = name_of(&route);
        let deadline = Instant::now() + self.config.write_timeout;
        let no_wait = !req.wait.unwrap_or(true);
        let selector = req.selector.ok_or_else(|| invalid("delete needs ids or a filter"))?;
        let requests: Vec<pi::ShardDeleteRequest> = match selector {
            pb::delete_request::Selector::Ids(list) => {
                if list.ids.is_empty() {
                    return Err(invalid("delete needs at least one id"));
                }
                at_most("ids", list.ids.len(), MAX_IDS_PER_REQUEST)?;
                let mut groups: HashMap<u64, Vec<pb::PointId>> = HashMap::new();
                for id in list.ids {
                    let parsed = point_id_from_pb(Some(&id)).map_err(engine)?;
                    groups.entry(shard_of(&route, &parsed)?.id).or_default().push(id);
                }
                groups
                    .into_iter()
                    .map(|(shard_id, ids)| pi::ShardDeleteRequest {
                        shard_id,
                        selector: Some(pi::shard_delete_request::Selector::Ids(pb::PointIdList { ids })),
                        no_wait,
                    })
                    .collect()
            }
            pb::delete_request::Selector::Filter(f) => {
                convert::filter_from_pb(&f).map_err(engine)?;
                route
                    .info
                    .shards
                    .iter()
                    .map(|s| pi::ShardDeleteRequest {
                        shard_id: s.id,
                        selector: Some(pi::shard_delete_request::Selector::Filter(f.clone())),
                        no_wait,
                    })
                    .collect()
            }
        };
        let calls = requests.into_iter().map(|r| {
            let name = name.clone();
            async move {
                let shard_id = r.shard_id;
                self.router
                    .call_shard(&name, shard_id, deadline, |c| {
                        let r = r.clone();
                        async move { c.delete(r).await }
                    })
                    .await
            }
        });
        let mut deleted = 0;
        for result in join_all(calls).await {
            deleted += result?.affected;
        }
        Ok(pb::DeleteResponse { deleted })
    }

    // ---- reads ----

    pub async fn get(&self, access: &Access, req: pb::GetRequest) -> Result<pb::GetResponse> {
        require(access, Scope::Read, Some(&req.collection))?;
        at_most("ids", req.ids.len(), MAX_IDS_PER_REQUEST)?;
        known_consistency(req.consistency)?;
        let route = self.router.collection(&req.collection).await?;
        let name = name_of(&route);
        let deadline = self.read_deadline(0);
        let mut groups: HashMap<u64, Vec<pb::PointId>> = HashMap::new();
        let mut order = Vec::with_capacity(req.ids.len());
        for id in &req.ids {
            let parsed = point_id_from_pb(Some(id)).map_err(engine)?;
            groups.entry(shard_of(&route, &parsed)?.id).or_default().push(id.clone());
            order.push(parsed);
        }
        let calls = groups.into_iter().map(|(shard_id, ids)| {
            let name = name.clone();
            let request = pb::GetRequest { ids, ..req.clone() };
            async move {
                let r = pi::ShardGetRequest { shard_id, request: Some(request) };
                self.router
                    .call_shard(&name, shard_id, deadline, |c| {
                        let r = r.clone();
                        async move { c.get(r).await }
                    })
                    .await
            }
        });
        let mut found: HashMap<PointId, pb::RetrievedPoint> = HashMap::new();
        for result in join_all(calls).await {
            for p in result?.points {
                let id = point_id_from_pb(p.id.as_ref()).map_err(engine)?;
                found.insert(id, p);
            }
        }
        // Request order; missing ids left out; a repeated id answered once per ask.
        let points = order.iter().filter_map(|id| found.get(id).cloned()).collect();
        Ok(pb::GetResponse { points })
    }

    pub async fn count(&self, access: &Access, req: pb::CountRequest) -> Result<pb::CountResponse> {
        require(access, Scope::Read, Some(&req.collection))?;
        known_consistency(req.consistency)?;
        let route = self.router.collection(&req.collection).await?;
        if let Some(f) = &req.filter {
            convert::filter_from_pb(f).map_err(engine)?;
        }
        let name = name_of(&route);
        let deadline = self.read_deadline(0);
        let calls = route.info.shards.iter().map(|s| {
            let name = name.clone();
            let r = pi::ShardCountRequest { shard_id: s.id, request: Some(req.clone()) };
            async move {
                self.router
                    .call_shard(&name, r.shard_id, deadline, |c| {
                        let r = r.clone();
                        async move { c.count(r).await }
                    })
                    .await
            }
        });
        let mut count = 0;
        for result in join_all(calls).await {
            count += result?.count;
        }
        Ok(pb::CountResponse { count })
    }

    pub async fn scroll(&self, access: &Access, req: pb::ScrollRequest) -> Result<pb::ScrollResponse> {
        require(access, Scope::Read, Some(&req.collection))?;
        known_consistency(req.consistency)?;
        let route = self.router.collection(&req.collection).await?;
        if let Some(f) = &req.filter {
            convert::filter_from_pb(f).map_err(engine)?;
        }
        let limit = match req.limit {
            0 => 100,
            n if n as usize > vectron_engine::shard::MAX_TOP_K => {
                return Err(invalid(format!("scroll limit must be at most {}", vectron_engine::shard::MAX_TOP_K)));
            }
            n => n as usize,
        };
        let (mut index, mut inner) = decode_cursor(&req.cursor)?;
        let name = name_of(&route);
        let deadline = self.read_deadline(0);
        let mut points = Vec::with_capacity(limit);
        while index < route.info.shards.len() && points.len() < limit {
            let shard_id = route.info.shards[index].id;
            let request =
                pb::ScrollRequest { limit: (limit - points.len()) as u32, cursor: inner.clone(), ..req.clone() };
            let r = pi::ShardScrollRequest { shard_id, request: Some(request) };
            let page = self
                .router
                .call_shard(&name, shard_id, deadline, |c| {
                    let r = r.clone();
                    async move { c.scroll(r).await }
                })
                .await?;
            points.extend(page.points);
            if page.next_cursor.is_empty() {
                index += 1;
                inner = Vec::new();
            } else {
                inner = page.next_cursor;
            }
        }
        let next_cursor = if index < route.info.shards.len() { encode_cursor(index, &inner) } else { Vec::new() };
        Ok(pb::ScrollResponse { points, next_cursor })
    }

    pub async fn search(&self, access: &Access, req: pb::SearchRequest) -> Result<pb::SearchResponse> {
        require(access, Scope::Read, Some(&req.collection))?;
        known_consistency(req.consistency)?;
        if req.rerank {
            return Err(unimplemented("rerank: there is no reranker yet; search without it"));
        }
        let route = self.router.collection(&req.collection).await?;
        let config = route.info.config.as_ref().ok_or_else(|| invalid("collection has no config"))?;
        let distance = convert::distance_from_pb(config.distance).map_err(engine)?;
        if req.vector.len() != config.dimension as usize {
            return Err(engine(ValidationError::DimensionMismatch {
                expected: config.dimension as usize,
                got: req.vector.len(),
            }));
        }
        if req.vector.iter().any(|x| !x.is_finite()) {
            return Err(engine(ValidationError::InvalidVector { reason: "vector has a NaN or infinite value".into() }));
        }
        if req.top_k == 0 || req.top_k as usize > vectron_engine::shard::MAX_TOP_K {
            return Err(invalid(format!("top_k must be in 1..={}", vectron_engine::shard::MAX_TOP_K)));
        }
        if req.ef as usize > vectron_engine::shard::MAX_EF {
            return Err(invalid(format!("ef must be in 1..={} (0: the default)", vectron_engine::shard::MAX_EF)));
        }
        if let Some(f) = &req.filter {
            convert::filter_from_pb(f).map_err(engine)?;
        }
        let name = name_of(&route);
        let deadline = self.read_deadline(req.timeout_ms);
        let calls = route.info.shards.iter().map(|s| {
            let name = name.clone();
            let r = pi::ShardSearchRequest { shard_id: s.id, request: Some(req.clone()) };
            async move {
                let shard_id = r.shard_id;
                let result = self
                    .router
                    .call_shard(&name, shard_id, deadline, |c| {
                        let r = r.clone();
                        async move { c.search(r).await }
                    })
                    .await;
                (shard_id, result)
            }
        });
        let mut hits = Vec::new();
        let mut missing_shards = Vec::new();
        for (shard_id, result) in join_all(calls).await {
            match result {
                Ok(r) => hits.extend(r.hits),
                Err(e) if matches!(e.code, ErrorCode::DeadlineExceeded | ErrorCode::Unavailable) => {
                    tracing::debug!(shard = shard_id, "search partial: {}", e.message);
                    missing_shards.push(shard_id);
                }
                Err(e) => return Err(e),
            }
        }
        if !missing_shards.is_empty() && missing_shards.len() == route.info.shards.len() {
            return Err(WireError::new(ErrorCode::Unavailable, "no shard answered the search in time", true));
        }
        merge_hits(&mut hits, distance, req.top_k as usize);
        Ok(pb::SearchResponse { hits, partial: !missing_shards.is_empty(), missing_shards })
    }

    /// Runs a batch of searches; each counts against the caller's rate limits (`quota`:
    /// the admission took one token, the other searches take one each).
    pub async fn search_batch(
        &self,
        access: &Access,
        quota: Option<&Quota>,
        req: pb::SearchBatchRequest,
    ) -> Result<pb::SearchBatchResponse> {
        at_most("searches", req.searches.len(), MAX_SEARCH_BATCH)?;
        for s in &req.searches {
            require(access, Scope::Read, Some(&s.collection))?;
        }
        if let Some(quota) = quota {
            quota.take_rest_of_batch(req.searches.len() as u32)?;
        }
        let results = join_all(req.searches.into_iter().map(|s| self.search(access, s))).await;
        Ok(pb::SearchBatchResponse { results: results.into_iter().collect::<Result<_>>()? })
    }

    pub async fn submit_feedback(
        &self,
        access: &Access,
        req: pb::SubmitFeedbackRequest,
    ) -> Result<pb::SubmitFeedbackResponse> {
        require(access, Scope::Write, Some(&req.collection))?;
        self.router.collection(&req.collection).await?;
        point_id_from_pb(req.point_id.as_ref()).map_err(engine)?;
        if !(-1.0..=1.0).contains(&req.relevance) {
            return Err(invalid("relevance must be in [-1, 1]"));
        }
        let id = &req.query_id;
        if id.is_empty() || id.len() > MAX_QUERY_ID_BYTES || !id.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid(format!(
                "a query_id is 1-{MAX_QUERY_ID_BYTES} printable ASCII characters without spaces"
            )));
        }
        // Validated, but not kept: nothing stores feedback yet (the reranker's issue
        // will), so it is refused rather than accepted and dropped.
        Err(unimplemented("feedback is not stored yet; it was valid, and nothing was kept"))
    }
}

fn point_error(index: usize, e: impl Into<vectron_engine::EngineError>) -> WireError {
    let mut w = WireError::from(&e.into());
    w.message = format!("point {index}: {}", w.message);
    w
}

/// Sorts best first under `distance` and keeps `k`.
fn merge_hits(hits: &mut Vec<pb::ScoredPoint>, distance: Distance, k: usize) {
    match distance {
        Distance::Euclid => hits.sort_by(|a, b| a.score.total_cmp(&b.score)),
        Distance::Cosine | Distance::Dot => hits.sort_by(|a, b| b.score.total_cmp(&a.score)),
    }
    hits.truncate(k);
}

/// Cursor: shard position (u32 BE) + the shard's own cursor.
fn encode_cursor(index: usize, inner: &[u8]) -> Vec<u8> {
    let mut c = (index as u32).to_be_bytes().to_vec();
    c.extend_from_slice(inner);
    c
}

fn decode_cursor(cursor: &[u8]) -> Result<(usize, Vec<u8>)> {
    if cursor.is_empty() {
        return Ok((0, Vec::new()));
    }
    if cursor.len() < 4 {
        return Err(invalid("scroll cursor is malformed"));
    }
    let index = u32::from_be_bytes(cursor[..4].try_into().expect("4 bytes")) as usize;
    Ok((index, cursor[4..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(id: u64, score: f32) -> pb::ScoredPoint {
        pb::ScoredPoint { id: Some(convert::point_id_to_pb(&PointId::Num(id))), score, ..Default::default() }
    }

    #[test]
    fn merge_keeps_the_best_k_under_each_distance() {
        let mut h = vec![hit(1, 0.5), hit(2, 0.9), hit(3, 0.1), hit(4, 0.7)];
        merge_hits(&mut h, Distance::Cosine, 2);
        assert_eq!(h.iter().map(|x| x.score).collect::<Vec<_>>(), vec![0.9, 0.7]);
        let mut h = vec![hit(1, 0.5), hit(2, 0.9), hit(3, 0.1), hit(4, 0.7)];
        merge_hits(&mut h, Distance::Euclid, 3);
        assert_eq!(h.iter().map(|x| x.score).collect::<Vec<_>>(), vec![0.1, 0.5, 0.7]);
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        assert_eq!(decode_cursor(&encode_cursor(3, b"abc")).unwrap(), (3, b"abc".to_vec()));
        assert_eq!(decode_cursor(&[]).unwrap(), (0, vec![]));
        assert_eq!(decode_cursor(&[1, 2]).unwrap_err().code, ErrorCode::InvalidArgument);
    }
}
