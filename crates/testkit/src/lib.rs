//! What calgate's integration tests share, so that no test harness writes it again: the
//! simulator's published credentials as types, a client for its control API (`/_sim/…`),
//! temporary SQLite stores (feature `store`), sync engines over them (feature `sync`), and a
//! runner for the `calgate` binary.
//!
//! A dev-only crate (`publish = false`): crates list it under `[dev-dependencies]` only. It
//! panics with a message instead of returning errors, as a test would.

pub mod cli;
pub mod control;
pub mod creds;
#[cfg(feature = "store")]
pub mod store;
#[cfg(feature = "sync")]
pub mod sync;
pub mod webdriver;

pub use cli::{Cli, assert_exit, data_dir, stderr, stdout};
pub use control::{Control, Reply};
pub use creds::{App, Credentials, Mailbox};
#[cfg(feature = "store")]
pub use store::{
    DB_FILE, TempStore, link_full, sim_connection, sim_ews_connection, sim_ews_password,
    temp_store, temp_store_with,
};
#[cfg(feature = "sync")]
pub use sync::engine;

use calgate_sim::{Seed, SimHandle, SimOptions};

/// The demo tenant, seeded with `rng` (no latency, no scale).
pub fn demo(rng: u64) -> SimOptions {
    SimOptions {
        seed: Seed::Demo,
        rng,
        ..SimOptions::default()
    }
}

/// Starts an in-process simulator on 127.0.0.1:0.
pub async fn start_sim(opts: SimOptions) -> SimHandle {
    calgate_sim::start(opts).await.expect("simulator starts")
}

/// Starts the demo tenant seeded with `rng`.
pub async fn start_demo(rng: u64) -> SimHandle {
    start_sim(demo(rng)).await
}

/// The testkit's view of a running simulator.
pub trait SimExt {
    /// Its published credentials, typed.
    fn creds(&self) -> Credentials;
    /// A control API client for it (its own HTTP client).
    fn control(&self) -> Control;
}

impl SimExt for SimHandle {
    fn creds(&self) -> Credentials {
        Credentials::of(self)
    }

    fn control(&self) -> Control {
        Control::new(&self.base_url)
    }
}

/// Plays the browser at the simulator's Entra ID sign-in page (`url`, the authorization
/// request calgate built): signs in as `login`, consents when asked (or declines, `accept =
/// false`), and returns the URL Entra ID sends the browser back to. `http` must not follow
/// redirects.
pub async fn sim_sign_in(http: &reqwest::Client, url: &str, login: &str, accept: bool) -> String {
    let r = http.get(url).send().await.expect("authorize page");
    assert_eq!(r.status(), 200, "{url}");
    let html = r.text().await.expect("html");
    assert!(html.contains(login), "the sign-in page lists {login}");
    let parsed = reqwest::Url::parse(url).expect("url");
    let mut form: Vec<(String, String)> = parsed.query_pairs().into_owned().collect();
    let mut action = parsed.clone();
    action.set_query(None);
    form.push(("step".into(), "signin".into()));
    form.push(("login".into(), login.into()));
    let mut r = http
        .post(action.clone())
        .form(&form)
        .send()
        .await
        .expect("sign in");
    if r.status() == 200 {
        let html = r.text().await.expect("consent page");
        assert!(html.contains("Permissions requested"), "{html}");
        form.retain(|(k, _)| k != "step");
        form.push(("step".into(), "consent".into()));
        form.push(("accept".into(), if accept { "yes" } else { "no" }.into()));
        r = http.post(action).form(&form).send().await.expect("consent");
    }
    assert_eq!(r.status(), 302, "{:?}", r.text().await);
    r.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned()
}
