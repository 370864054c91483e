//! Legacy platform devices and the PIO/MMIO buses the vCPU threads dispatch exits through.

pub mod i8042;
pub mod power;
pub mod serial;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use crate::bus::BusDevice;
use crate::lock;

/// Errors while assembling a bus.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("Range {base:#x}+{len:#x} overlaps a registered device")]
    Overlap { base: u64, len: u64 },
    #[error("Empty range at {0:#x}")]
    EmptyRange(u64),
}

/// How many distinct unknown addresses are logged before the bus goes quiet.
const MAX_LOGGED_UNKNOWN: usize = 32;

struct Entry {
    base: u64,
    len: u64,
    dev: Arc<Mutex<dyn BusDevice>>,
}

/// An address space (port I/O or MMIO): sorted, non-overlapping device ranges.
pub struct Bus {
    name: &'static str,
    entries: Vec<Entry>,
    unknown: Mutex<HashSet<u64>>,
}

impl Bus {
    pub fn new(name: &'static str) -> Self {
        Bus {
            name,
            entries: Vec::new(),
            unknown: Mutex::new(HashSet::new()),
        }
    }

    /// Registers `dev` for `[base, base + len)`.
    pub fn insert(&mut self, base: u64, len: u64, dev: Arc<Mutex<dyn BusDevice>>) -> Result<(), BusError> {
        if len == 0 {
            return Err(BusError::EmptyRange(base));
        }
        if self
            .entries
            .iter()
            .any(|e| base < e.base + e.len && e.base < base + len)
        {
            return Err(BusError::Overlap { base, len });
        }
        let pos = self.entries.partition_point(|e| e.base < base);
        self.entries.insert(pos, Entry { base, len, dev });
        Ok(())
    }

    fn find(&self, addr: u64) -> Option<(&Entry, u64)> {
        let idx = self.entries.partition_point(|e| e.base <= addr).checked_sub(1)?;
        let e = &self.entries[idx];
        (addr - e.base < e.len).then_some((e, addr - e.base))
    }

    fn note_unknown(&self, addr: u64, write: bool) {
        let mut seen = lock(&self.unknown);
        if seen.len() < MAX_LOGGED_UNKNOWN && seen.insert(addr) {
            tracing::debug!(
                bus = self.name,
                addr = format_args!("{addr:#x}"),
                write,
                "guest access to unmapped address"
            );
            if seen.len() == MAX_LOGGED_UNKNOWN {
                tracing::debug!(bus = self.name, "further unmapped accesses are not logged");
            }
        }
    }

    /// Dispatches a read; unmapped addresses read as `fill` bytes.
    pub fn read(&self, addr: u64, data: &mut [u8], fill: u8) {
        match self.find(addr) {
            Some((e, off)) => lock(&e.dev).read(off, data),
            None => {
                data.fill(fill);
                self.note_unknown(addr, false);
            }
        }
    }

    /// Dispatches a write; writes to unmapped addresses are dropped.
    pub fn write(&self, addr: u64, data: &[u8]) {
        match self.find(addr) {
            Some((e, off)) => lock(&e.dev).write(off, data),
            None => self.note_unknown(addr, true),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo(u8);
    impl BusDevice for Echo {
        fn read(&mut self, offset: u64, data: &mut [u8]) {
            data.fill(self.0 + offset as u8);
        }
        fn write(&mut self, _offset: u64, data: &[u8]) {
            self.0 = data[0];
        }
    }

    #[test]
    fn dispatches_by_range_and_fills_unknown() {
        let mut bus = Bus::new("test");
        bus.insert(0x10, 4, Arc::new(Mutex::new(Echo(1)))).unwrap();
        bus.insert(0x20, 1, Arc::new(Mutex::new(Echo(9)))).unwrap();
        assert!(bus.insert(0x12, 0x10, Arc::new(Mutex::new(Echo(0)))).is_err());
        let mut b = [0u8; 1];
        bus.read(0x13, &mut b, 0xff);
        assert_eq!(b[0], 4);
        bus.write(0x20, &[5]);
        bus.read(0x20, &mut b, 0xff);
        assert_eq!(b[0], 5);
        for addr in [0x0, 0x14, 0x21, u64::MAX] {
            bus.read(addr, &mut b, 0xff);
            assert_eq!(b[0], 0xff, "{addr:#x}");
            bus.write(addr, &[1]);
        }
    }
}
