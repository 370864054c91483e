-- Console tokens: short-lived (at most 60 s), single-use tickets that let a browser open a VM's graphical
-- (vnc) or serial console over a WebSocket, bound to the user who asked and the VM. Only the SHA-256 of the
-- 256-bit secret is stored. Redeeming sets `used_at` in the same statement that checks it is unset and
-- unexpired, so a token opens at most one connection.
CREATE TABLE console_tokens (
    token_hash  TEXT PRIMARY KEY NOT NULL,
    user_id     TEXT NOT NULL REFERENCES users (id),
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    vm_id       TEXT NOT NULL REFERENCES vms (id) ON DELETE CASCADE,
    kind        TEXT NOT NULL CHECK (kind IN ('vnc', 'serial')),
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL CHECK (expires_at > created_at AND expires_at - created_at <= 60),
    used_at     INTEGER
) STRICT;

CREATE INDEX console_tokens_expires ON console_tokens (expires_at);
