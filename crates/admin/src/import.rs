//! Bulk linking from CSV: `calgate mailbox import FILE.csv [--dry-run] [--json]`.
//!
//! The file has a header row naming the contract's columns
//! (`address,kind,connection,external_id,privacy`, any order; only `address` and `connection`
//! are required). Every data row gets exactly one [`RowResult`]:
//!
//! - rows that cannot be read (malformed address, unknown kind or privacy, unknown connection,
//!   a repeated address, the wrong number of columns) are **bad rows** and never reach Graph;
//! - the others are **verified first** against Exchange with the connection's app (directory
//!   lookup, a one-minute calendar read, the mailbox's `userPurpose` or Graph's room list),
//!   with bounded concurrency ([`ImportOptions::concurrency`]; the Graph client keeps ≤ 4
//!   requests per mailbox);
//! - only a fully verified row is written, in **one** store call ([`Store::link_mailbox`]), so
//!   no row is ever half-linked. A row that is already linked exactly so is not written at all:
//!   a second import changes nothing. `--dry-run` verifies and reports but writes nothing.
//!
//! A row whose verification failed for a transient reason (throttling, Graph or the network
//! unavailable, the connection unable to sign in) is reported as `not-verified` and left
//! unlinked: run the import again later.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use calgate_core::{MailboxKind, PrivacyPolicy};
use calgate_graph::Shared;

use crate::probe::{ConnectionProbe, Problem, Verdict, probe_mailbox};
use calgate_store::{Mailbox, NewMailbox, Store};
use serde::Serialize;
use tokio::sync::Semaphore;

/// The contract's columns, in their documented order.
pub const COLUMNS: [&str; 5] = ["address", "kind", "connection", "external_id", "privacy"];

/// Verifications in flight at once (the Graph client adds its own ≤ 4 per mailbox).
pub const DEFAULT_CONCURRENCY: usize = 8;

/// How to run an import.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Verify and report, but write nothing.
    pub dry_run: bool,
    /// Rows verified at once (at least 1).
    pub concurrency: usize,
    /// The connection for rows whose `connection` cell is empty (or when the file has no
    /// `connection` column).
    pub default_connection: Option<String>,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            dry_run: false,
            concurrency: DEFAULT_CONCURRENCY,
            default_connection: None,
        }
    }
}

/// Why an import could not run at all (per-row problems are [`RowResult`]s instead).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The file is not a CSV calgate can read (no header, unknown column, not UTF-8, …).
    #[error("{0}")]
    Format(String),
    #[error("{message}")]
    Store {
        message: String,
        #[source]
        source: calgate_store::Error,
    },
}

impl ImportError {
    fn store(e: calgate_store::Error, linked_so_far: usize) -> ImportError {
        let message = if linked_so_far == 0 {
            format!("calgate's database failed: {e}")
        } else {
            format!(
                "calgate's database failed after {linked_so_far} rows were written: {e} — fix it and run the import again (written rows are complete and are kept; a re-import skips them)"
            )
        };
        ImportError::Store { message, source: e }
    }
}

/// What happened to one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Verified and linked (with `--dry-run`: would be linked).
    Linked,
    /// Was linked to the same connection; kind, external id or privacy changed.
    Updated,
    /// Already linked exactly so: nothing to do.
    AlreadyLinked,
    /// Exchange has no such mailbox.
    NotFound,
    /// The mailbox exists but the connection's app may not open it (RBAC scope, access
    /// policy, missing calendar permission).
    OutOfScope,
    /// The file's kind contradicts Exchange's.
    WrongKind,
    /// The row itself is wrong: malformed address, unknown kind/privacy/connection, repeated
    /// address, wrong column count, or linked to another connection.
    BadRow,
    /// Verification failed for a transient reason (throttled, unreachable, sign-in failed):
    /// not linked, retry later.
    NotVerified,
}

impl Outcome {
    /// Every outcome, in report order.
    pub const ALL: [Outcome; 8] = [
        Outcome::Linked,
        Outcome::Updated,
        Outcome::AlreadyLinked,
        Outcome::NotFound,
        Outcome::OutOfScope,
        Outcome::WrongKind,
        Outcome::BadRow,
        Outcome::NotVerified,
    ];

