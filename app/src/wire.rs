//! The JSON shape of an `AppError` on the wire, the one error envelope of server functions and the REST API:
//! `{"error": {"kind", "message", "field"?, "resource"?, "retry_after_secs"?}}`; and the turning of argument
//! decoding failures into errors a person can act on.

use serde::{Deserialize, Serialize};

use crate::error::AppError;

/// `{"error": {...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ssr", schema(as = Error))]
pub struct Envelope {
    pub error: Detail,
}

/// What went wrong, for people (`message`) and programs (`kind`, `field`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "ssr", schema(as = ErrorDetail))]
pub struct Detail {
    /// Stable name clients branch on: `unauthenticated`, `forbidden`, `not_found`, `invalid`, `conflict`,
    /// `too_large`, `quota_exceeded`, `too_many_requests`, `internal`, ...
    pub kind: String,
    /// A sentence to show the user.
    pub message: String,
    /// The input field the error is about (`invalid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The exceeded limit (`quota_exceeded`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Seconds to wait before trying again (`too_many_requests`; also the `Retry-After` header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_secs: Option<u64>,
}

impl From<AppError> for Envelope {
    fn from(err: AppError) -> Self {
        let mut detail = Detail {
            kind: err.kind().to_string(),
            message: err.to_string(),
            field: None,
            resource: None,
            retry_after_secs: None,
        };
        match err {
            AppError::Invalid { field, .. } => detail.field = Some(field),
            AppError::QuotaExceeded { resource, .. } => detail.resource = Some(resource),
            AppError::TooManyRequests { retry_after_secs, .. } => {
                detail.retry_after_secs = Some(retry_after_secs)
            }
            _ => {}
        }
        Self { error: detail }
    }
}

impl From<Envelope> for AppError {
    fn from(Envelope { error: d }: Envelope) -> Self {
        match d.kind.as_str() {
            "unauthenticated" => Self::Unauthenticated,
            "forbidden" => Self::Forbidden,
            "not_found" => Self::NotFound { message: d.message },
            "invalid" => Self::Invalid {
                field: d.field.unwrap_or_default(),
                message: d.message,
            },
            "conflict" => Self::Conflict { message: d.message },
            "too_large" => Self::TooLarge,
            "quota_exceeded" => Self::QuotaExceeded {
                resource: d.resource.unwrap_or_default(),
                message: d.message,
            },
            "too_many_requests" => Self::TooManyRequests {
                message: d.message,
                retry_after_secs: d.retry_after_secs.unwrap_or(1),
            },
            "transport" => Self::Transport {
                message: d
                    .message
                    .trim_start_matches("Could not reach the server: ")
                    .to_string(),
            },
            _ => Self::Internal,
        }
    }
}

/// `snake_case_name` → "Snake case name".
pub fn label(field: &str) -> String {
    let words = field.replace('_', " ");
    let mut chars = words.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// A required argument was not sent.
pub fn missing_field(field: &str) -> AppError {
    AppError::invalid(field, format!("{} is required.", label(field)))
}

/// The server could not decode a server function's arguments (`serde_qs` / `serde_json` message).
pub fn args_error(message: &str) -> AppError {
    if let Some(field) = message
        .split_once("missing field `")
        .and_then(|(_, rest)| rest.split_once('`'))
        .map(|(field, _)| field)
    {
        return missing_field(field);
    }
    AppError::invalid(
        "form",
        format!("The form could not be read ({message}). Reload the page and try again."),
    )
}

/// Reading a request body failed on the server: over its size limit, or not text.
pub fn body_error(message: &str) -> AppError {
    if message.contains("length limit exceeded") {
        AppError::TooLarge
    } else {
        AppError::invalid(
            "body",
            "The request body could not be read: send it as UTF-8 form data.",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_has_the_envelope_shape_and_round_trips() {
        let errors = [
            AppError::Unauthenticated,
            AppError::Forbidden,
            AppError::not_found("VM"),
            AppError::invalid("name", "Name is required."),
            AppError::conflict("Taken."),
            AppError::TooLarge,
            AppError::QuotaExceeded {
                resource: "vcpus".into(),
                message: "vCPUs quota exceeded.".into(),
            },
            AppError::TooManyRequests {
                message: "Wait.".into(),
                retry_after_secs: 7,
            },
            AppError::Internal,
            AppError::Transport {
                message: "offline".into(),
            },
        ];
        for err in errors {
            let json = serde_json::to_value(&err).unwrap();
            assert_eq!(json["error"]["kind"], err.kind(), "{json}");
            assert_eq!(json["error"]["message"], err.to_string(), "{json}");
            assert_eq!(serde_json::from_value::<AppError>(json).unwrap(), err);
        }
        let json = serde_json::to_value(AppError::invalid("name", "Bad.")).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"error": {"kind": "invalid", "message": "Bad.", "field": "name"}})
        );
    }

    #[test]
    fn argument_failures_name_the_missing_field() {
        assert_eq!(
            args_error("missing field `password`"),
            AppError::invalid("password", "Password is required.")
        );
        assert_eq!(args_error("nonsense").field(), Some("form"));
        assert_eq!(body_error("length limit exceeded"), AppError::TooLarge);
    }
}
