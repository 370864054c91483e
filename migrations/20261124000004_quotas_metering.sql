-- Quotas per tenant and the usage ledger.

-- Limits per tenant. A tenant without a row has the defaults (row tenant_id = '*').
CREATE TABLE quotas (
    tenant_id   TEXT PRIMARY KEY NOT NULL,
    instances   INTEGER NOT NULL CHECK (instances >= 0),
    vcpus       INTEGER NOT NULL CHECK (vcpus >= 0),
    memory_mib  INTEGER NOT NULL CHECK (memory_mib >= 0),
    disk_gib    INTEGER NOT NULL CHECK (disk_gib >= 0),
    updated_at  INTEGER NOT NULL
) STRICT;
INSERT INTO quotas (tenant_id, instances, vcpus, memory_mib, disk_gib, updated_at)
VALUES ('*', 10, 16, 32768, 500, 0);

-- One row per interval a VM was powered on (starting, running, rebooting or stopping), with the flavor and
-- price it had when the interval opened. Rows are only appended, and `ended_at` is set once (NULL → time).
CREATE TABLE usage_intervals (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    vm_id               TEXT NOT NULL REFERENCES vms (id),
    tenant_id           TEXT NOT NULL REFERENCES tenants (id),
    vm_name             TEXT NOT NULL,
    flavor_id           TEXT NOT NULL,
    flavor_name         TEXT NOT NULL,
    vcpus               INTEGER NOT NULL,
    memory_mib          INTEGER NOT NULL,
    hourly_price_minor  INTEGER NOT NULL,
    started_at          INTEGER NOT NULL,
    ended_at            INTEGER,
    CHECK (ended_at IS NULL OR ended_at >= started_at)
) STRICT;
CREATE INDEX usage_by_tenant ON usage_intervals (tenant_id, started_at);
-- At most one open interval per VM.
CREATE UNIQUE INDEX usage_one_open ON usage_intervals (vm_id) WHERE ended_at IS NULL;

CREATE TRIGGER usage_close_only BEFORE UPDATE ON usage_intervals
WHEN OLD.ended_at IS NOT NULL OR NEW.ended_at IS NULL
  OR NEW.vm_id IS NOT OLD.vm_id OR NEW.tenant_id IS NOT OLD.tenant_id OR NEW.started_at IS NOT OLD.started_at
  OR NEW.hourly_price_minor IS NOT OLD.hourly_price_minor OR NEW.vcpus IS NOT OLD.vcpus
  OR NEW.memory_mib IS NOT OLD.memory_mib OR NEW.flavor_id IS NOT OLD.flavor_id
BEGIN SELECT RAISE(ABORT, 'usage intervals are append-only: only an open interval may be closed'); END;
CREATE TRIGGER usage_no_delete BEFORE DELETE ON usage_intervals
BEGIN SELECT RAISE(ABORT, 'usage intervals are append-only'); END;
