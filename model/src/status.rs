//! Error codes on the wire. Every Vectron error has a stable [`ErrorCode`]; this module
//! is the one place that turns a code into a gRPC status code and an HTTP status, and
//! that writes (and reads back) the metadata carrying the code and retry hints:
//!
//! - `vectron-error-code`: the `ErrorCode` name, e.g. `DIMENSION_MISMATCH`;
//! - `vectron-retryable`: `true` or `false`;
//! - `retry-after`: seconds to wait, when the server knows (rate limits, throttling);
//! - `vectron-leader` / `vectron-leader-addr`: the node id and address of the leader a
//!   NOT_LEADER answer points at, when known;
//! - `vectron-epoch`: the routing epoch the server holds (with STALE_EPOCH and friends).

use std::time::Duration;

use tonic::metadata::MetadataValue;
use vectron_proto::v1::ErrorCode;

pub const CODE_KEY: &str = "vectron-error-code";
pub const RETRYABLE_KEY: &str = "vectron-retryable";
pub const RETRY_AFTER_KEY: &str = "retry-after";
pub const LEADER_KEY: &str = "vectron-leader";
pub const LEADER_ADDR_KEY: &str = "vectron-leader-addr";
pub const EPOCH_KEY: &str = "vectron-epoch";

/// An error as it travels between services and to clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError {
    pub code: ErrorCode,
    pub message: String,
    pub retryable: bool,
    pub retry_after: Option<Duration>,
    /// Routing data: where the leader is, as far as the server knows.
    pub leader: Option<LeaderHint>,
    /// The routing epoch the server holds.
    pub epoch: Option<u64>,
}

/// A leader's node id and, when known, its address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderHint {
    pub id: u64,
    pub address: Option<String>,
}

impl From<&crate::ValidationError> for WireError {
    fn from(e: &crate::ValidationError) -> Self {
        WireError::new(e.code(), e.to_string(), false)
    }
}

impl WireError {
    pub fn new(code: ErrorCode, message: impl Into<String>, retryable: bool) -> WireError {
        WireError { code, message: message.into(), retryable, retry_after: None, leader: None, epoch: None }
    }

    /// NOT_LEADER, pointing at `leader` when known.
    pub fn not_leader(message: impl Into<String>, leader: Option<LeaderHint>) -> WireError {
        WireError { leader, ..WireError::new(ErrorCode::NotLeader, message, true) }
    }

    /// A typed status for this error.
    pub fn to_status(&self) -> tonic::Status {
        to_status(self)
    }

    pub fn with_epoch(mut self, epoch: u64) -> WireError {
        self.epoch = Some(epoch);
        self
    }

    pub fn with_retry_after(mut self, after: Duration) -> WireError {
        self.retry_after = Some(after);
        self
    }
}

/// The gRPC status code for an error code.
pub fn grpc_code(code: ErrorCode) -> tonic::Code {
    use tonic::Code;
    match code {
        ErrorCode::Unspecified | ErrorCode::Internal => Code::Internal,
        ErrorCode::InvalidArgument
        | ErrorCode::DimensionMismatch
        | ErrorCode::InvalidVector
        | ErrorCode::InvalidPayload
        | ErrorCode::InvalidFilter
        | ErrorCode::InvalidPointId => Code::InvalidArgument,
        ErrorCode::PayloadTooLarge => Code::ResourceExhausted,
        ErrorCode::MethodNotAllowed => Code::Unimplemented,
        ErrorCode::FailedPrecondition => Code::FailedPrecondition,
        ErrorCode::CollectionNotFound | ErrorCode::PointNotFound | ErrorCode::NotFound => Code::NotFound,
        ErrorCode::CollectionAlreadyExists | ErrorCode::AlreadyExists => Code::AlreadyExists,
        ErrorCode::NotLeader | ErrorCode::StaleEpoch | ErrorCode::ShardNotHosted | ErrorCode::Conflict => Code::Aborted,
        ErrorCode::Unavailable => Code::Unavailable,
        ErrorCode::DeadlineExceeded => Code::DeadlineExceeded,
        ErrorCode::ResourceExhausted => Code::ResourceExhausted,
        ErrorCode::Unauthenticated | ErrorCode::TokenExpired => Code::Unauthenticated,
        ErrorCode::PermissionDenied => Code::PermissionDenied,
        ErrorCode::Storage => Code::DataLoss,
        ErrorCode::Unimplemented => Code::Unimplemented,
    }
}

