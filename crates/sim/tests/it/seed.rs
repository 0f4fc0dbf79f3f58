//! The seeded tenants (`demo`, `empty`, `--scale`, `--rng`) and the directory control API
//! (`/_sim/tenant`, `/_sim/mailboxes`, `/_sim/groups`, `/_sim/room-lists`, `/_sim/clock`,
//! `/_sim/credentials`).

use std::collections::{BTreeSet, HashSet};

use calgate_recurrence::PatternType;
use calgate_sim::model::{MailboxKind, Sensitivity, ShowAs};
use reqwest::Method;

use crate::common::*;

fn users_of(sim: &TestSim, kind: MailboxKind) -> Vec<String> {
    let dir = sim.sim.state.dir();
    dir.tenants[0]
        .users()
        .filter(|u| u.kind == kind)
        .map(|u| u.mail.clone())
        .collect()
}

#[tokio::test]
async fn demo_has_people_rooms_equipment_lists_and_groups() {
    let sim = start(Seed::Demo).await;
    let (s, t) = sim.control(Method::GET, "/tenant", None).await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(t["id"], sim.tenant());
    assert_eq!(t["default_domain"], "contoso.onmicrosoft.com");
    assert!(
        t["domains"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d == "contoso.example"),
        "{t}"
    );
    assert_eq!(t["counts"]["users"], 25, "{t}");
    assert_eq!(t["counts"]["rooms"], 8, "{t}");
    assert_eq!(t["counts"]["equipment"], 4, "{t}");
    assert_eq!(t["counts"]["room_lists"], 2, "{t}");
    assert!(t["counts"]["events"].as_u64().unwrap() > 500, "{t}");

    let people = users_of(&sim, MailboxKind::User);
    assert!(
        people
            .iter()
            .all(|m| m.ends_with("@contoso.example") && m.contains('.'))
    );
    let dir = sim.sim.state.dir();
    let tenant = &dir.tenants[0];
    for u in tenant.users() {
        assert_eq!(u.upn, u.mail);
        if u.kind == MailboxKind::User {
            assert!(
                u.job_title.is_some() && u.department.is_some(),
                "{}",
                u.mail
            );
            let n = u.default_calendar().unwrap().events.len();
            assert!((20..=60).contains(&n), "{} has {n} stored items", u.mail);
        }
        if u.kind == MailboxKind::Room {
            let r = u.room.as_ref().expect("room info");
            assert!(r.capacity.unwrap() > 0 && r.building.is_some() && r.floor_number.is_some());
            assert!(
                !u.default_calendar().unwrap().events.is_empty(),
                "room {} has no bookings",
                u.mail
            );
        }
    }
    let zones: BTreeSet<&str> = tenant
        .users()
        .filter(|u| u.kind == MailboxKind::User)
        .map(|u| u.time_zone.as_str())
        .collect();
    for z in [
        "W. Europe Standard Time",
        "GMT Standard Time",
        "Eastern Standard Time",
        "Pacific Standard Time",
        "India Standard Time",
        "AUS Eastern Standard Time",
        "Tokyo Standard Time",
    ] {
        assert!(zones.contains(z), "no person in {z}");
    }
    let hq = tenant
        .room_lists
        .iter()
        .find(|l| l.email == "rooms-hq@contoso.example")
        .unwrap();
    let lon = tenant
        .room_lists
        .iter()
        .find(|l| l.email == "rooms-lon@contoso.example")
        .unwrap();
    assert_eq!(hq.rooms.len() + lon.rooms.len(), 8);
    let scope = tenant.group("calgate-scope@contoso.example").unwrap();
    assert!(scope.members.len() >= 3 && scope.members.len() < tenant.user_count());
    let all_rooms = tenant.group("all-rooms@contoso.example").unwrap();
    assert_eq!(all_rooms.members.len(), 8);
}

