//! The `calgate` binary, run as a child process: `calgate sim` start-up, banner, credentials
//! file, real HTTP against it, exit codes.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_calgate");

fn temp_path(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    std::env::temp_dir().join(format!("calgate-cli-{}-{nanos}-{name}", std::process::id()))
}

/// Kills the child when dropped (also on a failed assertion).
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `calgate sim ARGS` and waits (bounded) for the banner's first line; returns the base URL.
fn start_sim(args: &[&str]) -> (Running, String, mpsc::Receiver<String>) {
    let mut child = Command::new(BIN)
        .arg("sim")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let running = Running(child);
    let first = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("banner within 60 s");
    let base = first
        .strip_prefix("calgate sim listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {first}"))
        .trim()
        .to_owned();
    (running, base, rx)
}

#[tokio::test]
async fn sim_serves_demo_tenant_and_writes_credentials() {
    let creds_path = temp_path("creds.json");
    let (_child, base, rx) = start_sim(&[
        "--listen",
        "127.0.0.1:0",
        "--rng",
        "5",
        "--credentials-out",
        creds_path.to_str().unwrap(),
    ]);
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");
    assert!(
        !base.ends_with(":0"),
        "the banner must show the bound port: {base}"
    );

    // The rest of the banner: no secrets.
    let mut banner = Vec::new();
    while let Ok(l) = rx.recv_timeout(Duration::from_secs(10)) {
        let done = l.starts_with("Press Ctrl-C");
        banner.push(l);
        if done {
            break;
        }
    }
    let banner = banner.join("\n");
    assert!(banner.contains("tenant:"), "{banner}");
    assert!(banner.contains(creds_path.to_str().unwrap()), "{banner}");

    let text = std::fs::read_to_string(&creds_path).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&creds_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "credentials file mode {mode:o}");
    }
    let creds: Value = serde_json::from_str(&text).unwrap();
    let _ = std::fs::remove_file(&creds_path);
    assert_eq!(creds["graph_url"], format!("{base}/v1.0"));
    let tenant = creds["tenant_id"].as_str().unwrap();
    assert!(banner.contains(tenant));
    let app = &creds["apps"][0];
    assert_eq!(app["name"], "calgate");
    let secret = app["client_secret"].as_str().unwrap();
    assert!(!secret.is_empty());
    assert!(
        !banner.contains(secret),
        "the banner must not print secrets"
    );

    // A token over real HTTP, then a room's events.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let authority = creds["authority"].as_str().unwrap();
    let r = http
        .post(format!("{authority}/oauth2/v2.0/token"))
        .form(&[
            ("client_id", app["client_id"].as_str().unwrap()),
            ("client_secret", secret),
            ("scope", "https://graph.microsoft.com/.default"),
            ("grant_type", "client_credentials"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let tok: Value = r.json().await.unwrap();
    let token = tok["access_token"].as_str().unwrap();

    let room = creds["mailboxes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["kind"] == "room")
        .unwrap()["address"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = http
        .get(format!(
            "{}/users/{room}/events",
            creds["graph_url"].as_str().unwrap()
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(!body["value"].as_array().unwrap().is_empty(), "{body}");
}

#[test]
fn sim_port_in_use_fails_with_one_actionable_line() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let out = Command::new(BIN)
        .args(["sim", "--seed", "empty", "--listen", &addr])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].contains(&addr) && lines[0].contains("in use"),
        "{stderr}"
    );
    assert!(lines[0].contains("--listen"), "{stderr}");
    drop(busy);
}

#[test]
fn sim_unwritable_credentials_file_fails_with_exit_1() {
    let out = Command::new(BIN)
        .args([
            "sim",
            "--seed",
            "empty",
            "--listen",
            "127.0.0.1:0",
            "--credentials-out",
            "/nonexistent-calgate-dir/creds.json",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot write credentials"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn bad_usage_exits_2() {
    for args in [
        vec!["sim", "--seed", "bogus"],
        vec!["sim", "--listen", "not-an-address"],
        vec!["sim", "--scale", "-1"],
        vec!["--data-dir", "x", "--database", "sqlite://y", "sim"],
        vec!["frobnicate"],
    ] {
        let out = Command::new(BIN).args(&args).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = Command::new(BIN).args(["sim", "--help"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("--credentials-out"));
}
