//! calendarView and calendarView/delta over real HTTP: paging, windows, Prefer headers, opaque
//! tokens, incremental rounds across creates/updates/deletes/series edits, replays, 410 with
//! Location, SyncStateNotFound, garbage tokens, and convergence after random changes.
use std::collections::{BTreeMap, BTreeSet};

use crate::common::*;

pub const WS: &str = "2031-03-01T00:00:00Z";
pub const WE: &str = "2031-04-01T00:00:00Z";

/// A simulator with one empty mailbox and a read-write token.
pub struct Fix {
    pub ts: TestSim,
    pub token: String,
    pub addr: String,
}

pub async fn fixture(local: &str) -> Fix {
    let ts = start(Seed::Empty).await;
    let token = ts.default_token().await;
    let addr = format!("{local}@contoso.example");
    let (s, b) = ts
        .control(
            reqwest::Method::POST,
            "/mailboxes",
            Some(&json!({"address": addr, "time_zone": "W. Europe Standard Time"})),
        )
        .await;
    assert!(s.is_success(), "create mailbox: {s} {b}");
    Fix { ts, token, addr }
}

impl Fix {
    /// Creates an event through the control API; returns its id.
    pub async fn create(&self, body: Value) -> String {
        let (s, b) = self
            .ts
            .control(
                reqwest::Method::POST,
                &format!("/mailboxes/{}/events", self.addr),
                Some(&body),
            )
            .await;
        assert_eq!(s, 201, "create: {b}");
        b["id"].as_str().unwrap().to_owned()
    }

    pub async fn control(
        &self,
        m: reqwest::Method,
        rel: &str,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        self.ts
            .control(m, &format!("/mailboxes/{}{rel}", self.addr), body)
            .await
    }

    /// The simulator's truth for the window: id → event JSON.
    pub async fn truth(&self, ws: &str, we: &str) -> BTreeMap<String, Value> {
        let (s, b) = self
            .ts
            .control(
                reqwest::Method::GET,
                &format!("/mailboxes/{}/events?start={ws}&end={we}", self.addr),
                None,
            )
            .await;
        assert_eq!(s, 200, "truth: {b}");
        b["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| (v["id"].as_str().unwrap().to_owned(), v.clone()))
            .collect()
    }

    /// GET an absolute URL with optional Prefer header values.
    pub async fn get_abs(
        &self,
        url: &str,
        prefer: &[&str],
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut req = self.ts.http.get(url).bearer_auth(&self.token);
        for p in prefer {
            req = req.header("Prefer", *p);
        }
        let r = req.send().await.unwrap();
        let s = r.status();
        let h = r.headers().clone();
        let text = r.text().await.unwrap();
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (s, h, v)
    }

    pub fn delta_url(&self, ws: &str, we: &str) -> String {
        self.ts.url(&format!(
            "/v1.0/users/{}/calendarView/delta?startDateTime={ws}&endDateTime={we}",
            self.addr
        ))
    }

    /// Runs a delta round from `url` to its deltaLink: (items in order, deltaLink, pages).
    pub async fn round(&self, url: &str, prefer: &[&str]) -> (Vec<Value>, String, usize) {
        let mut items = Vec::new();
        let mut next = url.to_owned();
        let mut pages = 0;
        loop {
            pages += 1;
            assert!(pages < 500, "runaway round");
            let (s, _, b) = self.get_abs(&next, prefer).await;
            assert_eq!(s, 200, "delta page {next}: {b}");
            items.extend(b["value"].as_array().unwrap().iter().cloned());
            if let Some(n) = b["@odata.nextLink"].as_str() {
                assert!(b.get("@odata.deltaLink").is_none());
                next = n.to_owned();
            } else {
                let d = b["@odata.deltaLink"]
                    .as_str()
                    .expect("last page carries a deltaLink");
                return (items, d.to_owned(), pages);
            }
        }
    }
}

/// Applies delta items to a local store (id → event JSON), as a client does.
pub fn apply(local: &mut BTreeMap<String, Value>, items: &[Value]) {
    for it in items {
        let id = it["id"].as_str().unwrap().to_owned();
        if it.get("@removed").is_some() {
            local.remove(&id);
        } else {
            let mut v = it.clone();
            v.as_object_mut().unwrap().remove("@odata.type");
            local.insert(id, v);
        }
    }
}

pub fn single(subject: &str, start: &str, end: &str) -> Value {
    json!({"subject": subject, "start": {"dateTime": start, "timeZone": "UTC"}, "end": {"dateTime": end, "timeZone": "UTC"}})
}

fn ids(items: &[Value]) -> BTreeSet<String> {
    items
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_owned())
        .collect()
}

fn removed(items: &[Value]) -> BTreeSet<String> {
    items
        .iter()
        .filter(|v| v.get("@removed").is_some())
        .map(|v| v["id"].as_str().unwrap().to_owned())
        .collect()
}

