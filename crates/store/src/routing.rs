//! The [`Store`](crate::Store) impl every backend shares: each call goes to the backend's
//! method of the same name (`…_impl`), and disk and I/O errors get the backend's location
//! (`located`). A backend provides those methods, `schema: SchemaInfo` and `close_impl`.

/// Routes every call to its module and puts the database's location into disk and I/O errors.
macro_rules! routed {
    ($self:ident . $f:ident ( $($arg:expr),* )) => {
        $self.$f($($arg),*).await.map_err(|e| $self.located(e))
    };
}
pub(crate) use routed;

/// `impl Store for $backend`, routed.
macro_rules! route_store {
    ($backend:ty) => {
        use $crate::routing::routed;
        #[async_trait]
        impl $crate::Store for $backend {
            async fn add_connection(&self, c: &NewConnection) -> Result<ConnectionId> {
                routed!(self.add_connection_impl(c))
            }
            async fn list_connections(&self) -> Result<Vec<Connection>> {
                routed!(self.load_connections(None))
            }
            async fn connection(&self, name: &str) -> Result<Option<Connection>> {
                Ok(routed!(self.load_connections(Some(name)))?
                    .into_iter()
                    .next())
            }
            async fn remove_connection(&self, name: &str) -> Result<bool> {
                routed!(self.remove_connection_impl(name))
            }
            async fn add_credential(
                &self,
                connection: &str,
                c: &NewCredential,
            ) -> Result<CredentialId> {
                routed!(self.add_credential_impl(connection, c))
            }
            async fn remove_credential(&self, connection: &str, id: CredentialId) -> Result<bool> {
                routed!(self.remove_credential_impl(connection, id))
            }
            async fn set_connection_ca(
                &self,
                connection: &str,
                ca_cert_pem: Option<&str>,
            ) -> Result<bool> {
                routed!(self.set_connection_ca_impl(connection, ca_cert_pem))
            }
            async fn set_ews_password(
                &self,
                connection: &str,
                password: &SecretString,
            ) -> Result<bool> {
                routed!(self.set_ews_password_impl(connection, password))
            }
            async fn set_credential_expiry(
                &self,
                id: CredentialId,
                expires_at: Option<Timestamp>,
            ) -> Result<bool> {
                routed!(self.set_credential_expiry_impl(id, expires_at))
            }

            async fn link_mailbox(&self, m: &NewMailbox) -> Result<MailboxId> {
                routed!(self.link_mailbox_impl(m))
            }
            async fn unlink_mailbox(&self, address: &str) -> Result<bool> {
                routed!(self.unlink_mailbox_impl(address))
            }
            async fn list_mailboxes(&self) -> Result<Vec<Mailbox>> {
                routed!(self.mailboxes_impl(None))
            }
            async fn mailboxes_named(
                &self,
                addresses: &[String],
            ) -> Result<Vec<(Mailbox, Option<Timestamp>)>> {
                routed!(self.mailboxes_named_impl(addresses))
            }
            async fn mailbox(&self, address: &str) -> Result<Option<Mailbox>> {
                Ok(routed!(self.mailboxes_impl(Some(address)))?
                    .into_iter()
                    .next())
            }

            async fn acquire_lease(
                &self,
                mailbox: MailboxId,
                holder: &LeaseHolder,
                ttl: SignedDuration,
            ) -> Result<LeaseGrant> {
                routed!(self.acquire_lease_impl(mailbox, holder, ttl))
            }
            async fn renew_lease(&self, lease: &Lease) -> Result<()> {
                routed!(self.renew_lease_impl(lease))
            }
            async fn release_lease(&self, lease: &Lease) -> Result<bool> {
                routed!(self.release_lease_impl(lease))
            }
            async fn leases(&self) -> Result<Vec<LeaseInfo>> {
                routed!(self.leases_impl())
            }
            async fn hold_role(
                &self,
                role: &str,
                holder: &LeaseHolder,
                ttl: SignedDuration,
            ) -> Result<bool> {
                routed!(self.hold_role_impl(role, holder, ttl))
            }
            async fn release_role(&self, role: &str, holder: &LeaseHolder) -> Result<bool> {
                routed!(self.release_role_impl(role, holder))
            }
            async fn roles(&self) -> Result<Vec<(String, LeaseHolder, Timestamp)>> {
                routed!(self.roles_impl())
            }

            async fn apply_changes(&self, lease: &Lease, changes: &ChangeSet) -> Result<()> {
                routed!(self.apply_changes_impl(lease, std::borrow::Cow::Borrowed(changes)))
            }
            async fn apply_changes_owned(&self, lease: &Lease, changes: ChangeSet) -> Result<()> {
                routed!(self.apply_changes_impl(lease, std::borrow::Cow::Owned(changes)))
            }
            async fn begin_shadow(&self, lease: &Lease, window: Window) -> Result<()> {
                routed!(self.begin_shadow_impl(lease, window))
            }
            async fn apply_shadow(&self, lease: &Lease, changes: &ChangeSet) -> Result<()> {
                routed!(self.apply_shadow_impl(lease, std::borrow::Cow::Borrowed(changes)))
            }
            async fn apply_shadow_owned(&self, lease: &Lease, changes: ChangeSet) -> Result<()> {
                routed!(self.apply_shadow_impl(lease, std::borrow::Cow::Owned(changes)))
            }
            async fn commit_shadow(&self, lease: &Lease, cursor: &Cursor) -> Result<()> {
                routed!(self.commit_shadow_impl(lease, cursor))
            }
            async fn abort_shadow(&self, lease: &Lease) -> Result<bool> {
                routed!(self.abort_shadow_impl(lease))
            }
            async fn shadow(&self, mailbox: MailboxId) -> Result<Option<ShadowState>> {
                routed!(self.shadow_impl(mailbox))
            }
            async fn shadow_diff(&self, lease: &Lease) -> Result<ShadowDiff> {
                routed!(self.shadow_diff_impl(lease))
            }
            async fn instances_page(
                &self,
                mailbox: MailboxId,
                from: Timestamp,
                to: Timestamp,
                after: Option<&InstanceCursor>,
                limit: u32,
            ) -> Result<InstancePage> {
                routed!(self.instances_page_impl(mailbox, from, to, after, limit))
            }
            async fn instances(
                &self,
                mailbox: MailboxId,
                from: Timestamp,
                to: Timestamp,
            ) -> Result<Vec<StoredInstance>> {
                routed!(self.instances_impl(mailbox, from, to))
            }
            async fn busy_times(
                &self,
                mailboxes: &[MailboxId],
                from: Timestamp,
                to: Timestamp,
                busy: &[calgate_core::ShowAs],
            ) -> Result<Vec<BusyTimes>> {
                routed!(self.busy_times_impl(mailboxes, from, to, busy))
            }
            async fn instance(
                &self,
                mailbox: MailboxId,
                exchange_id: &str,
            ) -> Result<Option<StoredInstance>> {
                routed!(self.instance_impl(mailbox, exchange_id))
            }
            async fn count_live(&self, mailbox: MailboxId, exchange_ids: &[String]) -> Result<u64> {
                routed!(self.count_live_impl(mailbox, exchange_ids))
            }
            async fn count_instances(&self, mailbox: MailboxId) -> Result<u64> {
                routed!(self.count_instances_impl(mailbox))
            }
            async fn series_masters(&self, mailbox: MailboxId) -> Result<Vec<SeriesMaster>> {
                routed!(self.series_masters_impl(mailbox))
            }
            async fn cursor(&self, mailbox: MailboxId) -> Result<Option<Cursor>> {
                routed!(self.cursor_impl(mailbox))
            }
            async fn clear_cursor(&self, mailbox: MailboxId) -> Result<bool> {
                routed!(self.clear_cursor_impl(mailbox))
            }
            async fn record_status(&self, mailbox: MailboxId, s: &SyncStatusUpdate) -> Result<()> {
                routed!(self.record_status_impl(mailbox, s))
            }
            async fn finish_round(
                &self,
                mailbox: MailboxId,
                s: Option<&SyncStatusUpdate>,
                lease: &Lease,
            ) -> Result<bool> {
                routed!(self.finish_round_impl(mailbox, s, lease))
            }
            async fn statuses(&self) -> Result<Vec<MailboxStatus>> {
                routed!(self.statuses_impl(None))
            }
            async fn sync_states(&self) -> Result<Vec<MailboxSyncState>> {
                routed!(self.sync_states_impl())
            }
            async fn sync_state(&self, address: &str) -> Result<Option<MailboxSyncState>> {
                routed!(self.sync_state_impl(address))
            }
            async fn changes_after(&self, after: u64, limit: u32) -> Result<Vec<ChangeRecord>> {
                routed!(self.changes_after_impl(after, limit))
            }
            async fn mailboxes_changed_after(&self, after: u64) -> Result<Vec<(MailboxId, u64)>> {
                routed!(self.mailboxes_changed_after_impl(after))
            }
            async fn changes_of(
                &self,
                mailbox: MailboxId,
                from: Timestamp,
                to: Timestamp,
                limit: u32,
            ) -> Result<Vec<ChangeRecord>> {
                routed!(self.changes_of_impl(mailbox, from, to, limit))
            }
            async fn changes_of_event(
                &self,
                mailbox: MailboxId,
                exchange_id: &str,
                limit: u32,
            ) -> Result<Vec<ChangeRecord>> {
                routed!(self.changes_of_event_impl(mailbox, exchange_id, limit))
            }
            async fn change_log_end(&self) -> Result<u64> {
                routed!(self.change_log_end_impl())
            }
            async fn change_log_floor(&self) -> Result<u64> {
                routed!(self.change_log_floor_impl())
            }
            async fn prune_change_log(&self, before: Timestamp) -> Result<u64> {
                routed!(self.prune_change_log_impl(before))
            }
            async fn record_notice(&self, notice: &NewNotice) -> Result<u64> {
                routed!(self.record_notice_impl(notice))
            }
            async fn record_notice_once(
                &self,
                key: &str,
                notice: &NewNotice,
            ) -> Result<Option<u64>> {
                routed!(self.record_notice_once_impl(key, notice))
            }
            async fn subscriptions(&self) -> Result<Vec<SubscriptionRecord>> {
                routed!(self.subscriptions_impl(None))
            }
            async fn subscription(&self, id: &str) -> Result<Option<SubscriptionRecord>> {
                Ok(routed!(self.subscriptions_impl(Some(id)))?
                    .into_iter()
                    .next())
            }
            async fn save_subscription(&self, record: &SubscriptionRecord) -> Result<()> {
                routed!(self.save_subscription_impl(record))
            }
            async fn remove_subscription(&self, mailbox: MailboxId) -> Result<bool> {
                routed!(self.remove_subscription_impl(mailbox))
            }
            async fn add_webhook(
                &self,
                url: &str,
                events: Option<&[String]>,
            ) -> Result<(Webhook, String)> {
                routed!(self.add_webhook_impl(url, events))
            }
            async fn webhooks(&self) -> Result<Vec<Webhook>> {
                routed!(self.webhooks_impl(None))
            }
            async fn webhook(&self, id: &str) -> Result<Option<Webhook>> {
                Ok(routed!(self.webhooks_impl(Some(id)))?.into_iter().next())
            }
            async fn remove_webhook(&self, id: &str) -> Result<bool> {
                routed!(self.remove_webhook_impl(id))
            }
            async fn rotate_webhook_secret(
                &self,
                id: &str,
                overlap: SignedDuration,
            ) -> Result<Option<String>> {
                routed!(self.rotate_webhook_secret_impl(id, overlap))
            }
            async fn webhook_secrets(&self, id: &str) -> Result<Vec<SecretString>> {
                routed!(self.webhook_secrets_impl(id))
            }
            async fn enqueue_deliveries(
                &self,
                webhook: &str,
                from: u64,
                through: u64,
                deliveries: &[NewDelivery],
            ) -> Result<bool> {
                routed!(self.enqueue_deliveries_impl(webhook, from, through, deliveries))
            }
            async fn due_deliveries(&self, now: Timestamp, limit: u32) -> Result<Vec<Delivery>> {
                routed!(self.due_deliveries_impl(now, limit))
            }
            async fn next_delivery_at(&self) -> Result<Option<Timestamp>> {
                routed!(self.next_delivery_at_impl())
            }
            async fn finish_delivery(&self, id: i64, outcome: &DeliveryOutcome) -> Result<()> {
                routed!(self.finish_delivery_impl(id, outcome))
            }
            async fn deliveries(
                &self,
                webhook: &str,
                state: Option<DeliveryState>,
                limit: u32,
            ) -> Result<Vec<Delivery>> {
                routed!(self.deliveries_impl(webhook, state, limit))
            }
            async fn replay_deliveries(&self, webhook: &str, ids: Option<&[i64]>) -> Result<u64> {
                routed!(self.replay_deliveries_impl(webhook, ids))
            }
            async fn prune_deliveries(&self, before: Timestamp) -> Result<u64> {
                routed!(self.prune_deliveries_impl(before))
            }
            async fn status(&self, mailbox: MailboxId) -> Result<Option<MailboxStatus>> {
                Ok(routed!(self.statuses_impl(Some(mailbox)))?
                    .into_iter()
                    .next())
            }
            async fn close(&self) {
                self.close_impl().await
            }
            async fn check_integrity(&self) -> Result<Vec<String>> {
                routed!(self.integrity_impl())
            }

            async fn put_booking(
                &self,
                external_id: &str,
                spec: &BookingSpec,
            ) -> Result<(Booking, bool)> {
                routed!(self.put_booking_impl(external_id, spec))
            }
            async fn booking(&self, external_id: &str) -> Result<Option<Booking>> {
                routed!(self.booking_impl(external_id))
            }
            async fn retry_booking(&self, external_id: &str) -> Result<Option<u64>> {
                routed!(self.retry_booking_impl(external_id))
            }
            async fn delete_booking(&self, external_id: &str) -> Result<bool> {
                routed!(self.delete_booking_impl(external_id))
            }
            async fn list_bookings(
                &self,
                state: Option<BookingState>,
                after: Option<&str>,
                limit: u32,
            ) -> Result<Vec<Booking>> {
                routed!(self.list_bookings_impl(state, after, limit))
            }
            async fn due_pushes(&self, now: Timestamp, limit: u32) -> Result<Vec<PushTask>> {
                routed!(self.due_pushes_impl(now, limit))
            }
            async fn claim_push(
                &self,
                entry: i64,
                now: Timestamp,
                hold: SignedDuration,
            ) -> Result<bool> {
                routed!(self.claim_push_impl(entry, now, hold))
            }
            async fn finish_push(&self, task: &PushTask, outcome: &PushOutcome) -> Result<()> {
                routed!(self.finish_push_impl(task, outcome))
            }
            async fn pending_pushes(&self) -> Result<u64> {
                routed!(self.pending_pushes_impl())
            }
            async fn reconcile_pushed(&self) -> Result<(u64, u64)> {
                routed!(self.reconcile_pushed_impl())
            }
            async fn set_outlook_edits(
                &self,
                connection: &str,
                policy: calgate_core::booking::OutlookEdits,
            ) -> Result<bool> {
                routed!(self.set_outlook_edits_impl(connection, policy))
            }
            async fn outlook_edits(
                &self,
                connection: &str,
            ) -> Result<Option<calgate_core::booking::OutlookEdits>> {
                routed!(self.outlook_edits_impl(connection))
            }
            async fn record_responses(
                &self,
                external_id: &str,
                responses: &[(String, String)],
            ) -> Result<()> {
                routed!(self.record_responses_impl(external_id, responses))
            }
            async fn adopt_pushed(
                &self,
                external_id: &str,
                address: &str,
                exchange_id: &str,
                ical_uid: Option<&str>,
                web_link: Option<&str>,
                change_key: Option<&str>,
            ) -> Result<bool> {
                routed!(self.adopt_pushed_impl(
                    external_id,
                    address,
                    exchange_id,
                    ical_uid,
                    web_link,
                    change_key
                ))
            }

            async fn add_api_key(&self, key: &NewApiKey) -> Result<()> {
                routed!(self.add_api_key_impl(key))
            }
            async fn api_key(&self, key_id: &str) -> Result<Option<ApiKey>> {
                routed!(self.api_key_impl(key_id))
            }
            async fn console_password_hash(&self) -> Result<Option<String>> {
                routed!(self.console_password_hash_impl())
            }
            async fn set_console_password_hash(&self, phc: &str) -> Result<()> {
                routed!(self.set_console_password_hash_impl(phc))
            }
            async fn schema(&self) -> Result<crate::SchemaInfo> {
                Ok(self.schema)
            }
            async fn put_console_session(&self, session: &ConsoleSession) -> Result<()> {
                routed!(self.put_console_session_impl(session))
            }
            async fn console_session(
                &self,
                token_sha256: &[u8],
                now: Timestamp,
            ) -> Result<Option<ConsoleSession>> {
                routed!(self.console_session_impl(token_sha256, now))
            }
            async fn remove_console_session(&self, token_sha256: &[u8]) -> Result<()> {
                routed!(self.remove_console_session_impl(token_sha256))
            }
            async fn list_api_keys(&self) -> Result<Vec<ApiKey>> {
                routed!(self.list_api_keys_impl())
            }
            async fn revoke_api_key(&self, name: &str) -> Result<bool> {
                routed!(self.revoke_api_key_impl(name))
            }
            async fn add_feed(&self, feed: &NewFeed) -> Result<i64> {
                routed!(self.add_feed_impl(feed))
            }
            async fn feed_by_token_hash(&self, token_hash: &[u8]) -> Result<Option<Feed>> {
                routed!(self.feed_by_token_hash_impl(token_hash))
            }
            async fn list_feeds(&self) -> Result<Vec<Feed>> {
                routed!(self.list_feeds_impl())
            }
            async fn revoke_feed(&self, id: i64) -> Result<bool> {
                routed!(self.revoke_feed_impl(id))
            }

            async fn save_account(&self, a: &crate::NewAccount) -> Result<crate::AccountId> {
                routed!(self.save_account_impl(a))
            }
            async fn list_accounts(&self) -> Result<Vec<crate::Account>> {
                routed!(self.list_accounts_impl())
            }
            async fn account(&self, id: crate::AccountId) -> Result<Option<crate::Account>> {
                routed!(self.account_impl(id))
            }
            async fn store_refresh_token(
                &self,
                id: crate::AccountId,
                refresh_token: &SecretString,
                refreshed_at: Timestamp,
            ) -> Result<bool> {
                routed!(self.store_refresh_token_impl(id, refresh_token, refreshed_at))
            }
            async fn set_account_state(
                &self,
                id: crate::AccountId,
                state: crate::AccountState,
                message: Option<&str>,
                at: Timestamp,
            ) -> Result<bool> {
                routed!(self.set_account_state_impl(id, state, message, at))
            }
            async fn remove_accounts(
                &self,
                address: &str,
                connection: Option<&str>,
            ) -> Result<u64> {
                routed!(self.remove_accounts_impl(address, connection))
            }
        }
    };
}
pub(crate) use route_store;
