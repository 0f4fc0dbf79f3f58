//! Mailboxes: link (verified), list with sync status, verify, unlink.

use calgate_core::{MailboxKind, PrivacyPolicy};
use reqwest::Method;
use serde_json::json;

use crate::common::api;

#[tokio::test]
async fn link_verifies_through_exchange_and_the_list_follows_the_contract() {
    let api = api().await;
    let admin = Some(api.admin_key.as_str());
    let user = api.users()[0].clone();
    let room = api.rooms()[0].clone();

    let r = api
        .post(
            "/v1/mailboxes",
            admin,
            &json!({ "address": user.to_uppercase(), "connection": "contoso", "privacy": "busy-only", "external_id": "hr-17" }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let v = r.json();
    assert_eq!(v["created"], true);
    assert!(v["verified"].is_string(), "{v}");
    assert_eq!(v["mailbox"]["privacy"], "busy-only");
    assert_eq!(v["mailbox"]["external_id"], "hr-17");

    // No kind given: Exchange's answer decides (a room is a room).
    let r = api
        .post(
            "/v1/mailboxes",
            admin,
            &json!({ "address": room, "connection": "contoso" }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json()["mailbox"]["kind"], "room");

    // Linking again keeps what was set and says it was not created.
    let r = api
        .post(
            "/v1/mailboxes",
            admin,
            &json!({ "address": user, "connection": "contoso" }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["created"], false);
    assert_eq!(r.json()["mailbox"]["privacy"], "busy-only");

    // A mailbox Exchange does not have, and a connection calgate does not have: refused,
    // nothing linked.
    let domain = user.split_once('@').expect("address").1;
    let ghost = format!("nobody.here@{domain}");
    let detail = api
        .post(
            "/v1/mailboxes",
            admin,
            &json!({ "address": ghost, "connection": "contoso" }),
        )
        .await
        .problem(422);
    assert!(detail.contains("nobody.here"), "{detail}");
    let detail = api
        .post(
            "/v1/mailboxes",
            admin,
            &json!({ "address": user, "connection": "fabrikam" }),
        )
        .await
        .problem(422);
    assert!(detail.contains("fabrikam"), "{detail}");
    api.post(
        "/v1/mailboxes",
        admin,
        &json!({ "address": user, "connection": "contoso", "privacy": "secret" }),
    )
    .await
    .problem(400);
    assert!(api.store.mailbox(&ghost).await.expect("store").is_none());

    // The list: DESIGN.md's shape.
    let list = api.get("/v1/mailboxes", admin).await.ok();
    let mailboxes = list["mailboxes"].as_array().expect("mailboxes");
    assert_eq!(mailboxes.len(), 2);
    for m in mailboxes {
        for key in [
            "address",
            "kind",
            "connection",
            "privacy",
            "external_id",
            "status",
        ] {
            assert!(m.get(key).is_some(), "{key} missing: {m}");
        }
        for key in ["state", "last_success", "last_error"] {
            assert!(m["status"].get(key).is_some(), "status.{key} missing: {m}");
        }
        assert_eq!(m["connection"], "contoso");
    }
}

#[tokio::test]
async fn a_mailbox_whose_sync_fails_shows_its_error_and_the_others_stay_ok() {
    let api = api().await;
    let user = api.users()[0].clone();
    let domain = user.split_once('@').expect("address").1.to_owned();
    let ghost = format!("left.the.company@{domain}");
    api.link(&user, MailboxKind::User, PrivacyPolicy::Full)
        .await;
    api.link(&ghost, MailboxKind::User, PrivacyPolicy::Full)
        .await;
    let summary = api.sync().await;
    assert_eq!(summary.failures().count(), 1);

    let list = api.get("/v1/mailboxes", Some(&api.read_key)).await.ok();
    let find = |a: &str| {
        list["mailboxes"]
            .as_array()
            .expect("mailboxes")
            .iter()
            .find(|m| m["address"] == a)
            .cloned()
            .unwrap_or_else(|| panic!("{a} not listed: {list}"))
    };
    let bad = find(&ghost);
    assert_eq!(bad["status"]["state"], "failing", "{bad}");
    let err = &bad["status"]["last_error"];
    assert!(err["kind"].is_string() && err["at"].is_string(), "{bad}");
    let message = err["message"].as_str().expect("message");
    assert!(!message.is_empty() && !message.contains('\n'), "{message}");
    assert!(bad["status"]["last_success"].is_null(), "{bad}");

    let good = find(&user);
    assert_eq!(good["status"]["state"], "ok", "{good}");
    assert!(good["status"]["last_error"].is_null(), "{good}");
    assert!(good["status"]["last_success"].is_string(), "{good}");
    assert!(
        good["status"]["events"].as_u64().expect("events") > 0,
        "{good}"
    );
}

#[tokio::test]
async fn verify_and_unlink() {
    let api = api().await;
    let admin = Some(api.admin_key.as_str());
    let user = api.users()[1].clone();
    api.link(&user, MailboxKind::User, PrivacyPolicy::Full)
        .await;
    api.sync().await;

    let v = api
        .post(&format!("/v1/mailboxes/{user}/verify"), admin, &json!({}))
        .await
        .ok();
    assert_eq!(v["passed"], true, "{v}");
    let checks = v["checks"].as_array().expect("checks");
    assert!(!checks.is_empty());
    assert!(
        checks
            .iter()
            .all(|c| c["id"].is_string() && c["status"].is_string()),
        "{v}"
    );

    let path = format!("/v1/mailboxes/{user}");
    let r = api.send(api.request(Method::DELETE, &path, admin)).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(api.store.mailbox(&user).await.expect("store").is_none());
    let r = api.send(api.request(Method::DELETE, &path, admin)).await;
    r.problem(404);
    api.get(
        &format!("{path}/events?from=2026-01-01&to=2026-02-01"),
        admin,
    )
    .await
    .problem(404);
    api.post(&format!("{path}/verify"), admin, &json!({}))
        .await
        .problem(404);
}

#[tokio::test]
async fn connections_list_without_secrets_and_test_settings_as_a_checklist() {
    let api = api().await;
    let admin = Some(api.admin_key.as_str());
    let (_, secret) = api.creds.first_app().pair();
    let r = api.get("/v1/connections", admin).await;
    let v = r.ok();
    assert!(!r.text.contains(&secret), "a secret is served");
    let c = &v["connections"][0];
    assert_eq!(c["name"], "contoso");
    assert_eq!(c["credentials"][0]["kind"], "secret");

    let user = api.users()[0].clone();
    api.link(&user, MailboxKind::User, PrivacyPolicy::Full)
        .await;
    let r = api
        .send(api.request(Method::POST, "/v1/connections/contoso/test", admin))
        .await;
    let v = r.ok();
    assert_eq!(v["passed"], true, "{v}");
    assert!(v["checks"].as_array().expect("checks").len() >= 3, "{v}");
    assert!(!r.text.contains(&secret));

    let v = api
        .post(
            "/v1/connections/contoso/test",
            admin,
            &json!({ "mailbox": user, "purpose": "push" }),
        )
        .await
        .ok();
    assert!(v["checks"].is_array(), "{v}");
    api.post("/v1/connections/fabrikam/test", admin, &json!({}))
        .await
        .problem(404);
    api.post(
        "/v1/connections/contoso/test",
        admin,
        &json!({ "purpose": "everything" }),
    )
    .await
    .problem(400);
}