    /// The words of the text report.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Linked => "linked",
            Outcome::Updated => "updated",
            Outcome::AlreadyLinked => "already linked",
            Outcome::NotFound => "not found",
            Outcome::OutOfScope => "out of scope",
            Outcome::WrongKind => "wrong kind",
            Outcome::BadRow => "bad row",
            Outcome::NotVerified => "not verified — retry",
        }
    }

    /// Whether the row ends up linked as the file says.
    pub fn is_ok(self) -> bool {
        matches!(
            self,
            Outcome::Linked | Outcome::Updated | Outcome::AlreadyLinked
        )
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The result of one CSV row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowResult {
    /// The row's line in the file (the header is line 1).
    pub line: u64,
    /// As written in the file (trimmed).
    pub address: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
    /// The kind linked (or that would be linked), as verified with Exchange.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<MailboxKind>,
    pub outcome: Outcome,
    /// One line in an administrator's words; for failures, what to do.
    pub reason: String,
    /// Microsoft's error code behind a failure (`ErrorAccessDenied`, `AADSTS7000215`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Graph's or Entra ID's full explanation behind a failure, with the fix (JSON only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// How many rows ended how.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportSummary {
    pub rows: usize,
    pub linked: usize,
    pub updated: usize,
    pub already_linked: usize,
    pub not_found: usize,
    pub out_of_scope: usize,
    pub wrong_kind: usize,
    pub bad_row: usize,
    pub not_verified: usize,
}

impl ImportSummary {
    /// The count of one outcome.
    pub fn count(&self, o: Outcome) -> usize {
        match o {
            Outcome::Linked => self.linked,
            Outcome::Updated => self.updated,
            Outcome::AlreadyLinked => self.already_linked,
            Outcome::NotFound => self.not_found,
            Outcome::OutOfScope => self.out_of_scope,
            Outcome::WrongKind => self.wrong_kind,
            Outcome::BadRow => self.bad_row,
            Outcome::NotVerified => self.not_verified,
        }
    }

    fn add(&mut self, o: Outcome) {
        self.rows += 1;
        let slot = match o {
            Outcome::Linked => &mut self.linked,
            Outcome::Updated => &mut self.updated,
            Outcome::AlreadyLinked => &mut self.already_linked,
            Outcome::NotFound => &mut self.not_found,
            Outcome::OutOfScope => &mut self.out_of_scope,
            Outcome::WrongKind => &mut self.wrong_kind,
            Outcome::BadRow => &mut self.bad_row,
            Outcome::NotVerified => &mut self.not_verified,
        };
        *slot += 1;
    }
}

/// The whole import: one result per data row, in file order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    pub dry_run: bool,
    pub summary: ImportSummary,
    pub rows: Vec<RowResult>,
}

impl ImportReport {
    fn new(dry_run: bool, rows: Vec<RowResult>) -> ImportReport {
        let mut summary = ImportSummary::default();
        for r in &rows {
            summary.add(r.outcome);
        }
        ImportReport {
            dry_run,
            summary,
            rows,
        }
    }

    /// Whether every row is linked as the file says (the CLI exits 0 only then).
    pub fn passed(&self) -> bool {
        self.rows.iter().all(|r| r.outcome.is_ok())
    }

    /// The rows that ended with `outcome`.
    pub fn rows_with(&self, outcome: Outcome) -> impl Iterator<Item = &RowResult> {
        self.rows.iter().filter(move |r| r.outcome == outcome)
    }

    /// The report as JSON (`--json`).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// One counts line: `1000 rows: 880 linked, 20 not found, …` (outcomes with no rows left
    /// out).
    pub fn summary_line(&self) -> String {
        let parts: Vec<String> = Outcome::ALL
            .iter()
            .filter(|o| self.summary.count(**o) > 0)
            .map(|o| format!("{} {}", self.summary.count(*o), o.as_str()))
            .collect();
        let rows = self.summary.rows;
        let noun = if rows == 1 { "row" } else { "rows" };
        let mut line = if parts.is_empty() {
            format!("{rows} {noun}")
        } else {
            format!("{rows} {noun}: {}", parts.join(", "))
        };
        if self.dry_run {
            line.push_str(" (dry run: nothing was written)");
        }
        line
    }

