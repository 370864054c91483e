//! The quota defaults in force are readable (the admin page shows them in its defaults form), by admins only,
//! network limits included.

use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn admins_read_the_quota_defaults_in_force() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let admin_api = app.api(&admin.token("admin").await);
    app.tenant_with_member(&admin, "acme", "ann").await;
    let ann = app.signed_in("ann", "ann-password-1").await;
    let ann_api = app.api(&ann.token("ann").await);

    let (status, defaults) = admin_api.get("/quotas/defaults").await;
    assert_eq!(status, 200, "{defaults}");
    assert_eq!(
        defaults,
        json!({"instances": 10, "vcpus": 16, "memory_mib": 32768, "disk_gib": 500,
            "networks": 3, "floating_ips": 2, "port_forwards": 10})
    );
    let (status, err) = ann_api.get("/quotas/defaults").await;
    assert_eq!(status, 403, "{err}");

    let changed = json!({"instances": 3, "vcpus": 4, "memory_mib": 2048, "disk_gib": 20});
    assert_eq!(admin_api.put("/quotas/*", &changed).await.0, 204);
    // The network limits were not sent: they keep their values.
    let mut expected = changed.clone();
    expected["networks"] = json!(3);
    expected["floating_ips"] = json!(2);
    expected["port_forwards"] = json!(10);
    assert_eq!(admin_api.get("/quotas/defaults").await.1, expected);
    // A tenant without its own limits has exactly these.
    let (_, quotas) = admin_api.get("/quotas").await;
    let acme = quotas
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["tenant_name"] == "acme")
        .unwrap()
        .clone();
    assert_eq!(acme["limits"], changed);
    assert_eq!(acme["is_default"], true);
}