#[tokio::test]
async fn demo_publishes_apps_main_first_with_scoped_and_expired() {
    let sim = start(Seed::Demo).await;
    let c = sim.creds();
    let names: Vec<&str> = c["apps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        &names[..3],
        &["calgate", "calgate-readonly", "calgate-scoped"],
        "{names:?}"
    );
    assert!(
        c["apps"][0]["roles"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "Calendars.ReadWrite")
    );
    assert_eq!(c["mailboxes"].as_array().unwrap().len(), 37);
    let dir = sim.sim.state.dir();
    let t = &dir.tenants[0];
    let now = sim.sim.state.now();
    let app = |n: &str| t.apps.iter().find(|a| a.display_name == n).unwrap();
    let main = app("calgate");
    assert!(
        main.secrets[0].expires
            > now
                .checked_add(jiff::SignedDuration::from_hours(24 * 300))
                .unwrap()
    );
    let ro = app("calgate-readonly");
    assert!(
        ro.app_roles.contains("Calendars.Read") && !ro.app_roles.contains("Calendars.ReadWrite")
    );
    let scoped = app("calgate-scoped");
    assert!(!scoped.app_roles.iter().any(|r| r.starts_with("Calendars.")));
    let scope = t.group("calgate-scope@contoso.example").unwrap().id;
    assert!(
        scoped
            .rbac
            .iter()
            .any(|r| r.permission == "Calendars.ReadWrite" && r.scope_group == Some(scope))
    );
    let expired = t
        .apps
        .iter()
        .find(|a| a.secrets.iter().all(|s| s.expires < now))
        .expect("an app with an expired secret");
    assert!(!expired.secrets.is_empty());
}

#[tokio::test]
async fn demo_events_cover_every_show_as_sensitivity_and_pattern() {
    let sim = start(Seed::Demo).await;
    let dir = sim.sim.state.dir();
    let t = &dir.tenants[0];
    let mut show = BTreeSet::new();
    let mut sens = BTreeSet::new();
    let mut patterns = HashSet::new();
    let mut zones = BTreeSet::new();
    let (mut exceptions, mut cancelled, mut all_day, mut multi_day, mut private) = (0, 0, 0, 0, 0);
    for u in t.users() {
        for e in u.default_calendar().unwrap().events.values() {
            show.insert(format!("{:?}", e.data.show_as));
            sens.insert(format!("{:?}", e.data.sensitivity));
            zones.insert(e.data.start.time_zone.clone());
            if let Some(r) = &e.recurrence {
                patterns.insert(r.rule.pattern.kind);
                r.rule.validate().unwrap();
            }
            exceptions += e.exceptions.len();
            cancelled += e.cancelled.len();
            if e.data.is_all_day {
                all_day += 1;
                assert_eq!(e.data.start.date_time.time(), jiff::civil::Time::midnight());
                if e.data
                    .start
                    .date_time
                    .date()
                    .until(e.data.end.date_time.date())
                    .unwrap()
                    .get_days()
                    > 1
                {
                    multi_day += 1;
                }
            }
            if e.data.sensitivity == Sensitivity::Private {
                private += 1;
            }
            assert!(
                e.data.end.date_time >= e.data.start.date_time,
                "{}",
                e.data.subject
            );
        }
    }
    for s in [
        ShowAs::Free,
        ShowAs::Tentative,
        ShowAs::Busy,
        ShowAs::Oof,
        ShowAs::WorkingElsewhere,
        ShowAs::Unknown,
    ] {
        assert!(show.contains(&format!("{s:?}")), "no {s:?} in {show:?}");
    }
    for s in [
        Sensitivity::Normal,
        Sensitivity::Personal,
        Sensitivity::Private,
        Sensitivity::Confidential,
    ] {
        assert!(sens.contains(&format!("{s:?}")), "no {s:?} in {sens:?}");
    }
    for p in [
        PatternType::Daily,
        PatternType::Weekly,
        PatternType::AbsoluteMonthly,
        PatternType::RelativeMonthly,
        PatternType::AbsoluteYearly,
        PatternType::RelativeYearly,
    ] {
        assert!(patterns.contains(&p), "no {p} series");
    }
    assert!(zones.len() >= 4, "{zones:?}");
    assert!(
        exceptions >= 10 && cancelled >= 10,
        "exceptions {exceptions}, cancelled {cancelled}"
    );
    assert!(
        all_day >= 25 && multi_day >= 5,
        "all-day {all_day}, multi-day {multi_day}"
    );
    assert!(private >= 10);
}

