//! The behavioural suite every backend must pass, written against `&dyn Store` only.
//!
//! A backend instantiates it with [`store_suite!`]`(module_name, fixture_fn)`, where
//! `fixture_fn().await` returns a fresh, empty [`Fixture`]. SQLite runs it on a temp file, and
//! PostgreSQL on a fresh database per test (both in tests/store.rs).

use std::any::Any;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use calgate_core::booking::{
    Booking, BookingMode, BookingSpec, BookingState, BookingTarget, TargetRole, TargetState,
    TargetStatus,
};
use calgate_core::{
    Instance, InstanceType, MailboxKind, Origin, Person, PrivacyPolicy, Sensitivity, ShowAs, When,
};
use calgate_store::*;
use jiff::{SignedDuration, Timestamp};

/// A fresh store and what it takes to open it again.
pub struct Fixture {
    pub store: Arc<dyn Store>,
    /// Opens the same database again (`open_with(location, …)`).
    pub location: String,
    pub key: MasterKey,
    /// Keeps the backend's resources (temp dir, schema) alive.
    pub _guard: Box<dyn Any + Send + Sync>,
}

#[macro_export]
macro_rules! store_suite {
    ($backend:ident, $fixture:path $(, #[$attr:meta])*) => {
        mod $backend {
            $crate::store_suite!(@tests $fixture; [$(#[$attr])*];
                connections_crud_with_two_credentials,
                wrong_master_key_is_an_error_not_garbage,
                mailboxes_link_unlink_idempotent_and_case_insensitive,
                instances_round_trip_every_field,
                web_links_round_trip_through_live_and_shadow_sets,
                apply_changes_is_atomic,
                shadow_resync_swaps_atomically,
                abort_shadow_keeps_the_live_set,
                overlap_query_edges,
                cursor_round_trip,
                status_round_trip,
                unlink_deletes_everything_of_the_mailbox,
                concurrent_writers,
                accounts_sealed_refreshed_marked_and_forgotten,
                relink_keeps_settings_not_given,
                privacy_is_applied_when_writing_and_when_it_changes,
                one_lease_per_mailbox_fences_every_write_of_a_round,
                finish_round_records_the_status_and_releases_the_lease,
                shadow_set_belongs_to_its_round,
                integrity_check_of_a_sound_store_finds_nothing,
                change_log_follows_every_applied_change,
                instances_page_by_keyset,
                sync_states_in_one_read,
                api_keys_and_feeds_keep_hashes_and_revoke,
                status_transitions_and_notices_enter_the_change_log,
                webhook_queue_delivers_in_order_per_partition,
                subscription_records_round_trip_and_go_with_the_mailbox,
                console_sessions_by_token_hash_expire_and_end,
                role_leases_have_one_holder_at_a_time,
                bookings_keep_their_targets_and_queue_their_writes,
                push_outbox_claims_holds_and_finishes,
                reconcile_requeues_edited_and_marks_deleted_pushed_events,
            );
        }
    };
    (@tests $fixture:path; $attrs:tt; $($name:ident),* $(,)?) => {
        $( $crate::store_suite!(@one $fixture; $attrs; $name); )*
    };
    (@one $fixture:path; [$($attr:tt)*]; $name:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        $($attr)*
        async fn $name() {
            let f = $fixture().await;
            $crate::suite::$name(&f).await;
        }
    };
}

pub fn t(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

pub fn new_connection(name: &str, credentials: Vec<NewCredential>) -> NewConnection {
    NewConnection {
        ca_cert_pem: None,
        ews: None,
        name: name.into(),
        tenant: "contoso.onmicrosoft.com".into(),
        client_id: "11111111-2222-3333-4444-555555555555".into(),
        authority: "https://login.microsoftonline.com".into(),
        graph_url: "https://graph.microsoft.com/v1.0".into(),
        cloud: "global".into(),
        credentials,
    }
}

pub fn instance(id: &str, start: &str, end: &str) -> Instance {
    Instance {
        exchange_id: id.into(),
        ical_uid: Some(format!("uid-{id}")),
        mailbox: String::new(),
        kind: InstanceType::SingleInstance,
        series_master_id: None,
        when: When {
            start: t(start),
            end: t(end),
            time_zone: "Europe/Berlin".into(),
            all_day: None,
        },
        show_as: ShowAs::Busy,
        sensitivity: Sensitivity::Normal,
        subject: Some(format!("Subject {id}")),
        location: None,
        body_preview: None,
        organizer: None,
        attendees: Vec::new(),
        web_link: None,
        change_key: Some("ck1".into()),
        last_modified: None,
        origin: Origin::Exchange,
        booking_id: None,
    }
}

pub fn cursor(link: &str) -> Cursor {
    Cursor {
        delta_link: link.into(),
        window_start: t("2026-01-01T00:00:00Z"),
        window_end: t("2027-01-01T00:00:00Z"),
        rebased_at: t("2026-01-02T03:04:05.123456Z"),
    }
}

const ALL_FROM: &str = "1900-01-01T00:00:00Z";
const ALL_TO: &str = "2200-01-01T00:00:00Z";

async fn ids(s: &dyn Store, m: MailboxId) -> BTreeSet<String> {
    s.instances(m, t(ALL_FROM), t(ALL_TO))
        .await
        .expect("instances")
        .into_iter()
        .map(|i| i.instance.exchange_id)
        .collect()
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

/// A connection `c` and a linked user mailbox `a@contoso.com`.
pub async fn mailbox(s: &dyn Store) -> MailboxId {
    mailbox_named(s, "a@contoso.com").await
}

pub async fn mailbox_named(s: &dyn Store, address: &str) -> MailboxId {
    if s.connection("c").await.expect("connection").is_none() {
        s.add_connection(&new_connection("c", vec![NewCredential::secret("x", None)]))
            .await
            .expect("add connection");
    }
    s.link_mailbox(&NewMailbox::new(
        address,
        "c",
        MailboxKind::User,
        PrivacyPolicy::Full,
    ))
    .await
    .expect("link")
}

/// The holder the suite's rounds run as (another host: never taken for a dead process).
pub fn suite_holder() -> LeaseHolder {
    LeaseHolder {
        id: "suite".into(),
        pid: 1,
        host: "suite-host".into(),
    }
}

/// The suite holder's lease on `mb`: taken on first use, the same one after (idempotent).
pub async fn lease(s: &dyn Store, mb: MailboxId) -> Lease {
    let holder = suite_holder();
    let ttl = SignedDuration::from_hours(1);
    match s.acquire_lease(mb, &holder, ttl).await.expect("lease") {
        LeaseGrant::Acquired(l) => l,
        LeaseGrant::Held(i) if i.holder == holder => Lease {
            mailbox: mb,
            token: i.token,
            holder,
            ttl,
            acquired_at: i.since,
        },
        LeaseGrant::Held(i) => panic!("mailbox {mb} is leased by {}", i.holder),
    }
}

pub async fn connections_crud_with_two_credentials(f: &Fixture) {
    let s = &*f.store;
    assert!(s.list_connections().await.expect("list").is_empty());
    let expires = t("2027-06-30T00:00:00Z");
    let mut cert = NewCredential::certificate(
        "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----\n",
        "-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n",
        Some(expires),
    );
    cert.key_id = Some("A1B2C3".into());
    let mut secret = NewCredential::secret("old~secret~value", Some(t("2026-12-31T00:00:00Z")));
    secret.key_id = Some("secret-id-1".into());
    let id = s
        .add_connection(&new_connection("contoso", vec![secret, cert]))
        .await
        .expect("add");

    let c = s.connection("contoso").await.expect("get").expect("exists");
    assert_eq!(c.id, id);
    assert_eq!(c.tenant, "contoso.onmicrosoft.com");
    assert_eq!(c.graph_url, "https://graph.microsoft.com/v1.0");
    assert_eq!(c.cloud, "global");
    assert_eq!(c.credentials.len(), 2);
    let by_kind = |k| c.credentials.iter().find(|x| x.kind == k).expect("kind");
    let sec = by_kind(CredentialKind::Secret);
    assert_eq!(sec.secret.expose(), "old~secret~value");
    assert_eq!(sec.key_id.as_deref(), Some("secret-id-1"));
    assert_eq!(sec.expires_at, Some(t("2026-12-31T00:00:00Z")));
    assert!(sec.certificate_pem.is_none());
    let cer = by_kind(CredentialKind::Certificate);
    assert!(cer.secret.expose().contains("BEGIN PRIVATE KEY"));
    assert!(
        cer.certificate_pem
            .as_deref()
            .expect("pem")
            .contains("BEGIN CERTIFICATE")
    );
    assert_eq!(cer.expires_at, Some(expires));
    assert!(
        !format!("{c:?}").contains("old~secret~value"),
        "Debug redacts"
    );

    // Rotation: a third credential, newest first; remove the old secret; record an expiry.
    let new_id = s
        .add_credential("contoso", &NewCredential::secret("new~secret", None))
        .await
        .expect("add credential");
    let c = s.connection("contoso").await.expect("get").expect("exists");
    assert_eq!(c.credentials.len(), 3);
    assert_eq!(c.credentials[0].id, new_id, "newest first");
    assert!(
        s.remove_credential("contoso", sec.id)
            .await
            .expect("remove")
    );
    assert!(!s.remove_credential("contoso", sec.id).await.expect("again"));
    assert!(
        s.set_credential_expiry(new_id, Some(t("2028-01-01T00:00:00Z")))
            .await
            .expect("expiry")
    );
    let c = s.connection("contoso").await.expect("get").expect("exists");
    assert_eq!(c.credentials.len(), 2);
    assert_eq!(c.credentials[0].expires_at, Some(t("2028-01-01T00:00:00Z")));
    let e = s
        .add_credential("nope", &NewCredential::secret("x", None))
        .await
        .expect_err("unknown connection");
    assert_eq!(e.kind(), ErrorKind::NotFound);

    // Names are unique; a taken name leaves nothing behind.
    let e = s
        .add_connection(&new_connection(
            "contoso",
            vec![NewCredential::secret("y", None)],
        ))
        .await
        .expect_err("duplicate");
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert!(e.to_string().contains("already exists"), "{e}");
    s.add_connection(&new_connection("fabrikam", vec![]))
        .await
        .expect("second");
    let names: Vec<_> = s
        .list_connections()
        .await
        .expect("list")
        .into_iter()
        .map(|c| (c.name, c.credentials.len()))
        .collect();
    assert_eq!(names, vec![("contoso".into(), 2), ("fabrikam".into(), 0)]);

    assert!(s.remove_connection("fabrikam").await.expect("remove"));
    assert!(!s.remove_connection("fabrikam").await.expect("remove again"));
    assert!(s.connection("fabrikam").await.expect("get").is_none());

    // A connection with linked mailboxes cannot be removed.
    s.link_mailbox(&NewMailbox {
        address: "room1@contoso.com".into(),
        connection: "contoso".into(),
        kind: Some(MailboxKind::Room),
        external_id: None,
        privacy: Some(PrivacyPolicy::BusyOnly),
    })
    .await
    .expect("link");
    let e = s.remove_connection("contoso").await.expect_err("in use");
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert!(e.to_string().contains("unlink"), "{e}");
    assert!(s.unlink_mailbox("room1@contoso.com").await.expect("unlink"));
    assert!(s.remove_connection("contoso").await.expect("remove"));
    assert!(s.list_connections().await.expect("list").is_empty());
}

pub async fn wrong_master_key_is_an_error_not_garbage(f: &Fixture) {
    let s = &*f.store;
    s.add_connection(&new_connection(
        "c",
        vec![NewCredential::secret("s3cret", None)],
    ))
    .await
    .expect("add");
    let (other, _) = MasterKey::generate().expect("key");
    let e = open_with(
        &f.location,
        OpenOptions {
            master_key: Some(other),
            ..Default::default()
        },
    )
    .await
    .err()
    .expect("wrong key refused");
    assert_eq!(e.kind(), ErrorKind::MasterKey);
    let msg = e.to_string();
    assert!(msg.contains("master key does not match"), "{msg}");
    assert!(!msg.contains('\n'), "one line: {msg}");

    // The right key still opens it, and the secret is intact.
    let again = open_with(
        &f.location,
        OpenOptions {
            master_key: Some(f.key.clone()),
            ..Default::default()
        },
    )
    .await
    .expect("right key");
    let c = again.connection("c").await.expect("get").expect("exists");
    assert_eq!(c.credentials[0].secret.expose(), "s3cret");
}

pub async fn mailboxes_link_unlink_idempotent_and_case_insensitive(f: &Fixture) {
    let s = &*f.store;
    s.add_connection(&new_connection("c", vec![]))
        .await
        .expect("add");
    s.add_connection(&new_connection("d", vec![]))
        .await
        .expect("add");
    let m = |address: &str, connection: &str, kind, privacy| NewMailbox {
        address: address.into(),
        connection: connection.into(),
        kind: Some(kind),
        external_id: Some("ext-1".into()),
        privacy: Some(privacy),
    };
    let id = s
        .link_mailbox(&m(
            "Alex.Wilber@Contoso.com",
            "c",
            MailboxKind::User,
            PrivacyPolicy::Full,
        ))
        .await
        .expect("link");
    // Again, differently cased, with new attributes: same id, attributes updated, address kept.
    let again = s
        .link_mailbox(&m(
            " alex.wilber@contoso.COM ",
            "c",
            MailboxKind::User,
            PrivacyPolicy::BusyOnly,
        ))
        .await
        .expect("relink");
    assert_eq!(id, again);
    let mb = s
        .mailbox("ALEX.WILBER@CONTOSO.COM")
        .await
        .expect("get")
        .expect("found case-insensitively");
    assert_eq!(mb.id, id);
    assert_eq!(mb.address, "Alex.Wilber@Contoso.com");
    assert_eq!(mb.connection, "c");
    assert_eq!(mb.privacy, PrivacyPolicy::BusyOnly);
    assert_eq!(mb.external_id.as_deref(), Some("ext-1"));
    assert_eq!(s.list_mailboxes().await.expect("list").len(), 1);

    // Linked elsewhere → conflict; unknown connection → not found.
    let e = s
        .link_mailbox(&m(
            "alex.wilber@contoso.com",
            "d",
            MailboxKind::User,
            PrivacyPolicy::Full,
        ))
        .await
        .expect_err("other connection");
    assert_eq!(e.kind(), ErrorKind::Conflict);
    let e = s
        .link_mailbox(&m(
            "x@contoso.com",
            "nope",
            MailboxKind::User,
            PrivacyPolicy::Full,
        ))
        .await
        .expect_err("unknown connection");
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.to_string().contains("calgate connection add"), "{e}");

    let room = s
        .link_mailbox(&m(
            "Room1@contoso.com",
            "d",
            MailboxKind::Room,
            PrivacyPolicy::FullIncludingPrivate,
        ))
        .await
        .expect("room");
    let list = s.list_mailboxes().await.expect("list");
    assert_eq!(
        list.iter().map(|m| (m.id, m.kind)).collect::<Vec<_>>(),
        vec![(id, MailboxKind::User), (room, MailboxKind::Room)],
        "ordered by address"
    );
    assert_eq!(list[1].privacy, PrivacyPolicy::FullIncludingPrivate);

    assert!(
        s.unlink_mailbox("ALEX.wilber@contoso.com")
            .await
            .expect("unlink")
    );
    assert!(
        !s.unlink_mailbox("alex.wilber@contoso.com")
            .await
            .expect("unlink again")
    );
    assert!(
        s.mailbox("alex.wilber@contoso.com")
            .await
            .expect("get")
            .is_none()
    );
    // Linking after unlinking is a fresh link.
    let fresh = s
        .link_mailbox(&m(
            "alex.wilber@contoso.com",
            "d",
            MailboxKind::User,
            PrivacyPolicy::Full,
        ))
        .await
        .expect("relink elsewhere after unlink");
    assert_ne!(fresh, id);
}

pub async fn instances_round_trip_every_field(f: &Fixture) {
    let s = &*f.store;
    // Everything is stored for a mailbox whose policy shows everything (confidential included).
    let mb = mailbox(s).await;
    s.link_mailbox(&NewMailbox::new(
        "a@contoso.com",
        "c",
        MailboxKind::User,
        PrivacyPolicy::FullIncludingPrivate,
    ))
    .await
    .expect("full-including-private");
    let mut full = instance("AAMk-full", "2026-03-29T00:30:00Z", "2026-03-29T02:15:00Z");
    full.kind = InstanceType::Exception;
    full.series_master_id = Some("AAMk-master".into());
    full.show_as = ShowAs::WorkingElsewhere;
    full.sensitivity = Sensitivity::Confidential;
    full.location = Some("Room 1 — Ünïcode".into());
    full.body_preview = Some("line 1\nline 2".into());
    full.organizer = Some(Person {
        name: "Adele Vance".into(),
        address: "adele@contoso.com".into(),
    });
    full.attendees = vec![
        Person {
            name: "Alex".into(),
            address: "alex@contoso.com".into(),
        },
        Person {
            name: "Room 1".into(),
            address: "room1@contoso.com".into(),
        },
    ];
    full.web_link = Some("https://outlook.office365.com/owa/?itemid=AAMk".into());
    full.last_modified = Some(t("2026-02-01T10:11:12.1234567Z"));
    full.origin = Origin::Calgate;
    let mut all_day = instance(
        "AAMk-allday",
        "2026-04-01T00:00:00Z",
        "2026-04-03T00:00:00Z",
    );
    all_day.when.all_day = Some((
        "2026-04-01".parse().expect("d"),
        "2026-04-03".parse().expect("d"),
    ));
    all_day.when.time_zone = "UTC".into();
    all_day.kind = InstanceType::Occurrence;
    all_day.ical_uid = None;
    all_day.subject = None;
    all_day.change_key = None;
    let master = SeriesMaster {
        exchange_id: "AAMk-master".into(),
        ical_uid: Some("uid-master".into()),
        subject: Some("Weekly".into()),
        location: None,
        organizer: full.organizer.clone(),
        recurrence: Some(serde_json::json!({
            "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"]},
            "range": {"type": "noEnd", "startDate": "2026-01-05"}
        })),
        start: Some(t("2026-01-05T08:00:00Z")),
        end: Some(t("2026-01-05T09:00:00Z")),
        time_zone: Some("Europe/Berlin".into()),
        show_as: Some(ShowAs::Tentative),
        sensitivity: Some(Sensitivity::Private),
        web_link: None,
        change_key: Some("m1".into()),
        last_modified: Some(t("2026-01-01T00:00:00Z")),
    };
    let before = Timestamp::now();
    s.apply_changes(
        &lease(s, mb).await,
        &ChangeSet {
            upserts: vec![full.clone(), all_day.clone()],
            masters: vec![master.clone()],
            ..Default::default()
        },
    )
    .await
    .expect("apply");

    let got = s.instances(mb, t(ALL_FROM), t(ALL_TO)).await.expect("read");
    assert_eq!(got.len(), 2);
    let mut expect_full = full.clone();
    expect_full.mailbox = "a@contoso.com".into();
    let mut expect_all_day = all_day.clone();
    expect_all_day.mailbox = "a@contoso.com".into();
    assert_eq!(got[0].instance, expect_full, "ordered by start");
    assert_eq!(got[1].instance, expect_all_day);
    assert_eq!(got[0].mailbox_id, mb);
    assert!(got[0].stored_at >= before.checked_sub(SignedDuration::from_secs(1)).expect("t"));
    assert_ne!(got[0].id, got[1].id);
    assert_eq!(
        s.series_masters(mb).await.expect("masters"),
        vec![master.clone()]
    );
    assert_eq!(s.count_instances(mb).await.expect("count"), 2);

    // An update keeps calgate's id; removals of unknown ids are ignored.
    let first_id = got[0].id;
    let mut moved = full.clone();
    moved.when.start = t("2026-03-30T00:30:00Z");
    moved.when.end = t("2026-03-30T01:00:00Z");
    moved.change_key = Some("ck2".into());
    s.apply_changes(
        &lease(s, mb).await,
        &ChangeSet {
            upserts: vec![moved],
            removals: vec!["never-seen".into()],
            master_removals: vec!["AAMk-master".into()],
            ..Default::default()
        },
    )
    .await
    .expect("update");
    let one = s
        .instance(mb, "AAMk-full")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(one.id, first_id);
    assert_eq!(one.instance.change_key.as_deref(), Some("ck2"));
    assert_eq!(one.instance.when.start, t("2026-03-30T00:30:00Z"));
    assert!(s.series_masters(mb).await.expect("masters").is_empty());
    assert!(s.instance(mb, "nope").await.expect("get").is_none());
}

/// Exchange Online's link of an item's own id (which SQLite keeps in a compact form), a link
/// that only looks like one, another host's link and none all read back as they were written,
/// from the live set and after a full resync.
pub async fn web_links_round_trip_through_live_and_shadow_sets(f: &Fixture) {
    let s = &*f.store;
    let mb = mailbox(s).await;
    let owa = |encoded: &str| {
        Some(format!(
            "https://outlook.office365.com/owa/?itemid={encoded}&exvsurl=1&path=/calendar/item"
        ))
    };
    let mut cases = Vec::new();
    for (n, (id, link)) in [
        // the id's own link, with characters that are URL-encoded
        ("AAMk/a+b=", owa("AAMk%2Fa%2Bb%3D")),
        ("AAMkÜ é", owa("AAMk%C3%9C%20%C3%A9")),
        // the same link spelled with lower-case hex, another item's link, a longer id
        ("AAMk/c", owa("AAMk%2fc")),
        ("AAMk-d", owa("AAMk-e")),
        ("AAMk-f", owa("AAMk-fX")),
        (
            "AAMk-g",
            Some(
                "https://outlook.office365.us/owa/?itemid=AAMk-g&exvsurl=1&path=/calendar/item"
                    .into(),
            ),
        ),
        ("AAMk-h", None),
    ]
    .into_iter()
    .enumerate()
    {
        let mut i = instance(
            id,
            &format!("2026-01-0{}T09:00:00Z", n + 1),
            &format!("2026-01-0{}T10:00:00Z", n + 1),
        );
        i.web_link = link;
        cases.push(i);
    }
    let links = |got: Vec<StoredInstance>| -> Vec<(String, Option<String>)> {
        got.into_iter()
            .map(|g| (g.instance.exchange_id, g.instance.web_link))
            .collect()
    };
    let want: Vec<(String, Option<String>)> = cases
        .iter()
        .map(|i| (i.exchange_id.clone(), i.web_link.clone()))
        .collect();
    s.apply_changes(
        &lease(s, mb).await,
        &ChangeSet {
            upserts: cases.clone(),
            ..Default::default()
        },
    )
    .await
    .expect("apply");
    let got = s.instances(mb, t(ALL_FROM), t(ALL_TO)).await.expect("read");
    assert_eq!(links(got), want, "live set");
    let one = s
        .instance(mb, "AAMk/a+b=")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(one.instance.web_link, want[0].1);

    s.begin_shadow(&lease(s, mb).await, window())
        .await
        .expect("begin");
    s.apply_shadow(
        &lease(s, mb).await,
        &ChangeSet {
            upserts: cases,
            ..Default::default()
        },
    )
    .await
    .expect("shadow");
    s.commit_shadow(&lease(s, mb).await, &cursor("after-resync"))
        .await
        .expect("commit");
    let got = s.instances(mb, t(ALL_FROM), t(ALL_TO)).await.expect("read");
    assert_eq!(links(got), want, "after a full resync");
}

pub async fn apply_changes_is_atomic(f: &Fixture) {
    let s = &*f.store;
    let mb = mailbox(s).await;
    let a = instance("A", "2026-01-05T09:00:00Z", "2026-01-05T10:00:00Z");
    let b = instance("B", "2026-01-05T11:00:00Z", "2026-01-05T12:00:00Z");
    s.apply_changes(
        &lease(s, mb).await,
        &ChangeSet {
            upserts: vec![a.clone(), b.clone()],
            cursor: Some(cursor("link-1")),
            ..Default::default()
        },
    )
    .await
    .expect("seed");
    let snapshot = s.instances(mb, t(ALL_FROM), t(ALL_TO)).await.expect("read");
    // 1. A constraint violation in the middle of the upserts, after a removal, an update and
    //    an insert have already been executed in the transaction.
    let mut b2 = b.clone();
    b2.subject = Some("changed".into());
    let bad = instance("BAD", "2026-01-05T12:00:00Z", "2026-01-05T11:00:00Z");
    let e = s
        .apply_changes(
            &lease(s, mb).await,
            &ChangeSet {
                removals: vec!["A".into()],
                upserts: vec![
                    b2.clone(),
                    instance("X", "2026-01-06T09:00:00Z", "2026-01-06T10:00:00Z"),
                    bad,
                    instance("Y", "2026-01-07T09:00:00Z", "2026-01-07T10:00:00Z"),
                ],
                masters: vec![SeriesMaster {
                    exchange_id: "M".into(),
                    ical_uid: None,
                    subject: None,
                    location: None,
                    organizer: None,
                    recurrence: None,
                    start: None,
                    end: None,
                    time_zone: None,
                    show_as: None,
                    sensitivity: None,
                    web_link: None,
                    change_key: None,
                    last_modified: None,
                }],
                cursor: Some(cursor("link-2")),
                ..Default::default()
            },
        )
        .await
        .expect_err("end before start");
    assert_eq!(e.kind(), ErrorKind::InvalidData, "{e}");
    assert!(e.to_string().contains("BAD"), "names the instance: {e}");
    assert_unchanged(s, mb, &snapshot, "bad instance").await;

    // 2. Everything valid but the cursor, written last.
    let mut bad_cursor = cursor("link-3");
    bad_cursor.window_end = t("2025-01-01T00:00:00Z");
    let e = s
        .apply_changes(
            &lease(s, mb).await,
            &ChangeSet {
                removals: vec!["A".into(), "B".into()],
                upserts: vec![instance(
                    "Z",
                    "2026-01-08T09:00:00Z",
                    "2026-01-08T10:00:00Z",
                )],
                cursor: Some(bad_cursor),
                ..Default::default()
            },
        )
        .await
        .expect_err("window end before start");
    assert_eq!(e.kind(), ErrorKind::InvalidData, "{e}");
    assert_unchanged(s, mb, &snapshot, "bad cursor").await;

    // 3. An unknown mailbox.
    let e = s
        .apply_changes(
            &Lease {
                mailbox: MailboxId(987_654),
                token: 1,
                holder: suite_holder(),
                ttl: SignedDuration::from_hours(1),
                acquired_at: Timestamp::now(),
            },
            &ChangeSet {
                upserts: vec![instance(
                    "Q",
                    "2026-01-08T09:00:00Z",
                    "2026-01-08T10:00:00Z",
                )],
                ..Default::default()
            },
        )
        .await
        .expect_err("unknown mailbox");
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert_unchanged(s, mb, &snapshot, "unknown mailbox").await;

    // The same set without the bad instance lands whole.
    s.apply_changes(
        &lease(s, mb).await,
        &ChangeSet {
            removals: vec!["A".into()],
            upserts: vec![
                b2,
                instance("X", "2026-01-06T09:00:00Z", "2026-01-06T10:00:00Z"),
            ],
            cursor: Some(cursor("link-2")),
            ..Default::default()
        },
    )
    .await
    .expect("valid set");
    assert_eq!(ids(s, mb).await, set(&["B", "X"]));
    assert_eq!(
        s.cursor(mb).await.expect("c").expect("c").delta_link,
        "link-2"
    );
}

async fn assert_unchanged(s: &dyn Store, mb: MailboxId, snapshot: &[StoredInstance], label: &str) {
    let now = s.instances(mb, t(ALL_FROM), t(ALL_TO)).await.expect("read");
    assert_eq!(now, snapshot, "{label}: instances unchanged");
    assert_eq!(
        s.cursor(mb)
            .await
            .expect("cursor")
            .map(|c| c.delta_link)
            .as_deref(),
        Some("link-1"),
        "{label}: cursor unchanged"
    );
    assert!(
        s.series_masters(mb).await.expect("masters").is_empty(),
        "{label}"
    );
}

pub async fn shadow_resync_swaps_atomically(f: &Fixture) {
    let s = f.store.clone();
    let mb = mailbox(&*s).await;
    let old = ["A", "B", "C"];
    s.apply_changes(
        &lease(&*s, mb).await,
        &ChangeSet {
            upserts: old
                .iter()
                .enumerate()
                .map(|(n, id)| {
                    instance(
                        id,
                        &format!("2026-01-0{}T09:00:00Z", n + 1),
                        &format!("2026-01-0{}T10:00:00Z", n + 1),
                    )
                })
                .collect(),
            cursor: Some(cursor("old-link")),
            ..Default::default()
        },
    )
    .await
    .expect("seed");
    let b_id = s.instance(mb, "B").await.expect("get").expect("B").id;
    let old_set = set(&old);
    let new_set = set(&["B", "C", "D"]);
    assert!(s.shadow(mb).await.expect("shadow").is_none());

    // A reader polls throughout; every read must be exactly the old or exactly the new set.
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (s, done) = (s.clone(), done.clone());
        let (old_set, new_set) = (old_set.clone(), new_set.clone());
        tokio::spawn(async move {
            let mut reads = 0u32;
            let mut saw_new = false;
            loop {
                let finished = done.load(Ordering::SeqCst);
                let now = ids(&*s, mb).await;
                assert!(now == old_set || now == new_set, "torn read: {now:?}");
                assert!(!(saw_new && now == old_set), "went back to the old set");
                saw_new |= now == new_set;
                reads += 1;
                if finished {
                    return (reads, saw_new);
                }
                tokio::task::yield_now().await;
            }
        })
    };

    let window = Window {
        start: t("2026-01-01T00:00:00Z"),
        end: t("2026-02-01T00:00:00Z"),
    };
    s.begin_shadow(&lease(&*s, mb).await, window)
        .await
        .expect("begin");
    let mut c2 = instance("C", "2026-01-03T09:00:00Z", "2026-01-03T11:00:00Z");
    c2.subject = Some("C moved".into());
    for (n, chunk) in [
        vec![instance(
            "B",
            "2026-01-02T09:00:00Z",
            "2026-01-02T10:00:00Z",
        )],
        vec![c2],
        vec![
            instance("D", "2026-01-04T09:00:00Z", "2026-01-04T10:00:00Z"),
            instance("E", "2026-01-05T09:00:00Z", "2026-01-05T10:00:00Z"),
        ],
    ]
    .into_iter()
    .enumerate()
    {
        s.apply_shadow(
            &lease(&*s, mb).await,
            &ChangeSet {
                upserts: chunk,
                cursor: Some(cursor(&format!("next-{n}"))),
                ..Default::default()
            },
        )
        .await
        .expect("apply shadow");
        assert_eq!(ids(&*s, mb).await, old_set, "readers see the old set");
        tokio::task::yield_now().await;
    }
    // Removals in the shadow set affect the shadow set only.
    s.apply_shadow(
        &lease(&*s, mb).await,
        &ChangeSet {
            removals: vec!["E".into(), "A".into()],
            ..Default::default()
        },
    )
    .await
    .expect("shadow removal");
    assert_eq!(ids(&*s, mb).await, old_set);
    let st = s.shadow(mb).await.expect("shadow").expect("in progress");
    assert_eq!(st.window, window);
    assert_eq!(st.instances, 3);
    assert_eq!(st.progress_link.as_deref(), Some("next-2"));
    assert_eq!(
        s.cursor(mb).await.expect("c").expect("c").delta_link,
        "old-link"
    );
    assert!(
        s.status(mb)
            .await
            .expect("status")
            .expect("row")
            .resync_in_progress
    );

    s.commit_shadow(&lease(&*s, mb).await, &cursor("new-link"))
        .await
        .expect("commit");
    done.store(true, Ordering::SeqCst);
    let (reads, saw_new) = reader.await.expect("reader");
    assert!(reads >= 2 && saw_new, "reader ran ({reads} reads)");

    assert_eq!(ids(&*s, mb).await, new_set, "exactly the new set");
    let c = s.instance(mb, "C").await.expect("get").expect("C");
    assert_eq!(c.instance.subject.as_deref(), Some("C moved"));
    assert_eq!(
        s.instance(mb, "B").await.expect("get").expect("B").id,
        b_id,
        "ids kept"
    );
    assert_eq!(
        s.cursor(mb).await.expect("c").expect("c").delta_link,
        "new-link"
    );
    assert!(s.shadow(mb).await.expect("shadow").is_none());
    assert!(
        !s.status(mb)
            .await
            .expect("status")
            .expect("row")
            .resync_in_progress
    );

    // Without a shadow in progress, shadow writes are refused and change nothing.
    let e = s
        .apply_shadow(&lease(&*s, mb).await, &ChangeSet::default())
        .await
        .expect_err("no shadow");
    assert_eq!(e.kind(), ErrorKind::NotFound);
    let e = s
        .commit_shadow(&lease(&*s, mb).await, &cursor("x"))
        .await
        .expect_err("no shadow");
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert_eq!(ids(&*s, mb).await, new_set);
}

pub async fn abort_shadow_keeps_the_live_set(f: &Fixture) {
    let s = &*f.store;
    let mb = mailbox(s).await;
    s.apply_changes(
        &lease(s, mb).await,
        &ChangeSet {
            upserts: vec![instance(
                "A",
                "2026-01-05T09:00:00Z",
                "2026-01-05T10:00:00Z",
            )],
            cursor: Some(cursor("live")),
            ..Default::default()
        },
    )
    .await
    .expect("seed");
    let window = Window {
        start: t("2026-01-01T00:00:00Z"),
        end: t("2026-02-01T00:00:00Z"),
    };
    s.begin_shadow(&lease(s, mb).await, window)
        .await
        .expect("begin");
    s.apply_shadow(
        &lease(s, mb).await,
        &ChangeSet {
            upserts: vec![instance(
                "Z",
                "2026-01-05T09:00:00Z",
                "2026-01-05T10:00:00Z",
            )],
            ..Default::default()
        },
    )
    .await
    .expect("shadow");
    // Restarting discards the previous shadow set.
    s.begin_shadow(&lease(s, mb).await, window)
        .await
        .expect("restart");
    assert_eq!(s.shadow(mb).await.expect("s").expect("s").instances, 0);
    s.apply_shadow(
        &lease(s, mb).await,
        &ChangeSet {
            upserts: vec![instance(
                "Y",
                "2026-01-05T09:00:00Z",
                "2026-01-05T10:00:00Z",
            )],
            ..Default::default()
        },
    )
    .await
    .expect("shadow");
    assert!(s.abort_shadow(&lease(s, mb).await).await.expect("abort"));
    assert!(
        !s.abort_shadow(&lease(s, mb).await)
            .await
            .expect("abort again")
    );
    assert_eq!(ids(s, mb).await, set(&["A"]));
    assert_eq!(
        s.cursor(mb).await.expect("c").expect("c").delta_link,
        "live"
    );
    // A bad window is refused.
    let e = s
        .begin_shadow(
            &lease(s, mb).await,
            Window {
                start: window.end,
                end: window.start,
            },
        )
        .await
        .expect_err("bad window");
    assert_eq!(e.kind(), ErrorKind::InvalidData);
    assert!(s.shadow(mb).await.expect("s").is_none());
}

pub async fn overlap_query_edges(f: &Fixture) {
    let s = &*f.store;
    let mb = mailbox(s).await;
    let other = mailbox_named(s, "b@contoso.com").await;
    let (from, to) = ("2026-01-05T10:00:00Z", "2026-01-05T11:00:00Z");
    let cases = [
        (
            "ends-at-from",
            "2026-01-05T09:00:00Z",
            "2026-01-05T10:00:00Z",
            false,
        ),
        (
            "ends-just-after-from",
            "2026-01-05T09:00:00Z",
            "2026-01-05T10:00:00.000001Z",
            true,
        ),
        (
            "zero-at-from",
            "2026-01-05T10:00:00Z",
            "2026-01-05T10:00:00Z",
            true,
        ),
        (
            "zero-inside",
            "2026-01-05T10:30:00Z",
            "2026-01-05T10:30:00Z",
            true,
        ),
        (
            "zero-at-to",
            "2026-01-05T11:00:00Z",
            "2026-01-05T11:00:00Z",
            false,
        ),
        (
            "starts-at-to",
            "2026-01-05T11:00:00Z",
            "2026-01-05T12:00:00Z",
            false,
        ),
        (
            "starts-just-before-to",
            "2026-01-05T10:59:59.999999Z",
            "2026-01-05T12:00:00Z",
            true,
        ),
        (
            "spans",
            "2026-01-04T00:00:00Z",
            "2026-01-06T00:00:00Z",
            true,
        ),
        (
            "inside",
            "2026-01-05T10:15:00Z",
            "2026-01-05T10:45:00Z",
            true,
        ),
        (
            "before",
            "2026-01-05T08:00:00Z",
            "2026-01-05T09:00:00Z",
            false,
        ),
        (
            "after",
            "2026-01-05T12:00:00Z",
            "2026-01-05T13:00:00Z",
            false,
        ),
        (
            "exact",
            "2026-01-05T10:00:00Z",
            "2026-01-05T11:00:00Z",
            true,
        ),
    ];
    let upserts: Vec<Instance> = cases
        .iter()
        .map(|(id, a, b, _)| instance(id, a, b))
        .collect();
    s.apply_changes(
        &lease(s, mb).await,
        &ChangeSet {
            upserts: upserts.clone(),
            ..Default::default()
        },
    )
    .await
    .expect("seed");
    // The other mailbox's instance must never show up.
    s.apply_changes(
        &lease(s, other).await,
        &ChangeSet {
            upserts: vec![instance(
                "inside",
                "2026-01-05T10:15:00Z",
                "2026-01-05T10:45:00Z",
            )],
            ..Default::default()
        },
    )
    .await
    .expect("other");

    let got = s.instances(mb, t(from), t(to)).await.expect("query");
    let got_ids: Vec<_> = got
        .iter()
        .map(|i| i.instance.exchange_id.as_str())
        .collect();
    for (id, _, _, expected) in cases {
        assert_eq!(got_ids.contains(&id), expected, "{id}");
    }
    // Agrees with calgate-core's definition, instance by instance.
    for i in &upserts {
        assert_eq!(
            got_ids.contains(&i.exchange_id.as_str()),
            i.overlaps(t(from), t(to)),
            "{}",
            i.exchange_id
        );
    }
    assert!(
        got.iter()
            .all(|i| i.mailbox_id == mb && i.instance.mailbox == "a@contoso.com")
    );
    // Ordered by start, ties by exchange id.
    let starts: Vec<_> = got
        .iter()
        .map(|i| (i.instance.when.start, i.instance.exchange_id.clone()))
        .collect();
    let mut sorted = starts.clone();
    sorted.sort();
    assert_eq!(starts, sorted);
    assert_eq!(got_ids[0], "spans");
    // A point query [from, from) finds what spans that instant, as calgate-core defines it.
    let point: BTreeSet<String> = s
        .instances(mb, t(from), t(from))
        .await
        .expect("q")
        .into_iter()
        .map(|i| i.instance.exchange_id)
        .collect();
    let expected: BTreeSet<String> = upserts
        .iter()
        .filter(|i| i.overlaps(t(from), t(from)))
        .map(|i| i.exchange_id.clone())
        .collect();
    assert_eq!(point, expected);
    assert_eq!(point, set(&["ends-just-after-from", "spans"]));
    // A window in the far future finds nothing.
    assert!(
        s.instances(mb, t("2030-01-01T00:00:00Z"), t("2031-01-01T00:00:00Z"))
            .await
            .expect("q")
            .is_empty()
    );
}

pub async fn cursor_round_trip(f: &Fixture) {
    let s = &*f.store;
    let mb = mailbox(s).await;
    assert!(s.cursor(mb).await.expect("c").is_none());
    let c1 = Cursor {
        delta_link:
            "https://graph.microsoft.com/v1.0/users/a/calendarView/delta?$deltatoken=abc%3D%3D&x=1"
                .into(),
        window_start: t("2025-12-06T00:00:00Z"),
        window_end: t("2027-01-05T00:00:00Z"),
        rebased_at: t("2026-01-05T03:00:00.654321Z"),
    };
    s.apply_changes(
        &lease(s, mb).await,
        &ChangeSet {
            cursor: Some(c1.clone()),
            ..Default::default()
        },
    )
    .await
    .expect("store");
    assert_eq!(s.cursor(mb).await.expect("c"), Some(c1.clone()));
    let mut c2 = c1.clone();
    c2.delta_link.push_str("&2");
    c2.rebased_at = t("2026-01-06T03:00:00Z");
    s.apply_changes(
        &lease(s, mb).await,
        &ChangeSet {
            cursor: Some(c2.clone()),
            ..Default::default()
        },
    )
    .await
    .expect("replace");
    assert_eq!(s.cursor(mb).await.expect("c"), Some(c2));
    assert!(s.clear_cursor(mb).await.expect("clear"));
    assert!(!s.clear_cursor(mb).await.expect("clear again"));
    assert!(s.cursor(mb).await.expect("c").is_none());
}

pub async fn status_round_trip(f: &Fixture) {
    let s = &*f.store;
    let mb = mailbox(s).await;
    let other = mailbox_named(s, "b@contoso.com").await;
    let st = s.statuses().await.expect("statuses");
    assert_eq!(st.len(), 2, "never-attempted mailboxes are listed");
    assert!(
        st.iter()
            .all(|x| x.last_attempt.is_none() && x.counters == SyncCounters::default())
    );

    let counters = SyncCounters {
        rounds: 1,
        requests: 7,
        throttled: 2,
        upserts: 40,
        removals: 3,
        full_resyncs: 1,
    };
    s.record_status(
        mb,
        &SyncStatusUpdate {
            attempted_at: t("2026-01-05T10:00:00Z"),
            outcome: SyncOutcome::Success,
            next_action: Some("incremental".into()),
            next_run_at: Some(t("2026-01-05T10:05:00Z")),
            lag: Some(SignedDuration::from_millis(1500)),
            counters,
        },
    )
    .await
    .expect("success");
    let fail = |at: &str| SyncStatusUpdate {
        attempted_at: t(at),
        outcome: SyncOutcome::Failure {
            kind: calgate_core::FailureKind::Authentication,
            message: "the client secret has expired (AADSTS7000222): add a new secret".into(),
        },
        next_action: Some("retry".into()),
        next_run_at: None,
        lag: Some(SignedDuration::from_secs(600)),
        counters: SyncCounters {
            requests: 1,
            ..Default::default()
        },
    };
    s.record_status(mb, &fail("2026-01-05T10:05:00Z"))
        .await
        .expect("fail 1");
    s.record_status(mb, &fail("2026-01-05T10:10:00Z"))
        .await
        .expect("fail 2");
    let x = s.status(mb).await.expect("status").expect("row");
    assert_eq!(x.address, "a@contoso.com");
    assert_eq!(x.connection, "c");
    assert_eq!(x.last_attempt, Some(t("2026-01-05T10:10:00Z")));
    assert_eq!(
        x.last_success,
        Some(t("2026-01-05T10:00:00Z")),
        "kept across failures"
    );
    let err = x.last_error.expect("error");
    assert_eq!(err.kind, calgate_core::FailureKind::Authentication);
    assert!(err.message.contains("AADSTS7000222"));
    assert_eq!(err.at, t("2026-01-05T10:10:00Z"));
    assert_eq!(x.consecutive_failures, 2);
    assert_eq!(x.next_action.as_deref(), Some("retry"));
    assert_eq!(x.next_run_at, None);
    assert_eq!(x.lag, Some(SignedDuration::from_secs(600)));
    assert_eq!(x.counters.requests, 9, "totals accumulate");
    assert_eq!(x.counters.upserts, 40);

    s.record_status(
        mb,
        &SyncStatusUpdate {
            attempted_at: t("2026-01-05T10:15:00Z"),
            outcome: SyncOutcome::Success,
            next_action: None,
            next_run_at: None,
            lag: None,
            counters,
        },
    )
    .await
    .expect("success again");
    let x = s.status(mb).await.expect("status").expect("row");
    assert_eq!(x.last_success, Some(t("2026-01-05T10:15:00Z")));
    assert!(x.last_error.is_none(), "a success clears the error");
    assert_eq!(x.consecutive_failures, 0);
    assert_eq!(x.counters.rounds, 2);
    assert_eq!(x.counters.full_resyncs, 2);
    assert_eq!(x.counters.throttled, 4);

    let all = s.statuses().await.expect("statuses");
    assert_eq!(
        all.iter().map(|x| x.mailbox_id).collect::<Vec<_>>(),
        vec![mb, other]
    );
    assert!(all[1].last_attempt.is_none());
    let e = s
        .record_status(MailboxId(424_242), &fail("2026-01-05T10:10:00Z"))
        .await
        .expect_err("unknown mailbox");
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(
        s.status(MailboxId(424_242))
            .await
            .expect("status")
            .is_none()
    );
}

pub async fn unlink_deletes_everything_of_the_mailbox(f: &Fixture) {
    let s = &*f.store;
    let mb = mailbox(s).await;
    let keep = mailbox_named(s, "b@contoso.com").await;
    for m in [mb, keep] {
        s.apply_changes(
            &lease(s, m).await,
            &ChangeSet {
                upserts: vec![instance(
                    "A",
                    "2026-01-05T09:00:00Z",
                    "2026-01-05T10:00:00Z",
                )],
                cursor: Some(cursor("l")),
                ..Default::default()
            },
        )
        .await
        .expect("seed");
        s.record_status(
            m,
            &SyncStatusUpdate {
                attempted_at: t("2026-01-05T10:00:00Z"),
                outcome: SyncOutcome::Success,
                next_action: None,
                next_run_at: None,
                lag: None,
                counters: SyncCounters::default(),
            },
        )
        .await
        .expect("status");
    }
    s.begin_shadow(
        &lease(s, mb).await,
        Window {
            start: t("2026-01-01T00:00:00Z"),
            end: t("2026-02-01T00:00:00Z"),
        },
    )
    .await
    .expect("shadow");
    assert!(s.unlink_mailbox("a@contoso.com").await.expect("unlink"));
    assert_eq!(s.count_instances(mb).await.expect("count"), 0);
    assert!(s.cursor(mb).await.expect("cursor").is_none());
    assert!(s.shadow(mb).await.expect("shadow").is_none());
    assert!(s.status(mb).await.expect("status").is_none());
    assert_eq!(
        s.count_instances(keep).await.expect("count"),
        1,
        "others untouched"
    );
    assert!(s.cursor(keep).await.expect("cursor").is_some());
    assert_eq!(s.statuses().await.expect("statuses").len(), 1);
}

pub async fn concurrent_writers(f: &Fixture) {
    const TASKS: usize = 8;
    const ROUNDS: usize = 15;
    const PER_ROUND: usize = 4;
    // Two independent handles (two pools, as two processes would have) on one database.
    let second = open_with(
        &f.location,
        OpenOptions {
            master_key: Some(f.key.clone()),
            ..Default::default()
        },
    )
    .await
    .expect("second handle");
    let stores = [f.store.clone(), second];
    let mut mailboxes = Vec::new();
    for n in 0..3 {
        mailboxes.push(mailbox_named(&*f.store, &format!("m{n}@contoso.com")).await);
    }
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let s = stores[task % 2].clone();
        let mb = mailboxes[task % mailboxes.len()];
        tasks.push(tokio::spawn(async move {
            for round in 0..ROUNDS {
                let upserts = (0..PER_ROUND)
                    .map(|k| {
                        instance(
                            &format!("t{task}-r{round}-{k}"),
                            "2026-01-05T09:00:00Z",
                            "2026-01-05T10:00:00Z",
                        )
                    })
                    .collect();
                s.apply_changes(
                    &lease(&*s, mb).await,
                    &ChangeSet {
                        upserts,
                        cursor: Some(cursor(&format!("t{task}-r{round}"))),
                        ..Default::default()
                    },
                )
                .await
                .expect("concurrent write");
                s.record_status(
                    mb,
                    &SyncStatusUpdate {
                        attempted_at: Timestamp::now(),
                        outcome: SyncOutcome::Success,
                        next_action: None,
                        next_run_at: None,
                        lag: None,
                        counters: SyncCounters {
                            upserts: PER_ROUND as u64,
                            ..Default::default()
                        },
                    },
                )
                .await
                .expect("concurrent status");
                // Readers run alongside.
                s.instances(mb, t(ALL_FROM), t(ALL_TO)).await.expect("read");
            }
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    let mut total = 0;
    for (n, mb) in mailboxes.iter().enumerate() {
        let writers = (0..TASKS).filter(|t| t % mailboxes.len() == n).count();
        let count = stores[1].count_instances(*mb).await.expect("count");
        assert_eq!(count as usize, writers * ROUNDS * PER_ROUND, "mailbox {n}");
        let st = stores[0].status(*mb).await.expect("status").expect("row");
        assert_eq!(st.counters.upserts as usize, writers * ROUNDS * PER_ROUND);
        total += count;
    }
    assert_eq!(total as usize, TASKS * ROUNDS * PER_ROUND);
}

/// Connected accounts: stored with the refresh token sealed, replaced on reconnect (same id),
/// refreshed, marked "reconnect needed", forgotten (mailboxes stay linked), removed with their
/// connection.
pub async fn accounts_sealed_refreshed_marked_and_forgotten(f: &Fixture) {
    let s = f.store.as_ref();
    s.add_connection(&new_connection(
        "jadu",
        vec![NewCredential::secret("x", None)],
    ))
    .await
    .expect("connection");
    let new = |upn: &str, rt: &str| NewAccount {
        connection: "jadu".into(),
        upn: upn.into(),
        mail: Some("Adele.V@contoso.example".into()),
        display_name: Some("Adele Vance".into()),
        user_id: Some("oid-1".into()),
        refresh_token: SecretString::new(rt),
        scopes: "https://graph.microsoft.com/Calendars.ReadWrite offline_access".into(),
        endpoint: AccountEndpoint::V2,
    };
    let id = s
        .save_account(&new("Adele@Contoso.example", "rt-1"))
        .await
        .expect("save");
    let a = s.account(id).await.expect("read").expect("exists");
    assert_eq!(a.refresh_token.expose(), "rt-1");
    assert_eq!(a.connection, "jadu");
    assert_eq!(a.state, AccountState::Ok);
    assert_eq!(a.endpoint, AccountEndpoint::V2);
    assert!(a.owns("adele@contoso.example") && a.owns("ADELE.V@contoso.example"));
    assert!(!a.owns("other@contoso.example"));
    assert!(!format!("{a:?}").contains("rt-1"));
    // Unknown connection, empty refresh token.
    let mut bad = new("x@contoso.example", "rt");
    bad.connection = "nope".into();
    assert_eq!(
        s.save_account(&bad).await.expect_err("unknown").kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        s.save_account(&new("x@contoso.example", ""))
            .await
            .expect_err("empty")
            .kind(),
        ErrorKind::InvalidData
    );
    // Refresh: the new token replaces the old one.
    let later = t("2030-01-01T00:00:00Z");
    assert!(
        s.store_refresh_token(id, &SecretString::new("rt-2"), later)
            .await
            .expect("store")
    );
    let a = s.account(id).await.expect("read").expect("exists");
    assert_eq!(a.refresh_token.expose(), "rt-2");
    assert_eq!(a.refreshed_at, later);
    // Reconnect needed, then a reconnect (same UPN, any case) keeps the id and resets the state.
    assert!(
        s.set_account_state(
            id,
            AccountState::ReconnectNeeded,
            Some("must sign in again"),
            later
        )
        .await
        .expect("state")
    );
    let a = s.account(id).await.expect("read").expect("exists");
    assert_eq!(a.state, AccountState::ReconnectNeeded);
    assert_eq!(a.state_message.as_deref(), Some("must sign in again"));
    let again = s
        .save_account(&new("adele@contoso.example", "rt-3"))
        .await
        .expect("save");
    assert_eq!(again, id);
    let a = s.account(id).await.expect("read").expect("exists");
    assert_eq!(
        (a.state, a.refresh_token.expose()),
        (AccountState::Ok, "rt-3")
    );
    assert!(a.state_message.is_none());
    assert_eq!(s.list_accounts().await.expect("list").len(), 1);
    // Forget by mail (case-insensitive); a linked mailbox stays.
    mailbox_named(s, "adele@contoso.example").await;
    assert_eq!(
        s.remove_accounts("adele.v@CONTOSO.example", None)
            .await
            .expect("rm"),
        1
    );
    assert!(s.list_accounts().await.expect("list").is_empty());
    assert!(s.account(id).await.expect("read").is_none());
    assert!(
        !s.store_refresh_token(id, &SecretString::new("rt-4"), later)
            .await
            .expect("gone")
    );
    assert!(
        s.mailbox("adele@contoso.example")
            .await
            .expect("mb")
            .is_some()
    );
    assert_eq!(
        s.remove_accounts("adele@contoso.example", None)
            .await
            .expect("rm"),
        0
    );
    // Removing the connection forgets its accounts.
    s.save_account(&new("b@contoso.example", "rt-b"))
        .await
        .expect("save");
    for m in s.list_mailboxes().await.expect("list") {
        s.unlink_mailbox(&m.address).await.expect("unlink");
    }
    assert!(s.remove_connection("jadu").await.expect("remove"));
    assert!(s.list_accounts().await.expect("list").is_empty());
}

fn detailed(id: &str, sensitivity: Sensitivity) -> Instance {
    let mut i = instance(id, "2026-01-05T09:00:00Z", "2026-01-05T10:00:00Z");
    i.sensitivity = sensitivity;
    i.subject = Some(format!("Secret subject {id}"));
    i.location = Some("Boardroom".into());
    i.body_preview = Some("body".into());
    i.organizer = Some(Person {
        name: "Org".into(),
        address: "org@contoso.com".into(),
    });
    i.attendees = vec![Person {
        name: "Att".into(),
        address: "att@contoso.com".into(),
    }];
    i
}

fn master(id: &str, sensitivity: Sensitivity) -> SeriesMaster {
    SeriesMaster {
        exchange_id: id.into(),
        ical_uid: None,
        subject: Some("Series subject".into()),
        location: Some("Series room".into()),
        organizer: Some(Person {
            name: "Org".into(),
            address: "org@contoso.com".into(),
        }),
        recurrence: None,
        start: None,
        end: None,
        time_zone: None,
        show_as: Some(ShowAs::Busy),
        sensitivity: Some(sensitivity),
        web_link: None,
        change_key: None,
        last_modified: None,
    }
}

fn has_details(i: &Instance) -> bool {
    i.subject.is_some()
        || i.location.is_some()
        || i.body_preview.is_some()
        || i.organizer.is_some()
        || !i.attendees.is_empty()
}

/// Linking again changes only what is given: a room linked busy-only keeps its kind, privacy
/// and external id when re-linked without them.
pub async fn relink_keeps_settings_not_given(f: &Fixture) {
    let s = &*f.store;
    s.add_connection(&new_connection("c", vec![]))
        .await
        .expect("add");
    let mut first = NewMailbox::new(
        "room@contoso.com",
        "c",
        MailboxKind::Room,
        PrivacyPolicy::BusyOnly,
    );
    first.external_id = Some("R-1".into());
    let id = s.link_mailbox(&first).await.expect("link");
    let bare = NewMailbox {
        address: "ROOM@contoso.com".into(),
        connection: "c".into(),
        kind: None,
        external_id: None,
        privacy: None,
    };
    assert_eq!(s.link_mailbox(&bare).await.expect("relink"), id);
    let m = s
        .mailbox("room@contoso.com")
        .await
        .expect("get")
        .expect("m");
    assert_eq!(m.kind, MailboxKind::Room);
    assert_eq!(m.privacy, PrivacyPolicy::BusyOnly);
    assert_eq!(m.external_id.as_deref(), Some("R-1"));
    assert_eq!(m.pending_resync, None);
    // A new mailbox without settings gets the defaults.
    s.link_mailbox(&NewMailbox {
        address: "new@contoso.com".into(),
        ..bare.clone()
    })
    .await
    .expect("link new");
    let n = s.mailbox("new@contoso.com").await.expect("get").expect("n");
    assert_eq!(
        (n.kind, n.privacy, n.external_id),
        (MailboxKind::User, PrivacyPolicy::Full, None)
    );
    // An explicit empty external id clears it; explicit settings change.
    s.link_mailbox(&NewMailbox {
        external_id: Some(String::new()),
        kind: Some(MailboxKind::Equipment),
        ..bare.clone()
    })
    .await
    .expect("clear");
    let m = s
        .mailbox("room@contoso.com")
        .await
        .expect("get")
        .expect("m");
    assert_eq!(m.external_id, None);
    assert_eq!(m.kind, MailboxKind::Equipment);
    assert_eq!(m.privacy, PrivacyPolicy::BusyOnly);
    // A malformed address is refused with a printable message.
    let e = s
        .link_mailbox(&NewMailbox {
            address: "a\u{1b}[2J/b@contoso.com".into(),
            ..bare
        })
        .await
        .expect_err("bad address");
    assert_eq!(e.kind(), ErrorKind::InvalidData);
    assert!(!e.to_string().contains('\u{1b}'), "{e}");
}

/// Busy-only stores no subject, location, body, organizer or attendees (nor series details);
/// `full` does not store private and confidential items' details. Narrowing a policy scrubs
/// what is stored at once; widening asks for a full resync, which a resync begun afterwards
/// satisfies.
pub async fn privacy_is_applied_when_writing_and_when_it_changes(f: &Fixture) {
    let s = &*f.store;
    let mb = mailbox(s).await;
    let busy = s
        .link_mailbox(&NewMailbox::new(
            "room@contoso.com",
            "c",
            MailboxKind::Room,
            PrivacyPolicy::BusyOnly,
        ))
        .await
        .expect("room");
    for m in [mb, busy] {
        s.apply_changes(
            &lease(s, m).await,
            &ChangeSet {
                upserts: vec![
                    detailed("N", Sensitivity::Normal),
                    detailed("P", Sensitivity::Private),
                ],
                masters: vec![master("M", Sensitivity::Normal)],
                ..Default::default()
            },
        )
        .await
        .expect("apply");
    }
    let stored = |m| async move {
        s.instances(m, t(ALL_FROM), t(ALL_TO))
            .await
            .expect("read")
            .into_iter()
            .map(|i| (i.instance.exchange_id.clone(), has_details(&i.instance)))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        stored(mb).await,
        vec![("N".to_owned(), true), ("P".to_owned(), false)],
        "full: private details not stored"
    );
    assert_eq!(
        stored(busy).await,
        vec![("N".to_owned(), false), ("P".to_owned(), false)],
        "busy-only: no details at all"
    );
    let masters = s.series_masters(busy).await.expect("masters");
    assert!(masters[0].subject.is_none() && masters[0].organizer.is_none());
    assert!(s.series_masters(mb).await.expect("m")[0].subject.is_some());
    // Times and busy status survive.
    let one = s.instance(busy, "N").await.expect("get").expect("N");
    assert_eq!(one.instance.show_as, ShowAs::Busy);
    assert_eq!(one.instance.when.start, t("2026-01-05T09:00:00Z"));

    // Narrowing full → busy-only scrubs now; nothing pending.
    let relink = |privacy| NewMailbox {
        address: "a@contoso.com".into(),
        connection: "c".into(),
        kind: None,
        external_id: None,
        privacy: Some(privacy),
    };
    s.link_mailbox(&relink(PrivacyPolicy::BusyOnly))
        .await
        .expect("narrow");
    assert_eq!(
        stored(mb).await,
        vec![("N".to_owned(), false), ("P".to_owned(), false)]
    );
    assert!(s.series_masters(mb).await.expect("m")[0].subject.is_none());
    let m = s.mailbox("a@contoso.com").await.expect("get").expect("m");
    assert_eq!(m.pending_resync, None);

    // Widening asks for a full resync; a resync begun before the request does not clear it.
    let l = lease(s, mb).await;
    s.begin_shadow(&l, window()).await.expect("early resync");
    s.link_mailbox(&relink(PrivacyPolicy::Full))
        .await
        .expect("widen");
    let m = s.mailbox("a@contoso.com").await.expect("get").expect("m");
    let why = m.pending_resync.expect("pending");
    assert!(why.contains("busy-only") && why.contains("full"), "{why}");
    s.commit_shadow(&l, &cursor("early")).await.expect("commit");
    assert!(
        s.mailbox("a@contoso.com")
            .await
            .expect("get")
            .expect("m")
            .pending_resync
            .is_some(),
        "the early resync did not fetch the details"
    );
    s.begin_shadow(&l, window()).await.expect("resync");
    s.apply_shadow(
        &l,
        &ChangeSet {
            upserts: vec![detailed("N", Sensitivity::Normal)],
            ..Default::default()
        },
    )
    .await
    .expect("shadow");
    s.commit_shadow(&l, &cursor("late")).await.expect("commit");
    let m = s.mailbox("a@contoso.com").await.expect("get").expect("m");
    assert_eq!(m.pending_resync, None);
    assert_eq!(stored(mb).await, vec![("N".to_owned(), true)]);
}

fn window() -> Window {
    Window {
        start: t("2026-01-01T00:00:00Z"),
        end: t("2027-01-01T00:00:00Z"),
    }
}

fn holder(id: &str) -> LeaseHolder {
    LeaseHolder {
        id: id.into(),
        pid: 4242,
        host: "other-host".into(),
    }
}

/// A round's end: its status and the release of its lease together; without a status (the
/// round lost its lease) only the release; a stale lease releases nothing and records nothing.
pub async fn finish_round_records_the_status_and_releases_the_lease(f: &Fixture) {
    let s = &*f.store;
    let mb = mailbox(s).await;
    let minute = SignedDuration::from_mins(1);
    let ok = |at: &str| SyncStatusUpdate {
        attempted_at: t(at),
        outcome: SyncOutcome::Success,
        next_action: Some("incremental".into()),
        next_run_at: None,
        lag: None,
        counters: SyncCounters {
            rounds: 1,
            requests: 3,
            ..Default::default()
        },
    };
    let LeaseGrant::Acquired(la) = grant(s, mb, &holder("A"), minute).await else {
        panic!("A gets it")
    };
    assert!(
        s.finish_round(mb, Some(&ok("2026-01-05T10:00:00Z")), &la)
            .await
            .expect("finish")
    );
    assert!(s.leases().await.expect("leases").is_empty(), "released");
    let st = &s
        .sync_state("a@contoso.com")
        .await
        .expect("state")
        .expect("linked")
        .status;
    assert_eq!(st.last_success, Some(t("2026-01-05T10:00:00Z")));
    assert_eq!(st.counters.requests, 3);
    assert_eq!(
        st.last_round_by,
        Some(holder("A").to_string()),
        "who ran it"
    );
    // No status: the lease only.
    let LeaseGrant::Acquired(lb) = grant(s, mb, &holder("B"), minute).await else {
        panic!("free after finish_round")
    };
    assert!(s.finish_round(mb, None, &lb).await.expect("finish"));
    let st = &s
        .sync_state("A@Contoso.com")
        .await
        .expect("state")
        .expect("linked")
        .status;
    assert_eq!(st.counters.requests, 3, "nothing recorded without a status");
    assert_eq!(
        st.last_round_by,
        Some(holder("A").to_string()),
        "still A's round"
    );
    // A stale lease: nothing released (B's successor keeps it).
    let LeaseGrant::Acquired(lc) = grant(s, mb, &holder("C"), minute).await else {
        panic!("free again")
    };
    assert!(!s.finish_round(mb, None, &lb).await.expect("stale"));
    assert_eq!(
        s.leases().await.expect("leases").len(),
        1,
        "C still holds it"
    );
    assert!(s.release_lease(&lc).await.expect("release"));
}

async fn grant(s: &dyn Store, mb: MailboxId, h: &LeaseHolder, ttl: SignedDuration) -> LeaseGrant {
    s.acquire_lease(mb, h, ttl).await.expect("acquire")
}

/// One holder at a time; the second is told who holds it; tokens grow; a lapsed lease is taken
/// over and the old holder's writes (changes, cursor, renewal) are refused; a released lease is
/// free at once.
pub async fn one_lease_per_mailbox_fences_every_write_of_a_round(f: &Fixture) {
    let s = &*f.store;
    let mb = mailbox(s).await;
    let minute = SignedDuration::from_mins(1);
    let (a, b) = (holder("A"), holder("B"));
    let LeaseGrant::Acquired(la) = grant(s, mb, &a, minute).await else {
        panic!("A gets it")
    };
    let LeaseGrant::Held(info) = grant(s, mb, &b, minute).await else {
        panic!("B is refused")
    };
    assert_eq!(info.holder, a);
    assert_eq!(info.address, "a@contoso.com");
    assert_eq!(info.token, la.token);
    assert!(info.deadline > Timestamp::now());
    assert_eq!(s.leases().await.expect("leases").len(), 1);
    let LeaseGrant::Held(_) = grant(s, mb, &a, minute).await else {
        panic!("not re-entrant: one round at a time, even in one process")
    };
    s.apply_changes(
        &la,
        &ChangeSet {
            upserts: vec![detailed("X", Sensitivity::Normal)],
            ..Default::default()
        },
    )
    .await
    .expect("A writes");
    s.renew_lease(&la).await.expect("renew");
    assert!(s.release_lease(&la).await.expect("release"));
    assert!(s.leases().await.expect("leases").is_empty());
    let LeaseGrant::Acquired(lb) = grant(s, mb, &b, SignedDuration::from_millis(50)).await else {
        panic!("free after release")
    };
    assert!(lb.token > la.token, "fencing tokens grow");
    // A's old lease no longer writes anything.
    let e = s
        .apply_changes(
            &la,
            &ChangeSet {
                removals: vec!["X".into()],
                cursor: Some(cursor("stale")),
                ..Default::default()
            },
        )
        .await
        .expect_err("stale");
    assert_eq!(e.kind(), ErrorKind::LeaseLost);
    assert!(e.to_string().contains("pid 4242 on other-host"), "{e}");
    assert!(s.instance(mb, "X").await.expect("get").is_some());
    assert!(s.cursor(mb).await.expect("cursor").is_none());
    assert_eq!(
        s.renew_lease(&la).await.expect_err("renew").kind(),
        ErrorKind::LeaseLost
    );
    assert!(!s.release_lease(&la).await.expect("release stale"));
    // B's short lease lapses: A takes over, and B's writes are refused.
    tokio::time::sleep(std::time::Duration::from_millis(80)).await;
    let LeaseGrant::Acquired(la2) = grant(s, mb, &a, minute).await else {
        panic!("a lapsed lease is taken over")
    };
    assert!(la2.token > lb.token);
    let e = s
        .apply_changes(&lb, &ChangeSet::default())
        .await
        .expect_err("lapsed");
    assert_eq!(e.kind(), ErrorKind::LeaseLost);
    // Writes extend the lease; unknown mailbox → NotFound.
    s.apply_changes(&la2, &ChangeSet::default())
        .await
        .expect("write");
    assert_eq!(
        s.acquire_lease(MailboxId(987_654), &a, minute)
            .await
            .expect_err("unknown")
            .kind(),
        ErrorKind::NotFound
    );
    // Unlinking takes the lease with it.
    assert!(s.unlink_mailbox("a@contoso.com").await.expect("unlink"));
    assert_eq!(
        s.apply_changes(&la2, &ChangeSet::default())
            .await
            .expect_err("unlinked")
            .kind(),
        ErrorKind::NotFound
    );
}

/// A round cannot write into, swap in, or discard another round's shadow set: the defect of two
/// overlapping `sync --full` (the second `begin_shadow` wiping the first's pages, the first then
/// swapping in an incomplete set) cannot happen.
pub async fn shadow_set_belongs_to_its_round(f: &Fixture) {
    let s = &*f.store;
    let mb = mailbox(s).await;
    let short = SignedDuration::from_millis(50);
    let (a, b) = (holder("A"), holder("B"));
    s.apply_changes(
        &lease(s, mb).await,
        &ChangeSet {
            upserts: vec![detailed("OLD", Sensitivity::Normal)],
            cursor: Some(cursor("old")),
            ..Default::default()
        },
    )
    .await
    .expect("live");
    s.release_lease(&lease(s, mb).await).await.expect("release");
    let LeaseGrant::Acquired(la) = grant(s, mb, &a, short).await else {
        panic!("A")
    };
    s.begin_shadow(&la, window()).await.expect("A begins");
    s.apply_shadow(
        &la,
        &ChangeSet {
            upserts: vec![detailed("A1", Sensitivity::Normal)],
            ..Default::default()
        },
    )
    .await
    .expect("A page");
    assert_eq!(
        s.shadow(mb).await.expect("s").expect("s").lease_token,
        la.token
    );
    tokio::time::sleep(std::time::Duration::from_millis(80)).await;
    let LeaseGrant::Acquired(lb) = grant(s, mb, &b, SignedDuration::from_mins(1)).await else {
        panic!("B takes over the lapsed lease")
    };
    s.begin_shadow(&lb, window()).await.expect("B begins");
    for e in [
        s.apply_shadow(&la, &ChangeSet::default()).await.err(),
        s.commit_shadow(&la, &cursor("A")).await.err(),
        s.abort_shadow(&la).await.err(),
    ] {
        assert_eq!(e.expect("refused").kind(), ErrorKind::LeaseLost);
    }
    assert_eq!(ids(s, mb).await, set(&["OLD"]), "live set untouched");
    s.apply_shadow(
        &lb,
        &ChangeSet {
            upserts: vec![
                detailed("B1", Sensitivity::Normal),
                detailed("B2", Sensitivity::Normal),
            ],
            ..Default::default()
        },
    )
    .await
    .expect("B page");
    s.commit_shadow(&lb, &cursor("B")).await.expect("B commits");
    assert_eq!(ids(s, mb).await, set(&["B1", "B2"]));
    assert_eq!(s.cursor(mb).await.expect("c").expect("c").delta_link, "B");
}

pub async fn integrity_check_of_a_sound_store_finds_nothing(f: &Fixture) {
    let s = &*f.store;
    let mb = mailbox(s).await;
    s.apply_changes(
        &lease(s, mb).await,
        &ChangeSet {
            upserts: vec![detailed("X", Sensitivity::Normal)],
            ..Default::default()
        },
    )
    .await
    .expect("write");
    assert_eq!(
        s.check_integrity().await.expect("check"),
        Vec::<String>::new()
    );
}

/// The change log gets one row per instance created, updated or deleted in the live set, in
/// the same transaction; a replay writes nothing; a committed resync logs its difference.
pub async fn change_log_follows_every_applied_change(f: &Fixture) {
    let s = &*f.store;
    let mb = mailbox(s).await;
    let l = lease(s, mb).await;
    let a = instance("A", "2026-01-05T09:00:00Z", "2026-01-05T10:00:00Z");
    let b = instance("B", "2026-01-06T09:00:00Z", "2026-01-06T10:00:00Z");
    let apply = |c: ChangeSet| async move { s.apply_changes(&lease(s, mb).await, &c).await };
    apply(ChangeSet {
        upserts: vec![a.clone(), b.clone()],
        ..Default::default()
    })
    .await
    .expect("create");
    // A replay of the same versions: nothing logged.
    apply(ChangeSet {
        upserts: vec![a.clone()],
        ..Default::default()
    })
    .await
    .expect("replay");
    let mut a2 = a.clone();
    a2.change_key = Some("ck2".into());
    apply(ChangeSet {
        upserts: vec![a2.clone()],
        removals: vec!["B".into(), "never-there".into()],
        ..Default::default()
    })
    .await
    .expect("update and delete");
    let log = s.changes_after(0, 100).await.expect("log");
    let ops: Vec<(String, ChangeOp)> = log
        .iter()
        .map(|r| {
            let (id, op, _, _) = instance_change(r);
            (id.to_owned(), op)
        })
        .collect();
    assert_eq!(
        ops,
        vec![
            ("A".to_owned(), ChangeOp::Created),
            ("B".to_owned(), ChangeOp::Created),
            ("B".to_owned(), ChangeOp::Deleted),
            ("A".to_owned(), ChangeOp::Updated),
        ]
    );
    assert!(log.windows(2).all(|w| w[0].seq < w[1].seq));
    assert!(
        log.iter()
            .all(|r| r.address.as_deref() == Some("a@contoso.com") && r.mailbox == Some(mb))
    );
    assert_eq!(log[0].event_type(), "event.created");
    assert_eq!(log[2].event_type(), "event.deleted");
    assert_eq!(log[3].event_type(), "event.updated");
    // An event's history, by its window and by its Exchange id, newest first.
    let of_window = s
        .changes_of(mb, t("2026-01-05T00:00:00Z"), t("2026-01-06T00:00:00Z"), 10)
        .await
        .expect("by window");
    assert_eq!(
        of_window.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![log[3].seq, log[0].seq]
    );
    let of_b = s.changes_of_event(mb, "B", 10).await.expect("by event");
    assert_eq!(
        of_b.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![log[2].seq, log[1].seq]
    );
    assert_eq!(
        s.changes_of_event(mb, "B", 1).await.expect("limit").len(),
        1
    );
    let stored_a = s.instance(mb, "A").await.expect("get").expect("A");
    assert_eq!(instance_change(&log[0]).2, stored_a.id, "calgate's id");
    assert_eq!(instance_change(&log[3]).2, stored_a.id, "kept on update");
    assert_eq!(instance_change(&log[2]).3, Some(b.when.start));
    // A failed write logs nothing.
    let mut bad = instance("BAD", "2026-01-05T10:00:00Z", "2026-01-05T09:00:00Z");
    bad.change_key = None;
    assert!(
        apply(ChangeSet {
            upserts: vec![bad],
            ..Default::default()
        })
        .await
        .is_err()
    );
    assert_eq!(
        s.changes_after(log[3].seq, 100).await.expect("log").len(),
        0
    );
    // A resync: C new, A unchanged, A's occurrence moved? no — A kept, nothing else live.
    let c = instance("C", "2026-01-07T09:00:00Z", "2026-01-07T10:00:00Z");
    s.begin_shadow(&l, window()).await.expect("begin");
    s.apply_shadow(
        &l,
        &ChangeSet {
            upserts: vec![a2.clone(), c],
            ..Default::default()
        },
    )
    .await
    .expect("shadow");
    let diff = s.shadow_diff(&l).await.expect("diff");
    assert_eq!(
        diff,
        ShadowDiff {
            live: 1,
            removed: 0,
            added: 1
        }
    );
    s.commit_shadow(&l, &cursor("x")).await.expect("commit");
    let after = s.changes_after(log[3].seq, 100).await.expect("log");
    assert_eq!(
        after
            .iter()
            .map(|r| {
                let (id, op, _, _) = instance_change(r);
                (id, op)
            })
            .collect::<Vec<_>>(),
        vec![("C", ChangeOp::Created)],
        "an unchanged instance is not logged by a resync"
    );
    // Each row says how it was written: a round's rows, then the resync's.
    assert!(
        log.iter()
            .all(|r| r.via == Some(calgate_store::ChangeVia::Round)),
        "{log:?}"
    );
    assert_eq!(after[0].via, Some(calgate_store::ChangeVia::Resync));
    // Limits: after the last row, nothing.
    let last = after.last().expect("C").seq;
    assert!(s.changes_after(last, 10).await.expect("log").is_empty());
    assert_eq!(s.changes_after(0, 2).await.expect("log").len(), 2);
}

/// An instance row of the change log: (Exchange id, op, calgate's id, start).
fn instance_change(r: &ChangeRecord) -> (&str, ChangeOp, Uuid, Option<Timestamp>) {
    match &r.change {
        Change::Instance {
            op,
            instance_id,
            exchange_id,
            start,
            ..
        } => (exchange_id.as_str(), *op, *instance_id, *start),
        other => panic!("not an instance change: {other:?}"),
    }
}

/// Pages by (start, Exchange id): every instance exactly once, in order, whatever the page size.
pub async fn instances_page_by_keyset(f: &Fixture) {
    let s = &*f.store;
    let mb = mailbox(s).await;
    let mut upserts = Vec::new();
    for n in 0..23 {
        // Several share a start, to exercise the tie-break on the Exchange id.
        let day = 10 + n / 3;
        upserts.push(instance(
            &format!("E{n:02}"),
            &format!("2026-01-{day:02}T09:00:00Z"),
            &format!("2026-01-{day:02}T10:00:00Z"),
        ));
    }
    s.apply_changes(
        &lease(s, mb).await,
        &ChangeSet {
            upserts,
            ..Default::default()
        },
    )
    .await
    .expect("apply");
    let all: Vec<String> = s
        .instances(mb, t(ALL_FROM), t(ALL_TO))
        .await
        .expect("all")
        .into_iter()
        .map(|i| i.instance.exchange_id)
        .collect();
    assert_eq!(all.len(), 23);
    for size in [1u32, 5, 23, 100] {
        let mut got = Vec::new();
        let mut after: Option<InstanceCursor> = None;
        loop {
            let page = s
                .instances_page(mb, t(ALL_FROM), t(ALL_TO), after.as_ref(), size)
                .await
                .expect("page");
            assert!(page.instances.len() <= size as usize);
            got.extend(page.instances.into_iter().map(|i| i.instance.exchange_id));
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        assert_eq!(got, all, "page size {size}");
    }
}

/// The planner's view of every mailbox in one read: settings, cursor, live count, status.
pub async fn sync_states_in_one_read(f: &Fixture) {
    let s = &*f.store;
    let a = mailbox_named(s, "a@contoso.com").await;
    let _b = mailbox_named(s, "b@contoso.com").await;
    s.apply_changes(
        &lease(s, a).await,
        &ChangeSet {
            upserts: vec![instance(
                "X",
                "2026-01-05T09:00:00Z",
                "2026-01-05T10:00:00Z",
            )],
            cursor: Some(cursor("link-a")),
            ..Default::default()
        },
    )
    .await
    .expect("apply");
    let states = s.sync_states().await.expect("states");
    assert_eq!(states.len(), 2);
    assert_eq!(states[0].mailbox.address, "a@contoso.com");
    assert_eq!(states[0].live_instances, 1);
    assert_eq!(
        states[0].cursor.as_ref().map(|c| c.delta_link.as_str()),
        Some("link-a")
    );
    assert_eq!(states[0].status.mailbox_id, a);
    assert!(states[1].cursor.is_none());
    assert_eq!(states[1].live_instances, 0);
    assert!(states[1].status.last_attempt.is_none());
}

/// API keys and feeds: stored by hash, found by id or hash, listed, revoked; names unique.
pub async fn api_keys_and_feeds_keep_hashes_and_revoke(f: &Fixture) {
    let s = &*f.store;
    let key = NewApiKey {
        name: "lms".into(),
        key_id: "k1".into(),
        salt: vec![1, 2, 3],
        hash: vec![9; 32],
        scopes: vec![ApiScope::Read, ApiScope::Write],
    };
    s.add_api_key(&key).await.expect("add");
    let e = s.add_api_key(&key).await.expect_err("name taken");
    assert_eq!(e.kind(), ErrorKind::Conflict);
    let k = s.api_key("k1").await.expect("get").expect("k1");
    assert_eq!(k.scopes, vec![ApiScope::Read, ApiScope::Write]);
    assert_eq!((k.salt, k.hash), (vec![1, 2, 3], vec![9; 32]));
    assert!(k.revoked_at.is_none());
    assert!(s.revoke_api_key("lms").await.expect("revoke"));
    assert!(!s.revoke_api_key("lms").await.expect("again"));
    assert!(
        s.api_key("k1")
            .await
            .expect("get")
            .expect("k1")
            .revoked_at
            .is_some()
    );
    assert_eq!(s.list_api_keys().await.expect("list").len(), 1);

    let mb = mailbox(s).await;
    let feed = NewFeed {
        address: "A@contoso.com".into(),
        token_hash: vec![7; 32],
        token_hint: "abc123".into(),
        privacy: PrivacyPolicy::BusyOnly,
    };
    let id = s.add_feed(&feed).await.expect("feed");
    let got = s
        .feed_by_token_hash(&[7; 32])
        .await
        .expect("by hash")
        .expect("found");
    assert_eq!(
        (got.id, got.mailbox_id, got.privacy),
        (id, mb, PrivacyPolicy::BusyOnly)
    );
    assert!(
        s.feed_by_token_hash(&[8; 32])
            .await
            .expect("other")
            .is_none()
    );
    let e = s
        .add_feed(&NewFeed {
            address: "nobody@contoso.com".into(),
            ..feed.clone()
        })
        .await
        .expect_err("unlinked");
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(s.revoke_feed(id).await.expect("revoke"));
    assert!(!s.revoke_feed(id).await.expect("again"));
    assert_eq!(s.list_feeds().await.expect("list").len(), 1);
    // Unlinking the mailbox takes its feeds.
    assert!(s.unlink_mailbox("a@contoso.com").await.expect("unlink"));
    assert!(s.list_feeds().await.expect("list").is_empty());
}

fn status_update(outcome: SyncOutcome) -> SyncStatusUpdate {
    SyncStatusUpdate {
        attempted_at: Timestamp::now(),
        outcome,
        next_action: None,
        next_run_at: None,
        lag: None,
        counters: SyncCounters::default(),
    }
}

fn notice_types(log: &[ChangeRecord]) -> Vec<&'static str> {
    log.iter().map(ChangeRecord::event_type).collect()
}

/// A mailbox's sync failing (once per streak) and recovering, and any other notice, are rows of
/// the change log in order with the instance changes; pruning keeps what a webhook still needs.
pub async fn status_transitions_and_notices_enter_the_change_log(f: &Fixture) {
    let s = &*f.store;
    let mb = mailbox(s).await;
    let fail = || {
        status_update(SyncOutcome::Failure {
            kind: calgate_core::FailureKind::Authentication,
            message: "the client secret has expired".into(),
        })
    };
    s.record_status(mb, &status_update(SyncOutcome::Success))
        .await
        .expect("ok");
    s.record_status(mb, &fail()).await.expect("fail 1");
    s.record_status(mb, &fail()).await.expect("fail 2");
    s.record_status(mb, &status_update(SyncOutcome::Success))
        .await
        .expect("recovered");
    s.record_status(mb, &status_update(SyncOutcome::Success))
        .await
        .expect("ok again");
    let seq = s
        .record_notice(&NewNotice {
            kind: NoticeKind::CredentialExpiring,
            mailbox: None,
            data: serde_json::json!({"connection": "c", "days_left": 7}),
        })
        .await
        .expect("notice");
    let once = NewNotice {
        kind: NoticeKind::CredentialExpired,
        mailbox: None,
        data: serde_json::json!({"connection": "c"}),
    };
    assert!(
        s.record_notice_once("credential:1:expired", &once)
            .await
            .expect("once")
            .is_some()
    );
    assert!(
        s.record_notice_once("credential:1:expired", &once)
            .await
            .expect("twice")
            .is_none(),
        "recorded once per key"
    );
    let log = s.changes_after(0, 100).await.expect("log");
    assert_eq!(
        notice_types(&log),
        vec![
            "mailbox.sync_failed",
            "mailbox.recovered",
            "credential.expiring",
            "credential.expired"
        ]
    );
    assert_eq!(log[2].seq, seq);
    assert_eq!(log[0].address.as_deref(), Some("a@contoso.com"));
    assert_eq!(log[2].mailbox, None);
    match &log[0].change {
        Change::Notice { kind, data } => {
            assert_eq!(*kind, NoticeKind::MailboxSyncFailed);
            assert_eq!(data["error"]["kind"], "authentication");
        }
        other => panic!("{other:?}"),
    }
    match &log[1].change {
        Change::Notice { data, .. } => assert_eq!(data["failed_rounds"], 2),
        other => panic!("{other:?}"),
    }
    // Notices are about no instance: the availability cache's reader skips those without a
    // mailbox and sees the mailbox of the others.
    let changed = s.mailboxes_changed_after(0).await.expect("changed");
    assert_eq!(changed, vec![(mb, log[1].seq)]);
    assert_eq!(s.change_log_end().await.expect("end"), log[3].seq);
    assert_eq!(s.change_log_floor().await.expect("floor"), log[0].seq - 1);
    // Pruning keeps rows a webhook has not fanned out: none here yet, so all old rows go …
    let (hook, _) = s
        .add_webhook("https://host.example/hook", None)
        .await
        .expect("add");
    assert_eq!(
        hook.position, log[3].seq,
        "a new endpoint starts at the end of the log"
    );
    let later = Timestamp::now() + SignedDuration::from_secs(1);
    let n = s
        .record_notice(&NewNotice {
            kind: NoticeKind::CredentialExpired,
            mailbox: None,
            data: serde_json::json!({}),
        })
        .await
        .expect("notice");
    assert_eq!(s.prune_change_log(later).await.expect("prune"), 4);
    // … but not the row after the endpoint's position, and positions are never reused.
    assert_eq!(s.change_log_floor().await.expect("floor"), n - 1);
    assert_eq!(s.changes_after(0, 10).await.expect("log").len(), 1);
}

/// Endpoints keep sealed secrets with an overlap on rotation; the queue hands out the oldest
/// pending delivery of each partition only, retries, dead-letters and replays.
pub async fn webhook_queue_delivers_in_order_per_partition(f: &Fixture) {
    let s = &*f.store;
    let events = vec!["event.created".to_owned(), "mailbox.recovered".to_owned()];
    let (hook, secret) = s
        .add_webhook("https://host.example/hook", Some(&events))
        .await
        .expect("add");
    assert!(hook.id.starts_with("wh_"));
    assert!(secret.starts_with("whsec_"));
    assert!(hook.wants("event.created") && !hook.wants("event.deleted"));
    let secrets = s.webhook_secrets(&hook.id).await.expect("secrets");
    assert_eq!(secrets.len(), 1);
    assert_eq!(secrets[0].expose(), secret);
    let new = s
        .rotate_webhook_secret(&hook.id, SignedDuration::from_hours(24))
        .await
        .expect("rotate")
        .expect("known");
    let secrets = s.webhook_secrets(&hook.id).await.expect("secrets");
    assert_eq!(
        secrets.iter().map(|x| x.expose()).collect::<Vec<_>>(),
        vec![new.as_str(), secret.as_str()],
        "the new secret first, the old one beside it during the overlap"
    );
    s.rotate_webhook_secret(&hook.id, SignedDuration::ZERO)
        .await
        .expect("rotate")
        .expect("known");
    assert_eq!(s.webhook_secrets(&hook.id).await.expect("s").len(), 1);
    assert!(
        s.rotate_webhook_secret("wh_none", SignedDuration::ZERO)
            .await
            .expect("rotate")
            .is_none()
    );

    let d = |seq: u64, partition: &str| NewDelivery {
        seq,
        partition: partition.to_owned(),
        event_type: "event.created".to_owned(),
        payload: format!("{{\"n\":{seq}}}"),
    };
    let from = hook.position;
    let batch = vec![d(from + 1, "a@x"), d(from + 2, "b@x"), d(from + 3, "a@x")];
    assert!(
        s.enqueue_deliveries(&hook.id, from, from + 3, &batch)
            .await
            .expect("enqueue")
    );
    // A second fan-out from the old position writes nothing.
    assert!(
        !s.enqueue_deliveries(&hook.id, from, from + 3, &batch)
            .await
            .expect("enqueue again")
    );
    assert_eq!(
        s.webhook(&hook.id)
            .await
            .expect("get")
            .expect("known")
            .position,
        from + 3
    );
    let now = Timestamp::now() + SignedDuration::from_secs(1);
    let due = s.due_deliveries(now, 10).await.expect("due");
    assert_eq!(
        due.iter().map(|x| x.seq).collect::<Vec<_>>(),
        vec![from + 1, from + 2],
        "a@x's second delivery waits for its first"
    );
    assert!(due.iter().all(|x| x.msg_id.starts_with("msg_")));
    let first_a = due[0].clone();
    s.finish_delivery(
        first_a.id,
        &DeliveryOutcome::Failed {
            status: Some(503),
            error: "503 Service Unavailable".into(),
            retry_at: Some(now + SignedDuration::from_secs(60)),
        },
    )
    .await
    .expect("failed");
    let due = s.due_deliveries(now, 10).await.expect("due");
    assert_eq!(
        due.iter().map(|x| x.seq).collect::<Vec<_>>(),
        vec![from + 2],
        "a@x waits for its retry; b@x goes on"
    );
    assert!(
        s.next_delivery_at()
            .await
            .expect("next")
            .is_some_and(|t| t <= now),
        "b@x is due"
    );
    let later = now + SignedDuration::from_secs(61);
    let due = s.due_deliveries(later, 10).await.expect("due");
    let retry = due.iter().find(|x| x.id == first_a.id).expect("retried");
    assert_eq!(retry.attempts, 1);
    assert_eq!(retry.last_status, Some(503));
    assert_eq!(
        retry.msg_id, first_a.msg_id,
        "the same message id on every attempt"
    );
    // Gives up: dead; the partition moves on.
    s.finish_delivery(
        first_a.id,
        &DeliveryOutcome::Failed {
            status: None,
            error: "connection refused".into(),
            retry_at: None,
        },
    )
    .await
    .expect("dead");
    let dead = s
        .deliveries(&hook.id, Some(DeliveryState::Dead), 10)
        .await
        .expect("dead");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].attempts, 2);
    assert_eq!(dead[0].last_error.as_deref(), Some("connection refused"));
    for x in s.due_deliveries(later, 10).await.expect("due") {
        s.finish_delivery(x.id, &DeliveryOutcome::Delivered { status: 204 })
            .await
            .expect("delivered");
    }
    assert_eq!(
        s.deliveries(&hook.id, Some(DeliveryState::Delivered), 10)
            .await
            .expect("delivered")
            .len(),
        2
    );
    assert!(s.due_deliveries(later, 10).await.expect("due").is_empty());
    assert_eq!(s.next_delivery_at().await.expect("next"), None);
    // Replay: due again, attempts from zero.
    assert_eq!(
        s.replay_deliveries(&hook.id, Some(&[first_a.id, 999_999]))
            .await
            .expect("replay"),
        1
    );
    let due = s
        .due_deliveries(Timestamp::now() + SignedDuration::from_secs(1), 10)
        .await
        .expect("due");
    assert_eq!(due.len(), 1);
    assert_eq!((due[0].id, due[0].attempts), (first_a.id, 0));
    assert_eq!(s.replay_deliveries(&hook.id, None).await.expect("none"), 0);
    // Pruning removes delivered rows only; removing the endpoint removes its queue.
    assert_eq!(
        s.prune_deliveries(Timestamp::now() + SignedDuration::from_secs(5))
            .await
            .expect("prune"),
        2
    );
    assert_eq!(
        s.deliveries(&hook.id, None, 10).await.expect("all").len(),
        1
    );
    assert!(s.remove_webhook(&hook.id).await.expect("remove"));
    assert!(!s.remove_webhook(&hook.id).await.expect("again"));
    assert!(s.webhooks().await.expect("list").is_empty());
    assert!(
        s.deliveries(&hook.id, None, 10)
            .await
            .expect("gone")
            .is_empty()
    );
}

/// A mailbox's change-notification record: saved, replaced, found by Graph's id, gone with an
/// unlink; a record for an unknown mailbox is refused.
pub async fn subscription_records_round_trip_and_go_with_the_mailbox(f: &Fixture) {
    let s = &*f.store;
    let mb = mailbox(s).await;
    let now = Timestamp::now()
        .round(jiff::Unit::Microsecond)
        .expect("round");
    let active = SubscriptionRecord {
        mailbox: mb,
        address: String::new(),
        subscription_id: Some("sub-1".into()),
        client_state_hash: Some(vec![7; 32]),
        expires_at: Some(now + SignedDuration::from_hours(72)),
        state: SubscriptionState::Active,
        reason: None,
        failures: 0,
        next_attempt_at: None,
        updated_at: now,
    };
    s.save_subscription(&active).await.expect("save");
    let got = s.subscription("sub-1").await.expect("get").expect("found");
    assert_eq!(got.address, "a@contoso.com");
    assert_eq!(
        SubscriptionRecord {
            address: String::new(),
            ..got
        },
        active
    );
    let failing = SubscriptionRecord {
        subscription_id: None,
        client_state_hash: None,
        expires_at: None,
        state: SubscriptionState::Failing,
        reason: Some("validation failed".into()),
        failures: 2,
        next_attempt_at: Some(now + SignedDuration::from_secs(120)),
        ..active.clone()
    };
    s.save_subscription(&failing).await.expect("replace");
    assert!(s.subscription("sub-1").await.expect("get").is_none());
    let all = s.subscriptions().await.expect("all");
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].state, SubscriptionState::Failing);
    assert_eq!(all[0].failures, 2);
    // Active without an id is refused by the schema.
    let bad = SubscriptionRecord {
        state: SubscriptionState::Active,
        ..failing.clone()
    };
    assert!(s.save_subscription(&bad).await.is_err());
    assert!(
        s.save_subscription(&SubscriptionRecord {
            mailbox: MailboxId(9_999),
            ..active.clone()
        })
        .await
        .is_err()
    );
    s.save_subscription(&active).await.expect("save");
    s.unlink_mailbox("a@contoso.com").await.expect("unlink");
    assert!(s.subscriptions().await.expect("all").is_empty());
    assert!(!s.remove_subscription(mb).await.expect("remove"));
}

