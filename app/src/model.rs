//! Data shared by the browser and the server: what pages show and what forms send.

use serde::{Deserialize, Serialize};

mod admin_lists;
mod audit_lists;
mod host;
mod key_pairs;
mod metrics;
mod network;
mod vm_lists;
pub use admin_lists::*;
pub use audit_lists::*;
pub use host::*;
pub use key_pairs::*;
pub use metrics::*;
pub use network::*;
pub use vm_lists::*;

/// A user's role. Admins run the cloud (tenants, users, catalogue); members use their tenant's resources.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Member,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Member => "member",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(Self::Admin),
            "member" => Some(Self::Member),
            _ => None,
        }
    }
}

/// The signed-in user, as the UI and `GET /api/v1/whoami` show them.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Me {
    pub user_id: String,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub tenant_id: String,
    pub tenant_name: String,
}

impl Me {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantView {
    pub id: String,
    pub name: String,
    pub description: String,
    pub disabled: bool,
    pub user_count: i64,
    pub created_at: String,
}

#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserView {
    pub id: String,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub tenant_id: String,
    pub tenant_name: String,
    pub disabled: bool,
    pub created_at: String,
}

/// A personal API token as listed: never the secret itself.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenView {
    pub id: String,
    pub name: String,
    /// The first characters of the token, so a user can tell tokens apart.
    pub prefix: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub expires_at: Option<String>,
}

/// A freshly created token: the only time the secret is shown.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewToken {
    pub token: TokenView,
    pub secret: String,
}

/// What an admin fills in to create a user.
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewUser {
    pub tenant_id: String,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub password: String,
}

/// A machine size tenants launch from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct FlavorView {
    pub id: String,
    pub name: String,
    pub vcpus: u32,
    pub memory_mib: u32,
    pub disk_gib: u32,
    /// Price per hour in minor currency units (cents).
    pub hourly_price_minor: i64,
    pub disabled: bool,
}

/// What an admin fills in to create a flavor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewFlavor {
    pub name: String,
    pub vcpus: u32,
    pub memory_mib: u32,
    pub disk_gib: u32,
    pub hourly_price_minor: i64,
}

/// A bootable image: kernel, initramfs and an optional root disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct ImageView {
    pub id: String,
    pub name: String,
    pub os: String,
    pub cmdline: String,
    pub has_root_disk: bool,
    /// `None` for public images, otherwise the one tenant that sees it.
    pub owner_tenant_id: Option<String>,
    /// A small test guest (the probe), not a general-purpose OS.
    pub is_test: bool,
    pub size_bytes: i64,
    pub created_at: String,
}

/// Lifecycle states of a VM. See `server::vm::state` for the transitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum VmState {
    Creating,
    Starting,
    Running,
    Stopping,
    Stopped,
    Rebooting,
    Crashed,
    Deleting,
    Deleted,
}

impl VmState {
    pub const ALL: [VmState; 9] = [
        Self::Creating,
        Self::Starting,
        Self::Running,
        Self::Stopping,
        Self::Stopped,
        Self::Rebooting,
        Self::Crashed,
        Self::Deleting,
        Self::Deleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Creating => "creating",
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Stopping => "stopping",
            Self::Stopped => "stopped",
            Self::Rebooting => "rebooting",
            Self::Crashed => "crashed",
            Self::Deleting => "deleting",
            Self::Deleted => "deleted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// A state the orchestrator is in the middle of changing (spinners in the UI).
    pub fn is_transitional(self) -> bool {
        matches!(
            self,
            Self::Creating | Self::Starting | Self::Stopping | Self::Rebooting | Self::Deleting
        )
    }

    /// Actions a user may ask for in this state (the UI shows these buttons; the server checks the same).
    pub fn allowed_actions(self) -> &'static [VmAction] {
        use VmAction::*;
        match self {
            Self::Running => &[Stop, Reboot, ForceOff, Delete],
            Self::Stopped | Self::Crashed => &[Start, Delete],
            Self::Starting | Self::Stopping | Self::Rebooting => &[ForceOff, Delete],
            Self::Creating | Self::Deleting | Self::Deleted => &[],
        }
    }
}

