//! Personal API tokens, always scoped to the calling user and tenant.

use app::error::AppError;
use app::model::{NewToken, TokenView};
use app::port::{ApiTokens, Caller};
use async_trait::async_trait;

use super::{internal, Revoked, Service};
use crate::auth::secret::API_TOKEN;
use crate::db::{self, format_time};
use crate::domain::{parse_id, Label};

/// A user may hold this many live tokens.
const MAX_TOKENS_PER_USER: usize = 50;

fn view(row: &db::tokens::TokenRow) -> TokenView {
    TokenView {
        id: row.id.clone(),
        name: row.name.clone(),
        prefix: row.prefix.clone(),
        created_at: format_time(row.created_at),
        last_used_at: row.last_used_at.map(format_time),
        expires_at: row.expires_at.map(format_time),
    }
}

impl Service {
    /// A user's live tokens.
    pub(crate) async fn tokens_of(&self, user_id: &str, tenant_id: &str) -> Result<Vec<TokenView>, AppError> {
        let rows = db::tokens::list_for_user(self.pool(), user_id, tenant_id)
            .await
            .map_err(internal)?;
        Ok(rows.iter().map(view).collect())
    }

    /// Revokes one of a user's tokens and closes what it opened; returns the token's id.
    pub(crate) async fn revoke_token_of(
        &self,
        user_id: &str,
        tenant_id: &str,
        token_id: &str,
    ) -> Result<String, AppError> {
        let id = parse_id("Token", token_id)?;
        if !db::tokens::revoke(self.pool(), &id, user_id, tenant_id, db::now())
            .await
            .map_err(internal)?
        {
            return Err(AppError::not_found("Token"));
        }
        self.broadcast_revocation(
            Revoked::Token(id.clone()),
            "The API token this was opened with was revoked.",
        );
        tracing::info!(user_id, token_id = %id, "API token revoked");
        Ok(id)
    }
}

#[async_trait]
impl ApiTokens for Service {
    async fn list_tokens(&self, caller: &Caller) -> Result<Vec<TokenView>, AppError> {
        self.tokens_of(&caller.user_id, &caller.tenant_id).await
    }

    async fn create_token(
        &self,
        caller: &Caller,
        name: String,
        expires_in_days: Option<u32>,
    ) -> Result<NewToken, AppError> {
        let name = Label::parse("name", "Token name", &name, 1, 64)?;
        if let Some(days) = expires_in_days {
            if !(1..=3650).contains(&days) {
                return Err(AppError::invalid(
                    "expires_in_days",
                    "Expiry must be 1 to 3650 days, or empty.",
                ));
            }
        }
        let existing = db::tokens::list_for_user(self.pool(), &caller.user_id, &caller.tenant_id)
            .await
            .map_err(internal)?;
        if existing.len() >= MAX_TOKENS_PER_USER {
            return Err(AppError::conflict(format!(
                "You already have {MAX_TOKENS_PER_USER} tokens. Revoke one before creating another."
            )));
        }
        let minted = API_TOKEN.mint();
        let shown = minted.shown();
        let now = db::now();
        let id = uuid::Uuid::new_v4().to_string();
        let row = db::tokens::NewTokenRow {
            id: &id,
            user_id: &caller.user_id,
            tenant_id: &caller.tenant_id,
            name: name.as_str(),
            prefix: &shown,
            token_hash: &minted.hash,
            now,
            expires_at: expires_in_days.map(|d| now + i64::from(d) * 86_400),
        };
        db::tokens::insert(self.pool(), row).await.map_err(internal)?;
        tracing::info!(user_id = %caller.user_id, token_id = %id, "API token created");
        self.audit(
            Some(caller),
            "token_create",
            &format!("token:{id}"),
            &format!("name={}", name.as_str()),
        )
        .await;
        let token = TokenView {
            id,
            name: name.into_string(),
            prefix: shown,
            created_at: format_time(now),
            last_used_at: None,
            expires_at: expires_in_days.map(|d| format_time(now + i64::from(d) * 86_400)),
        };
        Ok(NewToken {
            token,
            secret: minted.secret,
        })
    }

    async fn revoke_token(&self, caller: &Caller, token_id: String) -> Result<(), AppError> {
        let id = self
            .revoke_token_of(&caller.user_id, &caller.tenant_id, &token_id)
            .await?;
        self.audit(Some(caller), "token_revoke", &format!("token:{id}"), "")
            .await;
        Ok(())
    }
}
