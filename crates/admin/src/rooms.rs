//! Room discovery: `calgate rooms discover --connection NAME [--room-list EMAIL] [--link] [--json]`.
//!
//! The room-list model of the Serraview/Cronofy guide, without impersonation: the connection's
//! app reads Graph's places API (application permission `Place.Read.All`) — the room lists,
//! the rooms of each list (by the list's email address), and, without `--room-list`, the
//! rooms that are in no list — and with `--link` links every room it found as kind `room`
//! (idempotent: a room already linked so is left alone and reported as already linked).

use std::collections::HashMap;

use calgate_core::MailboxKind;
use calgate_graph::{ErrorKind as GraphErrorKind, GraphClient, Room, Shared};
use calgate_store::{Mailbox, NewMailbox, Store};
use serde::Serialize;

use crate::import::table;

/// How to run a discovery.
#[derive(Debug, Clone, Default)]
pub struct RoomsOptions {
    /// Only this room list (its email address).
    pub room_list: Option<String>,
    /// Link every room found as kind `room`.
    pub link: bool,
}

/// Why a discovery could not run.
#[derive(Debug, thiserror::Error)]
pub enum RoomsError {
    #[error(
        "there is no connection '{0}': see `calgate connection list`, or add it with `calgate connection add {0}`"
    )]
    UnknownConnection(String),
    /// The app lacks `Place.Read.All`: the message says how to grant it.
    #[error(
        "connection '{connection}' cannot read room lists: application {client_id} lacks the Microsoft Graph application permission Place.Read.All. Fix: Entra ID › App registrations › {client_id} › API permissions › Add a permission › Microsoft Graph › Application permissions › Place.Read.All, then press 'Grant admin consent for <your organisation>'; check with `calgate connection test {connection}`"
    )]
    MissingPlaceReadAll {
        connection: String,
        client_id: String,
        /// Graph's error code, when Graph refused (`ErrorAccessDenied`).
        code: Option<String>,
    },
    #[error(
        "there is no room list '{email}' in the tenant (room lists: {known}): check the address with Get-DistributionGroup -RecipientTypeDetails RoomList"
    )]
    UnknownRoomList { email: String, known: String },
    /// Signing in or Graph failed; the message names the fix.
    #[error("connection '{connection}': {source}")]
    Graph {
        connection: String,
        #[source]
        source: calgate_graph::Error,
    },
    /// Signing in or EWS failed; the message names the fix.
    #[error("connection '{connection}': {source}")]
    Ews {
        connection: String,
        #[source]
        source: calgate_ews::Error,
    },
    #[error("calgate's database failed: {0}")]
    Store(#[from] calgate_store::Error),
}

/// What `--link` did with a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LinkOutcome {
    Linked,
    /// Was linked to this connection with another kind; now a room.
    Updated,
    AlreadyLinked,
    /// Linked to another connection: left alone.
    LinkedElsewhere,
}

impl LinkOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkOutcome::Linked => "linked",
            LinkOutcome::Updated => "updated",
            LinkOutcome::AlreadyLinked => "already linked",
            LinkOutcome::LinkedElsewhere => "linked elsewhere",
        }
    }
}

/// One room, as Graph's places API describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoomEntry {
    pub email: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub building: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub floor_label: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub floor_number: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub booking_type: Option<String>,
    /// With `--link`: what happened.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<LinkOutcome>,
    /// With `--link`: one line about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl From<Room> for RoomEntry {
    fn from(r: Room) -> RoomEntry {
        RoomEntry {
            email: r.email,
            display_name: r.display_name,
            capacity: r.capacity,
            building: r.building,
            floor_label: r.floor_label,
            floor_number: r.floor_number,
            booking_type: r.booking_type,
            link: None,
            reason: None,
        }
    }
}

/// A room list and its rooms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoomListEntry {
    pub email: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    pub rooms: Vec<RoomEntry>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RoomsSummary {
    pub room_lists: usize,
    /// Distinct rooms found (the link counts are of distinct rooms too).
    pub rooms: usize,
    pub linked: usize,
    pub updated: usize,
    pub already_linked: usize,
    pub linked_elsewhere: usize,
}