    /// The text report: a table, one line per row, then the counts.
    pub fn render_text(&self) -> String {
        let headers = ["LINE", "ADDRESS", "CONNECTION", "KIND", "OUTCOME", "REASON"];
        let cells: Vec<[String; 6]> = self
            .rows
            .iter()
            .map(|r| {
                [
                    r.line.to_string(),
                    r.address.clone(),
                    r.connection.clone().unwrap_or_else(|| "-".to_owned()),
                    r.kind.map_or("-", MailboxKind::as_str).to_owned(),
                    r.outcome.as_str().to_owned(),
                    r.reason.clone(),
                ]
            })
            .collect();
        let mut out = String::new();
        if self.dry_run {
            out.push_str("Dry run: rows are verified, nothing is written.\n");
        }
        out.push_str(&table(&headers, &cells));
        out.push_str(&self.summary_line());
        out.push('\n');
        out
    }
}

/// Renders rows as left-aligned columns (the last column is not padded).
pub(crate) fn table<const N: usize>(headers: &[&str; N], rows: &[[String; N]]) -> String {
    let mut widths = [0usize; N];
    for (i, h) in headers.iter().enumerate() {
        widths[i] = h.chars().count();
    }
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut s = String::new();
        for (i, c) in cells.enumerate() {
            if i + 1 == N {
                s.push_str(c);
            } else {
                let pad = widths[i].saturating_sub(c.chars().count());
                let _ = write!(s, "{c}{}  ", " ".repeat(pad));
            }
        }
        out.push_str(s.trim_end());
        out.push('\n');
    };
    line(&mut headers.iter().copied());
    for r in rows {
        line(&mut r.iter().map(String::as_str));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Entry points
// ---------------------------------------------------------------------------------------------

/// Imports the CSV file at `path` (see the module docs).
pub async fn import_file(
    store: &dyn Store,
    shared: &Shared,
    path: &Path,
    opts: &ImportOptions,
) -> Result<ImportReport, ImportError> {
    use tokio::io::AsyncReadExt as _;
    let read_error = |e| ImportError::Read {
        path: path.display().to_string(),
        source: e,
    };
    let file = tokio::fs::File::open(path).await.map_err(read_error)?;
    // Read at most one byte past the limit: a huge file (or /dev/zero) is refused, not loaded.
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .await
        .map_err(read_error)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(ImportError::Format(format!(
            "{} is larger than {} MB: split it into several files and import them one by one",
            path.display(),
            MAX_FILE_BYTES / 1_000_000
        )));
    }
    import_bytes(store, shared, &bytes, opts).await
}

/// The largest CSV file `import_file` reads (about 100,000 rows of long addresses).
pub const MAX_FILE_BYTES: u64 = 10_000_000;

