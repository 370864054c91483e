//! What VMs really use on this host: their VMMs' resident memory (`/proc/<pid>/status` `VmRSS`) and the
//! blocks their disk files have allocated (`st_blocks`: sparse and copy-on-write disks use far less than
//! their size).

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Resident memory of process `pid` in bytes; `None` if it is gone.
pub fn rss_bytes(pid: i64) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    super::meminfo_kib(&status, "VmRSS").map(|kib| kib * 1024)
}

/// The real uid process `pid` runs as (`Uid:` in `/proc/<pid>/status`).
pub fn uid(pid: i64) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Bytes allocated on disk by the regular files directly in `dir` (a VM's run directory: its disk, config
/// disk, logs).
pub fn allocated_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.metadata().ok())
        .filter(std::fs::Metadata::is_file)
        .map(|m| m.blocks() * 512)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sparse_file_allocates_less_than_its_size_and_our_own_rss_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let f = std::fs::File::create(dir.path().join("disk.raw")).unwrap();
        f.set_len(1 << 30).unwrap();
        std::fs::write(dir.path().join("vmm.log"), vec![1u8; 64 * 1024]).unwrap();
        let used = allocated_bytes(dir.path());
        assert!((64 * 1024..1 << 20).contains(&used), "{used}");
        assert!(rss_bytes(i64::from(std::process::id())).is_some_and(|b| b > 0));
        assert_eq!(rss_bytes(i64::from(i32::MAX)), None);
    }
}
