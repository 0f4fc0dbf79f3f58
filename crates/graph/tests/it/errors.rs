//! Error classification for the administrator's mistakes, end to end.

use crate::common::*;

/// The error of getting a token with `cfg`.
async fn token_error(t: &T, cfg: ConnectionConfig) -> Error {
    GraphClient::new(cfg, &t.shared)
        .unwrap()
        .access_token()
        .await
        .unwrap_err()
}

fn assert_kind(e: &Error, kind: ErrorKind, needles: &[&str]) {
    assert_eq!(e.kind, kind, "{e:?}");
    for n in needles {
        assert!(e.message.contains(n), "'{n}' missing in: {}", e.message);
    }
}

#[tokio::test]
async fn wrong_and_expired_secret_unknown_tenant_and_app() {
    let t = start().await;
    let (id, secret) = t.app("calgate");
    let mb = t.mailboxes("user")[0].clone();
    // Wrong secret.
    let c = t.client_with_secret(&id, "nope");
    let e = c.get_user(&mb).await.unwrap_err();
    assert_kind(
        &e,
        ErrorKind::Authentication,
        &["AADSTS7000215", "Value (not its Secret ID)"],
    );
    assert!(!e.message.contains("nope"));
    // Expired secret.
    let (xapp, app) = t.api.new_app("expiring", &["Calendars.Read"]).await;
    let (xid, xsecret) = xapp.pair();
    let key_id = app["secret"]["key_id"].as_str().unwrap();
    t.api
        .expect(
            reqwest::Method::PATCH,
            &format!("/apps/{xid}/secrets/{key_id}"),
            Some(&json!({"expires_in_seconds": -60})),
            200,
        )
        .await;
    let c = t.client_with_secret(&xid, xsecret);
    let e = c.access_token().await.unwrap_err();
    assert_kind(
        &e,
        ErrorKind::Authentication,
        &["AADSTS7000222", "expired", "Certificates & secrets"],
    );
    // Unknown tenant.
    let mut cfg = t.config(&id, vec![Credential::secret(secret.clone(), None)]);
    cfg.tenant = "nosuch.onmicrosoft.com".into();
    let e = token_error(&t, cfg).await;
    assert_kind(
        &e,
        ErrorKind::Authentication,
        &[
            "AADSTS90002",
            "nosuch.onmicrosoft.com",
            "Directory (tenant) ID",
        ],
    );
    // App not in the tenant.
    let cfg = t.config(
        "9e3c3f5a-0000-4000-8000-000000000001",
        vec![Credential::secret(secret, None)],
    );
    let e = token_error(&t, cfg).await;
    assert_kind(
        &e,
        ErrorKind::Authentication,
        &["AADSTS700016", "Application (client) ID"],
    );
}

#[tokio::test]
async fn missing_permission_out_of_scope_and_unknown_mailbox() {
    let t = start().await;
    let mb = t.mailboxes("user")[0].clone();
    let (a, b) = window();
    // No calendar permission at all.
    let (id, secret) = t.api.new_app("no-perms", &[]).await.0.pair();
    let c = t.client_with_secret(&id, secret);
    let e = c.calendar_view(&mb, a, b).await.unwrap_err();
    assert_kind(
        &e,
        ErrorKind::Permission,
        &["Calendars.Read", "admin consent", &mb],
    );
    assert_eq!(e.status, Some(403));
    // RBAC-scoped app: a mailbox inside its scope works, one outside is refused.
    let g = t
        .api
        .expect(
            reqwest::Method::GET,
            "/groups/calgate-scope@contoso.example",
            None,
            200,
        )
        .await;
    let members: Vec<String> = g["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            m.as_str()
                .or_else(|| m["address"].as_str())
                .or_else(|| m["mail"].as_str())
                .unwrap()
                .to_ascii_lowercase()
        })
        .collect();
    let outside = t
        .mailboxes("user")
        .into_iter()
        .find(|m| !members.contains(&m.to_ascii_lowercase()))
        .unwrap();
    let scoped = t.client("calgate-scoped");
    scoped.calendar_view(&members[0], a, b).await.unwrap();
    let e = scoped.calendar_view(&outside, a, b).await.unwrap_err();
    assert_kind(
        &e,
        ErrorKind::Permission,
        &[
            &outside,
            "New-ManagementRoleAssignment",
            "CustomResourceScope",
        ],
    );
    // Unknown mailbox.
    let c = t.client("calgate");
    let e = c
        .calendar_view("nobody@contoso.example", a, b)
        .await
        .unwrap_err();
    assert_kind(
        &e,
        ErrorKind::NotFound,
        &["nobody@contoso.example", "not found"],
    );
    let e = c.get_user("nobody@contoso.example").await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound, "{e:?}");
}

#[tokio::test]
async fn plain_http_only_to_loopback() {
    let t = start().await;
    let (id, secret) = t.app("calgate");
    for (field, url) in [
        ("graph", "http://graph.microsoft.com/v1.0"),
        ("authority", "http://login.example.com"),
        ("graph", "http://10.1.2.3/v1.0"),
    ] {
        let mut cfg = t.config(&id, vec![Credential::secret(secret.clone(), None)]);
        if field == "graph" {
            cfg.graph_url = url.into();
        } else {
            cfg.authority = url.into();
        }
        let e = GraphClient::new(cfg, &t.shared).unwrap_err();
        assert_kind(
            &e,
            ErrorKind::Fatal,
            &[
                "http://",
                "https://",
                "loopback"
                    .trim_start_matches("loop")
                    .trim_start_matches("back"),
            ],
        );
        assert!(e.message.contains("127.0.0.1"), "{}", e.message);
    }
    // localhost is fine.
    let mut cfg = t.config(&id, vec![Credential::secret(secret, None)]);
    cfg.graph_url = cfg.graph_url.replace("127.0.0.1", "localhost");
    GraphClient::new(cfg, &t.shared).unwrap();
}

#[tokio::test]
async fn foreign_paging_links_are_refused() {
    let t = start().await;
    let c = t.client("calgate");
    let mb = t.mailboxes("user")[0].clone();
    let e = c
        .delta(
            &mb,
            DeltaRequest::Follow(
                "https://evil.example/v1.0/users/x/calendarView/delta?$deltatoken=abc".into(),
            ),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidData, "{e:?}");
    let e = c
        .delta(&mb, DeltaRequest::Follow("not a url".into()))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidData, "{e:?}");
}
