//! `vectron.v1.VectronService` over tonic: each RPC hands its request to [`Api`] and
//! maps a [`WireError`] to a status with the code and retry metadata.

use std::pin::Pin;

use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};
use vectron_common::status::WireError;
use vectron_proto::v1 as pb;
use vectron_proto::v1::vectron_service_server::VectronService;

use crate::api::Api;

type Reply<T> = Result<Response<T>, Status>;

fn reply<T>(r: Result<T, WireError>) -> Reply<T> {
    r.map(Response::new).map_err(|e| e.to_status())
}

/// The public gRPC service.
#[derive(Debug, Clone)]
pub struct VectronGrpc {
    api: Api,
}

impl VectronGrpc {
    pub fn new(api: Api) -> VectronGrpc {
        VectronGrpc { api }
    }
}

#[tonic::async_trait]
impl VectronService for VectronGrpc {
    async fn create_collection(&self, r: Request<pb::CreateCollectionRequest>) -> Reply<pb::CreateCollectionResponse> {
        reply(self.api.create_collection(r.into_inner()).await)
    }

    async fn get_collection(&self, r: Request<pb::GetCollectionRequest>) -> Reply<pb::GetCollectionResponse> {
        reply(self.api.get_collection(r.into_inner()).await)
    }

    async fn get_collection_status(
        &self,
        r: Request<pb::GetCollectionStatusRequest>,
    ) -> Reply<pb::GetCollectionStatusResponse> {
        reply(self.api.collection_status(r.into_inner()).await)
    }

    async fn list_collections(&self, _: Request<pb::ListCollectionsRequest>) -> Reply<pb::ListCollectionsResponse> {
        reply(self.api.list_collections().await)
    }

    async fn delete_collection(&self, r: Request<pb::DeleteCollectionRequest>) -> Reply<pb::DeleteCollectionResponse> {
        reply(self.api.delete_collection(r.into_inner()).await)
    }

    async fn upsert(&self, r: Request<pb::UpsertRequest>) -> Reply<pb::UpsertResponse> {
        reply(self.api.upsert(r.into_inner()).await)
    }

    async fn get(&self, r: Request<pb::GetRequest>) -> Reply<pb::GetResponse> {
        reply(self.api.get(r.into_inner()).await)
    }

    async fn delete(&self, r: Request<pb::DeleteRequest>) -> Reply<pb::DeleteResponse> {
        reply(self.api.delete(r.into_inner()).await)
    }

    async fn scroll(&self, r: Request<pb::ScrollRequest>) -> Reply<pb::ScrollResponse> {
        reply(self.api.scroll(r.into_inner()).await)
    }

    async fn count(&self, r: Request<pb::CountRequest>) -> Reply<pb::CountResponse> {
        reply(self.api.count(r.into_inner()).await)
    }

    async fn search(&self, r: Request<pb::SearchRequest>) -> Reply<pb::SearchResponse> {
        reply(self.api.search(r.into_inner()).await)
    }

    async fn search_batch(&self, r: Request<pb::SearchBatchRequest>) -> Reply<pb::SearchBatchResponse> {
        reply(self.api.search_batch(r.into_inner()).await)
    }

    type SearchStreamStream = Pin<Box<dyn Stream<Item = Result<pb::SearchResponse, Status>> + Send>>;

    async fn search_stream(&self, r: Request<Streaming<pb::SearchRequest>>) -> Reply<Self::SearchStreamStream> {
        let api = self.api.clone();
        let requests = r.into_inner();
        // Up to 16 searches in flight; answers keep request order.
        let answers = requests
            .map(move |req| {
                let api = api.clone();
                async move {
                    match req {
                        Ok(req) => api.search(req).await.map_err(|e| e.to_status()),
                        Err(status) => Err(status),
                    }
                }
            })
            .buffered(16);
        Ok(Response::new(Box::pin(answers)))
    }

    async fn submit_feedback(&self, r: Request<pb::SubmitFeedbackRequest>) -> Reply<pb::SubmitFeedbackResponse> {
        reply(self.api.submit_feedback(r.into_inner()).await)
    }
}
