//! Flavors and images. Everyone lists what they may launch; only admins change the catalogue.

use app::error::AppError;
use app::model::{FlavorView, ImageView, NewFlavor};
use app::port::{Caller, Catalogue};
use async_trait::async_trait;
use vmm_api::config::{MAX_MEMORY_MIB, MAX_VCPUS, MIN_MEMORY_MIB, MIN_VCPUS};

use super::{internal, Service};
use crate::db::{self, flavors, format_time, images};
use crate::domain::{parse_id, FlavorName};

pub(crate) fn flavor_view(row: &flavors::FlavorRow) -> FlavorView {
    FlavorView {
        id: row.id.clone(),
        name: row.name.clone(),
        vcpus: u32::try_from(row.vcpus).unwrap_or(0),
        memory_mib: u32::try_from(row.memory_mib).unwrap_or(0),
        disk_gib: u32::try_from(row.disk_gib).unwrap_or(0),
        hourly_price_minor: row.hourly_price_minor,
        disabled: row.disabled,
    }
}

pub(crate) fn image_view(row: &images::ImageRow) -> ImageView {
    ImageView {
        id: row.id.clone(),
        name: row.name.clone(),
        os: row.os.clone(),
        cmdline: row.cmdline.clone(),
        has_root_disk: row.root_disk_path.is_some(),
        owner_tenant_id: row.owner_tenant_id.clone(),
        is_test: row.is_test,
        size_bytes: row.size_bytes,
        created_at: format_time(row.created_at),
    }
}

/// Checks a new flavor against the VMM's limits.
fn validate_flavor(f: &NewFlavor) -> Result<FlavorName, AppError> {
    let name = FlavorName::parse(&f.name)?;
    if !(u32::from(MIN_VCPUS)..=u32::from(MAX_VCPUS)).contains(&f.vcpus) {
        return Err(AppError::invalid(
            "vcpus",
            format!("vCPUs must be between {MIN_VCPUS} and {MAX_VCPUS}."),
        ));
    }
    if !(MIN_MEMORY_MIB..=MAX_MEMORY_MIB).contains(&u64::from(f.memory_mib)) {
        return Err(AppError::invalid(
            "memory_mib",
            format!("Memory must be between {MIN_MEMORY_MIB} and {MAX_MEMORY_MIB} MiB."),
        ));
    }
    if !(1..=2048).contains(&f.disk_gib) {
        return Err(AppError::invalid(
            "disk_gib",
            "Disk must be between 1 and 2048 GiB.",
        ));
    }
    check_price(f.hourly_price_minor)?;
    Ok(name)
}

fn check_price(hourly_price_minor: i64) -> Result<(), AppError> {
    if !(0..=100_000_000).contains(&hourly_price_minor) {
        return Err(AppError::invalid(
            "hourly_price_minor",
            "The hourly price must be between 0 and 100000000 minor units.",
        ));
    }
    Ok(())
}

impl Service {
    pub(crate) async fn flavor(&self, id: &str) -> Result<flavors::FlavorRow, AppError> {
        let id = parse_id("Flavor", id)?;
        flavors::get(self.pool(), &id)
            .await
            .map_err(internal)?
            .ok_or_else(|| AppError::not_found("Flavor"))
    }

    /// An image the caller may use: public, or owned by the caller's tenant. Others read as not found.
    pub(crate) async fn visible_image(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<images::ImageRow, AppError> {
        let id = parse_id("Image", id)?;
        let image = images::get(self.pool(), &id)
            .await
            .map_err(internal)?
            .ok_or_else(|| AppError::not_found("Image"))?;
        match &image.owner_tenant_id {
            Some(owner) if owner != &caller.tenant_id && !caller.is_admin() => {
                Err(AppError::not_found("Image"))
            }
            _ => Ok(image),
        }
    }
}

#[async_trait]
impl Catalogue for Service {
    async fn list_flavors(&self, caller: &Caller) -> Result<Vec<FlavorView>, AppError> {
        let rows = flavors::list(self.pool()).await.map_err(internal)?;
        Ok(rows
            .iter()
            .filter(|f| caller.is_admin() || !f.disabled)
            .map(flavor_view)
            .collect())
    }

