//! The metadata service VMs find at `http://169.254.169.254/`: EC2-style paths and OpenStack's
//! `meta_data.json`, so unmodified cloud-init images configure themselves (hostname, SSH key, user data).
//!
//! It listens inside the portal's network namespace; the firewall redirects `169.254.169.254:80` on a
//! tenant bridge to that network's gateway at the metadata port and lets nothing else reach it. A VM
//! is identified by the address it connects from and the gateway it reached (its network) — sound
//! because the bridge table drops spoofed source addresses — and is only ever told about itself.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sqlx::SqlitePool;

use crate::db::{networks, public_access, vms};

/// Both ends of a metadata connection.
#[derive(Debug, Clone, Copy)]
pub struct Ends {
    /// The gateway the VM reached (after the redirect): names its network.
    pub local: SocketAddr,
    /// The VM's own address.
    pub remote: SocketAddr,
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, tokio::net::TcpListener>>
    for Ends
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, tokio::net::TcpListener>) -> Self {
        let remote = *stream.remote_addr();
        let local = stream.io().local_addr().unwrap_or(remote);
        Ends { local, remote }
    }
}

/// What the service knows about the asking VM.
struct Instance {
    id: String,
    name: String,
    tenant_id: String,
    ip: String,
    floating_ip: Option<String>,
    ssh_key: String,
    user_data: String,
}

async fn instance(pool: &SqlitePool, ends: Ends) -> Option<Instance> {
    let (IpAddr::V4(gateway), IpAddr::V4(ip)) = (ends.local.ip(), ends.remote.ip()) else {
        return None;
    };
    let vm_id = networks::vm_at(pool, &gateway.to_string(), &ip.to_string())
        .await
        .map_err(|e| tracing::error!(error = %e, "metadata: database error"))
        .ok()??;
    let vm = vms::get(pool, &vm_id).await.ok()??;
    if vm.state() == app::model::VmState::Deleted {
        return None;
    }
    let floating_ip = public_access::floating_of_vm(pool, &vm_id).await.ok()?;
    Some(Instance {
        id: vm.id,
        name: vm.name,
        tenant_id: vm.tenant_id,
        ip: ip.to_string(),
        floating_ip,
        ssh_key: vm.ssh_key,
        user_data: vm.user_data,
    })
}

fn text(body: String) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

/// The VM's public keys (one per line of its `ssh_key`) with the names the metadata gives them: the first
/// is `default` (what single-key guests ask for), the others `key-1`, `key-2`, ...
fn public_keys(vm: &Instance) -> Vec<(String, &str)> {
    vm.ssh_key
        .lines()
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .enumerate()
        .map(|(i, k)| {
            (
                if i == 0 {
                    "default".to_string()
                } else {
                    format!("key-{i}")
                },
                k,
            )
        })
        .collect()
}

/// `/latest/meta-data/public-keys[/<i>[/openssh-key]]`, EC2 style.
fn public_key_answer(keys: &[(String, &str)], rest: &str) -> Response {
    if rest.is_empty() {
        let list: String = keys
            .iter()
            .enumerate()
            .map(|(i, (name, _))| format!("{i}={name}\n"))
            .collect();
        return text(list);
    }
    let (index, tail) = rest.split_once('/').unwrap_or((rest, ""));
    match (index.parse::<usize>().ok().and_then(|i| keys.get(i)), tail) {
        (Some(_), "") => text("openssh-key\n".into()),
        (Some((_, key)), "openssh-key") => text(format!("{key}\n")),
        _ => not_found(),
    }
}

/// The answer for `path` about `vm`.
fn answer(vm: &Instance, path: &str) -> Response {
    let path = path.trim_end_matches('/');
    let keys = public_keys(vm);
    if !keys.is_empty() {
        if let Some(rest) = path.strip_prefix("/latest/meta-data/public-keys") {
            if rest.is_empty() || rest.starts_with('/') {
                return public_key_answer(&keys, rest.trim_start_matches('/'));
            }
        }
    }
    match path {
        "" => text("latest\nopenstack\n".into()),
        "/latest" => text("meta-data/\nuser-data\n".into()),
        "/latest/meta-data" => {
            let mut items = vec!["hostname", "instance-id", "local-hostname", "local-ipv4"];
            if vm.floating_ip.is_some() {
                items.push("public-ipv4");
            }
            if !keys.is_empty() {
                items.push("public-keys/");
            }
            text(items.join("\n") + "\n")
        }
        "/latest/meta-data/instance-id" => text(vm.id.clone()),
        "/latest/meta-data/hostname" | "/latest/meta-data/local-hostname" => text(vm.name.clone()),
        "/latest/meta-data/local-ipv4" => text(vm.ip.clone()),
        "/latest/meta-data/public-ipv4" => vm.floating_ip.clone().map_or_else(not_found, text),
        "/latest/user-data" | "/openstack/latest/user_data" if !vm.user_data.is_empty() => {
            text(vm.user_data.clone())
        }
        "/openstack" => text("latest\n".into()),
        "/openstack/latest" => text("meta_data.json\nuser_data\n".into()),
        "/openstack/latest/meta_data.json" => {
            let keys: serde_json::Map<String, serde_json::Value> = keys
                .iter()
                .map(|(name, key)| (name.clone(), serde_json::Value::from(*key)))
                .collect();
            let doc = serde_json::json!({
                "uuid": vm.id,
                "name": vm.name,
                "hostname": vm.name,
                "project_id": vm.tenant_id,
                "availability_zone": "nova",
                "public_keys": keys,
                "launch_index": 0,
            });
            (
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                doc.to_string(),
            )
                .into_response()
        }
        _ => not_found(),
    }
}

