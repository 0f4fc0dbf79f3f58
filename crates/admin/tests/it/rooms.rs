//! `rooms discover`: real HTTP to the in-process simulator, a real SQLite file.

use std::collections::BTreeSet;

use calgate_admin::rooms::{self, LinkOutcome, RoomsError, RoomsOptions, RoomsReport};
use calgate_core::{MailboxKind, PrivacyPolicy};
use calgate_graph::Shared;
use calgate_store::NewMailbox;
use serde_json::json;

use crate::common::{self, Env};

async fn env() -> Env {
    Env::start(
        common::demo(5),
        reqwest::Client::new(),
        Shared::new().expect("shared"),
    )
    .await
}

impl Env {
    async fn discover(
        &self,
        connection: &str,
        room_list: Option<&str>,
        link: bool,
    ) -> Result<RoomsReport, RoomsError> {
        rooms::discover(
            self.store.as_ref(),
            &self.shared,
            connection,
            &RoomsOptions {
                room_list: room_list.map(str::to_owned),
                link,
            },
        )
        .await
    }
}

const HQ: [&str; 5] = [
    "room-amstel@contoso.example",
    "room-vondel@contoso.example",
    "room-jordaan@contoso.example",
    "room-noord@contoso.example",
    "room-zuid@contoso.example",
];
const LON: [&str; 3] = [
    "room-thames@contoso.example",
    "room-soho@contoso.example",
    "room-camden@contoso.example",
];

fn emails<'a>(rooms: impl Iterator<Item = &'a rooms::RoomEntry>) -> BTreeSet<String> {
    rooms.map(|r| r.email.to_lowercase()).collect()
}

