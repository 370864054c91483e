//! The virtio-mmio transport's register file: arbitrary sequences of reads and writes of any width
//! (1 to 8 bytes) at any offset of the device window, with a real device behind it (block, rng,
//! keyboard or tablet) and guest memory the driver may fill, so status transitions, feature pages,
//! queue programming, activation, notification, interrupt acknowledgement and resets all happen in
//! any order.
#![no_main]

use std::fs::File;
use std::sync::{Arc, OnceLock};

use arbitrary::Arbitrary;
use fuzz_common::{Driver, Op, RegOp, Setup};
use libfuzzer_sys::fuzz_target;
use vmm::virtio::block::{Block, BlockConfig};
use vmm::virtio::input::{Input, InputKind};
use vmm::virtio::rng::Rng;
use vmm::virtio::VirtioDevice;

#[derive(Debug, Arbitrary)]
enum Device {
    Block { read_only: bool },
    Rng,
    Keyboard,
    Tablet,
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
    DISK.get_or_init(|| {
        let f = tempfile::tempfile().expect("scratch disk");
        f.set_len(64 * 1024).expect("scratch disk size");
        Arc::new(f)
    })
    .clone()
}

fn zero() -> Arc<File> {
    static ZERO: OnceLock<Arc<File>> = OnceLock::new();
    ZERO.get_or_init(|| Arc::new(File::open("/dev/zero").expect("/dev/zero")))
        .clone()
}

fuzz_target!(|case: Case| {
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
