//! Temporary stores: a fresh SQLite file in a temp dir, sealed with a generated master key.

use std::path::PathBuf;
use std::sync::Arc;

use calgate_core::{MailboxKind, PrivacyPolicy};
use calgate_sim::SimHandle;
use calgate_store::{
    MailboxId, MasterKey, NewConnection, NewCredential, NewMailbox, OpenOptions, Store,
};

/// The SQLite file's name inside a [`TempStore`]'s dir.
pub const DB_FILE: &str = "calgate.db";

/// A store on a fresh SQLite file, and the temp dir that holds it (removed when dropped: keep
/// the whole value alive as long as the store).
pub struct TempStore {
    pub store: Arc<dyn Store>,
    pub dir: tempfile::TempDir,
}

impl TempStore {
    /// The SQLite file.
    pub fn db(&self) -> PathBuf {
        self.dir.path().join(DB_FILE)
    }
}

/// A new store on `DB_FILE` in a new temp dir, with a generated master key.
pub async fn temp_store() -> TempStore {
    temp_store_with(OpenOptions::default()).await
}

/// [`temp_store`] with other options (`max_page_count`, …): `create` is set, and
/// `master_key` is generated when `None`.
pub async fn temp_store_with(options: OpenOptions) -> TempStore {
    let dir = tempfile::tempdir().expect("temp dir");
    let master_key = match options.master_key {
        Some(k) => k,
        None => MasterKey::generate().expect("master key").0,
    };
    let location = format!("sqlite://{}", dir.path().join(DB_FILE).display());
    let store = calgate_store::open_with(
        &location,
        OpenOptions {
            create: true,
            master_key: Some(master_key),
            ..options
        },
    )
    .await
    .expect("store opens");
    TempStore { store, dir }
}

/// A connection `name` to the simulator's tenant as `client_id` with `credentials`: authority
/// the simulator, Graph at `{base}/v1.0`, cloud `custom`, no extra CA.
pub fn sim_connection(
    sim: &SimHandle,
    name: &str,
    client_id: &str,
    credentials: Vec<NewCredential>,
) -> NewConnection {
    NewConnection {
        ca_cert_pem: None,
        ews: None,
        name: name.to_owned(),
        tenant: sim.tenant_id(),
        client_id: client_id.to_owned(),
        authority: sim.base_url.clone(),
        graph_url: format!("{}/v1.0", sim.base_url),
        cloud: "custom".to_owned(),
        credentials,
    }
}

/// Links `address` to `connection` as `kind`, with full privacy and no external id: its id.
pub async fn link_full(
    store: &dyn Store,
    address: &str,
    connection: &str,
    kind: MailboxKind,
) -> MailboxId {
    store
        .link_mailbox(&NewMailbox::new(
            address,
            connection,
            kind,
            PrivacyPolicy::Full,
        ))
        .await
        .expect("link")
}

/// The password of the simulator's published EWS service account `user` (`CONTOSO\…`).
pub fn sim_ews_password(sim: &SimHandle, user: &str) -> String {
    let creds = sim.credentials();
    creds["ews_accounts"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["username"].as_str() == Some(user))
        .and_then(|a| a["password"].as_str())
        .unwrap_or_else(|| panic!("no EWS account {user} in {creds}"))
        .to_owned()
}

/// An EWS connection `name` to the simulator's EWS face as its service account `user`.
pub fn sim_ews_connection(
    sim: &SimHandle,
    name: &str,
    user: &str,
    auth: calgate_core::EwsAuth,
    impersonation: bool,
) -> NewConnection {
    NewConnection {
        name: name.to_owned(),
        tenant: String::new(),
        client_id: String::new(),
        authority: String::new(),
        graph_url: String::new(),
        cloud: "on-premises".to_owned(),
        credentials: Vec::new(),
        ca_cert_pem: None,
        ews: Some(calgate_core::EwsSettings {
            url: format!("{}/EWS/Exchange.asmx", sim.base_url),
            username: user.to_owned(),
            password: calgate_core::SecretString::new(sim_ews_password(sim, user)),
            auth,
            impersonation,
        }),
    }
}
