//! Signing in and out, resolving the caller of a request (session or bearer token), own password changes.
//! The one service file that sees the HTTP request (`Parts`): the `Accounts` port passes it, because the
//! session and the client's address live in its extensions.

use std::net::{IpAddr, SocketAddr};

use app::error::AppError;
use app::model::Me;
use app::port::{Accounts, Caller};
use async_trait::async_trait;
use axum::extract::ConnectInfo;
use http::request::Parts;

use super::{caller_of, internal, me_of, Service};
use crate::auth::password;
use crate::auth::secret::{self, API_TOKEN};
use crate::auth::session::{self, SessionAuth};
use crate::db::{self, users};
use crate::domain::NewPassword;

const BAD_CREDENTIALS: &str = "Invalid username or password.";

/// The peer address of the request (sign-in throttling and the audit entry), when served with connect info.
fn client_ip(req: &Parts) -> Option<IpAddr> {
    req.extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
}

impl Service {
    /// The caller behind an `Authorization: Bearer` token, or `Unauthenticated` (wrong, revoked, expired,
    /// or its user or tenant disabled).
    pub async fn bearer_caller(&self, secret: &str) -> Result<Caller, AppError> {
        if !API_TOKEN.looks_valid(secret) {
            return Err(AppError::Unauthenticated);
        }
        let now = db::now();
        let token = db::tokens::user_for_hash(self.pool(), &secret::hash(secret), now)
            .await
            .map_err(internal)?
            .ok_or(AppError::Unauthenticated)?;
        let user = users::by_id(self.pool(), &token.user_id)
            .await
            .map_err(internal)?;
        let user = user.filter(|u| u.is_active()).ok_or(AppError::Unauthenticated)?;
        db::tokens::touch(self.pool(), &token.id, now)
            .await
            .map_err(internal)?;
        Ok(caller_of(&user))
    }

    async fn active_user(&self, user_id: &str) -> Result<users::UserRow, AppError> {
        users::by_id(self.pool(), user_id)
            .await
            .map_err(internal)?
            .filter(|u| u.is_active())
            .ok_or(AppError::Unauthenticated)
    }
}

#[async_trait]
impl Accounts for Service {
    async fn login(&self, req: &Parts, username: String, password: String) -> Result<Me, AppError> {
        let session = session::of(req)?;
        let username = username.trim().to_lowercase();
        if username.is_empty() || password.is_empty() {
            return Err(AppError::invalid("username", "Enter your username and password."));
        }
        // Oversized input is refused before any hashing work.
        if username.len() > 64 || password.len() > 4 * NewPassword::MAX {
            return Err(AppError::invalid("password", BAD_CREDENTIALS));
        }
        if let Err(wait) = self.throttle().check(&username, client_ip(req)) {
            tracing::warn!(username, ?wait, "sign-in throttled");
            return Err(AppError::TooManyRequests {
                message: format!("Too many sign-in attempts. Try again in {wait} seconds."),
                retry_after_secs: wait,
            });
        }
        let user = users::by_username(self.pool(), &username)
            .await
            .map_err(internal)?;
        let stored = user
            .as_ref()
            .map_or_else(|| self.inner.dummy_hash.clone(), |u| u.password_hash.clone());
        let verified = password::verify(password, stored).await.map_err(internal)?;
        let user = match user {
            Some(user) if verified => user,
            _ => {
                tracing::info!(username, "sign-in refused: bad credentials");
                return Err(AppError::invalid("password", BAD_CREDENTIALS));
            }
        };
        if !user.is_active() {
            return Err(AppError::invalid(
                "username",
                "This account is disabled. Contact your administrator.",
            ));
        }
        session::start(
            &session,
            &SessionAuth {
                user_id: user.id.clone(),
                epoch: user.auth_epoch,
            },
        )
        .await?;
        tracing::info!(user_id = %user.id, tenant_id = %user.tenant_id, "signed in");
        let ip = client_ip(req).map(|ip| ip.to_string()).unwrap_or_default();
        self.audit(
            Some(&caller_of(&user)),
            "sign_in",
            &format!("user:{}", user.id),
            &format!("from {ip}"),
        )
        .await;
        Ok(me_of(&user))
    }

    async fn logout(&self, req: &Parts) -> Result<(), AppError> {
        session::end(&session::of(req)?).await
    }

    async fn session_caller(&self, req: &Parts) -> Result<Caller, AppError> {
        let session = session::of(req)?;
        let auth = session::get(&session).await?.ok_or(AppError::Unauthenticated)?;
        let user = users::by_id(self.pool(), &auth.user_id).await.map_err(internal)?;
        match user {
            Some(user) if user.is_active() && user.auth_epoch == auth.epoch => Ok(caller_of(&user)),
            _ => {
                session::end(&session).await?;
                Err(AppError::Unauthenticated)
            }
        }
    }

    async fn me(&self, caller: &Caller) -> Result<Me, AppError> {
        Ok(me_of(&self.active_user(&caller.user_id).await?))
    }

    async fn change_password(
        &self,
        req: &Parts,
        caller: &Caller,
        current: String,
        new: String,
    ) -> Result<(), AppError> {
        let new = NewPassword::parse("new_password", new)?;
        let user = self.active_user(&caller.user_id).await?;
        if current.len() > 4 * NewPassword::MAX
            || !password::verify(current, user.password_hash.clone())
                .await
                .map_err(internal)?
        {
            return Err(AppError::invalid(
                "current_password",
                "The current password is not correct.",
            ));
        }
        let hash = password::hash(new.expose().to_string()).await.map_err(internal)?;
        let epoch = users::set_password(self.pool(), &user.id, &hash, db::now())
            .await
            .map_err(internal)?
            .ok_or(AppError::Unauthenticated)?;
        // Other sessions carry the old epoch and end; this one stays signed in.
        session::update(
            &session::of(req)?,
            &SessionAuth {
                user_id: user.id.clone(),
                epoch,
            },
        )
        .await?;
        tracing::info!(user_id = %user.id, "password changed");
        Ok(())
    }
}
