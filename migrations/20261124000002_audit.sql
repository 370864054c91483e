-- The audit log: append-only and hash-chained. Each entry's `hash` is SHA-256 over the previous entry's
-- hash and this entry's fields (see server/src/db/audit.rs), so editing or deleting any entry breaks the
-- chain from there on, which `verify` reports.
CREATE TABLE audit_log (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    at          INTEGER NOT NULL,
    -- Who: a user id and name at the time (kept even if the user is renamed), or 'system'.
    actor_id    TEXT,
    actor_name  TEXT NOT NULL,
    tenant_id   TEXT,
    action      TEXT NOT NULL,
    target      TEXT NOT NULL DEFAULT '',
    detail      TEXT NOT NULL DEFAULT '',
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL UNIQUE
) STRICT;

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
