//! The admin's audit log filtered by actor, action, target (name or id), day range and free text, sorted by
//! time either way and paged, through `GET /api/v1/audit` and the page's server functions; bad parameters are
//! 422s naming the parameter; members are refused; and the chain still verifies whole.

use reqwest::Method;
use serde_json::Value;
use server::db::audit::{self, Entry};
use time::macros::datetime;

use crate::helpers::{spawn_app, Api, TestApp};

/// The entries for `query` and the `X-Total-Count` header.
async fn page(api: &Api, query: &str) -> (Vec<Value>, u64) {
    let res = api
        .client
        .get(format!("{}/api/v1/audit?{query}", api.base))
        .bearer_auth(&api.token)
        .send()
        .await
        .unwrap();
    let status = res.status();
    let total = res
        .headers()
        .get("x-total-count")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let body: Value = res.json().await.unwrap();
    assert_eq!(status, 200, "{query}: {body}");
    let items = body.as_array().unwrap().clone();
    (
        items,
        total.unwrap_or_else(|| panic!("{query}: no X-Total-Count")),
    )
}

fn actions(entries: &[Value]) -> Vec<&str> {
    entries.iter().map(|e| e["action"].as_str().unwrap()).collect()
}

fn seqs(entries: &[Value]) -> Vec<i64> {
    entries.iter().map(|e| e["seq"].as_i64().unwrap()).collect()
}

/// Appends an entry dated `at` straight to the database, as the portal does (the chain stays whole).
async fn append_at(app: &TestApp, action: &str, at: i64) {
    let url = format!("sqlite://{}", app.data_dir.join("portal.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let entry = Entry {
        actor_id: None,
        actor_name: "system",
        tenant_id: None,
        action,
        target: "host:archive",
        detail: "imported",
    };
    audit::append(&pool, &entry, at).await.unwrap();
    pool.close().await;
}

#[tokio::test]
async fn the_audit_log_filters_by_actor_action_target_days_and_text_sorts_and_pages() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let admin_api = app.api(&admin.token("admin").await);
    let (tenant, ann_id) = app.tenant_with_member(&admin, "acme", "ann").await;
    let ann = app.signed_in("ann", "ann-password-1").await;
    let ann_api = app.api(&ann.token("ci-pipeline").await);
    // Two entries of last year: the day range is tested on known dates.
    let march_10_noon = datetime!(2025-03-10 12:00 UTC).unix_timestamp();
    let march_11_last_second = datetime!(2025-03-11 23:59:59 UTC).unix_timestamp();
    append_at(&app, "archive_import", march_10_noon).await;
    append_at(&app, "archive_import", march_11_last_second).await;

    let (all, total) = page(&admin_api, "").await;
    assert_eq!(total as usize, all.len(), "one page holds the whole small log");
    assert!(all.len() >= 6, "{:?}", actions(&all));

    // Action: exactly that action.
    let (only, total) = page(&admin_api, "action=tenant_create").await;
    assert_eq!(actions(&only), ["tenant_create"]);
    assert_eq!(total, 1);
    assert_eq!(only[0]["target"], format!("tenant:{tenant}"));

    // Actor: part of the name, any case, or the user id.
    for q in ["actor=ann", "actor=AN", &format!("actor={ann_id}")] {
        let (by_ann, _) = page(&admin_api, q).await;
        assert!(!by_ann.is_empty(), "{q}");
        assert!(by_ann.iter().all(|e| e["actor"] == "ann"), "{q}: {by_ann:?}");
        assert!(actions(&by_ann).contains(&"token_create"), "{q}");
    }
    let (nobody, total) = page(&admin_api, "actor=zelda").await;
    assert!(nobody.is_empty() && total == 0);

    // Target: the current name of what it points to, or part of the stored `kind:id`.
    let (acme, _) = page(&admin_api, "target=acm").await;
    assert!(actions(&acme).contains(&"tenant_create"), "{acme:?}");
    assert!(
        acme.iter().all(|e| e["target"] == format!("tenant:{tenant}")),
        "{acme:?}"
    );
    let (by_id, _) = page(&admin_api, &format!("target={}", &ann_id[..8])).await;
    assert!(actions(&by_id).contains(&"user_create"), "{by_id:?}");
    assert!(by_id
        .iter()
        .all(|e| e["target"].as_str().unwrap().contains(&ann_id[..8])));
    let (token, _) = page(&admin_api, "target=pipeline").await;
    assert_eq!(actions(&token), ["token_create"], "the token named ci-pipeline");

    // Days: UTC, both ends inclusive.
    let (day, total) = page(&admin_api, "from=2025-03-10&to=2025-03-10").await;
    assert_eq!(total, 1);
    assert_eq!(day[0]["at"], "2025-03-10T12:00:00Z");
    let (last_second, _) = page(&admin_api, "from=2025-03-11&to=2025-03-11").await;
    assert_eq!(seqs(&last_second).len(), 1);
    assert_eq!(last_second[0]["at"], "2025-03-11T23:59:59Z");
    let (both, _) = page(&admin_api, "to=2025-03-11").await;
    assert_eq!(actions(&both), ["archive_import", "archive_import"]);
    let today = time::OffsetDateTime::now_utc().date().to_string();
    let (recent, _) = page(&admin_api, &format!("from={today}")).await;
    assert!(!actions(&recent).contains(&"archive_import"));
    assert!(actions(&recent).contains(&"tenant_create"));
    assert_eq!(recent.len() + 2, all.len());

    // Free text: the actor, action, target name or detail.
    let (text, _) = page(&admin_api, "q=pipeline").await;
    assert_eq!(actions(&text), ["token_create"]);
    let (text, _) = page(&admin_api, "q=imported").await;
    assert_eq!(actions(&text), ["archive_import", "archive_import"]);
    let (text, _) = page(&admin_api, "q=TENANT_CREATE").await;
    assert_eq!(actions(&text), ["tenant_create"]);

    // Filters combine.
    let (combined, _) = page(&admin_api, "actor=ann&action=user_create").await;
    assert!(combined.is_empty(), "ann created no user: {combined:?}");
    let (combined, _) = page(&admin_api, "actor=admin&action=user_create&target=ann").await;
    assert_eq!(actions(&combined), ["user_create"]);

    // Time order: newest first unless asked; `sort=at` is the reverse.
    let newest_first = seqs(&all);
    assert!(newest_first.windows(2).all(|w| w[0] > w[1]), "{newest_first:?}");
    let (oldest, _) = page(&admin_api, "sort=at").await;
    let mut reversed = newest_first.clone();
    reversed.reverse();
    assert_eq!(seqs(&oldest), reversed);
    assert_eq!(seqs(&page(&admin_api, "sort=-at").await.0), newest_first);

    // Pages: disjoint, in order, the total the same on each.
    let (first, t1) = page(&admin_api, "limit=2").await;
    let (second, t2) = page(&admin_api, "limit=2&offset=2").await;
    assert_eq!((t1, t2), (total_of(&all), total_of(&all)));
    assert_eq!(seqs(&first), newest_first[..2]);
    assert_eq!(seqs(&second), newest_first[2..4]);
    let (past_the_end, t3) = page(&admin_api, "offset=10000").await;
    assert!(past_the_end.is_empty());
    assert_eq!(t3, total_of(&all));

    // The page's server functions: the same filters, 50 a page, and the actions for the drop-down.
    let res = admin
        .call_ok("audit_log", &[("action", "token_create"), ("actor", "ann")])
        .await;
    assert_eq!(res["limit"], 50);
    assert_eq!(res["total"], 1);
    assert_eq!(res["items"][0]["action"], "token_create");
    let listed = admin.call_ok("audit_actions", &[]).await;
    let listed: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    for a in ["archive_import", "tenant_create", "token_create", "user_create"] {
        assert!(listed.contains(&a), "{a} in {listed:?}");
    }
    assert!(
        listed.windows(2).all(|w| w[0] < w[1]),
        "sorted, each once: {listed:?}"
    );

    // Members see none of it.
    assert_eq!(ann_api.get("/audit?action=token_create").await.0, 403);
    let res = ann.call("audit_actions", &[]).await;
    assert_eq!(res.status(), 403);

    // Filtering chose rows and changed none: the chain (with the imported entries) is whole.
    let (_, check) = admin_api.get("/audit/verify").await;
    assert_eq!(check["broken_at"], Value::Null, "{check}");
    assert_eq!(check["entries"].as_u64(), Some(total_of(&all)));
}

