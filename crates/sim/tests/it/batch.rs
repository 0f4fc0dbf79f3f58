//! JSON batching: limits, ids, dependsOn and 424, at most 4 at once, per-request throttling.

use calgate_sim::model::MailboxKind;

use crate::common::*;
use crate::throttle::fx;

async fn batch(t: &TestSim, token: &str, body: &Value) -> (StatusCode, Value) {
    let (s, _, v) = t
        .send_json(reqwest::Method::POST, token, "/v1.0/$batch", body)
        .await;
    (s, v)
}

/// A getSchedule sub-request on `addr`'s own mailbox.
fn sched(id: &str, addr: &str) -> Value {
    json!({
        "id": id,
        "method": "POST",
        "url": format!("/users/{addr}/calendar/getSchedule"),
        "headers": {"Content-Type": "application/json"},
        "body": fx::schedule_body(&[addr]),
    })
}

fn by_id<'a>(v: &'a Value, id: &str) -> &'a Value {
    v["responses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("no response {id}: {v}"))
}

#[tokio::test]
async fn twenty_requests_run_and_twenty_one_are_refused() {
    let t = fx::sim().await;
    let a = fx::mailbox(&t, "alice", MailboxKind::User);
    let token = t.default_token().await;
    let mut reqs: Vec<Value> = (0..20)
        .map(|i| {
            if i % 2 == 0 {
                sched(&i.to_string(), &a)
            } else {
                // Without the leading slash works too.
                json!({"id": i.to_string(), "method": "GET", "url": "places/microsoft.graph.room"})
            }
        })
        .collect();
    let (s, v) = batch(&t, &token, &json!({ "requests": reqs })).await;
    assert_eq!(s, 200, "{v}");
    let responses = v["responses"].as_array().unwrap();
    assert_eq!(responses.len(), 20);
    for r in responses {
        assert_eq!(r["status"], 200, "{r}");
        assert!(
            r["headers"]["Content-Type"]
                .as_str()
                .unwrap()
                .starts_with("application/json"),
            "{r}"
        );
        assert!(r["body"]["value"].is_array(), "{r}");
    }
    reqs.push(sched("20", &a));
    let (s, v) = batch(&t, &token, &json!({ "requests": reqs })).await;
    assert_eq!(s, 400, "{v}");
    assert_graph_error(&v, "BadRequest");
}

#[tokio::test]
async fn malformed_batches_are_refused_whole() {
    let t = fx::sim().await;
    let a = fx::mailbox(&t, "alice", MailboxKind::User);
    let token = t.default_token().await;
    let cases = [
        json!({"requests": [sched("1", &a), sched("1", &a)]}),
        json!({"requests": [{"id": "1", "method": "POST", "url": "/users/x/events", "body": {"subject": "no headers"}}]}),
        json!({"requests": [{"id": "1", "method": "GET", "url": "/me", "dependsOn": ["9"]}]}),
        json!({"requests": [{"id": "1", "method": "GET", "url": "/a", "dependsOn": ["2"]}, {"id": "2", "method": "GET", "url": "/b", "dependsOn": ["1"]}]}),
        json!({"requests": [{"id": "1", "method": "BREW", "url": "/me"}]}),
        json!({"requests": []}),
        json!({"requests": "nope"}),
        json!([1, 2, 3]),
    ];
    for c in cases {
        let (s, v) = batch(&t, &token, &c).await;
        assert_eq!(s, 400, "{c}: {v}");
        assert_graph_error(&v, "BadRequest");
    }
    let r = t
        .http
        .post(t.url("/v1.0/$batch"))
        .bearer_auth(&token)
        .header("Content-Type", "application/json")
        .body("{\"requests\": [")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_graph_error(&r.json::<Value>().await.unwrap(), "BadRequest");
    // No token: 401 for the whole batch.
    let (s, v) = batch(&t, "garbage", &json!({"requests": [sched("1", &a)]})).await;
    assert_eq!(s, 401, "{v}");
}

