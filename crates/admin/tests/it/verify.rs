//! `mailbox verify` against the in-process simulator over real HTTP, with a real SQLite store.
#![allow(clippy::unwrap_used)]

use calgate_admin::verify::{PROBE_SUBJECT, VerifyOptions, verify_mailbox};
use calgate_admin::{Checklist, Status};
use calgate_core::MailboxKind;
use calgate_store::NewCredential;
use calgate_testkit::SimExt;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use crate::common::{self, ANNA, Env as H, MARCO};

async fn start() -> H {
    common::demo_env(13).await
}

impl H {
    fn first(&self, kind: &str) -> String {
        self.sim.creds().first_of(kind)
    }
    /// A connection named like the published app `app`, with its secret.
    async fn connect(&self, app: &str) {
        let (client_id, secret) = self.app(app);
        let credentials = vec![NewCredential::secret(&secret, None)];
        self.add_connection_with(app, &client_id, credentials).await;
    }
    async fn verify(&self, connection: &str, address: &str, opts: VerifyOptions) -> Checklist {
        let list = verify_mailbox(self.store.as_ref(), connection, address, &opts)
            .await
            .unwrap();
        if std::env::var_os("CALGATE_SHOW_CHECKLISTS").is_some() {
            eprintln!("{}", list.render());
        }
        list
    }
    /// The truth: every instance of `addr` in the next 3 days.
    async fn events(&self, addr: &str) -> Value {
        let now = Timestamp::now();
        let start = now.checked_sub(SignedDuration::from_hours(1)).unwrap();
        let end = now.checked_add(SignedDuration::from_hours(72)).unwrap();
        self.api.events(addr, start, end).await
    }
    async fn assert_no_probe_left(&self, addr: &str, before: &Value) {
        let after = self.events(addr).await;
        assert_eq!(after["count"], before["count"], "{after}");
        let left: Vec<&Value> = after["value"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["subject"] == PROBE_SUBJECT)
            .collect();
        assert!(left.is_empty(), "probe event left behind: {left:?}");
    }
}

#[track_caller]
fn status(list: &Checklist, id: &str) -> Status {
    list.get(id)
        .unwrap_or_else(|| panic!("no line '{id}':\n{}", list.render()))
        .status
}

#[track_caller]
fn summary<'a>(list: &'a Checklist, id: &str) -> &'a str {
    &list
        .get(id)
        .unwrap_or_else(|| panic!("no line '{id}':\n{}", list.render()))
        .summary
}

#[tokio::test]
async fn right_kind_for_a_user_a_room_and_an_equipment_mailbox() {
    let h = start().await;
    h.connect("calgate").await;
    let room = h.first("room");
    let equipment = h.first("equipment");
    for (addr, kind) in [
        (ANNA, "a user"),
        (room.as_str(), "a room"),
        (equipment.as_str(), "an equipment"),
    ] {
        let list = h.verify("calgate", addr, VerifyOptions::default()).await;
        assert!(list.passed(), "{}", list.render());
        let ids: Vec<&str> = list.checks.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(
            ids,
            ["token", "exists", "kind", "scope", "calendar", "settings"],
            "{}",
            list.render()
        );
        assert!(
            summary(&list, "kind").contains(&format!(
                "is {kind} mailbox (from mailboxSettings.userPurpose"
            )),
            "{}",
            list.render()
        );
        assert!(summary(&list, "calendar").contains("the default calendar is readable"));
        let settings = summary(&list, "settings");
        assert!(
            settings.contains("time zone ") && settings.contains("working hours"),
            "{settings}"
        );
    }
    // A person's zone and working hours as Exchange has them (Amsterdam HQ, Mon–Fri).
    let list = h.verify("calgate", ANNA, VerifyOptions::default()).await;
    assert!(
        summary(&list, "settings").contains("Mon Tue Wed Thu Fri"),
        "{}",
        list.render()
    );
    assert!(summary(&list, "exists").contains("Anna de Vries"));
    // --json
    let v = serde_json::to_value(&list).unwrap();
    assert_eq!(v["checks"][2]["id"], "kind");
    assert_eq!(v["checks"][2]["status"], "pass");
}

