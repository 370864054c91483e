-- The catalogue (flavors, images), virtual machines, their state history and the audit log.
-- Times are unix seconds (UTC); money is integer minor units (cents).

CREATE TABLE flavors (
    id                   TEXT PRIMARY KEY NOT NULL,
    name                 TEXT NOT NULL UNIQUE,
    vcpus                INTEGER NOT NULL CHECK (vcpus BETWEEN 1 AND 4),
    memory_mib           INTEGER NOT NULL CHECK (memory_mib BETWEEN 64 AND 8192),
    disk_gib             INTEGER NOT NULL CHECK (disk_gib BETWEEN 1 AND 2048),
    hourly_price_minor   INTEGER NOT NULL CHECK (hourly_price_minor >= 0),
    disabled             INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at           INTEGER NOT NULL
) STRICT;

CREATE TABLE images (
    id               TEXT PRIMARY KEY NOT NULL,
    name             TEXT NOT NULL UNIQUE,
    os               TEXT NOT NULL,
    -- Absolute paths of the boot files; uploaded images live under <data_dir>/images/<id>/.
    kernel_path      TEXT NOT NULL,
    initrd_path      TEXT,
    root_disk_path   TEXT,
    cmdline          TEXT NOT NULL DEFAULT '',
    -- Appended to the command line on hosts whose KVM emulates guest instructions (see FACTS.md).
    emulated_cmdline TEXT NOT NULL DEFAULT '',
    virtio_discovery TEXT NOT NULL DEFAULT 'cmdline' CHECK (virtio_discovery IN ('cmdline', 'acpi', 'both')),
    -- Public images have no owner; otherwise only this tenant sees the image.
    owner_tenant_id  TEXT REFERENCES tenants (id),
    is_test          INTEGER NOT NULL DEFAULT 0 CHECK (is_test IN (0, 1)),
    uploaded         INTEGER NOT NULL DEFAULT 0 CHECK (uploaded IN (0, 1)),
    size_bytes       INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL
) STRICT;

CREATE TABLE vms (
    id              TEXT PRIMARY KEY NOT NULL,
    tenant_id       TEXT NOT NULL REFERENCES tenants (id),
    created_by      TEXT NOT NULL REFERENCES users (id),
    name            TEXT NOT NULL,
    image_id        TEXT NOT NULL REFERENCES images (id),
    flavor_id       TEXT NOT NULL REFERENCES flavors (id),
    -- Flavor snapshot at launch: what the VM runs with even if the flavor changes later.
    vcpus           INTEGER NOT NULL,
    memory_mib      INTEGER NOT NULL,
    disk_gib        INTEGER NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('creating', 'starting', 'running', 'stopping', 'stopped',
                        'rebooting', 'crashed', 'deleting', 'deleted')),
    -- Why the VM is in its state (e.g. the VMM's exit reason for `crashed`).
    state_reason    TEXT NOT NULL DEFAULT '',
    ssh_key         TEXT NOT NULL DEFAULT '',
    user_data       TEXT NOT NULL DEFAULT '',
    -- The running VMM process: pid and its start time (clock ticks since boot, /proc/<pid>/stat field 22),
    -- which together identify the process even if the pid is reused.
    pid             INTEGER,
    pid_start_ticks INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    started_at      INTEGER,
    deleted_at      INTEGER
) STRICT;
CREATE INDEX vms_by_tenant ON vms (tenant_id, state);
-- Names are unique among a tenant's VMs that are not deleted.
CREATE UNIQUE INDEX vms_live_name ON vms (tenant_id, name) WHERE state <> 'deleted';

CREATE TABLE vm_events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    vm_id      TEXT NOT NULL REFERENCES vms (id),
    at         INTEGER NOT NULL,
    from_state TEXT,
    to_state   TEXT NOT NULL,
    -- Who caused it: a user id, or NULL for the system (supervisor, guest, reconciliation).
    actor      TEXT,
    message    TEXT NOT NULL DEFAULT ''
) STRICT;
CREATE INDEX vm_events_by_vm ON vm_events (vm_id, id);
