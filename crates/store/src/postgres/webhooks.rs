//! PostgreSQL: webhooks (to be ported from ../sqlite/webhooks.rs).
#![allow(unused_imports, unused_variables, clippy::unused_async)]

use base64::Engine as _;
use jiff::{SignedDuration, Timestamp};
use crate::error::{Error, ErrorKind, Result};
use crate::types::*;
use sqlx::postgres::PgRow;
use super::{PgStore, Tx};

pub(super) fn change_from_row(row: &PgRow) -> Result<ChangeRecord> {
    todo!("postgres: change_from_row")
}

impl PgStore {
    pub(super) async fn log_notice(tx: &mut Tx, n: &NewNotice, now: Timestamp) -> Result<u64> {
        todo!("postgres: log_notice")
    }

    pub(super) async fn record_notice_impl(&self, n: &NewNotice) -> Result<u64> {
        todo!("postgres: record_notice_impl")
    }

    pub(super) async fn record_notice_once_impl(
        &self,
        key: &str,
        n: &NewNotice,
    ) -> Result<Option<u64>> {
        todo!("postgres: record_notice_once_impl")
    }

    pub(super) async fn change_log_floor_impl(&self) -> Result<u64> {
        todo!("postgres: change_log_floor_impl")
    }

    pub(super) async fn prune_change_log_impl(&self, before: Timestamp) -> Result<u64> {
        todo!("postgres: prune_change_log_impl")
    }

    pub(super) async fn add_webhook_impl(
        &self,
        url: &str,
        events: Option<&[String]>,
    ) -> Result<(Webhook, String)> {
        todo!("postgres: add_webhook_impl")
    }

    pub(super) async fn webhooks_impl(&self, id: Option<&str>) -> Result<Vec<Webhook>> {
        todo!("postgres: webhooks_impl")
    }

    pub(super) async fn remove_webhook_impl(&self, id: &str) -> Result<bool> {
        todo!("postgres: remove_webhook_impl")
    }

    pub(super) async fn rotate_webhook_secret_impl(
        &self,
        id: &str,
        overlap: SignedDuration,
    ) -> Result<Option<String>> {
        todo!("postgres: rotate_webhook_secret_impl")
    }

    pub(super) async fn webhook_secrets_impl(&self, id: &str) -> Result<Vec<SecretString>> {
        todo!("postgres: webhook_secrets_impl")
    }

    pub(super) async fn enqueue_deliveries_impl(
        &self,
        webhook: &str,
        from: u64,
        through: u64,
        deliveries: &[NewDelivery],
    ) -> Result<bool> {
        todo!("postgres: enqueue_deliveries_impl")
    }

    pub(super) async fn due_deliveries_impl(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<Delivery>> {
        todo!("postgres: due_deliveries_impl")
    }

    pub(super) async fn next_delivery_at_impl(&self) -> Result<Option<Timestamp>> {
        todo!("postgres: next_delivery_at_impl")
    }

    pub(super) async fn finish_delivery_impl(
        &self,
        id: i64,
        outcome: &DeliveryOutcome,
    ) -> Result<()> {
        todo!("postgres: finish_delivery_impl")
    }

    pub(super) async fn deliveries_impl(
        &self,
        webhook: &str,
        state: Option<DeliveryState>,
        limit: u32,
    ) -> Result<Vec<Delivery>> {
        todo!("postgres: deliveries_impl")
    }

    pub(super) async fn replay_deliveries_impl(
        &self,
        webhook: &str,
        ids: Option<&[i64]>,
    ) -> Result<u64> {
        todo!("postgres: replay_deliveries_impl")
    }

    pub(super) async fn prune_deliveries_impl(&self, before: Timestamp) -> Result<u64> {
        todo!("postgres: prune_deliveries_impl")
    }

    pub(super) async fn subscriptions_impl(
        &self,
        id: Option<&str>,
    ) -> Result<Vec<SubscriptionRecord>> {
        todo!("postgres: subscriptions_impl")
    }

    pub(super) async fn save_subscription_impl(&self, r: &SubscriptionRecord) -> Result<()> {
        todo!("postgres: save_subscription_impl")
    }

    pub(super) async fn remove_subscription_impl(&self, mailbox: MailboxId) -> Result<bool> {
        todo!("postgres: remove_subscription_impl")
    }
}
