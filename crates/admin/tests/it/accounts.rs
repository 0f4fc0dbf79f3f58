//! Delegated "Connect account", end to end: the in-process simulator (real HTTP), a real
//! SQLite file, the callback listener on 127.0.0.1, and a "browser" that posts the simulator's
//! sign-in and consent forms as a person would.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use calgate_admin::accounts::{
    AccountError, ConnectOptions, LinkOptions, begin_connect, disconnect_account, list_accounts,
    render_accounts,
};
use calgate_core::MailboxKind;
use calgate_graph::Shared;
use calgate_store::AccountState;
use calgate_sync::{Engine, SyncRequest};
use reqwest::Method;
use serde_json::json;

use crate::common;

struct Env {
    h: common::Env,
    /// A browser that does not follow redirects (it hands the redirect to the callback itself).
    browser: reqwest::Client,
}

impl std::ops::Deref for Env {
    type Target = common::Env;
    fn deref(&self) -> &common::Env {
        &self.h
    }
}

async fn env() -> Env {
    let h = common::Env::start(
        common::demo(11),
        reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .expect("http"),
        Shared::new().expect("shared"),
    )
    .await;
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .expect("browser");
    Env { h, browser }
}

impl Env {
    /// An app with NO application permissions (so only a delegated token can read a
    /// calendar), delegated consent for calendars, loopback redirect URIs; added as `name`.
    async fn delegated_only_connection(&self, name: &str) -> String {
        let (s, app) = self
            .control(
                Method::POST,
                "/apps",
                Some(json!({
                    "name": format!("jadu-{name}"),
                    "roles": [],
                    "delegated_consent": ["Calendars.ReadWrite", "User.Read", "offline_access"],
                    "redirect_uris": ["http://127.0.0.1", "http://localhost"],
                })),
            )
            .await;
        assert_eq!(s, 201, "{app}");
        let client_id = app["client_id"].as_str().expect("client_id").to_owned();
        let secret = app["client_secret"].as_str().expect("secret").to_owned();
        self.add_connection(name, &client_id, &secret).await;
        client_id
    }

    /// Plays the browser: opens the sign-in URL, signs in as `login` (consenting or declining
    /// when asked), and returns the redirect the simulator sends back.
    async fn sign_in(&self, url: &str, login: &str, accept: bool) -> String {
        calgate_testkit::sim_sign_in(&self.browser, url, login, accept).await
    }

    /// Follows the redirect to calgate's callback listener: (status, page).
    async fn callback(&self, location: &str) -> (u16, String) {
        let r = self.browser.get(location).send().await.expect("callback");
        (r.status().as_u16(), r.text().await.unwrap_or_default())
    }

    /// `account connect` with a browser that signs in as `login`.
    async fn connect(
        &self,
        connection: &str,
        login: &str,
        options: ConnectOptions,
    ) -> calgate_admin::accounts::ConnectedAccount {
        let pending = begin_connect(self.store.as_ref(), &self.shared, connection, &options)
            .await
            .expect("begin connect");
        assert!(pending.redirect_uri.starts_with("http://127.0.0.1:"));
        let url = pending.url.clone();
        let finish = tokio::spawn(pending.finish(self.store.clone()));
        let location = self.sign_in(&url, login, true).await;
        assert!(location.contains("code="), "{location}");
        let (s, page) = self.callback(&location).await;
        assert_eq!(s, 200, "{page}");
        assert!(page.contains("Signed in"), "{page}");
        finish
            .await
            .expect("finish task")
            .expect("connect succeeds")
    }

    fn engine(&self) -> Engine {
        self.engine_with(4, 100)
    }

