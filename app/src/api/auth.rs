//! Signing in and out, the current user, and changing one's own password.

use leptos::prelude::*;

use crate::error::AppError;
use crate::model::Me;

#[server(prefix = "/api/fn", endpoint = "login")]
pub async fn login(username: String, password: String) -> Result<Me, AppError> {
    use crate::port::{portal, respond_with};
    let run = async {
        let (portal, parts) = portal()?;
        portal.login(&parts, username, password).await
    };
    respond_with(run.await)
}

#[server(prefix = "/api/fn", endpoint = "logout")]
pub async fn logout() -> Result<(), AppError> {
    use crate::port::{portal, respond_with};
    let run = async {
        let (portal, parts) = portal()?;
        portal.logout(&parts).await
    };
    respond_with(run.await)
}

/// The signed-in user, or `None` when nobody is signed in (not an error: the UI shows the sign-in page).
#[server(prefix = "/api/fn", endpoint = "me")]
pub async fn current_user() -> Result<Option<Me>, AppError> {
    use crate::port::{portal, respond_with};
    let run = async {
        let (portal, parts) = portal()?;
        match portal.session_caller(&parts).await {
            Ok(caller) => portal.me(&caller).await.map(Some),
            Err(AppError::Unauthenticated) => Ok(None),
            Err(err) => Err(err),
        }
    };
    respond_with(run.await)
}

#[server(prefix = "/api/fn", endpoint = "change_password")]
pub async fn change_password(
    current_password: String,
    new_password: String,
    confirm_password: String,
) -> Result<(), AppError> {
    crate::port::with_caller(|portal, caller, parts| async move {
        if new_password != confirm_password {
            return Err(AppError::invalid(
                "confirm_password",
                "The new passwords do not match.",
            ));
        }
        portal
            .change_password(&parts, &caller, current_password, new_password)
            .await
    })
    .await
}
