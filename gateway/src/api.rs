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
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;

use futures::future::join_all;
use vectron_common::routing::{point_hash, range_contains};
use vectron_model::convert::{self, shard_config};
use vectron_model::feedback::{is_internal, new_query_id};
use vectron_model::request::{
    Consistency, CountRequest, DeleteRequest, GetRequest, ScrollRequest, SearchRequest, Selector, UpsertRequest,
};
use vectron_model::rerank::{Rerank, RerankPlan, RerankStrategy};
use vectron_model::types::MAX_SEARCH_BATCH;
use vectron_model::vector::{check_point, check_vector};
use vectron_model::{Distance, Point, PointId, ShardConfig, ValidationError};
use vectron_proto::internal as pi;
use vectron_proto::v1 as pb;
use vectron_proto::v1::ErrorCode;

use crate::auth::{Access, Quota, Scope, require};
use crate::error::GatewayError;
use crate::learned::{FeedbackModels, feedback_params};
use crate::metrics::CollectionMetrics;
use crate::policy::BodyLimits;
use crate::rerank::{self, Outcome, Reranker, RerankerConfig};
use crate::routing::{CollectionRoute, Router, WorkerConn};
use crate::search_cache::{Answer, Flight, Outcome as CacheOutcome, SearchCache, SearchCacheConfig, Versions};

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
    /// The reranker service; `None`: reranks are skipped (saying so).
    pub reranker: Option<RerankerConfig>,
    pub search_cache: SearchCacheConfig,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            write_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(5),
            create_wait: Duration::from_secs(15),
            body_limits: BodyLimits::default(),
            reranker: None,
            search_cache: SearchCacheConfig::default(),
        }
    }
}

type Result<T> = std::result::Result<T, GatewayError>;

/// Budget of checking a cached answer's shard versions (past it: searched again).
const VERSION_CHECK_TIMEOUT: Duration = Duration::from_secs(1);

fn invalid(message: impl Into<String>) -> GatewayError {
    GatewayError::invalid(message)
}

/// The access rules' answer: may `access` use `needed` on `collection`. A collection the
/// cluster keeps for itself (a feedback store) does not exist for the public API.
pub(crate) fn allowed(access: &Access, needed: Scope, collection: Option<&str>) -> Result<()> {
    require(access, needed, collection).map_err(GatewayError::Access)?;
    match collection {
        Some(name) if is_internal(name) => Err(GatewayError::CollectionNotFound { name: name.to_owned() }),
        _ => Ok(()),
    }
}

/// Refuses a batch of more searches than [`MAX_SEARCH_BATCH`].
pub fn at_most_searches(n: usize) -> Result<()> {
    at_most("searches", n, MAX_SEARCH_BATCH)
}

/// Refuses more than `max` items of `what` in one request.
fn at_most(what: &str, n: usize, max: usize) -> Result<()> {
    if n > max {
        return Err(invalid(format!("{n} {what} in one request; the limit is {max}")));
    }
    Ok(())
}

fn model(e: ValidationError) -> GatewayError {
    GatewayError::Invalid(e)
}

/// The collection's default rerank, if it has one.
fn default_rerank(route: &CollectionRoute) -> Result<Option<Rerank>> {
    let config = route.info.config.as_ref();
    Ok(config.map(convert::default_rerank).transpose().map_err(model)?.flatten())
}

/// The collection's shard configuration (dimension, distance, limits).
fn collection_config(route: &CollectionRoute) -> Result<ShardConfig> {
    let config =
        route.info.config.as_ref().ok_or_else(|| GatewayError::Internal { what: "collection has no config".into() })?;
    shard_config(config).map_err(model)
}

/// The root span of a public operation: the calls it makes to workers, the placement
/// driver and the reranker carry it (see common's telemetry).
fn operation_span(operation: &'static str, collection: &str) -> tracing::Span {
    tracing::info_span!("api", otel.name = operation, otel.kind = "server", collection = collection)
}