/// The HTTP status for an error code.
pub fn http_status(code: ErrorCode) -> u16 {
    match code {
        ErrorCode::Unspecified | ErrorCode::Internal | ErrorCode::Storage => 500,
        ErrorCode::InvalidArgument
        | ErrorCode::DimensionMismatch
        | ErrorCode::InvalidVector
        | ErrorCode::InvalidPayload
        | ErrorCode::InvalidFilter
        | ErrorCode::InvalidPointId => 400,
        ErrorCode::PayloadTooLarge => 413,
        ErrorCode::MethodNotAllowed => 405,
        ErrorCode::FailedPrecondition => 409,
        ErrorCode::CollectionNotFound | ErrorCode::PointNotFound | ErrorCode::NotFound => 404,
        ErrorCode::CollectionAlreadyExists | ErrorCode::AlreadyExists | ErrorCode::Conflict => 409,
        ErrorCode::NotLeader | ErrorCode::StaleEpoch | ErrorCode::ShardNotHosted | ErrorCode::Unavailable => 503,
        ErrorCode::DeadlineExceeded => 504,
        ErrorCode::ResourceExhausted => 429,
        ErrorCode::Unauthenticated | ErrorCode::TokenExpired => 401,
        ErrorCode::PermissionDenied => 403,
        ErrorCode::Unimplemented => 501,
    }
}

/// Encodes an error as a gRPC status with the code and retry metadata.
pub fn to_status(e: &WireError) -> tonic::Status {
    let mut status = tonic::Status::new(grpc_code(e.code), e.message.clone());
    let md = status.metadata_mut();
    md.insert(CODE_KEY, MetadataValue::from_static(e.code.as_str_name()));
    md.insert(RETRYABLE_KEY, MetadataValue::from_static(if e.retryable { "true" } else { "false" }));
    if let Some(after) = e.retry_after {
        let secs = after.as_secs_f64().ceil() as u64;
        md.insert(RETRY_AFTER_KEY, MetadataValue::from(secs));
    }
    if let Some(leader) = &e.leader {
        md.insert(LEADER_KEY, MetadataValue::from(leader.id));
        if let Some(addr) = leader.address.as_deref().and_then(|a| MetadataValue::try_from(a).ok()) {
            md.insert(LEADER_ADDR_KEY, addr);
        }
    }
    if let Some(epoch) = e.epoch {
        md.insert(EPOCH_KEY, MetadataValue::from(epoch));
    }
    status
}

/// Whether a status carries Vectron's error metadata (it came from one of Vectron's
/// services, not from the transport or a proxy in between).
pub fn is_vectron_error(status: &tonic::Status) -> bool {
    status.metadata().contains_key(CODE_KEY)
}

/// Whether a status is the transport's, not a service's answer: no Vectron error
/// metadata, and a code tonic gives connection failures — refused or reset (UNAVAILABLE,
/// UNKNOWN), a cancelled stream (CANCELLED), or an HTTP/2 error (INTERNAL "h2 protocol
/// error", e.g. a stream the server's GOAWAY cut off as it stopped). Such a call may or
/// may not have been served; other INTERNAL statuses (an undecodable answer) are not the
/// transport's.
pub fn is_transport_error(status: &tonic::Status) -> bool {
    use tonic::Code;
    !is_vectron_error(status)
        && match status.code() {
            Code::Unavailable | Code::Unknown | Code::Cancelled => true,
            Code::Internal => status.message().starts_with("h2 protocol error"),
            _ => false,
        }
}

