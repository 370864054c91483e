//! Console tokens and the WebSocket proxy against real probe-guest VMs: every token rule (missing, garbage,
//! reused, expired, another VM's, another tenant's, a stopped VM's), the RFB handshake and a key press
//! through the proxy, the serial console echo, the frame size cap, and sessions ending when the VM stops.

use std::path::Path;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::helpers::{spawn_app_with_vms, Api, Site};
use super::vm_helpers::*;

const T: Duration = GUEST_WAIT;
type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn ticket(api: &Api, vm: &str, kind: &str) -> (u16, Value) {
    api.send(
        reqwest::Method::POST,
        &format!("/vms/{vm}/console"),
        Some(json!({ "kind": kind })),
    )
    .await
}

pub(crate) async fn ws_path(api: &Api, vm: &str, kind: &str) -> String {
    let (status, body) = ticket(api, vm, kind).await;
    assert_eq!(status, 201, "{body}");
    assert!(body["expires_in"].as_u64().unwrap() <= 60, "{body}");
    body["ws_path"].as_str().unwrap().to_string()
}

/// Opens a WebSocket like noVNC (subprotocol `binary`); an HTTP refusal comes back as (status, JSON body).
pub(crate) async fn open(site: &Site, path: &str) -> Result<Ws, (u16, Value)> {
    let url = format!("{}{path}", site.base.replacen("http", "ws", 1));
    let mut req = url.into_client_request().unwrap();
    req.headers_mut()
        .insert("sec-websocket-protocol", "binary".parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, res)) => {
            assert_eq!(
                res.headers().get("sec-websocket-protocol").unwrap(),
                "binary",
                "the proxy answers noVNC's subprotocol"
            );
            Ok(ws)
        }
        Err(tungstenite::Error::Http(res)) => {
            let body = res
                .body()
                .as_deref()
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or(Value::Null);
            Err((res.status().as_u16(), body))
        }
        Err(e) => panic!("WebSocket connect failed: {e}"),
    }
}

async fn refused(site: &Site, path: &str) -> (u16, Value) {
    match open(site, path).await {
        Ok(_) => panic!("{path} was accepted"),
        Err(refusal) => refusal,
    }
}

/// Reads WebSocket binary messages as one byte stream.
struct Reader {
    ws: Ws,
    buf: Vec<u8>,
}

impl Reader {
    async fn exact(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            let msg = tokio::time::timeout(T, self.ws.next())
                .await
                .expect("data in time")
                .expect("socket open")
                .expect("no error");
            if let Message::Binary(b) = msg {
                self.buf.extend_from_slice(&b);
            }
        }
        self.buf.drain(..n).collect()
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.ws
            .send(Message::Binary(bytes.to_vec().into()))
            .await
            .unwrap();
    }

    /// Reads until the server closes; returns its close code (None: closed without a frame).
    async fn close_code(&mut self) -> Option<u16> {
        loop {
            match tokio::time::timeout(T, self.ws.next())
                .await
                .expect("close in time")
            {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return None,
            }
        }
    }
}

/// RFB 3.8 client handshake with security None; returns the framebuffer size.
async fn rfb_handshake(r: &mut Reader) -> (u16, u16) {
    assert_eq!(r.exact(12).await, b"RFB 003.008\n");
    r.send(b"RFB 003.008\n").await;
    let n = r.exact(1).await[0] as usize;
    let types = r.exact(n).await;
    assert!(types.contains(&1), "security None offered: {types:?}");
    r.send(&[1]).await;
    assert_eq!(r.exact(4).await, [0, 0, 0, 0], "security result OK");
    r.send(&[1]).await; // ClientInit, shared
    let init = r.exact(24).await;
    let name_len = u32::from_be_bytes([init[20], init[21], init[22], init[23]]) as usize;
    r.exact(name_len).await;
    (
        u16::from_be_bytes([init[0], init[1]]),
        u16::from_be_bytes([init[2], init[3]]),
    )
}

fn key_event(down: bool, keysym: u32) -> Vec<u8> {
    let mut m = vec![4, u8::from(down), 0, 0];
    m.extend_from_slice(&keysym.to_be_bytes());
    m
}

