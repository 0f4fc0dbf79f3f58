-- calgate store, SQLite schema v9: in meeting mode, each calendar's answer to the meeting
-- (accepted, tentativelyAccepted, declined, notResponded, none), as the organizer's event
-- in Exchange shows it.
ALTER TABLE booking_targets ADD COLUMN response TEXT;
-- Meeting mode: the copies Exchange puts into the attendees' calendars are found by the
-- meeting's iCalUId (they have ids of their own).
CREATE INDEX booking_targets_by_uid ON booking_targets (address_key, ical_uid);
