//! Instances and series masters: change sets into the live set, full resyncs into a shadow set
//! owned by the round that began it, reads, and delta cursors. Every write of a round is fenced
//! by the round's lease; details the mailbox's privacy policy hides are never written.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use calgate_core::{Instance, Person, PrivacyPolicy, ShowAs, When};
use jiff::Timestamp;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::{
    Ctx, SqliteStore, Tx, count, date, from_json, opt_ts, parse_enum, sql, text_ts, to_json, ts, us,
};
use crate::codec::{LiveRow, read_web_link, stored_web_link, upsert_op};
use crate::error::{Error, ErrorKind, Result};
use crate::types::*;

/// The live set (what readers see) or the shadow set of a full resync.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Set {
    Live,
    Shadow,
}

impl Set {
    fn instances(self) -> &'static str {
        match self {
            Set::Live => "instances",
            Set::Shadow => "shadow_instances",
        }
    }
    fn masters(self) -> &'static str {
        match self {
            Set::Live => "series_masters",
            Set::Shadow => "shadow_series_masters",
        }
    }
}

const INSTANCE_COLUMNS: &str = "mailbox_id, exchange_id, id, ical_uid, type, series_master_id, \
     start_us, end_us, all_day_start, all_day_end, time_zone, show_as, sensitivity, subject, \
     location, body_preview, organizer, attendees, web_link, change_key, last_modified, origin, \
     stored_at";

const MASTER_COLUMNS: &str = "mailbox_id, exchange_id, ical_uid, subject, location, organizer, \
     recurrence, start_us, end_us, time_zone, show_as, sensitivity, web_link, change_key, \
     last_modified, stored_at";

/// Rows per multi-row statement: the per-statement cost (a step, a reset, a statement journal)
/// shared by 64 rows. 64 × 23 parameters stay far below SQLite's limit. (The tables' CHECKs
/// use no `IN (…)` lists, which SQLite would build as a temporary index for every row: schema
/// v18.)
const ROWS_PER_STATEMENT: usize = 64;

/// `items` in statement-sized pieces of 64, 16, 4 or 1 rows (with the index of each piece's
/// first item): few distinct statements, each prepared once on the writer's connection.
fn pieces<T>(items: &[T]) -> impl Iterator<Item = (usize, &[T])> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let left = items.len() - at;
        let n = [ROWS_PER_STATEMENT, 16, 4, 1]
            .into_iter()
            .find(|n| *n <= left)?;
        let piece = (at, &items[at..at + n]);
        at += n;
        Some(piece)
    })
}

/// Writes `rows` with `sql(n)` (an n-row statement) piece by piece, each row's values bound by
/// `bind(statement, first parameter index - 1, row)`. A failing piece is retried row by row,
/// so that the error names the row (`name`); a failed statement leaves nothing behind.
fn write_rows<R>(
    tx: &rusqlite::Transaction<'_>,
    rows: &[R],
    sql: impl Fn(usize) -> String,
    width: usize,
    bind: impl Fn(&mut rusqlite::CachedStatement<'_>, usize, &R) -> rusqlite::Result<()>,
    what: &str,
    name: impl Fn(&R) -> String,
) -> Result<()> {
    use super::bulk::Ctx as _;
    let run = |piece: &[R]| -> rusqlite::Result<()> {
        let mut q = tx.prepare_cached(&sql(piece.len()))?;
        for (k, r) in piece.iter().enumerate() {
            bind(&mut q, k * width, r)?;
        }
        q.raw_execute().map(|_| ())
    };
    for (_, piece) in pieces(rows) {
        if let Err(e) = run(piece) {
            for r in piece {
                run(std::slice::from_ref(r)).ctx(&format!("{what} {}", name(r)))?;
            }
            return Err(e).ctx(what);
        }
    }
    Ok(())
}

/// `n` rows of `width` parameters: `(?, …), (?, …)`.
fn value_rows(width: usize, n: usize) -> String {
    let row = format!("({})", vec!["?"; width].join(", "));
    vec![row; n].join(", ")
}

/// Binds `values` from parameter `at + 1` on.
fn bind_all(
    q: &mut rusqlite::CachedStatement<'_>,
    at: usize,
    values: &[&dyn rusqlite::ToSql],
) -> rusqlite::Result<()> {
    for (k, v) in values.iter().enumerate() {
        q.raw_bind_parameter(at + k + 1, v)?;
    }
    Ok(())
}

/// One instance's column values, ready to bind.
struct InstanceRow<'a> {
    /// The instance as the privacy policy lets it be stored; its strings are bound as they are
    /// (sqlx copies them into its arguments), not copied here first.
    i: Cow<'a, Instance>,
    mailbox: i64,
    id: String,
    all_day_start: Option<String>,
    all_day_end: Option<String>,
    organizer: Option<String>,
    attendees: String,
    last_modified: Option<String>,
    stored_at: i64,
}

