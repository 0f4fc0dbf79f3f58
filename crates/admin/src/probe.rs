//! What Exchange says about a mailbox's kind, read one way for every flow that needs it
//! (Verify a mailbox, CSV import, linking): `mailboxSettings.userPurpose` when the app may
//! read mailbox settings, else Graph's room list, which tells rooms from everything else.

use std::collections::HashSet;

use calgate_graph::{ErrorKind as GraphErrorKind, GraphClient, Shared};
use tokio::sync::OnceCell;

use calgate_core::MailboxKind;
use calgate_graph::{ErrorKind, MailboxSettings, UserPurpose};

/// Exchange's evidence of a mailbox's kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KindEvidence {
    /// `mailboxSettings.userPurpose` says so.
    Purpose { kind: MailboxKind, purpose: String },
    /// Graph's room list (places API) lists it.
    ListedRoom,
    /// Graph's room list does not list it: a person's or an equipment mailbox.
    NotARoom,
    /// Mailbox settings answered without a `userPurpose`.
    NoPurpose,
    /// Neither mailbox settings nor the room list may be read.
    NotPermitted,
    /// Reading mailbox settings failed otherwise.
    Failed(String),
}

/// What reading a mailbox's settings gave, as far as its kind goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PurposeRead<'a> {
    /// Read: its `userPurpose`, if Exchange gave one.
    Read(Option<&'a UserPurpose>),
    /// The app may not read mailbox settings (or did not ask).
    NotPermitted,
    /// The read failed otherwise.
    Failed(String),
}

impl<'a> PurposeRead<'a> {
    /// Whether the room list is worth reading (the purpose does not tell).
    pub fn needs_rooms(&self) -> bool {
        matches!(self, PurposeRead::Read(None) | PurposeRead::NotPermitted)
    }

    pub fn from_settings(settings: &'a Result<MailboxSettings, calgate_graph::Error>) -> Self {
        match settings {
            Ok(s) => PurposeRead::Read(s.user_purpose.as_ref()),
            Err(e) if e.kind == ErrorKind::Permission => PurposeRead::NotPermitted,
            Err(e) => PurposeRead::Failed(e.message.clone()),
        }
    }
}

impl KindEvidence {
    /// From what was read: the mailbox's purpose (or why not) and Graph's rooms (lowercase
    /// addresses; `None` when they could not be listed or were not asked for). The room list
    /// is consulted only when the purpose is not known.
    pub fn from_reads(
        address: &str,
        purpose: PurposeRead<'_>,
        rooms: Option<&HashSet<String>>,
    ) -> KindEvidence {
        match purpose {
            PurposeRead::Read(Some(p)) => KindEvidence::Purpose {
                kind: p.mailbox_kind(),
                purpose: p.as_str().to_owned(),
            },
            PurposeRead::Read(None) => match rooms {
                Some(r) if r.contains(&address.to_lowercase()) => KindEvidence::ListedRoom,
                Some(_) => KindEvidence::NotARoom,
                None => KindEvidence::NoPurpose,
            },
            PurposeRead::NotPermitted => match rooms {
                Some(r) if r.contains(&address.to_lowercase()) => KindEvidence::ListedRoom,
                Some(_) => KindEvidence::NotARoom,
                None => KindEvidence::NotPermitted,
            },
            PurposeRead::Failed(m) => KindEvidence::Failed(m),
        }
    }

    /// The kind Exchange establishes, with where it came from; `None` when it cannot tell
    /// (`NotARoom` cannot tell a person's mailbox from an equipment mailbox).
    pub fn kind(&self) -> Option<(MailboxKind, String)> {
        match self {
            KindEvidence::Purpose { kind, purpose } => {
                Some((*kind, format!("mailboxSettings.userPurpose = {purpose}")))
            }
            KindEvidence::ListedRoom => Some((
                MailboxKind::Room,
                "the places API (Place.Read.All), which lists it as a room".to_owned(),
            )),
            _ => None,
        }
    }

