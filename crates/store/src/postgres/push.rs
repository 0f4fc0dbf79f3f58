//! PostgreSQL: push (to be ported from ../sqlite/push.rs).
#![allow(unused_imports, unused_variables, clippy::unused_async)]

use std::collections::{BTreeMap, HashMap};
use calgate_core::booking::{
    Booking, BookingSpec, BookingState, TargetRole, TargetState, TargetStatus,
};
use jiff::{SignedDuration, Timestamp};
use crate::error::{Error, Result};
use crate::types::{MailboxId, NewNotice, NoticeKind, PushOp, PushOutcome, PushTask};
use sqlx::postgres::PgRow;
use super::{PgStore, Tx};

impl PgStore {
    pub(super) async fn booking_impl(&self, external_id: &str) -> Result<Option<Booking>> {
        todo!("postgres: booking_impl")
    }

    pub(super) async fn put_booking_impl(
        &self,
        external_id: &str,
        spec: &BookingSpec,
    ) -> Result<(Booking, bool)> {
        todo!("postgres: put_booking_impl")
    }

    pub(super) async fn retry_booking_impl(&self, external_id: &str) -> Result<Option<u64>> {
        todo!("postgres: retry_booking_impl")
    }

    pub(super) async fn delete_booking_impl(&self, external_id: &str) -> Result<bool> {
        todo!("postgres: delete_booking_impl")
    }

    pub(super) async fn list_bookings_impl(
        &self,
        state: Option<BookingState>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Booking>> {
        todo!("postgres: list_bookings_impl")
    }

    pub(super) async fn due_pushes_impl(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<PushTask>> {
        todo!("postgres: due_pushes_impl")
    }

    pub(super) async fn claim_push_impl(
        &self,
        entry: i64,
        now: Timestamp,
        hold: SignedDuration,
    ) -> Result<bool> {
        todo!("postgres: claim_push_impl")
    }

    pub(super) async fn finish_push_impl(
        &self,
        task: &PushTask,
        outcome: &PushOutcome,
    ) -> Result<()> {
        todo!("postgres: finish_push_impl")
    }

    pub(super) async fn pending_pushes_impl(&self) -> Result<u64> {
        todo!("postgres: pending_pushes_impl")
    }

    pub(super) async fn reconcile_pushed_impl(&self) -> Result<(u64, u64)> {
        todo!("postgres: reconcile_pushed_impl")
    }

    pub(super) async fn adopt_pushed_impl(
        &self,
        external_id: &str,
        address: &str,
        exchange_id: &str,
        ical_uid: Option<&str>,
        web_link: Option<&str>,
        change_key: Option<&str>,
    ) -> Result<bool> {
        todo!("postgres: adopt_pushed_impl")
    }

    pub(super) async fn record_responses_impl(
        &self,
        external_id: &str,
        responses: &[(String, String)],
    ) -> Result<()> {
        todo!("postgres: record_responses_impl")
    }

    pub(super) async fn set_outlook_edits_impl(
        &self,
        connection: &str,
        policy: calgate_core::booking::OutlookEdits,
    ) -> Result<bool> {
        todo!("postgres: set_outlook_edits_impl")
    }

    pub(super) async fn outlook_edits_impl(
        &self,
        connection: &str,
    ) -> Result<Option<calgate_core::booking::OutlookEdits>> {
        todo!("postgres: outlook_edits_impl")
    }
}
