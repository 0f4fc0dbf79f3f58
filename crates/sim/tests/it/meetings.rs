//! Meetings: an event with attendees written through Graph in its organizer's mailbox sends
//! meeting messages and puts copies in the attendees' calendars; resources answer per their
//! booking policy; updates, attendee changes, deletions and occurrence edits propagate; delta
//! sees the copies change. All over real HTTP (Graph and `/_sim/`).

use reqwest::Method;

use crate::common::*;

const ORG: &str = "olivia.organizer@contoso.example";
const PAT: &str = "pat.person@contoso.example";
const ROOM: &str = "room.rhine@contoso.example";
const CAM: &str = "cam.projector@contoso.example";
const EXT: &str = "guest@fabrikam.example";
const WS: &str = "2031-03-01T00:00:00Z";
const WE: &str = "2031-05-01T00:00:00Z";

struct M {
    ts: TestSim,
    token: String,
}

async fn setup() -> M {
    let ts = start(Seed::Empty).await;
    let token = ts.default_token().await;
    for (addr, name, kind) in [
        (ORG, "Olivia Organizer", "user"),
        (PAT, "Pat Person", "user"),
        (ROOM, "Rhine Room", "room"),
        (CAM, "Projector Cam", "equipment"),
    ] {
        let (s, b) = ts
            .control(
                Method::POST,
                "/mailboxes",
                Some(&json!({"address": addr, "display_name": name, "kind": kind})),
            )
            .await;
        assert!(s.is_success(), "create {addr}: {s} {b}");
    }
    M { ts, token }
}

fn att(addr: &str, kind: &str) -> Value {
    json!({"emailAddress": {"address": addr, "name": addr.split('@').next().unwrap()}, "type": kind})
}

fn meeting(subject: &str, start: &str, end: &str, attendees: Vec<Value>) -> Value {
    json!({
        "subject": subject,
        "body": {"contentType": "text", "content": "Agenda: everything"},
        "start": {"dateTime": start, "timeZone": "UTC"},
        "end": {"dateTime": end, "timeZone": "UTC"},
        "location": {"displayName": "Rhine Room", "locationUri": ROOM, "locationType": "conferenceRoom"},
        "attendees": attendees,
    })
}

fn status_of(ev: &Value, addr: &str) -> String {
    ev["attendees"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["emailAddress"]["address"] == addr)
        .unwrap_or_else(|| panic!("{addr} not among the attendees of {ev}"))["status"]["response"]
        .as_str()
        .unwrap()
        .to_owned()
}