#[tokio::test]
async fn demo_meeting_appears_in_organizer_attendee_and_room_calendars() {
    let sim = start(Seed::Demo).await;
    let dir = sim.sim.state.dir();
    let t = &dir.tenants[0];
    let room = t.user("room-amstel@contoso.example").unwrap();
    // A room booking: the same iCalUId is in the organizer's calendar, organised by them.
    let mut checked = 0;
    for e in room.default_calendar().unwrap().events.values() {
        let org = t
            .user(&e.data.organizer.address)
            .expect("organizer is a tenant mailbox");
        let copy = org
            .default_calendar()
            .unwrap()
            .events
            .values()
            .find(|o| o.ical_uid == e.ical_uid)
            .expect("organizer copy");
        assert_ne!(copy.id, e.id, "copies have their own item ids");
        assert_eq!(copy.data.start, e.data.start);
        assert!(
            copy.data
                .attendees
                .iter()
                .any(|a| a.email.address == room.mail
                    && a.kind == calgate_sim::model::AttendeeType::Resource)
        );
        for a in &copy.data.attendees {
            let att = t.user(&a.email.address).unwrap();
            assert!(
                att.default_calendar()
                    .unwrap()
                    .events
                    .values()
                    .any(|o| o.ical_uid == e.ical_uid),
                "{} lacks the meeting {}",
                att.mail,
                e.data.subject
            );
        }
        checked += 1;
    }
    assert!(checked >= 5);
}

/// (tenant id, users, (event id, subject), app client ids).
type Fingerprint = (String, Vec<String>, Vec<(String, String)>, Vec<String>);

fn fingerprint(sim: &TestSim) -> Fingerprint {
    let dir = sim.sim.state.dir();
    let t = &dir.tenants[0];
    let users = t.users().map(|u| format!("{} {}", u.id, u.mail)).collect();
    let events = t
        .users()
        .flat_map(|u| u.default_calendar().unwrap().events.values())
        .map(|e| (e.id.clone(), e.data.subject.clone()))
        .collect();
    let apps = t.apps.iter().map(|a| a.client_id.to_string()).collect();
    (t.id.to_string(), users, events, apps)
}

#[tokio::test]
async fn same_rng_gives_same_tenant_and_different_rng_differs() {
    let a = start_with(SimOptions {
        rng: 11,
        ..SimOptions::default()
    })
    .await;
    let b = start_with(SimOptions {
        rng: 11,
        ..SimOptions::default()
    })
    .await;
    let c = start_with(SimOptions {
        rng: 12,
        ..SimOptions::default()
    })
    .await;
    let (fa, fb, fc) = (fingerprint(&a), fingerprint(&b), fingerprint(&c));
    assert_eq!(fa, fb);
    assert_eq!(a.creds()["apps"], b.creds()["apps"]);
    assert_ne!(fa.0, fc.0);
    assert_ne!(fa.1, fc.1);
    assert_ne!(fa.2, fc.2);
}

#[tokio::test]
async fn scale_adds_mailboxes_with_events() {
    let sim = start_with(SimOptions {
        rng: 3,
        scale: 20,
        ..SimOptions::default()
    })
    .await;
    let (_, t) = sim.control(Method::GET, "/tenant", None).await;
    assert_eq!(t["counts"]["users"], 25 + 20, "{t}");
    {
        let dir = sim.sim.state.dir();
        let tenant = &dir.tenants[0];
        for i in 1..=20 {
            let u = tenant
                .user(&format!("user{i:05}@contoso.example"))
                .expect("scale mailbox");
            assert_eq!(u.kind, MailboxKind::User);
            let evs = &u.default_calendar().unwrap().events;
            let series = evs.values().filter(|e| e.recurrence.is_some()).count();
            let singles = evs.len() - series;
            assert!(
                singles >= 80 && series >= 4,
                "{}: {singles} singles, {series} series",
                u.mail
            );
            assert!(evs.values().any(|e| e.data.is_all_day));
            assert!(
                evs.values()
                    .any(|e| !e.exceptions.is_empty() || !e.cancelled.is_empty())
            );
        }
        assert!(tenant.user("user00021@contoso.example").is_none());
    }

    let empty = start_with(SimOptions {
        seed: Seed::Empty,
        scale: 3,
        ..SimOptions::default()
    })
    .await;
    let (_, t) = empty.control(Method::GET, "/tenant", None).await;
    assert_eq!(t["counts"]["users"], 3, "{t}");
}

