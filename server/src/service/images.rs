//! Image uploads. The API streams each file into a staging directory under the size limit; this module
//! checks what arrived and either moves the whole directory into place and registers the image, or removes
//! it: a refused or interrupted upload leaves nothing behind.

use std::path::{Path, PathBuf};

use app::error::AppError;
use app::model::ImageView;
use app::port::Caller;

use super::catalogue::image_view;
use super::{internal, Service};
use crate::db::{self, images};
use crate::domain::{parse_id, Label};

/// The files of an upload, as staged.
pub const KERNEL_FILE: &str = "kernel";
pub const INITRD_FILE: &str = "initrd";
pub const ROOT_DISK_FILE: &str = "root.raw";

/// The text fields of an upload.
#[derive(Debug, Default, Clone)]
pub struct UploadMeta {
    pub name: String,
    pub os: String,
    pub cmdline: String,
    /// Empty: public; otherwise the tenant that alone sees the image.
    pub owner_tenant_id: String,
}

/// A staging directory that is removed unless the upload is accepted.
pub struct Staging {
    dir: PathBuf,
    keep: bool,
}

impl Staging {
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.keep {
            if let Err(e) = std::fs::remove_dir_all(&self.dir) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(error = %e, dir = %self.dir.display(), "cannot remove a staged upload");
                }
            }
        }
    }
}

fn head(path: &Path, n: usize) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut buf = Vec::with_capacity(n);
    std::fs::File::open(path)?.take(n as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

/// A kernel the VMM boots: an x86-64 ELF (vmlinux, the probe guest) or a bzImage.
fn check_kernel(path: &Path) -> Result<(), AppError> {
    let bytes = head(path, 0x210).map_err(|_| AppError::invalid("kernel", "Upload a kernel file."))?;
    let elf64_x86 = bytes.len() >= 20 && bytes.starts_with(b"\x7fELF") && bytes[4] == 2 && bytes[18] == 0x3e;
    let bzimage = bytes.len() >= 0x206 && &bytes[0x202..0x206] == b"HdrS";
    if elf64_x86 || bzimage {
        Ok(())
    } else {
        Err(AppError::invalid(
            "kernel",
            "The kernel must be an x86-64 ELF (vmlinux) or a bzImage.",
        ))
    }
}

/// An initramfs: a cpio archive, plain or compressed (gzip, xz, zstd).
fn check_initrd(path: &Path) -> Result<(), AppError> {
    let bytes = head(path, 6).map_err(internal)?;
    let ok = bytes.starts_with(b"070701")
        || bytes.starts_with(&[0x1f, 0x8b])
        || bytes.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0])
        || bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]);
    if ok {
        Ok(())
    } else {
        Err(AppError::invalid(
            "initrd",
            "The initramfs must be a cpio archive (plain, gzip, xz or zstd).",
        ))
    }
}

/// A raw disk image: a non-empty whole number of 512-byte sectors.
fn check_root_disk(path: &Path) -> Result<(), AppError> {
    let len = std::fs::metadata(path).map_err(internal)?.len();
    if len == 0 || len % 512 != 0 {
        return Err(AppError::invalid(
            "root_disk",
            "The root disk must be a raw image whose size is a multiple of 512 bytes.",
        ));
    }
    Ok(())
}

fn size_of(path: &Path) -> i64 {
    std::fs::metadata(path).map(|m| m.len() as i64).unwrap_or(0)
}

impl Service {
    /// A fresh staging directory for an upload by an admin.
    pub async fn stage_upload(&self, caller: &Caller) -> Result<Staging, AppError> {
        caller.require_admin()?;
        let dir = self
            .images_dir()
            .join(format!(".upload-{}", uuid::Uuid::new_v4()));
        tokio::fs::create_dir_all(&dir).await.map_err(internal)?;
        Ok(Staging { dir, keep: false })
    }