    /// Checks a claimed kind (a CSV column, `--kind`, the kind it is linked as) against the
    /// evidence.
    pub fn decide(&self, claimed: Option<MailboxKind>) -> KindDecision {
        if let Some((actual, source)) = self.kind() {
            return match claimed {
                Some(k) if k != actual => KindDecision::Conflict {
                    claimed: k,
                    actual,
                    source,
                },
                _ => KindDecision::Confirmed {
                    kind: actual,
                    source,
                },
            };
        }
        match (self, claimed) {
            (KindEvidence::NotARoom, Some(MailboxKind::Room)) => KindDecision::Conflict {
                claimed: MailboxKind::Room,
                actual: MailboxKind::User,
                source: "the places API (Place.Read.All), which does not list it as a room".to_owned(),
            },
            (KindEvidence::NotARoom, Some(k)) => KindDecision::Confirmed {
                kind: k,
                source: "the file, consistent with the places API".to_owned(),
            },
            (_, Some(k)) => KindDecision::Assumed {
                kind: k,
                why: "not checked: the app has neither MailboxSettings.Read nor Place.Read.All"
                    .to_owned(),
            },
            (KindEvidence::NotARoom, None) => KindDecision::Assumed {
                kind: MailboxKind::User,
                why: "not a room in Graph places; equipment cannot be told apart without MailboxSettings.Read".to_owned(),
            },
            (_, None) => KindDecision::Assumed {
                kind: MailboxKind::User,
                why: "assumed user: the app has neither MailboxSettings.Read nor Place.Read.All to tell".to_owned(),
            },
        }
    }
}

/// A claimed kind against Exchange's evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KindDecision {
    /// Exchange agrees (or is consistent with the claim).
    Confirmed { kind: MailboxKind, source: String },
    /// Exchange says otherwise.
    Conflict {
        claimed: MailboxKind,
        actual: MailboxKind,
        source: String,
    },
    /// Exchange could not tell: the claim (or `user`) is taken as is.
    Assumed { kind: MailboxKind, why: String },
}

/// "a user", "a room", "an equipment".
pub fn a_kind(k: MailboxKind) -> String {
    match k {
        MailboxKind::Equipment => "an equipment".to_owned(),
        other => format!("a {}", other.as_str()),
    }
}

// ---------------------------------------------------------------------------------------------
// Probing a mailbox (Verify, import, link)
// ---------------------------------------------------------------------------------------------

/// Why a probe failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// Exchange has no such mailbox.
    NotFound,
    /// The app may not read its calendar (RBAC scope, access policy, permission).
    OutOfScope,
    /// Its kind is not the one claimed.
    WrongKind,
    /// It could not be checked now (the connection cannot sign in, Graph failed).
    NotVerified,
}

/// The client a probe goes through: `Err`, every row of the connection is not verified, for
/// this reason.
enum Client {
    Graph(Result<GraphClient, calgate_graph::Error>),
    Ews(Result<calgate_ews::EwsClient, calgate_ews::Error>),
}

/// One connection's client and what its token allows, made once for many probes.
pub struct ConnectionProbe {
    name: String,
    client_id: String,
    /// `Err`: every row of this connection is not verified, for this reason.
    client: Client,
    can_read_users: bool,
    can_read_settings: bool,
    can_read_places: bool,
    rooms: OnceCell<Option<HashSet<String>>>,
}

fn has_any(roles: Option<&[String]>, wanted: &[&str]) -> bool {
    // Unreadable roles (opaque token): assume yes and let Graph decide.
    roles.is_none_or(|r| {
        r.iter()
            .any(|r| wanted.iter().any(|w| r.eq_ignore_ascii_case(w)))
    })
}

