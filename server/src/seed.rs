//! First-start catalogue: default flavors, and the guest images `guest/build.sh` produced (read from
//! `<guest_dir>/manifest.json`) plus the probe guest (a test image). Registered images whose files were
//! rebuilt are refreshed; images and flavors admins changed are left alone.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::db::{self, flavors, images};

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("Database error while seeding the catalogue")]
    Db(#[from] sqlx::Error),
    #[error("Invalid guest manifest {0}")]
    Manifest(PathBuf, #[source] serde_json::Error),
}

#[derive(Debug, Deserialize)]
struct Manifest {
    #[serde(default)]
    emulated_host_extra_cmdline: String,
    images: Vec<ManifestImage>,
}

#[derive(Debug, Deserialize)]
struct ManifestImage {
    name: String,
    os: String,
    kernel: PathBuf,
    initrd: Option<PathBuf>,
    cmdline: String,
    #[serde(default)]
    virtio_mmio_discovery: Option<String>,
}

/// The probe guest's file name in the guest directory (copied there by `scripts/prepare.sh`).
pub const PROBE_GUEST_FILE: &str = "probe-guest";
/// Name of the registered probe guest image.
pub const PROBE_IMAGE_NAME: &str = "probe (test image)";

/// Flavors offered on an empty catalogue: (name, vCPUs, MiB, GiB, cents per hour).
const DEFAULT_FLAVORS: [(&str, i64, i64, i64, i64); 5] = [
    ("t1.micro", 1, 128, 1, 1),
    ("m1.small", 1, 512, 10, 2),
    ("m1.medium", 2, 2048, 20, 5),
    ("m1.large", 4, 4096, 40, 10),
    ("m1.xlarge", 4, 8192, 80, 20),
];

pub async fn seed(pool: &sqlx::SqlitePool, guest_dir: &Path) -> Result<(), SeedError> {
    if flavors::count(pool).await? == 0 {
        for (name, vcpus, memory_mib, disk_gib, price) in DEFAULT_FLAVORS {
            flavors::insert(
                pool,
                &flavors::FlavorRow {
                    id: uuid::Uuid::new_v4().to_string(),
                    name: name.into(),
                    vcpus,
                    memory_mib,
                    disk_gib,
                    hourly_price_minor: price,
                    disabled: false,
                    created_at: db::now(),
                },
            )
            .await?;
        }
    }
    let guest_dir = std::fs::canonicalize(guest_dir).unwrap_or_else(|_| guest_dir.to_path_buf());
    let manifest_path = guest_dir.join("manifest.json");
    match std::fs::read(&manifest_path) {
        Ok(bytes) => {
            let manifest: Manifest =
                serde_json::from_slice(&bytes).map_err(|e| SeedError::Manifest(manifest_path.clone(), e))?;
            for img in &manifest.images {
                let in_dir = |p: &Path| p.file_name().map(|f| guest_dir.join(f));
                let Some(kernel) = in_dir(&img.kernel).filter(|k| k.exists()) else {
                    tracing::warn!(image = img.name, "guest image kernel missing; not registered");
                    continue;
                };
                let initrd = img.initrd.as_deref().and_then(in_dir).filter(|p| p.exists());
                let row = image_row(
                    &img.name,
                    &img.os,
                    &kernel,
                    initrd.as_deref(),
                    &img.cmdline,
                    &manifest.emulated_host_extra_cmdline,
                    img.virtio_mmio_discovery.as_deref().unwrap_or("cmdline"),
                    false,
                );
                register(pool, row).await?;
            }
        }
        Err(e) => {
            tracing::warn!(path = %manifest_path.display(), error = %e, "no guest manifest; run scripts/prepare.sh")
        }
    }
    let probe = guest_dir.join(PROBE_GUEST_FILE);
    if probe.exists() {
        let row = image_row(
            PROBE_IMAGE_NAME,
            "Probe guest (tests the VMM's devices; not an OS)",
            &probe,
            None,
            "",
            "",
            "cmdline",
            true,
        );
        register(pool, row).await?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn image_row(
    name: &str,
    os: &str,
    kernel: &Path,
    initrd: Option<&Path>,
    cmdline: &str,
    emulated: &str,
    discovery: &str,
    is_test: bool,
) -> images::ImageRow {
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len() as i64).unwrap_or(0);
    images::ImageRow {
        id: uuid::Uuid::new_v4().to_string(),
        name: name.into(),
        os: os.into(),
        kernel_path: kernel.display().to_string(),
        initrd_path: initrd.map(|p| p.display().to_string()),
        root_disk_path: None,
        cmdline: cmdline.into(),
        emulated_cmdline: emulated.into(),
        virtio_discovery: discovery.into(),
        owner_tenant_id: None,
        is_test,
        uploaded: false,
        size_bytes: size(kernel) + initrd.map(size).unwrap_or(0),
        created_at: db::now(),
    }
}

async fn register(pool: &sqlx::SqlitePool, mut row: images::ImageRow) -> Result<(), sqlx::Error> {
    match images::by_name(pool, &row.name).await? {
        Some(existing) if existing.uploaded => Ok(()),
        Some(existing) => {
            row.id = existing.id;
            images::refresh_files(pool, &row).await
        }
        None => {
            tracing::info!(image = row.name, "registering guest image");
            // Printed like the first admin login: what an operator can launch right away.
            println!("==> Guest image registered: {} ({})", row.name, row.os);
            images::insert(pool, &row).await
        }
    }
}
