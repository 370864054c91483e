//! The catalogue over REST: flavors (admins create, members only list offered ones), image uploads
//! (checked, size-limited, nothing left behind on refusal) and the OpenAPI document.

use reqwest::Method;
use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn flavors_are_admin_managed_and_validated() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let admin_api = app.api(&admin.token("admin").await);
    app.tenant_with_member(&admin, "acme", "ann").await;
    let ann = app.signed_in("ann", "ann-password-1").await;
    let ann_api = app.api(&ann.token("ann").await);

    let (status, defaults) = ann_api.get("/flavors").await;
    assert_eq!(status, 200);
    assert!(defaults
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["name"] == "t1.micro"));

    let body =
        json!({"name": "x1.huge", "vcpus": 9, "memory_mib": 128, "disk_gib": 1, "hourly_price_minor": 5});
    let (status, err) = admin_api.send(Method::POST, "/flavors", Some(body)).await;
    assert_eq!(status, 422);
    assert_eq!(err["error"]["field"], "vcpus");

    let body =
        json!({"name": "c1.tiny", "vcpus": 1, "memory_mib": 64, "disk_gib": 1, "hourly_price_minor": 1});
    assert_eq!(
        ann_api.send(Method::POST, "/flavors", Some(body.clone())).await.0,
        403
    );
    let (status, created) = admin_api.send(Method::POST, "/flavors", Some(body.clone())).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        admin_api.send(Method::POST, "/flavors", Some(body)).await.0,
        422,
        "duplicate name"
    );

    // Withdrawn flavors disappear for members but not for admins.
    let id = created["id"].as_str().unwrap();
    let (status, _) = admin_api
        .send(
            Method::PATCH,
            &format!("/flavors/{id}"),
            Some(json!({"disabled": true})),
        )
        .await;
    assert_eq!(status, 200);
    assert!(!ann_api.get("/flavors").await.1.to_string().contains("c1.tiny"));
    assert!(admin_api.get("/flavors").await.1.to_string().contains("c1.tiny"));
}

pub(crate) fn elf_kernel() -> Vec<u8> {
    let mut elf = vec![0u8; 4096];
    elf[..4].copy_from_slice(b"\x7fELF");
    elf[4] = 2;
    elf[18] = 0x3e;
    elf
}

pub(crate) async fn upload(
    app: &crate::helpers::TestApp,
    token: &str,
    kernel: Vec<u8>,
    name: &str,
) -> (u16, serde_json::Value) {
    let form = reqwest::multipart::Form::new()
        .text("name", name.to_string())
        .text("os", "Test OS")
        .text("cmdline", "console=ttyS0")
        .part(
            "kernel",
            reqwest::multipart::Part::bytes(kernel).file_name("vmlinux"),
        )
        .part(
            "initrd",
            reqwest::multipart::Part::bytes(vec![0x1f, 0x8b, 8, 0, 0, 0]).file_name("initrd.gz"),
        );
    let res = reqwest::Client::new()
        .post(format!("{}/api/v1/images", app.base))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or_default())
}

#[tokio::test]
async fn image_uploads_are_checked_limited_and_leave_nothing_behind_when_refused() {
    // 64 MiB limit in test settings; lower it to 1 MiB to test the cap cheaply.
    let app = crate::helpers::spawn_app_with(|s| s.max_image_upload_mib = 1).await;
    let admin = app.admin().await;
    let token = admin.token("admin").await;
    let images_dir = app.data_dir.join("images");
    let leftovers = || std::fs::read_dir(&images_dir).map(|d| d.count()).unwrap_or(0);

    let (status, err) = upload(&app, &token, b"#!/bin/sh\necho not a kernel\n".to_vec(), "bad").await;
    assert_eq!(status, 422, "{err}");
    assert_eq!(err["error"]["field"], "kernel");
    assert_eq!(leftovers(), 0, "a refused upload leaves nothing");

    let mut big = elf_kernel();
    big.resize(2 << 20, 0);
    let (status, _) = upload(&app, &token, big, "big").await;
    assert_eq!(status, 413);
    assert_eq!(leftovers(), 0, "an oversized upload leaves nothing");

    let (status, image) = upload(&app, &token, elf_kernel(), "tiny-linux").await;
    assert_eq!(status, 201, "{image}");
    assert_eq!(image["os"], "Test OS");
    let api = app.api(&token);
    assert!(api.get("/images").await.1.to_string().contains("tiny-linux"));
    let (status, _) = upload(&app, &token, elf_kernel(), "tiny-linux").await;
    assert_eq!(status, 422, "duplicate name");

    // Members may not upload.
    app.tenant_with_member(&admin, "acme", "ann").await;
    let ann = app.signed_in("ann", "ann-password-1").await;
    let (status, _) = upload(&app, &ann.token("ann").await, elf_kernel(), "mine").await;
    assert_eq!(status, 403);

    // Deleting an unused image removes its files.
    let id = image["id"].as_str().unwrap();
    assert_eq!(
        api.send(Method::DELETE, &format!("/images/{id}"), None).await.0,
        204
    );
    assert_eq!(leftovers(), 0);
}

#[tokio::test]
async fn the_openapi_document_describes_the_vm_api() {
    let app = spawn_app().await;
    let doc: serde_json::Value = reqwest::get(format!("{}/api/v1/openapi.json", app.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/vms",
        "/vms/{id}",
        "/vms/{id}/actions",
        "/flavors",
        "/images",
        "/events",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing");
    }
    assert!(doc["components"]["schemas"].get("VmView").is_some());
}
