//! Retry-After under a 429 storm: nothing early, never more than 4 in flight per mailbox.

use crate::common::*;

#[tokio::test]
async fn storm_is_survived_without_early_retries_or_a_fifth_request() {
    let t = start_for_storm().await;
    let c = t.client("calgate");
    let mb = t.mailboxes("user")[2].clone();
    let (a, b) = window();
    let truth = c.calendar_view(&mb, a, b).await.unwrap();
    t.api.expect(
        reqwest::Method::PUT,
        "/faults",
        Some(
            &json!({"throttle_rate": 0.3, "throttle_retry_after": "0.2", "mailbox": mb, "seed": 3}),
        ),
        200,
    )
    .await;
    let (s, _) = t
        .api
        .call(reqwest::Method::POST, "/stats/reset", None)
        .await;
    assert_eq!(s, 204);
    t.api
        .expect(
            reqwest::Method::PUT,
            "/settings",
            Some(&json!({"latency_ms": 0})),
            200,
        )
        .await;
    let before = t.shared.metrics();
    // Eight concurrent readers of the same mailbox, small pages: many requests.
    let tasks = (0..8).map(|_| {
        let c = c.clone();
        let mb = mb.clone();
        tokio::spawn(async move { c.calendar_view_paged(&mb, a, b, 5).await })
    });
    for r in futures::future::join_all(tasks).await {
        let got = r.unwrap().unwrap();
        assert_eq!(got.len(), truth.len());
    }
    let m = t.shared.metrics();
    assert!(
        m.throttled > before.throttled,
        "the storm throttled something: {m:?}"
    );
    assert!(m.retries > before.retries);
    assert!(m.peak_mailbox_concurrency <= 4, "{m:?}");
    let s = t.api.mailbox_stats(&mb).await;
    assert!(s["throttled"].as_u64().unwrap() > 0, "{s}");
    // Once a 429 has reached the client, nothing goes to the mailbox before Retry-After (the
    // simulator counts from when its answer left, so requests already in flight don't count).
    assert_eq!(s["early_retries"], 0, "{s}");
    assert!(s["peak_concurrency"].as_u64().unwrap() <= 4, "{s}");
    assert_eq!(
        s["concurrency_throttled"], 0,
        "never a fifth concurrent request: {s}"
    );
}

#[tokio::test]
async fn retry_after_longer_than_the_policy_goes_back_to_the_caller() {
    let t = start().await;
    let (id, secret) = t.app("calgate");
    let shared = Shared::with_retry_policy(RetryPolicy {
        max_attempts: 3,
        max_total_wait: std::time::Duration::from_secs(1),
        ..RetryPolicy::default()
    })
    .unwrap();
    let c = GraphClient::new(
        t.config(&id, vec![Credential::secret(secret, None)]),
        &shared,
    )
    .unwrap();
    let mb = t.mailboxes("user")[3].clone();
    t.api
        .expect(
            reqwest::Method::PUT,
            "/faults",
            Some(&json!({"throttle_rate": 1.0, "throttle_retry_after": "2.5", "mailbox": mb})),
            200,
        )
        .await;
    let (a, b) = window();
    let e = c.calendar_view(&mb, a, b).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Retryable, "{e:?}");
    assert_eq!(e.retry_after, Some(std::time::Duration::from_millis(2500)));
    assert_eq!(e.status, Some(429));
    // The mailbox is held: a second call waits out the Retry-After before sending.
    t.api.call(reqwest::Method::DELETE, "/faults", None).await;
    let started = std::time::Instant::now();
    c.calendar_view(&mb, a, b).await.unwrap();
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(2000),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(t.api.mailbox_stats(&mb).await["early_retries"], 0);
}

#[tokio::test]
async fn storm_over_many_mailboxes_read_like_the_sync_engine_has_zero_early_retries() {
    let t = start_for_storm().await;
    let c = t.client("calgate");
    let mbs: Vec<String> = t.mailboxes("user").into_iter().take(6).collect();
    t.api
        .expect(
            reqwest::Method::PUT,
            "/faults",
            Some(&json!({"throttle_rate": 0.3, "throttle_retry_after": "0.2", "seed": 5})),
            200,
        )
        .await;
    let (a, b) = window();
    // One delta chain per mailbox (sequential within a mailbox), all mailboxes at once.
    let tasks = mbs.iter().cloned().map(|mb| {
        let c = c.clone();
        tokio::spawn(async move {
            c.delta_round(
                &mb,
                DeltaRequest::Start {
                    start: a,
                    end: b,
                    page_size: 5,
                },
            )
            .await
        })
    });
    for r in futures::future::join_all(tasks).await {
        r.unwrap().unwrap();
    }
    assert!(t.shared.metrics().throttled > 0);
    let (_, all) = t.api.call(reqwest::Method::GET, "/stats", None).await;
    assert_eq!(all["totals"]["early_retries"], 0, "{all}");
    for m in all["mailboxes"].as_array().unwrap() {
        assert!(m["peak_concurrency"].as_u64().unwrap() <= 4, "{m}");
    }
}