fn set(a: &[&str]) -> BTreeSet<String> {
    a.iter().map(|s| s.to_owned().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discover_lists_room_lists_filters_and_links_rooms_idempotently() {
    let env = env().await;
    let (id, secret) = env.app("calgate");
    env.add_connection("contoso", &id, &secret).await;
    let (rid, rsecret) = env.app("calgate-readonly");
    env.add_connection("other", &rid, &rsecret).await;
    // A room in no room list.
    env.control_ok(
        reqwest::Method::POST,
        "/mailboxes",
        Some(
            json!({"address": "room-annex@contoso.example", "display_name": "Annex Studio",
               "kind": "room", "room": {"capacity": 3, "building": "Annex", "floor_label": "G"}}),
        ),
    )
    .await;

    // ---- list everything ----
    let all = env
        .discover("contoso", None, false)
        .await
        .expect("discover");
    let lists: Vec<&str> = all.room_lists.iter().map(|l| l.email.as_str()).collect();
    assert_eq!(
        lists.iter().copied().collect::<BTreeSet<_>>(),
        ["rooms-hq@contoso.example", "rooms-lon@contoso.example"]
            .into_iter()
            .collect(),
        "{lists:?}"
    );
    let hq = all
        .room_lists
        .iter()
        .find(|l| l.email == "rooms-hq@contoso.example")
        .expect("hq");
    assert_eq!(emails(hq.rooms.iter()), set(&HQ));
    let lon = all
        .room_lists
        .iter()
        .find(|l| l.email == "rooms-lon@contoso.example")
        .expect("lon");
    assert_eq!(emails(lon.rooms.iter()), set(&LON));
    let amstel = hq
        .rooms
        .iter()
        .find(|r| r.email == "room-amstel@contoso.example")
        .expect("amstel");
    assert_eq!(amstel.capacity, Some(12));
    assert!(amstel.building.is_some(), "{amstel:?}");
    let zuid = hq
        .rooms
        .iter()
        .find(|r| r.email == "room-zuid@contoso.example")
        .expect("zuid");
    assert_eq!(zuid.capacity, Some(20));
    assert_eq!(
        emails(all.unlisted_rooms.iter()),
        set(&["room-annex@contoso.example"])
    );
    assert_eq!(all.unlisted_rooms[0].capacity, Some(3));
    assert_eq!(all.unlisted_rooms[0].building.as_deref(), Some("Annex"));
    assert_eq!((all.summary.room_lists, all.summary.rooms), (2, 9));
    assert!(all.rooms().all(|r| r.link.is_none()));
    assert!(
        env.store.list_mailboxes().await.expect("list").is_empty(),
        "listing wrote"
    );
    let text = all.render_text();
    assert!(
        text.contains("Room list rooms-hq@contoso.example"),
        "{text}"
    );
    assert!(text.contains("Rooms in no room list: 1"), "{text}");
    assert!(text.contains("add --link"), "{text}");
    let json = all.to_json();
    assert_eq!(json["summary"]["rooms"], 9);
    assert!(
        json["room_lists"][0]["rooms"][0]["email"].is_string(),
        "{json}"
    );

    // ---- --room-list filters (case-insensitively) ----
    let only = env
        .discover("contoso", Some("ROOMS-LON@contoso.example"), false)
        .await
        .expect("filtered");
    assert_eq!(only.room_lists.len(), 1);
    assert_eq!(emails(only.rooms()), set(&LON));
    assert!(only.unlisted_rooms.is_empty());
    let e = env
        .discover("contoso", Some("rooms-nyc@contoso.example"), false)
        .await
        .expect_err("unknown list");
    assert!(matches!(e, RoomsError::UnknownRoomList { .. }), "{e}");
    assert!(e.to_string().contains("rooms-hq@contoso.example"), "{e}");

    // ---- --link ----
    // room-soho is linked as a user already (same connection); room-camden to another one.
    for (addr, conn) in [
        ("room-soho@contoso.example", "contoso"),
        ("room-camden@contoso.example", "other"),
    ] {
        env.store
            .link_mailbox(&NewMailbox {
                address: addr.into(),
                connection: conn.into(),
                kind: Some(MailboxKind::User),
                external_id: Some("desk-7".into()),
                privacy: Some(PrivacyPolicy::BusyOnly),
            })
            .await
            .expect("pre-link");
    }
    let linked = env
        .discover("contoso", None, true)
        .await
        .expect("discover --link");
    let outcome = |r: &RoomsReport, addr: &str| {
        r.rooms()
            .find(|x| x.email == addr)
            .and_then(|x| x.link)
            .unwrap_or_else(|| panic!("no outcome for {addr}"))
    };
    assert_eq!(
        outcome(&linked, "room-amstel@contoso.example"),
        LinkOutcome::Linked
    );
    assert_eq!(
        outcome(&linked, "room-annex@contoso.example"),
        LinkOutcome::Linked
    );
    assert_eq!(
        outcome(&linked, "room-soho@contoso.example"),
        LinkOutcome::Updated
    );
    assert_eq!(
        outcome(&linked, "room-camden@contoso.example"),
        LinkOutcome::LinkedElsewhere
    );
    eprintln!("{}", linked.render_text());
    let s = &linked.summary;
    assert_eq!(
        (s.linked, s.updated, s.already_linked, s.linked_elsewhere),
        (7, 1, 0, 1),
        "{}",
        linked.summary_line()
    );
    let stored = env.store.list_mailboxes().await.expect("list");
    let rooms_of_contoso: BTreeSet<String> = stored
        .iter()
        .filter(|m| m.connection == "contoso")
        .map(|m| {
            assert_eq!(m.kind, MailboxKind::Room, "{m:?}");
            m.address.to_lowercase()
        })
        .collect();
    let mut want = set(&HQ);
    want.extend(set(&[
        "room-thames@contoso.example",
        "room-soho@contoso.example",
    ]));
    want.insert("room-annex@contoso.example".into());
    assert_eq!(rooms_of_contoso, want);
    let soho = env
        .store
        .mailbox("room-soho@contoso.example")
        .await
        .expect("read")
        .expect("soho");
    assert_eq!(
        (soho.external_id.as_deref(), soho.privacy),
        (Some("desk-7"), PrivacyPolicy::BusyOnly),
        "an update to room keeps the host's id and privacy"
    );
    let camden = env
        .store
        .mailbox("room-camden@contoso.example")
        .await
        .expect("read")
        .expect("camden");
    assert_eq!(
        (camden.connection.as_str(), camden.kind),
        ("other", MailboxKind::User)
    );
    assert!(
        linked.render_text().contains("linked elsewhere"),
        "{}",
        linked.render_text()
    );

    // ---- a second --link changes nothing ----
    let before = env.store.list_mailboxes().await.expect("list");
    let again = env.discover("contoso", None, true).await.expect("again");
    let s = &again.summary;
    assert_eq!(
        (s.linked, s.updated, s.already_linked, s.linked_elsewhere),
        (0, 0, 8, 1),
        "{}",
        again.summary_line()
    );
    assert!(
        again
            .rooms()
            .filter(|r| r.email != "room-camden@contoso.example")
            .all(|r| r.link == Some(LinkOutcome::AlreadyLinked))
    );
    assert_eq!(env.store.list_mailboxes().await.expect("list"), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_without_place_read_all_gets_the_fix() {
    let env = env().await;
    let v = env
        .control_ok(
            reqwest::Method::POST,
            "/apps",
            Some(json!({"name": "calendars-only", "roles": ["Calendars.ReadWrite"]})),
        )
        .await;
    let id = v["client_id"].as_str().expect("id").to_owned();
    env.add_connection(
        "no-places",
        &id,
        v["client_secret"].as_str().expect("secret"),
    )
    .await;
    let e = env
        .discover("no-places", None, true)
        .await
        .expect_err("refused");
    assert!(matches!(e, RoomsError::MissingPlaceReadAll { .. }), "{e}");
    let msg = e.to_string();
    for needle in [
        "Place.Read.All",
        "Application permissions",
        "Grant admin consent",
        id.as_str(),
        "calgate connection test no-places",
    ] {
        assert!(msg.contains(needle), "missing {needle:?} in: {msg}");
    }
    assert!(env.store.list_mailboxes().await.expect("list").is_empty());

    let e = env
        .discover("nope", None, false)
        .await
        .expect_err("unknown connection");
    assert!(matches!(e, RoomsError::UnknownConnection(_)), "{e}");

    // A connection that cannot sign in says why, in Entra's terms.
    let (id, _) = env.app("calgate");
    env.add_connection("wrong-secret", &id, "not-the-secret")
        .await;
    let e = env
        .discover("wrong-secret", None, false)
        .await
        .expect_err("cannot sign in");
    match &e {
        RoomsError::Graph { source, .. } => {
            assert_eq!(source.code.as_deref(), Some("AADSTS7000215"), "{e}")
        }
        other => panic!("unexpected {other}"),
    }
}
