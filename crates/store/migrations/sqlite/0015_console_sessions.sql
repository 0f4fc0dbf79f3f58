-- calgate store, SQLite schema v15: the admin console's sessions, kept in the store so that a
-- restart of `calgate serve` signs nobody out and every instance sharing the store knows them.
-- Only the SHA-256 of a session's token is stored (the token itself is only in the browser's
-- cookie); expired rows are deleted when a session is opened.
CREATE TABLE console_sessions (
    token_sha256 BLOB PRIMARY KEY,
    -- the session's CSRF token (every form carries it)
    csrf         TEXT NOT NULL,
    -- how the administrator signed in, as the overview says it
    via          TEXT NOT NULL,
    expires_at   INTEGER NOT NULL
);
CREATE INDEX console_sessions_by_expiry ON console_sessions (expires_at);