impl M {
    async fn post(&self, user: &str, body: &Value) -> Value {
        let (s, _, v) = self
            .ts
            .send_json(
                Method::POST,
                &self.token,
                &format!("/v1.0/users/{user}/events"),
                body,
            )
            .await;
        assert_eq!(s, 201, "create: {v}");
        v
    }
    async fn patch(&self, user: &str, id: &str, body: &Value) -> Value {
        let (s, _, v) = self
            .ts
            .send_json(
                Method::PATCH,
                &self.token,
                &format!("/v1.0/users/{user}/events/{id}"),
                body,
            )
            .await;
        assert_eq!(s, 200, "update: {v}");
        v
    }
    async fn action(
        &self,
        user: &str,
        id: &str,
        action: &str,
        body: &Value,
    ) -> (StatusCode, Value) {
        let (s, _, v) = self
            .ts
            .send_json(
                Method::POST,
                &self.token,
                &format!("/v1.0/users/{user}/events/{id}/{action}"),
                body,
            )
            .await;
        (s, v)
    }
    async fn delete(&self, user: &str, id: &str) {
        let s = self
            .ts
            .http
            .delete(self.ts.url(&format!("/v1.0/users/{user}/events/{id}")))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(s, 204);
    }
    async fn get_event(&self, user: &str, id: &str) -> Value {
        let (s, _, v) = self
            .ts
            .get(&self.token, &format!("/v1.0/users/{user}/events/{id}"))
            .await;
        assert_eq!(s, 200, "get: {v}");
        v
    }
    /// The stored items of meeting `uid` in `user`'s mailbox (Graph `$filter=iCalUId eq`).
    async fn by_uid(&self, user: &str, uid: &str) -> Vec<Value> {
        let (s, _, v) = self
            .ts
            .get(
                &self.token,
                &format!("/v1.0/users/{user}/events?$filter=iCalUId%20eq%20'{uid}'"),
            )
            .await;
        assert_eq!(s, 200, "list: {v}");
        v["value"].as_array().unwrap().clone()
    }
    async fn copy(&self, user: &str, uid: &str) -> Value {
        let v = self.by_uid(user, uid).await;
        assert_eq!(v.len(), 1, "{user} should hold one copy of {uid}: {v:?}");
        v[0].clone()
    }
    /// Every instance in the test window (the control API's truth).
    async fn truth(&self, user: &str) -> Vec<Value> {
        let (s, b) = self
            .ts
            .control(
                Method::GET,
                &format!("/mailboxes/{user}/events?start={WS}&end={WE}"),
                None,
            )
            .await;
        assert_eq!(s, 200, "truth: {b}");
        b["value"].as_array().unwrap().clone()
    }
    async fn invitations(&self, query: &str) -> Value {
        let (s, b) = self
            .ts
            .control(Method::GET, &format!("/invitations{query}"), None)
            .await;
        assert_eq!(s, 200, "invitations: {b}");
        b
    }
    async fn stats_invitations(&self) -> Value {
        let (s, b) = self.ts.control(Method::GET, "/stats", None).await;
        assert_eq!(s, 200);
        b["invitations"].clone()
    }
    async fn policy(&self, addr: &str, body: &Value) -> (StatusCode, Value) {
        self.ts
            .control(
                Method::PUT,
                &format!("/mailboxes/{addr}/booking-policy"),
                Some(body),
            )
            .await
    }
    /// A delta round for `user` from scratch: (items, deltaLink).
    async fn delta(&self, url: &str) -> (Vec<Value>, String) {
        let mut items = Vec::new();
        let mut next = url.to_owned();
        for _ in 0..100 {
            let r = self
                .ts
                .http
                .get(&next)
                .bearer_auth(&self.token)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            let b: Value = r.json().await.unwrap();
            items.extend(b["value"].as_array().unwrap().iter().cloned());
            match b["@odata.nextLink"].as_str() {
                Some(n) => next = n.to_owned(),
                None => return (items, b["@odata.deltaLink"].as_str().unwrap().to_owned()),
            }
        }
        panic!("runaway delta round");
    }
    fn delta_start(&self, user: &str) -> String {
        self.ts.url(&format!(
            "/v1.0/users/{user}/calendarView/delta?startDateTime={WS}&endDateTime={WE}"
        ))
    }
}

