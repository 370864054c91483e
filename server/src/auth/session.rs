//! What the portal keeps in a tower-sessions session: the signed-in user and the auth epoch at sign-in.
//! A session whose epoch no longer matches the user's (password changed or reset, user disabled) is dead.
//!
//! Idle expiry: tower-sessions' `Expiry::OnInactivity` moves the stored expiry (and the cookie's Max-Age)
//! only when the session is saved, and it is saved only when modified. So a request that changes nothing
//! writes nothing, and `keep_alive` modifies the session (one write, one fresh cookie) at most once per
//! refresh interval. The stored expiry is then at most `idle` after the last request and at least
//! `idle - refresh` after it: a session never outlives its idle time, it may end up to one interval early.

use app::error::AppError;
use http::request::Parts;
use serde::{Deserialize, Serialize};
use tower_sessions::Session;

const AUTH_KEY: &str = "auth";
/// When the session's expiry was last pushed forward (unix seconds).
const REFRESHED_KEY: &str = "refreshed_at";

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
    session.insert(AUTH_KEY, auth).await.map_err(store_error)?;
    session
        .insert(REFRESHED_KEY, crate::db::now())
        .await
        .map_err(store_error)
}

/// Pushes a live session's idle expiry forward if it was last pushed `refresh_secs` or more before `now`
/// (the session is then saved when the response leaves); otherwise leaves it untouched, so the request
/// writes nothing.
pub async fn keep_alive(session: &Session, refresh_secs: i64, now: i64) -> Result<(), AppError> {
    let refreshed = session
        .get::<i64>(REFRESHED_KEY)
        .await
        .map_err(store_error)?
        .unwrap_or(i64::MIN);
    // Either way: a clock set back refreshes too (harmless), rather than never.
    if now.abs_diff(refreshed) >= refresh_secs.unsigned_abs() {
        session.insert(REFRESHED_KEY, now).await.map_err(store_error)?;
    }
    Ok(())
}

/// Replaces the stored epoch (after the user changed their own password, this session stays valid).
pub async fn update(session: &Session, auth: &SessionAuth) -> Result<(), AppError> {
    session.insert(AUTH_KEY, auth).await.map_err(store_error)
}

pub async fn end(session: &Session) -> Result<(), AppError> {
    session.flush().await.map_err(store_error)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tower_sessions::{Expiry, MemoryStore};

    use super::*;

    const IDLE: Option<Expiry> = Some(Expiry::OnInactivity(time::Duration::minutes(60)));

    /// The session of a later request, on a record whose expiry was last pushed at `refreshed_at`.
    async fn next_request(refreshed_at: i64) -> Session {
        let store = Arc::new(MemoryStore::default());
        let first = Session::new(None, store.clone(), IDLE);
        first.insert(REFRESHED_KEY, refreshed_at).await.expect("insert");
        first.save().await.expect("save");
        let id = first.id().expect("saved id");
        Session::new(Some(id), store, IDLE)
    }

    #[tokio::test]
    async fn a_request_within_the_interval_leaves_the_session_unmodified() {
        let session = next_request(1_000).await;
        keep_alive(&session, 60, 1_059).await.expect("keep alive");
        assert_eq!(session.get::<i64>(REFRESHED_KEY).await.expect("get"), Some(1_000));
        assert!(!session.is_modified(), "nothing to save, no write");
    }

    #[tokio::test]
    async fn a_request_after_the_interval_marks_the_session_for_saving() {
        let session = next_request(1_000).await;
        keep_alive(&session, 60, 1_060).await.expect("keep alive");
        assert_eq!(session.get::<i64>(REFRESHED_KEY).await.expect("get"), Some(1_060));
        assert!(
            session.is_modified(),
            "saved when the response leaves: new expiry, new cookie"
        );
    }

    #[tokio::test]
    async fn a_session_from_before_the_marker_existed_is_refreshed() {
        let store = Arc::new(MemoryStore::default());
        let first = Session::new(None, store.clone(), IDLE);
        first.insert(AUTH_KEY, "x").await.expect("insert");
        first.save().await.expect("save");
        let session = Session::new(first.id(), store, IDLE);
        keep_alive(&session, 60, 1_000).await.expect("keep alive");
        assert!(session.is_modified());
    }
}