impl std::fmt::Display for VmState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a user can ask a VM to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum VmAction {
    Start,
    /// Graceful: Ctrl-Alt-Del to the guest, forced off after the stop timeout.
    Stop,
    /// Graceful stop, then start again with the same disk.
    Reboot,
    /// Immediate power off.
    ForceOff,
    /// Force off if needed, then remove the disk and run directory.
    Delete,
}

impl VmAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Stop => "stop",
            Self::Reboot => "reboot",
            Self::ForceOff => "force_off",
            Self::Delete => "delete",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Start => "Start",
            Self::Stop => "Stop",
            Self::Reboot => "Reboot",
            Self::ForceOff => "Force off",
            Self::Delete => "Delete",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Start,
            Self::Stop,
            Self::Reboot,
            Self::ForceOff,
            Self::Delete,
        ]
        .into_iter()
        .find(|a| a.as_str() == s)
    }
}

/// A virtual machine as its tenant sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct VmView {
    pub id: String,
    pub name: String,
    pub tenant_id: String,
    pub state: VmState,
    /// Why it is in this state, e.g. the VMM's exit reason after a crash.
    pub state_reason: String,
    pub image_id: String,
    pub image_name: String,
    pub flavor_id: String,
    pub flavor_name: String,
    pub vcpus: u32,
    pub memory_mib: u32,
    pub disk_gib: u32,
    pub created_at: String,
    pub started_at: Option<String>,
    /// While `running`: how far the guest has booted (`None` in other states).
    #[serde(default)]
    pub boot: Option<GuestBoot>,
}

/// One entry of a VM's state history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct VmEventView {
    pub at: String,
    pub from_state: Option<VmState>,
    pub to_state: VmState,
    /// Username of who asked, or `system`.
    pub actor: String,
    pub message: String,
}

/// A VM with its history, for its detail page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmDetail {
    pub vm: VmView,
    pub events: Vec<VmEventView>,
    /// Cards, groups, floating IP, port forwards (empty when tenant networks are off).
    #[serde(default)]
    pub network: VmNetworkView,
}

/// The launch form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LaunchRequest {
    pub name: String,
    pub image_id: String,
    pub flavor_id: String,
    /// An OpenSSH public key, written to the config disk as `authorized_keys`.
    #[serde(default)]
    pub ssh_key: String,
    /// Free-form user data, written to the config disk as `user-data`.
    #[serde(default)]
    pub user_data: String,
    /// The network of the VM's card; the tenant's default network when absent.
    #[serde(default)]
    pub network_id: Option<String>,
    /// Security groups of the VM; the tenant's default group when empty.
    #[serde(default)]
    pub security_group_ids: Vec<String>,
    /// Saved key pairs (ids) whose keys go into `authorized_keys` and the metadata `public-keys`, after
    /// `ssh_key` if both are given.
    #[serde(default)]
    pub key_pair_ids: Vec<String>,
}

/// A tenant's four limits (or its usage, in the same units).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct QuotaLimits {
    pub instances: i64,
    pub vcpus: i64,
    pub memory_mib: i64,
    pub disk_gib: i64,
}

/// A tenant's three network limits (or its usage, in the same units). Kept apart from `QuotaLimits`, whose
/// four fields are what a launch needs (usage, "left", the launch dialog's check): these are counted per
/// object the tenant creates, not per running VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct NetworkLimits {
    /// Networks, the tenant's default network included.
    pub networks: i64,
    /// Floating IPs held (attached or not).
    pub floating_ips: i64,
    pub port_forwards: i64,
}

/// Every limit of a tenant in one flat object: what `GET /quotas/defaults` answers and the body of
/// `PUT /quotas/{tenant_id}`. A network limit left out (a client older than them) keeps the value in force
/// (the tenant's own, else the defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct QuotaSet {
    pub instances: i64,
    pub vcpus: i64,
    pub memory_mib: i64,
    pub disk_gib: i64,
    /// Networks (the default network included); absent: unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub networks: Option<i64>,
    /// Floating IPs held; absent: unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floating_ips: Option<i64>,
    /// Port forwards; absent: unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_forwards: Option<i64>,
}

