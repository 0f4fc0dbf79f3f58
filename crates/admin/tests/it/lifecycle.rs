//! The credential lifecycle against the in-process simulator (real HTTP) and a real SQLite file:
//! secret add/remove, certificates, rotation without downtime while the old secret expires in
//! the middle of a sync run, learned expiry (AADSTS7000222), and `doctor` at its thresholds with
//! injected time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use calgate_admin::Status;
use calgate_admin::lifecycle::{
    self, CredentialInput, CredentialOptions, ExpiryLevel, LifecycleError, RemoveOptions,
};
use calgate_core::{MailboxKind, PrivacyPolicy};
use calgate_graph::Shared;
use calgate_store::{
    Connection, NewConnection, NewCredential, NewMailbox, Store, SyncCounters, SyncOutcome,
    SyncStatusUpdate,
};
use calgate_sync::{Engine, ProgressEvent, SyncRequest};
use jiff::{SignedDuration, Timestamp};
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{self, Env};

async fn env() -> Env {
    Env::start(
        common::demo(11),
        reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .expect("http"),
        Shared::new().expect("shared"),
    )
    .await
}

/// A new app registration in the simulator: (client id, its first secret {key_id, value, expires}).
struct App {
    client_id: String,
    secret: Value,
}

impl Env {
    async fn new_app(&self, name: &str) -> App {
        let roles = ["Calendars.ReadWrite", "User.Read.All"];
        let (app, v) = self.api.new_app(name, &roles).await;
        App {
            client_id: app.client_id,
            secret: v["secret"].clone(),
        }
    }

    async fn new_secret(&self, app: &App) -> Value {
        let (s, v) = self
            .control(
                Method::POST,
                &format!("/apps/{}/secrets", app.client_id),
                Some(json!({})),
            )
            .await;
        assert_eq!(s, 201, "{v}");
        v
    }

    async fn set_secret_expiry(&self, app: &App, key_id: &str, in_seconds: i64) {
        let (s, v) = self
            .control(
                Method::PATCH,
                &format!("/apps/{}/secrets/{key_id}", app.client_id),
                Some(json!({"expires_in_seconds": in_seconds})),
            )
            .await;
        assert_eq!(s, 200, "{v}");
    }

    async fn counters(&self, app: &App) -> Value {
        self.api.app_counters(&app.client_id).await
    }

    async fn connection(&self, name: &str) -> Connection {
        self.store
            .connection(name)
            .await
            .expect("read")
            .expect("connection exists")
    }

    /// Links the first `n` demo people to `connection`; returns their addresses.
    async fn link_people(&self, connection: &str, n: usize) -> Vec<String> {
        let people: Vec<String> = self.users().into_iter().take(n).collect();
        for a in &people {
            self.link(a, connection, MailboxKind::User).await;
        }
        people
    }

    fn engine(&self) -> Engine {
        self.engine_with(1, 50)
    }

    /// Writes `content` to a file in the temp dir.
    fn file(&self, name: &str, content: &str) -> std::path::PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, content).expect("write file");
        p
    }
}

fn secret_of(v: &Value, now: Timestamp) -> NewCredential {
    let expires: Timestamp = v["expires"]
        .as_str()
        .expect("expires")
        .parse()
        .expect("RFC 3339");
    lifecycle::secret_credential(
        v["value"].as_str().expect("value"),
        "test",
        &CredentialOptions {
            expires: Some(expires),
            secret_id: v["key_id"].as_str().map(str::to_owned),
        },
        now,
    )
    .expect("a usable secret")
}

/// Runs a sync with concurrency 1; after `after` mailboxes have finished, moves the simulator's
/// clock by `advance_secs` (every access token issued so far expires; so does the old secret if
/// its expiry is closer), before the next mailbox starts.
async fn sync_with_clock_jump(env: &Env, after: u32, advance_secs: i64) -> calgate_sync::Summary {
    let done = Arc::new(AtomicU32::new(0));
    let jumped = Arc::new(AtomicBool::new(false));
    let api = env.api.clone();
    let (d, j) = (done.clone(), jumped.clone());
    let progress: calgate_sync::ProgressFn = Arc::new(move |p| {
        if let ProgressEvent::MailboxFinished { .. } = p.event
            && d.fetch_add(1, Ordering::SeqCst) + 1 == after
        {
            // The engine starts the next mailbox only after this returns (concurrency 1).
            tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(async {
                    api.advance_clock(advance_secs).await;
                });
            });
            j.store(true, Ordering::SeqCst);
        }
    });
    let summary = env
        .engine()
        .sync(&SyncRequest::default(), Some(progress))
        .await
        .expect("sync runs");
    assert!(
        jumped.load(Ordering::SeqCst),
        "the clock jumped in the middle of the run"
    );
    summary
}

