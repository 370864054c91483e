//! Orchestration against a fake `Host` and a real SQLite database: which VMMs get spawned, adopted,
//! stopped and killed, and what the VM's state, run and usage interval say afterwards — without KVM.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use app::model::VmState;
use async_trait::async_trait;
use tokio::sync::mpsc;

use super::*;
use crate::db::images::ImageRow;
use crate::vm::host::{Claim, Ended, Host, HostError, Probe, RunRecord};

/// What the fake host was asked to do, and its VMMs.
#[derive(Default)]
struct World {
    next_pid: i32,
    /// Running VMMs by VM: (process, run id).
    running: HashMap<String, (VmmProcess, String)>,
    watchers: HashMap<String, mpsc::UnboundedSender<Ended>>,
    /// VMs whose guest ignores Ctrl-Alt-Del, and VMMs that ignore `stop`.
    deaf_guests: HashSet<String>,
    deaf_vmms: HashSet<String>,
    log: Vec<String>,
}

#[derive(Default)]
struct FakeHost(Mutex<World>);

impl FakeHost {
    fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.0.lock().unwrap()
    }

    /// A VMM that runs without this supervisor having started it (as after a portal restart).
    fn start_outside(&self, vm_id: &str, run_id: &str) -> VmmProcess {
        let mut w = self.world();
        w.next_pid += 1;
        let p = VmmProcess {
            pid: w.next_pid,
            start_ticks: 1,
        };
        w.running.insert(vm_id.into(), (p, run_id.into()));
        p
    }

    /// The VMM of `vm_id` ends with `outcome`.
    fn end(&self, vm_id: &str, outcome: Outcome) {
        let mut w = self.world();
        if let Some((process, run_id)) = w.running.remove(vm_id) {
            w.log.push(format!("ended {vm_id}"));
            if let Some(tx) = w.watchers.get(vm_id) {
                let _ = tx.send(Ended {
                    vm_id: vm_id.into(),
                    process,
                    run_id,
                    outcome,
                    ended_at: None,
                });
            }
        }
    }

    fn log(&self) -> Vec<String> {
        self.world().log.clone()
    }
}

#[async_trait]
impl Host for Arc<FakeHost> {
    async fn prepare(&self, vm: &vms::VmRow, _image: &ImageRow) -> Result<(), HostError> {
        self.world().log.push(format!("prepare {}", vm.id));
        Ok(())
    }

    fn probe(&self, vm_id: &str) -> Result<Probe, HostError> {
        Ok(match self.world().running.get(vm_id) {
            Some((process, run_id)) => Probe::Running {
                process: *process,
                run_id: run_id.clone(),
            },
            None => Probe::Free(Some(Claim::new(()))),
        })
    }

    async fn spawn(
        &self,
        _claim: Claim,
        vm: &vms::VmRow,
        _image: &ImageRow,
        run_id: &str,
    ) -> Result<VmmProcess, HostError> {
        self.world().log.push(format!("spawn {}", vm.id));
        Ok(self.start_outside(&vm.id, run_id))
    }

    fn watch(&self, vm_id: &str, _process: VmmProcess, _run_id: &str, ended: mpsc::UnboundedSender<Ended>) {
        self.world().watchers.insert(vm_id.into(), ended);
    }

    async fn state(&self, vm_id: &str) -> Result<String, HostError> {
        match self.world().running.contains_key(vm_id) {
            true => Ok("running".into()),
            false => Err(HostError::NoFiles),
        }
    }

    async fn shutdown(&self, vm_id: &str) -> Result<(), HostError> {
        let deaf = self.world().deaf_guests.contains(vm_id);
        if !deaf {
            self.end(vm_id, Outcome::PoweredOff);
        }
        Ok(())
    }

    async fn stop(&self, vm_id: &str) -> Result<(), HostError> {
        let deaf = self.world().deaf_vmms.contains(vm_id);
        if !deaf {
            self.end(vm_id, Outcome::PoweredOff);
        }
        Ok(())
    }

    fn kill(&self, process: VmmProcess) {
        let vm = self
            .world()
            .running
            .iter()
            .find(|(_, (p, _))| *p == process)
            .map(|(vm, _)| vm.clone());
        if let Some(vm) = vm {
            self.world().log.push(format!("kill {vm}"));
            self.end(&vm, Outcome::Failed("VMM killed by signal 9".into()));
        }
    }

