//! PostgreSQL: mailboxes (to be ported from ../sqlite/mailboxes.rs).
#![allow(unused_imports, unused_variables, clippy::unused_async)]

use calgate_core::{MailboxKind, PrivacyPolicy};
use jiff::Timestamp;
use crate::error::{Error, Result};
use crate::types::*;
use sqlx::postgres::PgRow;
use super::{PgStore, Tx};

pub(super) fn mailbox_from_row(row: &PgRow) -> Result<Mailbox> {
    todo!("postgres: mailbox_from_row")
}

impl PgStore {
    pub(super) async fn link_mailbox_impl(&self, m: &NewMailbox) -> Result<MailboxId> {
        todo!("postgres: link_mailbox_impl")
    }

    pub(super) async fn unlink_mailbox_impl(&self, address: &str) -> Result<bool> {
        todo!("postgres: unlink_mailbox_impl")
    }

    pub(super) async fn mailboxes_impl(&self, address: Option<&str>) -> Result<Vec<Mailbox>> {
        todo!("postgres: mailboxes_impl")
    }

    pub(super) async fn mailboxes_named_impl(
        &self,
        addresses: &[String],
    ) -> Result<Vec<(Mailbox, Option<Timestamp>)>> {
        todo!("postgres: mailboxes_named_impl")
    }

    pub(super) async fn require_mailbox(tx: &mut Tx, mailbox: MailboxId) -> Result<PrivacyPolicy> {
        todo!("postgres: require_mailbox")
    }
}
