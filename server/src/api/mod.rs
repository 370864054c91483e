//! REST API `/api/v1`: bearer-token authenticated, JSON in and out, errors as
//! `{"error": {"kind", "message", "field"?}}`. Handlers are thin: they call the same services as the UI.
//! The OpenAPI document is served at `/api/v1/openapi.json`.

mod accounts;
mod admin;
mod billing;
mod catalogue;
mod console;
mod error;
mod events;
mod extract;
mod inputs;
mod networks;
mod openapi;
mod schema;
mod vms;

use axum::Router;

pub use error::{ApiError, ErrorEnvelope};
pub use extract::{AnyCaller, ApiCaller};
pub use inputs::{ApiJson, ApiMultipart, ApiPath, ApiQuery};
pub use openapi::ApiDoc;

use crate::state::AppState;

}
