//! The hot write path of sync rounds (a page of changes into the live or the shadow set) on a
//! connection of its own, owned by a thread of its own, through rusqlite.
//!
//! Through sqlx every statement is a hand-off to the connection's thread and back (two thread
//! wake-ups; a first sync stores ~30 statements per mailbox, and the wake-ups were the largest
//! single cost of calgate's CPU in the profile of issue 11). Here a whole transaction is one
//! job: one hand-off in, one back, its statements prepared once on this connection and bound
//! in place.
//!
//! Jobs queue on a channel; the writer thread takes the store's write gate itself (so this
//! connection and the sqlx writer never compete inside the process) and runs the jobs queued
//! behind the first one while it holds it, up to [`JOBS_PER_TURN`]. When the callers took the
//! gate, the writer — the serial part of a first sync — waited between one job's end and the
//! next one's start for the next caller's task to be woken and polled on a busy runtime
//! worker. Other processes meet the busy timeout, as on every connection.

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::{BUSY_TIMEOUT, SQLITE_CORRUPT, SQLITE_NOTADB};
use crate::error::{Error, ErrorKind, Result};

/// A job gets the connection, or `None` once the store was closed.
type Job = Box<dyn FnOnce(&mut Writer) + Send>;

/// What the writer thread owns.
struct Writer {
    conn: Option<Connection>,
    checkpointer: Option<Checkpointer>,
}

/// The writer thread's handle: jobs go in, each job sends its own answer back.
pub(super) struct BulkWriter {
    jobs: mpsc::Sender<Job>,
}

/// Jobs the writer runs in one turn of the write gate when they are queued already; then the
/// process's other writers queued on the gate (first come, first served) go first.
const JOBS_PER_TURN: usize = 32;

impl BulkWriter {
    /// Opens the connection on a new thread, whose jobs run while it holds `gate` (the store's
    /// write gate); the thread ends when the store is dropped.
    pub(super) fn start(
        file: &Path,
        max_page_count: Option<u64>,
        gate: Arc<tokio::sync::Mutex<()>>,
    ) -> Result<BulkWriter> {
        let what = format!("cannot open the database {}", file.display());
        let conn = open(file, max_page_count).map_err(|e| map(&what, e))?;
        conn.pragma_update(None, "wal_autocheckpoint", WRITER_AUTOCHECKPOINT)
            .map_err(|e| map(&what, e))?;
        let checkpointer = Some(Checkpointer::start(file, &what)?);
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("calgate-writer".into())
            .spawn(move || {
                let mut w = Writer {
                    conn: Some(conn),
                    checkpointer,
                };
                while let Ok(first) = queue.recv() {
                    // A plain thread, not a runtime's: blocking here is what it is for.
                    let turn = gate.blocking_lock();
                    let queued = std::iter::from_fn(|| queue.try_recv().ok());
                    for job in std::iter::once(first).chain(queued).take(JOBS_PER_TURN) {
                        job(&mut w);
                        // A job's transaction ends with it (commit, or rollback when dropped);
                        // a connection left inside one (a failed ROLLBACK) must not carry it
                        // over.
                        if let Some(c) = &w.conn
                            && !c.is_autocommit()
                            && c.execute_batch("ROLLBACK").is_err()
                        {
                            tracing::warn!("the writer's connection is stuck in a transaction");
                        }
                    }
                    drop(turn);
                    if let Some(cp) = &w.checkpointer {
                        cp.nudge();
                    }
                }
                if let Some(cp) = w.checkpointer.take() {
                    cp.stop();
                }
            })
            .map_err(|e| Error::io("cannot start the database writer thread", e))?;
        Ok(BulkWriter { jobs })
    }

    /// Runs `job` in its own transaction on the writer's connection, under the store's write
    /// gate, which the writer thread takes. The job runs even when the caller stops waiting.
    pub(super) async fn run<T: Send + 'static, J>(&self, job: J) -> Result<T>
    where
        J: FnOnce(&rusqlite::Transaction<'_>) -> Result<T> + Send + 'static,
    {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |w: &mut Writer| {
            let result = match &mut w.conn {
                Some(conn) => in_transaction(conn, job),
                None => Err(Error::new(ErrorKind::Database, "the store was closed")),
            };
            let _ = answer.send(result);
        });
        self.jobs.send(job).map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }

    /// Closes the connection once the jobs before have run (later jobs fail).
    pub(super) async fn close(&self) {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |w: &mut Writer| {
            // The checkpointer's connection first, then the writer's (the sqlx pool's close
            // after: the last connection to close removes the WAL).
            if let Some(cp) = w.checkpointer.take() {
                cp.stop();
            }
            if let Some(c) = w.conn.take()
                && let Err((_, e)) = c.close()
            {
                tracing::warn!(error = %e, "could not close the writer's connection");
            }
            let _ = answer.send(());
        });
        if self.jobs.send(job).is_ok() {
            let _ = answered.await;
        }
    }
}

/// WAL pages past which a commit of the writer checkpoints by itself: a backstop, the
/// checkpointer keeps the WAL far below (64 MiB at 4 KiB pages; SQLite's default is 1,000).
const WRITER_AUTOCHECKPOINT: i64 = 16_384;
/// Least time between two checkpoints of the checkpointer. At 100 ms the WAL outgrew
/// [`WRITER_AUTOCHECKPOINT`] in a first sync (a page per transaction: ~4 % of the writer's
/// time went to checkpoints of its own), and its pages took longer to find in the WAL; at 20 ms
/// a first sync of 2,000 mailboxes ran 8.96/8.48/8.00 -> 7.84/7.61/7.54 s (in turns).
const CHECKPOINT_PAUSE: Duration = Duration::from_millis(20);