/// Decodes a status from another Vectron service (or infers what it can from a plain
/// gRPC status, e.g. a transport failure).
pub fn from_status(status: &tonic::Status) -> WireError {
    let md = status.metadata();
    let code = md.get(CODE_KEY).and_then(|v| v.to_str().ok()).and_then(ErrorCode::from_str_name).unwrap_or(
        match status.code() {
            tonic::Code::InvalidArgument => ErrorCode::InvalidArgument,
            tonic::Code::NotFound => ErrorCode::NotFound,
            tonic::Code::AlreadyExists => ErrorCode::AlreadyExists,
            tonic::Code::Unauthenticated => ErrorCode::Unauthenticated,
            tonic::Code::PermissionDenied => ErrorCode::PermissionDenied,
            tonic::Code::ResourceExhausted => ErrorCode::ResourceExhausted,
            tonic::Code::DeadlineExceeded => ErrorCode::DeadlineExceeded,
            tonic::Code::Unavailable => ErrorCode::Unavailable,
            tonic::Code::FailedPrecondition => ErrorCode::FailedPrecondition,
            tonic::Code::OutOfRange => ErrorCode::PayloadTooLarge,
            tonic::Code::Unimplemented => ErrorCode::Unimplemented,
            _ => ErrorCode::Internal,
        },
    );
    let retryable = match md.get(RETRYABLE_KEY).and_then(|v| v.to_str().ok()) {
        Some(v) => v == "true",
        None => matches!(status.code(), tonic::Code::Unavailable | tonic::Code::DeadlineExceeded),
    };
    let retry_after =
        md.get(RETRY_AFTER_KEY).and_then(|v| v.to_str().ok()).and_then(|s| s.parse().ok()).map(Duration::from_secs);
    let text = |key: &str| md.get(key).and_then(|v| v.to_str().ok());
    let leader = text(LEADER_KEY)
        .and_then(|s| s.parse().ok())
        .map(|id| LeaderHint { id, address: text(LEADER_ADDR_KEY).map(str::to_owned) });
    let epoch = text(EPOCH_KEY).and_then(|s| s.parse().ok());
    WireError { code, message: status.message().to_owned(), retryable, retry_after, leader, epoch }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_through_a_status() {
        for raw in 0..64 {
            let Ok(code) = ErrorCode::try_from(raw) else { continue };
            let mut e = WireError::new(code, format!("message {raw}"), raw % 2 == 0)
                .with_retry_after(Duration::from_millis(1500))
                .with_epoch(raw as u64 + 7);
            e.leader = Some(LeaderHint { id: 3, address: (raw % 3 == 0).then(|| "127.0.0.1:9090".into()) });
            let back = from_status(&to_status(&e));
            assert_eq!(back.code, code);
            assert_eq!(back.leader, e.leader);
            assert_eq!(back.epoch, e.epoch);
            assert_eq!(back.message, e.message);
            assert_eq!(back.retryable, e.retryable);
            assert_eq!(back.retry_after, Some(Duration::from_secs(2)), "rounded up to whole seconds");
            assert!((400..600).contains(&http_status(code)));
        }
    }

    #[test]
    fn plain_statuses_are_understood() {
        let e = from_status(&tonic::Status::unavailable("connection refused"));
        assert_eq!((e.code, e.retryable), (ErrorCode::Unavailable, true));
        let e = from_status(&tonic::Status::invalid_argument("bad"));
        assert_eq!((e.code, e.retryable), (ErrorCode::InvalidArgument, false));
    }

    #[test]
    fn well_known_mappings() {
        assert_eq!(
            (grpc_code(ErrorCode::CollectionNotFound), http_status(ErrorCode::CollectionNotFound)),
            (tonic::Code::NotFound, 404)
        );
        assert_eq!(
            (grpc_code(ErrorCode::DimensionMismatch), http_status(ErrorCode::DimensionMismatch)),
            (tonic::Code::InvalidArgument, 400)
        );
        assert_eq!(http_status(ErrorCode::ResourceExhausted), 429);
        assert_eq!(http_status(ErrorCode::Unauthenticated), 401);
        assert_eq!(http_status(ErrorCode::PermissionDenied), 403);
    }
}