/// The result of `rooms discover`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoomsReport {
    pub connection: String,
    /// Whether `--link` was given.
    pub link: bool,
    pub room_lists: Vec<RoomListEntry>,
    /// Rooms in no room list (only listed without `--room-list`).
    pub unlisted_rooms: Vec<RoomEntry>,
    pub summary: RoomsSummary,
}

impl RoomsReport {
    /// Every room entry, lists first (a room in two lists appears twice).
    pub fn rooms(&self) -> impl Iterator<Item = &RoomEntry> {
        self.room_lists
            .iter()
            .flat_map(|l| l.rooms.iter())
            .chain(self.unlisted_rooms.iter())
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    pub fn summary_line(&self) -> String {
        let s = &self.summary;
        let mut line = format!(
            "{} room list{}, {} room{}",
            s.room_lists,
            if s.room_lists == 1 { "" } else { "s" },
            s.rooms,
            if s.rooms == 1 { "" } else { "s" }
        );
        if self.link {
            let parts: Vec<String> = [
                (s.linked, "linked"),
                (s.updated, "updated"),
                (s.already_linked, "already linked"),
                (s.linked_elsewhere, "linked elsewhere"),
            ]
            .iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, w)| format!("{n} {w}"))
            .collect();
            if !parts.is_empty() {
                line.push_str(": ");
                line.push_str(&parts.join(", "));
            }
        } else if s.rooms > 0 {
            line.push_str(&format!(
                " (add --link to link them as rooms to connection '{}')",
                self.connection
            ));
        }
        line
    }

    /// The text report: per room list, a table of its rooms; then the counts.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        let section = |out: &mut String, title: String, rooms: &[RoomEntry]| {
            out.push_str(&title);
            out.push('\n');
            if rooms.is_empty() {
                out.push_str("  (no rooms)\n");
                return;
            }
            let headers = ["EMAIL", "NAME", "CAPACITY", "BUILDING", "FLOOR", "LINK"];
            let cells: Vec<[String; 6]> = rooms
                .iter()
                .map(|r| {
                    [
                        r.email.clone(),
                        r.display_name.clone().unwrap_or_default(),
                        r.capacity.map(|c| c.to_string()).unwrap_or_default(),
                        r.building.clone().unwrap_or_default(),
                        r.floor_label
                            .clone()
                            .or_else(|| r.floor_number.map(|n| n.to_string()))
                            .unwrap_or_default(),
                        match (r.link, &r.reason) {
                            (Some(LinkOutcome::LinkedElsewhere), Some(why)) => {
                                format!("linked elsewhere — {why}")
                            }
                            (Some(o), _) => o.as_str().to_owned(),
                            (None, _) => "-".to_owned(),
                        },
                    ]
                })
                .collect();
            for l in table(&headers, &cells).lines() {
                out.push_str("  ");
                out.push_str(l);
                out.push('\n');
            }
        };
        for l in &self.room_lists {
            let name = l
                .display_name
                .as_deref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default();
            section(
                &mut out,
                format!("Room list {}{name}: {} rooms", l.email, l.rooms.len()),
                &l.rooms,
            );
        }
        if !self.unlisted_rooms.is_empty() {
            section(
                &mut out,
                format!("Rooms in no room list: {}", self.unlisted_rooms.len()),
                &self.unlisted_rooms,
            );
        }
        out.push_str(&self.summary_line());
        out.push('\n');
        out
    }
}

fn has_place_role(roles: Option<&[String]>) -> bool {
    roles.is_none_or(|r| {
        r.iter().any(|r| {
            r.eq_ignore_ascii_case("Place.Read.All")
                || r.eq_ignore_ascii_case("Place.ReadWrite.All")
        })
    })
}

