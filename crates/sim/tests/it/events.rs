//! Graph users, mailbox settings, calendars, events CRUD, transactionId, extended properties,
//! instances (DST, exceptions, cancellations), Prefer: outlook.timezone, paging, recurrence
//! round trips. Each test builds its own mailbox in an empty tenant through the model.

use calgate_sim::model::{App, Calendar, MailboxKind, Secret, User, WorkingHours, new_item_id};
use reqwest::Method;

use crate::common::*;

struct Ctx {
    ts: TestSim,
    token: String,
    upn: String,
}

fn add_user(ts: &TestSim, upn: &str, kind: MailboxKind) {
    let st = &ts.sim.state;
    let mut dir = st.dir();
    let t = &mut dir.tenants[0];
    let name = upn.split('@').next().unwrap().to_owned();
    t.insert_user(User {
        id: uuid::Uuid::new_v4(),
        upn: upn.to_owned(),
        mail: upn.to_owned(),
        display_name: name.clone(),
        given_name: Some(name.clone()),
        surname: None,
        job_title: None,
        department: None,
        office_location: None,
        kind,
        has_mailbox: true,
        account_enabled: true,
        time_zone: "W. Europe Standard Time".into(),
        working_hours: WorkingHours {
            days_of_week: vec![
                calgate_recurrence::DayOfWeek::Monday,
                calgate_recurrence::DayOfWeek::Friday,
            ],
            start_time: jiff::civil::time(8, 0, 0, 0),
            end_time: jiff::civil::time(17, 0, 0, 0),
            time_zone: "W. Europe Standard Time".into(),
        },
        room: None,
        calendars: vec![
            Calendar::new(new_item_id(), "Calendar", true).into(),
            Calendar::new(new_item_id(), "Second", false).into(),
        ],
    });
}

/// Adds an app with `roles` and a secret; returns (client_id, secret).
fn add_app(ts: &TestSim, roles: &[&str]) -> (String, String) {
    let st = &ts.sim.state;
    let now = st.now();
    let mut app = App::new("events-test");
    app.app_roles = roles.iter().map(|r| (*r).to_owned()).collect();
    let value = format!("s3cr3t~{}", uuid::Uuid::new_v4().simple());
    app.secrets.push(Secret {
        key_id: uuid::Uuid::new_v4(),
        display_name: "test".into(),
        value: value.clone(),
        start: now - jiff::SignedDuration::from_hours(1),
        expires: now + jiff::SignedDuration::from_hours(24 * 365),
    });
    let id = app.client_id.to_string();
    st.dir().tenants[0].apps.push(app);
    (id, value)
}

async fn setup() -> Ctx {
    let ts = start(Seed::Empty).await;
    let upn = "adele@contoso.example".to_owned();
    add_user(&ts, &upn, MailboxKind::User);
    let (id, secret) = add_app(&ts, &["Calendars.ReadWrite", "User.Read.All"]);
    let token = ts.token(&id, &secret).await;
    Ctx { ts, token, upn }
}

impl Ctx {
    fn p(&self, rest: &str) -> String {
        format!("/v1.0/users/{}{rest}", self.upn)
    }
    async fn get(&self, rest: &str) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        self.ts.get(&self.token, &self.p(rest)).await
    }
    async fn get_prefer(
        &self,
        rest: &str,
        prefer: &[&str],
    ) -> (StatusCode, reqwest::header::HeaderMap, Value) {
        let mut req = self
            .ts
            .http
            .get(self.ts.url(&self.p(rest)))
            .bearer_auth(&self.token);
        for p in prefer {
            req = req.header("Prefer", *p);
        }
        let r = req.send().await.unwrap();
        let s = r.status();
        let h = r.headers().clone();
        (s, h, r.json().await.unwrap_or(Value::Null))
    }
    async fn send(&self, m: Method, rest: &str, body: &Value) -> (StatusCode, Value) {
        let (s, _, v) = self.ts.send_json(m, &self.token, &self.p(rest), body).await;
        (s, v)
    }
    async fn post_event(&self, body: &Value) -> Value {
        let (s, v) = self.send(Method::POST, "/events", body).await;
        assert_eq!(s, 201, "create: {v}");
        v
    }
    async fn delete(&self, rest: &str) -> StatusCode {
        self.ts
            .http
            .delete(self.ts.url(&self.p(rest)))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
            .status()
    }
}

fn enc(s: &str) -> String {
    s.replace('=', "%3D")
}

fn simple_event(subject: &str, day: u32) -> Value {
    json!({
        "subject": subject,
        "start": {"dateTime": format!("2025-06-{day:02}T10:00:00"), "timeZone": "Pacific Standard Time"},
        "end": {"dateTime": format!("2025-06-{day:02}T11:00:00"), "timeZone": "Pacific Standard Time"},
    })
}

fn has_7_digits(s: &str) -> bool {
    // 2025-06-02T17:00:00.0000000 or …Z
    let frac = s.split('.').nth(1).unwrap_or("");
    frac.trim_end_matches('Z').len() == 7
        && frac
            .trim_end_matches('Z')
            .chars()
            .all(|c| c.is_ascii_digit())
}