    async fn create_flavor(&self, caller: &Caller, flavor: NewFlavor) -> Result<FlavorView, AppError> {
        caller.require_admin()?;
        let name = validate_flavor(&flavor)?;
        let row = flavors::FlavorRow {
            id: uuid::Uuid::new_v4().to_string(),
            name: name.as_str().to_string(),
            vcpus: i64::from(flavor.vcpus),
            memory_mib: i64::from(flavor.memory_mib),
            disk_gib: i64::from(flavor.disk_gib),
            hourly_price_minor: flavor.hourly_price_minor,
            disabled: false,
            created_at: db::now(),
        };
        match flavors::insert(self.pool(), &row).await {
            Ok(()) => {
                let detail = format!(
                    "name={} vcpus={} memory_mib={} disk_gib={} hourly_price_minor={}",
                    row.name, row.vcpus, row.memory_mib, row.disk_gib, row.hourly_price_minor
                );
                self.audit(
                    Some(caller),
                    "flavor_create",
                    &format!("flavor:{}", row.id),
                    &detail,
                )
                .await;
                Ok(flavor_view(&row))
            }
            Err(e) if db::is_unique_violation(&e) => Err(AppError::invalid(
                "name",
                format!("A flavor named {} already exists.", row.name),
            )),
            Err(e) => Err(internal(e)),
        }
    }

    async fn set_flavor_disabled(
        &self,
        caller: &Caller,
        flavor_id: String,
        disabled: bool,
    ) -> Result<FlavorView, AppError> {
        caller.require_admin()?;
        let flavor = self.flavor(&flavor_id).await?;
        flavors::set_disabled(self.pool(), &flavor.id, disabled)
            .await
            .map_err(internal)?;
        let action = if disabled {
            "flavor_disable"
        } else {
            "flavor_enable"
        };
        self.audit(Some(caller), action, &format!("flavor:{}", flavor.id), "")
            .await;
        Ok(flavor_view(&self.flavor(&flavor.id).await?))
    }

    async fn set_flavor_price(
        &self,
        caller: &Caller,
        flavor_id: String,
        hourly_price_minor: i64,
    ) -> Result<FlavorView, AppError> {
        caller.require_admin()?;
        check_price(hourly_price_minor)?;
        let flavor = self.flavor(&flavor_id).await?;
        // Usage intervals copy the price when they open (`db::usage::open`): running VMs keep the old
        // price until their VMM next starts, and past invoices never change.
        flavors::set_price(self.pool(), &flavor.id, hourly_price_minor)
            .await
            .map_err(internal)?;
        tracing::info!(admin = %caller.username, flavor_id = %flavor.id, hourly_price_minor, "flavor price changed");
        let detail = format!(
            "hourly_price_minor {} -> {hourly_price_minor}",
            flavor.hourly_price_minor
        );
        self.audit(
            Some(caller),
            "flavor_price",
            &format!("flavor:{}", flavor.id),
            &detail,
        )
        .await;
        Ok(flavor_view(&self.flavor(&flavor.id).await?))
    }

    async fn list_images(&self, caller: &Caller) -> Result<Vec<ImageView>, AppError> {
        let rows = if caller.is_admin() {
            images::list_all(self.pool()).await
        } else {
            images::list_visible(self.pool(), &caller.tenant_id).await
        }
        .map_err(internal)?;
        Ok(rows.iter().map(image_view).collect())
    }

    async fn delete_image(&self, caller: &Caller, image_id: String) -> Result<(), AppError> {
        caller.require_admin()?;
        let image = self.visible_image(caller, &image_id).await?;
        if !images::delete_unused(self.pool(), &image.id)
            .await
            .map_err(internal)?
        {
            return Err(AppError::conflict(format!(
                "Image {} is used by VMs (including deleted ones kept for history) and cannot be deleted.",
                image.name
            )));
        }
        self.audit(
            Some(caller),
            "image_delete",
            &format!("image:{}", image.id),
            &format!("name={}", image.name),
        )
        .await;
        if image.uploaded {
            let dir = self.images_dir().join(&image.id);
            if let Err(e) = tokio::fs::remove_dir_all(&dir).await {
                tracing::warn!(error = %e, dir = %dir.display(), "cannot remove the image files");
            }
        }
        Ok(())
    }
}
