//! The slow end-to-end network test: a real Linux guest (the shipped minimal image) launched with an SSH
//! key gets its address by DHCP, and a client in an "outside" namespace (the test's own; the portal's
//! uplink ends there) logs in with that key through a port forward, then through a floating IP, and
//! reads the VM's own instance id from the metadata service. Nothing touches the machine's own
//! network namespace.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use super::helpers::spawn_app_with;
use super::vm_helpers::*;

/// The Linux guest needs about a minute to reach user space on an unloaded emulating KVM host (six on a
/// loaded one, measured), the SSH server starts after that. Conditions are polled; this only bounds a
/// broken run, as generously as `vmm/tests/linux_boot.rs` does.
const BOOT: Duration = Duration::from_secs(25 * 60);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn prerequisites(test: &str) -> bool {
    let tools = ["ip", "dnsmasq", "nft", "ssh", "ssh-keygen"].iter().all(|t| {
        Command::new("which")
            .arg(t)
            .output()
            .is_ok_and(|o| o.status.success())
    });
    let image = repo().join("guest/out/manifest.json").exists();
    // Images built before the guests had networking carry no SSH server.
    let sshd = std::fs::read(repo().join("guest/out/initramfs.cpio"))
        .is_ok_and(|cpio| cpio.windows(8).any(|w| w == b"dropbear"));
    if !(tools && image && sshd) {
        eprintln!(
            "SKIP: {test}: needs ip, dnsmasq, nft, ssh and guest images with an SSH server (scripts/prepare.sh)"
        );
        return false;
    }
    true
}

/// A namespace of the test's (the outside world) and the portal's plane, both removed at the end.
pub(super) struct Namespaces {
    pub outside: String,
    pub plane: String,
    pub state_dir: PathBuf,
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        if let Ok(plane) = netplane::Plane::open(&self.plane, &self.state_dir) {
            let _ = plane.destroy();
        }
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.outside])
            .status();
    }
}

/// `ssh` from the outside namespace; its output, or `None` if it failed.
fn ssh(outside: &str, key: &Path, port: u16, host: &str, command: &str) -> Option<String> {
    let out = Command::new("ip")
        .args(["netns", "exec", outside, "ssh", "-i"])
        .arg(key)
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "ConnectTimeout=10",
            "-o",
            "BatchMode=yes",
            "-o",
            "LogLevel=ERROR",
            "-p",
            &port.to_string(),
            &format!("root@{host}"),
            command,
        ])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// What the host and the guest looked like, printed when the test fails.
fn diagnose(plane: &str, data_dir: &Path) -> String {
    let mut out = String::new();
    for args in [
        vec!["ip", "netns", "exec", plane, "ip", "-o", "addr"],
        vec!["ip", "netns", "exec", plane, "ip", "neigh"],
        vec!["ip", "netns", "exec", plane, "nft", "list", "ruleset"],
    ] {
        if let Ok(o) = Command::new(args[0]).args(&args[1..]).output() {
            out.push_str(&format!(
                "$ {}\n{}\n",
                args.join(" "),
                String::from_utf8_lossy(&o.stdout)
            ));
        }
    }
    for pattern in [
        "net/dhcp/cpbr0/log",
        "net/dhcp/cpbr0/leases",
        "net/dhcp/cpbr0/hosts",
    ] {
        out.push_str(&format!(
            "--- {pattern}\n{}\n",
            std::fs::read_to_string(data_dir.join(pattern)).unwrap_or_default()
        ));
    }
    if let Ok(vms) = std::fs::read_dir(data_dir.join("vms")) {
        for vm in vms.flatten() {
            let log = control(&vm.path(), json!({"cmd": "console-log"}));
            let log = log["data"].as_str().unwrap_or_default();
            let tail: String = log
                .chars()
                .rev()
                .take(3000)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            out.push_str(&format!(
                "--- console of {}\n{tail}\n",
                vm.file_name().to_string_lossy()
            ));
        }
    }
    out
}

