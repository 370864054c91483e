//! What the portal keeps in a tower-sessions session: the signed-in user and the auth epoch at sign-in.
//! A session whose epoch no longer matches the user's (password changed or reset, user disabled) is dead.

use app::error::AppError;
use http::request::Parts;
use serde::{Deserialize, Serialize};
use tower_sessions::Session;

const AUTH_KEY: &str = "auth";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionAuth {
    pub user_id: String,
    pub epoch: i64,
}

/// The session of a request (put there by `SessionManagerLayer`).
pub fn of(req: &Parts) -> Result<Session, AppError> {
    req.extensions.get::<Session>().cloned().ok_or_else(|| {
        tracing::error!("request has no session: SessionManagerLayer missing");
        AppError::Internal
    })
}

fn store_error(err: tower_sessions::session::Error) -> AppError {
    tracing::error!(error = %err, "session store failed");
    AppError::Internal
}

pub async fn get(session: &Session) -> Result<Option<SessionAuth>, AppError> {
    session.get::<SessionAuth>(AUTH_KEY).await.map_err(store_error)
}

/// Starts an authenticated session under a fresh id (prevents session fixation).
pub async fn start(session: &Session, auth: &SessionAuth) -> Result<(), AppError> {
    session.cycle_id().await.map_err(store_error)?;
    session.insert(AUTH_KEY, auth).await.map_err(store_error)
}

/// Replaces the stored epoch (after the user changed their own password, this session stays valid).
pub async fn update(session: &Session, auth: &SessionAuth) -> Result<(), AppError> {
    session.insert(AUTH_KEY, auth).await.map_err(store_error)
}

pub async fn end(session: &Session) -> Result<(), AppError> {
    session.flush().await.map_err(store_error)
}
