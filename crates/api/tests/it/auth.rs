//! API keys and scopes.

use calgate_core::{MailboxKind, PrivacyPolicy};
use reqwest::Method;
use serde_json::json;

use crate::common::api;

#[tokio::test]
async fn requests_without_a_valid_key_get_401_and_the_wrong_scope_403() {
    let api = api().await;
    let user = api.users()[0].clone();
    api.link(&user, MailboxKind::User, PrivacyPolicy::Full)
        .await;

    // No key, a key of another format, an unknown key id, the right id with a wrong secret.
    let r = api.get("/v1/mailboxes", None).await;
    r.problem(401);
    assert!(
        r.header("www-authenticate")
            .is_some_and(|h| h.starts_with("Bearer")),
        "{:?}",
        r.headers
    );
    let tampered = {
        let mut k = api.read_key.clone();
        let last = k.pop().expect("key");
        k.push(if last == 'A' { 'B' } else { 'A' });
        k
    };
    for key in [
        "nonsense",
        "cgk_0123456789abcdef_c2VjcmV0",
        tampered.as_str(),
        "",
    ] {
        let r = api.get("/v1/mailboxes", Some(key)).await;
        r.problem(401);
        assert!(
            !r.text.contains(key) || key.is_empty(),
            "the key is echoed: {}",
            r.text
        );
    }
    let basic = api
        .send(
            api.request(Method::GET, "/v1/mailboxes", None)
                .header("authorization", "Basic dXNlcjpwYXNz"),
        )
        .await;
    basic.problem(401);

    // read: reads only.
    let read = Some(api.read_key.as_str());
    assert_eq!(api.get("/v1/mailboxes", read).await.status, 200);
    let link = json!({ "address": user, "connection": "contoso" });
    api.post("/v1/mailboxes", read, &link).await.problem(403);
    api.get("/v1/connections", read).await.problem(403);
    let sync = format!("/v1/mailboxes/{user}/sync");
    api.post(&sync, read, &json!({})).await.problem(403);
    let unlink = api
        .send(api.request(Method::DELETE, &format!("/v1/mailboxes/{user}"), read))
        .await;
    unlink.problem(403);

    // write: may ask for a sync (no scheduler here: 503), not administer.
    let write = Some(api.write_key.as_str());
    api.post(&sync, write, &json!({})).await.problem(503);
    api.post("/v1/mailboxes", write, &link).await.problem(403);
    api.get("/v1/connections", write).await.problem(403);

    // admin: everything.
    let admin = Some(api.admin_key.as_str());
    assert_eq!(api.get("/v1/connections", admin).await.status, 200);
    assert_eq!(api.get("/v1/mailboxes", admin).await.status, 200);

    // Nothing was unlinked by the refused calls.
    assert!(api.store.mailbox(&user).await.expect("store").is_some());

    // A revoked key stops working at once.
    assert!(api.store.revoke_api_key("reader").await.expect("revoke"));
    api.get("/v1/mailboxes", read).await.problem(401);

    // Health, readiness and the OpenAPI document need no key.
    for path in ["/healthz", "/readyz", "/openapi.json", "/metrics"] {
        let r = api.get(path, None).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text);
    }
}

#[tokio::test]
async fn keys_are_stored_as_salted_hashes_only() {
    let api = api().await;
    let keys = api.store.list_api_keys().await.expect("keys");
    assert_eq!(keys.len(), 3);
    for plain in [&api.read_key, &api.write_key, &api.admin_key] {
        let id = calgate_api::auth::key_id(plain).expect("a calgate key");
        let k = keys.iter().find(|k| k.key_id == id).expect("stored by id");
        assert!(calgate_api::auth::matches(k, plain));
        assert!(!calgate_api::auth::matches(k, &format!("{plain}x")));
        assert_eq!(k.hash.len(), 32);
        assert!(k.salt.len() >= 16);
    }
    let mut salts: Vec<_> = keys.iter().map(|k| k.salt.clone()).collect();
    salts.sort();
    salts.dedup();
    assert_eq!(salts.len(), 3, "every key has its own salt");
    // Neither the SQLite file nor its WAL holds a key's secret part.
    api.store.close().await;
    let mut bytes = std::fs::read(&api.db).expect("database file");
    if let Ok(wal) = std::fs::read(api.db.with_extension("db-wal")) {
        bytes.extend(wal);
    }
    for plain in [&api.read_key, &api.write_key, &api.admin_key] {
        let secret = plain[4..].split_once('_').expect("secret part").1;
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "a key is stored in plain text"
        );
    }
}
