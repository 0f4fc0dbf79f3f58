-- calgate store, SQLite schema v4: a connection's own extra root CA certificates (PEM), trusted
-- for that connection only (earlier versions kept them as files beside the database and trusted
-- every connection's for all of them).
ALTER TABLE connections ADD COLUMN ca_cert_pem TEXT;
