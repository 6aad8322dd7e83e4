//! The Raft transport over tonic, multiplexing many groups on one connection per peer.
//!
//! Sending: [`GrpcNetworkFactory`] is one group's openraft network factory; every
//! factory of a process shares one [`PeerChannels`], so all groups talking to a peer
//! share its HTTP/2 connection. Receiving: [`RaftRouter`] is the `RaftTransport` gRPC
//! service; groups register with it when they start and leave when they stop.
//!
//! A message for a group the receiver does not host is answered with SHARD_NOT_HOSTED;
//! the sender reports it to openraft as `Unreachable`, so the replication stream backs
//! off instead of spinning (this happens while a new replica is being created, and after
//! a replica was dropped).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{Backoff, RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::{BasicNode, Raft, RaftTypeConfig};
use parking_lot::RwLock;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};
use vectron_proto::internal::raft_transport_client::RaftTransportClient;
use vectron_proto::internal::raft_transport_server::{RaftTransport, RaftTransportServer};
use vectron_proto::internal::{RaftMessage, TakeLeadershipRequest, TakeLeadershipResponse};
use vectron_proto::v1::ErrorCode;

use super::codec::{decode, encode};
use super::{GroupId, NodeId};
use crate::cluster_auth::{AttachToken, ClusterChannel, ClusterToken};
use crate::faults::{FaultyChannel, NodeNetwork};
use vectron_model::status::{WireError, from_status, to_status};

/// How often an HTTP/2 ping checks a peer while calls to it are in flight.
pub const PEER_PING_INTERVAL: Duration = Duration::from_secs(1);
/// How long a ping may go unanswered before the connection is dropped.
pub const PEER_PING_TIMEOUT: Duration = Duration::from_secs(2);

/// Lazily connected channels to peers, by address, shared by every group of a process;
/// and the process's address book: where each node is now. A Raft membership records a
/// node's address when the node joins; a worker that comes back at another address
/// (a rescheduled pod, say) re-registers it with the placement driver, and the worker
/// host keeps this book current from the routing table, so every group reaches the node
/// at its current address without a membership change.
#[derive(Clone, Default)]
pub struct PeerChannels {
    channels: Arc<RwLock<HashMap<String, Channel>>>,
    addresses: Arc<RwLock<HashMap<NodeId, String>>>,
    /// The owning node's test network, if any: calls go through its faults.
    network: Option<NodeNetwork>,
}

impl std::fmt::Debug for PeerChannels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerChannels").field("peers", &self.channels.read().len()).finish()
    }
}

impl PeerChannels {
    /// Channels of the node `network` names, through its faults (`None`: a real
    /// network, as [`PeerChannels::default`]).
    pub fn on(network: Option<NodeNetwork>) -> PeerChannels {
        PeerChannels { network, ..PeerChannels::default() }
    }

    /// Replaces the address book (node id → `host:port`).
    pub fn set_addresses(&self, addresses: impl IntoIterator<Item = (NodeId, String)>) {
        let book: HashMap<NodeId, String> = addresses.into_iter().collect();
        let mut current = self.addresses.write();
        if *current != book {
            *current = book;
        }
    }

    /// Where `node` is: the address book's entry, or else `recorded` (the address in the
    /// group's membership).
    pub fn address_of(&self, node: NodeId, recorded: &str) -> String {
        self.addresses.read().get(&node).cloned().unwrap_or_else(|| recorded.to_owned())
    }

    /// The channel to `addr` (`host:port`), created on first use; calls through it
    /// carry the cluster token ([`crate::cluster_auth`]).
    pub fn get(&self, addr: &str) -> Result<ClusterChannel, tonic::transport::Error> {
        let channel = FaultyChannel::on(self.channel(addr)?, self.network.as_ref(), addr);
        Ok(InterceptedService::new(channel, AttachToken::of(self.token())))
    }

    /// The cluster token calls carry: the node's own, else the process's installed one.
    pub fn token(&self) -> ClusterToken {
        self.network.as_ref().map_or_else(ClusterToken::installed, |n| n.token.clone())
    }

    fn channel(&self, addr: &str) -> Result<Channel, tonic::transport::Error> {
        if let Some(c) = self.channels.read().get(addr) {
            return Ok(c.clone());
        }
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))?
            .connect_timeout(Duration::from_millis(500))
            // While calls are in flight, a peer that stops answering HTTP/2 pings (frozen,
            // or cut off by a partition while its TCP connection looks alive) is given up
            // on within ~3 s, failing those calls as UNAVAILABLE so callers move on to
            // other replicas, instead of waiting out their whole deadline.
            .http2_keep_alive_interval(PEER_PING_INTERVAL)
            .keep_alive_timeout(PEER_PING_TIMEOUT);
        // Plain TCP, or mutual TLS with the process's certificate (crate::tls).
        let channel = endpoint.connect_with_connector_lazy(crate::tls::Connector::new(vec![addr.to_owned()]));
        Ok(self.channels.write().entry(addr.to_owned()).or_insert(channel).clone())
    }
}

