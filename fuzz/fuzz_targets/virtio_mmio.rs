//! The virtio-mmio transport's register file: arbitrary sequences of reads and writes of any width
//! (1 to 8 bytes) at any offset of the device window, with a real device behind it (block, rng,
//! keyboard, tablet or network card) and guest memory the driver may fill, so status transitions,
//! feature pages, queue programming, activation, notification, interrupt acknowledgement and resets all
//! happen in any order. The network card runs its own thread, so its runs do not repeat exactly.
#![no_main]

use std::fs::File;
use std::sync::{Arc, OnceLock};

use arbitrary::Arbitrary;
use fuzz_common::{Driver, Op, RegOp, Setup};
use libfuzzer_sys::fuzz_target;
use vmm::virtio::block::{Block, BlockConfig};
use vmm::virtio::input::{Input, InputKind};
use vmm::virtio::net::{Net, NetCounters, Tap};
use vmm::virtio::rng::Rng;
use vmm::virtio::VirtioDevice;
use vmm_api::config::MacAddr;

#[derive(Debug, Arbitrary)]
enum Device {
    Block {
        read_only: bool,
    },
    Rng,
    Keyboard,
    Tablet,
    /// The real card, network thread included (started at DRIVER_OK, stopped at reset).
    Net {
        mtu: u16,
    },
}

#[derive(Debug, Arbitrary)]
enum Step {
    /// A register access (the point of this target).
    Reg(RegOp),
    /// Anything else a driver does: memory, descriptors, rings, notifications, resets.
    Driver(Op<()>),
}

#[derive(Debug, Arbitrary)]
struct Case {
    device: Device,
    /// Start with the usual bring-up (features, queues, DRIVER_OK) or from a device nobody touched.
    setup: Option<Setup>,
    steps: Vec<Step>,
}

fn scratch_disk() -> Arc<File> {
    static DISK: OnceLock<Arc<File>> = OnceLock::new();
    DISK.get_or_init(|| Arc::new(fuzz_common::scratch_file(64 * 1024)))
        .clone()
}

fn zero() -> Arc<File> {
    static ZERO: OnceLock<Arc<File>> = OnceLock::new();
    ZERO.get_or_init(|| Arc::new(File::open("/dev/zero").expect("/dev/zero")))
        .clone()
}

fuzz_target!(|case: Case| {
    // The host end of a card's socket-pair TAP, open for the whole run.
    let mut _peer = None;
    let device: Box<dyn VirtioDevice> = match case.device {
        Device::Block { read_only } => {
            let cfg = BlockConfig {
                path: "fuzz-disk".into(),
                read_only,
                serial: "fuzz".into(),
            };
            Box::new(Block::with_file(&cfg, scratch_disk()).expect("block device"))
        }
        Device::Rng => Box::new(Rng::with_source(zero())),
        Device::Keyboard => Box::new(Input::new(InputKind::Keyboard, "kbd").0),
        Device::Tablet => Box::new(
            Input::new(
                InputKind::Tablet {
                    width: 640,
                    height: 480,
                },
                "tablet",
            )
            .0,
        ),
        Device::Net { mtu } => {
            let (tap, peer) = Tap::seqpacket().expect("socket pair");
            _peer = Some(peer);
            let mac = MacAddr([0x52, 0x54, 0, 0, 0, 1]);
            let counters = Arc::new(NetCounters::new(mac, "fuzz"));
            Box::new(Net::new(mac, mtu, Arc::new(tap), counters).expect("network card"))
        }
    };
    let mut driver = Driver::new(device);
    let brought_up = case.setup.is_some();
    let setup = case.setup.unwrap_or(Setup {
        features: 0,
        accept_offered: true,
        layouts: Vec::new(),
        skip_driver_ok: true,
    });
    if brought_up {
        driver.bring_up(&setup);
    }
    for step in &case.steps {
        match step {
            Step::Reg(r) => driver.reg_op(r),
            Step::Driver(op) => driver.run(&setup, op, &mut |_, ()| {}),
        }
    }
});
