-- Key pairs: named SSH public keys a tenant saves and picks at launch (the chosen keys are copied into the
-- VM's `ssh_key` lines at launch, so deleting a key pair later does not change a VM's config disk).
CREATE TABLE key_pairs (
    id           TEXT PRIMARY KEY NOT NULL,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    name         TEXT NOT NULL,
    -- The normalised OpenSSH line: `<algorithm> <base64> [comment]`.
    public_key   TEXT NOT NULL,
    algorithm    TEXT NOT NULL,
    bits         INTEGER NOT NULL,
    -- `SHA256:<base64>`, as `ssh-keygen -l` prints it.
    fingerprint  TEXT NOT NULL,
    created_by   TEXT NOT NULL REFERENCES users (id),
    created_at   INTEGER NOT NULL,
    UNIQUE (tenant_id, name)
) STRICT;

-- The lists that sort (instances, the admin view of every VM).
CREATE INDEX vms_by_state_created ON vms (state, created_at);
CREATE INDEX vms_by_tenant_name ON vms (tenant_id, name);