impl<'a> InstanceRow<'a> {
    fn of(
        mailbox: MailboxId,
        i: Cow<'a, Instance>,
        id: String,
        now: Timestamp,
    ) -> Result<InstanceRow<'a>> {
        let (all_day_start, all_day_end) = match i.when.all_day {
            Some((s, e)) => (Some(s.to_string()), Some(e.to_string())),
            None => (None, None),
        };
        Ok(InstanceRow {
            mailbox: mailbox.0,
            id,
            all_day_start,
            all_day_end,
            organizer: i.organizer.as_ref().map(to_json).transpose()?,
            attendees: to_json(&i.attendees)?,
            last_modified: i.last_modified.map(|t| t.to_string()),
            stored_at: us(now),
            i,
        })
    }

    /// Binds the row's values from parameter `at + 1` on, in [`INSTANCE_COLUMNS`] order.
    fn bind(&self, q: &mut rusqlite::CachedStatement<'_>, at: usize) -> rusqlite::Result<()> {
        let i = &*self.i;
        bind_all(
            q,
            at,
            &[
                &self.mailbox,
                &i.exchange_id.as_str(),
                &self.id.as_str(),
                &i.ical_uid.as_deref(),
                &i.kind.as_str(),
                &i.series_master_id.as_deref(),
                &us(i.when.start),
                &us(i.when.end),
                &self.all_day_start.as_deref(),
                &self.all_day_end.as_deref(),
                &i.when.time_zone.as_str(),
                &i.show_as.as_str(),
                &i.sensitivity.as_str(),
                &i.subject.as_deref(),
                &i.location.as_deref(),
                &i.body_preview.as_deref(),
                &self.organizer.as_deref(),
                &self.attendees.as_str(),
                &stored_web_link(&i.exchange_id, i.web_link.as_deref()),
                &i.change_key.as_deref(),
                &self.last_modified.as_deref(),
                &i.origin.as_str(),
                &self.stored_at,
            ],
        )
    }
}

/// A series master's row, its JSON columns encoded.
struct MasterRow<'a> {
    m: Cow<'a, SeriesMaster>,
    organizer: Option<String>,
    recurrence: Option<String>,
}

impl<'a> MasterRow<'a> {
    fn of(m: Cow<'a, SeriesMaster>) -> Result<MasterRow<'a>> {
        Ok(MasterRow {
            organizer: m.organizer.as_ref().map(to_json).transpose()?,
            recurrence: m.recurrence.as_ref().map(to_json).transpose()?,
            m,
        })
    }

    /// Binds the row's values from parameter `at + 1` on, in [`MASTER_COLUMNS`] order.
    fn bind(
        &self,
        q: &mut rusqlite::CachedStatement<'_>,
        at: usize,
        mailbox: MailboxId,
        now: Timestamp,
    ) -> rusqlite::Result<()> {
        let m = &*self.m;
        bind_all(
            q,
            at,
            &[
                &mailbox.0,
                &m.exchange_id.as_str(),
                &m.ical_uid.as_deref(),
                &m.subject.as_deref(),
                &m.location.as_deref(),
                &self.organizer.as_deref(),
                &self.recurrence.as_deref(),
                &m.start.map(us),
                &m.end.map(us),
                &m.time_zone.as_deref(),
                &m.show_as.map(|s| s.as_str()),
                &m.sensitivity.map(|s| s.as_str()),
                &m.web_link.as_deref(),
                &m.change_key.as_deref(),
                &m.last_modified.map(|t| t.to_string()),
                &us(now),
            ],
        )
    }
}

/// One change-log row.
struct LogRow<'a> {
    instance_id: String,
    exchange_id: &'a str,
    op: ChangeOp,
    start: i64,
    end: i64,
}

/// `rows` instances in one upsert statement (an id twice in a statement: the later row wins,
/// as if written one after the other).
fn upsert_instances_sql(set: Set, rows: usize) -> String {
    let values = value_rows(23, rows);
    format!(
        "INSERT INTO {t} ({INSTANCE_COLUMNS}) VALUES {values} \
         ON CONFLICT (mailbox_id, exchange_id) DO UPDATE SET \
         ical_uid = excluded.ical_uid, type = excluded.type, \
         series_master_id = excluded.series_master_id, start_us = excluded.start_us, \
         end_us = excluded.end_us, all_day_start = excluded.all_day_start, \
         all_day_end = excluded.all_day_end, time_zone = excluded.time_zone, \
         show_as = excluded.show_as, sensitivity = excluded.sensitivity, \
         subject = excluded.subject, location = excluded.location, \
         body_preview = excluded.body_preview, organizer = excluded.organizer, \
         attendees = excluded.attendees, web_link = excluded.web_link, \
         change_key = excluded.change_key, last_modified = excluded.last_modified, \
         origin = excluded.origin, stored_at = excluded.stored_at",
        t = set.instances()
    )
}

/// `rows` series masters in one upsert statement.
fn upsert_masters_sql(set: Set, rows: usize) -> String {
    let values = value_rows(16, rows);
    format!(
        "INSERT INTO {t} ({MASTER_COLUMNS}) VALUES {values} \
         ON CONFLICT (mailbox_id, exchange_id) DO UPDATE SET \
         ical_uid = excluded.ical_uid, subject = excluded.subject, \
         location = excluded.location, organizer = excluded.organizer, \
         recurrence = excluded.recurrence, start_us = excluded.start_us, \
         end_us = excluded.end_us, time_zone = excluded.time_zone, \
         show_as = excluded.show_as, sensitivity = excluded.sensitivity, \
         web_link = excluded.web_link, change_key = excluded.change_key, \
         last_modified = excluded.last_modified, stored_at = excluded.stored_at",
        t = set.masters()
    )
}

/// Instances with their mailbox's address and, for events calgate pushed, their booking: an
/// event (or a series, by its master) that a booking target of the same mailbox names, or, in
/// meeting mode, the attendee's copy of calgate's meeting (by its iCalUId).
const SELECT_INSTANCE: &str = "SELECT i.*, m.address AS mailbox_address, \
     COALESCE((SELECT bt.external_id FROM booking_targets bt WHERE bt.address_key = m.address_key \
      AND bt.exchange_id = COALESCE(i.series_master_id, i.exchange_id) LIMIT 1), \
      (SELECT bt.external_id FROM booking_targets bt WHERE bt.address_key = m.address_key \
      AND bt.exchange_id IS NULL AND bt.ical_uid = i.ical_uid LIMIT 1)) AS booking_id \
     FROM instances i JOIN mailboxes m ON m.id = i.mailbox_id";

