//! The administrator's flows of the seed guides, as a library shared by the CLI (and later the
//! REST API and console): **Test settings** (`diagnose`), **Verify a mailbox** (`verify`),
//! bulk linking from CSV (`import`), room-list discovery (`rooms`), the credential lifecycle
//! and `doctor` (`lifecycle`), and delegated "Connect account" (`accounts`).
//!
//! Every check produces a [`Checklist`]: one ✓/✗ line per step, and for every ✗ the cause in an
//! administrator's words and the exact fix (a portal step or a PowerShell line). The CLI prints
//! it as text or JSON; callers exit 0 only when [`Checklist::passed`].
//!
//! Architecture invariant: no Graph JSON and no SQL here — this crate talks to Exchange only
//! through `calgate-graph` and `calgate-ews` and stores only through `calgate-store`.
#![forbid(unsafe_code)]

pub mod accounts;
pub mod checklist;
pub mod connections;
pub mod diagnose;
pub mod ews;
pub mod history;
pub mod import;
pub mod lifecycle;
pub mod mailboxes;
pub mod probe;
pub mod rooms;
pub mod verify;

pub use checklist::{Check, Checklist, Status};
