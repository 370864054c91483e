//! Queries on `vms` and `vm_events`. Every state change goes through `transition`, which updates the VM only
//! if it is still in one of the expected states and records the event in the same transaction, so two
//! racing actions can never both win and the history never disagrees with the state.

use app::model::VmState;
use sqlx::{FromRow, SqlitePool};

use super::admission::{self, AdmissionError, HostFull};
use super::networks;
use super::quotas::{self, QuotaError, QuotaExceeded, Usage};
use super::usage;

/// A state change or launch that did not happen: over quota, or a database failure.
#[derive(Debug, thiserror::Error)]
pub enum VmWriteError {
    #[error(transparent)]
    Quota(#[from] QuotaExceeded),
    /// The host cannot hold it (admission control).
    #[error(transparent)]
    HostFull(#[from] HostFull),
    /// No address or block left for the VM's card.
    #[error("{0}")]
    Addresses(String),
    #[error("Database error")]
    Db(#[from] sqlx::Error),
}

impl From<networks::AllocError> for VmWriteError {
    fn from(e: networks::AllocError) -> Self {
        match e {
            networks::AllocError::Db(d) => Self::Db(d),
            other => Self::Addresses(other.to_string()),
        }
    }
}

impl From<AdmissionError> for VmWriteError {
    fn from(e: AdmissionError) -> Self {
        match e {
            AdmissionError::Full(f) => Self::HostFull(f),
            AdmissionError::Db(d) => Self::Db(d),
        }
    }
}

impl From<QuotaError> for VmWriteError {
    fn from(e: QuotaError) -> Self {
        match e {
            QuotaError::Exceeded(q) => Self::Quota(q),
            QuotaError::Db(d) => Self::Db(d),
        }
    }
}

#[derive(Debug, Clone, FromRow)]
pub struct VmRow {
    pub id: String,
    pub tenant_id: String,
    pub created_by: String,
    pub name: String,
    pub image_id: String,
    pub image_name: String,
    pub flavor_id: String,
    pub flavor_name: String,
    pub vcpus: i64,
    pub memory_mib: i64,
    pub disk_gib: i64,
    pub state: String,
    pub state_reason: String,
    pub ssh_key: String,
    pub user_data: String,
    pub pid: Option<i64>,
    pub pid_start_ticks: Option<i64>,
    /// Set while the VM may have a VMM: from before it is spawned until its exit is known.
    pub vmm_run_id: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub started_at: Option<i64>,
    /// When the guest announced readiness in this run (`vm::boot`); `None` while it boots.
    pub guest_ready_at: Option<i64>,
    pub guest_ready_after_ms: Option<i64>,
    /// Which rule saw it: `marker`, `login`, `none` (no signal in time), or empty while booting.
    pub guest_ready_rule: String,
    /// The last line of serial output while booting.
    pub boot_line: String,
    /// The uid (and gid) the VM's VMM is jailed as (`db::sandbox`); none until it first starts jailed.
    pub sandbox_uid: Option<i64>,
}

impl VmRow {
    /// The stored state; the CHECK constraint keeps it one of the known names.
    pub fn state(&self) -> VmState {
        VmState::parse(&self.state).unwrap_or(VmState::Crashed)
    }
}

pub(crate) const SELECT: &str = "SELECT v.id, v.tenant_id, v.created_by, v.name, v.image_id, i.name AS image_name, \
     v.flavor_id, f.name AS flavor_name, v.vcpus, v.memory_mib, v.disk_gib, v.state, v.state_reason, v.ssh_key, \
     v.user_data, v.pid, v.pid_start_ticks, v.vmm_run_id, v.created_at, v.updated_at, v.started_at, \
     v.guest_ready_at, v.guest_ready_after_ms, v.guest_ready_rule, v.boot_line, v.sandbox_uid \
     FROM vms v JOIN images i ON i.id = v.image_id JOIN flavors f ON f.id = v.flavor_id";

/// A tenant's VMs that are not deleted, newest first.
pub async fn list_for_tenant(pool: &SqlitePool, tenant_id: &str) -> Result<Vec<VmRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "{SELECT} WHERE v.tenant_id = ? AND v.state <> 'deleted' ORDER BY v.created_at DESC, v.name"
    ))
    .bind(tenant_id)
    .fetch_all(pool)
    .await
}

/// Every VM that is not deleted (admins, reconciliation).
pub async fn list_live(pool: &SqlitePool) -> Result<Vec<VmRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "{SELECT} WHERE v.state <> 'deleted' ORDER BY v.created_at DESC"
    ))
    .fetch_all(pool)
    .await
}

