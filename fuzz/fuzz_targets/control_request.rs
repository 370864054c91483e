//! `control.sock` requests: arbitrary bytes read line by line exactly as the VMM's connection loop does
//! (64 KiB line limit, UTF-8, trimmed, blank lines skipped), each line parsed and dispatched by the
//! real handler against a VM with no vCPUs but with a keyboard, a tablet, a network card's counters, a
//! serial console and guest RAM. Every answer must serialise and parse back, unchanged, with the
//! portal's own response type; and the portal's parser must take any answer line without panicking.
#![no_main]

use std::io::{BufRead, BufReader, Read};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use vmm::builder::RuntimeHandles;
use vmm::control::{handle, ControlCtx};
use vmm::devices::serial::SerialHub;
use vmm::state::Shared;
use vmm::virtio::input::{Input, InputKind};
use vmm::virtio::net::NetCounters;
use vmm_api::config::MacAddr;
use vmm_api::control::{Response, MAX_REQUEST_LINE};

fuzz_target!(|data: &[u8]| {
    // What a broken or hostile VMM could send the portal.
    let _ = serde_json::from_slice::<Response>(data);

    let (_kbd_dev, keyboard) = Input::new(InputKind::Keyboard, "kbd");
    let (_tablet_dev, tablet) = Input::new(
        InputKind::Tablet {
            width: 64,
            height: 48,
        },
        "tablet",
    );
    let runtime = RuntimeHandles {
        keyboard: Some(keyboard),
        tablet: Some(tablet),
        framebuffer: None,
        guest_mem: Some(fuzz_common::guest_memory()),
        nics: vec![Arc::new(NetCounters::new(
            MacAddr([0x52, 0x54, 0, 0, 0, 1]),
            "tap0",
        ))],
        disks: Vec::new(),
    };
    let ctx = ControlCtx::new(
        Arc::new(Shared::new("fuzz", Instant::now())),
        SerialHub::new(None),
        Arc::new(Mutex::new(runtime)),
        512,
    );

    let mut reader = BufReader::new(data);
    let mut line = String::new();
    loop {
        line.clear();
        match reader.by_ref().take(MAX_REQUEST_LINE as u64).read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if line.trim().is_empty() {
            continue;
        }
        let (resp, after) = handle(&ctx, line.trim());
        let text = serde_json::to_string(&resp).expect("every answer serialises");
        let back: Response = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("the portal cannot parse the answer {text}: {e}"));
        assert_eq!(back, resp, "answer changed on the wire: {text}");
        if let Some(ev) = after {
            ctx.shared.request(ev);
        }
    }
});