#[tokio::test]
async fn failed_dependencies_give_424() {
    let t = fx::sim().await;
    let a = fx::mailbox(&t, "alice", MailboxKind::User);
    let token = t.default_token().await;
    let mut first = sched("1", "ghost@nowhere.example");
    first["dependsOn"] = json!([]);
    let mut second = sched("2", &a);
    second["dependsOn"] = json!(["1"]);
    let mut third = sched("3", &a);
    third["dependsOn"] = json!(["2"]);
    let mut ok_chain = sched("4", &a);
    ok_chain["dependsOn"] = json!(["5"]);
    let five = sched("5", &a);
    let (s, v) = batch(
        &t,
        &token,
        &json!({"requests": [first, second, third, ok_chain, five]}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(by_id(&v, "1")["status"], 404);
    for id in ["2", "3"] {
        let r = by_id(&v, id);
        assert_eq!(r["status"], 424, "{r}");
        assert_graph_error(&r["body"], "FailedDependency");
    }
    assert_eq!(by_id(&v, "4")["status"], 200);
    assert_eq!(by_id(&v, "5")["status"], 200);
    // The dependent ran after its dependency: 5 is listed before 4.
    let order: Vec<&str> = v["responses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    let pos = |id: &str| order.iter().position(|x| *x == id).unwrap();
    assert!(pos("5") < pos("4"), "{order:?}");
    // 424s were never sent to the mailbox.
    assert_eq!(fx::stats(&t, &a).await["requests"], 2);
}

#[tokio::test]
async fn at_most_four_requests_of_a_batch_run_at_once() {
    let t = fx::sim().await;
    let a = fx::mailbox(&t, "alice", MailboxKind::User);
    let token = t.default_token().await;
    fx::settings(&t, json!({"latency_ms": 150})).await;
    let reqs: Vec<Value> = (0..10).map(|i| sched(&i.to_string(), &a)).collect();
    let (s, v) = batch(&t, &token, &json!({ "requests": reqs })).await;
    assert_eq!(s, 200, "{v}");
    for r in v["responses"].as_array().unwrap() {
        assert_eq!(
            r["status"], 200,
            "no 429 when the batch respects the limit: {r}"
        );
    }
    let st = fx::stats(&t, &a).await;
    assert_eq!(st["peak_concurrency"], 4, "{st}");
    assert_eq!(st["requests"], 10, "{st}");
}

#[tokio::test]
async fn each_request_of_a_batch_is_throttled_on_its_own() {
    let t = fx::sim().await;
    let a = fx::mailbox(&t, "alice", MailboxKind::User);
    let b = fx::mailbox(&t, "bob", MailboxKind::User);
    let token = t.default_token().await;
    fx::settings(&t, json!({"request_budget": 3})).await;
    let mut reqs: Vec<Value> = (0..5).map(|i| sched(&format!("a{i}"), &a)).collect();
    reqs.push(sched("b0", &b));
    let (s, v) = batch(&t, &token, &json!({ "requests": reqs })).await;
    assert_eq!(s, 200, "{v}");
    let responses = v["responses"].as_array().unwrap();
    let throttled: Vec<&Value> = responses.iter().filter(|r| r["status"] == 429).collect();
    assert_eq!(throttled.len(), 2, "{v}");
    for r in throttled {
        assert!(r["id"].as_str().unwrap().starts_with('a'));
        let ra: u64 = r["headers"]["Retry-After"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(ra >= 1, "{r}");
        assert_graph_error(&r["body"], "TooManyRequests");
    }
    assert_eq!(by_id(&v, "b0")["status"], 200);
}

#[tokio::test]
async fn sub_requests_may_write_and_use_absolute_urls_only_relatively() {
    let t = fx::sim().await;
    let a = fx::mailbox(&t, "alice", MailboxKind::User);
    let token = t.default_token().await;
    let create = json!({
        "id": "1", "method": "POST", "url": format!("/users/{a}/events"),
        "headers": {"Content-Type": "application/json"},
        "body": {"subject": "Batched", "start": {"dateTime": "2025-03-10T09:00:00", "timeZone": "UTC"},
                 "end": {"dateTime": "2025-03-10T10:00:00", "timeZone": "UTC"}}
    });
    let absolute = json!({"id": "2", "method": "GET", "url": "https://graph.microsoft.com/v1.0/places/microsoft.graph.room"});
    let unknown = json!({"id": "3", "method": "GET", "url": "/no/such/thing"});
    let nested = json!({"id": "4", "method": "POST", "url": "/$batch", "headers": {"Content-Type": "application/json"}, "body": {"requests": []}});
    let (s, v) = batch(
        &t,
        &token,
        &json!({"requests": [create, absolute, unknown, nested]}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(by_id(&v, "1")["status"], 201, "{v}");
    assert_eq!(by_id(&v, "1")["body"]["subject"], "Batched");
    assert_eq!(by_id(&v, "2")["status"], 400);
    assert_eq!(by_id(&v, "3")["status"], 404);
    assert_eq!(by_id(&v, "4")["status"], 400);
}

#[tokio::test]
async fn sub_responses_carry_graph_service_headers() {
    let t = fx::sim().await;
    let a = fx::mailbox(&t, "alice", MailboxKind::User);
    let token = t.default_token().await;
    let create = json!({
        "id": "2", "method": "POST", "url": format!("/users/{a}/events"),
        "headers": {"Content-Type": "application/json"},
        "body": {"subject": "Batched", "start": {"dateTime": "2025-03-10T09:00:00", "timeZone": "UTC"},
                 "end": {"dateTime": "2025-03-10T10:00:00", "timeZone": "UTC"}}
    });
    let mut dependent = sched("4", &a);
    dependent["dependsOn"] = json!(["3"]);
    let (s, v) = batch(
        &t,
        &token,
        &json!({"requests": [sched("1", &a), create, sched("3", "ghost@nowhere.example"), dependent]}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    // Every sub-response: Cache-Control: no-cache (Microsoft's batching example).
    for id in ["1", "2", "3", "4"] {
        assert_eq!(by_id(&v, id)["headers"]["Cache-Control"], "no-cache", "{v}");
    }
    // Successful OData answers: OData-Version and the full OData media type.
    for id in ["1", "2"] {
        let h = &by_id(&v, id)["headers"];
        assert_eq!(h["OData-Version"], "4.0", "{h}");
        assert_eq!(
            h["Content-Type"],
            "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"
        );
    }
    // Errors: plain application/json, no OData-Version.
    for id in ["3", "4"] {
        let r = by_id(&v, id);
        assert!(r["status"].as_u64().unwrap() >= 400, "{r}");
        assert_eq!(r["headers"]["Content-Type"], "application/json", "{r}");
        assert!(r["headers"].get("OData-Version").is_none(), "{r}");
    }
}