#[tokio::test]
async fn rooms_are_told_by_the_places_api_when_mailbox_settings_are_not_permitted() {
    let h = start().await;
    // calgate-readonly: Calendars.Read and Place.Read.All, no MailboxSettings.Read, no User.Read.All.
    h.connect("calgate-readonly").await;
    let room = h.first("room");
    let list = h
        .verify("calgate-readonly", &room, VerifyOptions::default())
        .await;
    assert!(list.passed(), "{}", list.render());
    assert_eq!(status(&list, "kind"), Status::Pass);
    assert!(summary(&list, "kind").contains("is a room mailbox (from the places API"));
    assert!(summary(&list, "exists").contains("Exchange answered"));
    assert_eq!(status(&list, "settings"), Status::Warn);
    // A person: not a room, and user vs equipment cannot be told — a warning with the grant.
    let list = h
        .verify("calgate-readonly", ANNA, VerifyOptions::default())
        .await;
    assert_eq!(status(&list, "kind"), Status::Warn, "{}", list.render());
    assert!(
        list.get("kind")
            .unwrap()
            .fix
            .as_deref()
            .unwrap()
            .contains("MailboxSettings.Read")
    );
}

#[tokio::test]
async fn a_mailbox_linked_with_the_wrong_kind_fails_with_the_relink_command() {
    let h = start().await;
    h.connect("calgate").await;
    let room = h.first("room");
    h.link(&room, "calgate", MailboxKind::User).await;
    let list = h.verify("calgate", &room, VerifyOptions::default()).await;
    assert_eq!(status(&list, "kind"), Status::Fail, "{}", list.render());
    assert!(summary(&list, "kind").contains("but it is linked as user"));
    assert!(
        list.get("kind")
            .unwrap()
            .fix
            .as_deref()
            .unwrap()
            .contains(&format!(
                "calgate mailbox link {room} --connection calgate --kind room"
            ))
    );
    assert!(!list.passed());
}

#[tokio::test]
async fn an_unknown_mailbox_is_reported_as_not_found() {
    let h = start().await;
    h.connect("calgate").await;
    h.connect("calgate-readonly").await;
    // With and without directory access (User.Read.All): the same line.
    for conn in ["calgate", "calgate-readonly"] {
        let list = h
            .verify(conn, "nobody@contoso.example", VerifyOptions::default())
            .await;
        assert!(!list.passed());
        assert_eq!(status(&list, "exists"), Status::Fail, "{}", list.render());
        assert!(summary(&list, "exists").contains("was not found in the tenant"));
        assert!(
            list.get("exists")
                .unwrap()
                .fix
                .as_deref()
                .unwrap()
                .contains("primary SMTP address or UPN")
        );
        for id in ["kind", "scope", "calendar", "settings"] {
            assert_eq!(status(&list, id), Status::Skip, "{id}: {}", list.render());
        }
    }
}

#[tokio::test]
async fn a_mailbox_outside_the_apps_scope() {
    let h = start().await;
    h.connect("calgate-scoped").await;
    h.link(MARCO, "calgate-scoped", MailboxKind::User).await;
    let ok = h
        .verify("calgate-scoped", MARCO, VerifyOptions::default())
        .await;
    assert_eq!(status(&ok, "scope"), Status::Pass, "{}", ok.render());
    assert_eq!(status(&ok, "calendar"), Status::Pass);

    let list = h
        .verify("calgate-scoped", ANNA, VerifyOptions::default())
        .await;
    assert!(!list.passed());
    assert_eq!(status(&list, "exists"), Status::Pass, "{}", list.render());
    assert_eq!(status(&list, "scope"), Status::Fail);
    assert!(summary(&list, "scope").contains("outside application"));
    assert!(summary(&list, "scope").contains("RBAC for Applications scope"));
    let fix = list.get("scope").unwrap().fix.clone().unwrap();
    assert!(fix.contains(&format!("-Resource {ANNA}")), "{fix}");
    assert!(fix.contains("Test-ServicePrincipalAuthorization"), "{fix}");
    assert_eq!(status(&list, "calendar"), Status::Skip);
}

