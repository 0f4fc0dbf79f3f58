//! PostgreSQL: status (to be ported from ../sqlite/status.rs).
#![allow(unused_imports, unused_variables, clippy::unused_async)]

use jiff::SignedDuration;
use crate::error::Result;
use crate::types::*;
use sqlx::postgres::PgRow;
use super::{PgStore, Tx};

impl PgStore {
    pub(super) async fn record_status_impl(
        &self,
        mailbox: MailboxId,
        s: &SyncStatusUpdate,
    ) -> Result<()> {
        todo!("postgres: record_status_impl")
    }

    pub(super) async fn finish_round_impl(
        &self,
        mailbox: MailboxId,
        s: Option<&SyncStatusUpdate>,
        lease: &Lease,
    ) -> Result<bool> {
        todo!("postgres: finish_round_impl")
    }

    pub(super) async fn statuses_impl(
        &self,
        mailbox: Option<MailboxId>,
    ) -> Result<Vec<MailboxStatus>> {
        todo!("postgres: statuses_impl")
    }

    pub(super) async fn sync_states_impl(&self) -> Result<Vec<MailboxSyncState>> {
        todo!("postgres: sync_states_impl")
    }

    pub(super) async fn sync_state_impl(&self, address: &str) -> Result<Option<MailboxSyncState>> {
        todo!("postgres: sync_state_impl")
    }

    pub(super) async fn changes_after_impl(
        &self,
        after: u64,
        limit: u32,
    ) -> Result<Vec<ChangeRecord>> {
        todo!("postgres: changes_after_impl")
    }

    pub(super) async fn mailboxes_changed_after_impl(
        &self,
        after: u64,
    ) -> Result<Vec<(MailboxId, u64)>> {
        todo!("postgres: mailboxes_changed_after_impl")
    }

    pub(super) async fn change_log_end_impl(&self) -> Result<u64> {
        todo!("postgres: change_log_end_impl")
    }
}
