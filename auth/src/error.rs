//! The auth crate's error type.

/// Everything that can go wrong in the auth service.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("invalid argument: {reason}")]
    InvalidArgument { reason: String },
    #[error("user {username:?} already exists")]
    UserExists { username: String },
    #[error("user {username:?} not found")]
    UserNotFound { username: String },
    #[error("API key {key_id:?} not found")]
    KeyNotFound { key_id: String },
    /// Wrong credentials of any kind; deliberately says nothing more.
    #[error("invalid credentials")]
    Unauthenticated,
    /// The token was valid but has expired: refresh it.
    #[error("token expired")]
    TokenExpired,
    /// A concurrent change won the race; retrying the request may succeed.
    #[error("concurrent update of {key}")]
    Conflict { key: String },
    #[error("auth store unavailable: {reason}")]
    StoreUnavailable { reason: String },
    #[error("corrupt auth record {key}: {reason}")]
    Corruption { key: String, reason: String },
}

impl AuthError {
    /// Whether the same request may succeed if sent again.
    pub fn is_retryable(&self) -> bool {
        match self {
            AuthError::Conflict { .. } | AuthError::StoreUnavailable { .. } => true,
            AuthError::InvalidArgument { .. }
            | AuthError::UserExists { .. }
            | AuthError::UserNotFound { .. }
            | AuthError::KeyNotFound { .. }
            | AuthError::Unauthenticated
            | AuthError::TokenExpired
            | AuthError::Corruption { .. } => false,
        }
    }
}

impl From<etcd_client::Error> for AuthError {
    fn from(e: etcd_client::Error) -> Self {
        AuthError::StoreUnavailable { reason: e.to_string() }
    }
}

impl From<rocksdb::Error> for AuthError {
    fn from(e: rocksdb::Error) -> Self {
        AuthError::StoreUnavailable { reason: e.to_string() }
    }
}

pub type Result<T, E = AuthError> = std::result::Result<T, E>;

impl AuthError {
    /// The stable code clients see.
    pub fn code(&self) -> vectron_proto::v1::ErrorCode {
        use vectron_proto::v1::ErrorCode;
        match self {
            AuthError::InvalidArgument { .. } => ErrorCode::InvalidArgument,
            AuthError::UserExists { .. } => ErrorCode::AlreadyExists,
            AuthError::UserNotFound { .. } | AuthError::KeyNotFound { .. } => ErrorCode::NotFound,
            AuthError::Unauthenticated => ErrorCode::Unauthenticated,
            AuthError::TokenExpired => ErrorCode::TokenExpired,
            AuthError::Conflict { .. } => ErrorCode::Conflict,
            AuthError::StoreUnavailable { .. } => ErrorCode::Unavailable,
            AuthError::Corruption { .. } => ErrorCode::Storage,
        }
    }

    /// As a gRPC status with code and retry metadata.
    pub fn to_status(&self) -> tonic::Status {
        vectron_model::status::to_status(&vectron_model::status::WireError::new(
            self.code(),
            self.to_string(),
            self.is_retryable(),
        ))
    }
}
