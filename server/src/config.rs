//! `Settings`: defaults, then an optional TOML file (`PORTAL_CONFIG` or `portal.toml`), then `PORTAL_*`
//! environment variables (nested keys with `__`, e.g. `PORTAL_LOGIN__PER_ACCOUNT_PER_MINUTE`).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use secrecy::SecretString;
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("Failed to read the configuration")]
    Load(#[source] config::ConfigError),
    #[error("Invalid setting {key}: {reason}")]
    Invalid { key: &'static str, reason: String },
}

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    /// Address the portal listens on.
    pub listen: SocketAddr,
    /// Where the database and VM run directories live.
    pub data_dir: PathBuf,
    /// Built static site (wasm bundle, CSS, vendored JS).
    pub site_root: PathBuf,
    /// The origin browsers use to reach the portal (e.g. `https://cloud.example.com`), for the CSRF origin
    /// check behind a reverse proxy. Unset: the request's own `Host` is the expected origin.
    pub public_origin: Option<String>,
    /// Send cookies with `Secure` (set when served over HTTPS).
    pub secure_cookies: bool,
    /// A session ends after this many minutes without a request.
    pub session_idle_minutes: i64,
    /// An active session's idle expiry is pushed forward (one write, a fresh cookie) at most this often, so
    /// requests in between write nothing; the session may end up to this much before `session_idle_minutes`
    /// after its last request, never after.
    pub session_refresh_secs: i64,
    /// Password of the first admin; generated and printed once when unset.
    pub admin_password: Option<SecretString>,
    pub login: LoginLimits,
    /// Behind a reverse proxy: the request header carrying the client's address (`X-Forwarded-For`: its
    /// last entry, the one the proxy added; `X-Real-IP`), believed only from `trusted_proxies`. Unset: the
    /// peer address is the client's (sign-in throttling and the audit log use it).
    pub client_ip_header: Option<String>,
    /// Peers whose `client_ip_header` is believed (default: loopback).
    pub trusted_proxies: Vec<IpAddr>,
    /// `pretty` or `json`.
    pub log_format: String,
    /// The `vmm` binary; unset: `vmm` next to the `portal` binary.
    pub vmm_binary: Option<PathBuf>,
    /// What the VMMs' per-thread seccomp filters do with a system call outside their allow-list: `kill`
    /// (default: the VM crashes with the call named), `log` (the kernel logs it) or `off`.
    #[serde(default)]
    pub vmm_seccomp: vmm_api::seccomp::SeccompMode,
    /// Built guest images (`guest/out`, with `manifest.json`), registered as images at start.
    pub guest_dir: PathBuf,
    /// A graceful stop waits this long for the guest to power off, then forces it.
    pub stop_timeout_secs: u64,
    /// A VMM that has not reported running after this long is killed and the VM marked crashed.
    pub start_timeout_secs: u64,
    /// Whether KVM here emulates guest instructions (kvm_pvm); unset: detected from /sys/module/kvm_pvm.
    pub kvm_emulated: Option<bool>,
    /// Force off every VM when the portal stops (default: VMs keep running and are re-adopted at start).
    pub stop_vms_on_shutdown: bool,
    /// Largest image upload (kernel + initramfs + root disk), in MiB.
    pub max_image_upload_mib: u64,
    pub network: NetworkSettings,
    /// `admission.*`: how much of the host VMs may commit (`capacity`).
    #[serde(default)]
    pub admission: crate::capacity::AdmissionSettings,
    /// `boot.*`: when a booting guest counts as ready (`vm::boot_rule`).
    #[serde(default)]
    pub boot: crate::vm::BootSettings,
    /// VM metrics sampling and retention (`metrics::MetricsSettings`; defaults: 10 s, 1 h raw, 7 d of
    /// 5-minute roll-ups).
    #[serde(default)]
    pub metrics: crate::metrics::MetricsSettings,
    /// The jail every VMM runs in (README, "Jail and threat model").
    pub sandbox: SandboxSettings,
}