    async fn exited(&self, _process: VmmProcess) {}

    fn last_run(&self, _vm_id: &str, _run_id: &str) -> RunRecord {
        RunRecord {
            started: true,
            outcome: Outcome::Failed("VMM process vanished without recording an exit status".into()),
            ended_at: None,
        }
    }

    async fn remove(&self, vm_id: &str) -> Result<(), HostError> {
        self.world().log.push(format!("remove {vm_id}"));
        Ok(())
    }

    fn vm_ids(&self) -> Vec<String> {
        Vec::new()
    }
}

struct Fixture {
    sup: Supervisor,
    host: Arc<FakeHost>,
    pool: SqlitePool,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let pool = crate::db::connect(dir.path()).await.unwrap();
    for sql in [
        "INSERT INTO tenants (id, name, created_at) VALUES ('t', 'acme', 0)",
        "INSERT INTO users (id, tenant_id, username, display_name, password_hash, role, created_at, \
         password_changed_at) VALUES ('u', 't', 'ann', 'Ann', 'x', 'member', 0, 0)",
        "INSERT INTO flavors (id, name, vcpus, memory_mib, disk_gib, hourly_price_minor, created_at) \
         VALUES ('f', 'small', 1, 128, 1, 100, 0)",
        "INSERT INTO images (id, name, os, kernel_path, created_at) VALUES ('i', 'probe', 'test', '/k', 0)",
    ] {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    let host = Arc::new(FakeHost::default());
    let settings = VmSettings {
        vmm_binary: "vmm".into(),
        vms_dir: dir.path().join("vms"),
        stop_timeout: Duration::from_millis(100),
        start_timeout: Duration::from_secs(10),
        boot_ready_timeout: Duration::from_secs(600),
        kvm_emulated: false,
        network: None,
        sandbox: crate::vm::Sandbox::Off,
        seccomp: Default::default(),
    };
    let sup = Supervisor::with_host(pool.clone(), settings, Arc::new(host.clone()));
    Fixture {
        sup,
        host,
        pool,
        _dir: dir,
    }
}

impl Fixture {
    /// A VM in `state`, inserted the way a launch does.
    async fn vm(&self, id: &str, state: VmState) {
        let new = vms::NewVm {
            id,
            tenant_id: "t",
            created_by: "u",
            name: id,
            image_id: "i",
            flavor_id: "f",
            vcpus: 1,
            memory_mib: 128,
            disk_gib: 1,
            ssh_key: "",
            user_data: "",
            network: None,
            network_id: None,
            security_groups: &[],
        };
        vms::insert(&self.pool, &new, 0).await.unwrap();
        sqlx::query("UPDATE vms SET state = ? WHERE id = ?")
            .bind(state.as_str())
            .bind(id)
            .execute(&self.pool)
            .await
            .unwrap();
    }

    async fn row(&self, id: &str) -> vms::VmRow {
        vms::get(&self.pool, id).await.unwrap().unwrap()
    }

