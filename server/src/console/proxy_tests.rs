//! The proxy over an in-memory "TCP" stream and a unix socket pair standing in for the VMM: every way a
//! session ends, and bytes arriving whole and in order both ways.

use std::time::Duration;

use fastwebsockets::{Frame, OpCode, Payload, Role, WebSocket};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::net::UnixStream;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use super::*;
use crate::vm::VmChange;

struct Session {
    client: WebSocket<DuplexStream>,
    vmm: UnixStream,
    changes: broadcast::Sender<VmChange>,
    proxy: JoinHandle<ProxyEnd>,
}

fn start(limits: Limits) -> Session {
    let (server_io, client_io) = tokio::io::duplex(1 << 20);
    let (ours, vmm) = UnixStream::pair().unwrap();
    let (changes, rx) = broadcast::channel(4);
    let server = WebSocket::after_handshake(server_io, Role::Server);
    let proxy = tokio::spawn(async move { run(server, ours, "vm-1", rx, limits).await });
    Session {
        client: client(client_io),
        vmm,
        changes,
        proxy,
    }
}

fn client(io: DuplexStream) -> WebSocket<DuplexStream> {
    let mut ws = WebSocket::after_handshake(io, Role::Client);
    // `close_of` answers closes itself: the proxy may already have dropped the stream.
    ws.set_auto_close(false);
    ws
}

/// The next close frame the client receives: (code, reason). Answered like a browser would.
async fn close_of(client: &mut WebSocket<DuplexStream>) -> (u16, String) {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(5), client.read_frame())
            .await
            .expect("no close frame within 5 s")
            .expect("read");
        if frame.opcode == OpCode::Close {
            let code = u16::from_be_bytes([frame.payload[0], frame.payload[1]]);
            let reason = String::from_utf8(frame.payload[2..].to_vec()).unwrap();
            let _ = client.write_frame(Frame::close(code, b"")).await;
            return (code, reason);
        }
    }
}

async fn end_of(session: Session) -> ProxyEnd {
    tokio::time::timeout(Duration::from_secs(5), session.proxy)
        .await
        .expect("proxy did not end")
        .unwrap()
}

#[tokio::test]
async fn bytes_cross_both_ways_whole_and_in_order() {
    let mut s = start(Limits::default());
    // VMM → browser: many small writes (glyph-sized updates) and one larger than a frame.
    let mut sent = vec![];
    for i in 0..300u32 {
        let chunk: Vec<u8> = (0..1000).map(|j| ((i * 7 + j) % 251) as u8).collect();
        sent.extend_from_slice(&chunk);
    }
    sent.extend((0..(CHUNK * 2 + 17)).map(|i| (i % 253) as u8));
    let expect = sent.clone();
    let (mut vmm_read, mut vmm_write) = s.vmm.into_split();
    let writer = tokio::spawn(async move {
        for piece in sent.chunks(1000) {
            vmm_write.write_all(piece).await.unwrap();
        }
        vmm_write
    });
    let mut got = vec![];
    while got.len() < expect.len() {
        let frame = s.client.read_frame().await.unwrap();
        assert_eq!(frame.opcode, OpCode::Binary);
        assert!(frame.payload.len() <= CHUNK);
        got.extend_from_slice(&frame.payload);
    }
    assert_eq!(got, expect);
    let _vmm_write = writer.await.unwrap();

    // Browser → VMM: binary, text and a fragmented message all arrive as bytes.
    s.client
        .write_frame(Frame::binary(Payload::Borrowed(b"RFB 003.008\n")))
        .await
        .unwrap();
    s.client
        .write_frame(Frame::text(Payload::Borrowed(b"echo hi\r")))
        .await
        .unwrap();
    s.client
        .write_frame(Frame::new(false, OpCode::Binary, None, Payload::Borrowed(b"ab")))
        .await
        .unwrap();
    s.client
        .write_frame(Frame::new(
            true,
            OpCode::Continuation,
            None,
            Payload::Borrowed(b"cd"),
        ))
        .await
        .unwrap();
    let want = b"RFB 003.008\necho hi\rabcd";
    let mut buf = vec![0u8; want.len()];
    vmm_read.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, want);
}

#[tokio::test]
async fn pings_are_answered_and_a_client_close_is_echoed() {
    let mut s = start(Limits::default());
    s.client
        .write_frame(Frame::new(true, OpCode::Ping, None, Payload::Borrowed(b"p1")))
        .await
        .unwrap();
    let pong = s.client.read_frame().await.unwrap();
    assert_eq!(pong.opcode, OpCode::Pong);
    assert_eq!(&pong.payload[..], b"p1");
    s.client.write_frame(Frame::close(1000, b"bye")).await.unwrap();
    let (code, _) = close_of(&mut s.client).await;
    assert_eq!(code, 1000);
    assert_eq!(end_of(s).await, ProxyEnd::ClientClosed);
}

