//! Connected accounts (delegated "Connect account"): the domain types of the store's API.

use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::types::{ConnectionId, SecretString};

/// A store-assigned account id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AccountId(pub i64);

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Which Entra ID token endpoint the account's refresh token is redeemed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccountEndpoint {
    /// `/oauth2/v2.0/token` with `scope=` ("Azure AD v2.0").
    #[default]
    V2,
    /// `/oauth2/token` with `resource=` ("Azure AD", legacy registrations).
    V1,
}

impl AccountEndpoint {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountEndpoint::V2 => "v2",
            AccountEndpoint::V1 => "v1",
        }
    }
}

/// Whether the account's refresh token still works.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AccountState {
    /// The last refresh (or the connect) worked.
    Ok,
    /// Entra ID refused the refresh token (expired, revoked, consent withdrawn): the user must
    /// sign in again (`calgate account connect`).
    ReconnectNeeded,
}

impl AccountState {
    /// `ok` / `reconnect-needed`.
    pub fn as_str(self) -> &'static str {
        match self {
            AccountState::Ok => "ok",
            AccountState::ReconnectNeeded => "reconnect-needed",
        }
    }
}

/// An account to store after a successful sign-in (replaces the tokens and state of the same
/// UPN on the same connection).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAccount {
    /// The connection's name.
    pub connection: String,
    /// The user principal name (unique per connection, case-insensitively).
    pub upn: String,
    /// The user's primary SMTP address, when known and different from the UPN.
    pub mail: Option<String>,
    pub display_name: Option<String>,
    /// The user's object id in Entra ID.
    pub user_id: Option<String>,
    /// Sealed at rest.
    pub refresh_token: SecretString,
    /// Space-separated scopes as granted.
    pub scopes: String,
    pub endpoint: AccountEndpoint,
}

/// A connected account, its refresh token decrypted (and redacted in `Debug`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: AccountId,
    pub connection_id: ConnectionId,
    pub connection: String,
    pub upn: String,
    pub mail: Option<String>,
    pub display_name: Option<String>,
    pub user_id: Option<String>,
    pub refresh_token: SecretString,
    pub scopes: String,
    pub endpoint: AccountEndpoint,
    pub state: AccountState,
    /// Why the state is what it is (for `reconnect-needed`: the cause and the fix).
    pub state_message: Option<String>,
    pub state_at: Timestamp,
    pub connected_at: Timestamp,
    /// The last successful use of the refresh token (or the connect).
    pub refreshed_at: Timestamp,
}

impl Account {
    /// Whether `address` is this account's UPN or mail (case-insensitively).
    pub fn owns(&self, address: &str) -> bool {
        let a = address.trim().to_lowercase();
        self.upn.trim().to_lowercase() == a
            || self
                .mail
                .as_deref()
                .is_some_and(|m| m.trim().to_lowercase() == a)
    }
}
