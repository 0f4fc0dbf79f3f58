//! The simulator's published credentials (`SimHandle::credentials()`, `/_sim/credentials`, the
//! `calgate sim --credentials-out` file) as types.

use calgate_sim::SimHandle;
use serde::Deserialize;
use serde_json::Value;

/// The credentials document of a simulator's first tenant.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Credentials {
    pub tenant_id: String,
    /// `{base}/{tenant_id}`.
    pub authority: String,
    /// `{base}/v1.0`.
    pub graph_url: String,
    pub ews_url: String,
    /// The CA that signs the simulator's certificate (`--tls` only).
    #[serde(default)]
    pub ca_cert_pem: Option<String>,
    /// The published app registrations, in the simulator's order (the first is the demo's
    /// read-write app).
    pub apps: Vec<App>,
    /// Every mailbox of the tenant, people, rooms and equipment.
    pub mailboxes: Vec<Mailbox>,
}

/// A published app registration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct App {
    pub name: String,
    pub client_id: String,
    pub client_secret: String,
    #[serde(default)]
    pub roles: Vec<String>,
}

/// A mailbox of the tenant.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Mailbox {
    pub address: String,
    /// `user`, `room` or `equipment`.
    pub kind: String,
    #[serde(default)]
    pub display_name: Option<String>,
}

impl Credentials {
    /// The credentials `sim` publishes.
    pub fn of(sim: &SimHandle) -> Credentials {
        Credentials::from_value(&sim.credentials())
    }

    /// Parses a credentials document (panics, showing it, when it does not parse).
    pub fn from_value(v: &Value) -> Credentials {
        Credentials::deserialize(v).unwrap_or_else(|e| panic!("credentials document: {e}: {v}"))
    }

    /// Parses the text of a credentials file.
    pub fn from_json(text: &str) -> Credentials {
        let v: Value = serde_json::from_str(text)
            .unwrap_or_else(|e| panic!("credentials file is not JSON: {e}: {text}"));
        Credentials::from_value(&v)
    }

    /// The published app `name` (panics, naming the published ones, when there is none).
    #[track_caller]
    pub fn app(&self, name: &str) -> &App {
        self.apps
            .iter()
            .find(|a| a.name == name)
            .unwrap_or_else(|| {
                let names: Vec<&str> = self.apps.iter().map(|a| a.name.as_str()).collect();
                panic!("no published app {name} (published: {names:?})")
            })
    }

    /// The first published app (the demo's read-write app `calgate`).
    #[track_caller]
    pub fn first_app(&self) -> &App {
        self.apps.first().expect("the simulator publishes an app")
    }

    /// The mailboxes of `kind` (`user`, `room`, `equipment`), in the tenant's order.
    pub fn mailboxes_of(&self, kind: &str) -> impl Iterator<Item = &Mailbox> {
        self.mailboxes.iter().filter(move |m| m.kind == kind)
    }

    /// The addresses of the mailboxes of `kind`.
    pub fn addresses_of(&self, kind: &str) -> Vec<String> {
        self.mailboxes_of(kind).map(|m| m.address.clone()).collect()
    }

    /// The people: the addresses of the `user` mailboxes.
    pub fn people(&self) -> Vec<String> {
        self.addresses_of("user")
    }

    /// Every mailbox's address.
    pub fn addresses(&self) -> Vec<String> {
        self.mailboxes.iter().map(|m| m.address.clone()).collect()
    }

    /// The first mailbox of `kind`'s address.
    #[track_caller]
    pub fn first_of(&self, kind: &str) -> String {
        self.mailboxes_of(kind)
            .next()
            .unwrap_or_else(|| panic!("no {kind} mailbox"))
            .address
            .clone()
    }

    /// The kind of the mailbox `address` (compared without case).
    pub fn kind_of(&self, address: &str) -> Option<&str> {
        self.mailboxes
            .iter()
            .find(|m| m.address.eq_ignore_ascii_case(address))
            .map(|m| m.kind.as_str())
    }
}

#[cfg(feature = "store")]
impl Credentials {
    /// Every mailbox: (address, calgate's kind).
    pub fn kinds(&self) -> Vec<(String, calgate_core::MailboxKind)> {
        self.mailboxes
            .iter()
            .map(|m| (m.address.clone(), m.mailbox_kind()))
            .collect()
    }
}

#[cfg(feature = "store")]
impl Mailbox {
    /// The kind as calgate's type.
    pub fn mailbox_kind(&self) -> calgate_core::MailboxKind {
        serde_json::from_value(Value::String(self.kind.clone()))
            .unwrap_or_else(|e| panic!("{}: kind {}: {e}", self.address, self.kind))
    }
}

impl App {
    /// (client id, client secret).
    pub fn pair(&self) -> (String, String) {
        (self.client_id.clone(), self.client_secret.clone())
    }
}
