//! The Rust client of Vectron's public gRPC API.
//!
//! ```no_run
//! # async fn demo() -> Result<(), vectron_sdk::Error> {
//! use vectron_sdk::{Client, Collection, Distance, Point};
//! let client = Client::connect("http://127.0.0.1:8081").await?.with_api_key("vx_…")?;
//! client.create_collection(Collection::new("docs", 3, Distance::Cosine)).await?;
//! client.upsert("docs", vec![Point::new(1u64, vec![0.1, 0.2, 0.3])]).await?;
//! let hits = client.search("docs", vec![0.1, 0.2, 0.3], 5).send().await?;
//! # Ok(()) }
//! ```
//!
//! Every call carries the client's credentials: an API key ([`Client::with_api_key`]) or
//! a bearer access token ([`Client::with_bearer_token`]).
//!
//! Calls that fail with a retryable code (NOT_LEADER, UNAVAILABLE, RESOURCE_EXHAUSTED, …)
//! are retried with exponential backoff (honouring `retry-after`) until the client's
//! retry budget is spent; other errors come back at once as [`Error`] with the server's
//! [`ErrorCode`]. A call the connection dropped under it (a gateway closing its
//! connections as it stops, say) may or may not have reached the server: it is retried
//! when doing it twice is the same as once — every data call (writes are idempotent by
//! id) — and not for creating or deleting a collection.

use std::collections::VecDeque;
use std::future::Future;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use vectron_model::convert::{point_id_from_pb, point_id_to_pb, struct_from_pb, struct_to_pb};
use vectron_model::status::{WireError, from_status};
use vectron_proto::v1 as pb;
use vectron_proto::v1::admin_service_client::AdminServiceClient;
use vectron_proto::v1::auth_service_client::AuthServiceClient;
use vectron_proto::v1::vectron_service_client::VectronServiceClient;

mod accounts;
mod admin;

pub use vectron_model::status::LeaderHint;
pub use vectron_model::{Distance, Filter, PointId};
pub use vectron_proto::v1::{Consistency, ErrorCode};

/// A failed call: the server's code, message and retry hints.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
#[error("{code:?}: {message}")]
pub struct Error {
    pub code: ErrorCode,
    pub message: String,
    /// Whether the same request may succeed if sent again.
    pub retryable: bool,
    /// How long the server asked to wait before retrying (rate limits, throttles).
    pub retry_after: Option<Duration>,
    /// The shard leader, when the server answered NOT_LEADER and knew it.
    pub leader: Option<LeaderHint>,
}

impl Error {
    fn new(code: ErrorCode, message: impl Into<String>, retryable: bool) -> Error {
        Error { code, message: message.into(), retryable, retry_after: None, leader: None }
    }
}

impl From<WireError> for Error {
    fn from(e: WireError) -> Self {
        Error { code: e.code, message: e.message, retryable: e.retryable, retry_after: e.retry_after, leader: e.leader }
    }
}

impl From<tonic::transport::Error> for Error {
    /// UNAVAILABLE, with the causes (a refused connection, a certificate not trusted):
    /// the transport's own message alone says only "transport error".
    fn from(e: tonic::transport::Error) -> Self {
        let mut message = e.to_string();
        let mut cause = std::error::Error::source(&e);
        while let Some(c) = cause {
            message.push_str(": ");
            message.push_str(&c.to_string());
            cause = c.source();
        }
        Error::new(ErrorCode::Unavailable, message, true)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A point to upsert.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub id: PointId,
    pub vector: Vec<f32>,
    pub payload: Option<Map<String, Value>>,
}

impl Point {
    pub fn new(id: impl Into<PointId>, vector: Vec<f32>) -> Point {
        Point { id: id.into(), vector, payload: None }
    }

    /// Sets the payload (a JSON object; anything else is ignored).
    pub fn with_payload(mut self, payload: Value) -> Point {
        self.payload = match payload {
            Value::Object(m) => Some(m),
            _ => None,
        };
        self
    }

