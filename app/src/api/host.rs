//! The host page's server function (admins only; checked in the service).

use leptos::prelude::*;

use crate::error::AppError;
use crate::model::HostView;

#[server(prefix = "/api/fn", endpoint = "get_host")]
pub async fn get_host() -> Result<HostView, AppError> {
    crate::port::with_caller(|portal, caller, _| async move { portal.host_view(&caller).await }).await
}
