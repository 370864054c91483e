-- Exact supervision: a VM "may have a VMM" from the moment the portal decides to start one until that VMM
-- is seen to exit. `vmm_run_id` is set (with the run lock held, see vmm-api/src/run_dir.rs) before the VMM
-- is spawned and cleared only once its exit is known; quota and billing follow it, not the state name:
-- the VM's usage interval is open exactly while it has a run id.
ALTER TABLE vms ADD COLUMN vmm_run_id TEXT;
