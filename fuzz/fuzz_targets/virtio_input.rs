//! virtio-input (keyboard or tablet) behind the real virtio-mmio transport: a hostile guest driver on
//! both queues (arbitrary descriptors, rings, indices, addresses, lengths), config-space select/subsel
//! queries of any value, and events arriving from the host side (console, control socket) at any time.
#![no_main]

use arbitrary::Arbitrary;
use fuzz_common::{reg, Driver, Op, Setup};
use libfuzzer_sys::fuzz_target;
use vmm::bus::BusDevice;
use vmm::virtio::input::{Input, InputEvent, InputKind};

#[derive(Debug, Arbitrary)]
enum InputOp {
    /// Events from the host side (the RFB server or the control socket).
    Send(Vec<(u16, u16, u32)>),
    /// A key press and release.
    Key(u16, bool),
    /// Driver writes select and subsel, then reads the config space back at any width.
    Query {
        select: u8,
        subsel: u8,
        offset: u8,
        len: u8,
    },
}

#[derive(Debug, Arbitrary)]
struct Case {
    tablet: Option<(u32, u32)>,
    name: String,
    setup: Setup,
    ops: Vec<Op<InputOp>>,
}

fuzz_target!(|case: Case| {
    let kind = match case.tablet {
        Some((width, height)) => InputKind::Tablet { width, height },
        None => InputKind::Keyboard,
    };
    let (dev, handle) = Input::new(kind, &case.name);
    let mut driver = Driver::new(Box::new(dev));
    driver.run_all(&case.setup, &case.ops, |d, op| match op {
        InputOp::Send(events) => {
            let evs: Vec<InputEvent> = events.iter().map(|&(t, c, v)| InputEvent::new(t, c, v)).collect();
            handle.send(&evs);
        }
        InputOp::Key(code, down) => handle.send_key(*code, *down),
        InputOp::Query {
            select,
            subsel,
            offset,
            len,
        } => {
            d.transport.write(reg::CONFIG, &[*select, *subsel]);
            let mut buf = [0u8; 8];
            let len = usize::from(len % 8) + 1;
            d.transport
                .read(reg::CONFIG + u64::from(*offset), &mut buf[..len]);
        }
    });
    assert!(handle.pending() <= vmm::virtio::input::MAX_PENDING_EVENTS);
});
