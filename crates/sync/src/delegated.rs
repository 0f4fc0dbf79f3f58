//! Mailboxes reached through a connected account: the engine syncs a mailbox whose address is
//! a connected account's UPN (or mail), on the same connection, with that account's delegated
//! token instead of the app-only token. Every refresh token Entra ID returns is stored (sealed)
//! before it is used; a refused refresh token marks the account "reconnect needed" and fails
//! only that account's mailbox, with the fix (`calgate account connect --connection NAME`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use calgate_graph::{
    DelegatedOptions, DelegatedSession, GraphClient, RefreshTokenSink, SecretString, Shared,
    TokenEndpoint,
};
use calgate_store::{Account, AccountEndpoint, AccountId, AccountState, Connection, Store};
use jiff::Timestamp;

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The OIDC scopes, which are not Graph permissions.
const OIDC: [&str; 4] = ["openid", "profile", "email", "offline_access"];

/// The command that fixes a refused refresh token.
pub fn reconnect_command(connection: &str) -> String {
    format!("calgate account connect --connection {connection}")
}

/// The connected account, if any, through which `address` of `connection` is synced.
pub fn account_for<'a>(
    accounts: &'a [Account],
    connection: &str,
    address: &str,
) -> Option<&'a Account> {
    accounts
        .iter()
        .find(|a| a.connection.eq_ignore_ascii_case(connection) && a.owns(address))
}

/// The delegated permissions an account was granted (its stored scopes minus OIDC scopes).
pub fn account_options(account: &Account) -> DelegatedOptions {
    let permissions: Vec<String> = account
        .scopes
        .split_whitespace()
        .filter(|s| !OIDC.iter().any(|o| o.eq_ignore_ascii_case(s)))
        .map(str::to_owned)
        .collect();
    DelegatedOptions {
        permissions: if permissions.is_empty() {
            DelegatedOptions::default().permissions
        } else {
            permissions
        },
        ..DelegatedOptions::default()
    }
}

/// Persists an account's refresh tokens and state in the store.
pub struct StoreSink {
    store: Arc<dyn Store>,
    account: AccountId,
}

impl StoreSink {
    pub fn new(store: Arc<dyn Store>, account: AccountId) -> StoreSink {
        StoreSink { store, account }
    }
}

impl RefreshTokenSink for StoreSink {
    fn refreshed<'a>(
        &'a self,
        refresh_token: &'a SecretString,
        at: Timestamp,
    ) -> BoxFuture<'a, Result<(), calgate_graph::Error>> {
        Box::pin(async move {
            match self
                .store
                .store_refresh_token(self.account, refresh_token, at)
                .await
            {
                Ok(true) => Ok(()),
                Ok(false) => Err(calgate_graph::Error::config(
                    "the connected account was disconnected meanwhile; its new refresh token is not kept",
                )),
                Err(e) => Err(calgate_graph::Error::config(format!(
                    "cannot store the account's new refresh token: {e}"
                ))),
            }
        })
    }

    fn reconnect_needed<'a>(&'a self, error: &'a calgate_graph::Error) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if let Err(e) = self
                .store
                .set_account_state(
                    self.account,
                    AccountState::ReconnectNeeded,
                    Some(&error.message),
                    Timestamp::now(),
                )
                .await
            {
                tracing::warn!(error = %e, "could not record that the account needs to reconnect");
            }
        })
    }
}

/// A Graph client that reads `account`'s mailbox with its delegated token. An account already
/// marked "reconnect needed" fails at once with its recorded message (no request to Entra ID).
pub fn delegated_client(
    store: Arc<dyn Store>,
    shared: &Shared,
    connection: &Connection,
    account: &Account,
) -> Result<GraphClient, calgate_graph::Error> {
    if account.state == AccountState::ReconnectNeeded {
        let mut e = calgate_graph::Error::new(
            calgate_graph::ErrorKind::Authentication,
            account.state_message.clone().unwrap_or_else(|| {
                format!(
                    "the connected account {} must sign in again — run `{}` and sign in as {}",
                    account.upn,
                    reconnect_command(&connection.name),
                    account.upn
                )
            }),
        );
        e.code = Some("reconnect_needed".to_owned());
        return Err(e);
    }
    let mut cfg = calgate_graph::ConnectionConfig::from_connection(connection)?;
    cfg.token_endpoint = match account.endpoint {
        AccountEndpoint::V2 => TokenEndpoint::V2,
        AccountEndpoint::V1 => TokenEndpoint::V1,
    };
    let app = GraphClient::new(cfg.clone(), shared)?;
    let session = DelegatedSession::new(
        app,
        account.upn.clone(),
        account.refresh_token.clone(),
        account_options(account),
        reconnect_command(&connection.name),
        Arc::new(StoreSink::new(store, account.id)),
    );
    GraphClient::with_delegated(cfg, shared, Arc::new(session))
}

/// What a cached delegated client was made from: the account as connected, and the
/// connection's endpoints and credentials (a reconnect or a rotated secret makes a new one).
type ClientKey = (AccountId, i64, String, String, Vec<i64>);

/// The delegated clients of one [`Engine`](crate::Engine), kept across its runs: an account's
/// access token is reused until it is about to expire (or Graph answers 401), instead of one
/// refresh per run.
#[derive(Clone, Default)]
pub struct DelegatedClients {
    inner: Arc<std::sync::Mutex<std::collections::HashMap<ClientKey, GraphClient>>>,
}

impl DelegatedClients {
    /// The account's client: the cached one, or a new one ([`delegated_client`]).
    pub fn get_or_make(
        &self,
        store: Arc<dyn Store>,
        shared: &Shared,
        connection: &Connection,
        account: &Account,
    ) -> Result<GraphClient, calgate_graph::Error> {
        if account.state == AccountState::ReconnectNeeded {
            return delegated_client(store, shared, connection, account);
        }
        let key: ClientKey = (
            account.id,
            account.connected_at.as_microsecond(),
            connection.authority.clone(),
            connection.graph_url.clone(),
            connection.credentials.iter().map(|c| c.id.0).collect(),
        );
        let mut map = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = map.get(&key) {
            return Ok(c.clone());
        }
        let client = delegated_client(store, shared, connection, account)?;
        map.retain(|k, _| k.0 != account.id);
        map.insert(key, client.clone());
        Ok(client)
    }
}
