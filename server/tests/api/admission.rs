//! Admission control and the host page: a portal told its host has 384 MiB and 4 GiB for VMs (the
//! `admission.memory_mib`/`disk_gib` overrides) refuses launches and starts that would commit more, across
//! tenants, names the resource, changes nothing, and admits again once VMs are stopped or deleted.

use serde_json::{json, Value};

use super::helpers::{spawn_app_with, Api, TestApp};
use super::vm_helpers::{
    action, kvm_or_skip, launch, member_api, probe_and_micro, probe_guest_dir, vmm_binary, wait_state,
    GUEST_WAIT,
};

async fn small_host(memory_mib: u64, disk_gib: u64) -> (TestApp, tempfile::TempDir) {
    let guest = probe_guest_dir();
    let guest_dir = guest.path().to_path_buf();
    let app = spawn_app_with(|s| {
        s.guest_dir = guest_dir;
        s.vmm_binary = Some(vmm_binary());
        s.admission.memory_mib = Some(memory_mib);
        s.admission.disk_gib = Some(disk_gib);
    })
    .await;
    (app, guest)
}

async fn admin_api(app: &TestApp) -> Api {
    let token = app.admin().await.token("host tests").await;
    app.api(&token)
}

async fn refused_launch(api: &Api, name: &str, image: &str, flavor: &str) -> String {
    let (status, body) = api
        .post(
            "/vms",
            &json!({ "name": name, "image_id": image, "flavor_id": flavor }),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["kind"], "conflict", "{body}");
    body["error"]["message"].as_str().unwrap().to_string()
}

async fn vm_count(api: &Api) -> usize {
    let (status, vms) = api.get("/vms").await;
    assert_eq!(status, 200, "{vms}");
    vms.as_array().unwrap().len()
}

#[tokio::test]
async fn launches_and_starts_beyond_the_hosts_memory_or_disk_are_refused_until_vms_free_it() {
    if !kvm_or_skip("admission control") {
        return;
    }
    let (app, _guest) = small_host(384, 4).await;
    let a = member_api(&app, "acme").await;
    let b = member_api(&app, "bravo").await;
    let (image, micro) = probe_and_micro(&a).await;

    // 3 x 128 MiB fill the host's memory, whichever tenant launches.
    let a1 = launch(&a, "a1", &image, &micro).await;
    let a2 = launch(&a, "a2", &image, &micro).await;
    launch(&b, "b1", &image, &micro).await;
    let message = refused_launch(&a, "a3", &image, &micro).await;
    assert_eq!(
        message,
        "Not enough memory on the host: 128 MiB asked, 0 MiB free of 384 MiB at overcommit 1.0."
    );
    assert_eq!(vm_count(&a).await, 2, "a refused launch leaves nothing behind");
    let quota = a.get("/quota").await.1;
    assert_eq!(quota["used"]["memory_mib"], 256, "{quota}");

    // A stopped VM holds no memory: a launch fits again, and then the stopped VM cannot start.
    wait_state(&a, &a1, "running", GUEST_WAIT).await;
    assert_eq!(action(&a, &a1, "stop").await.0, 202);
    wait_state(&a, &a1, "stopped", GUEST_WAIT).await;
    let a3 = launch(&a, "a3", &image, &micro).await;
    let (status, body) = action(&a, &a1, "start").await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Not enough memory on the host: 128 MiB asked, 0 MiB free of 384 MiB"),
        "{body}"
    );
    assert_eq!(
        wait_state(&a, &a1, "stopped", GUEST_WAIT).await["state"],
        "stopped"
    );

    // Disk counts every VM that exists, stopped or not: 4 x 1 GiB fill it.
    wait_state(&a, &a2, "running", GUEST_WAIT).await;
    assert_eq!(action(&a, &a2, "stop").await.0, 202);
    wait_state(&a, &a2, "stopped", GUEST_WAIT).await;
    let message = refused_launch(&b, "b2", &image, &micro).await;
    assert_eq!(
        message,
        "Not enough disk on the host: 1.0 GiB asked, 0 MiB free of 4.0 GiB at overcommit 1.0."
    );

    // Deleting frees both: the stopped VM starts, and a launch fits again.
    assert_eq!(action(&a, &a1, "delete").await.0, 202);
    wait_state(&a, &a1, "gone", GUEST_WAIT).await;
    assert_eq!(action(&a, &a2, "start").await.0, 202);
    wait_state(&a, &a2, "running", GUEST_WAIT).await;
    wait_state(&a, &a3, "running", GUEST_WAIT).await;
    assert_eq!(action(&a, &a3, "delete").await.0, 202);
    wait_state(&a, &a3, "gone", GUEST_WAIT).await;
    let b2 = launch(&b, "b2", &image, &micro).await;
    wait_state(&b, &b2, "running", GUEST_WAIT).await;
}

