//! `connection test` (Test settings) against the in-process simulator over real HTTP, with a
//! real SQLite store: every error case is produced by configuring the simulator that way.
#![allow(clippy::unwrap_used)]

use calgate_admin::diagnose::{AdminError, Purpose, TestOptions, test_connection};
use calgate_admin::{Checklist, Status};
use calgate_core::MailboxKind;
use calgate_store::NewCredential;
use calgate_testkit::SimExt;
use serde_json::json;

use crate::common::{self, ANNA, Env as H, MARCO};

async fn start() -> H {
    common::demo_env(11).await
}

impl H {
    fn graph_url(&self) -> String {
        self.sim.creds().graph_url
    }
    async fn add(
        &self,
        name: &str,
        tenant: &str,
        client_id: &str,
        credentials: Vec<NewCredential>,
    ) {
        self.add_at(
            name,
            tenant,
            client_id,
            credentials,
            &self.sim.base_url.clone(),
            &self.graph_url(),
        )
        .await;
    }
    async fn add_at(
        &self,
        name: &str,
        tenant: &str,
        client_id: &str,
        credentials: Vec<NewCredential>,
        authority: &str,
        graph_url: &str,
    ) {
        let mut c = calgate_testkit::sim_connection(&self.sim, name, client_id, credentials);
        c.tenant = tenant.to_owned();
        c.authority = authority.to_owned();
        c.graph_url = graph_url.to_owned();
        self.store.add_connection(&c).await.unwrap();
    }
    /// A connection for published app `app` with its secret.
    async fn add_app(&self, name: &str, app: &str) -> String {
        let (id, secret) = self.app(app);
        self.add(
            name,
            &self.sim.tenant_id(),
            &id,
            vec![NewCredential::secret(secret, None)],
        )
        .await;
        id
    }
    async fn test(&self, name: &str, opts: TestOptions) -> Checklist {
        test_connection(self.store.as_ref(), name, &opts)
            .await
            .unwrap()
    }
}

fn push() -> TestOptions {
    TestOptions {
        purpose: Purpose::Push,
        ..TestOptions::default()
    }
}

fn with_mailbox(mb: &str) -> TestOptions {
    TestOptions {
        mailbox: Some(mb.to_owned()),
        ..TestOptions::default()
    }
}

/// Asserts a ✗ line `id` whose summary has `summary` and whose fix has every `fix` fragment.
#[track_caller]
fn assert_fail(list: &Checklist, id: &str, summary: &str, fix: &[&str]) {
    let text = list.render();
    if std::env::var_os("CALGATE_SHOW_CHECKLISTS").is_some() {
        eprintln!("{text}");
    }
    let c = list
        .get(id)
        .unwrap_or_else(|| panic!("no line '{id}' in:\n{text}"));
    assert_eq!(c.status, Status::Fail, "'{id}' should fail:\n{text}");
    assert!(
        c.summary.contains(summary),
        "'{id}' summary lacks '{summary}':\n{text}"
    );
    let f = c.fix.as_deref().unwrap_or("");
    for frag in fix {
        assert!(f.contains(frag), "'{id}' fix lacks '{frag}':\n{text}");
    }
    assert!(!list.passed(), "a failed checklist must not pass:\n{text}");
    // The rendered form shows the ✗ line and its fix.
    assert!(text.contains(&format!("✗ {}", c.summary)), "{text}");
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let p = l.local_addr().unwrap().port();
    drop(l);
    p
}

