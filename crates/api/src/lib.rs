//! calgate's interface to the host application: the JSON it reads and writes.
//!
//! Architecture invariant: **only this crate knows the REST DTOs.** Every representation the
//! host application sees — `calgate events --json`, `GET /v1/mailboxes/{address}/events`, and
//! the `event.*` webhooks — is built here, from the store's types, so the three can never
//! differ.
#![forbid(unsafe_code)]

pub mod dto;