/// Imports CSV data (see the module docs).
pub async fn import_bytes(
    store: &dyn Store,
    shared: &Shared,
    csv_data: &[u8],
    opts: &ImportOptions,
) -> Result<ImportReport, ImportError> {
    if csv_data.len() as u64 > MAX_FILE_BYTES {
        return Err(ImportError::Format(format!(
            "the data is larger than {} MB: split it into several files and import them one by one",
            MAX_FILE_BYTES / 1_000_000
        )));
    }
    let text = std::str::from_utf8(csv_data).map_err(|e| {
        ImportError::Format(format!(
            "the file is not UTF-8 text (byte {}): save it as \"CSV UTF-8 (comma delimited)\"",
            e.valid_up_to() + 1
        ))
    })?;
    let connections: HashMap<String, calgate_store::Connection> = store
        .list_connections()
        .await
        .map_err(|e| ImportError::store(e, 0))?
        .into_iter()
        .map(|c| (c.name.clone(), c))
        .collect();
    let existing: HashMap<String, Mailbox> = store
        .list_mailboxes()
        .await
        .map_err(|e| ImportError::store(e, 0))?
        .into_iter()
        .map(|m| (m.address.to_lowercase(), m))
        .collect();

    let parsed = parse(text, opts.default_connection.as_deref())?;

    // Rows that can be checked without Graph: unknown connection, linked elsewhere.
    let mut known: Vec<&str> = connections.keys().map(String::as_str).collect();
    known.sort_unstable();
    let mut slots: Vec<Slot> = Vec::with_capacity(parsed.len());
    for p in parsed {
        let row = match p {
            Err(bad) => {
                slots.push(Slot::Done(bad));
                continue;
            }
            Ok(row) => row,
        };
        if !connections.contains_key(&row.connection) {
            let known = if known.is_empty() {
                "there are none yet".to_owned()
            } else {
                format!("known: {}", known.join(", "))
            };
            let reason = format!(
                "unknown connection '{}' ({known}): fix the connection column or add it with `calgate connection add {}`",
                row.connection, row.connection
            );
            slots.push(Slot::Done(row.result(Outcome::BadRow, reason)));
            continue;
        }
        if let Some(m) = existing.get(&row.address.to_lowercase())
            && m.connection != row.connection
        {
            let reason = format!(
                "already linked to connection '{}': to move it, run `calgate mailbox unlink {}` first",
                m.connection, m.address
            );
            slots.push(Slot::Done(row.result(Outcome::BadRow, reason)));
            continue;
        }
        slots.push(Slot::Pending(row));
    }

    // Verify the rest against Exchange, a bounded number at once.
    let mut contexts: HashMap<String, Arc<ConnectionProbe>> = HashMap::new();
    for s in &slots {
        if let Slot::Pending(row) = s
            && !contexts.contains_key(&row.connection)
            && let Some(c) = connections.get(&row.connection)
        {
            let ctx = ConnectionProbe::prepare(c, shared).await;
            contexts.insert(row.connection.clone(), Arc::new(ctx));
        }
    }
    let semaphore = Arc::new(Semaphore::new(opts.concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, s) in slots.iter().enumerate() {
        let Slot::Pending(row) = s else { continue };
        let Some(ctx) = contexts.get(&row.connection).cloned() else {
            continue;
        };
        let row = row.clone();
        let Ok(permit) = semaphore.clone().acquire_owned().await else {
            break;
        };
        tasks.spawn(async move {
            let verdict = probe_mailbox(&ctx, &row.address, row.kind).await;
            drop(permit);
            (i, verdict)
        });
    }
    let mut verdicts: HashMap<usize, Verdict> = HashMap::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((i, v)) => {
                verdicts.insert(i, v);
            }
            Err(e) => {
                tracing::warn!(error = %e, "a verification task failed");
            }
        }
    }

    // Write the verified rows, one store call each, in file order.
    let mut results = Vec::with_capacity(slots.len());
    let mut written = 0usize;
    for (i, s) in slots.into_iter().enumerate() {
        let row = match s {
            Slot::Done(r) => {
                results.push(r);
                continue;
            }
            Slot::Pending(row) => row,
        };
        let verdict = verdicts.remove(&i).unwrap_or_else(|| Verdict::Failed {
            problem: Problem::NotVerified,
            reason: "verification did not finish: run the import again".to_owned(),
            code: None,
            detail: None,
        });
        let (kind, how) = match verdict {
            Verdict::Failed {
                problem,
                reason,
                code,
                detail,
            } => {
                let outcome = match problem {
                    Problem::NotFound => Outcome::NotFound,
                    Problem::OutOfScope => Outcome::OutOfScope,
                    Problem::WrongKind => Outcome::WrongKind,
                    Problem::NotVerified => Outcome::NotVerified,
                };
                let mut r = row.result(outcome, reason);
                r.code = code;
                r.detail = detail;
                results.push(r);
                continue;
            }
            Verdict::Verified { kind, how } => (kind, how),
        };
        let current = existing.get(&row.address.to_lowercase());
        let changes = current.map(|m| differences(m, kind, &row));
        let (outcome, reason) = match &changes {
            Some(c) if c.is_empty() => (
                Outcome::AlreadyLinked,
                format!("already linked as {} (nothing to do)", kind.as_str()),
            ),
            Some(c) if opts.dry_run => (
                Outcome::Updated,
                format!("would be updated: {} (dry run)", c.join(", ")),
            ),
            Some(c) => (Outcome::Updated, format!("updated: {}", c.join(", "))),
            None if opts.dry_run => (
                Outcome::Linked,
                format!("would be linked as {} ({how}; dry run)", kind.as_str()),
            ),
            None => (
                Outcome::Linked,
                format!("linked as {} ({how})", kind.as_str()),
            ),
        };
        if outcome != Outcome::AlreadyLinked && !opts.dry_run {
            let new = NewMailbox {
                address: row.address.clone(),
                connection: row.connection.clone(),
                kind: Some(kind),
                external_id: row.external_id.clone(),
                privacy: row.privacy,
            };
            match store.link_mailbox(&new).await {
                Ok(_) => written += 1,
                Err(e)
                    if matches!(
                        e.kind(),
                        calgate_store::ErrorKind::Conflict
                            | calgate_store::ErrorKind::NotFound
                            | calgate_store::ErrorKind::InvalidData
                    ) =>
                {
                    let mut r = row.result(Outcome::BadRow, format!("not linked: {e}"));
                    r.kind = Some(kind);
                    results.push(r);
                    continue;
                }
                Err(e) => return Err(ImportError::store(e, written)),
            }
        }
        let mut r = row.result(outcome, reason);
        r.kind = Some(kind);
        results.push(r);
    }
    Ok(ImportReport::new(opts.dry_run, results))
}

