//! Key pairs: saved after a real OpenSSH parse (bad, short-RSA and duplicate keys refused with the field),
//! listed with their SHA256 fingerprint, deleted, audited, invisible to another tenant (its ids are "not
//! found" everywhere, including at launch), and written into the config disk's `authorized_keys` when a
//! launch picks them.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_app_with, TestApp};
use crate::vm_helpers::{member_api, probe_and_micro, probe_guest_dir};

pub const ED25519: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKN5C7LDhkyyST5qiBbSjsKYV0/8adrS5YukC4c+YExk alice@laptop";
pub const ED25519_FINGERPRINT: &str = "SHA256:sf8CpO5+SaW8pFhkpky/2QVsWx57O67vgC2SBphIAtc";
const ECDSA: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBH1YcQShMCISzgXau4QlnEfvnQ+isbVFqwPlym9zB6cqn+AW7MJ2k72UwF5r5MFMQbForIz0nBjyrc7qGAN0q3g= ec";
const RSA_1024: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQCvSbFNNdk3Wq/uT3x/WU+Z6sSuIHyhF7BYFR6b69Y3EGVBa+OI6GwvkfSvXH6fi8yLz7KXd3QvTscftNvzj7EKrc0bcMux3r21JQgRqNuHHQoe+iy85Wlg39aOe3pLraq++Xwdb5enVpNzOFKx+HEbIxroZe/UjccsILNIyAF93w== rsa1024";

/// A portal with the probe image registered whose VMM cannot start (`/bin/false`): launches are accepted,
/// provisioned (disks, config disk) and then fail, so tests of what surrounds a VM need no guest CPU.
pub async fn portal_without_guests() -> TestApp {
    let guest = probe_guest_dir();
    let guest_dir = guest.path().to_path_buf();
    let mut app = spawn_app_with(|s| {
        s.guest_dir = guest_dir;
        s.vmm_binary = Some("/bin/false".into());
    })
    .await;
    app._guest = Some(guest);
    app
}

#[tokio::test]
async fn key_pairs_are_validated_listed_deleted_and_private_to_their_tenant() {
    let app = spawn_app().await;
    let alice = member_api(&app, "acme").await;
    let bob = member_api(&app, "globex").await;

    let (status, key) = alice
        .post(
            "/keypairs",
            &json!({"name": "laptop", "public_key": format!("  {ED25519}\n")}),
        )
        .await;
    assert_eq!(status, 201, "{key}");
    assert_eq!(key["fingerprint"], ED25519_FINGERPRINT);
    assert_eq!(key["algorithm"], "ssh-ed25519");
    assert_eq!(key["bits"], 256);
    assert_eq!(key["public_key"], ED25519);
    let id = key["id"].as_str().unwrap().to_string();
    let (status, _) = alice
        .post("/keypairs", &json!({"name": "work", "public_key": ECDSA}))
        .await;
    assert_eq!(status, 201);

    // Refusals name the field and save nothing.
    for (body, field) in [
        (json!({"name": "laptop", "public_key": ECDSA}), "name"),
        (json!({"name": "bad name", "public_key": ECDSA}), "name"),
        (json!({"name": "old", "public_key": RSA_1024}), "public_key"),
        (
            json!({"name": "junk", "public_key": "ssh-ed25519 AAAAnotakey"}),
            "public_key",
        ),
        (
            json!({"name": "two", "public_key": format!("{ED25519}\n{ECDSA}")}),
            "public_key",
        ),
        (
            json!({"name": "huge", "public_key": format!("{ED25519} {}", "x".repeat(9000))}),
            "public_key",
        ),
    ] {
        let (status, err) = alice.post("/keypairs", &body).await;
        assert_eq!(status, 422, "{body}: {err}");
        assert_eq!(err["error"]["field"], field, "{body}: {err}");
    }
    let (_, short) = alice
        .post("/keypairs", &json!({"name": "old", "public_key": RSA_1024}))
        .await;
    assert!(
        short["error"]["message"].as_str().unwrap().contains("1024 bits"),
        "{short}"
    );

    let (status, list) = alice.get("/keypairs").await;
    assert_eq!(status, 200);
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["laptop", "work"]);

    // Another tenant sees none of them, cannot delete them, and may reuse the name.
    let (_, theirs) = bob.get("/keypairs").await;
    assert_eq!(theirs, json!([]));
    assert_eq!(
        bob.send(Method::DELETE, &format!("/keypairs/{id}"), None).await.0,
        404
    );
    let (status, _) = bob
        .post("/keypairs", &json!({"name": "laptop", "public_key": ED25519}))
        .await;
    assert_eq!(status, 201);
    // Picking alice's key at launch is refused before anything else is looked at.
    let (status, err) = bob
        .post(
            "/vms",
            &json!({"name": "steal", "image_id": "00000000-0000-0000-0000-000000000000",
                    "flavor_id": "00000000-0000-0000-0000-000000000000", "key_pair_ids": [id]}),
        )
        .await;
    assert_eq!(status, 422, "{err}");
    assert_eq!(err["error"]["field"], "key_pair_ids");
    assert_eq!(alice.get("/keypairs").await.1.as_array().unwrap().len(), 2);

    assert_eq!(
        alice
            .send(Method::DELETE, &format!("/keypairs/{id}"), None)
            .await
            .0,
        204
    );
    assert_eq!(
        alice
            .send(Method::DELETE, &format!("/keypairs/{id}"), None)
            .await
            .0,
        404
    );
    assert_eq!(alice.get("/keypairs").await.1.as_array().unwrap().len(), 1);

    // Saving and deleting are in the audit log, with the fingerprint.
    let admin = app.api(&app.admin().await.token("audit").await);
    let (_, log) = admin.get("/audit").await;
    let actions: Vec<(&str, &str)> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["detail"].as_str().unwrap()))
        .collect();
    assert!(
        actions
            .iter()
            .any(|(a, d)| *a == "key_pair_create" && d.contains(ED25519_FINGERPRINT)),
        "{log}"
    );
    assert!(actions.iter().any(|(a, _)| *a == "key_pair_delete"), "{log}");
}