/// Lists the room lists and rooms of connection `connection` and, with `opts.link`, links
/// every room found as kind `room`.
pub async fn discover(
    store: &dyn Store,
    shared: &Shared,
    connection: &str,
    opts: &RoomsOptions,
) -> Result<RoomsReport, RoomsError> {
    let conn = store
        .connection(connection)
        .await?
        .ok_or_else(|| RoomsError::UnknownConnection(connection.to_owned()))?;
    let (room_lists, unlisted_rooms) = match conn.kind() {
        calgate_core::ConnectionKind::Graph => graph_rooms(&conn, shared, opts).await?,
        calgate_core::ConnectionKind::Ews => ews_rooms(&conn, opts).await?,
    };
    let mut room_lists = room_lists;
    let mut unlisted_rooms = unlisted_rooms;

    let mut summary = RoomsSummary {
        room_lists: room_lists.len(),
        ..RoomsSummary::default()
    };
    let mut distinct = std::collections::HashSet::new();
    for r in room_lists
        .iter()
        .flat_map(|l| l.rooms.iter())
        .chain(unlisted_rooms.iter())
    {
        distinct.insert(r.email.to_lowercase());
    }
    summary.rooms = distinct.len();

    if opts.link {
        let mut existing: HashMap<String, Mailbox> = store
            .list_mailboxes()
            .await?
            .into_iter()
            .map(|m| (m.address.to_lowercase(), m))
            .collect();
        let mut counted = std::collections::HashSet::new();
        for r in room_lists
            .iter_mut()
            .flat_map(|l| l.rooms.iter_mut())
            .chain(unlisted_rooms.iter_mut())
        {
            let key = r.email.to_lowercase();
            let (outcome, reason) = match existing.get(&key) {
                Some(m) if m.connection != conn.name => (
                    LinkOutcome::LinkedElsewhere,
                    format!(
                        "on connection '{}'; to move it, run `calgate mailbox unlink {}` first",
                        m.connection, m.address
                    ),
                ),
                Some(m) if m.kind == MailboxKind::Room => (
                    LinkOutcome::AlreadyLinked,
                    "already linked as room".to_owned(),
                ),
                Some(m) => {
                    let new = NewMailbox {
                        address: m.address.clone(),
                        connection: conn.name.clone(),
                        kind: Some(MailboxKind::Room),
                        external_id: None,
                        privacy: None,
                    };
                    store.link_mailbox(&new).await?;
                    let reason = format!("kind {} → room", m.kind.as_str());
                    if let Some(m) = existing.get_mut(&key) {
                        m.kind = MailboxKind::Room;
                    }
                    (LinkOutcome::Updated, reason)
                }
                None => {
                    let new = NewMailbox {
                        address: r.email.clone(),
                        connection: conn.name.clone(),
                        kind: Some(MailboxKind::Room),
                        external_id: None,
                        privacy: None,
                    };
                    store.link_mailbox(&new).await?;
                    if let Some(m) = store.mailbox(&r.email).await? {
                        existing.insert(key, m);
                    }
                    (LinkOutcome::Linked, "linked as room".to_owned())
                }
            };
            // A room in two lists is counted once, by its first outcome.
            let first = counted.insert(r.email.to_lowercase());
            match outcome {
                _ if !first => {}
                LinkOutcome::Linked => summary.linked += 1,
                LinkOutcome::Updated => summary.updated += 1,
                LinkOutcome::AlreadyLinked => summary.already_linked += 1,
                LinkOutcome::LinkedElsewhere => summary.linked_elsewhere += 1,
            }
            r.link = Some(outcome);
            r.reason = Some(reason);
        }
    }

    Ok(RoomsReport {
        connection: conn.name.clone(),
        link: opts.link,
        room_lists,
        unlisted_rooms,
        summary,
    })
}

/// The rooms of one list; an empty list whose email Graph does not know as a room list comes
/// back as no rooms rather than an error (Graph answers 404 for a list it has not indexed yet).
/// Keeps only the room list `wanted` (by address), if one is wanted; it must be there.
fn only_wanted<T>(
    lists: &mut Vec<T>,
    wanted: Option<&str>,
    email: impl Fn(&T) -> &String,
) -> Result<(), RoomsError> {
    let Some(wanted) = wanted.map(str::trim) else {
        return Ok(());
    };
    let known: Vec<String> = lists.iter().map(|l| email(l).clone()).collect();
    lists.retain(|l| email(l).eq_ignore_ascii_case(wanted));
    if lists.is_empty() {
        return Err(RoomsError::UnknownRoomList {
            email: wanted.to_owned(),
            known: if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            },
        });
    }
    Ok(())
}