fn instance_from_row(row: &SqliteRow) -> Result<StoredInstance> {
    let c = "cannot read an instance";
    let all_day = match (
        date(row.try_get("all_day_start").ctx(c)?)?,
        date(row.try_get("all_day_end").ctx(c)?)?,
    ) {
        (Some(s), Some(e)) => Some((s, e)),
        _ => None,
    };
    let organizer: Option<String> = row.try_get("organizer").ctx(c)?;
    let attendees: String = row.try_get("attendees").ctx(c)?;
    let id: String = row.try_get("id").ctx(c)?;
    let kind: String = row.try_get("type").ctx(c)?;
    let show_as: String = row.try_get("show_as").ctx(c)?;
    let sensitivity: String = row.try_get("sensitivity").ctx(c)?;
    let origin: String = row.try_get("origin").ctx(c)?;
    let booking_id: Option<String> = row.try_get("booking_id").ctx(c)?;
    let exchange_id: String = row.try_get("exchange_id").ctx(c)?;
    let instance = Instance {
        web_link: read_web_link(&exchange_id, row.try_get("web_link").ctx(c)?),
        exchange_id,
        ical_uid: row.try_get("ical_uid").ctx(c)?,
        mailbox: row.try_get("mailbox_address").ctx(c)?,
        kind: parse_enum("instance type", &kind)?,
        series_master_id: row.try_get("series_master_id").ctx(c)?,
        when: When {
            start: ts(row.try_get("start_us").ctx(c)?)?,
            end: ts(row.try_get("end_us").ctx(c)?)?,
            time_zone: row.try_get("time_zone").ctx(c)?,
            all_day,
        },
        show_as: parse_enum("showAs", &show_as)?,
        sensitivity: parse_enum("sensitivity", &sensitivity)?,
        subject: row.try_get("subject").ctx(c)?,
        location: row.try_get("location").ctx(c)?,
        body_preview: row.try_get("body_preview").ctx(c)?,
        organizer: organizer
            .map(|o| from_json::<Person>("organizer", &o))
            .transpose()?,
        attendees: from_json("attendees", &attendees)?,
        change_key: row.try_get("change_key").ctx(c)?,
        last_modified: text_ts(row.try_get("last_modified").ctx(c)?)?,
        origin: if booking_id.is_some() {
            calgate_core::Origin::Calgate
        } else {
            parse_enum("origin", &origin)?
        },
        booking_id,
    };
    Ok(StoredInstance {
        id: uuid::Uuid::parse_str(&id).map_err(|_| Error::corrupt("instance id", &id))?,
        mailbox_id: MailboxId(row.try_get("mailbox_id").ctx(c)?),
        instance,
        stored_at: ts(row.try_get("stored_at").ctx(c)?)?,
    })
}

fn master_from_row(row: &SqliteRow) -> Result<SeriesMaster> {
    let c = "cannot read a series master";
    let organizer: Option<String> = row.try_get("organizer").ctx(c)?;
    let recurrence: Option<String> = row.try_get("recurrence").ctx(c)?;
    let show_as: Option<String> = row.try_get("show_as").ctx(c)?;
    let sensitivity: Option<String> = row.try_get("sensitivity").ctx(c)?;
    Ok(SeriesMaster {
        exchange_id: row.try_get("exchange_id").ctx(c)?,
        ical_uid: row.try_get("ical_uid").ctx(c)?,
        subject: row.try_get("subject").ctx(c)?,
        location: row.try_get("location").ctx(c)?,
        organizer: organizer
            .map(|o| from_json::<Person>("organizer", &o))
            .transpose()?,
        recurrence: recurrence
            .map(|r| from_json::<serde_json::Value>("recurrence", &r))
            .transpose()?,
        start: opt_ts(row.try_get("start_us").ctx(c)?)?,
        end: opt_ts(row.try_get("end_us").ctx(c)?)?,
        time_zone: row.try_get("time_zone").ctx(c)?,
        show_as: show_as
            .as_deref()
            .map(|s| parse_enum("showAs", s))
            .transpose()?,
        sensitivity: sensitivity
            .as_deref()
            .map(|s| parse_enum("sensitivity", s))
            .transpose()?,
        web_link: row.try_get("web_link").ctx(c)?,
        change_key: row.try_get("change_key").ctx(c)?,
        last_modified: text_ts(row.try_get("last_modified").ctx(c)?)?,
    })
}

/// `i` as the policy lets it be stored.
fn visible_instance(i: &Instance, policy: PrivacyPolicy) -> Cow<'_, Instance> {
    if i.details_hidden(policy) {
        Cow::Owned(i.redacted(policy))
    } else {
        Cow::Borrowed(i)
    }
}

/// The pending-resync sequence of the shadow set in progress (`(lease_token, resync_seq)` of
/// its row), which must be `lease`'s round's.
pub(super) fn own_shadow(row: Option<(i64, i64)>, lease: &Lease) -> Result<i64> {
    match row {
        None => Err(Error::not_found(format!(
            "no full resync is in progress for mailbox {} (it was discarded or committed)",
            lease.mailbox
        ))),
        Some((token, _)) if token != lease.token => Err(Error::new(
            ErrorKind::LeaseLost,
            format!(
                "the full resync in progress for mailbox {} belongs to another round",
                lease.mailbox
            ),
        )),
        Some((_, seq)) => Ok(seq),
    }
}

