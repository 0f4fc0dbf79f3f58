-- calgate store, SQLite schema v7: availability reads every asked-for mailbox's spans over a
-- window; a covering index (mailbox, start, end, status) answers that from the index alone.
-- It replaces instances_by_start, whose columns it begins with.
CREATE INDEX instances_busy ON instances (mailbox_id, start_us, end_us, show_as);
DROP INDEX instances_by_start;