// ---- sending ----

/// One group's network factory.
#[derive(Debug, Clone)]
pub struct GrpcNetworkFactory {
    group: GroupId,
    channels: PeerChannels,
}

impl GrpcNetworkFactory {
    pub fn new(group: GroupId, channels: PeerChannels) -> Self {
        GrpcNetworkFactory { group, channels }
    }
}

impl<C> RaftNetworkFactory<C> for GrpcNetworkFactory
where
    C: RaftTypeConfig<NodeId = NodeId, Node = BasicNode>,
    AppendEntriesRequest<C>: Serialize,
    InstallSnapshotRequest<C>: Serialize,
{
    type Network = GrpcNetwork;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> GrpcNetwork {
        GrpcNetwork { group: self.group, target, addr: node.addr.clone(), channels: self.channels.clone() }
    }
}

/// The connection from one group to one peer.
#[derive(Debug)]
pub struct GrpcNetwork {
    group: GroupId,
    target: NodeId,
    addr: String,
    channels: PeerChannels,
}

/// Why a call failed, before it is fitted into openraft's error type of the call.
enum CallError<E> {
    Unreachable(Unreachable),
    Network(NetworkError),
    Remote(E),
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct TransportError(String);

type RpcKind = for<'a> fn(
    &'a mut RaftTransportClient<ClusterChannel>,
    Request<RaftMessage>,
) -> Pin<Box<dyn Future<Output = Result<Response<RaftMessage>, Status>> + Send + 'a>>;

impl GrpcNetwork {
    async fn call<Req, Resp, E>(&self, kind: RpcKind, req: &Req, option: &RPCOption) -> Result<Resp, CallError<E>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: DeserializeOwned,
    {
        let body = encode(req).map_err(|e| CallError::Network(NetworkError::new(&e)))?;
        let addr = self.channels.address_of(self.target, &self.addr);
        let channel = self.channels.get(&addr).map_err(|e| CallError::Unreachable(Unreachable::new(&e)))?;
        let mut client = RaftTransportClient::new(channel)
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX);
        let mut request = Request::new(RaftMessage { group: self.group, body });
        request.set_timeout(option.hard_ttl());
        let reply = match kind(&mut client, request).await {
            Ok(r) => r.into_inner(),
            Err(status) => {
                let e = from_status(&status);
                let err = TransportError(format!("{} ({:?})", e.message, e.code));
                return Err(match e.code {
                    ErrorCode::ShardNotHosted | ErrorCode::Unavailable => {
                        CallError::Unreachable(Unreachable::new(&err))
                    }
                    _ => CallError::Network(NetworkError::new(&err)),
                });
            }
        };
        match decode::<Result<Resp, E>>(&reply.body) {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(remote)) => Err(CallError::Remote(remote)),
            Err(e) => Err(CallError::Network(NetworkError::new(&e))),
        }
    }

    fn fit<E: std::error::Error>(&self, e: CallError<E>) -> RPCError<NodeId, BasicNode, E> {
        match e {
            CallError::Unreachable(u) => RPCError::Unreachable(u),
            CallError::Network(n) => RPCError::Network(n),
            CallError::Remote(r) => RPCError::RemoteError(RemoteError::new(self.target, r)),
        }
    }
}

impl<C> RaftNetwork<C> for GrpcNetwork
where
    C: RaftTypeConfig<NodeId = NodeId, Node = BasicNode>,
    AppendEntriesRequest<C>: Serialize,
    InstallSnapshotRequest<C>: Serialize,
{
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<C>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call(|c, r| Box::pin(c.append_entries(r)), &rpc, &option).await.map_err(|e| self.fit(e))
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<C>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>>
    {
        self.call(|c, r| Box::pin(c.install_snapshot(r)), &rpc, &option).await.map_err(|e| self.fit(e))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call(|c, r| Box::pin(c.vote(r)), &rpc, &option).await.map_err(|e| self.fit(e))
    }

    fn backoff(&self) -> Backoff {
        // 200 ms doubling to 3.2 s: a peer that is down is retried slowly, a peer that
        // is creating the replica is found again quickly.
        Backoff::new((0..).map(|i: u32| Duration::from_millis(200 << i.min(4))))
    }
}

// ---- receiving ----

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A Raft group as the router sees it: bytes in, bytes out.
trait GroupEndpoint: Send + Sync {
    fn append_entries(&self, body: Vec<u8>) -> BoxFuture<'_, Result<Vec<u8>, Status>>;
    fn vote(&self, body: Vec<u8>) -> BoxFuture<'_, Result<Vec<u8>, Status>>;
    fn install_snapshot(&self, body: Vec<u8>) -> BoxFuture<'_, Result<Vec<u8>, Status>>;
    /// Stands for election at once (see [`super::handover`]).
    fn elect(&self) -> BoxFuture<'_, Result<(), Status>>;
}