fn total_of(all: &[Value]) -> u64 {
    all.len() as u64
}

#[tokio::test]
async fn bad_audit_filters_are_422s_naming_the_parameter() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let api = app.api(&admin.token("admin").await);
    for (query, field) in [
        ("from=2026-13-01", "from"),
        ("from=yesterday", "from"),
        ("to=2026-02-30", "to"),
        ("to=28.11.2026", "to"),
        ("from=2026-11-28&to=2026-11-01", "to"),
        ("sort=actor", "sort"),
        ("action=vm%20launch", "action"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("offset=-1", "offset"),
    ] {
        let (status, body) = api.send(Method::GET, &format!("/audit?{query}"), None).await;
        assert_eq!(status, 422, "{query}: {body}");
        let err = &body["error"];
        assert_eq!(err["field"], field, "{query}: {body}");
        let message = err["message"].as_str().unwrap_or_default();
        assert!(
            message.ends_with('.') && message.len() > 10,
            "{query}: {message:?}"
        );
    }
    let (status, body) = api.get(&format!("/audit?q={}", "x".repeat(101))).await;
    assert_eq!(
        (status, &body["error"]["field"]),
        (422, &Value::from("q")),
        "{body}"
    );
    // An unknown parameter is refused rather than ignored (a typo must not show the whole log).
    let (status, body) = api.get("/audit?acter=ann").await;
    assert!((400..500).contains(&status), "{status}: {body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    // The page's server function says the same.
    let res = admin.call("audit_log", &[("from", "2026-99-01")]).await;
    assert_eq!(res.status(), 422);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["field"], "from", "{body}");
}