    fn to_pb(&self) -> pb::Point {
        pb::Point {
            id: Some(point_id_to_pb(&self.id)),
            vector: self.vector.clone(),
            payload: self.payload.as_ref().map(struct_to_pb),
        }
    }
}

/// A point read back (vector and payload when asked for).
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub id: PointId,
    pub vector: Option<Vec<f32>>,
    pub payload: Option<Map<String, Value>>,
}

/// A search hit.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub id: PointId,
    /// The vector search's score.
    pub score: f32,
    pub vector: Option<Vec<f32>>,
    pub payload: Option<Map<String, Value>>,
    /// The reranker's score, when the answer was reranked.
    pub rerank_score: Option<f32>,
    /// What moved the hit, when the answer was reranked.
    pub explanation: Option<String>,
}

/// A search's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchResult {
    pub hits: Vec<Hit>,
    /// Some shard missed the deadline: `missing_shards` lists them.
    pub partial: bool,
    pub missing_shards: Vec<u64>,
    /// Names this answer in feedback ([`Client::submit_feedback`]).
    pub query_id: String,
    /// A rerank was asked for and the hits are in the reranker's order.
    pub reranked: bool,
    /// Why a rerank that was asked for did not happen (the hits are in vector order).
    pub rerank_skipped: Option<String>,
}

/// How a search's hits are re-ordered: a strategy (`rule`, `mmr`, `cross_encoder`,
/// `feedback`; `none` turns a collection's default off), its parameters as a JSON
/// object, the text the query stands for, and how many candidates to rerank (0: 4 ×
/// top_k).
pub fn rerank(strategy: &str, query_text: Option<&str>, params: Value) -> Result<pb::Rerank> {
    let params = match params {
        Value::Null => None,
        Value::Object(m) => Some(struct_to_pb(&m)),
        other => {
            return Err(Error::new(
                ErrorCode::InvalidArgument,
                format!("rerank params must be a JSON object, not {other}"),
                false,
            ));
        }
    };
    Ok(pb::Rerank { strategy: strategy.to_owned(), query_text: query_text.map(str::to_owned), params, candidates: 0 })
}

/// A collection to create.
#[derive(Debug, Clone)]
pub struct Collection {
    pub config: pb::CollectionConfig,
}

impl Collection {
    pub fn new(name: &str, dimension: u32, distance: Distance) -> Collection {
        Collection {
            config: pb::CollectionConfig {
                name: name.to_owned(),
                dimension,
                distance: vectron_model::convert::distance_to_pb(distance) as i32,
                ..Default::default()
            },
        }
    }

    pub fn shards(mut self, n: u32) -> Collection {
        self.config.shard_count = n;
        self
    }

    pub fn replication_factor(mut self, n: u32) -> Collection {
        self.config.replication_factor = n;
        self
    }

    pub fn hnsw(mut self, m: u32, ef_construction: u32) -> Collection {
        self.config.hnsw = Some(pb::HnswConfig { m, ef_construction });
        self
    }

    /// Searches without a rerank of their own are reranked so (see [`rerank`]).
    pub fn default_rerank(mut self, rerank: pb::Rerank) -> Collection {
        self.config.default_rerank = Some(rerank);
        self
    }

    /// Indexes a payload field (`kind`: keyword, integer, float, bool).
    pub fn index(mut self, key: &str, kind: pb::PayloadIndexKind) -> Collection {
        self.config.payload_indexes.push(pb::PayloadIndex { key: key.to_owned(), kind: kind as i32 });
        self
    }
}

/// Header of an API key credential.
pub const API_KEY_HEADER: &str = "x-api-key";

/// Adds the client's credential to every request.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    header: Option<(AsciiMetadataKey, AsciiMetadataValue)>,
}

impl Credentials {
    fn new(key: &'static str, value: String) -> Result<Credentials> {
        let mut value = AsciiMetadataValue::try_from(value)
            .map_err(|_| Error::new(ErrorCode::InvalidArgument, "credentials must be printable ASCII", false))?;
        value.set_sensitive(true);
        Ok(Credentials { header: Some((AsciiMetadataKey::from_static(key), value)) })
    }
}

