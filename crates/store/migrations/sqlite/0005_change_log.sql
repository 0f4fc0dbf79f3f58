-- calgate store, SQLite schema v5: the change log — one row per instance created, updated or
-- deleted in a mailbox's live set, written in the same transaction as the change. It is the
-- source of the host application's webhooks and change feed (`GET /v1/changes`). Replays of an
-- unchanged instance write nothing. Rows outlive an unlinked mailbox (the address is kept).
CREATE TABLE change_log (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    mailbox_id  INTEGER NOT NULL,
    address     TEXT NOT NULL,
    -- calgate's id of the instance, and Exchange's
    instance_id TEXT NOT NULL,
    exchange_id TEXT NOT NULL,
    op          TEXT NOT NULL CHECK (op IN ('created', 'updated', 'deleted')),
    start_us    INTEGER,
    end_us      INTEGER,
    at          INTEGER NOT NULL
);
CREATE INDEX change_log_by_mailbox ON change_log (mailbox_id, seq);
CREATE INDEX change_log_by_time ON change_log (at);