/// The operations of the public API.
#[derive(Debug, Clone)]
pub struct Api {
    router: Arc<Router>,
    config: ApiConfig,
    reranker: Arc<Reranker>,
    cache: Arc<SearchCache>,
    pub(crate) models: Arc<FeedbackModels>,
    collection_metrics: Arc<CollectionMetrics>,
}

fn shard_of<'a>(route: &'a CollectionRoute, id: &PointId) -> Result<&'a pi::ShardInfo> {
    let h = point_hash(id);
    route
        .info
        .shards
        .iter()
        .find(|s| range_contains(s.range_start, s.range_end, h))
        .ok_or_else(|| GatewayError::Internal { what: "the shard ranges do not cover the hash space".into() })
}

fn name_of(route: &CollectionRoute) -> String {
    route.info.config.as_ref().map(|c| c.name.clone()).unwrap_or_default()
}

impl Api {
    /// The API over `router`; its metrics (reranks) go to `registry`; `network` is the
    /// test network the gateway is a node of, if any.
    pub fn new(
        router: Arc<Router>,
        config: ApiConfig,
        registry: &prometheus::Registry,
        network: Option<vectron_common::faults::NodeNetwork>,
    ) -> Api {
        let channels = vectron_common::raft::network::PeerChannels::on(network);
        let reranker = Arc::new(Reranker::new(config.reranker.clone(), channels, router.clone(), registry));
        let cache = Arc::new(SearchCache::new(config.search_cache, registry));
        let collection_metrics = Arc::new(CollectionMetrics::new(registry));
        Api { router, config, reranker, cache, models: Arc::default(), collection_metrics }
    }

    /// Runs `operation` on `collection`, recording it in the per-collection metrics.
    async fn observed<T>(
        &self,
        operation: &'static str,
        collection: &str,
        work: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let started = Instant::now();
        let label = if self.router.knows(collection) { collection } else { "unknown" };
        let result = work.instrument(operation_span(operation, label)).await;
        let code = match &result {
            Ok(_) => "OK",
            Err(e) => e.code().as_str_name(),
        };
        self.collection_metrics.observe(label, operation, code, started.elapsed());
        result
    }

    pub fn router(&self) -> &Arc<Router> {
        &self.router
    }

    pub fn config(&self) -> &ApiConfig {
        &self.config
    }

    fn read_deadline(&self, timeout: Option<Duration>) -> Instant {
        Instant::now() + timeout.unwrap_or(self.config.read_timeout)
    }

    // ---- collections ----

    pub async fn create_collection(
        &self,
        access: &Access,
        req: pb::CreateCollectionRequest,
    ) -> Result<pb::CreateCollectionResponse> {
        let span = operation_span("create_collection", req.config.as_ref().map_or("", |c| c.name.as_str()));
        self.create_collection_now(access, req).instrument(span).await
    }

    async fn create_collection_now(
        &self,
        access: &Access,
        req: pb::CreateCollectionRequest,
    ) -> Result<pb::CreateCollectionResponse> {
        require(access, Scope::Admin, req.config.as_ref().map(|c| c.name.as_str())).map_err(GatewayError::Access)?;
        let config = req.config.ok_or_else(|| invalid("create collection needs a config"))?;
        // A user collection's name (the cluster names its own companions).
        convert::validate_collection_name(&config.name).map_err(model)?;
        let config = convert::normalize_collection(config).map_err(model)?;
        // A default rerank's parameters are checked now, not at every search.
        if let Some(plan) =
            Rerank::plan(None, convert::default_rerank(&config).map_err(model)?.as_ref(), 1).map_err(model)?
        {
            match plan.strategy {
                RerankStrategy::Feedback => {
                    feedback_params(&plan)?;
                }
                _ => self.reranker.check(&plan).await.map_err(GatewayError::Reranker)?,
            }
        }
        let r = pb::CreateCollectionRequest { config: Some(config) };
        let info = self
            .router
            .placement()
            .call(|mut c| {
                let r = r.clone();
                async move { c.create_collection(r).await }
            })
            .await
            .map_err(GatewayError::Placement)?;
        let name = info.config.as_ref().map(|c| c.name.clone()).unwrap_or_default();
        self.router.refresh_now().await.ok();
        self.wait_for_leaders(&name).await?;
        Ok(pb::CreateCollectionResponse { config: info.config })
    }

