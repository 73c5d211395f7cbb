//! The one error type of the service layer. Each face maps it to its own
//! wire format in one place.

use crate::engine::EngineError;
use crate::network::NetworkError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// Bad input; `field` names the offending field.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("{kind} {name} not found")]
    NotFound { kind: &'static str, name: String },
    #[error("{0}")]
    Conflict(String),
    /// No credential, or one that is wrong, expired, revoked or of the
    /// wrong kind; the text says which, without echoing the credential.
    #[error("{0}")]
    Unauthorized(String),
    /// Authenticated, but the permission `{0}` is not held.
    #[error("permission {0} required")]
    Forbidden(String),
    /// A create or change would exceed one of the owner's quotas.
    #[error("quota {quota} exceeded: limit {limit}, this would make {requested}")]
    QuotaExceeded {
        quota: &'static str,
        limit: u64,
        requested: u64,
    },
    /// Too many requests or failed logins; retry after the given seconds.
    #[error("{message}")]
    TooMany { message: String, retry_after: u64 },
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Store(StoreError),
    #[error("secret store: {0}")]
    Secret(String),
    #[error(transparent)]
    Network(#[from] crate::network::NetworkError),
}

/// How a face should classify an error; faces turn this into a status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict,
    Timeout,
    Unavailable,
    TooManyRequests,
    Internal,
}

impl CoreError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.to_string(),
            message: message.into(),
        }
    }
    pub fn not_found(kind: &'static str, name: impl Into<String>) -> Self {
        Self::NotFound {
            kind,
            name: name.into(),
        }
    }

    pub fn unauthorized(reason: impl Into<String>) -> Self {
        Self::Unauthorized(reason.into())
    }

    /// Seconds a client should wait before retrying, for `TooMany`.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Self::TooMany { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Invalid { .. } => ErrorClass::BadRequest,
            Self::NotFound { .. } => ErrorClass::NotFound,
            Self::Conflict(_) => ErrorClass::Conflict,
            Self::Unauthorized(_) => ErrorClass::Unauthorized,
            Self::Forbidden(_) | Self::QuotaExceeded { .. } => ErrorClass::Forbidden,
            Self::TooMany { .. } => ErrorClass::TooManyRequests,
            Self::Unavailable(_) => ErrorClass::Unavailable,
            Self::Engine(e) => match e {
                EngineError::VmNotFound(_)
                | EngineError::ImageNotFound(_)
                | EngineError::SnapshotNotFound(_)
                | EngineError::BackupNotFound(_)
                | EngineError::IsoNotFound(_)
                | EngineError::NicNotFound(_) => ErrorClass::NotFound,
                EngineError::VmExists(_)
                | EngineError::InvalidState { .. }
                | EngineError::SnapshotExists(_)
                | EngineError::BackupExists(_)
                | EngineError::Agent(_) => ErrorClass::Conflict,
                EngineError::AgentUnavailable(_) => ErrorClass::Unavailable,
                EngineError::DiskShrink { .. } | EngineError::SocketPathTooLong(_) => {
                    ErrorClass::BadRequest
                }
                EngineError::StopTimeout(_) => ErrorClass::Timeout,
                EngineError::Unavailable(_) => ErrorClass::Unavailable,
                EngineError::Command { .. } | EngineError::Qmp(_) | EngineError::Io { .. } => {
                    ErrorClass::Internal
                }
            },
            Self::Network(e) => match e {
                NetworkError::PortTaken(_) => ErrorClass::Conflict,
                NetworkError::BadCertificate(_) => ErrorClass::BadRequest,
                NetworkError::Acme(_) => ErrorClass::Unavailable,
                NetworkError::System(_) => ErrorClass::Internal,
            },
            Self::Store(StoreError::Conflict(_)) => ErrorClass::Conflict,
            Self::Store(_) | Self::Secret(_) => ErrorClass::Internal,
        }
    }
}

impl From<StoreError> for CoreError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => CoreError::Conflict(format!("{what} already exists")),
            other => CoreError::Store(other),
        }
    }
}