/// What differs between a stored mailbox and a verified row, in words; empty = nothing.
fn differences(m: &Mailbox, kind: MailboxKind, row: &Row) -> Vec<String> {
    let mut out = Vec::new();
    if m.kind != kind {
        out.push(format!("kind {} → {}", m.kind.as_str(), kind.as_str()));
    }
    if let Some(e) = &row.external_id
        && m.external_id.as_ref() != Some(e)
    {
        let show = |v: &Option<String>| {
            v.as_deref()
                .map_or("(none)".to_owned(), |s| format!("'{s}'"))
        };
        out.push(format!(
            "external id {} → {}",
            show(&m.external_id),
            show(&row.external_id)
        ));
    }
    if let Some(p) = row.privacy
        && m.privacy != p
    {
        out.push(format!("privacy {} → {}", m.privacy.as_str(), p.as_str()));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

/// A row that passed parsing.
#[derive(Debug, Clone)]
struct Row {
    line: u64,
    address: String,
    kind: Option<MailboxKind>,
    connection: String,
    external_id: Option<String>,
    /// `None`: not given (a new mailbox gets `full`, a linked one keeps its policy).
    privacy: Option<PrivacyPolicy>,
}

impl Row {
    fn result(&self, outcome: Outcome, reason: String) -> RowResult {
        RowResult {
            line: self.line,
            address: self.address.clone(),
            connection: Some(self.connection.clone()),
            kind: None,
            outcome,
            reason,
            code: None,
            detail: None,
        }
    }
}

enum Slot {
    Done(RowResult),
    Pending(Row),
}

fn bad(line: u64, address: &str, connection: Option<&str>, reason: String) -> RowResult {
    RowResult {
        line,
        address: address.to_owned(),
        connection: connection.filter(|c| !c.is_empty()).map(str::to_owned),
        kind: None,
        outcome: Outcome::BadRow,
        reason,
        code: None,
        detail: None,
    }
}

/// Column positions found in the header.
struct Header {
    len: usize,
    address: usize,
    kind: Option<usize>,
    connection: Option<usize>,
    external_id: Option<usize>,
    privacy: Option<usize>,
}

fn parse_header(record: &csv::StringRecord) -> Result<Header, ImportError> {
    let expected = COLUMNS.join(",");
    let first = record.get(0).unwrap_or("").trim();
    if first.contains('@') {
        return Err(ImportError::Format(format!(
            "the first line must be the header row `{expected}`, but it looks like data ('{first}'): add the header line"
        )));
    }
    let mut cols: [Option<usize>; 5] = [None; 5];
    for (i, name) in record.iter().enumerate() {
        let norm = name.trim().to_ascii_lowercase().replace(['-', ' '], "_");
        let norm = match norm.as_str() {
            "externalid" => "external_id".to_owned(),
            _ => norm,
        };
        let Some(pos) = COLUMNS.iter().position(|c| *c == norm) else {
            return Err(ImportError::Format(format!(
                "unknown column '{}' in the header row: the columns are {expected}",
                name.trim()
            )));
        };
        if cols[pos].is_some() {
            return Err(ImportError::Format(format!(
                "column '{}' appears twice in the header row: the columns are {expected}",
                COLUMNS[pos]
            )));
        }
        cols[pos] = Some(i);
    }
    let Some(address) = cols[0] else {
        return Err(ImportError::Format(format!(
            "the header row has no 'address' column: the first line must be `{expected}`"
        )));
    };
    Ok(Header {
        len: record.len(),
        address,
        kind: cols[1],
        connection: cols[2],
        external_id: cols[3],
        privacy: cols[4],
    })
}

/// Reads the file into rows (good or bad), in file order. A missing or unreadable header is an
/// error for the whole file.
fn parse(
    text: &str,
    default_connection: Option<&str>,
) -> Result<Vec<Result<Row, RowResult>>, ImportError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .comment(Some(b'#'))
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut records = reader.records();
    let header = loop {
        match records.next() {
            None => {
                return Err(ImportError::Format(format!(
                    "the file is empty: its first line must be the header row `{}`",
                    COLUMNS.join(",")
                )));
            }
            Some(Err(e)) => {
                return Err(ImportError::Format(format!(
                    "cannot read the header row: {e}"
                )));
            }
            Some(Ok(r)) if r.iter().all(str::is_empty) => continue,
            Some(Ok(r)) => break parse_header(&r)?,
        }
    };
    if header.connection.is_none() && default_connection.is_none() {
        return Err(ImportError::Format(format!(
            "the header row has no 'connection' column: add it (`{}`) or name the connection for every row with --connection",
            COLUMNS.join(",")
        )));
    }
    let mut out = Vec::new();
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut fallback_line = 1u64;
    for rec in records {
        fallback_line += 1;
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(fallback_line, |p| p.line());
                out.push(Err(bad(line, "", None, format!("unreadable row: {e}"))));
                continue;
            }
        };
        let line = rec.position().map_or(fallback_line, |p| p.line());
        if rec.iter().all(str::is_empty) {
            continue;
        }
        let cell = |i: Option<usize>| i.and_then(|i| rec.get(i)).unwrap_or("");
        let address = cell(Some(header.address));
        let connection = match cell(header.connection) {
            "" => default_connection.unwrap_or(""),
            c => c,
        };
        if rec.len() != header.len {
            out.push(Err(bad(
                line,
                address,
                Some(connection),
                format!(
                    "{} column{} where the header has {}: quote values that contain commas",
                    rec.len(),
                    if rec.len() == 1 { "" } else { "s" },
                    header.len
                ),
            )));
            continue;
        }
        if let Err(why) = check_address(address) {
            out.push(Err(bad(line, address, Some(connection), why)));
            continue;
        }
        // An address counts from its first well-formed row on, even if that row is bad for
        // another reason: the administrator fixes that row, not a later one.
        let key = address.to_lowercase();
        if let Some(first) = seen.get(&key) {
            out.push(Err(bad(
                line,
                address,
                Some(connection),
                format!("duplicate of line {first}: list each address once"),
            )));
            continue;
        }
        seen.insert(key, line);
        let kind = match cell(header.kind) {
            "" => None,
            k => match k.to_ascii_lowercase().parse::<MailboxKind>() {
                Ok(k) => Some(k),
                Err(why) => {
                    out.push(Err(bad(
                        line,
                        address,
                        Some(connection),
                        format!("{why}; leave it empty to detect it"),
                    )));
                    continue;
                }
            },
        };
        let privacy = match cell(header.privacy) {
            "" => None,
            p => match p.to_ascii_lowercase().parse::<PrivacyPolicy>() {
                Ok(p) => Some(p),
                Err(why) => {
                    out.push(Err(bad(line, address, Some(connection), why)));
                    continue;
                }
            },
        };
        if connection.is_empty() {
            out.push(Err(bad(
                line,
                address,
                None,
                "the connection is empty: fill the connection column (see `calgate connection list`)"
                    .to_owned(),
            )));
            continue;
        }
        let external_id = match cell(header.external_id) {
            "" => None,
            e => Some(e.to_owned()),
        };
        out.push(Ok(Row {
            line,
            address: address.to_owned(),
            kind,
            connection: connection.to_owned(),
            external_id,
            privacy,
        }));
    }
    Ok(out)
}

