-- calgate store, SQLite schema v1.
--
-- Conventions (a PostgreSQL schema must keep the same meaning):
--   * instants are INTEGER unix microseconds (UTC); they sort and index as numbers;
--   * civil dates (all-day events) are TEXT 'YYYY-MM-DD';
--   * enumerations are TEXT in calgate's spelling ('busy', 'room', 'busy-only', …);
--   * secrets are BLOBs sealed with AES-256-GCM (version byte || 96-bit nonce || ciphertext+tag);
--   * lists and records without a query need (attendees, organizer, recurrence) are JSON TEXT;
--   * e-mail addresses are unique case-insensitively through a lower-cased key column computed
--     by the store (portable, Unicode-aware; no COLLATE NOCASE).

-- Store-wide facts: the master key check value, the schema's owner.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value BLOB NOT NULL
);

CREATE TABLE connections (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    tenant     TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    authority  TEXT NOT NULL,
    graph_url  TEXT NOT NULL,
    cloud      TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

-- Two or more per connection, so a secret can be rotated without downtime.
CREATE TABLE credentials (
    id              INTEGER PRIMARY KEY,
    connection_id   INTEGER NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    -- random id, bound into the ciphertext as AEAD associated data (a sealed value cannot be
    -- moved to another row undetected)
    uid             TEXT NOT NULL UNIQUE,
    kind            TEXT NOT NULL CHECK (kind IN ('secret', 'certificate')),
    -- the secret's value, or the certificate's PEM private key, sealed
    sealed_secret   BLOB NOT NULL,
    -- public certificate PEM (certificates only), plain
    certificate_pem TEXT,
    -- the secret's ID in Entra ID, or the certificate's thumbprint
    key_id          TEXT,
    expires_at      INTEGER,
    added_at        INTEGER NOT NULL
);
CREATE INDEX credentials_by_connection ON credentials (connection_id);

CREATE TABLE mailboxes (
    id            INTEGER PRIMARY KEY,
    address       TEXT NOT NULL,
    address_key   TEXT NOT NULL UNIQUE,
    connection_id INTEGER NOT NULL REFERENCES connections (id) ON DELETE RESTRICT,
    kind          TEXT NOT NULL CHECK (kind IN ('user', 'room', 'equipment')),
    external_id   TEXT,
    privacy       TEXT NOT NULL CHECK (privacy IN ('full', 'busy-only', 'full-including-private')),
    linked_at     INTEGER NOT NULL
);
CREATE INDEX mailboxes_by_connection ON mailboxes (connection_id);

-- Live instances: what readers see.
CREATE TABLE instances (
    mailbox_id       INTEGER NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
    exchange_id      TEXT NOT NULL,
    -- calgate's own id of the instance, stable across updates and full resyncs
    id               TEXT NOT NULL,
    ical_uid         TEXT,
    type             TEXT NOT NULL CHECK (type IN ('singleInstance', 'occurrence', 'exception')),
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
    origin           TEXT NOT NULL CHECK (origin IN ('exchange', 'calgate')),
    stored_at        INTEGER NOT NULL,
    PRIMARY KEY (mailbox_id, exchange_id),
    CHECK (end_us >= start_us),
    CHECK ((all_day_start IS NULL) = (all_day_end IS NULL))
);
CREATE INDEX instances_by_start ON instances (mailbox_id, start_us);

-- The shadow set of a full resync in progress; same shape, swapped in by commit_shadow.
CREATE TABLE shadow_instances (
    mailbox_id       INTEGER NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
    exchange_id      TEXT NOT NULL,
    id               TEXT NOT NULL,
    ical_uid         TEXT,
    type             TEXT NOT NULL CHECK (type IN ('singleInstance', 'occurrence', 'exception')),
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
    origin           TEXT NOT NULL CHECK (origin IN ('exchange', 'calgate')),
    stored_at        INTEGER NOT NULL,
    PRIMARY KEY (mailbox_id, exchange_id),
    CHECK (end_us >= start_us),
    CHECK ((all_day_start IS NULL) = (all_day_end IS NULL))
);

CREATE TABLE series_masters (
    mailbox_id    INTEGER NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
    exchange_id   TEXT NOT NULL,
    ical_uid      TEXT,
    subject       TEXT,
    location      TEXT,
    organizer     TEXT,
    recurrence    TEXT,
    start_us      INTEGER,
    end_us        INTEGER,
    time_zone     TEXT,
    show_as       TEXT,
    sensitivity   TEXT,
    web_link      TEXT,
    change_key    TEXT,
    last_modified TEXT,
    stored_at     INTEGER NOT NULL,
    PRIMARY KEY (mailbox_id, exchange_id)
);

CREATE TABLE shadow_series_masters (
    mailbox_id    INTEGER NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
    exchange_id   TEXT NOT NULL,
    ical_uid      TEXT,
    subject       TEXT,
    location      TEXT,
    organizer     TEXT,
    recurrence    TEXT,
    start_us      INTEGER,
    end_us        INTEGER,
    time_zone     TEXT,
    show_as       TEXT,
    sensitivity   TEXT,
    web_link      TEXT,
    change_key    TEXT,
    last_modified TEXT,
    stored_at     INTEGER NOT NULL,
    PRIMARY KEY (mailbox_id, exchange_id)
);

-- One row per mailbox with a full resync in progress.
CREATE TABLE shadows (
    mailbox_id   INTEGER PRIMARY KEY NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
    window_start INTEGER NOT NULL,
    window_end   INTEGER NOT NULL,
    -- the resync's own progress link (nextLink / deltaLink), if the caller recorded one
    delta_link   TEXT,
    started_at   INTEGER NOT NULL,
    CHECK (window_end >= window_start)
);

CREATE TABLE delta_cursors (
    mailbox_id   INTEGER PRIMARY KEY NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
    delta_link   TEXT NOT NULL,
    window_start INTEGER NOT NULL,
    window_end   INTEGER NOT NULL,
    rebased_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    CHECK (window_end >= window_start)
);

CREATE TABLE sync_status (
    mailbox_id           INTEGER PRIMARY KEY NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
    last_attempt         INTEGER,
    last_success         INTEGER,
    last_error_class     TEXT,
    last_error_message   TEXT,
    last_error_at        INTEGER,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    next_action          TEXT,
    next_run_at          INTEGER,
    lag_us               INTEGER,
    rounds               INTEGER NOT NULL DEFAULT 0,
    requests             INTEGER NOT NULL DEFAULT 0,
    throttled            INTEGER NOT NULL DEFAULT 0,
    upserts              INTEGER NOT NULL DEFAULT 0,
    removals             INTEGER NOT NULL DEFAULT 0,
    full_resyncs         INTEGER NOT NULL DEFAULT 0
);