impl Interceptor for Credentials {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some((key, value)) = &self.header {
            request.metadata_mut().insert(key.clone(), value.clone());
        }
        Ok(request)
    }
}

type Authorized = InterceptedService<Channel, Credentials>;
type Grpc = VectronServiceClient<Authorized>;

/// A client of one gateway.
#[derive(Debug, Clone)]
pub struct Client {
    channel: Channel,
    grpc: Grpc,
    accounts: AuthServiceClient<Authorized>,
    admin: AdminServiceClient<Authorized>,
    /// How long a call keeps retrying retryable errors.
    retry_budget: Duration,
}

/// Whether `status` is the transport's, not a server's: the connection was closed, reset
/// or cut off by the server's GOAWAY under the call, so the call may or may not have been
/// served (an UNAVAILABLE one is retryable anyway).
fn dropped(status: &tonic::Status) -> bool {
    status.code() != tonic::Code::Unavailable && vectron_model::status::is_transport_error(status)
}

fn decode_err(e: vectron_model::ValidationError) -> Error {
    Error::new(ErrorCode::Internal, format!("undecodable answer: {e}"), false)
}

impl Client {
    /// Connects to a gateway's gRPC endpoint, e.g. `http://127.0.0.1:8081`; an
    /// `https://` one over TLS, trusting the system's certificate authorities.
    pub async fn connect(url: &str) -> Result<Client> {
        let tls = url.starts_with("https://").then(|| ClientTlsConfig::new().with_native_roots());
        Client::connect_over(url, tls).await
    }

    /// Connects to a gateway's `https://` gRPC endpoint over TLS, trusting only the CA
    /// certificate(s) in `ca_pem` (PEM; e.g. `vectron dev --tls`'s `tls/ca.crt`).
    pub async fn connect_with_ca(url: &str, ca_pem: &[u8]) -> Result<Client> {
        if !url.starts_with("https://") {
            return Err(Error::new(ErrorCode::InvalidArgument, format!("{url}: a CA is for https:// URLs"), false));
        }
        let tls = ClientTlsConfig::new().ca_certificate(tonic::transport::Certificate::from_pem(ca_pem));
        Client::connect_over(url, Some(tls)).await
    }