impl ConnectionProbe {
    /// Makes the connection's client and reads what its token allows.
    pub async fn prepare(c: &calgate_store::Connection, shared: &Shared) -> ConnectionProbe {
        if c.ews.is_some() {
            let ews = crate::ews::client(c);
            let ews = match ews {
                // Sign in once: a wrong password is one reason for every row.
                Ok(client) => match client.room_lists().await {
                    Ok(_) => Ok(client),
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            };
            return ConnectionProbe {
                name: c.name.clone(),
                client_id: c
                    .ews
                    .as_ref()
                    .map(|e| e.username.clone())
                    .unwrap_or_default(),
                client: Client::Ews(ews),
                can_read_users: false,
                can_read_settings: false,
                can_read_places: false,
                rooms: OnceCell::new(),
            };
        }
        let client = calgate_graph::ConnectionConfig::from_connection(c)
            .and_then(|cfg| GraphClient::new(cfg, shared));
        let mut ctx = ConnectionProbe {
            name: c.name.clone(),
            client_id: c.client_id.clone(),
            client: Client::Graph(client),
            can_read_users: false,
            can_read_settings: false,
            can_read_places: false,
            rooms: OnceCell::new(),
        };
        let token = match &ctx.client {
            Client::Graph(Ok(client)) => client.access_token().await,
            _ => return ctx,
        };
        match token {
            Ok(t) => {
                let roles = t.roles();
                ctx.can_read_users = has_any(
                    roles,
                    &[
                        "User.Read.All",
                        "User.ReadBasic.All",
                        "Directory.Read.All",
                        "User.ReadWrite.All",
                        "Directory.ReadWrite.All",
                    ],
                );
                ctx.can_read_settings = has_any(
                    roles,
                    &["MailboxSettings.Read", "MailboxSettings.ReadWrite"],
                );
                ctx.can_read_places = has_any(roles, &["Place.Read.All", "Place.ReadWrite.All"]);
            }
            Err(e) => ctx.client = Client::Graph(Err(e)),
        }
        ctx
    }

    /// Graph's room mailboxes (lowercase addresses), fetched once; `None` when they cannot be
    /// read.
    async fn rooms(&self, client: &GraphClient) -> Option<&HashSet<String>> {
        self.rooms
            .get_or_init(|| async {
                match client.list_rooms().await {
                    Ok(rooms) => Some(rooms.into_iter().map(|r| r.email.to_lowercase()).collect()),
                    Err(e) => {
                        tracing::debug!(connection = %self.name, error = %e, "rooms cannot be listed");
                        None
                    }
                }
            })
            .await
            .as_ref()
    }
}

impl ConnectionProbe {
    /// Every row of a connection that cannot be used now.
    fn unusable(&self, message: &str, code: Option<&str>) -> Verdict {
        Verdict::Failed {
            problem: Problem::NotVerified,
            reason: format!(
                "connection '{}' cannot be used now: {message} — run `calgate connection test {}`, then the import again",
                self.name, self.name
            ),
            code: code.map(str::to_owned),
            detail: None,
        }
    }
}

pub enum Verdict {
    Verified {
        kind: MailboxKind,
        /// How the kind was established, for the report.
        how: String,
    },
    Failed {
        problem: Problem,
        reason: String,
        code: Option<String>,
        detail: Option<String>,
    },
}

impl Verdict {
    /// Exchange has no such mailbox.
    fn not_found(e: &calgate_graph::Error) -> Verdict {
        let code = e.code.as_deref().unwrap_or("404");
        let reason = if code.eq_ignore_ascii_case("MailboxNotEnabledForRESTAPI") {
            "the user has no Exchange Online mailbox (MailboxNotEnabledForRESTAPI): check its licence in the Microsoft 365 admin center".to_owned()
        } else {
            format!(
                "no such mailbox in the tenant ({code}): check the address — use the primary SMTP address or UPN"
            )
        };
        Verdict::Failed {
            problem: Problem::NotFound,
            reason,
            code: e.code.clone(),
            detail: Some(e.message.clone()),
        }
    }

