//! Request inputs of the REST API — JSON bodies, query strings, path segments and multipart forms — whose
//! rejections are the JSON error envelope with the offending field and a sentence a person can act on,
//! instead of axum's plain-text rejections.

use app::error::AppError;
use app::wire::missing_field;
use axum::body::Bytes;
use axum::extract::multipart::MultipartRejection;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Multipart, Path, Request};
use http::header::CONTENT_TYPE;
use http::request::Parts;
use http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

use super::ApiError;

/// Whether the request says its body is JSON (`application/json`, `application/*+json`).
fn is_json(headers: &HeaderMap) -> bool {
    let Some(mime) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = mime
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// A serde message made readable: Rust type names become words, the position suffix goes.
fn readable(message: &str) -> String {
    let message = message.split(" at line ").next().unwrap_or(message);
    message
        .replace("expected i64", "expected a whole number")
        .replace("expected u64", "expected a whole number from 0 up")
        .replace("expected u32", "expected a whole number from 0 to 4294967295")
}

/// A decoding failure of a body or query at `path` (`.` for the whole document).
pub(crate) fn data_error(path: &str, message: &str, whole: &str) -> AppError {
    if let Some(field) = message
        .split_once("missing field `")
        .and_then(|(_, rest)| rest.split_once('`'))
        .map(|(field, _)| field)
    {
        let full = if path == "." {
            field.to_string()
        } else {
            format!("{path}.{field}")
        };
        return missing_field(&full);
    }
    if let Some(field) = message
        .split_once("unknown field `")
        .and_then(|(_, rest)| rest.split_once('`'))
        .map(|(field, _)| field)
    {
        return AppError::invalid(field, format!("Unknown field {field}: {}.", readable(message)));
    }
    if path == "." {
        return AppError::invalid(whole, format!("The {whole} is not valid: {}.", readable(message)));
    }
    AppError::invalid(
        path,
        format!("{}: {}.", app::wire::label(path), readable(message)),
    )
}

/// `axum::Json`'s job, with every refusal as an `ApiError` naming the field.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError(AppError::invalid(
                "body",
                "Send the body as JSON (Content-Type: application/json).",
            )));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(body_rejection)?;
        let mut json: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
            ApiError(AppError::invalid(
                "body",
                format!("The body is not valid JSON: {e}."),
            ))
        })?;
        whole_numbers(&mut json);
        serde_path_to_error::deserialize(json)
            .map(Self)
            .map_err(|e| ApiError(data_error(&e.path().to_string(), &e.inner().to_string(), "body")))
    }
}

/// JSON Schema counts `2.0` as an integer: numbers without a fraction become integers, so integer fields
/// accept them (`1e99` stays a float and is refused as out of range).
fn whole_numbers(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|f| n.is_f64() && f.fract() == 0.0) {
                // Exactly representable range of f64 integers, well inside i64.
                if f.abs() < 9_007_199_254_740_992.0 {
                    *value = Value::from(f as i64);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(whole_numbers),
        Value::Object(map) => map.values_mut().for_each(whole_numbers),
        _ => {}
    }
}

/// A body that could not be read: over the limit (413), or broken off.
pub(crate) fn body_rejection(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError(AppError::TooLarge)
    } else {
        ApiError(AppError::invalid("body", "The request body could not be read."))
    }
}

/// `axum::extract::Query`'s job, with refusals naming the parameter.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(Self)
            .map_err(|e| ApiError(data_error(&e.path().to_string(), &e.inner().to_string(), "query")))
    }
}

/// A path segment (an id), refused as not found when it is not even text.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| Self(v))
            .map_err(|e: PathRejection| {
                tracing::debug!(rejection = %e.body_text(), "path refused");
                ApiError(AppError::not_found("Resource"))
            })
    }
}

/// `axum::extract::Multipart`, with a non-multipart request refused in the envelope.
pub struct ApiMultipart(pub Multipart);

impl<S: Send + Sync> FromRequest<S> for ApiMultipart {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Multipart::from_request(req, state)
            .await
            .map(Self)
            .map_err(|_: MultipartRejection| {
                ApiError(AppError::invalid(
                    "body",
                    "Send the upload as multipart/form-data.",
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_failures_name_the_field_in_words() {
        let err = data_error(
            "instances",
            "invalid type: floating point `1e99`, expected i64 at line 1 column 17",
            "body",
        );
        assert_eq!(err.field(), Some("instances"));
        assert_eq!(
            err.to_string(),
            "Instances: invalid type: floating point `1e99`, expected a whole number."
        );
        let err = data_error(".", "missing field `password`", "body");
        assert_eq!(err, AppError::invalid("password", "Password is required."));
        let err = data_error(".", "unknown field `x`, expected `name`", "body");
        assert_eq!(err.field(), Some("x"));
        let err = data_error(".", "invalid type: sequence, expected struct X", "body");
        assert_eq!(err.field(), Some("body"));
    }

    #[test]
    fn whole_floats_count_as_integers_as_json_schema_says() {
        let mut v = serde_json::json!({"a": 2111.0, "b": [1.5, 1e99, -3.0], "c": 7});
        whole_numbers(&mut v);
        assert_eq!(v, serde_json::json!({"a": 2111, "b": [1.5, 1e99, -3], "c": 7}));
    }

    #[test]
    fn json_content_types_are_recognised() {
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(CONTENT_TYPE, http::HeaderValue::from_static(v));
            is_json(&h)
        };
        assert!(with("application/json"));
        assert!(with("application/json; charset=utf-8"));
        assert!(with("application/merge-patch+json"));
        assert!(!with("text/plain"));
        assert!(!is_json(&HeaderMap::new()));
    }
}