/// Console sessions: kept by their token's hash, found until they expire, gone when ended or
/// expired (and expired ones pruned when another opens); the store survives reopening with them.
pub async fn console_sessions_by_token_hash_expire_and_end(f: &Fixture) {
    let s = &*f.store;
    // Stores keep microseconds.
    let now = Timestamp::from_microsecond(Timestamp::now().as_microsecond()).expect("now");
    let session = |hash: u8, csrf: &str, expires: Timestamp| ConsoleSession {
        token_sha256: vec![hash; 32],
        csrf: csrf.to_owned(),
        via: "with the administrator password".to_owned(),
        expires_at: expires,
    };
    let live = session(1, "csrf-1", now + SignedDuration::from_hours(12));
    s.put_console_session(&live).await.expect("put");
    assert_eq!(
        s.console_session(&[1; 32], now).await.expect("get"),
        Some(live.clone())
    );
    assert_eq!(s.console_session(&[2; 32], now).await.expect("get"), None);
    // Expired by the clock it is asked with.
    assert_eq!(
        s.console_session(&[1; 32], now + SignedDuration::from_hours(13))
            .await
            .expect("get"),
        None
    );
    // An expired row is never returned, and opening another session prunes it.
    let stale = session(3, "csrf-3", now - SignedDuration::from_secs(1));
    s.put_console_session(&stale).await.expect("put");
    assert_eq!(s.console_session(&[3; 32], now).await.expect("get"), None);
    s.put_console_session(&session(4, "csrf-4", now + SignedDuration::from_hours(1)))
        .await
        .expect("put");
    assert_eq!(
        s.console_session(&[3; 32], now - SignedDuration::from_hours(1))
            .await
            .expect("get"),
        None,
        "pruned"
    );
    // Sign-out ends one session only.
    s.remove_console_session(&[1; 32]).await.expect("remove");
    s.remove_console_session(&[9; 32])
        .await
        .expect("nothing to remove");
    assert_eq!(s.console_session(&[1; 32], now).await.expect("get"), None);
    assert!(
        s.console_session(&[4; 32], now)
            .await
            .expect("get")
            .is_some()
    );
}

