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
