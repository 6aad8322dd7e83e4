//! `vectron.v1.VectronService` over tonic: each RPC hands its request to [`Api`] and
//! maps a [`WireError`] to a status with the code and retry metadata. The auth layer
//! (see [`crate::auth`]) put the caller's access in the request's extensions. A
//! `SearchStream` is admitted again for every search on it, like a unary call: a key
//! revoked (or a token expired) while the stream is open stops working within the
//! credential cache's TTL, and every search counts against the caller's rate limit.

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};
use vectron_model::ValidationError;
use vectron_model::feedback::FeedbackRequest;
use vectron_model::request::SearchRequest;
use vectron_model::status::WireError;
use vectron_proto::v1 as pb;
use vectron_proto::v1::vectron_service_server::VectronService;

use crate::api::{Api, at_most_searches};
use crate::auth::{Access, Authenticator, Quota, Scope, access_of, require};
use crate::error::GatewayError;

pub(crate) type Reply<T> = Result<Response<T>, Status>;

/// A transport-independent result as a gRPC answer (an error with its code and retry
/// metadata).
pub(crate) fn reply<T>(r: Result<T, GatewayError>) -> Reply<T> {
    r.map(Response::new).map_err(|e| e.to_wire().to_status())
}

/// The request's message and the access the auth layer admitted it with.
fn admitted<T>(r: Request<T>) -> Result<(Access, T), Status> {
    let access = access_of(r.extensions()).map_err(|e| e.to_status())?;
    Ok((access, r.into_inner()))
}

/// [`admitted`] for a message naming its collection: the caller's `needed` scope on it is
/// checked first (a caller who may not touch a collection learns nothing of its
/// request), then the message is parsed into the model request the Api takes (a
/// malformed one answers its typed error).
fn parsed<T, M>(r: Request<T>, needed: Scope, collection: impl Fn(&T) -> &str) -> Result<(Access, M), Status>
where
    M: TryFrom<T, Error = ValidationError>,
{
    let (access, message) = admitted(r)?;
    require(&access, needed, Some(collection(&message))).map_err(|e| e.to_status())?;
    Ok((access, model(message)?))
}

fn model<T, M: TryFrom<T, Error = ValidationError>>(message: T) -> Result<M, Status> {
    M::try_from(message).map_err(|e| WireError::from(&e).to_status())
}

/// The public gRPC service.
#[derive(Debug, Clone)]
pub struct VectronGrpc {
    api: Api,
    auth: Arc<Authenticator>,
}

impl VectronGrpc {
    pub fn new(api: Api, auth: Arc<Authenticator>) -> VectronGrpc {
        VectronGrpc { api, auth }
    }
}

#[tonic::async_trait]
impl VectronService for VectronGrpc {
    async fn create_collection(&self, r: Request<pb::CreateCollectionRequest>) -> Reply<pb::CreateCollectionResponse> {
        let (access, req) = admitted(r)?;
        reply(self.api.create_collection(&access, req).await)
    }

    async fn get_collection(&self, r: Request<pb::GetCollectionRequest>) -> Reply<pb::GetCollectionResponse> {
        let (access, req) = admitted(r)?;
        reply(self.api.get_collection(&access, req).await)
    }

    async fn get_collection_status(
        &self,
        r: Request<pb::GetCollectionStatusRequest>,
    ) -> Reply<pb::GetCollectionStatusResponse> {
        let (access, req) = admitted(r)?;
        reply(self.api.collection_status(&access, req).await)
    }

    async fn list_collections(&self, r: Request<pb::ListCollectionsRequest>) -> Reply<pb::ListCollectionsResponse> {
        let (access, _) = admitted(r)?;
        reply(self.api.list_collections(&access).await)
    }

    async fn delete_collection(&self, r: Request<pb::DeleteCollectionRequest>) -> Reply<pb::DeleteCollectionResponse> {
        let (access, req) = admitted(r)?;
        reply(self.api.delete_collection(&access, req).await)
    }

    async fn upsert(&self, r: Request<pb::UpsertRequest>) -> Reply<pb::UpsertResponse> {
        let (access, req) = parsed(r, Scope::Write, |m: &pb::UpsertRequest| &m.collection)?;
        reply(self.api.upsert(&access, req).await)
    }