/// `[sandbox]`: each VMM under its own uid from `uid_range`, in its own cgroup under `cgroup_parent`, in a
/// mount namespace holding only its files, without capabilities, with Landlock.
#[derive(Debug, Clone, Deserialize)]
pub struct SandboxSettings {
    /// `on` (default) or `off`: VMMs run as root with the host's whole view (logged loudly at start).
    pub mode: SandboxMode,
    /// First and last uid (inclusive) given to VMs, one each; the gid is the same number.
    pub uid_range: (u32, u32),
    /// The VMs' cgroups are `<cgroup_parent>/<vm id>` in the cpu, memory and pids hierarchies.
    pub cgroup_parent: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SandboxMode {
    On,
    Off,
}

/// Tenant networks (README, "Networks"): realised in a network namespace the portal owns.
#[derive(Debug, Clone, Deserialize)]
pub struct NetworkSettings {
    /// Off: VMs get no network card (and nothing is created on the host).
    pub enabled: bool,
    /// The portal's network namespace (`/run/netns/<name>`).
    pub namespace: String,
    /// Tenant networks get `/24` blocks of this pool.
    pub pool: ipnet::Ipv4Net,
    /// MTU of tenant networks (1450 once they span hosts over VXLAN).
    pub mtu: u16,
    /// The uplink network between the portal's namespace and the one the portal runs in: its first
    /// address on `uplink_outer` (here), its second on the plane's side. Unset: no way in or out (no
    /// egress, port forwards or floating IPs); an empty value (`PORTAL_NETWORK__UPLINK=`) unsets it.
    #[serde(deserialize_with = "empty_is_none")]
    pub uplink: Option<ipnet::Ipv4Net>,
    pub uplink_outer: String,
    /// Put the uplink's outer end in this named namespace instead of the portal's own (tests and e2e
    /// give the portal an "outside" namespace of their own this way).
    pub uplink_outer_netns: Option<String>,
    /// Floating IPs come from this block (inside the uplink network); empty unsets it.
    #[serde(deserialize_with = "empty_is_none")]
    pub floating_pool: Option<ipnet::Ipv4Net>,
    /// Host ports tenants may forward (inclusive).
    pub forward_ports: (u16, u16),
    /// Port of the metadata service on each network's gateway (`169.254.169.254:80` is redirected to it).
    pub metadata_port: u16,
}

impl NetworkSettings {
    pub fn disabled() -> Self {
        Self {
            enabled: false,
            namespace: "cloudportal".into(),
            pool: ipnet::Ipv4Net::new(std::net::Ipv4Addr::new(10, 200, 0, 0), 16).unwrap_or_default(),
            mtu: 1500,
            uplink: None,
            uplink_outer: "cp-uplink".into(),
            uplink_outer_netns: None,
            floating_pool: None,
            forward_ports: (20000, 29999),
            metadata_port: 8775,
        }
    }
}

/// An optional setting where an empty value means unset: the environment source cannot express "none"
/// for a key that has a default, but it can give an empty string.
fn empty_is_none<'de, D, T>(de: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    match Option::<String>::deserialize(de)? {
        Some(text) if !text.trim().is_empty() => {
            text.trim().parse().map(Some).map_err(serde::de::Error::custom)
        }
        _ => Ok(None),
    }
}

/// Sign-in throttling (`auth::throttle`, README "Sign-in throttling").
#[derive(Debug, Clone, Deserialize)]
pub struct LoginLimits {
    /// Attempts per minute on one account from one client address; more get 429.
    pub per_account_per_address_per_minute: u32,
    /// Attempts per minute from one client address, whatever the account; more get 429.
    pub per_address_per_minute: u32,
    /// Failed attempts per minute on one account from anywhere before attempts on it are slowed.
    pub per_account_per_minute: u32,
    /// The longest such slowdown, in seconds.
    pub max_delay_secs: u64,
}

