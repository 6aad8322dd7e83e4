//! [`GatewayError`]: why the gateway could not serve an operation, with the ids it is
//! about. Errors the gateway received (a shard's, the placement driver's, the access
//! rules') are kept as the [`WireError`] they arrived as; the gateway's own are typed. It
//! becomes a `WireError` only where a transport answers ([`GatewayError::to_wire`]).

use vectron_model::ValidationError;
use vectron_model::status::WireError;
use vectron_proto::v1::ErrorCode;

/// Why an operation failed at the gateway.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GatewayError {
    /// The request breaks a rule of the data model.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The request breaks one of the gateway's own rules (batch sizes, cursors).
    #[error("{reason}")]
    InvalidArgument { reason: String },
    #[error("collection {name:?} does not exist")]
    CollectionNotFound { name: String },
    /// The collection was resharded (or deleted and re-created) since it was looked up.
    #[error("shard {shard_id} is no longer part of {collection:?}")]
    ShardGone { shard_id: u64, collection: String },
    /// The access rules refused the caller (scope, collection, rate limit), as the auth
    /// layer answers.
    #[error("{}", .0.message)]
    Access(WireError),
    /// A shard's own answer (validation, storage, a refusal at apply).
    #[error("{}", .error.message)]
    Shard { shard_id: u64, error: WireError },
    /// A call to a worker failed in transport (refused, reset, an HTTP/2 error).
    #[error(
        "shard {shard_id}: transport error talking to worker {worker} at {address} ({message}); a write may or may not have been applied"
    )]
    Transport { shard_id: u64, worker: u64, address: String, message: String },
    #[error("shard {shard_id} did not answer in time")]
    ShardTimeout { shard_id: u64 },
    /// No replica of the shard led it and answered before the deadline.
    #[error("shard {shard_id} has no reachable leader: {last}")]
    NoLeader { shard_id: u64, last: String },
    #[error("no shard answered the search in time")]
    NoShardAnswered,
    /// Some shards of a write applied their part and some did not or may have.
    #[error(
        "{what} partly applied: shards {applied:?} applied their part, {refused:?} did not, {unknown:?} may have; first error: {first}. Sending the whole request again is safe (writes are idempotent by id)"
    )]
    PartlyApplied {
        what: &'static str,
        applied: Vec<u64>,
        refused: Vec<u64>,
        unknown: Vec<u64>,
        first: Box<GatewayError>,
    },
    /// The placement driver's answer (collections, routing).
    #[error("{}", .0.message)]
    Placement(WireError),
    /// The reranker refused the rerank (its parameters, a strategy not built).
    #[error("rerank: {}", .0.message)]
    Reranker(WireError),
    /// A state the gateway's invariants exclude (a bug or a corrupt table).
    #[error("{what}")]
    Internal { what: String },
}

impl GatewayError {
    pub fn invalid(reason: impl Into<String>) -> GatewayError {
        GatewayError::InvalidArgument { reason: reason.into() }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            GatewayError::Invalid(e) => e.code(),
            GatewayError::InvalidArgument { .. } => ErrorCode::InvalidArgument,
            GatewayError::CollectionNotFound { .. } => ErrorCode::CollectionNotFound,
            GatewayError::ShardGone { .. } => ErrorCode::StaleEpoch,
            GatewayError::Access(e)
            | GatewayError::Placement(e)
            | GatewayError::Reranker(e)
            | GatewayError::Shard { error: e, .. } => e.code,
            GatewayError::Transport { .. } | GatewayError::NoLeader { .. } | GatewayError::NoShardAnswered => {
                ErrorCode::Unavailable
            }
            GatewayError::ShardTimeout { .. } => ErrorCode::DeadlineExceeded,
            GatewayError::PartlyApplied { unknown, first, .. } => {
                if unknown.is_empty() {
                    first.code()
                } else {
                    ErrorCode::Unavailable
                }
            }
            GatewayError::Internal { .. } => ErrorCode::Internal,
        }
    }

    /// Whether sending the same request again may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            GatewayError::Invalid(_)
            | GatewayError::InvalidArgument { .. }
            | GatewayError::CollectionNotFound { .. }
            | GatewayError::Internal { .. } => false,
            GatewayError::ShardGone { .. }
            | GatewayError::Transport { .. }
            | GatewayError::ShardTimeout { .. }
            | GatewayError::NoLeader { .. }
            | GatewayError::NoShardAnswered => true,
            GatewayError::Access(e)
            | GatewayError::Placement(e)
            | GatewayError::Reranker(e)
            | GatewayError::Shard { error: e, .. } => e.retryable,
            GatewayError::PartlyApplied { unknown, first, .. } => !unknown.is_empty() || first.is_retryable(),
        }
    }

    /// Whether a write that failed so may have been applied (a deadline, a transport
    /// failure, a worker's unavailability or internal error leave it unknown).
    pub fn outcome_unknown(&self) -> bool {
        matches!(self.code(), ErrorCode::Unavailable | ErrorCode::DeadlineExceeded | ErrorCode::Internal)
    }

    /// The error as a transport answers it. Errors received keep what they carried
    /// (leader hints, epochs, `retry_after`).
    pub fn to_wire(&self) -> WireError {
        match self {
            GatewayError::Access(e) | GatewayError::Placement(e) | GatewayError::Shard { error: e, .. } => e.clone(),
            _ => WireError::new(self.code(), self.to_string(), self.is_retryable()),
        }
    }
}

impl From<GatewayError> for WireError {
    fn from(e: GatewayError) -> WireError {
        e.to_wire()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_retry_flags_are_the_errors_own_and_received_ones_pass_through() {
        let cases = [
            (GatewayError::invalid("x"), ErrorCode::InvalidArgument, false),
            (GatewayError::CollectionNotFound { name: "c".into() }, ErrorCode::CollectionNotFound, false),
            (GatewayError::ShardGone { shard_id: 1, collection: "c".into() }, ErrorCode::StaleEpoch, true),
            (
                GatewayError::Transport { shard_id: 1, worker: 2, address: "a".into(), message: "reset".into() },
                ErrorCode::Unavailable,
                true,
            ),
            (GatewayError::ShardTimeout { shard_id: 1 }, ErrorCode::DeadlineExceeded, true),
            (GatewayError::NoLeader { shard_id: 1, last: "x".into() }, ErrorCode::Unavailable, true),
            (GatewayError::NoShardAnswered, ErrorCode::Unavailable, true),
            (GatewayError::Internal { what: "x".into() }, ErrorCode::Internal, false),
        ];
        for (e, code, retryable) in cases {
            let wire = e.to_wire();
            assert_eq!((wire.code, wire.retryable), (code, retryable), "{e:?}");
            assert_eq!(wire.message, e.to_string());
        }
        let mut limited = WireError::new(ErrorCode::ResourceExhausted, "slow down", true);
        limited.retry_after = Some(std::time::Duration::from_secs(2));
        assert_eq!(GatewayError::Access(limited.clone()).to_wire(), limited, "received errors pass through whole");
        let hinted = WireError::not_leader("no", None).with_epoch(4);
        assert_eq!(GatewayError::Shard { shard_id: 1, error: hinted.clone() }.to_wire(), hinted);
    }
}