async fn assert_no_errors(env: &Env, summary: &calgate_sync::Summary, since: Timestamp) {
    for o in &summary.outcomes {
        assert!(o.failure.is_none(), "{} failed: {:?}", o.address, o.failure);
    }
    let statuses = env.store.statuses().await.expect("statuses");
    assert!(!statuses.is_empty());
    for s in &statuses {
        assert!(s.last_error.is_none(), "{}: {:?}", s.address, s.last_error);
        assert_eq!(s.consecutive_failures, 0, "{}", s.address);
        assert!(
            s.last_success.is_some_and(|t| t >= since),
            "{} synced in this run",
            s.address
        );
    }
}

// ---------------------------------------------------------------------------------------------

/// The realistic rotation: the connection runs on the old secret, the administrator adds the
/// new one, and the old one expires (with every token issued so far) in the middle of a run.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotation_old_secret_expires_mid_run_sync_carries_on_with_the_new_one() {
    let env = env().await;
    let now = Timestamp::now();
    let app = env.new_app("rotation").await;
    env.add_connection_with("contoso", &app.client_id, vec![secret_of(&app.secret, now)])
        .await;
    let people = env.link_people("contoso", 6).await;
    let first = env
        .engine()
        .sync(&SyncRequest::default(), None)
        .await
        .expect("first run");
    assert_no_errors(&env, &first, now).await;

    // Rotation, step 1: a new secret in Entra ID, added to the connection.
    let new = env.new_secret(&app).await;
    let path = env.file("new-secret.txt", new["value"].as_str().expect("value"));
    let cred = lifecycle::read_credential(
        &CredentialInput::SecretFile(path),
        &CredentialOptions {
            expires: new["expires"].as_str().and_then(|s| s.parse().ok()),
            secret_id: new["key_id"].as_str().map(str::to_owned),
        },
        now,
    )
    .expect("reads the secret file");
    let added = lifecycle::add_credential(env.store.as_ref(), "contoso", cred, now)
        .await
        .expect("adds");
    assert_eq!(added.connection.credentials.len(), 2);
    assert_eq!(added.connection.credentials[0].id, added.id, "newest first");
    assert!(added.summary.preferred, "the new secret is the one used");
    assert!(
        added
            .message
            .contains("calgate connection secret remove contoso")
    );
    assert!(
        !added.message.contains(new["value"].as_str().unwrap_or("x")),
        "no secret in messages"
    );
    let check = lifecycle::verify_credential(
        env.store.as_ref(),
        &env.shared,
        "contoso",
        new["key_id"].as_str().expect("key_id"),
        now,
    )
    .await
    .expect("verify");
    assert!(check.passed(), "{}", check.render());

    // The old secret expires within the hour; the clock jumps 2 hours after 3 mailboxes.
    let old_key = app.secret["key_id"].as_str().expect("key_id");
    env.set_secret_expiry(&app, old_key, 3600).await;
    let before = env.counters(&app).await;
    let started = Timestamp::now();
    let summary = sync_with_clock_jump(&env, 3, 7200).await;
    assert_eq!(summary.outcomes.len(), people.len());
    assert_no_errors(&env, &summary, started).await;
    let after = env.counters(&app).await;
    assert_eq!(
        after["token_errors"], before["token_errors"],
        "the old secret was not even tried: {after}"
    );
    assert!(
        after["tokens_issued"].as_u64() > before["tokens_issued"].as_u64(),
        "a new token was issued after the jump: {before} → {after}"
    );

    // Step 3: remove the old one (by its Entra secret ID); the last one cannot go.
    let removed = lifecycle::remove_credential(
        env.store.as_ref(),
        "contoso",
        old_key,
        RemoveOptions::default(),
        Timestamp::now(),
    )
    .await
    .expect("removes the old secret");
    assert!(
        removed.message.contains("Client secrets"),
        "{}",
        removed.message
    );
    let last = lifecycle::remove_credential(
        env.store.as_ref(),
        "contoso",
        &added.id.to_string(),
        RemoveOptions { force: true },
        Timestamp::now(),
    )
    .await;
    match last {
        Err(LifecycleError::Refused(m)) => {
            assert!(m.contains("only credential"), "{m}");
            assert!(m.contains("calgate connection secret add contoso"), "{m}");
        }
        other => panic!("the last credential must stay: {other:?}"),
    }
    assert_eq!(env.connection("contoso").await.credentials.len(), 1);
}