#[tokio::test]
async fn a_correct_setup_passes_every_step_and_serializes() {
    let h = start().await;
    h.add_app("contoso", "calgate").await;
    h.link(ANNA, "contoso", MailboxKind::User).await;
    for opts in [TestOptions::default(), push()] {
        let list = h.test("contoso", opts).await;
        let text = list.render();
        assert!(list.passed(), "{text}");
        assert!(
            list.checks.iter().all(|c| c.status == Status::Pass),
            "{text}"
        );
        let ids: Vec<&str> = list.checks.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "authority",
                "tenant",
                "app",
                "credential-1",
                "token",
                "permissions",
                "graph",
                "directory",
                "mailbox"
            ],
            "{text}"
        );
        assert!(
            list.get("token")
                .unwrap()
                .summary
                .contains("Calendars.ReadWrite"),
            "{text}"
        );
        assert!(
            list.get("mailbox").unwrap().summary.contains(ANNA),
            "{text}"
        );
        // --json: the same checklist as data.
        let v = serde_json::to_value(&list).unwrap();
        assert_eq!(v["checks"].as_array().unwrap().len(), ids.len());
        assert_eq!(v["checks"][0]["id"], "authority");
        assert_eq!(v["checks"][8]["status"], "pass");
        assert!(v["checks"][8].get("fix").is_none());
    }
    // No secret in the output.
    let (_, secret) = h.app("calgate");
    let list = h.test("contoso", TestOptions::default()).await;
    assert!(!list.render().contains(&secret));
    assert!(!serde_json::to_string(&list).unwrap().contains(&secret));
}

#[tokio::test]
async fn unknown_connection_is_an_error_not_a_checklist() {
    let h = start().await;
    let e = test_connection(h.store.as_ref(), "nope", &TestOptions::default()).await;
    assert!(matches!(e, Err(AdminError::UnknownConnection(ref n)) if n == "nope"));
}

#[tokio::test]
async fn unknown_tenant() {
    let h = start().await;
    let (id, secret) = h.app("calgate");
    h.add(
        "c",
        "6f1b3d0e-0000-4000-8000-00000000beef",
        &id,
        vec![NewCredential::secret(secret, None)],
    )
    .await;
    let list = h.test("c", TestOptions::default()).await;
    assert_fail(
        &list,
        "tenant",
        "was not found",
        &["Directory (tenant) ID", "Entra ID › Overview"],
    );
    assert_eq!(
        list.get("tenant").unwrap().code.as_deref(),
        Some("AADSTS90002")
    );
    assert_eq!(list.get("authority").unwrap().status, Status::Pass);
    assert_eq!(list.get("token").unwrap().status, Status::Skip);
}

#[tokio::test]
async fn app_not_in_the_tenant() {
    let h = start().await;
    let (_, secret) = h.app("calgate");
    h.add(
        "c",
        &h.sim.tenant_id(),
        "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
        vec![NewCredential::secret(secret, None)],
    )
    .await;
    let list = h.test("c", TestOptions::default()).await;
    assert_fail(
        &list,
        "app",
        "is not registered in tenant",
        &["Application (client) ID"],
    );
    assert_eq!(
        list.get("app").unwrap().code.as_deref(),
        Some("AADSTS700016")
    );
    assert_eq!(list.get("tenant").unwrap().status, Status::Pass);
}

#[tokio::test]
async fn wrong_secret() {
    let h = start().await;
    let (id, _) = h.app("calgate");
    h.add(
        "c",
        &h.sim.tenant_id(),
        &id,
        vec![NewCredential::secret(
            "abc8Q~ThisIsNotTheRightSecretValue0123456",
            None,
        )],
    )
    .await;
    let list = h.test("c", TestOptions::default()).await;
    assert_fail(
        &list,
        "credential-1",
        "not a valid client secret",
        &["Value (not its Secret ID)", "Certificates & secrets"],
    );
    assert_eq!(
        list.get("credential-1").unwrap().code.as_deref(),
        Some("AADSTS7000215")
    );
    assert_eq!(list.get("app").unwrap().status, Status::Pass);
    assert_eq!(list.get("token").unwrap().status, Status::Skip);
}

#[tokio::test]
async fn the_secret_id_pasted_instead_of_its_value() {
    let h = start().await;
    let (id, _) = h.app("calgate");
    let app = h
        .control_ok(reqwest::Method::GET, &format!("/apps/{id}"), None)
        .await;
    let key_id = app["secrets"][0]["key_id"].as_str().unwrap().to_owned();
    h.add(
        "c",
        &h.sim.tenant_id(),
        &id,
        vec![NewCredential::secret(key_id.clone(), None)],
    )
    .await;
    let list = h.test("c", TestOptions::default()).await;
    assert_fail(
        &list,
        "credential-1",
        "is the secret's ID, not its value",
        &["shown only once", "copy the Value (not the Secret ID)"],
    );
    assert!(!list.render().contains(&key_id));
}

