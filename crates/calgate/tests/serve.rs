//! `calgate serve` and its companions (`apikey`, `feed`, `freebusy`) as an operator runs them:
//! real processes, a real data dir, an in-process simulator behind them.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead as _, BufReader};
use std::process::Child;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use calgate_testkit::{Cli, SimExt, assert_exit, data_dir, stderr, stdout};
use serde_json::{Value, json};

const CALGATE: Cli = Cli::new(env!("CARGO_BIN_EXE_calgate"));

/// Kills the child when dropped (also on a failed assertion).
struct Running(Option<Child>);

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A port free now on 127.0.0.1.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn get(http: &reqwest::Client, url: &str, key: &str) -> (u16, Value) {
    let r = http.get(url).bearer_auth(key).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_syncs_in_the_background_answers_with_keys_and_stops_on_sigterm() {
    let sim = calgate_testkit::start_demo(7).await;
    let dir = data_dir();
    let d = dir.path();
    let creds = sim.creds();
    let (id, secret) = creds.first_app().pair();
    CALGATE
        .add_sim_connection(d, &sim, "contoso", &sim.tenant_id(), &id, &secret)
        .await;
    let of_kind = |kind: &str| {
        creds
            .mailboxes
            .iter()
            .find(|m| m.kind == kind)
            .unwrap()
            .address
            .clone()
    };
    let (person, room) = (of_kind("user"), of_kind("room"));
    for a in [&person, &room] {
        let o = CALGATE
            .run_async(d, &["mailbox", "link", a, "--connection", "contoso"], &[])
            .await;
        assert_exit(&o, 0);
    }

    // API keys: printed once, stored as a salted hash only.
    let o = CALGATE
        .run_async(d, &["apikey", "create", "lms", "--scope", "read"], &[])
        .await;
    assert_exit(&o, 0);
    let key = stdout(&o).trim().to_owned();
    assert!(key.starts_with("cgk_") && !key.contains(' '), "{key}");
    let o = CALGATE.run_async(d, &["apikey", "list"], &[]).await;
    assert_exit(&o, 0);
    assert!(stdout(&o).contains("lms") && stdout(&o).contains("read"));
    let secret_part = key[4..].split_once('_').unwrap().1;
    assert!(!stdout(&o).contains(secret_part));
    let o = CALGATE
        .run_async(
            d,
            &["apikey", "create", "bad", "--scope", "everything"],
            &[],
        )
        .await;
    assert_ne!(o.status.code(), Some(0));
    assert_eq!(stderr(&o).trim().lines().count(), 1, "{}", stderr(&o));

    // Feeds: the URL names the configured public URL and carries the token.
    let port = free_port();
    let public = format!("http://127.0.0.1:{port}");
    let env = [("CALGATE_PUBLIC_URL", public.as_str())];
    let o = CALGATE
        .run_async(d, &["feed", "create", &person], &env)
        .await;
    assert_exit(&o, 0);
    let feed_url = stdout(&o).trim().to_owned();
    assert!(
        feed_url.starts_with(&format!("{public}/v1/feeds/")) && feed_url.ends_with(".ics"),
        "{feed_url}"
    );

    // serve, with JSON logs.
    let listen = format!("127.0.0.1:{port}");
    let mut cmd = CALGATE.command(d, &["serve", "--listen", &listen, "--log-format", "json"]);
    cmd.env("CALGATE_PUBLIC_URL", &public)
        .env("CALGATE_NOTIFICATIONS_PUBLIC_URL", &public)
        .env("CALGATE_LOG_LEVEL", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let out = child.stdout.take().unwrap();
    let err = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let logs = std::thread::spawn(move || {
        BufReader::new(err)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<String>>()
    });
    let mut running = Running(Some(child));
    let banner = rx.recv_timeout(Duration::from_secs(30)).unwrap();
    assert!(banner.contains(&format!("http://{listen}")), "{banner}");

    // The scheduler syncs both mailboxes without a CLI call.
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (s, v) = get(&http, &format!("{public}/v1/mailboxes"), &key).await;
        assert_eq!(s, 200, "{v}");
        let states: Vec<&Value> = v["mailboxes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| &m["status"]["state"])
            .collect();
        if states.iter().all(|s| *s == "ok") {
            break;
        }
        assert!(Instant::now() < deadline, "not synced: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Change notifications: the simulator validated serve's URL and notifies it.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, v) = get(&http, &format!("{public}/v1/mailboxes"), &key).await;
        let modes: Vec<&Value> = v["mailboxes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| &m["notifications"]["mode"])
            .collect();
        if modes.iter().all(|m| *m == "notified") {
            break;
        }
        assert!(Instant::now() < deadline, "not notified: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let now = jiff::Timestamp::now().round(jiff::Unit::Second).unwrap();
    let (from, to) = (now, now + jiff::SignedDuration::from_hours(24 * 14));
    let (s, v) = get(
        &http,
        &format!("{public}/v1/mailboxes/{person}/events?from={from}&to={to}"),
        &key,
    )
    .await;
    assert_eq!(s, 200);
    assert!(!v["events"].as_array().unwrap().is_empty(), "{v}");

    // The feed is served.
    let r = http.get(&feed_url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("BEGIN:VEVENT"));

    // freebusy from the CLI, while serve runs: the same answer as the API.
    let (fs, ts) = (from.to_string(), to.to_string());
    let o = CALGATE
        .run_async(
            d,
            &[
                "freebusy", &person, &room, "--from", &fs, "--to", &ts, "--json",
            ],
            &[],
        )
        .await;
    assert_exit(&o, 0);
    let cli: Value = serde_json::from_slice(&o.stdout).unwrap();
    let api: Value = http
        .post(format!("{public}/v1/availability"))
        .bearer_auth(&key)
        .json(&json!({ "mailboxes": [person, room], "from": fs, "to": ts }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cli["free_slots"], api["free_slots"], "{cli} {api}");
    assert_eq!(
        cli["mailboxes"][1]["busy"], api["mailboxes"][1]["busy"],
        "{cli} {api}"
    );

    // A key revoked from the CLI stops working on the running server.
    let o = CALGATE
        .run_async(d, &["apikey", "revoke", "lms"], &[])
        .await;
    assert_exit(&o, 0);
    let (s, _) = get(&http, &format!("{public}/v1/mailboxes"), &key).await;
    assert_eq!(s, 401);

    // SIGTERM: exit 0 within 10 s.
    let child = running.0.as_mut().unwrap();
    let pid = child.id().to_string();
    let sent = Instant::now();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(10),
            "still running 10 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    running.0 = None;
    assert_eq!(status.code(), Some(0), "exit after SIGTERM");

    // Logs: JSON lines with request ids and route templates; never a key, a secret or a
    // feed token.
    let logs = logs.join().unwrap();
    let token = feed_url
        .rsplit('/')
        .next()
        .unwrap()
        .trim_end_matches(".ics");
    let mut requests = 0;
    for line in &logs {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(v["level"].is_string(), "{line}");
        for s in [secret.as_str(), secret_part, token] {
            assert!(!line.contains(s), "a secret in the log: {line}");
        }
        if v["message"] == "request" {
            requests += 1;
            assert!(
                v["request_id"].is_string() || v["span"]["request_id"].is_string(),
                "{line}"
            );
        }
    }
    assert!(requests >= 5, "{logs:?}");
    assert!(
        logs.iter().any(|l| l.contains("/v1/feeds/{token}")),
        "the feed's route template is logged: {logs:?}"
    );
}

#[test]
fn configuration_errors_are_one_clear_line() {
    let dir = data_dir();
    let d = dir.path();
    let cfg = d.join("calgate.toml");
    for (text, expect) in [
        ("[server]\nlisten = \"nowhere\"\n", "listen"),
        ("[sync]\ncadence_seconds = 1\n", "cadence"),
        ("[sync]\nfrequency = 5\n", "frequency"),
        ("this is not toml", "line 1"),
    ] {
        std::fs::write(&cfg, text).unwrap();
        let o = CALGATE.run(
            d,
            &["--config", cfg.to_str().unwrap(), "serve", "--create"],
            &[],
        );
        assert_ne!(o.status.code(), Some(0), "{text}");
        let err = stderr(&o);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains(expect), "{text}: {err}");
    }
    let o = CALGATE.run(
        d,
        &["serve", "--create"],
        &[("CALGATE_SYNC_CADENCE_SECONDS", "soon")],
    );
    assert_ne!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("CALGATE_SYNC_CADENCE_SECONDS"),
        "{}",
        stderr(&o)
    );
    let o = CALGATE.run(
        d,
        &[
            "--config",
            d.join("missing.toml").to_str().unwrap(),
            "serve",
        ],
        &[],
    );
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("missing.toml"), "{}", stderr(&o));
    // Nothing was created by the refused starts.
    assert!(!d.join("calgate.db").exists());
}

/// The host application's receiver for the process test: answers `status`, keeps
/// (webhook-id, body) of every request.
type Hits = std::sync::Arc<std::sync::Mutex<Vec<(String, String, u16)>>>;

async fn start_receiver(
    status: std::sync::Arc<std::sync::atomic::AtomicU16>,
    hits: Hits,
) -> String {
    use std::sync::atomic::Ordering;
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: String| async move {
                let s = status.load(Ordering::SeqCst);
                let id = headers
                    .get("webhook-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                hits.lock().unwrap().push((id, body, s));
                axum::http::StatusCode::from_u16(s).unwrap()
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    url
}

fn spawn_serve(d: &std::path::Path, listen: &str) -> Running {
    let mut cmd = CALGATE.command(d, &["serve", "--listen", listen]);
    cmd.env("CALGATE_LOG_LEVEL", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    Running(Some(cmd.spawn().unwrap()))
}

/// `kill -9` of `calgate serve` with deliveries pending loses none: after the restart every
/// queued delivery arrives, a repeat carrying the same `webhook-id`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_deliveries_survive_kill_9_of_serve() {
    use std::sync::atomic::{AtomicU16, Ordering};
    let sim = calgate_testkit::start_demo(7).await;
    let dir = data_dir();
    let d = dir.path();
    let creds = sim.creds();
    let (id, secret) = creds.first_app().pair();
    CALGATE
        .add_sim_connection(d, &sim, "contoso", &sim.tenant_id(), &id, &secret)
        .await;
    let person = creds.people()[0].clone();
    let o = CALGATE
        .run_async(
            d,
            &["mailbox", "link", &person, "--connection", "contoso"],
            &[],
        )
        .await;
    assert_exit(&o, 0);
    let status = std::sync::Arc::new(AtomicU16::new(503));
    let hits: Hits = Default::default();
    let url = start_receiver(status.clone(), hits.clone()).await;
    let o = CALGATE
        .run_async(
            d,
            &["webhook", "add", &url, "--events", "event.created"],
            &[],
        )
        .await;
    assert_exit(&o, 0);
    let out = stdout(&o);
    let hook = out
        .split_whitespace()
        .nth(1)
        .filter(|w| w.starts_with("wh_"))
        .unwrap_or_else(|| panic!("{out}"))
        .to_owned();
    assert!(out.contains("whsec_"), "{out}");
    let o = CALGATE.run_async(d, &["webhook", "list"], &[]).await;
    assert_exit(&o, 0);
    assert!(stdout(&o).contains(&hook) && !stdout(&o).contains("whsec_"));

    // serve syncs, queues one delivery per event, and the receiver refuses them.
    let listen = format!("127.0.0.1:{}", free_port());
    let mut serve = spawn_serve(d, &listen);
    let deadline = Instant::now() + Duration::from_secs(60);
    while hits.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "no delivery attempt");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let child = serve.0.as_mut().unwrap();
    assert!(
        std::process::Command::new("kill")
            .args(["-KILL", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let _ = child.wait();
    serve.0 = None;
    let o = CALGATE
        .run_async(
            d,
            &[
                "webhook",
                "deliveries",
                &hook,
                "--state",
                "pending",
                "--limit",
                "10000",
                "--json",
            ],
            &[],
        )
        .await;
    assert_exit(&o, 0);
    let pending: Vec<Value> = serde_json::from_slice(&o.stdout).unwrap();
    assert!(pending.len() > 5, "{} pending", pending.len());
    let queued: std::collections::BTreeSet<String> = pending
        .iter()
        .map(|p| p["webhook_id"].as_str().unwrap().to_owned())
        .collect();
    let refused: Vec<(String, String)> = hits
        .lock()
        .unwrap()
        .iter()
        .map(|(i, b, _)| (i.clone(), b.clone()))
        .collect();

    // Restarted, with the receiver up: every queued delivery arrives.
    status.store(200, Ordering::SeqCst);
    let _serve = spawn_serve(d, &listen);
    let deadline = Instant::now() + Duration::from_secs(60);
    let delivered = loop {
        let got: Vec<(String, String)> = hits
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, _, s)| *s == 200)
            .map(|(i, b, _)| (i.clone(), b.clone()))
            .collect();
        let ids: std::collections::BTreeSet<String> = got.iter().map(|(i, _)| i.clone()).collect();
        if queued.is_subset(&ids) {
            break got;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} delivered",
            queued.intersection(&ids).count(),
            queued.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // A refused message comes again with the same id and the same body.
    for (id, body) in &refused {
        assert!(
            delivered.iter().any(|(i, b)| i == id && b == body),
            "{id} not repeated as it was"
        );
    }
    for (_, body) in &delivered {
        let v: Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["type"], "event.created");
        assert_eq!(v["data"]["mailbox"], json!(person));
    }
    let o = CALGATE
        .run_async(d, &["webhook", "remove", &hook], &[])
        .await;
    assert_exit(&o, 0);
    let o = CALGATE
        .run_async(d, &["webhook", "remove", &hook], &[])
        .await;
    assert_exit(&o, 1);
    assert_eq!(stderr(&o).trim().lines().count(), 1, "{}", stderr(&o));
}