impl Settings {
    pub fn load() -> Result<Self, ConfigError> {
        let file = std::env::var("PORTAL_CONFIG").unwrap_or_else(|_| "portal.toml".to_string());
        let settings: Settings = config::Config::builder()
            .set_default("listen", "127.0.0.1:3000")
            .and_then(|b| b.set_default("data_dir", "data"))
            .and_then(|b| b.set_default("site_root", "target/site"))
            .and_then(|b| b.set_default("secure_cookies", false))
            .and_then(|b| b.set_default("session_idle_minutes", 480))
            .and_then(|b| b.set_default("session_refresh_secs", 60))
            .and_then(|b| b.set_default("login.per_account_per_minute", 5))
            .and_then(|b| b.set_default("login.per_address_per_minute", 30))
            .and_then(|b| b.set_default("login.per_account_per_address_per_minute", 5))
            .and_then(|b| b.set_default("login.max_delay_secs", 16))
            .and_then(|b| b.set_default("log_format", "pretty"))
            .and_then(|b| b.set_default("trusted_proxies", vec!["127.0.0.1", "::1"]))
            .and_then(|b| b.set_default("guest_dir", "guest/out"))
            .and_then(|b| b.set_default("stop_timeout_secs", 60))
            .and_then(|b| b.set_default("start_timeout_secs", 30))
            .and_then(|b| b.set_default("stop_vms_on_shutdown", false))
            .and_then(|b| b.set_default("max_image_upload_mib", 2048))
            .and_then(|b| b.set_default("network.enabled", true))
            .and_then(|b| b.set_default("network.namespace", "cloudportal"))
            .and_then(|b| b.set_default("network.pool", "10.200.0.0/16"))
            .and_then(|b| b.set_default("network.mtu", 1500))
            .and_then(|b| b.set_default("network.uplink", "100.127.0.0/24"))
            .and_then(|b| b.set_default("network.uplink_outer", "cp-uplink"))
            .and_then(|b| b.set_default("network.floating_pool", "100.127.0.128/25"))
            .and_then(|b| b.set_default("network.forward_ports", vec![20000, 29999]))
            .and_then(|b| b.set_default("network.metadata_port", 8775))
            .and_then(|b| b.set_default("sandbox.mode", "on"))
            .and_then(|b| b.set_default("sandbox.uid_range", vec![200_000, 265_535]))
            .and_then(|b| b.set_default("sandbox.cgroup_parent", "cloud-portal"))
            .map_err(ConfigError::Load)?
            .add_source(config::File::with_name(&file).required(false))
            .add_source(
                config::Environment::with_prefix("PORTAL")
                    .prefix_separator("_")
                    .separator("__")
                    .try_parsing(true)
                    .list_separator(",")
                    .with_list_parse_key("trusted_proxies")
                    .with_list_parse_key("sandbox.uid_range"),
            )
            .build()
            .and_then(config::Config::try_deserialize)
            .map_err(ConfigError::Load)?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.metrics.validate().map_err(|e| ConfigError::Invalid {
            key: "metrics",
            reason: e.to_string(),
        })?;
        if !(1..=60 * 24 * 30).contains(&self.session_idle_minutes) {
            return Err(ConfigError::Invalid {
                key: "session_idle_minutes",
                reason: "must be between 1 and 43200".into(),
            });
        }
        if !(1..=self.session_idle_minutes * 60 / 2).contains(&self.session_refresh_secs) {
            return Err(ConfigError::Invalid {
                key: "session_refresh_secs",
                reason: "must be at least 1 and at most half of session_idle_minutes".into(),
            });
        }
        let l = &self.login;
        if l.per_account_per_minute == 0
            || l.per_address_per_minute == 0
            || l.per_account_per_address_per_minute == 0
        {
            return Err(ConfigError::Invalid {
                key: "login",
                reason: "limits must be at least 1".into(),
            });
        }
        if let Some(h) = &self.client_ip_header {
            if http::HeaderName::from_bytes(h.to_ascii_lowercase().as_bytes()).is_err() {
                return Err(ConfigError::Invalid {
                    key: "client_ip_header",
                    reason: "must be a header name such as X-Forwarded-For".into(),
                });
            }
        }
        if l.max_delay_secs > 300 {
            return Err(ConfigError::Invalid {
                key: "login.max_delay_secs",
                reason: "must be at most 300".into(),
            });
        }
        if !(1..=3600).contains(&self.stop_timeout_secs) || !(1..=3600).contains(&self.start_timeout_secs) {
            return Err(ConfigError::Invalid {
                key: "stop_timeout_secs",
                reason: "start and stop timeouts must be between 1 and 3600 seconds".into(),
            });
        }
        let (first, last) = self.sandbox.uid_range;
        if first == 0 || first > last {
            return Err(ConfigError::Invalid {
                key: "sandbox.uid_range",
                reason: "must be two uids, first <= last, neither 0".into(),
            });
        }
        let parent = &self.sandbox.cgroup_parent;
        if parent.is_empty()
            || parent.starts_with('/')
            || parent.split('/').any(|p| p.is_empty() || p == "..")
        {
            return Err(ConfigError::Invalid {
                key: "sandbox.cgroup_parent",
                reason: "must be a relative cgroup path such as cloud-portal".into(),
            });
        }
        let n = &self.network;
        if n.pool.prefix_len() > 24 {
            return Err(ConfigError::Invalid {
                key: "network.pool",
                reason: "must be a /24 or larger".into(),
            });
        }
        if !(576..=9000).contains(&n.mtu) {
            return Err(ConfigError::Invalid {
                key: "network.mtu",
                reason: "must be between 576 and 9000".into(),
            });
        }
        if let (Some(pool), Some(up)) = (n.floating_pool, n.uplink) {
            if !up.contains(&pool) {
                return Err(ConfigError::Invalid {
                    key: "network.floating_pool",
                    reason: format!("must lie inside the uplink network {up}"),
                });
            }
        }
        if n.uplink.is_some_and(|u| u.prefix_len() > 30) || n.forward_ports.0 > n.forward_ports.1 {
            return Err(ConfigError::Invalid {
                key: "network.uplink",
                reason: "the uplink needs at least a /30 and forward_ports a range low..=high".into(),
            });
        }
        self.admission.validate().map_err(|reason| ConfigError::Invalid {
            key: "admission",
            reason,
        })?;
        if !(1..=86_400).contains(&self.boot.ready_timeout_secs) {
            return Err(ConfigError::Invalid {
                key: "boot.ready_timeout_secs",
                reason: "must be between 1 and 86400".into(),
            });
        }
        if !matches!(self.log_format.as_str(), "pretty" | "json") {
            return Err(ConfigError::Invalid {
                key: "log_format",
                reason: "must be pretty or json".into(),
            });
        }
        Ok(())
    }

