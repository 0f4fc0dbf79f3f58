//! The administrator's domain: connections (one app registration in one tenant) with their
//! credentials, and linked mailboxes. The store persists these, `graph` builds its client from a
//! [`Connection`], `admin`, the CLI and the API speak them.

use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::{MailboxKind, PrivacyPolicy, SecretString};

/// A store-assigned connection id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ConnectionId(pub i64);

/// A store-assigned credential id (unique across connections).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CredentialId(pub i64);

/// A store-assigned mailbox id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MailboxId(pub i64);

macro_rules! display_id {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    )*};
}
display_id!(ConnectionId, CredentialId, MailboxId);

/// How an app proves its identity to Entra ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CredentialKind {
    /// A client secret: `secret` is its value.
    Secret,
    /// A certificate: `secret` is the PEM private key, `certificate_pem` the public certificate.
    Certificate,
}

string_forms!(CredentialKind, "credential kind", {
    Secret => "secret",
    Certificate => "certificate",
});

/// A credential to add to a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCredential {
    pub kind: CredentialKind,
    /// The client secret's value, or the certificate's PEM private key. Sealed at rest.
    pub secret: SecretString,
    /// The public certificate (PEM), for certificate credentials. Stored in plain text.
    pub certificate_pem: Option<String>,
    /// The secret's ID in Entra ID, or the certificate's thumbprint, when known.
    pub key_id: Option<String>,
    pub expires_at: Option<Timestamp>,
}

impl NewCredential {
    pub fn secret(value: impl Into<String>, expires_at: Option<Timestamp>) -> NewCredential {
        NewCredential {
            kind: CredentialKind::Secret,
            secret: SecretString::new(value),
            certificate_pem: None,
            key_id: None,
            expires_at,
        }
    }

    pub fn certificate(
        private_key_pem: impl Into<String>,
        certificate_pem: impl Into<String>,
        expires_at: Option<Timestamp>,
    ) -> NewCredential {
        NewCredential {
            kind: CredentialKind::Certificate,
            secret: SecretString::new(private_key_pem),
            certificate_pem: Some(certificate_pem.into()),
            key_id: None,
            expires_at,
        }
    }
}

/// A stored credential, its secret decrypted (and redacted in `Debug`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub id: CredentialId,
    pub kind: CredentialKind,
    pub secret: SecretString,
    pub certificate_pem: Option<String>,
    pub key_id: Option<String>,
    pub expires_at: Option<Timestamp>,
    pub added_at: Timestamp,
}

/// How an EWS service account signs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum EwsAuth {
    /// HTTP Basic: the password on every request (https only).
    Basic,
    /// NTLM (NTLMv2), bound to one TCP connection: Exchange Server's default.
    #[default]
    Ntlm,
}

string_forms!(EwsAuth, "EWS authentication", {
    Basic => "basic",
    Ntlm => "ntlm",
});

/// An on-premises Exchange Server reached through EWS with a service account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EwsSettings {
    /// `https://mail.example.org/EWS/Exchange.asmx` (http only to loopback).
    pub url: String,
    /// `DOMAIN\user` or `user@domain`.
    pub username: String,
    /// Sealed at rest like a client secret.
    pub password: SecretString,
    pub auth: EwsAuth,
    /// Act as each mailbox with `ExchangeImpersonation` (ApplicationImpersonation); otherwise
    /// open each mailbox by delegate access.
    pub impersonation: bool,
}

/// What a connection reaches Exchange through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectionKind {
    /// Exchange Online through Microsoft Graph, with an Entra ID app registration.
    Graph,
    /// Exchange Server through EWS, with a service account.
    Ews,
}

string_forms!(ConnectionKind, "connection kind", {
    Graph => "graph",
    Ews => "ews",
});

/// A connection to add: one app registration in one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewConnection {
    /// Unique, chosen by the administrator (`calgate connection add NAME`).
    pub name: String,
    pub tenant: String,
    pub client_id: String,
    /// e.g. `https://login.microsoftonline.com` (the tenant is appended by the client).
    pub authority: String,
    /// e.g. `https://graph.microsoft.com/v1.0`.
    pub graph_url: String,
    /// The cloud preset's name (`global`, `usgov`, `usgov-dod`, `china`, or `custom`).
    pub cloud: String,
    /// Zero or more; two or more during a rotation.
    pub credentials: Vec<NewCredential>,
    /// Extra root CA certificates (PEM) trusted for this connection only (a private CA, a
    /// TLS-inspecting proxy, the simulator's `--tls` CA).
    pub ca_cert_pem: Option<String>,
    /// `Some`: an EWS connection (tenant, client id, authority, Graph URL and credentials are
    /// then empty).
    pub ews: Option<EwsSettings>,
}

/// A stored connection with its credentials, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub id: ConnectionId,
    pub name: String,
    pub tenant: String,
    pub client_id: String,
    pub authority: String,
    pub graph_url: String,
    pub cloud: String,
    pub created_at: Timestamp,
    /// Newest (`added_at`, then id) first.
    pub credentials: Vec<Credential>,
    /// Extra root CA certificates (PEM) trusted for this connection only.
    pub ca_cert_pem: Option<String>,
    /// `Some`: an EWS connection to Exchange Server.
    pub ews: Option<EwsSettings>,
}

impl Connection {
    pub fn kind(&self) -> ConnectionKind {
        if self.ews.is_some() {
            ConnectionKind::Ews
        } else {
            ConnectionKind::Graph
        }
    }
}

/// A mailbox to link to a connection, or the settings to change on one already linked.
///
/// `None` means "not given": a new mailbox gets the default (user, no external id, full), an
/// already linked one keeps what it has. Changing a setting is explicit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMailbox {
    /// The SMTP address / UPN; unique case-insensitively.
    pub address: String,
    /// The connection's name.
    pub connection: String,
    pub kind: Option<MailboxKind>,
    /// The host application's id for this person, room or resource (`Some("")` clears it).
    pub external_id: Option<String>,
    pub privacy: Option<PrivacyPolicy>,
}

impl NewMailbox {
    /// A mailbox with every setting given explicitly.
    pub fn new(
        address: impl Into<String>,
        connection: impl Into<String>,
        kind: MailboxKind,
        privacy: PrivacyPolicy,
    ) -> NewMailbox {
        NewMailbox {
            address: address.into(),
            connection: connection.into(),
            kind: Some(kind),
            external_id: None,
            privacy: Some(privacy),
        }
    }
}

/// A linked mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    pub id: MailboxId,
    /// As it was given when first linked.
    pub address: String,
    pub connection_id: ConnectionId,
    pub connection: String,
    pub kind: MailboxKind,
    pub external_id: Option<String>,
    pub privacy: PrivacyPolicy,
    pub linked_at: Timestamp,
    /// A full resync the next round must make, and why (e.g. the privacy policy now shows
    /// details that were never stored). Cleared by the commit of a resync begun after it.
    pub pending_resync: Option<String>,
}

/// What an API key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApiScope {
    /// Events, availability, feeds.
    Read,
    /// Bookings (push).
    Write,
    /// Connections, mailboxes, keys, webhooks.
    Admin,
}

string_forms!(ApiScope, "scope", {
    Read => "read",
    Write => "write",
    Admin => "admin",
});
