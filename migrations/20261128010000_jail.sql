-- The jail: every VM's VMM runs under its own uid (and gid of the same number), allocated from the
-- portal's `sandbox.uid_range` when the VM first starts, kept while the VM exists and released (NULL)
-- when it is deleted. Unique among VMs that hold one.
ALTER TABLE vms ADD COLUMN sandbox_uid INTEGER;
CREATE UNIQUE INDEX vms_sandbox_uid ON vms (sandbox_uid) WHERE sandbox_uid IS NOT NULL;
