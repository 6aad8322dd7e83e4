//! Collection routes: create, list, get, delete, and where a collection's shards live.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vectron_model::Distance;
use vectron_model::convert::distance_to_pb;
use vectron_model::status::WireError;
use vectron_model::types::{PayloadIndexKind, PayloadIndexSpec};
use vectron_proto::v1 as pb;
use vectron_proto::v1::ErrorCode;

use super::extract::{ApiError, Body, ErrorReply, PathParams, Reply};
use super::json::{RerankJson, whole_u32};
use super::schema::{DefaultRerankDoc, DistanceDoc, PayloadIndexDoc, hnsw_m_schema};
use crate::api::Api;
use crate::auth::Caller;

/// Adds the collection routes.
pub(super) fn routes(r: OpenApiRouter<Api>) -> OpenApiRouter<Api> {
    r.routes(routes!(create_collection, list_collections))
        .routes(routes!(get_collection, delete_collection))
        .routes(routes!(collection_status))
}

/// A collection's configuration as JSON.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CollectionJson {
    #[schema(pattern = "^[a-zA-Z0-9_-]{1,64}$")]
    pub name: String,
    #[schema(minimum = 1, maximum = 65536)]
    #[serde(deserialize_with = "whole_u32")]
    pub dimension: u32,
    #[schema(value_type = DistanceDoc)]
    pub distance: Distance,
    /// 0 or absent: 1.
    #[serde(default, deserialize_with = "whole_u32")]
    #[schema(maximum = 256)]
    pub shard_count: u32,
    /// 0 or absent: 1. At most the number of workers that are up.
    #[serde(default, deserialize_with = "whole_u32")]
    #[schema(maximum = 7)]
    pub replication_factor: u32,
    #[serde(default)]
    pub hnsw: Option<HnswJson>,
    #[serde(default)]
    #[schema(value_type = Vec<PayloadIndexDoc>)]
    pub payload_indexes: Vec<PayloadIndexSpec>,
    /// Searches without a `rerank` of their own are reranked this way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<DefaultRerankDoc>)]
    pub default_rerank: Option<RerankJson>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HnswJson {
    /// 0 or absent: 16; otherwise 2-128.
    #[serde(default, deserialize_with = "whole_u32")]
    #[schema(schema_with = hnsw_m_schema)]
    pub m: u32,
    /// 0 or absent: 200.
    #[serde(default, deserialize_with = "whole_u32")]
    #[schema(maximum = 4096)]
    pub ef_construction: u32,
}

impl CollectionJson {
    fn to_pb(&self) -> pb::CollectionConfig {
        pb::CollectionConfig {
            name: self.name.clone(),
            dimension: self.dimension,
            distance: distance_to_pb(self.distance) as i32,
            shard_count: self.shard_count,
            replication_factor: self.replication_factor,
            hnsw: self.hnsw.as_ref().map(|h| pb::HnswConfig { m: h.m, ef_construction: h.ef_construction }),
            payload_indexes: self
                .payload_indexes
                .iter()
                .map(|p| pb::PayloadIndex {
                    key: p.key.clone(),
                    kind: match p.kind {
                        PayloadIndexKind::Keyword => pb::PayloadIndexKind::Keyword,
                        PayloadIndexKind::Integer => pb::PayloadIndexKind::Integer,
                        PayloadIndexKind::Float => pb::PayloadIndexKind::Float,
                        PayloadIndexKind::Bool => pb::PayloadIndexKind::Bool,
                    } as i32,
                })
                .collect(),
            default_rerank: self.default_rerank.as_ref().map(RerankJson::to_pb),
        }
    }

