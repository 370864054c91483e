//! Personal API tokens: list, create (the secret is shown once), revoke.

use leptos::prelude::*;

use crate::error::AppError;
use crate::model::{NewToken, TokenView};

#[server(prefix = "/api/fn", endpoint = "list_tokens")]
pub async fn list_tokens() -> Result<Vec<TokenView>, AppError> {
    crate::port::with_caller(|portal, caller, _| async move { portal.list_tokens(&caller).await }).await
}

/// `expires_in_days`: empty for a token that does not expire.
#[server(prefix = "/api/fn", endpoint = "create_token")]
pub async fn create_token(name: String, expires_in_days: String) -> Result<NewToken, AppError> {
    crate::port::with_caller(|portal, caller, _| async move {
        let expires = match expires_in_days.trim() {
            "" => None,
            days => Some(days.parse::<u32>().map_err(|_| {
                AppError::invalid("expires_in_days", "Expiry must be 1 to 3650 days, or empty.")
            })?),
        };
        portal.create_token(&caller, name, expires).await
    })
    .await
}

#[server(prefix = "/api/fn", endpoint = "revoke_token")]
pub async fn revoke_token(id: String) -> Result<(), AppError> {
    crate::port::with_caller(|portal, caller, _| async move { portal.revoke_token(&caller, id).await }).await
}
