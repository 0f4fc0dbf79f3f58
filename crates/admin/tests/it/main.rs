//! calgate-admin's flows against the in-process simulator over real HTTP, with a real SQLite
//! file: one test binary, a module per flow.

mod common;

mod accounts;
mod diagnose;
mod ews;
mod import;
mod lifecycle;
mod rooms;
mod verify;
