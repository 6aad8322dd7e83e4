//! The engine's error type. Every variant maps to a stable [`ErrorCode`] and says whether
//! retrying the same request can help.

use vectron_proto::v1::ErrorCode;

/// Everything that can go wrong inside one shard's engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("vector has {got} dimensions, the collection has {expected}")]
    DimensionMismatch { expected: usize, got: usize },
    #[error("invalid vector: {reason}")]
    InvalidVector { reason: String },
    #[error("invalid payload: {reason}")]
    InvalidPayload { reason: String },
    #[error("invalid filter: {reason}")]
    InvalidFilter { reason: String },
    #[error("invalid point id: {reason}")]
    InvalidPointId { reason: String },
    #[error("invalid argument: {reason}")]
    InvalidArgument { reason: String },
    #[error("storage error: {0}")]
    Storage(#[from] rocksdb::Error),
    #[error("corrupt data in {what}: {reason}")]
    Corruption { what: &'static str, reason: String },
    #[error("i/o error on {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl EngineError {
    /// The stable code clients see for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            EngineError::DimensionMismatch { .. } => ErrorCode::DimensionMismatch,
            EngineError::InvalidVector { .. } => ErrorCode::InvalidVector,
            EngineError::InvalidPayload { .. } => ErrorCode::InvalidPayload,
            EngineError::InvalidFilter { .. } => ErrorCode::InvalidFilter,
            EngineError::InvalidPointId { .. } => ErrorCode::InvalidPointId,
            EngineError::InvalidArgument { .. } => ErrorCode::InvalidArgument,
            EngineError::Storage(_) | EngineError::Corruption { .. } | EngineError::Io { .. } => ErrorCode::Storage,
        }
    }

    /// Whether sending the same request again may succeed. Validation errors never do;
    /// storage errors do not on the same replica (another replica may serve it).
    pub fn is_retryable(&self) -> bool {
        match self {
            EngineError::DimensionMismatch { .. }
            | EngineError::InvalidVector { .. }
            | EngineError::InvalidPayload { .. }
            | EngineError::InvalidFilter { .. }
            | EngineError::InvalidPointId { .. }
            | EngineError::InvalidArgument { .. }
            | EngineError::Storage(_)
            | EngineError::Corruption { .. }
            | EngineError::Io { .. } => false,
        }
    }

    pub(crate) fn invalid_filter(reason: impl Into<String>) -> Self {
        EngineError::InvalidFilter { reason: reason.into() }
    }

    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        EngineError::Io { path: path.display().to_string(), source }
    }
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;
