//! The platform power device at `POWER_PORT` (ACPI sleep control/status and reset registers) and the
//! boot-progress marker at `BOOT_MARKER_PORT`.

use std::sync::Arc;

use crate::bus::BusDevice;
use crate::layout::{BOOT_MARKER_PORT, POWER_PORT, POWER_RESET_VALUE, POWER_SLP_EN, POWER_SLP_TYP_S5};
use crate::state::{Shared, VmEvent};

/// Registered at `POWER_PORT` with length 2 (offset 1 = `BOOT_MARKER_PORT`).
pub struct PowerDevice {
    shared: Arc<Shared>,
}

pub const POWER_RANGE_LEN: u64 = (BOOT_MARKER_PORT - POWER_PORT + 1) as u64;
const MARKER_OFFSET: u64 = (BOOT_MARKER_PORT - POWER_PORT) as u64;

impl PowerDevice {
    pub fn new(shared: Arc<Shared>) -> Self {
        PowerDevice { shared }
    }
}

/// What a byte written to the sleep control / reset register means.
pub fn decode_power_write(value: u8) -> Option<VmEvent> {
    if value & POWER_SLP_EN != 0 {
        let slp_typ = (value >> 2) & 0x7;
        return (slp_typ == POWER_SLP_TYP_S5).then_some(VmEvent::Poweroff);
    }
    (value == POWER_RESET_VALUE).then_some(VmEvent::Reboot)
}

impl BusDevice for PowerDevice {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        // Sleep status: WAK_STS clear; the marker port reads as zero.
        data.fill(0);
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let Some(&value) = data.first() else { return };
        match offset {
            0 => {
                if let Some(ev) = decode_power_write(value) {
                    tracing::info!(?ev, "guest power request");
                    self.shared.request(ev);
                }
            }
            MARKER_OFFSET => self.shared.boot_marker(value),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linux_s5_write_is_poweroff_and_reset_value_is_reboot() {
        assert_eq!(decode_power_write((5 << 2) | (1 << 5)), Some(VmEvent::Poweroff));
        assert_eq!(decode_power_write(POWER_RESET_VALUE), Some(VmEvent::Reboot));
        // Linux clears WAK_STS (0x80) in the status register before sleeping: not an event.
        assert_eq!(decode_power_write(0x80), None);
        assert_eq!(decode_power_write((3 << 2) | (1 << 5)), None);
    }
}
