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

use super::{caller_of, internal, me_of, Revoked, Service};
use crate::auth::password;
use crate::auth::request_caller::RequestCaller;
use crate::auth::secret::{self, API_TOKEN};
use crate::auth::session::{self, SessionAuth};
use crate::auth::throttle::Verdict;
use crate::db::{self, users};
use crate::domain::NewPassword;
use crate::middleware::client_addr::ClientAddr;

const BAD_CREDENTIALS: &str = "Invalid username or password.";

/// The client's address (sign-in throttling and the audit entry): the trusted proxy's word or the peer's.
fn client_ip(req: &Parts) -> Option<IpAddr> {
    req.extensions
        .get::<ClientAddr>()
        .map(|ClientAddr(ip)| *ip)
        .or_else(|| {
            req.extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| addr.ip())
        })
}

/// Asks the throttle about a password attempt on `account`: refused (429), or allowed after its delay.
async fn throttled(service: &Service, account: &str, req: &Parts, what: &str) -> Result<(), AppError> {
    match service.throttle().check(account, client_ip(req)) {
        Verdict::Refuse(wait) => {
            tracing::warn!(account, wait, what, "password attempt throttled");
            Err(AppError::TooManyRequests {
                message: format!("Too many {what} attempts. Try again in {wait} seconds."),
                retry_after_secs: wait,
            })
        }
        Verdict::Proceed(delay) => {
            if !delay.is_zero() {
                tracing::info!(
                    account,
                    ?delay,
                    what,
                    "password attempt slowed: the account is being guessed at"
                );
                tokio::time::sleep(delay).await;
            }
            Ok(())
        }
    }
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
        Ok(Caller {
            token_id: Some(token.id),
            ..caller_of(&user)
        })
    }

    /// Whether `caller` may still act: the user (and tenant) active and, for a token, the token live.
    pub(crate) async fn check_access(&self, caller: &Caller) -> Result<(), AppError> {
        self.active_user(&caller.user_id).await?;
        if let Some(token_id) = &caller.token_id {
            if !db::tokens::is_live(self.pool(), token_id, db::now())
                .await
                .map_err(internal)?
            {
                return Err(AppError::Unauthenticated);
            }
        }
        Ok(())
    }

    /// The signed-in user behind the request's session cookie; a session whose user is gone, disabled or
    /// on another auth epoch is ended. A live one has its idle expiry kept up (`session::keep_alive`).
    async fn resolve_session_caller(&self, req: &Parts) -> Result<Caller, AppError> {
        let session = session::of(req)?;
        let auth = session::get(&session).await?.ok_or(AppError::Unauthenticated)?;
        let user = users::by_id(self.pool(), &auth.user_id).await.map_err(internal)?;
        match user {
            Some(user) if user.is_active() && user.auth_epoch == auth.epoch => {
                session::keep_alive(&session, self.inner.session_refresh_secs, db::now()).await?;
                Ok(caller_of(&user))
            }
            _ => {
                session::end(&session).await?;
                Err(AppError::Unauthenticated)
            }
        }
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
        throttled(self, &username, req, "sign-in").await?;
        let user = users::by_username(self.pool(), &username)
            .await
            .map_err(internal)?;
        let stored = user
            .as_ref()
            .map_or_else(|| self.inner.dummy_hash.clone(), |u| u.password_hash.clone());
        let verified = password::verify(password, stored).await.map_err(internal)?;
        let user = match user {
            Some(user) if verified => user,
            other => {
                tracing::info!(username, "sign-in refused: bad credentials");
                self.throttle().failed(&username);
                let ip = client_ip(req).map(|ip| ip.to_string()).unwrap_or_default();
                let known = other.as_ref().map(|u| (u.id.as_str(), u.tenant_id.as_str()));
                self.audit_failed_sign_in(&username, known, &ip).await;
                return Err(AppError::invalid("password", BAD_CREDENTIALS));
            }
        };
        self.throttle().succeeded(&username);
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
        match RequestCaller::of(req) {
            Some(once) => once.get_or_resolve(|| self.resolve_session_caller(req)).await,
            None => self.resolve_session_caller(req).await,
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
        throttled(self, &user.username, req, "password change").await?;
        if current.len() > 4 * NewPassword::MAX
            || !password::verify(current, user.password_hash.clone())
                .await
                .map_err(internal)?
        {
            self.throttle().failed(&user.username);
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
        self.broadcast_revocation(
            Revoked::User(user.id.clone()),
            "Your password was changed. Open the console again.",
        );
        tracing::info!(user_id = %user.id, "password changed");
        Ok(())
    }
}