/// The harder order: the old secret is the one in use (listed first) when it expires mid-run;
/// the client falls back to the new one, the mailboxes see nothing, and calgate learns the
/// expiry from Entra's AADSTS7000222.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expiring_secret_in_use_falls_back_mid_run_and_its_expiry_is_learned() {
    let env = env().await;
    let now = Timestamp::now();
    let app = env.new_app("fallback").await;
    let new = env.new_secret(&app).await;
    // Old without a recorded expiry (the administrator never gave one), listed first.
    let mut old = secret_of(&app.secret, now);
    old.expires_at = None;
    env.add_connection_with("contoso", &app.client_id, vec![secret_of(&new, now), old])
        .await;
    let conn = env.connection("contoso").await;
    let old_key = app.secret["key_id"].as_str().expect("key_id");
    assert_eq!(
        conn.credentials[0].key_id.as_deref(),
        Some(old_key),
        "the old secret is tried first"
    );
    env.link_people("contoso", 5).await;
    let first = env
        .engine()
        .sync(&SyncRequest::default(), None)
        .await
        .expect("first run");
    assert_no_errors(&env, &first, now).await;

    env.set_secret_expiry(&app, old_key, 600).await;
    let started = Timestamp::now();
    let summary = sync_with_clock_jump(&env, 2, 7200).await;
    assert_no_errors(&env, &summary, started).await;
    let counters = env.counters(&app).await;
    assert!(
        counters["token_errors"].as_u64() >= Some(1),
        "the old secret was tried after the jump and rejected: {counters}"
    );

    // Learned by the engine itself: the old secret is recorded as expired, the new one
    // untouched.
    let learned = summary.learned_expiries.clone();
    assert_eq!(learned.len(), 1, "{learned:?}");
    let learned_at = learned[0].at;
    let conn = env.connection("contoso").await;
    let old_cred = conn
        .credentials
        .iter()
        .find(|c| c.key_id.as_deref() == Some(old_key))
        .expect("old still configured");
    assert_eq!(learned[0].credential, old_cred.id);
    assert_eq!(
        old_cred.expires_at.map(|t| t.as_microsecond()),
        Some(learned_at.as_microsecond())
    );
    let new_cred = conn
        .credentials
        .iter()
        .find(|c| c.id != old_cred.id)
        .expect("new");
    assert!(new_cred.expires_at.is_some_and(|t| t > learned_at));
    // Learning again changes nothing.
    let again = env
        .engine()
        .sync(&SyncRequest::default(), None)
        .await
        .expect("again");
    assert!(
        again.learned_expiries.is_empty(),
        "{:?}",
        again.learned_expiries
    );
    let conn = env.connection("contoso").await;
    assert_eq!(
        conn.credentials
            .iter()
            .find(|c| c.id == old_cred.id)
            .and_then(|c| c.expires_at)
            .map(|t| t.as_microsecond()),
        Some(learned_at.as_microsecond()),
        "not moved by the second run"
    );

    // doctor: the expired secret is still configured (a warning, not a failure).
    let report = lifecycle::doctor(env.store.as_ref(), Timestamp::now())
        .await
        .expect("doctor");
    let c = report
        .get(&format!("credential:contoso:{}", old_cred.id))
        .expect("old secret's line");
    assert_eq!(c.status, Status::Warn, "{}", report.render());
    assert!(
        c.summary.contains("expired secret still configured"),
        "{}",
        c.summary
    );
    assert!(
        c.fix
            .as_deref()
            .is_some_and(|f| f.contains(&format!("secret remove contoso {}", old_cred.id))),
        "{c:?}"
    );
    assert_eq!(
        report.get("connection:contoso").map(|c| c.status),
        Some(Status::Pass)
    );
    assert!(report.passed(), "{}", report.render());

    // The next run tries the known-expired secret last: no new rejection.
    let before = env.counters(&app).await;
    let third = env
        .engine()
        .sync(&SyncRequest::default(), None)
        .await
        .expect("third run");
    assert_no_errors(&env, &third, learned_at).await;
    let after = env.counters(&app).await;
    assert_eq!(after["token_errors"], before["token_errors"], "{after}");

    // Removing the new (only valid) one is refused without --force; the old one goes.
    let refused = lifecycle::remove_credential(
        env.store.as_ref(),
        "contoso",
        &format!("#{}", new_cred.id),
        RemoveOptions::default(),
        Timestamp::now(),
    )
    .await;
    assert!(
        matches!(&refused, Err(LifecycleError::Refused(m)) if m.contains("has not expired")),
        "{refused:?}"
    );
    lifecycle::remove_credential(
        env.store.as_ref(),
        "contoso",
        &old_key[..8],
        RemoveOptions::default(),
        Timestamp::now(),
    )
    .await
    .expect("a unique prefix of the Entra secret ID works");
    let report = lifecycle::doctor(env.store.as_ref(), Timestamp::now())
        .await
        .expect("doctor");
    assert!(
        report.checks.iter().all(|c| c.status == Status::Pass),
        "{}",
        report.render()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_credential_records_its_not_after_and_signs_in() {
    let env = env().await;
    let now = Timestamp::now();
    let app = env.new_app("cert").await;
    env.add_connection_with("contoso", &app.client_id, vec![secret_of(&app.secret, now)])
        .await;
    let (s, cert) = env
        .control(
            Method::POST,
            &format!("/apps/{}/certificates", app.client_id),
            Some(json!({"generate": true})),
        )
        .await;
    assert_eq!(s, 201, "{cert}");
    let cert_pem = cert["cert_pem"].as_str().expect("cert");
    let key_pem = cert["private_key_pem"].as_str().expect("key");
    let not_after = calgate_graph::CertificateInfo::from_pem(cert_pem)
        .expect("parses")
        .not_after;

    // Key or certificate missing → a clear error.
    let only_cert = env.file("only-cert.pem", cert_pem);
    let e = lifecycle::read_credential(
        &CredentialInput::Certificate(only_cert),
        &CredentialOptions::default(),
        now,
    )
    .expect_err("no key");
    assert!(e.to_string().contains("holds no private key"), "{e}");
    let only_key = env.file("only-key.pem", key_pem);
    let e = lifecycle::read_credential(
        &CredentialInput::Certificate(only_key),
        &CredentialOptions::default(),
        now,
    )
    .expect_err("no cert");
    assert!(e.to_string().contains("holds no certificate"), "{e}");
    assert!(
        !e.to_string().contains("PRIVATE KEY-----\n"),
        "no key material in messages"
    );

    let both = env.file("calgate.pem", &format!("{key_pem}\n{cert_pem}"));
    let cred = lifecycle::read_credential(
        &CredentialInput::Certificate(both),
        &CredentialOptions::default(),
        now,
    )
    .expect("reads key + certificate");
    assert_eq!(cred.expires_at, Some(not_after), "notAfter recorded");
    let thumb = cert["thumbprint_sha1_hex"].as_str().expect("thumbprint");
    assert_eq!(
        cred.key_id.as_deref().map(str::to_ascii_uppercase),
        Some(thumb.to_ascii_uppercase())
    );
    let added = lifecycle::add_credential(env.store.as_ref(), "contoso", cred.clone(), now)
        .await
        .expect("adds");
    assert_eq!(added.summary.kind, "certificate");
    assert!(
        added.summary.label.starts_with("certificate #"),
        "{}",
        added.summary.label
    );
    // The same certificate twice is refused.
    let dup = lifecycle::add_credential(env.store.as_ref(), "contoso", cred, now).await;
    assert!(matches!(dup, Err(LifecycleError::Refused(_))), "{dup:?}");

    // Entra ID accepts its assertion.
    let check =
        lifecycle::verify_credential(env.store.as_ref(), &env.shared, "contoso", thumb, now)
            .await
            .expect("verify");
    assert!(check.passed(), "{}", check.render());
    assert!(
        check.render().contains("Calendars.ReadWrite"),
        "{}",
        check.render()
    );

    // The expiry column; then remove the secret, leaving the certificate.
    let conn = env.connection("contoso").await;
    let rows = lifecycle::summarize(&conn, now);
    assert_eq!(rows[0].kind, "certificate");
    assert!(rows[0].preferred);
    assert!(
        rows[0]
            .expires
            .as_deref()
            .is_some_and(|n| n.starts_with("in ")),
        "{rows:?}"
    );
    let secret_id = app.secret["key_id"].as_str().expect("key_id");
    lifecycle::remove_credential(
        env.store.as_ref(),
        "contoso",
        secret_id,
        RemoveOptions::default(),
        now,
    )
    .await
    .expect("removes the secret");
    // The thumbprint in another spelling (lower case, colons) finds the certificate.
    let colons: String = thumb
        .to_ascii_lowercase()
        .as_bytes()
        .chunks(2)
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect::<Vec<_>>()
        .join(":");
    let conn = env.connection("contoso").await;
    let found = lifecycle::find_credential(&conn, &colons).expect("found by thumbprint");
    assert_eq!(found.id, added.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_add_refuses_bad_input_and_verify_learns_an_expired_secret() {
    let env = env().await;
    let now = Timestamp::now();
    let app = env.new_app("input").await;
    env.add_connection_with("contoso", &app.client_id, vec![secret_of(&app.secret, now)])
        .await;
    let opts = CredentialOptions::default();

    // The secret's ID pasted as its value.
    let e = lifecycle::secret_credential(
        app.secret["key_id"].as_str().expect("key_id"),
        "$NEW_SECRET",
        &opts,
        now,
    )
    .expect_err("a GUID is the ID");
    assert!(e.to_string().contains("not its Value"), "{e}");
    // Empty, unset variable, past expiry.
    assert!(lifecycle::secret_credential("  \n", "x", &opts, now).is_err());
    let e = lifecycle::read_credential(
        &CredentialInput::SecretEnv("CALGATE_TEST_SURELY_UNSET_VARIABLE".to_owned()),
        &opts,
        now,
    )
    .expect_err("unset");
    assert!(e.to_string().contains("is not set"), "{e}");
    let past = CredentialOptions {
        expires: Some(now - SignedDuration::from_hours(24)),
        secret_id: None,
    };
    let e = lifecycle::secret_credential("abc8Q~valid-looking-secret-value", "x", &past, now)
        .expect_err("past expiry");
    assert!(e.to_string().contains("not in the future"), "{e}");
    // Unknown connection, unknown credential.
    let e = lifecycle::add_credential(
        env.store.as_ref(),
        "fabrikam",
        secret_of(&app.secret, now),
        now,
    )
    .await
    .expect_err("no such connection");
    assert!(matches!(e, LifecycleError::NotFound(_)), "{e}");
    let e = lifecycle::remove_credential(
        env.store.as_ref(),
        "contoso",
        "#999",
        RemoveOptions::default(),
        now,
    )
    .await
    .expect_err("no such credential");
    assert!(
        matches!(&e, LifecycleError::NotFound(m) if m.contains("calgate connection list")),
        "{e}"
    );

    // A secret that Entra reports as expired, added without a date: verify fails with the
    // code, the fix, and records the expiry.
    let stale = env.new_secret(&app).await;
    let stale_key = stale["key_id"].as_str().expect("key_id").to_owned();
    env.set_secret_expiry(&app, &stale_key, -60).await;
    let mut cred = secret_of(&stale, now);
    cred.expires_at = None;
    let added = lifecycle::add_credential(env.store.as_ref(), "contoso", cred, now)
        .await
        .expect("adds");
    let check =
        lifecycle::verify_credential(env.store.as_ref(), &env.shared, "contoso", &stale_key, now)
            .await
            .expect("verify runs");
    assert!(!check.passed(), "{}", check.render());
    let line = check.get("credential-token").expect("line");
    assert_eq!(line.code.as_deref(), Some("AADSTS7000222"));
    assert!(
        line.fix
            .as_deref()
            .is_some_and(|f| f.contains("Certificates & secrets")),
        "{line:?}"
    );
    let conn = env.connection("contoso").await;
    let stored = conn
        .credentials
        .iter()
        .find(|c| c.id == added.id)
        .expect("still there");
    assert_eq!(
        stored.expires_at.map(|t| t.as_microsecond()),
        Some(now.as_microsecond()),
        "learned from AADSTS7000222"
    );
    assert_eq!(
        lifecycle::expiry_level(stored.expires_at, now + SignedDuration::from_secs(1)),
        ExpiryLevel::Expired
    );
    // The connection still has a valid credential, so doctor warns only.
    let report = lifecycle::doctor(env.store.as_ref(), now + SignedDuration::from_secs(1))
        .await
        .expect("doctor");
    assert_eq!(
        report
            .get(&format!("credential:contoso:{}", added.id))
            .map(|c| c.status),
        Some(Status::Warn),
        "{}",
        report.render()
    );
}

// ---------------------------------------------------------------------------------------------
// doctor with injected time (store only)
// ---------------------------------------------------------------------------------------------

fn t(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

async fn plain_connection(store: &dyn Store, name: &str, credentials: Vec<NewCredential>) {
    store
        .add_connection(&NewConnection {
            ca_cert_pem: None,
            ews: None,
            name: name.to_owned(),
            tenant: "contoso.onmicrosoft.com".to_owned(),
            client_id: "11111111-2222-3333-4444-555555555555".to_owned(),
            authority: "https://login.microsoftonline.com".to_owned(),
            graph_url: "https://graph.microsoft.com/v1.0".to_owned(),
            cloud: "global".to_owned(),
            credentials,
        })
        .await
        .expect("add connection");
}

#[tokio::test]
async fn doctor_warns_at_exactly_30_14_7_days_and_fails_at_expiry() {
    let tmp = calgate_testkit::temp_store().await;
    let store = tmp.store.clone();
    let now = t("2026-11-23T12:00:00Z");
    let days = |n: i64| now + SignedDuration::from_hours(24 * n);

    // One connection per case, each with a single secret expiring `n` days after `now`.
    let cases: [(i64, Status, Option<&str>); 7] = [
        (31, Status::Pass, None),
        (30, Status::Warn, Some("within 30 days")),
        (15, Status::Warn, Some("within 30 days")),
        (14, Status::Warn, Some("within 14 days")),
        (8, Status::Warn, Some("within 14 days")),
        (7, Status::Warn, Some("within 7 days")),
        (0, Status::Fail, Some("expired")),
    ];
    for (n, _, _) in &cases {
        plain_connection(
            store.as_ref(),
            &format!("c{n}"),
            vec![NewCredential::secret(
                format!("abc8Q~secret-value-for-{n}-days-0000000"),
                Some(days(*n)),
            )],
        )
        .await;
    }
    let report = lifecycle::doctor(store.as_ref(), now)
        .await
        .expect("doctor");
    for (n, status, words) in &cases {
        let conn = store
            .connection(&format!("c{n}"))
            .await
            .expect("read")
            .expect("exists");
        let cred = &conn.credentials[0];
        let line = report
            .get(&format!("credential:c{n}:{}", cred.id))
            .unwrap_or_else(|| panic!("a line for c{n}: {}", report.render()));
        assert_eq!(line.status, *status, "{n} days: {}", line.summary);
        if let Some(w) = words {
            assert!(line.summary.contains(w), "{n} days: {}", line.summary);
        }
        assert!(
            line.summary.contains(&days(*n).to_string()[..10]),
            "the date: {}",
            line.summary
        );
        if *n > 0 && *n <= 30 {
            assert!(
                line.summary.contains(&format!("expires in {n} days")),
                "{}",
                line.summary
            );
            let fix = line.fix.as_deref().unwrap_or("");
            assert!(
                fix.contains(&format!("calgate connection secret add c{n}")),
                "{fix}"
            );
            assert!(
                fix.contains(&format!(
                    "calgate connection secret remove c{n} {}",
                    cred.id
                )),
                "{fix}"
            );
        }
        // The hint is the first three characters, as the portal shows it; never the value.
        assert!(line.summary.contains("'abc…'"), "{}", line.summary);
        assert!(!line.summary.contains("secret-value"), "{}", line.summary);
        let expected_conn = if *n == 0 { Status::Fail } else { Status::Pass };
        assert_eq!(
            report.get(&format!("connection:c{n}")).map(|c| c.status),
            Some(expected_conn),
            "c{n}"
        );
        // connection list's column says the same.
        let note = lifecycle::expiry_note(cred, now).expect("a note");
        match n {
            31 => assert_eq!(note, "in 31 days"),
            30 | 15 => assert!(note.contains("under 30 days"), "{note}"),
            14 | 8 => assert!(note.contains("under 14 days"), "{note}"),
            7 => assert!(note.contains("under 7 days"), "{note}"),
            _ => assert_eq!(note, "EXPIRED just now"),
        }
    }
    assert!(!report.passed(), "an expired only credential fails doctor");
    let e = report.failed().count();
    assert_eq!(
        e,
        2,
        "the 0-day secret and its connection: {}",
        report.render()
    );

    // One second past 31 days → still ✓; one second inside 30 → warning; days later → ago.
    let c31 = store.connection("c31").await.expect("r").expect("c31");
    let at = c31.credentials[0].expires_at.expect("expiry");
    let r = lifecycle::doctor(
        store.as_ref(),
        at - SignedDuration::from_hours(24 * 30) - SignedDuration::from_secs(1),
    )
    .await
    .expect("doctor");
    assert_eq!(
        r.get(&format!("credential:c31:{}", c31.credentials[0].id))
            .map(|c| c.status),
        Some(Status::Pass)
    );
    let r = lifecycle::doctor(store.as_ref(), at - SignedDuration::from_hours(24 * 30))
        .await
        .expect("doctor");
    assert_eq!(
        r.get(&format!("credential:c31:{}", c31.credentials[0].id))
            .map(|c| c.status),
        Some(Status::Warn)
    );
    assert_eq!(
        lifecycle::expiry_note(&c31.credentials[0], at + SignedDuration::from_hours(72)).as_deref(),
        Some("EXPIRED 3 days ago")
    );
    // Unknown expiry: ✓, and no note.
    plain_connection(
        store.as_ref(),
        "unknown",
        vec![NewCredential::secret(
            "xyz8Q~no-expiry-known-000000000000000",
            None,
        )],
    )
    .await;
    let u = store.connection("unknown").await.expect("r").expect("u");
    assert_eq!(lifecycle::expiry_note(&u.credentials[0], now), None);
    let r = lifecycle::doctor(store.as_ref(), now)
        .await
        .expect("doctor");
    assert_eq!(
        r.get(&format!("credential:unknown:{}", u.credentials[0].id))
            .map(|c| c.status),
        Some(Status::Pass)
    );

    // Rotation in progress: an old secret within 14 days next to a new one valid for a year →
    // still a warning, whose fix is to remove the old one (not to add yet another).
    plain_connection(
        store.as_ref(),
        "rotating",
        vec![NewCredential::secret(
            "old8Q~old-secret-value-0000000000000000",
            Some(days(10)),
        )],
    )
    .await;
    let mut new = NewCredential::secret("new8Q~new-secret-value-0000000000000000", Some(days(365)));
    new.key_id = Some("0f8fad5b-d9cb-469f-a165-70867728950e".to_owned());
    let added = lifecycle::add_credential(store.as_ref(), "rotating", new, now)
        .await
        .expect("adds");
    assert!(
        added.message.contains("calgate connection test rotating"),
        "{}",
        added.message
    );
    let conn = store
        .connection("rotating")
        .await
        .expect("r")
        .expect("rotating");
    let old = conn
        .credentials
        .iter()
        .find(|c| c.id != added.id)
        .expect("old");
    let r = lifecycle::doctor(store.as_ref(), now)
        .await
        .expect("doctor");
    let line = r
        .get(&format!("credential:rotating:{}", old.id))
        .expect("old line");
    assert_eq!(line.status, Status::Warn);
    assert!(line.summary.contains("within 14 days"), "{}", line.summary);
    let fix = line.fix.as_deref().unwrap_or("");
    assert!(fix.contains("secret #"), "{fix}");
    assert!(fix.contains("(ID 0f8fad5b…)"), "{fix}");
    assert!(
        fix.contains(&format!("secret remove rotating {}", old.id)),
        "{fix}"
    );
    assert!(!fix.contains("secret add"), "{fix}");
    let line = r
        .get(&format!("credential:rotating:{}", added.id))
        .expect("new line");
    assert_eq!(line.status, Status::Pass, "{}", line.summary);
}

#[tokio::test]
async fn doctor_reports_mailbox_errors_and_stale_syncs() {
    let tmp = calgate_testkit::temp_store().await;
    let store = tmp.store.clone();
    let now = t("2026-11-23T12:00:00Z");
    let r = lifecycle::doctor(store.as_ref(), now)
        .await
        .expect("doctor");
    assert_eq!(r.get("connections").map(|c| c.status), Some(Status::Warn));
    plain_connection(
        store.as_ref(),
        "contoso",
        vec![NewCredential::secret(
            "abc8Q~secret-value-0000000000000000000",
            Some(now + SignedDuration::from_hours(24 * 200)),
        )],
    )
    .await;
    let r = lifecycle::doctor(store.as_ref(), now)
        .await
        .expect("doctor");
    assert_eq!(r.get("mailboxes").map(|c| c.status), Some(Status::Warn));

    let mut ids = Vec::new();
    for a in [
        "ok@contoso.example",
        "failing@contoso.example",
        "stale@contoso.example",
        "new@contoso.example",
    ] {
        ids.push(
            store
                .link_mailbox(&NewMailbox {
                    address: a.to_owned(),
                    connection: "contoso".to_owned(),
                    kind: Some(MailboxKind::User),
                    external_id: None,
                    privacy: Some(PrivacyPolicy::Full),
                })
                .await
                .expect("link"),
        );
    }
    let ok = |at: Timestamp| SyncStatusUpdate {
        attempted_at: at,
        outcome: SyncOutcome::Success,
        next_action: Some("incremental from the stored deltaLink".to_owned()),
        next_run_at: None,
        lag: None,
        counters: SyncCounters::default(),
    };
    store
        .record_status(ids[0], &ok(now - SignedDuration::from_hours(2)))
        .await
        .expect("status");
    store
        .record_status(ids[1], &ok(now - SignedDuration::from_hours(30)))
        .await
        .expect("status");
    store
        .record_status(
            ids[1],
            &SyncStatusUpdate {
                attempted_at: now - SignedDuration::from_hours(1),
                outcome: SyncOutcome::Failure {
                    kind: calgate_core::FailureKind::Permission,
                    message: "failing@contoso.example is outside the app's RBAC scope: add it to the scope group".to_owned(),
                },
                next_action: Some("retry after the administrator fixes the permission".to_owned()),
                next_run_at: None,
                lag: None,
                counters: SyncCounters::default(),
            },
        )
        .await
        .expect("status");
    store
        .record_status(ids[2], &ok(now - SignedDuration::from_hours(25)))
        .await
        .expect("status");

    let r = lifecycle::doctor(store.as_ref(), now)
        .await
        .expect("doctor");
    let failing = r
        .get("mailbox:failing@contoso.example")
        .expect("failing line");
    assert_eq!(failing.status, Status::Fail);
    assert!(
        failing.summary.contains("outside the app's RBAC scope"),
        "{}",
        failing.summary
    );
    assert!(
        failing.summary.contains("1 hour ago"),
        "{}",
        failing.summary
    );
    let fix = failing.fix.as_deref().unwrap_or("");
    assert!(
        fix.contains("retry after the administrator fixes the permission"),
        "{fix}"
    );
    assert!(
        fix.contains("calgate sync --mailbox failing@contoso.example"),
        "{fix}"
    );
    let stale = r.get("mailbox:stale@contoso.example").expect("stale line");
    assert_eq!(stale.status, Status::Warn);
    assert!(
        stale.summary.contains("more than 24 hours"),
        "{}",
        stale.summary
    );
    let never = r.get("mailbox:new@contoso.example").expect("never line");
    assert_eq!(never.status, Status::Warn);
    assert!(
        never.summary.contains("never been synced"),
        "{}",
        never.summary
    );
    assert!(
        r.get("mailbox:ok@contoso.example").is_none(),
        "healthy ones are summed up"
    );
    let healthy = r.get("mailboxes").expect("summary line");
    assert_eq!(healthy.status, Status::Pass);
    assert!(
        healthy.summary.starts_with("1 mailbox of 4"),
        "{}",
        healthy.summary
    );
    assert!(!r.passed());
    // 23 hours later the healthy one is still fine, 2 more hours and it is stale.
    let r = lifecycle::doctor(store.as_ref(), now + SignedDuration::from_hours(21))
        .await
        .expect("doctor");
    assert!(r.get("mailbox:ok@contoso.example").is_none());
    let r = lifecycle::doctor(store.as_ref(), now + SignedDuration::from_hours(23))
        .await
        .expect("doctor");
    assert_eq!(
        r.get("mailbox:ok@contoso.example").map(|c| c.status),
        Some(Status::Warn)
    );
    let json = serde_json::to_value(&r).expect("json");
    assert!(
        json["checks"].as_array().is_some_and(|a| a.len() >= 5),
        "{json}"
    );
}