#[tokio::test]
async fn expired_secret() {
    let h = start().await;
    h.add_app("c", "calgate-expired").await;
    let list = h.test("c", TestOptions::default()).await;
    assert_fail(
        &list,
        "credential-1",
        "has expired",
        &["New client secret", "calgate connection secret add c"],
    );
    assert_eq!(
        list.get("credential-1").unwrap().code.as_deref(),
        Some("AADSTS7000222")
    );
}

#[tokio::test]
async fn admin_consent_missing() {
    let h = start().await;
    let (id, secret) = h.api.new_app("no-consent", &[]).await.0.pair();
    h.add(
        "c",
        &h.sim.tenant_id(),
        &id,
        vec![NewCredential::secret(secret, None)],
    )
    .await;
    h.link(ANNA, "c", MailboxKind::User).await;
    let list = h.test("c", TestOptions::default()).await;
    assert_fail(
        &list,
        "consent",
        "admin consent is missing",
        &[
            "Grant admin consent",
            "API permissions",
            "Calendars.Read",
            &format!(
                "New-ManagementRoleAssignment -App {id} -Role \"Application Calendars.Read\" -CustomResourceScope"
            ),
        ],
    );
    assert!(
        list.get("token").unwrap().summary.contains("none"),
        "{}",
        list.render()
    );
    // The directory is optional: a warning, not the failure.
    assert_eq!(list.get("directory").unwrap().status, Status::Warn);
}

#[tokio::test]
async fn read_only_permission_is_enough_to_pull_but_not_to_push() {
    let h = start().await;
    h.add_app("ro", "calgate-readonly").await;
    h.link(ANNA, "ro", MailboxKind::User).await;
    let pull = h.test("ro", TestOptions::default()).await;
    assert!(pull.passed(), "{}", pull.render());
    assert_eq!(pull.get("permissions").unwrap().status, Status::Pass);
    assert!(
        pull.get("permissions")
            .unwrap()
            .summary
            .contains("enough to pull")
    );
    // calgate-readonly has no User.Read.All: optional, so a warning with the grant to add.
    let dir = pull.get("directory").unwrap();
    assert_eq!(dir.status, Status::Warn, "{}", pull.render());
    assert!(dir.fix.as_deref().unwrap().contains("User.Read.All"));

    let push = h.test("ro", push()).await;
    let (id, _) = h.app("calgate-readonly");
    assert_fail(
        &push,
        "permissions",
        "Calendars.Read only",
        &[
            "Calendars.ReadWrite, then Grant admin consent",
            &format!(
                "New-ManagementRoleAssignment -App {id} -Role \"Application Calendars.ReadWrite\" -CustomResourceScope <scope>"
            ),
        ],
    );
}

#[tokio::test]
async fn mailbox_outside_the_rbac_scope() {
    let h = start().await;
    let id = h.add_app("scoped", "calgate-scoped").await;
    h.link(MARCO, "scoped", MailboxKind::User).await;
    // In scope: all good, access comes from RBAC for Applications.
    let ok = h.test("scoped", TestOptions::default()).await;
    assert!(ok.passed(), "{}", ok.render());
    assert!(ok.get("permissions").unwrap().summary.contains("RBAC"));
    // Pushing: whether the RBAC role allows writing cannot be read from the token — a
    // warning that says how to find out, not a failure.
    let p = h.test("scoped", push()).await;
    assert!(p.passed(), "{}", p.render());
    let perm = p.get("permissions").unwrap();
    assert_eq!(perm.status, Status::Warn, "{}", p.render());
    assert!(perm.fix.as_deref().unwrap().contains("--write-probe"));
    // Out of scope.
    let list = h.test("scoped", with_mailbox(ANNA)).await;
    assert_fail(
        &list,
        "mailbox-scope",
        "outside application",
        &[
            &format!("Test-ServicePrincipalAuthorization -Identity {id} -Resource {ANNA}"),
            "New-ManagementRoleAssignment",
            "-CustomResourceScope",
        ],
    );
    assert!(list.get("mailbox-scope").unwrap().summary.contains("RBAC"));
    assert!(list.get("consent").is_none(), "{}", list.render());
}

