//! The REST API over real HTTP: an in-process server on a real SQLite file, a demo simulator
//! behind it.

mod auth;
mod availability;
mod bookings;
mod common;
mod console;
mod events;
mod feeds;
mod hostile;
mod mailboxes;
mod notifications;
mod service;
mod webhooks;
