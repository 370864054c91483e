//! Port-I/O and MMIO dispatch: devices register an address range and receive accesses relative to it.

/// A device reachable through a range of guest port-I/O or MMIO addresses.
///
/// `offset` is relative to the start of the range the device was registered at. Accesses the device does
/// not understand must be answered (reads fill `data` with a defined value, usually zeros or all-ones) and
/// never panic: the guest drives these calls.
pub trait BusDevice: Send {
    /// Guest reads `data.len()` bytes at `offset`.
    fn read(&mut self, offset: u64, data: &mut [u8]);
    /// Guest writes `data` at `offset`.
    fn write(&mut self, offset: u64, data: &[u8]);
}