fn booking_spec(subject: &str, mode: BookingMode, calendars: &[(&str, TargetRole)]) -> BookingSpec {
    BookingSpec {
        subject: subject.into(),
        body: None,
        when: When {
            start: t("2030-03-04T09:00:00Z"),
            end: t("2030-03-04T10:00:00Z"),
            time_zone: "Europe/Berlin".into(),
            all_day: None,
        },
        location: None,
        show_as: ShowAs::Busy,
        sensitivity: Sensitivity::Normal,
        mode,
        calendars: calendars
            .iter()
            .map(|(address, role)| BookingTarget {
                address: (*address).into(),
                role: *role,
            })
            .collect(),
        recurrence: None,
    }
}

fn target<'a>(b: &'a Booking, address: &str) -> &'a TargetStatus {
    b.targets
        .iter()
        .find(|t| t.address.eq_ignore_ascii_case(address))
        .unwrap_or_else(|| panic!("no target {address} in {b:?}"))
}

fn booking_ids(bs: &[Booking]) -> Vec<&str> {
    bs.iter().map(|b| b.external_id.as_str()).collect()
}

/// The due entries of one booking, by calendar address (lowercase).
async fn due_of(s: &dyn Store, external_id: &str, now: Timestamp) -> Vec<PushTask> {
    s.due_pushes(now, 1000)
        .await
        .expect("due")
        .into_iter()
        .filter(|t| t.external_id == external_id)
        .collect()
}