#[tokio::test]
async fn meeting_with_person_room_and_equipment_makes_copies_and_invitations() {
    let m = setup().await;

    // An event without attendees (calgate's "direct" mode) sends nothing.
    let solo = m
        .post(
            ORG,
            &meeting(
                "Focus time",
                "2031-03-10T08:00:00",
                "2031-03-10T09:00:00",
                vec![],
            ),
        )
        .await;
    assert_eq!(solo["isOrganizer"], true);
    assert_eq!(m.stats_invitations().await["total"], 0);
    assert_eq!(m.invitations("").await["count"], 0);
    assert!(
        m.by_uid(PAT, solo["iCalUId"].as_str().unwrap())
            .await
            .is_empty()
    );

    let ev = m
        .post(
            ORG,
            &meeting(
                "Quarterly review",
                "2031-03-10T10:00:00",
                "2031-03-10T11:00:00",
                vec![
                    att(PAT, "required"),
                    att(ROOM, "resource"),
                    att(CAM, "resource"),
                    att(EXT, "optional"),
                ],
            ),
        )
        .await;
    let id = ev["id"].as_str().unwrap().to_owned();
    let uid = ev["iCalUId"].as_str().unwrap().to_owned();
    // The answer to POST is the item as written: nobody has answered yet.
    assert_eq!(ev["isOrganizer"], true);
    assert_eq!(ev["responseStatus"]["response"], "organizer");
    for a in [PAT, ROOM, CAM, EXT] {
        assert_eq!(status_of(&ev, a), "none", "{a}");
    }

    // Four requests (the external guest's too), two automatic acceptances.
    let inv = m.invitations(&format!("?from={ORG}")).await;
    assert_eq!(inv["count"], 4, "{inv}");
    for i in inv["value"].as_array().unwrap() {
        assert_eq!(i["kind"], "request");
        assert_eq!(i["ical_uid"], uid.as_str());
        assert_eq!(i["subject"], "Quarterly review");
        assert!(i["at"].is_string());
    }
    let to: Vec<&str> = inv["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["to"].as_str().unwrap())
        .collect();
    assert!(to.contains(&EXT) && to.contains(&ROOM) && to.contains(&PAT) && to.contains(&CAM));
    let responses = m.invitations(&format!("?to={ORG}&kind=response")).await;
    assert_eq!(responses["count"], 2, "{responses}");
    let s = m.stats_invitations().await;
    assert_eq!(
        (s["total"].as_u64(), s["request"].as_u64()),
        (Some(4), Some(4))
    );
    assert_eq!(s["responses"], 2);

    // The organizer's item now tracks the resources' answers (and changed because of them).
    let org = m.get_event(ORG, &id).await;
    assert_eq!(status_of(&org, ROOM), "accepted");
    assert_eq!(status_of(&org, CAM), "accepted");
    assert_eq!(status_of(&org, PAT), "none");
    assert_eq!(status_of(&org, EXT), "none");
    assert_ne!(org["changeKey"], ev["changeKey"]);

    // The person's copy: tentative, not responded, organized by Olivia.
    let pc = m.copy(PAT, &uid).await;
    assert_ne!(pc["id"], id.as_str());
    assert_eq!(pc["isOrganizer"], false);
    assert_eq!(pc["organizer"]["emailAddress"]["address"], ORG);
    assert_eq!(pc["responseStatus"]["response"], "notResponded");
    assert_eq!(pc["responseRequested"], true);
    assert_eq!(pc["showAs"], "tentative");
    assert_eq!(pc["subject"], "Quarterly review");
    assert_eq!(pc["start"]["dateTime"], "2031-03-10T10:00:00.0000000");
    assert_eq!(pc["type"], "singleInstance");

    // The room's copy: accepted, busy, subject replaced by the organizer's name, no body.
    let rc = m.copy(ROOM, &uid).await;
    assert_eq!(rc["responseStatus"]["response"], "accepted");
    assert_eq!(rc["showAs"], "busy");
    assert_eq!(rc["subject"], "Olivia Organizer");
    assert_eq!(rc["body"]["content"], "");
    assert_eq!(rc["isOrganizer"], false);
    let cc = m.copy(CAM, &uid).await;
    assert_eq!(cc["responseStatus"]["response"], "accepted");
    // The room's calendar shows it as busy time.
    assert_eq!(m.truth(ROOM).await.len(), 1);

    // Pat accepts (as in Outlook): both calendars change.
    let (s, b) =
        m.ts.control(
            Method::POST,
            &format!("/mailboxes/{PAT}/events/{uid}/respond"),
            Some(&json!({"response": "accepted"})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["event"]["responseStatus"]["response"], "accepted");
    assert_eq!(b["event"]["showAs"], "busy");
    let org2 = m.get_event(ORG, &id).await;
    assert_eq!(status_of(&org2, PAT), "accepted");
    assert_ne!(
        org2["attendees"][0]["status"]["time"],
        "0001-01-01T00:00:00Z"
    );
    assert_ne!(org2["changeKey"], org["changeKey"]);

    // Graph's own actions: tentativelyAccept, then decline (the copy leaves the calendar).
    let pid = pc["id"].as_str().unwrap();
    let (s, v) = m
        .action(
            PAT,
            pid,
            "tentativelyAccept",
            &json!({"comment": "maybe", "sendResponse": true}),
        )
        .await;
    assert_eq!(s, 202, "{v}");
    assert_eq!(
        status_of(&m.get_event(ORG, &id).await, PAT),
        "tentativelyAccepted"
    );
    assert_eq!(m.copy(PAT, &uid).await["showAs"], "tentative");
    // The organizer cannot answer their own meeting; an attendee cannot cancel it.
    let (s, v) = m.action(ORG, &id, "accept", &json!({})).await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = m
        .action(PAT, pid, "cancel", &json!({"comment": "no"}))
        .await;
    assert_eq!(s, 400, "{v}");
    let (s, _) = m.action(PAT, pid, "decline", &json!({})).await;
    assert_eq!(s, 202);
    assert!(m.by_uid(PAT, &uid).await.is_empty());
    assert_eq!(status_of(&m.get_event(ORG, &id).await, PAT), "declined");
    let s = m.stats_invitations().await;
    assert_eq!(s["total"], 4, "responses are not invitations");
    assert_eq!(s["responses"], 5);

    // Reset with the other counters.
    let (s, _) = m.ts.control(Method::POST, "/stats/reset", None).await;
    assert_eq!(s, 204);
    assert_eq!(m.invitations("").await["count"], 0);
    assert_eq!(m.stats_invitations().await["total"], 0);
}

#[tokio::test]
async fn room_conflicts_decline_and_policies_change_processing() {
    let m = setup().await;
    // The room is already busy 10:00–11:00 (booked directly, no meeting).
    let direct = m
        .post(
            ROOM,
            &meeting(
                "Cleaning",
                "2031-03-11T10:00:00",
                "2031-03-11T11:00:00",
                vec![],
            ),
        )
        .await;
    assert_eq!(direct["isOrganizer"], true);
    assert_eq!(m.stats_invitations().await["total"], 0);

    let clash = m
        .post(
            ORG,
            &meeting(
                "Clash",
                "2031-03-11T10:30:00",
                "2031-03-11T11:30:00",
                vec![att(ROOM, "resource")],
            ),
        )
        .await;
    let cid = clash["id"].as_str().unwrap();
    let cuid = clash["iCalUId"].as_str().unwrap();
    assert_eq!(status_of(&m.get_event(ORG, cid).await, ROOM), "declined");
    assert!(
        m.by_uid(ROOM, cuid).await.is_empty(),
        "a declined request leaves no copy"
    );
    let r = m
        .invitations(&format!("?from={ROOM}&ical_uid={cuid}"))
        .await;
    assert_eq!(r["count"], 1);
    assert_eq!(r["value"][0]["kind"], "response");
    assert_eq!(r["value"][0]["response"], "declined");

    // Right after the busy item: no conflict.
    let ok = m
        .post(
            ORG,
            &meeting(
                "Fine",
                "2031-03-11T11:00:00",
                "2031-03-11T12:00:00",
                vec![att(ROOM, "resource")],
            ),
        )
        .await;
    assert_eq!(
        status_of(&m.get_event(ORG, ok["id"].as_str().unwrap()).await, ROOM),
        "accepted"
    );

    // A free item does not conflict.
    m.post(
        ROOM,
        &json!({"subject": "Free note", "showAs": "free",
            "start": {"dateTime": "2031-03-12T09:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2031-03-12T17:00:00", "timeZone": "UTC"}}),
    )
    .await;
    let over_free = m
        .post(
            ORG,
            &meeting(
                "Over free",
                "2031-03-12T10:00:00",
                "2031-03-12T11:00:00",
                vec![att(ROOM, "resource")],
            ),
        )
        .await;
    assert_eq!(
        status_of(
            &m.get_event(ORG, over_free["id"].as_str().unwrap()).await,
            ROOM
        ),
        "accepted"
    );

    // Policies: read, change, errors.
    let (s, p) =
        m.ts.control(
            Method::GET,
            &format!("/mailboxes/{ROOM}/booking-policy"),
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(p["automate_processing"], "AutoAccept");
    assert_eq!(p["allow_conflicts"], false);
    let (s, p) = m.policy(ROOM, &json!({"allow_conflicts": true})).await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(
        (
            p["allow_conflicts"].as_bool(),
            p["automate_processing"].as_str()
        ),
        (Some(true), Some("AutoAccept"))
    );
    let (s, _) = m
        .policy(ROOM, &json!({"automate_processing": "Sometimes"}))
        .await;
    assert_eq!(s, 400);
    let (s, _) = m.policy(PAT, &json!({"allow_conflicts": true})).await;
    assert_eq!(s, 400, "people have no booking policy to set");
    let (s, p) =
        m.ts.control(
            Method::GET,
            &format!("/mailboxes/{PAT}/booking-policy"),
            None,
        )
        .await;
    assert_eq!(
        (s.as_u16(), p["automate_processing"].as_str()),
        (200, Some("AutoUpdate"))
    );

    // With conflicts allowed the same clash is accepted.
    let clash2 = m
        .post(
            ORG,
            &meeting(
                "Clash again",
                "2031-03-11T10:15:00",
                "2031-03-11T10:45:00",
                vec![att(ROOM, "resource")],
            ),
        )
        .await;
    assert_eq!(
        status_of(
            &m.get_event(ORG, clash2["id"].as_str().unwrap()).await,
            ROOM
        ),
        "accepted"
    );

    // AutomateProcessing None: the request stays unprocessed (no copy, no answer).
    let (s, _) = m.policy(CAM, &json!({"automate_processing": "None"})).await;
    assert_eq!(s, 200);
    let n = m
        .post(
            ORG,
            &meeting(
                "Needs camera",
                "2031-03-13T10:00:00",
                "2031-03-13T11:00:00",
                vec![att(CAM, "resource")],
            ),
        )
        .await;
    let nuid = n["iCalUId"].as_str().unwrap();
    assert_eq!(
        status_of(&m.get_event(ORG, n["id"].as_str().unwrap()).await, CAM),
        "none"
    );
    assert!(m.by_uid(CAM, nuid).await.is_empty());
    assert_eq!(m.invitations(&format!("?to={CAM}")).await["count"], 1);
    assert_eq!(m.invitations(&format!("?from={CAM}")).await["count"], 0);

    // AutoUpdate: placed tentatively, waiting for a delegate.
    m.policy(CAM, &json!({"automate_processing": "AutoUpdate"}))
        .await;
    let u = m
        .post(
            ORG,
            &meeting(
                "Camera maybe",
                "2031-03-14T10:00:00",
                "2031-03-14T11:00:00",
                vec![att(CAM, "resource")],
            ),
        )
        .await;
    let cc = m.copy(CAM, u["iCalUId"].as_str().unwrap()).await;
    assert_eq!(cc["responseStatus"]["response"], "notResponded");
    assert_eq!(cc["showAs"], "tentative");
    assert_eq!(
        cc["subject"], "Camera maybe",
        "subject rules apply to AutoAccept only"
    );
}

#[tokio::test]
async fn updates_propagate_attendee_changes_add_and_cancel_and_delta_sees_copies() {
    let m = setup().await;
    let ev = m
        .post(
            ORG,
            &meeting(
                "Planning",
                "2031-03-17T10:00:00",
                "2031-03-17T11:00:00",
                vec![att(PAT, "required"), att(ROOM, "resource")],
            ),
        )
        .await;
    let id = ev["id"].as_str().unwrap().to_owned();
    let uid = ev["iCalUId"].as_str().unwrap().to_owned();
    let (s, _) =
        m.ts.control(
            Method::POST,
            &format!("/mailboxes/{PAT}/events/{uid}/respond"),
            Some(&json!({"response": "accepted"})),
        )
        .await;
    assert_eq!(s, 200);
    let pat_id = m.copy(PAT, &uid).await["id"].as_str().unwrap().to_owned();
    let room_id = m.copy(ROOM, &uid).await["id"].as_str().unwrap().to_owned();
    let (first, pat_link) = m.delta(&m.delta_start(PAT)).await;
    assert!(first.iter().any(|i| i["id"] == pat_id.as_str()));
    let (_, room_link) = m.delta(&m.delta_start(ROOM)).await;
    m.ts.control(Method::POST, "/stats/reset", None).await;

    // Move and rename: both copies follow; Pat must answer again.
    m.patch(
        ORG,
        &id,
        &json!({"subject": "Planning (moved)",
            "body": {"contentType": "text", "content": "New agenda"},
            "location": {"displayName": "Rhine Room, 2nd floor"},
            "start": {"dateTime": "2031-03-17T14:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2031-03-17T15:00:00", "timeZone": "UTC"}}),
    )
    .await;
    let pc = m.copy(PAT, &uid).await;
    assert_eq!(pc["id"], pat_id.as_str(), "the copy keeps its id");
    assert_eq!(pc["subject"], "Planning (moved)");
    assert_eq!(pc["body"]["content"], "New agenda");
    assert_eq!(pc["location"]["displayName"], "Rhine Room, 2nd floor");
    assert_eq!(pc["start"]["dateTime"], "2031-03-17T14:00:00.0000000");
    assert_eq!(pc["responseStatus"]["response"], "notResponded");
    let rc = m.copy(ROOM, &uid).await;
    assert_eq!(rc["start"]["dateTime"], "2031-03-17T14:00:00.0000000");
    assert_eq!(rc["responseStatus"]["response"], "accepted");
    let org = m.get_event(ORG, &id).await;
    assert_eq!(status_of(&org, ROOM), "accepted");
    assert_eq!(
        status_of(&org, PAT),
        "accepted",
        "the organizer keeps tracked answers"
    );
    let upd = m.invitations("?kind=update").await;
    assert_eq!(upd["count"], 2, "{upd}");

    // Delta of both attendees reports the changed copies.
    let (items, pat_link2) = m.delta(&pat_link).await;
    let it = items
        .iter()
        .find(|i| i["id"] == pat_id.as_str())
        .expect("pat's copy in delta");
    assert_eq!(it["subject"], "Planning (moved)");
    let (items, _) = m.delta(&room_link).await;
    assert!(
        items
            .iter()
            .any(|i| i["id"] == room_id.as_str() && i.get("@removed").is_none())
    );

    // A content-only change does not reset Pat's answer.
    m.ts.control(
        Method::POST,
        &format!("/mailboxes/{PAT}/events/{pat_id}/respond"),
        Some(&json!({"response": "tentativelyAccepted"})),
    )
    .await;
    m.patch(ORG, &id, &json!({"subject": "Planning v3"})).await;
    let pc = m.copy(PAT, &uid).await;
    assert_eq!(pc["subject"], "Planning v3");
    assert_eq!(pc["responseStatus"]["response"], "tentativelyAccepted");

    // Attendees change: Pat removed (cancellation), the camera added (request).
    m.ts.control(Method::POST, "/stats/reset", None).await;
    m.patch(
        ORG,
        &id,
        &json!({"attendees": [att(ROOM, "resource"), att(CAM, "resource")]}),
    )
    .await;
    let pc = m.copy(PAT, &uid).await;
    assert_eq!(pc["isCancelled"], true);
    assert_eq!(pc["subject"], "Canceled: Planning v3");
    let cc = m.copy(CAM, &uid).await;
    assert_eq!(cc["responseStatus"]["response"], "accepted");
    let inv = m.invitations("").await;
    let kinds: Vec<(String, String)> = inv["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["kind"] != "response")
        .map(|i| {
            (
                i["kind"].as_str().unwrap().to_owned(),
                i["to"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(kinds.contains(&("cancel".into(), PAT.into())), "{kinds:?}");
    assert!(kinds.contains(&("request".into(), CAM.into())), "{kinds:?}");
    assert_eq!(kinds.len(), 2, "the room is untouched: {kinds:?}");
    let org = m.get_event(ORG, &id).await;
    assert_eq!(
        status_of(&org, ROOM),
        "accepted",
        "tracking kept across attendee edits"
    );
    let (items, _) = m.delta(&pat_link2).await;
    let it = items
        .iter()
        .find(|i| i["id"] == pat_id.as_str())
        .expect("cancelled copy in delta");
    assert_eq!(it["isCancelled"], true);
}

#[tokio::test]
async fn deleting_the_meeting_cancels_it_everywhere() {
    let m = setup().await;
    let ev = m
        .post(
            ORG,
            &meeting(
                "Offsite",
                "2031-03-18T10:00:00",
                "2031-03-18T11:00:00",
                vec![
                    att(PAT, "required"),
                    att(ROOM, "resource"),
                    att(EXT, "required"),
                ],
            ),
        )
        .await;
    let id = ev["id"].as_str().unwrap();
    let uid = ev["iCalUId"].as_str().unwrap();
    let room_id = m.copy(ROOM, uid).await["id"].as_str().unwrap().to_owned();
    let (_, room_link) = m.delta(&m.delta_start(ROOM)).await;
    m.ts.control(Method::POST, "/stats/reset", None).await;

    m.delete(ORG, id).await;
    let pc = m.copy(PAT, uid).await;
    assert_eq!(pc["isCancelled"], true);
    assert_eq!(pc["subject"], "Canceled: Offsite");
    assert!(
        m.by_uid(ROOM, uid).await.is_empty(),
        "the room removes cancelled meetings"
    );
    let inv = m.invitations("?kind=cancel").await;
    assert_eq!(inv["count"], 3, "{inv}");
    assert!(
        inv["value"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["subject"] == "Canceled: Offsite")
    );
    let (items, _) = m.delta(&room_link).await;
    assert!(
        items
            .iter()
            .any(|i| i["id"] == room_id.as_str() && i.get("@removed").is_some()),
        "{items:?}"
    );
    // A cancelled meeting cannot be answered.
    let (s, _) =
        m.ts.control(
            Method::POST,
            &format!("/mailboxes/{PAT}/events/{uid}/respond"),
            Some(&json!({"response": "accepted"})),
        )
        .await;
    assert_eq!(s, 400);

    // The cancel action does the same for another meeting.
    let ev = m
        .post(
            ORG,
            &meeting(
                "Lunch",
                "2031-03-19T12:00:00",
                "2031-03-19T13:00:00",
                vec![att(PAT, "required")],
            ),
        )
        .await;
    let (s, _) = m
        .action(
            ORG,
            ev["id"].as_str().unwrap(),
            "cancel",
            &json!({"comment": "Sorry"}),
        )
        .await;
    assert_eq!(s, 202);
    assert_eq!(
        m.copy(PAT, ev["iCalUId"].as_str().unwrap()).await["isCancelled"],
        true
    );
    assert!(
        m.by_uid(ORG, ev["iCalUId"].as_str().unwrap())
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn series_with_an_edited_and_a_cancelled_occurrence_propagates() {
    let m = setup().await;
    let mut body = meeting(
        "Standup",
        "2031-03-24T09:00:00",
        "2031-03-24T09:15:00",
        vec![att(PAT, "required"), att(ROOM, "resource")],
    );
    body["recurrence"] = json!({"pattern": {"type": "daily", "interval": 1},
        "range": {"type": "numbered", "startDate": "2031-03-24", "numberOfOccurrences": 5}});
    let ev = m.post(ORG, &body).await;
    let id = ev["id"].as_str().unwrap().to_owned();
    let uid = ev["iCalUId"].as_str().unwrap().to_owned();
    assert_eq!(ev["type"], "seriesMaster");
    let pc = m.copy(PAT, &uid).await;
    assert_eq!(pc["type"], "seriesMaster");
    assert_eq!(pc["recurrence"]["range"]["numberOfOccurrences"], 5);
    assert_eq!(m.truth(PAT).await.len(), 5);
    assert_eq!(m.truth(ROOM).await.len(), 5);
    assert_eq!(status_of(&m.get_event(ORG, &id).await, ROOM), "accepted");

    // The organizer's occurrences.
    let (s, _, inst) =
        m.ts.get(
            &m.token,
            &format!("/v1.0/users/{ORG}/events/{id}/instances?startDateTime={WS}&endDateTime={WE}"),
        )
        .await;
    assert_eq!(s, 200);
    let occ: Vec<Value> = inst["value"].as_array().unwrap().clone();
    assert_eq!(occ.len(), 5);
    let second = occ[1]["id"].as_str().unwrap();
    let third = occ[2]["id"].as_str().unwrap();
    let second_orig = occ[1]["originalStart"].as_str().unwrap().to_owned();
    let third_orig = occ[2]["originalStart"].as_str().unwrap().to_owned();
    m.ts.control(Method::POST, "/stats/reset", None).await;

    // Edit (move) one occurrence.
    m.patch(
        ORG,
        second,
        &json!({"subject": "Standup (demo day)",
            "start": {"dateTime": "2031-03-25T10:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2031-03-25T10:30:00", "timeZone": "UTC"}}),
    )
    .await;
    let pat = m.truth(PAT).await;
    let moved = pat
        .iter()
        .find(|i| i["originalStart"] == second_orig.as_str())
        .expect("pat's occurrence");
    assert_eq!(moved["type"], "exception");
    assert_eq!(moved["subject"], "Standup (demo day)");
    assert_eq!(moved["start"]["dateTime"], "2031-03-25T10:00:00.0000000");
    let room = m.truth(ROOM).await;
    let moved = room
        .iter()
        .find(|i| i["originalStart"] == second_orig.as_str())
        .expect("room's occurrence");
    assert_eq!(moved["start"]["dateTime"], "2031-03-25T10:00:00.0000000");
    let upd = m.invitations("?kind=update").await;
    assert_eq!(upd["count"], 2);
    assert!(upd["value"][0]["occurrence"].is_string(), "{upd}");

    // Cancel another occurrence.
    m.delete(ORG, third).await;
    let pat = m.truth(PAT).await;
    assert_eq!(pat.len(), 5, "people keep the cancelled occurrence, marked");
    let c = pat
        .iter()
        .find(|i| i["originalStart"] == third_orig.as_str())
        .expect("cancelled occurrence");
    assert_eq!(c["isCancelled"], true);
    assert_eq!(c["subject"], "Canceled: Standup");
    let room = m.truth(ROOM).await;
    assert_eq!(room.len(), 4, "the room drops it");
    assert!(
        room.iter()
            .all(|i| i["originalStart"] != third_orig.as_str())
    );
    let can = m.invitations("?kind=cancel").await;
    assert_eq!(can["count"], 2);
    assert_eq!(can["value"][0]["subject"], "Canceled: Standup");
    assert!(can["value"][0]["occurrence"].is_string());

    // A series clashing with one occurrence of the room's bookings is declined (default policy).
    let mut clash = meeting(
        "Weekly clash",
        "2031-03-20T09:00:00",
        "2031-03-20T09:30:00",
        vec![att(ROOM, "resource")],
    );
    clash["recurrence"] = json!({"pattern": {"type": "daily", "interval": 1},
        "range": {"type": "numbered", "startDate": "2031-03-20", "numberOfOccurrences": 5}});
    let c = m.post(ORG, &clash).await;
    assert_eq!(
        status_of(&m.get_event(ORG, c["id"].as_str().unwrap()).await, ROOM),
        "declined"
    );
    assert!(
        m.by_uid(ROOM, c["iCalUId"].as_str().unwrap())
            .await
            .is_empty()
    );
    // Allowed up to one conflicting instance (and 25 %): accepted, that occurrence declined.
    m.policy(
        ROOM,
        &json!({"maximum_conflict_instances": 1, "conflict_percentage_allowed": 25}),
    )
    .await;
    let c = m.post(ORG, &clash).await;
    assert_eq!(
        status_of(&m.get_event(ORG, c["id"].as_str().unwrap()).await, ROOM),
        "accepted"
    );
    let copy = m.copy(ROOM, c["iCalUId"].as_str().unwrap()).await;
    let series: Vec<Value> = m
        .truth(ROOM)
        .await
        .into_iter()
        .filter(|i| i["seriesMasterId"] == copy["id"])
        .collect();
    assert_eq!(series.len(), 4, "the conflicting occurrence is left out");
}