fn bad_message(e: impl std::fmt::Display) -> Status {
    to_status(&WireError::new(ErrorCode::InvalidArgument, format!("malformed Raft message: {e}"), false))
}

fn encode_reply<T: Serialize>(reply: &T) -> Result<Vec<u8>, Status> {
    encode(reply).map_err(|e| to_status(&WireError::new(ErrorCode::Internal, e.to_string(), false)))
}

impl<C> GroupEndpoint for Raft<C>
where
    C: RaftTypeConfig<NodeId = NodeId, Node = BasicNode>,
    AppendEntriesRequest<C>: DeserializeOwned,
    InstallSnapshotRequest<C>: DeserializeOwned,
{
    fn append_entries(&self, body: Vec<u8>) -> BoxFuture<'_, Result<Vec<u8>, Status>> {
        Box::pin(async move {
            let req: AppendEntriesRequest<C> = decode(&body).map_err(bad_message)?;
            encode_reply(&self.append_entries(req).await)
        })
    }

    fn vote(&self, body: Vec<u8>) -> BoxFuture<'_, Result<Vec<u8>, Status>> {
        Box::pin(async move {
            let req: VoteRequest<NodeId> = decode(&body).map_err(bad_message)?;
            encode_reply(&self.vote(req).await)
        })
    }

    fn install_snapshot(&self, body: Vec<u8>) -> BoxFuture<'_, Result<Vec<u8>, Status>> {
        Box::pin(async move {
            let req: InstallSnapshotRequest<C> = decode(&body).map_err(bad_message)?;
            encode_reply(&self.install_snapshot(req).await)
        })
    }

    fn elect(&self) -> BoxFuture<'_, Result<(), Status>> {
        Box::pin(async move {
            self.trigger()
                .elect()
                .await
                .map_err(|e| to_status(&WireError::new(ErrorCode::Unavailable, e.to_string(), true)))
        })
    }
}

/// The receiving side: the groups this process hosts, by id.
#[derive(Clone, Default)]
pub struct RaftRouter {
    groups: Arc<RwLock<HashMap<GroupId, Arc<dyn GroupEndpoint>>>>,
}

impl std::fmt::Debug for RaftRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftRouter").field("groups", &self.groups.read().len()).finish()
    }
}

impl RaftRouter {
    /// Routes `group`'s messages to `raft` (replacing any earlier registration).
    pub fn register<C>(&self, group: GroupId, raft: Raft<C>)
    where
        C: RaftTypeConfig<NodeId = NodeId, Node = BasicNode>,
        AppendEntriesRequest<C>: DeserializeOwned,
        InstallSnapshotRequest<C>: DeserializeOwned,
    {
        self.groups.write().insert(group, Arc::new(raft));
    }

    pub fn unregister(&self, group: GroupId) {
        self.groups.write().remove(&group);
    }

    /// The gRPC service to add to the process's server.
    pub fn into_service(self) -> RaftTransportServer<RaftRouter> {
        RaftTransportServer::new(self).max_decoding_message_size(usize::MAX).max_encoding_message_size(usize::MAX)
    }

    fn group(&self, group: GroupId) -> Result<Arc<dyn GroupEndpoint>, Status> {
        self.groups.read().get(&group).cloned().ok_or_else(|| {
            to_status(&WireError::new(
                ErrorCode::ShardNotHosted,
                format!("Raft group {group} is not hosted here"),
                true,
            ))
        })
    }
}

#[tonic::async_trait]
impl RaftTransport for RaftRouter {
    async fn append_entries(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let RaftMessage { group, body } = request.into_inner();
        let body = self.group(group)?.append_entries(body).await?;
        Ok(Response::new(RaftMessage { group, body }))
    }

    async fn vote(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let RaftMessage { group, body } = request.into_inner();
        let body = self.group(group)?.vote(body).await?;
        Ok(Response::new(RaftMessage { group, body }))
    }

    async fn install_snapshot(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let RaftMessage { group, body } = request.into_inner();
        let body = self.group(group)?.install_snapshot(body).await?;
        Ok(Response::new(RaftMessage { group, body }))
    }

    async fn take_leadership(
        &self,
        request: Request<TakeLeadershipRequest>,
    ) -> Result<Response<TakeLeadershipResponse>, Status> {
        let group = request.into_inner().group;
        self.group(group)?.elect().await?;
        tracing::info!(group, "standing for election: the leader is handing over");
        Ok(Response::new(TakeLeadershipResponse {}))
    }
}