#[tokio::test]
async fn key_pairs_by_server_function_too() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    app.tenant_with_member(&admin, "acme", "alice").await;
    let alice = app.signed_in("alice", "alice-password-1").await;
    let key = alice
        .call_ok("create_key_pair", &[("name", "laptop"), ("public_key", ED25519)])
        .await;
    assert_eq!(key["fingerprint"], ED25519_FINGERPRINT);
    let res = alice
        .call("create_key_pair", &[("name", "other"), ("public_key", RSA_1024)])
        .await;
    assert_eq!(res.status(), 422);
    let list = alice.call_ok("list_key_pairs", &[]).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    let id = key["id"].as_str().unwrap();
    alice.call_ok("delete_key_pair", &[("id", id)]).await;
    assert_eq!(alice.call_ok("list_key_pairs", &[]).await, json!([]));
}

/// The config disk of a VM once provisioning wrote it.
async fn config_disk(app: &TestApp, vm: &str) -> String {
    let path = app.data_dir.join("vms").join(vm).join("config.tar");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(bytes) = std::fs::read(&path) {
            let text = String::from_utf8_lossy(&bytes).into_owned();
            if text.contains("authorized_keys") {
                return text;
            }
        }
        assert!(Instant::now() < deadline, "{} never written", path.display());
        // Not a blocking sleep: the portal runs on this test's runtime.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_launch_writes_the_chosen_key_pairs_and_the_pasted_key_to_authorized_keys() {
    let app = portal_without_guests().await;
    let alice = member_api(&app, "acme").await;
    let (image, flavor) = probe_and_micro(&alice).await;
    let (_, laptop) = alice
        .post("/keypairs", &json!({"name": "laptop", "public_key": ED25519}))
        .await;
    let laptop = laptop["id"].as_str().unwrap().to_string();
    let (status, vm) = alice
        .post(
            "/vms",
            &json!({"name": "web", "image_id": image, "flavor_id": flavor,
                    "ssh_key": ECDSA, "key_pair_ids": [laptop, laptop]}),
        )
        .await;
    assert_eq!(status, 202, "{vm}");
    let disk = config_disk(&app, vm["id"].as_str().unwrap()).await;
    // The pasted key first, then the key pair, once.
    assert!(disk.contains(&format!("{ECDSA}\n{ED25519}\n")), "{disk}");
    assert_eq!(disk.matches(ED25519).count(), 1);

    // A bad pasted key is still refused with its own field.
    let (status, err): (u16, Value) = alice
        .post(
            "/vms",
            &json!({"name": "web-2", "image_id": image, "flavor_id": flavor, "ssh_key": RSA_1024}),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(err["error"]["field"], "ssh_key");
}
