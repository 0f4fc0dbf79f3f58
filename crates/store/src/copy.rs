//! `calgate store copy`: an SQLite installation moved into an empty PostgreSQL database, row
//! for row, verified by counts.
//!
//! Sealed values (client secrets, private keys, refresh tokens, webhook secrets) are copied as
//! they are: each is bound to its row's random `uid`, not to the database, so they open in the
//! target with the same master key, which the target is opened with. The source is read in one
//! snapshot (a read transaction), so a copy taken while calgate runs is consistent; writes made
//! after it are not in the target.

use std::time::Instant;

use sqlx::Row as _;

use crate::error::{Error, ErrorKind, Result};
use crate::{PgOptions, PgStore, SqliteOptions, SqliteStore};

/// Tables in an order that satisfies their foreign keys. `meta`'s master key check is written
/// by the target itself (same key).
pub(crate) const TABLES: &[&str] = &[
    "meta",
    "connections",
    "credentials",
    "mailboxes",
    "instances",
    "shadow_instances",
    "series_masters",
    "shadow_series_masters",
    "shadows",
    "delta_cursors",
    "sync_status",
    "accounts",
    "sync_leases",
    "api_keys",
    "feeds",
    "bookings",
    "push_outbox",
    "booking_targets",
    "change_log",
    "webhooks",
    "webhook_deliveries",
    "notice_marks",
    "graph_subscriptions",
    "console_sessions",
];

/// Rows per INSERT statement (well under PostgreSQL's 65,535 parameters for every table).
const BATCH: usize = 500;

/// What a copy did: rows per table, all verified equal in source and target.
#[derive(Debug, Clone)]
pub struct CopyReport {
    /// (table, rows), in copy order.
    pub tables: Vec<(String, u64)>,
    pub seconds: f64,
}

impl CopyReport {
    pub fn rows(&self) -> u64 {
        self.tables.iter().map(|(_, n)| n).sum()
    }
}

/// A column's type in the target, which says how to carry its values.
#[derive(Clone, Copy)]
enum Kind {
    Int,
    Text,
    Bytes,
}

/// One value read from SQLite.
enum Value {
    Int(Option<i64>),
    Text(Option<String>),
    Bytes(Option<Vec<u8>>),
}

/// SQLite's instance rows hold Exchange Online's web link of their own id as the empty string
/// (`codec::stored_web_link`); PostgreSQL's hold every link in full.
fn expand_web_links(table: &str, columns: &[(String, Kind)], rows: &mut [Vec<Value>]) {
    if !matches!(table, "instances" | "shadow_instances") {
        return;
    }
    let at = |name: &str| columns.iter().position(|(n, _)| n == name);
    let (Some(link), Some(id)) = (at("web_link"), at("exchange_id")) else {
        return;
    };
    for row in rows {
        let Value::Text(Some(exchange_id)) = &row[id] else {
            continue;
        };
        if let Value::Text(stored @ Some(_)) = &row[link] {
            let full = crate::codec::read_web_link(exchange_id, stored.clone());
            row[link] = Value::Text(full);
        }
    }
}

fn db(what: &str, e: sqlx::Error) -> Error {
    Error::with_source(ErrorKind::Database, format!("{what}: {e}"), e)
}

