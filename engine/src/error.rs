//! The engine's error type. Every variant maps to a stable [`ErrorCode`] and says whether
//! retrying the same request can help.

use vectron_model::ValidationError;
use vectron_proto::v1::ErrorCode;

/// Everything that can go wrong inside one shard's engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The request breaks the data model's rules (wrong dimension, NaN, bad filter, …).
    #[error(transparent)]
    Invalid(#[from] ValidationError),
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
            EngineError::Invalid(e) => e.code(),
            EngineError::Storage(_) | EngineError::Corruption { .. } | EngineError::Io { .. } => ErrorCode::Storage,
        }
    }

    /// Whether sending the same request again may succeed. Validation errors never do;
    /// storage errors do not on the same replica (another replica may serve it).
    pub fn is_retryable(&self) -> bool {
        match self {
            EngineError::Invalid(_)
            | EngineError::Storage(_)
            | EngineError::Corruption { .. }
            | EngineError::Io { .. } => false,
        }
    }

    /// A request argument out of range (top_k, ef, an empty batch, …).
    pub fn invalid_argument(reason: impl Into<String>) -> Self {
        EngineError::Invalid(ValidationError::InvalidArgument { reason: reason.into() })
    }

    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        EngineError::Io { path: path.display().to_string(), source }
    }

    /// A stored point id that does not decode.
    pub(crate) fn corrupt_point_id(reason: &str) -> Self {
        EngineError::Corruption { what: "point id", reason: reason.into() }
    }
}

impl From<&EngineError> for vectron_model::status::WireError {
    fn from(e: &EngineError) -> Self {
        vectron_model::status::WireError::new(e.code(), e.to_string(), e.is_retryable())
    }
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;
