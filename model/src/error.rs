//! [`ValidationError`]: input that breaks the data model's rules (a wrong dimension, a
//! NaN, a malformed id or filter). Every variant maps to a stable [`ErrorCode`];
//! none is retryable (the same request fails the same way).

use vectron_proto::v1::ErrorCode;

/// Input that breaks the data model's rules.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ValidationError {
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
    /// What is wrong with one point of a batch.
    #[error("point {index}: {error}")]
    AtPoint { index: usize, error: Box<ValidationError> },
}

impl ValidationError {
    /// The stable code clients see for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            ValidationError::DimensionMismatch { .. } => ErrorCode::DimensionMismatch,
            ValidationError::InvalidVector { .. } => ErrorCode::InvalidVector,
            ValidationError::InvalidPayload { .. } => ErrorCode::InvalidPayload,
            ValidationError::InvalidFilter { .. } => ErrorCode::InvalidFilter,
            ValidationError::InvalidPointId { .. } => ErrorCode::InvalidPointId,
            ValidationError::InvalidArgument { .. } => ErrorCode::InvalidArgument,
            ValidationError::AtPoint { error, .. } => error.code(),
        }
    }

    /// This error, as about point `index` of a batch.
    pub fn about_point(self, index: usize) -> Self {
        ValidationError::AtPoint { index, error: Box::new(self) }
    }

    pub(crate) fn invalid_filter(reason: impl Into<String>) -> Self {
        ValidationError::InvalidFilter { reason: reason.into() }
    }
}

pub type Result<T, E = ValidationError> = std::result::Result<T, E>;