pub async fn get(pool: &SqlitePool, id: &str) -> Result<Option<VmRow>, sqlx::Error> {
    sqlx::query_as(&format!("{SELECT} WHERE v.id = ?"))
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// The fields of a new VM.
pub struct NewVm<'a> {
    pub id: &'a str,
    pub tenant_id: &'a str,
    pub created_by: &'a str,
    pub name: &'a str,
    pub image_id: &'a str,
    pub flavor_id: &'a str,
    pub vcpus: i64,
    pub memory_mib: i64,
    pub disk_gib: i64,
    pub ssh_key: &'a str,
    pub user_data: &'a str,
    /// Where its network card gets an address (the tenant's default network, created on first use);
    /// `None`: networking is off and the VM has no card.
    pub network: Option<&'a networks::AddressPlan>,
    /// The card's network (checked to be the tenant's); the default network when `None`.
    pub network_id: Option<&'a str>,
    /// The VM's security groups (checked to be the tenant's); the default group when empty.
    pub security_groups: &'a [String],
}

/// Inserts a VM in `creating` with its first event and, with networking on, its card on the tenant's
/// default network in the default security group, if the tenant's quota allows it (checked in the same
/// IMMEDIATE transaction, so concurrent launches cannot overshoot and no VM exists without its address).
pub async fn insert(pool: &SqlitePool, vm: &NewVm<'_>, now: i64) -> Result<(), VmWriteError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let add = Usage {
        instances: 1,
        vcpus: vm.vcpus,
        memory_mib: vm.memory_mib,
        disk_gib: vm.disk_gib,
    };
    quotas::check(&mut tx, vm.tenant_id, add).await?;
    admission::check(&mut tx, vm.memory_mib, vm.disk_gib.saturating_mul(1024)).await?;
    sqlx::query(
        "INSERT INTO vms (id, tenant_id, created_by, name, image_id, flavor_id, vcpus, memory_mib, disk_gib, \
         state, ssh_key, user_data, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'creating', ?, ?, ?, ?)",
    )
    .bind(vm.id)
    .bind(vm.tenant_id)
    .bind(vm.created_by)
    .bind(vm.name)
    .bind(vm.image_id)
    .bind(vm.flavor_id)
    .bind(vm.vcpus)
    .bind(vm.memory_mib)
    .bind(vm.disk_gib)
    .bind(vm.ssh_key)
    .bind(vm.user_data)
    .bind(now)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    insert_event(
        &mut tx,
        vm.id,
        now,
        None,
        VmState::Creating,
        Some(vm.created_by),
        "launched",
    )
    .await?;
    if let Some(plan) = vm.network {
        let network = match vm.network_id {
            Some(id) => networks::tenant_network(&mut tx, vm.tenant_id, id)
                .await?
                .ok_or_else(|| VmWriteError::Addresses("That network does not exist.".into()))?,
            None => networks::ensure_default_network(&mut tx, vm.tenant_id, plan, now).await?,
        };
        networks::add_port(&mut tx, vm.id, &network, 0, now).await?;
        if vm.security_groups.is_empty() {
            let group = networks::ensure_default_group(&mut tx, vm.tenant_id, now).await?;
            networks::attach_group(&mut tx, vm.id, &group).await?;
        }
        for group in vm.security_groups {
            networks::attach_group(&mut tx, vm.id, group).await?;
        }
    }
    tx.commit().await?;
    Ok(())
}

async fn insert_event(
    tx: &mut sqlx::SqliteConnection,
    vm_id: &str,
    at: i64,
    from: Option<VmState>,
    to: VmState,
    actor: Option<&str>,
    message: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO vm_events (vm_id, at, from_state, to_state, actor, message) VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(vm_id)
    .bind(at)
    .bind(from.map(VmState::as_str))
    .bind(to.as_str())
    .bind(actor)
    .bind(message)
    .execute(tx)
    .await
    .map(|_| ())
}

/// One requested state change.
pub struct Transition<'a> {
    pub vm_id: &'a str,
    /// The change happens only if the VM is in one of these states.
    pub from: &'a [VmState],
    pub to: VmState,
    /// Shown with the state (e.g. a crash reason); empty clears it.
    pub reason: &'a str,
    /// The user who asked, or `None` for the system.
    pub actor: Option<&'a str>,
    pub message: &'a str,
    /// When the change really happened, if earlier than now (e.g. a VMM that exited while the portal was
    /// down): the usage ledger closes the interval then.
    pub happened_at: Option<i64>,
}