    async fn connect_over(url: &str, tls: Option<ClientTlsConfig>) -> Result<Client> {
        let invalid = |e: tonic::transport::Error| Error::new(ErrorCode::InvalidArgument, format!("{url}: {e}"), false);
        let mut endpoint = Endpoint::from_shared(url.to_owned())
            .map_err(invalid)?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true);
        if let Some(tls) = tls {
            endpoint = endpoint.tls_config(tls).map_err(invalid)?;
        }
        Ok(Client::from_channel(endpoint.connect().await?))
    }

    /// A client over an existing channel (e.g. one created lazily), without credentials.
    pub fn from_channel(channel: Channel) -> Client {
        Client::authorized(channel, Credentials::default(), Duration::from_secs(30))
    }

    fn authorized(channel: Channel, credentials: Credentials, retry_budget: Duration) -> Client {
        let service = InterceptedService::new(channel.clone(), credentials);
        Client {
            grpc: VectronServiceClient::new(service.clone())
                .max_decoding_message_size(128 << 20)
                .max_encoding_message_size(128 << 20),
            accounts: AuthServiceClient::new(service.clone()),
            admin: AdminServiceClient::new(service),
            channel,
            retry_budget,
        }
    }

    /// Sends `key` (`vx_…`, from the auth service or `vectron dev`'s `admin.key`) with
    /// every call.
    pub fn with_api_key(self, key: &str) -> Result<Client> {
        let credentials = Credentials::new(API_KEY_HEADER, key.trim().to_owned())?;
        Ok(Client::authorized(self.channel, credentials, self.retry_budget))
    }

    /// Sends `Authorization: Bearer <token>` (an access token from a login) with every
    /// call.
    pub fn with_bearer_token(self, token: &str) -> Result<Client> {
        let credentials = Credentials::new("authorization", format!("Bearer {token}"))?;
        Ok(Client::authorized(self.channel, credentials, self.retry_budget))
    }

    /// Sets how long calls retry retryable errors (0: never retry).
    pub fn with_retry_budget(mut self, budget: Duration) -> Client {
        self.retry_budget = budget;
        self
    }

    /// Calls `op`, retrying retryable errors and dropped connections (see the crate docs).
    async fn call<T, F, Fut>(&self, op: F) -> Result<T>
    where
        F: Fn(Grpc) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.call_with(op, true).await
    }

    /// [`Client::call`] for a call that must not be sent twice: a dropped connection is
    /// the caller's to judge.
    async fn call_once<T, F, Fut>(&self, op: F) -> Result<T>
    where
        F: Fn(Grpc) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.call_with(op, false).await
    }

    async fn call_with<T, F, Fut>(&self, op: F, idempotent: bool) -> Result<T>
    where
        F: Fn(Grpc) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        self.call_on(&self.grpc, op, idempotent).await
    }

    /// Calls `op` on a clone of `service` (one of the gateway's services), retrying as
    /// [`Client::call`] does — dropped connections too when the call is `idempotent`.
    async fn call_on<S, T, F, Fut>(&self, service: &S, op: F, idempotent: bool) -> Result<T>
    where
        S: Clone,
        F: Fn(S) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let deadline = Instant::now() + self.retry_budget;
        let mut attempt = 0u32;
        loop {
            match op(service.clone()).await {
                Ok(r) => return Ok(r.into_inner()),
                Err(status) => {
                    let e = from_status(&status);
                    let retryable = e.retryable || (idempotent && dropped(&status));
                    if !retryable || Instant::now() >= deadline {
                        return Err(e.into());
                    }
                    let backoff = Duration::from_millis(50u64 << attempt.min(5));
                    let pause =
                        e.retry_after.unwrap_or(backoff).min(deadline.saturating_duration_since(Instant::now()));
                    tokio::time::sleep(pause).await;
                    attempt += 1;
                }
            }
        }
    }

    pub async fn create_collection(&self, c: Collection) -> Result<pb::CollectionConfig> {
        let r = pb::CreateCollectionRequest { config: Some(c.config) };
        let out = self
            .call_once(|mut g| {
                let r = r.clone();
                async move { g.create_collection(r).await }
            })
            .await?;
        Ok(out.config.unwrap_or_default())
    }

    pub async fn list_collections(&self) -> Result<Vec<pb::CollectionConfig>> {
        Ok(self.call(|mut g| async move { g.list_collections(pb::ListCollectionsRequest {}).await }).await?.collections)
    }

    pub async fn delete_collection(&self, name: &str) -> Result<()> {
        let r = pb::DeleteCollectionRequest { name: name.to_owned() };
        self.call_once(|mut g| {
            let r = r.clone();
            async move { g.delete_collection(r).await }
        })
        .await?;
        Ok(())
    }

    /// A collection's configuration and its point count.
    pub async fn get_collection(&self, name: &str) -> Result<pb::GetCollectionResponse> {
        let r = pb::GetCollectionRequest { name: name.to_owned() };
        self.call(|mut g| {
            let r = r.clone();
            async move { g.get_collection(r).await }
        })
        .await
    }

    pub async fn collection_status(&self, name: &str) -> Result<pb::GetCollectionStatusResponse> {
        let r = pb::GetCollectionStatusRequest { name: name.to_owned() };
        self.call(|mut g| {
            let r = r.clone();
            async move { g.get_collection_status(r).await }
        })
        .await
    }

    /// Upserts one batch (all or nothing; at most 10,000 points).
    pub async fn upsert(&self, collection: &str, points: Vec<Point>) -> Result<u64> {
        let r = pb::UpsertRequest {
            collection: collection.to_owned(),
            points: points.iter().map(Point::to_pb).collect(),
            wait: None,
        };
        Ok(self
            .call(|mut g| {
                let r = r.clone();
                async move { g.upsert(r).await }
            })
            .await?
            .upserted)
    }

    /// Upserts many points in batches of `batch_size` (each batch all or nothing).
    pub async fn upsert_batched(&self, collection: &str, points: Vec<Point>, batch_size: usize) -> Result<u64> {
        let mut total = 0;
        for chunk in points.chunks(batch_size.max(1)) {
            total += self.upsert(collection, chunk.to_vec()).await?;
        }
        Ok(total)
    }

    /// Starts a search; set options on the builder, then `send()`.
    pub fn search(&self, collection: &str, vector: Vec<f32>, top_k: u32) -> SearchBuilder<'_> {
        SearchBuilder {
            client: self,
            request: pb::SearchRequest { collection: collection.to_owned(), vector, top_k, ..Default::default() },
        }
    }

    /// Opens a stream for many searches in a row (see [`SearchStream`]); the gateway
    /// answers up to 16 of one stream's searches at a time.
    pub async fn search_stream(&self) -> Result<SearchStream> {
        let (requests, receiver) = tokio::sync::mpsc::channel(64);
        let answers = self
            .grpc
            .clone()
            .search_stream(tokio_stream::wrappers::ReceiverStream::new(receiver))
            .await
            .map_err(|status| Error::from(from_status(&status)))?
            .into_inner();
        Ok(SearchStream { requests, answers, pending: VecDeque::new() })
    }

    /// Reads points by id, in request order (missing ids are left out).
    pub async fn get(&self, collection: &str, ids: &[PointId], with_vector: bool) -> Result<Vec<Record>> {
        let r = pb::GetRequest {
            collection: collection.to_owned(),
            ids: ids.iter().map(point_id_to_pb).collect(),
            with_payload: true,
            with_vector,
            consistency: Consistency::Leader as i32,
        };
        let out = self
            .call(|mut g| {
                let r = r.clone();
                async move { g.get(r).await }
            })
            .await?;
        out.points.iter().map(|p| record(p, with_vector)).collect()
    }

    pub async fn delete(&self, collection: &str, ids: &[PointId]) -> Result<u64> {
        let selector =
            pb::delete_request::Selector::Ids(pb::PointIdList { ids: ids.iter().map(point_id_to_pb).collect() });
        self.delete_by(collection, selector).await
    }

    pub async fn delete_by_filter(&self, collection: &str, filter: &Filter) -> Result<u64> {
        self.delete_by(collection, pb::delete_request::Selector::Filter(filter_pb(filter)?)).await
    }

    async fn delete_by(&self, collection: &str, selector: pb::delete_request::Selector) -> Result<u64> {
        let r = pb::DeleteRequest { collection: collection.to_owned(), selector: Some(selector), wait: None };
        Ok(self
            .call(|mut g| {
                let r = r.clone();
                async move { g.delete(r).await }
            })
            .await?
            .deleted)
    }

    /// Relevance feedback on `point` in the answer `query_id` names (a search answer's
    /// `query_id`), in [-1, 1]; kept durably. Judging the same hit of the same query
    /// again replaces the earlier judgement (so a retry is safe).
    pub async fn submit_feedback(&self, feedback: pb::SubmitFeedbackRequest) -> Result<()> {
        self.call(|mut g| {
            let r = feedback.clone();
            async move { g.submit_feedback(r).await }
        })
        .await?;
        Ok(())
    }

    /// What a collection's kept feedback adds up to.
    pub async fn feedback_stats(&self, collection: &str) -> Result<pb::FeedbackStats> {
        let r = pb::GetFeedbackStatsRequest { collection: collection.to_owned() };
        self.call(|mut g| {
            let r = r.clone();
            async move { g.get_feedback_stats(r).await }
        })
        .await
    }

    pub async fn count(&self, collection: &str, filter: Option<&Filter>) -> Result<u64> {
        let filter = filter.map(filter_pb).transpose()?;
        let r = pb::CountRequest { collection: collection.to_owned(), filter, consistency: 0 };
        Ok(self
            .call(|mut g| {
                let r = r.clone();
                async move { g.count(r).await }
            })
            .await?
            .count)
    }

    /// One page of points in shard and id order; pass the returned cursor back for the
    /// next page (`None` when done).
    pub async fn scroll(
        &self,
        collection: &str,
        filter: Option<&Filter>,
        limit: u32,
        cursor: Option<Vec<u8>>,
    ) -> Result<(Vec<Record>, Option<Vec<u8>>)> {
        self.scroll_with(collection, filter, limit, cursor, false).await
    }

    /// [`Client::scroll`], with each point's vector too when `with_vector`.
    pub async fn scroll_with(
        &self,
        collection: &str,
        filter: Option<&Filter>,
        limit: u32,
        cursor: Option<Vec<u8>>,
        with_vector: bool,
    ) -> Result<(Vec<Record>, Option<Vec<u8>>)> {
        let r = pb::ScrollRequest {
            collection: collection.to_owned(),
            filter: filter.map(filter_pb).transpose()?,
            limit,
            cursor: cursor.unwrap_or_default(),
            with_payload: true,
            with_vector,
            consistency: 0,
        };
        let out = self
            .call(|mut g| {
                let r = r.clone();
                async move { g.scroll(r).await }
            })
            .await?;
        let records = out.points.iter().map(|p| record(p, with_vector)).collect::<Result<Vec<_>>>()?;
        Ok((records, (!out.next_cursor.is_empty()).then_some(out.next_cursor)))
    }
}