    /// Checks the staged files and registers the image; on any error the staging directory is removed.
    pub async fn finish_upload(
        &self,
        caller: &Caller,
        meta: UploadMeta,
        mut staging: Staging,
    ) -> Result<ImageView, AppError> {
        caller.require_admin()?;
        let name = Label::parse("name", "Name", &meta.name, 1, 64)?;
        let os = Label::parse("os", "OS label", &meta.os, 1, 80)?;
        let cmdline = Label::parse("cmdline", "Command line", &meta.cmdline, 0, 2048)?;
        let owner = match meta.owner_tenant_id.trim() {
            "" => None,
            id => Some(self.tenant_for_admin(&parse_id("Tenant", id)?).await?),
        };
        let kernel = staging.dir().join(KERNEL_FILE);
        if !kernel.exists() {
            return Err(AppError::invalid("kernel", "Upload a kernel file."));
        }
        check_kernel(&kernel)?;
        let initrd = staging.dir().join(INITRD_FILE);
        let has_initrd = initrd.exists();
        if has_initrd {
            check_initrd(&initrd)?;
        }
        let root = staging.dir().join(ROOT_DISK_FILE);
        let has_root = root.exists();
        if has_root {
            check_root_disk(&root)?;
        }
        if images::by_name(self.pool(), name.as_str())
            .await
            .map_err(internal)?
            .is_some()
        {
            return Err(AppError::invalid(
                "name",
                format!("An image named {} already exists.", name.as_str()),
            ));
        }
        let id = uuid::Uuid::new_v4().to_string();
        let dest = self.images_dir().join(&id);
        let size = size_of(&kernel) + size_of(&initrd) + size_of(&root);
        tokio::fs::rename(staging.dir(), &dest).await.map_err(internal)?;
        let path = |f: &str| dest.join(f).display().to_string();
        let row = images::ImageRow {
            id: id.clone(),
            name: name.as_str().to_string(),
            os: os.into_string(),
            kernel_path: path(KERNEL_FILE),
            initrd_path: has_initrd.then(|| path(INITRD_FILE)),
            root_disk_path: has_root.then(|| path(ROOT_DISK_FILE)),
            cmdline: cmdline.into_string(),
            emulated_cmdline: String::new(),
            virtio_discovery: "cmdline".into(),
            owner_tenant_id: owner,
            is_test: false,
            uploaded: true,
            size_bytes: size,
            created_at: db::now(),
        };
        if let Err(e) = images::insert(self.pool(), &row).await {
            let _ = tokio::fs::remove_dir_all(&dest).await;
            return Err(if db::is_unique_violation(&e) {
                AppError::invalid("name", format!("An image named {} already exists.", row.name))
            } else {
                internal(e)
            });
        }
        staging.keep = true;
        tracing::info!(
            image_id = id,
            name = row.name,
            user = caller.username,
            "image uploaded"
        );
        let detail = format!(
            "name={} os={} owner={}",
            row.name,
            row.os,
            row.owner_tenant_id.as_deref().unwrap_or("public")
        );
        self.audit(Some(caller), "image_upload", &format!("image:{id}"), &detail)
            .await;
        Ok(image_view(&row))
    }

    async fn tenant_for_admin(&self, id: &str) -> Result<String, AppError> {
        crate::db::tenants::get(self.pool(), id)
            .await
            .map_err(internal)?
            .map(|t| t.id)
            .ok_or_else(|| AppError::invalid("owner_tenant_id", "No such tenant."))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_checks_accept_real_formats_and_refuse_others() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let mut elf = vec![0u8; 64];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[4] = 2;
        elf[18] = 0x3e;
        std::fs::write(&p, &elf).unwrap();
        assert!(check_kernel(&p).is_ok());
        std::fs::write(&p, b"#!/bin/sh\nrm -rf /\n").unwrap();
        assert_eq!(check_kernel(&p).unwrap_err().field(), Some("kernel"));
        std::fs::write(&p, [0x1f, 0x8b, 8, 0]).unwrap();
        assert!(check_initrd(&p).is_ok());
        std::fs::write(&p, b"PK\x03\x04").unwrap();
        assert!(check_initrd(&p).is_err());
        std::fs::write(&p, vec![0u8; 1024]).unwrap();
        assert!(check_root_disk(&p).is_ok());
        std::fs::write(&p, vec![0u8; 1000]).unwrap();
        assert!(check_root_disk(&p).is_err());
    }
}
