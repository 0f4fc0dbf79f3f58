-- calgate store, SQLite schema v10: what calgate does when someone edits one of its events in
-- Outlook — per connection: 'app-wins' (put the booking back) or 'report' (mark the calendar
-- 'drifted' and leave Exchange alone) — and the 'drifted' state of a booking's calendar.
ALTER TABLE connections ADD COLUMN outlook_edits TEXT NOT NULL DEFAULT 'app-wins'
    CHECK (outlook_edits IN ('app-wins', 'report'));

CREATE TABLE booking_targets_v10 (
    external_id    TEXT NOT NULL REFERENCES bookings (external_id) ON DELETE CASCADE,
    address_key    TEXT NOT NULL,
    address        TEXT NOT NULL,
    role           TEXT NOT NULL CHECK (role IN ('organizer', 'attendee', 'room', 'equipment')),
    state          TEXT NOT NULL CHECK (state IN ('pending', 'synced', 'failed', 'deleting',
                                                  'deleted', 'deleted_in_exchange', 'drifted')),
    exchange_id    TEXT,
    ical_uid       TEXT,
    web_link       TEXT,
    change_key     TEXT,
    error          TEXT,
    pushed_version INTEGER NOT NULL DEFAULT 0,
    updated_at     INTEGER NOT NULL,
    response       TEXT,
    PRIMARY KEY (external_id, address_key)
);
INSERT INTO booking_targets_v10 (external_id, address_key, address, role, state, exchange_id,
    ical_uid, web_link, change_key, error, pushed_version, updated_at, response)
SELECT external_id, address_key, address, role, state, exchange_id, ical_uid, web_link,
    change_key, error, pushed_version, updated_at, response FROM booking_targets;
DROP TABLE booking_targets;
ALTER TABLE booking_targets_v10 RENAME TO booking_targets;
CREATE INDEX booking_targets_by_event ON booking_targets (address_key, exchange_id);
CREATE INDEX booking_targets_by_uid ON booking_targets (address_key, ical_uid);