fn filter_pb(f: &Filter) -> Result<pb::Filter> {
    vectron_model::convert::filter_to_pb(f).map_err(|e| Error::new(ErrorCode::InvalidFilter, e.to_string(), false))
}

fn record(p: &pb::RetrievedPoint, with_vector: bool) -> Result<Record> {
    Ok(Record {
        id: point_id_from_pb(p.id.as_ref()).map_err(decode_err)?,
        vector: with_vector.then(|| p.vector.clone()),
        payload: p.payload.as_ref().map(struct_from_pb).transpose().map_err(decode_err)?,
    })
}

/// A search being set up.
#[derive(Debug)]
pub struct SearchBuilder<'a> {
    client: &'a Client,
    request: pb::SearchRequest,
}

impl SearchBuilder<'_> {
    pub fn ef(mut self, ef: u32) -> Self {
        self.request.ef = ef;
        self
    }

    pub fn filter(mut self, filter: &Filter) -> Result<Self> {
        self.request.filter = Some(filter_pb(filter)?);
        Ok(self)
    }

    pub fn with_payload(mut self) -> Self {
        self.request.with_payload = true;
        self
    }

    pub fn with_vector(mut self) -> Self {
        self.request.with_vector = true;
        self
    }

    pub fn consistency(mut self, c: Consistency) -> Self {
        self.request.consistency = c as i32;
        self
    }

    pub fn timeout(mut self, t: Duration) -> Self {
        self.request.timeout_ms = t.as_millis().min(u32::MAX as u128) as u32;
        self
    }

    /// Re-orders the hits with the reranker (see [`rerank`]).
    pub fn rerank(mut self, rerank: pb::Rerank) -> Self {
        self.request.rerank = Some(rerank);
        self
    }

    pub async fn send(self) -> Result<SearchResult> {
        let r = self.request;
        let with_vector = r.with_vector;
        let out = self
            .client
            .call(|mut g| {
                let r = r.clone();
                async move { g.search(r).await }
            })
            .await?;
        search_result(out, with_vector)
    }
}