#[tokio::test]
async fn event_crud_shapes_and_errors() {
    let c = setup().await;
    let mut body = simple_event("Plan picnic", 2);
    body["body"] = json!({"contentType": "HTML", "content": "Let's <b>plan</b>!"});
    body["attendees"] = json!([{"emailAddress": {"address": "dana@contoso.example", "name": "Dana"}, "type": "Required"}]);
    body["location"] = json!({"displayName": "Room 3", "locationType": "Default"});
    body["showAs"] = json!("tentative");
    body["categories"] = json!(["Red category"]);
    let ev = c.post_event(&body).await;
    let id = ev["id"].as_str().unwrap().to_owned();
    assert!(
        ev["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("/events/$entity"),
        "{ev}"
    );
    assert_eq!(
        ev["@odata.etag"],
        format!("W/\"{}\"", ev["changeKey"].as_str().unwrap())
    );
    assert!(
        has_7_digits(ev["createdDateTime"].as_str().unwrap()),
        "{ev}"
    );
    assert!(ev["createdDateTime"].as_str().unwrap().ends_with('Z'));
    // 10:00 PDT = 17:00 UTC; UTC by default.
    assert_eq!(
        ev["start"],
        json!({"dateTime": "2025-06-02T17:00:00.0000000", "timeZone": "UTC"})
    );
    assert_eq!(ev["end"]["dateTime"], "2025-06-02T18:00:00.0000000");
    assert_eq!(ev["originalStartTimeZone"], "Pacific Standard Time");
    assert_eq!(ev["type"], "singleInstance");
    assert_eq!(ev["showAs"], "tentative");
    assert_eq!(ev["isOrganizer"], true);
    assert_eq!(ev["responseStatus"]["response"], "organizer");
    assert_eq!(ev["organizer"]["emailAddress"]["address"], c.upn);
    assert_eq!(ev["attendees"][0]["type"], "required");
    assert_eq!(ev["location"]["locationType"], "default");
    assert_eq!(ev["bodyPreview"], "Let's plan !");
    assert_eq!(ev["body"]["contentType"], "html");
    assert_eq!(ev["recurrence"], Value::Null);
    assert_eq!(ev["seriesMasterId"], Value::Null);
    assert!(
        ev["iCalUId"]
            .as_str()
            .unwrap()
            .starts_with("040000008200E00074C5B7101A82E008")
    );
    assert_eq!(
        ev["webLink"],
        format!(
            "https://outlook.office365.com/owa/?itemid={}&exvsurl=1&path=/calendar/item",
            enc(&id)
        )
    );
    for k in [
        "transactionId",
        "hideAttendees",
        "isDraft",
        "allowNewTimeProposals",
        "onlineMeeting",
        "locations",
        "categories",
    ] {
        assert!(ev.get(k).is_some(), "{k} missing: {ev}");
    }

    let (s, _, got) = c.get(&format!("/events/{}", enc(&id))).await;
    assert_eq!(s, 200);
    assert_eq!(got["subject"], "Plan picnic");
    assert_eq!(got["changeKey"], ev["changeKey"]);

    // $select keeps id and @odata.etag.
    let (_, _, sel) = c
        .get(&format!("/events/{}?$select=subject,start", enc(&id)))
        .await;
    assert!(sel.get("showAs").is_none(), "{sel}");
    assert!(
        sel["@odata.context"]
            .as_str()
            .unwrap()
            .contains("/events(subject,start)/$entity"),
        "{sel}"
    );
    assert!(sel["id"].is_string() && sel["@odata.etag"].is_string());

    // PATCH changes changeKey and lastModifiedDateTime, keeps iCalUId.
    c.ts.sim.state.advance_clock(5);
    let (s, upd) = c
        .send(
            Method::PATCH,
            &format!("/events/{}", enc(&id)),
            &json!({"subject": "Picnic!", "sensitivity": "private"}),
        )
        .await;
    assert_eq!(s, 200, "{upd}");
    assert_eq!(upd["subject"], "Picnic!");
    assert_eq!(upd["sensitivity"], "private");
    assert_ne!(upd["changeKey"], ev["changeKey"]);
    assert_eq!(upd["iCalUId"], ev["iCalUId"]);
    assert!(
        upd["lastModifiedDateTime"].as_str().unwrap()
            > ev["lastModifiedDateTime"].as_str().unwrap()
    );
    assert_eq!(upd["start"], ev["start"]);

    // Errors.
    let (s, e) = c
        .send(
            Method::POST,
            "/events",
            &json!({"subject": "x", "foo": 1, "start": body["start"], "end": body["end"]}),
        )
        .await;
    assert_eq!(s, 400);
    assert_graph_error(&e, "RequestBodyRead");
    assert!(
        e["error"]["message"].as_str().unwrap().contains("'foo'"),
        "{e}"
    );
    let (s, e) = c
        .send(
            Method::POST,
            "/events",
            &json!({"subject": "x",
            "start": {"dateTime": "2025-06-02T10:00:00", "timeZone": "Mars Standard Time"},
            "end": {"dateTime": "2025-06-02T11:00:00", "timeZone": "UTC"}}),
        )
        .await;
    assert_eq!(s, 400);
    assert_graph_error(&e, "TimeZoneNotSupportedException");
    assert_eq!(
        e["error"]["message"],
        "A valid TimeZone value must be specified. The following TimeZone value is not supported: 'Mars Standard Time'."
    );
    let (s, e) = c
        .send(
            Method::POST,
            "/events",
            &json!({"subject": "x", "isAllDay": true,
        "start": {"dateTime": "2025-06-02T10:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2025-06-03T00:00:00", "timeZone": "UTC"}}),
        )
        .await;
    assert_eq!(s, 400, "{e}");
    let r =
        c.ts.http
            .post(c.ts.url(&c.p("/events")))
            .bearer_auth(&c.token)
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap();
    assert_eq!(r.status(), 400);
    let (s, _, e) = c.get("/events/not*an*id").await;
    assert_eq!(s, 400);
    assert_graph_error(&e, "ErrorInvalidIdMalformed");

    // DELETE → 204, then 404.
    assert_eq!(c.delete(&format!("/events/{}", enc(&id))).await, 204);
    let (s, _, e) = c.get(&format!("/events/{}", enc(&id))).await;
    assert_eq!(s, 404);
    assert_graph_error(&e, "ErrorItemNotFound");
    assert_eq!(
        e["error"]["message"],
        "The specified object was not found in the store."
    );
    assert_eq!(c.delete(&format!("/events/{}", enc(&id))).await, 404);
}

#[tokio::test]
async fn transaction_id_deduplicates_creates() {
    let c = setup().await;
    let mut body = simple_event("Retry me", 3);
    body["transactionId"] = json!("7E163156-7762-4BEB-A1C6-729EA81755A7");
    let a = c.post_event(&body).await;
    let b = c.post_event(&body).await;
    assert_eq!(a["id"], b["id"]);
    assert_eq!(a["transactionId"], "7E163156-7762-4BEB-A1C6-729EA81755A7");
    body["transactionId"] = json!("another");
    let d = c.post_event(&body).await;
    assert_ne!(a["id"], d["id"]);
    let (_, _, list) = c.get("/events").await;
    assert_eq!(list["value"].as_array().unwrap().len(), 2, "{list}");
}

#[tokio::test]
async fn extended_properties_expand_and_filter() {
    let c = setup().await;
    let pid = "String {66f5a359-4659-4830-9070-00047ec6ac6e} Name CalgateId";
    let mut body = simple_event("Tagged", 4);
    body["singleValueExtendedProperties"] = json!([{"id": pid, "value": "corr-1"}]);
    let tagged = c.post_event(&body).await;
    assert!(
        tagged.get("singleValueExtendedProperties").is_none(),
        "only with $expand: {tagged}"
    );
    c.post_event(&simple_event("Untagged", 5)).await;

    let id = enc(tagged["id"].as_str().unwrap());
    let q = format!(
        "/events/{id}?$expand=singleValueExtendedProperties($filter=id%20eq%20'{}')",
        pid.replace(' ', "%20")
    );
    let (s, _, got) = c.get(&q).await;
    assert_eq!(s, 200, "{got}");
    assert_eq!(
        got["singleValueExtendedProperties"],
        json!([{"id": pid, "value": "corr-1"}])
    );

    let filter =
        format!("singleValueExtendedProperties/Any(ep: ep/id eq '{pid}' and ep/value eq 'corr-1')");
    let url = format!("/events?$filter={}", urlencode(&filter));
    let (s, _, list) = c.get(&url).await;
    assert_eq!(s, 200, "{list}");
    let v = list["value"].as_array().unwrap();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0]["subject"], "Tagged");
    let filter =
        format!("singleValueExtendedProperties/Any(ep: ep/id eq '{pid}' and ep/value eq 'nope')");
    let (_, _, list) = c
        .get(&format!("/events?$filter={}", urlencode(&filter)))
        .await;
    assert_eq!(list["value"].as_array().unwrap().len(), 0);

    // PATCH sets a value; a malformed id is refused.
    let (s, _) = c
        .send(
            Method::PATCH,
            &format!("/events/{id}"),
            &json!({"singleValueExtendedProperties": [{"id": pid, "value": "corr-2"}]}),
        )
        .await;
    assert_eq!(s, 200);
    let (_, _, got) = c
        .get(&format!(
            "/events/{id}?$expand=singleValueExtendedProperties"
        ))
        .await;
    assert_eq!(got["singleValueExtendedProperties"][0]["value"], "corr-2");
    let (s, e) = c
        .send(
            Method::PATCH,
            &format!("/events/{id}"),
            &json!({"singleValueExtendedProperties": [{"id": "Strin {x} Name", "value": "v"}]}),
        )
        .await;
    assert_eq!(s, 400, "{e}");
    let (s, _, _) = c.get("/events?$filter=contains(subject,'x')").await;
    assert_eq!(s, 400);
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn weekly_berlin(subject: &str) -> Value {
    json!({
        "subject": subject,
        "start": {"dateTime": "2025-03-17T09:00:00", "timeZone": "W. Europe Standard Time"},
        "end": {"dateTime": "2025-03-17T09:30:00", "timeZone": "W. Europe Standard Time"},
        "recurrence": {
            "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"]},
            "range": {"type": "numbered", "startDate": "2025-03-17", "numberOfOccurrences": 6}
        }
    })
}