/// Copies the SQLite store `source` into the PostgreSQL database at `target_url`, which must
/// hold no calgate data (its schema is created when it has none). Refuses a non-empty target
/// with [`ErrorKind::Conflict`] and writes nothing then.
pub async fn copy_sqlite_to_postgres(source: &SqliteStore, target_url: &str) -> Result<CopyReport> {
    let started = Instant::now();
    let key = source.master_key().clone();
    let target = PgStore::open(
        target_url,
        move |_| Ok(key),
        &PgOptions {
            create: true,
            max_connections: Some(2),
            no_migrate: false,
        },
    )
    .await?;
    let pg = target.pool();
    // Refuse a target that holds anything but its own key check.
    for table in TABLES {
        let q = crate::codec::sql(format!(
            "SELECT count(*) FROM {table}{}",
            if *table == "meta" {
                " WHERE key <> 'master_key_check'"
            } else {
                ""
            }
        ));
        let n: i64 = sqlx::query_scalar(q)
            .fetch_one(pg)
            .await
            .map_err(|e| db("cannot read the target", e))?;
        if n > 0 {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!(
                    "the PostgreSQL database {} is not empty ({n} rows in {table}): calgate store copy only fills an empty database — give a new one",
                    target.display()
                ),
            ));
        }
    }
    let mut read = source
        .reader()
        .begin()
        .await
        .map_err(|e| db("cannot read the SQLite store", e))?;
    let mut write = pg
        .begin()
        .await
        .map_err(|e| db("cannot write the PostgreSQL store", e))?;
    let mut tables = Vec::new();
    for table in TABLES {
        let columns: Vec<(String, String, bool)> = sqlx::query(
            "SELECT column_name::text, data_type::text, is_generated::text = 'ALWAYS' \
                 OR is_identity::text = 'YES' AND identity_generation::text = 'ALWAYS' \
             FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
        )
        .bind(table)
        .fetch_all(&mut *write)
        .await
        .map_err(|e| db("cannot read the target's columns", e))?
        .into_iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
        // The source's columns: a target column SQLite lacks (generated there) is left out.
        let source_columns: Vec<String> = sqlx::query_scalar(crate::codec::sql(format!(
            "SELECT name FROM pragma_table_info('{table}')"
        )))
        .fetch_all(&mut *read)
        .await
        .map_err(|e| db("cannot read the source's columns", e))?;
        let columns: Vec<(String, Kind)> = columns
            .into_iter()
            .filter(|(name, _, always)| !always && source_columns.contains(name))
            .map(|(name, ty, _)| {
                let kind = match ty.as_str() {
                    "bigint" | "integer" | "smallint" => Kind::Int,
                    "bytea" => Kind::Bytes,
                    _ => Kind::Text,
                };
                (name, kind)
            })
            .collect();
        let names = columns
            .iter()
            .map(|(n, _)| format!("\"{n}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let filter = if *table == "meta" {
            " WHERE key <> 'master_key_check'"
        } else {
            ""
        };
        let rows = sqlx::query(crate::codec::sql(format!(
            "SELECT {names} FROM {table}{filter} ORDER BY rowid"
        )))
        .fetch_all(&mut *read)
        .await
        .map_err(|e| db(&format!("cannot read {table}"), e))?;
        let mut values: Vec<Vec<Value>> = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut v = Vec::with_capacity(columns.len());
            for (i, (name, kind)) in columns.iter().enumerate() {
                let what = || format!("cannot read {table}.{name}");
                v.push(match kind {
                    Kind::Int => Value::Int(row.try_get(i).map_err(|e| db(&what(), e))?),
                    Kind::Text => Value::Text(row.try_get(i).map_err(|e| db(&what(), e))?),
                    Kind::Bytes => Value::Bytes(row.try_get(i).map_err(|e| db(&what(), e))?),
                });
            }
            values.push(v);
        }
        expand_web_links(table, &columns, &mut values);
        for chunk in values.chunks(BATCH) {
            let mut text = format!("INSERT INTO {table} ({names}) VALUES ");
            let mut n = 0;
            for (r, _) in chunk.iter().enumerate() {
                if r > 0 {
                    text.push_str(", ");
                }
                text.push('(');
                for c in 0..columns.len() {
                    n += 1;
                    if c > 0 {
                        text.push_str(", ");
                    }
                    text.push_str(&format!("${n}"));
                }
                text.push(')');
            }
            let mut q = sqlx::query(crate::codec::sql(text));
            for row in chunk {
                for v in row {
                    q = match v {
                        Value::Int(x) => q.bind(*x),
                        Value::Text(x) => q.bind(x.clone()),
                        Value::Bytes(x) => q.bind(x.clone()),
                    };
                }
            }
            q.execute(&mut *write)
                .await
                .map_err(|e| db(&format!("cannot write {table}"), e))?;
        }
        tables.push((table.to_string(), values.len() as u64));
    }
    // Identity columns continue after the copied ids (and after ids SQLite handed out and
    // whose rows are gone: the change feed's positions must never be reused).
    let sequences: Vec<(String, String)> = sqlx::query(
        "SELECT table_name::text, column_name::text FROM information_schema.columns \
         WHERE table_schema = current_schema() AND is_identity = 'YES'",
    )
    .fetch_all(&mut *write)
    .await
    .map_err(|e| db("cannot read the target's identity columns", e))?
    .into_iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect();
    for (table, column) in sequences {
        let max: Option<i64> = sqlx::query_scalar(crate::codec::sql(format!(
            "SELECT max(\"{column}\") FROM {table}"
        )))
        .fetch_one(&mut *write)
        .await
        .map_err(|e| db("cannot read the copied ids", e))?;
        let handed_out: Option<i64> =
            sqlx::query_scalar("SELECT seq FROM sqlite_sequence WHERE name = ?")
                .bind(&table)
                .fetch_optional(&mut *read)
                .await
                .map_err(|e| db("cannot read SQLite's sequences", e))?;
        let last = max.unwrap_or(0).max(handed_out.unwrap_or(0));
        if last > 0 {
            sqlx::query("SELECT setval(pg_get_serial_sequence($1, $2), $3)")
                .bind(&table)
                .bind(&column)
                .bind(last)
                .execute(&mut *write)
                .await
                .map_err(|e| db("cannot continue the target's ids", e))?;
        }
    }
    // Verified by counts, inside the transaction: a mismatch rolls everything back.
    for (table, copied) in &tables {
        let filter = if table == "meta" {
            " WHERE key <> 'master_key_check'"
        } else {
            ""
        };
        let q = || crate::codec::sql(format!("SELECT count(*) FROM {table}{filter}"));
        let source_n: i64 = sqlx::query_scalar(q())
            .fetch_one(&mut *read)
            .await
            .map_err(|e| db("cannot count the source", e))?;
        let target_n: i64 = sqlx::query_scalar(q())
            .fetch_one(&mut *write)
            .await
            .map_err(|e| db("cannot count the target", e))?;
        if source_n != target_n || u64::try_from(target_n).ok() != Some(*copied) {
            return Err(Error::new(
                ErrorKind::Database,
                format!(
                    "the copy of {table} does not add up (source {source_n} rows, target {target_n}): nothing was kept"
                ),
            ));
        }
    }
    write
        .commit()
        .await
        .map_err(|e| db("cannot commit the copy", e))?;
    let _ = read.rollback().await;
    target.pool().close().await;
    Ok(CopyReport {
        tables,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Copies the store at `from` (a data directory or `sqlite://FILE`, opened as every command
/// opens it) into the empty PostgreSQL database at `to`.
pub async fn copy_store(from: &str, to: &str) -> Result<CopyReport> {
    let (file, key_dir) = match crate::Location::parse(from)? {
        crate::Location::Sqlite { file, key_dir, .. } => (file, key_dir),
        crate::Location::Postgres(_) => {
            return Err(Error::new(
                ErrorKind::Unsupported,
                "calgate store copy moves an SQLite installation (a data directory or sqlite://FILE) into PostgreSQL; to copy a PostgreSQL database, use pg_dump",
            ));
        }
    };
    match crate::Location::parse(to)? {
        crate::Location::Postgres(_) => {}
        crate::Location::Sqlite { .. } => {
            return Err(Error::invalid(
                "calgate store copy --to takes a postgres:// URL",
            ));
        }
    }
    if !file.is_file() {
        return Err(Error::new(
            ErrorKind::Missing,
            format!("there is no calgate database at {}", file.display()),
        ));
    }
    let key_file = key_dir.join(crate::MASTER_KEY_FILE);
    let source = SqliteStore::open(
        &file,
        move |_| match crate::MasterKey::env_value()? {
            Some(text) => crate::MasterKey::from_base64(&text, crate::MASTER_KEY_ENV),
            None => crate::MasterKey::load_existing(&key_file),
        },
        &SqliteOptions::default(),
    )
    .await?;
    let report = copy_sqlite_to_postgres(&source, to).await;
    crate::Store::close(&source).await;
    report
}