#[tokio::test]
async fn empty_seed_has_only_the_main_app() {
    let sim = start(Seed::Empty).await;
    let c = sim.creds();
    assert_eq!(c["apps"].as_array().unwrap().len(), 1);
    assert_eq!(c["apps"][0]["name"], "calgate");
    assert_eq!(c["mailboxes"].as_array().unwrap().len(), 0);
    let (s, t) = sim.control(Method::GET, "/tenant", None).await;
    assert_eq!(s, 200);
    assert_eq!(t["counts"]["mailboxes"], 0);
}

#[tokio::test]
async fn room_events_are_listed_over_graph() {
    let sim = start(Seed::Demo).await;
    let token = sim.default_token().await;
    let (s, _, body) = sim
        .get(
            &token,
            "/v1.0/users/room-soho@contoso.example/events?$top=50",
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert!(!body["value"].as_array().unwrap().is_empty(), "{body}");
}

// ---------------------------------------------------------------------------------------------
// Control API: directory
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn control_mailbox_create_update_delete() {
    let sim = start(Seed::Empty).await;
    let body = json!({"address": "new.person@contoso.example", "display_name": "New Person",
        "kind": "user", "time_zone": "Pacific Standard Time",
        "working_hours": {"days_of_week": ["monday", "tuesday"], "start_time": "07:30", "end_time": "15:30"}});
    let (s, v) = sim.control(Method::POST, "/mailboxes", Some(&body)).await;
    assert_eq!(s, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_owned();
    assert_eq!(v["working_hours"]["start_time"], "07:30:00");
    assert_eq!(v["working_hours"]["time_zone"], "Pacific Standard Time");
    assert_eq!(v["event_count"], 0);

    // Duplicate (case-insensitive) → 409.
    let dup = json!({"address": "New.Person@contoso.example"});
    let (s, v) = sim.control(Method::POST, "/mailboxes", Some(&dup)).await;
    assert_eq!(s, 409, "{v}");
    assert_graph_error(&v, "Conflict");

    // A room with room info.
    let room = json!({"address": "room-new@contoso.example", "display_name": "Room New", "kind": "room",
        "room": {"capacity": 8, "building": "Annex", "floor_number": 2}});
    let (s, v) = sim.control(Method::POST, "/mailboxes", Some(&room)).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["room"]["capacity"], 8);

    let (s, list) = sim.control(Method::GET, "/mailboxes", None).await;
    assert_eq!(s, 200);
    assert_eq!(list["count"], 2, "{list}");
    assert!(
        list["mailboxes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == id.as_str() && m["kind"] == "user")
    );

    // Rename, change zone, disable the mailbox.
    let patch = json!({"display_name": "Renamed Person", "time_zone": "Tokyo Standard Time", "has_mailbox": false});
    let (s, v) = sim
        .control(
            Method::PATCH,
            "/mailboxes/new.person@contoso.example",
            Some(&patch),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["display_name"], "Renamed Person");
    assert_eq!(v["time_zone"], "Tokyo Standard Time");
    assert_eq!(v["has_mailbox"], false);
    // By id, change the address and kind.
    let patch = json!({"address": "moved@contoso.example", "kind": "equipment"});
    let (s, v) = sim
        .control(Method::PATCH, &format!("/mailboxes/{id}"), Some(&patch))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["kind"], "equipment");
    let (s, _) = sim
        .control(Method::GET, "/mailboxes/new.person@contoso.example", None)
        .await;
    assert_eq!(s, 404);
    let (s, v) = sim
        .control(Method::GET, "/mailboxes/moved@contoso.example", None)
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["id"], id.as_str());

    let (s, _) = sim
        .control(Method::DELETE, "/mailboxes/moved@contoso.example", None)
        .await;
    assert_eq!(s, 204);
    let (s, v) = sim
        .control(Method::DELETE, "/mailboxes/moved@contoso.example", None)
        .await;
    assert_eq!(s, 404);
    assert_graph_error(&v, "ErrorInvalidUser");
    let (s, _) = sim
        .control(
            Method::PATCH,
            "/mailboxes/nobody@contoso.example",
            Some(&json!({"display_name": "x"})),
        )
        .await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn control_mailbox_rejects_bad_input() {
    let sim = start(Seed::Empty).await;
    let cases = [
        json!({"address": "not-an-address"}),
        json!({"address": "a@elsewhere.example"}),
        json!({"address": "a@contoso.example", "kind": "robot"}),
        json!({"address": "a@contoso.example", "time_zone": "Mars/Olympus"}),
        json!({"address": "a@contoso.example", "unknown_field": 1}),
        json!({"address": "a@contoso.example", "kind": "user", "room": {"capacity": 3}}),
        json!({"address": "a@contoso.example", "working_hours": {"start_time": "25:00"}}),
        json!({"address": "a@contoso.example", "working_hours": {"start_time": "17:00", "end_time": "09:00"}}),
        json!({"display_name": "no address"}),
        json!([1, 2]),
    ];
    for c in &cases {
        let (s, v) = sim.control(Method::POST, "/mailboxes", Some(c)).await;
        assert_eq!(s, 400, "{c} → {v}");
        assert_graph_error(&v, "BadRequest");
        assert!(v["error"]["message"].as_str().unwrap().len() > 10, "{v}");
    }
    // Malformed JSON and an empty body.
    for raw in ["{", ""] {
        let r = sim
            .http
            .post(sim.url("/_sim/mailboxes"))
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        let v: Value = r.json().await.unwrap();
        assert_graph_error(&v, "BadRequest");
    }
    let (_, list) = sim.control(Method::GET, "/mailboxes", None).await;
    assert_eq!(list["count"], 0);
}

#[tokio::test]
async fn control_groups_and_room_lists() {
    let sim = start(Seed::Demo).await;
    let g = json!({"display_name": "Pilot", "mail": "pilot@contoso.example",
        "members": ["eva.jansen@contoso.example", "room-soho@contoso.example"]});
    let (s, v) = sim.control(Method::POST, "/groups", Some(&g)).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["members"].as_array().unwrap().len(), 2);
    let (s, _) = sim.control(Method::POST, "/groups", Some(&g)).await;
    assert_eq!(s, 409);
    let (s, v) = sim.control(Method::POST, "/groups", Some(&json!({"display_name": "X", "mail": "x@contoso.example", "members": ["ghost@contoso.example"]}))).await;
    assert_eq!(s, 404, "{v}");

    let (s, v) = sim
        .control(
            Method::POST,
            "/groups/pilot@contoso.example/members",
            Some(&json!({"address": "anna.devries@contoso.example"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert!(
        v["members"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m == "anna.devries@contoso.example")
    );
    let (s, v) = sim
        .control(
            Method::DELETE,
            "/groups/pilot@contoso.example/members/eva.jansen@contoso.example",
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["members"].as_array().unwrap().len(), 2);
    let (s, _) = sim
        .control(
            Method::DELETE,
            "/groups/pilot@contoso.example/members/eva.jansen@contoso.example",
            None,
        )
        .await;
    assert_eq!(s, 404);
    {
        let dir = sim.sim.state.dir();
        let t = &dir.tenants[0];
        let grp = t.group("pilot@contoso.example").unwrap();
        assert!(
            grp.members
                .contains(&t.user_id("anna.devries@contoso.example").unwrap())
        );
    }
    // The RBAC scope group cannot be deleted while in use.
    let (s, _) = sim
        .control(
            Method::DELETE,
            "/groups/calgate-scope@contoso.example",
            None,
        )
        .await;
    assert_eq!(s, 409);
    let (s, _) = sim
        .control(Method::DELETE, "/groups/pilot@contoso.example", None)
        .await;
    assert_eq!(s, 204);
    let (_, groups) = sim.control(Method::GET, "/groups", None).await;
    assert!(
        groups["groups"]
            .as_array()
            .unwrap()
            .iter()
            .all(|g| g["mail"] != "pilot@contoso.example")
    );

    // Room lists: only rooms.
    let rl = json!({"email": "rooms-annex@contoso.example", "display_name": "Annex", "rooms": ["room-soho@contoso.example"]});
    let (s, v) = sim.control(Method::POST, "/room-lists", Some(&rl)).await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = sim
        .control(
            Method::POST,
            "/room-lists/rooms-annex@contoso.example/rooms",
            Some(&json!({"address": "eva.jansen@contoso.example"})),
        )
        .await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = sim
        .control(
            Method::POST,
            "/room-lists/rooms-annex@contoso.example/rooms",
            Some(&json!({"address": "room-camden@contoso.example"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["rooms"].as_array().unwrap().len(), 2);
    let (s, v) = sim
        .control(
            Method::DELETE,
            "/room-lists/rooms-annex@contoso.example/rooms/room-soho@contoso.example",
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["rooms"], json!(["room-camden@contoso.example"]));
    let (_, lists) = sim.control(Method::GET, "/room-lists", None).await;
    assert_eq!(lists["room_lists"].as_array().unwrap().len(), 3);
    // Turning a room into a user mailbox removes it from room lists.
    let (s, _) = sim
        .control(
            Method::PATCH,
            "/mailboxes/room-camden@contoso.example",
            Some(&json!({"kind": "user"})),
        )
        .await;
    assert_eq!(s, 200);
    let (_, v) = sim
        .control(Method::GET, "/room-lists/rooms-annex@contoso.example", None)
        .await;
    assert_eq!(v["rooms"], json!([]));
    // Deleting a mailbox removes it from groups.
    let (s, _) = sim
        .control(
            Method::DELETE,
            "/mailboxes/eva.jansen@contoso.example",
            None,
        )
        .await;
    assert_eq!(s, 204);
    let (_, v) = sim
        .control(Method::GET, "/groups/calgate-scope@contoso.example", None)
        .await;
    assert!(
        v["members"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m != "eva.jansen@contoso.example"),
        "{v}"
    );
}

#[tokio::test]
async fn control_clock_advances_simulated_time() {
    let sim = start(Seed::Empty).await;
    let (s, before) = sim.control(Method::GET, "/clock", None).await;
    assert_eq!(s, 200);
    assert_eq!(before["offset_seconds"], 0);
    let (s, v) = sim
        .control(
            Method::POST,
            "/clock",
            Some(&json!({"advance_seconds": 7200})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let off = v["offset_seconds"].as_i64().unwrap();
    assert!((7199..=7200).contains(&off), "{v}");
    let now: jiff::Timestamp = v["now"].as_str().unwrap().parse().unwrap();
    assert!(
        now > jiff::Timestamp::now()
            .checked_add(jiff::SignedDuration::from_secs(7000))
            .unwrap()
    );
    assert!(
        sim.sim.state.now()
            > jiff::Timestamp::now()
                .checked_add(jiff::SignedDuration::from_secs(7000))
                .unwrap()
    );
    let (s, _) = sim
        .control(
            Method::POST,
            "/clock",
            Some(&json!({"advance_seconds": -7200})),
        )
        .await;
    assert_eq!(s, 200);
    for bad in [
        json!({}),
        json!({"advance_seconds": "soon"}),
        json!({"advance_seconds": 9_000_000_000i64}),
        json!({"now": "tomorrow"}),
    ] {
        let (s, v) = sim.control(Method::POST, "/clock", Some(&bad)).await;
        assert_eq!(s, 400, "{bad} → {v}");
    }
}

#[tokio::test]
async fn control_credentials_match_the_handle() {
    let sim = start(Seed::Demo).await;
    let (s, v) = sim.control(Method::GET, "/credentials", None).await;
    assert_eq!(s, 200);
    let h = sim.creds();
    assert_eq!(v["tenant_id"], h["tenant_id"]);
    assert_eq!(v["graph_url"], h["graph_url"]);
    assert_eq!(v["authority"], h["authority"]);
    assert_eq!(v["apps"], h["apps"]);
    assert_eq!(v["mailboxes"], h["mailboxes"]);
    assert_eq!(v["graph_url"], format!("{}/v1.0", sim.sim.base_url));
}