#[tokio::test]
async fn instances_keep_wall_clock_across_dst_and_page() {
    let c = setup().await;
    let m = c.post_event(&weekly_berlin("Standup")).await;
    assert_eq!(m["type"], "seriesMaster");
    assert_eq!(
        m["recurrence"]["range"]["recurrenceTimeZone"],
        "W. Europe Standard Time"
    );
    let id = enc(m["id"].as_str().unwrap());
    let w = "startDateTime=2025-03-01T00:00:00Z&endDateTime=2025-05-01T00:00:00Z";
    let (s, _, page) = c.get(&format!("/events/{id}/instances?{w}&$top=4")).await;
    assert_eq!(s, 200, "{page}");
    let v = page["value"].as_array().unwrap();
    let starts: Vec<&str> = v
        .iter()
        .map(|i| i["start"]["dateTime"].as_str().unwrap())
        .collect();
    // Berlin moves to CEST on 2025-03-30: 09:00 local is 08:00Z, then 07:00Z.
    assert_eq!(
        starts,
        [
            "2025-03-17T08:00:00.0000000",
            "2025-03-24T08:00:00.0000000",
            "2025-03-31T07:00:00.0000000",
            "2025-04-07T07:00:00.0000000"
        ]
    );
    for i in v {
        assert_eq!(i["type"], "occurrence");
        assert_eq!(i["seriesMasterId"], m["id"]);
        assert_ne!(i["id"], m["id"]);
        assert!(i["originalStart"].is_string());
        assert_ne!(i["iCalUId"], m["iCalUId"]);
    }
    assert!(
        page["@odata.context"]
            .as_str()
            .unwrap()
            .contains("/instances")
    );
    // Follow the nextLink: 2 more.
    let next = page["@odata.nextLink"].as_str().unwrap();
    let path = next.strip_prefix(&c.ts.sim.base_url).unwrap();
    let (_, _, p2) = c.ts.get(&c.token, path).await;
    assert_eq!(p2["value"].as_array().unwrap().len(), 2);
    assert!(p2.get("@odata.nextLink").is_none());
    // Ids are stable across calls and resolve back.
    let (_, _, again) = c.get(&format!("/events/{id}/instances?{w}&$top=4")).await;
    assert_eq!(again["value"][0]["id"], v[0]["id"]);
    let (s, _, occ) = c
        .get(&format!("/events/{}", enc(v[2]["id"].as_str().unwrap())))
        .await;
    assert_eq!(s, 200);
    assert_eq!(occ["type"], "occurrence");
    assert_eq!(occ["start"]["dateTime"], "2025-03-31T07:00:00.0000000");

    let (s, _, e) = c.get(&format!("/events/{id}/instances")).await;
    assert_eq!(s, 400);
    assert_graph_error(&e, "ErrorInvalidParameter");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("StartDateTime and EndDateTime")
    );
}

