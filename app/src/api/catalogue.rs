//! The admin side of the catalogue: flavors and images. The service refuses non-admins.

use leptos::prelude::*;

use crate::error::AppError;
use crate::model::FlavorView;

#[server(prefix = "/api/fn", endpoint = "create_flavor")]
pub async fn create_flavor(
    name: String,
    vcpus: u32,
    memory_mib: u32,
    disk_gib: u32,
    hourly_price_minor: i64,
) -> Result<FlavorView, AppError> {
    crate::port::with_caller(|portal, caller, _| async move {
        let flavor = crate::model::NewFlavor {
            name,
            vcpus,
            memory_mib,
            disk_gib,
            hourly_price_minor,
        };
        portal.create_flavor(&caller, flavor).await
    })
    .await
}

#[server(prefix = "/api/fn", endpoint = "set_flavor_disabled")]
pub async fn set_flavor_disabled(id: String, disabled: bool) -> Result<FlavorView, AppError> {
    crate::port::with_caller(|portal, caller, _| async move {
        portal.set_flavor_disabled(&caller, id, disabled).await
    })
    .await
}

#[server(prefix = "/api/fn", endpoint = "delete_image")]
pub async fn delete_image(id: String) -> Result<(), AppError> {
    crate::port::with_caller(|portal, caller, _| async move { portal.delete_image(&caller, id).await }).await
}