    async fn get(&self, r: Request<pb::GetRequest>) -> Reply<pb::GetResponse> {
        let (access, req) = parsed(r, Scope::Read, |m: &pb::GetRequest| &m.collection)?;
        reply(self.api.get(&access, req).await)
    }

    async fn delete(&self, r: Request<pb::DeleteRequest>) -> Reply<pb::DeleteResponse> {
        let (access, req) = parsed(r, Scope::Write, |m: &pb::DeleteRequest| &m.collection)?;
        reply(self.api.delete(&access, req).await)
    }

    async fn scroll(&self, r: Request<pb::ScrollRequest>) -> Reply<pb::ScrollResponse> {
        let (access, req) = parsed(r, Scope::Read, |m: &pb::ScrollRequest| &m.collection)?;
        reply(self.api.scroll(&access, req).await)
    }

    async fn count(&self, r: Request<pb::CountRequest>) -> Reply<pb::CountResponse> {
        let (access, req) = parsed(r, Scope::Read, |m: &pb::CountRequest| &m.collection)?;
        reply(self.api.count(&access, req).await)
    }

    async fn search(&self, r: Request<pb::SearchRequest>) -> Reply<pb::SearchResponse> {
        let (access, req) = parsed(r, Scope::Read, |m: &pb::SearchRequest| &m.collection)?;
        reply(self.api.search(&access, req).await)
    }

    async fn search_batch(&self, r: Request<pb::SearchBatchRequest>) -> Reply<pb::SearchBatchResponse> {
        let quota = r.extensions().get::<Quota>().cloned();
        let (access, req) = admitted(r)?;
        at_most_searches(req.searches.len()).map_err(|e| e.to_wire().to_status())?;
        for s in &req.searches {
            require(&access, Scope::Read, Some(&s.collection)).map_err(|e| e.to_status())?;
        }
        let searches = req.searches.into_iter().map(model).collect::<Result<Vec<_>, _>>()?;
        reply(self.api.search_batch(&access, quota.as_ref(), searches).await)
    }

    type SearchStreamStream = Pin<Box<dyn Stream<Item = Result<pb::SearchResponse, Status>> + Send>>;

    async fn search_stream(&self, r: Request<Streaming<pb::SearchRequest>>) -> Reply<Self::SearchStreamStream> {
        let (api, auth) = (self.api.clone(), self.auth.clone());
        // The credential stays what the stream was opened with; what it may do is asked
        // again (from the cache) for each search.
        let headers = Arc::new(r.metadata().clone().into_headers());
        let client = r.extensions().get::<crate::auth::Client>().and_then(|c| c.0);
        let (_, requests) = admitted(r)?;
        // Up to 16 searches in flight; answers keep request order.
        let answers = requests
            .map(move |req| {
                let (api, auth, headers) = (api.clone(), auth.clone(), headers.clone());
                async move {
                    let req = req?;
                    let (access, _) = auth.admit(&headers, client).await.map_err(|e| e.to_status())?;
                    require(&access, Scope::Read, Some(&req.collection)).map_err(|e| e.to_status())?;
                    let req: SearchRequest = model(req)?;
                    api.search(&access, req).await.map_err(|e| e.to_wire().to_status())
                }
            })
            .buffered(16);
        Ok(Response::new(Box::pin(answers)))
    }

    async fn submit_feedback(&self, r: Request<pb::SubmitFeedbackRequest>) -> Reply<pb::SubmitFeedbackResponse> {
        let (access, req): (_, FeedbackRequest) =
            parsed(r, Scope::Write, |m: &pb::SubmitFeedbackRequest| &m.collection)?;
        reply(
            self.api
                .submit_feedback(&access, &req.collection, req.record)
                .await
                .map(|()| pb::SubmitFeedbackResponse {}),
        )
    }

    async fn get_feedback_stats(&self, r: Request<pb::GetFeedbackStatsRequest>) -> Reply<pb::FeedbackStats> {
        let (access, req) = admitted(r)?;
        reply(self.api.feedback_stats(&access, &req.collection).await)
    }
}
