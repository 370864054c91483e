-- Boot progress and admission control (issue 16).
-- A running VM's guest is "booting" until it announces readiness (guest_ready_rule set): the time it
-- announced (unix seconds), the milliseconds from its VMM's start, and which rule saw it. `boot_line` is
-- the last line the guest printed on its serial console while booting (ANSI stripped). All four are reset
-- when a new VMM run starts.
ALTER TABLE vms ADD COLUMN guest_ready_at INTEGER;
ALTER TABLE vms ADD COLUMN guest_ready_after_ms INTEGER;
ALTER TABLE vms ADD COLUMN guest_ready_rule TEXT NOT NULL DEFAULT ''
    CHECK (guest_ready_rule IN ('', 'marker', 'login', 'none'));
ALTER TABLE vms ADD COLUMN boot_line TEXT NOT NULL DEFAULT '';

-- What each host can hold, written by the portal at start from the machine and the `admission.*`
-- settings; launches and starts are checked against it in the quota check's transaction.
CREATE TABLE host_capacity (
    host                TEXT PRIMARY KEY NOT NULL,
    cpus                INTEGER NOT NULL,
    memory_physical_mib INTEGER NOT NULL,
    -- What VMs may commit: physical x overcommit - reserve, or the configured override.
    memory_mib          INTEGER NOT NULL,
    memory_overcommit   REAL NOT NULL,
    disk_physical_mib   INTEGER NOT NULL,
    disk_mib            INTEGER NOT NULL,
    disk_overcommit     REAL NOT NULL,
    updated_at          INTEGER NOT NULL
) STRICT;
