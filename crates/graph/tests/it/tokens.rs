//! Token acquisition: secret, certificate (PS256 and RS256), v1, caching, single flight,
//! credential fallback.

use crate::common::*;

#[tokio::test]
async fn secret_token_is_cached_across_many_calls() {
    let t = start().await;
    let (id, _) = t.app("calgate");
    let c = t.client("calgate");
    let before = t.api.app_counters(&id).await["tokens_issued"]
        .as_u64()
        .unwrap();
    let mb = &t.mailboxes("user")[0];
    for _ in 0..5 {
        let u = c.get_user(mb).await.unwrap();
        assert!(!u.id.is_empty());
    }
    let tok = c.access_token().await.unwrap();
    assert!(
        tok.roles()
            .unwrap()
            .iter()
            .any(|r| r == "Calendars.ReadWrite")
    );
    assert!(!format!("{tok:?}").contains(tok.secret().expose()));
    assert_eq!(t.shared.metrics().token_requests, 1);
    let after = t.api.app_counters(&id).await["tokens_issued"]
        .as_u64()
        .unwrap();
    assert_eq!(after - before, 1, "one token for six calls");
    // A second client of the same connection on the same Shared reuses the cache.
    let c2 = t.client("calgate");
    c2.access_token().await.unwrap();
    assert_eq!(t.shared.metrics().token_requests, 1);
}

#[tokio::test]
async fn twenty_concurrent_callers_share_one_token_request() {
    let t = start().await;
    let (id, _) = t.app("calgate");
    let before = t.api.app_counters(&id).await["token_requests"]
        .as_u64()
        .unwrap();
    let c = t.client("calgate");
    let calls = (0..20).map(|_| {
        let c = c.clone();
        tokio::spawn(async move {
            c.access_token()
                .await
                .map(|t| t.secret().expose().to_owned())
        })
    });
    let tokens: Vec<String> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(|r| r.unwrap().unwrap())
        .collect();
    assert!(
        tokens.windows(2).all(|w| w[0] == w[1]),
        "everyone got the same token"
    );
    assert_eq!(t.shared.metrics().token_requests, 1);
    let after = t.api.app_counters(&id).await["token_requests"]
        .as_u64()
        .unwrap();
    assert_eq!(after - before, 1, "the token endpoint saw one request");
}

#[tokio::test]
async fn certificate_assertion_ps256_and_rs256() {
    let t = start().await;
    let id = t
        .api
        .new_app("cert-app", &["Calendars.Read"])
        .await
        .0
        .client_id;
    let cert = t
        .api
        .expect(
            reqwest::Method::POST,
            &format!("/apps/{id}/certificates"),
            Some(&json!({"generate": true})),
            201,
        )
        .await;
    let key = cert["private_key_pem"].as_str().unwrap();
    let pem = cert["cert_pem"].as_str().unwrap();
    let info = CertificateInfo::from_pem(pem).unwrap();
    assert_eq!(
        info.x5t_s256,
        cert["thumbprint_sha256_b64url"].as_str().unwrap()
    );
    assert_eq!(
        info.thumbprint_hex.to_ascii_lowercase(),
        cert["thumbprint_sha1_hex"]
            .as_str()
            .unwrap()
            .to_ascii_lowercase()
    );
    let cred = Credential::certificate(key, pem).unwrap();
    assert!(cred.expires().is_some());
    assert!(!format!("{cred:?}").contains("PRIVATE KEY"));
    let c = GraphClient::new(t.config(&id, vec![cred.clone()]), &t.shared).unwrap();
    let mb = &t.mailboxes("user")[0];
    let (a, b) = window();
    c.calendar_view(mb, a, b).await.unwrap();
    // RS256 + x5t (legacy).
    let Credential::Certificate {
        private_key_pem,
        cert_pem,
        expires,
        ..
    } = cred
    else {
        unreachable!()
    };
    let rs = Credential::Certificate {
        private_key_pem,
        cert_pem,
        expires,
        alg: AssertionAlg::Rs256,
    };
    let shared = Shared::new().unwrap();
    let c = GraphClient::new(t.config(&id, vec![rs]), &shared).unwrap();
    c.access_token().await.unwrap();
}

#[tokio::test]
async fn v1_endpoint_with_resource() {
    let t = start().await;
    let (id, secret) = t.app("calgate");
    let mut cfg = t.config(&id, vec![Credential::secret(secret, None)]);
    cfg.token_endpoint = TokenEndpoint::V1;
    let c = GraphClient::new(cfg, &t.shared).unwrap();
    assert!(
        c.token_url().ends_with("/oauth2/token"),
        "{}",
        c.token_url()
    );
    let tok = c.access_token().await.unwrap();
    assert!(tok.expires_at() > jiff::Timestamp::now());
    c.get_user(&t.mailboxes("user")[0]).await.unwrap();
}

#[tokio::test]
async fn falls_back_to_the_next_credential_and_remembers() {
    let t = start().await;
    let (id, secret) = t.app("calgate");
    let creds = vec![
        Credential::secret("the-secret-id-not-its-value", None),
        Credential::secret(secret, None),
    ];
    let c = GraphClient::new(t.config(&id, creds), &t.shared).unwrap();
    c.access_token().await.unwrap();
    let st = c.credential_statuses();
    assert!(st[1].active && !st[0].active);
    assert_eq!(
        st[0].rejected.as_ref().and_then(|e| e.aadsts()),
        Some(7000215)
    );
    let n = t.shared.metrics().token_requests;
    assert_eq!(n, 2);
    // Cached, and the rejected one is not tried first again.
    c.get_user(&t.mailboxes("user")[0]).await.unwrap();
    assert_eq!(t.shared.metrics().token_requests, 2);
}