/// Writes a change set into `set` in `tx` on the writer's connection (see `bulk.rs`): one
/// prepared statement per kind of row, bound in place. The live set's changes go to the change
/// log: what is there now decides between created, updated (a new change key or new times)
/// and an unchanged replay.
fn write_changes(
    tx: &rusqlite::Transaction<'_>,
    set: Set,
    mailbox: MailboxId,
    policy: PrivacyPolicy,
    changes: &ChangeSet,
    now: Timestamp,
) -> Result<()> {
    use super::bulk::Ctx as _;
    let before = match set {
        Set::Live => Some(live_rows(tx, mailbox, changes)?),
        Set::Shadow => None,
    };
    let upserted: HashSet<&str> = changes
        .upserts
        .iter()
        .map(|i| i.exchange_id.as_str())
        .collect();
    // The change log's rows, written together at the end.
    let mut log: Vec<LogRow<'_>> = Vec::new();
    if !changes.removals.is_empty() {
        let mut remove = tx
            .prepare_cached(&format!(
                "DELETE FROM {} WHERE mailbox_id = ?1 AND exchange_id = ?2",
                set.instances()
            ))
            .ctx("cannot remove instances")?;
        for id in &changes.removals {
            remove
                .execute((mailbox.0, id.as_str()))
                .ctx("cannot remove instances")?;
            if let Some(before) = &before
                && let Some(old) = before.get(id.as_str())
                && !upserted.contains(id.as_str())
            {
                log.push(LogRow {
                    instance_id: old.id.clone(),
                    exchange_id: id,
                    op: ChangeOp::Deleted,
                    start: old.start,
                    end: old.end,
                });
            }
        }
    }
    if !changes.master_removals.is_empty() {
        let mut remove = tx
            .prepare_cached(&format!(
                "DELETE FROM {} WHERE mailbox_id = ?1 AND exchange_id = ?2",
                set.masters()
            ))
            .ctx("cannot remove a series master")?;
        for id in &changes.master_removals {
            remove
                .execute((mailbox.0, id.as_str()))
                .ctx("cannot remove a series master")?;
        }
    }
    if !changes.upserts.is_empty() {
        // New rows' ids: random (v4), from one draw of the CSPRNG per change set rather than
        // one system call per row.
        let mut random = vec![0u8; 16 * changes.upserts.len()];
        aws_lc_rs::rand::fill(&mut random)
            .map_err(|_| Error::new(ErrorKind::Database, "cannot draw random instance ids"))?;
        let mut rows = Vec::with_capacity(changes.upserts.len());
        for (k, original) in changes.upserts.iter().enumerate() {
            let mut bytes = [0u8; 16];
            bytes.copy_from_slice(&random[16 * k..16 * k + 16]);
            let new_id = uuid::Builder::from_random_bytes(bytes)
                .into_uuid()
                .to_string();
            let i = visible_instance(original, policy);
            if let Some(before) = &before {
                let (start, end) = (us(i.when.start), us(i.when.end));
                let op = upsert_op(before.get(i.exchange_id.as_str()), &new_id, start, end, &i);
                if let Some((instance_id, op)) = op {
                    log.push(LogRow {
                        instance_id,
                        exchange_id: original.exchange_id.as_str(),
                        op,
                        start,
                        end,
                    });
                }
            }
            rows.push(InstanceRow::of(mailbox, i, new_id, now)?);
        }
        write_rows(
            tx,
            &rows,
            |n| upsert_instances_sql(set, n),
            23,
            |q, at, r| r.bind(q, at),
            "cannot store instance",
            |r| r.i.exchange_id.clone(),
        )?;
    }
    log_changes(tx, mailbox, &log, now)?;
    let masters: Vec<MasterRow> = changes
        .masters
        .iter()
        .map(|m| MasterRow::of(m.visible(policy)))
        .collect::<Result<_>>()?;
    write_rows(
        tx,
        &masters,
        |n| upsert_masters_sql(set, n),
        16,
        |q, at, m| m.bind(q, at, mailbox, now),
        "cannot store series master",
        |m| m.m.exchange_id.clone(),
    )?;
    if let Some(c) = &changes.cursor {
        match set {
            Set::Live => {
                tx.prepare_cached(WRITE_CURSOR)
                    .and_then(|mut q| {
                        q.execute((
                            mailbox.0,
                            c.delta_link.as_str(),
                            us(c.window_start),
                            us(c.window_end),
                            us(c.rebased_at),
                            us(now),
                        ))
                    })
                    .ctx("cannot store the delta cursor")?;
            }
            Set::Shadow => {
                tx.prepare_cached("UPDATE shadows SET delta_link = ?1 WHERE mailbox_id = ?2")
                    .and_then(|mut q| q.execute((c.delta_link.as_str(), mailbox.0)))
                    .ctx("cannot record the resync's progress")?;
            }
        }
    }
    Ok(())
}

/// The live rows of the ids a change set touches.
fn live_rows(
    tx: &rusqlite::Transaction<'_>,
    mailbox: MailboxId,
    changes: &ChangeSet,
) -> Result<HashMap<String, LiveRow>> {
    use super::bulk::Ctx as _;
    let c = "cannot read instances";
    // A first round writes into an empty live set: one cheap look instead of a lookup per
    // instance.
    let any: bool = tx
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM instances WHERE mailbox_id = ?1)")
        .and_then(|mut q| q.query_row([mailbox.0], |r| r.get(0)))
        .ctx(c)?;
    let mut out = HashMap::new();
    if !any {
        return Ok(out);
    }
    let mut q = tx
        .prepare_cached(
            "SELECT id, change_key, start_us, end_us FROM instances \
             WHERE mailbox_id = ?1 AND exchange_id = ?2",
        )
        .ctx(c)?;
    let ids = changes
        .removals
        .iter()
        .map(String::as_str)
        .chain(changes.upserts.iter().map(|i| i.exchange_id.as_str()));
    for id in ids {
        let mut rows = q.query((mailbox.0, id)).ctx(c)?;
        if let Some(r) = rows.next().ctx(c)? {
            let row = LiveRow {
                id: r.get(0).ctx(c)?,
                change_key: r.get(1).ctx(c)?,
                start: r.get(2).ctx(c)?,
                end: r.get(3).ctx(c)?,
            };
            out.insert(id.to_owned(), row);
        }
    }
    Ok(out)
}