#[tokio::test]
async fn a_frame_over_the_cap_closes_with_1009_before_its_payload_is_read() {
    let mut s = start(Limits {
        max_message: 1024,
        ..Limits::default()
    });
    // Exactly at the cap passes.
    s.client
        .write_frame(Frame::binary(Payload::Owned(vec![b'x'; 1024])))
        .await
        .unwrap();
    let mut buf = vec![0u8; 1024];
    s.vmm.read_exact(&mut buf).await.unwrap();
    // One byte over: refused without forwarding anything.
    s.client
        .write_frame(Frame::binary(Payload::Owned(vec![b'y'; 1025])))
        .await
        .unwrap();
    let (code, reason) = close_of(&mut s.client).await;
    assert_eq!(code, 1009);
    assert!(reason.contains("larger"), "{reason}");
    let vmm = s.vmm;
    let mut rest = vec![];
    let (mut vmm_read, _w) = vmm.into_split();
    let _ = tokio::time::timeout(Duration::from_millis(200), vmm_read.read_to_end(&mut rest)).await;
    assert!(
        rest.is_empty(),
        "forwarded {} bytes of the refused frame",
        rest.len()
    );
}

#[tokio::test]
async fn a_malformed_frame_closes_with_1002() {
    let (server_io, mut client_io) = tokio::io::duplex(1 << 16);
    let (ours, _vmm) = UnixStream::pair().unwrap();
    let (_changes, rx) = broadcast::channel(4);
    let server = WebSocket::after_handshake(server_io, Role::Server);
    let proxy = tokio::spawn(async move { run(server, ours, "vm-1", rx, Limits::default()).await });
    // Reserved bits set, masked, empty payload.
    client_io.write_all(&[0xF2, 0x80, 1, 2, 3, 4]).await.unwrap();
    let mut client = client(client_io);
    let (code, _) = close_of(&mut client).await;
    assert_eq!(code, 1002);
    assert_eq!(proxy.await.unwrap(), ProxyEnd::ClientFailed);
}

#[tokio::test]
async fn the_vmm_closing_its_socket_ends_the_session_with_1001() {
    let mut s = start(Limits::default());
    s.vmm.write_all(b"last words").await.unwrap();
    s.vmm.shutdown().await.unwrap();
    let first = s.client.read_frame().await.unwrap();
    assert_eq!(&first.payload[..], b"last words");
    let (code, _) = close_of(&mut s.client).await;
    assert_eq!(code, 1001);
    assert_eq!(end_of(s).await, ProxyEnd::SocketClosed);
}

#[tokio::test]
async fn the_vm_stopping_ends_the_session_but_other_vms_do_not() {
    let mut s = start(Limits::default());
    let change = |vm: &str, state| VmChange {
        vm_id: vm.to_string(),
        tenant_id: "t".to_string(),
        state,
    };
    s.changes.send(change("vm-2", VmState::Stopped)).unwrap();
    s.changes.send(change("vm-1", VmState::Running)).unwrap();
    s.vmm.write_all(b"still here").await.unwrap();
    assert_eq!(&s.client.read_frame().await.unwrap().payload[..], b"still here");
    // A graceful stop keeps the console: the shutdown is worth watching.
    s.changes.send(change("vm-1", VmState::Stopping)).unwrap();
    s.vmm.write_all(b"reboot: Power down").await.unwrap();
    assert_eq!(
        &s.client.read_frame().await.unwrap().payload[..],
        b"reboot: Power down"
    );
    s.changes.send(change("vm-1", VmState::Stopped)).unwrap();
    let (code, reason) = close_of(&mut s.client).await;
    assert_eq!((code, reason.as_str()), (1001, "The VM stopped"));
    assert_eq!(end_of(s).await, ProxyEnd::VmStopped);
}

#[tokio::test]
async fn a_silent_client_is_closed_after_the_idle_timeout() {
    let mut s = start(Limits {
        idle: Duration::from_millis(100),
        ..Limits::default()
    });
    let (code, reason) = close_of(&mut s.client).await;
    assert_eq!(code, 1000);
    assert!(reason.contains("No input"), "{reason}");
    assert_eq!(end_of(s).await, ProxyEnd::Idle);
}

#[tokio::test]
async fn revoked_access_closes_the_session_with_1008_and_the_reason() {
    let (server_io, client_io) = tokio::io::duplex(1 << 16);
    let (ours, _vmm) = UnixStream::pair().unwrap();
    let (_changes, rx) = broadcast::channel(4);
    let (revoke, revoked) = tokio::sync::oneshot::channel::<&'static str>();
    let server = WebSocket::after_handshake(server_io, Role::Server);
    let proxy = tokio::spawn(async move {
        let revoked = async { revoked.await.unwrap_or("gone") };
        run_until(server, ours, "vm-1", rx, Limits::default(), revoked).await
    });
    let mut client = client(client_io);
    revoke.send("Your account was disabled.").unwrap();
    let (code, reason) = close_of(&mut client).await;
    assert_eq!((code, reason.as_str()), (1008, "Your account was disabled."));
    assert_eq!(
        proxy.await.unwrap(),
        ProxyEnd::Revoked("Your account was disabled.")
    );
}

#[test]
fn every_end_but_the_clients_own_close_sends_a_reasoned_close_frame() {
    assert_eq!(ProxyEnd::TooBig.close_frame().unwrap().0, 1009);
    assert_eq!(ProxyEnd::VmStopped.close_frame().unwrap().0, 1001);
    assert!(ProxyEnd::ClientClosed.close_frame().is_none());
    let (code, reason) = ProxyEnd::Idle.close_frame().unwrap();
    assert_eq!(code, 1000);
    assert!(reason.contains("No input"));
}
