//! Port I/O against the legacy devices on the real port-I/O bus, registered as the builder does: the
//! 8250 UART at COM1 (with console clients and typed input arriving meanwhile), the i8042 data and
//! command ports, the power/reset register and boot marker, and every unmapped port. Accesses are 1, 2
//! or 4 bytes wide and may be string I/O (`rep outs`/`rep ins`: many accesses in one exit, the last
//! one possibly short), as the vCPU loop splits them.
#![no_main]

use std::sync::{Arc, Mutex};
use std::time::Instant;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use vmm::devices::i8042::I8042;
use vmm::devices::power::{PowerDevice, POWER_RANGE_LEN};
use vmm::devices::serial::{SerialDevice, SerialHub, CONSOLE_RING_BYTES};
use vmm::devices::Bus;
use vmm::layout;
use vmm::state::Shared;
use vmm_sys_util::eventfd::EventFd;

#[derive(Debug, Arbitrary)]
enum Port {
    Serial(u8),
    I8042Data,
    I8042Command,
    Power,
    BootMarker,
    Any(u16),
}

impl Port {
    fn number(&self) -> u64 {
        u64::from(match *self {
            Port::Serial(off) => layout::SERIAL_PORT_BASE + u16::from(off % 10),
            Port::I8042Data => layout::I8042_DATA_PORT,
            Port::I8042Command => layout::I8042_COMMAND_PORT,
            Port::Power => layout::POWER_PORT,
            Port::BootMarker => layout::BOOT_MARKER_PORT,
            Port::Any(p) => p,
        })
    }
}

#[derive(Debug, Arbitrary)]
enum Step {
    /// `out`/`outs`: `data` split into accesses of `size` (1, 2 or 4) bytes.
    Out { port: Port, size: u8, data: Vec<u8> },
    /// `in`/`ins`: `count` accesses of `size` bytes.
    In { port: Port, size: u8, count: u8 },
    /// A `serial.sock` client types.
    Type(Vec<u8>),
    /// A `serial.sock` client connects (and never reads).
    Subscribe,
    /// `console-log`.
    ConsoleLog,
}

fn size(s: u8) -> usize {
    [1, 2, 4][usize::from(s % 3)]
}

fuzz_target!(|steps: Vec<Step>| {
    let shared = Arc::new(Shared::new("fuzz", Instant::now()));
    let hub = SerialHub::new(None);
    let irq = EventFd::new(libc::EFD_NONBLOCK).expect("eventfd");
    let serial = SerialDevice::new(irq, hub.clone());
    let mut pio = Bus::new("pio");
    pio.insert(
        u64::from(layout::SERIAL_PORT_BASE),
        u64::from(layout::SERIAL_PORT_SIZE),
        serial,
    )
    .expect("serial");
    pio.insert(
        u64::from(layout::I8042_DATA_PORT),
        1,
        Arc::new(Mutex::new(I8042::data_port(shared.clone()))),
    )
    .expect("i8042 data");
    pio.insert(
        u64::from(layout::I8042_COMMAND_PORT),
        1,
        Arc::new(Mutex::new(I8042::command_port(shared.clone()))),
    )
    .expect("i8042 command");
    pio.insert(
        u64::from(layout::POWER_PORT),
        POWER_RANGE_LEN,
        Arc::new(Mutex::new(PowerDevice::new(shared.clone()))),
    )
    .expect("power");

    let mut clients = Vec::new();
    for step in &steps {
        match step {
            Step::Out { port, size: s, data } => {
                if port.number() == u64::from(layout::POST_CODE_PORT) {
                    continue; // the vCPU loop drops these before the bus
                }
                for access in data.chunks(size(*s)) {
                    pio.write(port.number(), access);
                }
            }
            Step::In { port, size: s, count } => {
                let mut data = vec![0u8; size(*s) * usize::from(*count)];
                for access in data.chunks_mut(size(*s)) {
                    pio.read(port.number(), access, 0xff);
                }
            }
            Step::Type(bytes) => hub.input(bytes),
            Step::Subscribe => clients.push(hub.subscribe()),
            Step::ConsoleLog => assert!(hub.console_log().len() <= CONSOLE_RING_BYTES),
        }
    }
});