fn present(items: &[Value]) -> BTreeMap<String, Value> {
    items
        .iter()
        .filter(|v| v.get("@removed").is_none())
        .map(|v| (v["id"].as_str().unwrap().to_owned(), v.clone()))
        .collect()
}

#[tokio::test]
async fn calendar_view_pages_window_and_time_zone() {
    let f = fixture("view").await;
    for i in 0..12 {
        f.create(single(
            &format!("E{i:02}"),
            &format!("2031-03-{:02}T09:00:00", i + 2),
            &format!("2031-03-{:02}T10:00:00", i + 2),
        ))
        .await;
    }
    // Outside the window, and one overlapping its start.
    f.create(single(
        "before",
        "2031-02-10T09:00:00",
        "2031-02-10T10:00:00",
    ))
    .await;
    f.create(single(
        "after",
        "2031-04-10T09:00:00",
        "2031-04-10T10:00:00",
    ))
    .await;
    f.create(single(
        "overlap",
        "2031-02-28T23:00:00",
        "2031-03-01T01:00:00",
    ))
    .await;
    f.create(json!({"subject": "holiday", "isAllDay": true,
        "start": {"dateTime": "2031-03-20T00:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2031-03-21T00:00:00", "timeZone": "UTC"}}))
        .await;

    // Offsets are honoured: 2031-03-01T01:00:00+01:00 == 00:00Z.
    let path = format!(
        "/v1.0/users/{}/calendarView?startDateTime=2031-03-01T01:00:00%2B01:00&endDateTime={WE}",
        f.addr
    );
    let (s, _, b) = f.ts.get(&f.token, &path).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        b["value"].as_array().unwrap().len(),
        10,
        "default page size 10"
    );
    assert!(
        b["@odata.context"]
            .as_str()
            .unwrap()
            .contains("$metadata#users("),
        "{}",
        b["@odata.context"]
    );
    let next = b["@odata.nextLink"].as_str().expect("nextLink").to_owned();
    let (s, _, b2) = f.get_abs(&next, &[]).await;
    assert_eq!(s, 200);
    assert!(b2.get("@odata.nextLink").is_none());
    let mut all: Vec<Value> = b["value"].as_array().unwrap().clone();
    all.extend(b2["value"].as_array().unwrap().iter().cloned());
    let subjects: BTreeSet<String> = all
        .iter()
        .map(|v| v["subject"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(all.len(), 14, "{subjects:?}");
    assert!(subjects.contains("overlap") && subjects.contains("holiday"));
    assert!(!subjects.contains("before") && !subjects.contains("after"));
    assert_eq!(all[0]["start"]["timeZone"], "UTC");
    assert!(
        all[0]["start"]["dateTime"]
            .as_str()
            .unwrap()
            .ends_with(".0000000")
    );
    // Same set as the truth.
    assert_eq!(ids(&all), f.truth(WS, WE).await.keys().cloned().collect());

    // $top, $select, $orderby.
    let (s, _, b) = f
        .ts
        .get(&f.token, &format!("/v1.0/users/{}/calendar/calendarView?startDateTime={WS}&endDateTime={WE}&$top=5&$select=subject,start&$orderby=start/dateTime desc", f.addr))
        .await;
    assert_eq!(s, 200, "{b}");
    let v = b["value"].as_array().unwrap();
    assert_eq!(v.len(), 5);
    assert_eq!(
        v[0]["subject"], "holiday",
        "ordered by start desc: {}",
        v[0]
    );
    assert_eq!(v[1]["subject"], "E11", "ordered by start desc: {}", v[1]);
    assert!(v[0].get("end").is_none() && v[0].get("start").is_some() && v[0].get("id").is_some());
    assert!(b["@odata.nextLink"].as_str().unwrap().contains("$top=5"));

    // Prefer: outlook.timezone shifts times (not all-day) and is acknowledged.
    let r =
        f.ts.http
            .get(f.ts.url(&format!(
                "/v1.0/users/{}/calendarView?startDateTime={WS}&endDateTime={WE}&$top=50",
                f.addr
            )))
            .bearer_auth(&f.token)
            .header("Prefer", "outlook.timezone=\"Pacific Standard Time\"")
            .send()
            .await
            .unwrap();
    assert_eq!(
        r.headers()["preference-applied"],
        "outlook.timezone=\"Pacific Standard Time\""
    );
    let b: Value = r.json().await.unwrap();
    let e0 = b["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["subject"] == "E00")
        .unwrap();
    assert_eq!(e0["start"]["timeZone"], "Pacific Standard Time");
    assert_eq!(e0["start"]["dateTime"], "2031-03-02T01:00:00.0000000");
    let hol = b["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["subject"] == "holiday")
        .unwrap();
    assert_eq!(
        hol["start"]["dateTime"], "2031-03-20T00:00:00.0000000",
        "all-day not shifted"
    );

    // Errors.
    let (s, _, b) =
        f.ts.get(&f.token, &format!("/v1.0/users/{}/calendarView", f.addr))
            .await;
    assert_eq!(s, 400);
    assert_graph_error(&b, "ErrorInvalidParameter");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("StartDateTime and EndDateTime")
    );
    let (s, _, b) =
        f.ts.get(
            &f.token,
            &format!(
                "/v1.0/users/{}/calendarView?startDateTime=yesterday&endDateTime={WE}",
                f.addr
            ),
        )
        .await;
    assert_eq!(s, 400);
    assert_graph_error(&b, "ErrorInvalidParameter");
    let (s, _, b) =
        f.ts.get(
            &f.token,
            &format!(
                "/v1.0/users/{}/calendarView?startDateTime=1900-01-01&endDateTime=2900-01-01",
                f.addr
            ),
        )
        .await;
    assert_eq!(s, 400, "centuries-long window refused: {b}");
    assert_graph_error(&b, "ErrorInvalidParameter");
    let (s, _, b) =
        f.ts.get(
            &f.token,
            &format!(
                "/v1.0/users/{}/calendars/nope/calendarView?startDateTime={WS}&endDateTime={WE}",
                f.addr
            ),
        )
        .await;
    assert_eq!(s, 404, "{b}");
    let (s, _, b) =
        f.ts.get(
            &f.token,
            &format!(
                "/v1.0/users/{}/calendarView?startDateTime={WS}&endDateTime={WE}&$select=nosuch",
                f.addr
            ),
        )
        .await;
    assert_eq!(s, 400, "{b}");
}

#[tokio::test]
async fn delta_initial_round_is_paged_and_matches_calendar_view() {
    let f = fixture("initial").await;
    for i in 0..7 {
        f.create(single(
            &format!("S{i}"),
            &format!("2031-03-{:02}T08:00:00", i + 3),
            &format!("2031-03-{:02}T08:30:00", i + 3),
        ))
        .await;
    }
    f.create(json!({"subject": "daily", "start": {"dateTime": "2031-03-10T12:00:00", "timeZone": "W. Europe Standard Time"},
        "end": {"dateTime": "2031-03-10T12:30:00", "timeZone": "W. Europe Standard Time"},
        "recurrence": {"pattern": {"type": "daily", "interval": 1}, "range": {"type": "numbered", "startDate": "2031-03-10", "numberOfOccurrences": 5}}}))
        .await;

    // First page: its headers and shape.
    let url = f.delta_url(WS, WE);
    let (s, h, b) = f.get_abs(&url, &["odata.maxpagesize=3"]).await;
    assert_eq!(s, 200, "{b}");
    assert!(
        h["preference-applied"]
            .to_str()
            .unwrap()
            .contains("odata.maxpagesize=3")
    );
    assert!(
        b["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("$metadata#Collection(event)")
    );
    assert_eq!(b["value"].as_array().unwrap().len(), 3);
    assert_eq!(b["value"][0]["@odata.type"], "#microsoft.graph.event");
    let next = b["@odata.nextLink"].as_str().unwrap();
    assert!(next.contains("/calendarView/delta?$skiptoken="), "{next}");
    let token = next.split("$skiptoken=").nth(1).unwrap();
    assert!(
        !token.contains("2031") && !token.contains(&f.addr),
        "opaque token: {token}"
    );

    let (items, delta_link, pages) = f.round(&url, &["odata.maxpagesize=3"]).await;
    assert_eq!(items.len(), 12);
    assert_eq!(pages, 4);
    assert!(
        delta_link.contains("/calendarView/delta?$deltatoken="),
        "{delta_link}"
    );
    assert!(removed(&items).is_empty());
    let truth = f.truth(WS, WE).await;
    assert_eq!(ids(&items), truth.keys().cloned().collect());
    let mut local = BTreeMap::new();
    apply(&mut local, &items);
    assert_eq!(local, truth);

    // Without changes, the next round is empty, and so on.
    let (items, delta_link2, _) = f.round(&delta_link, &[]).await;
    assert!(items.is_empty(), "{items:?}");
    assert_ne!(delta_link2, delta_link);

    // Default page size 10 without Prefer; Prefer tz renders times in the zone.
    let (s, h, b) = f
        .get_abs(&url, &["outlook.timezone=\"Tokyo Standard Time\""])
        .await;
    assert_eq!(s, 200);
    assert_eq!(b["value"].as_array().unwrap().len(), 10);
    assert!(
        h["preference-applied"]
            .to_str()
            .unwrap()
            .contains("outlook.timezone=\"Tokyo Standard Time\"")
    );
    assert_eq!(b["value"][0]["start"]["timeZone"], "Tokyo Standard Time");
}

/// Graph also accepts the OData function-call form `calendarView/delta()`, which Microsoft's
/// Graph SDKs send (msgraph-sdk for Python builds `…/calendarView/delta()?startDateTime=…`).
#[tokio::test]
async fn delta_function_call_form_gives_the_same_round() {
    let f = fixture("fncall").await;
    for i in 0..4 {
        f.create(single(
            &format!("F{i}"),
            &format!("2031-03-{:02}T08:00:00", i + 3),
            &format!("2031-03-{:02}T08:30:00", i + 3),
        ))
        .await;
    }
    let plain = f.delta_url(WS, WE);
    let call = plain.replace("/calendarView/delta?", "/calendarView/delta()?");
    assert_ne!(plain, call);
    let (a, _, pages_a) = f.round(&plain, &["odata.maxpagesize=2"]).await;
    let (b, _, pages_b) = f.round(&call, &["odata.maxpagesize=2"]).await;
    let subjects = |v: &[Value]| -> Vec<String> {
        v.iter()
            .map(|i| i["subject"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    assert_eq!(a.len(), 4);
    assert_eq!(subjects(&a), subjects(&b));
    assert_eq!((pages_a, pages_b), (2, 2));
}

#[tokio::test]
async fn delta_reports_creates_updates_deletes_and_series_edits() {
    let f = fixture("changes").await;
    let a = f
        .create(single("A", "2031-03-05T09:00:00", "2031-03-05T10:00:00"))
        .await;
    let b = f
        .create(single("B", "2031-03-06T09:00:00", "2031-03-06T10:00:00"))
        .await;
    let c = f
        .create(single("C", "2031-03-07T09:00:00", "2031-03-07T10:00:00"))
        .await;
    let untouched = f
        .create(single("U", "2031-03-08T09:00:00", "2031-03-08T10:00:00"))
        .await;
    let s1 = f
        .create(json!({"subject": "S1", "start": {"dateTime": "2031-03-10T09:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2031-03-10T09:30:00", "timeZone": "UTC"},
            "recurrence": {"pattern": {"type": "daily", "interval": 1}, "range": {"type": "numbered", "startDate": "2031-03-10", "numberOfOccurrences": 6}}}))
        .await;
    let s2 = f
        .create(json!({"subject": "S2", "start": {"dateTime": "2031-03-03T14:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2031-03-03T15:00:00", "timeZone": "UTC"},
            "recurrence": {"pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"]}, "range": {"type": "endDate", "startDate": "2031-03-03", "endDate": "2031-03-31"}}}))
        .await;

    let (items, delta_link, _) = f
        .round(&f.delta_url(WS, WE), &["odata.maxpagesize=4"])
        .await;
    let before = f.truth(WS, WE).await;
    let mut local = BTreeMap::new();
    apply(&mut local, &items);
    assert_eq!(local, before);
    let s1_occ: Vec<(String, String)> = before
        .values()
        .filter(|v| v["seriesMasterId"] == s1.as_str())
        .map(|v| {
            (
                v["id"].as_str().unwrap().to_owned(),
                v["originalStart"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(s1_occ.len(), 6);
    let s2_old: BTreeSet<String> = before
        .values()
        .filter(|v| v["seriesMasterId"] == s2.as_str())
        .map(|v| v["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(s2_old.len(), 5);

    // Changes as a person in Outlook would make them.
    let d = f
        .create(single("D", "2031-03-12T09:00:00", "2031-03-12T10:00:00"))
        .await;
    let (s, r) = f
        .control(
            reqwest::Method::PATCH,
            &format!("/events/{a}"),
            Some(&json!({"subject": "A renamed"})),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    let (s, _) = f
        .control(reqwest::Method::DELETE, &format!("/events/{b}"), None)
        .await;
    assert_eq!(s, 204);
    let (s, r) = f
        .control(reqwest::Method::PATCH, &format!("/events/{c}"), Some(&json!({
            "start": {"dateTime": "2031-05-07T09:00:00", "timeZone": "UTC"}, "end": {"dateTime": "2031-05-07T10:00:00", "timeZone": "UTC"}})))
        .await;
    assert_eq!(s, 200, "{r}");
    let (moved_id, moved_start) = &s1_occ[1];
    let (s, r) = f
        .control(reqwest::Method::PATCH, &format!("/events/{s1}/occurrences/{moved_start}"), Some(&json!({
            "start": {"dateTime": "2031-03-11T15:00:00", "timeZone": "UTC"}, "end": {"dateTime": "2031-03-11T15:30:00", "timeZone": "UTC"}})))
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(
        &r["id"],
        moved_id.as_str(),
        "an exception keeps its occurrence's id"
    );
    let (cancelled_id, cancelled_start) = &s1_occ[3];
    let (s, _) = f
        .control(
            reqwest::Method::DELETE,
            &format!("/events/{s1}/occurrences/{cancelled_start}"),
            None,
        )
        .await;
    assert_eq!(s, 204);
    let (s, r) = f
        .control(
            reqwest::Method::PUT,
            &format!("/events/{s2}/recurrence"),
            Some(&json!({
            "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["wednesday"]},
            "range": {"type": "endDate", "startDate": "2031-03-03", "endDate": "2031-03-31"}})),
        )
        .await;
    assert_eq!(s, 200, "{r}");

    let after = f.truth(WS, WE).await;
    let (items, _, _) = f.round(&delta_link, &["odata.maxpagesize=3"]).await;
    let gone = removed(&items);
    let changed = present(&items);

    // Exactly the difference between the two truths.
    let expect_gone: BTreeSet<String> = before
        .keys()
        .filter(|k| !after.contains_key(*k))
        .cloned()
        .collect();
    let expect_changed: BTreeSet<String> = after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .collect();
    assert_eq!(gone, expect_gone);
    assert_eq!(
        changed.keys().cloned().collect::<BTreeSet<_>>(),
        expect_changed
    );

    // And what that means, spelled out.
    assert!(changed.contains_key(&d), "create reported");
    assert_eq!(changed[&a]["subject"], "A renamed", "update reported");
    assert!(gone.contains(&b), "delete reported");
    assert!(
        gone.contains(&c),
        "moved out of the window reported as removed"
    );
    assert!(gone.contains(cancelled_id), "cancelled occurrence removed");
    assert_eq!(changed[moved_id]["type"], "exception");
    assert_eq!(
        changed[moved_id]["start"]["dateTime"],
        "2031-03-11T15:00:00.0000000"
    );
    assert!(
        s2_old.iter().all(|id| gone.contains(id)),
        "old pattern's occurrences removed"
    );
    assert!(
        after
            .values()
            .filter(|v| v["seriesMasterId"] == s2.as_str())
            .all(|v| changed.contains_key(v["id"].as_str().unwrap()))
    );
    assert!(
        !changed.contains_key(&untouched) && !gone.contains(&untouched),
        "unchanged not reported"
    );

    apply(&mut local, &items);
    assert_eq!(local, after);
}

#[tokio::test]
async fn delta_replays_are_harmless() {
    let f = fixture("replay").await;
    for i in 0..6 {
        f.create(single(
            &format!("R{i}"),
            &format!("2031-03-{:02}T09:00:00", i + 2),
            &format!("2031-03-{:02}T10:00:00", i + 2),
        ))
        .await;
    }
    let (items, link, _) = f.round(&f.delta_url(WS, WE), &[]).await;
    let mut local = BTreeMap::new();
    apply(&mut local, &items);

    let (s, st) = f
        .control(
            reqwest::Method::POST,
            "/delta-faults",
            Some(&json!({"replay": 3})),
        )
        .await;
    assert_eq!(s, 200, "{st}");
    assert_eq!(st["faults"]["replay"], 3);
    let new = f
        .create(single("new", "2031-03-20T09:00:00", "2031-03-20T10:00:00"))
        .await;
    let (items, link2, _) = f.round(&link, &["odata.maxpagesize=2"]).await;
    assert_eq!(items.len(), 4, "1 change + 3 replays: {items:?}");
    assert!(ids(&items).contains(&new));
    // Replayed items are already known and unchanged.
    for it in items.iter().filter(|v| v["id"] != new.as_str()) {
        let mut v = it.clone();
        v.as_object_mut().unwrap().remove("@odata.type");
        assert_eq!(local.get(it["id"].as_str().unwrap()), Some(&v));
    }
    apply(&mut local, &items);
    assert_eq!(local, f.truth(WS, WE).await);

    // The fault fired once.
    let (items, _, _) = f.round(&link2, &[]).await;
    assert!(items.is_empty());
    // A delta token can be replayed (a client that lost the newer link): same changes again.
    let (again, _, _) = f.round(&link, &[]).await;
    assert!(ids(&again).contains(&new));
}

#[tokio::test]
async fn delta_gone_fault_gives_location_that_restarts_a_full_round() {
    let f = fixture("gone").await;
    for i in 0..4 {
        f.create(single(
            &format!("G{i}"),
            &format!("2031-03-{:02}T09:00:00", i + 2),
            &format!("2031-03-{:02}T10:00:00", i + 2),
        ))
        .await;
    }
    let (_, link, _) = f.round(&f.delta_url(WS, WE), &[]).await;
    let (s, st) = f
        .control(
            reqwest::Method::POST,
            "/delta-faults",
            Some(&json!({"gone_on_next": true})),
        )
        .await;
    assert_eq!(s, 200, "{st}");

    let (s, h, b) = f.get_abs(&link, &[]).await;
    assert_eq!(s, 410, "{b}");
    assert!(b["error"]["code"].is_string(), "{b}");
    let loc = h["location"].to_str().unwrap().to_owned();
    assert!(
        loc.contains("/calendarView/delta?") && loc.ends_with("$deltatoken="),
        "{loc}"
    );

    // Following Location starts a full round over the same window.
    let (items, link2, _) = f.round(&loc, &[]).await;
    assert_eq!(ids(&items), f.truth(WS, WE).await.keys().cloned().collect());
    assert!(removed(&items).is_empty());
    // The reset dropped the old sync states; the new link works.
    let (s, _, b) = f.get_abs(&link, &[]).await;
    assert_eq!(s, 410);
    assert_graph_error(&b, "SyncStateNotFound");
    let (items, _, _) = f.round(&link2, &[]).await;
    assert!(items.is_empty());
}

#[tokio::test]
async fn delta_sync_state_not_found_after_expire_all() {
    let f = fixture("expire").await;
    f.create(single("X", "2031-03-02T09:00:00", "2031-03-02T10:00:00"))
        .await;
    let (_, link, _) = f.round(&f.delta_url(WS, WE), &[]).await;
    let (s, st) = f.control(reqwest::Method::GET, "/delta-faults", None).await;
    assert_eq!(s, 200);
    assert!(st["sync_states"].as_u64().unwrap() >= 1, "{st}");

    let (s, st) = f
        .control(
            reqwest::Method::POST,
            "/delta-faults",
            Some(&json!({"expire_all": true})),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(st["sync_states"], 0);
    let (s, _, b) = f.get_abs(&link, &[]).await;
    assert_eq!(s, 410, "{b}");
    assert_graph_error(&b, "SyncStateNotFound");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("The sync state generation is not found; generation=")
    );

    // The injectable one-shot variant.
    let (_, link, _) = f.round(&f.delta_url(WS, WE), &[]).await;
    f.control(
        reqwest::Method::POST,
        "/delta-faults",
        Some(&json!({"sync_state_not_found_on_next": true})),
    )
    .await;
    let (s, _, b) = f.get_abs(&link, &[]).await;
    assert_eq!(s, 410);
    assert_graph_error(&b, "SyncStateNotFound");
    let (items, _, _) = f.round(&link, &[]).await;
    assert!(items.is_empty(), "fires once; the state itself survives");
}

#[tokio::test]
async fn delta_rejects_garbage_tokens_and_unsupported_options() {
    let f = fixture("garbage").await;
    f.create(single("X", "2031-03-02T09:00:00", "2031-03-02T10:00:00"))
        .await;
    let base =
        f.ts.url(&format!("/v1.0/users/{}/calendarView/delta", f.addr));
    for q in [
        "$deltatoken=R0usmcMDNGg0J1E",
        "$skiptoken=abc.def",
        "$deltatoken=%00%01",
        "$deltatoken=a.b.c",
    ] {
        let (s, _, b) = f.get_abs(&format!("{base}?{q}"), &[]).await;
        assert_eq!(s, 400, "{q}: {b}");
        assert_graph_error(&b, "InvalidDeltaToken");
    }
    for q in [
        "$select=subject",
        "$filter=subject eq 'x'",
        "$orderby=start/dateTime",
        "$expand=attachments",
        "$search=x",
    ] {
        let (s, _, b) = f
            .get_abs(
                &format!("{base}?startDateTime={WS}&endDateTime={WE}&{q}"),
                &[],
            )
            .await;
        assert_eq!(s, 400, "{q}: {b}");
        assert_graph_error(&b, "ErrorInvalidUrlQuery");
    }
    let (s, _, b) = f
        .get_abs(
            &format!("{base}?startDateTime={WS}&endDateTime={WE}&$top=5"),
            &[],
        )
        .await;
    assert_eq!(s, 400);
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("odata.maxpagesize")
    );
    let (s, _, b) = f.get_abs(&base, &[]).await;
    assert_eq!(s, 400);
    assert_graph_error(&b, "ErrorInvalidParameter");

    // A token of one mailbox is not valid for another.
    let (_, link, _) = f.round(&f.delta_url(WS, WE), &[]).await;
    f.ts.control(
        reqwest::Method::POST,
        "/mailboxes",
        Some(&json!({"address": "other@contoso.example"})),
    )
    .await;
    let other = link.replace(&f.addr, "other@contoso.example");
    let (s, _, b) = f.get_abs(&other, &[]).await;
    assert_eq!(s, 400, "{b}");
    // Without a token: 401.
    let r = f.ts.http.get(&link).send().await.unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn delta_client_converges_after_random_changes() {
    let f = fixture("random").await;
    let (ws, we) = ("2031-03-01T00:00:00Z", "2031-05-01T00:00:00Z");
    // Start from some content.
    let (s, b) = f
        .control(
            reqwest::Method::POST,
            "/random-changes",
            Some(&json!({"count": 15, "seed": 99, "window_start": ws, "window_end": we})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let mut local = BTreeMap::new();
    let (items, mut link, _) = f
        .round(&f.delta_url(ws, we), &["odata.maxpagesize=7"])
        .await;
    apply(&mut local, &items);
    assert_eq!(local, f.truth(ws, we).await);

    let mut kinds = BTreeSet::new();
    for seed in [1u64, 2, 3] {
        for batch in 0..3 {
            let (s, b) = f
                .control(reqwest::Method::POST, "/random-changes", Some(&json!({"count": 10, "seed": seed * 100 + batch, "window_start": ws, "window_end": we})))
                .await;
            assert_eq!(s, 200, "{b}");
            assert_eq!(b["applied"], 10);
            for c in b["changes"].as_array().unwrap() {
                kinds.insert(c["kind"].as_str().unwrap().to_owned());
            }
            if batch == 1 {
                // Replays mixed in now and then.
                f.control(
                    reqwest::Method::POST,
                    "/delta-faults",
                    Some(&json!({"replay": 2})),
                )
                .await;
            }
            let (items, next, _) = f.round(&link, &["odata.maxpagesize=5"]).await;
            apply(&mut local, &items);
            let truth = f.truth(ws, we).await;
            assert_eq!(
                local.keys().collect::<Vec<_>>(),
                truth.keys().collect::<Vec<_>>(),
                "seed {seed} batch {batch}"
            );
            assert_eq!(local, truth, "seed {seed} batch {batch}");
            link = next;
        }
    }
    assert!(kinds.len() >= 5, "varied changes: {kinds:?}");
}

/// A delegated token (authorization code + PKCE) for the fixture's mailbox.
async fn delegated_token(f: &Fix) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    const REDIRECT: &str = "http://localhost/cb";
    const VERIFIER: &str = "dGhpcy1pcy1hLXZlcmlmaWVyLWZvci10aGUtZGVsdGEtdGVzdHMtMTIzNDU2Nzg";
    let (s, app) = f
        .ts
        .control(
            reqwest::Method::POST,
            "/apps",
            Some(&json!({"name": "delta-web", "redirect_uris": [REDIRECT], "delegated_consent": ["Calendars.Read"]})),
        )
        .await;
    assert_eq!(s, 201, "{app}");
    let client_id = app["client_id"].as_str().unwrap();
    let secret = app["client_secret"].as_str().unwrap();
    let tenant = f.ts.tenant();
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(VERIFIER.as_bytes()));
    let nohttp = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let scope = "openid https://graph.microsoft.com/Calendars.Read";
    let mut form = vec![
        ("client_id", client_id),
        ("response_type", "code"),
        ("redirect_uri", REDIRECT),
        ("scope", scope),
        ("state", "s"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("step", "signin"),
        ("login", f.addr.as_str()),
    ];
    let url = f.ts.url(&format!("/{tenant}/oauth2/v2.0/authorize"));
    let mut r = nohttp.post(&url).form(&form).send().await.unwrap();
    if r.status() == 200 {
        form.retain(|(k, _)| *k != "step");
        form.extend([("step", "consent"), ("accept", "yes")]);
        r = nohttp.post(&url).form(&form).send().await.unwrap();
    }
    assert_eq!(r.status(), 302, "{:?}", r.text().await);
    let loc = r.headers()["location"].to_str().unwrap().to_owned();
    let q = loc.split_once('?').map(|(_, q)| q).unwrap_or("");
    let params: BTreeMap<String, String> = serde_urlencoded::from_str::<Vec<(String, String)>>(q)
        .unwrap()
        .into_iter()
        .collect();
    let code = params
        .get("code")
        .unwrap_or_else(|| panic!("no code in {loc}"));
    let r =
        f.ts.token_request(
            &tenant,
            &[
                ("grant_type", "authorization_code"),
                ("client_id", client_id),
                ("client_secret", secret),
                ("code", code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", VERIFIER),
            ],
        )
        .await;
    let s = r.status();
    let v: Value = r.json().await.unwrap();
    assert_eq!(s, 200, "{v}");
    v["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn delta_works_with_delegated_tokens_on_me() {
    let mut f = fixture("delegated").await;
    f.create(single("mine", "2031-03-02T09:00:00", "2031-03-02T10:00:00"))
        .await;
    let app_token = std::mem::take(&mut f.token);
    f.token = delegated_token(&f).await;

    let url = f.ts.url(&format!(
        "/v1.0/me/calendarView/delta?startDateTime={WS}&endDateTime={WE}"
    ));
    let (items, link, _) = f.round(&url, &["odata.maxpagesize=1"]).await;
    assert_eq!(items.len(), 1);
    assert!(
        link.contains("/v1.0/me/calendarView/delta?$deltatoken="),
        "{link}"
    );
    let new = f
        .create(single(
            "later",
            "2031-03-03T09:00:00",
            "2031-03-03T10:00:00",
        ))
        .await;
    let (items, _, _) = f.round(&link, &[]).await;
    assert_eq!(ids(&items), BTreeSet::from([new]));
    // The same calendar through /users/{me} and calendarView on /me.
    let (s, _, b) = f.get_abs(&f.delta_url(WS, WE), &[]).await;
    assert_eq!(s, 200, "{b}");
    let (s, _, b) = f
        .get_abs(
            &f.ts.url(&format!(
                "/v1.0/me/calendarView?startDateTime={WS}&endDateTime={WE}"
            )),
            &[],
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["value"].as_array().unwrap().len(), 2);
    // Someone else's mailbox: 403. /me with an app-only token: 400.
    f.ts.control(
        reqwest::Method::POST,
        "/mailboxes",
        Some(&json!({"address": "someone@contoso.example"})),
    )
    .await;
    let (s, _, b) = f
        .get_abs(&f.ts.url(&format!("/v1.0/users/someone@contoso.example/calendarView/delta?startDateTime={WS}&endDateTime={WE}")), &[])
        .await;
    assert_eq!(s, 403, "{b}");
    f.token = app_token;
    let (s, _, b) = f.get_abs(&url, &[]).await;
    assert_eq!(s, 400, "{b}");
}

/// An incremental round over an unchanged calendar is empty (only a deltaLink), however often
/// it is asked; and every kind of change made in between — control API edit, Graph PATCH, an
/// edit straight on the tenant model, the mailbox's address — still shows in the next round.
#[tokio::test]
async fn delta_unchanged_rounds_are_empty_and_every_change_still_shows() {
    let f = fixture("unchanged").await;
    let a = f
        .create(single("A", "2031-03-05T09:00:00", "2031-03-05T10:00:00"))
        .await;
    let b = f
        .create(single("B", "2031-03-06T09:00:00", "2031-03-06T10:00:00"))
        .await;
    let (items, mut link, _) = f.round(&f.delta_url(WS, WE), &[]).await;
    assert_eq!(items.len(), 2);
    let mut local = BTreeMap::new();
    apply(&mut local, &items);

    // Nothing changed: empty rounds, each with a new deltaLink; the old one still works.
    for _ in 0..3 {
        let (items, next, pages) = f.round(&link, &[]).await;
        assert!(items.is_empty(), "{items:?}");
        assert_eq!(pages, 1);
        assert_ne!(next, link);
        link = next;
    }

    // A control API edit.
    let (s, body) = f
        .control(
            reqwest::Method::PATCH,
            &format!("/events/{a}"),
            Some(&json!({"subject": "A2"})),
        )
        .await;
    assert!(s.is_success(), "{s} {body}");
    let (items, next, _) = f.round(&link, &[]).await;
    assert_eq!(ids(&items), BTreeSet::from([a.clone()]));
    assert_eq!(items[0]["subject"], "A2");
    apply(&mut local, &items);
    link = next;
    assert!(f.round(&link, &[]).await.0.is_empty());

    // A Graph PATCH.
    let r =
        f.ts.http
            .patch(f.ts.url(&format!("/v1.0/users/{}/events/{b}", f.addr)))
            .bearer_auth(&f.token)
            .json(&json!({"subject": "B2"}))
            .send()
            .await
            .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let (items, next, _) = f.round(&link, &[]).await;
    assert_eq!(ids(&items), BTreeSet::from([b.clone()]));
    assert_eq!(items[0]["subject"], "B2");
    apply(&mut local, &items);
    link = next;

    // An edit straight on the model (as seeding and every handler make them).
    {
        let mut dir = f.ts.sim.state.dir();
        let user = dir
            .tenants
            .iter_mut()
            .find_map(|t| t.user_mut(&f.addr))
            .unwrap();
        let cal = user.default_calendar_mut().unwrap();
        cal.events.get_mut(&a).unwrap().data.subject = "A3".into();
    }
    let (items, next, _) = f.round(&link, &[]).await;
    assert_eq!(ids(&items), BTreeSet::from([a.clone()]));
    assert_eq!(items[0]["subject"], "A3");
    apply(&mut local, &items);
    link = next;

    // A delete.
    let (s, body) = f
        .control(reqwest::Method::DELETE, &format!("/events/{b}"), None)
        .await;
    assert!(s.is_success(), "{s} {body}");
    let (items, next, _) = f.round(&link, &[]).await;
    assert_eq!(removed(&items), BTreeSet::from([b.clone()]));
    apply(&mut local, &items);
    link = next;
    assert_eq!(local, f.truth(WS, WE).await);

    // A replay armed on an unchanged calendar still re-sends instances.
    let (s, body) = f
        .control(
            reqwest::Method::POST,
            "/delta-faults",
            Some(&json!({"replay": 1})),
        )
        .await;
    assert!(s.is_success(), "{s} {body}");
    let (items, next, _) = f.round(&link, &[]).await;
    assert_eq!(ids(&items), BTreeSet::from([a.clone()]));
    link = next;
    assert!(f.round(&link, &[]).await.0.is_empty());
}