impl QuotaSet {
    /// Both parts, every network limit given.
    pub fn full(compute: QuotaLimits, network: NetworkLimits) -> Self {
        Self {
            instances: compute.instances,
            vcpus: compute.vcpus,
            memory_mib: compute.memory_mib,
            disk_gib: compute.disk_gib,
            networks: Some(network.networks),
            floating_ips: Some(network.floating_ips),
            port_forwards: Some(network.port_forwards),
        }
    }

    pub fn compute(&self) -> QuotaLimits {
        QuotaLimits {
            instances: self.instances,
            vcpus: self.vcpus,
            memory_mib: self.memory_mib,
            disk_gib: self.disk_gib,
        }
    }
}

/// Limits and current usage of one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct QuotaView {
    pub tenant_id: String,
    pub tenant_name: String,
    /// The compute limits (what launches are checked against).
    pub limits: QuotaLimits,
    pub used: QuotaLimits,
    pub network_limits: NetworkLimits,
    /// Networks, floating IPs and port forwards the tenant has now.
    pub network_used: NetworkLimits,
    /// The tenant has no limits of its own and uses the defaults.
    pub is_default: bool,
}

impl QuotaView {
    /// What is left of each limit (never negative).
    pub fn left(&self) -> QuotaLimits {
        QuotaLimits {
            instances: (self.limits.instances - self.used.instances).max(0),
            vcpus: (self.limits.vcpus - self.used.vcpus).max(0),
            memory_mib: (self.limits.memory_mib - self.used.memory_mib).max(0),
            disk_gib: (self.limits.disk_gib - self.used.disk_gib).max(0),
        }
    }

    /// Which limit a launch of this size would exceed, as a sentence, or `None` if it fits.
    pub fn launch_problem(&self, vcpus: u32, memory_mib: u32, disk_gib: u32) -> Option<String> {
        let left = self.left();
        if left.instances < 1 {
            return Some(format!(
                "Instance limit reached ({} of {}).",
                self.used.instances, self.limits.instances
            ));
        }
        if i64::from(vcpus) > left.vcpus {
            return Some(format!(
                "Needs {vcpus} {}; {} of {} left.",
                if vcpus == 1 { "vCPU" } else { "vCPUs" },
                left.vcpus,
                self.limits.vcpus
            ));
        }
        if i64::from(memory_mib) > left.memory_mib {
            return Some(format!(
                "Needs {memory_mib} MiB memory; {} MiB of {} left.",
                left.memory_mib, self.limits.memory_mib
            ));
        }
        if i64::from(disk_gib) > left.disk_gib {
            return Some(format!(
                "Needs {disk_gib} GiB disk; {} GiB of {} left.",
                left.disk_gib, self.limits.disk_gib
            ));
        }
        None
    }
}

/// One line of an invoice: a VM at one hourly rate within the month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct InvoiceLine {
    pub tenant_id: String,
    pub tenant_name: String,
    pub vm_id: String,
    pub vm_name: String,
    pub flavor_name: String,
    /// Powered-on seconds within the month.
    pub seconds: i64,
    pub hourly_price_minor: i64,
    pub amount_minor: i64,
    /// The amount in hundredths of a minor unit (1/100 of a cent), rounded once.
    pub amount_hundredths: i64,
}

/// A tenant's (or, for admins, everyone's) usage for one calendar month (UTC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Invoice {
    /// `YYYY-MM`.
    pub month: String,
    pub lines: Vec<InvoiceLine>,
    /// The exact sum of the lines, rounded once.
    pub total_minor: i64,
    /// The same in hundredths of a minor unit.
    pub total_hundredths: i64,
    /// Cost per day of the month (index 0 = the 1st), in minor units.
    pub daily_minor: Vec<i64>,
    /// The same in hundredths of a minor unit.
    pub daily_hundredths: Vec<i64>,
    /// The month is not over: figures run up to now.
    pub partial: bool,
}

/// One audit entry as admins see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct AuditView {
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub tenant_id: Option<String>,
    pub action: String,
    /// As stored and hashed: `kind:id`.
    pub target: String,
    /// For people: `kind name (short id)` while the target exists, else `target`.
    pub target_name: String,
    pub detail: String,
    pub hash: String,
}

/// The audit log's chain check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct AuditCheck {
    pub entries: i64,
    /// The first entry whose hash or link does not match, if any.
    pub broken_at: Option<i64>,
}