fn resource<'a>(host: &'a Value, name: &str) -> &'a Value {
    &host[name]
}

#[tokio::test]
async fn the_host_page_shows_physical_committed_and_used_resources_with_the_vms_for_admins_only() {
    if !kvm_or_skip("host page") {
        return;
    }
    let (app, _guest) = small_host(2048, 20).await;
    let admin = admin_api(&app).await;
    let member = member_api(&app, "acme").await;
    let (image, micro) = probe_and_micro(&member).await;
    let vm = launch(&member, "web", &image, &micro).await;
    wait_state(&member, &vm, "running", GUEST_WAIT).await;

    let (status, body) = member.get("/admin/host").await;
    assert_eq!(status, 403, "members do not see the host: {body}");

    let (status, host) = admin.get("/admin/host").await;
    assert_eq!(status, 200, "{host}");
    let memory = resource(&host, "memory");
    assert_eq!(memory["physical"], 2048, "{host:#}");
    assert_eq!(memory["capacity"], 2048);
    assert_eq!(memory["committed"], 128);
    assert_eq!(memory["overcommit"], 1.0);
    let disk = resource(&host, "disk");
    assert_eq!(disk["capacity"], 20 * 1024);
    assert_eq!(disk["committed"], 1024);
    assert!(disk["free"].as_u64().unwrap() > 0, "{host:#}");
    let cpus = resource(&host, "cpus");
    assert_eq!(cpus["committed"], 1);
    assert_eq!(
        cpus["physical"].as_u64().unwrap(),
        std::thread::available_parallelism().unwrap().get() as u64
    );
    let vms = host["vms"].as_array().unwrap();
    assert_eq!(vms.len(), 1, "{host:#}");
    let row = &vms[0];
    assert_eq!(row["id"], vm.as_str());
    assert_eq!(row["tenant_name"], "acme");
    assert_eq!(row["state"], "running");
    // The VMM really has memory resident, and the VM's files (sparse disk, config disk, log) have blocks.
    let rss = row["rss_bytes"].as_u64().unwrap();
    assert!(rss > 1 << 20, "VMM RSS {rss}");
    let allocated = row["disk_allocated_bytes"].as_u64().unwrap();
    assert!(
        allocated > 0 && allocated < 1 << 30,
        "sparse disk: {allocated} bytes allocated"
    );
    assert!(memory["used"].as_u64().unwrap() >= rss / (1024 * 1024));
    assert!(!host["kvm_mode"].as_str().unwrap().is_empty());

    // A stopped VM commits no memory and has no VMM, but keeps its disk.
    assert_eq!(action(&member, &vm, "stop").await.0, 202);
    wait_state(&member, &vm, "stopped", GUEST_WAIT).await;
    let host = admin.get("/admin/host").await.1;
    assert_eq!(host["memory"]["committed"], 0, "{host:#}");
    assert_eq!(host["disk"]["committed"], 1024);
    assert_eq!(host["vms"][0]["rss_bytes"], Value::Null);
}

#[tokio::test]
async fn concurrent_launches_of_two_tenants_never_overshoot_the_host() {
    if !kvm_or_skip("admission control under concurrency") {
        return;
    }
    let (app, _guest) = small_host(512, 100).await;
    let a = member_api(&app, "acme").await;
    let b = member_api(&app, "bravo").await;
    let (image, micro) = probe_and_micro(&a).await;
    // 12 launches of 128 MiB at once, half from each tenant, on a host that holds 4.
    let launches = (0..12).map(|i| {
        let api = if i % 2 == 0 { &a } else { &b };
        let body = json!({ "name": format!("vm{i}"), "image_id": image, "flavor_id": micro });
        async move { api.post("/vms", &body).await }
    });
    let answers = futures_util::future::join_all(launches).await;
    let admitted = answers.iter().filter(|(s, _)| *s == 202).count();
    let refused: Vec<_> = answers.iter().filter(|(s, _)| *s == 409).collect();
    assert_eq!(admitted, 4, "{answers:?}");
    assert_eq!(refused.len(), 8, "{answers:?}");
    for (_, body) in refused {
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with("Not enough memory on the host: 128 MiB asked, 0 MiB free of 512 MiB"),
            "{message}"
        );
    }
    assert_eq!(vm_count(&a).await + vm_count(&b).await, 4);
}
