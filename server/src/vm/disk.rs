//! Per-VM files: the copy-on-write root disk and the config disk.
//!
//! Root disk: a reflink clone of the image's root disk where the filesystem supports it (btrfs, XFS), else
//! a sparse copy (`cp --reflink=auto --sparse=always`), grown to the flavor's size; images without a root
//! disk get a blank sparse disk of that size. The base image is never opened for writing.
//!
//! Config disk (read-only, second virtio disk, serial `config`): a plain tar archive written straight onto
//! the disk, so a guest reads it with `tar -xf /dev/vdb` and no filesystem driver:
//! `meta-data.json` (instance id, name, tenant), `user-data` and `ssh/authorized_keys`.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("Failed to copy the image disk {0}")]
    Copy(PathBuf, #[source] std::io::Error),
    #[error("Copying the image disk {0} failed: {1}")]
    CopyFailed(PathBuf, String),
    #[error("Failed to size the disk {0}")]
    Size(PathBuf, #[source] std::io::Error),
    #[error("Failed to write the config disk {0}")]
    Config(PathBuf, #[source] std::io::Error),
}

/// The VM's root disk in its run directory.
pub fn root_disk(run_dir: &Path) -> PathBuf {
    run_dir.join("disk.raw")
}

/// The VM's config disk in its run directory.
pub fn config_disk(run_dir: &Path) -> PathBuf {
    run_dir.join("config.tar")
}

/// Creates `dest` as the VM's root disk of `size_bytes` (at least the base disk's size).
pub async fn create_root_disk(base: Option<&Path>, dest: &Path, size_bytes: u64) -> Result<(), DiskError> {
    if let Some(base) = base {
        let out = tokio::process::Command::new("cp")
            .arg("--reflink=auto")
            .arg("--sparse=always")
            .arg("--")
            .arg(base)
            .arg(dest)
            .output()
            .await
            .map_err(|e| DiskError::Copy(base.to_path_buf(), e))?;
        if !out.status.success() {
            return Err(DiskError::CopyFailed(
                base.to_path_buf(),
                String::from_utf8_lossy(&out.stderr).trim().to_string(),
            ));
        }
    }
    let dest_owned = dest.to_path_buf();
    tokio::task::spawn_blocking(move || grow(&dest_owned, size_bytes))
        .await
        .map_err(|e| DiskError::Size(dest.to_path_buf(), std::io::Error::other(e)))?
}

fn grow(path: &Path, size_bytes: u64) -> Result<(), DiskError> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| DiskError::Size(path.to_path_buf(), e))?;
    let len = file
        .metadata()
        .map_err(|e| DiskError::Size(path.to_path_buf(), e))?
        .len();
    if len < size_bytes {
        file.set_len(size_bytes)
            .map_err(|e| DiskError::Size(path.to_path_buf(), e))?;
    }
    Ok(())
}

/// What goes on the config disk.
pub struct ConfigData<'a> {
    pub vm_id: &'a str,
    pub name: &'a str,
    pub tenant_id: &'a str,
    pub ssh_key: &'a str,
    pub user_data: &'a str,
}

/// Writes the config disk (a tar archive padded to whole 512-byte sectors).
pub fn write_config_disk(dest: &Path, data: &ConfigData<'_>) -> Result<(), DiskError> {
    let err = |e| DiskError::Config(dest.to_path_buf(), e);
    let meta = serde_json::json!({
        "instance-id": data.vm_id,
        "local-hostname": data.name,
        "tenant-id": data.tenant_id,
    });
    let meta = serde_json::to_vec_pretty(&meta).map_err(|e| err(std::io::Error::other(e)))?;
    let mut builder = tar::Builder::new(Vec::new());
    let mut add = |name: &str, bytes: &[u8], mode: u32| -> std::io::Result<()> {
        let mut header = tar::Header::new_ustar();
        header.set_size(bytes.len() as u64);
        header.set_mode(mode);
        header.set_mtime(0);
        header.set_cksum();
        builder.append_data(&mut header, name, bytes)
    };
    add("meta-data.json", &meta, 0o644).map_err(err)?;
    add("user-data", data.user_data.as_bytes(), 0o600).map_err(err)?;
    let keys = if data.ssh_key.is_empty() {
        String::new()
    } else {
        format!("{}\n", data.ssh_key.trim())
    };
    add("ssh/authorized_keys", keys.as_bytes(), 0o600).map_err(err)?;
    let mut bytes = builder.into_inner().map_err(err)?;
    let padded = bytes.len().div_ceil(512) * 512;
    bytes.resize(padded.max(512), 0);
    std::fs::write(dest, bytes).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn root_disk_is_a_grown_copy_and_the_base_is_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base.raw");
        std::fs::write(&base, b"base image bytes").unwrap();
        let vm = dir.path().join("vm.raw");
        create_root_disk(Some(&base), &vm, 1 << 20).await.unwrap();
        let data = std::fs::read(&vm).unwrap();
        assert_eq!(data.len(), 1 << 20);
        assert!(data.starts_with(b"base image bytes"));
        std::fs::write(&vm, b"guest wrote here").unwrap();
        assert_eq!(std::fs::read(&base).unwrap(), b"base image bytes");
    }

    #[tokio::test]
    async fn blank_disk_is_sparse() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let vm = dir.path().join("vm.raw");
        create_root_disk(None, &vm, 1 << 30).await.unwrap();
        let meta = std::fs::metadata(&vm).unwrap();
        assert_eq!(meta.len(), 1 << 30);
        assert!(meta.blocks() * 512 < 1 << 20, "a blank disk takes no space");
    }

    #[test]
    fn config_disk_is_a_tar_with_the_users_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.tar");
        write_config_disk(
            &path,
            &ConfigData {
                vm_id: "vm-1",
                name: "web",
                tenant_id: "t-1",
                ssh_key: "ssh-ed25519 AAAA user@host",
                user_data: "#!/bin/sh\necho hi\n",
            },
        )
        .unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len() % 512, 0);
        let mut archive = tar::Archive::new(&bytes[..]);
        let mut found = std::collections::BTreeMap::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().display().to_string();
            let mut text = String::new();
            std::io::Read::read_to_string(&mut entry, &mut text).unwrap();
            found.insert(name, text);
        }
        assert_eq!(found["user-data"], "#!/bin/sh\necho hi\n");
        assert_eq!(found["ssh/authorized_keys"], "ssh-ed25519 AAAA user@host\n");
        assert!(found["meta-data.json"].contains("\"local-hostname\": \"web\""));
    }
}
