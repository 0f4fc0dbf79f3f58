-- calgate store, SQLite schema v13: connections to Exchange Server through EWS. A connection
-- is of kind 'graph' (an Entra ID app registration, its credentials in `credentials`) or 'ews'
-- (a service account: URL, user name, authentication scheme, impersonation or delegate access,
-- and its password sealed like a client secret, bound to `ews_uid`). An EWS connection keeps
-- the Graph columns empty.
ALTER TABLE connections ADD COLUMN kind TEXT NOT NULL DEFAULT 'graph' CHECK (kind IN ('graph', 'ews'));
ALTER TABLE connections ADD COLUMN ews_url TEXT;
ALTER TABLE connections ADD COLUMN ews_username TEXT;
ALTER TABLE connections ADD COLUMN ews_auth TEXT CHECK (ews_auth IS NULL OR ews_auth IN ('basic', 'ntlm'));
ALTER TABLE connections ADD COLUMN ews_impersonation INTEGER NOT NULL DEFAULT 0;
ALTER TABLE connections ADD COLUMN ews_uid TEXT;
ALTER TABLE connections ADD COLUMN ews_sealed_password BLOB;
