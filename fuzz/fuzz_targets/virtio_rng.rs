//! virtio-rng behind the real virtio-mmio transport, driven by a hostile guest driver: arbitrary
//! descriptor tables (chained and indirect), avail rings and indices, addresses and lengths. The
//! entropy source is `/dev/zero`, so runs are reproducible.
#![no_main]

use std::fs::File;
use std::sync::{Arc, OnceLock};

use arbitrary::Arbitrary;
use fuzz_common::{Driver, Op, Setup};
use libfuzzer_sys::fuzz_target;
use vmm::virtio::rng::Rng;

#[derive(Debug, Arbitrary)]
struct Input {
    setup: Setup,
    ops: Vec<Op<()>>,
}

fn source() -> Arc<File> {
    static ZERO: OnceLock<Arc<File>> = OnceLock::new();
    ZERO.get_or_init(|| Arc::new(File::open("/dev/zero").expect("/dev/zero")))
        .clone()
}

fuzz_target!(|input: Input| {
    let mut driver = Driver::new(Box::new(Rng::with_source(source())));
    driver.run_all(&input.setup, &input.ops, |_, ()| {});
});
