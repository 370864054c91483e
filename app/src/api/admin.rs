//! The admin area: tenants and users. Every body checks the caller is an admin (in the service).

use leptos::prelude::*;

use crate::error::AppError;
use crate::model::{TenantView, TokenView, UserView};

#[server(prefix = "/api/fn", endpoint = "list_tenants")]
pub async fn list_tenants() -> Result<Vec<TenantView>, AppError> {
    crate::port::with_caller(|portal, caller, _| async move { portal.list_tenants(&caller).await }).await
}

#[server(prefix = "/api/fn", endpoint = "create_tenant")]
pub async fn create_tenant(name: String, description: String) -> Result<TenantView, AppError> {
    crate::port::with_caller(|portal, caller, _| async move {
        portal.create_tenant(&caller, name, description).await
    })
    .await
}

#[server(prefix = "/api/fn", endpoint = "set_tenant_disabled")]
pub async fn set_tenant_disabled(id: String, disabled: String) -> Result<TenantView, AppError> {
    crate::port::with_caller(|portal, caller, _| async move {
        let disabled = crate::api::args::flag("disabled", &disabled)?;
        portal.set_tenant_disabled(&caller, id, disabled).await
    })
    .await
}

#[server(prefix = "/api/fn", endpoint = "list_users")]
pub async fn list_users() -> Result<Vec<UserView>, AppError> {
    crate::port::with_caller(|portal, caller, _| async move { portal.list_users(&caller).await }).await
}

#[server(prefix = "/api/fn", endpoint = "create_user")]
pub async fn create_user(
    tenant_id: String,
    username: String,
    display_name: String,
    role: String,
    password: String,
) -> Result<UserView, AppError> {
    crate::port::with_caller(|portal, caller, _| async move {
        use crate::model::{NewUser, Role};
        let role =
            Role::parse(&role).ok_or_else(|| AppError::invalid("role", "Role must be admin or member."))?;
        let user = NewUser {
            tenant_id,
            username,
            display_name,
            role,
            password,
        };
        portal.create_user(&caller, user).await
    })
    .await
}

#[server(prefix = "/api/fn", endpoint = "set_user_disabled")]
pub async fn set_user_disabled(id: String, disabled: String) -> Result<UserView, AppError> {
    crate::port::with_caller(|portal, caller, _| async move {
        let disabled = crate::api::args::flag("disabled", &disabled)?;
        portal.set_user_disabled(&caller, id, disabled).await
    })
    .await
}

#[server(prefix = "/api/fn", endpoint = "reset_password")]
pub async fn reset_password(id: String, password: String) -> Result<(), AppError> {
    crate::port::with_caller(
        |portal, caller, _| async move { portal.reset_password(&caller, id, password).await },
    )
    .await
}

#[server(prefix = "/api/fn", endpoint = "list_user_tokens")]
pub async fn list_user_tokens(user_id: String) -> Result<Vec<TokenView>, AppError> {
    crate::port::with_caller(
        |portal, caller, _| async move { portal.list_user_tokens(&caller, user_id).await },
    )
    .await
}

#[server(prefix = "/api/fn", endpoint = "revoke_user_token")]
pub async fn revoke_user_token(user_id: String, token_id: String) -> Result<(), AppError> {
    crate::port::with_caller(|portal, caller, _| async move {
        portal.revoke_user_token(&caller, user_id, token_id).await
    })
    .await
}