#[tokio::test]
async fn mailbox_blocked_by_an_application_access_policy() {
    let h = start().await;
    let (id, secret) = h
        .api
        .new_app("policy", &["Calendars.Read", "User.Read.All"])
        .await
        .0
        .pair();
    h.control_ok(
        reqwest::Method::PUT,
        &format!("/apps/{id}/access-policy"),
        Some(json!({"access_right": "RestrictAccess", "group": "calgate-scope@contoso.example"})),
    )
    .await;
    h.add(
        "c",
        &h.sim.tenant_id(),
        &id,
        vec![NewCredential::secret(secret, None)],
    )
    .await;
    h.link(ANNA, "c", MailboxKind::User).await;
    let list = h.test("c", TestOptions::default()).await;
    assert_fail(
        &list,
        "mailbox-scope",
        "Application Access Policy",
        &[
            &format!("Test-ApplicationAccessPolicy -AppId {id} -Identity {ANNA}"),
            "Remove-ApplicationAccessPolicy",
            "New-ManagementRoleAssignment",
        ],
    );
    assert_eq!(
        list.get("mailbox-scope").unwrap().code.as_deref(),
        Some("ErrorAccessDenied")
    );
    // A member of the policy's group is fine.
    let ok = h.test("c", with_mailbox(MARCO)).await;
    assert!(ok.passed(), "{}", ok.render());
}

#[tokio::test]
async fn clock_skew_for_a_certificate_assertion() {
    let h = start().await;
    let (id, _) = h
        .api
        .new_app("cert-app", &["Calendars.Read"])
        .await
        .0
        .pair();
    let cert = h
        .control_ok(
            reqwest::Method::POST,
            &format!("/apps/{id}/certificates"),
            Some(json!({"generate": true})),
        )
        .await;
    h.add(
        "c",
        &h.sim.tenant_id(),
        &id,
        vec![NewCredential::certificate(
            cert["private_key_pem"].as_str().unwrap(),
            cert["cert_pem"].as_str().unwrap(),
            None,
        )],
    )
    .await;
    h.link(ANNA, "c", MailboxKind::User).await;
    let before = h.test("c", TestOptions::default()).await;
    assert_eq!(
        before.get("credential-1").unwrap().status,
        Status::Pass,
        "{}",
        before.render()
    );
    // Entra ID's clock runs an hour ahead of this machine's.
    h.control_ok(
        reqwest::Method::POST,
        "/clock",
        Some(json!({"advance_seconds": 3600})),
    )
    .await;
    let list = h.test("c", TestOptions::default()).await;
    assert_fail(
        &list,
        "credential-1",
        "clock skew",
        &["NTP", "timedatectl set-ntp true"],
    );
    assert_eq!(
        list.get("credential-1").unwrap().code.as_deref(),
        Some("AADSTS700024")
    );
}

#[tokio::test]
async fn authority_unreachable() {
    let h = start().await;
    let (id, secret) = h.app("calgate");
    let authority = format!("http://127.0.0.1:{}", closed_port());
    h.add_at(
        "c",
        &h.sim.tenant_id(),
        &id,
        vec![NewCredential::secret(secret, None)],
        &authority,
        &h.graph_url(),
    )
    .await;
    let list = h.test("c", TestOptions::default()).await;
    assert_fail(
        &list,
        "authority",
        &format!("cannot reach Entra ID at {authority}"),
        &["authority URL", "firewall"],
    );
    assert_eq!(list.get("token").unwrap().status, Status::Skip);
}

#[tokio::test]
async fn graph_unreachable() {
    let h = start().await;
    let (id, secret) = h.app("calgate");
    let graph = format!("http://127.0.0.1:{}/v1.0", closed_port());
    h.add_at(
        "c",
        &h.sim.tenant_id(),
        &id,
        vec![NewCredential::secret(secret, None)],
        &h.sim.base_url.clone(),
        &graph,
    )
    .await;
    h.link(ANNA, "c", MailboxKind::User).await;
    let list = h.test("c", TestOptions::default()).await;
    assert_fail(
        &list,
        "graph",
        &format!("cannot reach Microsoft Graph at {graph}"),
        &["Graph URL", "firewall"],
    );
    assert_eq!(list.get("token").unwrap().status, Status::Pass);
    assert_eq!(list.get("mailbox").unwrap().status, Status::Skip);
}