#[tokio::test]
async fn write_probe_leaves_nothing_behind() {
    let h = start().await;
    h.connect("calgate").await;
    let before = h.events(ANNA).await;
    let opts = VerifyOptions {
        write_probe: true,
        ..VerifyOptions::default()
    };
    let list = h.verify("calgate", ANNA, opts.clone()).await;
    assert!(list.passed(), "{}", list.render());
    assert_eq!(status(&list, "write"), Status::Pass);
    assert!(summary(&list, "write").contains("created and deleted"));
    h.assert_no_probe_left(ANNA, &before).await;

    // The create's answer is lost (the event IS created): the repeat with the same
    // transactionId finds it, and it is deleted.
    h.control_ok(
        reqwest::Method::PUT,
        "/faults",
        Some(
            json!({"drop_connection": {"count": 1, "method": "POST", "path_contains": "/events"}}),
        ),
    )
    .await;
    let list = h.verify("calgate", ANNA, opts.clone()).await;
    assert_eq!(status(&list, "write"), Status::Pass, "{}", list.render());
    let faults = h.control_ok(reqwest::Method::GET, "/faults", None).await;
    assert_eq!(faults["dropped_connections"], 1, "{faults}");
    h.assert_no_probe_left(ANNA, &before).await;

    // The delete's answer is lost (the event IS deleted): the repeat's 404 means gone.
    h.control_ok(
        reqwest::Method::PUT,
        "/faults",
        Some(json!({"drop_connection": {"count": 1, "method": "DELETE", "path_contains": "/events"}})),
    )
    .await;
    let list = h.verify("calgate", ANNA, opts.clone()).await;
    assert_eq!(status(&list, "write"), Status::Pass, "{}", list.render());
    let faults = h.control_ok(reqwest::Method::GET, "/faults", None).await;
    assert_eq!(faults["dropped_connections"], 2, "{faults}");
    h.assert_no_probe_left(ANNA, &before).await;

    // Read-only: the write is refused, with the grant to add; nothing created.
    h.connect("calgate-readonly").await;
    let list = h.verify("calgate-readonly", ANNA, opts).await;
    assert_eq!(status(&list, "write"), Status::Fail, "{}", list.render());
    assert!(summary(&list, "write").contains("may read but not write"));
    assert!(
        list.get("write")
            .unwrap()
            .fix
            .as_deref()
            .unwrap()
            .contains("-Role \"Application Calendars.ReadWrite\"")
    );
    h.assert_no_probe_left(ANNA, &before).await;
}

#[tokio::test]
async fn a_given_calendar_is_checked_and_written_to() {
    let h = start().await;
    h.connect("calgate").await;
    let before = h.events(ANNA).await;
    let cal = before["calendar"].as_str().unwrap().to_owned();
    let list = h
        .verify(
            "calgate",
            ANNA,
            VerifyOptions {
                calendar: Some(cal.clone()),
                write_probe: true,
                ..VerifyOptions::default()
            },
        )
        .await;
    assert!(list.passed(), "{}", list.render());
    assert!(summary(&list, "calendar").contains(&format!("calendar {cal} is readable")));
    assert_eq!(status(&list, "write"), Status::Pass);
    h.assert_no_probe_left(ANNA, &before).await;

    let list = h
        .verify(
            "calgate",
            ANNA,
            VerifyOptions {
                calendar: Some("AAMkAGNvbnRvc29ub3RoZXJl".to_owned()),
                write_probe: true,
                ..VerifyOptions::default()
            },
        )
        .await;
    assert_eq!(status(&list, "calendar"), Status::Fail, "{}", list.render());
    assert!(summary(&list, "calendar").contains("has no calendar with the ID given"));
    assert_eq!(status(&list, "write"), Status::Skip);
    h.assert_no_probe_left(ANNA, &before).await;
}
