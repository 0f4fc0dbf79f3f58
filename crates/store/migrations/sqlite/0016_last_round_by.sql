-- calgate store, SQLite schema v16: which calgate process ran each mailbox's last round
-- ("pid 4242 on host-a"), for `GET /v1/mailboxes` and the console when several processes (or
-- `calgate sync` beside `calgate serve`) share the store. NULL until a round finishes.
ALTER TABLE sync_status ADD COLUMN last_round_by TEXT;
