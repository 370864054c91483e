//! Minimal i8042 keyboard controller: enough for the "pulse reset line" command (0xfe on port 0x64)
//! Linux uses for `reboot=k`. No keyboard is attached (virtio-input is the keyboard).

use std::sync::Arc;

use crate::bus::BusDevice;
use crate::state::{Shared, VmEvent};

const CMD_RESET_CPU: u8 = 0xfe;

/// Registered twice: at `I8042_DATA_PORT` (offset 0 of its range) and `I8042_COMMAND_PORT`; both
/// registrations are separate instances sharing the VM state.
pub struct I8042 {
    shared: Arc<Shared>,
    is_command_port: bool,
}

impl I8042 {
    pub fn data_port(shared: Arc<Shared>) -> Self {
        I8042 {
            shared,
            is_command_port: false,
        }
    }

    pub fn command_port(shared: Arc<Shared>) -> Self {
        I8042 {
            shared,
            is_command_port: true,
        }
    }
}

impl BusDevice for I8042 {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        // Status: output buffer empty, input buffer empty. Data: nothing queued.
        data.fill(0);
    }

    fn write(&mut self, _offset: u64, data: &[u8]) {
        if self.is_command_port && data.first() == Some(&CMD_RESET_CPU) {
            tracing::info!("guest reset through i8042");
            self.shared.request(VmEvent::Reboot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn reset_command_requests_reboot_only_on_command_port() {
        let shared = Arc::new(Shared::new("t", Instant::now()));
        I8042::data_port(shared.clone()).write(0, &[0xfe]);
        assert!(!shared.event_pending());
        I8042::command_port(shared.clone()).write(0, &[0xfe]);
        assert_eq!(shared.wait_event(), VmEvent::Reboot);
    }
}