fn search_result(out: pb::SearchResponse, with_vector: bool) -> Result<SearchResult> {
    let hits = out
        .hits
        .iter()
        .map(|h| {
            Ok(Hit {
                id: point_id_from_pb(h.id.as_ref()).map_err(decode_err)?,
                score: h.score,
                vector: with_vector.then(|| h.vector.clone()),
                payload: h.payload.as_ref().map(struct_from_pb).transpose().map_err(decode_err)?,
                rerank_score: h.rerank_score,
                explanation: (!h.explanation.is_empty()).then(|| h.explanation.clone()),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(SearchResult {
        hits,
        partial: out.partial,
        missing_shards: out.missing_shards,
        query_id: out.query_id,
        reranked: out.reranked,
        rerank_skipped: (!out.rerank_skipped.is_empty()).then_some(out.rerank_skipped),
    })
}

/// Searches pipelined over one `SearchStream` call, from [`Client::search_stream`]:
/// each search costs no call set-up (a new HTTP/2 stream and its headers), and answers
/// come back in the order the searches were sent. Errors are not retried: a failed
/// search ends the stream (open another). Read answers as you go: `send` waits while
/// the stream's buffers are full, so a caller that sends very many searches before
/// reading any waits for ever (a few dozen unanswered at a time keep the gateway busy).
#[derive(Debug)]
pub struct SearchStream {
    requests: tokio::sync::mpsc::Sender<pb::SearchRequest>,
    answers: tonic::Streaming<pb::SearchResponse>,
    /// `with_vector` of each search sent and not answered yet, oldest first.
    pending: VecDeque<bool>,
}

impl SearchStream {
    /// Queues a search built with [`Client::search`] (its `send` is not called).
    pub async fn send(&mut self, search: SearchBuilder<'_>) -> Result<()> {
        let with_vector = search.request.with_vector;
        self.requests
            .send(search.request)
            .await
            .map_err(|_| Error::new(ErrorCode::Unavailable, "the search stream is closed", true))?;
        self.pending.push_back(with_vector);
        Ok(())
    }

    /// The answer to the oldest unanswered search; `None` when none is pending.
    pub async fn next(&mut self) -> Option<Result<SearchResult>> {
        let with_vector = self.pending.pop_front()?;
        Some(match self.answers.message().await {
            Ok(Some(out)) => search_result(out, with_vector),
            Ok(None) => Err(Error::new(ErrorCode::Unavailable, "the search stream ended before answering", true)),
            Err(status) => Err(from_status(&status).into()),
        })
    }

    /// Sends one search and waits for its answer.
    pub async fn search(&mut self, search: SearchBuilder<'_>) -> Result<SearchResult> {
        self.send(search).await?;
        self.next().await.expect("a search was just sent")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_keeps_the_servers_code_retry_hint_and_leader() {
        let mut wire = WireError::not_leader("shard 3: this node is not the leader", None);
        wire.leader = Some(LeaderHint { id: 2, address: Some("10.0.0.2:9090".into()) });
        wire.retry_after = Some(Duration::from_secs(3));
        let e = Error::from(from_status(&wire.to_status()));
        assert_eq!((e.code, e.retryable), (ErrorCode::NotLeader, true));
        // A connection dropped under a call is the transport's, not a server's answer.
        assert!(super::dropped(&tonic::Status::cancelled("operation was canceled")));
        assert!(super::dropped(&tonic::Status::unknown("transport error")));
        // What tonic makes of a stream cut off by a stopping gateway's GOAWAY.
        assert!(super::dropped(&tonic::Status::internal("h2 protocol error: http2 error")));
        assert!(!super::dropped(&tonic::Status::internal("undecodable answer")));
        assert!(!super::dropped(&tonic::Status::unavailable("connection refused")), "retryable anyway");
        let served = WireError::new(ErrorCode::Internal, "the shard's storage failed", false).to_status();
        assert!(!super::dropped(&served), "a server's own error is never taken for a dropped connection");
        assert_eq!(e.retry_after, Some(Duration::from_secs(3)));
        let leader = e.leader.expect("the leader hint");
        assert_eq!((leader.id, leader.address.as_deref()), (2, Some("10.0.0.2:9090")));
    }
}