    /// The app may not open the mailbox's calendar.
    fn out_of_scope(ctx: &ConnectionProbe, e: &calgate_graph::Error) -> Verdict {
        let app = &ctx.client_id;
        let code = e.code.as_deref().unwrap_or("403");
        let reason = if e.message.contains("Access Policy") || e.message.contains("[RAOP]") {
            format!(
                "an Application Access Policy keeps application {app} out ({code}): add the mailbox to the policy's group, or scope the app with RBAC for Applications instead"
            )
        } else {
            format!(
                "application {app} may not read this calendar ({code}): add the mailbox to the app's RBAC scope (New-ManagementRoleAssignment -App {app} -Role \"Application Calendars.Read\" -CustomResourceScope <scope>) or grant Calendars.Read"
            )
        };
        Verdict::Failed {
            problem: Problem::OutOfScope,
            reason,
            code: e.code.clone(),
            detail: Some(e.message.clone()),
        }
    }

    /// A Graph error outside the expected ones: transient or not, the row is not verified.
    fn unverified(e: &calgate_graph::Error) -> Verdict {
        let reason = if e.is_retryable() {
            format!("{} — run the import again later", e.message)
        } else {
            e.message.clone()
        };
        Verdict::Failed {
            problem: Problem::NotVerified,
            reason,
            code: e.code.clone(),
            detail: None,
        }
    }
}

/// Probes one mailbox: it exists, the app may read its calendar, and its kind agrees with the
/// claimed one (or is told by Exchange).
pub async fn probe_mailbox(
    ctx: &ConnectionProbe,
    address: &str,
    claimed: Option<MailboxKind>,
) -> Verdict {
    let client = match &ctx.client {
        Client::Ews(ews) => return probe_ews(ctx, ews, address, claimed).await,
        Client::Graph(Ok(c)) => c,
        Client::Graph(Err(e)) => return ctx.unusable(&e.message, e.code.as_deref()),
    };
    let addr = address;

    // 1. The directory: does the mailbox exist? (403 without User.Read.All: the calendar
    //    read below tells instead.)
    if ctx.can_read_users
        && let Err(e) = client.get_user(addr).await
    {
        match e.kind {
            GraphErrorKind::NotFound => return Verdict::not_found(&e),
            GraphErrorKind::Permission => {}
            _ => return Verdict::unverified(&e),
        }
    }

    // 2. The calendar: may this app read it (RBAC scope, access policy)?
    let now = jiff::Timestamp::now();
    let end = now
        .checked_add(jiff::SignedDuration::from_mins(1))
        .unwrap_or(now);
    if let Err(e) = client.calendar_view(addr, now, end).await {
        return match e.kind {
            GraphErrorKind::NotFound => Verdict::not_found(&e),
            GraphErrorKind::Permission => Verdict::out_of_scope(ctx, &e),
            _ => Verdict::unverified(&e),
        };
    }

    // 3. The kind: mailboxSettings.userPurpose, else Graph's room list (crate::probe).
    let settings = if ctx.can_read_settings {
        Some(client.mailbox_settings(addr).await)
    } else {
        None
    };
    let purpose = match &settings {
        Some(Err(e)) if e.kind == GraphErrorKind::NotFound => return Verdict::not_found(e),
        Some(Err(e)) if e.kind != GraphErrorKind::Permission => return Verdict::unverified(e),
        Some(s) => PurposeRead::from_settings(s),
        None => PurposeRead::NotPermitted,
    };
    let rooms = if purpose.needs_rooms() && ctx.can_read_places {
        ctx.rooms(client).await
    } else {
        None
    };
    match KindEvidence::from_reads(addr, purpose, rooms).decide(claimed) {
        KindDecision::Conflict {
            claimed,
            actual,
            source,
        } => Verdict::Failed {
            problem: Problem::WrongKind,
            reason: format!(
                "the file says {} but Exchange says {} (from {source}): fix the kind column or leave it empty",
                claimed.as_str(),
                if source.contains("does not list") {
                    "it is not a room".to_owned()
                } else {
                    actual.as_str().to_owned()
                }
            ),
            code: None,
            detail: None,
        },
        KindDecision::Confirmed { kind, source } => Verdict::Verified {
            kind,
            how: format!("from {source}"),
        },
        KindDecision::Assumed { kind, why } => Verdict::Verified {
            kind,
            how: match claimed {
                Some(_) => format!("kind from the file; {why}"),
                None => format!("{why} — give the kind in the file"),
            },
        },
    }
}

/// [`probe_mailbox`] through EWS: the calendar opens (the mailbox exists and the service
/// account reaches it), and the kind from the organisation's room lists.
async fn probe_ews(
    ctx: &ConnectionProbe,
    client: &Result<calgate_ews::EwsClient, calgate_ews::Error>,
    address: &str,
    claimed: Option<MailboxKind>,
) -> Verdict {
    use calgate_core::FailureKind as K;
    let failed = |problem: Problem, e: &calgate_ews::Error| Verdict::Failed {
        problem,
        reason: e.message.clone(),
        code: e.code.clone(),
        detail: None,
    };
    let client = match client {
        Ok(c) => c,
        Err(e) => return ctx.unusable(&e.message, e.code.as_deref()),
    };
    if let Err(e) = client.calendar_folder(address).await {
        return match e.kind {
            K::NotFound => failed(Problem::NotFound, &e),
            K::Permission => failed(Problem::OutOfScope, &e),
            _ => failed(Problem::NotVerified, &e),
        };
    }
    let rooms = ctx
        .rooms
        .get_or_init(|| async {
            let lists = client.room_lists().await.ok()?;
            let mut all = HashSet::new();
            for (list, _) in lists {
                for (room, _) in client.rooms(&list).await.ok()? {
                    all.insert(room.to_lowercase());
                }
            }
            Some(all)
        })
        .await
        .as_ref();
    let is_room = rooms.is_some_and(|r| r.contains(&address.to_lowercase()));
    match (claimed, is_room) {
        (Some(MailboxKind::Room), false) if rooms.is_some() => Verdict::Failed {
            problem: Problem::WrongKind,
            reason: "the file says room but Exchange lists it in no room list: fix the kind column, or add the room to a room list (Add-DistributionGroupMember -Identity <room list> -Member <room>)".to_owned(),
            code: None,
            detail: None,
        },
        (Some(k), _) => Verdict::Verified {
            kind: k,
            how: "as the file says (the calendar opens through EWS)".to_owned(),
        },
        (None, true) => Verdict::Verified {
            kind: MailboxKind::Room,
            how: "from the organisation's room lists".to_owned(),
        },
        (None, false) => Verdict::Verified {
            kind: MailboxKind::User,
            how: "in no room list: a person (give the kind column for equipment)".to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions() {
        let purpose = KindEvidence::Purpose {
            kind: MailboxKind::Equipment,
            purpose: "equipment".into(),
        };
        assert!(matches!(
            purpose.decide(Some(MailboxKind::Room)),
            KindDecision::Conflict {
                actual: MailboxKind::Equipment,
                ..
            }
        ));
        assert!(matches!(
            purpose.decide(None),
            KindDecision::Confirmed {
                kind: MailboxKind::Equipment,
                ..
            }
        ));
        assert!(matches!(
            KindEvidence::NotARoom.decide(Some(MailboxKind::Room)),
            KindDecision::Conflict { .. }
        ));
        assert!(matches!(
            KindEvidence::NotARoom.decide(Some(MailboxKind::Equipment)),
            KindDecision::Confirmed {
                kind: MailboxKind::Equipment,
                ..
            }
        ));
        assert!(matches!(
            KindEvidence::NotPermitted.decide(None),
            KindDecision::Assumed {
                kind: MailboxKind::User,
                ..
            }
        ));
        assert!(matches!(
            KindEvidence::ListedRoom.decide(Some(MailboxKind::User)),
            KindDecision::Conflict {
                actual: MailboxKind::Room,
                ..
            }
        ));
    }
}