/// Room lists and unlisted rooms from Graph's places API.
async fn graph_rooms(
    conn: &calgate_store::Connection,
    shared: &Shared,
    opts: &RoomsOptions,
) -> Result<(Vec<RoomListEntry>, Vec<RoomEntry>), RoomsError> {
    let graph_err = |source: calgate_graph::Error| RoomsError::Graph {
        connection: conn.name.clone(),
        source,
    };
    let missing = |code: Option<String>| RoomsError::MissingPlaceReadAll {
        connection: conn.name.clone(),
        client_id: conn.client_id.clone(),
        code,
    };
    let cfg = calgate_graph::ConnectionConfig::from_connection(conn).map_err(graph_err)?;
    let client = GraphClient::new(cfg, shared).map_err(graph_err)?;
    let token = client.access_token().await.map_err(graph_err)?;
    if !has_place_role(token.roles()) {
        return Err(missing(None));
    }
    let places = |e: calgate_graph::Error| {
        if e.kind == GraphErrorKind::Permission {
            missing(e.code.clone())
        } else {
            graph_err(e)
        }
    };

    let mut lists = client.list_room_lists().await.map_err(places)?;
    only_wanted(&mut lists, opts.room_list.as_deref(), |l| &l.email)?;
    let mut room_lists = Vec::with_capacity(lists.len());
    for l in lists {
        let rooms = rooms_of(&client, &l.email).await.map_err(places)?;
        room_lists.push(RoomListEntry {
            email: l.email,
            display_name: l.display_name,
            rooms: rooms.into_iter().map(RoomEntry::from).collect(),
        });
    }
    let mut unlisted_rooms = Vec::new();
    if opts.room_list.is_none() {
        let listed: std::collections::HashSet<String> = room_lists
            .iter()
            .flat_map(|l| l.rooms.iter().map(|r| r.email.to_lowercase()))
            .collect();
        unlisted_rooms = client
            .list_rooms()
            .await
            .map_err(places)?
            .into_iter()
            .filter(|r| !listed.contains(&r.email.to_lowercase()))
            .map(RoomEntry::from)
            .collect();
    }
    Ok((room_lists, unlisted_rooms))
}

/// Room lists from EWS (GetRoomLists, GetRooms). EWS has no "every room" operation: a room in
/// no list is not found (link it with `calgate mailbox link ADDRESS --kind room`).
async fn ews_rooms(
    conn: &calgate_store::Connection,
    opts: &RoomsOptions,
) -> Result<(Vec<RoomListEntry>, Vec<RoomEntry>), RoomsError> {
    let ews_err = |source: calgate_ews::Error| RoomsError::Ews {
        connection: conn.name.clone(),
        source,
    };
    let cfg = calgate_ews::EwsConfig::from_connection(conn).map_err(ews_err)?;
    let client = calgate_ews::EwsClient::new(cfg).map_err(ews_err)?;
    let mut lists = client.room_lists().await.map_err(ews_err)?;
    only_wanted(&mut lists, opts.room_list.as_deref(), |l| &l.0)?;
    let mut room_lists = Vec::with_capacity(lists.len());
    for (email, name) in lists {
        let rooms = client.rooms(&email).await.map_err(ews_err)?;
        room_lists.push(RoomListEntry {
            email,
            display_name: (!name.is_empty()).then_some(name),
            rooms: rooms
                .into_iter()
                .map(|(email, name)| RoomEntry {
                    email,
                    display_name: (!name.is_empty()).then_some(name),
                    capacity: None,
                    building: None,
                    floor_label: None,
                    floor_number: None,
                    booking_type: None,
                    link: None,
                    reason: None,
                })
                .collect(),
        });
    }
    Ok((room_lists, Vec::new()))
}

async fn rooms_of(client: &GraphClient, email: &str) -> Result<Vec<Room>, calgate_graph::Error> {
    match client.rooms_in_list(email).await {
        Err(e) if e.kind == GraphErrorKind::NotFound => {
            tracing::debug!(room_list = %email, error = %e, "room list has no rooms in Graph");
            Ok(Vec::new())
        }
        other => other,
    }
}