/// Writes the change log's rows.
fn log_changes(
    tx: &rusqlite::Transaction<'_>,
    mailbox: MailboxId,
    rows: &[LogRow<'_>],
    now: Timestamp,
) -> Result<()> {
    use super::bulk::Ctx as _;
    if rows.is_empty() {
        return Ok(());
    }
    let c = "cannot write the change log";
    let address: String = tx
        .prepare_cached("SELECT address FROM mailboxes WHERE id = ?1")
        .and_then(|mut q| q.query_row([mailbox.0], |r| r.get(0)))
        .ctx(c)?;
    let at = us(now);
    write_rows(
        tx,
        rows,
        |n| {
            let values = vec!["(?, ?, ?, ?, ?, ?, ?, ?, 'round')"; n].join(", ");
            format!(
                "INSERT INTO change_log (mailbox_id, address, instance_id, exchange_id, op, \
                 start_us, end_us, at, via) VALUES {values}"
            )
        },
        8,
        |q, k, r| {
            bind_all(
                q,
                k,
                &[
                    &mailbox.0,
                    &address.as_str(),
                    &r.instance_id.as_str(),
                    &r.exchange_id,
                    &r.op.as_str(),
                    &r.start,
                    &r.end,
                    &at,
                ],
            )
        },
        c,
        |r| format!("(instance {})", r.exchange_id),
    )
}

/// A fenced write of a round on the writer's connection: the mailbox's privacy policy, or
/// `None` when `lease` is no longer the mailbox's current one (the caller says who holds it).
fn fence(tx: &rusqlite::Transaction<'_>, lease: &Lease) -> Result<Option<PrivacyPolicy>> {
    use super::bulk::Ctx as _;
    let policy = super::bulk::require_mailbox(tx, lease.mailbox)?;
    let extended = tx
        .prepare_cached(
            "UPDATE sync_leases SET deadline = MAX(deadline, ?1) \
             WHERE mailbox_id = ?2 AND token = ?3 AND owner = ?4",
        )
        .and_then(|mut q| {
            q.execute((
                super::leases::deadline(Timestamp::now(), lease.ttl),
                lease.mailbox.0,
                lease.token,
                lease.holder.id.as_str(),
            ))
        })
        .ctx("cannot check the sync lease")?;
    Ok((extended == 1).then_some(policy))
}

const WRITE_CURSOR: &str = "INSERT INTO delta_cursors (mailbox_id, delta_link, window_start, \
     window_end, rebased_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
     ON CONFLICT (mailbox_id) DO UPDATE SET delta_link = excluded.delta_link, \
     window_start = excluded.window_start, window_end = excluded.window_end, \
     rebased_at = excluded.rebased_at, updated_at = excluded.updated_at";

impl SqliteStore {
    /// `changes` into `set` as `lease`'s round, in one transaction on the writer's connection
    /// (owned changes are moved to the writer thread, borrowed ones copied).
    async fn apply_in(
        &self,
        set: Set,
        lease: &Lease,
        changes: std::borrow::Cow<'_, ChangeSet>,
    ) -> Result<()> {
        use super::bulk::Ctx as _;
        let applied = self
            .bulk
            .run({
                let (fenced, owned) = (lease.clone(), changes.into_owned());
                move |tx: &rusqlite::Transaction<'_>| {
                    let Some(policy) = fence(tx, &fenced)? else {
                        return Ok(false);
                    };
                    if set == Set::Shadow {
                        let row = tx
                            .prepare_cached(
                                "SELECT lease_token, resync_seq FROM shadows WHERE mailbox_id = ?1",
                            )
                            .and_then(|mut q| {
                                let mut rows = q.query([fenced.mailbox.0])?;
                                rows.next()?.map(|r| Ok((r.get(0)?, r.get(1)?))).transpose()
                            })
                            .ctx("cannot read the resync state")?;
                        own_shadow(row, &fenced)?;
                    }
                    write_changes(tx, set, fenced.mailbox, policy, &owned, Timestamp::now())?;
                    Ok(true)
                }
            })
            .await?;
        if applied {
            Ok(())
        } else {
            Err(Self::lease_lost(&self.pool, lease).await)
        }
    }

    async fn write_cursor(
        tx: &mut Tx,
        mailbox: MailboxId,
        c: &Cursor,
        now: Timestamp,
    ) -> Result<()> {
        sqlx::query(WRITE_CURSOR)
            .bind(mailbox.0)
            .bind(&c.delta_link)
            .bind(us(c.window_start))
            .bind(us(c.window_end))
            .bind(us(c.rebased_at))
            .bind(us(now))
            .execute(&mut **tx)
            .await
            .ctx("cannot store the delta cursor")?;
        Ok(())
    }

    async fn clear_shadow(tx: &mut Tx, mailbox: MailboxId) -> Result<bool> {
        for q in [
            "DELETE FROM shadow_instances WHERE mailbox_id = ?",
            "DELETE FROM shadow_series_masters WHERE mailbox_id = ?",
        ] {
            sqlx::query(q)
                .bind(mailbox.0)
                .execute(&mut **tx)
                .await
                .ctx("cannot discard the shadow set")?;
        }
        let done = sqlx::query("DELETE FROM shadows WHERE mailbox_id = ?")
            .bind(mailbox.0)
            .execute(&mut **tx)
            .await
            .ctx("cannot discard the shadow set")?;
        Ok(done.rows_affected() > 0)
    }

    /// The shadow set in progress must be this round's; returns the pending-resync sequence it
    /// started at.
    async fn require_own_shadow(tx: &mut Tx, lease: &Lease) -> Result<i64> {
        let row = sqlx::query("SELECT lease_token, resync_seq FROM shadows WHERE mailbox_id = ?")
            .bind(lease.mailbox.0)
            .fetch_optional(&mut **tx)
            .await
            .ctx("cannot read the resync state")?;
        let c = "cannot read the resync state";
        let row = match row {
            None => None,
            Some(r) => Some((
                r.try_get("lease_token").ctx(c)?,
                r.try_get("resync_seq").ctx(c)?,
            )),
        };
        own_shadow(row, lease)
    }

    pub(super) async fn apply_changes_impl(
        &self,
        lease: &Lease,
        changes: std::borrow::Cow<'_, ChangeSet>,
    ) -> Result<()> {
        self.apply_in(Set::Live, lease, changes).await
    }

    pub(super) async fn begin_shadow_impl(&self, lease: &Lease, window: Window) -> Result<()> {
        if window.end < window.start {
            return Err(Error::invalid(
                "a resync window must not end before it starts",
            ));
        }
        let what = "cannot start the full resync";
        let mut tx = self.write_tx().await?;
        Self::fence(&mut tx, lease).await?;
        // Holding the lease, any shadow set left is a dead round's.
        Self::clear_shadow(&mut tx, lease.mailbox).await?;
        sqlx::query(
            "INSERT INTO shadows (mailbox_id, window_start, window_end, delta_link, started_at, \
             lease_token, resync_seq) \
             SELECT ?, ?, ?, NULL, ?, ?, resync_seq FROM mailboxes WHERE id = ?",
        )
        .bind(lease.mailbox.0)
        .bind(us(window.start))
        .bind(us(window.end))
        .bind(us(Timestamp::now()))
        .bind(lease.token)
        .bind(lease.mailbox.0)
        .execute(&mut *tx)
        .await
        .ctx(what)?;
        tx.commit().await.ctx(what)
    }

    pub(super) async fn apply_shadow_impl(
        &self,
        lease: &Lease,
        changes: std::borrow::Cow<'_, ChangeSet>,
    ) -> Result<()> {
        self.apply_in(Set::Shadow, lease, changes).await
    }

    pub(super) async fn commit_shadow_impl(&self, lease: &Lease, cursor: &Cursor) -> Result<()> {
        let what = "cannot swap in the full resync";
        let mailbox = lease.mailbox;
        let mut tx = self.write_tx().await?;
        Self::fence(&mut tx, lease).await?;
        let seq = Self::require_own_shadow(&mut tx, lease).await?;
        // Keep calgate's ids for instances that survive the resync.
        sqlx::query(
            "UPDATE shadow_instances SET id = (SELECT l.id FROM instances l \
               WHERE l.mailbox_id = shadow_instances.mailbox_id \
               AND l.exchange_id = shadow_instances.exchange_id) \
             WHERE mailbox_id = ? AND EXISTS (SELECT 1 FROM instances l \
               WHERE l.mailbox_id = shadow_instances.mailbox_id \
               AND l.exchange_id = shadow_instances.exchange_id)",
        )
        .bind(mailbox.0)
        .execute(&mut *tx)
        .await
        .ctx(what)?;
        // The change log: what the swap deletes, creates and updates.
        let now = us(Timestamp::now());
        let log = "INSERT INTO change_log (mailbox_id, address, instance_id, exchange_id, op, \
             start_us, end_us, at, via)";
        let addr = "(SELECT address FROM mailboxes WHERE id = ?1)";
        let diffs = [
            format!(
                "{log} SELECT ?1, {addr}, l.id, l.exchange_id, 'deleted', l.start_us, l.end_us, ?2, 'resync' \
                 FROM instances l WHERE l.mailbox_id = ?1 AND NOT EXISTS (SELECT 1 FROM \
                 shadow_instances s WHERE s.mailbox_id = ?1 AND s.exchange_id = l.exchange_id)"
            ),
            format!(
                "{log} SELECT ?1, {addr}, s.id, s.exchange_id, 'created', s.start_us, s.end_us, ?2, 'resync' \
                 FROM shadow_instances s WHERE s.mailbox_id = ?1 AND NOT EXISTS (SELECT 1 FROM \
                 instances l WHERE l.mailbox_id = ?1 AND l.exchange_id = s.exchange_id)"
            ),
            format!(
                "{log} SELECT ?1, {addr}, s.id, s.exchange_id, 'updated', s.start_us, s.end_us, ?2, 'resync' \
                 FROM shadow_instances s JOIN instances l ON l.mailbox_id = ?1 \
                 AND l.exchange_id = s.exchange_id WHERE s.mailbox_id = ?1 AND \
                 (l.change_key IS NULL OR l.change_key IS NOT s.change_key \
                  OR l.start_us <> s.start_us OR l.end_us <> s.end_us)"
            ),
        ];
        for d in diffs {
            sqlx::query(sql(d))
                .bind(mailbox.0)
                .bind(now)
                .execute(&mut *tx)
                .await
                .ctx(what)?;
        }
        let statements = [
            "DELETE FROM instances WHERE mailbox_id = ?".to_owned(),
            format!(
                "INSERT INTO instances ({INSTANCE_COLUMNS}) SELECT {INSTANCE_COLUMNS} \
                 FROM shadow_instances WHERE mailbox_id = ?"
            ),
            "DELETE FROM series_masters WHERE mailbox_id = ?".to_owned(),
            format!(
                "INSERT INTO series_masters ({MASTER_COLUMNS}) SELECT {MASTER_COLUMNS} \
                 FROM shadow_series_masters WHERE mailbox_id = ?"
            ),
        ];
        for s in statements {
            sqlx::query(sql(s))
                .bind(mailbox.0)
                .execute(&mut *tx)
                .await
                .ctx(what)?;
        }
        Self::clear_shadow(&mut tx, mailbox).await?;
        // A resync requested before this one began is now done.
        sqlx::query("UPDATE mailboxes SET resync_reason = NULL WHERE id = ? AND resync_seq <= ?")
            .bind(mailbox.0)
            .bind(seq)
            .execute(&mut *tx)
            .await
            .ctx(what)?;
        Self::write_cursor(&mut tx, mailbox, cursor, Timestamp::now()).await?;
        tx.commit().await.ctx(what)
    }

    pub(super) async fn abort_shadow_impl(&self, lease: &Lease) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        Self::fence(&mut tx, lease).await?;
        let had = Self::clear_shadow(&mut tx, lease.mailbox).await?;
        tx.commit().await.ctx("cannot discard the full resync")?;
        Ok(had)
    }

    pub(super) async fn shadow_impl(&self, mailbox: MailboxId) -> Result<Option<ShadowState>> {
        let c = "cannot read the resync state";
        let row = sqlx::query(
            "SELECT s.*, (SELECT COUNT(*) FROM shadow_instances i WHERE i.mailbox_id = s.mailbox_id) \
             AS n FROM shadows s WHERE s.mailbox_id = ?",
        )
        .bind(mailbox.0)
        .fetch_optional(&self.pool)
        .await
        .ctx(c)?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(ShadowState {
            lease_token: row.try_get("lease_token").ctx(c)?,
            window: Window {
                start: ts(row.try_get("window_start").ctx(c)?)?,
                end: ts(row.try_get("window_end").ctx(c)?)?,
            },
            progress_link: row.try_get("delta_link").ctx(c)?,
            started_at: ts(row.try_get("started_at").ctx(c)?)?,
            instances: count(row.try_get("n").ctx(c)?),
        }))
    }

    pub(super) async fn instances_impl(
        &self,
        mailbox: MailboxId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<StoredInstance>> {
        let rows = sqlx::query(sql(format!(
            "{SELECT_INSTANCE} WHERE i.mailbox_id = ? AND i.start_us < ? \
             AND (i.end_us > ? OR i.start_us = ?) ORDER BY i.start_us, i.exchange_id"
        )))
        .bind(mailbox.0)
        .bind(us(to))
        .bind(us(from))
        .bind(us(from))
        .fetch_all(&self.pool)
        .await
        .ctx("cannot read instances")?;
        rows.iter().map(instance_from_row).collect()
    }

    pub(super) async fn shadow_diff_impl(&self, lease: &Lease) -> Result<ShadowDiff> {
        let c = "cannot compare the resync with the live set";
        let mut tx = self.write_tx().await?;
        Self::fence(&mut tx, lease).await?;
        Self::require_own_shadow(&mut tx, lease).await?;
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM instances WHERE mailbox_id = ?1) AS live, \
             (SELECT COUNT(*) FROM instances l WHERE l.mailbox_id = ?1 AND NOT EXISTS \
               (SELECT 1 FROM shadow_instances s WHERE s.mailbox_id = ?1 \
                AND s.exchange_id = l.exchange_id)) AS removed, \
             (SELECT COUNT(*) FROM shadow_instances s WHERE s.mailbox_id = ?1 AND NOT EXISTS \
               (SELECT 1 FROM instances l WHERE l.mailbox_id = ?1 \
                AND l.exchange_id = s.exchange_id)) AS added",
        )
        .bind(lease.mailbox.0)
        .fetch_one(&mut *tx)
        .await
        .ctx(c)?;
        let diff = ShadowDiff {
            live: count(row.try_get("live").ctx(c)?),
            removed: count(row.try_get("removed").ctx(c)?),
            added: count(row.try_get("added").ctx(c)?),
        };
        tx.commit().await.ctx(c)?;
        Ok(diff)
    }

    pub(super) async fn instances_page_impl(
        &self,
        mailbox: MailboxId,
        from: Timestamp,
        to: Timestamp,
        after: Option<&InstanceCursor>,
        limit: u32,
    ) -> Result<InstancePage> {
        let limit = limit.clamp(1, 10_000);
        let (after_start, after_id) = match after {
            Some(a) => (us(a.start), a.exchange_id.as_str()),
            None => (i64::MIN, ""),
        };
        let rows = sqlx::query(sql(format!(
            "{SELECT_INSTANCE} WHERE i.mailbox_id = ? AND i.start_us < ? \
             AND (i.end_us > ? OR i.start_us = ?) \
             AND (i.start_us > ? OR (i.start_us = ? AND i.exchange_id > ?)) \
             ORDER BY i.start_us, i.exchange_id LIMIT ?"
        )))
        .bind(mailbox.0)
        .bind(us(to))
        .bind(us(from))
        .bind(us(from))
        .bind(after_start)
        .bind(after_start)
        .bind(after_id)
        .bind(i64::from(limit) + 1)
        .fetch_all(&self.pool)
        .await
        .ctx("cannot read instances")?;
        let mut instances = rows
            .iter()
            .map(instance_from_row)
            .collect::<Result<Vec<_>>>()?;
        let next = if instances.len() > limit as usize {
            instances.truncate(limit as usize);
            instances.last().map(|s| InstanceCursor {
                start: s.instance.when.start,
                exchange_id: s.instance.exchange_id.clone(),
            })
        } else {
            None
        };
        Ok(InstancePage { instances, next })
    }

    pub(super) async fn busy_times_impl(
        &self,
        mailboxes: &[MailboxId],
        from: Timestamp,
        to: Timestamp,
        busy: &[ShowAs],
    ) -> Result<Vec<BusyTimes>> {
        let c = "cannot read instances";
        let mut out = Vec::new();
        if busy.is_empty() {
            return Ok(out);
        }
        // One row per mailbox, its spans aggregated inside SQLite ("start,end;start,end"):
        // rows, not instances, are what a read costs here. The covering index
        // (mailbox_id, start_us, end_us, show_as) answers it without touching the table.
        let shows = vec!["?"; busy.len()].join(", ");
        for chunk in mailboxes.chunks(400) {
            let marks = vec!["?"; chunk.len()].join(", ");
            let mut q = sqlx::query(sql(format!(
                "SELECT mailbox_id, group_concat(start_us || ',' || end_us, ';') AS spans \
                 FROM instances INDEXED BY instances_busy \
                 WHERE mailbox_id IN ({marks}) AND start_us < ? AND (end_us > ? OR start_us = ?) \
                 AND show_as IN ({shows}) GROUP BY mailbox_id"
            )));
            for m in chunk {
                q = q.bind(m.0);
            }
            q = q.bind(us(to)).bind(us(from)).bind(us(from));
            for s in busy {
                q = q.bind(s.as_str());
            }
            let rows = q.fetch_all(&self.pool).await.ctx(c)?;
            for row in rows {
                let text: String = row.try_get("spans").ctx(c)?;
                let mut spans = Vec::new();
                for pair in text.split(';') {
                    let bad = || Error::corrupt("a busy span", pair);
                    let (a, b) = pair.split_once(',').ok_or_else(bad)?;
                    let a: i64 = a.parse().map_err(|_| bad())?;
                    let b: i64 = b.parse().map_err(|_| bad())?;
                    spans.push((ts(a)?, ts(b)?));
                }
                out.push(BusyTimes {
                    mailbox: MailboxId(row.try_get("mailbox_id").ctx(c)?),
                    spans,
                });
            }
        }
        Ok(out)
    }

    pub(super) async fn instance_impl(
        &self,
        mailbox: MailboxId,
        exchange_id: &str,
    ) -> Result<Option<StoredInstance>> {
        let row = sqlx::query(sql(format!(
            "{SELECT_INSTANCE} WHERE i.mailbox_id = ? AND i.exchange_id = ?"
        )))
        .bind(mailbox.0)
        .bind(exchange_id)
        .fetch_optional(&self.pool)
        .await
        .ctx("cannot read an instance")?;
        row.as_ref().map(instance_from_row).transpose()
    }

    pub(super) async fn count_live_impl(
        &self,
        mailbox: MailboxId,
        exchange_ids: &[String],
    ) -> Result<u64> {
        let mut n = 0;
        for chunk in exchange_ids.chunks(500) {
            let marks = vec!["?"; chunk.len()].join(", ");
            let mut q = sqlx::query_scalar::<_, i64>(sql(format!(
                "SELECT COUNT(*) FROM instances WHERE mailbox_id = ? AND exchange_id IN ({marks})"
            )))
            .bind(mailbox.0);
            for id in chunk {
                q = q.bind(id);
            }
            n += count(
                q.fetch_one(&self.pool)
                    .await
                    .ctx("cannot count instances")?,
            );
        }
        Ok(n)
    }

    pub(super) async fn count_instances_impl(&self, mailbox: MailboxId) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM instances WHERE mailbox_id = ?")
            .bind(mailbox.0)
            .fetch_one(&self.pool)
            .await
            .ctx("cannot count instances")?;
        Ok(count(n))
    }

    pub(super) async fn series_masters_impl(
        &self,
        mailbox: MailboxId,
    ) -> Result<Vec<SeriesMaster>> {
        let rows =
            sqlx::query("SELECT * FROM series_masters WHERE mailbox_id = ? ORDER BY exchange_id")
                .bind(mailbox.0)
                .fetch_all(&self.pool)
                .await
                .ctx("cannot read series masters")?;
        rows.iter().map(master_from_row).collect()
    }

    pub(super) async fn cursor_impl(&self, mailbox: MailboxId) -> Result<Option<Cursor>> {
        let c = "cannot read the delta cursor";
        let row = sqlx::query("SELECT * FROM delta_cursors WHERE mailbox_id = ?")
            .bind(mailbox.0)
            .fetch_optional(&self.pool)
            .await
            .ctx(c)?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(Cursor {
            delta_link: row.try_get("delta_link").ctx(c)?,
            window_start: ts(row.try_get("window_start").ctx(c)?)?,
            window_end: ts(row.try_get("window_end").ctx(c)?)?,
            rebased_at: ts(row.try_get("rebased_at").ctx(c)?)?,
        }))
    }

    pub(super) async fn clear_cursor_impl(&self, mailbox: MailboxId) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let done = sqlx::query("DELETE FROM delta_cursors WHERE mailbox_id = ?")
            .bind(mailbox.0)
            .execute(&mut *tx)
            .await
            .ctx("cannot clear the delta cursor")?;
        tx.commit().await.ctx("cannot clear the delta cursor")?;
        Ok(done.rows_affected() > 0)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn pieces_cover_everything_in_few_sizes() {
        for n in 0..300usize {
            let items: Vec<usize> = (0..n).collect();
            let got: Vec<(usize, &[usize])> = super::pieces(&items).collect();
            let flat: Vec<usize> = got.iter().flat_map(|(_, p)| p.iter().copied()).collect();
            assert_eq!(flat, items);
            assert!(got.iter().all(|(at, p)| p.first().is_none_or(|f| f == at)));
            assert!(got.iter().all(|(_, p)| [64, 16, 4, 1].contains(&p.len())));
        }
    }
}
