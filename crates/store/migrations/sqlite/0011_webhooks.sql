-- calgate store, SQLite schema v11: the host application's events and their delivery.
--
-- 1. The change log also carries the events that are not about one instance (a mailbox's sync
--    failing or recovering, a booking's fate, a credential expiring): `op` names the event type
--    for those, `data` holds its details as JSON, and the instance columns are NULL. One log,
--    one order: it is the change feed (`GET /v1/changes`) and the source of webhooks. The table
--    is rebuilt (SQLite cannot widen a CHECK); positions (`seq`) are kept, and so is the
--    AUTOINCREMENT high-water mark, so that no position is ever handed out twice.
CREATE TABLE change_log_v11 (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    -- NULL for events about no mailbox (credentials)
    mailbox_id  INTEGER,
    address     TEXT,
    instance_id TEXT,
    exchange_id TEXT,
    op          TEXT NOT NULL CHECK (op IN ('created', 'updated', 'deleted',
                    'mailbox.sync_failed', 'mailbox.recovered',
                    'booking.synced', 'booking.failed', 'booking.drifted',
                    'booking.deleted_in_exchange',
                    'credential.expiring', 'credential.expired')),
    start_us    INTEGER,
    end_us      INTEGER,
    at          INTEGER NOT NULL,
    data        TEXT,
    CHECK ((op IN ('created', 'updated', 'deleted')) =
           (mailbox_id IS NOT NULL AND instance_id IS NOT NULL AND exchange_id IS NOT NULL))
);
INSERT INTO change_log_v11 (seq, mailbox_id, address, instance_id, exchange_id, op, start_us,
                            end_us, at)
    SELECT seq, mailbox_id, address, instance_id, exchange_id, op, start_us, end_us, at
    FROM change_log;
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'change_log_v11', seq FROM sqlite_sequence WHERE name = 'change_log'
    AND NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'change_log_v11');
UPDATE sqlite_sequence SET seq = MAX(seq, (SELECT s.seq FROM sqlite_sequence s
                                           WHERE s.name = 'change_log'))
    WHERE name = 'change_log_v11' AND EXISTS (SELECT 1 FROM sqlite_sequence s
                                              WHERE s.name = 'change_log');
DROP TABLE change_log;
ALTER TABLE change_log_v11 RENAME TO change_log;
CREATE INDEX change_log_by_mailbox ON change_log (mailbox_id, seq);
CREATE INDEX change_log_by_time ON change_log (at);

-- 2. Webhook endpoints of the host application. The signing secrets are sealed with the master
--    key; after a rotation the previous secret stays valid (deliveries carry both signatures)
--    until `previous_until`. `position` is the change-log position fanned out so far.
CREATE TABLE webhooks (
    id              TEXT PRIMARY KEY,
    url             TEXT NOT NULL,
    -- JSON array of event types; NULL: every type
    events          TEXT,
    secret          BLOB NOT NULL,
    previous_secret BLOB,
    previous_until  INTEGER,
    position        INTEGER NOT NULL,
    created_at      INTEGER NOT NULL
);

-- 3. The durable delivery queue: one row per event per endpoint, with the exact body signed and
--    sent (a retry sends the same `webhook-id` and body). Delivered in order per partition (a
--    mailbox's address; '' for events about no mailbox): a partition's next delivery waits for
--    the one before it. `dead`: retried past the horizon; replay puts it back to `pending`.
CREATE TABLE webhook_deliveries (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id   TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    msg_id       TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    partition    TEXT NOT NULL,
    type         TEXT NOT NULL,
    payload      TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_at      INTEGER NOT NULL,
    last_status  INTEGER,
    last_error   TEXT,
    created_at   INTEGER NOT NULL,
    finished_at  INTEGER,
    UNIQUE (webhook_id, seq)
);
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (state, next_at);
CREATE INDEX webhook_deliveries_order ON webhook_deliveries (webhook_id, partition, state, id);

-- 4. Notices that are due once per occasion (a credential reaching 30, 14 or 7 days before
--    expiry, or expiring): the occasion's key, so that it is recorded once.
CREATE TABLE notice_marks (
    key TEXT PRIMARY KEY,
    at  INTEGER NOT NULL
);
