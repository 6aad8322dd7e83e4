//! [`StartError`]: why a placement node or a worker could not start (storage, Raft, its
//! membership or registration, its identity file).

use crate::raft::NodeId;

/// Why a service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("storage: {0}")]
    Storage(#[from] vectron_engine::EngineError),
    #[error("raft storage: {0}")]
    RaftStorage(#[from] openraft::StorageError<NodeId>),
    #[error("raft: {0}")]
    Raft(String),
    /// A placement node whose id is not among the initial members.
    #[error("node {0} is not among the members")]
    NotAMember(NodeId),
    /// A worker the placement driver would not register.
    #[error("registering with the placement driver: {0:?}")]
    Register(vectron_model::status::WireError),
    /// A worker's `worker-id` file could not be read or written.
    #[error("worker id file {path}: {source}")]
    IdFile { path: String, source: std::io::Error },
}