/// Claims the booking's due entry for `address` and records `outcome` (as the push engine does).
async fn push_once(
    s: &dyn Store,
    external_id: &str,
    address: &str,
    outcome: PushOutcome,
) -> PushTask {
    let now = Timestamp::now();
    let task = due_of(s, external_id, now)
        .await
        .into_iter()
        .find(|t| t.address.eq_ignore_ascii_case(address))
        .unwrap_or_else(|| panic!("{external_id}: nothing due for {address}"));
    assert!(
        s.claim_push(task.entry, now, SignedDuration::from_secs(60))
            .await
            .expect("claim")
    );
    s.finish_push(&task, &outcome).await.expect("finish");
    task
}

fn written(exchange_id: &str, ical_uid: Option<&str>) -> PushOutcome {
    PushOutcome::Written {
        exchange_id: exchange_id.into(),
        ical_uid: ical_uid.map(str::to_owned),
        web_link: Some(format!("https://outlook.example/{exchange_id}")),
        change_key: Some(format!("ck-{exchange_id}")),
    }
}

/// Bookings: a put stores the spec and queues a write per calendar (nothing when the spec is
/// unchanged); targets keep the order they were first added in; states, paging, retries,
/// deletes, meeting answers, adopted events and the Outlook-edit policy.
pub async fn bookings_keep_their_targets_and_queue_their_writes(f: &Fixture) {
    use TargetRole::*;
    let s = &*f.store;
    assert!(s.booking("m1").await.expect("read").is_none());
    assert_eq!(s.pending_pushes().await.expect("outbox"), 0);
    // Refused: bad external ids, no calendar.
    let one = booking_spec("x", BookingMode::Direct, &[("a@x.example", Organizer)]);
    for bad in ["", " m1", "m1 "] {
        let e = s.put_booking(bad, &one).await.expect_err("bad id");
        assert_eq!(e.kind(), ErrorKind::InvalidData, "{bad:?}: {e}");
    }
    let e = s
        .put_booking("m1", &booking_spec("x", BookingMode::Direct, &[]))
        .await
        .expect_err("no calendar");
    assert_eq!(e.kind(), ErrorKind::InvalidData);
    assert_eq!(s.pending_pushes().await.expect("outbox"), 0);

    // New: version 1, every target pending (first added in address order), one write each.
    let v1 = booking_spec(
        "Planning",
        BookingMode::Meeting,
        &[(" b@x.example ", Attendee), ("A@X.example", Organizer)],
    );
    let (b, changed) = s.put_booking("m1", &v1).await.expect("put");
    assert!(changed);
    assert_eq!(
        (b.external_id.as_str(), b.version, b.deleted),
        ("m1", 1, false)
    );
    assert_eq!(b.spec, v1);
    let addresses = |b: &Booking| {
        b.targets
            .iter()
            .map(|t| t.address.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        addresses(&b),
        vec!["A@X.example", "b@x.example"],
        "trimmed, as given"
    );
    assert_eq!(target(&b, "a@x.example").role, Organizer);
    assert_eq!(target(&b, "b@x.example").role, Attendee);
    assert!(b.targets.iter().all(|t| t.state == TargetState::Pending
        && t.exchange_id.is_none()
        && t.error.is_none()
        && t.response.is_none()));
    assert_eq!(b.state(), BookingState::Pending);
    assert_eq!(s.pending_pushes().await.expect("outbox"), 2);
    let first = due_of(s, "m1", Timestamp::now()).await;
    assert_eq!(first.len(), 2);

    // The same spec again: nothing changes, nothing is queued.
    let (same, changed) = s.put_booking("m1", &v1).await.expect("put again");
    assert!(!changed);
    assert_eq!(same, b);
    assert_eq!(s.pending_pushes().await.expect("outbox"), 2);

    // A calendar added: a new version; the new target comes after the others (insertion
    // order, not address order); the queued entries keep their ids and take the new version.
    let v2 = booking_spec(
        "Planning",
        BookingMode::Meeting,
        &[
            (" b@x.example ", Attendee),
            ("A@X.example", Organizer),
            ("0room@x.example", Room),
        ],
    );
    let (b2, changed) = s.put_booking("m1", &v2).await.expect("put v2");
    assert!(changed);
    assert_eq!(b2.version, 2);
    assert_eq!(b2.created_at, b.created_at);
    assert!(b2.updated_at >= b.updated_at);
    assert_eq!(
        addresses(&b2),
        vec!["A@X.example", "b@x.example", "0room@x.example"]
    );
    assert_eq!(s.pending_pushes().await.expect("outbox"), 3);
    let due = due_of(s, "m1", Timestamp::now()).await;
    assert_eq!(due.len(), 3);
    assert!(
        due.iter()
            .all(|t| t.version == 2 && t.op == PushOp::Upsert && t.spec == v2)
    );
    for old in &first {
        let now = due
            .iter()
            .find(|t| t.address == old.address)
            .expect("still queued");
        assert_eq!(
            now.entry, old.entry,
            "an entry keeps its id across versions"
        );
    }

    // A calendar dropped: its target is deleted from Exchange (op delete), the others upserted.
    let v3 = booking_spec(
        "Planning",
        BookingMode::Meeting,
        &[("A@X.example", Organizer), ("0room@x.example", Room)],
    );
    let (b3, changed) = s.put_booking("m1", &v3).await.expect("put v3");
    assert!(changed);
    assert_eq!(b3.version, 3);
    assert_eq!(
        b3.targets.len(),
        3,
        "the dropped target stays until it is removed"
    );
    assert_eq!(target(&b3, "b@x.example").state, TargetState::Deleting);
    assert_eq!(target(&b3, "0room@x.example").state, TargetState::Pending);
    let due = due_of(s, "m1", Timestamp::now()).await;
    let op_of = |a: &str| {
        due.iter()
            .find(|t| t.address.eq_ignore_ascii_case(a))
            .map(|t| (t.op, t.version))
    };
    assert_eq!(op_of("b@x.example"), Some((PushOp::Delete, 3)));
    assert_eq!(op_of("a@x.example"), Some((PushOp::Upsert, 3)));
    assert_eq!(op_of("0room@x.example"), Some((PushOp::Upsert, 3)));

    // Paging and states: m2 synced, m3 failed, m1 pending.
    let direct = |c: &str| booking_spec("Desk", BookingMode::Direct, &[(c, Organizer)]);
    s.put_booking("m2", &direct("c@x.example"))
        .await
        .expect("put m2");
    s.put_booking("m3", &direct("c@x.example"))
        .await
        .expect("put m3");
    let all = s.list_bookings(None, None, 2).await.expect("list");
    assert_eq!(booking_ids(&all), vec!["m1", "m2"]);
    assert_eq!(all[0], s.booking("m1").await.expect("read").expect("m1"));
    let rest = s.list_bookings(None, Some("m2"), 10).await.expect("list");
    assert_eq!(booking_ids(&rest), vec!["m3"]);
    assert_eq!(rest[0].targets.len(), 1);
    push_once(s, "m2", "c@x.example", written("E2", None)).await;
    push_once(
        s,
        "m3",
        "c@x.example",
        PushOutcome::Failed {
            error: "no access".into(),
        },
    )
    .await;
    let by = |state| async move {
        booking_ids(&s.list_bookings(Some(state), None, 100).await.expect("list"))
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(by(BookingState::Pending).await, vec!["m1"]);
    assert_eq!(by(BookingState::Synced).await, vec!["m2"]);
    assert_eq!(by(BookingState::Failed).await, vec!["m3"]);
    let page = s
        .list_bookings(Some(BookingState::Synced), Some("m2"), 100)
        .await
        .expect("list");
    assert!(page.is_empty());

    // Retry: the failed target is queued again, as if an attempt's outcome were unknown.
    let m3 = s.booking("m3").await.expect("read").expect("m3");
    assert_eq!(
        target(&m3, "c@x.example").error.as_deref(),
        Some("no access")
    );
    assert_eq!(s.retry_booking("m3").await.expect("retry"), Some(1));
    let m3 = s.booking("m3").await.expect("read").expect("m3");
    assert_eq!(target(&m3, "c@x.example").state, TargetState::Pending);
    assert_eq!(target(&m3, "c@x.example").error, None);
    let due = due_of(s, "m3", Timestamp::now()).await;
    assert_eq!(due.len(), 1);
    assert_eq!(
        (due[0].op, due[0].version, due[0].attempts),
        (PushOp::Upsert, 1, 1)
    );
    assert_eq!(s.retry_booking("m3").await.expect("retry"), Some(0));
    assert_eq!(s.retry_booking("none").await.expect("retry"), None);
    assert_eq!(by(BookingState::Failed).await, Vec::<String>::new());

    // Meeting answers: recorded by address; the invited calendars take the organizer's iCal UID.
    push_once(s, "m1", "a@x.example", written("EA", Some("uid-meeting"))).await;
    s.record_responses(
        "m1",
        &[
            ("0ROOM@x.example".into(), "accepted".into()),
            ("b@x.example".into(), "declined".into()),
            ("nobody@x.example".into(), "accepted".into()),
        ],
    )
    .await
    .expect("responses");
    let m1 = s.booking("m1").await.expect("read").expect("m1");
    assert_eq!(
        target(&m1, "0room@x.example").response.as_deref(),
        Some("accepted")
    );
    assert_eq!(
        target(&m1, "b@x.example").response.as_deref(),
        Some("declined")
    );
    assert_eq!(target(&m1, "a@x.example").response, None);
    let room = due_of(s, "m1", Timestamp::now())
        .await
        .into_iter()
        .find(|t| t.address == "0room@x.example")
        .expect("room queued");
    assert_eq!(room.ical_uid.as_deref(), Some("uid-meeting"));

    // Adopting an event found in Exchange: only when it tells something new.
    let adopt = |id: &'static str, address: &'static str, ex: &'static str| async move {
        s.adopt_pushed(
            id,
            address,
            ex,
            Some("uid-3"),
            Some("https://o/3"),
            Some("ck-3"),
        )
        .await
        .expect("adopt")
    };
    assert!(adopt("m3", "C@X.example", "X3").await);
    assert!(!adopt("m3", "c@x.example", "X3").await, "known already");
    assert!(adopt("m3", "c@x.example", "X3b").await);
    assert!(!adopt("m3", "d@x.example", "X3").await, "no such target");
    assert!(!adopt("none", "c@x.example", "X3").await, "no such booking");
    let m3 = s.booking("m3").await.expect("read").expect("m3");
    let c = target(&m3, "c@x.example");
    assert_eq!(c.exchange_id.as_deref(), Some("X3b"));
    assert_eq!(c.web_link.as_deref(), Some("https://o/3"));
    let due = due_of(s, "m3", Timestamp::now()).await;
    assert_eq!(due[0].exchange_id.as_deref(), Some("X3b"));
    assert_eq!(due[0].change_key.as_deref(), Some("ck-3"));

    // Delete: every target still in Exchange is queued for removal, once.
    assert!(!s.delete_booking("none").await.expect("delete"));
    assert!(s.delete_booking("m2").await.expect("delete"));
    let m2 = s
        .booking("m2")
        .await
        .expect("read")
        .expect("kept until removed");
    assert!(m2.deleted);
    assert_eq!(m2.version, 2);
    assert_eq!(target(&m2, "c@x.example").state, TargetState::Deleting);
    let due = due_of(s, "m2", Timestamp::now()).await;
    assert_eq!(due.len(), 1);
    assert_eq!((due[0].op, due[0].version), (PushOp::Delete, 2));
    assert_eq!(due[0].exchange_id.as_deref(), Some("E2"));
    assert!(s.delete_booking("m2").await.expect("delete again"));
    assert_eq!(s.booking("m2").await.expect("read").expect("m2").version, 2);
    push_once(s, "m2", "c@x.example", PushOutcome::Removed).await;
    let m2 = s.booking("m2").await.expect("read").expect("m2");
    assert_eq!(target(&m2, "c@x.example").state, TargetState::Deleted);
    assert_eq!(target(&m2, "c@x.example").exchange_id, None);
    assert!(due_of(s, "m2", Timestamp::now()).await.is_empty());
    // A deleted booking put again comes back with a new version.
    let (back, changed) = s
        .put_booking("m2", &direct("c@x.example"))
        .await
        .expect("put back");
    assert!(changed && !back.deleted);
    assert_eq!(back.version, 3);
    assert_eq!(target(&back, "c@x.example").state, TargetState::Pending);

    // Nothing pulled: nothing to reconcile.
    assert_eq!(s.reconcile_pushed().await.expect("reconcile"), (0, 0));

    // The Outlook-edit policy of a connection.
    mailbox_named(s, "owner@x.example").await;
    assert_eq!(
        s.outlook_edits("c").await.expect("policy"),
        Some(calgate_core::booking::OutlookEdits::AppWins)
    );
    assert!(
        s.set_outlook_edits(" c ", calgate_core::booking::OutlookEdits::Report)
            .await
            .expect("set")
    );
    assert_eq!(
        s.outlook_edits("c").await.expect("policy"),
        Some(calgate_core::booking::OutlookEdits::Report)
    );
    assert!(
        !s.set_outlook_edits("none", calgate_core::booking::OutlookEdits::Report)
            .await
            .expect("set")
    );
    assert_eq!(s.outlook_edits("none").await.expect("policy"), None);
}

/// The push outbox as the push engine uses it: due entries oldest first, a claim holds an
/// entry (counting the attempt) until the hold passes, and each outcome updates the target,
/// removes or keeps the entry and tells the host application; a write overtaken by a newer
/// version leaves the entry queued.
pub async fn push_outbox_claims_holds_and_finishes(f: &Fixture) {
    use TargetRole::*;
    let s = &*f.store;
    let mb = mailbox_named(s, "a@x.example").await;
    let spec = booking_spec(
        "Offsite",
        BookingMode::Direct,
        &[
            ("r@x.example", Room),
            ("A@x.example", Organizer),
            ("b@x.example", Attendee),
        ],
    );
    s.put_booking("p1", &spec).await.expect("put");
    let now = Timestamp::now();
    let hold = SignedDuration::from_secs(60);
    let early = now - SignedDuration::from_hours(1);
    assert!(
        s.due_pushes(early, 10).await.expect("due").is_empty(),
        "not due before the put"
    );
    let due = s.due_pushes(now, 10).await.expect("due");
    assert_eq!(
        due.iter().map(|t| t.address.as_str()).collect::<Vec<_>>(),
        vec!["A@x.example", "b@x.example", "r@x.example"],
        "oldest first, then by entry"
    );
    assert_eq!(s.due_pushes(now, 1).await.expect("due").len(), 1);
    for (task, role) in due.iter().zip([Organizer, Attendee, Room]) {
        assert_eq!(task.role, role);
        assert_eq!(task.external_id, "p1");
        assert_eq!(
            (task.op, task.version, task.attempts),
            (PushOp::Upsert, 1, 0)
        );
        assert_eq!(
            (task.exchange_id.as_deref(), task.ical_uid.as_deref()),
            (None, None)
        );
        assert_eq!((task.change_key.as_deref(), task.pushed_version), (None, 0));
        assert_eq!(task.spec, spec);
    }
    let (ta, tb, tr) = (due[0].clone(), due[1].clone(), due[2].clone());

    // A claim holds the entry: not claimable, not due, until the hold passes.
    assert!(s.claim_push(ta.entry, now, hold).await.expect("claim"));
    assert!(
        !s.claim_push(ta.entry, now, hold)
            .await
            .expect("claim twice")
    );
    let soon = now + SignedDuration::from_secs(30);
    assert!(
        !s.claim_push(ta.entry, soon, hold)
            .await
            .expect("claim held")
    );
    let entries = |ts: Vec<PushTask>| ts.into_iter().map(|t| t.entry).collect::<Vec<_>>();
    assert_eq!(
        entries(s.due_pushes(soon, 10).await.expect("due")),
        vec![tb.entry, tr.entry]
    );
    let later = now + SignedDuration::from_secs(61);
    let again = s.due_pushes(later, 10).await.expect("due");
    let a_again = again
        .iter()
        .find(|t| t.entry == ta.entry)
        .expect("due after the hold");
    assert_eq!(
        a_again.attempts, 1,
        "the first attempt's outcome is unknown"
    );
    assert!(
        s.claim_push(ta.entry, later, hold)
            .await
            .expect("claim after the hold")
    );
    assert!(!s.claim_push(-1, now, hold).await.expect("claim unknown"));
    assert_eq!(s.pending_pushes().await.expect("outbox"), 3);

    // Written: the target is synced, the entry gone.
    s.finish_push(&ta, &written("EA", Some("uid-a")))
        .await
        .expect("finish");
    let b = s.booking("p1").await.expect("read").expect("p1");
    let a = target(&b, "a@x.example");
    assert_eq!(a.state, TargetState::Synced);
    assert_eq!(a.exchange_id.as_deref(), Some("EA"));
    assert_eq!(a.web_link.as_deref(), Some("https://outlook.example/EA"));
    assert_eq!(a.error, None);
    assert_eq!(s.pending_pushes().await.expect("outbox"), 2);
    assert!(
        !s.claim_push(ta.entry, later, hold)
            .await
            .expect("claim a finished entry")
    );

    // Retry: the entry stays, due at the given time; the target stays pending with the error.
    assert!(s.claim_push(tb.entry, now, hold).await.expect("claim"));
    let retry_at = now + SignedDuration::from_mins(5);
    s.finish_push(
        &tb,
        &PushOutcome::Retry {
            error: "throttled".into(),
            not_before: retry_at,
        },
    )
    .await
    .expect("finish");
    let b = s.booking("p1").await.expect("read").expect("p1");
    assert_eq!(target(&b, "b@x.example").state, TargetState::Pending);
    assert_eq!(
        target(&b, "b@x.example").error.as_deref(),
        Some("throttled")
    );
    assert_eq!(s.pending_pushes().await.expect("outbox"), 2);
    let before = retry_at - SignedDuration::from_secs(1);
    assert!(!entries(s.due_pushes(before, 10).await.expect("due")).contains(&tb.entry));
    assert!(entries(s.due_pushes(retry_at, 10).await.expect("due")).contains(&tb.entry));

    // Failed: the target fails, the entry goes.
    assert!(s.claim_push(tr.entry, now, hold).await.expect("claim"));
    s.finish_push(
        &tr,
        &PushOutcome::Failed {
            error: "the room declines".into(),
        },
    )
    .await
    .expect("finish");
    let b = s.booking("p1").await.expect("read").expect("p1");
    assert_eq!(target(&b, "r@x.example").state, TargetState::Failed);
    assert_eq!(
        target(&b, "r@x.example").error.as_deref(),
        Some("the room declines")
    );
    assert_eq!(b.state(), BookingState::Failed);
    assert_eq!(s.pending_pushes().await.expect("outbox"), 1);

    // A newer version while b's write is in flight: the write is recorded, but the entry
    // stays (due now, attempts reset) with the new version, and the target stays pending.
    let mut v2 = spec.clone();
    v2.subject = "Offsite (moved)".into();
    let (b2, changed) = s.put_booking("p1", &v2).await.expect("put v2");
    assert!(changed);
    assert_eq!(b2.version, 2);
    assert!(
        b2.targets
            .iter()
            .all(|t| t.state == TargetState::Pending && t.error.is_none())
    );
    assert_eq!(s.pending_pushes().await.expect("outbox"), 3);
    // b's entry was tried: it keeps its retry time.
    assert!(!entries(s.due_pushes(before, 10).await.expect("due")).contains(&tb.entry));
    assert!(s.claim_push(tb.entry, retry_at, hold).await.expect("claim"));
    s.finish_push(&tb, &written("EB", None))
        .await
        .expect("finish stale");
    let b = s.booking("p1").await.expect("read").expect("p1");
    assert_eq!(target(&b, "b@x.example").state, TargetState::Pending);
    assert_eq!(target(&b, "b@x.example").exchange_id.as_deref(), Some("EB"));
    let nb = s
        .due_pushes(Timestamp::now(), 10)
        .await
        .expect("due")
        .into_iter()
        .find(|t| t.entry == tb.entry)
        .expect("still queued, due now");
    assert_eq!((nb.version, nb.attempts, nb.pushed_version), (2, 0, 1));
    assert_eq!(nb.exchange_id.as_deref(), Some("EB"));
    assert_eq!(nb.change_key.as_deref(), Some("ck-EB"));
    assert_eq!(nb.spec, v2);
    let na = due_of(s, "p1", Timestamp::now())
        .await
        .into_iter()
        .find(|t| t.address == "A@x.example")
        .expect("a queued again");
    assert_ne!(na.entry, ta.entry, "a finished entry is not reused");
    assert_eq!(
        (na.ical_uid.as_deref(), na.exchange_id.as_deref()),
        (Some("uid-a"), Some("EA"))
    );
    // Meeting attendees' writes carry no event id of their own: none is recorded.
    s.finish_push(&nb, &written("", None))
        .await
        .expect("finish");
    let b = s.booking("p1").await.expect("read").expect("p1");
    assert_eq!(target(&b, "b@x.example").state, TargetState::Synced);
    assert_eq!(target(&b, "b@x.example").exchange_id, None);

    // Delete: removed, or already gone in Exchange.
    assert!(s.delete_booking("p1").await.expect("delete"));
    let due = due_of(s, "p1", Timestamp::now()).await;
    assert_eq!(due.len(), 3);
    assert!(due.iter().all(|t| t.op == PushOp::Delete && t.version == 3));
    push_once(s, "p1", "a@x.example", PushOutcome::Removed).await;
    push_once(s, "p1", "b@x.example", PushOutcome::Removed).await;
    push_once(s, "p1", "r@x.example", PushOutcome::GoneInExchange).await;
    let b = s.booking("p1").await.expect("read").expect("p1");
    assert!(b.deleted);
    assert_eq!(target(&b, "a@x.example").state, TargetState::Deleted);
    assert_eq!(target(&b, "b@x.example").state, TargetState::Deleted);
    assert_eq!(
        target(&b, "r@x.example").state,
        TargetState::DeletedInExchange
    );
    assert!(b.targets.iter().all(|t| t.exchange_id.is_none()));
    assert_eq!(b.state(), BookingState::Synced);
    assert_eq!(s.pending_pushes().await.expect("outbox"), 0);
    assert!(s.due_pushes(later, 10).await.expect("due").is_empty());

    // The host application was told, about the calendar's mailbox when it is linked.
    let log = s.changes_after(0, 100).await.expect("log");
    assert_eq!(
        notice_types(&log),
        vec![
            "booking.synced",
            "booking.failed",
            "booking.synced",
            "booking.deleted_in_exchange"
        ]
    );
    let data = |i: usize| match &log[i].change {
        Change::Notice { data, .. } => data.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(log[0].mailbox, Some(mb));
    assert_eq!(data(0)["external_id"], "p1");
    assert_eq!(data(0)["calendar"], "a@x.example");
    assert_eq!(data(0)["exchange_id"], "EA");
    assert_eq!(data(0)["web_link"], "https://outlook.example/EA");
    assert_eq!(log[1].mailbox, None);
    assert_eq!(data(1)["calendar"], "r@x.example");
    assert_eq!(data(1)["error"], "the room declines");
    assert_eq!(data(2)["calendar"], "b@x.example");
    assert_eq!(data(3)["calendar"], "r@x.example");
    // The log pruned empty: its floor is the last position handed out, never reused.
    let last = log[3].seq;
    let pruned = s
        .prune_change_log(Timestamp::now() + SignedDuration::from_secs(1))
        .await
        .expect("prune");
    assert_eq!(pruned, 4);
    assert_eq!(s.change_log_floor().await.expect("floor"), last);
}

/// What pulls saw of calgate's events: one edited in Exchange is queued again (app-wins) or
/// marked drifted (report); one gone from a mailbox synced since the write, inside the synced
/// window, is `deleted_in_exchange`; outside the window nothing is concluded.
pub async fn reconcile_requeues_edited_and_marks_deleted_pushed_events(f: &Fixture) {
    use TargetRole::*;
    let s = &*f.store;
    let (ma, mb) = (
        mailbox_named(s, "a@x.example").await,
        mailbox_named(s, "b@x.example").await,
    );
    let spec = booking_spec(
        "Review",
        BookingMode::Direct,
        &[("a@x.example", Organizer), ("b@x.example", Attendee)],
    );
    s.put_booking("r1", &spec).await.expect("put");
    let mut far = booking_spec("Later", BookingMode::Direct, &[("b@x.example", Attendee)]);
    far.when.start = t("2032-03-04T09:00:00Z");
    far.when.end = t("2032-03-04T10:00:00Z");
    s.put_booking("r2", &far).await.expect("put");
    push_once(s, "r1", "a@x.example", written("EA", None)).await;
    push_once(s, "r1", "b@x.example", written("EB", None)).await;
    push_once(s, "r2", "b@x.example", written("EB2", None)).await;
    assert_eq!(
        s.reconcile_pushed().await.expect("reconcile"),
        (0, 0),
        "nothing pulled yet"
    );

    // A pull: a's event as calgate wrote it; b's events absent (the window covers r1, not r2).
    let window = Cursor {
        delta_link: "https://graph.example/delta".into(),
        window_start: t("2030-01-01T00:00:00Z"),
        window_end: t("2031-01-01T00:00:00Z"),
        rebased_at: t("2030-01-01T00:00:00Z"),
    };
    let pull = |mailbox: MailboxId, change_key: Option<&'static str>| {
        let window = window.clone();
        async move {
            let upserts = match change_key {
                Some(ck) => {
                    let mut i = instance("EA", "2030-03-04T09:00:00Z", "2030-03-04T10:00:00Z");
                    i.change_key = Some(ck.into());
                    vec![i]
                }
                None => Vec::new(),
            };
            s.apply_changes(
                &lease(s, mailbox).await,
                &ChangeSet {
                    upserts,
                    cursor: Some(window),
                    ..Default::default()
                },
            )
            .await
            .expect("apply");
            s.record_status(mailbox, &status_update(SyncOutcome::Success))
                .await
                .expect("status");
        }
    };
    pull(ma, Some("ck-EA")).await;
    pull(mb, None).await;
    assert_eq!(s.reconcile_pushed().await.expect("reconcile"), (0, 1));
    let r1 = s.booking("r1").await.expect("read").expect("r1");
    assert_eq!(target(&r1, "a@x.example").state, TargetState::Synced);
    let gone = target(&r1, "b@x.example");
    assert_eq!(gone.state, TargetState::DeletedInExchange);
    assert!(
        gone.error
            .as_deref()
            .is_some_and(|e| e.contains("deleted in Exchange"))
    );
    let r2 = s.booking("r2").await.expect("read").expect("r2");
    assert_eq!(
        target(&r2, "b@x.example").state,
        TargetState::Synced,
        "outside the window"
    );
    assert_eq!(s.pending_pushes().await.expect("outbox"), 0);

    // Edited in Exchange (another change key): app-wins puts the booking back.
    pull(ma, Some("ck-outlook")).await;
    assert_eq!(s.reconcile_pushed().await.expect("reconcile"), (1, 0));
    let r1 = s.booking("r1").await.expect("read").expect("r1");
    assert_eq!(target(&r1, "a@x.example").state, TargetState::Pending);
    let due = due_of(s, "r1", Timestamp::now()).await;
    assert_eq!(due.len(), 1);
    assert_eq!((due[0].op, due[0].version), (PushOp::Upsert, 1));
    assert_eq!(
        s.reconcile_pushed().await.expect("reconcile"),
        (0, 0),
        "queued already"
    );
    // Written back; edited again under the report policy: marked, left alone.
    push_once(s, "r1", "a@x.example", written("EA", None)).await;
    assert!(
        s.set_outlook_edits("c", calgate_core::booking::OutlookEdits::Report)
            .await
            .expect("policy")
    );
    assert_eq!(s.reconcile_pushed().await.expect("reconcile"), (0, 0));
    let r1 = s.booking("r1").await.expect("read").expect("r1");
    assert_eq!(target(&r1, "a@x.example").state, TargetState::Drifted);
    assert_eq!(s.pending_pushes().await.expect("outbox"), 0);
    let log = s.changes_after(0, 100).await.expect("log");
    let notices: Vec<_> = log
        .iter()
        .filter(|r| matches!(r.change, Change::Notice { .. }))
        .collect();
    let kinds: Vec<_> = notices.iter().map(|r| r.event_type()).collect();
    assert_eq!(
        kinds,
        vec![
            "booking.synced",
            "booking.synced",
            "booking.synced",
            "booking.deleted_in_exchange",
            "booking.synced",
            "booking.drifted",
        ]
    );
    assert_eq!(notices[3].mailbox, Some(mb));
    assert_eq!(notices[5].mailbox, Some(ma));
}

/// A role (the webhook dispatcher, the subscription keeper) has one holder at a time: others
/// are refused while its lease is live, take it once it lapses or is given up, and a holder
/// extends its own.
pub async fn role_leases_have_one_holder_at_a_time(f: &Fixture) {
    let s = f.store.as_ref();
    let (a, b) = (holder("A"), holder("B"));
    let short = SignedDuration::from_millis(300);
    let long = SignedDuration::from_secs(60);
    assert!(s.hold_role("webhooks", &a, short).await.expect("a takes"));
    assert!(!s.hold_role("webhooks", &b, long).await.expect("b refused"));
    // Another role is free.
    assert!(
        s.hold_role("subscriptions", &b, long)
            .await
            .expect("b other role")
    );
    // A extends its own lease; B is still refused.
    assert!(s.hold_role("webhooks", &a, short).await.expect("a renews"));
    assert!(
        !s.hold_role("webhooks", &b, long)
            .await
            .expect("b refused again")
    );
    let roles = s.roles().await.expect("roles");
    assert_eq!(
        roles
            .iter()
            .map(|(r, h, _)| (r.as_str(), h.id.as_str()))
            .collect::<Vec<_>>(),
        vec![("subscriptions", "B"), ("webhooks", "A")]
    );
    // A stops renewing: at the deadline B takes over, and A is refused.
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert!(
        s.hold_role("webhooks", &b, long)
            .await
            .expect("b takes over")
    );
    assert!(!s.hold_role("webhooks", &a, short).await.expect("a lost it"));
    // Giving up: only the holder can; then A takes it at once.
    assert!(!s.release_role("webhooks", &a).await.expect("not a's"));
    assert!(s.release_role("webhooks", &b).await.expect("b gives up"));
    assert!(s.hold_role("webhooks", &a, long).await.expect("a again"));
    assert!(
        s.hold_role("webhooks", &a, SignedDuration::ZERO)
            .await
            .is_err(),
        "a lease needs a duration"
    );
}