/// Applies the transition if the VM is in an expected state; returns the state it was in, or `None` when
/// it was not (nothing changed). Starting a stopped or crashed VM checks the vCPU and memory quota in the
/// same transaction. (Billing follows the VMM process, not the state: see `vmm_started`/`vmm_ended`.)
pub async fn transition(
    pool: &SqlitePool,
    t: &Transition<'_>,
    now: i64,
) -> Result<Option<VmState>, VmWriteError> {
    // IMMEDIATE: take the write lock before reading, so the read-check-write cannot interleave with another.
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let current: Option<(String, String, i64, i64)> =
        sqlx::query_as("SELECT state, tenant_id, vcpus, memory_mib FROM vms WHERE id = ?")
            .bind(t.vm_id)
            .fetch_optional(&mut *tx)
            .await?;
    let Some((state, tenant_id, vcpus, memory_mib)) = current else {
        return Ok(None);
    };
    let Some(from) = VmState::parse(&state) else {
        return Ok(None);
    };
    if !t.from.contains(&from) {
        return Ok(None);
    }
    if t.to == VmState::Starting && matches!(from, VmState::Stopped | VmState::Crashed) {
        let add = Usage {
            instances: 0,
            vcpus,
            memory_mib,
            disk_gib: 0,
        };
        quotas::check(&mut tx, &tenant_id, add).await?;
        admission::check(&mut tx, memory_mib, 0).await?;
    }
    let started = matches!(t.to, VmState::Running);
    let deleted = matches!(t.to, VmState::Deleted);
    if deleted {
        networks::release_vm(&mut tx, t.vm_id).await?;
    }
    sqlx::query(
        "UPDATE vms SET state = ?, state_reason = ?, updated_at = ?, \
         started_at = CASE WHEN ? THEN ? ELSE started_at END, \
         deleted_at = CASE WHEN ? THEN ? ELSE deleted_at END WHERE id = ? AND state = ?",
    )
    .bind(t.to.as_str())
    .bind(t.reason)
    .bind(now)
    .bind(started)
    .bind(now)
    .bind(deleted)
    .bind(now)
    .bind(t.vm_id)
    .bind(from.as_str())
    .execute(&mut *tx)
    .await?;
    let at = t.happened_at.unwrap_or(now).min(now);
    insert_event(&mut tx, t.vm_id, at, Some(from), t.to, t.actor, t.message).await?;
    tx.commit().await?;
    Ok(Some(from))
}

/// Records that a VMM is about to be started for the VM under `run_id` (the caller holds the run lock),
/// and opens its usage interval: from here until `vmm_ended`, quota and billing count the VM. False if the
/// VM already has a run (nothing changed).
pub async fn vmm_started(pool: &SqlitePool, id: &str, run_id: &str, now: i64) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let done = sqlx::query(
        "UPDATE vms SET vmm_run_id = ?, pid = NULL, pid_start_ticks = NULL, guest_ready_at = NULL, \
         guest_ready_after_ms = NULL, guest_ready_rule = '', boot_line = '' WHERE id = ? AND vmm_run_id IS NULL",
    )
    .bind(run_id)
    .bind(id)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if done {
        usage::open(&mut tx, id, now).await?;
    }
    tx.commit().await?;
    Ok(done)
}

/// Records the pid of the VM's VMM for `run_id` (a hint for people and logs: the run lock is the truth).
pub async fn set_process(
    pool: &SqlitePool,
    id: &str,
    run_id: &str,
    pid: i64,
    start_ticks: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE vms SET pid = ?, pid_start_ticks = ? WHERE id = ? AND vmm_run_id = ?")
        .bind(pid)
        .bind(start_ticks)
        .bind(id)
        .bind(run_id)
        .execute(pool)
        .await
        .map(|_| ())
}

/// Records that the VMM of `run_id` has ended (its exit was seen, or the run lock was free): clears the
/// run and closes the usage interval at `ended_at` (never later than now, never before it opened), in one
/// transaction. False if the VM's run is not `run_id` any more (nothing changed).
pub async fn vmm_ended(
    pool: &SqlitePool,
    id: &str,
    run_id: &str,
    ended_at: i64,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let done = sqlx::query(
        "UPDATE vms SET vmm_run_id = NULL, pid = NULL, pid_start_ticks = NULL WHERE id = ? AND vmm_run_id = ?",
    )
    .bind(id)
    .bind(run_id)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if done {
        usage::close(&mut tx, id, ended_at.min(now)).await?;
    }
    tx.commit().await?;
    Ok(done)
}

#[derive(Debug, Clone, FromRow)]
pub struct EventRow {
    pub at: i64,
    pub from_state: Option<String>,
    pub to_state: String,
    pub actor: Option<String>,
    pub message: String,
}

/// A VM's history, newest first, with usernames for actors.
pub async fn events(pool: &SqlitePool, vm_id: &str, limit: i64) -> Result<Vec<EventRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT e.at, e.from_state, e.to_state, COALESCE(u.username, 'system') AS actor, e.message \
         FROM vm_events e LEFT JOIN users u ON u.id = e.actor WHERE e.vm_id = ? ORDER BY e.id DESC LIMIT ?",
    )
    .bind(vm_id)
    .bind(limit)
    .fetch_all(pool)
    .await
}