    /// Waits until the VM is in `state` (the supervisor works in background tasks).
    async fn wait(&self, id: &str, state: VmState) -> vms::VmRow {
        for _ in 0..500 {
            let row = self.row(id).await;
            if row.state() == state {
                return row;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{id} never reached {state}: {:?}", self.row(id).await.state());
    }

    /// Open usage intervals of the VM.
    async fn open_intervals(&self, id: &str) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM usage_intervals WHERE vm_id = ? AND ended_at IS NULL")
            .bind(id)
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn a_launch_prepares_spawns_once_and_bills_while_the_vmm_runs() {
    let f = fixture().await;
    f.vm("a", VmState::Creating).await;
    f.sup.provision("a");
    let row = f.wait("a", VmState::Running).await;
    assert!(row.vmm_run_id.is_some());
    assert_eq!(f.open_intervals("a").await, 1);
    // Booting again while it runs starts nothing.
    sqlx::query("UPDATE vms SET state = 'starting' WHERE id = 'a'")
        .execute(&f.pool)
        .await
        .unwrap();
    f.sup.boot("a").await.unwrap();
    assert_eq!(f.host.log(), vec!["prepare a", "spawn a"]);
}

#[tokio::test]
async fn a_vmm_that_already_holds_the_vm_is_adopted_not_doubled() {
    let f = fixture().await;
    f.vm("b", VmState::Starting).await;
    f.host.start_outside("b", "run-outside");
    f.sup.boot("b").await.unwrap();
    let row = f.wait("b", VmState::Running).await;
    assert_eq!(row.vmm_run_id.as_deref(), Some("run-outside"));
    assert!(
        f.host.log().iter().all(|l| !l.starts_with("spawn")),
        "{:?}",
        f.host.log()
    );
    assert_eq!(f.open_intervals("b").await, 1);
}

#[tokio::test]
async fn an_unexpected_end_crashes_or_stops_the_vm_and_closes_its_run() {
    let f = fixture().await;
    for id in ["c1", "c2"] {
        f.vm(id, VmState::Starting).await;
        f.sup.boot(id).await.unwrap();
        f.wait(id, VmState::Running).await;
    }
    f.host.end(
        "c1",
        Outcome::Failed("VMM exited with code 4 (internal-error)".into()),
    );
    f.host.end("c2", Outcome::PoweredOff);
    let crashed = f.wait("c1", VmState::Crashed).await;
    assert_eq!(crashed.state_reason, "VMM exited with code 4 (internal-error)");
    assert_eq!(crashed.vmm_run_id, None);
    let stopped = f.wait("c2", VmState::Stopped).await;
    assert_eq!(stopped.vmm_run_id, None);
    assert_eq!(f.open_intervals("c1").await + f.open_intervals("c2").await, 0);
}

#[tokio::test]
async fn a_stop_escalates_from_ctrl_alt_del_to_stop_to_kill() {
    let f = fixture().await;
    f.vm("d", VmState::Starting).await;
    f.sup.boot("d").await.unwrap();
    f.wait("d", VmState::Running).await;
    f.host.world().deaf_guests.insert("d".into());
    f.host.world().deaf_vmms.insert("d".into());
    sqlx::query("UPDATE vms SET state = 'stopping' WHERE id = 'd'")
        .execute(&f.pool)
        .await
        .unwrap();
    f.sup.finish_stop("d", true);
    let row = f.wait("d", VmState::Stopped).await;
    assert_eq!(row.vmm_run_id, None);
    assert_eq!(f.open_intervals("d").await, 0);
    assert_eq!(f.host.log(), vec!["spawn d", "kill d", "ended d"]);
}

#[tokio::test]
async fn delete_removes_files_only_after_the_vmm_is_gone() {
    let f = fixture().await;
    f.vm("e", VmState::Starting).await;
    f.sup.boot("e").await.unwrap();
    f.wait("e", VmState::Running).await;
    sqlx::query("UPDATE vms SET state = 'deleting' WHERE id = 'e'")
        .execute(&f.pool)
        .await
        .unwrap();
    f.sup.finish_delete("e");
    f.wait("e", VmState::Deleted).await;
    assert_eq!(f.host.log(), vec!["spawn e", "ended e", "remove e"]);
}

#[tokio::test]
async fn reconcile_adopts_running_vmms_and_settles_the_rest() {
    let f = fixture().await;
    // Running with its VMM; running whose VMM vanished; starting that never got a VMM; stopping whose VMM
    // still runs.
    for (id, state) in [
        ("live", VmState::Running),
        ("gone", VmState::Running),
        ("unborn", VmState::Starting),
        ("halting", VmState::Stopping),
    ] {
        f.vm(id, state).await;
    }
    for id in ["live", "gone", "halting"] {
        vms::vmm_started(&f.pool, id, &format!("run-{id}"), 0)
            .await
            .unwrap();
    }
    f.host.start_outside("live", "run-live");
    f.host.start_outside("halting", "run-halting");
    f.sup.reconcile().await.unwrap();
    assert_eq!(f.row("live").await.state(), VmState::Running);
    let gone = f.wait("gone", VmState::Crashed).await;
    assert!(gone.state_reason.contains("vanished"), "{}", gone.state_reason);
    assert_eq!(gone.vmm_run_id, None);
    assert!(f.wait("unborn", VmState::Running).await.vmm_run_id.is_some());
    assert_eq!(f.wait("halting", VmState::Stopped).await.vmm_run_id, None);
    assert_eq!(f.open_intervals("live").await, 1);
    assert_eq!(
        f.open_intervals("gone").await + f.open_intervals("halting").await,
        0
    );
    let spawned: Vec<String> = f
        .host
        .log()
        .into_iter()
        .filter(|l| l.starts_with("spawn"))
        .collect();
    assert_eq!(spawned, vec!["spawn unborn"]);
}
