//! calendarView paging, delta rounds (initial, follow, @removed, 410), writes, $batch.

use std::collections::BTreeSet;

use crate::common::*;

/// Injects a delta fault into `mailbox`'s next delta requests.
async fn delta_fault(t: &T, mailbox: &str, fault: Value) {
    t.api
        .expect(
            reqwest::Method::POST,
            &format!("/mailboxes/{mailbox}/delta-faults"),
            Some(&fault),
            200,
        )
        .await;
}

fn ids(v: &[calgate_core::Instance]) -> BTreeSet<String> {
    v.iter().map(|i| i.exchange_id.clone()).collect()
}

#[tokio::test]
async fn calendar_view_pages_through_everything() {
    let t = start().await;
    let c = t.client("calgate");
    let mb = t.mailboxes("user")[0].clone();
    let (a, b) = window();
    let before = t.shared.metrics().requests_sent;
    let small = c.calendar_view_paged(&mb, a, b, 3).await.unwrap();
    let pages = t.shared.metrics().requests_sent - before;
    assert!(small.len() >= 9, "demo mailbox has events: {}", small.len());
    assert!(
        pages as usize >= small.len() / 3,
        "{pages} pages for {}",
        small.len()
    );
    let big = c.calendar_view(&mb, a, b).await.unwrap();
    assert_eq!(ids(&small), ids(&big));
    assert_eq!(small.len(), big.len(), "no duplicates across pages");
    for i in &big {
        assert_eq!(i.mailbox, mb);
        assert!(i.when.end >= i.when.start);
        assert!(i.web_link.is_some() && i.change_key.is_some(), "{i:?}");
        assert!(i.overlaps(a, b) || i.when.start == i.when.end);
        if i.kind != calgate_core::InstanceType::SingleInstance {
            assert!(i.series_master_id.is_some());
        }
        if let Some((sd, ed)) = i.when.all_day {
            assert!(sd < ed);
        }
    }
    // The truth, as the simulator's control API renders it.
    let truth = t
        .api
        .expect(
            reqwest::Method::GET,
            &format!("/mailboxes/{mb}/events?start={a}&end={b}"),
            None,
            200,
        )
        .await;
    let truth: BTreeSet<String> = truth["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids(&big), truth);
}

#[tokio::test]
async fn delta_initial_follow_and_removed() {
    let t = start().await;
    let c = t.client("calgate");
    let mb = t.mailboxes("user")[1].clone();
    let (a, b) = window();
    // First round, small pages: several nextLinks, then a deltaLink.
    let mut pages = 0;
    let mut req = DeltaRequest::Start {
        start: a,
        end: b,
        page_size: 4,
    };
    let mut upserts = BTreeSet::new();
    let delta_link = loop {
        let p = c.delta(&mb, req).await.unwrap();
        pages += 1;
        for i in p.items {
            match i {
                DeltaItem::Upsert(i) => {
                    upserts.insert(i.exchange_id.clone());
                }
                DeltaItem::Removed { .. } => panic!("nothing removed in a first round"),
            }
        }
        match p.next {
            DeltaNext::NextLink(l) => req = DeltaRequest::Follow(l),
            DeltaNext::DeltaLink(l) => break l,
        }
    };
    assert!(pages > 2, "{pages} pages");
    let view = c.calendar_view(&mb, a, b).await.unwrap();
    assert_eq!(upserts, ids(&view), "the first round is the calendar view");

    // Create one event through Graph (idempotent by transactionId), then follow the deltaLink.
    let start =
        jiff::Timestamp::from_second(jiff::Timestamp::now().as_second() / 60 * 60 + 48 * 3600)
            .unwrap();
    let draft = EventDraft {
        recurrence: None,
        subject: Some("calgate-graph test".into()),
        body_text: Some("hello".into()),
        start,
        end: start
            .checked_add(jiff::SignedDuration::from_mins(30))
            .unwrap(),
        time_zone: "Europe/London".into(),
        all_day: None,
        show_as: calgate_core::ShowAs::Tentative,
        sensitivity: calgate_core::Sensitivity::Normal,
        location: Some("Room 1".into()),
        attendees: vec![],
        extended_properties: vec![],
    };
    let tx = uuid::Uuid::new_v4().to_string();
    let created = c.create_event(&mb, &draft, &tx).await.unwrap();
    let again = c.create_event(&mb, &draft, &tx).await.unwrap();
    assert_eq!(
        created.exchange_id, again.exchange_id,
        "transactionId de-duplicates"
    );
    assert_eq!(created.when.start, start);
    assert_eq!(created.when.time_zone, "Europe/London");
    assert_eq!(created.show_as, calgate_core::ShowAs::Tentative);
    let (items, link2) = c
        .delta_round(&mb, DeltaRequest::Follow(delta_link))
        .await
        .unwrap();
    assert!(
        items.iter().any(|i| matches!(i, DeltaItem::Upsert(x) if x.exchange_id == created.exchange_id && x.subject.as_deref() == Some("calgate-graph test"))),
        "{items:?}"
    );
    // Delete it: the next round says @removed.
    c.delete_event(&mb, &created.exchange_id).await.unwrap();
    let (items, _) = c
        .delta_round(&mb, DeltaRequest::Follow(link2.clone()))
        .await
        .unwrap();
    assert!(
        items.iter().any(|i| matches!(i, DeltaItem::Removed { exchange_id, .. } if *exchange_id == created.exchange_id)),
        "{items:?}"
    );
    let e = c.get_event(&mb, &created.exchange_id).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound, "{e:?}");

    // 410 Gone with Location → ResyncRequired carrying the location.
    delta_fault(&t, &mb, json!({"gone_on_next": true})).await;
    let e = c.delta(&mb, DeltaRequest::Follow(link2)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::ResyncRequired, "{e:?}");
    assert_eq!(e.status, Some(410));
    assert!(
        e.location
            .as_deref()
            .is_some_and(|l| l.contains("deltatoken")),
        "{e:?}"
    );
}

