//! PostgreSQL: instances (to be ported from ../sqlite/instances.rs).
#![allow(unused_imports, unused_variables, clippy::unused_async)]

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use calgate_core::{Instance, Person, PrivacyPolicy, ShowAs, When};
use jiff::Timestamp;
use crate::error::{Error, ErrorKind, Result};
use crate::types::*;
use sqlx::postgres::PgRow;
use super::{PgStore, Tx};

impl PgStore {
    pub(super) async fn apply_changes_impl(
        &self,
        lease: &Lease,
        changes: &ChangeSet,
    ) -> Result<()> {
        todo!("postgres: apply_changes_impl")
    }

    pub(super) async fn begin_shadow_impl(&self, lease: &Lease, window: Window) -> Result<()> {
        todo!("postgres: begin_shadow_impl")
    }

    pub(super) async fn apply_shadow_impl(&self, lease: &Lease, changes: &ChangeSet) -> Result<()> {
        todo!("postgres: apply_shadow_impl")
    }

    pub(super) async fn commit_shadow_impl(&self, lease: &Lease, cursor: &Cursor) -> Result<()> {
        todo!("postgres: commit_shadow_impl")
    }

    pub(super) async fn abort_shadow_impl(&self, lease: &Lease) -> Result<bool> {
        todo!("postgres: abort_shadow_impl")
    }

    pub(super) async fn shadow_impl(&self, mailbox: MailboxId) -> Result<Option<ShadowState>> {
        todo!("postgres: shadow_impl")
    }

    pub(super) async fn instances_impl(
        &self,
        mailbox: MailboxId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<StoredInstance>> {
        todo!("postgres: instances_impl")
    }

    pub(super) async fn shadow_diff_impl(&self, lease: &Lease) -> Result<ShadowDiff> {
        todo!("postgres: shadow_diff_impl")
    }

    pub(super) async fn instances_page_impl(
        &self,
        mailbox: MailboxId,
        from: Timestamp,
        to: Timestamp,
        after: Option<&InstanceCursor>,
        limit: u32,
    ) -> Result<InstancePage> {
        todo!("postgres: instances_page_impl")
    }

    pub(super) async fn busy_times_impl(
        &self,
        mailboxes: &[MailboxId],
        from: Timestamp,
        to: Timestamp,
        busy: &[ShowAs],
    ) -> Result<Vec<BusyTimes>> {
        todo!("postgres: busy_times_impl")
    }

    pub(super) async fn instance_impl(
        &self,
        mailbox: MailboxId,
        exchange_id: &str,
    ) -> Result<Option<StoredInstance>> {
        todo!("postgres: instance_impl")
    }

    pub(super) async fn count_live_impl(
        &self,
        mailbox: MailboxId,
        exchange_ids: &[String],
    ) -> Result<u64> {
        todo!("postgres: count_live_impl")
    }

    pub(super) async fn count_instances_impl(&self, mailbox: MailboxId) -> Result<u64> {
        todo!("postgres: count_instances_impl")
    }

    pub(super) async fn series_masters_impl(
        &self,
        mailbox: MailboxId,
    ) -> Result<Vec<SeriesMaster>> {
        todo!("postgres: series_masters_impl")
    }

    pub(super) async fn cursor_impl(&self, mailbox: MailboxId) -> Result<Option<Cursor>> {
        todo!("postgres: cursor_impl")
    }

    pub(super) async fn clear_cursor_impl(&self, mailbox: MailboxId) -> Result<bool> {
        todo!("postgres: clear_cursor_impl")
    }
}
