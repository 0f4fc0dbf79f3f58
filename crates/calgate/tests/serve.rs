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
