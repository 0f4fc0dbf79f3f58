-- calgate store, SQLite schema v18: the CHECKs of the tables written for every event —
-- `instances`, `shadow_instances`, `change_log` and `webhook_deliveries` — list their values
-- with `=` … `OR` instead of `IN (…)`. The rules are the same.
-- SQLite computes the right-hand side of an `IN (…)` once per statement everywhere but in a
-- CHECK: there it builds it again, as a small temporary index, for every row it checks. That
-- was 17 index inserts for each instance a sync stored (3 for `type`, 14 for the change log's
-- `op`), next to the 6 of the rows themselves, and 3 for each webhook delivery written or
-- updated. The tables are rebuilt (SQLite cannot change a CHECK in place); rows keep their
-- rowids, the change log and the deliveries their AUTOINCREMENT high-water marks, so that no
-- position or delivery id is ever handed out twice.

CREATE TABLE instances_v18 (
    mailbox_id       INTEGER NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
    exchange_id      TEXT NOT NULL,
    -- calgate's own id of the instance, stable across updates and full resyncs
    id               TEXT NOT NULL,
    ical_uid         TEXT,
    type             TEXT NOT NULL
                     CHECK (type = 'singleInstance' OR type = 'occurrence' OR type = 'exception'),
    series_master_id TEXT,
    start_us         INTEGER NOT NULL,
    end_us           INTEGER NOT NULL,
    all_day_start    TEXT,
    all_day_end      TEXT,
    time_zone        TEXT NOT NULL,
    show_as          TEXT NOT NULL,
    sensitivity      TEXT NOT NULL,
    subject          TEXT,
    location         TEXT,
    body_preview     TEXT,
    organizer        TEXT,
    attendees        TEXT NOT NULL,
    -- '' for Exchange Online's OWA link of the item's own id, rebuilt on read (codec.rs)
    web_link         TEXT,
    change_key       TEXT,
    last_modified    TEXT,
    origin           TEXT NOT NULL CHECK (origin = 'exchange' OR origin = 'calgate'),
    stored_at        INTEGER NOT NULL,
    PRIMARY KEY (mailbox_id, exchange_id),
    CHECK (end_us >= start_us),
    CHECK ((all_day_start IS NULL) = (all_day_end IS NULL))
);
INSERT INTO instances_v18 (rowid, mailbox_id, exchange_id, id, ical_uid, type, series_master_id,
                           start_us, end_us, all_day_start, all_day_end, time_zone, show_as,
                           sensitivity, subject, location, body_preview, organizer, attendees,
                           web_link, change_key, last_modified, origin, stored_at)
    SELECT rowid, mailbox_id, exchange_id, id, ical_uid, type, series_master_id, start_us, end_us,
           all_day_start, all_day_end, time_zone, show_as, sensitivity, subject, location,
           body_preview, organizer, attendees, web_link, change_key, last_modified, origin,
           stored_at
    FROM instances;
DROP TABLE instances;
ALTER TABLE instances_v18 RENAME TO instances;
CREATE INDEX instances_busy ON instances (mailbox_id, start_us, end_us, show_as);

CREATE TABLE shadow_instances_v18 (
    mailbox_id       INTEGER NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
    exchange_id      TEXT NOT NULL,
    id               TEXT NOT NULL,
    ical_uid         TEXT,
    type             TEXT NOT NULL
                     CHECK (type = 'singleInstance' OR type = 'occurrence' OR type = 'exception'),
    series_master_id TEXT,
    start_us         INTEGER NOT NULL,
    end_us           INTEGER NOT NULL,
    all_day_start    TEXT,
    all_day_end      TEXT,
    time_zone        TEXT NOT NULL,
    show_as          TEXT NOT NULL,
    sensitivity      TEXT NOT NULL,
    subject          TEXT,
    location         TEXT,
    body_preview     TEXT,
    organizer        TEXT,
    attendees        TEXT NOT NULL,
    web_link         TEXT,
    change_key       TEXT,
    last_modified    TEXT,
    origin           TEXT NOT NULL CHECK (origin = 'exchange' OR origin = 'calgate'),
    stored_at        INTEGER NOT NULL,
    PRIMARY KEY (mailbox_id, exchange_id),
    CHECK (end_us >= start_us),
    CHECK ((all_day_start IS NULL) = (all_day_end IS NULL))
);
INSERT INTO shadow_instances_v18 (rowid, mailbox_id, exchange_id, id, ical_uid, type,
                                  series_master_id, start_us, end_us, all_day_start, all_day_end,
                                  time_zone, show_as, sensitivity, subject, location,
                                  body_preview, organizer, attendees, web_link, change_key,
                                  last_modified, origin, stored_at)
    SELECT rowid, mailbox_id, exchange_id, id, ical_uid, type, series_master_id, start_us, end_us,
           all_day_start, all_day_end, time_zone, show_as, sensitivity, subject, location,
           body_preview, organizer, attendees, web_link, change_key, last_modified, origin,
           stored_at
    FROM shadow_instances;
