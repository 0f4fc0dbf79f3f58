//! Linking a mailbox, verified first: the one way the CLI (`mailbox link`), the REST API
//! (`POST /v1/mailboxes`) and the console link a single mailbox. CSV import links many through
//! the same probe (`crate::probe`).

use calgate_core::{Mailbox, NewMailbox, check_address};
use calgate_graph::Shared;
use calgate_store::{ErrorKind as StoreErrorKind, Store};

use crate::probe::{ConnectionProbe, Problem, Verdict, probe_mailbox};

/// How to link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkOptions {
    /// Probe the mailbox through the connection first (exists, in the app's scope, its kind).
    pub verify: bool,
}

impl Default for LinkOptions {
    fn default() -> Self {
        LinkOptions { verify: true }
    }
}

/// What linking did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkReport {
    pub mailbox: Mailbox,
    /// It was not linked before.
    pub created: bool,
    /// A setting changed (for a mailbox linked before).
    pub changed: bool,
    /// How it was verified (`None`: verification was not asked for).
    pub verified: Option<String>,
    /// Linked, but not verified (Graph or the connection could not be used now): check later
    /// with `calgate mailbox verify`.
    pub warning: Option<String>,
}

/// Why a mailbox was not linked.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The address is not one (bad usage).
    #[error("{0}")]
    Usage(String),
    /// No such connection.
    #[error(
        "there is no connection named '{0}': add it with `calgate connection add {0} --tenant ID --client-id ID --client-secret-env VAR` (see `calgate connection list`)"
    )]
    UnknownConnection(String),
    /// Linked to another connection already.
    #[error("{0}")]
    Conflict(String),
    /// Exchange says no: no such mailbox, out of the app's scope, or another kind.
    #[error("{reason}")]
    Refused {
        problem: Problem,
        reason: String,
        code: Option<String>,
    },
    #[error("{0}")]
    Store(#[from] calgate_store::Error),
}

/// Links (or re-links) a mailbox; with `verify`, probes it first and refuses it when Exchange
/// says it does not exist, is out of the app's scope, or is another kind than the one given.
/// A kind not given is taken from Exchange for a new mailbox (a room is linked as a room);
/// a linked mailbox keeps its settings unless given.
pub async fn link(
    store: &dyn Store,
    shared: &Shared,
    m: &NewMailbox,
    opts: LinkOptions,
) -> Result<LinkReport, LinkError> {
    let address = m.address.trim();
    check_address(address).map_err(|e| LinkError::Usage(e.to_string()))?;
    let conn = store
        .connection(&m.connection)
        .await?
        .ok_or_else(|| LinkError::UnknownConnection(m.connection.clone()))?;
    let before = store.mailbox(address).await?;
    if let Some(b) = &before
        && !b.connection.eq_ignore_ascii_case(&conn.name)
    {
        return Err(LinkError::Conflict(format!(
            "cannot link {address} to '{}': it is already linked to connection '{}' — unlink it first with `calgate mailbox unlink {address}`",
            conn.name, b.connection
        )));
    }
    let mut new = m.clone();
    new.address = address.to_owned();
    let (mut verified, mut warning) = (None, None);
    if opts.verify {
        let probe = ConnectionProbe::prepare(&conn, shared).await;
        match probe_mailbox(&probe, address, m.kind).await {
            Verdict::Verified { kind, how } => {
                if new.kind.is_none() && before.is_none() {
                    new.kind = Some(kind);
                }
                verified = Some(how);
            }
            Verdict::Failed {
                problem: Problem::NotVerified,
                reason,
                ..
            } => {
                warning = Some(format!(
                    "{address} linked without verification ({reason}); check it later with `calgate mailbox verify {address} --connection {}`",
                    conn.name
                ));
            }
            Verdict::Failed {
                problem,
                reason,
                code,
                ..
            } => {
                let reason = match problem {
                    Problem::WrongKind => reason.replace("the file says", "--kind says").replace(
                        "fix the kind column or leave it empty",
                        "give the right --kind or leave it out",
                    ),
                    _ => reason,
                };
                return Err(LinkError::Refused {
                    problem,
                    reason: format!("{address} was not linked: {reason}"),
                    code,
                });
            }
        }
    }
    store.link_mailbox(&new).await.map_err(|e| match e.kind() {
        StoreErrorKind::NotFound => LinkError::UnknownConnection(m.connection.clone()),
        StoreErrorKind::Conflict => LinkError::Conflict(e.message().to_owned()),
        StoreErrorKind::InvalidData => LinkError::Usage(e.message().to_owned()),
        _ => LinkError::Store(e),
    })?;
    let mailbox = store
        .mailbox(address)
        .await?
        .ok_or_else(|| LinkError::Conflict(format!("{address} was unlinked meanwhile")))?;
    Ok(LinkReport {
        created: before.is_none(),
        changed: before.as_ref().is_some_and(|b| *b != mailbox),
        mailbox,
        verified,
        warning,
    })
}