    fn from_pb(c: &pb::CollectionConfig) -> Result<CollectionJson, ApiError> {
        let config = vectron_model::convert::shard_config(c).map_err(|e| ApiError(WireError::from(&e)))?;
        Ok(CollectionJson {
            name: c.name.clone(),
            dimension: c.dimension,
            distance: config.distance,
            shard_count: c.shard_count,
            replication_factor: c.replication_factor,
            hnsw: c.hnsw.as_ref().map(|h| HnswJson { m: h.m, ef_construction: h.ef_construction }),
            payload_indexes: config.payload_indexes,
            default_rerank: c.default_rerank.as_ref().map(RerankJson::from_pb).transpose()?,
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CollectionReply {
    pub collection: CollectionJson,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CollectionsReply {
    pub collections: Vec<CollectionJson>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CollectionInfoReply {
    pub collection: CollectionJson,
    pub points_count: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeletedCollectionReply {
    pub deleted: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReplicaJson {
    pub worker_id: u64,
    pub address: String,
    /// active, catching_up or unreachable.
    pub state: String,
    pub leader: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ShardStatusJson {
    pub shard_id: u64,
    pub range_start: u64,
    /// 0 means 2^64.
    pub range_end: u64,
    pub points_count: u64,
    pub replicas: Vec<ReplicaJson>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StatusReply {
    pub collection: CollectionJson,
    pub epoch: u64,
    pub shards: Vec<ShardStatusJson>,
}

fn config_json(c: Option<&pb::CollectionConfig>) -> Result<CollectionJson, ApiError> {
    CollectionJson::from_pb(c.ok_or_else(|| ApiError(WireError::new(ErrorCode::Internal, "no config", false)))?)
}

/// Creates a collection; answers once every shard has a leader.
#[utoipa::path(post, path = "/v1/collections", tag = "collections", request_body = CollectionJson,
    responses((status = 200, body = CollectionReply), (status = 400, body = ErrorReply), (status = 409, body = ErrorReply)))]
async fn create_collection(
    State(api): State<Api>,
    Caller(access): Caller,
    Body(c): Body<CollectionJson>,
) -> Reply<CollectionReply> {
    let r = api.create_collection(&access, pb::CreateCollectionRequest { config: Some(c.to_pb()) }).await?;
    Ok(Json(CollectionReply { collection: config_json(r.config.as_ref())? }))
}

/// Lists collections.
#[utoipa::path(get, path = "/v1/collections", tag = "collections", responses((status = 200, body = CollectionsReply)))]
async fn list_collections(State(api): State<Api>, Caller(access): Caller) -> Reply<CollectionsReply> {
    let r = api.list_collections(&access).await?;
    let collections = r.collections.iter().map(CollectionJson::from_pb).collect::<Result<Vec<_>, _>>()?;
    Ok(Json(CollectionsReply { collections }))
}

/// A collection's configuration and point count.
#[utoipa::path(get, path = "/v1/collections/{name}", tag = "collections", params(("name" = String, Path)),
    responses((status = 200, body = CollectionInfoReply), (status = 404, body = ErrorReply)))]
async fn get_collection(
    State(api): State<Api>,
    Caller(access): Caller,
    PathParams(name): PathParams<String>,
) -> Reply<CollectionInfoReply> {
    let r = api.get_collection(&access, pb::GetCollectionRequest { name }).await?;
    Ok(Json(CollectionInfoReply { collection: config_json(r.config.as_ref())?, points_count: r.points_count }))
}

/// Deletes a collection and its data.
#[utoipa::path(delete, path = "/v1/collections/{name}", tag = "collections", params(("name" = String, Path)),
    responses((status = 200, body = DeletedCollectionReply), (status = 404, body = ErrorReply)))]
async fn delete_collection(
    State(api): State<Api>,
    Caller(access): Caller,
    PathParams(name): PathParams<String>,
) -> Reply<DeletedCollectionReply> {
    api.delete_collection(&access, pb::DeleteCollectionRequest { name }).await?;
    Ok(Json(DeletedCollectionReply { deleted: true }))
}

/// Where a collection's shards live: replicas, their state, leaders, sizes.
#[utoipa::path(get, path = "/v1/collections/{name}/status", tag = "collections", params(("name" = String, Path)),
    responses((status = 200, body = StatusReply), (status = 404, body = ErrorReply)))]
async fn collection_status(
    State(api): State<Api>,
    Caller(access): Caller,
    PathParams(name): PathParams<String>,
) -> Reply<StatusReply> {
    let r = api.collection_status(&access, pb::GetCollectionStatusRequest { name }).await?;
    let shards = r
        .shards
        .iter()
        .map(|s| ShardStatusJson {
            shard_id: s.shard_id,
            range_start: s.range_start,
            range_end: s.range_end,
            points_count: s.points_count,
            replicas: s
                .replicas
                .iter()
                .map(|x| ReplicaJson {
                    worker_id: x.worker_id,
                    address: x.worker_address.clone(),
                    state: pb::ReplicaState::try_from(x.state)
                        .unwrap_or(pb::ReplicaState::Unspecified)
                        .as_str_name()
                        .to_lowercase(),
                    leader: x.is_leader,
                })
                .collect(),
        })
        .collect();
    Ok(Json(StatusReply { collection: config_json(r.config.as_ref())?, epoch: r.epoch, shards }))
}