DROP TABLE shadow_instances;
ALTER TABLE shadow_instances_v18 RENAME TO shadow_instances;

CREATE TABLE change_log_v18 (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    -- NULL for events about no mailbox (credentials)
    mailbox_id  INTEGER,
    address     TEXT,
    instance_id TEXT,
    exchange_id TEXT,
    op          TEXT NOT NULL
                CHECK (op = 'created' OR op = 'updated' OR op = 'deleted'
                       OR op = 'mailbox.sync_failed' OR op = 'mailbox.recovered'
                       OR op = 'booking.synced' OR op = 'booking.failed'
                       OR op = 'booking.drifted' OR op = 'booking.deleted_in_exchange'
                       OR op = 'credential.expiring' OR op = 'credential.expired'),
    start_us    INTEGER,
    end_us      INTEGER,
    at          INTEGER NOT NULL,
    data        TEXT,
    -- 'round' or 'resync' for instance rows (v14); NULL before v14 and for notices
    via         TEXT,
    CHECK ((op = 'created' OR op = 'updated' OR op = 'deleted') =
           (mailbox_id IS NOT NULL AND instance_id IS NOT NULL AND exchange_id IS NOT NULL))
);
INSERT INTO change_log_v18 (seq, mailbox_id, address, instance_id, exchange_id, op, start_us,
                            end_us, at, data, via)
    SELECT seq, mailbox_id, address, instance_id, exchange_id, op, start_us, end_us, at, data,
           via
    FROM change_log;
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'change_log_v18', seq FROM sqlite_sequence WHERE name = 'change_log'
    AND NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'change_log_v18');
UPDATE sqlite_sequence SET seq = MAX(seq, (SELECT s.seq FROM sqlite_sequence s
                                           WHERE s.name = 'change_log'))
    WHERE name = 'change_log_v18' AND EXISTS (SELECT 1 FROM sqlite_sequence s
                                              WHERE s.name = 'change_log');
DROP TABLE change_log;
ALTER TABLE change_log_v18 RENAME TO change_log;
CREATE INDEX change_log_by_mailbox ON change_log (mailbox_id, seq);
CREATE INDEX change_log_by_time ON change_log (at);

CREATE TABLE webhook_deliveries_v18 (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id   TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    msg_id       TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    partition    TEXT NOT NULL,
    type         TEXT NOT NULL,
    payload      TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state = 'pending' OR state = 'delivered' OR state = 'dead'),
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_at      INTEGER NOT NULL,
    last_status  INTEGER,
    last_error   TEXT,
    created_at   INTEGER NOT NULL,
    finished_at  INTEGER,
    UNIQUE (webhook_id, seq)
);
INSERT INTO webhook_deliveries_v18 (id, webhook_id, msg_id, seq, partition, type, payload, state,
                                    attempts, next_at, last_status, last_error, created_at,
                                    finished_at)
    SELECT id, webhook_id, msg_id, seq, partition, type, payload, state, attempts, next_at,
           last_status, last_error, created_at, finished_at
    FROM webhook_deliveries;
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'webhook_deliveries_v18', seq FROM sqlite_sequence WHERE name = 'webhook_deliveries'
    AND NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'webhook_deliveries_v18');
UPDATE sqlite_sequence SET seq = MAX(seq, (SELECT s.seq FROM sqlite_sequence s
                                           WHERE s.name = 'webhook_deliveries'))
    WHERE name = 'webhook_deliveries_v18' AND EXISTS (SELECT 1 FROM sqlite_sequence s
                                                      WHERE s.name = 'webhook_deliveries');
DROP TABLE webhook_deliveries;
ALTER TABLE webhook_deliveries_v18 RENAME TO webhook_deliveries;
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (state, next_at);
CREATE INDEX webhook_deliveries_order ON webhook_deliveries (webhook_id, partition, state, id);
