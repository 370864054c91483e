//! One DHCP server per tenant network: dnsmasq (Debian's `dnsmasq-base`) inside the portal's namespace,
//! bound to the network's bridge, handing out only the static leases the portal wrote (MAC → address,
//! from the database), with the gateway as router and the network's MTU. No DNS (`--port=0`).
//!
//! Each server keeps its files in `<state dir>/<bridge>/` (hosts, leases, pid, log) and runs as a daemon,
//! so it outlives the portal: at start the portal finds it by its pid file and keeps it. A changed
//! hosts file is re-read on SIGHUP; a changed network (range, gateway, MTU) restarts the server.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::namespace::{self, Namespace, NamespaceError};
use crate::state::Network;

/// Errors managing DHCP servers.
#[derive(Debug, thiserror::Error)]
pub enum DhcpError {
    #[error("Failed to write {0}")]
    Write(PathBuf, #[source] io::Error),
    #[error("Failed to start dnsmasq for {0}")]
    Start(String, #[source] NamespaceError),
    #[error("Failed to remove {0}")]
    Remove(PathBuf, #[source] io::Error),
}

/// The DHCP servers under one state directory.
#[derive(Debug, Clone)]
pub struct Dhcp {
    dir: PathBuf,
}

fn mac_text(m: &[u8; 6]) -> String {
    format!(
        "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        m[0], m[1], m[2], m[3], m[4], m[5]
    )
}

/// The static leases, one `mac,address` line per port, sorted (so an unchanged network writes the same
/// bytes).
pub fn hosts_file(net: &Network) -> String {
    let mut lines: Vec<String> = net
        .ports
        .iter()
        .map(|p| format!("{},{}\n", mac_text(&p.mac), p.ip))
        .collect();
    lines.sort();
    lines.concat()
}

/// The command-line arguments of a network's server.
pub fn arguments(net: &Network, dir: &Path) -> Vec<String> {
    let file = |n: &str| dir.join(n).display().to_string();
    vec![
        "--conf-file=/dev/null".into(),
        "--no-resolv".into(),
        "--no-hosts".into(),
        "--port=0".into(),
        format!("--interface={}", net.bridge),
        "--bind-interfaces".into(),
        "--except-interface=lo".into(),
        format!(
            "--dhcp-range={},static,{},1h",
            net.cidr.network(),
            net.cidr.netmask()
        ),
        format!("--dhcp-hostsfile={}", file("hosts")),
        format!("--dhcp-leasefile={}", file("leases")),
        format!("--dhcp-option=option:router,{}", net.gateway),
        format!("--dhcp-option=option:mtu,{}", net.mtu),
        "--dhcp-authoritative".into(),
        format!("--pid-file={}", file("pid")),
        format!("--log-facility={}", file("log")),
    ]
}

/// Writes `data` to `path` unless it already holds exactly that; returns whether it changed.
fn write_if_changed(path: &Path, data: &str) -> Result<bool, DhcpError> {
    if fs::read_to_string(path).ok().as_deref() == Some(data) {
        return Ok(false);
    }
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, data)
        .and_then(|()| fs::rename(&tmp, path))
        .map_err(|e| DhcpError::Write(path.into(), e))?;
    Ok(true)
}

/// The pid of the dnsmasq serving `bridge` from `dir`, if it runs.
fn running_pid(dir: &Path, bridge: &str) -> Option<i32> {
    let pid: i32 = fs::read_to_string(dir.join("pid")).ok()?.trim().parse().ok()?;
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let wanted = format!("--interface={bridge}");
    let ours = cmdline.split(|b| *b == 0).any(|arg| arg == wanted.as_bytes());
    ours.then_some(pid)
}

fn signal(pid: i32, sig: i32) {
    // SAFETY: kill sends a signal to a pid we read from our own pid file and checked is our dnsmasq.
    unsafe {
        libc::kill(pid, sig);
    }
}

impl Dhcp {
    pub fn new(dir: impl Into<PathBuf>) -> Dhcp {
        Dhcp { dir: dir.into() }
    }

    fn dir_of(&self, bridge: &str) -> PathBuf {
        self.dir.join(bridge)
    }

    /// Makes the network's server run with its current leases.
    pub fn ensure(&self, ns: &Namespace, net: &Network) -> Result<(), DhcpError> {
        let dir = self.dir_of(&net.bridge);
        fs::create_dir_all(&dir).map_err(|e| DhcpError::Write(dir.clone(), e))?;
        let args = arguments(net, &dir);
        let hosts_changed = write_if_changed(&dir.join("hosts"), &hosts_file(net))?;
        let args_changed = write_if_changed(&dir.join("args"), &args.join("\n"))?;
        match running_pid(&dir, &net.bridge) {
            Some(pid) if !args_changed => {
                if hosts_changed {
                    signal(pid, libc::SIGHUP);
                }
                Ok(())
            }
            running => {
                if let Some(pid) = running {
                    signal(pid, libc::SIGTERM);
                }
                self.start(ns, net, &args)
            }
        }
    }

    fn start(&self, ns: &Namespace, net: &Network, args: &[String]) -> Result<(), DhcpError> {
        let start = |e| DhcpError::Start(net.bridge.clone(), e);
        let mut cmd = ns.command("dnsmasq").map_err(start)?;
        cmd.args(args);
        // dnsmasq forks into the background once it is listening; the foreground process exits 0.
        namespace::run(&mut cmd).map_err(start)?;
        tracing::info!(bridge = %net.bridge, network = %net.id, "DHCP server started");
        Ok(())
    }

    /// Stops the server of `bridge` and removes its files.
    pub fn stop(&self, bridge: &str) -> Result<(), DhcpError> {
        let dir = self.dir_of(bridge);
        if let Some(pid) = running_pid(&dir, bridge) {
            signal(pid, libc::SIGTERM);
            tracing::info!(bridge, "DHCP server stopped");
        }
        match fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(DhcpError::Remove(dir, e)),
            _ => Ok(()),
        }
    }

    /// Bridges that have a server directory (running or not).
    pub fn known(&self) -> Vec<String> {
        fs::read_dir(&self.dir)
            .map(|rd| {
                rd.flatten()
                    .filter(|e| e.path().is_dir())
                    .filter_map(|e| e.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether the server of `bridge` runs.
    pub fn is_running(&self, bridge: &str) -> bool {
        running_pid(&self.dir_of(bridge), bridge).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Port;

    #[test]
    fn leases_and_arguments_come_from_the_network() {
        let port = |id: &str, last: u8| Port {
            id: id.into(),
            vm_id: "vm".into(),
            tap: format!("cpt{id}"),
            mac: [0x52, 0x54, 0, 0, 0, last],
            ip: std::net::Ipv4Addr::new(10, 20, 0, last),
            security_groups: vec![],
        };
        let net = Network {
            id: "n1".into(),
            tenant_id: "t1".into(),
            bridge: "cpbr1".into(),
            cidr: "10.20.0.0/24".parse().unwrap(),
            gateway: "10.20.0.1".parse().unwrap(),
            mtu: 1450,
            ports: vec![port("b", 11), port("a", 10)],
        };
        assert_eq!(
            hosts_file(&net),
            "52:54:00:00:00:0a,10.20.0.10\n52:54:00:00:00:0b,10.20.0.11\n"
        );
        let args = arguments(&net, Path::new("/s/cpbr1"));
        assert!(args.contains(&"--dhcp-range=10.20.0.0,static,255.255.255.0,1h".to_string()));
        assert!(args.contains(&"--dhcp-option=option:mtu,1450".to_string()));
        assert!(args.contains(&"--interface=cpbr1".to_string()));
        assert!(args.contains(&"--port=0".to_string()));
    }
}