/// Copies the WAL's pages into the database file on a thread and connection of its own, so the
/// writer's commits do not wait for it (nor for the fsyncs a checkpoint makes). A `PASSIVE`
/// checkpoint after the writer's commits, at most one per [`CHECKPOINT_PAUSE`]: it never
/// blocks a writer or a reader, and the next commit after a complete one starts the WAL over.
/// Durability is the WAL's either way (`synchronous = NORMAL`: a commit is in the WAL; the
/// checkpoint only moves it).
struct Checkpointer {
    wake: mpsc::SyncSender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Checkpointer {
    fn start(file: &Path, what: &str) -> Result<Checkpointer> {
        let conn = connect(file).map_err(|e| map(what, e))?;
        let (wake, woken) = mpsc::sync_channel::<()>(1);
        let thread = std::thread::Builder::new()
            .name("calgate-checkpoint".into())
            .spawn(move || {
                let mut warned = false;
                while woken.recv().is_ok() {
                    let done = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                    if let Err(e) = done
                        && !warned
                    {
                        warned = true;
                        tracing::warn!(error = %e, "could not checkpoint the database's WAL");
                    }
                    std::thread::sleep(CHECKPOINT_PAUSE);
                }
                if let Err((_, e)) = conn.close() {
                    tracing::warn!(error = %e, "could not close the checkpointer's connection");
                }
            })
            .map_err(|e| Error::io("cannot start the database checkpointer thread", e))?;
        Ok(Checkpointer { wake, thread })
    }

    /// Asks for a checkpoint (one already asked for covers this one too).
    fn nudge(&self) {
        let _ = self.wake.try_send(());
    }

    /// Ends the thread, closing its connection, and waits for it.
    fn stop(self) {
        drop(self.wake);
        let _ = self.thread.join();
    }
}

fn stopped() -> Error {
    Error::new(
        ErrorKind::Database,
        "the database writer thread stopped: restart calgate",
    )
}

/// A connection to the existing database file, with the store's busy timeout.
fn connect(file: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        file,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(conn)
}

fn open(file: &Path, max_page_count: Option<u64>) -> rusqlite::Result<Connection> {
    let conn = connect(file)?;
    // A page cache of 4 MiB (SQLite's default is 2): the B-tree pages a round's inserts touch
    // stay in it instead of being read back from the file; statement journals (a multi-row
    // insert that may fail part-way keeps one) in memory, not in a temporary file.
    conn.execute_batch(
        "PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; \
         PRAGMA cache_size = -4096; PRAGMA temp_store = MEMORY;",
    )?;
    if let Some(pages) = max_page_count {
        conn.pragma_update(
            None,
            "max_page_count",
            i64::try_from(pages).unwrap_or(i64::MAX),
        )?;
    }
    // Room for every statement of a round: they stay prepared.
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

fn in_transaction<T>(
    conn: &mut Connection,
    job: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T>,
) -> Result<T> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(|e| map("cannot start a write transaction", e))?;
    let out = job(&tx)?;
    tx.commit().map_err(|e| map("cannot commit", e))?;
    Ok(out)
}

/// The mailbox's privacy policy; NotFound when it is not linked (any more).
pub(super) fn require_mailbox(
    tx: &rusqlite::Transaction<'_>,
    mailbox: crate::types::MailboxId,
) -> Result<calgate_core::PrivacyPolicy> {
    let found: Option<String> = tx
        .prepare_cached("SELECT privacy FROM mailboxes WHERE id = ?1")
        .and_then(|mut q| {
            let mut rows = q.query([mailbox.0])?;
            rows.next()?.map(|r| r.get(0)).transpose()
        })
        .ctx("cannot read mailboxes")?;
    super::mailboxes::policy_of(mailbox, found.as_deref())
}

/// rusqlite's errors as the store's, with the same kinds as sqlx's (see `map_sqlx`).
pub(super) fn map(what: &str, e: rusqlite::Error) -> Error {
    use rusqlite::ffi;
    let (kind, detail) = match &e {
        rusqlite::Error::SqliteFailure(f, message) => {
            let primary = f.extended_code & 0xff;
            let kind = match f.extended_code {
                ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                    ErrorKind::Conflict
                }
                ffi::SQLITE_CONSTRAINT_CHECK | ffi::SQLITE_CONSTRAINT_NOTNULL => {
                    ErrorKind::InvalidData
                }
                ffi::SQLITE_CONSTRAINT_FOREIGNKEY => ErrorKind::NotFound,
                _ => match primary {
                    ffi::SQLITE_FULL => ErrorKind::DiskFull,
                    ffi::SQLITE_READONLY | ffi::SQLITE_IOERR => ErrorKind::Io,
                    _ => ErrorKind::Database,
                },
            };
            let text = message
                .clone()
                .unwrap_or_else(|| ffi::code_to_str(f.extended_code).to_owned());
            let detail =
                if i64::from(primary) == SQLITE_CORRUPT || i64::from(primary) == SQLITE_NOTADB {
                    format!("{text} — the database file is damaged: restore it from a backup")
                } else {
                    text
                };
            (kind, detail)
        }
        other => (ErrorKind::Database, other.to_string()),
    };
    Error::with_source(kind, format!("{what}: {detail}"), e)
}

/// `map` as a method on results.
pub(super) trait Ctx<T> {
    fn ctx(self, what: &str) -> Result<T>;
}

impl<T> Ctx<T> for rusqlite::Result<T> {
    fn ctx(self, what: &str) -> Result<T> {
        self.map_err(|e| map(what, e))
    }
}