#[tokio::test]
async fn sync_state_not_found_is_resync_required() {
    let t = start().await;
    let c = t.client("calgate");
    let mb = t.mailboxes("room")[0].clone();
    let (a, b) = window();
    let (_, link) = c
        .delta_round(
            &mb,
            DeltaRequest::Start {
                start: a,
                end: b,
                page_size: 50,
            },
        )
        .await
        .unwrap();
    delta_fault(&t, &mb, json!({"expire_all": true})).await;
    let e = c.delta(&mb, DeltaRequest::Follow(link)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::ResyncRequired, "{e:?}");
    assert!(
        e.code
            .as_deref()
            .is_some_and(|c| c.eq_ignore_ascii_case("SyncStateNotFound")),
        "{e:?}"
    );
}

#[tokio::test]
async fn batch_splits_at_twenty_and_reports_each_item() {
    let t = start().await;
    let c = t.client("calgate");
    let users = t.mailboxes("user");
    let (a, b) = window();
    let mut reqs: Vec<BatchRequest> = (0..24)
        .map(|i| {
            BatchRequest::get(
                format!("r{i}"),
                format!(
                    "/users/{}/calendarView?startDateTime={a}&endDateTime={b}&$top=1",
                    users[i % users.len()]
                ),
            )
        })
        .collect();
    reqs.push(BatchRequest::get("ghost", "/users/nobody@contoso.example/calendarView?startDateTime=2026-01-01T00:00:00Z&endDateTime=2026-01-02T00:00:00Z"));
    let before = t.shared.metrics().requests_sent;
    let out = c.batch(reqs.clone()).await.unwrap();
    assert_eq!(
        t.shared.metrics().requests_sent - before,
        2,
        "25 requests → 2 batches"
    );
    assert_eq!(out.len(), 25);
    for (r, o) in reqs.iter().zip(&out) {
        assert_eq!(r.id, o.id);
    }
    assert!(out[..24].iter().all(|o| o.status == 200), "{out:?}");
    assert_eq!(out[24].status, 404);
    let e = c.batch_error(&reqs[24], &out[24]).unwrap();
    assert_eq!(e.kind, ErrorKind::NotFound, "{e:?}");
    // Duplicate ids are refused before anything is sent.
    let e = c
        .batch(vec![
            BatchRequest::get("x", "/users/a/events"),
            BatchRequest::get("x", "/users/a/events"),
        ])
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Fatal);
}

#[tokio::test]
async fn places_users_and_mailbox_settings() {
    let t = start().await;
    let c = t.client("calgate");
    let lists = c.list_room_lists().await;
    let rooms = c.list_rooms().await;
    match (lists, rooms) {
        (Ok(lists), Ok(rooms)) => {
            assert_eq!(lists.len(), 2, "{lists:?}");
            assert_eq!(rooms.len(), 8, "{rooms:?}");
            let in_list = c.rooms_in_list(&lists[0].email).await.unwrap();
            assert!(
                !in_list.is_empty()
                    && in_list
                        .iter()
                        .all(|r| rooms.iter().any(|x| x.email == r.email))
            );
        }
        (l, r) => {
            // The main demo app may lack Place.Read.All: then it must be a Permission error.
            for e in [l.err(), r.err()].into_iter().flatten() {
                assert_eq!(e.kind, ErrorKind::Permission, "{e:?}");
            }
        }
    }
    let room = t.mailboxes("room")[0].clone();
    let u = c.get_user(&room).await.unwrap();
    assert!(u.display_name.is_some());
    match c.mailbox_settings(&room).await {
        Ok(s) => {
            assert_eq!(
                s.user_purpose.map(|p| p.mailbox_kind()),
                Some(calgate_core::MailboxKind::Room)
            );
            assert!(s.time_zone.is_some());
        }
        Err(e) => assert_eq!(e.kind, ErrorKind::Permission, "{e:?}"),
    }
}