async fn audit_count(data_dir: &Path, action: &str) -> i64 {
    let url = format!("sqlite://{}", data_dir.join("portal.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = ?")
        .bind(action)
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    n
}

#[tokio::test]
async fn console_tokens_are_single_use_short_lived_and_bound_to_user_and_vm() {
    if !kvm_or_skip("console_tokens_are_single_use_short_lived_and_bound_to_user_and_vm") {
        return;
    }
    let app = spawn_app_with_vms().await;
    let acme = member_api(&app, "acme").await;
    let other = member_api(&app, "globex").await;
    let (image, flavor) = probe_and_micro(&acme).await;
    let a = launch(&acme, "alpha", &image, &flavor).await;
    let b = launch(&acme, "beta", &image, &flavor).await;
    let g = launch(&other, "gamma", &image, &flavor).await;
    for vm in [&a, &b] {
        wait_state(&acme, vm, "running", T).await;
    }
    wait_state(&other, &g, "running", T).await;

    // Missing and made-up tokens.
    let (status, body) = refused(&app, &format!("/console/{a}/ws")).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("token"),
        "{body}"
    );
    let forged = format!("/console/{a}/ws?token=cct_{}", "A".repeat(43));
    assert_eq!(refused(&app, &forged).await.0, 401);
    assert_eq!(
        refused(&app, &format!("/console/{a}/ws?token=%00%ff")).await.0,
        401
    );

    // Used once, refused the second time.
    let path = ws_path(&acme, &a, "vnc").await;
    let mut first = Reader {
        ws: open(&app, &path).await.unwrap(),
        buf: vec![],
    };
    rfb_handshake(&mut first).await;
    let (status, body) = refused(&app, &path).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already used"),
        "{body}"
    );

    // A plain GET (not a WebSocket) does not burn the token.
    let path = ws_path(&acme, &a, "serial").await;
    let plain = reqwest::get(format!("{}{path}", app.base)).await.unwrap();
    assert!(plain.status().is_client_error(), "{}", plain.status());
    assert!(open(&app, &path).await.is_ok());

    // Expired (pushed into the past directly in the database).
    let path = ws_path(&acme, &a, "vnc").await;
    let url = format!("sqlite://{}", app.data_dir.join("portal.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query("UPDATE console_tokens SET created_at = created_at - 120, expires_at = expires_at - 120 WHERE used_at IS NULL")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let (status, body) = refused(&app, &path).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("expired"),
        "{body}"
    );

    // Another VM's token, in the same tenant and from another tenant.
    let for_b = ws_path(&acme, &b, "vnc").await;
    let on_a = for_b.replace(&b, &a);
    assert_eq!(refused(&app, &on_a).await.0, 403);
    let for_g = ws_path(&other, &g, "vnc").await;
    assert_eq!(refused(&app, &for_g.replace(&g, &a)).await.0, 403);
    // Another tenant cannot even ask for one.
    let (status, _) = ticket(&other, &a, "vnc").await;
    assert_eq!(status, 404);
    let (status, body) = ticket(&acme, &a, "teletype").await;
    assert_eq!(status, 422, "{body}");

    // A foreign Origin (cross-site WebSocket hijacking) is refused even with a good token.
    let path = ws_path(&acme, &a, "vnc").await;
    let mut req = format!("{}{path}", app.base.replacen("http", "ws", 1))
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("origin", "http://evil.test".parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Err(tungstenite::Error::Http(res)) => assert_eq!(res.status(), 403),
        other => panic!("foreign origin accepted: {:?}", other.map(|_| ())),
    }

    // A stopped VM: no token is issued, and one issued before the stop is refused.
    let late = ws_path(&acme, &b, "serial").await;
    action(&acme, &b, "force_off").await;
    wait_state(&acme, &b, "stopped", T).await;
    let (status, body) = ticket(&acme, &b, "vnc").await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(refused(&app, &late).await.0, 409);

    // Every open was audited: alpha's vnc and serial sessions.
    assert_eq!(audit_count(&app.data_dir, "console_open").await, 2);
}

// Multi-threaded: `wait_console` blocks its thread, and the proxy (on this runtime) must keep pumping.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_and_serial_reach_the_guest_through_the_proxy_and_sessions_end_with_the_vm() {
    if !kvm_or_skip("keys_and_serial_reach_the_guest_through_the_proxy_and_sessions_end_with_the_vm") {
        return;
    }
    let app = spawn_app_with_vms().await;
    let api = member_api(&app, "acme").await;
    let (image, flavor) = probe_and_micro(&api).await;
    let vm = launch(&api, "alpha", &image, &flavor).await;
    wait_state(&api, &vm, "running", T).await;
    let run_dir = app.data_dir.join("vms").join(&vm);
    wait_console(&run_dir, "PROBE-GUEST READY", T);

    // VNC: the handshake crosses the proxy, and a key press reaches the guest's keyboard.
    let mut vnc = Reader {
        ws: open(&app, &ws_path(&api, &vm, "vnc").await).await.unwrap(),
        buf: vec![],
    };
    let (w, h) = rfb_handshake(&mut vnc).await;
    assert!(w >= 640 && h >= 480, "{w}x{h}");
    vnc.send(&key_event(true, 'a' as u32)).await;
    vnc.send(&key_event(false, 'a' as u32)).await;
    wait_console(&run_dir, "KEY a", T);

    // Serial: what is typed is echoed, and commands run.
    let mut serial = Reader {
        ws: open(&app, &ws_path(&api, &vm, "serial").await).await.unwrap(),
        buf: vec![],
    };
    serial.send(b"echo through-the-proxy\r").await;
    let mut seen = String::new();
    while seen.matches("through-the-proxy").count() < 2 {
        let chunk = serial.exact(1).await;
        seen.push(chunk[0] as char);
    }
    // The console log over REST shows the same output.
    let (status, log) = api.get(&format!("/vms/{vm}/console-log")).await;
    assert_eq!(status, 200, "{log}");
    assert!(log["text"].as_str().unwrap().contains("KEY a"), "{log}");

    // A message over 64 KiB closes that socket with 1009; the other session is unaffected.
    let mut big = Reader {
        ws: open(&app, &ws_path(&api, &vm, "serial").await).await.unwrap(),
        buf: vec![],
    };
    big.send(&vec![b'x'; 100 * 1024]).await;
    assert_eq!(big.close_code().await, Some(1009));
    let mut huge = Reader {
        ws: open(&app, &ws_path(&api, &vm, "serial").await).await.unwrap(),
        buf: vec![],
    };
    // Over the WebSocket layer's own limit: the server may drop the connection mid-send.
    let _ = huge
        .ws
        .send(Message::Binary(vec![b'x'; 1024 * 1024].into()))
        .await;
    assert!(matches!(huge.close_code().await, Some(1009) | None));
    vnc.send(&key_event(true, 'b' as u32)).await;
    vnc.send(&key_event(false, 'b' as u32)).await;
    wait_console(&run_dir, "KEY b", T);

    // Stopping the VM ends both sessions.
    action(&api, &vm, "force_off").await;
    wait_state(&api, &vm, "stopped", T).await;
    assert!(matches!(vnc.close_code().await, Some(1001) | None));
    assert!(matches!(serial.close_code().await, Some(1001) | None));
}