/// Retries `ssh` until it works (the guest boots, then starts its SSH server) or `BOOT` passes.
async fn ssh_when_up(outside: &str, key: &Path, port: u16, host: &str, command: &str) -> String {
    let deadline = Instant::now() + BOOT;
    loop {
        let (o, k, h, c) = (
            outside.to_string(),
            key.to_path_buf(),
            host.to_string(),
            command.to_string(),
        );
        if let Some(out) = tokio::task::spawn_blocking(move || ssh(&o, &k, port, &h, &c))
            .await
            .unwrap()
        {
            return out;
        }
        if Instant::now() >= deadline {
            return String::new();
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

#[tokio::test]
async fn ssh_into_a_linux_vm_through_a_port_forward_and_a_floating_ip() {
    if !kvm_or_skip("ssh_into_a_linux_vm") || !prerequisites("ssh_into_a_linux_vm") {
        return;
    }
    let pid = std::process::id();
    let outside = format!("cptest-out-{pid}");
    let plane = format!("cptest-ssh-{pid}");
    assert!(Command::new("ip")
        .args(["netns", "add", &outside])
        .status()
        .unwrap()
        .success());
    Command::new("ip")
        .args(["netns", "exec", &outside, "ip", "link", "set", "lo", "up"])
        .status()
        .unwrap();
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("id_ed25519");
    assert!(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .unwrap()
        .success());
    let public_key = std::fs::read_to_string(key.with_extension("pub")).unwrap();

    let (o, p) = (outside.clone(), plane.clone());
    let app = spawn_app_with(move |s| {
        s.guest_dir = repo().join("guest/out");
        s.vmm_binary = Some(vmm_binary());
        s.network.enabled = true;
        s.network.namespace = p;
        s.network.pool = "10.202.0.0/16".parse().unwrap();
        s.network.uplink = Some("100.127.9.0/24".parse().unwrap());
        s.network.uplink_outer = format!("cpo{}", pid % 100_000);
        s.network.uplink_outer_netns = Some(o);
        s.network.floating_pool = Some("100.127.9.128/25".parse().unwrap());
    })
    .await;
    let _ns = Namespaces {
        outside: outside.clone(),
        plane: plane.clone(),
        state_dir: app.data_dir.join("net"),
    };
    let api = member_api(&app, "acme").await;
    let (_, images) = api.get("/images").await;
    let image = images
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "minimal")
        .expect("the minimal image is registered")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, flavors) = api.get("/flavors").await;
    let flavor = flavors
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["memory_mib"].as_u64().unwrap_or(0) >= 256)
        .min_by_key(|f| f["memory_mib"].as_u64())
        .expect("a flavor with 256 MiB")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, vm) = api
        .post(
            "/vms",
            &json!({"name": "web", "image_id": image, "flavor_id": flavor, "ssh_key": public_key.trim()}),
        )
        .await;
    assert_eq!(status, 202, "{vm}");
    let vm_id = vm["id"].as_str().unwrap().to_string();

    // The tenant opens SSH in its default group and forwards a port to it.
    let (_, groups) = api.get("/security-groups").await;
    let group = groups[0]["id"].as_str().unwrap().to_string();
    let (status, body) = api
        .post(
            &format!("/security-groups/{group}/rules"),
            &json!({"protocol": "tcp", "port_min": 22, "port_max": 22, "source_cidr": "0.0.0.0/0"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, fwd) = api
        .post(
            "/port-forwards",
            &json!({"vm_id": vm_id, "protocol": "tcp", "vm_port": 22}),
        )
        .await;
    assert_eq!(status, 201, "{fwd}");
    let (_, detail) = api.get(&format!("/vms/{vm_id}")).await;
    let command = detail["network"]["ssh_command"].as_str().unwrap().to_string();
    let host_port = fwd["host_port"].as_u64().unwrap() as u16;
    assert_eq!(
        command,
        format!("ssh -p {host_port} root@100.127.9.2"),
        "{detail}"
    );

    // The command the VM page shows works, with the key given at launch.
    let out = ssh_when_up(
        &outside,
        &key,
        host_port,
        "100.127.9.2",
        "echo ok; wget -qO- http://169.254.169.254/latest/meta-data/instance-id",
    )
    .await;
    assert!(
        out.starts_with("ok\n"),
        "ssh through the forward failed: {out}\n{}",
        diagnose(&plane, &app.data_dir)
    );
    assert!(out.contains(&vm_id), "the metadata service names the VM: {out}");

    // A floating IP: in and out under the public address.
    let (status, fip) = api.post("/floating-ips", &json!({})).await;
    assert_eq!(status, 201, "{fip}");
    let address = fip["address"].as_str().unwrap().to_string();
    let (status, body) = api
        .put(
            &format!("/floating-ips/{}", fip["id"].as_str().unwrap()),
            &json!({"vm_id": vm_id}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let out = ssh_when_up(&outside, &key, 22, &address, "echo via-floating").await;
    assert_eq!(out.trim(), "via-floating");
}
