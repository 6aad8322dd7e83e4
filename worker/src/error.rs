//! [`WorkerError`]: why a worker refused or failed a shard call, with the ids it is
//! about. It becomes a [`WireError`] (a gRPC status with Vectron's metadata) only where
//! the worker answers a call.

use vectron_engine::EngineError;
use vectron_model::status::{LeaderHint, WireError};
use vectron_proto::v1::ErrorCode;

/// Why a shard call failed on this worker.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// This worker does not lead the shard, or leads it without a recent quorum (then
    /// without a hint, which would point here).
    #[error("{detail}")]
    NotLeader { shard_id: u64, leader: Option<LeaderHint>, detail: String },
    /// The shard has no replica on this worker (at its routing epoch).
    #[error("shard {shard_id} is not hosted on worker {worker}")]
    ShardNotHosted { shard_id: u64, worker: u64, epoch: u64 },
    /// A snapshot is being installed into the shard's replica.
    #[error("shard {shard_id} is being restored")]
    Restoring { shard_id: u64 },
    /// The shard's Raft group cannot take the request now (shutting down, a membership
    /// change, lost quorum); a retry may succeed.
    #[error("{detail}")]
    Unavailable { shard_id: u64, detail: String },
    /// The shard's state machine refused the write when applying it.
    #[error("{message}")]
    Refused { shard_id: u64, code: ErrorCode, message: String },
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A field the call needs is absent.
    #[error("{what} is missing")]
    Missing { what: &'static str },
    #[error("scroll cursor is not one this shard issued")]
    BadCursor,
    /// The read pool dropped a read before it answered.
    #[error("read task dropped")]
    ReadTaskDropped,
}

impl WorkerError {
    /// A Raft error of `shard_id`'s group (as `raft_error_to_wire` classified it).
    pub fn consensus(shard_id: u64, e: WireError) -> WorkerError {
        match e.code {
            ErrorCode::NotLeader => WorkerError::NotLeader { shard_id, leader: e.leader, detail: e.message },
            _ => WorkerError::Unavailable { shard_id, detail: e.message },
        }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            WorkerError::NotLeader { .. } => ErrorCode::NotLeader,
            WorkerError::ShardNotHosted { .. } => ErrorCode::ShardNotHosted,
            WorkerError::Restoring { .. } | WorkerError::Unavailable { .. } => ErrorCode::Unavailable,
            WorkerError::Refused { code, .. } => *code,
            WorkerError::Engine(e) => e.code(),
            WorkerError::Missing { .. } | WorkerError::BadCursor => ErrorCode::InvalidArgument,
            WorkerError::ReadTaskDropped => ErrorCode::Internal,
        }
    }

    /// Whether the same call may succeed later (on this worker or, after routing, another).
    pub fn is_retryable(&self) -> bool {
        match self {
            WorkerError::NotLeader { .. }
            | WorkerError::ShardNotHosted { .. }
            | WorkerError::Restoring { .. }
            | WorkerError::Unavailable { .. } => true,
            WorkerError::Engine(e) => e.is_retryable(),
            WorkerError::Refused { .. }
            | WorkerError::Missing { .. }
            | WorkerError::BadCursor
            | WorkerError::ReadTaskDropped => false,
        }
    }

    /// The error as the worker answers it: code, message, retry flag, and the leader
    /// hint or routing epoch the caller routes by.
    pub fn to_wire(&self) -> WireError {
        let wire = WireError::new(self.code(), self.to_string(), self.is_retryable());
        match self {
            WorkerError::NotLeader { leader, .. } => WireError { leader: leader.clone(), ..wire },
            WorkerError::ShardNotHosted { epoch, .. } => wire.with_epoch(*epoch),
            _ => wire,
        }
    }

    pub fn to_status(&self) -> tonic::Status {
        self.to_wire().to_status()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vectron_model::ValidationError;
    use vectron_model::status::from_status;

    #[test]
    fn each_error_answers_its_code_retry_flag_and_routing_data() {
        let hint = LeaderHint { id: 2, address: Some("10.0.0.2:9090".into()) };
        let cases = [
            (
                WorkerError::NotLeader { shard_id: 1, leader: Some(hint.clone()), detail: "x".into() },
                ErrorCode::NotLeader,
                true,
            ),
            (WorkerError::ShardNotHosted { shard_id: 1, worker: 3, epoch: 9 }, ErrorCode::ShardNotHosted, true),
            (WorkerError::Restoring { shard_id: 1 }, ErrorCode::Unavailable, true),
            (WorkerError::Unavailable { shard_id: 1, detail: "y".into() }, ErrorCode::Unavailable, true),
            (
                WorkerError::Refused { shard_id: 1, code: ErrorCode::InvalidPayload, message: "z".into() },
                ErrorCode::InvalidPayload,
                false,
            ),
            (
                WorkerError::Engine(EngineError::Invalid(ValidationError::InvalidVector { reason: "nan".into() })),
                ErrorCode::InvalidVector,
                false,
            ),
            (WorkerError::Missing { what: "request" }, ErrorCode::InvalidArgument, false),
            (WorkerError::BadCursor, ErrorCode::InvalidArgument, false),
            (WorkerError::ReadTaskDropped, ErrorCode::Internal, false),
        ];
        for (e, code, retryable) in cases {
            let back = from_status(&e.to_status());
            assert_eq!((back.code, back.retryable), (code, retryable), "{e:?}");
            assert_eq!(back.message, e.to_string());
        }
        let not_leader = WorkerError::NotLeader { shard_id: 1, leader: Some(hint), detail: "x".into() };
        assert_eq!(from_status(&not_leader.to_status()).leader.map(|l| l.id), Some(2));
        let not_hosted = WorkerError::ShardNotHosted { shard_id: 1, worker: 3, epoch: 9 };
        assert_eq!(from_status(&not_hosted.to_status()).epoch, Some(9));
        let raft = WorkerError::consensus(4, WireError::not_leader("shard 4 write: not the leader", None));
        assert!(matches!(raft, WorkerError::NotLeader { shard_id: 4, .. }));
    }
}