#[tokio::test]
async fn edit_one_occurrence_and_cancel_another() {
    let c = setup().await;
    let m = c.post_event(&weekly_berlin("Review")).await;
    let mid = m["id"].as_str().unwrap().to_owned();
    let w = "startDateTime=2025-03-01T00:00:00Z&endDateTime=2025-05-01T00:00:00Z";
    let (_, _, page) = c.get(&format!("/events/{}/instances?{w}", enc(&mid))).await;
    let occ: Vec<Value> = page["value"].as_array().unwrap().clone();
    assert_eq!(occ.len(), 6);
    let second = occ[1]["id"].as_str().unwrap().to_owned();
    let third = occ[2]["id"].as_str().unwrap().to_owned();

    // Move the 2nd occurrence to Tuesday 14:00 Berlin and rename it.
    let (s, x) = c
        .send(
            Method::PATCH,
            &format!("/events/{}", enc(&second)),
            &json!({
                "subject": "Review (moved)",
                "start": {"dateTime": "2025-03-25T14:00:00", "timeZone": "Europe/Berlin"},
                "end": {"dateTime": "2025-03-25T14:30:00", "timeZone": "Europe/Berlin"}
            }),
        )
        .await;
    assert_eq!(s, 200, "{x}");
    assert_eq!(x["type"], "exception");
    assert_eq!(x["id"], second.as_str());
    assert_eq!(x["seriesMasterId"], mid.as_str());
    assert_eq!(x["originalStart"], "2025-03-24T08:00:00.0000000Z");
    // Cancel the 3rd.
    assert_eq!(c.delete(&format!("/events/{}", enc(&third))).await, 204);
    let (s, _, _) = c.get(&format!("/events/{}", enc(&third))).await;
    assert_eq!(s, 404);

    let (_, _, page) = c.get(&format!("/events/{}/instances?{w}", enc(&mid))).await;
    let v = page["value"].as_array().unwrap();
    assert_eq!(v.len(), 5, "{page}");
    let moved = v.iter().find(|i| i["id"] == second.as_str()).unwrap();
    assert_eq!(moved["type"], "exception");
    assert_eq!(moved["subject"], "Review (moved)");
    assert_eq!(moved["start"]["dateTime"], "2025-03-25T13:00:00.0000000");
    assert!(v.iter().all(|i| i["id"] != third.as_str()));
    assert_eq!(v.iter().filter(|i| i["type"] == "occurrence").count(), 4);

    // The master lists its cancelled occurrence when asked; its changeKey moved on.
    let (_, _, master) = c
        .get(&format!(
            "/events/{}?$select=subject,cancelledOccurrences",
            enc(&mid)
        ))
        .await;
    assert_eq!(
        master["cancelledOccurrences"],
        json!([format!("OID.{mid}.2025-03-31")])
    );
    assert_ne!(master["@odata.etag"], m["@odata.etag"]);
    // /events lists the master only (not expanded).
    let (_, _, list) = c.get("/events").await;
    assert_eq!(list["value"].as_array().unwrap().len(), 1);
    assert_eq!(list["value"][0]["type"], "seriesMaster");

    // PATCHing the master with the recurrence it read back keeps the exception and cancellation.
    let (_, _, full) = c.get(&format!("/events/{}", enc(&mid))).await;
    let (s, _) = c
        .send(
            Method::PATCH,
            &format!("/events/{}", enc(&mid)),
            &json!({"recurrence": full["recurrence"], "subject": "Review v2"}),
        )
        .await;
    assert_eq!(s, 200);
    let (_, _, page) = c.get(&format!("/events/{}/instances?{w}", enc(&mid))).await;
    let v = page["value"].as_array().unwrap();
    assert_eq!(v.len(), 5, "{page}");
    assert_eq!(v.iter().filter(|i| i["subject"] == "Review v2").count(), 4);
    assert!(
        v.iter()
            .any(|i| i["type"] == "exception" && i["subject"] == "Review (moved)")
    );

    // Deleting the master deletes the series.
    assert_eq!(c.delete(&format!("/events/{}", enc(&mid))).await, 204);
    let (s, _, _) = c.get(&format!("/events/{}", enc(&second))).await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn prefer_time_zone_windows_iana_and_all_day() {
    let c = setup().await;
    let ev = c.post_event(&simple_event("Zoned", 6)).await;
    let id = enc(ev["id"].as_str().unwrap());
    let allday = c
        .post_event(&json!({"subject": "Holiday", "isAllDay": true,
            "start": {"dateTime": "2025-06-09T00:00:00", "timeZone": "W. Europe Standard Time"},
            "end": {"dateTime": "2025-06-10T00:00:00", "timeZone": "W. Europe Standard Time"}}))
        .await;
    let aid = enc(allday["id"].as_str().unwrap());
    assert_eq!(
        allday["start"],
        json!({"dateTime": "2025-06-09T00:00:00.0000000", "timeZone": "UTC"})
    );

    let (s, h, v) = c
        .get_prefer(
            &format!("/events/{id}"),
            &["outlook.timezone=\"Eastern Standard Time\""],
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        v["start"],
        json!({"dateTime": "2025-06-06T13:00:00.0000000", "timeZone": "Eastern Standard Time"})
    );
    assert_eq!(
        h["preference-applied"],
        "outlook.timezone=\"Eastern Standard Time\""
    );
    // IANA name, several preferences on one line and another on its own line.
    let (_, h, v) = c
        .get_prefer(
            &format!("/events/{id}"),
            &[
                "odata.maxpagesize=5, outlook.timezone=\"Asia/Tokyo\"",
                "outlook.body-content-type=\"text\"",
            ],
        )
        .await;
    assert_eq!(
        v["start"],
        json!({"dateTime": "2025-06-07T02:00:00.0000000", "timeZone": "Asia/Tokyo"})
    );
    assert_eq!(h["preference-applied"], "outlook.timezone=\"Asia/Tokyo\"");
    // Case-insensitive preference name; all-day not shifted.
    let (_, _, v) = c
        .get_prefer(
            &format!("/events/{aid}"),
            &["Outlook.TimeZone=\"Pacific Standard Time\""],
        )
        .await;
    assert_eq!(
        v["start"],
        json!({"dateTime": "2025-06-09T00:00:00.0000000", "timeZone": "Pacific Standard Time"})
    );
    assert_eq!(v["end"]["dateTime"], "2025-06-10T00:00:00.0000000");
    // Lists too.
    let (_, h, list) = c
        .get_prefer("/events", &["outlook.timezone=\"Pacific Standard Time\""])
        .await;
    assert_eq!(
        h["preference-applied"],
        "outlook.timezone=\"Pacific Standard Time\""
    );
    let zoned = list["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["subject"] == "Zoned")
        .unwrap();
    assert_eq!(zoned["start"]["dateTime"], "2025-06-06T10:00:00.0000000");
    // Unknown zone.
    let (s, _, e) = c
        .get_prefer(
            &format!("/events/{id}"),
            &["outlook.timezone=\"Australia Eastern Standard Time\""],
        )
        .await;
    assert_eq!(s, 400);
    assert_graph_error(&e, "TimeZoneNotSupportedException");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .ends_with("'Australia Eastern Standard Time'.")
    );
}

#[tokio::test]
async fn events_list_pages_of_ten_follow_next_link() {
    let c = setup().await;
    for i in 0..23 {
        c.post_event(&simple_event(&format!("E{i:02}"), 1 + (i % 28)))
            .await;
    }
    let (s, _, first) = c.get("/events").await;
    assert_eq!(s, 200);
    assert!(
        first["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with(&format!("users('{}')/events", c.upn)),
        "{first}"
    );
    assert_eq!(first["value"].as_array().unwrap().len(), 10);
    let mut seen: Vec<String> = first["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    let mut next = first["@odata.nextLink"].as_str().map(str::to_owned);
    let mut pages = 1;
    while let Some(n) = next {
        let path = n.strip_prefix(&c.ts.sim.base_url).unwrap().to_owned();
        let (s, _, p) = c.ts.get(&c.token, &path).await;
        assert_eq!(s, 200, "{p}");
        seen.extend(
            p["value"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_str().unwrap().to_owned()),
        );
        next = p["@odata.nextLink"].as_str().map(str::to_owned);
        pages += 1;
    }
    assert_eq!(pages, 3);
    let n = seen.len();
    seen.sort();
    seen.dedup();
    assert_eq!((n, seen.len()), (23, 23));
    let (_, _, p) = c
        .get("/events?$top=30&$orderby=start/dateTime%20desc")
        .await;
    let v = p["value"].as_array().unwrap();
    assert_eq!(v.len(), 23);
    assert!(v[0]["start"]["dateTime"].as_str() >= v[22]["start"]["dateTime"].as_str());
    let (s, _, _) = c.get("/events?$top=abc").await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn every_pattern_and_range_type_round_trips() {
    let c = setup().await;
    let patterns = [
        json!({"type": "daily", "interval": 2}),
        json!({"type": "weekly", "interval": 1, "daysOfWeek": ["monday", "wednesday"], "firstDayOfWeek": "monday"}),
        json!({"type": "absoluteMonthly", "interval": 1, "dayOfMonth": 15}),
        json!({"type": "relativeMonthly", "interval": 1, "daysOfWeek": ["thursday"], "index": "last"}),
        json!({"type": "absoluteYearly", "interval": 1, "month": 6, "dayOfMonth": 2}),
        json!({"type": "relativeYearly", "interval": 1, "month": 11, "daysOfWeek": ["thursday"], "index": "fourth"}),
    ];
    let ranges = [
        json!({"type": "endDate", "startDate": "2025-06-02", "endDate": "2026-12-31"}),
        json!({"type": "noEnd", "startDate": "2025-06-02"}),
        json!({"type": "numbered", "startDate": "2025-06-02", "numberOfOccurrences": 5}),
    ];
    for (i, p) in patterns.iter().enumerate() {
        let r = &ranges[i % 3];
        let mut body = simple_event(&format!("P{i}"), 2);
        body["recurrence"] = json!({"pattern": p, "range": r});
        let ev = c.post_event(&body).await;
        let (_, _, got) = c
            .get(&format!("/events/{}", enc(ev["id"].as_str().unwrap())))
            .await;
        let rec = &got["recurrence"];
        for (k, v) in p.as_object().unwrap() {
            assert_eq!(&rec["pattern"][k], v, "pattern {k} of {p}: {rec}");
        }
        for (k, v) in r.as_object().unwrap() {
            assert_eq!(&rec["range"][k], v, "range {k} of {r}: {rec}");
        }
        for k in [
            "type",
            "interval",
            "month",
            "dayOfMonth",
            "daysOfWeek",
            "firstDayOfWeek",
            "index",
        ] {
            assert!(rec["pattern"].get(k).is_some(), "{k} missing in {rec}");
        }
        assert_eq!(rec["range"]["recurrenceTimeZone"], "Pacific Standard Time");
        // Every series yields occurrences through /instances.
        let (s, _, inst) = c
            .get(&format!("/events/{}/instances?startDateTime=2025-06-01T00:00:00Z&endDateTime=2027-01-01T00:00:00Z&$top=3", enc(ev["id"].as_str().unwrap())))
            .await;
        assert_eq!(s, 200);
        assert!(
            !inst["value"].as_array().unwrap().is_empty(),
            "no instances for {p}"
        );
    }
    // Invalid patterns → 400.
    let mut bad = simple_event("bad", 2);
    bad["recurrence"] = json!({"pattern": {"type": "weekly", "interval": 1}, "range": ranges[1]});
    let (s, e) = c.send(Method::POST, "/events", &bad).await;
    assert_eq!(s, 400, "{e}");
    assert_graph_error(&e, "ErrorCalendarInvalidRecurrence");
    bad["recurrence"] = json!({"pattern": {"type": "hourly", "interval": 1}, "range": ranges[1]});
    let (s, _) = c.send(Method::POST, "/events", &bad).await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn users_calendars_and_mailbox_settings() {
    let c = setup().await;
    add_user(&c.ts, "room1@contoso.example", MailboxKind::Room);
    let (s, _, u) = c.ts.get(&c.token, &format!("/v1.0/users/{}", c.upn)).await;
    assert_eq!(s, 200, "{u}");
    assert_eq!(u["userPrincipalName"], c.upn);
    assert!(
        u["@odata.context"]
            .as_str()
            .unwrap()
            .ends_with("$metadata#users/$entity")
    );
    let (s, _, e) =
        c.ts.get(&c.token, "/v1.0/users/nobody@contoso.example")
            .await;
    assert_eq!(s, 404);
    assert_graph_error(&e, "Request_ResourceNotFound");
    let (_, _, list) =
        c.ts.get(
            &c.token,
            "/v1.0/users?$filter=mail%20eq%20'room1@contoso.example'",
        )
        .await;
    assert_eq!(list["value"].as_array().unwrap().len(), 1, "{list}");
    let (_, _, list) = c.ts.get(&c.token, "/v1.0/users?$top=1").await;
    assert_eq!(list["value"].as_array().unwrap().len(), 1);
    assert!(list["@odata.nextLink"].is_string());

    let (s, _, cals) = c.get("/calendars").await;
    assert_eq!(s, 200);
    let v = cals["value"].as_array().unwrap();
    assert_eq!(v.len(), 2);
    assert_eq!(v[0]["isDefaultCalendar"], true);
    assert_eq!(v[0]["owner"]["address"], c.upn);
    let (_, _, def) = c.get("/calendar").await;
    assert_eq!(def["id"], v[0]["id"]);
    // Events in the second calendar stay there.
    let second = v[1]["id"].as_str().unwrap().to_owned();
    let (s, ev) = c
        .send(
            Method::POST,
            &format!("/calendars/{}/events", enc(&second)),
            &simple_event("In second", 7),
        )
        .await;
    assert_eq!(s, 201);
    let (_, _, l2) = c.get(&format!("/calendars/{}/events", enc(&second))).await;
    assert_eq!(l2["value"][0]["id"], ev["id"]);
    let (_, _, l1) = c.get("/events").await;
    assert_eq!(l1["value"].as_array().unwrap().len(), 0);
    let (s, _, _) = c.get("/calendars/AAMkAGI2TGuLAAA%3D").await;
    assert_eq!(s, 404);

    // mailboxSettings needs MailboxSettings.Read.
    let (s, _, e) = c.get("/mailboxSettings").await;
    assert_eq!(s, 403, "{e}");
    let (id, secret) = add_app(&c.ts, &["MailboxSettings.Read"]);
    let t = c.ts.token(&id, &secret).await;
    let (s, _, ms) =
        c.ts.get(&t, "/v1.0/users/room1@contoso.example/mailboxSettings")
            .await;
    assert_eq!(s, 200, "{ms}");
    assert_eq!(ms["userPurpose"], "room");
    assert_eq!(ms["timeZone"], "W. Europe Standard Time");
    assert_eq!(ms["workingHours"]["startTime"], "08:00:00.0000000");
    assert_eq!(
        ms["workingHours"]["daysOfWeek"],
        json!(["monday", "friday"])
    );
    assert_eq!(
        ms["workingHours"]["timeZone"]["name"],
        "W. Europe Standard Time"
    );
}

#[tokio::test]
async fn read_only_app_cannot_write() {
    let c = setup().await;
    let ev = c.post_event(&simple_event("Mine", 8)).await;
    let (id, secret) = add_app(&c.ts, &["Calendars.Read"]);
    let t = c.ts.token(&id, &secret).await;
    let p = c.p("/events");
    let (s, _, list) = c.ts.get(&t, &p).await;
    assert_eq!(s, 200);
    assert_eq!(list["value"].as_array().unwrap().len(), 1);
    let (s, _, e) =
        c.ts.send_json(Method::POST, &t, &p, &simple_event("No", 9))
            .await;
    assert_eq!(s, 403);
    assert_graph_error(&e, "ErrorAccessDenied");
    let path = c.p(&format!("/events/{}", enc(ev["id"].as_str().unwrap())));
    let (s, _, _) =
        c.ts.send_json(Method::PATCH, &t, &path, &json!({"subject": "x"}))
            .await;
    assert_eq!(s, 403);
    let (s, _, e) =
        c.ts.get(&t, "/v1.0/users/ghost@contoso.example/events")
            .await;
    assert_eq!(s, 404);
    assert_graph_error(&e, "ErrorInvalidUser");
}

#[tokio::test]
async fn locations_keep_addresses_coordinates_and_correspond() {
    let c = setup().await;
    let mut body = simple_event("Picnic", 9);
    body["location"] = json!({"displayName": "Room 3; Fourth Coffee", "locationType": "Default"});
    body["locations"] = json!([
        {"displayName": "Room 3"},
        {"displayName": "Fourth Coffee",
         "address": {"street": "4567 Main St", "city": "Redmond", "state": "WA",
                     "countryOrRegion": "US", "postalCode": "32008"},
         "coordinates": {"latitude": 47.672, "longitude": -102.103}}
    ]);
    let ev = c.post_event(&body).await;
    assert_eq!(ev["location"]["displayName"], "Room 3; Fourth Coffee");
    assert_eq!(ev["location"]["uniqueIdType"], "private");
    let locs = ev["locations"].as_array().unwrap();
    assert_eq!(locs.len(), 2, "{ev}");
    assert_eq!(locs[0]["uniqueIdType"], "unknown");
    assert!(locs[0].get("uniqueId").is_none(), "create answer: {ev}");
    assert!(locs[0].get("address").is_none());
    assert_eq!(locs[1]["address"]["city"], "Redmond");
    assert_eq!(locs[1]["address"]["postalCode"], "32008");
    assert_eq!(
        locs[1]["coordinates"],
        json!({"latitude": 47.672, "longitude": -102.103})
    );
    assert_eq!(locs[1]["uniqueId"], "Fourth Coffee");
    assert_eq!(locs[1]["uniqueIdType"], "private");

    // A read shows the name-only entry's empty uniqueId.
    let id = enc(ev["id"].as_str().unwrap());
    let (_, _, got) = c.get(&format!("/events/{id}")).await;
    assert_eq!(got["locations"][0]["uniqueId"], "", "{got}");
    assert_eq!(got["locations"][1]["coordinates"]["longitude"], -102.103);

    // Setting `location` alone replaces `locations` with it (address included).
    let (s, up) = c
        .send(
            Method::PATCH,
            &format!("/events/{id}"),
            &json!({"location": {"displayName": "Town hall",
                "address": {"city": "Springfield", "countryOrRegion": "United States"},
                "coordinates": {"latitude": 47.6, "longitude": -122.3, "accuracy": 10}}}),
        )
        .await;
    assert_eq!(s, 200, "{up}");
    assert_eq!(
        up["location"]["address"],
        json!({"city": "Springfield", "countryOrRegion": "United States"})
    );
    assert_eq!(up["location"]["coordinates"]["accuracy"], 10);
    let locs = up["locations"].as_array().unwrap();
    assert_eq!(locs.len(), 1, "{up}");
    assert_eq!(locs[0]["displayName"], "Town hall");
    assert_eq!(locs[0]["address"]["city"], "Springfield");

    // Setting `locations` alone names `location` after them.
    let (s, up) = c
        .send(
            Method::PATCH,
            &format!("/events/{id}"),
            &json!({"locations": [{"displayName": "A"}, {"displayName": "B"}]}),
        )
        .await;
    assert_eq!(s, 200, "{up}");
    assert_eq!(up["location"]["displayName"], "A; B");
    assert!(up["location"].get("address").is_none(), "{up}");
    assert_eq!(up["locations"].as_array().unwrap().len(), 2);

    // No location: Exchange's empty placeholder.
    let plain = c.post_event(&simple_event("Nowhere", 10)).await;
    assert_eq!(
        plain["location"],
        json!({"displayName": "", "locationType": "default", "uniqueIdType": "unknown",
               "address": {}, "coordinates": {}})
    );
    assert_eq!(plain["locations"], json!([]));

    // Bad members are 400s, not crashes.
    for bad in [
        json!({"location": {"displayName": "x", "coordinates": {"latitude": "north"}}}),
        json!({"location": {"displayName": "x", "address": {"planet": "Mars"}}}),
        json!({"location": {"displayName": "x", "address": "1 Main St"}}),
        json!({"locations": {"displayName": "x"}}),
    ] {
        let (s, e) = c.send(Method::PATCH, &format!("/events/{id}"), &bad).await;
        assert_eq!(s, 400, "{bad} → {e}");
        assert_graph_error(&e, "RequestBodyRead");
    }
}

#[tokio::test]
async fn calendars_and_event_reads_carry_odata_ids_and_links() {
    let c = setup().await;
    let (_, _, me) = c.ts.get(&c.token, &format!("/v1.0/users/{}", c.upn)).await;
    let oid = me["id"].as_str().unwrap().to_owned();
    let tenant = c.ts.tenant();
    let (_, _, cals) = c.get("/calendars").await;
    let first = &cals["value"][0];
    let cid = first["id"].as_str().unwrap().to_owned();
    assert_eq!(
        first["@odata.id"],
        c.ts.url(&format!("/v1.0/users('{oid}@{tenant}')/calendars('{cid}')")),
        "{cals}"
    );
    let (_, _, def) = c.get("/calendar").await;
    assert_eq!(def["@odata.id"], first["@odata.id"]);

    let pid = "String {66f5a359-4659-4830-9070-00047ec6ac6e} Name Color";
    let mut body = simple_event("Linked", 11);
    body["singleValueExtendedProperties"] = json!([{"id": pid, "value": "Green"}]);
    let ev = c.post_event(&body).await;
    assert!(ev.get("calendar@odata.navigationLink").is_none(), "{ev}");
    let eid = ev["id"].as_str().unwrap().to_owned();
    let cal_url =
        c.ts.url(&format!("/v1.0/users('{oid}')/calendars('{cid}')"));
    let (s, _, got) = c
        .get(&format!("/events/{}?$select=subject,location", enc(&eid)))
        .await;
    assert_eq!(s, 200, "{got}");
    assert_eq!(got["calendar@odata.navigationLink"], cal_url);
    assert_eq!(
        got["calendar@odata.associationLink"],
        format!("{cal_url}/$ref")
    );
    assert!(got.get("@odata.id").is_none(), "only with $expand: {got}");

    let (s, _, got) = c
        .get(&format!(
            "/events/{}?$expand=singleValueExtendedProperties($filter=id%20eq%20'{}')",
            enc(&eid),
            pid.replace(' ', "%20")
        ))
        .await;
    assert_eq!(s, 200, "{got}");
    assert_eq!(
        got["@odata.id"],
        c.ts.url(&format!("/v1.0/users('{oid}@{tenant}')/events('{eid}')"))
    );
    assert_eq!(got["calendar@odata.navigationLink"], cal_url);
    assert_eq!(got["singleValueExtendedProperties"][0]["value"], "Green");
}
