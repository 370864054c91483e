//! A new serial console starts with the VM's recent output, and the console log is plain text.

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

use crate::console::{open, ws_path};
use crate::helpers::spawn_app_with_vms;
use crate::vm_helpers::*;

#[tokio::test]
async fn the_serial_console_replays_recent_output_and_the_log_has_no_escape_sequences() {
    if !kvm_or_skip("the_serial_console_replays_recent_output_and_the_log_has_no_escape_sequences") {
        return;
    }
    let app = spawn_app_with_vms().await;
    let api = member_api(&app, "acme").await;
    let (image, flavor) = probe_and_micro(&api).await;
    let vm = launch(&api, "replayed", &image, &flavor).await;
    wait_state(&api, &vm, "running", GUEST_WAIT).await;
    let run_dir = app.data_dir.join("vms").join(&vm);
    // The guest said something before anyone connected; a bell and colour codes too.
    wait_console(&run_dir, "PROBE-GUEST READY", GUEST_WAIT);
    serial_line(&run_dir, "echo \u{1b}[1;31mred-word\u{1b}[0m");
    wait_console(&run_dir, "red-word", GUEST_WAIT);

    let mut ws = open(&app, &ws_path(&api, &vm, "serial").await).await.unwrap();
    let first = tokio::time::timeout(GUEST_WAIT, ws.next())
        .await
        .expect("data in time")
        .expect("open")
        .expect("no error");
    let Message::Binary(first) = first else {
        panic!("expected the replay as a binary frame: {first:?}")
    };
    let text = String::from_utf8_lossy(&first);
    assert!(text.contains("PROBE-GUEST READY"), "{text}");
    assert!(text.contains("red-word"), "{text}");
    assert!(!text.contains('\u{1b}'), "no escape sequences replayed: {text:?}");
    assert!(text.contains("\r\n"), "lines end CRLF for the terminal: {text:?}");

    let (status, log) = api.get(&format!("/vms/{vm}/console-log")).await;
    assert_eq!(status, 200, "{log}");
    let log = log["text"].as_str().unwrap();
    assert!(log.contains("red-word"), "{log}");
    assert!(!log.contains('\u{1b}') && !log.contains('\r'), "{log:?}");
}
