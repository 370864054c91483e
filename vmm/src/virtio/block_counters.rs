//! A disk's I/O counters: completed read and write requests and their bytes, kept by the VMM for the
//! disk's whole life (one set per configured disk, shared by every boot's virtio-blk device) and
//! reported by the control socket's `status` (the portal turns them into disk-rate graphs).

use std::sync::atomic::{AtomicU64, Ordering};

use vmm_api::control::DiskStatus;

/// Counters of one disk. Relaxed atomics: each is a monotonic total read as a snapshot.
#[derive(Debug, Default)]
pub struct BlockCounters {
    serial: String,
    read_requests: AtomicU64,
    read_bytes: AtomicU64,
    write_requests: AtomicU64,
    write_bytes: AtomicU64,
}

impl BlockCounters {
    pub fn new(serial: &str) -> Self {
        Self {
            serial: serial.to_string(),
            ..Self::default()
        }
    }

    /// A read request whose `bytes` of data reached the guest.
    pub fn count_read(&self, bytes: u64) {
        self.read_requests.fetch_add(1, Ordering::Relaxed);
        self.read_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// A write request whose `bytes` of data reached the image.
    pub fn count_write(&self, bytes: u64) {
        self.write_requests.fetch_add(1, Ordering::Relaxed);
        self.write_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> DiskStatus {
        DiskStatus {
            serial: self.serial.clone(),
            read_requests: self.read_requests.load(Ordering::Relaxed),
            read_bytes: self.read_bytes.load(Ordering::Relaxed),
            write_requests: self.write_requests.load(Ordering::Relaxed),
            write_bytes: self.write_bytes.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_requests_and_bytes_separately() {
        let c = BlockCounters::new("d0");
        c.count_read(512);
        c.count_read(4096);
        c.count_write(1024);
        let s = c.snapshot();
        assert_eq!(s.serial, "d0");
        assert_eq!((s.read_requests, s.read_bytes), (2, 4608));
        assert_eq!((s.write_requests, s.write_bytes), (1, 1024));
    }
}
