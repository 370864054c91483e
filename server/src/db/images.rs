//! Queries on `images`.

use sqlx::{FromRow, SqlitePool};

#[derive(Debug, Clone, FromRow)]
pub struct ImageRow {
    pub id: String,
    pub name: String,
    pub os: String,
    pub kernel_path: String,
    pub initrd_path: Option<String>,
    pub root_disk_path: Option<String>,
    pub cmdline: String,
    pub emulated_cmdline: String,
    pub virtio_discovery: String,
    pub owner_tenant_id: Option<String>,
    pub is_test: bool,
    pub uploaded: bool,
    pub size_bytes: i64,
    pub created_at: i64,
}

const SELECT: &str =
    "SELECT id, name, os, kernel_path, initrd_path, root_disk_path, cmdline, emulated_cmdline, \
     virtio_discovery, owner_tenant_id, is_test, uploaded, size_bytes, created_at FROM images";

/// Every image (admins).
pub async fn list_all(pool: &SqlitePool) -> Result<Vec<ImageRow>, sqlx::Error> {
    sqlx::query_as(&format!("{SELECT} ORDER BY is_test, name"))
        .fetch_all(pool)
        .await
}

/// Public images and the tenant's own.
pub async fn list_visible(pool: &SqlitePool, tenant_id: &str) -> Result<Vec<ImageRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "{SELECT} WHERE owner_tenant_id IS NULL OR owner_tenant_id = ? ORDER BY is_test, name"
    ))
    .bind(tenant_id)
    .fetch_all(pool)
    .await
}

pub async fn get(pool: &SqlitePool, id: &str) -> Result<Option<ImageRow>, sqlx::Error> {
    sqlx::query_as(&format!("{SELECT} WHERE id = ?"))
        .bind(id)
        .fetch_optional(pool)
        .await
}

pub async fn by_name(pool: &SqlitePool, name: &str) -> Result<Option<ImageRow>, sqlx::Error> {
    sqlx::query_as(&format!("{SELECT} WHERE name = ?"))
        .bind(name)
        .fetch_optional(pool)
        .await
}

pub async fn insert(pool: &SqlitePool, i: &ImageRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO images (id, name, os, kernel_path, initrd_path, root_disk_path, cmdline, emulated_cmdline, \
         virtio_discovery, owner_tenant_id, is_test, uploaded, size_bytes, created_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&i.id)
    .bind(&i.name)
    .bind(&i.os)
    .bind(&i.kernel_path)
    .bind(&i.initrd_path)
    .bind(&i.root_disk_path)
    .bind(&i.cmdline)
    .bind(&i.emulated_cmdline)
    .bind(&i.virtio_discovery)
    .bind(&i.owner_tenant_id)
    .bind(i.is_test)
    .bind(i.uploaded)
    .bind(i.size_bytes)
    .bind(i.created_at)
    .execute(pool)
    .await
    .map(|_| ())
}

/// Updates the boot files of a registered (not uploaded) image, e.g. after the guest images were rebuilt.
pub async fn refresh_files(pool: &SqlitePool, i: &ImageRow) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE images SET os = ?, kernel_path = ?, initrd_path = ?, cmdline = ?, emulated_cmdline = ?, \
         virtio_discovery = ?, size_bytes = ? WHERE id = ? AND uploaded = 0",
    )
    .bind(&i.os)
    .bind(&i.kernel_path)
    .bind(&i.initrd_path)
    .bind(&i.cmdline)
    .bind(&i.emulated_cmdline)
    .bind(&i.virtio_discovery)
    .bind(i.size_bytes)
    .bind(&i.id)
    .execute(pool)
    .await
    .map(|_| ())
}

/// Deletes an image no VM uses; returns false if it is in use or missing.
pub async fn delete_unused(pool: &SqlitePool, id: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "DELETE FROM images WHERE id = ? AND NOT EXISTS (SELECT 1 FROM vms WHERE image_id = images.id)",
    )
    .bind(id)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}