/// The one address check of calgate (`calgate_core::check_address`), in the report's words.
fn check_address(a: &str) -> Result<(), String> {
    calgate_core::check_address(a).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(text: &str) -> Vec<Result<Row, RowResult>> {
        parse(text, None).expect("parses")
    }

    #[test]
    fn header_is_required_and_checked() {
        let e = parse("anna@contoso.example,user,c,,\n", None).expect_err("no header");
        assert!(e.to_string().contains("header"), "{e}");
        let e = parse("address,kind,conection\n", None).expect_err("typo");
        assert!(e.to_string().contains("unknown column 'conection'"), "{e}");
        let e = parse("", None).expect_err("empty");
        assert!(e.to_string().contains("empty"), "{e}");
        let e = parse("address,kind\n", None).expect_err("no connection");
        assert!(e.to_string().contains("connection"), "{e}");
        assert!(parse("address,kind\n", Some("c")).is_ok());
        // Any order, BOM, case and spacing.
        let r = rows("\u{feff}Privacy, Address ,connection\nbusy-only,a@b.example,c\n");
        let row = r[0].as_ref().expect("good row");
        assert_eq!(row.address, "a@b.example");
        assert_eq!(row.privacy, Some(PrivacyPolicy::BusyOnly));
        assert_eq!(row.line, 2);
    }

    #[test]
    fn bad_rows_are_classified_with_reasons() {
        let text = "address,kind,connection,external_id,privacy\n\
                    ok@contoso.example,,c,,\n\
                    not-an-address,user,c,,\n\
                    x@contoso.example,desk,c,,\n\
                    y@contoso.example,user,c,,secret\n\
                    z@contoso.example,user,c\n\
                    OK@contoso.example,user,c,,\n\
                    # a comment\n\
                    \n\
                    w@contoso.example,,,,\n\
                    \"q@contoso.example\",\"room\",\"c\",\"ext,1\",\"full\"\n";
        let r = rows(text);
        assert_eq!(r.len(), 8, "{r:?}");
        assert!(r[0].is_ok());
        let reason = |i: usize| r[i].as_ref().expect_err("bad").reason.clone();
        assert!(reason(1).contains("no '@'"), "{}", reason(1));
        assert!(
            reason(2).contains("unknown mailbox kind 'desk'"),
            "{}",
            reason(2)
        );
        assert!(
            reason(3).contains("unknown privacy policy 'secret'"),
            "{}",
            reason(3)
        );
        assert!(
            reason(4).contains("3 columns where the header has 5"),
            "{}",
            reason(4)
        );
        assert!(reason(5).contains("duplicate of line 2"), "{}", reason(5));
        assert_eq!(r[5].as_ref().expect_err("bad").line, 7);
        assert!(reason(6).contains("connection is empty"), "{}", reason(6));
        let q = r[7].as_ref().expect("quoted row");
        assert_eq!(q.external_id.as_deref(), Some("ext,1"));
        assert_eq!(q.kind, Some(MailboxKind::Room));
    }

    #[test]
    fn addresses() {
        for good in [
            "a@b.example",
            "first.last+tag@contoso.example",
            "o'connor@x.example",
        ] {
            assert!(check_address(good).is_ok(), "{good}");
        }
        for badly in [
            "",
            "a b@c.example",
            "a@b",
            "@b.example",
            "a@@b.example",
            "a@b..example",
            "a@-b.example",
            ".a@b.example",
            "<a@b.example>",
        ] {
            assert!(check_address(badly).is_err(), "{badly}");
        }
    }

    #[test]
    fn text_report_has_a_line_per_row_and_counts() {
        let rows = vec![
            RowResult {
                line: 2,
                address: "a@b.example".into(),
                connection: Some("c".into()),
                kind: Some(MailboxKind::Room),
                outcome: Outcome::Linked,
                reason: "linked as room".into(),
                code: None,
                detail: None,
            },
            RowResult {
                line: 3,
                address: "nobody@b.example".into(),
                connection: Some("c".into()),
                kind: None,
                outcome: Outcome::NotFound,
                reason: "no such mailbox".into(),
                code: Some("ErrorInvalidUser".into()),
                detail: None,
            },
        ];
        let report = ImportReport::new(false, rows);
        let text = report.render_text();
        assert_eq!(text.lines().count(), 4, "{text}");
        assert!(
            text.contains("a@b.example       c           room  linked"),
            "{text}"
        );
        assert!(text.ends_with("2 rows: 1 linked, 1 not found\n"), "{text}");
        assert!(!report.passed());
        let json = report.to_json();
        assert_eq!(json["rows"][1]["outcome"], "not-found");
        assert_eq!(json["summary"]["not_found"], 1);
        assert_eq!(json["rows"][0]["kind"], "room");
    }
}
