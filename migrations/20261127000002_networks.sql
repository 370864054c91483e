-- Tenant networks (issue 14): networks with their address block, VM ports (a NIC on a network with its
-- MAC, fixed address and TAP), security groups and their ingress rules, port forwards and floating IPs.
-- The host realises all of it from these rows (netplane); addresses are allocated here, in the same
-- transaction as the VM they belong to.

CREATE TABLE networks (
    id          TEXT PRIMARY KEY NOT NULL,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    name        TEXT NOT NULL,
    -- Index of the network's /24 in the configured pool: its block, bridge name (cpbr<slot>) and VXLAN id
    -- all derive from it, so no two networks can overlap.
    slot        INTEGER NOT NULL UNIQUE CHECK (slot >= 0),
    cidr        TEXT NOT NULL UNIQUE,
    gateway     TEXT NOT NULL,
    mtu         INTEGER NOT NULL CHECK (mtu BETWEEN 576 AND 9000),
    -- Reserved for when the network spans hosts (VXLAN VNI).
    vxlan_id    INTEGER NOT NULL UNIQUE CHECK (vxlan_id BETWEEN 1 AND 16777215),
    is_default  INTEGER NOT NULL DEFAULT 0 CHECK (is_default IN (0, 1)),
    created_at  INTEGER NOT NULL,
    UNIQUE (tenant_id, name)
) STRICT;
CREATE UNIQUE INDEX networks_one_default ON networks (tenant_id) WHERE is_default = 1;

-- A VM's network card. The INTEGER key numbers MACs and TAP names, so both are unique by construction.
CREATE TABLE ports (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL UNIQUE,
    vm_id       TEXT NOT NULL REFERENCES vms (id),
    network_id  TEXT NOT NULL REFERENCES networks (id),
    -- Order of the card in the guest (eth0 first).
    nic_index   INTEGER NOT NULL CHECK (nic_index >= 0),
    mac         TEXT NOT NULL UNIQUE,
    ip          TEXT NOT NULL,
    tap         TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    -- An address is held while its port exists; deleting the port (with its VM) releases it.
    UNIQUE (network_id, ip),
    UNIQUE (vm_id, nic_index)
) STRICT;
CREATE INDEX ports_by_vm ON ports (vm_id);

CREATE TABLE security_groups (
    id          TEXT PRIMARY KEY NOT NULL,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    is_default  INTEGER NOT NULL DEFAULT 0 CHECK (is_default IN (0, 1)),
    created_at  INTEGER NOT NULL,
    UNIQUE (tenant_id, name)
) STRICT;
CREATE UNIQUE INDEX security_groups_one_default ON security_groups (tenant_id) WHERE is_default = 1;

-- Ingress allowed when protocol, destination port range and source (a CIDR or the members of a group)
-- all match. Egress is always allowed; replies are allowed by connection tracking.
CREATE TABLE security_group_rules (
    id              TEXT PRIMARY KEY NOT NULL,
    group_id        TEXT NOT NULL REFERENCES security_groups (id) ON DELETE CASCADE,
    protocol        TEXT NOT NULL CHECK (protocol IN ('any', 'tcp', 'udp', 'icmp')),
    port_min        INTEGER CHECK (port_min BETWEEN 1 AND 65535),
    port_max        INTEGER CHECK (port_max BETWEEN 1 AND 65535),
    source_cidr     TEXT,
    source_group_id TEXT REFERENCES security_groups (id) ON DELETE CASCADE,
    created_at      INTEGER NOT NULL,
    CHECK ((source_cidr IS NULL) <> (source_group_id IS NULL)),
    CHECK ((port_min IS NULL) = (port_max IS NULL)),
    CHECK (port_min IS NULL OR (port_min <= port_max AND protocol IN ('tcp', 'udp')))
) STRICT;
CREATE INDEX security_group_rules_by_group ON security_group_rules (group_id);

-- The groups applied to a VM's ports.
CREATE TABLE vm_security_groups (
    vm_id     TEXT NOT NULL REFERENCES vms (id),
    group_id  TEXT NOT NULL REFERENCES security_groups (id),
    PRIMARY KEY (vm_id, group_id)
) STRICT;

-- A port of the uplink address forwarded to a VM port.
CREATE TABLE port_forwards (
    id          TEXT PRIMARY KEY NOT NULL,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    vm_id       TEXT NOT NULL REFERENCES vms (id),
    protocol    TEXT NOT NULL CHECK (protocol IN ('tcp', 'udp')),
    host_port   INTEGER NOT NULL CHECK (host_port BETWEEN 1 AND 65535),
    vm_port     INTEGER NOT NULL CHECK (vm_port BETWEEN 1 AND 65535),
    created_at  INTEGER NOT NULL,
    UNIQUE (protocol, host_port)
) STRICT;

-- Addresses from the configured pool, allocated to a tenant, attached to at most one VM.
CREATE TABLE floating_ips (
    id          TEXT PRIMARY KEY NOT NULL,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    address     TEXT NOT NULL UNIQUE,
    vm_id       TEXT REFERENCES vms (id),
    created_at  INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX floating_ips_one_per_vm ON floating_ips (vm_id) WHERE vm_id IS NOT NULL;

ALTER TABLE quotas ADD COLUMN networks INTEGER NOT NULL DEFAULT 3 CHECK (networks >= 0);
ALTER TABLE quotas ADD COLUMN floating_ips INTEGER NOT NULL DEFAULT 2 CHECK (floating_ips >= 0);
ALTER TABLE quotas ADD COLUMN port_forwards INTEGER NOT NULL DEFAULT 10 CHECK (port_forwards >= 0);
