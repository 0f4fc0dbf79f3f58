-- calgate store, SQLite schema v3: sync leases, shadow sets owned by a round, pending resyncs,
-- and privacy applied when writing.

-- One row per mailbox that was ever leased. A round of a mailbox runs only under its lease:
-- exactly one process at a time, across processes and (later) `calgate serve` instances. Every
-- write of a round presents the token it was granted; a write whose token is not the current
-- one (the lease lapsed and another process took it) is refused. The token only grows, so the
-- row is kept on release (owner NULL) rather than deleted.
CREATE TABLE sync_leases (
    mailbox_id  INTEGER PRIMARY KEY NOT NULL REFERENCES mailboxes (id) ON DELETE CASCADE,
    token       INTEGER NOT NULL,
    -- the holder: a random id per process, its pid and host (NULL: released)
    owner       TEXT,
    pid         INTEGER,
    host        TEXT,
    acquired_at INTEGER,
    -- unix microseconds after which the lease lapses unless renewed
    deadline    INTEGER
);

-- A shadow set belongs to the round (lease token) that began it.
ALTER TABLE shadows ADD COLUMN lease_token INTEGER NOT NULL DEFAULT 0;
-- The pending-resync request the shadow's round will satisfy (see mailboxes.resync_seq).
ALTER TABLE shadows ADD COLUMN resync_seq INTEGER NOT NULL DEFAULT 0;

-- A full resync the next round must make (e.g. the privacy policy was widened, so details
-- that were never stored must be fetched), and a counter of such requests: a commit clears
-- the request only if its resync began after the request was made.
ALTER TABLE mailboxes ADD COLUMN resync_reason TEXT;
ALTER TABLE mailboxes ADD COLUMN resync_seq INTEGER NOT NULL DEFAULT 0;

-- Privacy is applied when writing from now on: scrub what earlier versions stored beyond
-- what each mailbox's policy lets anyone see.
UPDATE instances SET subject = NULL, location = NULL, body_preview = NULL, organizer = NULL,
    attendees = '[]'
WHERE mailbox_id IN (SELECT id FROM mailboxes WHERE privacy = 'busy-only')
   OR (sensitivity IN ('private', 'confidential')
       AND mailbox_id IN (SELECT id FROM mailboxes WHERE privacy = 'full'));
UPDATE shadow_instances SET subject = NULL, location = NULL, body_preview = NULL,
    organizer = NULL, attendees = '[]'
WHERE mailbox_id IN (SELECT id FROM mailboxes WHERE privacy = 'busy-only')
   OR (sensitivity IN ('private', 'confidential')
       AND mailbox_id IN (SELECT id FROM mailboxes WHERE privacy = 'full'));
UPDATE series_masters SET subject = NULL, location = NULL, organizer = NULL
WHERE mailbox_id IN (SELECT id FROM mailboxes WHERE privacy = 'busy-only')
   OR (sensitivity IN ('private', 'confidential')
       AND mailbox_id IN (SELECT id FROM mailboxes WHERE privacy = 'full'));
UPDATE shadow_series_masters SET subject = NULL, location = NULL, organizer = NULL
WHERE mailbox_id IN (SELECT id FROM mailboxes WHERE privacy = 'busy-only')
   OR (sensitivity IN ('private', 'confidential')
       AND mailbox_id IN (SELECT id FROM mailboxes WHERE privacy = 'full'));