    /// Waits (at most `create_wait`) until every shard of `name` has a leader, so the
    /// first writes need no retries.
    pub(crate) async fn wait_for_leaders(&self, name: &str) -> Result<()> {
        let deadline = Instant::now() + self.config.create_wait;
        while Instant::now() < deadline {
            let status = self.collection_info(name).await?;
            if status.shards.iter().all(|s| s.leader != 0) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
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
            .map_err(GatewayError::Placement)
    }

    pub async fn get_collection(
        &self,
        access: &Access,
        req: pb::GetCollectionRequest,
    ) -> Result<pb::GetCollectionResponse> {
        allowed(access, Scope::Read, Some(&req.name))?;
        let all = CountRequest { collection: req.name.clone(), filter: None, consistency: Default::default() };
        let count = self.count(access, all).await?;
        let route = self.router.collection(&req.name).await?;
        Ok(pb::GetCollectionResponse { config: route.info.config, points_count: count.count })
    }

    pub async fn collection_status(
        &self,
        access: &Access,
        req: pb::GetCollectionStatusRequest,
    ) -> Result<pb::GetCollectionStatusResponse> {
        allowed(access, Scope::Read, Some(&req.name))?;
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
            .await
            .map_err(GatewayError::Placement)?;
        let collections = list
            .collections
            .into_iter()
            .filter_map(|c| c.config)
            .filter(|c| !is_internal(&c.name) && access.permits(Scope::Read, Some(&c.name)))
            .collect();
        Ok(pb::ListCollectionsResponse { collections })
    }

    pub async fn delete_collection(
        &self,
        access: &Access,
        req: pb::DeleteCollectionRequest,
    ) -> Result<pb::DeleteCollectionResponse> {
        allowed(access, Scope::Admin, Some(&req.name))?;
        self.router
            .placement()
            .call(|mut c| {
                let r = req.clone();
                async move { c.delete_collection(r).await }
            })
            .await
            .map_err(GatewayError::Placement)?;
        self.router.refresh_now().await.ok();
        Ok(pb::DeleteCollectionResponse {})
    }

    // ---- writes ----

    pub async fn upsert(&self, access: &Access, req: UpsertRequest) -> Result<pb::UpsertResponse> {
        let collection = req.collection.clone();
        self.observed("upsert", &collection, async move {
            allowed(access, Scope::Write, Some(&req.collection))?;
            let route = self.router.collection(&req.collection).await?;
            Ok(pb::UpsertResponse { upserted: self.write_points(&route, req.points, req.wait).await? })
        })
        .await
    }

    /// Validates `points` whole against the collection of `route`, then writes them to
    /// their shards; answers how many were written.
    pub(crate) async fn write_points(&self, route: &CollectionRoute, points: Vec<Point>, wait: bool) -> Result<u64> {
        let shard_config = collection_config(route)?;
        if points.is_empty() {
            return Err(invalid("upsert needs at least one point"));
        }
        at_most("points", points.len(), shard_config.limits.max_batch)?;
        // Validate everything before any shard writes anything.
        let mut groups: HashMap<u64, Vec<pi::ShardPoint>> = HashMap::new();
        for (i, point) in points.into_iter().enumerate() {
            check_point(&shard_config, &point).map_err(|e| model(e.about_point(i)))?;
            groups.entry(shard_of(route, &point.id)?.id).or_default().push(convert::shard_point_to_pb(point));
        }
        let no_wait = !wait;
        // Each attempt (a leader change retries) sends a copy: the vectors are copied,
        // the payloads' text is shared.
        let requests = groups
            .into_iter()
            .map(|(shard_id, points)| (shard_id, pi::ShardUpsertRequest { shard_id, points, no_wait }));
        let deadline = Instant::now() + self.config.write_timeout;
        let answers = self.fan_out(route, requests, deadline, |c, r| c.upsert(r)).await;
        self.cache.wrote(&name_of(route));
        writes_applied("upsert", answers)
    }

    pub async fn delete(&self, access: &Access, req: DeleteRequest) -> Result<pb::DeleteResponse> {
        let collection = req.collection.clone();
        self.observed("delete", &collection, async move {
            allowed(access, Scope::Write, Some(&req.collection))?;
            let route = self.router.collection(&req.collection).await?;
            let no_wait = !req.wait;
            let shard_request =
                |shard_id, selector| pi::ShardDeleteRequest { shard_id, selector: Some(selector), no_wait };
            let requests: Vec<(u64, pi::ShardDeleteRequest)> = match req.selector {
                Selector::Ids(ids) => {
                    let mut groups: HashMap<u64, Vec<pb::PointId>> = HashMap::new();
                    for id in &ids {
                        groups.entry(shard_of(&route, id)?.id).or_default().push(convert::point_id_to_pb(id));
                    }
                    groups
                        .into_iter()
                        .map(|(shard, ids)| {
                            (
                                shard,
                                shard_request(shard, pi::shard_delete_request::Selector::Ids(pb::PointIdList { ids })),
                            )
                        })
                        .collect()
                }
                Selector::Filter(f) => {
                    let f = convert::filter_to_pb(&f).map_err(model)?;
                    let every_shard = route.info.shards.iter();
                    every_shard
                        .map(|s| (s.id, shard_request(s.id, pi::shard_delete_request::Selector::Filter(f.clone()))))
                        .collect()
                }
            };
            let deadline = Instant::now() + self.config.write_timeout;
            let answers = self.fan_out(&route, requests, deadline, |c, r| c.delete(r)).await;
            self.cache.wrote(&req.collection);
            Ok(pb::DeleteResponse { deleted: writes_applied("delete", answers)? })
        })
        .await
    }

    // ---- reads ----

    pub async fn get(&self, access: &Access, req: GetRequest) -> Result<pb::GetResponse> {
        let collection = req.collection.clone();
        self.observed("get", &collection, async move {
            allowed(access, Scope::Read, Some(&req.collection))?;
            let route = self.router.collection(&req.collection).await?;
            self.get_route(&route, &req).await
        })
        .await
    }

    /// Points of the collection of `route` by id.
    pub(crate) async fn get_route(&self, route: &CollectionRoute, req: &GetRequest) -> Result<pb::GetResponse> {
        let mut groups: HashMap<u64, Vec<PointId>> = HashMap::new();
        for id in &req.ids {
            groups.entry(shard_of(route, id)?.id).or_default().push(id.clone());
        }
        let requests = groups.into_iter().map(|(shard_id, ids)| {
            (shard_id, pi::ShardGetRequest { shard_id, request: Some(convert::get_to_pb(req, &ids)) })
        });
        let answers = self.fan_out(route, requests, self.read_deadline(None), |c, r| c.get(r)).await;
        let mut found: HashMap<PointId, pb::RetrievedPoint> = HashMap::new();
        for answer in every(answers)? {
            for p in answer.points {
                found.insert(convert::point_id_from_pb(p.id.as_ref()).map_err(model)?, p);
            }
        }
        // Request order; missing ids left out; a repeated id answered once per ask.
        let points = req.ids.iter().filter_map(|id| found.get(id).cloned()).collect();
        Ok(pb::GetResponse { points })
    }

    pub async fn count(&self, access: &Access, req: CountRequest) -> Result<pb::CountResponse> {
        let collection = req.collection.clone();
        self.observed("count", &collection, async move {
            allowed(access, Scope::Read, Some(&req.collection))?;
            let route = self.router.collection(&req.collection).await?;
            let request = convert::count_to_pb(&req).map_err(model)?;
            let requests = route
                .info
                .shards
                .iter()
                .map(|s| (s.id, pi::ShardCountRequest { shard_id: s.id, request: Some(request.clone()) }));
            let answers = self.fan_out(&route, requests, self.read_deadline(None), |c, r| c.count(r)).await;
            Ok(pb::CountResponse { count: every(answers)?.iter().map(|a| a.count).sum() })
        })
        .await
    }

    /// A page of points: the shards in order, each from its own cursor.
    pub async fn scroll(&self, access: &Access, req: ScrollRequest) -> Result<pb::ScrollResponse> {
        let collection = req.collection.clone();
        self.observed("scroll", &collection, async move {
            allowed(access, Scope::Read, Some(&req.collection))?;
            let route = self.router.collection(&req.collection).await?;
            self.scroll_route(&route, &req).await
        })
        .await
    }

    /// A page of the points of the collection of `route`.
    pub(crate) async fn scroll_route(
        &self,
        route: &CollectionRoute,
        req: &ScrollRequest,
    ) -> Result<pb::ScrollResponse> {
        let (mut index, mut inner) = decode_cursor(&req.cursor)?;
        let name = name_of(route);
        let deadline = self.read_deadline(None);
        let mut points = Vec::with_capacity(req.limit);
        while index < route.info.shards.len() && points.len() < req.limit {
            let shard_id = route.info.shards[index].id;
            let request = convert::scroll_to_pb(req, req.limit - points.len(), inner.clone()).map_err(model)?;
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

    pub async fn search(&self, access: &Access, req: SearchRequest) -> Result<pb::SearchResponse> {
        let collection = req.collection.clone();
        self.observed("search", &collection, async move {
            allowed(access, Scope::Read, Some(&req.collection))?;
            let route = self.router.collection(&req.collection).await?;
            let shard_config = collection_config(&route)?;
            // The dimension first: an empty vector is the wrong dimension for any collection.
            if req.query.vector.len() != shard_config.dimension {
                let got = req.query.vector.len();
                return Err(model(ValidationError::DimensionMismatch { expected: shard_config.dimension, got }));
            }
            check_vector(&shard_config, &req.query.vector).map_err(model)?;
            let plan =
                Rerank::plan(req.rerank.as_ref(), default_rerank(&route)?.as_ref(), req.query.top_k).map_err(model)?;
            // Answers the feedback model reranked change with the model, not with the data.
            let learned = plan.as_ref().is_some_and(|p| p.strategy == RerankStrategy::Feedback);
            let distance = shard_config.distance;
            let answer = if self.cache.enabled() && req.consistency == Consistency::Leader && !learned {
                self.cached_search(&route, &req, plan.as_ref(), distance).await?
            } else {
                self.cache.count(CacheOutcome::Bypass);
                Arc::new(self.search_uncached(&route, &req, plan, distance).await?)
            };
            let mut response = answer.response.clone();
            response.query_id = new_query_id();
            Ok(response)
        })
        .await
    }

    /// A search through the cache: a current cached answer, or an identical search in
    /// flight, or a search of its own (then kept). See [`crate::search_cache`].
    async fn cached_search(
        &self,
        route: &CollectionRoute,
        req: &SearchRequest,
        plan: Option<&RerankPlan>,
        distance: Distance,
    ) -> Result<Arc<Answer>> {
        let request = convert::search_to_pb(req).map_err(model)?;
        let request = pb::SearchRequest { rerank: req.rerank.as_ref().map(convert::rerank_to_pb), ..request };
        let key = SearchCache::key(route.epoch, request);
        let generation = self.cache.generation(&req.collection);
        if let Some(cached) = self.cache.lookup(&key, generation) {
            if self.versions_current(route, &cached.versions).await {
                self.cache.count(CacheOutcome::Hit);
                return Ok(cached);
            }
            self.cache.count(CacheOutcome::Stale);
            self.cache.forget(&key);
        }
        match self.cache.flight(&key) {
            Flight::Lead(ticket) => {
                let answer = self.search_uncached(route, req, plan.cloned(), distance).await.map(Arc::new);
                ticket.land(&answer);
                let answer = answer?;
                self.cache.count(CacheOutcome::Miss);
                self.cache.store(key, &req.collection, generation, answer.clone());
                Ok(answer)
            }
            Flight::Follow(landing) => match self.follow_until(req, landing).await {
                // It may have searched before a write acknowledged since this one came.
                Some(Ok(answer)) if self.versions_current(route, &answer.versions).await => {
                    self.cache.count(CacheOutcome::Coalesced);
                    Ok(answer)
                }
                _ => {
                    self.cache.count(CacheOutcome::Miss);
                    Ok(Arc::new(self.search_uncached(route, req, plan.cloned(), distance).await?))
                }
            },
        }
    }

    /// The answer of the search in flight `landing` waits for, if it lands within `req`'s
    /// own deadline.
    async fn follow_until(
        &self,
        req: &SearchRequest,
        landing: tokio::sync::watch::Receiver<Option<Result<Arc<Answer>>>>,
    ) -> Option<Result<Arc<Answer>>> {
        let deadline = tokio::time::Instant::from_std(self.read_deadline(req.timeout));
        tokio::time::timeout_at(deadline, SearchCache::follow(landing)).await.ok().flatten()
    }

    /// Whether every shard's leader still has the data `versions` were read at.
    async fn versions_current(&self, route: &CollectionRoute, versions: &Versions) -> bool {
        if versions.len() != route.info.shards.len() {
            return false;
        }
        let deadline = Instant::now() + VERSION_CHECK_TIMEOUT;
        let requests =
            versions.iter().map(|(shard_id, _)| (*shard_id, pi::ShardVersionRequest { shard_id: *shard_id }));
        let answers = self.fan_out(route, requests, deadline, |c, r| c.get_shard_version(r)).await;
        answers.iter().zip(versions).all(|((_, now), (_, then))| now.as_ref().is_ok_and(|now| now == then))
    }

    /// A search of the shards (and the reranker, with `plan`), not through the cache.
    async fn search_uncached(
        &self,
        route: &CollectionRoute,
        req: &SearchRequest,
        plan: Option<RerankPlan>,
        distance: Distance,
    ) -> Result<Answer> {
        let top_k = req.query.top_k;
        let Some(mut plan) = plan else {
            return self.shard_search(route, req, distance).await;
        };
        let trained = match plan.strategy {
            RerankStrategy::Feedback => Some(self.attach_feedback_model(route, &mut plan).await?),
            _ => None,
        };
        // Oversample, with what the strategy reads.
        let (with_payload, with_vector) = (req.query.with_payload, req.query.with_vector);
        let mut wide = req.clone();
        wide.query.top_k = plan.candidates;
        wide.query.with_payload |= plan.strategy.reads_payloads();
        wide.query.with_vector |= plan.strategy.reads_vectors();
        let deadline = self.read_deadline(req.timeout);
        let mut answer = self.shard_search(route, &wide, distance).await?;
        let hits = std::mem::take(&mut answer.response.hits);
        let priors: Vec<f32> = match &trained {
            Some(t) => hits.iter().map(|h| t.prior_of(h.id.as_ref())).collect(),
            None => Vec::new(),
        };
        let candidates = rerank::candidates(plan.strategy, &hits, &priors, distance);
        let outcome = self
            .reranker
            .rerank(&req.collection, &plan, candidates, top_k, deadline)
            .await
            .map_err(GatewayError::Reranker)?;
        let mut hits = match outcome {
            Outcome::Ranked(order) => {
                answer.response.reranked = true;
                rerank::apply(hits, order)
            }
            Outcome::Skipped(reason) => {
                answer.response.rerank_skipped = reason;
                hits
            }
        };
        hits.truncate(top_k);
        for h in &mut hits {
            if !with_payload {
                h.payload = None;
            }
            if !with_vector {
                h.vector = Vec::new();
            }
        }
        answer.response.hits = hits;
        Ok(answer)
    }

    /// The shards' best `req.query.top_k` hits, merged, with the shards' versions.
    async fn shard_search(&self, route: &CollectionRoute, req: &SearchRequest, distance: Distance) -> Result<Answer> {
        let request = convert::search_to_pb(req).map_err(model)?;
        let requests = route
            .info
            .shards
            .iter()
            .map(|s| (s.id, pi::ShardSearchRequest { shard_id: s.id, request: Some(request.clone()) }));
        let answers = self.fan_out(route, requests, self.read_deadline(req.timeout), |c, r| c.search(r)).await;
        let answers = answers.into_iter().map(|(id, a)| (id, a.map(|a| (id, a)))).collect();
        let (answered, missing_shards) = answered_in_time(answers)?;
        let versions: Versions = answered.iter().map(|(id, a)| (*id, a.version.unwrap_or_default())).collect();
        let mut hits: Vec<pb::ScoredPoint> = answered.into_iter().flat_map(|(_, a)| a.hits).collect();
        merge_hits(&mut hits, distance, req.query.top_k);
        let partial = !missing_shards.is_empty();
        let response = pb::SearchResponse { hits, partial, missing_shards, ..Default::default() };
        Ok(Answer { response, versions })
    }

    /// Runs a batch of searches; each counts against the caller's rate limits (`quota`:
    /// the admission took one token, the other searches take one each).
    pub async fn search_batch(
        &self,
        access: &Access,
        quota: Option<&Quota>,
        searches: Vec<SearchRequest>,
    ) -> Result<pb::SearchBatchResponse> {
        at_most_searches(searches.len())?;
        for s in &searches {
            allowed(access, Scope::Read, Some(&s.collection))?;
        }
        if let Some(quota) = quota {
            quota.take_rest_of_batch(searches.len() as u32).map_err(GatewayError::Access)?;
        }
        let results = join_all(searches.into_iter().map(|s| self.search(access, s))).await;
        Ok(pb::SearchBatchResponse { results: results.into_iter().collect::<Result<_>>()? })
    }

    /// Calls the shards of `requests` at once (each through [`Router::call_shard`], with
    /// its retries, until `deadline`), `call` sending one shard's request on a
    /// connection; answers in the requests' order.
    async fn fan_out<Req, Resp, Call, Fut>(
        &self,
        route: &CollectionRoute,
        requests: impl IntoIterator<Item = (u64, Req)>,
        deadline: Instant,
        call: Call,
    ) -> Vec<(u64, Result<Resp>)>
    where
        Req: Clone,
        Call: Fn(WorkerConn, Req) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<Resp>, tonic::Status>>,
    {
        let name = name_of(route);
        let (name, call) = (&name, &call);
        join_all(requests.into_iter().map(|(shard_id, r)| async move {
            (shard_id, self.router.call_shard(name, shard_id, deadline, |c| call(c, r.clone())).await)
        }))
        .await
    }
}

/// Every shard's answer, or the first error.
fn every<T>(answers: Vec<(u64, Result<T>)>) -> Result<Vec<T>> {
    answers.into_iter().map(|(_, a)| a).collect()
}

/// The points a write's shards wrote, or, when some shard failed, an error saying which
/// shards applied their part, which did not and which may have (each shard commits on its
/// own; a deadline or a transport failure leaves the outcome unknown). A write no shard
/// applied answers the first shard's own error.
fn writes_applied(what: &'static str, answers: Vec<(u64, Result<pi::ShardWriteResponse>)>) -> Result<u64> {
    let (mut total, mut applied, mut refused, mut unknown) = (0, Vec::new(), Vec::new(), Vec::new());
    let mut first: Option<GatewayError> = None;
    for (shard_id, answer) in answers {
        match answer {
            Ok(a) => {
                total += a.affected;
                applied.push(shard_id);
            }
            Err(e) => {
                if e.outcome_unknown() { &mut unknown } else { &mut refused }.push(shard_id);
                first.get_or_insert(e);
            }
        }
    }
    let Some(first) = first else { return Ok(total) };
    if applied.is_empty() {
        return Err(first);
    }
    for shards in [&mut applied, &mut refused, &mut unknown] {
        shards.sort_unstable();
    }
    Err(GatewayError::PartlyApplied { what, applied, refused, unknown, first: Box::new(first) })
}

/// The partial-result rule of searches: the answers of the shards that answered, and the
/// shards that missed the deadline or could not be reached; any other error fails the
/// whole, and so does no shard answering.
fn answered_in_time<T>(answers: Vec<(u64, Result<T>)>) -> Result<(Vec<T>, Vec<u64>)> {
    let shards = answers.len();
    let (mut answered, mut missing) = (Vec::with_capacity(shards), Vec::new());
    for (shard_id, answer) in answers {
        match answer {
            Ok(a) => answered.push(a),
            Err(e) if matches!(e.code(), ErrorCode::DeadlineExceeded | ErrorCode::Unavailable) => {
                tracing::debug!(shard = shard_id, "search partial: {e}");
                missing.push(shard_id);
            }
            Err(e) => return Err(e),
        }
    }
    if shards > 0 && missing.len() == shards {
        return Err(GatewayError::NoShardAnswered);
    }
    Ok((answered, missing))
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
    use vectron_model::status::WireError;

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
    fn a_partly_applied_write_says_which_shards_applied() {
        let ok = |affected| Ok(pi::ShardWriteResponse { affected, log_index: 1 });
        let err = |code, retryable| {
            Err(GatewayError::Shard { shard_id: 0, error: WireError::new(code, format!("{code:?}"), retryable) })
        };
        assert_eq!(writes_applied("upsert", vec![(1, ok(3)), (2, ok(4))]).unwrap(), 7);
        // Nothing applied: the shard's own error.
        let e = writes_applied("upsert", vec![(1, err(ErrorCode::NotLeader, true))]).unwrap_err().to_wire();
        assert_eq!((e.code, e.message.as_str()), (ErrorCode::NotLeader, "NotLeader"));
        let e = writes_applied(
            "upsert",
            vec![
                (4, ok(2)),
                (2, err(ErrorCode::DeadlineExceeded, true)),
                (3, err(ErrorCode::InvalidPayload, false)),
                (1, ok(1)),
            ],
        )
        .unwrap_err()
        .to_wire();
        assert_eq!((e.code, e.retryable), (ErrorCode::Unavailable, true), "an unknown outcome: retry");
        assert!(e.message.contains("shards [1, 4] applied their part, [3] did not, [2] may have"), "{}", e.message);
        let e = writes_applied("delete", vec![(1, ok(1)), (2, err(ErrorCode::InvalidFilter, false))])
            .unwrap_err()
            .to_wire();
        assert_eq!((e.code, e.retryable), (ErrorCode::InvalidFilter, false));
        assert!(
            e.message.starts_with("delete partly applied: shards [1] applied their part, [2] did not, [] may have")
        );
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        assert_eq!(decode_cursor(&encode_cursor(3, b"abc")).unwrap(), (3, b"abc".to_vec()));
        assert_eq!(decode_cursor(&[]).unwrap(), (0, vec![]));
        assert_eq!(decode_cursor(&[1, 2]).unwrap_err().code(), ErrorCode::InvalidArgument);
    }
}
