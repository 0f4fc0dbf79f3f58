-- calgate store, SQLite schema v8: push — the host application's bookings, their targets (one
-- per calendar a booking goes into) and the outbox of writes to Exchange.

-- A booking as the host application last put it (spec: JSON of calgate_core::BookingSpec).
CREATE TABLE bookings (
    external_id  TEXT PRIMARY KEY NOT NULL,
    spec         TEXT NOT NULL,
    -- bumped on every change of the spec; a target is up to date when pushed_version = version
    version      INTEGER NOT NULL,
    deleted      INTEGER NOT NULL DEFAULT 0 CHECK (deleted IN (0, 1)),
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);

-- One calendar of a booking. Kept by address (not by mailbox row), so unlinking a mailbox
-- does not forget what calgate wrote into it.
CREATE TABLE booking_targets (
    external_id    TEXT NOT NULL REFERENCES bookings (external_id) ON DELETE CASCADE,
    address_key    TEXT NOT NULL,
    address        TEXT NOT NULL,
    role           TEXT NOT NULL CHECK (role IN ('organizer', 'attendee', 'room', 'equipment')),
    state          TEXT NOT NULL CHECK (state IN ('pending', 'synced', 'failed', 'deleting',
                                                  'deleted', 'deleted_in_exchange')),
    exchange_id    TEXT,
    ical_uid       TEXT,
    web_link       TEXT,
    change_key     TEXT,
    error          TEXT,
    pushed_version INTEGER NOT NULL DEFAULT 0,
    updated_at     INTEGER NOT NULL,
    PRIMARY KEY (external_id, address_key)
);
-- Pulled instances find their booking by (mailbox, event id): echo detection.
CREATE INDEX booking_targets_by_event ON booking_targets (address_key, exchange_id);

-- The outbox: one entry per target with work left, written in the same transaction as the
-- booking change that made the work. A newer change of the same target replaces the entry's
-- version (the writes coalesce); the entry id names the attempt series (its transactionId).
CREATE TABLE push_outbox (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    external_id  TEXT NOT NULL,
    address_key  TEXT NOT NULL,
    -- 'upsert' or 'delete'
    op           TEXT NOT NULL CHECK (op IN ('upsert', 'delete')),
    version      INTEGER NOT NULL,
    -- attempts begun; > 0 means an earlier attempt's outcome is unknown (look before creating)
    attempts     INTEGER NOT NULL DEFAULT 0,
    not_before   INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    UNIQUE (external_id, address_key)
);
CREATE INDEX push_outbox_due ON push_outbox (not_before);
