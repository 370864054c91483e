//! The admin side of the catalogue: flavors and images. The service refuses non-admins.

use leptos::prelude::*;

use crate::error::AppError;
use crate::model::FlavorView;

#[server(prefix = "/api/fn", endpoint = "create_flavor")]
pub async fn create_flavor(
    name: String,
    vcpus: String,
    memory_mib: String,
    disk_gib: String,
    hourly_price_minor: String,
) -> Result<FlavorView, AppError> {
    crate::port::with_caller(|portal, caller, _| async move {
        use crate::api::args::{count, whole_number};
        let flavor = crate::model::NewFlavor {
            name,
            vcpus: count("vcpus", &vcpus)?,
            memory_mib: count("memory_mib", &memory_mib)?,
            disk_gib: count("disk_gib", &disk_gib)?,
            hourly_price_minor: whole_number("hourly_price_minor", &hourly_price_minor)?,
        };
        portal.create_flavor(&caller, flavor).await
    })
    .await
}

#[server(prefix = "/api/fn", endpoint = "set_flavor_disabled")]
pub async fn set_flavor_disabled(id: String, disabled: String) -> Result<FlavorView, AppError> {
    crate::port::with_caller(|portal, caller, _| async move {
        let disabled = crate::api::args::flag("disabled", &disabled)?;
        portal.set_flavor_disabled(&caller, id, disabled).await
    })
    .await
}

#[server(prefix = "/api/fn", endpoint = "set_flavor_price")]
pub async fn set_flavor_price(id: String, hourly_price_minor: String) -> Result<FlavorView, AppError> {
    crate::port::with_caller(|portal, caller, _| async move {
        let price = crate::api::args::whole_number("hourly_price_minor", &hourly_price_minor)?;
        portal.set_flavor_price(&caller, id, price).await
    })
    .await
}

#[server(prefix = "/api/fn", endpoint = "delete_image")]
pub async fn delete_image(id: String) -> Result<(), AppError> {
    crate::port::with_caller(|portal, caller, _| async move { portal.delete_image(&caller, id).await }).await
}