    /// Every byte calgate wrote to disk: the database, its WAL and shared memory.
    fn disk_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for suffix in ["", "-wal", "-shm"] {
            let mut p = self.db.clone().into_os_string();
            p.push(suffix);
            if let Ok(b) = std::fs::read(&p) {
                out.extend(b);
            }
        }
        out
    }

    async fn account_rt(&self, upn: &str) -> String {
        self.store
            .list_accounts()
            .await
            .expect("accounts")
            .into_iter()
            .find(|a| a.upn.eq_ignore_ascii_case(upn))
            .map(|a| a.refresh_token.expose().to_owned())
            .expect("the account is stored")
    }

    async fn token_requests(&self, client_id: &str) -> u64 {
        let v = self.api.app_counters(client_id).await;
        v["token_requests"].as_u64().expect("counter")
    }

    /// The simulator's instances of `address` over the mailbox's cursor window versus
    /// calgate's: (id → (subject, start)) on both sides.
    async fn assert_matches_truth(&self, address: &str) -> usize {
        let mb = self
            .store
            .mailbox(address)
            .await
            .expect("mailbox")
            .expect("linked");
        let c = self
            .store
            .cursor(mb.id)
            .await
            .expect("cursor")
            .expect("synced");
        let v = self.api.events(address, c.window_start, c.window_end).await;
        let truth: BTreeMap<String, (Option<String>, String)> = v["value"]
            .as_array()
            .expect("value")
            .iter()
            .map(|e| {
                let start = e["start"]["dateTime"].as_str().expect("start");
                // Linked with the `full` policy: private and confidential subjects are not stored.
                let restricted =
                    matches!(e["sensitivity"].as_str(), Some("private" | "confidential"));
                (
                    e["id"].as_str().expect("id").to_owned(),
                    (
                        e["subject"]
                            .as_str()
                            .map(str::to_owned)
                            .filter(|s| !s.is_empty() && !restricted),
                        start.chars().take(19).collect(),
                    ),
                )
            })
            .collect();
        let stored: BTreeMap<String, (Option<String>, String)> = self
            .store
            .instances(mb.id, c.window_start, c.window_end)
            .await
            .expect("instances")
            .into_iter()
            .map(|s| {
                let i = s.instance;
                let start = match i.when.all_day {
                    Some((d, _)) => format!("{d}T00:00:00"),
                    None => i
                        .when
                        .start
                        .to_zoned(jiff::tz::TimeZone::UTC)
                        .strftime("%Y-%m-%dT%H:%M:%S")
                        .to_string(),
                };
                (i.exchange_id, (i.subject.filter(|s| !s.is_empty()), start))
            })
            .collect();
        assert!(!truth.is_empty(), "{address} has events in the window");
        assert_eq!(
            stored, truth,
            "{address}: calgate's store equals the simulator"
        );
        truth.len()
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_sync_refresh_reconnect_and_disconnect() {
    let e = env().await;
    let client_id = e.delegated_only_connection("jadu").await;
    // Another connection (app-only) with its own mailbox: never affected by the account.
    let main = e.sim.credentials()["apps"][0].clone();
    e.add_connection(
        "main",
        main["client_id"].as_str().expect("id"),
        main["client_secret"].as_str().expect("secret"),
    )
    .await;
    // One engine for every run, as `calgate serve` keeps one: access tokens are reused.
    let engine = e.engine();
    let users = e.users();
    let (upn, other) = (users[0].clone(), users[1].clone());
    e.link(&other, "main", MailboxKind::User).await;

    // Before connecting, the delegated-only app cannot read the mailbox app-only.
    e.link(&upn, "jadu", MailboxKind::User).await;
    let s = engine
        .sync(&SyncRequest::default(), None)
        .await
        .expect("sync runs");
    let f = s
        .outcomes
        .iter()
        .find(|o| o.address == upn)
        .and_then(|o| o.failure.clone())
        .expect("app-only access fails without application permissions");
    assert_eq!(f.kind.as_str(), "permission", "{f:?}");
    e.store.unlink_mailbox(&upn).await.expect("unlink");

    // Connect, linking the mailbox.
    let done = e
        .connect(
            "jadu",
            &upn,
            ConnectOptions {
                link: Some(LinkOptions::default()),
                login_hint: Some(upn.clone()),
                ..ConnectOptions::default()
            },
        )
        .await;
    assert!(done.checklist.passed(), "{}", done.checklist.render());
    for id in ["sign-in", "refresh-token", "calendar", "link"] {
        assert_eq!(
            done.checklist.get(id).map(|c| c.status),
            Some(calgate_admin::Status::Pass),
            "{id}: {}",
            done.checklist.render()
        );
    }
    assert!(done.account.upn.eq_ignore_ascii_case(&upn));
    let listed = list_accounts(e.store.as_ref()).await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].state, "ok");
    assert!(listed[0].mailbox_linked);
    assert!(
        listed[0].scopes.contains("Calendars.ReadWrite"),
        "{:?}",
        listed[0]
    );
    let rt1 = e.account_rt(&upn).await;
    assert!(rt1.len() > 20);
    assert!(
        !contains(&e.disk_bytes(), rt1.as_bytes()),
        "the refresh token is not on disk in plain text"
    );

    // Sync through the account: equals the simulator's truth; the other mailbox syncs too.
    let s = engine
        .sync(&SyncRequest::default(), None)
        .await
        .expect("sync runs");
    assert!(s.is_success(), "{:?}", s.failures().collect::<Vec<_>>());
    let n = e.assert_matches_truth(&upn).await;
    assert!(n > 5, "{n}");
    e.assert_matches_truth(&other).await;
    // A second run within the access token's lifetime does not refresh.
    let rt_run1 = e.account_rt(&upn).await;
    let s = engine
        .sync(&SyncRequest::default(), None)
        .await
        .expect("sync runs");
    assert!(s.is_success(), "{:?}", s.failures().collect::<Vec<_>>());
    assert_eq!(
        e.account_rt(&upn).await,
        rt_run1,
        "no refresh while the token is fresh"
    );
    let rt1 = rt_run1;

    // Refresh: past the access token's lifetime (simulated clock), a sync refreshes, and the
    // new refresh token replaces the old one in the store.
    let before = list_accounts(e.store.as_ref()).await.expect("list")[0].last_refreshed;
    e.api.advance_clock(2 * 3600).await;
    let s = engine
        .sync(&SyncRequest::default(), None)
        .await
        .expect("sync runs");
    assert!(s.is_success(), "{:?}", s.failures().collect::<Vec<_>>());
    let rt2 = e.account_rt(&upn).await;
    assert_ne!(rt1, rt2, "a refresh stored the new refresh token");
    let after = list_accounts(e.store.as_ref()).await.expect("list")[0].last_refreshed;
    assert!(after > before);
    assert!(!contains(&e.disk_bytes(), rt2.as_bytes()));
    e.assert_matches_truth(&upn).await;

    // Expired refresh token (AADSTS70008) → "reconnect needed", only that mailbox fails.
    let (s, v) = e
        .control(Method::POST, "/tokens/expire", Some(json!({"user": upn})))
        .await;
    assert_eq!(s, 200, "{v}");
    // The access token in hand stays valid until it expires: move past its lifetime.
    e.api.advance_clock(2 * 3600).await;
    let s = engine
        .sync(&SyncRequest::default(), None)
        .await
        .expect("sync runs");
    let failed: Vec<_> = s.failures().map(|o| o.address.clone()).collect();
    assert_eq!(
        failed,
        vec![upn.clone()],
        "only the account's mailbox fails"
    );
    let f = s
        .failures()
        .next()
        .and_then(|o| o.failure.clone())
        .expect("failure");
    assert_eq!(f.kind.as_str(), "authentication");
    assert!(f.message.contains("must sign in again"), "{}", f.message);
    assert!(f.message.contains("AADSTS70008"), "{}", f.message);
    assert!(
        f.message
            .contains("calgate account connect --connection jadu"),
        "{}",
        f.message
    );
    assert!(f.next_action.contains("calgate account connect"), "{f:?}");
    let listed = list_accounts(e.store.as_ref()).await.expect("list");
    assert_eq!(listed[0].state, "reconnect needed");
    assert!(
        listed[0]
            .fix
            .as_deref()
            .is_some_and(|f| f.contains("calgate account connect --connection jadu")),
        "{listed:?}"
    );
    assert!(
        listed[0]
            .mailbox_error
            .as_deref()
            .is_some_and(|m| m.contains("must sign in again")),
        "the mailbox status shows it: {listed:?}"
    );
    let text = render_accounts(&listed);
    assert!(
        text.contains("✗") && text.contains("reconnect needed"),
        "{text}"
    );
    let statuses = e.store.statuses().await.expect("statuses");
    let other_status = statuses
        .iter()
        .find(|s| s.address.eq_ignore_ascii_case(&other))
        .expect("other");
    assert!(other_status.last_error.is_none(), "{other_status:?}");
    // The next run fails at once, without asking Entra ID again.
    let asked = e.token_requests(&client_id).await;
    let s = engine
        .sync(&SyncRequest::default(), None)
        .await
        .expect("sync runs");
    assert_eq!(s.totals.mailboxes_failed, 1);
    assert_eq!(e.token_requests(&client_id).await, asked);

    // Reconnect: the state is ok again and the mailbox syncs.
    let again = e.connect("jadu", &upn, ConnectOptions::default()).await;
    assert!(again.checklist.passed(), "{}", again.checklist.render());
    assert_eq!(
        e.store.list_accounts().await.expect("accounts")[0].state,
        AccountState::Ok
    );
    let s = engine
        .sync(&SyncRequest::default(), None)
        .await
        .expect("sync runs");
    assert!(s.is_success(), "{:?}", s.failures().collect::<Vec<_>>());

    // Revoked refresh token (AADSTS50173) → reconnect needed, with the cause.
    let (s, v) = e
        .control(Method::POST, "/tokens/revoke", Some(json!({"user": upn})))
        .await;
    assert_eq!(s, 200, "{v}");
    // The access token in hand stays valid until it expires: move past its lifetime.
    e.api.advance_clock(2 * 3600).await;
    let s = engine
        .sync(&SyncRequest::default(), None)
        .await
        .expect("sync runs");
    let f = s
        .failures()
        .next()
        .and_then(|o| o.failure.clone())
        .expect("failure");
    assert!(
        f.message.contains("revoked") && f.message.contains("AADSTS50173"),
        "{}",
        f.message
    );

    // Disconnect: the tokens are gone; the mailbox stays linked.
    let rt_last = e.account_rt(&upn).await;
    let r = disconnect_account(e.store.as_ref(), &upn.to_uppercase(), None)
        .await
        .expect("disconnect");
    assert_eq!(r.removed, 1);
    assert_eq!(r.mailboxes_still_linked.len(), 1);
    assert!(e.store.list_accounts().await.expect("accounts").is_empty());
    assert!(
        list_accounts(e.store.as_ref())
            .await
            .expect("list")
            .is_empty()
    );
    assert!(e.store.mailbox(&upn).await.expect("mailbox").is_some());
    assert!(!contains(&e.disk_bytes(), rt_last.as_bytes()));
    let err = disconnect_account(e.store.as_ref(), &upn, None)
        .await
        .expect_err("nothing left to disconnect");
    assert!(err.to_string().contains("calgate account list"), "{err}");
    // Without the account the mailbox is back to app-only access (no application permission).
    let s = engine
        .sync(&SyncRequest::default(), None)
        .await
        .expect("sync runs");
    let f = s
        .failures()
        .next()
        .and_then(|o| o.failure.clone())
        .expect("failure");
    assert_eq!(f.kind.as_str(), "permission", "{f:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callback_checks_state_and_reports_a_declined_consent() {
    let e = env().await;
    e.delegated_only_connection("jadu").await;
    let upn = e.users()[2].clone();
    let pending = begin_connect(
        e.store.as_ref(),
        &e.shared,
        "jadu",
        &ConnectOptions {
            force_consent: true,
            ..ConnectOptions::default()
        },
    )
    .await
    .expect("begin");
    let url = pending.url.clone();
    let q: HashMap<String, String> = reqwest::Url::parse(&url)
        .expect("url")
        .query_pairs()
        .into_owned()
        .collect();
    assert_eq!(q["code_challenge_method"], "S256");
    assert!(q["scope"].contains("offline_access"));
    assert_eq!(q["prompt"], "consent");
    let callback = format!("{}?code=forged&state=not-the-state", pending.redirect_uri);
    let finish = tokio::spawn(pending.finish(e.store.clone()));
    // A callback with the wrong state is refused and does not end the wait.
    let (s, page) = e.callback(&callback).await;
    assert_eq!(s, 400, "{page}");
    assert!(page.contains("state does not match"), "{page}");
    // The user declines consent: access_denied reaches calgate with a fix.
    let location = e.sign_in(&url, &upn, false).await;
    assert!(location.contains("error=access_denied"), "{location}");
    let (s, _) = e.callback(&location).await;
    assert_eq!(s, 400);
    let err = finish.await.expect("task").expect_err("declined");
    match &err {
        AccountError::SignIn { code, message } => {
            assert_eq!(code, "access_denied");
            assert!(message.contains("Grant admin consent"), "{message}");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(e.store.list_accounts().await.expect("accounts").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_options_and_timeout() {
    let e = env().await;
    e.delegated_only_connection("jadu").await;
    let err = begin_connect(
        e.store.as_ref(),
        &e.shared,
        "nope",
        &ConnectOptions::default(),
    )
    .await
    .expect_err("unknown connection");
    assert!(err.to_string().contains("calgate connection list"), "{err}");
    let err = begin_connect(
        e.store.as_ref(),
        &e.shared,
        "jadu",
        &ConnectOptions {
            listen: "0.0.0.0:0".parse().expect("addr"),
            ..ConnectOptions::default()
        },
    )
    .await
    .expect_err("not loopback");
    assert!(err.to_string().contains("loopback"), "{err}");
    let pending = begin_connect(
        e.store.as_ref(),
        &e.shared,
        "jadu",
        &ConnectOptions {
            timeout: Duration::from_millis(300),
            ..ConnectOptions::default()
        },
    )
    .await
    .expect("begin");
    let err = pending
        .finish(e.store.clone())
        .await
        .expect_err("nobody signs in");
    assert!(matches!(err, AccountError::Timeout(_)), "{err:?}");
    assert!(err.to_string().contains("calgate account connect"), "{err}");
}

/// The legacy ("Azure AD", v1) endpoints: the code and refresh tokens are redeemed at
/// `/oauth2/token` with `resource=`. The simulator has no v1 sign-in page, so the "browser"
/// signs in on the v2 page with the same request (its code is then redeemed at v1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_endpoint_connect_and_sync() {
    let e = env().await;
    e.delegated_only_connection("legacy").await;
    let upn = e.users()[3].clone();
    let pending = begin_connect(
        e.store.as_ref(),
        &e.shared,
        "legacy",
        &ConnectOptions {
            v1: true,
            link: Some(LinkOptions::default()),
            ..ConnectOptions::default()
        },
    )
    .await
    .expect("begin");
    let url = reqwest::Url::parse(&pending.url).expect("url");
    assert!(url.path().ends_with("/oauth2/authorize"), "{url}");
    let q: HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(q["resource"], "https://graph.microsoft.com");
    assert!(!q.contains_key("scope"));
    // The simulator's v2 page stands in for the v1 one.
    let mut v2 = url.clone();
    v2.set_path(
        &url.path()
            .replace("/oauth2/authorize", "/oauth2/v2.0/authorize"),
    );
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .into_owned()
        .filter(|(k, _)| k != "resource")
        .chain([(
            "scope".to_owned(),
            "openid profile offline_access https://graph.microsoft.com/Calendars.ReadWrite"
                .to_owned(),
        )])
        .collect();
    v2.query_pairs_mut().clear().extend_pairs(pairs);
    let finish = tokio::spawn(pending.finish(e.store.clone()));
    let location = e.sign_in(v2.as_str(), &upn, true).await;
    let (s, page) = e.callback(&location).await;
    assert_eq!(s, 200, "{page}");
    let done = finish.await.expect("task").expect("connected via v1");
    assert!(done.checklist.passed(), "{}", done.checklist.render());
    assert_eq!(done.account.endpoint, "v1");
    let rt1 = e.account_rt(&upn).await;
    let s = e
        .engine()
        .sync(&SyncRequest::default(), None)
        .await
        .expect("sync runs");
    assert!(s.is_success(), "{:?}", s.failures().collect::<Vec<_>>());
    assert_ne!(
        e.account_rt(&upn).await,
        rt1,
        "refreshed at the v1 endpoint"
    );
    e.assert_matches_truth(&upn).await;
}