async fn serve(State(pool): State<SqlitePool>, ConnectInfo(ends): ConnectInfo<Ends>, uri: Uri) -> Response {
    match instance(&pool, ends).await {
        Some(vm) => answer(&vm, uri.path()),
        None => {
            tracing::warn!(from = %ends.remote, via = %ends.local, "metadata request from an address no VM holds");
            (StatusCode::FORBIDDEN, "unknown instance\n").into_response()
        }
    }
}

/// The metadata router (every path goes to one handler; only GET).
pub fn router(pool: SqlitePool) -> Router {
    Router::new()
        .route("/", get(serve))
        .route("/{*path}", get(serve))
        .with_state(pool)
}

/// Serves the metadata router on `listener` (bound inside the portal's namespace) until the process ends.
pub fn spawn(listener: std::net::TcpListener, pool: SqlitePool) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let app = router(pool).into_make_service_with_connect_info::<Ends>();
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the metadata service stopped");
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vm() -> Instance {
        Instance {
            id: "vm-1".into(),
            name: "web".into(),
            tenant_id: "t-1".into(),
            ip: "10.200.0.10".into(),
            floating_ip: None,
            ssh_key: "ssh-ed25519 AAAA test".into(),
            user_data: String::new(),
        }
    }

    async fn body(r: Response) -> (StatusCode, String) {
        let status = r.status();
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 20)
            .await
            .unwrap_or_default();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    #[tokio::test]
    async fn ec2_and_openstack_paths_answer_about_the_vm_only() {
        let v = vm();
        assert_eq!(body(answer(&v, "/latest/meta-data/instance-id")).await.1, "vm-1");
        assert_eq!(
            body(answer(&v, "/latest/meta-data/local-ipv4")).await.1,
            "10.200.0.10"
        );
        assert_eq!(
            body(answer(&v, "/latest/meta-data/public-keys/0/openssh-key"))
                .await
                .1,
            "ssh-ed25519 AAAA test\n"
        );
        assert_eq!(
            body(answer(&v, "/latest/meta-data/public-ipv4")).await.0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            body(answer(&v, "/latest/user-data")).await.0,
            StatusCode::NOT_FOUND
        );
        assert!(body(answer(&v, "/latest/meta-data/"))
            .await
            .1
            .contains("public-keys/"));
        let (_, json) = body(answer(&v, "/openstack/latest/meta_data.json")).await;
        let doc: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
        assert_eq!(doc["uuid"], "vm-1");
        assert_eq!(doc["public_keys"]["default"], "ssh-ed25519 AAAA test");
        assert_eq!(body(answer(&v, "/../etc/passwd")).await.0, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn every_chosen_key_is_listed_and_served() {
        let mut v = vm();
        v.ssh_key = "ssh-ed25519 AAAA pasted\nssh-ed25519 BBBB laptop".into();
        assert_eq!(
            body(answer(&v, "/latest/meta-data/public-keys/")).await.1,
            "0=default\n1=key-1\n"
        );
        assert_eq!(
            body(answer(&v, "/latest/meta-data/public-keys/1/openssh-key"))
                .await
                .1,
            "ssh-ed25519 BBBB laptop\n"
        );
        assert_eq!(
            body(answer(&v, "/latest/meta-data/public-keys/2/openssh-key"))
                .await
                .0,
            StatusCode::NOT_FOUND
        );
        let (_, json) = body(answer(&v, "/openstack/latest/meta_data.json")).await;
        let doc: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
        assert_eq!(doc["public_keys"]["key-1"], "ssh-ed25519 BBBB laptop");
        v.ssh_key = String::new();
        assert_eq!(
            body(answer(&v, "/latest/meta-data/public-keys")).await.0,
            StatusCode::NOT_FOUND
        );
    }
}