#[tokio::test]
async fn credentials_are_tested_one_by_one_newest_first() {
    let h = start().await;
    let (id, secret) = h.app("calgate");
    let wrong = "abc8Q~AnOldSecretThatWasDeleted0123456789";
    // Newest first: the store orders by added_at, so add the older one first.
    h.add(
        "rot",
        &h.sim.tenant_id(),
        &id,
        vec![NewCredential::secret(secret.clone(), None)],
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    h.store
        .add_credential("rot", &NewCredential::secret(wrong, None))
        .await
        .unwrap();
    h.link(ANNA, "rot", MailboxKind::User).await;
    // The newest (just pasted) secret is wrong while the old one works: a real mistake.
    let list = h.test("rot", TestOptions::default()).await;
    assert_fail(
        &list,
        "credential-1",
        "not a valid client secret",
        &["Value"],
    );
    assert!(list.get("credential-1").unwrap().summary.contains("newest"));
    assert_eq!(list.get("credential-2").unwrap().status, Status::Pass);
    // Named by calgate's id, as `connection list` shows it (newest first).
    let conn = h.store.connection("rot").await.unwrap().unwrap();
    let (newest, older) = (
        format!("secret #{} (newest", conn.credentials[0].id),
        format!("secret #{}", conn.credentials[1].id),
    );
    let summary = |id: &str| list.get(id).unwrap().summary.clone();
    assert!(
        summary("credential-1").starts_with(&newest),
        "{}",
        list.render()
    );
    assert!(
        summary("credential-2").starts_with(&older),
        "{}",
        list.render()
    );
    assert!(
        summary("token").contains(&format!("token acquired with {older};")),
        "{}",
        list.render()
    );
    assert_eq!(list.get("mailbox").unwrap().status, Status::Pass);

    // The other way round: an old leftover that no longer works is only a warning.
    let conn = h.store.connection("rot").await.unwrap().unwrap();
    for c in &conn.credentials {
        h.store.remove_credential("rot", c.id).await.unwrap();
    }
    h.store
        .add_credential("rot", &NewCredential::secret(wrong, None))
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    h.store
        .add_credential("rot", &NewCredential::secret(secret, None))
        .await
        .unwrap();
    let list = h.test("rot", TestOptions::default()).await;
    assert!(list.passed(), "{}", list.render());
    let old = list.get("credential-2").unwrap();
    assert_eq!(old.status, Status::Warn, "{}", list.render());
    let conn = h.store.connection("rot").await.unwrap().unwrap();
    assert!(
        old.fix.as_deref().unwrap().contains(&format!(
            "calgate connection secret remove rot #{}",
            conn.credentials[1].id
        )),
        "{}",
        list.render()
    );
}

#[tokio::test]
async fn without_a_mailbox_the_probe_is_skipped_with_a_note() {
    let h = start().await;
    h.add_app("c", "calgate").await;
    let list = h.test("c", TestOptions::default()).await;
    assert!(list.passed(), "{}", list.render());
    let m = list.get("mailbox").unwrap();
    assert_eq!(m.status, Status::Warn);
    assert!(m.fix.as_deref().unwrap().contains("--mailbox ADDRESS"));
    // The directory was still probed.
    assert_eq!(list.get("directory").unwrap().status, Status::Pass);
}

#[tokio::test]
async fn a_working_secret_that_expires_soon_is_a_warning() {
    let h = start().await;
    let (id, secret) = h.app("calgate");
    let soon = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_hours(24 * 10))
        .unwrap();
    h.add(
        "c",
        &h.sim.tenant_id(),
        &id,
        vec![NewCredential::secret(secret, Some(soon))],
    )
    .await;
    h.link(ANNA, "c", MailboxKind::User).await;
    let list = h.test("c", TestOptions::default()).await;
    assert!(list.passed(), "{}", list.render());
    let c = list.get("credential-1").unwrap();
    assert_eq!(c.status, Status::Warn, "{}", list.render());
    assert!(c.summary.contains("expires in 9 day") || c.summary.contains("expires in 10 day"));
    assert!(
        c.fix
            .as_deref()
            .unwrap()
            .contains("calgate connection secret add c")
    );
}
