//! `AppError`: the one error type users see, shared by server functions, the REST API and the UI.
//!
//! Every variant carries only text a person can act on; internal causes (SQL, paths, I/O) are logged on the
//! server and surface here as `Internal` with no detail.
//!
//! On the wire (server functions and the REST API alike) an error is the one JSON envelope
//! `{"error": {"kind", "message", "field"?, "resource"?, "retry_after_secs"?}}` (`wire.rs`).

use serde::{Deserialize, Serialize};
use server_fn::codec::JsonEncoding;
use server_fn::error::{FromServerFnError, ServerFnErrorErr};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(into = "crate::wire::Envelope", from = "crate::wire::Envelope")]
pub enum AppError {
    #[error("Please sign in.")]
    Unauthenticated,
    #[error("You do not have permission to do that.")]
    Forbidden,
    #[error("{message}")]
    NotFound { message: String },
    #[error("{message}")]
    Invalid { field: String, message: String },
    #[error("{message}")]
    Conflict { message: String },
    #[error("The request is too large.")]
    TooLarge,
    /// A tenant quota would be exceeded; `resource` names the limit.
    #[error("{message}")]
    QuotaExceeded { resource: String, message: String },
    #[error("{message}")]
    TooManyRequests { message: String, retry_after_secs: u64 },
    #[error("Something went wrong on our side. Please try again.")]
    Internal,
    #[error("Could not reach the server: {message}")]
    Transport { message: String },
}

impl AppError {
    /// A validation failure on one named input field.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.to_string(),
            message: message.into(),
        }
    }

    /// `what` (e.g. "Token") does not exist, or is not the caller's to see.
    pub fn not_found(what: &str) -> Self {
        Self::NotFound {
            message: format!("{what} not found."),
        }
    }

    /// The request clashes with the current state (a name taken, a rule about the caller's own account).
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::Conflict {
            message: message.into(),
        }
    }

    /// The stable name of the variant, the same as its JSON `kind` tag (styles, tests and API clients use it).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unauthenticated => "unauthenticated",
            Self::Forbidden => "forbidden",
            Self::NotFound { .. } => "not_found",
            Self::Invalid { .. } => "invalid",
            Self::Conflict { .. } => "conflict",
            Self::TooLarge => "too_large",
            Self::QuotaExceeded { .. } => "quota_exceeded",
            Self::TooManyRequests { .. } => "too_many_requests",
            Self::Internal => "internal",
            Self::Transport { .. } => "transport",
        }
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> u16 {
        match self {
            Self::Unauthenticated => 401,
            Self::Forbidden => 403,
            Self::NotFound { .. } => 404,
            Self::Invalid { .. } => 422,
            Self::Conflict { .. } => 409,
            Self::TooLarge => 413,
            // As OpenStack Nova answers "Quota exceeded for cores".
            Self::QuotaExceeded { .. } => 403,
            Self::TooManyRequests { .. } => 429,
            Self::Internal => 500,
            Self::Transport { .. } => 502,
        }
    }

    /// The input field this error is about, if any (forms highlight it).
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        match value {
            ServerFnErrorErr::Request(message) | ServerFnErrorErr::Response(message) => {
                Self::Transport { message }
            }
            // The server could not decode the arguments: the client's mistake, said per field if possible.
            ServerFnErrorErr::Args(msg) => crate::wire::args_error(&msg),
            ServerFnErrorErr::MissingArg(field) => crate::wire::missing_field(&field),
            // On the server, only reading the request body fails this way (its size limit or bad UTF-8).
            #[cfg(feature = "ssr")]
            ServerFnErrorErr::Deserialization(msg) => crate::wire::body_error(&msg),
            _ => Self::Internal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_round_trip_as_json_for_the_browser() {
        let err = AppError::invalid("name", "Name is required.");
        let bytes = err.ser();
        assert_eq!(AppError::de(bytes), err);
        assert_eq!(err.status(), 422);
        assert_eq!(err.to_string(), "Name is required.");
        let err = AppError::not_found("Token");
        assert_eq!(AppError::de(err.ser()), err);
        assert_eq!(err.to_string(), "Token not found.");
    }

    #[test]
    fn internal_errors_reveal_nothing() {
        assert_eq!(
            AppError::Internal.to_string(),
            "Something went wrong on our side. Please try again."
        );
    }
}
