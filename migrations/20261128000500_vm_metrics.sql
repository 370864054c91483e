-- VM metrics (issue 16): samples of each running VMM's counters, taken by the portal's one sampler task.
-- Two tiers in one table: `resolution` 0 holds raw samples (every `metrics.interval_secs`, kept
-- `metrics.raw_retention_secs`), 300 holds one row per VM per 5-minute bucket (kept
-- `metrics.rollup_retention_secs`), made from the raw rows once the bucket has ended. Counters are stored
-- as the VMM reports them (cumulative since the VMM started); rates are deltas between neighbouring rows.
-- No foreign key: rows of deleted VMs are removed by the sampler's prune step, in the same pass.
CREATE TABLE vm_metrics (
    vm_id            TEXT NOT NULL,
    resolution       INTEGER NOT NULL CHECK (resolution IN (0, 300)),
    -- Unix seconds: the sample's time (raw) or the bucket's start (5-minute rows).
    at               INTEGER NOT NULL,
    -- vCPU threads' CPU time, milliseconds, cumulative (the last in the bucket for 5-minute rows).
    cpu_ms           INTEGER NOT NULL,
    -- Resident memory of the VMM process (the average over the bucket for 5-minute rows).
    rss_bytes        INTEGER NOT NULL,
    -- Bytes the guest read from and wrote to its disks, cumulative.
    disk_read_bytes  INTEGER NOT NULL,
    disk_write_bytes INTEGER NOT NULL,
    PRIMARY KEY (vm_id, resolution, at)
) STRICT, WITHOUT ROWID;
-- Pruning by age scans by time, whatever the VM.
CREATE INDEX vm_metrics_by_age ON vm_metrics (resolution, at);