    /// Settings for tests: port 0 and the given data directory.
    pub fn for_tests(data_dir: PathBuf) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir,
            site_root: PathBuf::from("target/site"),
            public_origin: None,
            secure_cookies: false,
            session_idle_minutes: 60,
            session_refresh_secs: 60,
            admin_password: Some(SecretString::from("admin-password-for-tests")),
            // Tests sign in often from one address; the throttling tests set their own limits.
            login: LoginLimits {
                per_account_per_address_per_minute: 20,
                per_address_per_minute: 30,
                per_account_per_minute: 5,
                max_delay_secs: 2,
            },
            log_format: "pretty".into(),
            client_ip_header: None,
            trusted_proxies: vec![IpAddr::from([127, 0, 0, 1])],
            vmm_binary: None,
            vmm_seccomp: vmm_api::seccomp::SeccompMode::Kill,
            guest_dir: PathBuf::from("guest/out"),
            stop_timeout_secs: 10,
            start_timeout_secs: 30,
            kvm_emulated: None,
            stop_vms_on_shutdown: false,
            max_image_upload_mib: 64,
            network: NetworkSettings::disabled(),
            admission: crate::capacity::AdmissionSettings::default(),
            boot: crate::vm::BootSettings::default(),
            metrics: crate::metrics::MetricsSettings::default(),
            sandbox: SandboxSettings::for_tests(),
        }
    }
}

impl SandboxSettings {
    /// Tests jail their VMMs as the portal does, wherever they can (as root); elsewhere the sandbox is off
    /// and the tests that need it skip loudly.
    pub fn for_tests() -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        // A block of 64 uids per test app (apps of one test process run side by side, each with its own
        // database), varied by process too.
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let block = (std::process::id().wrapping_mul(7) + NEXT.fetch_add(1, Ordering::Relaxed)) % 10_000;
        let first = 1_000_000 + block * 64;
        let root = rustix::process::geteuid().is_root();
        Self {
            mode: if root { SandboxMode::On } else { SandboxMode::Off },
            uid_range: (first, first + 63),
            cgroup_parent: "cloud-portal-tests".into(),
        }
    }
}

impl Settings {
    /// The `vmm` binary to run: the configured one, else `vmm` next to this executable.
    pub fn vmm_binary(&self) -> PathBuf {
        if let Some(p) = &self.vmm_binary {
            return p.clone();
        }
        std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|d| d.join("vmm")))
            .unwrap_or_else(|| PathBuf::from("vmm"))
    }

    /// Whether guest instructions are emulated here (see FACTS.md): configured, or kvm_pvm is loaded.
    pub fn kvm_emulated(&self) -> bool {
        self.kvm_emulated
            .unwrap_or_else(|| std::path::Path::new("/sys/module/kvm_pvm").exists())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Uplink {
        #[serde(deserialize_with = "empty_is_none")]
        uplink: Option<ipnet::Ipv4Net>,
    }

    fn uplink(value: &str) -> Result<Option<ipnet::Ipv4Net>, config::ConfigError> {
        let c = config::Config::builder()
            .set_default("uplink", "100.127.0.0/24")?
            .set_override("uplink", value)?
            .build()?;
        Ok(c.try_deserialize::<Uplink>()?.uplink)
    }

    #[test]
    fn an_empty_uplink_means_none_and_a_bad_one_is_refused() {
        assert_eq!(uplink("").unwrap(), None);
        assert_eq!(uplink("  ").unwrap(), None);
        assert_eq!(
            uplink("192.0.2.0/24").unwrap(),
            Some("192.0.2.0/24".parse().unwrap())
        );
        assert!(uplink("not-a-net").is_err());
    }
}
